/*
 * Fuzz target: the join token decoder (clusterd/token.c) on arbitrary bytes. A text that
 * decodes must encode back to itself: the input is compared with the text issued for the
 * same id, secret and fingerprint, rebuilt here from the parsed token.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clusterd/token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static char *encode(const uint8_t *src, size_t n, char *dst)
{
	uint32_t acc = 0;
	int bits = 0;

	for (size_t i = 0; i < n; i++) {
		acc = (acc << 8) | src[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			*dst++ = b64url[(acc >> bits) & 63];
		}
	}
	if (bits > 0)
		*dst++ = b64url[(acc << (6 - bits)) & 63];
	return dst;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct kb_errmsg err = {{0}};
	char again[CD_TOKEN_TEXT_SIZE], *p = again;
	struct cd_token t;
	int rv = cd_token_parse((const char *)data, size, &t, &err);

	if (rv != 0) {
		if (err.msg[0] == '\0') {
			fprintf(stderr, "fuzz_token: a refused token gave no message\n");
			abort();
		}
		return 0;
	}
	memcpy(p, CD_TOKEN_PREFIX, strlen(CD_TOKEN_PREFIX));
	p = encode(t.id, sizeof(t.id), p + strlen(CD_TOKEN_PREFIX));
	*p++ = '.';
	p = encode(t.secret, sizeof(t.secret), p);
	if (t.has_ca_fingerprint) {
		*p++ = '.';
		p = encode(t.ca_fingerprint, sizeof(t.ca_fingerprint), p);
	}
	if ((size_t)(p - again) != size || memcmp(again, data, size) != 0) {
		fprintf(stderr, "fuzz_token: accepted a token that is not in canonical form\n");
		abort();
	}
	cd_token_clear(&t);
	return 0;
}
