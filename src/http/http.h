/*
 * http — the HTTP/1.1 server: libuv listeners, one connection state machine per socket
 * (llhttp underneath), request limits, and the response/SSE writers.
 *
 * Threading: a server and all its connections belong to one uv loop; every function here
 * must be called on that loop's thread.
 *
 * Request lifecycle (the one rule a handler must keep): the server calls the handler once per
 * complete request. The handler finishes the request exactly once, either with
 * sg_http_respond() or with sg_http_stream_begin() ... sg_http_stream_end(), now or later from
 * any callback on the same loop. Until then the request stays valid, even if the client goes
 * away: the server then calls the abort callback (if set) and turns further writes into no-ops,
 * but the handler still finishes the request. Pipelined requests on one connection are handled
 * one after the other, in order.
 */
#ifndef SG_HTTP_H
#define SG_HTTP_H

#include "base/base.h"

#include <uv.h>

struct sg_http_server;
struct sg_http_conn;

/* Limits and timeouts; zero fields take the defaults below. */
struct sg_http_limits {
    size_t max_header_bytes;    /* request line + headers (default 16 KiB): beyond, 414 while
                                   the request line is not over, 431 after */
    size_t max_body_bytes;      /* 413 beyond (default 8 MiB) */
    uint32_t header_timeout_ms; /* whole header block must arrive within (default 10 s): 408 */
    uint32_t body_timeout_ms;   /* whole body must arrive within (default 60 s): 408 */
    uint32_t idle_timeout_ms;   /* keep-alive connection with no request (default 60 s) */
    uint32_t max_connections;   /* per server; beyond, new sockets are closed (default 10000) */
    size_t max_pipelined_bytes; /* bytes buffered ahead of an in-flight request (default 64 KiB) */
    const char *cors_origins;   /* CORS: "*", origins separated by ',' (at most
                                   SG_HTTP_CORS_MAX bytes), or NULL/"" for none; copied */
};
#define SG_HTTP_CORS_MAX 1023

struct sg_http_header {
    struct sg_slice name;
    struct sg_slice value;
};

struct sg_http_request {
    struct sg_http_conn *conn;
    struct sg_http_server *server;
    struct sg_slice method; /* "GET", "POST", ...; "GET" for a HEAD request (see `head`) */
    struct sg_slice path;   /* without the query string; the path of an absolute-form target */
    struct sg_slice query;  /* after '?', may be empty */
    struct sg_http_header *headers;
    size_t n_headers;
    struct sg_buf body;   /* de-chunked request body */
    bool keep_alive;      /* the connection may carry another request after this one */
    bool http10;          /* an HTTP/1.0 client: no chunked framing, keep-alive only if asked */
    bool head;            /* a HEAD, handed over as GET: its answer's body is not sent */
    bool aborted;         /* the client went away; writes are ignored */
    bool cut;             /* the server's drain deadline passed: answer now, the connection closes
                           * (DRAIN_FLUSH_MS later at the latest) */
    uint64_t t_start_us;  /* monotonic time the first byte of this request arrived */
    struct sg_slice cors; /* its answer's Access-Control-Allow-Origin: "*" or its Origin when
                           * the server allows that origin, else empty (response.c) */
    char request_id[33];  /* "" unless the handler sets it: then the answer carries it as
                           * x-request-id, and also as request-id (Anthropic's name) with
                           * request_id_twice; for handlers whose headers do not carry one */
    bool request_id_twice;
    void *user; /* free for the handler */
};

typedef void (*sg_http_handler_fn)(struct sg_http_request *req, void *ud);
/* Called at most once, before the request was finished: when the client disconnects
 * (req->aborted), or when the server's drain deadline passes (req->cut; writes still go out, so
 * the handler can say why the answer ends there). */
typedef void (*sg_http_abort_fn)(struct sg_http_request *req, void *ud);
/* Called when a stream's queued output drops back under the low-water mark. */
typedef void (*sg_http_drain_fn)(struct sg_http_request *req, void *ud);

/* Create a server on `loop`; `handler` receives every complete request. */
struct sg_http_server *sg_http_server_new(uv_loop_t *loop, const struct sg_http_limits *limits,
                                          sg_http_handler_fn handler, void *ud);
/* A request the server answered itself before any handler saw it (400 malformed, 408, 413, 414,
 * 431, 501 transfer coding, 505 version, 503 when the drain deadline passes while it still
 * arrives), or one the client left before it was whole (499, client_disconnected: nothing is
 * answered, the hook's request id and body go unused). method and path are empty when the path
 * was not read whole (up to its '?' is enough); the path is the one the request would have been
 * routed by. */
struct sg_http_refusal {
    struct sg_slice method, path;
    int status;
    const char *code;       /* the error code of the answer: bad_request, request_timeout, ... */
    const char *message;    /* what was wrong and what to do */
    uint64_t t_start_us;    /* sg_now_us() at the request's first byte */
    struct sg_buf *body;    /* the hook may write the answer's body here, in its API's error shape;
                             * left empty, the server sends OpenAI's */
    bool *request_id_twice; /* the hook may set it: the id goes as request-id too */
};
/* Told of each refusal before it is answered; it may write a request id (at most 32 characters,
 * "" for none) that the answer then carries as x-request-id, and the body (above). */
typedef void (*sg_http_refusal_fn)(const struct sg_http_refusal *r, char request_id[33], void *ud);
void sg_http_server_on_refusal(struct sg_http_server *s, sg_http_refusal_fn fn);

/* Bind and listen. `reuseport` sets SO_REUSEPORT so several loops can share one port.
 * port 0 picks an ephemeral port; sg_http_server_port() tells which. Returns 0 or SG_EIO. */
int sg_http_server_listen(struct sg_http_server *s, const char *host, int port, bool reuseport);
/* Whether this process can listen on host:port, tried with a socket bound without SO_REUSEPORT:
 * a server already listening there makes it fail (with the reason logged), even one that set
 * SO_REUSEPORT itself, which the gateway's own listeners would otherwise join and share
 * connections with silently. Port 0 always passes. */
int sg_http_port_check(const char *host, int port);
int sg_http_server_port(const struct sg_http_server *s);
/* Stop accepting, close idle connections, let in-flight requests finish (their connections close
 * afterwards). `on_drained` runs once no connection is left, or when `deadline_ms` passes
 * (remaining connections are then closed). Safe to call once. */
void sg_http_server_drain(struct sg_http_server *s, uint32_t deadline_ms,
                          void (*on_drained)(struct sg_http_server *s, void *ud), void *ud);
/* Close every handle and free the server once they are closed (runs on the loop). */
void sg_http_server_free(struct sg_http_server *s);
/* Number of open connections and of requests currently being handled. */
size_t sg_http_server_connections(const struct sg_http_server *s);
size_t sg_http_server_in_flight(const struct sg_http_server *s);
/* Connections accepted since the server started (lets tests see keep-alive reuse). */
uint64_t sg_http_server_accepted(const struct sg_http_server *s);

/* First header with this name (case-insensitive), or a slice with p == NULL. */
struct sg_slice sg_http_header_get(const struct sg_http_request *req, const char *name);
void sg_http_request_on_abort(struct sg_http_request *req, sg_http_abort_fn fn, void *ud);
uv_loop_t *sg_http_request_loop(const struct sg_http_request *req);

/* Finish with a complete response. Content-Length, Connection and Date are added by the server;
 * `headers` must not contain them. The body is copied. */
void sg_http_respond(struct sg_http_request *req, int status, const struct sg_http_header *headers,
                     size_t n_headers, const char *body, size_t body_len);
/* Finish with an OpenAI-shaped JSON error: {"error":{"message","type","param","code"}}. */
void sg_http_respond_error(struct sg_http_request *req, int status, const char *type,
                           const char *code, const char *message);
/* 405 with the Allow header HTTP requires ("GET, POST") and the same error body. HEAD is added
 * after GET (the server answers HEAD wherever GET is answered). */
void sg_http_respond_405(struct sg_http_request *req, const char *allow, const char *message);

/* Start a chunked response (used for SSE). The caller passes its own Content-Type. */
void sg_http_stream_begin(struct sg_http_request *req, int status,
                          const struct sg_http_header *headers, size_t n_headers);
/* Queue one chunk; it is sent at once. Returns the bytes now queued for this connection
 * (the caller may pause its source above ~256 KiB and resume in the drain callback). */
size_t sg_http_stream_write(struct sg_http_request *req, const char *data, size_t len);
void sg_http_stream_on_drain(struct sg_http_request *req, sg_http_drain_fn fn, void *ud);
/* Send the last chunk and finish the request. */
void sg_http_stream_end(struct sg_http_request *req);
/* Finish the request by resetting the connection (TCP RST, nothing more is sent). For fault
 * injection: what a crashed peer or a middlebox looks like. */
void sg_http_reset(struct sg_http_request *req);

/* The reason phrase for a status code ("OK", "Not Found", ...). */
const char *sg_http_reason(int status);

/* ---- SSE framing (sse.c): split a byte stream into events ---- */

/* An incremental splitter: feed bytes as they arrive; it calls `on_event` with each complete
 * raw event (the bytes up to and including the blank line) and its concatenated `data:` value.
 * Handles \n, \r\n and \r line ends and events split across feeds. */
struct sg_sse_parser {
    struct sg_buf pending; /* bytes of an incomplete event */
    size_t scanned;        /* bytes of `pending` already searched for an event end */
    void (*on_event)(void *ud, struct sg_slice raw, struct sg_slice event, struct sg_slice data);
    void *ud;
    struct sg_buf data; /* scratch for the joined data lines */
};
void sg_sse_parser_init(struct sg_sse_parser *p, size_t max_event_bytes,
                        void (*on_event)(void *ud, struct sg_slice raw, struct sg_slice event,
                                         struct sg_slice data),
                        void *ud);
void sg_sse_parser_dispose(struct sg_sse_parser *p);
/* Returns 0, or SG_ETOOBIG when one event exceeds the maximum. */
int sg_sse_parser_feed(struct sg_sse_parser *p, const char *bytes, size_t n);
/* Bytes of an unfinished event still held (non-zero at end of stream = truncated event). */
static inline size_t sg_sse_parser_pending(const struct sg_sse_parser *p)
{
    return p->pending.len;
}

/* Append one SSE event "data: <json>\n\n" to `out`. */
int sg_sse_format_data(struct sg_buf *out, const char *data, size_t len);

#endif
