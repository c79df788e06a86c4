/*
 * Tests for lib/crc: CRC-32C known vectors (RFC 3720 appendix B.4), chaining at every
 * split point, and agreement of the SSE4.2 and table paths on unaligned data.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "lib/crc.h"

typedef uint32_t (*crc_fn)(uint32_t crc, const void *data, size_t len);

static bool have_hw(void)
{
#if defined(__x86_64__)
	__builtin_cpu_init();
	return __builtin_cpu_supports("sse4.2");
#else
	return false;
#endif
}

static void check_vectors(crc_fn fn)
{
	uint8_t b[32];

	assert_int_equal(fn(0, "123456789", 9), 0xE3069283);
	assert_int_equal(fn(0, "a", 1), 0xC1D04330);
	assert_int_equal(fn(0, "", 0), 0);
	assert_int_equal(fn(0, NULL, 0), 0);
	memset(b, 0, sizeof(b));
	assert_int_equal(fn(0, b, sizeof(b)), 0x8A9136AA);
	memset(b, 0xff, sizeof(b));
	assert_int_equal(fn(0, b, sizeof(b)), 0x62A8AB43);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	assert_int_equal(fn(0, b, sizeof(b)), 0x46DD794E);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)(31 - i);
	assert_int_equal(fn(0, b, sizeof(b)), 0x113FDB5C);
}

static void test_vectors_default(void **state)
{
	check_vectors(kb_crc32c);
}

static void test_vectors_table(void **state)
{
	check_vectors(kb__crc32c_sw);
}

static void test_vectors_sse42(void **state)
{
	if (!have_hw())
		skip();
	check_vectors(kb__crc32c_hw);
}

static void check_chaining(crc_fn fn)
{
	uint8_t data[100];
	uint32_t whole;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 37 + 11);
	whole = fn(0, data, sizeof(data));
	for (size_t split = 0; split <= sizeof(data); split++) {
		uint32_t c = fn(0, data, split);

		assert_int_equal(fn(c, data + split, sizeof(data) - split), whole);
	}
}

static void test_chaining(void **state)
{
	check_chaining(kb_crc32c);
	check_chaining(kb__crc32c_sw);
	if (have_hw())
		check_chaining(kb__crc32c_hw);
}

static void test_paths_agree(void **state)
{
	size_t size = 70000;
	unsigned seed = 12345;
	uint8_t *data;

	if (!have_hw())
		skip();
	data = malloc(size);
	assert_non_null(data);
	for (size_t i = 0; i < size; i++) {
		seed = seed * 1103515245u + 12345u;
		data[i] = (uint8_t)(seed >> 16);
	}
	/* Every start alignment and a spread of lengths, including the whole buffer. */
	for (size_t off = 0; off < 16; off++) {
		for (size_t len = 0; len < 80; len++)
			assert_int_equal(kb__crc32c_hw(0x1234, data + off, len),
					 kb__crc32c_sw(0x1234, data + off, len));
		assert_int_equal(kb__crc32c_hw(0, data + off, size - off),
				 kb__crc32c_sw(0, data + off, size - off));
	}
	assert_int_equal(kb_crc32c(0, data, size), kb__crc32c_sw(0, data, size));
	free(data);
}

static void test_detects_change(void **state)
{
	uint8_t data[64] = {0};
	uint32_t c0 = kb_crc32c(0, data, sizeof(data));

	for (size_t bit = 0; bit < sizeof(data) * 8; bit++) {
		data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		assert_true(kb_crc32c(0, data, sizeof(data)) != c0);
		data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_vectors_default), cmocka_unit_test(test_vectors_table),
	    cmocka_unit_test(test_vectors_sse42),   cmocka_unit_test(test_chaining),
	    cmocka_unit_test(test_paths_agree),	    cmocka_unit_test(test_detects_change),
	};

	return cmocka_run_group_tests_name("lib_crc", tests, NULL, NULL);
}
