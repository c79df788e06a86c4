/*
 * Tests for kernel/ds/datastore: the default datastore at first start, add/remove/list with
 * persistence across a reload, every refusal (names, paths, duplicates through symlinks,
 * nesting, the state dir, VMs still registered), the strict datastores.conf parser, save
 * failures that change nothing, containment through symlinks and "..", VM directories,
 * and out-of-memory. Everything happens under a fresh directory in /tmp.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "kernel/ds/datastore.h"
#include "lib/err.h"
#include "lib/heap.h"

static char top[PATH_MAX];   /* the test's directory (resolved: /tmp may be a symlink) */
static char state[PATH_MAX]; /* <top>/state */

/* snprintf into a PATH_MAX buffer; test paths are short. */
static void pathf(char *out, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void pathf(char *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(out, PATH_MAX, fmt, ap);
	va_end(ap);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static int setup(void **st)
{
	char tmpl[] = "/tmp/keel-test-ds-XXXXXX";

	if (mkdtemp(tmpl) == NULL || realpath(tmpl, top) == NULL)
		return -1;
	pathf(state, "%s/state", top);
	return mkdir(state, 0700);
}

static int teardown(void **st)
{
	return nftw(top, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* <top>/<rel>, made as a directory. */
static const char *mkdir_top(const char *rel, char *out)
{
	pathf(out, "%s/%s", top, rel);
	assert_int_equal(mkdir(out, 0755), 0);
	return out;
}

static void write_text(const char *path, const char *text, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static char *read_text(const char *path)
{
	static char buf[128 * 1024];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	assert_true(fd >= 0);
	n = read(fd, buf, sizeof(buf) - 1);
	assert_true(n >= 0);
	buf[n] = 0;
	close(fd);
	return buf;
}

static const char *conf_path(void)
{
	static char p[PATH_MAX];

	pathf(p, "%s/datastores.conf", state);
	return p;
}

static void test_first_start(void **st)
{
	struct kb_errmsg err = {{0}};
	struct vmk_ds_registry reg;
	const struct vmk_ds *ds;
	char want[PATH_MAX];
	struct stat sb;

	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_count(&reg), 1);
	ds = vmk_ds_at(&reg, 0);
	pathf(want, "%s/datastore1", state);
	assert_string_equal(ds->name, "datastore1");
	assert_string_equal(ds->path, want);
	assert_false(ds->shared);
	assert_ptr_equal(vmk_ds_default(&reg), ds);
	assert_ptr_equal(vmk_ds_lookup(&reg, "datastore1"), ds);
	assert_null(vmk_ds_lookup(&reg, "datastore2"));
	assert_null(vmk_ds_at(&reg, 1));
	assert_int_equal(stat(want, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0750);
	assert_int_equal(stat(conf_path(), &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0640);
	pathf(want, "version 1\ndatastore1 local %s/datastore1\n", state);
	assert_non_null(strstr(read_text(conf_path()), want));
	vmk_ds_registry_close(&reg);

	/* The second start reads the file and creates nothing new. */
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_count(&reg), 1);
	vmk_ds_registry_close(&reg);
}

static void test_add_list_reload(void **st)
{
	struct kb_errmsg err = {{0}};
	struct vmk_ds_registry reg;
	struct vmk_ds_info *info;
	char a[PATH_MAX], b[PATH_MAX], via[PATH_MAX], spaced[PATH_MAX];
	size_t n;

	mkdir_top("local2", a);
	mkdir_top("nfs", b);
	mkdir_top("with space", spaced);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_add(&reg, "local2", a, false, &err), 0);
	/* A path through ".." and a symlink is stored resolved. */
	pathf(via, "%s/link", top);
	assert_int_equal(symlink(b, via), 0);
	pathf(via, "%s/state/../link", top);
	assert_int_equal(vmk_ds_add(&reg, "nfs-1", via, true, &err), 0);
	assert_int_equal(vmk_ds_add(&reg, "sp", spaced, false, &err), 0);
	assert_int_equal(vmk_ds_count(&reg), 4);
	assert_string_equal(vmk_ds_lookup(&reg, "nfs-1")->path, b);
	assert_true(vmk_ds_lookup(&reg, "nfs-1")->shared);

	assert_int_equal(vmk_ds_list(&reg, &info, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(info[0].ds.name, "datastore1");
	assert_string_equal(info[1].ds.name, "local2");
	assert_string_equal(info[2].ds.name, "nfs-1");
	assert_true(info[2].ds.shared);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(info[i].space_err, 0);
		assert_true(info[i].capacity > 0);
		assert_true(info[i].free <= info[i].capacity);
	}
	kb_free(info);
	vmk_ds_registry_close(&reg);

	/* Reload: the same datastores, in the same order, with the same paths. */
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_count(&reg), 4);
	assert_string_equal(vmk_ds_at(&reg, 1)->path, a);
	assert_false(vmk_ds_at(&reg, 1)->shared);
	assert_string_equal(vmk_ds_at(&reg, 2)->name, "nfs-1");
	assert_string_equal(vmk_ds_at(&reg, 2)->path, b);
	assert_true(vmk_ds_at(&reg, 2)->shared);
	assert_string_equal(vmk_ds_at(&reg, 3)->path, spaced);

	/* A datastore whose directory went away (an unmounted share) stays registered and
	 * lists with its error. */
	assert_int_equal(rmdir(spaced), 0);
	vmk_ds_registry_close(&reg);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_list(&reg, &info, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(info[3].space_err, -ENOENT);
	assert_int_equal(info[3].capacity, 0);
	kb_free(info);
	vmk_ds_registry_close(&reg);
}

struct add_case {
	const char *name;
	const char *path; /* relative to top unless absolute or empty */
	int code;
	const char *msg;
};

static void test_add_refusals(void **st)
{
	struct kb_errmsg err = {{0}};
	struct vmk_ds_registry reg;
	char ds2[PATH_MAX], p[PATH_MAX], before[4096];
	static const struct add_case cases[] = {
	    {"", "ds2x", KB_ECONFIG, "datastore name \"\""},
	    {"..", "ds2x", KB_ECONFIG, "datastore name \"..\""},
	    {"a/b", "ds2x", KB_ECONFIG, "datastore name \"a/b\""},
	    {"a b", "ds2x", KB_ECONFIG, "use 1..63 of"},
	    {"0123456789012345678901234567890123456789012345678901234567890123", "ds2x", KB_ECONFIG,
	     "datastore name"},
	    {"rel", "relative/dir", KB_ECONFIG,
	     "datastore rel: path \"relative/dir\": not an absolute path"},
	    {"gone", "/nonexistent-keel-dir", -ENOENT, "datastore gone: /nonexistent-keel-dir: "},
	    {"file", "afile", -ENOTDIR, "not a directory"},
	    {"datastore1", "ds2x", KB_EEXIST, "datastore \"datastore1\" exists already"},
	    {"again", "ds2", KB_EEXIST, "is datastore \"ds2\" already"},
	    {"vialink", "ds2link", KB_EEXIST, "is datastore \"ds2\" already"},
	    {"inner", "ds2/inner", KB_ECONFIG, "overlaps datastore \"ds2\""},
	    {"outer", "", KB_ECONFIG, "holds vmkernel's state dir"},
	    {"root", "/", KB_ECONFIG, "holds vmkernel's state dir"},
	    {"statedir", "state", KB_ECONFIG, "holds vmkernel's state dir"},
	    {"indefault", "state/datastore1/sub", KB_ECONFIG, "overlaps datastore \"datastore1\""},
	};

	mkdir_top("ds2", ds2);
	mkdir_top("ds2/inner", p);
	mkdir_top("ds2x", p);
	mkdir_top("state/datastore1", p); /* made before init: reused by the default */
	mkdir_top("state/datastore1/sub", p);
	pathf(p, "%s/afile", top);
	write_text(p, "x", 1);
	pathf(p, "%s/ds2link", top);
	assert_int_equal(symlink(ds2, p), 0);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_add(&reg, "ds2", ds2, false, &err), 0);
	pathf(before, "%s", read_text(conf_path()));

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const struct add_case *c = &cases[i];
		int rc;

		if (c->path[0] == '/')
			pathf(p, "%s", c->path);
		else if (c->path[0] == 0)
			pathf(p, "%s", top);
		else if (strncmp(c->path, "relative", 8) == 0)
			pathf(p, "%s", c->path);
		else
			pathf(p, "%s/%s", top, c->path);
		rc = vmk_ds_add(&reg, c->name, p, true, &err);
		if (rc != c->code || strstr(err.msg, c->msg) == NULL)
			fail_msg("case %zu (%s): got %d \"%s\", want %d \"%s\"", i, c->name, rc,
				 err.msg, c->code, c->msg);
		assert_int_equal(vmk_ds_count(&reg), 2);
		assert_string_equal(read_text(conf_path()), before);
	}

	/* At most VMK_DS_MAX. */
	for (int i = 2; i < VMK_DS_MAX; i++) {
		char name[16];
		snprintf(name, sizeof(name), "n%d", i);
		assert_int_equal(vmk_ds_add(&reg, name, mkdir_top(name, p), false, &err), 0);
	}
	assert_int_equal(vmk_ds_add(&reg, "onemore", mkdir_top("onemore", p), false, &err),
			 KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "at most 64 datastores"));
	vmk_ds_registry_close(&reg);
	/* ... and a file with all of them loads. */
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_count(&reg), VMK_DS_MAX);
	vmk_ds_registry_close(&reg);
}

static void test_remove(void **st)
{
	struct kb_errmsg err = {{0}};
	struct vmk_ds_registry reg;
	char a[PATH_MAX], tmp[PATH_MAX];

	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_add(&reg, "a", mkdir_top("a", a), false, &err), 0);

	assert_int_equal(vmk_ds_remove(&reg, "a", 2, &err), KB_ESTATE);
	assert_string_equal(err.msg, "datastore a has 2 registered VMs: unregister them first");
	assert_int_equal(vmk_ds_remove(&reg, "a", 1, &err), KB_ESTATE);
	assert_string_equal(err.msg, "datastore a has 1 registered VM: unregister it first");
	assert_int_equal(vmk_ds_remove(&reg, "b", 0, &err), KB_ENOTFOUND);
	assert_string_equal(err.msg, "no datastore named \"b\"");
	assert_int_equal(vmk_ds_count(&reg), 2);

	/* A save that fails (the tmp name is taken by a directory) changes nothing. */
	pathf(tmp, "%s.tmp", conf_path());
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_true(vmk_ds_remove(&reg, "a", 0, &err) < 0);
	assert_non_null(strstr(err.msg, "removing datastore a: writing"));
	assert_int_equal(vmk_ds_count(&reg), 2);
	assert_non_null(vmk_ds_lookup(&reg, "a"));
	assert_true(vmk_ds_add(&reg, "c", mkdir_top("c", a), false, &err) < 0);
	assert_int_equal(vmk_ds_count(&reg), 2);
	assert_null(vmk_ds_lookup(&reg, "c"));
	assert_int_equal(rmdir(tmp), 0);

	assert_int_equal(vmk_ds_remove(&reg, "a", 0, &err), 0);
	assert_int_equal(vmk_ds_count(&reg), 1);
	assert_null(vmk_ds_lookup(&reg, "a"));
	pathf(a, "%s/a", top);
	assert_int_equal(access(a, F_OK), 0); /* the directory stays */

	/* Removing the default: none is recreated at the next start, and another datastore
	 * becomes the default. */
	assert_int_equal(vmk_ds_remove(&reg, "datastore1", 0, &err), 0);
	assert_int_equal(vmk_ds_count(&reg), 0);
	assert_null(vmk_ds_default(&reg));
	vmk_ds_registry_close(&reg);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_count(&reg), 0);
	assert_int_equal(vmk_ds_add(&reg, "a", a, false, &err), 0);
	assert_string_equal(vmk_ds_default(&reg)->name, "a");
	vmk_ds_registry_close(&reg);
}

struct conf_case {
	const char *text; /* %s: top */
	int code;
	const char *msg;
};

/* Copies text with every "%s" replaced by the test's directory. */
static void subst_top(const char *text, char *out, size_t size)
{
	size_t n = 0;

	for (const char *c = text; *c; c++) {
		if (c[0] == '%' && c[1] == 's') {
			n += (size_t)snprintf(out + n, size - n, "%s", top);
			c++;
		} else {
			out[n++] = *c;
		}
		assert_true(n < size);
	}
	out[n] = 0;
}

static void test_conf_refusals(void **st)
{
	static const struct conf_case cases[] = {
	    {"", KB_EPROTO, "no \"version 1\" line"},
	    {"# only a comment\n\n", KB_EPROTO, "no \"version 1\" line"},
	    {"a local %s/a\n", KB_EPROTO,
	     "line 1: expected \"version 1\" before the first datastore"},
	    {"version 2\n", KB_EVERSION, "line 1: unsupported version"},
	    {"version 1\nversion 1\n", KB_EPROTO,
	     "line 2: expected \"<name> <local|shared> <path>\""},
	    {"version 1\na local\n", KB_EPROTO, "line 2: expected \"<name>"},
	    {"version 1\na remote %s/a\n", KB_EPROTO, "line 2: expected \"local\" or \"shared\""},
	    {"version 1\na  local %s/a\n", KB_EPROTO, "line 2: expected \"local\" or \"shared\""},
	    {"version 1\n../x local %s/a\n", KB_ECONFIG, "line 2: invalid datastore name"},
	    {"version 1\na local relative\n", KB_ECONFIG, "line 2: not an absolute path"},
	    {"version 1\na local %s/a/\n", KB_ECONFIG, "line 2: trailing \"/\""},
	    {"version 1\na local %s/b/../a\n", KB_ECONFIG,
	     "line 2: empty, \".\" or \"..\" component"},
	    {"version 1\na local %s//a\n", KB_ECONFIG, "component in path"},
	    {"version 1\na local %s/a\r\n", KB_ECONFIG, "line 2: control character in path"},
	    {"version 1\na local %s/a\nb shared %s/b\na local %s/c\n", KB_EPROTO,
	     "line 4: datastore \"a\" exists already"},
	    {"version 1\na local %s/a\nb local %s/a\n", KB_EPROTO, "line 3: "},
	    {"version 1\na local %s/a\nb local %s/a/sub\n", KB_ECONFIG, "line 3: "},
	    {"version 1\na local %s/a/sub\nb local %s/a\n", KB_ECONFIG, "overlaps datastore \"a\""},
	};
	struct kb_errmsg err = {{0}};
	struct vmk_ds_registry reg;
	char text[4096], p[PATH_MAX];
	char *big;
	int len;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int rc;

		subst_top(cases[i].text, text, sizeof(text));
		write_text(conf_path(), text, strlen(text));
		memset(&reg, 0x5a, sizeof(reg));
		rc = vmk_ds_registry_init(&reg, state, &err);
		if (rc != cases[i].code || strstr(err.msg, cases[i].msg) == NULL ||
		    strstr(err.msg, "datastores.conf") == NULL)
			fail_msg("case %zu: got %d \"%s\", want %d \"%s\"", i, rc, err.msg,
				 cases[i].code, cases[i].msg);
	}

	/* Comments, empty lines, a path with spaces, and a final line without a newline. */
	len = snprintf(text, sizeof(text),
		       "# hand-edited\n\nversion 1\n# the first\na local %s/a b\nb shared %s/b",
		       top, top);
	write_text(conf_path(), text, (size_t)len);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_count(&reg), 2);
	pathf(p, "%s/a b", top);
	assert_string_equal(vmk_ds_lookup(&reg, "a")->path, p);
	assert_true(vmk_ds_lookup(&reg, "b")->shared);
	vmk_ds_registry_close(&reg);

	/* Hostile files: NUL bytes, a long line, a huge file, a symlink, a directory. */
	write_text(conf_path(), "version 1\na\0 local /x\n", 22);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), KB_EPROTO);
	assert_non_null(strstr(err.msg, "line 2: NUL byte"));
	big = malloc(VMK_DS_CONF_MAX + 2);
	memset(big, '#', VMK_DS_CONF_MAX + 1);
	memcpy(big, "version 1\n", 10);
	write_text(conf_path(), big, 4000);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "line 2: line too long"));
	for (int i = 0; i < VMK_DS_CONF_MAX + 1; i += 100)
		big[i] = '\n';
	write_text(conf_path(), big, VMK_DS_CONF_MAX + 1);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), KB_ETOOBIG);
	assert_non_null(strstr(err.msg, "larger than 65536 bytes"));
	free(big);
	assert_int_equal(unlink(conf_path()), 0);
	pathf(p, "%s/elsewhere.conf", top);
	write_text(p, "version 1\n", 10);
	assert_int_equal(symlink(p, conf_path()), 0);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), -ELOOP);
	assert_non_null(strstr(err.msg, "is a symbolic link"));
	assert_int_equal(unlink(conf_path()), 0);
	assert_int_equal(mkdir(conf_path(), 0700), 0);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), KB_ECONFIG);
	assert_non_null(strstr(err.msg, "not a regular file"));
	assert_int_equal(rmdir(conf_path()), 0);

	/* A state dir that does not exist, or cannot be named. */
	pathf(p, "%s/missing", top);
	assert_true(vmk_ds_registry_init(&reg, p, &err) < 0);
	assert_int_equal(vmk_ds_registry_init(&reg, "", &err), KB_ECONFIG);
}

static void test_find_path(void **st)
{
	struct kb_errmsg err = {{0}};
	struct vmk_ds_registry reg;
	const struct vmk_ds *ds = NULL;
	char a[PATH_MAX], p[PATH_MAX], q[PATH_MAX], rel[PATH_MAX];

	mkdir_top("ds", a);
	mkdir_top("ds/vm1", p);
	mkdir_top("ds10", p);
	mkdir_top("outside", p);
	pathf(p, "%s/ds/vm1/vm1.vmx", top);
	write_text(p, "x", 1);
	pathf(p, "%s/outside/evil.vmx", top);
	write_text(p, "x", 1);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_add(&reg, "ds", a, false, &err), 0);

	pathf(p, "%s/ds/vm1/vm1.vmx", top);
	assert_int_equal(vmk_ds_find_path(&reg, p, &ds, rel, sizeof(rel)), 0);
	assert_string_equal(ds->name, "ds");
	assert_string_equal(rel, "vm1/vm1.vmx");
	assert_int_equal(vmk_ds_find_path(&reg, a, &ds, rel, sizeof(rel)), 0);
	assert_string_equal(rel, "");
	assert_int_equal(vmk_ds_find_path(&reg, p, &ds, NULL, 0), 0);
	assert_int_equal(vmk_ds_find_path(&reg, p, &ds, rel, 5), -ENAMETOOLONG);
	pathf(p, "%s/state/datastore1", top);
	assert_int_equal(vmk_ds_find_path(&reg, p, &ds, rel, sizeof(rel)), 0);
	assert_string_equal(ds->name, "datastore1");

	/* "..": a path that starts inside but leads out is not inside. */
	pathf(p, "%s/ds/vm1/../../outside/evil.vmx", top);
	assert_int_equal(vmk_ds_find_path(&reg, p, &ds, rel, sizeof(rel)), KB_ENOTFOUND);
	pathf(p, "%s/outside/../ds/vm1", top);
	assert_int_equal(vmk_ds_find_path(&reg, p, &ds, rel, sizeof(rel)), 0);
	assert_string_equal(rel, "vm1");

	/* Symlinks: one inside pointing out is outside; one outside pointing in is inside. */
	pathf(p, "%s/ds/escape", top);
	pathf(q, "%s/outside", top);
	assert_int_equal(symlink(q, p), 0);
	pathf(p, "%s/ds/escape/evil.vmx", top);
	assert_int_equal(vmk_ds_find_path(&reg, p, &ds, rel, sizeof(rel)), KB_ENOTFOUND);
	pathf(p, "%s/outside/in", top);
	pathf(q, "%s/ds/vm1", top);
	assert_int_equal(symlink(q, p), 0);
	pathf(p, "%s/outside/in/vm1.vmx", top);
	assert_int_equal(vmk_ds_find_path(&reg, p, &ds, rel, sizeof(rel)), 0);
	assert_string_equal(rel, "vm1/vm1.vmx");

	/* Component boundary: ds10 is not inside ds. */
	pathf(p, "%s/ds10", top);
	assert_int_equal(vmk_ds_find_path(&reg, p, &ds, rel, sizeof(rel)), KB_ENOTFOUND);

	/* Missing paths. */
	pathf(p, "%s/ds/none.vmx", top);
	assert_int_equal(vmk_ds_find_path(&reg, p, &ds, rel, sizeof(rel)), -ENOENT);

	vmk_ds_registry_close(&reg);
}

static void test_vm_dir(void **st)
{
	struct kb_errmsg err = {{0}};
	struct vmk_ds_registry reg;
	const struct vmk_ds *ds;
	char out[PATH_MAX], want[PATH_MAX], small[16];
	struct stat sb;
	static const char *const bad[] = {
	    "",
	    ".",
	    "..",
	    "a/b",
	    "../x",
	    "a b",
	    "0123456789012345678901234567890123456789012345678901234567890123"};

	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	ds = vmk_ds_default(&reg);
	assert_int_equal(vmk_ds_vm_dir(ds, "web-01", out, sizeof(out)), 0);
	pathf(want, "%s/datastore1/web-01", state);
	assert_string_equal(out, want);
	assert_int_equal(vmk_ds_vmx_path(ds, "web-01", out, sizeof(out)), 0);
	pathf(want, "%s/datastore1/web-01/web-01.vmx", state);
	assert_string_equal(out, want);
	assert_int_equal(vmk_ds_vm_dir(ds, "web-01", small, sizeof(small)), -ENAMETOOLONG);
	assert_int_equal(vmk_ds_vmx_path(ds, "web-01", want, strlen(out)), -ENAMETOOLONG);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(vmk_ds_vm_dir(ds, bad[i], out, sizeof(out)), KB_ECONFIG);
		assert_int_equal(vmk_ds_vmx_path(ds, bad[i], out, sizeof(out)), KB_ECONFIG);
		assert_int_equal(vmk_ds_vm_dir_create(ds, bad[i], out, sizeof(out), &err),
				 KB_ECONFIG);
		assert_non_null(strstr(err.msg, "VM name"));
	}

	assert_int_equal(vmk_ds_vm_dir_create(ds, "web-01", out, sizeof(out), &err), 0);
	assert_int_equal(lstat(out, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 0777, 0750);
	assert_int_equal(vmk_ds_vm_dir_create(ds, "web-01", out, sizeof(out), &err), KB_EEXIST);
	assert_non_null(strstr(err.msg, "web-01: exists already"));
	/* A symlink planted under the name is not followed. */
	pathf(want, "%s/datastore1/planted", state);
	assert_int_equal(symlink(top, want), 0);
	assert_int_equal(vmk_ds_vm_dir_create(ds, "planted", out, sizeof(out), &err), KB_EEXIST);
	vmk_ds_registry_close(&reg);

	assert_true(vmk_ds_name_valid("datastore1"));
	assert_false(vmk_ds_name_valid(".."));
}

static void test_oom(void **st)
{
	struct kb_errmsg err = {{0}};
	struct vmk_ds_registry reg;
	struct vmk_ds_info *info;
	char a[PATH_MAX];
	size_t n;
	int rc, fails;

	/* First start, then a reload, with each allocation failing in turn. */
	for (int pass = 0; pass < 2; pass++) {
		fails = 0;
		for (int k = 0;; k++) {
			kb_heap_fail_after(k, 1);
			rc = vmk_ds_registry_init(&reg, state, &err);
			kb_heap_fail_reset();
			if (rc == 0)
				break;
			assert_int_equal(rc, -ENOMEM);
			fails++;
		}
		assert_true(fails >= 1);
		vmk_ds_registry_close(&reg);
	}

	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_add(&reg, "a", mkdir_top("a", a), false, &err), 0);
	kb_heap_fail_after(0, 1);
	assert_int_equal(vmk_ds_list(&reg, &info, &n), -ENOMEM);
	kb_heap_fail_after(0, 1);
	assert_int_equal(vmk_ds_remove(&reg, "a", 0, &err), -ENOMEM);
	kb_heap_fail_after(0, 1);
	assert_int_equal(vmk_ds_add(&reg, "b", mkdir_top("b", a), false, &err), -ENOMEM);
	kb_heap_fail_reset();
	assert_int_equal(vmk_ds_count(&reg), 2);
	assert_int_equal(vmk_ds_remove(&reg, "a", 0, &err), 0);
	vmk_ds_registry_close(&reg);
	assert_int_equal(vmk_ds_registry_init(&reg, state, &err), 0);
	assert_int_equal(vmk_ds_count(&reg), 1);
	vmk_ds_registry_close(&reg);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_first_start, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_list_reload, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_add_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_conf_refusals, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_find_path, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_vm_dir, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_oom, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
