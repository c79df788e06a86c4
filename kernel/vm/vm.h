/*
 * VMs as vmkernel sees them (kernel/vm): the registry of VMs on the host's datastores,
 * their power state, and the vmx process ("world") that runs each powered-on VM.
 *
 * Power states: poweredOff, poweredOn, suspended, and incoming (the destination of a live
 * migration: a vmx in incoming mode runs for it, receiving the guest; kernel/vm/migrate.c).
 * A VM is powered on exactly when a vmx for it runs and its guest runs here; vmkernel
 * learns of its end through a pidfd on the loop thread, including after a vmkernel
 * restart, when running vmx processes are re-adopted from their pid records in
 * <state dir>/run.
 *
 * Locking: host->lock guards the VM list; each VM's lock guards its fields; `busy` marks
 * a power operation in progress so operations on one VM never overlap (others get
 * KB_ESTATE with a message saying what is in progress).
 */
#ifndef VMK_VM_H
#define VMK_VM_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "kernel/core/host.h"
#include "kernel/vm/vmxfile.h"
#include "lib/err.h"
#include "lib/list.h"
#include "vmk.pb-c.h"

enum vmk_power {
	VMK_POWERED_OFF,
	VMK_POWERED_ON,
	VMK_SUSPENDED,
	VMK_INCOMING, /* a migration's destination: its vmx receives the guest (busy meanwhile) */
};

#define VMK_MAX_NICS VMK_VMX_NICS

/* A running VM's standing in the cluster (kernel/vm/owner.c): the (host, epoch) clusterd
 * gave its power-on and, when its datastore is shared, the lock it holds and the heartbeat
 * record its vmx fences on. All zero when standalone or powered off. */
struct vmk_vm_owner {
	uint64_t host; /* 0: not powered on through a cluster */
	uint64_t epoch;
	bool fenced;	     /* the vmx runs with --fence-*: lock and hb below are set */
	char lock[PATH_MAX]; /* <vm dir>/.lock */
	char hb[PATH_MAX];   /* <datastore>/.keel-hb/<this host's id> */
};

/* A power-on the cluster placed on another host (docs/drs.md, "Initial placement"): that
 * host's reconciler powers the VM on and nothing starts here. host[0] == '\0': not placed
 * elsewhere. */
struct vmk_vm_placed {
	uint64_t host_id;
	char host[64];	     /* its name */
	char placement[256]; /* placement's words: "VM a placed on host3 by DRS (...)" */
};

/* A live migration of the VM on this host (kernel/vm/migrate.c), under vm->lock; kept
 * after its end for the status until the next one. */
#define VMK_MIG_MAX_ENDPOINTS 16

struct vmk_vm_mig {
	bool active;	 /* under way */
	bool dest;	 /* this host is the destination (else the source) */
	bool registered; /* destination: the VM was registered here for the migration */
	bool cancel;	 /* destination: a cancel ends the incoming vmx */
	char cancel_reason[128];
	char endpoints[VMK_MIG_MAX_ENDPOINTS][24]; /* "IP:PORT" */
	int nr_endpoints;
	char phase[16]; /* VmxMigrateReply.phase, or starting, done, failed */
	uint64_t epoch; /* the epoch of the switchover (0: none) */
	uint64_t t0_ns; /* when it started here */
	struct {	/* the vmx's last figures (VmxMigrateReply) */
		uint32_t round, throttle_pct, streams;
		uint64_t bytes_sent, pages_sent, zero_pages, dirty_rate, bandwidth;
		uint64_t est_downtime_us, downtime_us, total_us;
	} fig;
	int error_code;
	char error[256];
};

/* VM monitoring's view of a running VM (kernel/vm/monitor.c), under vm->lock. */
struct vmk_vm_mon {
	uint64_t seq;	 /* the guest's last heartbeat sequence seen (0: none) */
	uint64_t age_ms; /* since that heartbeat, by the vmx's clock, when last asked */
	uint64_t last_reset_ns;
	uint64_t limit_logged_ns;
	uint64_t resets_ns[VMK_VMX_MON_RESETS_MAX]; /* ring of reset times (0: unused) */
	uint32_t next_reset;
};

struct vmk_vm {
	struct kb_list link;	   /* host->vms */
	struct kb_list watch_link; /* host->watch_q */
	struct vmk_host *host;
	pthread_mutex_t lock;
	struct vmk_vmx cfg; /* the parsed .vmx */
	char vmx_path[PATH_MAX];
	char dir[PATH_MAX];
	char datastore[64];

	enum vmk_power power;
	const char *busy; /* operation in progress, or NULL */
	char last_event[256];
	pid_t pid;
	int pidfd;	  /* -1 when not running */
	bool child;	  /* started by this vmkernel (else re-adopted) */
	bool expect_exit; /* a power operation is ending the vmx */
	bool exited;	  /* the loop saw the vmx end (vm->cond is signalled) */
	int exit_code;	  /* >= 0: exit status; < 0: -signal; INT_MIN: unknown */
	pthread_cond_t cond;
	uint64_t powered_on_ns;
	char taps[VMK_MAX_NICS][16];
	int nr_taps;
	uv_poll_t *poll;	 /* loop thread only */
	struct vmk_vm_owner own; /* the running vmx's cluster ownership */
	struct vmk_vm_mon mon;
	struct vmk_vm_mig mig;
	/* Registered for an incoming migration that has not ended: left out of
	 * inventory.conf until the guest runs here (host->lock). */
	bool transient;
	/* Listening sockets a vmx about to start inherits (--incoming-fd), set around one
	 * vmk__vm_start() only; the descriptors stay close-on-exec in vmkernel. */
	const int *inherit_fds;
	int nr_inherit_fds;
	bool inherit_ft; /* the one inherited socket is an FT secondary's (--ft-secondary-fd) */
	/* An FT secondary of the VM on this host (kernel/vm/ft.c; power VMK_INCOMING, shown
	 * as "ft-secondary"), or NULL. */
	struct vmk_vm_ft *ft;
};

/* Paths of a VM's vmx sockets, records and files. */
void vmk_vm_ctl_path(const struct vmk_vm *vm, char *out, size_t size);
void vmk_vm_console_path(const struct vmk_vm *vm, char *out, size_t size);
void vmk_vm_pidfile_path(const struct vmk_vm *vm, char *out, size_t size);
void vmk_vm_file_path(const struct vmk_vm *vm, const char *suffix, char *out, size_t size);
const char *vmk_power_name(enum vmk_power p);

/* registry.c: find by name or uuid (host->lock held by the caller or not: it takes it).
 * Returns NULL when absent. */
struct vmk_vm *vmk_vm_find(struct vmk_host *h, const char *name_or_uuid);
/* Loads <state>/inventory.conf and every VM it lists (a VM whose .vmx cannot be read is
 * logged and skipped). */
int vmk_vm_inventory_load(struct vmk_host *h);
int vmk__inventory_save(struct vmk_host *h);
/* Adds a parsed VM to the registry; takes ownership of vm on success. */
int vmk__vm_add(struct vmk_host *h, struct vmk_vm *vm, struct kb_errmsg *err);
/* Fills vm from the .vmx at path: directory, datastore, power state. */
int vmk__vm_load(struct vmk_vm *vm, const char *path, struct kb_errmsg *err);
struct vmk_vm *vmk__vm_alloc(struct vmk_host *h);
void vmk__vm_free(struct vmk_vm *vm);

/* vmctl.c: one request to a vmx's control socket; *out freed with
 * keel__vmk__vmx_reply__free_unpacked. timeout in ms. */
int vmk_vmx_call(const char *ctl_path, Keel__Vmk__VmxRequest *rq, Keel__Vmk__VmxReply **out,
		 int timeout_ms, struct kb_errmsg *err);

/* power.c: starts the VM's vmx as a power-on does (admission, cgroup, taps, the vmx
 * placed in its cgroup, its control socket answering); on failure everything is undone.
 * restore: a .vmss to resume from, or NULL; incoming: the vmx starts in incoming mode with
 * vm->inherit_fds as --incoming-fd (the VM becomes VMK_INCOMING, else VMK_POWERED_ON, and
 * is watched by the loop). vm->busy is held, vm->lock not. */
int vmk__vm_start(struct vmk_vm *vm, const char *restore, bool incoming, struct kb_errmsg *err);
/* power.c: claims vm for op (vm->busy) when no operation is in progress; vm->lock held. */
int vmk__vm_claim(struct vmk_vm *vm, const char *op, struct kb_errmsg *err);

/* registry.c: takes vm off the list and saves the inventory (nothing is told to the
 * cluster; vm is never freed, as a request may hold a pointer to it). host->lock not held. */
void vmk__vm_unlist(struct vmk_host *h, struct vmk_vm *vm);

/* spawn.c / supervise.c */
int vmk__vmx_spawn(struct vmk_vm *vm, const char *restore, struct kb_errmsg *err);
/* Waits up to timeout_ms for the loop to see the vmx exit; returns 0 if it did.
 * Caller holds vm->lock. */
int vmk__vmx_wait_exit(struct vmk_vm *vm, int timeout_ms);
/* The pid record of a running VM: written after power-on, read at re-adoption. */
int vmk__pidfile_write(struct vmk_vm *vm);
/* Releases what a running VM held (taps, cgroup, pid record) and marks it powered off
 * (or suspended). Caller holds vm->lock. */
void vmk__vm_release(struct vmk_vm *vm, enum vmk_power to, const char *event);
/* Loop thread: start watching queued VMs' pidfds. */
void vmk__supervise_run_queue(struct vmk_host *h);
/* Loop thread, at exit: stops watching every VM (their vmx keep running). */
void vmk__supervise_stop_all(struct vmk_host *h);
/* Queue vm for watching (any thread). */
void vmk__supervise_watch(struct vmk_vm *vm);
/* owner.c: the cluster's side of power operations. Before a power-on (vm->busy held,
 * vm->lock not): asks clusterd OP_POWER_ON and, when the host is a member and the VM's
 * datastore is shared, takes <vm dir>/.lock at (host, epoch); fills *own (all zero when
 * standalone). 0, or the refusal with err saying why. When the cluster placed the VM on
 * another host: with placed (not NULL) 0 with *placed filled and *own all zero (the caller
 * starts nothing); with placed NULL, KB_ESTATE naming that host. */
int vmk__owner_power_on(struct vmk_vm *vm, struct vmk_vm_owner *own, bool wanted_only,
			struct vmk_vm_placed *placed, struct kb_errmsg *err);
/* Releases own's lock, if any (logged on failure). vm->lock not held: blocks on I/O. */
void vmk__owner_release(struct vmk_vm *vm, const struct vmk_vm_owner *own);
/* At start, for a VM whose vmx was gone: a lock this host still holds for it (the vmx died
 * with the host) is released, since no vmx of this host runs it; otherwise the new owner
 * HA chose would find it held by a host whose lease is alive again. Blocks on I/O. */
void vmk__owner_release_orphan(struct vmk_vm *vm);
/* Tells clusterd op (OP_POWER_OFF, OP_SUSPEND) after the fact; failures are logged. */
void vmk__owner_tell(struct vmk_vm *vm, int op);
/* Recovers own from a re-adopted vmx's command line (n bytes of NUL-separated args). */
void vmk__owner_from_cmdline(struct vmk_vm *vm, const char *cmd, size_t n);
/* Loop thread, after a vmx ended on its own: releases its lock on a thread-pool thread
 * unless it was fenced (then the lock is no longer ours to write). */
void vmk__owner_after_exit(struct vmk_vm *vm);

/* At start: re-adopt VMs whose vmx still runs. */
void vmk_vm_adopt_all(struct vmk_host *h);

/* ops.c: the control operations, each filling reply (any thread). */
/* In a cluster (docs/vmkernel.md "In a cluster"): create and register then ask clusterd
 * for OP_REGISTER, undone when it refuses (unless from_cluster: clusterd's reconciler
 * asked); unregister and destroy tell it OP_UNREGISTER (same exception); power-on asks
 * OP_POWER_ON first and, on a shared datastore, takes the VM's lock and fences the vmx;
 * power-off (fence: for the isolation response, the cluster is not told) and suspend
 * release the lock and tell it OP_POWER_OFF / OP_SUSPEND. */
int vmk_vm_create(struct vmk_host *h, const Keel__Vmk__VmSpec *spec, struct vmk_vm **out,
		  struct kb_errmsg *err);
int vmk_vm_register(struct vmk_host *h, const char *vmx_path, bool from_cluster,
		    struct vmk_vm **out, struct kb_errmsg *err);
int vmk_vm_unregister(struct vmk_host *h, struct vmk_vm *vm, bool from_cluster,
		      struct kb_errmsg *err);
int vmk_vm_destroy(struct vmk_host *h, struct vmk_vm *vm, struct kb_errmsg *err);
int vmk_vm_reconfigure(struct vmk_vm *vm, const Keel__Vmk__VmSpec *spec, struct kb_errmsg *err);
int vmk_vm_power_on(struct vmk_vm *vm, struct kb_errmsg *err);
/* wanted_only: the owner's reconciler asked (VmkVmPowerOn.reconcile): in a cluster, refused
 * (KB_ESTATE) once the cluster no longer wants the VM on (an operator's power-off committed
 * after the reconciler looked). placed (may be NULL; zeroed here): an operator's power-on
 * that the cluster placed on another host succeeds with *placed saying where, nothing
 * started here (docs/drs.md, "Initial placement"); with NULL it is refused (KB_ESTATE). */
int vmk_vm_power_on_as(struct vmk_vm *vm, bool wanted_only, struct vmk_vm_placed *placed,
		       struct kb_errmsg *err);
int vmk_vm_power_off(struct vmk_vm *vm, bool fence, struct kb_errmsg *err);
int vmk_vm_reset(struct vmk_vm *vm, struct kb_errmsg *err);
int vmk_vm_suspend(struct vmk_vm *vm, struct kb_errmsg *err);
int vmk_vm_resume(struct vmk_vm *vm, struct kb_errmsg *err);
/* migrate.c, migrate_out.c: live migration, vmkernel's part (docs/vmotion.md). Each fills
 * info (strings allocated with kb_; freed by vmk_vm_migrate_info_free()) and err. MigrateIn returns at
 * once with the endpoints (the migration goes on in the background); MigrateOut blocks
 * until the migration ended (thread-pool thread). */
int vmk_vm_migrate_in(struct vmk_host *h, const Keel__Vmk__VmkVmMigrateIn *rq,
		      Keel__Vmk__VmkMigrateInfo *info, struct vmk_vm **out, struct kb_errmsg *err);
int vmk_vm_migrate_out(struct vmk_vm *vm, const Keel__Vmk__VmkVmMigrateOut *rq,
		       Keel__Vmk__VmkMigrateInfo *info, struct kb_errmsg *err);
int vmk_vm_migrate_status(struct vmk_vm *vm, Keel__Vmk__VmkMigrateInfo *info,
			  struct kb_errmsg *err);
int vmk_vm_migrate_cancel(struct vmk_vm *vm, const char *reason, Keel__Vmk__VmkMigrateInfo *info,
			  struct kb_errmsg *err);
int vmk_vm_migrate_commit(struct vmk_vm *vm, uint64_t epoch, Keel__Vmk__VmkMigrateInfo *info,
			  struct kb_errmsg *err);
void vmk_vm_migrate_info_free(Keel__Vmk__VmkMigrateInfo *info);

/* Fills a VmInfo (strings point into scratch, valid until the next call with it). */
struct vmk_vminfo_scratch;
void vmk_vm_info(struct vmk_vm *vm, Keel__Vmk__VmInfo *info, struct vmk_vminfo_scratch *s);

#endif
