/*
 * Host heartbeat records (see hb.h): encoding, strict decoding, the writer and the reader.
 *
 * Happy path: the writer opens the record once, continues the counter from what is on
 * disk, and each beat encodes the next counter into an aligned block and writes it in
 * place with one synchronous write. The reader opens, reads one block bypassing the cache,
 * and decodes it; every failure is an error code, never a counter.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ha/ha_internal.h"
#include "ha/hb.h"
#include "lib/crc.h"

#define OFF_MAGIC   0
#define OFF_VERSION 4
#define OFF_SIZE    6
#define OFF_HOST    8
#define OFF_COUNTER 16
#define OFF_END	    24
#define OFF_CRC	    (HA_HB_RECORD_SIZE - 4)

void ha_hb_encode(const struct ha_hb_record *rec, uint8_t out[HA_HB_RECORD_SIZE])
{
	memset(out, 0, HA_HB_RECORD_SIZE);
	ha__put_le32(out + OFF_MAGIC, HA_HB_MAGIC);
	ha__put_le16(out + OFF_VERSION, HA_HB_VERSION);
	ha__put_le16(out + OFF_SIZE, HA_HB_RECORD_SIZE);
	ha__put_le64(out + OFF_HOST, rec->host_id);
	ha__put_le64(out + OFF_COUNTER, rec->counter);
	ha__put_le32(out + OFF_CRC, kb_crc32c(0, out, OFF_CRC));
}

int ha_hb_decode(const uint8_t *p, size_t len, struct ha_hb_record *rec)
{
	uint64_t host, counter;

	if (len < HA_HB_RECORD_SIZE)
		return KB_ETRUNCATED;
	if (ha__le32(p + OFF_MAGIC) != HA_HB_MAGIC)
		return KB_EPROTO;
	if (ha__le16(p + OFF_VERSION) != HA_HB_VERSION)
		return KB_EVERSION;
	if (ha__le32(p + OFF_CRC) != kb_crc32c(0, p, OFF_CRC))
		return KB_ECHECKSUM;
	host = ha__le64(p + OFF_HOST);
	counter = ha__le64(p + OFF_COUNTER);
	if (ha__le16(p + OFF_SIZE) != HA_HB_RECORD_SIZE || !ha__zero(p, OFF_END, OFF_CRC) ||
	    host == 0 || counter == 0)
		return KB_EPROTO;
	rec->host_id = host;
	rec->counter = counter;
	return 0;
}

int ha_hb_path(const char *datastore, uint64_t host_id, char out[HA_HB_PATH_MAX])
{
	int n = snprintf(out, HA_HB_PATH_MAX, "%s/%s/%016" PRIx64, datastore, HA_HB_DIR, host_id);

	return n < 0 || n >= HA_HB_PATH_MAX ? -ENAMETOOLONG : 0;
}

int ha_hb_read(const char *path, struct ha_hb_record *rec, struct kb_errmsg *err)
{
	_Alignas(HA__IO_ALIGN) uint8_t buf[HA_HB_RECORD_SIZE];
	ssize_t n;
	int rc;

	n = ha__direct_read(path, buf, sizeof(buf), 0);
	if (n < 0) {
		rc = (int)n;
		if (err)
			kb_errmsg_setf(err, "%s: %s", path, kb_strerror(rc));
		return rc;
	}
	rc = ha_hb_decode(buf, (size_t)n, rec);
	if (rc < 0 && err)
		kb_errmsg_setf(err, "%s: heartbeat record: %s", path, kb_strerror(rc));
	return rc;
}

int ha_hb_writer_open(struct ha_hb_writer *w, const char *datastore, uint64_t host_id,
		      unsigned opts, struct kb_errmsg *err)
{
	char dir[HA_HB_PATH_MAX];
	struct ha_hb_record old;
	int rc;

	memset(w, 0, sizeof(*w));
	w->fd = -1;
	if (host_id == 0) {
		kb_errmsg_setf(err, "%s: heartbeat: host id 0", datastore);
		return -EINVAL;
	}
	if (ha_hb_path(datastore, host_id, w->path) < 0 ||
	    (size_t)snprintf(dir, sizeof(dir), "%s/%s", datastore, HA_HB_DIR) >= sizeof(dir)) {
		kb_errmsg_setf(err, "%s: heartbeat: path too long", datastore);
		return -ENAMETOOLONG;
	}
	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		rc = -errno;
		kb_errmsg_setf(err, "%s: %s", dir, kb_strerror(rc));
		return rc;
	}
	w->rec.host_id = host_id;
	if (ha_hb_read(w->path, &old, NULL) == 0 && old.host_id == host_id)
		w->rec.counter = old.counter; /* never go backwards across restarts */
	rc = ha__sync_open(w->path, O_WRONLY | O_CREAT, 0644, opts, &w->io);
	if (rc < 0) {
		kb_errmsg_setf(err, "%s: %s", w->path, kb_strerror(rc));
		return rc;
	}
	w->fd = rc;
	rc = ha_hb_writer_beat(w, err);
	if (rc < 0) {
		ha_hb_writer_close(w);
		return rc;
	}
	return 0;
}

int ha_hb_writer_beat(struct ha_hb_writer *w, struct kb_errmsg *err)
{
	_Alignas(HA__IO_ALIGN) uint8_t buf[HA_HB_RECORD_SIZE];
	int rc;

	w->rec.counter++;
	if (w->rec.counter == 0) /* 2^64 beats: not in this universe, but stay non-zero */
		w->rec.counter = 1;
	ha_hb_encode(&w->rec, buf);
	rc = ha__sync_pwrite(w->fd, buf, sizeof(buf), 0, &w->io);
	if (rc < 0)
		kb_errmsg_setf(err, "%s: heartbeat write: %s", w->path, kb_strerror(rc));
	return rc;
}

void ha_hb_writer_close(struct ha_hb_writer *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
}
