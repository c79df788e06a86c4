/*
 * The virtio-over-PCI transport (modern, virtio 1.x) shared by the virtio devices.
 * Internal to kernel/vmm/dev/virtio.
 *
 * A device embeds a struct vmm_virtio, fills it with vmm__virtio_init(), and provides a
 * struct vmm_virtio_ops. The transport owns the PCI function (one 16 KiB memory BAR with
 * the common, ISR, device and notify structures and the MSI-X table), feature
 * negotiation, device status, queue configuration and interrupts. Every callback and
 * every function below marked "lock held" runs with v->lock held: the bridge takes it
 * around BAR and configuration accesses, the device around its event-thread work.
 *
 * Layout and capabilities: docs/virtio.md.
 */
#ifndef VMM_DEV_VIRTIO_TRANSPORT_H
#define VMM_DEV_VIRTIO_TRANSPORT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "kernel/vmm/dev/pci.h"
#include "kernel/vmm/dev/virtio/queue.h"
#include "kernel/vmm/vmm.h"
#include "lib/buf.h"
#include "lib/log.h"

#define VIRTIO_PCI_VENDOR      0x1af4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + device type */
#define VIRTIO_PCI_SUBSYS_ID   0x1100
#define VIRTIO_PCI_REVISION    1

#define VIRTIO_ID_NET	1
#define VIRTIO_ID_BLOCK 2

/* Device status bits. */
#define VIRTIO_S_ACKNOWLEDGE 0x01
#define VIRTIO_S_DRIVER	     0x02
#define VIRTIO_S_DRIVER_OK   0x04
#define VIRTIO_S_FEATURES_OK 0x08
#define VIRTIO_S_NEEDS_RESET 0x40
#define VIRTIO_S_FAILED	     0x80

/* Transport feature bits. */
#define VIRTIO_F_INDIRECT_DESC (1ull << 28)
#define VIRTIO_F_VERSION_1     (1ull << 32)

#define VIRTIO_ISR_QUEUE  0x1
#define VIRTIO_ISR_CONFIG 0x2

/* virtio_pci_cap cfg_type values. */
#define VIRTIO_PCI_CAP_COMMON  1
#define VIRTIO_PCI_CAP_NOTIFY  2
#define VIRTIO_PCI_CAP_ISR     3
#define VIRTIO_PCI_CAP_DEVICE  4
#define VIRTIO_PCI_CAP_PCI_CFG 5

/* BAR 0 layout. */
#define VIRTIO_BAR	      0
#define VIRTIO_BAR_SIZE	      0x4000
#define VIRTIO_COMMON_OFF     0x0000
#define VIRTIO_COMMON_LEN     0x38
#define VIRTIO_ISR_OFF	      0x1000
#define VIRTIO_ISR_LEN	      4
#define VIRTIO_DEVICE_OFF     0x2000
#define VIRTIO_DEVICE_MAX     0x1000
#define VIRTIO_NOTIFY_OFF     0x3000
#define VIRTIO_NOTIFY_MULT    4
#define VIRTIO_MSIX_TABLE_OFF 0x3800
#define VIRTIO_MSIX_PBA_OFF   0x3c00

#define VIRTIO_MAX_QUEUES 4

struct vmm_virtio;

struct vmm_virtio_ops {
	/* The driver notified queue q (enabled, device live). Lock held; vCPU thread. */
	void (*notify)(struct vmm_virtio *v, unsigned q);
	/* Reads [off, off+len) of the device configuration (within cfg_size). Lock held. */
	void (*cfg_read)(struct vmm_virtio *v, unsigned off, void *data, unsigned len);
	/* Optional: a driver write to the device configuration. Lock held. */
	void (*cfg_write)(struct vmm_virtio *v, unsigned off, const void *data, unsigned len);
	/* Optional: the device part of a reset (the transport has reset itself). Lock held. */
	void (*reset)(struct vmm_virtio *v);
	/* Optional: the driver set DRIVER_OK (or the device was resumed while live): process
	 * anything made available before. Lock held. */
	void (*start)(struct vmm_virtio *v);
};

struct vmm_virtio {
	pthread_mutex_t lock;
	struct vmm_pci_func pci;
	struct vmm_vm *vm;
	struct vmm_mem *mem;
	struct kb_logger *log;
	const struct vmm_virtio_ops *ops;
	char name[24]; /* "virtio-blk0" */
	uint16_t type;
	unsigned cfg_size;
	unsigned pcicfg_cap; /* offset of the configuration access window capability */
	bool fail_logged;

	uint64_t host_features;
	uint64_t guest_features;
	uint32_t dfselect, gfselect;
	uint16_t msix_config;
	uint16_t queue_sel;
	uint8_t status;
	uint8_t isr;
	uint8_t config_gen;
	unsigned nr_queues;
	struct vmm_vq vq[VIRTIO_MAX_QUEUES];
};

/*
 * Sets up v for a device of the given type: lock, PCI function (ids, class, capabilities,
 * BAR 0, MSI-X with nr_queues + 1 vectors), queues of queue_size entries, offered features
 * (VERSION_1 and INDIRECT_DESC are added). Does not register anything; undo with
 * vmm__virtio_close(). 0 or -EINVAL.
 */
int vmm__virtio_init(struct vmm_virtio *v, struct vmm_vm *vm, uint16_t type, uint32_t class_code,
		     unsigned nr_queues, uint16_t queue_size, uint64_t features, unsigned cfg_size,
		     const struct vmm_virtio_ops *ops, const char *name);
void vmm__virtio_close(struct vmm_virtio *v);

/* Puts the PCI function on the bus (vmm_pci_register). */
int vmm__virtio_register(struct vmm_virtio *v);

/* The next free instance number of device type t in vm's device list. */
uint32_t vmm__virtio_instance(struct vmm_vm *vm, enum vmm_dev_type t);

/* Lock held. FEATURES_OK and DRIVER_OK set, NEEDS_RESET and FAILED clear. */
bool vmm__virtio_live(const struct vmm_virtio *v);
/* Lock held. Whether the driver accepted feature bit f. */
bool vmm__virtio_has(const struct vmm_virtio *v, uint64_t f);
/* Lock held. Pops from queue q with the negotiated indirect-descriptor support. */
int vmm__virtio_pop(struct vmm_virtio *v, unsigned q, struct vmm_vq_chain *c);
/* Lock held. Sends a used-buffer notification for queue q if anything was pushed and the
 * driver wants one (MSI-X vector, or ISR bit 0 and INTx). */
void vmm__virtio_signal(struct vmm_virtio *v, unsigned q);
/* Lock held. The device cannot go on (a malformed ring, an unusable backend): sets
 * DEVICE_NEEDS_RESET, sends a configuration-change notification, logs the reason once. */
void vmm__virtio_fail(struct vmm_virtio *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Lock held. Device reset as if the driver wrote 0 to device_status. */
void vmm__virtio_reset(struct vmm_virtio *v);

/*
 * Transport state (state.c). save appends it (lock held). parse reads and validates it into
 * st without changing v; apply installs a parsed state (lock held) and redrives INTx.
 */
struct vmm_virtio_state {
	uint8_t status, isr, config_gen;
	uint64_t guest_features;
	uint32_t dfselect, gfselect;
	uint16_t msix_config, queue_sel;
	struct vmm_vq vq[VIRTIO_MAX_QUEUES];
};
int vmm__virtio_save(struct vmm_virtio *v, struct kb_buf *out);
int vmm__virtio_parse(struct vmm_virtio *v, struct kb_reader *in, struct vmm_virtio_state *st);
void vmm__virtio_apply(struct vmm_virtio *v, const struct vmm_virtio_state *st);

#endif
