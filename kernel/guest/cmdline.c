/*
 * Configuration: the keys of the kernel command line ("key=value" separated by spaces),
 * which the host may also change at run time with the agent line "set key=value".
 *
 * Each key names a field of kg_cfg and the module that owns it; a run-time change calls
 * that module's _config_changed hook so it reacts at once (restarts a timer, begins a fill,
 * reconfigures the network). Words without '=' and unknown keys are reported and ignored,
 * so a command line shared with other guests does no harm. docs/kguest.md lists the keys.
 */
#include "kguest.h"

struct kg_config kg_cfg = {
    .counter_ms = 1000,
    .hb_ms = 100,
    .disk_ms = 100,
    .agent_ms = 10,
    .netmask = 0xffffff00,
};

enum key_type { KEY_U64, KEY_IP };

struct key {
	const char *name;
	enum key_type type;
	void *field;
	void (*changed)(void);
};

static const struct key keys[] = {
    {"counter_ms", KEY_U64, &kg_cfg.counter_ms, kg_workload_config_changed},
    {"hb_ms", KEY_U64, &kg_cfg.hb_ms, kg_workload_config_changed},
    {"exit_after_ms", KEY_U64, &kg_cfg.exit_after_ms, kg_workload_exit_changed},
    {"dirty_mib_s", KEY_U64, &kg_cfg.dirty_mib_s, kg_mem_config_changed},
    {"dirty_ws_mib", KEY_U64, &kg_cfg.dirty_ws_mib, kg_mem_config_changed},
    {"fill_mib", KEY_U64, &kg_cfg.fill_mib, kg_mem_fill_changed},
    {"disk_seq", KEY_U64, &kg_cfg.disk_seq, kg_diskseq_config_changed},
    {"disk_ms", KEY_U64, &kg_cfg.disk_ms, kg_diskseq_config_changed},
    {"disk_flush", KEY_U64, &kg_cfg.disk_flush, NULL},
    {"agent_ms", KEY_U64, &kg_cfg.agent_ms, NULL},
    {"idle_ms", KEY_U64, &kg_cfg.idle_ms, NULL},
    {"ip", KEY_IP, &kg_cfg.ip, kg_ip_config_changed},
    {"netmask", KEY_IP, &kg_cfg.netmask, NULL},
};

static const struct key *find(const char *name)
{
	for (size_t i = 0; i < KG_ARRAY_SIZE(keys); i++) {
		if (!kg_strcmp(keys[i].name, name))
			return &keys[i];
	}
	return NULL;
}

int kg_config_set(const char *name, const char *value, bool apply)
{
	const struct key *k = find(name);
	uint64_t v;
	uint32_t ip;

	if (!k)
		return KG_ENOENT;
	if (k->type == KEY_U64) {
		if (kg_parse_u64(value, &v))
			return KG_EINVAL;
		*(uint64_t *)k->field = v;
	} else {
		if (kg_parse_ip(value, &ip))
			return KG_EINVAL;
		*(uint32_t *)k->field = ip;
	}
	if (apply && k->changed)
		k->changed();
	return 0;
}

int kg_config_get(const char *name, char *buf, size_t size)
{
	const struct key *k = find(name);

	if (!k)
		return KG_ENOENT;
	if (k->type == KEY_U64) {
		kg_snprintf(buf, size, "%lu", *(uint64_t *)k->field);
	} else {
		uint32_t ip = *(uint32_t *)k->field;
		kg_snprintf(buf, size, "%u.%u.%u.%u", ip >> 24, (ip >> 16) & 0xff, (ip >> 8) & 0xff,
			    ip & 0xff);
	}
	return 0;
}

void kg_cmdline_parse(const char *cmdline)
{
	char word[128];
	const char *p = cmdline;

	while (*p) {
		while (*p == ' ' || *p == '\t' || *p == '\n')
			p++;
		size_t n = 0;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
			if (n < sizeof(word) - 1)
				word[n++] = *p;
			p++;
		}
		if (!n)
			break;
		word[n] = '\0';
		char *eq = word;
		while (*eq && *eq != '=')
			eq++;
		if (!*eq) {
			kg_printf("kguest: ignoring '%s'\n", word);
			continue;
		}
		*eq = '\0';
		int rc = kg_config_set(word, eq + 1, false);
		if (rc == KG_EINVAL)
			kg_printf("kguest: bad value for %s: '%s'\n", word, eq + 1);
		else if (rc)
			kg_printf("kguest: ignoring unknown key %s\n", word);
	}
}
