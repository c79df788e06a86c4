/*
 * The VM configuration file, <name>.vmx: `key = "value"` lines as in ESXi (docs/vmx-file.md).
 *
 * struct vmk_vmx holds the keys vmkernel understands (name, uuid, memory, vCPUs, guest
 * kind and boot files, disks, NICs, resource settings) in typed fields, and every other key
 * verbatim and in file order so a rewrite preserves it. A .vmx file is untrusted input: it
 * goes through vmk_vmx_parse(), the one checked decoder, which refuses anything malformed
 * or out of range with a message naming the line and the key, and changes nothing on error.
 * Specs from the control socket (Keel__Vmk__VmSpec) go through the same per-key checks.
 *
 * Nothing here is thread-safe for one struct vmk_vmx; distinct structs may be used from
 * distinct threads. Functions that touch files block and belong off the event loop.
 */
#ifndef VMK_VMXFILE_H
#define VMK_VMXFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"
#include "vmk.pb-c.h"

#define VMK_VMX_FILE_MAX	(64 * 1024) /* bytes in a .vmx file */
#define VMK_VMX_LINE_MAX	8192	    /* bytes in one line, without the newline */
#define VMK_VMX_KEYS_MAX	1024	    /* keys in one file */
#define VMK_VMX_KEY_MAX		128	    /* bytes in one key */
#define VMK_VMX_NAME_MAX	63	    /* bytes in a VM name */
#define VMK_VMX_PATH_MAX	1023	    /* bytes in a disk, kernel or initrd path */
#define VMK_VMX_CMDLINE_MAX	2047	    /* bytes in the guest command line */
#define VMK_VMX_PG_MAX		63	    /* bytes in a portgroup name */
#define VMK_VMX_DISKS		8
#define VMK_VMX_NICS		8
#define VMK_VMX_MEMSIZE_MIN	4
#define VMK_VMX_MEMSIZE_MAX	1048576
#define VMK_VMX_VCPUS_MAX	64
#define VMK_VMX_MHZ_MAX		10000000 /* sched.cpu.min / sched.cpu.max */
#define VMK_VMX_SHARES_MAX	1000000	 /* a numeric sched.cpu.shares */
#define VMK_VMX_DEFAULT_MEMSIZE 256	 /* MiB, when a create spec gives none */
#define VMK_UUID_LEN		36
#define VMK_MAC_LEN		17 /* "xx:xx:xx:xx:xx:xx" */

enum vmk_guest_kind {
	VMK_GUEST_NONE = 0, /* unset */
	VMK_GUEST_KGUEST,
	VMK_GUEST_LINUX,
};

struct vmk_vmx_disk {
	bool present;
	bool read_only;
	char file[VMK_VMX_PATH_MAX + 1]; /* a file name in the VM directory, or absolute */
};

struct vmk_vmx_nic {
	bool present;
	char portgroup[VMK_VMX_PG_MAX + 1];
	char mac[VMK_MAC_LEN + 1]; /* lower-case "02:4b:..."; "" until generated */
};

/* Resource settings (sched.* keys). 0 and "" mean "not set". */
struct vmk_vmx_res {
	char cpu_shares[16];  /* "low", "normal", "high" or a number; "" is normal */
	uint32_t cpu_min_mhz; /* reservation */
	uint32_t cpu_max_mhz; /* limit; 0: unlimited */
	uint32_t mem_min_mib; /* reservation */
	uint32_t mem_max_mib; /* limit; 0: the VM's memory size */
};

/* VM monitoring (vmMonitoring.* keys, kernel/vm/monitor.c): reset the VM when its guest's
 * heartbeat stops while the vmx runs. 0 means "not set" (the defaults below). */
#define VMK_VMX_MON_TIMEOUT_S	 30 /* default heartbeat timeout */
#define VMK_VMX_MON_TIMEOUT_MAX	 86400
#define VMK_VMX_MON_RESETS	 3 /* default resets per hour */
#define VMK_VMX_MON_RESETS_MAX	 100
struct vmk_vmx_monitor {
	bool enabled;
	uint32_t timeout_s;  /* 1..VMK_VMX_MON_TIMEOUT_MAX */
	uint32_t max_resets; /* per hour, 1..VMK_VMX_MON_RESETS_MAX */
};

/* A key vmkernel does not interpret, kept verbatim. */
struct vmk_vmx_extra {
	char *key;
	char *value;
};

struct vmk_vmx {
	char name[VMK_VMX_NAME_MAX + 1]; /* displayName */
	char uuid[VMK_UUID_LEN + 1];	 /* lower-case text form; "" until generated */
	uint32_t memsize_mib;
	uint32_t numvcpus;
	enum vmk_guest_kind guest_kind;
	char kernel[VMK_VMX_PATH_MAX + 1]; /* "" for kguest: the host's kguest image */
	char initrd[VMK_VMX_PATH_MAX + 1];
	char cmdline[VMK_VMX_CMDLINE_MAX + 1];
	struct vmk_vmx_disk disks[VMK_VMX_DISKS]; /* slot i is diskI.* */
	struct vmk_vmx_nic nics[VMK_VMX_NICS];	  /* slot i is ethernetI.* */
	struct vmk_vmx_res res;
	struct vmk_vmx_monitor monitor;
	struct vmk_vmx_extra *extra; /* other keys, in file order; owned */
	size_t n_extra;
};

/* Sets up an empty configuration (every field unset). Cannot fail. */
void vmk_vmx_init(struct vmk_vmx *vmx);
/* Frees the kept keys; vmx may be reused after vmk_vmx_init(). */
void vmk_vmx_close(struct vmk_vmx *vmx);

/* Parses the bytes of a .vmx file (borrowed) into *vmx, which is treated as uninitialized.
 * On success *vmx is initialized and the caller closes it with vmk_vmx_close(); the result
 * has passed vmk_vmx_validate(). On error *vmx is not touched and err names the line and
 * key: KB_ETOOBIG (size limits), KB_EPROTO (syntax, NUL bytes, bad quoting, duplicates),
 * KB_EVERSION (config.version), KB_ECONFIG (bad or missing values), -ENOMEM. */
int vmk_vmx_parse(struct vmk_vmx *vmx, const void *data, size_t len, struct kb_errmsg *err);

/* Reads and parses the file at path: opened with O_NOFOLLOW (a symlink gives -ELOOP), must
 * be a regular file (else KB_ECONFIG, without blocking on a FIFO) of at most
 * VMK_VMX_FILE_MAX bytes (else KB_ETOOBIG). Otherwise the same contract as vmk_vmx_parse();
 * -errno for system errors. Messages start with the path. Blocks. */
int vmk_vmx_load(struct vmk_vmx *vmx, const char *path, struct kb_errmsg *err);

/* Checks every field and the rules between them (required keys, mem reservation within
 * memsize, limits above reservations, present disks and NICs complete, no duplicate disk
 * files or MACs), and that every kept key would read back once written. An empty uuid or
 * NIC MAC is allowed (see vmk_vmx_complete()). 0, KB_ECONFIG, or KB_ETOOBIG (a kept key's
 * line would pass VMK_VMX_LINE_MAX), with err naming the key. */
int vmk_vmx_validate(const struct vmk_vmx *vmx, struct kb_errmsg *err);

/* Generates what a configuration may lack: the uuid, and the MAC of every present NIC
 * without one. *changed (may be NULL) tells whether anything was generated. 0 or -errno. */
int vmk_vmx_complete(struct vmk_vmx *vmx, bool *changed);

/* Appends the file text to out: config.version, the known keys in a fixed order, then the
 * kept keys in their order. Parsing the result gives back the same struct. 0, -ENOMEM or
 * KB_ETOOBIG (out's limit, or more than VMK_VMX_FILE_MAX bytes of text); out keeps its
 * previous length on error. Does not validate. */
int vmk_vmx_format(const struct vmk_vmx *vmx, struct kb_buf *out);

/* Validates, formats and writes path atomically: path.tmp is written (O_NOFOLLOW, mode
 * 0640), fsynced and renamed over path, then the directory is fsynced. On error path is
 * unchanged and path.tmp removed, except when only the final directory fsync fails (the
 * new file is in place but may not survive a crash). 0, KB_ECONFIG, KB_ETOOBIG or -errno.
 * Blocks. */
int vmk_vmx_save(const struct vmk_vmx *vmx, const char *path, struct kb_errmsg *err);

/* Builds *vmx (treated as uninitialized) from a create request's spec (borrowed, untrusted).
 * Defaults: memsize VMK_VMX_DEFAULT_MEMSIZE, 1 vCPU, guest kind kguest. Generates the uuid
 * and the MACs not given; disks become disk0.. and NICs ethernet0.. in spec order, all
 * present. spec->datastore and disk sizes are the caller's business and ignored. On success
 * the caller closes *vmx; on error *vmx is not touched. 0, KB_ECONFIG, -ENOMEM or -errno. */
int vmk_vmx_from_spec(struct vmk_vmx *vmx, const Keel__Vmk__VmSpec *spec, struct kb_errmsg *err);

/* Builds a spec describing vmx for a reply: present disks and NICs in slot order, resources
 * always set, datastore "". Everything is copied. On success *out is owned by the caller,
 * who frees it with vmk_vmx_spec_free(). 0 or -ENOMEM. */
int vmk_vmx_to_spec(const struct vmk_vmx *vmx, Keel__Vmk__VmSpec **out);
/* Frees a spec made by vmk_vmx_to_spec(). NULL is ignored. */
void vmk_vmx_spec_free(Keel__Vmk__VmSpec *spec);

/* Applies a reconfigure request's spec (borrowed, untrusted): every non-zero, non-empty
 * field replaces the current value (name, memsize, numvcpus, guest kind, kernel, initrd,
 * cmdline, each resources field); a non-empty disks list replaces all disks, a non-empty
 * nics list all NICs (a NIC given without a MAC keeps the MAC of the NIC in the same slot,
 * or gets a new one). spec->datastore is ignored. The result is validated; on error vmx is
 * unchanged. Kept keys are untouched. 0, KB_ECONFIG, -ENOMEM or -errno. */
int vmk_vmx_apply_reconfigure(struct vmk_vmx *vmx, const Keel__Vmk__VmSpec *spec,
			      struct kb_errmsg *err);

/* Effective CPU shares: low/normal/high are 500/1000/2000 per vCPU as in ESXi (unset is
 * normal), a number is taken as is. */
uint32_t vmk_vmx_cpu_shares(const struct vmk_vmx *vmx);

/* "kguest", "linux", or "" for VMK_GUEST_NONE. */
const char *vmk_guest_kind_name(enum vmk_guest_kind kind);

/* True if name is a valid VM name: 1..63 bytes of [A-Za-z0-9._-], not "." or "..". */
bool vmk_vmx_name_valid(const char *name);

/* Writes a random (version 4) uuid in lower-case text form and a NUL to out. Uses
 * getrandom(), then /dev/urandom; if both fail it still returns a unique value made from
 * the clock, the pid and a counter. Thread-safe. */
void vmk_uuid_generate(char out[37]);

/* Fills mac with a random locally administered unicast address 02:4b:xx:xx:xx:xx.
 * 0 or -errno. Thread-safe. */
int vmk_mac_generate(uint8_t mac[6]);

#endif
