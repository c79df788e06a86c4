/*
 * The seam to kernel/ds: the host's datastore registry, serialised by one lock (the
 * registry is used by one thread at a time), the datastore requests, and the heartbeat
 * writers (kernel/ds/heartbeat.h), kept matching the registry: one per shared datastore,
 * started at init and by an add, stopped by a remove and at close. A failure to start a
 * writer's thread is logged and does not fail the request: the datastore is registered,
 * and the next change of the registry tries again. The lease watcher (kernel/ds/leasewatch.h)
 * follows the same shared datastores; when it cannot start, lock holders' leases are
 * watched from scratch at each power-on, as without it.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/core/subsys.h"
#include "kernel/ds/datastore.h"
#include "kernel/ds/heartbeat.h"
#include "kernel/ds/leasewatch.h"
#include "kernel/vm/vm.h"
#include "lib/heap.h"

static struct vmk_ds_registry reg;
static bool reg_open;
static struct vmk_ds_hb_set hbs;
static bool hbs_open;
static struct vmk_ds_lw *lw;				    /* the lease watcher; NULL: none */
static pthread_mutex_t ds_lock = PTHREAD_MUTEX_INITIALIZER; /* guards reg, hbs and lw */

/* Brings the heartbeat writers in line with the registry. Called with ds_lock held. */
static void hb_sync(struct vmk_host *h)
{
	struct kb_errmsg err = {{0}};

	if (vmk_ds_hb_sync(&hbs, &reg, &err) < 0)
		kb_log(h->log, KB_LOG_ERROR, "%s", err.msg);
	if (lw != NULL && vmk_ds_lw_sync(lw, &reg) < 0)
		kb_log(h->log, KB_LOG_ERROR, "lease watch: out of memory following the datastores");
}

/* Starts the lease watcher; on failure vmkernel runs without it. */
static void lw_open(struct vmk_host *h)
{
	struct vmk_ds_lw_config cfg;
	int rv;

	vmk_ds_lw_config_init(&cfg);
	cfg.host_id = h->host_id;
	cfg.log = h->log;
	rv = vmk_ds_lw_create(&cfg, &lw);
	if (rv == 0) {
		rv = vmk_ds_lw_start(lw);
		if (rv < 0) {
			vmk_ds_lw_destroy(lw);
			lw = NULL;
		}
	}
	if (rv < 0)
		kb_log(h->log, KB_LOG_ERROR, "lease watch not running: %s", kb_strerror(rv));
}

int vmk_subsys_ds_init(struct vmk_host *h, struct kb_errmsg *err)
{
	struct vmk_ds_hb_config cfg;
	int rv = vmk_ds_registry_init(&reg, h->state_dir, err);

	if (rv < 0)
		return rv;
	reg_open = true;
	h->ds = &reg;
	vmk_ds_hb_config_init(&cfg);
	cfg.host_id = h->host_id;
	cfg.log = h->log;
	rv = vmk_ds_hb_set_init(&hbs, &cfg);
	if (rv < 0) {
		kb_errmsg_setf(err, "heartbeats: %s", kb_strerror(rv));
		return rv;
	}
	hbs_open = true;
	lw_open(h);
	pthread_mutex_lock(&ds_lock);
	hb_sync(h);
	pthread_mutex_unlock(&ds_lock);
	return 0;
}

void vmk_subsys_ds_close(struct vmk_host *h)
{
	if (hbs_open)
		vmk_ds_hb_set_close(&hbs);
	hbs_open = false;
	pthread_mutex_lock(&ds_lock);
	struct vmk_ds_lw *w = lw;
	lw = NULL;
	pthread_mutex_unlock(&ds_lock);
	vmk_ds_lw_destroy(w);
	if (reg_open)
		vmk_ds_registry_close(&reg);
	reg_open = false;
	h->ds = NULL;
}

int vmk_subsys_ds_hb_status(struct vmk_host *h, struct vmk_ds_hb_status **out, size_t *n)
{
	*out = NULL;
	*n = 0;
	return hbs_open ? vmk_ds_hb_status(&hbs, out, n) : 0;
}

int vmk_subsys_ds_lease_view(struct vmk_host *h, const char *ds_path, uint64_t host_id,
			     struct vmk_ds_lw_view *out)
{
	int rv = KB_ENOTFOUND;

	(void)h;
	pthread_mutex_lock(&ds_lock);
	if (lw != NULL)
		rv = vmk_ds_lw_lookup(lw, ds_path, host_id, out);
	pthread_mutex_unlock(&ds_lock);
	return rv;
}

int vmk_subsys_ds_of(struct vmk_host *h, const char *dir, char *out, size_t size,
		     struct kb_errmsg *err)
{
	const struct vmk_ds *ds = NULL;
	int rv;

	pthread_mutex_lock(&ds_lock);
	rv = vmk_ds_find_path(&reg, dir, &ds, NULL, 0);
	if (rv == 0)
		snprintf(out, size, "%s", ds->name);
	pthread_mutex_unlock(&ds_lock);
	if (rv < 0)
		kb_errmsg_setf(err, "%s is not on a datastore of this host%s%s", dir,
			       rv == KB_ENOTFOUND ? "" : ": ",
			       rv == KB_ENOTFOUND ? "" : kb_strerror(rv));
	return rv;
}

int vmk_subsys_ds_shared(struct vmk_host *h, const char *name, bool *shared, char *path,
			 size_t size)
{
	const struct vmk_ds *ds;
	int rv = KB_ENOTFOUND;

	(void)h;
	pthread_mutex_lock(&ds_lock);
	ds = reg_open ? vmk_ds_lookup(&reg, name) : NULL;
	if (ds != NULL) {
		*shared = ds->shared;
		if (path != NULL)
			snprintf(path, size, "%s", ds->path);
		rv = 0;
	}
	pthread_mutex_unlock(&ds_lock);
	return rv;
}

int vmk_subsys_vm_dir(struct vmk_host *h, const char *ds_name, const char *vm_name, char *dir,
		      size_t dir_size, char *ds_out, size_t ds_size, struct kb_errmsg *err)
{
	const struct vmk_ds *ds;
	int rv;

	pthread_mutex_lock(&ds_lock);
	ds = ds_name != NULL && ds_name[0] != '\0' ? vmk_ds_lookup(&reg, ds_name)
						   : vmk_ds_default(&reg);
	if (ds == NULL) {
		kb_errmsg_setf(err, "no datastore named %s",
			       ds_name && *ds_name ? ds_name : "(default)");
		rv = KB_ENOTFOUND;
	} else {
		snprintf(ds_out, ds_size, "%s", ds->name);
		rv = vmk_ds_vm_dir(ds, vm_name, dir, dir_size);
		if (rv < 0)
			kb_errmsg_setf(err, "VM directory for %s on %s: %s", vm_name, ds->name,
				       kb_strerror(rv));
	}
	pthread_mutex_unlock(&ds_lock);
	return rv;
}

static uint32_t vms_on(struct vmk_host *h, const char *name)
{
	struct kb_list *pos;
	uint32_t n = 0;

	pthread_mutex_lock(&h->lock);
	kb_list_for_each(pos, &h->vms)
	{
		if (strcmp(kb_list_entry(pos, struct vmk_vm, link)->datastore, name) == 0)
			n++;
	}
	pthread_mutex_unlock(&h->lock);
	return n;
}

int vmk_subsys_ds_handle(struct vmk_host *h, const Keel__Vmk__VmkRequest *rq,
			 Keel__Vmk__VmkReply *rp, struct kb_errmsg *err)
{
	int rv = 0;

	switch (rq->req_case) {
	case KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_ADD:
		pthread_mutex_lock(&ds_lock);
		rv = vmk_ds_add(&reg, rq->datastore_add->name, rq->datastore_add->path,
				rq->datastore_add->shared, err);
		if (rv == 0 && rq->datastore_add->shared)
			hb_sync(h);
		pthread_mutex_unlock(&ds_lock);
		if (rv == 0)
			kb_log(h->log, KB_LOG_INFO, "datastore %s added at %s%s",
			       rq->datastore_add->name, rq->datastore_add->path,
			       rq->datastore_add->shared ? " (shared)" : "");
		return rv;
	case KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_REMOVE: {
		const char *name = rq->datastore_remove->name ? rq->datastore_remove->name : "";
		uint32_t n = vms_on(h, name);
		pthread_mutex_lock(&ds_lock);
		rv = vmk_ds_remove(&reg, name, n, err);
		if (rv == 0)
			hb_sync(h); /* waits for a removed datastore's writer to stop */
		pthread_mutex_unlock(&ds_lock);
		if (rv == 0)
			kb_log(h->log, KB_LOG_INFO, "datastore %s removed", name);
		return rv;
	}
	case KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_LIST:
		break;
	default:
		return KB_EPROTO;
	}
	struct vmk_ds_info *list = NULL;
	size_t n = 0;
	pthread_mutex_lock(&ds_lock);
	rv = vmk_ds_list(&reg, &list, &n);
	pthread_mutex_unlock(&ds_lock);
	if (rv < 0)
		return rv;
	/* one allocation: the pointer array, the messages, then the strings */
	size_t size = n * (sizeof(void *) + sizeof(Keel__Vmk__DatastoreInfo) + 2 * 1024 + 128);
	uint8_t *mem = kb_calloc(1, size ? size : 1);
	if (mem == NULL) {
		kb_free(list);
		return -ENOMEM;
	}
	Keel__Vmk__DatastoreInfo **ptrs = (Keel__Vmk__DatastoreInfo **)mem;
	Keel__Vmk__DatastoreInfo *msgs = (Keel__Vmk__DatastoreInfo *)(mem + n * sizeof(void *));
	char *str = (char *)(msgs + n);
	for (size_t i = 0; i < n; i++) {
		keel__vmk__datastore_info__init(&msgs[i]);
		msgs[i].name = str;
		str += snprintf(str, 128, "%s", list[i].ds.name) + 1;
		msgs[i].path = str;
		str += snprintf(str, 2048, "%s", list[i].ds.path) + 1;
		msgs[i].shared = list[i].ds.shared;
		msgs[i].capacity = list[i].capacity;
		msgs[i].free = list[i].free;
		msgs[i].vms = vms_on(h, list[i].ds.name);
		ptrs[i] = &msgs[i];
	}
	kb_free(list);
	rp->datastores = ptrs;
	rp->n_datastores = n;
	return 0;
}

void vmk_subsys_ds_reply_free(Keel__Vmk__VmkReply *reply)
{
	kb_free(reply->datastores); /* the single allocation made above */
	reply->datastores = NULL;
}
