/*
 * virtio-net queue handling: transmit on the notifying vCPU thread, receive on the event
 * thread (or on the vCPU thread that hands the device new RX buffers).
 *
 * TX: each chain is a 12-byte header and a frame. The device offers no offloads, so the
 * guest's header carries nothing the device needs: the backend gets a zeroed header and
 * the frame, gathered straight from guest memory with writev. Frames the backend cannot
 * take now (EAGAIN, ENOBUFS) are dropped, as a full NIC ring would drop them.
 *
 * RX: the backend fd is registered edge-triggered; each wakeup reads frames until the
 * backend is empty. Frames are read into a bounce buffer, then copied with a fresh header
 * (num_buffers 1) into the next RX chain and marked dirty. With no RX buffer posted the
 * device stops reading (rx_stalled) and leaves frames queued in the backend; the guest's
 * next RX notification resumes. A frame larger than the posted buffer is dropped and the
 * buffer kept for the next one. While paused, not live, or needing reset the device
 * reads nothing.
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kernel/vmm/devices.h"
#include "kernel/vmm/dev/virtio/net/net.h"

static void backend_error(struct vmm_virtio_net *n, const char *op, int err)
{
	if (n->backend_err_logged)
		return;
	n->backend_err_logged = true;
	kb_log(n->v.log, KB_LOG_WARN, "%s: backend %s: %s", n->v.name, op, kb_strerror(err));
}

void vmm__net_rx(struct vmm_virtio_net *n)
{
	struct vmm_virtio *v = &n->v;
	struct vmm_vq *q = &v->vq[VIRTIO_NET_RXQ];
	uint8_t hdr[VIRTIO_NET_HDR_SIZE] = {0};

	if (n->paused || !vmm__virtio_live(v) || !q->enabled) {
		n->rx_stalled = true;
		return;
	}
	hdr[VIRTIO_NET_HDR_NUM_BUFFERS] = 1;
	n->rx_stalled = false;
	for (;;) {
		ssize_t len;
		uint64_t frame;
		int rv;

		if (!vmm__vq_has_avail(q)) {
			n->rx_stalled = true;
			break;
		}
		len = read(n->fd, n->rxbuf, sizeof(n->rxbuf));
		if (len < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN)
				backend_error(n, "read", -errno);
			break;
		}
		if (len == 0)
			break; /* the backend's peer went away */
		if ((size_t)len < VIRTIO_NET_HDR_SIZE + VIRTIO_NET_FRAME_MIN) {
			n->rx_dropped++;
			continue;
		}
		frame = (uint64_t)len - VIRTIO_NET_HDR_SIZE;
		rv = vmm__virtio_pop(v, VIRTIO_NET_RXQ, &n->chain);
		if (rv <= 0) {
			n->rx_dropped++;
			if (rv < 0)
				vmm__virtio_fail(v, "RX queue: malformed descriptor chain");
			else
				n->rx_stalled = true;
			break;
		}
		if (n->chain.wr_len < VIRTIO_NET_HDR_SIZE + frame) {
			vmm__vq_unpop(q);
			n->rx_dropped++;
			continue;
		}
		vmm__vq_write(&n->chain, v->mem, 0, hdr, sizeof(hdr));
		vmm__vq_write(&n->chain, v->mem, VIRTIO_NET_HDR_SIZE,
			      n->rxbuf + VIRTIO_NET_HDR_SIZE, frame);
		vmm__vq_push(q, v->mem, n->chain.head, (uint32_t)(VIRTIO_NET_HDR_SIZE + frame));
		n->rx_frames++;
	}
	vmm__virtio_signal(v, VIRTIO_NET_RXQ);
}

static const uint8_t tx_hdr[VIRTIO_NET_HDR_SIZE];

/* Sends one chain's frame; false when it was dropped. */
static bool tx_one(struct vmm_virtio_net *n, const struct vmm_vq_chain *c)
{
	uint64_t frame;
	ssize_t rv;
	int cnt;

	if (c->rd_len < VIRTIO_NET_HDR_SIZE + VIRTIO_NET_FRAME_MIN ||
	    c->rd_len - VIRTIO_NET_HDR_SIZE > VIRTIO_NET_FRAME_MAX)
		return false;
	frame = c->rd_len - VIRTIO_NET_HDR_SIZE;
	n->iov[0] = (struct iovec){.iov_base = (void *)tx_hdr, .iov_len = sizeof(tx_hdr)};
	cnt = vmm__vq_iov(c, false, VIRTIO_NET_HDR_SIZE, frame, &n->iov[1], VMM_VQ_MAX_SEGS);
	if (cnt < 0)
		return false;
	const struct vmm_out_hook *h = __atomic_load_n(&n->v.vm->out_hook, __ATOMIC_ACQUIRE);
	if (h != NULL && h->net_tx != NULL)
		return h->net_tx(h->arg, n->fd, n->iov, cnt + 1);
	do {
		rv = writev(n->fd, n->iov, cnt + 1);
	} while (rv < 0 && errno == EINTR);
	if (rv < 0) {
		if (errno != EAGAIN && errno != ENOBUFS)
			backend_error(n, "write", -errno);
		return false;
	}
	return true;
}

void vmm__net_tx(struct vmm_virtio_net *n)
{
	struct vmm_virtio *v = &n->v;
	struct vmm_vq *q = &v->vq[VIRTIO_NET_TXQ];

	/* Transmit runs on vCPU threads only, so it never runs while the VM is paused. */
	if (!vmm__virtio_live(v) || !q->enabled)
		return;
	/* At most one queue's worth per call; the guest notifies again for more. */
	for (unsigned i = 0; i < q->size; i++) {
		int rv = vmm__virtio_pop(v, VIRTIO_NET_TXQ, &n->chain);

		if (rv == 0)
			break;
		if (rv < 0) {
			vmm__virtio_fail(v, "TX queue: malformed descriptor chain");
			break;
		}
		if (tx_one(n, &n->chain))
			n->tx_frames++;
		else
			n->tx_dropped++;
		vmm__vq_push(q, v->mem, n->chain.head, 0);
	}
	vmm__virtio_signal(v, VIRTIO_NET_TXQ);
}

void vmm__net_notify(struct vmm_virtio *v, unsigned q)
{
	struct vmm_virtio_net *n = kb_container_of(v, struct vmm_virtio_net, v);

	if (q == VIRTIO_NET_TXQ)
		vmm__net_tx(n);
	else if (q == VIRTIO_NET_RXQ && n->rx_stalled)
		vmm__net_rx(n);
}

/* A broadcast RARP request (op 3) from mac to mac, padded to the Ethernet minimum: what
 * a migrated VM's NIC sends so switches learn its new port. */
static void announce_one(struct vmm_virtio_net *n)
{
	uint8_t f[VIRTIO_NET_HDR_SIZE + 60] = {0};
	uint8_t *e = f + VIRTIO_NET_HDR_SIZE;
	static const uint8_t rarp[10] = {0x80, 0x35, 0x00, 0x01, 0x08, 0x00, 6, 4, 0x00, 0x03};
	ssize_t rv;

	memset(e, 0xff, 6);
	memcpy(e + 6, n->mac, 6);
	memcpy(e + 12, rarp, sizeof(rarp));
	memcpy(e + 22, n->mac, 6); /* sender MAC; sender IP 0 */
	memcpy(e + 32, n->mac, 6); /* target MAC; target IP 0 */
	do {
		rv = write(n->fd, f, sizeof(f));
	} while (rv < 0 && errno == EINTR);
	if (rv < 0)
		backend_error(n, "write", -errno);
	else
		n->tx_frames++;
}

int vmm_virtio_net_announce(struct vmm_vm *vm)
{
	struct kb_list *pos;
	int count = 0;

	kb_list_for_each(pos, &vm->devs)
	{
		struct vmm_dev *d = kb_list_entry(pos, struct vmm_dev, link);
		if (d->ops != &vmm__net_dev_ops)
			continue;
		struct vmm_virtio_net *n = d->opaque;
		pthread_mutex_lock(&n->v.lock);
		announce_one(n);
		pthread_mutex_unlock(&n->v.lock);
		count++;
	}
	return count;
}
