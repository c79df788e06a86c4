/*
 * libkeel's helpers built on calls (keel_calls.h): following a Task to its end with
 * WaitForTask, and the change feed (WaitForUpdates) through kl_client_stream.
 *
 * kl_task_wait asks WaitForTask in slices (hostd answers when the task ends or the slice
 * passes, whichever comes first) so that a progress callback runs between them and the
 * whole wait can be bounded; each slice leaves the call MARGIN_MS of the client's own
 * per-call timeout to travel back. Failure modes: a call that fails (its status), the
 * bound passing (DEADLINE_EXCEEDED) or the callback stopping (CANCELLED), both from the
 * client side; in every case the last state received is handed out.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lib/time.h"
#include "mgmt-api/libkeel/keel_calls.h"
#include "mgmt-api/libkeel/keel_int.h"

#define SLICE_PROGRESS_MS 1000	/* WaitForTask's timeout when progress is shown */
#define SLICE_MS	  60000 /* ... otherwise (hostd allows up to 10 min) */
#define MARGIN_MS	  200	/* left for the answer to travel back */

static int fail(struct kl_status *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(struct kl_status *st, int code, const char *fmt, ...)
{
	va_list ap;

	st->code = code;
	st->source = KL_SRC_CLIENT;
	va_start(ap, fmt);
	vsnprintf(st->message, sizeof(st->message), fmt, ap);
	va_end(ap);
	return -code;
}

bool kl_task_ended(const Keel__Vim__Task *t)
{
	return t && t->state &&
	       (strcmp(t->state, "success") == 0 || strcmp(t->state, "error") == 0 ||
		strcmp(t->state, "cancelled") == 0);
}

int kl_task_wait(struct kl_client *c, const char *task_id, uint64_t timeout_ms,
		 kl_task_progress_cb progress_cb, void *arg, Keel__Vim__Task **final_task,
		 struct kl_status *st)
{
	Keel__Vim__WaitForTaskRequest rq = KEEL__VIM__WAIT_FOR_TASK_REQUEST__INIT;
	uint64_t start = kb_now_ns(), call_limit = kl__client_timeout_ms(c);
	Keel__Vim__Task *last = NULL;
	int rc;

	*final_task = NULL;
	if (!task_id || !task_id[0])
		return fail(st, KL_INVALID_ARGUMENT, "no task id given");
	rq.task = (char *)task_id;
	for (;;) {
		uint64_t elapsed = (kb_now_ns() - start) / KB_NSEC_PER_MSEC;
		uint64_t slice = progress_cb ? SLICE_PROGRESS_MS : SLICE_MS;
		Keel__Vim__Task *t;

		if (timeout_ms) {
			if (elapsed + MARGIN_MS >= timeout_ms) {
				rc = fail(st, KL_DEADLINE_EXCEEDED,
					  "%s has not ended after %llu ms; it goes on", task_id,
					  (unsigned long long)timeout_ms);
				break;
			}
			if (slice > timeout_ms - elapsed - MARGIN_MS)
				slice = timeout_ms - elapsed - MARGIN_MS;
		}
		if (call_limit && slice + MARGIN_MS > call_limit)
			slice =
			    call_limit > 2 * MARGIN_MS ? call_limit - MARGIN_MS : call_limit / 2;
		if (slice == 0)
			slice = 1;
		rq.timeout_ms = (uint32_t)slice;
		rc = kl_vim_wait_for_task(c, &rq, &t, st);
		if (rc)
			break;
		if (last)
			keel__vim__task__free_unpacked(last, NULL);
		last = t;
		if (kl_task_ended(t)) {
			rc = 0;
			break;
		}
		if (progress_cb && progress_cb(t, arg)) {
			rc = fail(st, KL_CANCELLED, "stopped waiting for %s; it goes on", task_id);
			break;
		}
	}
	*final_task = last;
	return rc;
}

struct watch {
	kl_watch_cb cb;
	void *arg;
};

static int watch_msg(const ProtobufCMessage *m, void *arg)
{
	struct watch *w = arg;

	return w->cb((const Keel__Vim__Update *)m, w->arg);
}

int kl_watch(struct kl_client *c, uint64_t since_version, kl_watch_cb cb, void *arg,
	     struct kl_status *st)
{
	Keel__Vim__WaitForUpdatesRequest rq = KEEL__VIM__WAIT_FOR_UPDATES_REQUEST__INIT;
	struct watch w = {.cb = cb, .arg = arg};

	if (!cb)
		return fail(st, KL_INVALID_ARGUMENT, "kl_watch needs a callback");
	rq.since_version = since_version;
	return kl_client_stream(c, "WaitForUpdates", &rq.base, &keel__vim__update__descriptor,
				watch_msg, &w, st);
}
