/*
 * The guest agent channel (dev/agent.c): heartbeats, power requests and text lines
 * between the guest and the host. Port layout in kernel/guest/abi.h.
 */
#ifndef VMM_DEV_AGENT_H
#define VMM_DEV_AGENT_H

#include <stddef.h>
#include <stdint.h>

struct vmm_agent;

/* Last heartbeat sequence and when it arrived (kb_now_ns), 0/0 if none yet. */
void vmm_agent_heartbeat(struct vmm_agent *a, uint64_t *seq, uint64_t *at_ns);
/* Queues a line for the guest (a '\n' is appended). 0 or KB_ETOOBIG when the queue is full. */
int vmm_agent_send(struct vmm_agent *a, const char *line);
/* Takes up to max received lines, oldest first; each is kb_strdup'ed (caller frees with
 * kb_free). Returns the count. */
int vmm_agent_take_lines(struct vmm_agent *a, char **out, int max);

#endif
