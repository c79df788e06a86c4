/*
 * Command handlers. Each one checks everything first and changes the state only at the
 * end, so a refused command leaves no trace; the handlers never read a clock or a random
 * source, so every host that applies the same log reaches the same state.
 *
 * The owner rule: a VM's (owner, epoch) changes only through VmChangeOwner and only to a
 * strictly higher epoch and an existing host that has not left. Nothing else touches
 * either field after registration.
 *
 * Events: an applied command may append events (the host, VM and config changes below;
 * EventAdd's notes). Their text and time come from the command and the state alone, so
 * every host holds the same events with the same sequence numbers. A refused command adds
 * none. The event ring and the token array are allocated before anything changes.
 *
 * Join tokens: TokenAdd records a token, HostJoin spends it while adding the host, in one
 * step. Both drop the records expired at the command's time, but only when applied.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "clusterd/apply.h"
#include "clusterd/codec.h"
#include "lib/heap.h"

#define HOST_LEFT KEEL__CLUSTER__HOST_STATE__HOST_LEFT
#define FT_NONE	  KEEL__CLUSTER__FT_ROLE__FT_NONE

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

static const char *isolation_name(int response)
{
	static const char *const names[] = {"unspecified", "power off", "shutdown",
					    "leave powered on"};

	return response >= 0 && response < (int)(sizeof(names) / sizeof(names[0])) ? names[response]
										   : "?";
}

static const char *host_name(const struct cd_state *s, uint64_t id)
{
	const struct cd_host *h = cd_state_host(s, id);

	return h ? h->name : "?";
}

/* Appends an event; the message is cut at CD_EVENT_MSG_MAX bytes (the texts below stay
 * under it, and are ASCII, so a cut would still be valid). */
__attribute__((format(printf, 6, 7))) static void add_event(struct cd_state *s, int kind,
							    uint64_t at_ms, uint64_t host,
							    const char *vm, const char *fmt, ...)
{
	struct cd_event ev;
	va_list ap;

	memset(&ev, 0, sizeof(ev));
	ev.at_ms = at_ms;
	ev.kind = kind;
	ev.host = host;
	snprintf(ev.vm, sizeof(ev.vm), "%s", vm ? vm : "");
	va_start(ap, fmt);
	vsnprintf(ev.message, sizeof(ev.message), fmt, ap);
	va_end(ap);
	cd__state_event_push(s, &ev);
}

/* Seconds to milliseconds, saturating. */
static uint64_t s_to_ms(uint64_t sec)
{
	return sec > UINT64_MAX / 1000 ? UINT64_MAX : sec * 1000;
}

static const struct cd_vm *vm_by_path(const struct cd_state *s, const char *path)
{
	for (unsigned i = 0; i < s->n_vms; i++)
		if (strcmp(s->vms[i].vmx_path, path) == 0)
			return &s->vms[i];
	return NULL;
}

static const struct cd_host *host_by_vmk0(const struct cd_state *s, const char *addr)
{
	for (unsigned i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i].vmk0, addr) == 0)
			return &s->hosts[i];
	return NULL;
}

static bool op_uses_host(const struct cd_state *s, uint64_t id)
{
	for (unsigned i = 0; i < s->n_ops; i++)
		if (s->ops[i].source == id || s->ops[i].destination == id)
			return true;
	return false;
}

static const struct cd_vm *ft_partner_of(const struct cd_state *s, const char *uuid)
{
	for (unsigned i = 0; i < s->n_vms; i++)
		if (s->vms[i].ft_role != FT_NONE && strcmp(s->vms[i].ft_peer, uuid) == 0)
			return &s->vms[i];
	return NULL;
}

/* The host a VM or operation may name: exists and has not left. */
static int live_host(const struct cd_state *s, uint64_t id, const char *what, struct kb_errmsg *e)
{
	const struct cd_host *h = cd_state_host(s, id);

	if (h == NULL) {
		kb_errmsg_setf(e, "%s host %llu does not exist", what, (unsigned long long)id);
		return KB_ENOTFOUND;
	}
	if (h->state == HOST_LEFT) {
		kb_errmsg_setf(e, "%s host %llu has left the cluster", what,
			       (unsigned long long)id);
		return KB_ESTATE;
	}
	return 0;
}

static struct cd_vm *find_vm(struct cd_state *s, const char *uuid, struct kb_errmsg *e)
{
	struct cd_vm *vm;

	if (cd__check_uuid(uuid, "VM uuid", e))
		return NULL;
	vm = cd__state_vm_mut(s, uuid);
	if (vm == NULL)
		kb_errmsg_setf(e, "VM %s is not registered", uuid);
	return vm;
}

/* find_vm's error code: -EINVAL for a malformed uuid, else KB_ENOTFOUND. */
static int vm_err(const char *uuid)
{
	struct kb_errmsg scratch;

	return cd__check_uuid(uuid, "", &scratch) ? -EINVAL : KB_ENOTFOUND;
}

static const char *automation_name(int a)
{
	switch (a) {
	case KEEL__CLUSTER__DRS_AUTOMATION__DRS_PARTIAL:
		return "partially automated";
	case KEEL__CLUSTER__DRS_AUTOMATION__DRS_FULL:
		return "fully automated";
	default:
		return "manual";
	}
}

/* Drops a VM that was unregistered (uuid) or a host that was removed (host) from every rule
 * naming it; a rule left with too few VMs or an empty host group goes, with an event. */
static void rules_drop(struct cd_state *s, const char *uuid, uint64_t host)
{
	for (unsigned i = 0; i < s->n_rules;) {
		struct cd_rule *r = &s->rules[i];
		unsigned n = 0;

		if (uuid) {
			for (unsigned j = 0; j < r->n_vms; j++)
				if (strcmp(r->vms[j], uuid) != 0)
					memmove(r->vms[n++], r->vms[j], sizeof(r->vms[0]));
			r->n_vms = n;
		} else {
			for (unsigned j = 0; j < r->n_hosts; j++)
				if (r->hosts[j] != host)
					r->hosts[n++] = r->hosts[j];
			r->n_hosts = n;
		}
		if (r->n_vms < (cd__rule_is_host_rule(r->kind) ? 1u : 2u) ||
		    (cd__rule_is_host_rule(r->kind) && r->n_hosts == 0)) {
			char name[CD_NAME_MAX + 1];

			strcpy(name, r->name);
			cd__state_rule_remove(s, name);
			add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
				  cd__state_last_event_ms(s), host, uuid, "rule %s removed: %s",
				  name,
				  uuid ? "too few of its VMs are registered"
				       : "no host of its host group is left");
			continue;
		}
		i++;
	}
}

static int set_config(struct cd_state *s, const Keel__Cluster__SetConfig *c, struct kb_errmsg *e)
{
	struct cd_config cfg;
	bool drs_changed;
	int rv;

	if ((rv = cd__config_from_pb(c->config, &cfg, e)))
		return rv;
	if (s->config.set && strcmp(s->config.cluster_id, cfg.cluster_id) != 0) {
		kb_errmsg_setf(e, "the cluster id cannot change (%s)", s->config.cluster_id);
		return KB_ESTATE;
	}
	/* A config without DRS settings keeps the ones in force. */
	if (c->config->drs == NULL && s->config.set)
		cfg.drs = s->config.drs;
	drs_changed = s->config.set && memcmp(&cfg.drs, &s->config.drs, sizeof(cfg.drs)) != 0;
	s->config = cfg;
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
		  c->at_ms ? c->at_ms : cd__state_last_event_ms(s), 0,
		  "", "cluster %s configured: failure timeout %u ms, isolation response %s, HA %s%s",
		  cfg.name, cfg.failure_timeout_ms, isolation_name(cfg.isolation_response),
		  cfg.ha_disabled ? "off" : "on",
		  cfg.admission_failures ? ", admission: tolerate host failures"
		  : cfg.admission_percent ? ", admission: keep a percentage free"
					  : "");
	if (drs_changed)
		add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
			  cd__state_last_event_ms(s), 0, "",
			  "DRS: %s, migration threshold %u, every %u s, hold %u s, at most %u "
			  "moves a pass",
			  automation_name(cfg.drs.automation), cfg.drs.threshold,
			  cfg.drs.interval_s, cfg.drs.hold_s, cfg.drs.max_moves);
	return 0;
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
	if (host_by_vmk0(s, h->vmk0)) {
		kb_errmsg_setf(e, "a host with vmk0 %s already exists", h->vmk0);
		return KB_EEXIST;
	}
	if (s->n_hosts >= CD_HOSTS_MAX) {
		kb_errmsg_setf(e, "the cluster already has %d hosts", CD_HOSTS_MAX);
		return KB_ETOOBIG;
	}
	return 0;
}

static int host_add(struct cd_state *s, const Keel__Cluster__HostAdd *c, struct kb_errmsg *e)
{
	struct cd_host h;
	int rv;

	if ((rv = host_check_new(s, c->host, &h, e)))
		return rv;
	if (cd__state_reserve(s, 1, 0, 0))
		return -ENOMEM;
	cd__state_host_insert(s, &h);
	/* HostAdd carries no time of its own: the record's last change is when it was made. */
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ADDED,
		  h.last_change_ms ? h.last_change_ms : cd__state_last_event_ms(s), h.id, "",
		  "host %s (%llu) added at vmk0 %s", h.name, (unsigned long long)h.id, h.vmk0);
	return 0;
}

static int host_join(struct cd_state *s, const Keel__Cluster__HostJoin *c, struct kb_errmsg *e)
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
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ADDED,
		  h.last_change_ms ? h.last_change_ms : s_to_ms(c->at_s), h.id, "",
		  "host %s (%llu) joined at vmk0 %s", h.name, (unsigned long long)h.id, h.vmk0);
	return 0;
}

static int token_add(struct cd_state *s, const Keel__Cluster__TokenAdd *c, struct kb_errmsg *e)
{
	const struct cd_join_token *old;
	struct cd_join_token t;
	int rv;

	if ((rv = cd__token_from_pb(c->token, &t, e)))
		return rv;
	if (t.rec.used) {
		kb_errmsg_setf(e, "a new join token cannot be used already");
		return -EINVAL;
	}
	if (t.rec.expires_s <= c->at_s) {
		kb_errmsg_setf(e, "join token expires at %llu, not after %llu",
			       (unsigned long long)t.rec.expires_s, (unsigned long long)c->at_s);
		return -EINVAL;
	}
	if (t.rec.expires_s - c->at_s > CD_TOKEN_TTL_MAX) {
		kb_errmsg_setf(e, "join token lifetime of %llu s exceeds %d",
			       (unsigned long long)(t.rec.expires_s - c->at_s), CD_TOKEN_TTL_MAX);
		return -EINVAL;
	}
	/* A record expired at at_s is dropped below, so its id counts as free. */
	old = cd_state_token(s, t.rec.id);
	if (old != NULL && old->rec.expires_s > c->at_s) {
		kb_errmsg_setf(e, "a join token with this id already exists");
		return KB_EEXIST;
	}
	if (cd__state_tokens_live(s, c->at_s) >= CD_TOKENS_MAX) {
		kb_errmsg_setf(e, "the cluster already keeps %d join tokens", CD_TOKENS_MAX);
		return KB_ETOOBIG;
	}
	cd__state_tokens_prune(s, c->at_s);
	cd__state_token_insert(s, &t);
	return 0;
}

static int event_add(struct cd_state *s, const Keel__Cluster__EventAdd *c, struct kb_errmsg *e)
{
	const Keel__Cluster__Event *ev = c->event;
	int rv;

	if (ev == NULL) {
		kb_errmsg_setf(e, "event is missing");
		return -EINVAL;
	}
	if (ev->vm != NULL && ev->vm[0] != '\0' && (rv = cd__check_uuid(ev->vm, "event VM", e)))
		return rv;
	if ((rv = cd__check_event_message(ev->message, e)))
		return rv;
	add_event(s,
		  ev->kind == KEEL__CLUSTER__EVENT_KIND__EVENT_HA ||
			  ev->kind == KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION
		      ? ev->kind
		      : KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE,
		  ev->at_ms, ev->host, ev->vm, "%s", ev->message);
	return 0;
}

static int host_update(struct cd_state *s, const Keel__Cluster__HostUpdate *c, struct kb_errmsg *e)
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
		add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_STATE, c->at_ms, h->id, "",
			  "host %s: %s -> %s", h->name, state_name(old_state),
			  state_name(h->state));
	if (h->role != old_role)
		add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_ROLE, c->at_ms, h->id, "",
			  "host %s: raft role %s -> %s", h->name, role_name(old_role),
			  role_name(h->role));
	return 0;
}

static int host_remove(struct cd_state *s, const Keel__Cluster__HostRemove *c, struct kb_errmsg *e)
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
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_REMOVED, c->at_ms, c->id, "",
		  "host %s (%llu) removed", name, (unsigned long long)c->id);
	rules_drop(s, NULL, c->id);
	return 0;
}

static int vm_register(struct cd_state *s, const Keel__Cluster__VmRegister *c, struct kb_errmsg *e)
{
	struct cd_vm vm;
	int rv;

	if ((rv = cd__vm_from_pb(c->vm, &vm, e)))
		return rv;
	if (vm.ft_role != FT_NONE) {
		kb_errmsg_setf(e, "a VM is registered without FT; pair it with VmSetFt");
		return -EINVAL;
	}
	if (cd_state_vm(s, vm.uuid)) {
		kb_errmsg_setf(e, "VM %s is already registered", vm.uuid);
		return KB_EEXIST;
	}
	if (vm_by_path(s, vm.vmx_path)) {
		kb_errmsg_setf(e, "a VM with path %s is already registered", vm.vmx_path);
		return KB_EEXIST;
	}
	if ((rv = live_host(s, vm.owner, "owner", e)))
		return rv;
	if (s->n_vms >= CD_VMS_MAX) {
		kb_errmsg_setf(e, "the cluster already has %d VMs", CD_VMS_MAX);
		return KB_ETOOBIG;
	}
	if (cd__state_reserve(s, 0, 1, 0))
		return -ENOMEM;
	cd__state_vm_insert(s, &vm);
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_VM, cd__state_last_event_ms(s), vm.owner,
		  vm.uuid, "VM %s registered on host %s, epoch %llu", vm.name,
		  host_name(s, vm.owner), (unsigned long long)vm.epoch);
	return 0;
}

static int vm_unregister(struct cd_state *s, const Keel__Cluster__VmUnregister *c,
			 struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e), old;

	if (vm == NULL)
		return vm_err(c->uuid);
	if (cd_state_op_for_vm(s, vm->uuid)) {
		kb_errmsg_setf(e, "VM %s has an operation in flight", vm->uuid);
		return KB_ESTATE;
	}
	if (vm->ft_role != FT_NONE || ft_partner_of(s, vm->uuid)) {
		kb_errmsg_setf(e, "VM %s is part of an FT pair", vm->uuid);
		return KB_ESTATE;
	}
	old = *vm;
	cd__state_vm_remove(s, c->uuid);
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_VM, cd__state_last_event_ms(s), old.owner,
		  old.uuid, "VM %s unregistered from host %s", old.name, host_name(s, old.owner));
	rules_drop(s, old.uuid, 0);
	return 0;
}

static int vm_set_power(struct cd_state *s, const Keel__Cluster__VmSetPower *c, struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e);
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	if ((rv = cd__power_check(c->desired, e)))
		return rv;
	if (c->mem_mib > CD_VM_MEM_MAX || c->cpu_mhz > CD_VM_CPU_MAX) {
		kb_errmsg_setf(e, "VM %s: %llu MiB / %u MHz is out of range", vm->uuid,
			       (unsigned long long)c->mem_mib, c->cpu_mhz);
		return -EINVAL;
	}
	vm->desired_power = c->desired;
	if (c->mem_mib) {
		vm->mem_mib = c->mem_mib;
		vm->cpu_mhz = c->cpu_mhz;
	}
	return 0;
}

static const char *priority_word(int p)
{
	switch (p) {
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_DISABLED:
		return "disabled";
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOWEST:
		return "lowest";
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW:
		return "low";
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH:
		return "high";
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGHEST:
		return "highest";
	default:
		return "medium";
	}
}

/* Every restart-after VM must exist, once; then "VM X: restart priority P, restart after
 * A, B" (names; the list is cut at the event's size). */
static int vm_set_ha(struct cd_state *s, const Keel__Cluster__VmSetHa *c, struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e), tmp;
	char after[CD_EVENT_MSG_MAX + 1] = "";
	size_t off = 0;
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	tmp = *vm;
	if ((rv = cd__ha_from_pb(c->ha, vm->uuid, &tmp, e)))
		return rv;
	for (unsigned i = 0; i < tmp.n_restart_after; i++) {
		const struct cd_vm *dep = cd_state_vm(s, tmp.restart_after[i]);

		if (dep == NULL) {
			kb_errmsg_setf(e, "VM %s: restart-after VM %s is not registered", vm->uuid,
				       tmp.restart_after[i]);
			return KB_ENOTFOUND;
		}
		for (unsigned j = 0; j < i; j++)
			if (strcmp(tmp.restart_after[j], tmp.restart_after[i]) == 0) {
				kb_errmsg_setf(e, "VM %s: restart-after VM %s is listed twice",
					       vm->uuid, dep->name);
				return -EINVAL;
			}
		if (off < sizeof(after))
			off += (size_t)snprintf(after + off, sizeof(after) - off, "%s%s",
						i ? ", " : ", restart after ", dep->name);
	}
	*vm = tmp;
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_VM,
		  c->at_ms ? c->at_ms : cd__state_last_event_ms(s), vm->owner, vm->uuid,
		  "VM %s: restart priority %s%s", vm->name, priority_word(vm->priority), after);
	return 0;
}

static int vm_set_ft(struct cd_state *s, const Keel__Cluster__VmSetFt *c, struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e);
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	if ((rv = cd__ft_role_check(c->role, e)))
		return rv;
	if (c->role == FT_NONE) {
		if (c->peer != NULL && c->peer[0] != '\0') {
			kb_errmsg_setf(e, "FT peer set without an FT role");
			return -EINVAL;
		}
		vm->ft_role = FT_NONE;
		vm->ft_peer[0] = '\0';
		return 0;
	}
	if ((rv = cd__check_uuid(c->peer, "FT peer", e)))
		return rv;
	if (strcmp(c->peer, vm->uuid) == 0) {
		kb_errmsg_setf(e, "a VM cannot be its own FT peer");
		return -EINVAL;
	}
	if (cd_state_vm(s, c->peer) == NULL) {
		kb_errmsg_setf(e, "FT peer %s is not registered", c->peer);
		return KB_ENOTFOUND;
	}
	vm->ft_role = c->role;
	strcpy(vm->ft_peer, c->peer);
	return 0;
}

/* A migration's switchover (c->op set): the operation must be the VM's migration from its
 * owner at its epoch to the new owner at the next epoch. */
static int check_switchover(const struct cd_state *s, const struct cd_vm *vm,
			    const Keel__Cluster__VmChangeOwner *c, struct kb_errmsg *e)
{
	const struct cd_op *op = cd_state_op(s, c->op);

	if (op == NULL) {
		kb_errmsg_setf(e, "VM %s: migration %llu is not in flight (ended or aborted)",
			       vm->uuid, (unsigned long long)c->op);
		return KB_ENOTFOUND;
	}
	if (op->kind != KEEL__CLUSTER__OP_KIND__OP_MIGRATE || strcmp(op->vm, vm->uuid) != 0 ||
	    op->destination != c->new_owner) {
		kb_errmsg_setf(e, "operation %llu is not the migration of VM %s to host %llu",
			       (unsigned long long)c->op, vm->uuid,
			       (unsigned long long)c->new_owner);
		return KB_ESTATE;
	}
	if (op->source != vm->owner || op->epoch != vm->epoch || c->new_epoch != vm->epoch + 1) {
		kb_errmsg_setf(e,
			       "VM %s: migration %llu started from host %llu at epoch %llu, the VM "
			       "is now on host %llu at epoch %llu",
			       vm->uuid, (unsigned long long)c->op, (unsigned long long)op->source,
			       (unsigned long long)op->epoch, (unsigned long long)vm->owner,
			       (unsigned long long)vm->epoch);
		return KB_ESTATE;
	}
	return 0;
}

static int vm_change_owner(struct cd_state *s, const Keel__Cluster__VmChangeOwner *c,
			   struct kb_errmsg *e)
{
	struct cd_vm *vm = find_vm(s, c->uuid, e);
	const struct cd_op *op;
	uint64_t old_owner;
	int rv;

	if (vm == NULL)
		return vm_err(c->uuid);
	if ((rv = live_host(s, c->new_owner, "new owner", e)))
		return rv;
	if (c->new_epoch <= vm->epoch) {
		kb_errmsg_setf(e, "VM %s: epoch %llu is not above the current epoch %llu", vm->uuid,
			       (unsigned long long)c->new_epoch, (unsigned long long)vm->epoch);
		return KB_ESTATE;
	}
	if (c->op && (rv = check_switchover(s, vm, c, e)))
		return rv;
	old_owner = vm->owner;
	if (c->new_owner != old_owner) {
		/* The command carries no time: its event's, or its migration's start if later. */
		const struct cd_op *mig = c->op ? cd_state_op(s, c->op) : NULL;
		uint64_t at = cd__state_last_event_ms(s);

		if (mig && mig->started_at_ms > at)
			at = mig->started_at_ms;
		vm->last_moved_ms = at;
	}
	vm->owner = c->new_owner;
	vm->epoch = c->new_epoch;
	/* Host names, not ids: two names and the VM's fit the message limit. */
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_VM, cd__state_last_event_ms(s), vm->owner,
		  vm->uuid, "VM %s: owner %s -> %s, epoch %llu%s", vm->name,
		  host_name(s, old_owner), host_name(s, vm->owner), (unsigned long long)vm->epoch,
		  c->op ? " (migrated)" : "");
	op = cd_state_op_for_vm(s, vm->uuid);
	if (op) {
		uint64_t id = op->id;

		if (!c->op && op->kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE)
			add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION,
				  cd__state_last_event_ms(s), op->source, vm->uuid,
				  "migration of VM %s to %s ended: the VM changed owner", vm->name,
				  host_name(s, op->destination));
		cd__state_op_remove(s, id);
	}
	return 0;
}

static int op_begin(struct cd_state *s, const Keel__Cluster__OpBegin *c, struct kb_errmsg *e)
{
	const struct cd_vm *vm;
	struct cd_op op;
	int rv;

	if ((rv = cd__op_from_pb(c->op, &op, e)))
		return rv;
	if (cd_state_op(s, op.id)) {
		kb_errmsg_setf(e, "operation %llu already exists", (unsigned long long)op.id);
		return KB_EEXIST;
	}
	vm = cd_state_vm(s, op.vm);
	if (vm == NULL) {
		kb_errmsg_setf(e, "VM %s is not registered", op.vm);
		return KB_ENOTFOUND;
	}
	if (cd_state_op_for_vm(s, op.vm)) {
		kb_errmsg_setf(e, "VM %s already has an operation in flight", op.vm);
		return KB_ESTATE;
	}
	if (op.epoch != vm->epoch) {
		kb_errmsg_setf(e, "operation epoch %llu is not the VM's epoch %llu",
			       (unsigned long long)op.epoch, (unsigned long long)vm->epoch);
		return KB_ESTATE;
	}
	if ((rv = live_host(s, op.destination, "destination", e)))
		return rv;
	if (op.source != 0 && cd_state_host(s, op.source) == NULL) {
		kb_errmsg_setf(e, "source host %llu does not exist", (unsigned long long)op.source);
		return KB_ENOTFOUND;
	}
	if (s->n_ops >= CD_OPS_MAX) {
		kb_errmsg_setf(e, "%d operations are already in flight", CD_OPS_MAX);
		return KB_ETOOBIG;
	}
	if (op.kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE &&
	    (op.source != vm->owner || op.destination == vm->owner)) {
		kb_errmsg_setf(e, "a migration of VM %s must go from its owner to another host",
			       vm->name);
		return -EINVAL;
	}
	if (cd__state_reserve(s, 0, 0, 1))
		return -ENOMEM;
	cd__state_op_insert(s, &op);
	if (op.kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE)
		add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION, cd__state_last_event_ms(s),
			  op.source, vm->uuid, "migration of VM %s from %s to %s began", vm->name,
			  host_name(s, op.source), host_name(s, op.destination));
	return 0;
}

static int op_advance(struct cd_state *s, const Keel__Cluster__OpAdvance *c, struct kb_errmsg *e)
{
	struct cd_op *op = cd__state_op_mut(s, c->id);

	if (op == NULL) {
		kb_errmsg_setf(e, "operation %llu does not exist", (unsigned long long)c->id);
		return KB_ENOTFOUND;
	}
	if (c->phase <= op->phase) {
		kb_errmsg_setf(e, "operation %llu: phase %u is not above the current phase %u",
			       (unsigned long long)c->id, c->phase, op->phase);
		return KB_ESTATE;
	}
	op->phase = c->phase;
	return 0;
}

#define OP_REASON_MAX 160 /* bytes of an OpEnd reason: it goes into an event */

static int op_end(struct cd_state *s, const Keel__Cluster__OpEnd *c, struct kb_errmsg *e)
{
	const struct cd_op *op = cd_state_op(s, c->id);
	const struct cd_vm *vm;

	if (op == NULL) {
		kb_errmsg_setf(e, "operation %llu does not exist", (unsigned long long)c->id);
		return KB_ENOTFOUND;
	}
	if (c->reason && strlen(c->reason) > OP_REASON_MAX) {
		kb_errmsg_setf(e, "operation %llu: the reason is over %d bytes",
			       (unsigned long long)c->id, OP_REASON_MAX);
		return -EINVAL;
	}
	for (const char *r = c->reason; r && *r; r++) {
		if (*r < 0x20 || *r > 0x7e) {
			kb_errmsg_setf(e, "operation %llu: the reason is not printable ASCII",
				       (unsigned long long)c->id);
			return -EINVAL;
		}
	}
	vm = cd_state_vm(s, op->vm);
	if (op->kind == KEEL__CLUSTER__OP_KIND__OP_MIGRATE && vm)
		add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION, cd__state_last_event_ms(s),
			  op->source, op->vm, "migration of VM %s to %s ended%s%s", vm->name,
			  host_name(s, op->destination), c->reason && c->reason[0] ? ": " : "",
			  c->reason ? c->reason : "");
	cd__state_op_remove(s, c->id);
	return 0;
}

static int host_set_maintenance(struct cd_state *s, const Keel__Cluster__HostSetMaintenance *c,
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
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_HOST_STATE,
		  c->at_ms ? c->at_ms : cd__state_last_event_ms(s), h->id, "",
		  "host %s %s maintenance mode", h->name, c->enter ? "entered" : "left");
	return 0;
}

/* The blob was reserved by the caller (cd__command_auth_bytes()). */
static int auth_set(struct cd_state *s, const Keel__Cluster__AuthSet *c, struct kb_errmsg *e)
{
	int rv;

	if ((rv = cd__check_auth_blob(&c->blob, e)))
		return rv;
	if (c->expect_version != s->auth.version) {
		kb_errmsg_setf(e,
			       "the users changed meanwhile: the cluster holds version %llu, "
			       "not %llu",
			       (unsigned long long)s->auth.version,
			       (unsigned long long)c->expect_version);
		return -ESTALE;
	}
	if (cd__state_auth_reserve(s, c->blob.len)) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	memcpy(s->auth.blob, c->blob.data, c->blob.len);
	s->auth.len = c->blob.len;
	s->auth.version++;
	s->auth.host = c->host;
	s->auth.at_ms = c->at_ms;
	/* Never the blob's content: it holds password hashes. */
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
		  c->at_ms ? c->at_ms : cd__state_last_event_ms(s), c->host, "",
		  "users and permissions changed by host %s (version %llu)", host_name(s, c->host),
		  (unsigned long long)s->auth.version);
	return 0;
}

static const char *rule_words(int kind, bool mandatory)
{
	switch (kind) {
	case KEEL__CLUSTER__RULE_KIND__RULE_AFFINITY:
		return mandatory ? "must run together" : "should run together";
	case KEEL__CLUSTER__RULE_KIND__RULE_ANTI_AFFINITY:
		return mandatory ? "must run apart" : "should run apart";
	case KEEL__CLUSTER__RULE_KIND__RULE_HOST_AFFINITY:
		return mandatory ? "must run on the host group" : "should run on the host group";
	default:
		return mandatory ? "must not run on the host group"
				 : "should not run on the host group";
	}
}

/* Every VM registered, every host of the group present and not left; the rule limit. */
static int rule_set(struct cd_state *s, const Keel__Cluster__RuleSet *c, struct kb_errmsg *e)
{
	const struct cd_rule *old;
	char group[24] = "";
	struct cd_rule r;
	int rv;

	if ((rv = cd__rule_from_pb(c->rule, &r, e)))
		return rv;
	for (unsigned i = 0; i < r.n_vms; i++) {
		if (cd_state_vm(s, r.vms[i]) == NULL) {
			kb_errmsg_setf(e, "rule %s: VM %s is not registered", r.name, r.vms[i]);
			return KB_ENOTFOUND;
		}
	}
	for (unsigned i = 0; i < r.n_hosts; i++)
		if ((rv = live_host(s, r.hosts[i], "rule's", e))) {
			kb_errmsg_wrapf(e, "rule %s", r.name);
			return rv;
		}
	old = cd_state_rule(s, r.name);
	if (old == NULL && s->n_rules >= CD_RULES_MAX) {
		kb_errmsg_setf(e, "the cluster already has %d rules", CD_RULES_MAX);
		return KB_ETOOBIG;
	}
	if (r.n_hosts)
		snprintf(group, sizeof(group), " (%u hosts)", r.n_hosts);
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
		  c->at_ms ? c->at_ms : cd__state_last_event_ms(s), 0, "",
		  "rule %s %s: %u VMs %s%s", r.name, old ? "replaced" : "added", r.n_vms,
		  rule_words(r.kind, r.mandatory), group);
	cd__state_rule_put(s, &r);
	return 0;
}

static int rule_remove(struct cd_state *s, const Keel__Cluster__RuleRemove *c, struct kb_errmsg *e)
{
	char name[CD_NAME_MAX + 1];
	int rv;

	if ((rv = cd__check_name(c->name, "rule name", e)))
		return rv;
	if (cd_state_rule(s, c->name) == NULL) {
		kb_errmsg_setf(e, "no rule named %s", c->name);
		return KB_ENOTFOUND;
	}
	strcpy(name, c->name);
	cd__state_rule_remove(s, name);
	add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
		  c->at_ms ? c->at_ms : cd__state_last_event_ms(s), 0, "", "rule %s removed", name);
	return 0;
}

int cd__command_apply(struct cd_state *s, const Keel__Cluster__Command *c, struct kb_errmsg *e)
{
	int rv;

	/* The token array and event ring (any command may add an event). */
	if (cd__state_reserve(s, 0, 0, 0)) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	switch (c->cmd_case) {
	case KEEL__CLUSTER__COMMAND__CMD_SET_CONFIG:
		rv = set_config(s, c->set_config, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_ADD:
		rv = host_add(s, c->host_add, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_UPDATE:
		rv = host_update(s, c->host_update, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_REMOVE:
		rv = host_remove(s, c->host_remove, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_REGISTER:
		rv = vm_register(s, c->vm_register, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_UNREGISTER:
		rv = vm_unregister(s, c->vm_unregister, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_SET_POWER:
		rv = vm_set_power(s, c->vm_set_power, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_SET_HA:
		rv = vm_set_ha(s, c->vm_set_ha, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_SET_FT:
		rv = vm_set_ft(s, c->vm_set_ft, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_CHANGE_OWNER:
		rv = vm_change_owner(s, c->vm_change_owner, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_OP_BEGIN:
		rv = op_begin(s, c->op_begin, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_OP_ADVANCE:
		rv = op_advance(s, c->op_advance, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_OP_END:
		rv = op_end(s, c->op_end, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_TOKEN_ADD:
		rv = token_add(s, c->token_add, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_JOIN:
		rv = host_join(s, c->host_join, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_EVENT_ADD:
		rv = event_add(s, c->event_add, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_SET_MAINTENANCE:
		rv = host_set_maintenance(s, c->host_set_maintenance, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_AUTH_SET:
		rv = auth_set(s, c->auth_set, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_RULE_SET:
		rv = rule_set(s, c->rule_set, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_RULE_REMOVE:
		rv = rule_remove(s, c->rule_remove, e);
		break;
	default:
		kb_errmsg_setf(e, "empty or unknown command");
		rv = -EINVAL;
		break;
	}
	if (rv == 0)
		s->applied++;
	return rv;
}

void cd__command_inserts(const Keel__Cluster__Command *c, unsigned *hosts, unsigned *vms,
			 unsigned *ops)
{
	*hosts += c->cmd_case == KEEL__CLUSTER__COMMAND__CMD_HOST_ADD ||
		  c->cmd_case == KEEL__CLUSTER__COMMAND__CMD_HOST_JOIN;
	*vms += c->cmd_case == KEEL__CLUSTER__COMMAND__CMD_VM_REGISTER;
	*ops += c->cmd_case == KEEL__CLUSTER__COMMAND__CMD_OP_BEGIN;
}

size_t cd__command_auth_bytes(const Keel__Cluster__Command *c)
{
	if (c->cmd_case != KEEL__CLUSTER__COMMAND__CMD_AUTH_SET || c->auth_set->blob.len >
									     CD_AUTH_BLOB_MAX)
		return 0;
	return c->auth_set->blob.len;
}

static int cmp_path(const void *a, const void *b)
{
	const struct cd_vm *const *x = a, *const *y = b;

	return strcmp((*x)->vmx_path, (*y)->vmx_path);
}

/* Unique .vmx paths, by sorting: O(n log n) for the largest states. */
static int check_paths(const struct cd_state *s, struct kb_errmsg *e)
{
	const struct cd_vm **v;
	int rv = 0;

	if (s->n_vms < 2)
		return 0;
	v = kb_calloc(s->n_vms, sizeof(*v));
	if (v == NULL)
		return -ENOMEM;
	for (unsigned i = 0; i < s->n_vms; i++)
		v[i] = &s->vms[i];
	qsort(v, s->n_vms, sizeof(*v), cmp_path);
	for (unsigned i = 1; i < s->n_vms && rv == 0; i++) {
		if (strcmp(v[i]->vmx_path, v[i - 1]->vmx_path) == 0) {
			kb_errmsg_setf(e, "VM %s: path shared with another VM", v[i]->uuid);
			rv = KB_EPROTO;
		}
	}
	kb_free(v);
	return rv;
}

int cd__state_check(const struct cd_state *s, struct kb_errmsg *e)
{
	int rv;

	if (s->n_hosts > CD_HOSTS_MAX || s->n_vms > CD_VMS_MAX || s->n_ops > CD_OPS_MAX ||
	    s->n_tokens > CD_TOKENS_MAX || s->n_events > CD_EVENTS_MAX) {
		kb_errmsg_setf(e, "state exceeds the host, VM, operation, token or event limits");
		return KB_EPROTO;
	}
	for (unsigned i = 1; i < s->n_tokens; i++) {
		if (memcmp(s->tokens[i].rec.id, s->tokens[i - 1].rec.id, CD_TOKEN_ID_SIZE) <= 0) {
			kb_errmsg_setf(e, "join token %u duplicated or out of order", i);
			return KB_EPROTO;
		}
	}
	if ((s->auth.version == 0) != (s->auth.len == 0) || s->auth.len > CD_AUTH_BLOB_MAX) {
		kb_errmsg_setf(e, "auth store version %llu with %zu bytes",
			       (unsigned long long)s->auth.version, s->auth.len);
		return KB_EPROTO;
	}
	if (s->next_event_seq == 0) {
		kb_errmsg_setf(e, "next event seq 0");
		return KB_EPROTO;
	}
	for (unsigned i = 0; i < s->n_events; i++) {
		const struct cd_event *ev = cd_state_event_at(s, i);

		if (ev->seq == 0 || ev->seq >= s->next_event_seq ||
		    (i > 0 && ev->seq <= cd_state_event_at(s, i - 1)->seq)) {
			kb_errmsg_setf(e, "event %llu out of order or not below the next seq %llu",
				       (unsigned long long)ev->seq,
				       (unsigned long long)s->next_event_seq);
			return KB_EPROTO;
		}
	}
	for (unsigned i = 0; i < s->n_hosts; i++) {
		const struct cd_host *h = &s->hosts[i];

		if (i > 0 && h->id <= s->hosts[i - 1].id) {
			kb_errmsg_setf(e, "host %llu duplicated or out of order",
				       (unsigned long long)h->id);
			return KB_EPROTO;
		}
		if (cd_state_host_by_name(s, h->name) != h || host_by_vmk0(s, h->vmk0) != h) {
			kb_errmsg_setf(e, "host %llu: name or vmk0 shared with another host",
				       (unsigned long long)h->id);
			return KB_EPROTO;
		}
	}
	for (unsigned i = 0; i < s->n_vms; i++) {
		const struct cd_vm *vm = &s->vms[i];

		if (i > 0 && strcmp(vm->uuid, s->vms[i - 1].uuid) <= 0) {
			kb_errmsg_setf(e, "VM %s duplicated or out of order", vm->uuid);
			return KB_EPROTO;
		}
		if (cd_state_host(s, vm->owner) == NULL) {
			kb_errmsg_setf(e, "VM %s: owner %llu does not exist", vm->uuid,
				       (unsigned long long)vm->owner);
			return KB_EPROTO;
		}
		if (vm->ft_role != FT_NONE &&
		    (strcmp(vm->ft_peer, vm->uuid) == 0 || cd_state_vm(s, vm->ft_peer) == NULL)) {
			kb_errmsg_setf(e, "VM %s: FT peer %s does not exist", vm->uuid,
				       vm->ft_peer);
			return KB_EPROTO;
		}
	}
	if ((rv = check_paths(s, e)))
		return rv;
	if (s->n_rules > CD_RULES_MAX) {
		kb_errmsg_setf(e, "%u rules exceed %d", s->n_rules, CD_RULES_MAX);
		return KB_EPROTO;
	}
	for (unsigned i = 0; i < s->n_rules; i++) {
		const struct cd_rule *r = &s->rules[i];

		if (i > 0 && strcmp(r->name, s->rules[i - 1].name) <= 0) {
			kb_errmsg_setf(e, "rule %s duplicated or out of order", r->name);
			return KB_EPROTO;
		}
		for (unsigned j = 0; j < r->n_vms; j++)
			if (cd_state_vm(s, r->vms[j]) == NULL) {
				kb_errmsg_setf(e, "rule %s: VM %s does not exist", r->name,
					       r->vms[j]);
				return KB_EPROTO;
			}
		for (unsigned j = 0; j < r->n_hosts; j++)
			if (cd_state_host(s, r->hosts[j]) == NULL) {
				kb_errmsg_setf(e, "rule %s: host %llu does not exist", r->name,
					       (unsigned long long)r->hosts[j]);
				return KB_EPROTO;
			}
	}
	for (unsigned i = 0; i < s->n_ops; i++) {
		const struct cd_op *op = &s->ops[i];

		if (i > 0 && op->id <= s->ops[i - 1].id) {
			kb_errmsg_setf(e, "operation %llu duplicated or out of order",
				       (unsigned long long)op->id);
			return KB_EPROTO;
		}
		if (cd_state_vm(s, op->vm) == NULL || cd_state_op_for_vm(s, op->vm) != op) {
			kb_errmsg_setf(e, "operation %llu: VM %s missing or busy twice",
				       (unsigned long long)op->id, op->vm);
			return KB_EPROTO;
		}
		if (cd_state_host(s, op->destination) == NULL ||
		    (op->source != 0 && cd_state_host(s, op->source) == NULL)) {
			kb_errmsg_setf(e, "operation %llu: a host does not exist",
				       (unsigned long long)op->id);
			return KB_EPROTO;
		}
	}
	return 0;
}
