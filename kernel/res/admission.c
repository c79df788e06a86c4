/*
 * Admission control: a VM may power on only if its CPU and memory reservations fit in
 * what the host can still hand out, as in ESXi's host-level admission control.
 *
 * The host's reservable capacity is its total minus the host reserve (capacity.c). The
 * caller sums the reservations of the VMs already powered on (vmk_res_totals_add) and
 * asks whether the new VM's reservations fit on top: reserved + new <= reservable, for
 * CPU MHz and memory MiB separately; exactly full fits. Limits and shares play no part,
 * and a VM without reservations always powers on (it runs on unreserved capacity). A
 * refusal is KB_ESTATE with a message that names the VM, what it reserves, what remains
 * and the reservable total, for each resource that does not fit.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kernel/res/res_internal.h"

void vmk_res_totals_add(struct vmk_res_totals *t, const struct vmk_res_settings *s)
{
	t->cpu_mhz += s->cpu_reservation_mhz;
	t->mem_mib += s->mem_reservation_mib;
}

/* What remains of reservable once reserved is handed out; never below 0 (the reserve or
 * the host may have shrunk since those VMs powered on). */
static uint64_t remaining(uint64_t reservable, uint64_t reserved)
{
	return reserved >= reservable ? 0 : reservable - reserved;
}

int vmk_res_admit(const struct vmk_res_capacity *cap, const struct vmk_res_totals *reserved,
		  const char *name, const struct vmk_res_settings *vm, struct kb_errmsg *err)
{
	uint64_t mem_left = remaining(cap->mem_reservable_mib, reserved->mem_mib);
	uint64_t cpu_left = remaining(cap->cpu_reservable_mhz, reserved->cpu_mhz);
	bool mem_fits = vm->mem_reservation_mib <= mem_left;
	bool cpu_fits = vm->cpu_reservation_mhz <= cpu_left;
	char mem_text[160] = "", cpu_text[160] = "";

	if (mem_fits && cpu_fits)
		return 0;
	if (!mem_fits)
		snprintf(mem_text, sizeof(mem_text),
			 "it reserves %" PRIu32 " MiB of memory; %" PRIu64 " MiB of %" PRIu64
			 " MiB remain unreserved",
			 vm->mem_reservation_mib, mem_left, cap->mem_reservable_mib);
	if (!cpu_fits)
		snprintf(cpu_text, sizeof(cpu_text),
			 "it reserves %" PRIu32 " MHz of CPU; %" PRIu64 " MHz of %" PRIu64
			 " MHz remain unreserved",
			 vm->cpu_reservation_mhz, cpu_left, cap->cpu_reservable_mhz);
	vmk__res_seterr(err, "cannot power on %s: %s%s%s", name != NULL ? name : "the VM", mem_text,
			!mem_fits && !cpu_fits ? "; and " : "", cpu_text);
	return KB_ESTATE;
}
