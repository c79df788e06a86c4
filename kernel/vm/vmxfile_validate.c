/*
 * The rules over a whole struct vmk_vmx (vmk_vmx_validate()), also the last step of the
 * parser, of building a struct from a spec and of reconfiguring one.
 *
 * Happy path: every stored field is re-checked with the per-key checkers (strings may have
 * been set by hand), then the rules between fields: required keys, reservations within
 * memsize and below limits, present disks and NICs complete, no disk file or MAC used
 * twice; outside the parser, also that every kept key would read back once written.
 *
 * Failure modes: the first broken rule is returned (KB_ECONFIG, KB_ETOOBIG for a kept key
 * whose line would be too long) with a message naming the key, and the line it was read
 * from when the parser asks.
 */
#include <string.h>

#include "kernel/vm/vmxfile_internal.h"

/* Re-checks one stored field (strings may have been set by hand). */
static int recheck(const struct vmk_vmx *vmx, const struct fref *r, const unsigned *lines,
		   struct kb_errmsg *err)
{
	struct where w = {err, lines ? lines[r->id] : 0, r->key};
	char v[VMK_VMX_CMDLINE_MAX + 2];

	if (r->f->size && strnlen(vmk__vmx_ref_ptr(vmx, r), r->f->size) == r->f->size)
		return vmk__vmx_bad(&w, KB_ECONFIG, "value is not terminated");
	if (r->f->type == FT_KIND &&
	    *(const enum vmk_guest_kind *)vmk__vmx_ref_ptr(vmx, r) > VMK_GUEST_LINUX)
		return vmk__vmx_bad(&w, KB_ECONFIG, "unknown guest kind %d",
				    (int)*(const enum vmk_guest_kind *)vmk__vmx_ref_ptr(vmx, r));
	if (!vmk__vmx_field_get(vmx, r, v, sizeof(v)) || r->f->type == FT_BOOL)
		return 0;
	return vmk__vmx_field_set(NULL, r, v, &w);
}

/* Kept keys come from the parser; this catches ones that would not read back once written
 * (changed by hand, or a line that formatting makes too long). */
static int check_extra(const struct vmk_vmx *vmx, struct kb_errmsg *err)
{
	for (size_t i = 0; i < vmx->n_extra; i++) {
		const char *k = vmx->extra[i].key, *why = NULL;
		struct where w = {err, 0, k};
		size_t n = strlen(k);
		struct fref r;
		int rc;

		for (size_t j = 0; j < n; j++)
			if (!vmk__vmx_key_char((unsigned char)k[j]))
				n = 0;
		if (n == 0 || n > VMK_VMX_KEY_MAX || vmk__vmx_lookup_key(k, &r, &why) != 0)
			return vmk__vmx_bad(&w, KB_ECONFIG, "not a valid kept key");
		rc = vmk__vmx_check_text(&w, vmx->extra[i].value, VMK_VMX_LINE_MAX);
		if (rc)
			return rc;
		n += sizeof(" = \"\"") - 1;
		for (const char *v = vmx->extra[i].value; *v; v++)
			n += *v == '"' || *v == '\\' ? 2 : 1;
		if (n > VMK_VMX_LINE_MAX)
			return vmk__vmx_bad(&w, KB_ETOOBIG, "line would be longer than %d bytes",
					    VMK_VMX_LINE_MAX);
	}
	return 0;
}

int vmk__vmx_missing(struct kb_errmsg *err, const char *key, const char *extra)
{
	kb_errmsg_setf(err, "%s: missing%s", key, extra);
	return KB_ECONFIG;
}

/* lines: where each field was read (parser), or NULL. */
int vmk__vmx_validate_all(const struct vmk_vmx *vmx, const unsigned *lines, struct kb_errmsg *err)
{
	const struct vmk_vmx_res *res = &vmx->res;
	struct fref r, r2;
	struct where w;
	int rc;

	for (int i = 0; i < NSCALAR; i++) {
		vmk__vmx_ref_scalar(&r, i);
		if ((rc = recheck(vmx, &r, lines, err)) != 0)
			return rc;
	}
	for (int s = 0; s < VMK_VMX_DISKS; s++) {
		for (int f = 0; f < NDISKF; f++) {
			vmk__vmx_ref_disk(&r, s, f);
			if ((rc = recheck(vmx, &r, lines, err)) != 0)
				return rc;
		}
	}
	for (int s = 0; s < VMK_VMX_NICS; s++) {
		for (int f = 0; f < NNICF; f++) {
			vmk__vmx_ref_nic(&r, s, f);
			if ((rc = recheck(vmx, &r, lines, err)) != 0)
				return rc;
		}
	}
	if (!vmx->name[0])
		return vmk__vmx_missing(err, "displayName", "");
	if (!vmx->memsize_mib)
		return vmk__vmx_missing(err, "memsize", "");
	if (!vmx->numvcpus)
		return vmk__vmx_missing(err, "numvcpus", "");
	if (vmx->guest_kind == VMK_GUEST_NONE)
		return vmk__vmx_missing(err, "guest.kind", "");
	if (vmx->guest_kind == VMK_GUEST_LINUX && !vmx->kernel[0])
		return vmk__vmx_missing(err, "guest.kernel",
					" (required when guest.kind is \"linux\")");

	vmk__vmx_ref_scalar(&r, S_MEM_MIN);
	w = (struct where){err, lines ? lines[r.id] : 0, r.key};
	if (res->mem_min_mib > vmx->memsize_mib)
		return vmk__vmx_bad(&w, KB_ECONFIG, "reservation %u MiB exceeds memsize %u MiB",
				    res->mem_min_mib, vmx->memsize_mib);
	vmk__vmx_ref_scalar(&r, S_MEM_MAX);
	w = (struct where){err, lines ? lines[r.id] : 0, r.key};
	if (res->mem_max_mib && res->mem_max_mib < res->mem_min_mib)
		return vmk__vmx_bad(&w, KB_ECONFIG, "limit %u MiB is below the reservation %u MiB",
				    res->mem_max_mib, res->mem_min_mib);
	vmk__vmx_ref_scalar(&r, S_CPU_MAX);
	w = (struct where){err, lines ? lines[r.id] : 0, r.key};
	if (res->cpu_max_mhz && res->cpu_max_mhz < res->cpu_min_mhz)
		return vmk__vmx_bad(&w, KB_ECONFIG, "limit %u MHz is below the reservation %u MHz",
				    res->cpu_max_mhz, res->cpu_min_mhz);

	for (int s = 0; s < VMK_VMX_DISKS; s++) {
		const struct vmk_vmx_disk *d = &vmx->disks[s];
		vmk__vmx_ref_disk(&r, s, D_FILE);
		if (d->present && !d->file[0])
			return vmk__vmx_missing(err, r.key, " (disk is present)");
		for (int t = 0; t < s && d->file[0]; t++) {
			if (!vmk__vmx_disk_used(&vmx->disks[t]) ||
			    strcmp(vmx->disks[t].file, d->file) != 0)
				continue;
			vmk__vmx_ref_disk(&r2, t, D_FILE);
			w = (struct where){err, lines ? lines[r.id] : 0, r.key};
			return vmk__vmx_bad(&w, KB_ECONFIG, "\"%s\" is already %s", d->file,
					    r2.key);
		}
	}
	for (int s = 0; s < VMK_VMX_NICS; s++) {
		const struct vmk_vmx_nic *n = &vmx->nics[s];
		vmk__vmx_ref_nic(&r, s, N_PORTGROUP);
		if (n->present && !n->portgroup[0])
			return vmk__vmx_missing(err, r.key, " (NIC is present)");
		vmk__vmx_ref_nic(&r, s, N_MAC);
		for (int t = 0; t < s && n->mac[0]; t++) {
			if (strcmp(vmx->nics[t].mac, n->mac) != 0)
				continue;
			vmk__vmx_ref_nic(&r2, t, N_MAC);
			w = (struct where){err, lines ? lines[r.id] : 0, r.key};
			return vmk__vmx_bad(&w, KB_ECONFIG, "%s is already %s", n->mac, r2.key);
		}
	}
	if (lines == NULL)
		return check_extra(vmx, err);
	return 0;
}

int vmk_vmx_validate(const struct vmk_vmx *vmx, struct kb_errmsg *err)
{
	return vmk__vmx_validate_all(vmx, NULL, err);
}
