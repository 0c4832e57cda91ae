/*
 * The upstream client against a scripted server on loopback.
 *
 * The server is plain blocking sockets, one thread per accepted connection: it reads a request,
 * looks its path up in `scenarios` (what to send, in which pieces, with which pauses, and whether
 * to close afterwards) and records what it received. The client side runs sg_upstream on a uv
 * loop in the test's own thread. Tests are written as data where they can: the server's script,
 * then what the client reported.
 */
#include "upstream/upstream.h"
#include "upstream/upstream_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- the scripted server ---- */

struct step {
    const char *data;
    int delay_ms; /* before sending `data` */
};

struct scenario {
    const char *path;
    struct step steps[8];
    bool close_after; /* close the connection once the script ran */
};

#define BIG_LEN (1024 * 1024)

static const struct scenario scenarios[] = {
    {"/cl",
     {{"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Test: a\r\n"
       "Content-Type: text/plain\r\n\r\nhello",
       0}},
     false},
    /* Split inside the head's last CRLF, inside chunk sizes, data and the final CRLF. */
    {"/chunked",
     {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r", 0},
      {"\n5\r", 20},
      {"\nhel", 20},
      {"lo\r\n1", 20},
      {"0\r\n0123456789abcdef\r\n0\r", 20},
      {"\n\r\n", 20}},
     false},
    {"/eof",
     {{"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npart1", 0}, {"part2", 30}},
     true},
    {"/interim",
     {{"HTTP/1.1 100 Continue\r\n\r\n", 0},
      {"HTTP/1.1 103 Early Hints\r\nLink: </x>\r\n\r\n", 20},
      {"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 20}},
     false},
    {"/ka-close", {{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 0}}, true},
    {"/midbody", {{"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly-part", 0}}, true},
    {"/midchunk", {{"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nabc", 0}}, true},
    {"/slow", {{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", 600}}, false},
    {"/headfirst", {{"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n", 0}, {"body", 400}}, false},
    {"/trickle",
     {{"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n", 0},
      {"a", 100},
      {"b", 100},
      {"c", 100},
      {"d", 100},
      {"e", 100}},
     false},
    {"/404",
     {{"HTTP/1.1 404 Not Found\r\nContent-Type: application/json\r\nContent-Length: 26\r\n"
       "\r\n{\"error\":{\"message\":\"no\"}}",
       0}},
     false},
    {"/500",
     {{"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 4\r\n\r\n", 0}, {"oops", 20}},
     false},
    {"/malformed", {{"HTTP/1.1 2OO OK\r\nContent-Length: 2\r\n\r\nok", 0}}, false},
    {"/http10", {{"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", 0}}, false},
    {"/conn-close",
     {{"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok", 0}},
     false},
    {"/extra", {{"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokGARBAGE", 0}}, false},
    {"/empty", {{"HTTP/1.1 204 No Content\r\n\r\n", 0}}, false},
    {"/hang", {{NULL, 0}}, false},
    {"/silent-close", {{NULL, 0}}, true},
    /* dynamic: /big (1 MiB), /echo (length and sum of the request body), /early (answers
     * before reading the body) */
};

struct srv {
    int lfd;
    int port;
    pthread_t acceptor;
    pthread_mutex_t mu;
    int accepted;
    int requests;
    char last_head[8192];
    size_t last_body_len;
    char last_body[256]; /* the first bytes */
    pthread_t threads[256];
    int fds[256];
    int n_threads;
};

struct conn_arg {
    struct srv *s;
    int fd;
    int slot;
};

static void send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0)
            return;
        p += w;
        n -= (size_t)w;
    }
}

static void sleep_ms(int ms)
{
    if (ms > 0)
        usleep((useconds_t)ms * 1000);
}

/* Read bytes until the head is complete; returns its length (0 on EOF). */
static size_t read_head(int fd, char *buf, size_t cap, size_t *have)
{
    for (;;) {
        char *end = NULL;
        if (*have >= 4) {
            buf[*have] = '\0';
            end = strstr(buf, "\r\n\r\n");
        }
        if (end)
            return (size_t)(end - buf) + 4;
        if (*have + 1 >= cap)
            return 0;
        ssize_t r = read(fd, buf + *have, cap - 1 - *have);
        if (r <= 0)
            return 0;
        *have += (size_t)r;
    }
}

static size_t content_length(const char *head)
{
    const char *p = strcasestr(head, "\r\ncontent-length:");
    return p ? (size_t)strtoull(p + 17, NULL, 10) : 0;
}

/* Read and discard (or sum) `len` body bytes of which `have` are already in `buf`. */
static bool read_body(struct srv *s, int fd, const char *buf, size_t have, size_t len,
                      uint32_t *sum)
{
    char tmp[65536];
    size_t got = 0;
    uint32_t acc = 0;
    size_t first = SG_MIN(have, len);
    for (size_t i = 0; i < first; i++)
        acc += (unsigned char)buf[i];
    pthread_mutex_lock(&s->mu);
    memcpy(s->last_body, buf, SG_MIN(first, sizeof s->last_body - 1));
    s->last_body[SG_MIN(first, sizeof s->last_body - 1)] = '\0';
    pthread_mutex_unlock(&s->mu);
    got = first;
    while (got < len) {
        ssize_t r = read(fd, tmp, SG_MIN(sizeof tmp, len - got));
        if (r <= 0)
            return false;
        for (ssize_t i = 0; i < r; i++)
            acc += (unsigned char)tmp[i];
        got += (size_t)r;
    }
    if (sum)
        *sum = acc;
    return true;
}

static void *serve_conn(void *arg)
{
    struct conn_arg *ca = arg;
    struct srv *s = ca->s;
    int fd = ca->fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    static const size_t cap = 16384;
    char *buf = malloc(cap);
    size_t have = 0;
    for (;;) {
        size_t hl = read_head(fd, buf, cap, &have);
        if (!hl)
            break;
        char head[8192];
        size_t n = SG_MIN(hl, sizeof head - 1);
        memcpy(head, buf, n);
        head[n] = '\0';
        size_t clen = content_length(head);
        char path[256] = "";
        sscanf(head, "%*s %255s", path);
        char *q = strchr(path, '?');
        if (q)
            *q = '\0';
        pthread_mutex_lock(&s->mu);
        s->requests++;
        memcpy(s->last_head, head, n + 1);
        s->last_body_len = clen;
        pthread_mutex_unlock(&s->mu);
        size_t rest = have - hl;
        bool ok = true;
        if (strcmp(path, "/early") == 0) {
            static const char r413[] =
                "HTTP/1.1 413 Payload Too Large\r\nContent-Length: 7\r\n\r\ntoo big";
            send_all(fd, r413, sizeof r413 - 1);
            ok = read_body(s, fd, buf + hl, rest, clen, NULL);
            have = 0;
            if (!ok)
                break;
            continue;
        }
        uint32_t sum = 0;
        ok = read_body(s, fd, buf + hl, rest, clen, &sum);
        /* Pipelined bytes beyond the body are not expected from this client. */
        have = 0;
        if (!ok)
            break;
        if (strcmp(path, "/big") == 0) {
            char hdr[128];
            int hn =
                snprintf(hdr, sizeof hdr, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n", BIG_LEN);
            send_all(fd, hdr, (size_t)hn);
            char *big = malloc(BIG_LEN);
            for (int i = 0; i < BIG_LEN; i++)
                big[i] = (char)('a' + i % 26);
            for (size_t off = 0; off < BIG_LEN; off += 65536)
                send_all(fd, big + off, SG_MIN((size_t)65536, BIG_LEN - off));
            free(big);
            continue;
        }
        if (strcmp(path, "/echo") == 0) {
            char body[64], out[160];
            int bn = snprintf(body, sizeof body, "len=%zu sum=%u", clen, sum);
            int on = snprintf(out, sizeof out, "HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s",
                              bn, body);
            send_all(fd, out, (size_t)on);
            continue;
        }
        const struct scenario *sc = NULL;
        for (size_t i = 0; i < SG_ARRAY_LEN(scenarios); i++)
            if (strcmp(scenarios[i].path, path) == 0)
                sc = &scenarios[i];
        if (!sc) {
            static const char r[] = "HTTP/1.1 599 Unknown\r\nContent-Length: 0\r\n\r\n";
            send_all(fd, r, sizeof r - 1);
            continue;
        }
        for (const struct step *st = sc->steps; st->data; st++) {
            sleep_ms(st->delay_ms);
            send_all(fd, st->data, strlen(st->data));
        }
        if (sc->close_after)
            break;
    }
    free(buf);
    pthread_mutex_lock(&s->mu);
    s->fds[ca->slot] = -1;
    close(fd);
    pthread_mutex_unlock(&s->mu);
    free(ca);
    return NULL;
}

static void *accept_loop(void *arg)
{
    struct srv *s = arg;
    for (;;) {
        int fd = accept(s->lfd, NULL, NULL);
        if (fd < 0)
            return NULL;
        pthread_mutex_lock(&s->mu);
        if (s->n_threads == (int)SG_ARRAY_LEN(s->threads)) {
            pthread_mutex_unlock(&s->mu);
            close(fd);
            continue;
        }
        s->accepted++;
        struct conn_arg *ca = malloc(sizeof *ca);
        *ca = (struct conn_arg){s, fd, s->n_threads};
        s->fds[s->n_threads] = fd;
        pthread_create(&s->threads[s->n_threads], NULL, serve_conn, ca);
        s->n_threads++;
        pthread_mutex_unlock(&s->mu);
    }
}

static int listen_on(int backlog, int *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(fd, backlog), 0);
    socklen_t al = sizeof a;
    getsockname(fd, (struct sockaddr *)&a, &al);
    *port = ntohs(a.sin_port);
    return fd;
}

static void srv_start(struct srv *s)
{
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    s->lfd = listen_on(128, &s->port);
    pthread_create(&s->acceptor, NULL, accept_loop, s);
}

static void srv_stop(struct srv *s)
{
    shutdown(s->lfd, SHUT_RDWR); /* wakes accept() on Linux */
    pthread_join(s->acceptor, NULL);
    close(s->lfd);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->n_threads; i++)
        if (s->fds[i] >= 0)
            shutdown(s->fds[i], SHUT_RDWR);
    int n = s->n_threads;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < n; i++)
        pthread_join(s->threads[i], NULL);
    pthread_mutex_destroy(&s->mu);
}

static int srv_get(struct srv *s, int *field)
{
    pthread_mutex_lock(&s->mu);
    int v = *field;
    pthread_mutex_unlock(&s->mu);
    return v;
}

/* ---- the client side ---- */

struct fx {
    uv_loop_t loop;
    struct srv srv;
    struct sg_upstream *u;
    struct sg_upstream_headers *hdrs;
    uv_timer_t tick;
};

struct ctx {
    struct fx *f;
    struct sg_upstream *u;
    struct sg_upstream_call *call;
    char url[256];
    int heads, bodies, dones;
    int status;
    struct sg_buf body;
    char headers[2048];
    struct sg_upstream_result r;
    char detail[256];
    int cancel_at_body; /* cancel inside the n-th on_body */
    bool cancel_in_head;
    bool pause_in_head;
    struct ctx *then; /* started from on_done */
    struct sg_upstream_request then_req;
};

static void on_head(void *ud, int status, const struct sg_http_header *h, size_t n)
{
    struct ctx *x = ud;
    x->heads++;
    x->status = status;
    size_t off = 0;
    for (size_t i = 0; i < n; i++)
        off += (size_t)snprintf(x->headers + off, sizeof x->headers - off, "%.*s: %.*s\n",
                                (int)h[i].name.n, h[i].name.p, (int)h[i].value.n, h[i].value.p);
    if (x->cancel_in_head)
        sg_upstream_cancel(x->call);
    if (x->pause_in_head)
        sg_upstream_pause(x->call, true);
}

static void on_body(void *ud, const char *data, size_t len)
{
    struct ctx *x = ud;
    x->bodies++;
    assert_int_equal(sg_buf_append(&x->body, data, len), 0);
    if (x->cancel_at_body && x->bodies == x->cancel_at_body)
        sg_upstream_cancel(x->call);
}

static void on_done(void *ud, const struct sg_upstream_result *r);
static const struct sg_upstream_handlers handlers_done = {on_head, on_body, on_done};

static void on_done(void *ud, const struct sg_upstream_result *r)
{
    struct ctx *x = ud;
    x->dones++;
    x->r = *r;
    snprintf(x->detail, sizeof x->detail, "%s", r->detail ? r->detail : "");
    x->r.detail = r->detail ? x->detail : NULL;
    if (x->then)
        x->then->call = sg_upstream_start(x->then->u, &x->then_req, &handlers_done, x->then);
}

static void ctx_init(struct ctx *x, struct fx *f, const char *path)
{
    memset(x, 0, sizeof *x);
    x->f = f;
    x->u = f->u;
    sg_buf_init(&x->body, 0);
    snprintf(x->url, sizeof x->url, "http://127.0.0.1:%d%s", f->srv.port, path);
}

static void ctx_dispose(struct ctx *x)
{
    sg_buf_dispose(&x->body);
}

static const char req_body[] = "{\"model\":\"m\",\"messages\":[]}";

static struct sg_upstream_request req_of(struct fx *f, struct ctx *x)
{
    return (struct sg_upstream_request){
        .url = x->url,
        .body = req_body,
        .body_len = sizeof req_body - 1,
        .headers = f->hdrs,
        .timeout_ms = 5000,
    };
}

static void on_tick(uv_timer_t *t)
{
    SG_UNUSED(t);
}

/* Run the loop until *flag >= want (or max_ms passed); a ticking timer keeps it turning. */
static void spin(struct fx *f, int *flag, int want, uint64_t max_ms)
{
    uint64_t end = sg_now_ms() + max_ms;
    uv_timer_start(&f->tick, on_tick, 5, 5);
    while ((!flag || *flag < want) && sg_now_ms() < end)
        uv_run(&f->loop, UV_RUN_ONCE);
    uv_timer_stop(&f->tick);
}

static void start(struct ctx *x, const struct sg_upstream_request *r)
{
    x->call = sg_upstream_start(x->u, r, &handlers_done, x);
}

/* One call from start to on_done. */
static void run_call(struct fx *f, struct ctx *x, const struct sg_upstream_request *r)
{
    start(x, r);
    assert_int_equal(x->dones, 0); /* never synchronously */
    spin(f, &x->dones, 1, 5000);
    assert_int_equal(x->dones, 1);
}

static struct fx *fx_new(const struct sg_h1_limits *lim, bool curl)
{
    struct fx *f = calloc(1, sizeof *f);
    uv_loop_init(&f->loop);
    uv_timer_init(&f->loop, &f->tick);
    srv_start(&f->srv);
    if (curl)
        setenv("SLOGATE_UPSTREAM", "curl", 1);
    f->u = sg_upstream_new_with(&f->loop, lim);
    unsetenv("SLOGATE_UPSTREAM");
    const char *lines[] = {"Content-Type: application/json", "Authorization: Bearer sk-test",
                           "Expect:"};
    f->hdrs = sg_upstream_headers_new(lines, 3);
    return f;
}

static void fx_free(struct fx *f)
{
    if (f->u)
        sg_upstream_free(f->u);
    uv_close((uv_handle_t *)&f->tick, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    srv_stop(&f->srv);
    sg_upstream_headers_free(f->hdrs);
    free(f);
}

static uint64_t opened(struct fx *f)
{
    return sg_upstream_connections_opened(f->u);
}

/* A call on a fresh fixture; returns the fixture for more checks. */
static void simple(struct fx *f, struct ctx *x, const char *path)
{
    ctx_init(x, f, path);
    struct sg_upstream_request r = req_of(f, x);
    run_call(f, x, &r);
}

/* ---- tests ---- */

static void test_content_length(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    simple(f, &x, "/cl");
    assert_int_equal(x.r.error, 0);
    assert_int_equal(x.r.status, 200);
    assert_int_equal(x.heads, 1);
    assert_string_equal(x.body.data, "hello");
    assert_non_null(strstr(x.headers, "X-Test: a\n"));
    assert_non_null(strstr(x.headers, "Content-Type: text/plain\n"));
    assert_false(x.r.reused);
    assert_true(x.r.total_us > 0);
    assert_true(x.r.first_byte_us <= x.r.total_us);
    assert_int_equal(sg_upstream_active(f->u), 0);
    assert_int_equal(opened(f), 1);
    ctx_dispose(&x);
    fx_free(f);
}

static void test_request_bytes(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    ctx_init(&x, f, "/echo?x=1");
    struct sg_upstream_request r = req_of(f, &x);
    r.extra[0] = "X-Request-Id: abc";
    r.extra[1] = "X-Empty:"; /* curl's "do not send" */
    r.n_extra = 2;
    run_call(f, &x, &r);
    assert_int_equal(x.r.error, 0);
    char want[64];
    uint32_t sum = 0;
    for (size_t i = 0; i < sizeof req_body - 1; i++)
        sum += (unsigned char)req_body[i];
    snprintf(want, sizeof want, "len=%zu sum=%u", sizeof req_body - 1, sum);
    assert_string_equal(x.body.data, want);
    char host[64];
    snprintf(host, sizeof host, "\r\nHost: 127.0.0.1:%d\r\n", f->srv.port);
    const char *h = f->srv.last_head;
    assert_true(strncmp(h, "POST /echo?x=1 HTTP/1.1\r\n", 25) == 0);
    assert_non_null(strstr(h, host));
    assert_non_null(strstr(h, "\r\nContent-Length: 27\r\n"));
    assert_non_null(strstr(h, "\r\nContent-Type: application/json\r\n"));
    assert_non_null(strstr(h, "\r\nAuthorization: Bearer sk-test\r\n"));
    assert_non_null(strstr(h, "\r\nX-Request-Id: abc\r\n"));
    assert_null(strcasestr(h, "expect"));
    assert_null(strcasestr(h, "x-empty"));
    assert_null(strcasestr(h, "transfer-encoding"));
    assert_string_equal(f->srv.last_body, req_body);
    ctx_dispose(&x);
    fx_free(f);
}

static void test_chunked_awkward_splits(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    simple(f, &x, "/chunked");
    assert_int_equal(x.r.error, 0);
    assert_int_equal(x.r.status, 200);
    assert_string_equal(x.body.data, "hello0123456789abcdef");
    assert_true(x.bodies >= 2);
    /* A clean chunked end keeps the connection. */
    struct ctx y;
    simple(f, &y, "/cl");
    assert_true(y.r.reused);
    assert_int_equal(opened(f), 1);
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static void test_read_until_close(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    simple(f, &x, "/eof");
    assert_int_equal(x.r.error, 0);
    assert_int_equal(x.r.status, 200);
    assert_string_equal(x.body.data, "part1part2");
    simple(f, &y, "/cl"); /* that connection was not pooled */
    assert_int_equal(y.r.error, 0);
    assert_false(y.r.reused);
    assert_int_equal(opened(f), 2);
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static void test_interim_responses_skipped(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    simple(f, &x, "/interim");
    assert_int_equal(x.r.error, 0);
    assert_int_equal(x.heads, 1);
    assert_int_equal(x.status, 200);
    assert_string_equal(x.body.data, "ok");
    assert_null(strstr(x.headers, "Link"));
    ctx_dispose(&x);
    fx_free(f);
}

static void test_keepalive_reuse(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    for (int i = 0; i < 20; i++) {
        struct ctx x;
        simple(f, &x, "/cl");
        assert_int_equal(x.r.error, 0);
        assert_string_equal(x.body.data, "hello");
        assert_int_equal(x.r.reused, i > 0);
        if (i > 0)
            assert_int_equal(x.r.connect_us, 0);
        ctx_dispose(&x);
    }
    assert_int_equal(opened(f), 1);
    assert_int_equal(srv_get(&f->srv, &f->srv.accepted), 1);
    assert_int_equal(srv_get(&f->srv, &f->srv.requests), 20);
    assert_int_equal(sg_h1_idle(sg_upstream_h1(f->u)), 1);
    fx_free(f);
}

static void test_concurrent_calls_share_the_pool(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    enum { N = 8 };
    for (int round = 0; round < 2; round++) {
        struct ctx x[N];
        int done = 0;
        for (int i = 0; i < N; i++) {
            ctx_init(&x[i], f, "/cl");
            struct sg_upstream_request r = req_of(f, &x[i]);
            start(&x[i], &r);
        }
        assert_int_equal(sg_upstream_active(f->u), N);
        uint64_t end = sg_now_ms() + 5000;
        while (sg_now_ms() < end) {
            done = 0;
            for (int i = 0; i < N; i++)
                done += x[i].dones;
            if (done == N)
                break;
            spin(f, NULL, 0, 5);
        }
        assert_int_equal(done, N);
        for (int i = 0; i < N; i++) {
            assert_int_equal(x[i].r.error, 0);
            assert_int_equal(x[i].r.reused, round == 1);
            ctx_dispose(&x[i]);
        }
        assert_int_equal(opened(f), N);
        assert_int_equal(sg_h1_idle(sg_upstream_h1(f->u)), N);
    }
    fx_free(f);
}

/* The server closes right after answering; the next call, started from on_done, takes the
 * pooled connection before the close is seen and must be retried on a new one. */
static void test_dead_pooled_connection_retried(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    ctx_init(&x, f, "/ka-close");
    ctx_init(&y, f, "/cl");
    x.then = &y;
    x.then_req = req_of(f, &y);
    struct sg_upstream_request r = req_of(f, &x);
    start(&x, &r);
    spin(f, &y.dones, 1, 5000);
    assert_int_equal(x.r.error, 0);
    assert_string_equal(x.body.data, "ok");
    assert_int_equal(y.dones, 1);
    assert_int_equal(y.r.error, 0);
    assert_string_equal(y.body.data, "hello");
    assert_false(y.r.reused); /* carried by the fresh connection */
    assert_int_equal(opened(f), 2);
    assert_int_equal(sg_h1_retries(sg_upstream_h1(f->u)), 1);
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

/* The same close noticed while the connection sits idle: it leaves the pool by itself. */
static void test_idle_close_noticed(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    simple(f, &x, "/ka-close");
    assert_int_equal(x.r.error, 0);
    spin(f, NULL, 0, 100);
    assert_int_equal(sg_h1_idle(sg_upstream_h1(f->u)), 0);
    simple(f, &y, "/cl");
    assert_int_equal(y.r.error, 0);
    assert_false(y.r.reused);
    assert_int_equal(opened(f), 2);
    assert_int_equal(sg_h1_retries(sg_upstream_h1(f->u)), 0);
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

/* A fresh connection closed without an answer is an error, not a retry. */
static void test_fresh_connection_closed_is_not_retried(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    simple(f, &x, "/silent-close");
    assert_int_equal(x.r.error, SG_ECLOSED);
    assert_int_equal(x.r.status, 0);
    assert_int_equal(x.heads, 0);
    assert_non_null(x.r.detail);
    assert_int_equal(opened(f), 1);
    assert_int_equal(srv_get(&f->srv, &f->srv.requests), 1);
    assert_int_equal(sg_h1_retries(sg_upstream_h1(f->u)), 0);
    ctx_dispose(&x);
    fx_free(f);
}

static void test_close_mid_body(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    simple(f, &x, "/midbody");
    assert_int_equal(x.r.error, SG_ECLOSED);
    assert_int_equal(x.r.status, 200);
    assert_int_equal(x.heads, 1);
    assert_string_equal(x.body.data, "only-part");
    assert_non_null(strstr(x.r.detail, "middle of the response"));
    simple(f, &y, "/midchunk");
    assert_int_equal(y.r.error, SG_ECLOSED);
    assert_string_equal(y.body.data, "abc");
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static void test_connect_refused(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    int port;
    int fd = listen_on(1, &port);
    close(fd); /* nobody listens there now */
    struct ctx x;
    ctx_init(&x, f, "/cl");
    snprintf(x.url, sizeof x.url, "http://127.0.0.1:%d/v1", port);
    struct sg_upstream_request r = req_of(f, &x);
    run_call(f, &x, &r);
    assert_int_equal(x.r.error, SG_ECONNECT);
    assert_int_equal(x.heads, 0);
    assert_non_null(strstr(x.r.detail, "could not connect"));
    ctx_dispose(&x);
    fx_free(f);
}

static void test_first_byte_timeout(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    ctx_init(&x, f, "/slow");
    struct sg_upstream_request r = req_of(f, &x);
    r.first_byte_timeout_ms = 100;
    run_call(f, &x, &r);
    assert_int_equal(x.r.error, SG_ETIMEOUT);
    assert_true(x.r.first_byte_timeout);
    assert_true(x.r.total_us >= 90000 && x.r.total_us < 500000);
    assert_int_equal(x.heads, 0);
    assert_int_equal(sg_upstream_active(f->u), 0);
    ctx_dispose(&x);
    fx_free(f);
}

/* For streams the clock stops at the first body byte, not at the head. */
static void test_first_byte_is_body(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    ctx_init(&x, f, "/headfirst");
    struct sg_upstream_request r = req_of(f, &x);
    r.first_byte_timeout_ms = 150;
    r.first_byte_is_body = true;
    run_call(f, &x, &r);
    assert_int_equal(x.r.error, SG_ETIMEOUT);
    assert_true(x.r.first_byte_timeout);
    assert_int_equal(x.heads, 1);
    assert_int_equal(x.r.status, 200);

    ctx_init(&y, f, "/headfirst");
    r = req_of(f, &y);
    r.first_byte_timeout_ms = 150;
    run_call(f, &y, &r);
    assert_int_equal(y.r.error, 0);
    assert_string_equal(y.body.data, "body");
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static void test_total_timeout(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    ctx_init(&x, f, "/trickle");
    struct sg_upstream_request r = req_of(f, &x);
    r.timeout_ms = 250;
    run_call(f, &x, &r);
    assert_int_equal(x.r.error, SG_ETIMEOUT);
    assert_false(x.r.first_byte_timeout);
    assert_int_equal(x.r.status, 200);
    assert_true(x.body.len >= 1 && x.body.len < 10);
    assert_true(x.r.total_us >= 240000 && x.r.total_us < 1000000);
    ctx_dispose(&x);
    fx_free(f);
}

static void test_cancel_inside_on_body(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    ctx_init(&x, f, "/big");
    x.cancel_at_body = 1;
    struct sg_upstream_request r = req_of(f, &x);
    start(&x, &r);
    spin(f, NULL, 0, 300);
    assert_int_equal(x.bodies, 1);
    assert_int_equal(x.dones, 0);
    assert_int_equal(sg_upstream_active(f->u), 0);
    assert_int_equal(sg_h1_idle(sg_upstream_h1(f->u)), 0); /* closed, not pooled dirty */
    simple(f, &y, "/cl");
    assert_int_equal(y.r.error, 0);
    assert_false(y.r.reused);
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static void test_cancel_in_head_and_while_connecting(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    ctx_init(&x, f, "/cl");
    x.cancel_in_head = true;
    struct sg_upstream_request r = req_of(f, &x);
    start(&x, &r);
    spin(f, NULL, 0, 200);
    assert_int_equal(x.heads, 1);
    assert_int_equal(x.bodies, 0);
    assert_int_equal(x.dones, 0);

    ctx_init(&y, f, "/cl");
    r = req_of(f, &y);
    start(&y, &r);
    sg_upstream_cancel(y.call); /* still connecting */
    spin(f, NULL, 0, 200);
    assert_int_equal(y.heads + y.bodies + y.dones, 0);
    assert_int_equal(sg_upstream_active(f->u), 0);
    assert_int_equal(sg_h1_idle(sg_upstream_h1(f->u)), 0);
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static void test_error_statuses_delivered(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    simple(f, &x, "/404");
    assert_int_equal(x.r.error, 0);
    assert_int_equal(x.r.status, 404);
    assert_string_equal(x.body.data, "{\"error\":{\"message\":\"no\"}}");
    simple(f, &y, "/500");
    assert_int_equal(y.r.error, 0);
    assert_int_equal(y.r.status, 500);
    assert_string_equal(y.body.data, "oops");
    assert_true(y.r.reused);
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static void test_big_body_streams(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    simple(f, &x, "/big");
    assert_int_equal(x.r.error, 0);
    assert_int_equal(x.body.len, BIG_LEN);
    assert_true(x.bodies > 1);
    for (size_t i = 0; i < BIG_LEN; i += 4099)
        assert_int_equal(x.body.data[i], 'a' + (int)(i % 26));
    ctx_dispose(&x);
    fx_free(f);
}

static char *big_request_body(size_t n, uint32_t *sum)
{
    char *b = malloc(n);
    uint32_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        b[i] = (char)('0' + i % 10);
        acc += (unsigned char)b[i];
    }
    *sum = acc;
    return b;
}

/* 4 MiB does not fit the socket buffer: part goes by uv_try_write, the rest by uv_write. */
static void test_big_request_body(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    uint32_t sum;
    size_t n = 4u << 20;
    char *body = big_request_body(n, &sum);
    struct ctx x;
    ctx_init(&x, f, "/echo");
    struct sg_upstream_request r = req_of(f, &x);
    r.body = body;
    r.body_len = n;
    run_call(f, &x, &r);
    assert_int_equal(x.r.error, 0);
    char want[64];
    snprintf(want, sizeof want, "len=%zu sum=%u", n, sum);
    assert_string_equal(x.body.data, want);
    free(body);
    ctx_dispose(&x);
    fx_free(f);
}

/* The answer arrives before the request is fully written: delivered, connection not pooled. */
static void test_response_before_request_written(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    uint32_t sum;
    size_t n = 8u << 20;
    char *body = big_request_body(n, &sum);
    struct ctx x;
    ctx_init(&x, f, "/early");
    struct sg_upstream_request r = req_of(f, &x);
    r.body = body;
    r.body_len = n;
    run_call(f, &x, &r);
    assert_int_equal(x.r.error, 0);
    assert_int_equal(x.r.status, 413);
    assert_string_equal(x.body.data, "too big");
    free(body); /* the caller may free the body once on_done ran */
    spin(f, NULL, 0, 50);
    ctx_dispose(&x);
    fx_free(f);
}

static void test_malformed_response(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    simple(f, &x, "/malformed");
    assert_int_equal(x.r.error, SG_EPROTO);
    assert_non_null(x.r.detail);
    assert_non_null(strstr(x.r.detail, "malformed response"));
    assert_int_equal(x.heads, 0);
    ctx_dispose(&x);
    fx_free(f);
}

/* Responses that must not leave their connection in the pool. */
static void test_not_reusable_responses(void **state)
{
    SG_UNUSED(state);
    static const char *const paths[] = {"/http10", "/conn-close", "/extra"};
    for (size_t i = 0; i < SG_ARRAY_LEN(paths); i++) {
        struct fx *f = fx_new(NULL, false);
        struct ctx x, y;
        simple(f, &x, paths[i]);
        assert_int_equal(x.r.error, 0);
        assert_string_equal(x.body.data, "ok");
        assert_int_equal(sg_h1_idle(sg_upstream_h1(f->u)), 0);
        simple(f, &y, "/cl");
        assert_int_equal(y.r.error, 0);
        assert_false(y.r.reused);
        assert_int_equal(opened(f), 2);
        ctx_dispose(&x);
        ctx_dispose(&y);
        fx_free(f);
    }
}

static void test_no_content(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    simple(f, &x, "/empty");
    assert_int_equal(x.r.error, 0);
    assert_int_equal(x.r.status, 204);
    assert_int_equal(x.bodies, 0);
    simple(f, &y, "/cl");
    assert_true(y.r.reused);
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static void test_name_resolution(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    ctx_init(&x, f, "/cl");
    snprintf(x.url, sizeof x.url, "http://localhost:%d/cl", f->srv.port);
    struct sg_upstream_request r = req_of(f, &x);
    run_call(f, &x, &r);
    assert_int_equal(x.r.error, 0); /* ::1 refused first, if tried, then 127.0.0.1 */
    assert_string_equal(x.body.data, "hello");
    ctx_init(&y, f, "/cl");
    snprintf(y.url, sizeof y.url, "http://no-such-host.invalid:%d/cl", f->srv.port);
    r = req_of(f, &y);
    run_call(f, &y, &r);
    assert_int_equal(y.r.error, SG_ECONNECT);
    assert_non_null(strstr(y.r.detail, "resolve"));
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static struct ctx *resume_ctx;
static void on_resume(uv_timer_t *t)
{
    SG_UNUSED(t);
    assert_int_equal(resume_ctx->bodies, 0);
    sg_upstream_pause(resume_ctx->call, false);
}

/* Pause in on_head, resume 100 ms later: the rest of the answer arrives, and the connection
 * goes back to the pool. */
static void pause_in_head_then_resume(const char *path, int want_status, const char *want_body)
{
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y;
    ctx_init(&x, f, path);
    x.pause_in_head = true;
    struct sg_upstream_request r = req_of(f, &x);
    start(&x, &r);
    uv_timer_t t;
    uv_timer_init(&f->loop, &t);
    resume_ctx = &x;
    uv_timer_start(&t, on_resume, 100, 0);
    spin(f, &x.dones, 1, 3000);
    assert_int_equal(x.dones, 1);
    assert_int_equal(x.r.error, 0);
    assert_int_equal(x.r.status, want_status);
    assert_string_equal(x.body.data ? x.body.data : "", want_body);
    assert_true(x.r.total_us >= 90000);
    uv_close((uv_handle_t *)&t, NULL);
    simple(f, &y, "/cl"); /* the paused connection went back to the pool cleanly */
    assert_true(y.r.reused);
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static void test_pause_and_resume(void **state)
{
    SG_UNUSED(state);
    pause_in_head_then_resume("/cl", 200, "hello");
}

/* Nothing is left to read after a 204 head, and the server keeps the connection open: the
 * resume alone must finish the response (it used to wait for a byte until the timeout). */
static void test_pause_and_resume_no_body(void **state)
{
    SG_UNUSED(state);
    pause_in_head_then_resume("/empty", 204, "");
}

static void test_free_with_calls_in_flight(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x, y, z;
    simple(f, &z, "/cl"); /* leaves one idle connection */
    ctx_init(&x, f, "/hang");
    ctx_init(&y, f, "/cl");
    snprintf(y.url, sizeof y.url, "http://localhost:%d/cl", f->srv.port); /* resolving */
    struct sg_upstream_request r = req_of(f, &x);
    start(&x, &r);
    spin(f, NULL, 0, 50);
    r = req_of(f, &y);
    start(&y, &r);
    sg_upstream_free(f->u);
    f->u = NULL;
    spin(f, NULL, 0, 50);
    assert_int_equal(x.dones + y.dones, 0);
    ctx_dispose(&x);
    ctx_dispose(&y);
    ctx_dispose(&z);
    fx_free(f);
}

static void test_idle_timeout(void **state)
{
    SG_UNUSED(state);
    struct sg_h1_limits lim = {.idle_timeout_ms = 100};
    struct fx *f = fx_new(&lim, false);
    struct ctx x, y;
    simple(f, &x, "/cl");
    assert_int_equal(sg_h1_idle(sg_upstream_h1(f->u)), 1);
    spin(f, NULL, 0, 300);
    assert_int_equal(sg_h1_idle(sg_upstream_h1(f->u)), 0);
    simple(f, &y, "/cl");
    assert_false(y.r.reused);
    assert_int_equal(opened(f), 2);
    ctx_dispose(&x);
    ctx_dispose(&y);
    fx_free(f);
}

static void test_bad_extra_header_fails_later(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    ctx_init(&x, f, "/cl");
    struct sg_upstream_request r = req_of(f, &x);
    r.extra[0] = "X-Evil: a\r\nX-Injected: b";
    r.n_extra = 1;
    run_call(f, &x, &r); /* asserts on_done did not run inside start */
    assert_int_equal(x.r.error, SG_EINVAL);
    assert_int_equal(srv_get(&f->srv, &f->srv.requests), 0);
    ctx_dispose(&x);
    fx_free(f);
}

/* A listener whose accept queue is full drops SYNs: the connect hangs until its deadline. */
static void test_connect_timeout(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    int port;
    int lfd = listen_on(0, &port);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
        inet_pton(AF_INET, "127.0.0.1", &a.sin_addr);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(50000);
    struct ctx x;
    ctx_init(&x, f, "/cl");
    snprintf(x.url, sizeof x.url, "http://127.0.0.1:%d/cl", port);
    struct sg_upstream_request r = req_of(f, &x);
    r.connect_timeout_ms = 150;
    r.timeout_ms = 2000;
    run_call(f, &x, &r);
    assert_int_equal(x.r.error, SG_ETIMEOUT);
    assert_false(x.r.first_byte_timeout);
    assert_non_null(strstr(x.r.detail, "connecting"));
    assert_true(x.r.total_us >= 140000 && x.r.total_us < 1000000);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
    ctx_dispose(&x);
    fx_free(f);
}

/* https:// goes to curl even when the own client is on. */
static void test_https_goes_to_curl(void **state)
{
    SG_UNUSED(state);
    struct fx *f = fx_new(NULL, false);
    struct ctx x;
    ctx_init(&x, f, "/cl");
    snprintf(x.url, sizeof x.url, "https://127.0.0.1:%d/cl", f->srv.port);
    struct sg_upstream_request r = req_of(f, &x);
    r.timeout_ms = 2000;
    run_call(f, &x, &r);
    assert_int_not_equal(x.r.error, 0); /* the plain server cannot speak TLS */
    assert_int_equal(sg_h1_connections_opened(sg_upstream_h1(f->u)), 0);
    ctx_dispose(&x);
    fx_free(f);
}

/* Both engines report the same things for the same server scripts. */
static void test_engines_agree(void **state)
{
    SG_UNUSED(state);
    static const struct {
        const char *path;
        int error, status;
        const char *body;
    } cases[] = {
        {"/cl", 0, 200, "hello"},
        {"/chunked", 0, 200, "hello0123456789abcdef"},
        {"/eof", 0, 200, "part1part2"},
        {"/interim", 0, 200, "ok"},
        {"/404", 0, 404, "{\"error\":{\"message\":\"no\"}}"},
        {"/500", 0, 500, "oops"},
        {"/midbody", SG_ECLOSED, 200, "only-part"},
        {"/silent-close", SG_ECLOSED, 0, ""},
        {"/empty", 0, 204, ""},
    };
    for (int engine = 0; engine < 2; engine++) {
        struct fx *f = fx_new(NULL, engine == 1);
        assert_true((sg_upstream_h1(f->u) == NULL) == (engine == 1));
        for (size_t i = 0; i < SG_ARRAY_LEN(cases); i++) {
            struct ctx x;
            simple(f, &x, cases[i].path);
            if (x.r.error != cases[i].error || x.r.status != cases[i].status ||
                strcmp(x.body.data ? x.body.data : "", cases[i].body) != 0)
                fail_msg("%s engine, %s: error %d status %d body '%s' (%s)", engine ? "curl" : "h1",
                         cases[i].path, x.r.error, x.r.status, x.body.data ? x.body.data : "",
                         x.r.detail ? x.r.detail : "");
            ctx_dispose(&x);
        }
        fx_free(f);
    }
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    sg_upstream_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_content_length),
        cmocka_unit_test(test_request_bytes),
        cmocka_unit_test(test_chunked_awkward_splits),
        cmocka_unit_test(test_read_until_close),
        cmocka_unit_test(test_interim_responses_skipped),
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_concurrent_calls_share_the_pool),
        cmocka_unit_test(test_dead_pooled_connection_retried),
        cmocka_unit_test(test_idle_close_noticed),
        cmocka_unit_test(test_fresh_connection_closed_is_not_retried),
        cmocka_unit_test(test_close_mid_body),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_first_byte_timeout),
        cmocka_unit_test(test_first_byte_is_body),
        cmocka_unit_test(test_total_timeout),
        cmocka_unit_test(test_cancel_inside_on_body),
        cmocka_unit_test(test_cancel_in_head_and_while_connecting),
        cmocka_unit_test(test_error_statuses_delivered),
        cmocka_unit_test(test_big_body_streams),
        cmocka_unit_test(test_big_request_body),
        cmocka_unit_test(test_response_before_request_written),
        cmocka_unit_test(test_malformed_response),
        cmocka_unit_test(test_not_reusable_responses),
        cmocka_unit_test(test_no_content),
        cmocka_unit_test(test_name_resolution),
        cmocka_unit_test(test_pause_and_resume),
        cmocka_unit_test(test_pause_and_resume_no_body),
        cmocka_unit_test(test_free_with_calls_in_flight),
        cmocka_unit_test(test_idle_timeout),
        cmocka_unit_test(test_bad_extra_header_fails_later),
        cmocka_unit_test(test_connect_timeout),
        cmocka_unit_test(test_https_goes_to_curl),
        cmocka_unit_test(test_engines_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
