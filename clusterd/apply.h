/*
 * The command handlers: validate one command against the state and apply it, or refuse it
 * and change nothing. Internal to clusterd; the rules are listed in docs/clusterd.md.
 */
#ifndef CD_APPLY_H
#define CD_APPLY_H

#include "cluster.pb-c.h"
#include "clusterd/state.h"
#include "lib/err.h"

/* Applies one command. 0: applied (s->applied counts it). Refusals, state unchanged:
 * -EINVAL (a field is not valid), KB_EEXIST (duplicate id, uuid, name or address),
 * KB_ENOTFOUND (a named host, VM or operation does not exist), KB_ESTATE (not allowed in
 * the current state: an epoch that does not grow, a host that still owns VMs, ...),
 * KB_ETOOBIG (a count limit); for HostJoin also KB_ENOTFOUND (unknown join token),
 * -EKEYREJECTED (wrong secret), -EKEYREVOKED (token already used), -EKEYEXPIRED; for
 * AuthSet -ESTALE (expect_version is not the current version). An applied
 * command may append events (docs/clusterd.md, "Events"). -ENOMEM only when the caller did
 * not reserve room with cd__state_reserve() for the inserts (cd__command_inserts()) and
 * the token and event arrays. e says why. Deterministic: reads no clock and no random
 * source. */
int cd__command_apply(struct cd_state *s, const Keel__Cluster__Command *c, struct kb_errmsg *e);

/* How many hosts, VMs and operations the command may insert (at most one in total;
 * HostJoin inserts a host). Token records and events need no reservation beyond
 * cd__state_reserve()'s fixed arrays. */
void cd__command_inserts(const Keel__Cluster__Command *c, unsigned *hosts, unsigned *vms,
			 unsigned *ops);

/* The bytes of auth store an AuthSet may need (0 for other commands and for a blob over
 * the limit, which is refused): the caller reserves the largest of a batch with
 * cd__state_auth_reserve() before applying, so an AuthSet never fails for memory. */
size_t cd__command_auth_bytes(const Keel__Cluster__Command *c);

/* Checks the invariants every command keeps: unique host names and vmk0 addresses,
 * unique .vmx paths, VM owners and operation hosts that exist, FT secondary hosts that exist, one
 * operation per VM whose VM exists, token records sorted by unique id, events in strictly
 * increasing seq order below next_event_seq (>= 1), counts within the limits. Used on
 * restored snapshots. 0, KB_EPROTO with e saying which, or -ENOMEM. */
int cd__state_check(const struct cd_state *s, struct kb_errmsg *e);

/* "not protected", "needs secondary", "starting", "protected" for an FtState. */
const char *cd_ft_state_word(int state);

#endif
