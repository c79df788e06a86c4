/*
 * clusterd's Raft transport: libraft's TCP transport for listening, and connections of its
 * own with bounded timeouts (the reasons and the rules are in rafttcp.h).
 *
 * A connection attempt owns a TCP handle and a timer. It ends once: handed to libraft
 * (the handshake written: libraft owns the TCP handle from then on), or failed (a connect
 * or write error, the timer, the transport closing): the TCP handle is closed and
 * libraft's callback runs from its close callback with the status, as libraft's own
 * transport does. The attempt is freed when its handles are closed; the transport's
 * close callback runs when libraft's TCP transport and every attempt are gone.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>

#include "clusterd/rafttcp.h"

#define HANDSHAKE_PROTOCOL 1
#define ADDRESS_MAX	   64
#define KEEPALIVE_IDLE_S   5
#define KEEPALIVE_INTVL_S  1
#define KEEPALIVE_PROBES   3

struct attempt {
	struct cd_rafttcp *t;
	struct raft_uv_connect *req; /* libraft's request; NULL: answer nobody */
	uv_tcp_t *tcp;		     /* raft_malloc'd: libraft frees it after a success */
	uv_timer_t timer;
	uv_connect_t connect;
	uv_write_t write;
	uint8_t hs[24 + ADDRESS_MAX];
	bool connected; /* TCP connected; the handshake is being written */
	int status;	/* 0 while going on; non-zero once ended: why it failed, or (handed
			 * to libraft) RAFT_NOCONNECTION so that nothing fails it later */
	int open;	/* handles not closed yet */
	struct kb_list link;
};

static void put_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void maybe_closed(struct cd_rafttcp *t)
{
	raft_uv_transport_close_cb cb = t->close_cb;

	if (!t->closing || !t->tcp_closed || !kb_list_empty(&t->attempts) || !cb)
		return;
	t->close_cb = NULL;
	cb(&t->io);
}

static void release(struct attempt *a)
{
	struct cd_rafttcp *t = a->t;

	if (--a->open > 0)
		return;
	kb_list_del(&a->link);
	free(a);
	maybe_closed(t);
}

static void timer_closed(uv_handle_t *h)
{
	release(h->data);
}

/* The failed attempt's TCP handle is closed: libraft hears of the failure now. */
static void tcp_closed(uv_handle_t *h)
{
	struct attempt *a = h->data;
	struct raft_uv_connect *req = a->req;

	raft_free(h);
	a->tcp = NULL;
	a->req = NULL;
	if (req)
		req->cb(req, NULL, a->status);
	release(a);
}

static void fail(struct attempt *a, int status)
{
	if (a->status)
		return;
	a->status = status;
	uv_timer_stop(&a->timer);
	uv_close((uv_handle_t *)a->tcp, tcp_closed);
	uv_close((uv_handle_t *)&a->timer, timer_closed);
}

/* Whether the attempt's socket has connected, though its callback has not run yet: libuv
 * runs due timers before it polls, so after a stall of the loop (a starved process) the
 * timer comes first even when the connection was made long before. */
static bool socket_connected(struct attempt *a)
{
	struct pollfd p = {.events = POLLOUT};
	int err = 0;
	socklen_t len = sizeof(err);
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)a->tcp, &fd) != 0)
		return false;
	p.fd = fd;
	return poll(&p, 1, 0) == 1 && (p.revents & POLLOUT) &&
	       getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0;
}

static void on_timeout(uv_timer_t *timer)
{
	struct attempt *a = timer->data;

	/* connected: the handshake is a local write, its callback follows; or connected in
	 * the kernel and its callback comes in this turn of the loop */
	if (a->connected || socket_connected(a)) {
		uv_timer_start(&a->timer, on_timeout, CD_RAFT_TCP_CONNECT_MS, 0);
		return;
	}
	fail(a, RAFT_NOCONNECTION);
}

static void on_written(uv_write_t *w, int status)
{
	struct attempt *a = w->data;
	uv_tcp_t *tcp = a->tcp;
	struct raft_uv_connect *req = a->req;

	if (a->status)
		return; /* failed meanwhile: closing */
	if (status < 0) {
		fail(a, RAFT_NOCONNECTION);
		return;
	}
	/* ended: libraft owns the handle now; only the timer is left to close */
	a->status = RAFT_NOCONNECTION;
	a->req = NULL;
	a->tcp = NULL;
	a->open = 1;
	uv_timer_stop(&a->timer);
	uv_close((uv_handle_t *)&a->timer, timer_closed);
	tcp->data = NULL;
	req->cb(req, (uv_stream_t *)tcp, 0);
}

static void on_connected(uv_connect_t *c, int status)
{
	struct attempt *a = c->data;
	size_t n = strlen(a->t->address) + 1, padded = (n + 7) / 8 * 8;
	uv_buf_t buf;

	if (a->status)
		return;
	if (status < 0) {
		fail(a, RAFT_NOCONNECTION);
		return;
	}
	a->connected = true;
	memset(a->hs, 0, sizeof(a->hs));
	put_le64(a->hs, HANDSHAKE_PROTOCOL);
	put_le64(a->hs + 8, a->t->id);
	put_le64(a->hs + 16, padded);
	memcpy(a->hs + 24, a->t->address, n);
	buf = uv_buf_init((char *)a->hs, (unsigned)(24 + padded));
	a->write.data = a;
	if (uv_write(&a->write, (uv_stream_t *)a->tcp, &buf, 1, on_written) < 0)
		fail(a, RAFT_NOCONNECTION);
}

static int parse(const char *address, struct sockaddr_in *sa)
{
	char host[ADDRESS_MAX];
	const char *colon = strrchr(address, ':');
	char *end;
	unsigned long port;

	if (!colon || (size_t)(colon - address) >= sizeof(host))
		return -EINVAL;
	memcpy(host, address, (size_t)(colon - address));
	host[colon - address] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno || *end || end == colon + 1 || port == 0 || port > 65535)
		return -EINVAL;
	return uv_ip4_addr(host, (int)port, sa);
}

static int t_connect(struct raft_uv_transport *io, struct raft_uv_connect *req, raft_id id,
		     const char *address, raft_uv_connect_cb cb)
{
	struct cd_rafttcp *t = io->impl;
	unsigned user_timeout = CD_RAFT_TCP_USER_TIMEOUT_MS;
	struct sockaddr_in sa;
	struct attempt *a;
	uv_os_fd_t fd;

	(void)id;
	if (t->closing)
		return RAFT_CANCELED;
	if (parse(address, &sa) < 0)
		return RAFT_NOCONNECTION;
	a = calloc(1, sizeof(*a));
	if (!a)
		return RAFT_NOMEM;
	a->tcp = raft_malloc(sizeof(*a->tcp));
	if (!a->tcp) {
		free(a);
		return RAFT_NOMEM;
	}
	if (uv_tcp_init_ex(t->loop, a->tcp, AF_INET) < 0) {
		raft_free(a->tcp);
		free(a);
		return RAFT_NOCONNECTION;
	}
	a->t = t;
	a->tcp->data = a;
	uv_timer_init(t->loop, &a->timer);
	a->timer.data = a;
	a->open = 2;
	kb_list_add_tail(&t->attempts, &a->link);
	req->cb = cb;
	/* Best effort: without them the attempt is only slower to notice a cut. */
	uv_tcp_nodelay(a->tcp, 1);
	if (uv_fileno((uv_handle_t *)a->tcp, &fd) == 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &user_timeout,
				 sizeof(user_timeout));
	a->connect.data = a;
	if (uv_tcp_connect(&a->connect, a->tcp, (const struct sockaddr *)&sa, on_connected) < 0) {
		fail(a, RAFT_NOCONNECTION); /* answers nobody: libraft retries on our return */
		return RAFT_NOCONNECTION;
	}
	a->req = req;
	uv_timer_start(&a->timer, on_timeout, CD_RAFT_TCP_CONNECT_MS, 0);
	return 0;
}

static void on_accept(struct raft_uv_transport *tcp, raft_id id, const char *address,
		      uv_stream_t *stream)
{
	struct cd_rafttcp *t = tcp->data;
	int on = 1, idle = KEEPALIVE_IDLE_S, intvl = KEEPALIVE_INTVL_S, probes = KEEPALIVE_PROBES;
	uv_os_fd_t fd;

	if (uv_fileno((uv_handle_t *)stream, &fd) == 0) {
		(void)setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
		(void)setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof(probes));
	}
	t->accept_cb(&t->io, id, address, stream);
}

static int t_init(struct raft_uv_transport *io, raft_id id, const char *address)
{
	struct cd_rafttcp *t = io->impl;
	int rv;

	if (strlen(address) >= sizeof(t->address)) {
		snprintf(io->errmsg, sizeof(io->errmsg), "address too long: %s", address);
		return RAFT_INVALID;
	}
	t->id = id;
	snprintf(t->address, sizeof(t->address), "%s", address);
	rv = t->tcp.init(&t->tcp, id, address);
	if (rv)
		memcpy(io->errmsg, t->tcp.errmsg, sizeof(io->errmsg));
	return rv;
}

static int t_listen(struct raft_uv_transport *io, raft_uv_accept_cb cb)
{
	struct cd_rafttcp *t = io->impl;
	int rv;

	t->accept_cb = cb;
	rv = t->tcp.listen(&t->tcp, on_accept);
	if (rv)
		memcpy(io->errmsg, t->tcp.errmsg, sizeof(io->errmsg));
	return rv;
}

static void tcp_transport_closed(struct raft_uv_transport *tcp)
{
	struct cd_rafttcp *t = tcp->data;

	t->tcp_closed = true;
	maybe_closed(t);
}

static void t_close(struct raft_uv_transport *io, raft_uv_transport_close_cb cb)
{
	struct cd_rafttcp *t = io->impl;
	struct kb_list *pos;

	t->closing = true;
	t->close_cb = cb;
	kb_list_for_each(pos, &t->attempts)
	{
		fail(kb_list_entry(pos, struct attempt, link), RAFT_CANCELED);
	}
	t->tcp.close(&t->tcp, tcp_transport_closed);
}

int cd_rafttcp_init(struct cd_rafttcp *t, uv_loop_t *loop)
{
	int rv;

	memset(t, 0, sizeof(*t));
	t->loop = loop;
	kb_list_init(&t->attempts);
	rv = raft_uv_tcp_init(&t->tcp, loop);
	if (rv)
		return rv;
	t->tcp.data = t;
	t->io.impl = t;
	t->io.init = t_init;
	t->io.listen = t_listen;
	t->io.connect = t_connect;
	t->io.close = t_close;
	return 0;
}

void cd_rafttcp_close(struct cd_rafttcp *t)
{
	raft_uv_tcp_close(&t->tcp);
}
