/*
 * Tests for mgmt-api/libkeel/keel_calls.[ch]: the KL_VIM_CALLS list holds every unary rpc
 * of keel.vim.Vim exactly once with the input and output types protoc-c generated for it,
 * in the .proto's order, and no streaming rpc; the typed functions exist with the types
 * of the list and refuse bad requests before sending; the client certificate options; the
 * incremental decoding of a stream body (kl__grpc_stream_next) however it is cut.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "mgmt-api/libkeel/grpc_parse.h"
#include "mgmt-api/libkeel/keel_client.h"
#include "vim.pb-c.h"

/* The rpcs of vim.proto that stream their answer ("returns (stream X)"), read from the
 * .proto text (protoc-c's descriptor does not say). */
static bool is_streaming(const char *method)
{
	const char *top = getenv("KEEL_TOP");
	char path[4096], line[512], name[128];
	bool found = false, streaming = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/proto/vim.proto", top ? top : ".");
	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot read %s (set KEEL_TOP)", path);
	while (fgets(line, sizeof(line), f)) {
		const char *rpc = strstr(line, "rpc ");

		if (!rpc || sscanf(rpc, "rpc %127[A-Za-z0-9_]", name) != 1)
			continue;
		if (strcmp(name, method) == 0) {
			found = true;
			streaming = strstr(line, "returns (stream ") != NULL;
		}
	}
	fclose(f);
	if (!found)
		fail_msg("rpc %s is not in %s", method, path);
	return streaming;
}

static const struct kl_vim_call_info *find(const char *method)
{
	const struct kl_vim_call_info *hit = NULL;

	for (size_t i = 0; i < kl_vim_calls_count; i++)
		if (strcmp(kl_vim_calls[i].method, method) == 0) {
			assert_null(hit); /* once */
			hit = &kl_vim_calls[i];
		}
	return hit;
}

static void test_list_matches_service(void **state)
{
	const ProtobufCServiceDescriptor *svc = &keel__vim__vim__descriptor;
	size_t unary = 0, next = 0;

	for (unsigned i = 0; i < svc->n_methods; i++) {
		const ProtobufCMethodDescriptor *m = &svc->methods[i];
		const struct kl_vim_call_info *ci = find(m->name);

		if (is_streaming(m->name)) {
			assert_null(ci);
			continue;
		}
		if (!ci)
			fail_msg("rpc %s has no line in KL_VIM_CALLS", m->name);
		assert_ptr_equal(ci->input, m->input);
		assert_ptr_equal(ci->output, m->output);
		/* in the .proto's order */
		assert_true((size_t)(ci - kl_vim_calls) == next);
		next++;
		unary++;
	}
	assert_int_equal(kl_vim_calls_count, unary);
	assert_true(unary >= 30);
	assert_true(svc->n_methods - unary >= 2); /* WaitForUpdates, Console */
}

static void test_known_lines(void **state)
{
	const struct kl_vim_call_info *ci = find("PowerOnVm");

	assert_non_null(ci);
	assert_ptr_equal(ci->input, &keel__vim__vm_ref__descriptor);
	assert_ptr_equal(ci->output, &keel__vim__task__descriptor);
	ci = find("LoginByCertificate");
	assert_non_null(ci);
	assert_ptr_equal(ci->input, &keel__vim__login_by_certificate_request__descriptor);
	assert_ptr_equal(ci->output, &keel__vim__session__descriptor);
	assert_null(find("WaitForUpdates"));
	assert_null(find("Console"));
	assert_null(find("powerOnVm"));
}

/* The typed functions have the list's types (a mismatch would not compile) and refuse,
 * before anything is sent, a request over the 64 MiB limit: *reply NULL, st filled. No
 * connection is made (the URL is never reached). */
static void test_typed_call_refused(void **state)
{
	size_t big = (64u << 20) + 1;
	char *name = malloc(big + 1);
	Keel__Vim__VmRef rq = KEEL__VIM__VM_REF__INIT;
	Keel__Vim__Task *task = (Keel__Vim__Task *)&rq; /* must be reset to NULL */
	Keel__Vim__Task *final = (Keel__Vim__Task *)&rq;
	struct kl_client *c;
	struct kl_status st;
	int rc;

	assert_non_null(name);
	memset(name, 'a', big);
	name[big] = '\0';
	assert_int_equal(kl_client_open("https://198.18.0.1:8443", NULL, &c, &st), 0);
	rq.vm = name;
	rc = kl_vim_power_on_vm(c, &rq, &task, &st);
	assert_int_equal(rc, -KL_RESOURCE_EXHAUSTED);
	assert_int_equal(st.code, KL_RESOURCE_EXHAUSTED);
	assert_int_equal(st.source, KL_SRC_CLIENT);
	assert_non_null(strstr(st.message, "PowerOnVm"));
	assert_null(task);
	/* kl_task_wait: the call's failure, and no task */
	rc = kl_task_wait(c, name, 1000, NULL, NULL, &final, &st);
	assert_int_equal(rc, -KL_RESOURCE_EXHAUSTED);
	assert_non_null(strstr(st.message, "WaitForTask"));
	assert_null(final);
	final = (Keel__Vim__Task *)&rq;
	rc = kl_task_wait(c, "", 1000, NULL, NULL, &final, &st);
	assert_int_equal(rc, -KL_INVALID_ARGUMENT);
	assert_int_equal(st.source, KL_SRC_CLIENT);
	assert_null(final);
	/* kl_watch without a callback */
	assert_int_equal(kl_watch(c, 0, NULL, NULL, &st), -KL_INVALID_ARGUMENT);
	kl_client_destroy(c);
	free(name);
}

static void test_cert_options(void **state)
{
	struct kl_client_opts o = {.key_file = "/nonexistent/client.key"};
	struct kl_client *c;
	struct kl_status st;
	Keel__Vim__Session *s = (Keel__Vim__Session *)&o;

	/* a key without a certificate */
	assert_int_equal(kl_client_open("https://198.18.0.1:8443", &o, &c, &st), -EINVAL);
	assert_null(c);
	assert_non_null(strstr(st.message, "certificate"));
	/* a certificate login without a certificate: refused before sending */
	o.key_file = NULL;
	assert_int_equal(kl_client_open("https://198.18.0.1:8443", &o, &c, &st), 0);
	assert_int_equal(kl_client_login_cert(c, &s, &st), -KL_INVALID_ARGUMENT);
	assert_null(s);
	assert_int_equal(st.source, KL_SRC_CLIENT);
	kl_client_destroy(c);
}

static void test_task_ended(void **state)
{
	Keel__Vim__Task t = KEEL__VIM__TASK__INIT;

	t.state = "queued";
	assert_false(kl_task_ended(&t));
	t.state = "running";
	assert_false(kl_task_ended(&t));
	t.state = "success";
	assert_true(kl_task_ended(&t));
	t.state = "error";
	assert_true(kl_task_ended(&t));
	t.state = "cancelled";
	assert_true(kl_task_ended(&t));
	assert_false(kl_task_ended(NULL));
}

/* A stream body of three Updates (the middle one empty: a 5-byte message). */
static size_t stream_body(uint8_t *out, size_t size)
{
	static const uint64_t versions[] = {7, 0, 1u << 30};
	size_t n = 0;

	for (size_t i = 0; i < 3; i++) {
		Keel__Vim__Update u = KEEL__VIM__UPDATE__INIT;
		size_t len;

		u.version = versions[i];
		len = protobuf_c_message_get_packed_size(&u.base);
		assert_true(n + KL__PREFIX_LEN + len <= size);
		kl__grpc_prefix(out + n, (uint32_t)len);
		protobuf_c_message_pack(&u.base, out + n + KL__PREFIX_LEN);
		n += KL__PREFIX_LEN + len;
	}
	return n;
}

/* Feeds body in two pieces cut at every byte (and then byte by byte) through a buffer as
 * keel_client.c keeps it: every message comes out once, whole, in order. */
static void test_stream_cut_everywhere(void **state)
{
	uint8_t body[256], buf[256];
	size_t len = stream_body(body, sizeof(body));

	for (size_t cut = 0; cut <= len + 1; cut++) {
		size_t have = 0, got = 0, fed = 0;
		uint64_t versions[3];

		while (fed < len) {
			size_t step = cut <= len ? (fed < cut ? cut - fed : len - fed) : 1;
			size_t off = 0, msg_len, used;
			const uint8_t *msg;
			int rv;

			if (step == 0)
				step = len - fed;
			memcpy(buf + have, body + fed, step);
			have += step;
			fed += step;
			while ((rv = kl__grpc_stream_next(buf + off, have - off, 1024, &msg,
							  &msg_len, &used)) == 0) {
				Keel__Vim__Update *u =
				    keel__vim__update__unpack(NULL, msg_len, msg);

				assert_non_null(u);
				assert_true(got < 3);
				versions[got++] = u->version;
				keel__vim__update__free_unpacked(u, NULL);
				off += used;
			}
			assert_int_equal(rv, -EAGAIN);
			memmove(buf, buf + off, have - off);
			have -= off;
		}
		assert_int_equal(got, 3);
		assert_int_equal(have, 0);
		assert_int_equal(versions[0], 7);
		assert_int_equal(versions[1], 0);
		assert_int_equal(versions[2], 1u << 30);
	}
}

static void test_stream_refusals(void **state)
{
	uint8_t b[16] = {0, 0, 0, 0, 3, 1, 2, 3};
	const uint8_t *msg;
	size_t msg_len, used;

	assert_int_equal(kl__grpc_stream_next(b, 0, 64, &msg, &msg_len, &used), -EAGAIN);
	assert_int_equal(kl__grpc_stream_next(b, 4, 64, &msg, &msg_len, &used), -EAGAIN);
	assert_int_equal(kl__grpc_stream_next(b, 7, 64, &msg, &msg_len, &used), -EAGAIN);
	assert_int_equal(kl__grpc_stream_next(b, 8, 64, &msg, &msg_len, &used), 0);
	assert_int_equal(msg_len, 3);
	assert_int_equal(used, 8);
	assert_ptr_equal(msg, b + 5);
	/* the limit is seen as soon as the prefix is complete */
	assert_int_equal(kl__grpc_stream_next(b, 5, 2, &msg, &msg_len, &used), -EMSGSIZE);
	b[0] = 1;
	assert_int_equal(kl__grpc_stream_next(b, 5, 64, &msg, &msg_len, &used), -ENOTSUP);
	b[0] = 0x80;
	assert_int_equal(kl__grpc_stream_next(b, 5, 64, &msg, &msg_len, &used), -EBADMSG);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_list_matches_service),
	    cmocka_unit_test(test_known_lines),
	    cmocka_unit_test(test_typed_call_refused),
	    cmocka_unit_test(test_cert_options),
	    cmocka_unit_test(test_task_ended),
	    cmocka_unit_test(test_stream_cut_everywhere),
	    cmocka_unit_test(test_stream_refusals),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
