/*
 * keel — the operator's command-line tool. Contracts shared by the files of this folder.
 *
 * A run: main() walks the command tree (noun, verb, sub-verb) by name, reading the global
 * options wherever they appear; the leaf's arguments are checked against its option table
 * into a struct kc_call; the leaf builds one VmkRequest (proto/vmk.proto) and hands it to
 * kc_rpc(), which sends it through the transport and reports any failure; the leaf then
 * prints the reply as aligned text or, with --json, as one JSON object. Every command
 * returns an exit code from enum kc_exit.
 *
 * Symbols shared between these files carry the kc_ prefix; statics have none. keel is
 * single-threaded; nothing here is meant to be called from two threads.
 */
#ifndef KEEL_CLI_H
#define KEEL_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lib/err.h"
#include "vim.pb-c.h"
#include "vmk.pb-c.h"

/* Exit codes; documented in `keel --help` and docs/keel-cli.md. */
enum kc_exit {
	KC_EXIT_OK = 0,		 /* the operation succeeded */
	KC_EXIT_FAILED = 1,	 /* vmkernel refused or failed the operation (reply code != 0) */
	KC_EXIT_USAGE = 2,	 /* bad command line */
	KC_EXIT_UNREACHABLE = 3, /* vmkernel could not be reached, or did not answer in time */
	KC_EXIT_PROTO = 4,	 /* vmkernel answered with something that is not a VmkReply */
};

#define KC_DEFAULT_SOCKET  "/var/lib/keel/vmkernel.sock"
#define KC_DEFAULT_TIMEOUT 300 /* seconds to wait for a reply */

/* ---- transports (transport.c) ---------------------------------------------------------- */

/*
 * How keel reaches a host. The local transport speaks the Vmk* protocol to vmkernel's
 * control socket; a remote transport (through hostd) slots in behind the same calls.
 */
struct kc_transport {
	const char *kind;   /* "local" */
	const char *target; /* what it talks to, for messages (the socket path) */
	/* Sends req and waits for its one reply. 0 and *reply (caller frees with
	 * kc_reply_free) when a reply arrived, whatever its code; otherwise
	 * KC_EXIT_UNREACHABLE or KC_EXIT_PROTO, with the reason in err and the -errno or
	 * Keel code behind it in *code. */
	int (*call)(struct kc_transport *t, const Keel__Vmk__VmkRequest *req,
		    Keel__Vmk__VmkReply **reply, int *code, struct kb_errmsg *err);
	/* Opens a byte stream to the console of vm (as vmkernel described it): guest output
	 * arrives on it, bytes written to it go to the guest. 0 and *fd (caller closes), or
	 * KC_EXIT_FAILED with the reason in err. */
	int (*console_open)(struct kc_transport *t, const Keel__Vmk__VmInfo *vm, int *fd,
			    struct kb_errmsg *err);
	void (*destroy)(struct kc_transport *t);
};

/* The transport to vmkernel's control socket at path (borrowed for the transport's life).
 * timeout_ms bounds the wait for each reply (0: wait forever). 0 or -ENOMEM. */
int kc_transport_local_create(const char *path, uint64_t timeout_ms, struct kc_transport **out);
void kc_reply_free(Keel__Vmk__VmkReply *reply);

/* ---- context, calls, errors (main.c, rpc.c) --------------------------------------------- */

struct kc_ctx {
	bool json;		 /* --json */
	const char *socket;	 /* --socket, else $KEEL_SOCKET, else KC_DEFAULT_SOCKET */
	uint64_t timeout_ms;	 /* --timeout */
	struct kc_transport *tr; /* made on the first request */
	const char *server;	 /* --server URL, else $KEEL_SERVER, else NULL (api.c) */
	bool server_env;	 /* server came from $KEEL_SERVER */
	bool local;		 /* --local: the socket even when a server is known */
};

/*
 * Sends req to vmkernel. When the transport worked and the reply's code is 0, returns
 * KC_EXIT_OK and *reply (caller frees with kc_reply_free). Otherwise reports the failure
 * (`keel: ...` on stderr, and the JSON error object under --json), returns the exit code
 * and leaves *reply NULL.
 */
int kc_rpc(struct kc_ctx *ctx, Keel__Vmk__VmkRequest *req, Keel__Vmk__VmkReply **reply);

/* Reports a failure: `keel: <message>` on stderr and, under --json, the error object on
 * stdout. code is the Keel or -errno code behind it (0 if none). Returns exit. */
int kc_fail(struct kc_ctx *ctx, int exit, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* ---- command tree and arguments (args.c) ------------------------------------------------ */

struct kc_opt {
	const char *name; /* long name without the dashes */
	const char *arg;  /* placeholder of its value, or NULL for a flag */
	const char *help;
	int id;	     /* > 0, chosen by the command */
	bool repeat; /* may be given more than once */
};

struct kc_call;
struct kc_cmd {
	const char *name;
	const char *args; /* synopsis of the positional arguments, or NULL */
	const char *summary;
	const char *detail; /* more text for --help, or NULL */
	int min_pos, max_pos;
	const struct kc_opt *opts;	  /* ended by an entry with name NULL; may be NULL */
	const struct kc_cmd *const *subs; /* a noun's commands, NULL-terminated; or NULL */
	int (*run)(struct kc_ctx *ctx, const struct kc_call *call);
	bool api; /* works through hostd's API: accepts --server (api.c) */
};

#define KC_MAX_POS  8
#define KC_MAX_OPTS 64

struct kc_call_opt {
	int id;
	const char *val; /* NULL for a flag */
};

/* A leaf's parsed arguments, in command-line order. Strings are borrowed from argv. */
struct kc_call {
	const struct kc_cmd *cmd;
	const char *path; /* "keel vm create" */
	int npos;
	const char *pos[KC_MAX_POS];
	int nopts;
	struct kc_call_opt opts[KC_MAX_OPTS];
};

/* If argv[*i] is a global option (with its value in argv[*i + 1] or after '='), applies it
 * to ctx and advances *i past it: 1. Not a global option: 0. A bad value: reports it and
 * returns -1. */
int kc_global_opt(struct kc_ctx *ctx, int argc, char **argv, int *i);
/* Parses a leaf's arguments argv[0..argc) into call. KC_EXIT_OK, or KC_EXIT_USAGE after
 * reporting the mistake; *help is set when --help was asked for (nothing else checked). */
int kc_args_parse(struct kc_ctx *ctx, const struct kc_cmd *cmd, const char *path, int argc,
		  char **argv, struct kc_call *call, bool *help);
/* Prints the help of cmd (a noun or a leaf) reached as path. */
void kc_help(const struct kc_cmd *cmd, const char *path, FILE *f);
/* Reports a usage mistake of call and points at its --help. Returns KC_EXIT_USAGE. */
int kc_usage(struct kc_ctx *ctx, const struct kc_call *call, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The value of the last occurrence of option id, or NULL; kc_has: whether it was given. */
const char *kc_opt(const struct kc_call *call, int id);
bool kc_has(const struct kc_call *call, int id);

/* ---- value parsers (parse.c) -------------------------------------------------------------
 * 0 or -EINVAL (not a number of that form) or -ERANGE (outside [min, max]). */
int kc_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);
/* A size in MiB: "512", "512M", "512MiB", "2G", "2GiB", "1T", "1TiB" (case-insensitive). */
int kc_parse_mib(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* Seconds with an optional fraction ("2", "0.5"), into milliseconds. */
int kc_parse_seconds(const char *s, uint64_t *ms);
/* Six hex byte pairs separated by ':'. */
bool kc_valid_mac(const char *s);
/* path made absolute against the current directory (symlinks are kept), into out.
 * 0 or -ENAMETOOLONG / -errno. */
int kc_abs_path(const char *path, char *out, size_t size);

/* ---- human output (format.c, table.c) --------------------------------------------------- */

/* "512 MiB", "1.5 GiB", "2 TiB"; out of at least 32 bytes. Returns out. */
char *kc_fmt_bytes(uint64_t bytes, char *out, size_t size);
/* "45s", "12m 03s", "3h 04m", "2d 03h"; "-" for 0. */
char *kc_fmt_duration_ms(uint64_t ms, char *out, size_t size);
/* "2400 MHz", "12.5 MHz". */
char *kc_fmt_mhz(double mhz, char *out, size_t size);
/* "powered on", "powered off", "suspended"; other states as given. */
const char *kc_fmt_power_state(const char *state);
/* Copies s into out with terminal control characters replaced by '?', so names from the
 * host cannot drive the operator's terminal. Returns out. */
char *kc_clean(const char *s, char *out, size_t size);
/* Prints "Key:            value" with the keys of a block aligned; value is cleaned. */
void kc_kv(FILE *f, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#define KC_TABLE_MAX_COLS 10

/* A text table: columns separated by two spaces, each as wide as its widest cell. */
struct kc_table {
	int ncols;
	const char *head[KC_TABLE_MAX_COLS];
	bool right[KC_TABLE_MAX_COLS]; /* right-aligned (numbers) */
	size_t nrows, cap;
	char **cells; /* nrows * ncols, owned */
	int err;      /* the first allocation failure; rows after it are dropped */
};

/* align: one letter per column, 'l' or 'r'. heads: ncols titles (borrowed). */
void kc_table_init(struct kc_table *t, int ncols, const char *const *heads, const char *align);
/* Appends a row of ncols strings (copied, cleaned). 0 or -ENOMEM. */
int kc_table_add(struct kc_table *t, const char *const *cells);
/* Prints the table, or reports -ENOMEM. Returns KC_EXIT_OK or KC_EXIT_FAILED. */
int kc_table_print(struct kc_table *t, struct kc_ctx *ctx, FILE *f);
void kc_table_close(struct kc_table *t);

/* ---- JSON output (json.c, reply_json.c) ------------------------------------------------- */

#define KC_JSON_MAX_DEPTH 16

/* A streaming JSON writer: compact output, strings escaped as RFC 8259 requires, invalid
 * UTF-8 replaced by U+FFFD. key is NULL for array elements and the top-level value. */
struct kc_json {
	FILE *f;
	int depth;
	bool first[KC_JSON_MAX_DEPTH];
};

void kc_json_init(struct kc_json *j, FILE *f);
void kc_json_obj_begin(struct kc_json *j, const char *key);
void kc_json_obj_end(struct kc_json *j);
void kc_json_arr_begin(struct kc_json *j, const char *key);
void kc_json_arr_end(struct kc_json *j);
void kc_json_str(struct kc_json *j, const char *key, const char *s);
void kc_json_strn(struct kc_json *j, const char *key, const void *p, size_t n);
void kc_json_u64(struct kc_json *j, const char *key, uint64_t v);
void kc_json_i64(struct kc_json *j, const char *key, int64_t v);
void kc_json_bool(struct kc_json *j, const char *key, bool v);
void kc_json_double(struct kc_json *j, const char *key, double v);
void kc_json_null(struct kc_json *j, const char *key);
/* Ends the document with a newline and flushes. */
void kc_json_finish(struct kc_json *j);

/* Which repeated or optional parts of a reply a command always shows, even when empty. */
enum {
	KC_R_VMS = 1 << 0,
	KC_R_DATASTORES = 1 << 1,
	KC_R_HOST = 1 << 2,
	KC_R_LOG = 1 << 3,
	KC_R_CONSOLE = 1 << 4,
	KC_R_VSWITCHES = 1 << 5,
	KC_R_PORTGROUPS = 1 << 6,
	KC_R_VMKNICS = 1 << 7,
	KC_R_NETSTACKS = 1 << 8,
};

/* Prints a successful reply as one JSON object on stdout: {"ok":true,"code":0, then every
 * field of the VmkReply under its proto name that is set or named in always}. */
void kc_reply_json(const Keel__Vmk__VmkReply *rp, unsigned always);

/* Writes every field of m (defaults included, absent messages as null) into the open JSON
 * object, under its proto name; a field named skip (or NULL) is left out. */
void kc_message_json_fields(struct kc_json *j, const ProtobufCMessage *m, const char *skip);

/* ---- hostd's API (api.c, session_cache.c) ------------------------------------------------
 * Commands marked .api reach hostd through libkeel with the session `keel login` cached in
 * $KEEL_CONFIG_DIR (else ~/.keel)/sessions/<host_port>. */

struct kl_client;
struct kl_status;

#define KC_URL_MAX   300
#define KC_TOKEN_MAX 257
#define KC_TP_MAX    100

/* A cached session (one file per server; format in session_cache.c). */
struct kc_session {
	char url[KC_URL_MAX];
	char user[128];
	char token[KC_TOKEN_MAX];
	char ca_file[4096];	    /* absolute, or "" */
	char thumbprint[KC_TP_MAX]; /* or "" */
};

/* The cache file of server url into out. 0, or -ENAMETOOLONG / -ENOENT (no home). */
int kc_session_path(const char *url, char *out, size_t size);
/* 0 and *s; -ENOENT (not logged in), -EBADMSG (a damaged file), -errno. */
int kc_session_load(const char *url, struct kc_session *s);
/* Writes s atomically (directories 0700, file 0600). 0 or -errno. */
int kc_session_save(const struct kc_session *s);
/* Removes the file of url. 0, -ENOENT or -errno. */
int kc_session_remove(const char *url);

/* The server URL of an .api command: ctx->server without a trailing '/'. NULL (after a
 * usage error was reported) if there is none. */
const char *kc_api_server(struct kc_ctx *ctx, const struct kc_call *call, char *out, size_t size);
/* Opens a client to ctx->server with its cached session (trust settings and token).
 * KC_EXIT_OK and *out (caller frees with kl_client_destroy), or reports why not. */
int kc_api_open(struct kc_ctx *ctx, const struct kc_call *call, struct kl_client **out);
/* Whether this run talks to hostd's API: a server is known (--server or $KEEL_SERVER) and
 * --local was not given. Commands marked .api that also work locally branch on it. */
bool kc_api_wanted(const struct kc_ctx *ctx);
/* Opens a client (kc_api_open) and makes one call of method. KC_EXIT_OK and *reply (caller
 * frees with protobuf_c_message_free_unpacked), or reports the failure and returns its
 * exit code. */
int kc_api_call(struct kc_ctx *ctx, const struct kc_call *call, const char *method,
		const ProtobufCMessage *req, const ProtobufCMessageDescriptor *desc,
		ProtobufCMessage **reply);
/* Prints a successful answer under --json: {"ok":true,"code":0, then every field of m
 * under its proto name (skip left out, may be NULL)}. */
void kc_api_json(const ProtobufCMessage *m, const char *skip);
/* Reports a failed API call (what: "login to URL failed", or NULL) and returns its exit
 * code: transport and TLS → KC_EXIT_UNREACHABLE, malformed → KC_EXIT_PROTO, a status from
 * hostd → KC_EXIT_FAILED (UNAUTHENTICATED with a session: "log in again"). */
int kc_api_fail(struct kc_ctx *ctx, const char *url, bool with_session, const char *what,
		const struct kl_status *st);

/* A new password for user (login.c): the first line of file, else asked twice on the
 * terminal without echo; never from the command line. KC_EXIT_OK, or the failure
 * reported (no file and no terminal: a usage error). */
int kc_read_new_password(struct kc_ctx *ctx, const struct kc_call *call, const char *file,
			 const char *user, char *pw, size_t size);

/* ---- tasks through the API (task.c) ------------------------------------------------------
 * A VM or cluster method answers with a Task at once; keel follows it with WaitForTask. */

#define KC_O_NO_WAIT 100 /* option id of --no-wait, the same in every command that has it */
#define KC_OPT_NO_WAIT                                                                    \
	{                                                                                 \
		"no-wait", NULL, "through the API: print the task id and return at once", \
		    KC_O_NO_WAIT, false                                                   \
	}

/*
 * Follows *task (as a method answered it; owned, replaced as newer states arrive, caller
 * frees the last one with keel__vim__task__free_unpacked) with WaitForTask on c until it
 * ends, or --timeout passes. While it runs, a one-line progress indicator (id, kind,
 * state, progress, seconds) is redrawn on stderr when stdout and stderr are terminals and
 * --json was not given; it is erased at the end. KC_EXIT_OK when the task ended (in any
 * state: see kc_task_outcome); else the failure is reported: an API failure as
 * kc_api_fail, --timeout passing as KC_EXIT_UNREACHABLE.
 */
int kc_task_follow(struct kc_ctx *ctx, struct kl_client *c, const char *url,
		   Keel__Vim__Task **task);
/*
 * The end of a command that ran a task. A task in success: prints done (text) or the Task
 * (--json: "ok", "code", then its fields) and returns KC_EXIT_OK. In error or cancelled:
 * `keel: <its error> (task-N, Kind)` on stderr, under --json the Task as the error object
 * ("ok":false, "code" 2 UNKNOWN or 1 CANCELLED, its fields, "error" being the task's,
 * "exit_code"), and KC_EXIT_FAILED. done may be NULL ("task-N Kind: success"); it is
 * printed as it is, so whoever made it cleaned what came from the host (kc_clean).
 */
int kc_task_outcome(struct kc_ctx *ctx, const Keel__Vim__Task *task, const char *done);
/*
 * Starts a task-returning method and sees it through: calls method with req on a client
 * of the cached session; with --no-wait prints the task id (--json: the Task) and returns;
 * else follows it (kc_task_follow). When it ended in success and done_cb is given, done_cb
 * writes the text outcome into done (it may call c again, e.g. RetrieveInventory); then
 * kc_task_outcome. Returns the exit code.
 */
typedef void (*kc_task_done_cb)(struct kl_client *c, const Keel__Vim__Task *task, void *arg,
				char *done, size_t size);
int kc_task_run(struct kc_ctx *ctx, const struct kc_call *call, const char *method,
		const ProtobufCMessage *req, kc_task_done_cb done_cb, void *arg);

/* ---- commands (one file per noun) ------------------------------------------------------- */

extern const struct kc_cmd kc_vm_cmd, kc_datastore_cmd, kc_host_cmd, kc_network_cmd;
/* Nouns of `keel network` defined outside network.c (network_vmknic.c). */
extern const struct kc_cmd kc_network_vmknic_cmd, kc_network_netstack_cmd;
/* host_config.c: one file of this host's config store through vmkernel's socket (the
 * services' settings: syslog.conf, ntp.conf, snmp.conf). KC_EXIT_OK with *found (false: no
 * such file), its contents appended to b and its generation; or the failure reported. */
struct kb_buf;
int kc_store_get(struct kc_ctx *ctx, const char *path, bool *found, struct kb_buf *b,
		 uint64_t *generation);
extern const struct kc_cmd kc_host_syslog_cmd; /* host_syslog.c: `keel host syslog` */
extern const struct kc_cmd kc_host_snmp_cmd; /* host_snmp.c: `keel host snmp` */
extern const struct kc_cmd kc_host_ntp_cmd;    /* host_ntp.c: `keel host ntp` */
extern const struct kc_cmd kc_host_top_cmd;    /* host_top.c: `keel host top` */
extern const struct kc_cmd kc_host_worlds_cmd; /* host_worlds.c: `keel host worlds` */
extern const struct kc_cmd kc_cluster_cmd; /* cluster.c: talks to clusterd, not vmkernel */
extern const struct kc_cmd kc_cluster_ha_cmd; /* cluster_ha.c: `keel cluster ha` */
extern const struct kc_cmd kc_cluster_rule_cmd, kc_cluster_drs_cmd; /* cluster_drs.c */
/* cluster.c: one ClusterRequest to clusterd's socket (--cluster-socket is option id 1) and
 * its reply: KC_EXIT_OK and *out (caller frees), or the failure reported and its exit code. */
struct Keel__Cluster__ClusterRequest;
struct Keel__Cluster__ClusterReply;
int kc_cluster_call(struct kc_ctx *ctx, const struct kc_call *call,
		    const struct Keel__Cluster__ClusterRequest *rq,
		    struct Keel__Cluster__ClusterReply **out);
extern const struct kc_cmd kc_lab_cmd;	   /* lab_fault.c: runs locally, not through vmkernel */
/* login.c, inventory.c, task.c: through hostd's API only. */
extern const struct kc_cmd kc_login_cmd, kc_logout_cmd, kc_inventory_cmd, kc_session_cmd,
    kc_task_cmd;
extern const struct kc_cmd kc_user_cmd, kc_role_cmd, kc_perm_cmd, kc_event_cmd; /* API only */
extern const struct kc_cmd kc_cert_cmd; /* cert.c: local, needs the cluster CA's key */
extern const struct kc_cmd kc_file_cmd; /* file.c: datastore and host files, API only */
/* Leaves of `keel vm` defined outside vm.c (vm_create.c, vm_ops.c, console.c). */
extern const struct kc_cmd kc_vm_create_cmd, kc_vm_reconfigure_cmd, kc_vm_console_cmd;
extern const struct kc_cmd kc_vm_power_on_cmd, kc_vm_power_off_cmd, kc_vm_reset_cmd,
    kc_vm_suspend_cmd, kc_vm_resume_cmd, kc_vm_destroy_cmd, kc_vm_unregister_cmd,
    kc_vm_register_cmd;
extern const struct kc_cmd kc_vm_monitor_cmd; /* vm_monitor.c */
extern const struct kc_cmd kc_vm_migrate_cmd; /* vm_migrate.c: through clusterd or the API */

/* vm_api.c: `keel vm` through hostd's API (VmSpec is the API's; spec the local one the
 * options were parsed into: what the API cannot carry is refused as a usage error). */
int kc_vm_api_list(struct kc_ctx *ctx, const struct kc_call *call);
int kc_vm_api_create(struct kc_ctx *ctx, const struct kc_call *call, const Keel__Vmk__VmSpec *spec);
/* op: the command's name ("power-on", ..., "register"); done: "Powered on". */
int kc_vm_api_op(struct kc_ctx *ctx, const struct kc_call *call, const char *op, const char *done);

/* cluster_api.c: `keel cluster status|events|join-token` through hostd's API. since and
 * limit, ttl_s: the parsed options. */
int kc_cluster_api_status(struct kc_ctx *ctx, const struct kc_call *call);
int kc_cluster_api_events(struct kc_ctx *ctx, const struct kc_call *call, uint64_t since,
			  uint32_t limit);
int kc_cluster_api_token(struct kc_ctx *ctx, const struct kc_call *call, uint32_t ttl_s);

#endif
