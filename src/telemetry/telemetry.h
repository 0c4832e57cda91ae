/*
 * telemetry — the request event (DESIGN §11) and what is made of it on the request path:
 * metrics in per-worker shards (Prometheus text on scrape), OTLP/HTTP JSON spans, and the JSON
 * lines request log. The store (src/store) persists the same events.
 *
 * The request path builds one `struct sg_event` per client request; nothing it calls here does
 * I/O or takes a lock. Metric updates are relaxed atomic stores to the worker's own shard, merged
 * only when /metrics is scraped; spans are encoded into the worker's own bounded batch and sent
 * from its uv loop; the request log is written by the store's writer thread.
 */
#ifndef SG_TELEMETRY_H
#define SG_TELEMETRY_H

#include "base/base.h"

#include <stdatomic.h>
#include <uv.h>

struct sg_config;
struct sg_upstream;

/* ---- the request event ---- */

#define SG_EVENT_MAX_ATTEMPTS 8

/* One upstream attempt: a child span of the request span. Times are offsets from the request's
 * receipt, in microseconds. */
struct sg_event_attempt {
    char deployment[64];
    char provider[24];
    char model[96];          /* the provider's model id */
    char server_address[96]; /* host of the deployment's api_base */
    int server_port;
    char span_id[17]; /* 16 hex digits; sent upstream in traceparent */
    uint64_t start_us, end_us;
    int status;          /* HTTP status from the provider, 0 when none came */
    char error_type[40]; /* empty when the attempt succeeded */
    int number;          /* 1 for the request's first attempt (slots may skip some: dropped) */
};

/* One client request. Strings are NUL-terminated and truncated to fit (sg_event_set). Integer
 * fields that do not apply are 0; `ttft_ms` is negative when no byte reached the client. */
struct sg_event {
    char request_id[40];    /* primary key in the store */
    uint64_t start_unix_us; /* wall clock at receipt, UTC */
    char tenant_id[64];     /* from the key; "default" for the master key */
    char user_id[128];      /* from the key, else the request's `user` */
    char feature[64];       /* x-slogate-feature or metadata.feature */
    char alias[128];        /* the model the client asked for (a group, or unknown) */
    char provider[24];      /* of the deployment that answered, empty when none did */
    char model[96];         /* the provider's model id */
    char deployment[64];
    char region[48];
    int status;              /* what the client got; 499 when it went away */
    char error_type[40];     /* empty on success */
    double latency_ms_total; /* receipt to the last byte written */
    double ttft_ms;          /* receipt to the first byte written to the client; < 0: none */
    uint64_t overhead_us;    /* time spent in the gateway itself */
    int retries;             /* attempts after the first */
    int failover_hops;       /* tiers or fallback aliases crossed */
    int64_t input_tokens, output_tokens, cached_tokens;
    double cost_usd;
    bool cache_hit;
    int cache_ttl_s;
    bool stream;
    bool usage_estimated; /* the provider reported no usage: the tokens (and the cost) are the
                           * gateway's estimate (docs/pricing.md) */

    /* Not stored in the database; used by spans and the request log. */
    char operation[16];      /* gen_ai.operation.name: "embeddings", else "chat" (empty) */
    char cache_state[8];     /* hit | miss | stale | bypass */
    char response_model[96]; /* the model the provider says answered */
    char trace_id[33];       /* 32 hex digits; from traceparent or new */
    char span_id[17];        /* this request's span */
    char parent_span_id[17]; /* the caller's span (traceparent), empty when none */
    uint8_t trace_flags;
    int n_attempts;
    /* Attempts past SG_EVENT_MAX_ATTEMPTS that were not kept: the first ones and the latest
     * are (gw_event_attempt_begin). */
    int attempts_dropped;
    char *prompt;          /* heap, owned by the event; only with telemetry.log_prompts */
    uint32_t journal_cell; /* the store's: the crash journal cell holding a copy (0: none) */
    /* Last, and most of the event's 4 KB: a recycled event is zeroed up to here only, and each
     * slot when its attempt begins. Slots past n_attempts hold anything. */
    struct sg_event_attempt attempts[SG_EVENT_MAX_ATTEMPTS];
};

/* Ask the cache for the stored fields of an event another thread wrote (the store's writer does,
 * an event or two ahead of the one it binds: each of those lines is otherwise a wait on the
 * other core's cache). A hint only. */
static inline void sg_event_prefetch(const struct sg_event *ev)
{
    const char *p = (const char *)ev, *end = (const char *)&ev->cache_state;
    for (; p < end; p += 64)
        __builtin_prefetch(p, 0, 3);
}

/* A zeroed event on the heap with ttft_ms = -1 and trace_flags sampled. */
struct sg_event *sg_event_new(void);
/* Free an event and its prompt. NULL is fine. */
void sg_event_free(struct sg_event *ev);
/* Free the recycled events kept for reuse (sg_event_new takes them first), for when requests
 * stop coming: the pool holds up to 4 MiB after a busy spell. Any thread; returns how many. */
size_t sg_event_pool_release(void);
/* Copy `n` bytes of `s` into a fixed field of `cap` bytes, truncated on a UTF-8 boundary; a byte
 * that starts no well-formed UTF-8 sequence is stored as U+FFFD. False when it was truncated. */
bool sg_event_set(char *field, size_t cap, const char *s, size_t n);
/* The same for an identifier (tenant, user, feature): one too long keeps its start and a hash of
 * the whole (sg_id_shorten), so two long ids stay two in the store and the metrics. */
void sg_event_set_id(char *field, size_t cap, const char *s, size_t n);
static inline void sg_event_sets(char *field, size_t cap, const char *s)
{
    sg_event_set(field, cap, s, s ? strlen(s) : 0);
}
#define SG_EVENT_SET(ev, field, s, n) sg_event_set((ev)->field, sizeof((ev)->field), (s), (n))
#define SG_EVENT_SETS(ev, field, s) sg_event_sets((ev)->field, sizeof((ev)->field), (s))
#define SG_EVENT_SET_ID(ev, field, s, n) sg_event_set_id((ev)->field, sizeof((ev)->field), (s), (n))
/* A new request id: 32 lowercase hex digits, the first 12 the wall clock in milliseconds and the
 * rest random (UUIDv7's layout). Ids made later sort later, so the store's primary-key index
 * grows at its end instead of taking random inserts (measured: docs/performance.md). */
void sg_request_id(char out[33]);
/* Wall clock in microseconds since the Unix epoch. */
uint64_t sg_wall_us(void);

/* JSON encoding of an event: one object, no newline. The spool and the request log use it, so
 * decoding what was encoded gives back every stored field exactly. */
enum {
    SG_EVENT_JSON_ATTEMPTS = 1, /* add "attempts":[...] and "attempts_dropped" when some were
                                 * (the request log; a spool line the request log will read) */
    SG_EVENT_JSON_PROMPT = 2,   /* add "prompt" when the event has one (log_prompts) */
};
int sg_event_to_json(const struct sg_event *ev, unsigned flags, struct sg_buf *out);
/* Parse one line written by sg_event_to_json into `ev` (from sg_event_new or zeroed; its old
 * prompt is freed), with its attempts when it has them (deployment, status, duration, error
 * type). Unknown keys are ignored, missing ones stay zero. SG_EINVAL when it is not such an
 * object or has no request_id. */
int sg_event_from_json(const char *p, size_t n, struct sg_event *ev);

/* W3C traceparent "00-<32 hex>-<16 hex>-<2 hex>". Returns true and fills the ids when valid
 * (not all zeros, version 00 or a later one read as 00). */
bool sg_traceparent_parse(struct sg_slice h, char trace_id[33], char span_id[17], uint8_t *flags);
/* Format one, version 00, with only the flags version 00 knows (sampled, random); out >= 56
 * bytes. */
#define SG_TRACE_FLAGS_KNOWN 0x03
#define SG_TRACE_SAMPLED 0x01
void sg_traceparent_format(const char *trace_id, const char *span_id, uint8_t flags, char *out,
                           size_t n);

/* ---- metric registry: per-worker shards, merged on scrape ---- */

enum sg_metric_type { SG_METRIC_COUNTER, SG_METRIC_GAUGE, SG_METRIC_HISTOGRAM };

struct sg_metrics;      /* the registry: families, series, shards */
struct sg_metric_shard; /* one writer thread's slots */

/* A series handle: an offset into every shard's slots. */
typedef uint32_t sg_series_t;
#define SG_SERIES_NONE UINT32_MAX /* refused: updates to it are ignored */

/* Values computed at scrape time (queue depth, spool size, deployment state...). Called on the
 * scraping thread: it must be thread-safe (atomics) and cheap. NaN leaves the series out of that
 * scrape (it does not exist now: the state of a deployment a reload removed). */
typedef double (*sg_metric_fn)(void *ud);

/* A registry with `n_shards` shards (one per worker, plus any background thread that writes). */
struct sg_metrics *sg_metrics_new(size_t n_shards);
void sg_metrics_free(struct sg_metrics *m);
/* Declare a family. `buckets` (ascending upper bounds, without +Inf) only for histograms.
 * Returns its index, or SG_EINVAL for a name or type that breaks the exposition format. */
int sg_metrics_family(struct sg_metrics *m, const char *name, const char *help,
                      enum sg_metric_type type, const double *buckets, size_t n_buckets);
/* A series of a family, with labels as `{"alias", "app/chat", "deployment", "primary", NULL}`
 * (name, value pairs, NULL-terminated; values are escaped on output). Thread-safe. After the
 * freeze it takes a spare entry (a reload's new deployment) and returns SG_SERIES_NONE when
 * none is left. */
sg_series_t sg_metrics_series(struct sg_metrics *m, int family, const char *const *labels);
/* A series whose value is computed at scrape (counter or gauge families). SG_ETOOBIG when the
 * spare is used up. */
int sg_metrics_series_fn(struct sg_metrics *m, int family, const char *const *labels,
                         sg_metric_fn fn, void *ud);
/* The spare the freeze reserves for series added later (default 1024 series, 4096 slots). */
void sg_metrics_set_spare(struct sg_metrics *m, size_t series, uint32_t slots);
/* No families may be added after this; shards are allocated here, with the spare. Idempotent. */
void sg_metrics_freeze(struct sg_metrics *m);
/* Shard `i` (after freeze). Each shard has exactly one writing thread. */
struct sg_metric_shard *sg_metrics_shard(struct sg_metrics *m, size_t i);

/* Hot path: one writer per shard, so a relaxed load and a relaxed store suffice (no lock, no
 * locked instruction); a scrape on another thread reads whole values. */
void sg_metric_add(struct sg_metric_shard *s, sg_series_t series, double v);
void sg_metric_observe(struct sg_metric_shard *s, sg_series_t series, double v);

/* The Prometheus text format (version 0.0.4) of every family, shards summed. Histogram buckets
 * are cumulative and end with le="+Inf"; counters end in _total. */
int sg_metrics_render(struct sg_metrics *m, struct sg_buf *out);

/* ---- the gateway's metrics ---- */

/* Deployment state the router reports at scrape (NULL fields: healthy, no cooldown). Called
 * on the scraping thread. */
struct sg_telemetry_state_fns {
    double (*healthy)(void *ud, const char *deployment_id);    /* 1 takes traffic, 0 does not */
    double (*cooldown_s)(void *ud, const char *deployment_id); /* cooldown left, seconds */
    double (*failures)(void *ud, const char *deployment_id);   /* failed attempts so far */
    void *ud;
};

struct sg_telemetry;
struct sg_telemetry_keys;

/* The registry with the gateway's families; `n_workers` shards plus one for background threads
 * (index n_workers). Scrape-time callbacks may be added with sg_telemetry_metrics() before
 * sg_telemetry_freeze(). */
struct sg_telemetry *sg_telemetry_new(size_t n_workers);
void sg_telemetry_free(struct sg_telemetry *t);
struct sg_metrics *sg_telemetry_metrics(struct sg_telemetry *t);
void sg_telemetry_set_state_fns(struct sg_telemetry *t, const struct sg_telemetry_state_fns *f);
void sg_telemetry_freeze(struct sg_telemetry *t);
struct sg_metric_shard *sg_telemetry_shard(struct sg_telemetry *t, size_t worker);

/* The series of one config's groups and deployments, for the request path: made at start and
 * at each reload (a runtime holds its own), before or after the freeze, from any one thread at
 * a time. Series of label sets seen before are reused, so counters carry on across reloads; a
 * new deployment gets its own (within the registry's spare, else it is counted under its
 * group). Free it when no worker can use it any more; the series stay. */
struct sg_telemetry_keys *sg_telemetry_keys_new(struct sg_telemetry *t,
                                                const struct sg_config *cfg);
void sg_telemetry_keys_free(struct sg_telemetry_keys *k);

/* Count one finished request into the worker's shard: requests by alias/deployment/provider/
 * status class, failures by error type, latency/TTFT/overhead histograms, tokens, cost, cache.
 * `served_alias` is the group of the deployment that answered (NULL: none). */
void sg_telemetry_count(struct sg_telemetry *t, const struct sg_telemetry_keys *keys,
                        struct sg_metric_shard *s, const struct sg_event *ev,
                        const char *served_alias);
/* The in-flight gauge: +1 when a request starts, -1 when it is recorded. */
void sg_telemetry_in_flight(struct sg_telemetry *t, struct sg_metric_shard *s, int delta);
/* Counters the OTLP exporter and the request log update (in the shard of their thread). */
enum sg_telemetry_counter {
    SG_TC_SPANS_EXPORTED,
    SG_TC_SPANS_DROPPED_QUEUE,  /* the worker's span queue was full */
    SG_TC_SPANS_DROPPED_EXPORT, /* the collector refused them or stayed unreachable */
    SG_TC_EXPORT_RETRIES,
    SG_TC_LOG_LINES,
    SG_TC_LOG_ERRORS,
    SG_TC_LOG_ROTATIONS,
    SG_TC_COUNT
};
void sg_telemetry_bump(struct sg_telemetry *t, struct sg_metric_shard *s,
                       enum sg_telemetry_counter c, double v);
/* Error types are a closed set in metrics (anything else counts as "other"). */
const char *sg_telemetry_error_label(const char *error_type);

/* ---- OTLP/HTTP JSON traces ---- */

/* Append the request's span and one child span per upstream attempt, comma-separated, as OTLP
 * JSON span objects (GenAI conventions: name "{operation} {model}", gen_ai.* attributes). */
int sg_otlp_encode_spans(const struct sg_event *ev, struct sg_buf *out);
/* Wrap comma-separated spans into an ExportTraceServiceRequest body. */
int sg_otlp_wrap(const char *spans, size_t len, const char *service_name, struct sg_buf *out);

struct sg_otlp_options {
    const char *endpoint;     /* "http://host:4318" (adds /v1/traces) or a full .../v1/traces */
    const char *service_name; /* resource service.name */
    size_t max_spans;         /* waiting to be sent, per worker; beyond: dropped (default 4096) */
    size_t batch_spans;       /* send when this many wait (default 512) */
    uint32_t flush_ms;        /* or when the oldest waited this long (default 1000) */
    uint32_t timeout_ms;      /* per export call (default 5000) */
    int max_retries;          /* on 429/5xx/unreachable (default 3), backoff from 200 ms */
};

struct sg_otlp;

/* One exporter per worker, on the worker's loop, sending with its upstream. Counters go to
 * `shard` (the worker's) through `tel` (may be NULL in tests). */
struct sg_otlp *sg_otlp_new(uv_loop_t *loop, struct sg_upstream *up,
                            const struct sg_otlp_options *o, struct sg_telemetry *tel,
                            struct sg_metric_shard *shard);
/* Queue the spans of one request (encoded now; never blocks: a full queue drops and counts).
 * An event whose trace is not sampled (the caller's traceparent said so) has none. */
void sg_otlp_add(struct sg_otlp *x, const struct sg_event *ev);
/* Spans waiting and spans in the export in flight. */
size_t sg_otlp_pending(const struct sg_otlp *x);
/* Send what waits (one last try, no retries), then free once that call ended or `deadline_ms`
 * passed. `done` runs then (may be NULL). Call before the upstream is freed. */
void sg_otlp_close(struct sg_otlp *x, uint32_t deadline_ms, void (*done)(void *ud), void *ud);

/* ---- JSON lines request log ---- */

struct sg_reqlog;

/* Open (append) `path`; rotate to path.1, path.2 ... path.<keep> when a line would take the file
 * past `max_bytes` (0 = never). Prompts are written only when `log_prompts`. */
struct sg_reqlog *sg_reqlog_open(const char *path, uint64_t max_bytes, int keep, bool log_prompts,
                                 char *err, size_t err_len);
/* Write one line per event with a single write(2) (two around a rotation). Returns SG_OK or
 * SG_EIO. The rotation count goes into *rotated, the lines that went in into *written (all n on
 * SG_OK; a failed write may still have taken those before a rotation), when not NULL. Called from
 * one thread (the store's writer). */
int sg_reqlog_write(struct sg_reqlog *l, const struct sg_event *const *ev, size_t n, int *rotated,
                    size_t *written);
void sg_reqlog_close(struct sg_reqlog *l);

#endif
