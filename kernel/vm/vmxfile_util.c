/*
 * Small parts of the .vmx API that are not about the file's text: VM name rules, guest
 * kind names, effective CPU shares, and the identifiers a configuration may lack (a random
 * version 4 uuid, random locally administered MACs) with vmk_vmx_complete().
 *
 * Happy path: random bytes come from getrandom(), else /dev/urandom. Failure modes: when
 * both fail a uuid is still made unique from the clock, the pid and a counter; a MAC is
 * not, and its generation returns -errno.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "kernel/vm/vmxfile_internal.h"

bool vmk_vmx_name_valid(const char *name)
{
	size_t n = strlen(name);

	if (n == 0 || n > VMK_VMX_NAME_MAX || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return false;
	return strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-") ==
	       n;
}

const char *vmk_guest_kind_name(enum vmk_guest_kind kind)
{
	switch (kind) {
	case VMK_GUEST_KGUEST:
		return "kguest";
	case VMK_GUEST_LINUX:
		return "linux";
	default:
		return "";
	}
}

uint32_t vmk_vmx_cpu_shares(const struct vmk_vmx *vmx)
{
	uint32_t vcpus = vmx->numvcpus ? vmx->numvcpus : 1, x;

	if (strcmp(vmx->res.cpu_shares, "low") == 0)
		return 500 * vcpus;
	if (strcmp(vmx->res.cpu_shares, "high") == 0)
		return 2000 * vcpus;
	if (vmk__vmx_parse_u32(vmx->res.cpu_shares, &x) == 0)
		return x;
	return 1000 * vcpus;
}

/* ---- random identifiers --------------------------------------------------------------- */

static int random_fill(void *buf, size_t n)
{
	uint8_t *p = buf;
	size_t got = 0;
	int fd, rc = 0;

	while (got < n) {
		ssize_t k = getrandom(p + got, n - got, 0);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	if (got == n)
		return 0;
	fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (got = 0; got < n;) {
		ssize_t k = read(fd, p + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0) {
			rc = k < 0 ? -errno : -EIO;
			break;
		}
		got += (size_t)k;
	}
	close(fd);
	return rc;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

void vmk_uuid_generate(char out[37])
{
	static uint64_t counter;
	uint8_t b[16];

	if (random_fill(b, sizeof(b)) < 0) {
		struct timespec rt, mt;
		uint64_t s, x;

		clock_gettime(CLOCK_REALTIME, &rt);
		clock_gettime(CLOCK_MONOTONIC, &mt);
		s = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
		s ^= ((uint64_t)getpid() << 32) ^ __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
		s ^= (uint64_t)mt.tv_nsec << 20;
		x = splitmix64(&s);
		memcpy(b, &x, 8);
		x = splitmix64(&s);
		memcpy(b + 8, &x, 8);
	}
	b[6] = (uint8_t)((b[6] & 0x0f) | 0x40); /* version 4 */
	b[8] = (uint8_t)((b[8] & 0x3f) | 0x80); /* RFC 4122 variant */
	snprintf(out, VMK_UUID_LEN + 1,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
		 b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
		 b[15]);
}

int vmk_mac_generate(uint8_t mac[6])
{
	int rc;

	mac[0] = 0x02; /* locally administered, unicast */
	mac[1] = 0x4b;
	rc = random_fill(mac + 2, 4);
	if (rc == 0 && (mac[2] | mac[3] | mac[4] | mac[5]) == 0)
		mac[5] = 1;
	return rc;
}

static int mac_generate_text(char out[VMK_MAC_LEN + 1])
{
	uint8_t m[6];
	int rc = vmk_mac_generate(m);

	if (rc == 0)
		snprintf(out, VMK_MAC_LEN + 1, "%02x:%02x:%02x:%02x:%02x:%02x", m[0], m[1], m[2],
			 m[3], m[4], m[5]);
	return rc;
}

int vmk_vmx_complete(struct vmk_vmx *vmx, bool *changed)
{
	bool any = false;
	int rc;

	if (!vmx->uuid[0]) {
		vmk_uuid_generate(vmx->uuid);
		any = true;
	}
	for (int i = 0; i < VMK_VMX_NICS; i++) {
		if (!vmx->nics[i].present || vmx->nics[i].mac[0])
			continue;
		rc = mac_generate_text(vmx->nics[i].mac);
		if (rc)
			return rc;
		any = true;
	}
	if (changed)
		*changed = any;
	return 0;
}
