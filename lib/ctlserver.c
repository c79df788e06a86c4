/*
 * The shared control-socket server (see ctlserver.h). Each client is a uv_pipe_t with a
 * frame decoder; `busy` marks a request handed to the daemon and not yet answered, or a
 * reply being written. A client is freed when its handle has closed and the last
 * reference (the handle's, plus kb_ctlclient_ref's) is gone, so a daemon may reply late to
 * a client that has disconnected meanwhile: the reply is dropped.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "lib/ctlserver.h"
#include "lib/frame.h"
#include "lib/heap.h"

struct kb_ctlclient {
	struct kb_list link; /* in kb_ctlserver.clients while not closing */
	uv_pipe_t pipe;
	struct kb_ctlserver *srv;
	struct kb_frame_decoder dec;
	unsigned refs; /* one for the handle until it has closed, plus kb_ctlclient_ref's */
	bool busy;     /* a request is being served or its reply written */
	bool eof;      /* the peer is gone: close once not busy */
	bool closing;
};

struct write_req {
	uv_write_t w;
	struct kb_buf data;
	struct kb_ctlclient *c;
	bool close_after;
};

#define PREFIX 4u

void kb_ctlclient_ref(struct kb_ctlclient *c)
{
	c->refs++;
}

void kb_ctlclient_unref(struct kb_ctlclient *c)
{
	if (--c->refs == 0) {
		kb_frame_decoder_close(&c->dec);
		kb_free(c);
	}
}

static void on_client_closed(uv_handle_t *h)
{
	kb_ctlclient_unref(h->data);
}

void kb_ctlclient_close(struct kb_ctlclient *c)
{
	c->busy = false;
	if (c->closing)
		return;
	c->closing = true;
	kb_list_del(&c->link);
	if (c->srv->cbs.close)
		c->srv->cbs.close(c->srv->arg, c);
	uv_close((uv_handle_t *)&c->pipe, on_client_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
	static __thread char chunk[64 << 10];

	buf->base = chunk;
	buf->len = sizeof(chunk);
}

static void pump(struct kb_ctlclient *c);

static void on_written(uv_write_t *w, int status)
{
	struct write_req *wr = (struct write_req *)w;
	struct kb_ctlclient *c = wr->c;
	bool close_after = wr->close_after || status < 0 || c->eof;

	kb_buf_close(&wr->data);
	kb_free(wr);
	c->busy = false;
	if (close_after) {
		kb_ctlclient_close(c);
		return;
	}
	pump(c);
}

/* Writes out, a frame whose first PREFIX bytes are reserved for its length; takes
 * ownership of out. The client stays busy until the frame is written. */
static void send_frame(struct kb_ctlclient *c, struct kb_buf *out, bool close_after)
{
	size_t n = out->len - PREFIX;
	struct write_req *wr;
	uv_buf_t b;

	if (c->closing || n > UINT32_MAX) {
		kb_buf_close(out);
		kb_ctlclient_close(c);
		return;
	}
	out->data[0] = (uint8_t)(n >> 24);
	out->data[1] = (uint8_t)(n >> 16);
	out->data[2] = (uint8_t)(n >> 8);
	out->data[3] = (uint8_t)n;
	wr = kb_calloc(1, sizeof(*wr));
	if (!wr) {
		kb_buf_close(out);
		kb_ctlclient_close(c);
		return;
	}
	wr->data = *out;
	wr->c = c;
	wr->close_after = close_after;
	c->busy = true;
	b = uv_buf_init((char *)wr->data.data, (unsigned)wr->data.len);
	if (uv_write(&wr->w, (uv_stream_t *)&c->pipe, &b, 1, on_written) < 0) {
		kb_buf_close(&wr->data);
		kb_free(wr);
		kb_ctlclient_close(c);
	}
}

void kb_ctlclient_reply(struct kb_ctlclient *c, const void *payload, size_t len, bool close_after)
{
	struct kb_buf out;

	if (c->closing) {
		c->busy = false;
		return;
	}
	kb_buf_init(&out, 0);
	if (kb_buf_put_u32be(&out, 0) || kb_buf_append(&out, payload, len)) {
		kb_buf_close(&out);
		kb_ctlclient_close(c);
		return;
	}
	send_frame(c, &out, close_after);
}

void kb_ctlclient_error(struct kb_ctlclient *c, int code, const char *msg, bool close_after)
{
	struct kb_buf out;

	if (c->closing) {
		c->busy = false;
		return;
	}
	kb_buf_init(&out, 0);
	if (kb_buf_put_u32be(&out, 0) || c->srv->cbs.error(c->srv->arg, code, msg, &out)) {
		kb_buf_close(&out);
		kb_ctlclient_close(c);
		return;
	}
	send_frame(c, &out, close_after);
}

/* Hands the next complete request to the daemon, if any and none is in flight. */
static void pump(struct kb_ctlclient *c)
{
	const uint8_t *p;
	size_t len;
	int rv;

	if (c->busy || c->closing)
		return;
	rv = kb_frame_next(&c->dec, &p, &len);
	if (rv == 0)
		return;
	c->busy = true;
	if (rv < 0) {
		kb_ctlclient_error(c, rv, "control frame exceeds the size limit", true);
		return;
	}
	c->srv->cbs.request(c->srv->arg, c, p, len);
}

static void on_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
	struct kb_ctlclient *c = s->data;

	if (n < 0) {
		uv_read_stop(s);
		c->eof = true;
		if (!c->busy)
			kb_ctlclient_close(c);
		return;
	}
	if (n == 0)
		return;
	if (kb_frame_feed(&c->dec, buf->base, (size_t)n) < 0) {
		if (c->busy) {
			kb_ctlclient_close(c);
			return;
		}
		c->busy = true;
		kb_ctlclient_error(c, KB_ETOOBIG, "control frame exceeds the size limit", true);
		return;
	}
	pump(c);
}

static void on_connection(uv_stream_t *s, int status)
{
	struct kb_ctlserver *srv = s->data;
	struct kb_ctlclient *c;

	if (status < 0)
		return;
	c = kb_calloc(1, sizeof(*c));
	if (!c)
		return;
	c->srv = srv;
	c->refs = 1;
	kb_frame_decoder_init(&c->dec, srv->max_frame);
	kb_list_add_tail(&srv->clients, &c->link);
	uv_pipe_init(srv->loop, &c->pipe, 0);
	c->pipe.data = c;
	if (uv_accept(s, (uv_stream_t *)&c->pipe) < 0 ||
	    uv_read_start((uv_stream_t *)&c->pipe, on_alloc, on_read) < 0)
		kb_ctlclient_close(c);
}

/* A Unix stream socket bound to path (a stale socket file unlinked first), mode 0600;
 * or -errno. */
static int bind_socket(const char *path)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd, rv;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	unlink(path);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || chmod(path, 0600) < 0) {
		rv = -errno;
		close(fd);
		return rv;
	}
	return fd;
}

/* Starts listening on path, on a fresh socket (fd < 0) or on the listening socket fd that a
 * previous image of this process handed over. */
static int start(struct kb_ctlserver *srv, uv_loop_t *loop, const char *path, int fd,
		 size_t max_frame, const struct kb_ctlserver_cbs *cbs, void *arg,
		 struct kb_errmsg *err)
{
	int rv;

	memset(srv, 0, sizeof(*srv));
	kb_list_init(&srv->clients);
	srv->loop = loop;
	srv->max_frame = max_frame;
	srv->cbs = *cbs;
	srv->arg = arg;
	srv->path = kb_strdup(path);
	if (!srv->path) {
		kb_errmsg_setf(err, "control socket %s: out of memory", path);
		return -ENOMEM;
	}
	uv_pipe_init(loop, &srv->pipe, 0);
	srv->pipe.data = srv;
	srv->started = true;
	/* The socket is made here rather than by uv_pipe_bind, whose close would unlink the
	 * path: only kb_ctlserver_stop removes it, and a hand-over keeps it. */
	bool fresh = fd < 0;

	if (fresh)
		fd = bind_socket(path);
	if (fd < 0)
		rv = fd;
	else if (fcntl(fd, F_SETFD, FD_CLOEXEC) < 0 || listen(fd, 64) < 0)
		rv = -errno;
	else
		rv = uv_pipe_open(&srv->pipe, fd);
	if (rv < 0 && fd >= 0)
		close(fd);
	else if (rv == 0)
		rv = uv_listen((uv_stream_t *)&srv->pipe, 64, on_connection);
	if (rv < 0) {
		kb_errmsg_setf(err, "control socket %s: %s", path, uv_strerror(rv));
		if (fresh && fd >= 0)
			unlink(path);
		uv_close((uv_handle_t *)&srv->pipe, NULL);
		kb_free(srv->path);
		srv->path = NULL;
		srv->started = false;
		return rv;
	}
	return 0;
}

int kb_ctlserver_start(struct kb_ctlserver *srv, uv_loop_t *loop, const char *path,
		       size_t max_frame, const struct kb_ctlserver_cbs *cbs, void *arg,
		       struct kb_errmsg *err)
{
	return start(srv, loop, path, -1, max_frame, cbs, arg, err);
}

/* True when fd is a listening Unix stream socket bound to path. */
static bool listens_on(int fd, const char *path)
{
	struct sockaddr_un sa;
	socklen_t len = sizeof(sa);
	int type = 0, acc = 0;
	socklen_t tl = sizeof(type), al = sizeof(acc);

	memset(&sa, 0, sizeof(sa));
	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX ||
	    getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM ||
	    getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &acc, &al) < 0 || !acc)
		return false;
	sa.sun_path[sizeof(sa.sun_path) - 1] = '\0';
	return strcmp(sa.sun_path, path) == 0;
}

int kb_ctlserver_adopt(struct kb_ctlserver *srv, uv_loop_t *loop, const char *path, int fd,
		       size_t max_frame, const struct kb_ctlserver_cbs *cbs, void *arg,
		       struct kb_errmsg *err)
{
	if (fd < 0 || !listens_on(fd, path)) {
		if (fd >= 0)
			close(fd);
		return start(srv, loop, path, -1, max_frame, cbs, arg, err);
	}
	return start(srv, loop, path, fd, max_frame, cbs, arg, err);
}

int kb_ctlserver_hand_over(struct kb_ctlserver *srv)
{
	int fd = -1;
	uv_os_fd_t lfd;

	if (!srv->started || srv->path == NULL || uv_is_closing((uv_handle_t *)&srv->pipe))
		return -1;
	if (uv_fileno((uv_handle_t *)&srv->pipe, &lfd) == 0)
		fd = fcntl(lfd, F_DUPFD, 3); /* without FD_CLOEXEC: it survives the exec */
	if (fd < 0)
		return -1;
	/* No more accepts here; the clients already connected are served on. */
	uv_close((uv_handle_t *)&srv->pipe, NULL);
	kb_free(srv->path);
	srv->path = NULL; /* kb_ctlserver_stop leaves the path to the next image */
	return fd;
}

void kb_ctlserver_stop(struct kb_ctlserver *srv)
{
	if (!srv->started)
		return;
	while (!kb_list_empty(&srv->clients))
		kb_ctlclient_close(kb_list_entry(srv->clients.next, struct kb_ctlclient, link));
	if (!uv_is_closing((uv_handle_t *)&srv->pipe))
		uv_close((uv_handle_t *)&srv->pipe, NULL);
	if (srv->path)
		unlink(srv->path);
	kb_free(srv->path);
	srv->path = NULL;
	srv->started = false;
}
