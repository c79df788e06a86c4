/*
 * Helpers shared by the vmxfile tests: a file with every known key, parsing and formatting
 * that fail the test on error, and comparisons.
 */
#ifndef TEST_VMXFILE_HELPERS_H
#define TEST_VMXFILE_HELPERS_H

#include "kernel/vm/vmxfile.h"

/* The required keys of a minimal valid file (four lines). */
#define HEAD "displayName = \"v\"\nmemsize = \"64\"\nnumvcpus = \"1\"\nguest.kind = \"kguest\"\n"

/* A VM with everything: every known key, kept keys, odd spacing and case, CRLF. */
extern const char vx_full_vmx[];

/* Parses text into vmx; fails the test with the error on a refusal. */
void vx_parse_ok(struct vmk_vmx *vmx, const char *text);
/* Every field of a and b, kept keys in order, is equal. */
void vx_assert_vmx_equal(const struct vmk_vmx *a, const struct vmk_vmx *b);
/* Formats into a NUL-terminated heap string the caller frees with kb_free(). */
char *vx_format_str(const struct vmk_vmx *vmx);
/* u is a lower-case version 4 UUID. */
void vx_assert_uuid_v4(const char *u);

#endif
