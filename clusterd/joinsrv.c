/*
 * The join port: TLS 1.3 on vmk0, Raft port + 1 (docs/clusterd.md, "Joining").
 *
 * One thread accepts connections and serves them one at a time with blocking TLS (joins
 * and member requests are rare); every request is handed to the loop thread, which owns
 * the Raft node and the state, and the thread waits for the reply. Steps:
 *
 *   HELLO        anyone: the cluster's CA certificate, name and id (the joining host pins
 *                the CA with its token's fingerprint and checks our certificate with it)
 *   JOIN         anyone holding a valid token: the leader checks the token, issues the
 *                host's certificate from its CSR, commits HostJoin (which spends the token
 *                and adds the host in one command) and answers with the certificate, the
 *                CA key, the cluster key and the members
 *   TOKEN, LEAVE, REMOVE_HOST, VM, CONFIG, MAINTENANCE, AUTH_SET
 *                members only: the client's certificate must chain to the cluster CA; the
 *                host id in it is who asks
 *
 * A follower answers JOIN and member steps with a redirect to the leader's join port.
 * Refusals are logged with the peer's address. A frame that does not decode ends the
 * connection after an error reply.
 *
 * This file holds the protocol: the thread, its connections and frames, the queue to the
 * loop and a job's reply, start and stop. The steps themselves (what each request does on
 * the loop) are in joinsrv_steps.c.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/err.h>

#include "clusterd/ca.h"
#include "clusterd/codec.h"
#include "clusterd/daemon.h"
#include "clusterd/joinsrv_int.h"
#include "clusterd/tls.h"
#include "lib/heap.h"

#define REQ_MAX	       (64u << 10)
#define REQ_MAX_MEMBER (CD_AUTH_BLOB_MAX + (64u << 10)) /* AUTH_SET carries the store */
#define REQS_PER_CONN  8

/* ---- jobs ----------------------------------------------------------------------------- */

static void job_free(struct cd_job *j)
{
	if (j->rq)
		keel__cluster__join_request__free_unpacked(j->rq, NULL);
	kb_buf_close(&j->out);
	kb_free(j->cert_pem);
	OPENSSL_cleanse(j->token, sizeof(j->token));
	kb_free(j);
}

/* Ends a job with reply rp: packs it and wakes the thread (or frees an abandoned job). */
void cd__job_finish(struct cd_job *j, Keel__Cluster__JoinReply *rp)
{
	struct cd_joinsrv *s = j->d->jsrv;
	size_t n = keel__cluster__join_reply__get_packed_size(rp);
	bool free_it;

	if (!s) {
		/* The port stopped: its thread abandoned every job (Raft cancels at close). */
		job_free(j);
		return;
	}

	if (kb_buf_reserve(&j->out, n) == 0) {
		keel__cluster__join_reply__pack(rp, j->out.data);
		j->out.len = n;
	}
	pthread_mutex_lock(&s->mu);
	j->done = true;
	free_it = j->abandoned;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (free_it)
		job_free(j);
}

int cd__joinsrv_ip_of(const char *addr, char ip[INET_ADDRSTRLEN])
{
	const char *colon = strrchr(addr, ':');
	struct in_addr a;

	if (!colon || colon == addr || (size_t)(colon - addr) >= INET_ADDRSTRLEN)
		return -EINVAL;
	memcpy(ip, addr, (size_t)(colon - addr));
	ip[colon - addr] = '\0';
	return inet_pton(AF_INET, ip, &a) == 1 ? 0 : -EINVAL;
}

/* ---- the loop side ------------------------------------------------------------------------ */

static void on_async(uv_async_t *a)
{
	struct cd_joinsrv *s = a->data;
	struct cd_job *list, *j;

	pthread_mutex_lock(&s->mu);
	list = s->queue;
	s->queue = NULL;
	pthread_mutex_unlock(&s->mu);
	/* The queue is last-in first; requests come one at a time, so order hardly matters,
	 * but keep arrival order anyway. */
	{
		struct cd_job *rev = NULL;

		while (list) {
			j = list;
			list = j->next;
			j->next = rev;
			rev = j;
		}
		list = rev;
	}
	while (list) {
		j = list;
		list = j->next;
		if (s->d->phase != CD_PHASE_RUNNING)
			cd__job_error(j, KB_ESTATE, "clusterd is not running Raft");
		else
			cd__joinsrv_process(j);
	}
}

/* ---- the thread ------------------------------------------------------------------------- */

/* Hands j to the loop and waits for its reply. false when the server is stopping (the
 * job is then the loop's to free). */
static bool submit(struct cd_joinsrv *s, struct cd_job *j)
{
	bool ok;

	pthread_mutex_lock(&s->mu);
	if (s->stopping) {
		pthread_mutex_unlock(&s->mu);
		job_free(j);
		return false;
	}
	j->next = s->queue;
	s->queue = j;
	pthread_mutex_unlock(&s->mu);
	uv_async_send(&s->async);
	pthread_mutex_lock(&s->mu);
	while (!j->done && !s->stopping)
		pthread_cond_wait(&s->cv, &s->mu);
	ok = j->done;
	if (!ok)
		j->abandoned = true;
	pthread_mutex_unlock(&s->mu);
	return ok;
}

static uint64_t peer_member_id(struct cd_joinsrv *s, SSL *ssl)
{
	char *pem = cd_tls_peer_cert_pem(ssl);
	struct kb_errmsg e = {{0}};
	uint64_t id = 0;

	if (!pem)
		return 0;
	if (SSL_get_verify_result(ssl) != X509_V_OK ||
	    cd_ca_verify_host_cert(s->ca_pem, pem, 0, NULL, 0, &id, &e) != 0)
		id = 0;
	kb_free(pem);
	return id;
}

static void serve_conn(struct cd_joinsrv *s, int fd, const char *ip)
{
	SSL *ssl = SSL_new(s->ctx);
	struct kb_errmsg e = {{0}};
	struct kb_buf in;
	uint64_t peer = 0;
	char why[256];

	if (!ssl || SSL_set_fd(ssl, fd) != 1) {
		SSL_free(ssl);
		close(fd);
		return;
	}
	if (SSL_accept(ssl) != 1) {
		unsigned long err = ERR_get_error();

		ERR_error_string_n(err, why, sizeof(why));
		ERR_clear_error();
		kb_log(s->d->log, KB_LOG_WARN, "join port: TLS handshake with %s failed: %s", ip,
		       err ? why : "connection closed");
		cd_tls_close(ssl);
		return;
	}
	peer = peer_member_id(s, ssl);
	kb_buf_init(&in, 0);
	for (int n = 0; n < REQS_PER_CONN; n++) {
		struct cd_job *j;
		/* Only members may send the larger frames of AUTH_SET. */
		int rv = cd_tls_recv(ssl, &in, peer ? REQ_MAX_MEMBER : REQ_MAX, &e);

		if (rv == -EPIPE)
			break;
		if (rv) {
			kb_log(s->d->log, KB_LOG_WARN, "join port: %s: %s", ip, e.msg);
			break;
		}
		j = kb_calloc(1, sizeof(*j));
		if (!j)
			break;
		j->d = s->d;
		j->peer_id = peer;
		snprintf(j->peer_ip, sizeof(j->peer_ip), "%s", ip);
		kb_buf_init(&j->out, 0);
		j->rq = keel__cluster__join_request__unpack(NULL, in.len, in.data);
		if (!j->rq) {
			Keel__Cluster__JoinReply rp = KEEL__CLUSTER__JOIN_REPLY__INIT;
			size_t len;
			uint8_t *p;

			kb_log(s->d->log, KB_LOG_WARN,
			       "join port: %s sent %zu bytes that are not a JoinRequest", ip,
			       in.len);
			rp.code = KB_EPROTO;
			rp.error = "not a valid JoinRequest";
			len = keel__cluster__join_reply__get_packed_size(&rp);
			p = kb_malloc(len);
			if (p) {
				keel__cluster__join_reply__pack(&rp, p);
				cd_tls_send(ssl, p, len, &e);
				kb_free(p);
			}
			job_free(j);
			break;
		}
		if (!submit(s, j))
			break;
		rv = cd_tls_send(ssl, j->out.data, j->out.len, &e);
		job_free(j);
		if (rv)
			break;
	}
	kb_buf_close(&in);
	cd_tls_close(ssl);
}

static void *thread_main(void *arg)
{
	struct cd_joinsrv *s = arg;

	for (;;) {
		struct pollfd p[2] = {{s->lfd, POLLIN, 0}, {s->wake[0], POLLIN, 0}};
		struct sockaddr_in sa;
		socklen_t len = sizeof(sa);
		char ip[INET_ADDRSTRLEN] = "?";
		int fd;
		bool stop;

		pthread_mutex_lock(&s->mu);
		stop = s->stopping;
		pthread_mutex_unlock(&s->mu);
		if (stop)
			break;
		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			continue;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(s->lfd, (struct sockaddr *)&sa, &len, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		inet_ntop(AF_INET, &sa.sin_addr, ip, sizeof(ip));
		{
			struct timeval tv = {CD_TLS_IO_TIMEOUT_MS / 1000, 0};

			setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
		}
		serve_conn(s, fd, ip);
	}
	return NULL;
}

/* ---- start and stop --------------------------------------------------------------------- */

static int listen_on(struct cd_daemon *d, struct kb_errmsg *e)
{
	struct sockaddr_in sa;
	char ip[INET_ADDRSTRLEN];
	int fd, one = 1;

	if (cd__joinsrv_ip_of(d->address, ip)) {
		kb_errmsg_setf(e, "bad vmk0 address %s", d->address);
		return -EINVAL;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)(d->port + CD_JOIN_PORT_OFFSET));
	inet_pton(AF_INET, ip, &sa.sin_addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		goto fail;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 16) < 0)
		goto fail;
	return fd;
fail:
	kb_errmsg_setf(e, "join port %s:%u: %s", ip, d->port + CD_JOIN_PORT_OFFSET,
		       strerror(errno));
	if (fd >= 0)
		close(fd);
	return -errno;
}

int cd_joinsrv_start(struct cd_daemon *d, struct kb_errmsg *e)
{
	struct cd_joinsrv *s;
	char path[PATH_MAX + 16], *ca;
	int rv;

	if (d->jsrv)
		return 0;
	s = kb_calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->d = d;
	s->lfd = s->wake[0] = s->wake[1] = -1;
	snprintf(path, sizeof(path), "%.4000s/%s", d->state_dir, CD_CA_CERT_FILE);
	ca = cd_read_text(path, CD_PEM_MAX, e);
	if (!ca) {
		kb_free(s);
		return -ENOENT;
	}
	snprintf(s->ca_pem, sizeof(s->ca_pem), "%s", ca);
	kb_free(ca);
	s->ctx = cd_tls_server_ctx(d->state_dir, e);
	if (!s->ctx) {
		kb_free(s);
		return KB_ECONFIG;
	}
	rv = listen_on(d, e);
	if (rv < 0) {
		SSL_CTX_free(s->ctx);
		kb_free(s);
		return rv;
	}
	s->lfd = rv;
	if (pipe2(s->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		rv = -errno;
		kb_errmsg_setf(e, "pipe: %s", strerror(errno));
		close(s->lfd);
		SSL_CTX_free(s->ctx);
		kb_free(s);
		return rv;
	}
	pthread_mutex_init(&s->mu, NULL);
	pthread_cond_init(&s->cv, NULL);
	uv_async_init(d->loop, &s->async, on_async);
	s->async.data = s;
	d->jsrv = s;
	if (pthread_create(&s->thread, NULL, thread_main, s) != 0) {
		kb_errmsg_setf(e, "cannot start the join port thread");
		cd_joinsrv_stop(d);
		return -EAGAIN;
	}
	s->thread_on = true;
	kb_log(d->log, KB_LOG_INFO, "join port (TLS) listening on port %u of vmk0",
	       d->port + CD_JOIN_PORT_OFFSET);
	return 0;
}

static void on_async_closed(uv_handle_t *h)
{
	struct cd_joinsrv *s = h->data;

	pthread_mutex_destroy(&s->mu);
	pthread_cond_destroy(&s->cv);
	SSL_CTX_free(s->ctx);
	kb_free(s);
}

void cd_joinsrv_stop(struct cd_daemon *d)
{
	struct cd_joinsrv *s = d->jsrv;
	struct cd_job *list;

	if (!s)
		return;
	pthread_mutex_lock(&s->mu);
	s->stopping = true;
	list = s->queue;
	s->queue = NULL;
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mu);
	if (write(s->wake[1], "x", 1) < 0) {
		/* the pipe is non-blocking and empty: cannot fail in practice */
	}
	if (s->thread_on)
		pthread_join(s->thread, NULL);
	/* Jobs queued but never seen by the loop: the thread abandoned them. */
	while (list) {
		struct cd_job *j = list;

		list = j->next;
		job_free(j);
	}
	close(s->lfd);
	close(s->wake[0]);
	close(s->wake[1]);
	d->jsrv = NULL;
	/* Jobs still inside Raft hold s through j->d->jsrv: keep s alive until the handle
	 * closes, after which their callbacks (RAFT_CANCELED at raft_close) must not touch it. */
	uv_close((uv_handle_t *)&s->async, on_async_closed);
}
