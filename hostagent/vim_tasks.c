/*
 * The task manager and the task methods: WaitForTask, ListTasks, CancelTask (see
 * hostagent/vim_tasks.h and docs/hostd.md, "Tasks and VM operations").
 *
 * Happy path: an operation adds a queued task and answers its client with it, starts it
 * when its work begins, and ends it in success or error; every change is told to the
 * observers, and the end wakes every WaitForTask on it. Failure modes: a task can only be
 * cancelled while queued, or while running when its kind registered a cancel hook, which
 * then answers (FAILED_PRECONDITION otherwise); a WaitForTask whose client goes
 * away drops its wait (the cancel callback) and its timer; a finished task pushed out of
 * the last HD_TASKS_KEEP is NOT_FOUND afterwards.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "hostagent/vim.h"
#include "hostagent/vim_tasks.h"
#include "lib/heap.h"
#include "lib/time.h"

struct observer {
	hd_task_observer_cb cb;
	void *arg;
};

struct hd_tasks {
	uv_loop_t *loop;
	size_t keep;
	uint64_t next_n;
	size_t count, ndone;
	struct kb_list all;  /* struct hd_task.link, oldest first */
	struct kb_list done; /* struct hd_task.done_link, in completion order */
	struct observer obs[HD_TASKS_OBSERVERS_MAX];
};

struct hd_task_wait {
	struct kb_list link; /* in task->waiters */
	uv_timer_t timer;
	struct hd_task *task;
	hd_task_wait_cb cb;
	void *arg;
};

static uint64_t wall_ms(void)
{
	return kb_wall_ns() / 1000000u;
}

/* ---- the manager ------------------------------------------------------------------------ */

int hd_tasks_create(uv_loop_t *loop, size_t keep, struct hd_tasks **out)
{
	struct hd_tasks *t = kb_calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->loop = loop;
	t->keep = keep;
	t->next_n = 1;
	kb_list_init(&t->all);
	kb_list_init(&t->done);
	*out = t;
	return 0;
}

static void wait_closed(uv_handle_t *h)
{
	kb_free(h->data);
}

/* Takes the wait off its task and frees it once its timer closed. */
static void wait_drop(struct hd_task_wait *w)
{
	kb_list_del(&w->link);
	uv_timer_stop(&w->timer);
	uv_close((uv_handle_t *)&w->timer, wait_closed);
}

/* Takes a task off the manager's lists and drops the manager's reference. */
static void unlist(struct hd_tasks *t, struct hd_task *task)
{
	kb_list_del(&task->link);
	if (hd_task_finished(task)) {
		kb_list_del(&task->done_link);
		t->ndone--;
	}
	t->count--;
	task->listed = false;
	hd_task_release(task);
}

void hd_tasks_destroy(struct hd_tasks *t)
{
	struct kb_list *pos, *tmp;

	if (!t)
		return;
	kb_list_for_each_safe(pos, tmp, &t->all)
	{
		struct hd_task *task = kb_list_entry(pos, struct hd_task, link);

		while (!kb_list_empty(&task->waiters))
			wait_drop(kb_list_entry(task->waiters.next, struct hd_task_wait, link));
		unlist(t, task);
	}
	kb_free(t);
}

static void notify(struct hd_tasks *t, const struct hd_task *task)
{
	for (size_t i = 0; i < HD_TASKS_OBSERVERS_MAX; i++)
		if (t->obs[i].cb)
			t->obs[i].cb(task, t->obs[i].arg);
}

int hd_tasks_add(struct hd_tasks *t, const char *kind, const char *target, const char *user,
		 struct hd_task **out)
{
	struct hd_task *task = kb_calloc(1, sizeof(*task));

	if (!task)
		return -ENOMEM;
	kb_list_init(&task->waiters);
	kb_list_init(&task->done_link);
	task->n = t->next_n++;
	snprintf(task->id, sizeof(task->id), "task-%" PRIu64, task->n);
	snprintf(task->kind, sizeof(task->kind), "%s", kind ? kind : "");
	snprintf(task->target, sizeof(task->target), "%s", target ? target : "");
	snprintf(task->user, sizeof(task->user), "%s", user ? user : "");
	task->state = HD_TASK_QUEUED;
	task->queued_ms = wall_ms();
	task->refs = 2; /* the list's and the caller's */
	task->listed = true;
	kb_list_add_tail(&t->all, &task->link);
	t->count++;
	notify(t, task);
	*out = task;
	return 0;
}

void hd_task_hold(struct hd_task *task)
{
	task->refs++;
}

void hd_task_release(struct hd_task *task)
{
	if (--task->refs == 0)
		kb_free(task);
}

bool hd_task_finished(const struct hd_task *task)
{
	return task->state >= HD_TASK_SUCCESS;
}

const char *hd_task_state_name(enum hd_task_state s)
{
	static const char *const names[] = {"queued", "running", "success", "error", "cancelled"};

	return (unsigned)s < 5 ? names[s] : "unknown";
}

int hd_task_start(struct hd_tasks *t, struct hd_task *task)
{
	if (task->state != HD_TASK_QUEUED)
		return KB_ESTATE;
	task->state = HD_TASK_RUNNING;
	task->started_ms = wall_ms();
	notify(t, task);
	return 0;
}

void hd_task_progress(struct hd_tasks *t, struct hd_task *task, uint32_t percent)
{
	if (task->state != HD_TASK_RUNNING)
		return;
	task->progress = percent > 100 ? 100 : percent;
	notify(t, task);
}

/* The end of a task: waiters woken, observers told, then the retention applied. */
static void finish(struct hd_tasks *t, struct hd_task *task, enum hd_task_state state)
{
	task->state = state;
	task->completed_ms = wall_ms();
	task->cancel_cb = NULL;
	task->cancel_arg = NULL;
	if (state == HD_TASK_SUCCESS)
		task->progress = 100;
	if (task->listed) {
		kb_list_add_tail(&t->done, &task->done_link);
		t->ndone++;
	}
	hd_task_hold(task); /* waiters and observers may see it pushed out */
	while (!kb_list_empty(&task->waiters)) {
		struct hd_task_wait *w =
		    kb_list_entry(task->waiters.next, struct hd_task_wait, link);
		hd_task_wait_cb cb = w->cb;
		void *arg = w->arg;

		wait_drop(w);
		cb(task, false, arg);
	}
	notify(t, task);
	while (t->ndone > t->keep)
		unlist(t, kb_list_entry(t->done.next, struct hd_task, done_link));
	hd_task_release(task);
}

int hd_task_succeed(struct hd_tasks *t, struct hd_task *task, const char *result)
{
	if (hd_task_finished(task))
		return KB_ESTATE;
	snprintf(task->result, sizeof(task->result), "%s", result ? result : "");
	finish(t, task, HD_TASK_SUCCESS);
	return 0;
}

int hd_task_fail(struct hd_tasks *t, struct hd_task *task, const char *fmt, ...)
{
	va_list ap;

	if (hd_task_finished(task))
		return KB_ESTATE;
	va_start(ap, fmt);
	vsnprintf(task->error, sizeof(task->error), fmt, ap);
	va_end(ap);
	finish(t, task, HD_TASK_ERROR);
	return 0;
}

int hd_task_cancel(struct hd_tasks *t, struct hd_task *task, const char *by)
{
	if (task->state != HD_TASK_QUEUED)
		return KB_ESTATE;
	snprintf(task->error, sizeof(task->error), "cancelled by %s", by && by[0] ? by : "a user");
	finish(t, task, HD_TASK_CANCELLED);
	return 0;
}

void hd_task_on_cancel(struct hd_task *task, hd_task_cancel_cb cb, void *arg)
{
	if (hd_task_finished(task))
		cb = NULL;
	task->cancel_cb = cb;
	task->cancel_arg = cb ? arg : NULL;
}

int hd_task_cancel_running(struct hd_tasks *t, struct hd_task *task, const char *by)
{
	if (hd_task_finished(task))
		return KB_ESTATE;
	snprintf(task->error, sizeof(task->error), "cancelled by %s", by && by[0] ? by : "a user");
	finish(t, task, HD_TASK_CANCELLED);
	return 0;
}

struct hd_task *hd_tasks_find(struct hd_tasks *t, const char *id)
{
	struct kb_list *pos;

	kb_list_for_each(pos, &t->all)
	{
		struct hd_task *task = kb_list_entry(pos, struct hd_task, link);

		if (strcmp(task->id, id) == 0)
			return task;
	}
	return NULL;
}

struct hd_task *hd_tasks_next(struct hd_tasks *t, const struct hd_task *prev)
{
	const struct kb_list *n = prev ? prev->link.next : t->all.next;

	return n == &t->all ? NULL : kb_list_entry(n, struct hd_task, link);
}

size_t hd_tasks_count(const struct hd_tasks *t)
{
	return t->count;
}

static void wait_timeout(uv_timer_t *timer)
{
	struct hd_task_wait *w = timer->data;
	struct hd_task *task = w->task;
	hd_task_wait_cb cb = w->cb;
	void *arg = w->arg;

	wait_drop(w);
	cb(task, true, arg);
}

int hd_task_wait(struct hd_tasks *t, struct hd_task *task, uint64_t timeout_ms, hd_task_wait_cb cb,
		 void *arg, struct hd_task_wait **out)
{
	struct hd_task_wait *w;

	if (hd_task_finished(task))
		return KB_ESTATE;
	w = kb_calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->task = task;
	w->cb = cb;
	w->arg = arg;
	uv_timer_init(t->loop, &w->timer);
	w->timer.data = w;
	if (timeout_ms)
		uv_timer_start(&w->timer, wait_timeout, timeout_ms, 0);
	kb_list_add_tail(&task->waiters, &w->link);
	*out = w;
	return 0;
}

void hd_task_wait_cancel(struct hd_task_wait *w)
{
	wait_drop(w);
}

int hd_tasks_observe(struct hd_tasks *t, hd_task_observer_cb cb, void *arg)
{
	for (size_t i = 0; i < HD_TASKS_OBSERVERS_MAX; i++) {
		if (!t->obs[i].cb) {
			t->obs[i].cb = cb;
			t->obs[i].arg = arg;
			return 0;
		}
	}
	return -ENOSPC;
}

void hd_tasks_unobserve(struct hd_tasks *t, hd_task_observer_cb cb, void *arg)
{
	for (size_t i = 0; i < HD_TASKS_OBSERVERS_MAX; i++)
		if (t->obs[i].cb == cb && t->obs[i].arg == arg)
			t->obs[i].cb = NULL;
}

void hd_task_to_pb(const struct hd_task *task, Keel__Vim__Task *out)
{
	keel__vim__task__init(out);
	out->id = (char *)task->id;
	out->kind = (char *)task->kind;
	out->target = (char *)task->target;
	out->state = (char *)hd_task_state_name(task->state);
	out->progress = task->progress;
	out->result = (char *)task->result;
	out->error = (char *)task->error;
	out->queued_ms = task->queued_ms;
	out->started_ms = task->started_ms;
	out->completed_ms = task->completed_ms;
	out->user = (char *)task->user;
}

/* hostd has one struct hd_vim; its manager lives as long as the process (reachable from
 * here, so a leak check does not count it). */
static struct {
	struct hd_vim *v;
	struct hd_tasks *t;
} hostd_tasks;

struct hd_tasks *hd_vim_tasks(struct hd_vim *v)
{
	if (hostd_tasks.t && hostd_tasks.v == v)
		return hostd_tasks.t;
	if (hostd_tasks.t)
		hd_tasks_destroy(hostd_tasks.t);
	hostd_tasks.t = NULL;
	hostd_tasks.v = v;
	if (hd_tasks_create(v->loop, HD_TASKS_KEEP, &hostd_tasks.t) != 0)
		hostd_tasks.t = NULL;
	return hostd_tasks.t;
}

/* ---- WaitForTask ------------------------------------------------------------------------- */

struct waitcall {
	struct hd_call *call;
	struct hd_task_wait *wait;
};

static void reply_task(struct hd_call *call, const struct hd_task *task)
{
	Keel__Vim__Task m;

	hd_task_to_pb(task, &m);
	hd_call_reply(call, &m.base);
}

static void waitcall_done(struct hd_task *task, bool timed_out, void *arg)
{
	struct waitcall *wc = arg;

	(void)timed_out;
	hd_call_on_cancel(wc->call, NULL, NULL);
	reply_task(wc->call, task);
	kb_free(wc);
}

static void waitcall_cancel(struct hd_call *call, void *arg)
{
	struct waitcall *wc = arg;

	(void)call;
	hd_task_wait_cancel(wc->wait);
	kb_free(wc);
}

/* The task named by id, or NULL after answering NOT_FOUND (or RESOURCE_EXHAUSTED). */
static struct hd_task *task_of(struct hd_call *call, struct hd_tasks **tp, const char *id)
{
	struct hd_tasks *t = hd_vim_tasks(hd_call_server_data(call));
	struct hd_task *task;

	if (!t) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return NULL;
	}
	task = id && id[0] ? hd_tasks_find(t, id) : NULL;
	if (!task) {
		hd_call_error(call, HD_NOT_FOUND, "no task %s (only the last %u finished are kept)",
			      id && id[0] ? id : "(empty)", HD_TASKS_KEEP);
		return NULL;
	}
	*tp = t;
	return task;
}

void hd_vim_wait_for_task(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__WaitForTaskRequest *rq = (const Keel__Vim__WaitForTaskRequest *)req;
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};
	uint64_t timeout = rq->timeout_ms ? rq->timeout_ms : HD_TASK_WAIT_DEFAULT_MS;
	struct hd_tasks *t;
	struct hd_task *task;
	struct waitcall *wc;

	if (!hd_vim_authorize(call, root, 1, "System.View"))
		return;
	task = task_of(call, &t, rq->task);
	if (!task)
		return;
	if (hd_task_finished(task)) {
		reply_task(call, task);
		return;
	}
	if (timeout > HD_TASK_WAIT_MAX_MS)
		timeout = HD_TASK_WAIT_MAX_MS;
	wc = kb_calloc(1, sizeof(*wc));
	if (!wc || hd_task_wait(t, task, timeout, waitcall_done, wc, &wc->wait) != 0) {
		kb_free(wc);
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	wc->call = call;
	hd_call_on_cancel(call, waitcall_cancel, wc);
}

/* ---- ListTasks ---------------------------------------------------------------------------- */

void hd_vim_list_tasks(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__ListTasksRequest *rq = (const Keel__Vim__ListTasksRequest *)req;
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};
	Keel__Vim__TaskList list = KEEL__VIM__TASK_LIST__INIT;
	struct hd_tasks *t;
	Keel__Vim__Task *m, **mp;
	uint64_t since = wall_ms();
	size_t n = 0;

	if (!hd_vim_authorize(call, root, 1, "System.View"))
		return;
	t = hd_vim_tasks(hd_call_server_data(call));
	if (!t) {
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	since = since > HD_TASK_RECENT_MS ? since - HD_TASK_RECENT_MS : 0;
	m = kb_calloc(t->count ? t->count : 1, sizeof(*m));
	mp = kb_calloc(t->count ? t->count : 1, sizeof(*mp));
	if (!m || !mp) {
		kb_free(m);
		kb_free(mp);
		hd_call_error(call, HD_RESOURCE_EXHAUSTED, "out of memory");
		return;
	}
	for (struct hd_task *task = hd_tasks_next(t, NULL); task; task = hd_tasks_next(t, task)) {
		if (rq->recent_only && hd_task_finished(task) && task->completed_ms < since)
			continue;
		hd_task_to_pb(task, &m[n]);
		mp[n] = &m[n];
		n++;
	}
	list.n_tasks = n;
	list.tasks = mp;
	hd_call_reply(call, &list.base);
	kb_free(m);
	kb_free(mp);
}

/* ---- CancelTask --------------------------------------------------------------------------- */

void hd_vim_cancel_task(struct hd_call *call, const ProtobufCMessage *req)
{
	const Keel__Vim__TaskRef *rq = (const Keel__Vim__TaskRef *)req;
	struct hd_vim *v = hd_call_server_data(call);
	const char *root[] = {HOSTD_AUTH_ROOT_ENTITY};
	char host[40], user[HOSTD_AUTH_NAME_MAX + 1];
	const char *path[3], *u;
	struct hd_tasks *t;
	struct hd_task *task;
	size_t n = 0;
	int rv;

	u = hd_vim_authorize(call, root, 1, "System.View");
	if (!u)
		return;
	snprintf(user, sizeof(user), "%s", u);
	task = task_of(call, &t, rq->task);
	if (!task)
		return;
	if (strcmp(task->user, user) != 0 && task->privilege) {
		snprintf(host, sizeof(host), "host-%" PRIu64, v->host_id);
		path[n++] = HOSTD_AUTH_ROOT_ENTITY;
		if (strcmp(task->target, HOSTD_AUTH_ROOT_ENTITY) != 0) {
			path[n++] = host;
			if (strcmp(task->target, host) != 0)
				path[n++] = task->target;
		}
		if (!hd_vim_authorize(call, path, n, task->privilege))
			return;
	}
	if (task->state == HD_TASK_RUNNING && task->cancel_cb) {
		kb_log(v->log, KB_LOG_INFO, "%s (%s %s): cancel asked by %s", task->id, task->kind,
		       task->target, user);
		task->cancel_cb(task, call, user, task->cancel_arg);
		return;
	}
	rv = hd_task_cancel(t, task, user);
	if (rv) {
		hd_call_error(call, HD_FAILED_PRECONDITION, "%s is %s: it cannot be cancelled",
			      task->id, hd_task_state_name(task->state));
		return;
	}
	kb_log(v->log, KB_LOG_INFO, "%s (%s %s) cancelled by %s", task->id, task->kind,
	       task->target, user);
	reply_task(call, task);
}
