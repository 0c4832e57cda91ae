/*
 * The writer: one thread that takes events off the queue, batches them (batch_max rows or
 * flush_ms, whichever comes first), hands each batch to the tap (the request log), and writes it
 * to the database in one transaction — or to the spool while the database cannot take it.
 *
 * Ordering rule: while the spool holds anything, new batches are appended behind it rather than
 * written directly, and the spool is replayed front to back; so rows reach the database in the
 * order the writer (or, on overflow, the request path) saw them.
 *
 * Backoff: after a failed connect or insert, nothing is tried before `next_try`; the wait
 * doubles from retry_min_ms to retry_max_ms and resets on success. Batches that arrive meanwhile
 * go straight to the spool, so a dead database costs the writer no waiting at all.
 */
#include "store_int.h"

#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <sched.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

struct sg_store {
    struct sg_store_backend *be;
    struct sg_store_options o;
    struct sg_mpmc q; /* events from the request path; the writer is the one consumer */
    struct sg_spool sp;
    struct sg_journal j; /* a copy of each event from submit until written or spooled */

    /* writer thread only */
    struct sg_event **batch;
    size_t n_batch;
    uint64_t batch_t0;        /* the batch's age counts from here: its first event came later */
    uint64_t seen_empty;      /* when the writer last found the queue empty */
    struct sg_event **rbatch; /* replay scratch */
    bool *rtap;
    uint64_t next_try;
    uint32_t backoff;
    struct sg_buf lines;
    char err[512];
    bool logged_down;    /* the outage was logged once; recovery will be */
    uint64_t last_event; /* when the queue last had one */
    bool released;       /* release_idle_memory ran since */

    pthread_t thread;
    bool has_thread;
    sem_t wake;
    atomic_bool stop;
    atomic_bool sleeping;
    uint64_t close_deadline;

    _Atomic uint64_t rows, dups, failures, overflows, lost, batches;
    _Atomic uint64_t held; /* n_batch, for stats: events taken off the queue, not written yet */
    _Atomic uint64_t lost_logged_at; /* request path: when a lost event was last logged */
    _Atomic uint64_t lost_unlogged;  /* ... and how many were lost since */
    atomic_bool degraded, connected;
    atomic_bool failing; /* the last database operation failed (not merely catching up) */
    atomic_int schema;
    pthread_mutex_t last_err_mu; /* the writer sets last_err on a failure; stats read it */
    char last_err[256];
};

static void queue_dispose(struct sg_mpmc *q)
{
    struct sg_event *ev;
    while ((ev = sg_mpmc_pop(q)))
        sg_event_free(ev);
    sg_mpmc_dispose(q);
}

static uint64_t now_ms(const struct sg_store *s)
{
    return s->o.now_ms ? s->o.now_ms() : sg_now_ms();
}

/* ---- the database side ---- */

static void db_failed(struct sg_store *s, uint64_t now, const char *what)
{
    atomic_fetch_add(&s->failures, 1);
    s->be->disconnect(s->be);
    atomic_store(&s->connected, false);
    atomic_store(&s->degraded, true);
    atomic_store(&s->failing, true);
    pthread_mutex_lock(&s->last_err_mu);
    snprintf(s->last_err, sizeof s->last_err, "%s %s failed: %.200s", s->be->name, what, s->err);
    pthread_mutex_unlock(&s->last_err_mu);
    s->next_try = now + s->backoff;
    if (!s->logged_down) {
        SG_WARN("store",
                "%s %s failed: %s; events go to the spool %s and are retried every "
                "%u..%u ms",
                s->be->name, what, s->err, s->sp.path, s->o.retry_min_ms, s->o.retry_max_ms);
        s->logged_down = true;
    } else {
        SG_DEBUG("store", "%s %s failed again: %s (next try in %u ms)", s->be->name, what, s->err,
                 s->backoff);
    }
    s->backoff = s->backoff >= s->o.retry_max_ms / 2 ? s->o.retry_max_ms : s->backoff * 2;
}

static void db_ok(struct sg_store *s)
{
    s->backoff = s->o.retry_min_ms;
    atomic_store(&s->failing, false);
    if (atomic_load(&s->degraded) && atomic_load(&s->sp.events) == 0) {
        atomic_store(&s->degraded, false);
        if (s->logged_down)
            SG_INFO("store", "%s is back: the spool is replayed, writing directly again",
                    s->be->name);
        s->logged_down = false;
    }
}

static bool ensure_connected(struct sg_store *s, uint64_t now)
{
    if (atomic_load(&s->connected))
        return true;
    if (now < s->next_try)
        return false;
    s->err[0] = '\0';
    if (s->be->connect(s->be, s->err, sizeof s->err) != SG_OK) {
        db_failed(s, now_ms(s), "connect");
        return false;
    }
    atomic_store(&s->connected, true);
    atomic_store(&s->schema, s->be->schema_version);
    SG_DEBUG("store", "%s connected, schema version %d", s->be->name, s->be->schema_version);
    return true;
}

static int db_insert(struct sg_store *s, struct sg_event *const *ev, size_t n)
{
    size_t inserted = 0;
    s->err[0] = '\0';
    s->be->pace = sg_mpmc_size(&s->q) < 2 * s->o.batch_max ? sched_yield : NULL;
    int rc = s->be->insert(s->be, (const struct sg_event *const *)ev, n, &inserted, s->err,
                           sizeof s->err);
    if (rc == SG_OK) {
        atomic_fetch_add(&s->rows, inserted);
        atomic_fetch_add(&s->dups, n - inserted);
        atomic_fetch_add(&s->batches, 1);
    }
    return rc;
}

/* ---- the spool side ---- */

/* Append the events to the spool: SG_OK (events that cannot be serialized, out of memory, are
 * counted lost), or an error with nothing appended and errno saying why. */
static int spool_try(struct sg_store *s, struct sg_event *const *ev, size_t n)
{
    sg_buf_reset(&s->lines);
    size_t ok = 0;
    for (size_t i = 0; i < n; i++)
        ok += sg_spool_line(ev[i], &s->lines) == SG_OK;
    int rc = sg_spool_append(&s->sp, s->lines.data, s->lines.len, ok);
    if (rc == SG_OK && ok < n)
        atomic_fetch_add(&s->lost, n - ok);
    return rc;
}

static void spool_lost(struct sg_store *s, size_t n, int saved_errno)
{
    atomic_fetch_add(&s->lost, n);
    SG_ERROR("store", "cannot append %zu events to the spool %s: %s; they are lost", n, s->sp.path,
             strerror(saved_errno));
}

static void spool_events(struct sg_store *s, struct sg_event *const *ev, size_t n)
{
    if (spool_try(s, ev, n) != SG_OK)
        spool_lost(s, n, errno);
}

static void write_live(struct sg_store *s, uint64_t now)
{
    if (s->o.tap) {
        s->o.tap(s->o.tap_ud, (const struct sg_event *const *)s->batch, s->n_batch);
        for (size_t i = 0; i < s->n_batch; i++) /* a kill from here on logs none twice */
            sg_journal_tapped(&s->j, s->batch[i]->journal_cell);
    }
    /* Behind a backlog, or while the database is down: keep the order, append to the spool. */
    if (atomic_load(&s->sp.events) > 0 || !ensure_connected(s, now)) {
        int rc = spool_try(s, s->batch, s->n_batch), saved = errno;
        if (rc == SG_OK) {
            /* spooled */
        } else if (atomic_load(&s->sp.events) > 0 && ensure_connected(s, now)) {
            /* The spool cannot grow (disk full) and the database is there: the batch goes in
             * now, ahead of the spool's backlog, rather than be lost. */
            if (db_insert(s, s->batch, s->n_batch) == SG_OK) {
                SG_WARN("store",
                        "the spool %s refused %zu events (%s): written to %s directly, ahead of "
                        "the %" PRIu64 " still in the spool",
                        s->sp.path, s->n_batch, strerror(saved), s->be->name,
                        (uint64_t)atomic_load(&s->sp.events));
            } else {
                db_failed(s, now_ms(s), "insert");
                spool_lost(s, s->n_batch, saved);
            }
        } else {
            spool_lost(s, s->n_batch, saved);
        }
    } else if (db_insert(s, s->batch, s->n_batch) != SG_OK) {
        db_failed(s, now_ms(s), "insert");
        spool_events(s, s->batch, s->n_batch);
    } else {
        db_ok(s);
    }
    for (size_t i = 0; i < s->n_batch; i++) {
        sg_journal_done(&s->j, s->batch[i]->journal_cell);
        sg_event_free(s->batch[i]);
    }
    s->n_batch = 0;
}

/* Replay the spool front to back until it is empty, the database fails, or `until` passes. */
static void replay(struct sg_store *s, uint64_t until)
{
    while (atomic_load(&s->sp.events) > 0) {
        uint64_t now = now_ms(s);
        if (!ensure_connected(s, now))
            return;
        uint64_t bytes = 0;
        size_t lines = 0;
        size_t n = sg_spool_read(&s->sp, s->rbatch, s->rtap, s->o.batch_max, &bytes, &lines);
        if (!lines) {
            /* Counted lines that cannot be read (an I/O error): try again later, not now. */
            s->next_try = now + s->backoff;
            return;
        }
        int rc = n ? db_insert(s, s->rbatch, n) : SG_OK;
        if (rc != SG_OK) {
            db_failed(s, now_ms(s), "insert (spool replay)");
        } else {
            /* Events spooled by the request path never met the tap: they do now, once. */
            if (s->o.tap)
                for (size_t i = 0; i < n; i++)
                    if (s->rtap[i])
                        s->o.tap(s->o.tap_ud, (const struct sg_event *const *)&s->rbatch[i], 1);
            sg_spool_commit(&s->sp, bytes, lines);
        }
        for (size_t i = 0; i < n; i++)
            sg_event_free(s->rbatch[i]);
        if (rc != SG_OK)
            return;
        db_ok(s);
        if (now_ms(s) >= until)
            return;
    }
}

/* Requests stopped: what the last busy spell left cached goes back to the system, as an
 * idle nginx sits at its start size. malloc_trim covers every thread's arena (the workers' freed
 * buffers too); it runs once per idle spell, on this thread, never on the request path. */
static void release_idle_memory(struct sg_store *s)
{
    if (s->be->release_memory && atomic_load(&s->connected))
        s->be->release_memory(s->be);
    sg_event_pool_release();
    sg_journal_trim(&s->j); /* its 2 MiB of tmpfs, touched as the claims went round */
    malloc_trim(0);
}

uint64_t sg_store_tick(struct sg_store *s, bool drain)
{
    uint64_t now = now_ms(s);
    struct sg_event *ev;
    /* Whole batches as long as the queue has them (bounded, so a stop request is seen under
     * sustained load); what is left waits for its flush time. */
    for (int round = 0; round < 64; round++) {
        while (s->n_batch < s->o.batch_max) {
            if (!(ev = sg_mpmc_pop(&s->q))) {
                s->seen_empty = now;
                break;
            }
            /* The event came after the queue was last seen empty, maybe while this thread
             * slept a whole flush_ms: its wait counts from then, not from now, or it would wait
             * up to twice flush_ms (and a SIGKILL loses what waits in memory). */
            if (!s->n_batch)
                s->batch_t0 = s->seen_empty;
            s->batch[s->n_batch++] = ev;
            s->last_event = now;
            s->released = false;
        }
        atomic_store_explicit(&s->held, s->n_batch, memory_order_relaxed);
        if (!s->n_batch ||
            !(drain || s->n_batch >= s->o.batch_max || now - s->batch_t0 >= s->o.flush_ms))
            break;
        write_live(s, now);
        atomic_store_explicit(&s->held, 0, memory_order_relaxed);
        now = now_ms(s);
    }
    /* One sync for what this tick spooled and what the request path did (queue full). */
    sg_spool_sync(&s->sp);
    if (!atomic_load(&s->connected) && now >= s->next_try && !atomic_load(&s->sp.events))
        ensure_connected(s, now); /* connect (and migrate) early, not at the first request */
    if (atomic_load(&s->sp.events) > 0 && now >= s->next_try)
        replay(s, drain ? s->close_deadline : now_ms(s) + s->o.flush_ms);

    now = now_ms(s);
    if (!s->released && !s->n_batch && now - s->last_event >= s->o.idle_release_ms) {
        release_idle_memory(s);
        s->released = true;
    }
    /* Idle: look again within flush_ms, so a partial batch never waits much past it. */
    uint64_t next = now + s->o.flush_ms;
    if (s->n_batch)
        next = SG_MIN(next, s->batch_t0 + s->o.flush_ms);
    if (sg_mpmc_size(&s->q) >= s->o.batch_max)
        next = now;
    if (atomic_load(&s->sp.events) > 0 || !atomic_load(&s->connected))
        next = SG_MIN(next, SG_MAX(s->next_try, now));
    return next;
}

/* ---- the thread ---- */

static void wait_until(struct sg_store *s, uint64_t when)
{
    uint64_t now = sg_now_ms();
    if (when <= now)
        return;
    atomic_store(&s->sleeping, true);
    /* Re-check after announcing the sleep: a producer that filled a batch before it saw the
     * flag would otherwise leave us sleeping on a full queue (seq_cst on both sides). */
    if (sg_mpmc_size(&s->q) >= s->o.batch_max || atomic_load(&s->stop)) {
        atomic_store(&s->sleeping, false);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ms = when - now;
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (sem_clockwait(&s->wake, CLOCK_MONOTONIC, &ts) != 0 && errno == EINTR)
        ;
    atomic_store(&s->sleeping, false);
}

static void *writer_main(void *arg)
{
    struct sg_store *s = arg;
    pthread_setname_np(pthread_self(), "sg-store"); /* in top -H, perf and /proc */
    while (!atomic_load(&s->stop))
        wait_until(s, sg_store_tick(s, false));
    /* Drain: everything queued goes to the database or the spool, then the spool is replayed
     * while the deadline allows. */
    do
        sg_store_tick(s, true);
    while (s->n_batch || sg_mpmc_size(&s->q));
    while (atomic_load(&s->sp.events) > 0 && sg_now_ms() < s->close_deadline) {
        uint64_t next = sg_store_tick(s, true);
        if (atomic_load(&s->sp.events) == 0 || next >= s->close_deadline)
            break;
        wait_until(s, next);
    }
    uint64_t left = atomic_load(&s->sp.events);
    if (left)
        SG_WARN("store",
                "stopping with %" PRIu64 " events in the spool %s: they are written at "
                "the next start",
                left, s->sp.path);
    return NULL;
}

/* ---- public ---- */

struct sg_store *sg_store_new(struct sg_store_backend *backend_take,
                              const struct sg_store_options *o, char *err, size_t err_len)
{
    struct sg_store *s = sg_xcalloc(1, sizeof *s);
    s->be = backend_take;
    s->o = *o;
    if (!s->o.queue_capacity)
        s->o.queue_capacity = 8192;
    if (!s->o.batch_max)
        s->o.batch_max = 256;
    if (!s->o.flush_ms)
        s->o.flush_ms = 200;
    if (!s->o.retry_min_ms)
        s->o.retry_min_ms = 250;
    if (!s->o.retry_max_ms)
        s->o.retry_max_ms = 5000;
    if (!s->o.idle_release_ms)
        s->o.idle_release_ms = 5000;
    if (s->o.retry_max_ms < s->o.retry_min_ms)
        s->o.retry_max_ms = s->o.retry_min_ms;
    s->backoff = s->o.retry_min_ms;
    atomic_init(&s->lost_logged_at, UINT64_MAX);
    s->last_event = now_ms(s); /* idle time counts from the start, not from the epoch */
    s->seen_empty = s->last_event;
    s->batch = sg_xcalloc(s->o.batch_max, sizeof *s->batch);
    s->rbatch = sg_xcalloc(s->o.batch_max, sizeof *s->rbatch);
    s->rtap = sg_xcalloc(s->o.batch_max, sizeof *s->rtap);
    sg_buf_init(&s->lines, 0);
    sg_mpmc_init(&s->q, s->o.queue_capacity);
    s->sp.fd = -1;
    if (!o->spool_path)
        snprintf(err, err_len, "no spool path");
    const char *jdir = o->journal_dir ? o->journal_dir : "/dev/shm";
    if (!o->spool_path || sg_spool_open(&s->sp, o->spool_path, jdir, err, err_len) != SG_OK) {
        if (o->spool_path)
            sg_spool_close(&s->sp);
        queue_dispose(&s->q);
        s->be->free(s->be);
        sg_buf_dispose(&s->lines);
        free(s->batch);
        free(s->rbatch);
        free(s->rtap);
        free(s);
        return NULL;
    }
    if (s->sp.journal_kept)
        SG_WARN("store", "no crash journal this time: the last one for %s is still unread",
                s->sp.path);
    else
        sg_journal_open(&s->j, jdir, s->sp.path);
    if (atomic_load(&s->sp.events))
        atomic_store(&s->degraded, true); /* catching up until the spool is replayed */
    sem_init(&s->wake, 0, 0);
    pthread_mutex_init(&s->last_err_mu, NULL);
    if (!s->o.no_thread) {
        if (pthread_create(&s->thread, NULL, writer_main, s) != 0) {
            snprintf(err, err_len, "cannot start the store writer thread");
            s->o.no_thread = true;
            sg_store_close(s, 0);
            return NULL;
        }
        s->has_thread = true;
    }
    return s;
}

void sg_store_submit(struct sg_store *s, struct sg_event *ev_take)
{
    /* A copy that survives this process until the event is written or spooled. */
    ev_take->journal_cell = sg_journal_put(&s->j, ev_take);
    if (sg_mpmc_push(&s->q, ev_take)) {
        /* Wake a sleeping writer once a whole batch waits (the flush timer covers the rest). */
        if (atomic_load(&s->sleeping) && sg_mpmc_size(&s->q) >= s->o.batch_max &&
            atomic_exchange(&s->sleeping, false))
            sem_post(&s->wake);
        return;
    }
    /* The queue is full: the writer is far behind. Spool this event now rather than block or
     * drop it; the writer replays it (and logs it) in order with the rest — with its prompt and
     * its attempts, which the request log's line lists as the live ones do. */
    atomic_fetch_add(&s->overflows, 1);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    int rc = sg_spool_tap_line(ev_take, &b);
    if (rc || sg_spool_append(&s->sp, b.data, b.len, 1) != SG_OK) {
        int saved = rc ? ENOMEM : errno;
        atomic_fetch_add(&s->lost, 1);
        /* Said about once a second, not per request: this runs on the worker serving the
         * request, at the request rate, and the log may sit on the disk that is full. */
        uint64_t now = now_ms(s), last = atomic_load(&s->lost_logged_at);
        if ((last == UINT64_MAX || now >= last + 1000) &&
            atomic_compare_exchange_strong(&s->lost_logged_at, &last, now)) {
            uint64_t n = atomic_exchange(&s->lost_unlogged, 0) + 1;
            SG_ERROR("store",
                     "queue full and the spool %s refused %" PRIu64 " event%s since the last "
                     "message (%s; the last one %s): lost, counted in "
                     "slogate_store_events_lost_total",
                     s->sp.path, n, n == 1 ? "" : "s", strerror(saved), ev_take->request_id);
        } else {
            atomic_fetch_add(&s->lost_unlogged, 1);
        }
    }
    sg_buf_dispose(&b);
    sg_journal_done(&s->j, ev_take->journal_cell);
    sg_event_free(ev_take);
}

void sg_store_close(struct sg_store *s, uint32_t deadline_ms)
{
    if (!s)
        return;
    s->close_deadline = sg_now_ms() + deadline_ms;
    if (s->has_thread) {
        atomic_store(&s->stop, true);
        sem_post(&s->wake);
        pthread_join(s->thread, NULL);
    } else if (s->sp.path) {
        /* no thread (tests): drain by hand, one pass */
        do
            sg_store_tick(s, true);
        while (s->n_batch || sg_mpmc_size(&s->q));
    }
    for (size_t i = 0; i < s->n_batch; i++)
        sg_event_free(s->batch[i]);
    sem_destroy(&s->wake);
    pthread_mutex_destroy(&s->last_err_mu);
    sg_journal_close(&s->j); /* before the spool lets go of the slot its name comes from */
    sg_spool_close(&s->sp);
    queue_dispose(&s->q);
    s->be->free(s->be);
    sg_buf_dispose(&s->lines);
    free(s->batch);
    free(s->rbatch);
    free(s->rtap);
    free(s);
}

void sg_store_stats(const struct sg_store *cs, struct sg_store_stats *out)
{
    struct sg_store *s = (struct sg_store *)cs; /* atomics only */
    memset(out, 0, sizeof *out);
    /* The writer's batch in hand too: events it took off the queue are in no database yet. */
    out->queued = sg_mpmc_size(&s->q) + atomic_load_explicit(&s->held, memory_order_relaxed);
    out->queue_capacity = s->q.mask + 1;
    uint64_t size = atomic_load(&s->sp.size), off = atomic_load(&s->sp.read_off);
    out->spool_bytes = size > off ? size - off : 0;
    out->spool_events = atomic_load(&s->sp.events);
    out->rows_written = atomic_load(&s->rows);
    out->duplicates = atomic_load(&s->dups);
    out->write_failures = atomic_load(&s->failures);
    out->overflows = atomic_load(&s->overflows);
    out->lost = atomic_load(&s->lost);
    out->unjournaled = atomic_load(&s->j.skipped);
    out->batches = atomic_load(&s->batches);
    out->degraded = atomic_load(&s->degraded);
    out->connected = atomic_load(&s->connected);
    out->failing = atomic_load(&s->failing);
    out->schema_version = atomic_load(&s->schema);
    if (out->degraded) {
        pthread_mutex_lock(&s->last_err_mu);
        snprintf(out->last_error, sizeof out->last_error, "%s", s->last_err);
        pthread_mutex_unlock(&s->last_err_mu);
    }
}

const char *sg_store_spool_path(const struct sg_store *s)
{
    return s->sp.path;
}

/* ---- URLs ---- */

struct sg_store_backend *sg_store_backend_for_url(const char *url, char *err, size_t err_len)
{
    if (url && strncmp(url, "sqlite://", 9) == 0) {
        if (!url[9]) {
            snprintf(err, err_len, "database_url sqlite:// names no file");
            return NULL;
        }
        return sg_store_sqlite_new(url + 9);
    }
    if (url && (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0))
        return sg_store_postgres_new(url, 5000);
    snprintf(err, err_len, "database_url must start with sqlite:// or postgresql://");
    return NULL;
}

static const char *num(char *buf, size_t n, double v)
{
    if (v < 0)
        return NULL;
    snprintf(buf, n, "%.17g", v);
    return buf;
}

int sg_store_record_drill(const char *database_url, const struct sg_store_drill *d, char *err,
                          size_t err_len)
{
    struct sg_store_backend *b = sg_store_backend_for_url(database_url, err, err_len);
    if (!b)
        return SG_EINVAL;
    int rc = b->connect(b, err, err_len);
    if (!rc && !b->exec_params) {
        snprintf(err, err_len, "the %s backend cannot record drills", b->name);
        rc = SG_EINVAL;
    }
    if (!rc) {
        char n[5][32];
        const char *p[] = {d->id,
                           d->kind,
                           d->started_at,
                           num(n[0], sizeof n[0], d->elapsed_s),
                           d->gateway,
                           d->alias,
                           d->deployment,
                           d->mode,
                           d->feature,
                           d->passed ? "1" : "0",
                           d->interrupted ? "1" : "0",
                           d->aborted ? "1" : "0",
                           num(n[1], sizeof n[1], d->ttr_s),
                           num(n[2], sizeof n[2], d->p95_s),
                           num(n[3], sizeof n[3], d->success_rate),
                           num(n[4], sizeof n[4], d->cost_avg_usd),
                           d->summary,
                           d->report_path,
                           d->result_json};
        rc = b->exec_params(b,
                            "INSERT INTO slogate_drills (id, kind, started_at, elapsed_s, "
                            "gateway, alias, deployment, mode, feature, passed, interrupted, "
                            "aborted, ttr_s, p95_s, success_rate, cost_avg_usd, summary, "
                            "report_path, result_json) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
                            "$9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19) "
                            "ON CONFLICT (id) DO NOTHING",
                            (int)SG_ARRAY_LEN(p), p, err, err_len);
    }
    b->disconnect(b);
    b->free(b);
    return rc;
}

int sg_store_inspect(const char *url, int *version, char *err, size_t err_len)
{
    *version = 0;
    if (url && strncmp(url, "sqlite://", 9) == 0 && url[9])
        return sg_store_sqlite_inspect(url + 9, version, err, err_len);
    if (url && (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0))
        return sg_store_postgres_inspect(url, 5000, version, err, err_len);
    snprintf(err, err_len, "database_url must start with sqlite:// or postgresql://");
    return SG_EINVAL;
}
