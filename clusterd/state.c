/*
 * The in-memory replicated state: four sorted arrays, an event ring and the cluster config.
 *
 * Lookups are binary searches; inserts and removals move the tail of an array, which is
 * cheap at the sizes the limits allow and keeps iteration order (and so snapshots)
 * independent of the order in which things were added. Growth happens only in
 * cd__state_reserve(), so a command that has reserved its room cannot fail half-way. The
 * token array and the event ring have fixed sizes and are allocated once, by the first
 * reservation: any command may add events and a batch may add many tokens.
 */
#include <errno.h>
#include <string.h>

#include "clusterd/state.h"
#include "lib/heap.h"

void cd_state_init(struct cd_state *s)
{
	memset(s, 0, sizeof(*s));
	s->next_event_seq = 1;
}

void cd_state_close(struct cd_state *s)
{
	kb_free(s->hosts);
	kb_free(s->vms);
	kb_free(s->ops);
	kb_free(s->tokens);
	kb_free(s->events);
	kb_free(s->auth.blob);
	kb_free(s->rules);
	memset(s, 0, sizeof(*s));
}

/* Index of the first host with id >= key. */
static unsigned host_pos(const struct cd_state *s, uint64_t id)
{
	unsigned lo = 0, hi = s->n_hosts;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (s->hosts[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static unsigned vm_pos(const struct cd_state *s, const char *uuid)
{
	unsigned lo = 0, hi = s->n_vms;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (strcmp(s->vms[mid].uuid, uuid) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static unsigned op_pos(const struct cd_state *s, uint64_t id)
{
	unsigned lo = 0, hi = s->n_ops;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (s->ops[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static unsigned token_pos(const struct cd_state *s, const uint8_t *id)
{
	unsigned lo = 0, hi = s->n_tokens;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (memcmp(s->tokens[mid].rec.id, id, CD_TOKEN_ID_SIZE) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

struct cd_host *cd__state_host_mut(struct cd_state *s, uint64_t id)
{
	unsigned i = host_pos(s, id);

	return i < s->n_hosts && s->hosts[i].id == id ? &s->hosts[i] : NULL;
}

struct cd_vm *cd__state_vm_mut(struct cd_state *s, const char *uuid)
{
	unsigned i = vm_pos(s, uuid);

	return i < s->n_vms && strcmp(s->vms[i].uuid, uuid) == 0 ? &s->vms[i] : NULL;
}

struct cd_op *cd__state_op_mut(struct cd_state *s, uint64_t id)
{
	unsigned i = op_pos(s, id);

	return i < s->n_ops && s->ops[i].id == id ? &s->ops[i] : NULL;
}

struct cd_join_token *cd__state_token_mut(struct cd_state *s, const uint8_t *id)
{
	unsigned i = token_pos(s, id);

	return i < s->n_tokens && memcmp(s->tokens[i].rec.id, id, CD_TOKEN_ID_SIZE) == 0
		   ? &s->tokens[i]
		   : NULL;
}

const struct cd_host *cd_state_host(const struct cd_state *s, uint64_t id)
{
	return cd__state_host_mut((struct cd_state *)s, id);
}

const struct cd_host *cd_state_host_by_name(const struct cd_state *s, const char *name)
{
	for (unsigned i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i].name, name) == 0)
			return &s->hosts[i];
	return NULL;
}

const struct cd_vm *cd_state_vm(const struct cd_state *s, const char *uuid)
{
	return cd__state_vm_mut((struct cd_state *)s, uuid);
}

const struct cd_op *cd_state_op(const struct cd_state *s, uint64_t id)
{
	return cd__state_op_mut((struct cd_state *)s, id);
}

const struct cd_op *cd_state_op_for_vm(const struct cd_state *s, const char *uuid)
{
	for (unsigned i = 0; i < s->n_ops; i++)
		if (strcmp(s->ops[i].vm, uuid) == 0)
			return &s->ops[i];
	return NULL;
}

unsigned cd_state_n_hosts(const struct cd_state *s)
{
	return s->n_hosts;
}

const struct cd_host *cd_state_host_at(const struct cd_state *s, unsigned i)
{
	return i < s->n_hosts ? &s->hosts[i] : NULL;
}

unsigned cd_state_n_vms(const struct cd_state *s)
{
	return s->n_vms;
}

const struct cd_vm *cd_state_vm_at(const struct cd_state *s, unsigned i)
{
	return i < s->n_vms ? &s->vms[i] : NULL;
}

unsigned cd_state_n_ops(const struct cd_state *s)
{
	return s->n_ops;
}

const struct cd_op *cd_state_op_at(const struct cd_state *s, unsigned i)
{
	return i < s->n_ops ? &s->ops[i] : NULL;
}

unsigned cd_state_n_vms_owned(const struct cd_state *s, uint64_t host)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->n_vms; i++)
		n += s->vms[i].owner == host;
	return n;
}

const struct cd_join_token *cd_state_token(const struct cd_state *s, const uint8_t *id)
{
	return cd__state_token_mut((struct cd_state *)s, id);
}

unsigned cd_state_n_tokens(const struct cd_state *s)
{
	return s->n_tokens;
}

const struct cd_join_token *cd_state_token_at(const struct cd_state *s, unsigned i)
{
	return i < s->n_tokens ? &s->tokens[i] : NULL;
}

unsigned cd_state_n_events(const struct cd_state *s)
{
	return s->n_events;
}

const struct cd_event *cd_state_event_at(const struct cd_state *s, unsigned i)
{
	return i < s->n_events ? &s->events[(s->ev_head + i) % CD_EVENTS_MAX] : NULL;
}

unsigned cd_state_events_since(const struct cd_state *s, uint64_t since)
{
	unsigned lo = 0, hi = s->n_events;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (cd_state_event_at(s, mid)->seq <= since)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Grows *arr (of elem-sized items, *cap allocated, n used) to hold n + more. */
static int grow(void **arr, unsigned *cap, unsigned n, unsigned more, size_t elem)
{
	unsigned want = n + more, ncap;
	void *p;

	if (want <= *cap)
		return 0;
	ncap = *cap ? *cap : 8;
	while (ncap < want)
		ncap *= 2;
	p = kb_realloc(*arr, (size_t)ncap * elem);
	if (p == NULL)
		return -ENOMEM;
	*arr = p;
	*cap = ncap;
	return 0;
}

int cd__state_reserve(struct cd_state *s, unsigned hosts, unsigned vms, unsigned ops)
{
	/* Each step either succeeds or leaves its array as it was; a partial success only
	 * leaves spare room behind, which changes nothing visible. */
	if (s->tokens == NULL && (s->tokens = kb_calloc(CD_TOKENS_MAX, sizeof(*s->tokens))) == NULL)
		return -ENOMEM;
	if (s->events == NULL && (s->events = kb_calloc(CD_EVENTS_MAX, sizeof(*s->events))) == NULL)
		return -ENOMEM;
	if (grow((void **)&s->hosts, &s->cap_hosts, s->n_hosts, hosts, sizeof(*s->hosts)) ||
	    grow((void **)&s->vms, &s->cap_vms, s->n_vms, vms, sizeof(*s->vms)) ||
	    grow((void **)&s->ops, &s->cap_ops, s->n_ops, ops, sizeof(*s->ops)) ||
	    grow((void **)&s->rules, &s->cap_rules, s->n_rules, 1, sizeof(*s->rules)))
		return -ENOMEM;
	return 0;
}

void cd__state_host_insert(struct cd_state *s, const struct cd_host *h)
{
	unsigned i = host_pos(s, h->id);

	memmove(&s->hosts[i + 1], &s->hosts[i], (s->n_hosts - i) * sizeof(*s->hosts));
	s->hosts[i] = *h;
	s->n_hosts++;
}

void cd__state_vm_insert(struct cd_state *s, const struct cd_vm *vm)
{
	unsigned i = vm_pos(s, vm->uuid);

	memmove(&s->vms[i + 1], &s->vms[i], (s->n_vms - i) * sizeof(*s->vms));
	s->vms[i] = *vm;
	s->n_vms++;
}

void cd__state_op_insert(struct cd_state *s, const struct cd_op *op)
{
	unsigned i = op_pos(s, op->id);

	memmove(&s->ops[i + 1], &s->ops[i], (s->n_ops - i) * sizeof(*s->ops));
	s->ops[i] = *op;
	s->n_ops++;
}

void cd__state_host_remove(struct cd_state *s, uint64_t id)
{
	unsigned i = host_pos(s, id);

	if (i >= s->n_hosts || s->hosts[i].id != id)
		return;
	memmove(&s->hosts[i], &s->hosts[i + 1], (s->n_hosts - i - 1) * sizeof(*s->hosts));
	s->n_hosts--;
}

void cd__state_vm_remove(struct cd_state *s, const char *uuid)
{
	unsigned i = vm_pos(s, uuid);

	if (i >= s->n_vms || strcmp(s->vms[i].uuid, uuid) != 0)
		return;
	memmove(&s->vms[i], &s->vms[i + 1], (s->n_vms - i - 1) * sizeof(*s->vms));
	s->n_vms--;
}

void cd__state_op_remove(struct cd_state *s, uint64_t id)
{
	unsigned i = op_pos(s, id);

	if (i >= s->n_ops || s->ops[i].id != id)
		return;
	memmove(&s->ops[i], &s->ops[i + 1], (s->n_ops - i - 1) * sizeof(*s->ops));
	s->n_ops--;
}

void cd__state_token_insert(struct cd_state *s, const struct cd_join_token *t)
{
	unsigned i = token_pos(s, t->rec.id);

	memmove(&s->tokens[i + 1], &s->tokens[i], (s->n_tokens - i) * sizeof(*s->tokens));
	s->tokens[i] = *t;
	s->n_tokens++;
}

void cd__state_tokens_prune(struct cd_state *s, uint64_t now_s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->n_tokens; i++)
		if (s->tokens[i].rec.expires_s > now_s)
			s->tokens[n++] = s->tokens[i];
	s->n_tokens = n;
}

unsigned cd__state_tokens_live(const struct cd_state *s, uint64_t now_s)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->n_tokens; i++)
		n += s->tokens[i].rec.expires_s > now_s;
	return n;
}

void cd__state_event_push(struct cd_state *s, const struct cd_event *ev)
{
	struct cd_event *slot;

	if (s->n_events == CD_EVENTS_MAX) {
		s->ev_head = (s->ev_head + 1) % CD_EVENTS_MAX;
		s->n_events--;
	}
	slot = &s->events[(s->ev_head + s->n_events) % CD_EVENTS_MAX];
	*slot = *ev;
	slot->seq = s->next_event_seq++;
	s->n_events++;
}

uint64_t cd__state_last_event_ms(const struct cd_state *s)
{
	return s->n_events ? cd_state_event_at(s, s->n_events - 1)->at_ms : 0;
}

int cd__state_auth_reserve(struct cd_state *s, size_t len)
{
	uint8_t *p;

	if (len <= s->auth.cap)
		return 0;
	p = kb_realloc(s->auth.blob, len);
	if (p == NULL)
		return -ENOMEM;
	s->auth.blob = p;
	s->auth.cap = len;
	return 0;
}

static unsigned rule_pos(const struct cd_state *s, const char *name)
{
	unsigned lo = 0, hi = s->n_rules;

	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (strcmp(s->rules[mid].name, name) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

const struct cd_rule *cd_state_rule(const struct cd_state *s, const char *name)
{
	unsigned i = rule_pos(s, name);

	return i < s->n_rules && strcmp(s->rules[i].name, name) == 0 ? &s->rules[i] : NULL;
}

unsigned cd_state_n_rules(const struct cd_state *s)
{
	return s->n_rules;
}

const struct cd_rule *cd_state_rule_at(const struct cd_state *s, unsigned i)
{
	return i < s->n_rules ? &s->rules[i] : NULL;
}

void cd_drs_settings_default(struct cd_drs_settings *out)
{
	out->automation = KEEL__CLUSTER__DRS_AUTOMATION__DRS_MANUAL;
	out->threshold = CD_DRS_THRESHOLD_DEFAULT;
	out->interval_s = CD_DRS_INTERVAL_DEFAULT;
	out->hold_s = CD_DRS_HOLD_DEFAULT;
	out->max_moves = CD_DRS_MOVES_DEFAULT;
}

void cd_state_drs_settings(const struct cd_state *s, struct cd_drs_settings *out)
{
	if (s->config.set)
		*out = s->config.drs;
	else
		cd_drs_settings_default(out);
}

void cd__state_rule_put(struct cd_state *s, const struct cd_rule *r)
{
	unsigned i = rule_pos(s, r->name);

	if (i < s->n_rules && strcmp(s->rules[i].name, r->name) == 0) {
		s->rules[i] = *r;
		return;
	}
	memmove(&s->rules[i + 1], &s->rules[i], (s->n_rules - i) * sizeof(*s->rules));
	s->rules[i] = *r;
	s->n_rules++;
}

void cd__state_rule_remove(struct cd_state *s, const char *name)
{
	unsigned i = rule_pos(s, name);

	if (i >= s->n_rules || strcmp(s->rules[i].name, name) != 0)
		return;
	memmove(&s->rules[i], &s->rules[i + 1], (s->n_rules - i - 1) * sizeof(*s->rules));
	s->n_rules--;
}

void cd__state_swap(struct cd_state *a, struct cd_state *b)
{
	struct cd_state t = *a;

	*a = *b;
	*b = t;
}
