/*
 * The config store's archive format, config.kar: the persistent files of the store in one
 * checksummed blob. Encoding cannot fail but for memory and the size limit; decoding treats
 * the bytes as untrusted and checks everything before handing out a single entry.
 *
 * Format, version 1 (integers little-endian):
 *
 *   offset  size  field
 *        0     8  magic "KEELKAR\n"
 *        8     4  version (1)
 *       12     4  entry count (at most VMK_CFG_FILES_MAX)
 *       16     8  store generation
 *       24     8  written at (CLOCK_REALTIME, ns)
 *       32        entries, in strictly ascending path order (bytewise):
 *                   2  path length (1..VMK_CFG_PATH_MAX)
 *                   2  mode (& 0777)
 *                   4  data length (at most VMK_CFG_FILE_MAX)
 *                   8  mtime (CLOCK_REALTIME, ns)
 *                   8  generation of the file's last change
 *                   .  path (a valid store path, not under var/log/)
 *                   .  data
 *    len-8     4  CRC-32C of bytes [0, len-8)
 *    len-4     4  end magic "KEND"
 *
 * The whole archive is at most VMK_CFG_ARCHIVE_MAX bytes. A torn write (any prefix) fails
 * on the end magic or the checksum; a flipped byte on the checksum; the checksum is checked
 * before any entry is parsed, and the entries must then use up exactly the bytes between
 * the header and the trailer.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>

#include "kernel/cfg/cfg.h"
#include "lib/crc.h"
#include "lib/heap.h"

#define KAR_MAGIC     "KEELKAR\n"
#define KAR_END	      "KEND"
#define KAR_VERSION   1
#define KAR_HEADER    32
#define KAR_TRAILER   8
#define KAR_ENTRY_HDR 24

int vmk_cfg_kar_encode(uint64_t generation, uint64_t written_ns, const struct vmk_cfg_kar_entry *e,
		       uint32_t n, struct kb_buf *out)
{
	size_t start = out->len;
	int rv;

	rv = kb_buf_append(out, KAR_MAGIC, 8);
	rv = rv ?: kb_buf_put_u32(out, KAR_VERSION);
	rv = rv ?: kb_buf_put_u32(out, n);
	rv = rv ?: kb_buf_put_u64(out, generation);
	rv = rv ?: kb_buf_put_u64(out, written_ns);
	for (uint32_t i = 0; i < n && rv == 0; i++) {
		size_t plen = strlen(e[i].path);
		rv = kb_buf_put_u16(out, (uint16_t)plen);
		rv = rv ?: kb_buf_put_u16(out, (uint16_t)(e[i].mode & 0777));
		rv = rv ?: kb_buf_put_u32(out, e[i].len);
		rv = rv ?: kb_buf_put_u64(out, e[i].mtime_ns);
		rv = rv ?: kb_buf_put_u64(out, e[i].generation);
		rv = rv ?: kb_buf_append(out, e[i].path, plen);
		rv = rv ?: kb_buf_append(out, e[i].data, e[i].len);
	}
	if (rv == 0 && out->len - start + KAR_TRAILER > VMK_CFG_ARCHIVE_MAX)
		rv = KB_ETOOBIG;
	if (rv == 0)
		rv = kb_buf_put_u32(out, kb_crc32c(0, out->data + start, out->len - start));
	rv = rv ?: kb_buf_append(out, KAR_END, 4);
	if (rv < 0)
		out->len = start;
	return rv;
}

void vmk_cfg_kar_free(struct vmk_cfg_kar *k)
{
	kb_free(k->entries);
	k->entries = NULL;
	k->n = 0;
}

static int decode_entry(struct kb_reader *r, uint32_t i, struct vmk_cfg_kar_entry *e,
			const struct vmk_cfg_kar_entry *prev, struct kb_errmsg *err)
{
	struct kb_errmsg why = {{0}};
	uint16_t plen = kb_rd_u16(r), mode = kb_rd_u16(r);
	uint32_t dlen = kb_rd_u32(r);
	const char *path;
	int rv;

	e->mode = mode;
	e->len = dlen;
	e->mtime_ns = kb_rd_u64(r);
	e->generation = kb_rd_u64(r);
	if (r->err) {
		kb_errmsg_setf(err, "entry %u: header runs past the end", i);
		return KB_EPROTO;
	}
	if (plen == 0 || plen > VMK_CFG_PATH_MAX || (mode & ~0777u)) {
		kb_errmsg_setf(err, "entry %u: bad path length %u or mode %#o", i, plen, mode);
		return KB_EPROTO;
	}
	if (dlen > VMK_CFG_FILE_MAX) {
		kb_errmsg_setf(err, "entry %u: %u bytes of data, at most %u allowed", i, dlen,
			       VMK_CFG_FILE_MAX);
		return KB_ETOOBIG;
	}
	path = kb_rd_bytes(r, plen);
	e->data = kb_rd_bytes(r, dlen);
	if (path == NULL || e->data == NULL) {
		kb_errmsg_setf(err, "entry %u: runs past the end", i);
		return KB_EPROTO;
	}
	memcpy(e->path, path, plen);
	e->path[plen] = '\0';
	if (memchr(path, '\0', plen) != NULL || !vmk_cfg_path_valid(e->path, &why) ||
	    vmk_cfg_path_is_log(e->path)) {
		kb_errmsg_setf(err, "entry %u: bad path: %s", i,
			       why.msg[0] ? why.msg : "logs are never archived");
		return KB_ECONFIG;
	}
	if (prev != NULL && strcmp(prev->path, e->path) >= 0) {
		kb_errmsg_setf(err, "entry %u: %s is out of order or repeated", i, e->path);
		return KB_EPROTO;
	}
	rv = vmk_cfg_contents_check(e->path, e->data, e->len, err);
	if (rv < 0)
		kb_errmsg_wrapf(err, "entry %u (%s)", i, e->path);
	return rv;
}

int vmk_cfg_kar_decode(const void *p, size_t len, struct vmk_cfg_kar *out, struct kb_errmsg *err)
{
	const uint8_t *b = p;
	struct kb_reader r;
	uint32_t version, n, crc;
	int rv = 0;

	memset(out, 0, sizeof(*out));
	if (len > VMK_CFG_ARCHIVE_MAX) {
		kb_errmsg_setf(err, "archive is %zu bytes, at most %u allowed", len,
			       VMK_CFG_ARCHIVE_MAX);
		return KB_ETOOBIG;
	}
	if (len >= 8 && memcmp(b, KAR_MAGIC, 8) != 0) {
		kb_errmsg_setf(err, "not a config archive (bad magic)");
		return KB_EPROTO;
	}
	if (len < KAR_HEADER + KAR_TRAILER) {
		kb_errmsg_setf(err, "archive cut short: %zu bytes", len);
		return KB_ETRUNCATED;
	}
	kb_rd_init(&r, b, len - KAR_TRAILER);
	kb_rd_bytes(&r, 8);
	version = kb_rd_u32(&r);
	n = kb_rd_u32(&r);
	out->generation = kb_rd_u64(&r);
	out->written_ns = kb_rd_u64(&r);
	if (version != KAR_VERSION) {
		kb_errmsg_setf(err, "archive version %u, this vmkernel reads %u", version,
			       KAR_VERSION);
		return KB_EVERSION;
	}
	if (memcmp(b + len - 4, KAR_END, 4) != 0) {
		kb_errmsg_setf(err, "archive cut short or damaged: no end marker");
		return KB_ETRUNCATED;
	}
	memcpy(&crc, b + len - KAR_TRAILER, 4);
	crc = le32toh(crc);
	if (crc != kb_crc32c(0, b, len - KAR_TRAILER)) {
		kb_errmsg_setf(err, "archive damaged: checksum mismatch");
		return KB_ECHECKSUM;
	}
	if (n > VMK_CFG_FILES_MAX || (uint64_t)n * KAR_ENTRY_HDR > kb_rd_left(&r)) {
		kb_errmsg_setf(err, "archive claims %u entries, more than it can hold", n);
		return n > VMK_CFG_FILES_MAX ? KB_ETOOBIG : KB_EPROTO;
	}
	out->entries = kb_calloc(n ? n : 1, sizeof(*out->entries));
	if (out->entries == NULL) {
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	for (uint32_t i = 0; i < n && rv == 0; i++)
		rv = decode_entry(&r, i, &out->entries[i], i ? &out->entries[i - 1] : NULL, err);
	if (rv == 0 && kb_rd_left(&r) != 0) {
		kb_errmsg_setf(err, "%zu stray bytes after the last entry", kb_rd_left(&r));
		rv = KB_EPROTO;
	}
	if (rv < 0) {
		vmk_cfg_kar_free(out);
		return rv;
	}
	out->n = n;
	return 0;
}
