/*
 * Tests for the config store (kernel/cfg): path rules; put, get, list, delete and their
 * limits (per file, archive, file count) and checks (advanced.conf), each refusal leaving
 * the store as it was, out-of-memory included; logs as memory-only rings; the archive's
 * round trip and its decoder against every truncation, every flipped byte, a wrong magic
 * or version, oversized counts and lengths, out-of-order and bad entries (re-checksummed so
 * the structure checks are reached); persistence across a re-create; the fallback to
 * config.kar.1 when config.kar is torn, corrupt or missing, with its event; both bad; a
 * save that fails (ENOSPC through the write hook, EFBIG through RLIMIT_FSIZE) keeping the
 * change in memory and the old archive intact, then succeeding at the next change; import
 * checked whole; the change callback; concurrent puts. Each test has its own directory.
 */
#include <endian.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "kernel/cfg/cfg.h"
#include "lib/crc.h"
#include "lib/file.h"
#include "lib/heap.h"

static char dir[64];
static struct kb_logger quiet;

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup_dir(void **state)
{
	snprintf(dir, sizeof(dir), "/tmp/keel-cfg-XXXXXX");
	kb_log_init(&quiet, "test", KB_LOG_ERROR - 1, -1);
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	return nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static char *at(char *out, const char *name)
{
	snprintf(out, PATH_MAX, "%s/%s", dir, name);
	return out;
}

static struct vmk_cfg *open_store(vmk_cfg_write_cb w)
{
	struct vmk_cfg_config cfg = {.dir = dir, .log = &quiet, .write_fn = w};
	struct kb_errmsg err = {{0}};
	struct vmk_cfg *c = NULL;

	assert_int_equal(vmk_cfg_create(&cfg, &c, &err), 0);
	return c;
}

/* A store without a directory (nothing saved): for tests of many changes. */
static struct vmk_cfg *open_mem_store(void)
{
	struct vmk_cfg_config cfg = {.log = &quiet};
	struct kb_errmsg err = {{0}};
	struct vmk_cfg *c = NULL;

	assert_int_equal(vmk_cfg_create(&cfg, &c, &err), 0);
	return c;
}

static void put_ok(struct vmk_cfg *c, const char *path, const char *text)
{
	struct kb_errmsg err = {{0}};
	bool saved = false;

	assert_int_equal(vmk_cfg_put(c, path, text, strlen(text), 0, &saved, &err), 0);
}

/* The contents of path as a string (static buffer), or NULL when missing. */
static const char *get_str(struct vmk_cfg *c, const char *path)
{
	static char out[VMK_CFG_LOG_MAX + 1];
	struct kb_errmsg err = {{0}};
	struct kb_buf b;
	int rv;

	kb_buf_init(&b, 0);
	rv = vmk_cfg_get(c, path, &b, NULL, &err);
	if (rv < 0) {
		assert_int_equal(rv, KB_ENOTFOUND);
		kb_buf_close(&b);
		return NULL;
	}
	assert_true(b.len < sizeof(out));
	memcpy(out, b.data ? (const char *)b.data : "", b.len);
	out[b.len] = '\0';
	kb_buf_close(&b);
	return out;
}

static size_t file_size(const char *name)
{
	char p[PATH_MAX];
	struct stat st;

	return stat(at(p, name), &st) == 0 ? (size_t)st.st_size : 0;
}

static bool has_event(const struct vmk_cfg_status *st, int level, const char *needle)
{
	for (size_t i = 0; i < st->n_events; i++)
		if (st->events[i].level == level && strstr(st->events[i].text, needle) != NULL)
			return true;
	return false;
}

static void test_paths(void **state)
{
	static const char *const good[] = {"etc/keel/network.conf", "etc/hosts",
					   "var/log/vmkernel.log", "var/patch/p1/x.bin",
					   "etc/a-b_c+d@e.f"};
	static const char *const bad[] = {
	    "",		"/etc/hosts",  "etc",	  "etc/",     "etc//x",
	    "etc/../x", "etc/.hidden", "etc/a b", "tmp/x",    "var/log",
	    "var/log/", "var/patch",   "etc/x/",  "etc/a\\b", "etc/a/b/c/d/e/f/g/h",
	    "etc/\x01"};
	char longp[300];

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
		assert_true(vmk_cfg_path_valid(good[i], NULL));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct kb_errmsg err = {{0}};
		assert_false(vmk_cfg_path_valid(bad[i], &err));
		assert_true(err.msg[0] != '\0');
	}
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	memcpy(longp, "etc/", 4);
	assert_false(vmk_cfg_path_valid(longp, NULL));
	longp[VMK_CFG_PATH_MAX] = '\0';
	assert_true(vmk_cfg_path_valid(longp, NULL));
}

static void test_put_get_list_delete(void **state)
{
	struct vmk_cfg *c = open_store(NULL);
	struct kb_errmsg err = {{0}};
	struct vmk_cfg_stat *l, st;
	struct vmk_cfg_status s;
	struct kb_buf b;
	size_t n;

	put_ok(c, "etc/keel/b.conf", "two\n");
	put_ok(c, "etc/keel/a.conf", "one\n");
	put_ok(c, "var/log/x.log", "line\n");
	assert_string_equal(get_str(c, "etc/keel/a.conf"), "one\n");
	assert_null(get_str(c, "etc/keel/zz.conf"));
	assert_int_equal(vmk_cfg_list(c, NULL, &l, &n), 0);
	assert_int_equal(n, 3);
	assert_string_equal(l[0].path, "etc/keel/a.conf");
	assert_string_equal(l[1].path, "etc/keel/b.conf");
	assert_int_equal(l[1].generation, 1);
	assert_int_equal(l[0].generation, 2);
	assert_true(l[0].persistent);
	assert_false(l[2].persistent);
	assert_int_equal(l[0].mode, 0644);
	assert_true(l[0].mtime_ns > 0);
	kb_free(l);
	assert_int_equal(vmk_cfg_list(c, "var/", &l, &n), 0);
	assert_int_equal(n, 1);
	kb_free(l);
	/* replace keeps one entry, with a new generation and mode */
	assert_int_equal(vmk_cfg_put(c, "etc/keel/a.conf", "uno", 3, 0600, NULL, &err), 0);
	kb_buf_init(&b, 0);
	assert_int_equal(vmk_cfg_get(c, "etc/keel/a.conf", &b, &st, &err), 0);
	assert_int_equal(st.mode, 0600);
	assert_int_equal(st.size, 3);
	assert_int_equal(st.generation, 4);
	kb_buf_close(&b);
	/* an empty file is a file */
	put_ok(c, "etc/empty", "");
	assert_string_equal(get_str(c, "etc/empty"), "");
	assert_int_equal(vmk_cfg_delete(c, "etc/keel/b.conf", NULL, &err), 0);
	assert_null(get_str(c, "etc/keel/b.conf"));
	assert_int_equal(vmk_cfg_delete(c, "etc/keel/b.conf", NULL, &err), KB_ENOTFOUND);
	assert_int_equal(vmk_cfg_put(c, "../etc", "x", 1, 0, NULL, &err), KB_ECONFIG);
	assert_int_equal(vmk_cfg_get(c, "etc/../x", &b, NULL, &err), KB_ECONFIG);
	vmk_cfg_status(c, &s);
	assert_int_equal(s.files, 3);
	assert_int_equal(s.generation, 6);
	vmk_cfg_destroy(c);
}

static void test_limits(void **state)
{
	struct vmk_cfg *c = open_store(NULL);
	struct kb_errmsg err = {{0}};
	struct vmk_cfg_status before, after;
	char *big = calloc(1, VMK_CFG_ARCHIVE_MAX + 1);
	char path[64];
	int rv = 0, i;

	assert_non_null(big);
	memset(big, 'x', VMK_CFG_ARCHIVE_MAX);
	put_ok(c, "etc/keep", "kept");
	vmk_cfg_status(c, &before);
	assert_int_equal(vmk_cfg_put(c, "etc/big", big, VMK_CFG_FILE_MAX + 1, 0, NULL, &err),
			 KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "at most"));
	assert_int_equal(vmk_cfg_put(c, "etc/big", big, VMK_CFG_FILE_MAX, 0, NULL, &err), 0);
	/* the archive fills up: the fourth file of 64 KiB does not fit 224 KiB */
	for (i = 0; i < 3 && rv == 0; i++) {
		snprintf(path, sizeof(path), "etc/big%d", i);
		rv = vmk_cfg_put(c, path, big, VMK_CFG_FILE_MAX, 0, NULL, &err);
	}
	assert_int_equal(rv, KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "archive"));
	assert_null(get_str(c, path));
	/* logs do not count against the archive */
	assert_int_equal(vmk_cfg_put(c, "var/log/big.log", big, VMK_CFG_FILE_MAX, 0, NULL, &err),
			 0);
	vmk_cfg_status(c, &after);
	assert_true(after.generation > before.generation);
	/* contents the store knows are checked; a refusal changes nothing */
	put_ok(c, VMK_CFG_ADVANCED, "Misc.LogLevel = info\n");
	assert_int_equal(
	    vmk_cfg_put(c, VMK_CFG_ADVANCED, "Misc.LogLevel = loud\n", 21, 0, NULL, &err),
	    KB_ECONFIG);
	assert_non_null(strstr(err.msg, "line 1"));
	assert_string_equal(get_str(c, VMK_CFG_ADVANCED), "Misc.LogLevel = info\n");
	/* out of memory: refused, unchanged */
	vmk_cfg_status(c, &before);
	kb_heap_fail_after(0, -1);
	rv = vmk_cfg_put(c, "etc/oom", "x", 1, 0, NULL, &err);
	kb_heap_fail_reset();
	assert_int_equal(rv, -ENOMEM);
	assert_null(get_str(c, "etc/oom"));
	vmk_cfg_status(c, &after);
	assert_int_equal(after.generation, before.generation);
	free(big);
	vmk_cfg_destroy(c);
}

static void test_file_count(void **state)
{
	struct vmk_cfg *c = open_mem_store();
	struct kb_errmsg err = {{0}};
	char path[64];
	int rv = 0, i;

	for (i = 0; i < VMK_CFG_LOGS_MAX; i++) {
		snprintf(path, sizeof(path), "var/log/l%d.log", i);
		put_ok(c, path, "x\n");
	}
	assert_int_equal(vmk_cfg_append(c, "var/log/more.log", "y", 1, &err), KB_ETOOBIG);
	for (i = 0; rv == 0; i++) {
		snprintf(path, sizeof(path), "etc/f%d", i);
		rv = vmk_cfg_put(c, path, "", 0, 0, NULL, &err);
	}
	assert_int_equal(rv, KB_ETOOBIG);
	assert_int_equal(i - 1 + VMK_CFG_LOGS_MAX, VMK_CFG_FILES_MAX);
	vmk_cfg_destroy(c);
}

static void test_logs(void **state)
{
	struct vmk_cfg *c = open_store(NULL);
	struct kb_errmsg err = {{0}};
	struct kb_buf out;
	char line[100];
	const char *s;

	assert_int_equal(vmk_cfg_append(c, "etc/x", "a", 1, &err), KB_ECONFIG);
	for (int i = 0; i < 2000; i++) {
		snprintf(line, sizeof(line), "line %05d of the log, padded to some length\n", i);
		assert_int_equal(vmk_cfg_append(c, "var/log/svc.log", line, strlen(line), &err), 0);
	}
	s = get_str(c, "var/log/svc.log");
	assert_true(strlen(s) <= VMK_CFG_LOG_MAX);
	assert_true(strlen(s) > VMK_CFG_LOG_MAX - 100);
	assert_memory_equal(s, "line ", 5); /* starts at a line start */
	assert_non_null(strstr(s, "line 01999 "));
	assert_null(strstr(s, "line 00000 "));
	/* logs are never archived */
	kb_buf_init(&out, 0);
	assert_int_equal(vmk_cfg_export(c, &out, &err), 0);
	assert_null(memmem(out.data, out.len, "svc.log", 7));
	kb_buf_close(&out);
	vmk_cfg_destroy(c);
	c = open_store(NULL);
	assert_null(get_str(c, "var/log/svc.log"));
	vmk_cfg_destroy(c);
}

/* Recomputes the trailer's CRC of an archive that a test changed on purpose. */
static void recrc(uint8_t *p, size_t len)
{
	uint32_t crc = htole32(kb_crc32c(0, p, len - 8));

	memcpy(p + len - 8, &crc, 4);
}

static void build_archive(struct kb_buf *out)
{
	struct vmk_cfg_kar_entry e[3] = {
	    {.path = "etc/a", .mode = 0644, .mtime_ns = 1, .generation = 1},
	    {.path = "etc/keel/advanced.conf", .mode = 0600, .mtime_ns = 2, .generation = 2},
	    {.path = "var/patch/p/x", .mode = 0644, .mtime_ns = 3, .generation = 3},
	};

	e[0].data = (const uint8_t *)"alpha";
	e[0].len = 5;
	e[1].data = (const uint8_t *)"Misc.LogLevel = warn\n";
	e[1].len = 21;
	e[2].data = NULL;
	e[2].len = 0;
	kb_buf_init(out, 0);
	assert_int_equal(vmk_cfg_kar_encode(7, 99, e, 3, out), 0);
}

static void test_archive_round_trip(void **state)
{
	struct kb_errmsg err = {{0}};
	struct vmk_cfg_kar k;
	struct kb_buf b;

	build_archive(&b);
	assert_int_equal(vmk_cfg_kar_decode(b.data, b.len, &k, &err), 0);
	assert_int_equal(k.n, 3);
	assert_int_equal(k.generation, 7);
	assert_int_equal(k.written_ns, 99);
	assert_string_equal(k.entries[0].path, "etc/a");
	assert_int_equal(k.entries[0].len, 5);
	assert_memory_equal(k.entries[0].data, "alpha", 5);
	assert_int_equal(k.entries[1].mode, 0600);
	assert_int_equal(k.entries[2].len, 0);
	assert_int_equal(k.entries[2].generation, 3);
	vmk_cfg_kar_free(&k);
	kb_buf_close(&b);
}

static void test_archive_corruption(void **state)
{
	struct kb_errmsg err;
	struct vmk_cfg_kar k;
	struct kb_buf b;
	uint8_t *p;
	uint32_t v;

	build_archive(&b);
	p = malloc(b.len);
	assert_non_null(p);
	/* every truncation, at every byte boundary */
	for (size_t len = 0; len < b.len; len++) {
		memset(&err, 0, sizeof(err));
		assert_true(vmk_cfg_kar_decode(b.data, len, &k, &err) < 0);
		assert_true(err.msg[0] != '\0');
	}
	/* every flipped byte (each bit pattern 0x01, 0x80) */
	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			memcpy(p, b.data, b.len);
			p[i] ^= (uint8_t)(1u << bit);
			assert_true(vmk_cfg_kar_decode(p, b.len, &k, &err) < 0);
		}
	}
	/* wrong magic; wrong version (checksum made right) */
	memcpy(p, b.data, b.len);
	p[0] = 'X';
	assert_int_equal(vmk_cfg_kar_decode(p, b.len, &k, &err), KB_EPROTO);
	memcpy(p, b.data, b.len);
	v = htole32(2);
	memcpy(p + 8, &v, 4);
	recrc(p, b.len);
	assert_int_equal(vmk_cfg_kar_decode(p, b.len, &k, &err), KB_EVERSION);
	/* an entry count beyond the limit, and beyond what the bytes can hold */
	memcpy(p, b.data, b.len);
	v = htole32(VMK_CFG_FILES_MAX + 1);
	memcpy(p + 12, &v, 4);
	recrc(p, b.len);
	assert_int_equal(vmk_cfg_kar_decode(p, b.len, &k, &err), KB_ETOOBIG);
	memcpy(p, b.data, b.len);
	v = htole32(100);
	memcpy(p + 12, &v, 4);
	recrc(p, b.len);
	assert_true(vmk_cfg_kar_decode(p, b.len, &k, &err) < 0);
	/* fewer entries than present: stray bytes */
	memcpy(p, b.data, b.len);
	v = htole32(2);
	memcpy(p + 12, &v, 4);
	recrc(p, b.len);
	assert_int_equal(vmk_cfg_kar_decode(p, b.len, &k, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "stray"));
	/* a data length beyond the per-file limit, and one past the end */
	memcpy(p, b.data, b.len);
	v = htole32(VMK_CFG_FILE_MAX + 1);
	memcpy(p + 32 + 4, &v, 4);
	recrc(p, b.len);
	assert_int_equal(vmk_cfg_kar_decode(p, b.len, &k, &err), KB_ETOOBIG);
	memcpy(p, b.data, b.len);
	v = htole32(4000);
	memcpy(p + 32 + 4, &v, 4);
	recrc(p, b.len);
	assert_int_equal(vmk_cfg_kar_decode(p, b.len, &k, &err), KB_EPROTO);
	/* a bad path inside an entry ("etc/a" -> "etc/." ) */
	memcpy(p, b.data, b.len);
	p[32 + 24 + 4] = '.';
	recrc(p, b.len);
	assert_int_equal(vmk_cfg_kar_decode(p, b.len, &k, &err), KB_ECONFIG);
	/* out of order ("etc/a" -> "etc/z" sorts after etc/keel/...) */
	memcpy(p, b.data, b.len);
	p[32 + 24 + 4] = 'z';
	recrc(p, b.len);
	assert_int_equal(vmk_cfg_kar_decode(p, b.len, &k, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "order"));
	/* bad contents of a known file: advanced.conf's "warn" -> "worn" */
	memcpy(p, b.data, b.len);
	uint8_t *w = memmem(p, b.len, "warn", 4);
	assert_non_null(w);
	w[1] = 'o';
	recrc(p, b.len);
	assert_int_equal(vmk_cfg_kar_decode(p, b.len, &k, &err), KB_ECONFIG);
	/* too large as a whole */
	assert_int_equal(vmk_cfg_kar_decode(p, VMK_CFG_ARCHIVE_MAX + 1, &k, &err), KB_ETOOBIG);
	free(p);
	kb_buf_close(&b);
}

static void test_persist_and_reload(void **state)
{
	struct vmk_cfg *c = open_store(NULL);
	struct vmk_cfg_status s;

	vmk_cfg_status(c, &s);
	assert_string_equal(s.loaded_from, "none (new)");
	assert_true(has_event(&s, KB_LOG_INFO, "new, empty"));
	put_ok(c, "etc/keel/network.conf", "version 1\nvswitch \"vSwitch0\" mtu 1500\n");
	put_ok(c, "etc/hosts", "127.0.0.1 localhost\n");
	vmk_cfg_status(c, &s);
	assert_false(s.dirty);
	assert_int_equal(s.saves, 2);
	assert_int_equal(s.archive_bytes, file_size("config.kar"));
	assert_true(file_size("config.kar.1") > 0);
	assert_true(file_size("config.kar.1") < file_size("config.kar"));
	vmk_cfg_destroy(c);

	c = open_store(NULL);
	assert_string_equal(get_str(c, "etc/hosts"), "127.0.0.1 localhost\n");
	assert_string_equal(get_str(c, "etc/keel/network.conf"),
			    "version 1\nvswitch \"vSwitch0\" mtu 1500\n");
	vmk_cfg_status(c, &s);
	assert_string_equal(s.loaded_from, "config.kar");
	assert_int_equal(s.generation, 2);
	assert_true(has_event(&s, KB_LOG_INFO, "loaded config.kar"));
	/* the generation continues */
	put_ok(c, "etc/x", "y");
	vmk_cfg_status(c, &s);
	assert_int_equal(s.generation, 3);
	vmk_cfg_destroy(c);
}

/* Three saved generations (.1 holds the second), then config.kar damaged by how. */
static void damage(int how)
{
	char p[PATH_MAX];
	struct vmk_cfg *c = open_store(NULL);
	FILE *f;

	put_ok(c, "etc/one", "1");
	put_ok(c, "etc/two", "2");
	put_ok(c, "etc/three", "3");
	vmk_cfg_destroy(c);
	at(p, "config.kar");
	if (how == 0) { /* torn: half of it */
		assert_int_equal(truncate(p, (off_t)file_size("config.kar") / 2), 0);
	} else if (how == 1) { /* a flipped byte */
		f = fopen(p, "r+");
		assert_non_null(f);
		fseek(f, 40, SEEK_SET);
		fputc('!', f);
		fclose(f);
	} else { /* missing */
		assert_int_equal(unlink(p), 0);
	}
}

static void test_fallback(void **state)
{
	for (int how = 0; how < 3; how++) {
		struct vmk_cfg_status s;
		struct vmk_cfg *c;
		char p[PATH_MAX];

		damage(how);
		c = open_store(NULL);
		vmk_cfg_status(c, &s);
		assert_string_equal(s.loaded_from, "config.kar.1");
		assert_true(
		    has_event(&s, KB_LOG_WARN, "using the previous good archive config.kar.1"));
		assert_string_equal(get_str(c, "etc/two"), "2");
		assert_null(get_str(c, "etc/three"));
		/* config.kar is good again at once; a damaged one is kept aside */
		assert_false(s.dirty);
		assert_int_equal(access(at(p, "config.kar.bad"), F_OK), how == 2 ? -1 : 0);
		vmk_cfg_destroy(c);
		c = open_store(NULL);
		vmk_cfg_status(c, &s);
		assert_string_equal(s.loaded_from, "config.kar");
		assert_string_equal(get_str(c, "etc/two"), "2");
		vmk_cfg_destroy(c);
		teardown_dir(state);
		setup_dir(state);
	}
}

static void test_both_bad(void **state)
{
	char p[PATH_MAX];
	struct vmk_cfg_status s;
	struct vmk_cfg *c;

	damage(1);
	assert_int_equal(truncate(at(p, "config.kar.1"), 10), 0);
	c = open_store(NULL);
	vmk_cfg_status(c, &s);
	assert_string_equal(s.loaded_from, "none (both bad)");
	assert_true(has_event(&s, KB_LOG_ERROR, "EMPTY config store"));
	assert_int_equal(s.files, 0);
	/* nothing was removed; the first change writes a good config.kar */
	assert_int_equal(file_size("config.kar.1"), 10);
	put_ok(c, "etc/new", "n");
	vmk_cfg_destroy(c);
	c = open_store(NULL);
	assert_string_equal(get_str(c, "etc/new"), "n");
	vmk_cfg_destroy(c);
}

static int enospc_on;

static ssize_t enospc_write(int fd, const void *buf, size_t len)
{
	if (enospc_on) {
		/* a short write first, then the disk is full */
		if (len > 16 && enospc_on++ == 1)
			return write(fd, buf, 16);
		errno = ENOSPC;
		return -1;
	}
	return write(fd, buf, len);
}

static void test_enospc(void **state)
{
	struct vmk_cfg *c = open_store(enospc_write);
	struct kb_errmsg err = {{0}};
	struct vmk_cfg_status s;
	struct kb_buf before, after;
	char p[PATH_MAX];
	bool saved = true;

	put_ok(c, "etc/a", "first");
	kb_buf_init(&before, 0);
	assert_int_equal(kb_file_read_small(at(p, "config.kar"), 1 << 20, &before, &err), 0);
	enospc_on = 1;
	assert_int_equal(vmk_cfg_put(c, "etc/b", "second", 6, 0, &saved, &err), 0);
	assert_false(saved);
	vmk_cfg_status(c, &s);
	assert_true(s.dirty);
	assert_int_equal(s.last_save_code, -ENOSPC);
	assert_non_null(strstr(s.last_save_error, "No space"));
	assert_int_equal(s.save_failures, 1);
	assert_true(has_event(&s, KB_LOG_ERROR, "kept in memory"));
	assert_string_equal(get_str(c, "etc/b"), "second");
	/* the previous archive is untouched, no temporary is left */
	kb_buf_init(&after, 0);
	assert_int_equal(kb_file_read_small(at(p, "config.kar"), 1 << 20, &after, &err), 0);
	assert_int_equal(after.len, before.len);
	assert_memory_equal(after.data, before.data, before.len);
	assert_int_equal(access(at(p, "config.kar.tmp"), F_OK), -1);
	/* still full: a delete fails to save too, and is kept */
	assert_int_equal(vmk_cfg_delete(c, "etc/a", &saved, &err), 0);
	assert_false(saved);
	/* space again: the next change saves everything */
	enospc_on = 0;
	put_ok(c, "etc/c", "third");
	vmk_cfg_status(c, &s);
	assert_false(s.dirty);
	assert_int_equal(s.last_save_code, 0);
	assert_true(has_event(&s, KB_LOG_INFO, "saved again"));
	vmk_cfg_destroy(c);
	c = open_store(NULL);
	assert_null(get_str(c, "etc/a"));
	assert_string_equal(get_str(c, "etc/b"), "second");
	assert_string_equal(get_str(c, "etc/c"), "third");
	vmk_cfg_destroy(c);
	kb_buf_close(&before);
	kb_buf_close(&after);
}

/* EFBIG for real: the save runs in a child under a file-size limit smaller than the new
 * archive (SIGXFSZ ignored, so write() fails instead). */
static void test_efbig_rlimit(void **state)
{
	struct vmk_cfg *c = open_store(NULL);
	size_t old;
	pid_t pid;
	int status;

	put_ok(c, "etc/a", "small");
	vmk_cfg_destroy(c);
	old = file_size("config.kar");
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct rlimit rl = {.rlim_cur = 200, .rlim_max = RLIM_INFINITY};
		char big[1000];
		struct kb_errmsg err = {{0}};
		struct vmk_cfg_status s;
		bool saved = true;
		int ok;

		signal(SIGXFSZ, SIG_IGN);
		c = open_store(NULL);
		setrlimit(RLIMIT_FSIZE, &rl);
		memset(big, 'b', sizeof(big));
		ok = vmk_cfg_put(c, "etc/big", big, sizeof(big), 0, &saved, &err) == 0 && !saved;
		vmk_cfg_status(c, &s);
		ok = ok && s.last_save_code == -EFBIG && s.dirty;
		_exit(ok ? 0 : 1);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_int_equal(file_size("config.kar"), old);
	c = open_store(NULL);
	assert_string_equal(get_str(c, "etc/a"), "small");
	assert_null(get_str(c, "etc/big"));
	vmk_cfg_destroy(c);
}

static int changes;
static char last_change[VMK_CFG_PATH_MAX + 1];

static void on_change(void *arg, const char *path)
{
	changes++;
	snprintf(last_change, sizeof(last_change), "%s", path);
}

static void test_import_export(void **state)
{
	struct vmk_cfg_config cfg = {.dir = dir, .log = &quiet, .change_cb = on_change};
	struct kb_errmsg err = {{0}};
	struct vmk_cfg *c;
	struct kb_buf a, bad;

	c = open_store(NULL);
	put_ok(c, "etc/a", "A");
	put_ok(c, "etc/b", "B");
	kb_buf_init(&a, 0);
	assert_int_equal(vmk_cfg_export(c, &a, &err), 0);
	vmk_cfg_destroy(c);
	teardown_dir(state);
	setup_dir(state);

	assert_int_equal(vmk_cfg_create(&cfg, &c, &err), 0);
	put_ok(c, "etc/old", "O");
	put_ok(c, "var/log/keep.log", "L\n");
	assert_int_equal(changes, 2);
	/* a damaged archive changes nothing */
	kb_buf_init(&bad, 0);
	kb_buf_append(&bad, a.data, a.len);
	bad.data[bad.len / 2] ^= 1;
	assert_true(vmk_cfg_import(c, bad.data, bad.len, NULL, &err) < 0);
	assert_non_null(strstr(err.msg, "nothing changed"));
	assert_string_equal(get_str(c, "etc/old"), "O");
	assert_int_equal(changes, 2);
	/* a good one replaces every persistent file and keeps the logs */
	assert_int_equal(vmk_cfg_import(c, a.data, a.len, NULL, &err), 0);
	assert_null(get_str(c, "etc/old"));
	assert_string_equal(get_str(c, "etc/a"), "A");
	assert_string_equal(get_str(c, "var/log/keep.log"), "L\n");
	assert_int_equal(changes, 5); /* etc/old gone, etc/a and etc/b new */
	vmk_cfg_destroy(c);
	c = open_store(NULL);
	assert_string_equal(get_str(c, "etc/b"), "B");
	assert_null(get_str(c, "var/log/keep.log"));
	vmk_cfg_destroy(c);
	kb_buf_close(&a);
	kb_buf_close(&bad);
	assert_string_equal(last_change, "etc/b");
}

static struct vmk_cfg *shared;

static void *putter(void *arg)
{
	char path[64], text[64];
	struct kb_errmsg err = {{0}};

	for (int i = 0; i < 25; i++) {
		snprintf(path, sizeof(path), "etc/t%ld/f%d", (long)(intptr_t)arg, i % 5);
		snprintf(text, sizeof(text), "%ld-%d", (long)(intptr_t)arg, i);
		if (vmk_cfg_put(shared, path, text, strlen(text), 0, NULL, &err) != 0)
			return (void *)1;
	}
	return NULL;
}

static void test_concurrent(void **state)
{
	pthread_t t[4];
	struct vmk_cfg_status s;
	void *rv;

	shared = open_store(NULL);
	for (long i = 0; i < 4; i++)
		assert_int_equal(pthread_create(&t[i], NULL, putter, (void *)(intptr_t)i), 0);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(pthread_join(t[i], &rv), 0);
		assert_null(rv);
	}
	vmk_cfg_status(shared, &s);
	assert_int_equal(s.generation, 100);
	assert_int_equal(s.files, 20);
	assert_false(s.dirty);
	vmk_cfg_destroy(shared);
	shared = open_store(NULL);
	assert_string_equal(get_str(shared, "etc/t3/f4"), "3-24");
	vmk_cfg_status(shared, &s);
	assert_int_equal(s.generation, 100);
	vmk_cfg_destroy(shared);
}

static void test_advanced_parse(void **state)
{
	struct vmk_cfg_advanced a;
	struct kb_errmsg err = {{0}};
	const char *ok = "# host settings\n\n  Misc.LogLevel\t=  debug  \n";

	assert_int_equal(vmk_cfg_advanced_parse(ok, strlen(ok), &a, &err), 0);
	assert_int_equal(a.log_level, KB_LOG_DEBUG);
	assert_int_equal(vmk_cfg_advanced_parse("", 0, &a, &err), 0);
	assert_int_equal(a.log_level, -1);
	assert_int_equal(vmk_cfg_advanced_parse("Misc.LogLevel\n", 14, &a, &err), KB_ECONFIG);
	assert_int_equal(
	    vmk_cfg_advanced_parse("Misc.LogLevel = info\nMisc.LogLevel = warn\n", 42, &a, &err),
	    KB_ECONFIG);
	assert_non_null(strstr(err.msg, "line 2"));
	assert_int_equal(vmk_cfg_advanced_parse("Other = 1\n", 10, &a, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "unknown setting"));
	assert_int_equal(vmk_cfg_advanced_parse("Misc.LogLevel = info\0", 21, &a, &err),
			 KB_ECONFIG);

	/* vMotion settings: absent means the defaults */
	assert_int_equal(vmk_cfg_advanced_parse(ok, strlen(ok), &a, &err), 0);
	assert_int_equal(a.migrate_encrypt, -1);
	assert_int_equal(a.migrate_streams, 0);
	const char *mig = "Migrate.Encrypt = off\nMigrate.StreamsPerAdapter = 4\n";
	assert_int_equal(vmk_cfg_advanced_parse(mig, strlen(mig), &a, &err), 0);
	assert_int_equal(a.migrate_encrypt, 0);
	assert_int_equal(a.migrate_streams, 4);
	assert_int_equal(a.large_pages, -1);
	const char *lp = "Mem.AllocGuestLargePage = 0\n";
	assert_int_equal(vmk_cfg_advanced_parse(lp, strlen(lp), &a, &err), 0);
	assert_int_equal(a.large_pages, 0);
	lp = "Mem.AllocGuestLargePage = on\n";
	assert_int_equal(vmk_cfg_advanced_parse(lp, strlen(lp), &a, &err), 0);
	assert_int_equal(a.large_pages, 1);
	const char *bad[][2] = {
	    {"Mem.AllocGuestLargePage = 2\n", "1 or 0"},
	    {"Mem.AllocGuestLargePage = 1\nMem.AllocGuestLargePage = 0\n", "set twice"},
	    {"Migrate.Encrypt = maybe\n", "1 or 0"},
	    {"Migrate.StreamsPerAdapter = 0\n", "1..8"},
	    {"Migrate.StreamsPerAdapter = 9\n", "1..8"},
	    {"Migrate.StreamsPerAdapter = 2x\n", "1..8"},
	    {"Migrate.StreamsPerAdapter = -1\n", "1..8"},
	    {"Migrate.Encrypt = 1\nMigrate.Encrypt = 1\n", "set twice"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(vmk_cfg_advanced_parse(bad[i][0], strlen(bad[i][0]), &a, &err),
				 KB_ECONFIG);
		assert_non_null(strstr(err.msg, bad[i][1]));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_advanced_parse),
	    cmocka_unit_test_setup_teardown(test_put_get_list_delete, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_limits, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_file_count, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_logs, setup_dir, teardown_dir),
	    cmocka_unit_test(test_archive_round_trip),
	    cmocka_unit_test(test_archive_corruption),
	    cmocka_unit_test_setup_teardown(test_persist_and_reload, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_fallback, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_both_bad, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_enospc, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_efbig_rlimit, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_import_export, setup_dir, teardown_dir),
	    cmocka_unit_test_setup_teardown(test_concurrent, setup_dir, teardown_dir),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
