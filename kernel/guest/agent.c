/*
 * The agent channel (abi.h): heartbeat, power requests and text lines in both directions.
 *
 * Outgoing lines go to the message port with one rep outsb and end in '\n'. A poll reads
 * one byte from the in-port (0: nothing pending) and, when there is one, the next
 * IN_BURST - 1 with rep insb (zeros past the end of the input are skipped); bytes are
 * gathered into a line, and a line longer than KGUEST_AGENT_MSG_MAX is dropped whole. Port
 * I/O from CPL3 is emulated on PVM (tens of µs per instruction, start.S), so callers poll
 * at a modest rate (cmd.c). When the device is absent every call but kg_agent_power does
 * nothing.
 */
#include "kguest.h"

#define PORT(off) ((uint16_t)(KGUEST_PORT_AGENT + (off)))

#define IN_BURST 32

static bool present;
static uint8_t burst[IN_BURST];
static size_t burst_len, burst_pos;
static char in_line[KGUEST_AGENT_MSG_MAX + 1];
static size_t in_len;
static bool in_overflow;

bool kg_agent_init(void)
{
	present = kg_in32(PORT(KGUEST_AGENT_ID)) == KGUEST_AGENT_MAGIC;
	return present;
}

bool kg_agent_present(void)
{
	return present;
}

void kg_agent_heartbeat(uint32_t seq)
{
	if (present)
		kg_out32(PORT(KGUEST_AGENT_HEARTBEAT), seq);
}

void kg_agent_send(const char *line)
{
	char buf[KGUEST_AGENT_MSG_MAX];
	size_t len = 0;

	if (!present)
		return;
	while (line[len] && len < sizeof(buf) - 1) {
		buf[len] = line[len] == '\n' ? ' ' : line[len];
		len++;
	}
	buf[len++] = '\n';
	kg_outs8(PORT(KGUEST_AGENT_MSG_OUT), buf, len);
}

void kg_agent_printf(const char *fmt, ...)
{
	char buf[KGUEST_AGENT_MSG_MAX];
	va_list ap;

	va_start(ap, fmt);
	kg_vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	kg_agent_send(buf);
}

size_t kg_agent_poll_line(char *buf, size_t size)
{
	if (!present)
		return 0;
	for (;;) {
		if (burst_pos == burst_len) {
			/* A burst that ends in zeros has drained the port; the next poll reads more. */
			if (burst_len && burst[burst_len - 1] == 0) {
				burst_len = burst_pos = 0;
				return 0;
			}
			/* One byte first: an idle poll costs a single access. */
			burst[0] = kg_in8(PORT(KGUEST_AGENT_MSG_IN));
			if (burst[0] == 0) {
				burst_len = burst_pos = 0;
				return 0;
			}
			kg_ins8(PORT(KGUEST_AGENT_MSG_IN), burst + 1, IN_BURST - 1);
			burst_len = IN_BURST;
			burst_pos = 0;
		}
		uint8_t c = burst[burst_pos++];
		if (c == 0 || c == '\r')
			continue;
		if (c != '\n') {
			if (in_len < KGUEST_AGENT_MSG_MAX)
				in_line[in_len++] = (char)c;
			else
				in_overflow = true;
			continue;
		}
		size_t len = in_len;
		bool drop = in_overflow || len + 1 > size;
		in_len = 0;
		in_overflow = false;
		if (drop || len == 0)
			continue;
		memcpy(buf, in_line, len);
		buf[len] = '\0';
		return len;
	}
}

void kg_agent_power(uint8_t req)
{
	kg_out8(PORT(KGUEST_AGENT_POWER), req);
	/* The VMM stops or resets the VM on that write; wait for it without hlt (CPL3). */
	for (;;)
		kg_pause();
}
