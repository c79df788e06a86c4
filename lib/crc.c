/*
 * CRC-32C (Castagnoli): reflected polynomial 0x82F63B78, initial value and final xor
 * ~0, so kb_crc32c(0, "123456789", 9) == 0xE3069283 and a CRC can be continued over
 * more data by passing the previous result back in.
 *
 * On x86-64 CPUs with SSE4.2 the crc32 instruction does the work, eight bytes at a time.
 * Elsewhere a slicing-by-8 table, built once on first use, gives the same result.
 */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "lib/crc.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void crc_table_build(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;

		for (int k = 0; k < 8; k++)
			c = (c >> 1) ^ (CRC32C_POLY & (0u - (c & 1)));
		crc_table[0][i] = c;
	}
	for (uint32_t i = 0; i < 256; i++)
		for (int t = 1; t < 8; t++)
			crc_table[t][i] =
			    (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xff];
}

uint32_t kb__crc32c_sw(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t c = ~crc;

	pthread_once(&crc_table_once, crc_table_build);
	while (len >= 8) {
		uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
				   (uint32_t)p[3] << 24);
		uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
			      (uint32_t)p[7] << 24;

		c = crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
		    crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
		    crc_table[3][hi & 0xff] ^ crc_table[2][(hi >> 8) & 0xff] ^
		    crc_table[1][(hi >> 16) & 0xff] ^ crc_table[0][hi >> 24];
		p += 8;
		len -= 8;
	}
	while (len--)
		c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xff];
	return ~c;
}

#if defined(__x86_64__)
#include <nmmintrin.h>

__attribute__((target("sse4.2"))) uint32_t kb__crc32c_hw(uint32_t crc, const void *data, size_t len)
{
	const uint8_t *p = data;
	uint64_t c = (uint32_t)~crc;
	uint64_t w;

	while (len > 0 && ((uintptr_t)p & 7)) {
		c = _mm_crc32_u8((uint32_t)c, *p++);
		len--;
	}
	while (len >= 8) {
		memcpy(&w, p, 8);
		c = _mm_crc32_u64(c, w);
		p += 8;
		len -= 8;
	}
	while (len--)
		c = _mm_crc32_u8((uint32_t)c, *p++);
	return ~(uint32_t)c;
}

static int crc_have_hw = -1; /* -1: not probed yet; the probe is idempotent */

uint32_t kb_crc32c(uint32_t crc, const void *data, size_t len)
{
	int hw = __atomic_load_n(&crc_have_hw, __ATOMIC_RELAXED);

	if (hw < 0) {
		__builtin_cpu_init();
		hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
		__atomic_store_n(&crc_have_hw, hw, __ATOMIC_RELAXED);
	}
	return hw ? kb__crc32c_hw(crc, data, len) : kb__crc32c_sw(crc, data, len);
}
#else
uint32_t kb__crc32c_hw(uint32_t crc, const void *data, size_t len)
{
	return kb__crc32c_sw(crc, data, len);
}

uint32_t kb_crc32c(uint32_t crc, const void *data, size_t len)
{
	return kb__crc32c_sw(crc, data, len);
}
#endif
