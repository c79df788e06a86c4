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
 *
 * This file holds the dispatch (cd__command_apply), the helpers the handlers share
 * (apply_int.h) and the cluster-wide commands: SetConfig, TokenAdd, EventAdd, AuthSet,
 * RuleSet and RuleRemove. The host commands are in apply_host.c, the VM and operation
 * commands in apply_vm.c, the invariants of a restored state in apply_check.c.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/apply_int.h"
#include "clusterd/codec.h"

/* ---- helpers shared by the handlers (apply_int.h) ---------------------------------------- */

static const char *isolation_name(int response)
{
	static const char *const names[] = {"unspecified", "power off", "shutdown",
					    "leave powered on"};

	return response >= 0 && response < (int)(sizeof(names) / sizeof(names[0])) ? names[response]
										   : "?";
}

const char *cd__apply_host_name(const struct cd_state *s, uint64_t id)
{
	const struct cd_host *h = cd_state_host(s, id);

	return h ? h->name : "?";
}

void cd__apply_add_event(struct cd_state *s, int kind, uint64_t at_ms, uint64_t host,
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

const struct cd_host *cd__apply_host_by_vmk0(const struct cd_state *s, const char *addr)
{
	for (unsigned i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i].vmk0, addr) == 0)
			return &s->hosts[i];
	return NULL;
}

/* The host a VM or operation may name: exists and has not left. */
int cd__apply_live_host(const struct cd_state *s, uint64_t id, const char *what,
			struct kb_errmsg *e)
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
void cd__apply_rules_drop(struct cd_state *s, const char *uuid, uint64_t host)
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
			cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
					    cd__state_last_event_ms(s), host, uuid,
					    "rule %s removed: %s", name,
					    uuid ? "too few of its VMs are registered"
						 : "no host of its host group is left");
			continue;
		}
		i++;
	}
}

/* ---- cluster-wide commands --------------------------------------------------------------- */

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
	cd__apply_add_event(
	    s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
	    c->at_ms ? c->at_ms : cd__state_last_event_ms(s), 0, "",
	    "cluster %s configured: failure timeout %u ms, isolation response %s, HA %s%s",
	    cfg.name, cfg.failure_timeout_ms, isolation_name(cfg.isolation_response),
	    cfg.ha_disabled ? "off" : "on",
	    cfg.admission_failures  ? ", admission: tolerate host failures"
	    : cfg.admission_percent ? ", admission: keep a percentage free"
				    : "");
	if (drs_changed)
		cd__apply_add_event(
		    s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG, cd__state_last_event_ms(s),
		    0, "",
		    "DRS: %s, migration threshold %u, every %u s, hold %u s, at most %u "
		    "moves a pass",
		    automation_name(cfg.drs.automation), cfg.drs.threshold, cfg.drs.interval_s,
		    cfg.drs.hold_s, cfg.drs.max_moves);
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
	cd__apply_add_event(s,
			    ev->kind == KEEL__CLUSTER__EVENT_KIND__EVENT_HA ||
				    ev->kind == KEEL__CLUSTER__EVENT_KIND__EVENT_MIGRATION ||
				    ev->kind == KEEL__CLUSTER__EVENT_KIND__EVENT_FT
				? ev->kind
				: KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE,
			    ev->at_ms, ev->host, ev->vm, "%s", ev->message);
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
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
			    c->at_ms ? c->at_ms : cd__state_last_event_ms(s), c->host, "",
			    "users and permissions changed by host %s (version %llu)",
			    cd__apply_host_name(s, c->host), (unsigned long long)s->auth.version);
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
		if ((rv = cd__apply_live_host(s, r.hosts[i], "rule's", e))) {
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
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
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
	cd__apply_add_event(s, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
			    c->at_ms ? c->at_ms : cd__state_last_event_ms(s), 0, "",
			    "rule %s removed", name);
	return 0;
}

/* ---- the dispatch ------------------------------------------------------------------------ */

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
		rv = cd__apply_host_add(s, c->host_add, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_UPDATE:
		rv = cd__apply_host_update(s, c->host_update, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_REMOVE:
		rv = cd__apply_host_remove(s, c->host_remove, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_REGISTER:
		rv = cd__apply_vm_register(s, c->vm_register, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_UNREGISTER:
		rv = cd__apply_vm_unregister(s, c->vm_unregister, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_SET_POWER:
		rv = cd__apply_vm_set_power(s, c->vm_set_power, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_SET_HA:
		rv = cd__apply_vm_set_ha(s, c->vm_set_ha, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_SET_FT:
		rv = cd__apply_vm_set_ft(s, c->vm_set_ft, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_VM_CHANGE_OWNER:
		rv = cd__apply_vm_change_owner(s, c->vm_change_owner, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_OP_BEGIN:
		rv = cd__apply_op_begin(s, c->op_begin, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_OP_ADVANCE:
		rv = cd__apply_op_advance(s, c->op_advance, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_OP_END:
		rv = cd__apply_op_end(s, c->op_end, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_TOKEN_ADD:
		rv = token_add(s, c->token_add, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_JOIN:
		rv = cd__apply_host_join(s, c->host_join, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_EVENT_ADD:
		rv = event_add(s, c->event_add, e);
		break;
	case KEEL__CLUSTER__COMMAND__CMD_HOST_SET_MAINTENANCE:
		rv = cd__apply_host_set_maintenance(s, c->host_set_maintenance, e);
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
	if (c->cmd_case != KEEL__CLUSTER__COMMAND__CMD_AUTH_SET ||
	    c->auth_set->blob.len > CD_AUTH_BLOB_MAX)
		return 0;
	return c->auth_set->blob.len;
}
