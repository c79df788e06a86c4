/*
 * The vMotion stream (docs/vmotion.md, "The stream"): one TCP connection per stream, an
 * authenticated hello, then records both ways, each sealed with AES-256-GCM (or checked
 * with CRC32C when encryption is off). Used by vmotion/send.c and vmotion/recv.c in vmx.
 *
 * A struct vmo_conn belongs to one stream. Sending and receiving on one conn may happen on
 * two threads at once (one sender, one receiver); two senders (or two receivers) on one
 * conn must not. Every function reports failure with a negative Keel error code (or
 * -errno) and a message in err; after a failure the conn is unusable except for
 * vmo_conn_free. Nothing here allocates per record: the conn owns one receive buffer of
 * VMO_REC_MAX + tag bytes and one send buffer of the same size.
 */
#ifndef VMOTION_WIRE_H
#define VMOTION_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "lib/err.h"

#define VMO_MAGIC	   "KEELVMO1" /* 8 bytes, no NUL on the wire */
#define VMO_VERSION	   1u
#define VMO_KEY_SIZE	   32
#define VMO_ID_SIZE	   16
#define VMO_MAX_STREAMS	   16
#define VMO_PAGE_SIZE	   4096u
#define VMO_PAGES_MAX	   256u		      /* pages in one PAGES record */
#define VMO_ZERO_MAX	   (1u << 20)	      /* pages in one ZERO record */
#define VMO_REC_MAX	   ((1u << 20) + 64u) /* payload bytes of one record */
#define VMO_ABORT_TEXT_MAX 256u
#define VMO_HELLO_SIZE	   88
#define VMO_REPLY_SIZE	   64

enum vmo_type {
	VMO_PAGES = 1,
	VMO_ZERO = 2,
	VMO_ROUND = 3,
	VMO_FINAL = 4,
	VMO_STATE = 5,
	VMO_STATE_END = 6,
	VMO_READY = 7,
	VMO_GO = 8,
	VMO_RESUMED = 9,
	VMO_ABORT = 10,
	VMO_SYNC = 11,	 /* source: everything before this is sent; answer when applied */
	VMO_SYNCED = 12, /* destination, on the same stream: applied up to that SYNC */
	/* FT mode only (docs/ft.md) */
	VMO_DISK = 13,	   /* primary: a disk write (sync or inside a checkpoint) */
	VMO_CKPT = 14,	   /* primary: a checkpoint begins */
	VMO_CKPT_END = 15, /* primary: the checkpoint's counts; apply it */
	VMO_ACK = 16,	   /* secondary: the checkpoint is applied */
};

#define VMO_DISK_MAX	  16u	     /* disks an FT stream addresses */
#define VMO_DISK_DATA_MAX (1u << 20) /* data bytes of one DISK record */

struct vmo_conn;

/* What both ends agree on before the hello. */
struct vmo_params {
	uint8_t key[VMO_KEY_SIZE]; /* the migration key */
	uint8_t id[VMO_ID_SIZE];   /* the migration id */
	uint32_t count;		   /* streams in this migration, 1..VMO_MAX_STREAMS */
	bool encrypt;		   /* client: ask for AES-GCM; server: require it when true */
	bool ft;		   /* an FT stream (docs/ft.md): both ends must agree */
	uint64_t guest_pages;	   /* the guest's RAM in pages: page numbers must be below */
};

/* Client side of one stream: sends the hello on connected socket fd, checks the reply.
 * On success *out owns fd (vmo_conn_free closes it). KB_EPROTO/KB_EVERSION/KB_ECHECKSUM
 * (a reply that does not prove the key), KB_ETRUNCATED, -errno; a server's refusal is its
 * status code with a message naming it. */
int vmo_client_hello(int fd, const struct vmo_params *p, uint32_t index, struct vmo_conn **out,
		     struct kb_errmsg *err);

/* Server side: reads and checks a hello on accepted socket fd (magic, version, id, count,
 * index < count, MAC, and encryption when p->encrypt), answers it, and on success returns
 * the conn and the stream index the client claimed. A refused hello is answered with a
 * non-zero status when it was well formed and closes nothing (the caller closes fd). */
int vmo_server_hello(int fd, const struct vmo_params *p, struct vmo_conn **out, uint32_t *index,
		     struct kb_errmsg *err);

/* Seals and writes one record whose payload is the concatenation of iov (at most
 * VMO_REC_MAX bytes in all; the iov memory is only read, so guest memory may be passed
 * directly). Blocks until written. Sends on one conn are serialised (any thread). */
int vmo_send(struct vmo_conn *c, enum vmo_type type, const struct iovec *iov, int iovcnt,
	     struct kb_errmsg *err);

/* Typed senders. vmo_send_pages: count (1..VMO_PAGES_MAX) pages from data, numbered from
 * first, inside one chunk of VMO_PAGES_MAX pages that belongs to this stream.
 * vmo_send_zero: count (1..VMO_ZERO_MAX) pages from first; with more than one stream the
 * range stays inside one chunk of this stream (the next chunk belongs to another stream),
 * with one stream it may span chunks. vmo_send_abort: a negative code and a text (cut at
 * VMO_ABORT_TEXT_MAX). Arguments the receiver would refuse (page ranges beyond
 * guest_pages or on another stream, counts out of range) are -EINVAL and send nothing. */
int vmo_send_pages(struct vmo_conn *c, uint64_t first, uint32_t count, const void *data,
		   struct kb_errmsg *err);
int vmo_send_zero(struct vmo_conn *c, uint64_t first, uint32_t count, struct kb_errmsg *err);
int vmo_send_round(struct vmo_conn *c, uint32_t round, uint64_t pages, struct kb_errmsg *err);
int vmo_send_final(struct vmo_conn *c, uint64_t pages, struct kb_errmsg *err);
int vmo_send_state_end(struct vmo_conn *c, uint64_t length, uint32_t crc, struct kb_errmsg *err);
int vmo_send_go(struct vmo_conn *c, uint64_t epoch, struct kb_errmsg *err);
int vmo_send_empty(struct vmo_conn *c, enum vmo_type type, struct kb_errmsg *err);
int vmo_send_abort(struct vmo_conn *c, int code, const char *text, struct kb_errmsg *err);
/* VMO_SYNC from the source or VMO_SYNCED from the destination, carrying seq. */
int vmo_send_sync(struct vmo_conn *c, enum vmo_type type, uint64_t seq, struct kb_errmsg *err);
/* FT mode. vmo_send_ckpt: CKPT or ACK with the checkpoint's number. vmo_send_disk: len
 * bytes (512..VMO_DISK_DATA_MAX, a multiple of 512) at offset (a multiple of 512) of disk
 * index. -EINVAL (nothing sent) for what the receiver would refuse or on a vMotion conn. */
int vmo_send_ckpt(struct vmo_conn *c, enum vmo_type type, uint64_t ckpt, struct kb_errmsg *err);
int vmo_send_disk(struct vmo_conn *c, uint32_t index, uint64_t offset, const void *data,
		  uint32_t len, struct kb_errmsg *err);
int vmo_send_ckpt_end(struct vmo_conn *c, uint64_t ckpt, uint64_t pages, uint64_t disk_bytes,
		      uint64_t state_len, uint32_t state_crc, struct kb_errmsg *err);

/* One received record, decoded and checked: the type's exact payload size, page ranges
 * below guest_pages, pages on the stream (page / VMO_PAGES_MAX) % count == this index,
 * counts in range, reserved fields zero. Pointers point into the conn's buffer and are
 * valid until the next vmo_recv on that conn. */
struct vmo_rec {
	enum vmo_type type;
	union {
		struct {
			uint64_t first;
			uint32_t count;
			const uint8_t *data; /* count * VMO_PAGE_SIZE bytes (PAGES only) */
		} pages;		     /* PAGES and ZERO */
		struct {
			uint32_t round;
			uint64_t pages;
		} round;
		uint64_t final_pages; /* FINAL */
		struct {
			const uint8_t *data;
			uint32_t len;
		} state; /* STATE */
		struct {
			uint64_t length;
			uint32_t crc;
		} state_end;
		uint64_t go_epoch; /* GO */
		uint64_t sync_seq; /* SYNC and SYNCED */
		uint64_t ckpt;	   /* CKPT and ACK: the checkpoint's number */
		struct {
			uint32_t index;
			uint64_t offset;
			const uint8_t *data;
			uint32_t len; /* 512..VMO_DISK_DATA_MAX, a multiple of 512 */
		} disk;		      /* DISK */
		struct {
			uint64_t ckpt;
			uint64_t pages;
			uint64_t disk_bytes;
			uint64_t state_len;
			uint32_t state_crc;
		} ckpt_end; /* CKPT_END */
		struct {
			int code;
			char text[VMO_ABORT_TEXT_MAX + 1];
		} abort;
	} u;
};

/* Reads, authenticates and decodes one record. Blocks. KB_ETRUNCATED when the peer closed
 * (mid-record or between records), KB_ECHECKSUM when the tag or CRC is wrong, KB_ETOOBIG
 * for a length over VMO_REC_MAX, KB_EPROTO for anything else malformed. Also KB_EPROTO: a
 * type the peer's side does not send in this mode (vMotion or FT), and on a vMotion
 * destination a record out of order (pages after FINAL, the state before FINAL or after
 * STATE_END, a STATE_END whose length is not that of the STATE records); an FT
 * secondary's order is ft/ckpt.c's to check. KB_ETIMEOUT when a receive timeout the caller set
 * on the socket (SO_RCVTIMEO) passes; KB_ECANCELED after vmo_conn_shutdown; KB_ESTATE
 * after an earlier receive failed. */
int vmo_recv(struct vmo_conn *c, struct vmo_rec *rec, struct kb_errmsg *err);

/* Decodes and checks one record's payload without any I/O (what vmo_recv does after
 * opening the record): for the fuzz target and unit tests. index/count/guest_pages as for
 * a conn. rec's pointers point into payload. */
int vmo_decode(enum vmo_type type, const uint8_t *payload, uint32_t len, uint32_t index,
	       uint32_t count, uint64_t guest_pages, struct vmo_rec *rec, struct kb_errmsg *err);

/* Bytes written and read on the socket so far (headers, tags and hello included). */
uint64_t vmo_conn_bytes_sent(const struct vmo_conn *c);
uint64_t vmo_conn_bytes_received(const struct vmo_conn *c);
uint32_t vmo_conn_index(const struct vmo_conn *c);
int vmo_conn_fd(const struct vmo_conn *c);

/* Shuts the socket down both ways (unblocking a reader on another thread); idempotent. */
void vmo_conn_shutdown(struct vmo_conn *c);
/* Closes the socket and frees the conn (key material is wiped). NULL is fine. */
void vmo_conn_free(struct vmo_conn *c);

/* Connects a TCP socket to endpoint ("IP:PORT", "[IPv6]:PORT"; numeric only) within
 * connect_ms, with TCP_NODELAY and a send timeout of send_ms (a peer that takes nothing
 * that long is broken): 0 with *out the blocking socket, KB_ECONFIG for a bad endpoint,
 * KB_ETIMEOUT or -errno. */
int vmo_dial(const char *endpoint, unsigned connect_ms, unsigned send_ms, int *out,
	     struct kb_errmsg *err);
/* Whether endpoint is a numeric IP:PORT vmo_dial takes: 0 or KB_ECONFIG. */
int vmo_endpoint_check(const char *endpoint, struct kb_errmsg *err);
/* Moves the calling thread (only) into the network namespace at path (setns). */
int vmo_enter_netns(const char *path, struct kb_errmsg *err);

/* The stream a page travels on. */
static inline uint32_t vmo_stream_of(uint64_t page, uint32_t count)
{
	return (uint32_t)((page / VMO_PAGES_MAX) % count);
}

/* Checks a client's hello without any I/O (what vmo_server_hello does once it has read
 * VMO_HELLO_SIZE bytes with the right magic): version, MAC, flags, id, count, index and
 * encryption against p, in that order. 0 with the claimed index and whether the client
 * asked for encryption; otherwise the status the server answers with (KB_EVERSION,
 * KB_ECHECKSUM for a MAC that does not verify, KB_EPROTO for unknown flags, a wrong count
 * or index, KB_ENOTFOUND for another migration id, KB_ENOTSUP for a plain hello when p
 * requires encryption; KB_EPROTO for a wrong magic) and a message. Pure: for the fuzz
 * target and unit tests. */
int vmo_hello_check(const uint8_t hello[VMO_HELLO_SIZE], const struct vmo_params *p,
		    uint32_t *index, bool *encrypt, struct kb_errmsg *err);

/* Checks a server's reply to hello without any I/O (what vmo_client_hello does once it
 * has read VMO_REPLY_SIZE bytes). 0 when the reply accepts and proves the key; the
 * server's status when it refuses (KB_EPROTO when that status is not a negative code);
 * KB_EPROTO for a wrong magic, KB_EVERSION, KB_ECHECKSUM for an acceptance that does not
 * prove the key. Pure: for the fuzz target and unit tests. */
int vmo_reply_check(const uint8_t reply[VMO_REPLY_SIZE], const uint8_t hello[VMO_HELLO_SIZE],
		    const struct vmo_params *p, struct kb_errmsg *err);

/* The receive timeout of each hello in milliseconds (default 10000; 0 waits forever), so a
 * silent peer cannot hold a stream: KB_ETIMEOUT. Applies to hellos started afterwards;
 * any thread. */
void vmo_hello_timeout_set(unsigned int ms);

#endif
