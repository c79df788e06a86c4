/*
 * Heartbeats and liveness on the wire (docs/liveness.md): every 100 ms each host sends a
 * BEAT datagram to the leader's vmk0 address (UDP, the Raft port number), and the leader
 * answers with an ACK carrying its view of every host. The leader also reads every host's
 * heartbeat record on the shared datastores it sees (ha/hb.h) on a worker thread, feeds
 * both into its judge (clusterd/liveness.h) and commits each host state change
 * (HostUpdate, one batch at a time), which the state turns into events.
 *
 * A follower that hears no leader for the isolation timeout (the cluster's failure
 * timeout) calls itself isolated and applies the cluster's isolation response to the VMs
 * its vmkernel runs: with "power off" (the default) and "shut down" it powers them off
 * through vmkernel's control socket; with "leave powered on" nothing is touched. Its next
 * beat after it hears a leader again says it was isolated, and the leader notes that.
 *
 * Everything runs on the loop thread except the datastore reads and the isolation
 * response, which block and run on libuv workers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "clusterd/daemon.h"
#include "clusterd/hbclock.h"
#include "clusterd/hbwire.h"
#include "clusterd/liveness.h"
#include "ha/hb.h"
#include "kernel/ds/datastore.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "vmk.pb-c.h"

#define BEAT_MS		  100 /* a beat to the leader */
#define NO_LEADER_BEAT_MS 300 /* a beat to every member while no leader is known */
#define TICK_MS		  20  /* the leader judges this often: detection waits for no tick */
#define DS_READ_MS	  50  /* the leader reads the datastore records this often */
#define DS_REFRESH_MS	  2000
#define SEQS_MAX	  CD_LIVE_HOSTS_MAX
#define DS_READS_MAX	  4096

struct seq_slot {
	uint64_t id;
	struct cd_hb_seq seq;
	bool clock_known; /* leader: the clock offset of its last beat */
	int64_t clock_us;
};

struct ds_read {
	uint64_t host;
	uint32_t ds;
	uint64_t counter; /* 0: the read failed */
	char path[HA_HB_PATH_MAX];
};

struct peer_view {
	uint64_t id;
	int64_t net, ds; /* ages at the time of the ACK */
	uint64_t at_ms;	 /* when the ACK came (monotonic) */
	bool clock_known;
	int64_t clock_us;
};

struct cd_hbnet {
	struct cd_daemon *d;
	uv_udp_t udp;
	uv_timer_t timer;
	uint64_t seq;
	struct sockaddr_in self;
	bool clock_known; /* this host's clock offset (hbclock.h), read every second */
	int64_t clock_us;
	uint64_t clock_read_ms;

	/* leader side */
	bool live_on;
	uint64_t live_term;
	struct cd_live live;
	struct seq_slot *seqs;
	unsigned n_seqs;
	unsigned judge_left; /* HostUpdates of the last judgement not yet applied */
	bool note_pending;
	char note[256];
	uint64_t note_host;

	/* datastore reads (worker) */
	bool ds_busy;
	uv_work_t ds_work;
	struct ds_read *reads;
	unsigned n_reads;
	uint64_t ds_read_at_ms;
	uint64_t ds_kick_ms;
	uint64_t next_beat_ms;
	char ds_paths[VMK_DS_MAX][VMK_DS_PATH_MAX + 1];
	unsigned n_ds;
	uint64_t ds_loaded_ms;

	/* follower side */
	struct cd_isolation iso;
	bool was_isolated; /* since the last ACK: the next beat says so */
	bool response_busy;
	uv_work_t response_work;
	unsigned response_stopped;
	struct peer_view *view;
	unsigned n_view;
	uint64_t leader_id;
	uint64_t ack_ms; /* when leader_id's last ACK came (kept through this host's own lead) */

	unsigned open_handles; /* udp and timer: h is freed when both have closed */
	uint64_t dropped; /* datagrams that did not verify */
	uint64_t last_drop_log_ms;
	bool closing;
};

static const char *cd_host_state_name(int st)
{
	switch (st) {
	case KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED:
		return "connected";
	case KEEL__CLUSTER__HOST_STATE__HOST_UNREACHABLE:
		return "unreachable";
	case KEEL__CLUSTER__HOST_STATE__HOST_PARTITIONED:
		return "partitioned";
	case KEEL__CLUSTER__HOST_STATE__HOST_FAILED:
		return "failed";
	case KEEL__CLUSTER__HOST_STATE__HOST_ISOLATED:
		return "isolated";
	case KEEL__CLUSTER__HOST_STATE__HOST_MAINTENANCE:
		return "maintenance";
	case KEEL__CLUSTER__HOST_STATE__HOST_LEFT:
		return "left";
	default:
		return "unknown";
	}
}

static uint64_t mono_ms(void)
{
	return kb_now_ns() / 1000000u;
}

static uint32_t failure_timeout(const struct cd_daemon *d)
{
	const struct cd_state *s = cd_fsm_state(&d->fsm);

	return s->config.set && s->config.failure_timeout_ms ? s->config.failure_timeout_ms
							     : 1000;
}

/* ---- sending -------------------------------------------------------------------------- */

struct send_req {
	uv_udp_send_t req;
	uint8_t buf[CD_HB_DATAGRAM_MAX];
};

static void on_sent(uv_udp_send_t *req, int status)
{
	kb_free(req->data);
	(void)status;
}

static void send_hb(struct cd_hbnet *h, const Keel__Cluster__Heartbeat *hb,
		    const struct sockaddr_in *to)
{
	struct send_req *r = kb_malloc(sizeof(*r));
	struct kb_errmsg e = {{0}};
	size_t len = 0;
	uv_buf_t b;

	if (!r)
		return;
	if (cd_hb_encode(hb, h->d->cluster_key, r->buf, sizeof(r->buf), &len, &e)) {
		kb_free(r);
		return;
	}
	r->req.data = r;
	b = uv_buf_init((char *)r->buf, (unsigned)len);
	if (uv_udp_send(&r->req, &h->udp, &b, 1, (const struct sockaddr *)to, on_sent))
		kb_free(r);
}

static int addr_of(const char *text, struct sockaddr_in *sa)
{
	char ip[32];
	unsigned port;

	if (sscanf(text, "%31[0-9.]:%u", ip, &port) != 2 || port == 0 || port > 65535)
		return -EINVAL;
	return uv_ip4_addr(ip, (int)port, sa);
}

/* ---- leader: judging ------------------------------------------------------------------------ */

static void on_judged(struct cd_daemon *d, void *arg, int status, int code, const char *reason)
{
	struct cd_hbnet *h = d->hb;

	if (h && h->judge_left)
		h->judge_left--;
	(void)arg;
	(void)status;
	(void)code;
	(void)reason;
}

static void on_noted(struct cd_daemon *d, void *arg, int status, int code, const char *reason)
{
	struct cd_hbnet *h = d->hb;

	if (h)
		h->note_pending = false;
	(void)arg;
	(void)status;
	(void)code;
	(void)reason;
}

static void note_event(struct cd_hbnet *h, uint64_t host, const char *text)
{
	Keel__Cluster__Event ev = KEEL__CLUSTER__EVENT__INIT;
	Keel__Cluster__EventAdd ea = KEEL__CLUSTER__EVENT_ADD__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	struct kb_errmsg e = {{0}};

	if (h->note_pending || !cd_node_is_ready_leader(h->d))
		return;
	snprintf(h->note, sizeof(h->note), "%s", text);
	ev.at_ms = cd_now_ms();
	ev.kind = KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE;
	ev.host = host;
	ev.vm = "";
	ev.message = h->note;
	ea.event = &ev;
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_EVENT_ADD;
	c.event_add = &ea;
	if (cd_submit(h->d, &c, on_noted, NULL, &e) == 0)
		h->note_pending = true;
}

/* Starts or keeps the judge for this leadership, tracking exactly the state's hosts. */
static void live_sync(struct cd_hbnet *h, uint64_t now)
{
	struct cd_daemon *d = h->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	uint64_t term = d->raft.current_term;

	if (h->live_on && h->live_term != term) {
		cd_live_close(&h->live);
		h->live_on = false;
	}
	if (!h->live_on) {
		if (cd_live_init(&h->live, failure_timeout(d)))
			return;
		h->live_on = true;
		h->live_term = term;
		kb_log(d->log, KB_LOG_INFO, "liveness: watching %u hosts (failure timeout %u ms)",
		       cd_state_n_hosts(s), failure_timeout(d));
	}
	cd_live_set_timeout(&h->live, failure_timeout(d));
	for (unsigned i = 0; i < cd_state_n_hosts(s); i++) {
		const struct cd_host *ho = cd_state_host_at(s, i);

		if (!cd_live_tracked(&h->live, ho->id))
			cd_live_track(&h->live, ho->id, now);
	}
	for (unsigned i = 0; i < h->live.n_hosts; i++) {
		uint64_t id = h->live.hosts[i].id;

		if (!cd_state_host(s, id)) {
			cd_live_forget(&h->live, id);
			i--;
		}
	}
}

static void judge(struct cd_hbnet *h, uint64_t now)
{
	struct cd_daemon *d = h->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	unsigned n = cd_state_n_hosts(s), k = 0;
	Keel__Cluster__HostUpdate *hu;
	Keel__Cluster__Command *cs, **cp;
	struct kb_errmsg e = {{0}};

	if (h->judge_left || n == 0)
		return;
	hu = kb_calloc(n, sizeof(*hu));
	cs = kb_calloc(n, sizeof(*cs));
	cp = kb_calloc(n, sizeof(*cp));
	if (!hu || !cs || !cp)
		goto out;
	for (unsigned i = 0; i < n; i++) {
		const struct cd_host *ho = cd_state_host_at(s, i);
		int want;

		if (ho->state == KEEL__CLUSTER__HOST_STATE__HOST_LEFT ||
		    ho->state == KEEL__CLUSTER__HOST_STATE__HOST_MAINTENANCE)
			continue;
		want = ho->id == d->id ? KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED
				       : (int)cd_live_judge(&h->live, ho->id, now);
		if (want == KEEL__CLUSTER__HOST_STATE__HOST_STATE_UNSPECIFIED || want == ho->state)
			continue;
		keel__cluster__host_update__init(&hu[k]);
		hu[k].id = ho->id;
		hu[k].state = want;
		hu[k].at_ms = cd_now_ms();
		keel__cluster__command__init(&cs[k]);
		cs[k].cmd_case = KEEL__CLUSTER__COMMAND__CMD_HOST_UPDATE;
		cs[k].host_update = &hu[k];
		cp[k] = &cs[k];
		kb_log(d->log, want == KEEL__CLUSTER__HOST_STATE__HOST_CONNECTED ? KB_LOG_INFO
										: KB_LOG_WARN,
		       "host %s (%" PRIu64 "): %s -> %s", ho->name, ho->id,
		       cd_host_state_name(ho->state), cd_host_state_name(want));
		k++;
	}
	/* Submitted in one loop iteration: they share an entry. */
	for (unsigned i = 0; i < k; i++) {
		if (cd_submit(d, cp[i], on_judged, NULL, &e) == 0)
			h->judge_left++;
		else
			kb_log(d->log, KB_LOG_WARN, "liveness: %s", e.msg);
	}
out:
	kb_free(hu);
	kb_free(cs);
	kb_free(cp);
}

/* ---- leader: datastore heartbeat records (worker) -------------------------------------------- */

static void ds_work(uv_work_t *w)
{
	struct cd_hbnet *h = w->data;

	for (unsigned i = 0; i < h->n_reads; i++) {
		struct ha_hb_record rec;

		h->reads[i].counter = 0;
		if (ha_hb_read(h->reads[i].path, &rec, NULL) == 0 &&
		    rec.host_id == h->reads[i].host)
			h->reads[i].counter = rec.counter;
	}
	h->ds_read_at_ms = mono_ms();
}

static void ds_done(uv_work_t *w, int status)
{
	struct cd_hbnet *h = w->data;

	h->ds_busy = false;
	if (status || h->closing || !h->live_on)
		return;
	for (unsigned i = 0; i < h->n_reads; i++)
		if (h->reads[i].counter)
			cd_live_ds_counter(&h->live, h->reads[i].host, h->reads[i].ds,
					   h->reads[i].counter, h->ds_read_at_ms);
}

/* The shared datastores this host sees (its vmkernel's datastores.conf), re-read now and
 * then: the leader reads every host's record on each. */
static void ds_refresh(struct cd_hbnet *h, uint64_t now)
{
	struct vmk_ds_registry reg;
	struct kb_errmsg e = {{0}};
	char path[PATH_MAX + 32];

	if (h->ds_loaded_ms && now - h->ds_loaded_ms < DS_REFRESH_MS)
		return;
	h->ds_loaded_ms = now;
	snprintf(path, sizeof(path), "%.4000s/%s", h->d->state_dir, VMK_DS_CONF_FILE);
	if (access(path, R_OK) != 0)
		return;
	if (vmk_ds_registry_init(&reg, h->d->state_dir, &e))
		return;
	h->n_ds = 0;
	for (size_t i = 0; i < reg.n && h->n_ds < VMK_DS_MAX; i++)
		if (reg.ds[i].shared)
			snprintf(h->ds_paths[h->n_ds++], sizeof(h->ds_paths[0]), "%s",
				 reg.ds[i].path);
	vmk_ds_registry_close(&reg);
}

static void ds_kick(struct cd_hbnet *h, uint64_t now)
{
	const struct cd_state *s = cd_fsm_state(&h->d->fsm);
	unsigned n = 0;

	if (h->ds_busy || now - h->ds_kick_ms < DS_READ_MS)
		return;
	h->ds_kick_ms = now;
	ds_refresh(h, now);
	for (unsigned i = 0; i < cd_state_n_hosts(s); i++) {
		for (unsigned k = 0; k < h->n_ds && n < DS_READS_MAX; k++) {
			struct ds_read *r = &h->reads[n];

			r->host = cd_state_host_at(s, i)->id;
			r->ds = k;
			if (ha_hb_path(h->ds_paths[k], r->host, r->path) == 0)
				n++;
		}
	}
	h->n_reads = n;
	if (n == 0)
		return;
	h->ds_work.data = h;
	if (uv_queue_work(h->d->loop, &h->ds_work, ds_work, ds_done) == 0)
		h->ds_busy = true;
}

/* ---- follower: the isolation response (worker) ------------------------------------------------ */

static void response_work(uv_work_t *w)
{
	struct cd_hbnet *h = w->data;
	char path[PATH_MAX + 32];
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmList list = KEEL__VMK__VMK_VM_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	int fd;

	h->response_stopped = 0;
	snprintf(path, sizeof(path), "%.4000s/vmkernel.sock", h->d->state_dir);
	fd = kb_unix_connect(path);
	if (fd < 0)
		return;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	rq.vm_list = &list;
	rp = cd_vmk_call(fd, &rq);
	for (size_t i = 0; rp && i < rp->n_vms; i++) {
		Keel__Vmk__VmkRequest off = KEEL__VMK__VMK_REQUEST__INIT;
		Keel__Vmk__VmkVmPowerOff po = KEEL__VMK__VMK_VM_POWER_OFF__INIT;
		Keel__Vmk__VmkReply *r2;

		if (strcmp(rp->vms[i]->power_state, "poweredOn") != 0)
			continue;
		po.vm = rp->vms[i]->uuid;
		po.fence = true; /* the cluster still wants it on: only the lock is released */
		off.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF;
		off.vm_power_off = &po;
		r2 = cd_vmk_call(fd, &off);
		if (r2 && r2->code == 0)
			h->response_stopped++;
		if (r2)
			keel__vmk__vmk_reply__free_unpacked(r2, NULL);
	}
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	close(fd);
}

static void response_done(uv_work_t *w, int status)
{
	struct cd_hbnet *h = w->data;

	h->response_busy = false;
	kb_log(h->d->log, KB_LOG_WARN, "isolation response: powered off %u VM%s",
	       h->response_stopped, h->response_stopped == 1 ? "" : "s");
	(void)status;
}

static void isolation_begins(struct cd_hbnet *h)
{
	const struct cd_state *s = cd_fsm_state(&h->d->fsm);
	int resp = s->config.set ? s->config.isolation_response
				 : KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_POWER_OFF;

	kb_log(h->d->log, KB_LOG_WARN,
	       "isolated: no contact with a leader for %u ms; isolation response: %s",
	       failure_timeout(h->d),
	       resp == KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_LEAVE_POWERED_ON
		   ? "leave powered on"
		   : "power off");
	h->was_isolated = true;
	if (resp == KEEL__CLUSTER__ISOLATION_RESPONSE__ISOLATION_LEAVE_POWERED_ON ||
	    h->response_busy)
		return;
	h->response_work.data = h;
	if (uv_queue_work(h->d->loop, &h->response_work, response_work, response_done) == 0)
		h->response_busy = true;
}

/* ---- the tick ------------------------------------------------------------------------------ */

static void on_tick(uv_timer_t *t)
{
	struct cd_hbnet *h = t->data;
	struct cd_daemon *d = h->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	uint64_t now = mono_ms();
	const char *laddr = NULL;
	raft_id leader = 0;
	bool was;

	if (d->phase != CD_PHASE_RUNNING || !s->config.set)
		return;
	if (now - h->clock_read_ms >= 1000) {
		h->clock_read_ms = now;
		h->clock_known = cd_clock_read(d->state_dir, kb_wall_ns(), &h->clock_us);
	}
	raft_leader(&d->raft, &leader, &laddr);
	if (raft_state(&d->raft) == RAFT_LEADER) {
		cd_iso_contact(&h->iso, now);
		if (cd_node_is_ready_leader(d)) {
			live_sync(h, now);
			ds_kick(h, now);
			judge(h, now);
		}
	} else {
		if (h->live_on) {
			cd_live_close(&h->live);
			h->live_on = false;
		}
		if (now + TICK_MS / 2 >= h->next_beat_ms) {
			Keel__Cluster__Heartbeat hb = KEEL__CLUSTER__HEARTBEAT__INIT;
			struct sockaddr_in to;

			hb.kind = KEEL__CLUSTER__HEARTBEAT__KIND__KIND_BEAT;
			hb.cluster_id = (char *)s->config.cluster_id;
			hb.from = d->id;
			hb.seq = ++h->seq;
			hb.isolated = h->was_isolated;
			hb.clock_known = h->clock_known;
			hb.clock_offset_us = h->clock_known ? h->clock_us : 0;
			h->next_beat_ms = now + BEAT_MS;
			if (leader && leader != d->id && laddr) {
				if (addr_of(laddr, &to) == 0)
					send_hb(h, &hb, &to);
			} else {
				/* No leader known: beat to every member, so a leader that no
				 * longer replicates to this host (it made it a spare while it
				 * was down) still hears it, sees it connected and takes it
				 * back in (docs/liveness.md). Non-leaders drop these. */
				h->next_beat_ms = now + NO_LEADER_BEAT_MS;
				for (unsigned i = 0; i < cd_state_n_hosts(s); i++) {
					const struct cd_host *o = cd_state_host_at(s, i);

					if (o->id != d->id && addr_of(o->vmk0, &to) == 0)
						send_hb(h, &hb, &to);
				}
			}
		}
	}
	was = h->iso.isolated;
	if (cd_iso_isolated(&h->iso, now, failure_timeout(d)) != was) {
		if (h->iso.isolated)
			isolation_begins(h);
		else
			kb_log(d->log, KB_LOG_INFO, "no longer isolated: a leader answers again");
	}
}

/* ---- receiving ------------------------------------------------------------------------------ */

static void on_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
	static uint8_t space[CD_HB_DATAGRAM_MAX + 1];

	buf->base = (char *)space;
	buf->len = sizeof(space);
	(void)hd;
	(void)suggested;
}

static struct cd_hb_seq *seq_of(struct cd_hbnet *h, uint64_t id)
{
	for (unsigned i = 0; i < h->n_seqs; i++)
		if (h->seqs[i].id == id)
			return &h->seqs[i].seq;
	if (h->n_seqs == SEQS_MAX)
		return NULL;
	h->seqs[h->n_seqs].id = id;
	h->seqs[h->n_seqs].seq.last = 0;
	h->seqs[h->n_seqs].clock_known = false;
	return &h->seqs[h->n_seqs++].seq;
}

static void answer_beat(struct cd_hbnet *h, const Keel__Cluster__Heartbeat *in,
			const struct sockaddr_in *from, uint64_t now)
{
	struct cd_daemon *d = h->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	Keel__Cluster__Heartbeat hb = KEEL__CLUSTER__HEARTBEAT__INIT;
	Keel__Cluster__HeartbeatPeer peers[CD_HB_PEERS_MAX], *pp[CD_HB_PEERS_MAX];
	unsigned n = 0;

	for (unsigned i = 0; i < cd_state_n_hosts(s) && n < CD_HB_PEERS_MAX; i++) {
		const struct cd_host *ho = cd_state_host_at(s, i);

		keel__cluster__heartbeat_peer__init(&peers[n]);
		peers[n].host = ho->id;
		peers[n].state = ho->state;
		if (ho->id == d->id) {
			cd_live_ages(&h->live, ho->id, now, NULL, &peers[n].ds_age_ms);
			peers[n].net_age_ms = 0;
		} else if (cd_live_ages(&h->live, ho->id, now, &peers[n].net_age_ms,
					&peers[n].ds_age_ms)) {
			peers[n].net_age_ms = peers[n].ds_age_ms = -1;
		}
		if (cd_state_n_hosts(s) <= CD_CLOCK_PEERS_MAX)
			peers[n].clock_known = cd_hbnet_clock(d, ho->id, &peers[n].clock_offset_us);
		pp[n] = &peers[n];
		n++;
	}
	hb.kind = KEEL__CLUSTER__HEARTBEAT__KIND__KIND_ACK;
	hb.cluster_id = (char *)s->config.cluster_id;
	hb.from = d->id;
	hb.seq = ++h->seq;
	hb.echo_seq = in->seq;
	hb.term = d->raft.current_term;
	hb.n_peers = n;
	hb.peers = pp;
	send_hb(h, &hb, from);
}

static void take_ack(struct cd_hbnet *h, const Keel__Cluster__Heartbeat *in, uint64_t now)
{
	struct peer_view *v;

	cd_iso_contact(&h->iso, now);
	h->was_isolated = false;
	h->leader_id = in->from;
	h->ack_ms = now;
	v = kb_realloc(h->view, (in->n_peers ? in->n_peers : 1) * sizeof(*v));
	if (!v)
		return;
	h->view = v;
	h->n_view = (unsigned)in->n_peers;
	for (size_t i = 0; i < in->n_peers; i++) {
		v[i].id = in->peers[i]->host;
		v[i].net = in->peers[i]->net_age_ms;
		v[i].ds = in->peers[i]->ds_age_ms;
		v[i].at_ms = now;
		v[i].clock_known = in->peers[i]->clock_known;
		v[i].clock_us = in->peers[i]->clock_offset_us;
	}
}

static void on_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
		    unsigned flags)
{
	struct cd_hbnet *h = u->data;
	struct cd_daemon *d = h->d;
	const struct cd_state *s = cd_fsm_state(&d->fsm);
	Keel__Cluster__Heartbeat *hb = NULL;
	struct kb_errmsg e = {{0}};
	struct cd_hb_seq *sq;
	uint64_t now = mono_ms();
	const char *laddr = NULL;
	raft_id leader = 0;

	(void)flags;
	if (nread <= 0 || !addr || h->closing || !s->config.set || d->phase != CD_PHASE_RUNNING)
		return;
	if (cd_hb_decode((const uint8_t *)buf->base, (size_t)nread, d->cluster_key,
			 s->config.cluster_id, &hb, &e)) {
		h->dropped++;
		if (now - h->last_drop_log_ms > 5000) {
			char ip[INET_ADDRSTRLEN] = "?";

			inet_ntop(AF_INET, &((const struct sockaddr_in *)addr)->sin_addr, ip,
				  sizeof(ip));
			kb_log(d->log, KB_LOG_WARN,
			       "heartbeat from %s dropped: %s (%" PRIu64 " dropped so far)", ip,
			       e.msg, h->dropped);
			h->last_drop_log_ms = now;
		}
		return;
	}
	sq = seq_of(h, hb->from);
	if (!sq || !cd_hb_seq_accept(sq, hb->seq) || !cd_state_host(s, hb->from))
		goto out;
	if (hb->kind == KEEL__CLUSTER__HEARTBEAT__KIND__KIND_BEAT) {
		if (!cd_node_is_ready_leader(d) || !h->live_on)
			goto out;
		if (hb->isolated && !cd_live_isolated(&h->live, hb->from)) {
			char text[200];

			snprintf(text, sizeof(text), "host %s reports it was isolated",
				 cd_state_host(s, hb->from)->name);
			kb_log(d->log, KB_LOG_WARN, "%s", text);
			note_event(h, hb->from, text);
		}
		cd_live_net_beat(&h->live, hb->from, now, hb->isolated);
		for (unsigned i = 0; i < h->n_seqs; i++) {
			if (h->seqs[i].id == hb->from) {
				h->seqs[i].clock_known = hb->clock_known;
				h->seqs[i].clock_us = hb->clock_offset_us;
			}
		}
		answer_beat(h, hb, (const struct sockaddr_in *)addr, now);
	} else if (hb->kind == KEEL__CLUSTER__HEARTBEAT__KIND__KIND_ACK) {
		raft_leader(&d->raft, &leader, &laddr);
		if (hb->from == leader)
			take_ack(h, hb, now);
	}
out:
	cd_hb_free(hb);
}

/* ---- start, stop, queries ------------------------------------------------------------------- */

int cd_hbnet_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	struct cd_hbnet *h;
	int rv;

	if (d->hb)
		return 0;
	h = kb_calloc(1, sizeof(*h));
	if (!h)
		return -ENOMEM;
	h->reads = kb_calloc(DS_READS_MAX, sizeof(*h->reads));
	h->seqs = kb_calloc(SEQS_MAX, sizeof(*h->seqs));
	if (!h->reads || !h->seqs) {
		kb_free(h->reads);
		kb_free(h->seqs);
		kb_free(h);
		return -ENOMEM;
	}
	h->d = d;
	h->seq = kb_wall_ns(); /* grows across restarts: receivers refuse replays */
	cd_iso_init(&h->iso, mono_ms());
	rv = addr_of(d->address, &h->self);
	if (rv == 0)
		rv = uv_udp_init(d->loop, &h->udp);
	if (rv == 0) {
		h->udp.data = h;
		rv = uv_udp_bind(&h->udp, (const struct sockaddr *)&h->self, UV_UDP_REUSEADDR);
		if (rv == 0)
			rv = uv_udp_recv_start(&h->udp, on_alloc, on_recv);
		if (rv) {
			kb_errmsg_setf(e, "heartbeat socket %s: %s", d->address, uv_strerror(rv));
			uv_close((uv_handle_t *)&h->udp, NULL);
			/* h leaks deliberately: the handle closes later; this is fatal anyway */
			return rv;
		}
	} else {
		kb_errmsg_setf(e, "heartbeat socket %s: cannot set up", d->address);
		kb_free(h->reads);
		kb_free(h->seqs);
		kb_free(h);
		return rv ? rv : -EINVAL;
	}
	uv_timer_init(d->loop, &h->timer);
	h->timer.data = h;
	uv_timer_start(&h->timer, on_tick, TICK_MS, TICK_MS);
	d->hb = h;
	kb_log(d->log, KB_LOG_INFO, "heartbeats on udp %s every %u ms", d->address, BEAT_MS);
	return 0;
}

static void on_hb_closed(uv_handle_t *hd)
{
	struct cd_hbnet *h = hd->data;

	/* libuv finishes closes in no promised order: free h after the last handle. Workers
	 * still queued hold h too; then it stays (the process is ending). */
	if (--h->open_handles > 0 || h->ds_busy || h->response_busy)
		return;
	if (h->live_on)
		cd_live_close(&h->live);
	kb_free(h->view);
	kb_free(h->reads);
	kb_free(h->seqs);
	kb_free(h);
}

void cd_hbnet_stop(struct cd_daemon *d)
{
	struct cd_hbnet *h = d->hb;

	if (!h)
		return;
	h->closing = true;
	d->hb = NULL;
	uv_timer_stop(&h->timer);
	uv_udp_recv_stop(&h->udp);
	h->open_handles = 2;
	uv_close((uv_handle_t *)&h->udp, on_hb_closed);
	uv_close((uv_handle_t *)&h->timer, on_hb_closed);
}

void cd_hbnet_ages(struct cd_daemon *d, uint64_t id, int64_t *net_ms, int64_t *ds_ms)
{
	struct cd_hbnet *h = d->hb;
	uint64_t now = mono_ms();

	*net_ms = *ds_ms = -1;
	if (!h)
		return;
	if (h->live_on) {
		cd_live_ages(&h->live, id, now, net_ms, ds_ms);
		if (id == d->id)
			*net_ms = 0; /* the leader itself */
		return;
	}
	for (unsigned i = 0; i < h->n_view; i++) {
		if (h->view[i].id != id)
			continue;
		if (h->view[i].net >= 0)
			*net_ms = h->view[i].net + (int64_t)(now - h->view[i].at_ms);
		if (h->view[i].ds >= 0)
			*ds_ms = h->view[i].ds + (int64_t)(now - h->view[i].at_ms);
	}
}

int64_t cd_hbnet_silence(struct cd_daemon *d, uint64_t id)
{
	struct cd_hbnet *h = d->hb;
	int64_t net = -1, ds = -1;

	cd_hbnet_ages(d, id, &net, &ds);
	/* A new leader has heard nothing yet from the host that led before it, most likely
	 * gone (an election took place): its silence began with the last ACK it sent here. */
	if (net < 0 && h && h->live_on && id == h->leader_id && id != d->id && h->ack_ms)
		net = (int64_t)(mono_ms() - h->ack_ms);
	return net;
}

bool cd_hbnet_isolated(struct cd_daemon *d, int64_t *contact_age_ms)
{
	struct cd_hbnet *h = d->hb;

	if (!h) {
		*contact_age_ms = -1;
		return false;
	}
	*contact_age_ms = (int64_t)(mono_ms() - h->iso.last_contact_ms);
	return h->iso.isolated;
}

bool cd_hbnet_clock(struct cd_daemon *d, uint64_t id, int64_t *offset_us)
{
	struct cd_hbnet *h = d->hb;

	*offset_us = 0;
	if (!h)
		return false;
	if (id == d->id) {
		*offset_us = h->clock_known ? h->clock_us : 0;
		return h->clock_known;
	}
	if (h->live_on) {
		for (unsigned i = 0; i < h->n_seqs; i++) {
			if (h->seqs[i].id == id) {
				*offset_us = h->seqs[i].clock_known ? h->seqs[i].clock_us : 0;
				return h->seqs[i].clock_known;
			}
		}
		return false;
	}
	for (unsigned i = 0; i < h->n_view; i++) {
		if (h->view[i].id == id) {
			*offset_us = h->view[i].clock_known ? h->view[i].clock_us : 0;
			return h->view[i].clock_known;
		}
	}
	return false;
}
