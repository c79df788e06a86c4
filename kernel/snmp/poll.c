/*
 * keel-snmpd's look at the host: vmkernel's host info and VM list, clusterd's status and
 * events, and snmp.conf from the config store, each one framed request (lib/frame.h) on a
 * fresh connection to the daemon's control socket, answered within 3 s.
 *
 * Failure modes: a socket that cannot be reached, a reply that does not come in time or
 * does not decode is an error with the socket's path in err; clusterd missing is not (the
 * host is then standalone).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "kernel/snmp/daemon.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "vmk.pb-c.h"

#define REPLY_MAX  (16u << 20)
#define TIMEOUT_MS 3000

/* One request, its reply's bytes in in. */
static int roundtrip(const char *sock, const ProtobufCMessage *req, struct kb_buf *in,
		     struct kb_errmsg *err)
{
	struct pollfd p;
	int fd, rv;

	fd = kb_unix_connect(sock);
	if (fd < 0) {
		kb_errmsg_setf(err, "cannot reach %s: %s", sock, kb_strerror(fd));
		return fd;
	}
	rv = kb_frame_send_pb(fd, req);
	p.fd = fd;
	p.events = POLLIN;
	if (rv == 0 && poll(&p, 1, TIMEOUT_MS) <= 0)
		rv = KB_ETIMEOUT;
	if (rv == 0)
		rv = kb_frame_recv(fd, in, REPLY_MAX);
	close(fd);
	if (rv)
		kb_errmsg_setf(err, "%s: %s", sock, kb_strerror(rv));
	return rv;
}

static Keel__Vmk__VmkReply *vmk_call(const char *sock, Keel__Vmk__VmkRequest *req,
				     struct kb_errmsg *err)
{
	Keel__Vmk__VmkReply *rp = NULL;
	struct kb_buf in;

	kb_buf_init(&in, REPLY_MAX);
	if (roundtrip(sock, &req->base, &in, err) == 0) {
		rp = keel__vmk__vmk_reply__unpack(NULL, in.len, in.data);
		if (rp == NULL)
			kb_errmsg_setf(err, "%s: the reply does not decode", sock);
	}
	kb_buf_close(&in);
	return rp;
}

int ksnmp__poll_vmk(const char *sock, struct ksnmp_snapshot *s, struct kb_errmsg *err)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkHostInfo hi = KEEL__VMK__VMK_HOST_INFO__INIT;
	Keel__Vmk__VmkVmList vl = KEEL__VMK__VMK_VM_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	int rv = 0;

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_HOST_INFO;
	req.host_info = &hi;
	rp = vmk_call(sock, &req, err);
	if (rp == NULL)
		return KB_EPROTO;
	if (rp->code != 0 || rp->host == NULL) {
		kb_errmsg_setf(err, "vmkernel host info: %s",
			       rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
		rv = rp->code ? rp->code : KB_EPROTO;
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
		return rv;
	}
	const Keel__Vmk__HostInfo *h = rp->host;
	s->host_ok = true;
	snprintf(s->hostname, sizeof(s->hostname), "%s", h->hostname);
	snprintf(s->version, sizeof(s->version), "%s", h->version);
	s->cpus = h->cpus;
	s->cpu_mhz = h->cpu_mhz;
	s->cpu_used_mhz = h->cpu_used_mhz < 0 ? 0 : (uint32_t)(h->cpu_used_mhz + 0.5);
	s->mem_bytes = h->mem_bytes;
	s->mem_used_bytes = h->mem_used_bytes;
	s->mem_reserved_bytes = h->mem_reserved_bytes;
	s->uptime_ms = h->uptime_ms;
	s->vms_registered = h->vms_registered;
	s->vms_powered_on = h->vms_powered_on;
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	req.vm_list = &vl;
	rp = vmk_call(sock, &req, err);
	if (rp == NULL)
		return KB_EPROTO;
	if (rp->code != 0) {
		kb_errmsg_setf(err, "vmkernel VM list: %s",
			       rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
		rv = rp->code;
		goto out;
	}
	s->vms = kb_calloc(rp->n_vms ? rp->n_vms : 1, sizeof(*s->vms));
	if (s->vms == NULL) {
		rv = -ENOMEM;
		kb_errmsg_setf(err, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < rp->n_vms; i++) {
		const Keel__Vmk__VmInfo *v = rp->vms[i];
		struct ksnmp_vm *o = &s->vms[s->n_vms++];
		snprintf(o->uuid, sizeof(o->uuid), "%s", v->uuid);
		snprintf(o->name, sizeof(o->name), "%s", v->name);
		o->power = ksnmp_power_from_string(v->power_state);
		o->vcpus = v->spec ? v->spec->numvcpus : 0;
		o->mem_mib = v->spec ? v->spec->memsize_mib : 0;
		snprintf(o->host, sizeof(o->host), "%s", s->hostname);
		o->uptime_ms = o->power == KSNMP_POWER_ON ? v->powered_on_ms : 0;
	}
out:
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return rv;
}

static Keel__Cluster__ClusterReply *cd_call(const char *sock, Keel__Cluster__ClusterRequest *req,
					    struct kb_errmsg *err, int *rv)
{
	Keel__Cluster__ClusterReply *rp = NULL;
	struct kb_buf in;

	kb_buf_init(&in, REPLY_MAX);
	*rv = roundtrip(sock, &req->base, &in, err);
	if (*rv == 0) {
		rp = keel__cluster__cluster_reply__unpack(NULL, in.len, in.data);
		if (rp == NULL) {
			kb_errmsg_setf(err, "%s: the reply does not decode", sock);
			*rv = KB_EPROTO;
		}
	}
	kb_buf_close(&in);
	return rp;
}

int ksnmp__poll_cluster(const char *sock, struct ksnmp_snapshot *s, uint64_t *since,
			struct kb_errmsg *err)
{
	Keel__Cluster__ClusterRequest req = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest sr = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	Keel__Cluster__ClusterEventsRequest er = KEEL__CLUSTER__CLUSTER_EVENTS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	int rv;

	if (access(sock, F_OK) != 0)
		return 0; /* no clusterd here: standalone */
	req.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	req.status = &sr;
	rp = cd_call(sock, &req, err, &rv);
	if (rp == NULL)
		return rv == -ECONNREFUSED || rv == -ENOENT ? 0 : rv;
	if (rp->code != 0 || rp->status == NULL || rp->status->name[0] == '\0') {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return 0; /* clusterd runs, but the host is in no cluster */
	}
	const Keel__Cluster__ClusterStatus *st = rp->status;
	s->in_cluster = true;
	snprintf(s->cluster_name, sizeof(s->cluster_name), "%s", st->name);
	s->node_id = st->node_id;
	s->leader_id = st->leader_id;
	s->isolated = st->isolated;
	s->ha_enabled = st->ha_enabled;
	s->failure_timeout_ms = st->failure_timeout_ms;
	s->admission_failures = st->admission_failures;
	s->hosts = kb_calloc(st->n_hosts ? st->n_hosts : 1, sizeof(*s->hosts));
	struct ksnmp_vm *vms = kb_realloc(s->vms, (s->n_vms + st->n_vms + 1) * sizeof(*vms));
	if (s->hosts == NULL || vms == NULL) {
		if (vms)
			s->vms = vms;
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	s->vms = vms;
	for (size_t i = 0; i < st->n_hosts; i++) {
		const Keel__Cluster__ClusterHostStatus *h = st->hosts[i];
		struct ksnmp_chost *o = &s->hosts[s->n_hosts++];
		o->id = h->id;
		snprintf(o->name, sizeof(o->name), "%s", h->name);
		snprintf(o->address, sizeof(o->address), "%s", h->vmk0);
		o->state = ksnmp_host_state_from_cluster(h->state);
		o->vms = h->n_vms;
		o->maintenance = h->maintenance;
		if (h->id == st->leader_id)
			snprintf(s->leader_name, sizeof(s->leader_name), "%s", h->name);
	}
	size_t local = s->n_vms;
	for (size_t i = 0; i < st->n_vms; i++) {
		const Keel__Cluster__ClusterVmStatus *v = st->vms[i];
		struct ksnmp_vm *o = NULL;
		for (size_t j = 0; j < local; j++)
			if (strcmp(s->vms[j].uuid, v->uuid) == 0)
				o = &s->vms[j];
		if (o != NULL) {
			/* a VM this vmkernel knows: the cluster names its owner */
			if (v->owner_name[0])
				snprintf(o->host, sizeof(o->host), "%s", v->owner_name);
			continue;
		}
		o = &s->vms[s->n_vms++];
		memset(o, 0, sizeof(*o));
		snprintf(o->uuid, sizeof(o->uuid), "%s", v->uuid);
		snprintf(o->name, sizeof(o->name), "%s", v->name);
		o->power = ksnmp_power_from_cluster(v->desired_power);
		o->mem_mib = v->mem_mib;
		snprintf(o->host, sizeof(o->host), "%s", v->owner_name);
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);

	bool first = *since == KSNMP_EVENTS_UNSEEN;
	req.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS;
	req.events = &er;
	er.since = first ? 0 : *since;
	rp = cd_call(sock, &req, err, &rv);
	if (rp == NULL)
		return rv;
	if (rp->code != 0) {
		kb_errmsg_setf(err, "clusterd events: %s",
			       rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
		rv = rp->code;
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		return rv;
	}
	if (first)
		*since = 0;
	if (!first && rp->n_events) {
		s->events = kb_calloc(rp->n_events, sizeof(*s->events));
		if (s->events == NULL) {
			keel__cluster__cluster_reply__free_unpacked(rp, NULL);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < rp->n_events; i++) {
		const Keel__Cluster__Event *e = rp->events[i];
		if (e->seq > *since)
			*since = e->seq;
		if (first || s->events == NULL)
			continue;
		struct ksnmp_event *o = &s->events[s->n_events++];
		o->seq = e->seq;
		o->kind = e->kind;
		o->host = e->host;
		snprintf(o->vm, sizeof(o->vm), "%s", e->vm);
		snprintf(o->message, sizeof(o->message), "%s", e->message);
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return 0;
}

int ksnmp__fetch_conf(const char *sock, bool *found, struct kb_buf *out, uint64_t *generation,
		      struct kb_errmsg *err)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkCfgGet g = KEEL__VMK__VMK_CFG_GET__INIT;
	Keel__Vmk__VmkReply *rp;
	int rv = 0;

	*found = false;
	*generation = 0;
	g.path = KSNMP_CONF_PATH;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_CFG_GET;
	req.cfg_get = &g;
	rp = vmk_call(sock, &req, err);
	if (rp == NULL)
		return KB_EPROTO;
	if (rp->code == 0) {
		*found = true;
		*generation = rp->n_cfg_files ? rp->cfg_files[0]->generation : 1;
		if (kb_buf_append(out, rp->cfg_data.data, rp->cfg_data.len) < 0)
			rv = -ENOMEM;
	} else if (rp->code != KB_ENOTFOUND) {
		kb_errmsg_setf(err, "vmkernel: %s", rp->error ? rp->error : "error");
		rv = rp->code;
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return rv;
}
