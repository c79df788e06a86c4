/*
 * Tasks through hostd's API: following a task to its end, reporting how it ended, and the
 * `keel task list|wait|cancel` commands.
 *
 * A VM or cluster method answers at once with a Task (proto/vim.proto); keel then follows
 * it with libkeel's kl_task_wait (WaitForTask on the same connection, in slices of at most
 * a second on a terminal, so the progress line moves, or a minute otherwise) until the
 * task is success, error or cancelled. --timeout bounds the whole wait (0: none); when it passes the task goes on
 * in hostd and keel says how to follow it (exit 3, like a reply that did not come in
 * time). A task that ended in error or was cancelled is exit 1 with the task's error.
 *
 * The progress line is drawn on stderr only when stdout and stderr are both terminals and
 * --json was not asked for, and erased before the outcome is printed, so scripts and
 * pipes never see it.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
#include <unistd.h>

#include "lib/time.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

enum { O_RECENT = 1 };

static void progress_draw(const Keel__Vim__Task *t, uint64_t elapsed_ms)
{
	char id[64], kind[64], state[32];

	fprintf(stderr, "\r\033[K%s %s: %s, %" PRIu32 "%% (%" PRIu64 "s)",
		kc_clean(t->id, id, sizeof(id)), kc_clean(t->kind, kind, sizeof(kind)),
		kc_clean(t->state, state, sizeof(state)), t->progress, elapsed_ms / 1000);
	fflush(stderr);
}

static void progress_erase(void)
{
	fputs("\r\033[K", stderr);
	fflush(stderr);
}

struct progress {
	uint64_t start; /* kb_now_ns() when the wait began */
	bool drawn;
};

static int progress_cb(const Keel__Vim__Task *t, void *arg)
{
	struct progress *p = arg;

	progress_draw(t, (kb_now_ns() - p->start) / KB_NSEC_PER_MSEC);
	p->drawn = true;
	return 0;
}

int kc_task_follow(struct kc_ctx *ctx, struct kl_client *c, const char *url, Keel__Vim__Task **task)
{
	bool show = !ctx->json && isatty(STDOUT_FILENO) && isatty(STDERR_FILENO);
	struct progress p = {.start = kb_now_ns()};
	Keel__Vim__Task *last = NULL;
	struct kl_status st;
	int rc;

	if (kl_task_ended(*task))
		return KC_EXIT_OK;
	if (show)
		progress_cb(*task, &p);
	rc = kl_task_wait(c, (*task)->id, ctx->timeout_ms, show ? progress_cb : NULL, &p, &last,
			  &st);
	if (p.drawn)
		progress_erase();
	if (last) {
		keel__vim__task__free_unpacked(*task, NULL);
		*task = last;
	}
	if (rc == -KL_DEADLINE_EXCEEDED && st.source == KL_SRC_CLIENT)
		return kc_fail(ctx, KC_EXIT_UNREACHABLE, -ETIMEDOUT,
			       "%s (%s) has not ended after --timeout %" PRIu64
			       " s; it goes on: follow it with keel --server %s task wait %s",
			       (*task)->id, (*task)->kind, ctx->timeout_ms / 1000, url,
			       (*task)->id);
	if (rc)
		return kc_api_fail(ctx, url, true, NULL, &st);
	return KC_EXIT_OK;
}

/* The Task as one JSON object: ok, code, its fields, and exit_code when it failed. */
static void task_json(const Keel__Vim__Task *t, bool ok, int code, int exit)
{
	struct kc_json j;

	kc_json_init(&j, stdout);
	kc_json_obj_begin(&j, NULL);
	kc_json_bool(&j, "ok", ok);
	kc_json_i64(&j, "code", code);
	kc_message_json_fields(&j, &t->base, NULL);
	if (!ok)
		kc_json_i64(&j, "exit_code", exit);
	kc_json_obj_end(&j);
	kc_json_finish(&j);
}

int kc_task_outcome(struct kc_ctx *ctx, const Keel__Vim__Task *t, const char *done)
{
	bool cancelled = strcmp(t->state, "cancelled") == 0;
	char clean[1024];

	if (strcmp(t->state, "success") == 0) {
		if (ctx->json)
			task_json(t, true, 0, KC_EXIT_OK);
		else if (done)
			printf("%s\n", done);
		else
			printf("%s %s: success%s%s\n", t->id, t->kind, t->result[0] ? ", " : "",
			       kc_clean(t->result, clean, sizeof(clean)));
		return KC_EXIT_OK;
	}
	fflush(stdout);
	fprintf(stderr, "keel: %s (%s, %s)\n",
		kc_clean(t->error[0] ? t->error
			 : cancelled ? "cancelled"
				     : "failed",
			 clean, sizeof(clean)),
		t->id, t->kind);
	if (ctx->json)
		task_json(t, false, cancelled ? KL_CANCELLED : KL_UNKNOWN, KC_EXIT_FAILED);
	return KC_EXIT_FAILED;
}

int kc_task_run(struct kc_ctx *ctx, const struct kc_call *call, const char *method,
		const ProtobufCMessage *req, kc_task_done_cb done_cb, void *arg)
{
	char url[KC_URL_MAX], done[1024] = "";
	Keel__Vim__Task *task = NULL;
	struct kl_client *c;
	struct kl_status st;
	ProtobufCMessage *m;
	int rc;

	rc = kc_api_open(ctx, call, &c);
	if (rc)
		return rc;
	kc_api_server(ctx, call, url, sizeof(url));
	if (kl_client_call(c, method, req, &keel__vim__task__descriptor, &m, &st) != 0) {
		rc = kc_api_fail(ctx, url, true, NULL, &st);
		goto close_client;
	}
	task = (Keel__Vim__Task *)m;
	if (kc_has(call, KC_O_NO_WAIT)) {
		if (ctx->json)
			kc_api_json(&task->base, NULL);
		else
			printf("%s\n", task->id);
		rc = KC_EXIT_OK;
		goto free_task;
	}
	rc = kc_task_follow(ctx, c, url, &task);
	if (rc)
		goto free_task;
	if (done_cb && strcmp(task->state, "success") == 0 && !ctx->json)
		done_cb(c, task, arg, done, sizeof(done));
	rc = kc_task_outcome(ctx, task, done[0] ? done : NULL);
free_task:
	keel__vim__task__free_unpacked(task, NULL);
close_client:
	kl_client_destroy(c);
	return rc;
}

/* ---- keel task ... ----------------------------------------------------------------------- */

static void fmt_when(uint64_t ms, char *out, size_t size)
{
	char full[40];

	if (!ms) {
		snprintf(out, size, "-");
		return;
	}
	kb_time_fmt(ms * KB_NSEC_PER_MSEC, full, sizeof(full));
	snprintf(out, size, "%.19s", full); /* to the second */
}

static int list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"ID",	"KIND", "TARGET", "STATE",
					    "PROGRESS", "USER", "QUEUED", "RESULT/ERROR"};
	Keel__Vim__ListTasksRequest rq = KEEL__VIM__LIST_TASKS_REQUEST__INIT;
	Keel__Vim__TaskList *tl;
	ProtobufCMessage *m;
	struct kc_table t;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rq.recent_only = kc_has(call, O_RECENT);
	rc = kc_api_call(ctx, call, "ListTasks", &rq.base, &keel__vim__task_list__descriptor, &m);
	if (rc)
		return rc;
	tl = (Keel__Vim__TaskList *)m;
	if (ctx->json) {
		kc_api_json(m, NULL);
		protobuf_c_message_free_unpacked(m, NULL);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 8, heads, "llllrlll");
	for (size_t i = 0; i < tl->n_tasks; i++) {
		const Keel__Vim__Task *k = tl->tasks[i];
		char pct[16], when[40];
		const char *row[8];

		snprintf(pct, sizeof(pct), "%" PRIu32 "%%", k->progress);
		fmt_when(k->queued_ms, when, sizeof(when));
		row[0] = k->id;
		row[1] = k->kind;
		row[2] = k->target[0] ? k->target : "-";
		row[3] = k->state;
		row[4] = pct;
		row[5] = k->user[0] ? k->user : "-";
		row[6] = when;
		row[7] = k->error[0] ? k->error : k->result[0] ? k->result : "-";
		kc_table_add(&t, row);
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

static int wait_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__WaitForTaskRequest rq = KEEL__VIM__WAIT_FOR_TASK_REQUEST__INIT;
	Keel__Vim__Task *task;
	char url[KC_URL_MAX];
	struct kl_client *c;
	struct kl_status st;
	ProtobufCMessage *m;
	int rc;

	if (!kc_api_server(ctx, call, url, sizeof(url)))
		return KC_EXIT_USAGE;
	rc = kc_api_open(ctx, call, &c);
	if (rc)
		return rc;
	/* A first look that does not wait: an unknown id is NOT_FOUND at once. */
	rq.task = (char *)call->pos[0];
	rq.timeout_ms = 1;
	if (kl_client_call(c, "WaitForTask", &rq.base, &keel__vim__task__descriptor, &m, &st)) {
		rc = kc_api_fail(ctx, url, true, NULL, &st);
		kl_client_destroy(c);
		return rc;
	}
	task = (Keel__Vim__Task *)m;
	rc = kc_task_follow(ctx, c, url, &task);
	if (rc == KC_EXIT_OK)
		rc = kc_task_outcome(ctx, task, NULL);
	keel__vim__task__free_unpacked(task, NULL);
	kl_client_destroy(c);
	return rc;
}

static int cancel_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Vim__TaskRef rq = KEEL__VIM__TASK_REF__INIT;
	Keel__Vim__Task *t;
	ProtobufCMessage *m;
	char id[64];
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	rq.task = (char *)call->pos[0];
	rc = kc_api_call(ctx, call, "CancelTask", &rq.base, &keel__vim__task__descriptor, &m);
	if (rc)
		return rc;
	t = (Keel__Vim__Task *)m;
	if (ctx->json)
		kc_api_json(m, NULL);
	else
		printf("Cancelled %s (%s).\n", kc_clean(t->id, id, sizeof(id)), t->kind);
	protobuf_c_message_free_unpacked(m, NULL);
	return KC_EXIT_OK;
}

static const struct kc_opt list_opts[] = {
    {"recent", NULL, "only unfinished tasks and those ended in the last 10 minutes", O_RECENT,
     false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd list_cmd = {
    .name = "list",
    .summary = "List the tasks hostd keeps, oldest first (needs --server).",
    .detail = "hostd keeps every unfinished task and the last 1000 finished ones, in memory\n"
	      "(a restart of hostd forgets them).\n",
    .opts = list_opts,
    .run = list_run,
    .api = true,
};

static const struct kc_cmd wait_cmd = {
    .name = "wait",
    .args = "TASK",
    .summary = "Wait for a task to end and print how it ended (needs --server).",
    .detail = "Exit 0 when it succeeded, 1 when it ended in error or was cancelled (its error\n"
	      "on stderr), 3 when --timeout passed first (the task goes on).\n",
    .min_pos = 1,
    .max_pos = 1,
    .run = wait_run,
    .api = true,
};

static const struct kc_cmd cancel_cmd = {
    .name = "cancel",
    .args = "TASK",
    .summary = "Cancel a queued task, or a running migration (needs --server).",
    .detail = "A running MigrateVm can be cancelled until its switchover: the migration is\n"
	      "aborted and the VM keeps running on the source. hostd refuses any other running\n"
	      "task, and one that has ended (exit 1).\n",
    .min_pos = 1,
    .max_pos = 1,
    .run = cancel_run,
    .api = true,
};

static const struct kc_cmd *const task_subs[] = {&list_cmd, &wait_cmd, &cancel_cmd, NULL};

const struct kc_cmd kc_task_cmd = {
    .name = "task",
    .summary = "hostd's tasks: the long operations started through the API (needs --server).",
    .detail = "A task is task-N: its kind (PowerOnVm, CreateVm, ...), target, state (queued,\n"
	      "running, success, error, cancelled), progress, result or error.\n",
    .subs = task_subs,
};
