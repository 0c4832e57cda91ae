/*
 * Fuzz the own HTTP/1.1 client (src/upstream/h1.c) with the bytes an upstream sends back.
 *
 * One uv loop, one sg_h1 and one listening socket on 127.0.0.1 are created on the first input
 * and reused by all the others. Per input, a server on that same loop answers each request it
 * reads with a piece of the input, written in chunks one loop turn apart (so they arrive as
 * separate reads), and the client's callbacks pause, resume or cancel as the input says. The
 * loop runs until every call has ended and the server has written everything; then the server
 * closes its connections and the loop runs until the client has let go of its idle ones, so
 * every run starts with an empty pool. A connection the server is done with and that sees no
 * client progress for GRACE_TURNS loop turns is closed, so an answer that never ends costs a
 * few turns, not the call's timeout.
 *
 * The input: four control bytes, then the response bytes.
 *   [0] bits 0-1  pause: 0 never, 1 in on_body, 2 in on_head and on_body, 3 pause and resume
 *                 at once inside on_body
 *       bit 2     pause right after start (before the connection is up)
 *       bits 3-4  cancel: 0 never, 1 in on_head, 2 in on_body once the body reached a threshold,
 *                 3 in on_head, then start the next call from inside that callback
 *       bit 5     the server closes a connection as soon as it has written an answer
 *       bit 6     each call's on_done starts the next one (up to MAX_CALLS): keep-alive, the
 *                 pool, the retry of a pooled connection the server closed
 *       bit 7     the request has a body (POST, Content-Length)
 *   [1] chunking: 0 = an answer in one write; else writes of 1..2^(b & 7) bytes, sizes drawn
 *       from a generator seeded with [1] and [2] (at most MAX_WRITES writes per answer)
 *   [2] bits 0-1 loop turns before a paused call is resumed; bits 2-7 the cancel threshold
 *       (body bytes)
 *   [3] with bit 6: the response bytes split into a first answer of [3] * n / 255 bytes and a
 *       second one; requests beyond the second (a third call, a retry) get the second again
 *
 * Properties, each an abort: on_done runs exactly once for a call that was not cancelled, and
 * no callback runs after on_done or after a cancel; on_head runs at most once and before any
 * body; the status in on_head is 200-599; result.status is the status on_head saw (0 without a
 * head) and a call without error had a head; no body is delivered while the call is paused;
 * every body piece and every header name and value is a run of bytes the server wrote (a value
 * folded over lines, once the line breaks are taken out); the body bytes of all calls add up to
 * no more than the server wrote; no call times out or fails to connect (the server always
 * answers and closes, so a timeout is a hang); at the end no call is active and no connection
 * is idle. And differentially: when the input cuts the answer into
 * several writes or pauses, the same first answer is also run in one write without pausing or
 * cancelling, and the first call must end the same way (error, status, and body length when it
 * succeeded).
 */
#include "upstream/upstream_int.h"

#include <arpa/inet.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_CALLS 3
#define MAX_SCONNS 16
#define MAX_WRITES 32        /* per answer: the last write takes whatever is left */
#define GRACE_TURNS 8        /* loop turns without client progress before the server closes */
#define CALL_TIMEOUT_MS 2000 /* bounds a hang; the normal case ends in a few turns */
#define WATCHDOG_MS 5000

enum { PAUSE_NONE, PAUSE_BODY, PAUSE_HEAD_BODY, PAUSE_BLINK };
enum { CANCEL_NONE, CANCEL_HEAD, CANCEL_BODY, CANCEL_HEAD_NEXT };

struct plan {
    int pause;
    bool pause_at_start;
    int cancel;
    bool server_closes;
    bool chain;
    bool post;
    uint8_t chunking;
    unsigned resume_turns;
    size_t cancel_at;
    const uint8_t *seg[2]; /* the answers, in request order */
    size_t seg_len[2];
    int n_seg;
};

/* One accepted connection of the server. The slot is free again in the close callback. */
struct sconn {
    uv_tcp_t tcp;
    bool used;
    bool closing;
    char in[8192]; /* request bytes not yet consumed */
    size_t in_len;
    int queued; /* requests read and not answered yet */
    bool answering;
    const uint8_t *out;
    size_t out_len, out_off;
    int writes;
    uint64_t quiet_since; /* loop turn of its last answer (or of its accept) */
};

/* One call of the client, as its owner sees it. */
struct call {
    struct sg_upstream_call *call;
    bool active; /* started, and neither done nor cancelled */
    bool paused;
    int heads, dones;
    int status;
    size_t body;
    int error; /* what on_done reported */
    uint64_t resume_turn;
};

static struct {
    /* made once */
    uv_loop_t loop;
    uv_tcp_t listener;
    uv_idle_t pump; /* the server's writes, its closes and the owner's resumes, one per turn */
    uv_timer_t watchdog;
    struct sg_h1 *h1;
    char url[64];
    struct sconn sc[MAX_SCONNS];
    int sc_open;
    char rbuf[4096];
    bool verbose; /* FUZZ_H1_VERBOSE set: one line per call on stderr */
    /* per run */
    struct plan p;
    struct call calls[MAX_CALLS];
    int n_calls;
    int answered; /* requests answered so far: the index of the next answer */
    uint32_t rng;
    uint64_t turn, progress_turn;
    struct sg_buf wire; /* everything the server wrote */
    size_t body_total;
} F;

static const char post_body[] = "{\"model\":\"m\",\"messages\":[]}";

static void fail(const char *fmt, ...) SG_PRINTF(1, 2);
static void fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_h1: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    abort();
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail(__VA_ARGS__);                                                                     \
    } while (0)

/* True when [p, p+n) is a run of bytes the server wrote. */
static bool on_wire(const char *p, size_t n)
{
    return n == 0 || (F.wire.len && memmem(F.wire.data, F.wire.len, p, n) != NULL);
}

/* The same for a header value, which may also span a folded line ("a\r\n b" is "a b"). */
static bool on_wire_unfolded(const char *p, size_t n)
{
    if (on_wire(p, n))
        return true;
    static struct sg_buf u = {.max = SIZE_MAX - 1};
    sg_buf_reset(&u);
    const char *w = F.wire.data;
    for (size_t i = 0; i < F.wire.len; i++) {
        size_t eol = w[i] == '\r' && i + 1 < F.wire.len && w[i + 1] == '\n' ? 2 : w[i] == '\n';
        if (eol && i + eol < F.wire.len && (w[i + eol] == ' ' || w[i + eol] == '\t')) {
            i += eol - 1;
            continue;
        }
        CHECK(sg_buf_append(&u, &w[i], 1) == SG_OK, "unfolded buffer");
    }
    return u.len && memmem(u.data, u.len, p, n) != NULL;
}

static void progress(void)
{
    F.progress_turn = F.turn;
}

static void on_pump(uv_idle_t *t);

static void pump_start(void)
{
    if (!uv_is_active((uv_handle_t *)&F.pump))
        uv_idle_start(&F.pump, on_pump);
}

/* ---- the server ---- */

static void on_sconn_closed(uv_handle_t *hd)
{
    struct sconn *k = SG_CONTAINER_OF((uv_tcp_t *)hd, struct sconn, tcp);
    k->used = false;
    F.sc_open--;
}

static void sconn_close(struct sconn *k)
{
    if (k->closing)
        return;
    k->closing = true;
    k->answering = false;
    uv_close((uv_handle_t *)&k->tcp, on_sconn_closed);
}

static void sconn_answered(struct sconn *k);

static void sconn_answer_next(struct sconn *k)
{
    int i = SG_MIN(F.answered, F.p.n_seg - 1);
    F.answered++;
    k->queued--;
    k->answering = true;
    k->out = F.p.seg[i];
    k->out_len = F.p.seg_len[i];
    k->out_off = 0;
    k->writes = 0;
    pump_start();
    if (k->out_len == 0)
        sconn_answered(k);
}

static void sconn_answered(struct sconn *k)
{
    k->answering = false;
    k->quiet_since = F.turn;
    if (k->queued)
        sconn_answer_next(k);
    else if (F.p.server_closes)
        sconn_close(k);
}

static size_t next_chunk(struct sconn *k)
{
    size_t left = k->out_len - k->out_off;
    if (F.p.chunking == 0 || k->writes == MAX_WRITES - 1)
        return left;
    F.rng ^= F.rng << 13;
    F.rng ^= F.rng >> 17;
    F.rng ^= F.rng << 5;
    size_t n = 1 + F.rng % (1u << (F.p.chunking & 7));
    return SG_MIN(n, left);
}

/* One write of the current answer. */
static void sconn_write(struct sconn *k)
{
    size_t n = next_chunk(k);
    uv_buf_t b = uv_buf_init((char *)k->out + k->out_off, (unsigned)n);
    int rc = uv_try_write((uv_stream_t *)&k->tcp, &b, 1);
    if (rc == UV_EAGAIN)
        return; /* the client is not reading (paused): try again next turn */
    if (rc < 0) {
        sconn_close(k); /* the client closed or reset */
        return;
    }
    CHECK(sg_buf_append(&F.wire, b.base, (size_t)rc) == SG_OK, "wire buffer");
    k->out_off += (size_t)rc;
    k->writes++;
    if (k->out_off == k->out_len)
        sconn_answered(k);
}

static void on_salloc(uv_handle_t *hd, size_t suggested, uv_buf_t *buf)
{
    SG_UNUSED(hd);
    SG_UNUSED(suggested);
    *buf = uv_buf_init(F.rbuf, sizeof F.rbuf);
}

/* Read requests: a head up to the blank line, then Content-Length bytes of body. */
static void on_sread(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf)
{
    struct sconn *k = SG_CONTAINER_OF((uv_tcp_t *)s, struct sconn, tcp);
    if (nread == 0 || k->closing)
        return;
    if (nread < 0 || (size_t)nread > sizeof k->in - k->in_len) {
        sconn_close(k);
        return;
    }
    memcpy(k->in + k->in_len, buf->base, (size_t)nread);
    k->in_len += (size_t)nread;
    for (;;) {
        const char *end = memmem(k->in, k->in_len, "\r\n\r\n", 4);
        if (!end)
            break;
        size_t head = (size_t)(end - k->in) + 4, clen = 0;
        const char *cl = memmem(k->in, head, "\r\nContent-Length: ", 18);
        if (cl)
            clen = strtoul(cl + 18, NULL, 10);
        if (k->in_len < head + clen)
            break;
        memmove(k->in, k->in + head + clen, k->in_len - head - clen);
        k->in_len -= head + clen;
        k->queued++;
    }
    if (k->queued && !k->answering)
        sconn_answer_next(k);
}

static void on_accept(uv_stream_t *l, int status)
{
    if (status < 0)
        return;
    struct sconn *k = NULL;
    for (int i = 0; i < MAX_SCONNS && !k; i++)
        if (!F.sc[i].used)
            k = &F.sc[i];
    CHECK(k, "more than %d server connections at once", MAX_SCONNS);
    memset(k, 0, sizeof *k);
    uv_tcp_init(&F.loop, &k->tcp);
    k->used = true;
    k->quiet_since = F.turn;
    F.sc_open++;
    if (uv_accept(l, (uv_stream_t *)&k->tcp) != 0 ||
        uv_read_start((uv_stream_t *)&k->tcp, on_salloc, on_sread) != 0) {
        sconn_close(k);
        return;
    }
    pump_start();
}

/* ---- the client's owner ---- */

static void call_start(void);

static void call_pause(struct call *c)
{
    c->paused = true;
    c->resume_turn = F.turn + F.p.resume_turns;
    sg_h1_pause(c->call, true);
    pump_start();
}

static void call_cancel(struct call *c)
{
    c->active = false;
    sg_h1_cancel(c->call);
}

static void on_head(void *ud, int status, const struct sg_http_header *h, size_t n)
{
    struct call *c = ud;
    CHECK(c->active, "on_head after the call ended");
    CHECK(c->heads == 0, "on_head twice");
    CHECK(status >= 200 && status <= 599, "on_head with status %d", status);
    for (size_t i = 0; i < n; i++) {
        if (F.verbose)
            fprintf(stderr, "call %d: header [%.*s] [%.*s]\n", (int)(c - F.calls), (int)h[i].name.n,
                    h[i].name.p, (int)h[i].value.n, h[i].value.p);
        CHECK(on_wire(h[i].name.p, h[i].name.n), "header name %zu was never sent", i);
        CHECK(on_wire_unfolded(h[i].value.p, h[i].value.n), "header value %zu was never sent", i);
    }
    c->heads++;
    c->status = status;
    progress();
    if (F.p.cancel == CANCEL_HEAD || F.p.cancel == CANCEL_HEAD_NEXT) {
        call_cancel(c);
        if (F.p.cancel == CANCEL_HEAD_NEXT)
            call_start();
    } else if (F.p.pause == PAUSE_HEAD_BODY) {
        call_pause(c);
    }
}

static void on_body(void *ud, const char *data, size_t len)
{
    struct call *c = ud;
    CHECK(c->active, "on_body after the call ended");
    CHECK(c->heads == 1, "on_body before on_head");
    CHECK(!c->paused, "on_body while paused");
    CHECK(len > 0, "an empty on_body");
    CHECK(on_wire(data, len), "%zu body bytes that the server never sent", len);
    c->body += len;
    F.body_total += len;
    CHECK(F.body_total <= F.wire.len, "%zu body bytes out of %zu written", F.body_total,
          F.wire.len);
    progress();
    if (F.p.cancel == CANCEL_BODY && c->body >= F.p.cancel_at) {
        call_cancel(c);
        return;
    }
    if (F.p.pause == PAUSE_BODY || F.p.pause == PAUSE_HEAD_BODY) {
        call_pause(c);
    } else if (F.p.pause == PAUSE_BLINK) {
        sg_h1_pause(c->call, true);
        sg_h1_pause(c->call, false);
    }
}

static void on_done(void *ud, const struct sg_upstream_result *r)
{
    struct call *c = ud;
    CHECK(c->active, "on_done after the call ended");
    CHECK(c->dones == 0, "on_done twice");
    c->dones++;
    c->active = false;
    c->error = r->error;
    progress();
    CHECK(r->error != SG_ETIMEOUT, "hang: the call timed out: %s", r->detail);
    CHECK(r->error != SG_ECONNECT, "could not connect: %s", r->detail);
    CHECK(r->error == 0 || r->detail, "an error without detail");
    CHECK(r->status == (c->heads ? c->status : 0), "result.status %d, on_head saw %d", r->status,
          c->heads ? c->status : 0);
    CHECK(r->error || c->heads == 1, "a call without error and without a head");
    if (F.verbose)
        fprintf(stderr, "call %d: error %d status %d body %zu%s (%s)\n", (int)(c - F.calls),
                r->error, r->status, c->body, r->reused ? " reused" : "",
                r->detail ? r->detail : "-");
    if (F.p.chain)
        call_start();
}

static const struct sg_upstream_handlers handlers = {on_head, on_body, on_done};

static void call_start(void)
{
    if (F.n_calls == MAX_CALLS)
        return;
    struct call *c = &F.calls[F.n_calls++];
    *c = (struct call){.active = true};
    struct sg_upstream_request req = {
        .url = F.url,
        .body = F.p.post ? post_body : NULL,
        .body_len = F.p.post ? sizeof post_body - 1 : 0,
        .extra = {"Content-Type: application/json"},
        .n_extra = 1,
        .timeout_ms = CALL_TIMEOUT_MS,
        .connect_timeout_ms = CALL_TIMEOUT_MS,
    };
    c->call = sg_h1_start(F.h1, &req, &handlers, c);
    CHECK(c->call, "sg_h1_start refused %s", F.url);
    CHECK(c->heads == 0 && c->dones == 0, "a callback ran inside sg_h1_start");
    if (F.p.pause_at_start)
        call_pause(c);
}

/* Once per loop turn while anything is to do: resume paused calls that are due, write the next
 * chunk of each answer, close connections that have been quiet for GRACE_TURNS turns. */
static void on_pump(uv_idle_t *t)
{
    SG_UNUSED(t);
    F.turn++;
    bool busy = false;
    for (int i = 0; i < F.n_calls; i++) {
        struct call *c = &F.calls[i];
        if (!c->active || !c->paused)
            continue;
        if (F.turn >= c->resume_turn) {
            c->paused = false;
            progress();
            sg_h1_pause(c->call, false);
        } else {
            busy = true;
        }
    }
    for (int i = 0; i < MAX_SCONNS; i++) {
        struct sconn *k = &F.sc[i];
        if (!k->used || k->closing)
            continue;
        if (k->answering)
            sconn_write(k);
        else if (F.turn - SG_MAX(k->quiet_since, F.progress_turn) >= GRACE_TURNS)
            sconn_close(k);
        busy |= !k->closing;
    }
    if (!busy)
        uv_idle_stop(&F.pump);
}

static void on_watchdog(uv_timer_t *t)
{
    SG_UNUSED(t);
    fail("hang: the input did not finish within %d ms (%d calls, %d server connections open, "
         "%zu idle client connections)",
         WATCHDOG_MS, F.n_calls, F.sc_open, sg_h1_idle(F.h1));
}

static void setup_once(void)
{
    static bool ready;
    if (ready)
        return;
    ready = true;
    signal(SIGPIPE, SIG_IGN); /* a write to a reset connection */
    F.verbose = getenv("FUZZ_H1_VERBOSE") != NULL;
    CHECK(uv_loop_init(&F.loop) == 0, "uv_loop_init");
    uv_tcp_init(&F.loop, &F.listener);
    struct sockaddr_in a;
    uv_ip4_addr("127.0.0.1", 0, &a);
    CHECK(uv_tcp_bind(&F.listener, (const struct sockaddr *)&a, 0) == 0, "bind");
    CHECK(uv_listen((uv_stream_t *)&F.listener, 128, on_accept) == 0, "listen");
    int len = sizeof a;
    uv_tcp_getsockname(&F.listener, (struct sockaddr *)&a, &len);
    snprintf(F.url, sizeof F.url, "http://127.0.0.1:%d/v1/chat/completions", ntohs(a.sin_port));
    uv_idle_init(&F.loop, &F.pump);
    uv_timer_init(&F.loop, &F.watchdog);
    F.h1 = sg_h1_new(&F.loop, NULL);
    sg_buf_init(&F.wire, 0);
}

static void plan_parse(struct plan *p, const uint8_t *d, size_t n)
{
    *p = (struct plan){
        .pause = d[0] & 3,
        .pause_at_start = d[0] & 4,
        .cancel = (d[0] >> 3) & 3,
        .server_closes = d[0] & 32,
        .chain = d[0] & 64,
        .post = d[0] & 128,
        .chunking = d[1],
        .resume_turns = d[2] & 3,
        .cancel_at = d[2] >> 2,
    };
    const uint8_t *r = d + 4;
    size_t rn = n - 4;
    if (p->chain) {
        size_t split = (size_t)d[3] * rn / 255;
        p->seg[0] = r, p->seg_len[0] = split;
        p->seg[1] = r + split, p->seg_len[1] = rn - split;
        p->n_seg = 2;
    } else {
        p->seg[0] = r, p->seg_len[0] = rn;
        p->n_seg = 1;
    }
}

static bool calls_ended(void)
{
    for (int i = 0; i < F.n_calls; i++)
        if (F.calls[i].active)
            return false;
    return true;
}

static bool server_answering(void)
{
    for (int i = 0; i < MAX_SCONNS; i++)
        if (F.sc[i].used && F.sc[i].answering)
            return true;
    return false;
}

/* One run of a plan: from the first call's start until everything is closed again. */
static void run(const struct plan *p, uint32_t seed)
{
    F.p = *p;
    F.rng = seed * 2654435761u | 1;
    F.n_calls = 0;
    F.answered = 0;
    F.turn = F.progress_turn = 0;
    F.body_total = 0;
    sg_buf_reset(&F.wire);
    uv_timer_start(&F.watchdog, on_watchdog, WATCHDOG_MS, 0);

    call_start();
    while (!calls_ended() || server_answering())
        uv_run(&F.loop, UV_RUN_ONCE);
    /* Everything answered: the server hangs up, and the client must drop its idle connections
     * when it sees that. */
    for (int i = 0; i < MAX_SCONNS; i++)
        if (F.sc[i].used)
            sconn_close(&F.sc[i]);
    while (F.sc_open > 0 || sg_h1_idle(F.h1) > 0)
        uv_run(&F.loop, UV_RUN_ONCE);
    uv_timer_stop(&F.watchdog);
    uv_idle_stop(&F.pump);

    CHECK(sg_h1_active(F.h1) == 0, "%zu calls still active", sg_h1_active(F.h1));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    setup_once();
    struct plan p;
    plan_parse(&p, data, size);
    uint32_t seed = (uint32_t)data[1] << 8 | data[2];

    /* The reference: the first answer in one write, read without pausing or cancelling. */
    bool plain = !p.pause && !p.pause_at_start && !p.chunking;
    struct call ref = {0};
    if (!plain) {
        struct plan r = p;
        r.pause = PAUSE_NONE;
        r.pause_at_start = false;
        r.chunking = 0;
        r.cancel = CANCEL_NONE;
        r.chain = false;
        r.n_seg = 1;
        run(&r, seed);
        ref = F.calls[0];
    }
    run(&p, seed);
    /* How the answer was cut into reads, and pausing, must not change how the first call ends. */
    const struct call *c = &F.calls[0];
    if (!plain && c->dones) {
        CHECK(c->error == ref.error && c->status == ref.status,
              "the first call ended with error %d status %d; read in one piece and without "
              "pausing, with error %d status %d",
              c->error, c->status, ref.error, ref.status);
        CHECK(c->error || c->body == ref.body,
              "the first call got %zu body bytes; read in one piece and without pausing, %zu",
              c->body, ref.body);
    }
    return 0;
}
