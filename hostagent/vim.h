/*
 * The keel.vim.Vim handlers' shared state (hostd's server data) and their entry points
 * (docs/hostd.md, "Methods").
 *
 * Sessions: Login checks the password on a worker thread (a yescrypt hash takes tens of
 * milliseconds; the loop keeps serving) and opens a session whose token the client sends
 * as "x-keel-session" on every other call; hd_vim_authorize() finds the session and
 * checks the caller's privilege on an entity. The user database lives in the config store as
 * etc/keel/auth.db, DIR/auth.db its copy (hostagent/auth.h, auth_cfg.h); at first start it is
 * made with the root user, whose password comes from --root-password-file, else is generated
 * into DIR/root-password (0600).
 *
 * Backends: vmkernel (DIR/vmkernel.sock) and clusterd (DIR/clusterd.sock), called with
 * blocking framed requests on libuv's worker threads.
 *
 * Threads: handlers and everything touching the database and sessions run on the loop.
 */
#ifndef HD_VIM_H
#define HD_VIM_H

#include <limits.h>
#include <stdint.h>
#include <uv.h>

#include "hostagent/auth.h"
#include "hostagent/grpc.h"
#include "lib/err.h"
#include "lib/log.h"

#define HD_SESSION_HEADER "x-keel-session"

struct hd_vim {
	uv_loop_t *loop;
	struct kb_logger *log;
	char state_dir[PATH_MAX];
	char auth_path[PATH_MAX + 16];
	char vmk_sock[PATH_MAX + 32];
	char cd_sock[PATH_MAX + 32];
	uint64_t host_id; /* DIR/clusterd.id */
	struct hostd_auth_db *db; /* replaced whole by hd_vim_auth_db_replace() */
	struct hostd_auth_sessions *sessions;
	struct hostd_auth_ratelimit *rl;
	uv_timer_t expire_timer;
	char dummy_hash[HOSTD_AUTH_HASH_MAX]; /* a hash of a random password (Login) */
	struct hd_auth_sync *sync;	      /* hostagent/auth_sync.h */
};

/* Loads or makes the user database (the store's etc/keel/auth.db), the sessions and the rate limiter. root_password_file may
 * be NULL. 0 or an error with e set. */
int hd_vim_init(struct hd_vim *v, uv_loop_t *loop, struct kb_logger *log, const char *state_dir,
		const char *root_password_file, struct kb_errmsg *e);
void hd_vim_close(struct hd_vim *v);
/* Sessions idle for seconds (> 0) expire (default 30 minutes): replaces the session
 * table, so call it after hd_vim_init and before serving. 0 or -ENOMEM. Loop thread. */
int hd_vim_session_idle_set(struct hd_vim *v, unsigned seconds);

/* The user of call's session when it may use privilege on the entity path (ids from
 * "root" down); NULL after answering the call UNAUTHENTICATED or PERMISSION_DENIED. */
const char *hd_vim_authorize(struct hd_call *call, const char *const *path, size_t n,
			     const char *privilege);

/* One framed request to the daemon at the Unix socket path and its framed reply (at most
 * max bytes, waiting at most timeout_s for it; 0: no limit): the reply's bytes, which the
 * caller kb_free()s, or NULL when unreachable or cut short. Blocks: worker threads only
 * (backend.c). */
uint8_t *hd_backend_call(const char *path, const ProtobufCMessage *rq, unsigned timeout_s,
			 size_t max, size_t *len);

/* Handlers (vim_session.c, vim_inventory.c). */
void hd_vim_login(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_logout(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_current_session(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_retrieve_inventory(struct hd_call *call, const ProtobufCMessage *req);
/* vim_certlogin.c: LoginByCertificate (docs/hostd-certlogin.md). */
void hd_vim_login_by_certificate(struct hd_call *call, const ProtobufCMessage *req);

/* vim_ha.c: GetHaConfig, SetHaConfig, SetVmHa (docs/ha-settings.md). */
void hd_vim_get_ha_config(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_set_ha_config(struct hd_call *call, const ProtobufCMessage *req);
void hd_vim_set_vm_ha(struct hd_call *call, const ProtobufCMessage *req);

/* Replaces the live database with db (takes ownership) and ends the sessions of users
 * that db does not hold or whose password changed; frees the old one. Loop thread
 * (vim_session.c). */
void hd_vim_auth_db_replace(struct hd_vim *v, struct hostd_auth_db *db);
/* Puts the live database into the config store and writes its copy DIR/auth.db, then
 * DIR/auth.version, on a worker, in the order of the calls and of the API's changes (an
 * older text never overwrites a newer one); failures are logged. Loop thread (vim_users.c). */
void hd_vim_users_save(struct hd_vim *v);

/* Opens a session for user (who must exist) from the call's peer, logs "user U logged in
 * from ADDR (session K)" followed by how (may be ""), and answers call with the Session;
 * RESOURCE_EXHAUSTED when no session can be opened. Loop thread (vim_session.c). */
void hd_vim_session_start(struct hd_call *call, const char *user, const char *how);

#endif
