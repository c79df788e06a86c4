/*
 * Aligned text tables for list commands.
 *
 * Rows are collected first (cells copied and cleaned of control characters), then printed
 * with every column as wide as its widest cell, measured in characters rather than bytes
 * so UTF-8 names line up. The last column is not padded. An allocation failure is
 * remembered and reported when the table is printed, instead of printing half a table.
 */
#include <errno.h>
#include <string.h>

#include "lib/heap.h"
#include "mgmt-api/keel/keel.h"

void kc_table_init(struct kc_table *t, int ncols, const char *const *heads, const char *align)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols > KC_TABLE_MAX_COLS ? KC_TABLE_MAX_COLS : ncols;
	for (int c = 0; c < t->ncols; c++) {
		t->head[c] = heads[c];
		t->right[c] = align && align[c] == 'r';
	}
}

int kc_table_add(struct kc_table *t, const char *const *cells)
{
	if (t->err)
		return t->err;
	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **n = kb_realloc(t->cells, cap * (size_t)t->ncols * sizeof(*n));

		if (!n)
			return t->err = -ENOMEM;
		t->cells = n;
		t->cap = cap;
	}
	for (int c = 0; c < t->ncols; c++) {
		const char *s = cells[c] ? cells[c] : "";
		size_t len = strlen(s) + 1;
		char *copy = kb_malloc(len);

		if (!copy) {
			for (int k = 0; k < c; k++)
				kb_free(t->cells[t->nrows * (size_t)t->ncols + (size_t)k]);
			return t->err = -ENOMEM;
		}
		t->cells[t->nrows * (size_t)t->ncols + (size_t)c] = kc_clean(s, copy, len);
	}
	t->nrows++;
	return 0;
}

/* Characters in a UTF-8 string (continuation bytes do not count). */
static size_t width(const char *s)
{
	size_t w = 0;

	for (; *s; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

static void print_row(FILE *f, const struct kc_table *t, const char *const *cells, const size_t *w)
{
	for (int c = 0; c < t->ncols; c++) {
		size_t pad = w[c] - width(cells[c]);
		bool last = c == t->ncols - 1;

		if (c > 0)
			fputs("  ", f);
		if (t->right[c])
			fprintf(f, "%*s", (int)pad, "");
		fputs(cells[c], f);
		if (!t->right[c] && !last)
			fprintf(f, "%*s", (int)pad, "");
	}
	fputc('\n', f);
}

int kc_table_print(struct kc_table *t, struct kc_ctx *ctx, FILE *f)
{
	size_t w[KC_TABLE_MAX_COLS];

	if (t->err)
		return kc_fail(ctx, KC_EXIT_FAILED, t->err, "%s", kb_strerror(t->err));
	for (int c = 0; c < t->ncols; c++) {
		w[c] = width(t->head[c]);
		for (size_t r = 0; r < t->nrows; r++) {
			size_t cw = width(t->cells[r * (size_t)t->ncols + (size_t)c]);
			w[c] = cw > w[c] ? cw : w[c];
		}
	}
	print_row(f, t, t->head, w);
	for (size_t r = 0; r < t->nrows; r++)
		print_row(f, t, (const char *const *)&t->cells[r * (size_t)t->ncols], w);
	fflush(f);
	return KC_EXIT_OK;
}

void kc_table_close(struct kc_table *t)
{
	for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++)
		kb_free(t->cells[i]);
	kb_free(t->cells);
	memset(t, 0, sizeof(*t));
}
