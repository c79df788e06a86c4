/*
 * `keel file get|put`: datastore files and host files over HTTPS through hostd's API
 * (--server), with the session of `keel login` (docs/hostd-files.md, libkeel's
 * keel_files.h).
 *
 * get writes into LOCAL.part beside the destination and renames it at the end, so a
 * failed download leaves no half file under the real name; "--output -" writes to stdout
 * (then without --json). put sends the local file's size as content-length; hostd keeps
 * the old file until the new one is complete. A progress line is redrawn on stderr when it
 * is a terminal and --json was not given, and erased at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "lib/time.h"
#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"
#include "mgmt-api/libkeel/keel_files.h"

enum { O_DS = 1, O_HOST, O_OUTPUT };

struct bar {
	bool show;
	uint64_t start_ns, last_ns;
	bool drawn;
};

static int on_progress(void *arg, uint64_t done, uint64_t total)
{
	struct bar *b = arg;
	uint64_t now = kb_now_ns();
	double secs = (double)(now - b->start_ns) / 1e9;
	char d[32], t[32], r[32];

	if (!b->show || now - b->last_ns < 200000000u)
		return 0;
	b->last_ns = now;
	b->drawn = true;
	kc_fmt_bytes(done, d, sizeof(d));
	kc_fmt_bytes(secs > 0 ? (uint64_t)((double)done / secs) : 0, r, sizeof(r));
	if (total)
		fprintf(stderr, "\r\033[K%3u%%  %s of %s  %s/s", (unsigned)(done * 100 / total), d,
			kc_fmt_bytes(total, t, sizeof(t)), r);
	else
		fprintf(stderr, "\r\033[K%s  %s/s", d, r);
	fflush(stderr);
	return 0;
}

static void bar_init(struct bar *b, const struct kc_ctx *ctx)
{
	b->show = !ctx->json && isatty(STDERR_FILENO);
	b->start_ns = kb_now_ns();
	b->last_ns = 0;
	b->drawn = false;
}

static double bar_end(struct bar *b)
{
	if (b->drawn)
		fprintf(stderr, "\r\033[K");
	return (double)(kb_now_ns() - b->start_ns) / 1e9;
}

static void result_json(const char *ds, const char *path, const char *host, const char *local,
			uint64_t bytes, double secs, int created)
{
	struct kc_json j;

	kc_json_init(&j, stdout);
	kc_json_obj_begin(&j, NULL);
	kc_json_bool(&j, "ok", true);
	kc_json_i64(&j, "code", 0);
	if (host) {
		kc_json_str(&j, "host_file", host);
	} else {
		kc_json_str(&j, "datastore", ds);
		kc_json_str(&j, "path", path);
	}
	kc_json_str(&j, "local", local);
	kc_json_u64(&j, "bytes", bytes);
	kc_json_double(&j, "seconds", secs);
	if (created >= 0)
		kc_json_bool(&j, "created", created > 0);
	kc_json_obj_end(&j);
	kc_json_finish(&j);
}

/* The last component of path ("a/b/disk.img" → "disk.img"). */
static const char *base_name(const char *path)
{
	const char *s = strrchr(path, '/');

	return s ? s + 1 : path;
}

static int get_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const char *ds = kc_opt(call, O_DS), *host = kc_opt(call, O_HOST);
	const char *out = kc_opt(call, O_OUTPUT), *path = call->npos ? call->pos[0] : NULL;
	char url[KC_URL_MAX], part[4200], what[4400], sz[32];
	struct kl_client *c;
	struct kl_status st;
	struct bar b;
	uint64_t bytes = 0;
	bool to_stdout;
	double secs;
	int rc, fd;

	if (!!ds == !!host)
		return kc_usage(ctx, call, "give --datastore DS with a PATH, or --host FILE");
	if (ds && !path)
		return kc_usage(ctx, call, "PATH is missing: the file's path on datastore %s", ds);
	if (host && path)
		return kc_usage(ctx, call, "--host FILE takes no PATH");
	if (!kc_api_server(ctx, call, url, sizeof(url)))
		return KC_EXIT_USAGE;
	if (!out || !out[0])
		out = base_name(host ? host : path);
	if (!out[0] || strcmp(out, ".") == 0 || strcmp(out, "..") == 0)
		return kc_usage(ctx, call, "cannot name the local file after '%s': give --output",
				host ? host : path);
	to_stdout = strcmp(out, "-") == 0;
	if (to_stdout && ctx->json)
		return kc_usage(ctx, call, "--output - (stdout) cannot go with --json");
	rc = kc_api_open(ctx, call, &c);
	if (rc)
		return rc;
	if (to_stdout) {
		fd = STDOUT_FILENO;
	} else {
		if ((size_t)snprintf(part, sizeof(part), "%s.part", out) >= sizeof(part)) {
			kl_client_destroy(c);
			return kc_usage(ctx, call, "--output path too long");
		}
		fd = open(part, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			rc = kc_fail(ctx, KC_EXIT_FAILED, -errno, "cannot write %s: %s", part,
				     strerror(errno));
			kl_client_destroy(c);
			return rc;
		}
	}
	bar_init(&b, ctx);
	if (host)
		rc = kl_host_file_get(c, host, fd, on_progress, &b, &bytes, &st);
	else
		rc = kl_file_get(c, ds, path, fd, on_progress, &b, &bytes, &st);
	secs = bar_end(&b);
	if (!to_stdout) {
		if (rc == 0 && (fsync(fd) != 0 || close(fd) != 0)) {
			rc = kc_fail(ctx, KC_EXIT_FAILED, -errno, "writing %s: %s", part,
				     strerror(errno));
			unlink(part);
			kl_client_destroy(c);
			return rc;
		}
		if (rc)
			close(fd);
		if (rc || rename(part, out) != 0) {
			int err = errno;

			unlink(part);
			if (!rc) {
				kl_client_destroy(c);
				return kc_fail(ctx, KC_EXIT_FAILED, -err,
					       "cannot rename %s to %s: %s", part, out,
					       strerror(err));
			}
		}
	}
	if (rc) {
		rc = kc_api_fail(ctx, url, true, NULL, &st);
		kl_client_destroy(c);
		return rc;
	}
	kl_client_destroy(c);
	if (host)
		snprintf(what, sizeof(what), "host file %s", host);
	else
		snprintf(what, sizeof(what), "[%s] %s", ds, path);
	if (ctx->json)
		result_json(ds, path, host, out, bytes, secs, -1);
	else if (!to_stdout)
		printf("Downloaded %s to %s: %s in %.1f s.\n", what, out,
		       kc_fmt_bytes(bytes, sz, sizeof(sz)), secs);
	return KC_EXIT_OK;
}

static int put_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const char *ds = kc_opt(call, O_DS), *local = call->pos[0], *path = call->pos[1];
	char url[KC_URL_MAX], sz[32];
	struct kl_client *c;
	struct kl_status st;
	struct stat sb;
	struct bar b;
	bool created = false;
	double secs;
	int rc, fd;

	if (!ds)
		return kc_usage(ctx, call, "--datastore DS is required");
	if (!kc_api_server(ctx, call, url, sizeof(url)))
		return KC_EXIT_USAGE;
	fd = open(local, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, -errno, "cannot read %s: %s", local,
			       strerror(errno));
	if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
		close(fd);
		return kc_usage(ctx, call, "%s is not a regular file", local);
	}
	rc = kc_api_open(ctx, call, &c);
	if (rc) {
		close(fd);
		return rc;
	}
	bar_init(&b, ctx);
	rc = kl_file_put(c, ds, path, fd, (uint64_t)sb.st_size, on_progress, &b, &created, &st);
	secs = bar_end(&b);
	close(fd);
	if (rc) {
		rc = kc_api_fail(ctx, url, true, NULL, &st);
		kl_client_destroy(c);
		return rc;
	}
	kl_client_destroy(c);
	if (ctx->json)
		result_json(ds, path, NULL, local, (uint64_t)sb.st_size, secs, created);
	else
		printf("Uploaded %s to [%s] %s (%s): %s in %.1f s.\n", local, ds, path,
		       created ? "new file" : "replaced",
		       kc_fmt_bytes((uint64_t)sb.st_size, sz, sizeof(sz)), secs);
	return KC_EXIT_OK;
}

static const struct kc_opt get_opts[] = {
    {"datastore", "DS", "the datastore the file is on (with PATH)", O_DS, false},
    {"host", "FILE", "a host file instead: vmkernel.log, network.conf, inventory.conf, ...", O_HOST,
     false},
    {"output", "LOCAL", "where to write it (default: the file's name here; - for stdout)", O_OUTPUT,
     false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_opt put_opts[] = {
    {"datastore", "DS", "the datastore to store the file on (required)", O_DS, false},
    {NULL, NULL, NULL, 0, false},
};

static const struct kc_cmd get_cmd = {
    .name = "get",
    .args = "[PATH]",
    .summary = "Download a datastore file or a host file (needs --server).",
    .detail = "PATH is relative to the datastore's root, '/'-separated. The download is\n"
	      "written to LOCAL.part and renamed to LOCAL when complete. Needs\n"
	      "Datastore.Browse on the datastore (System.Read on the host for --host).\n"
	      "\n"
	      "Examples:\n"
	      "  keel --server https://198.18.0.1:8443 file get --datastore datastore1 \\\n"
	      "      web01/web01.vmx --output web01.vmx\n"
	      "  keel --server https://198.18.0.1:8443 file get --host vmkernel.log\n",
    .min_pos = 0,
    .max_pos = 1,
    .opts = get_opts,
    .run = get_run,
    .api = true,
};

static const struct kc_cmd put_cmd = {
    .name = "put",
    .args = "LOCAL PATH",
    .summary = "Upload a local file to a datastore (needs --server).",
    .detail = "Replaces PATH whole (its directory must exist); until the upload is complete\n"
	      "the old file stays. Needs Datastore.FileManagement on the datastore.\n"
	      "\n"
	      "Example:\n"
	      "  keel --server https://198.18.0.1:8443 file put --datastore datastore1 \\\n"
	      "      disk.img web01/disk.img\n",
    .min_pos = 2,
    .max_pos = 2,
    .opts = put_opts,
    .run = put_run,
    .api = true,
};

static const struct kc_cmd *const file_subs[] = {&get_cmd, &put_cmd, NULL};

const struct kc_cmd kc_file_cmd = {
    .name = "file",
    .summary = "Datastore and host files over HTTPS through hostd (get, put).",
    .detail = "Host files (--host) are read-only: inventory.conf, network.conf,\n"
	      "vmkernel.log and the daemons' logs.\n",
    .subs = file_subs,
};
