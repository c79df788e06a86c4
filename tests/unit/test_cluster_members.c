/*
 * Tests of the leader's membership planner (clusterd/members.h).
 *
 * The pure planner: a table of merged host/server views, one row per rule of members.h in
 * order, each asserting the exact next action (kind, id, role); and the planner iterated
 * to a fixed point over an in-memory view, which must converge.
 *
 * The planner under raft_fixture: 5 servers with clusterd's FSM, every raft_io wrapped
 * with cd_raft_io_wrap() as in the daemon, server 1 bootstrapped alone as a voter (as the
 * first host of a new cluster is). The test plays the leader's cd_members_tick(): it
 * merges the leader's Raft configuration with a test-defined set of state hosts and their
 * liveness, asks the planner, carries the action out with raft_add/raft_assign/
 * raft_remove and steps the fixture until the change callback fires. It checks the
 * cluster settles at 3 voters and 2 standbys; that a killed voter is replaced (a standby
 * promoted first, then the dead one made a spare) and an entry still commits; and that 7
 * hosts give 5 voters. After every step no leader may record a match index past a
 * follower's log (docs/clusterd.md, "libraft 0.15 and stale log tails").
 *
 * Regression (test_dead_leader_converges): when the leader's own host is dead in the
 * state, rule 5 once counted the leader among the voters while rules 3 and 4 did not count
 * it live, so the planner promoted a standby and demoted it again, forever. Rule 5 now
 * compares live voters with the target.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <raft.h>
#include <raft/fixture.h>

#include "clusterd/fsm.h"
#include "clusterd/members.h"

/* ---- the pure planner: one table row per rule ------------------------------------------- */

#define V  RAFT_VOTER
#define S  RAFT_STANDBY
#define P  RAFT_SPARE
#define NC (-1) /* not in the configuration */

#define MAX_ROW 8

/* The table reads best one row per line: */
/* clang-format off */
/* A member written as {id, role, in_state, eligible, dead}. */
#define LIVE(id, role)	{(id), (role), true, true, false}
#define DOWN(id, role)	{(id), (role), true, false, false} /* failed, not dead yet */
#define DEAD(id, role)	{(id), (role), true, false, true}
#define LEFT(id, role)	{(id), (role), false, false, false}

struct row {
	const char *name;
	uint64_t self;
	unsigned n;
	struct cd_member m[MAX_ROW];
	struct cd_member_action want;
};

#define NONE   {CD_MEMBER_NONE, 0, 0}
#define ADD(i) {CD_MEMBER_ADD, (i), RAFT_SPARE}
#define ASSIGN(i, r) {CD_MEMBER_ASSIGN, (i), (r)}
#define REMOVE(i) {CD_MEMBER_REMOVE, (i), 0}

static const struct row rows[] = {
    /* 1. a configured server whose host left the state is removed, never the leader */
    {"left voter removed", 1, 4, {LIVE(1, V), LIVE(2, V), LIVE(3, V), LEFT(4, V)}, REMOVE(4)},
    {"left spare removed", 1, 4, {LIVE(1, V), LIVE(2, V), LIVE(3, V), LEFT(4, P)}, REMOVE(4)},
    {"lowest left id first, before an add", 1, 5,
     {LIVE(1, V), LEFT(2, S), LIVE(3, V), LEFT(4, V), LIVE(5, NC)}, REMOVE(2)},
    {"left leader never removed", 1, 4, {LEFT(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, V)}, NONE},
    {"left leader, left other removed", 2, 4, {LIVE(1, V), LEFT(2, V), LIVE(3, V), LEFT(4, S)},
     REMOVE(4)},
    /* 2. a state host missing from the configuration is added as a spare */
    {"missing host added", 1, 4, {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, NC)}, ADD(4)},
    {"missing host added before a promotion", 1, 3, {LIVE(1, V), LIVE(2, NC), LIVE(3, S)},
     ADD(2)},
    {"unreachable host added too", 1, 4, {LIVE(1, V), LIVE(2, V), LIVE(3, V), DOWN(4, NC)},
     ADD(4)},
    {"dead host added too", 1, 4, {LIVE(1, V), LIVE(2, V), LIVE(3, V), DEAD(4, NC)}, ADD(4)},
    /* 3. fewer live voters than the target: standby -> voter, else spare -> standby */
    {"standby preferred over a lower spare", 1, 3, {LIVE(1, V), LIVE(2, P), LIVE(3, S)},
     ASSIGN(3, V)},
    {"spare made standby", 1, 3, {LIVE(1, V), LIVE(2, P), LIVE(3, P)}, ASSIGN(2, S)},
    {"lowest eligible standby", 1, 4, {LIVE(1, V), DOWN(2, S), LIVE(3, S), LIVE(4, S)},
     ASSIGN(3, V)},
    {"ineligible standby skipped for a spare", 1, 4,
     {LIVE(1, V), LIVE(2, V), DOWN(3, S), LIVE(4, P)}, ASSIGN(4, S)},
    {"dead standby skipped", 1, 4, {LIVE(1, V), LIVE(2, V), DEAD(3, S), LIVE(4, S)},
     ASSIGN(4, V)},
    {"unreachable voter still counts live", 1, 4, {LIVE(1, V), DOWN(2, V), LIVE(3, V), LIVE(4, S)},
     NONE},
    /* target: 3 below 7 hosts */
    {"6 hosts: 3 voters", 1, 6,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, S), LIVE(5, S), LIVE(6, S)}, NONE},
    {"6 hosts, 2 voters: one more", 1, 6,
     {LIVE(1, V), LIVE(2, V), LIVE(3, S), LIVE(4, S), LIVE(5, S), LIVE(6, S)}, ASSIGN(3, V)},
    /* target: 5 from 7 hosts */
    {"7 hosts, 3 voters: a fourth", 1, 7,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, S), LIVE(5, S), LIVE(6, S), LIVE(7, S)},
     ASSIGN(4, V)},
    {"7 hosts, 4 voters: the standby before lower spares", 1, 7,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, V), LIVE(5, P), LIVE(6, P), LIVE(7, S)},
     ASSIGN(7, V)},
    {"7 hosts, 5 voters", 1, 7,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, V), LIVE(5, V), LIVE(6, S), LIVE(7, S)}, NONE},
    {"7 hosts counting a dead one: 5", 1, 7,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), DEAD(4, P), LIVE(5, S), LIVE(6, S), LIVE(7, S)},
     ASSIGN(5, V)},
    {"7 hosts, one left: 6 count, 3", 1, 7,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, S), LIVE(5, S), LIVE(6, S), LEFT(7, NC)}, NONE},
    /* target capped by the hosts that can vote */
    {"7 hosts, 4 can vote: 4", 1, 7,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, S), DOWN(5, S), DOWN(6, S), DOWN(7, S)},
     ASSIGN(4, V)},
    {"7 hosts, 4 voters that can: done", 1, 7,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, V), DOWN(5, S), DOWN(6, S), DOWN(7, S)}, NONE},
    {"2 hosts: 2 voters", 1, 2, {LIVE(1, V), LIVE(2, S)}, ASSIGN(2, V)},
    {"1 host: nothing", 1, 1, {LIVE(1, V)}, NONE},
    {"3 hosts, 2 can vote: done", 1, 3, {LIVE(1, V), LIVE(2, V), DOWN(3, S)}, NONE},
    /* never 0: nobody can vote (all dead, the leader too), target 1: rule 4 needs 1 live
     * voter, so no dead voter becomes a spare (with a target of 0, 2 would); rule 5 counts
     * live voters (none), so nothing changes */
    {"nobody can vote: target 1, not 0", 1, 3, {DEAD(1, V), DEAD(2, V), DEAD(3, V)}, NONE},
    /* 4. a dead voter becomes a standby (still sent the log) once the live voters reach the
     * target without it */
    {"dead voter waits for a promotion", 1, 4, {LIVE(1, V), LIVE(2, V), DEAD(3, V), LIVE(4, S)},
     ASSIGN(4, V)},
    {"dead voter waits for a spare to catch up", 1, 4,
     {LIVE(1, V), LIVE(2, V), DEAD(3, V), LIVE(4, P)}, ASSIGN(4, S)},
    {"dead voter made standby once replaced", 1, 4, {LIVE(1, V), LIVE(2, V), DEAD(3, V), LIVE(4, V)},
     ASSIGN(3, S)},
    {"dead voter made standby: target capped at 2", 1, 3, {LIVE(1, V), LIVE(2, V), DEAD(3, V)},
     ASSIGN(3, S)},
    {"failed voter not dead yet is kept", 1, 4, {LIVE(1, V), LIVE(2, V), DOWN(3, V), LIVE(4, S)},
     NONE},
    {"lowest dead voter first", 1, 5,
     {LIVE(1, V), DEAD(2, V), DEAD(3, V), LIVE(4, V), LIVE(5, V)}, ASSIGN(2, S)},
    {"dead leader skipped, next dead voter", 1, 5,
     {DEAD(1, V), DEAD(2, V), LIVE(3, V), LIVE(4, V), LIVE(5, V)}, ASSIGN(2, S)},
    {"dead leader not demoted while short", 1, 4, {DEAD(1, V), LIVE(2, V), LIVE(3, S), LIVE(4, S)},
     ASSIGN(3, V)},
    /* 5. more voters than the target: highest id first, never the leader */
    {"extra voter made standby", 1, 4, {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, V)},
     ASSIGN(4, S)},
    {"extra voters: highest id first", 1, 5,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, V), LIVE(5, V)}, ASSIGN(5, S)},
    {"extra voters: never the leader", 5, 5,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, V), LIVE(5, V)}, ASSIGN(4, S)},
    {"extra voter after a target drop (6 hosts)", 1, 6,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, V), LIVE(5, V), LIVE(6, S)}, ASSIGN(5, S)},
    /* 6. an eligible spare becomes a standby */
    {"eligible spare made standby", 1, 5,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, S), LIVE(5, P)}, ASSIGN(5, S)},
    {"ineligible spare stays", 1, 5, {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, S), DOWN(5, P)},
     NONE},
    {"dead spare stays", 1, 5, {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, S), DEAD(5, P)}, NONE},
    /* steady */
    {"steady 3 voters, 2 standbys", 1, 5,
     {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, S), LIVE(5, S)}, NONE},
    {"steady, another leader", 3, 5, {LIVE(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, S), LIVE(5, S)},
     NONE},
};
/* clang-format on */

static const char *kind_name(enum cd_member_kind k)
{
	switch (k) {
	case CD_MEMBER_NONE:
		return "none";
	case CD_MEMBER_ADD:
		return "add";
	case CD_MEMBER_ASSIGN:
		return "assign";
	case CD_MEMBER_REMOVE:
		return "remove";
	}
	return "?";
}

static void test_plan_table(void **state)
{
	unsigned bad = 0;

	(void)state;
	for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		const struct row *r = &rows[i];
		struct cd_member_action a;

		memset(&a, 0xa5, sizeof(a));
		cd_members_plan(r->m, r->n, r->self, &a);
		if (a.kind != r->want.kind || a.id != r->want.id ||
		    (a.kind == CD_MEMBER_ASSIGN || a.kind == CD_MEMBER_ADD ? a.role != r->want.role
									   : false)) {
			fprintf(stderr, "# row \"%s\": got %s %llu role %d, want %s %llu role %d\n",
				r->name, kind_name(a.kind), (unsigned long long)a.id, a.role,
				kind_name(r->want.kind), (unsigned long long)r->want.id,
				r->want.role);
			bad++;
		}
	}
	assert_int_equal(bad, 0);
}

/* NONE clears the whole action. */
static void test_plan_none_is_zeroed(void **state)
{
	struct cd_member m[] = {LIVE(1, V)};
	struct cd_member_action a;

	(void)state;
	memset(&a, 0xa5, sizeof(a));
	cd_members_plan(m, 1, 1, &a);
	assert_int_equal(a.kind, CD_MEMBER_NONE);
	assert_int_equal(a.id, 0);
	assert_int_equal(a.role, 0);
	cd_members_plan(m, 0, 1, &a);
	assert_int_equal(a.kind, CD_MEMBER_NONE);
}

/* ---- the pure planner iterated to a fixed point ------------------------------------------ */

/* Carries a out on m[0..*n) as Raft would. */
static void sim_apply(struct cd_member *m, unsigned *n, const struct cd_member_action *a)
{
	for (unsigned i = 0; i < *n; i++) {
		if (m[i].id != a->id)
			continue;
		switch (a->kind) {
		case CD_MEMBER_ADD:
			assert_int_equal(m[i].role, NC);
			m[i].role = RAFT_SPARE;
			return;
		case CD_MEMBER_ASSIGN:
			assert_int_not_equal(m[i].role, NC);
			assert_int_not_equal(m[i].role, a->role); /* raft_assign: RAFT_BADROLE */
			m[i].role = a->role;
			return;
		case CD_MEMBER_REMOVE:
			assert_int_not_equal(m[i].role, NC);
			memmove(&m[i], &m[i + 1], (*n - i - 1) * sizeof(*m));
			(*n)--;
			return;
		default:
			fail();
		}
	}
	fail_msg("action on unknown id %llu", (unsigned long long)a->id);
}

/* Plans and applies until NONE; returns the number of changes, or -1 after max. */
static int sim_converge(struct cd_member *m, unsigned *n, uint64_t self, int max, bool verbose)
{
	struct cd_member_action a;

	for (int k = 0; k <= max; k++) {
		cd_members_plan(m, *n, self, &a);
		if (a.kind == CD_MEMBER_NONE)
			return k;
		if (k == max)
			break;
		if (verbose)
			printf("#   %s %llu role %d\n", kind_name(a.kind), (unsigned long long)a.id,
			       a.role);
		sim_apply(m, n, &a);
	}
	return -1;
}

static void count_roles(const struct cd_member *m, unsigned n, unsigned *v, unsigned *s,
			unsigned *p)
{
	*v = *s = *p = 0;
	for (unsigned i = 0; i < n; i++) {
		*v += m[i].role == RAFT_VOTER;
		*s += m[i].role == RAFT_STANDBY;
		*p += m[i].role == RAFT_SPARE;
	}
}

static void test_sim_grow_and_fail(void **state)
{
	struct cd_member m[8] = {LIVE(1, V), LIVE(2, NC), LIVE(3, NC), LIVE(4, NC), LIVE(5, NC)};
	unsigned n = 5, v, s, p;

	(void)state;
	/* 4 adds, 2 x (spare -> standby -> voter), 2 spares -> standby */
	assert_int_equal(sim_converge(m, &n, 1, 20, false), 10);
	count_roles(m, n, &v, &s, &p);
	assert_int_equal(v, 3);
	assert_int_equal(s, 2);
	/* voter 3 dies: standby 4 is promoted, then 3 made a standby */
	m[2].eligible = false;
	m[2].dead = true;
	assert_int_equal(sim_converge(m, &n, 1, 20, false), 2);
	assert_int_equal(m[3].role, RAFT_VOTER);
	assert_int_equal(m[2].role, RAFT_STANDBY);
	/* 2 more hosts: 5 voters */
	m[5] = (struct cd_member)LIVE(6, NC);
	m[6] = (struct cd_member)LIVE(7, NC);
	n = 7;
	assert_true(sim_converge(m, &n, 1, 20, false) > 0);
	count_roles(m, n, &v, &s, &p);
	assert_int_equal(v, 5);
	assert_int_equal(s, 2); /* the dead host 3 and host 7 */
	assert_int_equal(p, 0);
	/* host 6 leaves: removed, and a standby replaces it */
	m[5].in_state = false;
	assert_true(sim_converge(m, &n, 1, 20, false) > 0);
	assert_int_equal(n, 6);
	count_roles(m, n, &v, &s, &p);
	assert_int_equal(v, 3); /* 6 hosts: target 3 again */
}

/* The leader's own host dead in the state (a former leader declared it failed before this
 * one was elected, and its own judge has not yet committed it connected): rule 3 does not
 * count it live, so a standby is promoted to reach the target. Rule 5 must then compare
 * live voters with the target; when it counted all voters (4 > 3) it demoted the standby
 * just promoted (the leader may not be demoted) and the planner never settled, each round
 * a Raft configuration change. Same with 3 hosts (target 2). */
static void test_dead_leader_converges(void **state)
{
	struct cd_member m[5] = {DEAD(1, V), LIVE(2, V), LIVE(3, V), LIVE(4, S), LIVE(5, S)};
	struct cd_member m3[3] = {DEAD(1, V), LIVE(2, V), LIVE(3, V)};
	unsigned n = 5, n3 = 3;
	int r5, r3;

	(void)state;
	printf("# 5 hosts, leader 1 dead in the state:\n");
	r5 = sim_converge(m, &n, 1, 10, true);
	printf("# 3 hosts, leader 1 dead in the state:\n");
	r3 = sim_converge(m3, &n3, 1, 10, true);
	if (r5 < 0 || r3 < 0)
		fail_msg("dead leader: no fixed point after 10 changes (5 hosts: %s, 3 hosts: %s)",
			 r5 < 0 ? "flaps" : "ok", r3 < 0 ? "flaps" : "ok");
}

/* ---- the planner under raft_fixture ----------------------------------------------------- */

#define N_MAX	    7
#define CHANGE_MS   5000 /* virtual time a change may take */
#define MAX_CHANGES 20	 /* per convergence */

struct cluster {
	struct raft_fixture f;
	struct cd_fsm fsms[N_MAX];
	struct cd_raft_io ios[N_MAX];
	unsigned n;
	/* the test's "state", by id (index 0 unused) */
	bool in_state[N_MAX + 1], eligible[N_MAX + 1], dead[N_MAX + 1];
};

static struct cluster C;
static bool change_done;
static int change_status;

/* The term of entry idx in r's log, or 0 when r does not hold it (as test_cluster_raft). */
static raft_term term_at(const struct raft *r, raft_index idx)
{
	const struct raft_log *log = &r->log;
	size_t n = (log->back + log->size - log->front) % log->size;

	if (idx <= log->offset)
		return idx == log->snapshot.last_index ? log->snapshot.last_term : 0;
	if (idx > log->offset + n)
		return 0;
	return log->entries[(log->front + (idx - log->offset - 1)) % log->size].term;
}

/* No leader records for a follower of its term a match index past the follower's log
 * (the same check as test_cluster_raft). */
static void assert_match_indexes_sound(void)
{
	for (unsigned k = 0; k < C.n; k++) {
		struct raft *r = raft_fixture_get(&C.f, k);

		if (raft_state(r) != RAFT_LEADER)
			continue;
		for (unsigned m = 0; m < r->configuration.n; m++) {
			raft_id id = r->configuration.servers[m].id;
			struct raft *o;
			raft_index match = r->leader_state.progress[m].match_index;
			raft_term mine, theirs;

			if (id == r->id || match == 0 || id > C.n)
				continue;
			o = raft_fixture_get(&C.f, (unsigned)id - 1);
			if (o->current_term != r->current_term)
				continue;
			if (match <= o->log.snapshot.last_index)
				continue;
			if (match > raft_last_index(o))
				fail_msg(
				    "t=%llu leader %u: match index %llu of server %llu is past its "
				    "last index %llu",
				    (unsigned long long)C.f.time, k, (unsigned long long)match,
				    (unsigned long long)id, (unsigned long long)raft_last_index(o));
			mine = term_at(r, match);
			theirs = term_at(o, match);
			if (mine != 0 && theirs != 0 && mine != theirs)
				fail_msg(
				    "t=%llu leader %u: match index %llu of server %llu holds term "
				    "%llu, the leader term %llu",
				    (unsigned long long)C.f.time, k, (unsigned long long)match,
				    (unsigned long long)id, (unsigned long long)theirs,
				    (unsigned long long)mine);
		}
	}
}

static void step_checked(void)
{
	raft_fixture_step(&C.f);
	assert_match_indexes_sound();
}

/* The live leader of the highest term, or C.n. Not raft_fixture_leader_index(): the
 * fixture wants every live server to acknowledge the leader, and spares (or servers not
 * yet added) never hear from it. */
static unsigned leader(void)
{
	unsigned l = C.n;
	raft_term t = 0;

	for (unsigned i = 0; i < C.n; i++) {
		struct raft *r = raft_fixture_get(&C.f, i);

		if (raft_fixture_alive(&C.f, i) && raft_state(r) == RAFT_LEADER &&
		    r->current_term > t) {
			l = i;
			t = r->current_term;
		}
	}
	return l;
}

static bool step_until_leader(unsigned msecs)
{
	raft_time end = C.f.time + msecs;

	while (C.f.time < end) {
		if (leader() < C.n)
			return true;
		step_checked();
	}
	return leader() < C.n;
}

/* Inits, wraps and configures server i (already grown into the fixture). */
static void server_setup(unsigned i)
{
	struct raft *r = raft_fixture_get(&C.f, i);

	cd_raft_io_wrap(&C.ios[i], r->io);
	r->io = &C.ios[i].io;
	raft_set_install_snapshot_timeout(r, 2000);
}

static void grow(void)
{
	unsigned i = C.n;

	assert_true(i < N_MAX);
	cd_fsm_init(&C.fsms[i]);
	assert_int_equal(raft_fixture_grow(&C.f, &C.fsms[i].raft), 0);
	C.n++;
	server_setup(i);
}

static void cluster_start(unsigned n)
{
	struct raft_configuration conf;
	char addr[16];

	memset(&C, 0, sizeof(C));
	assert_int_equal(raft_fixture_initialize(&C.f), 0);
	for (unsigned i = 0; i < n; i++)
		grow();
	/* As the daemon's first host: server 1 alone, a voter; the others join empty. */
	raft_configuration_init(&conf);
	snprintf(addr, sizeof(addr), "%u", 1u);
	assert_int_equal(raft_configuration_add(&conf, 1, addr, RAFT_VOTER), 0);
	assert_int_equal(raft_bootstrap(raft_fixture_get(&C.f, 0), &conf), 0);
	raft_configuration_close(&conf);
	assert_int_equal(raft_fixture_start(&C.f), 0);
	for (unsigned id = 1; id <= n; id++)
		C.in_state[id] = C.eligible[id] = true;
}

static void cluster_stop(void)
{
	raft_fixture_close(&C.f);
	for (unsigned i = 0; i < C.n; i++)
		cd_fsm_close(&C.fsms[i]);
}

/* The role of id in r's configuration, or NC. */
static int conf_role(const struct raft *r, raft_id id)
{
	for (unsigned i = 0; i < r->configuration.n; i++)
		if (r->configuration.servers[i].id == id)
			return r->configuration.servers[i].role;
	return NC;
}

/* As cd_members_tick(): the state's hosts merged with the leader's configuration, by id. */
static void plan(unsigned l, struct cd_member_action *a)
{
	const struct raft *r = raft_fixture_get(&C.f, l);
	struct cd_member m[N_MAX];
	unsigned n = 0;

	for (unsigned id = 1; id <= N_MAX; id++) {
		int role = conf_role(r, id);

		if (!C.in_state[id] && role == NC)
			continue;
		m[n].id = id;
		m[n].role = role;
		m[n].in_state = C.in_state[id];
		m[n].eligible = C.in_state[id] && C.eligible[id];
		m[n].dead = C.in_state[id] && C.dead[id];
		n++;
	}
	cd_members_plan(m, n, r->id, a);
}

static void on_change(struct raft_change *req, int status)
{
	(void)req;
	change_done = true;
	change_status = status;
}

/* Carries out a on the leader l and steps until its callback. */
static void carry_out(unsigned l, const struct cd_member_action *a)
{
	struct raft *r = raft_fixture_get(&C.f, l);
	static struct raft_change req; /* borrowed until on_change */
	char addr[16];
	raft_time end;
	int rv = -1;

	change_done = false;
	change_status = -1;
	switch (a->kind) {
	case CD_MEMBER_ADD:
		snprintf(addr, sizeof(addr), "%llu", (unsigned long long)a->id);
		rv = raft_add(r, &req, a->id, addr, on_change);
		break;
	case CD_MEMBER_ASSIGN:
		rv = raft_assign(r, &req, a->id, a->role, on_change);
		break;
	case CD_MEMBER_REMOVE:
		rv = raft_remove(r, &req, a->id, on_change);
		break;
	default:
		fail();
	}
	if (rv != 0)
		fail_msg("%s %llu role %d: %s", kind_name(a->kind), (unsigned long long)a->id,
			 a->role, raft_strerror(rv));
	for (end = C.f.time + CHANGE_MS; !change_done && C.f.time < end;)
		step_checked();
	if (!change_done)
		fail_msg("%s %llu role %d: no callback after %u ms", kind_name(a->kind),
			 (unsigned long long)a->id, a->role, CHANGE_MS);
	if (change_status != 0)
		fail_msg("%s %llu role %d: %s", kind_name(a->kind), (unsigned long long)a->id,
			 a->role, raft_strerror(change_status));
}

/* Plans and carries out changes until the planner says NONE; records the actions in
 * log[0..*n) (when log is not NULL). Returns the leader's index. */
static unsigned converge(struct cd_member_action *log, unsigned *n)
{
	unsigned l = C.n;

	if (n)
		*n = 0;
	for (unsigned k = 0;; k++) {
		struct cd_member_action a;

		assert_true(k < MAX_CHANGES);
		assert_true(step_until_leader(10000));
		l = leader();
		plan(l, &a);
		if (a.kind == CD_MEMBER_NONE)
			return l;
		if (log)
			log[(*n)++] = a;
		carry_out(l, &a);
	}
}

static void count_conf(const struct raft *r, unsigned *v, unsigned *s, unsigned *p)
{
	*v = *s = *p = 0;
	for (unsigned i = 0; i < r->configuration.n; i++) {
		int role = r->configuration.servers[i].role;

		*v += role == RAFT_VOTER;
		*s += role == RAFT_STANDBY;
		*p += role == RAFT_SPARE;
	}
}

static bool applied_cb_ok;

static void apply_cb(struct raft_apply *req, int status, void *result)
{
	const struct cd_result *res = result;

	(void)req;
	applied_cb_ok =
	    status == 0 && res && res->status == 0 && res->n == 1 && res->cmds[0].code == 0;
}

/* Proposes a HostAdd on the leader l and steps until it is applied. */
static void propose_and_commit(unsigned l, uint64_t id)
{
	static struct raft_apply req;
	Keel__Cluster__Host h = KEEL__CLUSTER__HOST__INIT;
	Keel__Cluster__HostAdd ha = KEEL__CLUSTER__HOST_ADD__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT, *p = &c;
	struct kb_errmsg e = {{0}};
	char name[16], vmk0[32];
	raft_time end;

	snprintf(name, sizeof(name), "esx%llu", (unsigned long long)id);
	snprintf(vmk0, sizeof(vmk0), "198.18.0.%llu:7000", (unsigned long long)id);
	h.id = id;
	h.name = name;
	h.vmk0 = vmk0;
	h.state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
	h.role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
	ha.host = &h;
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_ADD;
	c.host_add = &ha;
	applied_cb_ok = false;
	assert_int_equal(cd_propose(raft_fixture_get(&C.f, l), &req, &p, 1, apply_cb, &e), 0);
	for (end = C.f.time + CHANGE_MS; !applied_cb_ok && C.f.time < end;)
		step_checked();
	assert_true(applied_cb_ok);
	assert_non_null(cd_state_host(cd_fsm_state(&C.fsms[l]), id));
}

static void assert_action(const struct cd_member_action *a, enum cd_member_kind kind, uint64_t id,
			  int role)
{
	if (a->kind != kind || a->id != id || a->role != role)
		fail_msg("got %s %llu role %d, want %s %llu role %d", kind_name(a->kind),
			 (unsigned long long)a->id, a->role, kind_name(kind),
			 (unsigned long long)id, role);
}

static void test_fixture_membership(void **state)
{
	struct cd_member_action log[MAX_CHANGES];
	unsigned n, l, v, s, p, victim;
	const struct raft *r;

	(void)state;
	cluster_start(5);

	/* Server 1 alone elects itself; the planner grows it to 3 voters and 2 standbys. */
	l = converge(log, &n);
	assert_int_equal(n, 10);
	for (unsigned k = 0; k < 4; k++)
		assert_action(&log[k], CD_MEMBER_ADD, 2 + k, RAFT_SPARE);
	assert_action(&log[4], CD_MEMBER_ASSIGN, 2, RAFT_STANDBY);
	assert_action(&log[5], CD_MEMBER_ASSIGN, 2, RAFT_VOTER);
	assert_action(&log[6], CD_MEMBER_ASSIGN, 3, RAFT_STANDBY);
	assert_action(&log[7], CD_MEMBER_ASSIGN, 3, RAFT_VOTER);
	assert_action(&log[8], CD_MEMBER_ASSIGN, 4, RAFT_STANDBY);
	assert_action(&log[9], CD_MEMBER_ASSIGN, 5, RAFT_STANDBY);
	r = raft_fixture_get(&C.f, l);
	assert_int_equal(r->id, 1);
	count_conf(r, &v, &s, &p);
	assert_int_equal(v, 3);
	assert_int_equal(s, 2);
	assert_int_equal(p, 0);
	assert_int_equal(conf_role(r, 1), RAFT_VOTER);
	assert_int_equal(conf_role(r, 2), RAFT_VOTER);
	assert_int_equal(conf_role(r, 3), RAFT_VOTER);
	/* With standbys (and no spares) every live server hears the leader. */
	assert_true(raft_fixture_step_until_has_leader(&C.f, 5000));
	assert_int_equal(raft_fixture_leader_index(&C.f), l);

	/* A voter other than the leader dies: a standby is promoted, then it becomes a standby
	 * (the leader keeps sending it the log). */
	victim = l == 2 ? 1 : 2; /* index of voter 3, or 2 */
	raft_fixture_kill(&C.f, victim);
	C.eligible[victim + 1] = false;
	C.dead[victim + 1] = true;
	l = converge(log, &n);
	assert_int_equal(n, 2);
	assert_action(&log[0], CD_MEMBER_ASSIGN, 4, RAFT_VOTER);
	assert_action(&log[1], CD_MEMBER_ASSIGN, victim + 1, RAFT_STANDBY);
	assert_true(raft_fixture_alive(&C.f, l));
	r = raft_fixture_get(&C.f, l);
	count_conf(r, &v, &s, &p);
	assert_int_equal(v, 3);
	assert_int_equal(s, 2);
	assert_int_equal(p, 0);
	for (unsigned i = 0; i < r->configuration.n; i++)
		if (r->configuration.servers[i].role == RAFT_VOTER)
			assert_true(raft_fixture_alive(&C.f, r->configuration.servers[i].id - 1));
	assert_true(raft_fixture_step_until_has_leader(&C.f, 5000));
	propose_and_commit(l, 1);

	/* Two more hosts: 7 in the state (the dead one too), so 5 voters. */
	for (unsigned k = 0; k < 2; k++) {
		unsigned i = C.n;

		grow();
		/* The killed server stays cut off from the new ones too. */
		raft_fixture_disconnect(&C.f, i, victim);
		assert_int_equal(raft_start(raft_fixture_get(&C.f, i)), 0);
		C.in_state[i + 1] = C.eligible[i + 1] = true;
	}
	l = converge(log, &n);
	assert_int_equal(n, 6);
	assert_action(&log[0], CD_MEMBER_ADD, 6, RAFT_SPARE);
	assert_action(&log[1], CD_MEMBER_ADD, 7, RAFT_SPARE);
	assert_action(&log[2], CD_MEMBER_ASSIGN, 5, RAFT_VOTER);
	assert_action(&log[3], CD_MEMBER_ASSIGN, 6, RAFT_STANDBY);
	assert_action(&log[4], CD_MEMBER_ASSIGN, 6, RAFT_VOTER);
	assert_action(&log[5], CD_MEMBER_ASSIGN, 7, RAFT_STANDBY);
	r = raft_fixture_get(&C.f, l);
	count_conf(r, &v, &s, &p);
	assert_int_equal(v, 5);
	assert_int_equal(s, 2);
	assert_int_equal(p, 0);
	assert_int_equal(conf_role(r, victim + 1), RAFT_STANDBY);
	propose_and_commit(l, 2);
	printf("# test_fixture_membership: settled at t=%llu ms\n", (unsigned long long)C.f.time);
	cluster_stop();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_plan_table),
	    cmocka_unit_test(test_plan_none_is_zeroed),
	    cmocka_unit_test(test_sim_grow_and_fail),
	    cmocka_unit_test(test_dead_leader_converges),
	    cmocka_unit_test(test_fixture_membership),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
