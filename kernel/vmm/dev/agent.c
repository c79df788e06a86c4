/*
 * The agent channel: a port-I/O device through which the guest sends heartbeats (VM
 * monitoring), asks for power off or reset, and exchanges text lines with the host (kguest
 * reports checksums and takes workload changes this way). Ports: kernel/guest/abi.h.
 *
 * Lines from the guest are kept in a ring of the last 256; a line longer than
 * KGUEST_AGENT_MSG_MAX is cut there. Lines to the guest wait in a 4 KiB queue.
 *
 * Saved state (little-endian): u32 version(1), u64 heartbeat seq, u32 partial-line length,
 * its bytes (<= 256), u32 inbound length, its bytes (<= 4096). Received lines already in
 * the ring belong to the host side and are not saved.
 */
#include <errno.h>
#include <string.h>

#include "kernel/guest/abi.h"
#include "kernel/vmm/dev/agent.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"
#include "lib/time.h"

#define RING	      256
#define IN_MAX	      4096
#define STATE_VERSION 1

struct vmm_agent {
	struct vmm_vm *vm;
	pthread_mutex_t lock;
	uint64_t hb_seq, hb_at;
	char line[KGUEST_AGENT_MSG_MAX + 1];
	uint32_t line_len;
	char *ring[RING];
	unsigned ring_head, ring_len;
	uint8_t in[IN_MAX];
	uint32_t in_head, in_len;
};

static void push_line(struct vmm_agent *a)
{
	a->line[a->line_len] = '\0';
	char *copy = kb_strdup(a->line);
	a->line_len = 0;
	if (copy == NULL)
		return;
	kb_log(a->vm->log, KB_LOG_DEBUG, "agent: guest says \"%s\"", copy);
	if (a->ring_len == RING) {
		kb_free(a->ring[a->ring_head]);
		a->ring_head = (a->ring_head + 1) % RING;
		a->ring_len--;
	}
	a->ring[(a->ring_head + a->ring_len) % RING] = copy;
	a->ring_len++;
}

static void agent_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vmm_agent *a = opaque;
	uint32_t v = 0;

	memcpy(&v, data, len < 4 ? len : 4);
	switch (off) {
	case KGUEST_AGENT_HEARTBEAT:
		pthread_mutex_lock(&a->lock);
		a->hb_seq = v;
		a->hb_at = kb_now_ns();
		pthread_mutex_unlock(&a->lock);
		break;
	case KGUEST_AGENT_POWER:
		if ((v & 0xff) == KGUEST_POWER_OFF)
			vmm_vm_stop(a->vm, VMM_STOP_POWEROFF, "guest powered off");
		else if ((v & 0xff) == KGUEST_POWER_RESET)
			vmm_vm_request_reset(a->vm);
		break;
	case KGUEST_AGENT_MSG_OUT:
		pthread_mutex_lock(&a->lock);
		if ((v & 0xff) == '\n' || a->line_len == KGUEST_AGENT_MSG_MAX) {
			push_line(a);
		} else {
			a->line[a->line_len++] = (char)(v & 0xff);
		}
		pthread_mutex_unlock(&a->lock);
		break;
	default:
		break;
	}
}

static void agent_read(void *opaque, uint64_t off, void *data, unsigned len)
{
	struct vmm_agent *a = opaque;
	uint32_t v = 0;

	if (off == KGUEST_AGENT_MSG_IN) {
		pthread_mutex_lock(&a->lock);
		if (a->in_len > 0) {
			v = a->in[a->in_head];
			a->in_head = (a->in_head + 1) % IN_MAX;
			a->in_len--;
		}
		pthread_mutex_unlock(&a->lock);
	} else if (off == KGUEST_AGENT_ID) {
		v = KGUEST_AGENT_MAGIC;
	}
	memset(data, 0, len);
	memcpy(data, &v, len < 4 ? len : 4);
}

static const struct vmm_io_ops agent_ops = {.read = agent_read, .write = agent_write};

void vmm_agent_heartbeat(struct vmm_agent *a, uint64_t *seq, uint64_t *at_ns)
{
	pthread_mutex_lock(&a->lock);
	*seq = a->hb_seq;
	*at_ns = a->hb_at;
	pthread_mutex_unlock(&a->lock);
}

int vmm_agent_send(struct vmm_agent *a, const char *line)
{
	size_t n = strlen(line);
	int rv = 0;

	pthread_mutex_lock(&a->lock);
	if (n + 1 > IN_MAX - a->in_len) {
		rv = KB_ETOOBIG;
	} else {
		for (size_t i = 0; i <= n; i++) {
			uint8_t c = i < n ? (uint8_t)line[i] : '\n';
			a->in[(a->in_head + a->in_len) % IN_MAX] = c;
			a->in_len++;
		}
	}
	pthread_mutex_unlock(&a->lock);
	return rv;
}

int vmm_agent_take_lines(struct vmm_agent *a, char **out, int max)
{
	int n = 0;

	pthread_mutex_lock(&a->lock);
	while (n < max && a->ring_len > 0) {
		out[n++] = a->ring[a->ring_head];
		a->ring[a->ring_head] = NULL;
		a->ring_head = (a->ring_head + 1) % RING;
		a->ring_len--;
	}
	pthread_mutex_unlock(&a->lock);
	return n;
}

static int agent_save(void *opaque, struct kb_buf *out)
{
	struct vmm_agent *a = opaque;
	int rv;

	pthread_mutex_lock(&a->lock);
	rv = kb_buf_put_u32(out, STATE_VERSION);
	rv = rv ?: kb_buf_put_u64(out, a->hb_seq);
	rv = rv ?: kb_buf_put_u32(out, a->line_len);
	rv = rv ?: kb_buf_append(out, a->line, a->line_len);
	rv = rv ?: kb_buf_put_u32(out, a->in_len);
	for (uint32_t i = 0; rv == 0 && i < a->in_len; i++)
		rv = kb_buf_put_u8(out, a->in[(a->in_head + i) % IN_MAX]);
	pthread_mutex_unlock(&a->lock);
	return rv;
}

static int agent_restore(void *opaque, struct kb_reader *in)
{
	struct vmm_agent *a = opaque;
	uint32_t ver = kb_rd_u32(in);
	uint64_t seq = kb_rd_u64(in);
	uint32_t ll = kb_rd_u32(in);
	const void *line = ll <= KGUEST_AGENT_MSG_MAX ? kb_rd_bytes(in, ll) : NULL;
	uint32_t il = kb_rd_u32(in);
	const void *inq = il <= IN_MAX ? kb_rd_bytes(in, il) : NULL;

	if (in->err)
		return in->err;
	if (ver != STATE_VERSION)
		return KB_EVERSION;
	if (line == NULL || inq == NULL)
		return KB_EPROTO;
	pthread_mutex_lock(&a->lock);
	a->hb_seq = seq;
	a->hb_at = 0;
	memcpy(a->line, line, ll);
	a->line_len = ll;
	memcpy(a->in, inq, il);
	a->in_head = 0;
	a->in_len = il;
	pthread_mutex_unlock(&a->lock);
	return 0;
}

static void agent_reset(void *opaque)
{
	struct vmm_agent *a = opaque;

	pthread_mutex_lock(&a->lock);
	a->line_len = 0;
	a->in_len = a->in_head = 0;
	pthread_mutex_unlock(&a->lock);
}

static void agent_destroy(void *opaque)
{
	struct vmm_agent *a = opaque;

	for (unsigned i = 0; i < RING; i++)
		kb_free(a->ring[i]);
	pthread_mutex_destroy(&a->lock);
	kb_free(a);
}

static const struct vmm_dev_ops agent_dev_ops = {
    .name = "agent",
    .save = agent_save,
    .restore = agent_restore,
    .reset = agent_reset,
    .destroy = agent_destroy,
};

int vmm__agent_create(struct vmm_vm *vm, struct kb_errmsg *err)
{
	struct vmm_agent *a = kb_calloc(1, sizeof(*a));
	int rv;

	if (a == NULL)
		return -ENOMEM;
	a->vm = vm;
	pthread_mutex_init(&a->lock, NULL);
	rv = vmm_dev_register(vm, VMM_DEV_ID(VMM_DEV_AGENT, 0), &agent_dev_ops, a);
	if (rv < 0) {
		agent_destroy(a);
		kb_errmsg_setf(err, "registering the agent channel: %s", kb_strerror(rv));
		return rv;
	}
	rv = vmm_bus_add(&vm->pio, KGUEST_PORT_AGENT, KGUEST_AGENT_NPORTS, &agent_ops, a);
	if (rv < 0) {
		kb_errmsg_setf(err, "agent ports: %s", kb_strerror(rv));
		return rv;
	}
	vm->agent = a;
	return 0;
}
