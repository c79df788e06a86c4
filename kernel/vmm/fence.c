/*
 * Self-fencing: a thread of vmx reads its host's heartbeat record every read_ms and, when
 * given, its VM's lock. It notes, by vmx's own monotonic clock, when a read that saw the
 * counter advance started; once lease - margin has passed without an advance
 * (ha_self_fence_due), or the lock stops naming (this host, this epoch), it stops the VM
 * for good — before any other host may call the lease expired and take the VM (the
 * timing argument is in ha/lease.h). Failed or torn reads count as no advance. The thread
 * wakes at the fence deadline, not only at its reads.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "ha/hb.h"
#include "ha/lease.h"
#include "ha/lock.h"
#include "kernel/vmm/fence.h"
#include "lib/heap.h"
#include "lib/time.h"

struct vmm_fence {
	struct vmm_vm *vm;
	struct vmm_fence_config cfg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool quit;
	uint64_t last_counter;
	uint64_t last_advance_ns;
};

/* One read of the record; updates the last advance. */
static void read_hb(struct vmm_fence *f)
{
	struct ha_hb_record rec;
	uint64_t started = kb_now_ns();

	if (ha_hb_read(f->cfg.hb_path, &rec, NULL) == 0 && rec.host_id == f->cfg.host_id &&
	    rec.counter != f->last_counter) {
		f->last_counter = rec.counter;
		f->last_advance_ns = started;
	}
}

/* 0 when the lock holds (uuid, host, epoch); else a message in why. */
static int check_lock(struct vmm_fence *f, char *why, size_t size)
{
	struct ha_lock lk;
	struct kb_errmsg e = {{0}};

	if (f->cfg.lock_path == NULL)
		return 0;
	int rv = ha_lock_read(f->cfg.lock_path, &lk, &e);
	if (rv < 0) {
		snprintf(why, size, "the VM's lock cannot be read: %s", e.msg);
		return rv;
	}
	if (!ha_lock_may_run(&lk, f->cfg.vm_uuid, f->cfg.host_id, f->cfg.epoch, f->cfg.host_id,
			     f->cfg.epoch)) {
		snprintf(why, size, "the VM's lock names host %llu at epoch %llu (%s), not host %llu "
				    "at epoch %llu",
			 (unsigned long long)lk.host_id, (unsigned long long)lk.epoch,
			 lk.state == HA_LOCK_HELD ? "held" : "released",
			 (unsigned long long)f->cfg.host_id, (unsigned long long)f->cfg.epoch);
		return KB_EFENCED;
	}
	return 0;
}

static void fence(struct vmm_fence *f, const char *why)
{
	char msg[300];

	snprintf(msg, sizeof(msg), "fenced: %s", why);
	vmm_vm_stop(f->vm, VMM_STOP_FENCED, msg);
}

static void *fence_thread(void *arg)
{
	struct vmm_fence *f = arg;
	uint64_t next_read = kb_now_ns();
	char why[256];

	pthread_setname_np(pthread_self(), "fence");
	pthread_mutex_lock(&f->lock);
	while (!f->quit) {
		uint64_t now = kb_now_ns();
		if (now >= next_read) {
			pthread_mutex_unlock(&f->lock);
			read_hb(f);
			int lk = check_lock(f, why, sizeof(why));
			pthread_mutex_lock(&f->lock);
			if (lk < 0) {
				fence(f, why);
				break;
			}
			next_read = kb_now_ns() + (uint64_t)f->cfg.read_ms * KB_NSEC_PER_MSEC;
		}
		now = kb_now_ns();
		if (ha_self_fence_due(f->last_advance_ns, now, f->cfg.lease_ms, f->cfg.margin_ms)) {
			/* One more read first: the last one may be most of a read period old, and
			 * an advance since then is the lease alive (reads only ever show writes
			 * that happened, so this never keeps a stopped host's VM running). */
			pthread_mutex_unlock(&f->lock);
			read_hb(f);
			pthread_mutex_lock(&f->lock);
			now = kb_now_ns();
		}
		if (ha_self_fence_due(f->last_advance_ns, now, f->cfg.lease_ms, f->cfg.margin_ms)) {
			snprintf(why, sizeof(why),
				 "the host's heartbeat record has not advanced for %llu ms",
				 (unsigned long long)((now - f->last_advance_ns) / KB_NSEC_PER_MSEC));
			fence(f, why);
			break;
		}
		uint64_t deadline = ha_self_fence_deadline_ns(f->last_advance_ns, f->cfg.lease_ms,
							      f->cfg.margin_ms);
		uint64_t wake = next_read < deadline ? next_read : deadline;
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		uint64_t abs = (uint64_t)ts.tv_sec * KB_NSEC_PER_SEC + (uint64_t)ts.tv_nsec +
			       (wake > now ? wake - now : 0);
		ts.tv_sec = (time_t)(abs / KB_NSEC_PER_SEC);
		ts.tv_nsec = (long)(abs % KB_NSEC_PER_SEC);
		pthread_cond_timedwait(&f->cond, &f->lock, &ts);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

int vmm_fence_start(struct vmm_vm *vm, const struct vmm_fence_config *cfg,
		    struct vmm_fence **out, struct kb_errmsg *err)
{
	struct ha_hb_record rec;
	char why[256];
	int rv;

	if (cfg->hb_path == NULL || cfg->host_id == 0 ||
	    (cfg->lock_path != NULL && (cfg->vm_uuid == NULL || cfg->vm_uuid[0] == '\0'))) {
		kb_errmsg_setf(err, "fencing needs a heartbeat record, a host id and, with a lock, "
				    "the VM's uuid");
		return KB_ECONFIG;
	}
	struct vmm_fence *f = kb_calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	f->vm = vm;
	f->cfg = *cfg;
	if (f->cfg.lease_ms == 0)
		f->cfg.lease_ms = HA_LEASE_MS;
	if (f->cfg.margin_ms == 0)
		f->cfg.margin_ms = HA_SELF_FENCE_MARGIN_MS;
	if (f->cfg.read_ms == 0)
		f->cfg.read_ms = HA_HB_INTERVAL_MS;
	pthread_mutex_init(&f->lock, NULL);
	pthread_cond_init(&f->cond, NULL);

	/* The guest may start only with a readable record of this host and the lock held. */
	uint64_t started = kb_now_ns();
	rv = ha_hb_read(cfg->hb_path, &rec, err);
	if (rv == 0 && rec.host_id != cfg->host_id) {
		kb_errmsg_setf(err, "%s is the record of host %llu, not %llu", cfg->hb_path,
			       (unsigned long long)rec.host_id, (unsigned long long)cfg->host_id);
		rv = KB_EFENCED;
	}
	if (rv == 0 && check_lock(f, why, sizeof(why)) < 0) {
		kb_errmsg_setf(err, "%s", why);
		rv = KB_EFENCED;
	}
	if (rv == 0) {
		f->last_counter = rec.counter;
		f->last_advance_ns = started;
		rv = -pthread_create(&f->thread, NULL, fence_thread, f);
	}
	if (rv < 0) {
		kb_errmsg_wrapf(err, "the guest may not run");
		pthread_mutex_destroy(&f->lock);
		pthread_cond_destroy(&f->cond);
		kb_free(f);
		return rv;
	}
	*out = f;
	return 0;
}

void vmm_fence_stop(struct vmm_fence *f)
{
	if (f == NULL)
		return;
	pthread_mutex_lock(&f->lock);
	f->quit = true;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
	pthread_join(f->thread, NULL);
	pthread_mutex_destroy(&f->lock);
	pthread_cond_destroy(&f->cond);
	kb_free(f);
}

static enum ha_lease_state committed_over(void *arg, uint64_t host_id)
{
	return HA_LEASE_EXPIRED;
}

int vmm_fence_claim(struct vmm_vm *vm, struct vmm_fence_config *cfg, uint64_t epoch,
		    struct vmm_fence **out, struct kb_errmsg *err)
{
	int rv;

	*out = NULL;
	cfg->epoch = epoch;
	if (cfg->lock_path != NULL) {
		rv = ha_lock_acquire(cfg->lock_path, cfg->vm_uuid, cfg->host_id, epoch,
				     committed_over, NULL, 0, NULL, err);
		if (rv < 0) {
			kb_errmsg_wrapf(err, "taking the VM's lock at epoch %llu",
					(unsigned long long)epoch);
			return rv;
		}
	}
	if (cfg->hb_path != NULL)
		return vmm_fence_start(vm, cfg, out, err);
	return 0;
}
