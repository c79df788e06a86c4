/*
 * vmx internals shared by the files of kernel/vmm (not a public header).
 *
 * One struct vmm_vm per process. Threads: one per vCPU running KVM_RUN and dispatching
 * its exits to the port-I/O and MMIO buses; one event thread on epoll for device fds (tap,
 * console socket); one control thread (ctl.c). Devices are called on whichever vCPU thread
 * exited and from the event thread, so each device serialises itself with its own mutex.
 * The buses and the device list are built before the first vCPU runs and never change
 * after, so lookups take no lock.
 */
#ifndef VMM_H
#define VMM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>
#include <linux/kvm.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "lib/list.h"
#include "lib/log.h"

#define VMM_PAGE_SIZE 4096ull
#define VMM_MAX_VCPUS 64

/* ---- guest memory (mem.c) ---------------------------------------------------------- */

struct vmm_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint64_t off; /* offset in the memfd */
	uint8_t *hva;
	uint32_t slot;
};

/*
 * Guest RAM is one memfd mapped once; its regions are the RAM below the MMIO hole and the
 * RAM from 4 GiB. The VMM's own writes into guest memory are recorded in `dirty` (one bit
 * per 4 KiB page of the memfd, set atomically) so migration can OR them into KVM's log.
 */
struct vmm_mem {
	int memfd;
	uint64_t size; /* bytes of RAM */
	uint8_t *base; /* mapping of the whole memfd */
	struct vmm_mem_region regions[2];
	int nr_regions;
	uint64_t *dirty;
	uint64_t dirty_words;
	bool large;	    /* 2 MiB pages from the host's pool (reserved whole) */
	char small_why[160]; /* large pages were asked for and could not be had: why */
};

#define VMM_LARGE_PAGE (2ull << 20)

/* Returns a host pointer to [gpa, gpa+len) if the range lies within one RAM region, else
 * NULL. Reading through it is fine; writers must call vmm_mem_dirty() (or use the
 * helpers below). Any thread. */
void *vmm_mem_ptr(struct vmm_mem *m, uint64_t gpa, uint64_t len);
/* Marks [gpa, gpa+len) written by the VMM. Any thread. */
void vmm_mem_dirty(struct vmm_mem *m, uint64_t gpa, uint64_t len);
/* Copy helpers: 0 or KB_EGUEST when the range is not RAM. write marks dirty. */
int vmm_mem_read(struct vmm_mem *m, uint64_t gpa, void *out, uint64_t len);
int vmm_mem_write(struct vmm_mem *m, uint64_t gpa, const void *in, uint64_t len);

/* By memfd offset (the page order of docs/vm-state.md), for migration, FT and save/restore;
 * none marks pages dirty. Any thread.
 * next_data: the next run at or after off that may hold data, [*start, *end) (small pages:
 *   the memfd's data extents; large pages: the 2 MiB pages taken); *start == size when none.
 * put: writes whole pages (small pages: through the page cache, so fresh pages are not
 *   cleared first).
 * zero: clears a range (small pages: ranges of 2 MiB or more are given back to the host;
 *   large pages: only pages already taken are cleared, the reservation stays).
 * All return 0 or a negative errno (-ERANGE outside guest RAM). */
int vmm_mem_next_data(struct vmm_mem *m, uint64_t off, uint64_t *start, uint64_t *end);
int vmm_mem_put(struct vmm_mem *m, uint64_t off, const void *data, size_t len);
int vmm_mem_zero(struct vmm_mem *m, uint64_t off, uint64_t len);

struct vmm_vm;
/* Dirty logging for migration: re-registers every slot with (or without)
 * KVM_MEM_LOG_DIRTY_PAGES. Turning it on also clears the VMM's own bitmap. Control or
 * migration thread; the vCPUs may run. 0 or -errno with err set. */
int vmm_mem_log_dirty(struct vmm_vm *vm, bool on, struct kb_errmsg *err);
/* ORs into out (one bit per memfd page, vm->mem.dirty_words words, not cleared first) the
 * pages written since the last call: KVM_GET_DIRTY_LOG of every slot and the VMM's own
 * bitmap, whose words are swapped to zero atomically. Dirty logging must be on. */
int vmm_mem_fetch_dirty(struct vmm_vm *vm, uint64_t *out, struct kb_errmsg *err);

/* ---- I/O buses (bus.c) ------------------------------------------------------------- */

/* Handlers get the offset from the range's base. len is 1, 2, 4 or 8. */
struct vmm_io_ops {
	void (*read)(void *opaque, uint64_t off, void *data, unsigned len);
	void (*write)(void *opaque, uint64_t off, const void *data, unsigned len);
};

struct vmm_bus_range {
	uint64_t base;
	uint64_t len;
	const struct vmm_io_ops *ops;
	void *opaque;
};

struct vmm_bus {
	struct vmm_bus_range *r; /* sorted by base */
	int n;
	int cap;
};

/* Adds a range; fails with KB_EEXIST on overlap. Only before vCPUs run. */
int vmm_bus_add(struct vmm_bus *b, uint64_t base, uint64_t len, const struct vmm_io_ops *ops,
		void *opaque);
/* Dispatch; return false when no range claims addr (reads then see all ones). */
bool vmm_bus_read(struct vmm_bus *b, uint64_t addr, void *data, unsigned len);
bool vmm_bus_write(struct vmm_bus *b, uint64_t addr, const void *data, unsigned len);
void vmm_bus_close(struct vmm_bus *b);

/* ---- devices and their state (dev.c) ------------------------------------------------ */

/*
 * Every device with state registers here. save appends the device's state to out; restore
 * reads exactly what save wrote, validates every field and changes nothing on error;
 * reset returns the device to power-on state; destroy frees it. All are called with the
 * vCPUs paused (destroy: after they have exited).
 */
struct vmm_dev_ops {
	const char *name;
	int (*save)(void *opaque, struct kb_buf *out);
	int (*restore)(void *opaque, struct kb_reader *in);
	void (*reset)(void *opaque);
	void (*destroy)(void *opaque);
	/* Optional. pause(opaque, true) after the vCPUs are parked (vmm_vm_pause): from its
	 * return until pause(opaque, false) the device writes nothing into guest memory
	 * (virtio-net stops delivering received frames; they wait in the tap). The core calls
	 * pause(opaque, false) before vCPUs run again (vmm_vm_resume, vmm_vm_start). Restore
	 * keeps the pause state: a core that restores devices before guest memory pauses
	 * them first. Control thread. */
	void (*pause)(void *opaque, bool paused);
};

struct vmm_dev {
	struct kb_list link;
	uint32_t id; /* stable across save/restore: VMM_DEV_ID(type, instance) */
	const struct vmm_dev_ops *ops;
	void *opaque;
};

#define VMM_DEV_ID(type, inst) (((uint32_t)(type) << 8) | (uint32_t)(inst))
enum vmm_dev_type {
	VMM_DEV_UART = 1,
	VMM_DEV_AGENT = 2,
	VMM_DEV_PCI = 3,
	VMM_DEV_VIRTIO_BLK = 4,
	VMM_DEV_VIRTIO_NET = 5,
	VMM_DEV_TEST = 6,
};

struct vmm_vm;
int vmm_dev_register(struct vmm_vm *vm, uint32_t id, const struct vmm_dev_ops *ops, void *opaque);

/* ---- interrupts and events (irq.c, event.c) ---------------------------------------- */

/* Drives a GSI of the in-kernel irqchip. 0 or -errno. */
int vmm_irq_line(struct vmm_vm *vm, uint32_t gsi, int level);
/* Injects an MSI. 0 or -errno. */
int vmm_irq_msi(struct vmm_vm *vm, uint64_t addr, uint32_t data);

/* Runs cb on the event thread when fd is ready (EPOLLIN etc.). cb may call vmm_event_del
 * on its own fd. 0 or -errno. Any thread. */
typedef void (*vmm_event_cb)(void *arg, int fd, uint32_t events);
int vmm_event_add(struct vmm_vm *vm, int fd, uint32_t events, vmm_event_cb cb, void *arg);
int vmm_event_del(struct vmm_vm *vm, int fd);

/* ---- vCPUs and the VM (vm.c, vcpu.c) ------------------------------------------------ */

enum vmm_exit_reason_idx {
	VMM_EXIT_IO,
	VMM_EXIT_MMIO,
	VMM_EXIT_HLT,
	VMM_EXIT_INTR,
	VMM_EXIT_SHUTDOWN,
	VMM_EXIT_OTHER,
	VMM_EXIT_NR,
};

struct vmm_vcpu {
	struct vmm_vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;	     /* for join: written by the creator */
	pthread_t self;		     /* for kicks: written by the thread itself, under vm->lock */
	bool created;		     /* the thread exists and must be joined */
	int throttle_kick;	     /* the last kick was the throttle's (atomic) */
	bool started;		     /* the thread has registered (self is valid); under vm->lock */
	uint64_t run_ns;	     /* time inside KVM_RUN */
	uint64_t exits[VMM_EXIT_NR]; /* exits by reason */
};

enum vmm_state {
	VMM_STATE_CREATED, /* set up, vCPUs not started */
	VMM_STATE_RUNNING,
	VMM_STATE_PAUSED,
	VMM_STATE_STOPPED, /* guest powered off, crashed or the VM was stopped */
};

enum vmm_stop_reason {
	VMM_STOP_NONE,
	VMM_STOP_POWEROFF,  /* guest or operator powered off */
	VMM_STOP_SHUTDOWN,  /* triple fault */
	VMM_STOP_TEST_EXIT, /* test payload wrote its exit code */
	VMM_STOP_ERROR,	    /* an internal error or an unhandled exit */
	VMM_STOP_FENCED,
	VMM_STOP_MIGRATED,	   /* the guest now runs on a migration's destination */
	VMM_STOP_MIGRATION_FAILED, /* an incoming migration failed before the guest ran here */
};

/* ---- live migration (the hooks ctl.c calls; vmotion/ implements them) -------------- */

#define VMM_MIG_ID_SIZE	      16
#define VMM_MIG_KEY_SIZE      32
#define VMM_MIG_MAX_ENDPOINTS 16

enum vmm_mig_phase {
	VMM_MIG_NONE,	    /* no migration */
	VMM_MIG_CONNECTING, /* source: opening the streams */
	VMM_MIG_PRECOPY,    /* source: full pass and dirty rounds */
	VMM_MIG_SWITCHOVER, /* source: paused, last pages and the state on their way */
	VMM_MIG_READY,	    /* both: the destination loaded the state; waiting for the commit */
	VMM_MIG_COMMITTED,  /* source: GO sent; the VM stops here */
	VMM_MIG_ABORTED,    /* not committed or cancelled: the guest runs on the source */
	VMM_MIG_FAILED,	    /* an error: source keeps running, destination exits */
	VMM_MIG_WAITING,    /* destination: waiting for the streams */
	VMM_MIG_RECEIVING,  /* destination: pages arriving */
	VMM_MIG_RESUMED,    /* destination: the guest runs here */
};

/* VmxMigrateOut as plain values; strings borrowed for the call. */
struct vmm_mig_out {
	uint8_t id[VMM_MIG_ID_SIZE];
	uint8_t key[VMM_MIG_KEY_SIZE];
	const char *endpoints[VMM_MIG_MAX_ENDPOINTS]; /* "IP:PORT" */
	int nr_endpoints;
	uint32_t streams_per_endpoint; /* 0: 1 */
	bool encrypt;
	uint32_t downtime_ms; /* 0: 5 */
	uint32_t max_rounds;  /* 0: 30 */
	const char *netns;    /* path of a network namespace for the sockets, or NULL */
};

/* VmxMigrateIn. */
struct vmm_mig_in {
	uint8_t id[VMM_MIG_ID_SIZE];
	uint8_t key[VMM_MIG_KEY_SIZE];
	uint32_t count; /* streams */
	bool encrypt;
};

/* Progress and figures of the current (or last) migration. */
struct vmm_mig_status {
	enum vmm_mig_phase phase;
	uint32_t round;
	uint32_t streams;
	uint64_t bytes_sent;	  /* source: socket bytes written; destination: read */
	uint64_t pages_sent;	  /* pages carried as data */
	uint64_t zero_pages;	  /* pages carried as ZERO records */
	uint64_t dirty_rate;	  /* bytes/s the guest dirtied in the last round */
	uint64_t bandwidth;	  /* bytes/s of the last round */
	uint64_t est_downtime_us; /* the last dirty set at the measured bandwidth */
	uint32_t throttle_pct;
	uint64_t downtime_us; /* measured: pause to RESUMED (0 until known) */
	uint64_t total_us;    /* start to now, or to the end */
	int code;	      /* failed/aborted: the error */
	char error[256];
};

struct vmm_mig_ops {
	/* Starts an outgoing migration; the reply waits until phase READY or an end. */
	int (*out)(void *arg, const struct vmm_mig_out *rq, struct kb_errmsg *err);
	/* Starts accepting an incoming one; the reply waits until RESUMED or an end. */
	int (*in)(void *arg, const struct vmm_mig_in *rq, struct kb_errmsg *err);
	void (*status)(void *arg, struct vmm_mig_status *st);
	/* Source in READY: commit (GO at epoch, then the VM stops as "migrated") or not
	 * (ABORT, the guest resumes). Destination in READY: commit acts as GO. Blocks for at
	 * most a few seconds. */
	int (*commit)(void *arg, bool commit, uint64_t epoch, struct kb_errmsg *err);
	/* Ends a migration before the commit; the guest keeps running on the source. */
	int (*cancel)(void *arg, struct kb_errmsg *err);
};

const char *vmm_mig_phase_name(enum vmm_mig_phase p);

/* ---- FT (the hooks ctl.c calls; ft/ implements them; docs/ft.md) ------------------- */

enum vmm_ft_phase {
	VMM_FT_OFF,	   /* not protected, nothing under way */
	VMM_FT_CONNECTING, /* primary: opening the stream; secondary: waiting for it */
	VMM_FT_SYNCING,	   /* memory and disks copied while the guest runs */
	VMM_FT_PROTECTED,  /* checkpoints flow and are acknowledged */
	VMM_FT_LOST,	   /* primary: the stream failed, output held until VmxFtStop;
			    * secondary: the primary is gone, waiting for VmxFtTakeover */
	VMM_FT_FAILED,	   /* FT ended with an error (the primary runs on unprotected) */
	VMM_FT_RUNNING,	   /* secondary: took over, the guest runs here */
};

struct vmm_ft_start {
	uint8_t id[VMM_MIG_ID_SIZE];
	uint8_t key[VMM_MIG_KEY_SIZE];
	const char *endpoint; /* "IP:PORT", borrowed for the call */
	bool encrypt;
	uint32_t epoch_ms;  /* 0: 20 */
	const char *netns; /* or NULL */
};

struct vmm_ft_in {
	uint8_t id[VMM_MIG_ID_SIZE];
	uint8_t key[VMM_MIG_KEY_SIZE];
	bool encrypt;
};

struct vmm_ft_status {
	bool primary, secondary;
	enum vmm_ft_phase phase;
	uint64_t checkpoint; /* last acknowledged (primary) / applied (secondary) */
	uint32_t epoch_ms;
	uint64_t last_pause_us, max_pause_us;
	uint64_t last_ckpt_bytes;
	uint64_t lag_us;
	uint64_t held_frames, dropped_frames;
	uint64_t sync_bytes, bytes;
	int code;
	char error[256];
};

struct vmm_ft_ops {
	int (*start)(void *arg, const struct vmm_ft_start *rq, struct kb_errmsg *err);
	int (*in)(void *arg, const struct vmm_ft_in *rq, struct kb_errmsg *err);
	void (*status)(void *arg, struct vmm_ft_status *st);
	int (*stop)(void *arg, struct kb_errmsg *err);
	int (*takeover)(void *arg, uint64_t epoch, struct kb_errmsg *err);
};

const char *vmm_ft_phase_name(enum vmm_ft_phase p);

/* ---- FT's output rule (ft/, docs/ft.md) ----------------------------------------------
 * While vm->out_hook is set, devices hand what leaves the VM to it: net_tx gets every frame
 * a NIC transmits (fd: the NIC's backend; iov: virtio-net header then the frame) and
 * returns true when it took the frame (the device then does not write it); blk_write sees
 * every disk write (disk: the virtio-blk instance, 0..15; off: bytes) just before it goes
 * to the image. Both run on vCPU threads with the device's lock held, so they must
 * not block. The hook is set and cleared only while the VM is paused. */
struct vmm_out_hook {
	bool (*net_tx)(void *arg, int fd, const struct iovec *iov, int cnt);
	void (*blk_write)(void *arg, uint32_t disk, uint64_t off, const struct iovec *iov,
			  int cnt);
	void *arg;
};

enum vmm_guest_kind {
	VMM_GUEST_KGUEST, /* ELF entered in 64-bit mode (kguest and test payloads) */
	VMM_GUEST_LINUX,  /* bzImage or PVH vmlinux, with initramfs and command line */
};

struct vmm_config {
	uint64_t mem_size; /* bytes, multiple of 2 MiB */
	bool large_pages;  /* back RAM with the host's 2 MiB pages when its pool can hold it */
	int nr_vcpus;
	enum vmm_guest_kind kind;
	const char *kernel; /* path */
	const char *initrd; /* path or NULL */
	const char *cmdline;
	bool test_port; /* register the payload test port */
};

struct vmm_vm {
	struct kb_logger *log;
	struct vmm_config cfg;
	int kvm_fd;
	int vm_fd;
	int vcpu_mmap_size;
	uint64_t tsc_khz;
	struct kvm_cpuid2 *cpuid;
	struct vmm_mem mem;
	struct vmm_bus pio;
	struct vmm_bus mmio;
	struct kb_list devs;
	struct vmm_vcpu vcpus[VMM_MAX_VCPUS];
	int nr_vcpus;

	/* run control, under lock */
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum vmm_state state;
	enum vmm_stop_reason stop_reason;
	char stop_msg[256];
	bool pause_req;
	int nr_parked;	/* vCPUs waiting in the pause barrier */
	int nr_exited;	/* vCPU threads that have returned */
	int nr_started; /* vCPU threads that have registered */
	bool reset_req; /* guest asked for reset: handled by the control thread */
	int test_exit_code;
	bool restored; /* guest state came from a saved state, not a boot */
	int notify_fd; /* eventfd: state changed or reset requested */

	/* migration: vCPU throttling (vcpu.c) and the hooks ctl.c calls (set by main.c) */
	int throttle_pct; /* 0..99 of each 10 ms slot spent outside the guest; atomic */
	pthread_t throttle_thread;
	bool throttle_running;
	const struct vmm_mig_ops *mig_ops;
	void *mig_arg;
	const struct vmm_out_hook *out_hook; /* FT; read with __atomic_load_n */
	const struct vmm_ft_ops *ft_ops;     /* the hooks ctl.c calls for VmxFt* (main.c) */
	void *ft_arg;

	/* event thread */
	int epfd;
	int ev_wake; /* eventfd that stops the event thread */
	pthread_t ev_thread;
	bool ev_started;
	struct ev_entry *ev_all; /* registrations, freed at close; under ev_lock */
	pthread_mutex_t ev_lock;

	/* devices the core knows by name */
	struct vmm_uart *uart;
	struct vmm_agent *agent;
	struct vmm_testdev *testdev;
	struct vmm_pci *pci;
};

/* Creates the VM: KVM VM, irqchip, PIT, memory, vCPUs (not started), core devices, and
 * loads the guest per cfg. cfg's strings are borrowed for the VM's life. On error returns
 * a negative code, writes a message to err and leaves nothing behind. */
int vmm_vm_create(const struct vmm_config *cfg, struct kb_logger *log, struct vmm_vm **out,
		  struct kb_errmsg *err);
/* Stops every thread and frees everything. */
void vmm_vm_destroy(struct vmm_vm *vm);
/* The first half of vmm_vm_destroy: stops the VM (a VM already stopped keeps its reason)
 * and joins its vCPU threads and its event thread, so no device code runs any more — in
 * particular no hook (vm->out_hook) is called. Nothing is freed; vmm_vm_destroy may
 * follow at any time. */
void vmm_vm_halt(struct vmm_vm *vm);

/* Starts the vCPU threads (state CREATED or a restored VM). */
int vmm_vm_start(struct vmm_vm *vm);
/* Parks every vCPU outside KVM_RUN and waits until they are; state becomes PAUSED. */
int vmm_vm_pause(struct vmm_vm *vm);
int vmm_vm_resume(struct vmm_vm *vm);
/* Stops the guest for good: state STOPPED with reason; wakes waiters. Any thread. */
void vmm_vm_stop(struct vmm_vm *vm, enum vmm_stop_reason reason, const char *msg);
/* Blocks until state is STOPPED or timeout_ns passes (0: forever). Returns 0 or
 * KB_ETIMEOUT. */
int vmm_vm_wait_stopped(struct vmm_vm *vm, uint64_t timeout_ns);
/* Power-cycles the guest in place: pause, reset devices and memory, reload, resume. */
int vmm_vm_reset(struct vmm_vm *vm);
/* Asks the control thread to reset (from a vCPU thread). */
void vmm_vm_request_reset(struct vmm_vm *vm);
/* Keeps every vCPU out of the guest for pct% (0..99) of each 10 ms: a ticker kicks the
 * vCPUs every 10 ms and each sleeps its share. 0 stops the ticker. One caller at a time
 * (the migration); vmm_vm_destroy stops it. */
int vmm_vm_set_throttle(struct vmm_vm *vm, int pct);
/* Wakes whoever waits for a change of state (the control loop). Any thread. */
void vmm_vm_notify(struct vmm_vm *vm);

const char *vmm_stop_reason_name(enum vmm_stop_reason r);
const char *vmm_state_name(enum vmm_state s);

#endif
