/*
 * The fake vmkernel the keel CLI tests run against, and keel run as a child process.
 *
 * The fake is a thread listening on a Unix socket in a temp directory: it decodes each
 * VmkRequest frame with the generated code, records it, and answers with the canned VmkReply
 * the test set for that request (code 0 and nothing else by default), or misbehaves on
 * purpose (garbage, a close without a reply, no reply at all). A second thread plays a VM's
 * console socket.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/frame.h"
#include "lib/time.h"
#include "tests/unit/keel_cli_helpers.h"
#include "tests/unit/vmm_helpers.h"
#include "vmk.pb-c.h"

extern char **environ;

/* ---- the fake vmkernel -------------------------------------------------------------- */

struct kc_fake kc_fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

char kc_sock_path[512], kc_con_path[512];

void kc_fake_reset(void)
{
	pthread_mutex_lock(&kc_fake.mu);
	kc_fake.mode = FAKE_REPLY;
	for (int i = 0; i < MAX_CASES; i++)
		kb_buf_reset(&kc_fake.replies[i]);
	for (int i = 0; i < kc_fake.nreqs; i++)
		keel__vmk__vmk_request__free_unpacked(kc_fake.reqs[i], NULL);
	kc_fake.nreqs = 0;
	kc_fake.undecodable = 0;
	kc_fake.con_close_after_echo = true;
	kc_fake.con_in_len = 0;
	pthread_mutex_unlock(&kc_fake.mu);
}

void kc_fake_set(Keel__Vmk__VmkRequest__ReqCase c, const Keel__Vmk__VmkReply *rp)
{
	size_t n = keel__vmk__vmk_reply__get_packed_size(rp);
	void *p;

	pthread_mutex_lock(&kc_fake.mu);
	kb_buf_reset(&kc_fake.replies[c]);
	assert_int_equal(kb_buf_put_zero(&kc_fake.replies[c], n, &p), 0);
	keel__vmk__vmk_reply__pack(rp, p);
	pthread_mutex_unlock(&kc_fake.mu);
}

void kc_fake_set_mode(enum kc_fake_mode m)
{
	pthread_mutex_lock(&kc_fake.mu);
	kc_fake.mode = m;
	pthread_mutex_unlock(&kc_fake.mu);
}

/* The i-th request the fake received (the test reads it after keel exited). */
const Keel__Vmk__VmkRequest *kc_req_at(int i)
{
	assert_true(i < kc_fake.nreqs);
	return kc_fake.reqs[i];
}

static void serve_conn(int fd)
{
	static const uint8_t empty_reply[] = {0};
	struct kb_buf in, out;

	kb_buf_init(&in, 1 << 20);
	kb_buf_init(&out, 0);
	while (kb_frame_recv(fd, &in, 1 << 20) == 0) {
		Keel__Vmk__VmkRequest *rq = keel__vmk__vmk_request__unpack(NULL, in.len, in.data);
		enum kc_fake_mode mode;

		pthread_mutex_lock(&kc_fake.mu);
		if (!rq)
			kc_fake.undecodable++;
		else if (kc_fake.nreqs < MAX_REQS)
			kc_fake.reqs[kc_fake.nreqs++] = rq;
		else
			keel__vmk__vmk_request__free_unpacked(rq, NULL);
		mode = kc_fake.mode;
		kb_buf_reset(&out);
		if (rq && (unsigned)rq->req_case < MAX_CASES)
			kb_buf_append(&out, kc_fake.replies[rq->req_case].data,
				      kc_fake.replies[rq->req_case].len);
		pthread_mutex_unlock(&kc_fake.mu);
		if (mode == FAKE_CLOSE)
			break;
		if (mode == FAKE_HANG) {
			char c;
			while (read(fd, &c, 1) > 0)
				;
			break;
		}
		if (mode == FAKE_GARBAGE)
			kb_frame_send(fd, "\xff\xff\xff", 3);
		else
			kb_frame_send(fd, out.len ? out.data : empty_reply, out.len);
	}
	kb_buf_close(&out);
	kb_buf_close(&in);
	close(fd);
}

/* The console: greets, then echoes what it gets as "echo:<bytes>", recording it. */
static void serve_console(int fd)
{
	char buf[1024];
	ssize_t n;

	(void)!write(fd, "guest says hi\r\n", 15);
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		bool close_now;

		pthread_mutex_lock(&kc_fake.mu);
		if (kc_fake.con_in_len + (size_t)n < sizeof(kc_fake.con_in)) {
			memcpy(kc_fake.con_in + kc_fake.con_in_len, buf, (size_t)n);
			kc_fake.con_in_len += (size_t)n;
		}
		close_now = kc_fake.con_close_after_echo;
		pthread_mutex_unlock(&kc_fake.mu);
		(void)!write(fd, "echo:", 5);
		(void)!write(fd, buf, (size_t)n);
		if (close_now)
			break;
	}
	close(fd);
}

static void *fake_main(void *arg)
{
	int lfd = *(int *)arg;

	for (;;) {
		struct pollfd p[2] = {{.fd = lfd, .events = POLLIN},
				      {.fd = kc_fake.stop[0], .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno == EINTR)
			continue;
		if (p[1].revents)
			return NULL;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (lfd == kc_fake.con_fd)
			serve_console(fd);
		else
			serve_conn(fd);
	}
}

int kc_group_setup(void **state)
{
	snprintf(kc_sock_path, sizeof(kc_sock_path), "%s/vmkernel.sock", th_tmpdir());
	snprintf(kc_con_path, sizeof(kc_con_path), "%s/web01.console", th_tmpdir());
	for (int i = 0; i < MAX_CASES; i++)
		kb_buf_init(&kc_fake.replies[i], 0);
	if (pipe2(kc_fake.stop, O_CLOEXEC) < 0)
		return -1;
	kc_fake.listen_fd = kb_unix_listen(kc_sock_path, 16);
	kc_fake.con_fd = kb_unix_listen(kc_con_path, 16);
	if (kc_fake.listen_fd < 0 || kc_fake.con_fd < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&kc_fake.th, NULL, fake_main, &kc_fake.listen_fd) != 0 ||
	    pthread_create(&kc_fake.con_th, NULL, fake_main, &kc_fake.con_fd) != 0)
		return -1;
	return 0;
}

int kc_group_teardown(void **state)
{
	(void)!write(kc_fake.stop[1], "x", 1);
	pthread_join(kc_fake.th, NULL);
	pthread_join(kc_fake.con_th, NULL);
	kc_fake_reset();
	for (int i = 0; i < MAX_CASES; i++)
		kb_buf_close(&kc_fake.replies[i]);
	close(kc_fake.listen_fd);
	close(kc_fake.con_fd);
	return 0;
}

int kc_test_setup(void **state)
{
	kc_fake_reset();
	return 0;
}

/* ---- running keel ----------------------------------------------------------------- */

struct kc_run_result kc_run;

static void slurp(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, size - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
}

int kc_run_keel_opts(const struct kc_run_opts *o, const char *const *args)
{
	const char *argv[64];
	char *envp[256], envsock[600], in_path[600], out_path[600], err_path[600];
	int argc = 0, envc = 0, status;
	uint64_t start = kb_now_ns();
	pid_t pid;

	argv[argc++] = "keel";
	if (!o->no_socket) {
		argv[argc++] = "--socket";
		argv[argc++] = kc_sock_path;
	}
	for (int i = 0; args[i]; i++)
		argv[argc++] = args[i];
	argv[argc] = NULL;
	for (char **e = environ; *e && envc < 250; e++)
		if (strncmp(*e, "KEEL_SOCKET=", 12) != 0)
			envp[envc++] = *e;
	if (o->env_sock) {
		snprintf(envsock, sizeof(envsock), "KEEL_SOCKET=%s", o->env_sock);
		envp[envc++] = envsock;
	}
	envp[envc] = NULL;
	snprintf(in_path, sizeof(in_path), "%s/stdin", th_tmpdir());
	snprintf(out_path, sizeof(out_path), "%s/stdout", th_tmpdir());
	snprintf(err_path, sizeof(err_path), "%s/stderr", th_tmpdir());
	FILE *f = fopen(in_path, "w");
	assert_non_null(f);
	fputs(o->in ? o->in : "", f);
	fclose(f);

	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int in, out = open(out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600),
			err = open(err_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
		if (o->tty) {
			setsid();
			in = open(o->tty, O_RDWR);
		} else {
			in = open(in_path, O_RDONLY);
		}
		if (in < 0 || out < 0 || err < 0)
			_exit(126);
		dup2(in, 0);
		dup2(out, 1);
		dup2(err, 2);
		execve(th_bin_path("keel"), (char *const *)argv, envp);
		_exit(127);
	}
	for (;;) {
		pid_t w = waitpid(pid, &status, WNOHANG);
		if (w == pid)
			break;
		if (kb_now_ns() - start > 20 * KB_NSEC_PER_SEC) {
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			fail_msg("keel %s did not finish", args[0] ? args[0] : "");
		}
		kb_sleep_ns(2 * KB_NSEC_PER_MSEC);
	}
	kc_run.ms = (kb_now_ns() - start) / KB_NSEC_PER_MSEC;
	kc_run.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	slurp(out_path, kc_run.out, sizeof(kc_run.out));
	slurp(err_path, kc_run.err, sizeof(kc_run.err));
	return kc_run.rc;
}

int kc_run_keel(const char *const *args)
{
	struct kc_run_opts o = {0};
	return kc_run_keel_opts(&o, args);
}

/* ---- a minimal JSON checker ------------------------------------------------------- */

static const char *js_value(const char *p, int depth);

static const char *js_ws(const char *p)
{
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	return p;
}

static const char *js_string(const char *p)
{
	if (*p++ != '"')
		return NULL;
	while (*p != '"') {
		if (*p == '\0' || (unsigned char)*p < 0x20)
			return NULL;
		if (*p == '\\') {
			p++;
			if (*p == 'u') {
				for (int i = 1; i <= 4; i++)
					if (!isxdigit((unsigned char)p[i]))
						return NULL;
				p += 4;
			} else if (!strchr("\"\\/bfnrt", *p) || *p == '\0') {
				return NULL;
			}
		}
		p++;
	}
	return p + 1;
}

static const char *js_number(const char *p)
{
	const char *s;

	if (*p == '-')
		p++;
	s = p;
	while (isdigit((unsigned char)*p))
		p++;
	if (p == s)
		return NULL;
	if (*p == '.') {
		s = ++p;
		while (isdigit((unsigned char)*p))
			p++;
		if (p == s)
			return NULL;
	}
	if (*p == 'e' || *p == 'E') {
		p++;
		if (*p == '+' || *p == '-')
			p++;
		s = p;
		while (isdigit((unsigned char)*p))
			p++;
		if (p == s)
			return NULL;
	}
	return p;
}

static const char *js_list(const char *p, char close, bool members, int depth)
{
	p = js_ws(p + 1);
	if (*p == close)
		return p + 1;
	for (;;) {
		if (members) {
			p = js_string(js_ws(p));
			if (!p)
				return NULL;
			p = js_ws(p);
			if (*p++ != ':')
				return NULL;
		}
		p = js_value(p, depth + 1);
		if (!p)
			return NULL;
		p = js_ws(p);
		if (*p == close)
			return p + 1;
		if (*p++ != ',')
			return NULL;
	}
}

static const char *js_value(const char *p, int depth)
{
	if (depth > 32)
		return NULL;
	p = js_ws(p);
	switch (*p) {
	case '{':
		return js_list(p, '}', true, depth);
	case '[':
		return js_list(p, ']', false, depth);
	case '"':
		return js_string(p);
	case 't':
		return strncmp(p, "true", 4) == 0 ? p + 4 : NULL;
	case 'f':
		return strncmp(p, "false", 5) == 0 ? p + 5 : NULL;
	case 'n':
		return strncmp(p, "null", 4) == 0 ? p + 4 : NULL;
	default:
		return js_number(p);
	}
}

/* stdout is exactly one JSON object on one line. */
void kc_assert_one_json_object(const char *s)
{
	const char *end = js_value(s, 0);

	if (s[0] != '{' || !end || strcmp(js_ws(end), "") != 0 || strchr(s, '\n') != end)
		fail_msg("not one JSON object on one line:\n%s", s);
}

/* ---- canned objects ----------------------------------------------------------------- */

void kc_canned_vm(struct kc_canned_vm *v, const char *name, const char *state, uint32_t mib)
{
	keel__vmk__vm_info__init(&v->info);
	keel__vmk__vm_spec__init(&v->spec);
	keel__vmk__resources__init(&v->res);
	keel__vmk__disk_spec__init(&v->disk);
	keel__vmk__nic_spec__init(&v->nic);
	v->info.name = (char *)name;
	v->info.uuid = "564d1c2a-0000-4000-8000-000000000001";
	v->info.datastore = "ds1";
	v->info.vmx_path = "/data/ds1/web01/web01.vmx";
	v->info.power_state = (char *)state;
	v->info.console_socket = kc_con_path;
	v->info.console_log = "/data/ds1/web01/console.log";
	v->info.spec = &v->spec;
	v->spec.name = (char *)name;
	v->spec.memsize_mib = mib;
	v->spec.numvcpus = 2;
	v->spec.guest_kind = "kguest";
	v->disk.file = "disk0.img";
	v->disk.size_mib = 1024;
	v->disks[0] = &v->disk;
	v->spec.disks = v->disks;
	v->spec.n_disks = 1;
	v->nic.portgroup = "VM Network";
	v->nic.mac = "52:54:00:12:34:56";
	v->nics[0] = &v->nic;
	v->spec.nics = v->nics;
	v->spec.n_nics = 1;
	v->res.cpu_shares = "high";
	v->res.cpu_reservation_mhz = 500;
	v->spec.resources = &v->res;
	if (strcmp(state, "poweredOn") == 0) {
		v->info.pid = 4242;
		v->info.powered_on_ms = 3723000; /* 1h 02m 03s */
	}
}

void kc_reply_one_vm(Keel__Vmk__VmkRequest__ReqCase c, struct kc_canned_vm *v)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	Keel__Vmk__VmInfo *vms[1] = {&v->info};

	rp.vms = vms;
	rp.n_vms = 1;
	kc_fake_set(c, &rp);
}
