/*
 * The upstream client, one call's exchange: the request it writes, the responses it reads
 * (Content-Length, chunked, until close, interim heads, 204, large bodies both ways) and how a
 * broken exchange ends; then which engine carries a call and that both engines report the same.
 *
 * Against the scripted server on loopback (upstream_fixture.h). Tests are written as data where
 * they can: the server's script, then what the client reported.
 */
#include "upstream_fixture.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cmocka.h>

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
        {"/status600", SG_EPROTO, 0, ""}, /* no status outside 100-599 reaches the owner */
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
        cmocka_unit_test(test_close_mid_body),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_error_statuses_delivered),
        cmocka_unit_test(test_big_body_streams),
        cmocka_unit_test(test_big_request_body),
        cmocka_unit_test(test_response_before_request_written),
        cmocka_unit_test(test_malformed_response),
        cmocka_unit_test(test_no_content),
        cmocka_unit_test(test_bad_extra_header_fails_later),
        cmocka_unit_test(test_https_goes_to_curl),
        cmocka_unit_test(test_engines_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
