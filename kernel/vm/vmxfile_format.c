/*
 * The .vmx text written back (vmk_vmx_format()), and the file I/O: vmk_vmx_load() and
 * vmk_vmx_save(). The format is documented in docs/vmx-file.md.
 *
 * Happy path: config.version, then the known keys in a fixed order (scalars, used disk
 * slots, used NIC slots), then the kept keys in their order, each `key = "value"` with
 * " and \\ escaped; parsing the text gives back the same struct. Loading reads a bounded
 * regular file (lib/file.h) into the parser; saving validates, formats and replaces the
 * file atomically (lib/file.h).
 *
 * Failure modes: text longer than VMK_VMX_FILE_MAX is refused (KB_ETOOBIG) and the output
 * buffer left as it was; an invalid struct is not written; a symlink, a non-regular or an
 * oversized file is not read; I/O errors come back as -errno; every message starts with
 * the path.
 */
#include <string.h>

#include "kernel/vm/vmxfile_internal.h"
#include "lib/file.h"

/* ---- format --------------------------------------------------------------------------- */

static int put_kv(struct kb_buf *b, const char *key, const char *v)
{
	int rc = kb_buf_append(b, key, strlen(key));

	if (rc == 0)
		rc = kb_buf_append(b, " = \"", 4);
	for (; rc == 0 && *v; v++) {
		if (*v == '"' || *v == '\\')
			rc = kb_buf_put_u8(b, '\\');
		if (rc == 0)
			rc = kb_buf_put_u8(b, (uint8_t)*v);
	}
	if (rc == 0)
		rc = kb_buf_append(b, "\"\n", 2);
	return rc;
}

static int put_field(struct kb_buf *b, const struct vmk_vmx *vmx, const struct fref *r, bool always)
{
	char v[VMK_VMX_CMDLINE_MAX + 2];

	if (!vmk__vmx_field_get(vmx, r, v, sizeof(v)) && !always)
		return 0;
	return put_kv(b, r->key, v);
}

int vmk_vmx_format(const struct vmk_vmx *vmx, struct kb_buf *out)
{
	size_t start = out->len;
	struct fref r;
	int rc = 0;

	for (int i = 0; rc == 0 && i < NSCALAR; i++) {
		vmk__vmx_ref_scalar(&r, i);
		rc = put_field(out, vmx, &r, false);
	}
	for (int s = 0; rc == 0 && s < VMK_VMX_DISKS; s++) {
		if (!vmk__vmx_disk_used(&vmx->disks[s]))
			continue;
		for (int f = 0; rc == 0 && f < NDISKF; f++) {
			vmk__vmx_ref_disk(&r, s, f);
			rc = put_field(out, vmx, &r, f == D_PRESENT);
		}
	}
	for (int s = 0; rc == 0 && s < VMK_VMX_NICS; s++) {
		if (!vmk__vmx_nic_used(&vmx->nics[s]))
			continue;
		for (int f = 0; rc == 0 && f < NNICF; f++) {
			vmk__vmx_ref_nic(&r, s, f);
			rc = put_field(out, vmx, &r, f == N_PRESENT);
		}
	}
	for (size_t i = 0; rc == 0 && i < vmx->n_extra; i++)
		rc = put_kv(out, vmx->extra[i].key, vmx->extra[i].value);
	if (rc == 0 && out->len - start > VMK_VMX_FILE_MAX)
		rc = KB_ETOOBIG;
	if (rc)
		out->len = start;
	return rc;
}

/* ---- files ---------------------------------------------------------------------------- */

int vmk_vmx_load(struct vmk_vmx *vmx, const char *path, struct kb_errmsg *err)
{
	struct kb_buf b;
	int rc;

	kb_buf_init(&b, 0);
	rc = kb_file_read_small(path, VMK_VMX_FILE_MAX, &b, err);
	if (rc)
		goto close_buf;
	rc = vmk_vmx_parse(vmx, b.data, b.len, err);
	if (rc)
		kb_errmsg_wrapf(err, "%s", path);
close_buf:
	kb_buf_close(&b);
	return rc;
}

int vmk_vmx_save(const struct vmk_vmx *vmx, const char *path, struct kb_errmsg *err)
{
	struct kb_buf b;
	int rc;

	rc = vmk__vmx_validate_all(vmx, NULL, err);
	if (rc) {
		kb_errmsg_wrapf(err, "%s", path);
		return rc;
	}
	kb_buf_init(&b, 0);
	rc = vmk_vmx_format(vmx, &b);
	if (rc) {
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rc));
		goto close_buf;
	}
	rc = kb_file_write_atomic(path, b.data, b.len, 0640, err);
close_buf:
	kb_buf_close(&b);
	return rc;
}
