/*
 * The HTTP surface of the gateway: which path goes where, authentication, and the small
 * endpoints (health, models). Chat completions go to chat.c; the admin API to admin.c.
 */
#include "gateway_int.h"

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
    if (!auth.p && xkey.p && sg_slice_eq(req->path, "/v1/messages"))
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
    sg_http_respond_error(req, 401, "invalid_request_error", "invalid_api_key",
                          "Incorrect API key provided. Send 'Authorization: Bearer <key>' with "
                          "the gateway's master key.");
}

void sg_gateway_handle(struct sg_http_request *req, void *ud)
{
    struct sg_worker *w = ud;
    const struct sg_config *cfg = w->rt->cfg;
    bool get = sg_slice_eq(req->method, "GET"), post = sg_slice_eq(req->method, "POST");
    struct sg_slice p = req->path;

    if (sg_slice_eq(p, "/v1/chat/completions") || sg_slice_eq(p, "/chat/completions") ||
        sg_slice_eq(p, "/v1/messages") || sg_slice_eq(p, "/v1/embeddings") ||
        sg_slice_eq(p, "/embeddings")) {
        if (post) {
            gw_chat(req, w);
            return;
        } /* chat.c tells the three APIs apart by path */
    } else if (sg_slice_eq(p, "/health/liveliness") || sg_slice_eq(p, "/health/liveness")) {
        if (get) {
            static const char alive[] = "\"I'm alive!\"";
            {
                respond_json(req, 200, alive, sizeof alive - 1);
                return;
            }
        }
    } else if (sg_slice_eq(p, "/health/readiness")) {
        if (get) {
            char body[400], store[200];
            gw_store_readiness(w->gw, store, sizeof store); /* degraded store: still ready */
            const char *rs = !cfg->general.redis_url ? "none"
                             : atomic_load(&w->gw->health->redis_ok)
                                 ? "ok"
                                 : "unreachable (cooldowns are local only)";
            int n = snprintf(body, sizeof body,
                             "{\"status\":\"%s\",\"deployments\":%zu,\"worker\":%d,"
                             "\"redis\":\"%s\",\"store\":%s}",
                             w->stopping ? "draining" : "healthy", cfg->n_deployments, w->id, rs,
                             store);
            {
                respond_json(req, w->stopping ? 503 : 200, body, (size_t)n);
                return;
            }
        }
    } else if (sg_slice_eq(p, "/metrics")) {
        if (get) {
            gw_metrics(req, w);
            return;
        }
    } else if (sg_slice_eq(p, "/v1/models") || sg_slice_eq(p, "/models")) {
        if (get) {
            if (!gw_authenticate(req, cfg)) {
                gw_reject_auth(req);
                return;
            }
            struct sg_runtime *rt = w->rt;
            {
                respond_json(req, 200, rt->models_json, rt->models_json_len);
                return;
            }
        }
    } else if (p.n >= 7 && memcmp(p.p, "/admin/", 7) == 0) {
        if (!gw_authenticate(req, cfg)) {
            gw_reject_auth(req);
            return;
        }
        gw_admin(req, w);
        return;
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "Invalid URL (%.*s %.*s)", (int)req->method.n, req->method.p,
                 (int)SG_MIN(req->path.n, 200), req->path.p);
        {
            sg_http_respond_error(req, 404, "invalid_request_error", NULL, msg);
            return;
        }
    }
    char msg[300];
    snprintf(msg, sizeof msg, "Method %.*s is not allowed on %.*s", (int)req->method.n,
             req->method.p, (int)SG_MIN(req->path.n, 200), req->path.p);
    sg_http_respond_error(req, 405, "invalid_request_error", NULL, msg);
}
