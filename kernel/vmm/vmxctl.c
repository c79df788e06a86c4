/*
 * vmxctl — talks to one vmx over its control socket (proto/vmk.proto): power, pause,
 * save/restore, stats, the guest agent, live migration and FT. For tests, benchmarks and
 * debugging by hand; operators use `keel`, which goes through vmkernel.
 *
 * Exit status: 0 on success, 1 when vmx answered with an error, 2 on usage or connection
 * errors.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/err.h"
#include "lib/frame.h"
#include "vmk.pb-c.h"

static void usage(FILE *f)
{
	fprintf(
	    f, "Usage: vmxctl [--json] SOCKET COMMAND [ARG]\n"
	       "Commands:\n"
	       "  status              VM state and stop reason\n"
	       "  power-on | power-off | reset | pause | resume\n"
	       "  save PATH           save the whole VM state (pauses, then resumes if running)\n"
	       "  restore PATH        load a saved state into a vmx started with --paused\n"
	       "  stats               vCPU run time and exits, memory touched, vmx RSS, heartbeat\n"
	       "  agent-send LINE     send one line to the guest agent\n"
	       "  agent-recv          print the lines the guest agent sent since the last call\n"
	       "  --json              machine-readable output\n"
	       "Live migration (vmxctl [--json] migrate... SOCKET [OPTIONS], --help on each):\n"
	       "  migrate SOCK --to IP:PORT[,IP:PORT...] --key-file F --id HEX [--streams N]\n"
	       "          [--no-encrypt] [--downtime-ms N] [--max-rounds N] [--netns PATH]\n"
	       "          [--commit EPOCH | --no-commit]\n"
	       "  migrate-in SOCK --key-file F --id HEX --streams N [--no-encrypt]\n"
	       "  migrate-status SOCK | migrate-cancel SOCK\n"
	       "  migrate-commit SOCK (--epoch E | --abort)\n"
	       "FT (vmxctl [--json] ft-... SOCKET [OPTIONS], --help on each):\n"
	       "  ft-start SOCK --to IP:PORT --key-file F --id HEX [--no-encrypt] [--epoch-ms N]\n"
	       "          [--netns PATH]\n"
	       "  ft-in SOCK --key-file F --id HEX [--no-encrypt]\n"
	       "  ft-status SOCK | ft-stop SOCK | ft-takeover SOCK --epoch E\n");
}

static void print_json_string(const char *s)
{
	putchar('"');
	for (; s && *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

static void print_reply(const char *cmd, const Keel__Vmk__VmxReply *rp, int json)
{
	const Keel__Vmk__VmxStatusReply *st = rp->status;
	const Keel__Vmk__VmxStatsReply *s = rp->stats;

	if (json) {
		printf("{\"code\":%d,\"error\":", rp->code);
		print_json_string(rp->error);
		printf(",\"elapsed_ns\":%llu", (unsigned long long)rp->elapsed_ns);
		if (st) {
			printf(",\"state\":");
			print_json_string(st->state);
			printf(",\"stop_reason\":");
			print_json_string(st->stop_reason);
			printf(",\"stop_message\":");
			print_json_string(st->stop_message);
		}
		if (s) {
			printf(",\"mem_size\":%llu,\"mem_large_pages\":%s,\"mem_touched\":%llu,"
			       "\"vmm_rss\":%llu,"
			       "\"heartbeat_seq\":%llu,\"heartbeat_age_ms\":%llu,\"vcpus\":[",
			       (unsigned long long)s->mem_size, s->mem_large_pages ? "true" : "false",
			       (unsigned long long)s->mem_touched,
			       (unsigned long long)s->vmm_rss, (unsigned long long)s->heartbeat_seq,
			       (unsigned long long)s->heartbeat_age_ms);
			for (size_t i = 0; i < s->n_vcpus; i++) {
				const Keel__Vmk__VmxVcpuStats *v = s->vcpus[i];
				printf(
				    "%s{\"id\":%u,\"run_ns\":%llu,\"exits_io\":%llu,\"exits_mmio\":%llu,"
				    "\"exits_hlt\":%llu,\"exits_intr\":%llu,\"exits_other\":%llu}",
				    i ? "," : "", v->id, (unsigned long long)v->run_ns,
				    (unsigned long long)v->exits_io,
				    (unsigned long long)v->exits_mmio,
				    (unsigned long long)v->exits_hlt,
				    (unsigned long long)v->exits_intr,
				    (unsigned long long)v->exits_other);
			}
			printf("]");
		}
		if (rp->n_agent_lines) {
			printf(",\"agent_lines\":[");
			for (size_t i = 0; i < rp->n_agent_lines; i++) {
				printf(i ? "," : "");
				print_json_string(rp->agent_lines[i]);
			}
			printf("]");
		}
		printf("}\n");
		return;
	}
	if (rp->code != 0) {
		fprintf(stderr, "vmxctl: %s: %s\n", cmd, rp->error);
		return;
	}
	if (strcmp(cmd, "status") == 0 && st) {
		printf("state: %s\n", st->state);
		if (strcmp(st->state, "stopped") == 0)
			printf("stop reason: %s (%s)\n", st->stop_reason, st->stop_message);
	} else if (s) {
		printf("memory: %llu MiB in %s pages, touched %llu KiB\nvmx rss: %llu KiB\n",
		       (unsigned long long)(s->mem_size >> 20), s->mem_large_pages ? "2 MiB" : "4 KiB",
		       (unsigned long long)(s->mem_touched >> 10),
		       (unsigned long long)(s->vmm_rss >> 10));
		printf("heartbeat: seq %llu, %llu ms ago\n", (unsigned long long)s->heartbeat_seq,
		       (unsigned long long)s->heartbeat_age_ms);
		for (size_t i = 0; i < s->n_vcpus; i++) {
			const Keel__Vmk__VmxVcpuStats *v = s->vcpus[i];
			printf(
			    "vcpu%u: run %.3f s, exits io %llu mmio %llu hlt %llu intr %llu other "
			    "%llu\n",
			    v->id, (double)v->run_ns / 1e9, (unsigned long long)v->exits_io,
			    (unsigned long long)v->exits_mmio, (unsigned long long)v->exits_hlt,
			    (unsigned long long)v->exits_intr, (unsigned long long)v->exits_other);
		}
	} else if (strcmp(cmd, "agent-recv") == 0) {
		for (size_t i = 0; i < rp->n_agent_lines; i++)
			printf("%s\n", rp->agent_lines[i]);
	} else if (strcmp(cmd, "save") == 0 || strcmp(cmd, "restore") == 0) {
		printf("%s done in %.1f ms\n", cmd, (double)rp->elapsed_ns / 1e6);
	}
}

/* ---- live migration --------------------------------------------------------------------- */

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Exactly n bytes as 2n hex digits (a trailing newline allowed). */
static int parse_hex(const char *s, uint8_t *out, size_t n)
{
	size_t len = strlen(s);

	while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == '\r' || s[len - 1] == ' '))
		len--;
	if (len != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

static int read_key(const char *path, uint8_t key[32])
{
	char buf[200];
	FILE *f = fopen(path, "r");

	if (f == NULL) {
		fprintf(stderr, "vmxctl: %s: %s\n", path, strerror(errno));
		return -1;
	}
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (parse_hex(buf, key, 32) < 0) {
		fprintf(stderr, "vmxctl: %s must hold the key as 64 hex digits\n", path);
		return -1;
	}
	return 0;
}

/* --key-file and --id of a migration or an FT pairing: 0, or -1 with the reason printed. */
static int read_key_id(const char *cmd, const char *key_file, const char *id, uint8_t key[32],
		       uint8_t mid[16])
{
	if (key_file == NULL || id == NULL) {
		fprintf(stderr, "vmxctl: %s needs --key-file and --id\n", cmd);
		return -1;
	}
	if (read_key(key_file, key) < 0)
		return -1;
	if (parse_hex(id, mid, 16) < 0) {
		fprintf(stderr, "vmxctl: --id must be 32 hex digits\n");
		return -1;
	}
	return 0;
}

static void print_migrate(const Keel__Vmk__VmxReply *rp, int json)
{
	const Keel__Vmk__VmxMigrateReply *m = rp->migrate;

	if (json) {
		printf("{\"code\":%d,\"error\":", rp->code);
		print_json_string(rp->error);
		if (rp->status) {
			printf(",\"state\":");
			print_json_string(rp->status->state);
			printf(",\"stop_reason\":");
			print_json_string(rp->status->stop_reason);
		}
		if (m) {
			printf(",\"phase\":");
			print_json_string(m->phase);
			printf(
			    ",\"round\":%u,\"streams\":%u,\"bytes_sent\":%llu,\"pages_sent\":%llu,"
			    "\"zero_pages\":%llu,\"dirty_rate\":%llu,\"bandwidth\":%llu,"
			    "\"est_downtime_us\":%llu,\"throttle_pct\":%u,\"downtime_us\":%llu,"
			    "\"total_us\":%llu,\"error_code\":%d,\"migration_error\":",
			    m->round, m->streams, (unsigned long long)m->bytes_sent,
			    (unsigned long long)m->pages_sent, (unsigned long long)m->zero_pages,
			    (unsigned long long)m->dirty_rate, (unsigned long long)m->bandwidth,
			    (unsigned long long)m->est_downtime_us, m->throttle_pct,
			    (unsigned long long)m->downtime_us, (unsigned long long)m->total_us,
			    m->error_code);
			print_json_string(m->error);
		}
		printf("}\n");
		return;
	}
	if (rp->code != 0)
		fprintf(stderr, "vmxctl: %s\n", rp->error);
	if (m == NULL)
		return;
	printf("phase: %s\n", m->phase);
	printf("round: %u, streams: %u\n", m->round, m->streams);
	printf("sent: %.1f MiB, %llu pages, %llu zero pages\n", (double)m->bytes_sent / 1048576.0,
	       (unsigned long long)m->pages_sent, (unsigned long long)m->zero_pages);
	printf("dirty rate: %.1f MiB/s, bandwidth: %.1f MiB/s, throttle: %u%%\n",
	       (double)m->dirty_rate / 1048576.0, (double)m->bandwidth / 1048576.0,
	       m->throttle_pct);
	printf("estimated downtime: %.3f ms, downtime: %.3f ms, total: %.1f ms\n",
	       (double)m->est_downtime_us / 1000.0, (double)m->downtime_us / 1000.0,
	       (double)m->total_us / 1000.0);
	if (m->error && m->error[0])
		printf("error: %s\n", m->error);
}

/* One request on fd, one reply; NULL (message printed) on transport errors. */
static Keel__Vmk__VmxReply *call(int fd, const Keel__Vmk__VmxRequest *rq)
{
	struct kb_buf in;
	int rv = kb_frame_send_pb(fd, &rq->base);

	kb_buf_init(&in, 1u << 20);
	rv = rv ?: kb_frame_recv(fd, &in, 1u << 20);
	if (rv < 0) {
		fprintf(stderr, "vmxctl: %s\n", kb_strerror(rv));
		kb_buf_close(&in);
		return NULL;
	}
	Keel__Vmk__VmxReply *rp = keel__vmk__vmx_reply__unpack(NULL, in.len, in.data);
	kb_buf_close(&in);
	if (rp == NULL)
		fprintf(stderr, "vmxctl: undecodable reply\n");
	return rp;
}

static void migrate_usage(FILE *f, const char *cmd)
{
	if (strcmp(cmd, "migrate") == 0)
		fprintf(
		    f,
		    "Usage: vmxctl [--json] migrate SOCKET --to IP:PORT[,IP:PORT...] --key-file F\n"
		    "       --id HEX [--streams N] [--no-encrypt] [--downtime-ms N]\n"
		    "       [--max-rounds N] [--netns PATH] [--commit EPOCH | --no-commit]\n"
		    "Migrates the VM of SOCKET to the destination(s): waits until the destination is\n"
		    "ready, then commits at EPOCH (the VM then runs there and this vmx exits with\n"
		    "status 4) or not (--no-commit: the guest keeps running here), and prints the\n"
		    "figures. Without either, the migration is left ready for migrate-commit.\n"
		    "  --key-file F   the 32-byte migration key as 64 hex digits\n"
		    "  --id HEX       the 16-byte migration id as 32 hex digits\n"
		    "  --streams N    streams per destination address (default 1; 16 in all)\n");
	else if (strcmp(cmd, "migrate-in") == 0)
		fprintf(
		    f,
		    "Usage: vmxctl [--json] migrate-in SOCKET --key-file F --id HEX --streams N\n"
		    "       [--no-encrypt]\n"
		    "Lets a vmx started with --incoming accept migration ID (N streams in all) and\n"
		    "waits until the guest runs there or the migration failed.\n");
	else if (strcmp(cmd, "migrate-commit") == 0)
		fprintf(
		    f,
		    "Usage: vmxctl [--json] migrate-commit SOCKET (--epoch E | --abort)\n"
		    "Decides a migration that is ready: on the source, GO at epoch E or abort; on\n"
		    "the destination (its source gone), resume at epoch E or end it.\n");
	else
		fprintf(f, "Usage: vmxctl [--json] %s SOCKET\n%s\n", cmd,
			strcmp(cmd, "migrate-status") == 0
			    ? "Prints the phase and figures of the current or last migration."
			    : "Cancels a migration before its commit; the guest keeps running.");
}

static int migrate_main(int argc, char **argv, int json)
{
	static const struct option opts[] = {
	    {"to", required_argument, NULL, 't'},
	    {"key-file", required_argument, NULL, 'k'},
	    {"id", required_argument, NULL, 'i'},
	    {"streams", required_argument, NULL, 's'},
	    {"no-encrypt", no_argument, NULL, 'E'},
	    {"downtime-ms", required_argument, NULL, 'd'},
	    {"max-rounds", required_argument, NULL, 'r'},
	    {"netns", required_argument, NULL, 'n'},
	    {"commit", required_argument, NULL, 'c'},
	    {"no-commit", no_argument, NULL, 'C'},
	    {"epoch", required_argument, NULL, 'e'},
	    {"abort", no_argument, NULL, 'a'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0], *to = NULL, *key_file = NULL, *id = NULL, *netns = NULL;
	unsigned long streams = 0, downtime = 0, rounds = 0;
	bool encrypt = true, have_epoch = false, no_commit = false, abort_ = false;
	unsigned long long epoch = 0;
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			to = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		case 's':
		case 'd':
		case 'r': {
			unsigned long v = strtoul(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '\0' || optarg[0] == '-' || v > 1000000) {
				fprintf(stderr, "vmxctl: bad number '%s'\n", optarg);
				return 2;
			}
			*(c == 's' ? &streams : c == 'd' ? &downtime : &rounds) = v;
			break;
		}
		case 'E':
			encrypt = false;
			break;
		case 'n':
			netns = optarg;
			break;
		case 'c':
		case 'e':
			epoch = strtoull(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '\0' || optarg[0] == '-') {
				fprintf(stderr, "vmxctl: bad epoch '%s'\n", optarg);
				return 2;
			}
			have_epoch = true;
			break;
		case 'C':
			no_commit = true;
			break;
		case 'a':
			abort_ = true;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			migrate_usage(stdout, cmd);
			return 0;
		default:
			migrate_usage(stderr, cmd);
			return 2;
		}
	}
	if (argc - optind != 1) {
		migrate_usage(stderr, cmd);
		return 2;
	}
	const char *sock = argv[optind];

	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxMigrateOut mo = KEEL__VMK__VMX_MIGRATE_OUT__INIT;
	Keel__Vmk__VmxMigrateIn mi = KEEL__VMK__VMX_MIGRATE_IN__INIT;
	Keel__Vmk__VmxMigrateStatus ms = KEEL__VMK__VMX_MIGRATE_STATUS__INIT;
	Keel__Vmk__VmxMigrateCancel mc = KEEL__VMK__VMX_MIGRATE_CANCEL__INIT;
	Keel__Vmk__VmxMigrateCommit cm = KEEL__VMK__VMX_MIGRATE_COMMIT__INIT;
	uint8_t key[32], mid[16];
	char tobuf[2048], *eps[16];
	size_t neps = 0;
	bool out = strcmp(cmd, "migrate") == 0, in = strcmp(cmd, "migrate-in") == 0;

	if ((out || in) && read_key_id(cmd, key_file, id, key, mid) < 0)
		return 2;
	if (out) {
		if (to == NULL || strlen(to) >= sizeof(tobuf)) {
			fprintf(stderr, "vmxctl: migrate needs --to IP:PORT[,IP:PORT...]\n");
			return 2;
		}
		if (have_epoch && no_commit) {
			fprintf(stderr, "vmxctl: --commit and --no-commit exclude each other\n");
			return 2;
		}
		snprintf(tobuf, sizeof(tobuf), "%s", to);
		for (char *save = NULL, *t = strtok_r(tobuf, ",", &save); t != NULL;
		     t = strtok_r(NULL, ",", &save)) {
			if (neps == 16) {
				fprintf(stderr, "vmxctl: at most 16 destination addresses\n");
				return 2;
			}
			eps[neps++] = t;
		}
		mo.id = (ProtobufCBinaryData){.len = 16, .data = mid};
		mo.key = (ProtobufCBinaryData){.len = 32, .data = key};
		mo.n_endpoints = neps;
		mo.endpoints = eps;
		mo.streams_per_endpoint = (uint32_t)streams;
		mo.encrypt = encrypt;
		mo.downtime_ms = (uint32_t)downtime;
		mo.max_rounds = (uint32_t)rounds;
		mo.netns = (char *)(netns ? netns : "");
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_OUT, rq.migrate_out = &mo;
	} else if (in) {
		if (streams == 0) {
			fprintf(stderr, "vmxctl: migrate-in needs --streams N\n");
			return 2;
		}
		mi.id = (ProtobufCBinaryData){.len = 16, .data = mid};
		mi.key = (ProtobufCBinaryData){.len = 32, .data = key};
		mi.count = (uint32_t)streams;
		mi.encrypt = encrypt;
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_IN, rq.migrate_in = &mi;
	} else if (strcmp(cmd, "migrate-status") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_STATUS, rq.migrate_status = &ms;
	} else if (strcmp(cmd, "migrate-cancel") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_CANCEL, rq.migrate_cancel = &mc;
	} else {
		if (have_epoch == abort_) {
			fprintf(stderr, "vmxctl: migrate-commit needs --epoch E or --abort\n");
			return 2;
		}
		cm.commit = have_epoch;
		cm.epoch = epoch;
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_COMMIT, rq.migrate_commit = &cm;
	}
	int fd = kb_unix_connect(sock);
	if (fd < 0) {
		fprintf(stderr, "vmxctl: connecting to %s: %s\n", sock, kb_strerror(fd));
		return 2;
	}
	Keel__Vmk__VmxReply *rp = call(fd, &rq);
	if (rp == NULL) {
		close(fd);
		return 2;
	}
	int code = rp->code == 0 ? 0 : 1;
	if (out && code == 0 && (have_epoch || no_commit)) {
		/* ready: decide on the same connection */
		if (!json)
			print_migrate(rp, 0);
		keel__vmk__vmx_reply__free_unpacked(rp, NULL);
		rq = (Keel__Vmk__VmxRequest)KEEL__VMK__VMX_REQUEST__INIT;
		cm.commit = have_epoch;
		cm.epoch = epoch;
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_MIGRATE_COMMIT, rq.migrate_commit = &cm;
		rp = call(fd, &rq);
		if (rp == NULL) {
			close(fd);
			return 2;
		}
		code = rp->code == 0 ? 0 : 1;
		if (!json)
			printf("-- %s\n", have_epoch ? "committed" : "not committed");
	}
	close(fd);
	print_migrate(rp, json);
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	return code;
}

/* ---- FT --------------------------------------------------------------------------------- */

static void print_ft(const Keel__Vmk__VmxReply *rp, int json)
{
	const Keel__Vmk__VmxFtReply *f = rp->ft;

	if (json) {
		printf("{\"code\":%d,\"error\":", rp->code);
		print_json_string(rp->error);
		if (rp->status) {
			printf(",\"state\":");
			print_json_string(rp->status->state);
		}
		if (f) {
			printf(",\"role\":");
			print_json_string(f->role);
			printf(",\"phase\":");
			print_json_string(f->phase);
			printf(",\"checkpoint\":%llu,\"epoch_ms\":%u,\"last_pause_us\":%llu,"
			       "\"max_pause_us\":%llu,\"last_ckpt_bytes\":%llu,\"lag_us\":%llu,"
			       "\"held_frames\":%llu,\"dropped_frames\":%llu,\"sync_bytes\":%llu,"
			       "\"bytes\":%llu,\"error_code\":%d,\"ft_error\":",
			       (unsigned long long)f->checkpoint, f->epoch_ms,
			       (unsigned long long)f->last_pause_us,
			       (unsigned long long)f->max_pause_us,
			       (unsigned long long)f->last_ckpt_bytes,
			       (unsigned long long)f->lag_us, (unsigned long long)f->held_frames,
			       (unsigned long long)f->dropped_frames,
			       (unsigned long long)f->sync_bytes, (unsigned long long)f->bytes,
			       f->error_code);
			print_json_string(f->error);
		}
		printf("}\n");
		return;
	}
	if (rp->code != 0)
		fprintf(stderr, "vmxctl: %s\n", rp->error);
	if (f == NULL)
		return;
	printf("role: %s, phase: %s, checkpoint: %llu (every %u ms)\n", f->role[0] ? f->role : "-",
	       f->phase, (unsigned long long)f->checkpoint, f->epoch_ms);
	printf("pause: %llu us (max %llu us), last checkpoint %.1f KiB, lag %.1f ms\n",
	       (unsigned long long)f->last_pause_us, (unsigned long long)f->max_pause_us,
	       (double)f->last_ckpt_bytes / 1024.0, (double)f->lag_us / 1000.0);
	printf("held frames: %llu, dropped: %llu; sync %.1f MiB, %.1f MiB in all\n",
	       (unsigned long long)f->held_frames, (unsigned long long)f->dropped_frames,
	       (double)f->sync_bytes / 1048576.0, (double)f->bytes / 1048576.0);
	if (f->error && f->error[0])
		printf("error: %s\n", f->error);
}

static void ft_usage(FILE *f, const char *cmd)
{
	if (strcmp(cmd, "ft-start") == 0)
		fprintf(
		    f, "Usage: vmxctl [--json] ft-start SOCKET --to IP:PORT --key-file F --id HEX\n"
		       "       [--no-encrypt] [--epoch-ms N] [--netns PATH]\n"
		       "Protects the running VM of SOCKET with the FT secondary at IP:PORT: the\n"
		       "initial sync, then a checkpoint every N ms (default 20). Returns at once;\n"
		       "ft-status shows the progress.\n");
	else if (strcmp(cmd, "ft-in") == 0)
		fprintf(f,
			"Usage: vmxctl [--json] ft-in SOCKET --key-file F --id HEX [--no-encrypt]\n"
			"Lets a vmx started with --ft-secondary accept the primary's stream.\n");
	else if (strcmp(cmd, "ft-takeover") == 0)
		fprintf(
		    f,
		    "Usage: vmxctl [--json] ft-takeover SOCKET --epoch E\n"
		    "Resumes an FT secondary's guest from its last checkpoint, owning it at E.\n");
	else
		fprintf(
		    f, "Usage: vmxctl [--json] %s SOCKET\n%s\n", cmd,
		    strcmp(cmd, "ft-status") == 0
			? "Prints the FT role, phase and figures."
			: "Ends FT: a primary releases its held output and runs on unprotected; a\n"
			  "secondary exits without running the guest.");
}

static int ft_main(int argc, char **argv, int json)
{
	static const struct option opts[] = {
	    {"to", required_argument, NULL, 't'},	{"key-file", required_argument, NULL, 'k'},
	    {"id", required_argument, NULL, 'i'},	{"no-encrypt", no_argument, NULL, 'E'},
	    {"epoch-ms", required_argument, NULL, 'm'}, {"netns", required_argument, NULL, 'n'},
	    {"epoch", required_argument, NULL, 'e'},	{"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},		{NULL, 0, NULL, 0},
	};
	const char *cmd = argv[0], *to = NULL, *key_file = NULL, *id = NULL, *netns = NULL;
	unsigned long epoch_ms = 0;
	unsigned long long epoch = 0;
	bool encrypt = true, have_epoch = false;
	char *end;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		switch (c) {
		case 't':
			to = optarg;
			break;
		case 'k':
			key_file = optarg;
			break;
		case 'i':
			id = optarg;
			break;
		case 'E':
			encrypt = false;
			break;
		case 'n':
			netns = optarg;
			break;
		case 'm':
			epoch_ms = strtoul(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '\0' || optarg[0] == '-' ||
			    epoch_ms > 100000) {
				fprintf(stderr, "vmxctl: bad --epoch-ms '%s'\n", optarg);
				return 2;
			}
			break;
		case 'e':
			epoch = strtoull(optarg, &end, 10);
			if (*end != '\0' || optarg[0] == '\0' || optarg[0] == '-') {
				fprintf(stderr, "vmxctl: bad epoch '%s'\n", optarg);
				return 2;
			}
			have_epoch = true;
			break;
		case 'j':
			json = 1;
			break;
		case 'h':
			ft_usage(stdout, cmd);
			return 0;
		default:
			ft_usage(stderr, cmd);
			return 2;
		}
	}
	if (argc - optind != 1) {
		ft_usage(stderr, cmd);
		return 2;
	}
	const char *sock = argv[optind];
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxFtStart fs = KEEL__VMK__VMX_FT_START__INIT;
	Keel__Vmk__VmxFtIn fi = KEEL__VMK__VMX_FT_IN__INIT;
	Keel__Vmk__VmxFtStatus st = KEEL__VMK__VMX_FT_STATUS__INIT;
	Keel__Vmk__VmxFtStop sp = KEEL__VMK__VMX_FT_STOP__INIT;
	Keel__Vmk__VmxFtTakeover tk = KEEL__VMK__VMX_FT_TAKEOVER__INIT;
	uint8_t key[32], fid[16];
	bool start = strcmp(cmd, "ft-start") == 0, in = strcmp(cmd, "ft-in") == 0;

	if ((start || in) && read_key_id(cmd, key_file, id, key, fid) < 0)
		return 2;
	if (start) {
		if (to == NULL) {
			fprintf(stderr, "vmxctl: ft-start needs --to IP:PORT\n");
			return 2;
		}
		fs.id = (ProtobufCBinaryData){.len = 16, .data = fid};
		fs.key = (ProtobufCBinaryData){.len = 32, .data = key};
		fs.endpoint = (char *)to;
		fs.encrypt = encrypt;
		fs.epoch_ms = (uint32_t)epoch_ms;
		fs.netns = (char *)(netns ? netns : "");
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_START, rq.ft_start = &fs;
	} else if (in) {
		fi.id = (ProtobufCBinaryData){.len = 16, .data = fid};
		fi.key = (ProtobufCBinaryData){.len = 32, .data = key};
		fi.encrypt = encrypt;
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_IN, rq.ft_in = &fi;
	} else if (strcmp(cmd, "ft-status") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_STATUS, rq.ft_status = &st;
	} else if (strcmp(cmd, "ft-stop") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_STOP, rq.ft_stop = &sp;
	} else {
		if (!have_epoch) {
			fprintf(stderr, "vmxctl: ft-takeover needs --epoch E\n");
			return 2;
		}
		tk.epoch = epoch;
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_FT_TAKEOVER, rq.ft_takeover = &tk;
	}
	int fd = kb_unix_connect(sock);
	if (fd < 0) {
		fprintf(stderr, "vmxctl: connecting to %s: %s\n", sock, kb_strerror(fd));
		return 2;
	}
	Keel__Vmk__VmxReply *rp = call(fd, &rq);
	close(fd);
	if (rp == NULL)
		return 2;
	int code = rp->code == 0 ? 0 : 1;
	print_ft(rp, json);
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	return code;
}

int main(int argc, char **argv)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxPowerOn on = KEEL__VMK__VMX_POWER_ON__INIT;
	Keel__Vmk__VmxPowerOff off = KEEL__VMK__VMX_POWER_OFF__INIT;
	Keel__Vmk__VmxReset rst = KEEL__VMK__VMX_RESET__INIT;
	Keel__Vmk__VmxPause pause = KEEL__VMK__VMX_PAUSE__INIT;
	Keel__Vmk__VmxResume resume = KEEL__VMK__VMX_RESUME__INIT;
	Keel__Vmk__VmxSave save = KEEL__VMK__VMX_SAVE__INIT;
	Keel__Vmk__VmxRestore restore = KEEL__VMK__VMX_RESTORE__INIT;
	Keel__Vmk__VmxStats stats = KEEL__VMK__VMX_STATS__INIT;
	Keel__Vmk__VmxStatus status = KEEL__VMK__VMX_STATUS__INIT;
	Keel__Vmk__VmxAgentSend asend = KEEL__VMK__VMX_AGENT_SEND__INIT;
	Keel__Vmk__VmxAgentRecv arecv = KEEL__VMK__VMX_AGENT_RECV__INIT;
	int json = 0, i = 1;

	if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc > 1 && strcmp(argv[1], "--json") == 0) {
		json = 1;
		i++;
	}
	if (argc - i >= 1 && strncmp(argv[i], "migrate", 7) == 0 &&
	    (strcmp(argv[i], "migrate") == 0 || strcmp(argv[i], "migrate-in") == 0 ||
	     strcmp(argv[i], "migrate-status") == 0 || strcmp(argv[i], "migrate-cancel") == 0 ||
	     strcmp(argv[i], "migrate-commit") == 0))
		return migrate_main(argc - i, argv + i, json);
	if (argc - i >= 1 &&
	    (strcmp(argv[i], "ft-start") == 0 || strcmp(argv[i], "ft-in") == 0 ||
	     strcmp(argv[i], "ft-status") == 0 || strcmp(argv[i], "ft-stop") == 0 ||
	     strcmp(argv[i], "ft-takeover") == 0))
		return ft_main(argc - i, argv + i, json);
	if (argc - i < 2) {
		usage(stderr);
		return 2;
	}
	const char *sock = argv[i], *cmd = argv[i + 1], *arg = argc - i > 2 ? argv[i + 2] : NULL;
	bool needs_arg = false;

	if (strcmp(cmd, "status") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_STATUS, rq.status = &status;
	} else if (strcmp(cmd, "power-on") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_POWER_ON, rq.power_on = &on;
	} else if (strcmp(cmd, "power-off") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_POWER_OFF, rq.power_off = &off;
	} else if (strcmp(cmd, "reset") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_RESET, rq.reset = &rst;
	} else if (strcmp(cmd, "pause") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_PAUSE, rq.pause = &pause;
	} else if (strcmp(cmd, "resume") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_RESUME, rq.resume = &resume;
	} else if (strcmp(cmd, "stats") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_STATS, rq.stats = &stats;
	} else if (strcmp(cmd, "agent-recv") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_AGENT_RECV, rq.agent_recv = &arecv;
	} else if (strcmp(cmd, "save") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_SAVE, rq.save = &save;
		save.path = (char *)arg, needs_arg = true;
	} else if (strcmp(cmd, "restore") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_RESTORE, rq.restore = &restore;
		restore.path = (char *)arg, needs_arg = true;
	} else if (strcmp(cmd, "agent-send") == 0) {
		rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_AGENT_SEND, rq.agent_send = &asend;
		asend.line = (char *)arg, needs_arg = true;
	} else {
		fprintf(stderr, "vmxctl: unknown command '%s'\n", cmd);
		usage(stderr);
		return 2;
	}
	if (needs_arg && arg == NULL) {
		fprintf(stderr, "vmxctl: %s needs an argument\n", cmd);
		return 2;
	}
	int fd = kb_unix_connect(sock);
	if (fd < 0) {
		fprintf(stderr, "vmxctl: connecting to %s: %s\n", sock, kb_strerror(fd));
		return 2;
	}
	int rv = kb_frame_send_pb(fd, &rq.base);
	struct kb_buf in;
	kb_buf_init(&in, 1u << 20);
	rv = rv ?: kb_frame_recv(fd, &in, 1u << 20);
	close(fd);
	if (rv < 0) {
		fprintf(stderr, "vmxctl: %s: %s\n", sock, kb_strerror(rv));
		kb_buf_close(&in);
		return 2;
	}
	Keel__Vmk__VmxReply *rp = keel__vmk__vmx_reply__unpack(NULL, in.len, in.data);
	kb_buf_close(&in);
	if (rp == NULL) {
		fprintf(stderr, "vmxctl: undecodable reply\n");
		return 2;
	}
	print_reply(cmd, rp, json);
	int code = rp->code == 0 ? 0 : 1;
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);
	return code;
}
