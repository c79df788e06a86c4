/*
 * Internals shared by the files of the command handlers (apply*.c); the rest of clusterd
 * uses apply.h. apply.c holds the dispatch, the helpers below and the cluster-wide
 * commands; apply_host.c the host commands; apply_vm.c the VM and operation commands;
 * apply_check.c the invariants of a restored state.
 *
 * Every handler below has the contract of cd__command_apply() for its one command: it
 * checks everything first and changes the state only at the end, so a refusal (e says
 * why) leaves it unchanged; it reads no clock and no random source. Loop thread only (the
 * FSM's).
 */
#ifndef CD_APPLY_INT_H
#define CD_APPLY_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "clusterd/apply.h"

#define HOST_LEFT KEEL__CLUSTER__HOST_STATE__HOST_LEFT

/* ---- helpers (apply.c) ------------------------------------------------------------------- */

/* The name of host id, or "?" when it does not exist. Borrowed from s. */
const char *cd__apply_host_name(const struct cd_state *s, uint64_t id);
/* Appends an event; the message is cut at CD_EVENT_MSG_MAX bytes (the handlers' texts stay
 * under it, and are ASCII, so a cut would still be valid). */
__attribute__((format(printf, 6, 7))) void cd__apply_add_event(struct cd_state *s, int kind,
							       uint64_t at_ms, uint64_t host,
							       const char *vm, const char *fmt,
							       ...);
/* The host whose vmk0 address is addr, or NULL. */
const struct cd_host *cd__apply_host_by_vmk0(const struct cd_state *s, const char *addr);
/* The host a VM or operation may name: exists and has not left. 0, KB_ENOTFOUND or
 * KB_ESTATE with e naming it as what ("owner", "destination", ...). */
int cd__apply_live_host(const struct cd_state *s, uint64_t id, const char *what,
			struct kb_errmsg *e);
/* Drops a VM that was unregistered (uuid) or a host that was removed (host) from every rule
 * naming it; a rule left with too few VMs or an empty host group goes, with an event. */
void cd__apply_rules_drop(struct cd_state *s, const char *uuid, uint64_t host);

/* ---- host commands (apply_host.c) -------------------------------------------------------- */

int cd__apply_host_add(struct cd_state *s, const Keel__Cluster__HostAdd *c, struct kb_errmsg *e);
int cd__apply_host_join(struct cd_state *s, const Keel__Cluster__HostJoin *c, struct kb_errmsg *e);
int cd__apply_host_update(struct cd_state *s, const Keel__Cluster__HostUpdate *c,
			  struct kb_errmsg *e);
int cd__apply_host_remove(struct cd_state *s, const Keel__Cluster__HostRemove *c,
			  struct kb_errmsg *e);
int cd__apply_host_set_maintenance(struct cd_state *s, const Keel__Cluster__HostSetMaintenance *c,
				   struct kb_errmsg *e);

/* ---- FT (apply_ft.c) ---------------------------------------------------------------------- */

int cd__apply_vm_set_ft(struct cd_state *s, const Keel__Cluster__VmSetFt *c, struct kb_errmsg *e);
/* A paired VM (STARTING, PROTECTED) whose secondary can no longer take over (its owner
 * changed, it is no longer wanted on, its secondary's host went): NEEDS_SECONDARY, the
 * generation grows, an event says why. No change for any other VM. */
void cd__apply_ft_unpair(struct cd_state *s, struct cd_vm *vm, const char *why);
/* Host removed: no VM keeps it as secondary or preferred secondary host. */
void cd__apply_ft_host_gone(struct cd_state *s, uint64_t host);

/* ---- VM and operation commands (apply_vm.c) ---------------------------------------------- */

int cd__apply_vm_register(struct cd_state *s, const Keel__Cluster__VmRegister *c,
			  struct kb_errmsg *e);
int cd__apply_vm_unregister(struct cd_state *s, const Keel__Cluster__VmUnregister *c,
			    struct kb_errmsg *e);
int cd__apply_vm_set_power(struct cd_state *s, const Keel__Cluster__VmSetPower *c,
			   struct kb_errmsg *e);
int cd__apply_vm_set_ha(struct cd_state *s, const Keel__Cluster__VmSetHa *c, struct kb_errmsg *e);
int cd__apply_vm_change_owner(struct cd_state *s, const Keel__Cluster__VmChangeOwner *c,
			      struct kb_errmsg *e);
int cd__apply_op_begin(struct cd_state *s, const Keel__Cluster__OpBegin *c, struct kb_errmsg *e);
int cd__apply_op_advance(struct cd_state *s, const Keel__Cluster__OpAdvance *c,
			 struct kb_errmsg *e);
int cd__apply_op_end(struct cd_state *s, const Keel__Cluster__OpEnd *c, struct kb_errmsg *e);

#endif
