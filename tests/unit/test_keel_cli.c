/*
 * keel, the operator's CLI, against a fake vmkernel.
 *
 * The fake is a thread of this test listening on a Unix socket in a temp directory: it
 * decodes each VmkRequest frame with the generated code, records it, and answers with the
 * canned VmkReply the test set for that request (code 0 and nothing else by default), or
 * misbehaves on purpose (garbage, a close without a reply, no reply at all). A second
 * thread plays a VM's console socket. Each test runs build/bin/keel as a child process
 * with --socket pointing at the fake and checks what reached the fake (the argument ->
 * request mapping), stdout (tables, one valid JSON object under --json), stderr and the
 * exit code.
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
#include "tests/unit/vmm_helpers.h"
#include "vmk.pb-c.h"

extern char **environ;

/* ---- the fake vmkernel -------------------------------------------------------------- */

enum fake_mode { FAKE_REPLY, FAKE_GARBAGE, FAKE_CLOSE, FAKE_HANG };

#define MAX_CASES 64
#define MAX_REQS  16

static struct {
	pthread_mutex_t mu;
	pthread_t th, con_th;
	int listen_fd, con_fd, stop[2];
	enum fake_mode mode;
	struct kb_buf replies[MAX_CASES]; /* packed VmkReply per request case; len 0: default */
	Keel__Vmk__VmkRequest *reqs[MAX_REQS];
	int nreqs, undecodable;
	bool con_close_after_echo;
	char con_in[4096]; /* what the console received */
	size_t con_in_len;
} fake = {.mu = PTHREAD_MUTEX_INITIALIZER};

static char sock_path[512], con_path[512];

static void fake_reset(void)
{
	pthread_mutex_lock(&fake.mu);
	fake.mode = FAKE_REPLY;
	for (int i = 0; i < MAX_CASES; i++)
		kb_buf_reset(&fake.replies[i]);
	for (int i = 0; i < fake.nreqs; i++)
		keel__vmk__vmk_request__free_unpacked(fake.reqs[i], NULL);
	fake.nreqs = 0;
	fake.undecodable = 0;
	fake.con_close_after_echo = true;
	fake.con_in_len = 0;
	pthread_mutex_unlock(&fake.mu);
}

static void fake_set(Keel__Vmk__VmkRequest__ReqCase c, const Keel__Vmk__VmkReply *rp)
{
	size_t n = keel__vmk__vmk_reply__get_packed_size(rp);
	void *p;

	pthread_mutex_lock(&fake.mu);
	kb_buf_reset(&fake.replies[c]);
	assert_int_equal(kb_buf_put_zero(&fake.replies[c], n, &p), 0);
	keel__vmk__vmk_reply__pack(rp, p);
	pthread_mutex_unlock(&fake.mu);
}

static void fake_mode(enum fake_mode m)
{
	pthread_mutex_lock(&fake.mu);
	fake.mode = m;
	pthread_mutex_unlock(&fake.mu);
}

/* The i-th request the fake received (the test reads it after keel exited). */
static const Keel__Vmk__VmkRequest *req_at(int i)
{
	assert_true(i < fake.nreqs);
	return fake.reqs[i];
}

static void serve_conn(int fd)
{
	static const uint8_t empty_reply[] = {0};
	struct kb_buf in, out;

	kb_buf_init(&in, 1 << 20);
	kb_buf_init(&out, 0);
	while (kb_frame_recv(fd, &in, 1 << 20) == 0) {
		Keel__Vmk__VmkRequest *rq = keel__vmk__vmk_request__unpack(NULL, in.len, in.data);
		enum fake_mode mode;

		pthread_mutex_lock(&fake.mu);
		if (!rq)
			fake.undecodable++;
		else if (fake.nreqs < MAX_REQS)
			fake.reqs[fake.nreqs++] = rq;
		else
			keel__vmk__vmk_request__free_unpacked(rq, NULL);
		mode = fake.mode;
		kb_buf_reset(&out);
		if (rq && (unsigned)rq->req_case < MAX_CASES)
			kb_buf_append(&out, fake.replies[rq->req_case].data,
				      fake.replies[rq->req_case].len);
		pthread_mutex_unlock(&fake.mu);
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

		pthread_mutex_lock(&fake.mu);
		if (fake.con_in_len + (size_t)n < sizeof(fake.con_in)) {
			memcpy(fake.con_in + fake.con_in_len, buf, (size_t)n);
			fake.con_in_len += (size_t)n;
		}
		close_now = fake.con_close_after_echo;
		pthread_mutex_unlock(&fake.mu);
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
				      {.fd = fake.stop[0], .events = POLLIN}};
		int fd;

		if (poll(p, 2, -1) < 0 && errno == EINTR)
			continue;
		if (p[1].revents)
			return NULL;
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		if (lfd == fake.con_fd)
			serve_console(fd);
		else
			serve_conn(fd);
	}
}

static int group_setup(void **state)
{
	snprintf(sock_path, sizeof(sock_path), "%s/vmkernel.sock", th_tmpdir());
	snprintf(con_path, sizeof(con_path), "%s/web01.console", th_tmpdir());
	for (int i = 0; i < MAX_CASES; i++)
		kb_buf_init(&fake.replies[i], 0);
	if (pipe2(fake.stop, O_CLOEXEC) < 0)
		return -1;
	fake.listen_fd = kb_unix_listen(sock_path, 16);
	fake.con_fd = kb_unix_listen(con_path, 16);
	if (fake.listen_fd < 0 || fake.con_fd < 0)
		return -1;
	signal(SIGPIPE, SIG_IGN);
	if (pthread_create(&fake.th, NULL, fake_main, &fake.listen_fd) != 0 ||
	    pthread_create(&fake.con_th, NULL, fake_main, &fake.con_fd) != 0)
		return -1;
	return 0;
}

static int group_teardown(void **state)
{
	(void)!write(fake.stop[1], "x", 1);
	pthread_join(fake.th, NULL);
	pthread_join(fake.con_th, NULL);
	fake_reset();
	for (int i = 0; i < MAX_CASES; i++)
		kb_buf_close(&fake.replies[i]);
	close(fake.listen_fd);
	close(fake.con_fd);
	return 0;
}

static int test_setup(void **state)
{
	fake_reset();
	return 0;
}

/* ---- running keel ----------------------------------------------------------------- */

static struct {
	int rc;
	char out[1 << 16];
	char err[1 << 14];
	uint64_t ms;
} R;

struct run_opts {
	const char *in;	      /* stdin contents; NULL: /dev/null */
	const char *env_sock; /* KEEL_SOCKET for the child; NULL: unset */
	bool no_socket;	      /* leave out --socket */
	const char *tty;      /* a pty slave to use as stdin */
};

static void slurp(const char *path, char *buf, size_t size)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, size - 1, f) : 0;

	buf[n] = '\0';
	if (f)
		fclose(f);
}

static int run_keel_opts(const struct run_opts *o, const char *const *args)
{
	const char *argv[64];
	char *envp[256], envsock[600], in_path[600], out_path[600], err_path[600];
	int argc = 0, envc = 0, status;
	uint64_t start = kb_now_ns();
	pid_t pid;

	argv[argc++] = "keel";
	if (!o->no_socket) {
		argv[argc++] = "--socket";
		argv[argc++] = sock_path;
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
	R.ms = (kb_now_ns() - start) / KB_NSEC_PER_MSEC;
	R.rc = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
	slurp(out_path, R.out, sizeof(R.out));
	slurp(err_path, R.err, sizeof(R.err));
	return R.rc;
}

static int run_keel(const char *const *args)
{
	struct run_opts o = {0};
	return run_keel_opts(&o, args);
}

#define KEEL(...) run_keel((const char *const[]){__VA_ARGS__, NULL})
#define assert_has(hay, needle)                                               \
	do {                                                                  \
		if (!strstr((hay), (needle)))                                 \
			fail_msg("expected \"%s\" in:\n%s", (needle), (hay)); \
	} while (0)
#define assert_hasnt(hay, needle)                                                   \
	do {                                                                        \
		if (strstr((hay), (needle)))                                        \
			fail_msg("did not expect \"%s\" in:\n%s", (needle), (hay)); \
	} while (0)

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
static void assert_one_json_object(const char *s)
{
	const char *end = js_value(s, 0);

	if (s[0] != '{' || !end || strcmp(js_ws(end), "") != 0 || strchr(s, '\n') != end)
		fail_msg("not one JSON object on one line:\n%s", s);
}

/* ---- canned objects ----------------------------------------------------------------- */

struct canned_vm {
	Keel__Vmk__VmInfo info;
	Keel__Vmk__VmSpec spec;
	Keel__Vmk__Resources res;
	Keel__Vmk__DiskSpec disk;
	Keel__Vmk__DiskSpec *disks[1];
	Keel__Vmk__NicSpec nic;
	Keel__Vmk__NicSpec *nics[1];
};

static void canned_vm(struct canned_vm *v, const char *name, const char *state, uint32_t mib)
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
	v->info.console_socket = con_path;
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

static void reply_one_vm(Keel__Vmk__VmkRequest__ReqCase c, struct canned_vm *v)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	Keel__Vmk__VmInfo *vms[1] = {&v->info};

	rp.vms = vms;
	rp.n_vms = 1;
	fake_set(c, &rp);
}

/* ---- help and usage ------------------------------------------------------------------ */

static void test_help_at_every_level(void **state)
{
	static const char *const paths[][4] = {
	    {NULL},
	    {"vm"},
	    {"vm", "create"},
	    {"vm", "list"},
	    {"vm", "info"},
	    {"vm", "power-on"},
	    {"vm", "power-off"},
	    {"vm", "reset"},
	    {"vm", "suspend"},
	    {"vm", "resume"},
	    {"vm", "destroy"},
	    {"vm", "unregister"},
	    {"vm", "register"},
	    {"vm", "reconfigure"},
	    {"vm", "console"},
	    {"datastore"},
	    {"datastore", "list"},
	    {"datastore", "add"},
	    {"datastore", "remove"},
	    {"host"},
	    {"host", "info"},
	    {"host", "log"},
	    {"network"},
	    {"network", "vswitch"},
	    {"network", "vswitch", "list"},
	    {"network", "vswitch", "add"},
	    {"network", "vswitch", "remove"},
	    {"network", "uplink"},
	    {"network", "uplink", "add"},
	    {"network", "uplink", "remove"},
	    {"network", "portgroup"},
	    {"network", "portgroup", "list"},
	    {"network", "portgroup", "add"},
	    {"network", "portgroup", "remove"},
	};

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
		const char *args[8];
		char usage[128] = "Usage: keel";
		int n = 0;

		for (int k = 0; k < 4 && paths[i][k]; k++) {
			args[n++] = paths[i][k];
			strcat(usage, " ");
			strcat(usage, paths[i][k]);
		}
		args[n++] = "--help";
		args[n] = NULL;
		assert_int_equal(run_keel(args), 0);
		if (strncmp(R.out, usage, strlen(usage)) != 0)
			fail_msg("'%s --help' printed:\n%s", usage + 7, R.out);
		assert_string_equal(R.err, "");
		assert_has(R.out, "--json");
	}
	assert_int_equal(fake.nreqs, 0);
}

static void test_help_forms(void **state)
{
	char first[sizeof(R.out)];

	assert_int_equal(KEEL("--help"), 0);
	assert_has(R.out, "Exit codes:");
	assert_has(R.out, "3  cannot reach vmkernel");
	assert_has(R.out, "KEEL_SOCKET");
	assert_int_equal(KEEL("vm", "create", "--help"), 0);
	assert_has(R.out, "--disk SIZE_MIB[:ro]");
	assert_has(R.out, "--cpu-shares low|normal|high|N");
	strcpy(first, R.out);
	assert_int_equal(KEEL("help", "vm", "create"), 0);
	assert_string_equal(R.out, first);
	assert_int_equal(KEEL("vm", "create", "-h"), 0);
	assert_string_equal(R.out, first);
	/* --help wins over missing arguments */
	assert_int_equal(KEEL("vm", "info", "--help"), 0);
	assert_has(R.out, "Usage: keel vm info VM");
	assert_int_equal(fake.nreqs, 0);
}

static void test_usage_errors_exit_2(void **state)
{
	static const struct {
		const char *args[12];
		const char *err;
	} cases[] = {
	    {{NULL}, "'keel' needs a command"},
	    {{"vm", NULL}, "'keel vm' needs a command"},
	    {{"bogus", NULL}, "unknown command 'bogus'"},
	    {{"vm", "bogus", NULL}, "unknown command 'bogus' for 'keel vm'"},
	    {{"vm", "info", NULL}, "missing argument: VM"},
	    {{"vm", "info", "a", "b", NULL}, "unexpected argument 'b'"},
	    {{"vm", "list", "--bogus", NULL}, "unknown option '--bogus'"},
	    {{"vm", "create", "x", "--memory", NULL}, "option --memory needs a value"},
	    {{"vm", "create", "x", "--memory", "12Q", NULL}, "bad --memory '12Q'"},
	    {{"vm", "create", "x", "--memory", "-5", NULL}, "bad --memory '-5'"},
	    {{"vm", "create", "x", "--vcpus", "0", NULL}, "bad --vcpus '0'"},
	    {{"vm", "create", "x", "--vcpus", "2", "--vcpus", "3", NULL}, "given twice"},
	    {{"vm", "create", "x", "--kind", "windows", NULL}, "bad --kind 'windows'"},
	    {{"vm", "create", "x", "--kind", "linux", NULL}, "a linux guest needs --kernel"},
	    {{"vm", "create", "x", "--disk", "0", NULL}, "bad --disk '0'"},
	    {{"vm", "create", "x", "--disk", "10:rx", NULL}, "bad --disk '10:rx'"},
	    {{"vm", "create", "x", "--nic", "pg:52:54:00:zz:00:01", NULL}, "bad MAC address"},
	    {{"vm", "create", "x", "--nic", ":52:54:00:00:00:01", NULL}, "bad --nic"},
	    {{"vm", "create", "x", "--cpu-shares", "huge", NULL}, "bad --cpu-shares 'huge'"},
	    {{"vm", "create", "x", "--cpu-shares", "0", NULL}, "bad --cpu-shares '0'"},
	    {{"vm", "reconfigure", "x", NULL}, "nothing to change"},
	    {{"vm", "reconfigure", "x", "--datastore", "d", NULL}, "unknown option '--datastore'"},
	    {{"vm", "console", "x", "--follow-for", "soon", NULL}, "bad --follow-for 'soon'"},
	    {{"vm", "list", "--json=yes", NULL}, "option --json takes no value"},
	    {{"vm", "list", "--timeout", "x", NULL}, "bad --timeout 'x'"},
	    {{"datastore", "add", "ds", NULL}, "missing argument: NAME PATH"},
	    {{"host", "log", "--lines", "0", NULL}, "bad --lines '0'"},
	    {{"network", "portgroup", "add", "pg", NULL}, "needs --vswitch"},
	    {{"network", "portgroup", "add", "pg", "--vswitch", "vs", "--vlan", "4095", NULL},
	     "bad --vlan '4095'"},
	    {{"network", "vswitch", "add", "vs", "--mtu", "10", NULL}, "bad --mtu '10'"},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (run_keel(cases[i].args) != 2)
			fail_msg("case %zu: exit %d, stderr:\n%s", i, R.rc, R.err);
		assert_has(R.err, cases[i].err);
		assert_true(strncmp(R.err, "keel: ", 6) == 0);
	}
	assert_int_equal(fake.nreqs, 0);
	assert_int_equal(fake.undecodable, 0);

	/* under --json, the mistake is also a JSON object */
	assert_int_equal(KEEL("--json", "vm", "info"), 2);
	assert_one_json_object(R.out);
	assert_has(R.out, "\"ok\":false");
	assert_has(R.out, "\"exit_code\":2");
}

/* ---- transport failures --------------------------------------------------------------- */

static void test_missing_socket_exit_3(void **state)
{
	char missing[600], stale[600], want[700];
	struct run_opts o = {.no_socket = true};
	int fd;

	snprintf(missing, sizeof(missing), "%s/nothing-here.sock", th_tmpdir());
	assert_int_equal(KEEL("--socket", missing, "vm", "list"), 3);
	snprintf(want, sizeof(want), "keel: cannot reach vmkernel at %s: ", missing);
	assert_has(R.err, want);
	assert_has(R.err, "(is vmkernel running?)");
	assert_string_equal(R.out, "");

	/* a socket file nobody listens on any more */
	snprintf(stale, sizeof(stale), "%s/stale.sock", th_tmpdir());
	fd = kb_unix_listen(stale, 1);
	assert_true(fd >= 0);
	close(fd);
	assert_int_equal(KEEL("--socket", stale, "host", "info"), 3);
	assert_has(R.err, "Connection refused (is vmkernel running?)");

	assert_int_equal(KEEL("vm", "list", "--json", "--socket", missing), 3);
	assert_one_json_object(R.out);
	assert_has(R.out, "\"ok\":false");
	assert_has(R.out, "\"exit_code\":3");
	assert_has(R.out, "cannot reach vmkernel");

	/* $KEEL_SOCKET names the socket when --socket is absent */
	o.env_sock = missing;
	assert_int_equal(run_keel_opts(&o, (const char *const[]){"vm", "list", NULL}), 3);
	assert_has(R.err, missing);
	o.env_sock = sock_path;
	assert_int_equal(run_keel_opts(&o, (const char *const[]){"vm", "list", NULL}), 0);
	/* --socket wins over $KEEL_SOCKET */
	o.env_sock = missing;
	assert_int_equal(run_keel_opts(&o, (const char *const[]){"vm", "list", "--local",
								 "--socket", sock_path, NULL}),
			 0);
	assert_int_equal(fake.nreqs, 2);
}

static void test_protocol_errors_exit_4(void **state)
{
	fake_mode(FAKE_GARBAGE);
	assert_int_equal(KEEL("vm", "list"), 4);
	assert_has(R.err, "keel: bad reply from vmkernel at ");
	assert_has(R.err, "not a VmkReply");

	fake_mode(FAKE_CLOSE);
	assert_int_equal(KEEL("host", "info", "--json"), 4);
	assert_has(R.err, "closed the connection without a reply");
	assert_one_json_object(R.out);
	assert_has(R.out, "\"exit_code\":4");
}

static void test_no_answer_times_out_exit_3(void **state)
{
	fake_mode(FAKE_HANG);
	assert_int_equal(KEEL("vm", "list", "--timeout", "0.3"), 3);
	assert_has(R.err, "did not answer within");
	assert_true(R.ms >= 300);
}

static void test_error_reply_exit_1(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;

	rp.code = KB_ENOTFOUND;
	rp.error = "no VM named 'ghost'";
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON, &rp);
	assert_int_equal(KEEL("vm", "power-on", "ghost"), 1);
	assert_string_equal(R.err, "keel: no VM named 'ghost'\n");
	assert_string_equal(R.out, "");

	assert_int_equal(KEEL("vm", "power-on", "ghost", "--json"), 1);
	assert_one_json_object(R.out);
	assert_has(R.out, "\"ok\":false");
	assert_has(R.out, "\"error\":\"no VM named 'ghost'\"");
	assert_has(R.out, "\"exit_code\":1");
	char code[64];
	snprintf(code, sizeof(code), "\"code\":%d", KB_ENOTFOUND);
	assert_has(R.out, code);

	/* no text: the code's own message */
	rp.error = "";
	rp.code = KB_ESTATE;
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_DESTROY, &rp);
	assert_int_equal(KEEL("vm", "destroy", "web01"), 1);
	char want[200];
	snprintf(want, sizeof(want), "keel: %s\n", kb_strerror(KB_ESTATE));
	assert_string_equal(R.err, want);
}

/* ---- vm ------------------------------------------------------------------------------- */

static void test_vm_create_maps_every_flag(void **state)
{
	char kernel[600], cwd[512];
	struct canned_vm v;

	canned_vm(&v, "web01", "poweredOff", 512);
	reply_one_vm(KEEL__VMK__VMK_REQUEST__REQ_VM_CREATE, &v);
	assert_int_equal(KEEL("vm", "create", "web01", "--memory", "2G", "--vcpus", "4", "--kind",
			      "linux", "--kernel", "bzImage", "--initrd", "/boot/initrd.img",
			      "--cmdline", "console=ttyS0 quiet", "--disk", "1024", "--disk",
			      "64:ro", "--nic", "VM Network", "--nic=lan:52:54:00:AB:cd:01",
			      "--datastore", "ds2", "--cpu-shares", "2000", "--cpu-reservation",
			      "1000", "--cpu-limit", "3000", "--mem-reservation", "256",
			      "--mem-limit", "1G"),
			 0);
	assert_int_equal(fake.nreqs, 1);
	const Keel__Vmk__VmkRequest *rq = req_at(0);
	assert_int_equal(rq->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_CREATE);
	const Keel__Vmk__VmSpec *s = rq->vm_create->spec;
	assert_non_null(s);
	assert_string_equal(s->name, "web01");
	assert_int_equal(s->memsize_mib, 2048);
	assert_int_equal(s->numvcpus, 4);
	assert_string_equal(s->guest_kind, "linux");
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(kernel, sizeof(kernel), "%s/bzImage", cwd);
	assert_string_equal(s->kernel, kernel);
	assert_string_equal(s->initrd, "/boot/initrd.img");
	assert_string_equal(s->cmdline, "console=ttyS0 quiet");
	assert_int_equal(s->n_disks, 2);
	assert_int_equal(s->disks[0]->size_mib, 1024);
	assert_false(s->disks[0]->read_only);
	assert_int_equal(s->disks[1]->size_mib, 64);
	assert_true(s->disks[1]->read_only);
	assert_int_equal(s->n_nics, 2);
	assert_string_equal(s->nics[0]->portgroup, "VM Network");
	assert_string_equal(s->nics[0]->mac, "");
	assert_string_equal(s->nics[1]->portgroup, "lan");
	assert_string_equal(s->nics[1]->mac, "52:54:00:AB:cd:01");
	assert_string_equal(s->datastore, "ds2");
	assert_non_null(s->resources);
	assert_string_equal(s->resources->cpu_shares, "2000");
	assert_int_equal(s->resources->cpu_reservation_mhz, 1000);
	assert_int_equal(s->resources->cpu_limit_mhz, 3000);
	assert_int_equal(s->resources->mem_reservation_mib, 256);
	assert_int_equal(s->resources->mem_limit_mib, 1024);
	assert_has(R.out, "Created VM web01 (uuid 564d1c2a-0000-4000-8000-000000000001)");
	assert_has(R.out, "/data/ds1/web01/web01.vmx");
}

static void test_vm_create_defaults_send_nothing_extra(void **state)
{
	assert_int_equal(KEEL("vm", "create", "tiny"), 0);
	const Keel__Vmk__VmSpec *s = req_at(0)->vm_create->spec;
	assert_string_equal(s->name, "tiny");
	assert_int_equal(s->memsize_mib, 0);
	assert_int_equal(s->numvcpus, 0);
	assert_string_equal(s->guest_kind, "");
	assert_int_equal(s->n_disks, 0);
	assert_int_equal(s->n_nics, 0);
	assert_null(s->resources);
	assert_string_equal(s->datastore, "");
	/* a reply without the VM still reads well */
	assert_string_equal(R.out, "Created VM tiny.\n");

	/* one resource option brings the resources message, only that field set */
	assert_int_equal(KEEL("vm", "create", "t2", "--cpu-shares", "low"), 0);
	s = req_at(1)->vm_create->spec;
	assert_non_null(s->resources);
	assert_string_equal(s->resources->cpu_shares, "low");
	assert_int_equal(s->resources->mem_limit_mib, 0);
}

static void test_vm_list_table(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	struct canned_vm a, b;
	Keel__Vmk__VmInfo *vms[2];

	canned_vm(&a, "web01", "poweredOn", 512);
	canned_vm(&b, "database-server", "poweredOff", 2048);
	vms[0] = &a.info;
	vms[1] = &b.info;
	rp.vms = vms;
	rp.n_vms = 2;
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_LIST, &rp);
	assert_int_equal(KEEL("vm", "list"), 0);
	assert_int_equal(req_at(0)->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_LIST);
	assert_string_equal(
	    R.out, "NAME             STATE         MEMORY  VCPUS  DATASTORE   PID  UPTIME\n"
		   "web01            powered on   512 MiB      2  ds1        4242  1h 02m\n"
		   "database-server  powered off    2 GiB      2  ds1           -       -\n");

	/* an empty list is the header only */
	fake_reset();
	assert_int_equal(KEEL("vm", "list"), 0);
	assert_string_equal(R.out, "NAME  STATE  MEMORY  VCPUS  DATASTORE  PID  UPTIME\n");
}

static void test_vm_list_json_escapes(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	struct canned_vm a;
	Keel__Vmk__VmInfo *vms[1] = {&a.info};

	canned_vm(&a, "we\"b\\01\n\x01\xc3\xa9\x1b[31m", "poweredOn", 512);
	rp.vms = vms;
	rp.n_vms = 1;
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_LIST, &rp);
	assert_int_equal(KEEL("vm", "list", "--json"), 0);
	assert_one_json_object(R.out);
	assert_has(R.out, "{\"ok\":true,\"code\":0,\"vms\":[{\"name\":");
	assert_has(R.out, "\"name\":\"we\\\"b\\\\01\\n\\u0001\xc3\xa9\\u001b[31m\"");
	assert_has(R.out, "\"power_state\":\"poweredOn\"");
	assert_has(R.out, "\"pid\":4242");
	assert_has(R.out, "\"memsize_mib\":512");
	assert_has(R.out,
		   "\"disks\":[{\"file\":\"disk0.img\",\"size_mib\":1024,\"read_only\":false}]");
	assert_has(R.out, "\"mac\":\"52:54:00:12:34:56\"");
	assert_has(R.out, "\"cpu_shares\":\"high\"");
	assert_hasnt(R.out, "\"datastores\"");

	/* the table shows control characters as '?' */
	assert_int_equal(KEEL("vm", "list"), 0);
	assert_has(R.out, "we\"b\\01??\xc3\xa9?[31m");
	assert_hasnt(R.out, "\x1b");

	/* an empty list is still a list */
	fake_reset();
	assert_int_equal(KEEL("vm", "list", "--json"), 0);
	assert_string_equal(R.out, "{\"ok\":true,\"code\":0,\"vms\":[]}\n");
}

static void test_vm_info(void **state)
{
	struct canned_vm v;

	canned_vm(&v, "web01", "poweredOn", 512);
	v.info.last_event = "powered on by keel";
	reply_one_vm(KEEL__VMK__VMK_REQUEST__REQ_VM_GET, &v);
	assert_int_equal(KEEL("vm", "info", "web01"), 0);
	assert_string_equal(req_at(0)->vm_get->vm, "web01");
	assert_has(R.out, "Name:              web01\n");
	assert_has(R.out, "State:             powered on\n");
	assert_has(R.out, "Last event:        powered on by keel\n");
	assert_has(R.out, "vmx PID:           4242\n");
	assert_has(R.out, "Uptime:            1h 02m\n");
	assert_has(R.out, "Memory:            512 MiB\n");
	assert_has(R.out, "Disks:             disk0.img  1 GiB\n");
	assert_has(R.out, "NICs:              VM Network  52:54:00:12:34:56\n");
	assert_has(R.out, "CPU shares:        high\n");
	assert_has(R.out, "CPU reservation:   500 MHz\n");
	assert_has(R.out, "CPU limit:         unlimited\n");

	assert_int_equal(KEEL("vm", "info", "web01", "--json"), 0);
	assert_one_json_object(R.out);
	assert_has(R.out, "\"vmx_path\":\"/data/ds1/web01/web01.vmx\"");
	assert_has(R.out, "\"powered_on_ms\":3723000");
}

static void test_vm_power_ops_map_to_requests(void **state)
{
	static const struct {
		const char *verb;
		Keel__Vmk__VmkRequest__ReqCase c;
		const char *out;
	} ops[] = {
	    {"power-on", KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_ON,
	     "Powered on VM web01 (vmx pid 4242).\n"},
	    {"power-off", KEEL__VMK__VMK_REQUEST__REQ_VM_POWER_OFF, "Powered off VM web01.\n"},
	    {"reset", KEEL__VMK__VMK_REQUEST__REQ_VM_RESET, "Reset VM web01.\n"},
	    {"suspend", KEEL__VMK__VMK_REQUEST__REQ_VM_SUSPEND, "Suspended VM web01.\n"},
	    {"resume", KEEL__VMK__VMK_REQUEST__REQ_VM_RESUME, "Resumed VM web01.\n"},
	    {"destroy", KEEL__VMK__VMK_REQUEST__REQ_VM_DESTROY, "Destroyed VM web01.\n"},
	    {"unregister", KEEL__VMK__VMK_REQUEST__REQ_VM_UNREGISTER, "Unregistered VM web01.\n"},
	};
	struct canned_vm v;

	canned_vm(&v, "web01", "poweredOn", 512);
	for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++) {
		reply_one_vm(ops[i].c, &v);
		assert_int_equal(KEEL("vm", ops[i].verb, "web01"), 0);
		const Keel__Vmk__VmkRequest *rq = req_at((int)i);
		assert_int_equal(rq->req_case, ops[i].c);
		/* every one of these messages is {string vm = 1;} */
		assert_string_equal(rq->vm_power_on->vm, "web01");
		assert_string_equal(R.out, ops[i].out);
	}
	assert_int_equal(KEEL("vm", "suspend", "web01", "--json"), 0);
	assert_one_json_object(R.out);
	assert_has(R.out, "\"vms\":[{\"name\":\"web01\"");
}

static void test_vm_register_sends_absolute_path(void **state)
{
	char cwd[512], want[700];

	assert_int_equal(KEEL("vm", "register", "vms/web01/web01.vmx"), 0);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/vms/web01/web01.vmx", cwd);
	assert_int_equal(req_at(0)->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_REGISTER);
	assert_string_equal(req_at(0)->vm_register->vmx_path, want);
	assert_int_equal(KEEL("vm", "register", "/data/x.vmx"), 0);
	assert_string_equal(req_at(1)->vm_register->vmx_path, "/data/x.vmx");
}

static void test_vm_reconfigure_sends_only_changes(void **state)
{
	assert_int_equal(KEEL("vm", "reconfigure", "web01", "--memory", "1024", "--mem-limit",
			      "768", "--nic", "lan"),
			 0);
	const Keel__Vmk__VmkRequest *rq = req_at(0);
	assert_int_equal(rq->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_RECONFIGURE);
	assert_string_equal(rq->vm_reconfigure->vm, "web01");
	const Keel__Vmk__VmSpec *s = rq->vm_reconfigure->spec;
	assert_int_equal(s->memsize_mib, 1024);
	assert_int_equal(s->numvcpus, 0);
	assert_string_equal(s->name, "");
	assert_int_equal(s->n_disks, 0);
	assert_int_equal(s->n_nics, 1);
	assert_non_null(s->resources);
	assert_int_equal(s->resources->mem_limit_mib, 768);
	assert_string_equal(s->resources->cpu_shares, "");
	assert_string_equal(R.out, "Reconfigured VM web01.\n");
}

/* ---- console -------------------------------------------------------------------------- */

static void set_console_reply(const char *tail, bool with_socket)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	struct canned_vm v;
	Keel__Vmk__VmInfo *vms[1] = {&v.info};

	canned_vm(&v, "web01", "poweredOn", 512);
	if (!with_socket)
		v.info.console_socket = "";
	rp.vms = vms;
	rp.n_vms = 1;
	rp.console_tail.data = (uint8_t *)tail;
	rp.console_tail.len = strlen(tail);
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_CONSOLE, &rp);
	canned_vm(&v, "web01", "poweredOn", 512);
	reply_one_vm(KEEL__VMK__VMK_REQUEST__REQ_VM_GET, &v);
}

static void test_console_tail_and_no_follow(void **state)
{
	set_console_reply("counter 41\r\ncounter 42\r\n", true);
	assert_int_equal(KEEL("vm", "console", "web01", "--no-follow", "--tail", "100"), 0);
	assert_string_equal(R.out, "counter 41\r\ncounter 42\r\n");
	assert_int_equal(fake.nreqs, 1);
	assert_int_equal(req_at(0)->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_CONSOLE);
	assert_string_equal(req_at(0)->vm_console->vm, "web01");
	assert_int_equal(req_at(0)->vm_console->tail_bytes, 100);

	/* a tail that filled --tail was cut inside a line: that part line is left out */
	set_console_reply("er 41\r\ncounter 42\r\n", true);
	assert_int_equal(KEEL("vm", "console", "web01", "--no-follow", "--tail", "19"), 0);
	assert_string_equal(R.out, "counter 42\r\n");

	/* --json: the tail as a string, invalid UTF-8 replaced, nothing followed */
	set_console_reply("tick\n\xff\xfe", true);
	assert_int_equal(KEEL("vm", "console", "web01", "--json"), 0);
	assert_one_json_object(R.out);
	assert_has(R.out, "\"console_tail\":\"tick\\n\\ufffd\\ufffd\"");
	assert_int_equal(fake.con_in_len, 0);
}

static void test_console_follows_and_forwards_stdin(void **state)
{
	struct run_opts o = {.in = "ping\n"};

	set_console_reply("counter 42\r\n", true);
	assert_int_equal(run_keel_opts(&o, (const char *const[]){"vm", "console", "web01",
								 "--follow-for", "10", NULL}),
			 0);
	/* the console closed after its echo: keel ended there, not at --follow-for */
	assert_true(R.ms < 5000);
	assert_true(strncmp(R.out, "counter 42\r\n", 12) == 0);
	assert_has(R.out, "guest says hi\r\n");
	assert_has(R.out, "echo:ping\n");
	assert_int_equal(fake.con_in_len, 5);
	assert_memory_equal(fake.con_in, "ping\n", 5);

	/* no socket in the console reply: keel asks vm_get for it */
	fake_reset();
	set_console_reply("", false);
	assert_int_equal(run_keel_opts(&o, (const char *const[]){"vm", "console", "web01", NULL}),
			 0);
	assert_int_equal(fake.nreqs, 2);
	assert_int_equal(req_at(1)->req_case, KEEL__VMK__VMK_REQUEST__REQ_VM_GET);
	assert_has(R.out, "echo:ping\n");
}

static void test_console_of_a_powered_off_vm(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	struct canned_vm v;
	Keel__Vmk__VmInfo *vms[1] = {&v.info};

	canned_vm(&v, "web01", "poweredOff", 512);
	rp.vms = vms;
	rp.n_vms = 1;
	rp.console_tail.data = (uint8_t *)"last words\n";
	rp.console_tail.len = 11;
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_VM_CONSOLE, &rp);
	assert_int_equal(KEEL("vm", "console", "web01"), 1);
	assert_string_equal(R.out, "last words\n");
	assert_has(R.err, "keel: VM web01 is powered off: it has no live console");
	assert_int_equal(fake.con_in_len, 0);
	assert_int_equal(KEEL("vm", "console", "web01", "--no-follow"), 0);
}

static void test_console_follow_for_stops(void **state)
{
	set_console_reply("", true);
	pthread_mutex_lock(&fake.mu);
	fake.con_close_after_echo = false;
	pthread_mutex_unlock(&fake.mu);
	assert_int_equal(KEEL("vm", "console", "web01", "--follow-for", "0.3"), 0);
	assert_true(R.ms >= 300);
	assert_true(R.ms < 5000);
	assert_string_equal(R.out, "guest says hi\r\n");
}

static void test_console_tty_raw_and_escape(void **state)
{
	struct run_opts o = {0};
	char err_path[600], buf[4096];
	int master = posix_openpt(O_RDWR | O_NOCTTY);

	if (master < 0) {
		print_message("SKIP: no pseudo-terminals here (%s)\n", strerror(errno));
		skip();
	}
	assert_int_equal(grantpt(master), 0);
	assert_int_equal(unlockpt(master), 0);
	o.tty = ptsname(master);
	snprintf(err_path, sizeof(err_path), "%s/stderr", th_tmpdir());
	set_console_reply("", true);
	pthread_mutex_lock(&fake.mu);
	fake.con_close_after_echo = false;
	pthread_mutex_unlock(&fake.mu);

	/* type once keel says it is connected (the terminal is raw by then), then Ctrl-] */
	pid_t helper = fork();
	if (helper == 0) {
		/* only async-signal-safe calls: the parent has threads */
		for (int i = 0; i < 2000; i++) {
			int fd = open(err_path, O_RDONLY);
			ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : 0;

			if (fd >= 0)
				close(fd);
			buf[n > 0 ? n : 0] = '\0';
			if (strstr(buf, "Press Ctrl-] to leave"))
				break;
			usleep(5000);
		}
		(void)!write(master, "ab\003c\035zz", 7);
		_exit(0);
	}
	assert_int_equal(run_keel_opts(&o, (const char *const[]){"vm", "console", "web01",
								 "--follow-for", "15", NULL}),
			 0);
	waitpid(helper, NULL, 0);
	close(master);
	assert_true(R.ms < 10000); /* left on Ctrl-], not at --follow-for */
	assert_has(R.err, "Connected to the console of web01");
	assert_has(R.err, "Left the console of web01");
	/* raw mode: Ctrl-C reached the guest as a byte, nothing after Ctrl-] did */
	assert_int_equal(fake.con_in_len, 4);
	assert_memory_equal(fake.con_in, "ab\003c", 4);
}

/* ---- datastore, host, network ------------------------------------------------------------ */

static void test_datastore_commands(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	Keel__Vmk__DatastoreInfo a = KEEL__VMK__DATASTORE_INFO__INIT,
				 b = KEEL__VMK__DATASTORE_INFO__INIT;
	Keel__Vmk__DatastoreInfo *dss[2] = {&a, &b};
	char cwd[512], want[700];

	a.name = "local";
	a.path = "/var/lib/keel/datastores/local";
	a.capacity = 100ull << 30;
	a.free = 25ull << 30;
	a.vms = 3;
	b.name = "shared";
	b.path = "/mnt/nfs";
	b.shared = true;
	b.capacity = 2ull << 40;
	b.free = 1536ull << 30;
	rp.datastores = dss;
	rp.n_datastores = 2;
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_LIST, &rp);
	assert_int_equal(KEEL("datastore", "list"), 0);
	assert_string_equal(
	    R.out,
	    "NAME    PATH                            SHARED  CAPACITY     FREE  USED%  VMS\n"
	    "local   /var/lib/keel/datastores/local  no       100 GiB   25 GiB    75%    3\n"
	    "shared  /mnt/nfs                        yes        2 TiB  1.5 TiB    25%    0\n");
	assert_int_equal(KEEL("datastore", "list", "--json"), 0);
	assert_one_json_object(R.out);
	assert_has(R.out, "\"datastores\":[{\"name\":\"local\",\"path\":\"/var/lib/keel/"
			  "datastores/local\",\"shared\":false,\"capacity\":107374182400,");

	assert_int_equal(KEEL("datastore", "add", "ds9", "store", "--shared"), 0);
	assert_non_null(getcwd(cwd, sizeof(cwd)));
	snprintf(want, sizeof(want), "%s/store", cwd);
	const Keel__Vmk__VmkRequest *rq = req_at(2);
	assert_int_equal(rq->req_case, KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_ADD);
	assert_string_equal(rq->datastore_add->name, "ds9");
	assert_string_equal(rq->datastore_add->path, want);
	assert_true(rq->datastore_add->shared);
	assert_has(R.out, "Added shared datastore ds9 at ");

	assert_int_equal(KEEL("datastore", "remove", "ds9"), 0);
	assert_int_equal(req_at(3)->req_case, KEEL__VMK__VMK_REQUEST__REQ_DATASTORE_REMOVE);
	assert_string_equal(req_at(3)->datastore_remove->name, "ds9");
	assert_string_equal(R.out, "Removed datastore ds9.\n");
}

static void test_host_info_and_log(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	Keel__Vmk__HostInfo h = KEEL__VMK__HOST_INFO__INIT;
	char *lines[2] = {"I vmkernel: started", "W vm web01:\tvmx exited"};

	h.hostname = "esx-01";
	h.version = "0.1.0";
	h.cpus = 8;
	h.cpu_mhz = 2400;
	h.mem_bytes = 32ull << 30;
	h.cpu_reserved_mhz = 1500;
	h.cpu_reservable_mhz = 17280;
	h.mem_reserved_bytes = 1536ull << 20;
	h.mem_reservable_bytes = 30ull << 30;
	h.vms_registered = 3;
	h.vms_powered_on = 1;
	h.uptime_ms = 90061000;
	h.cgroup_version = "v1";
	h.state_dir = "/var/lib/keel";
	h.cpu_used_mhz = 12.5;
	h.mem_used_bytes = 300ull << 20;
	rp.host = &h;
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_HOST_INFO, &rp);
	assert_int_equal(KEEL("host", "info"), 0);
	assert_has(R.out, "Hostname:          esx-01\n");
	assert_has(R.out, "CPU:               8 x 2400 MHz = 19200 MHz\n");
	assert_has(R.out, "  reserved:        1500 MHz of 17280 MHz reservable\n");
	assert_has(R.out, "  used:            12.5 MHz\n");
	assert_has(R.out, "Memory:            32 GiB\n");
	assert_has(R.out, "  reserved:        1.5 GiB of 30 GiB reservable\n");
	assert_has(R.out, "  used:            300 MiB\n");
	assert_has(R.out, "VMs:               3 registered, 1 powered on\n");
	assert_has(R.out, "Uptime:            1d 01h\n");
	assert_int_equal(KEEL("host", "info", "--json"), 0);
	assert_one_json_object(R.out);
	assert_has(R.out, "\"host\":{\"hostname\":\"esx-01\"");
	assert_has(R.out, "\"mem_bytes\":34359738368");
	assert_has(R.out, "\"cpu_used_mhz\":12.5");

	rp.host = NULL;
	rp.log_lines = lines;
	rp.n_log_lines = 2;
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_LOG, &rp);
	assert_int_equal(KEEL("host", "log", "--lines", "2"), 0);
	assert_int_equal(req_at(2)->log->lines, 2);
	assert_string_equal(R.out, "I vmkernel: started\nW vm web01: vmx exited\n");
	assert_int_equal(KEEL("host", "log"), 0);
	assert_int_equal(req_at(3)->log->lines, 100);
	assert_int_equal(KEEL("host", "log", "--json"), 0);
	assert_has(R.out, "\"log_lines\":[\"I vmkernel: started\",\"W vm web01:\\tvmx exited\"]");
}

static void test_network_commands(void **state)
{
	Keel__Vmk__VmkReply rp = KEEL__VMK__VMK_REPLY__INIT;
	Keel__Vmk__VSwitchInfo vs = KEEL__VMK__VSWITCH_INFO__INIT;
	Keel__Vmk__VSwitchInfo *vss[1] = {&vs};
	Keel__Vmk__PortgroupInfo pg = KEEL__VMK__PORTGROUP_INFO__INIT;
	Keel__Vmk__PortgroupInfo *pgs[1] = {&pg};
	char *uplinks[2] = {"eth0", "eth1"}, *ports[1] = {"tap-web01-0"};

	vs.name = "vSwitch0";
	vs.mtu = 1500;
	vs.uplinks = uplinks;
	vs.n_uplinks = 2;
	rp.vswitches = vss;
	rp.n_vswitches = 1;
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_LIST, &rp);
	assert_int_equal(KEEL("network", "vswitch", "list"), 0);
	assert_string_equal(R.out, "NAME       MTU  UPLINKS\n"
				   "vSwitch0  1500  eth0, eth1\n");

	rp.n_vswitches = 0;
	pg.name = "VM Network";
	pg.vswitch = "vSwitch0";
	pg.vlan = 42;
	pg.ports = ports;
	pg.n_ports = 1;
	rp.portgroups = pgs;
	rp.n_portgroups = 1;
	fake_set(KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_LIST, &rp);
	assert_int_equal(KEEL("network", "portgroup", "list"), 0);
	assert_string_equal(R.out, "NAME        VSWITCH   VLAN  PORTS\n"
				   "VM Network  vSwitch0    42  tap-web01-0\n");
	assert_int_equal(KEEL("network", "portgroup", "list", "--json"), 0);
	assert_one_json_object(R.out);
	assert_has(R.out, "\"portgroups\":[{\"name\":\"VM Network\",\"vswitch\":\"vSwitch0\","
			  "\"vlan\":42,\"ports\":[\"tap-web01-0\"]}]");

	assert_int_equal(KEEL("network", "vswitch", "add", "vSwitch1", "--mtu", "9000"), 0);
	assert_int_equal(req_at(3)->req_case, KEEL__VMK__VMK_REQUEST__REQ_VSWITCH_ADD);
	assert_string_equal(req_at(3)->vswitch_add->name, "vSwitch1");
	assert_int_equal(req_at(3)->vswitch_add->mtu, 9000);
	assert_string_equal(R.out, "Added vSwitch vSwitch1.\n");

	assert_int_equal(KEEL("network", "uplink", "add", "vSwitch1", "eth2"), 0);
	assert_int_equal(req_at(4)->req_case, KEEL__VMK__VMK_REQUEST__REQ_UPLINK_ADD);
	assert_string_equal(req_at(4)->uplink_add->vswitch, "vSwitch1");
	assert_string_equal(req_at(4)->uplink_add->nic, "eth2");
	assert_int_equal(KEEL("network", "uplink", "remove", "vSwitch1", "eth2"), 0);
	assert_int_equal(req_at(5)->req_case, KEEL__VMK__VMK_REQUEST__REQ_UPLINK_REMOVE);
	assert_string_equal(req_at(5)->uplink_remove->nic, "eth2");
	assert_string_equal(R.out, "Removed uplink eth2 from vSwitch vSwitch1.\n");

	assert_int_equal(KEEL("network", "portgroup", "add", "DMZ", "--vswitch", "vSwitch1",
			      "--vlan", "7", "--json"),
			 0);
	assert_int_equal(req_at(6)->req_case, KEEL__VMK__VMK_REQUEST__REQ_PORTGROUP_ADD);
	assert_string_equal(req_at(6)->portgroup_add->name, "DMZ");
	assert_string_equal(req_at(6)->portgroup_add->vswitch, "vSwitch1");
	assert_int_equal(req_at(6)->portgroup_add->vlan, 7);
	assert_string_equal(R.out, "{\"ok\":true,\"code\":0}\n");

	assert_int_equal(KEEL("network", "portgroup", "remove", "DMZ"), 0);
	assert_string_equal(req_at(7)->portgroup_remove->name, "DMZ");
	assert_int_equal(KEEL("network", "vswitch", "remove", "vSwitch1"), 0);
	assert_string_equal(req_at(8)->vswitch_remove->name, "vSwitch1");
	assert_int_equal(fake.undecodable, 0);
}

#define T(f) cmocka_unit_test_setup(f, test_setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
	    T(test_help_at_every_level),
	    T(test_help_forms),
	    T(test_usage_errors_exit_2),
	    T(test_missing_socket_exit_3),
	    T(test_protocol_errors_exit_4),
	    T(test_no_answer_times_out_exit_3),
	    T(test_error_reply_exit_1),
	    T(test_vm_create_maps_every_flag),
	    T(test_vm_create_defaults_send_nothing_extra),
	    T(test_vm_list_table),
	    T(test_vm_list_json_escapes),
	    T(test_vm_info),
	    T(test_vm_power_ops_map_to_requests),
	    T(test_vm_register_sends_absolute_path),
	    T(test_vm_reconfigure_sends_only_changes),
	    T(test_console_tail_and_no_follow),
	    T(test_console_follows_and_forwards_stdin),
	    T(test_console_of_a_powered_off_vm),
	    T(test_console_follow_for_stops),
	    T(test_console_tty_raw_and_escape),
	    T(test_datastore_commands),
	    T(test_host_info_and_log),
	    T(test_network_commands),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
