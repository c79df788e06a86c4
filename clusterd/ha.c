/*
 * HA on the leader (docs/ha.md): VMs of failed hosts, and the released VMs of partitioned,
 * isolated or maintenance hosts, get a new owner at a higher epoch, chosen by the restart
 * planner (ha/plan.h); admission control for power-ons (cd_ha_admit).
 *
 * Every HA_TICK_MS, on the ready leader with HA on:
 *   1. candidates: VMs with desired power on, restart priority other than disabled, not
 *      FT (the FT pairing moves those), whose owner is failed (or gone), or whose owner is
 *      partitioned, isolated or in maintenance mode and whose lock file says released at
 *      the VM's epoch (read on a worker: the lock is on the shared datastore);
 *   2. the planner places them on the eligible hosts (connected, not in maintenance)
 *      with the capacity left by what those hosts already run;
 *   3. each placement is submitted as an HA event and VmChangeOwner(vm, host, epoch + 1)
 *      (cd_submit batches them into few entries); a VM stays "pending" until the change
 *      is applied or HA_PENDING_MS passes, so it is never submitted twice meanwhile;
 *   4. a VM that fits nowhere or waits for its restart-after VMs gets one event per epoch.
 * The replicated state is the plan: a new leader sees the same candidates and carries on.
 * The new owner's reconciler powers the VM on (its vmkernel takes the lock over the old
 * owner's only once it has seen the old owner's lease expire, docs/leases.md).
 *
 * Failure modes: a submit that fails (not leader any more, out of memory) is retried on a
 * later tick; a lock that cannot be read is treated as held (never restart on a doubt).
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "clusterd/daemon.h"
#include "ha/lock.h"
#include "ha/plan.h"
#include "lib/heap.h"
#include "lib/time.h"

#define HA_TICK_MS     100
#define HA_PENDING_MS  5000
#define HA_LOCK_MS     500 /* lock files of partitioned hosts' VMs are read this often */
#define HA_SAID_MAX    256
#define HA_EXCL_MS     (10 * 60 * 1000)
#define HA_STARTED_MS  60000 /* a moved VM not reported started counts as running after this */

struct pending {
	char uuid[CD_UUID_LEN + 1];
	uint64_t epoch; /* the epoch submitted */
	uint64_t until_ms;
};

struct moved { /* a VM HA gave a new owner: not running until the owner says so */
	char uuid[CD_UUID_LEN + 1];
	uint64_t epoch;
	uint64_t at_ms;
};

struct said { /* one "waiting" event per VM and epoch */
	char uuid[CD_UUID_LEN + 1];
	uint64_t epoch;
};

struct excl { /* hosts a VM could not power on on (OP_START_FAILED) */
	char uuid[CD_UUID_LEN + 1];
	uint64_t hosts[HA_PLAN_EXCLUDE_MAX];
	unsigned n;
	uint64_t at_ms; /* the last failure; forgotten HA_EXCL_MS later */
};

struct lockq { /* a VM whose lock the worker reads */
	char uuid[CD_UUID_LEN + 1];
	char path[PATH_MAX];
	uint64_t epoch;
	bool released; /* out */
};

struct cd_ha {
	struct cd_daemon *d;
	uv_timer_t timer;
	uv_work_t work;
	bool busy, stopping;
	uint64_t last_lock_ms;
	struct lockq *lq; /* the worker's batch */
	unsigned n_lq;
	char (*released)[CD_UUID_LEN + 1]; /* VMs the last batch found released */
	uint64_t *released_epoch;
	unsigned n_released;
	struct pending *pend;
	unsigned n_pend, cap_pend;
	struct said said[HA_SAID_MAX];
	unsigned n_said, said_next;
	struct excl *excl;
	unsigned n_excl, cap_excl;
	struct moved *moved;
	unsigned n_moved, cap_moved;
};

static enum ha_prio prio_of(int p)
{
	switch (p) {
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_DISABLED:
		return HA_PRIO_DISABLED;
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOWEST:
		return HA_PRIO_LOWEST;
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW:
		return HA_PRIO_LOW;
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGH:
		return HA_PRIO_HIGH;
	case KEEL__CLUSTER__RESTART_PRIORITY__RESTART_HIGHEST:
		return HA_PRIO_HIGHEST;
	default:
		return HA_PRIO_MEDIUM;
	}
}

static bool eligible(const struct cd_host *h)
{
	return h->state == KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED && !h->maintenance;
}

/* The owner cannot run it: failed, gone or left. */
static bool owner_dead(const struct cd_state *s, const struct cd_vm *vm)
{
	const struct cd_host *h = cd_state_host(s, vm->owner);

	return !h || h->state == KEEL__CLUSTER__HOST_STATE__HOST_FAILED ||
	       h->state == KEEL__CLUSTER__HOST_STATE__HOST_LEFT;
}

/* The owner lives but may have let go: partitioned, isolated, or in maintenance mode. */
static bool owner_may_release(const struct cd_state *s, const struct cd_vm *vm)
{
	const struct cd_host *h = cd_state_host(s, vm->owner);

	return h && (h->state == KEEL__CLUSTER__HOST_STATE__HOST_PARTITIONED ||
		     h->state == KEEL__CLUSTER__HOST_STATE__HOST_ISOLATED ||
		     h->state == KEEL__CLUSTER__HOST_STATE__HOST_UNREACHABLE || h->maintenance);
}

/* A protected FT VM whose secondary's host is connected: FT moves it (ft.c), not HA. */
bool cd_ha_ft_takes_it(const struct cd_state *s, const struct cd_vm *vm)
{
	const struct cd_host *h;

	if (vm->ft.state != KEEL__CLUSTER__FT_STATE__FT_PROTECTED)
		return false;
	h = cd_state_host(s, vm->ft.secondary);
	return h && h->state == KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED && !h->maintenance;
}

static bool protected_vm(const struct cd_state *s, const struct cd_vm *vm)
{
	return vm->desired_power == KEEL__CLUSTER__POWER_STATE__POWER_ON &&
	       vm->priority != KEEL__CLUSTER__RESTART_PRIORITY__RESTART_DISABLED &&
	       !cd_ha_ft_takes_it(s, vm);
}

/* Hosts as the planner sees them: capacity, and what their VMs wanted on use. n_hosts
 * entries of out; skip_vm is not counted (the VM being admitted). */
static void plan_hosts(const struct cd_state *s, struct ha_plan_host *out, const char *skip_vm)
{
	unsigned nh = cd_state_n_hosts(s), nv = cd_state_n_vms(s);

	for (unsigned i = 0; i < nh; i++) {
		const struct cd_host *h = cd_state_host_at(s, i);

		memset(&out[i], 0, sizeof(out[i]));
		out[i].id = h->id;
		out[i].eligible = eligible(h);
		out[i].cpu_mhz = h->cpu_mhz;
		out[i].mem_mib = h->mem_mib;
	}
	for (unsigned k = 0; k < nv; k++) {
		const struct cd_vm *vm = cd_state_vm_at(s, k);

		if (vm->desired_power != KEEL__CLUSTER__POWER_STATE__POWER_ON ||
		    (skip_vm && strcmp(vm->uuid, skip_vm) == 0))
			continue;
		for (unsigned i = 0; i < nh; i++)
			if (out[i].id == vm->owner) {
				out[i].mem_used += vm->mem_mib;
				out[i].cpu_used += vm->cpu_mhz;
			}
	}
}

int cd_ha_admit(struct cd_daemon *d, const struct cd_vm *vm, uint64_t mem_mib, uint32_t cpu_mhz,
		struct kb_errmsg *e)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	struct ha_admit a = {HA_ADMIT_OFF, 0, 0};
	struct ha_plan_host *hosts;
	char msg[HA_ADMIT_MSG];
	unsigned nh = cd_state_n_hosts(s);
	int rv;

	if (!s->config.set || s->config.ha_disabled ||
	    vm->priority == KEEL__CLUSTER__RESTART_PRIORITY__RESTART_DISABLED)
		return 0;
	if (s->config.admission_failures) {
		a.policy = HA_ADMIT_HOST_FAILURES;
		a.failures = s->config.admission_failures;
	} else if (s->config.admission_percent) {
		a.policy = HA_ADMIT_PERCENT;
		a.percent = s->config.admission_percent;
	} else {
		return 0;
	}
	hosts = kb_calloc(nh ? nh : 1, sizeof(*hosts));
	if (!hosts) {
		kb_errmsg_setf(e, "admission control: out of memory");
		return -ENOMEM;
	}
	plan_hosts(s, hosts, vm->uuid);
	rv = ha_admission_check(&a, hosts, nh, cpu_mhz, mem_mib, msg);
	kb_free(hosts);
	if (rv == -ENOSPC) {
		kb_errmsg_setf(e, "%s", msg);
		kb_log(d->log, KB_LOG_WARN, "%s", e->msg);
		return -ENOSPC;
	}
	return rv;
}

/* ---- VMs moved and not yet started (restart-after waits for them) ------------------------- */

static void moved_add(struct cd_ha *ha, const char *uuid, uint64_t epoch, uint64_t now)
{
	if (ha->n_moved == ha->cap_moved) {
		unsigned cap = ha->cap_moved ? 2 * ha->cap_moved : 64;
		struct moved *m = kb_realloc(ha->moved, cap * sizeof(*m));

		if (!m)
			return; /* then it counts as running at once, as after a leader change */
		ha->moved = m;
		ha->cap_moved = cap;
	}
	snprintf(ha->moved[ha->n_moved].uuid, sizeof(ha->moved[0].uuid), "%s", uuid);
	ha->moved[ha->n_moved].epoch = epoch;
	ha->moved[ha->n_moved].at_ms = now;
	ha->n_moved++;
}

/* Moved to its current owner and epoch, and not reported started yet. */
static bool awaiting_start(struct cd_ha *ha, const struct cd_vm *vm, uint64_t now)
{
	for (unsigned i = 0; i < ha->n_moved; i++) {
		struct moved *m = &ha->moved[i];

		if (strcmp(m->uuid, vm->uuid) != 0)
			continue;
		if (m->epoch == vm->epoch && now - m->at_ms < HA_STARTED_MS)
			return true;
		ha->moved[i] = ha->moved[--ha->n_moved]; /* moved again, or given up on */
		return false;
	}
	return false;
}

void cd_ha_started(struct cd_daemon *d, const struct cd_vm *vm)
{
	struct cd_ha *ha = d->ha;

	for (unsigned i = 0; ha && i < ha->n_moved; i++)
		if (strcmp(ha->moved[i].uuid, vm->uuid) == 0 && ha->moved[i].epoch <= vm->epoch) {
			ha->moved[i] = ha->moved[--ha->n_moved];
			return;
		}
}

/* ---- hosts a VM could not start on ---------------------------------------------------------- */

static struct excl *excl_of(struct cd_ha *ha, const char *uuid)
{
	for (unsigned i = 0; i < ha->n_excl; i++)
		if (strcmp(ha->excl[i].uuid, uuid) == 0)
			return &ha->excl[i];
	return NULL;
}

static bool excluded_owner(struct cd_ha *ha, const struct cd_vm *vm)
{
	const struct excl *x = excl_of(ha, vm->uuid);

	for (unsigned i = 0; x && i < x->n; i++)
		if (x->hosts[i] == vm->owner)
			return true;
	return false;
}

static void excl_prune(struct cd_ha *ha, uint64_t now)
{
	for (unsigned i = 0; i < ha->n_excl;)
		if (now - ha->excl[i].at_ms >= HA_EXCL_MS)
			ha->excl[i] = ha->excl[--ha->n_excl];
		else
			i++;
}

static int submit_event(struct cd_daemon *d, uint64_t host, const char *vm, const char *text);

void cd_ha_start_failed(struct cd_daemon *d, const struct cd_vm *vm, uint64_t host,
			const char *error)
{
	struct cd_ha *ha = d->ha;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	const struct cd_host *h = cd_state_host(s, host);
	bool moving = ha && s->config.set && !s->config.ha_disabled &&
		      vm->desired_power == KEEL__CLUSTER__POWER_STATE__POWER_ON &&
		      vm->priority != KEEL__CLUSTER__RESTART_PRIORITY__RESTART_DISABLED &&
		      !cd_ha_ft_takes_it(s, vm);
	char text[256];
	struct excl *x;

	snprintf(text, sizeof(text), "HA: VM %s could not power on on host %s: %.120s%s", vm->name,
		 h ? h->name : "?", error, moving ? "; placing it on another host" : "");
	kb_log(d->log, KB_LOG_WARN, "%s", text);
	submit_event(d, host, vm->uuid, text);
	if (!moving)
		return;
	x = excl_of(ha, vm->uuid);
	if (!x) {
		if (ha->n_excl == ha->cap_excl) {
			unsigned cap = ha->cap_excl ? 2 * ha->cap_excl : 16;
			struct excl *n = kb_realloc(ha->excl, cap * sizeof(*n));

			if (!n)
				return;
			ha->excl = n;
			ha->cap_excl = cap;
		}
		x = &ha->excl[ha->n_excl++];
		memset(x, 0, sizeof(*x));
		snprintf(x->uuid, sizeof(x->uuid), "%s", vm->uuid);
	}
	x->at_ms = kb_now_ns() / 1000000u;
	for (unsigned i = 0; i < x->n; i++)
		if (x->hosts[i] == host)
			return;
	if (x->n < HA_PLAN_EXCLUDE_MAX)
		x->hosts[x->n++] = host;
}

/* ---- pending moves and one-time notes -------------------------------------------------- */

static bool is_pending(struct cd_ha *ha, const struct cd_vm *vm, uint64_t now)
{
	for (unsigned i = 0; i < ha->n_pend; i++) {
		struct pending *p = &ha->pend[i];

		if (strcmp(p->uuid, vm->uuid) != 0)
			continue;
		if (vm->epoch >= p->epoch || now >= p->until_ms) {
			ha->pend[i] = ha->pend[--ha->n_pend]; /* applied, or given up on */
			return false;
		}
		return true;
	}
	return false;
}

static void add_pending(struct cd_ha *ha, const char *uuid, uint64_t epoch, uint64_t now)
{
	if (ha->n_pend == ha->cap_pend) {
		unsigned cap = ha->cap_pend ? 2 * ha->cap_pend : 64;
		struct pending *p = kb_realloc(ha->pend, cap * sizeof(*p));

		if (!p)
			return; /* the epoch check in apply refuses a second identical change */
		ha->pend = p;
		ha->cap_pend = cap;
	}
	snprintf(ha->pend[ha->n_pend].uuid, sizeof(ha->pend[0].uuid), "%s", uuid);
	ha->pend[ha->n_pend].epoch = epoch;
	ha->pend[ha->n_pend].until_ms = now + HA_PENDING_MS;
	ha->n_pend++;
}

static bool said_before(struct cd_ha *ha, const struct cd_vm *vm)
{
	for (unsigned i = 0; i < ha->n_said; i++)
		if (ha->said[i].epoch == vm->epoch && strcmp(ha->said[i].uuid, vm->uuid) == 0)
			return true;
	snprintf(ha->said[ha->said_next].uuid, sizeof(ha->said[0].uuid), "%s", vm->uuid);
	ha->said[ha->said_next].epoch = vm->epoch;
	ha->said_next = (ha->said_next + 1) % HA_SAID_MAX;
	if (ha->n_said < HA_SAID_MAX)
		ha->n_said++;
	return false;
}

static void on_submitted(struct cd_daemon *d, void *arg, int status, int code, const char *reason)
{
	char *uuid = arg;

	if (status || code)
		kb_log(d->log, KB_LOG_WARN, "HA: VM %s: the owner change was not applied: %s",
		       uuid, reason ? reason : "not committed");
	kb_free(uuid);
}

static int submit_event(struct cd_daemon *d, uint64_t host, const char *vm, const char *text)
{
	Keel__Cluster__Event ev = KEEL__CLUSTER__EVENT__INIT;
	Keel__Cluster__EventAdd ea = KEEL__CLUSTER__EVENT_ADD__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	struct kb_errmsg e = {{0}};

	ev.at_ms = cd_now_ms();
	ev.kind = KEEL__CLUSTER__EVENT_KIND__EVENT_HA;
	ev.host = host;
	ev.vm = (char *)vm;
	ev.message = (char *)text;
	ea.event = &ev;
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_EVENT_ADD;
	c.event_add = &ea;
	return cd_submit(d, &c, NULL, NULL, &e);
}

static const char *why(const struct cd_state *s, const struct cd_vm *vm)
{
	const struct cd_host *h = cd_state_host(s, vm->owner);

	if (!h || h->state == KEEL__CLUSTER__HOST_STATE__HOST_LEFT)
		return "left the cluster";
	if (h->state == KEEL__CLUSTER__HOST_STATE__HOST_FAILED)
		return "failed";
	if (h->maintenance)
		return "is in maintenance mode";
	if (h->state == KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED)
		return "could not power it on";
	return "lost the cluster and released it";
}

static int move(struct cd_ha *ha, const struct cd_state *s, const struct cd_vm *vm, uint64_t to,
		uint64_t now)
{
	struct cd_daemon *d = ha->d;
	Keel__Cluster__VmChangeOwner co = KEEL__CLUSTER__VM_CHANGE_OWNER__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	const struct cd_host *from = cd_state_host(s, vm->owner), *dst = cd_state_host(s, to);
	struct kb_errmsg e = {{0}};
	char text[256], *arg;

	snprintf(text, sizeof(text), "HA: restarting VM %s on host %s (host %s %s)", vm->name,
		 dst ? dst->name : "?", from ? from->name : "?", why(s, vm));
	submit_event(d, to, vm->uuid, text);
	co.uuid = (char *)vm->uuid;
	co.new_owner = to;
	co.new_epoch = vm->epoch + 1;
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_CHANGE_OWNER;
	c.vm_change_owner = &co;
	arg = kb_strdup(vm->uuid);
	if (!arg)
		return -ENOMEM;
	if (cd_submit(d, &c, on_submitted, arg, &e)) {
		kb_log(d->log, KB_LOG_WARN, "HA: VM %s: %s", vm->name, e.msg);
		kb_free(arg);
		return -EAGAIN;
	}
	kb_log(d->log, KB_LOG_INFO, "%s, epoch %" PRIu64, text, vm->epoch + 1);
	add_pending(ha, vm->uuid, vm->epoch + 1, now);
	moved_add(ha, vm->uuid, vm->epoch + 1, now);
	return 0;
}

/* ---- lock files of VMs whose owner may have let go (worker) ------------------------------ */

static bool released_now(struct cd_ha *ha, const struct cd_vm *vm)
{
	for (unsigned i = 0; i < ha->n_released; i++)
		if (ha->released_epoch[i] == vm->epoch && strcmp(ha->released[i], vm->uuid) == 0)
			return true;
	return false;
}

static bool vm_dir_visible(const char *lock_path)
{
	char dir[PATH_MAX];
	struct stat st;

	snprintf(dir, sizeof(dir), "%s", lock_path);
	return stat(dirname(dir), &st) == 0 && S_ISDIR(st.st_mode);
}

static void lock_work(uv_work_t *w)
{
	struct cd_ha *ha = w->data;

	for (unsigned i = 0; i < ha->n_lq; i++) {
		struct lockq *q = &ha->lq[i];
		struct ha_lock lk;
		struct kb_errmsg e = {{0}};

		int rv = ha_lock_read(q->path, &lk, &e);

		/* no lock file in a VM directory we can see: it never ran under the lock, so
		 * nobody runs it (a directory we cannot see proves nothing) */
		q->released = (rv == KB_ENOTFOUND && vm_dir_visible(q->path)) ||
			      (rv == 0 && lk.state == HA_LOCK_RELEASED && lk.epoch == q->epoch &&
			       strcmp(lk.vm_uuid, q->uuid) == 0);
	}
}

static void lock_done(uv_work_t *w, int status)
{
	struct cd_ha *ha = w->data;
	unsigned n = 0;

	ha->busy = false;
	if (ha->stopping) {
		kb_free(ha->lq);
		kb_free(ha->released);
		kb_free(ha->released_epoch);
		kb_free(ha->pend);
		kb_free(ha->excl);
		kb_free(ha->moved);
		kb_free(ha);
		return;
	}
	kb_free(ha->released);
	kb_free(ha->released_epoch);
	ha->released = NULL;
	ha->released_epoch = NULL;
	ha->n_released = 0;
	if (status == 0 && ha->n_lq) {
		ha->released = kb_calloc(ha->n_lq, sizeof(*ha->released));
		ha->released_epoch = kb_calloc(ha->n_lq, sizeof(*ha->released_epoch));
		for (unsigned i = 0; ha->released && ha->released_epoch && i < ha->n_lq; i++)
			if (ha->lq[i].released) {
				strcpy(ha->released[n], ha->lq[i].uuid);
				ha->released_epoch[n++] = ha->lq[i].epoch;
			}
		ha->n_released = n;
	}
}

/* Queues the lock reads of VMs whose owner may have released them. */
static void lock_scan(struct cd_ha *ha, const struct cd_state *s, uint64_t now)
{
	unsigned nv = cd_state_n_vms(s), n = 0;
	struct lockq *q;

	if (ha->busy || now - ha->last_lock_ms < HA_LOCK_MS)
		return;
	ha->last_lock_ms = now;
	for (unsigned k = 0; k < nv; k++) {
		const struct cd_vm *vm = cd_state_vm_at(s, k);

		if (protected_vm(s, vm) && owner_may_release(s, vm))
			n++;
	}
	if (n == 0) {
		ha->n_released = 0;
		return;
	}
	q = kb_realloc(ha->lq, n * sizeof(*q));
	if (!q)
		return;
	ha->lq = q;
	ha->n_lq = 0;
	for (unsigned k = 0; k < nv; k++) {
		const struct cd_vm *vm = cd_state_vm_at(s, k);
		char dir[PATH_MAX];
		struct lockq *x;

		if (!protected_vm(s, vm) || !owner_may_release(s, vm))
			continue;
		x = &q[ha->n_lq++];
		snprintf(x->uuid, sizeof(x->uuid), "%s", vm->uuid);
		snprintf(dir, sizeof(dir), "%s", vm->vmx_path);
		snprintf(x->path, sizeof(x->path), "%s/%s", dirname(dir), HA_LOCK_NAME);
		x->epoch = vm->epoch;
		x->released = false;
	}
	ha->work.data = ha;
	if (uv_queue_work(ha->d->loop, &ha->work, lock_work, lock_done) == 0)
		ha->busy = true;
}

/* ---- the tick ---------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
	struct cd_ha *ha = t->data;
	struct cd_daemon *d = ha->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	unsigned nh, nv, n = 0;
	struct ha_plan_host *hosts = NULL;
	struct ha_plan_vm *vms = NULL;
	uint32_t *group = NULL, *hgroups = NULL; /* must-anti-affinity rules (drs.c) */
	unsigned n_grouped = 0;
	uint64_t now = kb_now_ns() / 1000000u;

	if (!cd_node_is_ready_leader(d) || !s->config.set || s->config.ha_disabled)
		return;
	excl_prune(ha, now);
	lock_scan(ha, s, now);
	nh = cd_state_n_hosts(s);
	nv = cd_state_n_vms(s);
	for (unsigned k = 0; k < nv; k++) {
		const struct cd_vm *vm = cd_state_vm_at(s, k);

		if (protected_vm(s, vm) &&
		    (owner_dead(s, vm) || (owner_may_release(s, vm) && released_now(ha, vm)) ||
		     excluded_owner(ha, vm)) &&
		    !is_pending(ha, vm, now))
			n++;
	}
	if (n == 0)
		return;
	hosts = kb_calloc(nh ? nh : 1, sizeof(*hosts));
	vms = kb_calloc(nv, sizeof(*vms));
	group = kb_calloc(nv, sizeof(*group));
	hgroups = kb_calloc(nv, sizeof(*hgroups));
	if (!hosts || !vms || !group || !hgroups)
		goto out;
	plan_hosts(s, hosts, NULL);
	cd__drs_anti_groups(s, group);
	n = 0;
	for (unsigned k = 0; k < nv; k++) {
		const struct cd_vm *vm = cd_state_vm_at(s, k);
		struct ha_plan_vm *p;
		bool move_it = protected_vm(s, vm) &&
			       (owner_dead(s, vm) ||
				(owner_may_release(s, vm) && released_now(ha, vm)) ||
				excluded_owner(ha, vm));
		const struct excl *x = excl_of(ha, vm->uuid);

		/* Every protected VM is in the plan so restart-after can see which run. */
		if (vm->desired_power != KEEL__CLUSTER__POWER_STATE__POWER_ON)
			continue;
		if (move_it && is_pending(ha, vm, now))
			continue;
		p = &vms[n++];
		p->uuid = vm->uuid;
		p->priority = prio_of(vm->priority);
		p->mem_mib = vm->mem_mib;
		p->cpu_mhz = vm->cpu_mhz;
		p->group = group[k];
		p->running = !move_it && !awaiting_start(ha, vm, now);
		p->starting = !move_it && !p->running;
		for (unsigned j = 0; j < vm->n_restart_after && j < HA_PLAN_AFTER_MAX; j++)
			p->after[p->n_after++] = vm->restart_after[j];
		for (unsigned j = 0; x && j < x->n; j++)
			p->exclude[p->n_exclude++] = x->hosts[j];
	}
	/* Each host holds the groups of the VMs that stay on it (few VMs have a group);
	 * group[] has been copied into the plan and now lists those VMs. */
	for (unsigned k = 0; k < n; k++)
		if (vms[k].group && (vms[k].running || vms[k].starting))
			group[n_grouped++] = k;
	for (unsigned i = 0, off = 0; i < nh; i++) {
		hosts[i].groups = &hgroups[off];
		for (unsigned g = 0; g < n_grouped; g++) {
			const struct ha_plan_vm *p = &vms[group[g]];

			if (cd_state_vm(s, p->uuid)->owner == hosts[i].id)
				hgroups[off + hosts[i].n_groups++] = p->group;
		}
		off += (unsigned)hosts[i].n_groups;
	}
	if (ha_plan_place(hosts, nh, vms, n) < 0)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		const struct cd_vm *vm = cd_state_vm(s, vms[i].uuid);
		char text[256];

		if (!vm)
			continue;
		if (vms[i].result == HA_PLAN_PLACED) {
			move(ha, s, vm, vms[i].host, now);
		} else if ((vms[i].result == HA_PLAN_NO_CAPACITY ||
			    vms[i].result == HA_PLAN_WAITING) &&
			   !said_before(ha, vm)) {
			snprintf(text, sizeof(text), "HA: VM %s waits to restart: %s", vm->name,
				 ha_plan_result_str(vms[i].result));
			kb_log(d->log, KB_LOG_WARN, "%s", text);
			submit_event(d, vm->owner, vm->uuid, text);
		}
	}
out:
	kb_free(hosts);
	kb_free(vms);
	kb_free(group);
	kb_free(hgroups);
}

int cd_ha_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	struct cd_ha *ha;

	if (d->ha)
		return 0;
	ha = kb_calloc(1, sizeof(*ha));
	if (!ha) {
		kb_errmsg_setf(e, "HA: out of memory");
		return -ENOMEM;
	}
	ha->d = d;
	uv_timer_init(d->loop, &ha->timer);
	ha->timer.data = ha;
	uv_timer_start(&ha->timer, on_tick, HA_TICK_MS, HA_TICK_MS);
	d->ha = ha;
	return 0;
}

static void on_closed(uv_handle_t *h)
{
	struct cd_ha *ha = h->data;

	if (ha->busy)
		return; /* lock_done frees it */
	kb_free(ha->lq);
	kb_free(ha->released);
	kb_free(ha->released_epoch);
	kb_free(ha->pend);
	kb_free(ha->excl);
	kb_free(ha->moved);
	kb_free(ha);
}

void cd_ha_stop(struct cd_daemon *d)
{
	struct cd_ha *ha = d->ha;

	if (!ha)
		return;
	d->ha = NULL;
	ha->stopping = true;
	uv_close((uv_handle_t *)&ha->timer, on_closed);
}
