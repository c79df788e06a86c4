/*
 * Tests for hostagent/methods.c: the method table holds every rpc of keel.vim.Vim exactly
 * once, with the input type protoc-c generated for it, in the .proto's order, and the
 * streaming flag the .proto text gives ("returns (stream X)"); lookups by name.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "hostagent/grpc.h"
#include "vim.pb-c.h"

static void test_table_matches_service(void **state)
{
	const ProtobufCServiceDescriptor *svc = &keel__vim__vim__descriptor;

	assert_int_equal(hd_vim_methods_count, svc->n_methods);
	for (unsigned i = 0; i < svc->n_methods; i++) {
		const struct hd_method *m =
		    hd_method_find(hd_vim_methods, hd_vim_methods_count, svc->methods[i].name);

		assert_non_null(m);
		assert_ptr_equal(m->input, svc->methods[i].input);
	}
	for (size_t i = 0; i < hd_vim_methods_count; i++)
		for (size_t j = i + 1; j < hd_vim_methods_count; j++)
			assert_string_not_equal(hd_vim_methods[i].name, hd_vim_methods[j].name);
}

static void test_streaming_flags(void **state)
{
	const char *top = getenv("KEEL_TOP");
	char path[4096], line[512], name[128];
	unsigned streaming = 0, seen = 0;
	FILE *f;

	snprintf(path, sizeof(path), "%s/proto/vim.proto", top ? top : ".");
	f = fopen(path, "r");
	if (!f)
		skip();
	while (fgets(line, sizeof(line), f)) {
		const char *rpc = strstr(line, "rpc ");
		const struct hd_method *m;

		if (!rpc || sscanf(rpc, "rpc %127[A-Za-z0-9_]", name) != 1)
			continue;
		m = hd_method_find(hd_vim_methods, hd_vim_methods_count, name);
		assert_non_null(m);
		assert_int_equal(m->server_streaming, strstr(line, "returns (stream ") != NULL);
		streaming += m->server_streaming;
		seen++;
	}
	fclose(f);
	assert_int_equal(seen, hd_vim_methods_count);
	assert_true(streaming >= 2); /* WaitForUpdates, Console */
}

static void test_find(void **state)
{
	assert_null(hd_method_find(hd_vim_methods, hd_vim_methods_count, "Echo"));
	assert_null(hd_method_find(hd_vim_methods, hd_vim_methods_count, "login"));
	assert_null(hd_method_find(hd_vim_methods, hd_vim_methods_count, ""));
	assert_string_equal(
	    hd_method_find(hd_vim_methods, hd_vim_methods_count, "RetrieveInventory")->name,
	    "RetrieveInventory");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_table_matches_service),
	    cmocka_unit_test(test_streaming_flags),
	    cmocka_unit_test(test_find),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
