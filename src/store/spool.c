/*
 * The spool: where events go while the database cannot take them, and where the request path
 * puts an event when the writer's queue is full. JSON lines (sg_event_to_json), appended with
 * one write(2) per batch under a mutex; a `.pos` file beside it holds the replay offset.
 *
 * Several processes may share a directory (and an SQLite file): each takes its own slot
 * (path, path.1, ... path.15) under an flock held for its life, and at start takes over the
 * lines of any slot no live process holds.
 *
 * Crash safety, case by case:
 * - killed during an append: the file may end in a torn line. Opening cuts everything after
 *   the last '\n' (that event was only in memory, and is lost with the process either way).
 * - killed after a replayed chunk committed but before `.pos` moved: the chunk is replayed
 *   again at the next start; the database ignores request_ids it has (no duplicate row).
 * - killed between the truncation at the end of a replay and `.pos` going back to 0: `.pos`
 *   points past the end, and is read as 0.
 * A line that does not parse is skipped with a warning (never retried forever).
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define READ_CHUNK (64u * 1024)

/* Persist the replay offset: write a temporary file and rename it over the old one, so the
 * file always holds one whole number. Not fsynced: after a power loss an older offset only
 * means a few batches replayed twice, which the primary key absorbs. */
static void write_pos(struct sg_spool *sp)
{
    size_t n = strlen(sp->pos_path) + 8;
    char *tmp = sg_xcalloc(1, n);
    snprintf(tmp, n, "%s.tmp", sp->pos_path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd >= 0) {
        char line[32];
        int len = snprintf(line, sizeof line, "%" PRIu64 "\n", atomic_load(&sp->read_off));
        bool ok = write(fd, line, (size_t)len) == len;
        close(fd);
        if (ok && rename(tmp, sp->pos_path) == 0) {
            free(tmp);
            return;
        }
    }
    /* An older offset left in place could point into lines appended since (after the spool was
     * cut to zero) and skip them at the next start; no offset replays from the start, which the
     * key absorbs. */
    SG_WARN("store",
            "cannot update the spool offset %s: %s; the next start replays the spool from "
            "its beginning",
            sp->pos_path, strerror(errno));
    unlink(tmp);
    unlink(sp->pos_path);
    free(tmp);
}

/* The replay offset of the spool `fd` (`size` bytes) from `path`: 0 when there is none, when it
 * is past the end (the file was cut to zero after a full replay and the process died before the
 * offset was removed) or when it does not follow a line end (edited, or left from another file):
 * an offset that is not trusted replays from the start, never skips a line. */
static uint64_t read_pos(const char *path, int fd, uint64_t size)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[32] = "";
    bool got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    char *end = NULL;
    errno = 0;
    unsigned long long v = got && line[0] >= '0' && line[0] <= '9' ? strtoull(line, &end, 10) : 0;
    char c = 0;
    bool ok = end && end != line && (*end == '\n' || !*end) && !errno && v <= size &&
              (v == 0 || (pread(fd, &c, 1, (off_t)(v - 1)) == 1 && c == '\n'));
    if (!ok && got && v <= size)
        SG_WARN("store",
                "spool offset %s (%.*s) does not point at a line of the spool: replaying "
                "it from the start",
                path, (int)strcspn(line, "\n"), line);
    return ok ? (uint64_t)v : 0;
}

/* The end of the last whole line of `fd` (a torn line after it is to be cut), and how many
 * whole lines end after offset `from`. */
static int scan(int fd, uint64_t size, uint64_t from, uint64_t *keep, uint64_t *lines)
{
    char *buf = sg_xmalloc(READ_CHUNK);
    uint64_t last_nl_end = 0, n = 0;
    for (uint64_t off = 0; off < size;) {
        ssize_t r = pread(fd, buf, READ_CHUNK, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            return SG_EIO;
        }
        for (ssize_t i = 0; i < r; i++)
            if (buf[i] == '\n') {
                last_nl_end = off + (uint64_t)i + 1;
                if (last_nl_end > from)
                    n++;
            }
        off += (uint64_t)r;
    }
    free(buf);
    *keep = last_nl_end;
    *lines = n;
    return SG_OK;
}

static char *slot_path(const char *base, int slot)
{
    return slot ? sg_xasprintf("%s.%d", base, slot) : sg_xstrdup(base);
}

static int append_fd(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return SG_EIO;
        p += w;
        n -= (size_t)w;
    }
    return SG_OK;
}

/* Open `path` and take its lock without waiting: the descriptor, or -1 when a live process
 * holds it (or it cannot be opened: errno says). A file is only locked while it is still the one
 * at `path`: a process that adopted a slot deletes its file and then lets go of the lock, so a
 * file opened before that deletion and locked after it is a deleted one, whose lines nobody
 * would read; then the path is opened again. */
static int open_locked(const char *path, int flags)
{
    for (int tries = 0; tries < 8; tries++) {
        int fd = open(path, flags | O_CLOEXEC, 0640);
        if (fd < 0)
            return -1;
        if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
            close(fd);
            errno = EWOULDBLOCK;
            return -1;
        }
        struct stat held, named;
        if (fstat(fd, &held) == 0 && stat(path, &named) == 0 && held.st_dev == named.st_dev &&
            held.st_ino == named.st_ino)
            return fd;
        close(fd); /* deleted or replaced since it was opened */
    }
    errno = EAGAIN;
    return -1;
}

/* Take over the unreplayed lines of a slot no live process holds (its slogate died, or stopped
 * with the database down), so they are replayed here rather than waiting for a process to
 * claim that slot again. */
static void adopt(struct sg_spool *sp, const char *base, int slot)
{
    char *path = slot_path(base, slot);
    char *pos_path = sg_xasprintf("%s.pos", path);
    int fd = open_locked(path, O_RDWR);
    if (fd < 0) { /* none, or a live slogate holds it */
        free(path);
        free(pos_path);
        return;
    }
    struct stat st;
    uint64_t size = fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
    uint64_t from = read_pos(pos_path, fd, size), keep = 0, lines = 0;
    bool ok = size > 0 && scan(fd, size, from, &keep, &lines) == SG_OK;
    if (ok && lines) {
        char *buf = sg_xmalloc(READ_CHUNK);
        uint64_t before = atomic_load(&sp->size);
        for (uint64_t off = from; ok && off < keep;) {
            size_t want = (size_t)SG_MIN((uint64_t)READ_CHUNK, keep - off);
            ssize_t r = pread(fd, buf, want, (off_t)off);
            if (r < 0 && errno == EINTR)
                continue;
            ok = r > 0 && append_fd(sp->fd, buf, (size_t)r) == SG_OK;
            off += r > 0 ? (uint64_t)r : 0;
        }
        free(buf);
        if (!ok) { /* leave it for later; take back what was copied */
            if (ftruncate(sp->fd, (off_t)before) != 0)
                SG_ERROR("store", "cannot cut back the spool %s", sp->path);
        } else {
            atomic_store(&sp->size, before + (keep - from));
            atomic_fetch_add(&sp->events, lines);
            SG_INFO("store",
                    "spool %s: took over %" PRIu64 " events from %s (left by a slogate "
                    "that stopped before they reached the database)",
                    sp->path, lines, path);
        }
    }
    /* What the dead process held in memory came after its spooled lines. */
    bool journal_ok = sg_journal_recover(sp->journal_dir, path, sp);
    if (ok && journal_ok) {
        /* Emptied: the default name stays as an empty file, extra slots go away. */
        if (slot) {
            unlink(pos_path);
            unlink(path);
        } else if (ftruncate(fd, 0) == 0) {
            unlink(pos_path);
        }
    }
    close(fd);
    free(path);
    free(pos_path);
}

int sg_spool_open(struct sg_spool *sp, const char *base, const char *journal_dir, char *err,
                  size_t err_len)
{
    memset(sp, 0, sizeof *sp);
    sp->fd = -1;
    sp->journal_dir = journal_dir;
    pthread_mutex_init(&sp->mu, NULL);
    sg_buf_init(&sp->rd, 0);
    /* One spool file per process: two processes appending to and replaying one file would
     * replay each other's lines. A process takes the first slot (base, base.1, ...) no live
     * process holds a lock on; the lock goes with the process, however it ends. */
    int slot = 0;
    for (; slot < SG_SPOOL_SLOTS; slot++) {
        char *path = slot_path(base, slot);
        int fd = open_locked(path, O_RDWR | O_CREAT | O_APPEND);
        if (fd >= 0) {
            sp->fd = fd;
            sp->path = path;
            break;
        }
        if (errno != EWOULDBLOCK) {
            snprintf(err, err_len, "cannot open the spool %s: %s", path, strerror(errno));
            free(path);
            return SG_EIO;
        }
        free(path);
    }
    if (sp->fd < 0) {
        snprintf(err, err_len,
                 "%d slogate processes already spool into %s here: give this one its own "
                 "telemetry.spool_path",
                 SG_SPOOL_SLOTS, base);
        return SG_EIO;
    }
    sp->pos_path = sg_xasprintf("%s.pos", sp->path);
    struct stat st;
    if (fstat(sp->fd, &st) != 0) {
        snprintf(err, err_len, "cannot read the spool %s: %s", sp->path, strerror(errno));
        return SG_EIO;
    }
    uint64_t size = (uint64_t)st.st_size;
    uint64_t pos = read_pos(sp->pos_path, sp->fd, size);
    atomic_init(&sp->read_off, pos);
    uint64_t keep = 0, lines = 0;
    if (scan(sp->fd, size, pos, &keep, &lines) != SG_OK) {
        snprintf(err, err_len, "cannot read the spool %s: %s", sp->path, strerror(errno));
        return SG_EIO;
    }
    if (keep < size) {
        SG_WARN("store",
                "spool %s ended in a partial line (%" PRIu64 " bytes, from a crash "
                "during a write): cut off",
                sp->path, size - keep);
        if (ftruncate(sp->fd, (off_t)keep) != 0) {
            snprintf(err, err_len, "cannot repair the spool %s: %s", sp->path, strerror(errno));
            return SG_EIO;
        }
        size = keep;
        if (atomic_load(&sp->read_off) > size)
            atomic_store(&sp->read_off, size);
    }
    atomic_init(&sp->size, size);
    atomic_init(&sp->events, lines);
    if (lines)
        SG_INFO("store", "spool %s holds %" PRIu64 " events to replay", sp->path, lines);
    /* The events the last process in this slot held in memory when it died. */
    sp->journal_kept = !sg_journal_recover(journal_dir, sp->path, sp);
    for (int i = 0; i < SG_SPOOL_SLOTS; i++)
        if (i != slot)
            adopt(sp, base, i);
    return SG_OK;
}

void sg_spool_close(struct sg_spool *sp)
{
    if (sp->fd >= 0)
        close(sp->fd); /* also releases the lock */
    sp->fd = -1;
    pthread_mutex_destroy(&sp->mu);
    sg_buf_dispose(&sp->rd);
    free(sp->path);
    free(sp->pos_path);
    sp->path = sp->pos_path = NULL;
}

int sg_spool_line(const struct sg_event *ev, struct sg_buf *b)
{
    size_t start = b->len;
    int rc = sg_event_to_json(ev, 0, b);
    rc = rc ? rc : sg_buf_append(b, "\n", 1);
    if (rc)
        b->len = start;
    return rc;
}

int sg_spool_tap_line(const struct sg_event *ev, struct sg_buf *b)
{
    size_t start = b->len;
    int rc = sg_buf_appends(b, SG_SPOOL_TAP_PREFIX);
    size_t at = b->len;
    rc = rc ? rc : sg_event_to_json(ev, SG_EVENT_JSON_PROMPT | SG_EVENT_JSON_ATTEMPTS, b);
    if (!rc) {
        /* Splice: the prefix already opened the object, so drop the event's own '{'. */
        memmove(b->data + at, b->data + at + 1, b->len - at - 1);
        b->len--;
        rc = sg_buf_append(b, "\n", 1);
    }
    if (rc)
        b->len = start;
    return rc;
}

int sg_spool_append(struct sg_spool *sp, const char *lines, size_t len, size_t n_events)
{
    if (!len)
        return SG_OK;
    pthread_mutex_lock(&sp->mu);
    uint64_t before = atomic_load(&sp->size);
    const char *p = lines;
    size_t left = len;
    int rc = SG_OK;
    while (left) {
        ssize_t w = write(sp->fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            rc = SG_EIO;
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (rc != SG_OK) {
        /* Disk full or an I/O error: take back the part that was written, so the next append
         * does not glue a line onto half a line. */
        int saved = errno;
        if (ftruncate(sp->fd, (off_t)before) != 0)
            SG_ERROR("store", "cannot cut back the spool %s: %s", sp->path, strerror(errno));
        errno = saved;
    } else {
        atomic_store(&sp->size, before + len);
        atomic_fetch_add(&sp->events, n_events);
        atomic_store(&sp->unsynced, true);
    }
    pthread_mutex_unlock(&sp->mu);
    return rc;
}

/* The spool was deleted under us (an operator cleaning up): the lines still to replay, and every
 * later append, would be in a file nobody finds after a crash or a stop, and the slot's name free
 * for another process. Create it again at its path with the lines not yet replayed. Writer
 * thread; appends wait on the mutex meanwhile. */
static void relink(struct sg_spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    uint64_t from = atomic_load(&sp->read_off), size = atomic_load(&sp->size);
    int fd = open_locked(sp->path, O_RDWR | O_CREAT | O_APPEND);
    bool ok = fd >= 0;
    char *buf = ok ? sg_xmalloc(READ_CHUNK) : NULL;
    for (uint64_t off = from; ok && off < size;) {
        ssize_t r =
            pread(sp->fd, buf, (size_t)SG_MIN((uint64_t)READ_CHUNK, size - off), (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        ok = r > 0 && append_fd(fd, buf, (size_t)r) == SG_OK;
        off += r > 0 ? (uint64_t)r : 0;
    }
    free(buf);
    if (ok) {
        unlink(sp->pos_path); /* the new file is read from its start */
        close(sp->fd);
        sp->fd = fd;
        atomic_store(&sp->read_off, 0);
        atomic_store(&sp->size, size - from);
        atomic_store(&sp->unsynced, true);
    } else {
        /* Copied in part: take it back (a process that holds the name now keeps its file). */
        if (fd >= 0) {
            if (ftruncate(fd, 0) != 0)
                SG_ERROR("store", "cannot cut back the spool %s", sp->path);
            close(fd);
        }
        sp->orphaned = true; /* said once; the lines are replayed from the old file */
    }
    pthread_mutex_unlock(&sp->mu);
    if (ok)
        SG_WARN("store",
                "spool %s was deleted while slogate used it: created it again with the %" PRIu64
                " events not yet replayed",
                sp->path, (uint64_t)atomic_load(&sp->events));
    else
        SG_ERROR("store",
                 "spool %s was deleted while slogate used it and cannot be created again (%s): "
                 "its events stay in the deleted file until they are replayed",
                 sp->path, strerror(errno));
}

int sg_spool_sync(struct sg_spool *sp)
{
    if (sp->fd < 0)
        return SG_OK;
    struct stat st;
    if (!sp->orphaned && fstat(sp->fd, &st) == 0 && st.st_nlink == 0)
        relink(sp);
    if (!atomic_exchange(&sp->unsynced, false))
        return SG_OK;
    if (fdatasync(sp->fd) == 0)
        return SG_OK;
    SG_ERROR("store", "cannot sync the spool %s: %s", sp->path, strerror(errno));
    return SG_EIO;
}

/* The file no longer holds what this process appended to it: someone truncated it (an operator
 * freeing the disk: `: > spool`), so the offset points past its end or into the middle of a line.
 * Whatever whole lines it holds now are replayed from its start (the key absorbs any already
 * stored); what was cut is gone. Writer thread; appends wait on the mutex meanwhile. */
static bool resync(struct sg_spool *sp)
{
    pthread_mutex_lock(&sp->mu);
    struct stat st;
    uint64_t size = fstat(sp->fd, &st) == 0 ? (uint64_t)st.st_size : 0, keep = 0, lines = 0;
    bool ok = scan(sp->fd, size, 0, &keep, &lines) == SG_OK &&
              (keep == size || ftruncate(sp->fd, (off_t)keep) == 0);
    uint64_t before = atomic_load(&sp->events);
    if (ok) {
        atomic_store(&sp->size, keep);
        atomic_store(&sp->read_off, 0);
        atomic_store(&sp->events, lines);
    }
    pthread_mutex_unlock(&sp->mu);
    if (!ok) {
        SG_ERROR("store", "spool %s changed under slogate and cannot be read again: %s", sp->path,
                 strerror(errno));
        return false;
    }
    unlink(sp->pos_path); /* no offset: from the start */
    SG_WARN("store",
            "spool %s was truncated by someone else while slogate used it: %" PRIu64
            " of its %" PRIu64 " events to replay are gone; replaying the %" PRIu64
            " it holds now from its start",
            sp->path, before > lines ? before - lines : 0, before, lines);
    return true;
}

size_t sg_spool_read(struct sg_spool *sp, struct sg_event **out, bool *tap, size_t max,
                     uint64_t *bytes, size_t *lines)
{
    bool resynced = false;
again:;
    /* Read only up to the size published after the last complete append. */
    uint64_t end = atomic_load(&sp->size);
    uint64_t off = atomic_load(&sp->read_off), used = 0;
    size_t n = 0, nl = 0;
    struct sg_buf *b = &sp->rd;
    sg_buf_reset(b);
    size_t scan_from = 0;
    while (n < max && nl < max && off + used < end) {
        /* Find a complete line in what was read; read more when there is none. */
        char *nlp =
            b->len > scan_from ? memchr(b->data + scan_from, '\n', b->len - scan_from) : NULL;
        if (!nlp) {
            uint64_t have = off + b->len;
            /* No line end before the published size, or the file ends before it: appends
             * publish whole lines, so the file was cut under us. */
            bool cut = have >= end;
            size_t want = (size_t)SG_MIN((uint64_t)READ_CHUNK, end - SG_MIN(have, end));
            ssize_t r = 0;
            if (!cut) {
                if (sg_buf_reserve(b, want) != SG_OK)
                    break;
                r = pread(sp->fd, b->data + b->len, want, (off_t)have);
                if (r < 0 && errno == EINTR)
                    continue;
                cut = r == 0;
            }
            if (cut && !nl && !resynced && resync(sp)) {
                resynced = true;
                goto again;
            }
            if (r <= 0)
                break;
            b->len += (size_t)r;
            b->data[b->len] = '\0';
            continue;
        }
        size_t line_start = (size_t)used;
        size_t line_len = (size_t)(nlp - (b->data + line_start));
        const char *line = b->data + line_start;
        struct sg_event *ev = sg_event_new();
        bool t = line_len >= sizeof SG_SPOOL_TAP_PREFIX - 1 &&
                 memcmp(line, SG_SPOOL_TAP_PREFIX, sizeof SG_SPOOL_TAP_PREFIX - 1) == 0;
        if (sg_event_from_json(line, line_len, ev) == SG_OK) {
            out[n] = ev;
            tap[n] = t;
            n++;
        } else {
            SG_WARN("store", "spool %s: skipped an unreadable line at offset %" PRIu64, sp->path,
                    off + used);
            sg_event_free(ev);
        }
        nl++;
        used += line_len + 1;
        scan_from = (size_t)used;
    }
    *bytes = used;
    *lines = nl;
    return n;
}

void sg_spool_commit(struct sg_spool *sp, uint64_t bytes, size_t lines)
{
    atomic_fetch_add(&sp->read_off, bytes);
    atomic_fetch_sub(&sp->events, lines);
    pthread_mutex_lock(&sp->mu);
    bool all = atomic_load(&sp->read_off) >= atomic_load(&sp->size);
    /* All replayed: no offset (from the start), then an empty file. The other order left a
     * window where the old offset pointed into the lines appended after the cut. */
    if (all && (unlink(sp->pos_path) == 0 || errno == ENOENT) && ftruncate(sp->fd, 0) == 0) {
        atomic_store(&sp->size, 0);
        atomic_store(&sp->read_off, 0);
        pthread_mutex_unlock(&sp->mu);
        return;
    }
    pthread_mutex_unlock(&sp->mu);
    write_pos(sp);
}
