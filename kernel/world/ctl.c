/*
 * The user worlds' control requests (world_list, world_restart in proto/vmk.proto), served
 * on vmkernel's thread pool. Both answer with every world's WorldInfo; without --worlds the
 * list is empty and a restart names no world (KB_ENOTFOUND).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/world/ctl.h"
#include "kernel/world/world.h"
#include "lib/heap.h"

static const char *const seccomp_names[] = {"kill", "errno", "off"};

/* One world's reply, in one allocation. */
struct info_slot {
	Keel__Vmk__WorldInfo msg;
	struct vmk_world_status st;
	char *caps[64];
};

bool vmk_world_ctl_owns(const Keel__Vmk__VmkRequest *rq)
{
	return rq->req_case == KEEL__VMK__VMK_REQUEST__REQ_WORLD_LIST ||
	       rq->req_case == KEEL__VMK__VMK_REQUEST__REQ_WORLD_RESTART;
}

static int fill(struct vmk_worlds *w, Keel__Vmk__VmkReply *reply)
{
	struct vmk_world_status *st = NULL;
	size_t n = 0;
	int rv;

	if (w == NULL)
		return 0;
	rv = vmk_worlds_list(w, &st, &n);
	if (rv < 0)
		return rv;
	reply->worlds = kb_calloc(n ? n : 1, sizeof(*reply->worlds));
	if (reply->worlds == NULL) {
		kb_free(st);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		struct info_slot *s = kb_calloc(1, sizeof(*s));
		if (s == NULL) {
			rv = -ENOMEM;
			break;
		}
		keel__vmk__world_info__init(&s->msg);
		s->st = st[i];
		s->msg.name = s->st.name;
		s->msg.state = s->st.state;
		s->msg.pid = (uint32_t)s->st.pid;
		s->msg.restarts = s->st.restarts;
		s->msg.uptime_ms = s->st.uptime_ms;
		s->msg.backoff_ms = s->st.backoff_ms;
		s->msg.cpu_ns = s->st.cpu_ns;
		s->msg.mem_bytes = s->st.mem_bytes;
		s->msg.cgroup = s->st.cgroup;
		s->msg.last_exit = s->st.last_exit;
		s->msg.last_event = s->st.last_event;
		s->msg.program = s->st.argv0;
		for (int c = 0; c < 64; c++)
			if ((s->st.caps & (1ull << c)) && vmk_world_cap_name(c))
				s->caps[s->msg.n_caps++] = (char *)vmk_world_cap_name(c);
		s->msg.caps = s->caps;
		s->msg.syscalls = (uint32_t)s->st.nsyscalls;
		s->msg.seccomp = (char *)seccomp_names[s->st.seccomp];
		s->msg.private_mounts = s->st.private_mounts;
		reply->worlds[reply->n_worlds++] = &s->msg;
	}
	kb_free(st);
	return rv;
}

int vmk_world_ctl_handle(const Keel__Vmk__VmkRequest *rq, Keel__Vmk__VmkReply *reply,
			 struct kb_errmsg *err)
{
	struct vmk_worlds *w = vmk_worlds_acquire();
	int rv = 0;

	if (rq->req_case == KEEL__VMK__VMK_REQUEST__REQ_WORLD_RESTART) {
		const char *name = rq->world_restart->name ? rq->world_restart->name : "";
		if (w == NULL) {
			kb_errmsg_setf(err,
				       "no world named \"%.40s\" (vmkernel runs no user worlds: "
				       "see --worlds)",
				       name);
			rv = KB_ENOTFOUND;
		} else {
			rv = vmk_worlds_restart(w, name, err);
		}
	}
	if (rv == 0) {
		rv = fill(w, reply);
		if (rv < 0)
			kb_errmsg_setf(err, "listing the worlds: %s", kb_strerror(rv));
	}
	vmk_worlds_release();
	return rv;
}

void vmk_world_ctl_reply_free(Keel__Vmk__VmkReply *reply)
{
	for (size_t i = 0; i < reply->n_worlds; i++)
		kb_free(reply->worlds[i]); /* the slot starts with its message */
	kb_free(reply->worlds);
	reply->worlds = NULL;
	reply->n_worlds = 0;
}
