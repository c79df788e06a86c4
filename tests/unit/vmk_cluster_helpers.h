/*
 * Helpers shared by the tests of vmkernel in a cluster: a fake clusterd and a real
 * vmkernel to drive against it.
 *
 * The fake clusterd is a thread serving one Unix socket, one request a connection, as
 * kernel/core/cluster.c talks to clusterd: it keeps what each ClusterVmRequest carried and
 * answers per operation as the test set it (a reply, no answer at all, or garbage).
 *
 * The vmkernel is build/bin/vmkernel in a network namespace of its own (its bridges and
 * taps, if any, stay there), its state in a temp dir with a shared datastore "shared1";
 * its <state>/clusterd.sock is where the fake clusterd serves. Teardown powers off what
 * still runs, stops it and removes the temp dir (kept when KEEL_KEEP is set).
 */
#ifndef TEST_VMK_CLUSTER_HELPERS_H
#define TEST_VMK_CLUSTER_HELPERS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#include "vmk.pb-c.h"

/* ---- the fake clusterd -------------------------------------------------------------- */

enum vc_mode {
	VC_REPLY,   /* a ClusterReply with the answer's fields */
	VC_HANG,    /* reads until the client closes, never answers */
	VC_GARBAGE, /* a frame that is no ClusterReply */
};

/* The answer to one operation (ClusterReply and its ClusterVmReply); NULL strings are "". */
struct vc_answer {
	enum vc_mode mode;
	int32_t code;
	const char *error;
	bool member;
	uint64_t owner, epoch, host_id;
	const char *owner_name;
	bool placed;
	const char *placement;
};

/* What one ClusterVmRequest carried. */
struct vc_req {
	int op;
	bool wanted_only;
	char uuid[64], name[64], vmx_path[PATH_MAX];
};

/* Operations 0 .. VC_OPS - 1 have an answer each; any other request gets the default. */
#define VC_OPS 16

/* Starts the fake serving path (a stale socket file there is replaced). 0, or -1 with
 * nothing left running. Call from the test's thread; at most one fake runs at a time. */
int vc_fake_start(const char *path);
/* Stops the fake and removes its socket; nothing when it does not run. */
void vc_fake_stop(void);
/* Forgets the requests received and sets every operation's answer, and the default, to
 * *dflt (NULL: a zero answer, a reply that says "no cluster"). */
void vc_fake_reset(const struct vc_answer *dflt);
/* Sets the answer to op (0 < op < VC_OPS) from now on. */
void vc_fake_set(int op, struct vc_answer a);
/* How many requests of op the fake received since the last reset (op 0: all). */
int vc_fake_count(int op);
/* The last request of op received since the last reset (op 0: of any op); fails the test
 * when there was none. */
struct vc_req vc_fake_last(int op);

/* ---- a real vmkernel ---------------------------------------------------------------- */

struct vc_vmk {
	char top[PATH_MAX];	/* the temp dir */
	char state[PATH_MAX];	/* top/state: vmkernel's --state-dir */
	char shared[PATH_MAX];	/* top/shared: the shared datastore "shared1" */
	char sock[PATH_MAX];	/* state/vmkernel.sock */
	char cl_sock[PATH_MAX]; /* state/clusterd.sock: where vmkernel asks clusterd */
	pid_t pid;		/* vmkernel's */
	uint64_t host_id;	/* this host's id (state/clusterd.id) */
};

/* The vmkernel under test (vc_vmk_setup fills it in). */
extern struct vc_vmk vc_vmk;

/* Makes /tmp/keel-<tag>-XXXXXX with state and shared, starts vmkernel, reads its host id
 * and adds the shared datastore. 0, or -1 (cmocka setup's convention). */
int vc_vmk_setup(const char *tag);
/* Starts vmkernel on vc_vmk.state (again, after a kill) and waits until it answers on its
 * socket. 0, or -1 when it could not start or exited. */
int vc_vmk_start(void);
/* Stops the fake clusterd, powers off (isolation, clusterd not told) every VM still on,
 * stops vmkernel (frozen or not) and removes the temp dir unless KEEL_KEEP is set. */
void vc_vmk_teardown(void);

/* One request to vmkernel: its reply (caller frees with vc_done), NULL when vmkernel
 * could not be reached or answered no VmkReply. */
Keel__Vmk__VmkReply *vc_rpc(Keel__Vmk__VmkRequest *rq);
/* Frees a reply of vc_rpc. */
void vc_done(Keel__Vmk__VmkReply *rp);
/* VmCreate of a 64 MiB, 1 vCPU kguest VM on datastore ds ("": the default one), VmGet,
 * VmPowerOn (reconcile: as the owner's reconciler asks) and VmPowerOff (fence: an
 * isolation power-off): vmkernel's reply (caller frees with vc_done); fail the test when
 * there is none. */
Keel__Vmk__VmkReply *vc_vm_create(const char *name, const char *ds);
Keel__Vmk__VmkReply *vc_vm_get(const char *name);
Keel__Vmk__VmkReply *vc_vm_power_on(const char *name, bool reconcile);
Keel__Vmk__VmkReply *vc_vm_power_off(const char *name, bool fence);

#define assert_has(hay, needle)                                               \
	do {                                                                  \
		if (!strstr((hay), (needle)))                                 \
			fail_msg("expected \"%s\" in:\n%s", (needle), (hay)); \
	} while (0)

#endif
