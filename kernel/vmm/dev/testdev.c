/*
 * The test port: tiny payloads report 32-bit values on KGUEST_PORT_TEST_REPORT and end
 * the run with an exit code on KGUEST_PORT_TEST_EXIT (KVM selftests' ucall, in one port).
 * Registered only when the VM is configured for tests. Saved state: u32 count, values.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/guest/abi.h"
#include "kernel/vmm/dev/testdev.h"
#include "kernel/vmm/vmm_internal.h"
#include "lib/heap.h"

#define MAX_REPORTS 4096

struct vmm_testdev {
	struct vmm_vm *vm;
	pthread_mutex_t lock;
	uint32_t reports[MAX_REPORTS];
	int n;
};

static void test_write(void *opaque, uint64_t off, const void *data, unsigned len)
{
	struct vmm_testdev *t = opaque;
	uint32_t v = 0;
	char msg[64];

	memcpy(&v, data, len < 4 ? len : 4);
	if (off == 0) {
		pthread_mutex_lock(&t->lock);
		if (t->n < MAX_REPORTS)
			t->reports[t->n] = v;
		t->n++;
		pthread_mutex_unlock(&t->lock);
	} else if (off == KGUEST_PORT_TEST_EXIT - KGUEST_PORT_TEST_REPORT) {
		pthread_mutex_lock(&t->vm->lock);
		t->vm->test_exit_code = (int)(v & 0xff);
		pthread_mutex_unlock(&t->vm->lock);
		snprintf(msg, sizeof(msg), "test payload exited with code %u", v & 0xff);
		vmm_vm_stop(t->vm, VMM_STOP_TEST_EXIT, msg);
	}
}

static const struct vmm_io_ops test_ops = {.write = test_write};

int vmm_testdev_reports(struct vmm_testdev *t, uint32_t *out, int max)
{
	int n;

	pthread_mutex_lock(&t->lock);
	n = t->n;
	int c = n < max ? n : max;
	if (c > MAX_REPORTS)
		c = MAX_REPORTS;
	memcpy(out, t->reports, sizeof(uint32_t) * (size_t)c);
	pthread_mutex_unlock(&t->lock);
	return n;
}

static int test_save(void *opaque, struct kb_buf *out)
{
	struct vmm_testdev *t = opaque;
	int n = t->n < MAX_REPORTS ? t->n : MAX_REPORTS;
	int rv = kb_buf_put_u32(out, (uint32_t)n);

	for (int i = 0; rv == 0 && i < n; i++)
		rv = kb_buf_put_u32(out, t->reports[i]);
	return rv;
}

static int test_restore(void *opaque, struct kb_reader *in)
{
	struct vmm_testdev *t = opaque;
	uint32_t n = kb_rd_u32(in);
	uint32_t tmp[MAX_REPORTS];

	if (in->err == 0 && n > MAX_REPORTS)
		return KB_EPROTO;
	for (uint32_t i = 0; i < n && in->err == 0; i++)
		tmp[i] = kb_rd_u32(in);
	if (in->err)
		return in->err;
	pthread_mutex_lock(&t->lock);
	memcpy(t->reports, tmp, n * sizeof(uint32_t));
	t->n = (int)n;
	pthread_mutex_unlock(&t->lock);
	return 0;
}

static void test_destroy(void *opaque)
{
	struct vmm_testdev *t = opaque;

	pthread_mutex_destroy(&t->lock);
	kb_free(t);
}

static const struct vmm_dev_ops test_dev_ops = {
    .name = "testdev",
    .save = test_save,
    .restore = test_restore,
    .destroy = test_destroy,
};

int vmm__testdev_create(struct vmm_vm *vm, struct kb_errmsg *err)
{
	struct vmm_testdev *t = kb_calloc(1, sizeof(*t));
	int rv;

	if (t == NULL)
		return -ENOMEM;
	t->vm = vm;
	pthread_mutex_init(&t->lock, NULL);
	rv = vmm_dev_register(vm, VMM_DEV_ID(VMM_DEV_TEST, 0), &test_dev_ops, t);
	if (rv < 0) {
		test_destroy(t);
		kb_errmsg_setf(err, "registering the test port: %s", kb_strerror(rv));
		return rv;
	}
	rv = vmm_bus_add(&vm->pio, KGUEST_PORT_TEST_REPORT,
			 KGUEST_PORT_TEST_EXIT - KGUEST_PORT_TEST_REPORT + 1, &test_ops, t);
	if (rv < 0) {
		kb_errmsg_setf(err, "test ports: %s", kb_strerror(rv));
		return rv;
	}
	vm->testdev = t;
	return 0;
}
