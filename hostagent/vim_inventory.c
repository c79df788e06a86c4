/*
 * RetrieveInventory: the hosts, VMs, datastores and networks this host sees, and its
 * cluster (docs/hostd.md, "Methods"); and the gathering it shares with the change feed's
 * poller (hd_inv_gather, vim_feed.h).
 *
 * On a worker: clusterd's status (the cluster, its hosts and the VM registry) when the
 * host is in a cluster, and vmkernel's host info, VMs, datastores and portgroups. On the
 * loop: one Inventory. Hosts come from the cluster (or this host alone); VMs from the
 * cluster's registry (owner, epoch, desired power) completed with vmkernel's view of the
 * ones that live here (power state, size, datastore) — another host's VM shows its power
 * state as "" until hosts ask each other; a VM's FT state and secondary's host come from
 * the registry ("" while FT was never on). Requires System.Read on the root entity. The
 * objects carry the versions of the change feed (hd_feed_apply), Inventory.version its
 * version; when the feed cannot be made (out of memory) they are 0.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "hostagent/vim.h"
#include "hostagent/vim_feed.h"
#include "lib/buf.h"
#include "lib/frame.h"
#include "lib/heap.h"
#include "vim.pb-c.h"
#include "vmk.pb-c.h"

#define REPLY_MAX (64u << 20)

struct inv {
	uv_work_t work;
	struct hd_vim *v;
	hd_inv_cb cb;
	void *arg;
	Keel__Cluster__ClusterReply *cluster;
	Keel__Vmk__VmkReply *host, *vms, *dss, *pgs;
	int err;
	char error[KB_ERRMSG_SIZE];
};

static Keel__Vmk__VmkReply *vmk(struct inv *in, Keel__Vmk__VmkRequest *rq)
{
	size_t len = 0;
	uint8_t *p = hd_backend_call(in->v->vmk_sock, &rq->base, 30, REPLY_MAX, &len);
	Keel__Vmk__VmkReply *rp = p ? keel__vmk__vmk_reply__unpack(NULL, len, p) : NULL;

	kb_free(p);
	if (!rp && !in->err) {
		in->err = -EIO;
		snprintf(in->error, sizeof(in->error), "vmkernel at %s does not answer",
			 in->v->vmk_sock);
	}
	return rp;
}

static void work(uv_work_t *w)
{
	struct inv *in = w->data;
	Keel__Cluster__ClusterRequest crq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest cst = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkHostInfo hi = KEEL__VMK__VMK_HOST_INFO__INIT;
	Keel__Vmk__VmkVmList vl = KEEL__VMK__VMK_VM_LIST__INIT;
	Keel__Vmk__VmkDatastoreList dl = KEEL__VMK__VMK_DATASTORE_LIST__INIT;
	Keel__Vmk__VmkPortgroupList pl = KEEL__VMK__VMK_PORTGROUP_LIST__INIT;
	size_t len = 0;
	uint8_t *p;

	crq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	crq.status = &cst;
	p = hd_backend_call(in->v->cd_sock, &crq.base, 30, REPLY_MAX, &len);
	if (p)
		in->cluster = keel__cluster__cluster_reply__unpack(NULL, len, p);
	kb_free(p);
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_HOST_INFO;
	rq.host_info = &hi;
	in->host = vmk(in, &rq);
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_LIST;
	rq.vm_list = &vl;
	in->vms = vmk(in, &rq);
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_LIST;
	rq.datastore_list = &dl;
	in->dss = vmk(in, &rq);
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_LIST;
	rq.portgroup_list = &pl;
	in->pgs = vmk(in, &rq);
}

static const char *host_state(int s)
{
	static const char *const names[] = {"",	      "connected", "unreachable", "partitioned",
					    "failed", "isolated",  "maintenance", "left"};

	return s >= 0 && s < 8 ? names[s] : "";
}

static const char *raft_role(int r)
{
	static const char *const names[] = {"", "voter", "standby", "spare"};

	return r >= 0 && r < 4 ? names[r] : "";
}

static const char *power_word(int p)
{
	static const char *const names[] = {"", "poweredOff", "poweredOn", "suspended"};

	return p >= 0 && p < 4 ? names[p] : "";
}

/* A VM's FT state in the words of VmObject.ft_state (the cluster's own). */
static const char *ft_word(int s)
{
	static const char *const names[] = {"not protected", "needs secondary", "starting",
					    "protected"};

	return s >= 0 && s < 4 ? names[s] : "";
}

/* Ids live as long as the reply: a small arena of strings freed with the inventory. */
struct arena {
	char **s;
	size_t n, cap;
};

static char *keep(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *keep(struct arena *a, const char *fmt, ...)
{
	char buf[512], *s, **ns;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (a->n == a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 64;

		ns = kb_realloc(a->s, cap * sizeof(*ns));
		if (!ns)
			return "";
		a->s = ns;
		a->cap = cap;
	}
	s = kb_strdup(buf);
	if (!s)
		return "";
	a->s[a->n++] = s;
	return s;
}

static const Keel__Vmk__VmInfo *local_vm(const struct inv *in, const char *uuid)
{
	for (size_t i = 0; in->vms && i < in->vms->n_vms; i++)
		if (strcmp(in->vms->vms[i]->uuid, uuid) == 0)
			return in->vms->vms[i];
	return NULL;
}

static void fill_vm_local(Keel__Vim__VmObject *o, const Keel__Vmk__VmInfo *l)
{
	o->power_state = l->power_state;
	o->datastore = l->datastore;
	o->vmx_path = l->vmx_path;
	if (l->spec) {
		o->vcpus = l->spec->numvcpus;
		o->memory_mib = l->spec->memsize_mib;
		o->guest_kind = l->spec->guest_kind;
	}
}

static void done(uv_work_t *w, int status)
{
	struct inv *in = w->data;
	struct hd_vim *v = in->v;
	Keel__Vim__Inventory inv = KEEL__VIM__INVENTORY__INIT;
	Keel__Vim__ClusterObject co = KEEL__VIM__CLUSTER_OBJECT__INIT;
	const Keel__Cluster__ClusterStatus *cs =
	    in->cluster && in->cluster->code == 0 && in->cluster->status &&
		    in->cluster->status->name && in->cluster->status->name[0]
		? in->cluster->status
		: NULL;
	struct arena a = {0};
	Keel__Vim__HostObject *ho = NULL, **hp = NULL;
	Keel__Vim__VmObject *vo = NULL, **vp = NULL;
	Keel__Vim__DatastoreObject *dob = NULL, **dp = NULL;
	Keel__Vim__NetworkObject *no = NULL, **np = NULL;
	size_t nh = cs ? cs->n_hosts : 1, nv = 0, nd = in->dss ? in->dss->n_datastores : 0,
	       nn = in->pgs ? in->pgs->n_portgroups : 0, maxv;
	char *self = keep(&a, "host-%" PRIu64, v->host_id);
	struct hd_inv_result res = {.cluster_ok = in->cluster != NULL};

	if (status || in->err) {
		res.status = HD_UNAVAILABLE;
		res.error = in->err ? in->error : "the inventory could not be gathered";
		in->cb(v, &res, in->arg);
		goto out;
	}
	maxv = (cs ? cs->n_vms : 0) + (in->vms ? in->vms->n_vms : 0);
	ho = kb_calloc(nh ? nh : 1, sizeof(*ho));
	hp = kb_calloc(nh ? nh : 1, sizeof(*hp));
	vo = kb_calloc(maxv ? maxv : 1, sizeof(*vo));
	vp = kb_calloc(maxv ? maxv : 1, sizeof(*vp));
	dob = kb_calloc(nd ? nd : 1, sizeof(*dob));
	dp = kb_calloc(nd ? nd : 1, sizeof(*dp));
	no = kb_calloc(nn ? nn : 1, sizeof(*no));
	np = kb_calloc(nn ? nn : 1, sizeof(*np));
	if (!ho || !hp || !vo || !vp || !dob || !dp || !no || !np) {
		res.status = HD_RESOURCE_EXHAUSTED;
		res.error = "out of memory";
		in->cb(v, &res, in->arg);
		goto out;
	}
	/* hosts */
	for (size_t i = 0; i < nh; i++) {
		keel__vim__host_object__init(&ho[i]);
		if (cs) {
			const Keel__Cluster__ClusterHostStatus *h = cs->hosts[i];

			ho[i].id = keep(&a, "host-%" PRIu64, h->id);
			ho[i].name = h->name;
			ho[i].state = (char *)host_state(h->state);
			ho[i].raft_role = (char *)raft_role(h->raft_role);
			ho[i].vmk0 = h->vmk0;
			ho[i].maintenance =
			    h->maintenance || h->state == KEEL__CLUSTER__HOST_STATE__HOST_MAINTENANCE;
		} else {
			ho[i].id = self;
			ho[i].name = in->host && in->host->host ? in->host->host->hostname : "";
			ho[i].state = "connected";
		}
		if (in->host && in->host->host && strcmp(ho[i].id, self) == 0) {
			ho[i].cpu_mhz = in->host->host->cpus * in->host->host->cpu_mhz;
			ho[i].mem_mib = in->host->host->mem_bytes >> 20;
		}
		hp[i] = &ho[i];
	}
	/* VMs: the registry, then local VMs it does not know */
	for (size_t i = 0; cs && i < cs->n_vms; i++) {
		const Keel__Cluster__ClusterVmStatus *r = cs->vms[i];
		const Keel__Vmk__VmInfo *l = local_vm(in, r->uuid);

		keel__vim__vm_object__init(&vo[nv]);
		vo[nv].id = keep(&a, "vm-%s", r->uuid);
		vo[nv].name = r->name;
		vo[nv].uuid = r->uuid;
		vo[nv].host = keep(&a, "host-%" PRIu64, r->owner);
		vo[nv].epoch = r->epoch;
		vo[nv].desired_power = (char *)power_word(r->desired_power);
		vo[nv].vmx_path = r->vmx_path;
		vo[nv].power_state = "";
		if (r->ft) {
			vo[nv].ft_state = (char *)ft_word(r->ft->state);
			if (r->ft->secondary)
				vo[nv].ft_secondary_host =
				    keep(&a, "host-%" PRIu64, r->ft->secondary);
		}
		if (l && r->owner == v->host_id)
			fill_vm_local(&vo[nv], l);
		vp[nv] = &vo[nv];
		nv++;
	}
	for (size_t i = 0; in->vms && i < in->vms->n_vms; i++) {
		const Keel__Vmk__VmInfo *l = in->vms->vms[i];
		bool known = false;

		for (size_t k = 0; cs && k < cs->n_vms; k++)
			known = known || strcmp(cs->vms[k]->uuid, l->uuid) == 0;
		if (known)
			continue;
		keel__vim__vm_object__init(&vo[nv]);
		vo[nv].id = keep(&a, "vm-%s", l->uuid);
		vo[nv].name = l->name;
		vo[nv].uuid = l->uuid;
		vo[nv].host = self;
		vo[nv].desired_power = "";
		fill_vm_local(&vo[nv], l);
		vp[nv] = &vo[nv];
		nv++;
	}
	/* datastores and networks of this host */
	for (size_t i = 0; i < nd; i++) {
		const Keel__Vmk__DatastoreInfo *d = in->dss->datastores[i];

		keel__vim__datastore_object__init(&dob[i]);
		dob[i].id = keep(&a, "ds-%s", d->name);
		dob[i].name = d->name;
		dob[i].path = d->path;
		dob[i].shared = d->shared;
		dob[i].capacity = d->capacity;
		dob[i].free = d->free;
		dob[i].host = self;
		dp[i] = &dob[i];
	}
	for (size_t i = 0; i < nn; i++) {
		const Keel__Vmk__PortgroupInfo *pg = in->pgs->portgroups[i];

		keel__vim__network_object__init(&no[i]);
		no[i].id = keep(&a, "net-%s", pg->name);
		no[i].portgroup = pg->name;
		no[i].vswitch = pg->vswitch;
		no[i].vlan = pg->vlan;
		no[i].host = self;
		np[i] = &no[i];
	}
	if (cs) {
		co.id = keep(&a, "cluster-%s", cs->cluster_id);
		co.name = cs->name;
		co.leader = keep(&a, "host-%" PRIu64, cs->leader_id);
		co.failure_timeout_ms = cs->failure_timeout_ms;
		co.isolation_response = cs->isolation_response == 3   ? "leave-powered-on"
					: cs->isolation_response == 2 ? "shutdown"
								      : "power-off";
		inv.cluster = &co;
	}
	inv.n_hosts = nh;
	inv.hosts = hp;
	inv.n_vms = nv;
	inv.vms = vp;
	inv.n_datastores = nd;
	inv.datastores = dp;
	inv.n_networks = nn;
	inv.networks = np;
	res.inv = &inv;
	in->cb(v, &res, in->arg);
out:
	for (size_t i = 0; i < a.n; i++)
		kb_free(a.s[i]);
	kb_free(a.s);
	kb_free(ho);
	kb_free(hp);
	kb_free(vo);
	kb_free(vp);
	kb_free(dob);
	kb_free(dp);
	kb_free(no);
	kb_free(np);
	if (in->cluster)
		keel__cluster__cluster_reply__free_unpacked(in->cluster, NULL);
	if (in->host)
		keel__vmk__vmk_reply__free_unpacked(in->host, NULL);
	if (in->vms)
		keel__vmk__vmk_reply__free_unpacked(in->vms, NULL);
	if (in->dss)
		keel__vmk__vmk_reply__free_unpacked(in->dss, NULL);
	if (in->pgs)
		keel__vmk__vmk_reply__free_unpacked(in->pgs, NULL);
	kb_free(in);
}

int hd_inv_gather(struct hd_vim *v, hd_inv_cb cb, void *arg)
{
	struct inv *in = kb_calloc(1, sizeof(*in));
	int rv;

	if (!in)
		return -ENOMEM;
	in->v = v;
	in->cb = cb;
	in->arg = arg;
	in->work.data = in;
	rv = uv_queue_work(v->loop, &in->work, work, done);
	if (rv != 0)
		kb_free(in);
	return rv;
}

/* ---- RetrieveInventory ------------------------------------------------------------------- */

struct retrieve {
	struct hd_call *call; /* NULL once the client went away */
};

static void on_cancel(struct hd_call *call, void *arg)
{
	struct retrieve *rt = arg;

	(void)call;
	rt->call = NULL;
}

static void retrieved(struct hd_vim *v, struct hd_inv_result *r, void *arg)
{
	struct retrieve *rt = arg;
	struct hd_feed *f;

	if (rt->call) {
		hd_call_on_cancel(rt->call, NULL, NULL);
		if (!r->inv) {
			hd_call_error(rt->call, r->status, "%s", r->error);
		} else {
			f = hd_vim_feed(v);
			if (f)
				hd_feed_apply(f, r->inv, r->cluster_ok);
			hd_call_reply(rt->call, &r->inv->base);
		}
	}
	kb_free(rt);
}

void hd_vim_retrieve_inventory(struct hd_call *call, const ProtobufCMessage *req)
{
	struct hd_vim *v = hd_call_server_data(call);
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};
	struct retrieve *rt;

	(void)req;
	if (!hd_vim_authorize(call, root, 1, "System.Read"))
		return;
	rt = kb_calloc(1, sizeof(*rt));
	if (!rt) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	rt->call = call;
	hd_call_on_cancel(call, on_cancel, rt);
	if (hd_inv_gather(v, retrieved, rt) != 0) {
		hd_call_on_cancel(call, NULL, NULL);
		kb_free(rt);
		hd_call_error(call, HD_UNAVAILABLE, "busy");
	}
}
