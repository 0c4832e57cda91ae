/* store — private: the event queue, the spool, the migrations shared by the backends. */
#ifndef SG_STORE_INT_H
#define SG_STORE_INT_H

#include "store.h"

#include <pthread.h>
#include <stdatomic.h>

/* ---- spool.c: the append-only spool with a persisted read offset ---- */
struct sg_spool {
    char *path;
    char *pos_path;
    int fd;
    pthread_mutex_t mu;        /* appends and the truncation at the end of a replay */
    _Atomic uint64_t read_off; /* replay position (persisted in pos_path); the writer moves
                                * it, other threads only read it for stats */
    _Atomic uint64_t size;     /* file size */
    _Atomic uint64_t events;   /* lines after read_off */
    atomic_bool unsynced;      /* appended since the last sg_spool_sync */
    bool orphaned;             /* deleted under us and could not be created again (writer) */
    const char *journal_dir;   /* where the slots' crash journals live (NULL: none) */
    bool journal_kept;         /* this slot's journal could not be recovered: do not reuse it */
    struct sg_buf rd;          /* replay read buffer */
};

/* Spool files one directory can have at once (one per live process, see spool.c). */
#define SG_SPOOL_SLOTS 16

/* A line that still needs the request log tap on replay (spooled before the writer saw it). */
#define SG_SPOOL_TAP_PREFIX "{\"spool_tap\":true,"

/* Open (create) the spool in the first slot (base, base.1, ...) no other live process holds,
 * cut a torn last line, read the offset, count the lines still to replay, and take over the
 * lines of slots no live process holds. The crash journals (journal.c) in `journal_dir` of this
 * slot and of the slots taken over are appended behind their lines. */
int sg_spool_open(struct sg_spool *sp, const char *path, const char *journal_dir, char *err,
                  size_t err_len);
void sg_spool_close(struct sg_spool *sp);
/* Append whole lines (each ending in '\n') in one write; on a short write the file is cut back
 * so no half line stays behind. Thread-safe. */
int sg_spool_append(struct sg_spool *sp, const char *lines, size_t len, size_t n_events);
/* Append to `b` the line for an event the request log has seen (its stored fields). */
int sg_spool_line(const struct sg_event *ev, struct sg_buf *b);
/* Append to `b` the line for an event the request log has not seen yet (the request path's
 * overflow, a crash journal's events): replayed, it goes to the tap too. */
int sg_spool_tap_line(const struct sg_event *ev, struct sg_buf *b);
/* Make what was appended durable (fdatasync) if anything was since the last call. The writer
 * calls it once per tick, after its own appends, so lines the request path appended (queue full)
 * too reach the disk within flush_ms without the request path ever waiting on the disk. */
int sg_spool_sync(struct sg_spool *sp);
/* Read up to `max` events after the read offset. `tap[i]` says whether event i still needs the
 * tap. Lines that do not parse are skipped (and logged); `*bytes` covers them too. Returns the
 * number of events read into `out` (heap events, the caller frees them). */
size_t sg_spool_read(struct sg_spool *sp, struct sg_event **out, bool *tap, size_t max,
                     uint64_t *bytes, size_t *lines);
/* The `bytes` / `lines` read last are in the database: move the offset past them (persisted);
 * when the whole file has been replayed, truncate it to zero. */
void sg_spool_commit(struct sg_spool *sp, uint64_t bytes, size_t lines);

/* ---- journal.c: the crash journal, a copy of each event until it is written or spooled ---- */
struct sg_journal_cell;
struct sg_journal {
    char *path; /* NULL: no journal (no directory for it, or it could not be made) */
    int fd;     /* open (and flock'ed) while mapped */
    void *map;
    size_t map_len;
    struct sg_journal_cell *cells;
    _Atomic uint64_t next;     /* claim numbers; SG_JOURNAL_CLOSED while trimmed */
    _Atomic uint64_t finished; /* claims whose producer no longer touches the cells */
    _Atomic uint64_t skipped;  /* events handed over without a copy (journal full or none) */
};

/* `<dir>/slogate-<hash of the slot's real path>.journal`, or NULL (no dir, no such slot). */
char *sg_journal_path(const char *dir, const char *slot_path);
/* Make this slot's journal, empty (a dead predecessor's was recovered by sg_spool_open). Without
 * one (no dir, tmpfs full) events are handed over uncopied, with a warning. */
void sg_journal_open(struct sg_journal *j, const char *dir, const char *slot_path);
/* Copy the event into a free cell: its number (1..), or 0 when none was free. Lock-free. */
uint32_t sg_journal_put(struct sg_journal *j, const struct sg_event *ev);
#define SG_JOURNAL_CLOSED (1ull << 63)
/* The event in `cell` (0: none) is in the request log: recovered, it is not logged again. */
void sg_journal_tapped(struct sg_journal *j, uint32_t cell);
/* The event in `cell` (0: none) is in the database or the spool. */
void sg_journal_done(struct sg_journal *j, uint32_t cell);
/* While no event is in it and no producer inside: give the cells' pages back to the system (the
 * writer, once per idle spell). Producers that come meanwhile hand their event over uncopied.
 * True when the pages went back. */
bool sg_journal_trim(struct sg_journal *j);
/* Unmap; the file goes away when no cell holds an event, else it waits for the next start. */
void sg_journal_close(struct sg_journal *j);
/* Append the events a dead process's journal of `slot_path` holds to the spool, in the order
 * they were handed over, and remove it. False when they could not be appended (kept). */
bool sg_journal_recover(const char *dir, const char *slot_path, struct sg_spool *sp);
/* The events a journal's bytes hold, in claim order (heap events in a heap array, *out; with
 * `tapped`, a heap array saying which of them the request log has); 0 with `why` when the bytes
 * are not a journal of this build's layout (or, with `real`, not of that spool). Exposed for the
 * fuzz target. */
size_t sg_journal_parse(const void *data, size_t len, const char *real, struct sg_event ***out,
                        bool **tapped, char *why, size_t why_len);

/* ---- migrations (migrate.c): ordered SQL per backend ---- */
struct sg_store_migration {
    int version;
    const char *sqlite_sql;
    const char *postgres_sql;
};
extern const struct sg_store_migration sg_store_migrations[];
extern const size_t sg_store_n_migrations;

/* sg_store_inspect per backend: *version 0 when nothing exists yet; nothing is created. */
int sg_store_sqlite_inspect(const char *path, int *version, char *err, size_t n);
int sg_store_postgres_inspect(const char *conninfo, uint32_t timeout_ms, int *version, char *err,
                              size_t n);

/* The columns of the requests table up to schema 3: migration 3 copies exactly these, so it
 * stays what it was when it was applied (never change it). */
#define SG_STORE_COLUMNS_V3                                                                        \
    "request_id,start_time,tenant_id,user_id,feature,alias,provider,model,deployment,region,"      \
    "status,error_type,latency_ms_total,ttft_ms,overhead_us,retries,failover_hops,input_tokens,"   \
    "output_tokens,cached_tokens,cost_usd,cache_hit,cache_ttl_s,stream"
/* The column list of the requests table, in sg_event field order (for INSERT and COPY). */
#define SG_STORE_COLUMNS SG_STORE_COLUMNS_V3 ",usage_estimated"
#define SG_STORE_NCOLS 25

#endif
