/*
 * `keel vm ft enable|disable|status|failover|restart-secondary`: fault tolerance of a VM, a
 * live secondary copy on another host (docs/ft.md).
 *
 * Locally a change goes to clusterd's socket as one ClusterVmRequest (OP_FT_ENABLE,
 * OP_FT_DISABLE, OP_FT_FAILOVER, OP_FT_RESTART_SECONDARY), answered once the cluster
 * committed it. Then keel reads the cluster status every POLL_MS until the VM is where the
 * operator asked: protected at a generation later than the one read before the request
 * (enable, restart-secondary: the request itself moves the generation, so a protection seen
 * before it never counts), "not protected" (disable), or owned by the former secondary's
 * host at a higher epoch (failover). Each state change is printed on stderr when it is a
 * terminal. A wait that runs out fails with the VM's latest FT event as the reason; the
 * cluster goes on with what was asked. --no-wait returns once the request was committed.
 * status reads the cluster status and, for each VM whose primary runs on this host,
 * vmkernel's VmkVmFtStatus (checkpoints, lag, pauses, held frames).
 *
 * Through hostd's API (--server) the same commands are in vm_ft_api.c.
 *
 * Failure modes: clusterd not reachable, or this host in no cluster -> nothing asked
 * (KC_EXIT_UNREACHABLE, KC_EXIT_FAILED); a VM or host the cluster does not know -> nothing
 * asked (KC_EXIT_FAILED); clusterd's refusal (FT on already, not protected, ...) ->
 * KC_EXIT_FAILED with its text; a wait that runs out -> KC_EXIT_FAILED.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster.pb-c.h"
#include "lib/heap.h"
#include "lib/time.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/keel/vm_ft_int.h"

#define POLL_MS		 200
#define FAILOVER_POLL_MS 50
#define PROTECT_MAX_S	 300
#define DISABLE_MAX_S	 30
#define FAILOVER_MAX_S	 60
#define FIGURES_TIMEOUT	 5000 /* ms, for vmkernel's VmkVmFtStatus */

#define FT_OFF	 KEEL__CLUSTER__FT_STATE__FT_NOT_PROTECTED
#define FT_NEEDS KEEL__CLUSTER__FT_STATE__FT_NEEDS_SECONDARY
#define FT_START KEEL__CLUSTER__FT_STATE__FT_STARTING
#define FT_PROT	 KEEL__CLUSTER__FT_STATE__FT_PROTECTED

static const char *state_word(int state)
{
	static const char *const words[] = {"not protected", "needs secondary", "starting",
					    "protected"};

	return state >= 0 && state < 4 ? words[state] : "unknown";
}

/* ---- the cluster's view ---------------------------------------------------------------- */

static int status_of(struct kc_ctx *ctx, const struct kc_call *call,
		     Keel__Cluster__ClusterReply **out)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterStatusRequest sr = KEEL__CLUSTER__CLUSTER_STATUS_REQUEST__INIT;
	int rc;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_STATUS;
	rq.status = &sr;
	rc = kc_cluster_call(ctx, call, &rq, out);
	if (rc == 0 && (!(*out)->status || !(*out)->status->name || !(*out)->status->name[0])) {
		keel__cluster__cluster_reply__free_unpacked(*out, NULL);
		*out = NULL;
		return kc_fail(ctx, KC_EXIT_FAILED, KB_ESTATE, "this host is not in a cluster");
	}
	return rc;
}

static const Keel__Cluster__ClusterVmStatus *find_vm(const Keel__Cluster__ClusterStatus *s,
						     const char *text)
{
	const Keel__Cluster__ClusterVmStatus *byname = NULL;

	if (strncmp(text, "vm-", 3) == 0 && strlen(text) == 39)
		text += 3;
	for (size_t i = 0; i < s->n_vms; i++) {
		if (strcmp(s->vms[i]->uuid, text) == 0)
			return s->vms[i];
		if (!byname && strcmp(s->vms[i]->name, text) == 0)
			byname = s->vms[i];
	}
	return byname;
}

/* A host by name, by "host-N" or by its id N. */
static const Keel__Cluster__ClusterHostStatus *find_host(const Keel__Cluster__ClusterStatus *s,
							 const char *text)
{
	const char *digits = strncmp(text, "host-", 5) == 0 ? text + 5 : text;
	uint64_t id = 0;
	char *end;

	if (digits[0] >= '0' && digits[0] <= '9') {
		id = strtoull(digits, &end, 10);
		if (*end)
			id = 0;
	}
	for (size_t i = 0; i < s->n_hosts; i++)
		if (strcmp(s->hosts[i]->name, text) == 0)
			return s->hosts[i];
	for (size_t i = 0; i < s->n_hosts; i++)
		if (id && s->hosts[i]->id == id)
			return s->hosts[i];
	return NULL;
}

/* The name of host id into out ("" for 0, "host-N" for a host the status lacks). */
static char *host_name(const Keel__Cluster__ClusterStatus *s, uint64_t id, char *out, size_t size)
{
	out[0] = '\0';
	if (!id)
		return out;
	snprintf(out, size, "host-%" PRIu64, id);
	for (size_t i = 0; i < s->n_hosts; i++)
		if (s->hosts[i]->id == id && s->hosts[i]->name && s->hosts[i]->name[0])
			snprintf(out, size, "%s", s->hosts[i]->name);
	return out;
}

/* The newest event's seq (0: none). */
static uint64_t last_seq(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterEventsRequest er = KEEL__CLUSTER__CLUSTER_EVENTS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;
	uint64_t seq = 0;

	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS;
	rq.events = &er;
	if (kc_cluster_call(ctx, call, &rq, &rp) != 0)
		return 0;
	for (size_t i = 0; i < rp->n_events; i++)
		if (rp->events[i]->seq > seq)
			seq = rp->events[i]->seq;
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	return seq;
}

/* The text of the latest FT event about VM uuid after seq since into out, else fallback. */
static void ft_event(struct kc_ctx *ctx, const struct kc_call *call, uint64_t since,
		     const char *uuid, const char *fallback, char *out, size_t size)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterEventsRequest er = KEEL__CLUSTER__CLUSTER_EVENTS_REQUEST__INIT;
	Keel__Cluster__ClusterReply *rp;

	snprintf(out, size, "%s", fallback);
	er.since = since;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_EVENTS;
	rq.events = &er;
	if (kc_cluster_call(ctx, call, &rq, &rp) != 0)
		return;
	for (size_t i = 0; i < rp->n_events; i++) {
		const Keel__Cluster__Event *ev = rp->events[i];

		if (ev->kind == KEEL__CLUSTER__EVENT_KIND__EVENT_FT && ev->vm &&
		    strcmp(ev->vm, uuid) == 0 && ev->message && ev->message[0])
			snprintf(out, size, "%s", ev->message);
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
}

/* ---- one VM's FT, as status shows it ---------------------------------------------------- */

static void row_from_cluster(struct ft_row *r, const Keel__Cluster__ClusterStatus *s,
			     const Keel__Cluster__ClusterVmStatus *vm)
{
	const Keel__Cluster__Ft *ft = vm->ft;

	memset(r, 0, sizeof(*r));
	snprintf(r->name, sizeof(r->name), "%s", vm->name);
	snprintf(r->uuid, sizeof(r->uuid), "%s", vm->uuid);
	snprintf(r->state, sizeof(r->state), "%s", state_word(ft ? (int)ft->state : FT_OFF));
	snprintf(r->primary, sizeof(r->primary), "%s",
		 vm->owner_name && vm->owner_name[0] ? vm->owner_name : "-");
	r->ids = true;
	r->primary_id = vm->owner;
	r->epoch = vm->epoch;
	if (!ft)
		return;
	if (ft->secondary) {
		if (vm->ft_secondary_name && vm->ft_secondary_name[0])
			snprintf(r->secondary, sizeof(r->secondary), "%s", vm->ft_secondary_name);
		else
			host_name(s, ft->secondary, r->secondary, sizeof(r->secondary));
	}
	host_name(s, ft->preferred, r->preferred, sizeof(r->preferred));
	r->secondary_id = ft->secondary;
	r->failover_epoch = ft->failover_epoch;
	r->generation = ft->generation;
	r->since_ms = ft->since_ms;
	r->failovers = ft->failovers;
}

/* The figures of r's primary from this host's vmkernel, when it runs that primary. */
static void local_figures(struct kc_ctx *ctx, struct ft_row *r)
{
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmFtStatus fs = KEEL__VMK__VMK_VM_FT_STATUS__INIT;
	Keel__Vmk__VmkReply *rp = NULL;
	const Keel__Vmk__VmkFtInfo *f;
	struct kb_errmsg e = {{0}};
	int code = 0;

	if (access(ctx->socket, F_OK) != 0)
		return;
	if (!ctx->tr && kc_transport_local_create(ctx->socket, FIGURES_TIMEOUT, &ctx->tr) != 0)
		return;
	fs.vm = r->uuid;
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_FT_STATUS;
	rq.vm_ft_status = &fs;
	if (ctx->tr->call(ctx->tr, &rq, &rp, &code, &e) != 0 || !rp)
		return;
	f = rp->code == 0 ? rp->ft : NULL;
	if (f && f->role && strcmp(f->role, "primary") == 0) {
		r->figures = true;
		snprintf(r->phase, sizeof(r->phase), "%s", f->phase ? f->phase : "");
		r->checkpoint = f->checkpoint;
		r->epoch_ms = f->epoch_ms;
		r->lag_us = f->lag_us;
		r->last_pause_us = f->last_pause_us;
		r->max_pause_us = f->max_pause_us;
		r->last_ckpt_bytes = f->last_ckpt_bytes;
		r->held_frames = f->held_frames;
		r->bytes = f->bytes;
	}
	kc_reply_free(rp);
}

static void row_json(struct kc_json *j, const struct ft_row *r)
{
	kc_json_obj_begin(j, NULL);
	kc_json_str(j, "vm", r->name);
	kc_json_str(j, "uuid", r->uuid);
	kc_json_str(j, "state", r->state);
	kc_json_str(j, "primary", r->primary);
	kc_json_str(j, "secondary", r->secondary);
	if (r->ids) {
		kc_json_u64(j, "primary_id", r->primary_id);
		kc_json_u64(j, "secondary_id", r->secondary_id);
		kc_json_str(j, "preferred", r->preferred);
		kc_json_u64(j, "epoch", r->epoch);
		kc_json_u64(j, "failover_epoch", r->failover_epoch);
	}
	kc_json_u64(j, "generation", r->generation);
	kc_json_u64(j, "failovers", r->failovers);
	kc_json_u64(j, "since_ms", r->since_ms);
	if (r->figures) {
		kc_json_obj_begin(j, "figures");
		kc_json_str(j, "phase", r->phase);
		kc_json_u64(j, "checkpoint", r->checkpoint);
		kc_json_u64(j, "epoch_ms", r->epoch_ms);
		kc_json_u64(j, "lag_us", r->lag_us);
		kc_json_u64(j, "last_pause_us", r->last_pause_us);
		kc_json_u64(j, "max_pause_us", r->max_pause_us);
		kc_json_u64(j, "last_ckpt_bytes", r->last_ckpt_bytes);
		kc_json_u64(j, "held_frames", r->held_frames);
		kc_json_u64(j, "bytes", r->bytes);
		kc_json_obj_end(j);
	}
	kc_json_obj_end(j);
}

#define NCOLS 11 /* more than a struct kc_table holds: the table is printed here */

/* Cell c of r (cleaned) into out. */
static const char *cell(const struct ft_row *r, int c, char *out, size_t size)
{
	uint64_t now = kb_wall_ns() / KB_NSEC_PER_MSEC;
	char raw[160] = "-";

	if (c >= 6 && !r->figures)
		return kc_clean(raw, out, size);
	switch (c) {
	case 0:
		snprintf(raw, sizeof(raw), "%s", r->name);
		break;
	case 1:
		snprintf(raw, sizeof(raw), "%s", r->state);
		break;
	case 2:
		snprintf(raw, sizeof(raw), "%s", r->primary);
		break;
	case 3:
		snprintf(raw, sizeof(raw), "%s", r->secondary[0] ? r->secondary : "-");
		break;
	case 4:
		snprintf(raw, sizeof(raw), "%" PRIu32, r->failovers);
		break;
	case 5: /* at least 1 ms: 0 reads "-" (a clock behind the proposer's) */
		if (r->since_ms)
			kc_fmt_duration_ms(now > r->since_ms ? now - r->since_ms : 1, raw,
					   sizeof(raw));
		break;
	case 6:
		snprintf(raw, sizeof(raw), "%s", r->phase[0] ? r->phase : "-");
		break;
	case 7:
		snprintf(raw, sizeof(raw), "%" PRIu64, r->checkpoint);
		break;
	case 8:
		snprintf(raw, sizeof(raw), "%.1f", (double)r->lag_us / 1000.0);
		break;
	case 9:
		snprintf(raw, sizeof(raw), "%.1f", (double)r->last_pause_us / 1000.0);
		break;
	default:
		snprintf(raw, sizeof(raw), "%" PRIu64, r->held_frames);
		break;
	}
	return kc_clean(raw, out, size);
}

/* Characters in a UTF-8 string (continuation bytes do not count). */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* The rows as an aligned table, as kc_table prints one: two spaces between columns,
 * numbers right-aligned, the last column not padded. The figures' columns only when a
 * row has figures. */
static void print_table(const struct ft_row *rows, size_t n)
{
	static const char *const heads[NCOLS] = {"VM",	      "STATE",	   "PRIMARY", "SECONDARY",
						 "FAILOVERS", "SINCE",	   "PHASE",   "CKPT",
						 "LAG(ms)",   "PAUSE(ms)", "HELD"};
	static const bool right[NCOLS] = {false, false, false, false, true, true,
					  false, true,	true,  true,  true};
	size_t w[NCOLS];
	int ncols = 6;
	char buf[160];

	for (size_t i = 0; i < n; i++)
		if (rows[i].figures)
			ncols = NCOLS;
	for (int c = 0; c < ncols; c++) {
		w[c] = width(heads[c]);
		for (size_t i = 0; i < n; i++) {
			size_t cw = width(cell(&rows[i], c, buf, sizeof(buf)));

			if (cw > w[c])
				w[c] = cw;
		}
	}
	for (size_t i = 0; i <= n; i++) {
		for (int c = 0; c < ncols; c++) {
			const char *s = i == 0 ? heads[c] : cell(&rows[i - 1], c, buf, sizeof(buf));
			int pad = (int)(w[c] - width(s));

			if (c > 0)
				fputs("  ", stdout);
			if (right[c])
				printf("%*s", pad, "");
			fputs(s, stdout);
			if (!right[c] && c < ncols - 1)
				printf("%*s", pad, "");
		}
		fputc('\n', stdout);
	}
}

int kc_vm_ft_print_rows(struct kc_ctx *ctx, const struct ft_row *rows, size_t n)
{
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_arr_begin(&j, "vms");
		for (size_t i = 0; i < n; i++)
			row_json(&j, &rows[i]);
		kc_json_arr_end(&j);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		print_table(rows, n);
	}
	return KC_EXIT_OK;
}

/* ---- the changes through clusterd ---------------------------------------------------------- */

/* The VM as it was before the request. */
struct before {
	char uuid[64], name[128], owner_name[128], secondary_name[128];
	uint64_t owner, epoch, generation, secondary;
	int state;
};

/* Opens the success object on stdout: ok, code, and the VM's name and uuid. */
static void json_done(struct kc_json *j, const struct before *b)
{
	kc_json_init(j, stdout);
	kc_json_obj_begin(j, NULL);
	kc_json_bool(j, "ok", true);
	kc_json_i64(j, "code", 0);
	kc_json_str(j, "vm", b->name);
	kc_json_str(j, "uuid", b->uuid);
}

/* The state line on stderr while waiting ("  starting: secondary on host3"). */
static void note_state(struct kc_ctx *ctx, const struct kc_call *call, int state,
		       const char *secondary, int last, uint64_t since, const char *uuid)
{
	char why[300] = "", clean[300];

	if (ctx->json || !isatty(STDERR_FILENO))
		return;
	if (state == FT_NEEDS && (last == FT_START || last == FT_PROT))
		ft_event(ctx, call, since, uuid, "", why, sizeof(why));
	if ((state == FT_START || state == FT_PROT) && secondary[0])
		fprintf(stderr, "  %s: secondary on %s\n", state_word(state),
			kc_clean(secondary, clean, sizeof(clean)));
	else
		fprintf(stderr, "  %s%s%s\n", state_word(state), why[0] ? ": " : "",
			kc_clean(why, clean, sizeof(clean)));
}

/* enable, restart-secondary: until protected at a generation after b's. */
static int wait_protected(struct kc_ctx *ctx, const struct kc_call *call, const struct before *b,
			  uint64_t since, uint64_t t0)
{
	uint64_t until = t0 + (uint64_t)PROTECT_MAX_S * KB_NSEC_PER_SEC, last_sec = 0;
	Keel__Cluster__ClusterReply *st;
	const Keel__Cluster__ClusterVmStatus *vm;
	char sec[128], why[300];
	int rc, last = -1;

	for (;;) {
		rc = status_of(ctx, call, &st);
		if (rc)
			return rc;
		vm = find_vm(st->status, b->uuid);
		if (!vm) {
			keel__cluster__cluster_reply__free_unpacked(st, NULL);
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
				       "VM %s left the cluster before it was protected", b->name);
		}
		if (vm->ft && vm->ft->generation > b->generation) {
			int state = (int)vm->ft->state;

			host_name(st->status, vm->ft->secondary, sec, sizeof(sec));
			if (state != last || vm->ft->secondary != last_sec)
				note_state(ctx, call, state, sec, last, since, b->uuid);
			last = state;
			last_sec = vm->ft->secondary;
			if (state == FT_PROT) {
				double s = (double)(kb_now_ns() - t0) / 1e9;
				uint64_t gen = vm->ft->generation;
				char owner[128];

				snprintf(owner, sizeof(owner), "%s", vm->owner_name);
				keel__cluster__cluster_reply__free_unpacked(st, NULL);
				if (ctx->json) {
					struct kc_json j;

					json_done(&j, b);
					kc_json_str(&j, "state", state_word(FT_PROT));
					kc_json_str(&j, "primary", owner);
					kc_json_str(&j, "secondary", sec);
					kc_json_u64(&j, "generation", gen);
					kc_json_double(&j, "seconds", s);
					kc_json_obj_end(&j);
					kc_json_finish(&j);
				} else {
					char n1[128], n2[128];

					printf("VM %s protected: secondary on %s (%.1f s)\n",
					       kc_clean(b->name, n1, sizeof(n1)),
					       kc_clean(sec, n2, sizeof(n2)), s);
				}
				return KC_EXIT_OK;
			}
			if (state == FT_OFF) {
				keel__cluster__cluster_reply__free_unpacked(st, NULL);
				ft_event(ctx, call, since, b->uuid, "no FT event since the request",
					 why, sizeof(why));
				return kc_fail(
				    ctx, KC_EXIT_FAILED, KB_ECANCELED,
				    "FT was turned off for VM %s before it was protected: %s",
				    b->name, why);
			}
		}
		keel__cluster__cluster_reply__free_unpacked(st, NULL);
		if (kb_now_ns() > until) {
			ft_event(ctx, call, since, b->uuid, "no FT event since the request", why,
				 sizeof(why));
			return kc_fail(
			    ctx, KC_EXIT_FAILED, KB_ETIMEOUT,
			    "VM %s is not protected after %d s (%s); the cluster goes on "
			    "trying: %s",
			    b->name, PROTECT_MAX_S, state_word(last < 0 ? FT_NEEDS : last), why);
		}
		kb_sleep_ns((uint64_t)POLL_MS * KB_NSEC_PER_MSEC);
	}
}

/* disable: until the VM's FT reads "not protected". */
static int wait_off(struct kc_ctx *ctx, const struct kc_call *call, const struct before *b,
		    uint64_t t0)
{
	uint64_t until = t0 + (uint64_t)DISABLE_MAX_S * KB_NSEC_PER_SEC;
	Keel__Cluster__ClusterReply *st;
	const Keel__Cluster__ClusterVmStatus *vm;
	char owner[128], n1[128], n2[128];
	int rc;

	for (;;) {
		rc = status_of(ctx, call, &st);
		if (rc)
			return rc;
		vm = find_vm(st->status, b->uuid);
		if (!vm || !vm->ft || vm->ft->state == FT_OFF)
			break;
		keel__cluster__cluster_reply__free_unpacked(st, NULL);
		if (kb_now_ns() > until)
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ETIMEOUT,
				       "FT of VM %s is still on after %d s; keel vm ft status %s "
				       "shows it",
				       b->name, DISABLE_MAX_S, b->name);
		kb_sleep_ns((uint64_t)POLL_MS * KB_NSEC_PER_MSEC);
	}
	snprintf(owner, sizeof(owner), "%s", vm && vm->owner_name ? vm->owner_name : "");
	keel__cluster__cluster_reply__free_unpacked(st, NULL);
	if (ctx->json) {
		struct kc_json j;

		json_done(&j, b);
		kc_json_str(&j, "state", state_word(FT_OFF));
		kc_json_bool(&j, "was_on", b->state != FT_OFF);
		kc_json_str(&j, "primary", owner);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else if (b->state == FT_OFF) {
		printf("FT was not on for VM %s.\n", kc_clean(b->name, n1, sizeof(n1)));
	} else {
		printf("FT turned off for VM %s: it runs on %s unprotected.\n",
		       kc_clean(b->name, n1, sizeof(n1)), kc_clean(owner, n2, sizeof(n2)));
	}
	return KC_EXIT_OK;
}

/* failover: until the former secondary's host owns the VM at a higher epoch. first: the
 * owner and epoch clusterd answered with. */
static int wait_failover(struct kc_ctx *ctx, const struct kc_call *call, const struct before *b,
			 uint64_t since, uint64_t t0, uint64_t first_owner, uint64_t first_epoch)
{
	uint64_t until = t0 + (uint64_t)FAILOVER_MAX_S * KB_NSEC_PER_SEC, owner = first_owner;
	uint64_t epoch = first_epoch, ms;
	Keel__Cluster__ClusterReply *st;
	const Keel__Cluster__ClusterVmStatus *vm;
	char why[300], where[128] = "", n1[128], n2[128], n3[128];
	int rc;

	while (!(owner == b->secondary && epoch > b->epoch)) {
		if (epoch > b->epoch && owner && owner != b->secondary) {
			ft_event(ctx, call, since, b->uuid, "no FT event since the request", why,
				 sizeof(why));
			return kc_fail(
			    ctx, KC_EXIT_FAILED, KB_ECANCELED,
			    "VM %s did not fail over to %s: it went to %s (epoch %" PRIu64 "): %s",
			    b->name, b->secondary_name, where[0] ? where : "another host", epoch,
			    why);
		}
		if (kb_now_ns() > until) {
			ft_event(ctx, call, since, b->uuid, "no FT event since the request", why,
				 sizeof(why));
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ETIMEOUT,
				       "VM %s has not failed over to %s after %d s: %s", b->name,
				       b->secondary_name, FAILOVER_MAX_S, why);
		}
		kb_sleep_ns((uint64_t)FAILOVER_POLL_MS * KB_NSEC_PER_MSEC);
		rc = status_of(ctx, call, &st);
		if (rc)
			return rc;
		vm = find_vm(st->status, b->uuid);
		if (!vm) {
			keel__cluster__cluster_reply__free_unpacked(st, NULL);
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
				       "VM %s left the cluster during its failover", b->name);
		}
		owner = vm->owner;
		epoch = vm->epoch;
		snprintf(where, sizeof(where), "%s", vm->owner_name ? vm->owner_name : "");
		keel__cluster__cluster_reply__free_unpacked(st, NULL);
	}
	ms = (kb_now_ns() - t0) / KB_NSEC_PER_MSEC;
	snprintf(where, sizeof(where), "%s", b->secondary_name);
	if (ctx->json) {
		struct kc_json j;

		json_done(&j, b);
		kc_json_str(&j, "from", b->owner_name);
		kc_json_str(&j, "to", where);
		kc_json_u64(&j, "epoch", epoch);
		kc_json_u64(&j, "ms", ms);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		printf("VM %s failed over from %s to %s (test failover) in %" PRIu64 " ms\n",
		       kc_clean(b->name, n1, sizeof(n1)), kc_clean(b->owner_name, n2, sizeof(n2)),
		       kc_clean(where, n3, sizeof(n3)), ms);
	}
	return KC_EXIT_OK;
}

static int no_wait_done(struct kc_ctx *ctx, int op, const struct before *b)
{
	char n[128];

	if (ctx->json) {
		struct kc_json j;

		json_done(&j, b);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		return KC_EXIT_OK;
	}
	kc_clean(b->name, n, sizeof(n));
	switch (op) {
	case OP_ENABLE:
		printf("FT turned on for VM %s: the cluster is setting up its secondary.\n", n);
		break;
	case OP_RESTART:
		printf("A new secondary was asked for VM %s.\n", n);
		break;
	case OP_DISABLE:
		printf("FT turned off for VM %s.\n", n);
		break;
	default:
		printf("Test failover of VM %s asked.\n", n);
		break;
	}
	return KC_EXIT_OK;
}

static int change_run(struct kc_ctx *ctx, const struct kc_call *call, int op)
{
	Keel__Cluster__ClusterRequest rq = KEEL__CLUSTER__CLUSTER_REQUEST__INIT;
	Keel__Cluster__ClusterVmRequest vr = KEEL__CLUSTER__CLUSTER_VM_REQUEST__INIT;
	Keel__Cluster__ClusterReply *st = NULL, *rp = NULL;
	const Keel__Cluster__ClusterVmStatus *vm;
	const Keel__Cluster__ClusterHostStatus *h = NULL;
	uint64_t since, t0, owner = 0, epoch = 0, dest = 0;
	struct before b;
	int rc;

	if (kc_api_wanted(ctx))
		return kc_vm_ft_change_api(ctx, call, op);
	rc = status_of(ctx, call, &st);
	if (rc)
		return rc;
	vm = find_vm(st->status, call->pos[0]);
	if (!vm) {
		keel__cluster__cluster_reply__free_unpacked(st, NULL);
		return kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND, "no such VM in the cluster: %s",
			       call->pos[0]);
	}
	if (kc_opt(call, O_SECONDARY)) {
		h = find_host(st->status, kc_opt(call, O_SECONDARY));
		if (!h) {
			rc = kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
				     "no such host in the cluster for the secondary of VM %s: %s",
				     vm->name, kc_opt(call, O_SECONDARY));
			keel__cluster__cluster_reply__free_unpacked(st, NULL);
			return rc;
		}
		dest = h->id; /* h lives in st, freed below */
	}
	memset(&b, 0, sizeof(b));
	snprintf(b.uuid, sizeof(b.uuid), "%s", vm->uuid);
	snprintf(b.name, sizeof(b.name), "%s", vm->name);
	snprintf(b.owner_name, sizeof(b.owner_name), "%s", vm->owner_name);
	b.owner = vm->owner;
	b.epoch = vm->epoch;
	b.state = vm->ft ? (int)vm->ft->state : FT_OFF;
	b.generation = vm->ft ? vm->ft->generation : 0;
	b.secondary = vm->ft ? vm->ft->secondary : 0;
	host_name(st->status, b.secondary, b.secondary_name, sizeof(b.secondary_name));
	keel__cluster__cluster_reply__free_unpacked(st, NULL);

	since = last_seq(ctx, call);
	vr.op = (Keel__Cluster__ClusterVmRequest__Op)op;
	vr.uuid = b.uuid;
	vr.destination = dest;
	rq.req_case = KEEL__CLUSTER__CLUSTER_REQUEST__REQ_VM;
	rq.vm = &vr;
	t0 = kb_now_ns();
	rc = kc_cluster_call(ctx, call, &rq, &rp);
	if (rc)
		return rc;
	if (rp->vm) {
		owner = rp->vm->owner;
		epoch = rp->vm->epoch;
	}
	keel__cluster__cluster_reply__free_unpacked(rp, NULL);
	if (kc_has(call, KC_O_NO_WAIT))
		return no_wait_done(ctx, op, &b);
	switch (op) {
	case OP_DISABLE:
		return wait_off(ctx, call, &b, t0);
	case OP_FAILOVER:
		return wait_failover(ctx, call, &b, since, t0, owner, epoch);
	default:
		return wait_protected(ctx, call, &b, since, t0);
	}
}

static int enable_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	return change_run(ctx, call, OP_ENABLE);
}

static int disable_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	return change_run(ctx, call, OP_DISABLE);
}

static int failover_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	return change_run(ctx, call, OP_FAILOVER);
}

static int restart_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	return change_run(ctx, call, OP_RESTART);
}

static int status_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	Keel__Cluster__ClusterReply *st = NULL;
	const Keel__Cluster__ClusterStatus *s;
	struct ft_row *rows;
	size_t n = 0;
	int rc;

	if (kc_api_wanted(ctx))
		return kc_vm_ft_status_api(ctx, call);
	rc = status_of(ctx, call, &st);
	if (rc)
		return rc;
	s = st->status;
	rows = kb_calloc(s->n_vms ? s->n_vms : 1, sizeof(*rows));
	if (!rows) {
		keel__cluster__cluster_reply__free_unpacked(st, NULL);
		return kc_fail(ctx, KC_EXIT_FAILED, -ENOMEM, "out of memory");
	}
	if (call->npos == 1) {
		const Keel__Cluster__ClusterVmStatus *vm = find_vm(s, call->pos[0]);

		if (!vm) {
			kb_free(rows);
			keel__cluster__cluster_reply__free_unpacked(st, NULL);
			return kc_fail(ctx, KC_EXIT_FAILED, KB_ENOTFOUND,
				       "no such VM in the cluster: %s", call->pos[0]);
		}
		row_from_cluster(&rows[n++], s, vm);
	} else {
		for (size_t i = 0; i < s->n_vms; i++)
			if (s->vms[i]->ft)
				row_from_cluster(&rows[n++], s, s->vms[i]);
	}
	for (size_t i = 0; i < n; i++)
		if (rows[i].primary_id == s->node_id && strcmp(rows[i].state, "not protected") != 0)
			local_figures(ctx, &rows[i]);
	keel__cluster__cluster_reply__free_unpacked(st, NULL);
	rc = kc_vm_ft_print_rows(ctx, rows, n);
	kb_free(rows);
	return rc;
}

/* ---- the command tree ------------------------------------------------------------------- */

static const struct kc_opt enable_opts[] = {
    {"secondary-host", "HOST",
     "the host of the secondary (name or id); without it the cluster picks one", O_SECONDARY,
     false},
    {"no-wait", NULL,
     "return once FT is on, before the secondary is in step (through the API: print the task "
     "id)",
     KC_O_NO_WAIT, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt restart_opts[] = {
    {"secondary-host", "HOST",
     "the host of the new secondary (name or id); without it the cluster picks one", O_SECONDARY,
     false},
    {"no-wait", NULL,
     "return once the new secondary was asked for (through the API: print the task id)",
     KC_O_NO_WAIT, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt disable_opts[] = {
    {"no-wait", NULL, "return once FT is off in the cluster (through the API: print the task id)",
     KC_O_NO_WAIT, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt failover_opts[] = {
    {"no-wait", NULL, "return once the failover was committed (through the API: print the task id)",
     KC_O_NO_WAIT, false},
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt status_opts[] = {
    {"cluster-socket", "PATH", "clusterd's control socket", O_CSOCK, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd enable_cmd = {
    .name = "enable",
    .args = "VM",
    .summary = "Turn FT on: keep a live secondary of a VM on another host.",
    .detail = "VM: its name or uuid. The cluster picks the secondary's host unless\n"
	      "--secondary-host names one; keel waits until the secondary is protected\n"
	      "(at most 300 s), printing each step on a terminal. A VM with FT on already\n"
	      "is refused.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = enable_opts,
    .run = enable_run,
    .api = true,
};

static const struct kc_cmd disable_cmd = {
    .name = "disable",
    .args = "VM",
    .summary = "Turn FT off: the secondary ends, the VM runs on unprotected.",
    .detail = "VM: its name or uuid. A VM without FT is left as it is.\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = disable_opts,
    .run = disable_run,
    .api = true,
};

static const struct kc_cmd status_cmd = {
    .name = "status",
    .args = "[VM]",
    .summary = "Show the FT state of one VM, or of every VM with FT.",
    .detail = "Columns: VM, STATE (not protected, needs secondary, starting, protected),\n"
	      "PRIMARY and SECONDARY (hosts), FAILOVERS, SINCE (time in this state); for a\n"
	      "primary that runs on this host also PHASE, CKPT (checkpoints acknowledged),\n"
	      "LAG (ms from an epoch's end to its acknowledgement), PAUSE (ms the guest\n"
	      "paused at the last epoch's end) and HELD (frames held for an\n"
	      "acknowledgement).\n",
    .min_pos = 0,
    .max_pos = 1,
    .opts = status_opts,
    .run = status_run,
    .api = true,
};

static const struct kc_cmd failover_cmd = {
    .name = "failover",
    .args = "VM",
    .summary = "Test failover: the secondary takes over and the VM runs there.",
    .detail = "VM: its name or uuid; it must be protected. The secondary's host becomes\n"
	      "the owner and resumes the guest from the last checkpoint; the cluster then\n"
	      "sets up a new secondary. keel waits for the new owner (at most 60 s).\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = failover_opts,
    .run = failover_run,
    .api = true,
};

static const struct kc_cmd restart_cmd = {
    .name = "restart-secondary",
    .args = "VM",
    .summary = "Replace a VM's secondary with a new one.",
    .detail = "VM: its name or uuid; FT must be on. The VM is unprotected until the new\n"
	      "secondary is in step; keel waits for that (at most 300 s).\n",
    .min_pos = 1,
    .max_pos = 1,
    .opts = restart_opts,
    .run = restart_run,
    .api = true,
};

static const struct kc_cmd *const ft_subs[] = {
    &enable_cmd, &disable_cmd, &status_cmd, &failover_cmd, &restart_cmd, NULL,
};

const struct kc_cmd kc_vm_ft_cmd = {
    .name = "ft",
    .summary = "Fault tolerance: a live secondary of a VM on another host.",
    .detail = "Through this host's clusterd, or hostd's API with --server.\n",
    .subs = ft_subs,
};
