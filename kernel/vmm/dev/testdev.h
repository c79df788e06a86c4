/*
 * The test port for ucall-style payloads (dev/testdev.c): values the guest reported.
 */
#ifndef VMM_DEV_TESTDEV_H
#define VMM_DEV_TESTDEV_H

#include <stdint.h>

struct vmm_testdev;

/* Copies up to max reported values into out; returns how many were reported in all. */
int vmm_testdev_reports(struct vmm_testdev *t, uint32_t *out, int max);

#endif
