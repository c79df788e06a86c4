/*
 * The records of the vMotion stream (wire.h; the format is in docs/vmotion.md, "The stream",
 * and docs/ft.md for the FT records): decoding a payload with its strict size and field
 * checks (vmo_decode, pure: the fuzz targets call it directly), and the typed senders, which
 * refuse (-EINVAL, nothing sent) what the receiver would refuse.
 */
#include <errno.h>
#include <string.h>
#include <sys/uio.h>

#include "vmotion/wire_int.h"

_Static_assert(16 + VMO_PAGES_MAX * VMO_PAGE_SIZE <= VMO_REC_MAX, "a full PAGES record fits");

const char *vmo__type_name(int type)
{
	static const char *const names[] = {
	    [VMO_PAGES] = "PAGES", [VMO_ZERO] = "ZERO",	  [VMO_ROUND] = "ROUND",
	    [VMO_FINAL] = "FINAL", [VMO_STATE] = "STATE", [VMO_STATE_END] = "STATE_END",
	    [VMO_READY] = "READY", [VMO_GO] = "GO",	  [VMO_RESUMED] = "RESUMED",
	    [VMO_ABORT] = "ABORT", [VMO_SYNC] = "SYNC",	  [VMO_SYNCED] = "SYNCED",
	    [VMO_DISK] = "DISK",   [VMO_CKPT] = "CKPT",	  [VMO_CKPT_END] = "CKPT_END",
	    [VMO_ACK] = "ACK",
	};

	if (type >= VMO_PAGES && type <= VMO_ACK)
		return names[type];
	return "unknown";
}

int vmo__check_pages(int type, uint64_t first, uint32_t n, uint32_t index, uint32_t count,
		     uint64_t guest_pages, int bad, struct kb_errmsg *err)
{
	uint64_t last = first + n - 1;

	if (first >= guest_pages || n > guest_pages - first) {
		kb_errmsg_setf(err, "stream %u: %s pages %llu+%u beyond the guest's %llu pages",
			       index, vmo__type_name(type), (unsigned long long)first, n,
			       (unsigned long long)guest_pages);
		return bad;
	}
	if (vmo_stream_of(first, count) != index) {
		kb_errmsg_setf(err, "stream %u: %s page %llu belongs to stream %u", index,
			       vmo__type_name(type), (unsigned long long)first,
			       vmo_stream_of(first, count));
		return bad;
	}
	if ((type == VMO_PAGES || count > 1) && first / VMO_PAGES_MAX != last / VMO_PAGES_MAX) {
		kb_errmsg_setf(err, "stream %u: %s pages %llu..%llu cross a chunk of %u pages",
			       index, vmo__type_name(type), (unsigned long long)first,
			       (unsigned long long)last, VMO_PAGES_MAX);
		return bad;
	}
	return 0;
}

static int bad_len(int type, uint32_t index, uint32_t len, const char *want, struct kb_errmsg *err)
{
	kb_errmsg_setf(err, "stream %u: %s record of %u bytes (%s)", index, vmo__type_name(type),
		       len, want);
	return KB_EPROTO;
}

int vmo__bad_field(int type, uint32_t index, const char *what, struct kb_errmsg *err)
{
	kb_errmsg_setf(err, "stream %u: %s record: %s", index, vmo__type_name(type), what);
	return KB_EPROTO;
}

int vmo_decode(enum vmo_type type, const uint8_t *payload, uint32_t len, uint32_t index,
	       uint32_t count, uint64_t guest_pages, struct vmo_rec *rec, struct kb_errmsg *err)
{
	int t = (int)type;
	uint32_t n, tl;
	int32_t code;

	if (count < 1 || count > VMO_MAX_STREAMS || index >= count) {
		kb_errmsg_setf(err, "vmotion: stream %u of %u", index, count);
		return -EINVAL;
	}
	if (len > VMO_REC_MAX) {
		kb_errmsg_setf(err, "stream %u: %s record of %u bytes exceeds %u", index,
			       vmo__type_name(t), len, VMO_REC_MAX);
		return KB_ETOOBIG;
	}
	memset(rec, 0, sizeof(*rec));
	rec->type = type;
	switch (t) {
	case VMO_PAGES:
	case VMO_ZERO:
		if (len < 16)
			return bad_len(t, index, len, "at least 16", err);
		if (get_le32(payload + 12) != 0)
			return vmo__bad_field(t, index, "reserved field not zero", err);
		n = get_le32(payload + 8);
		if (n < 1 || n > (t == VMO_PAGES ? VMO_PAGES_MAX : VMO_ZERO_MAX)) {
			kb_errmsg_setf(err, "stream %u: %s record of %u pages (1..%u)", index,
				       vmo__type_name(t), n,
				       t == VMO_PAGES ? VMO_PAGES_MAX : VMO_ZERO_MAX);
			return KB_EPROTO;
		}
		if (t == VMO_PAGES && len != 16 + (uint64_t)n * VMO_PAGE_SIZE)
			return bad_len(t, index, len, "16 + count * 4096", err);
		if (t == VMO_ZERO && len != 16)
			return bad_len(t, index, len, "16", err);
		rec->u.pages.first = get_le64(payload);
		rec->u.pages.count = n;
		rec->u.pages.data = t == VMO_PAGES ? payload + 16 : NULL;
		return vmo__check_pages(t, rec->u.pages.first, n, index, count, guest_pages,
					KB_EPROTO, err);
	case VMO_ROUND:
		if (len != 16)
			return bad_len(t, index, len, "16", err);
		if (get_le32(payload + 4) != 0)
			return vmo__bad_field(t, index, "reserved field not zero", err);
		rec->u.round.round = get_le32(payload);
		rec->u.round.pages = get_le64(payload + 8);
		return 0;
	case VMO_FINAL:
	case VMO_GO:
	case VMO_SYNC:
	case VMO_SYNCED:
	case VMO_CKPT:
	case VMO_ACK:
		if (len != 8)
			return bad_len(t, index, len, "8", err);
		if (t == VMO_FINAL)
			rec->u.final_pages = get_le64(payload);
		else if (t == VMO_GO)
			rec->u.go_epoch = get_le64(payload);
		else if (t == VMO_SYNC || t == VMO_SYNCED)
			rec->u.sync_seq = get_le64(payload);
		else
			rec->u.ckpt = get_le64(payload);
		return 0;
	case VMO_DISK:
		if (len < 16 + 512 || len > 16 + VMO_DISK_DATA_MAX || (len - 16) % 512 != 0)
			return bad_len(t, index, len, "16 + 512..1 MiB in multiples of 512", err);
		if (get_le32(payload + 4) != 0)
			return vmo__bad_field(t, index, "reserved field not zero", err);
		rec->u.disk.index = get_le32(payload);
		rec->u.disk.offset = get_le64(payload + 8);
		if (rec->u.disk.index >= VMO_DISK_MAX)
			return vmo__bad_field(t, index, "disk index beyond 15", err);
		if (rec->u.disk.offset % 512 != 0 || rec->u.disk.offset > (UINT64_MAX >> 1))
			return vmo__bad_field(t, index, "offset not a multiple of 512", err);
		rec->u.disk.data = payload + 16;
		rec->u.disk.len = len - 16;
		return 0;
	case VMO_CKPT_END:
		if (len != 40)
			return bad_len(t, index, len, "40", err);
		if (get_le32(payload + 36) != 0)
			return vmo__bad_field(t, index, "reserved field not zero", err);
		rec->u.ckpt_end.ckpt = get_le64(payload);
		rec->u.ckpt_end.pages = get_le64(payload + 8);
		rec->u.ckpt_end.disk_bytes = get_le64(payload + 16);
		rec->u.ckpt_end.state_len = get_le64(payload + 24);
		rec->u.ckpt_end.state_crc = get_le32(payload + 32);
		return 0;
	case VMO_STATE:
	case VMO_STATE_END:
		if (index != 0)
			return vmo__bad_field(t, index, "the state travels on stream 0 only", err);
		if (t == VMO_STATE) {
			if (len == 0)
				return bad_len(t, index, len, "at least 1", err);
			rec->u.state.data = payload;
			rec->u.state.len = len;
			return 0;
		}
		if (len != 16)
			return bad_len(t, index, len, "16", err);
		if (get_le32(payload + 12) != 0)
			return vmo__bad_field(t, index, "reserved field not zero", err);
		rec->u.state_end.length = get_le64(payload);
		rec->u.state_end.crc = get_le32(payload + 8);
		return 0;
	case VMO_READY:
	case VMO_RESUMED:
		if (len != 0)
			return bad_len(t, index, len, "0", err);
		return 0;
	case VMO_ABORT:
		if (len < 8)
			return bad_len(t, index, len, "at least 8", err);
		code = (int32_t)get_le32(payload);
		tl = get_le32(payload + 4);
		if (code >= 0)
			return vmo__bad_field(t, index, "code is not a negative error code", err);
		if (tl > VMO_ABORT_TEXT_MAX)
			return vmo__bad_field(t, index, "text longer than 256 bytes", err);
		if (len != 8 + tl)
			return bad_len(t, index, len, "8 + text length", err);
		if (memchr(payload + 8, 0, tl) != NULL)
			return vmo__bad_field(t, index, "NUL byte in the text", err);
		rec->u.abort.code = (int)code;
		memcpy(rec->u.abort.text, payload + 8, tl);
		rec->u.abort.text[tl] = '\0';
		return 0;
	default:
		kb_errmsg_setf(err, "stream %u: unknown record type %d", index, t);
		return KB_EPROTO;
	}
}

/* ---- the typed senders ------------------------------------------------------------------ */

static int send_fixed(struct vmo_conn *c, enum vmo_type type, const uint8_t *p, size_t n,
		      struct kb_errmsg *err)
{
	struct iovec iov = {.iov_base = (void *)p, .iov_len = n};

	return vmo_send(c, type, &iov, n ? 1 : 0, err);
}

int vmo_send_pages(struct vmo_conn *c, uint64_t first, uint32_t count, const void *data,
		   struct kb_errmsg *err)
{
	uint8_t hdr[16];
	struct iovec iov[2];
	int rc;

	if (count < 1 || count > VMO_PAGES_MAX || data == NULL) {
		kb_errmsg_setf(err, "stream %u: PAGES of %u pages (1..%u)", c->index, count,
			       VMO_PAGES_MAX);
		return -EINVAL;
	}
	rc = vmo__check_pages(VMO_PAGES, first, count, c->index, c->count, c->guest_pages, -EINVAL,
			      err);
	if (rc)
		return rc;
	put_le64(hdr, first);
	put_le32(hdr + 8, count);
	put_le32(hdr + 12, 0);
	iov[0] = (struct iovec){.iov_base = hdr, .iov_len = sizeof(hdr)};
	iov[1] = (struct iovec){.iov_base = (void *)data, .iov_len = (size_t)count * VMO_PAGE_SIZE};
	return vmo_send(c, VMO_PAGES, iov, 2, err);
}

int vmo_send_zero(struct vmo_conn *c, uint64_t first, uint32_t count, struct kb_errmsg *err)
{
	uint8_t p[16];
	int rc;

	if (count < 1 || count > VMO_ZERO_MAX) {
		kb_errmsg_setf(err, "stream %u: ZERO of %u pages (1..%u)", c->index, count,
			       VMO_ZERO_MAX);
		return -EINVAL;
	}
	rc = vmo__check_pages(VMO_ZERO, first, count, c->index, c->count, c->guest_pages, -EINVAL,
			      err);
	if (rc)
		return rc;
	put_le64(p, first);
	put_le32(p + 8, count);
	put_le32(p + 12, 0);
	return send_fixed(c, VMO_ZERO, p, sizeof(p), err);
}

int vmo_send_round(struct vmo_conn *c, uint32_t round, uint64_t pages, struct kb_errmsg *err)
{
	uint8_t p[16];

	put_le32(p, round);
	put_le32(p + 4, 0);
	put_le64(p + 8, pages);
	return send_fixed(c, VMO_ROUND, p, sizeof(p), err);
}

int vmo_send_final(struct vmo_conn *c, uint64_t pages, struct kb_errmsg *err)
{
	uint8_t p[8];

	put_le64(p, pages);
	return send_fixed(c, VMO_FINAL, p, sizeof(p), err);
}

int vmo_send_state_end(struct vmo_conn *c, uint64_t length, uint32_t crc, struct kb_errmsg *err)
{
	uint8_t p[16];

	put_le64(p, length);
	put_le32(p + 8, crc);
	put_le32(p + 12, 0);
	return send_fixed(c, VMO_STATE_END, p, sizeof(p), err);
}

int vmo_send_go(struct vmo_conn *c, uint64_t epoch, struct kb_errmsg *err)
{
	uint8_t p[8];

	put_le64(p, epoch);
	return send_fixed(c, VMO_GO, p, sizeof(p), err);
}

int vmo_send_empty(struct vmo_conn *c, enum vmo_type type, struct kb_errmsg *err)
{
	if (type != VMO_READY && type != VMO_RESUMED) {
		kb_errmsg_setf(err, "stream %u: a %s record is not empty", c->index,
			       vmo__type_name(type));
		return -EINVAL;
	}
	return send_fixed(c, type, NULL, 0, err);
}

int vmo_send_sync(struct vmo_conn *c, enum vmo_type type, uint64_t seq, struct kb_errmsg *err)
{
	uint8_t p[8];

	if (type != VMO_SYNC && type != VMO_SYNCED) {
		kb_errmsg_setf(err, "stream %u: a %s record is not a sync", c->index,
			       vmo__type_name(type));
		return -EINVAL;
	}
	put_le64(p, seq);
	return send_fixed(c, type, p, sizeof(p), err);
}

int vmo_send_ckpt(struct vmo_conn *c, enum vmo_type type, uint64_t ckpt, struct kb_errmsg *err)
{
	uint8_t p[8];

	if (!c->ft || (type != VMO_CKPT && type != VMO_ACK)) {
		kb_errmsg_setf(err, "stream %u: a %s record on a %s stream", c->index,
			       vmo__type_name(type), c->ft ? "FT" : "vMotion");
		return -EINVAL;
	}
	put_le64(p, ckpt);
	return send_fixed(c, type, p, sizeof(p), err);
}

int vmo_send_disk(struct vmo_conn *c, uint32_t index, uint64_t offset, const void *data,
		  uint32_t len, struct kb_errmsg *err)
{
	uint8_t hdr[16];
	struct iovec iov[2];

	if (!c->ft || index >= VMO_DISK_MAX || offset % 512 != 0 || offset > (UINT64_MAX >> 1) ||
	    len < 512 || len > VMO_DISK_DATA_MAX || len % 512 != 0 || data == NULL) {
		kb_errmsg_setf(err, "stream %u: DISK of %u bytes at %llu of disk %u", c->index, len,
			       (unsigned long long)offset, index);
		return -EINVAL;
	}
	put_le32(hdr, index);
	put_le32(hdr + 4, 0);
	put_le64(hdr + 8, offset);
	iov[0] = (struct iovec){.iov_base = hdr, .iov_len = sizeof(hdr)};
	iov[1] = (struct iovec){.iov_base = (void *)data, .iov_len = len};
	return vmo_send(c, VMO_DISK, iov, 2, err);
}

int vmo_send_ckpt_end(struct vmo_conn *c, uint64_t ckpt, uint64_t pages, uint64_t disk_bytes,
		      uint64_t state_len, uint32_t state_crc, struct kb_errmsg *err)
{
	uint8_t p[40];

	if (!c->ft) {
		kb_errmsg_setf(err, "stream %u: a CKPT_END record on a vMotion stream", c->index);
		return -EINVAL;
	}
	put_le64(p, ckpt);
	put_le64(p + 8, pages);
	put_le64(p + 16, disk_bytes);
	put_le64(p + 24, state_len);
	put_le32(p + 32, state_crc);
	put_le32(p + 36, 0);
	return send_fixed(c, VMO_CKPT_END, p, sizeof(p), err);
}

int vmo_send_abort(struct vmo_conn *c, int code, const char *text, struct kb_errmsg *err)
{
	uint8_t p[8 + VMO_ABORT_TEXT_MAX];
	size_t tl = text ? strnlen(text, VMO_ABORT_TEXT_MAX) : 0;

	if (code >= 0) {
		kb_errmsg_setf(err, "stream %u: ABORT with code %d (a negative code)", c->index,
			       code);
		return -EINVAL;
	}
	put_le32(p, (uint32_t)code);
	put_le32(p + 4, (uint32_t)tl);
	if (tl)
		memcpy(p + 8, text, tl);
	return send_fixed(c, VMO_ABORT, p, 8 + tl, err);
}
