/*
 * The HTTP/1.1 request parser's side of a connection: llhttp's callbacks record the request as
 * offsets into conn->in, and refuse what RFC 9112 (and nginx) refuse but non-strict llhttp takes:
 * a target in a form other than origin or absolute, a version other than 1.0/1.1, Host missing
 * or twice, transfer codings other than chunked alone, bare LF line ends, folded header lines,
 * chunk data not followed by CRLF. An error found here is left in conn->error_status and
 * error_msg (parse_fail) for server.c to answer.
 */
#include "http_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Answers to requests framed in a way that could be read two ways: each closes the connection. */
#define MSG_BARE_LF                                                                                \
    "malformed HTTP request: a line ends with a bare LF (\\n); the request line, every header "    \
    "line and every chunk line must end with CRLF (\\r\\n)"
#define MSG_TE_NOT_LAST                                                                            \
    "malformed HTTP request: Transfer-Encoding does not end with chunked (once), so the body's "   \
    "length cannot be known (RFC 9112 §6.3); send Transfer-Encoding: chunked, or Content-Length"
#define MSG_TE_AND_CL                                                                              \
    "malformed HTTP request: Content-Length and Transfer-Encoding together (the body could be "    \
    "read two ways); send only one of them"
#define MSG_CL_TWICE                                                                               \
    "malformed HTTP request: more than one Content-Length header (the body could be read two "     \
    "ways); send exactly one"
#define MSG_BAD_TARGET                                                                             \
    "send a path such as /v1/chat/completions, or an absolute URI such as "                        \
    "http://host:port/v1/chat/completions"

static struct sg_http_conn *conn_of(llhttp_t *p)
{
    return p->data;
}

static size_t off_of(struct sg_http_conn *c, const char *at)
{
    return (size_t)(at - c->in.data);
}

/* Remember an error found in a parser callback, for conn_process to answer; returns HPE_USER,
 * which stops the parser. */
static int parse_fail(struct sg_http_conn *c, int status, const char *fmt, ...) SG_PRINTF(3, 4);
static int parse_fail(struct sg_http_conn *c, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->error_buf, sizeof c->error_buf, fmt, ap);
    va_end(ap);
    c->error_status = status;
    c->error_msg = c->error_buf;
    return HPE_USER;
}

static int on_message_begin(llhttp_t *p)
{
    struct sg_http_conn *c = conn_of(p);
    c->url_len = 0;
    c->method_done = c->url_done = c->version_done = false;
    c->chunked = false;
    c->n_spans = 0;
    c->in_value = false;
    c->message_done = false;
    c->headers_done = false;
    c->body_off = 0;
    c->trailer_bytes = 0;
    if (c->state == CONN_IDLE)
        sg_http_conn_set_state(c, CONN_HEAD);
    if (!c->req.t_start_us)
        c->req.t_start_us = sg_now_us();
    return 0;
}

static int on_method_complete(llhttp_t *p)
{
    conn_of(p)->method_done = true;
    return 0;
}

static int on_url(llhttp_t *p, const char *at, size_t n)
{
    struct sg_http_conn *c = conn_of(p);
    if (c->url_len == 0)
        c->url_off = off_of(c, at);
    c->url_len += n;
    return 0;
}

/* The length of the scheme of an absolute-form target ("http" of "http://..."), or 0. */
static size_t scheme_len(struct sg_slice t)
{
    size_t i = 0;
    while (i < t.n &&
           (isalnum((unsigned char)t.p[i]) || t.p[i] == '+' || t.p[i] == '-' || t.p[i] == '.'))
        i++;
    if (i == 0 || !isalpha((unsigned char)t.p[0]) || t.n - i < 3 || memcmp(t.p + i, "://", 3) != 0)
        return 0;
    return i;
}

/* Host = uri-host [":" port] (RFC 9110 §7.2, RFC 3986 §3.2): a name of unreserved, sub-delims
 * and %-escapes, or an [IP-literal], then digits after a ':'. An empty value is allowed (§7.2
 * lets a client send one). nginx likewise refuses a Host with '/', a space or other bytes no
 * name can hold: a proxy or a log in front may read such a value differently than we do. */
static bool host_char(char ch, bool literal)
{
    return ch &&
           (isalnum((unsigned char)ch) || strchr("-._~%!$&'()*+,;=", ch) || (literal && ch == ':'));
}

static bool host_valid(struct sg_slice h)
{
    size_t i = 0;
    if (h.n && h.p[0] == '[') { /* IP-literal: [v6] or [vFuture] */
        for (i = 1; i < h.n && h.p[i] != ']'; i++)
            if (!host_char(h.p[i], true))
                return false;
        if (i++ == h.n)
            return false; /* no ']' */
    } else {
        while (i < h.n && host_char(h.p[i], false))
            i++;
    }
    if (i < h.n && h.p[i] == ':')
        for (i++; i < h.n && isdigit((unsigned char)h.p[i]);)
            i++;
    return i == h.n;
}

/* The request target split into the path it is routed by and the query (RFC 9112 §3.2).
 * Origin-form "/p?q" is taken as it is; absolute-form "http://host:port/p?q", which a server MUST
 * accept (§3.2.2) and which a forward proxy sends, by its path ("/" when it has none) and query,
 * its authority unused (the gateway has no virtual hosts). Anything else (OPTIONS's "*",
 * CONNECT's host:port) is the path as it is. A "#fragment", which a client never sends but a
 * careless one might, is dropped, as nginx does (RFC 3986 §3.5: it is not part of what is
 * asked for). Works on a target still being read: its path is whole once a '?' was seen.
 * `query` may be NULL. */
struct sg_slice sg_http_target_split(struct sg_slice t, struct sg_slice *query)
{
    const char *hash = memchr(t.p, '#', t.n);
    if (hash)
        t.n = (size_t)(hash - t.p);
    bool root = false;
    size_t sl = scheme_len(t);
    if (sl) {
        size_t at = sl + 3;
        while (at < t.n && t.p[at] != '/' && t.p[at] != '?')
            at++;
        t = (struct sg_slice){t.p + at, t.n - at};
        root = t.n == 0 || t.p[0] == '?';
    }
    const char *q = memchr(t.p, '?', t.n);
    size_t n = q ? (size_t)(q - t.p) : t.n;
    if (query)
        *query = q ? (struct sg_slice){q + 1, t.n - n - 1} : (struct sg_slice){"", 0};
    return root ? SG_SLICE_LIT("/") : (struct sg_slice){t.p, n};
}

/* What is wrong with a request target llhttp let through, or NULL. llhttp itself refuses a
 * target that is none of the four forms (a bare host:port outside CONNECT among them). */
static const char *target_problem(struct sg_slice t, llhttp_method_t method)
{
    if (method == HTTP_CONNECT || (t.n && t.p[0] == '/'))
        return NULL; /* CONNECT's authority-form is the handler's to refuse (never tunnelled) */
    if (t.n == 1 && t.p[0] == '*') /* PRI *: HTTP/2's preface, answered by its version (505) */
        return method == HTTP_OPTIONS || method == HTTP_PRI
                   ? NULL
                   : "the request target * (asterisk-form) is only for OPTIONS";
    size_t sl = scheme_len(t);
    if (!(sl == 4 && strncasecmp(t.p, "http", 4) == 0) &&
        !(sl == 5 && strncasecmp(t.p, "https", 5) == 0))
        return "the request target is an absolute URI whose scheme is not http or https";
    size_t a = sl + 3, e = a;
    while (e < t.n && t.p[e] != '/' && t.p[e] != '?')
        e++;
    if (e == a) /* RFC 9110 §4.2.1: MUST reject an http URI with an empty host */
        return "the request target is an http URI without a host";
    if (memchr(t.p + a, '@', e - a)) /* RFC 9110 §4.2.4: treat userinfo as an error */
        return "the request target carries user information (user@host), which HTTP forbids";
    return NULL;
}

static int on_url_complete(llhttp_t *p)
{
    struct sg_http_conn *c = conn_of(p);
    c->url_done = true;
    const char *why = target_problem((struct sg_slice){c->in.data + c->url_off, c->url_len},
                                     (llhttp_method_t)p->method);
    if (why)
        return parse_fail(c, 400, "malformed HTTP request: %s; %s", why, MSG_BAD_TARGET);
    return 0;
}

/* The 505's message, in c->error_buf. */
static const char *msg_version(struct sg_http_conn *c, int major, int minor)
{
    snprintf(c->error_buf, sizeof c->error_buf,
             "HTTP/%d.%d is not supported: the gateway speaks HTTP/1.1 (and 1.0) on this port; "
             "send the request as HTTP/1.1",
             major, minor);
    return c->error_buf;
}

/* Only HTTP/1.1 and 1.0 are spoken: any other well-formed HTTP/x.y is a 505 that says which to
 * use. llhttp calls this for the versions it knows (0.9, 2.0 too) and refuses the others itself
 * first (see parse_error); a malformed version stays its 400. */
static int on_version_complete(llhttp_t *p)
{
    struct sg_http_conn *c = conn_of(p);
    c->version_done = true;
    if (p->http_major == 1 && p->http_minor <= 1)
        return 0;
    c->error_status = 505;
    c->error_msg = msg_version(c, p->http_major, p->http_minor);
    return HPE_USER;
}

/* The body's bytes are dropped from conn->in as they are read (sg_http_parse), so a trailer
 * section has no other bound than this: the limit of a header section. */
static int trailer_count(struct sg_http_conn *c, size_t n)
{
    c->trailer_bytes += n;
    if (c->trailer_bytes <= c->srv->lim.max_header_bytes)
        return 0;
    return parse_fail(c, 431,
                      "the trailer fields after the chunked body are larger than the limit of %zu "
                      "bytes; send fewer or shorter trailer fields (the gateway drops them)",
                      c->srv->lim.max_header_bytes);
}

static int on_header_field(llhttp_t *p, const char *at, size_t n)
{
    struct sg_http_conn *c = conn_of(p);
    /* Trailer fields are dropped, not merged into the header section (RFC 9110 §6.5.1): a key
     * or a routing header there would reach the handler unseen by anything in front of it. */
    if (c->headers_done)
        return trailer_count(c, n);
    /* llhttp 8 lets "Name : value" through, and ": value" with an empty name (it calls this
     * with n == 0); a proxy in front may read either another way (request smuggling). */
    if ((n == 0 && (c->n_spans == 0 || c->in_value)) || memchr(at, ' ', n) || memchr(at, '\t', n)) {
        return parse_fail(c, 400, "malformed HTTP request: %s; send each header as Name: value",
                          n ? "whitespace in a header name" : "a header line without a name");
    }
    if (c->n_spans == 0 || c->in_value) {
        if (c->n_spans == MAX_HEADERS) {
            c->error_status = 431;
            c->error_msg = "too many request headers (at most 128); send fewer headers";
            return HPE_USER;
        }
        if (c->n_spans == c->cap_spans) {
            c->cap_spans = c->cap_spans ? c->cap_spans * 2 : 16;
            c->spans = sg_xrealloc(c->spans, c->cap_spans * sizeof *c->spans);
        }
        c->spans[c->n_spans++] = (struct hdr_span){off_of(c, at), n, 0, 0};
        c->in_value = false;
    } else {
        c->spans[c->n_spans - 1].name_len += n;
    }
    return 0;
}

static int on_header_value(llhttp_t *p, const char *at, size_t n)
{
    struct sg_http_conn *c = conn_of(p);
    if (c->headers_done)
        return trailer_count(c, n);
    struct hdr_span *h = &c->spans[c->n_spans - 1];
    size_t off = off_of(c, at), name_end = h->name_off + h->name_len;
    /* A folded line (obs-fold): llhttp hands its continuation over as more of the value, across
     * the CRLF between them (the value would carry that CRLF), or, after an empty first line, as
     * the value. RFC 9112 §5.2 lets a server refuse it, and nginx does. (An empty value's span
     * lies after its line's end, hence `n`.) */
    if (c->in_value ? off != h->value_off + h->value_len
                    : n && memchr(c->in.data + name_end, '\n', off - name_end))
        return parse_fail(c, 400,
                          "malformed HTTP request: a header value continues on the next line "
                          "(obsolete line folding, RFC 9112 §5.2); send each header on one line");
    if (!c->in_value) {
        h->value_off = off;
        h->value_len = n;
        c->in_value = true;
    } else {
        h->value_len += n; /* the same value, split across reads */
    }
    return 0;
}

/* The 414's (`target`: the URL) or the 431's message, in c->error_buf. */
static const char *msg_over_head_limit(struct sg_http_conn *c, bool target)
{
    snprintf(c->error_buf, sizeof c->error_buf,
             "%s than the limit of %zu bytes for the request line%s; %s",
             target ? "the request target (URL) is longer" : "request headers are larger",
             c->srv->lim.max_header_bytes, target ? "" : " and headers",
             target ? "send a shorter URL (large data belongs in the request body)"
                    : "send fewer or shorter headers");
    return c->error_buf;
}

/* Whether a line of the request head ends with a bare LF. llhttp (not built strict) refuses one
 * inside the header section but takes one after the request line and as the blank line that
 * ends the head; a proxy in front that reads those heads another way could smuggle a request
 * past it, so they are refused too. Called once the whole head is in conn->in. */
static bool head_has_bare_lf(const struct sg_http_conn *c)
{
    const char *s = c->in.data, *end = s + c->in.len;
    size_t last = c->url_off + c->url_len; /* where the head's last line has its last byte */
    for (size_t i = 0; i < c->n_spans; i++) {
        last = SG_MAX(last, c->spans[i].name_off + c->spans[i].name_len);
        if (c->spans[i].value_len) /* llhttp puts an empty value after its line's end */
            last = SG_MAX(last, c->spans[i].value_off + c->spans[i].value_len);
    }
    const char *lf = memchr(s + last, '\n', (size_t)(end - (s + last)));
    if (!lf || lf + 1 >= end)
        return false;  /* cannot be: the head is whole */
    if (lf[1] == '\n') /* the blank line that ends the head */
        return true;
    for (const char *p = s + c->url_off; (p = memchr(p, '\n', (size_t)(lf + 1 - p))); p++)
        if (p[-1] != '\r')
            return true;
    return false;
}

/* The Transfer-Encoding values as sent, joined (for the message that names them). */
static void te_values(const struct sg_http_conn *c, char *out, size_t cap, size_t *n_lines)
{
    size_t n = 0;
    *n_lines = 0;
    out[0] = '\0';
    for (size_t i = 0; i < c->n_spans; i++) {
        if (!sg_slice_ieq(span_name(c, i), "transfer-encoding"))
            continue;
        struct sg_slice v = span_value(c, i);
        if (n < cap)
            n += (size_t)snprintf(out + n, cap - n, "%s%.*s", *n_lines ? ", " : "", (int)v.n, v.p);
        ++*n_lines;
    }
}

/* The head is whole: refuse what is framed wrongly or too large, before any body is read. */
static int on_headers_complete(llhttp_t *p)
{
    struct sg_http_conn *c = conn_of(p);
    const struct sg_http_limits *l = &c->srv->lim;
    c->headers_done = true;
    /* The read path catches a header block that never ends; this catches one that arrived
     * whole in a single read. `in` starts at this request, so offsets are sizes. */
    size_t end = c->n_spans
                     ? c->spans[c->n_spans - 1].value_off + c->spans[c->n_spans - 1].value_len
                     : c->url_off + c->url_len;
    const char *nl = memchr(c->in.data + c->url_off, '\n', c->in.len - c->url_off);
    size_t line_end = nl ? (size_t)(nl + 1 - c->in.data) : c->in.len;
    if (line_end > l->max_header_bytes) {
        c->error_status = 414;
        c->error_msg = msg_over_head_limit(c, true);
        return HPE_USER;
    }
    if (end > l->max_header_bytes) {
        c->error_status = 431;
        c->error_msg = msg_over_head_limit(c, false);
        return HPE_USER;
    }
    if (!c->version_done) /* llhttp reads "GET /path" alone as HTTP/0.9 */
        return parse_fail(c, 400,
                          "malformed HTTP request: the request line has no HTTP version (HTTP/0.9 "
                          "is not served); send METHOD TARGET HTTP/1.1");
    if (head_has_bare_lf(c))
        return parse_fail(c, 400, "%s", MSG_BARE_LF);
    /* Every line ends with CRLF: the first blank line after the request line ends the head. */
    const char *blank = memmem(c->in.data + c->url_off, c->in.len - c->url_off, "\r\n\r\n", 4);
    c->body_off = blank ? (size_t)(blank + 4 - c->in.data) : 0;
    bool http10 = p->http_major == 1 && p->http_minor == 0;
    /* RFC 9112 §3.2: Host is required in HTTP/1.1, and a request with two is a 400 in any
     * version (which one would the gateway, and a proxy in front of it, have used?). */
    size_t n_host = 0;
    struct sg_slice host = {0};
    for (size_t i = 0; i < c->n_spans; i++)
        if (sg_slice_ieq(span_name(c, i), "host")) {
            n_host++;
            host = span_value(c, i);
        }
    if (n_host == 0 && !http10)
        return parse_fail(c, 400,
                          "HTTP/1.1 request without Host header (RFC 9112 §3.2); send Host: with "
                          "the gateway's host and port");
    if (n_host > 1)
        return parse_fail(c, 400,
                          "malformed HTTP request: more than one Host header (RFC 9112 §3.2); "
                          "send exactly one");
    if (n_host && !host_valid(host))
        return parse_fail(c, 400,
                          "malformed HTTP request: the Host header \"%.*s\" is not a host with an "
                          "optional :port (RFC 9110 §7.2); send the gateway's name or address, as "
                          "in Host: 127.0.0.1:4000",
                          (int)SG_MIN(host.n, 100), host.p);
    char te[96];
    size_t n_te;
    te_values(c, te, sizeof te, &n_te);
    /* An empty Transfer-Encoding sets no flag in llhttp, and the body would be read by its
     * Content-Length; a proxy in front may see a Transfer-Encoding there and read it otherwise. */
    if (n_te && !(p->flags & F_TRANSFER_ENCODING))
        return parse_fail(c, 400,
                          "malformed HTTP request: an empty Transfer-Encoding header (the body "
                          "could be read two ways); send Transfer-Encoding: chunked, or only "
                          "Content-Length");
    if (p->flags & F_TRANSFER_ENCODING) {
        /* Framing that could be read two ways is refused, and the connection closed (§6.1). */
        if (http10)
            return parse_fail(c, 400,
                              "malformed HTTP request: Transfer-Encoding in an HTTP/1.0 request, "
                              "which has no transfer codings (RFC 9112 §6.1); send Content-Length, "
                              "or the request as HTTP/1.1");
        if (p->flags & F_CONTENT_LENGTH)
            return parse_fail(c, 400, "%s", MSG_TE_AND_CL);
        if (!(p->flags & F_CHUNKED))
            return parse_fail(c, 400, "%s", MSG_TE_NOT_LAST);
        /* chunked last, but after another coding, which would still have to be undone: nginx's
         * 501, as RFC 9112 §6.1 has it for a coding the server does not implement. */
        if (n_te != 1 || !sg_slice_ieq(sg_slice_of(te), "chunked"))
            return parse_fail(c, 501,
                              "Transfer-Encoding \"%s\" is not implemented: the only transfer "
                              "coding the gateway reads is chunked; send the body with "
                              "Transfer-Encoding: chunked alone, or with Content-Length",
                              te);
    }
    /* The server never switches protocols, so a request with Upgrade (or a CONNECT) is an
     * ordinary one and the next request follows it; left set, llhttp would take every later
     * byte for another protocol's and the connection would end in a 400. */
    p->upgrade = 0;
    c->chunked = (p->flags & F_CHUNKED) != 0;
    bool has_len = (p->flags & F_CONTENT_LENGTH) != 0;
    if (has_len && p->content_length > l->max_body_bytes) {
        c->error_status = 413;
        c->error_msg = NULL; /* filled with the limit in conn_send_error */
        return HPE_USER;
    }
    bool has_body = has_len ? p->content_length > 0 : (p->flags & F_CHUNKED) != 0;
    if (has_body) {
        sg_http_conn_set_state(c, CONN_BODY);
        /* Clients such as curl wait for 100 Continue before sending a large body. */
        for (size_t i = 0; i < c->n_spans; i++) {
            if (sg_slice_ieq(span_name(c, i), "expect") &&
                sg_slice_ieq(span_value(c, i), "100-continue") && !http10) { /* 1.0 knows no 1xx */
                static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
                sg_http_conn_write(c, cont, sizeof cont - 1);
            }
        }
    }
    if (has_len)
        sg_buf_reserve(&c->req.body, (size_t)p->content_length);
    return 0;
}

static int on_body(llhttp_t *p, const char *at, size_t n)
{
    struct sg_http_conn *c = conn_of(p);
    if (sg_buf_append(&c->req.body, at, n) != SG_OK) {
        c->error_status = 413;
        return HPE_USER;
    }
    c->chunk_end = off_of(c, at) + n;
    return 0;
}

/* A chunk that would take the body past the limit is a 413 as soon as its size is read (as
 * nginx does), not once its bytes have come: the client may wait for an answer before sending
 * them. */
static int on_chunk_header(llhttp_t *p)
{
    struct sg_http_conn *c = conn_of(p);
    c->chunk_end = 0;
    if (p->content_length > c->srv->lim.max_body_bytes - c->req.body.len) {
        c->error_status = 413;
        c->error_msg = NULL; /* filled with the limit in conn_send_error */
        return HPE_USER;
    }
    return 0;
}

/* llhttp (not built strict) skips the two bytes after a chunk's data without looking at them:
 * "5\r\nhelloXY0\r\n\r\n" would pass, and a proxy in front that reads the chunks otherwise
 * could hide a request in them. They must be CRLF (RFC 9112 §7.1). */
static int on_chunk_complete(llhttp_t *p)
{
    struct sg_http_conn *c = conn_of(p);
    if (c->chunk_end == 0 || memcmp(c->in.data + c->chunk_end, "\r\n", 2) == 0)
        return 0;
    return parse_fail(c, 400, "%s",
                      c->in.data[c->chunk_end] == '\n'
                          ? MSG_BARE_LF
                          : "malformed HTTP request: a chunk's data is not followed by CRLF; "
                            "check that each chunk size is the length of its data, in hex");
}

static int on_message_complete(llhttp_t *p)
{
    struct sg_http_conn *c = conn_of(p);
    c->message_done = true;
    c->keep_alive = llhttp_should_keep_alive(p) != 0;
    return HPE_PAUSED; /* one request at a time: resume when it is finished */
}

const llhttp_settings_t sg_http_parser_settings = {
    .on_message_begin = on_message_begin,
    .on_method_complete = on_method_complete,
    .on_url = on_url,
    .on_url_complete = on_url_complete,
    .on_version_complete = on_version_complete,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
    .on_body = on_body,
    .on_message_complete = on_message_complete,
    .on_chunk_header = on_chunk_header,
    .on_chunk_complete = on_chunk_complete,
};

/* Whether the LF at `p` (inside conn->in) ends a line without a CR before it. */
static bool bare_lf_at(const struct sg_http_conn *c, const char *p)
{
    return p >= c->in.data && p < c->in.data + c->in.len && *p == '\n' &&
           (p == c->in.data || p[-1] != '\r');
}

/* The status and message for an error llhttp found itself (the message in c->error_buf when it
 * is not a constant). */
static const char *parse_error(struct sg_http_conn *c, int *status)
{
    const char *pos = llhttp_get_error_pos(&c->parser);
    *status = 400;
    /* Where llhttp stops on a bare LF: at it, or one byte on (an empty header value's). */
    if (pos && (bare_lf_at(c, pos) || bare_lf_at(c, pos - 1)))
        return MSG_BARE_LF;
    switch (llhttp_get_errno(&c->parser)) {
    case HPE_INVALID_URL:
        snprintf(c->error_buf, sizeof c->error_buf,
                 "malformed HTTP request: the request target is neither a path nor an absolute "
                 "URI (%s), and host:port alone is only for CONNECT; %s",
                 llhttp_get_error_reason(&c->parser), MSG_BAD_TARGET);
        return c->error_buf;
    case HPE_INVALID_TRANSFER_ENCODING: return MSG_TE_NOT_LAST;
    case HPE_UNEXPECTED_CONTENT_LENGTH: /* with Transfer-Encoding, or a second Content-Length */
        return c->parser.flags & F_TRANSFER_ENCODING ? MSG_TE_AND_CL : MSG_CL_TWICE;
    case HPE_INVALID_VERSION: {
        /* llhttp refuses a version it does not know (1.2, 3.0) before on_version_complete, as
         * soon as it has read its minor digit; a well-formed one (" HTTP/" DIGIT "." DIGIT after
         * the target) is still a 505. 1.0 and 1.1 are here for what follows them (a bare CR). */
        const char *v = c->in.data + c->url_off + c->url_len, *end = c->in.data + c->in.len;
        if (c->url_done && end - v >= 9 && memcmp(v, " HTTP/", 6) == 0 &&
            isdigit((unsigned char)v[6]) && v[7] == '.' && isdigit((unsigned char)v[8]) &&
            !(v[6] == '1' && (v[8] == '0' || v[8] == '1'))) {
            *status = 505;
            return msg_version(c, v[6] - '0', v[8] - '0');
        }
    } /* fall through */
    default:
        snprintf(c->error_buf, sizeof c->error_buf, "malformed HTTP request: %s",
                 llhttp_get_error_reason(&c->parser));
        return c->error_buf;
    }
}

/* Drop the body bytes the parser has consumed from conn->in (on_body copied the data out), so a
 * connection holds one copy of the body, and a chunked body's framing (sizes, extensions, line
 * ends) counts against no limit meant for the body: a body of 1-byte chunks is 6 times its size.
 * The head stays (the header slices point into it), and so do the last 4 bytes read, which the
 * checks of a chunk's CRLF and of the body's end look back at. llhttp keeps no pointer into the
 * buffer between calls. */
static void body_drop_parsed(struct sg_http_conn *c)
{
    if (!c->body_off || c->message_done || c->parsed < c->body_off + 4 + 4096)
        return; /* not in a body, or too little to be worth a move */
    size_t from = c->body_off, to = c->parsed - 4, n = to - from;
    memmove(c->in.data + from, c->in.data + to, c->in.len - to + 1); /* with the NUL */
    c->in.len -= n;
    c->parsed -= n;
    c->chunk_end = c->chunk_end >= to ? c->chunk_end - n : 0; /* 0: that chunk was checked */
}

int sg_http_parse(struct sg_http_conn *c, const char **msg)
{
    const char *start = c->in.data + c->parsed;
    llhttp_errno_t err = llhttp_execute(&c->parser, start, c->in.len - c->parsed);
    int status = 0;
    *msg = NULL;
    if (err == HPE_PAUSED) {
        c->parsed = (size_t)(llhttp_get_error_pos(&c->parser) - c->in.data);
        llhttp_resume(&c->parser);
        /* A chunked body ends with a blank line after the last chunk (or its trailer), which
         * llhttp also takes as a bare LF. */
        if (c->message_done && c->chunked &&
            (c->parsed < 4 || memcmp(c->in.data + c->parsed - 4, "\r\n\r\n", 4) != 0)) {
            *msg = MSG_BARE_LF;
            return 400;
        }
    } else if (err != HPE_OK) {
        if (c->error_status) { /* found by a callback */
            *msg = c->error_msg;
            return c->error_status;
        }
        *msg = parse_error(c, &status);
        return status;
    } else {
        c->parsed = c->in.len;
        body_drop_parsed(c);
    }
    /* Past the limit: still in the request line, it is the target that is too long. */
    if (!c->message_done && c->state == CONN_HEAD && c->parsed > c->srv->lim.max_header_bytes) {
        *msg = msg_over_head_limit(c, !c->version_done);
        return c->version_done ? 431 : 414;
    }
    return 0;
}
