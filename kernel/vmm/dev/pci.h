/*
 * The PCI host bridge of vmx and the contract between it and PCI functions (virtio-pci).
 *
 * One bus (0), reached through the type-1 configuration mechanism on ports 0xCF8 (address)
 * and 0xCFC-0xCFF (data). Slot 0 is the host bridge; every other slot holds one
 * single-function device. The VMM assigns everything a firmware would: each memory BAR
 * gets a naturally aligned address in the MMIO hole [VMM_PCI_MMIO_BASE, VMM_PCI_MMIO_END)
 * and is registered on vm->mmio; each function gets INTA# routed to a GSI taken round-robin
 * from 5, 9, 10, 11, written to its Interrupt Line register. The guest cannot move BARs:
 * it can size them (write all ones) and write back the assigned address, nothing else.
 *
 * Locking: a PCI function is embedded in its device and guarded by the device's mutex
 * (given at vmm_pci_register). The bridge takes that mutex around every configuration
 * access and every BAR access, so the device's BAR handlers run with it held. Functions
 * marked "lock held" below must be called with that mutex held.
 *
 * Layout of the MMIO hole, INTx routing and the saved state: docs/virtio.md.
 */
#ifndef VMM_DEV_PCI_H
#define VMM_DEV_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernel/vmm/vmm.h"

#define VMM_PCI_MMIO_BASE 0xC0000000ull /* KGUEST_MMIO_HOLE */
#define VMM_PCI_MMIO_END  0xFEC00000ull /* the IOAPIC and LAPIC live above */
#define VMM_PCI_CFG_SIZE  256
#define VMM_PCI_NR_BARS	  6
#define VMM_PCI_NR_SLOTS  32
#define VMM_PCI_MSIX_MAX  32 /* vectors per function this bridge supports */
#define VMM_PCI_PORT_ADDR 0xCF8
#define VMM_PCI_PORT_DATA 0xCFC

/* Configuration space registers (type 0 header). */
#define VMM_PCI_VENDOR_ID     0x00
#define VMM_PCI_DEVICE_ID     0x02
#define VMM_PCI_COMMAND	      0x04
#define VMM_PCI_STATUS	      0x06
#define VMM_PCI_REVISION      0x08
#define VMM_PCI_CLASS_PROG    0x09 /* class code: prog-if, subclass, class (3 bytes) */
#define VMM_PCI_CACHE_LINE    0x0c
#define VMM_PCI_HEADER_TYPE   0x0e
#define VMM_PCI_BAR0	      0x10
#define VMM_PCI_SUBSYS_VENDOR 0x2c
#define VMM_PCI_SUBSYS_ID     0x2e
#define VMM_PCI_ROM	      0x30
#define VMM_PCI_CAP_PTR	      0x34
#define VMM_PCI_INT_LINE      0x3c
#define VMM_PCI_INT_PIN	      0x3d
#define VMM_PCI_CAP_START     0x40

#define VMM_PCI_CMD_IO		 0x0001
#define VMM_PCI_CMD_MEM		 0x0002
#define VMM_PCI_CMD_MASTER	 0x0004
#define VMM_PCI_CMD_PARITY	 0x0040
#define VMM_PCI_CMD_SERR	 0x0100
#define VMM_PCI_CMD_INTX_DISABLE 0x0400
#define VMM_PCI_STATUS_INTX	 0x0008
#define VMM_PCI_STATUS_CAP_LIST	 0x0010

#define VMM_PCI_CAP_ID_VENDOR	 0x09
#define VMM_PCI_CAP_ID_MSIX	 0x11
#define VMM_PCI_MSIX_CTRL_ENABLE 0x8000
#define VMM_PCI_MSIX_CTRL_MASK	 0x4000
#define VMM_PCI_MSIX_ENTRY_SIZE	 16
#define VMM_PCI_MSIX_VEC_MASKED	 0x1

struct vmm_pci;
struct vmm_pci_func;

/* Optional hooks of a function; called with the function's lock held. */
struct vmm_pci_func_ops {
	/* Before the guest reads [off, off+len) of configuration space: lets the device
	 * refresh bytes it computes (virtio's configuration access window). */
	void (*cfg_read)(struct vmm_pci_func *f, unsigned off, unsigned len);
	/* After the bridge applied a guest write to [off, off+len). */
	void (*cfg_write)(struct vmm_pci_func *f, unsigned off, unsigned len);
};

struct vmm_pci_bar {
	uint64_t size;		      /* power of two >= 4096, 0: BAR not implemented */
	uint64_t addr;		      /* assigned at vmm_pci_register */
	const struct vmm_io_ops *ops; /* called with the function's lock held */
	void *opaque;
	bool sizing; /* the guest wrote all ones: reads return the size mask */
	struct vmm_pci_func *func;
};

struct vmm_pci_msix_entry {
	uint32_t addr_lo;
	uint32_t addr_hi;
	uint32_t data;
	uint32_t ctrl; /* bit 0: vector masked */
};

/*
 * A PCI function. The device embeds it, fills it with vmm_pci_func_init() and the
 * add/set helpers, then hands it to vmm_pci_register(). Fields are the bridge's; devices
 * read cfg only through the helpers below.
 */
struct vmm_pci_func {
	uint8_t cfg[VMM_PCI_CFG_SIZE];
	uint8_t wmask[VMM_PCI_CFG_SIZE];     /* bits the guest may write */
	uint8_t cfg_reset[VMM_PCI_CFG_SIZE]; /* power-on image, taken at registration */
	struct vmm_pci_bar bar[VMM_PCI_NR_BARS];
	unsigned cap_end;  /* first free byte for the next capability */
	unsigned cap_last; /* offset of the last capability in the list, 0: none */

	unsigned msix_cap; /* offset of the MSI-X capability, 0: none */
	unsigned msix_nvec;
	int msix_bar;
	uint32_t msix_table_off, msix_pba_off;
	struct vmm_pci_msix_entry msix[VMM_PCI_MSIX_MAX];
	uint32_t msix_pba; /* pending bits */

	/* set by vmm_pci_register */
	struct vmm_pci *pci;
	struct vmm_vm *vm;
	pthread_mutex_t *lock;
	const struct vmm_pci_func_ops *ops;
	void *opaque;
	uint8_t slot;
	uint32_t gsi;
	bool intx_req; /* the device asks for INTx */
	bool intx_out; /* what this function contributes to its GSI */
};

struct vmm_pci_route {
	uint8_t slot;
	uint8_t pin; /* 1 = INTA# */
	uint32_t gsi;
};

/*
 * Creates the host bridge: claims ports 0xCF8-0xCFF on vm->pio, registers its state as
 * device VMM_DEV_ID(VMM_DEV_PCI, 0) and sets vm->pci. Call once, after guest memory is set
 * up and before any PCI device is created. Returns 0, -ENOMEM, KB_EEXIST or KB_ESTATE
 * (called twice). Once registered the bridge is owned by the device list and freed by
 * its destroy op; on error nothing is left on the buses. Creation thread.
 */
int vmm_pci_init(struct vmm_vm *vm);

/* Routes of every function but the host bridge (slot, INTA#, GSI), for the tables the
 * boot code writes (MP table). Returns the number filled, at most max. Any thread. */
int vmm_pci_routes(const struct vmm_pci *pci, struct vmm_pci_route *out, int max);

/* Fills the power-on configuration header of a type 0 function: ids, revision, class
 * (0xCCSSPP: class, subclass, prog-if), subsystem ids, INTA#, and the writable bits of the
 * command register, cache line size and interrupt line. */
void vmm_pci_func_init(struct vmm_pci_func *f, uint16_t vendor, uint16_t device, uint8_t rev,
		       uint32_t class_code, uint16_t subsys_vendor, uint16_t subsys_id);

/* Appends a capability of len bytes (including the id and next bytes) to the list; body
 * holds bytes 2..len-1. The offset is returned through off. 0 or KB_ETOOBIG. */
int vmm_pci_func_add_cap(struct vmm_pci_func *f, uint8_t id, const void *body, unsigned len,
			 unsigned *off);

/* Declares BAR idx as a 32-bit non-prefetchable memory BAR of size bytes (a power of two,
 * at least 4096) served by ops. -EINVAL on a bad index or size. */
int vmm_pci_func_set_bar(struct vmm_pci_func *f, int idx, uint64_t size,
			 const struct vmm_io_ops *ops, void *opaque);

/* Adds an MSI-X capability with nvec vectors whose table and pending-bit array live in
 * BAR bar at the given offsets; the bridge serves those ranges itself. 0, -EINVAL or
 * KB_ETOOBIG. Call after vmm_pci_func_set_bar(bar). */
int vmm_pci_func_add_msix(struct vmm_pci_func *f, unsigned nvec, int bar, uint32_t table_off,
			  uint32_t pba_off);

/*
 * Puts f in the next free slot, assigns its BAR addresses and GSI, and registers the BARs
 * on vm->mmio. lock is the device's mutex, which the bridge takes around every access to
 * f; ops may be NULL. f is borrowed for the VM's life. All or nothing: 0, KB_ESTATE (no
 * bridge), KB_ETOOBIG (no slot or MMIO space left), or an error from vmm_bus_add.
 * Creation thread, before the vCPUs run.
 */
int vmm_pci_register(struct vmm_vm *vm, struct vmm_pci_func *f, pthread_mutex_t *lock,
		     const struct vmm_pci_func_ops *ops, void *opaque);

/* Lock held. */
uint16_t vmm_pci_cfg_r16(const struct vmm_pci_func *f, unsigned off);
uint32_t vmm_pci_cfg_r32(const struct vmm_pci_func *f, unsigned off);
void vmm_pci_cfg_w16(struct vmm_pci_func *f, unsigned off, uint16_t v);
void vmm_pci_cfg_w32(struct vmm_pci_func *f, unsigned off, uint32_t v);
/* Memory decoding on (command register bit 1). */
bool vmm_pci_mem_enabled(const struct vmm_pci_func *f);
/* MSI-X enabled by the guest: the function must not use INTx. */
bool vmm_pci_msix_enabled(const struct vmm_pci_func *f);

/* Lock held. Sets the function's INTx request; the bridge drives the GSI (shared GSIs
 * are OR-ed) unless the guest disabled INTx or enabled MSI-X. Errors from the irqchip
 * are logged, not returned. */
void vmm_pci_set_intx(struct vmm_pci_func *f, bool level);

/* Lock held. Signals MSI-X vector vec: sends it, or sets its pending bit while it or the
 * function is masked. Vectors past the table are ignored. */
void vmm_pci_msix_notify(struct vmm_pci_func *f, unsigned vec);

#endif
