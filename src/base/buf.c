/* Growable byte buffers with a hard cap: the cap is how every size limit is enforced. */
#include "base.h"

#include <stdio.h>
#include <stdlib.h>

void sg_buf_init(struct sg_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : SIZE_MAX - 1;
}

void sg_buf_dispose(struct sg_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
}

int sg_buf_reserve(struct sg_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra)
        return SG_ETOOBIG;
    size_t need = b->len + extra + 1; /* +1 keeps room for the NUL */
    if (need <= b->cap)
        return SG_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    b->data = sg_xrealloc(b->data, cap);
    b->cap = cap;
    return SG_OK;
}

int sg_buf_append(struct sg_buf *b, const void *p, size_t n)
{
    int rc = sg_buf_reserve(b, n);
    if (rc)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return SG_OK;
}

int sg_buf_appends(struct sg_buf *b, const char *s)
{
    return sg_buf_append(b, s, strlen(s));
}

int sg_buf_append_u64(struct sg_buf *b, uint64_t v)
{
    char d[21];
    return sg_buf_append(b, d, sg_fmt_u64(d, v));
}

int sg_buf_vappendf(struct sg_buf *b, const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    char small[256];
    int n = vsnprintf(small, sizeof small, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return SG_EINVAL;
    if ((size_t)n < sizeof small)
        return sg_buf_append(b, small, (size_t)n);
    int rc = sg_buf_reserve(b, (size_t)n);
    if (rc)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return SG_OK;
}

int sg_buf_appendf(struct sg_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = sg_buf_vappendf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int sg_buf_append_json_str(struct sg_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t start = b->len;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        const char *out = NULL;
        size_t outn = 0;
        switch (c) {
        case '"':
            out = "\\\"";
            outn = 2;
            break;
        case '\\':
            out = "\\\\";
            outn = 2;
            break;
        case '\n':
            out = "\\n";
            outn = 2;
            break;
        case '\r':
            out = "\\r";
            outn = 2;
            break;
        case '\t':
            out = "\\t";
            outn = 2;
            break;
        default:
            if (c >= 0x80) {
                size_t l = sg_utf8_seq_len(s + i, n - i);
                out = l ? &s[i] : "\xef\xbf\xbd";
                outn = l ? l : 3;
                i += l ? l - 1 : 0;
            } else if (c < 0x20) {
                esc[0] = '\\';
                esc[1] = 'u';
                esc[2] = '0';
                esc[3] = '0';
                esc[4] = hex[c >> 4];
                esc[5] = hex[c & 15];
                out = esc;
                outn = 6;
            }
        }
        int rc = out ? sg_buf_append(b, out, outn) : sg_buf_append(b, &s[i], 1);
        if (rc) {
            b->len = start;
            b->data[start] = '\0';
            return rc;
        }
    }
    return SG_OK;
}

void sg_buf_consume(struct sg_buf *b, size_t n)
{
    if (n >= b->len) {
        sg_buf_reset(b);
        return;
    }
    memmove(b->data, b->data + n, b->len - n);
    b->len -= n;
    b->data[b->len] = '\0';
}

char *sg_buf_steal(struct sg_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    if (!p)
        p = sg_xcalloc(1, 1);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    return p;
}
