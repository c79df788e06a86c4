/*
 * Host capacity: how many CPUs are online, how fast each is in MHz, how much memory the
 * host has, and what admission control may hand out once the host reserve is kept back.
 *
 * Per-CPU MHz is the nominal rate, taken from the first of: the configured value;
 * cpufreq's base_frequency (intel_pstate's nominal rate); cpufreq's cpuinfo_max_freq (the
 * nominal rate for acpi-cpufreq); /proc/cpuinfo's "cpu MHz" (in a VM, where there is no
 * cpufreq, the kernel reports the TSC rate there; on a host with frequency scaling it
 * shows a recent current rate, which is why cpufreq comes first); VMK_RES_DEFAULT_CPU_MHZ.
 * cap->cpu_mhz_source names the one used. MemTotal is required: without it the host's
 * memory is unknown and probing fails.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kernel/res/res_internal.h"
#include "lib/heap.h"

/* /proc/cpuinfo of a large host is some hundred KiB. */
#define CPUINFO_MAX (16u << 20)

/* Counts the CPUs in a kernel CPU list such as "0-3,6,8-9". 0 when malformed. */
static uint32_t count_cpu_list(const char *text)
{
	unsigned long a, b;
	uint32_t n = 0;
	char *end;

	while (*text != '\0' && *text != '\n') {
		if (*text < '0' || *text > '9')
			return 0;
		a = strtoul(text, &end, 10);
		b = a;
		if (*end == '-') {
			if (end[1] < '0' || end[1] > '9')
				return 0;
			b = strtoul(end + 1, &end, 10);
		}
		if (b < a || b - a >= 65536)
			return 0;
		n += (uint32_t)(b - a + 1);
		if (*end == ',')
			end++;
		else if (*end != '\0' && *end != '\n')
			return 0;
		text = end;
	}
	return n;
}

/* Reads a cpufreq file of cpu0 in kHz, as MHz rounded; 0 when absent or malformed. */
static uint32_t cpufreq_mhz(const char *sys_root, const char *file)
{
	char path[4096], text[64], *end;
	unsigned long long khz;

	if (vmk__res_path(path, sizeof(path), "%s/devices/system/cpu/cpu0/cpufreq/%s", sys_root,
			  file) < 0 ||
	    vmk__res_read(path, text, sizeof(text)) <= 0)
		return 0;
	khz = strtoull(text, &end, 10);
	if (end == text || khz == 0 || khz > 1000ull * 1000 * 1000)
		return 0;
	return (uint32_t)((khz + 500) / 1000);
}

/* From cpuinfo: the first "cpu MHz" value (rounded) and the number of "processor" lines. */
static void parse_cpuinfo(char *text, uint32_t *mhz, uint32_t *processors)
{
	char *line, *save = NULL, *colon;
	double v;

	*mhz = 0;
	*processors = 0;
	for (line = strtok_r(text, "\n", &save); line != NULL; line = strtok_r(NULL, "\n", &save)) {
		colon = strchr(line, ':');
		if (colon == NULL)
			continue;
		if (strncmp(line, "processor", 9) == 0 && (line[9] == '\t' || line[9] == ' '))
			(*processors)++;
		if (*mhz == 0 && strncmp(line, "cpu MHz", 7) == 0) {
			v = strtod(colon + 1, NULL);
			if (v >= 1 && v < 1e7)
				*mhz = (uint32_t)(v + 0.5);
		}
	}
}

static int read_memtotal(const char *proc_root, uint64_t *bytes, struct kb_errmsg *err)
{
	char path[4096], text[8192], *p, *end = text;
	unsigned long long kib;
	ssize_t n;

	if (vmk__res_path(path, sizeof(path), "%s/meminfo", proc_root) < 0) {
		vmk__res_seterr(err, "path too long: %s/meminfo", proc_root);
		return -ENAMETOOLONG;
	}
	n = vmk__res_read(path, text, sizeof(text));
	if (n < 0) {
		vmk__res_seterr(err, "cannot read %s: %s", path, kb_strerror((int)n));
		return (int)n;
	}
	p = strstr(text, "MemTotal:");
	kib = p != NULL ? strtoull(p + 9, &end, 10) : 0;
	if (kib == 0 || strncmp(end, " kB", 3) != 0) {
		vmk__res_seterr(err, "%s has no MemTotal line in kB", path);
		return KB_EPROTO;
	}
	*bytes = (uint64_t)kib * 1024;
	return 0;
}

int vmk_res_capacity_probe(const char *proc_root, const char *sys_root, uint32_t cpu_mhz,
			   const struct vmk_res_reserve *reserve, struct vmk_res_capacity *cap,
			   struct kb_errmsg *err)
{
	uint32_t info_mhz = 0, processors = 0;
	char path[4096], text[1024], *cpuinfo = NULL;
	const char *source = "configured";
	long online;
	int rc;

	proc_root = proc_root != NULL ? proc_root : "/proc";
	sys_root = sys_root != NULL ? sys_root : "/sys";
	memset(cap, 0, sizeof(*cap));
	rc = read_memtotal(proc_root, &cap->mem_total_bytes, err);
	if (rc < 0)
		return rc;
	cap->mem_total_mib = cap->mem_total_bytes >> 20;

	/* cpuinfo is optional (the figures have other sources), but running out of memory
	 * must not quietly change the host's capacity. */
	rc = vmk__res_path(path, sizeof(path), "%s/cpuinfo", proc_root);
	if (rc == 0)
		rc = vmk__res_read_all(path, CPUINFO_MAX, &cpuinfo);
	if (rc == -ENOMEM) {
		vmk__res_seterr(err, "out of memory reading %s", path);
		return rc;
	}
	if (rc == 0) {
		parse_cpuinfo(cpuinfo, &info_mhz, &processors);
		kb_free(cpuinfo);
	}
	if (vmk__res_path(path, sizeof(path), "%s/devices/system/cpu/online", sys_root) == 0 &&
	    vmk__res_read(path, text, sizeof(text)) > 0)
		cap->cpus = count_cpu_list(text);
	if (cap->cpus == 0)
		cap->cpus = processors;
	if (cap->cpus == 0) {
		online = sysconf(_SC_NPROCESSORS_ONLN);
		cap->cpus = online > 0 ? (uint32_t)online : 1;
	}

	if (cpu_mhz == 0 && (cpu_mhz = cpufreq_mhz(sys_root, "base_frequency")) != 0)
		source = "cpufreq base_frequency";
	if (cpu_mhz == 0 && (cpu_mhz = cpufreq_mhz(sys_root, "cpuinfo_max_freq")) != 0)
		source = "cpufreq cpuinfo_max_freq";
	if (cpu_mhz == 0 && (cpu_mhz = info_mhz) != 0)
		source = "cpuinfo cpu MHz";
	if (cpu_mhz == 0) {
		cpu_mhz = VMK_RES_DEFAULT_CPU_MHZ;
		source = "default";
	}
	cap->cpu_mhz = cpu_mhz;
	snprintf(cap->cpu_mhz_source, sizeof(cap->cpu_mhz_source), "%s", source);
	cap->cpu_total_mhz = (uint64_t)cap->cpus * cap->cpu_mhz;
	vmk_res_capacity_apply_reserve(cap, reserve);
	return 0;
}

/* fixed + percent of total, rounded up, at most total. */
static uint64_t reserve_of(uint64_t total, uint32_t fixed, uint32_t percent)
{
	uint64_t r;

	percent = percent > 100 ? 100 : percent;
	r = fixed + (total * percent + 99) / 100;
	return r > total ? total : r;
}

void vmk_res_capacity_apply_reserve(struct vmk_res_capacity *cap,
				    const struct vmk_res_reserve *reserve)
{
	static const struct vmk_res_reserve defaults = VMK_RES_RESERVE_DEFAULT;

	if (reserve == NULL)
		reserve = &defaults;
	cap->cpu_host_reserve_mhz =
	    reserve_of(cap->cpu_total_mhz, reserve->cpu_mhz, reserve->cpu_percent);
	cap->mem_host_reserve_mib =
	    reserve_of(cap->mem_total_mib, reserve->mem_mib, reserve->mem_percent);
	cap->cpu_reservable_mhz = cap->cpu_total_mhz - cap->cpu_host_reserve_mhz;
	cap->mem_reservable_mib = cap->mem_total_mib - cap->mem_host_reserve_mib;
}

double vmk_res_usage_mhz(const struct vmk_res_capacity *cap, uint64_t cpu_ns, uint64_t wall_ns)
{
	if (wall_ns == 0)
		return 0;
	return (double)cpu_ns / (double)wall_ns * cap->cpu_mhz;
}
