/* Writing answers: whole responses, OpenAI-shaped errors and chunked streams. */
#include "http_int.h"

#include <stdio.h>
#include <stdlib.h>

const char *sg_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    case 505: return "HTTP Version Not Supported";
    case 529: return "Site Overloaded";
    default: return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

/* Status line, caller's headers, CORS, Date and Connection. */
static void append_head(struct sg_buf *out, struct sg_http_request *req, int status,
                        const struct sg_http_header *headers, size_t n_headers)
{
    sg_buf_append(out, "HTTP/1.1 ", 9);
    sg_buf_append_u64(out, (uint64_t)status);
    sg_buf_append(out, " ", 1);
    sg_buf_appends(out, sg_http_reason(status));
    sg_buf_append(out, "\r\n", 2);
    for (size_t i = 0; i < n_headers; i++) {
        sg_buf_append(out, headers[i].name.p, headers[i].name.n);
        sg_buf_append(out, ": ", 2);
        sg_buf_append(out, headers[i].value.p, headers[i].value.n);
        sg_buf_append(out, "\r\n", 2);
    }
    if (req->request_id[0]) {
        sg_buf_appends(out, "x-request-id: ");
        sg_buf_appends(out, req->request_id);
        if (req->request_id_twice) {
            sg_buf_appends(out, "\r\nrequest-id: ");
            sg_buf_appends(out, req->request_id);
        }
        sg_buf_append(out, "\r\n", 2);
    }
    if (req->cors.n) { /* the page may read the answer, its x-request-id and x-slogate-* too */
        sg_buf_appends(out, "Access-Control-Allow-Origin: ");
        sg_buf_append(out, req->cors.p, req->cors.n);
        sg_buf_appends(out, req->cors.n == 1 && req->cors.p[0] == '*'
                                ? "\r\nAccess-Control-Expose-Headers: *\r\n"
                                : "\r\nVary: Origin\r\nAccess-Control-Expose-Headers: *\r\n");
    }
    sg_buf_append(out, "Date: ", 6);
    sg_buf_appends(out, sg_http_server_date(req->server));
    sg_buf_append(out, "\r\n", 2);
    if (!req->keep_alive || req->server->draining)
        sg_buf_appends(out, "Connection: close\r\n");
    else if (req->http10) /* a 1.0 connection closes unless the answer says otherwise */
        sg_buf_appends(out, "Connection: keep-alive\r\n");
}

void sg_http_respond(struct sg_http_request *req, int status, const struct sg_http_header *headers,
                     size_t n_headers, const char *body, size_t body_len)
{
    struct sg_http_conn *c = req->conn;
    if (!req->aborted) {
        /* The server's scratch buffer: no allocation per response once it has grown. */
        struct sg_buf *b = &req->server->scratch;
        sg_buf_reset(b);
        append_head(b, req, status, headers, n_headers);
        sg_buf_append(b, "Content-Length: ", 16);
        sg_buf_append_u64(b, body_len);
        sg_buf_append(b, "\r\n\r\n", 4);
        if (!req->head) /* HEAD: the length of the body a GET gets, and no body */
            sg_buf_append(b, body, body_len);
        sg_http_conn_write(c, b->data, b->len);
        if (b->cap > 256 * 1024)
            sg_buf_dispose(b); /* do not keep a large answer's memory around */
    }
    sg_http_conn_finish(c);
}

static void respond_error_h(struct sg_http_request *req, int status, const char *allow,
                            const char *type, const char *code, const char *message)
{
    struct sg_buf body;
    sg_buf_init(&body, 0);
    sg_buf_appends(&body, "{\"error\":{\"message\":\"");
    sg_buf_append_json_str(&body, message, strlen(message));
    sg_buf_appendf(&body, "\",\"type\":\"%s\",\"param\":null,\"code\":", type);
    if (code)
        sg_buf_appendf(&body, "\"%s\"}}", code);
    else
        sg_buf_appends(&body, "null}}");
    const struct sg_http_header h[] = {
        {SG_SLICE_LIT("Content-Type"), SG_SLICE_LIT("application/json")},
        {SG_SLICE_LIT("Allow"), sg_slice_of(allow)}};
    sg_http_respond(req, status, h, allow ? 2 : 1, body.data, body.len);
    sg_buf_dispose(&body);
}

void sg_http_respond_error(struct sg_http_request *req, int status, const char *type,
                           const char *code, const char *message)
{
    respond_error_h(req, status, NULL, type, code, message);
}

void sg_http_respond_405(struct sg_http_request *req, const char *allow, const char *message)
{
    /* HEAD is answered wherever GET is (server.c hands it over as GET), so it is allowed there:
     * "GET, POST" -> "GET, HEAD, POST". */
    char with_head[200];
    const char *get = strstr(allow, "GET");
    bool is_get = get && (get == allow || get[-1] == ' ' || get[-1] == ',') &&
                  (get[3] == '\0' || get[3] == ',' || get[3] == ' ');
    if (is_get && !strstr(allow, "HEAD") && strlen(allow) + 6 < sizeof with_head) {
        snprintf(with_head, sizeof with_head, "%.*sGET, HEAD%s", (int)(get - allow), allow,
                 get + 3);
        allow = with_head;
    }
    respond_error_h(req, 405, allow, "invalid_request_error", NULL, message);
}

void sg_http_stream_begin(struct sg_http_request *req, int status,
                          const struct sg_http_header *headers, size_t n_headers)
{
    struct sg_http_conn *c = req->conn;
    c->stream_open = true;
    if (req->aborted)
        return;
    struct sg_buf *b = &req->server->scratch;
    sg_buf_reset(b);
    /* HTTP/1.0 has no chunked coding: the stream's end is the connection's (RFC 9112 §6.1).
     * A HEAD gets the head a GET would, and no chunk is sent after it. */
    if (req->http10 && !req->head)
        req->keep_alive = false;
    append_head(b, req, status, headers, n_headers);
    sg_buf_appends(b, req->http10 ? "\r\n" : "Transfer-Encoding: chunked\r\n\r\n");
    sg_http_conn_write(c, b->data, b->len);
}

size_t sg_http_stream_write(struct sg_http_request *req, const char *data, size_t len)
{
    struct sg_http_conn *c = req->conn;
    if (req->aborted || req->head || len == 0)
        return c->write_queued;
    if (req->http10) {
        sg_http_conn_write(c, data, len);
        return c->write_queued;
    }
    char stack[4096];
    char *frame = len + 32 <= sizeof stack ? stack : sg_xmalloc(len + 32);
    int h = snprintf(frame, 32, "%zx\r\n", len);
    memcpy(frame + h, data, len);
    memcpy(frame + h + len, "\r\n", 2);
    sg_http_conn_write(c, frame, (size_t)h + len + 2);
    if (frame != stack)
        free(frame);
    return c->write_queued;
}

void sg_http_stream_end(struct sg_http_request *req)
{
    struct sg_http_conn *c = req->conn;
    if (!req->aborted && c->stream_open && !req->http10 && !req->head)
        sg_http_conn_write(c, "0\r\n\r\n", 5);
    sg_http_conn_finish(c);
}
