/*
 * config — slogate.yaml / litellm_config.yaml into typed, immutable structs.
 *
 * A LiteLLM proxy config loads unchanged: model_list / litellm_params / model_info,
 * router_settings, litellm_settings and general_settings keep LiteLLM's meaning, and slogate's
 * own sections (server, service, slo, features, budgets, rate_limits, cache, alerts, telemetry,
 * drill) sit beside them. Loading never stops at the first problem: every problem is collected
 * as a diagnostic with file:line, so `slogate check` can print them all at once.
 *
 * A loaded config is immutable and reference counted: the request path holds a reference for
 * the life of a request, so a reload can swap in a new config while old requests finish.
 */
#ifndef SG_CONFIG_H
#define SG_CONFIG_H

#include "base/base.h"

#include <stdio.h>

/* ---- diagnostics ---- */

enum sg_diag_severity { SG_DIAG_WARNING, SG_DIAG_ERROR };

struct sg_diag {
    enum sg_diag_severity severity;
    char *file; /* the config's path (or a name such as "<embedded>") */
    int line;   /* 1-based; 0 when the problem has no single line */
    char *msg;
};

struct sg_diags {
    struct sg_diag *v;
    size_t n, cap;
};

void sg_diags_init(struct sg_diags *d);
void sg_diags_dispose(struct sg_diags *d);
void sg_diags_add(struct sg_diags *d, enum sg_diag_severity sev, const char *file, int line,
                  const char *fmt, ...) SG_PRINTF(5, 6);
size_t sg_diags_errors(const struct sg_diags *d);
size_t sg_diags_warnings(const struct sg_diags *d);
/* Stable-sort by line, so diagnostics added after a load (check's own) read in file order too:
 * problems about the whole file (line 0) first, equal lines in the order they were added. */
void sg_diags_sort(struct sg_diags *d);
/* One line each: "file:line: error: message" (or "warning:"), in the list's order. */
void sg_diags_print(const struct sg_diags *d, FILE *out);

/* ---- typed configuration ---- */

enum sg_provider_kind {
    SG_PROVIDER_OPENAI,    /* openai/... and every OpenAI-compatible api_base */
    SG_PROVIDER_ANTHROPIC, /* anthropic/... */
};

/* One entry of model_list. Durations are milliseconds; 0 means "not set here, inherit". */
struct sg_deployment {
    char *id;             /* model_info.id, else "<model_name>#<8 hex>" (config.c generated_id) */
    char *alias;          /* model_name: the group this deployment serves */
    char *model;          /* litellm_params.model as written, e.g. "openai/gpt-4o-mini" */
    char *provider;       /* the part before the first '/', "openai" when there is none */
    char *provider_model; /* the model id sent upstream, e.g. "gpt-4o-mini" */
    enum sg_provider_kind kind;
    char *api_key;      /* resolved secret, or NULL when none is configured; with no
                         * api_key line, the provider's usual variable (OPENAI_API_KEY,
                         * ANTHROPIC_API_KEY, ...) as LiteLLM does */
    char *api_base;     /* resolved, no trailing '/'; provider default when unset.
                         * OpenAI format: includes /v1 (append /chat/completions).
                         * Anthropic: the root, without /v1 (append /v1/messages) */
    char *region;       /* litellm_params.region_name or model_info.region, or NULL */
    char *organization; /* OpenAI's organization (OpenAI-Organization), or NULL */
    char **headers;     /* "Name: value" lines every call carries: LiteLLM's
                         * extra_headers and headers */
    size_t n_headers;
    int order;                      /* priority tier, lower first (default 1) */
    double weight;                  /* 0 = unset */
    int64_t rpm, tpm;               /* 0 = unlimited */
    uint32_t timeout_ms;            /* whole attempt */
    uint32_t stream_timeout_ms;     /* time to first byte */
    int num_retries;                /* -1 = inherit router_settings (also read from max_retries) */
    double input_cost_per_token;    /* < 0 = unset (use the built-in price table) */
    double output_cost_per_token;   /* < 0 = unset */
    int line;                       /* line of the list entry */
    char *file;                     /* the file the entry is written in: the config's path, or
                                     * a file its `include:` names */
    size_t index;                   /* the entry's index in that file's model_list (entries
                                     * slogate does not route count too) */
    unsigned stars;                 /* '*' in provider_model: a wildcard route's model, filled
                                     * per request with what its model_name's '*' matched
                                     * (sg_config_fill); 0 for a model called as written */
    char *base_model;               /* model_info.base_model as written (NULL: none): the model
                                     * whose price applies, as LiteLLM prices an Azure deployment
                                     * whose name is its owner's (sg_pricing_resolve) */
    char *health_check_model;       /* model_info.health_check_model without its provider: what
                                     * background health checks ask for (NULL: provider_model;
                                     * a wildcard deployment without one is not probed) */
    signed char supports_reasoning; /* model_info.supports_reasoning: 1 true, -1 false, 0 not
                                     * said (the model's name decides: sg_provider_reasons) */
};

/* Deployments sharing one model_name, in config order. */
struct sg_group {
    char *alias;
    bool hidden;    /* model_group_alias with hidden: true: routed, not listed in /v1/models */
    unsigned stars; /* '*' in a model_list alias: a wildcard route (LiteLLM's pattern), which
                     * serves the names it matches when no exact name does (sg_config_resolve) */
    struct sg_deployment **deployments; /* borrowed from sg_config.deployments */
    size_t n;
};

/* A model_name whose every model_list entry was left out (a provider slogate cannot call, a
 * wildcard...), with why: its requests are told, not answered "does not exist". */
struct sg_unrouted {
    char *alias;
    char *why; /* the first left-out entry's reason, as the config warning gave it */
};

/* `alias: [target, ...]` from fallbacks / context_window_fallbacks. */
struct sg_fallback {
    char *alias;
    char **targets;
    size_t n;
};

struct sg_router_settings {
    char *routing_strategy;        /* "simple-shuffle" (default) ... */
    bool enable_weighted_failover; /* default true */
    int num_retries;               /* default 1 */
    int allowed_fails;             /* default 3 */
    uint32_t cooldown_ms;          /* cooldown_time, default 30 s */
    uint32_t timeout_ms;           /* default 30 s */
    uint32_t stream_timeout_ms;    /* 0 = none */
    uint32_t hedge_after_ms;       /* 0 = off */
    uint32_t latency_ttl_ms;       /* routing_strategy_args.ttl, default 60 s */
    struct sg_fallback *fallbacks;
    size_t n_fallbacks;
    struct sg_fallback *context_window_fallbacks;
    size_t n_context_window_fallbacks;
};

struct sg_general_settings {
    char *master_key;              /* resolved; also accepted under litellm_settings (warning) */
    char *database_url;            /* default "sqlite://slogate.db" */
    char *redis_url;               /* NULL = none */
    bool disable_spend_logs;       /* LiteLLM's switch: no request rows in the database */
    size_t max_request_size_bytes; /* max_request_size_mb, default 8 MiB */
    bool background_health_checks; /* probe every deployment in the background (default off) */
    uint32_t health_check_interval_ms; /* health_check_interval, default 300 s */
};

/* The most event-loop threads server.workers and `serve --workers` accept (one range for both). */
#define SG_WORKERS_MAX 1024

/* slogate's own `server:` section; command-line flags override it. */
struct sg_server_settings {
    char *host;                 /* default "127.0.0.1" */
    int port;                   /* default 4000 */
    int workers;                /* 0 = one per core; sg_config_workers */
    uint32_t idle_timeout_ms;   /* default 60 s */
    uint32_t header_timeout_ms; /* default 10 s */
    uint32_t drain_timeout_ms;  /* graceful shutdown deadline, default 30 s */
    uint32_t shutdown_delay_ms; /* serving on, readiness 503, before the drain; default 0 */
    uint32_t max_connections;   /* per worker, default 10000 */
    char *log_level;            /* default "info" */
    char *cors_origins;         /* "*" (default), origins joined by ',', or "" for no CORS;
                                 * at most SG_CFG_CORS_MAX bytes */
};
#define SG_CFG_CORS_MAX 1023 /* what the HTTP server keeps (SG_HTTP_CORS_MAX) */

struct sg_service_settings {
    char *name;     /* default "slogate" */
    char *timezone; /* default "UTC" */
};

struct sg_maintenance {
    uint64_t start_ms; /* epoch ms, parsed from RFC 3339 */
    uint32_t minutes;
};

struct sg_slo_settings {
    int window_days;      /* default 30 */
    double success_rate;  /* percent, default 99.5 */
    double p95_latency_s; /* default 2.5 */
    double cost_avg_usd;  /* default 0.015 */
    struct sg_maintenance *maintenance;
    size_t n_maintenance;
};

struct sg_feature_cache {
    bool enabled;
    uint32_t ttl_min; /* default 60 */
    bool lowercase;
    char **strip; /* regexes as written: PCRE2 syntax, checked at load by compiling them in
                     UTF-8 mode (PCRE2_UTF), as the cache must compile them; <= 4096 bytes */
    size_t n_strip;
};

/* The longest feature name: what the request rows' feature column holds whole. */
#define SG_FEATURE_NAME_MAX 63

struct sg_feature {
    char *name;
    int64_t max_input_tokens;        /* 0 = no cap */
    int64_t max_output_tokens;       /* 0 = no cap */
    double max_cost_per_request_usd; /* 0 = no cap */
    bool on_cost_cap_reject;         /* on_cost_cap: reject (true) | degrade (false, default) */
    bool prompt_caching;
    struct sg_feature_cache cache;
    int line;
};

struct sg_budget_settings {
    double tenant_monthly_usd; /* 0 = none */
    double user_monthly_usd;   /* 0 = none */
    double *alert_at;          /* percents, default {60, 85, 95} */
    size_t n_alert_at;
    double safeguard_at;   /* default 95 */
    char *safeguard_model; /* an alias, or NULL */
};

struct sg_rate_limit_settings {
    double rps;   /* 0 = none */
    double burst; /* bucket size; max(1, rps) when rps is set and burst is not */
};

struct sg_cache_settings {
    char *backend;   /* "memory" (default) | "redis" */
    uint32_t max_mb; /* default 256 */
    bool stale_if_error;
};

enum sg_sink_type { SG_SINK_SLACK, SG_SINK_WEBHOOK, SG_SINK_LOG };
struct sg_alert_sink {
    enum sg_sink_type type;
    char *url; /* resolved; NULL for log */
};
struct sg_alert_settings {
    struct sg_alert_sink *sinks;
    size_t n_sinks;
};

struct sg_telemetry_settings {
    char *otlp_endpoint; /* NULL = off */
    char *request_log;   /* NULL = off */
    bool log_prompts;
    size_t request_log_max_bytes; /* request_log_max_mb: rotate past this; default 100 MiB */
    int request_log_backups;      /* rotated files kept (path.1 ...), default 5 */
    char *metrics_token;          /* a bearer token for GET /metrics besides the master key */
    char *spool_path;             /* NULL: <sqlite path>.spool, or slogate-spool.jsonl */
    char *journal_dir;            /* the crash journal's tmpfs folder (/dev/shm); "none": none */
};

struct sg_drill_settings {
    double failover_target_s;           /* default 10 */
    double min_success_during_failover; /* percent, default 95 */
};

struct sg_config {
    char *path; /* file it came from, or the name given to load_string */
    struct sg_deployment *deployments;
    size_t n_deployments;
    struct sg_group *groups; /* one per distinct model_name, in first-seen order */
    size_t n_groups;
    struct sg_router_settings router;
    struct sg_general_settings general;
    struct sg_server_settings server;
    struct sg_service_settings service;
    struct sg_slo_settings slo;
    struct sg_feature *features;
    size_t n_features;
    struct sg_budget_settings budgets;
    struct sg_rate_limit_settings rate_limits;
    struct sg_cache_settings cache;
    struct sg_alert_settings alerts;
    struct sg_telemetry_settings telemetry;
    struct sg_drill_settings drill;
    /* alias -> struct sg_group *, feature name -> struct sg_feature *: built by the loader and
     * never changed once it returns, so every worker looks up its requests' names without a
     * lock. */
    struct sg_map group_index, feature_index;
    struct sg_unrouted *unrouted; /* indexed by unrouted_index (alias -> entry) */
    size_t n_unrouted;
    struct sg_map unrouted_index;
    /* The wildcard routes in the order LiteLLM's pattern router tries them (most specific
     * first): the routed ones, and those whose every entry was left out (for a 404's reason). */
    struct sg_pattern *patterns, *unrouted_patterns;
    size_t n_patterns, n_unrouted_patterns;
    int refs; /* atomic reference count; starts at 1 */
};

/* ---- wildcard routes (LiteLLM's pattern router; docs/configuration.md, "Wildcard routes") ---- */

#define SG_WILDCARD_MAX 8        /* '*' in one model_name */
#define SG_MATCH_MAX 288         /* the longest name a wildcard route matches, in bytes + 1 */
#define SG_WILD_TEMPLATE_MAX 200 /* the longest litellm_params.model with a '*' */
#define SG_WILD_MODEL_MAX (SG_MATCH_MAX + SG_WILD_TEMPLATE_MAX) /* what sg_config_fill writes */

/* A model_name with '*'. `text` is borrowed from the group (or the unrouted entry). */
struct sg_pattern {
    const char *text;
    size_t len;
    size_t group;    /* index into groups; unused for unrouted ones */
    const char *why; /* unrouted ones: why (as sg_unrouted) */
};

/* What resolved a client's model name: its group and, for a wildcard route, the text each '*' of
 * the model_name matched. Self-contained (no pointer into the name), so it may outlive it. */
struct sg_match {
    const struct sg_group *group;
    unsigned n;                    /* captures: the group's stars; 0 for an exact name */
    uint16_t off[SG_WILDCARD_MAX]; /* capture i is text[off[i]] for len[i] bytes */
    uint16_t len[SG_WILDCARD_MAX];
    char text[SG_MATCH_MAX]; /* the name matched (with the provider LiteLLM would put
                              * before a bare name, sg_router_resolve) */
};

/* Where os.environ/NAME values come from; NULL means getenv(). Tests inject their own. */
typedef const char *(*sg_env_fn)(const char *name, void *ud);

/* Load and validate a file. On success (no error diagnostics) returns a config with one
 * reference; otherwise NULL. Warnings and errors are appended to `diags` either way. */
struct sg_config *sg_config_load_file(const char *path, sg_env_fn env, void *env_ud,
                                      struct sg_diags *diags);
/* The same from an open stream read to its end (`check -c -` reads stdin); `name` is used in
 * diagnostics. The caller keeps and closes `f`. */
struct sg_config *sg_config_load_stream(FILE *f, const char *name, sg_env_fn env, void *env_ud,
                                        struct sg_diags *diags);
/* The same from memory; `name` is used in diagnostics. */
struct sg_config *sg_config_load_string(const char *yaml, size_t len, const char *name,
                                        sg_env_fn env, void *env_ud, struct sg_diags *diags);

struct sg_config *sg_config_ref(struct sg_config *c);
void sg_config_unref(struct sg_config *c);

/* The group of an exact name (a model_name or a model_group_alias): one hash lookup. */
const struct sg_group *sg_config_group(const struct sg_config *c, const char *alias, size_t len);
/* A client's model name as LiteLLM's router resolves it: the exact name first (one hash
 * lookup; `m` gets the group and n = 0, nothing else is written), else the first wildcard route
 * whose model_name matches it whole, most specific first (sg_config_match). NULL when nothing
 * serves it. No allocation and no lock: any worker, any time after the load. */
const struct sg_group *sg_config_resolve(const struct sg_config *c, const char *name, size_t len,
                                         struct sg_match *m);
/* The wildcard routes alone, in their order. A name of SG_MATCH_MAX bytes or more, or with a
 * newline (which LiteLLM's `(.*)` does not match), matches none. */
const struct sg_group *sg_config_match(const struct sg_config *c, const char *name, size_t len,
                                       struct sg_match *m);
/* The model id `d` is called with for match `m`: d->provider_model itself when it has no '*',
 * else (in `buf`, SG_WILD_MODEL_MAX bytes) with its i-th '*' replaced by what the i-th '*' of
 * the model_name matched. Never NULL. */
const char *sg_config_fill(const struct sg_deployment *d, const struct sg_match *m, char *buf);
/* The reverse, for listing: the name a client sends to reach provider model id `model` through
 * the wildcard group `g`'s deployment `d` (into `out`, SG_WILD_MODEL_MAX bytes); false when d's
 * model cannot be `model` or cannot say which text each '*' took. The caller checks the name
 * resolves back to `g` (an exact name or a more specific route may take it). */
bool sg_config_unfill(const struct sg_group *g, const struct sg_deployment *d, const char *model,
                      char *out);
/* Why a model_name that has no group was left out of model_list, or NULL if it is not in it.
 * A name that is none but matches a wildcard route that was left out gets that route's reason. */
const char *sg_config_unrouted(const struct sg_config *c, const char *alias, size_t len);
const struct sg_feature *sg_config_feature(const struct sg_config *c, const char *name, size_t len);

/* The keys a running gateway reads once, at start (the listener, the threads, the store, the
 * exporters): a reload that changes one of them changes nothing until the next start. Fills
 * `keys` with the names, as written in the file ("server.max_connections"), of those that differ
 * between `running` and `fresh`; returns how many (at most SG_CONFIG_N_START_KEYS). */
#define SG_CONFIG_N_START_KEYS 25
size_t sg_config_start_keys_changed(const struct sg_config *running, const struct sg_config *fresh,
                                    const char *keys[SG_CONFIG_N_START_KEYS]);

/* How many workers to run: `flag` (`--workers`; -1 when not given) wins over server.workers.
 * In both, 0 means one per online core (at most SG_WORKERS_MAX); the result is >= 1. */
int sg_config_workers(const struct sg_config *c, int flag);

/* Whether `host` is something to listen on as written (server.host, `serve --host`): an IPv4
 * or IPv6 address, or a host name (RFC 1123 labels, not all digits at the end, so that
 * "999.1.1.1" is no name either). Nothing is resolved. */
bool sg_config_host_ok(const char *host);

/* The provider of a model written without one, as LiteLLM reads it: "anthropic" for a claude-
 * name, else "openai". */
const char *sg_config_bare_provider(const char *model);

/* Split "openai/gpt-4o-mini" into provider "openai" and model "gpt-4o-mini"; a model without
 * '/' is an OpenAI model (a claude- one: Anthropic's, sg_config_bare_provider). Unknown providers
 * with an api_base are OpenAI-compatible. Writes heap strings the caller frees. Returns 0, or
 * SG_EINVAL for an empty model. */
int sg_config_split_model(const char *model, char **provider, char **provider_model,
                          enum sg_provider_kind *kind);

/* general_settings.redis_url taken apart: redis://[[user]:password@]host[:port][/db] or
 * unix://[[user]:password@]/path[?db=N], as redis-py reads them (LiteLLM's REDIS_URL). The user
 * and password are %XX-decoded (a password holding '@', ':' or '/' is written escaped); an IPv6
 * host is written in brackets. */
struct sg_redis_url {
    char *host;            /* an address or a name (no brackets); NULL for unix:// */
    char *unix_path;       /* unix://: the socket's path; else NULL */
    char *user, *password; /* NULL when not given */
    int port;              /* default 6379 */
    int db;                /* default 0 */
};
/* SG_OK, or SG_EINVAL with `err` saying what is wrong (never quoting the password). */
int sg_redis_url_parse(const char *url, struct sg_redis_url *out, char *err, size_t err_len);
void sg_redis_url_dispose(struct sg_redis_url *u);

#endif
