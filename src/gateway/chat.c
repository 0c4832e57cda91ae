/*
 * The proxied request path (DESIGN §2), one function per stage:
 *
 *   gw_chat → parse → attribute → admit → cache_lookup → route (sg_route_*) → attempt
 *     → upstream callbacks (on_up_head, on_up_body, on_up_done) → answer → record
 *
 * A request walks the router: pick a deployment, attempt it, report the outcome, pick again,
 * until an answer reaches the client or nothing is left. Failover is possible until the first
 * byte goes to the client; with hedging two attempts may run at once and the first to produce
 * a byte wins.
 *
 * Ownership: a `struct gw_req` is created per request and freed in gw_finish(), its single exit,
 * after the HTTP request was finished exactly once, every attempt ended or was cancelled and
 * reported to the router, and the event recorded.
 */
#include "gateway_int.h"
#include "provider/provider.h"
#include "telemetry/telemetry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <time.h>

#define MAX_UPSTREAM_BODY (32u * 1024 * 1024) /* a non-streamed answer larger than this is cut */
#define MAX_SSE_EVENT (4u * 1024 * 1024)
#define MAX_ATTEMPTS 2                  /* at once: the attempt and its hedge */
#define STREAM_HIGH_WATER (256u * 1024) /* queued to a client before its provider pauses */

struct gw_req;

/* One upstream attempt. Two may run at once when hedging. */
struct gw_attempt {
    struct gw_req *g;
    const struct sg_deployment *dep;
    struct sg_upstream_call *call; /* non-NULL while running */
    int status;
    uint64_t retry_after_ms; /* from the provider's Retry-After */
    struct sg_buf body;      /* what the provider sent that is not relayed as it comes */
    struct sg_sse_parser sse;
    uint64_t t_start_us, t_first_us;
    int ev_i;                 /* this attempt's child span in the request event */
    char traceparent[80];     /* "traceparent: ..." sent upstream, or "" */
    bool paused;              /* back-pressure: the client is slower than the provider */
    bool ttfb_cut, total_cut; /* the request's deadline left it well under its own caps */
    char ctype[48];           /* the answer's Content-Type, for what a broken 200 was */
    /* Stream state, by wire format (provider/provider.h): usage and completion are read from
     * every stream; events are translated when the client speaks another format. */
    struct sg_openai_stream ostream;    /* OpenAI-format stream: the usage chunk */
    struct sg_anthropic_stream astream; /* Anthropic-format stream */
    struct sg_messages_stream mstream;  /* chunks turned into Messages events */
    struct sg_buf xlate;                /* the events one upstream event became */
    /* A whole answer, once checked (answer_decode): what the client gets, and its usage. */
    struct sg_slice answer;
    struct sg_usage usage;
    struct sg_price price; /* the model called: a wildcard route's, looked up for its model */
    bool priced;           /* false: no price known (cost 0, counted) */
};

/* A request's timers (the hedge, a deferred failover) live apart: libuv frees a handle only in
 * its close callback, which may run after the request is gone. Stopping one is closing it
 * (timer_stop). */
struct req_timer {
    uv_timer_t t;
    struct gw_req *g;
};

struct gw_req {
    struct sg_worker *w;
    struct sg_http_request *http;
    struct sg_runtime *rt; /* a reference: a reload cannot pull the config away */
    char request_id[33];
    struct sg_chat_request chat;
    struct sg_match match; /* how chat.model resolved: a wildcard route's captures */
    struct sg_slice tenant, user, feature;
    const char *cache_state; /* hit | miss | stale | bypass; NULL before the lookup */

    struct sg_route route;
    struct gw_attempt att[MAX_ATTEMPTS];
    struct gw_attempt *winner; /* the attempt whose answer the client gets */
    const struct sg_deployment *answered_by;
    struct req_timer *hedge;
    struct req_timer *failover; /* the next attempt, started on the next loop turn */
    struct sg_buf up_body;      /* encoded for the current attempt */
    struct sg_buf log;          /* "primary: HTTP 500 (12 ms); ..." for the final error */
    enum sg_outcome last_outcome;
    int n_timeouts; /* attempts that failed by a timeout (first byte or whole answer) */

    bool stream_started; /* the stream head went to the client */
    bool finished;       /* the HTTP request was finished */
    uint64_t t_recv_us;  /* the request's first byte */
    uint64_t t_read_us;  /* the request read whole: where the gateway's own time starts */
    uint64_t t_attempt_us, t_up_done_us;
    uint64_t retry_after_s;     /* Retry-After on our own answer (503) */
    char faults[256];           /* x-slogate-faults: drill faults active right now */
    struct sg_usage usage;      /* as the answering provider reported it, or estimated */
    int64_t input_estimate;     /* the pre-call input-token estimate, once computed */
    bool input_estimated;       /* input_estimate is set */
    double cost_usd;            /* usage at the deployment's prices (0 when unpriced) */
    bool unpriced;              /* answered by a deployment with no known price: the
                                 * request event's `unpriced` (slogate_unpriced_requests_total) */
    char cost_hdr[32];          /* x-slogate-cost-usd */
    int status;                 /* what the client got */
    const char *error_type;     /* NULL on success */
    struct sg_event *ev;        /* filled as the request goes, recorded at the end */
    char *tracestate;           /* "tracestate: ..." sent on with the caller's trace, or NULL */
    char *anthropic_beta;       /* a Messages client's "anthropic-beta: ...", or NULL */
    uint64_t t_first_client_us; /* the first byte of the answer went to the client */
    char hdr_vals[5][32];
};

static void gw_next(struct gw_req *g);
static void log_attempt(struct gw_req *g, struct gw_attempt *a, const struct sg_upstream_result *r,
                        enum sg_outcome o);
static void on_client_drain(struct sg_http_request *req, void *ud);
static void usage_estimate(struct gw_req *g, const struct gw_attempt *a, struct sg_usage *u);
static void gw_record(struct gw_req *g);
static void stream_cost(struct gw_req *g);

/* The request's input tokens by the pre-call estimator (docs/pricing.md), computed once: the
 * stream's cost header, a Messages stream's message_start and any usage estimate share it. */
static int64_t input_estimate(struct gw_req *g)
{
    if (!g->input_estimated) {
        int64_t in = sg_tokens_estimate_request(g->chat.body, g->chat.body_len);
        g->input_estimate = in > 0 ? in : 0;
        g->input_estimated = true;
    }
    return g->input_estimate;
}

/* ---- answers ---- */

static bool is_success(int status)
{
    return status >= 200 && status < 300;
}

/* A header value: v in decimal, written into buf (at least 21 bytes). */
static struct sg_slice num_value(char *buf, uint64_t v)
{
    return (struct sg_slice){buf, sg_fmt_u64(buf, v)};
}

/* The gateway's own time (x-slogate-overhead-us): from the request read whole to the first
 * upstream call, plus from the upstream's end to now. The client's upload is not in it. */
static uint64_t gw_overhead_us(const struct gw_req *g, uint64_t now)
{
    return (g->t_attempt_us ? g->t_attempt_us : now) - g->t_read_us +
           (g->t_up_done_us ? now - g->t_up_done_us : 0);
}

/* The x-slogate-* headers every proxied answer carries. Returns how many were written. */
static size_t gw_headers(struct gw_req *g, struct sg_http_header *h, const char *content_type)
{
    size_t n = 0;
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("Content-Type"), sg_slice_of(content_type)};
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-request-id"), sg_slice_of(g->request_id)};
    if (g->chat.api == SG_API_MESSAGES) /* Anthropic's name: its SDK's _request_id, requestID */
        h[n++] = (struct sg_http_header){SG_SLICE_LIT("request-id"), sg_slice_of(g->request_id)};
    const struct sg_deployment *d = g->answered_by;
    if (d) {
        h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-deployment"), sg_slice_of(d->id)};
        h[n++] =
            (struct sg_http_header){SG_SLICE_LIT("x-slogate-provider"), sg_slice_of(d->provider)};
    }
    uint64_t now = sg_now_us();
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-attempts"),
                                     num_value(g->hdr_vals[0], (uint64_t)g->route.attempts)};
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-failover-hops"),
                                     num_value(g->hdr_vals[1], (uint64_t)g->route.hops)};
    if (g->cache_state) /* the lookup ran: a request turned away before has no cache result */
        h[n++] =
            (struct sg_http_header){SG_SLICE_LIT("x-slogate-cache"), sg_slice_of(g->cache_state)};
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-latency-ms"),
                                     num_value(g->hdr_vals[2], (now - g->t_recv_us) / 1000)};
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-overhead-us"),
                                     num_value(g->hdr_vals[3], gw_overhead_us(g, now))};
    /* Whole answers: the cost of the usage they report. Streams: the head leaves before the
     * usage exists, so the header holds the pre-call estimate (docs/pricing.md). */
    snprintf(g->cost_hdr, sizeof g->cost_hdr, "%.8f", g->cost_usd);
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-cost-usd"), sg_slice_of(g->cost_hdr)};
    if (g->route.bypass)
        h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-bypass"), SG_SLICE_LIT("true")};
    struct sg_health *health = g->w->gw->health;
    if (atomic_load_explicit(&health->faults_active, memory_order_relaxed) &&
        sg_health_faults_text(health, g->faults, sizeof g->faults))
        h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-faults"), sg_slice_of(g->faults)};
    if (g->retry_after_s)
        h[n++] = (struct sg_http_header){SG_SLICE_LIT("Retry-After"),
                                         num_value(g->hdr_vals[4], g->retry_after_s)};
    return n;
}

#define MAX_HEADERS 17

static void gw_respond(struct gw_req *g, int status, const char *body, size_t len)
{
    struct sg_http_header h[MAX_HEADERS];
    size_t n = gw_headers(g, h, "application/json");
    g->status = status;
    g->finished = true;
    if (!g->t_first_client_us)
        g->t_first_client_us = sg_now_us();
    gw_record(g); /* counted before the client can see the answer (and scrape /metrics) */
    sg_http_respond(g->http, status, h, n, body, len);
}

/* An OpenAI-shaped error with the x-slogate-* headers. */
static void gw_error(struct gw_req *g, int status, const char *type, const char *code,
                     const char *fmt, ...) SG_PRINTF(5, 6);
static void gw_error(struct gw_req *g, int status, const char *type, const char *code,
                     const char *fmt, ...)
{
    struct sg_buf msg;
    sg_buf_init(&msg, 8192);
    va_list ap;
    va_start(ap, fmt);
    sg_buf_vappendf(&msg, fmt, ap);
    va_end(ap);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    if (g->chat.api == SG_API_MESSAGES) {
        /* Anthropic clients read Anthropic's error shape (its SDK picks the exception by it). */
        sg_anthropic_error_body(&b, status, msg.data ? msg.data : "");
    } else {
        sg_buf_appends(&b, "{\"error\":{\"message\":\"");
        sg_buf_append_json_str(&b, msg.data ? msg.data : "", msg.len);
        /* param: the field of a body refused before routing (null for any other error). */
        const char *param = g->chat.error_param;
        sg_buf_appendf(&b, "\",\"type\":\"%s\",\"param\":%s%s%s,\"code\":", type, param ? "\"" : "",
                       param ? param : "null", param ? "\"" : "");
        sg_buf_appendf(&b, code ? "\"%s\"}}" : "null}}", code ? code : "");
    }
    if (!g->error_type)
        g->error_type = code ? code : type;
    gw_respond(g, status, b.data, b.len);
    sg_buf_dispose(&b);
    sg_buf_dispose(&msg);
}

/* The deployment of the latest attempt, NULL before the first. */
static const struct sg_deployment *last_tried(const struct gw_req *g)
{
    return g->route.n_tried ? g->route.tried[g->route.n_tried - 1] : NULL;
}

/* The model a deployment is called with, as its litellm_params.model writes it: a wildcard
 * route's with this request's name filled in (openai/ and a star, asked for gpt-4o-mini:
 * openai/gpt-4o-mini), for messages that name it. */
#define MODEL_CALLED_MAX (SG_WILD_MODEL_MAX + 64)
static const char *model_called(const struct gw_req *g, const struct sg_deployment *d,
                                char out[MODEL_CALLED_MAX])
{
    if (!d->stars)
        return d->model;
    char filled[SG_WILD_MODEL_MAX];
    const char *m = sg_config_fill(d, &g->match, filled);
    /* The provider's prefix is what model has before provider_model ("openai/"). */
    size_t n = strlen(d->model), k = strlen(d->provider_model);
    int prefix = n >= k && strcmp(d->model + n - k, d->provider_model) == 0 ? (int)(n - k) : 0;
    snprintf(out, MODEL_CALLED_MAX, "%.*s%s", prefix, d->model, m);
    return out;
}

/* ---- record: one request event per client request (the telemetry issue widens this) ---- */

static void gw_record(struct gw_req *g)
{
    if (!g->ev)
        return; /* recorded already: before the answer's last byte went out */
    g->w->requests++;
    struct sg_event *ev = g->ev;
    g->ev = NULL;
    uint64_t now = sg_now_us();
    /* Nobody answered (the client left, the drain cut it): the deployment it was waiting for. */
    const struct sg_deployment *d = g->answered_by ? g->answered_by : last_tried(g);
    char model[SG_WILD_MODEL_MAX];
    SG_EVENT_SETS(ev, request_id, g->request_id);
    ev->start_unix_us = sg_wall_us() - (now - g->t_recv_us);
    SG_EVENT_SET(ev, alias, g->chat.model, g->chat.model_len);
    if (d) {
        SG_EVENT_SETS(ev, provider, d->provider);
        SG_EVENT_SETS(ev, model, sg_config_fill(d, &g->match, model));
        SG_EVENT_SETS(ev, deployment, d->id);
        SG_EVENT_SETS(ev, region, d->region);
    }
    ev->status = g->status;
    SG_EVENT_SETS(ev, error_type, g->error_type);
    ev->latency_ms_total = (double)(now - g->t_recv_us) / 1000.0;
    ev->ttft_ms =
        g->t_first_client_us ? (double)(g->t_first_client_us - g->t_recv_us) / 1000.0 : -1;
    ev->overhead_us = gw_overhead_us(g, now);
    ev->retries = g->route.attempts > 1 ? g->route.attempts - 1 : 0;
    ev->failover_hops = g->route.hops;
    ev->input_tokens = g->usage.input_tokens;
    ev->output_tokens = g->usage.output_tokens;
    ev->cached_tokens = g->usage.cache_read_tokens;
    ev->cost_usd = g->cost_usd;
    ev->usage_estimated = g->usage.estimated;
    SG_EVENT_SETS(ev, cache_state, g->cache_state);
    ev->cache_hit = g->cache_state && strcmp(g->cache_state, "hit") == 0;
    ev->stream = g->chat.stream;
    SG_DEBUG("gateway",
             "%s %s status=%d deployment=%s attempts=%d hops=%d latency_us=%" PRIu64 " error=%s",
             g->request_id, g->chat.model, g->status, d ? d->id : "-", g->route.attempts,
             g->route.hops, now - g->t_recv_us, g->error_type ? g->error_type : "-");
    gw_event_record(g->w, ev, d ? d->alias : NULL);
}

static void on_timer_closed(uv_handle_t *h)
{
    free(SG_CONTAINER_OF((uv_timer_t *)h, struct req_timer, t));
}

/* Closing a timer stops it; its memory goes in the close callback. */
static void timer_stop(struct req_timer **t)
{
    if (!*t)
        return;
    uv_close((uv_handle_t *)&(*t)->t, on_timer_closed);
    *t = NULL;
}

static void timer_start(struct gw_req *g, struct req_timer **t, uv_timer_cb cb, uint64_t ms)
{
    *t = sg_xcalloc(1, sizeof **t);
    (*t)->g = g;
    uv_timer_init(sg_http_request_loop(g->http), &(*t)->t);
    uv_timer_start(&(*t)->t, cb, ms, 0);
}

static void hedge_stop(struct gw_req *g)
{
    timer_stop(&g->hedge);
}

static void attempt_dispose(struct gw_attempt *a)
{
    sg_buf_dispose(&a->xlate);
    sg_buf_dispose(&a->body);
    sg_sse_parser_dispose(&a->sse);
}

/* A header the client sent, to send on upstream: its lines joined with ',' (as a list-valued
 * header's lines may be, RFC 9110 §5.3), empty ones dropped, as one "Name: value" line. A
 * combined value over `max` bytes (at most 1024), or one with bytes outside the header's
 * grammar, is not sent. NULL when there is nothing to send. Used for the W3C tracestate that
 * goes beside the traceparent continuing the caller's trace (§3.3.1.1: 512 bytes every
 * participant must carry; a participant may drop what it cannot propagate whole), and for an
 * Anthropic client's anthropic-beta, which turns on the betas its request relies on. */
static char *client_header_line(const struct sg_http_request *req, const char *name, size_t max)
{
    char v[1025];
    size_t n = 0;
    max = SG_MIN(max, sizeof v - 1);
    for (size_t i = 0; i < req->n_headers; i++) {
        if (!sg_slice_ieq(req->headers[i].name, name))
            continue;
        struct sg_slice h = req->headers[i].value;
        if (h.n == 0)
            continue;
        if (n + (n > 0) + h.n > max)
            return NULL;
        if (n)
            v[n++] = ',';
        for (size_t k = 0; k < h.n; k++)
            if ((unsigned char)h.p[k] < 0x20 || (unsigned char)h.p[k] > 0x7e)
                return NULL;
        memcpy(v + n, h.p, h.n);
        n += h.n;
    }
    return n ? sg_xasprintf("%s: %.*s", name, (int)n, v) : NULL;
}

/* The single exit of a proxied request. */
static void gw_finish(struct gw_req *g)
{
    gw_record(g);
    hedge_stop(g);
    timer_stop(&g->failover);
    for (int i = 0; i < MAX_ATTEMPTS; i++)
        attempt_dispose(&g->att[i]);
    sg_buf_dispose(&g->up_body);
    sg_buf_dispose(&g->log);
    sg_runtime_unref(g->rt);
    free(g->tracestate);
    free(g->anthropic_beta);
    free(g);
}

/* ---- attempts ---- */

static uint64_t now_ms(void)
{
    return sg_now_ms();
}

/* Stop an attempt that lost (hedge) or is no longer wanted, telling the router. */
static void attempt_cancel(struct gw_attempt *a)
{
    if (!a->call)
        return;
    sg_upstream_cancel(a->call);
    a->call = NULL;
    sg_route_report(&a->g->route, a->dep, SG_OUT_CANCELLED, now_ms(), 0, 0, 0, 0);
    gw_event_attempt_end(a->g->ev, a->ev_i, sg_now_us() - a->g->t_recv_us, a->status, "cancelled");
}

/* Stop every attempt still running except `keep` (NULL: all of them). Called before the answer
 * is recorded, so the event holds every attempt's end. */
static void attempts_cancel(struct gw_req *g, const struct gw_attempt *keep)
{
    for (int i = 0; i < MAX_ATTEMPTS; i++)
        if (&g->att[i] != keep)
            attempt_cancel(&g->att[i]);
}

static int running(const struct gw_req *g)
{
    int n = 0;
    for (int i = 0; i < MAX_ATTEMPTS; i++)
        n += g->att[i].call != NULL;
    return n;
}

/* The attempt produced the first byte the client will see: it wins, any other is cancelled. */
static void attempt_win(struct gw_attempt *a)
{
    struct gw_req *g = a->g;
    g->winner = a;
    g->answered_by = a->dep;
    if (a->call) /* it is still running: an earlier attempt's end no longer counts (overhead) */
        g->t_up_done_us = 0;
    attempts_cancel(g, a);
    hedge_stop(g);
}

static void stream_begin(struct gw_req *g)
{
    struct sg_http_header h[MAX_HEADERS + 1];
    size_t n = gw_headers(g, h, "text/event-stream");
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("Cache-Control"), SG_SLICE_LIT("no-cache")};
    g->stream_started = true;
    g->status = 200;
    g->t_first_client_us = sg_now_us();
    sg_http_stream_on_drain(g->http, on_client_drain, g);
    sg_http_stream_begin(g->http, 200, h, n);
}

/* End a started stream with an error event: the client learns the answer is incomplete. */
static void stream_fail(struct gw_req *g, const char *code, const char *fmt, ...) SG_PRINTF(3, 4);
static void stream_fail(struct gw_req *g, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    if (g->chat.api == SG_API_MESSAGES) {
        sg_buf_appends(&b, "event: error\ndata: ");
        sg_anthropic_error_body(&b, 500, msg);
        sg_buf_appends(&b, "\n\n");
    } else {
        sg_buf_appends(&b, "data: {\"error\":{\"message\":\"");
        sg_buf_append_json_str(&b, msg, strlen(msg));
        sg_buf_appendf(&b, "\",\"type\":\"api_error\",\"param\":null,\"code\":\"%s\"}}\n\n", code);
    }
    g->error_type = code;
    g->finished = true;
    stream_cost(g);
    gw_record(g);
    sg_http_stream_write(g->http, b.data, b.len);
    sg_buf_dispose(&b);
    sg_http_stream_end(g->http);
}

/* What one upstream event becomes for this client: `out` is the bytes to relay (possibly
 * none). Returns false when the stream failed (an error event, or an event that breaks the
 * protocol); `why` then says how. */
static bool stream_translate(struct gw_attempt *a, struct sg_slice raw, struct sg_slice event,
                             struct sg_slice data, struct sg_slice *out, const char **why)
{
    struct gw_req *g = a->g;
    bool anthropic = a->dep->kind == SG_PROVIDER_ANTHROPIC;
    sg_buf_reset(&a->xlate);
    *out = raw;
    *why = NULL;
    if (!anthropic && g->chat.api != SG_API_MESSAGES) {
        /* The hot path: relayed as is, usage only to a client that asked for it. */
        *out = sg_openai_stream_relay(&a->ostream, raw, data, &a->xlate);
        struct sg_openai_stream *s = &a->ostream;
        if (s->done && s->client_wants_usage && !s->usage.known && !s->usage.estimated) {
            /* [DONE] and no usage came: the client gets the usage chunk it asked for, with
             * the numbers the gateway records (docs/pricing.md). */
            usage_estimate(g, a, &s->usage);
            sg_buf_reset(&a->xlate);
            sg_openai_usage_chunk(s, &s->usage, &a->xlate);
            sg_buf_append(&a->xlate, raw.p, raw.n);
            *out = (struct sg_slice){a->xlate.data, a->xlate.len};
        }
        if (s->failed) {
            *why = s->error;
            return false;
        }
        return true;
    }
    int rc;
    if (anthropic) {
        bool relay = g->chat.api == SG_API_MESSAGES; /* Messages to Messages: as is */
        rc = sg_anthropic_stream_event(&a->astream, event, data, relay ? NULL : &a->xlate);
        if (a->astream.failed && !relay) {
            *why = a->astream.error;
            return false;
        }
    } else {
        rc = sg_messages_stream_chunk(&a->mstream, data, &a->xlate);
    }
    if (rc != SG_OK) {
        *why = !anthropic && a->mstream.error[0]
                   ? a->mstream.error
                   : "it sent an event that is not valid in its stream format";
        return false;
    }
    if (!(anthropic && g->chat.api == SG_API_MESSAGES))
        *out = (struct sg_slice){a->xlate.data ? a->xlate.data : "", a->xlate.len};
    return true;
}

static void on_sse_event(void *ud, struct sg_slice raw, struct sg_slice event, struct sg_slice data)
{
    struct gw_attempt *a = ud;
    struct gw_req *g = a->g;
    if (g->finished)
        return; /* the stream already ended with an error event */
    const char *why;
    if (!stream_translate(a, raw, event, data, &raw, &why)) {
        if (!g->winner) {
            /* Nothing reached the client: cut this attempt; on_up_done fails over. */
            sg_buf_reset(&a->body);
            sg_buf_appendf(&a->body, "{\"error\":{\"message\":\"stream failed: ");
            sg_buf_append_json_str(&a->body, why, strlen(why));
            sg_buf_appends(&a->body, "\"}}");
            a->astream.failed = true;
            return;
        }
        stream_fail(g, "upstream_stream_error", "deployment %s: %s; the answer is incomplete",
                    a->dep->id, why);
        return;
    }
    if (raw.n == 0)
        return; /* nothing for this client (a ping, the usage chunk nobody asked for...) */
    if (a->astream.failed && !g->winner)
        return;
    if (!g->winner) {
        if (!g->cost_usd && a->priced) /* the head leaves now, before any usage: the
                                        * header carries the estimate */
            g->cost_usd = (double)input_estimate(g) * a->price.input;
        a->t_first_us = sg_now_us(); /* time to first token: latency-based routing's score */
        if (a->call)                 /* the first event: the time-to-first-token cap is met */
            sg_upstream_first_byte(a->call);
        attempt_win(a);
        stream_begin(g);
    }
    /* Whole events only, as they arrive: a cut stream never leaves half an event behind. */
    size_t queued = sg_http_stream_write(g->http, raw.p, raw.n);
    if (queued > STREAM_HIGH_WATER && a->call && !a->paused) {
        /* A slow reader: stop reading the provider until the client catches up, rather than
         * holding its whole answer in memory. */
        a->paused = true;
        sg_upstream_pause(a->call, true);
    }
}

static void on_client_drain(struct sg_http_request *req, void *ud)
{
    SG_UNUSED(req);
    struct gw_req *g = ud;
    struct gw_attempt *a = g->winner;
    if (a && a->paused && a->call) {
        a->paused = false;
        sg_upstream_pause(a->call, false);
    }
}

/* A header's value as an integer in 0..max. */
static bool header_int(struct sg_slice v, int64_t max, int64_t *out)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)SG_MIN(v.n, sizeof buf - 1), v.p);
    return sg_parse_i64(buf, 0, max, out);
}

/* What an attempt keeps of its upstream head, in one pass: the first valid Retry-After (seconds,
 * an HTTP-date, or retry-after-ms, which OpenAI also sends) as ms, and a 2xx's Content-Type (for
 * the message of a 2xx that is no answer). */
static void read_head(struct gw_attempt *a, int status, const struct sg_http_header *h, size_t n)
{
    a->retry_after_ms = 0;
    a->ctype[0] = '\0';
    bool retry_found = false;
    for (size_t i = 0; i < n; i++) {
        int64_t x;
        if (sg_slice_ieq(h[i].name, "retry-after-ms")) {
            if (!retry_found && header_int(h[i].value, 86400000, &x)) {
                a->retry_after_ms = (uint64_t)x;
                retry_found = true;
            }
        } else if (sg_slice_ieq(h[i].name, "retry-after")) {
            if (!retry_found && sg_retry_after_ms(h[i].value, &a->retry_after_ms))
                retry_found = true;
        } else if (is_success(status) && sg_slice_ieq(h[i].name, "content-type")) {
            size_t len = SG_MIN(h[i].value.n, sizeof a->ctype - 1);
            memcpy(a->ctype, h[i].value.p, len);
            a->ctype[len] = '\0';
        }
    }
}

static void on_up_head(void *ud, int status, const struct sg_http_header *headers, size_t n)
{
    struct gw_attempt *a = ud;
    a->status = status;
    read_head(a, status, headers, n);
    if (!a->t_first_us && !a->g->chat.stream) /* a stream's first byte is its first event */
        a->t_first_us = sg_now_us();
    /* A whole (non-streamed) answer: a 2xx head is its first byte, so it wins the hedge. */
    if (!a->g->chat.stream && is_success(status) && !a->g->winner)
        attempt_win(a);
}

static void on_failover_timer(uv_timer_t *t)
{
    struct gw_req *g = SG_CONTAINER_OF(t, struct req_timer, t)->g;
    timer_stop(&g->failover);
    if (!g->finished && !g->winner && !running(g))
        gw_next(g);
}

/* An answer passed a length cap (`what`: a stream event over MAX_SSE_EVENT, a body over
 * MAX_UPSTREAM_BODY). Once bytes of it went to the client the stream ends with an error event;
 * before, it is a broken answer like any other: the attempt failed (the deployment is charged)
 * and the next candidate is tried. That one starts on the next loop turn, not from inside the
 * upstream's body callback (curl refuses a new transfer from inside its own callbacks). */
static void attempt_body_too_big(struct gw_attempt *a, const char *what)
{
    struct gw_req *g = a->g;
    uint64_t now = sg_now_us();
    g->t_up_done_us = now;
    if (g->stream_started || g->finished) {
        attempts_cancel(g, NULL); /* `a` too */
        if (!g->finished)
            stream_fail(g, "upstream_protocol_error", "deployment %s sent %s", a->dep->id, what);
        gw_finish(g);
        return;
    }
    sg_upstream_cancel(a->call);
    a->call = NULL;
    if (g->winner == a) { /* a whole answer's 2xx head won, but nothing was sent */
        g->winner = NULL;
        g->answered_by = NULL;
    }
    char detail[80];
    snprintf(detail, sizeof detail, "HTTP %d, then %s", a->status, what);
    struct sg_upstream_result r = {.status = a->status,
                                   .error = SG_ETOOBIG,
                                   .detail = detail,
                                   .total_us = now - a->t_start_us};
    double ttft = a->t_first_us ? (double)(a->t_first_us - a->t_start_us) / 1000.0 : 0;
    sg_route_report(&g->route, a->dep, SG_OUT_FAILURE, now_ms(), 0, g->chat.stream ? ttft : 0,
                    (double)r.total_us / 1000.0, 0);
    gw_event_attempt_end(g->ev, a->ev_i, now - g->t_recv_us, a->status,
                         sg_outcome_name(SG_OUT_FAILURE));
    log_attempt(g, a, &r, SG_OUT_FAILURE);
    if (!running(g) && !g->failover) /* else the hedge still running decides */
        timer_start(g, &g->failover, on_failover_timer, 0);
}

static void on_up_body(void *ud, const char *data, size_t len)
{
    struct gw_attempt *a = ud;
    if (a->g->chat.stream && is_success(a->status)) {
        if (sg_sse_parser_feed(&a->sse, data, len) != SG_OK)
            attempt_body_too_big(a, "a stream event larger than 4 MiB");
        return;
    }
    if (sg_buf_append(&a->body, data, len) != SG_OK)
        attempt_body_too_big(a, "an answer larger than 32 MiB");
}

/* Nothing left to try: the final error, which says what was tried and what to do. */
static void gw_fail(struct gw_req *g)
{
    struct sg_route *rt = &g->route;
    g->answered_by = last_tried(g); /* for the headers */
    if (rt->why == SG_ROUTE_ALL_COOLING) {
        g->retry_after_s = (rt->retry_after_ms + 999) / 1000;
        struct sg_buf list;
        sg_buf_init(&list, 4096);
        const struct sg_router_group *rg = rt->first;
        for (size_t j = 0; j < rg->group->n; j++) {
            struct sg_dep_view v;
            sg_health_view(rg->health[j], now_ms(), &v);
            sg_buf_appendf(&list, "%s%s (%s)", j ? ", " : "", rg->group->deployments[j]->id,
                           v.disabled     ? "disabled"
                           : v.cooling_ms ? (v.cooldown_reason ? v.cooldown_reason : "cooling down")
                           : v.probing    ? "its half-open probe is in flight"
                                          : "at its rpm/tpm limit this minute");
        }
        gw_error(g, 503, "service_unavailable", "no_healthy_deployment",
                 "no healthy deployment for %s: %s. Retry after %" PRIu64 " s.", rg->group->alias,
                 list.data ? list.data : "", g->retry_after_s);
        sg_buf_dispose(&list);
    } else if (rt->why == SG_ROUTE_DEADLINE) {
        gw_error(g, 504, "timeout", "deadline_exceeded",
                 "the request deadline (router_settings.timeout) passed after %d attempt%s: %s",
                 rt->attempts, rt->attempts == 1 ? "" : "s", g->log.data ? g->log.data : "none");
    } else if (g->n_timeouts == rt->attempts && g->last_outcome == SG_OUT_FIRST_BYTE) {
        gw_error(g, 504, "timeout", "first_byte_timeout",
                 "no deployment answered in time: %s; retry later or raise stream_timeout",
                 g->log.data ? g->log.data : "");
    } else if (g->n_timeouts == rt->attempts) {
        gw_error(g, 504, "timeout", "timeout",
                 "no deployment completed its answer in time: %s; retry later or raise the "
                 "deployment's timeout",
                 g->log.data ? g->log.data : "");
    } else {
        gw_error(g, 502, "api_error", "upstream_error", "%s%d attempt%s failed: %s",
                 rt->bypass ? "router bypass is on; " : "", rt->attempts,
                 rt->attempts == 1 ? "" : "s", g->log.data ? g->log.data : "none");
    }
    gw_finish(g);
}

/* One line of the attempt log, e.g. "primary (openai/gpt-4o-mini): HTTP 500: boom, 12 ms". */
static void log_attempt(struct gw_req *g, struct gw_attempt *a, const struct sg_upstream_result *r,
                        enum sg_outcome o)
{
    char what[400];
    if (r->error) {
        snprintf(what, sizeof what, "%s",
                 r->first_byte_timeout ? "no first byte within stream_timeout"
                 : r->detail           ? r->detail
                                       : sg_strerror(r->error));
    } else if (is_success(r->status) && (!a->g->chat.stream || a->body.len == 0)) {
        /* A 2xx that delivered nothing (a stream that failed in its own format says why in
         * its body, below). */
        const char *how =
            !a->g->chat.stream ? "its body is not a valid answer in its API's format"
            : strncasecmp(a->ctype, "text/event-stream", 17) != 0 ? "it is not an event stream"
            : sg_sse_parser_pending(&a->sse) ? "its stream ended in the middle of an event"
                                             : "its stream ended before its first event";
        snprintf(what, sizeof what, "HTTP %d but %s (Content-Type: %s)", r->status, how,
                 a->ctype[0] ? a->ctype : "none");
    } else {
        char msg[300];
        sg_provider_error_message(a->body.data, a->body.len, msg, sizeof msg);
        snprintf(what, sizeof what, "HTTP %d%s%s", r->status, msg[0] ? ": " : "", msg);
    }
    char model[MODEL_CALLED_MAX];
    sg_buf_appendf(&g->log, "%s%s (%s at %s): %s, %" PRIu64 " ms", g->log.len ? "; " : "",
                   a->dep->id, model_called(g, a->dep, model), a->dep->api_base, what,
                   r->total_us / 1000);
    g->last_outcome = o;
    g->n_timeouts += r->error == SG_ETIMEOUT;
}

/* The usage of an answer that came without any (OpenAI-compatible servers that ignore
 * stream_options.include_usage, whole answers without a usage object): input tokens by the
 * pre-call estimator over the request; output tokens by the text of a whole answer (parsed once
 * here: rare, off the hot path), or one per chunk of a stream (docs/pricing.md). A Messages
 * client's translated stream that ends makes its own (sg_messages_stream_finish), from the same
 * input estimate; this one is for one that was cut. */
static void usage_estimate(struct gw_req *g, const struct gw_attempt *a, struct sg_usage *u)
{
    int64_t out = 0;
    if (!g->chat.stream)
        out = sg_tokens_estimate_answer(a->body.data ? a->body.data : "", a->body.len);
    else if (a->dep->kind == SG_PROVIDER_ANTHROPIC)
        out = 0; /* Anthropic streams carry usage in message_start and message_delta */
    else if (g->chat.api == SG_API_MESSAGES)
        out = a->mstream.content_chunks;
    else
        out = a->ostream.chunks;
    *u = (struct sg_usage){
        .input_tokens = input_estimate(g), .output_tokens = out > 0 ? out : 0, .estimated = true};
}

/* The answer's usage, priced at its deployment's prices; unpriced deployments cost 0 and are
 * counted (slogate check warns about them). No usage reported: estimated, and said so. */
static void gw_cost(struct gw_req *g, const struct gw_attempt *a, const struct sg_usage *u)
{
    const struct sg_deployment *d = a->dep;
    struct sg_usage est;
    if (!u->known && !u->estimated) {
        usage_estimate(g, a, &est);
        u = &est;
    }
    g->usage = *u;
    g->cost_usd = a->priced ? sg_pricing_cost(&a->price, u) : 0;
    /* usage-based routing counts tokens per minute, estimated ones too */
    sg_route_tokens(&g->route, d, (uint64_t)(u->input_tokens + u->output_tokens), now_ms());
    g->unpriced = !a->priced;
    if (g->unpriced)
        g->w->unpriced++;
}

/* The usage a stream reported, read in the format the provider streams (a Messages client's
 * from an OpenAI-compatible deployment: as translated). */
static const struct sg_usage *stream_usage(const struct gw_req *g, const struct gw_attempt *a)
{
    if (a->dep->kind == SG_PROVIDER_ANTHROPIC)
        return &a->astream.usage;
    return g->chat.api == SG_API_MESSAGES ? &a->mstream.usage : &a->ostream.usage;
}

/* A stream that ends before its usage (cut, or the client left) is charged what it reported so
 * far or, with nothing, the estimate, marked as such: the head's cost header (the pre-call
 * input estimate alone) is not what the record keeps. */
static void stream_cost(struct gw_req *g)
{
    if (g->stream_started && g->winner && !g->usage.known && !g->usage.estimated)
        gw_cost(g, g->winner, stream_usage(g, g->winner));
}

/* A stream the provider ended cleanly: check it is complete in its own format, close the
 * client's side (translated streams get their closing events), record the usage. */
static void stream_complete(struct gw_req *g, struct gw_attempt *a)
{
    const struct sg_usage *u = stream_usage(g, a);
    if (a->dep->kind == SG_PROVIDER_ANTHROPIC) {
        if (a->astream.failed) {
            g->error_type = "upstream_stream_error"; /* relayed as is to a Messages client */
        } else if (!a->astream.done) {
            stream_fail(g, "stream_interrupted",
                        "the stream from deployment %s ended before message_stop; the answer is "
                        "incomplete",
                        a->dep->id);
            return;
        }
    } else if (g->chat.api != SG_API_MESSAGES) {
        /* [DONE] ends an OpenAI stream; the usage chunk (asked for on every stream) comes last
         * before it. A stream with neither was cut, however cleanly its connection closed. */
        if (!a->ostream.done && !a->ostream.usage.known) {
            stream_fail(g, "stream_interrupted",
                        "the stream from deployment %s ended without [DONE]; the answer may be "
                        "incomplete",
                        a->dep->id);
            return;
        }
    } else {
        if (!a->mstream.done && !a->mstream.stop_reason[0]) {
            stream_fail(g, "stream_interrupted",
                        "the stream from deployment %s ended before its finish_reason; the answer "
                        "is incomplete",
                        a->dep->id);
            return;
        }
        if (!a->mstream.done) { /* a server that sends no [DONE]: close the message ourselves */
            sg_buf_reset(&a->xlate);
            sg_messages_stream_finish(&a->mstream, &a->xlate);
            sg_http_stream_write(g->http, a->xlate.data, a->xlate.len);
        }
    }
    gw_cost(g, a, u);
    g->finished = true;
    gw_record(g);
    sg_http_stream_end(g->http);
}

/* A whole 2xx answer, checked and put in the client's format: a->answer (the body as it came,
 * or a->xlate) and a->usage. False when it is no answer: not a JSON object (empty, a proxy's
 * HTML page, cut short), or not one of its provider's format that translates. */
static bool answer_decode(struct gw_req *g, struct gw_attempt *a)
{
    bool anthropic = a->dep->kind == SG_PROVIDER_ANTHROPIC;
    const char *body = a->body.data ? a->body.data : "";
    size_t len = a->body.len;
    int rc;
    a->usage = (struct sg_usage){0};
    sg_buf_reset(&a->xlate);
    if (g->chat.api == SG_API_CHAT && anthropic) {
        rc = sg_anthropic_decode_response(body, len, (int64_t)(sg_wall_ms() / 1000), &a->xlate,
                                          &a->usage);
    } else if (g->chat.api == SG_API_MESSAGES && !anthropic) {
        rc = sg_messages_decode_openai(body, len, &a->xlate, &a->usage);
    } else {
        rc = anthropic ? sg_anthropic_usage_parse(body, len, &a->usage)
                       : sg_openai_usage_parse(body, len, &a->usage);
        a->answer = (struct sg_slice){body, len};
        return rc != SG_EINVAL; /* no usage is still an answer */
    }
    a->answer = (struct sg_slice){a->xlate.data, a->xlate.len};
    return rc == SG_OK;
}

/* A whole answer that came without usage gets the estimate the gateway records, in the client's
 * format: the Messages API has no answer without usage (its SDK needs the two counts), and an
 * OpenAI answer always has one (docs/pricing.md). Rare: the answer is copied once. */
static void answer_show_usage(struct gw_req *g, struct gw_attempt *a)
{
    /* The answer is in one of the two buffers (answer_decode); the other is free by now. */
    struct sg_buf *dst = a->answer.p == a->xlate.data ? &a->body : &a->xlate;
    sg_buf_reset(dst);
    if (sg_answer_set_usage(g->chat.api, a->answer, &g->usage, dst) == SG_OK)
        a->answer = (struct sg_slice){dst->data, dst->len};
}

/* The provider says the request is wrong: the client gets its message, in the client's own
 * error shape when the provider speaks the other format. */
static void relay_client_error(struct gw_req *g, struct gw_attempt *a, int status)
{
    bool anthropic = a->dep->kind == SG_PROVIDER_ANTHROPIC;
    struct sg_provider_error e;
    sg_provider_classify(status, a->body.data, a->body.len, &e);
    /* Unchanged when the client speaks the provider's API and the body is an error in it; a
     * plain-text or HTML body (a proxy in front of the provider, say) is put in the client's
     * shape, its text as the message. */
    if (e.shaped && anthropic == (g->chat.api == SG_API_MESSAGES)) {
        gw_respond(g, status, a->body.data, a->body.len);
        return;
    }
    sg_buf_reset(&a->xlate);
    if (g->chat.api == SG_API_MESSAGES) {
        sg_anthropic_error_body(&a->xlate, status, e.message);
    } else {
        int st;
        const char *type, *code;
        sg_error_class_openai(e.cls, &st, &type, &code);
        sg_openai_error_body(&a->xlate, type, code, e.message);
    }
    gw_respond(g, status, a->xlate.data, a->xlate.len);
}

static void on_up_done(void *ud, const struct sg_upstream_result *r)
{
    struct gw_attempt *a = ud;
    struct gw_req *g = a->g;
    a->call = NULL;
    g->t_up_done_us = sg_now_us();
    bool stream = g->chat.stream;
    int status = r->error ? 0 : r->status;
    enum sg_outcome o =
        sg_router_classify(status, r->error, r->first_byte_timeout, a->body.data, a->body.len);
    /* A 2xx stream that ended mid-event, without any event or after an event that ended it
     * with an error (on_sse_event: the provider's error event, a broken protocol) did not
     * deliver, nor did a whole 2xx answer that is no answer (answer_decode: empty, a proxy's
     * HTML page, cut short). */
    bool delivered = o == SG_OUT_SUCCESS &&
                     (stream ? sg_sse_parser_pending(&a->sse) == 0 && g->winner == a && !g->finished
                             : answer_decode(g, a));
    double ttft = a->t_first_us ? (double)(a->t_first_us - a->t_start_us) / 1000.0 : 0;
    double total = (double)r->total_us / 1000.0;
    /* A timeout that the request's deadline brought forward is the deadline's, not the
     * deployment's: it had not been given its own time, so the router hears no verdict. */
    bool deadline_cut =
        r->error == SG_ETIMEOUT && (r->first_byte_timeout ? a->ttfb_cut : a->total_cut);
    sg_route_report(&g->route, a->dep,
                    deadline_cut                        ? SG_OUT_CANCELLED
                    : o == SG_OUT_SUCCESS && !delivered ? SG_OUT_FAILURE
                                                        : o,
                    now_ms(), a->retry_after_ms, stream ? ttft : 0, total, 0);
    gw_event_attempt_end(g->ev, a->ev_i, g->t_up_done_us - g->t_recv_us, status,
                         o == SG_OUT_SUCCESS && delivered ? NULL
                         : o == SG_OUT_SUCCESS            ? sg_outcome_name(SG_OUT_FAILURE)
                                                          : sg_outcome_name(o));

    if (g->winner == a) {
        /* The client already has (or is about to get) this attempt's bytes: no failover. */
        if (stream) {
            if (g->finished)
                ; /* it already ended with an error event (on_sse_event) */
            else if (r->error)
                stream_fail(g, "stream_interrupted",
                            "the stream from deployment %s broke off: %s; the answer is incomplete",
                            a->dep->id, r->detail ? r->detail : sg_strerror(r->error));
            else if (sg_sse_parser_pending(&a->sse))
                stream_fail(g, "stream_interrupted",
                            "the stream from deployment %s ended in the middle of an event",
                            a->dep->id);
            else
                stream_complete(g, a);
        } else if (r->error || !delivered) {
            /* Nothing reached the client yet: a whole answer that broke off (or is no answer)
             * can fail over. */
            g->winner = NULL;
            g->answered_by = NULL;
            log_attempt(g, a, r, delivered ? o : SG_OUT_FAILURE);
            gw_next(g);
            return;
        } else {
            gw_cost(g, a, &a->usage);
            if (g->usage.estimated)
                answer_show_usage(g, a);
            gw_respond(g, r->status, a->answer.p, a->answer.n);
        }
        gw_finish(g);
        return;
    }
    if (o == SG_OUT_CLIENT_ERROR ||
        (o == SG_OUT_CONTEXT_WINDOW && !sg_route_context_window(&g->route))) {
        /* The caller's mistake: returned as the provider wrote it, never retried. */
        attempt_win(a);
        g->error_type = "upstream_client_error";
        relay_client_error(g, a, r->status);
        gw_finish(g);
        return;
    }
    if (o == SG_OUT_SUCCESS && !delivered)
        o = SG_OUT_FAILURE; /* e.g. a 200 stream with no event at all */
    if (o != SG_OUT_CONTEXT_WINDOW)
        log_attempt(g, a, r, o);
    if (running(g))
        return; /* the hedge is still running: its result decides */
    gw_next(g);
}

static const struct sg_upstream_handlers up_handlers = {on_up_head, on_up_body, on_up_done};

/* The body for `d`: by the client's API and the deployment's wire format. */
static int gw_encode(struct gw_req *g, const struct sg_deployment *d, char *err, size_t n)
{
    bool anthropic = d->kind == SG_PROVIDER_ANTHROPIC;
    const struct sg_feature *f =
        g->feature.n ? sg_config_feature(g->rt->cfg, g->feature.p, g->feature.n) : NULL;
    struct sg_anthropic_opts o = {.prompt_caching = f && f->prompt_caching};
    switch (g->chat.api) {
    case SG_API_MESSAGES:
        return anthropic ? sg_messages_encode_anthropic(&g->chat, d, &o, &g->up_body, err, n)
                         : sg_messages_encode_openai(&g->chat, d, &g->up_body, err, n);
    case SG_API_EMBEDDINGS:
        if (anthropic) {
            snprintf(err, n,
                     "Anthropic has no embeddings API; give %s an OpenAI-compatible "
                     "embeddings deployment",
                     d->alias);
            return SG_EINVAL;
        }
        return sg_openai_encode_chat(&g->chat, d, &g->up_body);
    case SG_API_CHAT: break;
    }
    return anthropic ? sg_anthropic_encode_chat(&g->chat, d, &o, &g->up_body, err, n)
                     : sg_openai_encode_chat(&g->chat, d, &g->up_body);
}

/* The attempt on `d` ended before it was sent: its format cannot carry the request. It is an
 * attempt in the record, as x-slogate-attempts counts it, with the refusal as its error. */
static void encode_refused(struct gw_req *g, const struct sg_deployment *d, const char *error)
{
    char tp[80];
    uint64_t at = sg_now_us() - g->t_recv_us;
    gw_event_attempt_end(g->ev, gw_event_attempt_begin(g->w, g->ev, d, at, tp, sizeof tp), at, 0,
                         error);
}

/* What attempt_start did. */
enum start {
    STARTED,  /* the call is out */
    SKIPPED,  /* `d` cannot carry the request, but others were tried before it: go on */
    ANSWERED, /* the request cannot be sent: it was answered and freed */
};

/* Start an attempt on `d` in a free slot. A request `d`'s format cannot say is the client's
 * error (400) when `d` is the first deployment tried. Later (failing over, or hedging), it is
 * only `d` that cannot carry it: the deployments before it could, and a 400 would hide their
 * failure from the client (an SDK does not retry a 400) or cancel an attempt still running. */
static enum start attempt_start(struct gw_req *g, const struct sg_deployment *d)
{
    struct gw_attempt *a = NULL;
    for (int i = 0; i < MAX_ATTEMPTS && !a; i++)
        if (!g->att[i].call)
            a = &g->att[i];
    const struct sg_config *cfg = g->rt->cfg;
    size_t di = sg_runtime_dep_index(g->rt, d);
    a->dep = d;
    a->status = 0;
    a->retry_after_ms = 0;
    a->t_first_us = 0;
    a->paused = false;
    sg_buf_reset(&a->body);
    sg_sse_parser_dispose(&a->sse);
    sg_sse_parser_init(&a->sse, MAX_SSE_EVENT, on_sse_event, a);
    a->ostream = (struct sg_openai_stream){.client_wants_usage = g->chat.include_usage};
    sg_anthropic_stream_init(&a->astream, g->chat.include_usage, (int64_t)(sg_wall_ms() / 1000));
    sg_messages_stream_init(&a->mstream);
    if (g->chat.api == SG_API_MESSAGES && g->chat.stream && d->kind != SG_PROVIDER_ANTHROPIC)
        a->mstream.input_estimate = input_estimate(g);
    sg_buf_reset(&g->up_body);
    /* A wildcard route's deployment is called with the model the client's name fills in, and
     * priced for it: `ed` is the deployment as this request sees it. */
    char model[SG_WILD_MODEL_MAX];
    struct sg_deployment wild;
    const struct sg_deployment *ed = d;
    if (d->stars) {
        wild = *d;
        wild.provider_model = (char *)sg_config_fill(d, &g->match, model);
        ed = &wild;
        a->priced = sg_pricing_resolve(ed, &a->price);
    } else {
        a->price = g->rt->dep_prices[di];
        a->priced = g->rt->dep_priced[di];
    }
    char err[300] = "";
    int erc = gw_encode(g, ed, err, sizeof err);
    if (erc != SG_OK) {
        char called[MODEL_CALLED_MAX];
        sg_route_report(&g->route, d, SG_OUT_NOT_SENT, now_ms(), 0, 0, 0, 0);
        encode_refused(g, d, erc == SG_EINVAL ? "invalid_request_error" : "request_too_large");
        if (erc == SG_EINVAL && g->route.attempts > 1) {
            sg_buf_appendf(&g->log, "%s%s (%s): cannot carry this request: %s",
                           g->log.len ? "; " : "", d->id, model_called(g, d, called), err);
            return SKIPPED;
        }
        attempts_cancel(g, NULL);
        g->answered_by = d;   /* the one the client is told about (x-slogate-deployment) */
        if (erc == SG_EINVAL) /* the request cannot be said in this deployment's format */
            gw_error(g, 400, "invalid_request_error", NULL, "%s (deployment %s, %s)", err, d->id,
                     model_called(g, d, called));
        else
            gw_error(g, 413, "invalid_request_error", "request_too_large",
                     "the request is too large to forward");
        gw_finish(g);
        return ANSWERED;
    }
    /* Each attempt gets its own timeout, cut to what is left of the request's deadline. */
    uint64_t left = g->route.deadline_ms > now_ms() ? g->route.deadline_ms - now_ms() : 1;
    uint32_t timeout = d->timeout_ms ? d->timeout_ms : cfg->router.timeout_ms;
    uint32_t ttfb = d->stream_timeout_ms ? d->stream_timeout_ms : cfg->router.stream_timeout_ms;
    /* Drill faults on this deployment turn its calls into what a real outage looks like. */
    struct sg_dep_health *e = sg_router_health_of(g->rt->router, d);
    unsigned fault_ttft = atomic_load(&e->fault_ttft_ms);
    if (fault_ttft)
        ttfb = fault_ttft;
    /* Cut "well under" its own cap (below 90 %): a first attempt that lost a millisecond or two
     * to the gateway still had its time; a retry left with half of it did not. */
    a->total_cut = left < (uint64_t)timeout - timeout / 10;
    a->ttfb_cut = ttfb && left < (uint64_t)ttfb - ttfb / 10;
    struct sg_upstream_request r = {
        .url = atomic_load(&e->fault_block_egress) ? g->w->gw->refused_url
               : g->chat.api == SG_API_EMBEDDINGS  ? g->rt->dep_embed_urls[di]
                                                   : g->rt->dep_urls[di],
        .body = g->up_body.data,
        .body_len = g->up_body.len,
        .headers = atomic_load(&e->fault_revoke_key) ? g->rt->dep_headers_revoked[di]
                                                     : g->rt->dep_headers[di],
        .timeout_ms = (uint32_t)SG_MIN((uint64_t)timeout, left),
        /* stream_timeout caps the first byte: of the body for streams, of the answer's head
         * otherwise (DESIGN §7). */
        .first_byte_timeout_ms = ttfb ? (uint32_t)SG_MIN((uint64_t)ttfb, left) : 0,
        .first_byte_is_body = g->chat.stream,
        /* ... and for streams, of the first whole event (on_sse_event says when) */
        .first_byte_by_owner = g->chat.stream,
    };
    a->t_start_us = sg_now_us();
    a->ev_i = gw_event_attempt_begin(g->w, g->ev, ed, a->t_start_us - g->t_recv_us, a->traceparent,
                                     sizeof a->traceparent);
    if (a->traceparent[0]) /* W3C trace context, continued upstream */
        r.extra[r.n_extra++] = a->traceparent;
    if (a->traceparent[0] && g->tracestate)
        r.extra[r.n_extra++] = g->tracestate;
    if (g->anthropic_beta && d->kind == SG_PROVIDER_ANTHROPIC) /* the client's betas, as its own */
        r.extra[r.n_extra++] = g->anthropic_beta;

    if (!g->t_attempt_us)
        g->t_attempt_us = a->t_start_us;
    a->call = sg_upstream_start(g->w->up, &r, &up_handlers, a);
    return STARTED;
}

static void on_hedge(uv_timer_t *t)
{
    struct gw_req *g = SG_CONTAINER_OF(t, struct req_timer, t)->g;
    hedge_stop(g);
    if (g->winner || g->finished || running(g) != 1)
        return;
    /* No first byte yet: start a second attempt on the next candidate; first byte wins (none
     * when the candidate cannot carry the request). */
    const struct sg_deployment *d = sg_route_next(&g->route, now_ms());
    if (d)
        attempt_start(g, d);
}

/* Pick the next deployment and attempt it, or give the final answer. */
static void gw_next(struct gw_req *g)
{
    if (g->http->aborted)
        return;
    enum start started;
    do {
        const struct sg_deployment *d = sg_route_next(&g->route, now_ms());
        if (!d) {
            gw_fail(g);
            return;
        }
        started = attempt_start(g, d);
        if (started == ANSWERED)
            return; /* and freed already */
    } while (started == SKIPPED);
    uint32_t hedge_ms = g->rt->cfg->router.hedge_after_ms;
    if (hedge_ms && !g->route.bypass && !g->hedge && g->route.attempts == 1)
        timer_start(g, &g->hedge, on_hedge, hedge_ms);
}

/* The drain deadline passed with this request unfinished: it ends now, saying so. */
static void gw_cut(struct gw_req *g)
{
    static const char why[] =
        "the gateway is shutting down and its drain deadline (server.drain_timeout_s) passed "
        "before the answer was complete";
    if (g->stream_started) {
        stream_fail(g, "gateway_shutdown", "%s; the answer is incomplete", why);
    } else {
        gw_error(g, 503, "service_unavailable", "gateway_shutdown", "%s; retry the request", why);
    }
    gw_finish(g);
}

/* The client went away (or the drain deadline cut the request): stop every attempt and finish. */
static void on_client_abort(struct sg_http_request *req, void *ud)
{
    struct gw_req *g = ud;
    if (g->finished)
        return;
    attempts_cancel(g, NULL);
    if (req->cut) {
        gw_cut(g);
        return;
    }
    g->error_type = "client_disconnected";
    g->status = 499; /* nginx's convention for "client closed request" */
    g->finished = true;
    stream_cost(g);
    gw_record(g);
    if (g->stream_started)
        sg_http_stream_end(g->http);
    else
        sg_http_respond(g->http, 499, NULL, 0, "", 0);
    gw_finish(g);
}

/* ---- stages before routing ---- */

/* Admission: rate limits, budgets and per-feature caps (the guard issue). Returns true to go on;
 * otherwise it has answered. */
static bool gw_admit(struct gw_req *g)
{
    SG_UNUSED(g);
    return true;
}

/* Cache lookup (the cache issue). Returns true when it answered from cache. */
static bool gw_cache_lookup(struct gw_req *g)
{
    g->cache_state = "bypass";
    return false;
}

void gw_chat(struct sg_http_request *req, struct sg_worker *w)
{
    struct gw_req *g = sg_xcalloc(1, sizeof *g);
    g->w = w;
    g->http = req;
    g->rt = sg_runtime_ref(w->rt);
    g->t_read_us = sg_now_us();
    g->t_recv_us = req->t_start_us ? req->t_start_us : g->t_read_us;
    sg_request_id(g->request_id); /* time-ordered: cheap inserts into the store's key */
    g->ev = gw_event_begin(w, req);
    if (g->ev && g->ev->parent_span_id[0])
        g->tracestate = client_header_line(req, "tracestate", 512);
    sg_buf_init(&g->up_body, 0);
    sg_buf_init(&g->log, 16384);
    for (int i = 0; i < MAX_ATTEMPTS; i++) {
        g->att[i].g = g;
        sg_buf_init(&g->att[i].body, MAX_UPSTREAM_BODY);
        sg_buf_init(&g->att[i].xlate, 0);
        sg_sse_parser_init(&g->att[i].sse, MAX_SSE_EVENT, on_sse_event, &g->att[i]);
    }
    sg_http_request_on_abort(req, on_client_abort, g);
    const struct sg_config *cfg = g->rt->cfg;
    /* Three APIs share this path: chat.completions, Messages (Anthropic clients), embeddings. */
    bool embeddings =
        sg_slice_eq(req->path, "/v1/embeddings") || sg_slice_eq(req->path, "/embeddings");
    g->chat.api = sg_slice_eq(req->path, "/v1/messages") ? SG_API_MESSAGES
                  : embeddings                           ? SG_API_EMBEDDINGS
                                                         : SG_API_CHAT;
    if (g->chat.api == SG_API_MESSAGES) /* sent on to Anthropic deployments (attempt_start) */
        g->anthropic_beta = client_header_line(req, "anthropic-beta", 1024);

    if (!gw_authenticate(req, cfg)) {
        if (g->chat.api == SG_API_MESSAGES)
            gw_error(g, 401, "authentication_error", "invalid_api_key", "%s",
                     GW_AUTH_MESSAGE_ANTHROPIC);
        else
            gw_error(g, 401, "invalid_request_error", "invalid_api_key", GW_AUTH_MESSAGE);
        gw_finish(g);
        return;
    }
    /* Attribution: the key names the tenant (master key: "default"), x-slogate-feature the
     * feature; a body the parser refuses below is still theirs. */
    g->tenant = SG_SLICE_LIT("default");
    SG_EVENT_SET_ID(g->ev, tenant_id, g->tenant.p, g->tenant.n);
    g->feature = sg_http_header_get(req, "x-slogate-feature");
    if (g->feature.p) /* copied now: header slices do not outlive the HTTP request, the event
                       * does */
        SG_EVENT_SET_ID(g->ev, feature, g->feature.p, g->feature.n);
    char err[300];
    int prc =
        g->chat.api == SG_API_MESSAGES
            ? sg_messages_request_parse(req->body.data, req->body.len, &g->chat, err, sizeof err)
        : embeddings
            ? sg_embeddings_request_parse(req->body.data, req->body.len, &g->chat, err, sizeof err)
            : sg_chat_request_parse(req->body.data, req->body.len, &g->chat, err, sizeof err);
    if (prc != SG_OK) {
        gw_error(g, 400, "invalid_request_error", g->chat.error_code, "%s", err);
        gw_finish(g);
        return;
    }
    /* The body's attribution: the end user, and metadata.feature without the header. */
    g->user = sg_slice_of(g->chat.user);
    SG_EVENT_SET_ID(g->ev, user_id, g->user.p, g->user.n);
    if (!g->feature.p) {
        g->feature = sg_slice_of(g->chat.feature);
        SG_EVENT_SET_ID(g->ev, feature, g->feature.p, g->feature.n);
    }

    const struct sg_router_group *rg =
        sg_router_resolve(g->rt->router, g->chat.model, g->chat.model_len, &g->match);
    if (!rg) {
        int n = (int)SG_MIN(g->chat.model_len, 200);
        /* In the file, but every entry was left out at load: say why, not "does not exist". */
        const char *why = sg_config_unrouted(cfg, g->chat.model, g->chat.model_len);
        if (why)
            gw_error(g, 404, "invalid_request_error", "model_not_found",
                     "The model `%.*s` is in this gateway's config but not routed: %s. GET "
                     "/v1/models lists the models this gateway serves.",
                     n, g->chat.model, why);
        else
            gw_error(g, 404, "invalid_request_error", "model_not_found", GW_MODEL_NOT_FOUND_FMT, n,
                     g->chat.model);
        gw_finish(g);
        return;
    }
    if (!gw_admit(g) || gw_cache_lookup(g))
        return;
    uint64_t now = now_ms();
    sg_route_begin(&g->route, g->rt->router, rg, g->chat.stream, now, now + cfg->router.timeout_ms);
    if (rg->group->stars) { /* LiteLLM keys the fallbacks of a wildcard route's request by it */
        g->route.name = g->chat.model;
        g->route.name_len = g->chat.model_len;
    }
    gw_next(g);
}
