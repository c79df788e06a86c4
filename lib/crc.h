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

#endif
