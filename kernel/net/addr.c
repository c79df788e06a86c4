/*
 * VMkernel adapters' values as text: IPv4 addresses with a prefix ("198.18.0.11/24"),
 * gateways, MAC addresses, service tags, and the name of an adapter's bridge-side port.
 *
 * Parsing is strict (these strings come from API requests and network.conf): dotted quads
 * of four decimal numbers 0..255 without leading zeros, prefixes 1..32, unicast MACs of six
 * two-digit hex pairs. Generated MACs are random, locally administered and unicast
 * (02:xx:xx:xx:xx:xx), like the MACs ESXi gives its vmknics from its own range.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <arpa/inet.h>

#include "kernel/net/net_internal.h"

const char *const vmk__tag_names[VMK__TAG_COUNT] = {
    "Management", "VMotion", "FaultToleranceLogging", "Provisioning", "vSAN", "Replication",
};

/* Parses a dotted quad in s[0..len) into *ip (network byte order). */
static bool quad(const char *s, size_t len, uint32_t *ip)
{
	uint32_t v = 0, part = 0;
	size_t i, digits = 0, dots = 0;

	for (i = 0; i <= len; i++) {
		if (i == len || s[i] == '.') {
			if (digits == 0 || part > 255)
				return false;
			v = v << 8 | part;
			if (i < len && ++dots > 3)
				return false;
			part = 0;
			digits = 0;
			continue;
		}
		if (!isdigit((unsigned char)s[i]) || digits == 3 || (digits == 1 && part == 0))
			return false;
		part = part * 10 + (uint32_t)(s[i] - '0');
		digits++;
	}
	if (dots != 3)
		return false;
	*ip = htonl(v);
	return true;
}

uint32_t vmk__prefix_mask(uint8_t prefix)
{
	return prefix == 0 ? 0 : htonl(~0u << (32 - prefix));
}

int vmk__ipv4_prefix_parse(const char *s, uint32_t *ip, uint8_t *prefix, struct kb_errmsg *err)
{
	const char *slash = s ? strchr(s, '/') : NULL;
	uint32_t host, mask, p = 0;
	const char *q;

	if (!slash || !quad(s, (size_t)(slash - s), ip) || !slash[1] || strlen(slash + 1) > 2 ||
	    (slash[1] == '0'))
		goto bad;
	for (q = slash + 1; *q; q++) {
		if (!isdigit((unsigned char)*q))
			goto bad;
		p = p * 10 + (uint32_t)(*q - '0');
	}
	if (p < 1 || p > 32)
		goto bad;
	*prefix = (uint8_t)p;
	mask = vmk__prefix_mask(*prefix);
	host = *ip & ~mask;
	if (*ip == 0 || (ntohl(*ip) >> 24) == 127 || (ntohl(*ip) >> 28) >= 14 ||
	    (p < 31 && (host == 0 || host == ~mask))) {
		kb_errmsg_setf(err,
			       "IPv4 address %.40s: not a host address (network, broadcast, "
			       "loopback, multicast or reserved)",
			       s);
		return KB_ECONFIG;
	}
	return 0;
bad:
	kb_errmsg_setf(err, "IPv4 address \"%.40s\": want A.B.C.D/PREFIX with a prefix of 1 to 32",
		       s ? s : "");
	return KB_ECONFIG;
}

int vmk__ipv4_parse(const char *s, uint32_t *ip, const char *what, struct kb_errmsg *err)
{
	if (!s || !quad(s, strlen(s), ip) || *ip == 0) {
		kb_errmsg_setf(err, "%s \"%.40s\": want an IPv4 address A.B.C.D", what, s ? s : "");
		return KB_ECONFIG;
	}
	return 0;
}

char *vmk__ipv4_format(uint32_t ip, char out[16])
{
	uint32_t v = ntohl(ip);

	snprintf(out, 16, "%u.%u.%u.%u", v >> 24, (v >> 16) & 255, (v >> 8) & 255, v & 255);
	return out;
}

int vmk__mac_parse(const char *s, uint8_t mac[6], struct kb_errmsg *err)
{
	size_t i;

	if (!s || strlen(s) != 17)
		goto bad;
	for (i = 0; i < 6; i++) {
		const char *p = s + 3 * i;
		char hex[3] = {p[0], p[1], 0};

		if (!isxdigit((unsigned char)p[0]) || !isxdigit((unsigned char)p[1]) ||
		    (i < 5 && p[2] != ':'))
			goto bad;
		mac[i] = (uint8_t)strtoul(hex, NULL, 16);
	}
	if (mac[0] & 1) {
		kb_errmsg_setf(err, "MAC %s: a multicast address cannot be an adapter's", s);
		return KB_ECONFIG;
	}
	if ((mac[0] | mac[1] | mac[2] | mac[3] | mac[4] | mac[5]) == 0)
		goto bad;
	return 0;
bad:
	kb_errmsg_setf(err, "MAC \"%.40s\": want six hex pairs xx:xx:xx:xx:xx:xx", s ? s : "");
	return KB_ECONFIG;
}

char *vmk__mac_format(const uint8_t mac[6], char out[18])
{
	snprintf(out, 18, "%02x:%02x:%02x:%02x:%02x:%02x", mac[0], mac[1], mac[2], mac[3], mac[4],
		 mac[5]);
	return out;
}

int vmk__mac_generate(uint8_t mac[6])
{
	ssize_t n;

	do {
		n = getrandom(mac + 1, 5, 0);
	} while (n < 0 && errno == EINTR);
	if (n != 5)
		return n < 0 ? -errno : -EIO;
	mac[0] = 0x02;
	return 0;
}

int vmk__tag_parse(const char *s, uint32_t *bit, struct kb_errmsg *err)
{
	unsigned i;

	for (i = 0; s && i < VMK__TAG_COUNT; i++) {
		if (strcasecmp(s, vmk__tag_names[i]) == 0) {
			*bit = 1u << i;
			return 0;
		}
	}
	kb_errmsg_setf(err,
		       "unknown tag \"%.40s\": want Management, VMotion, FaultToleranceLogging, "
		       "Provisioning, vSAN or Replication",
		       s ? s : "");
	return KB_ECONFIG;
}

void vmk__vmknic_port_name(const char *name, char out[VMK_NET_IFNAME_MAX])
{
	snprintf(out, VMK_NET_IFNAME_MAX, VMK__VMKNIC_PORT_PREFIX "%s", name + 3);
}
