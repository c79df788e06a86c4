/*
 * `keel lab`: a cluster of nested hosts on this machine (docs/lab.md). Contracts shared by
 * the lab*.c files of keel.
 *
 * A lab lives in one directory (default /var/lib/keel-lab) whose record, lab.conf, lists
 * what the lab is made of; every name the lab gives to a kernel object (bridge, network
 * namespace, veth) derives from the record's prefix, so `down` can find and remove all of
 * it from the record alone, even after a crash. Host K (1-based) has a network namespace
 * with uplinks vmnic0..2 joined to the lab bridges, a state directory DIR/hosts/hostK, and
 * its daemons: the lab supervisor (`keel lab supervise`) starts and restarts its vmkernel,
 * which runs clusterd, hostd and vmsyslogd as its user worlds (or, in a lab made with
 * --no-worlds, the supervisor starts clusterd and hostd too).
 *
 * Commands that change a lab hold DIR/lab.lock (flock) for their whole run; the supervisor
 * only reads the record. Everything here runs in the keel process, single-threaded.
 */
#ifndef KEEL_LAB_H
#define KEEL_LAB_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "lib/err.h"
#include "mgmt-api/keel/keel.h"

#define KC_LAB_DEFAULT_DIR "/var/lib/keel-lab"
#define KC_LAB_MAX_HOSTS   200
#define KC_LAB_NICS	   3  /* vmnic0 management, vmnic1 vMotion, vmnic2 FT */
#define KC_LAB_NAME_MAX	   16 /* an interface name and its NUL */

/* What the operator wants of a host; the supervisor keeps the daemons of "up" hosts
 * running and leaves the others alone. */
enum kc_lab_host_state {
	KC_LAB_HOST_UP = 0,
	KC_LAB_HOST_KILLED, /* host-kill: down on purpose until host-start */
};

struct kc_lab_host {
	enum kc_lab_host_state state;
	bool isolated; /* host-isolate: its management uplink is cut */
};

/* A lab record (lab.conf) in memory. */
struct kc_lab {
	char dir[PATH_MAX];	 /* absolute */
	char id[8];		 /* short hex id of this lab */
	char prefix[8];		 /* of every kernel object's name: "keel" or "k<id>" */
	char vmkernel[PATH_MAX]; /* the vmkernel binary the hosts run */
	int nhosts;
	pid_t sup_pid;	     /* the supervisor, 0 when none was started */
	uint64_t sup_start;  /* its start time (field 22 of /proc/PID/stat) */
	uint64_t shared_mib; /* size of the shared datastore's image; 0: none */
	bool shared_memory;  /* DIR/shared is a tmpfs (with shared_mib 0) */
	bool shared_mounted; /* the image or the tmpfs is (or was being) mounted on DIR/shared */
	bool worlds;	     /* each vmkernel runs the other daemons as its user worlds */
	struct kc_lab_host hosts[KC_LAB_MAX_HOSTS + 1]; /* [1..nhosts] */
};

/* ---- the record and names (lab_record.c) ----------------------------------------------- */

/* Reads DIR/lab.conf into lab (dir is copied into lab->dir). 0; -ENOENT when there is no
 * record; KB_ECONFIG when it does not parse; -errno. err says why. */
int kc_lab_load(const char *dir, struct kc_lab *lab, struct kb_errmsg *err);
/* Replaces DIR/lab.conf atomically with lab. 0 or -errno with err set. */
int kc_lab_save(const struct kc_lab *lab, struct kb_errmsg *err);
/* Takes DIR/lab.lock (creating DIR if needed): the fd to close to release it, or -errno. */
int kc_lab_lock(const char *dir, struct kb_errmsg *err);

/* Names of kernel objects and paths; out is at least KC_LAB_NAME_MAX (names) or PATH_MAX
 * (paths). nic is 0..KC_LAB_NICS-1. */
void kc_lab_bridge(const struct kc_lab *lab, int nic, char *out);
void kc_lab_netns(const struct kc_lab *lab, int host, char *out, size_t size);
void kc_lab_veth(const struct kc_lab *lab, int host, int nic, char *out);
void kc_lab_host_dir(const struct kc_lab *lab, int host, char *out, size_t size);
void kc_lab_socket(const struct kc_lab *lab, int host, char *out, size_t size);
void kc_lab_shared_dir(const struct kc_lab *lab, char *out, size_t size);
/* The planned address of a host's vmkN ("198.18.0.K/16"...). */
void kc_lab_vmk_addr(int host, int vmk, char *out, size_t size);
/* Parses a host argument: "host3" or "3". 0 and *host, or -EINVAL / -ERANGE. */
int kc_lab_parse_host(const struct kc_lab *lab, const char *s, int *host);
/* The --dir of call made absolute, or the default. 0 or KC_EXIT_USAGE after reporting. */
int kc_lab_dir_arg(struct kc_ctx *ctx, const struct kc_call *call, int opt, char *out, size_t size);

/* ---- the machine (lab_sys.c) ----------------------------------------------------------- */

/* Runs argv (argv[0] searched in PATH) and waits for it. Its stdout and stderr are
 * captured; on failure err holds "<argv0> ...: <last line of its output>". 0, or the
 * exit status (> 0), or -errno when it could not run. */
int kc_lab_run(char *const argv[], struct kb_errmsg *err);
/* Whether a root-namespace interface of that name exists. */
bool kc_lab_link_exists(const char *name);
/* The operstate of a root-namespace interface ("up", "down", ...), "" when missing. */
void kc_lab_link_state(const char *name, char *out, size_t size);
/* Whether a root-namespace interface is set up (IFF_UP), whatever its carrier: a bridge's
 * operstate stays "unknown" for a while after it is set up. */
bool kc_lab_link_admin_up(const char *name);
/* Whether /run/netns/NAME exists. */
bool kc_lab_netns_exists(const char *name);
/* The inode of /run/netns/NAME's namespace, 0 when missing. */
uint64_t kc_lab_netns_ino(const char *name);
/* Start time of pid (field 22 of /proc/PID/stat), 0 when pid does not exist or is a zombie. */
uint64_t kc_lab_pid_start(pid_t pid);
/* Whether pid's command line holds arg (exactly, as one argument) or, with prefix set, an
 * argument that starts with it. */
bool kc_lab_cmdline_has(pid_t pid, const char *arg, bool prefix);

/* Processes of host K: those in its network namespace, a vmkernel (or clusterd, hostd, or
 * another of its daemons) whose state dir is the host's, and vmx processes whose control
 * sockets are under it. Fills up to max pids,
 * returns how many were found (which may exceed max). */
int kc_lab_host_pids(const struct kc_lab *lab, int host, pid_t *pids, int max);
/* The pid of host K's daemon with that binary name ("vmkernel"), 0 when none runs. */
pid_t kc_lab_daemon_pid(const struct kc_lab *lab, int host, const char *daemon);
/* SIGKILLs every process of host K until none is left (a few rounds, about 2 s at most).
 * Returns how many were killed. */
int kc_lab_host_kill_all(const struct kc_lab *lab, int host);
/* Supervisors of the lab at dir (`keel lab supervise --dir DIR`), as kc_lab_host_pids. */
int kc_lab_supervisor_pids(const char *dir, pid_t *pids, int max);
/* Unmounts every mount at or below dir (detaching busy ones). 0 or -EBUSY. */
int kc_lab_unmount_under(const char *dir);
/* Removes the empty cgroups left by the host's VMs and user worlds killed with it: the
 * host's keel/host-<id> tree in every hierarchy. */
void kc_lab_host_cgroups_clean(const struct kc_lab *lab, int host);

/* ---- hosts (lab_host.c) ---------------------------------------------------------------- */

/* The per-host daemons the supervisor runs, in start order. */
struct kc_lab_daemon {
	const char *name; /* also its binary's name, beside vmkernel's */
	/* Builds its argv for host K into argv (up to 16 entries, NULL-ended), using buf. */
	void (*argv)(const struct kc_lab *lab, int host, char **argv, char *buf, size_t size);
};
/* DIR/root-password: the password of user root on every lab host's hostd (0600). */
void kc_lab_root_password_file(const struct kc_lab *lab, char *out, size_t size);
extern const struct kc_lab_daemon kc_lab_daemons[];
extern const int kc_lab_ndaemons;
/* How many of kc_lab_daemons[] (the first ones) the lab starts itself: vmkernel alone when
 * the lab runs the others as vmkernel's user worlds, else all. */
int kc_lab_ndaemons_started(const struct kc_lab *lab);

/* ---- user worlds (lab_worlds.c) -------------------------------------------------------- */

/* DIR/hosts/hostK/worlds.conf: the worlds vmkernel --worlds runs on host K. */
void kc_lab_worlds_file(const struct kc_lab *lab, int host, char *out, size_t size);
/* Writes host K's worlds file (clusterd, hostd and vmsyslogd with the arguments the lab
 * gives them, confined) and points <name>.out at the world's log <name>.log, so the
 * daemons' output stays where the lab always kept it. Nothing when lab->worlds is off.
 * 0, or KB_ECONFIG (a lab directory with blanks in it) or -errno with err set. */
int kc_lab_worlds_write(const struct kc_lab *lab, int host, struct kb_errmsg *err);

/* Makes the lab bridges (idempotent). 0 or an error with err set. */
int kc_lab_bridges_make(const struct kc_lab *lab, struct kb_errmsg *err);
/* Makes host K's namespace, uplinks and state directory; what exists is kept. */
int kc_lab_host_make(const struct kc_lab *lab, int host, struct kb_errmsg *err);
/* Starts daemon d of host K inside its namespace, in a session of its own, its output
 * appended to DIR/hosts/hostK/<name>.out. The pid, or -errno. */
pid_t kc_lab_daemon_start(const struct kc_lab *lab, int host, const struct kc_lab_daemon *d,
			  struct kb_errmsg *err);
/* Waits up to timeout_ms for host K's vmkernel to answer. 0 or KB_ETIMEOUT. */
int kc_lab_host_wait(const struct kc_lab *lab, int host, uint64_t timeout_ms,
		     struct kb_errmsg *err);
/* Through host K's vmkernel: vSwitches, uplinks, portgroups, vmknics, the shared datastore
 * (each made only when missing). *vmknics is set false when this vmkernel has no vmknics. */
int kc_lab_host_configure(const struct kc_lab *lab, int host, bool *vmknics, struct kb_errmsg *err);
/* Sets the root end of host K's management uplink up or down (host-heal / host-isolate). */
int kc_lab_host_uplink(const struct kc_lab *lab, int host, bool up, struct kb_errmsg *err);

/* One request to host K's vmkernel with a timeout; 0 and *reply (caller frees with
 * kc_reply_free), or the transport's or vmkernel's error in err and its code. */
int kc_lab_call(const struct kc_lab *lab, int host, uint64_t timeout_ms, Keel__Vmk__VmkRequest *req,
		Keel__Vmk__VmkReply **reply, struct kb_errmsg *err);

/* ---- the supervisor (lab_supervise.c) -------------------------------------------------- */

/* Whether the record's supervisor is alive (same pid, same start time, its command line). */
bool kc_lab_supervisor_alive(const struct kc_lab *lab);
/* Starts the supervisor in the background and records it in lab (the caller saves the
 * record). 0 or -errno. */
int kc_lab_supervisor_start(struct kc_lab *lab, struct kb_errmsg *err);
/* Appends a line to DIR/lab.log. */
void kc_lab_log(const struct kc_lab *lab, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* ---- commands -------------------------------------------------------------------------- */

extern const struct kc_cmd kc_lab_up_cmd, kc_lab_down_cmd, kc_lab_status_cmd, kc_lab_supervise_cmd,
    kc_lab_host_kill_cmd, kc_lab_host_start_cmd, kc_lab_host_isolate_cmd, kc_lab_host_heal_cmd;

/* Loads the lab at the --dir of call under its lock: 0 with *lab and *lock_fd (caller
 * closes), else the exit code after reporting. */
int kc_lab_open(struct kc_ctx *ctx, const struct kc_call *call, int dir_opt, struct kc_lab *lab,
		int *lock_fd);

#endif
