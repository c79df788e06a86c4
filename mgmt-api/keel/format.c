/*
 * Human-readable figures for the text output: sizes in binary units, durations, MHz,
 * power states, and "Key: value" blocks.
 *
 * Everything the host sends that ends up on the operator's terminal goes through
 * kc_clean(), which replaces control characters (C0, DEL and the C1 range in UTF-8) with
 * '?' and tabs with a space: a VM name is data, not a terminal escape sequence.
 */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "mgmt-api/keel/keel.h"

char *kc_fmt_bytes(uint64_t bytes, char *out, size_t size)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
	unsigned u = 0;
	uint64_t div = 1;
	double v;

	while (u + 1 < sizeof(units) / sizeof(units[0]) && bytes / div >= 1024) {
		div *= 1024;
		u++;
	}
	v = (double)bytes / (double)div;
	if (bytes % div == 0)
		snprintf(out, size, "%" PRIu64 " %s", bytes / div, units[u]);
	else if (v < 100 && (uint64_t)(v * 10 + 0.5) % 10 != 0)
		snprintf(out, size, "%.1f %s", v, units[u]);
	else
		snprintf(out, size, "%.0f %s", v, units[u]);
	return out;
}

char *kc_fmt_duration_ms(uint64_t ms, char *out, size_t size)
{
	uint64_t s = ms / 1000, m = s / 60, h = m / 60, d = h / 24;

	if (ms == 0)
		snprintf(out, size, "-");
	else if (d > 0)
		snprintf(out, size, "%" PRIu64 "d %02" PRIu64 "h", d, h % 24);
	else if (h > 0)
		snprintf(out, size, "%" PRIu64 "h %02" PRIu64 "m", h, m % 60);
	else if (m > 0)
		snprintf(out, size, "%" PRIu64 "m %02" PRIu64 "s", m, s % 60);
	else
		snprintf(out, size, "%" PRIu64 "s", s);
	return out;
}

char *kc_fmt_mhz(double mhz, char *out, size_t size)
{
	if (!isfinite(mhz) || mhz < 0) /* nonsense from the host */
		snprintf(out, size, "-");
	else if (mhz >= 100 || mhz == (double)(uint64_t)mhz)
		snprintf(out, size, "%.0f MHz", mhz);
	else
		snprintf(out, size, "%.1f MHz", mhz);
	return out;
}

const char *kc_fmt_power_state(const char *state)
{
	if (strcmp(state, "poweredOn") == 0)
		return "powered on";
	if (strcmp(state, "poweredOff") == 0)
		return "powered off";
	if (strcmp(state, "suspended") == 0)
		return "suspended";
	return state[0] ? state : "-";
}

char *kc_clean(const char *s, char *out, size_t size)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	if (size == 0)
		return out;
	for (; *p && o + 1 < size; p++) {
		if (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f) {
			out[o++] = '?'; /* a C1 control character, two bytes in UTF-8 */
			p++;
		} else if (*p == '\t') {
			out[o++] = ' ';
		} else if (*p < 0x20 || *p == 0x7f) {
			out[o++] = '?';
		} else {
			out[o++] = (char)*p;
		}
	}
	out[o] = '\0';
	return out;
}

void kc_kv(FILE *f, const char *key, const char *fmt, ...)
{
	char val[2048], clean[2048], k[64];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(val, sizeof(val), fmt, ap);
	va_end(ap);
	if (key[0])
		snprintf(k, sizeof(k), "%s:", key);
	else
		k[0] = '\0'; /* a continuation line of the key above */
	fprintf(f, "%-18s %s\n", k, kc_clean(val, clean, sizeof(clean)));
}
