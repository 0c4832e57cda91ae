/*
 * The drill's HTTP client. Chat requests go through the project's own upstream client
 * (src/upstream: keep-alive pool, timings from the same code that measures providers), so the
 * load is cheap and its timings are honest. Admin calls need DELETE, which the upstream client
 * does not speak, and are rare: they go through libcurl on libuv's thread pool, so the loop
 * keeps sending load while the gateway is being told to break or mend a deployment.
 */
#include "drill_int.h"
#include "provider/provider.h"
#include "upstream/upstream.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

#define MAX_ANSWER (1u << 20)     /* a chat answer the drill reads (they are small) */
#define MAX_ADMIN_BODY (8u << 20) /* /metrics can be large */

int sg_drill_client_init(struct sg_drill_client *c, uv_loop_t *loop, const char *base_url,
                         const char *key, const char *feature, const struct sg_config *cfg,
                         uint64_t t0_us, char *err, size_t err_len)
{
    memset(c, 0, sizeof *c);
    size_t n = strlen(base_url);
    while (n && base_url[n - 1] == '/')
        n--;
    if (n < 8 || (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)) {
        snprintf(err, err_len, "--gateway must be an http:// or https:// URL, got '%s'", base_url);
        return SG_EINVAL;
    }
    c->loop = loop;
    c->cfg = cfg;
    c->base = sg_xstrndup(base_url, n);
    c->chat_url = sg_xasprintf("%s/v1/chat/completions", c->base);
    c->key = sg_xstrdup(key ? key : "");
    c->t0_us = t0_us;
    /* The request deadline: the gateway's own plus a margin, so its 504 arrives first. */
    c->timeout_ms = (cfg && cfg->router.timeout_ms ? cfg->router.timeout_ms : 30000) + 5000;
    char *auth = sg_xasprintf("Authorization: Bearer %s", c->key);
    char *feat = feature ? sg_xasprintf("x-slogate-feature: %s", feature) : NULL;
    const char *lines[3] = {"Content-Type: application/json", auth, feat};
    c->hdrs = sg_upstream_headers_new(lines, feat ? 3 : 2);
    free(auth);
    free(feat);
    c->up = sg_upstream_new(loop);
    return SG_OK;
}

struct sg_drill_call {
    struct sg_drill_call *prev, *next; /* the client's list of calls in flight */
    struct sg_drill_client *c;
    struct sg_upstream_call *call;
    char *body;
    bool stream;
    uint64_t t_send_us, t_head_us;
    struct sg_buf answer;
    struct sg_drill_sample s;
    char cost_hdr[32];
    sg_drill_chat_cb cb;
    void *ud;
};

static void call_free(struct sg_drill_call *k)
{
    struct sg_drill_client *c = k->c;
    if (k->prev)
        k->prev->next = k->next;
    else
        c->calls = k->next;
    if (k->next)
        k->next->prev = k->prev;
    sg_buf_dispose(&k->answer);
    free(k->body);
    free(k);
}

void sg_drill_client_dispose(struct sg_drill_client *c)
{
    /* Calls still in flight get no callback after a cancel: free them here. */
    while (c->calls) {
        if (c->calls->call)
            sg_upstream_cancel(c->calls->call);
        c->in_flight--;
        call_free(c->calls);
    }
    if (c->up)
        sg_upstream_free(c->up);
    c->up = NULL;
    sg_upstream_headers_free(c->hdrs);
    c->hdrs = NULL;
    free(c->base);
    free(c->chat_url);
    free(c->key);
    c->base = c->chat_url = c->key = NULL;
}

/* ---- chat ---- */

static void copy_slice(char *out, size_t n, struct sg_slice v)
{
    size_t l = SG_MIN(v.n, n - 1);
    memcpy(out, v.p, l);
    out[l] = '\0';
}

/* A count header (x-slogate-attempts, x-slogate-failover-hops): 0 unless it is a count. */
static int slice_count(struct sg_slice v)
{
    char num[16];
    copy_slice(num, sizeof num, v);
    int64_t x = 0;
    return sg_parse_i64(num, 0, INT32_MAX, &x) ? (int)x : 0;
}

static void on_chat_head(void *ud, int status, const struct sg_http_header *h, size_t n)
{
    struct sg_drill_call *k = ud;
    k->t_head_us = sg_now_us();
    k->s.status = status;
    for (size_t i = 0; i < n; i++) {
        if (sg_slice_ieq(h[i].name, "x-slogate-deployment"))
            copy_slice(k->s.deployment, sizeof k->s.deployment, h[i].value);
        else if (sg_slice_ieq(h[i].name, "x-slogate-attempts"))
            k->s.attempts = slice_count(h[i].value);
        else if (sg_slice_ieq(h[i].name, "x-slogate-failover-hops"))
            k->s.hops = slice_count(h[i].value);
        else if (sg_slice_ieq(h[i].name, "x-slogate-bypass"))
            k->s.bypass = sg_slice_eq(h[i].value, "true");
        else if (sg_slice_ieq(h[i].name, "x-slogate-cost-usd"))
            copy_slice(k->cost_hdr, sizeof k->cost_hdr, h[i].value);
    }
}

static void on_chat_body(void *ud, const char *data, size_t len)
{
    struct sg_drill_call *k = ud;
    sg_buf_append(&k->answer, data, len); /* past the cap the rest is dropped: shape says so */
}

static int64_t json_i64(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_int))
        return -1;
    return json_object_get_int64(v);
}

static const char *json_str_of(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    if (!o || !json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Model, usage and the error message of one JSON object (an answer, a chunk or an error). */
static void read_object(struct sg_drill_sample *s, struct json_object *o)
{
    if (!o || !json_object_is_type(o, json_type_object))
        return;
    const char *model = json_str_of(o, "model");
    if (model)
        snprintf(s->model, sizeof s->model, "%s", model);
    struct json_object *u = NULL, *e = NULL;
    if (json_object_object_get_ex(o, "usage", &u) && json_object_is_type(u, json_type_object)) {
        s->input_tokens = json_i64(u, "prompt_tokens");
        s->output_tokens = json_i64(u, "completion_tokens");
    }
    if (json_object_object_get_ex(o, "error", &e) && json_object_is_type(e, json_type_object)) {
        const char *msg = json_str_of(e, "message");
        snprintf(s->error, sizeof s->error, "%s", msg ? msg : "error without a message");
    }
}

static struct json_object *parse(const char *p, size_t n)
{
    struct json_tokener *tok = json_tokener_new_ex(64);
    struct json_object *o = json_tokener_parse_ex(tok, p, (int)n);
    json_tokener_free(tok);
    return o;
}

void sg_drill_answer_read(struct sg_drill_sample *s, bool stream, const char *p, size_t n)
{
    if (!p)
        p = "";
    bool sse = stream && s->status >= 200 && s->status < 300;
    sg_drill_shape(p, n, sse, s->shape, sizeof s->shape);
    if (!sse) {
        struct json_object *o = parse(p, n), *choices = NULL;
        read_object(s, o);
        /* A 2xx that is not a chat answer (a proxy's page, an empty or cut body) is no
         * success: the client's SDK would raise on it. */
        if (s->status >= 200 && s->status < 300 && !s->error[0] &&
            !(json_object_is_type(o, json_type_object) &&
              json_object_object_get_ex(o, "choices", &choices) &&
              json_object_is_type(choices, json_type_array)))
            snprintf(s->error, sizeof s->error,
                     "HTTP %d but the body is not a chat completion "
                     "(no JSON object with a choices list)",
                     s->status);
        json_object_put(o);
        return;
    }
    const char *end = p + n;
    bool done = false;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (le - p > 5 && memcmp(p, "data:", 5) == 0) {
            const char *d = p + 5;
            while (d < le && *d == ' ')
                d++;
            size_t dl = (size_t)(le - d);
            if (dl && d[dl - 1] == '\r')
                dl--;
            if (dl == 6 && memcmp(d, "[DONE]", 6) == 0) {
                done = true;
            } else {
                struct json_object *o = parse(d, dl);
                read_object(s, o);
                json_object_put(o);
            }
        }
        p = le + 1;
    }
    if (!done && !s->error[0])
        snprintf(s->error, sizeof s->error, "the stream ended without [DONE]");
}

/* usage × the answering deployment's prices (from the config, or the built-in table). */
static bool price_usage(struct sg_drill_call *k)
{
    const struct sg_config *cfg = k->c->cfg;
    if (!cfg || !k->s.deployment[0] || k->s.input_tokens < 0 || k->s.output_tokens < 0)
        return false;
    for (size_t i = 0; i < cfg->n_deployments; i++) {
        const struct sg_deployment *d = &cfg->deployments[i];
        if (strcmp(d->id, k->s.deployment) != 0)
            continue;
        struct sg_price pr;
        if (!sg_pricing_resolve(d, &pr))
            return false;
        struct sg_usage u = {
            .input_tokens = k->s.input_tokens, .output_tokens = k->s.output_tokens, .known = true};
        k->s.cost_usd = sg_pricing_cost(&pr, &u);
        k->s.cost_known = true;
        return true;
    }
    return false;
}

/* Cost: the gateway's own figure when it sends one, else usage × the deployment's prices. A
 * stream's header goes out before its usage is known (an estimate), so a stream that reported
 * usage is priced from it instead. */
static void price(struct sg_drill_call *k)
{
    if (k->cost_hdr[0] && !(k->stream && k->s.input_tokens >= 0 && price_usage(k))) {
        char *e;
        double v = strtod(k->cost_hdr, &e);
        if (*e == '\0' && v >= 0) {
            k->s.cost_usd = v;
            k->s.cost_known = true;
            return;
        }
    }
    if (!k->s.cost_known)
        price_usage(k);
}

static void on_chat_done(void *ud, const struct sg_upstream_result *r)
{
    struct sg_drill_call *k = ud;
    uint64_t now = sg_now_us();
    k->c->in_flight--;
    k->s.total_ms = (double)(now - k->t_send_us) / 1000.0;
    k->s.ttfb_ms = k->t_head_us ? (double)(k->t_head_us - k->t_send_us) / 1000.0 : 0;
    if (r->error) {
        /* A cut answer still had a status: it is a failure all the same. */
        snprintf(k->s.error, sizeof k->s.error, "no complete answer from the gateway: %s",
                 r->detail ? r->detail : sg_strerror(r->error));
        if (!k->t_head_us)
            k->s.status = 0;
    } else {
        sg_drill_answer_read(&k->s, k->stream, k->answer.data, k->answer.len);
    }
    k->s.ok = !r->error && k->s.status >= 200 && k->s.status < 300 && !k->s.error[0];
    if (!k->s.ok && !k->s.error[0])
        snprintf(k->s.error, sizeof k->s.error, "HTTP %d", k->s.status);
    if (k->s.ok)
        price(k);
    k->call = NULL;
    k->cb(k->ud, &k->s);
    call_free(k);
}

static const struct sg_upstream_handlers chat_handlers = {on_chat_head, on_chat_body, on_chat_done};

void sg_drill_chat(struct sg_drill_client *c, const char *alias, const char *prompt, bool stream,
                   enum sg_drill_phase phase, sg_drill_chat_cb cb, void *ud)
{
    struct sg_drill_call *k = sg_xcalloc(1, sizeof *k);
    k->c = c;
    k->stream = stream;
    k->cb = cb;
    k->ud = ud;
    k->s.phase = (uint8_t)phase;
    k->s.input_tokens = k->s.output_tokens = -1;
    sg_buf_init(&k->answer, MAX_ANSWER);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, "{\"model\":\"");
    sg_buf_append_json_str(&b, alias, strlen(alias));
    sg_buf_appends(&b, "\",\"messages\":[{\"role\":\"user\",\"content\":\"");
    sg_buf_append_json_str(&b, prompt, strlen(prompt));
    /* `user` names the drill in the gateway's request log; streams ask for usage so they can be
     * priced like whole answers. */
    sg_buf_appends(&b, "\"}],\"user\":\"slogate-drill\"");
    if (stream)
        sg_buf_appends(&b, ",\"stream\":true,\"stream_options\":{\"include_usage\":true}");
    sg_buf_appends(&b, "}");
    size_t len;
    k->body = sg_buf_steal(&b, &len);
    struct sg_upstream_request r = {
        .url = c->chat_url,
        .body = k->body,
        .body_len = len,
        .headers = c->hdrs,
        .timeout_ms = c->timeout_ms,
    };
    k->t_send_us = sg_now_us();
    k->s.t_send_ms = (double)(k->t_send_us - c->t0_us) / 1000.0;
    c->in_flight++;
    k->next = c->calls;
    if (c->calls)
        c->calls->prev = k;
    c->calls = k;
    k->call = sg_upstream_start(c->up, &r, &chat_handlers, k);
}

/* ---- admin calls: curl on the thread pool ---- */

struct admin_work {
    uv_work_t req;
    char *url, *method, *body, *auth;
    uint32_t timeout_ms;
    struct sg_drill_reply *out;
    int rc;
    bool done;
};

static size_t on_curl_write(char *p, size_t size, size_t n, void *ud)
{
    struct sg_buf *b = ud;
    return sg_buf_append(b, p, size * n) == SG_OK ? size * n : 0;
}

/* On a thread-pool thread: touches only the work struct and its reply. */
static void admin_work(uv_work_t *req)
{
    struct admin_work *w = req->data;
    CURL *e = curl_easy_init();
    if (!e) {
        w->rc = SG_ENOMEM;
        snprintf(w->out->error, sizeof w->out->error, "curl_easy_init failed");
        return;
    }
    struct curl_slist *h = curl_slist_append(NULL, w->auth);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, w->url);
    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, w->method);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)w->timeout_ms);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)SG_MIN(w->timeout_ms, 5000u));
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &w->out->body);
    if (w->body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, w->body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)strlen(w->body));
    }
    CURLcode cc = curl_easy_perform(e);
    if (cc == CURLE_OK) {
        long code = 0;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        w->out->status = (int)code;
        w->rc = SG_OK;
    } else {
        w->out->status = 0;
        w->rc = cc == CURLE_OPERATION_TIMEDOUT ? SG_ETIMEOUT
                : cc == CURLE_COULDNT_CONNECT  ? SG_ECONNECT
                                               : SG_EIO;
        /* Bytes of the request went out: the gateway may have acted before the answer was
         * lost (a timeout, a cut connection). */
        long sent = 0;
        w->out->lost = curl_easy_getinfo(e, CURLINFO_REQUEST_SIZE, &sent) == CURLE_OK && sent > 0;
        snprintf(w->out->error, sizeof w->out->error, "%s %s: %s", w->method, w->url,
                 curl_easy_strerror(cc));
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
}

static void admin_done(uv_work_t *req, int status)
{
    SG_UNUSED(status);
    struct admin_work *w = req->data;
    w->done = true;
}

int sg_drill_admin(struct sg_drill_client *c, const char *method, const char *path,
                   const char *json_body, uint32_t timeout_ms, struct sg_drill_reply *out)
{
    memset(out, 0, sizeof *out);
    sg_buf_init(&out->body, MAX_ADMIN_BODY);
    struct admin_work w = {.timeout_ms = timeout_ms ? timeout_ms : 10000, .out = out};
    w.req.data = &w;
    w.url = sg_xasprintf("%s%s", c->base, path);
    w.method = sg_xstrdup(method);
    w.body = json_body ? sg_xstrdup(json_body) : NULL;
    w.auth = sg_xasprintf("Authorization: Bearer %s", c->key);
    int rc = uv_queue_work(c->loop, &w.req, admin_work, admin_done);
    if (rc == 0) {
        /* The loop runs the load (and the display) while the call is on its thread. */
        while (!w.done)
            uv_run(c->loop, UV_RUN_ONCE);
        rc = w.rc;
    } else {
        snprintf(out->error, sizeof out->error, "uv_queue_work: %s", uv_strerror(rc));
        rc = SG_EIO;
    }
    free(w.url);
    free(w.method);
    free(w.body);
    free(w.auth);
    return rc;
}

void sg_drill_reply_dispose(struct sg_drill_reply *r)
{
    sg_buf_dispose(&r->body);
}
