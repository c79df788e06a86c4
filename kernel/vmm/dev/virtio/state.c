/*
 * The transport part of every virtio device's saved state: negotiation, status,
 * interrupt state and the configuration and position of each split virtqueue. Each
 * device's state.c frames it with its own header and device fields.
 *
 * Format (little-endian):
 *
 *   u8  status          device_status
 *   u8  isr             ISR bits not yet read by the driver (bits 0-1)
 *   u8  config_gen      config_generation
 *   u8  nr_queues       must equal the device's
 *   u64 guest_features  features the driver wrote (subset of the device's)
 *   u32 dfselect        device_feature_select
 *   u32 gfselect        driver_feature_select
 *   u16 msix_config     vector for configuration changes, 0xffff: none
 *   u16 queue_sel       queue_select
 *   nr_queues times:
 *     u16 size          queue_size (power of two, <= the device's maximum)
 *     u8  enabled       0 or 1
 *     u8  reserved      0
 *     u16 msix_vector   0xffff: none
 *     u16 last_avail    next avail entry the device takes
 *     u16 used_idx      the device's used index
 *     u64 desc          descriptor table address
 *     u64 driver        avail ring address
 *     u64 device        used ring address
 *
 * Parsing checks every field against the running device: features offered, status bits
 * known and consistent (DRIVER_OK needs FEATURES_OK, which needs VERSION_1), vectors in
 * the MSI-X table, queue sizes, and for enabled queues ring alignment and placement in
 * guest RAM and at most size chains in flight.
 */
#include <errno.h>
#include <string.h>

#include "kernel/vmm/dev/virtio/transport.h"

#define STATUS_KNOWN                                                                          \
	(VIRTIO_S_ACKNOWLEDGE | VIRTIO_S_DRIVER | VIRTIO_S_DRIVER_OK | VIRTIO_S_FEATURES_OK | \
	 VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED)

int vmm__virtio_save(struct vmm_virtio *v, struct kb_buf *out)
{
	struct kb_buf rec;
	int rv = 0;

	kb_buf_init(&rec, 0);
	rv |= kb_buf_put_u8(&rec, v->status);
	rv |= kb_buf_put_u8(&rec, v->isr);
	rv |= kb_buf_put_u8(&rec, v->config_gen);
	rv |= kb_buf_put_u8(&rec, (uint8_t)v->nr_queues);
	rv |= kb_buf_put_u64(&rec, v->guest_features);
	rv |= kb_buf_put_u32(&rec, v->dfselect);
	rv |= kb_buf_put_u32(&rec, v->gfselect);
	rv |= kb_buf_put_u16(&rec, v->msix_config);
	rv |= kb_buf_put_u16(&rec, v->queue_sel);
	for (unsigned i = 0; i < v->nr_queues; i++) {
		const struct vmm_vq *q = &v->vq[i];
		rv |= kb_buf_put_u16(&rec, q->size);
		rv |= kb_buf_put_u8(&rec, q->enabled);
		rv |= kb_buf_put_u8(&rec, 0);
		rv |= kb_buf_put_u16(&rec, q->msix_vector);
		rv |= kb_buf_put_u16(&rec, q->last_avail);
		rv |= kb_buf_put_u16(&rec, q->used_idx);
		rv |= kb_buf_put_u64(&rec, q->desc_gpa);
		rv |= kb_buf_put_u64(&rec, q->avail_gpa);
		rv |= kb_buf_put_u64(&rec, q->used_gpa);
	}
	rv = rv != 0 ? -ENOMEM : kb_buf_append(out, rec.data, rec.len);
	kb_buf_close(&rec);
	return rv;
}

static bool vector_ok(const struct vmm_virtio *v, uint16_t vec)
{
	return vec == VMM_VQ_NO_VECTOR || vec < v->pci.msix_nvec;
}

static int bad(struct vmm_virtio *v, const char *what)
{
	kb_log(v->log, KB_LOG_ERROR, "%s restore: %s", v->name, what);
	return KB_EPROTO;
}

int vmm__virtio_parse(struct vmm_virtio *v, struct kb_reader *in, struct vmm_virtio_state *st)
{
	uint8_t nr;

	memset(st, 0, sizeof(*st));
	st->status = kb_rd_u8(in);
	st->isr = kb_rd_u8(in);
	st->config_gen = kb_rd_u8(in);
	nr = kb_rd_u8(in);
	st->guest_features = kb_rd_u64(in);
	st->dfselect = kb_rd_u32(in);
	st->gfselect = kb_rd_u32(in);
	st->msix_config = kb_rd_u16(in);
	st->queue_sel = kb_rd_u16(in);
	if (in->err)
		return in->err;
	if (nr != v->nr_queues)
		return bad(v, "queue count differs");
	if (st->guest_features & ~v->host_features)
		return bad(v, "features the device does not offer");
	if (st->status & ~STATUS_KNOWN)
		return bad(v, "unknown status bits");
	if ((st->status & VIRTIO_S_FEATURES_OK) && !(st->guest_features & VIRTIO_F_VERSION_1))
		return bad(v, "FEATURES_OK without VERSION_1");
	if ((st->status & VIRTIO_S_DRIVER_OK) && !(st->status & VIRTIO_S_FEATURES_OK))
		return bad(v, "DRIVER_OK without FEATURES_OK");
	if (st->isr & ~(VIRTIO_ISR_QUEUE | VIRTIO_ISR_CONFIG))
		return bad(v, "unknown ISR bits");
	if (!vector_ok(v, st->msix_config))
		return bad(v, "configuration vector out of range");

	for (unsigned i = 0; i < nr; i++) {
		struct vmm_vq *q = &st->vq[i];
		uint8_t enabled, reserved;

		vmm__vq_reset(q, v->vq[i].max_size);
		q->size = kb_rd_u16(in);
		enabled = kb_rd_u8(in);
		reserved = kb_rd_u8(in);
		q->msix_vector = kb_rd_u16(in);
		q->last_avail = kb_rd_u16(in);
		q->used_idx = kb_rd_u16(in);
		q->desc_gpa = kb_rd_u64(in);
		q->avail_gpa = kb_rd_u64(in);
		q->used_gpa = kb_rd_u64(in);
		if (in->err)
			return in->err;
		if (enabled > 1 || reserved != 0)
			return bad(v, "bad queue flags");
		if (q->size == 0 || q->size > q->max_size || (q->size & (q->size - 1)))
			return bad(v, "bad queue size");
		if (!vector_ok(v, q->msix_vector))
			return bad(v, "queue vector out of range");
		if ((uint16_t)(q->last_avail - q->used_idx) > q->size)
			return bad(v, "more chains in flight than the queue holds");
		if (enabled && vmm__vq_check(q, v->mem) < 0)
			return bad(v, "queue rings misaligned or outside guest RAM");
		q->enabled = enabled;
	}
	return 0;
}

void vmm__virtio_apply(struct vmm_virtio *v, const struct vmm_virtio_state *st)
{
	v->status = st->status;
	v->isr = st->isr;
	v->config_gen = st->config_gen;
	v->guest_features = st->guest_features;
	v->dfselect = st->dfselect;
	v->gfselect = st->gfselect;
	v->msix_config = st->msix_config;
	v->queue_sel = st->queue_sel;
	for (unsigned i = 0; i < v->nr_queues; i++) {
		v->vq[i] = st->vq[i];
		v->vq[i].enabled = false;
		if (st->vq[i].enabled)
			vmm__vq_enable(&v->vq[i], v->mem); /* checked by vmm__virtio_parse */
	}
	vmm_pci_set_intx(&v->pci, v->isr != 0);
}
