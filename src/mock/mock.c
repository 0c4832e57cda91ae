/*
 * The mock provider on the http server: routing, key checks, the fault decision, delayed and
 * paced answers on uv timers, hangs and resets, and the /_mock/ control endpoint.
 *
 * Ownership: the mock owns its server and one `struct held` per request it has not finished at
 * once (delayed, streamed, hanging). A held request owns a uv timer; its memory goes in the
 * timer's close callback, and the mock's own memory goes when the last of those closes.
 */
#include "mock/mock.h"

#include "http/http.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>

#define LOG "mock"
#define ERRLEN 256

struct mock_stats {
    uint64_t requests, chat, messages, models, streams, completed, auth_failures;
    uint64_t errors_injected, hangs, resets, aborted;
    uint64_t by_status[600]; /* index = status; statuses outside 100..599 are not counted */
};

/* The last model request, kept as bytes and rendered only when someone asks. */
struct last_request {
    bool present;
    char *method, *path, *query;
    size_t n_headers;
    char **names, **values; /* names lowercased */
    char *body;
    size_t body_len;
    uint64_t at_ms;
};

struct held;

struct sg_mock {
    uv_loop_t *loop;
    struct sg_http_server *server;
    char *name, *expected_key, *model;
    struct sg_mock_faults faults, startup_faults;
    uint32_t reply_tokens;
    uint64_t rng;    /* error_rate draws: one per chat/messages request */
    uint64_t id_rng; /* ids, apart so they never shift the draws */
    struct mock_stats stats;
    uint64_t in_flight;
    struct last_request last;
    struct held *held;        /* requests not finished yet */
    uint64_t cache_seen[256]; /* prompt-cache prefixes seen, a ring: oldest forgotten first */
    size_t cache_next;
    unsigned open_handles;
    bool closing;
};

/* A request the mock answers later (latency, streams) or never (hang). */
struct held {
    struct sg_mock *m;
    struct sg_http_request *req;
    struct held *prev, *next;
    uv_timer_t timer;
    enum sg_mock_api api;
    struct sg_mock_decision d;
    bool aborted;
    bool streaming; /* the head went out */
    /* delayed non-streaming answer or error */
    struct sg_buf body;
    /* a stream */
    bool stream;
    struct sg_mock_answer ans;
    struct sg_mock_stream_plan plan;
    char id[48];
    char *model;
    char *input; /* the forced call's input (taken from the request: ans.input points here) */
    size_t content_sent;
    size_t content_limit; /* reset after this many content events (reset mid) */
    bool reset_pending;   /* the half was sent; the reset comes on the next timer */
    uint64_t t0_ms;       /* loop time the first content event went out */
    double tokens_per_s;  /* the pace when the request arrived; 0 = all at once */
};

static void count_status(struct sg_mock *m, int status)
{
    if (status >= 100 && status < (int)SG_ARRAY_LEN(m->stats.by_status))
        m->stats.by_status[status]++;
}

/* ---- responses ---- */

struct hdrs {
    struct sg_http_header h[6];
    size_t n;
    char retry[24];
};

static void hdrs_init(struct hdrs *hs, const struct sg_mock *m, const char *content_type,
                      uint32_t retry_after_s)
{
    hs->n = 0;
    hs->h[hs->n++] = (struct sg_http_header){SG_SLICE_LIT("x-mock-name"), sg_slice_of(m->name)};
    hs->h[hs->n++] =
        (struct sg_http_header){SG_SLICE_LIT("content-type"), sg_slice_of(content_type)};
    if (retry_after_s) {
        snprintf(hs->retry, sizeof hs->retry, "%u", (unsigned)retry_after_s);
        hs->h[hs->n++] =
            (struct sg_http_header){SG_SLICE_LIT("retry-after"), sg_slice_of(hs->retry)};
    }
}

static void respond_json(struct sg_mock *m, struct sg_http_request *req, int status,
                         uint32_t retry_after_s, const char *body, size_t len)
{
    struct hdrs hs;
    hdrs_init(&hs, m, "application/json", retry_after_s);
    sg_http_respond(req, status, hs.h, hs.n, body, len);
}

/* An error in `api`'s shape, sent now. */
static void respond_error(struct sg_mock *m, struct sg_http_request *req, enum sg_mock_api api,
                          int status, const char *code, const char *param, const char *message,
                          uint32_t retry_after_s)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_mock_render_error(&b, api, status, code, param, message);
    respond_json(m, req, status, retry_after_s, b.data, b.len);
    sg_buf_dispose(&b);
}

/* A 405 in `api`'s shape, with the Allow header HTTP requires. */
static void respond_405(struct sg_mock *m, struct sg_http_request *req, enum sg_mock_api api,
                        const char *allow, const char *message)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_mock_render_error(&b, api, 405, "method_not_allowed", NULL, message);
    struct hdrs hs;
    hdrs_init(&hs, m, "application/json", 0);
    hs.h[hs.n++] = (struct sg_http_header){SG_SLICE_LIT("allow"), sg_slice_of(allow)};
    sg_http_respond(req, 405, hs.h, hs.n, b.data, b.len);
    sg_buf_dispose(&b);
}

static void respond_buf(struct sg_mock *m, struct sg_http_request *req, int status,
                        struct sg_buf *b)
{
    respond_json(m, req, status, 0, b->data ? b->data : "", b->len);
}

/* A whole 200 answer: JSON, or the proxy page of the html fault. */
static void respond_answer(struct sg_mock *m, struct sg_http_request *req,
                           enum sg_mock_malformed how, struct sg_buf *b)
{
    struct hdrs hs;
    hdrs_init(&hs, m,
              how == SG_MOCK_MALFORMED_HTML ? "text/html; charset=utf-8" : "application/json", 0);
    sg_http_respond(req, 200, hs.h, hs.n, b->data ? b->data : "", b->len);
}

/* A whole answer broken as the malformed fault says: nothing, a proxy's page, its first half. */
static void malform_body(const struct sg_mock *m, struct sg_buf *b, enum sg_mock_malformed how)
{
    switch (how) {
    case SG_MOCK_MALFORMED_EMPTY: sg_buf_reset(b); break;
    case SG_MOCK_MALFORMED_HTML:
        sg_buf_reset(b);
        sg_buf_appendf(b,
                       "<html><head><title>502 Bad Gateway</title></head><body><h1>502 Bad "
                       "Gateway</h1><p>mock %s (malformed: html)</p></body></html>\n",
                       m->name);
        break;
    case SG_MOCK_MALFORMED_CUT:
        b->len /= 2;
        if (b->data)
            b->data[b->len] = '\0';
        break;
    case SG_MOCK_MALFORMED_NONE: break;
    }
}

/* ---- held requests ---- */

static void mock_destroy(struct sg_mock *m);

static void held_closed(uv_handle_t *h)
{
    struct held *hd = h->data;
    struct sg_mock *m = hd->m;
    sg_buf_dispose(&hd->body);
    free(hd->model);
    free(hd->input);
    free(hd);
    m->open_handles--;
    if (m->closing && m->open_handles == 0)
        mock_destroy(m);
}

static void held_on_timer(uv_timer_t *t);

static struct held *held_new(struct sg_mock *m, struct sg_http_request *req, enum sg_mock_api api,
                             const struct sg_mock_decision *d)
{
    struct held *hd = sg_xcalloc(1, sizeof *hd);
    hd->m = m;
    hd->req = req;
    hd->api = api;
    hd->d = *d;
    sg_buf_init(&hd->body, 0);
    uv_timer_init(m->loop, &hd->timer);
    hd->timer.data = hd;
    m->open_handles++;
    hd->next = m->held;
    if (m->held)
        m->held->prev = hd;
    m->held = hd;
    return hd;
}

/* The request has been finished (respond/end/reset): forget it and close the timer. */
static void held_done(struct held *hd)
{
    struct sg_mock *m = hd->m;
    if (hd->prev)
        hd->prev->next = hd->next;
    else
        m->held = hd->next;
    if (hd->next)
        hd->next->prev = hd->prev;
    hd->req = NULL;
    m->in_flight--;
    uv_timer_stop(&hd->timer);
    uv_close((uv_handle_t *)&hd->timer, held_closed);
}

static void held_on_abort(struct sg_http_request *req, void *ud)
{
    SG_UNUSED(req);
    struct held *hd = ud;
    hd->aborted = true;
    hd->m->stats.aborted++;
    /* Finish on the next loop turn rather than inside the server's callback. */
    uv_timer_start(&hd->timer, held_on_timer, 0, 0);
}

static void held_reset(struct held *hd)
{
    hd->m->stats.resets++;
    sg_http_reset(hd->req);
    held_done(hd);
}

/* Returns the bytes queued to the client after the write. */
static size_t stream_write_events(struct held *hd, size_t from, size_t to)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    for (size_t i = from; i < to; i++)
        sg_mock_render_event(&b, &hd->ans, i);
    size_t queued = b.len ? sg_http_stream_write(hd->req, b.data, b.len) : 0;
    sg_buf_dispose(&b);
    return queued;
}

static void stream_step(struct held *hd);

/* The client caught up with a fast stream: go on. */
static void on_stream_drain(struct sg_http_request *req, void *ud)
{
    SG_UNUSED(req);
    struct held *hd = ud;
    sg_http_stream_on_drain(hd->req, NULL, NULL);
    if (!hd->aborted)
        stream_step(hd);
}

static void stream_begin(struct held *hd)
{
    struct hdrs hs;
    hdrs_init(&hs, hd->m, "text/event-stream; charset=utf-8", 0);
    hs.h[hs.n++] = (struct sg_http_header){SG_SLICE_LIT("cache-control"), SG_SLICE_LIT("no-cache")};
    sg_http_stream_begin(hd->req, 200, hs.h, hs.n);
    count_status(hd->m, 200);
    hd->streaming = true;
}

static void stream_end(struct held *hd)
{
    sg_http_stream_end(hd->req);
    hd->m->stats.completed++;
    held_done(hd);
}

#define MOCK_STREAM_HIGH_WATER (256u * 1024)

/* Send what is due of a stream, then arm the timer for the next token, the reset or nothing
 * (the request was finished). */
static void stream_step(struct held *hd)
{
    size_t head = hd->plan.n_head, n = hd->plan.n_content;
    if (hd->reset_pending) {
        held_reset(hd);
        return;
    }
    if (!hd->streaming && hd->d.malformed == SG_MOCK_MALFORMED_EMPTY) {
        stream_begin(hd); /* a head, then the end: not one event */
        stream_end(hd);
        return;
    }
    if (!hd->streaming) {
        stream_begin(hd);
        hd->t0_ms = uv_now(hd->m->loop);
        size_t first = SG_MIN((size_t)1, hd->content_limit);
        stream_write_events(hd, 0, head + first); /* the head rides with the first token */
        hd->content_sent = first;
    } else {
        stream_write_events(hd, head + hd->content_sent, head + hd->content_sent + 1);
        hd->content_sent++;
    }
    if (!(hd->tokens_per_s > 0)) {
        /* As fast as possible, but no faster than the client reads, as a real server's socket
         * would make it: past a high-water mark it waits for the queue to drain. */
        while (hd->content_sent < hd->content_limit) {
            size_t to = SG_MIN(hd->content_limit, hd->content_sent + 256);
            size_t queued = stream_write_events(hd, head + hd->content_sent, head + to);
            hd->content_sent = to;
            if (queued > MOCK_STREAM_HIGH_WATER && hd->content_sent < hd->content_limit) {
                sg_http_stream_on_drain(hd->req, on_stream_drain, hd);
                return;
            }
        }
    }
    if (hd->content_sent >= hd->content_limit && hd->d.reset_mid) {
        /* Reset on a later turn so the chunks already written reach the peer first. */
        hd->reset_pending = true;
        uint64_t gap = sg_mock_token_offset_ms(hd->tokens_per_s, 1);
        uv_timer_start(&hd->timer, held_on_timer, SG_MAX(gap, 1), 0);
        return;
    }
    if (hd->content_sent >= hd->content_limit && hd->d.malformed == SG_MOCK_MALFORMED_CUT) {
        stream_end(hd); /* cleanly, but without the closing events */
        return;
    }
    if (hd->content_sent >= n) {
        stream_write_events(hd, head + n, head + n + hd->plan.n_tail);
        stream_end(hd);
        return;
    }
    /* Pace from the first token so rounding never accumulates. */
    uint64_t due = hd->t0_ms + sg_mock_token_offset_ms(hd->tokens_per_s, hd->content_sent);
    uint64_t now = uv_now(hd->m->loop);
    uv_timer_start(&hd->timer, held_on_timer, due > now ? due - now : 0, 0);
}

static void held_on_timer(uv_timer_t *t)
{
    struct held *hd = t->data;
    if (hd->aborted) {
        /* The client left: writes are no-ops now, but the request must still be finished. */
        sg_http_reset(hd->req);
        held_done(hd);
        return;
    }
    switch (hd->d.action) {
    case SG_MOCK_RESET: held_reset(hd); return;
    case SG_MOCK_HANG: return; /* never: only an abort or sg_mock_free ends it */
    case SG_MOCK_ERROR:
        respond_json(hd->m, hd->req, hd->d.status, hd->d.retry_after_s, hd->body.data,
                     hd->body.len);
        count_status(hd->m, hd->d.status);
        hd->m->stats.completed++;
        held_done(hd);
        return;
    case SG_MOCK_ANSWER:
        if (!hd->stream) {
            respond_answer(hd->m, hd->req, hd->d.malformed, &hd->body);
            count_status(hd->m, 200);
            hd->m->stats.completed++;
            held_done(hd);
            return;
        }
        stream_step(hd);
        return;
    }
}

/* ---- the last request ---- */

static void last_clear(struct last_request *l)
{
    free(l->method);
    free(l->path);
    free(l->query);
    for (size_t i = 0; i < l->n_headers; i++) {
        free(l->names[i]);
        free(l->values[i]);
    }
    free(l->names);
    free(l->values);
    free(l->body);
    memset(l, 0, sizeof *l);
}

static void last_record(struct last_request *l, const struct sg_http_request *req)
{
    last_clear(l);
    l->present = true;
    l->method = sg_xstrndup(req->method.p, req->method.n);
    /* Shown back as JSON strings: bytes that are not UTF-8 become U+FFFD. */
    l->path = sg_utf8_dup(req->path.p, req->path.n);
    l->query = sg_utf8_dup(req->query.p ? req->query.p : "", req->query.n);
    l->n_headers = req->n_headers;
    l->names = sg_xcalloc(req->n_headers + 1, sizeof *l->names);
    l->values = sg_xcalloc(req->n_headers + 1, sizeof *l->values);
    for (size_t i = 0; i < req->n_headers; i++) {
        char *name = sg_xstrndup(req->headers[i].name.p, req->headers[i].name.n);
        for (char *c = name; *c; c++)
            if (*c >= 'A' && *c <= 'Z')
                *c = (char)(*c + 32);
        l->names[i] = name;
        l->values[i] = sg_utf8_dup(req->headers[i].value.p, req->headers[i].value.n);
    }
    l->body = sg_xstrndup(req->body.data ? req->body.data : "", req->body.len);
    l->body_len = req->body.len;
    l->at_ms = sg_wall_ms();
}

static const char *last_header(const struct last_request *l, const char *name)
{
    for (size_t i = 0; i < l->n_headers; i++)
        if (strcmp(l->names[i], name) == 0)
            return l->values[i];
    return NULL;
}

static struct json_object *str_or_null(const char *s)
{
    return s ? json_object_new_string(s) : NULL;
}

static void last_render(const struct last_request *l, struct sg_buf *out)
{
    if (!l->present) {
        sg_buf_appends(out, "null");
        return;
    }
    char err[ERRLEN];
    struct json_object *o = json_object_new_object();
    struct json_object *body = sg_mock_json_parse(l->body, l->body_len, err, sizeof err), *v;
    json_object_object_add(o, "method", json_object_new_string(l->method));
    json_object_object_add(o, "path", json_object_new_string(l->path));
    json_object_object_add(o, "query", json_object_new_string(l->query));
    const char *model = NULL;
    if (body && json_object_is_type(body, json_type_object) &&
        json_object_object_get_ex(body, "model", &v) && json_object_is_type(v, json_type_string))
        model = json_object_get_string(v);
    json_object_object_add(o, "model", str_or_null(model));
    json_object_object_add(o, "authorization", str_or_null(last_header(l, "authorization")));
    json_object_object_add(o, "x_api_key", str_or_null(last_header(l, "x-api-key")));
    struct json_object *hs = json_object_new_object();
    for (size_t i = 0; i < l->n_headers; i++) {
        /* A repeated header is joined with ", ", as HTTP allows. */
        struct json_object *prev;
        if (json_object_object_get_ex(hs, l->names[i], &prev)) {
            char *joined = sg_xasprintf("%s, %s", json_object_get_string(prev), l->values[i]);
            json_object_object_add(hs, l->names[i], json_object_new_string(joined));
            free(joined);
        } else {
            json_object_object_add(hs, l->names[i], json_object_new_string(l->values[i]));
        }
    }
    json_object_object_add(o, "headers", hs);
    json_object_object_add(o, "body", body);
    json_object_object_add(o, "body_bytes", json_object_new_int64((int64_t)l->body_len));
    if (!body && l->body_len)
        json_object_object_add(o, "body_error", json_object_new_string(err));
    json_object_object_add(o, "received_at_ms", json_object_new_int64((int64_t)l->at_ms));
    size_t n;
    const char *s = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &n);
    sg_buf_append(out, s, n);
    json_object_put(o);
}

/* ---- model endpoints ---- */

/* Show a key the way OpenAI's error does: enough to recognise, not enough to use. */
static void mask_key(const char *k, size_t n, char *out, size_t outn)
{
    if (n <= 8)
        snprintf(out, outn, "***");
    else
        snprintf(out, outn, "%.3s***%.*s", k, 4, k + n - 4);
}

/* True when the key is acceptable; else false with the 401 message for the client in msg. */
static bool key_ok(const struct sg_mock *m, const struct sg_http_request *req, enum sg_mock_api api,
                   char *msg, size_t msgn)
{
    if (!m->expected_key)
        return true;
    struct sg_slice key;
    if (api == SG_MOCK_API_ANTHROPIC) {
        key = sg_http_header_get(req, "x-api-key");
        if (!key.p) {
            snprintf(msg, msgn, "x-api-key header is required (mock %s)", m->name);
            return false;
        }
    } else {
        struct sg_slice auth = sg_http_header_get(req, "authorization");
        if (!auth.p || auth.n < 7 || !sg_slice_ieq((struct sg_slice){auth.p, 7}, "bearer ")) {
            snprintf(msg, msgn,
                     "You didn't provide an API key. Provide it in an Authorization header "
                     "using Bearer auth (Authorization: Bearer YOUR_KEY). (mock %s)",
                     m->name);
            return false;
        }
        key = (struct sg_slice){auth.p + 7, auth.n - 7};
    }
    if (sg_ct_equal(key.p, key.n, m->expected_key, strlen(m->expected_key)))
        return true;
    char masked[32];
    mask_key(key.p, key.n, masked, sizeof masked);
    if (api == SG_MOCK_API_ANTHROPIC)
        snprintf(msg, msgn, "invalid x-api-key %s (mock %s)", masked, m->name);
    else
        snprintf(msg, msgn, "Incorrect API key provided: %s. (mock %s)", masked, m->name);
    return false;
}

/* Anthropic prompt caching: the first request with a prefix writes the cache, later ones read. */
static void apply_cache(struct sg_mock *m, const struct sg_mock_chat *c, struct sg_mock_answer *a)
{
    if (c->api != SG_MOCK_API_ANTHROPIC || c->cache_prefix_tokens == 0)
        return;
    bool hit = false;
    for (size_t i = 0; i < SG_ARRAY_LEN(m->cache_seen) && !hit; i++)
        hit = m->cache_seen[i] == c->cache_prefix_hash;
    if (!hit) {
        m->cache_seen[m->cache_next] = c->cache_prefix_hash;
        m->cache_next = (m->cache_next + 1) % SG_ARRAY_LEN(m->cache_seen);
    }
    sg_mock_answer_cache(a, c->cache_prefix_tokens, hit);
}

static void make_id(struct sg_mock *m, enum sg_mock_api api, char *out, size_t n)
{
    uint64_t a = sg_mock_rand_next(&m->id_rng), b = sg_mock_rand_next(&m->id_rng);
    snprintf(out, n, "%s%016" PRIx64 "%08" PRIx32, api == SG_MOCK_API_OPENAI ? "chatcmpl-" : "msg_",
             a, (uint32_t)b);
}

static void handle_models(struct sg_mock *m, struct sg_http_request *req)
{
    m->stats.models++;
    /* Either provider's key header works here: both APIs have a models list. */
    char msg[ERRLEN];
    bool anthropic =
        sg_http_header_get(req, "x-api-key").p && !sg_http_header_get(req, "authorization").p;
    enum sg_mock_api api = anthropic ? SG_MOCK_API_ANTHROPIC : SG_MOCK_API_OPENAI;
    if (!key_ok(m, req, api, msg, sizeof msg)) {
        m->stats.auth_failures++;
        count_status(m, 401);
        m->stats.completed++;
        respond_error(m, req, api, 401, NULL, NULL, msg, 0);
        return;
    }
    struct sg_buf b;
    sg_buf_init(&b, 0);
    const char *id = m->model ? m->model : "mock-model";
    sg_buf_appends(&b, "{\"object\":\"list\",\"data\":[{\"id\":\"");
    sg_buf_append_json_str(&b, id, strlen(id));
    sg_buf_appends(&b, "\",\"object\":\"model\",\"type\":\"model\",\"created\":1700000000,"
                       "\"owned_by\":\"");
    sg_buf_append_json_str(&b, m->name, strlen(m->name));
    sg_buf_appends(&b, "\"}]}");
    count_status(m, 200);
    m->stats.completed++;
    respond_buf(m, req, 200, &b);
    sg_buf_dispose(&b);
}

/* POST /v1/embeddings (OpenAI format): one small deterministic vector per input, usage by the
 * same byte estimate as chat. No faults beyond the key check: embeddings are a side path. */
static void handle_embeddings(struct sg_mock *m, struct sg_http_request *req)
{
    char msg[ERRLEN];
    if (!key_ok(m, req, SG_MOCK_API_OPENAI, msg, sizeof msg)) {
        m->stats.auth_failures++;
        count_status(m, 401);
        m->stats.completed++;
        respond_error(m, req, SG_MOCK_API_OPENAI, 401, NULL, NULL, msg, 0);
        return;
    }
    struct json_object *root = sg_mock_json_parse(req->body.data, req->body.len, msg, sizeof msg);
    struct json_object *model = NULL, *input = NULL;
    if (root && json_object_is_type(root, json_type_object)) {
        json_object_object_get_ex(root, "model", &model);
        json_object_object_get_ex(root, "input", &input);
    }
    if (!json_object_is_type(model, json_type_string) ||
        !(json_object_is_type(input, json_type_string) ||
          json_object_is_type(input, json_type_array))) {
        json_object_put(root);
        count_status(m, 400);
        m->stats.completed++;
        respond_error(m, req, SG_MOCK_API_OPENAI, 400, NULL, "input",
                      "model (a string) and input (a string or an array) are required", 0);
        return;
    }
    /* OpenAI's base64: the vector's float32 values, little-endian, base64-encoded (the official
     * SDKs ask for it by default and decode it). */
    struct json_object *fmt = NULL;
    json_object_object_get_ex(root, "encoding_format", &fmt);
    bool b64 = json_object_is_type(fmt, json_type_string) &&
               strcmp(json_object_get_string(fmt), "base64") == 0;
    size_t n = json_object_is_type(input, json_type_array) ? json_object_array_length(input) : 1;
    uint64_t tokens = 0;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, "{\"object\":\"list\",\"data\":[");
    for (size_t i = 0; i < n; i++) {
        struct json_object *it = json_object_is_type(input, json_type_array)
                                     ? json_object_array_get_idx(input, i)
                                     : input;
        size_t len =
            json_object_is_type(it, json_type_string) ? (size_t)json_object_get_string_len(it) : 1;
        tokens += sg_mock_count_tokens(len);
        float v[4] = {(float)(len % 7) / 7.0f, 0.5f, -0.25f, (float)i / 10.0f};
        sg_buf_appendf(&b, "%s{\"object\":\"embedding\",\"index\":%zu,\"embedding\":", i ? "," : "",
                       i);
        if (b64) {
            unsigned char raw[sizeof v], text[4 * ((sizeof raw + 2) / 3) + 1];
            for (size_t k = 0; k < 4; k++) {
                uint32_t u;
                memcpy(&u, &v[k], sizeof u);
                for (int j = 0; j < 4; j++)
                    raw[k * 4 + (size_t)j] = (unsigned char)(u >> (8 * j));
            }
            EVP_EncodeBlock(text, raw, (int)sizeof raw);
            sg_buf_appendf(&b, "\"%s\"}", (const char *)text);
        } else {
            sg_buf_appendf(&b, "[%.4f,%.4f,%.4f,%.4f]}", (double)v[0], (double)v[1], (double)v[2],
                           (double)v[3]);
        }
    }
    sg_buf_appends(&b, "],\"model\":\"");
    const char *mid = m->model ? m->model : json_object_get_string(model);
    sg_buf_append_json_str(&b, mid, strlen(mid));
    sg_buf_appendf(&b, "\",\"usage\":{\"prompt_tokens\":%llu,\"total_tokens\":%llu}}",
                   (unsigned long long)tokens, (unsigned long long)tokens);
    json_object_put(root);
    count_status(m, 200);
    m->stats.completed++;
    respond_buf(m, req, 200, &b);
    sg_buf_dispose(&b);
}

static void handle_chat(struct sg_mock *m, struct sg_http_request *req, enum sg_mock_api api)
{
    if (api == SG_MOCK_API_OPENAI)
        m->stats.chat++;
    else
        m->stats.messages++;
    char autherr[ERRLEN], err[ERRLEN], param[64];
    bool kok = key_ok(m, req, api, autherr, sizeof autherr);
    struct sg_mock_chat chat;
    bool bok = sg_mock_chat_parse(api, req->body.data ? req->body.data : "", req->body.len, &chat,
                                  err, sizeof err, param, sizeof param) == 0;
    if (bok && chat.stream)
        m->stats.streams++;
    struct sg_mock_decision d;
    /* One draw per request whatever happens, so the n-th request always gets the n-th draw. */
    double draw = sg_mock_rand_unit(&m->rng);
    sg_mock_decide(&m->faults, kok, bok, bok && chat.stream, draw, &d);

    struct held *hd = NULL;
    struct sg_buf body;
    sg_buf_init(&body, 0);
    switch (d.action) {
    case SG_MOCK_RESET:
        if (d.delay_ms == 0) {
            m->stats.resets++;
            sg_http_reset(req);
            m->in_flight--;
            goto out;
        }
        break;
    case SG_MOCK_HANG: m->stats.hangs++; break;
    case SG_MOCK_ERROR: {
        const char *msg = NULL, *code = NULL, *prm = NULL;
        char injected[ERRLEN];
        if (d.cause == SG_MOCK_CAUSE_AUTH) {
            m->stats.auth_failures++;
            msg = autherr;
        } else if (d.cause == SG_MOCK_CAUSE_INVALID) {
            msg = err;
            prm = param;
        } else {
            m->stats.errors_injected++;
            snprintf(injected, sizeof injected, "Mock %s: injected %d (%s).", m->name, d.status,
                     d.cause == SG_MOCK_CAUSE_FORCED ? "status fault" : "error_rate fault");
            msg = injected;
        }
        sg_mock_render_error(&body, api, d.status, code, prm, msg);
        if (d.delay_ms == 0) {
            respond_json(m, req, d.status, d.retry_after_s, body.data, body.len);
            count_status(m, d.status);
            m->stats.completed++;
            m->in_flight--;
            goto out;
        }
        break;
    }
    case SG_MOCK_ANSWER: {
        char id[48];
        make_id(m, api, id, sizeof id);
        if (!chat.stream || d.malformed == SG_MOCK_MALFORMED_HTML) {
            struct sg_mock_answer a;
            sg_mock_answer_init(&a, &chat, m->name, m->model, id, sg_wall_ms() / 1000,
                                m->reply_tokens);
            apply_cache(m, &chat, &a);
            a.no_usage = d.no_usage && api == SG_MOCK_API_OPENAI;
            sg_mock_render_body(&body, &a);
            malform_body(m, &body, d.malformed);
            if (d.delay_ms == 0) {
                respond_answer(m, req, d.malformed, &body);
                count_status(m, 200);
                m->stats.completed++;
                m->in_flight--;
                goto out;
            }
            break;
        }
        hd = held_new(m, req, api, &d);
        hd->stream = true;
        memcpy(hd->id, id, sizeof id);
        hd->model = sg_xstrdup(m->model ? m->model : chat.model);
        hd->input = chat.input; /* the answer outlives the request's parse */
        chat.input = NULL;
        sg_mock_answer_init(&hd->ans, &chat, m->name, hd->model, hd->id, sg_wall_ms() / 1000,
                            m->reply_tokens);
        hd->ans.input = hd->input;
        apply_cache(m, &chat, &hd->ans);
        hd->ans.no_usage = d.no_usage && api == SG_MOCK_API_OPENAI;
        sg_mock_stream_plan(&hd->ans, &hd->plan);
        hd->content_limit = d.reset_mid || d.malformed == SG_MOCK_MALFORMED_CUT
                                ? hd->plan.n_content / 2
                                : hd->plan.n_content;
        hd->tokens_per_s = m->faults.tokens_per_s;
        break;
    }
    }
    if (!hd) {
        hd = held_new(m, req, api, &d);
        sg_buf_append(&hd->body, body.data ? body.data : "", body.len);
    }
    sg_http_request_on_abort(req, held_on_abort, hd);
    if (d.action != SG_MOCK_HANG) {
        if (hd->stream && d.delay_ms == 0)
            stream_step(hd); /* no reason to wait a loop turn */
        else
            uv_timer_start(&hd->timer, held_on_timer, d.delay_ms, 0);
    }
out:
    sg_buf_dispose(&body);
    sg_mock_chat_dispose(&chat);
}

/* ---- control endpoint ---- */

static void control_error(struct sg_mock *m, struct sg_http_request *req, int status,
                          const char *message)
{
    respond_error(m, req, SG_MOCK_API_OPENAI, status, NULL, NULL, message, 0);
}

static void respond_faults(struct sg_mock *m, struct sg_http_request *req)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_mock_faults_to_json(&b, &m->faults);
    respond_buf(m, req, 200, &b);
    sg_buf_dispose(&b);
}

static void log_faults(struct sg_mock *m, const char *why)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_mock_faults_to_json(&b, &m->faults);
    SG_INFO(LOG, "%s: faults %s: %s", m->name, why, b.data);
    sg_buf_dispose(&b);
}

static void render_stats(struct sg_mock *m, struct sg_buf *b)
{
    const struct mock_stats *s = &m->stats;
    sg_buf_appends(b, "{\"name\":\"");
    sg_buf_append_json_str(b, m->name, strlen(m->name));
    sg_buf_appendf(b,
                   "\",\"requests\":%" PRIu64 ",\"chat\":%" PRIu64 ",\"messages\":%" PRIu64
                   ",\"models\":%" PRIu64 ",\"streams\":%" PRIu64 ",\"completed\":%" PRIu64
                   ",\"by_status\":{",
                   s->requests, s->chat, s->messages, s->models, s->streams, s->completed);
    bool first = true;
    for (size_t i = 0; i < SG_ARRAY_LEN(s->by_status); i++) {
        if (!s->by_status[i])
            continue;
        sg_buf_appendf(b, "%s\"%zu\":%" PRIu64, first ? "" : ",", i, s->by_status[i]);
        first = false;
    }
    sg_buf_appendf(b,
                   "},\"auth_failures\":%" PRIu64 ",\"errors_injected\":%" PRIu64
                   ",\"hangs\":%" PRIu64 ",\"resets\":%" PRIu64 ",\"aborted\":%" PRIu64
                   ",\"in_flight\":%" PRIu64 ",\"connections_accepted\":%" PRIu64 "}",
                   s->auth_failures, s->errors_injected, s->hangs, s->resets, s->aborted,
                   m->in_flight, m->server ? sg_http_server_accepted(m->server) : 0);
}

static void handle_control(struct sg_mock *m, struct sg_http_request *req)
{
    struct sg_slice p = req->path, meth = req->method;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    if (sg_slice_eq(p, "/_mock/faults")) {
        if (sg_slice_eq(meth, "GET")) {
            respond_faults(m, req);
        } else if (sg_slice_eq(meth, "POST") || sg_slice_eq(meth, "PATCH")) {
            char err[ERRLEN];
            if (sg_mock_faults_merge(&m->faults, req->body.data ? req->body.data : "",
                                     req->body.len, err, sizeof err)) {
                control_error(m, req, 400, err);
            } else {
                log_faults(m, "changed");
                respond_faults(m, req);
            }
        } else if (sg_slice_eq(meth, "DELETE")) {
            m->faults = m->startup_faults;
            log_faults(m, "back to startup");
            respond_faults(m, req);
        } else {
            respond_405(m, req, SG_MOCK_API_OPENAI, "GET, HEAD, POST, PATCH, DELETE",
                        "use GET, POST, PATCH or DELETE on /_mock/faults");
        }
    } else if (sg_slice_eq(p, "/_mock/stats")) {
        if (!sg_slice_eq(meth, "GET")) {
            respond_405(m, req, SG_MOCK_API_OPENAI, "GET, HEAD", "use GET on /_mock/stats");
        } else {
            render_stats(m, &b);
            respond_buf(m, req, 200, &b);
        }
    } else if (sg_slice_eq(p, "/_mock/stats/reset")) {
        if (!sg_slice_eq(meth, "POST")) {
            respond_405(m, req, SG_MOCK_API_OPENAI, "POST", "use POST on /_mock/stats/reset");
        } else {
            memset(&m->stats, 0, sizeof m->stats);
            render_stats(m, &b);
            respond_buf(m, req, 200, &b);
        }
    } else if (sg_slice_eq(p, "/_mock/last")) {
        if (!sg_slice_eq(meth, "GET")) {
            respond_405(m, req, SG_MOCK_API_OPENAI, "GET, HEAD", "use GET on /_mock/last");
        } else {
            last_render(&m->last, &b);
            respond_buf(m, req, 200, &b);
        }
    } else if (sg_slice_eq(p, "/_mock/health")) {
        if (!sg_slice_eq(meth, "GET")) {
            respond_405(m, req, SG_MOCK_API_OPENAI, "GET, HEAD", "use GET on /_mock/health");
        } else {
            sg_buf_appends(&b, "{\"ok\":true,\"name\":\"");
            sg_buf_append_json_str(&b, m->name, strlen(m->name));
            sg_buf_appendf(&b, "\",\"port\":%d}", sg_mock_port(m));
            respond_buf(m, req, 200, &b);
        }
    } else {
        /* A typo here must not look like a model error (a 404's default code): say what the
         * control paths are. */
        char msg[ERRLEN * 2];
        snprintf(msg, sizeof msg,
                 "Unknown control path %.*s (mock %.64s). The control API is /_mock/faults (GET, "
                 "POST, PATCH, DELETE), /_mock/stats (GET), /_mock/stats/reset (POST), "
                 "/_mock/last (GET), /_mock/health (GET).",
                 (int)SG_MIN(p.n, 64), p.p, m->name);
        respond_error(m, req, SG_MOCK_API_OPENAI, 404, "not_found", NULL, msg, 0);
    }
    sg_buf_dispose(&b);
}

static bool path_is(struct sg_slice p, const char *a, const char *b)
{
    return sg_slice_eq(p, a) || (b && sg_slice_eq(p, b));
}

static void on_request(struct sg_http_request *req, void *ud)
{
    struct sg_mock *m = ud;
    struct sg_slice p = req->path;
    if (p.n >= 7 && memcmp(p.p, "/_mock/", 7) == 0) {
        handle_control(m, req);
        return;
    }
    bool chat = path_is(p, "/v1/chat/completions", "/chat/completions");
    bool messages = path_is(p, "/v1/messages", NULL);
    bool models = path_is(p, "/v1/models", "/models");
    bool embeddings = path_is(p, "/v1/embeddings", "/embeddings");
    if (!chat && !messages && !models && !embeddings) {
        char msg[ERRLEN];
        snprintf(msg, sizeof msg,
                 "Unknown path %.*s (mock %s serves /v1/chat/completions, "
                 "/v1/messages, /v1/embeddings, /v1/models and /_mock/)",
                 (int)SG_MIN(p.n, 100), p.p, m->name);
        respond_error(m, req, SG_MOCK_API_OPENAI, 404, "not_found", NULL, msg, 0);
        return;
    }
    enum sg_mock_api api = messages ? SG_MOCK_API_ANTHROPIC : SG_MOCK_API_OPENAI;
    const char *want = models ? "GET" : "POST";
    if (!sg_slice_eq(req->method, want)) {
        char msg[ERRLEN];
        snprintf(msg, sizeof msg, "Use %s on %.*s.", want, (int)SG_MIN(p.n, 100), p.p);
        respond_405(m, req, api, models ? "GET, HEAD" : "POST", msg);
        return;
    }
    m->stats.requests++;
    m->in_flight++;
    last_record(&m->last, req);
    if (models) {
        handle_models(m, req);
        m->in_flight--;
        return;
    }
    if (embeddings) {
        handle_embeddings(m, req);
        m->in_flight--;
        return;
    }
    handle_chat(m, req, api);
}

/* ---- lifecycle ---- */

struct sg_mock *sg_mock_new(uv_loop_t *loop, const struct sg_mock_options *opts)
{
    struct sg_mock *m = sg_xcalloc(1, sizeof *m);
    m->loop = loop;
    m->name = sg_xstrdup(opts->name && *opts->name ? opts->name : "mock");
    /* The name goes into a header: no control character may split it. */
    for (char *c = m->name; *c; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '_';
    m->expected_key = opts->expected_key ? sg_xstrdup(opts->expected_key) : NULL;
    m->model = opts->model ? sg_xstrdup(opts->model) : NULL;
    m->faults = m->startup_faults = opts->faults;
    m->reply_tokens = opts->reply_tokens ? opts->reply_tokens : SG_MOCK_REPLY_TOKENS;
    m->rng = opts->seed ? opts->seed : sg_rand_u64();
    /* Ids differ between mocks and runs unless seeded; they never consume draws. */
    m->id_rng = m->rng ^ 0x5851f42d4c957f2dull;
    for (const char *c = m->name; *c; c++)
        m->id_rng = (m->id_rng ^ (unsigned char)*c) * 0x100000001b3ull;
    m->server = sg_http_server_new(loop, opts->limits, on_request, m);
    return m;
}

int sg_mock_listen(struct sg_mock *m, const char *host, int port)
{
    int rc = sg_http_server_listen(m->server, host, port, false);
    if (rc == 0)
        SG_INFO(LOG, "%s: listening on %s:%d", m->name, host, sg_mock_port(m));
    return rc;
}

int sg_mock_port(const struct sg_mock *m)
{
    return m->server ? sg_http_server_port(m->server) : 0;
}

const char *sg_mock_name(const struct sg_mock *m)
{
    return m->name;
}

void sg_mock_set_faults(struct sg_mock *m, const struct sg_mock_faults *f)
{
    m->faults = *f;
    log_faults(m, "set");
}

void sg_mock_get_faults(const struct sg_mock *m, struct sg_mock_faults *out)
{
    *out = m->faults;
}

static void mock_destroy(struct sg_mock *m)
{
    last_clear(&m->last);
    free(m->name);
    free(m->expected_key);
    free(m->model);
    free(m);
}

void sg_mock_free(struct sg_mock *m)
{
    if (!m)
        return;
    m->closing = true;
    while (m->held) {
        struct held *hd = m->held;
        sg_http_reset(hd->req);
        held_done(hd);
    }
    if (m->server) {
        sg_http_server_free(m->server);
        m->server = NULL;
    }
    if (m->open_handles == 0)
        mock_destroy(m);
}
