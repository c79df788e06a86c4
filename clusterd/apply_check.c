/*
 * The invariants of a replicated state (cd__state_check, apply.h): what every command
 * keeps, checked on a restored snapshot before it replaces the state. A state that breaks
 * one is refused with KB_EPROTO and e naming the first problem found; -ENOMEM when the
 * check of unique paths cannot allocate.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/apply_int.h"
#include "lib/heap.h"

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
		if (cd_state_host_by_name(s, h->name) != h ||
		    cd__apply_host_by_vmk0(s, h->vmk0) != h) {
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
		if ((vm->ft.secondary && cd_state_host(s, vm->ft.secondary) == NULL) ||
		    (vm->ft.preferred && cd_state_host(s, vm->ft.preferred) == NULL)) {
			kb_errmsg_setf(e, "VM %s: FT host %llu does not exist", vm->uuid,
				       (unsigned long long)(vm->ft.secondary ? vm->ft.secondary
									     : vm->ft.preferred));
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
