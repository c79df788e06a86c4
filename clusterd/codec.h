/*
 * clusterd's one checked decoder for the bytes it does not trust — Raft log entries
 * (command batches) and snapshots arrive from other hosts and from disk — and the
 * conversions between proto/cluster.proto messages and the in-memory state.
 *
 * Decoding checks the size limit before parsing, parses with protobuf-c through the
 * Keel heap, then checks the format version and counts. Field values (names, uuids,
 * addresses, enums) are checked by the *_from_pb conversions, which the commands and the
 * snapshot loader share, so a value refused in a command is refused in a snapshot too.
 */
#ifndef CD_CODEC_H
#define CD_CODEC_H

#include <stddef.h>

#include "cluster.pb-c.h"
#include "clusterd/state.h"
#include "lib/err.h"

/* Largest encoded command batch (one Raft entry) and most commands in it. */
#define CD_BATCH_MAX_BYTES    (2u << 20) /* room for one AuthSet of CD_AUTH_BLOB_MAX */
#define CD_BATCH_MAX_COMMANDS 1024

/* The protobuf-c allocator over kb_malloc/kb_free (fault injection reaches it). */
extern ProtobufCAllocator cd__pb_allocator;

/* protobuf-c returns NULL both for malformed input and for out-of-memory. After a failed
 * unpack with cd__pb_allocator, this parses the bytes again with the system allocator:
 * true means they are well-formed and the failure was memory (a transient condition the
 * caller must not mistake for a verdict on the bytes, which every host must reach alike). */
bool cd__pb_was_oom(const ProtobufCMessageDescriptor *d, const void *data, size_t len);

/* Decodes one command batch. On success *out is the batch; the caller frees it with
 * cd_batch_free(). Errors: KB_ETOOBIG (over CD_BATCH_MAX_BYTES or CD_BATCH_MAX_COMMANDS),
 * KB_EPROTO (not a CommandBatch), KB_EVERSION (format version not CD_FORMAT_VERSION),
 * -ENOMEM; e says why. Commands themselves are validated when applied. */
int cd_batch_decode(const void *data, size_t len, Keel__Cluster__CommandBatch **out,
		    struct kb_errmsg *e);
void cd_batch_free(Keel__Cluster__CommandBatch *b);

/* Encodes n commands as a batch into a buffer from raft_malloc(): on success buf->base is
 * the caller's, to free with raft_free() or hand to raft_apply(). Errors: KB_ETOOBIG,
 * -ENOMEM. */
struct raft_buffer;
int cd_batch_encode(Keel__Cluster__Command *const *cmds, unsigned n, struct raft_buffer *buf,
		    struct kb_errmsg *e);

/* Field checks: 0 or -EINVAL with e naming the field (what). */
int cd__check_name(const char *s, const char *what, struct kb_errmsg *e);
int cd__check_uuid(const char *s, const char *what, struct kb_errmsg *e);
int cd__check_addr(const char *s, bool required, const char *what, struct kb_errmsg *e);

/* Conversions from messages: check every field and fill the struct. 0 or -EINVAL. A NULL
 * message (an absent field) is -EINVAL. */
int cd__config_from_pb(const Keel__Cluster__ClusterConfig *pb, struct cd_config *c,
		       struct kb_errmsg *e);
int cd__host_from_pb(const Keel__Cluster__Host *pb, struct cd_host *h, struct kb_errmsg *e);
int cd__ha_from_pb(const Keel__Cluster__HaSettings *pb, const char *self, struct cd_vm *vm,
		   struct kb_errmsg *e);
int cd__vm_from_pb(const Keel__Cluster__Vm *pb, struct cd_vm *vm, struct kb_errmsg *e);
int cd__op_from_pb(const Keel__Cluster__Operation *pb, struct cd_op *op, struct kb_errmsg *e);
/* A join token record: id of CD_TOKEN_ID_SIZE bytes, secret hash of CD_TOKEN_HASH_SIZE,
 * used_by non-zero exactly when used. */
int cd__token_from_pb(const Keel__Cluster__JoinTokenRecord *pb, struct cd_join_token *t,
		      struct kb_errmsg *e);
/* An event as a snapshot holds it: kind set, vm empty or a uuid, message per
 * cd__check_event_message(); seq, at_ms and host as they are. */
int cd__event_from_pb(const Keel__Cluster__Event *pb, struct cd_event *ev, struct kb_errmsg *e);
/* An event message: 1..CD_EVENT_MSG_MAX bytes of well-formed UTF-8 without control
 * characters (C0, DEL, C1). */
int cd__check_event_message(const char *s, struct kb_errmsg *e);
/* An AuthSet's or a snapshot's auth store: 1..CD_AUTH_BLOB_MAX bytes. 0, -EINVAL (empty)
 * or KB_ETOOBIG. */
int cd__check_auth_blob(const ProtobufCBinaryData *blob, struct kb_errmsg *e);
/* A snapshot's auth store: version >= 1 and the blob's size; copied into a (its blob grown
 * with kb_realloc as needed). 0, -EINVAL, KB_ETOOBIG or -ENOMEM. */
int cd__auth_from_pb(const Keel__Cluster__AuthDb *pb, struct cd_auth *a, struct kb_errmsg *e);
/* DRS settings: NULL gives the defaults; else automation set, threshold 1..5, interval
 * CD_DRS_INTERVAL_MIN..MAX s, hold at most CD_DRS_HOLD_MAX s, 1..CD_DRS_MOVES_MAX moves. */
int cd__drs_from_pb(const Keel__Cluster__DrsSettings *pb, struct cd_drs_settings *d,
		    struct kb_errmsg *e);
/* A rule's own fields: name, kind, 2..CD_RULE_VMS_MAX VM uuids for VM-VM rules (1.. for
 * host rules), no VM twice, a host group of 1..CD_RULE_HOSTS_MAX non-zero ids exactly for
 * host rules, none twice. Whether the VMs and hosts exist is the caller's check. 0, -EINVAL
 * or KB_ETOOBIG. */
int cd__rule_from_pb(const Keel__Cluster__Rule *pb, struct cd_rule *r, struct kb_errmsg *e);
bool cd__rule_is_host_rule(int kind);
int cd__host_state_check(int state, struct kb_errmsg *e);
int cd__power_check(int power, struct kb_errmsg *e);
int cd__ft_state_check(int state, struct kb_errmsg *e);
/* A VM's FT as proto/cluster.proto's Ft (initialised here; no pointers into ft). */
void cd__ft_to_pb(const struct cd_ft *ft, Keel__Cluster__Ft *pb);

#endif
