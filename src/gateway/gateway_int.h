/* gateway — private: the runtime (config + what is derived from it) and the worker. */
#ifndef SG_GATEWAY_INT_H
#define SG_GATEWAY_INT_H

#include "gateway.h"
#include "http/http.h"
#include "provider/provider.h"
#include "router/router.h"
#include "upstream/upstream.h"

#include <pthread.h>
#include <stdatomic.h>

/* Everything derived once from a config, shared read-only by every worker. */
struct sg_runtime {
    struct sg_config *cfg;
    struct sg_upstream_headers **dep_headers;         /* per deployment: auth + content type */
    struct sg_upstream_headers **dep_headers_revoked; /* the same with a wrong key (drill) */
    char **dep_urls;                                  /* per deployment: chat completions URL, or
                                                       * Anthropic's /v1/messages */
    char **dep_embed_urls;                            /* per deployment: api_base + /embeddings */
    struct sg_price *dep_prices;                      /* per deployment: USD per token */
    bool *dep_priced;                                 /* false: no price known (cost 0, counted) */
    struct sg_router *router;                         /* routing over this config */
    char *models_json;                                /* the GET /v1/models answer */
    struct sg_telemetry_keys *tel_keys;               /* this config's metric series */
    size_t models_json_len;
    long models_created; /* the "created" of every /v1/models entry */
    atomic_int refs;
};

struct sg_runtime *sg_runtime_new(struct sg_config *cfg_take, struct sg_health *health);
struct sg_runtime *sg_runtime_ref(struct sg_runtime *rt);
void sg_runtime_unref(struct sg_runtime *rt);
/* Index of a deployment in cfg->deployments. */
size_t sg_runtime_dep_index(const struct sg_runtime *rt, const struct sg_deployment *d);

struct sg_worker {
    int id;
    struct sg_gateway *gw;
    uv_loop_t loop;
    uv_thread_t thread;
    uv_async_t wake;       /* another thread asks this worker to stop or to reload */
    struct sg_runtime *rt; /* this worker's reference to the current runtime; only this
                            * worker's thread changes it, so taking a reference never races */
    atomic_bool reload;    /* a new runtime is published: swap it in on wake */
    struct sg_http_server *http;
    struct sg_upstream *up;
    int listen_rc; /* result of listening, read by the starting thread */
    uv_sem_t started;
    bool stopping;     /* readiness answers 503 draining from here on */
    uv_timer_t delay;  /* server.shutdown_delay_s: serving on until it fires, then the drain */
    uint64_t requests; /* handled by this worker (its own counter, no sharing) */
    uint64_t unpriced; /* answered by a deployment with no known price (cost 0) */
    struct gw_probes *probes;      /* worker 0: background health checks, or NULL */
    struct sg_redis_sync *redis;   /* worker 0: cooldowns shared through Redis, or NULL */
    struct sg_metric_shard *shard; /* this worker's metrics (record.c) */
    struct sg_otlp *otlp;          /* this worker's span exporter, or NULL */
};

struct sg_gateway {
    pthread_mutex_t rt_lock;     /* guards rt and reloads */
    struct sg_runtime *rt;       /* the current runtime (the gateway's own reference) */
    char *config_path;           /* where reloads read from; NULL when not from a file */
    struct sg_config *start_cfg; /* what the listeners, threads and store were set up from */
    bool frozen;                 /* change freeze: reloads refused unless forced */
    atomic_bool stopping;        /* sg_gateway_stop was called */
    char *refused_url;           /* where block-egress sends calls: a port that refuses */
    int refused_fd;
    struct sg_health *health; /* deployment health, shared by workers, kept across reloads */
    struct sg_gateway_options opt;
    const char *host;
    int port;
    int n_workers;
    struct sg_worker *workers;
    uint32_t drain_ms;
    uint32_t shutdown_delay_ms;
    struct gw_telemetry *tel; /* metrics, the store, the request log (record.c) */
};

/* handler.c: the HTTP handler every worker's server calls, and the auth helpers. */
void sg_gateway_handle(struct sg_http_request *req, void *worker);
bool gw_authenticate(struct sg_http_request *req, const struct sg_config *cfg);
/* The 401 for a missing or wrong key, OpenAI-shaped. */
#define GW_AUTH_MESSAGE                                                                            \
    "Incorrect API key provided. Send 'Authorization: Bearer <key>' with the gateway's master "    \
    "key."
/* The message of a 404 model_not_found, for a name (%.*s) that nothing serves. */
#define GW_MODEL_NOT_FOUND_FMT                                                                     \
    "The model `%.*s` does not exist or you do not have access to it. GET /v1/models lists the "   \
    "models this gateway serves."
/* The same for Anthropic's clients, which send x-api-key. */
#define GW_AUTH_MESSAGE_ANTHROPIC                                                                  \
    "invalid x-api-key: send the gateway's master key in x-api-key or 'Authorization: Bearer "     \
    "<key>'"
void gw_reject_auth(struct sg_http_request *req);

/* What a reload published. */
struct gw_reload {
    size_t deployments, groups;
    /* Keys the new file changes that only a restart applies (sg_config_start_keys_changed,
     * against the config the gateway started with). */
    const char *start_keys[SG_CONFIG_N_START_KEYS];
    size_t n_start_keys;
};
/* Load the config file again and publish it; `err` gets the reason on failure, and the new
 * file's warnings (one per line) on success. */
int sg_gateway_reload(struct sg_gateway *gw, bool force, struct gw_reload *out, struct sg_buf *err);
/* A reference to the current runtime (any thread). */
struct sg_runtime *sg_gateway_runtime(struct sg_gateway *gw);

/* probe.c: background health checks on one worker. */
struct gw_probes;
struct gw_probes *gw_probes_start(struct sg_worker *w, uint32_t interval_ms);
void gw_probes_stop(struct gw_probes *p);

/* admin.c: /admin/... (master key checked by the caller). */
void gw_admin(struct sg_http_request *req, struct sg_worker *w);

/* chat.c: a chat completion through the router. */
void gw_chat(struct sg_http_request *req, struct sg_worker *w);

/* record.c: the request event and the telemetry objects' lives. */
struct sg_event;
struct gw_telemetry;
/* Before the workers start: metrics, the store (writer thread, spool), the request log. */
int gw_telemetry_start(struct sg_gateway *gw);
/* The metric series of a config's deployments (new ones get theirs); NULL before telemetry
 * starts. A runtime holds and frees its own. */
struct sg_telemetry_keys *gw_telemetry_keys(struct sg_gateway *gw, const struct sg_config *cfg);
/* After the workers were joined: drain the store within drain_ms, free everything. */
void gw_telemetry_stop(struct sg_gateway *gw);
/* On a worker's loop: its metric shard and span exporter; stop calls `then(w)` once the last
 * spans went (or gave up), before the worker's upstream may be freed. */
void gw_telemetry_worker_start(struct sg_worker *w);
void gw_telemetry_worker_stop(struct sg_worker *w, void (*then)(void *ud));
/* A request's event: trace context from `traceparent`, in flight +1. */
struct sg_event *gw_event_begin(struct sg_worker *w, struct sg_http_request *req);
/* Record a request the HTTP server refused itself (malformed, too large, too slow) and give its
 * request id: the event of a model endpoint's request that never reached the handler. */
void gw_event_refusal(struct sg_worker *w, const struct sg_http_refusal *r, char request_id[33]);
/* The HTTP server's refusal hook: records the ones on model endpoints (gw_event_refusal). */
void gw_refused(const struct sg_http_refusal *r, char request_id[33], void *ud);
/* An attempt's child span; `traceparent` gets the header line to send upstream (or ""). */
int gw_event_attempt_begin(struct sg_worker *w, struct sg_event *ev, const struct sg_deployment *d,
                           uint64_t offset_us, char *traceparent, size_t tp_len);
void gw_event_attempt_end(struct sg_event *ev, int i, uint64_t offset_us, int status,
                          const char *error_type);
/* The finished event into the worker's shard, its exporter and the store (taken). */
void gw_event_record(struct sg_worker *w, struct sg_event *ev_take, const char *served_alias);
/* GET /metrics, and the store's part of /health/readiness (a JSON object). */
void gw_metrics(struct sg_http_request *req, struct sg_worker *w);
void gw_store_readiness(struct sg_gateway *gw, struct sg_buf *out);

#endif
