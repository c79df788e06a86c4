/*
 * A lab host's configuration, given through its vmkernel: the vSwitches with their
 * uplinks and portgroups, the shared datastore, and the VMkernel adapters.
 *
 * Each part is listed first and only what is missing is added, so configuring a host
 * again changes nothing. vmkernel keeps all of it in its own configuration and re-applies
 * it when it restarts. A vmkernel that does not know VMkernel adapters yet (it refuses the
 * list request as not supported) is configured without them.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mgmt-api/keel/lab.h"

#define CALL_MS 10000

struct vs_plan {
	const char *vswitch, *uplink;
	const char *portgroups[2];
};

static const struct vs_plan plan[KC_LAB_NICS] = {
    {"vSwitch0", "vmnic0", {"Management Network", "VM Network"}},
    {"vSwitch1", "vmnic1", {"VMotion", NULL}},
    {"vSwitch2", "vmnic2", {"FT Logging", NULL}},
};

struct vmk_plan {
	const char *name, *portgroup, *netstack, *tag;
};

static const struct vmk_plan vmks[KC_LAB_NICS] = {
    {"vmk0", "Management Network", "", "Management"},
    {"vmk1", "VMotion", "vmotion", "VMotion"},
    {"vmk2", "FT Logging", "", "FaultToleranceLogging"},
};

static bool listed(char **names, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

static int vswitches(const struct kc_lab *lab, int host, struct kb_errmsg *err)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVSwitchList list = KEEL__VMK__VMK_VSWITCH_LIST__INIT;
	Keel__Vmk__VmkReply *rp, *r2;
	int rc;

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_LIST;
	req.vswitch_list = &list;
	rc = kc_lab_call(lab, host, CALL_MS, &req, &rp, err);
	if (rc)
		return rc;
	for (int i = 0; i < KC_LAB_NICS && rc == 0; i++) {
		const Keel__Vmk__VSwitchInfo *have = NULL;

		for (size_t j = 0; j < rp->n_vswitches; j++)
			if (strcmp(rp->vswitches[j]->name, plan[i].vswitch) == 0)
				have = rp->vswitches[j];
		if (!have) {
			Keel__Vmk__VmkRequest q = KEEL__VMK__VMK_REQUEST__INIT;
			Keel__Vmk__VmkVSwitchAdd add = KEEL__VMK__VMK_VSWITCH_ADD__INIT;

			add.name = (char *)plan[i].vswitch;
			q.req_case = KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_ADD;
			q.vswitch_add = &add;
			rc = kc_lab_call(lab, host, CALL_MS, &q, &r2, err);
			if (rc)
				break;
			kc_reply_free(r2);
		}
		if (!have || !listed(have->uplinks, have->n_uplinks, plan[i].uplink)) {
			Keel__Vmk__VmkRequest q = KEEL__VMK__VMK_REQUEST__INIT;
			Keel__Vmk__VmkUplinkAdd add = KEEL__VMK__VMK_UPLINK_ADD__INIT;

			add.vswitch = (char *)plan[i].vswitch;
			add.nic = (char *)plan[i].uplink;
			q.req_case = KEEL__VMK__VMK_REQUEST__REQ_UPLINK_ADD;
			q.uplink_add = &add;
			rc = kc_lab_call(lab, host, CALL_MS, &q, &r2, err);
			if (rc == 0)
				kc_reply_free(r2);
		}
	}
	kc_reply_free(rp);
	return rc;
}

static int portgroups(const struct kc_lab *lab, int host, struct kb_errmsg *err)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkPortgroupList list = KEEL__VMK__VMK_PORTGROUP_LIST__INIT;
	Keel__Vmk__VmkReply *rp, *r2;
	int rc;

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_LIST;
	req.portgroup_list = &list;
	rc = kc_lab_call(lab, host, CALL_MS, &req, &rp, err);
	if (rc)
		return rc;
	for (int i = 0; i < KC_LAB_NICS && rc == 0; i++) {
		for (int p = 0; p < 2 && plan[i].portgroups[p] && rc == 0; p++) {
			Keel__Vmk__VmkRequest q = KEEL__VMK__VMK_REQUEST__INIT;
			Keel__Vmk__VmkPortgroupAdd add = KEEL__VMK__VMK_PORTGROUP_ADD__INIT;
			bool have = false;

			for (size_t j = 0; j < rp->n_portgroups; j++)
				if (strcmp(rp->portgroups[j]->name, plan[i].portgroups[p]) == 0)
					have = true;
			if (have)
				continue;
			add.name = (char *)plan[i].portgroups[p];
			add.vswitch = (char *)plan[i].vswitch;
			q.req_case = KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_ADD;
			q.portgroup_add = &add;
			rc = kc_lab_call(lab, host, CALL_MS, &q, &r2, err);
			if (rc == 0)
				kc_reply_free(r2);
		}
	}
	kc_reply_free(rp);
	return rc;
}

static int datastore(const struct kc_lab *lab, int host, struct kb_errmsg *err)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkDatastoreList list = KEEL__VMK__VMK_DATASTORE_LIST__INIT;
	Keel__Vmk__VmkDatastoreAdd add = KEEL__VMK__VMK_DATASTORE_ADD__INIT;
	Keel__Vmk__VmkReply *rp;
	char shared[PATH_MAX];
	bool have = false;
	int rc;

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_LIST;
	req.datastore_list = &list;
	rc = kc_lab_call(lab, host, CALL_MS, &req, &rp, err);
	if (rc)
		return rc;
	for (size_t j = 0; j < rp->n_datastores; j++)
		if (strcmp(rp->datastores[j]->name, "shared1") == 0)
			have = true;
	kc_reply_free(rp);
	if (have)
		return 0;
	kc_lab_shared_dir(lab, shared, sizeof(shared));
	add.name = "shared1";
	add.path = shared;
	add.shared = true;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_ADD;
	req.datastore_add = &add;
	rc = kc_lab_call(lab, host, CALL_MS, &req, &rp, err);
	if (rc == 0)
		kc_reply_free(rp);
	return rc;
}

static int netstack(const struct kc_lab *lab, int host, const char *name, struct kb_errmsg *err)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkNetstackList list = KEEL__VMK__VMK_NETSTACK_LIST__INIT;
	Keel__Vmk__VmkNetstackAdd add = KEEL__VMK__VMK_NETSTACK_ADD__INIT;
	Keel__Vmk__VmkReply *rp;
	bool have = false;
	int rc;

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_NETSTACK_LIST;
	req.netstack_list = &list;
	rc = kc_lab_call(lab, host, CALL_MS, &req, &rp, err);
	if (rc)
		return rc;
	for (size_t j = 0; j < rp->n_netstacks; j++)
		if (strcmp(rp->netstacks[j]->name, name) == 0)
			have = true;
	kc_reply_free(rp);
	if (have)
		return 0;
	add.name = (char *)name;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_NETSTACK_ADD;
	req.netstack_add = &add;
	rc = kc_lab_call(lab, host, CALL_MS, &req, &rp, err);
	if (rc == 0)
		kc_reply_free(rp);
	return rc;
}

static int vmknics(const struct kc_lab *lab, int host, bool *supported, struct kb_errmsg *err)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmknicList list = KEEL__VMK__VMK_VMKNIC_LIST__INIT;
	Keel__Vmk__VmkReply *rp;
	int rc;

	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_LIST;
	req.vmknic_list = &list;
	rc = kc_lab_call(lab, host, CALL_MS, &req, &rp, err);
	*supported = rc != KB_ENOTSUP && rc != KB_EPROTO;
	if (!*supported)
		return 0;
	if (rc)
		return rc;
	for (int i = 0; i < KC_LAB_NICS && rc == 0; i++) {
		Keel__Vmk__VmkRequest q = KEEL__VMK__VMK_REQUEST__INIT;
		Keel__Vmk__VmkVmknicAdd add = KEEL__VMK__VMK_VMKNIC_ADD__INIT;
		Keel__Vmk__VmkReply *r2;
		char addr[32], *tags[1];
		bool have = false;

		for (size_t j = 0; j < rp->n_vmknics; j++)
			if (strcmp(rp->vmknics[j]->name, vmks[i].name) == 0)
				have = true;
		if (have)
			continue;
		if (vmks[i].netstack[0]) {
			rc = netstack(lab, host, vmks[i].netstack, err);
			if (rc)
				break;
		}
		kc_lab_vmk_addr(host, i, addr, sizeof(addr));
		tags[0] = (char *)vmks[i].tag;
		add.name = (char *)vmks[i].name;
		add.portgroup = (char *)vmks[i].portgroup;
		add.netstack = (char *)vmks[i].netstack;
		add.ipv4 = addr;
		add.n_tags = 1;
		add.tags = tags;
		q.req_case = KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_ADD;
		q.vmknic_add = &add;
		rc = kc_lab_call(lab, host, CALL_MS, &q, &r2, err);
		if (rc == 0)
			kc_reply_free(r2);
	}
	kc_reply_free(rp);
	return rc;
}

int kc_lab_host_configure(const struct kc_lab *lab, int host, bool *vmknic, struct kb_errmsg *err)
{
	int rc = vswitches(lab, host, err);

	rc = rc ?: portgroups(lab, host, err);
	rc = rc ?: datastore(lab, host, err);
	rc = rc ?: vmknics(lab, host, vmknic, err);
	if (rc)
		kb_errmsg_wrapf(err, "host%d", host);
	return rc;
}
