/*
 * The host id file (see nodeid.h).
 *
 * Happy path: read <state dir>/clusterd.id and parse it. First start: write a random id to
 * a private temporary file, fsync it, link() it into place, remove the temporary name and
 * fsync the directory.
 *
 * Failure modes: a damaged id file is an error, never replaced (a host that changed its id
 * would look like a new host to the cluster). A creator that loses the link() race reads
 * the winner's file, complete by construction. A creator that crashes before unlink()
 * leaves a harmless "clusterd.id.<pid>.<hex>" behind.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "lib/buf.h"
#include "lib/file.h"
#include "lib/nodeid.h"

#define ID_TEXT_MAX 32 /* bytes in the file: 20 digits and a newline, with room to spare */

/* Parses "<decimal>\n" (the newline may be missing): digits only, non-zero, fits u64. */
static int parse_id(const uint8_t *p, size_t len, uint64_t *id)
{
	uint64_t v = 0;
	size_t i = 0;

	if (len > 0 && p[len - 1] == '\n')
		len--;
	if (len == 0)
		return KB_ECONFIG;
	for (; i < len; i++) {
		if (p[i] < '0' || p[i] > '9')
			return KB_ECONFIG;
		if (v > (UINT64_MAX - (uint64_t)(p[i] - '0')) / 10)
			return KB_ECONFIG;
		v = v * 10 + (uint64_t)(p[i] - '0');
	}
	if (v == 0)
		return KB_ECONFIG;
	*id = v;
	return 0;
}

static int read_id(const char *path, uint64_t *id, struct kb_errmsg *err)
{
	struct kb_buf b;
	int rc;

	kb_buf_init(&b, 64);
	rc = kb_file_read_small(path, ID_TEXT_MAX, &b, err);
	if (rc == 0) {
		rc = parse_id(b.data, b.len, id);
		if (rc)
			kb_errmsg_setf(err, "%s: not a node id", path);
	}
	kb_buf_close(&b);
	return rc;
}

static int random_nonzero(uint64_t *v, struct kb_errmsg *err)
{
	*v = 0;
	while (*v == 0) {
		ssize_t n = getrandom(v, sizeof(*v), 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n != (ssize_t)sizeof(*v)) {
			int rc = n < 0 ? -errno : -EIO;
			kb_errmsg_setf(err, "getrandom: %s", kb_strerror(rc));
			return rc;
		}
	}
	return 0;
}

static int write_file(const char *tmp, const char *text, struct kb_errmsg *err)
{
	size_t len = strlen(text), off = 0;
	int fd, rc = 0;

	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", tmp, kb_strerror(rc));
		return rc;
	}
	while (off < len) {
		ssize_t k = write(fd, text + off, len - off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			break;
		}
		off += (size_t)k;
	}
	if (rc == 0 && fsync(fd) < 0)
		rc = -errno;
	if (close(fd) < 0 && rc == 0)
		rc = -errno;
	if (rc) {
		kb_errmsg_setf(err, "%s: write: %s", tmp, kb_strerror(rc));
		unlink(tmp);
	}
	return rc;
}

static int fsync_dir(const char *dir, struct kb_errmsg *err)
{
	int fd, rc = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		rc = -errno;
	if (fd >= 0)
		close(fd);
	if (rc)
		kb_errmsg_setf(err, "%s: fsync of the directory: %s", dir, kb_strerror(rc));
	return rc;
}

int kb_node_id_get(const char *state_dir, uint64_t *id, bool *created, struct kb_errmsg *err)
{
	char path[PATH_MAX], tmp[PATH_MAX], text[ID_TEXT_MAX];
	uint64_t mine, salt;
	int rc;

	if (created)
		*created = false;
	if ((size_t)snprintf(path, sizeof(path), "%s/%s", state_dir, KB_NODE_ID_FILE) >=
	    sizeof(path)) {
		kb_errmsg_setf(err, "%s: path too long", state_dir);
		return -ENAMETOOLONG;
	}
	rc = read_id(path, id, err);
	if (rc != -ENOENT)
		return rc;

	rc = random_nonzero(&mine, err);
	rc = rc ?: random_nonzero(&salt, err);
	if (rc)
		return rc;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%ld.%016" PRIx64, path, (long)getpid(), salt) >=
	    sizeof(tmp)) {
		kb_errmsg_setf(err, "%s: path too long", path);
		return -ENAMETOOLONG;
	}
	snprintf(text, sizeof(text), "%" PRIu64 "\n", mine);
	rc = write_file(tmp, text, err);
	if (rc)
		return rc;
	if (link(tmp, path) < 0) {
		rc = -errno;
		unlink(tmp);
		if (rc != -EEXIST) {
			kb_errmsg_setf(err, "%s: link: %s", path, kb_strerror(rc));
			return rc;
		}
		/* Another creator won; its file was complete before it was linked. */
		return read_id(path, id, err);
	}
	unlink(tmp);
	rc = fsync_dir(state_dir, err);
	if (rc)
		return rc;
	*id = mine;
	if (created)
		*created = true;
	return 0;
}

int kb_node_id(const char *state_dir, uint64_t *id, struct kb_errmsg *err)
{
	return kb_node_id_get(state_dir, id, NULL, err);
}
