/*
 * The host commands: HostAdd, HostJoin (which spends a join token), HostUpdate,
 * HostRemove and HostSetMaintenance. The rules every handler keeps (check everything,
 * then change; no clock, no random source; events from the command and the state alone)
 * are in apply.c's header.
 *
 * Failure modes: a refusal with e saying why and the state unchanged (the codes are in
 * apply.h); -ENOMEM only when the caller did not reserve room for the host.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "clusterd/apply_int.h"
#include "clusterd/codec.h"

static const char *state_name(int state)
{
	static const char *const names[] = {"unspecified", "connected", "unreachable",
					    "partitioned", "failed",	"isolated",
					    "maintenance", "left"};

	return state >= 0 && state < (int)(sizeof(names) / sizeof(names[0])) ? names[state] : "?";
}

static const char *role_name(int role)
{
	static const char *const names[] = {"none", "voter", "standby", "spare"};

	return role >= 0 && role < (int)(sizeof(names) / sizeof(names[0])) ? names[role] : "?";
}

/* Seconds to milliseconds, saturating. */
static uint64_t s_to_ms(uint64_t sec)
{
	return sec > UINT64_MAX / 1000 ? UINT64_MAX : sec * 1000;
}

static bool op_uses_host(const struct cd_state *s, uint64_t id)
{
	for (unsigned i = 0; i < s->n_ops; i++)
		if (s->ops[i].source == id || s->ops[i].destination == id)
			return true;
	return false;
}

/* HostAdd's rules, shared with HostJoin: the record is valid and its id, name and vmk0 are
 * not in use. Fills *h. */
static int host_check_new(const struct cd_state *s, const Keel__Cluster__Host *pb,
			  struct cd_host *h, struct kb_errmsg *e)
{
	int rv;

	if ((rv = cd__host_from_pb(pb, h, e)))
		return rv;
	if (cd_state_host(s, h->id)) {
		kb_errmsg_setf(e, "host %llu already exists", (unsigned long long)h->id);
		return KB_EEXIST;
	}
	if (cd_state_host_by_name(s, h->name)) {
		kb_errmsg_setf(e, "a host named %s already exists", h->name);
		return KB_EEXIST;
	}
	if (cd__apply_host_by_vmk0(s, h->vmk0)) {
		kb_errmsg_setf(e, "a host with vmk0 %s already exists", h->vmk0);
		return KB_EEXIST;
	}
	if (s->n_hosts >= CD_HOSTS_MAX) {
		kb_errmsg_setf(e, "the cluster already has %d hosts", CD_HOSTS_MAX);
		return KB_ETOOBIG;
	}
	return 0;
}

int cd__apply_host_add(struct cd_state *s, const Keel__Cluster__HostAdd *c, struct kb_errmsg *e)
{
	struct cd_host h;
	int rv;

	if ((rv = host_check_new(s, c->host, &h, e)))
		return rv;
	if (cd__state_reserve(s, 1, 0, 0))
		return -ENOMEM;
	cd__state_host_insert(s, &h);
	/* HostAdd carries no time of its own: the record's last change is when it was made. */
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ADDED,
			    h.last_change_ms ? h.last_change_ms : cd__state_last_event_ms(s), h.id,
			    "", "host %s (%llu) added at vmk0 %s", h.name, (unsigned long long)h.id,
			    h.vmk0);
	return 0;
}

int cd__apply_host_join(struct cd_state *s, const Keel__Cluster__HostJoin *c, struct kb_errmsg *e)
{
	struct cd_join_token *t;
	struct cd_host h;
	int rv;

	if (c->token_id.len != CD_TOKEN_ID_SIZE || c->token_id.data == NULL) {
		kb_errmsg_setf(e, "join token id must have %d bytes", CD_TOKEN_ID_SIZE);
		return -EINVAL;
	}
	if (c->secret_hash.len != CD_TOKEN_HASH_SIZE || c->secret_hash.data == NULL) {
		kb_errmsg_setf(e, "join token secret hash must have %d bytes", CD_TOKEN_HASH_SIZE);
		return -EINVAL;
	}
	/* The order of cd_token_check(): only the secret's holder learns the token's state. */
	t = cd__state_token_mut(s, c->token_id.data);
	if (t == NULL) {
		kb_errmsg_setf(e, "unknown join token");
		return KB_ENOTFOUND;
	}
	if (CRYPTO_memcmp(t->rec.secret_hash, c->secret_hash.data, CD_TOKEN_HASH_SIZE) != 0) {
		kb_errmsg_setf(e, "join token refused: wrong secret");
		return -EKEYREJECTED;
	}
	if (t->rec.used) {
		kb_errmsg_setf(e, "join token already used");
		return -EKEYREVOKED;
	}
	if (c->at_s >= t->rec.expires_s) {
		kb_errmsg_setf(e, "join token expired %llu s ago",
			       (unsigned long long)(c->at_s - t->rec.expires_s));
		return -EKEYEXPIRED;
	}
	if ((rv = host_check_new(s, c->host, &h, e)))
		return rv;
	if (cd__state_reserve(s, 1, 0, 0))
		return -ENOMEM;
	/* Spend the token before pruning moves it; it is not expired, so it stays. */
	t->rec.used = true;
	t->used_by = h.id;
	cd__state_tokens_prune(s, c->at_s);
	cd__state_host_insert(s, &h);
	/* The host record's time is the proposer's in ms; at_s is the same clock cut to s. */
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ADDED,
			    h.last_change_ms ? h.last_change_ms : s_to_ms(c->at_s), h.id, "",
			    "host %s (%llu) joined at vmk0 %s", h.name, (unsigned long long)h.id,
			    h.vmk0);
	return 0;
}

int cd__apply_host_update(struct cd_state *s, const Keel__Cluster__HostUpdate *c,
			  struct kb_errmsg *e)
{
	struct cd_host *h = cd__state_host_mut(s, c->id);
	int rv, old_state, old_role;

	if (h == NULL) {
		kb_errmsg_setf(e, "host %llu does not exist", (unsigned long long)c->id);
		return KB_ENOTFOUND;
	}
	if ((rv = cd__host_state_check(c->state, e)))
		return rv;
	if (c->role < KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_UNSPECIFIED ||
	    c->role > KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_SPARE) {
		kb_errmsg_setf(e, "raft role %d is not valid", c->role);
		return -EINVAL;
	}
	if (h->state == HOST_LEFT) {
		kb_errmsg_setf(e, "host %llu has left the cluster", (unsigned long long)c->id);
		return KB_ESTATE;
	}
	old_state = h->state;
	old_role = h->role;
	if (h->state != (int)c->state)
		h->last_change_ms = c->at_ms;
	h->state = c->state;
	if (c->role != KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_UNSPECIFIED)
		h->role = c->role;
	if (h->state != old_state)
		cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_STATE, c->at_ms, h->id,
				    "", "host %s: %s -> %s", h->name, state_name(old_state),
				    state_name(h->state));
	if (h->role != old_role)
		cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ROLE, c->at_ms, h->id,
				    "", "host %s: raft role %s -> %s", h->name, role_name(old_role),
				    role_name(h->role));
	return 0;
}

int cd__apply_host_remove(struct cd_state *s, const Keel__Cluster__HostRemove *c,
			  struct kb_errmsg *e)
{
	char name[CD_NAME_MAX + 1];
	unsigned owned;

	if (cd_state_host(s, c->id) == NULL) {
		kb_errmsg_setf(e, "host %llu does not exist", (unsigned long long)c->id);
		return KB_ENOTFOUND;
	}
	owned = cd_state_n_vms_owned(s, c->id);
	if (owned > 0) {
		kb_errmsg_setf(e, "host %llu still owns %u VMs", (unsigned long long)c->id, owned);
		return KB_ESTATE;
	}
	if (op_uses_host(s, c->id)) {
		kb_errmsg_setf(e, "host %llu takes part in an operation in flight",
			       (unsigned long long)c->id);
		return KB_ESTATE;
	}
	strcpy(name, cd_state_host(s, c->id)->name);
	cd__state_host_remove(s, c->id);
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_REMOVED, c->at_ms, c->id, "",
			    "host %s (%llu) removed", name, (unsigned long long)c->id);
	cd__apply_rules_drop(s, NULL, c->id);
	cd__apply_ft_host_gone(s, c->id);
	return 0;
}

int cd__apply_host_set_maintenance(struct cd_state *s, const Keel__Cluster__HostSetMaintenance *c,
				   struct kb_errmsg *e)
{
	struct cd_host *h = cd__state_host_mut(s, c->host);

	if (h == NULL) {
		kb_errmsg_setf(e, "host %llu does not exist", (unsigned long long)c->host);
		return KB_ENOTFOUND;
	}
	if (h->state == HOST_LEFT) {
		kb_errmsg_setf(e, "host %llu has left the cluster", (unsigned long long)c->host);
		return KB_ESTATE;
	}
	if (h->maintenance == c->enter)
		return 0; /* already so: applied, nothing visible changes */
	h->maintenance = c->enter;
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_STATE,
			    c->at_ms ? c->at_ms : cd__state_last_event_ms(s), h->id, "",
			    "host %s %s maintenance mode", h->name, c->enter ? "entered" : "left");
	return 0;
}
