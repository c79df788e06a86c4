/*
 * Shared by the files of the PCI host bridge (pci.c, pci_msix.c, pci_state.c) only.
 */
#ifndef VMM_DEV_PCI_INTERNAL_H
#define VMM_DEV_PCI_INTERNAL_H

#include "kernel/vmm/dev/pci.h"
#include "lib/log.h"

#define PCI_NR_GSIS 24

struct vmm_pci {
	struct vmm_vm *vm;
	struct kb_logger *log;
	pthread_mutex_t lock;	  /* the host bridge function's lock */
	pthread_mutex_t irq_lock; /* gsi_refs and the line levels they drive */
	uint32_t addr;		  /* the CF8 address latch, accessed atomically */
	struct vmm_pci_func host;
	struct vmm_pci_func *slots[VMM_PCI_NR_SLOTS]; /* fixed once the vCPUs run */
	unsigned nr_slots;
	uint64_t mmio_next;		/* BAR allocator */
	unsigned gsi_refs[PCI_NR_GSIS]; /* functions asserting each GSI */
	bool irq_err_logged;
};

/* pci.c */
/* Recomputes what f drives on its GSI from its request, the command register and MSI-X.
 * Also keeps the status register's interrupt bit. Lock held. */
void vmm__pci_intx_update(struct vmm_pci_func *f);
/* Returns f to its power-on configuration: the image taken at registration, BARs out of
 * sizing, MSI-X table masked, nothing pending, INTx recomputed. Lock held. */
void vmm__pci_func_reset(struct vmm_pci_func *f);

/* pci_msix.c; lock held. */
bool vmm__pci_msix_claims(const struct vmm_pci_func *f, int bar, uint64_t off, unsigned len);
void vmm__pci_msix_read(struct vmm_pci_func *f, uint64_t off, void *data, unsigned len);
void vmm__pci_msix_write(struct vmm_pci_func *f, uint64_t off, const void *data, unsigned len);
/* Sends the pending vectors that are no longer masked (after an unmask or a restore). */
void vmm__pci_msix_flush(struct vmm_pci_func *f);
void vmm__pci_msix_reset(struct vmm_pci_func *f);

/* pci_state.c */
extern const struct vmm_dev_ops vmm__pci_dev_ops;

#endif
