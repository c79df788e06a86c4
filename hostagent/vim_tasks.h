/*
 * Tasks: hostd's record of long operations (docs/hostd.md, "Tasks and VM operations").
 *
 * A method that starts a long operation answers at once with a Task; the operation then
 * moves it queued -> running -> success | error, or queued -> cancelled (CancelTask). A
 * kind of task that can take its operation back while it runs registers a cancel hook
 * (hd_task_on_cancel): CancelTask of such a running task is then the hook's to answer,
 * and running -> cancelled when it succeeds (MigrateVm until the switchover).
 * Clients follow it with WaitForTask (answered when the task ends, or at its timeout with
 * the state of the moment), ListTasks, or later the change feed, which will register an
 * observer here: every change of every task is reported to each observer.
 *
 * Retention: every unfinished task, plus the last `keep` finished ones (1000 in hostd);
 * the oldest finished task goes when one more finishes. Ids are "task-<n>", n counting
 * from 1 for the life of the process.
 *
 * Ownership: the manager owns its tasks. hd_tasks_add hands out one reference, which the
 * caller drops with hd_task_release; a task stays readable while someone holds a reference
 * even after the manager dropped it from its list. Pointers from hd_tasks_find and
 * hd_tasks_next are borrowed until the loop next runs a callback.
 *
 * Threads: everything here runs on the loop given to hd_tasks_create; a worker thread
 * reports its outcome to the loop first (uv_queue_work's after-callback).
 */
#ifndef HD_VIM_TASKS_H
#define HD_VIM_TASKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "hostagent/auth.h"
#include "hostagent/grpc.h"
#include "lib/err.h"
#include "lib/list.h"
#include "vim.pb-c.h"

#define HD_TASKS_KEEP		1000 /* finished tasks kept by hostd */
#define HD_TASKS_OBSERVERS_MAX	8
#define HD_TASK_WAIT_DEFAULT_MS 30000  /* WaitForTask without timeout_ms */
#define HD_TASK_WAIT_MAX_MS	600000 /* WaitForTask's longest wait */
#define HD_TASK_RECENT_MS	600000 /* ListTasks recent_only: finished in the last 10 min */

enum hd_task_state {
	HD_TASK_QUEUED,
	HD_TASK_RUNNING,
	HD_TASK_SUCCESS,
	HD_TASK_ERROR,
	HD_TASK_CANCELLED,
};

struct hd_task;

/* CancelTask of a running task that has a cancel hook. The hook owns call from here on: it
 * completes it (hd_call_reply with the task once hd_task_cancel_running ended it, or
 * hd_call_error, e.g. FAILED_PRECONDITION when the operation is past taking back), at once
 * or later; a later answer watches the client going away with hd_call_on_cancel. by (the
 * caller's user name) is borrowed for the call. Loop thread. */
typedef void (*hd_task_cancel_cb)(struct hd_task *task, struct hd_call *call, const char *by,
				  void *arg);

/* A task. Read its fields freely on the loop; change them only through the functions
 * below (they keep the lists and tell waiters and observers). */
struct hd_task {
	struct kb_list link;	  /* the manager's tasks, oldest first */
	struct kb_list done_link; /* finished tasks, in completion order */
	struct kb_list waiters;	  /* struct hd_task_wait */
	unsigned refs;		  /* the manager's (while listed) + holders' */
	bool listed;
	uint64_t n;
	char id[32];				/* "task-<n>" */
	char kind[32];				/* "PowerOnVm", ... */
	char target[HOSTD_AUTH_ENTITY_MAX + 1]; /* object id, e.g. "vm-<uuid>" */
	char user[HOSTD_AUTH_NAME_MAX + 1];
	const char *privilege; /* static; what cancelling it requires on target (may be NULL) */
	enum hd_task_state state;
	uint32_t progress; /* percent */
	char result[256];
	char error[KB_ERRMSG_SIZE];
	uint64_t queued_ms, started_ms, completed_ms; /* wall clock; 0 = not yet */
	hd_task_cancel_cb cancel_cb; /* running: who takes the operation back (may be NULL) */
	void *cancel_arg;
};

struct hd_tasks;
struct hd_task_wait;

/* A task changed (added, started, progressed, ended). task is borrowed for the call. */
typedef void (*hd_task_observer_cb)(const struct hd_task *task, void *arg);
/* A wait ended: the task ended (timed_out false) or the timeout passed (true). The wait
 * is gone when this returns. */
typedef void (*hd_task_wait_cb)(struct hd_task *task, bool timed_out, void *arg);

/* Makes a manager keeping `keep` finished tasks. 0 or -ENOMEM. Loop thread. */
int hd_tasks_create(uv_loop_t *loop, size_t keep, struct hd_tasks **out);
/* Frees the manager and the tasks nobody holds. Waits still pending are dropped without
 * their callbacks (their timers close on the loop's next run); tasks still held are freed
 * by their last hd_task_release. */
void hd_tasks_destroy(struct hd_tasks *t);

/* Adds a queued task (kind and target are cut to their fields' sizes, user may be NULL).
 * 0 with *out holding one reference for the caller (drop it with hd_task_release), or
 * -ENOMEM. */
int hd_tasks_add(struct hd_tasks *t, const char *kind, const char *target, const char *user,
		 struct hd_task **out);
void hd_task_hold(struct hd_task *task);
void hd_task_release(struct hd_task *task);

/* Queued -> running. 0, or KB_ESTATE when it was not queued (e.g. cancelled). */
int hd_task_start(struct hd_tasks *t, struct hd_task *task);
/* Sets the progress of a running task (capped at 100). */
void hd_task_progress(struct hd_tasks *t, struct hd_task *task, uint32_t percent);
/* Ends the task in success with result (may be NULL), or in error with the text. Either
 * from queued or running; KB_ESTATE when it had ended already. Wakes its waiters. */
int hd_task_succeed(struct hd_tasks *t, struct hd_task *task, const char *result);
int hd_task_fail(struct hd_tasks *t, struct hd_task *task, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Queued -> cancelled (error "cancelled by <by>"). KB_ESTATE when it is not queued: a
 * running operation cannot be taken back. Whoever runs the operation sees the state and
 * drops it. */
int hd_task_cancel(struct hd_tasks *t, struct hd_task *task, const char *by);
/* Registers (cb non-NULL) or drops the cancel hook of a task, for CancelTask while it runs
 * (see hd_task_cancel_cb). arg is borrowed until the task ends or the hook is dropped; the
 * hook is dropped when the task ends. */
void hd_task_on_cancel(struct hd_task *task, hd_task_cancel_cb cb, void *arg);
/* Queued or running -> cancelled (error "cancelled by <by>"): for the operation that took
 * itself back. KB_ESTATE when the task had ended. Wakes its waiters. */
int hd_task_cancel_running(struct hd_tasks *t, struct hd_task *task, const char *by);
bool hd_task_finished(const struct hd_task *task);
const char *hd_task_state_name(enum hd_task_state s);

/* The listed task with that id, or NULL. Borrowed. */
struct hd_task *hd_tasks_find(struct hd_tasks *t, const char *id);
/* Iteration, oldest first: hd_tasks_next(t, NULL) is the first; NULL after the last. */
struct hd_task *hd_tasks_next(struct hd_tasks *t, const struct hd_task *prev);
size_t hd_tasks_count(const struct hd_tasks *t);

/* Waits for an unfinished task to end, at most timeout_ms (0: no timeout). cb runs once,
 * on the loop, never from inside this call. 0 with *out set (for hd_task_wait_cancel), or
 * KB_ESTATE when the task has ended already, or -ENOMEM. */
int hd_task_wait(struct hd_tasks *t, struct hd_task *task, uint64_t timeout_ms, hd_task_wait_cb cb,
		 void *arg, struct hd_task_wait **out);
/* Drops a wait whose callback has not run; it will not run. */
void hd_task_wait_cancel(struct hd_task_wait *w);

/* Registers an observer of every task change. 0, or -ENOSPC past
 * HD_TASKS_OBSERVERS_MAX. Unregister with the same cb and arg. */
int hd_tasks_observe(struct hd_tasks *t, hd_task_observer_cb cb, void *arg);
void hd_tasks_unobserve(struct hd_tasks *t, hd_task_observer_cb cb, void *arg);

/* Fills a Keel__Vim__Task; its strings point into task (borrowed like it). */
void hd_task_to_pb(const struct hd_task *task, Keel__Vim__Task *out);

/* hostd's manager (one per struct hd_vim, made on first use); NULL when out of memory. */
struct hd_vim;
struct hd_tasks *hd_vim_tasks(struct hd_vim *v);

/* Handlers: WaitForTask and ListTasks need System.View on the root; CancelTask needs the
 * privilege that started the task, on its target, unless the caller started it; a running
 * task with a cancel hook is handed to the hook. */
void hd_vim_wait_for_task(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_list_tasks(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_cancel_task(struct hd_call *call, const ProtobufCMessage *req);

#endif
