/* Server-sent events: split a byte stream into whole events (WHATWG "event stream" framing). */
#include "http.h"

void sg_sse_parser_init(struct sg_sse_parser *p, size_t max_event_bytes,
                        void (*on_event)(void *ud, struct sg_slice raw, struct sg_slice event,
                                         struct sg_slice data),
                        void *ud)
{
    sg_buf_init(&p->pending, max_event_bytes);
    sg_buf_init(&p->data, max_event_bytes);
    p->scanned = 0;
    p->on_event = on_event;
    p->ud = ud;
}

void sg_sse_parser_dispose(struct sg_sse_parser *p)
{
    sg_buf_dispose(&p->pending);
    sg_buf_dispose(&p->data);
}

/* Interpret the lines of one complete event and hand it over. */
static void emit(struct sg_sse_parser *p, size_t raw_len)
{
    const char *s = p->pending.data, *end = s + raw_len;
    struct sg_slice event = {"", 0};
    bool any = false, have_data = false;
    sg_buf_reset(&p->data);
    while (s < end) {
        const char *e = s;
        while (e < end && *e != '\r' && *e != '\n')
            e++;
        size_t n = (size_t)(e - s);
        if (n) {
            any = true;
            const char *colon = memchr(s, ':', n);
            size_t fn = colon ? (size_t)(colon - s) : n;
            const char *v = colon ? colon + 1 : e;
            if (v < e && *v == ' ')
                v++;
            size_t vn = (size_t)(e - v);
            if (fn == 4 && memcmp(s, "data", 4) == 0) {
                if (have_data)
                    sg_buf_append(&p->data, "\n", 1);
                sg_buf_append(&p->data, v, vn);
                have_data = true;
            } else if (fn == 5 && memcmp(s, "event", 5) == 0) {
                event = (struct sg_slice){v, vn};
            }
        }
        s = e;
        if (s < end && *s == '\r')
            s++;
        if (s < end && *s == '\n')
            s++;
    }
    if (any)
        p->on_event(p->ud, (struct sg_slice){p->pending.data, raw_len}, event,
                    (struct sg_slice){p->data.data ? p->data.data : "", p->data.len});
}

int sg_sse_parser_feed(struct sg_sse_parser *p, const char *bytes, size_t n)
{
    if (sg_buf_append(&p->pending, bytes, n) != SG_OK)
        return SG_ETOOBIG;
    for (;;) {
        const char *buf = p->pending.data;
        size_t len = p->pending.len, i = p->scanned;
        while (i < len && buf[i] != '\r' && buf[i] != '\n')
            i++;
        if (i == len)
            return SG_OK;
        size_t eol = 1;
        if (buf[i] == '\r') {
            if (i + 1 == len)
                return SG_OK; /* a '\r' may be the first half of "\r\n": wait */
            if (buf[i + 1] == '\n')
                eol = 2;
        }
        bool blank = i == p->scanned; /* an empty line ends the event */
        if (!blank) {
            p->scanned = i + eol;
            continue;
        }
        size_t raw_len = i + eol;
        emit(p, raw_len);
        sg_buf_consume(&p->pending, raw_len);
        p->scanned = 0;
    }
}

int sg_sse_format_data(struct sg_buf *out, const char *data, size_t len)
{
    int rc = sg_buf_reserve(out, len + 8);
    if (rc)
        return rc;
    sg_buf_append(out, "data: ", 6);
    sg_buf_append(out, data, len);
    return sg_buf_append(out, "\n\n", 2);
}
