/*
 * The lab record, DIR/lab.conf, and the names derived from it.
 *
 * The record is written before anything it names is made, and rewritten atomically
 * (lib/file.h) on every change, so after a crash it lists at least everything that
 * exists. Format: text, one "key=value" per line, at most 64 KiB; unknown keys are
 * ignored, a line without '=' or a bad value is refused:
 *
 *   version=1
 *   id=3fa2                      short hex id of the lab
 *   prefix=k3fa2                 names: "keel" for the default lab dir, else "k<id>"
 *   vmkernel=/usr/lib/keel/bin/vmkernel
 *   hosts=3
 *   supervisor=PID START         START: field 22 of /proc/PID/stat
 *   shared_mib=1024              the size of DIR/shared.img, loop-mounted on DIR/shared
 *   shared_memory=1              DIR/shared is a tmpfs (with shared_mib=0); with both 0
 *                                (and in records without this key) a plain directory
 *   shared_mounted=1             the image or the tmpfs is (or was being) mounted there
 *   worlds=1                     vmkernel runs clusterd, hostd, vmsyslogd as user worlds;
 *                                0 (or absent: a lab made before worlds): the lab does
 *   host1=up                     up | killed
 *   host1_isolated=0
 *
 * Names: bridges <prefix>-mgmt, <prefix>-vmotion, <prefix>-ft; host K's namespace
 * <prefix>-lab-hostK; the root end of its vmnicN <prefix>-hKnN.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/file.h"
#include "mgmt-api/keel/lab.h"

#define RECORD_MAX (64 * 1024)

static const char *const bridge_role[KC_LAB_NICS] = {"mgmt", "vmotion", "ft"};

void kc_lab_bridge(const struct kc_lab *lab, int nic, char *out)
{
	snprintf(out, KC_LAB_NAME_MAX, "%s-%s", lab->prefix, bridge_role[nic]);
}

void kc_lab_netns(const struct kc_lab *lab, int host, char *out, size_t size)
{
	snprintf(out, size, "%s-lab-host%d", lab->prefix, host);
}

void kc_lab_veth(const struct kc_lab *lab, int host, int nic, char *out)
{
	snprintf(out, KC_LAB_NAME_MAX, "%s-h%dn%d", lab->prefix, host, nic);
}

void kc_lab_host_dir(const struct kc_lab *lab, int host, char *out, size_t size)
{
	snprintf(out, size, "%s/hosts/host%d", lab->dir, host);
}

void kc_lab_socket(const struct kc_lab *lab, int host, char *out, size_t size)
{
	snprintf(out, size, "%s/hosts/host%d/vmkernel.sock", lab->dir, host);
}

void kc_lab_shared_dir(const struct kc_lab *lab, char *out, size_t size)
{
	snprintf(out, size, "%s/shared", lab->dir);
}

void kc_lab_vmk_addr(int host, int vmk, char *out, size_t size)
{
	if (vmk == 0)
		snprintf(out, size, "198.18.0.%d/16", host);
	else
		snprintf(out, size, "198.19.%d.%d/24", vmk, host);
}

int kc_lab_parse_host(const struct kc_lab *lab, const char *s, int *host)
{
	uint32_t k;
	int rc;

	if (strncmp(s, "host", 4) == 0)
		s += 4;
	rc = kc_parse_u32(s, 1, (uint32_t)lab->nhosts, &k);
	if (rc)
		return rc;
	*host = (int)k;
	return 0;
}

int kc_lab_dir_arg(struct kc_ctx *ctx, const struct kc_call *call, int opt, char *out, size_t size)
{
	const char *d = kc_opt(call, opt);
	size_t n;

	if (!d)
		d = KC_LAB_DEFAULT_DIR;
	if (!d[0])
		return kc_usage(ctx, call, "--dir wants a directory");
	if (kc_abs_path(d, out, size))
		return kc_usage(ctx, call, "bad --dir '%s'", d);
	n = strlen(out);
	while (n > 1 && out[n - 1] == '/')
		out[--n] = '\0';
	/* Sockets under DIR/hosts/hostK must fit sun_path. */
	if (n > 60)
		return kc_usage(ctx, call, "--dir '%s' is too long (at most 60 characters)", out);
	return KC_EXIT_OK;
}

int kc_lab_lock(const char *dir, struct kb_errmsg *err)
{
	char path[PATH_MAX];
	int fd;

	if (mkdir(dir, 0755) && errno != EEXIST) {
		int rc = -errno;

		kb_errmsg_setf(err, "%s: %s", dir, kb_strerror(rc));
		return rc;
	}
	snprintf(path, sizeof(path), "%s/lab.lock", dir);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || flock(fd, LOCK_EX) < 0) {
		int rc = -errno;

		if (fd >= 0)
			close(fd);
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rc));
		return rc;
	}
	return fd;
}

static int parse_u64(const char *s, uint64_t *out)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -EINVAL : 0;
}

static bool valid_word(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n >= max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return false;
	return true;
}

/* One "key=value" line into lab. 0, or -EINVAL. */
static int parse_line(struct kc_lab *lab, char *key, char *val)
{
	uint64_t v, w;
	int k;
	char *sp;

	if (strcmp(key, "version") == 0)
		return strcmp(val, "1") == 0 ? 0 : -EINVAL;
	if (strcmp(key, "id") == 0) {
		snprintf(lab->id, sizeof(lab->id), "%s", val);
		return valid_word(val, sizeof(lab->id)) ? 0 : -EINVAL;
	}
	if (strcmp(key, "prefix") == 0) {
		snprintf(lab->prefix, sizeof(lab->prefix), "%s", val);
		return valid_word(val, sizeof(lab->prefix)) ? 0 : -EINVAL;
	}
	if (strcmp(key, "vmkernel") == 0) {
		snprintf(lab->vmkernel, sizeof(lab->vmkernel), "%s", val);
		return val[0] == '/' && strlen(val) < sizeof(lab->vmkernel) ? 0 : -EINVAL;
	}
	if (strcmp(key, "hosts") == 0) {
		if (parse_u64(val, &v) || v > KC_LAB_MAX_HOSTS)
			return -EINVAL;
		lab->nhosts = (int)v;
		return 0;
	}
	if (strcmp(key, "supervisor") == 0) {
		sp = strchr(val, ' ');
		if (!sp)
			return -EINVAL;
		*sp++ = '\0';
		if (parse_u64(val, &v) || parse_u64(sp, &w) || v > INT_MAX)
			return -EINVAL;
		lab->sup_pid = (pid_t)v;
		lab->sup_start = w;
		return 0;
	}
	if (strcmp(key, "shared_mib") == 0)
		return parse_u64(val, &lab->shared_mib);
	if (strcmp(key, "worlds") == 0) {
		if (parse_u64(val, &v) || v > 1)
			return -EINVAL;
		lab->worlds = v;
		return 0;
	}
	if (strcmp(key, "shared_memory") == 0) {
		if (parse_u64(val, &v) || v > 1)
			return -EINVAL;
		lab->shared_memory = v;
		return 0;
	}
	if (strcmp(key, "shared_mounted") == 0) {
		if (parse_u64(val, &v) || v > 1)
			return -EINVAL;
		lab->shared_mounted = v;
		return 0;
	}
	if (strncmp(key, "host", 4) == 0 && sscanf(key + 4, "%d", &k) == 1 && k >= 1 &&
	    k <= KC_LAB_MAX_HOSTS) {
		char want[32];

		snprintf(want, sizeof(want), "host%d", k);
		if (strcmp(key, want) == 0) {
			if (strcmp(val, "up") == 0)
				lab->hosts[k].state = KC_LAB_HOST_UP;
			else if (strcmp(val, "killed") == 0)
				lab->hosts[k].state = KC_LAB_HOST_KILLED;
			else
				return -EINVAL;
			return 0;
		}
		snprintf(want, sizeof(want), "host%d_isolated", k);
		if (strcmp(key, want) == 0) {
			if (parse_u64(val, &v) || v > 1)
				return -EINVAL;
			lab->hosts[k].isolated = v;
			return 0;
		}
	}
	return 0; /* unknown keys are ignored */
}

int kc_lab_load(const char *dir, struct kc_lab *lab, struct kb_errmsg *err)
{
	char path[PATH_MAX];
	struct kb_buf buf;
	char *p, *line, *save = NULL;
	int rc, lineno = 0;

	memset(lab, 0, sizeof(*lab));
	snprintf(lab->dir, sizeof(lab->dir), "%s", dir);
	snprintf(path, sizeof(path), "%s/lab.conf", dir);
	kb_buf_init(&buf, RECORD_MAX + 1);
	rc = kb_file_read_small(path, RECORD_MAX, &buf, err);
	if (rc == 0)
		rc = kb_buf_append(&buf, "", 1);
	if (rc)
		goto out;
	p = (char *)buf.data;
	if (strlen(p) != buf.len - 1) {
		kb_errmsg_setf(err, "%s: holds a NUL byte", path);
		rc = KB_ECONFIG;
		goto out;
	}
	for (line = strtok_r(p, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		lineno++;
		if (!eq || parse_line(lab, (*eq = '\0', line), eq + 1)) {
			kb_errmsg_setf(err, "%s: line %d: bad entry", path, lineno);
			rc = KB_ECONFIG;
			goto out;
		}
	}
	if (!lab->prefix[0] || !lab->id[0] || !lab->vmkernel[0]) {
		kb_errmsg_setf(err, "%s: id, prefix or vmkernel missing", path);
		rc = KB_ECONFIG;
	}
out:
	kb_buf_close(&buf);
	return rc;
}

int kc_lab_save(const struct kc_lab *lab, struct kb_errmsg *err)
{
	char path[PATH_MAX], *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	int rc;

	if (!f) {
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	fprintf(f, "version=1\nid=%s\nprefix=%s\nvmkernel=%s\nhosts=%d\n", lab->id, lab->prefix,
		lab->vmkernel, lab->nhosts);
	fprintf(f, "supervisor=%d %" PRIu64 "\n", (int)lab->sup_pid, lab->sup_start);
	fprintf(f, "shared_mib=%" PRIu64 "\nshared_memory=%d\nshared_mounted=%d\n",
		lab->shared_mib, lab->shared_memory, lab->shared_mounted);
	fprintf(f, "worlds=%d\n", lab->worlds);
	for (int k = 1; k <= lab->nhosts; k++)
		fprintf(f, "host%d=%s\nhost%d_isolated=%d\n", k,
			lab->hosts[k].state == KC_LAB_HOST_UP ? "up" : "killed", k,
			lab->hosts[k].isolated);
	if (fclose(f) != 0) {
		free(text);
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	snprintf(path, sizeof(path), "%s/lab.conf", lab->dir);
	rc = kb_file_write_atomic(path, text, len, 0644, err);
	free(text);
	return rc;
}

int kc_lab_open(struct kc_ctx *ctx, const struct kc_call *call, int dir_opt, struct kc_lab *lab,
		int *lock_fd)
{
	struct kb_errmsg err = {{0}};
	char dir[PATH_MAX];
	int rc;

	rc = kc_lab_dir_arg(ctx, call, dir_opt, dir, sizeof(dir));
	if (rc)
		return rc;
	if (access(dir, F_OK) != 0)
		return kc_fail(ctx, KC_EXIT_FAILED, -ENOENT, "no lab at %s (run 'keel lab up')",
			       dir);
	*lock_fd = kc_lab_lock(dir, &err);
	if (*lock_fd < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, *lock_fd, "%s", err.msg);
	rc = kc_lab_load(dir, lab, &err);
	if (rc) {
		close(*lock_fd);
		if (rc == -ENOENT)
			return kc_fail(ctx, KC_EXIT_FAILED, rc, "no lab at %s (run 'keel lab up')",
				       dir);
		return kc_fail(ctx, KC_EXIT_FAILED, rc, "%s", err.msg);
	}
	return KC_EXIT_OK;
}
