/*
 * Recording (DESIGN §2's last stage, §11): the request event as the gateway builds and hands it
 * on, and the telemetry objects' lives.
 *
 *   gw_event_begin (request start)  ── trace context, in-flight gauge
 *   gw_event_attempt_begin/end      ── one child span per upstream attempt, traceparent upstream
 *   gw_event_record (request end)   ── the worker's metric shard, its OTLP exporter, the store
 *
 * Nothing here does I/O or takes a lock on the request path: the shard is the worker's own, the
 * exporter runs on the worker's loop, the store's queue is lock-free. The writer thread writes
 * the database, the spool and the request log (its tap).
 *
 * Lives: gw_telemetry_start before the workers (so every worker can record from its first
 * request), gw_telemetry_worker_start/stop with each worker's loop, gw_telemetry_stop after the
 * workers were joined (so the store drains every event they recorded).
 */
#include "gateway_int.h"
#include "store/store.h"
#include "telemetry/telemetry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

#define PROMPT_MAX (64u * 1024) /* request bytes kept for the request log (log_prompts) */

struct stat_ref {
    struct gw_telemetry *t;
    size_t off; /* into struct sg_store_stats */
    char kind;  /* 'u' uint64_t, 'b' bool, 'i' int */
};

struct gw_telemetry {
    struct sg_telemetry *tel;
    struct sg_store *store; /* NULL when nothing is persisted */
    const char *backend;    /* "sqlite" | "postgres" | "none" (request log only) */
    struct sg_reqlog *reqlog;
    struct sg_metric_shard *bg; /* the writer thread's shard (request log counters) */
    struct sg_health *health;   /* deployment state for the scrape */
    char *metrics_token;
    char *otlp_endpoint;
    char *service_name;
    bool log_prompts;
    struct stat_ref refs[11]; /* one per store metric (register_store_metrics) */
};

/* ---- scrape-time values ---- */

static double store_stat(void *ud)
{
    const struct stat_ref *r = ud;
    struct sg_store_stats st;
    sg_store_stats(r->t->store, &st);
    const char *p = (const char *)&st + r->off;
    switch (r->kind) {
    case 'b': return *(const bool *)(const void *)p ? 1 : 0;
    case 'i': return *(const int *)(const void *)p;
    default: return (double)*(const uint64_t *)(const void *)p;
    }
}

static bool dep_view(void *ud, const char *id, struct sg_dep_view *v)
{
    struct gw_telemetry *t = ud;
    struct sg_dep_health *e = sg_health_find(t->health, id);
    if (!e)
        return false;
    sg_health_view(e, sg_now_ms(), v);
    return true;
}

static double dep_healthy(void *ud, const char *id)
{
    struct sg_dep_view v;
    return !dep_view(ud, id, &v) || v.healthy ? 1 : 0;
}

static double dep_cooldown_s(void *ud, const char *id)
{
    struct sg_dep_view v;
    return dep_view(ud, id, &v) ? (double)v.cooling_ms / 1000.0 : 0;
}

static double dep_failures(void *ud, const char *id)
{
    struct sg_dep_view v;
    return dep_view(ud, id, &v) ? (double)v.failures : 0;
}

static double redis_up(void *ud)
{
    const struct gw_telemetry *t = ud;
    return atomic_load(&t->health->redis_ok) ? 1 : 0;
}

static void register_store_metrics(struct gw_telemetry *t)
{
    static const struct {
        const char *name, *help;
        enum sg_metric_type type;
        size_t off;
        char kind;
    } defs[] = {
        {"slogate_store_queue_depth",
         "Request events neither written nor spooled yet (the queue and the writer's batch).",
         SG_METRIC_GAUGE, offsetof(struct sg_store_stats, queued), 'u'},
        {"slogate_store_spool_bytes", "Bytes in the local spool not yet written to the database.",
         SG_METRIC_GAUGE, offsetof(struct sg_store_stats, spool_bytes), 'u'},
        {"slogate_store_spool_events",
         "Request events in the local spool not yet written to the "
         "database.",
         SG_METRIC_GAUGE, offsetof(struct sg_store_stats, spool_events), 'u'},
        {"slogate_store_degraded",
         "1 while the database does not take writes (events go to the "
         "spool), or the spool is being replayed.",
         SG_METRIC_GAUGE, offsetof(struct sg_store_stats, degraded), 'b'},
        {"slogate_store_rows_written_total", "Request rows written to the database.",
         SG_METRIC_COUNTER, offsetof(struct sg_store_stats, rows_written), 'u'},
        {"slogate_store_duplicate_rows_total",
         "Replayed rows the database already had (ignored "
         "by request_id).",
         SG_METRIC_COUNTER, offsetof(struct sg_store_stats, duplicates), 'u'},
        {"slogate_store_write_failures_total", "Failed connects and transactions.",
         SG_METRIC_COUNTER, offsetof(struct sg_store_stats, write_failures), 'u'},
        {"slogate_store_queue_overflows_total",
         "Events spooled by the request path because the "
         "writer's queue was full.",
         SG_METRIC_COUNTER, offsetof(struct sg_store_stats, overflows), 'u'},
        {"slogate_store_events_lost_total", "Events that could not even be spooled (disk full).",
         SG_METRIC_COUNTER, offsetof(struct sg_store_stats, lost), 'u'},
        {"slogate_store_unjournaled_total",
         "Events handed to the store with no crash journal copy (the journal was full or could "
         "not be made): a SIGKILL loses them while they wait in memory.",
         SG_METRIC_COUNTER, offsetof(struct sg_store_stats, unjournaled), 'u'},
        {"slogate_store_schema_version", "The database's schema version.", SG_METRIC_GAUGE,
         offsetof(struct sg_store_stats, schema_version), 'i'},
    };
    _Static_assert(SG_ARRAY_LEN(defs) == SG_ARRAY_LEN(t->refs), "one reference per metric");
    struct sg_metrics *m = sg_telemetry_metrics(t->tel);
    const char *labels[] = {"backend", t->backend, NULL};
    for (size_t i = 0; i < SG_ARRAY_LEN(defs); i++) {
        int f = sg_metrics_family(m, defs[i].name, defs[i].help, defs[i].type, NULL, 0);
        t->refs[i] = (struct stat_ref){t, defs[i].off, defs[i].kind};
        sg_metrics_series_fn(m, f, labels, store_stat, &t->refs[i]);
    }
}

/* ---- the store and the request log ---- */

/* The writer thread's tap: each batch goes to the request log as it leaves the queue. */
static void reqlog_tap(void *ud, const struct sg_event *const *ev, size_t n)
{
    struct gw_telemetry *t = ud;
    int rotated = 0;
    size_t written = 0;
    sg_reqlog_write(t->reqlog, ev, n, &rotated, &written);
    /* Lines counted as they are in the file: a batch that failed after a rotation still put
     * the lines before it there. */
    sg_telemetry_bump(t->tel, t->bg, SG_TC_LOG_LINES, (double)written);
    sg_telemetry_bump(t->tel, t->bg, SG_TC_LOG_ERRORS, (double)(n - written));
    if (rotated)
        sg_telemetry_bump(t->tel, t->bg, SG_TC_LOG_ROTATIONS, rotated);
}

/* disable_spend_logs with a request log: the writer thread still runs (it writes the log), and
 * this backend takes every batch and keeps nothing. */
static int none_connect(struct sg_store_backend *b, char *err, size_t n)
{
    SG_UNUSED(err);
    SG_UNUSED(n);
    b->schema_version = 0;
    return SG_OK;
}

static int none_insert(struct sg_store_backend *b, const struct sg_event *const *ev, size_t n,
                       size_t *inserted, char *err, size_t errn)
{
    SG_UNUSED(b);
    SG_UNUSED(ev);
    SG_UNUSED(n);
    SG_UNUSED(err);
    SG_UNUSED(errn);
    *inserted = 0;
    return SG_OK;
}

static void none_disconnect(struct sg_store_backend *b)
{
    SG_UNUSED(b);
}

static void none_free(struct sg_store_backend *b)
{
    free(b);
}

static struct sg_store_backend *none_backend(void)
{
    struct sg_store_backend *b = sg_xcalloc(1, sizeof *b);
    b->name = "none";
    b->connect = none_connect;
    b->insert = none_insert;
    b->disconnect = none_disconnect;
    b->free = none_free;
    return b;
}

/* Where events wait while the database is away: next to an SQLite file, else in the working
 * directory (telemetry.spool_path overrides both). */
static char *spool_path(const struct sg_config *cfg)
{
    if (cfg->telemetry.spool_path)
        return sg_xstrdup(cfg->telemetry.spool_path);
    const char *url = cfg->general.database_url;
    if (!cfg->general.disable_spend_logs && url && strncmp(url, "sqlite://", 9) == 0 &&
        strcmp(url + 9, ":memory:") != 0)
        return sg_xasprintf("%s.spool", url + 9);
    return sg_xstrdup("slogate-spool.jsonl");
}

struct sg_telemetry_keys *gw_telemetry_keys(struct sg_gateway *gw, const struct sg_config *cfg)
{
    return gw->tel ? sg_telemetry_keys_new(gw->tel->tel, cfg) : NULL;
}

int gw_telemetry_start(struct sg_gateway *gw)
{
    if (gw->tel)
        return SG_OK;
    const struct sg_config *cfg = gw->rt->cfg;
    struct gw_telemetry *t = sg_xcalloc(1, sizeof *t);
    t->tel = sg_telemetry_new((size_t)gw->n_workers);
    t->health = gw->health;
    t->log_prompts = cfg->telemetry.log_prompts;
    t->metrics_token =
        cfg->telemetry.metrics_token ? sg_xstrdup(cfg->telemetry.metrics_token) : NULL;
    t->otlp_endpoint =
        cfg->telemetry.otlp_endpoint ? sg_xstrdup(cfg->telemetry.otlp_endpoint) : NULL;
    t->service_name = sg_xstrdup(cfg->service.name ? cfg->service.name : "slogate");
    struct sg_telemetry_state_fns fns = {dep_healthy, dep_cooldown_s, dep_failures, t};
    sg_telemetry_set_state_fns(t->tel, &fns);
    gw->tel = t;
    gw->rt->tel_keys = gw_telemetry_keys(gw, cfg); /* before any worker runs */

    char err[512] = "";
    if (cfg->telemetry.request_log) {
        t->reqlog = sg_reqlog_open(
            cfg->telemetry.request_log, (uint64_t)cfg->telemetry.request_log_max_bytes,
            cfg->telemetry.request_log_backups, t->log_prompts, err, sizeof err);
        if (!t->reqlog) {
            SG_ERROR("gateway", "telemetry.request_log: %s", err);
            return SG_EIO;
        }
    }
    struct sg_store_backend *be = NULL;
    if (!cfg->general.disable_spend_logs) {
        be = sg_store_backend_for_url(cfg->general.database_url, err, sizeof err);
        if (!be) {
            SG_ERROR("gateway", "general_settings.%s", err);
            return SG_EIO;
        }
    } else if (t->reqlog) {
        be = none_backend();
    }
    if (be) {
        char *spool = spool_path(cfg);
        const char *jdir = cfg->telemetry.journal_dir;
        struct sg_store_options o = {.spool_path = spool,
                                     .journal_dir = strcmp(jdir, "none") == 0 ? "" : jdir};
        if (t->reqlog) {
            o.tap = reqlog_tap;
            o.tap_ud = t;
        }
        t->backend = be->name;
        t->store = sg_store_new(be, &o, err, sizeof err);
        if (!t->store) {
            SG_ERROR("gateway", "store: %s", err);
            free(spool);
            return SG_EIO;
        }
        /* The URL may hold a password: name the backend and the spool only. */
        SG_INFO("gateway", "request events: %s%s, spool %s%s%s", be->name,
                cfg->general.disable_spend_logs ? " (disable_spend_logs)" : "",
                sg_store_spool_path(t->store), t->reqlog ? ", request log " : "",
                t->reqlog ? cfg->telemetry.request_log : "");
        free(spool);
        register_store_metrics(t);
    }
    if (cfg->general.redis_url) { /* DESIGN §15: readiness and metrics say Redis is away */
        struct sg_metrics *m = sg_telemetry_metrics(t->tel);
        int f = sg_metrics_family(m, "slogate_redis_up",
                                  "1 while Redis answers the cooldown sync, 0 while cooldowns "
                                  "are this instance's own (Redis unreachable).",
                                  SG_METRIC_GAUGE, NULL, 0);
        sg_metrics_series_fn(m, f, NULL, redis_up, t);
    }
    sg_telemetry_freeze(t->tel);
    t->bg = sg_telemetry_shard(t->tel, (size_t)gw->n_workers);
    return SG_OK;
}

void gw_telemetry_stop(struct sg_gateway *gw)
{
    struct gw_telemetry *t = gw->tel;
    if (!t)
        return;
    gw->tel = NULL;
    /* Everything the workers recorded is queued by now: the writer drains it (database or
     * spool) and replays the spool while the drain deadline allows. */
    sg_store_close(t->store, gw->drain_ms ? gw->drain_ms : 5000);
    sg_reqlog_close(t->reqlog);
    sg_telemetry_free(t->tel);
    free(t->metrics_token);
    free(t->otlp_endpoint);
    free(t->service_name);
    free(t);
}

void gw_telemetry_worker_start(struct sg_worker *w)
{
    struct gw_telemetry *t = w->gw->tel;
    if (!t)
        return;
    w->shard = sg_telemetry_shard(t->tel, (size_t)w->id);
    if (t->otlp_endpoint) {
        struct sg_otlp_options o = {
            .endpoint = t->otlp_endpoint, .service_name = t->service_name, .max_retries = 3};
        w->otlp = sg_otlp_new(&w->loop, w->up, &o, t->tel, w->shard);
    }
}

void gw_telemetry_worker_stop(struct sg_worker *w, void (*then)(void *ud))
{
    struct sg_otlp *x = w->otlp;
    w->otlp = NULL;
    /* The last spans get one try, bounded so a dead collector cannot hold the exit. */
    sg_otlp_close(x, 2000, then, w);
}

/* ---- the event ---- */

/* A new event in the trace `tp` names (a new trace without one), counted in flight. */
static struct sg_event *event_new(struct sg_worker *w, struct sg_slice tp)
{
    struct gw_telemetry *t = w->gw->tel;
    struct sg_event *ev = sg_event_new();
    if (!tp.p || !sg_traceparent_parse(tp, ev->trace_id, ev->parent_span_id, &ev->trace_flags)) {
        sg_rand_hex(ev->trace_id, 16);
        ev->parent_span_id[0] = '\0';
        ev->trace_flags = SG_TRACE_SAMPLED; /* a trace we start is exported */
    }
    sg_rand_hex(ev->span_id, 8);
    if (t && w->shard)
        sg_telemetry_in_flight(t->tel, w->shard, 1);
    return ev;
}

struct sg_event *gw_event_begin(struct sg_worker *w, struct sg_http_request *req)
{
    struct gw_telemetry *t = w->gw->tel;
    struct sg_event *ev = event_new(w, sg_http_header_get(req, "traceparent"));
    /* GenAI's operation name: the spans of an embeddings call are "embeddings {model}". */
    if (sg_slice_eq(req->path, "/v1/embeddings") || sg_slice_eq(req->path, "/embeddings"))
        SG_EVENT_SETS(ev, operation, "embeddings");
    if (t && t->log_prompts && t->reqlog && req->body.len)
        ev->prompt = sg_xstrndup(req->body.data, SG_MIN(req->body.len, (size_t)PROMPT_MAX));
    return ev;
}

void gw_event_refusal(struct sg_worker *w, const struct sg_http_refusal *r, char request_id[33])
{
    struct sg_event *ev = event_new(w, (struct sg_slice){NULL, 0}); /* its headers are not read */
    sg_request_id(request_id);
    uint64_t now = sg_now_us(), t0 = r->t_start_us ? r->t_start_us : now;
    SG_EVENT_SETS(ev, request_id, request_id);
    ev->start_unix_us = sg_wall_us() - (now - t0);
    ev->status = r->status;
    SG_EVENT_SETS(ev, error_type, r->code);
    /* The answer is the first byte; the time is the client's (sending, or not), none the
     * gateway's own: overhead 0. */
    ev->latency_ms_total = ev->ttft_ms = (double)(now - t0) / 1000.0;
    gw_event_record(w, ev, NULL);
}

/* "https://api.openai.com/v1" -> host "api.openai.com", port 443. */
static void server_of(const char *url, char *host, size_t n, int *port)
{
    bool tls = strncasecmp(url, "https://", 8) == 0;
    const char *p = strstr(url, "://");
    p = p ? p + 3 : url;
    size_t len = strcspn(p, "/?#");
    const char *at = memchr(p, '@', len); /* user:pass@ never reaches a span */
    if (at) {
        len -= (size_t)(at + 1 - p);
        p = at + 1;
    }
    const char *colon = NULL;
    if (len && p[0] == '[') {
        const char *rb = memchr(p, ']', len);
        colon = rb && (size_t)(rb - p) + 1 < len && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        colon = memchr(p, ':', len);
    }
    size_t hl = colon ? (size_t)(colon - p) : len;
    sg_event_set(host, n, p, hl);
    *port = colon ? atoi(colon + 1) : tls ? 443 : 80;
}

/* The slot of a new attempt. A request may make more attempts than an event keeps (tiers,
 * retries and fallbacks have no fixed bound): past the last slot, the newest attempt takes the
 * last slot and the one it replaces is counted as dropped — the spans and the request log keep
 * the first attempts and the one that ended the request, and say how many are missing. A last
 * slot still running (a hedge) is kept, and the new attempt is the one dropped: -1. */
static int attempt_slot(struct sg_event *ev)
{
    if (ev->n_attempts < SG_EVENT_MAX_ATTEMPTS)
        return ev->n_attempts++;
    ev->attempts_dropped++;
    const struct sg_event_attempt *last = &ev->attempts[SG_EVENT_MAX_ATTEMPTS - 1];
    return last->end_us > last->start_us ? SG_EVENT_MAX_ATTEMPTS - 1 : -1;
}

int gw_event_attempt_begin(struct sg_worker *w, struct sg_event *ev, const struct sg_deployment *d,
                           uint64_t offset_us, char *traceparent, size_t tp_len)
{
    traceparent[0] = '\0';
    int i = ev ? attempt_slot(ev) : -1;
    if (i < 0)
        return -1;
    struct sg_event_attempt *a = &ev->attempts[i];
    memset(a, 0, sizeof *a); /* a recycled event's slots hold an earlier request's attempts */
    a->number = ev->n_attempts + ev->attempts_dropped;
    SG_EVENT_SETS(ev, attempts[i].deployment, d->id);
    SG_EVENT_SETS(ev, attempts[i].provider, d->provider);
    SG_EVENT_SETS(ev, attempts[i].model, d->provider_model);
    server_of(d->api_base ? d->api_base : "", a->server_address, sizeof a->server_address,
              &a->server_port);
    sg_rand_hex(a->span_id, 8);
    a->start_us = a->end_us = offset_us;
    /* Propagate the trace upstream when someone will look at it: an OTLP collector of ours, or
     * a caller that sent its own traceparent. */
    struct gw_telemetry *t = w->gw->tel;
    if ((t && t->otlp_endpoint) || ev->parent_span_id[0]) {
        char v[64];
        sg_traceparent_format(ev->trace_id, a->span_id, ev->trace_flags, v, sizeof v);
        snprintf(traceparent, tp_len, "traceparent: %s", v);
    }
    return i;
}

void gw_event_attempt_end(struct sg_event *ev, int i, uint64_t offset_us, int status,
                          const char *error_type)
{
    if (!ev || i < 0 || i >= ev->n_attempts)
        return;
    struct sg_event_attempt *a = &ev->attempts[i];
    if (a->end_us > a->start_us)
        return; /* ended already (a cancel after its own end) */
    a->end_us = offset_us > a->start_us ? offset_us : a->start_us + 1;
    a->status = status;
    SG_EVENT_SETS(ev, attempts[i].error_type, error_type);
}

void gw_event_record(struct sg_worker *w, struct sg_event *ev_take, const char *served_alias)
{
    struct gw_telemetry *t = w->gw->tel;
    if (!t || !ev_take) {
        sg_event_free(ev_take);
        return;
    }
    if (w->shard) {
        if (w->rt->tel_keys) /* made with the telemetry: a runtime always has them once it runs */
            sg_telemetry_count(t->tel, w->rt->tel_keys, w->shard, ev_take, served_alias);
        sg_telemetry_in_flight(t->tel, w->shard, -1);
    }
    if (w->otlp)
        sg_otlp_add(w->otlp, ev_take);
    if (t->store)
        sg_store_submit(t->store, ev_take); /* never blocks: a full queue spools */
    else
        sg_event_free(ev_take);
}

/* ---- HTTP ---- */

void gw_metrics(struct sg_http_request *req, struct sg_worker *w)
{
    struct gw_telemetry *t = w->gw->tel;
    const struct sg_config *cfg = w->rt->cfg;
    bool ok = gw_authenticate(req, cfg) && cfg->general.master_key;
    if (!ok && t && t->metrics_token) {
        /* Read as gw_authenticate reads the master key: "Bearer", any case, then spaces. */
        struct sg_slice auth = sg_http_header_get(req, "authorization");
        if (auth.n > 7 && sg_slice_ieq((struct sg_slice){auth.p, 7}, "bearer ")) {
            struct sg_slice tok = {auth.p + 7, auth.n - 7};
            while (tok.n && tok.p[0] == ' ') {
                tok.p++;
                tok.n--;
            }
            ok = sg_ct_equal(tok.p, tok.n, t->metrics_token, strlen(t->metrics_token));
        }
    }
    if (!ok && !cfg->general.master_key && !(t && t->metrics_token))
        ok = true; /* an open gateway (no master key) has open metrics too */
    if (!ok) {
        sg_http_respond_error(req, 401, "invalid_request_error", "invalid_api_key",
                              "GET /metrics needs the master key or telemetry.metrics_token: "
                              "send 'Authorization: Bearer <key>'");
        return;
    }
    if (!t) {
        sg_http_respond_error(req, 503, "service_unavailable", NULL, "metrics are not running");
        return;
    }
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_metrics_render(sg_telemetry_metrics(t->tel), &b);
    static const struct sg_http_header h[] = {
        {SG_SLICE_LIT("Content-Type"), SG_SLICE_LIT("text/plain; version=0.0.4; charset=utf-8")}};
    sg_http_respond(req, 200, h, 1, b.data ? b.data : "", b.len);
    sg_buf_dispose(&b);
}

void gw_store_readiness(struct sg_gateway *gw, struct sg_buf *out)
{
    struct gw_telemetry *t = gw->tel;
    if (!t || !t->store) {
        sg_buf_appends(out, "{\"backend\":\"none\",\"status\":\"off\"}");
        return;
    }
    struct sg_store_stats st;
    sg_store_stats(t->store, &st);
    /* degraded: the database refuses writes (and why); catching_up: its last write went in,
     * the spool replays. */
    const char *status = !st.degraded                     ? "ok"
                         : !st.failing && st.spool_events ? "catching_up"
                                                          : "degraded";
    sg_buf_appendf(out,
                   "{\"backend\":\"%s\",\"status\":\"%s\",\"queued\":%" PRIu64
                   ",\"spool_events\":%" PRIu64,
                   t->backend, status, st.queued, st.spool_events);
    if (st.failing && st.last_error[0]) {
        sg_buf_appends(out, ",\"last_error\":\"");
        sg_buf_append_json_str(out, st.last_error, strlen(st.last_error));
        sg_buf_appends(out, "\"");
    }
    sg_buf_appends(out, "}");
}
