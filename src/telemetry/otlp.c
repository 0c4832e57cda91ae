/*
 * OTLP/HTTP JSON traces: one span per client request (SERVER) and one child span per upstream
 * attempt (CLIENT), named and attributed after the OpenTelemetry GenAI conventions, sent in
 * batches from each worker's own loop.
 *
 * Exporter states (one per worker, everything on its loop):
 *   idle     — spans wait in `pending`; a timer sends them after flush_ms, or at once when
 *              batch_spans wait.
 *   sending  — `body` holds one ExportTraceServiceRequest; the call is in flight.
 *   backoff  — the last try got a 429, a 5xx or no answer: the timer resends `body` later
 *              (200 ms, doubling), up to max_retries; then the batch is dropped and counted.
 * Waiting spans are bounded (max_spans, counting those in `body`): past that, new spans are
 * dropped and counted — never a block, never unbounded memory when the collector is gone.
 */
#include "telemetry.h"
#include "upstream/upstream.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

/* ---- encoding ---- */

static void attr_str(struct sg_buf *b, bool *first, const char *key, const char *v)
{
    if (!v || !*v)
        return;
    sg_buf_appendf(b, "%s{\"key\":\"%s\",\"value\":{\"stringValue\":\"", *first ? "" : ",", key);
    sg_buf_append_json_str(b, v, strlen(v));
    sg_buf_appends(b, "\"}}");
    *first = false;
}

/* int64 values are JSON strings in OTLP/JSON (protobuf's JSON mapping). */
static void attr_int(struct sg_buf *b, bool *first, const char *key, int64_t v)
{
    sg_buf_appendf(b, "%s{\"key\":\"%s\",\"value\":{\"intValue\":\"%" PRId64 "\"}}",
                   *first ? "" : ",", key, v);
    *first = false;
}

static void attr_double(struct sg_buf *b, bool *first, const char *key, double v)
{
    sg_buf_appendf(b, "%s{\"key\":\"%s\",\"value\":{\"doubleValue\":%.17g}}", *first ? "" : ",",
                   key, isfinite(v) ? v : 0.0);
    *first = false;
}

static void attr_bool(struct sg_buf *b, bool *first, const char *key, bool v)
{
    sg_buf_appendf(b, "%s{\"key\":\"%s\",\"value\":{\"boolValue\":%s}}", *first ? "" : ",", key,
                   v ? "true" : "false");
    *first = false;
}

static void span_head(struct sg_buf *b, const char *trace_id, const char *span_id,
                      const char *parent, const char *op, const char *model, int kind,
                      uint64_t start_us, uint64_t end_us)
{
    sg_buf_appendf(b, "{\"traceId\":\"%s\",\"spanId\":\"%s\"", trace_id, span_id);
    if (parent && *parent)
        sg_buf_appendf(b, ",\"parentSpanId\":\"%s\"", parent);
    /* GenAI span name: "{gen_ai.operation.name} {gen_ai.request.model}". */
    sg_buf_appendf(b, ",\"name\":\"%s", op); /* op is ours: "chat" or "embeddings" */
    if (model && *model) {
        sg_buf_append(b, " ", 1);
        sg_buf_append_json_str(b, model, strlen(model));
    }
    sg_buf_appendf(b,
                   "\",\"kind\":%d,\"startTimeUnixNano\":\"%" PRIu64
                   "000\",\"endTimeUnixNano\":\"%" PRIu64 "000\",\"attributes\":[",
                   kind, start_us, end_us);
}

/* The span's status: code 2 with the error type when `error`, else unset (OpenTelemetry leaves
 * success unset). */
static void span_tail(struct sg_buf *b, const char *error_type, bool error)
{
    if (error && error_type && *error_type) {
        sg_buf_appends(b, "],\"status\":{\"code\":2,\"message\":\"");
        sg_buf_append_json_str(b, error_type, strlen(error_type));
        sg_buf_appends(b, "\"}}");
    } else {
        sg_buf_appends(b, "],\"status\":{}}");
    }
}

/* Whether the request (SERVER) span is an error, as OpenTelemetry's HTTP conventions have it: a
 * 5xx, no answer at all, or a 2xx whose answer then broke off (a stream ended by an error event:
 * "another error" than the status, which the failures counter counts too). A 4xx — the client's
 * mistake, or a client that left (499) — leaves it unset; error.type still names it. */
static bool request_failed(const struct sg_event *ev)
{
    return ev->status >= 500 || ev->status == 0 || (ev->status < 400 && ev->error_type[0]);
}

int sg_otlp_encode_spans(const struct sg_event *ev, struct sg_buf *out)
{
    size_t start = out->len;
    uint64_t t0 = ev->start_unix_us;
    uint64_t t1 =
        t0 + (uint64_t)(ev->latency_ms_total > 0 ? llround(ev->latency_ms_total * 1000.0) : 0);
    const struct sg_event_attempt *last = ev->n_attempts ? &ev->attempts[ev->n_attempts - 1] : NULL;
    const char *op = ev->operation[0] ? ev->operation : "chat";
    bool first = true;

    span_head(out, ev->trace_id, ev->span_id, ev->parent_span_id, op, ev->alias, 2, t0, t1);
    attr_str(out, &first, "gen_ai.operation.name", op);
    attr_str(out, &first, "gen_ai.provider.name", ev->provider);
    attr_str(out, &first, "gen_ai.request.model", ev->alias);
    attr_str(out, &first, "gen_ai.response.model",
             ev->response_model[0] ? ev->response_model : ev->model);
    if (ev->input_tokens > 0 || ev->output_tokens > 0) {
        attr_int(out, &first, "gen_ai.usage.input_tokens", ev->input_tokens);
        attr_int(out, &first, "gen_ai.usage.output_tokens", ev->output_tokens);
    }
    attr_str(out, &first, "error.type", ev->error_type);
    if (last) {
        attr_str(out, &first, "server.address", last->server_address);
        if (last->server_port)
            attr_int(out, &first, "server.port", last->server_port);
    }
    attr_int(out, &first, "http.response.status_code", ev->status);
    attr_str(out, &first, "slogate.request_id", ev->request_id);
    attr_str(out, &first, "slogate.tenant_id", ev->tenant_id);
    attr_str(out, &first, "slogate.feature", ev->feature);
    attr_str(out, &first, "slogate.deployment", ev->deployment);
    attr_str(out, &first, "slogate.region", ev->region);
    attr_str(out, &first, "slogate.cache", ev->cache_state);
    attr_int(out, &first, "slogate.retries", ev->retries);
    attr_int(out, &first, "slogate.failover_hops", ev->failover_hops);
    if (ev->attempts_dropped) /* the attempt spans below are not all of them */
        attr_int(out, &first, "slogate.attempts_dropped", ev->attempts_dropped);
    attr_int(out, &first, "slogate.overhead_us", (int64_t)ev->overhead_us);
    if (ev->cached_tokens > 0)
        attr_int(out, &first, "slogate.usage.cached_tokens", ev->cached_tokens);
    if (ev->cost_usd > 0)
        attr_double(out, &first, "slogate.cost_usd", ev->cost_usd);
    attr_bool(out, &first, "slogate.stream", ev->stream);
    if (ev->usage_estimated)
        attr_bool(out, &first, "slogate.usage.estimated", true);
    span_tail(out, ev->error_type, request_failed(ev));

    for (int i = 0; i < ev->n_attempts; i++) {
        const struct sg_event_attempt *a = &ev->attempts[i];
        first = true;
        sg_buf_append(out, ",", 1);
        span_head(out, ev->trace_id, a->span_id, ev->span_id, op, a->model, 3, t0 + a->start_us,
                  t0 + (a->end_us > a->start_us ? a->end_us : a->start_us));
        attr_str(out, &first, "gen_ai.operation.name", op);
        attr_str(out, &first, "gen_ai.provider.name", a->provider);
        attr_str(out, &first, "gen_ai.request.model", a->model);
        attr_str(out, &first, "server.address", a->server_address);
        if (a->server_port)
            attr_int(out, &first, "server.port", a->server_port);
        if (a->status)
            attr_int(out, &first, "http.response.status_code", a->status);
        attr_str(out, &first, "error.type", a->error_type);
        attr_str(out, &first, "slogate.deployment", a->deployment);
        attr_int(out, &first, "slogate.attempt", a->number ? a->number : i + 1);
        /* A client span fails on any error; a hedge's loser, cancelled because the other
         * attempt answered first, did not fail (routing does not count it either). */
        span_tail(out, a->error_type, strcmp(a->error_type, "cancelled") != 0);
    }
    /* A capped buffer that refused an append holds a cut span: take the request's spans out. */
    if (out->len + 1 >= out->max) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        return SG_ETOOBIG;
    }
    return SG_OK;
}

int sg_otlp_wrap(const char *spans, size_t len, const char *service_name, struct sg_buf *out)
{
    const char *svc = service_name && *service_name ? service_name : "slogate";
    int rc = sg_buf_appends(out, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[{\"key\":"
                                 "\"service.name\",\"value\":{\"stringValue\":\"");
    rc = rc ? rc : sg_buf_append_json_str(out, svc, strlen(svc));
    rc = rc ? rc
            : sg_buf_appends(out, "\"}}]},\"scopeSpans\":[{\"scope\":{\"name\":\"slogate\"},"
                                  "\"spans\":[");
    rc = rc ? rc : sg_buf_append(out, spans, len);
    rc = rc ? rc : sg_buf_appends(out, "]}]}]}");
    return rc;
}

/* ---- the exporter ---- */

struct sg_otlp {
    uv_loop_t *loop;
    struct sg_upstream *up;
    struct sg_upstream_headers *headers;
    char *url;
    char *service_name;
    struct sg_otlp_options o;
    struct sg_telemetry *tel;
    struct sg_metric_shard *shard;

    struct sg_buf pending; /* span objects, comma-separated */
    size_t n_pending;
    struct sg_buf body; /* the batch being sent or waiting to be resent */
    size_t n_body;
    struct sg_upstream_call *call;
    int tries;
    uint64_t retry_after_ms; /* the collector's Retry-After on the last answer, 0: none */
    uv_timer_t timer;        /* flush, backoff, and the close deadline */
    bool timer_armed;

    bool closing;
    void (*done)(void *ud);
    void *done_ud;
};

static void export_start(struct sg_otlp *x);
static void export_send(struct sg_otlp *x);

static void count(struct sg_otlp *x, enum sg_telemetry_counter c, double v)
{
    if (x->tel && v)
        sg_telemetry_bump(x->tel, x->shard, c, v);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct sg_otlp *x = h->data;
    sg_upstream_headers_free(x->headers);
    sg_buf_dispose(&x->pending);
    sg_buf_dispose(&x->body);
    free(x->url);
    free(x->service_name);
    void (*done)(void *) = x->done;
    void *ud = x->done_ud;
    free(x);
    if (done)
        done(ud);
}

/* Closing: once nothing is in flight, release the timer and then the exporter. */
static void maybe_finish(struct sg_otlp *x)
{
    if (!x->closing || x->call)
        return;
    if (x->n_pending && !x->n_body) {
        export_start(x);
        if (x->call)
            return;
    }
    count(x, SG_TC_SPANS_DROPPED_EXPORT, (double)(x->n_body + x->n_pending));
    x->n_body = x->n_pending = 0;
    uv_timer_stop(&x->timer);
    if (!uv_is_closing((uv_handle_t *)&x->timer))
        uv_close((uv_handle_t *)&x->timer, on_timer_closed);
}

static void on_timer(uv_timer_t *t);

static void arm(struct sg_otlp *x, uint64_t ms)
{
    x->timer_armed = true;
    uv_timer_start(&x->timer, on_timer, ms, 0);
}

/* The wait a collector may ask for with Retry-After is honoured up to this much: long enough for
 * a collector that is shedding load, short enough that a batch is not held for hours (spans keep
 * queueing meanwhile, within max_spans). */
#define RETRY_AFTER_MAX_MS 30000u

static bool retryable(const struct sg_upstream_result *r)
{
    return r->error || r->status == 429 || r->status == 408 || r->status >= 500;
}

static void on_done(void *ud, const struct sg_upstream_result *r)
{
    struct sg_otlp *x = ud;
    x->call = NULL;
    if (!r->error && r->status >= 200 && r->status < 300) {
        count(x, SG_TC_SPANS_EXPORTED, (double)x->n_body);
    } else if (retryable(r) && x->tries <= x->o.max_retries && !x->closing) {
        count(x, SG_TC_EXPORT_RETRIES, 1);
        SG_DEBUG("telemetry", "OTLP export to %s failed (%s, HTTP %d); retry %d", x->url,
                 r->error ? sg_strerror(r->error) : "answered", r->status, x->tries);
        /* Backoff from 200 ms, doubling; longer when the collector asked (Retry-After). */
        uint64_t wait = 200u << (x->tries - 1 < 6 ? x->tries - 1 : 6);
        if (x->retry_after_ms > wait)
            wait = SG_MIN(x->retry_after_ms, (uint64_t)RETRY_AFTER_MAX_MS);
        arm(x, wait);
        return;
    } else {
        SG_WARN("telemetry", "OTLP export to %s failed (%s, HTTP %d): %zu spans dropped", x->url,
                r->error ? (r->detail ? r->detail : sg_strerror(r->error)) : "answered", r->status,
                x->n_body);
        count(x, SG_TC_SPANS_DROPPED_EXPORT, (double)x->n_body);
    }
    sg_buf_reset(&x->body);
    x->n_body = 0;
    if (x->closing) {
        maybe_finish(x);
        return;
    }
    if (x->n_pending >= x->o.batch_spans)
        export_start(x);
    else if (x->n_pending && !x->timer_armed)
        arm(x, x->o.flush_ms);
}

static void on_head(void *ud, int status, const struct sg_http_header *h, size_t n)
{
    struct sg_otlp *x = ud;
    SG_UNUSED(status);
    for (size_t i = 0; i < n; i++)
        if (sg_slice_ieq(h[i].name, "retry-after")) {
            if (!sg_retry_after_ms(h[i].value, &x->retry_after_ms))
                x->retry_after_ms = 0; /* past, unreadable or over a day: our own backoff */
            break;
        }
}

static void on_body(void *ud, const char *data, size_t len)
{
    SG_UNUSED(ud);
    SG_UNUSED(data);
    SG_UNUSED(len);
}

static const struct sg_upstream_handlers handlers = {on_head, on_body, on_done};

static void export_send(struct sg_otlp *x)
{
    struct sg_upstream_request r = {
        .url = x->url,
        .body = x->body.data,
        .body_len = x->body.len,
        .headers = x->headers,
        .timeout_ms = x->o.timeout_ms,
        .connect_timeout_ms = x->o.timeout_ms,
    };
    x->tries++;
    x->retry_after_ms = 0;
    x->call = sg_upstream_start(x->up, &r, &handlers, x);
}

/* Move what waits into one request body and send it. */
static void export_start(struct sg_otlp *x)
{
    if (x->call || x->n_body || !x->n_pending)
        return;
    sg_buf_reset(&x->body);
    if (sg_otlp_wrap(x->pending.data, x->pending.len, x->service_name, &x->body) != SG_OK) {
        count(x, SG_TC_SPANS_DROPPED_EXPORT, (double)x->n_pending);
        sg_buf_reset(&x->pending);
        x->n_pending = 0;
        return;
    }
    x->n_body = x->n_pending;
    sg_buf_reset(&x->pending);
    x->n_pending = 0;
    x->tries = 0;
    export_send(x);
}

static void on_timer(uv_timer_t *t)
{
    struct sg_otlp *x = t->data;
    x->timer_armed = false;
    if (x->closing) {
        /* The close deadline passed with a call still out: give up on it. */
        if (x->call) {
            sg_upstream_cancel(x->call);
            x->call = NULL;
        }
        maybe_finish(x);
        return;
    }
    if (x->n_body && !x->call)
        export_send(x); /* a retry after backoff */
    else
        export_start(x);
}

struct sg_otlp *sg_otlp_new(uv_loop_t *loop, struct sg_upstream *up,
                            const struct sg_otlp_options *o, struct sg_telemetry *tel,
                            struct sg_metric_shard *shard)
{
    struct sg_otlp *x = sg_xcalloc(1, sizeof *x);
    x->loop = loop;
    x->up = up;
    x->o = *o;
    if (!x->o.max_spans)
        x->o.max_spans = 4096;
    if (!x->o.batch_spans)
        x->o.batch_spans = 512;
    if (!x->o.flush_ms)
        x->o.flush_ms = 1000;
    if (!x->o.timeout_ms)
        x->o.timeout_ms = 5000;
    if (x->o.max_retries < 0)
        x->o.max_retries = 0;
    x->tel = tel;
    x->shard = shard;
    const char *ep = o->endpoint ? o->endpoint : "http://127.0.0.1:4318";
    size_t n = strlen(ep);
    while (n && ep[n - 1] == '/')
        n--;
    /* OTLP/HTTP: a base endpoint gets the signal path; a full one is used as given. */
    if (n >= 10 && memcmp(ep + n - 10, "/v1/traces", 10) == 0)
        x->url = sg_xstrndup(ep, n);
    else
        x->url = sg_xasprintf("%.*s/v1/traces", (int)n, ep);
    x->service_name = sg_xstrdup(o->service_name ? o->service_name : "slogate");
    const char *lines[] = {"Content-Type: application/json"};
    x->headers = sg_upstream_headers_new(lines, 1);
    sg_buf_init(&x->pending, 0);
    sg_buf_init(&x->body, 0);
    uv_timer_init(loop, &x->timer);
    x->timer.data = x;
    x->o.endpoint = x->url;
    x->o.service_name = x->service_name;
    return x;
}

void sg_otlp_add(struct sg_otlp *x, const struct sg_event *ev)
{
    /* A caller that sent "not sampled" decided for its trace (OpenTelemetry's default
     * ParentBased sampler does the same); a trace we start is always sampled. */
    if (!x || x->closing || !(ev->trace_flags & SG_TRACE_SAMPLED))
        return;
    size_t spans = 1 + (size_t)ev->n_attempts;
    if (x->n_pending + x->n_body + spans > x->o.max_spans) {
        count(x, SG_TC_SPANS_DROPPED_QUEUE, (double)spans);
        return;
    }
    size_t before = x->pending.len;
    if (x->n_pending)
        sg_buf_append(&x->pending, ",", 1);
    if (sg_otlp_encode_spans(ev, &x->pending) != SG_OK) {
        x->pending.len = before;
        if (x->pending.data)
            x->pending.data[before] = '\0';
        count(x, SG_TC_SPANS_DROPPED_QUEUE, (double)spans);
        return;
    }
    x->n_pending += spans;
    if (x->n_pending >= x->o.batch_spans && !x->n_body)
        export_start(x);
    else if (!x->timer_armed && !x->n_body)
        arm(x, x->o.flush_ms);
}

size_t sg_otlp_pending(const struct sg_otlp *x)
{
    return x ? x->n_pending + x->n_body : 0;
}

void sg_otlp_close(struct sg_otlp *x, uint32_t deadline_ms, void (*done)(void *ud), void *ud)
{
    if (!x) {
        if (done)
            done(ud);
        return;
    }
    x->closing = true;
    x->done = done;
    x->done_ud = ud;
    /* One last try for what waits; the timer now bounds how long we wait for it. */
    arm(x, deadline_ms ? deadline_ms : 1);
    if (x->n_body && !x->call) {
        x->tries = x->o.max_retries + 1; /* no more retries */
        export_send(x);
        return;
    }
    maybe_finish(x);
}
