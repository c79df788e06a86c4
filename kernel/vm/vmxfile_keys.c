/*
 * The .vmx key table and the per-key checkers: the one place every value is vetted. The
 * parser hands each known key here, control-socket specs set fields through the same
 * functions, and vmk_vmx_validate() re-checks every stored field with them, so a value
 * passes the same rules whichever way it arrives. The keys are documented in
 * docs/vmx-file.md.
 *
 * Happy path: a key resolves (case-insensitively) to a scalar, diskN.* or ethernetN.* field;
 * vmk__vmx_field_set() checks the text for that field's type (length, control characters,
 * UTF-8, then the type's own form and range) and stores it in canonical form (lower-case
 * uuid, MAC and shares); vmk__vmx_field_get() gives back the text that formatting writes.
 *
 * Failure modes: a value that does not pass is refused with KB_ECONFIG (KB_EVERSION for
 * config.version) and a message naming the key and the reason; nothing is stored.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernel/vm/vmxfile_internal.h"

/* ---- key table ------------------------------------------------------------------------ */

#define VMX_STR(k, t, m)                                                            \
	{                                                                           \
		k, t, offsetof(struct vmk_vmx, m), sizeof(((struct vmk_vmx *)0)->m) \
	}
#define VMX_U32(k, m, lo, hi, mul)                                     \
	{                                                              \
		k, FT_U32, offsetof(struct vmk_vmx, m), 0, lo, hi, mul \
	}

static const struct field scalar_fields[] = {
    {"config.version", FT_VERSION, 0, 0},
    VMX_STR("displayName", FT_NAME, name),
    VMX_STR("uuid", FT_UUID, uuid),
    {"guest.kind", FT_KIND, offsetof(struct vmk_vmx, guest_kind), 0},
    VMX_STR("guest.kernel", FT_PATH, kernel),
    VMX_STR("guest.initrd", FT_PATH, initrd),
    VMX_STR("guest.cmdline", FT_TEXT, cmdline),
    VMX_U32("memsize", memsize_mib, VMK_VMX_MEMSIZE_MIN, VMK_VMX_MEMSIZE_MAX, 2),
    VMX_U32("numvcpus", numvcpus, 1, VMK_VMX_VCPUS_MAX, 1),
    VMX_STR("sched.cpu.shares", FT_SHARES, res.cpu_shares),
    VMX_U32("sched.cpu.min", res.cpu_min_mhz, 0, VMK_VMX_MHZ_MAX, 1),
    VMX_U32("sched.cpu.max", res.cpu_max_mhz, 0, VMK_VMX_MHZ_MAX, 1),
    VMX_U32("sched.mem.min", res.mem_min_mib, 0, VMK_VMX_MEMSIZE_MAX, 1),
    VMX_U32("sched.mem.max", res.mem_max_mib, 0, VMK_VMX_MEMSIZE_MAX, 1),
    {"vmMonitoring.enabled", FT_BOOL, offsetof(struct vmk_vmx, monitor.enabled), 0},
    VMX_U32("vmMonitoring.timeout", monitor.timeout_s, 0, VMK_VMX_MON_TIMEOUT_MAX, 1),
    VMX_U32("vmMonitoring.maxResets", monitor.max_resets, 0, VMK_VMX_MON_RESETS_MAX, 1),
};
_Static_assert(sizeof(scalar_fields) / sizeof(scalar_fields[0]) == NSCALAR, "scalar ids");

static const struct field disk_fields[] = {
    {"present", FT_BOOL, offsetof(struct vmk_vmx_disk, present), 0},
    {"fileName", FT_PATH, offsetof(struct vmk_vmx_disk, file), VMK_VMX_PATH_MAX + 1},
    {"readOnly", FT_BOOL, offsetof(struct vmk_vmx_disk, read_only), 0},
};
_Static_assert(sizeof(disk_fields) / sizeof(disk_fields[0]) == NDISKF, "disk field ids");

static const struct field nic_fields[] = {
    {"present", FT_BOOL, offsetof(struct vmk_vmx_nic, present), 0},
    {"portgroup", FT_PORTGROUP, offsetof(struct vmk_vmx_nic, portgroup), VMK_VMX_PG_MAX + 1},
    {"address", FT_MAC, offsetof(struct vmk_vmx_nic, mac), VMK_MAC_LEN + 1},
};
_Static_assert(sizeof(nic_fields) / sizeof(nic_fields[0]) == NNICF, "NIC field ids");
_Static_assert(VMK_VMX_DISKS == 8 && VMK_VMX_NICS == 8, "messages say 0..7");

void vmk__vmx_ref_scalar(struct fref *r, int id)
{
	r->f = &scalar_fields[id];
	r->fam = FAM_SCALAR;
	r->slot = -1;
	r->id = id;
	snprintf(r->key, sizeof(r->key), "%s", r->f->key);
}

void vmk__vmx_ref_disk(struct fref *r, int slot, int f)
{
	r->f = &disk_fields[f];
	r->fam = FAM_DISK;
	r->slot = slot;
	r->id = DISK_ID(slot, f);
	snprintf(r->key, sizeof(r->key), "disk%d.%s", slot, r->f->key);
}

void vmk__vmx_ref_nic(struct fref *r, int slot, int f)
{
	r->f = &nic_fields[f];
	r->fam = FAM_NIC;
	r->slot = slot;
	r->id = NIC_ID(slot, f);
	snprintf(r->key, sizeof(r->key), "ethernet%d.%s", slot, r->f->key);
}

void *vmk__vmx_ref_ptr(const struct vmk_vmx *vmx, const struct fref *r)
{
	const char *base = (const char *)vmx;

	if (r->fam == FAM_DISK)
		base = (const char *)&vmx->disks[r->slot];
	else if (r->fam == FAM_NIC)
		base = (const char *)&vmx->nics[r->slot];
	return (void *)(base + r->f->off);
}

/* Resolves "diskN.suffix" / "ethernetN.suffix". 1: known, 0: not a known key, -1: a known
 * suffix with a bad index (*why says what). */
static int lookup_indexed(const char *key, enum family fam, struct fref *r, const char **why)
{
	const char *family = fam == FAM_DISK ? "disk" : "ethernet";
	const struct field *fields = fam == FAM_DISK ? disk_fields : nic_fields;
	int nf = fam == FAM_DISK ? NDISKF : NNICF;
	int nslots = fam == FAM_DISK ? VMK_VMX_DISKS : VMK_VMX_NICS;
	size_t fl = strlen(family);
	const char *p = key + fl, *dot;
	int f, slot = 0;

	if (strncasecmp(key, family, fl) != 0 || *p < '0' || *p > '9')
		return 0;
	dot = p;
	while (*dot >= '0' && *dot <= '9')
		dot++;
	if (*dot != '.')
		return 0;
	for (f = 0; f < nf; f++)
		if (strcasecmp(dot + 1, fields[f].key) == 0)
			break;
	if (f == nf && fam == FAM_NIC && strcasecmp(dot + 1, "networkName") == 0)
		f = N_PORTGROUP; /* ESXi's name for the portgroup */
	if (f == nf)
		return 0;
	if ((dot - p > 1 && *p == '0') || dot - p > 2) {
		*why = "bad index";
		return -1;
	}
	for (; p < dot; p++)
		slot = slot * 10 + (*p - '0');
	if (slot >= nslots) {
		*why = "index out of range (0..7)";
		return -1;
	}
	if (fam == FAM_DISK)
		vmk__vmx_ref_disk(r, slot, f);
	else
		vmk__vmx_ref_nic(r, slot, f);
	return 1;
}

int vmk__vmx_lookup_key(const char *key, struct fref *r, const char **why)
{
	int rc;

	for (int i = 0; i < NSCALAR; i++) {
		if (strcasecmp(key, scalar_fields[i].key) == 0) {
			vmk__vmx_ref_scalar(r, i);
			return 1;
		}
	}
	rc = lookup_indexed(key, FAM_DISK, r, why);
	if (rc != 0)
		return rc;
	return lookup_indexed(key, FAM_NIC, r, why);
}

/* ---- errors --------------------------------------------------------------------------- */

int vmk__vmx_bad(const struct where *w, int code, const char *fmt, ...)
{
	char why[KB_ERRMSG_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (w->line && w->key)
		kb_errmsg_setf(w->err, "line %u: %s: %s", w->line, w->key, why);
	else if (w->line)
		kb_errmsg_setf(w->err, "line %u: %s", w->line, why);
	else if (w->key)
		kb_errmsg_setf(w->err, "%s: %s", w->key, why);
	else
		kb_errmsg_setf(w->err, "%s", why);
	return code;
}

/* ---- value checkers: the one place every value is vetted ------------------------------ */

bool vmk__vmx_utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		unsigned c = s[i], len, cp;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			len = 2, cp = c & 0x1f;
		else if (c >= 0xe0 && c <= 0xef)
			len = 3, cp = c & 0x0f;
		else if (c >= 0xf0 && c <= 0xf4)
			len = 4, cp = c & 0x07;
		else
			return false;
		if (n - i < len)
			return false;
		for (unsigned k = 1; k < len; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* What every stored string must pass. */
int vmk__vmx_check_text(const struct where *w, const char *v, size_t max)
{
	size_t n = strlen(v);

	if (n > max)
		return vmk__vmx_bad(w, KB_ECONFIG, "value is %zu bytes, at most %zu allowed", n,
				    max);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c == 0x7f)
			return vmk__vmx_bad(w, KB_ECONFIG, "control character 0x%02x in value", c);
	}
	if (!vmk__vmx_utf8_valid((const unsigned char *)v, n))
		return vmk__vmx_bad(w, KB_ECONFIG, "value is not valid UTF-8");
	return 0;
}

static int check_name(const struct where *w, const char *v)
{
	if (!vmk_vmx_name_valid(v))
		return vmk__vmx_bad(
		    w, KB_ECONFIG,
		    "\"%s\" is not a valid name (1..%d of A-Z a-z 0-9 . _ -, not . or ..)", v,
		    VMK_VMX_NAME_MAX);
	return 0;
}

static int check_uuid(const struct where *w, const char *v)
{
	size_t n = strlen(v);

	for (size_t i = 0; i < n && n == VMK_UUID_LEN; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;
		if (dash ? v[i] != '-' : strchr("0123456789abcdefABCDEF", v[i]) == NULL)
			n = 0;
	}
	if (n != VMK_UUID_LEN)
		return vmk__vmx_bad(w, KB_ECONFIG,
				    "\"%s\" is not a uuid (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)",
				    v);
	return 0;
}

/* A relative name is one file in the VM directory; an absolute path may have several
 * components; neither may have a ".." component. */
static int check_path(const struct where *w, const char *v)
{
	const char *p = v;

	if (v[0] != '/' && strchr(v, '/') != NULL)
		return vmk__vmx_bad(
		    w, KB_ECONFIG,
		    "\"%s\": a relative file name may not contain \"/\" (use an absolute path)", v);
	while (*p) {
		size_t len = strcspn(p, "/");
		if ((len == 2 && p[0] == '.' && p[1] == '.') || (len == 1 && p[0] == '.' && !v[1]))
			return vmk__vmx_bad(w, KB_ECONFIG,
					    "\"%s\": \".\" and \"..\" are not allowed", v);
		p += len;
		while (*p == '/')
			p++;
	}
	return 0;
}

static int check_portgroup(const struct where *w, const char *v)
{
	size_t n = strlen(v);

	for (size_t i = 0; i < n; i++)
		if (v[i] < 0x20 || v[i] > 0x7e)
			return vmk__vmx_bad(w, KB_ECONFIG, "portgroup names are printable ASCII");
	if (n > 0 && (v[0] == ' ' || v[n - 1] == ' '))
		return vmk__vmx_bad(w, KB_ECONFIG, "\"%s\": leading or trailing space", v);
	return 0;
}

static int parse_mac(const char *v, uint8_t mac[6])
{
	if (strlen(v) != VMK_MAC_LEN)
		return -1;
	for (int i = 0; i < 6; i++) {
		const char *p = v + i * 3;
		char hex[3] = {p[0], p[1], 0};
		if (!strchr("0123456789abcdefABCDEF", p[0]) ||
		    !strchr("0123456789abcdefABCDEF", p[1]) || (i < 5 && p[2] != ':'))
			return -1;
		mac[i] = (uint8_t)strtoul(hex, NULL, 16);
	}
	return 0;
}

static int check_mac(const struct where *w, const char *v)
{
	uint8_t m[6];

	if (parse_mac(v, m) < 0)
		return vmk__vmx_bad(w, KB_ECONFIG,
				    "\"%s\" is not a MAC address (xx:xx:xx:xx:xx:xx)", v);
	if (m[0] & 1)
		return vmk__vmx_bad(w, KB_ECONFIG, "\"%s\" is a multicast address", v);
	if ((m[0] | m[1] | m[2] | m[3] | m[4] | m[5]) == 0)
		return vmk__vmx_bad(w, KB_ECONFIG, "\"%s\" is the zero address", v);
	return 0;
}

int vmk__vmx_parse_u32(const char *v, uint32_t *out)
{
	uint64_t x = 0;
	size_t n = strlen(v);

	if (n == 0 || n > 10 || (n > 1 && v[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		x = x * 10 + (uint64_t)(v[i] - '0');
	}
	if (x > UINT32_MAX)
		return -1;
	*out = (uint32_t)x;
	return 0;
}

static int check_u32(const struct where *w, const struct field *f, uint32_t x)
{
	if (x < f->min || x > f->max)
		return vmk__vmx_bad(w, KB_ECONFIG, "%u is out of range (%u..%u)", x, f->min,
				    f->max);
	if (f->mult > 1 && x % f->mult != 0)
		return vmk__vmx_bad(w, KB_ECONFIG, "%u is not a multiple of %u", x, f->mult);
	return 0;
}

static int check_shares(const struct where *w, const char *v)
{
	uint32_t x;

	if (strcmp(v, "low") == 0 || strcmp(v, "normal") == 0 || strcmp(v, "high") == 0)
		return 0;
	if (vmk__vmx_parse_u32(v, &x) < 0 || x < 1 || x > VMK_VMX_SHARES_MAX)
		return vmk__vmx_bad(w, KB_ECONFIG, "\"%s\": expected low, normal, high or 1..%u", v,
				    VMK_VMX_SHARES_MAX);
	return 0;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

int vmk__vmx_field_set(struct vmk_vmx *vmx, const struct fref *r, const char *v,
		       const struct where *w)
{
	const struct field *f = r->f;
	/* Fixed-form values (uuid, MAC, shares) get their own, clearer message for a wrong
	 * length; their checks bound the length to fit the field. */
	bool fixed_form = f->type == FT_UUID || f->type == FT_MAC || f->type == FT_SHARES;
	char tmp[VMK_VMX_CMDLINE_MAX + 1];
	uint32_t x = 0;
	bool b = false;
	int rc;

	rc = vmk__vmx_check_text(w, v, f->size && !fixed_form ? f->size - 1 : sizeof(tmp) - 1);
	if (rc)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s", v);
	switch (f->type) {
	case FT_VERSION:
		if (strcmp(v, "1") != 0)
			return vmk__vmx_bad(w, KB_EVERSION,
					    "unsupported version \"%s\" (this host reads 1)", v);
		return 0;
	case FT_NAME:
		rc = check_name(w, v);
		break;
	case FT_UUID:
		rc = *v ? check_uuid(w, v) : 0;
		lower(tmp);
		break;
	case FT_PATH:
		rc = check_path(w, v);
		break;
	case FT_TEXT:
		break;
	case FT_SHARES:
		lower(tmp);
		rc = *v ? check_shares(w, tmp) : 0;
		break;
	case FT_PORTGROUP:
		rc = check_portgroup(w, v);
		break;
	case FT_MAC:
		rc = *v ? check_mac(w, v) : 0;
		lower(tmp);
		break;
	case FT_KIND:
		if (strcmp(v, "kguest") == 0)
			x = VMK_GUEST_KGUEST;
		else if (strcmp(v, "linux") == 0)
			x = VMK_GUEST_LINUX;
		else
			return vmk__vmx_bad(w, KB_ECONFIG,
					    "\"%s\": expected \"kguest\" or \"linux\"", v);
		if (vmx)
			*(enum vmk_guest_kind *)vmk__vmx_ref_ptr(vmx, r) = (enum vmk_guest_kind)x;
		return 0;
	case FT_U32:
		if (vmk__vmx_parse_u32(v, &x) < 0)
			return vmk__vmx_bad(w, KB_ECONFIG, "\"%s\" is not a decimal number", v);
		rc = check_u32(w, f, x);
		if (rc == 0 && vmx)
			*(uint32_t *)vmk__vmx_ref_ptr(vmx, r) = x;
		return rc;
	case FT_BOOL:
		if (strcasecmp(v, "true") == 0)
			b = true;
		else if (strcasecmp(v, "false") != 0)
			return vmk__vmx_bad(w, KB_ECONFIG, "\"%s\": expected TRUE or FALSE", v);
		if (vmx)
			*(bool *)vmk__vmx_ref_ptr(vmx, r) = b;
		return 0;
	}
	if (rc == 0 && vmx) {
		memset(vmk__vmx_ref_ptr(vmx, r), 0, f->size); /* no stale bytes after the NUL */
		memcpy(vmk__vmx_ref_ptr(vmx, r), tmp, strlen(tmp) + 1);
	}
	return rc;
}

int vmk__vmx_field_set_u32(struct vmk_vmx *vmx, const struct fref *r, uint32_t x,
			   const struct where *w)
{
	int rc = check_u32(w, r->f, x);

	if (rc == 0)
		*(uint32_t *)vmk__vmx_ref_ptr(vmx, r) = x;
	return rc;
}

/* The stored value of r as text; false when unset (a zero number, an empty string, an unset
 * kind, a false boolean). */
bool vmk__vmx_field_get(const struct vmk_vmx *vmx, const struct fref *r, char *out, size_t size)
{
	const void *p = vmk__vmx_ref_ptr(vmx, r);

	out[0] = 0;
	switch (r->f->type) {
	case FT_VERSION:
		snprintf(out, size, "1");
		return true;
	case FT_KIND:
		snprintf(out, size, "%s", vmk_guest_kind_name(*(const enum vmk_guest_kind *)p));
		break;
	case FT_U32:
		if (*(const uint32_t *)p)
			snprintf(out, size, "%u", *(const uint32_t *)p);
		break;
	case FT_BOOL:
		snprintf(out, size, "%s", *(const bool *)p ? "TRUE" : "FALSE");
		return *(const bool *)p;
	default:
		if (strnlen(p, r->f->size) == r->f->size)
			snprintf(out, size, "%.*s", (int)(r->f->size - 1), (const char *)p);
		else
			snprintf(out, size, "%s", (const char *)p);
		break;
	}
	return out[0] != 0;
}
