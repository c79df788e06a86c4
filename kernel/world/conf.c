/*
 * World definitions: the worlds.conf format (docs/worlds.md) and the built-in set.
 *
 *   # comment
 *   [vmsyslogd]                     a world; names [A-Za-z0-9][A-Za-z0-9_-]{0,30}
 *   exec = {bin}/vmsyslogd --state-dir {dir}
 *   cpu_limit_mhz = 500             0 or absent: unlimited
 *   mem_limit_mib = 128             0 or absent: unlimited
 *   caps = net_bind_service         capabilities kept; empty or absent: none
 *   syscalls = @basic @file @net    names and @groups; repeatable (adds)
 *   seccomp = kill                  kill (default), errno (EPERM) or off
 *   private_tmp = yes               own mount namespace, a tmpfs on /tmp
 *   read_only = /usr /etc           made read-only in its own mount namespace
 *   bind = /tmp/lab/shared          kept visible (read-write) under a private /tmp
 *   stop_grace_ms = 5000            SIGTERM to SIGKILL
 *   restart = on-failure            on-failure (default) or always (an exit 0 too)
 *
 * Words are separated by blanks (no quoting). {dir} is the host's state dir, {bin} the
 * directory of vmkernel's binary. The whole text is checked before anything is used: one
 * bad line refuses the set with its line number.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/world/world.h"
#include "lib/heap.h"

#define CONF_MAX  (256u << 10)
#define LINE_MAX_ (4096)

static const char default_conf[] =
    "# Built-in user worlds (vmkernel --worlds default): docs/worlds.md\n"
    "[vmsyslogd]\n"
    "exec = {bin}/vmsyslogd --state-dir {dir}\n"
    "cpu_limit_mhz = 500\n"
    "mem_limit_mib = 128\n"
    "syscalls = @basic @file @net\n"
    "private_tmp = yes\n"
    "read_only = /usr /etc\n"
    "\n"
    "[keel-snmpd]\n"
    "exec = {bin}/keel-snmpd --state-dir {dir}\n"
    "cpu_limit_mhz = 500\n"
    "mem_limit_mib = 128\n"
    "syscalls = @basic @file @net\n"
    "private_tmp = yes\n"
    "read_only = /usr /etc\n"
    "\n"
    "[clusterd]\n"
    "exec = {bin}/clusterd --state-dir {dir}\n"
    "mem_limit_mib = 1024\n"
    "syscalls = @basic @file @net @aio\n"
    "private_tmp = yes\n"
    "\n"
    "[hostd]\n"
    "exec = {bin}/hostd --state-dir {dir}\n"
    "mem_limit_mib = 512\n"
    "caps = net_bind_service\n"
    "syscalls = @basic @file @net\n"
    "private_tmp = yes\n"
    "\n"
    "# vmntpd runs chronyd (and chronyc) under the same filter and capabilities: sys_time\n"
    "# tells it the host may set the clock (a system chronyd then does it); chown, setuid,\n"
    "# setgid and @ids let its private chronyd drop to _chrony; kill lets vmntpd stop that\n"
    "# chronyd; dac_override lets chronyc reach chronyd's socket in a directory owned by\n"
    "# _chrony\n"
    "[vmntpd]\n"
    "exec = {bin}/vmntpd --state-dir {dir}\n"
    "cpu_limit_mhz = 500\n"
    "mem_limit_mib = 128\n"
    "caps = sys_time chown setuid setgid dac_override kill\n"
    "syscalls = @basic @file @net @ids\n"
    "private_tmp = yes\n";

const char *vmk_world_default_conf(void)
{
	return default_conf;
}

bool vmk_world_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n >= VMK_WORLD_NAME_MAX || !isalnum((unsigned char)name[0]))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)name[i]) && name[i] != '-' && name[i] != '_')
			return false;
	return true;
}

void vmk_world_defs_free(struct vmk_world_defs *defs)
{
	for (int i = 0; i < defs->n; i++) {
		struct vmk_world_def *d = &defs->w[i];
		for (int a = 0; a < d->argc; a++)
			kb_free(d->argv[a]);
		for (int r = 0; r < d->nro; r++)
			kb_free(d->read_only[r]);
		for (int b = 0; b < d->nbind; b++)
			kb_free(d->bind[b]);
	}
	memset(defs, 0, sizeof(*defs));
}

/* word with {dir} and {bin} replaced, allocated. NULL on -ENOMEM or when too long. */
static char *substitute(const char *word, const char *dir, const char *bin)
{
	char out[LINE_MAX_];
	size_t o = 0;

	for (const char *p = word; *p;) {
		const char *rep = NULL;
		size_t skip = 0;
		if (strncmp(p, "{dir}", 5) == 0)
			rep = dir, skip = 5;
		else if (strncmp(p, "{bin}", 5) == 0)
			rep = bin, skip = 5;
		if (rep) {
			size_t l = strlen(rep);
			if (o + l >= sizeof(out))
				return NULL;
			memcpy(out + o, rep, l);
			o += l;
			p += skip;
		} else {
			if (o + 1 >= sizeof(out))
				return NULL;
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	return kb_strdup(out);
}

static int parse_u32(const char *v, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long x;

	if (!isdigit((unsigned char)v[0]))
		return -EINVAL;
	errno = 0;
	x = strtoul(v, &end, 10);
	if (errno || *end || x > max)
		return -ERANGE;
	*out = (uint32_t)x;
	return 0;
}

struct parser {
	const char *where, *dir, *bin;
	int line;
	struct vmk_world_defs *defs;
	struct vmk_world_def *cur;
	bool seen_syscalls[VMK_WORLD_MAX];
	struct kb_errmsg *err;
};

__attribute__((format(printf, 2, 3))) static int bad(struct parser *p, const char *fmt, ...)
{
	char what[300];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	kb_errmsg_setf(p->err, "%s line %d: %s", p->where, p->line, what);
	return KB_ECONFIG;
}

/* Splits v into blank-separated words (in place). Returns the count, or -1 if more than max. */
static int split(char *v, char **words, int max)
{
	char *save = NULL;
	int n = 0;

	for (char *s = strtok_r(v, " \t", &save); s; s = strtok_r(NULL, " \t", &save)) {
		if (n == max)
			return -1;
		words[n++] = s;
	}
	return n;
}

static int section(struct parser *p, char *s)
{
	char *end = strchr(s, ']');

	if (end == NULL || end[1] != '\0')
		return bad(p, "a section is [name]");
	*end = '\0';
	if (!vmk_world_name_valid(s + 1))
		return bad(p, "bad world name \"%.40s\"", s + 1);
	for (int i = 0; i < p->defs->n; i++)
		if (strcmp(p->defs->w[i].name, s + 1) == 0)
			return bad(p, "world %s is defined twice", s + 1);
	if (p->defs->n == VMK_WORLD_MAX)
		return bad(p, "too many worlds (at most 16)");
	p->cur = &p->defs->w[p->defs->n++];
	memset(p->cur, 0, sizeof(*p->cur));
	snprintf(p->cur->name, sizeof(p->cur->name), "%s", s + 1);
	p->cur->stop_grace_ms = 5000;
	return 0;
}

static int yes_no(struct parser *p, const char *v, bool *out)
{
	if (strcmp(v, "yes") == 0 || strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
		*out = true;
	else if (strcmp(v, "no") == 0 || strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
		*out = false;
	else
		return bad(p, "want yes or no, not \"%.40s\"", v);
	return 0;
}

static int setting(struct parser *p, char *key, char *v)
{
	struct vmk_world_def *d = p->cur;
	char *words[VMK_WORLD_ARGV_MAX + 1];
	int n, rv;

	if (d == NULL)
		return bad(p, "\"%.40s\" before the first [world]", key);
	if (strcmp(key, "exec") == 0) {
		if (d->argc)
			return bad(p, "exec is given twice");
		n = split(v, words, VMK_WORLD_ARGV_MAX);
		if (n <= 0)
			return bad(p, "%s", n < 0 ? "more than 24 arguments" : "exec is empty");
		for (int i = 0; i < n; i++) {
			d->argv[i] = substitute(words[i], p->dir, p->bin);
			if (d->argv[i] == NULL)
				return -ENOMEM;
			d->argc = i + 1;
		}
		if (d->argv[0][0] != '/')
			return bad(p, "the program \"%.100s\" is not an absolute path", d->argv[0]);
	} else if (strcmp(key, "cpu_limit_mhz") == 0) {
		if (parse_u32(v, 1000000, &d->cpu_limit_mhz) < 0)
			return bad(p, "bad cpu_limit_mhz \"%.40s\"", v);
	} else if (strcmp(key, "mem_limit_mib") == 0) {
		if (parse_u32(v, 1u << 24, &d->mem_limit_mib) < 0 ||
		    (d->mem_limit_mib && d->mem_limit_mib < 8))
			return bad(p, "bad mem_limit_mib \"%.40s\" (0, or 8 and up)", v);
	} else if (strcmp(key, "stop_grace_ms") == 0) {
		if (parse_u32(v, 600000, &d->stop_grace_ms) < 0)
			return bad(p, "bad stop_grace_ms \"%.40s\"", v);
	} else if (strcmp(key, "caps") == 0) {
		n = split(v, words, VMK_WORLD_ARGV_MAX);
		if (n < 0)
			return bad(p, "too many capabilities");
		d->caps = 0;
		for (int i = 0; i < n; i++) {
			int c = vmk_world_cap_parse(words[i]);
			if (c < 0)
				return bad(p, "unknown capability \"%.40s\"", words[i]);
			d->caps |= 1ull << c;
		}
	} else if (strcmp(key, "syscalls") == 0) {
		n = split(v, words, VMK_WORLD_ARGV_MAX);
		if (n <= 0)
			return bad(p, "%s", n < 0 ? "too many words" : "syscalls is empty");
		for (int i = 0; i < n; i++) {
			struct kb_errmsg e = {{0}};
			rv = vmk_world_syscalls_add(d, words[i], &e);
			if (rv < 0)
				return bad(p, "%s", e.msg);
		}
		p->seen_syscalls[p->defs->n - 1] = true;
	} else if (strcmp(key, "seccomp") == 0) {
		if (strcmp(v, "kill") == 0)
			d->seccomp = VMK_WORLD_SECCOMP_KILL;
		else if (strcmp(v, "errno") == 0)
			d->seccomp = VMK_WORLD_SECCOMP_ERRNO;
		else if (strcmp(v, "off") == 0)
			d->seccomp = VMK_WORLD_SECCOMP_OFF;
		else
			return bad(p, "seccomp is kill, errno or off, not \"%.40s\"", v);
	} else if (strcmp(key, "restart") == 0) {
		if (strcmp(v, "always") == 0)
			d->restart_always = true;
		else if (strcmp(v, "on-failure") == 0)
			d->restart_always = false;
		else
			return bad(p, "restart is on-failure or always, not \"%.40s\"", v);
	} else if (strcmp(key, "private_tmp") == 0) {
		return yes_no(p, v, &d->private_tmp);
	} else if (strcmp(key, "read_only") == 0) {
		n = split(v, words, VMK_WORLD_PATHS);
		if (n < 0)
			return bad(p, "more than 8 read-only paths");
		for (int i = 0; i < n; i++) {
			if (d->nro == VMK_WORLD_PATHS)
				return bad(p, "more than 8 read-only paths");
			d->read_only[d->nro] = substitute(words[i], p->dir, p->bin);
			if (d->read_only[d->nro] == NULL)
				return -ENOMEM;
			if (d->read_only[d->nro++][0] != '/')
				return bad(p, "read-only path \"%.100s\" is not absolute",
					   words[i]);
		}
	} else if (strcmp(key, "bind") == 0) {
		n = split(v, words, VMK_WORLD_PATHS);
		if (n < 0)
			return bad(p, "more than 8 bound paths");
		for (int i = 0; i < n; i++) {
			if (d->nbind == VMK_WORLD_PATHS)
				return bad(p, "more than 8 bound paths");
			d->bind[d->nbind] = substitute(words[i], p->dir, p->bin);
			if (d->bind[d->nbind] == NULL)
				return -ENOMEM;
			if (d->bind[d->nbind++][0] != '/')
				return bad(p, "bound path \"%.100s\" is not absolute", words[i]);
		}
	} else {
		return bad(p, "unknown setting \"%.40s\"", key);
	}
	return 0;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

static int parse_line(struct parser *p, char *s)
{
	char *eq;

	s = trim(s);
	if (s[0] == '\0' || s[0] == '#')
		return 0;
	if (s[0] == '[')
		return section(p, s);
	eq = strchr(s, '=');
	if (eq == NULL)
		return bad(p, "want key = value, not \"%.60s\"", s);
	*eq = '\0';
	return setting(p, trim(s), trim(eq + 1));
}

int vmk_world_defs_parse(const char *text, size_t size, const char *where, const char *state_dir,
			 const char *bin_dir, struct vmk_world_defs *defs, struct kb_errmsg *err)
{
	struct parser p = {
	    .where = where, .dir = state_dir, .bin = bin_dir, .defs = defs, .err = err};
	char line[LINE_MAX_];
	size_t off = 0;
	int rv = 0;

	memset(defs, 0, sizeof(*defs));
	if (size > CONF_MAX) {
		kb_errmsg_setf(err, "%s: larger than %u bytes", where, CONF_MAX);
		return KB_ECONFIG;
	}
	while (off < size && rv == 0) {
		const char *nl = memchr(text + off, '\n', size - off);
		size_t len = nl ? (size_t)(nl - (text + off)) : size - off;

		p.line++;
		if (len >= sizeof(line) || memchr(text + off, '\0', len) != NULL) {
			rv = bad(&p, "line too long or not text");
			break;
		}
		memcpy(line, text + off, len);
		line[len] = '\0';
		off += len + (nl ? 1 : 0);
		rv = parse_line(&p, line);
	}
	for (int i = 0; rv == 0 && i < defs->n; i++) {
		const struct vmk_world_def *d = &defs->w[i];
		if (d->argc == 0) {
			kb_errmsg_setf(err, "%s: world %s has no exec", where, d->name);
			rv = KB_ECONFIG;
		} else if (d->seccomp != VMK_WORLD_SECCOMP_OFF && !p.seen_syscalls[i]) {
			kb_errmsg_setf(err, "%s: world %s has no syscalls (or seccomp = off)",
				       where, d->name);
			rv = KB_ECONFIG;
		} else if (d->nbind && !d->private_tmp) {
			kb_errmsg_setf(err, "%s: world %s: bind needs private_tmp = yes", where,
				       d->name);
			rv = KB_ECONFIG;
		}
	}
	if (rv == -ENOMEM)
		kb_errmsg_setf(err, "%s: out of memory", where);
	if (rv < 0)
		vmk_world_defs_free(defs);
	return rv;
}

int vmk_world_defs_load(const char *path, const char *state_dir, const char *bin_dir,
			struct vmk_world_defs *defs, struct kb_errmsg *err)
{
	char *buf;
	ssize_t n;
	size_t len = 0;
	int fd, rv;

	if (strcmp(path, "default") == 0)
		return vmk_world_defs_parse(default_conf, strlen(default_conf), "built-in worlds",
					    state_dir, bin_dir, defs, err);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rv = -errno;
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rv));
		return rv;
	}
	buf = kb_malloc(CONF_MAX + 1);
	if (buf == NULL) {
		close(fd);
		kb_errmsg_setf(err, "%s: out of memory", path);
		return -ENOMEM;
	}
	while ((n = read(fd, buf + len, CONF_MAX + 1 - len)) > 0 && len < CONF_MAX + 1)
		len += (size_t)n;
	rv = n < 0 ? -errno : 0;
	close(fd);
	if (rv == 0)
		rv = vmk_world_defs_parse(buf, len, path, state_dir, bin_dir, defs, err);
	else
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rv));
	kb_free(buf);
	return rv;
}
