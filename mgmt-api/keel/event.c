/*
 * `keel event list` through hostd's API (--server): the cluster's events (ClusterEvents,
 * which hostd answers from its clusterd), oldest first, as a table or, with --json, the
 * EventList under its proto names. Outside a cluster, or with clusterd not answering,
 * hostd's status is reported (exit 1).
 */
#include <inttypes.h>
#include <stdlib.h>

#include "lib/time.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

enum { O_SINCE = 1, O_LIMIT };

static int list_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"SEQ", "TIME", "KIND", "HOST", "VM", "MESSAGE"};
	Keel__Vim__EventsRequest rq = KEEL__VIM__EVENTS_REQUEST__INIT;
	const char *since = kc_opt(call, O_SINCE), *limit = kc_opt(call, O_LIMIT);
	Keel__Vim__EventList *el;
	ProtobufCMessage *m;
	struct kc_table t;
	char *end;
	int rc;

	if (!kc_api_server(ctx, call, (char[KC_URL_MAX]){0}, KC_URL_MAX))
		return KC_EXIT_USAGE;
	if (since) {
		rq.since = strtoull(since, &end, 10);
		if (since[0] < '0' || since[0] > '9' || *end)
			return kc_usage(ctx, call, "bad --since '%s': want an event number", since);
	}
	if (limit && kc_parse_u32(limit, 1, 100000, &rq.max) != 0)
		return kc_usage(ctx, call, "bad --limit '%s': want 1 to 100000", limit);
	rc = kc_api_call(ctx, call, "ClusterEvents", &rq.base, &keel__vim__event_list__descriptor,
			 &m);
	if (rc)
		return rc;
	el = (Keel__Vim__EventList *)m;
	if (ctx->json) {
		kc_api_json(m, NULL);
		protobuf_c_message_free_unpacked(m, NULL);
		return KC_EXIT_OK;
	}
	kc_table_init(&t, 6, heads, "rlllll");
	for (size_t i = 0; i < el->n_events; i++) {
		const Keel__Vim__Event *e = el->events[i];
		char seq[24], when[64];
		const char *row[6];

		snprintf(seq, sizeof(seq), "%" PRIu64, e->seq);
		kb_time_fmt(e->at_ms * KB_NSEC_PER_MSEC, when, sizeof(when));
		row[0] = seq;
		row[1] = when;
		row[2] = e->kind;
		row[3] = e->host[0] ? e->host : "-";
		row[4] = e->vm[0] ? e->vm : "-";
		row[5] = e->message;
		kc_table_add(&t, row);
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

static const struct kc_opt list_opts[] = {
    {"since", "N", "only events after event number N", O_SINCE, false},
    {"limit", "N", "at most N events (hostd's default when not given)", O_LIMIT, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd list_cmd = {
    .name = "list",
    .summary = "List the cluster's events, oldest first (needs --server).",
    .detail = "Each event: its number (SEQ), when, its kind, the host and VM it concerns and a\n"
	      "message. Resume with --since the last SEQ seen.\n",
    .opts = list_opts,
    .run = list_run,
    .api = true,
};

static const struct kc_cmd *const event_subs[] = {&list_cmd, NULL};

const struct kc_cmd kc_event_cmd = {
    .name = "event",
    .summary = "The cluster's event log, through hostd's API (needs --server).",
    .subs = event_subs,
};
