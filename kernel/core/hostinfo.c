/*
 * Host information: identity, inventory counts and uptime here; capacity, reservations
 * and usage from the resource module (subsys.c).
 */
#include <string.h>
#include <unistd.h>

#include "kernel/core/core.h"
#include "kernel/core/subsys.h"
#include "kernel/vm/vm.h"
#include "lib/time.h"

void vmk_host_info(struct vmk_host *h, Keel__Vmk__HostInfo *out, char *hostname, size_t size)
{
	struct kb_list *pos;

	if (gethostname(hostname, size) < 0)
		hostname[0] = '\0';
	hostname[size - 1] = '\0';
	out->hostname = hostname;
	out->version = VMK_VERSION;
	out->state_dir = h->state_dir;
	out->uptime_ms = (kb_now_ns() - h->started_ns) / KB_NSEC_PER_MSEC;
	pthread_mutex_lock(&h->lock);
	kb_list_for_each(pos, &h->vms)
	{
		struct vmk_vm *vm = kb_list_entry(pos, struct vmk_vm, link);
		out->vms_registered++;
		if (vm->power == VMK_POWERED_ON)
			out->vms_powered_on++;
	}
	pthread_mutex_unlock(&h->lock);
	vmk_subsys_host_info(h, out);
}
