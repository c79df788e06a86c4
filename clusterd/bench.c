/*
 * Commit latency on the leader (ClusterBenchCommit, `keel cluster bench-commit`): count
 * EventAdd commands, window of them in flight, each submitted through the proposer (which
 * batches what is submitted together into one entry) and timed from cd_submit() to its
 * callback on the leader (committed by a majority and applied). For benchmarks; the notes
 * it adds are ordinary events.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/daemon.h"
#include "lib/heap.h"
#include "lib/time.h"

struct bench_slot {
	struct cd_bench *b;
	uint64_t t0;
};

struct cd_bench {
	struct cd_daemon *d;
	unsigned count, window, sent, done, failed;
	uint64_t start_ns;
	uint64_t *lat_ns;
	struct bench_slot *slots;
	cd_bench_cb cb;
	void *arg;
};

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void finish(struct cd_bench *b)
{
	struct cd_bench_result r = {0};
	uint64_t total = kb_now_ns() - b->start_ns;
	unsigned n = b->done;

	if (n) {
		qsort(b->lat_ns, n, sizeof(uint64_t), cmp_u64);
		r.p50_ms = (double)b->lat_ns[n / 2] / 1e6;
		r.p99_ms = (double)b->lat_ns[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1] / 1e6;
		r.max_ms = (double)b->lat_ns[n - 1] / 1e6;
		r.ops_s = total ? (double)n * 1e9 / (double)total : 0;
	}
	r.count = n;
	r.failed = b->failed;
	b->d->bench = NULL;
	if (b->cb)
		b->cb(b->d, b->arg, &r);
	kb_free(b->lat_ns);
	kb_free(b->slots);
	kb_free(b);
}

static void launch(struct bench_slot *s);

static void on_applied(struct cd_daemon *d, void *arg, int status, int code, const char *reason)
{
	struct bench_slot *s = arg;
	struct cd_bench *b = s->b;

	(void)d;
	(void)reason;
	if (status || code)
		b->failed++;
	else
		b->lat_ns[b->done++] = kb_now_ns() - s->t0;
	if (b->sent < b->count && !b->failed)
		launch(s);
	else if (b->done + b->failed == b->sent)
		finish(b);
}

static void launch(struct bench_slot *s)
{
	struct cd_bench *b = s->b;
	Keel__Cluster__Event ev = KEEL__CLUSTER__EVENT__INIT;
	Keel__Cluster__EventAdd ea = KEEL__CLUSTER__EVENT_ADD__INIT;
	Keel__Cluster__Command c = KEEL__CLUSTER__COMMAND__INIT;
	struct kb_errmsg e = {{0}};

	ev.at_ms = cd_now_ms();
	ev.kind = KEEL__CLUSTER__EVENT_KIND__EVENT_NOTE;
	ev.vm = "";
	ev.message = "bench";
	ea.event = &ev;
	c.cmd_case = KEEL__CLUSTER__COMMAND__CMD_EVENT_ADD;
	c.event_add = &ea;
	s->t0 = kb_now_ns();
	b->sent++;
	if (cd_submit(b->d, &c, on_applied, s, &e)) {
		/* Refused at once: counted as sent and failed. Finish only when nothing else
		 * is in flight (libraft still holds the other slots' requests). */
		b->failed++;
		if (b->done + b->failed == b->sent)
			finish(b);
	}
}

int cd_bench_start(struct cd_daemon *d, unsigned count, unsigned window, cd_bench_cb cb,
		   void *arg, struct kb_errmsg *e)
{
	struct cd_bench *b;

	if (!cd_node_is_ready_leader(d)) {
		kb_errmsg_setf(e, "bench-commit runs on the leader");
		return KB_ESTATE;
	}
	if (d->bench) {
		kb_errmsg_setf(e, "a bench is already running");
		return KB_ESTATE;
	}
	if (count < 1 || count > 1000000 || window < 1 || window > 65536) {
		kb_errmsg_setf(e, "count 1..1000000, window 1..65536");
		return -EINVAL;
	}
	if (window > count)
		window = count;
	b = kb_calloc(1, sizeof(*b));
	if (b) {
		b->lat_ns = kb_calloc(count, sizeof(uint64_t));
		b->slots = kb_calloc(window, sizeof(*b->slots));
	}
	if (!b || !b->lat_ns || !b->slots) {
		if (b) {
			kb_free(b->lat_ns);
			kb_free(b->slots);
		}
		kb_free(b);
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	b->d = d;
	b->count = count;
	b->window = window;
	b->cb = cb;
	b->arg = arg;
	b->start_ns = kb_now_ns();
	d->bench = b;
	for (unsigned i = 0; i < window && d->bench == b && !b->failed; i++) {
		b->slots[i].b = b;
		launch(&b->slots[i]);
	}
	return 0;
}

void cd_bench_forget(struct cd_daemon *d, void *arg)
{
	if (d->bench && d->bench->arg == arg)
		d->bench->cb = NULL;
}
