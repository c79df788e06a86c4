/*
 * The device registry: every device with state, in registration order, so the state
 * module can save them in a fixed order and find each by its stable id on restore.
 */
#include <errno.h>

#include "kernel/vmm/vmm.h"
#include "lib/heap.h"

int vmm_dev_register(struct vmm_vm *vm, uint32_t id, const struct vmm_dev_ops *ops, void *opaque)
{
	struct kb_list *pos;
	struct vmm_dev *d;

	kb_list_for_each(pos, &vm->devs)
	{
		if (kb_list_entry(pos, struct vmm_dev, link)->id == id)
			return KB_EEXIST;
	}
	d = kb_calloc(1, sizeof(*d));
	if (d == NULL)
		return -ENOMEM;
	d->id = id;
	d->ops = ops;
	d->opaque = opaque;
	kb_list_add_tail(&vm->devs, &d->link);
	return 0;
}
