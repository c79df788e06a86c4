/*
 * Tests for clusterd/token.h: issue, parse and check; the record holds no secret; expiry
 * at the exact second; a spent token refused; a wrong secret and an unknown id refused;
 * a table of malformed texts; CA fingerprint pinning against a real CA; and seeded random
 * mutations of a valid token (seed printed, KEEL_SEED=N replays) that must never crash and
 * never be accepted unless the text is unchanged.
 */
#include <errno.h>
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
#include <time.h>
#include <cmocka.h>

#include "clusterd/ca.h"
#include "clusterd/token.h"
#include "lib/err.h"

#define NOW 1700000000ull

static void issue(uint64_t ttl, const uint8_t *fp, char *text, struct cd_token_record *r)
{
	struct kb_errmsg err = {{0}};

	if (cd_token_issue(ttl, NOW, fp, text, r, &err) != 0)
		fail_msg("%s", err.msg);
}

static void parse_ok(const char *text, struct cd_token *t)
{
	struct kb_errmsg err = {{0}};

	if (cd_token_parse(text, strlen(text), t, &err) != 0)
		fail_msg("%s: %s", text, err.msg);
}

static void test_issue_parse_check(void **state)
{
	char text[CD_TOKEN_TEXT_SIZE], text2[CD_TOKEN_TEXT_SIZE];
	struct cd_token_record r, r2;
	struct cd_token t, t2;
	struct kb_errmsg err = {{0}};

	issue(3600, NULL, text, &r);
	assert_int_equal(strlen(text), 69);
	assert_memory_equal(text, "K1.", 3);
	assert_true(r.expires_s == NOW + 3600);
	assert_false(r.used);
	parse_ok(text, &t);
	assert_memory_equal(t.id, r.id, sizeof(r.id));
	assert_false(t.has_ca_fingerprint);
	/* the record keeps a hash, not the secret */
	assert_memory_not_equal(r.secret_hash, t.secret, sizeof(t.secret));

	assert_int_equal(cd_token_check(&r, &t, NOW, &err), 0);
	assert_int_equal(cd_token_check(&r, &t, NOW + 3599, &err), 0);
	assert_int_equal(cd_token_check(&r, &t, NOW + 3600, &err), -EKEYEXPIRED);
	assert_non_null(strstr(err.msg, "expired"));
	assert_int_equal(cd_token_check(NULL, &t, NOW, &err), KB_ENOTFOUND);
	assert_string_equal(err.msg, "unknown join token");

	/* two tokens differ; one's secret does not open the other */
	issue(3600, NULL, text2, &r2);
	assert_string_not_equal(text, text2);
	parse_ok(text2, &t2);
	assert_int_equal(cd_token_check(&r2, &t, NOW, &err), KB_ENOTFOUND);
	memcpy(t2.id, t.id, sizeof(t.id));
	assert_int_equal(cd_token_check(&r, &t2, NOW, &err), -EKEYREJECTED);
	assert_non_null(strstr(err.msg, "wrong secret"));
	/* a wrong secret is refused before the state is told: even when expired or used */
	assert_int_equal(cd_token_check(&r, &t2, NOW + 7200, &err), -EKEYREJECTED);

	/* single use */
	assert_int_equal(cd_token_redeem(&r, &t, NOW, &err), 0);
	assert_true(r.used);
	assert_int_equal(cd_token_redeem(&r, &t, NOW, &err), -EKEYREVOKED);
	assert_non_null(strstr(err.msg, "already used"));
	assert_int_equal(cd_token_check(&r, &t2, NOW, &err), -EKEYREJECTED);

	cd_token_clear(&t);
	{
		static const uint8_t zero[sizeof(t)];

		assert_memory_equal(&t, zero, sizeof(t));
	}

	/* lifetimes */
	assert_int_equal(cd_token_issue(0, NOW, NULL, text, &r, &err), -EINVAL);
	assert_int_equal(cd_token_issue(CD_TOKEN_TTL_MAX + 1, NOW, NULL, text, &r, &err), -EINVAL);
	assert_int_equal(cd_token_issue(10, UINT64_MAX - 5, NULL, text, &r, &err), -EINVAL);
	assert_int_equal(cd_token_issue(CD_TOKEN_TTL_MAX, NOW, NULL, text, &r, &err), 0);
}

static void test_malformed(void **state)
{
	static const char id[] = "AAAAAAAAAAAAAAAAAAAAAA";
	static const char sec[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
	char good[CD_TOKEN_TEXT_SIZE], goodfp[CD_TOKEN_TEXT_SIZE];
	struct {
		const char *text;
		int rv;
	} bad[] = {
	    {"", KB_EPROTO},
	    {"K", KB_EPROTO},
	    {"K1", KB_EPROTO},
	    {"K1.", KB_EPROTO},
	    {"k1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    {"K2.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EVERSION},
	    {"K10.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EVERSION},
	    {"X1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    /* lengths */
	    {"K1.AAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.", KB_EPROTO},
	    /* separators in the wrong place */
	    {"K1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAAA..AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    /* alphabet: standard base64, padding, white space, NUL-free but non-ASCII */
	    {"K1.AAAAAAAAAAAAAAAAAAAA+A.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAA==.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA ", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\n", KB_EPROTO},
	    {" K1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAAA\xc3\xa9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	     KB_EPROTO},
	    /* not canonical: unused bits set in the last character */
	    {"K1.AAAAAAAAAAAAAAAAAAAAAB.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", KB_EPROTO},
	    {"K1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA."
	     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAC",
	     KB_EPROTO},
	    /* too long */
	    {"K1.AAAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA."
	     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
	     KB_ETOOBIG},
	};
	struct kb_errmsg err = {{0}};
	struct cd_token t;

	snprintf(good, sizeof(good), "K1.%s.%s", id, sec);
	snprintf(goodfp, sizeof(goodfp), "K1.%s.%s.%s", id, sec, sec);
	parse_ok(good, &t);
	parse_ok(goodfp, &t);
	assert_true(t.has_ca_fingerprint);
	parse_ok("K1.AAAAAAAAAAAAAAAAAAAAAQ.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE", &t);
	assert_int_equal(t.id[15], 1);
	assert_int_equal(t.secret[31], 1);
	parse_ok("K1.____________________-w.-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_-_8", &t);
	assert_int_equal(t.id[0], 0xff);
	assert_int_equal(t.id[15], 0xfb);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rv = cd_token_parse(bad[i].text, strlen(bad[i].text), &t, &err);

		if (rv != bad[i].rv)
			fail_msg("case %zu \"%s\": %d (%s), wanted %d", i, bad[i].text, rv, err.msg,
				 bad[i].rv);
		assert_true(err.msg[0] != '\0');
		for (size_t j = 0; j < sizeof(t); j++)
			assert_int_equal(((uint8_t *)&t)[j], 0);
	}
	/* an embedded NUL */
	{
		char nul[CD_TOKEN_TEXT_SIZE];

		memcpy(nul, good, sizeof(good));
		nul[40] = '\0';
		assert_int_equal(cd_token_parse(nul, strlen(good), &t, &err), KB_EPROTO);
	}
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void test_fingerprint_pinning(void **state)
{
	char dir[] = "/tmp/keel-token-XXXXXX", d1[PATH_MAX], d2[PATH_MAX];
	char text[CD_TOKEN_TEXT_SIZE];
	uint8_t fp[CD_FINGERPRINT_SIZE];
	struct cd_ca *ca = NULL, *other = NULL;
	struct cd_token_record r;
	struct cd_token t;
	struct kb_errmsg err = {{0}};

	assert_non_null(mkdtemp(dir));
	snprintf(d1, sizeof(d1), "%s/a", dir);
	snprintf(d2, sizeof(d2), "%s/b", dir);
	assert_int_equal(mkdir(d1, 0700), 0);
	assert_int_equal(mkdir(d2, 0700), 0);
	assert_int_equal(cd_ca_create(d1, "prod", &ca, &err), 0);
	assert_int_equal(cd_ca_create(d2, "prod", &other, &err), 0);
	cd_ca_fingerprint(ca, fp);

	issue(60, fp, text, &r);
	assert_int_equal(strlen(text), CD_TOKEN_TEXT_MAX);
	parse_ok(text, &t);
	assert_true(t.has_ca_fingerprint);
	assert_memory_equal(t.ca_fingerprint, fp, sizeof(fp));
	assert_int_equal(cd_token_fingerprint_check(&t, cd_ca_cert_pem(ca), &err), 0);
	assert_int_equal(cd_token_fingerprint_check(&t, cd_ca_cert_pem(other), &err),
			 -EKEYREJECTED);
	assert_int_equal(cd_token_fingerprint_check(&t, "junk", &err), KB_EPROTO);
	assert_int_equal(cd_token_check(&r, &t, NOW, &err), 0);

	issue(60, NULL, text, &r);
	parse_ok(text, &t);
	assert_int_equal(cd_token_fingerprint_check(&t, cd_ca_cert_pem(ca), &err), KB_ENOTFOUND);

	cd_ca_destroy(ca);
	cd_ca_destroy(other);
	assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
}

static void test_random_mutations(void **state)
{
	static const char alphabet[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.K1+/= \n\0\xff";
	const char *env = getenv("KEEL_SEED");
	unsigned seed = env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL);
	uint8_t fp[CD_TOKEN_FP_SIZE];
	char text[CD_TOKEN_TEXT_SIZE], m[CD_TOKEN_TEXT_MAX + 16];
	struct cd_token_record r;
	struct kb_errmsg err = {{0}};
	struct cd_token t;

	printf("token mutations: seed %u (KEEL_SEED=%u replays)\n", seed, seed);
	srand(seed);
	for (size_t i = 0; i < sizeof(fp); i++)
		fp[i] = (uint8_t)rand();
	issue(60, fp, text, &r);
	for (int iter = 0; iter < 200000; iter++) {
		size_t len = strlen(text);
		int edits = 1 + rand() % 3;

		memcpy(m, text, len);
		for (int e = 0; e < edits; e++) {
			size_t pos = (size_t)rand() % (len + 1);

			switch (rand() % 4) {
			case 0: /* replace */
				if (pos < len)
					m[pos] = alphabet[rand() % (sizeof(alphabet) - 1)];
				break;
			case 1: /* flip a bit */
				if (pos < len)
					m[pos] ^= (char)(1 << (rand() % 8));
				break;
			case 2: /* insert */
				if (len < sizeof(m) - 1) {
					memmove(m + pos + 1, m + pos, len - pos);
					m[pos] = alphabet[rand() % (sizeof(alphabet) - 1)];
					len++;
				}
				break;
			default: /* delete */
				if (pos < len) {
					memmove(m + pos, m + pos + 1, len - pos - 1);
					len--;
				}
				break;
			}
		}
		if (cd_token_parse(m, len, &t, &err) != 0)
			continue;
		if (cd_token_check(&r, &t, NOW, &err) == 0 && t.has_ca_fingerprint &&
		    memcmp(t.ca_fingerprint, fp, sizeof(fp)) == 0) {
			if (len != strlen(text) || memcmp(m, text, len) != 0)
				fail_msg("seed %u: mutated token \"%.*s\" accepted", seed, (int)len,
					 m);
		}
	}
	assert_int_equal(cd_token_parse(text, strlen(text), &t, &err), 0);
	assert_int_equal(cd_token_check(&r, &t, NOW, &err), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_issue_parse_check),
	    cmocka_unit_test(test_malformed),
	    cmocka_unit_test(test_fingerprint_pinning),
	    cmocka_unit_test(test_random_mutations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
