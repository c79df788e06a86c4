/*
 * The console: bytes written to the transmit register of the COM1 16550.
 *
 * A whole message goes out with one rep outsb: one emulated instruction on PVM (start.S)
 * per message rather than one per byte. The line status register is not polled:
 * the VMM's UART accepts a byte whenever it is written. Lines end in a bare '\n'.
 * kg_printf works at CPL0 too (trap.c uses it).
 */
#include "kguest.h"

#define LINE_MAX 256

void kg_console_write(const char *s, size_t len)
{
	if (len)
		kg_outs8(KGUEST_PORT_COM1, s, len);
}

void kg_printf(const char *fmt, ...)
{
	char buf[LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = kg_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	kg_console_write(buf, KG_MIN((size_t)n, sizeof(buf) - 1));
}
