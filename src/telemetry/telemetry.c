/*
 * The gateway's metrics: families and series declared from a config at start, and the one
 * function the request path calls per finished request (sg_telemetry_count).
 *
 * Series are keyed by the deployment that answered. A request no deployment answered (bad key,
 * bad body, unknown model, no healthy deployment...) counts under its group with
 * deployment="" when the group is known, else under alias="" — never under the alias the client
 * typed, so a client cannot grow the number of series.
 */
#include "telemetry.h"
#include "config/config.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#define N_CLASSES 4 /* 2xx 3xx 4xx 5xx */

/* Every error type the gateway answers with (src/gateway's codes, the HTTP layer's refusals on
 * the model endpoints), so none of its own is counted as "other"; "other" is last. A type added
 * there belongs here too (test_exports.test_metrics_failures_name_the_gateways_own_error_types). */
static const char *const error_labels[] = {
    "invalid_api_key",
    "invalid_request_error",
    "model_not_found",
    "request_too_large",
    "permission_denied",
    "rate_limited",
    "budget_exceeded",
    "no_healthy_deployment",
    "upstream_unreachable",
    "timeout",
    "first_byte_timeout",
    "deadline_exceeded",
    "upstream_error",
    "upstream_client_error",
    "upstream_protocol_error",
    "upstream_stream_error",
    "upstream_response_too_large",
    "upstream_empty_stream",
    "stream_interrupted",
    "client_disconnected",
    "gateway_shutdown",
    /* the HTTP layer's refusals */
    "bad_request",
    "request_timeout",
    "uri_too_long",
    "headers_too_large",
    "not_implemented",
    "http_version_not_supported",
    "other",
};
#define N_ERR SG_ARRAY_LEN(error_labels)

/* Latency and TTFT of model calls: tens of milliseconds to minutes. */
static const double latency_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
                                         2.5,   5,    10,    20,   30,  60,   120};
/* The gateway's own time: microseconds to a few milliseconds. */
static const double overhead_buckets[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005,
                                          0.001,   0.0025,   0.005,   0.01,   0.025,   0.1};

struct key_series {
    sg_series_t req[N_CLASSES];
    sg_series_t latency, ttft;
    sg_series_t tokens[3]; /* input, output, cached */
    sg_series_t cost;
    sg_series_t estimated; /* requests whose usage was estimated */
};

/* The series of one label set (alias, deployment, provider), made once and shared by every
 * config that has it; a deployment="" set stands for its group. Never freed before the
 * telemetry, so the tables of old runtimes may point into them. */
struct key_entry {
    char *alias, *dep, *provider;
    struct key_series k;
};

/* The failure series of one group alias ("" for requests no group took). */
struct group_entry {
    char *alias;
    sg_series_t failures[N_ERR];
};

/* The state series of one (alias, deployment) pair. Only the pairs of the newest config are
 * reported: a deployment a reload removed, or moved to another alias, is not described by the
 * router's table under its old labels any more. */
struct dep_state {
    struct sg_telemetry *t;
    char *alias, *id;
    atomic_bool current; /* in the config sg_telemetry_keys_new saw last */
};

/* One config's view, for the request path: sorted names to the series above. */
struct key_ref {
    const char *name;
    const struct key_series *k;
    const sg_series_t *failures; /* groups only */
};

struct sg_telemetry_keys {
    struct key_ref *deps, *groups; /* sorted by name */
    size_t n_deps, n_groups;
    const struct key_series *unknown;
    const sg_series_t *unknown_failures;
};

struct sg_telemetry {
    struct sg_metrics *m;
    size_t n_workers;
    int fam[6], f_fail, f_healthy, f_cool, f_dfail;
    pthread_mutex_t mu; /* the entries below: sg_telemetry_keys_new on a reloading thread */
    struct key_entry **keys;
    size_t n_keys;
    struct group_entry **groups;
    size_t n_groups;
    struct dep_state **states;
    size_t n_states;
    struct key_entry *unknown;
    struct group_entry *unknown_group;
    sg_series_t overhead, in_flight, cache[4], counters[SG_TC_COUNT];
    struct sg_telemetry_state_fns state;
};

static int cmp_key_ref(const void *a, const void *b)
{
    return strcmp(((const struct key_ref *)a)->name, ((const struct key_ref *)b)->name);
}

static const struct key_ref *find(const struct key_ref *v, size_t n, const char *name)
{
    if (!name || !*name)
        return NULL;
    struct key_ref key = {name, NULL, NULL};
    return bsearch(&key, v, n, sizeof *v, cmp_key_ref);
}

/* NaN (left out of the scrape) for a pair the current config does not have. */
static double state_healthy(void *ud)
{
    struct dep_state *d = ud;
    if (!atomic_load_explicit(&d->current, memory_order_relaxed))
        return NAN;
    return d->t->state.healthy ? d->t->state.healthy(d->t->state.ud, d->id) : 1;
}

static double state_cooldown(void *ud)
{
    struct dep_state *d = ud;
    if (!atomic_load_explicit(&d->current, memory_order_relaxed))
        return NAN;
    return d->t->state.cooldown_s ? d->t->state.cooldown_s(d->t->state.ud, d->id) : 0;
}

static double state_failures(void *ud)
{
    struct dep_state *d = ud;
    if (!atomic_load_explicit(&d->current, memory_order_relaxed))
        return NAN;
    return d->t->state.failures ? d->t->state.failures(d->t->state.ud, d->id) : 0;
}

static bool key_series_init(struct sg_telemetry *t, struct key_series *k, const char *alias,
                            const char *dep, const char *provider)
{
    static const char *const classes[N_CLASSES] = {"2xx", "3xx", "4xx", "5xx"};
    static const char *const kinds[3] = {"input", "output", "cached"};
    bool ok = true;
    for (size_t c = 0; c < N_CLASSES; c++) {
        const char *l[] = {"alias",  alias,          "deployment", dep, "provider",
                           provider, "status_class", classes[c],   NULL};
        ok &= (k->req[c] = sg_metrics_series(t->m, t->fam[0], l)) != SG_SERIES_NONE;
    }
    const char *l2[] = {"alias", alias, "deployment", dep, NULL};
    ok &= (k->latency = sg_metrics_series(t->m, t->fam[1], l2)) != SG_SERIES_NONE;
    ok &= (k->ttft = sg_metrics_series(t->m, t->fam[2], l2)) != SG_SERIES_NONE;
    for (size_t i = 0; i < 3; i++) {
        const char *l3[] = {"alias", alias, "deployment", dep, "type", kinds[i], NULL};
        ok &= (k->tokens[i] = sg_metrics_series(t->m, t->fam[3], l3)) != SG_SERIES_NONE;
    }
    ok &= (k->cost = sg_metrics_series(t->m, t->fam[4], l2)) != SG_SERIES_NONE;
    ok &= (k->estimated = sg_metrics_series(t->m, t->fam[5], l2)) != SG_SERIES_NONE;
    return ok;
}

#define PUSH(v, n, x)                                                                              \
    do {                                                                                           \
        (v) = sg_xrealloc((v), ((n) + 1) * sizeof *(v));                                           \
        (v)[(n)++] = (x);                                                                          \
    } while (0)

/* The entry of a label set, made (with its series) when new. NULL when the registry's spare is
 * used up: the caller counts under something broader. Called with t->mu held. */
static struct key_entry *key_get(struct sg_telemetry *t, const char *alias, const char *dep,
                                 const char *provider)
{
    for (size_t i = 0; i < t->n_keys; i++) {
        struct key_entry *e = t->keys[i];
        if (!strcmp(e->alias, alias) && !strcmp(e->dep, dep) && !strcmp(e->provider, provider))
            return e;
    }
    struct key_entry *e = sg_xcalloc(1, sizeof *e);
    if (!key_series_init(t, &e->k, alias, dep, provider)) {
        /* Some series of the set may exist now; they stay unused (counted nowhere). */
        free(e);
        return NULL;
    }
    e->alias = sg_xstrdup(alias);
    e->dep = sg_xstrdup(dep);
    e->provider = sg_xstrdup(provider);
    PUSH(t->keys, t->n_keys, e);
    return e;
}

static struct group_entry *group_get(struct sg_telemetry *t, const char *alias)
{
    for (size_t i = 0; i < t->n_groups; i++)
        if (!strcmp(t->groups[i]->alias, alias))
            return t->groups[i];
    struct group_entry *g = sg_xcalloc(1, sizeof *g);
    for (size_t e = 0; e < N_ERR; e++) {
        const char *l[] = {"alias", alias, "error_type", error_labels[e], NULL};
        if ((g->failures[e] = sg_metrics_series(t->m, t->f_fail, l)) == SG_SERIES_NONE) {
            free(g);
            return NULL;
        }
    }
    g->alias = sg_xstrdup(alias);
    PUSH(t->groups, t->n_groups, g);
    return g;
}

/* Health, cooldown and failures of a deployment, read from the router at scrape. */
static void dep_state_ensure(struct sg_telemetry *t, const char *alias, const char *id)
{
    for (size_t i = 0; i < t->n_states; i++)
        if (!strcmp(t->states[i]->id, id) && !strcmp(t->states[i]->alias, alias))
            return;
    struct dep_state *d = sg_xcalloc(1, sizeof *d);
    d->t = t;
    d->alias = sg_xstrdup(alias);
    d->id = sg_xstrdup(id);
    atomic_init(&d->current, false); /* sg_telemetry_keys_new sets it once the series exist */
    PUSH(t->states, t->n_states, d);
    const char *l[] = {"alias", alias, "deployment", id, NULL};
    if (sg_metrics_series_fn(t->m, t->f_healthy, l, state_healthy, d) ||
        sg_metrics_series_fn(t->m, t->f_cool, l, state_cooldown, d) ||
        sg_metrics_series_fn(t->m, t->f_dfail, l, state_failures, d))
        SG_WARN("telemetry", "no room left for the state metrics of deployment %s", id);
}

struct sg_telemetry_keys *sg_telemetry_keys_new(struct sg_telemetry *t, const struct sg_config *cfg)
{
    struct sg_telemetry_keys *k = sg_xcalloc(1, sizeof *k);
    size_t nd = cfg ? cfg->n_deployments : 0, ng = cfg ? cfg->n_groups : 0;
    k->deps = sg_xcalloc(nd ? nd : 1, sizeof *k->deps);
    k->groups = sg_xcalloc(ng ? ng : 1, sizeof *k->groups);
    k->unknown = &t->unknown->k;
    k->unknown_failures = t->unknown_group->failures;
    bool full = false;
    pthread_mutex_lock(&t->mu);
    for (size_t i = 0; i < ng; i++) {
        const char *alias = cfg->groups[i].alias;
        struct key_entry *e = key_get(t, alias, "", "");
        struct group_entry *g = group_get(t, alias);
        full |= !e || !g;
        k->groups[k->n_groups++] =
            (struct key_ref){alias, e ? &e->k : k->unknown, g ? g->failures : k->unknown_failures};
    }
    qsort(k->groups, k->n_groups, sizeof *k->groups, cmp_key_ref);
    for (size_t i = 0; i < nd; i++) {
        const struct sg_deployment *d = &cfg->deployments[i];
        struct key_entry *e = key_get(t, d->alias, d->id, d->provider);
        full |= !e;
        if (e) /* else: counted under its group, as before the deployment existed */
            k->deps[k->n_deps++] = (struct key_ref){d->id, &e->k, NULL};
        dep_state_ensure(t, d->alias, d->id);
    }
    /* This config's pairs are the ones reported from now on; each flag is stored once, so a
     * scrape meanwhile sees every pair either as before or as after. */
    for (size_t i = 0; i < t->n_states; i++) {
        struct dep_state *st = t->states[i];
        bool cur = false;
        for (size_t j = 0; j < nd && !cur; j++)
            cur = !strcmp(cfg->deployments[j].id, st->id) &&
                  !strcmp(cfg->deployments[j].alias, st->alias);
        atomic_store_explicit(&st->current, cur, memory_order_relaxed);
    }
    pthread_mutex_unlock(&t->mu);
    qsort(k->deps, k->n_deps, sizeof *k->deps, cmp_key_ref);
    if (full)
        SG_WARN("telemetry", "the metric registry has no room left for the series of every "
                             "deployment: some are counted under their group (deployment=\"\") "
                             "until a restart");
    return k;
}

void sg_telemetry_keys_free(struct sg_telemetry_keys *k)
{
    if (!k)
        return;
    free(k->deps);
    free(k->groups);
    free(k);
}

struct sg_telemetry *sg_telemetry_new(size_t n_workers)
{
    struct sg_telemetry *t = sg_xcalloc(1, sizeof *t);
    t->n_workers = n_workers;
    t->m = sg_metrics_new(n_workers + 1);
    pthread_mutex_init(&t->mu, NULL);
    struct sg_metrics *m = t->m;

    int *fam = t->fam;
    fam[0] = sg_metrics_family(m, "slogate_requests_total",
                               "Client requests by the group and deployment that answered, "
                               "provider and status class.",
                               SG_METRIC_COUNTER, NULL, 0);
    fam[1] = sg_metrics_family(m, "slogate_request_duration_seconds",
                               "Time from receipt of a request to the last byte of its answer.",
                               SG_METRIC_HISTOGRAM, latency_buckets, SG_ARRAY_LEN(latency_buckets));
    fam[2] = sg_metrics_family(m, "slogate_time_to_first_token_seconds",
                               "Time from receipt of a request to the first byte sent to the "
                               "client.",
                               SG_METRIC_HISTOGRAM, latency_buckets, SG_ARRAY_LEN(latency_buckets));
    fam[3] = sg_metrics_family(m, "slogate_tokens_total",
                               "Tokens the providers reported (or the gateway estimated when "
                               "they reported none), by type (input, output, cached).",
                               SG_METRIC_COUNTER, NULL, 0);
    fam[4] =
        sg_metrics_family(m, "slogate_cost_usd_total", "Cost of answered requests in US dollars.",
                          SG_METRIC_COUNTER, NULL, 0);
    fam[5] = sg_metrics_family(m, "slogate_usage_estimated_total",
                               "Answered requests whose provider reported no usage: their tokens "
                               "and cost are the gateway's estimate.",
                               SG_METRIC_COUNTER, NULL, 0);
    t->f_fail = sg_metrics_family(m, "slogate_request_failures_total",
                                  "Requests that ended with an error, by error type.",
                                  SG_METRIC_COUNTER, NULL, 0);
    int f_over =
        sg_metrics_family(m, "slogate_overhead_seconds",
                          "Time spent in the gateway itself per request (receipt to "
                          "upstream call, plus answer handling).",
                          SG_METRIC_HISTOGRAM, overhead_buckets, SG_ARRAY_LEN(overhead_buckets));
    int f_cache = sg_metrics_family(m, "slogate_cache_requests_total",
                                    "Cache lookups by result (hit, miss, stale, bypass).",
                                    SG_METRIC_COUNTER, NULL, 0);
    int f_infl = sg_metrics_family(m, "slogate_requests_in_flight",
                                   "Client requests being handled now.", SG_METRIC_GAUGE, NULL, 0);
    t->f_healthy = sg_metrics_family(m, "slogate_deployment_healthy",
                                     "1 when the deployment takes traffic, 0 while it cools "
                                     "down.",
                                     SG_METRIC_GAUGE, NULL, 0);
    t->f_cool = sg_metrics_family(m, "slogate_deployment_cooldown_remaining_seconds",
                                  "Time left in the deployment's cooldown (0 when none).",
                                  SG_METRIC_GAUGE, NULL, 0);
    t->f_dfail = sg_metrics_family(m, "slogate_deployment_attempt_failures_total",
                                   "Upstream attempts on the deployment that failed (timeouts, "
                                   "5xx, 429, auth), as the router counted them.",
                                   SG_METRIC_COUNTER, NULL, 0);
    int f_spans =
        sg_metrics_family(m, "slogate_otlp_spans_exported_total",
                          "Spans the OTLP collector accepted.", SG_METRIC_COUNTER, NULL, 0);
    int f_sdrop = sg_metrics_family(m, "slogate_otlp_spans_dropped_total",
                                    "Spans dropped: queue full or export failed after retries.",
                                    SG_METRIC_COUNTER, NULL, 0);
    int f_sretry = sg_metrics_family(m, "slogate_otlp_export_retries_total",
                                     "OTLP export calls retried after a 429, 5xx or network "
                                     "error.",
                                     SG_METRIC_COUNTER, NULL, 0);
    int f_log = sg_metrics_family(m, "slogate_request_log_lines_total",
                                  "Lines written to the JSON lines request log.", SG_METRIC_COUNTER,
                                  NULL, 0);
    int f_logerr =
        sg_metrics_family(m, "slogate_request_log_errors_total",
                          "Request log lines lost to failed writes.", SG_METRIC_COUNTER, NULL, 0);
    int f_logrot = sg_metrics_family(m, "slogate_request_log_rotations_total",
                                     "Request log rotations by size.", SG_METRIC_COUNTER, NULL, 0);

    /* Requests no deployment or group took: the one catch-all label set, made first. */
    t->unknown = key_get(t, "", "", "");
    t->unknown_group = group_get(t, "");
    t->overhead = sg_metrics_series(m, f_over, NULL);
    static const char *const results[4] = {"hit", "miss", "stale", "bypass"};
    for (size_t i = 0; i < 4; i++) {
        const char *l[] = {"result", results[i], NULL};
        t->cache[i] = sg_metrics_series(m, f_cache, l);
    }
    t->in_flight = sg_metrics_series(m, f_infl, NULL);
    t->counters[SG_TC_SPANS_EXPORTED] = sg_metrics_series(m, f_spans, NULL);
    const char *lq[] = {"reason", "queue_full", NULL};
    const char *le[] = {"reason", "export_failed", NULL};
    t->counters[SG_TC_SPANS_DROPPED_QUEUE] = sg_metrics_series(m, f_sdrop, lq);
    t->counters[SG_TC_SPANS_DROPPED_EXPORT] = sg_metrics_series(m, f_sdrop, le);
    t->counters[SG_TC_EXPORT_RETRIES] = sg_metrics_series(m, f_sretry, NULL);
    t->counters[SG_TC_LOG_LINES] = sg_metrics_series(m, f_log, NULL);
    t->counters[SG_TC_LOG_ERRORS] = sg_metrics_series(m, f_logerr, NULL);
    t->counters[SG_TC_LOG_ROTATIONS] = sg_metrics_series(m, f_logrot, NULL);
    return t;
}

void sg_telemetry_free(struct sg_telemetry *t)
{
    if (!t)
        return;
    sg_metrics_free(t->m);
    for (size_t i = 0; i < t->n_keys; i++) {
        free(t->keys[i]->alias);
        free(t->keys[i]->dep);
        free(t->keys[i]->provider);
        free(t->keys[i]);
    }
    for (size_t i = 0; i < t->n_groups; i++) {
        free(t->groups[i]->alias);
        free(t->groups[i]);
    }
    for (size_t i = 0; i < t->n_states; i++) {
        free(t->states[i]->alias);
        free(t->states[i]->id);
        free(t->states[i]);
    }
    free(t->keys);
    free(t->groups);
    free(t->states);
    pthread_mutex_destroy(&t->mu);
    free(t);
}

struct sg_metrics *sg_telemetry_metrics(struct sg_telemetry *t)
{
    return t->m;
}

void sg_telemetry_set_state_fns(struct sg_telemetry *t, const struct sg_telemetry_state_fns *f)
{
    t->state = *f;
}

void sg_telemetry_freeze(struct sg_telemetry *t)
{
    sg_metrics_freeze(t->m);
}

struct sg_metric_shard *sg_telemetry_shard(struct sg_telemetry *t, size_t worker)
{
    return sg_metrics_shard(t->m, worker);
}

const char *sg_telemetry_error_label(const char *error_type)
{
    if (!error_type || !*error_type)
        return NULL;
    for (size_t i = 0; i + 1 < N_ERR; i++)
        if (strcmp(error_labels[i], error_type) == 0)
            return error_labels[i];
    return "other";
}

static size_t error_index(const char *error_type)
{
    for (size_t i = 0; i + 1 < N_ERR; i++)
        if (strcmp(error_labels[i], error_type) == 0)
            return i;
    return N_ERR - 1;
}

void sg_telemetry_count(struct sg_telemetry *t, const struct sg_telemetry_keys *keys,
                        struct sg_metric_shard *s, const struct sg_event *ev,
                        const char *served_alias)
{
    const struct key_ref *d = find(keys->deps, keys->n_deps, ev->deployment);
    const struct key_ref *g = find(keys->groups, keys->n_groups, served_alias);
    const struct key_ref *asked = find(keys->groups, keys->n_groups, ev->alias);
    if (!g)
        g = asked;
    const struct key_series *k = d ? d->k : g ? g->k : keys->unknown;

    int cls = ev->status / 100 - 2;
    cls = cls < 0 ? 0 : cls >= N_CLASSES ? N_CLASSES - 1 : cls;
    sg_metric_add(s, k->req[cls], 1);
    sg_metric_observe(s, k->latency, ev->latency_ms_total / 1000.0);
    if (ev->ttft_ms >= 0)
        sg_metric_observe(s, k->ttft, ev->ttft_ms / 1000.0);
    if (ev->input_tokens > 0)
        sg_metric_add(s, k->tokens[0], (double)ev->input_tokens);
    if (ev->output_tokens > 0)
        sg_metric_add(s, k->tokens[1], (double)ev->output_tokens);
    if (ev->cached_tokens > 0)
        sg_metric_add(s, k->tokens[2], (double)ev->cached_tokens);
    if (ev->cost_usd > 0)
        sg_metric_add(s, k->cost, ev->cost_usd);
    if (ev->usage_estimated)
        sg_metric_add(s, k->estimated, 1);
    if (ev->error_type[0]) {
        const sg_series_t *f = asked ? asked->failures : keys->unknown_failures;
        sg_metric_add(s, f[error_index(ev->error_type)], 1);
    }
    sg_metric_observe(s, t->overhead, (double)ev->overhead_us / 1e6);
    /* Requests turned away before the lookup (bad key, bad body, unknown model) did not use
     * the cache at all: they are not counted as bypasses. */
    static const char *const results[4] = {"hit", "miss", "stale", "bypass"};
    for (size_t i = 0; asked && i < 4; i++)
        if (strcmp(ev->cache_state, results[i]) == 0)
            sg_metric_add(s, t->cache[i], 1);
}

void sg_telemetry_in_flight(struct sg_telemetry *t, struct sg_metric_shard *s, int delta)
{
    sg_metric_add(s, t->in_flight, delta);
}

void sg_telemetry_bump(struct sg_telemetry *t, struct sg_metric_shard *s,
                       enum sg_telemetry_counter c, double v)
{
    if (t && c < SG_TC_COUNT)
        sg_metric_add(s, t->counters[c], v);
}
