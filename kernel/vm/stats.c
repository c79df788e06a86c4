/*
 * Host monitoring: VmkPerf, one sample of every world with its rates (docs/top.md).
 *
 * Worlds: each powered-on VM's vmx; vmkernel itself; and the services of the state dir
 * that hold a flock on their lock file (clusterd.lock, vmsyslogd.lock, keel-snmpd.lock),
 * found as the lock's holder in /proc/locks. For each, from what the host exposes:
 *   - CPU: /proc/PID/task/TID/schedstat, run and wait (ready) time per thread, summed per
 *     world and kept per vCPU thread (the vmx names them "vcpuN");
 *   - memory: RSS (/proc/PID/statm) and the VM's memory cgroup (kernel/res);
 *   - VM exits by reason and guest memory: the vmx's own counters (VmxStats);
 *   - network: the taps' counters in /proc/self/net/dev (vmkernel's own network namespace,
 *     where the taps live; sysfs would show its mounter's), turned to the guest's view
 *     (what the tap receives the guest sent);
 *   - disk: read_bytes/write_bytes of /proc/PID/io, and as operations the read and write
 *     system calls of the vCPU threads, which do virtio-blk's preadv/pwritev.
 *
 * Rates are the deltas against the previous sample of the same world (the same pid and
 * start time) kept here, whoever asked for it; without a usable one (none, older than
 * VMK_STATS_STALE_MS or younger than VMK_STATS_MIN_MS) the world is sampled twice,
 * window_ms apart, within the request. A thread that appeared between two samples counts
 * with all of its time (it started within the interval); one that ended is left out.
 *
 * Failure modes: a world that ends while being sampled is left out; a vmx that does not
 * answer its stats call within 1 s keeps its other figures and says so in its error field;
 * files that cannot be read count as zero.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "kernel/res/res.h"
#include "kernel/vm/stats.h"
#include "kernel/vm/vm.h"
#include "lib/heap.h"
#include "lib/time.h"

#define MAX_THREADS	256
#define MAX_VCPUS	64
#define VMX_STATS_MS	1000
#define NR_EXIT_REASONS 6 /* io, mmio, hlt, intr, shutdown, other (VmxVcpuStats) */
#define PREV_MAX_WORLDS 1024

static const char *const services[] = {"clusterd", "vmsyslogd", "keel-snmpd"};

struct raw_thread {
	pid_t tid;
	bool vcpu;
	uint32_t vcpu_id;
	uint64_t run_ns, wait_ns, syscr, syscw;
};

struct raw_nic {
	char tap[16];
	uint32_t index;
	uint64_t rx_packets, rx_bytes, tx_packets, tx_bytes; /* the guest's view */
};

struct raw_vcpu {
	uint32_t id;
	uint64_t run_ns;
	uint64_t exits[NR_EXIT_REASONS];
};

/* One world, as read at t_ns. */
struct raw {
	char key[48]; /* uuid, or the service's name */
	char name[64];
	bool vm;
	pid_t pid;
	uint64_t start; /* field 22 of /proc/PID/stat */
	char ctl[PATH_MAX];
	int nr_taps;
	char taps[VMK_MAX_NICS][16];

	uint64_t t_ns;
	bool gone;
	size_t nr_threads;
	struct raw_thread th[MAX_THREADS];
	uint64_t rss, cg_mem, read_bytes, write_bytes;
	bool have_vmx;
	size_t nr_vcpus;
	struct raw_vcpu vcpus[MAX_VCPUS];
	uint64_t mem_size, mem_touched;
	struct raw_nic nics[VMK_MAX_NICS];
	char error[160];
};

/* The previous sample of each world, whoever asked. */
static pthread_mutex_t prev_lock = PTHREAD_MUTEX_INITIALIZER;
static struct raw *prev[PREV_MAX_WORLDS];
static size_t nr_prev;

/* Reads a small text file into buf (NUL-terminated). 0 or -errno. */
static int read_text(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int proc_start(pid_t pid, uint64_t *start)
{
	char path[64], text[1024];
	int rv;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	rv = read_text(path, text, sizeof(text));
	return rv ?: vmk_stats_parse_start(text, start);
}

static void sample_threads(struct raw *w)
{
	char path[96], text[1024];
	struct dirent *de;
	DIR *d;

	w->nr_threads = 0;
	snprintf(path, sizeof(path), "/proc/%d/task", (int)w->pid);
	d = opendir(path);
	if (d == NULL) {
		w->gone = true;
		return;
	}
	while ((de = readdir(d)) != NULL && w->nr_threads < MAX_THREADS) {
		struct raw_thread *t = &w->th[w->nr_threads];
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (tid <= 0 || *end)
			continue;
		memset(t, 0, sizeof(*t));
		t->tid = (pid_t)tid;
		snprintf(path, sizeof(path), "/proc/%d/task/%ld/schedstat", (int)w->pid, tid);
		if (read_text(path, text, sizeof(text)) < 0 ||
		    vmk_stats_parse_schedstat(text, &t->run_ns, &t->wait_ns) < 0)
			continue; /* ended meanwhile */
		snprintf(path, sizeof(path), "/proc/%d/task/%ld/comm", (int)w->pid, tid);
		if (w->vm && read_text(path, text, sizeof(text)) == 0)
			t->vcpu = vmk_stats_vcpu_thread(text, &t->vcpu_id);
		if (t->vcpu) {
			snprintf(path, sizeof(path), "/proc/%d/task/%ld/io", (int)w->pid, tid);
			if (read_text(path, text, sizeof(text)) == 0) {
				(void)vmk_stats_parse_keyed(text, "syscr", &t->syscr);
				(void)vmk_stats_parse_keyed(text, "syscw", &t->syscw);
			}
		}
		w->nr_threads++;
	}
	closedir(d);
}

static void sample_vmx(struct raw *w)
{
	Keel__Vmk__VmxRequest rq = KEEL__VMK__VMX_REQUEST__INIT;
	Keel__Vmk__VmxStats stats = KEEL__VMK__VMX_STATS__INIT;
	Keel__Vmk__VmxReply *rp = NULL;
	struct kb_errmsg err = {{0}};

	w->have_vmx = false;
	w->nr_vcpus = 0;
	rq.req_case = KEEL__VMK__VMX_REQUEST__REQ_STATS;
	rq.stats = &stats;
	if (vmk_vmx_call(w->ctl, &rq, &rp, VMX_STATS_MS, &err) < 0 || rp->stats == NULL) {
		snprintf(w->error, sizeof(w->error), "vmx stats: %s",
			 err.msg[0] ? err.msg : "no stats in the reply");
		if (rp)
			keel__vmk__vmx_reply__free_unpacked(rp, NULL);
		return;
	}
	for (size_t i = 0; i < rp->stats->n_vcpus && i < MAX_VCPUS; i++) {
		const Keel__Vmk__VmxVcpuStats *v = rp->stats->vcpus[i];
		struct raw_vcpu *o = &w->vcpus[w->nr_vcpus++];

		o->id = v->id;
		o->run_ns = v->run_ns;
		o->exits[0] = v->exits_io;
		o->exits[1] = v->exits_mmio;
		o->exits[2] = v->exits_hlt;
		o->exits[3] = v->exits_intr;
		o->exits[4] = v->exits_shutdown;
		o->exits[5] = v->exits_other;
	}
	w->mem_size = rp->stats->mem_size;
	w->mem_touched = rp->stats->mem_touched;
	w->have_vmx = true;
	keel__vmk__vmx_reply__free_unpacked(rp, NULL);
}

static void sample_nics(struct raw *w)
{
	static char text[64 << 10]; /* under dev_lock */
	static pthread_mutex_t dev_lock = PTHREAD_MUTEX_INITIALIZER;

	if (w->nr_taps == 0)
		return;
	pthread_mutex_lock(&dev_lock);
	if (read_text("/proc/self/net/dev", text, sizeof(text)) < 0)
		text[0] = '\0';
	for (int i = 0; i < w->nr_taps; i++) {
		struct raw_nic *n = &w->nics[i];
		struct vmk_stats_netdev d = {0};

		snprintf(n->tap, sizeof(n->tap), "%s", w->taps[i]);
		n->index = (uint32_t)i;
		(void)vmk_stats_parse_netdev(text, n->tap, &d);
		/* The tap's receive side is what the guest transmitted. */
		n->tx_packets = d.rx_packets;
		n->tx_bytes = d.rx_bytes;
		n->rx_packets = d.tx_packets;
		n->rx_bytes = d.tx_bytes;
	}
	pthread_mutex_unlock(&dev_lock);
}

static void sample(struct vmk_host *h, struct raw *w)
{
	char path[64], text[1024];
	uint64_t start, pages;

	w->t_ns = kb_now_ns();
	w->error[0] = '\0';
	if (proc_start(w->pid, &start) < 0 || start != w->start) {
		w->gone = true;
		return;
	}
	sample_threads(w);
	snprintf(path, sizeof(path), "/proc/%d/statm", (int)w->pid);
	if (read_text(path, text, sizeof(text)) == 0 &&
	    vmk_stats_parse_statm_rss(text, &pages) == 0)
		w->rss = pages * (uint64_t)sysconf(_SC_PAGESIZE);
	snprintf(path, sizeof(path), "/proc/%d/io", (int)w->pid);
	if (read_text(path, text, sizeof(text)) == 0) {
		(void)vmk_stats_parse_keyed(text, "read_bytes", &w->read_bytes);
		(void)vmk_stats_parse_keyed(text, "write_bytes", &w->write_bytes);
	}
	if (!w->vm)
		return;
	if (h->res != NULL) {
		struct kb_errmsg err = {{0}};
		uint64_t cpu_ns;

		if (vmk_res_vm_usage(h->res, w->key, &cpu_ns, &w->cg_mem, &err) < 0)
			w->cg_mem = 0;
	}
	sample_vmx(w);
	sample_nics(w);
}

/* The running VMs (all, or the one named) and the services; *out freed by the caller. */
static int collect(struct vmk_host *h, const char *only, struct raw ***out, size_t *count,
		   struct kb_errmsg *err)
{
	struct raw **ws = NULL;
	size_t n = 0, cap = 0;
	struct kb_list *pos;
	bool found = false;
	int rv = 0;

	pthread_mutex_lock(&h->lock);
	kb_list_for_each(pos, &h->vms)
	{
		struct vmk_vm *vm = kb_list_entry(pos, struct vmk_vm, link);
		struct raw *w;

		pthread_mutex_lock(&vm->lock);
		if (only[0] && strcmp(only, vm->cfg.name) != 0 && strcmp(only, vm->cfg.uuid) != 0) {
			pthread_mutex_unlock(&vm->lock);
			continue;
		}
		found = true;
		if (vm->power != VMK_POWERED_ON || vm->pid <= 0) {
			pthread_mutex_unlock(&vm->lock);
			if (only[0]) {
				kb_errmsg_setf(err, "VM %s is not powered on", only);
				rv = KB_ESTATE;
			}
			continue;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct raw **nw = kb_realloc(ws, nc * sizeof(*ws));

			if (nw == NULL) {
				pthread_mutex_unlock(&vm->lock);
				rv = -ENOMEM;
				break;
			}
			ws = nw;
			cap = nc;
		}
		w = kb_calloc(1, sizeof(*w));
		if (w == NULL) {
			pthread_mutex_unlock(&vm->lock);
			rv = -ENOMEM;
			break;
		}
		w->vm = true;
		snprintf(w->key, sizeof(w->key), "%s", vm->cfg.uuid);
		snprintf(w->name, sizeof(w->name), "%s", vm->cfg.name);
		w->pid = vm->pid;
		vmk_vm_ctl_path(vm, w->ctl, sizeof(w->ctl));
		w->nr_taps = vm->nr_taps;
		memcpy(w->taps, vm->taps, sizeof(w->taps));
		pthread_mutex_unlock(&vm->lock);
		ws[n++] = w;
	}
	pthread_mutex_unlock(&h->lock);
	if (rv == 0 && only[0] && !found) {
		kb_errmsg_setf(err, "no VM named %s", only);
		rv = KB_ENOTFOUND;
	}
	/* The services, when every world was asked for. */
	for (size_t i = 0; rv == 0 && !only[0] && i < 1 + sizeof(services) / sizeof(*services);
	     i++) {
		pid_t pid = getpid();
		struct raw *w;

		if (i > 0) {
			char path[PATH_MAX + 32], text[64 << 10];
			struct stat st;

			snprintf(path, sizeof(path), "%s/%s.lock", h->state_dir, services[i - 1]);
			if (stat(path, &st) < 0 ||
			    read_text("/proc/locks", text, sizeof(text)) < 0 ||
			    vmk_stats_parse_lock_holder(text, major(st.st_dev), minor(st.st_dev),
							st.st_ino, &pid) < 0)
				continue;
		}
		if (n == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct raw **nw = kb_realloc(ws, nc * sizeof(*ws));

			if (nw == NULL) {
				rv = -ENOMEM;
				break;
			}
			ws = nw;
			cap = nc;
		}
		w = kb_calloc(1, sizeof(*w));
		if (w == NULL) {
			rv = -ENOMEM;
			break;
		}
		snprintf(w->key, sizeof(w->key), "%s", i ? services[i - 1] : "vmkernel");
		snprintf(w->name, sizeof(w->name), "%s", w->key);
		w->pid = pid;
		ws[n++] = w;
	}
	for (size_t i = 0; i < n; i++)
		if (proc_start(ws[i]->pid, &ws[i]->start) < 0)
			ws[i]->gone = true;
	*out = ws;
	*count = n;
	return rv;
}

/* The kept sample of w's world, copied into *out when usable. */
static bool prev_get(const struct raw *w, uint64_t now, struct raw *out)
{
	bool ok = false;

	pthread_mutex_lock(&prev_lock);
	for (size_t i = 0; i < nr_prev; i++) {
		const struct raw *p = prev[i];

		if (strcmp(p->key, w->key) != 0)
			continue;
		if (p->pid == w->pid && p->start == w->start &&
		    now - p->t_ns >= VMK_STATS_MIN_MS * KB_NSEC_PER_MSEC &&
		    now - p->t_ns <= VMK_STATS_STALE_MS * KB_NSEC_PER_MSEC) {
			*out = *p;
			ok = true;
		}
		break;
	}
	pthread_mutex_unlock(&prev_lock);
	return ok;
}

/* Keeps a copy of w as its world's previous sample; drops stale ones. */
static void prev_put(const struct raw *w, uint64_t now)
{
	struct raw *copy = kb_malloc(sizeof(*copy));
	size_t i;

	if (copy == NULL)
		return;
	*copy = *w;
	pthread_mutex_lock(&prev_lock);
	for (i = 0; i < nr_prev;) {
		if (strcmp(prev[i]->key, w->key) == 0 ||
		    now - prev[i]->t_ns > VMK_STATS_STALE_MS * KB_NSEC_PER_MSEC) {
			kb_free(prev[i]);
			prev[i] = prev[--nr_prev];
			continue;
		}
		i++;
	}
	if (nr_prev < PREV_MAX_WORLDS)
		prev[nr_prev++] = copy;
	else
		kb_free(copy);
	pthread_mutex_unlock(&prev_lock);
}

static const struct raw_thread *thread_in(const struct raw *w, pid_t tid)
{
	for (size_t i = 0; i < w->nr_threads; i++)
		if (w->th[i].tid == tid)
			return &w->th[i];
	return NULL;
}

static const struct raw_vcpu *vcpu_in(const struct raw *w, uint32_t id)
{
	for (size_t i = 0; i < w->nr_vcpus; i++)
		if (w->vcpus[i].id == id)
			return &w->vcpus[i];
	return NULL;
}

static uint64_t vcpu_exits(const struct raw_vcpu *v)
{
	uint64_t s = 0;

	for (int k = 0; k < NR_EXIT_REASONS; k++)
		s += v->exits[k];
	return s;
}

/* The world's figures from two samples p (earlier) and c. */
static int fill_world(const struct raw *p, const struct raw *c, Keel__Vmk__PerfWorld **out)
{
	Keel__Vmk__PerfWorld *o = kb_calloc(1, sizeof(*o));
	uint64_t dt = c->t_ns - p->t_ns;
	double exits[NR_EXIT_REASONS] = {0};
	uint64_t syscr = 0, syscw = 0, psyscr = 0, psyscw = 0;

	if (o == NULL)
		return -ENOMEM;
	keel__vmk__perf_world__init(o);
	*out = o;
	o->name = kb_strdup(c->name);
	o->kind = kb_strdup(c->vm ? "vm" : "system");
	o->uuid = kb_strdup(c->vm ? c->key : "");
	o->error = kb_strdup(c->error);
	if (!o->name || !o->kind || !o->uuid || !o->error)
		return -ENOMEM;
	o->pid = (uint32_t)c->pid;
	o->threads = (uint32_t)c->nr_threads;
	o->rss_bytes = c->rss;
	o->cgroup_mem_bytes = c->cg_mem;
	o->mem_size = c->mem_size;
	o->mem_touched = c->mem_touched;

	/* CPU per thread; threads new since p count from zero. */
	if (c->nr_vcpus) {
		o->vcpus = kb_calloc(c->nr_vcpus, sizeof(*o->vcpus));
		if (o->vcpus == NULL)
			return -ENOMEM;
	}
	for (size_t i = 0; i < c->nr_threads; i++) {
		const struct raw_thread *t = &c->th[i], *pt = thread_in(p, t->tid);
		double used = vmk_stats_pct(pt ? pt->run_ns : 0, t->run_ns, dt);
		double ready = vmk_stats_pct(pt ? pt->wait_ns : 0, t->wait_ns, dt);

		o->cpu_used_pct += used;
		o->cpu_ready_pct += ready;
		if (t->vcpu) {
			syscr += t->syscr;
			syscw += t->syscw;
			psyscr += pt ? pt->syscr : 0;
			psyscw += pt ? pt->syscw : 0;
		}
	}
	/* Exits, and one row per vCPU the vmx reported (its thread's CPU figures). */
	for (size_t i = 0; c->have_vmx && p->have_vmx && i < c->nr_vcpus; i++) {
		const struct raw_vcpu *v = &c->vcpus[i], *pv = vcpu_in(p, v->id);
		Keel__Vmk__PerfVcpu *pc = kb_calloc(1, sizeof(*pc));

		if (pc == NULL)
			return -ENOMEM;
		keel__vmk__perf_vcpu__init(pc);
		o->vcpus[o->n_vcpus++] = pc;
		pc->id = v->id;
		pc->run_ns = v->run_ns;
		for (int k = 0; pv && k < NR_EXIT_REASONS; k++)
			exits[k] += vmk_stats_rate(pv->exits[k], v->exits[k], dt);
		pc->exits_s = pv ? vmk_stats_rate(vcpu_exits(pv), vcpu_exits(v), dt) : 0;
		o->exits_total += vcpu_exits(v);
		for (size_t j = 0; j < c->nr_threads; j++) {
			const struct raw_thread *t = &c->th[j], *pt;

			if (!t->vcpu || t->vcpu_id != v->id)
				continue;
			pt = thread_in(p, t->tid);
			pc->used_pct = vmk_stats_pct(pt ? pt->run_ns : 0, t->run_ns, dt);
			pc->ready_pct = vmk_stats_pct(pt ? pt->wait_ns : 0, t->wait_ns, dt);
		}
	}
	o->exits_io_s = exits[0];
	o->exits_mmio_s = exits[1];
	o->exits_hlt_s = exits[2];
	o->exits_intr_s = exits[3];
	o->exits_other_s = exits[4] + exits[5];
	for (int k = 0; k < NR_EXIT_REASONS; k++)
		o->exits_s += exits[k];

	/* Disk. */
	o->disk_read_bytes = c->read_bytes;
	o->disk_write_bytes = c->write_bytes;
	o->disk_read_bytes_s = vmk_stats_rate(p->read_bytes, c->read_bytes, dt);
	o->disk_write_bytes_s = vmk_stats_rate(p->write_bytes, c->write_bytes, dt);
	o->disk_read_ops_s = vmk_stats_rate(psyscr, syscr, dt);
	o->disk_write_ops_s = vmk_stats_rate(psyscw, syscw, dt);

	/* Network, per NIC and in all. */
	if (c->nr_taps) {
		o->nics = kb_calloc((size_t)c->nr_taps, sizeof(*o->nics));
		if (o->nics == NULL)
			return -ENOMEM;
	}
	for (int i = 0; i < c->nr_taps; i++) {
		const struct raw_nic *n = &c->nics[i], *pn = &p->nics[i];
		Keel__Vmk__PerfNic *pc = kb_calloc(1, sizeof(*pc));
		bool same = strcmp(pn->tap, n->tap) == 0;

		if (pc == NULL)
			return -ENOMEM;
		keel__vmk__perf_nic__init(pc);
		o->nics[o->n_nics++] = pc;
		pc->tap = kb_strdup(n->tap);
		if (pc->tap == NULL)
			return -ENOMEM;
		pc->index = n->index;
		pc->rx_packets = n->rx_packets;
		pc->rx_bytes = n->rx_bytes;
		pc->tx_packets = n->tx_packets;
		pc->tx_bytes = n->tx_bytes;
		if (same) {
			pc->rx_packets_s = vmk_stats_rate(pn->rx_packets, n->rx_packets, dt);
			pc->rx_bytes_s = vmk_stats_rate(pn->rx_bytes, n->rx_bytes, dt);
			pc->tx_packets_s = vmk_stats_rate(pn->tx_packets, n->tx_packets, dt);
			pc->tx_bytes_s = vmk_stats_rate(pn->tx_bytes, n->tx_bytes, dt);
		}
		o->net_rx_packets_s += pc->rx_packets_s;
		o->net_rx_bytes_s += pc->rx_bytes_s;
		o->net_tx_packets_s += pc->tx_packets_s;
		o->net_tx_bytes_s += pc->tx_bytes_s;
	}
	return 0;
}

static int by_cpu(const void *a, const void *b)
{
	const Keel__Vmk__PerfWorld *x = *(Keel__Vmk__PerfWorld *const *)a;
	const Keel__Vmk__PerfWorld *y = *(Keel__Vmk__PerfWorld *const *)b;

	if (x->cpu_used_pct != y->cpu_used_pct)
		return x->cpu_used_pct < y->cpu_used_pct ? 1 : -1;
	return strcmp(x->name, y->name);
}

static void host_figures(Keel__Vmk__PerfSample *s)
{
	char text[4096], host[256];
	uint64_t kib;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);

	s->cpus = cpus > 0 ? (uint32_t)cpus : 1;
	if (gethostname(host, sizeof(host)) < 0)
		host[0] = '\0';
	host[sizeof(host) - 1] = '\0';
	s->hostname = kb_strdup(host);
	if (read_text("/proc/meminfo", text, sizeof(text)) == 0) {
		char *p = strstr(text, "MemTotal:");

		if (p && sscanf(p, "MemTotal: %" SCNu64, &kib) == 1)
			s->mem_bytes = kib << 10;
		p = strstr(text, "MemAvailable:");
		if (p && sscanf(p, "MemAvailable: %" SCNu64, &kib) == 1)
			s->mem_available_bytes = kib << 10;
	}
}

int vmk_stats_perf(struct vmk_host *h, const Keel__Vmk__VmkPerf *rq, Keel__Vmk__VmkReply *rp,
		   struct kb_errmsg *err)
{
	uint32_t window = rq->window_ms ? rq->window_ms : VMK_STATS_WINDOW_MS;
	const char *only = rq->vm ? rq->vm : "";
	Keel__Vmk__PerfSample *s = NULL;
	struct raw **ws = NULL, *p = NULL;
	bool *have = NULL, any_missing = false;
	size_t n = 0;
	int rv;

	if (window < VMK_STATS_WINDOW_MIN_MS || window > VMK_STATS_WINDOW_MAX_MS) {
		kb_errmsg_setf(err, "window %" PRIu32 " ms: want %d to %d ms", window,
			       VMK_STATS_WINDOW_MIN_MS, VMK_STATS_WINDOW_MAX_MS);
		return KB_ECONFIG;
	}
	rv = collect(h, only, &ws, &n, err);
	if (rv < 0)
		goto out;
	p = kb_calloc(n ? n : 1, sizeof(*p));
	have = kb_calloc(n ? n : 1, sizeof(*have));
	s = kb_calloc(1, sizeof(*s));
	if (s != NULL) {
		keel__vmk__perf_sample__init(s);
		s->hostname = NULL; /* owned: set by host_figures() */
		rp->perf = s;
	}
	if (p == NULL || have == NULL || s == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	/* First samples where no usable earlier one is kept, then the window. */
	uint64_t now = kb_now_ns();
	for (size_t i = 0; i < n; i++) {
		if (ws[i]->gone)
			continue;
		have[i] = prev_get(ws[i], now, &p[i]);
		if (!have[i]) {
			p[i] = *ws[i];
			sample(h, &p[i]);
			any_missing = true;
		}
	}
	if (any_missing)
		kb_sleep_ns((uint64_t)window * KB_NSEC_PER_MSEC);
	host_figures(s);
	s->worlds = kb_calloc(n ? n : 1, sizeof(*s->worlds));
	if (s->hostname == NULL || s->worlds == NULL) {
		rv = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		uint64_t dt_ms;

		if (ws[i]->gone || p[i].gone)
			continue;
		sample(h, ws[i]);
		if (ws[i]->gone)
			continue;
		rv = fill_world(&p[i], ws[i], &s->worlds[s->n_worlds]);
		if (s->worlds[s->n_worlds] != NULL)
			s->n_worlds++;
		if (rv < 0)
			goto out;
		s->cpu_used_pct += s->worlds[s->n_worlds - 1]->cpu_used_pct;
		dt_ms = (ws[i]->t_ns - p[i].t_ns) / KB_NSEC_PER_MSEC;
		if (dt_ms > s->interval_ms)
			s->interval_ms = dt_ms;
		prev_put(ws[i], ws[i]->t_ns);
	}
	s->cpu_used_pct /= s->cpus;
	s->time_ms = kb_wall_ns() / KB_NSEC_PER_MSEC;
	qsort(s->worlds, s->n_worlds, sizeof(*s->worlds), by_cpu);
out:
	if (rv == -ENOMEM)
		kb_errmsg_setf(err, "host stats: out of memory");
	if (rv < 0)
		vmk_stats_reply_free(rp);
	for (size_t i = 0; i < n; i++)
		kb_free(ws[i]);
	kb_free(ws);
	kb_free(p);
	kb_free(have);
	return rv;
}

void vmk_stats_reply_free(Keel__Vmk__VmkReply *rp)
{
	Keel__Vmk__PerfSample *s = rp->perf;

	if (s == NULL)
		return;
	for (size_t i = 0; i < s->n_worlds; i++) {
		Keel__Vmk__PerfWorld *w = s->worlds[i];

		for (size_t j = 0; j < w->n_nics; j++) {
			kb_free(w->nics[j]->tap);
			kb_free(w->nics[j]);
		}
		for (size_t j = 0; j < w->n_vcpus; j++)
			kb_free(w->vcpus[j]);
		kb_free(w->nics);
		kb_free(w->vcpus);
		kb_free(w->name);
		kb_free(w->kind);
		kb_free(w->uuid);
		kb_free(w->error);
		kb_free(w);
	}
	kb_free(s->worlds);
	kb_free(s->hostname);
	kb_free(s);
	rp->perf = NULL;
}
