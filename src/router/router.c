/* Selection, attempts and the circuit breaker (DESIGN §7). */
#include "router.h"
#include "provider/provider.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#define FAIL_WINDOW_MS 60000
#define EWMA_ALPHA 0.3

const char *sg_outcome_name(enum sg_outcome o)
{
    static const char *names[] = {"success", "client_error", "context_window",     "failure",
                                  "auth",    "rate_limited", "first_byte_timeout", "cancelled",
                                  "not_sent"};
    return (unsigned)o < SG_ARRAY_LEN(names) ? names[o] : "unknown";
}

/* ---- health table ---- */

struct sg_health *sg_health_new(void)
{
    struct sg_health *h = sg_xcalloc(1, sizeof *h);
    pthread_mutex_init(&h->lock, NULL);
    atomic_init(&h->bypass, false);
    atomic_init(&h->redis_ok, false);
    atomic_init(&h->faults_active, 0);
    return h;
}

static void entry_free(struct sg_dep_health *e)
{
    pthread_mutex_destroy(&e->lock);
    free(e->id);
    free(e->fingerprint);
    free(e);
}

void sg_health_free(struct sg_health *h)
{
    if (!h)
        return;
    for (size_t i = 0; i < h->len; i++)
        if (h->v[i])
            entry_free(h->v[i]);
    sg_map_dispose(&h->ids);
    for (size_t i = 0; i < h->n_spare; i++)
        entry_free(h->spare[i]);
    free(h->spare);
    for (size_t i = 0; i < h->n_pins; i++)
        free(h->pins[i]);
    free(h->pins);
    free(h->v);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* Forget everything learned about a deployment (new, or changed by a reload). */
static void entry_reset(struct sg_dep_health *e)
{
    e->fail_head = e->fail_count = 0;
    e->cooldown_until = 0;
    e->cooldown_reason = NULL;
    e->probing = false;
    e->ewma_ttft_ms = e->ewma_total_ms = 0;
    e->ewma_ttft_at = e->ewma_total_at = 0;
    e->minute = e->minute_requests = e->minute_tokens = 0;
}

/* Callers hold h->lock. */
static struct sg_dep_health *entry_find_locked(struct sg_health *h, const char *id)
{
    return sg_map_get(&h->ids, id, strlen(id));
}

/* Callers hold h->lock. `e` joins the table at its end. */
static void entry_add_locked(struct sg_health *h, struct sg_dep_health *e)
{
    if (h->len == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 8;
        h->v = sg_xrealloc(h->v, h->cap * sizeof *h->v);
    }
    e->slot = h->len;
    h->v[h->len++] = e;
    h->n++;
    sg_map_put(&h->ids, e->id, strlen(e->id), e);
}

/* Callers hold h->lock. `e` leaves the table; the others keep their order. */
static void entry_remove_locked(struct sg_health *h, struct sg_dep_health *e)
{
    sg_map_del(&h->ids, e->id, strlen(e->id));
    h->v[e->slot] = NULL;
    h->n--;
    if (2 * (h->len - h->n) < h->len)
        return;
    size_t k = 0;
    for (size_t i = 0; i < h->len; i++) {
        if (!h->v[i])
            continue;
        h->v[i]->slot = k;
        h->v[k++] = h->v[i];
    }
    h->len = k;
}

struct sg_dep_health *sg_health_get(struct sg_health *h, const struct sg_deployment *d)
{
    char *fp = sg_xasprintf("%s %s", d->model, d->api_base ? d->api_base : "");
    pthread_mutex_lock(&h->lock);
    struct sg_dep_health *e = entry_find_locked(h, d->id);
    if (e && strcmp(e->fingerprint, fp) != 0) {
        pthread_mutex_lock(&e->lock);
        entry_reset(e);
        free(e->fingerprint);
        e->fingerprint = fp;
        fp = NULL;
        pthread_mutex_unlock(&e->lock);
    } else if (!e) {
        if (h->n_spare) {
            e = h->spare[--h->n_spare]; /* reset when it left the table */
            free(e->id);
            free(e->fingerprint);
        } else {
            e = sg_xcalloc(1, sizeof *e);
            pthread_mutex_init(&e->lock, NULL);
            atomic_init(&e->in_flight, 0);
            atomic_init(&e->successes, 0);
            atomic_init(&e->failures, 0);
            atomic_init(&e->fault_revoke_key, false);
            atomic_init(&e->fault_block_egress, false);
            atomic_init(&e->fault_ttft_ms, 0);
        }
        e->id = sg_xstrdup(d->id);
        e->fingerprint = fp;
        fp = NULL;
        entry_add_locked(h, e);
    }
    e->refs++;
    pthread_mutex_unlock(&h->lock);
    free(fp);
    return e;
}

static bool has_fault(struct sg_dep_health *e);
static const char *pin_id(const struct sg_health *h, size_t i);
static void pin_drop_locked(struct sg_health *h, size_t i);

/* Callers hold h->lock. The last holder let `e` go: out of the table, its pins dropped, its
 * state reset, and kept for reuse. */
static void entry_retire_locked(struct sg_health *h, struct sg_dep_health *e)
{
    entry_remove_locked(h, e);
    for (size_t i = 0; i < h->n_pins;) {
        if (strcmp(pin_id(h, i), e->id) == 0)
            pin_drop_locked(h, i);
        else
            i++;
    }
    if (has_fault(e))
        atomic_fetch_sub(&h->faults_active, 1);
    pthread_mutex_lock(&e->lock);
    entry_reset(e);
    e->shared_until = 0;
    e->disabled = false;
    pthread_mutex_unlock(&e->lock);
    atomic_store(&e->in_flight, 0);
    atomic_store(&e->successes, 0);
    atomic_store(&e->failures, 0);
    atomic_store(&e->fault_revoke_key, false);
    atomic_store(&e->fault_block_egress, false);
    atomic_store(&e->fault_ttft_ms, 0);
    if (h->n_spare == h->cap_spare) { /* by half: a reload may retire thousands */
        h->cap_spare = h->cap_spare ? h->cap_spare + h->cap_spare / 2 : 16;
        h->spare = sg_xrealloc(h->spare, h->cap_spare * sizeof *h->spare);
    }
    h->spare[h->n_spare++] = e;
}

void sg_health_put(struct sg_health *h, struct sg_dep_health *e)
{
    if (!e)
        return;
    pthread_mutex_lock(&h->lock);
    if (--e->refs == 0)
        entry_retire_locked(h, e);
    pthread_mutex_unlock(&h->lock);
}

size_t sg_health_hold_all(struct sg_health *h, struct sg_dep_health ***out)
{
    pthread_mutex_lock(&h->lock);
    size_t n = 0;
    *out = sg_xcalloc(h->n ? h->n : 1, sizeof **out);
    for (size_t i = 0; i < h->len; i++) {
        if (!h->v[i])
            continue;
        (*out)[n++] = h->v[i];
        h->v[i]->refs++;
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}

struct sg_dep_health *sg_health_find(struct sg_health *h, const char *id)
{
    pthread_mutex_lock(&h->lock);
    struct sg_dep_health *e = entry_find_locked(h, id);
    pthread_mutex_unlock(&h->lock);
    return e;
}

/* Callers hold h->lock. The index of the alias's pin, or n_pins when it has none. */
static size_t pin_find_locked(const struct sg_health *h, const char *alias)
{
    size_t i = 0;
    while (i < h->n_pins && strcmp(h->pins[i], alias) != 0)
        i++;
    return i;
}

/* Callers hold h->lock. The pinned id of the pin at `i`. */
static const char *pin_id(const struct sg_health *h, size_t i)
{
    return h->pins[i] + strlen(h->pins[i]) + 1;
}

/* Callers hold h->lock; i < n_pins. */
static void pin_drop_locked(struct sg_health *h, size_t i)
{
    free(h->pins[i]);
    h->pins[i] = h->pins[--h->n_pins];
}

void sg_health_pin(struct sg_health *h, const char *alias, const char *id)
{
    size_t alen = strlen(alias) + 1;
    pthread_mutex_lock(&h->lock);
    size_t i = pin_find_locked(h, alias);
    if (i < h->n_pins)
        pin_drop_locked(h, i);
    if (id) {
        size_t ilen = strlen(id) + 1;
        char *p = sg_xmalloc(alen + ilen);
        memcpy(p, alias, alen);
        memcpy(p + alen, id, ilen);
        h->pins = sg_xrealloc(h->pins, (h->n_pins + 1) * sizeof *h->pins);
        h->pins[h->n_pins++] = p;
    }
    pthread_mutex_unlock(&h->lock);
}

int sg_health_unpin(struct sg_health *h, const char *alias, const char *id, char *holder, size_t n)
{
    int rc = SG_OK;
    pthread_mutex_lock(&h->lock);
    size_t i = pin_find_locked(h, alias);
    if (i < h->n_pins && strcmp(pin_id(h, i), id) == 0) {
        pin_drop_locked(h, i);
    } else if (i < h->n_pins) {
        snprintf(holder, n, "%s", pin_id(h, i));
        rc = SG_EINVAL;
    }
    pthread_mutex_unlock(&h->lock);
    return rc;
}

bool sg_health_pinned(struct sg_health *h, const char *alias, char *out, size_t n)
{
    pthread_mutex_lock(&h->lock);
    size_t i = pin_find_locked(h, alias);
    bool found = i < h->n_pins;
    if (found)
        snprintf(out, n, "%s", pin_id(h, i));
    pthread_mutex_unlock(&h->lock);
    return found;
}

void sg_health_clear_cooldown(struct sg_dep_health *e)
{
    pthread_mutex_lock(&e->lock);
    e->cooldown_until = 0; /* shared_until stays: the Redis sync sees the difference and DELs */
    e->cooldown_reason = NULL;
    e->probing = false;
    e->fail_head = e->fail_count = 0;
    pthread_mutex_unlock(&e->lock);
}

static bool has_fault(struct sg_dep_health *e)
{
    return atomic_load(&e->fault_revoke_key) || atomic_load(&e->fault_block_egress) ||
           atomic_load(&e->fault_ttft_ms) != 0;
}

void sg_health_set_faults(struct sg_health *h, struct sg_dep_health *e, int revoke_key,
                          int block_egress, long ttft_ms)
{
    pthread_mutex_lock(&h->lock);
    /* Counted as it changes, not recounted over the table: clearing every deployment's faults
     * stays linear in a large config. */
    int had = has_fault(e);
    if (revoke_key >= 0)
        atomic_store(&e->fault_revoke_key, revoke_key != 0);
    if (block_egress >= 0)
        atomic_store(&e->fault_block_egress, block_egress != 0);
    if (ttft_ms >= 0)
        atomic_store(&e->fault_ttft_ms, (unsigned)ttft_ms);
    atomic_fetch_add(&h->faults_active, has_fault(e) - had);
    pthread_mutex_unlock(&h->lock);
}

size_t sg_health_faults_text(struct sg_health *h, char *out, size_t n)
{
    struct sg_buf b;
    sg_buf_init(&b, n ? n - 1 : 0);
    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->len; i++) {
        struct sg_dep_health *e = h->v[i];
        if (!e || !has_fault(e))
            continue;
        const char *sep = "=";
        sg_buf_appendf(&b, "%s%s", b.len ? "; " : "", e->id);
        if (atomic_load(&e->fault_revoke_key)) {
            sg_buf_appendf(&b, "%srevoke_key", sep);
            sep = ",";
        }
        if (atomic_load(&e->fault_block_egress)) {
            sg_buf_appendf(&b, "%sblock_egress", sep);
            sep = ",";
        }
        if (atomic_load(&e->fault_ttft_ms))
            sg_buf_appendf(&b, "%sttft_ms:%u", sep, atomic_load(&e->fault_ttft_ms));
    }
    pthread_mutex_unlock(&h->lock);
    size_t len = b.len;
    if (n) {
        memcpy(out, b.data ? b.data : "", len);
        out[len] = '\0';
    }
    sg_buf_dispose(&b);
    return len;
}

/* Callers hold e->lock. */
static void cool_locked(struct sg_dep_health *e, uint64_t now_ms, uint64_t ms, const char *why)
{
    uint64_t until = now_ms + ms;
    if (until > e->cooldown_until) {
        e->cooldown_until = until;
        e->cooldown_reason = why;
    }
    e->probing = false;
}

void sg_health_cool(struct sg_dep_health *e, uint64_t now_ms, uint64_t ms, const char *reason)
{
    pthread_mutex_lock(&e->lock);
    cool_locked(e, now_ms, ms, reason);
    pthread_mutex_unlock(&e->lock);
}

static unsigned fails_in_window(const struct sg_dep_health *e, uint64_t now_ms)
{
    unsigned n = 0;
    for (unsigned i = 0; i < e->fail_count; i++) {
        uint64_t t = e->fail_at[(e->fail_head + SG_FAIL_RING - 1 - i) % SG_FAIL_RING];
        /* t may be a ms or two after now_ms: another worker stamped it after we read the clock */
        if (t >= now_ms || now_ms - t < FAIL_WINDOW_MS)
            n++;
    }
    return n;
}

void sg_health_view(struct sg_dep_health *e, uint64_t now_ms, struct sg_dep_view *out)
{
    pthread_mutex_lock(&e->lock);
    out->disabled = e->disabled;
    out->probing = e->probing;
    out->cooling_ms = e->cooldown_until > now_ms ? e->cooldown_until - now_ms : 0;
    out->cooldown_reason = out->cooling_ms ? e->cooldown_reason : NULL;
    out->fails_in_window = fails_in_window(e, now_ms);
    out->ewma_ttft_ms = e->ewma_ttft_ms;
    out->ewma_total_ms = e->ewma_total_ms;
    pthread_mutex_unlock(&e->lock);
    out->healthy = !out->disabled && out->cooling_ms == 0;
    out->in_flight = atomic_load(&e->in_flight);
    out->successes = atomic_load(&e->successes);
    out->failures = atomic_load(&e->failures);
}

/* ---- router ---- */

struct sg_router *sg_router_new(const struct sg_config *cfg, struct sg_health *h)
{
    struct sg_router *r = sg_xcalloc(1, sizeof *r);
    r->cfg = cfg;
    r->health = h;
    r->n_groups = cfg->n_groups;
    r->groups = sg_xcalloc(cfg->n_groups ? cfg->n_groups : 1, sizeof *r->groups);
    for (size_t i = 0; i < cfg->n_groups; i++) {
        const struct sg_group *g = &cfg->groups[i];
        r->groups[i].group = g;
        r->groups[i].health = sg_xcalloc(g->n ? g->n : 1, sizeof *r->groups[i].health);
        for (size_t j = 0; j < g->n; j++)
            r->groups[i].health[j] = sg_health_get(h, g->deployments[j]);
    }
    r->by_dep = sg_xcalloc(cfg->n_deployments ? cfg->n_deployments : 1, sizeof *r->by_dep);
    for (size_t i = 0; i < r->n_groups; i++)
        for (size_t j = 0; j < r->groups[i].group->n; j++)
            r->by_dep[r->groups[i].group->deployments[j] - cfg->deployments] =
                r->groups[i].health[j];
    return r;
}

void sg_router_free(struct sg_router *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_groups; i++) {
        for (size_t j = 0; j < r->groups[i].group->n; j++)
            sg_health_put(r->health, r->groups[i].health[j]);
        free(r->groups[i].health);
    }
    free(r->groups);
    free(r->by_dep);
    free(r);
}

const struct sg_router_group *sg_router_group(const struct sg_router *r, const char *alias,
                                              size_t len)
{
    /* The config's index, shared by every worker; router groups parallel the config's. */
    const struct sg_group *g = sg_config_group(r->cfg, alias, len);
    return g ? &r->groups[g - r->cfg->groups] : NULL;
}

/* The provider LiteLLM's get_llm_provider names for a bare model name, for the names slogate
 * knows: those of its price table. NULL for any other. */
static const char *known_provider(const char *model)
{
    static const char *const families[] = {"openai", "anthropic"};
    for (size_t i = 0; i < SG_ARRAY_LEN(families); i++)
        if (sg_pricing_lookup(families[i], model))
            return families[i];
    return NULL;
}

const struct sg_router_group *sg_router_resolve(const struct sg_router *r, const char *name,
                                                size_t len, struct sg_match *m)
{
    const struct sg_config *c = r->cfg;
    const struct sg_group *g = sg_config_resolve(c, name, len, m);
    if (!g && c->n_patterns && len < SG_CHAT_MAX_MODEL && !memchr(name, '/', len) &&
        !memchr(name, '\0', len)) {
        /* LiteLLM: route(model) or route(f"{provider}/{model}"): a route for openai/ and a star
         * serves gpt-4o. */
        char bare[SG_CHAT_MAX_MODEL], q[SG_MATCH_MAX];
        memcpy(bare, name, len);
        bare[len] = '\0';
        const char *provider = known_provider(bare);
        int k = provider ? snprintf(q, sizeof q, "%s/%s", provider, bare) : -1;
        if (k > 0 && (size_t)k < sizeof q)
            g = sg_config_match(c, q, (size_t)k, m);
    }
    return g ? &r->groups[g - c->groups] : NULL;
}

/* Adds `name` to `seen`; false when it was there. */
static bool first_time(struct sg_map *seen, char ***names, size_t *n, const char *name)
{
    if (sg_map_find(seen, name, strlen(name)))
        return false;
    *names = sg_xrealloc(*names, (*n + 1) * sizeof **names);
    char *copy = (*names)[(*n)++] = sg_xstrdup(name);
    sg_map_put(seen, copy, strlen(copy), copy);
    return true;
}

void sg_router_wildcard_names(const struct sg_router *r, const struct sg_group *g,
                              void (*fn)(const char *name, void *ud), void *ud)
{
    size_t n_rows, n = 0;
    const struct sg_price_entry *rows = sg_pricing_table(&n_rows);
    struct sg_map seen = {0};
    char **names = NULL;
    char name[SG_WILD_MODEL_MAX], back[SG_WILD_MODEL_MAX];
    struct sg_match m;
    for (size_t j = 0; j < g->n; j++) {
        const struct sg_deployment *d = g->deployments[j];
        const char *family = sg_pricing_family(d->provider, strlen(d->provider));
        for (size_t i = 0; family && i < n_rows; i++) {
            /* Listed only when a request for it comes back here, to this very model. */
            if (strcmp(rows[i].provider, family) != 0 ||
                !sg_config_unfill(g, d, rows[i].model, name) ||
                sg_config_resolve(r->cfg, name, strlen(name), &m) != g ||
                strcmp(sg_config_fill(d, &m, back), rows[i].model) != 0)
                continue;
            if (first_time(&seen, &names, &n, name))
                fn(name, ud);
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    sg_map_dispose(&seen);
}

struct sg_dep_health *sg_router_health_of(const struct sg_router *r, const struct sg_deployment *d)
{
    /* Compared as addresses: a pointer from another config is not inside this array. */
    uintptr_t p = (uintptr_t)d, first = (uintptr_t)r->cfg->deployments;
    if (p < first || p >= first + r->cfg->n_deployments * sizeof *d || (p - first) % sizeof *d != 0)
        return NULL;
    return r->by_dep[(p - first) / sizeof *d];
}

/* ---- selection ---- */

static uint64_t route_rand(struct sg_route *rt)
{
    return rt->rand ? rt->rand(rt->rand_ud) : sg_rand_u64();
}

static bool was_tried(const struct sg_route *rt, const struct sg_deployment *d)
{
    for (size_t i = 0; i < rt->n_tried; i++)
        if (rt->tried[i] == d)
            return true;
    return false;
}

static int num_retries(const struct sg_route *rt, const struct sg_deployment *d)
{
    return d->num_retries >= 0 ? d->num_retries : rt->r->cfg->router.num_retries;
}

/* A deployment the walk may use now. Sets *cooling to the cooldown left when it is cooling. */
struct cand {
    const struct sg_deployment *d;
    struct sg_dep_health *h;
    bool probe; /* its cooldown ended: this pick is the half-open probe */
    double score;
};

static bool available(struct sg_dep_health *h, uint64_t now_ms, uint64_t *cooling, bool *probe)
{
    *probe = false;
    pthread_mutex_lock(&h->lock);
    bool ok = !h->disabled;
    if (ok && h->cooldown_until) {
        if (h->cooldown_until > now_ms) {
            uint64_t left = h->cooldown_until - now_ms;
            if (!*cooling || left < *cooling)
                *cooling = left;
            ok = false;
        } else if (h->probing) {
            ok = false; /* half-open and its one probe is out: wait for its verdict */
        } else {
            *probe = true;
        }
    }
    pthread_mutex_unlock(&h->lock);
    return ok;
}

/* Strategy scores: the lowest wins; ties are broken at random. */
static double latency_score(const struct sg_route *rt, struct sg_dep_health *h, uint64_t now_ms)
{
    uint64_t ttl = rt->r->cfg->router.latency_ttl_ms;
    pthread_mutex_lock(&h->lock);
    double v = rt->stream ? h->ewma_ttft_ms : h->ewma_total_ms;
    uint64_t at = rt->stream ? h->ewma_ttft_at : h->ewma_total_at;
    pthread_mutex_unlock(&h->lock);
    /* unknown or stale: try it (explore); a sample stamped after now_ms (another worker) is fresh
     */
    return (at && (at >= now_ms || now_ms - at <= ttl)) ? v : 0;
}

/* usage-based: how full its minute is; > 1 means over a limit (skipped). */
static double usage_score(const struct sg_deployment *d, struct sg_dep_health *h, uint64_t now_ms)
{
    pthread_mutex_lock(&h->lock);
    uint64_t req = h->minute == now_ms / 60000 ? h->minute_requests : 0;
    uint64_t tok = h->minute == now_ms / 60000 ? h->minute_tokens : 0;
    pthread_mutex_unlock(&h->lock);
    double s = 0;
    if (d->rpm > 0)
        s = SG_MAX(s, (double)(req + 1) / (double)d->rpm);
    if (d->tpm > 0)
        s = SG_MAX(s, (double)(tok + 1) / (double)d->tpm); /* at its tpm: full */
    if (d->rpm <= 0 && d->tpm <= 0)
        s = (double)req * 1e-9; /* no limits: fewest requests this minute */
    return s;
}

static double cost_score(const struct sg_deployment *d)
{
    if (d->input_cost_per_token < 0 && d->output_cost_per_token < 0)
        return INFINITY; /* unknown price ranks last */
    return SG_MAX(d->input_cost_per_token, 0) + SG_MAX(d->output_cost_per_token, 0);
}

/* Weighted random pick (simple-shuffle): weight, else rpm, else tpm, else uniform. */
static size_t pick_weighted(struct sg_route *rt, struct cand *c, size_t n)
{
    double w[SG_ROUTE_MAX_TRIED], total = 0;
    int field = 3;
    for (size_t i = 0; i < n; i++) {
        if (c[i].d->weight > 0)
            field = SG_MIN(field, 0);
        else if (c[i].d->rpm > 0)
            field = SG_MIN(field, 1);
        else if (c[i].d->tpm > 0)
            field = SG_MIN(field, 2);
    }
    for (size_t i = 0; i < n; i++) {
        const struct sg_deployment *d = c[i].d;
        w[i] = field == 0   ? d->weight
               : field == 1 ? (double)d->rpm
               : field == 2 ? (double)d->tpm
                            : 1;
        total += w[i];
    }
    if (total <= 0)
        return (size_t)(route_rand(rt) % n);
    double x = (double)(route_rand(rt) >> 11) * (1.0 / 9007199254740992.0) * total;
    for (size_t i = 0; i < n; i++) {
        if (x < w[i])
            return i;
        x -= w[i];
    }
    return n - 1;
}

static size_t pick_lowest(struct sg_route *rt, struct cand *c, size_t n)
{
    size_t best = 0, ties = 1;
    for (size_t i = 1; i < n; i++) {
        if (c[i].score < c[best].score) {
            best = i;
            ties = 1;
        } else if (c[i].score == c[best].score && route_rand(rt) % ++ties == 0) {
            best = i; /* reservoir sampling keeps every tied candidate equally likely */
        }
    }
    return best;
}

static size_t pick(struct sg_route *rt, struct cand *c, size_t n, uint64_t now_ms)
{
    const char *s = rt->r->cfg->router.routing_strategy;
    if (!s || strcmp(s, "simple-shuffle") == 0)
        return pick_weighted(rt, c, n);
    for (size_t i = 0; i < n; i++) {
        if (strcmp(s, "latency-based-routing") == 0)
            c[i].score = latency_score(rt, c[i].h, now_ms);
        else if (strcmp(s, "least-busy") == 0)
            c[i].score = atomic_load(&c[i].h->in_flight);
        else if (strcmp(s, "usage-based-routing") == 0)
            c[i].score = usage_score(c[i].d, c[i].h, now_ms);
        else if (strcmp(s, "cost-based-routing") == 0)
            c[i].score = cost_score(c[i].d);
        else
            c[i].score = 0;
    }
    return pick_lowest(rt, c, n);
}

void sg_route_begin(struct sg_route *rt, const struct sg_router *r,
                    const struct sg_router_group *rg, bool stream, uint64_t now_ms,
                    uint64_t deadline_ms)
{
    SG_UNUSED(now_ms);
    uint64_t (*rnd)(void *) = rt->rand;
    void *rud = rt->rand_ud;
    memset(rt, 0, sizeof *rt);
    rt->rand = rnd;
    rt->rand_ud = rud;
    rt->r = r;
    rt->rg = rt->first = rg;
    rt->stream = stream;
    rt->deadline_ms = deadline_ms;
    rt->bypass = atomic_load(&r->health->bypass);
}

/* The next alias to try after `rt->rg` is used up, or NULL. */
static const struct sg_router_group *next_alias(struct sg_route *rt)
{
    const struct sg_router_settings *rs = &rt->r->cfg->router;
    const struct sg_fallback *list =
        rt->in_cw_fallbacks ? rs->context_window_fallbacks : rs->fallbacks;
    size_t n = rt->in_cw_fallbacks ? rs->n_context_window_fallbacks : rs->n_fallbacks;
    const char *src = rt->first->group->alias;
    const struct sg_fallback *fb = NULL;
    for (size_t i = 0; rt->name && i < n && !fb; i++)
        if (strlen(list[i].alias) == rt->name_len &&
            memcmp(list[i].alias, rt->name, rt->name_len) == 0)
            fb = &list[i];
    for (size_t i = 0; i < n && !fb; i++)
        if (strcmp(list[i].alias, src) == 0)
            fb = &list[i];
    for (size_t i = 0; i < n && !fb; i++)
        if (strcmp(list[i].alias, "*") == 0)
            fb = &list[i];
    while (fb && rt->fallback_next < fb->n) {
        const char *t = fb->targets[rt->fallback_next++];
        const struct sg_router_group *g = sg_router_group(rt->r, t, strlen(t));
        if (g && g != rt->rg)
            return g;
    }
    return NULL;
}

bool sg_route_context_window(struct sg_route *rt)
{
    if (rt->in_cw_fallbacks)
        return true; /* already walking them: go on */
    rt->in_cw_fallbacks = true;
    rt->fallback_next = 0;
    const struct sg_router_group *g = next_alias(rt);
    if (!g)
        return false;
    rt->rg = g;
    rt->tier = 0;
    rt->tier_attempts = 0; /* the next pick counts the hop */
    return true;
}

static const struct sg_deployment *take(struct sg_route *rt, struct cand *c)
{
    if (c->probe) {
        pthread_mutex_lock(&c->h->lock);
        c->h->probing = true;
        pthread_mutex_unlock(&c->h->lock);
    }
    rt->probe = c->probe;
    if (rt->n_tried < SG_ROUTE_MAX_TRIED) {
        if (c->probe)
            rt->probes |= 1u << rt->n_tried;
        rt->tried[rt->n_tried++] = c->d;
    }
    atomic_fetch_add(&c->h->in_flight, 1);
    rt->attempts++;
    return c->d;
}

const struct sg_deployment *sg_route_next(struct sg_route *rt, uint64_t now_ms)
{
    if (now_ms >= rt->deadline_ms) {
        rt->why = SG_ROUTE_DEADLINE;
        return NULL;
    }
    uint64_t cooling = 0;
    bool attempted_before = rt->attempts > 0;
    if (rt->bypass) {
        /* One switch, no intelligence: the group's first order-1 deployment, once. */
        const struct sg_router_group *rg = rt->first;
        for (size_t j = 0; j < rg->group->n && rt->attempts == 0; j++) {
            if (rg->group->deployments[j]->order == 1) {
                struct cand c = {rg->group->deployments[j], rg->health[j], false, 0};
                return take(rt, &c);
            }
        }
        rt->why = SG_ROUTE_EXHAUSTED;
        return NULL;
    }
    const struct sg_config *cfg = rt->r->cfg;
    bool usage_based = cfg->router.routing_strategy &&
                       strcmp(cfg->router.routing_strategy, "usage-based-routing") == 0;
    bool unavailable = false; /* something was skipped for health, not for being tried */
    while (rt->rg) {
        const struct sg_router_group *rg = rt->rg;
        struct cand c[SG_ROUTE_MAX_TRIED];
        size_t n = 0;
        int lowest = 0;
        /* A pinned deployment is tried first while it can serve; if it fails, the walk goes on
         * as if there were no pin (a pin is a preference, not a way to turn failover off). */
        char pinned[256];
        if (rt->attempts == 0 &&
            sg_health_pinned(rt->r->health, rg->group->alias, pinned, sizeof pinned)) {
            for (size_t j = 0; j < rg->group->n; j++) {
                const struct sg_deployment *d = rg->group->deployments[j];
                bool probe;
                if (strcmp(d->id, pinned) == 0 &&
                    available(rg->health[j], now_ms, &cooling, &probe)) {
                    struct cand pc = {d, rg->health[j], probe, 0};
                    return take(rt, &pc);
                }
            }
        }
        for (size_t j = 0; j < rg->group->n && n < SG_ROUTE_MAX_TRIED; j++) {
            const struct sg_deployment *d = rg->group->deployments[j];
            bool probe;
            if (was_tried(rt, d))
                continue;
            if (!available(rg->health[j], now_ms, &cooling, &probe) ||
                (usage_based && usage_score(d, rg->health[j], now_ms) > 1.0)) {
                unavailable = true; /* cooling, disabled, probing, or over its rpm/tpm */
                continue;
            }
            /* The current tier's retry budget: after it, only later tiers qualify. */
            if (rt->tier && d->order == rt->tier) {
                bool peers = cfg->router.enable_weighted_failover;
                if (!peers || rt->tier_attempts > num_retries(rt, d))
                    continue;
            }
            if (rt->tier && d->order < rt->tier)
                continue; /* a tier already left stays left within this request */
            if (!n || d->order < lowest)
                lowest = d->order;
            c[n++] = (struct cand){d, rg->health[j], probe, 0};
        }
        /* Keep the lowest order only: that is the tier. */
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
            if (c[i].d->order == lowest)
                c[m++] = c[i];
        if (m) {
            if (lowest != rt->tier) {
                if (attempted_before)
                    rt->hops++;
                rt->tier = lowest;
                rt->tier_attempts = 0;
            }
            rt->tier_attempts++;
            /* A deployment whose cooldown ended competes for its normal share: the request that
             * picks it is its half-open probe. */
            size_t i = pick(rt, c, m, now_ms);
            return take(rt, &c[i]);
        }
        /* This alias is used up: the next fallback alias, a hop of its own. */
        rt->rg = next_alias(rt);
        rt->tier = 0; /* the next pick counts the hop */
        rt->tier_attempts = 0;
    }
    if (!attempted_before && (cooling || unavailable)) {
        /* Nothing could be tried: cooling, disabled, a probe out, over limits. The shortest
         * cooldown says when to come back; without one, a probe's verdict or the next minute
         * of usage is a second or so away. */
        rt->why = SG_ROUTE_ALL_COOLING;
        rt->retry_after_ms = cooling ? cooling : 1000;
    } else {
        rt->why = SG_ROUTE_EXHAUSTED;
        rt->retry_after_ms = cooling;
    }
    return NULL;
}

static void ewma(double *v, uint64_t *at, double sample, uint64_t now_ms, uint64_t ttl)
{
    if (!*at || (now_ms > *at && now_ms - *at > ttl))
        *v = sample;
    else
        *v = EWMA_ALPHA * sample + (1 - EWMA_ALPHA) * *v;
    *at = SG_MAX(*at, now_ms ? now_ms : 1);
}

/* latency-based-routing: a failed attempt (a timeout, a 5xx, a refused connection) is a sample
 * at the deployment's limit, and the average is raised to it at once rather than blended in:
 * an average that still said "fast" would send the next request straight back to a failing
 * deployment until allowed_fails cooled it. A success can never be slower than its limit, so
 * the failing deployment ranks behind every deployment answering within theirs. Its successes
 * blend back in as usual; after ttl without a sample it is measured afresh. Callers hold
 * h->lock. */
static void latency_penalty(const struct sg_route *rt, const struct sg_deployment *d,
                            struct sg_dep_health *h, uint64_t now_ms, double total_ms)
{
    const struct sg_router_settings *rs = &rt->r->cfg->router;
    uint32_t timeout = d->timeout_ms ? d->timeout_ms : rs->timeout_ms;
    uint32_t ttfb = d->stream_timeout_ms ? d->stream_timeout_ms : rs->stream_timeout_ms;
    double total = SG_MAX((double)timeout, total_ms);
    double ttft = ttfb ? (double)ttfb : total;
    h->ewma_total_ms = SG_MAX(h->ewma_total_ms, total);
    h->ewma_ttft_ms = SG_MAX(h->ewma_ttft_ms, ttft);
    /* A stale average is replaced, not kept as a floor. */
    if (!h->ewma_total_at ||
        (now_ms > h->ewma_total_at && now_ms - h->ewma_total_at > rs->latency_ttl_ms))
        h->ewma_total_ms = total;
    if (!h->ewma_ttft_at ||
        (now_ms > h->ewma_ttft_at && now_ms - h->ewma_ttft_at > rs->latency_ttl_ms))
        h->ewma_ttft_ms = ttft;
    uint64_t at = now_ms ? now_ms : 1;
    h->ewma_total_at = SG_MAX(h->ewma_total_at, at);
    h->ewma_ttft_at = SG_MAX(h->ewma_ttft_at, at);
}

/* Whether this route's attempt on `d` is its deployment's half-open probe. A deployment the
 * walk could not record (past SG_ROUTE_MAX_TRIED) counts as one, so a probe is never stuck. */
static bool attempt_is_probe(const struct sg_route *rt, const struct sg_deployment *d)
{
    for (size_t i = 0; i < rt->n_tried; i++)
        if (rt->tried[i] == d)
            return (rt->probes >> i) & 1u;
    return true;
}

_Static_assert(SG_ROUTE_MAX_TRIED <= 32, "sg_route.probes is a 32-bit mask");

void sg_route_report(struct sg_route *rt, const struct sg_deployment *d, enum sg_outcome o,
                     uint64_t now_ms, uint64_t retry_after_ms, double ttft_ms, double total_ms,
                     uint64_t tokens)
{
    struct sg_dep_health *h = sg_router_health_of(rt->r, d);
    if (!h)
        return;
    bool was_probe = attempt_is_probe(rt, d);
    atomic_fetch_sub(&h->in_flight, 1);
    const struct sg_router_settings *rs = &rt->r->cfg->router;
    pthread_mutex_lock(&h->lock);
    if (o == SG_OUT_NOT_SENT) {
        if (was_probe)
            h->probing = false; /* no verdict: let another request probe */
        pthread_mutex_unlock(&h->lock);
        if (rt->tier == d->order && rt->tier_attempts > 0)
            rt->tier_attempts--; /* a deployment that could not be called used no retry */
        return;
    }
    if (now_ms / 60000 > h->minute) { /* a report a ms late never takes the minute back */
        h->minute = now_ms / 60000;
        h->minute_requests = h->minute_tokens = 0;
    }
    h->minute_requests++;
    h->minute_tokens += tokens;
    switch (o) {
    case SG_OUT_SUCCESS:
    case SG_OUT_CLIENT_ERROR:
    case SG_OUT_CONTEXT_WINDOW:
        /* It answered: alive. The half-open probe that answered (no new cooldown since it
         * went out), or any answer once the cooldown is over, closes the breaker. */
        if ((was_probe && h->probing) || (h->cooldown_until && h->cooldown_until <= now_ms)) {
            h->cooldown_until = 0;
            h->cooldown_reason = NULL;
            h->fail_head = h->fail_count = 0;
            h->probing = false;
        }
        if (o == SG_OUT_SUCCESS) {
            if (ttft_ms > 0)
                ewma(&h->ewma_ttft_ms, &h->ewma_ttft_at, ttft_ms, now_ms, rs->latency_ttl_ms);
            if (total_ms > 0)
                ewma(&h->ewma_total_ms, &h->ewma_total_at, total_ms, now_ms, rs->latency_ttl_ms);
            atomic_fetch_add(&h->successes, 1);
        }
        break;
    case SG_OUT_AUTH:
        cool_locked(h, now_ms, rs->cooldown_ms, "the provider rejected the deployment's key");
        atomic_fetch_add(&h->failures, 1);
        break;
    case SG_OUT_RATE_LIMITED:
        cool_locked(h, now_ms, retry_after_ms ? retry_after_ms : rs->cooldown_ms,
                    "the provider is rate limiting (429)");
        atomic_fetch_add(&h->failures, 1);
        break;
    case SG_OUT_FAILURE:
    case SG_OUT_FIRST_BYTE: {
        atomic_fetch_add(&h->failures, 1);
        latency_penalty(rt, d, h, now_ms, total_ms);
        h->fail_at[h->fail_head] = now_ms;
        h->fail_head = (h->fail_head + 1) % SG_FAIL_RING;
        if (h->fail_count < SG_FAIL_RING)
            h->fail_count++;
        unsigned limit = (unsigned)SG_MIN(SG_MAX(rs->allowed_fails, 0), SG_FAIL_RING);
        bool probe_failed = was_probe && h->probing;
        /* While the probe is out, an older attempt's failure is counted but the probe decides. */
        bool probe_out = h->probing && !was_probe;
        if (probe_failed || (!probe_out && fails_in_window(h, now_ms) >= limit)) {
            const char *why = o == SG_OUT_FIRST_BYTE
                                  ? "no first byte within stream_timeout, too often"
                                  : "allowed_fails failures within 60 s";
            cool_locked(h, now_ms, rs->cooldown_ms,
                        probe_failed ? "the half-open probe failed" : why);
        }
        break;
    }
    case SG_OUT_NOT_SENT: /* handled above */
    case SG_OUT_CANCELLED:
        if (was_probe)
            h->probing = false; /* no verdict: let another request probe */
        break;
    }
    pthread_mutex_unlock(&h->lock);
}

void sg_route_tokens(struct sg_route *rt, const struct sg_deployment *d, uint64_t tokens,
                     uint64_t now_ms)
{
    struct sg_dep_health *h = sg_router_health_of(rt->r, d);
    if (!h || !tokens)
        return;
    pthread_mutex_lock(&h->lock);
    if (now_ms / 60000 > h->minute) {
        h->minute = now_ms / 60000;
        h->minute_requests = h->minute_tokens = 0;
    }
    h->minute_tokens += tokens;
    pthread_mutex_unlock(&h->lock);
}

enum sg_outcome sg_router_classify(int status, int transport_error, bool first_byte_timeout,
                                   const char *body, size_t body_len)
{
    if (transport_error == SG_ECANCELED)
        return SG_OUT_CANCELLED;
    if (transport_error)
        return first_byte_timeout ? SG_OUT_FIRST_BYTE : SG_OUT_FAILURE;
    if (status >= 200 && status < 300)
        return SG_OUT_SUCCESS;
    if (status < 200 || (status >= 300 && status < 400))
        return SG_OUT_FAILURE;
    /* The provider adapters read both error shapes (OpenAI's and Anthropic's) and the wording
     * each provider uses (provider/errors.c). */
    struct sg_provider_error e;
    sg_provider_classify(status, body, body_len, &e);
    switch (e.cls) {
    case SG_ERRC_AUTH: return SG_OUT_AUTH; /* also OpenAI's insufficient_quota 429 */
    case SG_ERRC_RATE_LIMIT: return SG_OUT_RATE_LIMITED;
    case SG_ERRC_SERVER:
    case SG_ERRC_TIMEOUT: return SG_OUT_FAILURE;
    case SG_ERRC_CONTEXT_WINDOW: return SG_OUT_CONTEXT_WINDOW;
    case SG_ERRC_NONE: return SG_OUT_SUCCESS;
    case SG_ERRC_BAD_REQUEST:
    case SG_ERRC_NOT_FOUND:
    case SG_ERRC_CONTENT_POLICY: break;
    }
    return SG_OUT_CLIENT_ERROR;
}
