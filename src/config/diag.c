/*
 * Diagnostics: every problem found while loading a config, with file, line and severity, so
 * `slogate check` can show them all at once instead of stopping at the first (HAProxy style).
 */
#include "config_int.h"

#include <stdio.h>
#include <stdlib.h>

void sg_diags_init(struct sg_diags *d)
{
    d->v = NULL;
    d->n = 0;
    d->cap = 0;
}

void sg_diags_dispose(struct sg_diags *d)
{
    for (size_t i = 0; i < d->n; i++) {
        free(d->v[i].file);
        free(d->v[i].msg);
    }
    free(d->v);
    sg_diags_init(d);
}

void sg_diags_vadd(struct sg_diags *d, enum sg_diag_severity sev, const char *file, int line,
                   const char *fmt, va_list ap)
{
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->v = sg_xrealloc(d->v, d->cap * sizeof *d->v);
    }
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_vappendf(&b, fmt, ap);
    struct sg_diag *g = &d->v[d->n++];
    g->severity = sev;
    g->file = sg_xstrdup(file ? file : "<config>");
    g->line = line < 0 ? 0 : line;
    g->msg = b.data ? b.data : sg_xstrdup("");
}

void sg_diags_add(struct sg_diags *d, enum sg_diag_severity sev, const char *file, int line,
                  const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sg_diags_vadd(d, sev, file, line, fmt, ap);
    va_end(ap);
}

static size_t count(const struct sg_diags *d, enum sg_diag_severity sev)
{
    size_t n = 0;
    for (size_t i = 0; i < d->n; i++)
        n += d->v[i].severity == sev;
    return n;
}

size_t sg_diags_errors(const struct sg_diags *d)
{
    return count(d, SG_DIAG_ERROR);
}

size_t sg_diags_warnings(const struct sg_diags *d)
{
    return count(d, SG_DIAG_WARNING);
}

/* Where a diagnostic sorts: by file (in the order the files first appear: the config, then
 * the files its include: names), then by line. */
struct diag_key {
    size_t rank;
    int line;
};

static bool key_less(struct diag_key a, struct diag_key b)
{
    return a.rank != b.rank ? a.rank < b.rank : a.line < b.line;
}

void sg_diags_sort_from(struct sg_diags *d, size_t from)
{
    /* Bottom-up merge sort: stable, and O(n log n) even when a hostile file produces many
     * diagnostics. Problems without a line (0) come first: they are about the file as a whole.
     * A config names at most a few dozen files, so ranking them by a linear search is cheap. */
    size_t n = d->n - from;
    if (d->n <= from || n < 2)
        return;
    struct sg_diag *a = d->v + from;
    const char **files = sg_xmalloc(n * sizeof *files);
    size_t n_files = 0;
    struct diag_key *keys = sg_xmalloc(n * sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        size_t r = 0;
        while (r < n_files && strcmp(files[r], a[i].file) != 0)
            r++;
        if (r == n_files)
            files[n_files++] = a[i].file;
        keys[i] = (struct diag_key){r, a[i].line};
    }
    free(files);
    struct sg_diag *tmp = sg_xmalloc(n * sizeof *tmp);
    struct diag_key *tkeys = sg_xmalloc(n * sizeof *tkeys);
    for (size_t w = 1; w < n; w *= 2) {
        for (size_t lo = 0; lo < n; lo += 2 * w) {
            size_t mid = SG_MIN(lo + w, n), hi = SG_MIN(lo + 2 * w, n);
            size_t i = lo, j = mid, k = lo;
            while (i < mid && j < hi) {
                bool right = key_less(keys[j], keys[i]);
                tkeys[k] = right ? keys[j] : keys[i];
                tmp[k++] = right ? a[j++] : a[i++];
            }
            while (i < mid) {
                tkeys[k] = keys[i];
                tmp[k++] = a[i++];
            }
            while (j < hi) {
                tkeys[k] = keys[j];
                tmp[k++] = a[j++];
            }
        }
        memcpy(a, tmp, n * sizeof *tmp);
        memcpy(keys, tkeys, n * sizeof *keys);
    }
    free(tmp);
    free(tkeys);
    free(keys);
}

void sg_diags_sort(struct sg_diags *d)
{
    sg_diags_sort_from(d, 0);
}

void sg_diags_print(const struct sg_diags *d, FILE *out)
{
    for (size_t i = 0; i < d->n; i++) {
        const struct sg_diag *g = &d->v[i];
        const char *sev = g->severity == SG_DIAG_ERROR ? "error" : "warning";
        if (g->line > 0)
            fprintf(out, "%s:%d: %s: %s\n", g->file, g->line, sev, g->msg);
        else
            fprintf(out, "%s: %s: %s\n", g->file, sev, g->msg);
    }
}
