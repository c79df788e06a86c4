/*
 * Fuzz target: clusterd's decoders of log entries and snapshots (clusterd/codec.c,
 * clusterd/snapshot.c), which every host must judge alike.
 *   input[0] even: the rest is a command batch; decoded, then applied to a live FSM.
 *   input[0] odd:  the rest is XORed into the payload of a valid snapshot of a small
 *                  cluster, whose checksums are then fixed up so the mutation reaches the
 *                  protobuf decoder and the consistency checks (input[0] == 3: the rest is
 *                  taken as a snapshot as it is); decoded; a snapshot that decodes must
 *                  encode and decode again to the same bytes.
 * Valid inputs are built here, so random seeds suffice.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <raft.h>

#include "clusterd/codec.h"
#include "clusterd/fsm.h"
#include "clusterd/snapshot.h"
#include "clusterd/state.h"
#include "lib/crc.h"

static void put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct cd_fsm live, seed;
static struct raft_buffer snap;
static bool ready;

static void apply_one(struct cd_fsm *f, Keel__Cluster__Command *c)
{
	struct raft_buffer b;
	void *result = NULL;
	struct kb_errmsg e = {{0}};

	if (cd_batch_encode(&c, 1, &b, &e) != 0)
		abort();
	cd_fsm_apply(&f->raft, &b, &result);
	raft_free(b.base);
}

static void setup(void)
{
	Keel__Cluster__Command cmd = KEEL__CLUSTER__COMMAND__INIT;
	Keel__Cluster__SetConfig sc = KEEL__CLUSTER__SET_CONFIG__INIT;
	Keel__Cluster__ClusterConfig cfg = KEEL__CLUSTER__CLUSTER_CONFIG__INIT;
	Keel__Cluster__HostAdd ha = KEEL__CLUSTER__HOST_ADD__INIT;
	Keel__Cluster__Host host = KEEL__CLUSTER__HOST__INIT;
	Keel__Cluster__Capacity cap = KEEL__CLUSTER__CAPACITY__INIT;
	Keel__Cluster__VmRegister vr = KEEL__CLUSTER__VM_REGISTER__INIT;
	Keel__Cluster__Vm vm = KEEL__CLUSTER__VM__INIT;
	Keel__Cluster__HaSettings has = KEEL__CLUSTER__HA_SETTINGS__INIT;
	struct raft_buffer *bufs = NULL;
	unsigned n = 0;

	if (cd_fsm_init(&live) != 0 || cd_fsm_init(&seed) != 0)
		abort();
	cfg.name = "lab";
	cfg.cluster_id = "7c9e6679-7425-40de-944b-e07fc1f90ae7";
	cfg.format_version = 1;
	cfg.failure_timeout_ms = 1000;
	cfg.isolation_response = KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_POWER_OFF;
	sc.config = &cfg;
	cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_SET_CONFIG;
	cmd.set_config = &sc;
	apply_one(&seed, &cmd);
	cap.cpu_mhz = 2000;
	cap.mem_mib = 4096;
	host.capacity = &cap;
	host.state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
	host.role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
	ha.host = &host;
	cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_ADD;
	cmd.host_add = &ha;
	for (uint64_t id = 1; id <= 3; id++) {
		char name[16], addr[32];
		snprintf(name, sizeof(name), "host%llu", (unsigned long long)id);
		snprintf(addr, sizeof(addr), "198.18.0.%llu:7000", (unsigned long long)id);
		host.id = id;
		host.name = name;
		host.vmk0 = addr;
		apply_one(&seed, &cmd);
	}
	vm.uuid = "0b8f3c1e-6f0a-4a57-9b0e-2f7c35d1a9e4";
	vm.name = "web1";
	vm.vmx_path = "/shared/web1/web1.vmx";
	vm.owner = 2;
	vm.epoch = 1;
	vm.desired_power = KEEL__CLUSTER__POWER_STATE__POWER_ON;
	vm.ha = &has;
	vr.vm = &vm;
	cmd.cmd_case = KEEL__CLUSTER__COMMAND__CMD_VM_REGISTER;
	cmd.vm_register = &vr;
	apply_one(&seed, &cmd);
	if (cd_fsm_snapshot(&seed.raft, &bufs, &n) != 0 || n != 1)
		abort();
	snap = bufs[0];
	raft_free(bufs);
	ready = true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kb_errmsg e = {{0}};

	if (!ready)
		setup();
	if (size < 1)
		return 0;
	if ((data[0] & 1) == 0) {
		Keel__Cluster__CommandBatch *b = NULL;
		if (cd_batch_decode(data + 1, size - 1, &b, &e) == 0) {
			cd_batch_free(b);
			struct raft_buffer buf = {.base = raft_malloc(size - 1 ? size - 1 : 1),
						  .len = size - 1};
			void *result = NULL;
			memcpy(buf.base, data + 1, size - 1);
			cd_fsm_apply(&live.raft, &buf, &result);
			raft_free(buf.base);
		} else if (e.msg[0] == '\0') {
			abort(); /* a refusal always says why */
		}
		return 0;
	}
	uint8_t *s;
	size_t n;
	if (data[0] == 3) {
		n = size - 1;
		s = malloc(n ? n : 1);
		memcpy(s, data + 1, n);
	} else {
		n = snap.len;
		s = malloc(n);
		memcpy(s, snap.base, n);
		size_t body = n - CD_SNAPSHOT_HEADER_SIZE;
		size_t at = size > 2 ? ((size_t)data[1] << 8 | data[2]) % body : 0;
		for (size_t i = 3; i < size && at < body; i++, at++)
			s[CD_SNAPSHOT_HEADER_SIZE + at] ^= data[i];
		put32(s + 16, kb_crc32c(0, s + CD_SNAPSHOT_HEADER_SIZE, body));
		put32(s + 20, kb_crc32c(0, s, 20));
	}
	struct cd_state st;
	cd_state_init(&st);
	if (cd_snapshot_decode(s, n, &st, &e) == 0) {
		struct raft_buffer a, b;
		struct cd_state st2;
		cd_state_init(&st2);
		if (cd_snapshot_encode(&st, &a, &e) != 0 || cd_snapshot_decode(a.base, a.len, &st2, &e) != 0 ||
		    cd_snapshot_encode(&st2, &b, &e) != 0 || a.len != b.len ||
		    memcmp(a.base, b.base, a.len) != 0)
			abort();
		raft_free(a.base);
		raft_free(b.base);
		cd_state_close(&st2);
	} else if (e.msg[0] == '\0') {
		abort();
	}
	cd_state_close(&st);
	free(s);
	return 0;
}
