/*
 * store: the lock-free queue, the writer's batching (by size, by time), the spool when the
 * database is down (order, backoff, replay), crash cases (torn spool line, a crash between a
 * commit and the offset update, an ambiguous commit), overflow from the request path, and the
 * SQLite backend for real (rows, migrations, no duplicates, inspect).
 *
 * The writer runs without its thread here (sg_store_tick by hand) on an injected clock, over a
 * fake backend that keeps rows in memory with request_id as the key, so every assertion is
 * exact. Two tests use the thread and the real SQLite backend.
 */
#include "store/store.h"
#include "store/store_int.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- helpers ---- */

/* fdatasync seen through the linker (-Wl,--wrap=fdatasync in meson.build): the calls on the file
 * at `synced_path` are counted, so a test can tell that spooled events were made durable. Only
 * this program's own objects are wrapped; SQLite's library is not. */
int __real_fdatasync(int fd);
int __wrap_fdatasync(int fd);
static const char *synced_path;
static int n_synced;

int __wrap_fdatasync(int fd)
{
    char link[64], path[256];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n > 0 && synced_path) {
        path[n] = 0;
        n_synced += strcmp(path, synced_path) == 0;
    }
    return __real_fdatasync(fd);
}

/* flock seen through the linker too (-Wl,--wrap=flock): when `race_path` is set, the first lock
 * taken on that file finds it deleted just before, as when another process that adopted the
 * slot deletes the file and lets go of its lock between our open and our flock. */
int __real_flock(int fd, int op);
int __wrap_flock(int fd, int op);
static const char *race_path;

int __wrap_flock(int fd, int op)
{
    char link[64], path[256];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n > 0 && race_path) {
        path[n] = 0;
        if (strcmp(path, race_path) == 0) {
            unlink(race_path);
            race_path = NULL;
        }
    }
    return __real_flock(fd, op);
}

static uint64_t fake_now;
static uint64_t clock_fn(void)
{
    return fake_now;
}

static struct sg_event *ev_n(int i)
{
    struct sg_event *e = sg_event_new();
    char id[32];
    snprintf(id, sizeof id, "req-%04d", i);
    SG_EVENT_SETS(e, request_id, id);
    SG_EVENT_SETS(e, tenant_id, "default");
    e->start_unix_us = 1795000000000000ull + (uint64_t)i;
    e->status = 200;
    e->latency_ms_total = i;
    return e;
}

struct tmpdir {
    char dir[64];
    char spool[96];
    char db[96];
};

static void tmpdir_make(struct tmpdir *t)
{
    snprintf(t->dir, sizeof t->dir, "/tmp/sg-store-XXXXXX");
    assert_non_null(mkdtemp(t->dir));
    snprintf(t->spool, sizeof t->spool, "%s/spool.jsonl", t->dir);
    snprintf(t->db, sizeof t->db, "%s/t.db", t->dir);
}

static void tmpdir_rm(struct tmpdir *t)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", t->dir);
    assert_int_equal(system(cmd), 0);
}

/* ---- the fake backend: rows in memory, request_id unique ---- */

#define FAKE_MAX 4096
struct fake {
    struct sg_store_backend base;
    bool up;
    int ambiguous;       /* this many inserts commit, then report a failure */
    bool die_in_insert;  /* the process is killed (SIGKILL) inside its next insert */
    int paced[FAKE_MAX]; /* per insert: whether the writer set a pace for it */
    uint64_t advance_ms; /* each insert takes this long on the fake clock */
    bool connected;
    char ids[FAKE_MAX][40];
    size_t n;
    int connects, inserts, attempted_dups, releases;
};

static int fake_connect(struct sg_store_backend *b, char *err, size_t n)
{
    struct fake *f = (struct fake *)b;
    f->connects++;
    if (!f->up) {
        snprintf(err, n, "connection refused");
        return SG_ECONNECT;
    }
    f->connected = true;
    b->schema_version = SG_STORE_SCHEMA_VERSION;
    return SG_OK;
}

static bool fake_has(struct fake *f, const char *id)
{
    for (size_t i = 0; i < f->n; i++)
        if (strcmp(f->ids[i], id) == 0)
            return true;
    return false;
}

static int fake_insert(struct sg_store_backend *b, const struct sg_event *const *ev, size_t n,
                       size_t *inserted, char *err, size_t errn)
{
    struct fake *f = (struct fake *)b;
    if (f->die_in_insert)
        raise(SIGKILL);
    if (f->inserts < FAKE_MAX)
        f->paced[f->inserts] = b->pace != NULL;
    f->inserts++;
    fake_now += f->advance_ms;
    *inserted = 0;
    if (!f->up || !f->connected) {
        snprintf(err, errn, "server closed the connection");
        return SG_EIO;
    }
    for (size_t i = 0; i < n; i++) {
        if (fake_has(f, ev[i]->request_id)) {
            f->attempted_dups++;
            continue;
        }
        snprintf(f->ids[f->n++], sizeof f->ids[0], "%s", ev[i]->request_id);
        (*inserted)++;
    }
    if (f->ambiguous > 0) { /* committed, but the answer never came */
        f->ambiguous--;
        *inserted = 0;
        snprintf(errn ? err : err, errn, "connection lost during COMMIT");
        return SG_EIO;
    }
    return SG_OK;
}

static void fake_disconnect(struct sg_store_backend *b)
{
    ((struct fake *)b)->connected = false;
}

static void fake_release_memory(struct sg_store_backend *b)
{
    ((struct fake *)b)->releases++;
}

static void fake_free(struct sg_store_backend *b)
{
    (void)b; /* owned by the test */
}

static struct fake *fake_new(bool up)
{
    struct fake *f = calloc(1, sizeof *f);
    f->base.name = "fake";
    f->base.connect = fake_connect;
    f->base.insert = fake_insert;
    f->base.disconnect = fake_disconnect;
    f->base.release_memory = fake_release_memory;
    f->base.free = fake_free;
    f->up = up;
    return f;
}

/* Every id from..to-1 stored exactly once, in that order. */
static void assert_rows_in_order(struct fake *f, int from, int to)
{
    assert_int_equal(f->n, (size_t)(to - from));
    for (int i = from; i < to; i++) {
        char id[32];
        snprintf(id, sizeof id, "req-%04d", i);
        assert_string_equal(f->ids[i - from], id);
    }
}

struct tap_log {
    char ids[FAKE_MAX][40];
    int attempts[FAKE_MAX]; /* each event's attempts, as the request log would list them */
    size_t n;
};

static void tap(void *ud, const struct sg_event *const *ev, size_t n)
{
    struct tap_log *t = ud;
    for (size_t i = 0; i < n; i++) {
        t->attempts[t->n] = ev[i]->n_attempts;
        snprintf(t->ids[t->n++], sizeof t->ids[0], "%s", ev[i]->request_id);
    }
}

static struct sg_store *store_new(struct fake *f, const struct tmpdir *d, size_t qcap,
                                  struct tap_log *tl)
{
    struct sg_store_options o = {.spool_path = d->spool,
                                 .journal_dir = d->dir,
                                 .queue_capacity = qcap,
                                 .batch_max = 4,
                                 .flush_ms = 200,
                                 .retry_min_ms = 100,
                                 .retry_max_ms = 400,
                                 .no_thread = true,
                                 .now_ms = clock_fn,
                                 .tap = tl ? tap : NULL,
                                 .tap_ud = tl};
    char err[256];
    struct sg_store *s = sg_store_new(&f->base, &o, err, sizeof err);
    if (!s)
        fail_msg("%s", err);
    return s;
}

/* The start of most tests: a fresh directory, a store over a fake database that is `up` or
 * down, the clock at 0. */
static struct sg_store *start_store(struct tmpdir *d, struct fake **f, bool up)
{
    tmpdir_make(d);
    *f = fake_new(up);
    fake_now = 0;
    return store_new(*f, d, 64, NULL);
}

static void end_store(struct sg_store *s, struct fake *f, struct tmpdir *d)
{
    sg_store_close(s, 0);
    free(f);
    tmpdir_rm(d);
}

/* Events ev_n(from) .. ev_n(to - 1) handed to the store. */
static void submit_range(struct sg_store *s, int from, int to)
{
    for (int i = from; i < to; i++)
        sg_store_submit(s, ev_n(i));
}

static struct sg_store_stats stats(struct sg_store *s)
{
    struct sg_store_stats st;
    sg_store_stats(s, &st);
    return st;
}

/* ---- queue ---- */

static void test_queue_fifo_and_full(void **state)
{
    (void)state;
    struct sg_mpmc q;    /* the store's queue */
    sg_mpmc_init(&q, 3); /* rounded up to 4 */
    struct sg_event *e[5];
    for (int i = 0; i < 5; i++)
        e[i] = ev_n(i);
    for (int i = 0; i < 4; i++)
        assert_true(sg_mpmc_push(&q, e[i]));
    assert_false(sg_mpmc_push(&q, e[4]));
    assert_int_equal(sg_mpmc_size(&q), 4);
    assert_ptr_equal(sg_mpmc_pop(&q), e[0]);
    assert_true(sg_mpmc_push(&q, e[4])); /* wraps around */
    for (int i = 1; i < 5; i++)
        assert_ptr_equal(sg_mpmc_pop(&q), e[i]);
    assert_null(sg_mpmc_pop(&q));
    for (int i = 0; i < 5; i++)
        sg_event_free(e[i]);
    sg_mpmc_dispose(&q);
}

struct producer {
    struct sg_mpmc *q;
    int id;
    int pushed;
};

static void *produce(void *p)
{
    struct producer *pr = p;
    for (int i = 0; i < 20000; i++) {
        struct sg_event *e = sg_event_new();
        e->status = pr->id;
        e->retries = i;
        while (!sg_mpmc_push(pr->q, e))
            ; /* spin: the consumer drains */
        pr->pushed++;
    }
    return NULL;
}

static void test_queue_many_producers(void **state)
{
    (void)state;
    struct sg_mpmc q;
    sg_mpmc_init(&q, 256);
    struct producer p[3] = {{&q, 0, 0}, {&q, 1, 0}, {&q, 2, 0}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        pthread_create(&t[i], NULL, produce, &p[i]);
    int next[3] = {0, 0, 0}, got = 0;
    while (got < 60000) {
        struct sg_event *e = sg_mpmc_pop(&q);
        if (!e)
            continue;
        /* Each producer's events come out in the order it pushed them. */
        assert_int_equal(e->retries, next[e->status]);
        next[e->status]++;
        got++;
        sg_event_free(e);
    }
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    assert_null(sg_mpmc_pop(&q));
    sg_mpmc_dispose(&q);
}

/* ---- batching ---- */

static void test_batch_by_size_then_time(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    struct fake *f = fake_new(true);
    struct tap_log *tl = calloc(1, sizeof *tl);
    fake_now = 1000;
    struct sg_store *s = store_new(f, &d, 64, tl);
    submit_range(s, 0, 10);
    /* Two full batches of 4 go at once; 2 events wait for the flush time. */
    uint64_t next = sg_store_tick(s, false);
    sg_store_tick(s, false);
    assert_int_equal(f->n, 8);
    assert_int_equal(f->inserts, 2);
    assert_true(next <= 1000 + 200);
    fake_now = 1199;
    sg_store_tick(s, false);
    assert_int_equal(f->n, 8);
    fake_now = 1200;
    sg_store_tick(s, false);
    assert_rows_in_order(f, 0, 10);
    assert_int_equal(f->inserts, 3);
    /* The tap saw every event once, before the database. */
    assert_int_equal(tl->n, 10);
    struct sg_store_stats st = stats(s);
    assert_int_equal(st.rows_written, 10);
    assert_int_equal(st.batches, 3);
    assert_false(st.degraded);
    assert_int_equal(st.spool_events, 0);
    sg_store_close(s, 0);
    free(f);
    free(tl);
    tmpdir_rm(&d);
}

/* An event that comes while the writer sleeps waits at most flush_ms in all: the batch's age
 * counts from when the writer last found the queue empty, not from when it took the event. It
 * used to wait up to twice flush_ms (the sleep, then a whole flush interval of its own) — and a
 * SIGKILL loses what waits in memory (tests/soak found rows lost 0.36 s before the kill). */
static void test_partial_batch_waits_one_flush_interval_from_arrival(void **state)
{
    (void)state;
    struct tmpdir d;
    struct fake *f;
    struct sg_store *s = start_store(&d, &f, true);
    assert_int_equal(sg_store_tick(s, false), 200); /* nothing to do: look again at 200 */
    fake_now = 10;
    submit_range(s, 0, 1); /* arrives while the writer sleeps */
    fake_now = 200;
    sg_store_tick(s, false);
    assert_int_equal(f->n, 1); /* written after 190 ms (it used to wait until 400) */
    /* Under a steady trickle every event still goes within flush_ms of its arrival. */
    for (int i = 1; i < 6; i++) {
        fake_now = 200 + 100u * (unsigned)i;
        submit_range(s, i, i + 1);
        uint64_t next = sg_store_tick(s, false);
        assert_true(next <= fake_now + 200);
    }
    fake_now = 700; /* event 5 came at 700, event 4 at 600: its batch is due at 800 at the latest */
    sg_store_tick(s, false);
    fake_now = 800;
    sg_store_tick(s, false);
    assert_rows_in_order(f, 0, 6);
    end_store(s, f, &d);
}

/* `queued` counts the events the writer holds in a batch not written yet: readiness said
 * "queued":0 with the store ok while up to a batch of events was in no database (a drain or a
 * check that waits for 0 was told too early). */
static void test_queued_counts_the_batch_in_hand(void **state)
{
    (void)state;
    struct tmpdir d;
    struct fake *f;
    struct sg_store *s = start_store(&d, &f, true);
    submit_range(s, 0, 3);
    assert_int_equal(stats(s).queued, 3);
    sg_store_tick(s, false); /* taken into a partial batch, not written before 200 */
    assert_int_equal(f->n, 0);
    assert_int_equal(stats(s).queued, 3);
    fake_now = 200;
    sg_store_tick(s, false);
    assert_int_equal(f->n, 3);
    assert_int_equal(stats(s).queued, 0);
    end_store(s, f, &d);
}

/* Memory goes back once per idle spell: not while events come, not before idle_release_ms
 * without one, not again until the next event. */
static void test_idle_releases_memory_once(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    struct fake *f = fake_new(true);
    fake_now = 100000;
    struct sg_store *s = store_new(f, &d, 64, NULL); /* idle_release_ms: 5000 */
    sg_store_tick(s, false); /* no event yet: idle time counts from the start */
    assert_int_equal(f->releases, 0);
    submit_range(s, 0, 4);
    sg_store_tick(s, false);
    assert_int_equal(f->n, 4);
    int before = f->releases;
    assert_int_equal(before, 0); /* idle time counts from the store's start */
    fake_now = 100000 + 4999;
    sg_store_tick(s, false);
    assert_int_equal(f->releases, before);
    fake_now = 100000 + 5000;
    sg_store_tick(s, false);
    assert_int_equal(f->releases, before + 1);
    fake_now = 100000 + 60000;
    sg_store_tick(s, false);
    assert_int_equal(f->releases, before + 1);
    /* Busy again: one event every second keeps it from releasing; then idle once more. */
    for (int i = 4; i < 12; i++) {
        fake_now += 1000;
        sg_store_submit(s, ev_n(i));
        sg_store_tick(s, false);
    }
    assert_int_equal(f->releases, before + 1);
    fake_now += 200; /* the last partial batch is flushed */
    sg_store_tick(s, false);
    assert_rows_in_order(f, 0, 12);
    fake_now += 5000;
    sg_store_tick(s, false);
    assert_int_equal(f->releases, before + 2);
    end_store(s, f, &d);
}

/* ---- the database down, then back ---- */

static void test_db_down_spools_then_replays_in_order(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    struct fake *f = fake_new(false);
    struct tap_log *tl = calloc(1, sizeof *tl);
    fake_now = 5000;
    struct sg_store *s = store_new(f, &d, 64, tl);
    synced_path = d.spool;
    n_synced = 0;
    submit_range(s, 0, 6);
    sg_store_tick(s, false); /* connect fails: the full batch goes to the spool */
    assert_int_equal(f->connects, 1);
    struct sg_store_stats st = stats(s);
    assert_true(st.degraded);
    assert_int_equal(st.spool_events, 4);
    assert_int_equal(st.write_failures, 1);
    assert_int_equal(n_synced, 1); /* on disk before the events left memory, and only once */
    /* Within the backoff (100 ms) nothing is tried, and with nothing appended nothing synced. */
    fake_now = 5050;
    sg_store_tick(s, false);
    assert_int_equal(f->connects, 1);
    assert_int_equal(n_synced, 1);
    /* The 2 left over are due at 5250: behind the spool they go, then one more try (the
     * backoff has doubled to 200 ms). */
    fake_now = 5250;
    sg_store_tick(s, false);
    assert_int_equal(stats(s).spool_events, 6);
    assert_int_equal(f->connects, 2);
    fake_now = 5300;
    sg_store_tick(s, false);
    assert_int_equal(f->connects, 2);
    /* Meanwhile more requests; then the database comes back. */
    submit_range(s, 6, 9);
    f->up = true;
    fake_now = 5460;
    sg_store_tick(s, false); /* the spool is replayed; the 3 new ones wait for their time */
    assert_int_equal(f->connects, 3);
    assert_rows_in_order(f, 0, 6);
    fake_now = 5700;
    sg_store_tick(s, false);
    assert_rows_in_order(f, 0, 9);
    st = stats(s);
    assert_false(st.degraded);
    assert_int_equal(st.spool_events, 0);
    assert_int_equal(st.spool_bytes, 0);
    assert_int_equal(st.rows_written, 9);
    assert_int_equal(st.duplicates, 0);
    assert_int_equal(f->attempted_dups, 0);
    /* The request log saw each event exactly once. */
    assert_int_equal(tl->n, 9);
    sg_store_close(s, 0);
    /* The spool file is empty after a full replay. */
    struct stat sb;
    assert_int_equal(stat(d.spool, &sb), 0);
    assert_int_equal(sb.st_size, 0);
    free(f);
    free(tl);
    tmpdir_rm(&d);
}

static void test_ambiguous_commit_no_duplicate(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    struct fake *f = fake_new(true);
    f->ambiguous = 1;
    fake_now = 100;
    struct sg_store *s = store_new(f, &d, 64, NULL);
    submit_range(s, 0, 4);
    sg_store_tick(s, false); /* rows committed, failure reported: the batch is spooled */
    assert_int_equal(stats(s).spool_events, 4);
    assert_int_equal(f->n, 4);
    fake_now = 300;
    sg_store_tick(s, false); /* replay: every row is already there */
    assert_rows_in_order(f, 0, 4);
    assert_int_equal(f->attempted_dups, 4);
    struct sg_store_stats st = stats(s);
    assert_int_equal(st.duplicates, 4);
    assert_int_equal(st.spool_events, 0);
    end_store(s, f, &d);
}

/* ---- crashes ---- */

static void write_file(const char *path, const char *text)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static char *spool_line(int i)
{
    struct sg_event *e = ev_n(i);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_event_to_json(e, 0, &b);
    sg_buf_append(&b, "\n", 1);
    sg_event_free(e);
    return sg_buf_steal(&b, NULL);
}

static void test_crash_mid_append_torn_line(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    /* A previous process replayed line 0 (offset after it), appended 1 and 2, and died in the
     * middle of writing 3. */
    char *l0 = spool_line(0), *l1 = spool_line(1), *l2 = spool_line(2), *l3 = spool_line(3);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, l0);
    sg_buf_appends(&b, l1);
    sg_buf_appends(&b, l2);
    sg_buf_append(&b, l3, strlen(l3) / 2);
    write_file(d.spool, b.data);
    char pos[128], off[32];
    snprintf(pos, sizeof pos, "%s.pos", d.spool);
    snprintf(off, sizeof off, "%zu\n", strlen(l0));
    write_file(pos, off);

    struct fake *f = fake_new(true);
    fake_now = 0;
    struct sg_store *s = store_new(f, &d, 64, NULL);
    struct sg_store_stats st = stats(s);
    assert_int_equal(st.spool_events, 2); /* lines 1 and 2; the torn 3 was cut off */
    assert_true(st.degraded);             /* catching up */
    sg_store_submit(s, ev_n(4));
    sg_store_tick(s, true);
    /* Line 0 is not replayed again; 1, 2 in order, then the live 4 behind them. */
    assert_int_equal(f->n, 3);
    assert_string_equal(f->ids[0], "req-0001");
    assert_string_equal(f->ids[1], "req-0002");
    assert_string_equal(f->ids[2], "req-0004");
    assert_false(stats(s).degraded);
    sg_store_close(s, 0);
    free(f);
    free(l0);
    free(l1);
    free(l2);
    free(l3);
    sg_buf_dispose(&b);
    tmpdir_rm(&d);
}

static void test_crash_after_commit_before_offset(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    /* Lines 0..5 in the spool, offset 0, but the database already has 0..3: the previous
     * process committed a replayed chunk and died before moving the offset. */
    struct sg_buf b;
    sg_buf_init(&b, 0);
    for (int i = 0; i < 6; i++) {
        char *l = spool_line(i);
        sg_buf_appends(&b, l);
        free(l);
    }
    write_file(d.spool, b.data);
    struct fake *f = fake_new(true);
    for (int i = 0; i < 4; i++)
        snprintf(f->ids[f->n++], sizeof f->ids[0], "req-%04d", i);
    fake_now = 0;
    struct sg_store *s = store_new(f, &d, 64, NULL);
    sg_store_tick(s, false);
    assert_rows_in_order(f, 0, 6);
    struct sg_store_stats st = stats(s);
    assert_int_equal(st.rows_written, 2);
    assert_int_equal(st.duplicates, 4);
    sg_store_close(s, 0);
    sg_buf_dispose(&b);
    free(f);
    tmpdir_rm(&d);
}

static void test_offset_past_end_and_bad_line(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    /* Truncated after a full replay, died before the offset went back to 0: read as 0. And a
     * line that is not an event is skipped, not retried forever. */
    char *l0 = spool_line(0), *l1 = spool_line(1);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, l0);
    sg_buf_appends(&b, "{not json\n");
    sg_buf_appends(&b, l1);
    write_file(d.spool, b.data);
    char pos[128];
    snprintf(pos, sizeof pos, "%s.pos", d.spool);
    write_file(pos, "999999\n");
    struct fake *f = fake_new(true);
    struct sg_store *s = store_new(f, &d, 64, NULL);
    assert_int_equal(stats(s).spool_events, 3);
    sg_store_tick(s, false);
    assert_rows_in_order(f, 0, 2);
    assert_int_equal(stats(s).spool_events, 0);
    sg_store_close(s, 0);
    free(l0);
    free(l1);
    sg_buf_dispose(&b);
    free(f);
    tmpdir_rm(&d);
}

/* A `.pos` that points into the middle of a line (edited, or from another file) is not trusted:
 * the spool is replayed from its start (the key absorbs what is stored already). It used to
 * skip every line before it and the cut line too. */
static void test_offset_inside_a_line_replays_from_start(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    size_t first = 0;
    for (int i = 0; i < 4; i++) {
        char *l = spool_line(i);
        if (!i)
            first = strlen(l);
        sg_buf_appends(&b, l);
        free(l);
    }
    write_file(d.spool, b.data);
    char pos[128], off[32];
    snprintf(pos, sizeof pos, "%s.pos", d.spool);
    snprintf(off, sizeof off, "%zu\n", first + 5);
    write_file(pos, off);
    struct fake *f = fake_new(true);
    fake_now = 0;
    struct sg_store *s = store_new(f, &d, 64, NULL);
    assert_int_equal(stats(s).spool_events, 4);
    sg_store_tick(s, false);
    assert_rows_in_order(f, 0, 4);
    sg_store_close(s, 0);
    sg_buf_dispose(&b);
    free(f);
    tmpdir_rm(&d);
}

/* The offset file cannot be written (the disk is full, its directory entry taken) after a full
 * replay: a stale offset must not survive into the next start, where it pointed into the lines
 * spooled since and skipped them. */
static void test_offset_not_written_never_skips_lines(void **state)
{
    (void)state;
    struct tmpdir d;
    struct fake *f;
    struct sg_store *s = start_store(&d, &f, false);
    /* Ids 10..17, then 20..27: lines of one length, so the stale offset falls on a line end. */
    submit_range(s, 10, 18);
    sg_store_tick(s, false); /* down: 8 spooled */
    f->up = true;
    f->advance_ms = 300; /* one replayed chunk per tick */
    fake_now = 1000;
    sg_store_tick(s, false); /* 10..13 replayed, the offset moved past them */
    assert_int_equal(stats(s).spool_events, 4);
    char tmp[128];
    snprintf(tmp, sizeof tmp, "%s.pos.tmp", d.spool);
    assert_int_equal(mkdir(tmp, 0700), 0); /* from now on the offset cannot be replaced */
    fake_now = 2000;
    sg_store_tick(s, false); /* 14..17: the spool is empty and cut to zero */
    assert_int_equal(stats(s).spool_events, 0);
    f->up = false;
    submit_range(s, 20, 28);
    fake_now = 3000;
    sg_store_tick(s, false); /* down again: 20..27 spooled from offset 0 */
    assert_int_equal(stats(s).spool_events, 8);
    sg_store_close(s, 0); /* the process ends before the database is back */
    assert_int_equal(rmdir(tmp), 0);

    f->up = true;
    f->advance_ms = 0;
    s = store_new(f, &d, 64, NULL);
    assert_int_equal(stats(s).spool_events, 8);
    fake_now = 5000;
    sg_store_tick(s, false);
    assert_int_equal(f->n, 16);
    for (int i = 20; i < 28; i++) {
        char id[32];
        snprintf(id, sizeof id, "req-%04d", i);
        assert_string_equal(f->ids[i - 12], id);
    }
    end_store(s, f, &d);
}

static void test_spool_slots_and_adoption(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    /* Another live process holds the spool: this one takes path.1, and does not touch the
     * other's file. */
    int other = open(d.spool, O_RDWR | O_CREAT, 0640);
    assert_true(other >= 0);
    assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
    struct fake *f = fake_new(false);
    fake_now = 0;
    struct sg_store *s = store_new(f, &d, 64, NULL);
    char slot1[128];
    snprintf(slot1, sizeof slot1, "%s.1", d.spool);
    assert_string_equal(sg_store_spool_path(s), slot1);
    submit_range(s, 0, 4);
    sg_store_tick(s, false); /* the database is down: into path.1 */
    assert_int_equal(stats(s).spool_events, 4);
    sg_store_close(s, 0); /* this process "stops" with its events still spooled */
    close(other);         /* and the other one ends too */

    /* The next process takes the first free slot (path) and takes over path.1's lines. */
    f->up = true;
    s = store_new(f, &d, 64, NULL);
    assert_string_equal(sg_store_spool_path(s), d.spool);
    assert_int_equal(stats(s).spool_events, 4);
    struct stat sb;
    assert_int_not_equal(stat(slot1, &sb), 0); /* the extra slot is gone */
    sg_store_tick(s, false);
    assert_rows_in_order(f, 0, 4);
    sg_store_close(s, 0);

    /* Sixteen live holders: the seventeenth is refused with a message. */
    int fds[SG_SPOOL_SLOTS];
    for (int i = 0; i < SG_SPOOL_SLOTS; i++) {
        char p[140];
        if (i)
            snprintf(p, sizeof p, "%s.%d", d.spool, i);
        else
            snprintf(p, sizeof p, "%s", d.spool);
        fds[i] = open(p, O_RDWR | O_CREAT, 0640);
        assert_int_equal(flock(fds[i], LOCK_EX | LOCK_NB), 0);
    }
    struct fake *g = fake_new(true);
    struct sg_store_options o = {.spool_path = d.spool, .journal_dir = d.dir, .no_thread = true};
    char err[256];
    assert_null(sg_store_new(&g->base, &o, err, sizeof err));
    assert_non_null(strstr(err, "telemetry.spool_path"));
    for (int i = 0; i < SG_SPOOL_SLOTS; i++)
        close(fds[i]);
    free(f);
    free(g);
    tmpdir_rm(&d);
}

/* A slot's file deleted between our open and our lock (its adopter let go of it): the lock is
 * taken on the file at the path, not on the deleted one, whose lines nobody would read. */
static void test_spool_slot_deleted_before_its_lock(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    int fd = open(d.spool, O_RDWR | O_CREAT, 0640); /* the slot file exists when we open it */
    close(fd);
    struct fake *f = fake_new(false);
    fake_now = 0;
    race_path = d.spool;
    struct sg_store *s = store_new(f, &d, 64, NULL);
    assert_null(race_path); /* the race happened */
    assert_string_equal(sg_store_spool_path(s), d.spool);
    /* The file at the path is the one held: another process finds it locked, not free. */
    int other = open(d.spool, O_RDWR);
    assert_true(other >= 0);
    assert_int_not_equal(flock(other, LOCK_EX | LOCK_NB), 0);
    close(other);
    submit_range(s, 0, 4);
    sg_store_tick(s, false); /* a whole batch, the database down: into the spool */
    assert_int_equal(stats(s).spool_events, 4);
    /* The lines are in the file at the path, where a restart would find them. */
    FILE *fp = fopen(d.spool, "r");
    assert_non_null(fp);
    int lines = 0;
    for (int c; (c = fgetc(fp)) != EOF;)
        lines += c == '\n';
    fclose(fp);
    assert_int_equal(lines, 4);
    end_store(s, f, &d);
}

/* An operator empties the spool while the gateway runs (`: > slogate-spool.jsonl` to free the
 * disk): the events appended after that are replayed once the database is back. The writer read
 * at its old offset past the end, found nothing, and stayed degraded with every later event
 * spooled behind lines that were no longer there, until a restart. */
static void test_spool_truncated_while_running(void **state)
{
    (void)state;
    struct tmpdir d;
    struct fake *f;
    struct sg_store *s = start_store(&d, &f, false);
    submit_range(s, 0, 8);
    sg_store_tick(s, false); /* the database is down: 8 in the spool */
    assert_int_equal(stats(s).spool_events, 8);
    assert_int_equal(truncate(d.spool, 0), 0);
    submit_range(s, 8, 12);
    fake_now = 50;
    sg_store_tick(s, false); /* behind the spool: appended */
    f->up = true;
    for (int k = 0; k < 4; k++) {
        fake_now += 1000;
        sg_store_tick(s, false);
    }
    assert_rows_in_order(f, 8, 12);
    struct sg_store_stats st = stats(s);
    assert_int_equal(st.spool_events, 0);
    assert_false(st.degraded);
    end_store(s, f, &d);
}

/* An operator deletes the spool while the gateway runs and the database is down: it is created
 * again at its path with the events not yet replayed, so a crash or a stop before the database
 * is back leaves them where the next start finds them (they were in a deleted inode). */
static void test_spool_deleted_while_running(void **state)
{
    (void)state;
    struct tmpdir d;
    struct fake *f;
    struct sg_store *s = start_store(&d, &f, false);
    submit_range(s, 0, 4);
    sg_store_tick(s, false); /* down: 4 spooled */
    assert_int_equal(unlink(d.spool), 0);
    submit_range(s, 4, 8);
    fake_now = 50;
    sg_store_tick(s, false);
    assert_int_equal(stats(s).spool_events, 8);
    sg_store_close(s, 0); /* stops with the database still down */
    struct stat sb;
    assert_int_equal(stat(d.spool, &sb), 0);
    f->up = true;
    s = store_new(f, &d, 64, NULL);
    assert_int_equal(stats(s).spool_events, 8);
    fake_now = 1000;
    sg_store_tick(s, false);
    assert_rows_in_order(f, 0, 8);
    end_store(s, f, &d);
}

/* The spool cannot grow (disk full: here the file size limit, EFBIG) while it still holds a
 * backlog and the database is back: the batch behind the backlog is written directly, out of
 * order, rather than counted lost while the database could take it. */
static void test_spool_full_database_up_writes_directly(void **state)
{
    (void)state;
    struct tmpdir d;
    struct fake *f;
    struct sg_store *s = start_store(&d, &f, false);
    submit_range(s, 0, 4);
    sg_store_tick(s, false); /* down: 4 spooled */
    assert_int_equal(stats(s).spool_events, 4);
    struct stat sb;
    assert_int_equal(stat(d.spool, &sb), 0);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = (rlim_t)sb.st_size; /* not one byte more */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    f->up = true;
    submit_range(s, 4, 8);
    fake_now = 1000;
    sg_store_tick(s, false);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    struct sg_store_stats st = stats(s);
    assert_int_equal(st.lost, 0);
    assert_int_equal(f->n, 8);
    for (int i = 0; i < 8; i++) {
        char id[32];
        snprintf(id, sizeof id, "req-%04d", i);
        assert_true(fake_has(f, id));
    }
    assert_int_equal(st.spool_events, 0);
    end_store(s, f, &d);
}

/* ---- overflow from the request path ---- */

static void test_queue_full_spools_on_the_request_path(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    struct fake *f = fake_new(true);
    struct tap_log *tl = calloc(1, sizeof *tl);
    fake_now = 0;
    struct sg_store *s = store_new(f, &d, 4, tl);
    synced_path = d.spool;
    n_synced = 0;
    for (int i = 0; i < 10; i++) {
        struct sg_event *e = ev_n(i);
        e->prompt = sg_xstrdup("the prompt");
        e->n_attempts = 2; /* a retry: the request log lists both attempts */
        SG_EVENT_SETS(e, attempts[0].deployment, "primary");
        SG_EVENT_SETS(e, attempts[0].error_type, "failure");
        SG_EVENT_SETS(e, attempts[1].deployment, "secondary");
        sg_store_submit(s, e);
    }
    struct sg_store_stats st = stats(s);
    assert_int_equal(st.overflows, 6);
    assert_int_equal(st.spool_events, 6);
    assert_int_equal(st.queued, 4);
    assert_int_equal(st.lost, 0);
    assert_int_equal(n_synced, 0); /* the request path never waits on the disk */
    sg_store_tick(s, false);       /* the queued 4 go behind the spool, then all are replayed */
    assert_true(n_synced >= 1);    /* the writer made the request path's lines durable */
    assert_int_equal(f->n, 10);
    for (int i = 0; i < 10; i++) {
        char id[32];
        snprintf(id, sizeof id, "req-%04d", i);
        assert_true(fake_has(f, id));
    }
    /* The tap: the 4 live ones when taken off the queue, the 6 spooled ones at replay — with
     * their attempts, as the live ones (the spool line carries them). */
    assert_int_equal(tl->n, 10);
    for (size_t i = 0; i < tl->n; i++)
        assert_int_equal(tl->attempts[i], 2);
    assert_int_equal(stats(s).spool_events, 0);
    sg_store_close(s, 0);
    free(f);
    free(tl);
    tmpdir_rm(&d);
}

/* ---- the crash journal ---- */

/* A fresh directory whose spool file exists (a journal is named after the spool's real path):
 * `real` (PATH_MAX bytes) gets that path; returns the name of the spool's journal in the
 * directory itself (heap). */
static char *journal_setup(struct tmpdir *d, char *real)
{
    tmpdir_make(d);
    int fd = open(d->spool, O_RDWR | O_CREAT, 0640);
    assert_true(fd >= 0);
    close(fd);
    assert_non_null(realpath(d->spool, real));
    return sg_journal_path(d->dir, d->spool);
}

static struct sg_store *journal_store(struct fake *f, struct tmpdir *d, size_t qcap,
                                      struct tap_log *tl)
{
    struct sg_store_options o = {.spool_path = d->spool,
                                 .journal_dir = d->dir,
                                 .queue_capacity = qcap,
                                 .batch_max = 4,
                                 .flush_ms = 200,
                                 .no_thread = true,
                                 .now_ms = clock_fn,
                                 .tap = tl ? tap : NULL,
                                 .tap_ud = tl};
    char err[256];
    struct sg_store *s = sg_store_new(&f->base, &o, err, sizeof err);
    if (!s)
        fail_msg("%s", err);
    return s;
}

/* A child process that runs a store over `d`, hands it events 0..n-1 with a tick after
 * `tick_after` of them (the whole batches go to its database, the rest stays in its memory:
 * the writer's batch and the queue), and is then killed with SIGKILL. With `logged`, it has a
 * request log, and the kill comes inside its first insert: that batch is logged, not written. */
static void child_killed_holding(struct tmpdir *d, int n, int tick_after, bool logged)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        struct fake *cf = fake_new(true);
        cf->die_in_insert = logged;
        struct tap_log *tl = logged ? calloc(1, sizeof *tl) : NULL;
        struct sg_store *cs = journal_store(cf, d, 64, tl);
        submit_range(cs, 0, tick_after);
        sg_store_tick(cs, false);
        submit_range(cs, tick_after, n);
        raise(SIGKILL);
        _exit(1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

/* What a killed process held in memory — the writer's partial batch and the queue — is in the
 * next start's spool, in the order it was handed over, and reaches the database and the request
 * log; what it had written is not replayed. Its journal is gone once recovered, and a clean
 * stop leaves none behind. */
static void test_journal_recovers_what_a_killed_process_held(void **state)
{
    (void)state;
    struct tmpdir d;
    char real[PATH_MAX];
    char *jpath = journal_setup(&d, real);
    child_killed_holding(&d, 11, 10, false); /* 0-7 written; 8, 9 in the batch; 10 in the queue */
    struct stat sb;
    assert_int_equal(stat(jpath, &sb), 0); /* the killed process's journal */

    struct fake *f = fake_new(true);
    struct tap_log *tl = calloc(1, sizeof *tl);
    fake_now = 0;
    struct sg_store *s = journal_store(f, &d, 64, tl);
    assert_int_equal(stats(s).spool_events, 3);
    sg_store_tick(s, false);
    assert_rows_in_order(f, 8, 11);
    assert_int_equal(tl->n, 3); /* the request log gets them too */
    assert_string_equal(tl->ids[0], "req-0008");
    assert_int_equal(stats(s).spool_events, 0);

    /* This process's journal holds what it has not written yet, and a clean stop, which
     * writes everything, removes it. */
    submit_range(s, 20, 22);
    assert_int_equal(stat(jpath, &sb), 0);
    sg_store_close(s, 0);
    assert_int_not_equal(stat(jpath, &sb), 0);
    assert_int_equal(f->n, 5);
    free(jpath);
    free(f);
    free(tl);
    tmpdir_rm(&d);
}

/* Killed between logging a batch and writing it: the next start writes that batch to the
 * database but does not log it again; what was never logged is logged, once. */
static void test_journal_a_logged_event_is_not_logged_again(void **state)
{
    (void)state;
    struct tmpdir d;
    char real[PATH_MAX];
    char *jpath = journal_setup(&d, real);
    child_killed_holding(&d, 6, 6, true); /* 0-3 logged, killed writing them; 4, 5 queued */

    struct fake *f = fake_new(true);
    struct tap_log *tl = calloc(1, sizeof *tl);
    fake_now = 0;
    struct sg_store *s = journal_store(f, &d, 64, tl);
    assert_int_equal(stats(s).spool_events, 6);
    sg_store_tick(s, false);
    assert_rows_in_order(f, 0, 6);
    assert_int_equal(tl->n, 2);
    assert_string_equal(tl->ids[0], "req-0004");
    assert_string_equal(tl->ids[1], "req-0005");
    sg_store_close(s, 0);
    free(jpath);
    free(f);
    free(tl);
    tmpdir_rm(&d);
}

/* A process that dies in an extra slot (another held the first): the next start takes that
 * slot over — its spooled lines, then what its journal held. */
static void test_journal_of_an_adopted_slot(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    int other = open(d.spool, O_RDWR | O_CREAT, 0640);
    assert_int_equal(flock(other, LOCK_EX | LOCK_NB), 0);
    child_killed_holding(&d, 6, 4, false); /* in slot 1: 0-3 written, 4 and 5 held */
    close(other);

    struct fake *f = fake_new(true);
    fake_now = 0;
    struct sg_store *s = journal_store(f, &d, 64, NULL);
    assert_string_equal(sg_store_spool_path(s), d.spool);
    assert_int_equal(stats(s).spool_events, 2);
    sg_store_tick(s, false);
    assert_rows_in_order(f, 4, 6);
    sg_store_close(s, 0);
    free(f);
    tmpdir_rm(&d);
}

/* More events waiting than the journal has cells (the writer thousands behind): the rest are
 * handed over uncopied and counted; all are still written, and once the writer caught up the
 * journal copies again. */
static void test_journal_full_counts_uncopied_events(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    struct fake *f = fake_new(true);
    fake_now = 0;
    struct sg_store *s = journal_store(f, &d, 4096, NULL);
    submit_range(s, 0, 2100);
    assert_int_equal(stats(s).unjournaled, 2100 - 2048);
    while (stats(s).queued)
        sg_store_tick(s, true);
    assert_int_equal(f->n, 2100);
    submit_range(s, 2100, 2101);
    assert_int_equal(stats(s).unjournaled, 2100 - 2048);
    sg_store_close(s, 0);
    free(f);
    tmpdir_rm(&d);
}

/* A journal file as journal.c lays it out: the header (this layout unless `schema` says
 * otherwise, for the spool at `spool`), then one FULL cell holding request id `id`. The bytes are
 * returned (2049 KiB) and written to `path`. */
static char *journal_bytes(const char *path, uint32_t schema, const char *spool, const char *id)
{
    char *bytes = calloc(2049, 1024);
    memcpy(bytes, "SGJRNL1", 8);
    uint32_t hdr[4] = {1024, 2048, (uint32_t)offsetof(struct sg_event, cache_state), schema};
    memcpy(bytes + 8, hdr, sizeof hdr);
    snprintf(bytes + 24, 1000, "%s", spool);
    uint64_t full = 2;
    memcpy(bytes + 1024, &full, sizeof full);
    snprintf(bytes + 1024 + 16, 40, "%s", id);
    FILE *fp = fopen(path, "wb");
    assert_non_null(fp);
    assert_int_equal(fwrite(bytes, 1024, 2049, fp), 2049);
    fclose(fp);
    return bytes;
}

/* A journal written by a build with another event layout, or for another spool, is set aside
 * (never misread into rows); no directory means no journal, and nothing breaks. */
static void test_journal_foreign_or_none(void **state)
{
    (void)state;
    struct tmpdir d;
    char real[PATH_MAX];
    char *jpath = journal_setup(&d, real);
    char *bytes = journal_bytes(jpath, 999, "", "req-0001");
    struct sg_event **ev = NULL;
    char why[256];
    assert_int_equal(sg_journal_parse(bytes, 2049 * 1024, NULL, &ev, NULL, why, sizeof why), 0);
    assert_non_null(strstr(why, "another event layout"));
    free(bytes);
    bytes = journal_bytes(jpath, SG_STORE_SCHEMA_VERSION, "/elsewhere/spool", "req-0001");
    assert_int_equal(sg_journal_parse(bytes, 2049 * 1024, d.spool, &ev, NULL, why, sizeof why), 0);
    assert_non_null(strstr(why, "another spool"));
    assert_int_equal(sg_journal_parse(bytes, 2049 * 1024, NULL, &ev, NULL, why, sizeof why), 1);
    assert_string_equal(ev[0]->request_id, "req-0001");
    sg_event_free(ev[0]);
    free(ev);
    free(bytes);

    struct fake *f = fake_new(true);
    fake_now = 0;
    struct sg_store *s = journal_store(f, &d, 64, NULL);
    assert_int_equal(stats(s).spool_events, 0);
    sg_store_close(s, 0);
    struct stat sb;
    assert_int_not_equal(stat(jpath, &sb), 0);

    struct sg_store_options o = {
        .spool_path = d.spool, .journal_dir = "", .no_thread = true, .now_ms = clock_fn};
    char err[256];
    s = sg_store_new(&f->base, &o, err, sizeof err);
    assert_non_null(s);
    submit_range(s, 0, 3);
    assert_int_equal(stats(s).unjournaled, 3);
    sg_store_close(s, 0);
    assert_int_equal(f->n, 3);
    free(jpath);
    free(f);
    tmpdir_rm(&d);
}

/* The journal's own lock: a file at this spool's journal name that a live process holds (two
 * containers sharing /dev/shm and a spool path) is neither recovered nor overwritten; this
 * process runs without one. Once that process is gone, the next start recovers its events. */
static void test_journal_held_by_a_live_process_is_left_alone(void **state)
{
    (void)state;
    struct tmpdir d;
    char real[PATH_MAX];
    char *jpath = journal_setup(&d, real);
    free(journal_bytes(jpath, SG_STORE_SCHEMA_VERSION, real, "req-0042"));
    int holder = open(jpath, O_RDWR);
    assert_int_equal(flock(holder, LOCK_EX | LOCK_NB), 0);

    struct fake *f = fake_new(true);
    fake_now = 0;
    struct sg_store *s = journal_store(f, &d, 64, NULL);
    assert_int_equal(stats(s).spool_events, 0);
    submit_range(s, 0, 2);
    assert_int_equal(stats(s).unjournaled, 2);
    sg_store_close(s, 0);
    struct stat sb;
    assert_int_equal(stat(jpath, &sb), 0);
    assert_int_equal(sb.st_size, 2049 * 1024);
    close(holder);

    s = journal_store(f, &d, 64, NULL);
    assert_int_equal(stats(s).spool_events, 1);
    sg_store_tick(s, false);
    assert_true(fake_has(f, "req-0042"));
    sg_store_close(s, 0);
    free(jpath);
    free(f);
    tmpdir_rm(&d);
}

/* A journal file another user owns (/dev/shm is everyone's): neither read — it could hold rows
 * nobody answered — nor written, since they could read the events. */
static void test_journal_of_another_user_is_left_alone(void **state)
{
    (void)state;
    struct tmpdir d;
    char real[PATH_MAX];
    char *jpath = journal_setup(&d, real);
    free(journal_bytes(jpath, SG_STORE_SCHEMA_VERSION, real, "req-0666"));
    chmod(jpath, 0666);
    if (chown(jpath, 65534, 65534) != 0) { /* not root: no other user to give it to */
        free(jpath);
        tmpdir_rm(&d);
        skip();
    }
    struct fake *f = fake_new(true);
    fake_now = 0;
    struct sg_store *s = journal_store(f, &d, 64, NULL);
    assert_int_equal(stats(s).spool_events, 0);
    submit_range(s, 0, 2);
    assert_int_equal(stats(s).unjournaled, 2);
    sg_store_close(s, 0);
    assert_false(fake_has(f, "req-0666"));
    struct stat sb;
    assert_int_equal(stat(jpath, &sb), 0);
    assert_int_equal(sb.st_uid, 65534);
    assert_int_equal(sb.st_size, 2049 * 1024);
    free(jpath);
    free(f);
    tmpdir_rm(&d);
}

/* Idle, the journal gives its pages back (tmpfs keeps every page a claim touched until then):
 * only when no event is in it and no producer inside it (a claim not finished); afterwards it
 * copies events again as before. */
static void test_journal_trimmed_when_idle(void **state)
{
    (void)state;
    struct stat sb;
    if (stat("/dev/shm", &sb) != 0)
        skip();
    struct tmpdir d;
    char real[PATH_MAX];
    free(journal_setup(&d, real)); /* this journal lives in /dev/shm, as by default */
    struct sg_journal j;
    sg_journal_open(&j, "/dev/shm", d.spool);
    assert_non_null(j.path);
    struct sg_event *e = ev_n(1);
    for (int i = 0; i < 600; i++)
        sg_journal_done(&j, sg_journal_put(&j, e));
    assert_int_equal(stat(j.path, &sb), 0);
    assert_true(sb.st_blocks * 512 >= 600 * 1024); /* 600 cells touched */

    uint32_t held = sg_journal_put(&j, e); /* an event not written yet */
    assert_false(sg_journal_trim(&j));
    sg_journal_done(&j, held);
    atomic_fetch_add(&j.next, 1); /* a producer that claimed and is still copying */
    assert_false(sg_journal_trim(&j));
    atomic_fetch_add(&j.finished, 1); /* ... done */
    assert_true(sg_journal_trim(&j));
    assert_int_equal(stat(j.path, &sb), 0);
    assert_true(sb.st_blocks * 512 <= 8 * 1024);
    assert_int_equal(atomic_load(&j.next) & SG_JOURNAL_CLOSED, 0);

    /* Copies again, and what it holds is read back at a recovery. */
    assert_int_not_equal(sg_journal_put(&j, e), 0);
    assert_int_equal(atomic_load(&j.skipped), 0);
    struct sg_event **ev = NULL;
    char why[256];
    assert_int_equal(sg_journal_parse(j.map, j.map_len, real, &ev, NULL, why, sizeof why), 1);
    assert_string_equal(ev[0]->request_id, "req-0001");
    sg_event_free(ev[0]);
    free(ev);
    sg_event_free(e);
    sg_journal_close(&j); /* one cell FULL: kept for a next start, which this test is */
    struct fake *f = fake_new(true);
    fake_now = 0;
    struct sg_store_options o = {
        .spool_path = d.spool, .journal_dir = "/dev/shm", .no_thread = true, .now_ms = clock_fn};
    char err[256];
    struct sg_store *s = sg_store_new(&f->base, &o, err, sizeof err);
    assert_non_null(s);
    assert_int_equal(stats(s).spool_events, 1);
    sg_store_close(s, 0);
    assert_true(fake_has(f, "req-0001"));
    free(f);
    tmpdir_rm(&d);
}

/* The disk is full and the queue too: every request's event is lost, and counted, but the log
 * says so about once a second, not once per request (a line written by the worker that serves
 * the request, onto a disk that is full, at the request rate). */
static void test_overflow_lost_logged_not_per_event(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    struct fake *f = fake_new(true);
    fake_now = 0;
    struct sg_store *s = store_new(f, &d, 2, NULL);
    int pfd[2];
    assert_int_equal(pipe(pfd), 0);
    fflush(stderr);
    int saved_err = dup(2);
    assert_int_equal(dup2(pfd[1], 2), 2);
    sg_log_set_level(SG_LOG_ERROR);
    struct rlimit old, lim;
    assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
    lim = old;
    lim.rlim_cur = 0; /* the spool (empty) cannot grow */
    void (*prev)(int) = signal(SIGXFSZ, SIG_IGN);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    for (int i = 0; i < 202; i++)
        sg_store_submit(s, ev_n(i)); /* 2 queued, 200 refused by the spool */
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    signal(SIGXFSZ, prev);
    sg_log_set_level(SG_LOG_OFF);
    fflush(stderr);
    dup2(saved_err, 2);
    close(saved_err);
    close(pfd[1]);
    char buf[65536];
    size_t got = 0;
    ssize_t r;
    while ((r = read(pfd[0], buf + got, sizeof buf - 1 - got)) > 0)
        got += (size_t)r;
    close(pfd[0]);
    buf[got] = 0;
    int lines = 0;
    for (char *p = buf; (p = strstr(p, "lost")); p++)
        lines++;
    assert_int_equal(stats(s).lost, 200);
    assert_true(lines >= 1);
    assert_true(lines <= 2);
    end_store(s, f, &d);
}

/* Lines the request path spooled (queue full) are synced by the writer's next tick even when the
 * writer itself appends nothing: here its batch is not due yet. */
static void test_request_path_spool_synced_by_writer(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    struct fake *f = fake_new(true);
    fake_now = 0;
    struct sg_store *s = store_new(f, &d, 2, NULL);
    synced_path = d.spool;
    n_synced = 0;
    for (int i = 0; i < 3; i++)
        sg_store_submit(s, ev_n(i)); /* 2 queued, 1 spooled by the request path */
    assert_int_equal(stats(s).overflows, 1);
    assert_int_equal(n_synced, 0);
    sg_store_tick(s, false); /* the 2 wait for their flush time (200 ms); the spool is synced */
    assert_int_equal(n_synced, 1);
    sg_store_tick(s, false);
    assert_int_equal(n_synced, 1); /* nothing new: no second sync */
    fake_now = 300;
    sg_store_tick(s, false);
    assert_int_equal(f->n, 3);
    end_store(s, f, &d);
}

/* ---- SQLite for real ---- */

static int64_t sql_int(const char *db, const char *sql)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_prepare_v2(h, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    int64_t v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

/* The writer paces an insert while it keeps up (fewer than two batches wait behind it), and
 * writes straight through when behind. */
static void test_writer_paces_only_while_it_keeps_up(void **state)
{
    (void)state;
    struct tmpdir d;
    struct fake *f;
    struct sg_store *s = start_store(&d, &f, true);
    submit_range(s, 0, 13); /* batches of 4: 9 wait behind the first, 5 behind the second */
    sg_store_tick(s, false);
    sg_store_tick(s, false);
    sg_store_tick(s, false);
    assert_int_equal(f->inserts, 3);
    assert_int_equal(f->paced[0], 0);
    assert_int_equal(f->paced[1], 1);
    assert_int_equal(f->paced[2], 1);
    end_store(s, f, &d);
}

/* The writer's pace, counted: what a paced insert calls between its statements. */
static int paces;
static int count_pace(void)
{
    paces++;
    return 0;
}

/* With pace set the SQLite writer calls it after each 16-row statement but the last: 49 times for
 * 800 rows. Without it the batch runs straight through. Either way every row is there once. */
#define PACED_ROWS 800
static void test_sqlite_paced_insert(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    char url[128], err[256];
    snprintf(url, sizeof url, "sqlite://%s", d.db);
    struct sg_store_backend *be = sg_store_backend_for_url(url, err, sizeof err);
    assert_non_null(be);
    assert_int_equal(be->connect(be, err, sizeof err), SG_OK);
    struct sg_event **ev = calloc(2 * PACED_ROWS, sizeof *ev);
    for (int i = 0; i < 2 * PACED_ROWS; i++)
        ev[i] = ev_n(i);
    for (int k = 0; k < 2; k++) {
        be->pace = k == 0 ? count_pace : NULL;
        paces = 0;
        size_t inserted = 0;
        assert_int_equal(be->insert(be, (const struct sg_event *const *)ev + k * PACED_ROWS,
                                    PACED_ROWS, &inserted, err, sizeof err),
                         SG_OK);
        assert_int_equal(inserted, PACED_ROWS);
        assert_int_equal(paces, k == 0 ? PACED_ROWS / 16 - 1 : 0);
    }
    be->free(be);
    assert_int_equal(sql_int(d.db, "SELECT count(DISTINCT request_id) FROM slogate_requests"),
                     2 * PACED_ROWS);
    for (int i = 0; i < 2 * PACED_ROWS; i++)
        sg_event_free(ev[i]);
    free(ev);
    tmpdir_rm(&d);
}

static void test_sqlite_rows_migrations_inspect(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    char url[128], err[256];
    snprintf(url, sizeof url, "sqlite://%s", d.db);
    int version = -1;
    /* Nothing there yet: version 0, and inspecting creates nothing. */
    assert_int_equal(sg_store_inspect(url, &version, err, sizeof err), SG_OK);
    assert_int_equal(version, 0);
    struct stat sb;
    assert_int_not_equal(stat(d.db, &sb), 0);

    struct sg_store_backend *be = sg_store_backend_for_url(url, err, sizeof err);
    assert_non_null(be);
    struct sg_store_options o = {
        .spool_path = d.spool, .journal_dir = d.dir, .batch_max = 64, .flush_ms = 20};
    struct sg_store *s = sg_store_new(be, &o, err, sizeof err);
    assert_non_null(s);
    for (int i = 0; i < 500; i++) {
        struct sg_event *e = ev_n(i);
        if (i == 7) {
            SG_EVENT_SETS(e, region, "eu");
            SG_EVENT_SETS(e, error_type, "timeout");
            e->ttft_ms = 12.5;
            e->cache_hit = true;
            e->cost_usd = 0.125;
            e->usage_estimated = true;
        }
        sg_store_submit(s, e);
    }
    /* The same ids again (a replay after an ambiguous commit): no new rows. */
    submit_range(s, 0, 50);
    sg_store_close(s, 5000);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM slogate_requests"), 500);
    assert_int_equal(sql_int(d.db, "SELECT count(DISTINCT request_id) FROM slogate_requests"), 500);
    assert_int_equal(sql_int(d.db, "SELECT max(version) FROM slogate_schema_migrations"),
                     SG_STORE_SCHEMA_VERSION);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM slogate_requests WHERE region IS NULL"),
                     499);
    assert_int_equal(sql_int(d.db, "SELECT cache_hit + (ttft_ms = 12.5) + (cost_usd = 0.125) + "
                                   "(error_type = 'timeout') + usage_estimated FROM "
                                   "slogate_requests WHERE request_id = 'req-0007'"),
                     5);
    assert_int_equal(sql_int(d.db, "SELECT sum(usage_estimated) FROM slogate_requests"), 1);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM slogate_requests WHERE start_time = "
                                   "'2026-11-18T11:06:40.000003Z' AND request_id = 'req-0003'"),
                     1);
    assert_int_equal(sg_store_inspect(url, &version, err, sizeof err), SG_OK);
    assert_int_equal(version, SG_STORE_SCHEMA_VERSION);

    /* Reopening runs no migration twice. */
    be = sg_store_backend_for_url(url, err, sizeof err);
    assert_int_equal(be->connect(be, err, sizeof err), SG_OK);
    assert_int_equal(be->schema_version, SG_STORE_SCHEMA_VERSION);
    /* One insert of 40 rows (two 16-row statements and 8 single ones): 490..529, so 10 are
     * there already, and 520 twice within one statement; the count of new rows is exact. */
    struct sg_event *evs[40];
    for (int i = 0; i < 40; i++)
        evs[i] = ev_n(i == 39 ? 520 : 490 + i);
    size_t inserted = 0;
    assert_int_equal(
        be->insert(be, (const struct sg_event *const *)evs, 40, &inserted, err, sizeof err), SG_OK);
    assert_int_equal(inserted, 29);
    for (int i = 0; i < 40; i++)
        sg_event_free(evs[i]);
    be->free(be);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM slogate_requests"), 529);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM slogate_schema_migrations"),
                     SG_STORE_SCHEMA_VERSION);

    assert_null(sg_store_backend_for_url("mysql://x", err, sizeof err));
    assert_non_null(strstr(err, "sqlite:// or postgresql://"));
    tmpdir_rm(&d);
}

/* An SQLite database as an older slogate left it: migrations 1..version applied and recorded. */
static sqlite3 *sqlite_at_version(const char *path, int version)
{
    sqlite3 *h;
    assert_int_equal(sqlite3_open(path, &h), SQLITE_OK);
    assert_int_equal(sqlite3_exec(h,
                                  "CREATE TABLE slogate_schema_migrations (version INTEGER "
                                  "PRIMARY KEY, applied_at TEXT NOT NULL DEFAULT 'x')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    for (int i = 0; i < version; i++) {
        assert_int_equal(sqlite3_exec(h, sg_store_migrations[i].sqlite_sql, NULL, NULL, NULL),
                         SQLITE_OK);
        char sql[96];
        snprintf(sql, sizeof sql, "INSERT INTO slogate_schema_migrations (version) VALUES (%d)",
                 sg_store_migrations[i].version);
        assert_int_equal(sqlite3_exec(h, sql, NULL, NULL, NULL), SQLITE_OK);
    }
    return h;
}

/* A database made by an older slogate (schema 2: a rowid table, two indexes) is migrated with
 * its rows: keyed by request_id WITHOUT ROWID, the start_time index only. */
static void test_sqlite_migration_3_keeps_rows(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    sqlite3 *h = sqlite_at_version(d.db, 2);
    assert_int_equal(sqlite3_exec(h,
                                  "INSERT INTO slogate_requests (request_id, start_time, "
                                  "tenant_id, status, latency_ms_total, cost_usd) VALUES "
                                  "('old-1', '2026-11-01T00:00:00.000000Z', 't', 200, 1.5, "
                                  "0.25), ('old-2', '2026-11-02T00:00:00.000000Z', 't', 502, "
                                  "9, 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);

    char url[128], err[256];
    snprintf(url, sizeof url, "sqlite://%s", d.db);
    struct sg_store_backend *be = sg_store_backend_for_url(url, err, sizeof err);
    assert_int_equal(be->connect(be, err, sizeof err), SG_OK);
    assert_int_equal(be->schema_version, SG_STORE_SCHEMA_VERSION);
    const struct sg_event *one[1];
    struct sg_event *e = ev_n(1);
    one[0] = e;
    size_t added = 0;
    assert_int_equal(be->insert(be, one, 1, &added, err, sizeof err), SG_OK);
    assert_int_equal(added, 1);
    be->free(be);
    sg_event_free(e);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM slogate_requests"), 3);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM slogate_requests WHERE request_id = "
                                   "'old-1' AND cost_usd = 0.25 AND status = 200"),
                     1);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM sqlite_master WHERE name = "
                                   "'slogate_requests' AND sql LIKE '%WITHOUT ROWID'"),
                     1);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM sqlite_master WHERE type = 'index' AND "
                                   "tbl_name = 'slogate_requests' AND name NOT LIKE "
                                   "'sqlite_autoindex%'"),
                     1);
    assert_int_equal(sql_int(d.db, "SELECT max(version) FROM slogate_schema_migrations"),
                     SG_STORE_SCHEMA_VERSION);
    tmpdir_rm(&d);
}

/* A database at schema 3 (made by the slogate before usage estimates) gets migration 4: the
 * usage_estimated column, its rows kept and read as reported usage (0); new rows say whether
 * their usage was estimated. */
static void test_sqlite_migration_4_keeps_rows(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    sqlite3 *h = sqlite_at_version(d.db, 3);
    assert_int_equal(sqlite3_exec(h,
                                  "INSERT INTO slogate_requests (request_id, start_time, "
                                  "tenant_id, status, latency_ms_total, input_tokens, "
                                  "output_tokens, cost_usd) VALUES ('old-1', "
                                  "'2026-11-01T00:00:00.000000Z', 't', 200, 1.5, 12, 7, 0.25)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(h);

    char url[128], err[256];
    snprintf(url, sizeof url, "sqlite://%s", d.db);
    int version = -1;
    assert_int_equal(sg_store_inspect(url, &version, err, sizeof err), SG_OK);
    assert_int_equal(version, 3);
    struct sg_store_backend *be = sg_store_backend_for_url(url, err, sizeof err);
    assert_int_equal(be->connect(be, err, sizeof err), SG_OK);
    assert_int_equal(be->schema_version, 4);
    const struct sg_event *two[2];
    struct sg_event *est = ev_n(1), *rep = ev_n(2);
    est->usage_estimated = true;
    two[0] = est;
    two[1] = rep;
    size_t added = 0;
    assert_int_equal(be->insert(be, two, 2, &added, err, sizeof err), SG_OK);
    assert_int_equal(added, 2);
    be->free(be);
    sg_event_free(est);
    sg_event_free(rep);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM slogate_requests"), 3);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM slogate_requests WHERE request_id = "
                                   "'old-1' AND input_tokens = 12 AND output_tokens = 7 AND "
                                   "cost_usd = 0.25 AND usage_estimated = 0"),
                     1);
    assert_int_equal(sql_int(d.db, "SELECT usage_estimated FROM slogate_requests WHERE "
                                   "request_id = 'req-0001'"),
                     1);
    assert_int_equal(sql_int(d.db, "SELECT usage_estimated FROM slogate_requests WHERE "
                                   "request_id = 'req-0002'"),
                     0);
    /* Still keyed WITHOUT ROWID, one index. */
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM sqlite_master WHERE name = "
                                   "'slogate_requests' AND sql LIKE '%WITHOUT ROWID'"),
                     1);
    assert_int_equal(sql_int(d.db, "SELECT max(version) FROM slogate_schema_migrations"), 4);
    assert_int_equal(sg_store_inspect(url, &version, err, sizeof err), SG_OK);
    assert_int_equal(version, 4);
    tmpdir_rm(&d);
}

/* An unusable database path: requests still recorded in the spool, replayed by the next
 * process once the path works. */
static void test_sqlite_unusable_then_next_start(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    char url[160], err[256];
    snprintf(url, sizeof url, "sqlite://%s/missing-dir/t.db", d.dir);
    struct sg_store_options o = {.spool_path = d.spool,
                                 .journal_dir = d.dir,
                                 .batch_max = 16,
                                 .flush_ms = 10,
                                 .retry_min_ms = 10,
                                 .retry_max_ms = 20};
    struct sg_store *s =
        sg_store_new(sg_store_backend_for_url(url, err, sizeof err), &o, err, sizeof err);
    submit_range(s, 0, 40);
    sg_store_close(s, 200);
    char dir[128];
    snprintf(dir, sizeof dir, "%s/missing-dir", d.dir);
    assert_int_equal(mkdir(dir, 0700), 0);
    s = sg_store_new(sg_store_backend_for_url(url, err, sizeof err), &o, err, sizeof err);
    struct sg_store_stats st;
    sg_store_stats(s, &st);
    assert_int_equal(st.spool_events, 40);
    sg_store_close(s, 5000);
    char db[160];
    snprintf(db, sizeof db, "%s/t.db", dir);
    assert_int_equal(sql_int(db, "SELECT count(*) FROM slogate_requests"), 40);
    tmpdir_rm(&d);
}

/* A store over the real SQLite backend at `db`, driven by hand on the fake clock. */
static struct sg_store *sqlite_store(const struct tmpdir *d)
{
    char url[160], err[256];
    snprintf(url, sizeof url, "sqlite://%s", d->db);
    struct sg_store_options o = {.spool_path = d->spool,
                                 .journal_dir = d->dir,
                                 .batch_max = 4,
                                 .flush_ms = 200,
                                 .retry_min_ms = 100,
                                 .retry_max_ms = 400,
                                 .no_thread = true,
                                 .now_ms = clock_fn};
    struct sg_store *s =
        sg_store_new(sg_store_backend_for_url(url, err, sizeof err), &o, err, sizeof err);
    if (!s)
        fail_msg("%s", err);
    return s;
}

/* An operator deletes the SQLite file (rm slogate.db*) while the gateway runs: the next batch
 * goes to a new file at that path, not into the deleted one, where every later row was lost. */
static void test_sqlite_file_deleted_while_running(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    fake_now = 1000;
    struct sg_store *s = sqlite_store(&d);
    submit_range(s, 0, 4);
    sg_store_tick(s, false);
    assert_int_equal(stats(s).rows_written, 4);
    const char *suffix[] = {"", "-wal", "-shm"};
    for (int k = 0; k < 3; k++) {
        char p[128];
        snprintf(p, sizeof p, "%s%s", d.db, suffix[k]);
        unlink(p);
    }
    submit_range(s, 4, 8);
    sg_store_tick(s, false);
    submit_range(s, 8, 12);
    fake_now += 1000; /* past any backoff */
    sg_store_tick(s, false);
    sg_store_close(s, 0);
    struct stat sb;
    assert_int_equal(stat(d.db, &sb), 0);
    assert_int_equal(sql_int(d.db, "SELECT count(*) FROM slogate_requests"), 8);
    assert_int_equal(sql_int(d.db, "SELECT min(request_id) = 'req-0004' FROM slogate_requests"), 1);
    tmpdir_rm(&d);
}

static off_t file_size(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 ? sb.st_size : -1;
}

/* A reader that keeps a transaction open (a report, a `sqlite3` shell left open) stops
 * checkpoints from going past it, so the WAL grows under constant writes. Once it lets go, the
 * WAL goes back to a bounded size; it kept its largest size on disk for as long as the gateway
 * ran. */
static void test_sqlite_wal_shrinks_after_a_long_reader(void **state)
{
    (void)state;
    struct tmpdir d;
    tmpdir_make(&d);
    char url[128], err[256], wal[128];
    snprintf(url, sizeof url, "sqlite://%s", d.db);
    snprintf(wal, sizeof wal, "%s-wal", d.db);
    struct sg_store_backend *be = sg_store_backend_for_url(url, err, sizeof err);
    assert_int_equal(be->connect(be, err, sizeof err), SG_OK);
    sqlite3 *reader;
    assert_int_equal(sqlite3_open(d.db, &reader), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(reader, "BEGIN; SELECT count(*) FROM slogate_requests", NULL, NULL, NULL),
        SQLITE_OK);
    enum { BATCH = 256 };
    struct sg_event *ev[BATCH];
    int next = 0;
    for (int round = 0; round < 400 && file_size(wal) < 16 << 20; round++) {
        for (int i = 0; i < BATCH; i++)
            ev[i] = ev_n(next++);
        size_t added = 0;
        assert_int_equal(
            be->insert(be, (const struct sg_event *const *)ev, BATCH, &added, err, sizeof err),
            SG_OK);
        for (int i = 0; i < BATCH; i++)
            sg_event_free(ev[i]);
    }
    assert_true(file_size(wal) >= 16 << 20); /* held back by the reader */
    assert_int_equal(sqlite3_exec(reader, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(reader);
    for (int round = 0; round < 8; round++) {
        for (int i = 0; i < BATCH; i++)
            ev[i] = ev_n(next++);
        size_t added = 0;
        assert_int_equal(
            be->insert(be, (const struct sg_event *const *)ev, BATCH, &added, err, sizeof err),
            SG_OK);
        for (int i = 0; i < BATCH; i++)
            sg_event_free(ev[i]);
    }
    assert_true(file_size(wal) <= 8 << 20);
    be->free(be);
    tmpdir_rm(&d);
}

int main(void)
{
    sg_log_set_level(SG_LOG_OFF);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_queue_fifo_and_full),
        cmocka_unit_test(test_queue_many_producers),
        cmocka_unit_test(test_batch_by_size_then_time),
        cmocka_unit_test(test_partial_batch_waits_one_flush_interval_from_arrival),
        cmocka_unit_test(test_queued_counts_the_batch_in_hand),
        cmocka_unit_test(test_idle_releases_memory_once),
        cmocka_unit_test(test_db_down_spools_then_replays_in_order),
        cmocka_unit_test(test_ambiguous_commit_no_duplicate),
        cmocka_unit_test(test_crash_mid_append_torn_line),
        cmocka_unit_test(test_crash_after_commit_before_offset),
        cmocka_unit_test(test_offset_past_end_and_bad_line),
        cmocka_unit_test(test_offset_inside_a_line_replays_from_start),
        cmocka_unit_test(test_offset_not_written_never_skips_lines),
        cmocka_unit_test(test_spool_slots_and_adoption),
        cmocka_unit_test(test_spool_slot_deleted_before_its_lock),
        cmocka_unit_test(test_spool_truncated_while_running),
        cmocka_unit_test(test_spool_deleted_while_running),
        cmocka_unit_test(test_spool_full_database_up_writes_directly),
        cmocka_unit_test(test_queue_full_spools_on_the_request_path),
        cmocka_unit_test(test_request_path_spool_synced_by_writer),
        cmocka_unit_test(test_overflow_lost_logged_not_per_event),
        cmocka_unit_test(test_journal_recovers_what_a_killed_process_held),
        cmocka_unit_test(test_journal_a_logged_event_is_not_logged_again),
        cmocka_unit_test(test_journal_of_an_adopted_slot),
        cmocka_unit_test(test_journal_full_counts_uncopied_events),
        cmocka_unit_test(test_journal_foreign_or_none),
        cmocka_unit_test(test_journal_held_by_a_live_process_is_left_alone),
        cmocka_unit_test(test_journal_trimmed_when_idle),
        cmocka_unit_test(test_journal_of_another_user_is_left_alone),
        cmocka_unit_test(test_sqlite_rows_migrations_inspect),
        cmocka_unit_test(test_writer_paces_only_while_it_keeps_up),
        cmocka_unit_test(test_sqlite_paced_insert),
        cmocka_unit_test(test_sqlite_migration_3_keeps_rows),
        cmocka_unit_test(test_sqlite_migration_4_keeps_rows),
        cmocka_unit_test(test_sqlite_unusable_then_next_start),
        cmocka_unit_test(test_sqlite_file_deleted_while_running),
        cmocka_unit_test(test_sqlite_wal_shrinks_after_a_long_reader),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
