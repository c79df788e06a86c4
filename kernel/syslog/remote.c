/*
 * A remote syslog server: a bounded queue of messages and the thread that sends them.
 *
 * Happy path: the thread resolves the host, connects (UDP: a connected datagram socket; TCP;
 * TLS: TCP then an OpenSSL handshake that verifies the server's certificate against the
 * configured CA and its name or IP address), then sends the queue's messages in order —
 * one datagram each over UDP (cut at VSL_UDP_MAX bytes), octet-counted frames over TCP and
 * TLS. A message leaves the queue only once it was handed to the kernel (or to TLS) whole.
 *
 * Failure modes: a failed connect, handshake or send closes the connection and the thread
 * backs off (0.5 s doubling to 30 s; 2 s over UDP) before the next attempt; meanwhile messages stay
 * queued. A full queue drops the newest message and counts it; once the remote is reached
 * again the thread first sends a notice saying how many were dropped. A TCP or TLS server
 * that closed the connection is noticed before the next send (and within a second while
 * idle) by polling the socket for a hang-up; a message already sent into a connection the
 * server had just dropped is lost (syslog has no acknowledgements). Over UDP a server that
 * is away is noticed only through an ICMP error on a later send.
 *
 * Threads: vsl_remote_push, _update and _status may be called from any thread; they take
 * the remote's mutex only. The sender thread takes it around queue changes and never holds
 * it across I/O. Events go to the event callback from the sender thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>

#include "kernel/syslog/vsl.h"
#include "lib/heap.h"
#include "lib/log.h"
#include "lib/time.h"

#define BACKOFF_MIN_MS	   500
#define BACKOFF_MAX_MS	   30000
#define BACKOFF_MAX_UDP_MS 2000
#define IO_TIMEOUT_MS	   5000
#define IDLE_CHECK_MS	   1000
#define UDP_QUIET_NS	   (5 * KB_NSEC_PER_SEC)

struct qmsg {
	struct qmsg *next;
	size_t len;
	char data[];
};

struct vsl_remote {
	struct vsl_remote_cfg cfg;
	char hostname[VSL_HOSTNAME_MAX + 1];
	vsl_event_cb event_cb;
	void *event_arg;
	pthread_t thread;

	pthread_mutex_t mu; /* guards everything below */
	pthread_cond_t cv;
	bool stop;
	char ca[VSL_CA_MAX];
	uint32_t cap;
	struct qmsg *head, *tail;
	uint32_t n;
	int fd; /* the connection, -1 when none; shut down by destroy to cut off I/O */
	enum vsl_state state;
	uint64_t state_since_ns, retry_at_ns;
	uint64_t sent, dropped, connects, dropped_unreported;
	bool reconnect;		 /* the CA changed: connect again */
	bool reported_down;	 /* an "unreachable" event was sent, no "reached again" yet */
	uint64_t last_fail_mono; /* CLOCK_MONOTONIC of the last failure */
	char last_error[KB_ERRMSG_SIZE];
	uint64_t last_error_ns;
};

const char *vsl_state_name(enum vsl_state s)
{
	switch (s) {
	case VSL_CONNECTING:
		return "connecting";
	case VSL_CONNECTED:
		return "connected";
	case VSL_BACKOFF:
		return "backing off";
	case VSL_ERROR:
		return "error";
	}
	return "?";
}

const char *vsl_remote_url(const struct vsl_remote *r)
{
	return r->cfg.url;
}

static void event(struct vsl_remote *r, int level, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void event(struct vsl_remote *r, int level, const char *fmt, ...)
{
	char text[KB_ERRMSG_SIZE + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	if (r->event_cb)
		r->event_cb(r->event_arg, level, text);
}

/* ---- the connection ---------------------------------------------------------------------- */

struct conn {
	int fd;
	SSL_CTX *ctx;
	SSL *ssl;
};

static void conn_close(struct vsl_remote *r, struct conn *c)
{
	pthread_mutex_lock(&r->mu);
	r->fd = -1;
	pthread_mutex_unlock(&r->mu);
	if (c->ssl) {
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->ctx) {
		SSL_CTX_free(c->ctx);
		c->ctx = NULL;
	}
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
}

/* The text of OpenSSL's error queue (emptied), or fallback. */
static void ssl_error(char *out, size_t size, const char *fallback)
{
	unsigned long e = ERR_get_error();

	if (e == 0)
		snprintf(out, size, "%s", fallback);
	else
		ERR_error_string_n(e, out, size);
	ERR_clear_error();
}

/* A non-blocking connect bounded by IO_TIMEOUT_MS, then blocking I/O with timeouts. */
static int connect_addr(struct vsl_remote *r, const struct addrinfo *ai, int *out,
			struct kb_errmsg *err)
{
	struct timeval tv = {.tv_sec = IO_TIMEOUT_MS / 1000};
	int fd, rv, soerr = 0;
	socklen_t sl = sizeof(soerr);

	fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "socket: %s", kb_strerror(rv));
		return rv;
	}
	pthread_mutex_lock(&r->mu);
	r->fd = fd;
	bool stop = r->stop;
	pthread_mutex_unlock(&r->mu);
	if (stop) {
		rv = KB_ECANCELED;
		kb_errmsg_setf(err, "stopping");
		goto fail;
	}
	if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		struct pollfd p = {.fd = fd, .events = POLLOUT};
		if (errno != EINPROGRESS) {
			rv = -errno;
			kb_errmsg_setf(err, "connect: %s", kb_strerror(rv));
			goto fail;
		}
		rv = poll(&p, 1, IO_TIMEOUT_MS);
		if (rv == 0) {
			rv = KB_ETIMEOUT;
			kb_errmsg_setf(err, "connect: no answer within %d s", IO_TIMEOUT_MS / 1000);
			goto fail;
		}
		if (rv < 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 || soerr) {
			rv = soerr ? -soerr : -errno;
			kb_errmsg_setf(err, "connect: %s", kb_strerror(rv));
			goto fail;
		}
	}
	fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	*out = fd;
	return 0;
fail:
	pthread_mutex_lock(&r->mu);
	r->fd = -1;
	pthread_mutex_unlock(&r->mu);
	close(fd);
	return rv;
}

static int tls_start(struct vsl_remote *r, struct conn *c, const char *ca, struct kb_errmsg *err)
{
	char why[256];
	struct in6_addr a;
	bool is_ip =
	    inet_pton(AF_INET, r->cfg.host, &a) == 1 || inet_pton(AF_INET6, r->cfg.host, &a) == 1;

	c->ctx = SSL_CTX_new(TLS_client_method());
	if (c->ctx == NULL) {
		ssl_error(why, sizeof(why), "out of memory");
		kb_errmsg_setf(err, "TLS: %s", why);
		return -ENOMEM;
	}
	SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if (ca[0] ? SSL_CTX_load_verify_locations(c->ctx, ca, NULL) != 1
		  : SSL_CTX_set_default_verify_paths(c->ctx) != 1) {
		ssl_error(why, sizeof(why), "cannot load it");
		kb_errmsg_setf(err, "TLS: CA file %s: %s", ca[0] ? ca : "(system default)", why);
		return KB_ECONFIG;
	}
	c->ssl = SSL_new(c->ctx);
	if (c->ssl == NULL || SSL_set_fd(c->ssl, c->fd) != 1) {
		ssl_error(why, sizeof(why), "out of memory");
		kb_errmsg_setf(err, "TLS: %s", why);
		return -ENOMEM;
	}
	if (is_ip) {
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), r->cfg.host);
	} else {
		SSL_set_tlsext_host_name(c->ssl, r->cfg.host);
		SSL_set1_host(c->ssl, r->cfg.host);
	}
	if (SSL_connect(c->ssl) != 1) {
		long vr = SSL_get_verify_result(c->ssl);
		if (vr != X509_V_OK)
			snprintf(why, sizeof(why), "server certificate not accepted: %s",
				 X509_verify_cert_error_string(vr));
		else
			ssl_error(why, sizeof(why), "handshake failed (connection closed)");
		kb_errmsg_setf(err, "TLS: %s", why);
		ERR_clear_error();
		return KB_EPROTO;
	}
	return 0;
}

static int conn_open(struct vsl_remote *r, struct conn *c, struct kb_errmsg *err)
{
	struct addrinfo hints = {.ai_socktype = r->cfg.proto == VSL_UDP ? SOCK_DGRAM : SOCK_STREAM,
				 .ai_flags = AI_ADDRCONFIG | AI_NUMERICSERV};
	struct addrinfo *res = NULL, *ai;
	char port[8], ca[VSL_CA_MAX];
	int rv = KB_ENOTFOUND, gai;

	snprintf(port, sizeof(port), "%u", r->cfg.port);
	gai = getaddrinfo(r->cfg.host, port, &hints, &res);
	if (gai != 0) {
		kb_errmsg_setf(err, "resolving %s: %s", r->cfg.host, gai_strerror(gai));
		return KB_ENOTFOUND;
	}
	for (ai = res; ai; ai = ai->ai_next) {
		rv = connect_addr(r, ai, &c->fd, err);
		if (rv == 0 || rv == KB_ECANCELED)
			break;
	}
	freeaddrinfo(res);
	if (rv)
		return rv;
	if (r->cfg.proto == VSL_TLS) {
		pthread_mutex_lock(&r->mu);
		memcpy(ca, r->ca, sizeof(ca));
		pthread_mutex_unlock(&r->mu);
		rv = tls_start(r, c, ca, err);
		if (rv)
			conn_close(r, c);
	}
	return rv;
}

/* Whether a stream connection is still up: the server sends nothing over syslog, so a
 * hang-up or an error on the socket means it went away. */
static bool conn_alive(const struct conn *c, bool stream)
{
	struct pollfd p = {.fd = c->fd, .events = POLLRDHUP};

	if (!stream)
		return true;
	return poll(&p, 1, 0) <= 0 || !(p.revents & (POLLRDHUP | POLLHUP | POLLERR));
}

static int conn_send(const struct vsl_remote *r, struct conn *c, const void *msg, size_t len,
		     struct kb_buf *frame, struct kb_errmsg *err)
{
	const uint8_t *p;
	size_t left;
	int rv;

	if (r->cfg.proto == VSL_UDP) {
		size_t n = len <= VSL_UDP_MAX ? len : vsl_utf8_cut(msg, VSL_UDP_MAX);
		ssize_t w;
		do
			w = send(c->fd, msg, n, MSG_NOSIGNAL);
		while (w < 0 && errno == EINTR);
		if (w < 0) {
			rv = -errno;
			kb_errmsg_setf(err, "send: %s", kb_strerror(rv));
			return rv;
		}
		return 0;
	}
	if (!conn_alive(c, true)) {
		kb_errmsg_setf(err, "the server closed the connection");
		return -ECONNRESET;
	}
	kb_buf_reset(frame);
	rv = vsl_frame_octets(msg, len, frame);
	if (rv) {
		kb_errmsg_setf(err, "framing: %s", kb_strerror(rv));
		return rv;
	}
	p = frame->data;
	left = frame->len;
	while (left > 0) {
		ssize_t w;
		if (c->ssl) {
			size_t done = 0;
			if (SSL_write_ex(c->ssl, p, left, &done) != 1) {
				char why[256];
				ssl_error(why, sizeof(why), "the connection was closed");
				kb_errmsg_setf(err, "TLS write: %s", why);
				return -EPIPE;
			}
			w = (ssize_t)done;
		} else {
			w = send(c->fd, p, left, MSG_NOSIGNAL);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0) {
				rv = errno == EAGAIN ? KB_ETIMEOUT : -errno;
				kb_errmsg_setf(err, "send: %s", kb_strerror(rv));
				return rv;
			}
		}
		p += w;
		left -= (size_t)w;
	}
	return 0;
}

/* ---- the queue --------------------------------------------------------------------------- */

static struct qmsg *qmsg_new(const void *msg, size_t len)
{
	struct qmsg *m = kb_malloc(sizeof(*m) + len);

	if (m == NULL)
		return NULL;
	m->next = NULL;
	m->len = len;
	memcpy(m->data, msg, len);
	return m;
}

/* Under r->mu. */
static void queue_pop(struct vsl_remote *r)
{
	struct qmsg *m = r->head;

	r->head = m->next;
	if (r->head == NULL)
		r->tail = NULL;
	r->n--;
	kb_free(m);
}

void vsl_remote_push(struct vsl_remote *r, const void *msg, size_t len)
{
	struct qmsg *m = NULL;

	if (len > VSL_MSG_MAX)
		len = vsl_utf8_cut(msg, VSL_MSG_MAX);
	pthread_mutex_lock(&r->mu);
	if (r->n < r->cap)
		m = qmsg_new(msg, len);
	if (m == NULL) {
		r->dropped++;
		r->dropped_unreported++;
	} else {
		if (r->tail)
			r->tail->next = m;
		else
			r->head = m;
		r->tail = m;
		r->n++;
		pthread_cond_signal(&r->cv);
	}
	pthread_mutex_unlock(&r->mu);
}

/* Under r->mu. */
static void set_state(struct vsl_remote *r, enum vsl_state s)
{
	if (r->state != s) {
		r->state = s;
		r->state_since_ns = kb_wall_ns();
	}
}

/* Waits on the condition until deadline (CLOCK_MONOTONIC ns) or a signal. Under r->mu. */
static void wait_until(struct vsl_remote *r, uint64_t deadline)
{
	struct timespec ts = {.tv_sec = (time_t)(deadline / KB_NSEC_PER_SEC),
			      .tv_nsec = (long)(deadline % KB_NSEC_PER_SEC)};

	pthread_cond_timedwait(&r->cv, &r->mu, &ts);
}

/* The notice that stands in for dropped messages, formatted into out. */
static void drop_notice(struct vsl_remote *r, uint64_t n, struct kb_buf *out)
{
	struct kb_buf sd;
	char text[256], count[24];
	struct vsl_msg_fields f = {.facility = VSL_FACILITY,
				   .severity = 4,
				   .hostname = r->hostname,
				   .app = "vmsyslogd",
				   .msgid = "DROPPED"};

	kb_buf_init(&sd, 0);
	snprintf(count, sizeof(count), "%llu", (unsigned long long)n);
	if (kb_buf_append(&sd, "[origin", 7) || vsl_sd_param(&sd, "software", "vmsyslogd") ||
	    kb_buf_append(&sd, "]\0", 2)) {
		kb_buf_close(&sd);
		return;
	}
	f.sd = (const char *)sd.data;
	f.msg = text;
	f.msg_len = (size_t)snprintf(text, sizeof(text),
				     "%s messages for this server were dropped while it could not "
				     "be reached (buffer of %u lines full)",
				     count, r->cap);
	kb_buf_reset(out);
	vsl_format(&f, VSL_MSG_MAX, out);
	kb_buf_close(&sd);
}

/* A failed connect, handshake or send (rv its code): close, note it, back off. A failure
 * that waiting alone will not cure — a name that does not resolve, a CA file that does not
 * load, a TLS server that is not accepted — is the state error; it is retried all the same,
 * since the configuration or the server may be fixed meanwhile. */
static void fail(struct vsl_remote *r, struct conn *c, int rv, const struct kb_errmsg *err,
		 uint64_t *backoff_ms, bool was_connected)
{
	uint64_t now = kb_now_ns();
	bool first;

	conn_close(r, c);
	pthread_mutex_lock(&r->mu);
	first = !r->reported_down;
	r->reported_down = true;
	r->last_fail_mono = now;
	snprintf(r->last_error, sizeof(r->last_error), "%s", err->msg);
	r->last_error_ns = kb_wall_ns();
	set_state(r, rv == KB_ENOTFOUND || rv == KB_ECONFIG || rv == KB_EPROTO ? VSL_ERROR
									       : VSL_BACKOFF);
	r->retry_at_ns = now + *backoff_ms * KB_NSEC_PER_MSEC;
	uint32_t queued = r->n;
	pthread_mutex_unlock(&r->mu);
	if (first)
		event(r, KB_LOG_WARN, "syslog remote %s %s: %s; retrying in %.1f s (queued: %u)",
		      r->cfg.url, was_connected ? "lost" : "unreachable", err->msg,
		      (double)*backoff_ms / 1000, queued);
	/* Over UDP every attempt costs at most one message, and the way back is only seen by
	 * sending: keep the retries frequent. */
	uint64_t max = r->cfg.proto == VSL_UDP ? BACKOFF_MAX_UDP_MS : BACKOFF_MAX_MS;
	*backoff_ms = *backoff_ms * 2 > max ? max : *backoff_ms * 2;
}

/* The remote works (again): the event, and the backoff starts over. Under r->mu, which is
 * dropped for the event. */
static void back_up(struct vsl_remote *r, uint64_t *down_since, uint64_t *backoff_ms)
{
	bool again = r->reported_down;
	uint32_t queued = r->n;
	uint64_t dropped = r->dropped_unreported;

	r->reported_down = false;
	pthread_mutex_unlock(&r->mu);
	if (again)
		event(r, KB_LOG_INFO,
		      "syslog remote %s reached again after %.1f s; sending %u queued messages%s",
		      r->cfg.url, *down_since ? (double)(kb_now_ns() - *down_since) / 1e9 : 0.0,
		      queued, dropped ? " (some were dropped: see its count)" : "");
	else
		event(r, KB_LOG_INFO, "syslog remote %s connected", r->cfg.url);
	*down_since = 0;
	*backoff_ms = BACKOFF_MIN_MS;
	pthread_mutex_lock(&r->mu);
}

static void *sender(void *arg)
{
	struct vsl_remote *r = arg;
	struct conn c = {.fd = -1};
	uint64_t backoff_ms = BACKOFF_MIN_MS, down_since = 0;
	struct kb_buf frame, notice;
	bool connected = false;

	kb_buf_init(&frame, 0);
	kb_buf_init(&notice, 0);
	pthread_mutex_lock(&r->mu);
	while (!r->stop) {
		struct kb_errmsg err = {{0}};
		int rv;

		if (!connected) {
			if (kb_now_ns() < r->retry_at_ns) {
				wait_until(r, r->retry_at_ns);
				continue;
			}
			pthread_mutex_unlock(&r->mu);
			rv = conn_open(r, &c, &err);
			if (rv) {
				if (down_since == 0)
					down_since = kb_now_ns();
				fail(r, &c, rv, &err, &backoff_ms, false);
				pthread_mutex_lock(&r->mu);
				continue;
			}
			pthread_mutex_lock(&r->mu);
			connected = true;
			r->reconnect = false;
			r->connects++;
			set_state(r, VSL_CONNECTED);
			if (r->cfg.proto != VSL_UDP || r->connects == 1)
				back_up(r, &down_since, &backoff_ms);
			continue;
		}
		if (r->reconnect) {
			/* A new CA: the server is checked again on a new connection. */
			r->reconnect = false;
			pthread_mutex_unlock(&r->mu);
			conn_close(r, &c);
			connected = false;
			pthread_mutex_lock(&r->mu);
			set_state(r, VSL_CONNECTING);
			r->retry_at_ns = 0;
			continue;
		}
		if (r->dropped_unreported) {
			uint64_t n = r->dropped_unreported;
			pthread_mutex_unlock(&r->mu);
			drop_notice(r, n, &notice);
			rv = notice.len ? conn_send(r, &c, notice.data, notice.len, &frame, &err)
					: 0;
			pthread_mutex_lock(&r->mu);
			if (rv == 0) {
				r->dropped_unreported -= n;
				continue;
			}
		} else if (r->head == NULL) {
			wait_until(r, kb_now_ns() + IDLE_CHECK_MS * KB_NSEC_PER_MSEC);
			if (r->head != NULL || r->stop)
				continue;
			pthread_mutex_unlock(&r->mu);
			rv = conn_alive(&c, r->cfg.proto != VSL_UDP) ? 0 : -ECONNRESET;
			if (rv)
				kb_errmsg_setf(&err, "the server closed the connection");
			pthread_mutex_lock(&r->mu);
		} else {
			struct qmsg *m = r->head; /* only this thread removes from the queue */
			pthread_mutex_unlock(&r->mu);
			rv = conn_send(r, &c, m->data, m->len, &frame, &err);
			pthread_mutex_lock(&r->mu);
			if (rv == 0) {
				queue_pop(r);
				r->sent++;
				/* A datagram socket connects whatever the server does: the way
				 * back is a send without an error some time after the last. */
				if (r->cfg.proto == VSL_UDP && r->reported_down &&
				    kb_now_ns() - r->last_fail_mono > UDP_QUIET_NS)
					back_up(r, &down_since, &backoff_ms);
			}
		}
		if (rv == 0)
			continue;
		pthread_mutex_unlock(&r->mu);
		connected = false;
		if (down_since == 0)
			down_since = kb_now_ns();
		fail(r, &c, rv, &err, &backoff_ms, true);
		pthread_mutex_lock(&r->mu);
	}
	pthread_mutex_unlock(&r->mu);
	conn_close(r, &c);
	kb_buf_close(&frame);
	kb_buf_close(&notice);
	return NULL;
}

/* ---- life cycle -------------------------------------------------------------------------- */

int vsl_remote_create(const struct vsl_remote_cfg *cfg, const struct vsl_remote_opts *o,
		      struct vsl_remote **out)
{
	struct vsl_remote *r = kb_calloc(1, sizeof(*r));
	pthread_condattr_t ca;
	int rv;

	if (r == NULL)
		return -ENOMEM;
	r->cfg = *cfg;
	snprintf(r->hostname, sizeof(r->hostname), "%s", o->hostname ? o->hostname : "");
	snprintf(r->ca, sizeof(r->ca), "%s", o->ca ? o->ca : "");
	r->cap = o->buffer_lines ? o->buffer_lines : VSL_BUFFER_DEFAULT;
	r->event_cb = o->event_cb;
	r->event_arg = o->event_arg;
	r->fd = -1;
	r->state = VSL_CONNECTING;
	r->state_since_ns = kb_wall_ns();
	pthread_mutex_init(&r->mu, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&r->cv, &ca);
	pthread_condattr_destroy(&ca);
	rv = -pthread_create(&r->thread, NULL, sender, r);
	if (rv) {
		pthread_cond_destroy(&r->cv);
		pthread_mutex_destroy(&r->mu);
		kb_free(r);
		return rv;
	}
	*out = r;
	return 0;
}

void vsl_remote_destroy(struct vsl_remote *r)
{
	if (r == NULL)
		return;
	pthread_mutex_lock(&r->mu);
	r->stop = true;
	if (r->fd >= 0)
		shutdown(r->fd, SHUT_RDWR);
	pthread_cond_broadcast(&r->cv);
	pthread_mutex_unlock(&r->mu);
	pthread_join(r->thread, NULL);
	while (r->head)
		queue_pop(r);
	pthread_cond_destroy(&r->cv);
	pthread_mutex_destroy(&r->mu);
	kb_free(r);
}

void vsl_remote_update(struct vsl_remote *r, const char *ca, uint32_t buffer_lines)
{
	pthread_mutex_lock(&r->mu);
	if (strcmp(r->ca, ca ? ca : "") != 0 && r->cfg.proto == VSL_TLS) {
		r->reconnect = true;
		pthread_cond_signal(&r->cv);
	}
	snprintf(r->ca, sizeof(r->ca), "%s", ca ? ca : "");
	r->cap = buffer_lines ? buffer_lines : VSL_BUFFER_DEFAULT;
	/* Past a smaller limit the newest messages go, as a full queue drops the newest. */
	while (r->n > r->cap) {
		struct qmsg **pp = &r->head, *prev = NULL;
		while ((*pp)->next) {
			prev = *pp;
			pp = &(*pp)->next;
		}
		kb_free(*pp);
		*pp = NULL;
		r->tail = prev;
		r->n--;
		r->dropped++;
		r->dropped_unreported++;
	}
	pthread_mutex_unlock(&r->mu);
}

void vsl_remote_status(struct vsl_remote *r, struct vsl_remote_status *out)
{
	uint64_t now = kb_now_ns();

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&r->mu);
	snprintf(out->url, sizeof(out->url), "%s", r->cfg.url);
	out->state = r->state;
	out->state_since_ns = r->state_since_ns;
	out->sent = r->sent;
	out->dropped = r->dropped;
	out->connects = r->connects;
	out->buffered = r->n;
	out->buffer_lines = r->cap;
	snprintf(out->last_error, sizeof(out->last_error), "%s", r->last_error);
	out->last_error_ns = r->last_error_ns;
	if ((r->state == VSL_BACKOFF || r->state == VSL_ERROR) && r->retry_at_ns > now)
		out->retry_in_ms = (r->retry_at_ns - now) / KB_NSEC_PER_MSEC;
	pthread_mutex_unlock(&r->mu);
}
