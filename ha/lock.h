/*
 * VM lock files: which host may run a VM, at which ownership epoch.
 *
 * Each VM has <vm dir>/.lock naming (vm uuid, host id, epoch, state). The cluster's Raft
 * log names each VM's (owner host, epoch), every change of owner with a strictly higher
 * epoch; the lock is the same fact on the datastore, where a host that lost the cluster
 * still sees it. A held lock is valid while its host's lease (ha/lease.h) is alive.
 *
 * The rules are pure functions (ha_lock_decide, ha_lock_may_run) of the lock's contents,
 * the caller's host and epoch and the caller's observation of the holder's lease; the
 * file functions below only read and write records.
 *
 * File format: 1024 bytes, two 512-byte slots. A write goes to slot (seq & 1), seq one
 * above the sequence of the record it replaces, in place with one synchronous write
 * (O_DIRECT | O_DSYNC, else O_DSYNC). A reader takes the valid slot with the higher seq.
 * A torn write therefore damages only the slot being written and readers see the previous
 * record, as with an atomic replace, while the file keeps its inode so other hosts' NFS
 * clients never read a stale file handle or cached page. Slot layout (little-endian):
 *   0   u32  magic "KLK1" (0x314b4c4b)
 *   4   u16  version, 1
 *   6   u16  slot size, 512
 *   8   u64  seq (non-zero)
 *   16  u64  host id (non-zero)
 *   24  u64  epoch
 *   32  u8   state: 1 held, 2 released
 *   33  ...  zero up to 40
 *   40  char[64] vm uuid, 1..63 bytes, NUL-padded
 *   104 ...  reserved, zero
 *   508 u32  CRC-32C of bytes 0..507
 * An all-zero slot is empty (a new file). A slot that is neither empty nor valid is
 * damaged; with no valid slot and a damaged one the lock is corrupt (KB_ECHECKSUM), and
 * nobody takes it until an operator removes the file.
 *
 * File functions block on datastore I/O; call them off any event loop. No global state.
 */
#ifndef HA_LOCK_H
#define HA_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "ha/hb.h"
#include "ha/lease.h"
#include "lib/err.h"

#define HA_LOCK_MAGIC	  0x314b4c4bu /* "KLK1" on disk */
#define HA_LOCK_VERSION	  1
#define HA_LOCK_SLOT_SIZE 512
#define HA_LOCK_FILE_SIZE (2 * HA_LOCK_SLOT_SIZE)
#define HA_LOCK_UUID_MAX  64 /* uuid bytes + NUL */
#define HA_LOCK_NAME	  ".lock"

enum ha_lock_state {
	HA_LOCK_HELD = 1,
	HA_LOCK_RELEASED = 2,
};

struct ha_lock {
	uint64_t seq; /* write sequence; chooses the slot */
	uint64_t host_id;
	uint64_t epoch;
	enum ha_lock_state state;
	char vm_uuid[HA_LOCK_UUID_MAX];
};

/* What a host at (host, epoch) may do with the lock it read. */
enum ha_lock_verdict {
	HA_LOCK_TAKE = 1,	/* write (host, epoch, held) */
	HA_LOCK_OURS,		/* already held by host at epoch: nothing to write */
	HA_LOCK_REFUSE_STALE,	/* the lock has a higher epoch: the caller's view is old */
	HA_LOCK_REFUSE_HELD,	/* another host holds it at a lower epoch, its lease alive */
	HA_LOCK_REFUSE_CONFLICT /* another host at the caller's own epoch: views disagree */
};

/* Decides whether host at epoch may take the lock whose current contents are cur (NULL:
 * no lock yet). holder_lease is the caller's own observation of cur->host_id's lease
 * (ignored when cur is NULL or names host). Rules, in order:
 *   - no lock: TAKE;
 *   - cur->epoch > epoch: REFUSE_STALE (epochs never go back, whatever the state);
 *   - cur->epoch == epoch and another host: REFUSE_CONFLICT (one owner per epoch);
 *   - cur->epoch == epoch, host, held: OURS; released: TAKE;
 *   - cur->epoch < epoch: TAKE when released, when held by host itself, or when the
 *     holder's lease has expired; REFUSE_HELD while another holder's lease is alive.
 * A lower epoch alone never displaces a live holder: its vmx would only notice at its next
 * read of the lock, so two hosts could run the VM in between. Planned moves release first
 * (the source writes released at its epoch), HA takes over only after expiry. */
enum ha_lock_verdict ha_lock_decide(const struct ha_lock *cur, uint64_t host, uint64_t epoch,
				    enum ha_lease_state holder_lease);

/* Whether a vmx of host may start or resume guest execution at epoch: the lock (cur,
 * NULL: none) holds (vm_uuid, host, epoch) and the cluster names cluster_host at
 * cluster_epoch equal to (host, epoch). The vmx also stops when ha_self_fence_due(). */
bool ha_lock_may_run(const struct ha_lock *cur, const char *vm_uuid, uint64_t host, uint64_t epoch,
		     uint64_t cluster_host, uint64_t cluster_epoch);

const char *ha_lock_verdict_str(enum ha_lock_verdict v);

/* Encodes lk into one slot (out: HA_LOCK_SLOT_SIZE bytes). lk must be valid (uuid 1..63
 * bytes, non-zero seq and host). */
void ha_lock_encode(const struct ha_lock *lk, uint8_t out[HA_LOCK_SLOT_SIZE]);

/* Decodes one slot (untrusted). Returns 0, KB_ENOTFOUND for an all-zero slot,
 * KB_ETRUNCATED, KB_EPROTO, KB_EVERSION or KB_ECHECKSUM. lk untouched on error. */
int ha_lock_decode_slot(const uint8_t *p, size_t len, struct ha_lock *lk);

/* Decodes a whole file image of len bytes: the valid slot with the higher seq. Returns 0,
 * KB_ENOTFOUND (empty or no slot written), KB_ECHECKSUM (no valid slot, one damaged), or
 * a slot's error. */
int ha_lock_decode(const uint8_t *p, size_t len, struct ha_lock *lk);

/* Reads <path>. Returns 0, KB_ENOTFOUND (no file or nothing written yet), a decode error,
 * or -errno; err (may be NULL) names the path. */
int ha_lock_read(const char *path, struct ha_lock *lk, struct kb_errmsg *err);

/* Writes lk (lk->seq chooses the slot) into path, creating it, with one synchronous write.
 * opts: 0 or HA_IO_NO_DIRECT. Returns 0, -EINVAL for an invalid lk, or -errno. */
int ha_lock_write(const char *path, const struct ha_lock *lk, unsigned opts, struct kb_errmsg *err);

/* Asks the caller for its observation of host_id's lease. */
typedef enum ha_lease_state (*ha_lease_lookup_cb)(void *arg, uint64_t host_id);

/* Takes the lock at path for (vm_uuid, host, epoch): reads it, decides with
 * ha_lock_decide (lookup gives the holder's lease), writes on TAKE and reads back to
 * check that the record on disk is the one written. Returns 0 (TAKE or OURS; *out, if not
 * NULL, the lock now on disk), KB_ESTATE with the verdict in err when refused or when
 * another writer's record replaced ours, KB_ECONFIG when the lock names another VM, or a
 * read or write error. */
int ha_lock_acquire(const char *path, const char *vm_uuid, uint64_t host, uint64_t epoch,
		    ha_lease_lookup_cb lookup, void *arg, unsigned opts, struct ha_lock *out,
		    struct kb_errmsg *err);

/* Releases the lock held by (host, epoch): writes state released at the same epoch.
 * Returns 0 (also when it is already released by host at epoch), KB_ESTATE when the lock
 * names another host or epoch (not ours to release), or a read or write error. */
int ha_lock_release(const char *path, const char *vm_uuid, uint64_t host, uint64_t epoch,
		    unsigned opts, struct kb_errmsg *err);

#endif
