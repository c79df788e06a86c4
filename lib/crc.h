/*
 * CRC-32C (Castagnoli), used to checksum every on-disk and wire format. Uses the SSE4.2
 * instruction when the CPU has it, a table otherwise; both give the same result.
 */
#ifndef KB_CRC_H
#define KB_CRC_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: start with crc = 0. */
uint32_t kb_crc32c(uint32_t crc, const void *data, size_t len);

/* Internal, for tests: the table path, and the SSE4.2 path (call it only when
 * __builtin_cpu_supports("sse4.2")). Same contract as kb_crc32c. */
uint32_t kb__crc32c_sw(uint32_t crc, const void *data, size_t len);
uint32_t kb__crc32c_hw(uint32_t crc, const void *data, size_t len);

#endif
