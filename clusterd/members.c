/*
 * Membership: the planner (clusterd/members.h) and the leader's glue that carries out one
 * Raft configuration change at a time (raft_add, raft_assign, raft_remove) and then
 * records the role in the state (HostUpdate), which makes an event.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "clusterd/daemon.h"
#include "clusterd/members.h"
#include "lib/heap.h"

void cd_members_plan(const struct cd_member *m, unsigned n, uint64_t self,
		     struct cd_member_action *out)
{
	unsigned in_state = 0, voters = 0, live_voters = 0, can_vote = 0, target;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < n; i++) {
		if (m[i].role >= 0 && !m[i].in_state && m[i].id != self) {
			out->kind = CD_MEMBER_REMOVE;
			out->id = m[i].id;
			return;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (m[i].in_state && m[i].role < 0) {
			out->kind = CD_MEMBER_ADD;
			out->id = m[i].id;
			out->role = RAFT_SPARE;
			return;
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (!m[i].in_state)
			continue;
		in_state++;
		if (m[i].role == RAFT_VOTER) {
			voters++;
			if (!m[i].dead)
				live_voters++;
		}
		if ((m[i].role == RAFT_VOTER && !m[i].dead) || m[i].eligible)
			can_vote++;
	}
	target = in_state >= CD_VOTERS_LARGE_FROM ? CD_VOTERS_LARGE : CD_VOTERS_SMALL;
	if (target > can_vote)
		target = can_vote;
	if (target == 0)
		target = 1;
	if (live_voters < target) {
		for (unsigned i = 0; i < n; i++) {
			if (m[i].in_state && m[i].eligible && m[i].role == RAFT_STANDBY) {
				out->kind = CD_MEMBER_ASSIGN;
				out->id = m[i].id;
				out->role = RAFT_VOTER;
				return;
			}
		}
		for (unsigned i = 0; i < n; i++) {
			if (m[i].in_state && m[i].eligible && m[i].role == RAFT_SPARE) {
				out->kind = CD_MEMBER_ASSIGN;
				out->id = m[i].id;
				out->role = RAFT_STANDBY;
				return;
			}
		}
	}
	if (live_voters >= target) {
		for (unsigned i = 0; i < n; i++) {
			if (m[i].in_state && m[i].role == RAFT_VOTER && m[i].dead &&
			    m[i].id != self) {
				/* a standby, not a spare: the log is still sent to it, so
				 * when it comes back it hears the leader at once */
				out->kind = CD_MEMBER_ASSIGN;
				out->id = m[i].id;
				out->role = RAFT_STANDBY;
				return;
			}
		}
	}
	if (live_voters > target) {
		/* Highest id first, so the same hosts stay voters; never the leader. */
		for (unsigned i = n; i-- > 0;) {
			if (m[i].in_state && m[i].role == RAFT_VOTER && m[i].id != self) {
				out->kind = CD_MEMBER_ASSIGN;
				out->id = m[i].id;
				out->role = RAFT_STANDBY;
				return;
			}
		}
	}
	for (unsigned i = 0; i < n; i++) {
		if (m[i].in_state && m[i].eligible && m[i].role == RAFT_SPARE) {
			out->kind = CD_MEMBER_ASSIGN;
			out->id = m[i].id;
			out->role = RAFT_STANDBY;
			return;
		}
	}
}

/* ---- the leader's glue ------------------------------------------------------------------ */

static int proto_role(int raft_role)
{
	switch (raft_role) {
	case RAFT_VOTER:
		return KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
	case RAFT_STANDBY:
		return KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_STANDBY;
	default:
		return KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_SPARE;
	}
}

static const char *role_name(int raft_role)
{
	switch (raft_role) {
	case RAFT_VOTER:
		return "voter";
	case RAFT_STANDBY:
		return "standby";
	case RAFT_SPARE:
		return "spare";
	default:
		return "none";
	}
}

static void on_role_recorded(struct cd_daemon *d, void *arg, int status, int code,
			     const char *reason)
{
	d->role_update_pending = false;
	(void)arg;
	(void)status;
	(void)code;
	(void)reason;
}

/* Records in the state the role Raft now gives host id (HostUpdate), when it differs. */
static void record_role(struct cd_daemon *d, uint64_t id, int raft_role)
{
	const struct cd_host *h = cd_state_host(cd_fsm_state(&d->fsm), id);
	Keel__Cluster__HostUpdate hu = KEEL__CLUSTER__HOST_UPDATE__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	struct kb_errmsg e = {{0}};

	if (!h || h->role == proto_role(raft_role) || d->role_update_pending ||
	    h->state == KEEL__CLUSTER__HOST_STATE__HOST_LEFT)
		return;
	hu.id = id;
	hu.state = h->state;
	hu.role = proto_role(raft_role);
	hu.at_ms = cd_now_ms();
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_UPDATE;
	c.host_update = &hu;
	if (cd_submit(d, &c, on_role_recorded, NULL, &e) == 0)
		d->role_update_pending = true;
}

static void on_change(struct raft_change *req, int status)
{
	struct cd_daemon *d = req->data;

	d->change_pending = false;
	if (status) {
		kb_log(d->log, KB_LOG_WARN, "membership change for host %" PRIu64 " failed: %s",
		       d->change_id, raft_strerror(status));
		return;
	}
	if (d->change_role == -1)
		kb_log(d->log, KB_LOG_INFO, "host %" PRIu64 " removed from the Raft configuration",
		       d->change_id);
	else
		kb_log(d->log, KB_LOG_INFO, "host %" PRIu64 " is now a %s", d->change_id,
		       role_name(d->change_role == -2 ? RAFT_SPARE : d->change_role));
}

void cd_members_tick(struct cd_daemon *d)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	const struct raft_configuration *conf = &d->raft.configuration;
	unsigned nh = cd_state_n_hosts(s), n = 0;
	struct cd_member *m;
	struct cd_member_action a;
	int rv = 0;

	if (d->change_pending || !s->config.set)
		return;
	/* Keep the state's record of roles in step with the configuration. */
	for (unsigned i = 0; i < conf->n && !d->role_update_pending; i++)
		record_role(d, conf->servers[i].id, conf->servers[i].role);
	m = kb_calloc(nh + conf->n + 1, sizeof(*m));
	if (!m)
		return;
	for (unsigned i = 0; i < nh; i++) {
		const struct cd_host *h = cd_state_host_at(s, i);
		int64_t net = -1, ds = -1;

		if (h->state == KEEL__CLUSTER__HOST_STATE__HOST_LEFT)
			continue;
		cd_hbnet_ages(d, h->id, &net, &ds);
		m[n].id = h->id;
		m[n].role = -1;
		m[n].in_state = true;
		m[n].eligible = h->state == KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
		/* failed, and for CD_VOTER_REPLACE_MS since it was declared failed (the
		 * failure timeout after its last heartbeat) */
		m[n].dead = h->state == KEEL__CLUSTER__HOST_STATE__HOST_FAILED &&
			    (net < 0 || net >= (int64_t)s->config.failure_timeout_ms +
						   CD_VOTER_REPLACE_MS);
		n++;
	}
	for (unsigned i = 0; i < conf->n; i++) {
		const struct raft_server *sv = &conf->servers[i];
		unsigned j;

		for (j = 0; j < n && m[j].id != sv->id; j++)
			;
		if (j == n) {
			m[n].id = sv->id;
			n++;
		}
		m[j].role = sv->role;
	}
	/* sort by id (small n: insertion sort) */
	for (unsigned i = 1; i < n; i++) {
		struct cd_member t = m[i];
		unsigned j = i;

		for (; j > 0 && m[j - 1].id > t.id; j--)
			m[j] = m[j - 1];
		m[j] = t;
	}
	cd_members_plan(m, n, d->id, &a);
	kb_free(m);
	if (a.kind == CD_MEMBER_NONE)
		return;
	d->change.data = d;
	d->change_id = a.id;
	switch (a.kind) {
	case CD_MEMBER_ADD: {
		const struct cd_host *h = cd_state_host(s, a.id);

		d->change_role = -2;
		rv = raft_add(&d->raft, &d->change, a.id, h->vmk0, on_change);
		break;
	}
	case CD_MEMBER_ASSIGN:
		d->change_role = a.role;
		rv = raft_assign(&d->raft, &d->change, a.id, a.role, on_change);
		break;
	case CD_MEMBER_REMOVE:
		d->change_role = -1;
		rv = raft_remove(&d->raft, &d->change, a.id, on_change);
		break;
	default:
		return;
	}
	if (rv == 0) {
		d->change_pending = true;
		kb_log(d->log, KB_LOG_INFO, "membership: %s host %" PRIu64 "%s%s",
		       a.kind == CD_MEMBER_ADD	      ? "adding"
		       : a.kind == CD_MEMBER_REMOVE ? "removing"
						    : "assigning",
		       a.id, a.kind == CD_MEMBER_ASSIGN ? " as " : "",
		       a.kind == CD_MEMBER_ASSIGN ? role_name(a.role) : "");
	} else if (rv != RAFT_CANTCHANGE) {
		kb_log(d->log, KB_LOG_WARN, "membership change for host %" PRIu64 ": %s", a.id,
		       raft_strerror(rv));
	}
}
