/*
 * Parsers for option values: counts, sizes in MiB, seconds, MAC addresses and paths.
 *
 * Every parser takes the whole string or nothing: trailing garbage, signs, empty strings
 * and values outside the caller's range are refused (-EINVAL, -ERANGE) so a typo never
 * turns into a surprising request.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "mgmt-api/keel/keel.h"

/* Decimal digits only, no sign or spaces; *end points past them. */
static int parse_digits(const char *s, uint64_t *out, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (!isdigit((unsigned char)*p))
		return -EINVAL;
	for (; isdigit((unsigned char)*p); p++) {
		unsigned d = (unsigned)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -ERANGE;
		v = v * 10 + d;
	}
	*out = v;
	*end = p;
	return 0;
}

int kc_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	const char *end;
	uint64_t v;
	int rc = parse_digits(s, &v, &end);

	if (rc)
		return rc;
	if (*end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = (uint32_t)v;
	return 0;
}

int kc_parse_mib(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	static const struct {
		const char *suffix;
		unsigned shift; /* MiB << shift */
	} units[] = {
	    {"", 0},	 {"m", 0},   {"mib", 0}, {"mb", 0},   {"g", 10},
	    {"gib", 10}, {"gb", 10}, {"t", 20},	 {"tib", 20}, {"tb", 20},
	};
	const char *end;
	uint64_t v;
	int rc = parse_digits(s, &v, &end);

	if (rc)
		return rc;
	for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcasecmp(end, units[i].suffix) != 0)
			continue;
		if (v > (UINT64_MAX >> units[i].shift))
			return -ERANGE;
		v <<= units[i].shift;
		if (v < min || v > max)
			return -ERANGE;
		*out = v;
		return 0;
	}
	return -EINVAL;
}

int kc_parse_seconds(const char *s, uint64_t *ms)
{
	const char *end;
	uint64_t whole, frac = 0, scale = 100;
	int rc = parse_digits(s, &whole, &end);

	if (rc)
		return rc;
	if (*end == '.') {
		for (end++; isdigit((unsigned char)*end); end++) {
			frac += (uint64_t)(*end - '0') * scale;
			scale /= 10;
		}
	}
	if (*end != '\0')
		return -EINVAL;
	if (whole > UINT64_MAX / 1000 - 1)
		return -ERANGE;
	*ms = whole * 1000 + frac;
	return 0;
}

bool kc_valid_mac(const char *s)
{
	for (int i = 0; i < 6; i++) {
		if (!isxdigit((unsigned char)s[0]) || !isxdigit((unsigned char)s[1]))
			return false;
		s += 2;
		if (i < 5 && *s++ != ':')
			return false;
	}
	return *s == '\0';
}

int kc_abs_path(const char *path, char *out, size_t size)
{
	char cwd[PATH_MAX];
	int n;

	if (path[0] == '/') {
		n = snprintf(out, size, "%s", path);
	} else {
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		n = snprintf(out, size, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, path);
	}
	return n >= 0 && (size_t)n < size ? 0 : -ENAMETOOLONG;
}
