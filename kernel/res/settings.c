/*
 * A VM's resource settings: ESXi's shares text, the checks that keep a VM's settings
 * consistent with each other and with its size, the conversion from and to the protobuf
 * message Keel__Vmk__Resources, and the arithmetic that turns settings into cgroup values
 * (shares to cpu.shares and cpu.weight, a MHz limit to a CFS quota, a MiB limit to a
 * memory cap with the vmx's overhead). docs/resources.md has the table.
 *
 * Everything here is pure: no I/O, no allocation. Bad settings get KB_ECONFIG and a
 * message that names the setting and both numbers.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kernel/res/res_internal.h"
#include "vmk.pb-c.h"

static const char *const level_names[] = {
    [VMK_RES_SHARES_NORMAL] = "normal",
    [VMK_RES_SHARES_LOW] = "low",
    [VMK_RES_SHARES_HIGH] = "high",
};

int vmk_res_shares_parse(const char *text, enum vmk_res_shares_level *level, uint32_t *shares,
			 struct kb_errmsg *err)
{
	unsigned long long n;
	char *end;
	unsigned i;

	*shares = 0;
	if (text == NULL || *text == '\0') {
		*level = VMK_RES_SHARES_NORMAL;
		return 0;
	}
	for (i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(text, level_names[i]) == 0) {
			*level = (enum vmk_res_shares_level)i;
			return 0;
		}
	}
	if (text[0] >= '0' && text[0] <= '9') {
		errno = 0;
		n = strtoull(text, &end, 10);
		if (errno == 0 && *end == '\0' && n >= VMK_RES_SHARES_MIN &&
		    n <= VMK_RES_SHARES_MAX) {
			*level = VMK_RES_SHARES_CUSTOM;
			*shares = (uint32_t)n;
			return 0;
		}
	}
	vmk__res_seterr(err, "CPU shares \"%.32s\" must be low, normal, high or a number %u..%u",
			text, VMK_RES_SHARES_MIN, VMK_RES_SHARES_MAX);
	return KB_ECONFIG;
}

const char *vmk_res_shares_format(const struct vmk_res_settings *s, char *buf, size_t size)
{
	if (s->shares_level == VMK_RES_SHARES_CUSTOM)
		snprintf(buf, size, "%" PRIu32, s->shares);
	else if ((unsigned)s->shares_level < sizeof(level_names) / sizeof(level_names[0]))
		snprintf(buf, size, "%s", level_names[s->shares_level]);
	else
		snprintf(buf, size, "invalid");
	return buf;
}

uint32_t vmk_res_shares(const struct vmk_res_settings *s, uint32_t vcpus)
{
	uint64_t per_vcpu;

	switch (s->shares_level) {
	case VMK_RES_SHARES_LOW:
		per_vcpu = VMK_RES_SHARES_LOW_PER_VCPU;
		break;
	case VMK_RES_SHARES_HIGH:
		per_vcpu = VMK_RES_SHARES_HIGH_PER_VCPU;
		break;
	case VMK_RES_SHARES_CUSTOM:
		return s->shares > VMK_RES_SHARES_MAX ? VMK_RES_SHARES_MAX : s->shares;
	case VMK_RES_SHARES_NORMAL:
	default:
		per_vcpu = VMK_RES_SHARES_NORMAL_PER_VCPU;
		break;
	}
	per_vcpu *= vcpus == 0 ? 1 : vcpus;
	return per_vcpu > VMK_RES_SHARES_MAX ? VMK_RES_SHARES_MAX : (uint32_t)per_vcpu;
}

int vmk_res_settings_check(const struct vmk_res_settings *s, uint32_t mem_mib, uint32_t vcpus,
			   uint32_t cpu_mhz, struct kb_errmsg *err)
{
	uint64_t usable_mhz = (uint64_t)vcpus * cpu_mhz;

	if (vcpus == 0) {
		vmk__res_seterr(err, "a VM needs at least one vCPU");
		return KB_ECONFIG;
	}
	if (mem_mib == 0) {
		vmk__res_seterr(err, "a VM needs a memory size");
		return KB_ECONFIG;
	}
	if ((unsigned)s->shares_level > VMK_RES_SHARES_CUSTOM) {
		vmk__res_seterr(err, "unknown CPU shares level %d", (int)s->shares_level);
		return KB_ECONFIG;
	}
	if (s->shares_level == VMK_RES_SHARES_CUSTOM &&
	    (s->shares < VMK_RES_SHARES_MIN || s->shares > VMK_RES_SHARES_MAX)) {
		vmk__res_seterr(err, "CPU shares %" PRIu32 " out of range %u..%u", s->shares,
				VMK_RES_SHARES_MIN, VMK_RES_SHARES_MAX);
		return KB_ECONFIG;
	}
	if (s->cpu_limit_mhz != 0 && s->cpu_limit_mhz < s->cpu_reservation_mhz) {
		vmk__res_seterr(
		    err, "CPU limit %" PRIu32 " MHz is below the CPU reservation %" PRIu32 " MHz",
		    s->cpu_limit_mhz, s->cpu_reservation_mhz);
		return KB_ECONFIG;
	}
	if (cpu_mhz != 0 && s->cpu_reservation_mhz > usable_mhz) {
		vmk__res_seterr(err,
				"CPU reservation %" PRIu32 " MHz exceeds what %" PRIu32
				" vCPU%s can use (%" PRIu64 " MHz at %" PRIu32 " MHz each)",
				s->cpu_reservation_mhz, vcpus, vcpus == 1 ? "" : "s", usable_mhz,
				cpu_mhz);
		return KB_ECONFIG;
	}
	if (s->mem_reservation_mib > mem_mib) {
		vmk__res_seterr(err,
				"memory reservation %" PRIu32
				" MiB exceeds the VM's memory size %" PRIu32 " MiB",
				s->mem_reservation_mib, mem_mib);
		return KB_ECONFIG;
	}
	if (s->mem_limit_mib != 0 && s->mem_limit_mib < s->mem_reservation_mib) {
		vmk__res_seterr(err,
				"memory limit %" PRIu32
				" MiB is below the memory reservation %" PRIu32 " MiB",
				s->mem_limit_mib, s->mem_reservation_mib);
		return KB_ECONFIG;
	}
	return 0;
}

int vmk_res_settings_from_pb(const struct Keel__Vmk__Resources *pb, struct vmk_res_settings *out,
			     struct kb_errmsg *err)
{
	struct vmk_res_settings s;
	int rc;

	memset(&s, 0, sizeof(s));
	if (pb != NULL) {
		rc = vmk_res_shares_parse(pb->cpu_shares, &s.shares_level, &s.shares, err);
		if (rc < 0)
			return rc;
		s.cpu_reservation_mhz = pb->cpu_reservation_mhz;
		s.cpu_limit_mhz = pb->cpu_limit_mhz;
		s.mem_reservation_mib = pb->mem_reservation_mib;
		s.mem_limit_mib = pb->mem_limit_mib;
	}
	*out = s;
	return 0;
}

void vmk_res_settings_to_pb(const struct vmk_res_settings *s, struct Keel__Vmk__Resources *pb,
			    char *shares_buf, size_t size)
{
	pb->cpu_shares = (char *)vmk_res_shares_format(s, shares_buf, size);
	pb->cpu_reservation_mhz = s->cpu_reservation_mhz;
	pb->cpu_limit_mhz = s->cpu_limit_mhz;
	pb->mem_reservation_mib = s->mem_reservation_mib;
	pb->mem_limit_mib = s->mem_limit_mib;
}

static uint32_t clamp_u64(uint64_t v, uint32_t lo, uint32_t hi)
{
	return v < lo ? lo : v > hi ? hi : (uint32_t)v;
}

uint32_t vmk_res_v1_cpu_shares(uint32_t shares)
{
	return clamp_u64(((uint64_t)shares * 1024 + 500) / 1000, VMK_RES_V1_SHARES_MIN,
			 VMK_RES_V1_SHARES_MAX);
}

uint32_t vmk_res_v2_cpu_weight(uint32_t shares)
{
	return clamp_u64(((uint64_t)shares + 5) / 10, VMK_RES_V2_WEIGHT_MIN, VMK_RES_V2_WEIGHT_MAX);
}

int64_t vmk_res_cfs_quota_us(uint32_t limit_mhz, uint32_t cpu_mhz, uint32_t vcpus,
			     uint32_t period_us)
{
	uint64_t quota;

	if (limit_mhz == 0 || cpu_mhz == 0)
		return -1;
	if ((uint64_t)limit_mhz >= (uint64_t)(vcpus == 0 ? 1 : vcpus) * cpu_mhz)
		return -1;
	/* limit_mhz < vcpus * cpu_mhz, so quota < vcpus * period_us: no overflow. */
	quota = (uint64_t)limit_mhz * period_us / cpu_mhz;
	return quota < VMK_RES_QUOTA_MIN_US ? VMK_RES_QUOTA_MIN_US : (int64_t)quota;
}

uint64_t vmk_res_mem_max_bytes(uint32_t limit_mib, uint32_t mem_mib, uint32_t overhead_mib)
{
	uint64_t eff = limit_mib == 0 || limit_mib > mem_mib ? mem_mib : limit_mib;

	return (eff + overhead_mib + (eff + 63) / 64) << 20;
}
