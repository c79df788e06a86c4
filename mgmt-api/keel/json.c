/*
 * A small streaming JSON writer for --json output.
 *
 * Output is compact (one line per document) so that each command prints exactly one
 * object that line-oriented tools can take apart. Strings are escaped as RFC 8259 asks:
 * '"' and '\\', and every control character below 0x20 (the common ones by their short
 * escapes). Bytes that are not valid UTF-8 become U+FFFD, so names or console output with
 * stray bytes still give a valid document. Non-finite doubles are written as null.
 *
 * Misuse (nesting deeper than KC_JSON_MAX_DEPTH, closing more than was opened) is a bug in
 * the caller; the writer then stops nesting rather than writing outside its state.
 */
#include <math.h>
#include <inttypes.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

void kc_json_init(struct kc_json *j, FILE *f)
{
	j->f = f;
	j->depth = 0;
	j->first[0] = true;
}

/* Length of the valid UTF-8 sequence at p (at most n bytes), or 0 when it is invalid:
 * overlong forms, surrogates and values past U+10FFFF are refused. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
	unsigned char c = p[0];
	size_t len, i;
	uint32_t cp;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		len = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		len = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		len = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (i = 1; i < len; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (p[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

static void put_string(FILE *f, const unsigned char *p, size_t n)
{
	size_t i = 0, len;

	fputc('"', f);
	while (i < n) {
		unsigned char c = p[i];

		switch (c) {
		case '"':
			fputs("\\\"", f);
			break;
		case '\\':
			fputs("\\\\", f);
			break;
		case '\b':
			fputs("\\b", f);
			break;
		case '\f':
			fputs("\\f", f);
			break;
		case '\n':
			fputs("\\n", f);
			break;
		case '\r':
			fputs("\\r", f);
			break;
		case '\t':
			fputs("\\t", f);
			break;
		default:
			if (c < 0x20 || c == 0x7f) {
				fprintf(f, "\\u%04x", c);
				break;
			}
			len = utf8_len(p + i, n - i);
			if (len == 0) {
				fputs("\\ufffd", f);
				break;
			}
			fwrite(p + i, 1, len, f);
			i += len;
			continue;
		}
		i++;
	}
	fputc('"', f);
}

/* Writes the separator and the key (if any) before a value. */
static void before_value(struct kc_json *j, const char *key)
{
	if (!j->first[j->depth])
		fputc(',', j->f);
	j->first[j->depth] = false;
	if (key) {
		put_string(j->f, (const unsigned char *)key, strlen(key));
		fputc(':', j->f);
	}
}

static void open_scope(struct kc_json *j, const char *key, char c)
{
	before_value(j, key);
	fputc(c, j->f);
	if (j->depth + 1 < KC_JSON_MAX_DEPTH) {
		j->depth++;
		j->first[j->depth] = true;
	}
}

static void close_scope(struct kc_json *j, char c)
{
	fputc(c, j->f);
	if (j->depth > 0)
		j->depth--;
}

void kc_json_obj_begin(struct kc_json *j, const char *key)
{
	open_scope(j, key, '{');
}

void kc_json_obj_end(struct kc_json *j)
{
	close_scope(j, '}');
}

void kc_json_arr_begin(struct kc_json *j, const char *key)
{
	open_scope(j, key, '[');
}

void kc_json_arr_end(struct kc_json *j)
{
	close_scope(j, ']');
}

void kc_json_str(struct kc_json *j, const char *key, const char *s)
{
	kc_json_strn(j, key, s ? s : "", s ? strlen(s) : 0);
}

void kc_json_strn(struct kc_json *j, const char *key, const void *p, size_t n)
{
	before_value(j, key);
	put_string(j->f, p, n);
}

void kc_json_u64(struct kc_json *j, const char *key, uint64_t v)
{
	before_value(j, key);
	fprintf(j->f, "%" PRIu64, v);
}

void kc_json_i64(struct kc_json *j, const char *key, int64_t v)
{
	before_value(j, key);
	fprintf(j->f, "%" PRId64, v);
}

void kc_json_bool(struct kc_json *j, const char *key, bool v)
{
	before_value(j, key);
	fputs(v ? "true" : "false", j->f);
}

void kc_json_double(struct kc_json *j, const char *key, double v)
{
	before_value(j, key);
	if (isfinite(v))
		fprintf(j->f, "%.15g", v);
	else
		fputs("null", j->f);
}

void kc_json_null(struct kc_json *j, const char *key)
{
	before_value(j, key);
	fputs("null", j->f);
}

void kc_json_finish(struct kc_json *j)
{
	fputc('\n', j->f);
	fflush(j->f);
}
