/*
 * The life of a host's networking: vmk_net_init() loads the configuration (or makes the
 * first-start default: vSwitch0 with the portgroup "VM Network", no uplink) and applies it
 * to the kernel; vmk_net_close() forgets it and leaves the kernel's interfaces alone.
 *
 * Where it lives: etc/keel/network.conf of the host's config store (kernel/cfg), so it is
 * in config.kar with the rest of the host's configuration. vmk__net_commit() formats each
 * new configuration once, puts it into the store, and rewrites <state dir>/network.conf
 * from the same bytes (write, fsync, rename) for the processes that read that file; a
 * failed copy is logged and rewritten at the next change or start. Before a put it checks
 * that the store still holds what kernel/net last put there: a put or restore of
 * etc/keel/network.conf through the store applies at the next start, and changes are
 * refused until then rather than overwriting it. At start the store's copy is applied; a
 * store without one takes <state dir>/network.conf in (a host from before the store).
 *
 * Applying is idempotent and forgiving: bridges that exist are reused, each object is
 * applied on its own, and one that fails (an uplink that is gone, a VLAN the kernel cannot
 * filter) is logged and stays configured for the operator to fix. Ports are runtime
 * records: a tap still held by a vmx (carrier up) is kept and re-attached; a tap that is
 * gone, or that no vmx holds any more (its VM stopped while vmkernel was away), is deleted
 * and its port dropped; the VM gets a new one at its next power-on. Netstacks get their
 * namespace back when it is gone (after a reboot), and VMkernel adapters their veth pair,
 * address and route (vmknic.c), before the ports.
 *
 * vmk_net_close() leaves netstack namespaces and adapters in place, like bridges.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernel/cfg/ctl.h"
#include "kernel/net/net_internal.h"
#include "lib/file.h"
#include "lib/heap.h"

void vmk__net_errf(struct vmk_net *net, struct kb_errmsg *err, int rv, const char *fmt, ...)
{
	char what[KB_ERRMSG_SIZE];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	if (net->nl->ext_msg[0])
		kb_errmsg_setf(err, "%s: %s (%s)", what, kb_strerror(rv), net->nl->ext_msg);
	else
		kb_errmsg_setf(err, "%s: %s", what, kb_strerror(rv));
}

/* KB_ESTATE when the store's etc/keel/network.conf is not what net->conf formats to: it
 * was replaced (or deleted) through the store since kernel/net last put it there. */
static int store_unchanged(struct vmk_net *net, struct kb_errmsg *err)
{
	struct kb_errmsg e = {{0}};
	struct kb_buf have, mine;
	int rv;

	kb_buf_init(&have, VMK__CONF_SIZE_MAX);
	kb_buf_init(&mine, VMK__CONF_SIZE_MAX);
	rv = vmk_cfg_get(net->store, VMK_NET_CFG_PATH, &have, NULL, &e);
	if (rv < 0 && rv != KB_ENOTFOUND) {
		kb_errmsg_setf(err, "config store: %s", e.msg);
		goto out;
	}
	if (rv == 0 && (rv = vmk__conf_format(net->conf, &mine)) < 0) {
		kb_errmsg_setf(err, "formatting %s: %s", VMK_NET_CFG_PATH, kb_strerror(rv));
		goto out;
	}
	if (rv == KB_ENOTFOUND || have.len != mine.len ||
	    memcmp(have.data, mine.data, have.len) != 0) {
		kb_errmsg_setf(err,
			       "%s was %s in the config store (keel host config put, delete or "
			       "restore); it applies when vmkernel restarts, and the network "
			       "cannot be changed until then",
			       VMK_NET_CFG_PATH, rv == KB_ENOTFOUND ? "deleted" : "replaced");
		rv = KB_ESTATE;
	}
out:
	kb_buf_close(&have);
	kb_buf_close(&mine);
	return rv;
}

/* Rewrites <state dir>/network.conf with text (the derived copy); a failure is logged. */
static void write_copy(struct vmk_net *net, const struct kb_buf *text)
{
	struct kb_errmsg e = {{0}};
	int rv = kb_file_write_atomic(net->conf_path, text->data, text->len, 0644, &e);

	if (rv < 0 && rv != KB_ENOTSYNCED)
		kb_log(net->log, KB_LOG_WARN,
		       "network: writing the copy %s (rewritten at the next change): %s",
		       net->conf_path, e.msg);
}

/* Puts c into the store (unless from_store: it came from there) and rewrites the copy. */
static int store_put(struct vmk_net *net, const struct vmk__net_conf *c, bool from_store,
		     struct kb_errmsg *err)
{
	struct kb_buf b;
	int rv;

	kb_buf_init(&b, VMK__CONF_SIZE_MAX);
	rv = vmk__conf_format(c, &b);
	if (rv < 0) {
		kb_errmsg_setf(err, "formatting %s: %s", VMK_NET_CFG_PATH, kb_strerror(rv));
		goto out;
	}
	if (!from_store) {
		rv = vmk_cfg_put(net->store, VMK_NET_CFG_PATH, b.data, b.len, 0644, NULL, err);
		if (rv < 0) {
			kb_errmsg_wrapf(err, "config store");
			goto out;
		}
	}
	write_copy(net, &b);
out:
	kb_buf_close(&b);
	return rv;
}

int vmk__net_commit(struct vmk_net *net, struct vmk__net_conf *next, struct kb_errmsg *err)
{
	int rv;

	if (net->store) {
		rv = store_unchanged(net, err);
		if (rv == 0)
			rv = store_put(net, next, false, err);
	} else {
		rv = vmk__conf_save(net->conf_path, next, err);
	}
	if (rv < 0) {
		vmk__conf_free(next);
		return rv;
	}
	vmk__conf_free(net->conf);
	net->conf = next;
	return 0;
}

int vmk_net_conf_check(const void *text, size_t len, struct kb_errmsg *err)
{
	struct vmk__net_conf *c = NULL;
	int rv = vmk__conf_parse(text, len, &c, err);

	vmk__conf_free(c);
	return rv;
}

/* Loads net->conf from the store, else from the file (migration: *taken). -ENOENT when
 * neither has it. */
static int load_store(struct vmk_net *net, bool *taken, struct kb_errmsg *err)
{
	struct kb_buf b;
	int rv;

	*taken = false;
	kb_buf_init(&b, VMK__CONF_SIZE_MAX);
	rv = vmk_cfg_get(net->store, VMK_NET_CFG_PATH, &b, NULL, err);
	if (rv == 0) {
		rv = vmk__conf_parse((const char *)b.data, b.len, &net->conf, err);
		if (rv < 0)
			kb_errmsg_wrapf(err, "config store: %s", VMK_NET_CFG_PATH);
	} else if (rv == KB_ENOTFOUND) {
		err->msg[0] = '\0';
		rv = vmk__conf_load(net->conf_path, &net->conf, err);
		*taken = rv == 0;
	}
	kb_buf_close(&b);
	return rv;
}

/* Checks the port of a tap that survived a restart: 1 to keep it, 0 to drop it. */
static int port_alive(struct vmk_net *net, const struct vmk__port *p)
{
	struct vmk__link l;
	int rv = vmk__link_get(net->nl, p->tap, 0, &l);

	if (rv < 0 || strcmp(l.kind, "tun") != 0)
		return 0;
	if (l.carrier)
		return 1;
	rv = vmk__link_delete(net->nl, l.ifindex);
	if (rv < 0)
		kb_log(net->log, KB_LOG_WARN, "network: deleting unused tap %s: %s", p->tap,
		       kb_strerror(rv));
	return 0;
}

/* Applies every object of net->conf; failures are logged. Drops dead ports. */
static int apply_all(struct vmk_net *net, struct kb_errmsg *err)
{
	struct vmk__net_conf *c = net->conf, *next = NULL;
	struct kb_errmsg e;
	size_t i, j;
	int rv, ifindex;

	for (i = 0; i < c->n_vswitches; i++) {
		const struct vmk__vswitch *vs = &c->vswitches[i];

		if (vmk__bridge_apply(net, vs, &ifindex, &e) < 0) {
			kb_log(net->log, KB_LOG_WARN, "network: vSwitch %s: %s", vs->name, e.msg);
			continue;
		}
		for (j = 0; j < vs->n_uplinks; j++)
			if (vmk__uplink_apply(net, c, vs, vs->uplinks[j], &e) < 0)
				kb_log(net->log, KB_LOG_WARN, "network: vSwitch %s: %s", vs->name,
				       e.msg);
	}
	for (i = 0; i < c->n_portgroups; i++)
		if (vmk__portgroup_apply(net, c, &c->portgroups[i], &e) < 0)
			kb_log(net->log, KB_LOG_WARN, "network: portgroup \"%s\": %s",
			       c->portgroups[i].name, e.msg);
	for (i = 0; i < c->n_netstacks; i++)
		if (vmk__netstack_apply(net, &c->netstacks[i], &e) < 0)
			kb_log(net->log, KB_LOG_WARN, "network: %s", e.msg);
	for (i = 0; i < c->n_vmknics; i++)
		if (vmk__vmknic_apply(net, c, &c->vmknics[i], &e) < 0)
			kb_log(net->log, KB_LOG_WARN, "network: %s: %s", c->vmknics[i].name, e.msg);
	for (i = 0; i < c->n_ports; i++) {
		const struct vmk__port *p = &c->ports[i];

		if (port_alive(net, p)) {
			if (vmk__port_attach(net, c, vmk__conf_portgroup(c, p->portgroup), p->tap,
					     &e) < 0)
				kb_log(net->log, KB_LOG_WARN, "network: port %s: %s", p->tap,
				       e.msg);
			continue;
		}
		kb_log(net->log, KB_LOG_INFO,
		       "network: dropped port %s (NIC %u of VM %s is not running)", p->tap, p->nic,
		       p->vm_uuid);
		if (!next && (rv = vmk__conf_clone(c, &next)) < 0)
			return rv;
		vmk__conf_del_port(next, p->tap);
	}
	return next ? vmk__net_commit(net, next, err) : 0;
}

int vmk_net_init(const char *state_dir, struct vmk_net *net, struct kb_errmsg *err)
{
	return vmk_net_init_store(state_dir, vmk_cfg_ctl_store(), net, err);
}

int vmk_net_init_store(const char *state_dir, struct vmk_cfg *store, struct vmk_net *net,
		       struct kb_errmsg *err)
{
	struct vmk__net_conf *first = NULL;
	struct kb_errmsg scratch;
	bool taken = false;
	size_t len;
	int rv;

	err = err ? err : &scratch;
	err->msg[0] = '\0';
	memset(net, 0, sizeof(*net));
	net->log = &kb_log_default;
	net->store = store;
	len = strlen(state_dir) + sizeof("/" VMK_NET_CONF_FILE);
	net->conf_path = kb_malloc(len);
	net->netns_dir = kb_malloc(len);
	net->nl = kb_calloc(1, sizeof(*net->nl));
	if (!net->conf_path || !net->netns_dir || !net->nl) {
		rv = -ENOMEM;
		goto err_mem;
	}
	snprintf(net->conf_path, len, "%s/" VMK_NET_CONF_FILE, state_dir);
	snprintf(net->netns_dir, len, "%s/" VMK_NET_NETNS_DIR, state_dir);
	rv = vmk__nl_open(net->nl);
	if (rv < 0) {
		kb_errmsg_setf(err, "opening an rtnetlink socket: %s", kb_strerror(rv));
		goto err_mem;
	}
	if (store)
		rv = load_store(net, &taken, err);
	else
		rv = vmk__conf_load(net->conf_path, &net->conf, err);
	if (rv == -ENOENT && store) {
		err->msg[0] = '\0';
		rv = vmk__conf_default(&net->conf);
		if (rv == 0)
			rv = store_put(net, net->conf, false, err);
		if (rv == 0)
			kb_log(net->log, KB_LOG_INFO, "network: first start: created %s",
			       VMK_NET_CFG_PATH);
	} else if (rv == -ENOENT) {
		rv = vmk__conf_default(&net->conf);
		if (rv == 0)
			rv = vmk__conf_clone(net->conf, &first);
		if (rv == 0)
			rv = vmk__net_commit(net, first, err);
		if (rv == 0)
			kb_log(net->log, KB_LOG_INFO, "network: first start: created %s",
			       net->conf_path);
	} else if (rv == 0 && store) {
		/* taken: a host from before the store. A file put through the store with other
		 * spacing or comments is put back as the writer formats it, so that the next
		 * change finds in the store what kernel/net put there. Either way the copy is
		 * rewritten. */
		struct kb_errmsg e = {{0}};

		rv = store_put(net, net->conf, !taken && store_unchanged(net, &e) == 0, err);
		if (rv == 0 && taken)
			kb_log(net->log, KB_LOG_INFO,
			       "network: took %s into the config store as %s (the file is now a "
			       "copy written from the store)",
			       net->conf_path, VMK_NET_CFG_PATH);
	}
	if (rv < 0)
		goto err_nl;
	rv = apply_all(net, err);
	if (rv < 0)
		goto err_nl;
	return 0;

err_nl:
	vmk__conf_free(net->conf);
	vmk__nl_close(net->nl);
err_mem:
	if (rv == -ENOMEM && !err->msg[0])
		kb_errmsg_setf(err, "network: out of memory");
	kb_errmsg_wrapf(err, "network");
	kb_free(net->nl);
	kb_free(net->conf_path);
	kb_free(net->netns_dir);
	memset(net, 0, sizeof(*net));
	return rv;
}

void vmk_net_close(struct vmk_net *net)
{
	if (net->nl)
		vmk__nl_close(net->nl);
	kb_free(net->nl);
	vmk__conf_free(net->conf);
	kb_free(net->conf_path);
	kb_free(net->netns_dir);
	memset(net, 0, sizeof(*net));
}
