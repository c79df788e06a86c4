/*
 * vmx statistics (stats.c): guest memory touched and the monitor's own memory.
 */
#ifndef VMM_STATS_H
#define VMM_STATS_H

#include <stdint.h>

#include "kernel/vmm/vmm.h"

struct vmm_stats {
	uint64_t mem_size;     /* bytes of guest RAM */
	uint64_t mem_touched;  /* bytes of guest RAM backed by host pages */
	uint64_t vmm_rss;      /* bytes resident in the whole vmx process */
	uint64_t vmm_overhead; /* vmm_rss minus guest pages: the monitor's own memory */
	uint64_t heartbeat_seq;
	uint64_t heartbeat_age_ms;
};

/* Any thread. */
void vmm_stats_get(struct vmm_vm *vm, struct vmm_stats *out);

#endif
