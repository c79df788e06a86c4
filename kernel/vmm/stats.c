/*
 * Statistics: guest memory touched is what the memfd has allocated (st_blocks); the
 * monitor's resident memory comes from /proc/self/status, where guest pages show up as
 * RssShmem, so the monitor's own overhead is RssAnon + RssFile.
 */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "kernel/vmm/dev/agent.h"
#include "kernel/vmm/stats.h"
#include "lib/time.h"

static uint64_t status_kib(const char *text, const char *key)
{
	const char *p = strstr(text, key);
	unsigned long long v = 0;

	if (p != NULL)
		sscanf(p + strlen(key), " %llu", &v);
	return v * 1024;
}

void vmm_stats_get(struct vmm_vm *vm, struct vmm_stats *out)
{
	struct stat st;
	char buf[4096];
	size_t n = 0;
	FILE *f;

	memset(out, 0, sizeof(*out));
	out->mem_size = vm->mem.size;
	if (fstat(vm->mem.memfd, &st) == 0)
		out->mem_touched = (uint64_t)st.st_blocks * 512;
	f = fopen("/proc/self/status", "re");
	if (f != NULL) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	out->vmm_rss = status_kib(buf, "VmRSS:");
	out->vmm_overhead = status_kib(buf, "RssAnon:") + status_kib(buf, "RssFile:");
	if (vm->agent != NULL) {
		uint64_t at;
		vmm_agent_heartbeat(vm->agent, &out->heartbeat_seq, &at);
		if (at != 0)
			out->heartbeat_age_ms = (kb_now_ns() - at) / KB_NSEC_PER_MSEC;
	}
}
