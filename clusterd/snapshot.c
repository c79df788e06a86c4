/*
 * Snapshot encoding and decoding (format in snapshot.h).
 *
 * Encoding builds a State message whose strings point into the in-memory state, packs it
 * behind the header and checksums both. Decoding trusts nothing: it checks the header, the
 * checksums and the size before parsing, converts every record through the same checks
 * the commands use, and validates the whole state's invariants; the caller replaces its
 * state only when all of that passed.
 */
#include <errno.h>
#include <string.h>

#include <raft.h>

#include "clusterd/apply.h"
#include "clusterd/codec.h"
#include "clusterd/snapshot.h"
#include "lib/crc.h"
#include "lib/heap.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64(const uint8_t *p)
{
	return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32;
}

/* The message tree of one encode; everything in it is freed by pb_tree_free(). */
struct pb_tree {
	Keel__Cluster__State st;
	Keel__Cluster__ClusterConfig cfg;
	Keel__Cluster__DrsSettings drs;
	Keel__Cluster__AuthDb auth;
	Keel__Cluster__Host *hosts;
	Keel__Cluster__Host **host_ptrs;
	Keel__Cluster__Capacity *caps;
	Keel__Cluster__Vm *vms;
	Keel__Cluster__Vm **vm_ptrs;
	Keel__Cluster__HaSettings *has;
	Keel__Cluster__Ft *fts;
	char **after; /* CD_RESTART_AFTER_MAX pointers per VM */
	Keel__Cluster__Operation *ops;
	Keel__Cluster__Operation **op_ptrs;
	Keel__Cluster__JoinTokenRecord *tokens;
	Keel__Cluster__JoinTokenRecord **token_ptrs;
	Keel__Cluster__Event *events;
	Keel__Cluster__Event **event_ptrs;
	Keel__Cluster__Rule *rules;
	Keel__Cluster__Rule **rule_ptrs;
	char **rule_vms; /* CD_RULE_VMS_MAX pointers per rule */
};

static void pb_tree_free(struct pb_tree *t)
{
	kb_free(t->hosts);
	kb_free(t->host_ptrs);
	kb_free(t->caps);
	kb_free(t->vms);
	kb_free(t->vm_ptrs);
	kb_free(t->has);
	kb_free(t->fts);
	kb_free(t->after);
	kb_free(t->ops);
	kb_free(t->op_ptrs);
	kb_free(t->tokens);
	kb_free(t->token_ptrs);
	kb_free(t->events);
	kb_free(t->event_ptrs);
	kb_free(t->rules);
	kb_free(t->rule_ptrs);
	kb_free(t->rule_vms);
}

/* kb_calloc of at least one element, so an empty state needs no special case. */
static void *alloc_n(unsigned n, size_t size)
{
	return kb_calloc(n ? n : 1, size);
}

static int pb_tree_build(const struct cd_state *s, struct pb_tree *t)
{
	memset(t, 0, sizeof(*t));
	keel__cluster__state__init(&t->st);
	t->hosts = alloc_n(s->n_hosts, sizeof(*t->hosts));
	t->host_ptrs = alloc_n(s->n_hosts, sizeof(*t->host_ptrs));
	t->caps = alloc_n(s->n_hosts, sizeof(*t->caps));
	t->vms = alloc_n(s->n_vms, sizeof(*t->vms));
	t->vm_ptrs = alloc_n(s->n_vms, sizeof(*t->vm_ptrs));
	t->has = alloc_n(s->n_vms, sizeof(*t->has));
	t->fts = alloc_n(s->n_vms, sizeof(*t->fts));
	t->after = alloc_n(s->n_vms, CD_RESTART_AFTER_MAX * sizeof(*t->after));
	t->ops = alloc_n(s->n_ops, sizeof(*t->ops));
	t->op_ptrs = alloc_n(s->n_ops, sizeof(*t->op_ptrs));
	t->tokens = alloc_n(s->n_tokens, sizeof(*t->tokens));
	t->token_ptrs = alloc_n(s->n_tokens, sizeof(*t->token_ptrs));
	t->events = alloc_n(s->n_events, sizeof(*t->events));
	t->event_ptrs = alloc_n(s->n_events, sizeof(*t->event_ptrs));
	t->rules = alloc_n(s->n_rules, sizeof(*t->rules));
	t->rule_ptrs = alloc_n(s->n_rules, sizeof(*t->rule_ptrs));
	t->rule_vms = alloc_n(s->n_rules, CD_RULE_VMS_MAX * sizeof(*t->rule_vms));
	if (!t->hosts || !t->host_ptrs || !t->caps || !t->vms || !t->vm_ptrs || !t->has || !t->fts ||
	    !t->after || !t->ops || !t->op_ptrs || !t->tokens || !t->token_ptrs || !t->events ||
	    !t->event_ptrs || !t->rules || !t->rule_ptrs || !t->rule_vms) {
		pb_tree_free(t);
		return -ENOMEM;
	}

	t->st.format_version = CD_FORMAT_VERSION;
	t->st.applied_commands = s->applied;
	if (s->config.set) {
		keel__cluster__cluster_config__init(&t->cfg);
		t->cfg.name = (char *)s->config.name;
		t->cfg.cluster_id = (char *)s->config.cluster_id;
		t->cfg.format_version = s->config.format_version;
		t->cfg.failure_timeout_ms = s->config.failure_timeout_ms;
		t->cfg.isolation_response = s->config.isolation_response;
		t->cfg.ha_disabled = s->config.ha_disabled;
		t->cfg.admission_failures = s->config.admission_failures;
		t->cfg.admission_percent = s->config.admission_percent;
		keel__cluster__drs_settings__init(&t->drs);
		t->drs.automation = s->config.drs.automation;
		t->drs.threshold = s->config.drs.threshold;
		t->drs.interval_s = s->config.drs.interval_s;
		t->drs.hold_s = s->config.drs.hold_s;
		t->drs.max_moves = s->config.drs.max_moves;
		t->cfg.drs = &t->drs;
		t->st.config = &t->cfg;
	}
	for (unsigned i = 0; i < s->n_hosts; i++) {
		const struct cd_host *h = &s->hosts[i];
		Keel__Cluster__Host *p = &t->hosts[i];

		keel__cluster__host__init(p);
		keel__cluster__capacity__init(&t->caps[i]);
		p->id = h->id;
		p->name = (char *)h->name;
		p->vmk0 = (char *)h->vmk0;
		p->vmk1 = (char *)h->vmk1;
		p->vmk2 = (char *)h->vmk2;
		t->caps[i].cpu_mhz = h->cpu_mhz;
		t->caps[i].mem_mib = h->mem_mib;
		p->capacity = &t->caps[i];
		p->state = h->state;
		p->role = h->role;
		p->last_change_ms = h->last_change_ms;
		p->maintenance = h->maintenance;
		t->host_ptrs[i] = p;
	}
	for (unsigned i = 0; i < s->n_vms; i++) {
		const struct cd_vm *v = &s->vms[i];
		Keel__Cluster__Vm *p = &t->vms[i];
		char **after = &t->after[(size_t)i * CD_RESTART_AFTER_MAX];

		keel__cluster__vm__init(p);
		keel__cluster__ha_settings__init(&t->has[i]);
		p->uuid = (char *)v->uuid;
		p->name = (char *)v->name;
		p->vmx_path = (char *)v->vmx_path;
		p->owner = v->owner;
		p->epoch = v->epoch;
		p->desired_power = v->desired_power;
		t->has[i].priority = v->priority;
		for (unsigned j = 0; j < v->n_restart_after; j++)
			after[j] = (char *)v->restart_after[j];
		t->has[i].n_restart_after = v->n_restart_after;
		t->has[i].restart_after = after;
		p->ha = &t->has[i];
		if (CD_FT_ON(v) || v->ft.generation) {
			Keel__Cluster__Ft *f = &t->fts[i];

			cd__ft_to_pb(&v->ft, f);
			p->ft = f;
		}
		p->mem_mib = v->mem_mib;
		p->cpu_mhz = v->cpu_mhz;
		p->last_moved_ms = v->last_moved_ms;
		t->vm_ptrs[i] = p;
	}
	for (unsigned i = 0; i < s->n_ops; i++) {
		const struct cd_op *o = &s->ops[i];
		Keel__Cluster__Operation *p = &t->ops[i];

		keel__cluster__operation__init(p);
		p->id = o->id;
		p->kind = o->kind;
		p->vm = (char *)o->vm;
		p->source = o->source;
		p->destination = o->destination;
		p->epoch = o->epoch;
		p->phase = o->phase;
		p->started_at_ms = o->started_at_ms;
		t->op_ptrs[i] = p;
	}
	for (unsigned i = 0; i < s->n_tokens; i++) {
		const struct cd_join_token *k = &s->tokens[i];
		Keel__Cluster__JoinTokenRecord *p = &t->tokens[i];

		keel__cluster__join_token_record__init(p);
		p->id.data = (uint8_t *)k->rec.id;
		p->id.len = CD_TOKEN_ID_SIZE;
		p->expires_s = k->rec.expires_s;
		p->secret_hash.data = (uint8_t *)k->rec.secret_hash;
		p->secret_hash.len = CD_TOKEN_HASH_SIZE;
		p->used = k->rec.used;
		p->used_by = k->used_by;
		t->token_ptrs[i] = p;
	}
	/* Oldest first, whatever the ring's position: equal states, equal bytes. */
	for (unsigned i = 0; i < s->n_events; i++) {
		const struct cd_event *ev = cd_state_event_at(s, i);
		Keel__Cluster__Event *p = &t->events[i];

		keel__cluster__event__init(p);
		p->seq = ev->seq;
		p->at_ms = ev->at_ms;
		p->kind = ev->kind;
		p->host = ev->host;
		p->vm = (char *)ev->vm;
		p->message = (char *)ev->message;
		t->event_ptrs[i] = p;
	}
	if (s->auth.version) {
		keel__cluster__auth_db__init(&t->auth);
		t->auth.version = s->auth.version;
		t->auth.blob.data = s->auth.blob;
		t->auth.blob.len = s->auth.len;
		t->auth.host = s->auth.host;
		t->auth.at_ms = s->auth.at_ms;
		t->st.auth = &t->auth;
	}
	for (unsigned i = 0; i < s->n_rules; i++) {
		const struct cd_rule *r = &s->rules[i];
		Keel__Cluster__Rule *p = &t->rules[i];
		char **vms = &t->rule_vms[(size_t)i * CD_RULE_VMS_MAX];

		keel__cluster__rule__init(p);
		p->name = (char *)r->name;
		p->kind = r->kind;
		p->mandatory = r->mandatory;
		for (unsigned j = 0; j < r->n_vms; j++)
			vms[j] = (char *)r->vms[j];
		p->n_vms = r->n_vms;
		p->vms = vms;
		p->n_hosts = r->n_hosts;
		p->hosts = (uint64_t *)r->hosts;
		t->rule_ptrs[i] = p;
	}
	t->st.n_rules = s->n_rules;
	t->st.rules = t->rule_ptrs;
	t->st.n_tokens = s->n_tokens;
	t->st.tokens = t->token_ptrs;
	t->st.n_events = s->n_events;
	t->st.events = t->event_ptrs;
	t->st.next_event_seq = s->next_event_seq;
	t->st.n_hosts = s->n_hosts;
	t->st.hosts = t->host_ptrs;
	t->st.n_vms = s->n_vms;
	t->st.vms = t->vm_ptrs;
	t->st.n_ops = s->n_ops;
	t->st.ops = t->op_ptrs;
	return 0;
}

int cd_snapshot_encode(const struct cd_state *s, struct raft_buffer *out, struct kb_errmsg *e)
{
	struct pb_tree t;
	uint8_t *buf;
	size_t len;

	out->base = NULL;
	out->len = 0;
	if (pb_tree_build(s, &t)) {
		kb_errmsg_setf(e, "snapshot: out of memory");
		return -ENOMEM;
	}
	len = keel__cluster__state__get_packed_size(&t.st);
	if (len > CD_SNAPSHOT_MAX_BYTES) {
		pb_tree_free(&t);
		kb_errmsg_setf(e, "snapshot of %zu bytes exceeds %u", len, CD_SNAPSHOT_MAX_BYTES);
		return KB_ETOOBIG;
	}
	buf = raft_malloc(CD_SNAPSHOT_HEADER_SIZE + len);
	if (buf == NULL) {
		pb_tree_free(&t);
		kb_errmsg_setf(e, "snapshot: out of memory");
		return -ENOMEM;
	}
	keel__cluster__state__pack(&t.st, buf + CD_SNAPSHOT_HEADER_SIZE);
	pb_tree_free(&t);
	memcpy(buf, CD_SNAPSHOT_MAGIC, 4);
	put32(buf + 4, CD_SNAPSHOT_VERSION);
	put64(buf + 8, len);
	put32(buf + 16, kb_crc32c(0, buf + CD_SNAPSHOT_HEADER_SIZE, len));
	put32(buf + 20, kb_crc32c(0, buf, 20));
	out->base = buf;
	out->len = CD_SNAPSHOT_HEADER_SIZE + len;
	return 0;
}

/* Converts a parsed State into out (empty), checking every record. */
static int from_pb(const Keel__Cluster__State *st, struct cd_state *out, struct kb_errmsg *e)
{
	int rv;

	if (st->format_version != CD_FORMAT_VERSION) {
		kb_errmsg_setf(e, "state format version %u (this host knows %u)",
			       st->format_version, CD_FORMAT_VERSION);
		return KB_EVERSION;
	}
	if (st->n_hosts > CD_HOSTS_MAX || st->n_vms > CD_VMS_MAX || st->n_ops > CD_OPS_MAX ||
	    st->n_tokens > CD_TOKENS_MAX || st->n_events > CD_EVENTS_MAX ||
	    st->n_rules > CD_RULES_MAX) {
		kb_errmsg_setf(
		    e, "state exceeds the host, VM, operation, token, event or rule limits");
		return KB_ETOOBIG;
	}
	if (st->config != NULL && (rv = cd__config_from_pb(st->config, &out->config, e)))
		goto bad;
	if (cd__state_reserve(out, (unsigned)st->n_hosts, (unsigned)st->n_vms,
			      (unsigned)st->n_ops)) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	/* Records are appended in their stored order; cd__state_check() then refuses any
	 * order other than sorted, which also refuses duplicates. */
	for (size_t i = 0; i < st->n_hosts; i++)
		if ((rv = cd__host_from_pb(st->hosts[i], &out->hosts[out->n_hosts++], e)))
			goto bad;
	for (size_t i = 0; i < st->n_vms; i++)
		if ((rv = cd__vm_from_pb(st->vms[i], &out->vms[out->n_vms++], e)))
			goto bad;
	for (size_t i = 0; i < st->n_ops; i++)
		if ((rv = cd__op_from_pb(st->ops[i], &out->ops[out->n_ops++], e)))
			goto bad;
	/* The reservation allocated the fixed token array and event ring. */
	for (size_t i = 0; i < st->n_tokens; i++)
		if ((rv = cd__token_from_pb(st->tokens[i], &out->tokens[out->n_tokens++], e)))
			goto bad;
	for (size_t i = 0; i < st->n_events; i++)
		if ((rv = cd__event_from_pb(st->events[i], &out->events[out->n_events++], e)))
			goto bad;
	if (st->auth != NULL && (rv = cd__auth_from_pb(st->auth, &out->auth, e)))
		return rv == -ENOMEM ? rv : KB_EPROTO;
	if (st->n_rules) {
		out->rules = kb_calloc(st->n_rules + 1, sizeof(*out->rules));
		if (out->rules == NULL) {
			kb_errmsg_setf(e, "out of memory");
			return -ENOMEM;
		}
		out->cap_rules = (unsigned)st->n_rules + 1;
		for (size_t i = 0; i < st->n_rules; i++)
			if ((rv = cd__rule_from_pb(st->rules[i], &out->rules[out->n_rules++], e)))
				goto bad;
	}
	out->ev_head = 0;
	/* A snapshot made before events existed has no next_event_seq (0): events start at 1. */
	out->next_event_seq = st->next_event_seq == 0 && st->n_events == 0 ? 1 : st->next_event_seq;
	out->applied = st->applied_commands;
	rv = cd__state_check(out, e);
	return rv == -ENOMEM ? rv : rv ? KB_EPROTO : 0;
bad:
	return KB_EPROTO;
}

int cd_snapshot_decode(const void *data, size_t len, struct cd_state *out, struct kb_errmsg *e)
{
	const uint8_t *p = data;
	Keel__Cluster__State *st;
	uint64_t plen;
	int rv;

	if (len < CD_SNAPSHOT_HEADER_SIZE) {
		kb_errmsg_setf(e, "snapshot of %zu bytes is shorter than its header", len);
		return KB_ETRUNCATED;
	}
	if (memcmp(p, CD_SNAPSHOT_MAGIC, 4) != 0) {
		kb_errmsg_setf(e, "not a cluster state snapshot");
		return KB_EPROTO;
	}
	if (kb_crc32c(0, p, 20) != get32(p + 20)) {
		kb_errmsg_setf(e, "snapshot header checksum mismatch");
		return KB_ECHECKSUM;
	}
	if (get32(p + 4) != CD_SNAPSHOT_VERSION) {
		kb_errmsg_setf(e, "snapshot format version %u (this host knows %u)", get32(p + 4),
			       CD_SNAPSHOT_VERSION);
		return KB_EVERSION;
	}
	plen = get64(p + 8);
	if (plen > CD_SNAPSHOT_MAX_BYTES) {
		kb_errmsg_setf(e, "snapshot payload of %llu bytes exceeds %u",
			       (unsigned long long)plen, CD_SNAPSHOT_MAX_BYTES);
		return KB_ETOOBIG;
	}
	if (plen != len - CD_SNAPSHOT_HEADER_SIZE) {
		kb_errmsg_setf(e, "snapshot payload is %zu bytes, header says %llu",
			       len - CD_SNAPSHOT_HEADER_SIZE, (unsigned long long)plen);
		return plen > len - CD_SNAPSHOT_HEADER_SIZE ? KB_ETRUNCATED : KB_EPROTO;
	}
	if (kb_crc32c(0, p + CD_SNAPSHOT_HEADER_SIZE, plen) != get32(p + 16)) {
		kb_errmsg_setf(e, "snapshot payload checksum mismatch");
		return KB_ECHECKSUM;
	}
	st = keel__cluster__state__unpack(&cd__pb_allocator, plen, p + CD_SNAPSHOT_HEADER_SIZE);
	if (st == NULL) {
		if (cd__pb_was_oom(&keel__cluster__state__descriptor, p + CD_SNAPSHOT_HEADER_SIZE,
				   plen)) {
			kb_errmsg_setf(e, "snapshot: out of memory");
			return -ENOMEM;
		}
		kb_errmsg_setf(e, "snapshot payload is malformed");
		return KB_EPROTO;
	}
	rv = from_pb(st, out, e);
	keel__cluster__state__free_unpacked(st, &cd__pb_allocator);
	if (rv) {
		kb_errmsg_wrapf(e, "snapshot");
		cd_state_close(out);
	}
	return rv;
}
