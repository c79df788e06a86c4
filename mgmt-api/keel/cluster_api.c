/*
 * `keel cluster status|events|join-token` through hostd's API (--server): ClusterGetStatus,
 * ClusterEvents and ClusterJoinToken, which hostd answers from its own clusterd.
 *
 * The text output has the shape of the local commands (cluster.c). The API's ClusterStatus
 * says less than clusterd's socket — no Raft indexes, this node's state or heartbeat ages —
 * and names hosts by their object id ("host-<id>"), so the status block and the host table
 * carry what it has: name, id, leader, settings, isolation; each host's name, id, vmk0,
 * state, Raft role and maintenance. --json prints the API's messages under their proto
 * names ("cluster" null outside a cluster), like `keel inventory`; the events' and the
 * token's keys are those of the local commands already. Failures are reported as every
 * API failure (api.c); clusterd not answering hostd is UNAVAILABLE (exit 1).
 */
#include <inttypes.h>
#include <string.h>

#include "lib/time.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

static const char *leader_text(const Keel__Vim__ClusterStatus *s, char *out, size_t size)
{
	const char *id = s->cluster->leader;

	if (!id[0])
		return "none";
	for (size_t i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i]->id, id) == 0) {
			snprintf(out, size, "%s (%s) at %s", id, s->hosts[i]->name,
				 s->hosts[i]->vmk0[0] ? s->hosts[i]->vmk0 : "-");
			return out;
		}
	return id;
}

int kc_cluster_api_status(struct kc_ctx *ctx, const struct kc_call *call)
{
	static const char *const heads[] = {"NAME", "ID", "VMK0", "STATE", "ROLE", "MAINTENANCE"};
	Keel__Vim__ClusterStatusRequest rq = KEEL__VIM__CLUSTER_STATUS_REQUEST__INIT;
	const Keel__Vim__ClusterObject *co;
	Keel__Vim__ClusterStatus *s;
	ProtobufCMessage *m;
	struct kc_table t;
	char leader[512];
	int rc;

	rc = kc_api_call(ctx, call, "ClusterGetStatus", &rq.base,
			 &keel__vim__cluster_status__descriptor, &m);
	if (rc)
		return rc;
	s = (Keel__Vim__ClusterStatus *)m;
	co = s->cluster;
	if (ctx->json) {
		kc_api_json(m, NULL);
		goto out;
	}
	kc_kv(stdout, "Cluster", "%s", co && co->name[0] ? co->name : "(none)");
	kc_kv(stdout, "Cluster id", "%s", co && co->id[0] ? co->id : "-");
	if (co) {
		kc_kv(stdout, "Leader", "%s", leader_text(s, leader, sizeof(leader)));
		if (co->failure_timeout_ms)
			kc_kv(stdout, "Settings",
			      "failure timeout %" PRIu32 " ms, isolation response %s",
			      co->failure_timeout_ms,
			      co->isolation_response[0] ? co->isolation_response : "-");
	} else {
		kc_kv(stdout, "This node", "not in a cluster");
	}
	if (s->isolated)
		kc_kv(stdout, "Isolation", "ISOLATED: this host hears no leader");
	if (s->n_hosts == 0)
		goto out;
	printf("\n");
	kc_table_init(&t, 6, heads, "llllll");
	for (size_t i = 0; i < s->n_hosts; i++) {
		const Keel__Vim__HostObject *h = s->hosts[i];
		const char *row[] = {h->name,
				     h->id,
				     h->vmk0[0] ? h->vmk0 : "-",
				     h->state[0] ? h->state : "-",
				     h->raft_role[0] ? h->raft_role : "-",
				     h->maintenance ? "yes" : "no"};

		kc_table_add(&t, row);
	}
	rc = kc_table_print(&t, ctx, stdout);
	kc_table_close(&t);
out:
	protobuf_c_message_free_unpacked(m, NULL);
	return rc;
}

int kc_cluster_api_events(struct kc_ctx *ctx, const struct kc_call *call, uint64_t since,
			  uint32_t limit)
{
	Keel__Vim__EventsRequest rq = KEEL__VIM__EVENTS_REQUEST__INIT;
	Keel__Vim__EventList *el;
	ProtobufCMessage *m;
	char when[64], kind[64], msg[1024];
	int rc;

	rq.since = since;
	rq.max = limit;
	rc = kc_api_call(ctx, call, "ClusterEvents", &rq.base, &keel__vim__event_list__descriptor,
			 &m);
	if (rc)
		return rc;
	el = (Keel__Vim__EventList *)m;
	if (ctx->json) {
		kc_api_json(m, NULL);
	} else {
		for (size_t i = 0; i < el->n_events; i++) {
			const Keel__Vim__Event *e = el->events[i];

			kb_time_fmt(e->at_ms * KB_NSEC_PER_MSEC, when, sizeof(when));
			printf("%6" PRIu64 "  %s  %-12s  %s\n", e->seq, when,
			       kc_clean(e->kind, kind, sizeof(kind)),
			       kc_clean(e->message, msg, sizeof(msg)));
		}
	}
	protobuf_c_message_free_unpacked(m, NULL);
	return KC_EXIT_OK;
}

int kc_cluster_api_token(struct kc_ctx *ctx, const struct kc_call *call, uint32_t ttl_s)
{
	Keel__Vim__JoinTokenRequest rq = KEEL__VIM__JOIN_TOKEN_REQUEST__INIT;
	Keel__Vim__JoinTokenReply *tr;
	ProtobufCMessage *m;
	char tok[512];
	int rc;

	rq.ttl_s = ttl_s;
	rc = kc_api_call(ctx, call, "ClusterJoinToken", &rq.base,
			 &keel__vim__join_token_reply__descriptor, &m);
	if (rc)
		return rc;
	tr = (Keel__Vim__JoinTokenReply *)m;
	if (ctx->json)
		kc_api_json(m, NULL);
	else
		printf("%s\n", kc_clean(tr->token, tok, sizeof(tok)));
	protobuf_c_message_free_unpacked(m, NULL);
	return KC_EXIT_OK;
}
