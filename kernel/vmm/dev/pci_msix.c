/*
 * MSI-X for PCI functions: the capability, the vector table and the pending-bit array
 * (PBA) that live in one of the function's BARs, and sending vectors.
 *
 * Capability (12 bytes): id 0x11, next, Message Control (table size - 1 in bits 10:0,
 * function mask bit 14, enable bit 15: the only writable bits), Table offset/BIR, PBA
 * offset/BIR. Table entry (16 bytes): message address low (bits 1:0 read as zero),
 * message address high, message data, vector control (bit 0: masked; others read as
 * zero). Entries start masked. A vector signalled while it or the function is masked
 * sets its pending bit and is sent when unmasked. Any access width is accepted.
 */
#include <errno.h>
#include <string.h>

#include "kernel/vmm/dev/pci.h"
#include "kernel/vmm/dev/pci_internal.h"

static uint32_t pba_size(unsigned nvec)
{
	return (nvec + 63) / 64 * 8;
}

int vmm_pci_func_add_msix(struct vmm_pci_func *f, unsigned nvec, int bar, uint32_t table_off,
			  uint32_t pba_off)
{
	uint8_t body[10];
	uint64_t tsize = (uint64_t)nvec * VMM_PCI_MSIX_ENTRY_SIZE;
	uint16_t ctrl = (uint16_t)(nvec - 1);
	uint32_t t = table_off | (uint32_t)bar, p = pba_off | (uint32_t)bar;
	unsigned off;
	int rv;

	if (nvec == 0 || nvec > VMM_PCI_MSIX_MAX || f->msix_cap != 0)
		return -EINVAL;
	if (bar < 0 || bar >= VMM_PCI_NR_BARS || f->bar[bar].size == 0)
		return -EINVAL;
	if ((table_off | pba_off) & 7 || table_off + tsize > f->bar[bar].size ||
	    pba_off + pba_size(nvec) > f->bar[bar].size)
		return -EINVAL;
	if (table_off < pba_off + pba_size(nvec) && pba_off < table_off + tsize)
		return -EINVAL;
	memcpy(&body[0], &ctrl, 2);
	memcpy(&body[2], &t, 4);
	memcpy(&body[6], &p, 4);
	rv = vmm_pci_func_add_cap(f, VMM_PCI_CAP_ID_MSIX, body, 12, &off);
	if (rv < 0)
		return rv;
	f->wmask[off + 3] = (uint8_t)((VMM_PCI_MSIX_CTRL_ENABLE | VMM_PCI_MSIX_CTRL_MASK) >> 8);
	f->msix_cap = off;
	f->msix_nvec = nvec;
	f->msix_bar = bar;
	f->msix_table_off = table_off;
	f->msix_pba_off = pba_off;
	vmm__pci_msix_reset(f);
	return 0;
}

void vmm__pci_msix_reset(struct vmm_pci_func *f)
{
	memset(f->msix, 0, sizeof(f->msix));
	for (unsigned i = 0; i < VMM_PCI_MSIX_MAX; i++)
		f->msix[i].ctrl = VMM_PCI_MSIX_VEC_MASKED;
	f->msix_pba = 0;
}

static bool in_range(uint64_t off, unsigned len, uint64_t start, uint64_t size)
{
	return off >= start && off - start < size && len <= size - (off - start);
}

bool vmm__pci_msix_claims(const struct vmm_pci_func *f, int bar, uint64_t off, unsigned len)
{
	if (f->msix_cap == 0 || bar != f->msix_bar)
		return false;
	return in_range(off, len, f->msix_table_off,
			(uint64_t)f->msix_nvec * VMM_PCI_MSIX_ENTRY_SIZE) ||
	       in_range(off, len, f->msix_pba_off, pba_size(f->msix_nvec));
}

static bool func_masked(const struct vmm_pci_func *f)
{
	return (vmm_pci_cfg_r16(f, f->msix_cap + 2) & VMM_PCI_MSIX_CTRL_MASK) != 0;
}

static void send(struct vmm_pci_func *f, unsigned vec)
{
	const struct vmm_pci_msix_entry *e = &f->msix[vec];
	int rv = vmm_irq_msi(f->vm, (uint64_t)e->addr_hi << 32 | e->addr_lo, e->data);

	if (rv < 0 && f->pci != NULL && !f->pci->irq_err_logged) {
		f->pci->irq_err_logged = true;
		kb_log(f->pci->log, KB_LOG_WARN, "pci: slot %u MSI-X vector %u: %s", f->slot, vec,
		       kb_strerror(rv));
	}
}

void vmm_pci_msix_notify(struct vmm_pci_func *f, unsigned vec)
{
	if (vec >= f->msix_nvec || !vmm_pci_msix_enabled(f))
		return;
	if (func_masked(f) || (f->msix[vec].ctrl & VMM_PCI_MSIX_VEC_MASKED))
		f->msix_pba |= 1u << vec;
	else
		send(f, vec);
}

void vmm__pci_msix_flush(struct vmm_pci_func *f)
{
	if (!vmm_pci_msix_enabled(f) || func_masked(f))
		return;
	for (unsigned v = 0; v < f->msix_nvec; v++) {
		if ((f->msix_pba & (1u << v)) && !(f->msix[v].ctrl & VMM_PCI_MSIX_VEC_MASKED)) {
			f->msix_pba &= ~(1u << v);
			send(f, v);
		}
	}
}

static void entry_image(const struct vmm_pci_msix_entry *e, uint8_t img[16])
{
	memcpy(&img[0], &e->addr_lo, 4);
	memcpy(&img[4], &e->addr_hi, 4);
	memcpy(&img[8], &e->data, 4);
	memcpy(&img[12], &e->ctrl, 4);
}

void vmm__pci_msix_read(struct vmm_pci_func *f, uint64_t off, void *data, unsigned len)
{
	uint8_t *out = data;

	for (unsigned i = 0; i < len; i++) {
		uint64_t o = off + i;
		if (o >= f->msix_pba_off && o - f->msix_pba_off < pba_size(f->msix_nvec)) {
			uint64_t bit = (o - f->msix_pba_off) * 8;
			out[i] = bit < 32 ? (uint8_t)(f->msix_pba >> bit) : 0;
		} else {
			uint8_t img[16];
			uint64_t t = o - f->msix_table_off;
			entry_image(&f->msix[t / 16], img);
			out[i] = img[t % 16];
		}
	}
}

void vmm__pci_msix_write(struct vmm_pci_func *f, uint64_t off, const void *data, unsigned len)
{
	const uint8_t *in = data;
	uint64_t first, last;

	if (!in_range(off, len, f->msix_table_off,
		      (uint64_t)f->msix_nvec * VMM_PCI_MSIX_ENTRY_SIZE))
		return; /* the PBA is read-only */
	first = (off - f->msix_table_off) / 16;
	last = (off + len - 1 - f->msix_table_off) / 16;
	for (uint64_t v = first; v <= last; v++) {
		struct vmm_pci_msix_entry *e = &f->msix[v];
		bool was_masked = e->ctrl & VMM_PCI_MSIX_VEC_MASKED;
		uint8_t img[16];

		entry_image(e, img);
		for (unsigned i = 0; i < len; i++) {
			uint64_t t = off + i - f->msix_table_off;
			if (t / 16 == v)
				img[t % 16] = in[i];
		}
		memcpy(&e->addr_lo, &img[0], 4);
		memcpy(&e->addr_hi, &img[4], 4);
		memcpy(&e->data, &img[8], 4);
		memcpy(&e->ctrl, &img[12], 4);
		e->addr_lo &= ~3u;
		e->ctrl &= VMM_PCI_MSIX_VEC_MASKED;
		if (was_masked && !(e->ctrl & VMM_PCI_MSIX_VEC_MASKED))
			vmm__pci_msix_flush(f);
	}
}
