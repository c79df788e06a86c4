/*
 * Internals shared by this host's FT driver (ft.c: pairings, the monitor, the tick) and
 * its secondary side (ft_prepare.c: STEP_FT_PREPARE). Loop thread unless said otherwise.
 */
#ifndef CD_FT_INT_H
#define CD_FT_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clusterd/daemon.h"

#define PAIRS_MAX	32
#define MON_MAX		256	/* FT VMs watched at once */
#define DOWN_MAX	64
#define KEY_SIZE	32
#define ID_SIZE		16

#define FT_OFF	 KEEL__CLUSTER__FT_STATE__FT_NOT_PROTECTED
#define FT_NEEDS KEEL__CLUSTER__FT_STATE__FT_NEEDS_SECONDARY
#define FT_START KEEL__CLUSTER__FT_STATE__FT_STARTING
#define FT_PROT	 KEEL__CLUSTER__FT_STATE__FT_PROTECTED

struct pair { /* a pairing this host drives as the owner */
	struct cd_ftd *f;
	uv_work_t work;
	bool used, busy;
	_Atomic bool cancel; /* the state moved on: give up */
	char uuid[CD_UUID_LEN + 1];
	char name[CD_NAME_MAX + 1];
	uint64_t gen, secondary;
	char sec_addr[64];
	int code;
	char error[256];
};

struct mvm { /* an FT VM as the monitor sees it (copied on the loop) */
	char uuid[CD_UUID_LEN + 1];
	char name[CD_NAME_MAX + 1];
	bool known;	 /* in the replicated state */
	bool owner;	 /* this host owns it */
	bool secondary;	 /* this host is its secondary */
	bool resume;	 /* owned here by a failover: resume from the secondary */
	bool pairing;	 /* a pairing driver runs for it */
	bool test;	 /* a test failover: the primary stops */
	bool down;	 /* owned here, protected, not running here (the worker's finding) */
	bool lost;	 /* owned here, protected, running, its FT session lost */
	int state;
	uint64_t gen, epoch;
	/* the worker's findings */
	int ask;	 /* OP_FT_* to send, or 0 */
	char error[200];
};

struct prep { /* STEP_FT_PREPARE waiting for its pairing, then running */
	struct cd_ftd *f;
	struct prep *next;
	uv_work_t work;
	uint64_t peer, gen, deadline_ms;
	char uuid[CD_UUID_LEN + 1];
	char vmx_path[CD_PATH_MAX + 1];
	uint8_t id[ID_SIZE], key[KEY_SIZE];
	bool encrypt;
	cd_migrate_prepared_cb cb;
	void *arg;
	int code;
	char error[256];
	char endpoint[64];
};

struct sent { /* a report sent: not again within REPEAT_MS */
	char uuid[CD_UUID_LEN + 1];
	int op;
	uint64_t gen, at_ms;
};

struct down { /* a protected VM owned here that does not run here, since when */
	char uuid[CD_UUID_LEN + 1];
	uint64_t since_ms; /* 0: free */
};

struct cd_ftd {
	struct cd_daemon *d;
	uv_timer_t timer;
	char vmk_sock[PATH_MAX];
	char state_dir[PATH_MAX];
	uint64_t self;
	bool stopping, timer_closed;
	unsigned n_busy;
	/* the monitor */
	bool mon_busy;
	uv_work_t mon_work;
	struct mvm mon[MON_MAX];
	unsigned n_mon;
	struct sent sent[MON_MAX];
	unsigned n_sent;
	struct pair pairs[PAIRS_MAX];
	struct prep *waiting;
	_Atomic unsigned pairs_started; /* a monitor pass that saw it change ends no session */
	unsigned idle_ticks;
	struct down down[DOWN_MAX];
	unsigned mon_pairs_started;
};

uint64_t cd__ft_mono_ms(void);
/* Frees f once it is stopping, no worker runs and its timer has closed. */
void cd__ft_maybe_free(struct cd_ftd *f);
/* VmkVmFtStatus: role and phase ("" when the vmx runs no FT, or there is no vmx); error
 * may be NULL. Blocks: workers only. */
void cd__ft_status(const char *sock, const char *uuid, char *role, size_t rsize, char *phase,
		   size_t psize, char *error, size_t esize);
/* An FT session the vmx still has: anything but off. */
bool cd__ft_active_phase(const char *phase);
/* VmkVmFtStop; 0 or an error (error may be NULL). Blocks: workers only. */
int cd__ft_stop(const char *sock, const char *uuid, char *error, size_t esize);

/* ft_prepare.c: prepares waiting for their pairing go, or give up at their deadline; at
 * the stop, every waiting one is answered "clusterd is stopping". */
void cd__ft_prep_tick(struct cd_ftd *f);
void cd__ft_prep_cancel(struct cd_ftd *f);

#endif
