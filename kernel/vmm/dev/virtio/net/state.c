/*
 * Saved state of a virtio-net device, and its reset, pause and destroy.
 *
 * Format (little-endian), version 1:
 *
 *   u32 magic     "VNET" (0x54454e56)
 *   u16 version   1
 *   u16 reserved  0
 *   transport     the virtio transport state (kernel/vmm/dev/virtio/state.c)
 *   u8  mac[6]    the device's MAC address
 *   u16 link      config status (bit 0: link up)
 *
 * The device holds no frame between calls: transmit completes before the notifying vCPU
 * returns, and a received frame is in the guest's buffer or still in the backend. So
 * nothing is pending at a save: frames waiting in the tap stay there for whoever reads it
 * next. Restore refuses a record for another MAC address (the guest has it cached) along
 * with anything vmm__virtio_parse refuses, and changes nothing then. Restore keeps the
 * pause state and delivers nothing itself: frames that wait in the backend arrive with the
 * next frame, the guest's next RX notification, or pause(false).
 */
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "kernel/vmm/dev/virtio/net/net.h"
#include "lib/heap.h"

#define NET_STATE_MAGIC	  0x54454e56u
#define NET_STATE_VERSION 1

static int net_save(void *opaque, struct kb_buf *out)
{
	struct vmm_virtio_net *n = opaque;
	struct kb_buf rec;
	int rv = 0;

	kb_buf_init(&rec, 0);
	rv |= kb_buf_put_u32(&rec, NET_STATE_MAGIC);
	rv |= kb_buf_put_u16(&rec, NET_STATE_VERSION);
	rv |= kb_buf_put_u16(&rec, 0);
	pthread_mutex_lock(&n->v.lock);
	if (rv == 0)
		rv = vmm__virtio_save(&n->v, &rec);
	rv |= kb_buf_append(&rec, n->mac, 6);
	rv |= kb_buf_put_u16(&rec, n->link);
	pthread_mutex_unlock(&n->v.lock);
	rv = rv != 0 ? -ENOMEM : kb_buf_append(out, rec.data, rec.len);
	kb_buf_close(&rec);
	return rv;
}

static int net_restore(void *opaque, struct kb_reader *in)
{
	struct vmm_virtio_net *n = opaque;
	struct vmm_virtio_state *st;
	uint32_t magic = kb_rd_u32(in);
	uint16_t version = kb_rd_u16(in), reserved = kb_rd_u16(in), link;
	uint8_t mac[6];
	int rv;

	if (in->err)
		return in->err;
	if (magic != NET_STATE_MAGIC || reserved != 0)
		return KB_EPROTO;
	if (version != NET_STATE_VERSION)
		return KB_EVERSION;
	st = kb_malloc(sizeof(*st));
	if (st == NULL)
		return -ENOMEM;
	rv = vmm__virtio_parse(&n->v, in, st);
	kb_rd_copy(in, mac, sizeof(mac));
	link = kb_rd_u16(in);
	if (rv == 0 && in->err)
		rv = in->err;
	if (rv == 0 && memcmp(mac, n->mac, 6) != 0) {
		kb_log(n->v.log, KB_LOG_ERROR, "%s restore: saved for another MAC address",
		       n->v.name);
		rv = KB_EPROTO;
	}
	if (rv == 0 && (link & ~VIRTIO_NET_S_LINK_UP)) {
		kb_log(n->v.log, KB_LOG_ERROR, "%s restore: bad link status", n->v.name);
		rv = KB_EPROTO;
	}
	if (rv == 0) {
		pthread_mutex_lock(&n->v.lock);
		vmm__virtio_apply(&n->v, st);
		n->link = link;
		n->rx_stalled = true;
		pthread_mutex_unlock(&n->v.lock);
	}
	kb_free(st);
	return rv;
}

static void net_reset(void *opaque)
{
	struct vmm_virtio_net *n = opaque;

	pthread_mutex_lock(&n->v.lock);
	vmm__virtio_reset(&n->v);
	pthread_mutex_unlock(&n->v.lock);
}

static void net_pause(void *opaque, bool paused)
{
	struct vmm_virtio_net *n = opaque;

	pthread_mutex_lock(&n->v.lock);
	n->paused = paused;
	if (!paused)
		vmm__net_rx(n); /* frames that arrived meanwhile */
	pthread_mutex_unlock(&n->v.lock);
}

/* Called once no thread runs device code (vCPUs and the event thread stopped). */
static void net_destroy(void *opaque)
{
	struct vmm_virtio_net *n = opaque;

	if (n->ev_added)
		vmm_event_del(n->v.vm, n->fd);
	close(n->fd);
	vmm__virtio_close(&n->v);
	kb_free(n);
}

const struct vmm_dev_ops vmm__net_dev_ops = {
    .name = "virtio-net",
    .save = net_save,
    .restore = net_restore,
    .reset = net_reset,
    .destroy = net_destroy,
    .pause = net_pause,
};
