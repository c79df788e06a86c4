/*
 * Commands from the host: lines read from the agent channel every agent_ms (port I/O from
 * CPL3 costs tens of µs, so the in-port is not polled on every loop iteration), at most
 * MAX_LINES per poll. Each command gets exactly one reply line (docs/kguest.md):
 *   ping                 -> pong
 *   csum [all|MIB]       -> csum <16 hex digits>        (when the checksum job finishes)
 *   set KEY=VALUE        -> ok | error unknown key KEY | error bad value
 *   get KEY              -> KEY=VALUE | error unknown key KEY
 *   status               -> status counter=.. hb=.. dirtied=.. disk_seq=.. rx=.. tx=..
 *   announce             -> ok                           (sends a gratuitous ARP)
 *   poweroff, reset      -> ok, then the VM powers off or resets
 *   anything else        -> error unknown command
 */
#include "kguest.h"

#define MAX_LINES 8

static uint64_t next_poll;

static const char *skip_spaces(const char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	return s;
}

static void cmd_set(char *arg)
{
	char *eq = arg;

	while (*eq && *eq != '=')
		eq++;
	if (!*eq) {
		kg_agent_send("error bad value");
		return;
	}
	*eq = '\0';
	int rc = kg_config_set(arg, eq + 1, true);
	if (rc == KG_ENOENT)
		kg_agent_printf("error unknown key %s", arg);
	else if (rc)
		kg_agent_send("error bad value");
	else
		kg_agent_send("ok");
}

static void cmd_get(const char *arg)
{
	char val[64];

	if (kg_config_get(arg, val, sizeof(val)))
		kg_agent_printf("error unknown key %s", arg);
	else
		kg_agent_printf("%s=%s", arg, val);
}

static void cmd_csum(const char *arg)
{
	uint64_t mib = 0;

	if (!kg_strcmp(arg, "all"))
		mib = ~0ull;
	else if (*arg && kg_parse_u64(arg, &mib)) {
		kg_agent_send("error bad value");
		return;
	}
	kg_mem_csum_start(mib);
}

static void cmd_status(void)
{
	uint64_t rx = 0, tx = 0;

	kg_net_stats(&rx, &tx);
	kg_agent_printf("status counter=%lu hb=%lu dirtied=%lu disk_seq=%lu rx=%lu tx=%lu",
			kg_workload_counter(), kg_workload_heartbeat(), kg_mem_dirtied(),
			kg_diskseq_last(), rx, tx);
}

static void handle(char *line)
{
	char *cmd = (char *)skip_spaces(line);
	char *arg = cmd;

	while (*arg && *arg != ' ' && *arg != '\t')
		arg++;
	if (*arg)
		*arg++ = '\0';
	arg = (char *)skip_spaces(arg);
	for (char *end = arg + strlen(arg); end > arg && (end[-1] == ' ' || end[-1] == '\t');)
		*--end = '\0';

	if (!kg_strcmp(cmd, "ping")) {
		kg_agent_send("pong");
	} else if (!kg_strcmp(cmd, "csum")) {
		cmd_csum(arg);
	} else if (!kg_strcmp(cmd, "set")) {
		cmd_set(arg);
	} else if (!kg_strcmp(cmd, "get")) {
		cmd_get(arg);
	} else if (!kg_strcmp(cmd, "status")) {
		cmd_status();
	} else if (!kg_strcmp(cmd, "announce")) {
		kg_ip_announce();
		kg_agent_send("ok");
	} else if (!kg_strcmp(cmd, "poweroff")) {
		kg_agent_send("ok");
		kg_printf("kguest: powering off\n");
		kg_agent_power(KGUEST_POWER_OFF);
	} else if (!kg_strcmp(cmd, "reset")) {
		kg_agent_send("ok");
		kg_printf("kguest: resetting\n");
		kg_agent_power(KGUEST_POWER_RESET);
	} else {
		kg_agent_send("error unknown command");
	}
}

void kg_cmd_poll(uint64_t now)
{
	char line[KGUEST_AGENT_MSG_MAX + 1];

	if (now < next_poll)
		return;
	next_poll = now + kg_ms_to_tsc(kg_cfg.agent_ms ? kg_cfg.agent_ms : 1);
	for (int i = 0; i < MAX_LINES && kg_agent_poll_line(line, sizeof(line)); i++)
		handle(line);
}

uint64_t kg_cmd_next(void)
{
	return kg_agent_present() ? next_poll : UINT64_MAX;
}
