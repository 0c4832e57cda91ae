/*
 * Media inside content parts: data URLs, base64, and what a document's bytes hold (a PDF's
 * pages). Shared by the translators (a chat client's `file` part at an Anthropic deployment),
 * the input-token estimate and the mock, so the three read a document the same way.
 */
#include "provider_int.h"

bool sg_data_url(const char *url, size_t n, struct sg_slice *media_type, struct sg_slice *data)
{
    if (n < 5 || memcmp(url, "data:", 5) != 0)
        return false;
    const char *comma = memchr(url, ',', n);
    if (!comma || comma - url < 12 || memcmp(comma - 7, ";base64", 7) != 0)
        return false;
    const char *mt = url + 5, *end = memchr(mt, ';', (size_t)(comma - mt)); /* params after it */
    if (end == mt)
        return false;
    *media_type = (struct sg_slice){mt, (size_t)(end - mt)};
    *data = (struct sg_slice){comma + 1, (size_t)(url + n - (comma + 1))};
    return true;
}

static int b64_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

void sg_b64_init(struct sg_b64 *d)
{
    memset(d, 0, sizeof *d);
}

/* PDF page objects: "/Type" then optional whitespace then "/Page" not followed by a name
 * character ("/Pages" is the page tree, not a page). */
static void pdf_feed(struct sg_b64 *d, unsigned char c)
{
    static const char type[] = "/Type", page[] = "/Page";
    bool space = c == ' ' || c == '\r' || c == '\n' || c == '\t' || c == '\f' || c == 0;
    for (int again = 0; again < 2; again++) {
        if (d->pdf_state < 5) { /* matching /Type */
            if (c == (unsigned char)type[d->pdf_state]) {
                d->pdf_state++;
                return;
            }
        } else if (d->pdf_state == 5) { /* after /Type: whitespace, then / */
            if (space)
                return;
            if (c == '/') {
                d->pdf_state = 6;
                return;
            }
        } else if (d->pdf_state < 10) { /* matching Page */
            if (c == (unsigned char)page[d->pdf_state - 5]) {
                d->pdf_state++;
                return;
            }
        } else { /* after /Page: a page unless a name goes on */
            bool name = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        (c >= '0' && c <= '9') || c == '_' || c == '-' || c == '.';
            if (!name)
                d->pdf_pages++;
        }
        if (d->pdf_state == 0)
            return;
        d->pdf_state = 0; /* a mismatch: this byte may start the next /Type */
    }
}

static void b64_byte(struct sg_b64 *d, unsigned char c)
{
    if (d->bytes < (int64_t)sizeof d->head)
        d->head[d->bytes] = c;
    d->bytes++;
    pdf_feed(d, c);
}

void sg_b64_feed(struct sg_b64 *d, uint32_t c)
{
    if (d->bad)
        return;
    if (c == '=') {
        d->padded = true;
        return;
    }
    if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
        return; /* MIME line breaks */
    int v = c < 0x80 ? b64_value((unsigned char)c) : -1;
    if (v < 0 || d->padded) {
        d->bad = true;
        return;
    }
    d->acc = (d->acc << 6) | (uint32_t)v;
    d->bits += 6;
    if (d->bits >= 8) {
        d->bits -= 8;
        b64_byte(d, (unsigned char)(d->acc >> d->bits));
        d->acc &= (1u << d->bits) - 1;
    }
}

bool sg_b64_is_pdf(const struct sg_b64 *d)
{
    return !d->bad && d->bytes >= 5 && memcmp(d->head, "%PDF-", 5) == 0;
}

int64_t sg_b64_pdf_pages(const struct sg_b64 *d)
{
    if (d->pdf_pages > 0)
        return d->pdf_pages;
    /* Page objects packed in compressed object streams (PDF 1.5+) cannot be seen: by size. */
    return 1 + d->bytes / SG_PDF_BYTES_PER_PAGE;
}

int sg_base64_decode(const char *in, size_t n, struct sg_buf *out)
{
    uint32_t acc = 0;
    int bits = 0;
    bool padded = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '=') {
            padded = true;
            continue;
        }
        if (c == '\n' || c == '\r' || c == ' ' || c == '\t')
            continue;
        int v = b64_value(c);
        if (v < 0 || padded)
            return SG_EINVAL;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            char b = (char)(acc >> bits);
            if (sg_buf_append(out, &b, 1) != SG_OK)
                return SG_ETOOBIG;
            acc &= (1u << bits) - 1;
        }
    }
    return SG_OK;
}
