/*
 * Host configuration through the Vim API (hostagent/vim_host.h, docs/hostd-host.md).
 *
 * GetHostConfig: on the loop, the caller's System.Read on {root, host-<id>}; on a worker,
 * clusterd's status (this host's name and maintenance flag in a cluster), then vmkernel's
 * vmknic, portgroup and datastore lists; on the loop, one HostConfig. A host named in the
 * request that is not this one (neither "host-<id>" nor this host's name) is
 * FAILED_PRECONDITION naming it: its own hostd answers for it.
 *
 * ChangeVmknic, ChangePortgroup, ChangeDatastore, SetMaintenance: the privilege on
 * {root, host-<id>}, a check of the request's shape, then a Task at once. The changes of
 * this host run one at a time in the order they came (a queued one may be cancelled); each
 * runs on a worker: the host check as above, then vmkernel's requests (a vmknic change is
 * planned by hd_vmknic_plan against vmkernel's current adapter) or, for maintenance,
 * clusterd's ClusterMaintenance when the host is in a cluster, else DIR/maintenance. The
 * first refusal ends the task with vmkernel's or clusterd's text; the requests before it
 * stay done (vmkernel has no transactions).
 *
 * Failure modes: vmkernel or clusterd not answering (the task's error, or UNAVAILABLE for
 * GetHostConfig); a client gone before GetHostConfig's answer (dropped); out of memory
 * (RESOURCE_EXHAUSTED).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "cluster.pb-c.h"
#include "hostagent/vim.h"
#include "hostagent/vim_host.h"
#include "hostagent/vim_tasks.h"
#include "lib/buf.h"
#include "lib/file.h"
#include "lib/heap.h"
#include "lib/list.h"
#include "vim.pb-c.h"
#include "vmk.pb-c.h"

#define REPLY_MAX     (64u << 20)
#define VMK_TIMEOUT_S 60
#define CD_TIMEOUT_S  30
#define FIELD_MAX     256 /* the longest name, path or address a request may carry */

enum op_kind { OP_CONFIG, OP_VMKNIC, OP_PORTGROUP, OP_DATASTORE, OP_MAINTENANCE };

static const struct {
	const char *kind, *priv;
	const ProtobufCMessageDescriptor *desc;
} ops[] = {
    [OP_CONFIG] = {"GetHostConfig", "System.Read", &keel__vim__host_config_request__descriptor},
    [OP_VMKNIC] = {"ChangeVmknic", "Host.Config.Network", &keel__vim__vmknic_change__descriptor},
    [OP_PORTGROUP] = {"ChangePortgroup", "Host.Config.Network",
		      &keel__vim__portgroup_change__descriptor},
    [OP_DATASTORE] = {"ChangeDatastore", "Host.Config.Storage",
		      &keel__vim__datastore_change__descriptor},
    [OP_MAINTENANCE] = {"SetMaintenance", "Host.Config.Maintenance",
			&keel__vim__maintenance_request__descriptor},
};

/* One call, from the handler to its answer (GetHostConfig) or to the end of its task. */
struct hostop {
	struct kb_list link; /* in `queue` while its task waits or runs */
	uv_work_t work;
	struct hd_vim *v;
	struct hd_call *call; /* GetHostConfig: NULL once the client went away */
	enum op_kind kind;
	char user[HOSTD_AUTH_NAME_MAX + 1];
	char self[40];	      /* "host-<id>" */
	ProtobufCMessage *rq; /* our copy of the request */
	const char *host;     /* the request's host field, in rq */
	struct hd_task *task; /* held */
	bool elsewhere;	      /* the host named is not this one */
	char where[80];	      /* then its vmk0 when the cluster knows it, else "" */
	int code;	      /* of the work */
	char error[KB_ERRMSG_SIZE];
	char result[256];
	/* GetHostConfig */
	Keel__Vmk__VmkReply *nics, *pgs, *dss;
	bool maintenance;
};

/* Changes of this host with a task, queued or running, oldest first (loop thread only). */
static struct kb_list queue = KB_LIST_INIT(queue);

static void op_free(struct hostop *op)
{
	if (op->task)
		hd_task_release(op->task);
	if (op->rq)
		protobuf_c_message_free_unpacked(op->rq, NULL);
	if (op->nics)
		keel__vmk__vmk_reply__free_unpacked(op->nics, NULL);
	if (op->pgs)
		keel__vmk__vmk_reply__free_unpacked(op->pgs, NULL);
	if (op->dss)
		keel__vmk__vmk_reply__free_unpacked(op->dss, NULL);
	kb_free(op);
}

/* ---- the vmknic planner (pure) --------------------------------------------------------------- */

static bool has_tag(char **tags, size_t n, const char *tag)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(tags[i], tag) == 0)
			return true;
	return false;
}

/* Appends a step when there is room; returns the count the plan needs (past max: full). */
static size_t push(struct hd_vmknic_step *steps, size_t max, size_t k,
		   enum hd_vmknic_step_kind kind, const char *tag)
{
	if (k < max) {
		steps[k].kind = kind;
		steps[k].tag = tag;
	}
	return k + 1;
}

int hd_vmknic_plan(const Keel__Vmk__VmknicInfo *cur, const Keel__Vim__Vmknic *want,
		   struct hd_vmknic_step *steps, size_t max, size_t *n, char *why, size_t why_size)
{
	char addr[80];
	size_t k = 0;

	*n = 0;
	if (want->n_tags > HD_HOST_TAGS_MAX) {
		snprintf(why, why_size, "at most %d tags on a vmknic", HD_HOST_TAGS_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < want->n_tags; i++)
		if (has_tag(want->tags, i, want->tags[i])) {
			snprintf(why, why_size, "tag %.64s is named twice", want->tags[i]);
			return -EINVAL;
		}
	if (!cur) {
		if (max < 1)
			return -ENOSPC;
		steps[0].kind = HD_VMKNIC_ADD;
		steps[0].tag = NULL;
		*n = 1;
		return 0;
	}
	if (want->portgroup && want->portgroup[0] && strcmp(want->portgroup, cur->portgroup)) {
		snprintf(why, why_size,
			 "%.32s is on portgroup %.64s, not %.64s: remove it and add it again to "
			 "move it",
			 cur->name, cur->portgroup, want->portgroup);
		return -EINVAL;
	}
	if (want->netstack && want->netstack[0] && strcmp(want->netstack, cur->netstack)) {
		snprintf(why, why_size,
			 "%.32s is in netstack %.64s, not %.64s: remove it and add it again to "
			 "move it",
			 cur->name, cur->netstack, want->netstack);
		return -EINVAL;
	}
	snprintf(addr, sizeof(addr), "%s/%" PRIu32, cur->ipv4, cur->prefix);
	if (want->ipv4 && want->ipv4[0] && strcmp(want->ipv4, addr) != 0)
		k = push(steps, max, k, HD_VMKNIC_SET_IP, NULL);
	if (want->mtu && want->mtu != cur->mtu)
		k = push(steps, max, k, HD_VMKNIC_SET_MTU, NULL);
	for (size_t i = 0; i < cur->n_tags; i++)
		if (!has_tag(want->tags, want->n_tags, cur->tags[i]))
			k = push(steps, max, k, HD_VMKNIC_TAG_REMOVE, cur->tags[i]);
	for (size_t i = 0; i < want->n_tags; i++)
		if (!has_tag(cur->tags, cur->n_tags, want->tags[i]))
			k = push(steps, max, k, HD_VMKNIC_TAG_ADD, want->tags[i]);
	if (k > max)
		return -ENOSPC;
	*n = k;
	return 0;
}

/* ---- the maintenance file (workers) ---------------------------------------------------------- */

bool hd_host_maintenance_get(const char *state_dir)
{
	char path[PATH_MAX + 16];
	struct kb_errmsg e;
	struct kb_buf b;
	bool on;

	snprintf(path, sizeof(path), "%s/maintenance", state_dir);
	kb_buf_init(&b, 0);
	on = kb_file_read_small(path, 64, &b, &e) == 0 && b.len >= 1 && b.data[0] == '1';
	kb_buf_close(&b);
	return on;
}

int hd_host_maintenance_set(const char *state_dir, bool enter, struct kb_errmsg *e)
{
	char path[PATH_MAX + 16];
	int rv;

	snprintf(path, sizeof(path), "%s/maintenance", state_dir);
	rv = kb_file_write_atomic(path, enter ? "1\n" : "0\n", 2, 0644, e);
	return rv == KB_ENOTSYNCED ? 0 : rv;
}

/* ---- the backends (workers) ------------------------------------------------------------------ */

/* vmkernel's reply, or NULL with op->code and op->error set. */
static Keel__Vmk__VmkReply *vmk(struct hostop *op, Keel__Vmk__VmkRequest *rq)
{
	size_t len = 0;
	uint8_t *p = hd_backend_call(op->v->vmk_sock, &rq->base, VMK_TIMEOUT_S, REPLY_MAX, &len);
	Keel__Vmk__VmkReply *rp = p ? keel__vmk__vmk_reply__unpack(NULL, len, p) : NULL;

	kb_free(p);
	if (!rp) {
		op->code = -EIO;
		snprintf(op->error, sizeof(op->error), "vmkernel at %s does not answer",
			 op->v->vmk_sock);
	}
	return rp;
}

/* One vmkernel request whose reply only says yes or no. 0, or op->code with op->error
 * "<what>: <vmkernel's text>". */
static int vmk_do(struct hostop *op, Keel__Vmk__VmkRequest *rq, const char *what)
{
	Keel__Vmk__VmkReply *rp = vmk(op, rq);

	if (!rp)
		return op->code;
	op->code = rp->code;
	if (rp->code)
		snprintf(op->error, sizeof(op->error), "%s: %s", what,
			 rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	return op->code;
}

/* clusterd's status when this host is in a cluster; NULL when it is not, or clusterd does
 * not answer (treated as standalone). */
static Keel__Cluster__ClusterReply *cluster_status(struct hostop *op)
{
	Keel__Cluster__ClusterRequest crq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest cst = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp = NULL;
	size_t len = 0;
	uint8_t *p;

	crq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	crq.status = &cst;
	p = hd_backend_call(op->v->cd_sock, &crq.base, CD_TIMEOUT_S, REPLY_MAX, &len);
	if (p)
		rp = keel__cluster__cluster_reply__unpack(NULL, len, p);
	kb_free(p);
	if (rp && (rp->code || !rp->status || !rp->status->name || !rp->status->name[0])) {
		keel__cluster__cluster_reply__free_unpacked(rp, NULL);
		rp = NULL;
	}
	return rp;
}

static const Keel__Cluster__ClusterHostStatus *self_in(const struct hostop *op,
						       const Keel__Cluster__ClusterReply *cs)
{
	for (size_t i = 0; cs && i < cs->status->n_hosts; i++)
		if (cs->status->hosts[i]->id == op->v->host_id)
			return cs->status->hosts[i];
	return NULL;
}

/* Whether op->host names this host: "", "host-<id>", vmkernel's host name or the
 * cluster's name of this host. Sets op->elsewhere when it does not. */
static void check_host(struct hostop *op, const Keel__Cluster__ClusterReply *cs)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkHostInfo hi = KEEL__VMK__VMK_HOST_INFO__INIT;
	const Keel__Cluster__ClusterHostStatus *me = self_in(op, cs);
	Keel__Vmk__VmkReply *rp;

	op->elsewhere = false;
	if (!op->host || !op->host[0] || strcmp(op->host, op->self) == 0)
		return;
	if (me && me->name && strcmp(op->host, me->name) == 0)
		return;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_HOST_INFO;
	rq.host_info = &hi;
	rp = vmk(op, &rq);
	if (!rp)
		return;
	op->elsewhere = !(rp->code == 0 && rp->host && strcmp(op->host, rp->host->hostname) == 0);
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
	for (size_t i = 0; op->elsewhere && cs && i < cs->status->n_hosts; i++) {
		const Keel__Cluster__ClusterHostStatus *h = cs->status->hosts[i];
		char id[40];

		snprintf(id, sizeof(id), "host-%" PRIu64, h->id);
		if ((h->name && strcmp(op->host, h->name) == 0) || strcmp(op->host, id) == 0) {
			/* "A.B.C.D:port" of its Raft listener: the address, not the port */
			snprintf(op->where, sizeof(op->where), "%.*s",
				 (int)strcspn(h->vmk0 ? h->vmk0 : "", ":"), h->vmk0 ? h->vmk0 : "");
			break;
		}
	}
}

static void config_work(uv_work_t *w)
{
	struct hostop *op = w->data;
	Keel__Cluster__ClusterReply *cs = cluster_status(op);
	const Keel__Cluster__ClusterHostStatus *me = self_in(op, cs);
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmknicList nl = KEEL__VMK__VMK_VMKNIC_LIST__INIT;
	Keel__Vmk__VmkPortgroupList pl = KEEL__VMK__VMK_PORTGROUP_LIST__INIT;
	Keel__Vmk__VmkDatastoreList dl = KEEL__VMK__VMK_DATASTORE_LIST__INIT;
	Keel__Vmk__VmkReply **outs[] = {&op->nics, &op->pgs, &op->dss};

	check_host(op, cs);
	if (op->code || op->elsewhere)
		goto out;
	op->maintenance =
	    cs ? me && (me->maintenance || me->state == KEEL__CLUSTER__HOST_STATE__HOST_MAINTENANCE)
	       : hd_host_maintenance_get(op->v->state_dir);
	for (size_t i = 0; i < 3; i++) {
		if (i == 0) {
			rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_LIST;
			rq.vmknic_list = &nl;
		} else if (i == 1) {
			rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_LIST;
			rq.portgroup_list = &pl;
		} else {
			rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_LIST;
			rq.datastore_list = &dl;
		}
		*outs[i] = vmk(op, &rq);
		if (!*outs[i])
			break;
		if ((*outs[i])->code) {
			op->code = (*outs[i])->code;
			snprintf(op->error, sizeof(op->error), "vmkernel: %s",
				 (*outs[i])->error ? (*outs[i])->error : "");
			break;
		}
	}
out:
	if (cs)
		keel__cluster__cluster_reply__free_unpacked(cs, NULL);
}

static void vmknic_run(struct hostop *op)
{
	const Keel__Vim__VmknicChange *ch = (const Keel__Vim__VmknicChange *)op->rq;
	const Keel__Vim__Vmknic *want = ch->vmknic;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmknicList nl = KEEL__VMK__VMK_VMKNIC_LIST__INIT;
	Keel__Vmk__VmkVmknicRemove rm = KEEL__VMK__VMK_VMKNIC_REMOVE__INIT;
	struct hd_vmknic_step steps[HD_VMKNIC_STEPS_MAX];
	const Keel__Vmk__VmknicInfo *cur = NULL;
	Keel__Vmk__VmkReply *list;
	char what[128];
	size_t n = 0;
	int rv;

	snprintf(op->result, sizeof(op->result), "%s", want->name);
	if (ch->remove) {
		rm.name = want->name;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_REMOVE;
		rq.vmknic_remove = &rm;
		snprintf(what, sizeof(what), "removing %.64s", want->name);
		vmk_do(op, &rq, what);
		return;
	}
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_LIST;
	rq.vmknic_list = &nl;
	list = vmk(op, &rq);
	if (!list)
		return;
	for (size_t i = 0; list->code == 0 && i < list->n_vmknics; i++)
		if (strcmp(list->vmknics[i]->name, want->name) == 0)
			cur = list->vmknics[i];
	rv =
	    hd_vmknic_plan(cur, want, steps, HD_VMKNIC_STEPS_MAX, &n, op->error, sizeof(op->error));
	if (rv) {
		op->code = rv;
		if (rv == -ENOSPC)
			snprintf(op->error, sizeof(op->error), "too many changes at once");
		goto out;
	}
	for (size_t i = 0; i < n && op->code == 0; i++) {
		Keel__Vmk__VmkVmknicAdd add = KEEL__VMK__VMK_VMKNIC_ADD__INIT;
		Keel__Vmk__VmkVmknicSetIp ip = KEEL__VMK__VMK_VMKNIC_SET_IP__INIT;
		Keel__Vmk__VmkVmknicSetMtu mtu = KEEL__VMK__VMK_VMKNIC_SET_MTU__INIT;
		Keel__Vmk__VmkVmknicTagAdd ta = KEEL__VMK__VMK_VMKNIC_TAG_ADD__INIT;
		Keel__Vmk__VmkVmknicTagRemove tr = KEEL__VMK__VMK_VMKNIC_TAG_REMOVE__INIT;

		switch (steps[i].kind) {
		case HD_VMKNIC_ADD:
			add.name = want->name;
			add.portgroup = want->portgroup;
			add.netstack = want->netstack;
			add.ipv4 = want->ipv4;
			add.mtu = want->mtu;
			add.n_tags = want->n_tags;
			add.tags = want->tags;
			rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_ADD;
			rq.vmknic_add = &add;
			snprintf(what, sizeof(what), "adding %.64s", want->name);
			break;
		case HD_VMKNIC_SET_IP:
			ip.name = want->name;
			ip.ipv4 = want->ipv4;
			ip.gateway = cur->gateway; /* the API does not carry it: kept */
			rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_SET_IP;
			rq.vmknic_set_ip = &ip;
			snprintf(what, sizeof(what), "setting the address of %.64s", want->name);
			break;
		case HD_VMKNIC_SET_MTU:
			mtu.name = want->name;
			mtu.mtu = want->mtu;
			rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_SET_MTU;
			rq.vmknic_set_mtu = &mtu;
			snprintf(what, sizeof(what), "setting the MTU of %.64s", want->name);
			break;
		case HD_VMKNIC_TAG_ADD:
			ta.name = want->name;
			ta.tag = (char *)steps[i].tag;
			rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_TAG_ADD;
			rq.vmknic_tag_add = &ta;
			snprintf(what, sizeof(what), "tagging %.64s", want->name);
			break;
		case HD_VMKNIC_TAG_REMOVE:
			tr.name = want->name;
			tr.tag = (char *)steps[i].tag;
			rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_TAG_REMOVE;
			rq.vmknic_tag_remove = &tr;
			snprintf(what, sizeof(what), "untagging %.64s", want->name);
			break;
		}
		vmk_do(op, &rq, what);
	}
out:
	keel__vmk__vmk_reply__free_unpacked(list, NULL);
}

static void portgroup_run(struct hostop *op)
{
	const Keel__Vim__PortgroupChange *ch = (const Keel__Vim__PortgroupChange *)op->rq;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkPortgroupAdd add = KEEL__VMK__VMK_PORTGROUP_ADD__INIT;
	Keel__Vmk__VmkPortgroupRemove rm = KEEL__VMK__VMK_PORTGROUP_REMOVE__INIT;
	char what[128];

	snprintf(op->result, sizeof(op->result), "net-%s", ch->name);
	if (ch->remove) {
		rm.name = ch->name;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_REMOVE;
		rq.portgroup_remove = &rm;
		snprintf(what, sizeof(what), "removing portgroup %.64s", ch->name);
	} else {
		add.name = ch->name;
		add.vswitch = ch->vswitch;
		add.vlan = ch->vlan;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_ADD;
		rq.portgroup_add = &add;
		snprintf(what, sizeof(what), "adding portgroup %.64s", ch->name);
	}
	vmk_do(op, &rq, what);
}

static void datastore_run(struct hostop *op)
{
	const Keel__Vim__DatastoreChange *ch = (const Keel__Vim__DatastoreChange *)op->rq;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkDatastoreAdd add = KEEL__VMK__VMK_DATASTORE_ADD__INIT;
	Keel__Vmk__VmkDatastoreRemove rm = KEEL__VMK__VMK_DATASTORE_REMOVE__INIT;
	char what[128];

	snprintf(op->result, sizeof(op->result), "ds-%s", ch->name);
	if (ch->remove) {
		rm.name = ch->name;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_REMOVE;
		rq.datastore_remove = &rm;
		snprintf(what, sizeof(what), "removing datastore %.64s", ch->name);
	} else {
		add.name = ch->name;
		add.path = ch->path;
		add.shared = ch->shared;
		rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_ADD;
		rq.datastore_add = &add;
		snprintf(what, sizeof(what), "adding datastore %.64s", ch->name);
	}
	vmk_do(op, &rq, what);
}

/* In a cluster: clusterd's ClusterMaintenance (any member may be named; clusterd checks
 * the name). Standalone: DIR/maintenance, for this host only. */
static void maintenance_run(struct hostop *op, Keel__Cluster__ClusterReply *cs)
{
	const Keel__Vim__MaintenanceRequest *mr = (const Keel__Vim__MaintenanceRequest *)op->rq;
	Keel__Cluster__ClusterRequest crq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterMaintenance cm = KEEL__CLUSTER__CLUSTER_MAINTENANCE__INIT;
	Keel__Cluster__ClusterReply *rp = NULL;
	const char *host = mr->host ? mr->host : "";
	struct kb_errmsg e;
	size_t len = 0;
	uint8_t *p;

	snprintf(op->result, sizeof(op->result), "%s", mr->enter ? "in maintenance" : "connected");
	if (!cs) {
		if (op->elsewhere) {
			op->code = -EINVAL;
			snprintf(op->error, sizeof(op->error),
				 "host %.64s is not this host (%s) and this host is in no cluster: "
				 "call that host's API",
				 host, op->self);
			return;
		}
		op->code = hd_host_maintenance_set(op->v->state_dir, mr->enter, &e);
		if (op->code)
			snprintf(op->error, sizeof(op->error), "%s", e.msg);
		return;
	}
	/* clusterd takes a name or a decimal id; "" is this host. */
	if (strcmp(host, op->self) == 0)
		host = "";
	else if (strncmp(host, "host-", 5) == 0 && host[5])
		host += 5;
	cm.host = (char *)host;
	cm.enter = mr->enter;
	crq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_MAINTENANCE;
	crq.maintenance = &cm;
	p = hd_backend_call(op->v->cd_sock, &crq.base, CD_TIMEOUT_S, REPLY_MAX, &len);
	if (p)
		rp = keel__cluster__cluster_reply__unpack(NULL, len, p);
	kb_free(p);
	if (!rp) {
		op->code = -EIO;
		snprintf(op->error, sizeof(op->error), "clusterd at %s does not answer",
			 op->v->cd_sock);
		return;
	}
	op->code = rp->code;
	if (rp->code)
		snprintf(op->error, sizeof(op->error), "clusterd: %s",
			 rp->error && rp->error[0] ? rp->error : kb_strerror(rp->code));
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

static void change_work(uv_work_t *w)
{
	struct hostop *op = w->data;
	Keel__Cluster__ClusterReply *cs = cluster_status(op);

	check_host(op, cs);
	if (op->code)
		goto out;
	if (op->kind == OP_MAINTENANCE) {
		maintenance_run(op, cs);
		goto out;
	}
	if (op->elsewhere) {
		op->code = -EINVAL;
		snprintf(op->error, sizeof(op->error),
			 "host %.64s is not this host (%s): call that host's API", op->host,
			 op->self);
		goto out;
	}
	if (op->kind == OP_VMKNIC)
		vmknic_run(op);
	else if (op->kind == OP_PORTGROUP)
		portgroup_run(op);
	else
		datastore_run(op);
out:
	if (cs)
		keel__cluster__cluster_reply__free_unpacked(cs, NULL);
}

/* ---- GetHostConfig: the answer (loop) -------------------------------------------------------- */

static void config_cancel(struct hd_call *call, void *arg)
{
	struct hostop *op = arg;

	(void)call;
	op->call = NULL;
}

static void config_answer(struct hostop *op)
{
	Keel__Vim__HostConfig hc = KEEL__VIM__HOST_CONFIG__INIT;
	size_t nn = op->nics->n_vmknics, np = op->pgs->n_portgroups, nd = op->dss->n_datastores;
	Keel__Vim__Vmknic *nic = kb_calloc(nn + 1, sizeof(*nic)), **nicp;
	Keel__Vim__NetworkObject *pg = kb_calloc(np + 1, sizeof(*pg)), **pgp;
	Keel__Vim__DatastoreObject *ds = kb_calloc(nd + 1, sizeof(*ds)), **dsp;
	char(*ids)[FIELD_MAX + 8] = kb_calloc(nn + np + nd + 1, sizeof(*ids));

	nicp = kb_calloc(nn + 1, sizeof(*nicp));
	pgp = kb_calloc(np + 1, sizeof(*pgp));
	dsp = kb_calloc(nd + 1, sizeof(*dsp));
	if (!nic || !pg || !ds || !ids || !nicp || !pgp || !dsp) {
		hd_call_error(op->call, HD_RESOURCE_EXHAUSTED, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < nn; i++) {
		const Keel__Vmk__VmknicInfo *l = op->nics->vmknics[i];

		keel__vim__vmknic__init(&nic[i]);
		nic[i].name = l->name;
		nic[i].portgroup = l->portgroup;
		nic[i].netstack = l->netstack;
		if (l->ipv4[0])
			snprintf(ids[i], sizeof(ids[i]), "%s/%" PRIu32, l->ipv4, l->prefix);
		nic[i].ipv4 = ids[i];
		nic[i].mtu = l->mtu;
		nic[i].n_tags = l->n_tags;
		nic[i].tags = l->tags;
		nicp[i] = &nic[i];
	}
	for (size_t i = 0; i < np; i++) {
		const Keel__Vmk__PortgroupInfo *l = op->pgs->portgroups[i];

		keel__vim__network_object__init(&pg[i]);
		snprintf(ids[nn + i], sizeof(ids[0]), "net-%s", l->name);
		pg[i].id = ids[nn + i];
		pg[i].portgroup = l->name;
		pg[i].vswitch = l->vswitch;
		pg[i].vlan = l->vlan;
		pg[i].host = op->self;
		pgp[i] = &pg[i];
	}
	for (size_t i = 0; i < nd; i++) {
		const Keel__Vmk__DatastoreInfo *l = op->dss->datastores[i];

		keel__vim__datastore_object__init(&ds[i]);
		snprintf(ids[nn + np + i], sizeof(ids[0]), "ds-%s", l->name);
		ds[i].id = ids[nn + np + i];
		ds[i].name = l->name;
		ds[i].path = l->path;
		ds[i].shared = l->shared;
		ds[i].capacity = l->capacity;
		ds[i].free = l->free;
		ds[i].host = op->self;
		dsp[i] = &ds[i];
	}
	hc.host = op->self;
	hc.n_vmknics = nn;
	hc.vmknics = nicp;
	hc.n_portgroups = np;
	hc.portgroups = pgp;
	hc.n_datastores = nd;
	hc.datastores = dsp;
	hc.maintenance = op->maintenance;
	hd_call_reply(op->call, &hc.base);
out:
	kb_free(nic);
	kb_free(pg);
	kb_free(ds);
	kb_free(ids);
	kb_free(nicp);
	kb_free(pgp);
	kb_free(dsp);
}

static void config_done(uv_work_t *w, int status)
{
	struct hostop *op = w->data;

	if (!op->call)
		goto out;
	hd_call_on_cancel(op->call, NULL, NULL);
	if (status)
		hd_call_error(op->call, HD_UNAVAILABLE, "the host configuration could not be read");
	else if (op->code)
		hd_call_error(op->call, HD_UNAVAILABLE, "%s", op->error);
	else if (op->elsewhere && op->where[0])
		hd_call_error(op->call, HD_FAILED_PRECONDITION,
			      "host %s is not this host (%s): ask host %s's own API (its hostd "
			      "listens on %s)",
			      op->host, op->self, op->host, op->where);
	else if (op->elsewhere)
		hd_call_error(op->call, HD_FAILED_PRECONDITION,
			      "host %s is not this host (%s): ask host %s's own API", op->host,
			      op->self, op->host);
	else
		config_answer(op);
out:
	op_free(op);
}

/* ---- the changes: tasks, one at a time (loop) ------------------------------------------------ */

static void run_next(void);

static void change_done(uv_work_t *w, int status)
{
	struct hostop *op = w->data;
	struct hd_tasks *t = hd_vim_tasks(op->v);

	if (status)
		hd_task_fail(t, op->task, "the change could not run (%s)", uv_strerror(status));
	else if (op->code)
		hd_task_fail(t, op->task, "%s", op->error);
	else
		hd_task_succeed(t, op->task, op->result);
	kb_log(op->v->log, op->code ? KB_LOG_WARN : KB_LOG_INFO, "%s %s (%s) by %s: %s%s%s",
	       op->task->id, op->task->kind, op->task->target, op->user,
	       hd_task_state_name(op->task->state), op->code ? ": " : "",
	       op->code ? op->error : "");
	kb_list_del(&op->link);
	op_free(op);
	run_next();
}

/* Starts the oldest queued change unless one runs. */
static void run_next(void)
{
	struct kb_list *pos, *tmp;

	kb_list_for_each_safe(pos, tmp, &queue)
	{
		struct hostop *op = kb_list_entry(pos, struct hostop, link);
		struct hd_tasks *t = hd_vim_tasks(op->v);

		if (op->task->state == HD_TASK_RUNNING)
			return;
		if (op->task->state != HD_TASK_QUEUED) { /* cancelled while it waited */
			kb_list_del(&op->link);
			op_free(op);
			continue;
		}
		hd_task_start(t, op->task);
		op->work.data = op;
		if (uv_queue_work(op->v->loop, &op->work, change_work, change_done) != 0) {
			hd_task_fail(t, op->task, "no worker to run it");
			kb_list_del(&op->link);
			op_free(op);
			continue;
		}
		return;
	}
}

/* ---- handlers ---------------------------------------------------------------------------------- */

/* Authorizes the call on {root, host-<id>} and makes the op with our copy of the request;
 * NULL after answering the call. */
static struct hostop *op_new(struct hd_call *call, enum op_kind kind, const ProtobufCMessage *req)
{
	struct hd_vim *v = hd_call_server_data(call);
	char self[40];
	const char *path[] = {HOSTD_AUTH_ROOT_ENTITY, self};
	const char *user;
	struct hostop *op;
	size_t n;
	uint8_t *buf;

	snprintf(self, sizeof(self), "host-%" PRIu64, v->host_id);
	user = hd_vim_authorize(call, path, 2, ops[kind].priv);
	if (!user)
		return NULL;
	op = kb_calloc(1, sizeof(*op));
	n = protobuf_c_message_get_packed_size(req);
	buf = kb_malloc(n ? n : 1);
	if (op && buf) {
		protobuf_c_message_pack(req, buf);
		op->rq = protobuf_c_message_unpack(ops[kind].desc, NULL, n, buf);
	}
	kb_free(buf);
	if (!op || !op->rq) {
		if (op)
			op_free(op);
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	kb_list_init(&op->link);
	op->v = v;
	op->kind = kind;
	snprintf(op->user, sizeof(op->user), "%s", user);
	snprintf(op->self, sizeof(op->self), "%s", self);
	return op;
}

static bool too_long(const char *s)
{
	return s && strlen(s) >= FIELD_MAX;
}

void hd_vim_get_host_config(struct hd_call *call, const ProtobufCMessage *req)
{
	struct hostop *op;

	if (too_long(((const Keel__Vim__HostConfigRequest *)req)->host)) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "host is at most %d bytes", FIELD_MAX - 1);
		return;
	}
	op = op_new(call, OP_CONFIG, req);
	if (!op)
		return;
	op->host = ((const Keel__Vim__HostConfigRequest *)op->rq)->host;
	op->call = call;
	op->work.data = op;
	hd_call_on_cancel(call, config_cancel, op);
	if (uv_queue_work(op->v->loop, &op->work, config_work, config_done) != 0) {
		hd_call_on_cancel(call, NULL, NULL);
		op_free(op);
		hd_call_error(call, HD_UNAVAILABLE, "busy");
	}
}

/* Answers the call with a new task for op and queues the change. */
static void change_start(struct hd_call *call, struct hostop *op)
{
	struct hd_tasks *t = hd_vim_tasks(op->v);
	Keel__Vim__Task m;

	if (!t || hd_tasks_add(t, ops[op->kind].kind, op->self, op->user, &op->task) != 0) {
		op_free(op);
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	op->task->privilege = ops[op->kind].priv;
	hd_task_to_pb(op->task, &m);
	hd_call_reply(call, &m.base);
	kb_log(op->v->log, KB_LOG_INFO, "%s %s on %s by %s", op->task->id, op->task->kind, op->self,
	       op->user);
	kb_list_add_tail(&queue, &op->link);
	run_next();
}

void hd_vim_change_vmknic(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__VmknicChange *ch = (const Keel__Vim__VmknicChange *)req;
	const Keel__Vim__Vmknic *n = ch->vmknic;
	struct hostop *op;

	if (!n || !n->name || !n->name[0]) {
		hd_call_error(call, HD_INVALID_ARGUMENT,
			      "vmknic.name is required (vmk0, vmk1, ...)");
		return;
	}
	if (too_long(ch->host) || too_long(n->name) || too_long(n->portgroup) ||
	    too_long(n->netstack) || too_long(n->ipv4)) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "names and addresses are at most %d bytes",
			      FIELD_MAX - 1);
		return;
	}
	if (n->n_tags > HD_HOST_TAGS_MAX) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "at most %d tags on a vmknic",
			      HD_HOST_TAGS_MAX);
		return;
	}
	for (size_t i = 0; i < n->n_tags; i++)
		if (too_long(n->tags[i])) {
			hd_call_error(call, HD_INVALID_ARGUMENT, "a tag is at most %d bytes",
				      FIELD_MAX - 1);
			return;
		}
	op = op_new(call, OP_VMKNIC, req);
	if (!op)
		return;
	op->host = ((const Keel__Vim__VmknicChange *)op->rq)->host;
	change_start(call, op);
}

void hd_vim_change_portgroup(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__PortgroupChange *ch = (const Keel__Vim__PortgroupChange *)req;
	struct hostop *op;

	if (!ch->name || !ch->name[0]) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "the portgroup's name is required");
		return;
	}
	if (too_long(ch->host) || too_long(ch->name) || too_long(ch->vswitch)) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "names are at most %d bytes",
			      FIELD_MAX - 1);
		return;
	}
	if (ch->vlan > 4094) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "vlan is 0 (none) or 1 to 4094");
		return;
	}
	op = op_new(call, OP_PORTGROUP, req);
	if (!op)
		return;
	op->host = ((const Keel__Vim__PortgroupChange *)op->rq)->host;
	change_start(call, op);
}

void hd_vim_change_datastore(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__DatastoreChange *ch = (const Keel__Vim__DatastoreChange *)req;
	struct hostop *op;

	if (!ch->name || !ch->name[0]) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "the datastore's name is required");
		return;
	}
	if (too_long(ch->host) || too_long(ch->name)) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "names are at most %d bytes",
			      FIELD_MAX - 1);
		return;
	}
	if (ch->path && strlen(ch->path) >= PATH_MAX) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "path is at most %d bytes", PATH_MAX - 1);
		return;
	}
	if (!ch->remove && (!ch->path || ch->path[0] != '/')) {
		hd_call_error(call, HD_INVALID_ARGUMENT,
			      "path must be absolute: it names a directory on the host");
		return;
	}
	op = op_new(call, OP_DATASTORE, req);
	if (!op)
		return;
	op->host = ((const Keel__Vim__DatastoreChange *)op->rq)->host;
	change_start(call, op);
}

void hd_vim_set_maintenance(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__MaintenanceRequest *mr = (const Keel__Vim__MaintenanceRequest *)req;
	struct hostop *op;

	if (too_long(mr->host)) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "host is at most %d bytes", FIELD_MAX - 1);
		return;
	}
	op = op_new(call, OP_MAINTENANCE, req);
	if (!op)
		return;
	op->host = ((const Keel__Vim__MaintenanceRequest *)op->rq)->host;
	change_start(call, op);
}
