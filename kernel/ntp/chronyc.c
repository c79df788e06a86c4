/*
 * chrony's status: running `chronyc -n -c` and the checked parsers of its CSV output
 * (docs/ntp.md), and vmntpd's status file as clusterd reads it.
 *
 * `chronyc -n -c tracking` prints one line of 14 fields:
 *   REFID(hex),REFADDR,STRATUM,REFTIME,SYSTEM_TIME,LAST_OFFSET,RMS_OFFSET,FREQ_PPM,
 *   RESID_FREQ_PPM,SKEW_PPM,ROOT_DELAY,ROOT_DISPERSION,UPDATE_INTERVAL,LEAP_STATUS
 * `chronyc -n -c sources` prints one line of 10 fields per source:
 *   MODE,STATE,ADDRESS,STRATUM,POLL,REACH(octal),LAST_RX(s; 4294967295 never),
 *   OFFSET,MEASURED_OFFSET,ERROR
 * Anything else (a missing or extra field, a number that does not parse, an over-long
 * name) is refused with the line and the field.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "kernel/ntp/ntp.h"
#include "lib/time.h"

#define FIELDS_MAX	16
#define CSV_LINE_MAX	1024
#define CHRONYC_WAIT_MS 4000

/* Splits line (modified) at commas into at most FIELDS_MAX fields. Returns the count, or
 * -1 when there are more. */
static int split(char *line, char **f)
{
	int n = 0;

	for (char *p = line;; p++) {
		if (n == FIELDS_MAX)
			return -1;
		f[n++] = p;
		p = strchr(p, ',');
		if (!p)
			break;
		*p = '\0';
	}
	return n;
}

static bool num(const char *s, double *out)
{
	char *end;

	if (s[0] == '\0')
		return false;
	errno = 0;
	*out = strtod(s, &end);
	return errno == 0 && *end == '\0' && isfinite(*out);
}

static bool uns(const char *s, int base, unsigned long max, unsigned long *out)
{
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, base);
	return errno == 0 && *end == '\0' && *out <= max;
}

static bool hex8(const char *s)
{
	if (strlen(s) != 8)
		return false;
	for (int i = 0; i < 8; i++)
		if (!strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	return true;
}

static bool name_ok(const char *s)
{
	if (strlen(s) > NTP_HOST_MAX)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s <= ' ' || (unsigned char)*s >= 0x7f)
			return false;
	return true;
}

int ntp_tracking_parse(const char *line, struct ntp_tracking *t, struct kb_errmsg *e)
{
	struct ntp_tracking v = {{0}};
	char buf[CSV_LINE_MAX], *f[FIELDS_MAX];
	double *d[] = {&v.ref_time,    &v.correction_s,	    &v.last_offset_s, &v.rms_offset_s,
		       &v.freq_ppm,    &v.resid_freq_ppm,   &v.skew_ppm,      &v.root_delay_s,
		       &v.root_disp_s, &v.update_interval_s};
	size_t n = strcspn(line, "\r\n");
	unsigned long st;
	int nf;

	if (n >= sizeof(buf)) {
		kb_errmsg_setf(e, "tracking: a line of %zu bytes", n);
		return KB_EPROTO;
	}
	memcpy(buf, line, n);
	buf[n] = '\0';
	nf = split(buf, f);
	if (nf != 14) {
		kb_errmsg_setf(e, "tracking: %d fields, want 14", nf);
		return KB_EPROTO;
	}
	if (!hex8(f[0])) {
		kb_errmsg_setf(e, "tracking: reference id '%s' is not 8 hex digits", f[0]);
		return KB_EPROTO;
	}
	memcpy(v.ref_id, f[0], 9);
	if (!name_ok(f[1])) {
		kb_errmsg_setf(e, "tracking: bad reference address");
		return KB_EPROTO;
	}
	snprintf(v.ref_name, sizeof(v.ref_name), "%s", f[1]);
	if (!uns(f[2], 10, 16, &st)) {
		kb_errmsg_setf(e, "tracking: stratum '%s' is not 0..16", f[2]);
		return KB_EPROTO;
	}
	v.stratum = (unsigned)st;
	for (int i = 0; i < 10; i++) {
		if (!num(f[3 + i], d[i])) {
			kb_errmsg_setf(e, "tracking: field %d '%s' is not a number", 4 + i,
				       f[3 + i]);
			return KB_EPROTO;
		}
	}
	/* the leap status has spaces ("Not synchronised"): printable ASCII */
	if (f[13][0] == '\0' || strlen(f[13]) >= sizeof(v.leap)) {
		kb_errmsg_setf(e, "tracking: bad leap status");
		return KB_EPROTO;
	}
	for (const char *p = f[13]; *p; p++) {
		if ((unsigned char)*p < ' ' || (unsigned char)*p >= 0x7f) {
			kb_errmsg_setf(e, "tracking: bad leap status");
			return KB_EPROTO;
		}
	}
	snprintf(v.leap, sizeof(v.leap), "%s", f[13]);
	if (fabs(v.correction_s) > 1e9) {
		kb_errmsg_setf(e, "tracking: system time offset out of range");
		return KB_EPROTO;
	}
	v.synced = strcmp(v.ref_id, "00000000") != 0 && v.stratum > 0 &&
		   strcmp(v.leap, "Not synchronised") != 0;
	v.offset_ns = (int64_t)llround(-v.correction_s * 1e9);
	*t = v;
	return 0;
}

const char *ntp_source_state_name(char state)
{
	switch (state) {
	case '*':
		return "synced";
	case '+':
		return "combined";
	case '-':
		return "not combined";
	case '?':
		return "unreachable";
	case 'x':
		return "falseticker";
	case '~':
		return "too variable";
	default:
		return "unknown";
	}
}

static int source_parse(char *line, unsigned no, struct ntp_source *out, struct kb_errmsg *e)
{
	struct ntp_source v = {0};
	char *f[FIELDS_MAX];
	unsigned long u;
	double poll;
	int nf = split(line, f);

	if (nf != 10) {
		kb_errmsg_setf(e, "sources line %u: %d fields, want 10", no, nf);
		return KB_EPROTO;
	}
	if (strlen(f[0]) != 1 || !strchr("^=#", f[0][0])) {
		kb_errmsg_setf(e, "sources line %u: mode '%s'", no, f[0]);
		return KB_EPROTO;
	}
	if (strlen(f[1]) != 1 || !strchr("*+-?x~", f[1][0])) {
		kb_errmsg_setf(e, "sources line %u: state '%s'", no, f[1]);
		return KB_EPROTO;
	}
	v.mode = f[0][0];
	v.state = f[1][0];
	if (f[2][0] == '\0' || !name_ok(f[2])) {
		kb_errmsg_setf(e, "sources line %u: bad address", no);
		return KB_EPROTO;
	}
	snprintf(v.name, sizeof(v.name), "%s", f[2]);
	if (!uns(f[3], 10, 16, &u)) {
		kb_errmsg_setf(e, "sources line %u: stratum '%s'", no, f[3]);
		return KB_EPROTO;
	}
	v.stratum = (unsigned)u;
	if (!num(f[4], &poll) || poll != floor(poll) || poll < -32 || poll > 32) {
		kb_errmsg_setf(e, "sources line %u: poll '%s'", no, f[4]);
		return KB_EPROTO;
	}
	v.poll = (int)poll;
	if (!uns(f[5], 8, 0377, &u)) {
		kb_errmsg_setf(e, "sources line %u: reach '%s'", no, f[5]);
		return KB_EPROTO;
	}
	v.reach = (unsigned)u;
	if (!uns(f[6], 10, 4294967295ul, &u)) {
		kb_errmsg_setf(e, "sources line %u: last rx '%s'", no, f[6]);
		return KB_EPROTO;
	}
	v.last_rx_s = u == 4294967295ul ? -1 : (int64_t)u;
	if (!num(f[7], &v.offset_s) || !num(f[8], &v.meas_offset_s) || !num(f[9], &v.error_s)) {
		kb_errmsg_setf(e, "sources line %u: an offset is not a number", no);
		return KB_EPROTO;
	}
	*out = v;
	return 0;
}

int ntp_sources_parse(const char *text, size_t len, struct ntp_source *out, size_t max, size_t *n,
		      struct kb_errmsg *e)
{
	char line[CSV_LINE_MAX];
	unsigned no = 0;
	size_t i = 0, k = 0;

	while (i < len) {
		const char *nl = memchr(text + i, '\n', len - i);
		size_t m = nl ? (size_t)(nl - (text + i)) : len - i;
		int rv;

		no++;
		if (m >= sizeof(line) || memchr(text + i, '\0', m)) {
			kb_errmsg_setf(e, "sources line %u: too long or not text", no);
			return KB_EPROTO;
		}
		memcpy(line, text + i, m);
		line[m] = '\0';
		i += m + 1;
		if (m > 0 && line[m - 1] == '\r')
			line[m - 1] = '\0';
		if (line[0] == '\0')
			continue;
		if (k == max) {
			kb_errmsg_setf(e, "sources: more than %zu", max);
			return KB_ETOOBIG;
		}
		rv = source_parse(line, no, &out[k], e);
		if (rv)
			return rv;
		k++;
	}
	*n = k;
	return 0;
}

int ntp_chronyc(const char *socket, const char *const *argv, struct kb_buf *out,
		struct kb_errmsg *e)
{
	const char *args[16];
	int po[2], pe[2], status = 0, rv = 0, n = 0;
	char err[256] = "";
	size_t err_len = 0;
	uint64_t deadline = kb_now_ns() + (uint64_t)CHRONYC_WAIT_MS * 1000000;
	pid_t pid;

	args[n++] = "chronyc";
	args[n++] = "-n";
	args[n++] = "-c";
	if (socket) {
		args[n++] = "-h";
		args[n++] = socket;
	}
	for (int i = 0; argv[i] && n < 15; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	if (pipe2(po, O_CLOEXEC))
		return -errno;
	if (pipe2(pe, O_CLOEXEC)) {
		rv = -errno;
		close(po[0]);
		close(po[1]);
		return rv;
	}
	pid = fork();
	if (pid < 0) {
		rv = -errno;
		close(po[0]);
		close(po[1]);
		close(pe[0]);
		close(pe[1]);
		return rv;
	}
	if (pid == 0) {
		int nul = open("/dev/null", O_RDONLY);

		if (nul >= 0)
			dup2(nul, 0);
		dup2(po[1], 1);
		dup2(pe[1], 2);
		execvp("chronyc", (char *const *)args);
		dprintf(2, "cannot run chronyc: %s\n", strerror(errno));
		_exit(127);
	}
	close(po[1]);
	close(pe[1]);
	for (int open_fds = 2; open_fds > 0;) {
		struct pollfd p[2] = {{.fd = po[0], .events = POLLIN},
				      {.fd = pe[0], .events = POLLIN}};
		uint64_t now = kb_now_ns();
		char chunk[4096];
		ssize_t r;

		if (now >= deadline) {
			rv = KB_ETIMEOUT;
			kill(pid, SIGKILL);
			break;
		}
		if (poll(p, 2, (int)((deadline - now) / 1000000) + 1) < 0) {
			if (errno == EINTR)
				continue;
			rv = -errno;
			kill(pid, SIGKILL);
			break;
		}
		for (int i = 0; i < 2; i++) {
			if (p[i].fd < 0 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			r = read(p[i].fd, chunk, sizeof(chunk));
			if (r <= 0) {
				if (i == 0)
					po[0] = -(po[0] + 1);
				else
					pe[0] = -(pe[0] + 1);
				open_fds--;
				close(p[i].fd);
				continue;
			}
			if (i == 0) {
				if (rv == 0 && kb_buf_append(out, chunk, (size_t)r) < 0)
					rv = -ENOMEM;
			} else if (err_len + 1 < sizeof(err)) {
				size_t c = (size_t)r < sizeof(err) - 1 - err_len
					       ? (size_t)r
					       : sizeof(err) - 1 - err_len;
				memcpy(err + err_len, chunk, c);
				err_len += c;
				err[err_len] = '\0';
			}
		}
	}
	if (po[0] >= 0)
		close(po[0]);
	if (pe[0] >= 0)
		close(pe[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	err[strcspn(err, "\n")] = '\0';
	if (rv == KB_ETIMEOUT) {
		kb_errmsg_setf(e, "chronyc %s: no answer within %d ms", argv[0], CHRONYC_WAIT_MS);
		return rv;
	}
	if (rv)
		return rv;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		kb_errmsg_setf(e, "chronyc %s: %s", argv[0],
			       err[0] ? err : "failed (is chronyd running?)");
		return KB_ESTATE;
	}
	return 0;
}

int ntp_status_read(const char *state_dir, struct ntp_status_brief *out)
{
	char path[4096], line[512];
	struct ntp_status_brief v = {0};
	bool have_offset = false, have_time = false;
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", state_dir, NTP_STATUS_FILE);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		long long ll;
		unsigned long long ull;
		int yes;

		if (sscanf(line, "offset_ns = %lld", &ll) == 1) {
			v.offset_ns = ll;
			have_offset = true;
		} else if (sscanf(line, "time_ns = %llu", &ull) == 1) {
			v.time_ns = ull;
			have_time = true;
		} else if (sscanf(line, "synced = %d", &yes) == 1) {
			v.synced = yes != 0;
		}
	}
	fclose(f);
	if (!have_offset || !have_time)
		return KB_EPROTO;
	*out = v;
	return 0;
}
