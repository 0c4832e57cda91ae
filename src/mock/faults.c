/*
 * The mock's faults as data: JSON in and out (the control endpoint and --faults), the decision
 * for one request, and the mock's private random generator. Pure functions only.
 */
#include "mock/mock.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

bool sg_mock_status_valid(int status)
{
    return status >= 400 && status <= 599;
}

bool sg_mock_tps_valid(double tokens_per_s)
{
    return tokens_per_s == 0 ||
           (tokens_per_s >= SG_MOCK_TPS_MIN && tokens_per_s <= SG_MOCK_TPS_MAX);
}

uint64_t sg_mock_token_offset_ms(double tokens_per_s, size_t k)
{
    if (!(tokens_per_s > 0) || k == 0)
        return 0;
    double tps = tokens_per_s < SG_MOCK_TPS_MIN   ? SG_MOCK_TPS_MIN
                 : tokens_per_s > SG_MOCK_TPS_MAX ? SG_MOCK_TPS_MAX
                                                  : tokens_per_s;
    double ms = (double)k * (1000.0 / tps) + 0.5;
    return ms < (double)SG_MOCK_OFFSET_MAX_MS ? (uint64_t)ms : SG_MOCK_OFFSET_MAX_MS;
}

const char *sg_mock_reset_name(enum sg_mock_reset r)
{
    switch (r) {
    case SG_MOCK_RESET_BEFORE: return "before";
    case SG_MOCK_RESET_MID: return "mid";
    default: return "none";
    }
}

const char *sg_mock_malformed_name(enum sg_mock_malformed m)
{
    switch (m) {
    case SG_MOCK_MALFORMED_EMPTY: return "empty";
    case SG_MOCK_MALFORMED_HTML: return "html";
    case SG_MOCK_MALFORMED_CUT: return "cut";
    case SG_MOCK_MALFORMED_NONE: break;
    }
    return "none";
}

int sg_mock_faults_to_json(struct sg_buf *out, const struct sg_mock_faults *f)
{
    /* %.17g round-trips a double; integers stay integers in the output. */
    return sg_buf_appendf(out,
                          "{\"latency_ms\":%u,\"ttft_ms\":%u,\"tokens_per_s\":%.17g,"
                          "\"error_rate\":%.17g,\"error_status\":%d,\"status\":%d,"
                          "\"retry_after_s\":%u,\"hang\":%s,\"reset\":\"%s\",\"malformed\":\"%s\","
                          "\"no_usage\":%s}",
                          (unsigned)f->latency_ms, (unsigned)f->ttft_ms, f->tokens_per_s,
                          f->error_rate, f->error_status ? f->error_status : 500, f->status,
                          (unsigned)f->retry_after_s, f->hang ? "true" : "false",
                          sg_mock_reset_name(f->reset), sg_mock_malformed_name(f->malformed),
                          f->no_usage ? "true" : "false");
}

int sg_mock_malformed_parse(const char *s, enum sg_mock_malformed *out)
{
    for (int m = SG_MOCK_MALFORMED_NONE; m <= SG_MOCK_MALFORMED_CUT; m++)
        if (s && strcmp(s, sg_mock_malformed_name((enum sg_mock_malformed)m)) == 0) {
            *out = (enum sg_mock_malformed)m;
            return SG_OK;
        }
    return SG_EINVAL;
}

/* A value as the client sent it, for "got ..." in messages ("5" stays quoted: it is a string). */
static const char *sent(struct json_object *v)
{
    return v ? json_object_to_json_string_ext(v, JSON_C_TO_STRING_NOSLASHESCAPE) : "null";
}

static int get_malformed(struct json_object *v, enum sg_mock_malformed *out, char *err, size_t errn)
{
    if (!v) { /* null: off */
        *out = SG_MOCK_MALFORMED_NONE;
        return SG_OK;
    }
    const char *s = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
    if (sg_mock_malformed_parse(s, out) == SG_OK)
        return SG_OK;
    snprintf(err, errn, "malformed: must be \"none\", \"empty\", \"html\" or \"cut\", got %.60s",
             sent(v));
    return SG_EINVAL;
}

/* An integer field in [min, max]. Only JSON integers qualify: 1.5 ms is a type error. */
static int get_uint(struct json_object *v, const char *key, int64_t min, int64_t max, int64_t *out,
                    char *err, size_t errn)
{
    if (!json_object_is_type(v, json_type_int)) {
        snprintf(err, errn, "%s: must be an integer between %lld and %lld, got %.60s", key,
                 (long long)min, (long long)max, sent(v));
        return SG_EINVAL;
    }
    int64_t x = json_object_get_int64(v);
    if (x < min || x > max) {
        snprintf(err, errn, "%s: must be between %lld and %lld, got %lld", key, (long long)min,
                 (long long)max, (long long)x);
        return SG_EINVAL;
    }
    *out = x;
    return 0;
}

/* The shortest "%g" text that reads back as x, for "got ..." in messages (1e-300, not
 * 1.0000000000000001e-300). */
static const char *show_number(double x, char *buf, size_t n)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x)
            break;
    }
    return buf;
}

/* A JSON number, integer or not (NULL-safe: JSON null is a wrong type). The caller says what
 * it takes. */
static int get_double(struct json_object *v, double *out)
{
    if (!json_object_is_type(v, json_type_int) && !json_object_is_type(v, json_type_double))
        return SG_EINVAL;
    *out = json_object_get_double(v);
    return 0;
}

static int get_number(struct json_object *v, const char *key, double min, double max, double *out,
                      char *err, size_t errn)
{
    double x;
    char shown[32];
    if (get_double(v, &x)) {
        snprintf(err, errn, "%s: must be a number between %g and %g, got %.60s", key, min, max,
                 sent(v));
        return SG_EINVAL;
    }
    if (!isfinite(x) || x < min || x > max) {
        snprintf(err, errn, "%s: must be between %g and %g, got %s", key, min, max,
                 show_number(x, shown, sizeof shown));
        return SG_EINVAL;
    }
    *out = x == 0 ? 0 : x; /* -0 is 0, and is written back as 0 */
    return 0;
}

/* tokens_per_s: 0 or SG_MOCK_TPS_MIN..SG_MOCK_TPS_MAX. Below the range the next token would be
 * centuries away (or its delay overflow); above it, it is "all at once" in disguise. */
static int get_tps(struct json_object *v, double *out, char *err, size_t errn)
{
    double x;
    char shown[32];
    if (get_double(v, &x)) {
        snprintf(err, errn,
                 "tokens_per_s: must be a number, 0 (no pacing) or between %g and %.0f, got %.60s",
                 SG_MOCK_TPS_MIN, SG_MOCK_TPS_MAX, sent(v));
        return SG_EINVAL;
    }
    if (!sg_mock_tps_valid(x)) {
        snprintf(err, errn, "tokens_per_s: must be 0 (no pacing) or between %g and %.0f, got %s",
                 SG_MOCK_TPS_MIN, SG_MOCK_TPS_MAX, show_number(x, shown, sizeof shown));
        return SG_EINVAL;
    }
    *out = x == 0 ? 0 : x;
    return 0;
}

int sg_mock_faults_merge(struct sg_mock_faults *f, const char *json, size_t len, char *err,
                         size_t errn)
{
    struct json_object *root = sg_mock_json_parse(json, len, err, errn);
    if (!root)
        return SG_EINVAL;
    int rc = 0;
    struct sg_mock_faults n = *f; /* work on a copy: a bad field changes nothing */
    if (!json_object_is_type(root, json_type_object)) {
        snprintf(err, errn, "the faults must be a JSON object");
        rc = SG_EINVAL;
        goto out;
    }
    json_object_object_foreach(root, key, v)
    {
        int64_t i = 0;
        if (strcmp(key, "latency_ms") == 0 || strcmp(key, "ttft_ms") == 0) {
            /* An hour is far beyond any timeout under test; larger is a typo. */
            rc = get_uint(v, key, 0, 3600000, &i, err, errn);
            if (rc)
                goto out;
            if (key[0] == 'l')
                n.latency_ms = (uint32_t)i;
            else
                n.ttft_ms = (uint32_t)i;
        } else if (strcmp(key, "retry_after_s") == 0) {
            rc = get_uint(v, key, 0, SG_MOCK_RETRY_AFTER_MAX, &i, err, errn);
            n.retry_after_s = (uint32_t)i;
        } else if (strcmp(key, "tokens_per_s") == 0) {
            rc = get_tps(v, &n.tokens_per_s, err, errn);
        } else if (strcmp(key, "error_rate") == 0) {
            rc = get_number(v, key, 0, 1, &n.error_rate, err, errn);
        } else if (strcmp(key, "error_status") == 0 || strcmp(key, "status") == 0) {
            bool is_status = key[0] == 's';
            if (is_status &&
                (!v || (json_object_is_type(v, json_type_int) && json_object_get_int64(v) == 0))) {
                n.status = 0; /* null or 0: off */
                continue;
            }
            rc = get_uint(v, key, 400, 599, &i, err, errn);
            if (rc)
                goto out;
            if (is_status)
                n.status = (int)i;
            else
                n.error_status = (int)i;
        } else if (strcmp(key, "hang") == 0 || strcmp(key, "no_usage") == 0) {
            if (!json_object_is_type(v, json_type_boolean)) {
                snprintf(err, errn, "%s: must be a boolean (true or false), got %.60s", key,
                         sent(v));
                rc = SG_EINVAL;
                goto out;
            }
            if (key[0] == 'h')
                n.hang = json_object_get_boolean(v);
            else
                n.no_usage = json_object_get_boolean(v);
        } else if (strcmp(key, "reset") == 0) {
            const char *s =
                json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
            if (!v || (s && strcmp(s, "none") == 0)) {
                n.reset = SG_MOCK_RESET_NONE;
            } else if (s && strcmp(s, "before") == 0) {
                n.reset = SG_MOCK_RESET_BEFORE;
            } else if (s && strcmp(s, "mid") == 0) {
                n.reset = SG_MOCK_RESET_MID;
            } else {
                snprintf(err, errn, "reset: must be \"none\", \"before\" or \"mid\", got %.60s",
                         sent(v));
                rc = SG_EINVAL;
                goto out;
            }
        } else if (strcmp(key, "malformed") == 0) {
            rc = get_malformed(v, &n.malformed, err, errn);
        } else {
            snprintf(err, errn,
                     "unknown field '%s' (known: latency_ms, ttft_ms, tokens_per_s, error_rate, "
                     "error_status, status, retry_after_s, hang, reset, malformed, no_usage)",
                     key);
            rc = SG_EINVAL;
        }
        if (rc)
            goto out;
    }
    *f = n;
out:
    json_object_put(root);
    return rc;
}

void sg_mock_decide(const struct sg_mock_faults *f, bool key_ok, bool body_ok, bool stream,
                    double draw, struct sg_mock_decision *d)
{
    memset(d, 0, sizeof *d);
    if (f->reset == SG_MOCK_RESET_BEFORE) {
        d->action = SG_MOCK_RESET;
        d->cause = SG_MOCK_CAUSE_FAULT;
        return;
    }
    if (f->hang) {
        d->action = SG_MOCK_HANG;
        d->cause = SG_MOCK_CAUSE_FAULT;
        return;
    }
    /* A slow provider is slow for its errors too. */
    d->delay_ms = f->latency_ms;
    d->action = SG_MOCK_ERROR;
    if (!key_ok) {
        d->status = 401;
        d->cause = SG_MOCK_CAUSE_AUTH;
    } else if (f->status) {
        d->status = f->status;
        d->cause = SG_MOCK_CAUSE_FORCED;
    } else if (!body_ok) {
        d->status = 400;
        d->cause = SG_MOCK_CAUSE_INVALID;
    } else if (draw < f->error_rate) {
        d->status = f->error_status ? f->error_status : 500;
        d->cause = SG_MOCK_CAUSE_RATE;
    } else {
        d->action = SG_MOCK_ANSWER;
        d->status = 200;
        if (f->reset == SG_MOCK_RESET_MID) {
            if (stream) {
                d->reset_mid = true;
            } else {
                d->action = SG_MOCK_RESET; /* nothing of a JSON answer goes out */
                d->cause = SG_MOCK_CAUSE_FAULT;
                d->status = 0;
                return;
            }
        }
        d->malformed = f->malformed;
        d->no_usage = f->no_usage;
        if (stream)
            d->delay_ms += f->ttft_ms;
        return;
    }
    if ((d->status == 429 || d->status == 503) && f->retry_after_s)
        d->retry_after_s = f->retry_after_s;
}

uint64_t sg_mock_rand_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

double sg_mock_rand_unit(uint64_t *state)
{
    return (double)(sg_mock_rand_next(state) >> 11) * 0x1.0p-53;
}
