/* Workers, the shared runtime, and the foreground run loop with its signals. */
#include "gateway_int.h"
#include "provider/provider.h"
#include "telemetry/telemetry.h"

#include <stdio.h>
#include <stdlib.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(SG_CFG_CORS_MAX <= SG_HTTP_CORS_MAX, "the server keeps every origin allowed");

/* ---- runtime ---- */

struct models_json {
    struct sg_buf *b;
    long created;
    bool first;
};

static void append_model(const char *id, void *ud)
{
    struct models_json *mj = ud;
    if (!mj->first)
        sg_buf_append(mj->b, ",", 1);
    mj->first = false;
    sg_buf_appends(mj->b, "{\"id\":\"");
    sg_buf_append_json_str(mj->b, id, strlen(id));
    sg_buf_appendf(mj->b, "\",\"object\":\"model\",\"created\":%ld,\"owned_by\":\"slogate\"}",
                   mj->created);
}

static void append_models_json(struct sg_buf *b, const struct sg_router *r, long created)
{
    const struct sg_config *cfg = r->cfg;
    struct models_json mj = {b, created, true};
    sg_buf_appends(b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < cfg->n_groups; i++) {
        if (cfg->groups[i].hidden)
            continue; /* served, not listed: LiteLLM's model_group_alias hidden: true */
        append_model(cfg->groups[i].alias, &mj);
        /* A wildcard route: its own name, then the known models it serves, as LiteLLM lists. */
        if (cfg->groups[i].stars)
            sg_router_wildcard_names(r, &cfg->groups[i], append_model, &mj);
    }
    sg_buf_appends(b, "]}");
}

/* The headers every call to a deployment carries, built once: its credentials (`key`, which
 * the revoke-key drill fault replaces with a wrong one), the content type, and the
 * organization and extra headers its litellm_params give. */
static struct sg_upstream_headers *dep_headers(const struct sg_deployment *d, const char *key)
{
    /* Anthropic takes its key in x-api-key and wants the API version named. */
    bool anthropic = d->kind == SG_PROVIDER_ANTHROPIC;
    char *auth = !key        ? NULL
                 : anthropic ? sg_xasprintf("x-api-key: %s", key)
                             : sg_xasprintf("Authorization: Bearer %s", key);
    char *org = d->organization && !anthropic
                    ? sg_xasprintf("OpenAI-Organization: %s", d->organization)
                    : NULL;
    const char **lines = sg_xcalloc(4 + d->n_headers, sizeof *lines);
    size_t n = 0;
    lines[n++] = "Content-Type: application/json";
    if (auth)
        lines[n++] = auth;
    if (anthropic)
        lines[n++] = "anthropic-version: " SG_ANTHROPIC_VERSION;
    if (org)
        lines[n++] = org;
    for (size_t i = 0; i < d->n_headers; i++) /* litellm_params.extra_headers, as configured */
        lines[n++] = d->headers[i];
    struct sg_upstream_headers *h = sg_upstream_headers_new(lines, n);
    free(lines);
    free(auth);
    free(org);
    return h;
}

#define REVOKED_KEY "sk-slogate-drill-revoked-key"

struct sg_runtime *sg_runtime_new(struct sg_config *cfg_take, struct sg_health *health)
{
    struct sg_runtime *rt = sg_xcalloc(1, sizeof *rt);
    rt->cfg = cfg_take;
    rt->router = sg_router_new(cfg_take, health);
    size_t n = cfg_take->n_deployments;
    rt->dep_headers = sg_xcalloc(n, sizeof *rt->dep_headers);
    rt->dep_headers_revoked = sg_xcalloc(n, sizeof *rt->dep_headers_revoked);
    rt->dep_urls = sg_xcalloc(n, sizeof *rt->dep_urls);
    rt->dep_embed_urls = sg_xcalloc(n, sizeof *rt->dep_embed_urls);
    rt->dep_prices = sg_xcalloc(n, sizeof *rt->dep_prices);
    rt->dep_priced = sg_xcalloc(n, sizeof *rt->dep_priced);
    for (size_t i = 0; i < n; i++) {
        const struct sg_deployment *d = &cfg_take->deployments[i];
        rt->dep_headers[i] = dep_headers(d, d->api_key);
        rt->dep_headers_revoked[i] = dep_headers(d, REVOKED_KEY);
        rt->dep_urls[i] =
            d->kind == SG_PROVIDER_ANTHROPIC ? sg_anthropic_url(d) : sg_openai_chat_url(d);
        rt->dep_embed_urls[i] = sg_openai_embeddings_url(d);
        rt->dep_priced[i] = sg_pricing_resolve(d, &rt->dep_prices[i]);
    }
    struct sg_buf b;
    sg_buf_init(&b, 0);
    /* Created time is fixed at load: clients cache the list, so it should not move. */
    rt->models_created = (long)(sg_wall_ms() / 1000);
    append_models_json(&b, rt->router, rt->models_created);
    rt->models_json = sg_buf_steal(&b, &rt->models_json_len);
    atomic_init(&rt->refs, 1);
    return rt;
}

struct sg_runtime *sg_runtime_ref(struct sg_runtime *rt)
{
    atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
    return rt;
}

void sg_runtime_unref(struct sg_runtime *rt)
{
    if (!rt || atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) != 1)
        return;
    for (size_t i = 0; i < rt->cfg->n_deployments; i++) {
        sg_upstream_headers_free(rt->dep_headers[i]);
        sg_upstream_headers_free(rt->dep_headers_revoked[i]);
        free(rt->dep_urls[i]);
        free(rt->dep_embed_urls[i]);
    }
    free(rt->dep_embed_urls);
    free(rt->dep_prices);
    free(rt->dep_priced);
    free(rt->dep_headers);
    free(rt->dep_headers_revoked);
    free(rt->dep_urls);
    free(rt->models_json);
    sg_telemetry_keys_free(rt->tel_keys);
    sg_router_free(rt->router);
    sg_config_unref(rt->cfg);
    free(rt);
}

size_t sg_runtime_dep_index(const struct sg_runtime *rt, const struct sg_deployment *d)
{
    return (size_t)(d - rt->cfg->deployments);
}

/* ---- workers ---- */

/* After the worker's last spans left: release its upstream and let the loop end. */
static void on_worker_quiet(void *ud)
{
    struct sg_worker *w = ud;
    sg_upstream_free(w->up);
    w->up = NULL;
    uv_close((uv_handle_t *)&w->wake, NULL);
}

static void on_server_drained(struct sg_http_server *s, void *ud)
{
    SG_UNUSED(s);
    struct sg_worker *w = ud;
    gw_probes_stop(w->probes);
    w->probes = NULL;
    sg_redis_sync_free(w->redis);
    w->redis = NULL;
    sg_http_server_free(w->http);
    w->http = NULL;
    /* The span exporter sends what waits through the upstream: it closes first. */
    gw_telemetry_worker_stop(w, on_worker_quiet);
}

static void on_shutdown_delay(uv_timer_t *t)
{
    struct sg_worker *w = t->data;
    uv_close((uv_handle_t *)t, NULL);
    sg_http_server_drain(w->http, w->gw->drain_ms, on_server_drained, w);
}

static void on_wake(uv_async_t *a)
{
    struct sg_worker *w = a->data;
    if (atomic_exchange(&w->reload, false)) {
        /* Requests in flight keep their own reference to the old runtime and finish on it. */
        struct sg_runtime *fresh = sg_gateway_runtime(w->gw);
        sg_runtime_unref(w->rt);
        w->rt = fresh;
    }
    if (!atomic_load(&w->gw->stopping) || w->stopping || !w->http)
        return;
    w->stopping = true;
    if (!w->gw->shutdown_delay_ms) {
        sg_http_server_drain(w->http, w->gw->drain_ms, on_server_drained, w);
        return;
    }
    /* Readiness says "draining" while the listener still takes requests: a load balancer has
     * time to stop sending any before connections are refused. */
    uv_timer_init(&w->loop, &w->delay);
    w->delay.data = w;
    uv_timer_start(&w->delay, on_shutdown_delay, w->gw->shutdown_delay_ms, 0);
}

static void worker_main(void *arg)
{
    struct sg_worker *w = arg;
    struct sg_gateway *gw = w->gw;
    const struct sg_config *cfg = w->rt->cfg;
    char name[16];
    snprintf(name, sizeof name, "sg-worker-%d", w->id);
    pthread_setname_np(pthread_self(), name); /* in top -H, perf and /proc */
    struct sg_http_limits lim = {
        .max_body_bytes = cfg->general.max_request_size_bytes,
        .header_timeout_ms = cfg->server.header_timeout_ms,
        .idle_timeout_ms = cfg->server.idle_timeout_ms,
        .max_connections = cfg->server.max_connections,
        .cors_origins = cfg->server.cors_origins,
    };
    w->up = sg_upstream_new(&w->loop);
    w->http = sg_http_server_new(&w->loop, &lim, sg_gateway_handle, w);
    sg_http_server_on_refusal(w->http, gw_refused);
    w->listen_rc = sg_http_server_listen(w->http, gw->host, gw->port, true);
    if (w->listen_rc == 0 && gw->port == 0)
        gw->port = sg_http_server_port(w->http); /* worker 0 picks; the others follow */
    /* Housekeeping that needs one place only runs on worker 0. */
    if (w->listen_rc == 0 && w->id == 0) {
        if (cfg->general.redis_url)
            w->redis = sg_redis_sync_new(&w->loop, cfg->general.redis_url, gw->health, 250);
        if (cfg->general.background_health_checks)
            w->probes = gw_probes_start(w, cfg->general.health_check_interval_ms);
    }
    if (w->listen_rc == 0)
        gw_telemetry_worker_start(w);
    uv_sem_post(&w->started);
    if (w->listen_rc != 0) {
        sg_http_server_free(w->http);
        w->http = NULL;
        sg_upstream_free(w->up);
        w->up = NULL;
        uv_close((uv_handle_t *)&w->wake, NULL);
    }
    uv_run(&w->loop, UV_RUN_DEFAULT);
    sg_runtime_unref(w->rt);
    w->rt = NULL;
}

/* The block-egress drill fault sends a deployment's calls to a loopback port that is bound but
 * not listening: the kernel refuses the connection at once, exactly as a firewall REJECT rule
 * does, and the call goes through the same upstream code as any other. */
static char *blackhole_url(int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        if (fd >= 0)
            close(fd);
        return sg_xstrdup("http://127.0.0.1:1/egress-blocked-by-drill-fault");
    }
    *fd_out = fd;
    return sg_xasprintf("http://127.0.0.1:%d/egress-blocked-by-drill-fault", ntohs(a.sin_port));
}

struct sg_gateway *sg_gateway_new(struct sg_config *cfg_take, const struct sg_gateway_options *o)
{
    struct sg_gateway *gw = sg_xcalloc(1, sizeof *gw);
    if (o)
        gw->opt = *o;
    else
        gw->opt.port = -1;
    const struct sg_config *cfg = cfg_take;
    gw->host = gw->opt.host ? gw->opt.host : cfg->server.host;
    gw->port = gw->opt.port >= 0 ? gw->opt.port : cfg->server.port;
    gw->n_workers = sg_config_workers(cfg, gw->opt.workers > 0 ? gw->opt.workers : -1);
    gw->drain_ms = cfg->server.drain_timeout_ms;
    gw->shutdown_delay_ms = cfg->server.shutdown_delay_ms;
    gw->health = sg_health_new();
    gw->refused_fd = -1;
    gw->refused_url = blackhole_url(&gw->refused_fd);
    /* The one switch the drill checks parity against (DESIGN §7). */
    const char *bypass = getenv("BYPASS_ROUTER");
    if (bypass && (strcmp(bypass, "true") == 0 || strcmp(bypass, "1") == 0)) {
        atomic_store(&gw->health->bypass, true);
        SG_WARN("gateway", "BYPASS_ROUTER is set: every request goes straight to its group's "
                           "first order-1 deployment, with no retries and no failover");
    }
    pthread_mutex_init(&gw->rt_lock, NULL);
    gw->start_cfg = sg_config_ref(cfg_take);
    gw->rt = sg_runtime_new(cfg_take, gw->health);
    gw->config_path = gw->opt.config_path ? sg_xstrdup(gw->opt.config_path) : NULL;
    return gw;
}

struct sg_config *sg_gateway_config_ref(struct sg_gateway *gw)
{
    pthread_mutex_lock(&gw->rt_lock);
    struct sg_config *cfg = sg_config_ref(gw->rt->cfg);
    pthread_mutex_unlock(&gw->rt_lock);
    return cfg;
}

struct sg_runtime *sg_gateway_runtime(struct sg_gateway *gw)
{
    pthread_mutex_lock(&gw->rt_lock);
    struct sg_runtime *rt = sg_runtime_ref(gw->rt);
    pthread_mutex_unlock(&gw->rt_lock);
    return rt;
}

/* One reload at a time, process-wide: SIGHUP runs on the main thread and POST /admin/reload on
 * libuv's thread pool (admin.c). Without it a reload that read the file first but took longer to
 * load (a large model_list) published its older read over a later one, and the file's content was
 * not the config in effect until the next reload. */
static pthread_mutex_t reload_lock = PTHREAD_MUTEX_INITIALIZER;

static int reload_locked(struct sg_gateway *gw, bool force, struct gw_reload *out,
                         struct sg_buf *err);

/* Drill faults live on the health entries, which outlive a reload. One on a deployment the new
 * config drops could no longer be listed or cleared through /admin/faults (both walk the
 * config), and a later reload that brought the deployment back would bring the fault back on
 * with it, unseen. Such faults are cleared, and the log says so. */
static void clear_faults_of_dropped(struct sg_gateway *gw, const struct sg_config *cfg)
{
    struct sg_health *h = gw->health;
    if (!atomic_load(&h->faults_active))
        return;
    /* Held: a worker letting the old runtime go may retire an entry meanwhile. */
    struct sg_dep_health **all;
    size_t n = sg_health_hold_all(h, &all);
    struct sg_map ids = {0}; /* the new config's ids: linear in a large config */
    for (size_t j = 0; j < cfg->n_deployments; j++)
        sg_map_put(&ids, cfg->deployments[j].id, strlen(cfg->deployments[j].id), &ids);
    for (size_t i = 0; i < n; i++) {
        struct sg_dep_health *e = all[i];
        bool kept = sg_map_get(&ids, e->id, strlen(e->id)) != NULL;
        if (!kept && (atomic_load(&e->fault_revoke_key) || atomic_load(&e->fault_block_egress) ||
                      atomic_load(&e->fault_ttft_ms))) {
            sg_health_set_faults(h, e, 0, 0, 0);
            SG_WARN("gateway",
                    "drill fault on %s cleared: the reloaded config has no such deployment", e->id);
        }
        sg_health_put(h, e);
    }
    sg_map_dispose(&ids);
    free(all);
}

int sg_gateway_reload(struct sg_gateway *gw, bool force, struct gw_reload *out, struct sg_buf *err)
{
    pthread_mutex_lock(&reload_lock);
    int rc = reload_locked(gw, force, out, err);
    pthread_mutex_unlock(&reload_lock);
    return rc;
}

static int reload_locked(struct sg_gateway *gw, bool force, struct gw_reload *out,
                         struct sg_buf *err)
{
    if (!gw->config_path) {
        sg_buf_appends(err, "this gateway was not started from a config file (slogate demo?): "
                            "nothing to reload");
        return SG_EINVAL;
    }
    if (gw->frozen && !force) {
        sg_buf_appends(err, "a change freeze is on (fast burn): reloads are refused unless forced "
                            "with ?force=true");
        return SG_EINVAL;
    }
    struct sg_diags diags;
    sg_diags_init(&diags);
    struct sg_config *cfg = sg_config_load_file(gw->config_path, NULL, NULL, &diags);
    for (size_t i = 0; i < diags.n; i++)
        if (diags.v[i].severity == SG_DIAG_ERROR)
            sg_buf_appendf(err, "%s%s:%d: %s", err->len ? "; " : "", diags.v[i].file,
                           diags.v[i].line, diags.v[i].msg);
    /* A new file's warnings (a mistyped key is ignored) are logged as serve prints them at
     * start, and kept for the answer of POST /admin/reload: a reload is often how a typo
     * arrives, and nothing else would say so. */
    struct sg_buf warn;
    sg_buf_init(&warn, err->max);
    for (size_t i = 0; cfg && i < diags.n; i++) {
        if (diags.v[i].severity != SG_DIAG_WARNING)
            continue;
        SG_WARN("gateway", "reload: %s:%d: warning: %s", diags.v[i].file, diags.v[i].line,
                diags.v[i].msg);
        /* Whole lines only: past the buffer's maximum the rest are in the log alone. */
        sg_buf_appendf(&warn, "%s:%d: warning: %s\n", diags.v[i].file, diags.v[i].line,
                       diags.v[i].msg);
    }
    sg_diags_dispose(&diags);
    if (!cfg) {
        sg_buf_dispose(&warn);
        return SG_ECONFIG;
    }
    if (cfg->n_deployments == 0) {
        sg_buf_appends(err, "the new config has no model_list entries slogate can route; keeping "
                            "the old one");
        sg_config_unref(cfg);
        sg_buf_dispose(&warn);
        return SG_ECONFIG;
    }
    /* Deployments that kept their id and endpoint keep their health (sg_health_get). */
    struct sg_runtime *fresh = sg_runtime_new(cfg, gw->health);
    fresh->tel_keys = gw_telemetry_keys(gw, cfg); /* a new deployment gets its own series */
    pthread_mutex_lock(&gw->rt_lock);
    struct sg_runtime *old = gw->rt;
    gw->rt = fresh;
    pthread_mutex_unlock(&gw->rt_lock);
    sg_runtime_unref(old);
    clear_faults_of_dropped(gw, cfg);
    for (int i = 0; i < gw->n_workers; i++) {
        atomic_store(&gw->workers[i].reload, true);
        uv_async_send(&gw->workers[i].wake);
    }
    SG_INFO("gateway", "reloaded %s: %zu deployments in %zu groups", gw->config_path,
            cfg->n_deployments, cfg->n_groups);
    /* On success `err` carries the new file's warnings, one "FILE:LINE: warning: ..." a line. */
    if (warn.len)
        sg_buf_append(err, warn.data, warn.len);
    sg_buf_dispose(&warn);
    *out = (struct gw_reload){.deployments = cfg->n_deployments, .groups = cfg->n_groups};
    out->n_start_keys = sg_config_start_keys_changed(gw->start_cfg, cfg, out->start_keys);
    if (out->n_start_keys) {
        struct sg_buf keys;
        sg_buf_init(&keys, 0);
        for (size_t i = 0; i < out->n_start_keys; i++)
            sg_buf_appendf(&keys, "%s%s", i ? ", " : "", out->start_keys[i]);
        SG_WARN("gateway",
                "%s changes %s, which the gateway reads only when it starts: the running "
                "values stay until a restart",
                gw->config_path, keys.data);
        sg_buf_dispose(&keys);
    }
    return SG_OK;
}

int sg_gateway_start(struct sg_gateway *gw)
{
    /* The workers' listeners share the port through SO_REUSEPORT; that must not let them join
     * another server already there (an old slogate with another config, say). */
    if (sg_http_port_check(gw->host, gw->port) != SG_OK) {
        gw->n_workers = 0;
        return SG_EIO;
    }
    /* Metrics, the store and the request log exist before a worker can record anything. */
    if (gw_telemetry_start(gw) != SG_OK) {
        gw_telemetry_stop(gw);
        gw->n_workers = 0; /* no worker started: nothing to stop or join */
        return SG_EIO;
    }
    gw->workers = sg_xcalloc((size_t)gw->n_workers, sizeof *gw->workers);
    int rc = SG_OK;
    for (int i = 0; i < gw->n_workers; i++) {
        struct sg_worker *w = &gw->workers[i];
        w->id = i;
        w->gw = gw;
        w->rt = sg_gateway_runtime(gw);
        atomic_init(&w->reload, false);
        uv_loop_init(&w->loop);
        uv_async_init(&w->loop, &w->wake, on_wake);
        w->wake.data = w;
        uv_sem_init(&w->started, 0);
        /* One at a time: worker 0 settles an ephemeral port before the others bind it. */
        uv_thread_create(&w->thread, worker_main, w);
        uv_sem_wait(&w->started);
        if (w->listen_rc != 0)
            rc = SG_EIO;
    }
    return rc;
}

int sg_gateway_port(const struct sg_gateway *gw)
{
    return gw->port;
}

int sg_gateway_workers(const struct sg_gateway *gw)
{
    return gw->n_workers;
}

void sg_gateway_stop(struct sg_gateway *gw)
{
    atomic_store(&gw->stopping, true);
    for (int i = 0; i < gw->n_workers; i++)
        uv_async_send(&gw->workers[i].wake);
}

void sg_gateway_join(struct sg_gateway *gw)
{
    for (int i = 0; i < gw->n_workers; i++) {
        struct sg_worker *w = &gw->workers[i];
        uv_thread_join(&w->thread);
        uv_sem_destroy(&w->started);
        uv_loop_close(&w->loop);
    }
    gw_telemetry_stop(gw); /* every event the workers recorded is queued: drain the store */
}

void sg_gateway_free(struct sg_gateway *gw)
{
    if (!gw)
        return;
    free(gw->workers);
    sg_runtime_unref(gw->rt);
    sg_config_unref(gw->start_cfg);
    sg_health_free(gw->health);
    free(gw->config_path);
    free(gw->refused_url);
    if (gw->refused_fd >= 0)
        close(gw->refused_fd);
    pthread_mutex_destroy(&gw->rt_lock);
    free(gw);
}

/* ---- the foreground run: signals on the main thread's own loop ---- */

struct run_ctx {
    struct sg_gateway *gw;
    uv_signal_t sigint, sigterm, sighup;
    int signals;
};

static void on_sighup(uv_signal_t *s, int signum)
{
    SG_UNUSED(signum);
    struct run_ctx *rc = s->data;
    struct sg_buf err;
    sg_buf_init(&err, 8192);
    struct gw_reload done;
    if (sg_gateway_reload(rc->gw, false, &done, &err) != SG_OK)
        SG_ERROR("gateway", "SIGHUP: reload refused, the running config stays: %s",
                 err.data ? err.data : "");
    sg_buf_dispose(&err);
}

static void on_signal(uv_signal_t *s, int signum)
{
    struct run_ctx *rc = s->data;
    if (++rc->signals == 1) {
        const char *sig = signum == SIGINT ? "SIGINT" : "SIGTERM";
        if (rc->gw->shutdown_delay_ms)
            SG_INFO("gateway",
                    "%s: serving %u ms more with readiness 503 (server.shutdown_delay_s), then "
                    "finishing in-flight requests (up to %u ms) and exiting",
                    sig, rc->gw->shutdown_delay_ms, rc->gw->drain_ms);
        else
            SG_INFO("gateway", "%s: finishing in-flight requests (up to %u ms), then exiting", sig,
                    rc->gw->drain_ms);
        sg_gateway_stop(rc->gw);
        /* Stop watching signals so the loop can end; a second Ctrl-C then kills at once. */
        uv_close((uv_handle_t *)&rc->sigint, NULL);
        uv_close((uv_handle_t *)&rc->sigterm, NULL);
        uv_close((uv_handle_t *)&rc->sighup, NULL);
    }
}

int sg_gateway_run(struct sg_gateway *gw, void (*banner)(struct sg_gateway *gw, void *ud), void *ud)
{
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct run_ctx rc = {.gw = gw};
    uv_signal_init(&loop, &rc.sigint);
    uv_signal_init(&loop, &rc.sigterm);
    uv_signal_init(&loop, &rc.sighup);
    rc.sigint.data = rc.sigterm.data = rc.sighup.data = &rc;
    uv_signal_start(&rc.sigint, on_signal, SIGINT);
    uv_signal_start(&rc.sigterm, on_signal, SIGTERM);
    uv_signal_start(&rc.sighup, on_sighup, SIGHUP);
    if (sg_gateway_start(gw) != SG_OK) {
        sg_gateway_stop(gw);
        sg_gateway_join(gw);
        uv_close((uv_handle_t *)&rc.sigint, NULL);
        uv_close((uv_handle_t *)&rc.sigterm, NULL);
        uv_close((uv_handle_t *)&rc.sighup, NULL);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_loop_close(&loop);
        return 1;
    }
    if (banner)
        banner(gw, ud);
    uv_run(&loop, UV_RUN_DEFAULT); /* returns once a signal closed both handles */
    uv_loop_close(&loop);
    sg_gateway_join(gw);
    SG_INFO("gateway", "stopped");
    return 0;
}
