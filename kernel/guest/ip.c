/*
 * A minimal host on the virtio-net link: answers ARP requests for the configured address
 * (kg_cfg.ip), ICMP echo requests, and UDP datagrams to port 7 (echo) by sending the same
 * payload back to the sender's MAC, address and port. UDP port 9 is a sequencer: each
 * datagram of at least 16 bytes increments the guest's request counter, and the reply is
 * the datagram with its bytes 8..15 replaced by the counter's new value (big-endian) —
 * state a client can see, for checking that a failover forgets no reply it released. IPv4 only, no fragments (they are
 * dropped), no routing: replies always go to the source MAC of the request, so the netmask
 * is informational. Reply headers are rebuilt (IHL 5, TTL 64, fresh IPv4 checksum; the
 * UDP checksum is 0). With no address configured, every frame is ignored.
 */
#include "kguest.h"

#define ETH_HLEN      14
#define ETH_MIN	      60
#define ETH_P_IP      0x0800
#define ETH_P_ARP     0x0806
#define ARP_LEN	      28
#define IP_HLEN	      20
#define PROTO_ICMP    1
#define PROTO_UDP     17
#define UDP_ECHO_PORT 7
#define UDP_SEQ_PORT  9

static uint64_t seq_count; /* UDP_SEQ_PORT's counter: guest state like any other */

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

/* The Internet checksum: ones' complement of the ones' complement sum of 16-bit words. */
static uint16_t inet_csum(const uint8_t *p, size_t len)
{
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += get16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static void eth_header(uint8_t *out, const uint8_t *dst, uint16_t type)
{
	memcpy(out, dst, 6);
	memcpy(out + 6, kg_net_mac(), 6);
	put16(out + 12, type);
}

static void send_padded(uint8_t *frame, size_t len)
{
	if (len < ETH_MIN) {
		memset(frame + len, 0, ETH_MIN - len);
		len = ETH_MIN;
	}
	kg_net_send(frame, len);
}

static void arp_send(uint16_t op, const uint8_t *eth_dst, const uint8_t *tha, uint32_t tpa)
{
	uint8_t f[ETH_MIN];
	uint8_t *a = f + ETH_HLEN;

	eth_header(f, eth_dst, ETH_P_ARP);
	put16(a, 1); /* Ethernet */
	put16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	memcpy(a + 8, kg_net_mac(), 6);
	put32(a + 14, kg_cfg.ip);
	memcpy(a + 18, tha, 6);
	put32(a + 24, tpa);
	send_padded(f, ETH_HLEN + ARP_LEN);
}

static void arp_input(const uint8_t *f, size_t len)
{
	const uint8_t *a = f + ETH_HLEN;

	if (len < ETH_HLEN + ARP_LEN || get16(a) != 1 || get16(a + 2) != ETH_P_IP || a[4] != 6 ||
	    a[5] != 4 || get16(a + 6) != 1 || get32(a + 24) != kg_cfg.ip)
		return;
	arp_send(2, a + 8, a + 8, get32(a + 14));
}

/* Sends an IPv4 packet back to the sender of the request in f. */
static void ip_reply(const uint8_t *f, const uint8_t *req_ip, uint8_t proto, const uint8_t *l4,
		     size_t l4len)
{
	uint8_t out[KG_ETH_MAX];
	uint8_t *ip = out + ETH_HLEN;

	if (ETH_HLEN + IP_HLEN + l4len > sizeof(out))
		return;
	eth_header(out, f + 6, ETH_P_IP);
	ip[0] = 0x45;
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(IP_HLEN + l4len));
	put16(ip + 4, get16(req_ip + 4));
	put16(ip + 6, 0);
	ip[8] = 64;
	ip[9] = proto;
	put16(ip + 10, 0);
	put32(ip + 12, kg_cfg.ip);
	put32(ip + 16, get32(req_ip + 12));
	put16(ip + 10, inet_csum(ip, IP_HLEN));
	memcpy(ip + IP_HLEN, l4, l4len);
	uint8_t *r = ip + IP_HLEN;
	if (proto == PROTO_ICMP) {
		r[0] = 0; /* echo reply */
		put16(r + 2, 0);
		put16(r + 2, inet_csum(r, l4len));
	} else {
		put16(r, get16(l4 + 2));
		put16(r + 2, get16(l4));
		put16(r + 6, 0);
	}
	send_padded(out, ETH_HLEN + IP_HLEN + l4len);
}

static void ip_input(const uint8_t *f, size_t len)
{
	const uint8_t *ip = f + ETH_HLEN;
	size_t iplen = len - ETH_HLEN;

	if (iplen < IP_HLEN || (ip[0] >> 4) != 4)
		return;
	size_t ihl = (size_t)(ip[0] & 15) * 4;
	size_t total = get16(ip + 2);
	if (ihl < IP_HLEN || total < ihl || total > iplen || inet_csum(ip, ihl) != 0)
		return;
	if ((get16(ip + 6) & 0x3fff) || get32(ip + 16) != kg_cfg.ip)
		return;
	const uint8_t *l4 = ip + ihl;
	size_t l4len = total - ihl;
	if (ip[9] == PROTO_ICMP && l4len >= 8 && l4[0] == 8) {
		ip_reply(f, ip, PROTO_ICMP, l4, l4len);
	} else if (ip[9] == PROTO_UDP && l4len >= 8 && get16(l4 + 2) == UDP_ECHO_PORT) {
		size_t ulen = get16(l4 + 4);
		if (ulen >= 8 && ulen <= l4len)
			ip_reply(f, ip, PROTO_UDP, l4, ulen);
	} else if (ip[9] == PROTO_UDP && l4len >= 24 && get16(l4 + 2) == UDP_SEQ_PORT) {
		size_t ulen = get16(l4 + 4);
		uint8_t d[KG_ETH_MAX];
		if (ulen < 24 || ulen > l4len || ulen > sizeof(d))
			return;
		memcpy(d, l4, ulen);
		seq_count++;
		put32(d + 16, (uint32_t)(seq_count >> 32)); /* UDP header, then payload 8..15 */
		put32(d + 20, (uint32_t)seq_count);
		ip_reply(f, ip, PROTO_UDP, d, ulen);
	}
}

void kg_ip_input(const uint8_t *f, size_t len)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

	if (!kg_cfg.ip || len < ETH_HLEN)
		return;
	if (memcmp(f, kg_net_mac(), 6) && memcmp(f, bcast, 6))
		return;
	uint16_t type = get16(f + 12);
	if (type == ETH_P_ARP)
		arp_input(f, len);
	else if (type == ETH_P_IP)
		ip_input(f, len);
}

void kg_ip_announce(void)
{
	static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
	static const uint8_t zero[6];

	if (kg_net_present() && kg_cfg.ip)
		arp_send(1, bcast, zero, kg_cfg.ip);
}

void kg_ip_config_changed(void)
{
	uint32_t a = kg_cfg.ip;

	if (!kg_net_present())
		return;
	kg_printf("kguest: ip %u.%u.%u.%u\n", a >> 24, (a >> 16) & 0xff, (a >> 8) & 0xff, a & 0xff);
	kg_ip_announce();
}
