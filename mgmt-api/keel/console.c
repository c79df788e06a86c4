/*
 * `keel vm console VM`: the VM's serial console.
 *
 * First the end of the console log (vm_console, VmkReply.console_tail) is printed. Then,
 * unless --no-follow, keel opens the VM's live console stream through the transport (the
 * local one connects to VmInfo.console_socket) and copies stream -> stdout and
 * stdin -> stream. When stdin is a terminal it is put in raw mode, so keys reach the guest
 * as typed, and Ctrl-] leaves; when it is not, its bytes are forwarded as they are and its
 * end stops only the forwarding. The session ends when the stream ends, on Ctrl-], after
 * --follow-for SECONDS, or on SIGINT/SIGTERM/SIGHUP; the terminal is restored in every case.
 * Following a VM that is not powered on is an error (after its log's end is printed).
 * With --json the tail is printed as JSON and nothing is followed.
 *
 * Through hostd's API (--server) the console is the Console stream, output only: the end
 * of the log (--tail BYTES, at most 1 MiB), and with --follow what the guest writes after
 * it, until the VM is unregistered or keel is interrupted; nothing is sent to the guest.
 * Without --follow keel prints the log's end and exits (there --no-follow is the default;
 * --follow-for is not available: bound it with timeout(1)).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/time.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

#define ESCAPE_CHAR  0x1d	/* Ctrl-] */
#define API_TAIL_MAX (1u << 20) /* hostd's limit of tail_bytes */

enum { O_NO_FOLLOW = 1, O_FOLLOW_FOR, O_TAIL, O_FOLLOW };

static const struct kc_opt console_opts[] = {
    {"no-follow", NULL, "print the end of the console log and exit", O_NO_FOLLOW, false},
    {"follow", NULL,
     "keep printing what the guest writes (the default on the host; through the API: "
     "output only, until interrupted or the VM is unregistered)",
     O_FOLLOW, false},
    {"follow-for", "SECONDS", "stop following after this long", O_FOLLOW_FOR, false},
    {"tail", "BYTES", "how much of the console log to print first (default 4096)", O_TAIL, false},
    {NULL, NULL, NULL, 0, false},
};

static volatile sig_atomic_t stop_signal;

static void on_signal(int sig)
{
	stop_signal = sig;
}

/* Writes all of p to fd. 0 or -errno. */
static int write_all(int fd, const void *p, size_t n)
{
	const char *c = p;

	while (n > 0) {
		ssize_t w = write(fd, c, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		c += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Copies between the console stream and the terminal until one of the ends described at
 * the top. deadline_ns is 0 for none. 0, or -errno of a failed read or write. */
static int follow(int sock, bool tty, uint64_t deadline_ns)
{
	bool stdin_open = true;
	char buf[65536];

	while (!stop_signal) {
		struct pollfd p[2] = {{.fd = sock, .events = POLLIN},
				      {.fd = STDIN_FILENO, .events = POLLIN}};
		int timeout = -1, n;
		ssize_t r;

		if (deadline_ns) {
			uint64_t now = kb_now_ns();

			if (now >= deadline_ns)
				return 0;
			timeout =
			    (int)((deadline_ns - now + KB_NSEC_PER_MSEC - 1) / KB_NSEC_PER_MSEC);
		}
		n = poll(p, stdin_open ? 2 : 1, timeout);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (p[0].revents) {
			r = read(sock, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r < 0)
				return errno == ECONNRESET ? 0 : -errno;
			if (r == 0)
				return 0; /* the VM's console closed: powered off or vmx gone */
			if (write_all(STDOUT_FILENO, buf, (size_t)r) != 0)
				return 0; /* nobody reads our output any more */
		}
		if (stdin_open && p[1].revents) {
			char *esc;

			r = read(STDIN_FILENO, buf, sizeof(buf));
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0) {
				stdin_open = false;
				continue;
			}
			esc = tty ? memchr(buf, ESCAPE_CHAR, (size_t)r) : NULL;
			if (write_all(sock, buf, esc ? (size_t)(esc - buf) : (size_t)r) != 0)
				return 0;
			if (esc)
				return 0;
		}
	}
	return 0;
}

/* Runs follow() with the terminal in raw mode when stdin is one, restoring it after. */
static int session(struct kc_ctx *ctx, int sock, const char *name, uint64_t follow_ms)
{
	struct sigaction sa = {.sa_handler = on_signal};
	struct termios saved, raw;
	bool tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &saved) == 0;
	uint64_t deadline = follow_ms ? kb_now_ns() + follow_ms * KB_NSEC_PER_MSEC : 0;
	int rc;

	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	if (tty) {
		raw = saved;
		cfmakeraw(&raw);
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &raw);
		fprintf(stderr, "Connected to the console of %s. Press Ctrl-] to leave.\r\n", name);
	}
	rc = follow(sock, tty, deadline);
	if (tty) {
		tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved);
		fprintf(stderr, "\nLeft the console of %s.\n", name);
	}
	if (rc)
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "console of %s: %s", name, strerror(-rc));
	return KC_EXIT_OK;
}

/* Writes the console tail. A tail that filled all it was allowed was most likely cut
 * inside a line: that partial first line is left out. 0 or -errno. */
static int print_tail(const ProtobufCBinaryData *tail, uint32_t asked)
{
	const uint8_t *p = tail->data;
	size_t n = tail->len;

	if (n > 0 && n >= asked) {
		const uint8_t *nl = memchr(p, '\n', n);

		if (nl && (size_t)(nl - p) + 1 < n) {
			n -= (size_t)(nl - p) + 1;
			p = nl + 1;
		}
	}
	return n ? write_all(STDOUT_FILENO, p, n) : 0;
}

/* The VM's description with its console socket: from the console reply, else vm_get.
 * *owner is the reply to free. KC_EXIT_OK or a reported failure. */
static int find_vm(struct kc_ctx *ctx, const char *vm, Keel__Vmk__VmkReply *first,
		   const Keel__Vmk__VmInfo **info, Keel__Vmk__VmkReply **owner)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmGet get = KEEL__VMK__VMK_VM_GET__INIT;
	int rc;

	*owner = NULL;
	if (first->n_vms > 0 && first->vms[0]->console_socket[0]) {
		*info = first->vms[0];
		return KC_EXIT_OK;
	}
	get.vm = (char *)vm;
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_GET;
	req.vm_get = &get;
	rc = kc_rpc(ctx, &req, owner);
	if (rc)
		return rc;
	if ((*owner)->n_vms == 0)
		return kc_fail(ctx, KC_EXIT_PROTO, 0, "vmkernel's reply names no VM");
	*info = (*owner)->vms[0];
	return KC_EXIT_OK;
}

/* ---- through hostd's API ------------------------------------------------------------------ */

struct api_stream {
	bool follow;
	struct kb_buf all; /* without --follow: the whole tail, printed at the end */
	int err;	   /* a failed write or append */
};

static int api_chunk(const ProtobufCMessage *msg, void *arg)
{
	const Keel__Vim__ConsoleChunk *ch = (const Keel__Vim__ConsoleChunk *)msg;
	struct api_stream *s = arg;

	if (!s->follow) {
		s->err = kb_buf_append(&s->all, ch->data.data, ch->data.len);
		return s->err;
	}
	s->err = write_all(STDOUT_FILENO, ch->data.data, ch->data.len);
	return s->err; /* nobody reads our output any more: stop */
}

static int console_api(struct kc_ctx *ctx, const struct kc_call *call, uint32_t tail)
{
	Keel__Vim__ConsoleRequest rq = KEEL__VIM__CONSOLE_REQUEST__INIT;
	struct api_stream s = {.follow = kc_has(call, O_FOLLOW)};
	ProtobufCBinaryData bin;
	char url[KC_URL_MAX];
	struct kl_client *c;
	struct kl_status st;
	int rc;

	if (kc_opt(call, O_FOLLOW_FOR))
		return kc_usage(ctx, call,
				"--follow-for is not available through hostd's API: bound --follow "
				"with timeout(1)");
	if (s.follow && kc_has(call, O_NO_FOLLOW))
		return kc_usage(ctx, call, "give --follow or --no-follow, not both");
	if (s.follow && ctx->json)
		return kc_usage(ctx, call, "--json prints the log's end only: leave out --follow");
	if (tail > API_TAIL_MAX)
		return kc_usage(ctx, call, "through hostd's API --tail is at most %u bytes",
				API_TAIL_MAX);
	rc = kc_api_open(ctx, call, &c);
	if (rc)
		return rc;
	kc_api_server(ctx, call, url, sizeof(url));
	kb_buf_init(&s.all, API_TAIL_MAX);
	rq.vm = (char *)call->pos[0];
	rq.tail_bytes = tail;
	rq.follow = s.follow;
	if (kl_client_stream(c, "Console", &rq.base, &keel__vim__console_chunk__descriptor,
			     api_chunk, &s, &st) != 0) {
		rc = kc_api_fail(ctx, url, true, NULL, &st);
		goto out;
	}
	if (s.err && !s.follow) {
		rc = kc_fail(ctx, KC_EXIT_FAILED, s.err, "console of %s: %s", call->pos[0],
			     kb_strerror(s.err));
		goto out;
	}
	rc = KC_EXIT_OK;
	if (s.follow)
		goto out;
	bin.data = s.all.data;
	bin.len = s.all.len;
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "vm", call->pos[0]);
		kc_json_strn(&j, "console_tail", bin.data, bin.len);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		print_tail(&bin, tail);
	}
out:
	kb_buf_close(&s.all);
	kl_client_destroy(c);
	return rc;
}

/* ---- through vmkernel's socket ----------------------------------------------------------- */

static int console_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vmk__VmkRequest req = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmConsole con = KEEL__VMK__VMK_VM_CONSOLE__INIT;
	Keel__Vmk__VmkReply *rp, *rp2 = NULL;
	const Keel__Vmk__VmInfo *vm = NULL;
	struct kb_errmsg err = {{0}};
	uint64_t follow_ms = 0;
	char name[256];
	int rc, fd;

	con.tail_bytes = 4096;
	if (kc_opt(call, O_TAIL) &&
	    kc_parse_u32(kc_opt(call, O_TAIL), 0, 16u << 20, &con.tail_bytes))
		return kc_usage(ctx, call, "bad --tail '%s': want bytes, at most 16777216",
				kc_opt(call, O_TAIL));
	if (kc_api_wanted(ctx))
		return console_api(ctx, call, con.tail_bytes);
	if (kc_has(call, O_FOLLOW) && kc_has(call, O_NO_FOLLOW))
		return kc_usage(ctx, call, "give --follow or --no-follow, not both");
	if (kc_opt(call, O_FOLLOW_FOR) && kc_parse_seconds(kc_opt(call, O_FOLLOW_FOR), &follow_ms))
		return kc_usage(ctx, call, "bad --follow-for '%s': want seconds",
				kc_opt(call, O_FOLLOW_FOR));
	con.vm = (char *)call->pos[0];
	req.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_CONSOLE;
	req.vm_console = &con;
	rc = kc_rpc(ctx, &req, &rp);
	if (rc)
		return rc;
	if (ctx->json) {
		kc_reply_json(rp, KC_R_VMS | KC_R_CONSOLE);
		goto free_reply;
	}
	if (print_tail(&rp->console_tail, con.tail_bytes) != 0)
		goto free_reply;
	if (kc_has(call, O_NO_FOLLOW))
		goto free_reply;
	rc = find_vm(ctx, con.vm, rp, &vm, &rp2);
	if (rc)
		goto free_reply;
	kc_clean(vm->name[0] ? vm->name : con.vm, name, sizeof(name));
	if (vm->power_state[0] && strcmp(vm->power_state, "poweredOn") != 0) {
		rc = kc_fail(ctx, KC_EXIT_FAILED, KB_ESTATE,
			     "VM %s is %s: it has no live console (--no-follow shows its log only)",
			     name, kc_fmt_power_state(vm->power_state));
		goto free_reply;
	}
	rc = ctx->tr->console_open(ctx->tr, vm, &fd, &err);
	if (rc) {
		rc = kc_fail(ctx, rc, 0, "%s", err.msg);
		goto free_reply;
	}
	rc = session(ctx, fd, name, follow_ms);
	close(fd);
free_reply:
	kc_reply_free(rp2);
	kc_reply_free(rp);
	return rc;
}

const struct kc_cmd kc_vm_console_cmd = {
    .name = "console",
    .args = "VM",
    .summary = "Show a VM's console and attach to it (Ctrl-] leaves).",
    .detail = "Prints the end of the console log, then follows the live console: guest\n"
	      "output goes to stdout, stdin goes to the guest. On a terminal, keys are sent\n"
	      "as typed and Ctrl-] leaves. With --json, prints the log's end as JSON only.\n"
	      "Through hostd's API (--server): the log's end, and with --follow the guest's\n"
	      "output as it comes (no input is sent to the guest).\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = console_opts,
    .run = console_run,
    .api = true,
};
