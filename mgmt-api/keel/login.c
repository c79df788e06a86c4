/*
 * `keel login` and `keel logout`: a session with hostd's API, cached for later commands.
 *
 * login reads the password from --password-file (its first line), else $KEEL_PASSWORD,
 * else the terminal (/dev/tty, echo off); it never takes one on the command line. With
 * --cert and --key it presents that client certificate and calls LoginByCertificate
 * instead (the user is the one the certificate names). It
 * calls Login with the trust settings given (--ca-file: verify against that CA;
 * --thumbprint: pin the certificate's SHA-256; neither: the system's CAs), and on success
 * caches url, user, token and the trust settings (session_cache.c) and prints how long the
 * session lives when idle. A refused password is exit 1 with hostd's message; nothing is
 * cached then. logout ends the session on hostd and removes the cached file — the file
 * even when hostd cannot be reached (the failure is reported).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "mgmt-api/keel/keel.h"
#include "mgmt-api/libkeel/keel_client.h"

enum { O_USER = 1, O_PWFILE, O_CAFILE, O_THUMB, O_CERT, O_KEY };

#define PW_MAX 1024

static const struct kc_opt login_opts[] = {
    {"user", "USER", "the user to log in as (required without --cert)", O_USER, false},
    {"password-file", "FILE", "read the password from the first line of FILE", O_PWFILE, false},
    {"ca-file", "FILE", "trust hostd's certificate if this CA (PEM) signed it", O_CAFILE, false},
    {"thumbprint", "SHA256",
     "trust only the certificate with this SHA-256 thumbprint (hostd --thumbprint)", O_THUMB,
     false},
    {"cert", "FILE",
     "log in by this client certificate (PEM, keel cert issue) instead of a "
     "password",
     O_CERT, false},
    {"key", "FILE", "the private key of --cert (PEM)", O_KEY, false},
    {NULL, NULL, NULL, 0, false},
};

/* Cuts s at its first line end. */
static void chomp(char *s)
{
	s[strcspn(s, "\r\n")] = '\0';
}

static int read_pw_file(struct kc_ctx *ctx, const char *path, char *pw, size_t size)
{
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, -errno, "cannot read the password file %s: %s",
			       path, strerror(errno));
	n = read(fd, pw, size - 1);
	close(fd);
	if (n < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, -errno, "cannot read the password file %s: %s",
			       path, strerror(errno));
	pw[n] = '\0';
	chomp(pw);
	return KC_EXIT_OK;
}

/* Prompts on the terminal without echo. */
static int read_pw_tty(struct kc_ctx *ctx, const struct kc_call *call, const char *prompt, char *pw,
		       size_t size)
{
	struct termios old, quiet;
	ssize_t n = 0;
	int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);

	if (fd < 0 || tcgetattr(fd, &old) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (write(fd, prompt, strlen(prompt)) < 0)
		n = -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (n == 0 && tcsetattr(fd, TCSAFLUSH, &quiet) == 0) {
		n = read(fd, pw, size - 1);
		tcsetattr(fd, TCSAFLUSH, &old);
		if (write(fd, "\n", 1) < 0) { /* the newline is cosmetic */
		}
	} else {
		n = -1;
	}
	close(fd);
	if (n < 0)
		return kc_fail(ctx, KC_EXIT_FAILED, -EIO,
			       "cannot read the password from the terminal");
	pw[n] = '\0';
	chomp(pw);
	return KC_EXIT_OK;
}

static int get_password(struct kc_ctx *ctx, const struct kc_call *call, const char *user,
			const char *url, char *pw, size_t size)
{
	const char *file = kc_opt(call, O_PWFILE), *env = getenv("KEEL_PASSWORD");
	char prompt[512];
	int rc;

	if (file)
		return read_pw_file(ctx, file, pw, size);
	if (env && env[0]) {
		snprintf(pw, size, "%s", env);
		return KC_EXIT_OK;
	}
	snprintf(prompt, sizeof(prompt), "Password for %s at %s: ", user, url);
	rc = read_pw_tty(ctx, call, prompt, pw, size);
	if (rc < 0)
		return kc_usage(ctx, call,
				"no password: give --password-file FILE, set $KEEL_PASSWORD, or "
				"run keel on a terminal");
	return rc;
}

int kc_read_new_password(struct kc_ctx *ctx, const struct kc_call *call, const char *file,
			 const char *user, char *pw, size_t size)
{
	char prompt[256], again[PW_MAX];
	int rc;

	if (file)
		return read_pw_file(ctx, file, pw, size);
	snprintf(prompt, sizeof(prompt), "New password for %s: ", user);
	rc = read_pw_tty(ctx, call, prompt, pw, size);
	if (rc < 0)
		return kc_usage(ctx, call,
				"no password: give --password-file FILE or run keel on a terminal");
	if (rc)
		return rc;
	rc = read_pw_tty(ctx, call, "Again: ", again, sizeof(again));
	if (rc == 0 && strcmp(pw, again) != 0)
		rc = kc_fail(ctx, KC_EXIT_USAGE, -EINVAL, "the two passwords differ");
	explicit_bzero(again, sizeof(again));
	if (rc)
		explicit_bzero(pw, size);
	return rc < 0 ? KC_EXIT_FAILED : rc;
}

static void print_login(struct kc_ctx *ctx, const char *url, const Keel__Vim__Session *s)
{
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "server", url);
		kc_json_str(&j, "user", s->user);
		kc_json_u64(&j, "idle_timeout_s", s->idle_timeout_s);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
		return;
	}
	printf("Logged in to %s as %s (session expires after %" PRIu64 " min idle)\n", url, s->user,
	       (s->idle_timeout_s + 59) / 60);
}

static int login_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	const char *user = kc_opt(call, O_USER), *ca = kc_opt(call, O_CAFILE);
	const char *tp = kc_opt(call, O_THUMB), *cert = kc_opt(call, O_CERT);
	const char *key = kc_opt(call, O_KEY);
	struct kl_client_opts opts = {.timeout_ms = ctx->timeout_ms};
	char url[KC_URL_MAX], pw[PW_MAX], what[512], cert_abs[4096], key_abs[4096];
	Keel__Vim__Session *sess = NULL;
	struct kl_client *c = NULL;
	struct kc_session cache;
	struct kl_status st;
	int rc;

	if (!kc_api_server(ctx, call, url, sizeof(url)))
		return KC_EXIT_USAGE;
	if (cert || key) {
		if (!cert || !key)
			return kc_usage(ctx, call, "--cert FILE and --key FILE go together");
		if (user || kc_has(call, O_PWFILE))
			return kc_usage(ctx, call,
					"--cert logs in as the user the certificate names: no "
					"--user or --password-file");
		if (kc_abs_path(cert, cert_abs, sizeof(cert_abs)) != 0 ||
		    kc_abs_path(key, key_abs, sizeof(key_abs)) != 0)
			return kc_usage(ctx, call, "bad --cert or --key path");
		if (access(cert_abs, R_OK) != 0 || access(key_abs, R_OK) != 0)
			return kc_fail(ctx, KC_EXIT_FAILED, -errno,
				       "cannot read the certificate %s or its key %s: %s", cert_abs,
				       key_abs, strerror(errno));
		opts.cert_file = cert_abs;
		opts.key_file = key_abs;
	} else if (!user || !user[0]) {
		return kc_usage(ctx, call, "--user USER is required (or --cert and --key)");
	}
	if (ca && tp)
		return kc_usage(ctx, call, "give --ca-file or --thumbprint, not both");
	memset(&cache, 0, sizeof(cache));
	if (ca) {
		if (kc_abs_path(ca, cache.ca_file, sizeof(cache.ca_file)) != 0)
			return kc_usage(ctx, call, "bad --ca-file '%s'", ca);
		if (access(cache.ca_file, R_OK) != 0)
			return kc_fail(ctx, KC_EXIT_FAILED, -errno,
				       "cannot read the CA file %s: %s", cache.ca_file,
				       strerror(errno));
		opts.ca_file = cache.ca_file;
	}
	if (tp) {
		if (strlen(tp) >= sizeof(cache.thumbprint))
			return kc_usage(ctx, call, "bad --thumbprint: too long");
		snprintf(cache.thumbprint, sizeof(cache.thumbprint), "%s", tp);
		opts.thumbprint = cache.thumbprint;
	}
	if (user && strlen(user) >= sizeof(cache.user))
		return kc_usage(ctx, call, "--user: name too long");
	rc = kl_client_open(url, &opts, &c, &st);
	if (rc)
		return kc_api_fail(ctx, url, false, NULL, &st);
	if (cert) {
		rc = kl_client_login_cert(c, &sess, &st);
		if (rc) {
			snprintf(what, sizeof(what), "login to %s by certificate %s failed", url,
				 cert_abs);
			rc = kc_api_fail(ctx, url, false, what, &st);
			goto out;
		}
		user = sess->user;
		if (strlen(user) >= sizeof(cache.user)) {
			rc = kc_fail(ctx, KC_EXIT_PROTO, 0, "hostd's user name is too long");
			goto out;
		}
	} else {
		rc = get_password(ctx, call, user, url, pw, sizeof(pw));
		if (rc)
			goto out;
		rc = kl_client_login(c, user, pw, &sess, &st);
		explicit_bzero(pw, sizeof(pw));
		if (rc) {
			snprintf(what, sizeof(what), "login to %s as %s failed", url, user);
			rc = kc_api_fail(ctx, url, false, what, &st);
			goto out;
		}
	}
	snprintf(cache.url, sizeof(cache.url), "%s", url);
	snprintf(cache.user, sizeof(cache.user), "%s", user);
	if (strlen(sess->token) >= sizeof(cache.token)) {
		rc = kc_fail(ctx, KC_EXIT_PROTO, 0, "hostd's session token is too long");
		goto out;
	}
	snprintf(cache.token, sizeof(cache.token), "%s", sess->token);
	rc = kc_session_save(&cache);
	if (rc) {
		char path[4200];

		kc_session_path(url, path, sizeof(path));
		rc = kc_fail(ctx, KC_EXIT_FAILED, rc,
			     "logged in, but cannot cache the session in %s: %s", path,
			     strerror(-rc));
		kl_client_logout(c, &st);
		goto out;
	}
	print_login(ctx, url, sess);
	rc = KC_EXIT_OK;
out:
	explicit_bzero(&cache, sizeof(cache));
	if (sess)
		keel__vim__session__free_unpacked(sess, NULL);
	kl_client_destroy(c);
	return rc;
}

static int logout_run(struct kc_ctx *ctx, const struct kc_call *call)
{
	char url[KC_URL_MAX], what[512];
	struct kl_client *c;
	struct kl_status st;
	struct kc_session s;
	int rc;

	if (!kc_api_server(ctx, call, url, sizeof(url)))
		return KC_EXIT_USAGE;
	rc = kc_session_load(url, &s);
	explicit_bzero(&s, sizeof(s));
	if (rc == -ENOENT) {
		if (ctx->json) {
			struct kc_json j;

			kc_json_init(&j, stdout);
			kc_json_obj_begin(&j, NULL);
			kc_json_bool(&j, "ok", true);
			kc_json_i64(&j, "code", 0);
			kc_json_str(&j, "server", url);
			kc_json_bool(&j, "was_logged_in", false);
			kc_json_obj_end(&j);
			kc_json_finish(&j);
		} else {
			printf("Not logged in to %s\n", url);
		}
		return KC_EXIT_OK;
	}
	rc = kc_api_open(ctx, call, &c);
	if (rc) {
		kc_session_remove(url);
		return rc;
	}
	rc = kl_client_logout(c, &st);
	kl_client_destroy(c);
	kc_session_remove(url);
	/* A session hostd no longer knows is as good as ended. */
	if (rc && !(st.source == KL_SRC_SERVER && st.code == KL_UNAUTHENTICATED)) {
		snprintf(what, sizeof(what),
			 "the session could not be ended on %s (forgotten here all the same)", url);
		return kc_api_fail(ctx, url, false, what, &st);
	}
	if (ctx->json) {
		struct kc_json j;

		kc_json_init(&j, stdout);
		kc_json_obj_begin(&j, NULL);
		kc_json_bool(&j, "ok", true);
		kc_json_i64(&j, "code", 0);
		kc_json_str(&j, "server", url);
		kc_json_bool(&j, "was_logged_in", true);
		kc_json_obj_end(&j);
		kc_json_finish(&j);
	} else {
		printf("Logged out of %s\n", url);
	}
	return KC_EXIT_OK;
}

const struct kc_cmd kc_login_cmd = {
    .name = "login",
    .summary = "Log in to hostd's API (--server URL) and cache the session.",
    .detail =
	"The password comes from --password-file, else $KEEL_PASSWORD, else a prompt on\n"
	"the terminal (not echoed). Trust: --ca-file (the cluster CA, DIR/ca.crt, once the\n"
	"host is in a cluster), --thumbprint (the SHA-256 that `hostd --thumbprint` prints,\n"
	"for its self-signed certificate), else the system's CAs.\n"
	"\n"
	"The session is cached in $KEEL_CONFIG_DIR (default ~/.keel)/sessions/HOST_PORT\n"
	"(mode 0600); later commands given the same --server use it, until it expires when\n"
	"idle or `keel logout` ends it.\n"
	"\n"
	"Machine login: --cert and --key (a certificate from keel cert issue, signed by\n"
	"the cluster CA) log in as the user the certificate names, without a password\n"
	"(LoginByCertificate); the session is cached the same way.\n"
	"\n"
	"Examples:\n"
	"  keel login --server https://198.18.0.1:8443 --user root --thumbprint AB:CD:...\n"
	"  keel login --server https://198.18.0.1:8443 --cert backup.crt --key backup.key \\\n"
	"       --ca-file /var/lib/keel/ca.crt\n",
    .opts = login_opts,
    .run = login_run,
    .api = true,
};

const struct kc_cmd kc_logout_cmd = {
    .name = "logout",
    .summary = "End the cached session with hostd's API (--server URL) and forget it.",
    .run = logout_run,
    .api = true,
};
