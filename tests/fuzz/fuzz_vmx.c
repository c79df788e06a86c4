/*
 * Fuzz target: the .vmx decoder (vmk_vmx_parse, kernel/vm/vmxfile_parse.c) on arbitrary
 * bytes. A refused input must come with a message and leave the output struct untouched.
 * An accepted one must pass vmk_vmx_validate() and format, and the formatted text must
 * parse again and format to the same text: what vmkernel writes back, it reads back. Text
 * that formats past the file size limit (KB_ETOOBIG) is the one allowed way out, as
 * vmk_vmx_format() documents.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/vm/vmxfile.h"
#include "lib/buf.h"
#include "lib/err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fail(const char *what, const struct kb_errmsg *err, int rc)
{
	fprintf(stderr, "fuzz_vmx: %s (%d: %s)\n", what, rc, err ? err->msg : "");
	abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kb_errmsg err = {{0}};
	struct vmk_vmx a, b;
	struct kb_buf ta, tb;
	int rc;

	memset(&a, 0xa5, sizeof(a));
	rc = vmk_vmx_parse(&a, data, size, &err);
	if (rc != 0) {
		if (err.msg[0] == '\0')
			fail("a refused file gave no message", NULL, rc);
		if (((const uint8_t *)&a)[sizeof(a) / 2] != 0xa5)
			fail("a refused file changed the output", &err, rc);
		return 0;
	}
	rc = vmk_vmx_validate(&a, &err);
	if (rc != 0)
		fail("an accepted file does not validate", &err, rc);
	kb_buf_init(&ta, 0);
	kb_buf_init(&tb, 0);
	rc = vmk_vmx_format(&a, &ta);
	if (rc == KB_ETOOBIG)
		goto close_a;
	if (rc != 0)
		fail("an accepted file does not format", NULL, rc);
	rc = vmk_vmx_parse(&b, ta.data, ta.len, &err);
	if (rc != 0) {
		fwrite(ta.data, 1, ta.len, stderr);
		fail("formatted text does not parse", &err, rc);
	}
	rc = vmk_vmx_format(&b, &tb);
	if (rc != 0)
		fail("re-parsed text does not format", NULL, rc);
	if (ta.len != tb.len || memcmp(ta.data, tb.data, ta.len) != 0) {
		fwrite(ta.data, 1, ta.len, stderr);
		fprintf(stderr, "----\n");
		fwrite(tb.data, 1, tb.len, stderr);
		fail("formatted text differs after a round trip", NULL, 0);
	}
	vmk_vmx_close(&b);
close_a:
	vmk_vmx_close(&a);
	kb_buf_close(&ta);
	kb_buf_close(&tb);
	return 0;
}
