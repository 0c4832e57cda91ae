/*
 * telemetry: the request event (fields, JSON round trip, traceparent), the metric registry
 * (shards, merge, Prometheus text), the gateway's metric families, OTLP span encoding and the
 * exporter against a collector on loopback, the JSON lines request log and its rotation.
 */
#include "config/config.h"
#include "http/http.h"
#include "telemetry/telemetry.h"
#include "upstream/upstream.h"

#include <json-c/json.h>
#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "json_path.h"

/* An event with every stored field set to something distinct. */
static struct sg_event *full_event(const char *id)
{
    struct sg_event *e = sg_event_new();
    SG_EVENT_SETS(e, request_id, id);
    e->start_unix_us = 1795000000123456ull;
    SG_EVENT_SETS(e, tenant_id, "default");
    SG_EVENT_SETS(e, user_id, "user-\"7\"\n");
    SG_EVENT_SETS(e, feature, "summarize");
    SG_EVENT_SETS(e, alias, "app/chat");
    SG_EVENT_SETS(e, provider, "openai");
    SG_EVENT_SETS(e, model, "gpt-4o-mini");
    SG_EVENT_SETS(e, deployment, "primary");
    SG_EVENT_SETS(e, region, "eu-west-1");
    e->status = 502;
    SG_EVENT_SETS(e, error_type, "upstream_error");
    e->latency_ms_total = 1234.567;
    e->ttft_ms = 98.25;
    e->overhead_us = 42;
    e->retries = 2;
    e->failover_hops = 1;
    e->input_tokens = 240;
    e->output_tokens = 42;
    e->cached_tokens = 128;
    e->cost_usd = 0.0000612;
    e->cache_hit = true;
    e->cache_ttl_s = 3600;
    e->stream = true;
    e->usage_estimated = true;
    SG_EVENT_SETS(e, cache_state, "hit");
    SG_EVENT_SETS(e, response_model, "gpt-4o-mini-2024-07-18");
    SG_EVENT_SETS(e, trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    SG_EVENT_SETS(e, span_id, "00f067aa0ba902b7");
    return e;
}

static void assert_stored_equal(const struct sg_event *a, const struct sg_event *b)
{
    assert_string_equal(a->request_id, b->request_id);
    assert_true(a->start_unix_us == b->start_unix_us);
    assert_string_equal(a->tenant_id, b->tenant_id);
    assert_string_equal(a->user_id, b->user_id);
    assert_string_equal(a->feature, b->feature);
    assert_string_equal(a->alias, b->alias);
    assert_string_equal(a->provider, b->provider);
    assert_string_equal(a->model, b->model);
    assert_string_equal(a->deployment, b->deployment);
    assert_string_equal(a->region, b->region);
    assert_int_equal(a->status, b->status);
    assert_string_equal(a->error_type, b->error_type);
    assert_true(a->latency_ms_total == b->latency_ms_total);
    assert_true(a->ttft_ms == b->ttft_ms);
    assert_true(a->overhead_us == b->overhead_us);
    assert_int_equal(a->retries, b->retries);
    assert_int_equal(a->failover_hops, b->failover_hops);
    assert_true(a->input_tokens == b->input_tokens);
    assert_true(a->output_tokens == b->output_tokens);
    assert_true(a->cached_tokens == b->cached_tokens);
    assert_true(a->cost_usd == b->cost_usd);
    assert_int_equal(a->cache_hit, b->cache_hit);
    assert_int_equal(a->cache_ttl_s, b->cache_ttl_s);
    assert_int_equal(a->stream, b->stream);
    assert_int_equal(a->usage_estimated, b->usage_estimated);
    assert_string_equal(a->cache_state, b->cache_state);
    assert_string_equal(a->response_model, b->response_model);
}

/* ---- the event ---- */

static void test_event_defaults_and_truncation(void **state)
{
    (void)state;
    struct sg_event *e = sg_event_new();
    assert_true(e->ttft_ms < 0);
    assert_string_equal(e->cache_state, ""); /* no lookup ran yet */
    /* 63 bytes fit in feature[64]; a 2-byte UTF-8 character straddling the end is left out
     * whole rather than cut in half. */
    char s[80];
    memset(s, 'a', 62);
    memcpy(s + 62, "\xc3\xa9zz", 4); /* é at bytes 62-63 */
    SG_EVENT_SET(e, feature, s, 66);
    assert_int_equal(strlen(e->feature), 62);
    SG_EVENT_SET(e, feature, "ok", 2);
    assert_string_equal(e->feature, "ok");
    SG_EVENT_SETS(e, feature, NULL);
    assert_string_equal(e->feature, "");
    /* Bytes that are not UTF-8 (a header's may not be): U+FFFD each, never stored raw. A lone
     * continuation byte, Latin-1, an overlong '/', an encoded surrogate, a cut sequence. */
    SG_EVENT_SETS(e, feature,
                  "a\x80"
                  "b\xe9"
                  "c\xc0\xaf"
                  "d\xed\xa0\x80"
                  "e\xe2\x82");
    assert_string_equal(e->feature, "a\xef\xbf\xbd"
                                    "b\xef\xbf\xbd"
                                    "c\xef\xbf\xbd\xef\xbf\xbd"
                                    "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
                                    "e\xef\xbf\xbd\xef\xbf\xbd");
    SG_EVENT_SETS(e, feature, "\xe2\x82\xac ok"); /* well-formed: kept as is */
    assert_string_equal(e->feature, "\xe2\x82\xac ok");
    sg_event_free(e);
    sg_event_free(NULL);
}

/* A freed event comes back from the pool as new: every field zeroed again, no old prompt; the
 * attempt slots are not (4 KB a request), none counts (gw_event_attempt_begin clears each). */
static void test_event_recycled_clean(void **state)
{
    (void)state;
    struct sg_event *e = sg_event_new();
    SG_EVENT_SETS(e, tenant_id, "acme");
    e->status = 502;
    e->n_attempts = 3;
    e->attempts_dropped = 2;
    SG_EVENT_SETS(e, attempts[2].error_type, "timeout");
    e->prompt = strdup("secret prompt");
    sg_event_free(e);
    struct sg_event *again = sg_event_new();
    assert_ptr_equal(again, e); /* the same memory, recycled (a single thread: the last put) */
    assert_string_equal(again->tenant_id, "");
    assert_int_equal(again->status, 0);
    assert_int_equal(again->n_attempts, 0);
    assert_int_equal(again->attempts_dropped, 0);
    assert_null(again->prompt);
    assert_true(again->ttft_ms < 0);
    assert_string_equal(again->cache_state, "");
    sg_event_free(again);
}

/* Released, the pool is empty: the next event is a new allocation, zeroed all the same. */
static void test_event_pool_release(void **state)
{
    (void)state;
    sg_event_pool_release(); /* whatever earlier tests left */
    struct sg_event *e[3];
    for (int i = 0; i < 3; i++) {
        e[i] = sg_event_new();
        e[i]->status = 200 + i;
    }
    for (int i = 0; i < 3; i++)
        sg_event_free(e[i]);
    assert_int_equal(sg_event_pool_release(), 3);
    assert_int_equal(sg_event_pool_release(), 0);
    struct sg_event *fresh = sg_event_new();
    assert_int_equal(fresh->status, 0);
    assert_true(fresh->ttft_ms < 0);
    sg_event_free(fresh);
    assert_int_equal(sg_event_pool_release(), 1);
}

/* Requests take events on one thread while a writer frees them on another (the store's shape),
 * with more live events than the pool holds. Two shelves: the taker fills one while the freer
 * empties the other. Each event is checked clean when taken; ASan/TSan see the rest. */
#define SHELF 1500
struct pool_pass {
    struct sg_event *ev[2][SHELF];
    atomic_bool full[2];
    atomic_bool failed;
};

static void *pool_taker(void *arg)
{
    struct pool_pass *p = arg;
    for (int round = 0; round < 400; round++) {
        int k = round & 1;
        while (atomic_load(&p->full[k]))
            ; /* the freer still empties it */
        for (size_t i = 0; i < SHELF; i++) {
            struct sg_event *e = sg_event_new();
            if (e->status != 0 || e->request_id[0] || e->ttft_ms >= 0)
                atomic_store(&p->failed, true);
            e->status = 200;
            SG_EVENT_SETS(e, request_id, "taken");
            p->ev[k][i] = e;
        }
        atomic_store(&p->full[k], true);
    }
    return NULL;
}

static void test_event_pool_threads(void **state)
{
    (void)state;
    struct pool_pass p = {.failed = false};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, pool_taker, &p), 0);
    for (int round = 0; round < 400; round++) {
        int k = round & 1;
        while (!atomic_load(&p.full[k]))
            ;
        for (size_t i = 0; i < SHELF; i++)
            sg_event_free(p.ev[k][i]);
        atomic_store(&p.full[k], false);
    }
    pthread_join(t, NULL);
    assert_false(atomic_load(&p.failed));
}

static void test_event_json_round_trip(void **state)
{
    (void)state;
    struct sg_event *e = full_event("req-1");
    e->prompt = sg_xstrdup("[{\"role\":\"user\",\"content\":\"hi\"}]");
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_event_to_json(e, 0, &b), SG_OK);
    assert_null(strchr(b.data, '\n'));
    assert_non_null(strstr(b.data, "\"time\":\"2026-11-18T"));
    assert_null(strstr(b.data, "prompt")); /* only with SG_EVENT_JSON_PROMPT */
    struct sg_event *d = sg_event_new();
    assert_int_equal(sg_event_from_json(b.data, b.len, d), SG_OK);
    assert_stored_equal(e, d);
    assert_null(d->prompt);

    /* With the prompt and the attempts (the request log's form): still parses. */
    e->n_attempts = 1;
    SG_EVENT_SETS(e, attempts[0].deployment, "primary");
    e->attempts[0].status = 500;
    sg_buf_reset(&b);
    assert_int_equal(sg_event_to_json(e, SG_EVENT_JSON_PROMPT | SG_EVENT_JSON_ATTEMPTS, &b), SG_OK);
    assert_non_null(strstr(b.data, "\"attempts\":[{\"deployment\":\"primary\",\"status\":500"));
    assert_int_equal(sg_event_from_json(b.data, b.len, d), SG_OK);
    assert_string_equal(d->prompt, e->prompt);
    assert_stored_equal(e, d);

    /* The attempts read back too (what the request path spools when the queue is full is
     * logged at replay: its line must list them like the live ones), the dropped count with
     * them. */
    e->n_attempts = 2;
    SG_EVENT_SETS(e, attempts[1].deployment, "secondary");
    e->attempts[1].status = 200;
    e->attempts[1].start_us = 1000;
    e->attempts[1].end_us = 13250;
    SG_EVENT_SETS(e, attempts[0].error_type, "failure");
    e->attempts_dropped = 3;
    sg_buf_reset(&b);
    assert_int_equal(sg_event_to_json(e, SG_EVENT_JSON_ATTEMPTS, &b), SG_OK);
    assert_non_null(strstr(b.data, "],\"attempts_dropped\":3"));
    assert_int_equal(sg_event_from_json(b.data, b.len, d), SG_OK);
    assert_int_equal(d->n_attempts, 2);
    assert_int_equal(d->attempts_dropped, 3);
    assert_string_equal(d->attempts[0].deployment, "primary");
    assert_string_equal(d->attempts[0].error_type, "failure");
    assert_int_equal(d->attempts[0].status, 500);
    assert_string_equal(d->attempts[1].deployment, "secondary");
    assert_string_equal(d->attempts[1].error_type, "");
    assert_true(d->attempts[1].end_us - d->attempts[1].start_us == 12250);
    struct sg_buf again;
    sg_buf_init(&again, 0);
    assert_int_equal(sg_event_to_json(d, SG_EVENT_JSON_ATTEMPTS, &again), SG_OK);
    assert_string_equal(again.data, b.data); /* the same line */
    sg_buf_dispose(&again);
    /* Attempts that are not the log's shape: the line is refused like any bad field. */
    static const char *const bad_attempts[] = {
        "{\"request_id\":\"x\",\"attempts\":{}}",
        "{\"request_id\":\"x\",\"attempts\":[1]}",
        "{\"request_id\":\"x\",\"attempts\":[{\"deployment\":\"a\",\"status\":200,"
        "\"ms\":-1,\"error_type\":\"\"}]}",
        "{\"request_id\":\"x\",\"attempts\":[{\"deployment\":\"a\",\"status\":\"200\","
        "\"ms\":1,\"error_type\":\"\"}]}",
        "{\"request_id\":\"x\",\"attempts\":[],\"attempts_dropped\":-1}",
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(bad_attempts); i++)
        assert_int_equal(sg_event_from_json(bad_attempts[i], strlen(bad_attempts[i]), d),
                         SG_EINVAL);
    e->n_attempts = 0;
    e->attempts_dropped = 0;

    /* A negative ttft (no byte reached the client) survives too. */
    e->ttft_ms = -1;
    sg_buf_reset(&b);
    sg_event_to_json(e, 0, &b);
    assert_int_equal(sg_event_from_json(b.data, b.len, d), SG_OK);
    assert_true(d->ttft_ms < 0);

    /* Junk, a torn line, a line without request_id, a wrong type: refused. */
    assert_int_equal(sg_event_from_json("nope", 4, d), SG_EINVAL);
    assert_int_equal(sg_event_from_json(b.data, b.len / 2, d), SG_EINVAL);
    assert_int_equal(sg_event_from_json("{\"status\":200}", 14, d), SG_EINVAL);
    const char bad[] = "{\"request_id\":\"x\",\"status\":\"200\"}";
    assert_int_equal(sg_event_from_json(bad, sizeof bad - 1, d), SG_EINVAL);
    /* A line an older slogate spooled has no usage_estimated: it reads back as reported usage
     * (false), every other field as written. */
    e->ttft_ms = 98.25;
    sg_buf_reset(&b);
    sg_event_to_json(e, 0, &b);
    const char *field = strstr(b.data, ",\"usage_estimated\":true");
    assert_non_null(field);
    struct sg_buf old;
    sg_buf_init(&old, 0);
    sg_buf_append(&old, b.data, (size_t)(field - b.data));
    sg_buf_appends(&old, field + strlen(",\"usage_estimated\":true"));
    assert_null(strstr(old.data, "usage_estimated"));
    assert_int_equal(sg_event_from_json(old.data, old.len, d), SG_OK);
    assert_false(d->usage_estimated);
    d->usage_estimated = true;
    assert_stored_equal(e, d);
    sg_buf_dispose(&old);
    const char wrong[] = "{\"request_id\":\"x\",\"usage_estimated\":1}";
    assert_int_equal(sg_event_from_json(wrong, sizeof wrong - 1, d), SG_EINVAL);
    /* Unknown keys (a newer slogate's spool) are ignored. */
    const char newer[] = "{\"request_id\":\"x\",\"status\":200,\"new_field\":[1,2]}";
    assert_int_equal(sg_event_from_json(newer, sizeof newer - 1, d), SG_OK);
    assert_int_equal(d->status, 200);
    sg_buf_dispose(&b);
    sg_event_free(d);
    sg_event_free(e);
}

static void test_traceparent(void **state)
{
    (void)state;
    char t[33], s[17];
    uint8_t f = 0;
    assert_true(sg_traceparent_parse(
        SG_SLICE_LIT("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), t, s, &f));
    assert_string_equal(t, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(s, "00f067aa0ba902b7");
    assert_int_equal(f, 1);
    /* Surrounding whitespace is fine; a later version may carry more fields. */
    assert_true(sg_traceparent_parse(
        SG_SLICE_LIT(" 01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-extra "), t, s, &f));
    assert_int_equal(f, 0);
    static const char *const bad[] = {
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   /* upper case */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",   /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   /* zero span id */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   /* version ff */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", /* 00 with extra */
        "00-4bf92f3577b34da6a3ce929d0e0e473-600f067aa0ba902b7-01",   /* dash misplaced */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",   "",
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(bad); i++)
        assert_false(sg_traceparent_parse(sg_slice_of(bad[i]), t, s, &f));
    char out[64];
    sg_traceparent_format("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 1, out,
                          sizeof out);
    assert_string_equal(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    /* Flags version 00 does not define are sent as zero; sampled and random are kept. */
    sg_traceparent_format("4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", 0xff, out,
                          sizeof out);
    assert_string_equal(out, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-03");
}

static void test_request_id_time_ordered(void **state)
{
    (void)state;
    char a[33], b[33];
    sg_request_id(a);
    usleep(2000);
    sg_request_id(b);
    assert_int_equal(strlen(a), 32);
    for (int i = 0; i < 32; i++)
        assert_non_null(strchr("0123456789abcdef", a[i]));
    /* Later ids sort later (the store's key grows at its end)... */
    assert_true(strcmp(a, b) < 0);
    /* ... because they start with the wall clock in milliseconds. */
    char ms[13];
    memcpy(ms, a, 12);
    ms[12] = '\0';
    uint64_t t = strtoull(ms, NULL, 16), now = sg_wall_us() / 1000;
    assert_true(t <= now && now - t < 1000);
    /* Two ids in the same millisecond still differ (80 random bits). */
    sg_request_id(a);
    sg_request_id(b);
    assert_string_not_equal(a, b);
}

/* ---- the registry ---- */

static void test_metrics_render_exact(void **state)
{
    (void)state;
    struct sg_metrics *m = sg_metrics_new(2);
    /* Names that break the conventions are refused. */
    assert_int_equal(sg_metrics_family(m, "x_requests", "h", SG_METRIC_COUNTER, NULL, 0),
                     SG_EINVAL);
    assert_int_equal(sg_metrics_family(m, "x_depth_total", "h", SG_METRIC_GAUGE, NULL, 0),
                     SG_EINVAL);
    assert_int_equal(sg_metrics_family(m, "9x_total", "h", SG_METRIC_COUNTER, NULL, 0), SG_EINVAL);
    double unsorted[] = {1, 0.5};
    assert_int_equal(sg_metrics_family(m, "x_seconds", "h", SG_METRIC_HISTOGRAM, unsorted, 2),
                     SG_EINVAL);

    int c = sg_metrics_family(m, "x_requests_total", "Requests.\nSecond line \\ here.",
                              SG_METRIC_COUNTER, NULL, 0);
    assert_true(c >= 0);
    assert_int_equal(sg_metrics_family(m, "x_requests_total", "dup", SG_METRIC_COUNTER, NULL, 0),
                     SG_EINVAL);
    double buckets[] = {0.005, 0.1, 1};
    int h = sg_metrics_family(m, "x_duration_seconds", "Latency.", SG_METRIC_HISTOGRAM, buckets, 3);
    int g = sg_metrics_family(m, "x_in_flight", "Now.", SG_METRIC_GAUGE, NULL, 0);
    const char *la[] = {"alias", "a\"b\\c\nd", NULL};
    sg_series_t sa = sg_metrics_series(m, c, la);
    sg_series_t sb = sg_metrics_series(m, c, NULL);
    sg_series_t sh = sg_metrics_series(m, h, NULL);
    sg_series_t sg = sg_metrics_series(m, g, NULL);
    sg_metrics_freeze(m);
    struct sg_metric_shard *s0 = sg_metrics_shard(m, 0), *s1 = sg_metrics_shard(m, 1);
    assert_null(sg_metrics_shard(m, 2));
    sg_metric_add(s0, sa, 1);
    sg_metric_add(s1, sa, 2);
    sg_metric_add(s1, sb, 0.25);
    sg_metric_observe(s0, sh, 0.005); /* on the bound: in le="0.005" */
    sg_metric_observe(s1, sh, 0.05);
    sg_metric_observe(s1, sh, 7); /* above every bound: +Inf only */
    sg_metric_add(s0, sg, 3);
    sg_metric_add(s1, sg, -1);

    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_metrics_render(m, &out), SG_OK);
    assert_string_equal(out.data, "# HELP x_requests_total Requests.\\nSecond line \\\\ here.\n"
                                  "# TYPE x_requests_total counter\n"
                                  "x_requests_total{alias=\"a\\\"b\\\\c\\nd\"} 3\n"
                                  "x_requests_total 0.25\n"
                                  "# HELP x_duration_seconds Latency.\n"
                                  "# TYPE x_duration_seconds histogram\n"
                                  "x_duration_seconds_bucket{le=\"0.005\"} 1\n"
                                  "x_duration_seconds_bucket{le=\"0.1\"} 2\n"
                                  "x_duration_seconds_bucket{le=\"1\"} 2\n"
                                  "x_duration_seconds_bucket{le=\"+Inf\"} 3\n"
                                  "x_duration_seconds_sum 7.055\n"
                                  "x_duration_seconds_count 3\n"
                                  "# HELP x_in_flight Now.\n"
                                  "# TYPE x_in_flight gauge\n"
                                  "x_in_flight 2\n");
    sg_buf_dispose(&out);
    sg_metrics_free(m);
}

static double fn_value(void *ud)
{
    return *(double *)ud;
}

static void test_metrics_scrape_fn(void **state)
{
    (void)state;
    struct sg_metrics *m = sg_metrics_new(1);
    int g = sg_metrics_family(m, "x_queue_depth", "Depth.", SG_METRIC_GAUGE, NULL, 0);
    double v = 17;
    const char *l[] = {"store", "sqlite", NULL};
    sg_metrics_series_fn(m, g, l, fn_value, &v);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    sg_metrics_render(m, &out);
    assert_non_null(strstr(out.data, "x_queue_depth{store=\"sqlite\"} 17\n"));
    v = 18;
    sg_buf_reset(&out);
    sg_metrics_render(m, &out);
    assert_non_null(strstr(out.data, "x_queue_depth{store=\"sqlite\"} 18\n"));
    /* NaN: the series is absent from that scrape, and a family with nothing has no header. */
    v = NAN;
    sg_buf_reset(&out);
    sg_metrics_render(m, &out);
    assert_int_equal(out.len, 0);
    sg_buf_dispose(&out);
    sg_metrics_free(m);
}

/* Writers on their own shards while another thread scrapes: the final sum is exact. */
struct writer_arg {
    struct sg_metric_shard *s;
    sg_series_t c, h;
};

static void *writer(void *p)
{
    struct writer_arg *a = p;
    for (int i = 0; i < 200000; i++) {
        sg_metric_add(a->s, a->c, 1);
        sg_metric_observe(a->s, a->h, 0.01);
    }
    return NULL;
}

static void test_metrics_shards_concurrent(void **state)
{
    (void)state;
    struct sg_metrics *m = sg_metrics_new(2);
    int c = sg_metrics_family(m, "x_total", "n", SG_METRIC_COUNTER, NULL, 0);
    double b[] = {0.1};
    int h = sg_metrics_family(m, "x_seconds", "h", SG_METRIC_HISTOGRAM, b, 1);
    sg_series_t sc = sg_metrics_series(m, c, NULL), sh = sg_metrics_series(m, h, NULL);
    sg_metrics_freeze(m);
    struct writer_arg a0 = {sg_metrics_shard(m, 0), sc, sh}, a1 = {sg_metrics_shard(m, 1), sc, sh};
    pthread_t t0, t1;
    pthread_create(&t0, NULL, writer, &a0);
    pthread_create(&t1, NULL, writer, &a1);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    for (int i = 0; i < 50; i++) { /* scrapes during the writes see whole numbers */
        sg_buf_reset(&out);
        sg_metrics_render(m, &out);
    }
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);
    sg_buf_reset(&out);
    sg_metrics_render(m, &out);
    assert_non_null(strstr(out.data, "\nx_total 400000\n"));
    assert_non_null(strstr(out.data, "x_seconds_bucket{le=\"0.1\"} 400000\n"));
    assert_non_null(strstr(out.data, "x_seconds_count 400000\n"));
    sg_buf_dispose(&out);
    sg_metrics_free(m);
}

/* ---- the gateway's families ---- */

static const char cfg_yaml[] =
    "model_list:\n"
    "  - model_name: app/chat\n"
    "    litellm_params: {model: openai/gpt-4o-mini, api_key: k}\n"
    "    model_info: {id: primary}\n"
    "  - model_name: app/chat\n"
    "    litellm_params: {model: anthropic/claude-3-5-haiku, api_key: k}\n"
    "    model_info: {id: secondary}\n"
    "  - model_name: app/lite\n"
    "    litellm_params: {model: openai/gpt-4o-mini, api_key: k}\n"
    "    model_info: {id: lite}\n";

static struct sg_config *load_yaml(const char *yaml)
{
    struct sg_diags d;
    sg_diags_init(&d);
    struct sg_config *c = sg_config_load_string(yaml, strlen(yaml), "t.yaml", NULL, NULL, &d);
    sg_diags_print(&d, stderr);
    sg_diags_dispose(&d);
    assert_non_null(c);
    return c;
}

static struct sg_config *load_cfg(void)
{
    return load_yaml(cfg_yaml);
}

static double healthy_fn(void *ud, const char *id)
{
    (void)ud;
    return strcmp(id, "secondary") == 0 ? 0 : 1;
}

static void test_telemetry_count(void **state)
{
    (void)state;
    struct sg_config *cfg = load_cfg();
    struct sg_telemetry *t = sg_telemetry_new(1);
    struct sg_telemetry_keys *k = sg_telemetry_keys_new(t, cfg);
    struct sg_telemetry_state_fns f = {healthy_fn, NULL, NULL, NULL};
    sg_telemetry_set_state_fns(t, &f);
    sg_telemetry_freeze(t);
    struct sg_metric_shard *s = sg_telemetry_shard(t, 0);

    struct sg_event *ok = sg_event_new();
    SG_EVENT_SETS(ok, alias, "app/chat");
    SG_EVENT_SETS(ok, deployment, "secondary");
    SG_EVENT_SETS(ok, provider, "anthropic");
    ok->status = 200;
    ok->latency_ms_total = 300;
    ok->ttft_ms = 120;
    ok->overhead_us = 40;
    ok->input_tokens = 10;
    ok->output_tokens = 5;
    ok->cost_usd = 0.25;
    SG_EVENT_SETS(ok, cache_state, "miss");
    sg_telemetry_count(t, k, s, ok, "app/chat");
    ok->usage_estimated = true; /* the provider reported no usage: counted as estimated */
    sg_telemetry_count(t, k, s, ok, "app/chat");

    /* An unknown alias the client typed: counted under alias="" (no new series). */
    struct sg_event *bad = sg_event_new();
    SG_EVENT_SETS(bad, alias, "made-up/model");
    bad->status = 404;
    bad->latency_ms_total = 0.2;
    SG_EVENT_SETS(bad, error_type, "model_not_found");
    sg_telemetry_count(t, k, s, bad, NULL);
    /* No deployment answered a known group: deployment="". Unknown error types are "other". */
    SG_EVENT_SETS(bad, alias, "app/lite");
    bad->status = 503;
    SG_EVENT_SETS(bad, error_type, "something_new");
    SG_EVENT_SETS(bad, cache_state, "bypass"); /* it reached the lookup */
    sg_telemetry_count(t, k, s, bad, NULL);
    sg_telemetry_in_flight(t, s, 1);
    sg_telemetry_in_flight(t, s, 1);
    sg_telemetry_in_flight(t, s, -1);
    sg_telemetry_bump(t, s, SG_TC_SPANS_DROPPED_QUEUE, 3);

    struct sg_buf out;
    sg_buf_init(&out, 0);
    sg_metrics_render(sg_telemetry_metrics(t), &out);
    static const char *const want[] = {
        "slogate_requests_total{alias=\"app/chat\",deployment=\"secondary\",provider=\"anthropic\","
        "status_class=\"2xx\"} 2\n",
        "slogate_requests_total{alias=\"\",deployment=\"\",provider=\"\",status_class=\"4xx\"} 1\n",
        "slogate_requests_total{alias=\"app/lite\",deployment=\"\",provider=\"\","
        "status_class=\"5xx\"} 1\n",
        "slogate_request_failures_total{alias=\"\",error_type=\"model_not_found\"} 1\n",
        "slogate_request_failures_total{alias=\"app/lite\",error_type=\"other\"} 1\n",
        "slogate_request_duration_seconds_bucket{alias=\"app/chat\",deployment=\"secondary\","
        "le=\"0.25\"} 0\n",
        "slogate_request_duration_seconds_bucket{alias=\"app/chat\",deployment=\"secondary\","
        "le=\"0.5\"} 2\n",
        "slogate_time_to_first_token_seconds_sum{alias=\"app/chat\",deployment=\"secondary\"} "
        "0.24\n",
        "slogate_tokens_total{alias=\"app/chat\",deployment=\"secondary\",type=\"input\"} 20\n",
        "slogate_tokens_total{alias=\"app/chat\",deployment=\"secondary\",type=\"output\"} 10\n",
        "slogate_cost_usd_total{alias=\"app/chat\",deployment=\"secondary\"} 0.5\n",
        "slogate_usage_estimated_total{alias=\"app/chat\",deployment=\"secondary\"} 1\n",
        "slogate_usage_estimated_total{alias=\"app/chat\",deployment=\"primary\"} 0\n",
        "slogate_overhead_seconds_bucket{le=\"5e-05\"} 4\n",
        "slogate_cache_requests_total{result=\"miss\"} 2\n",
        "slogate_cache_requests_total{result=\"bypass\"} 1\n",
        "slogate_requests_in_flight 1\n",
        "slogate_deployment_healthy{alias=\"app/chat\",deployment=\"primary\"} 1\n",
        "slogate_deployment_healthy{alias=\"app/chat\",deployment=\"secondary\"} 0\n",
        "slogate_deployment_cooldown_remaining_seconds{alias=\"app/lite\",deployment=\"lite\"} "
        "0\n",
        "slogate_deployment_attempt_failures_total{alias=\"app/chat\",deployment=\"primary\"} "
        "0\n",
        "slogate_otlp_spans_dropped_total{reason=\"queue_full\"} 3\n",
    };
    for (size_t i = 0; i < SG_ARRAY_LEN(want); i++) {
        if (!strstr(out.data, want[i]))
            fail_msg("missing: %s\nin:\n%s", want[i], out.data);
    }
    /* The series a client cannot create: the typed alias never appears. */
    assert_null(strstr(out.data, "made-up"));
    assert_string_equal(sg_telemetry_error_label("timeout"), "timeout");
    assert_string_equal(sg_telemetry_error_label("zzz"), "other");
    assert_null(sg_telemetry_error_label(""));
    sg_buf_dispose(&out);
    sg_event_free(ok);
    sg_event_free(bad);
    sg_telemetry_keys_free(k);
    sg_telemetry_free(t);
    sg_config_unref(cfg);
}

static int render_has(struct sg_telemetry *t, const char *want)
{
    struct sg_buf out;
    sg_buf_init(&out, 0);
    sg_metrics_render(sg_telemetry_metrics(t), &out);
    int found = strstr(out.data, want) != NULL;
    sg_buf_dispose(&out);
    return found;
}

/* A reload adds a deployment while the registry is frozen and workers count: it gets series of
 * its own, and the counters of the deployments it kept carry on. When the spare is used up, a
 * new deployment is counted under its group instead. */
static void test_telemetry_keys_after_reload(void **state)
{
    (void)state;
    struct sg_config *cfg = load_cfg();
    struct sg_config *cfg2 = load_yaml("model_list:\n"
                                       "  - model_name: app/chat\n"
                                       "    litellm_params: {model: openai/gpt-4o-mini}\n"
                                       "    model_info: {id: primary}\n"
                                       "  - model_name: app/chat\n"
                                       "    litellm_params: {model: openai/gpt-4.1-mini}\n"
                                       "    model_info: {id: added}\n");
    struct sg_config *cfg3 = load_yaml("model_list:\n"
                                       "  - model_name: app/chat\n"
                                       "    litellm_params: {model: openai/gpt-4o-mini}\n"
                                       "    model_info: {id: primary}\n"
                                       "  - model_name: app/chat\n"
                                       "    litellm_params: {model: openai/gpt-4.1-mini}\n"
                                       "    model_info: {id: one-too-many}\n");
    struct sg_telemetry *t = sg_telemetry_new(1);
    struct sg_telemetry_keys *k1 = sg_telemetry_keys_new(t, cfg);
    /* Room for exactly one more deployment: 11 series (9 counters, 2 histograms of 17 slots)
     * and its 3 scrape-time ones. */
    sg_metrics_set_spare(sg_telemetry_metrics(t), 14, 11 + 2 * 16);
    sg_telemetry_freeze(t);
    struct sg_metric_shard *s = sg_telemetry_shard(t, 0);
    struct sg_event *ev = sg_event_new();
    SG_EVENT_SETS(ev, alias, "app/chat");
    SG_EVENT_SETS(ev, deployment, "primary");
    SG_EVENT_SETS(ev, provider, "openai");
    ev->status = 200;
    sg_telemetry_count(t, k1, s, ev, "app/chat");

    struct sg_telemetry_keys *k2 = sg_telemetry_keys_new(t, cfg2);
    sg_telemetry_count(t, k2, s, ev, "app/chat"); /* primary again, through the new keys */
    SG_EVENT_SETS(ev, deployment, "added");
    sg_telemetry_count(t, k2, s, ev, "app/chat");
    assert_true(render_has(t, "slogate_requests_total{alias=\"app/chat\",deployment=\"primary\","
                              "provider=\"openai\",status_class=\"2xx\"} 2\n"));
    assert_true(render_has(t, "slogate_requests_total{alias=\"app/chat\",deployment=\"added\","
                              "provider=\"openai\",status_class=\"2xx\"} 1\n"));
    assert_true(render_has(t, "slogate_deployment_healthy{alias=\"app/chat\","
                              "deployment=\"added\"} 1\n"));

    /* The spare is gone: the next new deployment counts under its group. */
    struct sg_telemetry_keys *k3 = sg_telemetry_keys_new(t, cfg3);
    SG_EVENT_SETS(ev, deployment, "one-too-many");
    sg_telemetry_count(t, k3, s, ev, "app/chat");
    assert_false(render_has(t, "deployment=\"one-too-many\",provider"));
    assert_true(render_has(t, "slogate_requests_total{alias=\"app/chat\",deployment=\"\","
                              "provider=\"\",status_class=\"2xx\"} 1\n"));
    sg_event_free(ev);
    sg_telemetry_keys_free(k1);
    sg_telemetry_keys_free(k2);
    sg_telemetry_keys_free(k3);
    sg_telemetry_free(t);
    sg_config_unref(cfg);
    sg_config_unref(cfg2);
    sg_config_unref(cfg3);
}

/* A config of the deployments "<prefix><i>", i in [from, to), step `step`, in 20 groups
 * ("g0".."g19"); `moved` is filed under "moved" instead of its group. */
static void fleet_append(struct sg_buf *b, const char *prefix, int from, int to, int step,
                         const char *moved)
{
    for (int i = from; i < to; i += step) {
        char id[32], group[16];
        snprintf(id, sizeof id, "%s%d", prefix, i);
        snprintf(group, sizeof group, "g%d", i % 20);
        sg_buf_appendf(
            b,
            "  - model_name: %s\n    litellm_params: {model: openai/gpt-4o-mini, api_key: k}\n"
            "    model_info: {id: %s}\n",
            moved && !strcmp(moved, id) ? "moved" : group, id);
    }
}

static size_t lines_starting(const char *text, const char *start)
{
    size_t n = 0;
    for (const char *p = strstr(text, start); p; p = strstr(p + 1, start))
        n += p == text || p[-1] == '\n';
    return n;
}

/* A reload of thousands of deployments, some kept, some removed, some new, one moved to another
 * alias: the kept ones count on in their series, the new ones get theirs, and the state gauges
 * describe exactly the new config (each pair once), as with a handful. */
static void test_telemetry_keys_follow_a_large_reload(void **state)
{
    (void)state;
    enum { N = 3000 };
    struct sg_buf y1, y2;
    sg_buf_init(&y1, 0);
    sg_buf_init(&y2, 0);
    sg_buf_appends(&y1, "model_list:\n");
    fleet_append(&y1, "a", 0, N, 1, NULL);
    sg_buf_appends(&y2, "model_list:\n");
    fleet_append(&y2, "a", 0, N, 2, "a2"); /* the even ones stay; a2 moves */
    fleet_append(&y2, "b", 0, N / 2, 1, NULL);
    struct sg_config *c1 = load_yaml(y1.data), *c2 = load_yaml(y2.data);
    struct sg_telemetry *t = sg_telemetry_new(1);
    struct sg_telemetry_keys *k1 = sg_telemetry_keys_new(t, c1);
    sg_metrics_set_spare(sg_telemetry_metrics(t), 14 * N, 60 * N);
    sg_telemetry_freeze(t);
    struct sg_metric_shard *s = sg_telemetry_shard(t, 0);
    struct sg_event *ev = sg_event_new();
    SG_EVENT_SETS(ev, alias, "g4");
    SG_EVENT_SETS(ev, deployment, "a4");
    ev->status = 200;
    sg_telemetry_count(t, k1, s, ev, "g4");
    struct sg_telemetry_keys *k2 = sg_telemetry_keys_new(t, c2);
    sg_telemetry_count(t, k2, s, ev, "g4");
    SG_EVENT_SETS(ev, alias, "g7");
    SG_EVENT_SETS(ev, deployment, "b7");
    sg_telemetry_count(t, k2, s, ev, "g7");

    struct sg_buf out;
    sg_buf_init(&out, 0);
    sg_metrics_render(sg_telemetry_metrics(t), &out);
    const char *txt = out.data;
    assert_non_null(strstr(txt, "slogate_requests_total{alias=\"g4\",deployment=\"a4\","
                                "provider=\"openai\",status_class=\"2xx\"} 2\n"));
    assert_non_null(strstr(txt, "slogate_requests_total{alias=\"g7\",deployment=\"b7\","
                                "provider=\"openai\",status_class=\"2xx\"} 1\n"));
    /* The state gauges: the new config's pairs, each once. */
    assert_int_equal(lines_starting(txt, "slogate_deployment_healthy{"), N / 2 + N / 2);
    assert_non_null(strstr(txt, "slogate_deployment_healthy{alias=\"g4\",deployment=\"a4\"} 1\n"));
    assert_non_null(strstr(txt, "slogate_deployment_healthy{alias=\"g0\",deployment=\"b0\"} 1\n"));
    assert_null(strstr(txt, "slogate_deployment_healthy{alias=\"g3\",deployment=\"a3\"}"));
    assert_non_null(strstr(txt, "slogate_deployment_healthy{alias=\"moved\",deployment=\"a2\"}"));
    assert_null(strstr(txt, "slogate_deployment_healthy{alias=\"g2\",deployment=\"a2\"}"));
    /* Counter series are made once per label set: a removed deployment keeps its (still) series,
     * the moved one has one under each alias. */
    assert_int_equal(lines_starting(txt, "slogate_cost_usd_total{"), 20 + 1 + N + N / 2 + 1 + 1);
    sg_buf_dispose(&out);
    sg_event_free(ev);
    sg_telemetry_keys_free(k1);
    sg_telemetry_keys_free(k2);
    sg_telemetry_free(t);
    sg_config_unref(c1);
    sg_config_unref(c2);
    sg_buf_dispose(&y1);
    sg_buf_dispose(&y2);
}

/* ---- OTLP encoding ---- */

static const char *attr(struct json_object *span, const char *key, const char *kind)
{
    struct json_object *a = json_path(span, "attributes");
    for (size_t i = 0; a && i < json_object_array_length(a); i++) {
        struct json_object *e = json_object_array_get_idx(a, i);
        if (strcmp(json_object_get_string(json_path(e, "key")), key) == 0) {
            struct json_object *v = json_path(json_object_object_get(e, "value"), kind);
            return v ? json_object_get_string(v) : "<wrong kind>";
        }
    }
    return NULL;
}

/* The spans of `e` in an export body: its root (to put), and the span list in `*list`. */
static struct json_object *encode_wrapped(const struct sg_event *e, struct sg_buf *spans,
                                          struct sg_buf *body, struct json_object **list)
{
    sg_buf_reset(spans);
    sg_otlp_encode_spans(e, spans);
    sg_buf_reset(body);
    assert_int_equal(sg_otlp_wrap(spans->data, spans->len, "svc", body), SG_OK);
    struct json_object *root = json_tokener_parse(body->data);
    assert_non_null(root);
    *list = json_path(root, "resourceSpans.0.scopeSpans.0.spans");
    return root;
}

static void test_otlp_encode(void **state)
{
    (void)state;
    struct sg_event *e = full_event("req-otlp");
    SG_EVENT_SETS(e, parent_span_id, "b7ad6b7169203331");
    e->n_attempts = 2;
    SG_EVENT_SETS(e, attempts[0].deployment, "primary");
    SG_EVENT_SETS(e, attempts[0].provider, "openai");
    SG_EVENT_SETS(e, attempts[0].model, "gpt-4o-mini");
    SG_EVENT_SETS(e, attempts[0].server_address, "api.openai.com");
    e->attempts[0].server_port = 443;
    SG_EVENT_SETS(e, attempts[0].span_id, "1111111111111111");
    e->attempts[0].start_us = 30;
    e->attempts[0].end_us = 500030;
    e->attempts[0].status = 503;
    SG_EVENT_SETS(e, attempts[0].error_type, "upstream_error");
    SG_EVENT_SETS(e, attempts[1].deployment, "secondary");
    SG_EVENT_SETS(e, attempts[1].provider, "anthropic");
    SG_EVENT_SETS(e, attempts[1].model, "claude-3-5-haiku");
    SG_EVENT_SETS(e, attempts[1].server_address, "api.anthropic.com");
    SG_EVENT_SETS(e, attempts[1].span_id, "2222222222222222");
    e->attempts[1].start_us = 500100;
    e->attempts[1].end_us = 1200000;
    e->attempts[1].status = 200;

    struct sg_buf spans, body;
    sg_buf_init(&spans, 0);
    sg_buf_init(&body, 0);
    assert_int_equal(sg_otlp_encode_spans(e, &spans), SG_OK);
    assert_int_equal(sg_otlp_wrap(spans.data, spans.len, "Acme \"Assistant\"", &body), SG_OK);
    struct json_object *root = json_tokener_parse(body.data);
    assert_non_null(root);
    assert_string_equal(json_object_get_string(json_path(
                            root, "resourceSpans.0.resource.attributes.0.value.stringValue")),
                        "Acme \"Assistant\"");
    struct json_object *list = json_path(root, "resourceSpans.0.scopeSpans.0.spans");
    assert_int_equal(json_object_array_length(list), 3);
    struct json_object *req = json_object_array_get_idx(list, 0);
    assert_string_equal(json_object_get_string(json_path(req, "name")), "chat app/chat");
    assert_int_equal(json_object_get_int(json_path(req, "kind")), 2);
    assert_string_equal(json_object_get_string(json_path(req, "traceId")),
                        "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal(json_object_get_string(json_path(req, "parentSpanId")), "b7ad6b7169203331");
    assert_string_equal(json_object_get_string(json_path(req, "startTimeUnixNano")),
                        "1795000000123456000");
    assert_string_equal(json_object_get_string(json_path(req, "endTimeUnixNano")),
                        "1795000001358023000");
    assert_string_equal(attr(req, "gen_ai.operation.name", "stringValue"), "chat");
    assert_string_equal(attr(req, "gen_ai.provider.name", "stringValue"), "openai");
    assert_string_equal(attr(req, "gen_ai.request.model", "stringValue"), "app/chat");
    assert_string_equal(attr(req, "gen_ai.response.model", "stringValue"),
                        "gpt-4o-mini-2024-07-18");
    assert_string_equal(attr(req, "gen_ai.usage.input_tokens", "intValue"), "240");
    assert_string_equal(attr(req, "gen_ai.usage.output_tokens", "intValue"), "42");
    assert_string_equal(attr(req, "error.type", "stringValue"), "upstream_error");
    assert_string_equal(attr(req, "server.address", "stringValue"), "api.anthropic.com");
    assert_string_equal(attr(req, "http.response.status_code", "intValue"), "502");
    assert_string_equal(attr(req, "slogate.request_id", "stringValue"), "req-otlp");
    assert_string_equal(attr(req, "slogate.usage.estimated", "boolValue"), "true");
    assert_int_equal(json_object_get_int(json_path(req, "status.code")), 2);

    struct json_object *a0 = json_object_array_get_idx(list, 1);
    assert_string_equal(json_object_get_string(json_path(a0, "name")), "chat gpt-4o-mini");
    assert_int_equal(json_object_get_int(json_path(a0, "kind")), 3);
    assert_string_equal(json_object_get_string(json_path(a0, "parentSpanId")), "00f067aa0ba902b7");
    assert_string_equal(json_object_get_string(json_path(a0, "spanId")), "1111111111111111");
    assert_string_equal(json_object_get_string(json_path(a0, "startTimeUnixNano")),
                        "1795000000123486000");
    assert_string_equal(attr(a0, "server.port", "intValue"), "443");
    assert_string_equal(attr(a0, "error.type", "stringValue"), "upstream_error");
    assert_string_equal(attr(a0, "http.response.status_code", "intValue"), "503");
    assert_string_equal(attr(a0, "slogate.attempt", "intValue"), "1");
    assert_null(attr(req, "slogate.attempts_dropped", "intValue")); /* none were */
    struct json_object *a1 = json_object_array_get_idx(list, 2);
    assert_string_equal(attr(a1, "gen_ai.provider.name", "stringValue"), "anthropic");
    assert_null(attr(a1, "error.type", "stringValue"));
    assert_null(json_path(a1, "status.code")); /* unset on success */
    json_object_put(root);

    /* A request that never reached a provider: one span, no provider attributes. */
    struct sg_event *x = sg_event_new();
    SG_EVENT_SETS(x, request_id, "r2");
    SG_EVENT_SETS(x, alias, "nope");
    SG_EVENT_SETS(x, trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    SG_EVENT_SETS(x, span_id, "00f067aa0ba902b7");
    x->status = 404;
    SG_EVENT_SETS(x, error_type, "model_not_found");
    sg_buf_reset(&spans);
    sg_otlp_encode_spans(x, &spans);
    root = json_tokener_parse(spans.data);
    assert_non_null(root);
    assert_null(attr(root, "gen_ai.provider.name", "stringValue"));
    assert_null(attr(root, "slogate.usage.estimated", "boolValue")); /* only when estimated */
    assert_null(json_path(root, "parentSpanId"));
    /* A 4xx is the client's mistake: error.type names it, the server span's status stays unset
     * (OpenTelemetry's HTTP conventions). */
    assert_string_equal(attr(root, "error.type", "stringValue"), "model_not_found");
    assert_null(json_path(root, "status.code"));
    json_object_put(root);
    /* A 200 whose stream then broke off failed: the status code is no success here (the
     * failures counter counts it too). */
    x->status = 200;
    SG_EVENT_SETS(x, error_type, "stream_interrupted");
    root = encode_wrapped(x, &spans, &body, &list);
    req = json_object_array_get_idx(list, 0);
    assert_int_equal(json_object_get_int(json_path(req, "status.code")), 2);
    assert_string_equal(json_object_get_string(json_path(req, "status.message")),
                        "stream_interrupted");
    json_object_put(root);
    /* A hedge's loser, cancelled when the other attempt answered first, did not fail. */
    x->status = 200;
    x->error_type[0] = '\0';
    x->n_attempts = 2;
    SG_EVENT_SETS(x, attempts[0].span_id, "1111111111111111");
    SG_EVENT_SETS(x, attempts[0].error_type, "cancelled");
    SG_EVENT_SETS(x, attempts[1].span_id, "2222222222222222");
    SG_EVENT_SETS(x, attempts[1].error_type, "timeout");
    root = encode_wrapped(x, &spans, &body, &list);
    assert_int_equal(json_object_array_length(list), 3);
    assert_null(json_path(json_object_array_get_idx(list, 0), "status.code"));
    a0 = json_object_array_get_idx(list, 1);
    assert_string_equal(attr(a0, "error.type", "stringValue"), "cancelled");
    assert_null(json_path(a0, "status.code"));
    assert_int_equal(
        json_object_get_int(json_path(json_object_array_get_idx(list, 2), "status.code")), 2);
    json_object_put(root);
    /* More attempts than an event keeps: the request span says how many are not there, and the
     * attempt in the last slot keeps its own number (the 10th, not the 2nd). */
    x->attempts_dropped = 8;
    x->attempts[1].number = 10;
    root = encode_wrapped(x, &spans, &body, &list);
    assert_string_equal(
        attr(json_object_array_get_idx(list, 0), "slogate.attempts_dropped", "intValue"), "8");
    assert_string_equal(attr(json_object_array_get_idx(list, 1), "slogate.attempt", "intValue"),
                        "1");
    assert_string_equal(attr(json_object_array_get_idx(list, 2), "slogate.attempt", "intValue"),
                        "10");
    json_object_put(root);
    sg_event_free(x);
    sg_buf_dispose(&spans);
    sg_buf_dispose(&body);
    sg_event_free(e);
}

/* ---- OTLP exporter against a collector on loopback ---- */

struct collector {
    struct sg_http_server *srv;
    int statuses[8]; /* what to answer, in order; 200 after the list */
    int n_statuses;
    int calls;
    int spans; /* spans in accepted (200) bodies */
    char path[64];
};

static void collector_handle(struct sg_http_request *req, void *ud)
{
    struct collector *c = ud;
    int st = c->calls < c->n_statuses ? c->statuses[c->calls] : 200;
    c->calls++;
    snprintf(c->path, sizeof c->path, "%.*s", (int)req->path.n, req->path.p);
    if (st == 200) {
        struct json_object *root = json_tokener_parse(req->body.data);
        struct json_object *spans = json_path(root, "resourceSpans.0.scopeSpans.0.spans");
        c->spans += spans ? (int)json_object_array_length(spans) : -1000;
        json_object_put(root);
    }
    sg_http_respond(req, st, NULL, 0, "{}", 2);
}

static bool closed_flag;
static void on_closed(void *ud)
{
    (void)ud;
    closed_flag = true;
}

static void run_until(uv_loop_t *loop, bool (*done)(void *), void *ud, int max_ms)
{
    uint64_t end = sg_now_ms() + (uint64_t)max_ms;
    while (!done(ud) && sg_now_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
}

static bool calls_at_least_3(void *ud)
{
    return ((struct collector *)ud)->calls >= 3;
}

static bool is_closed(void *ud)
{
    (void)ud;
    return closed_flag;
}

static struct sg_event *small_event(int i)
{
    struct sg_event *e = sg_event_new();
    char id[32];
    snprintf(id, sizeof id, "r%d", i);
    SG_EVENT_SETS(e, request_id, id);
    SG_EVENT_SETS(e, alias, "app/chat");
    SG_EVENT_SETS(e, trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    SG_EVENT_SETS(e, span_id, "00f067aa0ba902b7");
    e->status = 200;
    return e;
}

static void test_otlp_exporter_retry_and_drop(void **state)
{
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct sg_telemetry *t = sg_telemetry_new(1);
    sg_telemetry_freeze(t);
    struct sg_metric_shard *shard = sg_telemetry_shard(t, 0);

    struct collector col = {.statuses = {503, 429}, .n_statuses = 2};
    col.srv = sg_http_server_new(&loop, NULL, collector_handle, &col);
    assert_int_equal(sg_http_server_listen(col.srv, "127.0.0.1", 0, false), SG_OK);
    char ep[64];
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d/", sg_http_server_port(col.srv));

    struct sg_upstream *up = sg_upstream_new(&loop);
    struct sg_otlp_options o = {
        .endpoint = ep, .max_spans = 5, .batch_spans = 3, .flush_ms = 50, .max_retries = 3};
    struct sg_otlp *x = sg_otlp_new(&loop, up, &o, t, shard);
    /* 3 spans: a batch goes at once; 503 then 429 are retried; the third call is accepted. */
    for (int i = 0; i < 3; i++) {
        struct sg_event *e = small_event(i);
        sg_otlp_add(x, e);
        sg_event_free(e);
    }
    /* A trace its caller did not sample has no spans: not queued, not counted as dropped. */
    struct sg_event *unsampled = small_event(99);
    unsampled->trace_flags = 0;
    sg_otlp_add(x, unsampled);
    sg_event_free(unsampled);
    assert_int_equal(sg_otlp_pending(x), 3);
    /* The queue holds 5 (counting the batch in flight): 2 more fit, the third is dropped. */
    for (int i = 3; i < 6; i++) {
        struct sg_event *e = small_event(i);
        sg_otlp_add(x, e);
        sg_event_free(e);
    }
    assert_int_equal(sg_otlp_pending(x), 5);
    run_until(&loop, calls_at_least_3, &col, 5000);
    assert_int_equal(col.calls, 3);
    assert_string_equal(col.path, "/v1/traces");
    /* Close sends the 2 that waited, then frees. */
    closed_flag = false;
    sg_otlp_close(x, 2000, on_closed, NULL);
    run_until(&loop, is_closed, NULL, 5000);
    assert_true(closed_flag);
    assert_int_equal(col.spans, 5);

    struct sg_buf out;
    sg_buf_init(&out, 0);
    sg_metrics_render(sg_telemetry_metrics(t), &out);
    assert_non_null(strstr(out.data, "slogate_otlp_spans_exported_total 5\n"));
    assert_non_null(strstr(out.data, "slogate_otlp_export_retries_total 2\n"));
    assert_non_null(
        strstr(out.data, "slogate_otlp_spans_dropped_total{reason=\"queue_full\"} 1\n"));

    /* The collector gone: 1 try + 3 retries, then the batch is dropped and counted. */
    int port = sg_http_server_port(col.srv);
    sg_http_server_free(col.srv);
    uv_run(&loop, UV_RUN_NOWAIT);
    snprintf(ep, sizeof ep, "http://127.0.0.1:%d/v1/traces", port);
    struct sg_otlp_options o2 = {
        .endpoint = ep, .batch_spans = 1, .max_retries = 3, .timeout_ms = 1000};
    x = sg_otlp_new(&loop, up, &o2, t, shard);
    struct sg_event *e = small_event(9);
    sg_otlp_add(x, e);
    sg_event_free(e);
    uint64_t t0 = sg_now_ms();
    while (sg_otlp_pending(x) && sg_now_ms() - t0 < 8000)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(sg_otlp_pending(x), 0);
    sg_buf_reset(&out);
    sg_metrics_render(sg_telemetry_metrics(t), &out);
    assert_non_null(
        strstr(out.data, "slogate_otlp_spans_dropped_total{reason=\"export_failed\"} 1\n"));
    assert_non_null(strstr(out.data, "slogate_otlp_export_retries_total 5\n"));
    closed_flag = false;
    sg_otlp_close(x, 100, on_closed, NULL);
    run_until(&loop, is_closed, NULL, 2000);
    assert_true(closed_flag);

    sg_upstream_free(up);
    uv_run(&loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&loop), 0);
    sg_buf_dispose(&out);
    sg_telemetry_free(t);
}

/* ---- the request log ---- */

static int count_lines(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    int n = 0, ch;
    while ((ch = fgetc(f)) != EOF)
        n += ch == '\n';
    fclose(f);
    return n;
}

static void test_reqlog_rotation_and_prompts(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-reqlog-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], p1[140], p2[140], p3[140];
    snprintf(path, sizeof path, "%s/req.jsonl", dir);
    snprintf(p1, sizeof p1, "%s.1", path);
    snprintf(p2, sizeof p2, "%s.2", path);
    snprintf(p3, sizeof p3, "%s.3", path);

    struct sg_event *e = full_event("r-log");
    e->prompt = sg_xstrdup("secret prompt text");
    struct sg_buf one;
    sg_buf_init(&one, 0);
    sg_event_to_json(e, SG_EVENT_JSON_ATTEMPTS, &one);
    size_t line = one.len + 1;

    /* Room for 3 lines per file, 2 old files kept. */
    char err[200];
    struct sg_reqlog *l = sg_reqlog_open(path, line * 3, 2, false, err, sizeof err);
    assert_non_null(l);
    const struct sg_event *batch[4] = {e, e, e, e};
    int rot = 0, total = 0;
    for (int i = 0; i < 5; i++) { /* 20 lines: rotations at 3, 6, 9 ... */
        assert_int_equal(sg_reqlog_write(l, batch, 4, &rot, NULL), SG_OK);
        total += rot;
    }
    sg_reqlog_close(l);
    assert_int_equal(total, 6);
    assert_int_equal(count_lines(path), 2);
    assert_int_equal(count_lines(p1), 3);
    assert_int_equal(count_lines(p2), 3);
    assert_int_equal(count_lines(p3), -1); /* only `keep` old files */

    /* Every line is one JSON object; no prompt unless log_prompts. */
    FILE *f = fopen(p1, "r");
    char buf[8192];
    while (fgets(buf, sizeof buf, f)) {
        struct sg_event *d = sg_event_new();
        assert_int_equal(sg_event_from_json(buf, strlen(buf) - 1, d), SG_OK);
        assert_string_equal(d->request_id, "r-log");
        assert_null(strstr(buf, "secret prompt"));
        sg_event_free(d);
    }
    fclose(f);
    l = sg_reqlog_open(path, 0, 2, true, err, sizeof err);
    assert_int_equal(sg_reqlog_write(l, batch, 1, NULL, NULL), SG_OK);
    sg_reqlog_close(l);
    f = fopen(path, "r");
    int with = 0;
    while (fgets(buf, sizeof buf, f))
        with += strstr(buf, "\"prompt\":\"secret prompt text\"") != NULL;
    fclose(f);
    assert_int_equal(with, 1);

    /* Pointed at a device (through a symlink, so a broken rotation could only move the link):
     * written, never rotated. */
    char link[140];
    snprintf(link, sizeof link, "%s/devnull", dir);
    assert_int_equal(symlink("/dev/null", link), 0);
    l = sg_reqlog_open(link, line, 2, false, err, sizeof err);
    assert_non_null(l);
    rot = 0;
    for (int i = 0; i < 3; i++) {
        int r = 0;
        assert_int_equal(sg_reqlog_write(l, batch, 4, &r, NULL), SG_OK);
        rot += r;
    }
    sg_reqlog_close(l);
    assert_int_equal(rot, 0);
    struct stat lst;
    assert_int_equal(lstat(link, &lst), 0);
    assert_true(S_ISLNK(lst.st_mode));
    unlink(link);

    /* A directory that does not exist: an error message, no crash. */
    assert_null(sg_reqlog_open("/nonexistent-dir/x.jsonl", 0, 1, false, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent-dir/x.jsonl"));

    unlink(path);
    unlink(p1);
    unlink(p2);
    rmdir(dir);
    sg_buf_dispose(&one);
    sg_event_free(e);
}

/* sg_reqlog_write with files limited to `cap` bytes (RLIMIT_FSIZE, SIGXFSZ ignored): a disk
 * that refuses what goes past it, as a full one does. */
static int write_capped(struct sg_reqlog *l, const struct sg_event *const *batch, size_t n,
                        size_t cap, int *rotated, size_t *written)
{
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    lim = old;
    lim.rlim_cur = (rlim_t)cap;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    int rc = sg_reqlog_write(l, batch, n, rotated, written);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    return rc;
}

/* A write the disk cut short (RLIMIT_FSIZE here; ENOSPC or EIO in life) leaves no part of a line
 * behind: the next batch's lines start on a line of their own, and every line parses. */
static void test_reqlog_cut_write_leaves_no_partial_line(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-reqlog-cut-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/req.jsonl", dir);
    struct sg_event *e = full_event("r-cut");
    struct sg_buf one;
    sg_buf_init(&one, 0);
    sg_event_to_json(e, SG_EVENT_JSON_ATTEMPTS, &one);
    size_t line = one.len + 1;

    char err[200];
    struct sg_reqlog *l = sg_reqlog_open(path, 0, 2, false, err, sizeof err);
    assert_non_null(l);
    const struct sg_event *batch[3] = {e, e, e};
    assert_int_equal(sg_reqlog_write(l, batch, 1, NULL, NULL), SG_OK);

    /* The file may grow by a line and a half: the next batch of three is cut in its second. */
    size_t written = 99;
    assert_int_equal(write_capped(l, batch, 3, line * 2 + line / 2, NULL, &written), SG_EIO);
    assert_int_equal(written, 0); /* what went in was taken back */

    assert_int_equal(sg_reqlog_write(l, batch, 2, NULL, NULL), SG_OK);
    sg_reqlog_close(l);

    FILE *f = fopen(path, "r");
    assert_non_null(f);
    char *buf = NULL;
    size_t cap = 0;
    ssize_t n;
    int lines = 0;
    while ((n = getline(&buf, &cap, f)) > 0) {
        assert_int_equal(buf[n - 1], '\n');
        struct sg_event *d = sg_event_new();
        assert_int_equal(sg_event_from_json(buf, (size_t)n - 1, d), SG_OK);
        assert_string_equal(d->request_id, "r-cut");
        sg_event_free(d);
        lines++;
    }
    free(buf);
    fclose(f);
    assert_true(lines >= 3 && lines <= 5); /* 1 + what of the cut batch survived whole + 2 */
    unlink(path);
    rmdir(dir);
    sg_buf_dispose(&one);
    sg_event_free(e);
}

/* A batch that rotates, the write before the rotation refused (the old file may not grow) and the
 * one after taken: the caller hears how many lines went in, so slogate_request_log_lines_total
 * counts the line that is in the new file (and the errors counter the two lost). */
static void test_reqlog_written_lines_around_a_rotation(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-reqlog-rot-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128], p1[140];
    snprintf(path, sizeof path, "%s/req.jsonl", dir);
    snprintf(p1, sizeof p1, "%s.1", path);
    struct sg_event *e = full_event("r-rot");
    struct sg_buf one;
    sg_buf_init(&one, 0);
    sg_event_to_json(e, SG_EVENT_JSON_ATTEMPTS, &one);
    size_t line = one.len + 1; /* every line of the test */
    char err[200];
    struct sg_reqlog *l = sg_reqlog_open(path, line * 3, 2, false, err, sizeof err);
    assert_non_null(l);
    const struct sg_event *batch[3] = {e, e, e};
    size_t written = 0;
    assert_int_equal(sg_reqlog_write(l, batch, 2, NULL, &written), SG_OK);
    assert_int_equal(written, 2);

    /* Files may hold two and a half lines: the old file refuses its third line; the second
     * line of the batch rotates and goes into the new file; the third is not tried. */
    int rot = 0;
    assert_int_equal(write_capped(l, batch, 3, line * 2 + line / 2, &rot, &written), SG_EIO);
    sg_reqlog_close(l);
    assert_int_equal(rot, 1);
    assert_int_equal(written, 1);
    assert_int_equal(count_lines(p1), 2);
    assert_int_equal(count_lines(path), 1);
    unlink(path);
    unlink(p1);
    rmdir(dir);
    sg_buf_dispose(&one);
    sg_event_free(e);
}

int main(void)
{
    sg_log_set_level(SG_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_event_defaults_and_truncation),
        cmocka_unit_test(test_event_recycled_clean),
        cmocka_unit_test(test_event_pool_release),
        cmocka_unit_test(test_event_pool_threads),
        cmocka_unit_test(test_event_json_round_trip),
        cmocka_unit_test(test_traceparent),
        cmocka_unit_test(test_request_id_time_ordered),
        cmocka_unit_test(test_metrics_render_exact),
        cmocka_unit_test(test_metrics_scrape_fn),
        cmocka_unit_test(test_metrics_shards_concurrent),
        cmocka_unit_test(test_telemetry_count),
        cmocka_unit_test(test_telemetry_keys_after_reload),
        cmocka_unit_test(test_telemetry_keys_follow_a_large_reload),
        cmocka_unit_test(test_otlp_encode),
        cmocka_unit_test(test_otlp_exporter_retry_and_drop),
        cmocka_unit_test(test_reqlog_rotation_and_prompts),
        cmocka_unit_test(test_reqlog_cut_write_leaves_no_partial_line),
        cmocka_unit_test(test_reqlog_written_lines_around_a_rotation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
