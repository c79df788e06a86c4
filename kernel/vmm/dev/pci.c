/*
 * The PCI host bridge: type-1 configuration access on ports 0xCF8/0xCFC, configuration
 * space of each function, BAR assignment and dispatch, and INTx routing.
 *
 * Happy path: the guest writes an address to 0xCF8 (bit 31 set, bus 0, slot, register)
 * and reads or writes 1, 2 or 4 bytes at 0xCFC + (register & 3). Accesses to absent
 * slots, other buses, other functions, or with bit 31 clear read as all ones and are
 * dropped on write. Writes change only the bits a function marks writable (wmask); BARs
 * answer the sizing probe and otherwise keep the address the VMM assigned.
 *
 * A BAR access arrives from vm->mmio, takes the function's lock, and goes to the MSI-X
 * table (pci_msix.c) or to the device. With memory decoding off (command bit 1 clear)
 * BAR reads return all ones and writes are dropped, as on hardware.
 *
 * INTx: each function asks for its line with vmm_pci_set_intx(); functions sharing a GSI
 * are OR-ed here (KVM_IRQ_LINE has one source for all of user space) and the line is
 * driven level-triggered, active high.
 */
#include <errno.h>
#include <string.h>

#include "kernel/vmm/dev/pci.h"
#include "kernel/vmm/dev/pci_internal.h"
#include "lib/heap.h"

#define HOST_VENDOR 0x8086
#define HOST_DEVICE 0x0d57
#define HOST_CLASS  0x060000 /* bridge, host bridge */

#define ADDR_ENABLE 0x80000000u

/* Legacy GSIs for INTA# of slots 1, 2, 3, 4, 5, ... */
static const uint8_t intx_gsis[] = {5, 9, 10, 11};

/* ---- small helpers ----------------------------------------------------------------- */

uint16_t vmm_pci_cfg_r16(const struct vmm_pci_func *f, unsigned off)
{
	return (uint16_t)(f->cfg[off] | f->cfg[off + 1] << 8);
}

uint32_t vmm_pci_cfg_r32(const struct vmm_pci_func *f, unsigned off)
{
	return (uint32_t)f->cfg[off] | (uint32_t)f->cfg[off + 1] << 8 |
	       (uint32_t)f->cfg[off + 2] << 16 | (uint32_t)f->cfg[off + 3] << 24;
}

void vmm_pci_cfg_w16(struct vmm_pci_func *f, unsigned off, uint16_t v)
{
	f->cfg[off] = (uint8_t)v;
	f->cfg[off + 1] = (uint8_t)(v >> 8);
}

void vmm_pci_cfg_w32(struct vmm_pci_func *f, unsigned off, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		f->cfg[off + i] = (uint8_t)(v >> (8 * i));
}

static void wmask_w16(struct vmm_pci_func *f, unsigned off, uint16_t v)
{
	f->wmask[off] = (uint8_t)v;
	f->wmask[off + 1] = (uint8_t)(v >> 8);
}

bool vmm_pci_mem_enabled(const struct vmm_pci_func *f)
{
	return (vmm_pci_cfg_r16(f, VMM_PCI_COMMAND) & VMM_PCI_CMD_MEM) != 0;
}

bool vmm_pci_msix_enabled(const struct vmm_pci_func *f)
{
	return f->msix_cap != 0 &&
	       (vmm_pci_cfg_r16(f, f->msix_cap + 2) & VMM_PCI_MSIX_CTRL_ENABLE) != 0;
}

/* ---- building a function ------------------------------------------------------------ */

void vmm_pci_func_init(struct vmm_pci_func *f, uint16_t vendor, uint16_t device, uint8_t rev,
		       uint32_t class_code, uint16_t subsys_vendor, uint16_t subsys_id)
{
	memset(f, 0, sizeof(*f));
	vmm_pci_cfg_w16(f, VMM_PCI_VENDOR_ID, vendor);
	vmm_pci_cfg_w16(f, VMM_PCI_DEVICE_ID, device);
	f->cfg[VMM_PCI_REVISION] = rev;
	f->cfg[VMM_PCI_CLASS_PROG] = (uint8_t)class_code;
	f->cfg[VMM_PCI_CLASS_PROG + 1] = (uint8_t)(class_code >> 8);
	f->cfg[VMM_PCI_CLASS_PROG + 2] = (uint8_t)(class_code >> 16);
	f->cfg[VMM_PCI_HEADER_TYPE] = 0;
	vmm_pci_cfg_w16(f, VMM_PCI_SUBSYS_VENDOR, subsys_vendor);
	vmm_pci_cfg_w16(f, VMM_PCI_SUBSYS_ID, subsys_id);
	f->cfg[VMM_PCI_INT_PIN] = 1; /* INTA# */
	wmask_w16(f, VMM_PCI_COMMAND,
		  VMM_PCI_CMD_IO | VMM_PCI_CMD_MEM | VMM_PCI_CMD_MASTER | VMM_PCI_CMD_PARITY |
		      VMM_PCI_CMD_SERR | VMM_PCI_CMD_INTX_DISABLE);
	f->wmask[VMM_PCI_CACHE_LINE] = 0xff;
	f->wmask[VMM_PCI_INT_LINE] = 0xff;
	f->cap_end = VMM_PCI_CAP_START;
	f->msix_bar = -1;
}

int vmm_pci_func_add_cap(struct vmm_pci_func *f, uint8_t id, const void *body, unsigned len,
			 unsigned *off)
{
	unsigned at = (f->cap_end + 3) & ~3u;

	if (len < 2 || len > VMM_PCI_CFG_SIZE || at + len > VMM_PCI_CFG_SIZE)
		return KB_ETOOBIG;
	f->cfg[at] = id;
	f->cfg[at + 1] = 0;
	if (len > 2)
		memcpy(&f->cfg[at + 2], body, len - 2);
	if (f->cap_last == 0)
		f->cfg[VMM_PCI_CAP_PTR] = (uint8_t)at;
	else
		f->cfg[f->cap_last + 1] = (uint8_t)at;
	f->cap_last = at;
	f->cap_end = at + len;
	vmm_pci_cfg_w16(f, VMM_PCI_STATUS,
			vmm_pci_cfg_r16(f, VMM_PCI_STATUS) | VMM_PCI_STATUS_CAP_LIST);
	if (off != NULL)
		*off = at;
	return 0;
}

int vmm_pci_func_set_bar(struct vmm_pci_func *f, int idx, uint64_t size,
			 const struct vmm_io_ops *ops, void *opaque)
{
	if (idx < 0 || idx >= VMM_PCI_NR_BARS || size < VMM_PAGE_SIZE || (size & (size - 1)) != 0 ||
	    size > (1ull << 30) || ops == NULL)
		return -EINVAL;
	f->bar[idx] = (struct vmm_pci_bar){.size = size, .ops = ops, .opaque = opaque, .func = f};
	return 0;
}

/* ---- configuration access ------------------------------------------------------------ */

static bool is_bar(unsigned dw)
{
	return dw >= VMM_PCI_BAR0 && dw < VMM_PCI_BAR0 + 4 * VMM_PCI_NR_BARS;
}

/* The dword the guest sees at dw (4-aligned). */
static uint32_t cfg_dword(const struct vmm_pci_func *f, unsigned dw)
{
	if (is_bar(dw)) {
		const struct vmm_pci_bar *b = &f->bar[(dw - VMM_PCI_BAR0) / 4];
		if (b->size != 0 && b->sizing)
			return (uint32_t) ~(b->size - 1); /* 32-bit memory BAR: flag bits 0 */
	}
	return vmm_pci_cfg_r32(f, dw);
}

static void cfg_read_locked(struct vmm_pci_func *f, unsigned reg, void *data, unsigned len)
{
	uint32_t dw;

	if (f->ops != NULL && f->ops->cfg_read != NULL)
		f->ops->cfg_read(f, reg, len);
	dw = cfg_dword(f, reg & ~3u);
	memcpy(data, (const uint8_t *)&dw + (reg & 3), len);
}

static void bar_write(struct vmm_pci_func *f, int idx, uint32_t v)
{
	struct vmm_pci_bar *b = &f->bar[idx];
	uint32_t mask = (uint32_t) ~(b->size - 1);

	if (b->size == 0)
		return;
	/* All address bits set is the sizing probe; any other value ends it. The address
	 * itself never moves: writing it back is accepted, anything else is ignored. */
	b->sizing = (v & mask) == mask;
}

static bool touches(unsigned reg, unsigned len, unsigned off, unsigned n)
{
	return reg < off + n && off < reg + len;
}

static void cfg_write_locked(struct vmm_pci_func *f, unsigned reg, const void *data, unsigned len)
{
	unsigned dw = reg & ~3u;
	const uint8_t *in = data;

	if (is_bar(dw)) {
		uint32_t v = cfg_dword(f, dw);
		memcpy((uint8_t *)&v + (reg & 3), data, len);
		bar_write(f, (int)(dw - VMM_PCI_BAR0) / 4, v);
	} else {
		for (unsigned i = 0; i < len; i++) {
			uint8_t m = f->wmask[reg + i];
			f->cfg[reg + i] = (uint8_t)((f->cfg[reg + i] & ~m) | (in[i] & m));
		}
	}
	if (touches(reg, len, VMM_PCI_COMMAND, 2))
		vmm__pci_intx_update(f);
	if (f->msix_cap != 0 && touches(reg, len, f->msix_cap + 2, 2)) {
		vmm__pci_intx_update(f);
		vmm__pci_msix_flush(f);
	}
	if (f->ops != NULL && f->ops->cfg_write != NULL)
		f->ops->cfg_write(f, reg, len);
}

/* The function and register the latched address selects, or NULL. */
static struct vmm_pci_func *select_func(struct vmm_pci *pci, unsigned off, unsigned len,
					unsigned *reg)
{
	uint32_t a = __atomic_load_n(&pci->addr, __ATOMIC_ACQUIRE);
	unsigned bus = (a >> 16) & 0xff, slot = (a >> 11) & 0x1f, fn = (a >> 8) & 7;

	if (!(a & ADDR_ENABLE) || bus != 0 || fn != 0 || off + len > 4)
		return NULL;
	if (slot >= pci->nr_slots)
		return NULL;
	*reg = (a & 0xfc) + off;
	return pci->slots[slot];
}

static void port_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct vmm_pci *pci = opaque;
	struct vmm_pci_func *f;
	unsigned reg;

	if (off < 4) {
		uint32_t a = __atomic_load_n(&pci->addr, __ATOMIC_ACQUIRE);
		if (off + len <= 4)
			memcpy(data, (const uint8_t *)&a + off, len);
		else
			memset(data, 0xff, len);
		return;
	}
	f = select_func(pci, (unsigned)off - 4, len, &reg);
	if (f == NULL) {
		memset(data, 0xff, len);
		return;
	}
	pthread_mutex_lock(f->lock);
	cfg_read_locked(f, reg, data, len);
	pthread_mutex_unlock(f->lock);
}

static void port_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vmm_pci *pci = opaque;
	struct vmm_pci_func *f;
	unsigned reg;

	if (off < 4) {
		/* Only a dword write at 0xCF8 sets the address; byte writes there are other
		 * chipset registers on real hardware and are ignored. */
		if (off == 0 && len == 4) {
			uint32_t a;
			memcpy(&a, data, 4);
			__atomic_store_n(&pci->addr, a, __ATOMIC_RELEASE);
		}
		return;
	}
	f = select_func(pci, (unsigned)off - 4, len, &reg);
	if (f == NULL)
		return;
	pthread_mutex_lock(f->lock);
	cfg_write_locked(f, reg, data, len);
	pthread_mutex_unlock(f->lock);
}

static const struct vmm_io_ops port_ops = {.read = port_read, .write = port_write};

/* ---- BAR dispatch --------------------------------------------------------------------- */

static void bar_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct vmm_pci_bar *b = opaque;
	struct vmm_pci_func *f = b->func;
	int idx = (int)(b - f->bar);

	pthread_mutex_lock(f->lock);
	if (!vmm_pci_mem_enabled(f))
		memset(data, 0xff, len);
	else if (vmm__pci_msix_claims(f, idx, off, len))
		vmm__pci_msix_read(f, off, data, len);
	else if (b->ops->read != NULL)
		b->ops->read(b->opaque, off, data, len);
	else
		memset(data, 0, len);
	pthread_mutex_unlock(f->lock);
}

static void bar_write_op(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vmm_pci_bar *b = opaque;
	struct vmm_pci_func *f = b->func;
	int idx = (int)(b - f->bar);

	pthread_mutex_lock(f->lock);
	if (vmm_pci_mem_enabled(f)) {
		if (vmm__pci_msix_claims(f, idx, off, len))
			vmm__pci_msix_write(f, off, data, len);
		else if (b->ops->write != NULL)
			b->ops->write(b->opaque, off, data, len);
	}
	pthread_mutex_unlock(f->lock);
}

static const struct vmm_io_ops bar_ops = {.read = bar_read, .write = bar_write_op};

/* ---- INTx --------------------------------------------------------------------------- */

void vmm__pci_intx_update(struct vmm_pci_func *f)
{
	struct vmm_pci *pci = f->pci;
	uint16_t status = vmm_pci_cfg_r16(f, VMM_PCI_STATUS);
	bool out;
	int rv = 0;

	if (f->intx_req)
		status |= VMM_PCI_STATUS_INTX;
	else
		status &= (uint16_t)~VMM_PCI_STATUS_INTX;
	vmm_pci_cfg_w16(f, VMM_PCI_STATUS, status);
	if (pci == NULL || f->cfg[VMM_PCI_INT_PIN] == 0 || f->gsi >= PCI_NR_GSIS)
		return;
	out = f->intx_req && !(vmm_pci_cfg_r16(f, VMM_PCI_COMMAND) & VMM_PCI_CMD_INTX_DISABLE) &&
	      !vmm_pci_msix_enabled(f);
	if (out == f->intx_out)
		return;
	f->intx_out = out;
	pthread_mutex_lock(&pci->irq_lock);
	if (out && ++pci->gsi_refs[f->gsi] == 1)
		rv = vmm_irq_line(pci->vm, f->gsi, 1);
	else if (!out && --pci->gsi_refs[f->gsi] == 0)
		rv = vmm_irq_line(pci->vm, f->gsi, 0);
	if (rv < 0 && !pci->irq_err_logged) {
		pci->irq_err_logged = true;
		kb_log(pci->log, KB_LOG_WARN, "pci: driving GSI %u: %s", f->gsi, kb_strerror(rv));
	}
	pthread_mutex_unlock(&pci->irq_lock);
}

void vmm_pci_set_intx(struct vmm_pci_func *f, bool level)
{
	f->intx_req = level;
	vmm__pci_intx_update(f);
}

int vmm_pci_routes(const struct vmm_pci *pci, struct vmm_pci_route *out, int max)
{
	int n = 0;

	for (unsigned s = 1; s < pci->nr_slots && n < max; s++) {
		const struct vmm_pci_func *f = pci->slots[s];
		if (f->cfg[VMM_PCI_INT_PIN] == 0)
			continue;
		out[n++] = (struct vmm_pci_route){
		    .slot = (uint8_t)s, .pin = f->cfg[VMM_PCI_INT_PIN], .gsi = f->gsi};
	}
	return n;
}

/* ---- registration and reset --------------------------------------------------------- */

/* Drops the range at base from a bus (undo of a vmm_bus_add made just before). */
static void bus_drop(struct vmm_bus *b, uint64_t base)
{
	for (int i = 0; i < b->n; i++) {
		if (b->r[i].base == base) {
			memmove(&b->r[i], &b->r[i + 1], (size_t)(b->n - i - 1) * sizeof(b->r[0]));
			b->n--;
			return;
		}
	}
}

static int place(struct vmm_pci *pci, struct vmm_pci_func *f, pthread_mutex_t *lock,
		 const struct vmm_pci_func_ops *ops, void *opaque)
{
	uint64_t next = pci->mmio_next, addr[VMM_PCI_NR_BARS] = {0};
	unsigned slot = pci->nr_slots;
	int rv, i;

	if (slot >= VMM_PCI_NR_SLOTS)
		return KB_ETOOBIG;
	for (i = 0; i < VMM_PCI_NR_BARS; i++) {
		uint64_t size = f->bar[i].size;
		if (size == 0)
			continue;
		addr[i] = (next + size - 1) & ~(size - 1);
		if (addr[i] >= VMM_PCI_MMIO_END || VMM_PCI_MMIO_END - addr[i] < size)
			return KB_ETOOBIG;
		next = addr[i] + size;
	}
	for (i = 0; i < VMM_PCI_NR_BARS; i++) {
		if (f->bar[i].size == 0)
			continue;
		rv = vmm_bus_add(&pci->vm->mmio, addr[i], f->bar[i].size, &bar_ops, &f->bar[i]);
		if (rv < 0)
			goto err_bars;
	}

	f->pci = pci;
	f->vm = pci->vm;
	f->lock = lock;
	f->ops = ops;
	f->opaque = opaque;
	f->slot = (uint8_t)slot;
	for (i = 0; i < VMM_PCI_NR_BARS; i++) {
		f->bar[i].addr = addr[i];
		f->bar[i].func = f;
		f->bar[i].sizing = false;
		vmm_pci_cfg_w32(f, VMM_PCI_BAR0 + 4 * (unsigned)i, (uint32_t)addr[i]);
	}
	if (f->cfg[VMM_PCI_INT_PIN] != 0) {
		f->gsi = intx_gsis[(slot - 1) % (sizeof(intx_gsis) / sizeof(intx_gsis[0]))];
		f->cfg[VMM_PCI_INT_LINE] = (uint8_t)f->gsi;
	}
	memcpy(f->cfg_reset, f->cfg, sizeof(f->cfg));
	pci->slots[slot] = f;
	pci->nr_slots = slot + 1;
	pci->mmio_next = next;
	return 0;

err_bars:
	while (--i >= 0) {
		if (f->bar[i].size != 0)
			bus_drop(&pci->vm->mmio, addr[i]);
	}
	return rv;
}

int vmm_pci_register(struct vmm_vm *vm, struct vmm_pci_func *f, pthread_mutex_t *lock,
		     const struct vmm_pci_func_ops *ops, void *opaque)
{
	if (vm->pci == NULL)
		return KB_ESTATE;
	return place(vm->pci, f, lock, ops, opaque);
}

void vmm__pci_func_reset(struct vmm_pci_func *f)
{
	memcpy(f->cfg, f->cfg_reset, sizeof(f->cfg));
	for (int i = 0; i < VMM_PCI_NR_BARS; i++)
		f->bar[i].sizing = false;
	vmm__pci_msix_reset(f);
	vmm__pci_intx_update(f);
}

int vmm_pci_init(struct vmm_vm *vm)
{
	struct vmm_pci *pci;
	int rv;

	if (vm->pci != NULL)
		return KB_ESTATE;
	pci = kb_calloc(1, sizeof(*pci));
	if (pci == NULL)
		return -ENOMEM;
	pci->vm = vm;
	pci->log = vm->log != NULL ? vm->log : &kb_log_default;
	pci->mmio_next = VMM_PCI_MMIO_BASE;
	pthread_mutex_init(&pci->lock, NULL);
	pthread_mutex_init(&pci->irq_lock, NULL);

	vmm_pci_func_init(&pci->host, HOST_VENDOR, HOST_DEVICE, 0, HOST_CLASS, 0, 0);
	pci->host.cfg[VMM_PCI_INT_PIN] = 0;
	pci->host.wmask[VMM_PCI_INT_LINE] = 0;
	rv = place(pci, &pci->host, &pci->lock, NULL, NULL);
	if (rv < 0)
		goto err_free;
	rv = vmm_bus_add(&vm->pio, VMM_PCI_PORT_ADDR, 8, &port_ops, pci);
	if (rv < 0)
		goto err_free;
	rv = vmm_dev_register(vm, VMM_DEV_ID(VMM_DEV_PCI, 0), &vmm__pci_dev_ops, pci);
	if (rv < 0)
		goto err_port;
	vm->pci = pci;
	return 0;

err_port:
	bus_drop(&vm->pio, VMM_PCI_PORT_ADDR);
err_free:
	pthread_mutex_destroy(&pci->irq_lock);
	pthread_mutex_destroy(&pci->lock);
	kb_free(pci);
	return rv;
}
