/*
 * router — which deployment serves a request, and what a failure means for the next attempt
 * and for the deployment's health (DESIGN §7; docs/routing.md says where it differs from
 * LiteLLM and why).
 *
 * Two objects:
 * - struct sg_health: the process-wide health table, one entry per deployment id, shared by all
 *   workers and kept across config reloads (an unchanged deployment keeps its cooldown, its
 *   failure window and its latency). Each entry has a small mutex; nothing is held across I/O.
 *   An entry is held by every router built over a config that has its deployment; when the last
 *   one goes (a reload removed it and the requests that started before have ended) it leaves the
 *   table and everything about it is forgotten, so the table is as large as the configs in use.
 * - struct sg_router: built from one config (immutable), pointing into the health table. A
 *   request walks it with a struct sg_route: pick → attempt → report → pick again.
 *
 * Time and randomness are parameters, so the unit tests are exact.
 */
#ifndef SG_ROUTER_H
#define SG_ROUTER_H

#include "config/config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <uv.h>

/* What one attempt came to, as the router sees it. */
enum sg_outcome {
    SG_OUT_SUCCESS,      /* 2xx */
    SG_OUT_CLIENT_ERROR, /* 400/404/422...: the caller's; returned as is, not held against anyone */
    SG_OUT_CONTEXT_WINDOW, /* the prompt does not fit: try context_window_fallbacks */
    SG_OUT_FAILURE,        /* connect/TLS error, timeout, 408, 5xx: retry elsewhere, count it */
    SG_OUT_AUTH,           /* 401/403 from the provider: its key is bad, cool down at once */
    SG_OUT_RATE_LIMITED,   /* 429: cool down for Retry-After (or cooldown_time) */
    SG_OUT_FIRST_BYTE,     /* no first byte within stream_timeout: a failure */
    SG_OUT_CANCELLED,      /* we stopped it (hedge lost, client left): no verdict */
    SG_OUT_NOT_SENT, /* nothing went out (its format cannot say the request): no verdict, no use
                      * of its rpm, and the tier's retry it took is given back */
};
const char *sg_outcome_name(enum sg_outcome o);

/* ---- the health table ---- */

#define SG_FAIL_RING 64 /* allowed_fails is capped to this by the window's ring */

struct sg_dep_health {
    char *id;                       /* changes only under the table's lock (an entry is reused) */
    unsigned refs;                  /* routers (and Redis rounds) holding it; the table's lock */
    size_t slot;                    /* its index in the table's `v`; the table's lock */
    char *fingerprint;              /* model + api_base: a changed deployment starts afresh */
    pthread_mutex_t lock;           /* guards everything below that is not atomic */
    uint64_t fail_at[SG_FAIL_RING]; /* ring of recent failure times (ms) */
    unsigned fail_head, fail_count;
    uint64_t cooldown_until;     /* ms; 0 = not cooling */
    uint64_t shared_until;       /* the cooldown other instances know of (Redis), ms */
    const char *cooldown_reason; /* static string */
    bool probing;                /* half-open: the one probe request is in flight */
    bool disabled;
    double ewma_ttft_ms, ewma_total_ms; /* latency, with the time of the last sample */
    uint64_t ewma_ttft_at, ewma_total_at;
    uint64_t minute; /* usage-based routing: the minute the counters are for */
    uint64_t minute_requests, minute_tokens;
    atomic_int in_flight;
    atomic_ullong successes, failures;
    /* Drill faults (/admin/faults), injected on purpose and undone by one call each. */
    atomic_bool fault_revoke_key;   /* send a wrong key: the provider answers 401 */
    atomic_bool fault_block_egress; /* connections are refused, as a firewall REJECT does */
    atomic_uint fault_ttft_ms;      /* cap time to first byte at this (0 = none) */
};

struct sg_health {
    pthread_mutex_t lock; /* guards the table's shape (lookups, inserts, removals) and refs */
    /* The entries in the order they joined (the order of x-slogate-faults). A retired entry
     * leaves a NULL; the holes are squeezed out when they are half of `v`, so a removal costs
     * O(1) amortized and a reload that drops thousands of deployments stays linear. */
    struct sg_dep_health **v;
    size_t len, cap;   /* slots of `v` in use, holes included */
    size_t n;          /* entries in the table */
    struct sg_map ids; /* id -> entry, for every entry in `v` */
    /* Entries no router holds any more, reset, for the next new deployment: an entry's memory
     * is never freed before the table, so a pointer from sg_health_find stays safe to read. */
    struct sg_dep_health **spare;
    size_t n_spare, cap_spare;
    /* Pinned deployment per alias: "alias\0id" pairs, guarded by lock. */
    char **pins;
    size_t n_pins;
    atomic_bool bypass;       /* /admin/bypass or BYPASS_ROUTER=true */
    atomic_bool redis_ok;     /* the Redis sync's last round was answered */
    atomic_int faults_active; /* deployments with a drill fault on (0: skip the header) */
};

struct sg_health *sg_health_new(void);
void sg_health_free(struct sg_health *h);
/* The entry for a deployment, held once more (sg_health_put lets it go): created when new,
 * reset when its fingerprint changed. */
struct sg_dep_health *sg_health_get(struct sg_health *h, const struct sg_deployment *d);
/* Let go of an entry from sg_health_get or sg_health_hold_all. The last holder's put takes it
 * out of the table: its health, disabled flag and drill faults are forgotten and a pin naming it
 * is dropped (the deployment left every config in use). */
void sg_health_put(struct sg_health *h, struct sg_dep_health *e);
/* Every entry in the table, each held (put each one when done); *out is the caller's to free. */
size_t sg_health_hold_all(struct sg_health *h, struct sg_dep_health ***out);
/* Find by id (metrics); NULL when unknown. The memory stays valid, but once no router holds
 * the entry it may be reused for another deployment: hold an entry to keep it. */
struct sg_dep_health *sg_health_find(struct sg_health *h, const char *id);
/* Pin `id` for `alias` (NULL id unpins whatever is pinned). */
void sg_health_pin(struct sg_health *h, const char *alias, const char *id);
/* Unpin `id` for `alias` only if it is the pinned one: SG_OK when it was (now unpinned) or when
 * nothing is pinned; SG_EINVAL, with the pinned id copied into `holder`, when another is. */
int sg_health_unpin(struct sg_health *h, const char *alias, const char *id, char *holder, size_t n);
/* The pinned id for an alias, copied into out; false when none. */
bool sg_health_pinned(struct sg_health *h, const char *alias, char *out, size_t n);
void sg_health_clear_cooldown(struct sg_dep_health *e);
/* Put a deployment in cooldown until now + ms (the longer of this and any current one). */
void sg_health_cool(struct sg_dep_health *e, uint64_t now_ms, uint64_t ms, const char *reason);

/* Set or clear drill faults; `ttft_ms` < 0 leaves it, revoke/block < 0 leave them. */
void sg_health_set_faults(struct sg_health *h, struct sg_dep_health *e, int revoke_key,
                          int block_egress, long ttft_ms);
/* "primary=revoke_key,ttft_ms:30; secondary=block_egress" for every entry with a fault; "" when
 * none. Returns the length written (truncated to n - 1). */
size_t sg_health_faults_text(struct sg_health *h, char *out, size_t n);

/* A snapshot of an entry for display; `cooling_ms` is what is left of a cooldown. */
struct sg_dep_view {
    bool healthy, disabled, probing;
    uint64_t cooling_ms;
    const char *cooldown_reason;
    unsigned fails_in_window;
    int in_flight;
    double ewma_ttft_ms, ewma_total_ms;
    unsigned long long successes, failures;
};
void sg_health_view(struct sg_dep_health *e, uint64_t now_ms, struct sg_dep_view *out);

/* ---- the router for one config ---- */

struct sg_router_group {
    const struct sg_group *group;
    struct sg_dep_health **health; /* parallel to group->deployments */
};

struct sg_router {
    const struct sg_config *cfg;
    struct sg_health *health;
    struct sg_router_group *groups; /* parallel to cfg->groups */
    size_t n_groups;
    struct sg_dep_health **by_dep; /* parallel to cfg->deployments: sg_router_health_of */
};

struct sg_router *sg_router_new(const struct sg_config *cfg, struct sg_health *h);
void sg_router_free(struct sg_router *r);
/* The group of an exact name (a model_name or alias): the config's hash index, O(1). */
const struct sg_router_group *sg_router_group(const struct sg_router *r, const char *alias,
                                              size_t len);
/* A client's model name as LiteLLM's router resolves it: an exact name (O(1), nothing else
 * runs), else the config's wildcard routes, most specific first, else — for a bare name
 * LiteLLM knows the provider of — the routes again with "<provider>/" before it (LiteLLM's
 * get_pattern; slogate knows the names of its price table). `m` says what each '*' matched:
 * sg_config_fill gives the model a deployment is called with. NULL when nothing serves it.
 * No allocation, no lock. */
const struct sg_router_group *sg_router_resolve(const struct sg_router *r, const char *name,
                                                size_t len, struct sg_match *m);
/* For /v1/models: calls `fn` with each name a client may send to reach a wildcard group `g`
 * that the provider's models in slogate's price table give (what LiteLLM lists from its own
 * model list), each once, those another group would take left out. */
void sg_router_wildcard_names(const struct sg_router *r, const struct sg_group *g,
                              void (*fn)(const char *name, void *ud), void *ud);
/* The entry of a deployment of this router's config (a pointer into cfg->deployments), in
 * O(1); NULL for any other pointer. */
struct sg_dep_health *sg_router_health_of(const struct sg_router *r, const struct sg_deployment *d);

/* ---- one request's walk ---- */

#define SG_ROUTE_MAX_TRIED 32

struct sg_route {
    const struct sg_router *r;
    const struct sg_router_group *rg; /* the alias being tried now */
    const struct sg_router_group *first;
    /* The name the client sent, when a wildcard route serves it (set after sg_route_begin):
     * LiteLLM keys a request's fallbacks by it, so a fallback for that name comes first, then
     * one for the route's own model_name. NULL: the group's alias is the name. */
    const char *name;
    size_t name_len;
    bool stream;
    bool bypass;
    size_t fallback_next; /* next index in this alias's fallbacks list */
    bool in_cw_fallbacks; /* walking context_window_fallbacks */
    int tier;             /* order of the tier being tried; 0 = none yet */
    int tier_attempts;    /* attempts made in this tier */
    int hops;             /* tiers and fallback aliases crossed */
    int attempts;
    const struct sg_deployment *tried[SG_ROUTE_MAX_TRIED];
    size_t n_tried;
    uint32_t probes;            /* bit i: tried[i] was picked as its deployment's half-open probe */
    uint64_t deadline_ms;       /* absolute; attempts must finish before it */
    uint64_t (*rand)(void *ud); /* injected randomness */
    void *rand_ud;
    /* Why the last sg_route_next() returned NULL. */
    enum { SG_ROUTE_EXHAUSTED, SG_ROUTE_ALL_COOLING, SG_ROUTE_DEADLINE } why;
    uint64_t retry_after_ms; /* with ALL_COOLING: the shortest cooldown left */
    bool probe;              /* the last pick is a half-open probe */
};

/* Start a walk for a request to `rg` that must end by `deadline_ms`. */
void sg_route_begin(struct sg_route *rt, const struct sg_router *r,
                    const struct sg_router_group *rg, bool stream, uint64_t now_ms,
                    uint64_t deadline_ms);
/* The next deployment to attempt, or NULL (see rt->why). Marks it tried and in flight. */
const struct sg_deployment *sg_route_next(struct sg_route *rt, uint64_t now_ms);
/* Report an attempt's end: updates health (cooldowns, latency) and in-flight counts.
 * `retry_after_ms` is the provider's Retry-After (0 = none); `ttft_ms`/`total_ms` latencies. */
void sg_route_report(struct sg_route *rt, const struct sg_deployment *d, enum sg_outcome o,
                     uint64_t now_ms, uint64_t retry_after_ms, double ttft_ms, double total_ms,
                     uint64_t tokens);
/* Count an answer's tokens against its deployment's minute (usage-based routing, tpm). */
void sg_route_tokens(struct sg_route *rt, const struct sg_deployment *d, uint64_t tokens,
                     uint64_t now_ms);
/* Move to the alias's context_window_fallbacks (after SG_OUT_CONTEXT_WINDOW); false if none. */
bool sg_route_context_window(struct sg_route *rt);

/* ---- sharing cooldowns across instances through Redis (redis.c) ---- */

struct sg_redis_sync;
/* Every `interval_ms`, on `loop`: publish local cooldowns (SET slogate:cooldown:<id> PX) and
 * adopt other instances' (MGET). Redis being down only means local state is used alone. */
struct sg_redis_sync *sg_redis_sync_new(uv_loop_t *loop, const char *redis_url, struct sg_health *h,
                                        uint32_t interval_ms);
/* Close the connection and free once libuv has closed the handles (on the loop's thread). */
void sg_redis_sync_free(struct sg_redis_sync *s);
/* Whether Redis answers is published in h->redis_ok, readable from any thread. */

/* Classify an upstream answer: status (0 = none) and transport error (SG_E*). */
enum sg_outcome sg_router_classify(int status, int transport_error, bool first_byte_timeout,
                                   const char *body, size_t body_len);

#endif
