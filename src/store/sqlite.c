/*
 * The SQLite backend (the embedded default, `sqlite://slogate.db`). Used only from the writer
 * thread, so the connection is opened with SQLITE_OPEN_NOMUTEX.
 *
 * WAL journal with synchronous=NORMAL: a batch commit costs no fsync (the WAL is synced at
 * checkpoints), and a crash of the process loses nothing committed; a power loss can lose the
 * last commits, which is the trade every embedded request log makes. Readers (`sqlite3`,
 * reports) never block the writer. Another process holding the write lock is waited for only
 * BUSY_MS: longer, and the insert fails and the batch goes to the spool, as when the database is
 * down (a batch held in the busy handler is in no queue and no file: a SIGKILL would lose it).
 */
#include "store_int.h"

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

/* Rows per INSERT statement: one statement for many rows saves a step, a reset and the
 * statement's setup per row (measured: docs/performance.md, Telemetry). A batch's remainder goes
 * through the one-row statement. */
#define ROWS_PER_INSERT 16

/* A batch of 256 rows is about 1 ms of this thread's CPU. Where the writer shares the cores with
 * the workers, a worker woken on the writer's core waits for it: with backend.pace set, the writer
 * calls it (sched_yield) after each ROWS_PER_INSERT rows, so a request waits behind one statement
 * at most (~60 us). A yield costs nothing when no one waits; a 20 us sleep, as before, cost the
 * writer 2 us per row and a worker sharing its core more (docs/performance.md, Telemetry). */

/* The WAL is cut back to this size when a checkpoint lets it start over. It stays near 4 MiB
 * (the 1000-page auto-checkpoint) while nothing holds a checkpoint back; a reader with a long
 * transaction open (a report, a `sqlite3` shell) lets it grow, and without a limit it kept its
 * largest size on disk until the gateway stopped. Twice the usual size: no cut in steady state. */
#define WAL_LIMIT "8388608"

/* How long an insert waits for another process's write lock before the batch is spooled. */
#define BUSY_MS 250

struct sqlite_be {
    struct sg_store_backend base;
    char *path;
    sqlite3 *db;
    sqlite3_stmt *ins1, *ins_many; /* one row; ROWS_PER_INSERT rows */
};

static void set_err(char *err, size_t n, sqlite3 *db, const char *what)
{
    snprintf(err, n, "%s: %s", what, db ? sqlite3_errmsg(db) : "out of memory");
}

/* Failures no retry mends, in words that say what to do; NULL for the others. */
static const char *file_hint(sqlite3 *db)
{
    switch (db ? sqlite3_errcode(db) : SQLITE_NOMEM) {
    case SQLITE_NOTADB:
        return "point general_settings.database_url at another file, or move this one away";
    case SQLITE_CANTOPEN:
        return "check that its directory exists and that slogate may create files there";
    case SQLITE_READONLY:
    case SQLITE_PERM:
        return "slogate needs to write to the file and to its directory (for the -wal and -shm "
               "files)";
    default: return NULL;
    }
}

/* `err` (what failed) prefixed with the file, and what to do when the failure lasts. */
static void name_file(char *err, size_t n, const char *path, sqlite3 *db)
{
    char what[384];
    snprintf(what, sizeof what, "%s", err);
    const char *hint = file_hint(db);
    if (db && sqlite3_errcode(db) == SQLITE_NOTADB)
        snprintf(err, n, "%s is not an SQLite database (%s): %s", path, what, hint);
    else
        snprintf(err, n, "%s: %s%s%s", path, what, hint ? ": " : "", hint ? hint : "");
}

static int exec(sqlite3 *db, const char *sql, char *err, size_t n)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        snprintf(err, n, "%s", msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return SG_EIO;
    }
    return SG_OK;
}

/* The highest applied migration; 0 when the table does not exist. */
static int current_version(sqlite3 *db, int *version)
{
    sqlite3_stmt *st = NULL;
    *version = 0;
    int rc = sqlite3_prepare_v2(db,
                                "SELECT name FROM sqlite_master WHERE type = 'table' AND name = "
                                "'slogate_schema_migrations'",
                                -1, &st, NULL);
    if (rc != SQLITE_OK)
        return SG_EIO;
    rc = sqlite3_step(st);
    sqlite3_finalize(st);
    if (rc == SQLITE_DONE)
        return SG_OK;
    if (rc != SQLITE_ROW)
        return SG_EIO;
    if (sqlite3_prepare_v2(db, "SELECT coalesce(max(version), 0) FROM slogate_schema_migrations",
                           -1, &st, NULL) != SQLITE_OK)
        return SG_EIO;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        *version = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    return rc == SQLITE_ROW ? SG_OK : SG_EIO;
}

static int migrate(struct sqlite_be *b, char *err, size_t n)
{
    /* IMMEDIATE takes the write lock first: two processes starting at once migrate in turn. */
    if (exec(b->db, "BEGIN IMMEDIATE", err, n))
        return SG_EIO;
    int rc = exec(b->db,
                  "CREATE TABLE IF NOT EXISTS slogate_schema_migrations (version INTEGER PRIMARY "
                  "KEY, applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')))",
                  err, n);
    int version = 0;
    if (!rc && current_version(b->db, &version) != SG_OK) {
        set_err(err, n, b->db, "reading the schema version");
        rc = SG_EIO;
    }
    for (size_t i = 0; !rc && i < sg_store_n_migrations; i++) {
        const struct sg_store_migration *m = &sg_store_migrations[i];
        if (m->version <= version)
            continue;
        rc = exec(b->db, m->sqlite_sql, err, n);
        if (!rc) {
            char sql[96];
            snprintf(sql, sizeof sql, "INSERT INTO slogate_schema_migrations (version) VALUES (%d)",
                     m->version);
            rc = exec(b->db, sql, err, n);
        }
        if (!rc) {
            SG_INFO("store", "sqlite %s: applied schema migration %d", b->path, m->version);
            version = m->version;
        }
    }
    if (rc) {
        char ignore[64];
        exec(b->db, "ROLLBACK", ignore, sizeof ignore);
        return SG_EIO;
    }
    if (exec(b->db, "COMMIT", err, n))
        return SG_EIO;
    if (version > SG_STORE_SCHEMA_VERSION)
        SG_WARN("store",
                "sqlite %s has schema version %d, newer than this slogate's %d: rows are "
                "still written (migrations only add columns)",
                b->path, version, SG_STORE_SCHEMA_VERSION);
    b->base.schema_version = version;
    return SG_OK;
}

static void sq_disconnect(struct sg_store_backend *base)
{
    struct sqlite_be *b = (struct sqlite_be *)base;
    sqlite3_finalize(b->ins1);
    sqlite3_finalize(b->ins_many);
    b->ins1 = b->ins_many = NULL;
    sqlite3_close(b->db);
    b->db = NULL;
}

/* INSERT ... VALUES (?,...,?), ... for `rows` rows, kept prepared for the connection. */
static int prepare_insert(sqlite3 *db, int rows, sqlite3_stmt **out)
{
    struct sg_buf sql;
    sg_buf_init(&sql, 0);
    sg_buf_appends(&sql, "INSERT INTO slogate_requests (" SG_STORE_COLUMNS ") VALUES ");
    for (int r = 0; r < rows; r++) {
        sg_buf_appends(&sql, r ? ",(" : "(");
        for (int c = 0; c < SG_STORE_NCOLS; c++)
            sg_buf_appends(&sql, c ? ",?" : "?");
        sg_buf_appends(&sql, ")");
    }
    sg_buf_appends(&sql, " ON CONFLICT (request_id) DO NOTHING");
    int rc = sql.data ? sqlite3_prepare_v3(db, sql.data, (int)sql.len, SQLITE_PREPARE_PERSISTENT,
                                           out, NULL)
                      : SQLITE_NOMEM;
    sg_buf_dispose(&sql);
    return rc;
}

static int sq_connect(struct sg_store_backend *base, char *err, size_t n)
{
    struct sqlite_be *b = (struct sqlite_be *)base;
    if (b->db)
        return SG_OK;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    if (sqlite3_open_v2(b->path, &b->db, flags, NULL) != SQLITE_OK) {
        set_err(err, n, b->db, "opening the database");
        name_file(err, n, b->path, b->db);
        sq_disconnect(base);
        return SG_EIO;
    }
    sqlite3_busy_timeout(b->db, BUSY_MS);
    /* 4 MiB of page cache. Request ids and start times grow, so every insert lands on the right
     * edge of each b-tree (per tenant for the tenant index): few hot pages. 2 MiB and 16 MiB
     * write at the same speed; 16 MiB only kept the gateway's RSS 16 MiB higher after traffic. */
    int rc = exec(b->db,
                  "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                  "PRAGMA cache_size=-4096; PRAGMA journal_size_limit=" WAL_LIMIT,
                  err, n);
    rc = rc ? rc : migrate(b, err, n);
    if (!rc && (prepare_insert(b->db, 1, &b->ins1) != SQLITE_OK ||
                prepare_insert(b->db, ROWS_PER_INSERT, &b->ins_many) != SQLITE_OK)) {
        set_err(err, n, b->db, "preparing the insert");
        rc = SG_EIO;
    }
    if (rc) {
        name_file(err, n, b->path, b->db);
        sq_disconnect(base);
    }
    return rc;
}

/* Optional text: NULL in the table when empty, so `IS NULL` reads naturally. */
static void bind_text(sqlite3_stmt *st, int i, const char *s, bool null_if_empty)
{
    if (null_if_empty && !*s)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
}

/* Bind one row's columns from parameter `first` on. */
static int bind_event(sqlite3_stmt *st, int first, const struct sg_event *e)
{
    char ts[40];
    sg_format_utc_us(e->start_unix_us, ts, sizeof ts);
    int i = first;
    bind_text(st, i++, e->request_id, false);
    sqlite3_bind_text(st, i++, ts, -1, SQLITE_TRANSIENT);
    bind_text(st, i++, e->tenant_id, false);
    bind_text(st, i++, e->user_id, true);
    bind_text(st, i++, e->feature, true);
    bind_text(st, i++, e->alias, true);
    bind_text(st, i++, e->provider, true);
    bind_text(st, i++, e->model, true);
    bind_text(st, i++, e->deployment, true);
    bind_text(st, i++, e->region, true);
    sqlite3_bind_int(st, i++, e->status);
    bind_text(st, i++, e->error_type, true);
    sqlite3_bind_double(st, i++, e->latency_ms_total);
    if (e->ttft_ms >= 0)
        sqlite3_bind_double(st, i++, e->ttft_ms);
    else
        sqlite3_bind_null(st, i++);
    sqlite3_bind_int64(st, i++, (sqlite3_int64)e->overhead_us);
    sqlite3_bind_int(st, i++, e->retries);
    sqlite3_bind_int(st, i++, e->failover_hops);
    sqlite3_bind_int64(st, i++, e->input_tokens);
    sqlite3_bind_int64(st, i++, e->output_tokens);
    sqlite3_bind_int64(st, i++, e->cached_tokens);
    sqlite3_bind_double(st, i++, e->cost_usd);
    sqlite3_bind_int(st, i++, e->cache_hit);
    sqlite3_bind_int(st, i++, e->cache_ttl_s);
    sqlite3_bind_int(st, i++, e->stream);
    sqlite3_bind_int(st, i++, e->usage_estimated);
    return i - first == SG_STORE_NCOLS ? SG_OK : SG_EINVAL;
}

static int sq_insert(struct sg_store_backend *base, const struct sg_event *const *ev, size_t n,
                     size_t *inserted, char *err, size_t errn)
{
    struct sqlite_be *b = (struct sqlite_be *)base;
    *inserted = 0;
    if (!b->db)
        return SG_EIO;
    /* An operator deleted or replaced the file (rm slogate.db*, a rotation by rename): the open
     * connection would go on writing into the old inode, and every row from then on would be
     * gone with it. One stat(2) per batch; then the path is opened (created, migrated) again. */
    int moved = 0;
    if (sqlite3_file_control(b->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) == SQLITE_OK && moved) {
        SG_WARN("store",
                "sqlite %s was deleted or replaced while slogate had it open: writing to a "
                "new file at that path",
                b->path);
        sq_disconnect(base);
        if (sq_connect(base, err, errn) != SG_OK)
            return SG_EIO;
    }
    if (exec(b->db, "BEGIN IMMEDIATE", err, errn))
        return SG_EIO;
    size_t added = 0;
    int rc = SG_OK;
    for (size_t i = 0; i < n && !rc;) {
        size_t rows = n - i >= ROWS_PER_INSERT ? ROWS_PER_INSERT : 1;
        sqlite3_stmt *st = rows > 1 ? b->ins_many : b->ins1; /* reset after each step */
        for (size_t r = i + rows; r < n && r < i + 2 * rows; r++)
            sg_event_prefetch(ev[r]); /* the next statement's rows, while SQLite runs this one */
        for (size_t r = 0; r < rows && !rc; r++)
            rc = bind_event(st, (int)r * SG_STORE_NCOLS + 1, ev[i + r]);
        if (!rc && sqlite3_step(st) != SQLITE_DONE) {
            set_err(err, errn, b->db, "inserting requests");
            rc = SG_EIO;
        }
        if (!rc)
            added += (size_t)sqlite3_changes(b->db); /* without the request_ids already there */
        sqlite3_reset(st);
        i += rows;
        if (base->pace && rows > 1 && i < n)
            base->pace();
    }
    if (!rc && exec(b->db, "COMMIT", err, errn))
        rc = SG_EIO;
    if (rc) {
        char ignore[64];
        exec(b->db, "ROLLBACK", ignore, sizeof ignore);
        return rc;
    }
    *inserted = added;
    return SG_OK;
}

static int sq_exec_params(struct sg_store_backend *base, const char *sql, int n,
                          const char *const *params, char *err, size_t errn)
{
    struct sqlite_be *b = (struct sqlite_be *)base;
    sqlite3_stmt *st = NULL;
    if (!b->db)
        return SG_EIO;
    if (sqlite3_prepare_v2(b->db, sql, -1, &st, NULL) != SQLITE_OK) {
        set_err(err, errn, b->db, "preparing a statement");
        return SG_EIO;
    }
    /* "$1".."$n" are named parameters to SQLite, numbered in order of first use. */
    for (int i = 0; i < n; i++) {
        if (params[i])
            sqlite3_bind_text(st, i + 1, params[i], -1, SQLITE_STATIC);
        else
            sqlite3_bind_null(st, i + 1);
    }
    int rc = sqlite3_step(st) == SQLITE_DONE ? SG_OK : SG_EIO;
    if (rc)
        set_err(err, errn, b->db, "running a statement");
    sqlite3_finalize(st);
    return rc;
}

static void sq_release_memory(struct sg_store_backend *base)
{
    struct sqlite_be *b = (struct sqlite_be *)base;
    if (b->db)
        sqlite3_db_release_memory(b->db);
}

static void sq_free(struct sg_store_backend *base)
{
    struct sqlite_be *b = (struct sqlite_be *)base;
    sq_disconnect(base);
    free(b->path);
    free(b);
}

/* Before SQLite initializes: no global allocation statistics, which take a mutex on every
 * allocation (they showed in the writer's profile). Once per process. */
static void sqlite_global_config(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); /* SQLITE_MISUSE if already initialized: fine */
}

struct sg_store_backend *sg_store_sqlite_new(const char *path)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_global_config);
    struct sqlite_be *b = sg_xcalloc(1, sizeof *b);
    b->base.name = "sqlite";
    b->base.connect = sq_connect;
    b->base.insert = sq_insert;
    b->base.disconnect = sq_disconnect;
    b->base.exec_params = sq_exec_params;
    b->base.release_memory = sq_release_memory;
    b->base.free = sq_free;
    b->path = sg_xstrdup(path);
    return &b->base;
}

/* For `slogate check`: read-only, and a database that does not exist is not created. */
int sg_store_sqlite_inspect(const char *path, int *version, char *err, size_t n)
{
    *version = 0;
    struct stat st;
    if (stat(path, &st) != 0)
        return SG_OK;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        set_err(err, n, db, "opening the database");
        sqlite3_close(db);
        return SG_EIO;
    }
    sqlite3_busy_timeout(db, 2000);
    int rc = current_version(db, version);
    if (rc) {
        set_err(err, n, db, "reading the schema version");
        /* Not a database: no retry mends it (SG_EINVAL); the rest may pass (a lock, EIO). */
        if (sqlite3_errcode(db) == SQLITE_NOTADB)
            rc = SG_EINVAL;
        name_file(err, n, path, db);
    }
    sqlite3_close(db);
    return rc;
}
