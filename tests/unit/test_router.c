/*
 * The router's rules with injected time and randomness: selection strategies, tiers, retries,
 * fallbacks, the circuit breaker (cooldown, half-open probe), pins, bypass, classification, and
 * health surviving a reload.
 */
#include "router/router.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static uint64_t seq_rand(void *ud)
{
    uint64_t *x = ud; /* splitmix64: deterministic per test */
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

struct fx {
    struct sg_config *cfg;
    struct sg_health *h;
    struct sg_router *r;
    uint64_t seed;
};

static void setup_yaml(struct fx *f, const char *yaml)
{
    struct sg_diags d;
    sg_diags_init(&d);
    f->cfg = sg_config_load_string(yaml, strlen(yaml), "<test>", NULL, NULL, &d);
    if (!f->cfg) {
        sg_diags_print(&d, stderr);
        fail_msg("config did not load");
    }
    sg_diags_dispose(&d);
    if (!f->h)
        f->h = sg_health_new();
    f->r = sg_router_new(f->cfg, f->h);
    f->seed = 42;
}

static void teardown_fx(struct fx *f)
{
    sg_router_free(f->r);
    sg_config_unref(f->cfg);
    sg_health_free(f->h);
}

static void begin(struct fx *f, struct sg_route *rt, const char *alias, bool stream, uint64_t now)
{
    rt->rand = seq_rand;
    rt->rand_ud = &f->seed;
    const struct sg_router_group *g = sg_router_group(f->r, alias, strlen(alias));
    assert_non_null(g);
    sg_route_begin(rt, f->r, g, stream, now, now + 30000);
}

#define DEP(id, order, extra)                                                                      \
    "  - model_name: app/chat\n    litellm_params: {model: openai/" id ", api_key: k, api_base: "  \
    "\"http://127.0.0.1:1/v1\", order: " #order extra "}\n    model_info: {id: " id "}\n"

#define DEAR_PRICES ", input_cost_per_token: 0.00001, output_cost_per_token: 0.00003"
#define CHEAP_PRICES ", input_cost_per_token: 0.0000001, output_cost_per_token: 0.0000004"

static const char two_tiers[] =
    "model_list:\n" DEP("a1", 1, ", weight: 9") DEP("a2", 1, ", weight: 1")
        DEP("b1", 2, "") "router_settings: {num_retries: 1, allowed_fails: 3, cooldown_time: 30}\n";

static void test_weighted_shuffle_is_proportional(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, two_tiers);
    int a1 = 0, n = 20000;
    for (int i = 0; i < n; i++) {
        struct sg_route rt;
        begin(&f, &rt, "app/chat", false, 1000);
        const struct sg_deployment *d = sg_route_next(&rt, 1000);
        assert_non_null(d);
        assert_int_equal(d->order, 1); /* never the second tier while the first is healthy */
        a1 += strcmp(d->id, "a1") == 0;
        sg_route_report(&rt, d, SG_OUT_SUCCESS, 1000, 0, 0, 0, 0);
    }
    /* Expect 90%; with n = 20000 the standard deviation is 0.21%: allow 1% (about 4.7 sigma). */
    double share = (double)a1 / n;
    if (share < 0.89 || share > 0.91)
        fail_msg("a1 got %.3f of picks, expected 0.90 +- 0.01", share);
    teardown_fx(&f);
}

static void test_rpm_weights_then_uniform(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, "model_list:\n" DEP("x", 1, ", rpm: 300") DEP("y", 1, ", rpm: 100"));
    int x = 0, n = 20000;
    for (int i = 0; i < n; i++) {
        struct sg_route rt;
        begin(&f, &rt, "app/chat", false, 1000);
        const struct sg_deployment *d = sg_route_next(&rt, 1000);
        x += strcmp(d->id, "x") == 0;
        sg_route_report(&rt, d, SG_OUT_CANCELLED, 1000, 0, 0, 0, 0);
    }
    assert_true(x > n * 0.74 && x < n * 0.76);
    teardown_fx(&f);
    struct fx g = {0};
    setup_yaml(&g, "model_list:\n" DEP("x", 1, "") DEP("y", 1, ""));
    x = 0;
    for (int i = 0; i < n; i++) {
        struct sg_route rt;
        begin(&g, &rt, "app/chat", false, 1000);
        const struct sg_deployment *d = sg_route_next(&rt, 1000);
        x += strcmp(d->id, "x") == 0;
        sg_route_report(&rt, d, SG_OUT_CANCELLED, 1000, 0, 0, 0, 0);
    }
    assert_true(x > n * 0.49 && x < n * 0.51);
    teardown_fx(&g);
}

static void test_retry_in_tier_then_next_tier_never_twice(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, two_tiers);
    struct sg_route rt;
    begin(&f, &rt, "app/chat", false, 1000);
    const struct sg_deployment *d1 = sg_route_next(&rt, 1000);
    assert_int_equal(d1->order, 1);
    sg_route_report(&rt, d1, SG_OUT_FAILURE, 1000, 0, 0, 0, 0);
    const struct sg_deployment *d2 = sg_route_next(&rt, 1001);
    assert_int_equal(d2->order, 1); /* the peer in the same tier (num_retries 1) */
    assert_ptr_not_equal(d1, d2);
    assert_int_equal(rt.hops, 0);
    sg_route_report(&rt, d2, SG_OUT_FAILURE, 1001, 0, 0, 0, 0);
    const struct sg_deployment *d3 = sg_route_next(&rt, 1002);
    assert_string_equal(d3->id, "b1");
    assert_int_equal(rt.hops, 1);
    sg_route_report(&rt, d3, SG_OUT_FAILURE, 1002, 0, 0, 0, 0);
    assert_null(sg_route_next(&rt, 1003));
    assert_int_equal(rt.why, SG_ROUTE_EXHAUSTED);
    assert_int_equal(rt.attempts, 3);
    teardown_fx(&f);
}

static void test_no_retries_or_no_weighted_failover_cross_tiers_at_once(void **state)
{
    (void)state;
    const char *variants[] = {
        "model_list:\n" DEP("a1", 1, "") DEP("a2", 1, "")
            DEP("b1", 2, "") "router_settings: {num_retries: 0}\n",
        "model_list:\n" DEP("a1", 1, "") DEP("a2", 1, "")
            DEP("b1", 2, "") "router_settings: {num_retries: 3, enable_weighted_failover: false}\n",
    };
    for (size_t v = 0; v < 2; v++) {
        struct fx f = {0};
        setup_yaml(&f, variants[v]);
        struct sg_route rt;
        begin(&f, &rt, "app/chat", false, 1000);
        const struct sg_deployment *d1 = sg_route_next(&rt, 1000);
        sg_route_report(&rt, d1, SG_OUT_FAILURE, 1000, 0, 0, 0, 0);
        const struct sg_deployment *d2 = sg_route_next(&rt, 1000);
        assert_string_equal(d2->id, "b1");
        teardown_fx(&f);
    }
}

static void test_fallback_aliases(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(
        &f, "model_list:\n" DEP(
                "a1", 1,
                "") "  - model_name: app/lite\n    litellm_params: {model: openai/l1, api_key: k, "
                    "api_base: \"http://127.0.0.1:1/v1\"}\n    model_info: {id: l1}\n"
                    "router_settings:\n  fallbacks: [{app/chat: [app/lite]}]\n");
    struct sg_route rt;
    begin(&f, &rt, "app/chat", false, 1000);
    const struct sg_deployment *d = sg_route_next(&rt, 1000);
    assert_string_equal(d->id, "a1");
    sg_route_report(&rt, d, SG_OUT_FAILURE, 1000, 0, 0, 0, 0);
    d = sg_route_next(&rt, 1000);
    assert_string_equal(d->id, "l1");
    assert_int_equal(rt.hops, 1);
    teardown_fx(&f);
}

static void test_context_window_fallbacks(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(
        &f,
        "model_list:\n" DEP(
            "a1", 1,
            "") "  - model_name: app/long\n    litellm_params: {model: openai/long, api_key: k, "
                "api_base: \"http://127.0.0.1:1/v1\"}\n    model_info: {id: long1}\n"
                "router_settings:\n  context_window_fallbacks: [{app/chat: [app/long]}]\n");
    struct sg_route rt;
    begin(&f, &rt, "app/chat", false, 1000);
    const struct sg_deployment *d = sg_route_next(&rt, 1000);
    const char body[] = "{\"error\":{\"code\":\"context_length_exceeded\"}}";
    enum sg_outcome o = sg_router_classify(400, 0, false, body, sizeof body - 1);
    assert_int_equal(o, SG_OUT_CONTEXT_WINDOW);
    sg_route_report(&rt, d, o, 1000, 0, 0, 0, 0);
    assert_true(sg_route_context_window(&rt));
    d = sg_route_next(&rt, 1000);
    assert_string_equal(d->id, "long1");
    teardown_fx(&f);
}

static void test_cooldown_after_allowed_fails_in_window(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, "model_list:\n" DEP("a1", 1, "")
                       DEP("b1", 2, "") "router_settings: {allowed_fails: 3, cooldown_time: 30}\n");
    struct sg_dep_health *h = sg_health_find(f.h, "a1");
    struct sg_dep_view v;
    uint64_t t = 100000;
    /* Failures spread over more than 60 s never open the breaker. */
    for (int i = 0; i < 5; i++, t += 31000) {
        struct sg_route rt;
        begin(&f, &rt, "app/chat", false, t);
        const struct sg_deployment *d = sg_route_next(&rt, t);
        assert_string_equal(d->id, "a1");
        sg_route_report(&rt, d, SG_OUT_FAILURE, t, 0, 0, 0, 0);
        sg_health_view(h, t, &v);
        assert_true(v.healthy);
    }
    /* Three within 60 s do. */
    t += 61000;
    for (int i = 0; i < 3; i++, t += 1000) {
        struct sg_route rt;
        begin(&f, &rt, "app/chat", false, t);
        const struct sg_deployment *d = sg_route_next(&rt, t);
        assert_string_equal(d->id, "a1");
        sg_route_report(&rt, d, SG_OUT_FAILURE, t, 0, 0, 0, 0);
    }
    sg_health_view(h, t, &v);
    assert_false(v.healthy);
    assert_int_equal(v.cooling_ms, 30000 - 1000);
    struct sg_route rt;
    begin(&f, &rt, "app/chat", false, t);
    assert_string_equal(sg_route_next(&rt, t)->id, "b1"); /* cooling: skipped */
    teardown_fx(&f);
}

static void test_auth_and_rate_limit_cool_at_once(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, "model_list:\n" DEP("a1", 1, "")
                       DEP("a2", 1, "") "router_settings: {allowed_fails: 3, cooldown_time: 30}\n");
    struct sg_route rt;
    begin(&f, &rt, "app/chat", false, 5000);
    const struct sg_deployment *d1 = sg_route_next(&rt, 5000);
    sg_route_report(&rt, d1, sg_router_classify(401, 0, false, NULL, 0), 5000, 0, 0, 0, 0);
    const struct sg_deployment *d2 = sg_route_next(&rt, 5000);
    sg_route_report(&rt, d2, sg_router_classify(429, 0, false, NULL, 0), 5000, 7000, 0, 0, 0);
    struct sg_dep_view v1, v2;
    sg_health_view(sg_router_health_of(f.r, d1), 5000, &v1);
    sg_health_view(sg_router_health_of(f.r, d2), 5000, &v2);
    assert_int_equal(v1.cooling_ms, 30000);
    assert_int_equal(v2.cooling_ms, 7000); /* the provider's Retry-After */
    /* Everything cooling: a fresh request learns the shortest wait. */
    begin(&f, &rt, "app/chat", false, 6000);
    assert_null(sg_route_next(&rt, 6000));
    assert_int_equal(rt.why, SG_ROUTE_ALL_COOLING);
    assert_int_equal(rt.retry_after_ms, 6000);
    teardown_fx(&f);
}

static void test_half_open_probe(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, "model_list:\n" DEP("a1", 1, "")
                       DEP("b1", 2, "") "router_settings: {allowed_fails: 1, cooldown_time: 10}\n");
    struct sg_route rt, rt2, rt3;
    begin(&f, &rt, "app/chat", false, 1000);
    const struct sg_deployment *d = sg_route_next(&rt, 1000);
    sg_route_report(&rt, d, SG_OUT_FAILURE, 1000, 0, 0, 0, 0);
    /* Cooldown over: exactly one request probes a1, the next one goes to b1. */
    begin(&f, &rt, "app/chat", false, 11001);
    d = sg_route_next(&rt, 11001);
    assert_string_equal(d->id, "a1");
    assert_true(rt.probe);
    begin(&f, &rt2, "app/chat", false, 11002);
    assert_string_equal(sg_route_next(&rt2, 11002)->id, "b1");
    /* The probe fails: cooling again. */
    sg_route_report(&rt, d, SG_OUT_FAILURE, 11003, 0, 0, 0, 0);
    struct sg_dep_view v;
    sg_health_view(sg_health_find(f.h, "a1"), 11003, &v);
    assert_int_equal(v.cooling_ms, 10000);
    /* Next probe succeeds: closed, and a1 serves everyone again. */
    begin(&f, &rt, "app/chat", false, 21004);
    d = sg_route_next(&rt, 21004);
    assert_string_equal(d->id, "a1");
    sg_route_report(&rt, d, SG_OUT_SUCCESS, 21005, 0, 0, 5, 0);
    begin(&f, &rt3, "app/chat", false, 21006);
    d = sg_route_next(&rt3, 21006);
    assert_string_equal(d->id, "a1");
    assert_false(rt3.probe);
    teardown_fx(&f);
}

/* Only the probe's own verdict ends the half-open wait: an older attempt on the deployment
 * (started before it cooled) that is cancelled or fails while the probe is out neither lets a
 * second probe through nor counts as the probe failing. */
static void test_only_the_probe_decides_half_open(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, "model_list:\n" DEP("a1", 1, "")
                       DEP("b1", 2, "") "router_settings: {allowed_fails: 1, cooldown_time: 10}\n");
    struct sg_route old, rt, probe, next;
    /* An attempt on a1 starts, then a1 cools (another request's failure). */
    begin(&f, &old, "app/chat", false, 1000);
    const struct sg_deployment *od = sg_route_next(&old, 1000);
    assert_string_equal(od->id, "a1");
    begin(&f, &rt, "app/chat", false, 1001);
    const struct sg_deployment *d = sg_route_next(&rt, 1001);
    assert_string_equal(d->id, "a1");
    sg_route_report(&rt, d, SG_OUT_FAILURE, 1002, 0, 0, 0, 0);
    /* Cooldown over: one probe goes out. */
    begin(&f, &probe, "app/chat", false, 11003);
    const struct sg_deployment *pd = sg_route_next(&probe, 11003);
    assert_string_equal(pd->id, "a1");
    assert_true(probe.probe);
    /* The old attempt is cancelled (its client left): the probe is still out. */
    sg_route_report(&old, od, SG_OUT_CANCELLED, 11004, 0, 0, 0, 0);
    begin(&f, &next, "app/chat", false, 11005);
    assert_string_equal(sg_route_next(&next, 11005)->id, "b1");
    sg_route_report(&next, next.tried[0], SG_OUT_SUCCESS, 11006, 0, 0, 1, 0);
    /* The probe succeeds: closed. */
    sg_route_report(&probe, pd, SG_OUT_SUCCESS, 11007, 0, 0, 1, 0);
    struct sg_dep_view v;
    sg_health_view(sg_health_find(f.h, "a1"), 11007, &v);
    assert_true(v.healthy);
    assert_false(v.probing);
    teardown_fx(&f);
}

/* Two workers read the clock before they take an entry's lock, so reports can arrive a
 * millisecond out of order: a failure stamped 1 ms "in the future" of a report is still in its
 * window, and a latency sample is still fresh. */
static void test_reports_out_of_time_order(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, "model_list:\n" DEP("a1", 1, "")
                       DEP("b1", 2, "") "router_settings: {allowed_fails: 2, cooldown_time: 10}\n");
    struct sg_route r1, r2;
    begin(&f, &r1, "app/chat", false, 1000);
    begin(&f, &r2, "app/chat", false, 1000);
    const struct sg_deployment *d1 = sg_route_next(&r1, 1000);
    const struct sg_deployment *d2 = sg_route_next(&r2, 1000);
    assert_string_equal(d1->id, "a1");
    assert_string_equal(d2->id, "a1");
    sg_route_report(&r1, d1, SG_OUT_FAILURE, 5001, 0, 0, 0, 0);
    sg_route_report(&r2, d2, SG_OUT_FAILURE, 5000, 0, 0, 0, 0); /* the other worker's clock */
    struct sg_dep_view v;
    sg_health_view(sg_health_find(f.h, "a1"), 5000, &v);
    assert_int_equal(v.fails_in_window, 2);
    assert_false(v.healthy); /* the second failure within 60 s opened the breaker */
    teardown_fx(&f);
}

static void test_strategies(void **state)
{
    (void)state;
    /* latency-based: lowest EWMA; a stale sample (older than ttl) counts as unknown = explore. */
    struct fx f = {0};
    setup_yaml(&f,
               "model_list:\n" DEP("fast", 1, "")
                   DEP("slow", 1, "") "router_settings: {routing_strategy: latency-based-routing, "
                                      "routing_strategy_args: {ttl: 60}}\n");
    struct sg_route rt;
    const struct sg_deployment *fast = f.cfg->groups[0].deployments[0];
    const struct sg_deployment *slow = f.cfg->groups[0].deployments[1];
    begin(&f, &rt, "app/chat", true, 1000);
    atomic_fetch_add(&sg_router_health_of(f.r, fast)->in_flight, 1);
    sg_route_report(&rt, fast, SG_OUT_SUCCESS, 1000, 0, 100, 900, 0);
    atomic_fetch_add(&sg_router_health_of(f.r, slow)->in_flight, 1);
    sg_route_report(&rt, slow, SG_OUT_SUCCESS, 1000, 0, 400, 500, 0);
    begin(&f, &rt, "app/chat", true, 2000); /* streams rank by time to first token */
    assert_string_equal(sg_route_next(&rt, 2000)->id, "fast");
    begin(&f, &rt, "app/chat", false, 2000); /* others by total latency */
    assert_string_equal(sg_route_next(&rt, 2000)->id, "slow");
    teardown_fx(&f);

    /* least-busy */
    struct fx g = {0};
    setup_yaml(&g, "model_list:\n" DEP("x", 1, "")
                       DEP("y", 1, "") "router_settings: {routing_strategy: least-busy}\n");
    atomic_store(&sg_health_find(g.h, "x")->in_flight, 5);
    begin(&g, &rt, "app/chat", false, 1000);
    assert_string_equal(sg_route_next(&rt, 1000)->id, "y");
    teardown_fx(&g);

    /* usage-based: a deployment at its rpm this minute is skipped */
    struct fx u = {0};
    setup_yaml(&u, "model_list:\n" DEP("x", 1, ", rpm: 2") DEP(
                       "y", 1,
                       ", rpm: 1000") "router_settings: {routing_strategy: usage-based-routing}\n");
    begin(&u, &rt, "app/chat", false, 60000);
    const struct sg_deployment *x = u.cfg->groups[0].deployments[0];
    for (int i = 0; i < 2; i++) {
        atomic_fetch_add(&sg_router_health_of(u.r, x)->in_flight, 1);
        sg_route_report(&rt, x, SG_OUT_SUCCESS, 60000, 0, 0, 1, 10);
    }
    begin(&u, &rt, "app/chat", false, 60001);
    assert_string_equal(sg_route_next(&rt, 60001)->id, "y");
    teardown_fx(&u);

    /* cost-based: cheapest; unknown prices rank last */
    struct fx c = {0};
    setup_yaml(&c, "model_list:\n" DEP("dear", 1, DEAR_PRICES) DEP(
                       "cheap", 1,
                       CHEAP_PRICES) "router_settings: {routing_strategy: cost-based-routing}\n");
    begin(&c, &rt, "app/chat", false, 1000);
    assert_string_equal(sg_route_next(&rt, 1000)->id, "cheap");
    teardown_fx(&c);
}

/* latency-based: a failed attempt is a sample at the deployment's limit (timeout for the total,
 * stream_timeout for the first token), so a failing deployment ranks behind every deployment
 * answering within its limit, before any cooldown; its successes bring it back, and once its
 * last sample is older than ttl it is measured afresh. */
static void test_latency_based_counts_failures_at_the_timeout(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f,
               "model_list:\n" DEP("ok", 1, ", timeout: 10, stream_timeout: 2")
                   DEP("bad", 1,
                       ", timeout: 10, stream_timeout: 2") "router_settings: {routing_strategy: "
                                                           "latency-based-routing, "
                                                           "allowed_fails: 50, "
                                                           "routing_strategy_args: {ttl: 60}}\n");
    const struct sg_deployment *ok = f.cfg->groups[0].deployments[0];
    const struct sg_deployment *bad = f.cfg->groups[0].deployments[1];
    struct sg_route rt;
    begin(&f, &rt, "app/chat", true, 1000);
    atomic_fetch_add(&sg_router_health_of(f.r, ok)->in_flight, 1);
    sg_route_report(&rt, ok, SG_OUT_SUCCESS, 1000, 0, 300, 900, 0);
    atomic_fetch_add(&sg_router_health_of(f.r, bad)->in_flight, 1);
    sg_route_report(&rt, bad, SG_OUT_SUCCESS, 1000, 0, 100, 400, 0); /* the fastest, so far */
    begin(&f, &rt, "app/chat", false, 2000);
    assert_string_equal(sg_route_next(&rt, 2000)->id, "bad");
    sg_route_report(&rt, bad, SG_OUT_FAILURE, 2003, 0, 0, 3, 0); /* a 500 in 3 ms */
    /* Not a fast answer: ranked last, for whole answers and for streams, and not cooling. */
    for (int stream = 0; stream < 2; stream++) {
        begin(&f, &rt, "app/chat", stream, 2010);
        assert_string_equal(sg_route_next(&rt, 2010)->id, "ok");
        sg_route_report(&rt, ok, SG_OUT_CANCELLED, 2010, 0, 0, 0, 0);
    }
    struct sg_dep_view v;
    sg_health_view(sg_router_health_of(f.r, bad), 2010, &v);
    assert_true(v.healthy);
    assert_true(v.ewma_total_ms >= 10000 && v.ewma_ttft_ms >= 2000);
    /* Successes bring it back: each blends in (alpha 0.3); one is not enough to pass a
     * deployment answering in 300 ms, a run of them is. */
    begin(&f, &rt, "app/chat", true, 3000);
    atomic_fetch_add(&sg_router_health_of(f.r, bad)->in_flight, 1);
    sg_route_report(&rt, bad, SG_OUT_SUCCESS, 3000, 0, 100, 400, 0);
    begin(&f, &rt, "app/chat", true, 3001);
    assert_string_equal(sg_route_next(&rt, 3001)->id, "ok");
    sg_route_report(&rt, ok, SG_OUT_CANCELLED, 3001, 0, 0, 0, 0);
    for (int i = 0; i < 12; i++) {
        atomic_fetch_add(&sg_router_health_of(f.r, bad)->in_flight, 1);
        sg_route_report(&rt, bad, SG_OUT_SUCCESS, 4000, 0, 100, 400, 0);
    }
    begin(&f, &rt, "app/chat", true, 4001);
    assert_string_equal(sg_route_next(&rt, 4001)->id, "bad");
    /* A stream's first-byte timeout counts the same way. */
    sg_route_report(&rt, bad, SG_OUT_FIRST_BYTE, 6001, 0, 0, 2000, 0);
    begin(&f, &rt, "app/chat", true, 6002);
    assert_string_equal(sg_route_next(&rt, 6002)->id, "ok");
    sg_route_report(&rt, ok, SG_OUT_CANCELLED, 6002, 0, 0, 0, 0);
    /* A penalty older than ttl is forgotten: the deployment is measured afresh (while "ok"
     * has a fresh sample). */
    atomic_fetch_add(&sg_router_health_of(f.r, ok)->in_flight, 1);
    sg_route_report(&rt, ok, SG_OUT_SUCCESS, 36001, 0, 300, 900, 0);
    begin(&f, &rt, "app/chat", false, 6001 + 60001);
    assert_string_equal(sg_route_next(&rt, 6001 + 60001)->id, "bad"); /* stale: explored */
    sg_route_report(&rt, bad, SG_OUT_SUCCESS, 6001 + 60002, 0, 0, 400, 0);
    atomic_fetch_add(&sg_router_health_of(f.r, ok)->in_flight, 1);
    sg_route_report(&rt, ok, SG_OUT_SUCCESS, 6001 + 60002, 0, 0, 900, 0);
    begin(&f, &rt, "app/chat", false, 6001 + 60003);
    assert_string_equal(sg_route_next(&rt, 6001 + 60003)->id, "bad"); /* 400 ms against 900 */
    teardown_fx(&f);
}

static void test_pin_disable_and_bypass(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, two_tiers);
    struct sg_route rt;
    sg_health_pin(f.h, "app/chat", "b1");
    for (int i = 0; i < 20; i++) {
        begin(&f, &rt, "app/chat", false, 1000);
        const struct sg_deployment *d = sg_route_next(&rt, 1000);
        assert_string_equal(d->id, "b1");
        sg_route_report(&rt, d, SG_OUT_SUCCESS, 1000, 0, 0, 0, 0);
    }
    sg_health_pin(f.h, "app/chat", NULL);
    sg_health_find(f.h, "a1")->disabled = true;
    for (int i = 0; i < 20; i++) {
        begin(&f, &rt, "app/chat", false, 1000);
        const struct sg_deployment *d = sg_route_next(&rt, 1000);
        assert_string_equal(d->id, "a2");
        sg_route_report(&rt, d, SG_OUT_SUCCESS, 1000, 0, 0, 0, 0);
    }
    sg_health_find(f.h, "a1")->disabled = false;
    /* Bypass: the first order-1 deployment, once, nothing else — even when it is cooling. */
    sg_health_cool(sg_health_find(f.h, "a1"), 1000, 30000, "test");
    atomic_store(&f.h->bypass, true);
    begin(&f, &rt, "app/chat", false, 1000);
    const struct sg_deployment *d = sg_route_next(&rt, 1000);
    assert_string_equal(d->id, "a1");
    sg_route_report(&rt, d, SG_OUT_FAILURE, 1000, 0, 0, 0, 0);
    assert_null(sg_route_next(&rt, 1000));
    teardown_fx(&f);
}

static void test_nothing_available_is_all_cooling(void **state)
{
    (void)state;
    /* Disabled, or a probe out: nothing can be tried, so the answer is 503 (ALL_COOLING), not a
     * 502 for attempts that never happened. */
    struct fx f = {0};
    setup_yaml(&f, "model_list:\n" DEP(
                       "a1", 1, "") "router_settings: {allowed_fails: 1, cooldown_time: 1}\n");
    struct sg_route rt, rt2;
    sg_health_find(f.h, "a1")->disabled = true;
    begin(&f, &rt, "app/chat", false, 1000);
    assert_null(sg_route_next(&rt, 1000));
    assert_int_equal(rt.why, SG_ROUTE_ALL_COOLING);
    sg_health_find(f.h, "a1")->disabled = false;
    begin(&f, &rt, "app/chat", false, 1000);
    const struct sg_deployment *d = sg_route_next(&rt, 1000);
    sg_route_report(&rt, d, SG_OUT_FAILURE, 1000, 0, 0, 0, 0);
    begin(&f, &rt, "app/chat", false, 2500); /* cooldown over: this one probes */
    assert_non_null(sg_route_next(&rt, 2500));
    assert_true(rt.probe);
    begin(&f, &rt2, "app/chat", false, 2600);
    assert_null(sg_route_next(&rt2, 2600));
    assert_int_equal(rt2.why, SG_ROUTE_ALL_COOLING);
    assert_int_equal(rt2.retry_after_ms, 1000);
    teardown_fx(&f);
}

static void test_recovered_deployment_takes_its_share(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, "model_list:\n" DEP("x", 1, "")
                       DEP("y", 1, "") "router_settings: {allowed_fails: 1, cooldown_time: 1}\n");
    sg_health_cool(sg_health_find(f.h, "x"), 1000, 1000, "test");
    int x = 0;
    for (int i = 0; i < 200; i++) {
        struct sg_route rt;
        begin(&f, &rt, "app/chat", false, 3000);
        const struct sg_deployment *d = sg_route_next(&rt, 3000);
        x += strcmp(d->id, "x") == 0;
        sg_route_report(&rt, d, SG_OUT_SUCCESS, 3000, 0, 0, 1, 0);
    }
    /* The first pick of x is its probe; its success closes the breaker and x is back. */
    assert_true(x > 70 && x < 130);
    teardown_fx(&f);
}

static void test_usage_based_skips_over_limits_and_counts_tokens(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, "model_list:\n" DEP("a", 1, ", rpm: 2") DEP("t", 1, ", tpm: 50") DEP(
                       "c", 2, "") "router_settings: {routing_strategy: usage-based-routing}\n");
    const char *seen[6];
    for (int i = 0; i < 6; i++) {
        struct sg_route rt;
        begin(&f, &rt, "app/chat", false, 60000);
        const struct sg_deployment *d = sg_route_next(&rt, 60000);
        seen[i] = d->id;
        sg_route_report(&rt, d, SG_OUT_SUCCESS, 60000, 0, 0, 1, 0);
        sg_route_tokens(&rt, d, 30, 60000);
    }
    int c = 0;
    for (int i = 0; i < 6; i++)
        c += strcmp(seen[i], "c") == 0;
    /* a takes 2 requests (rpm), t 2 (60 tokens > tpm 50 after the second), c the rest. */
    assert_int_equal(c, 2);
    teardown_fx(&f);
}

static void test_failing_pin_still_fails_over(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, two_tiers);
    sg_health_pin(f.h, "app/chat", "b1");
    struct sg_route rt;
    begin(&f, &rt, "app/chat", false, 1000);
    const struct sg_deployment *d = sg_route_next(&rt, 1000);
    assert_string_equal(d->id, "b1");
    sg_route_report(&rt, d, SG_OUT_FAILURE, 1000, 0, 0, 0, 0);
    d = sg_route_next(&rt, 1000);
    assert_int_equal(d->order, 1); /* back to the top tier, as if there were no pin */
    teardown_fx(&f);
}

static void test_deadline(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, two_tiers);
    struct sg_route rt;
    begin(&f, &rt, "app/chat", false, 1000);
    const struct sg_deployment *d = sg_route_next(&rt, 1000);
    sg_route_report(&rt, d, SG_OUT_FAILURE, 31000, 0, 0, 0, 0);
    assert_null(sg_route_next(&rt, 31000));
    assert_int_equal(rt.why, SG_ROUTE_DEADLINE);
    teardown_fx(&f);
}

static void test_classify(void **state)
{
    (void)state;
    assert_int_equal(sg_router_classify(200, 0, false, NULL, 0), SG_OUT_SUCCESS);
    assert_int_equal(sg_router_classify(400, 0, false, "{}", 2), SG_OUT_CLIENT_ERROR);
    assert_int_equal(sg_router_classify(404, 0, false, NULL, 0), SG_OUT_CLIENT_ERROR);
    assert_int_equal(sg_router_classify(422, 0, false, NULL, 0), SG_OUT_CLIENT_ERROR);
    assert_int_equal(sg_router_classify(401, 0, false, NULL, 0), SG_OUT_AUTH);
    assert_int_equal(sg_router_classify(403, 0, false, NULL, 0), SG_OUT_AUTH);
    assert_int_equal(sg_router_classify(408, 0, false, NULL, 0), SG_OUT_FAILURE);
    assert_int_equal(sg_router_classify(429, 0, false, NULL, 0), SG_OUT_RATE_LIMITED);
    assert_int_equal(sg_router_classify(500, 0, false, NULL, 0), SG_OUT_FAILURE);
    assert_int_equal(sg_router_classify(503, 0, false, NULL, 0), SG_OUT_FAILURE);
    assert_int_equal(sg_router_classify(0, SG_ECONNECT, false, NULL, 0), SG_OUT_FAILURE);
    assert_int_equal(sg_router_classify(0, SG_ETIMEOUT, true, NULL, 0), SG_OUT_FIRST_BYTE);
    const char an[] = "{\"type\":\"error\",\"error\":{\"message\":\"prompt is too long: 200000\"}}";
    assert_int_equal(sg_router_classify(400, 0, false, an, sizeof an - 1), SG_OUT_CONTEXT_WINDOW);
}

/* A reload as the gateway does it: the new config's router is built while the old one is
 * still held (requests finishing on it), then the old one is let go. */
static void reload(struct fx *f, const char *yaml)
{
    struct sg_router *old_r = f->r;
    struct sg_config *old_cfg = f->cfg;
    setup_yaml(f, yaml);
    sg_router_free(old_r);
    sg_config_unref(old_cfg);
}

static void test_health_survives_reload(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, two_tiers);
    sg_health_cool(sg_health_find(f.h, "a1"), 1000, 30000, "test");
    struct sg_health *h = f.h;
    /* Same deployments (plus one): a1 is still cooling. */
    reload(&f, "model_list:\n" DEP("a1", 1, ", weight: 9") DEP("c1", 1, ""));
    struct sg_dep_view v;
    sg_health_view(sg_health_find(h, "a1"), 2000, &v);
    assert_int_equal(v.cooling_ms, 29000);
    /* a1 now points elsewhere: a different deployment, so it starts healthy. */
    reload(&f, "model_list:\n  - model_name: app/chat\n    litellm_params: {model: openai/a1, "
               "api_key: k, api_base: \"http://127.0.0.1:2/v1\"}\n    model_info: {id: a1}\n");
    sg_health_view(sg_health_find(h, "a1"), 2000, &v);
    assert_true(v.healthy);
    teardown_fx(&f);
}

/* The table holds the deployments of the configs in use, no more: a deployment a reload removed
 * leaves it once no router holds it, and its manual state goes with it. */
static void test_removed_deployments_are_forgotten(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, two_tiers);
    struct sg_health *h = f.h;
    sg_health_find(h, "b1")->disabled = true;
    sg_health_pin(h, "app/chat", "b1");
    sg_health_cool(sg_health_find(h, "a2"), 1000, 30000, "test");
    sg_health_set_faults(h, sg_health_find(h, "a2"), 1, -1, -1);
    assert_int_equal(atomic_load(&h->faults_active), 1);
    /* A request still running on the old config holds its router: nothing goes yet. */
    struct sg_router *held = f.r;
    struct sg_config *held_cfg = sg_config_ref(f.cfg);
    f.r = sg_router_new(f.cfg, h);
    reload(&f, "model_list:\n" DEP("a1", 1, ""));
    assert_int_equal(h->n, 3);
    assert_non_null(sg_health_find(h, "b1"));
    /* A Redis round that took its snapshot holds the entries too. */
    struct sg_dep_health **snap;
    size_t n = sg_health_hold_all(h, &snap);
    sg_router_free(held);
    sg_config_unref(held_cfg);
    assert_int_equal(h->n, 3);
    for (size_t i = 0; i < n; i++)
        sg_health_put(h, snap[i]);
    free(snap);
    /* Now only a1 is in use. */
    assert_int_equal(h->n, 1);
    assert_null(sg_health_find(h, "b1"));
    assert_null(sg_health_find(h, "a2"));
    assert_int_equal(atomic_load(&h->faults_active), 0);
    char pinned[64];
    assert_false(sg_health_pinned(h, "app/chat", pinned, sizeof pinned));
    /* Brought back, they are new deployments: enabled, healthy, not pinned, no fault. */
    reload(&f, two_tiers);
    assert_int_equal(h->n, 3);
    struct sg_dep_view v;
    sg_health_view(sg_health_find(h, "b1"), 2000, &v);
    assert_false(v.disabled);
    assert_true(v.healthy);
    sg_health_view(sg_health_find(h, "a2"), 2000, &v);
    assert_int_equal(v.cooling_ms, 0);
    assert_false(atomic_load(&sg_health_find(h, "a2")->fault_revoke_key));
    assert_false(sg_health_pinned(h, "app/chat", pinned, sizeof pinned));
    /* Renames never grow the table past what is in use. */
    for (int i = 0; i < 20; i++)
        reload(&f, i % 2 ? "model_list:\n" DEP("x1", 1, "") DEP("x2", 1, "")
                         : "model_list:\n" DEP("y1", 1, "") DEP("y2", 1, ""));
    assert_int_equal(h->n, 2);
    assert_true(h->n_spare <= 3);
    teardown_fx(&f);
}

/* Unpin names the deployment it means: only the pinned one is unpinned; another's request is
 * refused with the holder named; with nothing pinned it is a no-op that succeeds. */
static void test_unpin_only_the_pinned_deployment(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, two_tiers);
    struct sg_health *h = f.h;
    char holder[64] = "", pinned[64];
    sg_health_pin(h, "app/chat", "a1");
    sg_health_pin(h, "other", "x9"); /* another alias's pin is never touched */
    assert_int_equal(sg_health_unpin(h, "app/chat", "b1", holder, sizeof holder), SG_EINVAL);
    assert_string_equal(holder, "a1");
    assert_true(sg_health_pinned(h, "app/chat", pinned, sizeof pinned));
    assert_string_equal(pinned, "a1");
    assert_int_equal(sg_health_unpin(h, "app/chat", "a1", holder, sizeof holder), SG_OK);
    assert_false(sg_health_pinned(h, "app/chat", pinned, sizeof pinned));
    holder[0] = '\0';
    assert_int_equal(sg_health_unpin(h, "app/chat", "b1", holder, sizeof holder), SG_OK);
    assert_int_equal(sg_health_unpin(h, "app/chat", "a1", holder, sizeof holder), SG_OK);
    assert_string_equal(holder, "");
    assert_true(sg_health_pinned(h, "other", pinned, sizeof pinned));
    assert_string_equal(pinned, "x9");
    teardown_fx(&f);
}

/* x-slogate-faults lists deployments in the order they joined the table, across removals (which
 * leave holes) and the squeeze that closes them. */
static void test_faults_keep_their_order_across_removals(void **state)
{
    (void)state;
    struct fx f = {0};
    setup_yaml(&f, "model_list:\n" DEP("p1", 1, "") DEP("p2", 1, "") DEP("p3", 1, "")
                       DEP("p4", 1, "") DEP("p5", 1, "") DEP("p6", 1, ""));
    struct sg_health *h = f.h;
    const char *faulty[] = {"p2", "p4", "p6"};
    for (size_t i = 0; i < 3; i++)
        sg_health_set_faults(h, sg_health_find(h, faulty[i]), 1, -1, -1);
    char text[200];
    sg_health_faults_text(h, text, sizeof text);
    assert_string_equal(text, "p2=revoke_key; p4=revoke_key; p6=revoke_key");
    /* p3 and p4 go (two holes of six), p7 comes: it joins at the end. */
    reload(&f, "model_list:\n" DEP("p1", 1, "") DEP("p2", 1, "") DEP("p5", 1, "") DEP("p6", 1, "")
                   DEP("p7", 1, ""));
    sg_health_set_faults(h, sg_health_find(h, "p7"), -1, 1, -1);
    sg_health_set_faults(h, sg_health_find(h, "p1"), -1, -1, 30);
    assert_int_equal(atomic_load(&h->faults_active), 4);
    sg_health_faults_text(h, text, sizeof text);
    assert_string_equal(text, "p1=ttft_ms:30; p2=revoke_key; p6=revoke_key; p7=block_egress");
    /* Most of the table goes: the holes are squeezed out, the order stays. */
    reload(&f, "model_list:\n" DEP("p2", 1, "") DEP("p7", 1, ""));
    assert_int_equal(h->n, 2);
    assert_true(h->len <= 4);
    assert_int_equal(atomic_load(&h->faults_active), 2);
    sg_health_faults_text(h, text, sizeof text);
    assert_string_equal(text, "p2=revoke_key; p7=block_egress");
    sg_health_set_faults(h, sg_health_find(h, "p2"), 0, 0, 0);
    sg_health_set_faults(h, sg_health_find(h, "p2"), 0, 0, 0); /* clearing twice counts once */
    assert_int_equal(atomic_load(&h->faults_active), 1);
    teardown_fx(&f);
}

/* `n` deployments "<prefix>0".."<prefix>n-1" in 50 groups, ids with a long shared start (as
 * generated ids and numbered fleets have). */
/* n deployments named <prefix>-deployment-in-a-large-fleet-<i>, spread over `aliases` aliases
 * g0, g1, ... */
static char *fleet_yaml(size_t n, const char *prefix, size_t aliases)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, "model_list:\n");
    for (size_t i = 0; i < n; i++)
        sg_buf_appendf(&b,
                       "  - model_name: g%zu\n    litellm_params: {model: openai/gpt-4o-mini, "
                       "api_key: k, api_base: \"http://127.0.0.1:1/v1\"}\n    model_info: "
                       "{id: %s-deployment-in-a-large-fleet-%zu}\n",
                       i % aliases, prefix, i);
    return sg_buf_steal(&b, NULL);
}

/* A large fleet costs the health table O(1) per deployment at start and at each reload —
 * counted in slots of its id map, not timed. A table that scanned its entries for each id made
 * a reload of 10000 deployments take seconds of CPU (and 20000 four times that). */
static void test_a_large_fleet_costs_the_table_constant_work_per_deployment(void **state)
{
    (void)state;
    enum { N = 20000 };
    char *a = fleet_yaml(N, "d", 50), *b = fleet_yaml(N, "e", 50);
    struct fx f = {0};
    setup_yaml(&f, a);
    struct sg_health *h = f.h;
    assert_int_equal(h->n, N);
    assert_true(h->ids.probes >= N && h->ids.probes < 10 * (size_t)N); /* about 5 */
    char id[64], pinned[64];
    snprintf(id, sizeof id, "d-deployment-in-a-large-fleet-%d", 7);
    sg_health_cool(sg_health_find(h, id), 1000, 30000, "test");
    sg_health_pin(h, "g7", id);
    /* The same file again: every entry kept, with its state. */
    h->ids.probes = 0;
    reload(&f, a);
    assert_int_equal(h->n, N);
    assert_true(h->ids.probes >= N && h->ids.probes < 3 * (size_t)N); /* about 1.2 */
    struct sg_dep_view v;
    sg_health_view(sg_health_find(h, id), 2000, &v);
    assert_int_equal(v.cooling_ms, 29000);
    assert_true(sg_health_pinned(h, "g7", pinned, sizeof pinned));
    /* Every id renamed: N new entries, N old ones forgotten with their pins. */
    h->ids.probes = 0;
    reload(&f, b);
    assert_int_equal(h->n, N);
    assert_true(h->ids.probes >= N && h->ids.probes < 15 * (size_t)N); /* about 6 */
    assert_null(sg_health_find(h, id));
    assert_false(sg_health_pinned(h, "g7", pinned, sizeof pinned));
    for (size_t i = 0; i < N; i += 997) {
        snprintf(id, sizeof id, "e-deployment-in-a-large-fleet-%zu", i);
        struct sg_dep_health *e = sg_health_find(h, id);
        assert_non_null(e);
        assert_ptr_equal(sg_router_health_of(f.r, &f.cfg->deployments[i]), e);
    }
    /* A deployment of another config is not this router's. */
    struct sg_deployment other = f.cfg->deployments[0];
    assert_null(sg_router_health_of(f.r, &other));
    teardown_fx(&f);
    free(a);
    free(b);
}

/* Every request looks its model up: the config's alias index, which the workers share without
 * a lock, finds each of 20000 aliases (and no near miss) as the router's own group. */
static void test_each_of_many_aliases_is_found_by_its_exact_name(void **state)
{
    (void)state;
    enum { N = 20000 };
    char *yaml = fleet_yaml(N, "d", N);
    struct fx f = {0};
    setup_yaml(&f, yaml);
    assert_int_equal(f.r->n_groups, N);
    assert_int_equal(f.cfg->group_index.n, N);
    char name[32];
    for (size_t i = 0; i < N; i += 7) {
        int len = snprintf(name, sizeof name, "g%zuX", i); /* X: not part of the name looked up */
        const struct sg_router_group *g = sg_router_group(f.r, name, (size_t)len - 1);
        assert_non_null(g);
        assert_ptr_equal(g->group, sg_config_group(f.cfg, name, (size_t)len - 1));
        assert_int_equal(g->group->n, 1);
        assert_true(strncmp(g->group->alias, name, (size_t)len - 1) == 0 &&
                    g->group->alias[len - 1] == '\0');
        assert_null(sg_router_group(f.r, name, (size_t)len)); /* "g7X" is no alias */
    }
    assert_null(sg_router_group(f.r, "g", 1));
    assert_null(sg_router_group(f.r, "", 0));
    teardown_fx(&f);
    free(yaml);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weighted_shuffle_is_proportional),
        cmocka_unit_test(test_rpm_weights_then_uniform),
        cmocka_unit_test(test_retry_in_tier_then_next_tier_never_twice),
        cmocka_unit_test(test_no_retries_or_no_weighted_failover_cross_tiers_at_once),
        cmocka_unit_test(test_fallback_aliases),
        cmocka_unit_test(test_context_window_fallbacks),
        cmocka_unit_test(test_cooldown_after_allowed_fails_in_window),
        cmocka_unit_test(test_auth_and_rate_limit_cool_at_once),
        cmocka_unit_test(test_half_open_probe),
        cmocka_unit_test(test_only_the_probe_decides_half_open),
        cmocka_unit_test(test_reports_out_of_time_order),
        cmocka_unit_test(test_strategies),
        cmocka_unit_test(test_latency_based_counts_failures_at_the_timeout),
        cmocka_unit_test(test_pin_disable_and_bypass),
        cmocka_unit_test(test_nothing_available_is_all_cooling),
        cmocka_unit_test(test_recovered_deployment_takes_its_share),
        cmocka_unit_test(test_usage_based_skips_over_limits_and_counts_tokens),
        cmocka_unit_test(test_failing_pin_still_fails_over),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_health_survives_reload),
        cmocka_unit_test(test_removed_deployments_are_forgotten),
        cmocka_unit_test(test_unpin_only_the_pinned_deployment),
        cmocka_unit_test(test_faults_keep_their_order_across_removals),
        cmocka_unit_test(test_a_large_fleet_costs_the_table_constant_work_per_deployment),
        cmocka_unit_test(test_each_of_many_aliases_is_found_by_its_exact_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
