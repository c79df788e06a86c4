/*
 * VM lock file operations (see lock.h): read the two-slot image bypassing the cache,
 * write one slot in place synchronously, and the acquire and release sequences built on
 * ha_lock_decide.
 *
 * Failure modes: a read or write error is returned as -errno and changes nothing we know
 * of; a refused decision writes nothing; an acquire whose read-back shows another
 * writer's record reports KB_ESTATE, so the caller does not run the VM.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <unistd.h>

#include "ha/ha_internal.h"
#include "ha/lock.h"

int ha_lock_read(const char *path, struct ha_lock *lk, struct kb_errmsg *err)
{
	_Alignas(HA__IO_ALIGN) uint8_t buf[HA_LOCK_FILE_SIZE];
	ssize_t n;
	int rc;

	n = ha__direct_read(path, buf, sizeof(buf), 0);
	if (n == -ENOENT)
		n = 0;
	if (n < 0) {
		rc = (int)n;
		if (err)
			kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rc));
		return rc;
	}
	rc = ha_lock_decode(buf, (size_t)n, lk);
	if (rc < 0 && err)
		kb_errmsg_setf(err, "%s: VM lock: %s", path, kb_strerror(rc));
	return rc;
}

static bool lock_valid(const struct ha_lock *lk)
{
	size_t n = strnlen(lk->vm_uuid, HA_LOCK_UUID_MAX);

	return lk->seq != 0 && lk->host_id != 0 && n > 0 && n < HA_LOCK_UUID_MAX &&
	       (lk->state == HA_LOCK_HELD || lk->state == HA_LOCK_RELEASED);
}

int ha_lock_write(const char *path, const struct ha_lock *lk, unsigned opts, struct kb_errmsg *err)
{
	_Alignas(HA__IO_ALIGN) uint8_t buf[HA_LOCK_SLOT_SIZE];
	enum ha_io_mode io;
	int fd, rc;

	if (!lock_valid(lk)) {
		kb_errmsg_setf(err, "%s: invalid lock record", path);
		return -EINVAL;
	}
	fd = ha__sync_open(path, O_RDWR | O_CREAT, 0644, opts, &io);
	if (fd < 0) {
		kb_errmsg_setf(err, "%s: %s", path, kb_strerror(fd));
		return fd;
	}
	ha_lock_encode(lk, buf);
	/* A new file gets its full size first, so readers see two empty slots, never a
	 * short file; for an existing lock this changes nothing. */
	rc = ftruncate(fd, HA_LOCK_FILE_SIZE) < 0 ? -errno : 0;
	if (rc == 0)
		rc = ha__sync_pwrite(fd, buf, sizeof(buf), (off_t)(lk->seq & 1) * HA_LOCK_SLOT_SIZE,
				     &io);
	if (rc == 0 && fdatasync(fd) < 0)
		rc = -errno;
	close(fd);
	if (rc < 0)
		kb_errmsg_setf(err, "%s: write: %s", path, kb_strerror(rc));
	return rc;
}

static void fill(struct ha_lock *lk, const struct ha_lock *cur, const char *vm_uuid, uint64_t host,
		 uint64_t epoch, enum ha_lock_state state)
{
	memset(lk, 0, sizeof(*lk));
	lk->seq = cur ? cur->seq + 1 : 1;
	lk->host_id = host;
	lk->epoch = epoch;
	lk->state = state;
	snprintf(lk->vm_uuid, sizeof(lk->vm_uuid), "%s", vm_uuid);
}

static bool same(const struct ha_lock *a, const struct ha_lock *b)
{
	return a->seq == b->seq && a->host_id == b->host_id && a->epoch == b->epoch &&
	       a->state == b->state && strcmp(a->vm_uuid, b->vm_uuid) == 0;
}

int ha_lock_acquire(const char *path, const char *vm_uuid, uint64_t host, uint64_t epoch,
		    ha_lease_lookup_cb lookup, void *arg, unsigned opts, struct ha_lock *out,
		    struct kb_errmsg *err)
{
	struct ha_lock cur, want, back;
	enum ha_lease_state lease = HA_LEASE_ALIVE;
	enum ha_lock_verdict v;
	bool have;
	int rc;

	if (strnlen(vm_uuid, HA_LOCK_UUID_MAX) - 1 >= HA_LOCK_UUID_MAX - 1 || host == 0) {
		kb_errmsg_setf(err, "%s: invalid VM uuid or host", path);
		return -EINVAL;
	}
	rc = ha_lock_read(path, &cur, err);
	if (rc < 0 && rc != KB_ENOTFOUND)
		return rc;
	have = rc == 0;
	if (have && strcmp(cur.vm_uuid, vm_uuid) != 0) {
		kb_errmsg_setf(err, "%s: lock names VM %s, not %s", path, cur.vm_uuid, vm_uuid);
		return KB_ECONFIG;
	}
	/* The holder's lease decides only a lock another host holds at a lower epoch: do not
	 * make the caller watch it otherwise (ha_lock_decide ignores it then). */
	if (have && cur.host_id != host && cur.state == HA_LOCK_HELD && cur.epoch < epoch && lookup)
		lease = lookup(arg, cur.host_id);
	v = ha_lock_decide(have ? &cur : NULL, host, epoch, lease);
	if (v == HA_LOCK_OURS) {
		if (out)
			*out = cur;
		return 0;
	}
	if (v != HA_LOCK_TAKE) {
		kb_errmsg_setf(err, "%s: %s (host %016" PRIx64 " epoch %" PRIu64 " %s, lease %s)",
			       path, ha_lock_verdict_str(v), cur.host_id, cur.epoch,
			       cur.state == HA_LOCK_HELD ? "held" : "released",
			       ha_lease_state_str(lease));
		return KB_ESTATE;
	}
	fill(&want, have ? &cur : NULL, vm_uuid, host, epoch, HA_LOCK_HELD);
	rc = ha_lock_write(path, &want, opts, err);
	if (rc < 0)
		return rc;
	rc = ha_lock_read(path, &back, err);
	if (rc < 0)
		return rc;
	if (!same(&back, &want)) {
		kb_errmsg_setf(err,
			       "%s: lock replaced by host %016" PRIx64 " epoch %" PRIu64
			       " while taking it",
			       path, back.host_id, back.epoch);
		return KB_ESTATE;
	}
	if (out)
		*out = back;
	return 0;
}

int ha_lock_release(const char *path, const char *vm_uuid, uint64_t host, uint64_t epoch,
		    unsigned opts, struct kb_errmsg *err)
{
	struct ha_lock cur, want;
	int rc;

	rc = ha_lock_read(path, &cur, err);
	if (rc < 0)
		return rc;
	if (cur.host_id != host || cur.epoch != epoch || strcmp(cur.vm_uuid, vm_uuid) != 0) {
		kb_errmsg_setf(
		    err, "%s: lock is host %016" PRIx64 " epoch %" PRIu64 ", not ours to release",
		    path, cur.host_id, cur.epoch);
		return KB_ESTATE;
	}
	if (cur.state == HA_LOCK_RELEASED)
		return 0;
	fill(&want, &cur, vm_uuid, host, epoch, HA_LOCK_RELEASED);
	return ha_lock_write(path, &want, opts, err);
}
