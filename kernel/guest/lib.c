/*
 * The little C library kguest needs: memory and string functions (gcc may emit calls to
 * memset/memcpy/memmove/memcmp itself, so they carry their standard names), a vsnprintf
 * subset, number and address parsing, and the word-wise FNV-1a hash used for memory
 * checksums. memset and memcpy use the string instructions, which run natively at CPL3.
 */
#include "kguest.h"

void *memset(void *dst, int c, size_t n)
{
	void *d = dst;

	__asm__ volatile("rep stosb" : "+D"(d), "+c"(n) : "a"(c) : "memory");
	return dst;
}

void *memcpy(void *dst, const void *src, size_t n)
{
	void *d = dst;

	__asm__ volatile("rep movsb" : "+D"(d), "+S"(src), "+c"(n) : : "memory");
	return dst;
}

void *memmove(void *dst, const void *src, size_t n)
{
	unsigned char *d = dst;
	const unsigned char *s = src;

	if (d <= s || d >= s + n)
		return memcpy(dst, src, n);
	while (n--)
		d[n] = s[n];
	return dst;
}

int memcmp(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;

	for (size_t i = 0; i < n; i++) {
		if (x[i] != y[i])
			return x[i] < y[i] ? -1 : 1;
	}
	return 0;
}

size_t strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

int kg_strcmp(const char *a, const char *b)
{
	while (*a && *a == *b) {
		a++;
		b++;
	}
	return (unsigned char)*a - (unsigned char)*b;
}

bool kg_starts_with(const char *s, const char *prefix)
{
	while (*prefix) {
		if (*s++ != *prefix++)
			return false;
	}
	return true;
}

struct out {
	char *buf;
	size_t size;
	size_t len;
};

static void put(struct out *o, char c)
{
	if (o->len + 1 < o->size)
		o->buf[o->len] = c;
	o->len++;
}

static void put_num(struct out *o, uint64_t v, unsigned base, bool neg, int width, bool zero)
{
	char tmp[24];
	int n = 0;

	do {
		tmp[n++] = "0123456789abcdef"[v % base];
		v /= base;
	} while (v);
	if (neg && zero)
		put(o, '-');
	for (int pad = width - n - (neg ? 1 : 0); pad > 0; pad--)
		put(o, zero ? '0' : ' ');
	if (neg && !zero)
		put(o, '-');
	while (n)
		put(o, tmp[--n]);
}

int kg_vsnprintf(char *buf, size_t size, const char *fmt, va_list ap)
{
	struct out o = {buf, size, 0};

	while (*fmt) {
		if (*fmt != '%') {
			put(&o, *fmt++);
			continue;
		}
		fmt++;
		bool zero = false;
		int width = 0, lng = 0;
		if (*fmt == '0') {
			zero = true;
			fmt++;
		}
		while (*fmt >= '0' && *fmt <= '9')
			width = width * 10 + (*fmt++ - '0');
		while (*fmt == 'l' || *fmt == 'z') {
			lng++;
			fmt++;
		}
		char conv = *fmt ? *fmt++ : 0;
		switch (conv) {
		case 'd':
		case 'i': {
			int64_t v = lng ? va_arg(ap, long) : va_arg(ap, int);
			put_num(&o, v < 0 ? -(uint64_t)v : (uint64_t)v, 10, v < 0, width, zero);
			break;
		}
		case 'u':
		case 'x': {
			uint64_t v = lng ? va_arg(ap, unsigned long) : va_arg(ap, unsigned int);
			put_num(&o, v, conv == 'x' ? 16 : 10, false, width, zero);
			break;
		}
		case 'p':
			put(&o, '0');
			put(&o, 'x');
			put_num(&o, (uintptr_t)va_arg(ap, void *), 16, false, width, zero);
			break;
		case 's': {
			const char *s = va_arg(ap, const char *);
			if (!s)
				s = "(null)";
			for (int pad = width - (int)strlen(s); pad > 0; pad--)
				put(&o, ' ');
			while (*s)
				put(&o, *s++);
			break;
		}
		case 'c':
			put(&o, (char)va_arg(ap, int));
			break;
		case '%':
			put(&o, '%');
			break;
		default:
			break;
		}
	}
	if (size)
		buf[KG_MIN(o.len, size - 1)] = '\0';
	return (int)o.len;
}

int kg_snprintf(char *buf, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = kg_vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	return n;
}

int kg_parse_u64(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	unsigned base = 10;

	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		s += 2;
	}
	if (!*s)
		return KG_EINVAL;
	for (; *s; s++) {
		unsigned d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (base == 16 && *s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (base == 16 && *s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return KG_EINVAL;
		if (v > (UINT64_MAX - d) / base)
			return KG_EINVAL;
		v = v * base + d;
	}
	*out = v;
	return 0;
}

int kg_parse_ip(const char *s, uint32_t *out)
{
	uint32_t ip = 0;

	for (int i = 0; i < 4; i++) {
		unsigned v = 0, digits = 0;
		while (*s >= '0' && *s <= '9' && digits < 4) {
			v = v * 10 + (*s++ - '0');
			digits++;
		}
		if (!digits || v > 255)
			return KG_EINVAL;
		ip = (ip << 8) | v;
		if (i < 3 && *s++ != '.')
			return KG_EINVAL;
	}
	if (*s)
		return KG_EINVAL;
	*out = ip;
	return 0;
}

uint64_t kg_fnv1a_words(uint64_t h, const uint64_t *w, size_t nwords)
{
	for (size_t i = 0; i < nwords; i++) {
		h ^= w[i];
		h *= 0x100000001b3ull;
	}
	return h;
}
