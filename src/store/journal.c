/*
 * The crash journal: a copy of every event from the moment the request path hands it to the
 * store until it is in the database or the spool, kept in shared memory that outlives the
 * process (a file on tmpfs, /dev/shm by default). A SIGKILL, an abort or the OOM killer used to
 * lose what the writer held in memory (up to one flush interval of answered requests); the next
 * start now finds those events here and appends them to the spool, from where they reach the
 * database like any spooled event. The ones that did reach it before the kill are absorbed by
 * request_id.
 *
 * One journal per spool slot (so per live process), named after the slot's real path. Cell 0
 * is the header; cells 1..N hold one event each: a state word, a claim number (the replay
 * order) and the event's stored fields (struct sg_event up to cache_state) byte for byte. The
 * header records that layout; a journal from a build with another layout is set aside with a
 * warning rather than misread.
 *
 * A cell goes FREE (0) -> BUSY (a producer won it with a compare-and-swap and is copying) ->
 * FULL (release) [-> TAPPED once the request log has the event] -> FREE when the writer has the
 * event in the database or the spool. A recovered TAPPED event goes to the database, not to the
 * request log a second time. Producers take claim numbers with fetch_add and try the cell a
 * number maps to; after a few occupied cells the event goes on without a copy (counted: the
 * writer is thousands of events behind). FREE is zero, so a file fresh from ftruncate is an
 * empty journal, and nothing on the request path does I/O: tmpfs pages are memory. Idle, the
 * writer punches the cells' pages out (sg_journal_trim) once it has proved no producer is
 * inside.
 *
 * /dev/shm is every user's: a journal file this user does not own is never read nor written.
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define CELL_BYTES 1024
#define CELLS 2048 /* 2 MiB: more than the queue holds while the writer keeps up (a power of 2) */
#define EVENT_BYTES offsetof(struct sg_event, cache_state)
#define MAGIC "SGJRNL1"
#define CLAIM_TRIES 4

enum { CELL_FREE = 0, CELL_BUSY = 1, CELL_FULL = 2, CELL_TAPPED = 3 };

struct sg_journal_cell {
    _Atomic uint64_t state;
    uint64_t seq; /* claim number: replay order */
    unsigned char ev[CELL_BYTES - 16];
};
_Static_assert(sizeof(struct sg_journal_cell) == CELL_BYTES, "a cell is 1 KiB");
_Static_assert(EVENT_BYTES <= sizeof(((struct sg_journal_cell *)0)->ev),
               "the event's stored fields fit a cell");

struct header {
    char magic[8];
    uint32_t cell_bytes, cells, event_bytes, schema;
    char spool[CELL_BYTES - 24]; /* the slot's real path: a name collision is not misread */
};
_Static_assert(sizeof(struct header) == CELL_BYTES, "the header is cell 0");

char *sg_journal_path(const char *dir, const char *slot_path)
{
    char real[PATH_MAX];
    if (!dir || !*dir || !realpath(slot_path, real))
        return NULL;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
    for (const char *p = real; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ull;
    return sg_xasprintf("%s/slogate-%016" PRIx64 ".journal", dir, h);
}

static void header_init(struct header *h, const char *real)
{
    memset(h, 0, sizeof *h);
    memcpy(h->magic, MAGIC, sizeof MAGIC);
    h->cell_bytes = CELL_BYTES;
    h->cells = CELLS;
    h->event_bytes = (uint32_t)EVENT_BYTES;
    h->schema = SG_STORE_SCHEMA_VERSION;
    memcpy(h->spool, real, SG_MIN(strlen(real), sizeof h->spool - 1)); /* zeroed: terminated */
}

/* A string field as the request path leaves them: NUL-terminated UTF-8. */
static void text(char *f, size_t cap)
{
    char tmp[256];
    f[cap - 1] = '\0';
    size_t n = strlen(f);
    if (sg_utf8_check(f, n) != n && cap <= sizeof tmp) {
        memcpy(tmp, f, n + 1);
        sg_event_set(f, cap, tmp, n);
    }
}

/* An event from a FULL cell, or NULL for one without a request id. Its strings are cut at their
 * last byte and made UTF-8 whatever the cell holds, doubles that are not finite read as 0 and
 * unsigned counts stop at INT64_MAX: a journal is a file someone could have edited, and what it
 * yields must be a line the spool reads back (the fuzz target checks it). */
static struct sg_event *event_from(const unsigned char *bytes)
{
    struct sg_event *e = sg_event_new();
    memcpy(e, bytes, EVENT_BYTES);
#define TEXT(f) text(e->f, sizeof e->f)
    TEXT(request_id), TEXT(tenant_id), TEXT(user_id), TEXT(feature), TEXT(alias);
    TEXT(provider), TEXT(model), TEXT(deployment), TEXT(region), TEXT(error_type);
#undef TEXT
    if (!e->request_id[0]) {
        sg_event_free(e);
        return NULL;
    }
    e->start_unix_us = SG_MIN(e->start_unix_us, (uint64_t)INT64_MAX);
    e->overhead_us = SG_MIN(e->overhead_us, (uint64_t)INT64_MAX);
    double *d[] = {&e->latency_ms_total, &e->ttft_ms, &e->cost_usd};
    for (size_t i = 0; i < SG_ARRAY_LEN(d); i++)
        if (!isfinite(*d[i]))
            *d[i] = 0;
    /* bools are bytes here: anything but 0 is true, as C would read it after a cast */
    unsigned char *b[] = {(unsigned char *)&e->cache_hit, (unsigned char *)&e->stream,
                          (unsigned char *)&e->usage_estimated};
    for (size_t i = 0; i < SG_ARRAY_LEN(b); i++)
        *b[i] = *b[i] != 0;
    return e;
}

struct claimed {
    uint64_t seq;
    const unsigned char *ev;
    bool tapped;
};

static int by_seq(const void *a, const void *b)
{
    uint64_t x = ((const struct claimed *)a)->seq, y = ((const struct claimed *)b)->seq;
    return x < y ? -1 : x > y;
}

size_t sg_journal_parse(const void *data, size_t len, const char *real, struct sg_event ***out,
                        bool **tapped, char *why, size_t why_len)
{
    *out = NULL;
    if (tapped)
        *tapped = NULL;
    why[0] = '\0';
    const struct header *h = data;
    if (len < sizeof *h || memcmp(h->magic, MAGIC, sizeof MAGIC) != 0) {
        snprintf(why, why_len, "not a slogate journal");
        return 0;
    }
    if (h->cell_bytes != CELL_BYTES || h->event_bytes != EVENT_BYTES ||
        h->schema != SG_STORE_SCHEMA_VERSION) {
        snprintf(why, why_len,
                 "written by a slogate with another event layout (schema %" PRIu32 ", %" PRIu32
                 "-byte events; this one: %d, %zu)",
                 h->schema, h->event_bytes, SG_STORE_SCHEMA_VERSION, (size_t)EVENT_BYTES);
        return 0;
    }
    if (real && strncmp(h->spool, real, sizeof h->spool - 1) != 0) {
        snprintf(why, why_len, "written for another spool (%.200s)", h->spool);
        return 0;
    }
    size_t cells = SG_MIN((size_t)h->cells, len / CELL_BYTES - 1);
    const struct sg_journal_cell *c =
        (const struct sg_journal_cell *)((const char *)data + CELL_BYTES);
    struct claimed *full = sg_xcalloc(cells ? cells : 1, sizeof *full);
    size_t n = 0;
    for (size_t i = 0; i < cells; i++) {
        uint64_t st = atomic_load_explicit(&c[i].state, memory_order_acquire);
        if (st == CELL_FULL || st == CELL_TAPPED)
            full[n++] = (struct claimed){c[i].seq, c[i].ev, st == CELL_TAPPED};
    }
    qsort(full, n, sizeof *full, by_seq);
    size_t kept = 0;
    if (n) {
        *out = sg_xcalloc(n, sizeof **out);
        if (tapped)
            *tapped = sg_xcalloc(n, sizeof **tapped);
        for (size_t i = 0; i < n; i++) {
            if (!((*out)[kept] = event_from(full[i].ev)))
                continue;
            if (tapped)
                (*tapped)[kept] = full[i].tapped;
            kept++;
        }
    }
    if (kept < n)
        snprintf(why, why_len, "%zu cells held no request id", n - kept);
    free(full);
    if (!kept) {
        free(*out);
        *out = NULL;
        if (tapped) {
            free(*tapped);
            *tapped = NULL;
        }
    }
    return kept;
}

/* /dev/shm is writable by every user: a file there that another user owns is neither read
 * (it could hold rows nobody answered) nor written (they could read the events). */
static bool ours(const struct stat *st, const char *path)
{
    if (S_ISREG(st->st_mode) && st->st_uid == geteuid())
        return true;
    SG_WARN("store", "journal %s is not a file of this user (uid %u): left alone", path,
            (unsigned)geteuid());
    return false;
}

bool sg_journal_recover(const char *dir, const char *slot_path, struct sg_spool *sp)
{
    char real[PATH_MAX];
    char *path = sg_journal_path(dir, slot_path);
    if (!path || !realpath(slot_path, real)) {
        free(path);
        return true;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) { /* none: the last process in this slot stopped cleanly, or there was none */
        free(path);
        return true;
    }
    struct stat st;
    if (flock(fd, LOCK_EX | LOCK_NB) != 0 || fstat(fd, &st) != 0 || !ours(&st, path)) {
        close(fd); /* a live process's (sg_journal_open), or not this user's */
        free(path);
        return true;
    }
    void *map = MAP_FAILED;
    if (st.st_size >= CELL_BYTES)
        map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    struct sg_event **ev = NULL;
    bool *tapped = NULL;
    char why[256] = "";
    size_t n = map == MAP_FAILED
                   ? 0
                   : sg_journal_parse(map, (size_t)st.st_size, real, &ev, &tapped, why, sizeof why);
    if (map != MAP_FAILED)
        munmap(map, (size_t)st.st_size);
    bool ok = true;
    if (why[0])
        SG_WARN("store", "journal %s: %s; %s", path, why,
                n ? "the rest is recovered" : "set aside");
    if (n) {
        struct sg_buf b;
        sg_buf_init(&b, 0);
        for (size_t i = 0; i < n; i++) /* what the request log has goes to the database only */
            if ((tapped[i] ? sg_spool_line(ev[i], &b) : sg_spool_tap_line(ev[i], &b)) != SG_OK)
                ok = false;
        ok = ok && sg_spool_append(sp, b.data, b.len, n) == SG_OK && sg_spool_sync(sp) == SG_OK;
        int saved = errno;
        sg_buf_dispose(&b);
        if (ok)
            SG_WARN("store",
                    "journal %s: %zu events a slogate held in memory when it ended (killed?) "
                    "are now in the spool %s",
                    path, n, sp->path);
        else
            SG_ERROR("store",
                     "journal %s: cannot append its %zu events to the spool %s (%s); the "
                     "journal stays for the next start",
                     path, n, sp->path, strerror(saved));
        for (size_t i = 0; i < n; i++)
            sg_event_free(ev[i]);
        free(ev);
        free(tapped);
    }
    if (ok)
        unlink(path); /* before the lock goes */
    close(fd);
    free(path);
    return ok;
}

void sg_journal_open(struct sg_journal *j, const char *dir, const char *slot_path)
{
    memset(j, 0, sizeof *j);
    char real[PATH_MAX];
    j->path = sg_journal_path(dir, slot_path);
    if (!j->path || !realpath(slot_path, real)) {
        if (dir && *dir)
            SG_WARN("store", "no crash journal for the spool %s: %s", slot_path, strerror(errno));
        free(j->path);
        j->path = NULL;
        return;
    }
    size_t len = (size_t)(CELLS + 1) * CELL_BYTES;
    int fd = open(j->path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    /* The spool slot's lock already makes this process the only one with this name, unless
     * two mount namespaces share /dev/shm and a spool path: the file's own lock says so. */
    struct stat st;
    bool locked = fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) == 0;
    if (locked && (fstat(fd, &st) != 0 || !ours(&st, j->path))) {
        close(fd);
        fd = -1;
        locked = false;
        errno = EPERM;
    }
    void *map = MAP_FAILED;
    /* Cut to zero first: every cell FREE, whatever an earlier file held (recovered already). */
    if (locked && ftruncate(fd, 0) == 0 && ftruncate(fd, (off_t)len) == 0)
        map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (map == MAP_FAILED) {
        SG_WARN("store",
                "cannot make the crash journal %s (%s): events the writer holds in memory are "
                "lost if slogate is killed",
                j->path,
                fd >= 0 && !locked ? "another live slogate holds it: is /dev/shm shared?"
                                   : strerror(errno));
        if (locked)
            unlink(j->path);
        if (fd >= 0)
            close(fd);
        free(j->path);
        j->path = NULL;
        return;
    }
    j->fd = fd; /* kept open: its lock lasts as long as the process */
    header_init(map, real);
    j->map = map;
    j->map_len = len;
    j->cells = (struct sg_journal_cell *)((char *)map + CELL_BYTES);
}

uint32_t sg_journal_put(struct sg_journal *j, const struct sg_event *ev)
{
    for (int t = 0; j->cells && t < CLAIM_TRIES; t++) {
        uint64_t n = atomic_fetch_add_explicit(&j->next, 1, memory_order_acq_rel);
        if (n & SG_JOURNAL_CLOSED)
            break; /* sg_journal_trim is giving the pages back: no cell now */
        struct sg_journal_cell *c = &j->cells[n % CELLS];
        uint64_t expect = CELL_FREE;
        bool won = atomic_compare_exchange_strong_explicit(
            &c->state, &expect, CELL_BUSY, memory_order_acquire, memory_order_relaxed);
        if (won) {
            c->seq = n;
            memcpy(c->ev, ev, EVENT_BYTES);
            atomic_store_explicit(&c->state, CELL_FULL, memory_order_release);
        }
        /* Every claim number is finished once its cell is no longer touched: the trim's
         * proof that no producer is inside. */
        atomic_fetch_add_explicit(&j->finished, 1, memory_order_release);
        if (won)
            return (uint32_t)(n % CELLS) + 1;
    }
    atomic_fetch_add_explicit(&j->skipped, 1, memory_order_relaxed);
    return 0;
}

bool sg_journal_trim(struct sg_journal *j)
{
    if (!j->cells)
        return false;
    uint64_t v = atomic_load_explicit(&j->next, memory_order_acquire);
    if ((v & SG_JOURNAL_CLOSED) || atomic_load_explicit(&j->finished, memory_order_acquire) != v)
        return false; /* a producer is inside */
    for (size_t i = 0; i < CELLS; i++)
        if (atomic_load_explicit(&j->cells[i].state, memory_order_acquire) != CELL_FREE)
            return false; /* an event not written yet */
    /* Closed only if no claim came since v was read: then every claim is finished, and the
     * ones that come now see the flag and leave the cells alone. */
    if (!atomic_compare_exchange_strong(&j->next, &v, v | SG_JOURNAL_CLOSED))
        return false;
    /* tmpfs frees the pages; the mapping reads zeros (every cell FREE) from now on. */
    bool ok = fallocate(j->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, CELL_BYTES,
                        (off_t)CELLS * CELL_BYTES) == 0;
    /* Open again at v: the claims made while closed were given up (never finished). */
    atomic_store(&j->next, v);
    return ok;
}

void sg_journal_tapped(struct sg_journal *j, uint32_t cell)
{
    if (cell && j->cells)
        atomic_store_explicit(&j->cells[cell - 1].state, CELL_TAPPED, memory_order_release);
}

void sg_journal_done(struct sg_journal *j, uint32_t cell)
{
    if (cell && j->cells)
        atomic_store_explicit(&j->cells[cell - 1].state, CELL_FREE, memory_order_release);
}

void sg_journal_close(struct sg_journal *j)
{
    if (!j->map)
        return;
    size_t held = 0;
    for (size_t i = 0; i < CELLS; i++)
        held += atomic_load(&j->cells[i].state) >= CELL_FULL;
    munmap(j->map, j->map_len);
    if (held)
        SG_WARN("store", "journal %s keeps %zu events for the next start", j->path, held);
    else
        unlink(j->path); /* under the lock: a newcomer's open finds no file or a new one */
    close(j->fd);
    free(j->path);
    memset(j, 0, sizeof *j);
}
