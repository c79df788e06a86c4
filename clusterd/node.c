/*
 * clusterd's Raft node: its identity, its data directory, the libraft 0.15 life cycle
 * (DEPENDENCIES.md) and the first cluster operation, create.
 *
 * Happy path: the node id comes from DIR/clusterd.id (made once, random, non-zero); vmk0's
 * address comes from the host's network configuration (the adapter tagged Management) and
 * is retried until vmkernel has made the adapter, so clusterd may start before it; a data
 * directory bootstrapped earlier (DIR/clusterd.bootstrapped) starts Raft at once, and
 * libraft recovers its log after a crash. A timer polls raft_state()/raft_leader(), logs
 * transitions and, on a new leadership, issues a barrier: the leader acts on the FSM only
 * after it.
 *
 * Failure modes: no vmk0 yet (retried, status says so); create on a bootstrapped node
 * (KB_ESTATE); create that does not lead within CREATE_TIMEOUT_MS (KB_ETIMEOUT); a refused
 * command (its reason goes back to the client). A crash between raft_bootstrap and the
 * marker file is recovered by the next create: RAFT_CANTBOOTSTRAP means "bootstrapped".
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "clusterd/ca.h"
#include "clusterd/codec.h"
#include "clusterd/daemon.h"
#include "kernel/net/stack_socket.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/heap.h"
#include "lib/nodeid.h"
#include "lib/time.h"

#define FIND_INTERVAL_MS  250
#define POLL_INTERVAL_MS  50
#define CREATE_TIMEOUT_MS 10000
#define BOOTSTRAP_MARKER  "clusterd.bootstrapped"

static const char *raft_state_str(int s)
{
	switch (s) {
	case RAFT_FOLLOWER:
		return "follower";
	case RAFT_CANDIDATE:
		return "candidate";
	case RAFT_LEADER:
		return "leader";
	default:
		return "unavailable";
	}
}

const char *cd_node_state_name(const struct cd_daemon *d)
{
	switch (d->phase) {
	case CD_PHASE_FIND_VMK0:
		return "waiting for vmk0";
	case CD_PHASE_UNBOOTSTRAPPED:
		return "not bootstrapped";
	case CD_PHASE_CLOSING:
		return "closing";
	default:
		return raft_state_str(raft_state((struct raft *)&d->raft));
	}
}

int cd_node_role_of(struct cd_daemon *d, uint64_t id)
{
	if (d->phase != CD_PHASE_RUNNING)
		return 0;
	for (unsigned i = 0; i < d->raft.configuration.n; i++) {
		const struct raft_server *s = &d->raft.configuration.servers[i];

		if (s->id != id)
			continue;
		switch (s->role) {
		case RAFT_VOTER:
			return KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
		case RAFT_STANDBY:
			return KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_STANDBY;
		default:
			return KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_SPARE;
		}
	}
	return 0;
}

/* ---- identity ------------------------------------------------------------------------- */

/* Reads DIR/clusterd.id ("<decimal>\n"), or makes it once with a random non-zero id. */
static int node_id(struct cd_daemon *d, struct kb_errmsg *e)
{
	bool created;
	int rv = kb_node_id_get(d->state_dir, &d->id, &created, e);

	if (rv == 0 && created)
		kb_log(d->log, KB_LOG_INFO, "new node id %" PRIu64 " in %s/%s", d->id,
		       d->state_dir, KB_NODE_ID_FILE);
	return rv;
}

static bool bootstrapped(const struct cd_daemon *d)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/%s", d->state_dir, BOOTSTRAP_MARKER);
	return access(path, F_OK) == 0;
}

static int mark_bootstrapped(struct cd_daemon *d, struct kb_errmsg *e)
{
	char path[PATH_MAX + 32];

	snprintf(path, sizeof(path), "%s/%s", d->state_dir, BOOTSTRAP_MARKER);
	return kb_file_write_atomic(path, "1\n", 2, 0600, e);
}

/* ---- Raft life cycle ------------------------------------------------------------------ */

static void on_poll(uv_timer_t *t);

/* libraft's own messages (message handling, I/O errors, refused RPCs) go into the log at
 * trace level: they are many, one per RPC. */
static void on_trace(struct raft_tracer *t, const char *file, int line, const char *message)
{
	struct cd_daemon *d = t->impl;

	kb_log(d->log, KB_LOG_TRACE, "libraft %s:%d: %s", file, line, message);
}

/* transport → io → raft_init, with the daemon's timing. */
static int raft_setup(struct cd_daemon *d, struct kb_errmsg *e)
{
	int rv;

	rv = cd_rafttcp_init(&d->transport, d->loop);
	if (rv) {
		kb_errmsg_setf(e, "raft transport: %s", raft_strerror(rv));
		return KB_ESTATE;
	}
	rv = raft_uv_init(&d->io, d->loop, d->raft_dir, &d->transport.io);
	if (rv) {
		kb_errmsg_setf(e, "raft io on %s: %s", d->raft_dir, raft_strerror(rv));
		goto close_transport;
	}
	raft_uv_set_connect_retry_delay(&d->io, CD_CONNECT_RETRY_MS);
	d->tracer.impl = d;
	d->tracer.enabled = d->log->level >= KB_LOG_TRACE;
	d->tracer.emit = on_trace;
	raft_uv_set_tracer(&d->io, &d->tracer);
	cd_raft_io_wrap(&d->io_wrap, &d->io);
	rv = raft_init(&d->raft, &d->io_wrap.io, &d->fsm.raft, d->id, d->address);
	if (rv) {
		kb_errmsg_setf(e, "raft_init %s: %s", d->address, raft_errmsg(&d->raft));
		goto close_io;
	}
	d->raft.data = d;
	d->raft.tracer = &d->tracer;
	raft_set_election_timeout(&d->raft, CD_ELECTION_TIMEOUT_MS);
	raft_set_heartbeat_timeout(&d->raft, CD_HEARTBEAT_TIMEOUT_MS);
	d->snapshot_threshold = cd_fsm_snapshot_threshold(&d->fsm);
	raft_set_snapshot_threshold(&d->raft, d->snapshot_threshold);
	/* A lost snapshot is sent again after this; well above sending the largest one. */
	raft_set_install_snapshot_timeout(&d->raft, CD_INSTALL_SNAPSHOT_TIMEOUT_MS);
	/* A host cut off (isolated) must not raise terms and depose the leader when it
	 * comes back: it asks for votes in a pre-vote round first. */
	raft_set_pre_vote(&d->raft, true);
	d->raft_inited = true;
	return 0;

close_io:
	raft_uv_close(&d->io);
close_transport:
	cd_rafttcp_close(&d->transport);
	return KB_ESTATE;
}

static int raft_go(struct cd_daemon *d, struct kb_errmsg *e)
{
	int rv = raft_start(&d->raft);

	if (rv) {
		kb_errmsg_setf(e, "raft_start: %s", raft_errmsg(&d->raft));
		return KB_ESTATE;
	}
	d->phase = CD_PHASE_RUNNING;
	d->last_state = RAFT_UNAVAILABLE;
	uv_timer_start(&d->poll_timer, on_poll, 0, POLL_INTERVAL_MS);
	kb_log(d->log, KB_LOG_INFO, "raft started: node %" PRIu64 " at %s, data %s", d->id,
	       d->address, d->raft_dir);
	return 0;
}

uint64_t cd_now_ms(void)
{
	return kb_wall_ns() / 1000000u;
}

bool cd_node_is_ready_leader(struct cd_daemon *d)
{
	return d->phase == CD_PHASE_RUNNING && raft_state(&d->raft) == RAFT_LEADER &&
	       d->barrier_done;
}

int cd_node_leader_join_addr(struct cd_daemon *d, char *out, size_t size)
{
	const char *addr = NULL;
	raft_id leader = 0;
	char ip[32];
	unsigned port;

	if (d->phase != CD_PHASE_RUNNING)
		return KB_ESTATE;
	raft_leader(&d->raft, &leader, &addr);
	if (!leader || !addr || sscanf(addr, "%31[0-9.]:%u", ip, &port) != 2)
		return KB_ESTATE;
	snprintf(out, size, "%s:%u", ip, port + CD_JOIN_PORT_OFFSET);
	return 0;
}

/* ---- membership files ------------------------------------------------------------------ */

static void member_path(const struct cd_daemon *d, const char *name, char *out, size_t size)
{
	snprintf(out, size, "%.4000s/%s", d->state_dir, name);
}

static int ok_or_unsynced(int rv)
{
	return rv == KB_ENOTSYNCED ? 0 : rv;
}

/* create: the cluster CA, this host's key and certificate, the cluster key. */
static int member_files_create(struct cd_daemon *d, const char *name, struct kb_errmsg *e)
{
	char path[PATH_MAX + 16], ip[32] = "";
	uint8_t key[CD_CLUSTER_KEY_SIZE];
	char *csr = NULL, *cert = NULL;
	int rv;

	rv = ok_or_unsynced(cd_ca_create(d->state_dir, name, &d->ca, e));
	if (rv == KB_EEXIST) /* a create that crashed after making the CA */
		rv = cd_ca_load(d->state_dir, &d->ca, e);
	if (rv)
		return rv;
	rv = ok_or_unsynced(cd_host_key_create(d->state_dir, d->hostname, &csr, e));
	if (rv)
		return rv;
	sscanf(d->address, "%31[0-9.]", ip);
	rv = cd_ca_issue_host(d->ca, d->hostname, d->id, ip, csr, 3650, &cert, e);
	kb_free(csr);
	if (rv)
		return rv;
	member_path(d, CD_HOST_CERT_FILE, path, sizeof(path));
	rv = ok_or_unsynced(kb_file_write_atomic(path, cert, strlen(cert), 0644, e));
	kb_free(cert);
	if (rv)
		return rv;
	if (getrandom(key, sizeof(key), 0) != sizeof(key)) {
		rv = -errno;
		kb_errmsg_setf(e, "getrandom: %s", kb_strerror(rv));
		return rv;
	}
	member_path(d, CD_CLUSTER_KEY_FILE, path, sizeof(path));
	rv = ok_or_unsynced(kb_file_write_atomic(path, key, sizeof(key), 0600, e));
	if (rv)
		return rv;
	memcpy(d->cluster_key, key, sizeof(key));
	d->have_cluster_key = true;
	return 0;
}

static bool member_files_exist(const struct cd_daemon *d)
{
	char path[PATH_MAX + 16];

	member_path(d, CD_HOST_CERT_FILE, path, sizeof(path));
	return access(path, F_OK) == 0;
}

int cd_node_member_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	char path[PATH_MAX + 16];
	struct kb_buf b;
	int rv;

	if (!d->ca) {
		rv = cd_ca_load(d->state_dir, &d->ca, e);
		if (rv)
			return rv;
	}
	if (!d->have_cluster_key) {
		member_path(d, CD_CLUSTER_KEY_FILE, path, sizeof(path));
		kb_buf_init(&b, 0);
		rv = kb_file_read_small(path, CD_CLUSTER_KEY_SIZE, &b, e);
		if (rv == 0 && b.len != CD_CLUSTER_KEY_SIZE) {
			kb_errmsg_setf(e, "%s: not a cluster key", path);
			rv = KB_ECONFIG;
		}
		if (rv == 0) {
			memcpy(d->cluster_key, b.data, CD_CLUSTER_KEY_SIZE);
			d->have_cluster_key = true;
		}
		kb_buf_close(&b);
		if (rv)
			return rv;
	}
	rv = cd_joinsrv_start(d, e);
	if (rv)
		return rv;
	rv = cd_hbnet_start(d, e);
	if (rv)
		return rv;
	rv = cd_ha_start(d, e);
	if (rv)
		return rv;
	rv = cd_migrate_start(d, e);
	if (rv)
		return rv;
	rv = cd_ft_leader_start(d, e);
	if (rv)
		return rv;
	rv = cd_ft_start(d, e);
	if (rv)
		return rv;
	return cd_reconcile_start(d, e);
}

/* ---- create --------------------------------------------------------------------------- */

static void create_end(struct cd_daemon *d, int code, const char *error)
{
	cd_create_cb cb = d->create_cb;
	void *arg = d->create_arg;

	d->creating = false;
	d->create_cb = NULL;
	uv_timer_stop(&d->create_timer);
	if (code) {
		kb_log(d->log, KB_LOG_WARN, "create %s failed: %s", d->create_name, error);
	} else {
		struct kb_errmsg e = {{0}};

		kb_log(d->log, KB_LOG_INFO, "cluster %s created", d->create_name);
		if (cd_node_member_start(d, &e))
			kb_log(d->log, KB_LOG_ERROR, "cannot start the join port: %s", e.msg);
	}
	if (cb)
		cb(d, arg, code, error);
}

static void on_create_timeout(uv_timer_t *t)
{
	struct cd_daemon *d = t->data;

	if (d->creating && !d->create_proposed)
		create_end(d, KB_ETIMEOUT, "this node did not become leader in time");
}

static void on_create_applied(struct raft_apply *req, int status, void *result)
{
	struct cd_daemon *d = req->data;
	const struct cd_result *res = result;
	char msg[CD_REASON_MAX + 64];

	if (status) {
		snprintf(msg, sizeof(msg), "proposal failed: %s", raft_strerror(status));
		create_end(d, KB_ESTATE, msg);
		return;
	}
	if (res->status) {
		create_end(d, res->status, res->reason);
		return;
	}
	for (unsigned i = 0; i < res->n; i++) {
		if (res->cmds[i].code) {
			snprintf(msg, sizeof(msg), "%s refused: %s", i ? "HostAdd" : "SetConfig",
				 res->cmds[i].reason);
			create_end(d, res->cmds[i].code, msg);
			return;
		}
	}
	create_end(d, 0, NULL);
}

static void new_uuid(char out[CD_UUID_LEN + 1])
{
	uint8_t b[16] = {0};

	if (getrandom(b, sizeof(b), 0) != sizeof(b)) {
		uint64_t t = kb_wall_ns() ^ kb_now_ns();

		memcpy(b, &t, sizeof(t));
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
	snprintf(out, CD_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

/* This host's CPU (count x MHz of the first CPU) and memory, for its Host record. */
void cd_host_capacity(uint32_t *cpu_mhz, uint64_t *mem_mib)
{
	char line[256];
	double mhz = 0;
	unsigned long long kib = 0;
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	FILE *f;

	f = fopen("/proc/cpuinfo", "re");
	while (f && fgets(line, sizeof(line), f))
		if (mhz == 0 && strncmp(line, "cpu MHz", 7) == 0)
			sscanf(strchr(line, ':') ? strchr(line, ':') + 1 : line, "%lf", &mhz);
	if (f)
		fclose(f);
	f = fopen("/proc/meminfo", "re");
	while (f && fgets(line, sizeof(line), f))
		if (sscanf(line, "MemTotal: %llu kB", &kib) == 1)
			break;
	if (f)
		fclose(f);
	if (mhz < 1)
		mhz = 1000;
	if (n < 1)
		n = 1;
	*cpu_mhz = (uint32_t)((double)n * mhz);
	*mem_mib = kib / 1024;
}

/*
 * libraft 0.15 pads each entry to 8 bytes on disk, and a clean close truncates a segment
 * after the last entry's padding, but loading a closed segment does not expect padding
 * after the last entry: a segment whose last entry is not a multiple of 8 bytes long
 * fails to load on the next start ("read preamble: short read"). So every entry this
 * daemon proposes is a multiple of 8 bytes: the batch is followed by a filler field,
 * number 15, wire type 2 (length-delimited), that protobuf decoders skip as unknown.
 */
#define FILLER_TAG ((15u << 3) | 2u)

int cd_node_propose(struct cd_daemon *d, struct raft_apply *req,
		    Keel__Cluster__Command *const *cmds, unsigned n, raft_apply_cb cb,
		    struct kb_errmsg *e)
{
	struct raft *r = &d->raft;
	struct raft_buffer buf;
	size_t pad;
	uint8_t *p;
	int rv;

	rv = cd_batch_encode(cmds, n, &buf, e);
	if (rv)
		return rv;
	pad = (8 - buf.len % 8) % 8;
	if (pad == 1)
		pad = 9; /* a filler takes at least 2 bytes */
	if (pad) {
		p = raft_realloc(buf.base, buf.len + pad);
		if (!p) {
			raft_free(buf.base);
			kb_errmsg_setf(e, "propose: out of memory");
			return -ENOMEM;
		}
		memset(p + buf.len, 0, pad);
		p[buf.len] = FILLER_TAG;
		p[buf.len + 1] = (uint8_t)(pad - 2);
		buf.base = p;
		buf.len += pad;
	}
	if (d->phase != CD_PHASE_RUNNING) {
		raft_free(buf.base);
		kb_errmsg_setf(e, "propose: Raft is not running");
		return KB_ESTATE;
	}
	rv = raft_apply(r, req, &buf, 1, cb);
	if (rv) {
		raft_free(buf.base); /* ownership passes to libraft only on success */
		kb_errmsg_setf(e, "propose: %s", raft_strerror(rv));
	}
	return rv;
}

static void create_propose(struct cd_daemon *d)
{
	Keel__Cluster__ClusterConfig cfg = KEEL__CLUSTER__CLUSTER_CONFIG__INIT;
	Keel__Cluster__SetConfig sc = KEEL__CLUSTER__SET_CONFIG__INIT;
	Keel__Cluster__Capacity cap = KEEL__CLUSTER__CAPACITY__INIT;
	Keel__Cluster__Host host = KEEL__CLUSTER__HOST__INIT;
	Keel__Cluster__HostAdd ha = KEEL__CLUSTER__HOST_ADD__INIT;
	Keel__Cluster__Command c0 = KEEL__CLUSTER__COMMAND__INIT;
	Keel__Cluster__Command c1 = KEEL__CLUSTER__COMMAND__INIT;
	Keel__Cluster__Command *cmds[2] = {&c0, &c1};
	char uuid[CD_UUID_LEN + 1];
	struct kb_errmsg e = {{0}};
	int rv;

	new_uuid(uuid);
	cfg.name = d->create_name;
	cfg.cluster_id = uuid;
	cfg.format_version = CD_FORMAT_VERSION;
	cfg.failure_timeout_ms = 1000;
	cfg.isolation_response = KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_POWER_OFF;
	sc.config = &cfg;
	sc.at_ms = cd_now_ms();
	c0.cmd_case = KEEL__CLUSTER__COMMAND__CMD_SET_CONFIG;
	c0.set_config = &sc;
	cd_host_capacity(&cap.cpu_mhz, &cap.mem_mib);
	host.id = d->id;
	host.name = d->hostname;
	host.vmk0 = d->address;
	host.vmk1 = "";
	host.vmk2 = "";
	host.capacity = &cap;
	host.state = KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED;
	host.role = KEEL__CLUSTER__RAFT_ROLE__RAFT_ROLE_VOTER;
	host.last_change_ms = cd_now_ms();
	ha.host = &host;
	c1.cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_ADD;
	c1.host_add = &ha;

	d->create_req.data = d;
	rv = cd_node_propose(d, &d->create_req, cmds, 2, on_create_applied, &e);
	if (rv) {
		create_end(d, rv, e.msg);
		return;
	}
	d->create_proposed = true;
	kb_log(d->log, KB_LOG_INFO, "proposed cluster %s (%s) with host %s", d->create_name, uuid,
	       d->hostname);
}

int cd_node_create(struct cd_daemon *d, const char *name, cd_create_cb cb, void *arg,
		   struct kb_errmsg *e)
{
	struct raft_configuration conf;
	int rv;

	if (d->phase == CD_PHASE_FIND_VMK0) {
		kb_errmsg_setf(e, "vmk0 (the Management adapter) is not up yet");
		return KB_ESTATE;
	}
	if (d->phase != CD_PHASE_UNBOOTSTRAPPED || d->creating) {
		const struct cd_state *s = cd_fsm_state(&d->fsm);

		if (s->config.set)
			kb_errmsg_setf(e, "this host is already in cluster %s", s->config.name);
		else
			kb_errmsg_setf(e, "this node is already bootstrapped");
		return KB_ESTATE;
	}
	rv = cd__check_name(name, "cluster name", e);
	if (rv)
		return rv;
	rv = member_files_create(d, name, e);
	if (rv)
		return rv;
	if (!d->raft_inited) {
		rv = raft_setup(d, e);
		if (rv)
			return rv;
	}
	raft_configuration_init(&conf);
	rv = raft_configuration_add(&conf, d->id, d->address, RAFT_VOTER);
	if (rv == 0)
		rv = raft_bootstrap(&d->raft, &conf);
	raft_configuration_close(&conf);
	if (rv == RAFT_CANTBOOTSTRAP) {
		kb_log(d->log, KB_LOG_WARN, "raft data in %s was already bootstrapped",
		       d->raft_dir);
	} else if (rv) {
		kb_errmsg_setf(e, "raft_bootstrap: %s", raft_strerror(rv));
		return KB_ESTATE;
	}
	rv = mark_bootstrapped(d, e);
	if (rv)
		return rv;
	snprintf(d->create_name, sizeof(d->create_name), "%s", name);
	d->creating = true;
	d->create_proposed = false;
	d->create_cb = cb;
	d->create_arg = arg;
	rv = raft_go(d, e);
	if (rv) {
		d->creating = false;
		return rv;
	}
	uv_timer_start(&d->create_timer, on_create_timeout, CREATE_TIMEOUT_MS, 0);
	return 0;
}

void cd_node_create_forget(struct cd_daemon *d, void *arg)
{
	if (d->creating && d->create_arg == arg)
		d->create_cb = NULL;
	if (d->client_busy && d->client_arg == arg)
		d->client_cb = NULL;
}

int cd_node_joined(struct cd_daemon *d, struct kb_errmsg *e)
{
	int rv = mark_bootstrapped(d, e);

	if (rv && rv != KB_ENOTSYNCED)
		return rv;
	if (!d->raft_inited) {
		rv = raft_setup(d, e);
		if (rv)
			return rv;
	}
	rv = raft_go(d, e);
	if (rv)
		return rv;
	return cd_node_member_start(d, e);
}

/* ---- leadership ----------------------------------------------------------------------- */

static void on_barrier(struct raft_barrier *req, int status)
{
	struct cd_daemon *d = req->data;

	d->barrier_pending = false;
	if (status) {
		kb_log(d->log, KB_LOG_INFO, "barrier failed: %s", raft_strerror(status));
		return;
	}
	if (d->phase != CD_PHASE_RUNNING || raft_state(&d->raft) != RAFT_LEADER)
		return;
	d->barrier_done = true;
	kb_log(d->log, KB_LOG_INFO, "leader: log applied up to %llu",
	       (unsigned long long)raft_last_applied(&d->raft));
	if (d->creating && !d->create_proposed)
		create_propose(d);
}

static void on_poll(uv_timer_t *t)
{
	struct cd_daemon *d = t->data;
	const char *addr = NULL;
	raft_id leader = 0;
	int state;

	if (d->phase != CD_PHASE_RUNNING)
		return;
	state = raft_state(&d->raft);
	raft_leader(&d->raft, &leader, &addr);
	if (state != d->last_state || leader != d->last_leader) {
		kb_log(d->log, KB_LOG_INFO, "raft %s -> %s, leader %" PRIu64 " (%s)",
		       raft_state_str(d->last_state), raft_state_str(state), (uint64_t)leader,
		       addr ? addr : "none");
		if (state != RAFT_LEADER)
			d->barrier_done = false;
		d->last_state = state;
		d->last_leader = leader;
	}
	if (cd_node_is_ready_leader(d))
		cd_members_tick(d);
	/* Snapshots cost in proportion to the state: follow its size (docs/clusterd.md). */
	if (++d->threshold_ticks % 20 == 0) {
		unsigned th = cd_fsm_snapshot_threshold(&d->fsm);

		if (th != d->snapshot_threshold) {
			raft_set_snapshot_threshold(&d->raft, th);
			if (d->snapshot_threshold)
				kb_log(d->log, KB_LOG_INFO, "snapshot threshold now %u entries", th);
			d->snapshot_threshold = th;
		}
	}
	if (state == RAFT_LEADER && !d->barrier_done && !d->barrier_pending) {
		d->barrier.data = d;
		if (raft_barrier(&d->raft, &d->barrier, on_barrier) == 0)
			d->barrier_pending = true;
	}
}

/* ---- finding vmk0 --------------------------------------------------------------------- */

/* Whether addr:port can be bound here now (the adapter exists in this namespace). */
static int bindable(const struct sockaddr_in *addr, uint16_t port)
{
	struct sockaddr_in sa = *addr;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, rv = 0;

	if (fd < 0)
		return -errno;
	sa.sin_port = htons(port);
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		rv = -errno;
	close(fd);
	return rv;
}

static void on_find(uv_timer_t *t)
{
	struct cd_daemon *d = t->data;
	struct vmk_net_tagged tag;
	struct kb_errmsg e = {{0}};
	char ip[INET_ADDRSTRLEN];
	int rv;

	rv = vmk_net_tagged_lookup(d->state_dir, "Management", &tag, &e);
	if (rv == 0) {
		rv = bindable(&tag.addr, d->port);
		if (rv)
			kb_errmsg_setf(&e, "%s: cannot bind its address: %s", tag.vmknic,
				       kb_strerror(rv));
	}
	if (rv) {
		if (d->find_tries++ % 40 == 0)
			kb_log(d->log, KB_LOG_INFO, "waiting for the Management adapter: %s",
			       e.msg);
		return;
	}
	uv_timer_stop(t);
	inet_ntop(AF_INET, &tag.addr.sin_addr, ip, sizeof(ip));
	snprintf(d->address, sizeof(d->address), "%s:%u", ip, (unsigned)d->port);
	kb_log(d->log, KB_LOG_INFO, "Management adapter %s at %s", tag.vmknic, d->address);
	if (!bootstrapped(d)) {
		d->phase = CD_PHASE_UNBOOTSTRAPPED;
		kb_log(d->log, KB_LOG_INFO, "not bootstrapped: waiting for create");
		return;
	}
	rv = raft_setup(d, &e);
	if (rv == 0)
		rv = raft_go(d, &e);
	if (rv == 0 && member_files_exist(d))
		rv = cd_node_member_start(d, &e);
	if (rv) {
		/* Nothing else to do without Raft: main exits, a supervised restart retries. */
		kb_log(d->log, KB_LOG_ERROR, "%s", e.msg);
		d->fatal = rv;
		uv_stop(d->loop);
	}
}

/* ---- init and close ------------------------------------------------------------------- */

int cd_node_init(struct cd_daemon *d, uv_loop_t *loop, struct kb_logger *log, const char *state_dir,
		 uint16_t port, struct kb_errmsg *e)
{
	int rv;

	d->loop = loop;
	d->log = log;
	d->port = port;
	snprintf(d->state_dir, sizeof(d->state_dir), "%s", state_dir);
	snprintf(d->raft_dir, sizeof(d->raft_dir), "%.4000s/raft", state_dir);
	snprintf(d->socket_path, sizeof(d->socket_path), "%.4000s/clusterd.sock", state_dir);
	if (mkdir(d->raft_dir, 0700) && errno != EEXIST) {
		rv = -errno;
		kb_errmsg_setf(e, "%s: %s", d->raft_dir, kb_strerror(rv));
		return rv;
	}
	rv = node_id(d, e);
	if (rv)
		return rv;
	rv = cd_proposer_init(d);
	if (rv) {
		kb_errmsg_setf(e, "out of memory");
		return rv;
	}
	cd_fsm_init(&d->fsm);
	d->phase = CD_PHASE_FIND_VMK0;
	uv_timer_init(loop, &d->find_timer);
	uv_timer_init(loop, &d->poll_timer);
	uv_timer_init(loop, &d->create_timer);
	d->find_timer.data = d->poll_timer.data = d->create_timer.data = d;
	uv_timer_start(&d->find_timer, on_find, 0, FIND_INTERVAL_MS);
	return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
	struct cd_daemon *d = h->data;

	/* The create timer closes last of the three (libuv closes in order). */
	if (h == (uv_handle_t *)&d->create_timer && !d->raft_inited && d->closed_cb)
		d->closed_cb(d);
}

static void on_raft_closed(struct raft *r)
{
	struct cd_daemon *d = r->data;

	raft_uv_close(&d->io);
	cd_rafttcp_close(&d->transport);
	d->raft_inited = false;
	kb_log(d->log, KB_LOG_INFO, "raft closed");
	if (d->closed_cb)
		d->closed_cb(d);
}

void cd_node_close(struct cd_daemon *d, void (*cb)(struct cd_daemon *d))
{
	bool raft_on = d->raft_inited;

	d->phase = CD_PHASE_CLOSING;
	d->closed_cb = cb;
	cd_joinsrv_stop(d);
	cd_hbnet_stop(d);
	cd_reconcile_stop(d);
	cd_migrate_stop(d);
	cd_ft_stop(d);
	cd_ft_leader_stop(d);
	cd_ha_stop(d);
	cd_proposer_close(d);
	if (d->creating)
		create_end(d, KB_ECANCELED, "clusterd is stopping");
	uv_close((uv_handle_t *)&d->find_timer, on_timer_closed);
	uv_close((uv_handle_t *)&d->poll_timer, on_timer_closed);
	if (raft_on) {
		/* closed_cb runs from on_raft_closed, after the timers' close callbacks */
		uv_close((uv_handle_t *)&d->create_timer, NULL);
		d->raft.data = d;
		raft_close(&d->raft, on_raft_closed);
	} else {
		uv_close((uv_handle_t *)&d->create_timer, on_timer_closed);
	}
}
