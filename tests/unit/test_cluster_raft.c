/*
 * Deterministic tests of clusterd's FSM under libraft's raft_fixture (in-memory network and
 * disk, virtual time): 3 and 5 servers elect a leader and apply batches; the leader is
 * partitioned or killed and a new one carries on; a lagging node catches up from a
 * snapshot; and a seeded random schedule of applies, partitions, heals, kills and revives
 * ends with every server's state byte-identical and no committed command lost. Every
 * server's raft_io goes through cd_raft_io_wrap(), as in the daemon, and after every step
 * of the fixture no leader may record a match index past a follower's log (libraft 0.15
 * and stale log tails, docs/clusterd.md).
 * The seed is printed; KEEL_SEED=N runs another (the default, 1, keeps the suite
 * reproducible). Seeds 1795254710 and 237 run as regression tests of their own.
 *
 * Known failure: KEEL_SEED=286 crashes inside libraft 0.15 (a segmentation fault in
 * raft_fixture_step() while a server handles a message, with or without the wrapper) on
 * the first step after a killed server holding a snapshot and uncommitted entries of an
 * old term is revived. It is an upstream crash under faults, not a misuse of the fixture;
 * seeds 1..300 other than 286 pass.
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

#include "clusterd/codec.h"
#include "clusterd/fsm.h"
#include "clusterd/snapshot.h"

#define MAX_VMS 4096

struct cluster {
	struct raft_fixture f;
	struct cd_fsm fsms[5];
	struct cd_raft_io ios[5];
	unsigned n;
	unsigned restores[5];
};

static struct cluster C;
static unsigned next_vm;	/* VMs proposed so far */
static bool committed[MAX_VMS]; /* VM i's registration reported applied */
static unsigned n_ok, n_failed; /* apply callbacks by status */

struct req {
	struct raft_apply apply;
	unsigned first_vm, n_vms; /* registrations in this batch */
};

static void uuid_of(unsigned i, char out[CD_UUID_LEN + 1])
{
	snprintf(out, CD_UUID_LEN + 1, "%08x-0000-4000-8000-%012x", i, i);
}

static int counting_restore(struct raft_fsm *fsm, struct raft_buffer *buf)
{
	struct cd_fsm *f = fsm->data;

	C.restores[f - C.fsms]++;
	return cd_fsm_restore(fsm, buf);
}

static void cluster_start(unsigned n, unsigned threshold)
{
	struct raft_configuration conf;

	memset(&C, 0, sizeof(C));
	memset(committed, 0, sizeof(committed));
	next_vm = n_ok = n_failed = 0;
	assert_int_equal(raft_fixture_initialize(&C.f), 0);
	C.n = n;
	for (unsigned i = 0; i < n; i++) {
		cd_fsm_init(&C.fsms[i]);
		C.fsms[i].raft.restore = counting_restore;
		assert_int_equal(raft_fixture_grow(&C.f, &C.fsms[i].raft), 0);
	}
	/* As the daemon does: every server's raft_io goes through the wrapper. */
	for (unsigned i = 0; i < n; i++) {
		struct raft *r = raft_fixture_get(&C.f, i);

		cd_raft_io_wrap(&C.ios[i], r->io);
		r->io = &C.ios[i].io;
	}
	assert_int_equal(raft_fixture_configuration(&C.f, n, &conf), 0);
	assert_int_equal(raft_fixture_bootstrap(&C.f, &conf), 0);
	raft_configuration_close(&conf);
	for (unsigned i = 0; i < n; i++) {
		raft_set_snapshot_threshold(raft_fixture_get(&C.f, i), threshold);
		raft_set_snapshot_trailing(raft_fixture_get(&C.f, i), threshold / 2);
		/* A lost InstallSnapshot is resent after 2 s, not libraft's 30 s. */
		raft_set_install_snapshot_timeout(raft_fixture_get(&C.f, i), 2000);
	}
	assert_int_equal(raft_fixture_start(&C.f), 0);
}

static void cluster_stop(void)
{
	raft_fixture_close(&C.f); /* fires pending apply callbacks */
	for (unsigned i = 0; i < C.n; i++)
		cd_fsm_close(&C.fsms[i]);
}

static void apply_cb(struct raft_apply *a, int status, void *result)
{
	struct req *r = (struct req *)a;
	const struct cd_result *res = result;

	if (status == 0) {
		n_ok++;
		assert_non_null(res);
		assert_int_equal(res->status, 0);
		/* Registrations come first in a batch and never collide. */
		for (unsigned i = 0; i < r->n_vms; i++) {
			assert_int_equal(res->cmds[i].code, 0);
			committed[r->first_vm + i] = true;
		}
	} else {
		n_failed++;
	}
	free(r);
}

/* Builds a batch: nreg VM registrations (owner host 1), then an owner change of an
 * earlier VM to host `to` at its current epoch + 1 as the proposer sees it. */
static int propose_on(unsigned i, unsigned nreg, unsigned to)
{
	struct raft *r = raft_fixture_get(&C.f, i);
	const struct cd_state *s = cd_fsm_state(&C.fsms[i]);
	Keel__Cluster__Command cmds[5], *pcmds[5];
	Keel__Cluster__VmRegister regs[4];
	Keel__Cluster__Vm vms[4];
	Keel__Cluster__HaSettings ha = KEEL__CLUSTER__HA_SETTINGS__INIT;
	Keel__Cluster__VmChangeOwner co = KEEL__CLUSTER__VM_CHANGE_OWNER__INIT;
	char uuids[5][CD_UUID_LEN + 1], paths[4][64];
	struct kb_errmsg e = {{0}};
	struct req *q;
	unsigned n = 0;
	int rv;

	if (next_vm + nreg > MAX_VMS)
		nreg = 0;
	ha.priority = KEEL__CLUSTER__RESTART_PRIORITY__RESTART_LOW;
	for (unsigned k = 0; k < nreg; k++) {
		uuid_of(next_vm + k, uuids[k]);
		snprintf(paths[k], sizeof(paths[k]), "/ds/vm%u/vm%u.vmx", next_vm + k, next_vm + k);
		keel__cluster__vm__init(&vms[k]);
		vms[k].uuid = uuids[k];
		vms[k].name = "vm";
		vms[k].vmx_path = paths[k];
		vms[k].owner = 1;
		vms[k].epoch = 1;
		vms[k].desired_power = KEEL__CLUSTER__POWER_STATE__POWER_ON;
		vms[k].ha = &ha;
		keel__cluster__vm_register__init(&regs[k]);
		regs[k].vm = &vms[k];
		keel__cluster__command__init(&cmds[n]);
		cmds[n].cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_REGISTER;
		cmds[n].vm_register = &regs[k];
		n++;
	}
	if (cd_state_n_vms(s) > 0 && to != 0) {
		const struct cd_vm *vm = cd_state_vm_at(s, to % cd_state_n_vms(s));

		strcpy(uuids[4], vm->uuid);
		co.uuid = uuids[4];
		co.new_owner = to;
		co.new_epoch = vm->epoch + 1;
		keel__cluster__command__init(&cmds[n]);
		cmds[n].cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_CHANGE_OWNER;
		cmds[n].vm_change_owner = &co;
		n++;
	}
	for (unsigned k = 0; k < n; k++)
		pcmds[k] = &cmds[k];
	q = calloc(1, sizeof(*q));
	assert_non_null(q);
	q->first_vm = next_vm;
	q->n_vms = nreg;
	rv = cd_propose(r, &q->apply, pcmds, n, apply_cb, &e);
	if (rv != 0) {
		free(q);
		return rv;
	}
	next_vm += nreg;
	return 0;
}

/* The term of entry idx in r's log, or 0 when r does not hold it (past its last index, or
 * compacted into a snapshot and not the snapshot's last entry). */
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

/* Replication safety as a leader sees it: the match index a leader records for a follower
 * of its own term never passes the follower's log. The follower holds that entry (or has
 * it in its snapshot, which holds only committed entries), and where both still hold it,
 * with the leader's term: by Log Matching, the logs then agree up to there. A leader that
 * records more counts the follower towards quorums for entries it does not have (the
 * libraft 0.15 stale-tail bug that cd_raft_io_wrap() works around). Followers of another
 * term are skipped: a deposed leader's match indexes legitimately go stale. */
static void assert_match_indexes_sound(void)
{
	for (unsigned k = 0; k < C.n; k++) {
		struct raft *r = raft_fixture_get(&C.f, k);

		if (raft_state(r) != RAFT_LEADER)
			continue;
		for (unsigned m = 0; m < r->configuration.n; m++) {
			raft_id id = r->configuration.servers[m].id;
			struct raft *o = raft_fixture_get(&C.f, (unsigned)id - 1);
			raft_index match = r->leader_state.progress[m].match_index;
			raft_term mine, theirs;

			if (id == r->id || match == 0 || o->current_term != r->current_term)
				continue;
			if (match <= o->log.snapshot.last_index)
				continue;
			if (match > raft_last_index(o))
				fail_msg(
				    "t=%llu leader %u term %llu: match index %llu of server %llu "
				    "is past its last index %llu",
				    (unsigned long long)C.f.time, k,
				    (unsigned long long)r->current_term, (unsigned long long)match,
				    (unsigned long long)id, (unsigned long long)raft_last_index(o));
			mine = term_at(r, match);
			theirs = term_at(o, match);
			if (mine != 0 && theirs != 0 && mine != theirs)
				fail_msg(
				    "t=%llu leader %u term %llu: match index %llu of server %llu "
				    "holds term %llu there, the leader term %llu",
				    (unsigned long long)C.f.time, k,
				    (unsigned long long)r->current_term, (unsigned long long)match,
				    (unsigned long long)id, (unsigned long long)theirs,
				    (unsigned long long)mine);
		}
	}
}

/* raft_fixture_step_until_elapsed(), checking assert_match_indexes_sound() after every
 * step of the fixture. */
static void step_checked(unsigned msecs)
{
	raft_time end = C.f.time + msecs;

	while (C.f.time < end) {
		raft_fixture_step(&C.f);
		assert_match_indexes_sound();
	}
}

static unsigned leader(void)
{
	return raft_fixture_leader_index(&C.f);
}

/* The first batch: three hosts, so VMs have owners to name. */
static void add_hosts(void)
{
	Keel__Cluster__Command cmds[3], *p[3];
	Keel__Cluster__HostAdd adds[3];
	Keel__Cluster__Host hosts[3];
	char names[3][8], addrs[3][32];
	struct kb_errmsg e = {{0}};
	struct req *q = calloc(1, sizeof(*q));
	unsigned l = leader();

	for (unsigned i = 0; i < 3; i++) {
		snprintf(names[i], sizeof(names[i]), "esx%u", i + 1);
		snprintf(addrs[i], sizeof(addrs[i]), "198.18.0.%u:7000", i + 1);
		keel__cluster__host__init(&hosts[i]);
		hosts[i].id = i + 1;
		hosts[i].name = names[i];
		hosts[i].vmk0 = addrs[i];
		hosts[i].state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
		hosts[i].role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
		keel__cluster__host_add__init(&adds[i]);
		adds[i].host = &hosts[i];
		keel__cluster__command__init(&cmds[i]);
		cmds[i].cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_ADD;
		cmds[i].host_add = &adds[i];
		p[i] = &cmds[i];
	}
	assert_true(l < C.n);
	assert_int_equal(cd_propose(raft_fixture_get(&C.f, l), &q->apply, p, 3, apply_cb, &e), 0);
	assert_true(raft_fixture_step_until_applied(
	    &C.f, l, raft_last_index(raft_fixture_get(&C.f, l)), 2000));
}

static void heal_all(void)
{
	for (unsigned i = 0; i < C.n; i++) {
		if (!raft_fixture_alive(&C.f, i))
			raft_fixture_revive(&C.f, i);
		for (unsigned j = 0; j < C.n; j++) {
			if (i == j)
				continue;
			raft_fixture_reconnect(&C.f, i, j);
			raft_fixture_desaturate(&C.f, i, j);
		}
	}
}

/* Heals everything, commits one more batch, waits until every server applied all of the
 * leader's log, and checks that all FSMs hold byte-identical state with every committed
 * VM in it. */
static void converge(void)
{
	struct raft_buffer first, b;
	struct kb_errmsg e = {{0}};
	raft_index last;
	unsigned l, ok;

	heal_all();
	for (int tries = 0;; tries++) {
		assert_true(tries < 20);
		assert_true(raft_fixture_step_until_has_leader(&C.f, 10000));
		l = leader();
		ok = n_ok;
		if (propose_on(l, 1, 0) != 0)
			continue;
		step_checked(500);
		if (n_ok > ok && leader() < C.n)
			break;
	}
	/* Step until a leader has applied its whole log and every server as much. */
	for (int tries = 0;; tries++) {
		bool done;

		if (tries == 39) {
			for (unsigned k = 0; k < C.n; k++) {
				struct raft *r = raft_fixture_get(&C.f, k);

				fprintf(stderr, "# server %u: state %d applied %llu last %llu\n", k,
					raft_state(r), (unsigned long long)raft_last_applied(r),
					(unsigned long long)raft_last_index(r));
			}
		}
		assert_true(tries < 40);
		step_checked(500);
		l = leader();
		if (l >= C.n)
			continue;
		last = raft_last_index(raft_fixture_get(&C.f, l));
		done = raft_last_applied(raft_fixture_get(&C.f, l)) == last;
		for (unsigned i = 0; i < C.n && done; i++)
			done = raft_last_applied(raft_fixture_get(&C.f, i)) == last;
		if (done)
			break;
	}

	assert_int_equal(cd_snapshot_encode(&C.fsms[0].state, &first, &e), 0);
	for (unsigned i = 1; i < C.n; i++) {
		assert_int_equal(cd_snapshot_encode(&C.fsms[i].state, &b, &e), 0);
		assert_int_equal(b.len, first.len);
		assert_memory_equal(b.base, first.base, b.len);
		raft_free(b.base);
	}
	raft_free(first.base);
	for (unsigned v = 0; v < next_vm; v++) {
		char u[CD_UUID_LEN + 1];

		uuid_of(v, u);
		if (committed[v])
			assert_non_null(cd_state_vm(cd_fsm_state(&C.fsms[0]), u));
	}
}

static void apply_batches(unsigned count)
{
	for (unsigned k = 0; k < count; k++) {
		unsigned l = leader();

		assert_true(l < C.n);
		assert_int_equal(propose_on(l, 4, 1 + k % 3), 0);
		step_checked(20);
	}
}

static void elect_and_apply(unsigned n)
{
	cluster_start(n, 1024);
	assert_true(raft_fixture_step_until_has_leader(&C.f, 5000));
	add_hosts();
	apply_batches(30);
	converge();
	assert_int_equal(cd_state_n_vms(cd_fsm_state(&C.fsms[n - 1])), next_vm);
	assert_true(cd_fsm_state(&C.fsms[0])->applied >= 3 + next_vm);
	cluster_stop();
}

static void test_three_servers(void **state)
{
	elect_and_apply(3);
}

static void test_five_servers(void **state)
{
	elect_and_apply(5);
}

static bool other_leader(struct raft_fixture *f, void *arg)
{
	unsigned old = *(unsigned *)arg, l = raft_fixture_leader_index(f);

	return l < f->n && l != old;
}

static void partition_leader(unsigned n)
{
	unsigned old;
	unsigned vms_before;

	cluster_start(n, 1024);
	assert_true(raft_fixture_step_until_has_leader(&C.f, 5000));
	add_hosts();
	apply_batches(5);
	old = leader();
	for (unsigned j = 0; j < n; j++) {
		if (j != old) {
			raft_fixture_saturate(&C.f, old, j);
			raft_fixture_saturate(&C.f, j, old);
		}
	}
	/* The isolated leader still takes a proposal; it can never commit. */
	vms_before = next_vm;
	assert_int_equal(propose_on(old, 2, 0), 0);
	assert_true(raft_fixture_step_until_has_no_leader(&C.f, 10000));
	assert_true(raft_fixture_step_until(&C.f, other_leader, &old, 10000));
	apply_batches(10);
	converge();
	for (unsigned v = vms_before; v < vms_before + 2; v++) {
		char u[CD_UUID_LEN + 1];

		uuid_of(v, u);
		assert_false(committed[v]);
		assert_null(cd_state_vm(cd_fsm_state(&C.fsms[old]), u));
	}
	cluster_stop();
}

static void test_partition_leader_3(void **state)
{
	partition_leader(3);
}

static void test_partition_leader_5(void **state)
{
	partition_leader(5);
}

static void test_depose_and_saturate(void **state)
{
	unsigned old;

	cluster_start(3, 1024);
	assert_true(raft_fixture_step_until_has_leader(&C.f, 5000));
	add_hosts();
	apply_batches(5);
	raft_fixture_depose(&C.f);
	assert_true(raft_fixture_step_until_has_leader(&C.f, 5000));
	apply_batches(5);
	old = leader();
	for (unsigned j = 0; j < 3; j++)
		if (j != old)
			raft_fixture_saturate(&C.f, old, j);
	assert_true(raft_fixture_step_until(&C.f, other_leader, &old, 10000));
	apply_batches(5);
	converge();
	cluster_stop();
}

static void test_kill_and_revive(void **state)
{
	unsigned old;

	cluster_start(5, 1024);
	assert_true(raft_fixture_step_until_has_leader(&C.f, 5000));
	add_hosts();
	apply_batches(5);
	old = leader();
	raft_fixture_kill(&C.f, old);
	assert_true(raft_fixture_step_until_has_no_leader(&C.f, 5000));
	assert_true(raft_fixture_step_until_has_leader(&C.f, 10000));
	apply_batches(5);
	/* A second kill: 3 of 5 remain, still a majority. */
	raft_fixture_kill(&C.f, leader());
	assert_true(raft_fixture_step_until_has_no_leader(&C.f, 5000));
	assert_true(raft_fixture_step_until_has_leader(&C.f, 10000));
	apply_batches(5);
	converge();
	cluster_stop();
}

static void test_snapshot_to_lagging_node(void **state)
{
	unsigned lag;

	cluster_start(3, 8);
	assert_true(raft_fixture_step_until_has_leader(&C.f, 5000));
	add_hosts();
	lag = (leader() + 1) % 3;
	for (unsigned j = 0; j < 3; j++) {
		if (j != lag) {
			raft_fixture_saturate(&C.f, lag, j);
			raft_fixture_saturate(&C.f, j, lag);
		}
	}
	apply_batches(40);
	step_checked(1000); /* snapshot writes complete */
	assert_true(raft_fixture_get(&C.f, leader())->log.snapshot.last_index > 0);
	converge();
	assert_true(C.restores[lag] > 0);
	assert_int_equal(cd_state_n_vms(cd_fsm_state(&C.fsms[lag])), next_vm);
	cluster_stop();
}

static void test_propose_on_follower(void **state)
{
	cluster_start(3, 1024);
	assert_true(raft_fixture_step_until_has_leader(&C.f, 5000));
	/* The buffer is freed when raft_apply refuses (the leak check of ASan sees it). */
	assert_int_equal(propose_on((leader() + 1) % 3, 1, 0), RAFT_NOTLEADER);
	cluster_stop();
}

/* xorshift32: the schedule's own generator, so a seed replays the same schedule. */
static uint32_t rng;

static uint32_t rnd(uint32_t n)
{
	rng ^= rng << 13;
	rng ^= rng >> 17;
	rng ^= rng << 5;
	return rng % n;
}

static void random_schedule(unsigned n, uint32_t seed, unsigned steps)
{
	unsigned alive;

	rng = seed ? seed : 1;
	cluster_start(n, 16 + rnd(48));
	assert_true(raft_fixture_step_until_has_leader(&C.f, 5000));
	add_hosts();
	for (unsigned s = 0; s < steps; s++) {
		unsigned a = rnd(100), i = rnd(n), j = rnd(n), l = leader();

		if (a < 50) {
			if (l < n)
				propose_on(l, 1 + rnd(4), rnd(4));
		} else if (a < 60) {
			if (i != j) {
				raft_fixture_disconnect(&C.f, i, j);
				raft_fixture_disconnect(&C.f, j, i);
			}
		} else if (a < 65) {
			if (i != j)
				raft_fixture_saturate(&C.f, i, j);
		} else if (a < 75) {
			heal_all();
		} else if (a < 83) {
			alive = 0;
			for (unsigned k = 0; k < n; k++)
				alive += raft_fixture_alive(&C.f, k);
			if (raft_fixture_alive(&C.f, i) && alive > n / 2 + 1)
				raft_fixture_kill(&C.f, i);
		} else if (a < 90) {
			if (!raft_fixture_alive(&C.f, i))
				raft_fixture_revive(&C.f, i);
		}
		step_checked(10 + rnd(200));
	}
	converge();
	cluster_stop();
}

static uint32_t seed_from_env(void)
{
	const char *s = getenv("KEEL_SEED");

	if (s != NULL && *s != '\0')
		return (uint32_t)strtoul(s, NULL, 0);
	return 1;
}

/* The 3-server schedule runs with seed, the 5-server one with seed + 1. */
static void random_schedules(uint32_t seed)
{
	random_schedule(3, seed, 150);
	random_schedule(5, seed + 1, 150);
}

static void test_random_schedule(void **state)
{
	uint32_t seed = seed_from_env();

	printf("# test_random_schedule: KEEL_SEED=%u\n", seed);
	fflush(stdout);
	random_schedules(seed);
}

/* 1795254710: without cd_raft_io_wrap(), a leader records a match over a follower's stale
 * log tail (assert_match_indexes_sound() fails). 237: without cluster_start()'s
 * 2 s install-snapshot timeout, the leader waits libraft's default 30 s before it sends a
 * lagging follower another snapshot, longer than converge() allows. */
static void test_seed_1795254710_stale_tail(void **state)
{
	random_schedules(1795254710u);
}

static void test_seed_237_snapshot_retry(void **state)
{
	random_schedules(237);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_three_servers),
	    cmocka_unit_test(test_five_servers),
	    cmocka_unit_test(test_partition_leader_3),
	    cmocka_unit_test(test_partition_leader_5),
	    cmocka_unit_test(test_depose_and_saturate),
	    cmocka_unit_test(test_kill_and_revive),
	    cmocka_unit_test(test_snapshot_to_lagging_node),
	    cmocka_unit_test(test_propose_on_follower),
	    cmocka_unit_test(test_random_schedule),
	    cmocka_unit_test(test_seed_1795254710_stale_tail),
	    cmocka_unit_test(test_seed_237_snapshot_retry),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
