/*
 * FT, vmkernel's part (docs/ft.md "vmkernel's part"): vmkernel starts, watches and ends
 * the secondary vmx of a fault-tolerant VM, starts FT on the primary's vmx, reports both
 * and turns the secondary into the running VM at a takeover.
 *
 * Secondary (FtSecondary): the .vmx must be on a shared datastore and name the given uuid,
 * the VM must not run here and the host needs a FaultToleranceLogging-tagged VMkernel
 * adapter. A VM this host does not know is registered locally only (not in inventory.conf
 * until a takeover). Each disk gets a sparse copy of the same size in <VM dir>/ft-<host>/
 * (or <datastore>/<VM name>/ft-<host>/ on the named datastore); the VM's disks point at the
 * copies in memory while the secondary lives. Then a vmx as for a power-on, with those
 * disks, --ft-secondary-fd on a listening socket of the adapter (port 0, in its netstack)
 * and the fence options (the lock is taken at the takeover's epoch), and VmxFtIn. The VM
 * is VMK_INCOMING (shown as "ft-secondary"), busy, with vm->ft set; a thread of its own
 * waits for the vmx's end. An end before a takeover (status 5: FT ended, a kill, FtStop)
 * undoes everything: taps, cgroup, copies, the registration made for it; the event says
 * why. A vmkernel restart kills a leftover secondary vmx (its pid record says
 * "incoming"), as for an incoming migration.
 *
 * Takeover (FtTakeover{epoch}): VmxFtTakeover; once the guest runs here the VM is powered
 * on and owned at epoch (fenced, lock held, when the datastore is shared and this host has
 * an id), its .vmx rewritten to name the copies, and, when registered for the secondary,
 * it joins inventory.conf.
 *
 * Primary (FtStart): the VM powered on here and not busy; VmxFtStart with the secondary's
 * endpoint from this host's FaultToleranceLogging adapter's netstack.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "ha/hb.h"
#include "ha/lock.h"
#include "kernel/core/subsys.h"
#include "kernel/net/stack_socket.h"
#include "kernel/vm/ft.h"
#include "kernel/vm/world.h"
#include "lib/heap.h"
#include "lib/time.h"

#define CALL_MS	    5000
#define TAKEOVER_MS 10000
#define STOP_MS	    10000
#define ID_SIZE	    16
#define KEY_SIZE    32
#define TAG	    "FaultToleranceLogging"
#define BUSY_SEC    "FT secondary"
#define BUSY_START  "FT start"

struct vmk_vm_ft {
	bool registered; /* the VM was registered here for the secondary */
	bool stopping;	 /* FtStop asked for the end */
	bool done;	 /* taken over, or ended: the thread frees this */
	char endpoint[24];
	char dir[PATH_MAX]; /* of the copies */
	int nr_copies;
	char copies[VMK_VMX_DISKS][VMK_VMX_PATH_MAX + 1]; /* by disk slot ("" for none) */
	char orig[VMK_VMX_DISKS][VMK_VMX_PATH_MAX + 1];	  /* the VM's own disk files */
	char phase[16];
};

/* ---- helpers ----------------------------------------------------------------------- */

static void free_str(char *s)
{
	if (s != NULL && s != protobuf_c_empty_string)
		kb_free(s);
}

void vmk_vm_ft_reply_free(Keel__Vmk__VmkReply *rp)
{
	Keel__Vmk__VmkFtInfo *fi = rp->ft;

	if (fi == NULL)
		return;
	free_str(fi->vm);
	free_str(fi->uuid);
	free_str(fi->role);
	free_str(fi->phase);
	free_str(fi->endpoint);
	free_str(fi->error);
	for (size_t i = 0; i < fi->n_copies; i++)
		free_str(fi->copies[i]);
	kb_free(fi->copies);
	kb_free(fi);
	rp->ft = NULL;
}

/* A new VmkFtInfo for vm, from the vmx's reply fr (or NULL) and vm->ft. vm->lock held. */
static Keel__Vmk__VmkFtInfo *info_new(struct vmk_vm *vm, const Keel__Vmk__VmxFtReply *fr)
{
	Keel__Vmk__VmkFtInfo *fi = kb_calloc(1, sizeof(*fi));
	const struct vmk_vm_ft *ft = vm->ft;

	if (fi == NULL)
		return NULL;
	keel__vmk__vmk_ft_info__init(fi);
	fi->vm = kb_strdup(vm->cfg.name);
	fi->uuid = kb_strdup(vm->cfg.uuid);
	if (fr != NULL) {
		fi->role = kb_strdup(fr->role ? fr->role : "");
		fi->phase = kb_strdup(fr->phase ? fr->phase : "");
		fi->checkpoint = fr->checkpoint;
		fi->epoch_ms = fr->epoch_ms;
		fi->last_pause_us = fr->last_pause_us;
		fi->max_pause_us = fr->max_pause_us;
		fi->last_ckpt_bytes = fr->last_ckpt_bytes;
		fi->lag_us = fr->lag_us;
		fi->held_frames = fr->held_frames;
		fi->dropped_frames = fr->dropped_frames;
		fi->sync_bytes = fr->sync_bytes;
		fi->bytes = fr->bytes;
		fi->error_code = fr->error_code;
		fi->error = fr->error && fr->error[0] ? kb_strdup(fr->error) : NULL;
	} else {
		fi->role = kb_strdup(ft != NULL ? "secondary" : "");
		fi->phase = kb_strdup(ft != NULL ? ft->phase : "off");
	}
	if (ft != NULL) {
		fi->endpoint = kb_strdup(ft->endpoint);
		fi->copies = kb_calloc(VMK_VMX_DISKS, sizeof(char *));
		for (int i = 0; fi->copies != NULL && i < VMK_VMX_DISKS; i++)
			if (ft->copies[i][0] != '\0')
				fi->copies[fi->n_copies++] = kb_strdup(ft->copies[i]);
	}
	return fi;
}

/* One request to the VM's vmx; *out as vmk_vmx_call()'s. */
static int vmx_ft(struct vmk_vm *vm, Keel__Vmk__VmxRequest *rq, int timeout_ms,
		  Keel__Vmk__VmxReply **out, struct kb_errmsg *err)
{
	char ctl[PATH_MAX];

	vmk_vm_ctl_path(vm, ctl, sizeof(ctl));
	return vmk_vmx_call(ctl, rq, out, timeout_ms, err);
}

/* Ends a secondary vmx: VmxFtStop (it exits with status 5), then SIGTERM, then SIGKILL.
 * vm->lock not held. */
static void end_secondary(struct vmk_vm *vm)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxFtStop st = KEEL__VMK__VMX_FT_STOP__INIT;
	Keel__Vmk__VmxReply *rp = NULL;
	struct kb_errmsg e = {{0}};

	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_STOP;
	rq.ft_stop = &st;
	vmx_ft(vm, &rq, 1000, &rp, &e);
	if (rp != NULL)
		keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	pthread_mutex_lock(&vm->lock);
	vm->expect_exit = true;
	if (vmk__vmx_wait_exit(vm, 2000) < 0 && !vm->exited && vm->pid > 0) {
		kill(vm->pid, SIGTERM);
		if (vmk__vmx_wait_exit(vm, 2000) < 0 && !vm->exited && vm->pid > 0) {
			kill(vm->pid, SIGKILL);
			vmk__vmx_wait_exit(vm, STOP_MS);
		}
	}
	pthread_mutex_unlock(&vm->lock);
}

/* Removes the copies and their directory (only when empty then). */
static void remove_copies(const struct vmk_vm_ft *ft)
{
	for (int i = 0; i < VMK_VMX_DISKS; i++)
		if (ft->copies[i][0] != '\0')
			unlink(ft->copies[i]);
	if (ft->dir[0] != '\0')
		rmdir(ft->dir);
}

/* The VM's disks back to its own files. vm->lock held. */
static void restore_disks(struct vmk_vm *vm, const struct vmk_vm_ft *ft)
{
	for (int i = 0; i < VMK_VMX_DISKS; i++)
		if (ft->copies[i][0] != '\0')
			snprintf(vm->cfg.disks[i].file, sizeof(vm->cfg.disks[i].file), "%s",
				 ft->orig[i]);
}

/* The secondary ended before a takeover (why): what its start made goes. The vmx is gone
 * or ended here. vm->lock not held. */
static void secondary_ended(struct vmk_vm *vm, struct vmk_vm_ft *ft, const char *why)
{
	struct vmk_host *h = vm->host;
	char event[256];

	pthread_mutex_lock(&vm->lock);
	bool alive = !vm->exited && vm->pid > 0;
	pthread_mutex_unlock(&vm->lock);
	if (alive)
		end_secondary(vm);
	pthread_mutex_lock(&vm->lock);
	snprintf(event, sizeof(event), "%s", why);
	memset(&vm->own, 0, sizeof(vm->own));
	restore_disks(vm, ft);
	vmk__vm_release(vm, VMK_POWERED_OFF, event);
	vm->ft = NULL;
	ft->done = true;
	if (!ft->registered)
		vm->busy = NULL; /* else final: the VM leaves the list below */
	pthread_mutex_unlock(&vm->lock);
	remove_copies(ft);
	if (ft->registered)
		vmk__vm_unlist(h, vm);
	kb_log(h->log, ft->stopping ? KB_LOG_INFO : KB_LOG_WARN, "VM %s: %s%s", vm->cfg.name, event,
	       ft->registered ? " (registration for it undone)" : "");
}

/* Why the vmx ended. vm->lock held. */
static void describe_end(struct vmk_vm *vm, char *out, size_t size)
{
	char tail[160];

	vmk__vmx_log_tail(vm, tail, sizeof(tail));
	if (vm->exit_code == 5)
		snprintf(out, size, "FT secondary ended: FT ended before a takeover (%s)", tail);
	else if (vm->exit_code >= 0 && vm->exit_code != INT_MIN)
		snprintf(out, size, "FT secondary ended: vmx status %d (%s)", vm->exit_code, tail);
	else if (vm->exit_code == INT_MIN)
		snprintf(out, size, "FT secondary ended: %s", tail);
	else
		snprintf(out, size, "FT secondary ended: vmx killed by signal %d (%s)",
			 -vm->exit_code, strsignal(-vm->exit_code));
}

struct watcher {
	struct vmk_vm *vm;
	struct vmk_vm_ft *ft;
};

/* The secondary's watcher: waits for the vmx's end or a takeover; frees ft. */
static void *watch_main(void *arg)
{
	struct watcher *w = arg;
	struct vmk_vm *vm = w->vm;
	struct vmk_vm_ft *ft = w->ft;
	char why[256];

	kb_free(w);
	pthread_mutex_lock(&vm->lock);
	while (!ft->done && !vm->exited && vm->pidfd >= 0)
		vmk__vmx_wait_exit(vm, 250);
	if (ft->done) { /* taken over */
		pthread_mutex_unlock(&vm->lock);
		kb_free(ft);
		return NULL;
	}
	if (ft->stopping)
		snprintf(why, sizeof(why), "FT secondary stopped by request");
	else
		describe_end(vm, why, sizeof(why));
	pthread_mutex_unlock(&vm->lock);
	secondary_ended(vm, ft, why);
	kb_free(ft);
	return NULL;
}

/* Sparse copies of every disk of vm in ft->dir; the VM's disks then point at them.
 * vm->lock not held (busy). */
static int make_copies(struct vmk_vm *vm, struct vmk_vm_ft *ft, struct kb_errmsg *err)
{
	int rv;

	if (mkdir(ft->dir, 0750) < 0 && errno != EEXIST) {
		rv = -errno;
		kb_errmsg_setf(err, "creating %s: %s", ft->dir, kb_strerror(rv));
		return rv;
	}
	for (int i = 0; i < VMK_VMX_DISKS; i++) {
		const struct vmk_vmx_disk *d = &vm->cfg.disks[i];
		char src[PATH_MAX + VMK_VMX_PATH_MAX + 2], base[VMK_VMX_PATH_MAX + 1];
		struct stat st;

		if (!d->present)
			continue;
		if (d->file[0] == '/')
			snprintf(src, sizeof(src), "%s", d->file);
		else
			snprintf(src, sizeof(src), "%s/%s", vm->dir, d->file);
		if (stat(src, &st) < 0) {
			rv = -errno;
			kb_errmsg_setf(err, "disk %s: %s", src, kb_strerror(rv));
			return rv;
		}
		snprintf(base, sizeof(base), "%s", d->file);
		int n = snprintf(ft->copies[i], sizeof(ft->copies[i]), "%s/%d-%s", ft->dir, i,
				 basename(base));
		if (n < 0 || (size_t)n >= sizeof(ft->copies[i])) {
			ft->copies[i][0] = '\0';
			kb_errmsg_setf(err, "the copy of %s: path too long", src);
			return KB_ECONFIG;
		}
		snprintf(ft->orig[i], sizeof(ft->orig[i]), "%s", d->file);
		int fd = open(ft->copies[i], O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
		if (fd < 0 || ftruncate(fd, st.st_size) < 0) {
			rv = -errno;
			kb_errmsg_setf(err, "creating the copy %s: %s", ft->copies[i],
				       kb_strerror(rv));
			if (fd >= 0)
				close(fd);
			return rv;
		}
		close(fd);
		ft->nr_copies++;
	}
	pthread_mutex_lock(&vm->lock);
	for (int i = 0; i < VMK_VMX_DISKS; i++)
		if (ft->copies[i][0] != '\0')
			snprintf(vm->cfg.disks[i].file, sizeof(vm->cfg.disks[i].file), "%s",
				 ft->copies[i]);
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

/* The VM for a secondary of uuid from real: the registered one (claimed), or a new local
 * registration. As migrate.c's incoming_vm(). */
static int secondary_vm(struct vmk_host *h, const char *real, const char *uuid, struct vmk_vm **out,
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
		} else if (vm->ft != NULL) {
			kb_errmsg_setf(err, "VM %s has an FT secondary on this host already",
				       vm->cfg.name);
			rv = KB_ESTATE;
		} else if (vm->power == VMK_POWERED_ON) {
			kb_errmsg_setf(err, "VM %s is powered on here", vm->cfg.name);
			rv = KB_ESTATE;
		} else if (vm->power == VMK_SUSPENDED) {
			kb_errmsg_setf(err, "VM %s is suspended here", vm->cfg.name);
			rv = KB_ESTATE;
		} else {
			rv = vmk__vm_claim(vm, BUSY_SEC, err);
		}
		pthread_mutex_unlock(&vm->lock);
		if (rv < 0)
			return rv;
		rv = vmk_subsys_ds_shared(h, vm->datastore, &shared, NULL, 0);
		if (rv == 0 && !shared) {
			kb_errmsg_setf(err,
				       "VM %s is on datastore %s, which is local to this host: FT "
				       "needs a shared datastore",
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
		kb_errmsg_setf(err, "VM %s has a suspended state in %s", vm->cfg.name, vm->dir);
		rv = KB_ESTATE;
	}
	if (rv == 0) {
		rv = vmk_subsys_ds_shared(h, vm->datastore, &shared, NULL, 0);
		if (rv == 0 && !shared) {
			kb_errmsg_setf(err,
				       "%s is on datastore %s, which is local to this host: FT "
				       "needs a shared datastore",
				       real, vm->datastore);
			rv = KB_ECONFIG;
		}
	}
	if (rv == 0) {
		vm->busy = BUSY_SEC;
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

/* ---- the secondary ----------------------------------------------------------------- */

static int ft_secondary(struct vmk_host *h, const Keel__Vmk__VmkVmFtSecondary *rq,
			Keel__Vmk__VmkReply *rp, struct vmk_vm **out, struct kb_errmsg *err)
{
	Keel__Vmk__VmxRequest vrq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxFtIn in = KEEL__VMK__VMX_FT_IN__INIT;
	Keel__Vmk__VmxReply *vrp = NULL;
	struct vmk_net_tagged tagged;
	struct vmk_vm_ft *ft = NULL;
	struct vmk_vm *vm = NULL;
	struct sockaddr_in bound;
	char real[PATH_MAX], ds_path[PATH_MAX], a[INET_ADDRSTRLEN], host[32];
	bool registered = false, shared = false;
	int fd = -1, rv;

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
		kb_errmsg_setf(err, "the FT id must be %d bytes and its key %d (not %zu, %zu)",
			       ID_SIZE, KEY_SIZE, rq->id.len, rq->key.len);
		return KB_ECONFIG;
	}
	if (realpath(rq->vmx_path, real) == NULL) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", rq->vmx_path, kb_strerror(rv));
		return rv;
	}
	rv = vmk_net_tagged_lookup(h->state_dir, TAG, &tagged, err);
	if (rv < 0) {
		kb_errmsg_setf(err, "no VMkernel adapter carries the tag " TAG
				    ": this host cannot hold an FT secondary");
		return KB_ENOTFOUND;
	}
	ft = kb_calloc(1, sizeof(*ft));
	if (ft == NULL)
		return -ENOMEM;
	rv = secondary_vm(h, real, rq->uuid, &vm, &registered, err);
	if (rv < 0) {
		kb_free(ft);
		return rv;
	}
	ft->registered = registered;
	snprintf(ft->phase, sizeof(ft->phase), "starting");
	if (h->host_id != 0)
		snprintf(host, sizeof(host), "%016" PRIx64, h->host_id);
	else if (gethostname(host, sizeof(host)) < 0 || host[0] == '\0')
		snprintf(host, sizeof(host), "host");
	host[sizeof(host) - 1] = '\0';
	if (rq->datastore != NULL && rq->datastore[0] != '\0') {
		rv = vmk_subsys_ds_shared(h, rq->datastore, &shared, ds_path, sizeof(ds_path));
		if (rv < 0) {
			kb_errmsg_setf(err, "no datastore named %s", rq->datastore);
			goto fail_claim;
		}
		char vmdir[PATH_MAX + 80];
		snprintf(vmdir, sizeof(vmdir), "%s/%s", ds_path, vm->cfg.name);
		if (mkdir(vmdir, 0750) < 0 && errno != EEXIST) {
			rv = -errno;
			kb_errmsg_setf(err, "creating %s: %s", vmdir, kb_strerror(rv));
			goto fail_claim;
		}
		snprintf(ft->dir, sizeof(ft->dir), "%.3000s/ft-%s", vmdir, host);
	} else {
		snprintf(ft->dir, sizeof(ft->dir), "%.4000s/ft-%s", vm->dir, host);
	}
	rv = make_copies(vm, ft, err);
	if (rv < 0)
		goto fail_copies;

	/* Fenced on the shared datastore: the vmx takes the lock at the takeover's epoch. */
	struct vmk_vm_owner own;
	memset(&own, 0, sizeof(own));
	if (h->host_id != 0 &&
	    vmk_subsys_ds_shared(h, vm->datastore, &shared, ds_path, sizeof(ds_path)) == 0 &&
	    shared) {
		own.host = h->host_id;
		own.epoch = 1; /* replaced by the takeover's */
		snprintf(own.lock, sizeof(own.lock), "%s/%s", vm->dir, HA_LOCK_NAME);
		rv = ha_hb_path(ds_path, h->host_id, own.hb);
		if (rv < 0) {
			kb_errmsg_setf(err, "heartbeat record on %s: %s", ds_path, kb_strerror(rv));
			goto fail_copies;
		}
		own.fenced = true;
	}

	fd = vmk_net_adapter_socket(h->state_dir, &tagged, SOCK_STREAM, 0, &bound, err);
	if (fd < 0) {
		rv = fd;
		goto fail_copies;
	}
	if (listen(fd, 4) < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "listening on %s: %s", tagged.vmknic, kb_strerror(rv));
		goto fail_copies;
	}
	inet_ntop(AF_INET, &bound.sin_addr, a, sizeof(a));
	snprintf(ft->endpoint, sizeof(ft->endpoint), "%s:%u", a, (unsigned)ntohs(bound.sin_port));

	pthread_mutex_lock(&vm->lock);
	vm->own = own;
	vm->ft = ft;
	pthread_mutex_unlock(&vm->lock);
	vm->inherit_fds = &fd;
	vm->nr_inherit_fds = 1;
	vm->inherit_ft = true;
	rv = vmk__vm_start(vm, NULL, true, err);
	vm->inherit_fds = NULL;
	vm->nr_inherit_fds = 0;
	vm->inherit_ft = false;
	close(fd); /* the vmx has its own copy */
	fd = -1;
	if (rv < 0) {
		pthread_mutex_lock(&vm->lock);
		vm->ft = NULL;
		memset(&vm->own, 0, sizeof(vm->own));
		pthread_mutex_unlock(&vm->lock);
		goto fail_copies;
	}

	struct watcher *w = kb_calloc(1, sizeof(*w));
	pthread_t t;
	pthread_attr_t attr;
	if (w == NULL) {
		rv = -ENOMEM;
	} else {
		w->vm = vm;
		w->ft = ft;
		pthread_attr_init(&attr);
		pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		rv = -pthread_create(&t, &attr, watch_main, w);
		pthread_attr_destroy(&attr);
		if (rv < 0)
			kb_free(w);
	}
	if (rv < 0) {
		kb_errmsg_setf(err, "starting the secondary's watcher: %s", kb_strerror(rv));
		secondary_ended(vm, ft, "FT secondary failed to start");
		kb_free(ft);
		return rv;
	}
	/* From here the watcher owns ft and undoes everything when the vmx ends. */
	in.id = rq->id;
	in.key = rq->key;
	in.encrypt = rq->encrypt;
	vrq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_IN;
	vrq.ft_in = &in;
	rv = vmx_ft(vm, &vrq, CALL_MS, &vrp, err);
	if (vrp != NULL)
		keel__vmk__vmx_reply__free_unpacked(vrp, NULL);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "cannot start the FT secondary of VM %s", vm->cfg.name);
		pthread_mutex_lock(&vm->lock);
		ft->stopping = true;
		pthread_mutex_unlock(&vm->lock);
		end_secondary(vm); /* the watcher undoes the rest */
		return rv;
	}
	pthread_mutex_lock(&vm->lock);
	snprintf(ft->phase, sizeof(ft->phase), "connecting");
	snprintf(vm->last_event, sizeof(vm->last_event),
		 "FT secondary: vmx pid %d listening on %s, %d disk cop%s in %s", (int)vm->pid,
		 ft->endpoint, ft->nr_copies, ft->nr_copies == 1 ? "y" : "ies", ft->dir);
	rp->ft = info_new(vm, NULL);
	pthread_mutex_unlock(&vm->lock);
	kb_log(h->log, KB_LOG_INFO, "VM %s: %s%s", vm->cfg.name, vm->last_event,
	       registered ? " (registered here for it)" : "");
	*out = vm;
	return 0;

fail_copies:
	if (fd >= 0)
		close(fd);
	pthread_mutex_lock(&vm->lock);
	restore_disks(vm, ft);
	pthread_mutex_unlock(&vm->lock);
	remove_copies(ft);
fail_claim:
	kb_errmsg_wrapf(err, "cannot start the FT secondary of VM %s", vm->cfg.name);
	pthread_mutex_lock(&vm->lock);
	if (!registered)
		vm->busy = NULL;
	pthread_mutex_unlock(&vm->lock);
	if (registered)
		vmk__vm_unlist(h, vm);
	kb_free(ft);
	kb_log(h->log, KB_LOG_WARN, "%s", err->msg);
	return rv;
}

static int ft_takeover(struct vmk_vm *vm, uint64_t epoch, Keel__Vmk__VmkReply *rp,
		       struct kb_errmsg *err)
{
	struct vmk_host *h = vm->host;
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxFtTakeover tk = KEEL__VMK__VMX_FT_TAKEOVER__INIT;
	Keel__Vmk__VmxReply *vrp = NULL;
	char how[96] = "";
	int rv;

	pthread_mutex_lock(&vm->lock);
	struct vmk_vm_ft *ft = vm->ft;
	bool ok = ft != NULL && !ft->stopping && !vm->exited;
	pthread_mutex_unlock(&vm->lock);
	if (!ok) {
		kb_errmsg_setf(err, "VM %s has no FT secondary on this host", vm->cfg.name);
		return KB_ESTATE;
	}
	tk.epoch = epoch;
	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_TAKEOVER;
	rq.ft_takeover = &tk;
	uint64_t t0 = kb_now_ns();
	rv = vmx_ft(vm, &rq, TAKEOVER_MS, &vrp, err);
	pthread_mutex_lock(&vm->lock);
	if (rv < 0 || vm->ft != ft) {
		if (rv == 0) {
			kb_errmsg_setf(err, "the FT secondary ended meanwhile");
			rv = KB_ECANCELED;
		}
		kb_errmsg_wrapf(err, "FT takeover of VM %s", vm->cfg.name);
		rp->ft = info_new(vm, vrp ? vrp->ft : NULL);
		pthread_mutex_unlock(&vm->lock);
		if (vrp != NULL)
			keel__vmk__vmx_reply__free_unpacked(vrp, NULL);
		return rv;
	}
	/* The guest runs here: a powered-on VM of this host, its disks the copies. */
	bool registered = ft->registered;
	vm->power = VMK_POWERED_ON;
	vm->powered_on_ns = kb_now_ns();
	vm->expect_exit = false;
	if (vm->own.fenced)
		vm->own.epoch = epoch;
	if (vm->own.host != 0)
		snprintf(how, sizeof(how), "; owner at epoch %" PRIu64 "%s", vm->own.epoch,
			 vm->own.fenced ? ", lock held, fenced" : "");
	rp->ft = info_new(vm, vrp ? vrp->ft : NULL);
	vm->ft = NULL;
	ft->done = true; /* the watcher frees it */
	pthread_cond_broadcast(&vm->cond);
	struct kb_errmsg e2 = {{0}};
	int srv = vmk_vmx_save(&vm->cfg, vm->vmx_path, &e2);
	snprintf(vm->last_event, sizeof(vm->last_event),
		 "FT takeover at epoch %" PRIu64 " in %.0f ms (vmx pid %d; disks: the copies in "
		 "%.80s%s)",
		 epoch, (double)(kb_now_ns() - t0) / 1e6, (int)vm->pid, ft->dir, how);
	vm->busy = NULL;
	pthread_mutex_unlock(&vm->lock);
	if (vrp != NULL)
		keel__vmk__vmx_reply__free_unpacked(vrp, NULL);
	if (srv < 0)
		kb_log(h->log, KB_LOG_ERROR, "VM %s: rewriting its .vmx to name the copies: %s",
		       vm->cfg.name, e2.msg);
	if (vmk__pidfile_write(vm) < 0)
		kb_log(h->log, KB_LOG_WARN, "VM %s: cannot write its pid record", vm->cfg.name);
	pthread_mutex_lock(&h->lock);
	vm->transient = false;
	rv = vmk__inventory_save(h);
	pthread_mutex_unlock(&h->lock);
	if (rv < 0)
		kb_log(h->log, KB_LOG_WARN, "saving the inventory: %s", kb_strerror(rv));
	kb_log(h->log, KB_LOG_INFO, "VM %s: %s%s", vm->cfg.name, vm->last_event,
	       registered ? " (now in this host's inventory)" : "");
	return 0;
}

/* ---- either role ------------------------------------------------------------------- */

/* The netstack namespace the primary's stream leaves from ("" for defaultTcpipStack). */
static void ft_netns(struct vmk_host *h, char *out, size_t size)
{
	struct vmk_net_tagged t;

	out[0] = '\0';
	if (vmk_net_tagged_lookup(h->state_dir, TAG, &t, NULL) == 0 &&
	    strcmp(t.netstack, "defaultTcpipStack") != 0)
		snprintf(out, size, "%s/netns/%s", h->state_dir, t.netstack);
}

static int ft_start(struct vmk_vm *vm, const Keel__Vmk__VmkVmFtStart *rq, Keel__Vmk__VmkReply *rp,
		    struct kb_errmsg *err)
{
	Keel__Vmk__VmxRequest vrq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxFtStart st = KEEL__VMK__VMX_FT_START__INIT;
	Keel__Vmk__VmxReply *vrp = NULL;
	char netns[PATH_MAX];
	int rv;

	if (rq->id.len != ID_SIZE || rq->key.len != KEY_SIZE) {
		kb_errmsg_setf(err, "the FT id must be %d bytes and its key %d (not %zu, %zu)",
			       ID_SIZE, KEY_SIZE, rq->id.len, rq->key.len);
		return KB_ECONFIG;
	}
	if (rq->endpoint == NULL || strchr(rq->endpoint, ':') == NULL) {
		kb_errmsg_setf(err, "endpoint \"%s\" is not IP:PORT",
			       rq->endpoint ? rq->endpoint : "");
		return KB_ECONFIG;
	}
	pthread_mutex_lock(&vm->lock);
	rv = vmk__vm_claim(vm, BUSY_START, err);
	if (rv == 0 && vm->power != VMK_POWERED_ON) {
		kb_errmsg_setf(err, "VM %s is not powered on", vm->cfg.name);
		vm->busy = NULL;
		rv = KB_ESTATE;
	}
	pthread_mutex_unlock(&vm->lock);
	if (rv < 0)
		return rv;
	ft_netns(vm->host, netns, sizeof(netns));
	st.id = rq->id;
	st.key = rq->key;
	st.endpoint = rq->endpoint;
	st.encrypt = rq->encrypt;
	st.epoch_ms = rq->epoch_ms;
	st.netns = netns;
	vrq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_START;
	vrq.ft_start = &st;
	rv = vmx_ft(vm, &vrq, CALL_MS, &vrp, err);
	pthread_mutex_lock(&vm->lock);
	vm->busy = NULL;
	if (rv == 0)
		snprintf(vm->last_event, sizeof(vm->last_event), "FT primary: protecting to %s",
			 rq->endpoint);
	else
		kb_errmsg_wrapf(err, "starting FT for VM %s", vm->cfg.name);
	rp->ft = info_new(vm, vrp ? vrp->ft : NULL);
	pthread_mutex_unlock(&vm->lock);
	if (vrp != NULL)
		keel__vmk__vmx_reply__free_unpacked(vrp, NULL);
	kb_log(vm->host->log, rv == 0 ? KB_LOG_INFO : KB_LOG_WARN, "VM %s: %s", vm->cfg.name,
	       rv == 0 ? vm->last_event : err->msg);
	return rv;
}

static int ft_status(struct vmk_vm *vm, Keel__Vmk__VmkReply *rp, struct kb_errmsg *err)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxFtStatus st = KEEL__VMK__VMX_FT_STATUS__INIT;
	Keel__Vmk__VmxReply *vrp = NULL;
	int rv;

	pthread_mutex_lock(&vm->lock);
	bool ask = (vm->ft != NULL || vm->power == VMK_POWERED_ON) && !vm->exited && vm->pid > 0;
	pthread_mutex_unlock(&vm->lock);
	if (!ask) {
		kb_errmsg_setf(err, "VM %s runs no vmx on this host", vm->cfg.name);
		return KB_ESTATE;
	}
	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_STATUS;
	rq.ft_status = &st;
	rv = vmx_ft(vm, &rq, CALL_MS, &vrp, err);
	pthread_mutex_lock(&vm->lock);
	if (vm->ft != NULL && vrp != NULL && vrp->ft != NULL && vrp->ft->phase != NULL)
		snprintf(vm->ft->phase, sizeof(vm->ft->phase), "%s", vrp->ft->phase);
	rp->ft = info_new(vm, vrp ? vrp->ft : NULL);
	pthread_mutex_unlock(&vm->lock);
	if (vrp != NULL)
		keel__vmk__vmx_reply__free_unpacked(vrp, NULL);
	if (rv < 0)
		kb_errmsg_wrapf(err, "FT status of VM %s", vm->cfg.name);
	return rv;
}

static int ft_stop(struct vmk_vm *vm, Keel__Vmk__VmkReply *rp, struct kb_errmsg *err)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxFtStop st = KEEL__VMK__VMX_FT_STOP__INIT;
	Keel__Vmk__VmxReply *vrp = NULL;
	int rv;

	pthread_mutex_lock(&vm->lock);
	struct vmk_vm_ft *ft = vm->ft;
	if (ft != NULL) {
		if (ft->stopping) {
			kb_errmsg_setf(err, "the FT secondary of VM %s is stopping already",
				       vm->cfg.name);
			pthread_mutex_unlock(&vm->lock);
			return KB_ESTATE;
		}
		ft->stopping = true;
		rp->ft = info_new(vm, NULL);
		pthread_mutex_unlock(&vm->lock);
		kb_log(vm->host->log, KB_LOG_INFO, "VM %s: stopping its FT secondary",
		       vm->cfg.name);
		end_secondary(vm);
		/* the watcher undoes the rest: wait for it */
		uint64_t deadline = kb_now_ns() + (uint64_t)STOP_MS * KB_NSEC_PER_MSEC;
		pthread_mutex_lock(&vm->lock);
		while (vm->ft == ft && kb_now_ns() < deadline) {
			pthread_mutex_unlock(&vm->lock);
			kb_sleep_ns(5 * KB_NSEC_PER_MSEC);
			pthread_mutex_lock(&vm->lock);
		}
		if (rp->ft != NULL) {
			free_str(rp->ft->phase);
			rp->ft->phase = kb_strdup(vm->ft == ft ? "stopping" : "stopped");
		}
		pthread_mutex_unlock(&vm->lock);
		return 0;
	}
	bool on = vm->power == VMK_POWERED_ON;
	pthread_mutex_unlock(&vm->lock);
	if (!on) {
		kb_errmsg_setf(err, "VM %s is not powered on and has no FT secondary here",
			       vm->cfg.name);
		return KB_ESTATE;
	}
	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_STOP;
	rq.ft_stop = &st;
	rv = vmx_ft(vm, &rq, CALL_MS, &vrp, err);
	pthread_mutex_lock(&vm->lock);
	rp->ft = info_new(vm, vrp ? vrp->ft : NULL);
	if (rv == 0)
		snprintf(vm->last_event, sizeof(vm->last_event),
			 "FT primary: stopped; the VM runs unprotected");
	pthread_mutex_unlock(&vm->lock);
	if (vrp != NULL)
		keel__vmk__vmx_reply__free_unpacked(vrp, NULL);
	if (rv < 0)
		kb_errmsg_wrapf(err, "stopping FT for VM %s", vm->cfg.name);
	else
		kb_log(vm->host->log, KB_LOG_INFO, "VM %s: %s", vm->cfg.name, vm->last_event);
	return rv;
}

int vmk_vm_ft_handle(struct vmk_host *h, const Keel__Vmk__VmkRequest *rq, Keel__Vmk__VmkReply *rp,
		     struct vmk_vm **vm, struct kb_errmsg *err)
{
	const char *key = NULL;

	*vm = NULL;
	switch (rq->req_case) {
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_SECONDARY:
		return ft_secondary(h, rq->vm_ft_secondary, rp, vm, err);
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_START:
		key = rq->vm_ft_start->vm;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STATUS:
		key = rq->vm_ft_status->vm;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STOP:
		key = rq->vm_ft_stop->vm;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_TAKEOVER:
		key = rq->vm_ft_takeover->vm;
		break;
	default:
		kb_errmsg_setf(err, "not an FT request");
		return KB_EPROTO;
	}
	struct vmk_vm *v = key != NULL ? vmk_vm_find(h, key) : NULL;
	if (v == NULL) {
		kb_errmsg_setf(err, "no VM named %s", key && key[0] ? key : "(empty)");
		return KB_ENOTFOUND;
	}
	*vm = v;
	switch (rq->req_case) {
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_START:
		return ft_start(v, rq->vm_ft_start, rp, err);
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STATUS:
		return ft_status(v, rp, err);
	case KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STOP:
		return ft_stop(v, rp, err);
	default:
		return ft_takeover(v, rq->vm_ft_takeover->epoch, rp, err);
	}
}
