/*
 * vmsyslogd's control socket, <state dir>/vmsyslogd.sock (proto/syslog.proto): status —
 * the configuration in force, each remote's state and counters, the files followed and
 * the recent events — and test, which queues one test message for every remote.
 *
 * Requests are small and answered at once on the loop thread (lib/ctlserver.h). A frame
 * that does not decode gets an error reply (KB_EPROTO).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "kernel/syslog/daemon.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "syslog.pb-c.h"

#define REQ_MAX	      (64u << 10)
#define TEST_TEXT_MAX 512

static struct kb_ctlserver server;

static int pack(const Keel__Syslog__SyslogReply *rp, struct kb_buf *out)
{
	size_t n = keel__syslog__syslog_reply__get_packed_size(rp);
	int rv = kb_buf_reserve(out, n);

	if (rv)
		return rv;
	keel__syslog__syslog_reply__pack(rp, out->data + out->len);
	out->len += n;
	return 0;
}

static int pack_error(void *arg, int code, const char *msg, struct kb_buf *out)
{
	Keel__Syslog__SyslogReply rp = KEEL__SYSLOG__SYSLOG_REPLY__INIT;

	rp.code = code;
	rp.error = (char *)msg;
	return pack(&rp, out);
}

/* Everything the status reply points into, freed after packing. */
struct status_mem {
	Keel__Syslog__SyslogStatus st;
	Keel__Syslog__SyslogRemote rem[VSL_REMOTES_MAX], *remp[VSL_REMOTES_MAX];
	struct vsl_remote_status rs[VSL_REMOTES_MAX];
	Keel__Syslog__SyslogFile *files, **filep;
	Keel__Syslog__SyslogEvent ev[VSL_EVENTS], *evp[VSL_EVENTS];
	struct vsl_event evs[VSL_EVENTS];
};

static int fill_status(struct vsl_daemon *d, struct status_mem *m)
{
	Keel__Syslog__SyslogStatus *st = &m->st;
	unsigned first, n;

	keel__syslog__syslog_status__init(st);
	st->hostname = d->hostname;
	st->started_ns = d->started_ns;
	st->config_generation = d->conf_generation;
	st->config_error = d->conf_error;
	st->config_checked_ns = d->conf_checked_ns;
	st->ca = d->conf.ca;
	st->buffer_lines = d->conf.buffer_lines;
	for (size_t i = 0; i < d->n_remotes; i++) {
		Keel__Syslog__SyslogRemote *r = &m->rem[i];
		struct vsl_remote_status *s = &m->rs[i];
		vsl_remote_status(d->remotes[i], s);
		keel__syslog__syslog_remote__init(r);
		r->url = s->url;
		r->state = (char *)vsl_state_name(s->state);
		r->state_since_ns = s->state_since_ns;
		r->sent = s->sent;
		r->buffered = s->buffered;
		r->buffer_lines = s->buffer_lines;
		r->dropped = s->dropped;
		r->connects = s->connects;
		r->last_error = s->last_error;
		r->last_error_ns = s->last_error_ns;
		r->retry_in_ms = s->retry_in_ms;
		m->remp[i] = r;
	}
	st->n_remotes = d->n_remotes;
	st->remotes = m->remp;
	if (d->tail.n) {
		m->files = kb_calloc(d->tail.n, sizeof(*m->files));
		m->filep = kb_calloc(d->tail.n, sizeof(*m->filep));
		if (m->files == NULL || m->filep == NULL)
			return -ENOMEM;
	}
	for (size_t i = 0; i < d->tail.n; i++) {
		struct vsl_tail_file *f = &d->tail.files[i];
		keel__syslog__syslog_file__init(&m->files[i]);
		m->files[i].path = f->path;
		m->files[i].app = f->app;
		m->files[i].open = f->fd >= 0;
		m->files[i].lines = f->lines;
		m->files[i].offset = (uint64_t)f->off;
		m->filep[i] = &m->files[i];
	}
	st->n_files = d->tail.n;
	st->files = m->filep;
	st->lines = d->tail.lines;
	pthread_mutex_lock(&d->ev_mu);
	n = d->ev_head < VSL_EVENTS ? d->ev_head : VSL_EVENTS;
	first = d->ev_head - n;
	for (unsigned i = 0; i < n; i++)
		m->evs[i] = d->events[(first + i) % VSL_EVENTS];
	pthread_mutex_unlock(&d->ev_mu);
	for (unsigned i = 0; i < n; i++) {
		keel__syslog__syslog_event__init(&m->ev[i]);
		m->ev[i].time_ns = m->evs[i].time_ns;
		m->ev[i].level = (char *)kb_log_level_name(m->evs[i].level);
		m->ev[i].text = m->evs[i].text;
		m->evp[i] = &m->ev[i];
	}
	st->n_events = n;
	st->events = m->evp;
	return 0;
}

/* Queues the test message for every remote. */
static void send_test(struct vsl_daemon *d, const char *text, uint64_t id)
{
	char msg[TEST_TEXT_MAX + 128], idtext[24];
	struct kb_buf sd;

	kb_buf_init(&sd, 0);
	snprintf(idtext, sizeof(idtext), "%" PRIu64, id);
	if (kb_buf_append(&sd, "[origin", 7) || vsl_sd_param(&sd, "software", "vmsyslogd") ||
	    kb_buf_append(&sd, "]\0", 2)) {
		kb_buf_close(&sd);
		return;
	}
	struct vsl_msg_fields f = {.facility = VSL_FACILITY,
				   .severity = 5,
				   .hostname = d->hostname,
				   .app = "vmsyslogd",
				   .msgid = "TEST",
				   .sd = (const char *)sd.data,
				   .msg = msg};
	f.msg_len = (size_t)snprintf(msg, sizeof(msg), "keel host syslog test %s%s%.*s", idtext,
				     text[0] ? ": " : "", TEST_TEXT_MAX, text);
	vsl__send_all(d, &f);
	kb_buf_close(&sd);
}

static void on_request(void *arg, struct kb_ctlclient *c, const uint8_t *msg, size_t len)
{
	struct vsl_daemon *d = arg;
	Keel__Syslog__SyslogReply rp = KEEL__SYSLOG__SYSLOG_REPLY__INIT;
	Keel__Syslog__SyslogRequest *rq = keel__syslog__syslog_request__unpack(NULL, len, msg);
	struct status_mem *m = NULL;
	struct kb_buf out;

	if (rq == NULL) {
		kb_ctlclient_error(c, KB_EPROTO, "the request does not decode as a SyslogRequest",
				   false);
		return;
	}
	if (rq->req_case != KEEL__SYSLOG__SYSLOG_REQUEST__REQ_STATUS &&
	    rq->req_case != KEEL__SYSLOG__SYSLOG_REQUEST__REQ_TEST) {
		keel__syslog__syslog_request__free_unpacked(rq, NULL);
		kb_ctlclient_error(c, KB_ENOTSUP, "unknown request", false);
		return;
	}
	if (rq->req_case == KEEL__SYSLOG__SYSLOG_REQUEST__REQ_TEST && rq->test->text &&
	    strlen(rq->test->text) > TEST_TEXT_MAX) {
		keel__syslog__syslog_request__free_unpacked(rq, NULL);
		kb_ctlclient_error(c, KB_ETOOBIG, "the test text is longer than 512 bytes", false);
		return;
	}
	m = kb_calloc(1, sizeof(*m));
	if (m == NULL || fill_status(d, m) < 0) {
		keel__syslog__syslog_request__free_unpacked(rq, NULL);
		if (m) {
			kb_free(m->files);
			kb_free(m->filep);
		}
		kb_free(m);
		kb_ctlclient_error(c, -ENOMEM, "out of memory", false);
		return;
	}
	rp.status = &m->st;
	if (rq->req_case == KEEL__SYSLOG__SYSLOG_REQUEST__REQ_TEST) {
		rp.test_id = ++d->test_seq;
		send_test(d, rq->test->text ? rq->test->text : "", rp.test_id);
		kb_log(d->log, KB_LOG_INFO, "test message %" PRIu64 " queued for %zu remotes",
		       rp.test_id, d->n_remotes);
	}
	kb_buf_init(&out, 0);
	if (pack(&rp, &out) == 0)
		kb_ctlclient_reply(c, out.data, out.len, false);
	else
		kb_ctlclient_error(c, -ENOMEM, "out of memory", false);
	kb_buf_close(&out);
	kb_free(m->files);
	kb_free(m->filep);
	kb_free(m);
	keel__syslog__syslog_request__free_unpacked(rq, NULL);
}

int vsl__ctl_start(struct vsl_daemon *d, struct kb_errmsg *err)
{
	static const struct kb_ctlserver_cbs cbs = {.request = on_request, .error = pack_error};

	return kb_ctlserver_start(&server, d->loop, d->ctl_socket, REQ_MAX, &cbs, d, err);
}

void vsl__ctl_stop(void)
{
	kb_ctlserver_stop(&server);
}
