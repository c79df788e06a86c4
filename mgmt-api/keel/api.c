/*
 * keel through hostd's API: the server a command talks to, the client made from its cached
 * session, and how an API failure reaches the operator.
 *
 * The server is --server URL, else $KEEL_SERVER (main.c); --local overrides both. A
 * command marked .api opens a libkeel client with the trust settings and token `keel
 * login` cached for that server (session_cache.c). Failures are one line on stderr plus
 * the JSON error object under --json, as for vmkernel (kc_fail); the "code" is the gRPC
 * status code. Without a cached session: "not logged in to URL: run keel login ...". A
 * session hostd no longer knows (idle timeout, logout, password change): UNAUTHENTICATED,
 * reported as "log in again".
 */
#include <errno.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

const char *kc_api_server(struct kc_ctx *ctx, const struct kc_call *call, char *out, size_t size)
{
	size_t n;

	if (!ctx->server || ctx->local) {
		kc_usage(ctx, call,
			 "'%s' works through hostd's API only: give --server https://HOST:8443 "
			 "(or set $KEEL_SERVER)",
			 call->path);
		return NULL;
	}
	n = strlen(ctx->server);
	while (n > 8 && ctx->server[n - 1] == '/')
		n--;
	if (n >= size || n >= KC_URL_MAX) {
		kc_usage(ctx, call, "--server URL too long");
		return NULL;
	}
	memcpy(out, ctx->server, n);
	out[n] = '\0';
	return out;
}

int kc_api_fail(struct kc_ctx *ctx, const char *url, bool with_session, const char *what,
		const struct kl_status *st)
{
	int exit;

	switch (st->source) {
	case KL_SRC_TRANSPORT:
	case KL_SRC_TLS:
		exit = KC_EXIT_UNREACHABLE;
		break;
	case KL_SRC_PROTOCOL:
		exit = KC_EXIT_PROTO;
		break;
	case KL_SRC_CLIENT:
		exit = st->code == KL_INVALID_ARGUMENT ? KC_EXIT_USAGE : KC_EXIT_FAILED;
		break;
	default:
		exit = KC_EXIT_FAILED;
	}
	if (st->source == KL_SRC_SERVER && st->code == KL_UNAUTHENTICATED && with_session)
		return kc_fail(ctx, exit, st->code,
			       "the session with %s has expired or was ended (%s): log in again "
			       "with keel login --server %s --user USER",
			       url, st->message, url);
	if (what)
		return kc_fail(ctx, exit, st->code, "%s: %s", what, st->message);
	return kc_fail(ctx, exit, st->code, "%s", st->message);
}

int kc_api_open(struct kc_ctx *ctx, const struct kc_call *call, struct kl_client **out)
{
	struct kl_client_opts opts = {.timeout_ms = ctx->timeout_ms};
	struct kl_status st;
	struct kc_session s;
	char url[KC_URL_MAX];
	int rc;

	*out = NULL;
	if (!kc_api_server(ctx, call, url, sizeof(url)))
		return KC_EXIT_USAGE;
	rc = kc_session_load(url, &s);
	if (rc == -ENOENT)
		return kc_fail(ctx, KC_EXIT_FAILED, KL_UNAUTHENTICATED,
			       "not logged in to %s: run keel login --server %s --user USER", url,
			       url);
	if (rc == -EBADMSG)
		return kc_fail(ctx, KC_EXIT_FAILED, KL_UNAUTHENTICATED,
			       "the cached session for %s is damaged: run keel login --server %s "
			       "--user USER",
			       url, url);
	if (rc)
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "cannot read the cached session for %s: %s",
			       url, strerror(-rc));
	opts.ca_file = s.ca_file[0] ? s.ca_file : NULL;
	opts.thumbprint = s.thumbprint[0] ? s.thumbprint : NULL;
	rc = kl_client_open(url, &opts, out, &st);
	if (rc == 0 && kl_client_set_token(*out, s.token) != 0) {
		kl_client_destroy(*out);
		*out = NULL;
		rc = kc_fail(ctx, KC_EXIT_FAILED, KL_UNAUTHENTICATED,
			     "the cached session for %s is damaged: run keel login --server %s "
			     "--user USER",
			     url, url);
		explicit_bzero(&s, sizeof(s));
		return rc;
	}
	explicit_bzero(&s, sizeof(s));
	if (rc)
		return kc_api_fail(ctx, url, false, NULL, &st);
	return KC_EXIT_OK;
}

bool kc_api_wanted(const struct kc_ctx *ctx)
{
	return ctx->server && !ctx->local;
}

int kc_api_call(struct kc_ctx *ctx, const struct kc_call *call, const char *method,
		const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
		ProtobufCMessage **reply)
{
	char url[KC_URL_MAX];
	struct kl_client *c;
	struct kl_status st;
	int rc;

	*reply = NULL;
	rc = kc_api_open(ctx, call, &c);
	if (rc)
		return rc;
	kc_api_server(ctx, call, url, sizeof(url));
	rc = kl_client_call(c, method, req, desc, reply, &st);
	kl_client_destroy(c);
	if (rc)
		return kc_api_fail(ctx, url, true, NULL, &st);
	return KC_EXIT_OK;
}

void kc_api_json(const ProtobufCMessage *m, const char *skip)
{
	struct kc_json j;

	kc_json_init(&j, stdout);
	kc_json_obj_begin(&j, NULL);
	kc_json_bool(&j, "ok", true);
	kc_json_i64(&j, "code", 0);
	kc_message_json_fields(&j, m, skip);
	kc_json_obj_end(&j);
	kc_json_finish(&j);
}
