/*
 * Resources of the host and of its VMs (kernel/res): host capacity and the host reserve,
 * per-VM CPU shares, reservation and limit and memory reservation and limit mapped to
 * cgroups (v1 or v2, detected at init), usage figures, and admission control.
 *
 * Happy path: vmkernel calls vmk_res_init() once, which reads the host's capacity, detects
 * the cgroup layout and creates the Keel parent group (default "keel/vms") in every
 * hierarchy used. To power on a VM it checks vmk_res_admit() against the reservations of
 * the VMs already powered on, calls vmk_res_vm_create() (creates or updates the VM's group
 * <parent>/<uuid>), starts the vmx and calls vmk_res_vm_attach() with its pid before the
 * guest touches its memory. vmk_res_vm_usage() reads a running VM's CPU time and memory.
 * After the vmx has exited and been reaped, vmk_res_vm_remove() deletes the group.
 *
 * Failure modes: settings that contradict each other or the VM's size are refused with
 * KB_ECONFIG and change nothing; a power-on whose reservations do not fit is refused by
 * vmk_res_admit() with KB_ESTATE and a message naming the VM, what it reserves and what
 * remains; cgroupfs errors come back as -errno with the file named in the message. A VM
 * group that already exists (vmkernel restarted while its vmx kept running) is reused.
 *
 * Threads: after vmk_res_init() a struct vmk_res is read-only, and every function taking a
 * const struct vmk_res may be called from any thread at the same time. They do blocking
 * file I/O on cgroupfs (microseconds); vmk_res_vm_remove() may sleep up to
 * rmdir_timeout_ms while a group empties, so call it from the thread pool.
 *
 * The mapping of each setting to cgroup v1 and v2 files, the admission rules and the
 * host reserve are documented in docs/resources.md.
 */
#ifndef VMK_RES_H
#define VMK_RES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"
#include "lib/log.h"

struct Keel__Vmk__Resources;
struct vmk__res_ops;

/* ---- Settings of one VM (ESXi's sched.cpu.* and sched.mem.* keys) ---- */

/* CPU shares as in ESXi: a level scales with the VM's vCPU count, a custom number is the
 * VM's total. Shares only matter when VMs compete for CPU: a VM with twice the shares of
 * another gets twice the CPU time. */
enum vmk_res_shares_level {
	VMK_RES_SHARES_NORMAL = 0, /* 1000 per vCPU (the zero value) */
	VMK_RES_SHARES_LOW,	   /* 500 per vCPU */
	VMK_RES_SHARES_HIGH,	   /* 2000 per vCPU */
	VMK_RES_SHARES_CUSTOM,	   /* the number in shares, VMK_RES_SHARES_MIN..MAX */
};

#define VMK_RES_SHARES_LOW_PER_VCPU    500
#define VMK_RES_SHARES_NORMAL_PER_VCPU 1000
#define VMK_RES_SHARES_HIGH_PER_VCPU   2000
#define VMK_RES_SHARES_MIN	       1
#define VMK_RES_SHARES_MAX	       1000000

/* A VM's resource settings. All zero means: normal shares, no reservation, no CPU limit,
 * memory limited to the VM's memory size. */
struct vmk_res_settings {
	enum vmk_res_shares_level shares_level;
	uint32_t shares;	      /* VMK_RES_SHARES_CUSTOM only */
	uint32_t cpu_reservation_mhz; /* guaranteed by admission control */
	uint32_t cpu_limit_mhz;	      /* 0: unlimited */
	uint32_t mem_reservation_mib; /* guaranteed by admission control; v2 protects it */
	uint32_t mem_limit_mib;	      /* 0 or above the memory size: the memory size */
};

/* Parses ESXi's shares text: "low", "normal", "high" (any case) or a decimal number in
 * VMK_RES_SHARES_MIN..MAX; "" or NULL means normal. Returns 0, or KB_ECONFIG with err set
 * (err may be NULL). */
int vmk_res_shares_parse(const char *text, enum vmk_res_shares_level *level, uint32_t *shares,
			 struct kb_errmsg *err);

/* Writes the shares of s as text ("normal", "2500", ...) into buf and returns buf. */
const char *vmk_res_shares_format(const struct vmk_res_settings *s, char *buf, size_t size);

/* The VM's shares: level x vCPUs (a vCPU count of 0 counts as 1), or the custom number;
 * at most VMK_RES_SHARES_MAX. */
uint32_t vmk_res_shares(const struct vmk_res_settings *s, uint32_t vcpus);

/* Checks s against itself and the VM's size: shares in range, CPU limit not below the CPU
 * reservation, CPU reservation within what the vCPUs can use at cpu_mhz each (skipped when
 * cpu_mhz is 0), memory reservation within mem_mib, memory limit not below the memory
 * reservation. Returns 0 or KB_ECONFIG with a message in err (may be NULL). */
int vmk_res_settings_check(const struct vmk_res_settings *s, uint32_t mem_mib, uint32_t vcpus,
			   uint32_t cpu_mhz, struct kb_errmsg *err);

/* Converts the protobuf message (pb may be NULL: all defaults). The shares text is parsed;
 * nothing else is checked here (vmk_res_settings_check does). 0 or KB_ECONFIG. */
int vmk_res_settings_from_pb(const struct Keel__Vmk__Resources *pb, struct vmk_res_settings *out,
			     struct kb_errmsg *err);

/* Fills pb (initialised by the caller with KEEL__VMK__RESOURCES__INIT) from s. pb's
 * cpu_shares points into shares_buf (at least 16 bytes), which must outlive pb. */
void vmk_res_settings_to_pb(const struct vmk_res_settings *s, struct Keel__Vmk__Resources *pb,
			    char *shares_buf, size_t size);

/* ---- Mapping to cgroup values (docs/resources.md) ---- */

#define VMK_RES_V1_SHARES_MIN 2
#define VMK_RES_V1_SHARES_MAX 262144
#define VMK_RES_V2_WEIGHT_MIN 1
#define VMK_RES_V2_WEIGHT_MAX 10000
#define VMK_RES_QUOTA_MIN_US  1000 /* the kernel's smallest CFS quota */

/* cgroup v1 cpu.shares for a VM's shares: shares x 1024 / 1000, rounded, clamped to
 * 2..262144 (one normal vCPU weighs the kernel's default 1024). */
uint32_t vmk_res_v1_cpu_shares(uint32_t shares);

/* cgroup v2 cpu.weight for a VM's shares: shares / 10, rounded, clamped to 1..10000 (one
 * normal vCPU weighs the kernel's default 100). */
uint32_t vmk_res_v2_cpu_weight(uint32_t shares);

/* CFS quota in microseconds per period for a CPU limit: limit_mhz / cpu_mhz x period_us,
 * rounded down, at least VMK_RES_QUOTA_MIN_US. Returns -1 (no quota) when limit_mhz is 0
 * or cpu_mhz is 0, or when the limit is at least what the vCPUs can use (vcpus x cpu_mhz),
 * since such a limit never binds. */
int64_t vmk_res_cfs_quota_us(uint32_t limit_mhz, uint32_t cpu_mhz, uint32_t vcpus,
			     uint32_t period_us);

/* The memory cap of a VM's group in bytes: the effective limit (mem_limit_mib, or mem_mib
 * when the limit is 0 or larger) plus the vmx's overhead allowance, overhead_mib + 1/64 of
 * the effective limit (rounded up), since the group holds the whole vmx process. */
uint64_t vmk_res_mem_max_bytes(uint32_t limit_mib, uint32_t mem_mib, uint32_t overhead_mib);

/* ---- Host capacity and the host reserve ---- */

/* What the host keeps for itself (vmkernel, vmx overheads, the host's other services):
 * admission control hands out only what is left. Each part is a fixed amount plus a
 * percentage of the total; percentages are 0..100. */
struct vmk_res_reserve {
	uint32_t cpu_mhz;     /* fixed, default 0 */
	uint32_t cpu_percent; /* of all CPUs' MHz, default 10 */
	uint32_t mem_mib;     /* fixed, default 256 */
	uint32_t mem_percent; /* of MemTotal, default 5 */
};

#define VMK_RES_RESERVE_DEFAULT                                                   \
	{                                                                         \
		.cpu_mhz = 0, .cpu_percent = 10, .mem_mib = 256, .mem_percent = 5 \
	}

/* Per-CPU MHz used when nothing on the host names it. */
#define VMK_RES_DEFAULT_CPU_MHZ 1000

struct vmk_res_capacity {
	uint32_t cpus;		       /* online CPUs */
	uint32_t cpu_mhz;	       /* per CPU */
	char cpu_mhz_source[32];       /* where cpu_mhz came from (docs/resources.md) */
	uint64_t cpu_total_mhz;	       /* cpus x cpu_mhz */
	uint64_t mem_total_bytes;      /* MemTotal */
	uint64_t mem_total_mib;	       /* MemTotal, rounded down */
	uint64_t cpu_host_reserve_mhz; /* kept by the host (the reserve, rounded up) */
	uint64_t mem_host_reserve_mib; /* kept by the host (the reserve, rounded up) */
	uint64_t cpu_reservable_mhz;   /* what admission control may hand out */
	uint64_t mem_reservable_mib;   /* what admission control may hand out */
};

/* Reads the host's capacity: online CPUs from <sys_root>/devices/system/cpu/online (else
 * /proc/cpuinfo, else sysconf), per-CPU MHz (cpu_mhz if not 0, else cpufreq's
 * base_frequency, else cpufreq's cpuinfo_max_freq, else /proc/cpuinfo "cpu MHz", else
 * VMK_RES_DEFAULT_CPU_MHZ) and MemTotal from <proc_root>/meminfo, then applies reserve.
 * NULL roots mean "/proc" and "/sys", a NULL reserve VMK_RES_RESERVE_DEFAULT. Returns 0,
 * or -errno / KB_EPROTO when meminfo cannot be read or parsed, with err set. */
int vmk_res_capacity_probe(const char *proc_root, const char *sys_root, uint32_t cpu_mhz,
			   const struct vmk_res_reserve *reserve, struct vmk_res_capacity *cap,
			   struct kb_errmsg *err);

/* Recomputes cap's host reserve and reservable figures from its totals (reserve NULL:
 * VMK_RES_RESERVE_DEFAULT). Each reserve is fixed + percent of the total rounded up;
 * percentages above 100 count as 100; a reserve above the total leaves 0 reservable. */
void vmk_res_capacity_apply_reserve(struct vmk_res_capacity *cap,
				    const struct vmk_res_reserve *reserve);

/* Average MHz used over an interval: cpu_ns of CPU time in wall_ns of wall time, at
 * cap->cpu_mhz per CPU. 0 when wall_ns is 0. */
double vmk_res_usage_mhz(const struct vmk_res_capacity *cap, uint64_t cpu_ns, uint64_t wall_ns);

/* ---- Admission control ---- */

/* Sums of reservations (of the powered-on VMs, say). */
struct vmk_res_totals {
	uint64_t cpu_mhz;
	uint64_t mem_mib;
};

/* Adds s's reservations to t. */
void vmk_res_totals_add(struct vmk_res_totals *t, const struct vmk_res_settings *s);

/* Decides whether a VM named name (for the message; NULL: "the VM") with settings vm may
 * power on when reserved is already handed out: it fits when reserved + its reservation is
 * at most cap's reservable figure, for CPU and for memory (exactly full fits). A VM with no
 * reservation always fits. Returns 0, or KB_ESTATE with a message such as "cannot power
 * on web1: it reserves 2048 MiB of memory; 1536 MiB of 7680 MiB remain unreserved". */
int vmk_res_admit(const struct vmk_res_capacity *cap, const struct vmk_res_totals *reserved,
		  const char *name, const struct vmk_res_settings *vm, struct kb_errmsg *err);

/* ---- cgroups ---- */

enum vmk_res_cgroup_mode {
	VMK_RES_CGROUP_AUTO = 0, /* v2 if <root>/cgroup.controllers exists, else v1 */
	VMK_RES_CGROUP_V1,	 /* separate hierarchies <root>/cpu, cpuacct, memory */
	VMK_RES_CGROUP_V2,	 /* unified hierarchy at <root> */
	VMK_RES_CGROUP_NONE,	 /* no cgroups: settings are checked, nothing is enforced */
};

/* The controllers whose groups a VM has (one directory each in v1, one in all in v2). */
enum vmk_res_controller {
	VMK_RES_CPU = 0,
	VMK_RES_CPUACCT,
	VMK_RES_MEMORY,
	VMK_RES_NCONTROLLERS,
};

struct vmk_res_config {
	enum vmk_res_cgroup_mode mode; /* default AUTO */
	const char *cgroup_root;       /* default "/sys/fs/cgroup" */
	const char *parent;	       /* Keel's group, relative; default "keel/vms" */
	/* Create parent under this process's own cgroup (/proc/self/cgroup) instead of at
	 * the hierarchy's root. */
	bool delegated;
	/* cgroup_root is a tree of plain directories (tests): files are created when
	 * written and removed with their directory. */
	bool plain_dirs;
	const char *proc_root;		/* default "/proc" */
	const char *sys_root;		/* default "/sys" */
	struct vmk_res_reserve reserve; /* default VMK_RES_RESERVE_DEFAULT */
	uint32_t cpu_mhz;		/* per-CPU MHz; 0 (default): read from the host */
	uint32_t cfs_period_us;		/* CFS period for CPU limits, default 100000 */
	uint32_t mem_overhead_mib;	/* fixed vmx overhead allowance, default 32 */
	uint32_t rmdir_timeout_ms;	/* how long vm_remove waits for a busy group, 1000 */
	struct kb_logger *log;		/* borrowed; NULL: kb_log_default */
};

/* The resource module. Caller-allocated; the fields are private to kernel/res and
 * read-only between vmk_res_init() and vmk_res_close(). */
struct vmk_res {
	enum vmk_res_cgroup_mode mode; /* V1, V2 or NONE */
	struct vmk_res_capacity cap;
	struct kb_logger *log;
	const struct vmk__res_ops *ops;
	bool plain_dirs;
	uint32_t period_us;
	uint32_t mem_overhead_mib;
	uint32_t rmdir_timeout_ms;
	char *parent;			       /* the configured relative parent */
	unsigned ndirs;			       /* distinct hierarchies used */
	char *base[VMK_RES_NCONTROLLERS];      /* per hierarchy: where parent starts */
	char *dir[VMK_RES_NCONTROLLERS];       /* per hierarchy: base/parent */
	unsigned dir_of[VMK_RES_NCONTROLLERS]; /* controller -> index in dir */
};

/* Fills cfg with the defaults above. */
void vmk_res_config_init(struct vmk_res_config *cfg);

/* Sets up res: reads the host's capacity, selects the cgroup layout (cfg->mode; AUTO
 * detects) and creates the parent group in each hierarchy used (in v2 also enabling the
 * cpu and memory controllers down to it, and giving the parent levels a memory.min that
 * lets the VMs' memory.min take effect). cfg's strings are copied. Returns 0, or -errno
 * (e.g. -EACCES when cgroupfs is not writable), KB_ENOTSUP (no usable cgroup layout: the
 * caller may retry with VMK_RES_CGROUP_NONE) or KB_ECONFIG (bad cfg), with err set; on
 * error nothing is left to close and no parent level it created remains. NULL roots in
 * cfg mean the defaults. Call before other threads use res. */
int vmk_res_init(struct vmk_res *res, const struct vmk_res_config *cfg, struct kb_errmsg *err);

/* Frees what res holds. Leaves every cgroup in place (running VMs keep their limits
 * across a vmkernel restart); see vmk_res_remove_parent(). */
void vmk_res_close(struct vmk_res *res);

/* Host capacity as read at init. Borrowed from res. */
const struct vmk_res_capacity *vmk_res_host_capacity(const struct vmk_res *res);

/* "v1", "v2" or "none". */
const char *vmk_res_cgroup_version(const struct vmk_res *res);

/* Creates the group <parent>/<uuid> of a VM with mem_mib of memory and vcpus vCPUs in every
 * hierarchy, or updates it if it exists, and writes s into it. uuid: 1..64 characters
 * of [A-Za-z0-9._-], not starting with '.'. Checks s first (vmk_res_settings_check);
 * admission is the caller's, with vmk_res_admit(). Returns 0, KB_ECONFIG for a bad uuid or
 * settings (nothing changed), or -errno with err naming the file; a group created by this
 * call is removed again on error. In mode NONE only the checks are made. */
int vmk_res_vm_create(const struct vmk_res *res, const char *uuid, const struct vmk_res_settings *s,
		      uint32_t mem_mib, uint32_t vcpus, struct kb_errmsg *err);

/* Moves process pid (with all its threads) into the VM's group in every hierarchy. Attach
 * before the process allocates guest memory: memory already charged stays where it is.
 * Returns 0, -ESRCH (no such process), -ENOENT (no group: vm_create first) or -errno. */
int vmk_res_vm_attach(const struct vmk_res *res, const char *uuid, pid_t pid,
		      struct kb_errmsg *err);

/* Removes the VM's group from every hierarchy. Its processes must have exited (zombies
 * reaped); while the group is busy the call retries for up to rmdir_timeout_ms, then
 * returns -EBUSY with the group left in place. A group that does not exist is not an
 * error. Returns 0 or -errno. */
int vmk_res_vm_remove(const struct vmk_res *res, const char *uuid, struct kb_errmsg *err);

/* Reads the VM's CPU time in nanoseconds since its group was created (v1 cpuacct.usage,
 * v2 cpu.stat usage_usec) and its memory use in bytes (v1 memory.usage_in_bytes, v2
 * memory.current). Returns 0, KB_ENOTFOUND (no group), KB_ENOTSUP (mode NONE) or -errno. */
int vmk_res_vm_usage(const struct vmk_res *res, const char *uuid, uint64_t *cpu_ns,
		     uint64_t *mem_bytes, struct kb_errmsg *err);

/* Writes the directory of the VM's group for controller c into buf (whether or not it
 * exists). Returns 0, KB_ECONFIG (bad uuid or c), KB_ENOTSUP (mode NONE) or
 * -ENAMETOOLONG. */
int vmk_res_vm_dir(const struct vmk_res *res, const char *uuid, enum vmk_res_controller c,
		   char *buf, size_t size);

/* Removes the parent group's levels (deepest first) from every hierarchy, for tests and
 * uninstall. Returns 0, or -EBUSY when VM groups remain under it. */
int vmk_res_remove_parent(const struct vmk_res *res, struct kb_errmsg *err);

#endif
