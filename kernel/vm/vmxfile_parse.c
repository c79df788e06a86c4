/*
 * vmk_vmx_parse(): the one checked decoder for the bytes of a .vmx file, and the lifecycle
 * of struct vmk_vmx (init, close, kept keys). The format is documented in
 * docs/vmx-file.md.
 *
 * Happy path: the input is split into lines (LF or CRLF); each non-blank, non-comment line
 * is decoded as `key = "value"` (only \" and \\ escapes), a known key goes to its field's
 * checker, any other key is kept verbatim in file order. The whole struct is then validated
 * and handed to the caller.
 *
 * Failure modes: size limits (file, line, key, number of keys) give KB_ETOOBIG; bad syntax,
 * NUL bytes, bad quoting and duplicate keys KB_EPROTO; bad values KB_ECONFIG or
 * KB_EVERSION; each with "line N: key: reason". The parser works on its own copy, so the
 * caller's struct is untouched on error.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "kernel/vm/vmxfile_internal.h"
#include "lib/heap.h"

/* ---- init, close, kept keys ----------------------------------------------------------- */

void vmk_vmx_init(struct vmk_vmx *vmx)
{
	memset(vmx, 0, sizeof(*vmx));
}

void vmk_vmx_close(struct vmk_vmx *vmx)
{
	for (size_t i = 0; i < vmx->n_extra; i++) {
		kb_free(vmx->extra[i].key);
		kb_free(vmx->extra[i].value);
	}
	kb_free(vmx->extra);
	vmx->extra = NULL;
	vmx->n_extra = 0;
}

static int extra_add(struct vmk_vmx *vmx, const char *key, const char *value)
{
	struct vmk_vmx_extra *e;
	size_t n = vmx->n_extra;

	/* Grows at powers of two; n is the size before the append. */
	if ((n & (n - 1)) == 0) {
		e = kb_realloc(vmx->extra, (n ? 2 * n : 1) * sizeof(*e));
		if (e == NULL)
			return -ENOMEM;
		vmx->extra = e;
	}
	e = &vmx->extra[n];
	e->key = kb_strdup(key);
	e->value = kb_strdup(value);
	if (e->key == NULL || e->value == NULL) {
		kb_free(e->key);
		kb_free(e->value);
		return -ENOMEM;
	}
	vmx->n_extra++;
	return 0;
}

/* ---- parser --------------------------------------------------------------------------- */

struct parser {
	struct vmk_vmx vmx;
	bool seen[NFIELDS];
	unsigned lines[NFIELDS];
	unsigned nkeys;
	char key[VMK_VMX_KEY_MAX + 1];
	char val[VMK_VMX_LINE_MAX + 1];
};

/* Decodes one line (no newline, no NUL) into p->key and p->val. 1: a key line, 0: blank or
 * comment, negative: error. */
static int split_line(struct parser *p, const char *s, size_t n, const struct where *w0)
{
	struct where w = *w0;
	size_t i = 0, k, v = 0;

	if (n > 0 && s[n - 1] == '\r')
		n--; /* CRLF line ends */
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i == n || s[i] == '#')
		return 0;
	for (k = i; k < n && vmk__vmx_key_char((unsigned char)s[k]); k++)
		;
	if (k == i)
		return vmk__vmx_bad(
		    &w, KB_EPROTO,
		    "expected a key, found '%c' (key characters: A-Z a-z 0-9 . _ : -)",
		    (unsigned char)s[k] >= 0x20 && s[k] != 0x7f ? s[k] : '?');
	if (k - i > VMK_VMX_KEY_MAX)
		return vmk__vmx_bad(&w, KB_ETOOBIG, "key longer than %d bytes", VMK_VMX_KEY_MAX);
	memcpy(p->key, s + i, k - i);
	p->key[k - i] = 0;
	w.key = p->key;
	while (k < n && (s[k] == ' ' || s[k] == '\t'))
		k++;
	if (k == n || s[k] != '=') {
		if (k < n && !vmk__vmx_key_char((unsigned char)s[k]) && s[k] != ' ' && s[k] != '\t')
			return vmk__vmx_bad(&w, KB_EPROTO,
					    "invalid character in key or missing '='");
		return vmk__vmx_bad(&w, KB_EPROTO, "expected '=' after the key");
	}
	k++;
	while (k < n && (s[k] == ' ' || s[k] == '\t'))
		k++;
	if (k == n || s[k] != '"')
		return vmk__vmx_bad(&w, KB_EPROTO, "value must be in double quotes");
	for (k++;; k++) {
		unsigned char c;
		if (k == n)
			return vmk__vmx_bad(&w, KB_EPROTO, "unterminated quoted value");
		c = (unsigned char)s[k];
		if (c == '"')
			break;
		if (c < 0x20 || c == 0x7f)
			return vmk__vmx_bad(&w, KB_EPROTO, "control character 0x%02x in value", c);
		if (c == '\\') {
			if (k + 1 == n || (s[k + 1] != '"' && s[k + 1] != '\\'))
				return vmk__vmx_bad(&w, KB_EPROTO,
						    "bad escape (only \\\" and \\\\ are allowed)");
			c = (unsigned char)s[++k];
		}
		p->val[v++] = (char)c;
	}
	p->val[v] = 0;
	for (k++; k < n; k++)
		if (s[k] != ' ' && s[k] != '\t')
			return vmk__vmx_bad(&w, KB_EPROTO,
					    "unexpected text after the closing quote");
	if (!vmk__vmx_utf8_valid((const unsigned char *)p->val, v))
		return vmk__vmx_bad(&w, KB_EPROTO, "value is not valid UTF-8");
	return 1;
}

static int parse_line(struct parser *p, const char *s, size_t n, const struct where *w0)
{
	struct where w = *w0;
	const char *why = NULL;
	struct fref r;
	int rc;

	rc = split_line(p, s, n, w0);
	if (rc <= 0)
		return rc;
	w.key = p->key;
	if (++p->nkeys > VMK_VMX_KEYS_MAX)
		return vmk__vmx_bad(&w, KB_ETOOBIG, "more than %d keys", VMK_VMX_KEYS_MAX);
	rc = vmk__vmx_lookup_key(p->key, &r, &why);
	if (rc < 0)
		return vmk__vmx_bad(&w, KB_ECONFIG, "%s", why);
	if (rc == 0) {
		for (size_t i = 0; i < p->vmx.n_extra; i++)
			if (strcasecmp(p->vmx.extra[i].key, p->key) == 0)
				return vmk__vmx_bad(&w, KB_EPROTO, "duplicate key");
		/* A kept key is written back as `key = "value"` with escapes: that line too must
		 * fit, or the file could be loaded but never saved. */
		size_t out = strlen(p->key) + 5;
		for (const char *c = p->val; *c; c++)
			out += (*c == '"' || *c == '\\') ? 2 : 1;
		if (out > VMK_VMX_LINE_MAX)
			return vmk__vmx_bad(&w, KB_ETOOBIG, "line longer than %d bytes once written",
					    VMK_VMX_LINE_MAX);
		return extra_add(&p->vmx, p->key, p->val);
	}
	if (p->seen[r.id])
		return vmk__vmx_bad(&w, KB_EPROTO, "duplicate key (first on line %u)",
				    p->lines[r.id]);
	p->seen[r.id] = true;
	p->lines[r.id] = w.line;
	return vmk__vmx_field_set(&p->vmx, &r, p->val, &w);
}

int vmk_vmx_parse(struct vmk_vmx *vmx, const void *data, size_t len, struct kb_errmsg *err)
{
	const char *s = data, *end = s + len;
	struct where w = {err, 0, NULL};
	struct parser *p;
	int rc = 0;

	if (len > VMK_VMX_FILE_MAX)
		return vmk__vmx_bad(&w, KB_ETOOBIG, "file is %zu bytes, at most %d allowed", len,
				    VMK_VMX_FILE_MAX);
	p = kb_calloc(1, sizeof(*p));
	if (p == NULL) {
		kb_errmsg_setf(err, "out of memory");
		return -ENOMEM;
	}
	vmk_vmx_init(&p->vmx);
	while (s < end) {
		const char *nl = memchr(s, '\n', (size_t)(end - s));
		size_t n = nl ? (size_t)(nl - s) : (size_t)(end - s);

		w.line++;
		if (n > VMK_VMX_LINE_MAX) {
			rc = vmk__vmx_bad(&w, KB_ETOOBIG, "line longer than %d bytes",
					  VMK_VMX_LINE_MAX);
			goto close_tmp;
		}
		if (memchr(s, 0, n) != NULL) {
			rc = vmk__vmx_bad(&w, KB_EPROTO, "NUL byte");
			goto close_tmp;
		}
		rc = parse_line(p, s, n, &w);
		if (rc == -ENOMEM)
			kb_errmsg_setf(err, "line %u: out of memory", w.line);
		if (rc)
			goto close_tmp;
		s += n + (nl != NULL);
	}
	rc = vmk__vmx_validate_all(&p->vmx, p->lines, err);
	if (rc)
		goto close_tmp;
	*vmx = p->vmx;
	goto free_parser;

close_tmp:
	vmk_vmx_close(&p->vmx);
free_parser:
	kb_free(p);
	return rc;
}
