/*
 * The .vmx file: parse, validate, format, load and save, and conversion to and from the
 * control protocol's VmSpec. The format is documented in docs/vmx-file.md.
 *
 * Happy path: vmk_vmx_load() reads at most VMK_VMX_FILE_MAX bytes of a regular file, the
 * parser splits lines, decodes each `key = "value"`, and hands known keys to one checker
 * per key type (the same checkers vet specs from the control socket and re-check a whole
 * struct in vmk_vmx_validate()); unknown keys are kept in order. vmk_vmx_save() formats
 * known keys in a fixed order, then the kept ones, and replaces the file atomically.
 *
 * Failure modes: every malformed, oversized or out-of-range input is refused with a message
 * "line N: key: reason" and the caller's struct untouched (parsing and reconfiguring work
 * on a copy); I/O errors come back as -errno with the path in the message.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kernel/vm/vmxfile.h"
#include "lib/heap.h"

/* ---- key table ------------------------------------------------------------------------ */

enum ftype {
	FT_VERSION,   /* config.version: "1" */
	FT_NAME,      /* VM name */
	FT_UUID,      /* 8-4-4-4-12 hex */
	FT_KIND,      /* enum vmk_guest_kind */
	FT_PATH,      /* file name in the VM directory, or absolute path */
	FT_TEXT,      /* free text (command line) */
	FT_U32,	      /* decimal, range and multiple checked */
	FT_SHARES,    /* low | normal | high | 1..VMK_VMX_SHARES_MAX */
	FT_BOOL,      /* TRUE | FALSE */
	FT_PORTGROUP, /* printable name */
	FT_MAC,	      /* xx:xx:xx:xx:xx:xx unicast */
};

struct field {
	const char *key; /* whole key, or the part after "diskN." / "ethernetN." */
	enum ftype type;
	size_t off;  /* in struct vmk_vmx, vmk_vmx_disk or vmk_vmx_nic */
	size_t size; /* string storage, with the NUL */
	uint32_t min, max, mult;
};

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
};

enum {
	S_VERSION,
	S_NAME,
	S_UUID,
	S_KIND,
	S_KERNEL,
	S_INITRD,
	S_CMDLINE,
	S_MEMSIZE,
	S_VCPUS,
	S_SHARES,
	S_CPU_MIN,
	S_CPU_MAX,
	S_MEM_MIN,
	S_MEM_MAX,
	NSCALAR
};
_Static_assert(sizeof(scalar_fields) / sizeof(scalar_fields[0]) == NSCALAR, "scalar ids");

static const struct field disk_fields[] = {
    {"present", FT_BOOL, offsetof(struct vmk_vmx_disk, present), 0},
    {"fileName", FT_PATH, offsetof(struct vmk_vmx_disk, file), VMK_VMX_PATH_MAX + 1},
    {"readOnly", FT_BOOL, offsetof(struct vmk_vmx_disk, read_only), 0},
};
enum { D_PRESENT, D_FILE, D_RO, NDISKF };

static const struct field nic_fields[] = {
    {"present", FT_BOOL, offsetof(struct vmk_vmx_nic, present), 0},
    {"portgroup", FT_PORTGROUP, offsetof(struct vmk_vmx_nic, portgroup), VMK_VMX_PG_MAX + 1},
    {"address", FT_MAC, offsetof(struct vmk_vmx_nic, mac), VMK_MAC_LEN + 1},
};
enum { N_PRESENT, N_PORTGROUP, N_MAC, NNICF };
_Static_assert(VMK_VMX_DISKS == 8 && VMK_VMX_NICS == 8, "messages say 0..7");

/* Field ids index the parser's seen/line tables: scalars, then disk slots, then NIC slots. */
#define DISK_ID(slot, f) (NSCALAR + (slot)*NDISKF + (f))
#define NIC_ID(slot, f)	 (NSCALAR + VMK_VMX_DISKS * NDISKF + (slot)*NNICF + (f))
#define NFIELDS		 (NSCALAR + VMK_VMX_DISKS * NDISKF + VMK_VMX_NICS * NNICF)

/* A known key resolved to its field and slot. */
enum family { FAM_SCALAR, FAM_DISK, FAM_NIC };

struct fref {
	const struct field *f;
	enum family fam;
	int slot; /* -1 for scalars */
	int id;
	char key[40]; /* canonical spelling */
};

static void ref_scalar(struct fref *r, int id)
{
	r->f = &scalar_fields[id];
	r->fam = FAM_SCALAR;
	r->slot = -1;
	r->id = id;
	snprintf(r->key, sizeof(r->key), "%s", r->f->key);
}

static void ref_disk(struct fref *r, int slot, int f)
{
	r->f = &disk_fields[f];
	r->fam = FAM_DISK;
	r->slot = slot;
	r->id = DISK_ID(slot, f);
	snprintf(r->key, sizeof(r->key), "disk%d.%s", slot, r->f->key);
}

static void ref_nic(struct fref *r, int slot, int f)
{
	r->f = &nic_fields[f];
	r->fam = FAM_NIC;
	r->slot = slot;
	r->id = NIC_ID(slot, f);
	snprintf(r->key, sizeof(r->key), "ethernet%d.%s", slot, r->f->key);
}

static void *ref_ptr(const struct vmk_vmx *vmx, const struct fref *r)
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
		ref_disk(r, slot, f);
	else
		ref_nic(r, slot, f);
	return 1;
}

static int lookup_key(const char *key, struct fref *r, const char **why)
{
	int rc;

	for (int i = 0; i < NSCALAR; i++) {
		if (strcasecmp(key, scalar_fields[i].key) == 0) {
			ref_scalar(r, i);
			return 1;
		}
	}
	rc = lookup_indexed(key, FAM_DISK, r, why);
	if (rc != 0)
		return rc;
	return lookup_indexed(key, FAM_NIC, r, why);
}

/* ---- errors --------------------------------------------------------------------------- */

/* Where a value came from, for messages: "line N: key: reason" (no line: "key: reason"). */
struct where {
	struct kb_errmsg *err;
	unsigned line;
	const char *key;
};

static int bad(const struct where *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(const struct where *w, int code, const char *fmt, ...)
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

static bool utf8_valid(const unsigned char *s, size_t n)
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

/* Length, control characters and UTF-8: what every stored string must pass. */
static int check_text(const struct where *w, const char *v, size_t max)
{
	size_t n = strlen(v);

	if (n > max)
		return bad(w, KB_ECONFIG, "value is %zu bytes, at most %zu allowed", n, max);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)v[i];
		if (c < 0x20 || c == 0x7f)
			return bad(w, KB_ECONFIG, "control character 0x%02x in value", c);
	}
	if (!utf8_valid((const unsigned char *)v, n))
		return bad(w, KB_ECONFIG, "value is not valid UTF-8");
	return 0;
}

bool vmk_vmx_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > VMK_VMX_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       n;
}

static int check_name(const struct where *w, const char *v)
{
	if (!vmk_vmx_name_valid(v))
		return bad(w, KB_ECONFIG,
			   "\"%s\" is not a valid name (1..%d of A-Z a-z 0-9 . _ -, not . or ..)",
			   v, VMK_VMX_NAME_MAX);
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
		return bad(w, KB_ECONFIG,
			   "\"%s\" is not a uuid (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)", v);
	return 0;
}

/* A relative name is one file in the VM directory; an absolute path may have several
 * components; neither may have a ".." component. */
static int check_path(const struct where *w, const char *v)
{
	const char *p = v;

	if (v[0] != '/' && strchr(v, '/') != NULL)
		return bad(
		    w, KB_ECONFIG,
		    "\"%s\": a relative file name may not contain \"/\" (use an absolute path)", v);
	while (*p) {
		size_t len = strcspn(p, "/");
		if ((len == 2 && p[0] == '.' && p[1] == '.') || (len == 1 && p[0] == '.' && !v[1]))
			return bad(w, KB_ECONFIG, "\"%s\": \".\" and \"..\" are not allowed", v);
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
			return bad(w, KB_ECONFIG, "portgroup names are printable ASCII");
	if (n > 0 && (v[0] == ' ' || v[n - 1] == ' '))
		return bad(w, KB_ECONFIG, "\"%s\": leading or trailing space", v);
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
		return bad(w, KB_ECONFIG, "\"%s\" is not a MAC address (xx:xx:xx:xx:xx:xx)", v);
	if (m[0] & 1)
		return bad(w, KB_ECONFIG, "\"%s\" is a multicast address", v);
	if ((m[0] | m[1] | m[2] | m[3] | m[4] | m[5]) == 0)
		return bad(w, KB_ECONFIG, "\"%s\" is the zero address", v);
	return 0;
}

/* Strict decimal: digits only, no sign, no leading zero, fits 32 bits. */
static int parse_u32(const char *v, uint32_t *out)
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
		return bad(w, KB_ECONFIG, "%u is out of range (%u..%u)", x, f->min, f->max);
	if (f->mult > 1 && x % f->mult != 0)
		return bad(w, KB_ECONFIG, "%u is not a multiple of %u", x, f->mult);
	return 0;
}

static int check_shares(const struct where *w, const char *v)
{
	uint32_t x;

	if (strcmp(v, "low") == 0 || strcmp(v, "normal") == 0 || strcmp(v, "high") == 0)
		return 0;
	if (parse_u32(v, &x) < 0 || x < 1 || x > VMK_VMX_SHARES_MAX)
		return bad(w, KB_ECONFIG, "\"%s\": expected low, normal, high or 1..%u", v,
			   VMK_VMX_SHARES_MAX);
	return 0;
}

static void lower(char *s)
{
	for (; *s; s++)
		if (*s >= 'A' && *s <= 'Z')
			*s = (char)(*s - 'A' + 'a');
}

/* Checks v for field r and, when vmx is not NULL, stores it. An empty string sets a string
 * field to "unset"; numbers, booleans and the guest kind must be given. */
static int field_set(struct vmk_vmx *vmx, const struct fref *r, const char *v,
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

	rc = check_text(w, v, f->size && !fixed_form ? f->size - 1 : sizeof(tmp) - 1);
	if (rc)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s", v);
	switch (f->type) {
	case FT_VERSION:
		if (strcmp(v, "1") != 0)
			return bad(w, KB_EVERSION, "unsupported version \"%s\" (this host reads 1)",
				   v);
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
			return bad(w, KB_ECONFIG, "\"%s\": expected \"kguest\" or \"linux\"", v);
		if (vmx)
			*(enum vmk_guest_kind *)ref_ptr(vmx, r) = (enum vmk_guest_kind)x;
		return 0;
	case FT_U32:
		if (parse_u32(v, &x) < 0)
			return bad(w, KB_ECONFIG, "\"%s\" is not a decimal number", v);
		rc = check_u32(w, f, x);
		if (rc == 0 && vmx)
			*(uint32_t *)ref_ptr(vmx, r) = x;
		return rc;
	case FT_BOOL:
		if (strcasecmp(v, "true") == 0)
			b = true;
		else if (strcasecmp(v, "false") != 0)
			return bad(w, KB_ECONFIG, "\"%s\": expected TRUE or FALSE", v);
		if (vmx)
			*(bool *)ref_ptr(vmx, r) = b;
		return 0;
	}
	if (rc == 0 && vmx) {
		memset(ref_ptr(vmx, r), 0, f->size); /* no stale bytes after the NUL */
		memcpy(ref_ptr(vmx, r), tmp, strlen(tmp) + 1);
	}
	return rc;
}

static int field_set_u32(struct vmk_vmx *vmx, const struct fref *r, uint32_t x,
			 const struct where *w)
{
	int rc = check_u32(w, r->f, x);

	if (rc == 0)
		*(uint32_t *)ref_ptr(vmx, r) = x;
	return rc;
}

/* The stored value of r as text; false when unset (a zero number, an empty string, an unset
 * kind, a false boolean). */
static bool field_get(const struct vmk_vmx *vmx, const struct fref *r, char *out, size_t size)
{
	const void *p = ref_ptr(vmx, r);

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

/* ---- whole-struct rules --------------------------------------------------------------- */

const char *vmk_guest_kind_name(enum vmk_guest_kind kind)
{
	switch (kind) {
	case VMK_GUEST_KGUEST:
		return "kguest";
	case VMK_GUEST_LINUX:
		return "linux";
	default:
		return "";
	}
}

static bool disk_used(const struct vmk_vmx_disk *d)
{
	return d->present || d->read_only || d->file[0];
}

static bool nic_used(const struct vmk_vmx_nic *n)
{
	return n->present || n->portgroup[0] || n->mac[0];
}

static bool key_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '-';
}

/* Re-checks one stored field (strings may have been set by hand). */
static int recheck(const struct vmk_vmx *vmx, const struct fref *r, const unsigned *lines,
		   struct kb_errmsg *err)
{
	struct where w = {err, lines ? lines[r->id] : 0, r->key};
	char v[VMK_VMX_CMDLINE_MAX + 2];

	if (r->f->size && strnlen(ref_ptr(vmx, r), r->f->size) == r->f->size)
		return bad(&w, KB_ECONFIG, "value is not terminated");
	if (r->f->type == FT_KIND &&
	    *(const enum vmk_guest_kind *)ref_ptr(vmx, r) > VMK_GUEST_LINUX)
		return bad(&w, KB_ECONFIG, "unknown guest kind %d",
			   (int)*(const enum vmk_guest_kind *)ref_ptr(vmx, r));
	if (!field_get(vmx, r, v, sizeof(v)) || r->f->type == FT_BOOL)
		return 0;
	return field_set(NULL, r, v, &w);
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
			if (!key_char((unsigned char)k[j]))
				n = 0;
		if (n == 0 || n > VMK_VMX_KEY_MAX || lookup_key(k, &r, &why) != 0)
			return bad(&w, KB_ECONFIG, "not a valid kept key");
		rc = check_text(&w, vmx->extra[i].value, VMK_VMX_LINE_MAX);
		if (rc)
			return rc;
		n += sizeof(" = \"\"") - 1;
		for (const char *v = vmx->extra[i].value; *v; v++)
			n += *v == '"' || *v == '\\' ? 2 : 1;
		if (n > VMK_VMX_LINE_MAX)
			return bad(&w, KB_ETOOBIG, "line would be longer than %d bytes",
				   VMK_VMX_LINE_MAX);
	}
	return 0;
}

static int missing(struct kb_errmsg *err, const char *key, const char *extra)
{
	kb_errmsg_setf(err, "%s: missing%s", key, extra);
	return KB_ECONFIG;
}

/* lines: where each field was read (parser), or NULL. */
static int validate_all(const struct vmk_vmx *vmx, const unsigned *lines, struct kb_errmsg *err)
{
	const struct vmk_vmx_res *res = &vmx->res;
	struct fref r, r2;
	struct where w;
	int rc;

	for (int i = 0; i < NSCALAR; i++) {
		ref_scalar(&r, i);
		if ((rc = recheck(vmx, &r, lines, err)) != 0)
			return rc;
	}
	for (int s = 0; s < VMK_VMX_DISKS; s++) {
		for (int f = 0; f < NDISKF; f++) {
			ref_disk(&r, s, f);
			if ((rc = recheck(vmx, &r, lines, err)) != 0)
				return rc;
		}
	}
	for (int s = 0; s < VMK_VMX_NICS; s++) {
		for (int f = 0; f < NNICF; f++) {
			ref_nic(&r, s, f);
			if ((rc = recheck(vmx, &r, lines, err)) != 0)
				return rc;
		}
	}
	if (!vmx->name[0])
		return missing(err, "displayName", "");
	if (!vmx->memsize_mib)
		return missing(err, "memsize", "");
	if (!vmx->numvcpus)
		return missing(err, "numvcpus", "");
	if (vmx->guest_kind == VMK_GUEST_NONE)
		return missing(err, "guest.kind", "");
	if (vmx->guest_kind == VMK_GUEST_LINUX && !vmx->kernel[0])
		return missing(err, "guest.kernel", " (required when guest.kind is \"linux\")");

	ref_scalar(&r, S_MEM_MIN);
	w = (struct where){err, lines ? lines[r.id] : 0, r.key};
	if (res->mem_min_mib > vmx->memsize_mib)
		return bad(&w, KB_ECONFIG, "reservation %u MiB exceeds memsize %u MiB",
			   res->mem_min_mib, vmx->memsize_mib);
	ref_scalar(&r, S_MEM_MAX);
	w = (struct where){err, lines ? lines[r.id] : 0, r.key};
	if (res->mem_max_mib && res->mem_max_mib < res->mem_min_mib)
		return bad(&w, KB_ECONFIG, "limit %u MiB is below the reservation %u MiB",
			   res->mem_max_mib, res->mem_min_mib);
	ref_scalar(&r, S_CPU_MAX);
	w = (struct where){err, lines ? lines[r.id] : 0, r.key};
	if (res->cpu_max_mhz && res->cpu_max_mhz < res->cpu_min_mhz)
		return bad(&w, KB_ECONFIG, "limit %u MHz is below the reservation %u MHz",
			   res->cpu_max_mhz, res->cpu_min_mhz);

	for (int s = 0; s < VMK_VMX_DISKS; s++) {
		const struct vmk_vmx_disk *d = &vmx->disks[s];
		ref_disk(&r, s, D_FILE);
		if (d->present && !d->file[0])
			return missing(err, r.key, " (disk is present)");
		for (int t = 0; t < s && d->file[0]; t++) {
			if (!disk_used(&vmx->disks[t]) || strcmp(vmx->disks[t].file, d->file) != 0)
				continue;
			ref_disk(&r2, t, D_FILE);
			w = (struct where){err, lines ? lines[r.id] : 0, r.key};
			return bad(&w, KB_ECONFIG, "\"%s\" is already %s", d->file, r2.key);
		}
	}
	for (int s = 0; s < VMK_VMX_NICS; s++) {
		const struct vmk_vmx_nic *n = &vmx->nics[s];
		ref_nic(&r, s, N_PORTGROUP);
		if (n->present && !n->portgroup[0])
			return missing(err, r.key, " (NIC is present)");
		ref_nic(&r, s, N_MAC);
		for (int t = 0; t < s && n->mac[0]; t++) {
			if (strcmp(vmx->nics[t].mac, n->mac) != 0)
				continue;
			ref_nic(&r2, t, N_MAC);
			w = (struct where){err, lines ? lines[r.id] : 0, r.key};
			return bad(&w, KB_ECONFIG, "%s is already %s", n->mac, r2.key);
		}
	}
	if (lines == NULL)
		return check_extra(vmx, err);
	return 0;
}

int vmk_vmx_validate(const struct vmk_vmx *vmx, struct kb_errmsg *err)
{
	return validate_all(vmx, NULL, err);
}

uint32_t vmk_vmx_cpu_shares(const struct vmk_vmx *vmx)
{
	uint32_t vcpus = vmx->numvcpus ? vmx->numvcpus : 1, x;

	if (strcmp(vmx->res.cpu_shares, "low") == 0)
		return 500 * vcpus;
	if (strcmp(vmx->res.cpu_shares, "high") == 0)
		return 2000 * vcpus;
	if (parse_u32(vmx->res.cpu_shares, &x) == 0)
		return x;
	return 1000 * vcpus;
}

/* ---- init, close, kept keys ----------------------------------------------------------- */

void vmk_vmx_init(struct vmk_vmx *vmx)
{
	memset(vmx, 0, sizeof(*vmx));
}

void vmk_vmx_close(struct vmk_vmx *vmx)
{
	for (size_t i = 0; i < vmx->n_extra; i++) {
		kb_free(vmx->extra[i].key);
		kb_free(vmx->extra[i].value);
	}
	kb_free(vmx->extra);
	vmx->extra = NULL;
	vmx->n_extra = 0;
}

static int extra_add(struct vmk_vmx *vmx, const char *key, const char *value)
{
	struct vmk_vmx_extra *e;
	size_t n = vmx->n_extra;

	/* Grows at powers of two; n is the size before the append. */
	if ((n & (n - 1)) == 0) {
		e = kb_realloc(vmx->extra, (n ? 2 * n : 1) * sizeof(*e));
		if (e == NULL)
			return -ENOMEM;
		vmx->extra = e;
	}
	e = &vmx->extra[n];
	e->key = kb_strdup(key);
	e->value = kb_strdup(value);
	if (e->key == NULL || e->value == NULL) {
		kb_free(e->key);
		kb_free(e->value);
		return -ENOMEM;
	}
	vmx->n_extra++;
	return 0;
}

/* ---- random identifiers --------------------------------------------------------------- */

static int random_fill(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t got = 0;
	int fd, rc = 0;

	while (got < n) {
		ssize_t k = getrandom(p + got, n - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got == n)
		return 0;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (got = 0; got < n;) {
		ssize_t k = read(fd, p + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			rc = k < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)k;
	}
	close(fd);
	return rc;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void vmk_uuid_generate(char out[37])
{
	static uint64_t counter;
	uint8_t b[16];

	if (random_fill(b, sizeof(b)) < 0) {
		struct timespec rt, mt;
		uint64_t s, x;

		clock_gettime(CLOCK_REALTIME, &rt);
		clock_gettime(CLOCK_MONOTONIC, &mt);
		s = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
		s ^= ((uint64_t)getpid() << 32) ^ __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
		s ^= (uint64_t)mt.tv_nsec << 20;
		x = splitmix64(&s);
		memcpy(b, &x, 8);
		x = splitmix64(&s);
		memcpy(b + 8, &x, 8);
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, VMK_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

int vmk_mac_generate(uint8_t mac[6])
{
	int rc;

	mac[0] = 0x02; /* locally administered, unicast */
	mac[1] = 0x4b;
	rc = random_fill(mac + 2, 4);
	if (rc == 0 && (mac[2] | mac[3] | mac[4] | mac[5]) == 0)
		mac[5] = 1;
	return rc;
}

static int mac_generate_text(char out[VMK_MAC_LEN + 1])
{
	uint8_t m[6];
	int rc = vmk_mac_generate(m);

	if (rc == 0)
		snprintf(out, VMK_MAC_LEN + 1, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
			 m[3], m[4], m[5]);
	return rc;
}

int vmk_vmx_complete(struct vmk_vmx *vmx, bool *changed)
{
	bool any = false;
	int rc;

	if (!vmx->uuid[0]) {
		vmk_uuid_generate(vmx->uuid);
		any = true;
	}
	for (int i = 0; i < VMK_VMX_NICS; i++) {
		if (!vmx->nics[i].present || vmx->nics[i].mac[0])
			continue;
		rc = mac_generate_text(vmx->nics[i].mac);
		if (rc)
			return rc;
		any = true;
	}
	if (changed)
		*changed = any;
	return 0;
}

/* ---- parser --------------------------------------------------------------------------- */

struct parser {
	struct vmk_vmx vmx;
	bool seen[NFIELDS];
	unsigned lines[NFIELDS];
	unsigned nkeys;
	char key[VMK_VMX_KEY_MAX + 1];
	char val[VMK_VMX_LINE_MAX + 1];
};

/* Decodes one line (no newline, no NUL) into p->key and p->val. 1: a key line, 0: blank or
 * comment, negative: error. */
static int split_line(struct parser *p, const char *s, size_t n, const struct where *w0)
{
	struct where w = *w0;
	size_t i = 0, k, v = 0;

	if (n > 0 && s[n - 1] == '\r')
		n--; /* CRLF line ends */
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i == n || s[i] == '#')
		return 0;
	for (k = i; k < n && key_char((unsigned char)s[k]); k++)
		;
	if (k == i)
		return bad(&w, KB_EPROTO,
			   "expected a key, found '%c' (key characters: A-Z a-z 0-9 . _ : -)",
			   (unsigned char)s[k] >= 0x20 && s[k] != 0x7f ? s[k] : '?');
	if (k - i > VMK_VMX_KEY_MAX)
		return bad(&w, KB_ETOOBIG, "key longer than %d bytes", VMK_VMX_KEY_MAX);
	memcpy(p->key, s + i, k - i);
	p->key[k - i] = 0;
	w.key = p->key;
	while (k < n && (s[k] == ' ' || s[k] == '\t'))
		k++;
	if (k == n || s[k] != '=') {
		if (k < n && !key_char((unsigned char)s[k]) && s[k] != ' ' && s[k] != '\t')
			return bad(&w, KB_EPROTO, "invalid character in key or missing '='");
		return bad(&w, KB_EPROTO, "expected '=' after the key");
	}
	k++;
	while (k < n && (s[k] == ' ' || s[k] == '\t'))
		k++;
	if (k == n || s[k] != '"')
		return bad(&w, KB_EPROTO, "value must be in double quotes");
	for (k++;; k++) {
		unsigned char c;
		if (k == n)
			return bad(&w, KB_EPROTO, "unterminated quoted value");
		c = (unsigned char)s[k];
		if (c == '"')
			break;
		if (c < 0x20 || c == 0x7f)
			return bad(&w, KB_EPROTO, "control character 0x%02x in value", c);
		if (c == '\\') {
			if (k + 1 == n || (s[k + 1] != '"' && s[k + 1] != '\\'))
				return bad(&w, KB_EPROTO,
					   "bad escape (only \\\" and \\\\ are allowed)");
			c = (unsigned char)s[++k];
		}
		p->val[v++] = (char)c;
	}
	p->val[v] = 0;
	for (k++; k < n; k++)
		if (s[k] != ' ' && s[k] != '\t')
			return bad(&w, KB_EPROTO, "unexpected text after the closing quote");
	if (!utf8_valid((const unsigned char *)p->val, v))
		return bad(&w, KB_EPROTO, "value is not valid UTF-8");
	return 1;
}

static int parse_line(struct parser *p, const char *s, size_t n, const struct where *w0)
{
	struct where w = *w0;
	const char *why = NULL;
	struct fref r;
	int rc;

	rc = split_line(p, s, n, w0);
	if (rc <= 0)
		return rc;
	w.key = p->key;
	if (++p->nkeys > VMK_VMX_KEYS_MAX)
		return bad(&w, KB_ETOOBIG, "more than %d keys", VMK_VMX_KEYS_MAX);
	rc = lookup_key(p->key, &r, &why);
	if (rc < 0)
		return bad(&w, KB_ECONFIG, "%s", why);
	if (rc == 0) {
		for (size_t i = 0; i < p->vmx.n_extra; i++)
			if (strcasecmp(p->vmx.extra[i].key, p->key) == 0)
				return bad(&w, KB_EPROTO, "duplicate key");
		return extra_add(&p->vmx, p->key, p->val);
	}
	if (p->seen[r.id])
		return bad(&w, KB_EPROTO, "duplicate key (first on line %u)", p->lines[r.id]);
	p->seen[r.id] = true;
	p->lines[r.id] = w.line;
	return field_set(&p->vmx, &r, p->val, &w);
}

int vmk_vmx_parse(struct vmk_vmx *vmx, const void *data, size_t len, struct kb_errmsg *err)
{
	const char *s = data, *end = s + len;
	struct where w = {err, 0, NULL};
	struct parser *p;
	int rc = 0;

	if (len > VMK_VMX_FILE_MAX)
		return bad(&w, KB_ETOOBIG, "file is %zu bytes, at most %d allowed", len,
			   VMK_VMX_FILE_MAX);
	p = kb_calloc(1, sizeof(*p));
	if (p == NULL) {
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	vmk_vmx_init(&p->vmx);
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);

		w.line++;
		if (n > VMK_VMX_LINE_MAX) {
			rc = bad(&w, KB_ETOOBIG, "line longer than %d bytes", VMK_VMX_LINE_MAX);
			goto close_tmp;
		}
		if (memchr(s, 0, n) != NULL) {
			rc = bad(&w, KB_EPROTO, "NUL byte");
			goto close_tmp;
		}
		rc = parse_line(p, s, n, &w);
		if (rc == -ENOMEM)
			kb_errmsg_setf(err, "line %u: out of memory", w.line);
		if (rc)
			goto close_tmp;
		s += n + (nl != NULL);
	}
	rc = validate_all(&p->vmx, p->lines, err);
	if (rc)
		goto close_tmp;
	*vmx = p->vmx;
	goto free_parser;

close_tmp:
	vmk_vmx_close(&p->vmx);
free_parser:
	kb_free(p);
	return rc;
}

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

	if (!field_get(vmx, r, v, sizeof(v)) && !always)
		return 0;
	return put_kv(b, r->key, v);
}

int vmk_vmx_format(const struct vmk_vmx *vmx, struct kb_buf *out)
{
	size_t start = out->len;
	struct fref r;
	int rc = 0;

	for (int i = 0; rc == 0 && i < NSCALAR; i++) {
		ref_scalar(&r, i);
		rc = put_field(out, vmx, &r, false);
	}
	for (int s = 0; rc == 0 && s < VMK_VMX_DISKS; s++) {
		if (!disk_used(&vmx->disks[s]))
			continue;
		for (int f = 0; rc == 0 && f < NDISKF; f++) {
			ref_disk(&r, s, f);
			rc = put_field(out, vmx, &r, f == D_PRESENT);
		}
	}
	for (int s = 0; rc == 0 && s < VMK_VMX_NICS; s++) {
		if (!nic_used(&vmx->nics[s]))
			continue;
		for (int f = 0; rc == 0 && f < NNICF; f++) {
			ref_nic(&r, s, f);
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
	struct stat st;
	size_t got = 0;
	char *buf;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", path,
			       rc == -ELOOP ? "is a symbolic link" : kb_strerror(rc));
		return rc;
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rc));
		goto close_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = KB_ECONFIG;
		kb_errmsg_setf(err, "%s: not a regular file", path);
		goto close_fd;
	}
	if (st.st_size > VMK_VMX_FILE_MAX) {
		rc = KB_ETOOBIG;
		kb_errmsg_setf(err, "%s: file is %lld bytes, at most %d allowed", path,
			       (long long)st.st_size, VMK_VMX_FILE_MAX);
		goto close_fd;
	}
	buf = kb_malloc(VMK_VMX_FILE_MAX + 1);
	if (buf == NULL) {
		rc = -ENOMEM;
		kb_errmsg_setf(err, "%s: out of memory", path);
		goto close_fd;
	}
	while (got <= VMK_VMX_FILE_MAX) {
		ssize_t k = read(fd, buf + got, VMK_VMX_FILE_MAX + 1 - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			kb_errmsg_setf(err, "%s: read: %s", path, kb_strerror(rc));
			goto free_buf;
		}
		if (k == 0)
			break;
		got += (size_t)k;
	}
	rc = vmk_vmx_parse(vmx, buf, got, err); /* refuses got > VMK_VMX_FILE_MAX too */
	if (rc)
		kb_errmsg_wrapf(err, "%s", path);
free_buf:
	kb_free(buf);
close_fd:
	close(fd);
	return rc;
}

static int write_all(int fd, const uint8_t *p, size_t n)
{
	while (n > 0) {
		ssize_t k = write(fd, p, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

static int fsync_parent(const char *path)
{
	char dir[4096];
	const char *slash = strrchr(path, '/');
	int fd, rc = 0;

	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int vmk_vmx_save(const struct vmk_vmx *vmx, const char *path, struct kb_errmsg *err)
{
	char tmp[4096];
	struct kb_buf b;
	int fd, rc;

	rc = validate_all(vmx, NULL, err);
	if (rc) {
		kb_errmsg_wrapf(err, "%s", path);
		return rc;
	}
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp)) {
		kb_errmsg_setf(err, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	kb_buf_init(&b, 0);
	rc = vmk_vmx_format(vmx, &b);
	if (rc) {
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rc));
		goto close_buf;
	}
	if (unlink(tmp) < 0 && errno != ENOENT) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", tmp, kb_strerror(rc));
		goto close_buf;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0640);
	if (fd < 0) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", tmp, kb_strerror(rc));
		goto close_buf;
	}
	rc = write_all(fd, b.data, b.len);
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc) {
		kb_errmsg_setf(err, "%s: write: %s", tmp, kb_strerror(rc));
		goto unlink_tmp;
	}
	rc = fsync_parent(path);
	if (rc)
		kb_errmsg_setf(err, "%s: fsync of the directory: %s", path, kb_strerror(rc));
	goto close_buf;

unlink_tmp:
	unlink(tmp);
close_buf:
	kb_buf_close(&b);
	return rc;
}

/* ---- VmSpec --------------------------------------------------------------------------- */

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

static int spec_set(struct vmk_vmx *vmx, const struct fref *r, const char *v, struct kb_errmsg *err)
{
	struct where w = {err, 0, r->key};

	return field_set(vmx, r, str_or_empty(v), &w);
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
		ref_disk(&r, (int)i, D_FILE);
		if (d == NULL || str_or_empty(d->file)[0] == 0)
			return missing(err, r.key, "");
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
		ref_nic(&r, (int)i, N_PORTGROUP);
		if (n == NULL || str_or_empty(n->portgroup)[0] == 0)
			return missing(err, r.key, "");
		rc = spec_set(vmx, &r, n->portgroup, err);
		if (rc)
			return rc;
		ref_nic(&r, (int)i, N_MAC);
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
		ref_scalar(&r, str_ids[i]);
		if ((rc = spec_set(vmx, &r, strs[i], err)) != 0)
			return rc;
	}
	if (spec->memsize_mib) {
		ref_scalar(&r, S_MEMSIZE);
		w.key = r.key;
		if ((rc = field_set_u32(vmx, &r, spec->memsize_mib, &w)) != 0)
			return rc;
	}
	if (spec->numvcpus) {
		ref_scalar(&r, S_VCPUS);
		w.key = r.key;
		if ((rc = field_set_u32(vmx, &r, spec->numvcpus, &w)) != 0)
			return rc;
	}
	if (res) {
		const uint32_t nums[] = {res->cpu_reservation_mhz, res->cpu_limit_mhz,
					 res->mem_reservation_mib, res->mem_limit_mib};
		static const int num_ids[] = {S_CPU_MIN, S_CPU_MAX, S_MEM_MIN, S_MEM_MAX};

		if (str_or_empty(res->cpu_shares)[0]) {
			ref_scalar(&r, S_SHARES);
			if ((rc = spec_set(vmx, &r, res->cpu_shares, err)) != 0)
				return rc;
		}
		for (int i = 0; i < 4; i++) {
			if (!nums[i])
				continue;
			ref_scalar(&r, num_ids[i]);
			w.key = r.key;
			if ((rc = field_set_u32(vmx, &r, nums[i], &w)) != 0)
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
	rc = validate_all(tmp, NULL, err);
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
	rc = validate_all(tmp, NULL, err);
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
