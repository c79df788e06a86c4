/*
 * VM lock records and the ownership rules (see lock.h): encoding, strict decoding of the
 * two-slot image, and the pure decisions of who may write the lock and who may run.
 */
#include "ha/ha_internal.h"
#include "ha/lock.h"
#include "lib/crc.h"

#define OFF_MAGIC   0
#define OFF_VERSION 4
#define OFF_SIZE    6
#define OFF_SEQ	    8
#define OFF_HOST    16
#define OFF_EPOCH   24
#define OFF_STATE   32
#define OFF_UUID    40
#define OFF_END	    (OFF_UUID + HA_LOCK_UUID_MAX)
#define OFF_CRC	    (HA_LOCK_SLOT_SIZE - 4)

enum ha_lock_verdict ha_lock_decide(const struct ha_lock *cur, uint64_t host, uint64_t epoch,
				    enum ha_lease_state holder_lease)
{
	if (cur == NULL)
		return HA_LOCK_TAKE;
	if (cur->epoch > epoch)
		return HA_LOCK_REFUSE_STALE;
	if (cur->epoch == epoch) {
		if (cur->host_id != host)
			return HA_LOCK_REFUSE_CONFLICT;
		return cur->state == HA_LOCK_HELD ? HA_LOCK_OURS : HA_LOCK_TAKE;
	}
	if (cur->state == HA_LOCK_RELEASED || cur->host_id == host ||
	    holder_lease == HA_LEASE_EXPIRED)
		return HA_LOCK_TAKE;
	return HA_LOCK_REFUSE_HELD;
}

bool ha_lock_may_run(const struct ha_lock *cur, const char *vm_uuid, uint64_t host, uint64_t epoch,
		     uint64_t cluster_host, uint64_t cluster_epoch)
{
	return cur != NULL && cur->state == HA_LOCK_HELD && cur->host_id == host &&
	       cur->epoch == epoch && strcmp(cur->vm_uuid, vm_uuid) == 0 && cluster_host == host &&
	       cluster_epoch == epoch;
}

const char *ha_lock_verdict_str(enum ha_lock_verdict v)
{
	switch (v) {
	case HA_LOCK_TAKE:
		return "take";
	case HA_LOCK_OURS:
		return "already ours";
	case HA_LOCK_REFUSE_STALE:
		return "refused: the lock has a higher epoch";
	case HA_LOCK_REFUSE_HELD:
		return "refused: held by a host whose lease is alive";
	case HA_LOCK_REFUSE_CONFLICT:
		return "refused: another host at the same epoch";
	}
	return "unknown";
}

void ha_lock_encode(const struct ha_lock *lk, uint8_t out[HA_LOCK_SLOT_SIZE])
{
	size_t n = strnlen(lk->vm_uuid, HA_LOCK_UUID_MAX - 1);

	memset(out, 0, HA_LOCK_SLOT_SIZE);
	ha__put_le32(out + OFF_MAGIC, HA_LOCK_MAGIC);
	ha__put_le16(out + OFF_VERSION, HA_LOCK_VERSION);
	ha__put_le16(out + OFF_SIZE, HA_LOCK_SLOT_SIZE);
	ha__put_le64(out + OFF_SEQ, lk->seq);
	ha__put_le64(out + OFF_HOST, lk->host_id);
	ha__put_le64(out + OFF_EPOCH, lk->epoch);
	out[OFF_STATE] = (uint8_t)lk->state;
	memcpy(out + OFF_UUID, lk->vm_uuid, n);
	ha__put_le32(out + OFF_CRC, kb_crc32c(0, out, OFF_CRC));
}

int ha_lock_decode_slot(const uint8_t *p, size_t len, struct ha_lock *lk)
{
	const uint8_t *u = p + OFF_UUID;
	size_t n = 0;
	uint8_t st;

	if (len < HA_LOCK_SLOT_SIZE)
		return KB_ETRUNCATED;
	if (ha__zero(p, 0, HA_LOCK_SLOT_SIZE))
		return KB_ENOTFOUND;
	if (ha__le32(p + OFF_MAGIC) != HA_LOCK_MAGIC)
		return KB_EPROTO;
	if (ha__le16(p + OFF_VERSION) != HA_LOCK_VERSION)
		return KB_EVERSION;
	if (ha__le32(p + OFF_CRC) != kb_crc32c(0, p, OFF_CRC))
		return KB_ECHECKSUM;
	while (n < HA_LOCK_UUID_MAX && u[n])
		n++;
	st = p[OFF_STATE];
	if (ha__le16(p + OFF_SIZE) != HA_LOCK_SLOT_SIZE || ha__le64(p + OFF_SEQ) == 0 ||
	    ha__le64(p + OFF_HOST) == 0 || (st != HA_LOCK_HELD && st != HA_LOCK_RELEASED) ||
	    !ha__zero(p, OFF_STATE + 1, OFF_UUID) || n == 0 || n == HA_LOCK_UUID_MAX ||
	    !ha__zero(u, n, HA_LOCK_UUID_MAX) || !ha__zero(p, OFF_END, OFF_CRC))
		return KB_EPROTO;
	lk->seq = ha__le64(p + OFF_SEQ);
	lk->host_id = ha__le64(p + OFF_HOST);
	lk->epoch = ha__le64(p + OFF_EPOCH);
	lk->state = (enum ha_lock_state)st;
	memcpy(lk->vm_uuid, u, HA_LOCK_UUID_MAX);
	return 0;
}

int ha_lock_decode(const uint8_t *p, size_t len, struct ha_lock *lk)
{
	struct ha_lock s[2];
	int rc[2];

	if (len == 0)
		return KB_ENOTFOUND;
	if (len < HA_LOCK_FILE_SIZE)
		return KB_ETRUNCATED;
	for (int i = 0; i < 2; i++)
		rc[i] = ha_lock_decode_slot(p + i * HA_LOCK_SLOT_SIZE, HA_LOCK_SLOT_SIZE, &s[i]);
	if (rc[0] == 0 && rc[1] == 0) {
		*lk = s[0].seq > s[1].seq ? s[0] : s[1];
		return 0;
	}
	for (int i = 0; i < 2; i++)
		if (rc[i] == 0) {
			*lk = s[i];
			return 0;
		}
	if (rc[0] == KB_ENOTFOUND && rc[1] == KB_ENOTFOUND)
		return KB_ENOTFOUND;
	return KB_ECHECKSUM;
}
