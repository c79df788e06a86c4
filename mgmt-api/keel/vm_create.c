/*
 * `keel vm create NAME [options]` and `keel vm reconfigure VM [options]`: the options that
 * make a VmSpec (memory, vCPUs, guest kind and boot files, disks, NICs, datastore and
 * resource settings).
 *
 * Values are checked here so a typo is a usage error (exit 2) before anything reaches
 * vmkernel: sizes take MiB or a unit suffix, counts must be in range, MAC addresses must be
 * six hex pairs. Paths of boot files are made absolute, since vmkernel does not run in our
 * working directory. vmkernel checks the rest (does the portgroup exist, does the
 * reservation fit) and answers with an error otherwise.
 *
 * Through hostd's API (--server), create hands the spec to vm_api.c, which refuses what
 * the API's VmSpec cannot carry; --no-wait (API only) is not a setting.
 *
 * Reconfigure sends only what was given: per proto/vmk.proto, non-zero and non-empty
 * fields of the spec change, the rest stay.
 */
#include <limits.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

enum {
	O_MEMORY = 1,
	O_VCPUS,
	O_KIND,
	O_KERNEL,
	O_INITRD,
	O_CMDLINE,
	O_DISK,
	O_NIC,
	O_DATASTORE,
	O_CPU_SHARES,
	O_CPU_RES,
	O_CPU_LIMIT,
	O_MEM_RES,
	O_MEM_LIMIT,
};

#define SPEC_OPTS                                                                                  \
	{"memory", "MIB", "guest memory in MiB (or with a unit: 512M, 2G)", O_MEMORY, false},      \
	    {"vcpus", "N", "number of virtual CPUs (1-1024)", O_VCPUS, false},                     \
	    {"kind", "kguest|linux", "guest kind (default kguest)", O_KIND, false},                \
	    {"kernel", "PATH",                                                                     \
	     "guest kernel (linux: bzImage; kguest: default is the host's image)", O_KERNEL,       \
	     false},                                                                               \
	    {"initrd", "PATH", "initramfs for a linux guest", O_INITRD, false},                    \
	    {"cmdline", "STR", "kernel command line (kguest: its workload arguments)", O_CMDLINE,  \
	     false},                                                                               \
	    {"disk", "SIZE_MIB[:ro]", "add a disk of that size, read-only with :ro", O_DISK,       \
	     true},                                                                                \
	    {"nic", "PORTGROUP[:MAC]", "add a NIC on a portgroup (MAC generated if not given)",    \
	     O_NIC, true},                                                                         \
	    {"cpu-shares", "low|normal|high|N", "CPU shares (N: 1-1000000)", O_CPU_SHARES, false}, \
	    {"cpu-reservation", "MHZ", "guaranteed CPU, checked at power-on", O_CPU_RES, false},   \
	    {"cpu-limit", "MHZ", "CPU ceiling (0: unlimited)", O_CPU_LIMIT, false},                \
	    {"mem-reservation", "MIB", "guaranteed memory, checked at power-on", O_MEM_RES,        \
	     false},                                                                               \
	{                                                                                          \
		"mem-limit", "MIB", "memory ceiling (0: the VM's memory size)", O_MEM_LIMIT, false \
	}

static const struct kc_opt create_opts[] = {
    SPEC_OPTS,
    {"datastore", "NAME", "datastore for the VM's directory (default: the host's default)",
     O_DATASTORE, false},
    KC_OPT_NO_WAIT,
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt reconfigure_opts[] = {
    SPEC_OPTS,
    {NULL, NULL, NULL, 0, false},
};

/* Storage behind a VmSpec built from the command line. */
struct spec_store {
	Keel__Vmk__Resources res;
	Keel__Vmk__DiskSpec disks[KC_MAX_OPTS];
	Keel__Vmk__DiskSpec *disk_ptrs[KC_MAX_OPTS];
	Keel__Vmk__NicSpec nics[KC_MAX_OPTS];
	Keel__Vmk__NicSpec *nic_ptrs[KC_MAX_OPTS];
	char portgroups[KC_MAX_OPTS][256];
	char kernel[PATH_MAX], initrd[PATH_MAX];
};

static int add_disk(struct kc_ctx *ctx, const struct kc_call *call, const char *v,
		    Keel__Vmk__VmSpec *spec, struct spec_store *st)
{
	Keel__Vmk__DiskSpec *d = &st->disks[spec->n_disks];
	const char *colon = strchr(v, ':');
	char size[32];
	uint64_t mib;

	snprintf(size, sizeof(size), "%.*s", colon ? (int)(colon - v) : (int)strlen(v), v);
	keel__vmk__disk_spec__init(d);
	if (kc_parse_mib(size, 1, 16ull << 20, &mib) != 0)
		return kc_usage(ctx, call, "bad --disk '%s': want SIZE_MIB[:ro], 1 MiB to 16 TiB",
				v);
	if (colon && strcmp(colon + 1, "ro") != 0 && strcmp(colon + 1, "rw") != 0)
		return kc_usage(ctx, call, "bad --disk '%s': the suffix may be :ro or :rw", v);
	d->size_mib = mib;
	d->read_only = colon && strcmp(colon + 1, "ro") == 0;
	st->disk_ptrs[spec->n_disks++] = d;
	spec->disks = st->disk_ptrs;
	return KC_EXIT_OK;
}

static int add_nic(struct kc_ctx *ctx, const struct kc_call *call, const char *v,
		   Keel__Vmk__VmSpec *spec, struct spec_store *st)
{
	size_t i = spec->n_nics;
	Keel__Vmk__NicSpec *n = &st->nics[i];
	const char *colon = strchr(v, ':');
	size_t len = colon ? (size_t)(colon - v) : strlen(v);

	keel__vmk__nic_spec__init(n);
	if (len == 0 || len >= sizeof(st->portgroups[i]))
		return kc_usage(ctx, call, "bad --nic '%s': want PORTGROUP[:MAC]", v);
	if (colon && !kc_valid_mac(colon + 1))
		return kc_usage(ctx, call, "bad MAC address in --nic '%s': want xx:xx:xx:xx:xx:xx",
				v);
	memcpy(st->portgroups[i], v, len);
	st->portgroups[i][len] = '\0';
	n->portgroup = st->portgroups[i];
	if (colon)
		n->mac = (char *)colon + 1;
	st->nic_ptrs[spec->n_nics++] = n;
	spec->nics = st->nic_ptrs;
	return KC_EXIT_OK;
}

static int bad(struct kc_ctx *ctx, const struct kc_call *call, const char *opt, const char *v,
	       const char *want)
{
	return kc_usage(ctx, call, "bad --%s '%s': want %s", opt, v, want);
}

/* Applies one option to spec. KC_EXIT_OK or KC_EXIT_USAGE (reported). */
static int apply(struct kc_ctx *ctx, const struct kc_call *call, const struct kc_call_opt *o,
		 Keel__Vmk__VmSpec *spec, struct spec_store *st)
{
	const char *v = o->val;
	uint64_t mib;
	uint32_t n;

	switch (o->id) {
	case KC_O_NO_WAIT: /* not a setting (create through the API only) */
		return KC_EXIT_OK;
	case O_MEMORY:
		if (kc_parse_mib(v, 1, 1u << 20, &mib))
			return bad(ctx, call, "memory", v, "MiB from 1 to 1048576, or 512M, 2G");
		spec->memsize_mib = (uint32_t)mib;
		return KC_EXIT_OK;
	case O_VCPUS:
		if (kc_parse_u32(v, 1, 1024, &spec->numvcpus))
			return bad(ctx, call, "vcpus", v, "a number from 1 to 1024");
		return KC_EXIT_OK;
	case O_KIND:
		if (strcmp(v, "kguest") != 0 && strcmp(v, "linux") != 0)
			return bad(ctx, call, "kind", v, "kguest or linux");
		spec->guest_kind = (char *)v;
		return KC_EXIT_OK;
	case O_KERNEL:
	case O_INITRD: {
		char *dst = o->id == O_KERNEL ? st->kernel : st->initrd;

		if (v[0] == '\0' || kc_abs_path(v, dst, PATH_MAX) != 0)
			return bad(ctx, call, o->id == O_KERNEL ? "kernel" : "initrd", v, "a path");
		if (o->id == O_KERNEL)
			spec->kernel = dst;
		else
			spec->initrd = dst;
		return KC_EXIT_OK;
	}
	case O_CMDLINE:
		spec->cmdline = (char *)v;
		return KC_EXIT_OK;
	case O_DISK:
		return add_disk(ctx, call, v, spec, st);
	case O_NIC:
		return add_nic(ctx, call, v, spec, st);
	case O_DATASTORE:
		spec->datastore = (char *)v;
		return KC_EXIT_OK;
	case O_CPU_SHARES:
		if (strcmp(v, "low") != 0 && strcmp(v, "normal") != 0 && strcmp(v, "high") != 0 &&
		    kc_parse_u32(v, 1, 1000000, &n) != 0)
			return bad(ctx, call, "cpu-shares", v, "low, normal, high or 1-1000000");
		st->res.cpu_shares = (char *)v;
		break;
	case O_CPU_RES:
	case O_CPU_LIMIT:
		if (kc_parse_u32(v, 0, UINT32_MAX, &n))
			return bad(ctx, call, o->id == O_CPU_RES ? "cpu-reservation" : "cpu-limit",
				   v, "MHz");
		if (o->id == O_CPU_RES)
			st->res.cpu_reservation_mhz = n;
		else
			st->res.cpu_limit_mhz = n;
		break;
	case O_MEM_RES:
	case O_MEM_LIMIT:
		if (kc_parse_mib(v, 0, UINT32_MAX, &mib))
			return bad(ctx, call, o->id == O_MEM_RES ? "mem-reservation" : "mem-limit",
				   v, "MiB, or 512M, 2G");
		if (o->id == O_MEM_RES)
			st->res.mem_reservation_mib = (uint32_t)mib;
		else
			st->res.mem_limit_mib = (uint32_t)mib;
		break;
	}
	spec->resources = &st->res; /* one of the resource settings was given */
	return KC_EXIT_OK;
}

static int build_spec(struct kc_ctx *ctx, const struct kc_call *call, Keel__Vmk__VmSpec *spec,
		      struct spec_store *st)
{
	keel__vmk__vm_spec__init(spec);
	keel__vmk__resources__init(&st->res);
	for (int i = 0; i < call->nopts; i++) {
		int rc = apply(ctx, call, &call->opts[i], spec, st);

		if (rc)
			return rc;
	}
	return KC_EXIT_OK;
}

static int create_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmCreate create = KEEL__VMK__VMK_VM_CREATE__INIT;
	Keel__Vmk__VmSpec spec;
	struct spec_store st;
	Keel__Vmk__VmkReply *rp;
	char name[256];
	int rc;

	if (call->pos[0][0] == '\0')
		return kc_usage(ctx, call, "the VM name is empty");
	rc = build_spec(ctx, call, &spec, &st);
	if (rc)
		return rc;
	spec.name = (char *)call->pos[0];
	if (kc_api_wanted(ctx))
		return kc_vm_api_create(ctx, call, &spec);
	if (kc_has(call, KC_O_NO_WAIT))
		return kc_usage(ctx, call, "--no-wait works through hostd's API only (--server)");
	if (strcmp(spec.guest_kind, "linux") == 0 && spec.kernel[0] == '\0')
		return kc_usage(ctx, call, "a linux guest needs --kernel");
	create.spec = &spec;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_CREATE;
	req.vm_create = &create;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_VMS);
	} else if (rp->n_vms > 0) {
		const Keel__Vmk__VmInfo *vm = rp->vms[0];

		printf("Created VM %s (uuid %s) on datastore %s.\n",
		       kc_clean(vm->name, name, sizeof(name)), vm->uuid, vm->datastore);
		kc_kv(stdout, "Config file", "%s", vm->vmx_path);
	} else {
		printf("Created VM %s.\n", kc_clean(spec.name, name, sizeof(name)));
	}
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

static int reconfigure_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmReconfigure rec = KEEL__VMK__VMK_VM_RECONFIGURE__INIT;
	Keel__Vmk__VmSpec spec;
	struct spec_store st;
	Keel__Vmk__VmkReply *rp;
	char name[256];
	int rc;

	if (call->nopts == 0)
		return kc_usage(ctx, call, "nothing to change: give at least one option");
	rc = build_spec(ctx, call, &spec, &st);
	if (rc)
		return rc;
	rec.vm = (char *)call->pos[0];
	rec.spec = &spec;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_RECONFIGURE;
	req.vm_reconfigure = &rec;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json)
		kc_reply_json(rp, KC_R_VMS);
	else
		printf("Reconfigured VM %s.\n",
		       kc_clean(rp->n_vms ? rp->vms[0]->name : rec.vm, name, sizeof(name)));
	kc_reply_free(rp);
	return KC_EXIT_OK;
}

const struct kc_cmd kc_vm_create_cmd = {
    .name = "create",
    .args = "NAME",
    .summary = "Create a VM: its directory, .vmx file and disks on a datastore.",
    .detail = "Settings not given take vmkernel's defaults. The VM is created powered off.\n"
	      "Through hostd's API (--server) the creation is a task (--no-wait: print its id);\n"
	      "the API's VmSpec carries --memory, --vcpus, --kind, --cmdline, --disk (not :ro),\n"
	      "--nic (no MAC) and --datastore; the other options are refused there.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = create_opts,
    .run = create_run,
    .api = true,
};

const struct kc_cmd kc_vm_reconfigure_cmd = {
    .name = "reconfigure",
    .args = "VM",
    .summary = "Change the configuration of a powered-off VM.",
    .detail = "Only the settings given change. --disk and --nic give the VM's new list of\n"
	      "disks and NICs.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = reconfigure_opts,
    .run = reconfigure_run,
};
