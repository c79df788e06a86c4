/*
 * Fuzz target: the config store's archive decoder (kernel/cfg/archive.c), which reads
 * config.kar at start and every archive a client uploads. Each input is decoded twice: as
 * it is, and with its trailer made right (CRC-32C and end marker), so mutations get past
 * the checksum to the structure checks. A refused input must come with a message. An
 * accepted one must hold only what the decoder promises (at most VMK_CFG_FILES_MAX entries
 * with valid, persistent, strictly ascending paths, each at most VMK_CFG_FILE_MAX bytes
 * inside the input), must encode back to exactly the same bytes, and must import into a
 * store.
 */
#include <endian.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kernel/cfg/cfg.h"
#include "lib/crc.h"
#include "lib/heap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vmk_cfg *store;
static struct kb_logger quiet;

static void bad(const char *what)
{
	fprintf(stderr, "fuzz_cfg_archive: %s\n", what);
	abort();
}

static void check(const uint8_t *p, size_t size)
{
	struct kb_errmsg err = {{0}};
	struct vmk_cfg_kar k;
	struct kb_buf again;

	if (vmk_cfg_kar_decode(p, size, &k, &err) < 0) {
		if (err.msg[0] == '\0')
			bad("a refused archive gave no message");
		return;
	}
	if (k.n > VMK_CFG_FILES_MAX)
		bad("too many entries accepted");
	for (uint32_t i = 0; i < k.n; i++) {
		const struct vmk_cfg_kar_entry *e = &k.entries[i];
		if (!vmk_cfg_path_valid(e->path, NULL) || vmk_cfg_path_is_log(e->path) ||
		    e->len > VMK_CFG_FILE_MAX ||
		    (e->len && (e->data < p || e->data + e->len > p + size)) ||
		    (i > 0 && strcmp(k.entries[i - 1].path, e->path) >= 0))
			bad("accepted a bad entry");
	}
	kb_buf_init(&again, 0);
	if (vmk_cfg_kar_encode(k.generation, k.written_ns, k.entries, k.n, &again) < 0 ||
	    again.len != size || memcmp(again.data, p, size) != 0)
		bad("an accepted archive does not encode back to the same bytes");
	kb_buf_close(&again);
	if (vmk_cfg_import(store, p, size, NULL, &err) < 0)
		bad("an accepted archive does not import");
	vmk_cfg_kar_free(&k);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *fixed;
	uint32_t crc;

	if (store == NULL) {
		struct vmk_cfg_config cfg = {.log = &quiet};
		struct kb_errmsg err = {{0}};
		kb_log_init(&quiet, "fuzz", -1, -1);
		if (vmk_cfg_create(&cfg, &store, &err) < 0)
			bad("cannot make a store");
	}
	check(data, size);
	if (size < 40 || size > VMK_CFG_ARCHIVE_MAX)
		return 0;
	fixed = malloc(size);
	if (fixed == NULL)
		return 0;
	memcpy(fixed, data, size);
	memcpy(fixed + size - 4, "KEND", 4);
	crc = htole32(kb_crc32c(0, fixed, size - 8));
	memcpy(fixed + size - 8, &crc, 4);
	check(fixed, size);
	free(fixed);
	return 0;
}
