/*
 * QueryPerf through the Vim API (docs/top.md): one sample of the host's worlds, as
 * `keel host top` shows them.
 *
 * Happy path: on the loop, check the window and the VM name, then authorize System.Read on
 * this host ({"root", "host-<id>"}); on a worker, one VmkPerf to DIR/vmkernel.sock (it
 * blocks for up to the window); on the loop, the answer: vmkernel's PerfSample, whose field
 * numbers PerfReport shares, re-read as a PerfReport.
 *
 * Failure modes: a window outside 100..5000 ms or a VM name longer than 128 bytes:
 * INVALID_ARGUMENT (nothing is asked); vmkernel unreachable or its reply not decoding:
 * UNAVAILABLE; an unknown VM: NOT_FOUND; a VM not running: FAILED_PRECONDITION, with
 * vmkernel's text.
 *
 * Threads: the handler and the answer on the loop; vmkernel is asked on a libuv worker.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "hostagent/vim.h"
#include "hostagent/vim_perf.h"
#include "lib/heap.h"
#include "vim.pb-c.h"
#include "vmk.pb-c.h"

#define REPLY_MAX     (16u << 20)
#define ASK_TIMEOUT_S 15
#define VM_MAX	      128

struct perfreq {
	uv_work_t work;
	struct hd_vim *v;
	struct hd_call *call; /* NULL once the client went away */
	uint32_t window_ms;
	char vm[VM_MAX + 1];
	/* the outcome, from the worker */
	enum hd_status status;
	char error[600];
	Keel__Vim__PerfReport *report;
};

static void cancelled(struct hd_call *call, void *arg)
{
	struct perfreq *r = arg;

	(void)call;
	r->call = NULL;
}

static void perf_work(uv_work_t *w)
{
	struct perfreq *r = w->data;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkPerf perf = KEEL__VMK__VMK_PERF__INIT;
	Keel__Vmk__VmkReply *rp;
	uint8_t *b, *buf;
	size_t len = 0, n;

	perf.window_ms = r->window_ms;
	perf.vm = r->vm;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_PERF;
	rq.perf = &perf;
	r->status = HD_UNAVAILABLE;
	b = hd_backend_call(r->v->vmk_sock, &rq.base, ASK_TIMEOUT_S, REPLY_MAX, &len);
	if (!b) {
		snprintf(r->error, sizeof(r->error), "vmkernel at %s does not answer",
			 r->v->vmk_sock);
		return;
	}
	rp = keel__vmk__vmk_reply__unpack(NULL, len, b);
	kb_free(b);
	if (!rp || (rp->code == 0 && !rp->perf)) {
		snprintf(r->error, sizeof(r->error), "vmkernel at %s: a reply that does not decode",
			 r->v->vmk_sock);
		goto out;
	}
	if (rp->code) {
		r->status = rp->code == KB_ENOTFOUND ? HD_NOT_FOUND
			    : rp->code == KB_ECONFIG ? HD_INVALID_ARGUMENT
						     : HD_FAILED_PRECONDITION;
		snprintf(r->error, sizeof(r->error), "vmkernel: %s",
			 rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
		goto out;
	}
	n = keel__vmk__perf_sample__get_packed_size(rp->perf);
	buf = kb_malloc(n ? n : 1);
	if (!buf) {
		r->status = HD_RESOURCE_EXHAUSTED;
		snprintf(r->error, sizeof(r->error), "out of memory");
		goto out;
	}
	keel__vmk__perf_sample__pack(rp->perf, buf);
	r->report = keel__vim__perf_report__unpack(NULL, n, buf);
	kb_free(buf);
	if (r->report)
		r->status = HD_OK;
	else
		snprintf(r->error, sizeof(r->error), "vmkernel's sample does not decode");
out:
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

static void perf_done(uv_work_t *w, int status)
{
	struct perfreq *r = w->data;

	if (r->call) {
		hd_call_on_cancel(r->call, NULL, NULL);
		if (status)
			hd_call_error(r->call, HD_UNAVAILABLE, "vmkernel could not be asked");
		else if (r->status != HD_OK)
			hd_call_error(r->call, r->status, "%s", r->error);
		else
			hd_call_reply(r->call, &r->report->base);
	}
	if (r->report)
		keel__vim__perf_report__free_unpacked(r->report, NULL);
	kb_free(r);
}

void hd_vim_query_perf(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__PerfRequest *pr = (const Keel__Vim__PerfRequest *)req;
	struct hd_vim *v = hd_call_server_data(call);
	const char *vm = pr->vm ? pr->vm : "";
	char host[32];
	const char *path[2] = {HOSTD_AUTH_ROOT_ENTITY, host};
	struct perfreq *r;

	snprintf(host, sizeof(host), "host-%" PRIu64, v->host_id);
	if (!hd_vim_authorize(call, path, 2, "System.Read"))
		return;
	if (pr->window_ms && (pr->window_ms < 100 || pr->window_ms > 5000)) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "window_ms: 0, or 100 to 5000");
		return;
	}
	if (strlen(vm) > VM_MAX) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "vm is at most %d bytes", VM_MAX);
		return;
	}
	r = kb_calloc(1, sizeof(*r));
	if (!r) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	r->v = v;
	r->call = call;
	r->window_ms = pr->window_ms;
	snprintf(r->vm, sizeof(r->vm), "%s", vm);
	r->work.data = r;
	hd_call_on_cancel(call, cancelled, r);
	if (uv_queue_work(v->loop, &r->work, perf_work, perf_done) != 0) {
		hd_call_on_cancel(call, NULL, NULL);
		hd_call_error(call, HD_UNAVAILABLE, "busy");
		kb_free(r);
	}
}
