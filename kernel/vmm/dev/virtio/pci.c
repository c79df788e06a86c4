/*
 * Virtio over PCI (modern): the registers of BAR 0 and the virtio capabilities.
 *
 * Happy path, as a driver sees it: find the vendor capabilities in configuration space,
 * enable memory decoding, reset (status 0), set ACKNOWLEDGE and DRIVER, read the device
 * features, write its own, set FEATURES_OK and read it back, configure each queue (select,
 * size, vector, ring addresses, enable), set DRIVER_OK, then notify queues by writing
 * their index at notify + 4 * queue. The device answers a notification synchronously on
 * the notifying vCPU thread and signals used buffers by MSI-X, or by ISR bit 0 and INTx
 * when MSI-X is off; reading the ISR clears it and lowers INTx.
 *
 * Failure modes: writes that the specification forbids (features after FEATURES_OK,
 * queue fields of an enabled queue, unknown offsets, odd widths) are ignored; a feature
 * set the device did not offer, or without VERSION_1, is refused by leaving FEATURES_OK
 * clear; a queue enabled with rings outside RAM or misaligned, and any malformed chain
 * later, set DEVICE_NEEDS_RESET and the device stops until the driver resets it.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernel/vmm/dev/virtio/transport.h"

static bool in_range(uint64_t off, unsigned len, uint64_t start, uint64_t size)
{
	return off >= start && off - start < size && len <= size - (off - start);
}

static void put16(uint8_t *p, uint16_t v)
{
	memcpy(p, &v, 2);
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

/* ---- state helpers ------------------------------------------------------------------ */

bool vmm__virtio_live(const struct vmm_virtio *v)
{
	uint8_t want = VIRTIO_S_FEATURES_OK | VIRTIO_S_DRIVER_OK;

	return (v->status & want) == want &&
	       !(v->status & (VIRTIO_S_NEEDS_RESET | VIRTIO_S_FAILED));
}

bool vmm__virtio_has(const struct vmm_virtio *v, uint64_t f)
{
	return (v->guest_features & f) == f;
}

int vmm__virtio_pop(struct vmm_virtio *v, unsigned q, struct vmm_vq_chain *c)
{
	return vmm__vq_pop(&v->vq[q], v->mem, vmm__virtio_has(v, VIRTIO_F_INDIRECT_DESC), c);
}

static void raise_irq(struct vmm_virtio *v, uint8_t isr_bit, uint16_t vector)
{
	if (vmm_pci_msix_enabled(&v->pci)) {
		if (vector != VMM_VQ_NO_VECTOR)
			vmm_pci_msix_notify(&v->pci, vector);
		return;
	}
	v->isr |= isr_bit;
	vmm_pci_set_intx(&v->pci, true);
}

void vmm__virtio_signal(struct vmm_virtio *v, unsigned q)
{
	if (vmm__vq_need_signal(&v->vq[q]))
		raise_irq(v, VIRTIO_ISR_QUEUE, v->vq[q].msix_vector);
}

void vmm__virtio_fail(struct vmm_virtio *v, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (v->status & VIRTIO_S_NEEDS_RESET)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* A guest can repeat this at will: only the first failure is an error line. */
	kb_log(v->log, v->fail_logged ? KB_LOG_DEBUG : KB_LOG_ERROR, "%s: device needs reset: %s",
	       v->name, msg);
	v->fail_logged = true;
	v->status |= VIRTIO_S_NEEDS_RESET;
	raise_irq(v, VIRTIO_ISR_CONFIG, v->msix_config);
}

void vmm__virtio_reset(struct vmm_virtio *v)
{
	v->status = 0;
	v->isr = 0;
	v->guest_features = 0;
	v->dfselect = v->gfselect = 0;
	v->msix_config = VMM_VQ_NO_VECTOR;
	v->queue_sel = 0;
	for (unsigned i = 0; i < v->nr_queues; i++)
		vmm__vq_reset(&v->vq[i], v->vq[i].max_size);
	vmm_pci_set_intx(&v->pci, false);
	if (v->ops->reset != NULL)
		v->ops->reset(v);
}

/* A vector the driver may use, or NO_VECTOR (what the driver reads back on failure). */
static uint16_t valid_vector(const struct vmm_virtio *v, uint16_t vec)
{
	return vec < v->pci.msix_nvec ? vec : VMM_VQ_NO_VECTOR;
}

/* ---- common configuration ----------------------------------------------------------- */

static struct vmm_vq *selected(struct vmm_virtio *v)
{
	return v->queue_sel < v->nr_queues ? &v->vq[v->queue_sel] : NULL;
}

static void common_read(struct vmm_virtio *v, unsigned off, void *data, unsigned len)
{
	uint8_t img[VIRTIO_COMMON_LEN] = {0};
	struct vmm_vq *q = selected(v);

	put32(&img[0x00], v->dfselect);
	put32(&img[0x04], v->dfselect < 2 ? (uint32_t)(v->host_features >> (32 * v->dfselect)) : 0);
	put32(&img[0x08], v->gfselect);
	put32(&img[0x0c],
	      v->gfselect < 2 ? (uint32_t)(v->guest_features >> (32 * v->gfselect)) : 0);
	put16(&img[0x10], v->msix_config);
	put16(&img[0x12], (uint16_t)v->nr_queues);
	img[0x14] = v->status;
	img[0x15] = v->config_gen;
	put16(&img[0x16], v->queue_sel);
	if (q != NULL) {
		put16(&img[0x18], q->size);
		put16(&img[0x1a], q->msix_vector);
		put16(&img[0x1c], q->enabled);
		put16(&img[0x1e], v->queue_sel); /* queue_notify_off */
		put64(&img[0x20], q->desc_gpa);
		put64(&img[0x28], q->avail_gpa);
		put64(&img[0x30], q->used_gpa);
	}
	memcpy(data, &img[off], len);
}

static bool features_acceptable(const struct vmm_virtio *v)
{
	return (v->guest_features & ~v->host_features) == 0 &&
	       (v->guest_features & VIRTIO_F_VERSION_1) != 0;
}

static void status_write(struct vmm_virtio *v, uint8_t val)
{
	uint8_t old = v->status, nw;

	if (val == 0) {
		vmm__virtio_reset(v);
		return;
	}
	/* Bits are only ever added (clearing takes a reset); NEEDS_RESET is the device's. */
	nw = (uint8_t)(((val & ~VIRTIO_S_NEEDS_RESET) | old));
	if ((nw & VIRTIO_S_FEATURES_OK) && !(old & VIRTIO_S_FEATURES_OK) &&
	    !features_acceptable(v)) {
		kb_log(v->log, KB_LOG_DEBUG, "%s: refusing features 0x%llx", v->name,
		       (unsigned long long)v->guest_features);
		nw &= (uint8_t)~VIRTIO_S_FEATURES_OK;
	}
	if (!(nw & VIRTIO_S_FEATURES_OK))
		nw &= (uint8_t)~VIRTIO_S_DRIVER_OK;
	v->status = nw;
	if ((nw & VIRTIO_S_DRIVER_OK) && !(old & VIRTIO_S_DRIVER_OK) && vmm__virtio_live(v) &&
	    v->ops->start != NULL)
		v->ops->start(v);
}

static void set_half(uint64_t *x, unsigned half, uint32_t val)
{
	unsigned sh = 32 * half;

	*x = (*x & ~(0xffffffffull << sh)) | ((uint64_t)val << sh);
}

static void queue_addr_write(struct vmm_vq *q, unsigned off, uint64_t val, unsigned len)
{
	uint64_t *addr = off < 0x28 ? &q->desc_gpa : off < 0x30 ? &q->avail_gpa : &q->used_gpa;

	if (len == 8 && (off & 7) == 0)
		*addr = val;
	else if (len == 4)
		set_half(addr, (off & 4) ? 1 : 0, (uint32_t)val);
}

static void queue_enable(struct vmm_virtio *v, struct vmm_vq *q)
{
	if (vmm__vq_enable(q, v->mem) < 0)
		vmm__virtio_fail(v,
				 "queue %u: bad size or ring addresses (size %u, desc 0x%llx, "
				 "driver 0x%llx, device 0x%llx)",
				 v->queue_sel, q->size, (unsigned long long)q->desc_gpa,
				 (unsigned long long)q->avail_gpa, (unsigned long long)q->used_gpa);
}

static void common_write(struct vmm_virtio *v, unsigned off, const void *data, unsigned len)
{
	struct vmm_vq *q = selected(v);
	uint64_t val = 0;

	memcpy(&val, data, len);
	switch (off) {
	case 0x00:
		if (len == 4)
			v->dfselect = (uint32_t)val;
		return;
	case 0x08:
		if (len == 4)
			v->gfselect = (uint32_t)val;
		return;
	case 0x0c:
		if (len == 4 && v->gfselect < 2 && !(v->status & VIRTIO_S_FEATURES_OK))
			set_half(&v->guest_features, v->gfselect, (uint32_t)val);
		return;
	case 0x10:
		if (len == 2)
			v->msix_config = valid_vector(v, (uint16_t)val);
		return;
	case 0x14:
		if (len == 1)
			status_write(v, (uint8_t)val);
		return;
	case 0x16:
		if (len == 2)
			v->queue_sel = (uint16_t)val;
		return;
	case 0x1a:
		if (len == 2 && q != NULL)
			q->msix_vector = valid_vector(v, (uint16_t)val);
		return;
	}
	/* The rest configures the selected queue, which must exist and not be enabled. */
	if (q == NULL || q->enabled)
		return;
	if (off == 0x18 && len == 2) {
		uint16_t n = (uint16_t)val;
		if (n != 0 && n <= q->max_size && (n & (n - 1)) == 0)
			q->size = n;
	} else if (off == 0x1c && len == 2) {
		if (val == 1)
			queue_enable(v, q);
	} else if (off >= 0x20 && off < VIRTIO_COMMON_LEN) {
		queue_addr_write(q, off, val, len);
	}
}

/* ---- BAR 0 -------------------------------------------------------------------------- */

static void isr_read(struct vmm_virtio *v, void *data, unsigned len)
{
	memset(data, 0, len);
	*(uint8_t *)data = v->isr;
	v->isr = 0;
	vmm_pci_set_intx(&v->pci, false);
}

/* Called by the bridge with v->lock held, memory decoding on, MSI-X ranges excluded. */
static void bar_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct vmm_virtio *v = opaque;

	memset(data, 0, len);
	if (in_range(off, len, VIRTIO_COMMON_OFF, VIRTIO_COMMON_LEN))
		common_read(v, (unsigned)(off - VIRTIO_COMMON_OFF), data, len);
	else if (off == VIRTIO_ISR_OFF)
		isr_read(v, data, len);
	else if (in_range(off, len, VIRTIO_DEVICE_OFF, v->cfg_size))
		v->ops->cfg_read(v, (unsigned)(off - VIRTIO_DEVICE_OFF), data, len);
}

static void bar_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vmm_virtio *v = opaque;

	if (in_range(off, len, VIRTIO_COMMON_OFF, VIRTIO_COMMON_LEN)) {
		common_write(v, (unsigned)(off - VIRTIO_COMMON_OFF), data, len);
	} else if (in_range(off, len, VIRTIO_DEVICE_OFF, v->cfg_size)) {
		if (v->ops->cfg_write != NULL)
			v->ops->cfg_write(v, (unsigned)(off - VIRTIO_DEVICE_OFF), data, len);
	} else if (in_range(off, len, VIRTIO_NOTIFY_OFF, VIRTIO_NOTIFY_MULT * v->nr_queues)) {
		unsigned o = (unsigned)(off - VIRTIO_NOTIFY_OFF), q = o / VIRTIO_NOTIFY_MULT;
		if (o % VIRTIO_NOTIFY_MULT == 0 && vmm__virtio_live(v) && v->vq[q].enabled)
			v->ops->notify(v, q);
	}
}

static const struct vmm_io_ops bar_ops = {.read = bar_read, .write = bar_write};

/* ---- the configuration access window (VIRTIO_PCI_CAP_PCI_CFG) ----------------------- */

static void window(struct vmm_virtio *v, bool write)
{
	struct vmm_pci_func *f = &v->pci;
	unsigned c = v->pcicfg_cap;
	uint32_t off = vmm_pci_cfg_r32(f, c + 8), len = vmm_pci_cfg_r32(f, c + 12);

	if (f->cfg[c + 4] != VIRTIO_BAR || (len != 1 && len != 2 && len != 4) || off % len != 0 ||
	    off >= VIRTIO_BAR_SIZE)
		return;
	if (write) {
		bar_write(v, off, &f->cfg[c + 16], len);
	} else {
		uint8_t tmp[4] = {0};
		bar_read(v, off, tmp, len);
		memcpy(&f->cfg[c + 16], tmp, sizeof(tmp));
	}
}

static bool touches_data(const struct vmm_virtio *v, unsigned off, unsigned len)
{
	unsigned d = v->pcicfg_cap + 16;

	return off < d + 4 && d < off + len;
}

static void cfg_read_hook(struct vmm_pci_func *f, unsigned off, unsigned len)
{
	struct vmm_virtio *v = f->opaque;

	if (touches_data(v, off, len))
		window(v, false);
}

static void cfg_write_hook(struct vmm_pci_func *f, unsigned off, unsigned len)
{
	struct vmm_virtio *v = f->opaque;

	if (touches_data(v, off, len))
		window(v, true);
}

static const struct vmm_pci_func_ops func_ops = {.cfg_read = cfg_read_hook,
						 .cfg_write = cfg_write_hook};

/* ---- setup -------------------------------------------------------------------------- */

/* Adds a struct virtio_pci_cap (16 bytes) plus extra bytes. */
static int add_vcap(struct vmm_pci_func *f, uint8_t type, uint32_t off, uint32_t len,
		    const void *extra, unsigned extra_len, unsigned *at)
{
	uint8_t body[20] = {0};

	body[0] = (uint8_t)(16 + extra_len); /* cap_len */
	body[1] = type;			     /* cfg_type */
	body[2] = VIRTIO_BAR;		     /* bar; body[3] id, body[4..5] padding */
	put32(&body[6], off);
	put32(&body[10], len);
	if (extra_len)
		memcpy(&body[14], extra, extra_len);
	return vmm_pci_func_add_cap(f, VMM_PCI_CAP_ID_VENDOR, body, 16 + extra_len, at);
}

int vmm__virtio_init(struct vmm_virtio *v, struct vmm_vm *vm, uint16_t type, uint32_t class_code,
		     unsigned nr_queues, uint16_t queue_size, uint64_t features, unsigned cfg_size,
		     const struct vmm_virtio_ops *ops, const char *name)
{
	struct vmm_pci_func *f = &v->pci;
	uint32_t mult = VIRTIO_NOTIFY_MULT;
	uint8_t zero[4] = {0};
	unsigned at;
	int rv = 0;

	if (nr_queues == 0 || nr_queues > VIRTIO_MAX_QUEUES || cfg_size > VIRTIO_DEVICE_MAX ||
	    queue_size == 0 || queue_size > VMM_VQ_MAX_SIZE || (queue_size & (queue_size - 1)))
		return -EINVAL;
	v->vm = vm;
	v->mem = &vm->mem;
	v->log = vm->log != NULL ? vm->log : &kb_log_default;
	v->ops = ops;
	snprintf(v->name, sizeof(v->name), "%s", name);
	v->type = type;
	v->cfg_size = cfg_size;
	v->nr_queues = nr_queues;
	v->host_features = features | VIRTIO_F_VERSION_1 | VIRTIO_F_INDIRECT_DESC;

	vmm_pci_func_init(f, VIRTIO_PCI_VENDOR, (uint16_t)(VIRTIO_PCI_DEVICE_BASE + type),
			  VIRTIO_PCI_REVISION, class_code, VIRTIO_PCI_VENDOR, VIRTIO_PCI_SUBSYS_ID);
	rv = vmm_pci_func_set_bar(f, VIRTIO_BAR, VIRTIO_BAR_SIZE, &bar_ops, v);
	if (rv == 0)
		rv = vmm_pci_func_add_msix(f, nr_queues + 1, VIRTIO_BAR, VIRTIO_MSIX_TABLE_OFF,
					   VIRTIO_MSIX_PBA_OFF);
	if (rv == 0)
		rv = add_vcap(f, VIRTIO_PCI_CAP_COMMON, VIRTIO_COMMON_OFF, VIRTIO_COMMON_LEN, NULL,
			      0, NULL);
	if (rv == 0)
		rv = add_vcap(f, VIRTIO_PCI_CAP_ISR, VIRTIO_ISR_OFF, VIRTIO_ISR_LEN, NULL, 0, NULL);
	if (rv == 0)
		rv = add_vcap(f, VIRTIO_PCI_CAP_DEVICE, VIRTIO_DEVICE_OFF, cfg_size, NULL, 0, NULL);
	if (rv == 0)
		rv = add_vcap(f, VIRTIO_PCI_CAP_NOTIFY, VIRTIO_NOTIFY_OFF,
			      VIRTIO_NOTIFY_MULT * nr_queues, &mult, 4, NULL);
	if (rv == 0)
		rv = add_vcap(f, VIRTIO_PCI_CAP_PCI_CFG, 0, 0, zero, 4, &at);
	if (rv < 0)
		return -EINVAL;
	/* The window's bar, offset, length and data fields are the driver's to write. */
	f->wmask[at + 4] = 0xff;
	memset(&f->wmask[at + 8], 0xff, 12);
	v->pcicfg_cap = at;

	for (unsigned i = 0; i < nr_queues; i++)
		vmm__vq_reset(&v->vq[i], queue_size);
	v->msix_config = VMM_VQ_NO_VECTOR;
	pthread_mutex_init(&v->lock, NULL);
	return 0;
}

void vmm__virtio_close(struct vmm_virtio *v)
{
	pthread_mutex_destroy(&v->lock);
}

int vmm__virtio_register(struct vmm_virtio *v)
{
	return vmm_pci_register(v->vm, &v->pci, &v->lock, &func_ops, v);
}

uint32_t vmm__virtio_instance(struct vmm_vm *vm, enum vmm_dev_type t)
{
	struct kb_list *pos;
	uint32_t next = 0;

	kb_list_for_each(pos, &vm->devs)
	{
		struct vmm_dev *d = kb_list_entry(pos, struct vmm_dev, link);
		if (d->id >> 8 == (uint32_t)t && (d->id & 0xff) + 1 > next)
			next = (d->id & 0xff) + 1;
	}
	return next;
}
