/*
 * The request path (DESIGN §2), one function per stage:
 *
 *   handle → auth → parse → attribute → admit → cache_lookup → route → attempt
 *          → (upstream callbacks: on_head, on_body, on_done) → respond → record
 *
 * Stages that later issues fill in (admission, cache, the full router, telemetry) are real
 * functions already, so each lands in its place without reshaping the path.
 *
 * Ownership: a `struct gw_req` is created per proxied request and freed in gw_finish(), the
 * single exit, after the HTTP request was finished exactly once and the event recorded.
 */
#include "gateway_int.h"
#include "provider/provider.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_UPSTREAM_BODY (32u * 1024 * 1024) /* a non-streamed answer larger than this is cut */
#define MAX_SSE_EVENT (4u * 1024 * 1024)

struct gw_req {
    struct sg_worker *w;
    struct sg_http_request *http;
    struct sg_runtime *rt;          /* a reference: a reload cannot pull the config away */
    char request_id[33];
    struct sg_chat_request chat;
    struct sg_slice tenant, user, feature;

    const struct sg_group *group;
    const struct sg_deployment *dep;
    int attempts;
    int failover_hops;
    const char *cache_state;        /* hit | miss | stale | bypass */

    struct sg_buf up_body;          /* what the deployment is sent */
    struct sg_upstream_call *call;
    int up_status;
    struct sg_buf resp;             /* a buffered (non-streamed) answer */
    struct sg_sse_parser sse;
    bool stream_started;            /* the stream head went to the client */
    bool finished;                  /* the HTTP request was finished */

    uint64_t t_recv_us, t_attempt_us, t_up_done_us, t_first_client_byte_us;
    int status;                     /* what the client got */
    const char *error_type;         /* NULL on success */
    char hdr_vals[6][32];           /* formatted x-slogate-* values */
};

/* ---- answers ---- */

/* The x-slogate-* headers every proxied answer carries. Returns how many were written. */
static size_t gw_headers(struct gw_req *g, struct sg_http_header *h, const char *content_type)
{
    size_t n = 0;
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("Content-Type"), sg_slice_of(content_type)};
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-request-id"), sg_slice_of(g->request_id)};
    if (g->dep) {
        h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-deployment"),
                                         sg_slice_of(g->dep->id)};
        h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-provider"),
                                         sg_slice_of(g->dep->provider)};
    }
    uint64_t now = sg_now_us();
    /* Overhead = receipt → upstream call started, plus upstream done → answer written. */
    uint64_t overhead = g->t_attempt_us ? g->t_attempt_us - g->t_recv_us : now - g->t_recv_us;
    if (g->t_up_done_us)
        overhead += now - g->t_up_done_us;
    snprintf(g->hdr_vals[0], sizeof g->hdr_vals[0], "%d", g->attempts);
    snprintf(g->hdr_vals[1], sizeof g->hdr_vals[1], "%d", g->failover_hops);
    snprintf(g->hdr_vals[2], sizeof g->hdr_vals[2], "%" PRIu64, (now - g->t_recv_us) / 1000);
    snprintf(g->hdr_vals[3], sizeof g->hdr_vals[3], "%" PRIu64, overhead);
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-attempts"), sg_slice_of(g->hdr_vals[0])};
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-failover-hops"),
                                     sg_slice_of(g->hdr_vals[1])};
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-cache"), sg_slice_of(g->cache_state)};
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-latency-ms"),
                                     sg_slice_of(g->hdr_vals[2])};
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("x-slogate-overhead-us"),
                                     sg_slice_of(g->hdr_vals[3])};
    return n;
}

static void gw_respond(struct gw_req *g, int status, const char *body, size_t len)
{
    struct sg_http_header h[12];
    size_t n = gw_headers(g, h, "application/json");
    g->status = status;
    g->finished = true;
    sg_http_respond(g->http, status, h, n, body, len);
}

/* An OpenAI-shaped error with the x-slogate-* headers. */
static void gw_error(struct gw_req *g, int status, const char *type, const char *code,
                     const char *fmt, ...) SG_PRINTF(5, 6);
static void gw_error(struct gw_req *g, int status, const char *type, const char *code,
                     const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, "{\"error\":{\"message\":\"");
    sg_buf_append_json_str(&b, msg, strlen(msg));
    sg_buf_appendf(&b, "\",\"type\":\"%s\",\"param\":null,\"code\":", type);
    sg_buf_appendf(&b, code ? "\"%s\"}}" : "null}}", code ? code : "");
    if (!g->error_type)
        g->error_type = code ? code : type;
    gw_respond(g, status, b.data, b.len);
    sg_buf_dispose(&b);
}

/* ---- record: one request event per client request (the telemetry issue widens this) ---- */

static void gw_record(struct gw_req *g)
{
    g->w->requests++;
    SG_DEBUG("gateway", "%s %s status=%d deployment=%s attempts=%d latency_us=%" PRIu64 " error=%s",
             g->request_id, g->chat.model,
             g->status, g->dep ? g->dep->id : "-", g->attempts, sg_now_us() - g->t_recv_us,
             g->error_type ? g->error_type : "-");
}

/* The single exit of a proxied request. */
static void gw_finish(struct gw_req *g)
{
    gw_record(g);
    sg_buf_dispose(&g->up_body);
    sg_buf_dispose(&g->resp);
    sg_sse_parser_dispose(&g->sse);
    sg_runtime_unref(g->rt);
    free(g);
}

/* ---- streaming to the client ---- */

static void gw_stream_begin(struct gw_req *g)
{
    struct sg_http_header h[14];
    size_t n = gw_headers(g, h, "text/event-stream");
    h[n++] = (struct sg_http_header){SG_SLICE_LIT("Cache-Control"), SG_SLICE_LIT("no-cache")};
    g->stream_started = true;
    g->status = 200;
    g->t_first_client_byte_us = sg_now_us();
    sg_http_stream_begin(g->http, 200, h, n);
}

/* End a started stream with an error event: the client learns the answer is incomplete. */
static void gw_stream_fail(struct gw_req *g, const char *code, const char *fmt, ...)
    SG_PRINTF(3, 4);
static void gw_stream_fail(struct gw_req *g, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, "data: {\"error\":{\"message\":\"");
    sg_buf_append_json_str(&b, msg, strlen(msg));
    sg_buf_appendf(&b, "\",\"type\":\"api_error\",\"param\":null,\"code\":\"%s\"}}\n\n", code);
    sg_http_stream_write(g->http, b.data, b.len);
    sg_buf_dispose(&b);
    g->error_type = code;
    g->finished = true;
    sg_http_stream_end(g->http);
}

static void on_sse_event(void *ud, struct sg_slice raw, struct sg_slice event, struct sg_slice data)
{
    SG_UNUSED(event);
    SG_UNUSED(data);
    struct gw_req *g = ud;
    if (!g->stream_started)
        gw_stream_begin(g);
    /* Whole events only, as they arrive: a cut stream never leaves half an event behind. */
    sg_http_stream_write(g->http, raw.p, raw.n);
}

/* ---- upstream callbacks ---- */

static bool is_success(int status)
{
    return status >= 200 && status < 300;
}

static void on_up_head(void *ud, int status, const struct sg_http_header *headers, size_t n)
{
    SG_UNUSED(headers);
    SG_UNUSED(n);
    struct gw_req *g = ud;
    g->up_status = status;
}

static void on_up_body(void *ud, const char *data, size_t len)
{
    struct gw_req *g = ud;
    if (g->chat.stream && is_success(g->up_status)) {
        if (sg_sse_parser_feed(&g->sse, data, len) != SG_OK) {
            sg_upstream_cancel(g->call);
            g->call = NULL;
            g->t_up_done_us = sg_now_us();
            if (g->stream_started) {
                gw_stream_fail(g, "upstream_protocol_error",
                               "deployment %s sent a stream event larger than %u bytes",
                               g->dep->id, MAX_SSE_EVENT);
            } else {
                gw_error(g, 502, "api_error", "upstream_protocol_error",
                         "deployment %s sent a stream event larger than %u bytes", g->dep->id,
                         MAX_SSE_EVENT);
            }
            gw_finish(g);
        }
        return;
    }
    if (sg_buf_append(&g->resp, data, len) != SG_OK) {
        sg_upstream_cancel(g->call);
        g->call = NULL;
        g->t_up_done_us = sg_now_us();
        gw_error(g, 502, "api_error", "upstream_response_too_large",
                 "deployment %s answered with more than %u bytes", g->dep->id, MAX_UPSTREAM_BODY);
        gw_finish(g);
    }
}

/* 400/404/422 (and other client errors) are the caller's: returned unchanged. */
static bool is_client_error(int status)
{
    return status >= 400 && status < 500 && status != 401 && status != 403 && status != 408 &&
           status != 429;
}

static void on_up_done(void *ud, const struct sg_upstream_result *r)
{
    struct gw_req *g = ud;
    g->call = NULL;
    g->t_up_done_us = sg_now_us();
    const struct sg_deployment *d = g->dep;
    if (r->error) {
        if (g->stream_started) {
            gw_stream_fail(g, "stream_interrupted",
                           "the stream from deployment %s broke off: %s; the answer is incomplete",
                           d->id, r->detail ? r->detail : sg_strerror(r->error));
        } else if (r->error == SG_ETIMEOUT) {
            gw_error(g, 504, "timeout", r->first_byte_timeout ? "first_byte_timeout" : "timeout",
                     "deployment %s (%s) did not answer in time (%s); retry later or raise "
                     "timeout/stream_timeout",
                     d->id, d->model, r->first_byte_timeout ? "no first byte" : "timeout");
        } else {
            gw_error(g, 502, "api_error", "upstream_unreachable",
                     "deployment %s (%s at %s) failed: %s", d->id, d->model, d->api_base,
                     r->detail ? r->detail : sg_strerror(r->error));
        }
        gw_finish(g);
        return;
    }
    if (g->chat.stream && is_success(r->status)) {
        if (sg_sse_parser_pending(&g->sse) || !g->stream_started) {
            if (g->stream_started)
                gw_stream_fail(g, "stream_interrupted",
                               "the stream from deployment %s ended in the middle of an event",
                               d->id);
            else
                gw_error(g, 502, "api_error", "upstream_empty_stream",
                         "deployment %s ended its stream without sending an event", d->id);
        } else {
            g->finished = true;
            sg_http_stream_end(g->http);
        }
        gw_finish(g);
        return;
    }
    if (is_success(r->status) || is_client_error(r->status)) {
        if (!is_success(r->status))
            g->error_type = "upstream_client_error";
        gw_respond(g, r->status, g->resp.data ? g->resp.data : "", g->resp.len);
    } else {
        char msg[300];
        sg_provider_error_message(g->resp.data, g->resp.len, msg, sizeof msg);
        gw_error(g, 502, "api_error", "upstream_error",
                 "deployment %s (%s) answered HTTP %d: %s", d->id, d->model, r->status, msg);
    }
    gw_finish(g);
}

static const struct sg_upstream_handlers up_handlers = {on_up_head, on_up_body, on_up_done};

/* The client went away: stop the upstream call and finish quietly. */
static void on_client_abort(struct sg_http_request *req, void *ud)
{
    SG_UNUSED(req);
    struct gw_req *g = ud;
    if (g->finished)
        return;
    sg_upstream_cancel(g->call);
    g->call = NULL;
    g->error_type = "client_disconnected";
    g->status = 499; /* nginx's convention for "client closed request" */
    g->finished = true;
    if (g->stream_started)
        sg_http_stream_end(g->http);
    else
        sg_http_respond(g->http, 499, NULL, 0, "", 0);
    gw_finish(g);
}

/* ---- stages ---- */

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

/* Route: for now the first deployment of the lowest order serves (the router issue replaces
 * this with tiers, strategies, retries and failover). */
static const struct sg_deployment *gw_route(const struct sg_group *grp)
{
    const struct sg_deployment *best = NULL;
    for (size_t i = 0; i < grp->n; i++)
        if (!best || grp->deployments[i]->order < best->order)
            best = grp->deployments[i];
    return best;
}

static void gw_attempt(struct gw_req *g)
{
    const struct sg_deployment *d = g->dep;
    const struct sg_config *cfg = g->rt->cfg;
    size_t di = sg_runtime_dep_index(g->rt, d);
    sg_buf_reset(&g->up_body);
    if (sg_openai_encode_chat(&g->chat, d, &g->up_body) != SG_OK) {
        gw_error(g, 413, "invalid_request_error", "request_too_large",
                 "the request is too large to forward");
        gw_finish(g);
        return;
    }
    struct sg_upstream_request r = {
        .url = g->rt->dep_urls[di],
        .body = g->up_body.data,
        .body_len = g->up_body.len,
        .headers = g->rt->dep_headers[di],
        .timeout_ms = d->timeout_ms ? d->timeout_ms : cfg->router.timeout_ms,
    };
    if (g->chat.stream) {
        r.first_byte_timeout_ms =
            d->stream_timeout_ms ? d->stream_timeout_ms : cfg->router.stream_timeout_ms;
        r.first_byte_is_body = true;
    }
    g->attempts++;
    g->t_attempt_us = sg_now_us();
    g->call = sg_upstream_start(g->w->up, &r, &up_handlers, g);
}

static bool gw_authenticate(struct sg_http_request *req, const struct sg_config *cfg)
{
    const char *key = cfg->general.master_key;
    if (!key)
        return true; /* no master key configured: open, as LiteLLM (serve warns at start) */
    struct sg_slice auth = sg_http_header_get(req, "authorization");
    if (auth.n < 7 || !sg_slice_ieq((struct sg_slice){auth.p, 7}, "bearer "))
        return false;
    struct sg_slice tok = {auth.p + 7, auth.n - 7};
    while (tok.n && tok.p[0] == ' ') {
        tok.p++;
        tok.n--;
    }
    return sg_ct_equal(tok.p, tok.n, key, strlen(key));
}

static void respond_json(struct sg_http_request *req, int status, const char *body, size_t len)
{
    static const struct sg_http_header ct[] = {
        {SG_SLICE_LIT("Content-Type"), SG_SLICE_LIT("application/json")}};
    sg_http_respond(req, status, ct, 1, body, len);
}

static void reject_auth(struct sg_http_request *req)
{
    sg_http_respond_error(req, 401, "invalid_request_error", "invalid_api_key",
                          "Incorrect API key provided. Send 'Authorization: Bearer <key>' with "
                          "the gateway's master key.");
}

static void handle_chat(struct sg_http_request *req, struct sg_worker *w)
{
    struct gw_req *g = sg_xcalloc(1, sizeof *g);
    g->w = w;
    g->http = req;
    g->rt = sg_runtime_ref(atomic_load_explicit(&w->gw->rt, memory_order_acquire));
    g->t_recv_us = req->t_start_us ? req->t_start_us : sg_now_us();
    g->cache_state = "bypass";
    sg_rand_hex(g->request_id, 16);
    sg_buf_init(&g->up_body, 0);
    sg_buf_init(&g->resp, MAX_UPSTREAM_BODY);
    sg_sse_parser_init(&g->sse, MAX_SSE_EVENT, on_sse_event, g);
    sg_http_request_on_abort(req, on_client_abort, g);
    const struct sg_config *cfg = g->rt->cfg;

    if (!gw_authenticate(req, cfg)) {
        g->error_type = "invalid_api_key";
        g->status = 401;
        g->finished = true;
        reject_auth(req);
        gw_finish(g);
        return;
    }
    char err[300];
    if (sg_chat_request_parse(req->body.data, req->body.len, &g->chat, err, sizeof err) != SG_OK) {
        gw_error(g, 400, "invalid_request_error", NULL, "%s", err);
        gw_finish(g);
        return;
    }
    /* Attribution: the key names tenant and user (master key: tenant "default"). */
    g->tenant = SG_SLICE_LIT("default");
    g->user = sg_slice_of(g->chat.user);
    struct sg_slice feat = sg_http_header_get(req, "x-slogate-feature");
    g->feature = feat.p ? feat : sg_slice_of(g->chat.feature);

    g->group = sg_config_group(cfg, g->chat.model, g->chat.model_len);
    if (!g->group) {
        gw_error(g, 404, "invalid_request_error", "model_not_found",
                 "The model `%.*s` does not exist or you do not have access to it. GET /v1/models "
                 "lists the models this gateway serves.",
                 (int)SG_MIN(g->chat.model_len, 200), g->chat.model);
        gw_finish(g);
        return;
    }
    if (!gw_admit(g) || gw_cache_lookup(g))
        return;
    g->dep = gw_route(g->group);
    gw_attempt(g);
}

void sg_gateway_handle(struct sg_http_request *req, void *ud)
{
    struct sg_worker *w = ud;
    const struct sg_config *cfg = atomic_load_explicit(&w->gw->rt, memory_order_acquire)->cfg;
    bool get = sg_slice_eq(req->method, "GET"), post = sg_slice_eq(req->method, "POST");
    struct sg_slice p = req->path;

    if (sg_slice_eq(p, "/v1/chat/completions") || sg_slice_eq(p, "/chat/completions")) {
        if (post)
            { handle_chat(req, w); return; }
    } else if (sg_slice_eq(p, "/health/liveliness") || sg_slice_eq(p, "/health/liveness")) {
        if (get) {
            static const char alive[] = "\"I'm alive!\"";
            { respond_json(req, 200, alive, sizeof alive - 1); return; }
        }
    } else if (sg_slice_eq(p, "/health/readiness")) {
        if (get) {
            char body[160];
            int n = snprintf(body, sizeof body,
                             "{\"status\":\"%s\",\"deployments\":%zu,\"worker\":%d}",
                             w->stopping ? "draining" : "healthy", cfg->n_deployments, w->id);
            { respond_json(req, w->stopping ? 503 : 200, body, (size_t)n); return; }
        }
    } else if (sg_slice_eq(p, "/v1/models") || sg_slice_eq(p, "/models")) {
        if (get) {
            if (!gw_authenticate(req, cfg))
                { reject_auth(req); return; }
            struct sg_runtime *rt = atomic_load_explicit(&w->gw->rt, memory_order_acquire);
            { respond_json(req, 200, rt->models_json, rt->models_json_len); return; }
        }
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "Invalid URL (%.*s %.*s)", (int)req->method.n, req->method.p,
                 (int)SG_MIN(req->path.n, 200), req->path.p);
        { sg_http_respond_error(req, 404, "invalid_request_error", NULL, msg); return; }
    }
    char msg[300];
    snprintf(msg, sizeof msg, "Method %.*s is not allowed on %.*s", (int)req->method.n,
             req->method.p, (int)SG_MIN(req->path.n, 200), req->path.p);
    sg_http_respond_error(req, 405, "invalid_request_error", NULL, msg);
}
