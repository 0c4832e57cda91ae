/*
 * The HTTP server over real loopback sockets: the server runs on a uv loop in a thread, the test
 * talks to it with plain blocking sockets and asserts the bytes a client would see.
 */
#include "http/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

struct fixture {
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t ctl;
    uv_sem_t ready;
    struct sg_http_server *srv;
    struct sg_http_limits lim;
    int port;
    int action; /* 1 = drain, 2 = stop */
    int drained;
    uv_timer_t slow_timer;
    struct sg_http_request *slow_req;
    char last_refusal[64]; /* "STATUS code METHOD PATH" of the last refusal (read after stop) */
};

static void slow_done(uv_timer_t *t)
{
    struct fixture *f = t->data;
    static const char body[] = "slow done";
    sg_http_respond(f->slow_req, 200, NULL, 0, body, sizeof body - 1);
    f->slow_req = NULL;
}

static void handler(struct sg_http_request *req, void *ud)
{
    struct fixture *f = ud;
    if (sg_slice_eq(req->path, "/stream")) {
        static const struct sg_http_header h[] = {
            {SG_SLICE_LIT("Content-Type"), SG_SLICE_LIT("text/event-stream")}};
        sg_http_stream_begin(req, 200, h, 1);
        sg_http_stream_write(req, "a", 1);
        sg_http_stream_write(req, "bb", 2);
        sg_http_stream_write(req, "ccc", 3);
        sg_http_stream_end(req);
        return;
    }
    if (sg_slice_eq(req->path, "/slow")) {
        f->slow_req = req;
        uv_timer_start(&f->slow_timer, slow_done, 150, 0);
        return;
    }
    if (sg_slice_eq(req->path, "/error")) {
        sg_http_respond_error(req, 404, "invalid_request_error", "nope", "it \"is\" not here");
        return;
    }
    if (sg_slice_eq(req->path, "/only-post") && !sg_slice_eq(req->method, "POST")) {
        sg_http_respond_405(req, "POST", "use POST");
        return;
    }
    if (sg_slice_eq(req->path, "/get-or-delete") && !sg_slice_eq(req->method, "GET") &&
        !sg_slice_eq(req->method, "DELETE")) {
        sg_http_respond_405(req, "GET, DELETE", "use GET or DELETE");
        return;
    }
    char out[9000];
    int n = snprintf(out, sizeof out, "%.*s %.*s q=%.*s len=%zu body=%.*s", (int)req->method.n,
                     req->method.p, (int)req->path.n, req->path.p, (int)req->query.n, req->query.p,
                     req->body.len, (int)SG_MIN(req->body.len, 8000),
                     req->body.data ? req->body.data : "");
    struct sg_slice xh = sg_http_header_get(req, "X-Test");
    if (xh.p)
        n += snprintf(out + n, sizeof out - (size_t)n, " x-test=%.*s", (int)xh.n, xh.p);
    sg_http_respond(req, 200, NULL, 0, out, (size_t)n);
}

/* The refusal hook: the request id it gives says what the hook was told, "STATUS-METHOD-PATH"
 * (cut at 32 characters), so a test reads it off the answer's x-request-id. */
static void refused(const struct sg_http_refusal *r, char request_id[33], void *ud)
{
    struct fixture *f = ud;
    snprintf(f->last_refusal, sizeof f->last_refusal, "%d %s %.*s %.*s", r->status, r->code,
             (int)r->method.n, r->method.p ? r->method.p : "", (int)r->path.n,
             r->path.p ? r->path.p : "");
    snprintf(request_id, 33, "%d-%.*s-%.*s", r->status, (int)r->method.n,
             r->method.p ? r->method.p : "", (int)r->path.n, r->path.p ? r->path.p : "");
}

static void on_drained(struct sg_http_server *s, void *ud)
{
    struct fixture *f = ud;
    f->drained = 1;
    sg_http_server_free(s);
    f->srv = NULL;
    uv_close((uv_handle_t *)&f->ctl, NULL);
    uv_close((uv_handle_t *)&f->slow_timer, NULL);
}

static void on_ctl(uv_async_t *a)
{
    struct fixture *f = a->data;
    if (f->action == 1) {
        sg_http_server_drain(f->srv, 2000, on_drained, f);
    } else {
        sg_http_server_free(f->srv);
        f->srv = NULL;
        uv_close((uv_handle_t *)&f->ctl, NULL);
        uv_close((uv_handle_t *)&f->slow_timer, NULL);
    }
}

static void loop_main(void *arg)
{
    struct fixture *f = arg;
    f->srv = sg_http_server_new(&f->loop, &f->lim, handler, f);
    sg_http_server_on_refusal(f->srv, refused);
    assert_int_equal(sg_http_server_listen(f->srv, "127.0.0.1", 0, false), 0);
    f->port = sg_http_server_port(f->srv);
    uv_sem_post(&f->ready);
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static struct fixture *start(const struct sg_http_limits *lim)
{
    struct fixture *f = calloc(1, sizeof *f);
    if (lim)
        f->lim = *lim;
    uv_loop_init(&f->loop);
    uv_async_init(&f->loop, &f->ctl, on_ctl);
    f->ctl.data = f;
    uv_timer_init(&f->loop, &f->slow_timer);
    f->slow_timer.data = f;
    uv_sem_init(&f->ready, 0);
    uv_thread_create(&f->thread, loop_main, f);
    uv_sem_wait(&f->ready);
    return f;
}

static void stop(struct fixture *f, int action)
{
    f->action = action;
    uv_async_send(&f->ctl);
    uv_thread_join(&f->thread);
    uv_loop_close(&f->loop);
    uv_sem_destroy(&f->ready);
    free(f);
}

static int connect_to(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* Read until EOF or `timeout_ms` of silence; returns bytes read. */
static size_t read_all(int fd, char *out, size_t cap, int timeout_ms)
{
    size_t n = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, timeout_ms) <= 0)
            break;
        ssize_t r = read(fd, out + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            break;
    }
    out[n] = '\0';
    return n;
}

static void send_all(int fd, const char *s, size_t n)
{
    while (n) {
        ssize_t w = write(fd, s, n);
        assert_true(w > 0);
        s += w;
        n -= (size_t)w;
    }
}

static char *exchange(struct fixture *f, const char *req, size_t len, int timeout_ms)
{
    static char buf[1 << 16];
    int fd = connect_to(f->port);
    send_all(fd, req, len);
    read_all(fd, buf, sizeof buf, timeout_ms);
    close(fd);
    return buf;
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void test_get_and_close(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char req[] =
        "GET /hello?x=1 HTTP/1.1\r\nHost: a\r\nX-Test: yes\r\nConnection: close\r\n\r\n";
    char *r = exchange(f, req, sizeof req - 1, 2000);
    assert_non_null(strstr(r, "HTTP/1.1 200 OK\r\n"));
    assert_non_null(strstr(r, "Connection: close\r\n"));
    assert_non_null(strstr(r, "GET /hello q=x=1 len=0 body= x-test=yes"));
    stop(f, 2);
}

static void test_keepalive_and_pipelining(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    /* Three requests in one write: answered in order on one connection. */
    const char req[] =
        "POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nonePOST /b HTTP/1.1\r\n"
        "Host: a\r\nContent-Length: 3\r\n\r\ntwoGET /c HTTP/1.1\r\nHost: a\r\n"
        "Connection: close\r\n\r\n";
    char *r = exchange(f, req, sizeof req - 1, 2000);
    assert_int_equal(count(r, "HTTP/1.1 200 OK"), 3);
    char *a = strstr(r, "POST /a"), *b = strstr(r, "POST /b"), *c = strstr(r, "GET /c");
    assert_non_null(a);
    assert_non_null(b);
    assert_non_null(c);
    assert_true(a < b && b < c);
    assert_non_null(strstr(r, "body=one"));
    assert_non_null(strstr(r, "body=two"));
    stop(f, 2);
}

/* Requests pipelined behind one in flight, more than the read-ahead limit: reading stops at the
 * limit and resumes when the request is done, and every request is answered, in order. */
static void test_pipelining_past_the_read_ahead_limit(void **state)
{
    (void)state;
    struct sg_http_limits lim = {.max_pipelined_bytes = 1024};
    struct fixture *f = start(&lim);
    int fd = connect_to(f->port);
    const char slow[] = "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n";
    send_all(fd, slow, sizeof slow - 1);
    usleep(30 * 1000); /* /slow is in flight (150 ms) */
    enum { N = 200 };
    for (int i = 0; i < N; i++) { /* ~34 bytes each, in writes of ~850 bytes */
        char req[64];
        int n = snprintf(req, sizeof req, "GET /p%03d HTTP/1.1\r\nHost: a\r\n%s\r\n", i,
                         i == N - 1 ? "Connection: close\r\n" : "");
        send_all(fd, req, (size_t)n);
        if (i % 25 == 24)
            usleep(2 * 1000);
    }
    static char buf[1 << 16];
    read_all(fd, buf, sizeof buf, 3000);
    close(fd);
    assert_int_equal(count(buf, "HTTP/1.1 200 OK"), N + 1);
    assert_non_null(strstr(buf, "slow done"));
    const char *at = buf;
    for (int i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof want, "GET /p%03d ", i);
        const char *next = strstr(at, want);
        assert_non_null(next);
        at = next;
    }
    stop(f, 2);
}

static void test_keepalive_separate_writes(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    int fd = connect_to(f->port);
    char buf[4096];
    for (int i = 0; i < 3; i++) {
        const char req[] = "GET /k HTTP/1.1\r\nHost: a\r\n\r\n";
        send_all(fd, req, sizeof req - 1);
        size_t n = read_all(fd, buf, sizeof buf, 300);
        assert_true(n > 0);
        assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
        assert_null(strstr(buf, "Connection: close"));
    }
    close(fd);
    stop(f, 2);
}

static void test_chunked_body(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char req[] =
        "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close"
        "\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    char *r = exchange(f, req, sizeof req - 1, 2000);
    assert_non_null(strstr(r, "len=11 body=hello world"));
    stop(f, 2);

    /* Trailer fields are not headers: X-Test sent only as a trailer never reaches the handler,
     * the one in the header section does. */
    f = start(NULL);
    const char trailer[] = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                           "X-Test: head\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n"
                           "X-Test: trailer\r\nAuthorization: Bearer sk-x\r\n\r\n";
    r = exchange(f, trailer, sizeof trailer - 1, 2000);
    assert_non_null(strstr(r, "len=5 body=hello x-test=head"));
    assert_null(strstr(r, "trailer"));
    stop(f, 2);
    f = start(NULL);
    const char only[] = "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
                        "Connection: close\r\n\r\n5\r\nhello\r\n0\r\nX-Test: trailer\r\n\r\n";
    r = exchange(f, only, sizeof only - 1, 2000);
    assert_non_null(strstr(r, "len=5 body=hello"));
    assert_null(strstr(r, "x-test="));
    stop(f, 2);
}

static void test_header_too_large_431(void **state)
{
    (void)state;
    struct sg_http_limits lim = {.max_header_bytes = 1024};
    struct fixture *f = start(&lim);
    char req[4096];
    int n = snprintf(req, sizeof req, "GET / HTTP/1.1\r\nHost: a\r\nX-Big: %02000d\r\n\r\n", 0);
    char *r = exchange(f, req, (size_t)n, 2000);
    assert_non_null(strstr(r, "HTTP/1.1 431 "));
    assert_non_null(strstr(r, "\"code\":\"headers_too_large\""));
    /* The same when the header block arrives slowly and never ends. */
    int fd = connect_to(f->port);
    send_all(fd, "GET / HTTP/1.1\r\n", 16);
    /* The server may answer and close before all of it is written: stop writing then. */
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < 40; i++)
        if (send(fd, "X-Filler: 0123456789012345678901234567890123456789\r\n", 52, MSG_NOSIGNAL) <
            0)
            break;
    char buf[4096];
    read_all(fd, buf, sizeof buf, 2000);
    assert_non_null(strstr(buf, "HTTP/1.1 431 "));
    close(fd);
    stop(f, 2);
}

static void test_body_too_large_413(void **state)
{
    (void)state;
    struct sg_http_limits lim = {.max_body_bytes = 100};
    struct fixture *f = start(&lim);
    const char req[] = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n";
    char *r = exchange(f, req, sizeof req - 1, 2000);
    assert_non_null(strstr(r, "HTTP/1.1 413 "));
    assert_non_null(strstr(r, "larger than the limit of 100 bytes"));
    /* Chunked bodies are counted as they arrive. */
    char big[400];
    int n = snprintf(big, sizeof big,
                     "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                     "c8\r\n%0200d\r\n0\r\n\r\n",
                     0);
    r = exchange(f, big, (size_t)n, 2000);
    assert_non_null(strstr(r, "HTTP/1.1 413 "));
    stop(f, 2);
}

static void test_malformed_400(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char *bad[] = {
        "GARBAGE\r\n\r\n",
        "GET / HTTP/1.1\r\nHost : a\r\n\r\n", /* space before the colon */
        "GET / HTTP/1.1\nHost: a\n\n",        /* bare LF */
        "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
        ("POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
         "0\r\n\r\n"),
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(bad); i++) {
        char *r = exchange(f, bad[i], strlen(bad[i]), 2000);
        if (!strstr(r, "HTTP/1.1 400 "))
            fail_msg("input %zu was not rejected with 400: %s", i, r);
        assert_non_null(strstr(r, "malformed HTTP request"));
    }
    stop(f, 2);
}

static void test_header_timeout_408(void **state)
{
    (void)state;
    struct sg_http_limits lim = {.header_timeout_ms = 150};
    struct fixture *f = start(&lim);
    int fd = connect_to(f->port);
    const char part[] = "GET / HTTP/1.1\r\nHost: a\r\n";
    send_all(fd, part, sizeof part - 1);
    char buf[2048];
    read_all(fd, buf, sizeof buf, 3000);
    assert_non_null(strstr(buf, "HTTP/1.1 408 "));
    close(fd);
    /* A connection that sends nothing asked nothing: it is closed without an answer (it got an
     * unsolicited 408), at EOF rather than after read_all's 3 s of silence. */
    fd = connect_to(f->port);
    assert_int_equal(read_all(fd, buf, sizeof buf, 3000), 0);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 1);
    assert_int_equal(read(fd, buf, 1), 0);
    close(fd);
    stop(f, 2);
}

static void test_idle_timeout_closes(void **state)
{
    (void)state;
    struct sg_http_limits lim = {.idle_timeout_ms = 100};
    struct fixture *f = start(&lim);
    int fd = connect_to(f->port);
    const char req[] = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    char buf[2048];
    /* The answer, then EOF once the keep-alive connection sat idle for 100 ms. */
    size_t n = read_all(fd, buf, sizeof buf, 3000);
    assert_true(n > 0);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
    /* read_all stopped at EOF (not after 3 s of silence): the socket reads 0 at once. */
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, 0), 1);
    assert_int_equal(read(fd, buf, 1), 0);
    close(fd);
    stop(f, 2);
}

static void test_expect_continue(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    int fd = connect_to(f->port);
    const char head[] = "POST /e HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\nExpect: 100-continue"
                        "\r\nConnection: close\r\n\r\n";
    send_all(fd, head, sizeof head - 1);
    char buf[2048];
    read_all(fd, buf, sizeof buf, 200);
    assert_non_null(strstr(buf, "HTTP/1.1 100 Continue\r\n\r\n"));
    send_all(fd, "hi", 2);
    read_all(fd, buf, sizeof buf, 2000);
    assert_non_null(strstr(buf, "body=hi"));
    close(fd);
    stop(f, 2);
}

static void test_stream_chunks_and_error_shape(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char req[] = "GET /stream HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    char *r = exchange(f, req, sizeof req - 1, 2000);
    assert_non_null(strstr(r, "Transfer-Encoding: chunked\r\n"));
    assert_non_null(strstr(r, "\r\n\r\n1\r\na\r\n2\r\nbb\r\n3\r\nccc\r\n0\r\n\r\n"));
    const char req2[] = "GET /error HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    r = exchange(f, req2, sizeof req2 - 1, 2000);
    assert_non_null(strstr(r, "HTTP/1.1 404 Not Found"));
    assert_non_null(strstr(r, "{\"error\":{\"message\":\"it \\\"is\\\" not here\",\"type\":"
                              "\"invalid_request_error\",\"param\":null,\"code\":\"nope\"}}"));
    stop(f, 2);
}

/* HTTP/1.0: a stream has no chunked framing and ends with the connection; a keep-alive the
 * client asked for is said in the answer; Expect: 100-continue is not answered. */
static void test_http10(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char stream[] = "GET /stream HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n";
    char *r = exchange(f, stream, sizeof stream - 1, 2000); /* returns at EOF */
    assert_null(strstr(r, "Transfer-Encoding"));
    assert_non_null(strstr(r, "Connection: close\r\n"));
    assert_non_null(strstr(r, "\r\n\r\nabbccc"));
    assert_int_equal(strlen(strstr(r, "\r\n\r\n")), 4 + 6);

    int fd = connect_to(f->port);
    char buf[4096];
    for (int i = 0; i < 2; i++) { /* the same connection twice */
        const char req[] = "GET /k HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n";
        send_all(fd, req, sizeof req - 1);
        assert_true(read_all(fd, buf, sizeof buf, 300) > 0);
        assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
        assert_non_null(strstr(buf, "Connection: keep-alive\r\n"));
    }
    close(fd);

    const char expect[] = "POST /e HTTP/1.0\r\nHost: a\r\nExpect: 100-continue\r\n"
                          "Content-Length: 2\r\n\r\nhi";
    r = exchange(f, expect, sizeof expect - 1, 2000);
    assert_null(strstr(r, "100 Continue"));
    assert_non_null(strstr(r, "len=2 body=hi"));
    stop(f, 2);
}

static void test_drain_finishes_in_flight(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    int fd = connect_to(f->port);
    const char req[] = "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n";
    send_all(fd, req, sizeof req - 1);
    usleep(30 * 1000); /* the request is in flight now */
    f->action = 1;
    uv_async_send(&f->ctl);
    char buf[2048];
    read_all(fd, buf, sizeof buf, 3000);
    assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
    assert_non_null(strstr(buf, "Connection: close"));
    assert_non_null(strstr(buf, "slow done"));
    close(fd);
    uv_thread_join(&f->thread);
    assert_int_equal(f->drained, 1);
    uv_loop_close(&f->loop);
    uv_sem_destroy(&f->ready);
    free(f);
}

/* A request still arriving when the drain deadline passes is answered with a 503 that says why
 * (it was closed without a word), and the refusal hook is told. */
static void test_drain_deadline_answers_a_request_still_arriving(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    int fd = connect_to(f->port);
    const char part[] = "POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc";
    send_all(fd, part, sizeof part - 1);
    usleep(30 * 1000);
    f->action = 1; /* drain, deadline 2 s */
    uv_async_send(&f->ctl);
    char buf[2048];
    read_all(fd, buf, sizeof buf, 3000);
    close(fd);
    uv_thread_join(&f->thread);
    assert_non_null(strstr(buf, "HTTP/1.1 503 "));
    assert_non_null(strstr(buf, "Connection: close\r\n"));
    assert_non_null(
        strstr(buf, "drain deadline (server.drain_timeout_s) passed before the request"));
    assert_non_null(strstr(buf, "\"code\":\"gateway_shutdown\""));
    assert_string_equal(f->last_refusal, "503 gateway_shutdown POST /v1/x");
    assert_int_equal(f->drained, 1);
    uv_loop_close(&f->loop);
    uv_sem_destroy(&f->ready);
    free(f);
}

/* What one request on a fresh connection got: the status code, or -1 for no status line. */
static int status_of(const char *r)
{
    return strncmp(r, "HTTP/1.1 ", 9) == 0 ? atoi(r + 9) : -1;
}

/* Each input, sent alone on a fresh connection, gets `status`, an error body containing `says`,
 * Connection: close, and the connection closed (read_all returned at EOF, well before 2 s). */
static void refused_each(struct fixture *f, const char *const *inputs, size_t n, int status,
                         const char *says)
{
    for (size_t i = 0; i < n; i++) {
        char *r = exchange(f, inputs[i], strlen(inputs[i]), 2000);
        if (status_of(r) != status || !strstr(r, says) || !strstr(r, "Connection: close\r\n"))
            fail_msg("input %zu (%.60s...) expected %d saying \"%s\", got: %s", i, inputs[i],
                     status, says, r);
        assert_non_null(strstr(r, "{\"error\":{\"message\":\""));
    }
}

/* RFC 9112 §3.2.2: a server MUST accept the absolute-form; it is routed by its path and query.
 * Asterisk-form is for OPTIONS only, authority-form for CONNECT only. */
static void test_absolute_form_target(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    static const struct {
        const char *target, *want;
    } ok[] = {
        {"http://127.0.0.1:4000/hello?x=1", "GET /hello q=x=1 "},
        {"HTTPS://example.com/a/b", "GET /a/b q= "},
        {"http://example.com", "GET / q= "},
        {"http://example.com?k=v", "GET / q=k=v "},
        {"http://[::1]:4000/v6", "GET /v6 q= "},
        {"/p?x=1#frag", "GET /p q=x=1 "}, /* a fragment is dropped */
        {"http://example.com/a#frag?no", "GET /a q= "},
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(ok); i++) {
        char req[256];
        int n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
                         ok[i].target);
        char *r = exchange(f, req, (size_t)n, 2000);
        if (status_of(r) != 200 || !strstr(r, ok[i].want))
            fail_msg("%s: expected 200 with \"%s\", got: %s", ok[i].target, ok[i].want, r);
    }
    /* OPTIONS * and CONNECT host:port name no resource: a 405 with an empty Allow, before the
     * handler, and the connection goes on. */
    const char opt[] = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"
                       "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
                       "GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    char *r = exchange(f, opt, sizeof opt - 1, 2000);
    assert_int_equal(count(r, "HTTP/1.1 405 Method Not Allowed\r\n"), 2);
    assert_int_equal(count(r, "Allow: \r\n"), 2);
    assert_non_null(strstr(r, "OPTIONS * is not supported"));
    assert_non_null(strstr(r, "CONNECT example.com:443 is not supported"));
    assert_non_null(strstr(r, "GET /after q= "));

    const char *bad[] = {
        "GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        "POST 127.0.0.1:4000 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET localhost:4000 HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET ftp://example.com/hello HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http://user:pw@example.com/hello HTTP/1.1\r\nHost: a\r\n\r\n",
        "GET http:///hello HTTP/1.1\r\nHost: a\r\n\r\n",
    };
    refused_each(f, bad, SG_ARRAY_LEN(bad), 400, "request target");
    /* The refusal hook is told the method and the target's path. */
    r = exchange(f, bad[0], strlen(bad[0]), 2000);
    assert_non_null(strstr(r, "x-request-id: 400-GET-*\r\n"));
    stop(f, 2);
}

/* RFC 9112 §3.2: an HTTP/1.1 request without Host, or any request with two, is a 400. */
static void test_host_header_required_once(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char *missing[] = {
        "GET /h HTTP/1.1\r\n\r\n", "GET /h HTTP/1.1\r\nX-Test: a\r\n\r\n",
        "GET http://a/h HTTP/1.1\r\n\r\n", /* the target's authority does not stand in for it */
    };
    refused_each(f, missing, SG_ARRAY_LEN(missing), 400, "without Host header");
    const char *twice[] = {
        "GET /h HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        "GET /h HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n",
        "GET /h HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n",
    };
    refused_each(f, twice, SG_ARRAY_LEN(twice), 400, "more than one Host header");
    char *r = exchange(f, twice[0], strlen(twice[0]), 2000);
    assert_non_null(strstr(r, "x-request-id: 400-GET-/h\r\n"));
    /* HTTP/1.0 has no Host requirement; an empty Host is allowed (RFC 9110 §7.2). */
    const char ok10[] = "GET /h HTTP/1.0\r\n\r\n";
    r = exchange(f, ok10, sizeof ok10 - 1, 2000);
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "GET /h q= "));
    const char empty[] = "GET /h HTTP/1.1\r\nHost:\r\nConnection: close\r\n\r\n";
    assert_int_equal(status_of(exchange(f, empty, sizeof empty - 1, 2000)), 200);
    const char empty_last[] = "GET /h HTTP/1.1\r\nConnection: close\r\nHost:\r\n\r\n";
    assert_int_equal(status_of(exchange(f, empty_last, sizeof empty_last - 1, 2000)), 200);
    /* A Host must be host[:port] (RFC 9110 §7.2). */
    const char *bad_host[] = {
        "GET /h HTTP/1.1\r\nHost: a/b\r\n\r\n",  "GET /h HTTP/1.1\r\nHost: a:80x\r\n\r\n",
        "GET /h HTTP/1.1\r\nHost: [::1\r\n\r\n", "GET /h HTTP/1.1\r\nHost: u@a\r\n\r\n",
        "GET /h HTTP/1.0\r\nHost: a\"b\r\n\r\n", "GET /h HTTP/1.1\r\nHost: [::1]x\r\n\r\n",
    };
    refused_each(f, bad_host, SG_ARRAY_LEN(bad_host), 400, "is not a host with an optional :port");
    const char good_host[] = "GET /h HTTP/1.1\r\nHost: [fe80::1%25eth0]:8080\r\n\r\n"
                             "GET /h HTTP/1.1\r\nHost: xn--bcher-kva.example:\r\n\r\n"
                             "GET /h HTTP/1.1\r\nHost: 10.0.0.1:4000\r\nConnection: close\r\n\r\n";
    assert_int_equal(count(exchange(f, good_host, sizeof good_host - 1, 2000), "200 OK"), 3);
    stop(f, 2);
}

/* Reads one response with a Content-Length body from fd; returns its length through *head_len
 * (status line and headers) and the Content-Length value. */
static size_t read_head(int fd, char *buf, size_t cap, size_t *head_len)
{
    size_t n = 0;
    char *end = NULL;
    while (!end && n < cap - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 2000) <= 0)
            break;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    assert_non_null(end);
    *head_len = (size_t)(end + 4 - buf);
    return n;
}

/* HEAD is answered as GET would be, without the body (RFC 9110 §9.3.2): same status and
 * headers, Content-Length of the GET body. The connection goes on with the next request. */
static void test_head_is_get_without_body(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    int fd = connect_to(f->port);
    char buf[8192];
    const char get[] = "GET /k?a=1 HTTP/1.1\r\nHost: a\r\n\r\n";
    send_all(fd, get, sizeof get - 1);
    size_t head_len, n = read_head(fd, buf, sizeof buf, &head_len);
    const char *body = "GET /k q=a=1 len=0 body=";
    assert_int_equal(n - head_len, strlen(body));
    /* Three HEADs in a row on the same connection, then a GET: each answered, in order. */
    for (int i = 0; i < 3; i++) {
        const char head[] = "HEAD /k?a=1 HTTP/1.1\r\nHost: a\r\n\r\n";
        send_all(fd, head, sizeof head - 1);
        n = read_head(fd, buf, sizeof buf, &head_len);
        assert_int_equal(status_of(buf), 200);
        char want[64];
        snprintf(want, sizeof want, "Content-Length: %zu\r\n", strlen(body));
        assert_non_null(strstr(buf, want));
        assert_null(strstr(buf, "Connection: close"));
        assert_int_equal(n, head_len); /* nothing after the head */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        assert_int_equal(poll(&p, 1, 100), 0); /* and nothing later either */
    }
    send_all(fd, get, sizeof get - 1);
    n = read_head(fd, buf, sizeof buf, &head_len);
    assert_int_equal(status_of(buf), 200);
    assert_string_equal(buf + head_len, body);
    close(fd);

    /* Pipelined: a HEAD of a stream, a HEAD of an error, then a GET, in one write. */
    const char piped[] = "HEAD /stream HTTP/1.1\r\nHost: a\r\n\r\nHEAD /error HTTP/1.1\r\nHost: a"
                         "\r\n\r\nGET /k HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    char *r = exchange(f, piped, sizeof piped - 1, 2000);
    assert_int_equal(count(r, "HTTP/1.1 "), 3);
    const char *s = strstr(r, "Transfer-Encoding: chunked\r\n\r\nHTTP/1.1 404 Not Found\r\n");
    assert_non_null(s);
    s = strstr(s + 10, "\r\n\r\nHTTP/1.1 200 OK\r\n"); /* the 404's head, no body */
    assert_non_null(s);
    assert_non_null(strstr(s, "\r\n\r\nGET /k q= len=0 body="));
    assert_null(strstr(r, "not here"));

    /* A 405 lists HEAD wherever it lists GET; HEAD on a path that takes only POST is a 405. */
    const char del[] = "PUT /get-or-delete HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    r = exchange(f, del, sizeof del - 1, 2000);
    assert_int_equal(status_of(r), 405);
    assert_non_null(strstr(r, "Allow: GET, HEAD, DELETE\r\n"));
    const char hpost[] = "HEAD /only-post HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    r = exchange(f, hpost, sizeof hpost - 1, 2000);
    assert_int_equal(status_of(r), 405);
    assert_non_null(strstr(r, "Allow: POST\r\n"));
    assert_null(strstr(r, "use POST")); /* no body */
    /* A HEAD the server refuses itself gets the error's head, no body. */
    const char hbad[] = "HEAD /k HTTP/1.1\r\n\r\n";
    r = exchange(f, hbad, sizeof hbad - 1, 2000);
    assert_int_equal(status_of(r), 400);
    assert_non_null(strstr(r, "x-request-id: 400-HEAD-/k\r\n"));
    assert_non_null(strstr(r, "Content-Length: "));
    assert_string_equal(strstr(r, "\r\n\r\n"), "\r\n\r\n");
    stop(f, 2);
}

/* Transfer-Encoding: chunked is the one coding implemented. Another coding before it is a 501
 * (RFC 9112 §6.1); chunked not last is a 400 (§6.3); with Content-Length, or in HTTP/1.0, a
 * 400 (§6.1, §6.2). Each closes the connection. */
static void test_transfer_encoding_other_than_chunked(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char *not_impl[] = {
        "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n",
        ("POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: chunked"
         "\r\n\r\n0\r\n\r\n"),
        "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n",
    };
    refused_each(f, not_impl, SG_ARRAY_LEN(not_impl), 501, "is not implemented");
    char *r = exchange(f, not_impl[0], strlen(not_impl[0]), 2000);
    assert_non_null(strstr(r, "501 Not Implemented\r\n"));
    assert_non_null(strstr(r, "x-request-id: 501-POST-/t\r\n"));
    const char *not_last[] = {
        "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n",
        "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    };
    refused_each(f, not_last, SG_ARRAY_LEN(not_last), 400, "does not end with chunked");
    const char *both[] = {
        "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"
        "0\r\n\r\n",
        "POST /t HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
        "0\r\n\r\n",
    };
    refused_each(f, both, SG_ARRAY_LEN(both), 400, "Content-Length and Transfer-Encoding");
    const char *http10[] = {
        "POST /t HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    };
    refused_each(f, http10, SG_ARRAY_LEN(http10), 400, "HTTP/1.0");
    /* chunked, in any letter case and with spaces around it, is read. */
    const char ok[] = "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  Chunked \r\n"
                      "Connection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    r = exchange(f, ok, sizeof ok - 1, 2000);
    assert_int_equal(status_of(r), 200);
    assert_non_null(strstr(r, "len=5 body=hello"));
    stop(f, 2);
}

/* HTTP/1.0 and 1.1 are served; another well-formed version is a 505, a request line without
 * a version (HTTP/0.9's) a 400. */
static void test_http_versions(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char *unsupported[] = {
        "GET /v HTTP/2.0\r\nHost: a\r\n\r\n", "GET /v HTTP/1.2\r\nHost: a\r\n\r\n",
        "GET /v HTTP/0.9\r\nHost: a\r\n\r\n", "GET /v HTTP/3.0\r\nHost: a\r\n\r\n",
        "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", /* HTTP/2 with prior knowledge */
    };
    refused_each(f, unsupported, SG_ARRAY_LEN(unsupported), 505, "send the request as HTTP/1.1");
    char *r = exchange(f, unsupported[0], strlen(unsupported[0]), 2000);
    assert_non_null(strstr(r, "505 HTTP Version Not Supported\r\n"));
    assert_non_null(strstr(r, "HTTP/2.0 is not supported"));
    assert_non_null(strstr(r, "x-request-id: 505-GET-/v\r\n"));
    const char *no_version[] = {
        "GET /v\r\n\r\n",
        "GET /v\r\nHost: a\r\n\r\n",
    };
    refused_each(f, no_version, SG_ARRAY_LEN(no_version), 400, "no HTTP version");
    const char *malformed[] = {
        "GET /v HTTP/1.x\r\nHost: a\r\n\r\n",
        "GET /v HTTP/11.1\r\nHost: a\r\n\r\n",
    };
    refused_each(f, malformed, SG_ARRAY_LEN(malformed), 400, "malformed HTTP request");
    stop(f, 2);
}

/* A request target over the limit is a 414 (nginx's answer too), a header block a 431. */
static void test_uri_too_long_414(void **state)
{
    (void)state;
    struct sg_http_limits lim = {.max_header_bytes = 1024};
    struct fixture *f = start(&lim);
    char req[4096];
    int n = snprintf(req, sizeof req, "GET /long?q=%02000d HTTP/1.1\r\nHost: a\r\n\r\n", 0);
    char *r = exchange(f, req, (size_t)n, 2000);
    assert_int_equal(status_of(r), 414);
    assert_non_null(strstr(r, "414 URI Too Long\r\n"));
    assert_non_null(strstr(r, "\"code\":\"uri_too_long\""));
    assert_non_null(strstr(r, "limit of 1024 bytes"));
    assert_non_null(strstr(r, "x-request-id: 414-GET-/long\r\n"));
    /* The same when the target arrives in pieces and has not ended when the limit is passed. */
    int fd = connect_to(f->port);
    send_all(fd, "GET /long?q=", 12);
    signal(SIGPIPE, SIG_IGN);
    for (int i = 0; i < 40; i++)
        if (send(fd, "0123456789012345678901234567890123456789012345678901", 52, MSG_NOSIGNAL) < 0)
            break;
    char buf[4096];
    read_all(fd, buf, sizeof buf, 2000);
    close(fd);
    assert_int_equal(status_of(buf), 414);
    assert_non_null(strstr(buf, "x-request-id: 414-GET-/long\r\n"));
    /* A short target with a header block over the limit stays a 431. */
    n = snprintf(req, sizeof req, "GET /short HTTP/1.1\r\nHost: a\r\nX-Big: %02000d\r\n\r\n", 0);
    r = exchange(f, req, (size_t)n, 2000);
    assert_int_equal(status_of(r), 431);
    stop(f, 2);
}

/* Lines end with CRLF; a bare LF anywhere in the head (or a chunk line) is a 400 that says so.
 * llhttp takes some of them (after the request line, as the blank line) unless we check. */
static void test_bare_lf_is_refused_and_said(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char *bad[] = {
        "GET /l HTTP/1.1\nHost: a\n\n",
        "GET /l HTTP/1.1\nHost: a\r\n\r\n",
        "GET /l HTTP/1.1\r\nHost: a\nX-Test: b\r\n\r\n",
        "GET /l HTTP/1.1\r\nHost: a\r\n\n",
        "GET /l HTTP/1.1\r\nHost: a\r\nX-Empty:\n\r\n",
        "GET /l HTTP/1.1\r\nHost: a\r\nX-Empty:\nX-Test: b\r\n\r\n",
        "POST /l HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n",
        "POST /l HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\n0\r\n\r\n",
        "POST /l HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\n",
        ("POST /l HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n"
         "X-Trailer: t\n\r\n"),
    };
    refused_each(f, bad, SG_ARRAY_LEN(bad), 400, "must end with CRLF");
    /* llhttp skips the two bytes after a chunk's data unread: they must be CRLF. */
    const char *chunk[] = {
        "POST /l HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXY0\r\n\r\n",
        "POST /l HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
    };
    refused_each(f, chunk, SG_ARRAY_LEN(chunk), 400, "not followed by CRLF");
    /* A folded header line (obs-fold): refused, not joined into a value with a CRLF in it. */
    const char *fold[] = {
        "GET /l HTTP/1.1\r\nHost: a\r\nX-Test: a\r\n b\r\n\r\n",
        "GET /l HTTP/1.1\r\nHost: a\r\nX-Test: a\r\n\tb\r\nX-Other: c\r\n\r\n",
        "GET /l HTTP/1.1\r\nHost: a\r\nX-Test:\r\n b\r\n\r\n",
        "GET /l HTTP/1.1\r\nHost: a\r\nX-Test: \r\n  b\r\nX-Other: c\r\n\r\n",
    };
    refused_each(f, fold, SG_ARRAY_LEN(fold), 400, "obsolete line folding");
    /* Whitespace after a value is not part of it (RFC 9110 §5.5). */
    const char ows[] =
        "GET /l HTTP/1.1\r\nHost: a\r\nX-Test:  b c \t \r\nConnection: close\r\n\r\n";
    char *r = exchange(f, ows, sizeof ows - 1, 2000);
    assert_non_null(strstr(r, " x-test=b c"));
    assert_null(strstr(r, " x-test=b c "));
    stop(f, 2);
}

/* A request read one byte at a time passes the checks that look at where its parts lie (a value
 * split across reads is not a folded line, a head split across reads has no bare LF). */
static void test_request_one_byte_at_a_time(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    int fd = connect_to(f->port);
    const char req[] = "POST http://a/split?x=1 HTTP/1.1\r\nHost: a\r\nX-Test:  one two \r\n"
                       "X-Empty:\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
                       "3\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: t\r\n\r\n";
    for (size_t i = 0; i < sizeof req - 1; i++) {
        send_all(fd, req + i, 1);
        usleep(500);
    }
    char buf[4096];
    read_all(fd, buf, sizeof buf, 2000);
    close(fd);
    assert_int_equal(status_of(buf), 200);
    assert_non_null(strstr(buf, "POST /split q=x=1 len=5 body=abcde x-test=one two"));
    stop(f, 2);
}

/* A request with Upgrade (or a CONNECT) is answered as any other, since the server never
 * switches protocols, and the connection goes on with the next request. */
static void test_upgrade_request_keeps_the_connection_in_step(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char req[] = "GET /u HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                       "\r\nGET /v HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n";
    char *r = exchange(f, req, sizeof req - 1, 2000);
    assert_int_equal(count(r, "HTTP/1.1 200 OK"), 2);
    assert_non_null(strstr(r, "GET /v q= "));
    stop(f, 2);
}

/* A chunked body's framing is not body: 19,000 bytes in 1-byte chunks (114 KB on the wire, more
 * than the header and body limits and the read slack together) pass a 20,000-byte limit, whole
 * and in order, with the end of the body split across reads at each of its last bytes. A chunk
 * whose data is not followed by CRLF is still refused once the body's first bytes were dropped. */
static void test_chunked_framing_is_not_body(void **state)
{
    (void)state;
    struct sg_http_limits lim = {.max_body_bytes = 20000};
    struct fixture *f = start(&lim);
    enum { N = 19000 };
    static char req[N * 6 + 256];
    for (int end = 1; end <= 9; end++) {
        int n = snprintf(req, sizeof req,
                         "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: "
                         "chunked\r\nConnection: close\r\n\r\n");
        for (int i = 0; i < N; i++)
            n += snprintf(req + n, sizeof req - (size_t)n, "1\r\n%c\r\n", 'a' + i % 26);
        n += snprintf(req + n, sizeof req - (size_t)n, "%s",
                      end == 9 ? "1\r\nzXY0\r\n\r\n" : "0\r\nX-T: t\r\n\r\n");
        int fd = connect_to(f->port);
        send_all(fd, req, (size_t)n - (size_t)end);
        usleep(20 * 1000); /* the rest in a read of its own */
        send_all(fd, req + n - end, (size_t)end);
        static char buf[1 << 14];
        read_all(fd, buf, sizeof buf, 2000);
        close(fd);
        if (end == 9) {
            assert_int_equal(status_of(buf), 400);
            assert_non_null(strstr(buf, "a chunk's data is not followed by CRLF"));
            continue;
        }
        if (status_of(buf) != 200 ||
            !strstr(buf, "POST /c q= len=19000 body=abcdefghijklmnopqrstuvwxyzabc"))
            fail_msg("last %d bytes in a read of their own: %.300s", end, buf);
    }
    stop(f, 2);
}

/* A chunk that would take the body past the limit is a 413 as soon as its size line is read,
 * while the client waits with its data (it was answered only once the data had come). */
static void test_chunk_over_the_limit_is_413_at_its_size(void **state)
{
    (void)state;
    struct sg_http_limits lim = {.max_body_bytes = 1000};
    struct fixture *f = start(&lim);
    const char *big[] = {
        "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3e9\r\nab",
        "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nab\r\n3e7\r\n",
        "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffff\r\n",
    };
    refused_each(f, big, SG_ARRAY_LEN(big), 413, "larger than the limit of 1000 bytes");
    /* Exactly the limit passes. */
    static char ok[1200];
    int n = snprintf(ok, sizeof ok,
                     "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: "
                     "close\r\n\r\n2\r\nab\r\n3e6\r\n%0998d\r\n0\r\n\r\n",
                     0);
    assert_int_equal(status_of(exchange(f, ok, (size_t)n, 2000)), 200);
    /* Trailer fields are held to the header limit. */
    static char tr[600];
    n = snprintf(tr, sizeof tr,
                 "POST /c HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
                 "0\r\nX-T: %0500d\r\n\r\n",
                 0);
    struct sg_http_limits small = {.max_header_bytes = 400};
    stop(f, 2);
    f = start(&small);
    const char *trailers[] = {tr};
    refused_each(f, trailers, 1, 431, "trailer fields after the chunked body are larger");
    stop(f, 2);
}

/* Framing a proxy in front could read another way is refused, and the message says what was
 * wrong: an empty Transfer-Encoding (llhttp read the body by its Content-Length), a header line
 * without a name (llhttp took it), Content-Length twice (it was said to be with
 * Transfer-Encoding). */
static void test_framing_read_two_ways_is_said(void **state)
{
    (void)state;
    struct fixture *f = start(NULL);
    const char *te[] = {
        "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: \r\nContent-Length: 5\r\n\r\nhello",
        "POST /t HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:\r\n\r\n",
    };
    refused_each(f, te, SG_ARRAY_LEN(te), 400, "an empty Transfer-Encoding header");
    const char *noname[] = {
        "GET /t HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n",
        "GET /t HTTP/1.1\r\n: x\r\nHost: a\r\n\r\n",
    };
    refused_each(f, noname, SG_ARRAY_LEN(noname), 400, "a header line without a name");
    const char *cl[] = {
        "POST /t HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    };
    refused_each(f, cl, SG_ARRAY_LEN(cl), 400, "more than one Content-Length header");
    stop(f, 2);
}

/* A client that leaves halfway through its request is told to the refusal hook as a 499 with
 * the method and path, so its owner can record it (nothing is answered); one that leaves with
 * nothing sent, or before its path was read, or between requests is not a request. */
static void test_client_leaving_mid_request_is_told(void **state)
{
    (void)state;
    static const struct {
        const char *sent, *told;
    } cases[] = {
        {"POST /v1/x HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\nabc",
         "499 client_disconnected POST /v1/x"},
        {"POST /v1/y?q HTTP/1.1\r\nHost: a\r\nX-Slow: 1", "499 client_disconnected POST /v1/y"},
        {"POST /v1/z HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
         "499 client_disconnected POST /v1/z"},
        {"POST /v1/", "499 client_disconnected  "},
        {"", ""},
        {"GET /k HTTP/1.1\r\nHost: a\r\n\r\n", ""},
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
        struct fixture *f = start(NULL);
        int fd = connect_to(f->port);
        send_all(fd, cases[i].sent, strlen(cases[i].sent));
        usleep(50 * 1000);
        close(fd);
        usleep(100 * 1000);
        f->action = 2;
        uv_async_send(&f->ctl);
        uv_thread_join(&f->thread); /* the loop's writes are seen from here on */
        if (strcmp(f->last_refusal, cases[i].told) != 0)
            fail_msg("case %zu: told \"%s\", want \"%s\"", i, f->last_refusal, cases[i].told);
        uv_loop_close(&f->loop);
        uv_sem_destroy(&f->ready);
        free(f);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_and_close),
        cmocka_unit_test(test_keepalive_and_pipelining),
        cmocka_unit_test(test_keepalive_separate_writes),
        cmocka_unit_test(test_pipelining_past_the_read_ahead_limit),
        cmocka_unit_test(test_http10),
        cmocka_unit_test(test_chunked_body),
        cmocka_unit_test(test_header_too_large_431),
        cmocka_unit_test(test_body_too_large_413),
        cmocka_unit_test(test_malformed_400),
        cmocka_unit_test(test_header_timeout_408),
        cmocka_unit_test(test_idle_timeout_closes),
        cmocka_unit_test(test_expect_continue),
        cmocka_unit_test(test_stream_chunks_and_error_shape),
        cmocka_unit_test(test_drain_finishes_in_flight),
        cmocka_unit_test(test_drain_deadline_answers_a_request_still_arriving),
        cmocka_unit_test(test_absolute_form_target),
        cmocka_unit_test(test_host_header_required_once),
        cmocka_unit_test(test_head_is_get_without_body),
        cmocka_unit_test(test_transfer_encoding_other_than_chunked),
        cmocka_unit_test(test_http_versions),
        cmocka_unit_test(test_uri_too_long_414),
        cmocka_unit_test(test_bare_lf_is_refused_and_said),
        cmocka_unit_test(test_request_one_byte_at_a_time),
        cmocka_unit_test(test_upgrade_request_keeps_the_connection_in_step),
        cmocka_unit_test(test_chunked_framing_is_not_body),
        cmocka_unit_test(test_chunk_over_the_limit_is_413_at_its_size),
        cmocka_unit_test(test_framing_read_two_ways_is_said),
        cmocka_unit_test(test_client_leaving_mid_request_is_told),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
