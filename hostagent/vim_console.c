/*
 * Console: a VM's console log as a stream of ConsoleChunk (hostagent/vim_host.h,
 * docs/hostd-host.md "Console").
 *
 * Happy path: on the loop, the session; on a worker, vmkernel's vm_get names the VM (name,
 * uuid or "vm-<uuid>") and gives its console log's path (VmInfo.console_log); on the loop,
 * VirtualMachine.Interact.ConsoleInteract on {root, host-<id>, vm-<uuid>}, then the file
 * is read with libuv's asynchronous file requests (the reads run on the thread pool, never
 * on the loop) in chunks of at most CHUNK_MAX bytes: from tail_bytes before its end (4096
 * when 0, at most TAIL_MAX) up to the end it had when the call came, each chunk one
 * message. Without follow the call then ends OK. With follow, at the end of the file a
 * timer looks again every POLL_MS: bytes added are sent, a file that shrank (truncated)
 * or was replaced (another inode: the VM powered on again) is read again from its start,
 * and every CHECK_EVERY polls a worker asks vmkernel whether the VM is still registered;
 * once it is not, what is left of the file is sent and the call ends OK.
 *
 * Flow control: a chunk hd_call_send refuses with -ENOBUFS stays in the buffer and is
 * sent again from the drain callback; nothing is read meanwhile, so a client that stops
 * reading costs one buffer, not the file.
 *
 * Failure modes: the VM is not on this host (NOT_FOUND, after the privilege on the host
 * was checked, so a caller without rights learns nothing); vmkernel does not answer
 * (UNAVAILABLE); the log cannot be read (UNAVAILABLE with the reason); the client goes
 * away (the cancel callback: outstanding requests finish, then everything is freed).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hostagent/vim.h"
#include "hostagent/vim_host.h"
#include "lib/heap.h"
#include "vim.pb-c.h"
#include "vmk.pb-c.h"

#define TAIL_DEFAULT  4096
#define TAIL_MAX      (1u << 20)
#define CHUNK_MAX     (64u << 10)
#define POLL_MS	      100
#define CHECK_EVERY   10 /* polls between two looks at whether the VM is registered */
#define REPLY_MAX     (16u << 20)
#define VMK_TIMEOUT_S 30

struct con {
	struct hd_vim *v;
	struct hd_call *call; /* NULL once the call ended or the client went away */
	bool done;	      /* nothing more to do: freed once nothing is outstanding */
	uv_work_t work;	      /* vmkernel lookups */
	bool work_busy;
	uv_fs_t fs; /* one file request at a time */
	bool fs_busy;
	uv_timer_t timer;
	bool timer_open;
	bool follow;
	uint32_t tail;
	char vm[256];	 /* as the client named it */
	char uuid[64];	 /* after the lookup; "" = not here */
	char path[4096]; /* the console log */
	int code;	 /* of the last lookup: 0, KB_ENOTFOUND, -EIO */
	bool gone;	 /* the VM is no longer registered */
	unsigned polls;
	uv_file fd; /* -1 when not open */
	uint64_t ino;
	uint64_t pos; /* next byte to read */
	uint64_t end; /* without follow: where to stop */
	uint8_t *buf;
	size_t pending; /* bytes of buf read and not yet sent */
};

static void step(struct con *c);

/* ---- lifetime --------------------------------------------------------------------------------- */

static void timer_closed(uv_handle_t *h)
{
	kb_free(h->data);
}

/* Frees c once no request is outstanding; the last callback calls it again. */
static void release(struct con *c)
{
	c->done = true;
	if (c->fs_busy || c->work_busy)
		return;
	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	kb_free(c->buf);
	c->buf = NULL;
	if (c->timer_open) {
		c->timer_open = false;
		uv_close((uv_handle_t *)&c->timer, timer_closed);
		return;
	}
	kb_free(c);
}

/* Ends the call (when it is still ours) and releases c. */
static void finish(struct con *c, enum hd_status status, const char *text)
{
	if (c->call) {
		hd_call_on_cancel(c->call, NULL, NULL);
		hd_call_on_drain(c->call, NULL, NULL);
		hd_call_finish(c->call, status, text);
		c->call = NULL;
	}
	release(c);
}

static void on_cancel(struct hd_call *call, void *arg)
{
	struct con *c = arg;

	(void)call;
	c->call = NULL;
	release(c);
}

/* ---- vmkernel (workers) ----------------------------------------------------------------------- */

static Keel__Vmk__VmkReply *vm_get(struct con *c, const char *key)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmGet get = KEEL__VMK__VMK_VM_GET__INIT;
	size_t len = 0;
	uint8_t *p;
	Keel__Vmk__VmkReply *rp;

	get.vm = (char *)key;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_GET;
	rq.vm_get = &get;
	p = hd_backend_call(c->v->vmk_sock, &rq.base, VMK_TIMEOUT_S, REPLY_MAX, &len);
	rp = p ? keel__vmk__vmk_reply__unpack(NULL, len, p) : NULL;
	kb_free(p);
	return rp;
}

/* The first lookup: uuid and log path by the name the client gave. */
static void lookup_work(uv_work_t *w)
{
	struct con *c = w->data;
	Keel__Vmk__VmkReply *rp = vm_get(c, c->vm);

	if (rp && rp->code == KB_ENOTFOUND && strncmp(c->vm, "vm-", 3) == 0) {
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
		rp = vm_get(c, c->vm + 3);
	}
	if (!rp) {
		c->code = -EIO;
		return;
	}
	if (rp->code == 0 && rp->n_vms > 0) {
		snprintf(c->uuid, sizeof(c->uuid), "%s", rp->vms[0]->uuid);
		snprintf(c->path, sizeof(c->path), "%s", rp->vms[0]->console_log);
		c->code = 0;
	} else {
		c->code = rp->code ? rp->code : KB_ENOTFOUND;
	}
	keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

/* The later looks: is the VM still registered? */
static void check_work(uv_work_t *w)
{
	struct con *c = w->data;
	Keel__Vmk__VmkReply *rp = vm_get(c, c->uuid);

	if (rp && rp->code == KB_ENOTFOUND)
		c->gone = true;
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

static void check_done(uv_work_t *w, int status)
{
	struct con *c = w->data;

	(void)status;
	c->work_busy = false;
	if (c->done)
		release(c);
}

/* ---- the file (loop; requests on the thread pool) --------------------------------------------- */

static void fs_done(struct con *c)
{
	c->fs_busy = false;
	uv_fs_req_cleanup(&c->fs);
}

static void send_pending(struct con *c);
static void poll_tick(uv_timer_t *t);

static void on_drain(struct hd_call *call, void *arg)
{
	struct con *c = arg;

	hd_call_on_drain(call, NULL, NULL);
	send_pending(c);
}

static void send_pending(struct con *c)
{
	Keel__Vim__ConsoleChunk m = KEEL__VIM__CONSOLE_CHUNK__INIT;
	int rv;

	m.data.data = c->buf;
	m.data.len = c->pending;
	rv = hd_call_send(c->call, &m.base);
	if (rv == -ENOBUFS) {
		hd_call_on_drain(c->call, on_drain, c);
		return;
	}
	if (rv) {
		finish(c, HD_INTERNAL, kb_strerror(rv));
		return;
	}
	c->pending = 0;
	step(c);
}

static void read_cb(uv_fs_t *req)
{
	struct con *c = req->data;
	ssize_t r = req->result;

	fs_done(c);
	if (c->done) {
		release(c);
		return;
	}
	if (r < 0) {
		char text[512];

		snprintf(text, sizeof(text), "reading %s: %s", c->path, uv_strerror((int)r));
		finish(c, HD_UNAVAILABLE, text);
		return;
	}
	if (r == 0) { /* the end for now */
		c->end = c->pos;
		if (!c->follow || c->gone) {
			finish(c, HD_OK, NULL);
			return;
		}
		uv_timer_start(&c->timer, poll_tick, POLL_MS, 0);
		return;
	}
	c->pos += (uint64_t)r;
	c->pending = (size_t)r;
	send_pending(c);
}

/* Reads the next chunk, or waits at the end (follow), or ends the call. */
static void step(struct con *c)
{
	uv_buf_t b;
	size_t n = CHUNK_MAX;
	int rv;

	if (c->done)
		return;
	if (c->fd < 0 || (!c->follow && c->pos >= c->end)) {
		if (!c->follow || c->gone) {
			finish(c, HD_OK, NULL);
			return;
		}
		uv_timer_start(&c->timer, poll_tick, POLL_MS, 0);
		return;
	}
	if (!c->follow && c->end - c->pos < n)
		n = (size_t)(c->end - c->pos);
	b = uv_buf_init((char *)c->buf, (unsigned)n);
	c->fs.data = c;
	rv = uv_fs_read(c->v->loop, &c->fs, c->fd, &b, 1, (int64_t)c->pos, read_cb);
	if (rv) {
		uv_fs_req_cleanup(&c->fs);
		finish(c, HD_UNAVAILABLE, uv_strerror(rv));
		return;
	}
	c->fs_busy = true;
}

static void open_cb(uv_fs_t *req);

static void reopen(struct con *c)
{
	int rv;

	if (c->fd >= 0) {
		close(c->fd);
		c->fd = -1;
	}
	c->fs.data = c;
	rv = uv_fs_open(c->v->loop, &c->fs, c->path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0, open_cb);
	if (rv) {
		uv_fs_req_cleanup(&c->fs);
		finish(c, HD_UNAVAILABLE, uv_strerror(rv));
		return;
	}
	c->fs_busy = true;
}

static void fstat_cb(uv_fs_t *req)
{
	struct con *c = req->data;
	int r = (int)req->result;
	uint64_t size = req->statbuf.st_size, ino = req->statbuf.st_ino;
	bool first = c->end == UINT64_MAX;

	fs_done(c);
	if (c->done) {
		release(c);
		return;
	}
	if (r < 0) {
		char text[512];

		snprintf(text, sizeof(text), "%s: %s", c->path, uv_strerror(r));
		finish(c, HD_UNAVAILABLE, text);
		return;
	}
	c->ino = ino;
	if (first) {
		c->pos = size > c->tail ? size - c->tail : 0;
		c->end = size;
	} else {
		c->pos = 0; /* a new file (powered on again): from its start */
	}
	step(c);
}

static void open_cb(uv_fs_t *req)
{
	struct con *c = req->data;
	int r = (int)req->result;

	fs_done(c);
	if (c->done) {
		if (r >= 0)
			close(r);
		release(c);
		return;
	}
	if (r == UV_ENOENT) { /* no log yet: nothing to send, or wait for it */
		if (c->end == UINT64_MAX)
			c->end = 0;
		step(c);
		return;
	}
	if (r < 0) {
		char text[512];

		snprintf(text, sizeof(text), "%s: %s", c->path, uv_strerror(r));
		finish(c, HD_UNAVAILABLE, text);
		return;
	}
	c->fd = r;
	c->fs.data = c;
	r = uv_fs_fstat(c->v->loop, &c->fs, c->fd, fstat_cb);
	if (r) {
		uv_fs_req_cleanup(&c->fs);
		finish(c, HD_UNAVAILABLE, uv_strerror(r));
		return;
	}
	c->fs_busy = true;
}

/* A look at the file by its path: grown, shrunk, replaced or gone. */
static void stat_cb(uv_fs_t *req)
{
	struct con *c = req->data;
	int r = (int)req->result;
	uint64_t size = req->statbuf.st_size, ino = req->statbuf.st_ino;

	fs_done(c);
	if (c->done) {
		release(c);
		return;
	}
	if (r < 0 || (c->fd < 0 && r == 0) || (r == 0 && ino != c->ino)) {
		if (r == 0) { /* appeared or replaced: read the new file from its start */
			reopen(c);
			return;
		}
		step(c); /* still no file: wait */
		return;
	}
	if (size < c->pos)
		c->pos = 0; /* truncated: its new contents from the start */
	step(c);
}

static void poll_tick(uv_timer_t *t)
{
	struct con *c = t->data;
	int rv;

	if (c->done)
		return;
	if (++c->polls % CHECK_EVERY == 0 && !c->work_busy) {
		c->work.data = c;
		if (uv_queue_work(c->v->loop, &c->work, check_work, check_done) == 0)
			c->work_busy = true;
	}
	c->fs.data = c;
	rv = uv_fs_stat(c->v->loop, &c->fs, c->path, stat_cb);
	if (rv) {
		uv_fs_req_cleanup(&c->fs);
		finish(c, HD_UNAVAILABLE, uv_strerror(rv));
		return;
	}
	c->fs_busy = true;
}

/* ---- the call ---------------------------------------------------------------------------------- */

static void lookup_done(uv_work_t *w, int status)
{
	struct con *c = w->data;
	struct hd_vim *v = c->v;
	char host[40], vmid[80];
	const char *path[3] = {HOSTD_AUTH_ROOT_ENTITY, host, vmid};

	c->work_busy = false;
	if (c->done) {
		release(c);
		return;
	}
	snprintf(host, sizeof(host), "host-%" PRIu64, v->host_id);
	snprintf(vmid, sizeof(vmid), "vm-%s", c->uuid);
	if (status && !c->code)
		c->code = -EIO;
	if (!hd_vim_authorize(c->call, path, c->uuid[0] ? 3 : 2,
			      "VirtualMachine.Interact.ConsoleInteract")) {
		c->call = NULL; /* answered */
		release(c);
		return;
	}
	if (c->code == -EIO) {
		char text[600];

		snprintf(text, sizeof(text), "vmkernel at %s does not answer", v->vmk_sock);
		finish(c, HD_UNAVAILABLE, text);
		return;
	}
	if (c->code || !c->uuid[0]) {
		char text[400];

		snprintf(text, sizeof(text), "VM %s is not found on this host", c->vm);
		finish(c, HD_NOT_FOUND, text);
		return;
	}
	if (!c->path[0]) {
		finish(c, HD_FAILED_PRECONDITION, "the VM has no console log");
		return;
	}
	c->buf = kb_malloc(CHUNK_MAX);
	if (!c->buf) {
		finish(c, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	if (c->follow) {
		uv_timer_init(v->loop, &c->timer);
		c->timer.data = c;
		c->timer_open = true;
	}
	kb_log(v->log, KB_LOG_DEBUG, "console of vm-%s (%s) for %s%s", c->uuid, c->path,
	       hd_call_peer(c->call), c->follow ? ", following" : "");
	reopen(c);
}

void hd_vim_console(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__ConsoleRequest *rq = (const Keel__Vim__ConsoleRequest *)req;
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};
	struct con *c;

	if (!hd_vim_authorize(call, root, 1, NULL))
		return;
	if (!rq->vm || !rq->vm[0] || strlen(rq->vm) >= sizeof(c->vm)) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "name the VM (its id, uuid or name)");
		return;
	}
	if (rq->tail_bytes > TAIL_MAX) {
		hd_call_error(call, HD_INVALID_ARGUMENT, "tail_bytes is at most %u", TAIL_MAX);
		return;
	}
	c = kb_calloc(1, sizeof(*c));
	if (!c) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	c->v = hd_call_server_data(call);
	c->call = call;
	c->fd = -1;
	c->end = UINT64_MAX; /* not opened yet */
	c->follow = rq->follow;
	c->tail = rq->tail_bytes ? rq->tail_bytes : TAIL_DEFAULT;
	snprintf(c->vm, sizeof(c->vm), "%s", rq->vm);
	c->work.data = c;
	hd_call_on_cancel(call, on_cancel, c);
	if (uv_queue_work(c->v->loop, &c->work, lookup_work, lookup_done) != 0) {
		hd_call_on_cancel(call, NULL, NULL);
		kb_free(c);
		hd_call_error(call, HD_UNAVAILABLE, "busy");
		return;
	}
	c->work_busy = true;
}
