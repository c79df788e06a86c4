/*
 * network.conf: the host's networking configuration on disk (format: docs/networking.md).
 *
 * One record per line, tokens separated by blanks: keywords and numbers bare, names in
 * double quotes (names never contain '"' or '\', so there are no escapes):
 *
 *   version 1
 *   vswitch "vSwitch0" mtu 1500
 *   uplink "vSwitch0" "vmnic0"
 *   portgroup "VM Network" vswitch "vSwitch0" vlan 0
 *   port "kt1a2b3c4dn0" portgroup "VM Network" vm "<uuid>" nic 0
 *
 * Netstacks and VMkernel adapters are two more record types of the same version, after
 * the portgroups and before the ports (a file without them reads as before; a reader that
 * predates them refuses them as unknown records, naming the line):
 *
 *   netstack "vmotion"
 *   vmknic "vmk1" portgroup "vMotion" netstack "vmotion" ip 198.18.2.11/24 gateway none
 *          mtu 1500 mac 02:5e:10:aa:bb:cc tags VMotion        (one line)
 *
 * The parser is strict: the file is at most 1 MiB, lines at most 512 bytes and end in a
 * newline, "version 1" comes first, every name and number passes the API's checks, every
 * reference names an earlier record, nothing is listed twice, and a port's tap name is the
 * one its VM uuid and NIC index give. Anything else is KB_ECONFIG naming the line, and
 * the caller keeps its old configuration. The writer emits the records in that order
 * (config_io.c saves them atomically).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kernel/net/net_internal.h"
#include "lib/heap.h"

#define TOKS_MAX       16 /* a vmknic record */
#define TOKS_MAX_OTHER 10 /* every other record */

struct tok {
	const char *s;
	size_t len;
	bool quoted;
};

struct parser {
	struct vmk__net_conf *c;
	bool versioned;
	struct kb_errmsg *err;
};

static int tokenize(const char *line, size_t len, struct tok *t, size_t *n, struct kb_errmsg *err)
{
	size_t i = 0;

	*n = 0;
	while (i < len) {
		if (line[i] == ' ' || line[i] == '\t') {
			i++;
			continue;
		}
		if (*n == TOKS_MAX) {
			kb_errmsg_setf(err, "too many fields");
			return KB_ECONFIG;
		}
		t[*n].quoted = line[i] == '"';
		if (t[*n].quoted) {
			const char *end = memchr(line + i + 1, '"', len - i - 1);

			if (!end) {
				kb_errmsg_setf(err, "unterminated quoted name");
				return KB_ECONFIG;
			}
			t[*n].s = line + i + 1;
			t[*n].len = (size_t)(end - t[*n].s);
			i = (size_t)(end - line) + 1;
			if (i < len && line[i] != ' ' && line[i] != '\t') {
				kb_errmsg_setf(err, "no blank after a quoted name");
				return KB_ECONFIG;
			}
		} else {
			t[*n].s = line + i;
			while (i < len && line[i] != ' ' && line[i] != '\t')
				i++;
			t[*n].len = (size_t)(line + i - t[*n].s);
		}
		(*n)++;
	}
	return 0;
}

static bool tok_is(const struct tok *t, const char *word)
{
	return !t->quoted && t->len == strlen(word) && memcmp(t->s, word, t->len) == 0;
}

/* Copies quoted token t into out[size]. */
static int tok_name(const struct tok *t, char *out, size_t size, const char *what,
		    struct kb_errmsg *err)
{
	if (!t->quoted) {
		kb_errmsg_setf(err, "%s must be in double quotes", what);
		return KB_ECONFIG;
	}
	if (t->len >= size) {
		kb_errmsg_setf(err, "%s is longer than %zu characters", what, size - 1);
		return KB_ECONFIG;
	}
	memcpy(out, t->s, t->len);
	out[t->len] = '\0';
	return 0;
}

/* A bare decimal number without sign or leading zeros, at most max. */
static int tok_num(const struct tok *t, uint32_t max, uint32_t *out, const char *what,
		   struct kb_errmsg *err)
{
	uint64_t v = 0;
	size_t i;

	if (t->quoted || t->len == 0 || t->len > 10 || (t->len > 1 && t->s[0] == '0'))
		goto bad;
	for (i = 0; i < t->len; i++) {
		if (t->s[i] < '0' || t->s[i] > '9')
			goto bad;
		v = v * 10 + (uint64_t)(t->s[i] - '0');
	}
	if (v > max)
		goto bad;
	*out = (uint32_t)v;
	return 0;
bad:
	kb_errmsg_setf(err, "%s \"%.*s\" is not a number from 0 to %u", what, (int)t->len, t->s,
		       max);
	return KB_ECONFIG;
}

static int fields(size_t n, size_t want, const char *rec, struct kb_errmsg *err)
{
	if (n != want) {
		kb_errmsg_setf(err, "a %s record has %zu fields, not %zu", rec, n, want);
		return KB_ECONFIG;
	}
	return 0;
}

static bool is_uplink(const struct vmk__net_conf *c, const char *nic)
{
	size_t i, j;

	for (i = 0; i < c->n_vswitches; i++)
		for (j = 0; j < c->vswitches[i].n_uplinks; j++)
			if (strcmp(c->vswitches[i].uplinks[j], nic) == 0)
				return true;
	return false;
}

static int parse_vswitch(struct parser *p, const struct tok *t, size_t n)
{
	struct vmk__vswitch vs = {{0}};
	int rv;

	if ((rv = fields(n, 4, "vswitch", p->err)) < 0 ||
	    (rv = tok_name(&t[1], vs.name, sizeof(vs.name), "vSwitch name", p->err)) < 0 ||
	    (rv = vmk__check_ifname(vs.name, "vSwitch name", p->err)) < 0)
		return rv;
	if (!tok_is(&t[2], "mtu")) {
		kb_errmsg_setf(p->err, "expected: vswitch \"NAME\" mtu N");
		return KB_ECONFIG;
	}
	if ((rv = tok_num(&t[3], VMK_NET_MTU_MAX, &vs.mtu, "MTU", p->err)) < 0 ||
	    (rv = vmk__check_mtu(vs.mtu, p->err)) < 0)
		return rv;
	if (vmk__conf_vswitch(p->c, vs.name) || is_uplink(p->c, vs.name)) {
		kb_errmsg_setf(p->err, "vSwitch \"%s\" is listed twice", vs.name);
		return KB_ECONFIG;
	}
	return vmk__conf_add_vswitch(p->c, &vs);
}

static int parse_uplink(struct parser *p, const struct tok *t, size_t n)
{
	char name[VMK_NET_IFNAME_MAX], nic[VMK_NET_IFNAME_MAX];
	struct vmk__vswitch *vs;
	int rv;

	if ((rv = fields(n, 3, "uplink", p->err)) < 0 ||
	    (rv = tok_name(&t[1], name, sizeof(name), "vSwitch name", p->err)) < 0 ||
	    (rv = tok_name(&t[2], nic, sizeof(nic), "uplink name", p->err)) < 0 ||
	    (rv = vmk__check_ifname(nic, "uplink name", p->err)) < 0)
		return rv;
	vs = vmk__conf_vswitch(p->c, name);
	if (!vs) {
		kb_errmsg_setf(p->err, "uplink of unknown vSwitch \"%s\"", name);
		return KB_ECONFIG;
	}
	if (is_uplink(p->c, nic) || vmk__conf_vswitch(p->c, nic)) {
		kb_errmsg_setf(p->err, "uplink \"%s\" is listed twice", nic);
		return KB_ECONFIG;
	}
	if (vs->n_uplinks == VMK_NET_UPLINKS_MAX) {
		kb_errmsg_setf(p->err, "more than %d uplinks on \"%s\"", VMK_NET_UPLINKS_MAX, name);
		return KB_ETOOBIG;
	}
	memcpy(vs->uplinks[vs->n_uplinks++], nic, sizeof(nic));
	return 0;
}

static int parse_portgroup(struct parser *p, const struct tok *t, size_t n)
{
	struct vmk__portgroup pg = {{0}};
	uint32_t vlan;
	int rv;

	if ((rv = fields(n, 6, "portgroup", p->err)) < 0 ||
	    (rv = tok_name(&t[1], pg.name, sizeof(pg.name), "portgroup name", p->err)) < 0 ||
	    (rv = vmk__check_pg_name(pg.name, p->err)) < 0)
		return rv;
	if (!tok_is(&t[2], "vswitch") || !tok_is(&t[4], "vlan")) {
		kb_errmsg_setf(p->err, "expected: portgroup \"NAME\" vswitch \"NAME\" vlan N");
		return KB_ECONFIG;
	}
	if ((rv = tok_name(&t[3], pg.vswitch, sizeof(pg.vswitch), "vSwitch name", p->err)) < 0 ||
	    (rv = tok_num(&t[5], VMK_NET_VLAN_MAX, &vlan, "VLAN id", p->err)) < 0 ||
	    (rv = vmk__check_vlan(vlan, p->err)) < 0)
		return rv;
	pg.vlan = (uint16_t)vlan;
	if (!vmk__conf_vswitch(p->c, pg.vswitch)) {
		kb_errmsg_setf(p->err, "portgroup on unknown vSwitch \"%s\"", pg.vswitch);
		return KB_ECONFIG;
	}
	if (vmk__conf_portgroup(p->c, pg.name)) {
		kb_errmsg_setf(p->err, "portgroup \"%s\" is listed twice", pg.name);
		return KB_ECONFIG;
	}
	return vmk__conf_add_portgroup(p->c, &pg);
}

static int parse_port(struct parser *p, const struct tok *t, size_t n)
{
	struct vmk__port port = {{0}};
	char want[VMK_NET_IFNAME_MAX];
	int rv;

	if ((rv = fields(n, 8, "port", p->err)) < 0 ||
	    (rv = tok_name(&t[1], port.tap, sizeof(port.tap), "tap name", p->err)) < 0)
		return rv;
	if (!tok_is(&t[2], "portgroup") || !tok_is(&t[4], "vm") || !tok_is(&t[6], "nic")) {
		kb_errmsg_setf(p->err,
			       "expected: port \"TAP\" portgroup \"NAME\" vm \"UUID\" nic N");
		return KB_ECONFIG;
	}
	if ((rv = tok_name(&t[3], port.portgroup, sizeof(port.portgroup), "portgroup name",
			   p->err)) < 0 ||
	    (rv = tok_name(&t[5], port.vm_uuid, sizeof(port.vm_uuid), "VM uuid", p->err)) < 0 ||
	    (rv = tok_num(&t[7], VMK_NET_NIC_INDEX_MAX, &port.nic, "NIC index", p->err)) < 0 ||
	    (rv = vmk_net_port_name(port.vm_uuid, port.nic, want, p->err)) < 0)
		return rv;
	if (strcmp(want, port.tap) != 0) {
		kb_errmsg_setf(p->err, "port \"%s\" should be named \"%s\"", port.tap, want);
		return KB_ECONFIG;
	}
	if (!vmk__conf_portgroup(p->c, port.portgroup)) {
		kb_errmsg_setf(p->err, "port on unknown portgroup \"%s\"", port.portgroup);
		return KB_ECONFIG;
	}
	if (vmk__conf_port(p->c, port.tap)) {
		kb_errmsg_setf(p->err, "port \"%s\" is listed twice", port.tap);
		return KB_ECONFIG;
	}
	return vmk__conf_add_port(p->c, &port);
}

/* Copies bare token t into out[size] ("what" names it in errors). */
static int tok_word(const struct tok *t, char *out, size_t size, const char *what,
		    struct kb_errmsg *err)
{
	if (t->quoted || t->len == 0 || t->len >= size) {
		kb_errmsg_setf(err, "%s \"%.*s\" is not a bare word of at most %zu characters",
			       what, (int)(t->len > 40 ? 40 : t->len), t->s, size - 1);
		return KB_ECONFIG;
	}
	memcpy(out, t->s, t->len);
	out[t->len] = '\0';
	return 0;
}

static int parse_netstack(struct parser *p, const struct tok *t, size_t n)
{
	struct vmk__netstack ns = {{0}};
	int rv;

	if ((rv = fields(n, 2, "netstack", p->err)) < 0 ||
	    (rv = tok_name(&t[1], ns.name, sizeof(ns.name), "netstack name", p->err)) < 0 ||
	    (rv = vmk__check_netstack_name(ns.name, p->err)) < 0)
		return rv;
	if (vmk__netstack_is_default(ns.name) || vmk__conf_netstack(p->c, ns.name)) {
		kb_errmsg_setf(p->err, "netstack \"%s\" is listed twice (or is the default)",
			       ns.name);
		return KB_ECONFIG;
	}
	return vmk__conf_add_netstack(p->c, &ns);
}

/* "-" or Tag,Tag,... */
static int parse_tags(const struct tok *t, uint32_t *tags, struct kb_errmsg *err)
{
	char word[128], *save = NULL, *one;
	int rv;

	*tags = 0;
	if ((rv = tok_word(t, word, sizeof(word), "tags", err)) < 0 || strcmp(word, "-") == 0)
		return rv;
	for (one = strtok_r(word, ",", &save); one; one = strtok_r(NULL, ",", &save)) {
		uint32_t bit;

		if ((rv = vmk__tag_parse(one, &bit, err)) < 0)
			return rv;
		if (*tags & bit) {
			kb_errmsg_setf(err, "tag %s is listed twice", one);
			return KB_ECONFIG;
		}
		*tags |= bit;
	}
	return 0;
}

static int parse_vmknic(struct parser *p, const struct tok *t, size_t n)
{
	struct vmk__vmknic v = {{0}};
	char word[32];
	size_t i;
	int rv;

	if ((rv = fields(n, 16, "vmknic", p->err)) < 0 ||
	    (rv = tok_name(&t[1], v.name, sizeof(v.name), "VMkernel adapter name", p->err)) < 0 ||
	    (rv = vmk__check_vmknic_name(v.name, p->err)) < 0)
		return rv;
	if (!tok_is(&t[2], "portgroup") || !tok_is(&t[4], "netstack") || !tok_is(&t[6], "ip") ||
	    !tok_is(&t[8], "gateway") || !tok_is(&t[10], "mtu") || !tok_is(&t[12], "mac") ||
	    !tok_is(&t[14], "tags")) {
		kb_errmsg_setf(p->err, "expected: vmknic \"NAME\" portgroup \"PG\" netstack "
				       "\"NS\" ip A.B.C.D/N gateway A.B.C.D|none mtu N mac MAC "
				       "tags T,T|-");
		return KB_ECONFIG;
	}
	if ((rv = tok_name(&t[3], v.portgroup, sizeof(v.portgroup), "portgroup name", p->err)) <
		0 ||
	    (rv = tok_name(&t[5], v.netstack, sizeof(v.netstack), "netstack name", p->err)) < 0 ||
	    (rv = tok_word(&t[7], word, sizeof(word), "address", p->err)) < 0 ||
	    (rv = vmk__ipv4_prefix_parse(word, &v.ip, &v.prefix, p->err)) < 0 ||
	    (rv = tok_word(&t[9], word, sizeof(word), "gateway", p->err)) < 0)
		return rv;
	if (strcmp(word, "none") != 0) {
		uint32_t mask = vmk__prefix_mask(v.prefix);

		if ((rv = vmk__ipv4_parse(word, &v.gateway, "gateway", p->err)) < 0)
			return rv;
		if ((v.gateway & mask) != (v.ip & mask) || v.gateway == v.ip) {
			kb_errmsg_setf(p->err, "gateway %s is outside the adapter's subnet", word);
			return KB_ECONFIG;
		}
	}
	if ((rv = tok_num(&t[11], VMK_NET_MTU_MAX, &v.mtu, "MTU", p->err)) < 0 ||
	    (rv = vmk__check_mtu(v.mtu, p->err)) < 0 ||
	    (rv = tok_word(&t[13], word, sizeof(word), "MAC", p->err)) < 0 ||
	    (rv = vmk__mac_parse(word, v.mac, p->err)) < 0 ||
	    (rv = parse_tags(&t[15], &v.tags, p->err)) < 0)
		return rv;
	if (!vmk__conf_portgroup(p->c, v.portgroup)) {
		kb_errmsg_setf(p->err, "vmknic on unknown portgroup \"%s\"", v.portgroup);
		return KB_ECONFIG;
	}
	if (!vmk__netstack_is_default(v.netstack) && !vmk__conf_netstack(p->c, v.netstack)) {
		kb_errmsg_setf(p->err, "vmknic in unknown netstack \"%s\"", v.netstack);
		return KB_ECONFIG;
	}
	if (vmk__netstack_is_default(v.netstack))
		snprintf(v.netstack, sizeof(v.netstack), "%s", VMK_NET_DEFAULT_NETSTACK);
	for (i = 0; i < p->c->n_vmknics; i++) {
		const struct vmk__vmknic *o = &p->c->vmknics[i];

		if (strcmp(o->name, v.name) == 0 ||
		    (o->ip == v.ip && strcmp(o->netstack, v.netstack) == 0)) {
			kb_errmsg_setf(p->err, "vmknic \"%s\" or its address is listed twice",
				       v.name);
			return KB_ECONFIG;
		}
	}
	return vmk__conf_add_vmknic(p->c, &v);
}

static int parse_record(struct parser *p, const struct tok *t, size_t n)
{
	uint32_t version;
	int rv;

	if (!p->versioned) {
		if (n != 2 || !tok_is(&t[0], "version")) {
			kb_errmsg_setf(p->err, "the first record must be \"version %d\"",
				       VMK__CONF_VERSION);
			return KB_ECONFIG;
		}
		rv = tok_num(&t[1], UINT32_MAX, &version, "version", p->err);
		if (rv < 0)
			return rv;
		if (version != VMK__CONF_VERSION) {
			kb_errmsg_setf(p->err, "unsupported version %u", version);
			return KB_EVERSION;
		}
		p->versioned = true;
		return 0;
	}
	if (tok_is(&t[0], "vswitch"))
		return parse_vswitch(p, t, n);
	if (tok_is(&t[0], "uplink"))
		return parse_uplink(p, t, n);
	if (tok_is(&t[0], "portgroup"))
		return parse_portgroup(p, t, n);
	if (tok_is(&t[0], "port"))
		return parse_port(p, t, n);
	if (tok_is(&t[0], "netstack"))
		return parse_netstack(p, t, n);
	if (tok_is(&t[0], "vmknic"))
		return parse_vmknic(p, t, n);
	kb_errmsg_setf(p->err, "unknown record \"%.*s\"", (int)(t[0].len > 32 ? 32 : t[0].len),
		       t[0].s);
	return KB_ECONFIG;
}

/* Parses one line (without its newline); comments and blank lines are skipped. */
static int parse_line(struct parser *p, const char *line, size_t len)
{
	struct tok t[TOKS_MAX];
	size_t i, n;
	int rv;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)line[i];

		if ((ch < 0x20 && ch != '\t') || ch > 0x7e) {
			kb_errmsg_setf(p->err, "byte 0x%02x at column %zu is not printable ASCII",
				       ch, i + 1);
			return KB_ECONFIG;
		}
	}
	for (i = 0; i < len && (line[i] == ' ' || line[i] == '\t'); i++)
		;
	if (i == len || line[i] == '#')
		return 0;
	rv = tokenize(line, len, t, &n, p->err);
	if (rv < 0)
		return rv;
	if (n > TOKS_MAX_OTHER && !tok_is(&t[0], "vmknic")) {
		kb_errmsg_setf(p->err, "too many fields");
		return KB_ECONFIG;
	}
	return parse_record(p, t, n);
}

int vmk__conf_parse(const char *text, size_t len, struct vmk__net_conf **out, struct kb_errmsg *err)
{
	struct parser p = {.err = err};
	size_t off = 0, lineno = 0;
	int rv = 0;

	if (len > VMK__CONF_SIZE_MAX) {
		kb_errmsg_setf(err, "larger than %u bytes", VMK__CONF_SIZE_MAX);
		return KB_ETOOBIG;
	}
	p.c = vmk__conf_new();
	if (!p.c)
		return -ENOMEM;
	while (off < len) {
		const char *nl = memchr(text + off, '\n', len - off);
		size_t llen = nl ? (size_t)(nl - (text + off)) : len - off;

		lineno++;
		if (!nl) {
			kb_errmsg_setf(err, "line %zu: no newline at the end (truncated file?)",
				       lineno);
			rv = KB_ECONFIG;
			goto err_conf;
		}
		if (llen > VMK__CONF_LINE_MAX) {
			kb_errmsg_setf(err, "line %zu: longer than %d bytes", lineno,
				       VMK__CONF_LINE_MAX);
			rv = KB_ECONFIG;
			goto err_conf;
		}
		rv = parse_line(&p, text + off, llen);
		if (rv < 0) {
			kb_errmsg_wrapf(err, "line %zu", lineno);
			goto err_conf;
		}
		off += llen + 1;
	}
	if (!p.versioned) {
		kb_errmsg_setf(err, "no \"version %d\" record (empty file?)", VMK__CONF_VERSION);
		rv = KB_ECONFIG;
		goto err_conf;
	}
	*out = p.c;
	return 0;

err_conf:
	vmk__conf_free(p.c);
	return rv;
}

static int put_line(struct kb_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int put_line(struct kb_buf *b, const char *fmt, ...)
{
	char line[VMK__CONF_LINE_MAX + 2];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line))
		return KB_ETOOBIG;
	return kb_buf_append(b, line, (size_t)n);
}

int vmk__conf_format(const struct vmk__net_conf *c, struct kb_buf *out)
{
	size_t i, j;
	int rv;

	rv = put_line(out,
		      "# Keel host networking: vSwitches, uplinks, portgroups, VM NIC ports.\n"
		      "# Written by vmkernel; format in docs/networking.md.\n"
		      "version %d\n",
		      VMK__CONF_VERSION);
	for (i = 0; rv == 0 && i < c->n_vswitches; i++) {
		const struct vmk__vswitch *vs = &c->vswitches[i];

		rv = put_line(out, "vswitch \"%s\" mtu %u\n", vs->name, vs->mtu);
		for (j = 0; rv == 0 && j < vs->n_uplinks; j++)
			rv = put_line(out, "uplink \"%s\" \"%s\"\n", vs->name, vs->uplinks[j]);
	}
	for (i = 0; rv == 0 && i < c->n_portgroups; i++) {
		const struct vmk__portgroup *pg = &c->portgroups[i];

		rv = put_line(out, "portgroup \"%s\" vswitch \"%s\" vlan %u\n", pg->name,
			      pg->vswitch, pg->vlan);
	}
	for (i = 0; rv == 0 && i < c->n_netstacks; i++)
		rv = put_line(out, "netstack \"%s\"\n", c->netstacks[i].name);
	for (i = 0; rv == 0 && i < c->n_vmknics; i++) {
		const struct vmk__vmknic *v = &c->vmknics[i];
		char ip[16], gw[16] = "none", mac[18], tags[128] = "-";
		size_t o = 0;
		unsigned k;

		if (v->gateway)
			vmk__ipv4_format(v->gateway, gw);
		for (k = 0; k < VMK__TAG_COUNT; k++)
			if (v->tags & (1u << k))
				o += (size_t)snprintf(tags + o, sizeof(tags) - o, "%s%s",
						      o ? "," : "", vmk__tag_names[k]);
		rv = put_line(out,
			      "vmknic \"%s\" portgroup \"%s\" netstack \"%s\" ip %s/%u gateway %s "
			      "mtu %u mac %s tags %s\n",
			      v->name, v->portgroup, v->netstack, vmk__ipv4_format(v->ip, ip),
			      v->prefix, gw, v->mtu, vmk__mac_format(v->mac, mac), tags);
	}
	for (i = 0; rv == 0 && i < c->n_ports; i++) {
		const struct vmk__port *p = &c->ports[i];

		rv = put_line(out, "port \"%s\" portgroup \"%s\" vm \"%s\" nic %u\n", p->tap,
			      p->portgroup, p->vm_uuid, p->nic);
	}
	return rv;
}
