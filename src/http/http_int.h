/* http — private: the connection and server structs shared by server.c (connections), parse.c
 * (the parser's callbacks) and response.c (answers). */
#ifndef SG_HTTP_INT_H
#define SG_HTTP_INT_H

#include "http.h"

#include <llhttp.h>

/* Headers per request; more is a 431. */
#define MAX_HEADERS 128

/* Where a connection is in its life; see sg_http_conn_set_state() for the transitions. */
enum conn_state {
    CONN_IDLE,     /* keep-alive, no byte of the next request yet */
    CONN_HEAD,     /* reading the request line and headers */
    CONN_BODY,     /* reading the body */
    CONN_HANDLING, /* the handler owns the request */
    CONN_LINGER,   /* an error answer was sent; what still arrives is read and dropped */
    CONN_CLOSING,  /* uv_close() called on the handles */
};

/* A header while parsing: offsets into conn->in, because that buffer may move. */
struct hdr_span {
    size_t name_off, name_len, value_off, value_len;
};

struct sg_http_conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    struct sg_http_server *srv;
    struct sg_http_conn *prev, *next; /* the server's list */
    enum conn_state state;
    llhttp_t parser;

    struct sg_buf in;    /* bytes read, from the start of the current request */
    size_t parsed;       /* bytes of `in` the parser has consumed */
    struct sg_buf ahead; /* bytes read while a request is being handled (pipelining) */

    size_t url_off, url_len;
    bool method_done;  /* the method was read: parser.method is this request's */
    bool url_done;     /* the request target was read whole */
    bool version_done; /* the request line was read up to its version */
    struct hdr_span *spans;
    size_t n_spans, cap_spans;
    bool in_value; /* the last header callback was a value */
    bool message_done;
    bool headers_done;    /* later header callbacks are a chunked body's trailer fields */
    bool chunked;         /* the body is chunked */
    size_t chunk_end;     /* offset in `in` of the end of the current chunk's data (0: none yet) */
    size_t body_off;      /* offset in `in` where the body starts (0: head not read yet) */
    size_t trailer_bytes; /* bytes of a chunked body's trailer fields so far */
    bool keep_alive;
    int error_status; /* an error answer to send instead of dispatching (413, 431...) */
    const char *error_msg;
    char error_buf[256]; /* error_msg when it says which value was wrong */

    struct sg_http_request req;
    struct sg_http_header *headers; /* req.headers storage */
    size_t cap_headers;
    bool req_active;  /* handed to the handler and not finished yet */
    bool in_dispatch; /* inside the handler call (no re-entrant parsing) */
    bool stream_open;
    bool close_after; /* close once the current response is written */
    bool reading;
    bool peer_gone;
    bool linger;           /* after the error answer is written: linger, not close */
    uint64_t linger_until; /* sg_now_ms() deadline of CONN_LINGER */
    uv_shutdown_t shutdown;
    int handles_open; /* tcp + timer until their close callbacks ran */

    size_t write_queued; /* bytes handed to uv_write and not completed */
    sg_http_abort_fn on_abort;
    void *abort_ud;
    sg_http_drain_fn on_drain;
    void *drain_ud;
};

struct sg_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    bool listener_open;
    struct sg_http_limits lim;
    sg_http_handler_fn handler;
    sg_http_refusal_fn on_refusal; /* may be NULL; gets `ud` too */
    void *ud;
    struct sg_http_conn *conns; /* doubly linked list */
    size_t n_conns;
    size_t in_flight;
    uint64_t accepted;
    int port;

    bool draining;
    bool drained_called;
    uv_timer_t drain_timer;
    bool drain_timer_open;
    void (*on_drained)(struct sg_http_server *s, void *ud);
    void *drained_ud;
    bool freeing;

    char cors[SG_HTTP_CORS_MAX + 1]; /* lim.cors_origins, copied ("" = no CORS) */
    char date[40];                   /* cached "Date: ..." value, refreshed once a second */
    uint64_t date_sec;
    struct sg_buf scratch; /* response assembly, reused (one loop thread) */
    char read_buf[65536];  /* shared by every connection: libuv reads synchronously per loop */
};

/* A parsed header's name and value (llhttp leaves the whitespace after a value in it; it is not
 * part of the value, RFC 9110 §5.5). */
static inline struct sg_slice span_name(const struct sg_http_conn *c, size_t i)
{
    return (struct sg_slice){c->in.data + c->spans[i].name_off, c->spans[i].name_len};
}
static inline struct sg_slice span_value(const struct sg_http_conn *c, size_t i)
{
    struct sg_slice v = {c->in.data + c->spans[i].value_off, c->spans[i].value_len};
    while (v.n && (v.p[v.n - 1] == ' ' || v.p[v.n - 1] == '\t'))
        v.n--;
    return v;
}

/* server.c: called by response.c when the handler has finished the request. */
void sg_http_conn_finish(struct sg_http_conn *c);
/* server.c: queue bytes on the socket (copied); false when the peer is gone. */
bool sg_http_conn_write(struct sg_http_conn *c, const char *data, size_t len);
/* server.c: the cached Date header value. */
const char *sg_http_server_date(struct sg_http_server *s);
/* server.c: the single place a connection changes state (it also arms the timer). */
void sg_http_conn_set_state(struct sg_http_conn *c, enum conn_state st);

/* parse.c: llhttp's callbacks for a connection's parser (parser.data is the connection). */
extern const llhttp_settings_t sg_http_parser_settings;
/* parse.c: parse what conn->in holds past c->parsed. 0 when nothing is wrong (the request is
 * whole when c->message_done, the parser then paused at its end); otherwise the status of the
 * error to answer (400, 413, 414, 431, 501, 505) and *msg what to say (NULL for the 413: the
 * answer names the limit). */
int sg_http_parse(struct sg_http_conn *c, const char **msg);
/* parse.c: a request target split into the path it is routed by and the query (`query` may be
 * NULL); an absolute-form target by its path, its authority unused. */
struct sg_slice sg_http_target_split(struct sg_slice t, struct sg_slice *query);

#endif
