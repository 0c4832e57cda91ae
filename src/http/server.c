/*
 * The HTTP/1.1 server: listeners, connections and the connection state machine.
 *
 *   IDLE --byte--> HEAD --headers--> BODY --message--> HANDLING --finish--> IDLE (keep-alive)
 *                                                               \--------> CLOSING
 * Any state can go to CLOSING (error answer, timeout, peer gone, drain).
 *
 * Memory: one 64 KiB read buffer per server (libuv calls alloc+read synchronously), and per
 * connection only what the current request needs. While a request is handled, its header
 * slices point into conn->in, so nothing is appended there: pipelined bytes go to conn->ahead.
 */
#include "http_int.h"

#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static const char *state_names[] = {"IDLE", "HEAD", "BODY", "HANDLING", "LINGER", "CLOSING"};

/* Lingering close (nginx's lingering_timeout and lingering_time): how long a connection that got
 * an error answer keeps reading and dropping what the client still sends. */
enum { LINGER_IDLE_MS = 5000, LINGER_MAX_MS = 30000 };
/* After the drain deadline: how long the answers of the requests it cut get to leave. */
enum { DRAIN_FLUSH_MS = 1000 };

static void conn_close(struct sg_http_conn *c);
static void conn_close_or_linger(struct sg_http_conn *c);
static void conn_process(struct sg_http_conn *c);
static void conn_send_error(struct sg_http_conn *c, int status, const char *msg);
static void conn_start_reading(struct sg_http_conn *c);
static void conn_peer_gone(struct sg_http_conn *c);
static void server_maybe_drained(struct sg_http_server *s);

/* ---- limits ---- */

static void limits_fill(struct sg_http_limits *l)
{
    if (!l->max_header_bytes)
        l->max_header_bytes = 16 * 1024;
    if (!l->max_body_bytes)
        l->max_body_bytes = 8 * 1024 * 1024;
    if (!l->header_timeout_ms)
        l->header_timeout_ms = 10000;
    if (!l->body_timeout_ms)
        l->body_timeout_ms = 60000;
    if (!l->idle_timeout_ms)
        l->idle_timeout_ms = 60000;
    if (!l->max_connections)
        l->max_connections = 10000;
    if (!l->max_pipelined_bytes)
        l->max_pipelined_bytes = 64 * 1024;
}

/* ---- timers: one per connection, re-armed on each state change ---- */

static void on_conn_timer(uv_timer_t *t)
{
    struct sg_http_conn *c = t->data;
    switch (c->state) {
    case CONN_IDLE: conn_close(c); break;
    case CONN_HEAD:
        /* A connection that never sent a byte asked nothing: it is closed as an idle one is, as
         * nginx does. A 408 there is an answer to no request, which a client that opened the
         * connection ahead of need (a pool, a preconnect) would read as the answer to the request
         * it sends next. */
        if (c->in.len == 0) {
            conn_close(c);
            break;
        }
        conn_send_error(c, 408,
                        "the request headers did not arrive in time; send the whole "
                        "request promptly");
        break;
    case CONN_BODY:
        conn_send_error(c, 408,
                        "the request body did not arrive in time; send the whole "
                        "request promptly");
        break;
    case CONN_LINGER: conn_close(c); break;
    default: break;
    }
}

/* The single place a connection changes state (curl's rule: one transition function). */
void sg_http_conn_set_state(struct sg_http_conn *c, enum conn_state st)
{
    if (c->state == st)
        return;
    SG_DEBUG("http", "conn %p -> %s", (void *)c, state_names[st]);
    c->state = st;
    const struct sg_http_limits *l = &c->srv->lim;
    switch (st) {
    case CONN_IDLE: uv_timer_start(&c->timer, on_conn_timer, l->idle_timeout_ms, 0); break;
    case CONN_HEAD: uv_timer_start(&c->timer, on_conn_timer, l->header_timeout_ms, 0); break;
    case CONN_BODY: uv_timer_start(&c->timer, on_conn_timer, l->body_timeout_ms, 0); break;
    case CONN_LINGER: uv_timer_start(&c->timer, on_conn_timer, LINGER_IDLE_MS, 0); break;
    case CONN_HANDLING:
    case CONN_CLOSING: uv_timer_stop(&c->timer); break;
    }
}

/* ---- writing ---- */

struct write_req {
    uv_write_t w;
    struct sg_http_conn *c;
    size_t len;
    char data[];
};

static void on_write_done(uv_write_t *w, int status)
{
    struct write_req *wr = SG_CONTAINER_OF(w, struct write_req, w);
    struct sg_http_conn *c = wr->c;
    c->write_queued -= wr->len;
    free(wr);
    if (status < 0 && !c->peer_gone && c->state != CONN_CLOSING)
        conn_peer_gone(c); /* the handle stays valid until its close callback */
    if (c->write_queued == 0) {
        if (c->on_drain && c->req_active && !c->peer_gone)
            c->on_drain(&c->req, c->drain_ud);
        if (!c->req_active && (c->close_after || c->peer_gone) && c->state != CONN_CLOSING)
            conn_close_or_linger(c);
    }
}

bool sg_http_conn_write(struct sg_http_conn *c, const char *data, size_t len)
{
    if (c->peer_gone || c->state == CONN_CLOSING)
        return false;
    size_t done = 0;
    if (c->write_queued == 0) {
        /* Fast path: most responses fit the socket buffer and need no copy. */
        uv_buf_t b = uv_buf_init((char *)data, (unsigned)len);
        int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
        if (n > 0)
            done = (size_t)n;
        else if (n != UV_EAGAIN && n != UV_ENOSYS) {
            c->peer_gone = true;
            return false;
        }
    }
    if (done == len)
        return true;
    struct write_req *wr = sg_xmalloc(sizeof *wr + (len - done));
    wr->c = c;
    wr->len = len - done;
    memcpy(wr->data, data + done, len - done);
    uv_buf_t b = uv_buf_init(wr->data, (unsigned)wr->len);
    if (uv_write(&wr->w, (uv_stream_t *)&c->tcp, &b, 1, on_write_done) != 0) {
        free(wr);
        c->peer_gone = true;
        return false;
    }
    c->write_queued += wr->len;
    return true;
}

const char *sg_http_server_date(struct sg_http_server *s)
{
    uint64_t now = (uint64_t)time(NULL);
    if (now != s->date_sec) {
        time_t t = (time_t)now;
        struct tm tm;
        gmtime_r(&t, &tm);
        strftime(s->date, sizeof s->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        s->date_sec = now;
    }
    return s->date;
}

/* Tell the owner's refusal hook, if any, of a request the server ends itself. */
static void conn_tell_refusal(struct sg_http_conn *c, int status, const char *code, const char *msg,
                              char request_id[33], bool *twice, struct sg_buf *body)
{
    if (!c->srv->on_refusal)
        return;
    struct sg_http_refusal r = {.status = status,
                                .code = code,
                                .message = msg,
                                .t_start_us = c->req.t_start_us,
                                .body = body,
                                .request_id_twice = twice};
    /* The path is known once the target was read whole, or up to its '?' (a 414). */
    struct sg_slice target = {c->in.data + c->url_off, c->url_len};
    if (c->method_done && c->url_len && (c->url_done || memchr(target.p, '?', target.n))) {
        r.method = sg_slice_of(llhttp_method_name((llhttp_method_t)c->parser.method));
        r.path = sg_http_target_split(target, NULL);
    }
    c->srv->on_refusal(&r, request_id, c->srv->ud);
}

/* An error found while reading a request: answer it and close (the stream is out of sync). */
static void conn_send_error(struct sg_http_conn *c, int status, const char *msg)
{
    char limit_msg[160];
    if (!msg && status == 413) {
        snprintf(limit_msg, sizeof limit_msg,
                 "request body is larger than the limit of %zu bytes; send a smaller request or "
                 "raise general_settings.max_request_size_mb",
                 c->srv->lim.max_body_bytes);
        msg = limit_msg;
    }
    if (!msg)
        msg = "malformed HTTP request";
    const char *type = status == 503 ? "service_unavailable" : "invalid_request_error";
    const char *code = status == 408   ? "request_timeout"
                       : status == 413 ? "request_too_large"
                       : status == 414 ? "uri_too_long"
                       : status == 431 ? "headers_too_large"
                       : status == 501 ? "not_implemented"
                       : status == 505 ? "http_version_not_supported"
                       : status == 503 ? "gateway_shutdown"
                                       : "bad_request";
    char request_id[33] = "";
    bool twice = false;
    struct sg_buf body;
    sg_buf_init(&body, 0);
    conn_tell_refusal(c, status, code, msg, request_id, &twice, &body);
    /* The answer to a HEAD has no body, not even an error's (RFC 9110 §9.3.2). */
    bool head = c->method_done && c->parser.method == HTTP_HEAD;
    if (body.len == 0) {
        sg_buf_appends(&body, "{\"error\":{\"message\":\"");
        sg_buf_append_json_str(&body, msg, strlen(msg));
        sg_buf_appendf(&body, "\",\"type\":\"%s\",\"param\":null,\"code\":\"%s\"}}", type, code);
    }
    struct sg_buf out;
    sg_buf_init(&out, 0);
    sg_buf_appendf(&out,
                   "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %zu\r\n",
                   status, sg_http_reason(status), body.len);
    if (request_id[0])
        sg_buf_appendf(&out,
                       twice ? "x-request-id: %s\r\nrequest-id: %s\r\n" : "x-request-id: %s\r\n",
                       request_id, request_id);
    sg_buf_appendf(&out, "Connection: close\r\nDate: %s\r\n\r\n%s", sg_http_server_date(c->srv),
                   head ? "" : body.data);
    c->close_after = true;
    c->linger = status != 408;                /* a client too slow to send gets no more time */
    sg_http_conn_set_state(c, CONN_HANDLING); /* stop reading and timers while the answer drains */
    uv_read_stop((uv_stream_t *)&c->tcp);
    c->reading = false;
    sg_http_conn_write(c, out.data, out.len);
    sg_buf_dispose(&body);
    sg_buf_dispose(&out);
    if (c->write_queued == 0)
        conn_close_or_linger(c);
}

/* ---- connection lifecycle ---- */

static void conn_free_if_done(struct sg_http_conn *c)
{
    if (c->handles_open > 0 || c->req_active)
        return;
    struct sg_http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    sg_buf_dispose(&c->in);
    sg_buf_dispose(&c->ahead);
    sg_buf_dispose(&c->req.body);
    free(c->spans);
    free(c->headers);
    free(c);
    server_maybe_drained(s);
}

static void on_conn_handle_closed(uv_handle_t *h)
{
    struct sg_http_conn *c = h->data;
    c->handles_open--;
    conn_free_if_done(c);
}

static void conn_close(struct sg_http_conn *c)
{
    if (c->state == CONN_CLOSING)
        return;
    sg_http_conn_set_state(c, CONN_CLOSING);
    c->peer_gone = true;
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
}

/* After an error answer the client may still be sending its request (a body over the limit,
 * say). Closing now would make the kernel answer those bytes with a reset, and the client would
 * see "connection reset" instead of the answer. So, as nginx does, the write side is shut (the
 * client reads the answer and the end of the stream) and what still arrives is read and dropped
 * until the client closes, LINGER_IDLE_MS pass without a byte or LINGER_MAX_MS in all. */
static void conn_close_or_linger(struct sg_http_conn *c)
{
    if (!c->linger || c->peer_gone || c->srv->draining ||
        uv_shutdown(&c->shutdown, (uv_stream_t *)&c->tcp, NULL) != 0) {
        conn_close(c);
        return;
    }
    c->linger_until = sg_now_ms() + LINGER_MAX_MS;
    sg_http_conn_set_state(c, CONN_LINGER);
    if (!c->reading)
        conn_start_reading(c);
}

/* The client went away while its request was being handled. */
static void conn_peer_gone(struct sg_http_conn *c)
{
    c->peer_gone = true;
    if (c->req_active) {
        c->req.aborted = true;
        if (c->on_abort) {
            sg_http_abort_fn fn = c->on_abort;
            c->on_abort = NULL;
            fn(&c->req, c->abort_ud);
        }
        /* The handler still finishes the request; the connection closes then. */
        if (c->reading) {
            uv_read_stop((uv_stream_t *)&c->tcp);
            c->reading = false;
        }
        return;
    }
    /* It left halfway through sending a request: the owner is told, as of a refusal, so the
     * request is not lost from its records (nginx logs such a request too). Nothing is sent. */
    if ((c->state == CONN_HEAD && c->in.len) || c->state == CONN_BODY) {
        char request_id[33] = "";
        bool twice = false;
        struct sg_buf body;
        sg_buf_init(&body, 0);
        conn_tell_refusal(c, 499, "client_disconnected",
                          "the client closed the connection before its request was whole",
                          request_id, &twice, &body);
        sg_buf_dispose(&body);
    }
    conn_close(c);
}

/* CONNECT's host:port and OPTIONS's "*" name no resource of ours: nothing is tunnelled and
 * there are no server-wide options. A 405 as nginx answers, whose empty Allow says the target
 * takes no method (RFC 9110 §10.2.1). */
static void refuse_no_resource(struct sg_http_request *r)
{
    char msg[300];
    if (sg_slice_eq(r->method, "CONNECT"))
        snprintf(msg, sizeof msg,
                 "CONNECT %.*s is not supported: this server is not a forward proxy and tunnels "
                 "nothing; send requests to its paths, as in POST /v1/chat/completions",
                 (int)SG_MIN(r->path.n, 200), r->path.p);
    else
        snprintf(msg, sizeof msg,
                 "%.*s * is not supported: ask about a path, as in OPTIONS /v1/chat/completions",
                 (int)SG_MIN(r->method.n, 20), r->method.p);
    sg_http_respond_405(r, "", msg);
}

/* CORS (server.cors_origins): what a browser's request from another origin is told it may read,
 * as Access-Control-Allow-Origin. A request without Origin is no browser's cross-origin one. */
static struct sg_slice cors_allow(const struct sg_http_server *s, const struct sg_http_request *r)
{
    struct sg_slice none = {NULL, 0};
    if (!s->cors[0])
        return none;
    struct sg_slice origin = sg_http_header_get(r, "origin");
    if (!origin.n)
        return none;
    if (strcmp(s->cors, "*") == 0)
        return SG_SLICE_LIT("*");
    for (const char *p = s->cors; *p;) {
        size_t n = strcspn(p, ",");
        if (n == origin.n && strncasecmp(p, origin.p, n) == 0)
            return origin;
        p += n + (p[n] == ',');
    }
    return none;
}

/* A browser's preflight (OPTIONS with Access-Control-Request-Method) from an allowed origin: the
 * request it asks about may be sent, with the headers it names (a key in Authorization). */
static void cors_preflight(struct sg_http_request *r, struct sg_slice asked_headers)
{
    struct sg_http_header h[] = {
        {SG_SLICE_LIT("Access-Control-Allow-Methods"),
         SG_SLICE_LIT("GET, POST, PUT, PATCH, DELETE")},
        {SG_SLICE_LIT("Access-Control-Max-Age"), SG_SLICE_LIT("600")},
        {SG_SLICE_LIT("Access-Control-Allow-Headers"), asked_headers},
    };
    sg_http_respond(r, 200, h, asked_headers.n ? 3 : 2, "", 0);
}

/* Hand a parsed request to the handler. */
static void conn_dispatch(struct sg_http_conn *c)
{
    struct sg_http_request *r = &c->req;
    if (c->n_spans > c->cap_headers) {
        c->cap_headers = c->n_spans;
        c->headers = sg_xrealloc(c->headers, c->cap_headers * sizeof *c->headers);
    }
    for (size_t i = 0; i < c->n_spans; i++) {
        c->headers[i].name = span_name(c, i);
        c->headers[i].value = span_value(c, i);
    }
    r->headers = c->headers;
    r->n_headers = c->n_spans;
    /* HEAD is handled as GET, and its answer sent without the body (response.c): the handler
     * gives the same status and headers as to a GET, as HEAD requires, without knowing it. */
    r->head = c->parser.method == HTTP_HEAD;
    r->method = r->head ? SG_SLICE_LIT("GET")
                        : sg_slice_of(llhttp_method_name((llhttp_method_t)c->parser.method));
    r->path =
        sg_http_target_split((struct sg_slice){c->in.data + c->url_off, c->url_len}, &r->query);
    r->keep_alive = c->keep_alive && !c->srv->draining;
    r->http10 = c->parser.http_major == 1 && c->parser.http_minor == 0;
    r->aborted = false;
    r->cut = false;
    r->user = NULL;
    r->request_id[0] = '\0';
    r->request_id_twice = false;
    c->on_abort = NULL;
    c->on_drain = NULL;
    c->req_active = true;
    c->stream_open = false;
    c->srv->in_flight++;
    sg_http_conn_set_state(c, CONN_HANDLING);
    c->in_dispatch = true;
    r->cors = cors_allow(c->srv, r);
    if (c->parser.method == HTTP_CONNECT || sg_slice_eq(r->path, "*"))
        refuse_no_resource(r);
    else if (r->cors.n && c->parser.method == HTTP_OPTIONS &&
             sg_http_header_get(r, "access-control-request-method").n)
        cors_preflight(r, sg_http_header_get(r, "access-control-request-headers"));
    else
        c->srv->handler(r, c->srv->ud);
    c->in_dispatch = false;
}

/* Parse what is buffered and dispatch complete requests, one at a time. */
static void conn_process(struct sg_http_conn *c)
{
    while (c->state != CONN_CLOSING && !c->req_active && c->parsed < c->in.len) {
        const char *msg;
        int status = sg_http_parse(c, &msg);
        if (status) {
            conn_send_error(c, status, msg);
            return;
        }
        if (!c->message_done)
            return;
        conn_dispatch(c);
    }
}

/* Called once the handler finished the current request (possibly from inside the handler). */
void sg_http_conn_finish(struct sg_http_conn *c)
{
    struct sg_http_server *s = c->srv;
    c->req_active = false;
    c->stream_open = false;
    c->on_abort = NULL;
    c->on_drain = NULL;
    s->in_flight--;
    if (c->state == CONN_CLOSING) {
        conn_free_if_done(c);
        return;
    }
    if (!c->req.keep_alive || c->peer_gone || s->draining)
        c->close_after = true;
    if (c->close_after) {
        if (c->write_queued == 0)
            conn_close(c);
        return;
    }
    /* Keep-alive: drop this request's bytes, take in what was read ahead, go on. */
    sg_buf_consume(&c->in, c->parsed);
    c->parsed = 0;
    if (c->ahead.len) {
        sg_buf_append(&c->in, c->ahead.data, c->ahead.len);
        sg_buf_reset(&c->ahead);
    }
    sg_buf_reset(&c->req.body);
    c->req.t_start_us = 0;
    c->message_done = false;
    /* Until the next request's first callbacks, nothing of it is known (a 408 on its head must
     * not be told this one's method and path). */
    c->url_len = 0;
    c->method_done = c->url_done = c->version_done = false;
    sg_http_conn_set_state(c, CONN_IDLE);
    if (!c->reading)
        conn_start_reading(c);
    if (c->in.len) {
        c->req.t_start_us = sg_now_us();
        sg_http_conn_set_state(c, CONN_HEAD);
        if (!c->in_dispatch)
            conn_process(c);
    }
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    SG_UNUSED(suggested);
    struct sg_http_conn *c = h->data;
    *buf = uv_buf_init(c->srv->read_buf, sizeof c->srv->read_buf);
}

static void on_read(uv_stream_t *stream, ssize_t n, const uv_buf_t *buf)
{
    struct sg_http_conn *c = stream->data;
    if (c->state == CONN_LINGER) {
        if (n < 0 || sg_now_ms() >= c->linger_until)
            conn_close(c);
        else if (n > 0)
            uv_timer_start(&c->timer, on_conn_timer, LINGER_IDLE_MS, 0);
        return;
    }
    if (c->close_after && !c->req_active) {
        /* The answer is draining before a close: ignore (and stop) further input. */
        if (n < 0) {
            uv_read_stop(stream);
            c->reading = false;
        }
        return;
    }
    if (n < 0) {
        conn_peer_gone(c);
        return;
    }
    if (n == 0)
        return;
    if (c->req_active) {
        /* Pipelined bytes wait until the current request is finished. Past the limit reading
         * stops, so TCP holds the client back, and resumes then; the buffer has room for the
         * read that crosses the limit, so no byte read is dropped (were one, the connection
         * would close after this answer, not go on out of step). */
        bool kept = sg_buf_append(&c->ahead, buf->base, (size_t)n) == SG_OK;
        if (!kept || c->ahead.len >= c->srv->lim.max_pipelined_bytes) {
            uv_read_stop(stream);
            c->reading = false;
            c->close_after |= !kept;
        }
        return;
    }
    if (c->state == CONN_IDLE) {
        c->req.t_start_us = sg_now_us();
        sg_http_conn_set_state(c, CONN_HEAD);
    }
    size_t cap = c->srv->lim.max_header_bytes + c->srv->lim.max_body_bytes + 65536;
    if (sg_buf_append(&c->in, buf->base, (size_t)n) != SG_OK || c->in.len > cap) {
        conn_send_error(c, 413, NULL);
        return;
    }
    conn_process(c);
}

static void conn_start_reading(struct sg_http_conn *c)
{
    uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read);
    c->reading = true;
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct sg_http_server *s = listener->data;
    if (status < 0)
        return;
    struct sg_http_conn *c = sg_xcalloc(1, sizeof *c);
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->handles_open = 2;
    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0 || s->draining ||
        s->n_conns > s->lim.max_connections) {
        c->state = CONN_IDLE;
        conn_close(c);
        return;
    }
    s->accepted++;
    uv_tcp_nodelay(&c->tcp, 1);
    sg_buf_init(&c->in, 0);
    sg_buf_init(&c->ahead, s->lim.max_pipelined_bytes + sizeof s->read_buf);
    sg_buf_init(&c->req.body, s->lim.max_body_bytes);
    c->req.conn = c;
    c->req.server = s;
    llhttp_init(&c->parser, HTTP_REQUEST, &sg_http_parser_settings);
    c->parser.data = c;
    c->state = CONN_HEAD; /* a new connection must send its request within header_timeout */
    uv_timer_start(&c->timer, on_conn_timer, s->lim.header_timeout_ms, 0);
    conn_start_reading(c);
}

/* ---- server ---- */

struct sg_http_server *sg_http_server_new(uv_loop_t *loop, const struct sg_http_limits *limits,
                                          sg_http_handler_fn handler, void *ud)
{
    struct sg_http_server *s = sg_xcalloc(1, sizeof *s);
    s->loop = loop;
    if (limits)
        s->lim = *limits;
    limits_fill(&s->lim);
    if (s->lim.cors_origins)
        snprintf(s->cors, sizeof s->cors, "%s", s->lim.cors_origins);
    s->lim.cors_origins = NULL; /* the caller's string need not outlive this */
    s->handler = handler;
    s->ud = ud;
    sg_buf_init(&s->scratch, 0);
    return s;
}

/* A non-blocking TCP socket bound to host:port (SO_REUSEADDR, and SO_REUSEPORT when asked), or
 * -1 with the reason logged. */
static int bound_socket(const char *host, int port, bool reuseport)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    char portstr[16];
    snprintf(portstr, sizeof portstr, "%d", port);
    int rc = getaddrinfo(host, portstr, &hints, &ai);
    if (rc != 0) {
        SG_ERROR("http", "cannot resolve listen address %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        (reuseport && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) != 0)) {
        SG_ERROR("http", "cannot create a listening socket: %s", strerror(errno));
    } else if (bind(fd, ai->ai_addr, ai->ai_addrlen) != 0) {
        SG_ERROR("http", "cannot listen on %s:%d: %s%s", host, port, strerror(errno),
                 errno == EADDRINUSE
                     ? " (another process listens there: stop it or choose another port)"
                     : "");
    } else {
        freeaddrinfo(ai);
        return fd;
    }
    if (fd >= 0)
        close(fd);
    freeaddrinfo(ai);
    return -1;
}

int sg_http_port_check(const char *host, int port)
{
    if (port == 0)
        return SG_OK;
    int fd = bound_socket(host, port, false);
    if (fd < 0)
        return SG_EIO;
    close(fd);
    return SG_OK;
}

int sg_http_server_listen(struct sg_http_server *s, const char *host, int port, bool reuseport)
{
    int fd = bound_socket(host, port, reuseport);
    if (fd < 0)
        return SG_EIO;
    uv_tcp_init(s->loop, &s->listener);
    s->listener.data = s;
    s->listener_open = true;
    int rc = uv_tcp_open(&s->listener, fd);
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rc != 0) {
        SG_ERROR("http", "cannot listen on %s:%d: %s", host, port, uv_strerror(rc));
        return SG_EIO;
    }
    struct sockaddr_storage ss;
    int len = sizeof ss;
    uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    s->listening = true;
    return SG_OK;
}

void sg_http_server_on_refusal(struct sg_http_server *s, sg_http_refusal_fn fn)
{
    s->on_refusal = fn;
}

int sg_http_server_port(const struct sg_http_server *s)
{
    return s->port;
}

size_t sg_http_server_connections(const struct sg_http_server *s)
{
    return s->n_conns;
}

size_t sg_http_server_in_flight(const struct sg_http_server *s)
{
    return s->in_flight;
}

uint64_t sg_http_server_accepted(const struct sg_http_server *s)
{
    return s->accepted;
}

static void on_server_handle_closed(uv_handle_t *h)
{
    struct sg_http_server *s = h->data;
    if (h == (uv_handle_t *)&s->listener)
        s->listener_open = false;
    else
        s->drain_timer_open = false;
    server_maybe_drained(s);
}

static void server_stop_listening(struct sg_http_server *s)
{
    if (s->listener_open && !uv_is_closing((uv_handle_t *)&s->listener))
        uv_close((uv_handle_t *)&s->listener, on_server_handle_closed);
    s->listening = false;
}

static void server_maybe_drained(struct sg_http_server *s)
{
    if (s->n_conns > 0 || s->listener_open)
        return;
    if (s->draining && !s->drained_called) {
        s->drained_called = true;
        if (s->drain_timer_open && !uv_is_closing((uv_handle_t *)&s->drain_timer))
            uv_close((uv_handle_t *)&s->drain_timer, on_server_handle_closed);
        if (s->on_drained)
            s->on_drained(s, s->drained_ud);
        return; /* on_drained may have freed the server */
    }
    if (s->freeing && !s->drain_timer_open) {
        sg_buf_dispose(&s->scratch);
        free(s);
    }
}

/* The last step of a drain: every connection still open closes, its request abandoned. */
static void on_drain_flushed(uv_timer_t *t)
{
    struct sg_http_server *s = t->data;
    for (struct sg_http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->req_active)
            conn_peer_gone(c);
        conn_close(c);
    }
}

/* The drain deadline: each request still in flight is cut (its handler answers at once, see
 * sg_http_request.cut); what they write gets DRAIN_FLUSH_MS to leave before the connections
 * close. */
static void on_drain_deadline(uv_timer_t *t)
{
    struct sg_http_server *s = t->data;
    SG_WARN("http", "drain deadline reached with %zu requests in flight: cutting them",
            s->in_flight);
    for (struct sg_http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->req_active && c->on_abort && !c->peer_gone) {
            sg_http_abort_fn fn = c->on_abort;
            c->on_abort = NULL;
            c->req.cut = true;
            fn(&c->req, c->abort_ud);
        } else if ((c->state == CONN_HEAD && c->in.len) || c->state == CONN_BODY) {
            /* Still sending its request: told why it ends here (and recorded), not just cut. */
            conn_send_error(c, 503,
                            "the gateway is shutting down and its drain deadline "
                            "(server.drain_timeout_s) passed before the request arrived whole; "
                            "retry the request");
        } else if (!c->req_active) {
            conn_close(c);
        }
    }
    if (s->n_conns > 0)
        uv_timer_start(&s->drain_timer, on_drain_flushed, DRAIN_FLUSH_MS, 0);
}

void sg_http_server_drain(struct sg_http_server *s, uint32_t deadline_ms,
                          void (*on_drained)(struct sg_http_server *s, void *ud), void *ud)
{
    if (s->draining)
        return;
    s->draining = true;
    s->on_drained = on_drained;
    s->drained_ud = ud;
    server_stop_listening(s);
    uv_timer_init(s->loop, &s->drain_timer);
    s->drain_timer.data = s;
    s->drain_timer_open = true;
    uv_timer_start(&s->drain_timer, on_drain_deadline, deadline_ms, 0);
    for (struct sg_http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->req_active)
            c->close_after = true;
        else if (c->state == CONN_IDLE || c->state == CONN_LINGER ||
                 (c->state == CONN_HEAD && c->in.len == 0))
            conn_close(c);
    }
    server_maybe_drained(s);
}

void sg_http_server_free(struct sg_http_server *s)
{
    if (!s)
        return;
    s->freeing = true;
    s->draining = true;
    s->drained_called = true; /* no drain callback from here on */
    server_stop_listening(s);
    if (s->drain_timer_open && !uv_is_closing((uv_handle_t *)&s->drain_timer))
        uv_close((uv_handle_t *)&s->drain_timer, on_server_handle_closed);
    for (struct sg_http_conn *c = s->conns, *next; c; c = next) {
        next = c->next;
        if (c->req_active)
            conn_peer_gone(c);
        conn_close(c);
    }
    if (s->n_conns == 0 && !s->listener_open && !s->drain_timer_open) {
        sg_buf_dispose(&s->scratch);
        free(s);
    }
}

/* ---- request accessors ---- */

struct sg_slice sg_http_header_get(const struct sg_http_request *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (sg_slice_ieq(req->headers[i].name, name))
            return req->headers[i].value;
    return (struct sg_slice){NULL, 0};
}

void sg_http_request_on_abort(struct sg_http_request *req, sg_http_abort_fn fn, void *ud)
{
    req->conn->on_abort = fn;
    req->conn->abort_ud = ud;
}

void sg_http_stream_on_drain(struct sg_http_request *req, sg_http_drain_fn fn, void *ud)
{
    req->conn->on_drain = fn;
    req->conn->drain_ud = ud;
}

uv_loop_t *sg_http_request_loop(const struct sg_http_request *req)
{
    return req->server->loop;
}

void sg_http_reset(struct sg_http_request *req)
{
    struct sg_http_conn *c = req->conn;
    if (c->state != CONN_CLOSING) {
        sg_http_conn_set_state(c, CONN_CLOSING);
        c->peer_gone = true;
        if (uv_tcp_close_reset(&c->tcp, on_conn_handle_closed) != 0)
            uv_close((uv_handle_t *)&c->tcp, on_conn_handle_closed);
        uv_close((uv_handle_t *)&c->timer, on_conn_handle_closed);
    }
    sg_http_conn_finish(c);
}
