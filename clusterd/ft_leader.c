/*
 * FT on the leader (docs/ft.md, "The cluster's part"): the answers to the FT requests of
 * ClusterVmRequest and the FT tick. Every decision is one VmSetFt carrying the generation
 * it was made on, so two decisions about one pairing never both apply: a takeover asked by
 * the secondary's host and a "secondary lost" from the primary's host race to the log, the
 * first wins, the second is refused as stale. That is the rule that keeps the two sides
 * from both releasing output.
 *
 * Requests (host: the asking host; gen: ClusterVmRequest.ft_generation):
 *   FT_ENABLE     FT not on: NEEDS_SECONDARY (destination: the preferred secondary host)
 *   FT_DISABLE    FT on: NOT_PROTECTED; off already: no change
 *   FT_FAILOVER   PROTECTED, the secondary's host connected: a test failover (the primary
 *                 stops, then the secondary takes over); with gen (the owner's driver: its
 *                 primary stopped) only at that generation
 *   FT_RESTART_SECONDARY  FT on: NEEDS_SECONDARY (destination: a new preferred host)
 *   FT_PROTECTED  the owner, STARTING at gen: PROTECTED
 *   FT_LOST       the owner, STARTING or PROTECTED at gen: NEEDS_SECONDARY (error: why);
 *                 a pairing that failed keeps that host out of the next choices a while
 *   FT_TAKEOVER   the secondary's host, PROTECTED at gen, desired on: failover, when the
 *                 primary's host is not connected or sent no heartbeat for
 *                 CD_FT_PRIMARY_SILENT_MS; otherwise -EBUSY (the primary lives: it goes
 *                 on alone after its own FT_LOST)
 * A request on a stale generation is -ESTALE; the operator's requests on a VM in the wrong
 * FT state are -EINVAL. (KB_ESTATE is what a follower's forwarder retries: "no leader".)
 *
 * The tick, every TICK_MS on the ready leader:
 *   - PROTECTED whose owner failed (or left) and whose secondary's host is connected:
 *     failover (the secondary's host asks too; whichever commits first);
 *   - STARTING or PROTECTED whose secondary's host failed, is partitioned, isolated, left
 *     or in maintenance mode: NEEDS_SECONDARY (the primary goes on alone; a secondary that
 *     could not reach the cluster could never take over);
 *   - STARTING for longer than START_MAX_MS: NEEDS_SECONDARY (the owner never finished);
 *   - a test failover not taken over in TEST_MAX_MS: NEEDS_SECONDARY (the VM starts from
 *     its disks on its owner);
 *   - NEEDS_SECONDARY, desired on, owner connected: a secondary's host is chosen (the
 *     preferred one when eligible, else the eligible host with the most memory left, never
 *     the owner, a host whose pairing just failed, one silent for CD_FT_PRIMARY_SILENT_MS,
 *     or one running a VM a must anti-affinity rule keeps this one apart from)
 *     and STARTING is committed; the
 *     owner's FT driver (ft.c) then makes the secondary.
 * A decision submitted for a VM is not submitted again for the same generation until
 * RESUBMIT_MS passed.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clusterd/apply.h"
#include "clusterd/daemon.h"
#include "lib/heap.h"
#include "lib/time.h"

#define TICK_MS	      100
#define RESUBMIT_MS   2000
#define START_MAX_MS  (5 * 60 * 1000)
#define TEST_MAX_MS   15000 /* a test failover's takeover must come by then */
#define EXCL_MS	      60000 /* a host whose pairing failed is left out this long */
#define SENT_MAX      256
#define EXCL_MAX      256

#define FT_OFF	 KEEL__CLUSTER__FT_STATE__FT_NOT_PROTECTED
#define FT_NEEDS KEEL__CLUSTER__FT_STATE__FT_NEEDS_SECONDARY
#define FT_START KEEL__CLUSTER__FT_STATE__FT_STARTING
#define FT_PROT	 KEEL__CLUSTER__FT_STATE__FT_PROTECTED
#define CONNECTED KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED

struct sent { /* a decision submitted: (vm, generation) */
	char uuid[CD_UUID_LEN + 1];
	uint64_t gen;
	uint64_t at_ms;
};

struct excl { /* a host a VM's pairing failed on */
	char uuid[CD_UUID_LEN + 1];
	uint64_t host;
	uint64_t until_ms;
};

struct cd_ft_leader {
	struct cd_daemon *d;
	uv_timer_t timer;
	struct sent sent[SENT_MAX];
	unsigned n_sent;
	struct excl excl[EXCL_MAX];
	unsigned n_excl;
};

static uint64_t mono_ms(void)
{
	return kb_now_ns() / 1000000u;
}

static bool sent_recently(struct cd_ft_leader *l, const struct cd_vm *vm, uint64_t now)
{
	for (unsigned i = 0; i < l->n_sent; i++)
		if (l->sent[i].gen == vm->ft.generation && strcmp(l->sent[i].uuid, vm->uuid) == 0)
			return now - l->sent[i].at_ms < RESUBMIT_MS;
	return false;
}

static void note_sent(struct cd_ft_leader *l, const struct cd_vm *vm, uint64_t now)
{
	unsigned k = 0;

	for (unsigned i = 0; i < l->n_sent; i++)
		if (now - l->sent[i].at_ms < RESUBMIT_MS && strcmp(l->sent[i].uuid, vm->uuid) != 0)
			l->sent[k++] = l->sent[i];
	l->n_sent = k;
	if (l->n_sent == SENT_MAX)
		return;
	snprintf(l->sent[l->n_sent].uuid, CD_UUID_LEN + 1, "%s", vm->uuid);
	l->sent[l->n_sent].gen = vm->ft.generation;
	l->sent[l->n_sent++].at_ms = now;
}

static bool excluded(struct cd_ft_leader *l, const char *uuid, uint64_t host, uint64_t now)
{
	for (unsigned i = 0; i < l->n_excl; i++)
		if (l->excl[i].host == host && now < l->excl[i].until_ms &&
		    strcmp(l->excl[i].uuid, uuid) == 0)
			return true;
	return false;
}

static void exclude(struct cd_ft_leader *l, const char *uuid, uint64_t host, uint64_t now)
{
	unsigned k = 0;

	for (unsigned i = 0; i < l->n_excl; i++)
		if (now < l->excl[i].until_ms)
			l->excl[k++] = l->excl[i];
	l->n_excl = k;
	if (l->n_excl == EXCL_MAX)
		return;
	snprintf(l->excl[l->n_excl].uuid, CD_UUID_LEN + 1, "%s", uuid);
	l->excl[l->n_excl].host = host;
	l->excl[l->n_excl++].until_ms = now + EXCL_MS;
}

/* The operator named host for vm's secondary: an earlier failure there no longer counts. */
static void unexclude(struct cd_ft_leader *l, const char *uuid, uint64_t host)
{
	unsigned k = 0;

	for (unsigned i = 0; l && i < l->n_excl; i++)
		if (l->excl[i].host != host || strcmp(l->excl[i].uuid, uuid) != 0)
			l->excl[k++] = l->excl[i];
	if (l)
		l->n_excl = k;
}

/* Submits VmSetFt for vm at its generation; cb/arg answer the asker (or NULL). From
 * PROTECTED to PROTECTED is the one change a test failover makes: test_failover says so. */
static int set_ft(struct cd_daemon *d, const struct cd_vm *vm, int state, uint64_t secondary,
		  uint64_t preferred, uint64_t new_epoch, const char *reason, cd_cmd_cb cb,
		  void *arg, struct kb_errmsg *e)
{
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	Keel__Cluster__VmSetFt sf = KEEL__CLUSTER__VM_SET_FT__INIT;

	sf.uuid = (char *)vm->uuid;
	sf.expect_generation = vm->ft.generation;
	sf.state = state;
	sf.secondary = secondary;
	sf.preferred = preferred;
	sf.new_epoch = new_epoch;
	sf.test_failover = state == FT_PROT && vm->ft.state == FT_PROT;
	sf.reason = (char *)(reason ? reason : "");
	sf.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_SET_FT;
	c.vm_set_ft = &sf;
	return cd_submit(d, &c, cb, arg, e);
}

static const char *host_name(const struct cd_state *s, uint64_t id)
{
	const struct cd_host *h = cd_state_host(s, id);

	return h ? h->name : "?";
}

/* Printable ASCII of at most 120 bytes, for an event. */
static void clean(const char *in, char *out, size_t size)
{
	size_t n = 0;

	for (; in && *in && n + 1 < size && n < 120; in++)
		out[n++] = *in >= 0x20 && *in <= 0x7e ? *in : '?';
	out[n] = '\0';
}

/* ---- the requests ------------------------------------------------------------------------ */

struct ask {
	struct cd_daemon *d;
	uint64_t host;
	char uuid[CD_UUID_LEN + 1];
	cd_vmop_cb cb;
	void *arg;
};

static void on_asked(struct cd_daemon *d, void *arg, int status, int code, const char *reason)
{
	struct ask *a = arg;
	char msg[CD_REASON_MAX + 64];

	if (status) {
		snprintf(msg, sizeof(msg), "the cluster did not commit it: %s",
			 raft_strerror(status));
		code = KB_ESTATE;
	} else {
		snprintf(msg, sizeof(msg), "%s", reason ? reason : "refused");
		if (code == KB_ESTATE)
			code = -ESTALE; /* the log refused it: decided otherwise meanwhile */
	}
	cd__vmop_answer(d, a->cb, a->arg, a->uuid, a->host, code, code ? msg : NULL);
	kb_free(a);
}

static int ask_set(struct cd_daemon *d, uint64_t host, const struct cd_vm *vm, int state,
		   uint64_t secondary, uint64_t preferred, uint64_t new_epoch, const char *reason,
		   cd_vmop_cb cb, void *arg, struct kb_errmsg *e)
{
	struct ask *a = kb_calloc(1, sizeof(*a));
	int rv;

	if (!a) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	a->d = d;
	a->host = host;
	snprintf(a->uuid, sizeof(a->uuid), "%s", vm->uuid);
	a->cb = cb;
	a->arg = arg;
	rv = set_ft(d, vm, state, secondary, preferred, new_epoch, reason, on_asked, a, e);
	if (rv)
		kb_free(a);
	return rv;
}

/* The host an operator named for the secondary: in the cluster, not the owner. */
static int check_preferred(const struct cd_state *s, const struct cd_vm *vm, uint64_t id,
			   struct kb_errmsg *e)
{
	const struct cd_host *h = cd_state_host(s, id);

	if (!h || h->state == KEEL__CLUSTER__HOST_STATE__HOST_LEFT) {
		kb_errmsg_setf(e, "host %" PRIu64 " is not in the cluster", id);
		return KB_ENOTFOUND;
	}
	if (id == vm->owner) {
		kb_errmsg_setf(e, "VM %s runs on %s: its secondary must be on another host", vm->name,
			       h->name);
		return -EINVAL;
	}
	return 0;
}

/* A host that has not sent a heartbeat for as long as a takeover waits: gone, most likely,
 * though not declared failed yet. The leader's view: ms since the host's last network
 * heartbeat (-1: unknown), or for the leader before this one, since its last ACK (hbnet.c,
 * cd_hbnet_silence). */
static bool silent(struct cd_daemon *d, uint64_t host)
{
	return cd_hbnet_silence(d, host) >= CD_FT_PRIMARY_SILENT_MS;
}

/* *age: cd_hbnet_silence of the primary's host, for the log. */
static bool primary_silent(struct cd_daemon *d, const struct cd_state *s, const struct cd_vm *vm,
			   int64_t *age)
{
	const struct cd_host *p = cd_state_host(s, vm->owner);

	*age = cd_hbnet_silence(d, vm->owner);
	return !p || p->state != CONNECTED || *age >= CD_FT_PRIMARY_SILENT_MS;
}

int cd_ft_vmop(struct cd_daemon *d, uint64_t host, const Keel__Cluster__ClusterVmRequest *rq,
	       cd_vmop_cb cb, void *arg, struct kb_errmsg *e)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	const struct cd_vm *vm = cd_state_vm(s, rq->uuid ? rq->uuid : "");
	char why[128], text[CD_EVENT_MSG_MAX + 1];
	int64_t age;
	int rv;

	if (!vm) {
		kb_errmsg_setf(e, "VM %s is not registered in the cluster", rq->uuid ? rq->uuid : "");
		return KB_ENOTFOUND;
	}
	switch (rq->op) {
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_ENABLE:
		if (CD_FT_ON(vm)) {
			kb_errmsg_setf(e, "FT is on for VM %s already (%s)", vm->name,
				       cd_ft_state_word(vm->ft.state));
			return KB_EEXIST;
		}
		if (rq->destination && (rv = check_preferred(s, vm, rq->destination, e)))
			return rv;
		unexclude(d->ft_leader, vm->uuid, rq->destination);
		if (cd_state_op_for_vm(s, vm->uuid)) {
			kb_errmsg_setf(e, "VM %s has an operation in flight", vm->name);
			return -EBUSY;
		}
		snprintf(text, sizeof(text), "FT: turned on for VM %s (secondary: %s)", vm->name,
			 rq->destination ? host_name(s, rq->destination) : "the cluster's choice");
		return ask_set(d, host, vm, FT_NEEDS, 0, rq->destination, 0, text, cb, arg, e);
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_DISABLE:
		if (!CD_FT_ON(vm)) {
			cd__vmop_answer(d, cb, arg, vm->uuid, host, 0, NULL);
			return 0;
		}
		snprintf(text, sizeof(text), "FT: turned off for VM %s", vm->name);
		return ask_set(d, host, vm, FT_OFF, 0, 0, 0, text, cb, arg, e);
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_FAILOVER: {
		const struct cd_host *sh = cd_state_host(s, vm->ft.secondary);

		/* the owner's FT driver (its primary stopped) asks at the generation it saw */
		if (rq->ft_generation &&
		    (rq->ft_generation != vm->ft.generation || host != vm->owner)) {
			kb_errmsg_setf(e, "VM %s: FT changed meanwhile (generation %" PRIu64
					  ", not %" PRIu64 ")",
				       vm->name, vm->ft.generation, rq->ft_generation);
			return -ESTALE;
		}
		if (vm->ft.state != FT_PROT) {
			kb_errmsg_setf(e, "VM %s is not protected by FT (%s): no secondary to fail "
					  "over to",
				       vm->name, cd_ft_state_word(vm->ft.state));
			return -EINVAL;
		}
		if (!sh || sh->state != CONNECTED) {
			kb_errmsg_setf(e, "the secondary's host %s is not connected",
				       sh ? sh->name : "?");
			return -EINVAL;
		}
		if (vm->ft.test_failover) {
			kb_errmsg_setf(e, "a test failover of VM %s is under way", vm->name);
			return -EBUSY;
		}
		/* the primary's host stops its vmx first (ft.c); then the secondary's host
		 * asks to take over and is granted at once: never two running */
		if (rq->ft_generation)
			snprintf(text, sizeof(text), "FT: VM %s: %s on %s: failing over to %s",
				 vm->name, "its primary stopped", host_name(s, vm->owner), sh->name);
		else
			snprintf(text, sizeof(text), "FT: test failover of VM %s from %s to %s: the "
						     "primary stops",
				 vm->name, host_name(s, vm->owner), sh->name);
		return ask_set(d, host, vm, FT_PROT, vm->ft.secondary, vm->ft.preferred, 0, text, cb,
			       arg, e);
	}
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_RESTART_SECONDARY:
		if (!CD_FT_ON(vm)) {
			kb_errmsg_setf(e, "FT is not on for VM %s", vm->name);
			return -EINVAL;
		}
		if (rq->destination && (rv = check_preferred(s, vm, rq->destination, e)))
			return rv;
		unexclude(d->ft_leader, vm->uuid, rq->destination);
		snprintf(text, sizeof(text), "FT: VM %s: a new secondary was asked for%s%s",
			 vm->name, rq->destination ? " on " : "",
			 rq->destination ? host_name(s, rq->destination) : "");
		return ask_set(d, host, vm, FT_NEEDS, 0,
			       rq->destination ? rq->destination : vm->ft.preferred, 0, text, cb,
			       arg, e);
	default:
		break;
	}
	/* The FT engines' own requests: only at the generation the asker saw. */
	if (rq->ft_generation != vm->ft.generation) {
		kb_errmsg_setf(e, "VM %s: FT changed meanwhile (generation %" PRIu64 ", not %" PRIu64
				  ")",
			       vm->name, vm->ft.generation, rq->ft_generation);
		return -ESTALE;
	}
	switch (rq->op) {
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_PROTECTED:
		if (vm->owner != host || vm->ft.state != FT_START) {
			kb_errmsg_setf(e, "VM %s: not a pairing of the calling host", vm->name);
			return -ESTALE;
		}
		return ask_set(d, host, vm, FT_PROT, vm->ft.secondary, vm->ft.preferred, 0, NULL, cb,
			       arg, e);
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_LOST:
		if (vm->owner != host || !CD_FT_PAIRED(vm)) {
			kb_errmsg_setf(e, "VM %s: not a pairing of the calling host", vm->name);
			return -ESTALE;
		}
		if (d->ft_leader && vm->ft.state == FT_START)
			exclude(d->ft_leader, vm->uuid, vm->ft.secondary, mono_ms());
		clean(rq->error, why, sizeof(why));
		snprintf(text, sizeof(text), "FT: VM %s runs unprotected: secondary on %s %s: %s",
			 vm->name, host_name(s, vm->ft.secondary),
			 vm->ft.state == FT_START ? "not started" : "lost", why[0] ? why : "?");
		return ask_set(d, host, vm, FT_NEEDS, 0, vm->ft.preferred, 0, text, cb, arg, e);
	case KEEL__CLUSTER__CLUSTER_VM_REQUEST__OP__OP_FT_TAKEOVER:
		if (vm->ft.state != FT_PROT || vm->ft.secondary != host ||
		    vm->desired_power != KEEL__CLUSTER__POWER_STATE__POWER_ON) {
			kb_errmsg_setf(e, "VM %s: the calling host holds no protected secondary of it",
				       vm->name);
			return -ESTALE;
		}
		if (vm->ft.test_failover) {
			snprintf(text, sizeof(text), "FT: VM %s fails over from %s to %s (test failover)",
				 vm->name, host_name(s, vm->owner), host_name(s, host));
			return ask_set(d, host, vm, FT_NEEDS, 0, vm->ft.preferred, vm->epoch + 1,
				       text, cb, arg, e);
		}
		if (!primary_silent(d, s, vm, &age)) {
			kb_errmsg_setf(e, "VM %s: the primary's host %s is alive (heartbeat %" PRId64
					  " ms ago)",
				       vm->name, host_name(s, vm->owner), age);
			return -EBUSY;
		}
		snprintf(text, sizeof(text),
			 "FT: VM %s fails over from %s to %s (the primary's stream stopped; no "
			 "heartbeat for %" PRId64 " ms)",
			 vm->name, host_name(s, vm->owner), host_name(s, host), age);
		kb_log(d->log, KB_LOG_WARN, "%s", text);
		return ask_set(d, host, vm, FT_NEEDS, 0, vm->ft.preferred, vm->epoch + 1, text, cb,
			       arg, e);
	default:
		kb_errmsg_setf(e, "unknown VM operation %d", rq->op);
		return KB_EPROTO;
	}
}

/* ---- the tick ---------------------------------------------------------------------------- */

static bool gone(const struct cd_host *h)
{
	return !h || h->state == KEEL__CLUSTER__HOST_STATE__HOST_FAILED ||
	       h->state == KEEL__CLUSTER__HOST_STATE__HOST_LEFT;
}

/* The secondary's host can no longer serve: gone, cut off from the cluster, or leaving. */
static bool secondary_unfit(const struct cd_host *h)
{
	return gone(h) || h->state == KEEL__CLUSTER__HOST_STATE__HOST_PARTITIONED ||
	       h->state == KEEL__CLUSTER__HOST_STATE__HOST_ISOLATED || h->maintenance;
}

/* Memory (MiB) a host has left: its capacity less what its desired-on VMs and the
 * secondaries it keeps need. */
static int64_t mem_left(const struct cd_state *s, const struct cd_host *h)
{
	int64_t left = (int64_t)h->mem_mib;
	unsigned nv = cd_state_n_vms(s);

	for (unsigned i = 0; i < nv; i++) {
		const struct cd_vm *v = cd_state_vm_at(s, i);

		if ((v->owner == h->id && v->desired_power == KEEL__CLUSTER__POWER_STATE__POWER_ON) ||
		    v->ft.secondary == h->id)
			left -= (int64_t)v->mem_mib;
	}
	return left;
}

/* A must anti-affinity rule keeps vm apart from a VM that host runs: the secondary, which
 * becomes the VM at a failover, does not go there either. */
static bool kept_apart(const struct cd_state *s, const struct cd_vm *vm, uint64_t host)
{
	unsigned nr = cd_state_n_rules(s);

	for (unsigned i = 0; i < nr; i++) {
		const struct cd_rule *r = cd_state_rule_at(s, i);
		bool member = false;

		if (r->kind != KEEL__CLUSTER__RULE_KIND__RULE_ANTI_AFFINITY || !r->mandatory)
			continue;
		for (unsigned k = 0; k < r->n_vms && !member; k++)
			member = strcmp(r->vms[k], vm->uuid) == 0;
		for (unsigned k = 0; member && k < r->n_vms; k++) {
			const struct cd_vm *o = cd_state_vm(s, r->vms[k]);

			if (o && o != vm && o->owner == host &&
			    o->desired_power == KEEL__CLUSTER__POWER_STATE__POWER_ON)
				return true;
		}
	}
	return false;
}

static uint64_t choose(struct cd_ft_leader *l, const struct cd_state *s, const struct cd_vm *vm,
		       uint64_t now)
{
	const struct cd_host *best = NULL;
	int64_t best_left = 0;
	unsigned nh = cd_state_n_hosts(s);

	for (unsigned i = 0; i < nh; i++) {
		const struct cd_host *h = cd_state_host_at(s, i);
		int64_t left;

		if (h->id == vm->owner || h->state != CONNECTED || h->maintenance ||
		    excluded(l, vm->uuid, h->id, now) || silent(l->d, h->id) ||
		    kept_apart(s, vm, h->id))
			continue;
		left = mem_left(s, h);
		if (h->mem_mib && left < (int64_t)vm->mem_mib)
			continue;
		if (h->id == vm->ft.preferred)
			return h->id;
		if (!best || left > best_left) {
			best = h;
			best_left = left;
		}
	}
	return best ? best->id : 0;
}

static void on_tick_done(struct cd_daemon *d, void *arg, int status, int code, const char *reason)
{
	(void)arg;
	if (!status && code && code != -ESTALE)
		kb_log(d->log, KB_LOG_WARN, "FT: %s", reason ? reason : "refused");
}

static void on_tick(uv_timer_t *t)
{
	struct cd_ft_leader *l = t->data;
	struct cd_daemon *d = l->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	uint64_t now = mono_ms(), wall = cd_now_ms();
	unsigned nv = cd_state_n_vms(s);
	char text[CD_EVENT_MSG_MAX + 1];
	struct kb_errmsg e = {{0}};

	if (!cd_node_is_ready_leader(d))
		return;
	for (unsigned i = 0; i < nv; i++) {
		const struct cd_vm *vm = cd_state_vm_at(s, i);
		const struct cd_host *owner = cd_state_host(s, vm->owner);
		const struct cd_host *sec = cd_state_host(s, vm->ft.secondary);
		uint64_t to;

		if (!CD_FT_ON(vm) || sent_recently(l, vm, now))
			continue;
		if (vm->ft.state == FT_PROT && gone(owner) && sec && sec->state == CONNECTED &&
		    !sec->maintenance && vm->desired_power == KEEL__CLUSTER__POWER_STATE__POWER_ON) {
			snprintf(text, sizeof(text), "FT: VM %s fails over from %s to %s (host %s "
						     "failed)",
				 vm->name, owner ? owner->name : "?", sec->name,
				 owner ? owner->name : "?");
			kb_log(d->log, KB_LOG_WARN, "%s", text);
			if (set_ft(d, vm, FT_NEEDS, 0, vm->ft.preferred, vm->epoch + 1, text,
				   on_tick_done, NULL, &e) == 0)
				note_sent(l, vm, now);
		} else if (CD_FT_PAIRED(vm) && secondary_unfit(sec)) {
			snprintf(text, sizeof(text), "FT: VM %s runs unprotected: the secondary's host "
						     "%s %s",
				 vm->name, sec ? sec->name : "?",
				 !sec || gone(sec) ? "failed" : sec->maintenance ? "is in maintenance mode"
									  : "lost the cluster");
			if (set_ft(d, vm, FT_NEEDS, 0, vm->ft.preferred, 0, text, on_tick_done, NULL,
				   &e) == 0)
				note_sent(l, vm, now);
		} else if (vm->ft.test_failover && wall > vm->ft.since_ms &&
			   wall - vm->ft.since_ms > TEST_MAX_MS) {
			snprintf(text, sizeof(text), "FT: VM %s: the test failover did not complete in "
						     "%d s; it starts from its disks",
				 vm->name, TEST_MAX_MS / 1000);
			if (set_ft(d, vm, FT_NEEDS, 0, vm->ft.preferred, 0, text, on_tick_done, NULL,
				   &e) == 0)
				note_sent(l, vm, now);
		} else if (vm->ft.state == FT_START && wall > vm->ft.since_ms &&
			   wall - vm->ft.since_ms > START_MAX_MS) {
			exclude(l, vm->uuid, vm->ft.secondary, now);
			snprintf(text, sizeof(text), "FT: VM %s: the secondary on %s was not ready in "
						     "%d s",
				 vm->name, sec ? sec->name : "?", START_MAX_MS / 1000);
			if (set_ft(d, vm, FT_NEEDS, 0, vm->ft.preferred, 0, text, on_tick_done, NULL,
				   &e) == 0)
				note_sent(l, vm, now);
		} else if (vm->ft.state == FT_NEEDS &&
			   vm->desired_power == KEEL__CLUSTER__POWER_STATE__POWER_ON && owner &&
			   owner->state == CONNECTED && !cd_state_op_for_vm(s, vm->uuid)) {
			to = choose(l, s, vm, now);
			if (!to) {
				continue; /* nowhere yet: tried again each tick */
			}
			if (set_ft(d, vm, FT_START, to, vm->ft.preferred, 0, NULL, on_tick_done, NULL,
				   &e) == 0)
				note_sent(l, vm, now);
		}
	}
}

int cd_ft_leader_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	struct cd_ft_leader *l;

	if (d->ft_leader)
		return 0;
	l = kb_calloc(1, sizeof(*l));
	if (!l) {
		kb_errmsg_setf(e, "FT: out of memory");
		return -ENOMEM;
	}
	l->d = d;
	uv_timer_init(d->loop, &l->timer);
	l->timer.data = l;
	uv_timer_start(&l->timer, on_tick, TICK_MS, TICK_MS);
	d->ft_leader = l;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	kb_free(h->data);
}

void cd_ft_leader_stop(struct cd_daemon *d)
{
	struct cd_ft_leader *l = d->ft_leader;

	if (!l)
		return;
	d->ft_leader = NULL;
	uv_close((uv_handle_t *)&l->timer, on_closed);
}
