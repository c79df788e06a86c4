/*
 * vMotion, vmkernel's part (docs/vmotion.md "vmkernel's part"): vmkernel starts and ends
 * the two vmx processes of a live migration and, on the source, asks the cluster to commit
 * the switchover between the vmx's "ready" and its GO.
 *
 * Destination (MigrateIn): the .vmx must be on a shared datastore of this host and name the
 * given uuid, the VM must not run here, and the host needs at least one VMotion-tagged
 * VMkernel adapter. A VM this host does not know is registered locally only (clusterd's
 * registry names the source until the switchover; inventory.conf lists it only once its
 * guest runs here). Then admission, cgroup and taps as for a power-on, one listening TCP
 * socket per VMotion adapter (port 0, made inside the adapter's netstack), and a vmx in
 * incoming mode that inherits them (--incoming-fd), fenced at the given epoch on a shared
 * datastore so it takes the lock at GO. VmxMigrateIn goes out on a connection whose
 * deferred reply a thread of its own waits for; the request returns at once with the
 * endpoints. Meanwhile the VM is "incoming" and busy. Resumed: powered on here, owned at
 * the epoch. Anything else (the stream failed, a cancel, the vmx killed): the vmx is gone,
 * taps and cgroup removed, a registration made for the migration undone, and the VM's last
 * event says why.
 *
 * Source (MigrateOut): kernel/vm/migrate_out.c. The helpers both sides use (the migration
 * record, deferred vmx replies, VmxMigrateCommit) are here, declared in migrate_int.h.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "ha/hb.h"
#include "ha/lock.h"
#include "kernel/core/subsys.h"
#include "kernel/net/stack_socket.h"
#include "kernel/vm/migrate_int.h"
#include "kernel/vm/vm.h"
#include "kernel/vm/world.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "lib/time.h"

#define CALL_MS	  5000 /* plain vmx requests */
#define TICK_MS	  250  /* a wait on a deferred reply checks the vmx this often */
#define REPLY_MAX (1u << 20)
#define BUSY_IN	  "incoming migration"

/* ---- helpers ----------------------------------------------------------------------- */

/* Copies the vmx's figures and phase into vm->mig. vm->lock held. */
void vmk__migrate_note(struct vmk_vm *vm, const Keel__Vmk__VmxMigrateReply *mr)
{
	struct vmk_vm_mig *m = &vm->mig;

	if (mr == NULL)
		return;
	if (mr->phase != NULL && mr->phase[0] != '\0')
		snprintf(m->phase, sizeof(m->phase), "%s", mr->phase);
	m->fig.round = mr->round;
	m->fig.throttle_pct = mr->throttle_pct;
	m->fig.streams = mr->streams;
	m->fig.bytes_sent = mr->bytes_sent;
	m->fig.pages_sent = mr->pages_sent;
	m->fig.zero_pages = mr->zero_pages;
	m->fig.dirty_rate = mr->dirty_rate;
	m->fig.bandwidth = mr->bandwidth;
	m->fig.est_downtime_us = mr->est_downtime_us;
	m->fig.downtime_us = mr->downtime_us;
	m->fig.total_us = mr->total_us;
	if (mr->error_code != 0) {
		m->error_code = mr->error_code;
		snprintf(m->error, sizeof(m->error), "%s", mr->error ? mr->error : "");
	}
}

/* Ends the migration record with phase and, when code < 0, the error. vm->lock held. */
void vmk__migrate_finish(struct vmk_vm *vm, const char *phase, int code, const char *error)
{
	vm->mig.active = false;
	snprintf(vm->mig.phase, sizeof(vm->mig.phase), "%s", phase);
	if (code < 0) {
		vm->mig.error_code = code;
		snprintf(vm->mig.error, sizeof(vm->mig.error), "%s", error);
	}
	pthread_cond_broadcast(&vm->cond);
}

/* Fills info from vm->mig (strings allocated). vm->lock held. */
void vmk__migrate_fill(struct vmk_vm *vm, Keel__Vmk__VmkMigrateInfo *info)
{
	const struct vmk_vm_mig *m = &vm->mig;

	vmk_vm_migrate_info_free(info);
	info->vm = kb_strdup(vm->cfg.name);
	info->uuid = kb_strdup(vm->cfg.uuid);
	info->role = kb_strdup(m->dest ? "destination" : "source");
	info->phase = kb_strdup(m->phase);
	info->endpoints =
	    m->nr_endpoints ? kb_calloc((size_t)m->nr_endpoints, sizeof(char *)) : NULL;
	for (int i = 0; info->endpoints != NULL && i < m->nr_endpoints; i++) {
		info->endpoints[i] = kb_strdup(m->endpoints[i]);
		info->n_endpoints = (size_t)i + 1;
	}
	info->round = m->fig.round;
	info->bytes_sent = m->fig.bytes_sent;
	info->pages_sent = m->fig.pages_sent;
	info->zero_pages = m->fig.zero_pages;
	info->dirty_rate = m->fig.dirty_rate;
	info->bandwidth = m->fig.bandwidth;
	info->est_downtime_us = m->fig.est_downtime_us;
	info->throttle_pct = m->fig.throttle_pct;
	info->downtime_us = m->fig.downtime_us;
	info->total_us = m->fig.total_us;
	info->error_code = m->error_code;
	info->error = m->error[0] ? kb_strdup(m->error) : NULL;
	info->epoch = m->epoch;
}

/* kb_free() of a string vmk__migrate_fill() made (not the INIT value, protobuf-c's empty
 * string). */
static void free_str(char *s)
{
	if (s != protobuf_c_empty_string)
		kb_free(s);
}

void vmk_vm_migrate_info_free(Keel__Vmk__VmkMigrateInfo *info)
{
	free_str(info->vm);
	free_str(info->uuid);
	free_str(info->role);
	free_str(info->phase);
	for (size_t i = 0; i < info->n_endpoints; i++)
		free_str(info->endpoints[i]);
	kb_free(info->endpoints);
	free_str(info->error);
	keel__vmk__vmk_migrate_info__init(info);
}

/* Waits (at most STOP_MS) until the migration's own thread has ended it. vm->lock held. */
static void wait_ended(struct vmk_vm *vm)
{
	uint64_t deadline = kb_now_ns() + (uint64_t)STOP_MS * KB_NSEC_PER_MSEC;

	while (vm->mig.active && kb_now_ns() < deadline) {
		pthread_mutex_unlock(&vm->lock);
		kb_sleep_ns(5 * KB_NSEC_PER_MSEC);
		pthread_mutex_lock(&vm->lock);
	}
}

/* Sends rq to the VM's vmx on a connection of its own, for a deferred reply. The
 * descriptor, or an error. */
int vmk__migrate_deferred_send(struct vmk_vm *vm, Keel__Vmk__VmxRequest *rq, struct kb_errmsg *err)
{
	struct timeval tv = {.tv_sec = CALL_MS / 1000};
	char ctl[PATH_MAX];
	int fd, rv;

	vmk_vm_ctl_path(vm, ctl, sizeof(ctl));
	fd = kb_unix_connect(ctl);
	if (fd < 0) {
		kb_errmsg_setf(err, "cannot reach the VM's vmx at %s: %s", ctl, kb_strerror(fd));
		return fd;
	}
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	rv = kb_frame_send_pb(fd, &rq->base);
	if (rv < 0) {
		kb_errmsg_setf(err, "sending to the VM's vmx: %s", kb_strerror(rv));
		close(fd);
		return rv;
	}
	return fd;
}

/* Why the vmx ended, once the loop saw it (waits up to 2 s for that). vm->lock held. */
static void describe_end(struct vmk_vm *vm, char *out, size_t size)
{
	char tail[200];

	vmk__vmx_wait_exit(vm, 2000);
	vmk__vmx_log_tail(vm, tail, sizeof(tail));
	if (!vm->exited)
		snprintf(out, size, "vmx closed its control connection: %s", tail);
	else if (vm->exit_code >= 0 && vm->exit_code != INT_MIN)
		snprintf(out, size, "vmx ended with status %d: %s", vm->exit_code, tail);
	else if (vm->exit_code == INT_MIN)
		snprintf(out, size, "vmx ended: %s", tail);
	else
		snprintf(out, size, "vmx killed by signal %d (%s)", -vm->exit_code,
			 strsignal(-vm->exit_code));
}

/* Waits for the deferred reply on fd, for as long as the vmx lives: its end closes the
 * connection. 0 and *out (freed with keel__vmk__vmx_reply__free_unpacked, also on the
 * vmx's error code, which is returned), or an error saying why there is no reply. */
int vmk__migrate_deferred_wait(struct vmk_vm *vm, int fd, Keel__Vmk__VmxReply **out,
			       struct kb_errmsg *err)
{
	struct timeval tv = {.tv_sec = CALL_MS / 1000};
	struct kb_buf in;
	int rv;

	*out = NULL;
	for (;;) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		int n = poll(&p, 1, TICK_MS);
		if (n < 0 && errno != EINTR) {
			rv = -errno;
			kb_errmsg_setf(err, "waiting for the vmx: %s", kb_strerror(rv));
			return rv;
		}
		if (n > 0)
			break;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	kb_buf_init(&in, REPLY_MAX);
	rv = kb_frame_recv(fd, &in, REPLY_MAX);
	if (rv < 0) {
		kb_buf_close(&in);
		pthread_mutex_lock(&vm->lock);
		describe_end(vm, err->msg, sizeof(err->msg));
		pthread_mutex_unlock(&vm->lock);
		return rv == -EPIPE || rv == KB_ETRUNCATED ? KB_ECANCELED : rv;
	}
	*out = keel__vmk__vmx_reply__unpack(NULL, in.len, in.data);
	kb_buf_close(&in);
	if (*out == NULL) {
		kb_errmsg_setf(err, "vmx sent an undecodable reply");
		return KB_EPROTO;
	}
	if ((*out)->code != 0) {
		kb_errmsg_setf(err, "%s",
			       (*out)->error ? (*out)->error : kb_strerror((*out)->code));
		return (*out)->code;
	}
	return 0;
}

/* One VmxMigrateCommit{commit, epoch} to the VM's vmx; its figures noted. */
int vmk__migrate_vmx_commit(struct vmk_vm *vm, bool commit, uint64_t epoch, int timeout_ms,
			    struct kb_errmsg *err)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxMigrateCommit c = KEEL__VMK__VMX_MIGRATE_COMMIT__INIT;
	Keel__Vmk__VmxReply *rp = NULL;
	char ctl[PATH_MAX];
	int rv;

	c.commit = commit;
	c.epoch = epoch;
	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_COMMIT;
	rq.migrate_commit = &c;
	vmk_vm_ctl_path(vm, ctl, sizeof(ctl));
	rv = vmk_vmx_call(ctl, &rq, &rp, timeout_ms, err);
	if (rp != NULL) {
		pthread_mutex_lock(&vm->lock);
		if (vm->mig.active)
			vmk__migrate_note(vm, rp->migrate);
		pthread_mutex_unlock(&vm->lock);
		keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	}
	return rv;
}

/* Ends an incoming vmx: "not committed" first (it exits with status 5), then SIGTERM, then
 * SIGKILL. vm->lock not held. */
static void end_incoming(struct vmk_vm *vm)
{
	struct kb_errmsg e = {{0}};

	vmk__migrate_vmx_commit(vm, false, 0, 1000, &e);
	pthread_mutex_lock(&vm->lock);
	vm->expect_exit = true;
	if (vmk__vmx_wait_exit(vm, 1000) < 0 && !vm->exited && vm->pid > 0) {
		kill(vm->pid, SIGTERM);
		if (vmk__vmx_wait_exit(vm, 2000) < 0 && !vm->exited && vm->pid > 0) {
			kill(vm->pid, SIGKILL);
			vmk__vmx_wait_exit(vm, STOP_MS);
		}
	}
	pthread_mutex_unlock(&vm->lock);
}

/* ---- destination ------------------------------------------------------------------- */

struct incoming {
	struct vmk_vm *vm;
	int fd; /* the connection that carries VmxMigrateIn's deferred reply */
};

/* The incoming migration failed (why): the vmx ends, what its start made goes, and a
 * registration made for the migration is undone. vm->lock not held. */
static void incoming_failed(struct vmk_vm *vm, int code, const char *why)
{
	struct vmk_host *h = vm->host;
	char event[256];
	bool registered;

	pthread_mutex_lock(&vm->lock);
	bool alive = !vm->exited && vm->pid > 0;
	pthread_mutex_unlock(&vm->lock);
	if (alive)
		end_incoming(vm);

	pthread_mutex_lock(&vm->lock);
	if (vm->mig.cancel)
		snprintf(event, sizeof(event), "incoming migration cancelled%s%s",
			 vm->mig.cancel_reason[0] ? ": " : "", vm->mig.cancel_reason);
	else
		snprintf(event, sizeof(event), "incoming migration failed: %s", why);
	/* The lock: taken by the vmx only at GO, and a GO that came was the cluster's word;
	 * a failed incoming vmx never held it otherwise. Left as it is. */
	memset(&vm->own, 0, sizeof(vm->own));
	vmk__vm_release(vm, VMK_POWERED_OFF, event);
	vmk__migrate_finish(vm, vm->mig.cancel ? "aborted" : "failed",
			    code < 0 ? code : KB_ECANCELED, event);
	registered = vm->mig.registered;
	if (!registered)
		vm->busy = NULL; /* else final: the VM leaves the list below */
	pthread_mutex_unlock(&vm->lock);
	if (registered)
		vmk__vm_unlist(h, vm);
	kb_log(h->log, KB_LOG_WARN, "VM %s: %s%s", vm->cfg.name, event,
	       registered ? " (registration for it undone)" : "");
}

/* The guest resumed here: the VM is powered on, owned at the migration's epoch. */
static void incoming_resumed(struct vmk_vm *vm)
{
	struct vmk_host *h = vm->host;
	char how[96] = "";
	bool registered;

	pthread_mutex_lock(&vm->lock);
	if (vm->exited) { /* it ended between RESUMED and now: as any other end of a vmx */
		char event[256];
		describe_end(vm, event, sizeof(event));
		memset(&vm->own, 0, sizeof(vm->own));
		vmk__vm_release(vm, VMK_POWERED_OFF, event);
		vmk__migrate_finish(vm, "failed", KB_ECANCELED, event);
		vm->busy = NULL;
		pthread_mutex_unlock(&vm->lock);
		kb_log(h->log, KB_LOG_WARN, "VM %s: migrated in, then %s", vm->cfg.name, event);
		return;
	}
	vm->power = VMK_POWERED_ON;
	vm->powered_on_ns = kb_now_ns();
	vm->expect_exit = false;
	if (vm->own.host != 0)
		snprintf(how, sizeof(how), "; owner at epoch %" PRIu64 "%s", vm->own.epoch,
			 vm->own.fenced ? ", lock held, fenced" : "");
	snprintf(vm->last_event, sizeof(vm->last_event),
		 "migrated in in %.0f ms (vmx pid %d; %.1f MiB received%s)",
		 (double)(kb_now_ns() - vm->mig.t0_ns) / 1e6, (int)vm->pid,
		 (double)vm->mig.fig.bytes_sent / (1024.0 * 1024.0), how);
	vmk__migrate_finish(vm, "done", 0, NULL);
	registered = vm->mig.registered;
	vm->mig.registered = false;
	vm->busy = NULL;
	pthread_mutex_unlock(&vm->lock);
	if (vmk__pidfile_write(vm) < 0)
		kb_log(h->log, KB_LOG_WARN, "VM %s: cannot write its pid record", vm->cfg.name);
	if (registered) {
		pthread_mutex_lock(&h->lock);
		vm->transient = false;
		int rv = vmk__inventory_save(h);
		pthread_mutex_unlock(&h->lock);
		if (rv < 0)
			kb_log(h->log, KB_LOG_WARN, "saving the inventory: %s", kb_strerror(rv));
	}
	kb_log(h->log, KB_LOG_INFO, "VM %s: %s", vm->cfg.name, vm->last_event);
}

static void *incoming_main(void *arg)
{
	struct incoming *w = arg;
	struct vmk_vm *vm = w->vm;
	Keel__Vmk__VmxReply *rp = NULL;
	struct kb_errmsg err = {{0}};
	int rv;

	rv = vmk__migrate_deferred_wait(vm, w->fd, &rp, &err);
	close(w->fd);
	kb_free(w);
	if (rp != NULL) {
		pthread_mutex_lock(&vm->lock);
		vmk__migrate_note(vm, rp->migrate);
		pthread_mutex_unlock(&vm->lock);
	}
	bool resumed = rv == 0 && rp != NULL && rp->migrate != NULL && rp->migrate->phase != NULL &&
		       strcmp(rp->migrate->phase, "resumed") == 0;
	if (rv == 0 && !resumed) {
		rv = KB_EPROTO;
		kb_errmsg_setf(&err, "vmx answered in phase %s",
			       rp && rp->migrate && rp->migrate->phase ? rp->migrate->phase : "?");
	}
	if (rp != NULL)
		keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	if (resumed)
		incoming_resumed(vm);
	else
		incoming_failed(vm, rv, err.msg);
	return NULL;
}

/* The VM for an incoming migration of uuid from real: the registered one (claimed), or a
 * new local registration. *registered says which. */
static int incoming_vm(struct vmk_host *h, const char *real, const char *uuid, struct vmk_vm **out,
		       bool *registered, struct kb_errmsg *err)
{
	struct vmk_vm *vm = vmk_vm_find(h, uuid);
	bool shared = false;
	int rv;

	*registered = false;
	if (vm != NULL) {
		pthread_mutex_lock(&vm->lock);
		if (strcmp(vm->vmx_path, real) != 0) {
			kb_errmsg_setf(err, "VM %s (uuid %s) is registered here from %s, not %s",
				       vm->cfg.name, vm->cfg.uuid, vm->vmx_path, real);
			rv = KB_EEXIST;
		} else if (vm->power == VMK_POWERED_ON) {
			kb_errmsg_setf(err, "VM %s is powered on here already", vm->cfg.name);
			rv = KB_ESTATE;
		} else if (vm->power == VMK_SUSPENDED) {
			kb_errmsg_setf(err, "VM %s is suspended here", vm->cfg.name);
			rv = KB_ESTATE;
		} else {
			rv = vmk__vm_claim(vm, BUSY_IN, err);
		}
		pthread_mutex_unlock(&vm->lock);
		if (rv < 0)
			return rv;
		rv = vmk_subsys_ds_shared(h, vm->datastore, &shared, NULL, 0);
		if (rv == 0 && !shared) {
			kb_errmsg_setf(err,
				       "VM %s is on datastore %s, which is local to this host: a "
				       "migration needs a shared datastore",
				       vm->cfg.name, vm->datastore);
			rv = KB_ECONFIG;
		}
		if (rv < 0) {
			pthread_mutex_lock(&vm->lock);
			vm->busy = NULL;
			pthread_mutex_unlock(&vm->lock);
			return rv;
		}
		*out = vm;
		return 0;
	}

	vm = vmk__vm_alloc(h);
	if (vm == NULL)
		return -ENOMEM;
	rv = vmk__vm_load(vm, real, err);
	if (rv == 0 && strcmp(vm->cfg.uuid, uuid) != 0) {
		kb_errmsg_setf(err, "%s names uuid %s, not %s", real,
			       vm->cfg.uuid[0] ? vm->cfg.uuid : "(none)", uuid);
		rv = KB_ECONFIG;
	}
	if (rv == 0 && vm->power == VMK_SUSPENDED) {
		kb_errmsg_setf(err, "VM %s has a suspended state (%s.vmss) in %s", vm->cfg.name,
			       vm->cfg.name, vm->dir);
		rv = KB_ESTATE;
	}
	if (rv == 0) {
		rv = vmk_subsys_ds_shared(h, vm->datastore, &shared, NULL, 0);
		if (rv == 0 && !shared) {
			kb_errmsg_setf(err,
				       "%s is on datastore %s, which is local to this host: a "
				       "migration needs a shared datastore",
				       real, vm->datastore);
			rv = KB_ECONFIG;
		}
	}
	if (rv == 0) {
		vm->busy = BUSY_IN;
		vm->transient = true;
		rv = vmk__vm_add(h, vm, err);
	}
	if (rv < 0) {
		vmk__vm_free(vm);
		return rv;
	}
	*registered = true;
	*out = vm;
	return 0;
}

int vmk_vm_migrate_in(struct vmk_host *h, const Keel__Vmk__VmkVmMigrateIn *rq,
		      Keel__Vmk__VmkMigrateInfo *info, struct vmk_vm **out, struct kb_errmsg *err)
{
	Keel__Vmk__VmxRequest vrq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxMigrateIn in = KEEL__VMK__VMX_MIGRATE_IN__INIT;
	struct vmk_net_tagged tagged[STREAMS_MAX];
	int fds[STREAMS_MAX];
	struct vmk_vm_owner own;
	struct vmk_vm *vm = NULL;
	char real[PATH_MAX], ds_path[PATH_MAX];
	size_t nr_tagged = 0;
	uint32_t per = rq->streams_per_endpoint ? rq->streams_per_endpoint : 1;
	bool registered = false, shared = false;
	int nr_fds = 0, rv;

	*out = NULL;
	if (rq->vmx_path == NULL || rq->vmx_path[0] != '/') {
		kb_errmsg_setf(err, "the .vmx path must be absolute, not \"%s\"",
			       rq->vmx_path ? rq->vmx_path : "");
		return KB_ECONFIG;
	}
	if (rq->uuid == NULL || rq->uuid[0] == '\0') {
		kb_errmsg_setf(err, "no VM uuid given");
		return KB_ECONFIG;
	}
	if (rq->id.len != ID_SIZE || rq->key.len != KEY_SIZE) {
		kb_errmsg_setf(err,
			       "the migration id must be %d bytes and its key %d (not %zu, %zu)",
			       ID_SIZE, KEY_SIZE, rq->id.len, rq->key.len);
		return KB_ECONFIG;
	}
	if (per > STREAMS_MAX) {
		kb_errmsg_setf(err, "%u streams per endpoint: at most %d", per, STREAMS_MAX);
		return KB_ECONFIG;
	}
	if (realpath(rq->vmx_path, real) == NULL) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", rq->vmx_path, kb_strerror(rv));
		return rv;
	}
	rv = vmk_net_tagged_list(h->state_dir, TAG, tagged, STREAMS_MAX, &nr_tagged, err);
	if ((rv == 0 || rv == -ENOENT) && nr_tagged == 0) {
		kb_errmsg_setf(err, "no VMkernel adapter carries the tag " TAG
				    ": this host cannot receive a migration");
		return KB_ENOTFOUND;
	}
	if (rv < 0)
		return rv;
	if (nr_tagged > STREAMS_MAX)
		nr_tagged = STREAMS_MAX;
	if (nr_tagged * per > STREAMS_MAX) {
		kb_errmsg_setf(err, "%zu VMotion adapters x %u streams: at most %d streams",
			       nr_tagged, per, STREAMS_MAX);
		return KB_ECONFIG;
	}

	rv = incoming_vm(h, real, rq->uuid, &vm, &registered, err);
	if (rv < 0)
		return rv;

	/* Fenced at the migration's epoch on the shared datastore: the vmx takes the lock at
	 * GO, with that epoch (docs/vmotion.md "The destination"). */
	memset(&own, 0, sizeof(own));
	if (rq->epoch != 0 && h->host_id != 0 &&
	    vmk_subsys_ds_shared(h, vm->datastore, &shared, ds_path, sizeof(ds_path)) == 0 &&
	    shared) {
		own.host = h->host_id;
		own.epoch = rq->epoch;
		snprintf(own.lock, sizeof(own.lock), "%s/%s", vm->dir, HA_LOCK_NAME);
		rv = ha_hb_path(ds_path, h->host_id, own.hb);
		if (rv < 0) {
			kb_errmsg_setf(err, "heartbeat record on %s: %s", ds_path, kb_strerror(rv));
			goto fail_claim;
		}
		own.fenced = true;
	}

	pthread_mutex_lock(&vm->lock);
	memset(&vm->mig, 0, sizeof(vm->mig));
	vm->mig.active = true;
	vm->mig.dest = true;
	vm->mig.registered = registered;
	vm->mig.epoch = rq->epoch;
	vm->mig.t0_ns = kb_now_ns();
	snprintf(vm->mig.phase, sizeof(vm->mig.phase), "starting");
	vm->own = own;
	pthread_mutex_unlock(&vm->lock);

	/* One listening socket per VMotion adapter, inside its netstack. */
	char eps[STREAMS_MAX][sizeof(vm->mig.endpoints[0])];
	for (size_t i = 0; i < nr_tagged; i++) {
		struct sockaddr_in bound;
		char a[INET_ADDRSTRLEN];
		int fd =
		    vmk_net_adapter_socket(h->state_dir, &tagged[i], SOCK_STREAM, 0, &bound, err);
		if (fd < 0) {
			rv = fd;
			goto fail_fds;
		}
		fds[nr_fds++] = fd;
		if (listen(fd, STREAMS_MAX) < 0) {
			rv = -errno;
			kb_errmsg_setf(err, "listening on %s: %s", tagged[i].vmknic,
				       kb_strerror(rv));
			goto fail_fds;
		}
		inet_ntop(AF_INET, &bound.sin_addr, a, sizeof(a));
		snprintf(eps[i], sizeof(eps[i]), "%s:%u", a, (unsigned)ntohs(bound.sin_port));
	}
	pthread_mutex_lock(&vm->lock);
	memcpy(vm->mig.endpoints, eps, sizeof(eps[0]) * (size_t)nr_fds);
	vm->mig.nr_endpoints = nr_fds;
	pthread_mutex_unlock(&vm->lock);

	vm->inherit_fds = fds;
	vm->nr_inherit_fds = nr_fds;
	rv = vmk__vm_start(vm, NULL, true, err);
	vm->inherit_fds = NULL;
	vm->nr_inherit_fds = 0;
	for (int i = 0; i < nr_fds; i++)
		close(fds[i]); /* the vmx has its own copies */
	nr_fds = 0;
	if (rv < 0)
		goto fail_fds;

	in.id = rq->id;
	in.key = rq->key;
	in.count = (uint32_t)nr_tagged * per;
	in.encrypt = rq->encrypt;
	vrq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_IN;
	vrq.migrate_in = &in;
	int cfd = vmk__migrate_deferred_send(vm, &vrq, err);
	struct incoming *w = cfd >= 0 ? kb_calloc(1, sizeof(*w)) : NULL;
	pthread_t t;
	pthread_attr_t attr;
	if (cfd >= 0 && w == NULL) {
		kb_errmsg_setf(err, "%s", kb_strerror(-ENOMEM));
		close(cfd);
		cfd = -ENOMEM;
	}
	if (w != NULL) {
		w->vm = vm;
		w->fd = cfd;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rv = pthread_create(&t, &attr, incoming_main, w);
		pthread_attr_destroy(&attr);
		if (rv != 0) {
			kb_errmsg_setf(err, "starting the migration's thread: %s", strerror(rv));
			close(cfd);
			kb_free(w);
			cfd = -rv;
		}
	}
	if (cfd < 0) {
		/* the vmx runs: end it and undo as a failed migration does */
		char why[KB_ERRMSG_SIZE];
		snprintf(why, sizeof(why), "%s", err->msg);
		incoming_failed(vm, cfd, why);
		kb_errmsg_setf(err, "cannot take VM %s in: %s", vm->cfg.name, why);
		pthread_mutex_lock(&vm->lock);
		vmk__migrate_fill(vm, info);
		pthread_mutex_unlock(&vm->lock);
		return cfd;
	}
	pthread_mutex_lock(&vm->lock);
	snprintf(vm->mig.phase, sizeof(vm->mig.phase), "waiting");
	snprintf(vm->last_event, sizeof(vm->last_event),
		 "incoming migration: vmx pid %d listening on %s%s", (int)vm->pid,
		 vm->mig.endpoints[0], vm->mig.nr_endpoints > 1 ? " and more" : "");
	vmk__migrate_fill(vm, info);
	pthread_mutex_unlock(&vm->lock);
	kb_log(h->log, KB_LOG_INFO, "VM %s: %s%s", vm->cfg.name, vm->last_event,
	       registered ? " (registered here for it)" : "");
	*out = vm;
	return 0;

fail_fds:
	for (int i = 0; i < nr_fds; i++)
		close(fds[i]);
	pthread_mutex_lock(&vm->lock);
	memset(&vm->own, 0, sizeof(vm->own));
	vmk__migrate_finish(vm, "failed", rv, err->msg);
	pthread_mutex_unlock(&vm->lock);
fail_claim:
	kb_errmsg_wrapf(err, "cannot take VM %s in", vm->cfg.name);
	pthread_mutex_lock(&vm->lock);
	if (!registered)
		vm->busy = NULL;
	pthread_mutex_unlock(&vm->lock);
	if (registered)
		vmk__vm_unlist(h, vm);
	kb_log(h->log, KB_LOG_WARN, "%s", err->msg);
	return rv;
}

int vmk_vm_migrate_commit(struct vmk_vm *vm, uint64_t epoch, Keel__Vmk__VmkMigrateInfo *info,
			  struct kb_errmsg *err)
{
	int rv;

	pthread_mutex_lock(&vm->lock);
	if (!vm->mig.active || !vm->mig.dest) {
		kb_errmsg_setf(err, "VM %s has no incoming migration on this host", vm->cfg.name);
		pthread_mutex_unlock(&vm->lock);
		return KB_ESTATE;
	}
	if (vm->own.fenced && epoch != 0)
		vm->own.epoch = epoch; /* the vmx fences at GO's epoch */
	pthread_mutex_unlock(&vm->lock);
	kb_log(vm->host->log, KB_LOG_INFO,
	       "VM %s: the cluster committed this host at epoch %" PRIu64 ": resuming here",
	       vm->cfg.name, epoch);
	rv = vmk__migrate_vmx_commit(vm, true, epoch, COMMIT_CALL_MS, err);
	pthread_mutex_lock(&vm->lock);
	if (rv == 0)
		wait_ended(vm);
	else
		kb_errmsg_wrapf(err, "committing the incoming migration of VM %s", vm->cfg.name);
	vmk__migrate_fill(vm, info);
	pthread_mutex_unlock(&vm->lock);
	return rv;
}

/* ---- either side ------------------------------------------------------------------- */

int vmk_vm_migrate_status(struct vmk_vm *vm, Keel__Vmk__VmkMigrateInfo *info, struct kb_errmsg *err)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxMigrateStatus st = KEEL__VMK__VMX_MIGRATE_STATUS__INIT;
	Keel__Vmk__VmxReply *rp = NULL;
	struct kb_errmsg e2 = {{0}};
	char ctl[PATH_MAX];

	pthread_mutex_lock(&vm->lock);
	if (vm->mig.t0_ns == 0) {
		kb_errmsg_setf(err, "VM %s has had no migration on this host", vm->cfg.name);
		pthread_mutex_unlock(&vm->lock);
		return KB_ENOTFOUND;
	}
	bool ask = vm->mig.active && vm->pid > 0 && !vm->exited;
	pthread_mutex_unlock(&vm->lock);
	if (ask) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_STATUS;
		rq.migrate_status = &st;
		vmk_vm_ctl_path(vm, ctl, sizeof(ctl));
		vmk_vmx_call(ctl, &rq, &rp, CALL_MS, &e2);
	}
	pthread_mutex_lock(&vm->lock);
	if (rp != NULL && vm->mig.active)
		vmk__migrate_note(vm, rp->migrate);
	vmk__migrate_fill(vm, info);
	pthread_mutex_unlock(&vm->lock);
	if (rp != NULL)
		keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	return 0;
}

int vmk_vm_migrate_cancel(struct vmk_vm *vm, const char *reason, Keel__Vmk__VmkMigrateInfo *info,
			  struct kb_errmsg *err)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxMigrateCancel c = KEEL__VMK__VMX_MIGRATE_CANCEL__INIT;
	Keel__Vmk__VmxReply *rp = NULL;
	char ctl[PATH_MAX];
	int rv = 0;

	pthread_mutex_lock(&vm->lock);
	if (!vm->mig.active) {
		kb_errmsg_setf(err, "VM %s has no migration under way on this host", vm->cfg.name);
		pthread_mutex_unlock(&vm->lock);
		return KB_ESTATE;
	}
	bool dest = vm->mig.dest;
	if (dest) {
		vm->mig.cancel = true;
		snprintf(vm->mig.cancel_reason, sizeof(vm->mig.cancel_reason), "%s",
			 reason && reason[0] ? reason : "by request");
	}
	pthread_mutex_unlock(&vm->lock);
	kb_log(vm->host->log, KB_LOG_INFO, "VM %s: cancelling its %s migration%s%s", vm->cfg.name,
	       dest ? "incoming" : "outgoing", reason && reason[0] ? ": " : "",
	       reason ? reason : "");
	if (dest) {
		end_incoming(vm); /* the migration's thread sees the end and undoes the rest */
	} else {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_CANCEL;
		rq.migrate_cancel = &c;
		vmk_vm_ctl_path(vm, ctl, sizeof(ctl));
		rv = vmk_vmx_call(ctl, &rq, &rp, CALL_MS, err);
		if (rp != NULL)
			keel__vmk__vmx_reply__free_unpacked(rp, NULL);
		if (rv < 0)
			kb_errmsg_wrapf(err, "cancelling the migration of VM %s", vm->cfg.name);
	}
	pthread_mutex_lock(&vm->lock);
	if (rv == 0)
		wait_ended(vm); /* until the migration's own thread has put everything back */
	vmk__migrate_fill(vm, info);
	pthread_mutex_unlock(&vm->lock);
	return rv;
}
