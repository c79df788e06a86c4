/*
 * Constructors of the optional devices vmx adds from its command line.
 */
#ifndef VMM_DEVICES_H
#define VMM_DEVICES_H

#include <stdbool.h>
#include <stdint.h>

#include "kernel/vmm/vmm.h"

/* A virtio-blk disk on a raw (sparse) image. Before the VM starts. */
int vmm_virtio_blk_create(struct vmm_vm *vm, const char *path, bool readonly,
			  struct kb_errmsg *err);
/* A virtio-net NIC on an existing tap device. Before the VM starts. */
int vmm_virtio_net_create(struct vmm_vm *vm, const char *tap_name, const uint8_t mac[6],
			  struct kb_errmsg *err);

/* Announces each NIC's MAC with one broadcast RARP frame written to its backend (after a
 * migration resumed the guest here). Returns the number of NICs. Any thread. */
int vmm_virtio_net_announce(struct vmm_vm *vm);

#endif
