/*
 * The seams between vmkernel's core and its subsystems: resources (kernel/res), VM
 * networking (kernel/net) and datastores (kernel/ds). kernel/net and kernel/ds objects
 * are used by one thread at a time, so calls into them are serialised here; kernel/res is
 * read-only after init and needs no lock.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kernel/cfg/ctl.h"
#include "kernel/core/subsys.h"
#include "kernel/net/net.h"
#include "kernel/res/res.h"
#include "kernel/vm/vm.h"
#include "kernel/world/ctl.h"
#include "lib/heap.h"
#include "lib/time.h"

static struct vmk_res res;
static struct vmk_net net;
static pthread_mutex_t net_lock = PTHREAD_MUTEX_INITIALIZER;

static int res_init(struct vmk_host *h, struct kb_errmsg *err)
{
	struct vmk_res_config cfg;
	char parent[64];
	int rv;

	vmk_res_config_init(&cfg);
	cfg.log = h->log;
	/* One parent per host: several hosts on one machine (a lab) never share a VM's group,
	 * which the same VM has on each host it runs on after HA moves it. */
	if (h->host_id) {
		snprintf(parent, sizeof(parent), "keel/host-%016" PRIx64 "/vms", h->host_id);
		cfg.parent = parent;
	}
	rv = vmk_res_init(&res, &cfg, err);
	if (rv == KB_ENOTSUP || rv == -EACCES || rv == -EROFS) {
		kb_log(h->log, KB_LOG_WARN,
		       "cgroups unusable (%s): resource settings are "
		       "checked but not enforced",
		       err->msg);
		cfg.mode = VMK_RES_CGROUP_NONE;
		err->msg[0] = '\0';
		rv = vmk_res_init(&res, &cfg, err);
	}
	if (rv == 0) {
		h->res = &res;
		const struct vmk_res_capacity *c = vmk_res_host_capacity(&res);
		kb_log(h->log, KB_LOG_INFO,
		       "host: %u CPUs at %u MHz (%s), %llu MiB; reservable %llu MHz, %llu MiB; "
		       "cgroups %s",
		       c->cpus, c->cpu_mhz, c->cpu_mhz_source, (unsigned long long)c->mem_total_mib,
		       (unsigned long long)c->cpu_reservable_mhz,
		       (unsigned long long)c->mem_reservable_mib, vmk_res_cgroup_version(&res));
	}
	return rv;
}

int vmk_subsys_init(struct vmk_host *h, struct kb_errmsg *err)
{
	int rv;

	rv = vmk_cfg_ctl_init(h, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "config store");
		return rv;
	}
	rv = vmk_subsys_ds_init(h, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "datastores");
		return rv;
	}
	rv = res_init(h, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "resources");
		return rv;
	}
	rv = vmk_net_init(h->state_dir, &net, err);
	if (rv < 0) {
		kb_errmsg_wrapf(err, "networking");
		return rv;
	}
	net.log = h->log;
	h->net = &net;
	return 0;
}

void vmk_subsys_close(struct vmk_host *h)
{
	if (h->net != NULL)
		vmk_net_close(&net);
	if (h->res != NULL)
		vmk_res_close(&res);
	vmk_subsys_ds_close(h);
	vmk_cfg_ctl_close(h);
	h->net = NULL;
	h->res = NULL;
}

static void settings_of(const struct vmk_vm *vm, struct vmk_res_settings *s)
{
	const struct vmk_vmx_res *r = &vm->cfg.res;

	memset(s, 0, sizeof(*s));
	vmk_res_shares_parse(r->cpu_shares, &s->shares_level, &s->shares, NULL);
	s->cpu_reservation_mhz = r->cpu_min_mhz;
	s->cpu_limit_mhz = r->cpu_max_mhz;
	s->mem_reservation_mib = r->mem_min_mib;
	s->mem_limit_mib = r->mem_max_mib;
}

int vmk_subsys_admit(struct vmk_vm *vm, struct kb_errmsg *err)
{
	struct vmk_host *h = vm->host;
	struct vmk_res_totals reserved = {0};
	struct vmk_res_settings mine, s;
	struct kb_list *pos;

	settings_of(vm, &mine);
	pthread_mutex_lock(&h->lock);
	kb_list_for_each(pos, &h->vms)
	{
		struct vmk_vm *o = kb_list_entry(pos, struct vmk_vm, link);
		/* powered on, being received by a migration, or starting (busy with power-on) */
		if (o == vm || (o->power != VMK_POWERED_ON && o->power != VMK_INCOMING &&
				!(o->busy != NULL && strcmp(o->busy, "power-on") == 0)))
			continue;
		settings_of(o, &s);
		vmk_res_totals_add(&reserved, &s);
	}
	pthread_mutex_unlock(&h->lock);
	return vmk_res_admit(vmk_res_host_capacity(&res), &reserved, vm->cfg.name, &mine, err);
}

int vmk_subsys_res_create(struct vmk_vm *vm, struct kb_errmsg *err)
{
	struct vmk_res_settings s;

	settings_of(vm, &s);
	return vmk_res_vm_create(&res, vm->cfg.uuid, &s, vm->cfg.memsize_mib, vm->cfg.numvcpus,
				 err);
}

int vmk_subsys_res_attach(struct vmk_vm *vm, pid_t pid, struct kb_errmsg *err)
{
	if (vmk_res_cgroup_version(&res)[0] == 'n')
		return 0;
	return vmk_res_vm_attach(&res, vm->cfg.uuid, pid, err);
}

void vmk_subsys_res_remove(struct vmk_vm *vm)
{
	struct kb_errmsg err = {{0}};

	if (vmk_res_cgroup_version(&res)[0] == 'n')
		return;
	if (vmk_res_vm_remove(&res, vm->cfg.uuid, &err) < 0)
		kb_log(vm->host->log, KB_LOG_WARN, "VM %s: removing its cgroup: %s", vm->cfg.name,
		       err.msg);
}

int vmk_subsys_ports_create(struct vmk_vm *vm, struct kb_errmsg *err)
{
	int rv = 0;

	vm->nr_taps = 0;
	pthread_mutex_lock(&net_lock);
	for (int i = 0; i < VMK_VMX_NICS && rv == 0; i++) {
		const struct vmk_vmx_nic *nic = &vm->cfg.nics[i];
		if (!nic->present)
			continue;
		rv = vmk_net_port_create(&net, nic->portgroup, vm->cfg.uuid, (uint32_t)i,
					 vm->taps[vm->nr_taps], err);
		if (rv == 0)
			vm->nr_taps++;
		else
			kb_errmsg_wrapf(err, "NIC ethernet%d on portgroup \"%s\"", i,
					nic->portgroup);
	}
	pthread_mutex_unlock(&net_lock);
	if (rv < 0)
		vmk_subsys_ports_remove(vm);
	return rv;
}

void vmk_subsys_ports_remove(struct vmk_vm *vm)
{
	struct kb_errmsg err = {{0}};

	pthread_mutex_lock(&net_lock);
	if (vmk_net_port_remove_vm(&net, vm->cfg.uuid, &err) < 0)
		kb_log(vm->host->log, KB_LOG_WARN, "VM %s: removing its ports: %s", vm->cfg.name,
		       err.msg);
	pthread_mutex_unlock(&net_lock);
	vm->nr_taps = 0;
}

void vmk_subsys_host_info(struct vmk_host *h, Keel__Vmk__HostInfo *out)
{
	const struct vmk_res_capacity *c = vmk_res_host_capacity(&res);
	struct vmk_res_totals reserved = {0};
	struct kb_list *pos;
	double mhz = 0;
	uint64_t mem = 0;

	out->cpus = c->cpus;
	out->cpu_mhz = c->cpu_mhz;
	out->mem_bytes = c->mem_total_bytes;
	out->cpu_reservable_mhz = (uint32_t)c->cpu_reservable_mhz;
	out->mem_reservable_bytes = c->mem_reservable_mib << 20;
	out->cgroup_version = (char *)vmk_res_cgroup_version(&res);
	pthread_mutex_lock(&h->lock);
	kb_list_for_each(pos, &h->vms)
	{
		struct vmk_vm *vm = kb_list_entry(pos, struct vmk_vm, link);
		struct vmk_res_settings s;
		uint64_t cpu_ns = 0, mem_bytes = 0;
		if (vm->power != VMK_POWERED_ON)
			continue;
		settings_of(vm, &s);
		vmk_res_totals_add(&reserved, &s);
		if (vmk_res_vm_usage(&res, vm->cfg.uuid, &cpu_ns, &mem_bytes, NULL) == 0) {
			uint64_t wall = kb_now_ns() - vm->powered_on_ns;
			mhz += vmk_res_usage_mhz(c, cpu_ns, wall);
			mem += mem_bytes;
		}
	}
	pthread_mutex_unlock(&h->lock);
	out->cpu_reserved_mhz = (uint32_t)reserved.cpu_mhz;
	out->mem_reserved_bytes = reserved.mem_mib << 20;
	out->cpu_used_mhz = mhz;
	out->mem_used_bytes = mem;
}

static int net_handle(const Keel__Vmk__VmkRequest *rq, Keel__Vmk__VmkReply *rp,
		      struct kb_errmsg *err)
{
	int rv;

	pthread_mutex_lock(&net_lock);
	switch (rq->req_case) {
	case KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_LIST:
		rv = vmk_net_vswitch_list(&net, &rp->vswitches, &rp->n_vswitches, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_ADD:
		rv = vmk_net_vswitch_add(&net, rq->vswitch_add->name, rq->vswitch_add->mtu, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_REMOVE:
		rv = vmk_net_vswitch_remove(&net, rq->vswitch_remove->name, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_UPLINK_ADD:
		rv = vmk_net_uplink_add(&net, rq->uplink_add->vswitch, rq->uplink_add->nic, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_UPLINK_REMOVE:
		rv = vmk_net_uplink_remove(&net, rq->uplink_remove->vswitch, rq->uplink_remove->nic,
					   err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_LIST:
		rv = vmk_net_portgroup_list(&net, &rp->portgroups, &rp->n_portgroups, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_ADD:
		rv =
		    vmk_net_portgroup_add(&net, rq->portgroup_add->name, rq->portgroup_add->vswitch,
					  rq->portgroup_add->vlan, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_REMOVE:
		rv = vmk_net_portgroup_remove(&net, rq->portgroup_remove->name, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_LIST:
		rv = vmk_net_vmknic_list(&net, &rp->vmknics, &rp->n_vmknics, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_ADD: {
		const Keel__Vmk__VmkVmknicAdd *a = rq->vmknic_add;
		struct vmk_net_vmknic_args args = {
		    .name = a->name,
		    .portgroup = a->portgroup,
		    .netstack = a->netstack,
		    .ipv4 = a->ipv4,
		    .gateway = a->gateway,
		    .mtu = a->mtu,
		    .mac = a->mac,
		    .tags = (const char *const *)a->tags,
		    .n_tags = a->n_tags,
		};
		rv = vmk_net_vmknic_add(&net, &args, err);
		break;
	}
	case KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_REMOVE:
		rv = vmk_net_vmknic_remove(&net, rq->vmknic_remove->name, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_SET_IP:
		rv = vmk_net_vmknic_set_ip(&net, rq->vmknic_set_ip->name, rq->vmknic_set_ip->ipv4,
					   rq->vmknic_set_ip->gateway, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_SET_MTU:
		rv = vmk_net_vmknic_set_mtu(&net, rq->vmknic_set_mtu->name, rq->vmknic_set_mtu->mtu,
					    err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_TAG_ADD:
		rv = vmk_net_vmknic_tag(&net, rq->vmknic_tag_add->name, rq->vmknic_tag_add->tag,
					true, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_VMKNIC_TAG_REMOVE:
		rv = vmk_net_vmknic_tag(&net, rq->vmknic_tag_remove->name,
					rq->vmknic_tag_remove->tag, false, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_NETSTACK_LIST:
		rv = vmk_net_netstack_list(&net, &rp->netstacks, &rp->n_netstacks, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_NETSTACK_ADD:
		rv = vmk_net_netstack_add(&net, rq->netstack_add->name, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_NETSTACK_REMOVE:
		rv = vmk_net_netstack_remove(&net, rq->netstack_remove->name, err);
		break;
	default:
		kb_errmsg_setf(err, "unknown request %d", (int)rq->req_case);
		rv = KB_EPROTO;
		break;
	}
	pthread_mutex_unlock(&net_lock);
	return rv;
}

int vmk_subsys_handle(struct vmk_host *h, const Keel__Vmk__VmkRequest *rq,
		      Keel__Vmk__VmkReply *reply, struct kb_errmsg *err)
{
	if (vmk_cfg_ctl_owns(rq))
		return vmk_cfg_ctl_handle(h, rq, reply, err);
	if (vmk_world_ctl_owns(rq))
		return vmk_world_ctl_handle(rq, reply, err);
	switch (rq->req_case) {
	case KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_LIST:
	case KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_ADD:
	case KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_REMOVE:
		return vmk_subsys_ds_handle(h, rq, reply, err);
	default:
		return net_handle(rq, reply, err);
	}
}

void vmk_subsys_reply_free(Keel__Vmk__VmkReply *reply)
{
	if (reply->vswitches != NULL)
		vmk_net_vswitch_list_free(reply->vswitches, reply->n_vswitches);
	if (reply->portgroups != NULL)
		vmk_net_portgroup_list_free(reply->portgroups, reply->n_portgroups);
	if (reply->vmknics != NULL)
		vmk_net_vmknic_list_free(reply->vmknics, reply->n_vmknics);
	if (reply->netstacks != NULL)
		vmk_net_netstack_list_free(reply->netstacks, reply->n_netstacks);
	vmk_subsys_ds_reply_free(reply);
	vmk_cfg_ctl_reply_free(reply);
	vmk_world_ctl_reply_free(reply);
	reply->vswitches = NULL;
	reply->portgroups = NULL;
	reply->vmknics = NULL;
	reply->netstacks = NULL;
}
