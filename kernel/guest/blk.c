/*
 * virtio-blk (device id 0x1042): synchronous sector reads, writes and flushes on one
 * queue. A request is a three-descriptor chain (header, data, status byte); the driver
 * notifies and polls the used ring until the device completes it, for up to
 * REQ_TIMEOUT_MS. A device that times out is taken out of service, since the request may
 * still be in flight in the VMM.
 */
#include "kguest.h"

#define BLK_F_RO    (1ull << 5)
#define BLK_F_FLUSH (1ull << 9)

#define T_IN	0
#define T_OUT	1
#define T_FLUSH 4

#define REQ_TIMEOUT_MS 10000

struct blk_req {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

static struct kg_virtio vd;
static struct kg_vq vq;
static bool present;
static uint64_t capacity;
static struct blk_req req;
static uint8_t status;

bool kg_blk_present(void)
{
	return present;
}

uint64_t kg_blk_capacity(void)
{
	return capacity;
}

int kg_blk_probe(const struct kg_pci_dev *pci)
{
	int rc;

	if (present)
		return KG_EINVAL;
	rc = kg_virtio_init(&vd, pci, BLK_F_RO | BLK_F_FLUSH);
	if (rc)
		return rc;
	rc = kg_virtio_queue(&vd, 0, &vq);
	if (rc) {
		kg_virtio_failed(&vd);
		return rc;
	}
	capacity = kg_virtio_cfg64(&vd, 0);
	kg_virtio_driver_ok(&vd);
	present = true;
	kg_printf("kguest: blk %02x:%02x.%x capacity=%lu sectors%s\n", pci->bus, pci->dev, pci->fn,
		  capacity, (vd.features & BLK_F_RO) ? " ro" : "");
	return 0;
}

static int request(uint32_t type, uint64_t sector, void *buf, uint32_t len)
{
	struct kg_vq_buf bufs[3];
	int n = 0;
	uint64_t cookie;
	uint32_t written;

	if (!present)
		return KG_ENODEV;
	req = (struct blk_req){.type = type, .sector = sector};
	*(volatile uint8_t *)&status = 0xff;
	bufs[n++] = (struct kg_vq_buf){&req, sizeof(req), false};
	if (len)
		bufs[n++] = (struct kg_vq_buf){buf, len, type == T_IN};
	bufs[n++] = (struct kg_vq_buf){&status, 1, true};
	if (kg_vq_add(&vq, bufs, n, 0))
		return KG_EIO;
	kg_vq_kick(&vq);

	uint64_t deadline = kg_rdtsc() + kg_ms_to_tsc(REQ_TIMEOUT_MS);
	while (!kg_vq_pop(&vq, &cookie, &written)) {
		if (kg_rdtsc() > deadline) {
			kg_printf("kguest: blk request timed out\n");
			present = false;
			return KG_ETIMEDOUT;
		}
		kg_pause();
	}
	return *(volatile uint8_t *)&status == 0 ? 0 : KG_EIO;
}

static bool in_range(uint64_t sector, uint32_t n)
{
	return n && sector < capacity && n <= capacity - sector;
}

int kg_blk_read(uint64_t sector, void *buf, uint32_t n)
{
	if (!in_range(sector, n))
		return KG_EINVAL;
	return request(T_IN, sector, buf, n * KG_SECTOR);
}

int kg_blk_write(uint64_t sector, const void *buf, uint32_t n)
{
	if (!in_range(sector, n))
		return KG_EINVAL;
	if (vd.features & BLK_F_RO)
		return KG_EIO;
	return request(T_OUT, sector, (void *)buf, n * KG_SECTOR);
}

int kg_blk_flush(void)
{
	if (!(vd.features & BLK_F_FLUSH))
		return KG_ENOTSUP;
	return request(T_FLUSH, 0, NULL, 0);
}
