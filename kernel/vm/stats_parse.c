/*
 * The parsers of host monitoring (kernel/vm/stats.h): the /proc, cgroup and sysfs files a
 * sample reads, and the rate math. Pure functions over text already read; every one checks
 * the form and answers -EINVAL rather than guessing.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/vm/stats.h"
#include "lib/time.h"

/* A decimal number at *p (no sign), advancing *p past it. */
static int number(const char **p, uint64_t *out)
{
	const char *s = *p;
	uint64_t v = 0;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		if (v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*p = s;
	*out = v;
	return 0;
}

static const char *skip_blank(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static bool at_end(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	return *s == '\0';
}

int vmk_stats_parse_schedstat(const char *text, uint64_t *run_ns, uint64_t *wait_ns)
{
	const char *p = skip_blank(text);
	uint64_t run, wait, slices;

	if (number(&p, &run) < 0)
		return -EINVAL;
	p = skip_blank(p);
	if (number(&p, &wait) < 0)
		return -EINVAL;
	p = skip_blank(p);
	if (number(&p, &slices) < 0 || !at_end(p))
		return -EINVAL;
	*run_ns = run;
	*wait_ns = wait;
	return 0;
}

int vmk_stats_parse_keyed(const char *text, const char *key, uint64_t *out)
{
	size_t klen = strlen(key);
	const char *line = text;

	if (klen == 0)
		return -EINVAL;
	while (*line) {
		const char *nl = strchr(line, '\n');
		const char *end = nl ? nl : line + strlen(line);

		if ((size_t)(end - line) > klen && strncmp(line, key, klen) == 0 &&
		    (line[klen] == ' ' || line[klen] == ':' || line[klen] == '\t')) {
			const char *p = line + klen;
			uint64_t v;

			if (*p == ':')
				p++;
			p = skip_blank(p);
			if (number(&p, &v) < 0)
				return -EINVAL;
			p = skip_blank(p);
			if (p != end)
				return -EINVAL;
			*out = v;
			return 0;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return -ENOENT;
}

int vmk_stats_parse_u64(const char *text, uint64_t *out)
{
	const char *p = skip_blank(text);
	uint64_t v;

	if (number(&p, &v) < 0 || !at_end(p))
		return -EINVAL;
	*out = v;
	return 0;
}

int vmk_stats_parse_start(const char *text, uint64_t *start)
{
	/* The command may hold spaces and parentheses: fields resume after the last ')'. */
	const char *p = strrchr(text, ')');
	uint64_t v;

	if (!p || !strchr(text, '('))
		return -EINVAL;
	p++;
	/* Field 3 (state) is the first after it; field 22 is the 20th from there. */
	for (int field = 3; field < 22; field++) {
		p = skip_blank(p);
		if (*p == '\0' || *p == '\n')
			return -EINVAL;
		while (*p && *p != ' ' && *p != '\n')
			p++;
	}
	p = skip_blank(p);
	if (number(&p, &v) < 0)
		return -EINVAL;
	*start = v;
	return 0;
}

int vmk_stats_parse_statm_rss(const char *text, uint64_t *pages)
{
	const char *p = skip_blank(text);
	uint64_t size, rss;

	if (number(&p, &size) < 0)
		return -EINVAL;
	p = skip_blank(p);
	if (number(&p, &rss) < 0)
		return -EINVAL;
	*pages = rss;
	return 0;
}

int vmk_stats_parse_lock_holder(const char *text, unsigned major, unsigned minor, uint64_t ino,
				pid_t *pid)
{
	const char *line = text;

	/* "1: FLOCK  ADVISORY  WRITE 1234 fd:01:5678 0 EOF"; blocked waiters ("1: -> FLOCK
	 * ...") are not holders. Device numbers are hex. */
	while (*line) {
		const char *nl = strchr(line, '\n');
		char kind[16], adv[16], mode[16], dev[64];
		unsigned maj, min;
		unsigned long long i;
		long p;

		if (strstr(line, "->") == NULL || (nl && strstr(line, "->") > nl)) {
			if (sscanf(line, "%*[0-9]: %15s %15s %15s %ld %63s", kind, adv, mode, &p,
				   dev) == 5 &&
			    sscanf(dev, "%x:%x:%llu", &maj, &min, &i) == 3 && maj == major &&
			    min == minor && i == ino && p > 0) {
				*pid = (pid_t)p;
				return 0;
			}
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return -ENOENT;
}

int vmk_stats_parse_netdev(const char *text, const char *ifname, struct vmk_stats_netdev *out)
{
	size_t len = strlen(ifname);
	const char *line = text;

	/* Two header lines, then "  NAME: rx_bytes rx_packets errs drop fifo frame compressed
	 * multicast tx_bytes tx_packets ...". */
	while (*line) {
		const char *nl = strchr(line, '\n');
		const char *p = skip_blank(line);
		uint64_t v[10];

		if (len && strncmp(p, ifname, len) == 0 && p[len] == ':') {
			p += len + 1;
			for (int i = 0; i < 10; i++) {
				p = skip_blank(p);
				if (number(&p, &v[i]) < 0)
					return -EINVAL;
			}
			out->rx_bytes = v[0];
			out->rx_packets = v[1];
			out->tx_bytes = v[8];
			out->tx_packets = v[9];
			return 0;
		}
		if (!nl)
			break;
		line = nl + 1;
	}
	return -ENOENT;
}

double vmk_stats_rate(uint64_t prev, uint64_t cur, uint64_t dt_ns)
{
	if (dt_ns == 0 || cur < prev)
		return 0;
	return (double)(cur - prev) * (double)KB_NSEC_PER_SEC / (double)dt_ns;
}

double vmk_stats_pct(uint64_t prev_ns, uint64_t cur_ns, uint64_t dt_ns)
{
	if (dt_ns == 0 || cur_ns < prev_ns)
		return 0;
	return (double)(cur_ns - prev_ns) * 100.0 / (double)dt_ns;
}

bool vmk_stats_vcpu_thread(const char *comm, uint32_t *id)
{
	const char *p = comm;
	uint64_t v;

	if (strncmp(p, "vcpu", 4) != 0)
		return false;
	p += 4;
	if (number(&p, &v) < 0 || !at_end(p) || v > UINT32_MAX)
		return false;
	*id = (uint32_t)v;
	return true;
}
