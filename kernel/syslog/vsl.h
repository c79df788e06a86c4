/*
 * vmsyslogd — the host's remote syslog forwarder (docs/syslog.md). Contracts shared by the
 * files of kernel/syslog/.
 *
 * Happy path: the daemon reads etc/keel/syslog.conf from vmkernel's config store
 * (conf.c parses it), tails vmkernel.log, hostd.log, clusterd.log and every registered VM's
 * vmx.log (tail.c), turns each new line into an RFC 5424 message (fmt.c) and hands it to
 * every configured remote (remote.c), each of which owns a bounded queue and a sender
 * thread speaking UDP, TCP with octet counting (RFC 6587) or TLS (RFC 5425).
 *
 * Failure modes: a remote that cannot be reached keeps its messages in its queue up to its
 * limit and counts the ones it had to drop; its thread reconnects with a growing backoff.
 * Handing a message to a remote never blocks on the network. A configuration that does not
 * parse is refused as a whole: the previous one stays in force and the status says why.
 *
 * Symbols shared between these files carry the vsl_ prefix.
 */
#ifndef VSL_H
#define VSL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

/* ---- configuration (conf.c) ----------------------------------------------------------- */

#define VSL_CONF_PATH	   "etc/keel/syslog.conf" /* in vmkernel's config store */
#define VSL_REMOTES_MAX	   8
#define VSL_URL_MAX	   300
#define VSL_HOST_MAX	   253
#define VSL_CA_MAX	   4096
#define VSL_BUFFER_DEFAULT 10000u
#define VSL_BUFFER_MAX	   1000000u
#define VSL_PORT_UDP	   514
#define VSL_PORT_TCP	   601
#define VSL_PORT_TLS	   6514

enum vsl_proto { VSL_UDP, VSL_TCP, VSL_TLS };

struct vsl_remote_cfg {
	enum vsl_proto proto;
	char host[VSL_HOST_MAX + 1]; /* a name, dotted-quad IPv4, or IPv6 without brackets */
	uint16_t port;
	char url[VSL_URL_MAX]; /* canonical: scheme://host:port ([v6]:port) */
};

struct vsl_conf {
	size_t n_remotes;
	struct vsl_remote_cfg remotes[VSL_REMOTES_MAX];
	char ca[VSL_CA_MAX];   /* absolute path of the CA file for tls://, or "" */
	uint32_t buffer_lines; /* per remote */
};

/* "udp://127.0.0.1:514", "tcp://loghost:601", "tls://[::1]:6514" (the port defaults to
 * 514, 601, 6514 by scheme). 0 and *out, or KB_ECONFIG with the reason in err. */
int vsl_url_parse(const char *url, struct vsl_remote_cfg *out, struct kb_errmsg *err);
/* Parses syslog.conf (untrusted text): "key = value" lines, '#' comments, blank lines;
 * keys remote (repeatable), ca, buffer_lines. Defaults: no remote, no CA, buffer_lines
 * VSL_BUFFER_DEFAULT. 0, or KB_ECONFIG with "line N: ..." in err. */
int vsl_conf_parse(const void *text, size_t len, struct vsl_conf *out, struct kb_errmsg *err);
/* Checks a value of ca: an absolute path of at most VSL_CA_MAX - 1 bytes, no control
 * characters. 0 or KB_ECONFIG. */
int vsl_conf_check_ca(const char *path, struct kb_errmsg *err);
/* Checks a value of buffer_lines (decimal, 1..VSL_BUFFER_MAX). 0 and *out, or KB_ECONFIG. */
int vsl_conf_parse_buffer(const char *s, uint32_t *out, struct kb_errmsg *err);
/* Writes c as syslog.conf text (that vsl_conf_parse reads back) into out. 0 or -ENOMEM. */
int vsl_conf_render(const struct vsl_conf *c, struct kb_buf *out);
const char *vsl_proto_name(enum vsl_proto p);

/* ---- RFC 5424 messages (fmt.c) --------------------------------------------------------- */

#define VSL_FACILITY	 3    /* daemon */
#define VSL_MSG_MAX	 8192 /* bytes of one message over TCP and TLS */
#define VSL_UDP_MAX	 2048 /* bytes of one UDP datagram (RFC 5426 §3.2 "SHOULD 2048") */
#define VSL_APP_MAX	 48   /* RFC 5424 APP-NAME */
#define VSL_HOSTNAME_MAX 255
#define VSL_STAMP_MAX	 32

/* One line of a Keel log, "<time> <LEVEL> <ident>[<pid>]: <message>" (lib/log.h), taken
 * apart. A line of another shape is all message, severity notice, no time and no pid. */
struct vsl_line {
	int severity;		   /* RFC 5424: 3 err, 4 warning, 5 notice, 6 info, 7 debug */
	char stamp[VSL_STAMP_MAX]; /* the line's RFC 3339 time, or "" */
	char procid[16];	   /* the pid, or "" */
	const char *msg;	   /* borrowed from the line */
	size_t msg_len;
};

/* Takes line (len bytes, no newline) apart into out. Never fails. */
void vsl_line_parse(const char *line, size_t len, struct vsl_line *out);

/* The fields of one message; NULL or "" strings become "-" (NILVALUE), and each header
 * field is cut to its RFC 5424 length with non-printable or non-ASCII bytes replaced by
 * '_'. sd is written as given (the caller builds it with vsl_sd_param); msg has control
 * characters other than tab replaced by ' '. */
struct vsl_msg_fields {
	int facility, severity;
	const char *stamp; /* RFC 3339; NULL: the current time */
	const char *hostname, *app, *procid, *msgid, *sd;
	const char *msg;
	size_t msg_len;
};

/* Appends "<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD MSG" to out, at most max
 * bytes in all (the message is cut, never inside a UTF-8 sequence). 0 or -ENOMEM. */
int vsl_format(const struct vsl_msg_fields *f, size_t max, struct kb_buf *out);
/* Appends ` name="value"` to out with '"', '\' and ']' escaped by '\' (RFC 5424 §6.3.3). */
int vsl_sd_param(struct kb_buf *out, const char *name, const char *value);
/* Appends "LEN SP MSG" (RFC 6587 §3.4.1 octet counting, RFC 5425 §4.3). */
int vsl_frame_octets(const void *msg, size_t len, struct kb_buf *out);
/* The largest n <= len that does not cut a UTF-8 sequence of p. */
size_t vsl_utf8_cut(const void *p, size_t len);

/* ---- remotes (remote.c) -------------------------------------------------------------------
 * One per configured URL: a bounded queue of formatted messages (unframed) and a sender
 * thread. */

enum vsl_state { VSL_CONNECTING, VSL_CONNECTED, VSL_BACKOFF, VSL_ERROR };

struct vsl_remote_status {
	char url[VSL_URL_MAX];
	enum vsl_state state;
	uint64_t state_since_ns; /* CLOCK_REALTIME */
	uint64_t sent, dropped, connects;
	uint32_t buffered, buffer_lines;
	char last_error[KB_ERRMSG_SIZE];
	uint64_t last_error_ns;
	uint64_t retry_in_ms; /* when backing off */
};

/* Events of a remote (unreachable, back): level is KB_LOG_*. Called from the remote's
 * thread with no lock of the remote held. */
typedef void (*vsl_event_cb)(void *arg, int level, const char *text);

struct vsl_remote;

struct vsl_remote_opts {
	const char *ca;	       /* copied */
	uint32_t buffer_lines; /* 1..VSL_BUFFER_MAX */
	const char *hostname;  /* copied: for the drop notices */
	vsl_event_cb event_cb;
	void *event_arg;
};

/* Starts a remote's thread (it connects at once). 0 and *out (caller destroys with
 * vsl_remote_destroy), -ENOMEM, or -errno from pthread_create. */
int vsl_remote_create(const struct vsl_remote_cfg *cfg, const struct vsl_remote_opts *o,
		      struct vsl_remote **out);
/* Stops the thread (an I/O in progress is cut off) and frees the remote with its queue. */
void vsl_remote_destroy(struct vsl_remote *r);
/* Queues a copy of one message (unframed, at most VSL_MSG_MAX bytes). When the queue holds
 * buffer_lines messages the new one is dropped and counted. Takes only the remote's lock:
 * never waits on the network. Any thread. */
void vsl_remote_push(struct vsl_remote *r, const void *msg, size_t len);
/* New CA file and queue limit (a smaller limit drops the newest messages past it). A tls://
 * remote with a new CA connects again, so the server is checked against it. */
void vsl_remote_update(struct vsl_remote *r, const char *ca, uint32_t buffer_lines);
void vsl_remote_status(struct vsl_remote *r, struct vsl_remote_status *out);
const char *vsl_remote_url(const struct vsl_remote *r);
const char *vsl_state_name(enum vsl_state s);

#endif
