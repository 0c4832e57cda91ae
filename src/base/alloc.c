/* Aborting allocation: running out of memory is not a state the gateway can serve from. */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>

static void oom(size_t n)
{
    fprintf(stderr, "slogate: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sg_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *sg_xcalloc(size_t count, size_t n)
{
    void *p = calloc(count ? count : 1, n ? n : 1);
    if (!p)
        oom(count * n);
    return p;
}

void *sg_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *sg_xstrndup(const char *s, size_t n)
{
    char *d = sg_xmalloc(n + 1);
    memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

char *sg_xstrdup(const char *s)
{
    return sg_xstrndup(s, strlen(s));
}

char *sg_xasprintf(const char *fmt, ...)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    va_list ap;
    va_start(ap, fmt);
    sg_buf_vappendf(&b, fmt, ap);
    va_end(ap);
    if (!b.data)
        return sg_xstrdup("");
    return b.data;
}
