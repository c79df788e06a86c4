/*
 * `keel host top`: the host's worlds (VMs, vmkernel, the host's services) with CPU used
 * and ready time, memory, VM exits, network and disk rates, as esxtop shows them
 * (docs/top.md).
 *
 * Each round asks vmkernel (VmkPerf) or, with --server, hostd (QueryPerf) for one sample;
 * the rates in it are over the time since the previous round (the first round's over a
 * window the host samples within the call). On a terminal the screen is redrawn every
 * --interval: one header line for the host, one row per world, by CPU. --batch writes CSV
 * instead (a header row, then one row per world per round); --json one JSON object per
 * round. --iterations bounds the rounds (default: until interrupted; 1 with --json alone).
 *
 * Failure modes: a round that fails ends the command with that round's error (exit code
 * as for any call); bad options change nothing and are usage errors.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "lib/time.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

enum { O_INTERVAL = 1, O_BATCH, O_ITERATIONS, O_VM };

#define FIRST_WINDOW_MS 1000

static const struct kc_opt top_opts[] = {
    {"interval", "S", "seconds between rounds (0.5 .. 3600; default 2)", O_INTERVAL, false},
    {"batch", NULL, "write CSV: a header row, then one row per world per round", O_BATCH, false},
    {"iterations", "N", "stop after N rounds (default: until interrupted)", O_ITERATIONS, false},
    {"vm", "VM", "only this VM (name or uuid)", O_VM, false},
    {NULL, NULL, NULL, 0, false},
};

/* Where the samples come from: vmkernel's socket or hostd's API. */
struct source {
	struct kc_ctx *ctx;
	const struct kc_call *call;
	struct kl_client *api; /* NULL: the local socket */
	char url[KC_URL_MAX];
	const char *vm;
};

/* One sample into *out (caller frees with keel__vmk__perf_sample__free_unpacked), or the
 * failure reported and its exit code. */
static int fetch(struct source *src, uint32_t window_ms, Keel__Vmk__PerfSample **out)
{
	*out = NULL;
	if (src->api) {
		Keel__Vim__PerfRequest rq = KEEL__VIM__PERF_REQUEST__INIT;
		ProtobufCMessage *m = NULL;
		struct kl_status st;
		uint8_t *buf;
		size_t n;

		rq.window_ms = window_ms;
		rq.vm = (char *)src->vm;
		if (kl_client_call(src->api, "QueryPerf", &rq.base,
				   &keel__vim__perf_report__descriptor, &m, &st))
			return kc_api_fail(src->ctx, src->url, true, NULL, &st);
		/* PerfReport has the field numbers of PerfSample: the bytes carry over. */
		n = protobuf_c_message_get_packed_size(m);
		buf = malloc(n ? n : 1);
		if (buf == NULL) {
			protobuf_c_message_free_unpacked(m, NULL);
			return kc_fail(src->ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
		}
		protobuf_c_message_pack(m, buf);
		protobuf_c_message_free_unpacked(m, NULL);
		*out = keel__vmk__perf_sample__unpack(NULL, n, buf);
		free(buf);
		if (*out == NULL)
			return kc_fail(src->ctx, KC_EXIT_PROTO, KB_EPROTO,
				       "hostd's PerfReport does not decode as a sample");
		return KC_EXIT_OK;
	}

	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkPerf perf = KEEL__VMK__VMK_PERF__INIT;
	Keel__Vmk__VmkReply *rp;
	int rc;

	perf.window_ms = window_ms;
	perf.vm = (char *)src->vm;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_PERF;
	req.perf = &perf;
	rc = kc_rpc(src->ctx, &req, &rp);
	if (rc)
		return rc;
	if (rp->perf == NULL) {
		kc_reply_free(rp);
		return kc_fail(src->ctx, KC_EXIT_PROTO, 0, "vmkernel's reply carries no sample");
	}
	*out = rp->perf;
	rp->perf = NULL;
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

/* ---- output ------------------------------------------------------------------------------- */

static const char *const csv_heads =
    "time,host,world,kind,pid,threads,cpu_used_pct,cpu_ready_pct,rss_bytes,cgroup_mem_bytes,"
    "mem_touched_bytes,exits_s,exits_io_s,exits_mmio_s,exits_hlt_s,exits_intr_s,"
    "exits_other_s,net_rx_packets_s,net_rx_bytes_s,net_tx_packets_s,net_tx_bytes_s,"
    "disk_read_bytes_s,disk_write_bytes_s,disk_read_ops_s,disk_write_ops_s";

/* A CSV field: quoted when it holds a comma, a quote or a line break; control characters
 * are replaced as on the terminal. */
static void csv_str(const char *s)
{
	char clean[512];

	kc_clean(s, clean, sizeof(clean));
	if (strpbrk(clean, ",\"\r\n") == NULL) {
		fputs(clean, stdout);
		return;
	}
	putchar('"');
	for (const char *p = clean; *p; p++) {
		if (*p == '"')
			putchar('"');
		putchar(*p);
	}
	putchar('"');
}

static void print_csv(const Keel__Vmk__PerfSample *s)
{
	char when[40];
	time_t t = (time_t)(s->time_ms / 1000);
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	for (size_t i = 0; i < s->n_worlds; i++) {
		const Keel__Vmk__PerfWorld *w = s->worlds[i];

		printf("%s,", when);
		csv_str(s->hostname);
		putchar(',');
		csv_str(w->name);
		putchar(',');
		csv_str(w->kind);
		printf(",%" PRIu32 ",%" PRIu32 ",%.2f,%.2f,%" PRIu64 ",%" PRIu64 ",%" PRIu64
		       ",%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f,%.1f\n",
		       w->pid, w->threads, w->cpu_used_pct, w->cpu_ready_pct, w->rss_bytes,
		       w->cgroup_mem_bytes, w->mem_touched, w->exits_s, w->exits_io_s,
		       w->exits_mmio_s, w->exits_hlt_s, w->exits_intr_s, w->exits_other_s,
		       w->net_rx_packets_s, w->net_rx_bytes_s, w->net_tx_packets_s,
		       w->net_tx_bytes_s, w->disk_read_bytes_s, w->disk_write_bytes_s,
		       w->disk_read_ops_s, w->disk_write_ops_s);
	}
	fflush(stdout);
}

static void print_json(const Keel__Vmk__PerfSample *s)
{
	struct kc_json j;

	kc_json_init(&j, stdout);
	kc_json_obj_begin(&j, NULL);
	kc_json_bool(&j, "ok", true);
	kc_json_i64(&j, "code", 0);
	kc_json_obj_begin(&j, "perf");
	kc_message_json_fields(&j, &s->base, NULL);
	kc_json_obj_end(&j);
	kc_json_obj_end(&j);
	kc_json_finish(&j);
}

/* "12.3K", "4.5M": a rate in a narrow column. */
static char *fmt_rate(double v, char *out, size_t size)
{
	static const char units[] = " KMGT";
	int u = 0;

	while (v >= 1000 && u < 4) {
		v /= 1000;
		u++;
	}
	if (u == 0)
		snprintf(out, size, "%.0f", v);
	else
		snprintf(out, size, "%.1f%c", v, units[u]);
	return out;
}

static void print_screen(const Keel__Vmk__PerfSample *s, bool tty)
{
	char host[128], name[128], a[32], b[32], when[16];
	time_t t = (time_t)(s->time_ms / 1000);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%H:%M:%S", &tm);
	if (tty)
		fputs("\033[H\033[2J", stdout);
	printf("%s  %s  %" PRIu32 " CPUs  CPU used %.1f%%  memory %s available of %s  %zu worlds  "
	       "interval %.1f s\n\n",
	       when, kc_clean(s->hostname, host, sizeof(host)), s->cpus, s->cpu_used_pct,
	       kc_fmt_bytes(s->mem_available_bytes, a, sizeof(a)),
	       kc_fmt_bytes(s->mem_bytes, b, sizeof(b)), s->n_worlds,
	       (double)s->interval_ms / 1000);
	printf("%-16s %-6s %7s %6s %6s %9s %9s %8s %7s %7s %7s %7s %8s %8s\n", "WORLD", "KIND",
	       "PID", "%USED", "%RDY", "RSS", "CGMEM", "EXITS/s", "IO/s", "MMIO/s", "RXPK/s",
	       "TXPK/s", "DRDB/s", "DWRB/s");
	for (size_t i = 0; i < s->n_worlds; i++) {
		const Keel__Vmk__PerfWorld *w = s->worlds[i];
		char r[8][16];

		kc_clean(w->name, name, sizeof(name));
		printf("%-16.16s %-6s %7" PRIu32
		       " %6.1f %6.1f %9s %9s %8s %7s %7s %7s %7s %8s %8s\n",
		       name, w->kind, w->pid, w->cpu_used_pct, w->cpu_ready_pct,
		       kc_fmt_bytes(w->rss_bytes, a, sizeof(a)),
		       w->cgroup_mem_bytes ? kc_fmt_bytes(w->cgroup_mem_bytes, b, sizeof(b)) : "-",
		       fmt_rate(w->exits_s, r[0], sizeof(r[0])),
		       fmt_rate(w->exits_io_s, r[1], sizeof(r[1])),
		       fmt_rate(w->exits_mmio_s, r[2], sizeof(r[2])),
		       fmt_rate(w->net_rx_packets_s, r[3], sizeof(r[3])),
		       fmt_rate(w->net_tx_packets_s, r[4], sizeof(r[4])),
		       fmt_rate(w->disk_read_bytes_s, r[5], sizeof(r[5])),
		       fmt_rate(w->disk_write_bytes_s, r[6], sizeof(r[6])));
	}
	if (!tty)
		putchar('\n');
	fflush(stdout);
}

/* ---- the command ---------------------------------------------------------------------------- */

static int top_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const char *v = kc_opt(call, O_INTERVAL);
	bool batch = kc_has(call, O_BATCH);
	bool tty = !batch && !ctx->json && isatty(STDOUT_FILENO);
	uint64_t interval_ms = 2000;
	uint32_t iterations = 0;
	struct source src = {.ctx = ctx, .call = call, .vm = ""};
	int rc = KC_EXIT_OK;

	if (v &&
	    (kc_parse_seconds(v, &interval_ms) || interval_ms < 500 || interval_ms > 3600 * 1000))
		return kc_usage(ctx, call, "bad --interval '%s': want seconds from 0.5 to 3600", v);
	v = kc_opt(call, O_ITERATIONS);
	if (v && kc_parse_u32(v, 1, 1000000000, &iterations))
		return kc_usage(ctx, call, "bad --iterations '%s': want a number from 1", v);
	if (!v && ctx->json && !batch)
		iterations = 1;
	if (kc_opt(call, O_VM))
		src.vm = kc_opt(call, O_VM);
	if (kc_api_wanted(ctx)) {
		if (!kc_api_server(ctx, call, src.url, sizeof(src.url)))
			return KC_EXIT_USAGE;
		rc = kc_api_open(ctx, call, &src.api);
		if (rc)
			return rc;
	}
	if (batch && !ctx->json) {
		puts(csv_heads);
		fflush(stdout);
	}
	for (uint32_t round = 0; iterations == 0 || round < iterations; round++) {
		Keel__Vmk__PerfSample *s;
		uint32_t window =
		    interval_ms < FIRST_WINDOW_MS ? (uint32_t)interval_ms : FIRST_WINDOW_MS;

		if (round > 0)
			kb_sleep_ns(interval_ms * KB_NSEC_PER_MSEC);
		rc = fetch(&src, window, &s);
		if (rc)
			break;
		if (ctx->json)
			print_json(s);
		else if (batch)
			print_csv(s);
		else
			print_screen(s, tty);
		keel__vmk__perf_sample__free_unpacked(s, NULL);
	}
	if (src.api)
		kl_client_destroy(src.api);
	return rc;
}

const struct kc_cmd kc_host_top_cmd = {
    .name = "top",
    .summary = "Show the host's worlds with CPU, memory, VM exit, network and disk rates.",
    .detail = "Like esxtop: one row per world (each powered-on VM's vmx, vmkernel, and the\n"
	      "host's services), by CPU used. %USED is the world's CPU time over the interval in\n"
	      "percent of one CPU (summed over its threads); %RDY the time its threads were\n"
	      "runnable but waiting for a CPU. Rates are per second over the time between two\n"
	      "rounds; network figures are the guest's view (RX: frames it received).\n"
	      "--batch writes CSV to stdout; --json one object per round (one round unless\n"
	      "--iterations or --batch). With --server the samples come from hostd's QueryPerf.\n",
    .opts = top_opts,
    .run = top_run,
    .api = true,
};
