/*
 * vmx — the Keel virtual machine monitor: one process per VM.
 *
 * Creates the VM from its command line, starts it (or restores a saved state), serves the
 * control socket, and exits when the guest powers off (status 0), on a guest crash or an
 * internal error (status 1), or with a test payload's exit code (--test-port).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/vmm/ctl.h"
#include "kernel/vmm/devices.h"
#include "kernel/vmm/fence.h"
#include "kernel/vmm/dev/uart.h"
#include "kernel/vmm/state.h"
#include "lib/frame.h"
#include "lib/log.h"

#define MAX_DISKS 8
#define MAX_NICS  8

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
	    "Devices:\n"
	    "  --disk PATH[,ro]     virtio-blk disk on a raw image (repeatable)\n"
	    "  --net TAP[,mac=MAC]  virtio-net NIC on an existing tap device (repeatable)\n"
	    "  --console-log PATH   append console output to PATH (default: stdout)\n"
	    "  --console-sock PATH  serve the console on a Unix socket\n"
	    "Control:\n"
	    "  --ctl PATH           control socket (proto/vmk.proto, framed)\n"
	    "  --restore PATH       load a saved state instead of booting\n"
	    "  --paused             do not start the vCPUs; wait for power-on or resume\n"
	    "  --name NAME          VM name for the log\n"
	    "  --log-level LEVEL    error, warn, info (default), debug, trace\n"
	    "  --test-port          enable the payload test port (exit status = payload's code)\n"
	    "Fencing (DESIGN.md section 4; exit status 3 when fenced):\n"
	    "  --fence-hb PATH      this host's heartbeat record on a shared datastore\n"
	    "  --fence-host ID      this host's id (the record's)\n"
	    "  --fence-lock PATH    the VM's lock file; with --fence-vm UUID and --fence-epoch E\n"
	    "  --lease-ms MS        lease time (default 1000); --fence-margin-ms MS (default 400)\n"
	    "  -h, --help           this help\n");
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
	if (fcfg.hb_path != NULL && (rv = vmm_fence_start(vm, &fcfg, &fence, &err)) < 0) {
		kb_error("%s", err.msg);
		goto fail;
	}
	if (!paused) {
		rv = vmm_vm_resume(vm);
		if (rv < 0) {
			kb_error("starting the VM: %s", kb_strerror(rv));
			goto fail;
		}
	}
	kb_info("VM %s %s: %llu MiB, %d vCPU(s), %s", name, restore ? "restored" : "created",
		(unsigned long long)(cfg.mem_size >> 20), cfg.nr_vcpus,
		paused ? "paused" : "running");
	vmm_ctl_run(vm, listen_fd);
	vmm_fence_stop(fence);

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
	return why == VMM_STOP_POWEROFF ? 0 : 1;

fail:
	vmm_fence_stop(fence);
	vmm_vm_destroy(vm);
	return 1;
}
