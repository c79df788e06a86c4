/*
 * Command batch decoding and encoding, field checks, and message-to-state conversions.
 *
 * Happy path: a batch of at most CD_BATCH_MAX_BYTES is parsed by protobuf-c with the Keel
 * allocator; the version and count are checked; the caller applies the commands. Failure
 * modes: oversized input (checked before parsing), bytes that are not a batch, a version
 * this code does not know, and out-of-memory; each comes back with a message and nothing
 * else happens.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <raft.h>

#include "clusterd/codec.h"
#include "lib/heap.h"

static void *pb_alloc(void *data, size_t size)
{
	return kb_malloc(size);
}

static void pb_free(void *data, void *ptr)
{
	kb_free(ptr);
}

ProtobufCAllocator cd__pb_allocator = {.alloc = pb_alloc, .free = pb_free};

bool cd__pb_was_oom(const ProtobufCMessageDescriptor *d, const void *data, size_t len)
{
	ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data);

	if (m == NULL)
		return false;
	protobuf_c_message_free_unpacked(m, NULL);
	return true;
}

int cd_batch_decode(const void *data, size_t len, Keel__Cluster__CommandBatch **out,
		    struct kb_errmsg *e)
{
	Keel__Cluster__CommandBatch *b;

	*out = NULL;
	if (len > CD_BATCH_MAX_BYTES) {
		kb_errmsg_setf(e, "command batch of %zu bytes exceeds %u", len, CD_BATCH_MAX_BYTES);
		return KB_ETOOBIG;
	}
	b = keel__cluster__command_batch__unpack(&cd__pb_allocator, len, data);
	if (b == NULL) {
		if (cd__pb_was_oom(&keel__cluster__command_batch__descriptor, data, len)) {
			kb_errmsg_setf(e, "command batch: out of memory");
			return -ENOMEM;
		}
		kb_errmsg_setf(e, "command batch is malformed");
		return KB_EPROTO;
	}
	if (b->format_version != CD_FORMAT_VERSION) {
		kb_errmsg_setf(e, "command batch format version %u (this host knows %u)",
			       b->format_version, CD_FORMAT_VERSION);
		cd_batch_free(b);
		return KB_EVERSION;
	}
	if (b->n_commands > CD_BATCH_MAX_COMMANDS) {
		kb_errmsg_setf(e, "command batch of %zu commands exceeds %u", b->n_commands,
			       CD_BATCH_MAX_COMMANDS);
		cd_batch_free(b);
		return KB_ETOOBIG;
	}
	*out = b;
	return 0;
}

void cd_batch_free(Keel__Cluster__CommandBatch *b)
{
	if (b != NULL)
		keel__cluster__command_batch__free_unpacked(b, &cd__pb_allocator);
}

int cd_batch_encode(Keel__Cluster__Command *const *cmds, unsigned n, struct raft_buffer *buf,
		    struct kb_errmsg *e)
{
	Keel__Cluster__CommandBatch b = KEEL__CLUSTER__COMMAND_BATCH__INIT;
	size_t len;

	buf->base = NULL;
	buf->len = 0;
	if (n > CD_BATCH_MAX_COMMANDS) {
		kb_errmsg_setf(e, "%u commands exceed the batch limit of %u", n,
			       CD_BATCH_MAX_COMMANDS);
		return KB_ETOOBIG;
	}
	b.format_version = CD_FORMAT_VERSION;
	b.n_commands = n;
	b.commands = (Keel__Cluster__Command **)cmds;
	len = keel__cluster__command_batch__get_packed_size(&b);
	if (len > CD_BATCH_MAX_BYTES) {
		kb_errmsg_setf(e, "command batch of %zu bytes exceeds %u", len, CD_BATCH_MAX_BYTES);
		return KB_ETOOBIG;
	}
	/* raft_malloc(0) may return NULL: an empty batch still gets one byte. */
	buf->base = raft_malloc(len ? len : 1);
	if (buf->base == NULL) {
		kb_errmsg_setf(e, "command batch: out of memory");
		return -ENOMEM;
	}
	buf->len = keel__cluster__command_batch__pack(&b, buf->base);
	return 0;
}

/* ---- field checks ------------------------------------------------------------------- */

static bool name_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

int cd__check_name(const char *s, const char *what, struct kb_errmsg *e)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > CD_NAME_MAX) {
		kb_errmsg_setf(e, "%s must have 1 to %d characters", what, CD_NAME_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!name_char(s[i])) {
			kb_errmsg_setf(e, "%s may hold only letters, digits, '.', '_' and '-'",
				       what);
			return -EINVAL;
		}
	}
	return 0;
}

/* VM names: 1..CD_NAME_MAX printable ASCII characters. */
static int check_vm_name(const char *s, struct kb_errmsg *e)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > CD_NAME_MAX) {
		kb_errmsg_setf(e, "VM name must have 1 to %d characters", CD_NAME_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e) {
			kb_errmsg_setf(e, "VM name may hold only printable ASCII");
			return -EINVAL;
		}
	}
	return 0;
}

int cd__check_uuid(const char *s, const char *what, struct kb_errmsg *e)
{
	size_t n = s ? strlen(s) : 0;

	if (n != CD_UUID_LEN)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-'
			 : !((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			goto bad;
	}
	return 0;
bad:
	kb_errmsg_setf(e, "%s is not a lower-case uuid", what);
	return -EINVAL;
}

/* Parses a decimal number without sign or leading zeros, at most max; advances *p. */
static bool parse_dec(const char **p, unsigned max, unsigned *out)
{
	const char *s = *p;
	unsigned v = 0;
	int digits = 0;

	while (*s >= '0' && *s <= '9') {
		if (digits > 0 && v == 0)
			return false; /* leading zero */
		v = v * 10 + (unsigned)(*s - '0');
		if (v > max)
			return false;
		s++;
		digits++;
	}
	if (digits == 0)
		return false;
	*p = s;
	*out = v;
	return true;
}

int cd__check_addr(const char *s, bool required, const char *what, struct kb_errmsg *e)
{
	const char *p = s ? s : "";
	unsigned v;

	if (*p == '\0') {
		if (!required)
			return 0;
		kb_errmsg_setf(e, "%s is required", what);
		return -EINVAL;
	}
	if (strlen(p) > CD_ADDR_MAX)
		goto bad;
	for (int i = 0; i < 4; i++) {
		if (!parse_dec(&p, 255, &v))
			goto bad;
		if (*p++ != (i < 3 ? '.' : ':'))
			goto bad;
	}
	if (!parse_dec(&p, 65535, &v) || v == 0 || *p != '\0')
		goto bad;
	return 0;
bad:
	kb_errmsg_setf(e, "%s must be \"A.B.C.D:port\"", what);
	return -EINVAL;
}

/* An absolute path of printable ASCII ending in ".vmx", with no "." or ".." component. */
static int check_vmx_path(const char *s, struct kb_errmsg *e)
{
	size_t n = s ? strlen(s) : 0;

	if (n < 6 || n > CD_PATH_MAX || s[0] != '/' || strcmp(s + n - 4, ".vmx") != 0)
		goto bad;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < 0x20 || s[i] > 0x7e)
			goto bad;
		if (s[i] == '/' && s[i + 1] == '/')
			goto bad;
		if (s[i] == '/' && s[i + 1] == '.' &&
		    (s[i + 2] == '/' || (s[i + 2] == '.' && s[i + 3] == '/')))
			goto bad;
	}
	return 0;
bad:
	kb_errmsg_setf(e,
		       "vmx path must be an absolute datastore path of a .vmx (at most %d "
		       "characters)",
		       CD_PATH_MAX);
	return -EINVAL;
}

static int check_enum(int v, int lo, int hi, const char *what, struct kb_errmsg *e)
{
	if (v < lo || v > hi) {
		kb_errmsg_setf(e, "%s %d is not valid", what, v);
		return -EINVAL;
	}
	return 0;
}

/* Length of the well-formed UTF-8 sequence at p (shortest form, no surrogates, at most
 * U+10FFFF) and its code point in *cp; 0 when malformed. */
static size_t utf8_seq(const unsigned char *p, uint32_t *cp)
{
	size_t n;
	uint32_t c, min;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if ((p[0] & 0xe0) == 0xc0)
		n = 2, c = p[0] & 0x1f, min = 0x80;
	else if ((p[0] & 0xf0) == 0xe0)
		n = 3, c = p[0] & 0x0f, min = 0x800;
	else if ((p[0] & 0xf8) == 0xf0)
		n = 4, c = p[0] & 0x07, min = 0x10000;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		c = (c << 6) | (p[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

int cd__check_event_message(const char *s, struct kb_errmsg *e)
{
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > CD_EVENT_MSG_MAX) {
		kb_errmsg_setf(e, "event message must have 1 to %d bytes", CD_EVENT_MSG_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		size_t k = utf8_seq((const unsigned char *)s + i, &cp);

		if (k == 0) {
			kb_errmsg_setf(e, "event message is not valid UTF-8");
			return -EINVAL;
		}
		if (cp < 0x20 || (cp >= 0x7f && cp <= 0x9f)) {
			kb_errmsg_setf(e, "event message may not hold control characters");
			return -EINVAL;
		}
		i += k;
	}
	return 0;
}

int cd__host_state_check(int state, struct kb_errmsg *e)
{
	return check_enum(state, KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED,
			  KEEL__CLUSTER__HOST_STATE__HOST_LEFT, "host state", e);
}

int cd__power_check(int power, struct kb_errmsg *e)
{
	return check_enum(power, KEEL__CLUSTER__POWER_STATE__POWER_OFF,
			  KEEL__CLUSTER__POWER_STATE__POWER_SUSPENDED, "desired power state", e);
}

int cd__ft_state_check(int state, struct kb_errmsg *e)
{
	return check_enum(state, KEEL__CLUSTER__FT_STATE__FT_NOT_PROTECTED,
			  KEEL__CLUSTER__FT_STATE__FT_PROTECTED, "FT state", e);
}

void cd__ft_to_pb(const struct cd_ft *ft, Keel__Cluster__Ft *pb)
{
	keel__cluster__ft__init(pb);
	pb->state = ft->state;
	pb->secondary = ft->secondary;
	pb->generation = ft->generation;
	pb->preferred = ft->preferred;
	pb->since_ms = ft->since_ms;
	pb->failovers = ft->failovers;
	pb->failover_epoch = ft->failover_epoch;
	pb->test_failover = ft->test_failover;
}

/* A VM's FT as a snapshot carries it: a known state, a secondary exactly when paired (not
 * the owner; that it exists is checked with the whole state). */
static int ft_from_pb(const Keel__Cluster__Ft *pb, const char *uuid, uint64_t owner,
		      struct cd_ft *ft, struct kb_errmsg *e)
{
	int rv;

	memset(ft, 0, sizeof(*ft));
	if (pb == NULL)
		return 0;
	if ((rv = cd__ft_state_check(pb->state, e)))
		return rv;
	ft->state = pb->state;
	bool paired = ft->state == KEEL__CLUSTER__FT_STATE__FT_STARTING ||
		      ft->state == KEEL__CLUSTER__FT_STATE__FT_PROTECTED;

	if (paired != (pb->secondary != 0) || pb->secondary == owner) {
		kb_errmsg_setf(e, "VM %s: FT secondary host %llu does not fit FT state %d", uuid,
			       (unsigned long long)pb->secondary, pb->state);
		return -EINVAL;
	}
	ft->secondary = pb->secondary;
	ft->generation = pb->generation;
	ft->preferred = pb->preferred;
	ft->since_ms = pb->since_ms;
	ft->failovers = pb->failovers;
	ft->failover_epoch = pb->failover_epoch;
	ft->test_failover = pb->test_failover && ft->state == KEEL__CLUSTER__FT_STATE__FT_PROTECTED;
	return 0;
}

/* ---- conversions -------------------------------------------------------------------- */

int cd__drs_from_pb(const Keel__Cluster__DrsSettings *pb, struct cd_drs_settings *d,
		    struct kb_errmsg *e)
{
	int rv;

	if (pb == NULL) {
		cd_drs_settings_default(d);
		return 0;
	}
	if ((rv = check_enum(pb->automation, KEEL__CLUSTER__DRS_AUTOMATION__DRS_MANUAL,
			     KEEL__CLUSTER__DRS_AUTOMATION__DRS_FULL, "DRS automation", e)))
		return rv;
	if (pb->threshold < 1 || pb->threshold > 5) {
		kb_errmsg_setf(e, "DRS migration threshold %u is outside 1..5", pb->threshold);
		return -EINVAL;
	}
	if (pb->interval_s < CD_DRS_INTERVAL_MIN || pb->interval_s > CD_DRS_INTERVAL_MAX) {
		kb_errmsg_setf(e, "DRS interval %u s is outside %d..%d", pb->interval_s,
			       CD_DRS_INTERVAL_MIN, CD_DRS_INTERVAL_MAX);
		return -EINVAL;
	}
	if (pb->hold_s > CD_DRS_HOLD_MAX) {
		kb_errmsg_setf(e, "DRS hold time %u s is over %d", pb->hold_s, CD_DRS_HOLD_MAX);
		return -EINVAL;
	}
	if (pb->max_moves < 1 || pb->max_moves > CD_DRS_MOVES_MAX) {
		kb_errmsg_setf(e, "DRS moves per pass %u is outside 1..%d", pb->max_moves,
			       CD_DRS_MOVES_MAX);
		return -EINVAL;
	}
	d->automation = pb->automation;
	d->threshold = pb->threshold;
	d->interval_s = pb->interval_s;
	d->hold_s = pb->hold_s;
	d->max_moves = pb->max_moves;
	return 0;
}

bool cd__rule_is_host_rule(int kind)
{
	return kind == KEEL__CLUSTER__RULE_KIND__RULE_HOST_AFFINITY ||
	       kind == KEEL__CLUSTER__RULE_KIND__RULE_HOST_ANTI_AFFINITY;
}

int cd__rule_from_pb(const Keel__Cluster__Rule *pb, struct cd_rule *r, struct kb_errmsg *e)
{
	size_t min_vms;
	int rv;

	if (pb == NULL) {
		kb_errmsg_setf(e, "rule is missing");
		return -EINVAL;
	}
	if ((rv = cd__check_name(pb->name, "rule name", e)))
		return rv;
	if ((rv = check_enum(pb->kind, KEEL__CLUSTER__RULE_KIND__RULE_AFFINITY,
			     KEEL__CLUSTER__RULE_KIND__RULE_HOST_ANTI_AFFINITY, "rule kind", e))) {
		kb_errmsg_wrapf(e, "rule %s", pb->name);
		return rv;
	}
	min_vms = cd__rule_is_host_rule(pb->kind) ? 1 : 2;
	if (pb->n_vms < min_vms || pb->n_vms > CD_RULE_VMS_MAX) {
		kb_errmsg_setf(e, "rule %s: %zu VMs; this kind of rule names %zu to %d", pb->name,
			       pb->n_vms, min_vms, CD_RULE_VMS_MAX);
		return pb->n_vms > CD_RULE_VMS_MAX ? KB_ETOOBIG : -EINVAL;
	}
	if (cd__rule_is_host_rule(pb->kind)) {
		if (pb->n_hosts < 1 || pb->n_hosts > CD_RULE_HOSTS_MAX) {
			kb_errmsg_setf(e, "rule %s: a host group of %zu hosts; it has 1 to %d",
				       pb->name, pb->n_hosts, CD_RULE_HOSTS_MAX);
			return pb->n_hosts > CD_RULE_HOSTS_MAX ? KB_ETOOBIG : -EINVAL;
		}
	} else if (pb->n_hosts) {
		kb_errmsg_setf(e, "rule %s: a VM-VM rule has no host group", pb->name);
		return -EINVAL;
	}
	memset(r, 0, sizeof(*r));
	strcpy(r->name, pb->name);
	r->kind = pb->kind;
	r->mandatory = pb->mandatory;
	for (size_t i = 0; i < pb->n_vms; i++) {
		if ((rv = cd__check_uuid(pb->vms[i], "rule VM", e))) {
			kb_errmsg_wrapf(e, "rule %s", pb->name);
			return rv;
		}
		for (size_t j = 0; j < i; j++) {
			if (strcmp(pb->vms[j], pb->vms[i]) == 0) {
				kb_errmsg_setf(e, "rule %s: names VM %s twice", pb->name,
					       pb->vms[i]);
				return -EINVAL;
			}
		}
		strcpy(r->vms[i], pb->vms[i]);
	}
	r->n_vms = (unsigned)pb->n_vms;
	for (size_t i = 0; i < pb->n_hosts; i++) {
		if (pb->hosts[i] == 0) {
			kb_errmsg_setf(e, "rule %s: host id 0 is not valid", pb->name);
			return -EINVAL;
		}
		for (size_t j = 0; j < i; j++) {
			if (pb->hosts[j] == pb->hosts[i]) {
				kb_errmsg_setf(e, "rule %s: names host %llu twice", pb->name,
					       (unsigned long long)pb->hosts[i]);
				return -EINVAL;
			}
		}
		r->hosts[i] = pb->hosts[i];
	}
	r->n_hosts = (unsigned)pb->n_hosts;
	return 0;
}

int cd__config_from_pb(const Keel__Cluster__ClusterConfig *pb, struct cd_config *c,
		       struct kb_errmsg *e)
{
	int rv;

	if (pb == NULL) {
		kb_errmsg_setf(e, "cluster config is missing");
		return -EINVAL;
	}
	if ((rv = cd__check_name(pb->name, "cluster name", e)) ||
	    (rv = cd__check_uuid(pb->cluster_id, "cluster id", e)))
		return rv;
	if (pb->format_version != CD_FORMAT_VERSION) {
		kb_errmsg_setf(e, "cluster format version %u (this host knows %u)",
			       pb->format_version, CD_FORMAT_VERSION);
		return -EINVAL;
	}
	if (pb->failure_timeout_ms < 100 || pb->failure_timeout_ms > 600000) {
		kb_errmsg_setf(e, "failure timeout %u ms is outside 100..600000",
			       pb->failure_timeout_ms);
		return -EINVAL;
	}
	if ((rv = check_enum(pb->isolation_response,
			     KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_POWER_OFF,
			     KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_LEAVE_POWERED_ON,
			     "isolation response", e)))
		return rv;
	if (pb->admission_failures > CD_ADMISSION_FAILURES_MAX || pb->admission_percent > 100) {
		kb_errmsg_setf(e, "admission control: %u host failures (at most %d), %u%% (at most 100)",
			       pb->admission_failures, CD_ADMISSION_FAILURES_MAX,
			       pb->admission_percent);
		return -EINVAL;
	}
	if (pb->admission_failures && pb->admission_percent) {
		kb_errmsg_setf(e, "admission control: host failures and a percentage together");
		return -EINVAL;
	}
	memset(c, 0, sizeof(*c));
	if ((rv = cd__drs_from_pb(pb->drs, &c->drs, e)))
		return rv;
	c->set = true;
	strcpy(c->name, pb->name);
	strcpy(c->cluster_id, pb->cluster_id);
	c->format_version = pb->format_version;
	c->failure_timeout_ms = pb->failure_timeout_ms;
	c->isolation_response = pb->isolation_response;
	c->ha_disabled = pb->ha_disabled;
	c->admission_failures = pb->admission_failures;
	c->admission_percent = pb->admission_percent;
	return 0;
}

int cd__host_from_pb(const Keel__Cluster__Host *pb, struct cd_host *h, struct kb_errmsg *e)
{
	int rv;

	if (pb == NULL) {
		kb_errmsg_setf(e, "host is missing");
		return -EINVAL;
	}
	if (pb->id == 0) {
		kb_errmsg_setf(e, "host id 0 is not valid");
		return -EINVAL;
	}
	if ((rv = cd__check_name(pb->name, "host name", e)) ||
	    (rv = cd__check_addr(pb->vmk0, true, "vmk0 address", e)) ||
	    (rv = cd__check_addr(pb->vmk1, false, "vmk1 address", e)) ||
	    (rv = cd__check_addr(pb->vmk2, false, "vmk2 address", e)) ||
	    (rv = cd__host_state_check(pb->state, e)) ||
	    (rv = check_enum(pb->role, KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER,
			     KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_SPARE, "raft role", e)))
		return rv;
	memset(h, 0, sizeof(*h));
	h->id = pb->id;
	strcpy(h->name, pb->name);
	strcpy(h->vmk0, pb->vmk0);
	strcpy(h->vmk1, pb->vmk1 ? pb->vmk1 : "");
	strcpy(h->vmk2, pb->vmk2 ? pb->vmk2 : "");
	if (pb->capacity != NULL) {
		h->cpu_mhz = pb->capacity->cpu_mhz;
		h->mem_mib = pb->capacity->mem_mib;
	}
	h->state = pb->state;
	h->role = pb->role;
	h->last_change_ms = pb->last_change_ms;
	h->maintenance = pb->maintenance;
	return 0;
}

int cd__ha_from_pb(const Keel__Cluster__HaSettings *pb, const char *self, struct cd_vm *vm,
		   struct kb_errmsg *e)
{
	int rv;

	if (pb == NULL) {
		kb_errmsg_setf(e, "HA settings are missing");
		return -EINVAL;
	}
	if ((rv = check_enum(pb->priority, KEEL__CLUSTER__RESTART_PRIORITY__RESTART_DISABLED,
			     KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGHEST, "restart priority", e)))
		return rv;
	if (pb->n_restart_after > CD_RESTART_AFTER_MAX) {
		kb_errmsg_setf(e, "restart-after list of %zu exceeds %d", pb->n_restart_after,
			       CD_RESTART_AFTER_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < pb->n_restart_after; i++) {
		if ((rv = cd__check_uuid(pb->restart_after[i], "restart-after entry", e)))
			return rv;
		if (strcmp(pb->restart_after[i], self) == 0) {
			kb_errmsg_setf(e, "a VM cannot restart after itself");
			return -EINVAL;
		}
	}
	vm->priority = pb->priority;
	vm->n_restart_after = (unsigned)pb->n_restart_after;
	memset(vm->restart_after, 0, sizeof(vm->restart_after));
	for (size_t i = 0; i < pb->n_restart_after; i++)
		strcpy(vm->restart_after[i], pb->restart_after[i]);
	return 0;
}

int cd__vm_from_pb(const Keel__Cluster__Vm *pb, struct cd_vm *vm, struct kb_errmsg *e)
{
	int rv;

	if (pb == NULL) {
		kb_errmsg_setf(e, "VM is missing");
		return -EINVAL;
	}
	if ((rv = cd__check_uuid(pb->uuid, "VM uuid", e)) || (rv = check_vm_name(pb->name, e)) ||
	    (rv = check_vmx_path(pb->vmx_path, e)) ||
	    (rv = cd__power_check(pb->desired_power, e)))
		return rv;
	if (pb->owner == 0) {
		kb_errmsg_setf(e, "VM owner is required");
		return -EINVAL;
	}
	if (pb->epoch == 0) {
		kb_errmsg_setf(e, "VM owner epoch starts at 1");
		return -EINVAL;
	}
	if (pb->mem_mib > CD_VM_MEM_MAX || pb->cpu_mhz > CD_VM_CPU_MAX) {
		kb_errmsg_setf(e, "VM %s: %llu MiB / %u MHz is out of range", pb->uuid,
			       (unsigned long long)pb->mem_mib, pb->cpu_mhz);
		return -EINVAL;
	}
	memset(vm, 0, sizeof(*vm));
	if ((rv = cd__ha_from_pb(pb->ha, pb->uuid, vm, e)) ||
	    (rv = ft_from_pb(pb->ft, pb->uuid, pb->owner, &vm->ft, e)))
		return rv;
	strcpy(vm->uuid, pb->uuid);
	strcpy(vm->name, pb->name);
	strcpy(vm->vmx_path, pb->vmx_path);
	vm->owner = pb->owner;
	vm->epoch = pb->epoch;
	vm->desired_power = pb->desired_power;
	vm->mem_mib = pb->mem_mib;
	vm->cpu_mhz = pb->cpu_mhz;
	vm->last_moved_ms = pb->last_moved_ms;
	return 0;
}

int cd__op_from_pb(const Keel__Cluster__Operation *pb, struct cd_op *op, struct kb_errmsg *e)
{
	int rv;

	if (pb == NULL) {
		kb_errmsg_setf(e, "operation is missing");
		return -EINVAL;
	}
	if (pb->id == 0) {
		kb_errmsg_setf(e, "operation id 0 is not valid");
		return -EINVAL;
	}
	if ((rv = check_enum(pb->kind, KEEL__CLUSTER__OP_KIND__OP_MIGRATE,
			     KEEL__CLUSTER__OP_KIND__OP_FT_PAIR, "operation kind", e)) ||
	    (rv = cd__check_uuid(pb->vm, "operation VM", e)))
		return rv;
	if (pb->destination == 0) {
		kb_errmsg_setf(e, "operation destination is required");
		return -EINVAL;
	}
	if (pb->source == pb->destination) {
		kb_errmsg_setf(e, "operation source and destination are the same host");
		return -EINVAL;
	}
	memset(op, 0, sizeof(*op));
	op->id = pb->id;
	op->kind = pb->kind;
	strcpy(op->vm, pb->vm);
	op->source = pb->source;
	op->destination = pb->destination;
	op->epoch = pb->epoch;
	op->phase = pb->phase;
	op->started_at_ms = pb->started_at_ms;
	return 0;
}

int cd__token_from_pb(const Keel__Cluster__JoinTokenRecord *pb, struct cd_join_token *t,
		      struct kb_errmsg *e)
{
	if (pb == NULL) {
		kb_errmsg_setf(e, "join token record is missing");
		return -EINVAL;
	}
	if (pb->id.len != CD_TOKEN_ID_SIZE || pb->id.data == NULL) {
		kb_errmsg_setf(e, "join token id must have %d bytes", CD_TOKEN_ID_SIZE);
		return -EINVAL;
	}
	if (pb->secret_hash.len != CD_TOKEN_HASH_SIZE || pb->secret_hash.data == NULL) {
		kb_errmsg_setf(e, "join token secret hash must have %d bytes", CD_TOKEN_HASH_SIZE);
		return -EINVAL;
	}
	if (pb->used != (pb->used_by != 0)) {
		kb_errmsg_setf(e, "join token: used_by is set exactly when the token is used");
		return -EINVAL;
	}
	memset(t, 0, sizeof(*t));
	memcpy(t->rec.id, pb->id.data, CD_TOKEN_ID_SIZE);
	memcpy(t->rec.secret_hash, pb->secret_hash.data, CD_TOKEN_HASH_SIZE);
	t->rec.expires_s = pb->expires_s;
	t->rec.used = pb->used;
	t->used_by = pb->used_by;
	return 0;
}

int cd__event_from_pb(const Keel__Cluster__Event *pb, struct cd_event *ev, struct kb_errmsg *e)
{
	int rv;

	if (pb == NULL) {
		kb_errmsg_setf(e, "event is missing");
		return -EINVAL;
	}
	if ((rv = check_enum(pb->kind, KEEL__CLUSTER__EVENT_KIND__EVENT_CLUSTER_CONFIG,
			     KEEL__CLUSTER__EVENT_KIND__EVENT_FT, "event kind", e)))
		return rv;
	if (pb->vm != NULL && pb->vm[0] != '\0' && (rv = cd__check_uuid(pb->vm, "event VM", e)))
		return rv;
	if ((rv = cd__check_event_message(pb->message, e)))
		return rv;
	memset(ev, 0, sizeof(*ev));
	ev->seq = pb->seq;
	ev->at_ms = pb->at_ms;
	ev->kind = pb->kind;
	ev->host = pb->host;
	strcpy(ev->vm, pb->vm ? pb->vm : "");
	strcpy(ev->message, pb->message);
	return 0;
}

int cd__check_auth_blob(const ProtobufCBinaryData *blob, struct kb_errmsg *e)
{
	if (blob->len == 0 || blob->data == NULL) {
		kb_errmsg_setf(e, "auth store is empty");
		return -EINVAL;
	}
	if (blob->len > CD_AUTH_BLOB_MAX) {
		kb_errmsg_setf(e, "auth store of %zu bytes exceeds %u", blob->len, CD_AUTH_BLOB_MAX);
		return KB_ETOOBIG;
	}
	return 0;
}

int cd__auth_from_pb(const Keel__Cluster__AuthDb *pb, struct cd_auth *a, struct kb_errmsg *e)
{
	int rv;

	if (pb == NULL) {
		kb_errmsg_setf(e, "auth store is missing");
		return -EINVAL;
	}
	if (pb->version == 0) {
		kb_errmsg_setf(e, "auth store version 0 is not valid");
		return -EINVAL;
	}
	if ((rv = cd__check_auth_blob(&pb->blob, e)))
		return rv;
	if (pb->blob.len > a->cap) {
		uint8_t *p = kb_realloc(a->blob, pb->blob.len);

		if (p == NULL) {
			kb_errmsg_setf(e, "out of memory");
			return -ENOMEM;
		}
		a->blob = p;
		a->cap = pb->blob.len;
	}
	memcpy(a->blob, pb->blob.data, pb->blob.len);
	a->len = pb->blob.len;
	a->version = pb->version;
	a->host = pb->host;
	a->at_ms = pb->at_ms;
	return 0;
}
