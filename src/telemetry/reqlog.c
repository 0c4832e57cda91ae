/*
 * The JSON lines request log (telemetry.request_log): one line per request event, appended by
 * the store's writer thread (never the request path), rotated by size like logrotate's
 * "rotate N": path -> path.1 -> path.2 ... path.N, the oldest dropped. Only regular files
 * rotate (a log pointed at /dev/null or a FIFO is written, never renamed).
 *
 * What a line holds is sg_event_to_json plus the attempts: ids, attribution, timings, tokens,
 * cost. No key or secret is ever part of an event; the prompt (the request's messages) only with
 * telemetry.log_prompts: true.
 */
#include "telemetry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

struct sg_reqlog {
    char *path;
    int fd;
    dev_t dev; /* of the file fd is open on: another one at `path` means it was moved */
    ino_t ino;
    uint64_t size;
    uint64_t max;
    int keep;
    bool prompts;
    bool cut;     /* a failed write left part of a line that could not be taken back */
    bool failing; /* the last batch failed: said once, and again when it works */
    int err;      /* errno of the last failure */
    struct sg_buf out;
    size_t out_lines; /* lines in `out` */
    size_t written;   /* lines of the current sg_reqlog_write that went in */
};

static int open_log(struct sg_reqlog *l, char *err, size_t err_len)
{
    l->fd = open(l->path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (l->fd < 0) {
        l->err = errno;
        if (err)
            snprintf(err, err_len, "cannot open request log %s: %s", l->path, strerror(errno));
        return SG_EIO;
    }
    struct stat st;
    if (fstat(l->fd, &st) != 0)
        memset(&st, 0, sizeof st);
    l->size = (uint64_t)st.st_size;
    l->dev = st.st_dev;
    l->ino = st.st_ino;
    /* Only a regular file is rotated: renaming /dev/null or a pipe someone pointed the log at
     * would move the device itself away. */
    if (!S_ISREG(st.st_mode))
        l->max = 0;
    return SG_OK;
}

struct sg_reqlog *sg_reqlog_open(const char *path, uint64_t max_bytes, int keep, bool log_prompts,
                                 char *err, size_t err_len)
{
    struct sg_reqlog *l = sg_xcalloc(1, sizeof *l);
    l->path = sg_xstrdup(path);
    l->max = max_bytes;
    l->keep = keep < 1 ? 1 : keep;
    l->prompts = log_prompts;
    sg_buf_init(&l->out, 0);
    if (open_log(l, err, err_len) != SG_OK) {
        sg_reqlog_close(l);
        return NULL;
    }
    return l;
}

void sg_reqlog_close(struct sg_reqlog *l)
{
    if (!l)
        return;
    if (l->fd >= 0)
        close(l->fd);
    sg_buf_dispose(&l->out);
    free(l->path);
    free(l);
}

/* Write all of p, or fail with *written telling how much did go (errno set). */
static int write_all(int fd, const char *p, size_t n, size_t *written)
{
    *written = 0;
    while (n) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            if (w == 0)
                errno = ENOSPC;
            return SG_EIO;
        }
        p += w;
        n -= (size_t)w;
        *written += (size_t)w;
    }
    return SG_OK;
}

/* One write of whole lines. A write the disk cut short (ENOSPC, EFBIG, EIO) is taken back by
 * truncating what of it went in: a reader never sees half a line, and the next batch does not
 * glue its first line onto it. When even that fails, the next write starts with a newline, so
 * the damage stays one unreadable line. */
static int flush(struct sg_reqlog *l)
{
    size_t lines = l->out_lines;
    l->out_lines = 0;
    if (!l->out.len)
        return SG_OK;
    size_t w = 0;
    int rc = SG_EIO;
    if (l->fd < 0) {
        l->err = errno ? errno : EBADF;
    } else if (l->cut && write_all(l->fd, "\n", 1, &w) != SG_OK) {
        l->err = errno;
    } else {
        l->cut = false;
        rc = write_all(l->fd, l->out.data, l->out.len, &w);
        if (rc == SG_OK) {
            l->size += l->out.len;
            l->written += lines;
        } else {
            l->err = errno;
            off_t end = w ? lseek(l->fd, 0, SEEK_CUR) : 0;
            if (w && (end < (off_t)w || ftruncate(l->fd, end - (off_t)w) != 0))
                l->cut = true;
        }
    }
    sg_buf_reset(&l->out);
    return rc;
}

/* path.(keep-1) -> path.keep, ..., path -> path.1, then a fresh path. */
static int rotate(struct sg_reqlog *l)
{
    if (l->fd >= 0)
        close(l->fd);
    l->fd = -1;
    size_t n = strlen(l->path) + 16;
    char *from = sg_xcalloc(1, n), *to = sg_xcalloc(1, n);
    for (int i = l->keep - 1; i >= 1; i--) {
        snprintf(from, n, "%s.%d", l->path, i);
        snprintf(to, n, "%s.%d", l->path, i + 1);
        rename(from, to); /* a missing older file is fine */
    }
    snprintf(to, n, "%s.1", l->path);
    int rc = rename(l->path, to) == 0 || errno == ENOENT ? SG_OK : SG_EIO;
    free(from);
    free(to);
    if (rc != SG_OK)
        SG_WARN("telemetry", "cannot rotate %s: %s", l->path, strerror(errno));
    int orc = open_log(l, NULL, 0);
    return rc ? rc : orc;
}

/* Someone else moved or removed the file (logrotate without copytruncate, an operator's rm):
 * `path` names another file or none, and what we write would go on into the moved one or be
 * lost with the deleted one. Checked once per batch (one stat), like Python's WatchedFileHandler;
 * no signal is needed. */
static void reopen_if_moved(struct sg_reqlog *l)
{
    struct stat st;
    if (l->fd < 0)
        return;
    if (stat(l->path, &st) == 0 && st.st_dev == l->dev && st.st_ino == l->ino)
        return;
    SG_INFO("telemetry", "request log %s was moved or removed: writing a new one", l->path);
    close(l->fd);
    l->fd = -1;
    open_log(l, NULL, 0);
}

int sg_reqlog_write(struct sg_reqlog *l, const struct sg_event *const *ev, size_t n, int *rotated,
                    size_t *written)
{
    unsigned flags = SG_EVENT_JSON_ATTEMPTS | (l->prompts ? SG_EVENT_JSON_PROMPT : 0);
    int rc = SG_OK, rot = 0;
    l->written = 0;
    reopen_if_moved(l);
    if (l->fd < 0 && open_log(l, NULL, 0) != SG_OK)
        rc = SG_EIO; /* keep trying on later batches: the directory may come back */
    for (size_t i = 0; i < n && rc == SG_OK; i++) {
        size_t before = l->out.len;
        if (sg_event_to_json(ev[i], flags, &l->out) != SG_OK) {
            rc = SG_EIO;
            break;
        }
        sg_buf_append(&l->out, "\n", 1);
        l->out_lines++;
        size_t line = l->out.len - before;
        /* Rotate before a line that would take the file past the limit (a file always gets at
         * least one line, so a huge line cannot make it rotate forever). */
        if (l->max && l->size + l->out.len > l->max && l->size + before > 0) {
            char *tmp = sg_xstrndup(l->out.data + before, line);
            l->out.len = before;
            l->out_lines--;
            rc = flush(l);
            if (rotate(l) == SG_OK)
                rot++;
            sg_buf_append(&l->out, tmp, line);
            l->out_lines = 1;
            free(tmp);
        }
    }
    int frc = flush(l);
    if (rotated)
        *rotated = rot;
    if (written)
        *written = l->written;
    rc = rc ? rc : frc;
    /* Said once when writes start failing, and once when they work again: a full disk must not
     * also fill the gateway's own log. */
    if (rc != SG_OK && !l->failing)
        SG_WARN("telemetry",
                "cannot write the request log %s: %s; its lines are lost until it works again "
                "(counted in slogate_request_log_errors_total)",
                l->path, strerror(l->err ? l->err : EIO));
    else if (rc == SG_OK && l->failing)
        SG_INFO("telemetry", "the request log %s is written again", l->path);
    l->failing = rc != SG_OK;
    return rc;
}
