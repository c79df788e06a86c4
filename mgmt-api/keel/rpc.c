/*
 * One request to vmkernel, and how failures reach the operator.
 *
 * kc_rpc() makes the transport on first use (only commands that talk to the host need
 * one, so --help and usage errors work without a running vmkernel), sends the request,
 * and turns every way it can go wrong into one line on stderr — `keel: <text>`, where the
 * text is vmkernel's own error message when it answered with one — plus, under --json, an
 * error object on stdout: {"ok":false,"code":N,"error":"...","exit_code":E}.
 */
#include <errno.h>
#include <stdarg.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

static void fail_json(int exit, int code, const char *msg)
{
	struct kc_json j;

	kc_json_init(&j, stdout);
	kc_json_obj_begin(&j, NULL);
	kc_json_bool(&j, "ok", false);
	kc_json_i64(&j, "code", code);
	kc_json_str(&j, "error", msg);
	kc_json_i64(&j, "exit_code", exit);
	kc_json_obj_end(&j);
	kc_json_finish(&j);
}

static int fail_msg(struct kc_ctx *ctx, int exit, int code, const char *msg)
{
	char clean[1024];

	fflush(stdout);
	fprintf(stderr, "keel: %s\n", kc_clean(msg, clean, sizeof(clean)));
	if (ctx->json)
		fail_json(exit, code, msg);
	return exit;
}

int kc_fail(struct kc_ctx *ctx, int exit, int code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return fail_msg(ctx, exit, code, msg);
}

int kc_rpc(struct kc_ctx *ctx, Keel__Vmk__VmkRequest *req, Keel__Vmk__VmkReply **reply)
{
	struct kb_errmsg err = {{0}};
	Keel__Vmk__VmkReply *rp = NULL;
	int rc, code = 0;

	*reply = NULL;
	if (!ctx->tr) {
		rc = kc_transport_local_create(ctx->socket, ctx->timeout_ms, &ctx->tr);
		if (rc)
			return kc_fail(ctx, KC_EXIT_FAILED, rc, "%s", kb_strerror(rc));
	}
	rc = ctx->tr->call(ctx->tr, req, &rp, &code, &err);
	if (rc != KC_EXIT_OK)
		return fail_msg(ctx, rc, code, err.msg);
	if (rp->code != 0) {
		const char *text = rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code);

		rc = fail_msg(ctx, KC_EXIT_FAILED, rp->code, text);
		kc_reply_free(rp);
		return rc;
	}
	*reply = rp;
	return KC_EXIT_OK;
}
