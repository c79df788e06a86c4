/*
 * The session cache of `keel login`: one file per server, so later commands given
 * --server URL find the token and how to trust the server.
 *
 * Where: $KEEL_CONFIG_DIR (else $HOME/.keel, else the passwd entry's home + /.keel) +
 * /sessions/<host_port>, where host_port is the URL's authority with every character
 * other than [A-Za-z0-9.-] replaced by '_' ("198.18.0.1_8443"). The directories are made
 * 0700, the file is written 0600 atomically (a temporary file, fsync, rename), so a
 * reader sees the old session or the new one, never half of one.
 *
 * Format (text, at most 16 KiB, read as untrusted): one "key=value" per line, keys url,
 * user, token, ca_file, thumbprint; '#' starts a comment line; unknown keys are ignored.
 * A value with a control character, a file without url or token, or one for another URL
 * is refused as damaged (-EBADMSG).
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mgmt-api/keel/keel.h"

#define FILE_MAX (16 * 1024)

static int config_dir(char *out, size_t size)
{
	const char *d = getenv("KEEL_CONFIG_DIR"), *home = getenv("HOME");
	struct passwd *pw;
	int n;

	if (d && d[0])
		n = snprintf(out, size, "%s", d);
	else if (home && home[0])
		n = snprintf(out, size, "%s/.keel", home);
	else if ((pw = getpwuid(getuid())) && pw->pw_dir && pw->pw_dir[0])
		n = snprintf(out, size, "%s/.keel", pw->pw_dir);
	else
		return -ENOENT;
	return n < 0 || (size_t)n >= size ? -ENAMETOOLONG : 0;
}

int kc_session_path(const char *url, char *out, size_t size)
{
	char dir[4096], name[KC_URL_MAX];
	const char *a = strncmp(url, "https://", 8) == 0 ? url + 8 : url;
	size_t n = 0;
	int rc, len;

	rc = config_dir(dir, sizeof(dir));
	if (rc)
		return rc;
	for (; *a && *a != '/' && n + 1 < sizeof(name); a++, n++)
		name[n] = ((*a >= 'a' && *a <= 'z') || (*a >= 'A' && *a <= 'Z') ||
			   (*a >= '0' && *a <= '9') || *a == '.' || *a == '-')
			      ? *a
			      : '_';
	name[n] = '\0';
	if (n == 0 || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return -EINVAL;
	len = snprintf(out, size, "%s/sessions/%s", dir, name);
	return len < 0 || (size_t)len >= size ? -ENAMETOOLONG : 0;
}

static bool clean_value(const char *v)
{
	for (; *v; v++)
		if ((unsigned char)*v < 0x20 || *v == 0x7f)
			return false;
	return true;
}

static int set_field(char *dst, size_t size, const char *v)
{
	if (strlen(v) >= size || !clean_value(v))
		return -EBADMSG;
	snprintf(dst, size, "%s", v);
	return 0;
}

/* Same URL up to a trailing '/'. */
static bool same_url(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	while (la && a[la - 1] == '/')
		la--;
	while (lb && b[lb - 1] == '/')
		lb--;
	return la == lb && strncmp(a, b, la) == 0;
}

int kc_session_load(const char *url, struct kc_session *s)
{
	char path[4200], buf[FILE_MAX + 1];
	ssize_t n;
	size_t len = 0;
	int fd, rc;

	memset(s, 0, sizeof(*s));
	rc = kc_session_path(url, path, sizeof(path));
	if (rc)
		return rc;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return -errno;
	while (len < sizeof(buf) - 1 && (n = read(fd, buf + len, sizeof(buf) - 1 - len)) > 0)
		len += (size_t)n;
	close(fd);
	if (len >= FILE_MAX)
		return -EBADMSG;
	buf[len] = '\0';
	for (char *line = buf, *next; line && *line; line = next) {
		char *eq;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (line[0] == '#' || line[0] == '\0')
			continue;
		eq = strchr(line, '=');
		if (!eq)
			return -EBADMSG;
		*eq++ = '\0';
		if (strcmp(line, "url") == 0)
			rc = set_field(s->url, sizeof(s->url), eq);
		else if (strcmp(line, "user") == 0)
			rc = set_field(s->user, sizeof(s->user), eq);
		else if (strcmp(line, "token") == 0)
			rc = set_field(s->token, sizeof(s->token), eq);
		else if (strcmp(line, "ca_file") == 0)
			rc = set_field(s->ca_file, sizeof(s->ca_file), eq);
		else if (strcmp(line, "thumbprint") == 0)
			rc = set_field(s->thumbprint, sizeof(s->thumbprint), eq);
		if (rc)
			return rc;
	}
	explicit_bzero(buf, sizeof(buf));
	if (!s->url[0] || !s->token[0] || !same_url(s->url, url))
		return -EBADMSG;
	return 0;
}

static int make_dir(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -errno;
}

int kc_session_save(const struct kc_session *s)
{
	char path[4200], dir[4200], tmp[4300];
	char *slash;
	FILE *f;
	int fd, rc;

	rc = kc_session_path(s->url, path, sizeof(path));
	if (rc)
		return rc;
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	*slash = '\0'; /* .../sessions */
	slash = strrchr(dir, '/');
	if (slash) {
		*slash = '\0'; /* the config dir */
		rc = make_dir(dir);
		*slash = '/';
		if (rc)
			return rc;
	}
	rc = make_dir(dir);
	if (rc)
		return rc;
	snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (fchmod(fd, 0600) != 0) {
		rc = -errno;
		close(fd);
		goto remove_tmp;
	}
	f = fdopen(fd, "w");
	if (!f) {
		rc = -errno;
		close(fd);
		goto remove_tmp;
	}
	fprintf(f, "# keel session cache, written by keel login (docs/keel-cli.md)\n");
	fprintf(f, "url=%s\nuser=%s\ntoken=%s\n", s->url, s->user, s->token);
	if (s->ca_file[0])
		fprintf(f, "ca_file=%s\n", s->ca_file);
	if (s->thumbprint[0])
		fprintf(f, "thumbprint=%s\n", s->thumbprint);
	if (fflush(f) != 0 || fsync(fileno(f)) != 0) {
		rc = -errno;
		fclose(f);
		goto remove_tmp;
	}
	if (fclose(f) != 0) {
		rc = -errno;
		goto remove_tmp;
	}
	if (rename(tmp, path) != 0) {
		rc = -errno;
		goto remove_tmp;
	}
	return 0;

remove_tmp:
	unlink(tmp);
	return rc;
}

int kc_session_remove(const char *url)
{
	char path[4200];
	int rc = kc_session_path(url, path, sizeof(path));

	if (rc)
		return rc;
	return unlink(path) == 0 ? 0 : -errno;
}
