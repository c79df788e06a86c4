/*
 * vmx — the Keel virtual machine monitor: one process per VM.
 *
 * Creates the VM from its command line, starts it (or restores a saved state, or receives
 * a live migration with --incoming), serves the control socket, and exits when the guest
 * powers off (status 0), on a guest crash or an internal error (status 1), when fenced
 * (3), after migrating away (4), when an incoming migration failed (5), or with a test
 * payload's exit code (--test-port).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "kernel/vmm/ctl.h"
#include "kernel/vmm/devices.h"
#include "kernel/vmm/fence.h"
#include "kernel/vmm/dev/uart.h"
#include "kernel/vmm/state.h"
#include "lib/frame.h"
#include "lib/log.h"
#include "ft/ft.h"
#include "vmotion/vmotion.h"

#define MAX_DISKS    8
#define MAX_NICS     8
#define MAX_INCOMING 16

#define EXIT_MIGRATED	      4
#define EXIT_MIGRATION_FAILED 5

/* ---- the migration hooks: VmxMigrate* go to the source or the destination ------------ */

struct mig {
	struct vmo_source *src;
	struct vmo_dest *dst; /* with --incoming */
	struct ft_primary *ft; /* a protected VM does not migrate (both use dirty logging) */
};

/* Whether a migration out is under way (FT does not start meanwhile). */
static bool mig_busy(struct mig *m)
{
	struct vmm_mig_status st;

	vmo_source_status(m->src, &st);
	return st.phase == VMM_MIG_CONNECTING || st.phase == VMM_MIG_PRECOPY ||
	       st.phase == VMM_MIG_SWITCHOVER || st.phase == VMM_MIG_READY;
}

/* The destination answers until its guest runs here; the source after that. */
static bool dest_active(struct mig *m)
{
	return m->dst != NULL && vmo_dest_phase(m->dst) != VMM_MIG_RESUMED;
}

static int mig_out(void *arg, const struct vmm_mig_out *rq, struct kb_errmsg *err)
{
	struct mig *m = arg;

	if (dest_active(m)) {
		kb_errmsg_setf(err, "this vmx is receiving a migration");
		return KB_ESTATE;
	}
	if (m->ft != NULL) {
		struct vmm_ft_status fs;
		ft_primary_status(m->ft, &fs);
		if (fs.phase != VMM_FT_OFF && fs.phase != VMM_FT_FAILED) {
			kb_errmsg_setf(err, "the VM is FT-protected (phase %s): turn FT off before a "
					    "migration",
				       vmm_ft_phase_name(fs.phase));
			return KB_ESTATE;
		}
	}
	return vmo_source_out(m->src, rq, err);
}

static int mig_in(void *arg, const struct vmm_mig_in *rq, struct kb_errmsg *err)
{
	struct mig *m = arg;

	if (m->dst == NULL) {
		kb_errmsg_setf(err, "this vmx was not started with --incoming");
		return KB_ESTATE;
	}
	return vmo_dest_in(m->dst, rq, err);
}

static void mig_status(void *arg, struct vmm_mig_status *st)
{
	struct mig *m = arg;

	if (m->dst != NULL && !vmo_source_used(m->src))
		vmo_dest_status(m->dst, st);
	else
		vmo_source_status(m->src, st);
}

static int mig_commit(void *arg, bool commit, uint64_t epoch, struct kb_errmsg *err)
{
	struct mig *m = arg;

	if (dest_active(m))
		return vmo_dest_commit(m->dst, commit, epoch, err);
	return vmo_source_commit(m->src, commit, epoch, err);
}

static int mig_cancel(void *arg, struct kb_errmsg *err)
{
	struct mig *m = arg;

	if (dest_active(m)) {
		kb_errmsg_setf(err, "an incoming migration is ended by its source "
				    "(or by VmxMigrateCommit with commit false once ready)");
		return KB_ESTATE;
	}
	return vmo_source_cancel(m->src, err);
}

static const struct vmm_mig_ops mig_ops = {
    .out = mig_out,
    .in = mig_in,
    .status = mig_status,
    .commit = mig_commit,
    .cancel = mig_cancel,
};

/* ---- the FT hooks: VmxFt* go to the primary or the secondary -------------------------- */

struct ftx {
	struct ft_primary *pri;
	struct ft_secondary *sec; /* with --ft-secondary */
	struct mig *mig;
};

/* The secondary answers until its guest runs here (a takeover); the primary after that. */
static bool sec_active(struct ftx *f)
{
	return f->sec != NULL && !ft_secondary_running(f->sec);
}

static int ft_start(void *arg, const struct vmm_ft_start *rq, struct kb_errmsg *err)
{
	struct ftx *f = arg;

	if (sec_active(f)) {
		kb_errmsg_setf(err, "this vmx is an FT secondary");
		return KB_ESTATE;
	}
	if (dest_active(f->mig) || mig_busy(f->mig)) {
		kb_errmsg_setf(err, "a migration is under way: FT starts after it");
		return KB_ESTATE;
	}
	return ft_primary_start(f->pri, rq, err);
}

static int ft_in(void *arg, const struct vmm_ft_in *rq, struct kb_errmsg *err)
{
	struct ftx *f = arg;

	if (!sec_active(f)) {
		kb_errmsg_setf(err, "this vmx was not started with --ft-secondary");
		return KB_ESTATE;
	}
	return ft_secondary_in(f->sec, rq, err);
}

static void ft_status(void *arg, struct vmm_ft_status *st)
{
	struct ftx *f = arg;
	struct vmm_ft_status ps;

	if (f->sec != NULL) {
		ft_secondary_status(f->sec, st);
		ft_primary_status(f->pri, &ps);
		if (!sec_active(f) && ps.phase != VMM_FT_OFF)
			*st = ps; /* a taken-over VM that protects itself again */
		return;
	}
	ft_primary_status(f->pri, st);
}

static int ft_stop(void *arg, struct kb_errmsg *err)
{
	struct ftx *f = arg;

	if (sec_active(f))
		return ft_secondary_stop(f->sec, err);
	return ft_primary_stop(f->pri, err);
}

static int ft_takeover(void *arg, uint64_t epoch, struct kb_errmsg *err)
{
	struct ftx *f = arg;

	if (f->sec == NULL) {
		kb_errmsg_setf(err, "this vmx is no FT secondary");
		return KB_ESTATE;
	}
	return ft_secondary_takeover(f->sec, epoch, err);
}

static const struct vmm_ft_ops ft_ops = {
    .start = ft_start,
    .in = ft_in,
    .status = ft_status,
    .stop = ft_stop,
    .takeover = ft_takeover,
};

/* --incoming ADDR:PORT: a listening TCP socket. */
static int listen_on(const char *ep)
{
	char host[128];
	const char *colon = strrchr(ep, ':');
	struct addrinfo hints = {.ai_flags = AI_NUMERICHOST | AI_NUMERICSERV | AI_PASSIVE,
				 .ai_socktype = SOCK_STREAM};
	struct addrinfo *ai = NULL;
	int fd, one = 1;

	if (colon == NULL || colon == ep || (size_t)(colon - ep) >= sizeof(host))
		return -EINVAL;
	memcpy(host, ep, (size_t)(colon - ep));
	host[colon - ep] = '\0';
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || ai == NULL)
		return -EINVAL;
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		freeaddrinfo(ai);
		return -errno;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, MAX_INCOMING) < 0) {
		int rv = -errno;
		freeaddrinfo(ai);
		close(fd);
		return rv;
	}
	freeaddrinfo(ai);
	return fd;
}

/* OPT ADDR:PORT (a new listening socket) or OPT-fd N (an inherited one): the socket, or -1
 * with the reason printed. */
static int listen_arg(bool inherited, const char *opt, const char *arg)
{
	if (!inherited) {
		int fd = listen_on(arg);
		if (fd < 0)
			fprintf(stderr, "vmx: %s %s: %s\n", opt, arg,
				fd == -EINVAL ? "not a numeric ADDR:PORT" : kb_strerror(fd));
		return fd < 0 ? -1 : fd;
	}
	char *end;
	long v = strtol(arg, &end, 10);
	int acc = 0;
	socklen_t al = sizeof(acc);
	if (*end != '\0' || v < 0 || v > 65535 ||
	    getsockopt((int)v, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || !acc) {
		fprintf(stderr, "vmx: %s-fd %s is not a listening socket\n", opt, arg);
		return -1;
	}
	return (int)v;
}

static void usage(FILE *f)
{
	fprintf(
	    f,
	    "Usage: vmx --kernel PATH [options]\n"
	    "Runs one virtual machine on KVM until the guest powers off.\n"
	    "\n"
	    "Guest:\n"
	    "  --kernel PATH        kguest ELF (default kind) or Linux bzImage/vmlinux\n"
	    "  --kind KIND          kguest (default) or linux\n"
	    "  --initrd PATH        initramfs for a Linux guest\n"
	    "  --cmdline STR        guest command line\n"
	    "  --mem SIZE           guest memory: bytes or with K/M/G suffix (default 256M)\n"
	    "  --vcpus N            number of vCPUs (default 1)\n"
	    "  --large-pages        back guest memory with 2 MiB pages from the host's pool\n"
	    "                       (vm.nr_hugepages), reserved whole at start; 4 KiB pages\n"
	    "                       when the pool cannot hold it (the log says why)\n"
	    "Devices:\n"
	    "  --disk PATH[,ro]     virtio-blk disk on a raw image (repeatable)\n"
	    "  --net TAP[,mac=MAC]  virtio-net NIC on an existing tap device (repeatable)\n"
	    "  --console-log PATH   append console output to PATH (default: stdout)\n"
	    "  --console-sock PATH  serve the console on a Unix socket\n"
	    "Control:\n"
	    "  --ctl PATH           control socket (proto/vmk.proto, framed)\n"
	    "  --restore PATH       load a saved state instead of booting\n"
	    "  --paused             do not start the vCPUs; wait for power-on or resume\n"
	    "  --incoming ADDR:PORT receive a live migration on this address (repeatable); the\n"
	    "                       VM starts only when the migration commits (VmxMigrateIn)\n"
	    "  --incoming-fd N      the same on an inherited listening socket (repeatable)\n"
	    "  --ft-secondary ADDR:PORT  be an FT secondary (docs/ft.md): take the primary's\n"
	    "                       checkpoints here (VmxFtIn); the guest runs only after\n"
	    "                       VmxFtTakeover; --disk gives this side's disk copies\n"
	    "  --ft-secondary-fd N  the same on an inherited listening socket\n"
	    "  --name NAME          VM name for the log\n"
	    "  --log-level LEVEL    error, warn, info (default), debug, trace\n"
	    "  --test-port          enable the payload test port (exit status = payload's code)\n"
	    "Fencing (DESIGN.md section 4; exit status 3 when fenced; with --incoming the lock\n"
	    "is taken at the migration's commit epoch):\n"
	    "  --fence-hb PATH      this host's heartbeat record on a shared datastore\n"
	    "  --fence-host ID      this host's id (the record's)\n"
	    "  --fence-lock PATH    the VM's lock file; with --fence-vm UUID and --fence-epoch E\n"
	    "  --lease-ms MS        lease time (default 1000); --fence-margin-ms MS (default 400)\n"
	    "  -h, --help           this help\n"
	    "Exit status: 0 powered off, 1 error or guest crash, 2 usage, 3 fenced, 4 migrated\n"
	    "away, 5 incoming migration or FT secondary failed (the guest never ran here).\n");
}

static int parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 0);

	if (errno != 0 || end == s)
		return -EINVAL;
	switch (*end) {
	case 'k':
	case 'K':
		v <<= 10, end++;
		break;
	case 'm':
	case 'M':
		v <<= 20, end++;
		break;
	case 'g':
	case 'G':
		v <<= 30, end++;
		break;
	default:
		break;
	}
	if (*end != '\0')
		return -EINVAL;
	*out = v;
	return 0;
}

static int parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];

	if (sscanf(s, "%x:%x:%x:%x:%x:%x", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5]) != 6)
		return -EINVAL;
	for (int i = 0; i < 6; i++) {
		if (v[i] > 255)
			return -EINVAL;
		mac[i] = (uint8_t)v[i];
	}
	return 0;
}

struct nic_arg {
	char tap[64];
	uint8_t mac[6];
};

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"kernel", required_argument, NULL, 'k'},
	    {"kind", required_argument, NULL, 'K'},
	    {"initrd", required_argument, NULL, 'i'},
	    {"cmdline", required_argument, NULL, 'c'},
	    {"mem", required_argument, NULL, 'm'},
	    {"vcpus", required_argument, NULL, 'v'},
	    {"disk", required_argument, NULL, 'd'},
	    {"net", required_argument, NULL, 'n'},
	    {"console-log", required_argument, NULL, 'o'},
	    {"console-sock", required_argument, NULL, 's'},
	    {"ctl", required_argument, NULL, 'C'},
	    {"restore", required_argument, NULL, 'r'},
	    {"paused", no_argument, NULL, 'p'},
	    {"name", required_argument, NULL, 'N'},
	    {"log-level", required_argument, NULL, 'l'},
	    {"test-port", no_argument, NULL, 't'},
	    {"fence-hb", required_argument, NULL, 1000},
	    {"fence-host", required_argument, NULL, 1001},
	    {"fence-lock", required_argument, NULL, 1002},
	    {"fence-vm", required_argument, NULL, 1003},
	    {"fence-epoch", required_argument, NULL, 1004},
	    {"lease-ms", required_argument, NULL, 1005},
	    {"fence-margin-ms", required_argument, NULL, 1006},
	    {"incoming", required_argument, NULL, 1007},
	    {"incoming-fd", required_argument, NULL, 1008},
	    {"ft-secondary", required_argument, NULL, 1009},
	    {"ft-secondary-fd", required_argument, NULL, 1010},
	    {"large-pages", no_argument, NULL, 1011},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct vmm_config cfg = {.mem_size = 256ull << 20, .nr_vcpus = 1, .cmdline = ""};
	const char *disks[MAX_DISKS], *console_log = NULL, *console_sock = NULL;
	const char *ctl_path = NULL, *restore = NULL, *name = "vm";
	struct nic_arg nics[MAX_NICS];
	int nr_disks = 0, nr_nics = 0, level = KB_LOG_INFO, c, rv;
	bool paused = false;
	struct vmm_fence_config fcfg = {0};
	struct vmm_fence *fence = NULL;
	struct kb_errmsg err = {{0}};
	struct vmm_vm *vm;
	int incoming[MAX_INCOMING], nr_incoming = 0;
	static char disk_buf[MAX_DISKS][4096];
	const char *disk_paths[MAX_DISKS];
	struct mig mig = {0};
	struct ftx ftx = {0};
	int ft_fd = -1;

	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 'k':
			cfg.kernel = optarg;
			break;
		case 'K':
			if (strcmp(optarg, "kguest") == 0) {
				cfg.kind = VMM_GUEST_KGUEST;
			} else if (strcmp(optarg, "linux") == 0) {
				cfg.kind = VMM_GUEST_LINUX;
			} else {
				fprintf(stderr, "vmx: --kind must be kguest or linux\n");
				return 2;
			}
			break;
		case 'i':
			cfg.initrd = optarg;
			break;
		case 'c':
			cfg.cmdline = optarg;
			break;
		case 'm':
			if (parse_size(optarg, &cfg.mem_size) < 0) {
				fprintf(stderr, "vmx: bad --mem '%s'\n", optarg);
				return 2;
			}
			break;
		case 'v':
			cfg.nr_vcpus = atoi(optarg);
			break;
		case 1011:
			cfg.large_pages = true;
			break;
		case 'd':
			if (nr_disks == MAX_DISKS) {
				fprintf(stderr, "vmx: at most %d disks\n", MAX_DISKS);
				return 2;
			}
			disks[nr_disks++] = optarg;
			break;
		case 'n': {
			if (nr_nics == MAX_NICS) {
				fprintf(stderr, "vmx: at most %d NICs\n", MAX_NICS);
				return 2;
			}
			struct nic_arg *n = &nics[nr_nics];
			char *comma = strchr(optarg, ',');
			size_t tl = comma ? (size_t)(comma - optarg) : strlen(optarg);
			if (tl == 0 || tl >= sizeof(n->tap)) {
				fprintf(stderr, "vmx: bad --net '%s'\n", optarg);
				return 2;
			}
			memcpy(n->tap, optarg, tl);
			n->tap[tl] = '\0';
			/* locally administered default MAC, distinct per NIC */
			uint8_t def[6] = {
			    0x02, 0x4b, 0x45, 0x00, (uint8_t)(getpid() & 0xff), (uint8_t)nr_nics};
			memcpy(n->mac, def, 6);
			if (comma != NULL && (strncmp(comma + 1, "mac=", 4) != 0 ||
					      parse_mac(comma + 5, n->mac) < 0)) {
				fprintf(stderr, "vmx: bad --net option '%s'\n", comma + 1);
				return 2;
			}
			nr_nics++;
			break;
		}
		case 'o':
			console_log = optarg;
			break;
		case 's':
			console_sock = optarg;
			break;
		case 'C':
			ctl_path = optarg;
			break;
		case 'r':
			restore = optarg;
			break;
		case 'p':
			paused = true;
			break;
		case 'N':
			name = optarg;
			break;
		case 'l':
			level = kb_log_level_parse(optarg);
			if (level < 0) {
				fprintf(stderr, "vmx: bad --log-level '%s'\n", optarg);
				return 2;
			}
			break;
		case 't':
			cfg.test_port = true;
			break;
		case 1000:
			fcfg.hb_path = optarg;
			break;
		case 1001:
			fcfg.host_id = strtoull(optarg, NULL, 0);
			break;
		case 1002:
			fcfg.lock_path = optarg;
			break;
		case 1003:
			fcfg.vm_uuid = optarg;
			break;
		case 1004:
			fcfg.epoch = strtoull(optarg, NULL, 0);
			break;
		case 1005:
			fcfg.lease_ms = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 1006:
			fcfg.margin_ms = (uint32_t)strtoul(optarg, NULL, 0);
			break;
		case 1007:
		case 1008:
			if (nr_incoming == MAX_INCOMING) {
				fprintf(stderr, "vmx: at most %d incoming sockets\n", MAX_INCOMING);
				return 2;
			}
			incoming[nr_incoming] = listen_arg(c == 1008, "--incoming", optarg);
			if (incoming[nr_incoming] < 0)
				return 2;
			nr_incoming++;
			break;
		case 1009:
		case 1010:
			if (ft_fd >= 0) {
				fprintf(stderr, "vmx: one --ft-secondary at most\n");
				return 2;
			}
			ft_fd = listen_arg(c == 1010, "--ft-secondary", optarg);
			if (ft_fd < 0)
				return 2;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc || cfg.kernel == NULL) {
		usage(stderr);
		return 2;
	}
	if ((nr_incoming > 0 || ft_fd >= 0) && restore != NULL) {
		fprintf(stderr,
			"vmx: --incoming/--ft-secondary and --restore exclude each other\n");
		return 2;
	}
	if (nr_incoming > 0 && ft_fd >= 0) {
		fprintf(stderr, "vmx: --incoming and --ft-secondary exclude each other\n");
		return 2;
	}
	char ident[32];
	snprintf(ident, sizeof(ident), "vmx/%s", name);
	kb_log_init(&kb_log_default, ident, level, 2);
	signal(SIGPIPE, SIG_IGN);

	rv = vmm_vm_create(&cfg, &kb_log_default, &vm, &err);
	if (rv < 0) {
		kb_error("cannot create the VM: %s", err.msg);
		return 1;
	}
	int out_fd = 1;
	if (console_log != NULL) {
		out_fd = open(console_log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
		if (out_fd < 0) {
			kb_error("opening console log %s: %s", console_log, kb_strerror(-errno));
			goto fail;
		}
	}
	vmm_uart_set_output(vm->uart, out_fd);
	if (console_sock != NULL && (rv = vmm_uart_listen(vm->uart, console_sock)) < 0) {
		kb_error("console socket %s: %s", console_sock, kb_strerror(rv));
		goto fail;
	}
	for (int i = 0; i < nr_disks; i++) {
		char path[4096];
		bool ro = false;
		snprintf(path, sizeof(path), "%s", disks[i]);
		size_t pl = strlen(path);
		if (pl > 3 && strcmp(path + pl - 3, ",ro") == 0) {
			path[pl - 3] = '\0';
			ro = true;
		}
		snprintf(disk_buf[i], sizeof(disk_buf[i]), "%s", path);
		disk_paths[i] = disk_buf[i];
		if (vmm_virtio_blk_create(vm, path, ro, &err) < 0) {
			kb_error("disk %s: %s", path, err.msg);
			goto fail;
		}
	}
	for (int i = 0; i < nr_nics; i++) {
		if (vmm_virtio_net_create(vm, nics[i].tap, nics[i].mac, &err) < 0) {
			kb_error("NIC on %s: %s", nics[i].tap, err.msg);
			goto fail;
		}
	}
	int listen_fd = -1;
	if (ctl_path != NULL) {
		listen_fd = kb_unix_listen(ctl_path, 4);
		if (listen_fd < 0) {
			kb_error("control socket %s: %s", ctl_path, kb_strerror(listen_fd));
			goto fail;
		}
	}
	if (restore != NULL) {
		rv = vmm_state_restore_file(vm, restore, &err);
		if (rv < 0) {
			kb_error("restoring %s: %s", restore, err.msg);
			goto fail;
		}
	}
	rv = vmo_source_create(vm, disk_paths, nr_disks, &mig.src, &err);
	if (rv < 0) {
		kb_error("migration: %s", err.msg);
		goto fail;
	}
	if (nr_incoming > 0) {
		rv = vmo_dest_create(vm, incoming, nr_incoming, &fcfg, &mig.dst, &err);
		nr_incoming = 0; /* the destination owns the sockets now */
		if (rv < 0) {
			kb_error("incoming migration: %s", err.msg);
			goto fail;
		}
	}
	vm->mig_ops = &mig_ops;
	vm->mig_arg = &mig;
	rv = ft_primary_create(vm, disk_paths, nr_disks, &ftx.pri, &err);
	if (rv < 0) {
		kb_error("FT: %s", err.msg);
		goto fail;
	}
	ftx.mig = &mig;
	mig.ft = ftx.pri;
	if (ft_fd >= 0) {
		rv = ft_secondary_create(vm, ft_fd, disk_paths, nr_disks, &fcfg, &ftx.sec, &err);
		ft_fd = -1; /* the secondary owns the socket now */
		if (rv < 0) {
			kb_error("FT secondary: %s", err.msg);
			goto fail;
		}
	}
	vm->ft_ops = &ft_ops;
	vm->ft_arg = &ftx;
	bool waiting = mig.dst != NULL || ftx.sec != NULL;
	if (!waiting && fcfg.hb_path != NULL &&
	    (rv = vmm_fence_start(vm, &fcfg, &fence, &err)) < 0) {
		kb_error("%s", err.msg);
		goto fail;
	}
	if (!paused && !waiting) {
		rv = vmm_vm_resume(vm);
		if (rv < 0) {
			kb_error("starting the VM: %s", kb_strerror(rv));
			goto fail;
		}
	}
	kb_info("VM %s %s: %llu MiB, %d vCPU(s), %s", name, restore ? "restored" : "created",
		(unsigned long long)(cfg.mem_size >> 20), cfg.nr_vcpus,
		mig.dst	  ? "waiting for an incoming migration"
		: ftx.sec ? "an FT secondary, waiting for the primary"
		: paused  ? "paused"
			  : "running");
	vmm_ctl_run(vm, listen_fd);
	vmm_fence_stop(fence);
	pthread_mutex_lock(&vm->lock);
	bool stopped = vm->state == VMM_STATE_STOPPED;
	pthread_mutex_unlock(&vm->lock);
	if (!stopped) /* the control loop itself failed (it logged why) */
		vmm_vm_stop(vm, VMM_STOP_ERROR, "the control loop ended");
	vm->mig_ops = NULL;
	vmo_dest_destroy(mig.dst);
	vmo_source_destroy(mig.src);
	/* No vCPU or device thread runs past here: FT's output hook goes with its owner
	 * below, and nothing may call into it afterwards. */
	vmm_vm_halt(vm);
	vm->ft_ops = NULL;
	ft_secondary_destroy(ftx.sec);
	ft_primary_destroy(ftx.pri);

	pthread_mutex_lock(&vm->lock);
	enum vmm_stop_reason why = vm->stop_reason;
	int code = vm->test_exit_code;
	pthread_mutex_unlock(&vm->lock);
	vmm_vm_destroy(vm);
	if (listen_fd >= 0)
		unlink(ctl_path);
	if (console_sock != NULL)
		unlink(console_sock);
	if (why == VMM_STOP_TEST_EXIT)
		return code;
	if (why == VMM_STOP_FENCED)
		return 3;
	if (why == VMM_STOP_MIGRATED)
		return EXIT_MIGRATED;
	if (why == VMM_STOP_MIGRATION_FAILED)
		return EXIT_MIGRATION_FAILED;
	return why == VMM_STOP_POWEROFF ? 0 : 1;

fail:
	vmm_fence_stop(fence);
	vm->mig_ops = NULL;
	vmo_dest_destroy(mig.dst);
	vmo_source_destroy(mig.src);
	vmm_vm_halt(vm);
	vm->ft_ops = NULL;
	ft_secondary_destroy(ftx.sec);
	ft_primary_destroy(ftx.pri);
	if (ft_fd >= 0)
		close(ft_fd);
	vmm_vm_destroy(vm);
	for (int i = 0; i < nr_incoming; i++)
		close(incoming[i]);
	return 1;
}
