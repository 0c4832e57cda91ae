/*
 * The request event: construction, JSON lines (for the spool and the request log), time
 * formatting and W3C traceparent.
 *
 * One table lists the stored fields; the encoder and the decoder both walk it, so a field added
 * to the table round-trips through the spool without further code.
 */
#include "telemetry.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

enum fkind { F_STR, F_U64, F_I64, F_INT, F_DBL, F_BOOL };

struct field {
    const char *name;
    enum fkind kind;
    size_t off;
    size_t size; /* F_STR: capacity */
};

#define STR(n)                                                                                     \
    {                                                                                              \
#n, F_STR, offsetof(struct sg_event, n), sizeof(((struct sg_event *)0)->n)                 \
    }
#define NUM(n, k)                                                                                  \
    {                                                                                              \
#n, k, offsetof(struct sg_event, n), 0                                                     \
    }

/* The stored fields, in column order. "time" (RFC 3339) is written beside start_unix_us for
 * people; the decoder reads start_unix_us. */
static const struct field fields[] = {
    STR(request_id),
    NUM(start_unix_us, F_U64),
    STR(tenant_id),
    STR(user_id),
    STR(feature),
    STR(alias),
    STR(provider),
    STR(model),
    STR(deployment),
    STR(region),
    NUM(status, F_INT),
    STR(error_type),
    NUM(latency_ms_total, F_DBL),
    NUM(ttft_ms, F_DBL),
    NUM(overhead_us, F_U64),
    NUM(retries, F_INT),
    NUM(failover_hops, F_INT),
    NUM(input_tokens, F_I64),
    NUM(output_tokens, F_I64),
    NUM(cached_tokens, F_I64),
    NUM(cost_usd, F_DBL),
    NUM(cache_hit, F_BOOL),
    NUM(cache_ttl_s, F_INT),
    NUM(stream, F_BOOL),
    NUM(usage_estimated, F_BOOL), /* absent from lines older slogates spooled: false */
    STR(cache_state),
    STR(response_model),
    STR(trace_id),
    STR(span_id),
};

/*
 * Events are recycled. The request path takes one per request and the store's writer thread hands
 * it back after its batch is written, so the steady state allocates nothing, and no thread frees
 * memory another thread allocated: glibc takes the owner's arena lock for that, and the request
 * path then waited on the writer (docs/performance.md, Telemetry).
 *
 * The pool is a process-wide lock-free ring (sg_mpmc), made on first use and never freed. Beyond
 * POOL_CAP idle events the rest are freed (a burst does not pin its peak memory).
 */
#define POOL_CAP 1024

static struct sg_mpmc pool;
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void pool_init(void)
{
    sg_mpmc_init(&pool, POOL_CAP);
}

/* Under AddressSanitizer an event in the pool is poisoned, so a use after sg_event_free is still
 * reported although the memory was not given back to malloc. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) /* clang */
#define SG_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) /* gcc */
#define SG_ASAN 1
#endif
#ifdef SG_ASAN
#include <sanitizer/asan_interface.h>
#define POOL_POISON(ev) ASAN_POISON_MEMORY_REGION((ev), sizeof *(ev))
#define POOL_UNPOISON(ev) ASAN_UNPOISON_MEMORY_REGION((ev), sizeof *(ev))
#else
#define POOL_POISON(ev) ((void)(ev))
#define POOL_UNPOISON(ev) ((void)(ev))
#endif

struct sg_event *sg_event_new(void)
{
    pthread_once(&pool_once, pool_init);
    struct sg_event *ev = sg_mpmc_pop(&pool);
    if (ev) {
        POOL_UNPOISON(ev);
        memset(ev, 0, offsetof(struct sg_event, attempts)); /* the slots: when used */
    } else {
        ev = sg_xcalloc(1, sizeof *ev);
    }
    ev->ttft_ms = -1;
    ev->trace_flags = SG_TRACE_SAMPLED; /* cache_state stays "": no lookup ran yet */
    return ev;
}

void sg_event_free(struct sg_event *ev)
{
    if (!ev)
        return;
    free(ev->prompt);
    pthread_once(&pool_once, pool_init);
    POOL_POISON(ev); /* before the push: once in the pool another thread may take it */
    if (!sg_mpmc_push(&pool, ev)) {
        POOL_UNPOISON(ev);
        free(ev);
    }
}

size_t sg_event_pool_release(void)
{
    pthread_once(&pool_once, pool_init);
    struct sg_event *ev;
    size_t n = 0;
    for (; (ev = sg_mpmc_pop(&pool)); n++) {
        POOL_UNPOISON(ev);
        free(ev);
    }
    return n;
}

bool sg_event_set(char *field, size_t cap, const char *s, size_t n)
{
    /* Every stored string is well-formed UTF-8, whatever the client sent (a header's bytes need
     * not be): PostgreSQL refuses text that is not, and refused rows would hold up the store. A
     * byte that starts no valid sequence becomes U+FFFD; a sequence that does not fit whole is
     * left out. */
    size_t o = 0;
    for (size_t i = 0; s && i < n;) {
        const char *src = s + i;
        size_t in = 1, out = 1;
        if ((unsigned char)*src >= 0x80) {
            in = out = sg_utf8_seq_len(src, n - i);
            if (!in) {
                src = "\xef\xbf\xbd";
                in = 1;
                out = 3;
            }
        }
        if (o + out >= cap) {
            field[o] = '\0';
            return false;
        }
        memcpy(field + o, src, out);
        o += out;
        i += in;
    }
    field[o] = '\0';
    return true;
}

void sg_event_set_id(char *field, size_t cap, const char *s, size_t n)
{
    if (!sg_event_set(field, cap, s, n))
        sg_id_shorten(field, cap, strlen(field), s, n);
}

void sg_request_id(char out[33])
{
    static const char hex[] = "0123456789abcdef";
    uint64_t ms = sg_wall_us() / 1000u;
    for (int i = 11; i >= 0; i--, ms >>= 4)
        out[i] = hex[ms & 15]; /* the low 48 bits, as "%012" PRIx64 would */
    sg_rand_hex(out + 12, 10);
}

uint64_t sg_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* Doubles as JSON: finite values only (JSON has no NaN); enough digits to round-trip. */
static int append_double(struct sg_buf *out, double v)
{
    if (!isfinite(v))
        v = 0;
    if (fabs(v) < 9e15 && v == (double)(int64_t)v) /* in range first: the cast is UB outside */
        return sg_buf_appendf(out, "%" PRId64, (int64_t)v);
    return sg_buf_appendf(out, "%.17g", v);
}

int sg_event_to_json(const struct sg_event *ev, unsigned flags, struct sg_buf *out)
{
    size_t start = out->len;
    int rc = sg_buf_append(out, "{", 1);
    char ts[40];
    for (size_t i = 0; i < SG_ARRAY_LEN(fields) && !rc; i++) {
        const struct field *f = &fields[i];
        const char *p = (const char *)ev + f->off;
        rc = sg_buf_appendf(out, "%s\"%s\":", i ? "," : "", f->name);
        switch (f->kind) {
        case F_STR:
            rc = rc ? rc : sg_buf_append(out, "\"", 1);
            rc = rc ? rc : sg_buf_append_json_str(out, p, strlen(p));
            rc = rc ? rc : sg_buf_append(out, "\"", 1);
            break;
        case F_U64:
            rc = rc ? rc : sg_buf_appendf(out, "%" PRIu64, *(const uint64_t *)(const void *)p);
            break;
        case F_I64:
            rc = rc ? rc : sg_buf_appendf(out, "%" PRId64, *(const int64_t *)(const void *)p);
            break;
        case F_INT: rc = rc ? rc : sg_buf_appendf(out, "%d", *(const int *)(const void *)p); break;
        case F_DBL: rc = rc ? rc : append_double(out, *(const double *)(const void *)p); break;
        case F_BOOL:
            rc = rc ? rc : sg_buf_appends(out, *(const bool *)(const void *)p ? "true" : "false");
            break;
        }
        if (!rc && f->off == offsetof(struct sg_event, start_unix_us)) {
            sg_format_utc_us(ev->start_unix_us, ts, sizeof ts);
            rc = sg_buf_appendf(out, ",\"time\":\"%s\"", ts);
        }
    }
    if (!rc && (flags & SG_EVENT_JSON_ATTEMPTS)) {
        rc = sg_buf_appends(out, ",\"attempts\":[");
        for (int i = 0; i < ev->n_attempts && !rc; i++) {
            const struct sg_event_attempt *a = &ev->attempts[i];
            rc = sg_buf_appendf(out, "%s{\"deployment\":\"", i ? "," : "");
            rc = rc ? rc : sg_buf_append_json_str(out, a->deployment, strlen(a->deployment));
            rc = rc ? rc : sg_buf_appendf(out, "\",\"status\":%d,\"ms\":", a->status);
            rc = rc ? rc : append_double(out, (double)(a->end_us - a->start_us) / 1000.0);
            rc = rc ? rc : sg_buf_appends(out, ",\"error_type\":\"");
            rc = rc ? rc : sg_buf_append_json_str(out, a->error_type, strlen(a->error_type));
            rc = rc ? rc : sg_buf_appends(out, "\"}");
        }
        rc = rc ? rc : sg_buf_append(out, "]", 1);
        if (!rc && ev->attempts_dropped)
            rc = sg_buf_appendf(out, ",\"attempts_dropped\":%d", ev->attempts_dropped);
    }
    if (!rc && (flags & SG_EVENT_JSON_PROMPT) && ev->prompt) {
        rc = sg_buf_appends(out, ",\"prompt\":\"");
        rc = rc ? rc : sg_buf_append_json_str(out, ev->prompt, strlen(ev->prompt));
        rc = rc ? rc : sg_buf_append(out, "\"", 1);
    }
    rc = rc ? rc : sg_buf_append(out, "}", 1);
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}

static bool get_int64(struct json_object *v, int64_t *out)
{
    if (json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return true;
    }
    if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (d != floor(d) || fabs(d) > 9.2e18)
            return false;
        *out = (int64_t)d;
        return true;
    }
    return false;
}

static struct json_object *member(struct json_object *o, const char *key, json_type type)
{
    struct json_object *v;
    return json_object_object_get_ex(o, key, &v) && json_object_is_type(v, type) ? v : NULL;
}

/* One attempt as the request log writes it: {deployment, status, ms, error_type}. Its times
 * come back as an offset from 0 with the logged duration. */
static bool attempt_from_json(struct json_object *o, struct sg_event_attempt *at)
{
    struct json_object *dep = member(o, "deployment", json_type_string);
    struct json_object *et = member(o, "error_type", json_type_string), *st, *ms;
    int64_t status = 0;
    if (!dep || !et || !json_object_object_get_ex(o, "status", &st) || !get_int64(st, &status) ||
        status < 0 || status > 999 || !json_object_object_get_ex(o, "ms", &ms) ||
        !(json_object_is_type(ms, json_type_double) || json_object_is_type(ms, json_type_int)))
        return false;
    double d = json_object_get_double(ms);
    if (!(d >= 0 && d <= 1e12)) /* NaN too; beyond ~30 years is no attempt */
        return false;
    sg_event_set(at->deployment, sizeof at->deployment, json_object_get_string(dep),
                 (size_t)json_object_get_string_len(dep));
    sg_event_set(at->error_type, sizeof at->error_type, json_object_get_string(et),
                 (size_t)json_object_get_string_len(et));
    at->status = (int)status;
    at->end_us = (uint64_t)llround(d * 1000.0);
    return true;
}

/* The attempts of a request log line: what the request path spools when the queue is full
 * carries them, so the line its replay logs lists them as a live one does. */
static bool attempts_from_json(struct json_object *arr, struct json_object *dropped,
                               struct sg_event *ev)
{
    if (!json_object_is_type(arr, json_type_array))
        return false;
    size_t n = json_object_array_length(arr);
    for (size_t i = 0; i < n && ev->n_attempts < SG_EVENT_MAX_ATTEMPTS; i++) {
        struct json_object *a = json_object_array_get_idx(arr, i);
        if (!json_object_is_type(a, json_type_object) ||
            !attempt_from_json(a, &ev->attempts[ev->n_attempts++]))
            return false;
    }
    int64_t k = 0;
    if (dropped && (!get_int64(dropped, &k) || k < 0 || k > INT32_MAX))
        return false;
    ev->attempts_dropped = (int)k;
    return true;
}

int sg_event_from_json(const char *p, size_t n, struct sg_event *ev)
{
    free(ev->prompt); /* ev comes from sg_event_new or is zeroed */
    memset(ev, 0, sizeof *ev);
    ev->ttft_ms = -1;
    struct json_tokener *tok = json_tokener_new_ex(16);
    if (!tok)
        return SG_ENOMEM;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *root = json_tokener_parse_ex(tok, p, (int)n);
    bool ok = root && json_tokener_get_error(tok) == json_tokener_success &&
              json_object_is_type(root, json_type_object);
    json_tokener_free(tok);
    for (size_t i = 0; ok && i < SG_ARRAY_LEN(fields); i++) {
        const struct field *f = &fields[i];
        struct json_object *v;
        if (!json_object_object_get_ex(root, f->name, &v))
            continue; /* a field added later: the zero default */
        char *dst = (char *)ev + f->off;
        int64_t iv = 0;
        switch (f->kind) {
        case F_STR:
            ok = json_object_is_type(v, json_type_string);
            if (ok)
                sg_event_set(dst, f->size, json_object_get_string(v),
                             (size_t)json_object_get_string_len(v));
            break;
        case F_U64:
            ok = get_int64(v, &iv) && iv >= 0;
            if (ok)
                *(uint64_t *)(void *)dst = (uint64_t)iv;
            break;
        case F_I64:
            ok = get_int64(v, &iv);
            if (ok)
                *(int64_t *)(void *)dst = iv;
            break;
        case F_INT:
            ok = get_int64(v, &iv) && iv >= INT32_MIN && iv <= INT32_MAX;
            if (ok)
                *(int *)(void *)dst = (int)iv;
            break;
        case F_DBL:
            ok = json_object_is_type(v, json_type_double) || json_object_is_type(v, json_type_int);
            if (ok)
                *(double *)(void *)dst = json_object_get_double(v);
            break;
        case F_BOOL:
            ok = json_object_is_type(v, json_type_boolean);
            if (ok)
                *(bool *)(void *)dst = json_object_get_boolean(v);
            break;
        }
    }
    ok = ok && ev->request_id[0];
    struct json_object *av, *dv = NULL;
    if (ok && json_object_object_get_ex(root, "attempts", &av)) {
        json_object_object_get_ex(root, "attempts_dropped", &dv);
        ok = attempts_from_json(av, dv, ev);
    }
    struct json_object *pv;
    if (ok && json_object_object_get_ex(root, "prompt", &pv) &&
        json_object_is_type(pv, json_type_string))
        ev->prompt =
            sg_xstrndup(json_object_get_string(pv), (size_t)json_object_get_string_len(pv));
    json_object_put(root);
    return ok ? SG_OK : SG_EINVAL;
}

/* ---- W3C trace context ---- */

static bool is_lower_hex(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
    }
    return true;
}

static bool all_zero(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] != '0')
            return false;
    return true;
}

bool sg_traceparent_parse(struct sg_slice h, char trace_id[33], char span_id[17], uint8_t *flags)
{
    /* Trim the optional whitespace a header value may carry. */
    while (h.n && (h.p[0] == ' ' || h.p[0] == '\t')) {
        h.p++;
        h.n--;
    }
    while (h.n && (h.p[h.n - 1] == ' ' || h.p[h.n - 1] == '\t'))
        h.n--;
    /* version(2) - trace-id(32) - parent-id(16) - flags(2). Version 00 is exactly that; a later
     * version may append "-..." and is read as 00 (W3C: parse what you know). ff is invalid. */
    if (h.n < 55 || h.p[2] != '-' || h.p[35] != '-' || h.p[52] != '-')
        return false;
    if (!is_lower_hex(h.p, 2) || memcmp(h.p, "ff", 2) == 0)
        return false;
    if (memcmp(h.p, "00", 2) == 0 ? h.n != 55 : (h.n > 55 && h.p[55] != '-'))
        return false;
    if (!is_lower_hex(h.p + 3, 32) || all_zero(h.p + 3, 32) || !is_lower_hex(h.p + 36, 16) ||
        all_zero(h.p + 36, 16) || !is_lower_hex(h.p + 53, 2))
        return false;
    memcpy(trace_id, h.p + 3, 32);
    trace_id[32] = '\0';
    memcpy(span_id, h.p + 36, 16);
    span_id[16] = '\0';
    char fl[3] = {h.p[53], h.p[54], 0};
    *flags = (uint8_t)strtoul(fl, NULL, 16);
    return true;
}

void sg_traceparent_format(const char *trace_id, const char *span_id, uint8_t flags, char *out,
                           size_t n)
{
    /* Version 00 defines sampled (01) and, in Level 2, random (02); other flags a caller's later
     * version set must be sent as zero (W3C trace context, trace-flags). */
    snprintf(out, n, "00-%s-%s-%02x", trace_id, span_id, flags & SG_TRACE_FLAGS_KNOWN);
}
