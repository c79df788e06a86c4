/*
 * vmxctl — talks to one vmx over its control socket (proto/vmk.proto): power, pause,
 * save/restore, stats and the guest agent. For tests, benchmarks and debugging by hand;
 * operators use `keel`, which goes through vmkernel.
 *
 * Exit status: 0 on success, 1 when vmx answered with an error, 2 on usage or connection
 * errors.
 */
#include <errno.h>
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
	       "  --json              machine-readable output\n");
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
			printf(",\"mem_size\":%llu,\"mem_touched\":%llu,\"vmm_rss\":%llu,"
			       "\"heartbeat_seq\":%llu,\"heartbeat_age_ms\":%llu,\"vcpus\":[",
			       (unsigned long long)s->mem_size, (unsigned long long)s->mem_touched,
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
		printf("memory: %llu MiB, touched %llu KiB\nvmx rss: %llu KiB\n",
		       (unsigned long long)(s->mem_size >> 20),
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
