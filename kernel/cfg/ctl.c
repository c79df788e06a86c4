/*
 * The config store in vmkernel: the host's one store (<state dir>/config.kar), its control
 * requests, and the settings vmkernel takes from it.
 *
 * Requests (proto/vmk.proto, thread-pool threads): cfg_list, cfg_get, cfg_put, cfg_delete,
 * cfg_append (logs), cfg_export (the archive in cfg_data), cfg_import (validated whole,
 * then replaces every persistent file) and cfg_status. A put, delete or import answers with
 * the store's status too, so the client sees whether the change reached the disk: a change
 * that could not be saved is kept in memory and succeeds, with the failure in
 * status.last_save_error (and an event).
 *
 * advanced.conf (advanced.c) is applied at start and after every change of it: today its
 * Misc.LogLevel sets vmkernel's log level; without it the level of --log-level applies.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "kernel/cfg/ctl.h"
#include "lib/heap.h"

static struct vmk_cfg *store;
static struct vmk_host *host;
static int base_level; /* --log-level */

/* A status as the reply carries it: one allocation. */
struct status_slot {
	Keel__Vmk__CfgStatus msg;
	struct vmk_cfg_status st;
	Keel__Vmk__CfgEvent ev[VMK_CFG_EVENTS];
	Keel__Vmk__CfgEvent *evp[VMK_CFG_EVENTS];
};

struct vmk_cfg *vmk_cfg_ctl_store(void)
{
	return store;
}

static void apply_advanced(void)
{
	struct vmk_cfg_advanced adv = {.log_level = -1, .large_pages = -1};
	struct kb_errmsg err = {{0}};
	struct kb_buf b;
	int level;

	kb_buf_init(&b, 0);
	if (vmk_cfg_get(store, VMK_CFG_ADVANCED, &b, NULL, &err) == 0 &&
	    vmk_cfg_advanced_parse(b.data, b.len, &adv, &err) < 0)
		kb_log(host->log, KB_LOG_ERROR, "config store: %s: %s", VMK_CFG_ADVANCED, err.msg);
	kb_buf_close(&b);
	int large = adv.large_pages != 0; /* not set: 1 */
	if (__atomic_exchange_n(&host->large_pages, large, __ATOMIC_RELAXED) != large)
		kb_log(host->log, KB_LOG_INFO,
		       "VMs started from now on get %s (Mem.AllocGuestLargePage %s)",
		       large ? "2 MiB pages from the host's pool when it can hold them"
			     : "4 KiB pages",
		       adv.large_pages < 0 ? "not set" : large ? "1" : "0");
	level = adv.log_level >= 0 ? adv.log_level : base_level;
	if (host->log->level != level) {
		/* the line goes out at the more verbose of the two levels */
		if (host->log->level < KB_LOG_INFO)
			host->log->level = KB_LOG_INFO;
		kb_log(host->log, KB_LOG_INFO, "log level %s (%s)", kb_log_level_name(level),
		       adv.log_level >= 0 ? "Misc.LogLevel in advanced.conf" : "--log-level");
		host->log->level = level;
		kb_log_default.level = level;
	}
}

static void on_change(void *arg, const char *path)
{
	(void)arg;
	if (strcmp(path, VMK_CFG_ADVANCED) == 0)
		apply_advanced();
}

int vmk_cfg_ctl_init(struct vmk_host *h, struct kb_errmsg *err)
{
	struct vmk_cfg_config cfg = {
	    .dir = h->state_dir,
	    .log = h->log,
	    .change_cb = on_change,
	};
	int rv;

	host = h;
	base_level = h->log->level;
	rv = vmk_cfg_create(&cfg, &store, err);
	if (rv < 0)
		return rv;
	apply_advanced();
	return 0;
}

void vmk_cfg_ctl_close(struct vmk_host *h)
{
	(void)h;
	vmk_cfg_destroy(store);
	store = NULL;
}

bool vmk_cfg_ctl_owns(const Keel__Vmk__VmkRequest *rq)
{
	switch (rq->req_case) {
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_LIST:
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_GET:
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_PUT:
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_DELETE:
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_EXPORT:
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_IMPORT:
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_STATUS:
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_APPEND:
		return true;
	default:
		return false;
	}
}

static int fill_status(Keel__Vmk__VmkReply *rp)
{
	static const char *const levels[] = {"error", "warn", "info", "debug", "trace"};
	struct status_slot *s = kb_calloc(1, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	vmk_cfg_status(store, &s->st);
	keel__vmk__cfg_status__init(&s->msg);
	s->msg.generation = s->st.generation;
	s->msg.saved_generation = s->st.saved_generation;
	s->msg.files = s->st.files;
	s->msg.bytes = s->st.bytes;
	s->msg.archive_bytes = s->st.archive_bytes;
	s->msg.last_save_ns = s->st.last_save_ns;
	s->msg.last_save_code = s->st.last_save_code;
	s->msg.last_save_error = s->st.last_save_error;
	s->msg.saves = s->st.saves;
	s->msg.save_failures = s->st.save_failures;
	s->msg.dirty = s->st.dirty;
	s->msg.loaded_from = s->st.loaded_from;
	s->msg.dir = s->st.dir;
	for (size_t i = 0; i < s->st.n_events; i++) {
		keel__vmk__cfg_event__init(&s->ev[i]);
		s->ev[i].time_ns = s->st.events[i].time_ns;
		s->ev[i].level = (char *)levels[s->st.events[i].level & 3];
		s->ev[i].text = s->st.events[i].text;
		s->evp[i] = &s->ev[i];
	}
	s->msg.events = s->evp;
	s->msg.n_events = s->st.n_events;
	rp->cfg_status = &s->msg; /* msg is the slot's first member */
	return 0;
}

static int fill_files(Keel__Vmk__VmkReply *rp, const struct vmk_cfg_stat *st, size_t n)
{
	Keel__Vmk__CfgFileInfo **v = kb_calloc(n ? n : 1, sizeof(*v));
	Keel__Vmk__CfgFileInfo *m = kb_calloc(n ? n : 1, sizeof(*m));
	char *paths = kb_calloc(n ? n : 1, VMK_CFG_PATH_MAX + 1);

	if (n == 0 || v == NULL || m == NULL || paths == NULL) {
		kb_free(v);
		kb_free(m);
		kb_free(paths);
		return n == 0 ? 0 : -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		char *p = paths + i * (VMK_CFG_PATH_MAX + 1);
		keel__vmk__cfg_file_info__init(&m[i]);
		snprintf(p, VMK_CFG_PATH_MAX + 1, "%s", st[i].path);
		m[i].path = p;
		m[i].mode = st[i].mode;
		m[i].size = st[i].size;
		m[i].mtime_ns = st[i].mtime_ns;
		m[i].generation = st[i].generation;
		m[i].persistent = st[i].persistent;
		v[i] = &m[i];
	}
	rp->cfg_files = v;
	rp->n_cfg_files = n;
	return 0;
}

static void take_buf(Keel__Vmk__VmkReply *rp, struct kb_buf *b)
{
	rp->cfg_data.data = b->data;
	rp->cfg_data.len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
}

int vmk_cfg_ctl_handle(struct vmk_host *h, const Keel__Vmk__VmkRequest *rq, Keel__Vmk__VmkReply *rp,
		       struct kb_errmsg *err)
{
	struct vmk_cfg_stat *st = NULL, one;
	struct kb_buf b;
	size_t n = 0;
	bool with_status = false;
	int rv;

	(void)h;
	if (store == NULL) {
		kb_errmsg_setf(err, "the config store is not open");
		return KB_ESTATE;
	}
	kb_buf_init(&b, VMK_CFG_ARCHIVE_MAX);
	switch (rq->req_case) {
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_LIST:
		rv = vmk_cfg_list(store, rq->cfg_list->prefix, &st, &n);
		rv = rv ?: fill_files(rp, st, n);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_GET:
		rv = vmk_cfg_get(store, rq->cfg_get->path, &b, &one, err);
		rv = rv ?: fill_files(rp, &one, 1);
		if (rv == 0)
			take_buf(rp, &b);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_PUT:
		rv = vmk_cfg_put(store, rq->cfg_put->path, rq->cfg_put->data.data,
				 rq->cfg_put->data.len, rq->cfg_put->mode, NULL, err);
		with_status = rv == 0;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_DELETE:
		rv = vmk_cfg_delete(store, rq->cfg_delete->path, NULL, err);
		with_status = rv == 0;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_APPEND:
		rv = vmk_cfg_append(store, rq->cfg_append->path, rq->cfg_append->data.data,
				    rq->cfg_append->data.len, err);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_EXPORT:
		rv = vmk_cfg_export(store, &b, err);
		if (rv == 0)
			take_buf(rp, &b);
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_IMPORT:
		rv = vmk_cfg_import(store, rq->cfg_import->archive.data,
				    rq->cfg_import->archive.len, NULL, err);
		with_status = rv == 0;
		break;
	case KEEL__VMK__VMK_REQUEST__REQ_CFG_STATUS:
		rv = 0;
		with_status = true;
		break;
	default:
		kb_errmsg_setf(err, "unknown request %d", (int)rq->req_case);
		rv = KB_EPROTO;
		break;
	}
	if (rv == 0 && with_status)
		rv = fill_status(rp);
	if (rv == -ENOMEM && err->msg[0] == '\0')
		kb_errmsg_setf(err, "config store: out of memory");
	kb_free(st);
	kb_buf_close(&b);
	return rv;
}

void vmk_cfg_ctl_reply_free(Keel__Vmk__VmkReply *rp)
{
	if (rp->cfg_files != NULL) {
		kb_free(rp->cfg_files[0]->path); /* the paths are one block */
		kb_free(rp->cfg_files[0]);	 /* so are the messages */
		kb_free(rp->cfg_files);
	}
	kb_free(rp->cfg_status); /* the status slot starts with the message */
	kb_free(rp->cfg_data.data);
	rp->cfg_files = NULL;
	rp->n_cfg_files = 0;
	rp->cfg_status = NULL;
	rp->cfg_data.data = NULL;
	rp->cfg_data.len = 0;
}
