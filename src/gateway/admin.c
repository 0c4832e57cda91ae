/*
 * The admin API (master key): deployments and their health, pins, disable/enable, cooldowns,
 * the router bypass, and config reload. Answers are JSON; mistakes get a 4xx that says what to
 * send instead.
 *
 *   GET  /admin/deployments
 *   POST /admin/deployments/<id>/{disable,enable,pin,unpin,clear-cooldown}
 *   POST /admin/deployments/clear-cooldowns
 *   GET  /admin/bypass            POST /admin/bypass {"enabled": true|false}
 *   POST /admin/reload[?force=true]
 */
#include "gateway_int.h"
#include "provider/provider.h"

#include <stdio.h>
#include <stdlib.h>

static void reply(struct sg_http_request *req, int status, struct sg_buf *b)
{
    static const struct sg_http_header ct[] = {
        {SG_SLICE_LIT("Content-Type"), SG_SLICE_LIT("application/json")}};
    sg_http_respond(req, status, ct, 1, b->data ? b->data : "{}", b->data ? b->len : 2);
}

static void json_str(struct sg_buf *b, const char *s)
{
    if (!s) {
        sg_buf_appends(b, "null");
        return;
    }
    sg_buf_append(b, "\"", 1);
    sg_buf_append_json_str(b, s, strlen(s));
    sg_buf_append(b, "\"", 1);
}

static void list_deployments(struct sg_http_request *req, struct sg_worker *w)
{
    struct sg_runtime *rt = w->rt;
    struct sg_health *h = w->gw->health;
    uint64_t now = sg_now_ms();
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appendf(&b, "{\"bypass\":%s,\"frozen\":%s,\"deployments\":[",
                   atomic_load(&h->bypass) ? "true" : "false", w->gw->frozen ? "true" : "false");
    const struct sg_config *cfg = rt->cfg;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        const struct sg_deployment *d = &cfg->deployments[i];
        struct sg_dep_health *e = sg_router_health_of(rt->router, d);
        struct sg_dep_view v;
        sg_health_view(e, now, &v);
        char pinned[256];
        bool pin = sg_health_pinned(h, d->alias, pinned, sizeof pinned) && !strcmp(pinned, d->id);
        sg_buf_appends(&b, i ? ",{\"id\":" : "{\"id\":");
        json_str(&b, d->id);
        sg_buf_appends(&b, ",\"alias\":");
        json_str(&b, d->alias);
        sg_buf_appends(&b, ",\"model\":");
        json_str(&b, d->model);
        sg_buf_appends(&b, ",\"provider\":");
        json_str(&b, d->provider);
        sg_buf_appends(&b, ",\"api_base\":");
        json_str(&b, d->api_base);
        sg_buf_appendf(&b, ",\"order\":%d,\"weight\":%g,\"state\":\"%s\",\"healthy\":%s,"
                           "\"disabled\":%s,\"pinned\":%s,\"cooling_ms\":%llu,\"cooldown_reason\":",
                       d->order, d->weight,
                       v.disabled ? "disabled" : v.cooling_ms ? "cooling" : v.probing ? "probing"
                                                                              : "healthy",
                       v.healthy ? "true" : "false", v.disabled ? "true" : "false",
                       pin ? "true" : "false", (unsigned long long)v.cooling_ms);
        json_str(&b, v.cooldown_reason);
        sg_buf_appendf(&b, ",\"fails_in_window\":%u,\"in_flight\":%d,\"ewma_ttft_ms\":%.1f,"
                           "\"ewma_total_ms\":%.1f,\"successes\":%llu,\"failures\":%llu}",
                       v.fails_in_window, v.in_flight, v.ewma_ttft_ms, v.ewma_total_ms,
                       v.successes, v.failures);
    }
    sg_buf_appends(&b, "]}");
    reply(req, 200, &b);
    sg_buf_dispose(&b);
}

/* POST /admin/deployments/<id>/<action> */
static void deployment_action(struct sg_http_request *req, struct sg_worker *w, struct sg_slice rest)
{
    const char *slash = memchr(rest.p, '/', rest.n);
    if (!slash) {
        sg_http_respond_error(req, 404, "invalid_request_error", "not_found",
                              "use POST /admin/deployments/<id>/{disable,enable,pin,unpin,"
                              "clear-cooldown}");
        return;
    }
    char id[256], action[32];
    snprintf(id, sizeof id, "%.*s", (int)(slash - rest.p), rest.p);
    snprintf(action, sizeof action, "%.*s", (int)(rest.n - (size_t)(slash - rest.p) - 1), slash + 1);
    const struct sg_config *cfg = w->rt->cfg;
    const struct sg_deployment *d = NULL;
    for (size_t i = 0; i < cfg->n_deployments && !d; i++)
        if (strcmp(cfg->deployments[i].id, id) == 0)
            d = &cfg->deployments[i];
    if (!d) {
        char msg[400];
        snprintf(msg, sizeof msg, "no deployment with id '%s'; GET /admin/deployments lists them",
                 id);
        sg_http_respond_error(req, 404, "invalid_request_error", "deployment_not_found", msg);
        return;
    }
    struct sg_dep_health *e = sg_router_health_of(w->rt->router, d);
    struct sg_health *h = w->gw->health;
    if (strcmp(action, "disable") == 0 || strcmp(action, "enable") == 0) {
        pthread_mutex_lock(&e->lock);
        e->disabled = action[0] == 'd';
        pthread_mutex_unlock(&e->lock);
    } else if (strcmp(action, "pin") == 0) {
        sg_health_pin(h, d->alias, d->id);
    } else if (strcmp(action, "unpin") == 0) {
        sg_health_pin(h, d->alias, NULL);
    } else if (strcmp(action, "clear-cooldown") == 0) {
        sg_health_clear_cooldown(e);
    } else {
        sg_http_respond_error(req, 404, "invalid_request_error", "unknown_action",
                              "unknown action; use disable, enable, pin, unpin or clear-cooldown");
        return;
    }
    SG_INFO("admin", "deployment %s: %s", d->id, action);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, "{\"id\":");
    json_str(&b, d->id);
    sg_buf_appends(&b, ",\"done\":");
    json_str(&b, action);
    sg_buf_appends(&b, "}");
    reply(req, 200, &b);
    sg_buf_dispose(&b);
}

static void bypass(struct sg_http_request *req, struct sg_worker *w, bool post)
{
    struct sg_health *h = w->gw->health;
    if (post) {
        char err[200];
        struct sg_json_member m[4];
        size_t n = 0;
        bool ok = req->body.len &&
                  sg_json_members(req->body.data, req->body.len, m, 4, &n, err, sizeof err) == 0;
        int set = -1;
        for (size_t i = 0; ok && i < n; i++)
            if (sg_slice_eq(m[i].name, "enabled"))
                set = sg_slice_eq(m[i].value, "true") ? 1 : sg_slice_eq(m[i].value, "false") ? 0 : -1;
        if (set < 0) {
            sg_http_respond_error(req, 400, "invalid_request_error", "bad_body",
                                  "send {\"enabled\": true} or {\"enabled\": false}");
            return;
        }
        atomic_store(&h->bypass, set == 1);
        SG_WARN("admin", "router bypass %s", set ? "ON: no retries, no failover" : "off");
    }
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appendf(&b, "{\"bypass\":%s}", atomic_load(&h->bypass) ? "true" : "false");
    reply(req, 200, &b);
    sg_buf_dispose(&b);
}

static void reload(struct sg_http_request *req, struct sg_worker *w)
{
    bool force = sg_slice_eq(req->query, "force=true");
    struct sg_buf err;
    sg_buf_init(&err, 16384);
    int rc = sg_gateway_reload(w->gw, force, &err);
    if (rc != SG_OK) {
        sg_http_respond_error(req, rc == SG_EINVAL ? 409 : 400, "invalid_request_error",
                              "reload_refused", err.data ? err.data : "reload failed");
    } else {
        struct sg_runtime *rt = sg_gateway_runtime(w->gw);
        struct sg_buf b;
        sg_buf_init(&b, 0);
        sg_buf_appendf(&b, "{\"reloaded\":true,\"deployments\":%zu,\"groups\":%zu}",
                       rt->cfg->n_deployments, rt->cfg->n_groups);
        sg_runtime_unref(rt);
        reply(req, 200, &b);
        sg_buf_dispose(&b);
    }
    sg_buf_dispose(&err);
}

void gw_admin(struct sg_http_request *req, struct sg_worker *w)
{
    struct sg_slice p = req->path;
    bool get = sg_slice_eq(req->method, "GET"), post = sg_slice_eq(req->method, "POST");
    static const char dep_prefix[] = "/admin/deployments/";
    if (sg_slice_eq(p, "/admin/deployments") && get) {
        list_deployments(req, w);
    } else if (sg_slice_eq(p, "/admin/deployments/clear-cooldowns") && post) {
        struct sg_runtime *rt = w->rt;
        for (size_t i = 0; i < rt->cfg->n_deployments; i++)
            sg_health_clear_cooldown(sg_router_health_of(rt->router, &rt->cfg->deployments[i]));
        struct sg_buf b;
        sg_buf_init(&b, 0);
        sg_buf_appendf(&b, "{\"cleared\":%zu}", rt->cfg->n_deployments);
        reply(req, 200, &b);
        sg_buf_dispose(&b);
    } else if (p.n > sizeof dep_prefix - 1 && memcmp(p.p, dep_prefix, sizeof dep_prefix - 1) == 0 &&
               post) {
        deployment_action(req, w,
                          (struct sg_slice){p.p + sizeof dep_prefix - 1, p.n - (sizeof dep_prefix - 1)});
    } else if (sg_slice_eq(p, "/admin/bypass") && (get || post)) {
        bypass(req, w, post);
    } else if (sg_slice_eq(p, "/admin/reload") && post) {
        reload(req, w);
    } else {
        char msg[300];
        snprintf(msg, sizeof msg, "no admin endpoint %.*s %.*s; see docs/api.md", (int)req->method.n,
                 req->method.p, (int)SG_MIN(p.n, 200), p.p);
        sg_http_respond_error(req, 404, "invalid_request_error", "not_found", msg);
    }
}
