/*
 * The HTTP surface of the gateway: which path goes where, authentication, and the small
 * endpoints (health, models). Chat completions go to chat.c; the admin API to admin.c.
 */
#include "gateway_int.h"
#include "telemetry/telemetry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

bool gw_authenticate(struct sg_http_request *req, const struct sg_config *cfg)
{
    const char *key = cfg->general.master_key;
    if (!key)
        return true; /* no master key configured: open, as LiteLLM (serve warns at start) */
    struct sg_slice auth = sg_http_header_get(req, "authorization");
    struct sg_slice xkey = sg_http_header_get(req, "x-api-key");
    if (!auth.p && xkey.p &&
        (sg_slice_eq(req->path, "/v1/messages") ||
         sg_slice_eq(req->path, "/v1/messages/count_tokens")))
        return sg_ct_equal(xkey.p, xkey.n, key, strlen(key)); /* Anthropic clients' header */
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

void gw_reject_auth(struct sg_http_request *req)
{
    sg_http_respond_error(req, 401, "invalid_request_error", "invalid_api_key", GW_AUTH_MESSAGE);
}

static void readiness(struct sg_http_request *req, struct sg_worker *w)
{
    /* Redis is connected at start: a reload does not change which (start_cfg). */
    const char *redis = !w->gw->start_cfg->general.redis_url ? "none"
                        : atomic_load(&w->gw->health->redis_ok)
                            ? "ok"
                            : "unreachable (cooldowns are local only)";
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appendf(&b,
                   "{\"status\":\"%s\",\"deployments\":%zu,\"worker\":%d,\"redis\":\"%s\","
                   "\"store\":",
                   w->stopping ? "draining" : "healthy", w->rt->cfg->n_deployments, w->id, redis);
    gw_store_readiness(w->gw, &b); /* degraded store: still ready */
    sg_buf_appends(&b, "}");
    respond_json(req, w->stopping ? 503 : 200, b.data, b.len);
    sg_buf_dispose(&b);
}

static void not_found(struct sg_http_request *req)
{
    char msg[300];
    snprintf(msg, sizeof msg, "Invalid URL (%.*s %.*s)", (int)req->method.n, req->method.p,
             (int)SG_MIN(req->path.n, 200), req->path.p);
    sg_http_respond_error(req, 404, "invalid_request_error", NULL, msg);
}

static void method_not_allowed(struct sg_http_request *req, const char *allow)
{
    char msg[300];
    snprintf(msg, sizeof msg, "Method %.*s is not allowed on %.*s; use %s", (int)req->method.n,
             req->method.p, (int)SG_MIN(req->path.n, 200), req->path.p, allow);
    sg_http_respond_405(req, allow, msg);
}

static void liveness(struct sg_http_request *req, struct sg_worker *w)
{
    SG_UNUSED(w);
    static const char alive[] = "\"I'm alive!\"";
    respond_json(req, 200, alive, sizeof alive - 1);
}

static void models(struct sg_http_request *req, struct sg_worker *w)
{
    if (gw_authenticate(req, w->rt->cfg))
        respond_json(req, 200, w->rt->models_json, w->rt->models_json_len);
    else
        gw_reject_auth(req);
}

/* The id in a model path, %XX sequences decoded (the SDKs send "app/chat" as is, but a client
 * may encode its '/'). False when it is empty, too long, or holds a NUL. */
static bool model_id(struct sg_slice s, char *out, size_t cap, size_t *len)
{
    size_t n = 0;
    for (size_t i = 0; i < s.n; i++) {
        char c = s.p[i];
        if (c == '%' && i + 2 < s.n && sg_hex_digit(s.p[i + 1]) >= 0 &&
            sg_hex_digit(s.p[i + 2]) >= 0) {
            c = (char)(sg_hex_digit(s.p[i + 1]) * 16 + sg_hex_digit(s.p[i + 2]));
            i += 2;
        }
        if (c == '\0' || n + 1 >= cap)
            return false;
        out[n++] = c;
    }
    out[n] = '\0';
    *len = n;
    return n > 0;
}

/* GET /v1/models/{model} (the SDKs' models.retrieve): the model object /v1/models lists, for
 * any name a chat request may send; a name nothing serves is the 404 a chat request gets. */
static void model_retrieve(struct sg_http_request *req, struct sg_worker *w, struct sg_slice id)
{
    const struct sg_runtime *rt = w->rt;
    if (!gw_authenticate(req, rt->cfg)) {
        gw_reject_auth(req);
        return;
    }
    char name[SG_CHAT_MAX_MODEL];
    size_t len = 0;
    struct sg_match m;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    if (model_id(id, name, sizeof name, &len) && sg_router_resolve(rt->router, name, len, &m)) {
        sg_buf_appends(&b, "{\"id\":\"");
        sg_buf_append_json_str(&b, name, len);
        sg_buf_appendf(&b, "\",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"slogate\"}",
                       rt->models_created);
        respond_json(req, 200, b.data, b.len);
    } else {
        sg_buf_appendf(&b, GW_MODEL_NOT_FOUND_FMT, (int)SG_MIN(id.n, 200), id.p);
        sg_http_respond_error(req, 404, "invalid_request_error", "model_not_found", b.data);
    }
    sg_buf_dispose(&b);
}

/* An error in Anthropic's shape ({"type":"error","error":{...}}), which its SDK reads. */
static void respond_anthropic_error(struct sg_http_request *req, int status, const char *msg)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_anthropic_error_body(&b, status, msg);
    respond_json(req, status, b.data, b.len);
    sg_buf_dispose(&b);
}

/* POST /v1/messages/count_tokens (the Anthropic SDK's messages.countTokens; LiteLLM serves it):
 * {"input_tokens":N} for a Messages body without max_tokens, for any model the gateway routes.
 * N is the gateway's own estimate, the one its caps use (conservative: docs/pricing.md); no
 * provider is called, so it costs nothing and is not a recorded request. */
static void count_tokens(struct sg_http_request *req, struct sg_worker *w)
{
    const struct sg_runtime *rt = w->rt;
    if (!gw_authenticate(req, rt->cfg)) {
        respond_anthropic_error(req, 401, GW_AUTH_MESSAGE_ANTHROPIC);
        return;
    }
    struct sg_chat_request *r = sg_xcalloc(1, sizeof *r);
    char err[300];
    struct sg_match m;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    if (sg_messages_count_parse(req->body.data, req->body.len, r, err, sizeof err) != SG_OK) {
        respond_anthropic_error(req, 400, err);
    } else if (!sg_router_resolve(rt->router, r->model, r->model_len, &m)) {
        sg_buf_appendf(&b, GW_MODEL_NOT_FOUND_FMT, (int)SG_MIN(r->model_len, 200), r->model);
        respond_anthropic_error(req, 404, b.data);
    } else {
        int64_t n = sg_tokens_estimate_request(req->body.data, req->body.len);
        sg_buf_appendf(&b, "{\"input_tokens\":%" PRId64 "}", n > 0 ? n : 0);
        respond_json(req, 200, b.data, b.len);
    }
    sg_buf_dispose(&b);
    free(r);
}

/* Exact paths; the chat path first, as it is nearly every request. chat.c tells the three APIs
 * apart by path. */
static const struct route {
    const char *path;
    bool post; /* else GET */
    void (*handle)(struct sg_http_request *req, struct sg_worker *w);
} routes[] = {
    {"/v1/chat/completions", true, gw_chat}, {"/chat/completions", true, gw_chat},
    {"/v1/messages", true, gw_chat},         {"/v1/messages/count_tokens", true, count_tokens},
    {"/v1/embeddings", true, gw_chat},       {"/embeddings", true, gw_chat},
    {"/health/liveliness", false, liveness}, {"/health/liveness", false, liveness},
    {"/health/readiness", false, readiness}, {"/metrics", false, gw_metrics},
    {"/v1/models", false, models},           {"/models", false, models},
};

void gw_refused(const struct sg_http_refusal *r, char request_id[33], void *ud)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(routes); i++)
        if (routes[i].handle == gw_chat && sg_slice_eq(r->path, routes[i].path)) {
            gw_event_refusal(ud, r, request_id);
            /* Anthropic's SDK picks its exception by Anthropic's error shape. */
            if (sg_slice_eq(r->path, "/v1/messages")) {
                sg_anthropic_error_body(r->body, r->status, r->message);
                *r->request_id_twice = true;
            }
            return;
        }
}

/* Every answer carries a request id, as OpenAI's and Anthropic's do (their SDKs show it as
 * _request_id); chat.c writes its own, with the request's record. Anthropic's SDK reads it as
 * request-id. */
static void give_request_id(struct sg_http_request *req)
{
    sg_request_id(req->request_id);
    req->request_id_twice = req->path.n >= 12 && memcmp(req->path.p, "/v1/messages", 12) == 0;
}

void sg_gateway_handle(struct sg_http_request *req, void *ud)
{
    struct sg_worker *w = ud;
    for (size_t i = 0; i < SG_ARRAY_LEN(routes); i++) {
        if (!sg_slice_eq(req->path, routes[i].path))
            continue;
        const char *method = routes[i].post ? "POST" : "GET";
        bool allowed = sg_slice_eq(req->method, method);
        if (!allowed || routes[i].handle != gw_chat)
            give_request_id(req);
        if (allowed)
            routes[i].handle(req, w);
        else
            method_not_allowed(req, method);
        return;
    }
    give_request_id(req);
    static const char *const model_paths[] = {"/v1/models/", "/models/"};
    for (size_t i = 0; i < SG_ARRAY_LEN(model_paths); i++) {
        size_t n = strlen(model_paths[i]);
        if (req->path.n <= n || memcmp(req->path.p, model_paths[i], n) != 0)
            continue;
        if (sg_slice_eq(req->method, "GET"))
            model_retrieve(req, w, (struct sg_slice){req->path.p + n, req->path.n - n});
        else
            method_not_allowed(req, "GET");
        return;
    }
    if (req->path.n >= 7 && memcmp(req->path.p, "/admin/", 7) == 0) {
        if (gw_authenticate(req, w->rt->cfg))
            gw_admin(req, w); /* its own methods per path */
        else
            gw_reject_auth(req);
        return;
    }
    not_found(req);
}
