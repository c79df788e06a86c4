/*
 * virtio-net (device id 0x1041): one receive and one transmit queue, polled. Negotiates
 * VERSION_1 and MAC only, so every buffer starts with the 12-byte virtio_net_hdr, which is
 * all zero on transmit (no offloads) and ignored on receive. Receive buffers are 2 KiB
 * (enough for a 1514-byte frame plus the header without mergeable buffers); each one is
 * handed back to the device as soon as kg_ip_input returns. Transmit copies the frame into
 * a free buffer; buffers come back when the device marks them used.
 */
#include "kguest.h"

#define NET_F_MAC (1ull << 5)
#define HDR_LEN	  12
#define BUF_SIZE  2048
#define Q_RX	  0
#define Q_TX	  1

static struct kg_virtio vd;
static struct kg_vq rxq, txq;
static uint8_t rx_bufs[KG_VQ_MAX][BUF_SIZE] __attribute__((aligned(64)));
static uint8_t tx_bufs[KG_VQ_MAX][BUF_SIZE] __attribute__((aligned(64)));
static uint16_t tx_free[KG_VQ_MAX];
static int nr_tx_free;
static bool present;
static uint8_t mac[6];
static uint64_t nr_rx, nr_tx;

bool kg_net_present(void)
{
	return present;
}

const uint8_t *kg_net_mac(void)
{
	return mac;
}

void kg_net_stats(uint64_t *rx, uint64_t *tx)
{
	*rx = nr_rx;
	*tx = nr_tx;
}

static void post_rx(uint16_t i)
{
	struct kg_vq_buf b = {rx_bufs[i], BUF_SIZE, true};

	kg_vq_add(&rxq, &b, 1, i);
}

int kg_net_probe(const struct kg_pci_dev *pci)
{
	int rc;

	if (present)
		return KG_EINVAL;
	rc = kg_virtio_init(&vd, pci, NET_F_MAC);
	if (rc)
		return rc;
	rc = kg_virtio_queue(&vd, Q_RX, &rxq);
	if (!rc)
		rc = kg_virtio_queue(&vd, Q_TX, &txq);
	if (rc) {
		kg_virtio_failed(&vd);
		return rc;
	}
	if (vd.features & NET_F_MAC) {
		for (uint32_t i = 0; i < 6; i++)
			mac[i] = kg_virtio_cfg8(&vd, i);
	} else {
		/* A locally administered address derived from the PCI slot. */
		const uint8_t m[6] = {0x02, 0x4b, 0x47, 0x00, pci->dev, pci->fn};
		memcpy(mac, m, sizeof(mac));
	}
	for (uint16_t i = 0; i < rxq.size; i++)
		post_rx(i);
	for (uint16_t i = 0; i < txq.size; i++)
		tx_free[nr_tx_free++] = i;
	kg_virtio_driver_ok(&vd);
	kg_vq_kick(&rxq);
	present = true;
	kg_printf("kguest: net %02x:%02x.%x mac=%02x:%02x:%02x:%02x:%02x:%02x\n", pci->bus,
		  pci->dev, pci->fn, mac[0], mac[1], mac[2], mac[3], mac[4], mac[5]);
	return 0;
}

static void reclaim_tx(void)
{
	uint64_t cookie;
	uint32_t len;

	while (kg_vq_pop(&txq, &cookie, &len)) {
		if (nr_tx_free < KG_VQ_MAX)
			tx_free[nr_tx_free++] = (uint16_t)cookie;
	}
}

int kg_net_send(const void *frame, size_t len)
{
	if (!present)
		return KG_ENODEV;
	if (len > KG_ETH_MAX)
		return KG_EINVAL;
	reclaim_tx();
	if (!nr_tx_free)
		return KG_ENOSPC;
	uint16_t i = tx_free[--nr_tx_free];
	memset(tx_bufs[i], 0, HDR_LEN);
	memcpy(tx_bufs[i] + HDR_LEN, frame, len);
	struct kg_vq_buf b = {tx_bufs[i], (uint32_t)(HDR_LEN + len), false};
	if (kg_vq_add(&txq, &b, 1, i)) {
		tx_free[nr_tx_free++] = i;
		return KG_ENOSPC;
	}
	kg_vq_kick(&txq);
	nr_tx++;
	return 0;
}

void kg_net_poll(void)
{
	uint64_t cookie;
	uint32_t len;
	int n = 0;

	if (!present)
		return;
	while (n < rxq.size && kg_vq_pop(&rxq, &cookie, &len)) {
		uint16_t i = (uint16_t)cookie;
		if (i >= rxq.size)
			continue;
		if (len > HDR_LEN && len <= BUF_SIZE) {
			nr_rx++;
			kg_ip_input(rx_bufs[i] + HDR_LEN, len - HDR_LEN);
		}
		post_rx(i);
		n++;
	}
	if (n)
		kg_vq_kick(&rxq);
}
