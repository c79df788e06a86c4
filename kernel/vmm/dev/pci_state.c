/*
 * Save, restore, reset and destroy of the PCI host bridge: the configuration space and
 * MSI-X state of every function on bus 0 (the devices behind them save their own state).
 *
 * Format (little-endian), version 1:
 *
 *   u32 magic        "KPCI" (0x4943504b)
 *   u16 version      1
 *   u16 nr_funcs     functions that follow, in slot order (slot 0 = host bridge)
 *   u32 address      the 0xCF8 address latch
 *   nr_funcs times:
 *     u8  slot
 *     u8  sizing     bit i: BAR i is in its sizing probe
 *     u16 msix_nvec  MSI-X vectors (0: no MSI-X)
 *     u8  cfg[256]   configuration space as stored (BARs hold their assigned address)
 *     msix_nvec times: u32 addr_lo, u32 addr_hi, u32 data, u32 ctrl
 *     u32 msix_pba   pending bits
 *
 * Restore accepts the record only for the same set of functions built the same way:
 * every read-only configuration bit (everything outside each function's writable mask,
 * except the status register's interrupt bit, which follows the device) must equal the
 * running VM's, slot numbers and vector counts must match, and MSI-X fields must hold
 * only defined bits. Any mismatch or truncation changes nothing.
 */
#include <errno.h>
#include <string.h>

#include "kernel/vmm/dev/pci.h"
#include "kernel/vmm/dev/pci_internal.h"
#include "lib/heap.h"

#define PCI_STATE_MAGIC	  0x4943504bu
#define PCI_STATE_VERSION 1

struct func_state {
	uint8_t slot;
	uint8_t sizing;
	uint16_t nvec;
	uint8_t cfg[VMM_PCI_CFG_SIZE];
	struct vmm_pci_msix_entry msix[VMM_PCI_MSIX_MAX];
	uint32_t pba;
};

static int pci_save(void *opaque, struct kb_buf *out)
{
	struct vmm_pci *pci = opaque;
	struct kb_buf rec;
	int rv = 0;

	/* Built apart (no limit: only -ENOMEM) and appended whole, so out gets the record or
	 * nothing. */
	kb_buf_init(&rec, 0);
	rv |= kb_buf_put_u32(&rec, PCI_STATE_MAGIC);
	rv |= kb_buf_put_u16(&rec, PCI_STATE_VERSION);
	rv |= kb_buf_put_u16(&rec, (uint16_t)pci->nr_slots);
	rv |= kb_buf_put_u32(&rec, __atomic_load_n(&pci->addr, __ATOMIC_ACQUIRE));
	for (unsigned s = 0; s < pci->nr_slots; s++) {
		struct vmm_pci_func *f = pci->slots[s];
		uint8_t sizing = 0;

		pthread_mutex_lock(f->lock);
		for (int i = 0; i < VMM_PCI_NR_BARS; i++)
			sizing |= (uint8_t)(f->bar[i].sizing << i);
		rv |= kb_buf_put_u8(&rec, f->slot);
		rv |= kb_buf_put_u8(&rec, sizing);
		rv |= kb_buf_put_u16(&rec, (uint16_t)f->msix_nvec);
		rv |= kb_buf_append(&rec, f->cfg, sizeof(f->cfg));
		for (unsigned v = 0; v < f->msix_nvec; v++) {
			rv |= kb_buf_put_u32(&rec, f->msix[v].addr_lo);
			rv |= kb_buf_put_u32(&rec, f->msix[v].addr_hi);
			rv |= kb_buf_put_u32(&rec, f->msix[v].data);
			rv |= kb_buf_put_u32(&rec, f->msix[v].ctrl);
		}
		rv |= kb_buf_put_u32(&rec, f->msix_pba);
		pthread_mutex_unlock(f->lock);
	}
	rv = rv != 0 ? -ENOMEM : kb_buf_append(out, rec.data, rec.len);
	kb_buf_close(&rec);
	return rv;
}

/* Reads and checks one function's record against the running function f (lock held). */
static int parse_func(struct vmm_pci *pci, struct vmm_pci_func *f, struct kb_reader *in,
		      struct func_state *st)
{
	st->slot = kb_rd_u8(in);
	st->sizing = kb_rd_u8(in);
	st->nvec = kb_rd_u16(in);
	kb_rd_copy(in, st->cfg, sizeof(st->cfg));
	if (in->err)
		return in->err;
	if (st->slot != f->slot || st->nvec != f->msix_nvec) {
		kb_log(pci->log, KB_LOG_ERROR, "pci restore: slot %u: different device", f->slot);
		return KB_EPROTO;
	}
	if (st->sizing >> VMM_PCI_NR_BARS) {
		kb_log(pci->log, KB_LOG_ERROR, "pci restore: slot %u: bad BAR flags", f->slot);
		return KB_EPROTO;
	}
	for (unsigned i = 0; i < VMM_PCI_CFG_SIZE; i++) {
		uint8_t fixed = (uint8_t)~f->wmask[i];
		if (i == VMM_PCI_STATUS)
			fixed &= (uint8_t)~VMM_PCI_STATUS_INTX;
		if ((st->cfg[i] ^ f->cfg[i]) & fixed) {
			kb_log(pci->log, KB_LOG_ERROR,
			       "pci restore: slot %u: read-only config byte 0x%02x differs",
			       f->slot, i);
			return KB_EPROTO;
		}
	}
	for (unsigned v = 0; v < st->nvec; v++) {
		st->msix[v].addr_lo = kb_rd_u32(in);
		st->msix[v].addr_hi = kb_rd_u32(in);
		st->msix[v].data = kb_rd_u32(in);
		st->msix[v].ctrl = kb_rd_u32(in);
		if ((st->msix[v].addr_lo & 3) || (st->msix[v].ctrl & ~VMM_PCI_MSIX_VEC_MASKED)) {
			kb_log(pci->log, KB_LOG_ERROR, "pci restore: slot %u: bad MSI-X entry %u",
			       f->slot, v);
			return KB_EPROTO;
		}
	}
	st->pba = kb_rd_u32(in);
	if (in->err)
		return in->err;
	if (st->nvec < 32 && (st->pba >> st->nvec) != 0) {
		kb_log(pci->log, KB_LOG_ERROR, "pci restore: slot %u: bad MSI-X pending bits",
		       f->slot);
		return KB_EPROTO;
	}
	return 0;
}

static void apply_func(struct vmm_pci_func *f, const struct func_state *st)
{
	memcpy(f->cfg, st->cfg, sizeof(f->cfg));
	for (int i = 0; i < VMM_PCI_NR_BARS; i++)
		f->bar[i].sizing = (st->sizing >> i) & 1;
	memcpy(f->msix, st->msix, sizeof(f->msix[0]) * st->nvec);
	f->msix_pba = st->pba;
	vmm__pci_intx_update(f);
	vmm__pci_msix_flush(f);
}

static int pci_restore(void *opaque, struct kb_reader *in)
{
	struct vmm_pci *pci = opaque;
	struct func_state *st;
	uint32_t magic, addr;
	uint16_t version, nr;
	int rv = 0;

	magic = kb_rd_u32(in);
	version = kb_rd_u16(in);
	nr = kb_rd_u16(in);
	addr = kb_rd_u32(in);
	if (in->err)
		return in->err;
	if (magic != PCI_STATE_MAGIC)
		return KB_EPROTO;
	if (version != PCI_STATE_VERSION)
		return KB_EVERSION;
	if (nr != pci->nr_slots) {
		kb_log(pci->log, KB_LOG_ERROR, "pci restore: %u functions saved, %u present", nr,
		       pci->nr_slots);
		return KB_EPROTO;
	}
	st = kb_calloc(nr, sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	for (unsigned s = 0; s < nr && rv == 0; s++) {
		struct vmm_pci_func *f = pci->slots[s];
		pthread_mutex_lock(f->lock);
		rv = parse_func(pci, f, in, &st[s]);
		pthread_mutex_unlock(f->lock);
	}
	if (rv == 0) {
		for (unsigned s = 0; s < nr; s++) {
			struct vmm_pci_func *f = pci->slots[s];
			pthread_mutex_lock(f->lock);
			apply_func(f, &st[s]);
			pthread_mutex_unlock(f->lock);
		}
		__atomic_store_n(&pci->addr, addr, __ATOMIC_RELEASE);
	}
	kb_free(st);
	return rv;
}

static void pci_reset(void *opaque)
{
	struct vmm_pci *pci = opaque;

	__atomic_store_n(&pci->addr, 0, __ATOMIC_RELEASE);
	for (unsigned s = 0; s < pci->nr_slots; s++) {
		struct vmm_pci_func *f = pci->slots[s];
		pthread_mutex_lock(f->lock);
		vmm__pci_func_reset(f);
		pthread_mutex_unlock(f->lock);
	}
}

/* Frees the bridge only: the functions belong to their devices, which may already be
 * gone. */
static void pci_destroy(void *opaque)
{
	struct vmm_pci *pci = opaque;

	if (pci->vm->pci == pci)
		pci->vm->pci = NULL;
	pthread_mutex_destroy(&pci->irq_lock);
	pthread_mutex_destroy(&pci->lock);
	kb_free(pci);
}

const struct vmm_dev_ops vmm__pci_dev_ops = {
    .name = "pci",
    .save = pci_save,
    .restore = pci_restore,
    .reset = pci_reset,
    .destroy = pci_destroy,
};
