/*
 * libntp — the host's time service (docs/ntp.md): the configuration file
 * etc/keel/ntp.conf of vmkernel's config store, chrony's configuration made from it, and
 * the checked parsers of `chronyc -n -c tracking` and `chronyc -n -c sources`. vmntpd
 * (kernel/ntp/main.c) uses all of it; keel links it to check `keel host ntp set` with the
 * daemon's own parser and to read chrony's status; clusterd reads vmntpd's status file
 * with ntp_status_read().
 *
 * Nothing here keeps global state; every function may be called from any thread. Parsers
 * take untrusted text, check every field and its size, and refuse with a reason in the
 * errmsg, filling no output on error.
 */
#ifndef KEEL_NTP_H
#define KEEL_NTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lib/buf.h"
#include "lib/err.h"

#define NTP_CONF_PATH	   "etc/keel/ntp.conf" /* in vmkernel's config store */
#define NTP_CONF_MAX	   8192		       /* bytes of ntp.conf */
#define NTP_SERVERS_MAX	   8
#define NTP_HOST_MAX	   253
#define NTP_POLL_MIN	   (-6) /* chrony's minpoll/maxpoll range used here (log2 seconds) */
#define NTP_POLL_MAX	   10
#define NTP_SOURCES_MAX	   32
#define NTP_STATUS_FILE	   "vmntpd.status" /* in the state dir: written by vmntpd */
#define NTP_STATUS_MAX	   16384
#define NTP_DIR		   "ntp" /* the private chronyd's directory, in the state dir */
#define NTP_SOCK_NAME	   "chronyd.sock"
#define NTP_SYSTEM_SOURCES "/etc/chrony/sources.d/keel.sources"
#define NTP_SYSTEM_SOCK	   "/run/chrony/chronyd.sock"

enum ntp_mode {
	NTP_MODE_SYSTEM = 0,  /* the host's chronyd (sources.d), where the host may set the clock */
	NTP_MODE_PRIVATE = 1, /* a private `chronyd -x` that never touches the clock */
};

struct ntp_server {
	char host[NTP_HOST_MAX + 1]; /* a DNS name, a dotted-quad IPv4 or an IPv6 address */
	uint16_t port;		     /* 0: chrony's default (123) */
};

struct ntp_conf {
	struct ntp_server servers[NTP_SERVERS_MAX];
	size_t n_servers;
	int mode;      /* enum ntp_mode */
	bool poll_set; /* else chrony's default polling */
	int poll;      /* minpoll = maxpoll, NTP_POLL_MIN..NTP_POLL_MAX */
};

/* Parses HOST[:PORT] or [IPV6][:PORT] (untrusted) into *out. Errors: KB_ECONFIG with the
 * reason in e ("server 'x:0': the port must be a number 1..65535"). */
int ntp_server_parse(const char *s, struct ntp_server *out, struct kb_errmsg *e);

/* Formats a server as ntp_server_parse() reads it. */
void ntp_server_fmt(const struct ntp_server *s, char *out, size_t size);

/* Parses SERVER[,SERVER...] into c->servers (replacing them). KB_ECONFIG: an empty list or
 * item, a bad server, one given twice, more than NTP_SERVERS_MAX; c is unchanged then. */
int ntp_servers_parse_list(const char *list, struct ntp_conf *c, struct kb_errmsg *e);

/* Parses ntp.conf (len bytes, untrusted; at most NTP_CONF_MAX) into *out:
 *   server = HOST[:PORT]   (repeatable, 1..8)
 *   mode = system|private  (default system)
 *   poll = N               (-6..10; log2 seconds)
 * '#' comment lines and blank lines are ignored. KB_ECONFIG with "line N: ..." in e for
 * an unknown key, a key given twice (but server), a bad value, no server at all. */
int ntp_conf_parse(const char *text, size_t len, struct ntp_conf *out, struct kb_errmsg *e);

/* Appends the text of c, as ntp_conf_parse() reads it, to out. 0 or -ENOMEM. */
int ntp_conf_write(const struct ntp_conf *c, struct kb_buf *out);

const char *ntp_mode_name(int mode);

/* chrony's source lines for c: one `server HOST [port P] iburst [minpoll N maxpoll N]`
 * per server, appended to out. 0 or -ENOMEM. */
int ntp_chrony_sources(const struct ntp_conf *c, struct kb_buf *out);

/* The whole configuration of a private chronyd living in dir (absolute): its sources, no
 * NTP server port, no command port, the command socket, pid and drift files in dir. */
int ntp_chrony_private_conf(const struct ntp_conf *c, const char *dir, struct kb_buf *out);

/* ---- chronyc -c ----------------------------------------------------------------------- */

struct ntp_tracking {
	char ref_id[9];			 /* 8 hex digits; 00000000: none */
	char ref_name[NTP_HOST_MAX + 1]; /* the reference's address (-n), "" when none */
	unsigned stratum;
	double ref_time;     /* s since the epoch, of the last update */
	double correction_s; /* chrony's "System time": positive when the clock is slow */
	double last_offset_s;
	double rms_offset_s;
	double freq_ppm;
	double resid_freq_ppm;
	double skew_ppm;
	double root_delay_s;
	double root_disp_s;
	double update_interval_s;
	char leap[32]; /* Normal, Insert second, Delete second, Not synchronised */
	bool synced;   /* a reference is selected and the leap status is not "Not synchronised" */
	int64_t offset_ns; /* the clock's offset from NTP time: -correction (ahead > 0) */
};

/* Parses one line of `chronyc -n -c tracking` (untrusted). KB_EPROTO with the reason. */
int ntp_tracking_parse(const char *line, struct ntp_tracking *t, struct kb_errmsg *e);

struct ntp_source {
	char mode; /* ^ server, = peer, # reference clock */
	char
	    state; /* * synced, + combined, - not combined, ? unreachable, x falseticker, ~ too variable */
	char name[NTP_HOST_MAX + 1];
	unsigned stratum;
	int poll;
	unsigned reach;	   /* the reach register, 8 bits */
	int64_t last_rx_s; /* -1: never */
	double offset_s;   /* adjusted offset of the last sample */
	double meas_offset_s;
	double error_s;
};

/* Parses `chronyc -n -c sources` output (untrusted, several lines) into out (max
 * entries): *n receives the count. KB_EPROTO ("line N: ...") on a bad line, KB_ETOOBIG
 * for more than max sources. */
int ntp_sources_parse(const char *text, size_t len, struct ntp_source *out, size_t max, size_t *n,
		      struct kb_errmsg *e);

/* "synced", "combined", "not combined", "unreachable", "falseticker", "too variable". */
const char *ntp_source_state_name(char state);

/* Runs `chronyc -n -c [-h SOCKET] ARGS...` (argv NULL-terminated, at most 4 s) and
 * appends its standard output to out. socket NULL: chronyc's default. 0, or KB_ETIMEOUT,
 * -errno, KB_ESTATE when chronyc failed (its first line of error output in e). Blocks. */
int ntp_chronyc(const char *socket, const char *const *argv, struct kb_buf *out,
		struct kb_errmsg *e);

/* ---- vmntpd's status file --------------------------------------------------------------- */

/* DIR/vmntpd.status, rewritten by vmntpd after every look at chrony: `key = value` lines.
 * What clusterd needs of it: */
struct ntp_status_brief {
	bool synced;
	int64_t offset_ns; /* the clock's offset, test offset included (docs/ntp.md) */
	uint64_t time_ns;  /* when vmntpd wrote it (wall clock) */
};

/* Reads DIR/vmntpd.status. 0, -ENOENT, or KB_EPROTO when a needed key is missing. */
int ntp_status_read(const char *state_dir, struct ntp_status_brief *out);

#endif
