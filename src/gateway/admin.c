/*
 * The admin API (master key): deployments and their health, pins, disable/enable, cooldowns,
 * the router bypass, and config reload. Answers are JSON; mistakes get a 4xx that says what to
 * send instead.
 *
 *   GET  /admin/deployments
 *   POST /admin/deployments/<id>/{disable,enable,pin,unpin,clear-cooldown}
 *                                 (unpin: 409 when another deployment holds the alias's pin)
 *   POST /admin/deployments/clear-cooldowns
 *   GET  /admin/bypass            POST /admin/bypass {"enabled": true|false}
 *   POST /admin/reload[?force=true]
 *   GET  /admin/faults            POST /admin/faults {"deployment": id, "revoke_key": true,
 *                                   "block_egress": true, "ttft_ms": 30}
 *   DELETE /admin/faults          DELETE /admin/faults/<id>
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

static void append_faults(struct sg_buf *b, struct sg_dep_health *e)
{
    sg_buf_appendf(b, "{\"revoke_key\":%s,\"block_egress\":%s,\"ttft_ms\":%u}",
                   atomic_load(&e->fault_revoke_key) ? "true" : "false",
                   atomic_load(&e->fault_block_egress) ? "true" : "false",
                   atomic_load(&e->fault_ttft_ms));
}

static const struct sg_deployment *find_deployment(struct sg_worker *w, const char *id, size_t n)
{
    const struct sg_config *cfg = w->rt->cfg;
    for (size_t i = 0; i < cfg->n_deployments; i++)
        if (strlen(cfg->deployments[i].id) == n && memcmp(cfg->deployments[i].id, id, n) == 0)
            return &cfg->deployments[i];
    return NULL;
}

static void no_such_deployment(struct sg_http_request *req, const char *id, size_t n)
{
    char msg[400];
    snprintf(msg, sizeof msg, "no deployment with id '%.*s'; GET /admin/deployments lists them",
             (int)SG_MIN(n, 200), id);
    sg_http_respond_error(req, 404, "invalid_request_error", "deployment_not_found", msg);
}

static void list_faults(struct sg_http_request *req, struct sg_worker *w)
{
    struct sg_runtime *rt = w->rt;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, "{\"faults\":[");
    size_t k = 0;
    for (size_t i = 0; i < rt->cfg->n_deployments; i++) {
        const struct sg_deployment *d = &rt->cfg->deployments[i];
        struct sg_dep_health *e = sg_router_health_of(rt->router, d);
        if (!atomic_load(&e->fault_revoke_key) && !atomic_load(&e->fault_block_egress) &&
            !atomic_load(&e->fault_ttft_ms))
            continue;
        sg_buf_appends(&b, k++ ? ",{\"deployment\":" : "{\"deployment\":");
        json_str(&b, d->id);
        sg_buf_appends(&b, ",\"faults\":");
        append_faults(&b, e);
        sg_buf_appends(&b, "}");
    }
    sg_buf_appends(&b, "]}");
    reply(req, 200, &b);
    sg_buf_dispose(&b);
}

/* POST /admin/faults {"deployment": "primary", "revoke_key": true, ...}: the fields given are set,
 * the others left as they are. */
static void set_faults(struct sg_http_request *req, struct sg_worker *w)
{
    char err[300];
    struct sg_json_member m[8];
    size_t n = 0;
    if (!req->body.len ||
        sg_json_members(req->body.data, req->body.len, m, 8, &n, err, sizeof err) != 0) {
        sg_http_respond_error(req, 400, "invalid_request_error", "bad_body",
                              "send a JSON object such as {\"deployment\": \"primary\", "
                              "\"revoke_key\": true}");
        return;
    }
    const struct sg_deployment *d = NULL;
    int revoke = -1, block = -1;
    long ttft = -1;
    for (size_t i = 0; i < n; i++) {
        struct sg_slice v = m[i].value;
        bool is_bool = sg_slice_eq(v, "true") || sg_slice_eq(v, "false");
        if (sg_slice_eq(m[i].name, "deployment") && v.n >= 2 && v.p[0] == '"') {
            d = find_deployment(w, v.p + 1, v.n - 2);
            if (!d) {
                no_such_deployment(req, v.p + 1, v.n - 2);
                return;
            }
        } else if (sg_slice_eq(m[i].name, "revoke_key") && is_bool) {
            revoke = v.p[0] == 't';
        } else if (sg_slice_eq(m[i].name, "block_egress") && is_bool) {
            block = v.p[0] == 't';
        } else if (sg_slice_eq(m[i].name, "ttft_ms")) {
            char num[24];
            int64_t x;
            snprintf(num, sizeof num, "%.*s", (int)SG_MIN(v.n, 23), v.p);
            if (!sg_parse_i64(num, 0, 600000, &x)) {
                sg_http_respond_error(req, 400, "invalid_request_error", "bad_body",
                                      "ttft_ms must be an integer from 0 (off) to 600000");
                return;
            }
            ttft = (long)x;
        } else {
            snprintf(err, sizeof err,
                     "unknown or mistyped field '%.*s': use deployment (string), "
                     "revoke_key, block_egress (booleans), ttft_ms (integer)",
                     (int)SG_MIN(m[i].name.n, 60), m[i].name.p);
            sg_http_respond_error(req, 400, "invalid_request_error", "bad_body", err);
            return;
        }
    }
    if (!d) {
        sg_http_respond_error(req, 400, "invalid_request_error", "bad_body",
                              "name the deployment: {\"deployment\": \"<id>\", ...}");
        return;
    }
    struct sg_dep_health *e = sg_router_health_of(w->rt->router, d);
    sg_health_set_faults(w->gw->health, e, revoke, block, ttft);
    SG_WARN("admin", "drill fault on %s: revoke_key=%d block_egress=%d ttft_ms=%u", d->id,
            atomic_load(&e->fault_revoke_key), atomic_load(&e->fault_block_egress),
            atomic_load(&e->fault_ttft_ms));
    list_faults(req, w);
}

static void clear_faults(struct sg_http_request *req, struct sg_worker *w, struct sg_slice id)
{
    struct sg_runtime *rt = w->rt;
    if (id.n) {
        const struct sg_deployment *d = find_deployment(w, id.p, id.n);
        if (!d) {
            no_such_deployment(req, id.p, id.n);
            return;
        }
        sg_health_set_faults(w->gw->health, sg_router_health_of(rt->router, d), 0, 0, 0);
    } else {
        for (size_t i = 0; i < rt->cfg->n_deployments; i++)
            sg_health_set_faults(
                w->gw->health, sg_router_health_of(rt->router, &rt->cfg->deployments[i]), 0, 0, 0);
    }
    SG_INFO("admin", "drill faults cleared (%s)", id.n ? "one deployment" : "all");
    list_faults(req, w);
}

static void list_deployments(struct sg_http_request *req, struct sg_worker *w, struct sg_slice rest)
{
    SG_UNUSED(rest);
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
        sg_buf_appendf(&b,
                       ",\"order\":%d,\"weight\":%g,\"state\":\"%s\",\"healthy\":%s,"
                       "\"disabled\":%s,\"pinned\":%s,\"cooling_ms\":%llu,\"cooldown_reason\":",
                       d->order, d->weight,
                       v.disabled     ? "disabled"
                       : v.cooling_ms ? "cooling"
                       : v.probing    ? "probing"
                                      : "healthy",
                       v.healthy ? "true" : "false", v.disabled ? "true" : "false",
                       pin ? "true" : "false", (unsigned long long)v.cooling_ms);
        json_str(&b, v.cooldown_reason);
        sg_buf_appendf(&b,
                       ",\"fails_in_window\":%u,\"in_flight\":%d,\"ewma_ttft_ms\":%.1f,"
                       "\"ewma_total_ms\":%.1f,\"successes\":%llu,\"failures\":%llu,"
                       "\"faults\":",
                       v.fails_in_window, v.in_flight, v.ewma_ttft_ms, v.ewma_total_ms, v.successes,
                       v.failures);
        append_faults(&b, e);
        sg_buf_appends(&b, "}");
    }
    sg_buf_appends(&b, "]}");
    reply(req, 200, &b);
    sg_buf_dispose(&b);
}

/* Unpin `d` only if it is the pinned deployment of its alias: unpinning another would silently
 * drop the pin an operator (or a trial) set on the one that is. Nothing pinned is a success, so a
 * retried unpin whose first answer was lost still succeeds. False when answered with the 409. */
static bool unpin(struct sg_http_request *req, struct sg_health *h, const struct sg_deployment *d)
{
    char holder[256], msg[1024];
    if (sg_health_unpin(h, d->alias, d->id, holder, sizeof holder) == SG_OK)
        return true;
    snprintf(
        msg, sizeof msg,
        "'%.200s' is pinned to '%.200s', not to '%.200s': nothing was unpinned; to remove that "
        "pin, POST /admin/deployments/%.200s/unpin",
        d->alias, holder, d->id, holder);
    sg_http_respond_error(req, 409, "invalid_request_error", "pinned_elsewhere", msg);
    return false;
}

/* POST /admin/deployments/<id>/<action> */
static void deployment_action(struct sg_http_request *req, struct sg_worker *w,
                              struct sg_slice rest)
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
    snprintf(action, sizeof action, "%.*s", (int)(rest.n - (size_t)(slash - rest.p) - 1),
             slash + 1);
    const struct sg_deployment *d = find_deployment(w, id, strlen(id));
    if (!d) {
        no_such_deployment(req, id, strlen(id));
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
        if (!unpin(req, h, d))
            return;
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

static void bypass(struct sg_http_request *req, struct sg_worker *w, struct sg_slice rest)
{
    SG_UNUSED(rest);
    struct sg_health *h = w->gw->health;
    if (sg_slice_eq(req->method, "POST")) {
        char err[200];
        struct sg_json_member m[4];
        size_t n = 0;
        bool ok = req->body.len &&
                  sg_json_members(req->body.data, req->body.len, m, 4, &n, err, sizeof err) == 0;
        int set = -1;
        for (size_t i = 0; ok && i < n; i++)
            if (sg_slice_eq(m[i].name, "enabled"))
                set = sg_slice_eq(m[i].value, "true")    ? 1
                      : sg_slice_eq(m[i].value, "false") ? 0
                                                         : -1;
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

/* A POST /admin/reload under way. Loading a file and building its runtime takes time that
 * grows with model_list (about 0.07 s of CPU for 4000 deployments and 0.5 s for 20000 on the
 * development machine, release build): it runs on libuv's thread pool, so the worker that
 * received the request goes on serving its other clients meanwhile. */
struct reload_job {
    uv_work_t work;
    struct sg_http_request *req; /* NULL once answered early (the drain deadline) */
    struct sg_gateway *gw;
    bool force;
    int rc;
    struct gw_reload done;
    struct sg_buf err; /* the reason on failure; on success the warnings, one a line */
};

static void reload_work(uv_work_t *wk)
{
    struct reload_job *j = SG_CONTAINER_OF(wk, struct reload_job, work);
    j->rc = sg_gateway_reload(j->gw, j->force, &j->done, &j->err);
}

static void reload_answer(struct reload_job *j)
{
    struct sg_http_request *req = j->req;
    if (j->rc != SG_OK) {
        sg_http_respond_error(req, j->rc == SG_EINVAL ? 409 : 400, "invalid_request_error",
                              "reload_refused", j->err.data ? j->err.data : "reload failed");
        return;
    }
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appendf(&b,
                   "{\"reloaded\":true,\"deployments\":%zu,\"groups\":%zu,\"restart_required\":[",
                   j->done.deployments, j->done.groups);
    for (size_t i = 0; i < j->done.n_start_keys; i++)
        sg_buf_appendf(&b, "%s\"%s\"", i ? "," : "", j->done.start_keys[i]); /* plain names */
    /* The new file's warnings, which sg_gateway_reload leaves in `err` one a line. */
    sg_buf_appends(&b, "],\"warnings\":[");
    const char *p = j->err.data ? j->err.data : "";
    for (size_t k = 0; *p; k++) {
        size_t n = strcspn(p, "\n");
        sg_buf_appends(&b, k ? ",\"" : "\"");
        sg_buf_append_json_str(&b, p, n);
        sg_buf_appends(&b, "\"");
        p += n + (p[n] == '\n');
    }
    sg_buf_appends(&b, "]}");
    reply(req, 200, &b);
    sg_buf_dispose(&b);
}

static void reload_done(uv_work_t *wk, int status)
{
    SG_UNUSED(status); /* never cancelled */
    struct reload_job *j = SG_CONTAINER_OF(wk, struct reload_job, work);
    if (j->req) /* a client that left still has its request finished (writes are dropped) */
        reload_answer(j);
    sg_buf_dispose(&j->err);
    free(j);
}

/* The drain deadline passed while the reload runs: the request is answered now (its
 * connection closes); the reload itself finishes on its thread and is published or refused as
 * usual, which the log says. A client that left needs nothing: reload_done finishes it. */
static void reload_abort(struct sg_http_request *req, void *ud)
{
    struct reload_job *j = ud;
    if (!req->cut || !j->req)
        return;
    j->req = NULL;
    sg_http_respond_error(req, 503, "service_unavailable", "gateway_shutdown",
                          "the gateway is shutting down while the reload runs; the log says "
                          "whether it was applied");
}

static void reload(struct sg_http_request *req, struct sg_worker *w, struct sg_slice rest)
{
    SG_UNUSED(rest);
    struct reload_job *j = sg_xcalloc(1, sizeof *j);
    j->req = req;
    j->gw = w->gw;
    j->force = sg_slice_eq(req->query, "force=true");
    sg_buf_init(&j->err, 16384);
    int rc = uv_queue_work(&w->loop, &j->work, reload_work, reload_done);
    if (rc != 0) { /* cannot happen with a valid loop and callback; answer rather than hang */
        sg_http_respond_error(req, 500, "api_error", "reload_failed", uv_strerror(rc));
        sg_buf_dispose(&j->err);
        free(j);
        return;
    }
    sg_http_request_on_abort(req, reload_abort, j);
}

static void clear_cooldowns(struct sg_http_request *req, struct sg_worker *w, struct sg_slice rest)
{
    SG_UNUSED(rest);
    struct sg_runtime *rt = w->rt;
    for (size_t i = 0; i < rt->cfg->n_deployments; i++)
        sg_health_clear_cooldown(sg_router_health_of(rt->router, &rt->cfg->deployments[i]));
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appendf(&b, "{\"cleared\":%zu}", rt->cfg->n_deployments);
    reply(req, 200, &b);
    sg_buf_dispose(&b);
}

/* /admin/faults: GET lists, POST sets, DELETE clears them all. */
static void faults(struct sg_http_request *req, struct sg_worker *w, struct sg_slice rest)
{
    if (sg_slice_eq(req->method, "POST"))
        set_faults(req, w);
    else if (sg_slice_eq(req->method, "DELETE"))
        clear_faults(req, w, rest);
    else
        list_faults(req, w);
}

/* Every admin endpoint: its path (a prefix when it ends in '/': the rest is handed over), the
 * methods it takes (Allow on a 405), its handler. The first that matches is taken. */
static const struct admin_route {
    const char *path;
    const char *methods;
    void (*handle)(struct sg_http_request *req, struct sg_worker *w, struct sg_slice rest);
} admin_routes[] = {
    {"/admin/deployments", "GET", list_deployments},
    {"/admin/deployments/clear-cooldowns", "POST", clear_cooldowns},
    {"/admin/deployments/", "POST", deployment_action}, /* <id>/<action> */
    {"/admin/bypass", "GET, POST", bypass},
    {"/admin/reload", "POST", reload},
    {"/admin/faults", "GET, POST, DELETE", faults},
    {"/admin/faults/", "DELETE", clear_faults}, /* <id> */
};

/* The route for `p`, and in *rest what follows a prefix route's path; NULL when none. */
static const struct admin_route *admin_route(struct sg_slice p, struct sg_slice *rest)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(admin_routes); i++) {
        const char *path = admin_routes[i].path;
        size_t n = strlen(path);
        bool prefix = path[n - 1] == '/';
        if (prefix ? p.n > n && memcmp(p.p, path, n) == 0 : sg_slice_eq(p, path)) {
            *rest = (struct sg_slice){p.p + n, p.n - n};
            return &admin_routes[i];
        }
    }
    return NULL;
}

/* Is `method` one of the comma-separated `list`? */
static bool method_in(struct sg_slice method, const char *list)
{
    for (const char *q = list; *q;) {
        size_t n = strcspn(q, ",");
        if (n == method.n && memcmp(q, method.p, n) == 0)
            return true;
        q += n;
        q += strspn(q, ", ");
    }
    return false;
}

void gw_admin(struct sg_http_request *req, struct sg_worker *w)
{
    struct sg_slice p = req->path, rest;
    const struct admin_route *r = admin_route(p, &rest);
    char msg[512];
    if (!r) {
        snprintf(msg, sizeof msg,
                 "no admin endpoint %.*s %.*s; the admin API is /admin/deployments, "
                 "/admin/deployments/<id>/<action>, /admin/deployments/clear-cooldowns, "
                 "/admin/bypass, /admin/reload and /admin/faults[/<id>] (docs/routing.md, "
                 "The admin API)",
                 (int)SG_MIN(req->method.n, 20), req->method.p, (int)SG_MIN(p.n, 200), p.p);
        sg_http_respond_error(req, 404, "invalid_request_error", "not_found", msg);
        return;
    }
    if (!method_in(req->method, r->methods)) {
        snprintf(msg, sizeof msg, "Method %.*s is not allowed on %.*s; use %s",
                 (int)SG_MIN(req->method.n, 20), req->method.p, (int)SG_MIN(p.n, 200), p.p,
                 r->methods);
        sg_http_respond_405(req, r->methods, msg);
        return;
    }
    r->handle(req, w, rest);
}
