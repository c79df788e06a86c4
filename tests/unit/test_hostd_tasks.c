/*
 * Tests for hostagent/vim_tasks.h, the task manager: the states and their transitions
 * (start, progress, success, error, no second end), the cancel rules (only a queued task),
 * the cancel hook of a running task (kept only while the task has not ended, dropped by
 * every end, never called by the manager itself; a running task ends cancelled through
 * hd_task_cancel_running, waiters woken; KB_ESTATE once ended),
 * retention (the last N finished, every unfinished one, a held task readable after it was
 * pushed out), observers (every change, the limit, unobserve), waits on a real libuv loop
 * (woken by the end, by the timeout, cancelled, on a finished task, dropped by destroy
 * with the loop closing cleanly), the protobuf view, and out-of-memory.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "hostagent/vim_tasks.h"
#include "lib/err.h"
#include "lib/heap.h"

static uv_loop_t loop;

static int setup(void **state)
{
	(void)state;
	return uv_loop_init(&loop);
}

static int teardown(void **state)
{
	(void)state;
	uv_run(&loop, UV_RUN_DEFAULT);
	return uv_loop_close(&loop);
}

static struct hd_task *add(struct hd_tasks *t, const char *kind)
{
	struct hd_task *task = NULL;

	assert_int_equal(hd_tasks_add(t, kind, "vm-1", "alice", &task), 0);
	return task;
}

static void test_states(void **state)
{
	struct hd_tasks *t;
	struct hd_task *a, *b;

	(void)state;
	assert_int_equal(hd_tasks_create(&loop, 10, &t), 0);
	a = add(t, "PowerOnVm");
	assert_string_equal(a->id, "task-1");
	assert_string_equal(a->kind, "PowerOnVm");
	assert_string_equal(a->target, "vm-1");
	assert_string_equal(a->user, "alice");
	assert_int_equal(a->state, HD_TASK_QUEUED);
	assert_true(a->queued_ms > 0);
	assert_int_equal(a->started_ms, 0);
	assert_int_equal(hd_task_start(t, a), 0);
	assert_int_equal(a->state, HD_TASK_RUNNING);
	assert_true(a->started_ms >= a->queued_ms);
	assert_int_equal(hd_task_start(t, a), KB_ESTATE);
	hd_task_progress(t, a, 140);
	assert_int_equal(a->progress, 100);
	hd_task_progress(t, a, 40);
	assert_int_equal(a->progress, 40);
	assert_int_equal(hd_task_succeed(t, a, "poweredOn"), 0);
	assert_int_equal(a->state, HD_TASK_SUCCESS);
	assert_int_equal(a->progress, 100);
	assert_string_equal(a->result, "poweredOn");
	assert_true(a->completed_ms >= a->started_ms);
	assert_true(hd_task_finished(a));
	assert_int_equal(hd_task_succeed(t, a, "again"), KB_ESTATE);
	assert_int_equal(hd_task_fail(t, a, "late"), KB_ESTATE);
	assert_int_equal(hd_task_start(t, a), KB_ESTATE);
	assert_string_equal(a->result, "poweredOn");

	b = add(t, "CreateVm");
	assert_string_equal(b->id, "task-2");
	assert_int_equal(hd_task_fail(t, b, "no VM named %s", "x"), 0); /* from queued */
	assert_int_equal(b->state, HD_TASK_ERROR);
	assert_string_equal(b->error, "no VM named x");
	hd_task_progress(t, b, 50); /* ignored once ended */
	assert_int_equal(b->progress, 0);

	assert_ptr_equal(hd_tasks_find(t, "task-1"), a);
	assert_ptr_equal(hd_tasks_find(t, "task-2"), b);
	assert_null(hd_tasks_find(t, "task-3"));
	assert_int_equal(hd_tasks_count(t), 2);
	assert_ptr_equal(hd_tasks_next(t, NULL), a);
	assert_ptr_equal(hd_tasks_next(t, a), b);
	assert_null(hd_tasks_next(t, b));
	assert_string_equal(hd_task_state_name(HD_TASK_CANCELLED), "cancelled");
	hd_task_release(a);
	hd_task_release(b);
	hd_tasks_destroy(t);
}

static void test_cancel_rules(void **state)
{
	struct hd_tasks *t;
	struct hd_task *q, *r, *d;

	(void)state;
	assert_int_equal(hd_tasks_create(&loop, 10, &t), 0);
	q = add(t, "PowerOnVm");
	r = add(t, "PowerOffVm");
	d = add(t, "ResetVm");
	assert_int_equal(hd_task_start(t, r), 0);
	assert_int_equal(hd_task_succeed(t, d, NULL), 0);

	assert_int_equal(hd_task_cancel(t, r, "bob"), KB_ESTATE); /* running */
	assert_int_equal(r->state, HD_TASK_RUNNING);
	assert_int_equal(hd_task_cancel(t, d, "bob"), KB_ESTATE); /* ended */
	assert_int_equal(d->state, HD_TASK_SUCCESS);
	assert_int_equal(hd_task_cancel(t, q, "bob"), 0);
	assert_int_equal(q->state, HD_TASK_CANCELLED);
	assert_string_equal(q->error, "cancelled by bob");
	assert_true(q->completed_ms > 0);
	/* the operation behind it sees the state and cannot start it */
	assert_int_equal(hd_task_start(t, q), KB_ESTATE);
	assert_int_equal(hd_task_cancel(t, q, "bob"), KB_ESTATE);
	hd_task_release(q);
	hd_task_release(r);
	hd_task_release(d);
	hd_tasks_destroy(t);
}

static void test_retention(void **state)
{
	struct hd_tasks *t;
	struct hd_task *run[4], *held = NULL, *task;
	char id[32];

	(void)state;
	assert_int_equal(hd_tasks_create(&loop, 3, &t), 0);
	for (int i = 0; i < 4; i++) { /* task-1..4 stay running all along */
		run[i] = add(t, "PowerOnVm");
		hd_task_start(t, run[i]);
	}
	for (int i = 0; i < 10; i++) { /* task-5..14 end */
		task = add(t, "ResetVm");
		if (i == 0) {
			held = task;
			hd_task_hold(held);
		}
		hd_task_succeed(t, task, NULL);
		hd_task_release(task);
	}
	assert_int_equal(hd_tasks_count(t), 4 + 3);
	for (int n = 1; n <= 14; n++) {
		snprintf(id, sizeof(id), "task-%d", n);
		if (n <= 4 || n >= 12)
			assert_non_null(hd_tasks_find(t, id));
		else
			assert_null(hd_tasks_find(t, id));
	}
	/* pushed out, still readable by who holds it */
	assert_false(held->listed);
	assert_string_equal(held->id, "task-5");
	assert_int_equal(held->state, HD_TASK_SUCCESS);
	hd_task_release(held);
	/* an unfinished task that ends joins the finished ones; the oldest finished goes */
	hd_task_fail(t, run[1], "boom");
	assert_null(hd_tasks_find(t, "task-12"));
	assert_non_null(hd_tasks_find(t, "task-2"));
	assert_int_equal(hd_tasks_count(t), 4 + 3 - 1);
	/* keep 0: a task is gone as soon as it ends */
	for (int i = 0; i < 4; i++)
		hd_task_release(run[i]);
	hd_tasks_destroy(t);

	assert_int_equal(hd_tasks_create(&loop, 0, &t), 0);
	task = add(t, "ResetVm");
	hd_task_succeed(t, task, "done");
	assert_int_equal(hd_tasks_count(t), 0);
	assert_string_equal(task->result, "done");
	hd_task_release(task);
	hd_tasks_destroy(t);
}

static int changes;
static enum hd_task_state last_state;

static void observer(const struct hd_task *task, void *arg)
{
	changes += (int)(intptr_t)arg;
	last_state = task->state;
}

static void test_observers(void **state)
{
	struct hd_tasks *t;
	struct hd_task *a;

	(void)state;
	assert_int_equal(hd_tasks_create(&loop, 10, &t), 0);
	for (int i = 0; i < HD_TASKS_OBSERVERS_MAX; i++)
		assert_int_equal(hd_tasks_observe(t, observer, (void *)(intptr_t)(i ? 0 : 1)), 0);
	assert_int_equal(hd_tasks_observe(t, observer, (void *)(intptr_t)5), -ENOSPC);
	changes = 0;
	a = add(t, "PowerOnVm"); /* 1: added */
	assert_int_equal(changes, 1);
	assert_int_equal(last_state, HD_TASK_QUEUED);
	hd_task_start(t, a);	     /* 2 */
	hd_task_progress(t, a, 50);  /* 3 */
	hd_task_succeed(t, a, NULL); /* 4 */
	assert_int_equal(changes, 4);
	assert_int_equal(last_state, HD_TASK_SUCCESS);
	hd_task_succeed(t, a, NULL); /* refused: no change */
	assert_int_equal(changes, 4);
	hd_tasks_unobserve(t, observer, (void *)(intptr_t)1);
	hd_task_release(a);
	a = add(t, "PowerOnVm");
	assert_int_equal(changes, 4);
	assert_int_equal(hd_tasks_observe(t, observer, (void *)(intptr_t)5), 0);
	hd_task_cancel(t, a, "x");
	assert_int_equal(changes, 9);
	assert_int_equal(last_state, HD_TASK_CANCELLED);
	hd_task_release(a);
	hd_tasks_destroy(t);
}

struct woke {
	int calls;
	bool timed_out;
	enum hd_task_state state;
};

static void on_wake(struct hd_task *task, bool timed_out, void *arg)
{
	struct woke *w = arg;

	w->calls++;
	w->timed_out = timed_out;
	w->state = task->state;
}

static void test_wait(void **state)
{
	struct hd_tasks *t;
	struct hd_task *a, *b, *c;
	struct hd_task_wait *w1, *w2, *w3, *w4;
	struct woke k1 = {0}, k2 = {0}, k3 = {0}, k4 = {0};

	(void)state;
	assert_int_equal(hd_tasks_create(&loop, 10, &t), 0);
	a = add(t, "PowerOnVm");
	b = add(t, "PowerOffVm");
	c = add(t, "ResetVm");
	/* two waits on a, woken by its end; one of them had a long timeout */
	assert_int_equal(hd_task_wait(t, a, 0, on_wake, &k1, &w1), 0);
	assert_int_equal(hd_task_wait(t, a, 60000, on_wake, &k2, &w2), 0);
	/* a wait on b that times out; one on c that is cancelled */
	assert_int_equal(hd_task_wait(t, b, 20, on_wake, &k3, &w3), 0);
	assert_int_equal(hd_task_wait(t, c, 20, on_wake, &k4, &w4), 0);
	hd_task_wait_cancel(w4);
	uv_run(&loop, UV_RUN_NOWAIT);
	assert_int_equal(k1.calls + k2.calls, 0);
	hd_task_start(t, a);
	assert_int_equal(k1.calls, 0); /* a start is not an end */
	hd_task_succeed(t, a, "ok");
	assert_int_equal(k1.calls, 1);
	assert_false(k1.timed_out);
	assert_int_equal(k1.state, HD_TASK_SUCCESS);
	assert_int_equal(k2.calls, 1);
	assert_false(k2.timed_out);
	/* the loop runs until b's timer fired: no handle is left behind */
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(k3.calls, 1);
	assert_true(k3.timed_out);
	assert_int_equal(k3.state, HD_TASK_QUEUED);
	assert_int_equal(k4.calls, 0);
	hd_task_succeed(t, b, NULL); /* nobody waits any more */
	assert_int_equal(k3.calls, 1);
	/* a cancel wakes too; a finished task is not waited on */
	assert_int_equal(hd_task_wait(t, c, 0, on_wake, &k4, &w4), 0);
	hd_task_cancel(t, c, "me");
	assert_int_equal(k4.calls, 1);
	assert_int_equal(k4.state, HD_TASK_CANCELLED);
	assert_int_equal(hd_task_wait(t, c, 0, on_wake, &k4, &w4), KB_ESTATE);
	/* destroy drops pending waits without calling them */
	hd_task_release(a);
	hd_task_release(b);
	hd_task_release(c);
	a = add(t, "PowerOnVm");
	assert_int_equal(hd_task_wait(t, a, 50, on_wake, &k1, &w1), 0);
	hd_task_release(a);
	hd_tasks_destroy(t);
	assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
	assert_int_equal(k1.calls, 1);
}

static int hook_calls;

static void hook(struct hd_task *task, struct hd_call *call, const char *by, void *arg)
{
	(void)task;
	(void)call;
	(void)by;
	(void)arg;
	hook_calls++;
}

static void test_cancel_hook(void **state)
{
	struct hd_tasks *t;
	struct hd_task *m, *s, *f, *q;
	struct hd_task_wait *w;
	struct woke k = {0};
	int arg;

	(void)state;
	hook_calls = 0;
	assert_int_equal(hd_tasks_create(&loop, 10, &t), 0);
	m = add(t, "MigrateVm");
	s = add(t, "MigrateVm");
	f = add(t, "MigrateVm");
	q = add(t, "MigrateVm");
	assert_int_equal(hd_task_start(t, m), 0);
	assert_int_equal(hd_task_start(t, s), 0);
	assert_int_equal(hd_task_start(t, f), 0);

	/* registered on a running task: kept with its argument; NULL drops it */
	hd_task_on_cancel(m, hook, &arg);
	assert_ptr_equal(m->cancel_cb, hook);
	assert_ptr_equal(m->cancel_arg, &arg);
	hd_task_on_cancel(m, NULL, &arg);
	assert_null(m->cancel_cb);
	assert_null(m->cancel_arg);
	hd_task_on_cancel(m, hook, &arg);

	/* the queued-only cancel still refuses a running task, hook or not: CancelTask hands
	 * such a task to its hook instead */
	assert_int_equal(hd_task_cancel(t, m, "bob"), KB_ESTATE);
	assert_int_equal(m->state, HD_TASK_RUNNING);
	assert_ptr_equal(m->cancel_cb, hook);

	/* the hook's own end of the task: running -> cancelled, waiters woken, hook dropped */
	assert_int_equal(hd_task_wait(t, m, 0, on_wake, &k, &w), 0);
	assert_int_equal(hd_task_cancel_running(t, m, "bob"), 0);
	assert_int_equal(m->state, HD_TASK_CANCELLED);
	assert_string_equal(m->error, "cancelled by bob");
	assert_true(m->completed_ms > 0);
	assert_null(m->cancel_cb);
	assert_null(m->cancel_arg);
	assert_int_equal(k.calls, 1);
	assert_false(k.timed_out);
	assert_int_equal(k.state, HD_TASK_CANCELLED);
	/* ended: no second end of any kind, and a hook registered now is not kept */
	assert_int_equal(hd_task_cancel_running(t, m, "carol"), KB_ESTATE);
	assert_string_equal(m->error, "cancelled by bob");
	assert_int_equal(hd_task_succeed(t, m, "late"), KB_ESTATE);
	assert_int_equal(hd_task_cancel(t, m, "carol"), KB_ESTATE);
	assert_int_equal(m->state, HD_TASK_CANCELLED);
	hd_task_on_cancel(m, hook, &arg);
	assert_null(m->cancel_cb);
	assert_null(m->cancel_arg);

	/* success and error drop the hook too: a later CancelTask finds none to call */
	hd_task_on_cancel(s, hook, &arg);
	hd_task_on_cancel(f, hook, &arg);
	assert_int_equal(hd_task_succeed(t, s, "moved"), 0);
	assert_null(s->cancel_cb);
	assert_int_equal(hd_task_fail(t, f, "the destination refused"), 0);
	assert_null(f->cancel_cb);
	assert_int_equal(hd_task_cancel_running(t, s, "bob"), KB_ESTATE);
	assert_int_equal(s->state, HD_TASK_SUCCESS);
	assert_int_equal(hd_task_cancel_running(t, f, "bob"), KB_ESTATE);
	assert_int_equal(f->state, HD_TASK_ERROR);

	/* a queued task with a hook: the plain cancel ends it and drops the hook */
	hd_task_on_cancel(q, hook, &arg);
	assert_int_equal(hd_task_cancel(t, q, NULL), 0);
	assert_int_equal(q->state, HD_TASK_CANCELLED);
	assert_string_equal(q->error, "cancelled by a user");
	assert_null(q->cancel_cb);

	/* the manager never calls the hook itself */
	assert_int_equal(hook_calls, 0);
	hd_task_release(m);
	hd_task_release(s);
	hd_task_release(f);
	hd_task_release(q);
	hd_tasks_destroy(t);
}

static void test_pb(void **state)
{
	struct hd_tasks *t;
	struct hd_task *a;
	Keel__Vim__Task m;

	(void)state;
	assert_int_equal(hd_tasks_create(&loop, 10, &t), 0);
	a = add(t, "DestroyVm");
	hd_task_start(t, a);
	hd_task_fail(t, a, "VM vm-1 is powered on");
	hd_task_to_pb(a, &m);
	assert_string_equal(m.id, "task-1");
	assert_string_equal(m.kind, "DestroyVm");
	assert_string_equal(m.target, "vm-1");
	assert_string_equal(m.state, "error");
	assert_string_equal(m.error, "VM vm-1 is powered on");
	assert_string_equal(m.user, "alice");
	assert_int_equal(m.completed_ms, a->completed_ms);
	hd_task_release(a);
	hd_tasks_destroy(t);
}

static void test_oom(void **state)
{
	struct hd_tasks *t;
	struct hd_task *a = NULL, *b;
	struct hd_task_wait *w;
	struct woke k = {0};

	(void)state;
	kb_heap_fail_after(0, 1);
	assert_int_equal(hd_tasks_create(&loop, 10, &t), -ENOMEM);
	kb_heap_fail_reset();
	assert_int_equal(hd_tasks_create(&loop, 10, &t), 0);
	kb_heap_fail_after(0, 1);
	assert_int_equal(hd_tasks_add(t, "PowerOnVm", "vm-1", "u", &a), -ENOMEM);
	kb_heap_fail_reset();
	assert_int_equal(hd_tasks_count(t), 0);
	b = add(t, "PowerOnVm");
	assert_string_equal(b->id, "task-1"); /* a failed add uses no id */
	kb_heap_fail_after(0, 1);
	assert_int_equal(hd_task_wait(t, b, 0, on_wake, &k, &w), -ENOMEM);
	kb_heap_fail_reset();
	hd_task_release(b);
	hd_tasks_destroy(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_states, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_rules, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_cancel_hook, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retention, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_observers, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_wait, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_pb, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
