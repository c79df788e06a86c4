/*
 * Conversions between struct vmk_vmx and the control protocol's Keel__Vmk__VmSpec: a new
 * configuration from a create request (vmk_vmx_from_spec()), a reconfigure request applied
 * to an existing one (vmk_vmx_apply_reconfigure()), and a spec for a reply
 * (vmk_vmx_to_spec()).
 *
 * Happy path: every string from a spec goes through the same per-key checkers as a file
 * (vmxfile_keys.c), numbers through the same range checks; the result is completed (uuid,
 * MACs) and validated as a whole before it replaces anything.
 *
 * Failure modes: a spec is untrusted; a bad field is refused with KB_ECONFIG naming the
 * key, too many disks or NICs likewise. Both builders work on a copy, so on error the
 * caller's struct is unchanged. -ENOMEM from allocation, -errno when no random bytes can
 * be had for a MAC.
 */
#include <errno.h>
#include <string.h>

#include "kernel/vm/vmxfile_internal.h"
#include "lib/heap.h"

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

static int spec_set(struct vmk_vmx *vmx, const struct fref *r, const char *v, struct kb_errmsg *err)
{
	struct where w = {err, 0, r->key};

	return vmk__vmx_field_set(vmx, r, str_or_empty(v), &w);
}

static int spec_disks(struct vmk_vmx *vmx, const Keel__Vmk__VmSpec *spec, struct kb_errmsg *err)
{
	struct fref r;
	int rc;

	if (spec->n_disks > VMK_VMX_DISKS) {
		kb_errmsg_setf(err, "disks: %zu given, at most %d", spec->n_disks, VMK_VMX_DISKS);
		return KB_ECONFIG;
	}
	memset(vmx->disks, 0, sizeof(vmx->disks));
	for (size_t i = 0; i < spec->n_disks; i++) {
		const Keel__Vmk__DiskSpec *d = spec->disks[i];
		vmk__vmx_ref_disk(&r, (int)i, D_FILE);
		if (d == NULL || str_or_empty(d->file)[0] == 0)
			return vmk__vmx_missing(err, r.key, "");
		rc = spec_set(vmx, &r, d->file, err);
		if (rc)
			return rc;
		vmx->disks[i].present = true;
		vmx->disks[i].read_only = d->read_only;
	}
	return 0;
}

/* old: the NICs before (reconfigure) or NULL (create). */
static int spec_nics(struct vmk_vmx *vmx, const Keel__Vmk__VmSpec *spec,
		     const struct vmk_vmx_nic *old, struct kb_errmsg *err)
{
	struct fref r;
	int rc;

	if (spec->n_nics > VMK_VMX_NICS) {
		kb_errmsg_setf(err, "nics: %zu given, at most %d", spec->n_nics, VMK_VMX_NICS);
		return KB_ECONFIG;
	}
	memset(vmx->nics, 0, sizeof(vmx->nics));
	for (size_t i = 0; i < spec->n_nics; i++) {
		const Keel__Vmk__NicSpec *n = spec->nics[i];
		vmk__vmx_ref_nic(&r, (int)i, N_PORTGROUP);
		if (n == NULL || str_or_empty(n->portgroup)[0] == 0)
			return vmk__vmx_missing(err, r.key, "");
		rc = spec_set(vmx, &r, n->portgroup, err);
		if (rc)
			return rc;
		vmk__vmx_ref_nic(&r, (int)i, N_MAC);
		rc = spec_set(vmx, &r, n->mac, err);
		if (rc)
			return rc;
		if (!vmx->nics[i].mac[0] && old && old[i].mac[0])
			memcpy(vmx->nics[i].mac, old[i].mac, sizeof(old[i].mac));
		vmx->nics[i].present = true;
	}
	return 0;
}

/* Applies the non-zero, non-empty fields of spec to vmx. old_nics: see spec_nics(). */
static int spec_apply(struct vmk_vmx *vmx, const Keel__Vmk__VmSpec *spec,
		      const struct vmk_vmx_nic *old_nics, struct kb_errmsg *err)
{
	static const int str_ids[] = {S_NAME, S_KIND, S_KERNEL, S_INITRD, S_CMDLINE};
	const char *strs[] = {spec->name, spec->guest_kind, spec->kernel, spec->initrd,
			      spec->cmdline};
	const Keel__Vmk__Resources *res = spec->resources;
	struct where w = {err, 0, NULL};
	struct fref r;
	int rc;

	for (size_t i = 0; i < sizeof(str_ids) / sizeof(str_ids[0]); i++) {
		if (str_or_empty(strs[i])[0] == 0)
			continue;
		vmk__vmx_ref_scalar(&r, str_ids[i]);
		if ((rc = spec_set(vmx, &r, strs[i], err)) != 0)
			return rc;
	}
	if (spec->memsize_mib) {
		vmk__vmx_ref_scalar(&r, S_MEMSIZE);
		w.key = r.key;
		if ((rc = vmk__vmx_field_set_u32(vmx, &r, spec->memsize_mib, &w)) != 0)
			return rc;
	}
	if (spec->numvcpus) {
		vmk__vmx_ref_scalar(&r, S_VCPUS);
		w.key = r.key;
		if ((rc = vmk__vmx_field_set_u32(vmx, &r, spec->numvcpus, &w)) != 0)
			return rc;
	}
	if (res) {
		const uint32_t nums[] = {res->cpu_reservation_mhz, res->cpu_limit_mhz,
					 res->mem_reservation_mib, res->mem_limit_mib};
		static const int num_ids[] = {S_CPU_MIN, S_CPU_MAX, S_MEM_MIN, S_MEM_MAX};

		if (str_or_empty(res->cpu_shares)[0]) {
			vmk__vmx_ref_scalar(&r, S_SHARES);
			if ((rc = spec_set(vmx, &r, res->cpu_shares, err)) != 0)
				return rc;
		}
		for (int i = 0; i < 4; i++) {
			if (!nums[i])
				continue;
			vmk__vmx_ref_scalar(&r, num_ids[i]);
			w.key = r.key;
			if ((rc = vmk__vmx_field_set_u32(vmx, &r, nums[i], &w)) != 0)
				return rc;
		}
	}
	if (spec->n_disks && (rc = spec_disks(vmx, spec, err)) != 0)
		return rc;
	if (spec->n_nics && (rc = spec_nics(vmx, spec, old_nics, err)) != 0)
		return rc;
	return 0;
}

int vmk_vmx_from_spec(struct vmk_vmx *vmx, const Keel__Vmk__VmSpec *spec, struct kb_errmsg *err)
{
	struct vmk_vmx *tmp;
	int rc;

	tmp = kb_malloc(sizeof(*tmp));
	if (tmp == NULL) {
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	vmk_vmx_init(tmp);
	tmp->memsize_mib = VMK_VMX_DEFAULT_MEMSIZE;
	tmp->numvcpus = 1;
	tmp->guest_kind = VMK_GUEST_KGUEST;
	rc = spec_apply(tmp, spec, NULL, err);
	if (rc)
		goto free_tmp;
	rc = vmk_vmx_complete(tmp, NULL);
	if (rc) {
		kb_errmsg_setf(err, "generating uuid and MACs: %s", kb_strerror(rc));
		goto free_tmp;
	}
	rc = vmk__vmx_validate_all(tmp, NULL, err);
	if (rc)
		goto free_tmp;
	*vmx = *tmp;
free_tmp:
	kb_free(tmp); /* no kept keys: nothing else to free */
	return rc;
}

int vmk_vmx_apply_reconfigure(struct vmk_vmx *vmx, const Keel__Vmk__VmSpec *spec,
			      struct kb_errmsg *err)
{
	struct vmk_vmx *tmp;
	int rc;

	tmp = kb_malloc(sizeof(*tmp));
	if (tmp == NULL) {
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	*tmp = *vmx; /* shares the kept keys, which reconfigure never touches */
	rc = spec_apply(tmp, spec, vmx->nics, err);
	if (rc)
		goto free_tmp;
	rc = vmk_vmx_complete(tmp, NULL);
	if (rc) {
		kb_errmsg_setf(err, "generating MACs: %s", kb_strerror(rc));
		goto free_tmp;
	}
	rc = vmk__vmx_validate_all(tmp, NULL, err);
	if (rc)
		goto free_tmp;
	*vmx = *tmp;
free_tmp:
	kb_free(tmp);
	return rc;
}

static void free_str(char *s)
{
	if (s != NULL && s != (char *)protobuf_c_empty_string)
		kb_free(s);
}

void vmk_vmx_spec_free(Keel__Vmk__VmSpec *spec)
{
	if (spec == NULL)
		return;
	free_str(spec->name);
	free_str(spec->guest_kind);
	free_str(spec->kernel);
	free_str(spec->initrd);
	free_str(spec->cmdline);
	free_str(spec->datastore);
	for (size_t i = 0; i < spec->n_disks; i++) {
		free_str(spec->disks[i]->file);
		kb_free(spec->disks[i]);
	}
	kb_free(spec->disks);
	for (size_t i = 0; i < spec->n_nics; i++) {
		free_str(spec->nics[i]->portgroup);
		free_str(spec->nics[i]->mac);
		kb_free(spec->nics[i]);
	}
	kb_free(spec->nics);
	if (spec->resources)
		free_str(spec->resources->cpu_shares);
	kb_free(spec->resources);
	kb_free(spec);
}

static int dup_str(char **dst, const char *src)
{
	char *s = kb_strdup(src);

	if (s == NULL)
		return -ENOMEM;
	*dst = s;
	return 0;
}

int vmk_vmx_to_spec(const struct vmk_vmx *vmx, Keel__Vmk__VmSpec **out)
{
	static const Keel__Vmk__VmSpec spec_init = KEEL__VMK__VM_SPEC__INIT;
	static const Keel__Vmk__Resources res_init = KEEL__VMK__RESOURCES__INIT;
	static const Keel__Vmk__DiskSpec disk_init = KEEL__VMK__DISK_SPEC__INIT;
	static const Keel__Vmk__NicSpec nic_init = KEEL__VMK__NIC_SPEC__INIT;
	Keel__Vmk__VmSpec *s;
	int rc = -ENOMEM;

	s = kb_malloc(sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	*s = spec_init;
	s->memsize_mib = vmx->memsize_mib;
	s->numvcpus = vmx->numvcpus;
	if (dup_str(&s->name, vmx->name) ||
	    dup_str(&s->guest_kind, vmk_guest_kind_name(vmx->guest_kind)) ||
	    dup_str(&s->kernel, vmx->kernel) || dup_str(&s->initrd, vmx->initrd) ||
	    dup_str(&s->cmdline, vmx->cmdline))
		goto free_spec;
	s->resources = kb_malloc(sizeof(*s->resources));
	if (s->resources == NULL)
		goto free_spec;
	*s->resources = res_init;
	s->resources->cpu_reservation_mhz = vmx->res.cpu_min_mhz;
	s->resources->cpu_limit_mhz = vmx->res.cpu_max_mhz;
	s->resources->mem_reservation_mib = vmx->res.mem_min_mib;
	s->resources->mem_limit_mib = vmx->res.mem_max_mib;
	if (dup_str(&s->resources->cpu_shares, vmx->res.cpu_shares))
		goto free_spec;

	s->disks = kb_calloc(VMK_VMX_DISKS, sizeof(*s->disks));
	s->nics = kb_calloc(VMK_VMX_NICS, sizeof(*s->nics));
	if (s->disks == NULL || s->nics == NULL)
		goto free_spec;
	for (int i = 0; i < VMK_VMX_DISKS; i++) {
		Keel__Vmk__DiskSpec *d;
		if (!vmx->disks[i].present)
			continue;
		d = kb_malloc(sizeof(*d));
		if (d == NULL)
			goto free_spec;
		*d = disk_init;
		s->disks[s->n_disks++] = d;
		d->read_only = vmx->disks[i].read_only;
		if (dup_str(&d->file, vmx->disks[i].file))
			goto free_spec;
	}
	for (int i = 0; i < VMK_VMX_NICS; i++) {
		Keel__Vmk__NicSpec *n;
		if (!vmx->nics[i].present)
			continue;
		n = kb_malloc(sizeof(*n));
		if (n == NULL)
			goto free_spec;
		*n = nic_init;
		s->nics[s->n_nics++] = n;
		if (dup_str(&n->portgroup, vmx->nics[i].portgroup) ||
		    dup_str(&n->mac, vmx->nics[i].mac))
			goto free_spec;
	}
	*out = s;
	return 0;

free_spec:
	vmk_vmx_spec_free(s);
	return rc;
}
