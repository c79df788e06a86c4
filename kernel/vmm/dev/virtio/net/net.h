/*
 * virtio-net: shared by the files of kernel/vmm/dev/virtio/net and the unit tests.
 *
 * The backend is a file descriptor that carries one Ethernet frame per read and per
 * write, each preceded by a 12-byte struct virtio_net_hdr_v1: a tap opened with
 * IFF_VNET_HDR, or in tests one end of a SOCK_SEQPACKET socket pair.
 */
#ifndef VMM_DEV_VIRTIO_NET_H
#define VMM_DEV_VIRTIO_NET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "kernel/vmm/dev/virtio/transport.h"
#include "lib/err.h"

#define VIRTIO_NET_F_MAC     (1ull << 5)
#define VIRTIO_NET_F_STATUS  (1ull << 16)
#define VIRTIO_NET_S_LINK_UP 1

#define VIRTIO_NET_RXQ		   0
#define VIRTIO_NET_TXQ		   1
#define VIRTIO_NET_QUEUE_SIZE	   256
#define VIRTIO_NET_HDR_SIZE	   12	 /* struct virtio_net_hdr_v1 */
#define VIRTIO_NET_HDR_NUM_BUFFERS 10	 /* offset of le16 num_buffers */
#define VIRTIO_NET_FRAME_MIN	   14	 /* an Ethernet header */
#define VIRTIO_NET_FRAME_MAX	   65550 /* 64 KiB MTU + Ethernet and VLAN headers */
#define VIRTIO_NET_CFG_SIZE	   12	 /* mac, status, max_virtqueue_pairs, mtu */

struct vmm_virtio_net {
	struct vmm_virtio v; /* v.lock guards everything below but the constants */
	int fd;		     /* backend */
	bool ev_added;	     /* fd is on the event thread */
	uint8_t mac[6];
	uint16_t link;	 /* config status */
	bool paused;	 /* vmm_dev_ops.pause: no receive into guest memory */
	bool rx_stalled; /* stopped reading the backend until the RX queue is usable */
	uint64_t rx_frames, rx_dropped, tx_frames, tx_dropped;
	bool backend_err_logged;
	struct vmm_vq_chain chain;
	struct iovec iov[VMM_VQ_MAX_SEGS + 1];
	uint8_t rxbuf[VIRTIO_NET_HDR_SIZE + VIRTIO_NET_FRAME_MAX];
};

/*
 * vmm_virtio_net_create on an open backend fd (nonblocking). Takes ownership of fd in
 * every case (closed on error, or owned by the device). Returns 0 or the errors of
 * vmm_virtio_net_create; out (may be NULL) gets the device. Creation thread.
 */
int vmm__virtio_net_create_fd(struct vmm_vm *vm, int fd, const uint8_t mac[6],
			      struct vmm_virtio_net **out, struct kb_errmsg *err);

/* rxtx.c; lock held. */
void vmm__net_notify(struct vmm_virtio *v, unsigned q);
/* Moves frames from the backend into RX buffers until the backend is empty or buffers
 * run out (then rx_stalled is set until the guest adds some and notifies). */
void vmm__net_rx(struct vmm_virtio_net *n);
/* Sends every frame made available on the TX queue. */
void vmm__net_tx(struct vmm_virtio_net *n);

/* state.c */
extern const struct vmm_dev_ops vmm__net_dev_ops;

#endif
