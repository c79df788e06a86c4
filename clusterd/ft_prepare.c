/*
 * The secondary's host's part of an FT pairing (docs/ft.md, "The cluster's part"):
 * STEP_FT_PREPARE from the VM's owner lands in cd_ft_prepare. The pairing must be in this
 * host's replica (waited for up to PREPARE_WAIT_MS): STARTING at the generation asked, this
 * host the secondary, the asker the owner. A secondary left from an earlier pairing ends
 * first; vmkernel's VmkVmFtSecondary then starts the secondary and answers with the
 * endpoint it listens on, which goes back to the owner. The key is wiped once handed on.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>

#include "clusterd/daemon.h"
#include "clusterd/ft_int.h"
#include "lib/heap.h"

#define PREPARE_WAIT_MS 3000

static void prep_work(uv_work_t *w)
{
	struct prep *p = w->data;
	Keel__Vmk__VmkRequest rq = KEEL__VMK__VMK_REQUEST__INIT;
	Keel__Vmk__VmkVmFtSecondary fs = KEEL__VMK__VMK_VM_FT_SECONDARY__INIT;
	Keel__Vmk__VmkReply *rp;
	char role[16], phase[32];

	/* a secondary left from an earlier pairing goes first */
	cd__ft_status(p->f->vmk_sock, p->uuid, role, sizeof(role), phase, sizeof(phase), NULL, 0);
	if (strcmp(role, "secondary") == 0)
		(void)cd__ft_stop(p->f->vmk_sock, p->uuid, NULL, 0);
	fs.vmx_path = p->vmx_path;
	fs.uuid = p->uuid;
	fs.id.data = p->id;
	fs.id.len = sizeof(p->id);
	fs.key.data = p->key;
	fs.key.len = sizeof(p->key);
	fs.encrypt = p->encrypt;
	fs.datastore = "";
	rq.req_case = KEEL__VMK__VMK_REQUEST__REQ_VM_FT_SECONDARY;
	rq.vm_ft_secondary = &fs;
	rp = cd_vmk_ask(p->f->vmk_sock, &rq);
	OPENSSL_cleanse(p->key, sizeof(p->key));
	if (!rp || rp->code || !rp->ft || !rp->ft->endpoint || !rp->ft->endpoint[0]) {
		p->code = !rp ? -EIO : rp->code ? rp->code : KB_EPROTO;
		if (rp && !rp->code)
			snprintf(p->error, sizeof(p->error), "vmkernel named no endpoint");
		else
			cd_vmk_errtext(p->error, sizeof(p->error), rp, "FT secondary");
	} else {
		snprintf(p->endpoint, sizeof(p->endpoint), "%s", rp->ft->endpoint);
	}
	if (rp)
		keel__vmk__vmk_reply__free_unpacked(rp, NULL);
}

static void prep_done(uv_work_t *w, int status)
{
	struct prep *p = w->data;
	struct cd_ftd *f = p->f;
	char *eps[1] = {p->endpoint};

	f->n_busy--;
	if ((status || f->stopping) && !p->code) {
		p->code = KB_ECANCELED;
		snprintf(p->error, sizeof(p->error), "clusterd is stopping");
	}
	if (p->code)
		kb_log(f->d->log, KB_LOG_WARN, "FT: VM %s: no secondary here: %s", p->uuid, p->error);
	else
		kb_log(f->d->log, KB_LOG_INFO, "FT: VM %s: secondary ready at %s", p->uuid,
		       p->endpoint);
	p->cb(f->d, p->arg, p->code, p->code ? p->error : NULL, eps, p->code ? 0 : 1);
	kb_free(p);
	cd__ft_maybe_free(f);
}

/* The pairing is in the replica: check it, start vmkernel's side. 0 or an error. */
static int prep_go(struct cd_ftd *f, struct prep *p, struct kb_errmsg *e)
{
	const struct cd_state *s = cd_fsm_state(&f->d->fsm);
	const struct cd_vm *vm = cd_state_vm(s, p->uuid);

	if (!vm || vm->ft.state != FT_START || vm->ft.generation != p->gen ||
	    vm->ft.secondary != f->self || vm->owner != p->peer) {
		kb_errmsg_setf(e, "VM %s: no pairing at generation %" PRIu64 " from the calling host "
				  "to this one",
			       p->uuid, p->gen);
		return KB_ESTATE;
	}
	snprintf(p->vmx_path, sizeof(p->vmx_path), "%s", vm->vmx_path);
	p->work.data = p;
	if (uv_queue_work(f->d->loop, &p->work, prep_work, prep_done) != 0) {
		kb_errmsg_setf(e, "busy");
		return -EAGAIN;
	}
	f->n_busy++;
	return 0;
}

static bool pairing_in_replica(struct cd_ftd *f, const struct prep *p)
{
	const struct cd_vm *vm = cd_state_vm(cd_fsm_state(&f->d->fsm), p->uuid);

	return vm && vm->ft.generation >= p->gen;
}

int cd_ft_prepare(struct cd_daemon *d, uint64_t peer, const Keel__Cluster__FtPrepare *rq,
		  cd_migrate_prepared_cb cb, void *arg, struct kb_errmsg *e)
{
	struct cd_ftd *f = d->ft;
	struct prep *p;
	int rv;

	if (!f || f->stopping) {
		kb_errmsg_setf(e, "this host takes no FT secondaries now");
		return KB_ESTATE;
	}
	if (!rq || !rq->uuid || rq->id.len != ID_SIZE || rq->key.len != KEY_SIZE ||
	    strlen(rq->uuid) > CD_UUID_LEN) {
		kb_errmsg_setf(e, "an FT secondary needs its VM, 16-byte id and 32-byte key");
		return -EINVAL;
	}
	p = kb_calloc(1, sizeof(*p));
	if (!p) {
		kb_errmsg_setf(e, "out of memory");
		return -ENOMEM;
	}
	p->f = f;
	p->peer = peer;
	p->gen = rq->generation;
	snprintf(p->uuid, sizeof(p->uuid), "%s", rq->uuid);
	memcpy(p->id, rq->id.data, ID_SIZE);
	memcpy(p->key, rq->key.data, KEY_SIZE);
	p->encrypt = rq->encrypt;
	p->cb = cb;
	p->arg = arg;
	if (pairing_in_replica(f, p)) {
		rv = prep_go(f, p, e);
		if (rv) {
			OPENSSL_cleanse(p, sizeof(*p));
			kb_free(p);
		}
		return rv;
	}
	p->deadline_ms = cd__ft_mono_ms() + PREPARE_WAIT_MS;
	p->next = f->waiting;
	f->waiting = p;
	return 0;
}

void cd__ft_prep_tick(struct cd_ftd *f)
{
	struct prep **pp = &f->waiting, *p;
	uint64_t now = cd__ft_mono_ms();

	while ((p = *pp)) {
		struct kb_errmsg e = {{0}};
		int rv;

		if (!pairing_in_replica(f, p) && now < p->deadline_ms) {
			pp = &p->next;
			continue;
		}
		*pp = p->next;
		rv = prep_go(f, p, &e);
		if (rv) {
			p->cb(f->d, p->arg, rv, e.msg, NULL, 0);
			OPENSSL_cleanse(p, sizeof(*p));
			kb_free(p);
		}
	}
}

void cd__ft_prep_cancel(struct cd_ftd *f)
{
	struct prep *p;

	while ((p = f->waiting)) {
		f->waiting = p->next;
		p->cb(f->d, p->arg, KB_ECANCELED, "clusterd is stopping", NULL, 0);
		OPENSSL_cleanse(p, sizeof(*p));
		kb_free(p);
	}
}
