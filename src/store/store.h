/*
 * store — request events into SQLite (the embedded default) or PostgreSQL, without ever making
 * the request path wait, and without losing or duplicating an event when the database is down.
 *
 *   request path ── sg_store_submit ──▶ bounded lock-free queue ──▶ writer thread
 *                                            │ full                      │ batch (size or time)
 *                                            ▼                           ▼
 *                                      spool (append)  ◀── db down ── INSERT ... ON CONFLICT
 *                                            │                           ▲   (request_id) DO
 * NOTHING └──── replayed in order ────┘   when the db is back
 *
 * The spool is a local append-only file of JSON lines with a persisted read offset. A batch is
 * written to the database in one transaction; request_id is the primary key and every insert
 * ignores rows already there, so replaying a batch twice (a crash between commit and offset
 * update, an ambiguous commit) never duplicates a row.
 *
 * Threads: sg_store_submit may be called from any thread (lock-free; only the overflow path,
 * when the queue is full, takes the spool's mutex and writes a line). Everything else runs on
 * the writer thread or before it starts / after it stopped.
 */
#ifndef SG_STORE_H
#define SG_STORE_H

#include "base/base.h"
#include "telemetry/telemetry.h"

struct sg_store;

/* The current schema version (the highest migration). */
#define SG_STORE_SCHEMA_VERSION 4

/* What a backend implements; the writer calls it from its thread only. Each call gets an error
 * buffer for a message (no secrets: never the URL's password). */
struct sg_store_backend {
    const char *name; /* "sqlite" | "postgres" | a test's own */
    /* Connect (or reconnect) and apply pending migrations. */
    int (*connect)(struct sg_store_backend *b, char *err, size_t err_len);
    /* Insert the events in one transaction, ignoring request_ids already stored. `*inserted`
     * gets the number of new rows. On failure nothing was committed, or it is unknown. */
    int (*insert)(struct sg_store_backend *b, const struct sg_event *const *ev, size_t n,
                  size_t *inserted, char *err, size_t err_len);
    /* Drop the connection after a failure (the next connect starts afresh). */
    void (*disconnect)(struct sg_store_backend *b);
    /* Run one statement whose parameters are $1..$n, passed as text (NULL is SQL NULL); both
     * dialects read that placeholder form. For the rare rows outside the request log (drill
     * results). */
    int (*exec_params)(struct sg_store_backend *b, const char *sql, int n,
                       const char *const *params, char *err, size_t err_len);
    /* Give back the memory the connection caches (its page cache) while no rows come. May be
     * NULL. */
    void (*release_memory)(struct sg_store_backend *b);
    void (*free)(struct sg_store_backend *b);
    int schema_version; /* after connect */
    /* Set by the writer before each insert: NULL when it is behind; else what a backend that
     * spends long on the writer's own CPU (SQLite) calls between statements, so that a worker
     * waiting for this core runs first (sched_yield; tests count the calls). */
    int (*pace)(void);
};

/* Backends. The URL forms: sqlite://PATH (relative to the working directory, or absolute with
 * sqlite:///abs/path), postgresql://user:pass@host:port/db?... (any libpq URI). */
struct sg_store_backend *sg_store_sqlite_new(const char *path);
struct sg_store_backend *sg_store_postgres_new(const char *conninfo, uint32_t timeout_ms);
/* The backend a database_url names; NULL with a message for an unknown scheme. */
struct sg_store_backend *sg_store_backend_for_url(const char *url, char *err, size_t err_len);

/* Report the schema version of the database at `url` without creating or migrating anything
 * (for `slogate check`): *version is 0 when the database or the schema does not exist yet.
 * Returns SG_OK, or an error with a message when the database cannot be reached. */
int sg_store_inspect(const char *url, int *version, char *err, size_t err_len);

struct sg_store_options {
    const char *spool_path; /* required: the append-only spool file (+ ".pos") */
    size_t queue_capacity;  /* events; rounded up to a power of two (default 8192) */
    size_t batch_max;       /* rows per transaction (default 256) */
    uint32_t flush_ms;      /* a partial batch waits at most this long (default 200) */
    uint32_t retry_min_ms;  /* backoff after a failure: doubles from here ... (default 250) */
    uint32_t retry_max_ms;  /* ... up to here (default 5000) */
    /* After this long with no event, the memory kept for the next busy spell goes back to the
     * system once: the connection's page cache, the recycled events, malloc's free pages
     * (default 5000) */
    uint32_t idle_release_ms;
    /* Called on the writer thread with each batch as it is taken from the queue (the request
     * log), before the database sees it. May be NULL. */
    void (*tap)(void *ud, const struct sg_event *const *ev, size_t n);
    void *tap_ud;
    /* Where the crash journal lives: a tmpfs directory, so the copies cost the request path no
     * I/O (default /dev/shm; "" = none: a SIGKILL loses what the writer holds in memory). */
    const char *journal_dir;
    /* Tests drive the writer by hand with sg_store_tick instead of a thread. */
    bool no_thread;
    uint64_t (*now_ms)(void); /* clock; default sg_now_ms */
};

/* Counters for metrics and /health/readiness; read from any thread. */
struct sg_store_stats {
    uint64_t queued; /* events not written nor spooled yet: the queue and the writer's batch */
    uint64_t queue_capacity;
    uint64_t spool_bytes; /* not yet replayed */
    uint64_t spool_events;
    uint64_t rows_written;   /* new rows committed */
    uint64_t duplicates;     /* rows the database already had (replays) */
    uint64_t write_failures; /* failed transactions or connects */
    uint64_t overflows;      /* events spooled by the request path because the queue was full */
    uint64_t lost;           /* events that could not even be spooled (disk full...) */
    uint64_t unjournaled;    /* events handed over with no crash journal copy (journal full) */
    uint64_t batches;
    bool degraded; /* a database operation failed and the spool is not replayed yet */
    bool connected;
    bool failing;         /* the last database operation failed (degraded, not catching up) */
    char last_error[256]; /* while degraded: the last failure, "<backend> <what> failed: ..." */
    int schema_version;
};

/* Create a store over a backend (taken) and start its writer thread (unless no_thread). The
 * spool is opened now: a torn last line from a crash is cut off, and what is left will be
 * replayed first. Returns NULL with a message when the spool cannot be opened. */
struct sg_store *sg_store_new(struct sg_store_backend *backend_take,
                              const struct sg_store_options *o, char *err, size_t err_len);
/* Hand over one event (taken). Never blocks: when the queue is full the event is appended to
 * the spool at once, and counted (overflows). */
void sg_store_submit(struct sg_store *s, struct sg_event *ev_take);
/* Stop: the writer drains the queue (to the database or the spool), tries to replay the spool
 * until `deadline_ms` has passed, then ends. Frees everything. */
void sg_store_close(struct sg_store *s, uint32_t deadline_ms);
void sg_store_stats(const struct sg_store *s, struct sg_store_stats *out);
/* The spool file this process uses (its slot, see spool.c). */
const char *sg_store_spool_path(const struct sg_store *s);
/* One step of the writer (the thread calls this in a loop; tests call it by hand). Takes what
 * is queued, writes a batch when it is full or flush_ms old or `drain` is set, retries the
 * spool when its backoff expired. Returns the time (sg_store_options.now_ms) it wants to run
 * again. */
uint64_t sg_store_tick(struct sg_store *s, bool drain);

/* A finished drill or trial (slogate drill / trial): one row of slogate_drills, so reports and
 * the dashboard can list past drills. Numbers < 0 are stored as NULL (not measured). */
struct sg_store_drill {
    const char *id;         /* "<kind>-<started_at>": unique per run */
    const char *kind;       /* "drill" | "trial" */
    const char *started_at; /* RFC 3339 UTC */
    double elapsed_s;
    const char *gateway, *alias;
    const char *deployment; /* the primary broken, or the candidate tried */
    const char *mode;       /* revoke-key | block-egress | ttft; NULL for a trial */
    const char *feature;    /* NULL when none */
    bool passed, interrupted, aborted;
    double ttr_s, p95_s, success_rate, cost_avg_usd;
    const char *summary;     /* the three summary lines */
    const char *report_path; /* the markdown report as written, or NULL */
    const char *result_json; /* the whole JSON report */
};

/* Connect to `database_url` (migrating it), insert the row (a second insert of the same id is
 * ignored) and disconnect. Runs on the caller's thread; returns SG_OK or an error with a
 * message. */
int sg_store_record_drill(const char *database_url, const struct sg_store_drill *d, char *err,
                          size_t err_len);

#endif
