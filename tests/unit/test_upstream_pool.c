/*
 * The upstream client's connections: the keep-alive pool (reuse, what may go back to it, idle
 * closes and the idle timeout), the one retry of a dead pooled connection, name resolution, and
 * freeing the client with calls in flight. Against the scripted server (upstream_fixture.h).
 */
#include "upstream_fixture.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>

#include <cmocka.h>

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

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    sg_upstream_global_init();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keepalive_reuse),
        cmocka_unit_test(test_concurrent_calls_share_the_pool),
        cmocka_unit_test(test_dead_pooled_connection_retried),
        cmocka_unit_test(test_idle_close_noticed),
        cmocka_unit_test(test_fresh_connection_closed_is_not_retried),
        cmocka_unit_test(test_not_reusable_responses),
        cmocka_unit_test(test_name_resolution),
        cmocka_unit_test(test_free_with_calls_in_flight),
        cmocka_unit_test(test_idle_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
