/*
 * PCI bus 0 through the type-1 configuration ports (0xCF8 address, 0xCFC data), 32-bit
 * accesses only. The VMM assigns the BARs before boot; kguest reads them and never
 * reprograms them, and only sets the memory-space and bus-master command bits. Each config
 * access costs two port accesses (tens of µs each from CPL3 on PVM), so the scan reads one
 * dword per slot and looks at further functions only on multi-function devices.
 */
#include "kguest.h"

#define PCI_ADDR 0xcf8
#define PCI_DATA 0xcfc

#define PCI_CMD_MEMORY 0x2
#define PCI_CMD_MASTER 0x4

static uint32_t addr(const struct kg_pci_dev *d, uint8_t off)
{
	return 0x80000000u | (uint32_t)d->bus << 16 | (uint32_t)d->dev << 11 |
	       (uint32_t)d->fn << 8 | (off & 0xfc);
}

uint32_t kg_pci_read32(const struct kg_pci_dev *d, uint8_t off)
{
	kg_out32(PCI_ADDR, addr(d, off));
	return kg_in32(PCI_DATA);
}

void kg_pci_write32(const struct kg_pci_dev *d, uint8_t off, uint32_t v)
{
	kg_out32(PCI_ADDR, addr(d, off));
	kg_out32(PCI_DATA, v);
}

uint64_t kg_pci_bar(const struct kg_pci_dev *d, int bar)
{
	if (bar < 0 || bar > 5)
		return 0;
	uint32_t lo = kg_pci_read32(d, (uint8_t)(0x10 + 4 * bar));
	if (lo & 1)
		return 0; /* I/O space */
	uint64_t a = lo & ~0xfull;
	if (((lo >> 1) & 3) == 2 && bar < 5)
		a |= (uint64_t)kg_pci_read32(d, (uint8_t)(0x14 + 4 * bar)) << 32;
	return a;
}

void kg_pci_enable(const struct kg_pci_dev *d)
{
	uint32_t cmd = kg_pci_read32(d, 0x04) & 0xffff;

	/* The status half is written as 0, which leaves its write-1-to-clear bits alone. */
	kg_pci_write32(d, 0x04, cmd | PCI_CMD_MEMORY | PCI_CMD_MASTER);
}

int kg_pci_scan(struct kg_pci_dev *devs, int max)
{
	int n = 0;

	for (uint8_t dev = 0; dev < 32; dev++) {
		for (uint8_t fn = 0; fn < 8; fn++) {
			struct kg_pci_dev d = {.bus = 0, .dev = dev, .fn = fn};
			uint32_t id = kg_pci_read32(&d, 0x00);
			if ((id & 0xffff) == 0xffff) {
				if (fn == 0)
					break;
				continue;
			}
			d.vendor = (uint16_t)id;
			d.device = (uint16_t)(id >> 16);
			if (n < max)
				devs[n++] = d;
			/* header type bit 7: multi-function */
			if (fn == 0 && !((kg_pci_read32(&d, 0x0c) >> 16) & 0x80))
				break;
		}
	}
	return n;
}
