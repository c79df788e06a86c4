/*
 * The virtio-pci modern transport (virtio 1.x): finding the configuration structures
 * through the vendor capabilities, device initialisation, feature negotiation and queue
 * setup. Only polling is used: no MSI-X vectors are assigned and the ISR is never read.
 *
 * Happy path: capabilities -> enable the PCI function -> reset -> ACKNOWLEDGE | DRIVER ->
 * features (VERSION_1 required) -> FEATURES_OK -> queues (kg_virtio_queue) -> DRIVER_OK.
 * A device that lacks a structure or refuses the features is marked FAILED and skipped.
 * The common configuration is accessed with 8/16/32-bit MMIO; its 64-bit queue addresses
 * are written as two 32-bit halves, low first.
 */
#include "kguest.h"

/* struct virtio_pci_common_cfg */
#define CC_DFSELECT   0
#define CC_DF	      4
#define CC_GFSELECT   8
#define CC_GF	      12
#define CC_NUM_QUEUES 18
#define CC_STATUS     20
#define CC_GENERATION 21
#define CC_Q_SELECT   22
#define CC_Q_SIZE     24
#define CC_Q_ENABLE   28
#define CC_Q_NOFF     30
#define CC_Q_DESC     32
#define CC_Q_DRIVER   40
#define CC_Q_DEVICE   48

#define ST_ACKNOWLEDGE 1
#define ST_DRIVER      2
#define ST_DRIVER_OK   4
#define ST_FEATURES_OK 8
#define ST_FAILED      128

#define CAP_VENDOR 0x09
#define CFG_COMMON 1
#define CFG_NOTIFY 2
#define CFG_ISR	   3
#define CFG_DEVICE 4

static void find_caps(struct kg_virtio *vd)
{
	const struct kg_pci_dev *pci = &vd->pci;
	uint64_t bars[6];
	uint8_t known = 0;

	if (!((kg_pci_read32(pci, 0x04) >> 16) & 0x10))
		return; /* no capability list */
	uint8_t ptr = (uint8_t)(kg_pci_read32(pci, 0x34) & 0xfc);
	for (int guard = 0; ptr >= 0x40 && guard < 48; guard++) {
		uint32_t w0 = kg_pci_read32(pci, ptr);
		uint8_t next = (uint8_t)((w0 >> 8) & 0xfc);
		uint8_t type = (uint8_t)(w0 >> 24);
		if ((w0 & 0xff) != CAP_VENDOR || type < CFG_COMMON || type > CFG_DEVICE) {
			ptr = next;
			continue;
		}
		uint8_t bar = (uint8_t)kg_pci_read32(pci, ptr + 4);
		if (bar > 5) {
			ptr = next;
			continue;
		}
		if (!(known & (1u << bar))) {
			bars[bar] = kg_pci_bar(pci, bar);
			known |= (uint8_t)(1u << bar);
		}
		uint64_t a = bars[bar] ? bars[bar] + kg_pci_read32(pci, ptr + 8) : 0;
		/* The first structure of each type that the driver can use wins. */
		if (type == CFG_COMMON && !vd->common) {
			vd->common = a;
		} else if (type == CFG_NOTIFY && !vd->notify) {
			vd->notify = a;
			vd->notify_mult = kg_pci_read32(pci, ptr + 16);
		} else if (type == CFG_ISR && !vd->isr) {
			vd->isr = a;
		} else if (type == CFG_DEVICE && !vd->device) {
			vd->device = a;
		}
		ptr = next;
	}
}

static void set_status(struct kg_virtio *vd, uint8_t bits)
{
	uint8_t st = kg_mmio_read8(vd->common + CC_STATUS);

	kg_mmio_write8(vd->common + CC_STATUS, st | bits);
}

void kg_virtio_failed(struct kg_virtio *vd)
{
	set_status(vd, ST_FAILED);
}

int kg_virtio_init(struct kg_virtio *vd, const struct kg_pci_dev *pci, uint64_t want)
{
	memset(vd, 0, sizeof(*vd));
	vd->pci = *pci;
	find_caps(vd);
	if (!vd->common || !vd->notify || !vd->device)
		return KG_ENODEV;
	kg_pci_enable(pci);

	kg_mmio_write8(vd->common + CC_STATUS, 0);
	for (int i = 0; kg_mmio_read8(vd->common + CC_STATUS); i++) {
		if (i > 1000)
			return KG_EIO;
		kg_pause();
	}
	set_status(vd, ST_ACKNOWLEDGE);
	set_status(vd, ST_DRIVER);

	kg_mmio_write32(vd->common + CC_DFSELECT, 0);
	uint64_t offered = kg_mmio_read32(vd->common + CC_DF);
	kg_mmio_write32(vd->common + CC_DFSELECT, 1);
	offered |= (uint64_t)kg_mmio_read32(vd->common + CC_DF) << 32;
	if (!(offered & KG_VIRTIO_F_VERSION_1)) {
		kg_virtio_failed(vd);
		return KG_ENOTSUP;
	}
	vd->features = offered & (want | KG_VIRTIO_F_VERSION_1);
	kg_mmio_write32(vd->common + CC_GFSELECT, 0);
	kg_mmio_write32(vd->common + CC_GF, (uint32_t)vd->features);
	kg_mmio_write32(vd->common + CC_GFSELECT, 1);
	kg_mmio_write32(vd->common + CC_GF, (uint32_t)(vd->features >> 32));
	set_status(vd, ST_FEATURES_OK);
	if (!(kg_mmio_read8(vd->common + CC_STATUS) & ST_FEATURES_OK)) {
		kg_virtio_failed(vd);
		return KG_ENOTSUP;
	}
	return 0;
}

static void write64(uint64_t a, uint64_t v)
{
	kg_mmio_write32(a, (uint32_t)v);
	kg_mmio_write32(a + 4, (uint32_t)(v >> 32));
}

int kg_virtio_queue(struct kg_virtio *vd, uint16_t index, struct kg_vq *vq)
{
	if (index >= kg_mmio_read16(vd->common + CC_NUM_QUEUES))
		return KG_ENODEV;
	kg_mmio_write16(vd->common + CC_Q_SELECT, index);
	uint16_t size = kg_mmio_read16(vd->common + CC_Q_SIZE);
	if (!size)
		return KG_ENODEV;
	/* A power of two no larger than KG_VQ_MAX or what the device offers. */
	uint16_t n = KG_VQ_MAX;
	while (n > size)
		n >>= 1;
	kg_mmio_write16(vd->common + CC_Q_SIZE, n);
	write64(vd->common + CC_Q_DESC, (uintptr_t)vq->desc);
	write64(vd->common + CC_Q_DRIVER, (uintptr_t)&vq->avail);
	write64(vd->common + CC_Q_DEVICE, (uintptr_t)&vq->used);
	uint16_t noff = kg_mmio_read16(vd->common + CC_Q_NOFF);
	kg_vq_init(vq, index, n, vd->notify + (uint64_t)noff * vd->notify_mult);
	kg_mmio_write16(vd->common + CC_Q_ENABLE, 1);
	return 0;
}

void kg_virtio_driver_ok(struct kg_virtio *vd)
{
	set_status(vd, ST_DRIVER_OK);
}

uint8_t kg_virtio_cfg8(struct kg_virtio *vd, uint32_t off)
{
	return kg_mmio_read8(vd->device + off);
}

uint32_t kg_virtio_cfg32(struct kg_virtio *vd, uint32_t off)
{
	return kg_mmio_read32(vd->device + off);
}

/* Reads a 64-bit device configuration field as two 32-bit halves, retrying while the
 * configuration generation changes underneath. */
uint64_t kg_virtio_cfg64(struct kg_virtio *vd, uint32_t off)
{
	uint8_t gen;
	uint64_t v;

	do {
		gen = kg_mmio_read8(vd->common + CC_GENERATION);
		v = kg_mmio_read32(vd->device + off);
		v |= (uint64_t)kg_mmio_read32(vd->device + off + 4) << 32;
	} while (gen != kg_mmio_read8(vd->common + CC_GENERATION));
	return v;
}
