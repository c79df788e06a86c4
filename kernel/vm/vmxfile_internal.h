/*
 * Shared between the files that implement vmxfile.h; nothing outside kernel/vm/vmxfile_*.c
 * includes this.
 *
 *   vmxfile_keys.c      the key table and the per-key checkers: the one place every value
 *                       is vetted, whether it comes from a file, a spec or a struct
 *   vmxfile_validate.c  the rules over a whole struct (vmk_vmx_validate)
 *   vmxfile_parse.c     the checked decoder (vmk_vmx_parse), init/close and kept keys
 *   vmxfile_format.c    formatting, and loading and saving files
 *   vmxfile_spec.c      conversions to and from the control protocol's VmSpec
 *   vmxfile_util.c      uuid and MAC generation, names, CPU shares
 *
 * Every known key is a struct field in one of three tables (scalars, diskN.*, ethernetN.*);
 * a struct fref names one field of one slot. Field ids number every field of every slot,
 * for the parser's "seen on line N" tables.
 */
#ifndef VMK_VMXFILE_INTERNAL_H
#define VMK_VMXFILE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kernel/vm/vmxfile.h"
#include "lib/err.h"

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

/* Scalar fields, in file order (vmk_vmx_format writes them in this order). */
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
	S_MON_ENABLED,
	S_MON_TIMEOUT,
	S_MON_RESETS,
	NSCALAR
};
enum { D_PRESENT, D_FILE, D_RO, NDISKF };
enum { N_PRESENT, N_PORTGROUP, N_MAC, NNICF };

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

/* Where a value came from, for messages: "line N: key: reason" (no line: "key: reason"). */
struct where {
	struct kb_errmsg *err;
	unsigned line;
	const char *key;
};

/* ---- vmxfile_keys.c ------------------------------------------------------------------- */

/* Resolve scalar id, or field f of disk or NIC slot, into *r. Cannot fail. */
void vmk__vmx_ref_scalar(struct fref *r, int id);
void vmk__vmx_ref_disk(struct fref *r, int slot, int f);
void vmk__vmx_ref_nic(struct fref *r, int slot, int f);
/* The storage of field r inside vmx. */
void *vmk__vmx_ref_ptr(const struct vmk_vmx *vmx, const struct fref *r);
/* Resolves a key (case-insensitive). 1: known, *r set; 0: not a known key (a kept key);
 * -1: a known diskN./ethernetN. suffix with a bad index, *why says what. */
int vmk__vmx_lookup_key(const char *key, struct fref *r, const char **why);

/* Sets w->err to "line N: key: <fmt>" (parts left out when unknown); returns code. */
int vmk__vmx_bad(const struct where *w, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
bool vmk__vmx_utf8_valid(const unsigned char *s, size_t n);
/* Length (at most max bytes), no control characters, valid UTF-8. 0 or KB_ECONFIG. */
int vmk__vmx_check_text(const struct where *w, const char *v, size_t max);
/* Strict decimal: digits only, no sign, no leading zero, fits 32 bits. 0 or -1. */
int vmk__vmx_parse_u32(const char *v, uint32_t *out);

/* Checks text v for field r and, when vmx is not NULL, stores it. An empty string sets a
 * string field to "unset"; numbers, booleans and the guest kind must be given. 0,
 * KB_ECONFIG or KB_EVERSION with w->err set. */
int vmk__vmx_field_set(struct vmk_vmx *vmx, const struct fref *r, const char *v,
		       const struct where *w);
/* Range-checks and stores a number for a FT_U32 field. 0 or KB_ECONFIG. */
int vmk__vmx_field_set_u32(struct vmk_vmx *vmx, const struct fref *r, uint32_t x,
			   const struct where *w);
/* The stored value of r as text in out[size]; false when unset (a zero number, an empty
 * string, an unset kind, a false boolean). */
bool vmk__vmx_field_get(const struct vmk_vmx *vmx, const struct fref *r, char *out, size_t size);

/* ---- vmxfile_validate.c --------------------------------------------------------------- */

/* Sets err to "key: missing<extra>" and returns KB_ECONFIG. */
int vmk__vmx_missing(struct kb_errmsg *err, const char *key, const char *extra);
/* vmk_vmx_validate(). lines: where each field was read, by field id (the parser), or NULL;
 * with NULL the kept keys are checked too. */
int vmk__vmx_validate_all(const struct vmk_vmx *vmx, const unsigned *lines, struct kb_errmsg *err);

/* ---- small predicates ----------------------------------------------------------------- */

/* Characters allowed in a key. */
static inline bool vmk__vmx_key_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == ':' || c == '-';
}

/* A disk or NIC slot with anything set is written out and checked. */
static inline bool vmk__vmx_disk_used(const struct vmk_vmx_disk *d)
{
	return d->present || d->read_only || d->file[0];
}

static inline bool vmk__vmx_nic_used(const struct vmk_vmx_nic *n)
{
	return n->present || n->portgroup[0] || n->mac[0];
}

#endif
