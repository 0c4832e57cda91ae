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

/* The entries below are found by their labels through hash maps (struct sg_map), keyed by the
 * labels joined with NUL bytes ("alias\0deployment\0provider"): a reload of thousands of
 * deployments costs O(1) per deployment, where a scan of every label set seen cost O(n) each. */
struct label_key {
    char *bytes; /* the labels, each NUL-terminated, one after the other */
    size_t len;  /* the map's key: every byte but the last NUL */
};

/* The series of one label set (alias, deployment, provider), made once and shared by every
 * config that has it; a deployment="" set stands for its group. Never freed before the
 * telemetry, so the tables of old runtimes may point into them. */
struct key_entry {
    struct label_key key;
    const char *alias, *dep, *provider; /* in key.bytes */
    struct key_series k;
};

/* The failure series of one group alias ("" for requests no group took). */
struct group_entry {
    struct label_key key;
    const char *alias; /* key.bytes */
    sg_series_t failures[N_ERR];
};

/* The state series of one (alias, deployment) pair. Only the pairs of the newest config are
 * reported: a deployment a reload removed, or moved to another alias, is not described by the
 * router's table under its old labels any more. */
struct dep_state {
    struct sg_telemetry *t;
    struct label_key key;
    const char *alias, *id; /* in key.bytes */
    atomic_bool current;    /* in the config sg_telemetry_keys_new saw last */
    bool in_config;         /* sg_telemetry_keys_new's mark, under the telemetry's mutex */
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
    size_t n_keys, cap_keys;
    struct group_entry **groups;
    size_t n_groups, cap_groups;
    struct dep_state **states;
    size_t n_states, cap_states;
    struct sg_map key_map, group_map, state_map; /* label_key -> the entries above */
    struct sg_buf scratch;                       /* a lookup's label_key bytes */
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

/* Append x to the array v of n (capacity cap), growing it by half: growing it by one each time
 * copied the whole array at every new label set, quadratic in a reload of thousands. */
#define PUSH(v, n, cap, x)                                                                         \
    do {                                                                                           \
        if ((n) == (cap)) {                                                                        \
            (cap) = (cap) ? (cap) + (cap) / 2 : 16;                                                \
            (v) = sg_xrealloc((v), (cap) * sizeof *(v));                                           \
        }                                                                                          \
        (v)[(n)++] = (x);                                                                          \
    } while (0)

/* The entry stored in `m` under the labels joined as a map key, or NULL. The key is built in
 * t->scratch. Called with t->mu held. */
static void *labels_find(struct sg_telemetry *t, struct sg_map *m, const char *const *labels,
                         size_t n)
{
    sg_buf_reset(&t->scratch);
    for (size_t i = 0; i < n; i++)
        sg_buf_append(&t->scratch, labels[i], strlen(labels[i]) + (i + 1 < n));
    return sg_map_get(m, t->scratch.data ? t->scratch.data : "", t->scratch.len);
}

/* Store `entry` in `m` under a copy of the labels joined as a map key (`k`, the entry's own);
 * `out[i]` points at each label in the copy. */
static void labels_add(struct sg_map *m, struct label_key *k, const char *const *labels, size_t n,
                       const char **out, void *entry)
{
    size_t len = 0;
    for (size_t i = 0; i < n; i++)
        len += strlen(labels[i]) + 1;
    k->bytes = sg_xmalloc(len);
    k->len = len - 1;
    char *p = k->bytes;
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(labels[i]) + 1;
        memcpy(p, labels[i], l);
        out[i] = p;
        p += l;
    }
    sg_map_put(m, k->bytes, k->len, entry);
}

/* The entry of a label set, made (with its series) when new. NULL when the registry's spare is
 * used up: the caller counts under something broader. Called with t->mu held. */
static struct key_entry *key_get(struct sg_telemetry *t, const char *alias, const char *dep,
                                 const char *provider)
{
    const char *labels[3] = {alias, dep, provider};
    struct key_entry *e = labels_find(t, &t->key_map, labels, 3);
    if (e)
        return e;
    e = sg_xcalloc(1, sizeof *e);
    if (!key_series_init(t, &e->k, alias, dep, provider)) {
        /* Some series of the set may exist now; they stay unused (counted nowhere). */
        free(e);
        return NULL;
    }
    const char *in[3];
    labels_add(&t->key_map, &e->key, labels, 3, in, e);
    e->alias = in[0];
    e->dep = in[1];
    e->provider = in[2];
    PUSH(t->keys, t->n_keys, t->cap_keys, e);
    return e;
}

static struct group_entry *group_get(struct sg_telemetry *t, const char *alias)
{
    struct group_entry *g = labels_find(t, &t->group_map, &alias, 1);
    if (g)
        return g;
    g = sg_xcalloc(1, sizeof *g);
    for (size_t e = 0; e < N_ERR; e++) {
        const char *l[] = {"alias", alias, "error_type", error_labels[e], NULL};
        if ((g->failures[e] = sg_metrics_series(t->m, t->f_fail, l)) == SG_SERIES_NONE) {
            free(g);
            return NULL;
        }
    }
    labels_add(&t->group_map, &g->key, &alias, 1, &g->alias, g);
    PUSH(t->groups, t->n_groups, t->cap_groups, g);
    return g;
}

/* Health, cooldown and failures of a deployment, read from the router at scrape. `*full` is set
 * when the registry had no room left for them. */
static struct dep_state *dep_state_ensure(struct sg_telemetry *t, const char *alias, const char *id,
                                          bool *full)
{
    const char *labels[2] = {alias, id};
    struct dep_state *d = labels_find(t, &t->state_map, labels, 2);
    if (d)
        return d;
    d = sg_xcalloc(1, sizeof *d);
    d->t = t;
    const char *in[2];
    labels_add(&t->state_map, &d->key, labels, 2, in, d);
    d->alias = in[0];
    d->id = in[1];
    atomic_init(&d->current, false); /* sg_telemetry_keys_new sets it once the series exist */
    PUSH(t->states, t->n_states, t->cap_states, d);
    const char *l[] = {"alias", alias, "deployment", id, NULL};
    if (sg_metrics_series_fn(t->m, t->f_healthy, l, state_healthy, d) ||
        sg_metrics_series_fn(t->m, t->f_cool, l, state_cooldown, d) ||
        sg_metrics_series_fn(t->m, t->f_dfail, l, state_failures, d))
        *full = true;
    return d;
}

struct sg_telemetry_keys *sg_telemetry_keys_new(struct sg_telemetry *t, const struct sg_config *cfg)
{
    struct sg_telemetry_keys *k = sg_xcalloc(1, sizeof *k);
    size_t nd = cfg ? cfg->n_deployments : 0, ng = cfg ? cfg->n_groups : 0;
    k->deps = sg_xcalloc(nd ? nd : 1, sizeof *k->deps);
    k->groups = sg_xcalloc(ng ? ng : 1, sizeof *k->groups);
    k->unknown = &t->unknown->k;
    k->unknown_failures = t->unknown_group->failures;
    bool full = false, states_full = false;
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
        dep_state_ensure(t, d->alias, d->id, &states_full)->in_config = true;
    }
    /* This config's pairs are the ones reported from now on; each flag is stored once, so a
     * scrape meanwhile sees every pair either as before or as after. */
    for (size_t i = 0; i < t->n_states; i++) {
        struct dep_state *st = t->states[i];
        atomic_store_explicit(&st->current, st->in_config, memory_order_relaxed);
        st->in_config = false;
    }
    pthread_mutex_unlock(&t->mu);
    qsort(k->deps, k->n_deps, sizeof *k->deps, cmp_key_ref);
    /* One line per reload, not one per deployment: a reload that renames thousands would
     * otherwise flood the log. */
    if (states_full)
        SG_WARN("telemetry", "the metric registry has no room left for the state metrics "
                             "(slogate_deployment_healthy...) of some new deployments: they are "
                             "not reported until a restart");
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
    sg_buf_init(&t->scratch, 0);
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
        free(t->keys[i]->key.bytes);
        free(t->keys[i]);
    }
    for (size_t i = 0; i < t->n_groups; i++) {
        free(t->groups[i]->key.bytes);
        free(t->groups[i]);
    }
    for (size_t i = 0; i < t->n_states; i++) {
        free(t->states[i]->key.bytes);
        free(t->states[i]);
    }
    free(t->keys);
    free(t->groups);
    free(t->states);
    sg_map_dispose(&t->key_map);
    sg_map_dispose(&t->group_map);
    sg_map_dispose(&t->state_map);
    sg_buf_dispose(&t->scratch);
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
