/* The OpenAI chat.completions wire format: request parsing and encoding for compatible APIs,
 * usage in answers and streams, embeddings. */
#include "provider_int.h"

#include <json-c/json.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>

/* json-c accepts NaN and Infinity literals in some modes; providers do not, and a NaN in a
 * number the gateway reads (max_tokens, temperature) would poison arithmetic. */
static bool has_non_finite(struct json_object *o, int depth)
{
    if (depth > SG_JSON_MAX_DEPTH)
        return true;
    switch (json_object_get_type(o)) {
    case json_type_double: return !isfinite(json_object_get_double(o));
    case json_type_array: {
        size_t n = json_object_array_length(o);
        for (size_t i = 0; i < n; i++)
            if (has_non_finite(json_object_array_get_idx(o, i), depth + 1))
                return true;
        return false;
    }
    case json_type_object: {
        json_object_object_foreach(o, k, v)
        {
            SG_UNUSED(k);
            if (has_non_finite(v, depth + 1))
                return true;
        }
        return false;
    }
    default: return false;
    }
}

struct json_object *sg_json_parse_strict(const char *body, size_t len, char *err, size_t err_len)
{
    return sg_json_parse_depth(body, len, SG_JSON_MAX_DEPTH, err, err_len);
}

struct json_object *sg_json_parse_depth(const char *body, size_t len, int depth, char *err,
                                        size_t err_len)
{
    if (len == 0) {
        snprintf(err, err_len, "the request body is empty; send a JSON object");
        return NULL;
    }
    if (len > INT32_MAX) {
        snprintf(err, err_len, "the request body is too large");
        return NULL;
    }
    /* json-c's VALIDATE_UTF8 only checks that continuation bytes follow a lead byte: overlong
     * forms, encoded surrogates and code points past U+10FFFF pass, and a translated answer
     * would carry them to the client. */
    size_t bad = sg_utf8_check(body, len);
    if (bad < len) {
        snprintf(err, err_len, "the request body is not valid JSON: invalid UTF-8 at byte %zu",
                 bad);
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new_ex(depth);
    if (!tok) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
    if (!o && jerr == json_tokener_continue) {
        /* A top-level number ("3") is not known to be complete until a byte follows it. */
        o = json_tokener_parse_ex(tok, " ", 1);
        jerr = json_tokener_get_error(tok);
        end = len;
    }
    if (!o || jerr != json_tokener_success) {
        if (jerr == json_tokener_continue)
            snprintf(err, err_len, "the request body is not valid JSON: it ends early");
        else
            snprintf(err, err_len, "the request body is not valid JSON: %s at byte %zu",
                     json_tokener_error_desc(jerr), end);
        json_object_put(o);
        json_tokener_free(tok);
        return NULL;
    }
    json_tokener_free(tok);
    while (end < len &&
           (body[end] == ' ' || body[end] == '\n' || body[end] == '\r' || body[end] == '\t'))
        end++;
    if (end != len) {
        snprintf(err, err_len, "the request body is not valid JSON: unexpected data at byte %zu",
                 end);
        json_object_put(o);
        return NULL;
    }
    if (has_non_finite(o, 0)) {
        snprintf(err, err_len,
                 "the request body holds NaN or Infinity, which JSON does not "
                 "allow; send finite numbers");
        json_object_put(o);
        return NULL;
    }
    return o;
}

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Decode a member's string value into `out`; false when it is not a string or does not fit. */
static bool member_string(const struct sg_json_member *m, char *out, size_t cap, size_t *len)
{
    if (m->value.n < 2 || m->value.p[0] != '"')
        return false;
    return sg_json_unescape((struct sg_slice){m->value.p + 1, m->value.n - 2}, out, cap, len);
}

/* An id the request gives (user, metadata.feature), decoded; empty when it is not a string. One
 * too long for `out` keeps its start and a hash of the whole (sg_id_shorten): two stay two. */
static void member_id(const struct sg_json_member *m, char *out, size_t cap)
{
    size_t len;
    out[0] = '\0';
    if (m->value.n < 2 || m->value.p[0] != '"')
        return;
    struct sg_slice raw = {m->value.p + 1, m->value.n - 2};
    if (!sg_json_unescape(raw, out, cap, &len))
        sg_id_shorten(out, cap, len, raw.p, raw.n);
}

/* Is this member's name `name`? Escaped names are decoded first: "mod\u0065l" is "model". */
bool sg_member_is(const struct sg_json_member *m, const char *name)
{
    if (!m->name_escaped)
        return sg_slice_eq(m->name, name);
    char buf[64];
    size_t n;
    return sg_json_unescape(m->name, buf, sizeof buf, &n) && n == strlen(name) &&
           memcmp(buf, name, n) == 0;
}

/* Find `name` in a nested object value (already validated); the last one wins, as in json-c. */
static const struct sg_json_member *nested(struct sg_slice obj, const char *name,
                                           struct sg_json_member *tmp, size_t cap)
{
    size_t n = 0;
    char err[8];
    if (obj.n == 0 || obj.p[0] != '{' || sg_json_members(obj.p, obj.n, tmp, cap, &n, err, 0))
        return NULL;
    const struct sg_json_member *found = NULL;
    for (size_t i = 0; i < n; i++)
        if (sg_member_is(&tmp[i], name))
            found = &tmp[i];
    return found;
}

int sg_request_scan(const char *body, size_t len, enum sg_api api, struct sg_chat_request *out,
                    struct sg_json_member *m, size_t *n, const struct sg_json_member **model,
                    char *err, size_t err_len)
{
    memset(out, 0, offsetof(struct sg_chat_request, model_values));
    out->n_model_values = 0;
    out->n_stream_options_values = 0;
    out->n_gateway_members = 0;
    out->api = api;
    out->body = body;
    out->body_len = len;
    *model = NULL;
    if (len == 0) {
        snprintf(err, err_len, "the request body is empty; send a JSON object");
        return SG_EINVAL;
    }
    if (sg_json_members(body, len, m, SG_CHAT_MAX_MEMBERS, n, err, err_len) != SG_OK)
        return SG_EINVAL;
    for (size_t i = 0; i < *n; i++) {
        if (!sg_member_is(&m[i], "model"))
            continue;
        if (out->n_model_values == SG_ARRAY_LEN(out->model_values)) {
            snprintf(err, err_len, "'model' is given more than %zu times",
                     SG_ARRAY_LEN(out->model_values));
            return SG_EINVAL;
        }
        out->model_values[out->n_model_values++] = m[i].value;
        *model = &m[i];
    }
    return SG_OK;
}

int sg_request_model(struct sg_chat_request *out, const struct sg_json_member *model, char *err,
                     size_t err_len)
{
    char c = model ? model->value.p[0] : 'n';
    if (c == 'n' || sg_slice_eq(model->value, "\"\"")) {
        snprintf(err, err_len, "you must provide a model parameter");
        return SG_EINVAL;
    }
    if (c != '"') { /* OpenAI's wording for a type error */
        out->error_param = "model";
        snprintf(err, err_len, "Invalid type for 'model': expected a string, but got %s instead.",
                 c == '{'               ? "an object"
                 : c == '['             ? "an array"
                 : c == 't' || c == 'f' ? "a boolean"
                                        : "a number");
        return SG_EINVAL;
    }
    if (!member_string(model, out->model, sizeof out->model, &out->model_len)) {
        out->error_param = "model";
        snprintf(err, err_len, "'model' must be at most %zu bytes, with no NUL character",
                 sizeof out->model - 1);
        return SG_EINVAL;
    }
    return SG_OK;
}

/* The members the OpenAI encoder leaves out (sg_chat_request.gateway_members): `metadata`
 * unless the request stores the completion (OpenAI answers "The 'metadata' parameter is only
 * allowed when 'store' is enabled." to a metadata.feature meant for the gateway; LiteLLM keeps its
 * metadata too), and `cache`, LiteLLM's per-request cache controls (an unknown argument to
 * OpenAI). */
static int gateway_members(struct sg_chat_request *out, const struct sg_json_member *m, size_t n,
                           bool stored, char *err, size_t err_len)
{
    for (size_t i = 0; i < n; i++) {
        if (!(sg_member_is(&m[i], "cache") || (!stored && sg_member_is(&m[i], "metadata"))))
            continue;
        if (out->n_gateway_members == SG_ARRAY_LEN(out->gateway_members)) {
            snprintf(err, err_len, "'metadata' and 'cache' are given more than %zu times",
                     SG_ARRAY_LEN(out->gateway_members));
            return SG_EINVAL;
        }
        const char *from = m[i].name.p - 1; /* the name's opening quote */
        out->gateway_members[out->n_gateway_members++] =
            (struct sg_slice){from, (size_t)(m[i].value.p + m[i].value.n - from)};
    }
    return SG_OK;
}

/* ---- OpenAI's checks of typed parameters, with OpenAI's wording ---- */

enum param_kind { PARAM_DECIMAL, PARAM_INTEGER, PARAM_BOOLEAN, PARAM_STRING };

/* A top-level parameter OpenAI checks before it runs anything: its type and bounds. */
struct param_rule {
    const char *name;
    size_t len;
    enum param_kind kind;
    bool has_min, has_max;
    double min, max;
};
#define PARAM(name, ...)                                                                           \
    {                                                                                              \
        name, sizeof name - 1, __VA_ARGS__                                                         \
    }

/* The bounds OpenAI's API reference gives. Checked for every deployment, so a request gets the
 * same answer whichever provider would serve it: an Anthropic deployment drops or clamps most of
 * these, an OpenAI one refuses them. */
static const struct param_rule chat_params[] = {
    PARAM("frequency_penalty", PARAM_DECIMAL, true, true, -2, 2),
    PARAM("presence_penalty", PARAM_DECIMAL, true, true, -2, 2),
    PARAM("temperature", PARAM_DECIMAL, true, true, 0, 2),
    PARAM("top_p", PARAM_DECIMAL, true, true, 0, 1),
    PARAM("n", PARAM_INTEGER, true, true, 1, 128),
    PARAM("top_logprobs", PARAM_INTEGER, true, true, 0, 20),
    PARAM("max_tokens", PARAM_INTEGER, true, false, 1, 0),
    PARAM("max_completion_tokens", PARAM_INTEGER, true, false, 1, 0),
    PARAM("seed", PARAM_INTEGER, false, false, 0, 0),
    PARAM("logprobs", PARAM_BOOLEAN, false, false, 0, 0),
    PARAM("parallel_tool_calls", PARAM_BOOLEAN, false, false, 0, 0),
    PARAM("store", PARAM_BOOLEAN, false, false, 0, 0),
    PARAM("user", PARAM_STRING, false, false, 0, 0),
};
static const struct param_rule embeddings_params[] = {
    PARAM("dimensions", PARAM_INTEGER, true, false, 1, 0),
    PARAM("user", PARAM_STRING, false, false, 0, 0),
};

/* A raw JSON value as OpenAI's type errors name it. */
static const char *json_kind(struct sg_slice v)
{
    char c = v.n ? v.p[0] : 'n';
    if (c == '-' || (c >= '0' && c <= '9'))
        return memchr(v.p, '.', v.n) || memchr(v.p, 'e', v.n) || memchr(v.p, 'E', v.n)
                   ? "a decimal"
                   : "an integer";
    return c == '{'   ? "an object"
           : c == '[' ? "an array"
           : c == '"' ? "a string"
           : c == 'n' ? "null"
                      : "a boolean";
}

/* Check one parameter's value (null is always allowed: OpenAI's parameters are nullable). */
static int check_param(struct sg_chat_request *out, const struct param_rule *r, struct sg_slice v,
                       char *err, size_t err_len)
{
    if (sg_slice_eq(v, "null"))
        return SG_OK;
    const char *got = json_kind(v);
    bool integer = strcmp(got, "an integer") == 0;
    bool number = integer || strcmp(got, "a decimal") == 0;
    const char *want = r->kind == PARAM_DECIMAL && !number                         ? "a decimal"
                       : r->kind == PARAM_INTEGER && !integer                      ? "an integer"
                       : r->kind == PARAM_BOOLEAN && strcmp(got, "a boolean") != 0 ? "a boolean"
                       : r->kind == PARAM_STRING && v.p[0] != '"'                  ? "a string"
                                                                                   : NULL;
    out->error_param = r->name;
    if (want) {
        out->error_code = "invalid_type";
        snprintf(err, err_len, "Invalid type for '%s': expected %s, but got %s instead.", r->name,
                 want, got);
        return SG_EINVAL;
    }
    if (r->kind == PARAM_DECIMAL || r->kind == PARAM_INTEGER) {
        char num[64];
        size_t k = SG_MIN(v.n, sizeof num - 1);
        memcpy(num, v.p, k);
        num[k] = '\0';
        double x = strtod(num, NULL);
        bool below = r->has_min && x < r->min, above = r->has_max && x > r->max;
        if (below || above) {
            bool i = r->kind == PARAM_INTEGER;
            out->error_code = below ? (i ? "integer_below_min_value" : "decimal_below_min_value")
                                    : (i ? "integer_above_max_value" : "decimal_above_max_value");
            snprintf(err, err_len,
                     "Invalid '%s': %s %s value. Expected a value %s %g, but got %.*s instead.",
                     r->name, i ? "integer" : "decimal", below ? "below minimum" : "above maximum",
                     below ? ">=" : "<=", below ? r->min : r->max, (int)SG_MIN(v.n, 32), v.p);
            return SG_EINVAL;
        }
    }
    out->error_param = NULL;
    return SG_OK;
}

/* Check the members `rules` names (by their escape-free names; an escaped one is rare and left to
 * the provider). */
static int check_params(struct sg_chat_request *out, const struct sg_json_member *m, size_t n,
                        const struct param_rule *rules, size_t n_rules, char *err, size_t err_len)
{
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < n_rules; j++)
            if (m[i].name.n == rules[j].len &&
                memcmp(m[i].name.p, rules[j].name, rules[j].len) == 0 &&
                check_param(out, &rules[j], m[i].value, err, err_len) != SG_OK)
                return SG_EINVAL;
    return SG_OK;
}

int sg_chat_request_parse(const char *body, size_t len, struct sg_chat_request *out, char *err,
                          size_t err_len)
{
    struct sg_json_member m[SG_CHAT_MAX_MEMBERS];
    size_t n;
    const struct sg_json_member *model;
    if (sg_request_scan(body, len, SG_API_CHAT, out, m, &n, &model, err, err_len) != SG_OK ||
        sg_request_model(out, model, err, err_len) != SG_OK)
        return SG_EINVAL;
    const struct sg_json_member *messages = NULL, *stream = NULL, *opts = NULL, *user = NULL,
                                *meta = NULL, *store = NULL;
    for (size_t i = 0; i < n; i++) {
        if (sg_member_is(&m[i], "messages")) {
            messages = &m[i];
        } else if (sg_member_is(&m[i], "stream")) {
            stream = &m[i];
        } else if (sg_member_is(&m[i], "stream_options")) {
            opts = &m[i];
            if (out->n_stream_options_values == SG_ARRAY_LEN(out->stream_options_values)) {
                snprintf(err, err_len, "'stream_options' is given more than %zu times",
                         SG_ARRAY_LEN(out->stream_options_values));
                return SG_EINVAL;
            }
            out->stream_options_values[out->n_stream_options_values++] = m[i].value;
        } else if (sg_member_is(&m[i], "user")) {
            user = &m[i];
        } else if (sg_member_is(&m[i], "metadata")) {
            meta = &m[i];
        } else if (sg_member_is(&m[i], "store")) {
            store = &m[i];
        }
    }
    if (check_params(out, m, n, chat_params, SG_ARRAY_LEN(chat_params), err, err_len) != SG_OK ||
        gateway_members(out, m, n, store && sg_slice_eq(store->value, "true"), err, err_len) !=
            SG_OK)
        return SG_EINVAL;
    if (!messages || messages->value.p[0] != '[') {
        out->error_param = "messages";
        snprintf(err, err_len, "'messages' is a required property and must be an array");
        return SG_EINVAL;
    }
    const char *q = messages->value.p + 1;
    while (*q == ' ' || *q == '\n' || *q == '\r' || *q == '\t')
        q++;
    if (*q == ']') {
        out->error_param = "messages";
        snprintf(err, err_len, "'messages' must contain at least one message");
        return SG_EINVAL;
    }
    if (stream && !sg_slice_eq(stream->value, "null")) {
        if (!sg_slice_eq(stream->value, "true") && !sg_slice_eq(stream->value, "false")) {
            out->error_param = "stream";
            snprintf(err, err_len, "'stream' must be a boolean");
            return SG_EINVAL;
        }
        out->stream = stream->value.p[0] == 't';
    }
    struct sg_json_member tmp[32];
    if (opts && !sg_slice_eq(opts->value, "null")) {
        /* OpenAI refuses stream_options it cannot use, whichever deployment would answer: said
         * here, a deployment that would not refuse them does not read them as "no usage". */
        bool object = opts->value.p[0] == '{';
        const struct sg_json_member *iu =
            object ? nested(opts->value, "include_usage", tmp, 32) : NULL;
        bool iu_bad = iu && !sg_slice_eq(iu->value, "true") && !sg_slice_eq(iu->value, "false") &&
                      !sg_slice_eq(iu->value, "null");
        const char *bad =
            !out->stream ? "The 'stream_options' parameter is only allowed when 'stream' is "
                           "enabled."
            : !object    ? "Invalid type for 'stream_options': expected an object."
            : iu_bad     ? "Invalid type for 'stream_options.include_usage': expected a boolean."
                         : NULL;
        if (bad) {
            out->error_param =
                iu_bad && out->stream ? "stream_options.include_usage" : "stream_options";
            snprintf(err, err_len, "%s", bad);
            return SG_EINVAL;
        }
        out->include_usage = iu && sg_slice_eq(iu->value, "true");
    }
    if (user)
        member_id(user, out->user, sizeof out->user);
    const struct sg_json_member *f = meta ? nested(meta->value, "feature", tmp, 32) : NULL;
    if (f)
        member_id(f, out->feature, sizeof out->feature);
    return SG_OK;
}

int sg_json_set_member(struct sg_buf *out, struct sg_slice obj, const char *name,
                       struct sg_slice value)
{
    struct sg_json_member m[SG_CHAT_MAX_MEMBERS];
    size_t n = 0;
    char err[8];
    if (!obj.n || obj.p[0] != '{' ||
        sg_json_members(obj.p, obj.n, m, SG_ARRAY_LEN(m), &n, err, 0) != SG_OK)
        return SG_EINVAL;
    int rc = sg_buf_append(out, "{", 1);
    for (size_t i = 0; rc == SG_OK && i < n; i++) {
        if (sg_member_is(&m[i], name))
            continue;
        /* The member as written: its name's quotes to its value's end. */
        const char *from = m[i].name.p - 1;
        rc = sg_buf_append(out, from, (size_t)(m[i].value.p + m[i].value.n - from));
        if (rc == SG_OK)
            rc = sg_buf_append(out, ",", 1);
    }
    if (rc == SG_OK)
        rc = sg_buf_appendf(out, "\"%s\":", name);
    if (rc == SG_OK)
        rc = sg_buf_append(out, value.p, value.n);
    return rc == SG_OK ? sg_buf_append(out, "}", 1) : rc;
}

/* stream_options with include_usage forced to true, other members kept as the client wrote them
 * (a value that is no object becomes one). */
static int append_stream_options(struct sg_buf *out, struct sg_slice v)
{
    int rc = sg_json_set_member(out, v, "include_usage", SG_SLICE_LIT("true"));
    return rc == SG_EINVAL ? sg_buf_appends(out, "{\"include_usage\":true}") : rc;
}

enum splice_kind { SPLICE_MODEL, SPLICE_STREAM_OPTIONS, SPLICE_CUT };

struct splice {
    struct sg_slice at;
    enum splice_kind kind;
};

static int cmp_splice(const void *a, const void *b)
{
    const struct splice *x = a, *y = b;
    return x->at.p < y->at.p ? -1 : x->at.p > y->at.p;
}

/* A member `m` (name's quote to value's end) of the top-level object `body` widened to the
 * comma on its side of `kept`, a member that stays (the model): the one after it when it comes
 * before `kept`, else the one before it. There is always one there, and two cut members never
 * claim the same comma: a comma between two adjacent members would be claimed by both only if
 * `kept` lay between them. */
static struct sg_slice member_with_comma(const char *body, const char *kept, struct sg_slice m)
{
    if (m.p < kept) {
        const char *p = m.p + m.n;
        while (is_ws(*p))
            p++;
        return (struct sg_slice){m.p, (size_t)(p + 1 - m.p)}; /* *p is the comma */
    }
    const char *q = m.p;
    while (q > body && q[-1] != ',')
        q--;
    return (struct sg_slice){q - 1, (size_t)(m.p + m.n - (q - 1))};
}

int sg_openai_encode_chat(const struct sg_chat_request *r, const struct sg_deployment *d,
                          struct sg_buf *out)
{
    /* Splice: copy the client's bytes, putting the provider's model id where each "model"
     * value was, leaving the gateway's members out (and, for a stream, stream_options asking
     * for usage). The body was validated, so the result is valid JSON. */
    struct splice sp[SG_ARRAY_LEN(r->model_values) + SG_ARRAY_LEN(r->stream_options_values) +
                     SG_ARRAY_LEN(r->gateway_members)];
    size_t n = 0;
    for (size_t i = 0; i < r->n_model_values; i++)
        sp[n++] = (struct splice){r->model_values[i], SPLICE_MODEL};
    if (r->stream)
        for (size_t i = 0; i < r->n_stream_options_values; i++)
            sp[n++] = (struct splice){r->stream_options_values[i], SPLICE_STREAM_OPTIONS};
    for (size_t i = 0; i < r->n_gateway_members; i++)
        sp[n++] = (struct splice){
            member_with_comma(r->body, r->model_values[0].p, r->gateway_members[i]), SPLICE_CUT};
    if (n > r->n_model_values)
        qsort(sp, n, sizeof sp[0], cmp_splice);
    const char *p = r->body;
    int rc = sg_buf_reserve(out, r->body_len + strlen(d->provider_model) + 48);
    if (rc == SG_OK && r->stream && r->n_stream_options_values == 0) {
        /* No stream_options: add one right after the opening brace (the object has members:
         * model and messages were checked). */
        const char *brace = memchr(r->body, '{', r->body_len);
        rc = sg_buf_append(out, p, (size_t)(brace + 1 - p));
        if (rc == SG_OK)
            rc = sg_buf_appends(out, "\"stream_options\":{\"include_usage\":true},");
        p = brace + 1;
    }
    for (size_t i = 0; rc == SG_OK && i < n; i++) {
        struct sg_slice v = sp[i].at;
        rc = sg_buf_append(out, p, (size_t)(v.p - p));
        if (rc == SG_OK && sp[i].kind == SPLICE_MODEL) {
            rc = sg_buf_append(out, "\"", 1);
            if (rc == SG_OK)
                rc = sg_buf_append_json_str(out, d->provider_model, strlen(d->provider_model));
            if (rc == SG_OK)
                rc = sg_buf_append(out, "\"", 1);
        } else if (rc == SG_OK && sp[i].kind == SPLICE_STREAM_OPTIONS) {
            rc = append_stream_options(out, v);
        }
        p = v.p + v.n;
    }
    if (rc == SG_OK)
        rc = sg_buf_append(out, p, (size_t)(r->body + r->body_len - p));
    return rc;
}

char *sg_openai_chat_url(const struct sg_deployment *d)
{
    return sg_xasprintf("%s/chat/completions", d->api_base);
}

void sg_provider_error_message(const char *body, size_t len, char *out, size_t out_len)
{
    char err[128];
    struct json_object *root = len ? sg_json_parse_strict(body, len, err, sizeof err) : NULL;
    struct json_object *e, *m;
    if (root && json_object_object_get_ex(root, "error", &e)) {
        if (json_object_is_type(e, json_type_object) &&
            json_object_object_get_ex(e, "message", &m)) {
            snprintf(out, out_len, "%s", json_object_get_string(m));
            json_object_put(root);
            return;
        }
        if (json_object_is_type(e, json_type_string)) {
            snprintf(out, out_len, "%s", json_object_get_string(e));
            json_object_put(root);
            return;
        }
    }
    json_object_put(root);
    size_t n = SG_MIN(len, out_len > 1 ? out_len - 1 : 0);
    n = SG_MIN(n, (size_t)200);
    for (size_t i = 0; i < n; i++)
        out[i] = (body[i] >= 0x20 && body[i] < 0x7f) ? body[i] : ' ';
    if (out_len)
        out[n] = '\0';
}

/* ---- usage ---- */

int pj_append(struct sg_buf *out, struct json_object *o)
{
    size_t n = 0;
    const char *t = json_object_to_json_string_length(
        o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    return t ? sg_buf_append(out, t, n) : SG_ENOMEM;
}

struct json_object *pj_parse_object(const char *body, size_t len, char *err, size_t err_len)
{
    struct json_object *o = sg_json_parse_strict(body, len, err, err_len);
    if (o && !json_object_is_type(o, json_type_object)) {
        snprintf(err, err_len, "the request body must be a JSON object");
        json_object_put(o);
        return NULL;
    }
    return o;
}

void pj_openai_usage(struct json_object *usage, struct sg_usage *u)
{
    if (!pj_is(usage, json_type_object))
        return;
    u->known = true;
    u->input_tokens = pj_tokens(pj_int(usage, "prompt_tokens", pj_int(usage, "input_tokens", 0)));
    u->output_tokens =
        pj_tokens(pj_int(usage, "completion_tokens", pj_int(usage, "output_tokens", 0)));
    struct json_object *det = pj_get(usage, "prompt_tokens_details");
    u->cache_read_tokens = pj_tokens(pj_int(det, "cached_tokens", 0));
    /* Gateways in front of Anthropic (LiteLLM, OpenRouter) add these beside the OpenAI fields. */
    u->cache_creation_tokens = pj_tokens(pj_int(usage, "cache_creation_input_tokens", 0));
    if (!u->cache_read_tokens)
        u->cache_read_tokens = pj_tokens(pj_int(usage, "cache_read_input_tokens", 0));
    /* A provider that reports more cached than prompt tokens is wrong; never price negative. */
    if (u->cache_read_tokens + u->cache_creation_tokens > u->input_tokens)
        u->input_tokens = u->cache_read_tokens + u->cache_creation_tokens;
}

/* An integer member's value (the last one of that name, as json-c would read it); `def` when it
 * is absent or not a plain integer. */
static int64_t member_int(const struct sg_json_member *m, size_t n, const char *name, int64_t def)
{
    for (size_t i = n; i-- > 0;) {
        if (!sg_member_is(&m[i], name))
            continue;
        char num[24];
        int64_t v;
        if (m[i].value.n >= sizeof num)
            return def;
        memcpy(num, m[i].value.p, m[i].value.n);
        num[m[i].value.n] = '\0';
        return sg_parse_i64(num, INT64_MIN, INT64_MAX, &v) ? v : def;
    }
    return def;
}

static const struct sg_json_member *last_member(const struct sg_json_member *m, size_t n,
                                                const char *name)
{
    for (size_t i = n; i-- > 0;)
        if (sg_member_is(&m[i], name))
            return &m[i];
    return NULL;
}

/* Read usage with the scanner, not a tree: this runs on every answer (DESIGN §3's budget). The
 * fields and the corrections are pj_openai_usage()'s. */
int sg_openai_usage_parse(const char *body, size_t len, struct sg_usage *u)
{
    struct sg_json_member top[SG_CHAT_MAX_MEMBERS], um[32], dm[16];
    size_t n = 0, un = 0, dn = 0;
    char err[8];
    if (!len || sg_json_members(body, len, top, SG_ARRAY_LEN(top), &n, err, 0) != SG_OK)
        return SG_EINVAL;
    const struct sg_json_member *usage = last_member(top, n, "usage");
    if (!usage || usage->value.p[0] != '{' ||
        sg_json_members(usage->value.p, usage->value.n, um, SG_ARRAY_LEN(um), &un, err, 0))
        return SG_ENOTFOUND;
    u->known = true;
    u->input_tokens =
        pj_tokens(member_int(um, un, "prompt_tokens", member_int(um, un, "input_tokens", 0)));
    u->output_tokens =
        pj_tokens(member_int(um, un, "completion_tokens", member_int(um, un, "output_tokens", 0)));
    const struct sg_json_member *det = last_member(um, un, "prompt_tokens_details");
    u->cache_read_tokens = 0;
    if (det && det->value.p[0] == '{' &&
        sg_json_members(det->value.p, det->value.n, dm, SG_ARRAY_LEN(dm), &dn, err, 0) == SG_OK)
        u->cache_read_tokens = pj_tokens(member_int(dm, dn, "cached_tokens", 0));
    /* Gateways in front of Anthropic (LiteLLM, OpenRouter) add these beside the OpenAI fields. */
    u->cache_creation_tokens = pj_tokens(member_int(um, un, "cache_creation_input_tokens", 0));
    if (!u->cache_read_tokens)
        u->cache_read_tokens = pj_tokens(member_int(um, un, "cache_read_input_tokens", 0));
    /* A provider that reports more cached than prompt tokens is wrong; never price negative. */
    if (u->cache_read_tokens + u->cache_creation_tokens > u->input_tokens)
        u->input_tokens = u->cache_read_tokens + u->cache_creation_tokens;
    return SG_OK;
}

/* ---- usage in streams ---- */

static const char *ws_fwd(const char *p, const char *end)
{
    while (p < end && is_ws(*p))
        p++;
    return p;
}

/* Back from `p` over whitespace: the position just after the last other byte. */
static const char *ws_back(const char *begin, const char *p)
{
    while (p > begin && is_ws(p[-1]))
        p--;
    return p;
}

/* The cut that takes out a member whose name's opening quote is at `name` and whose value ends
 * at `vend`, with the comma that joins it: from the end of the member before it, or, for the
 * first member, up to the next member's name. False when the bytes around are not an object's
 * (no ',' or '{' before, no ',' or '}' after). */
static bool member_cut(struct sg_slice d, const char *name, const char *vend, struct sg_slice *cut)
{
    const char *end = d.p + d.n, *before = ws_back(d.p, name), *after = ws_fwd(vend, end);
    if (before == d.p || after == end)
        return false;
    if (before[-1] == ',') {
        const char *from = ws_back(d.p, before - 1);
        *cut = (struct sg_slice){from, (size_t)(vend - from)};
        return true;
    }
    if (before[-1] != '{')
        return false;
    if (*after == ',') { /* the first member: up to the next name */
        const char *next = ws_fwd(after + 1, end);
        *cut = (struct sg_slice){name, (size_t)(next - name)};
        return true;
    }
    *cut = (struct sg_slice){name, (size_t)(vend - name)}; /* the only member: {} is left */
    return *after == '}';
}

/* OpenAI's layout, found from the end in a dozen bytes: "usage":null is the last member of the
 * object the final '}' closes, so a top-level one (and the one a reader takes: the last). Its
 * cut is filled. */
static bool null_usage_last(struct sg_slice d, struct sg_slice *cut)
{
    const char *b = d.p, *p = ws_back(b, d.p + d.n);
    if (p == b || *--p != '}')
        return false;
    const char *vend = ws_back(b, p);
    if (vend - b < 4 || memcmp(vend - 4, "null", 4) != 0)
        return false;
    p = ws_back(b, vend - 4);
    if (p == b || *--p != ':')
        return false;
    p = ws_back(b, p);
    if (p - b < 7 || memcmp(p - 7, "\"usage\"", 7) != 0)
        return false;
    return member_cut(d, p - 7, vend, cut);
}

/* `u` is the first "usage" in the chunk: is it a null member, and the only usage member?
 * Outside a key, "usage" with both quotes bare can only be a string value, which no ':'
 * follows. `*vend` is set to the end of the null. */
static bool only_null_usage(struct sg_slice d, const char *u, const char **vend)
{
    const char *end = d.p + d.n, *v = ws_fwd(u + 7, end);
    if (v == end || *v != ':')
        return false;
    v = ws_fwd(v + 1, end);
    *vend = v + 4;
    return end - v >= 4 && memcmp(v, "null", 4) == 0 &&
           !memmem(v + 4, (size_t)(end - v - 4), "\"usage\"", 7);
}

/* A string member's raw JSON text into `out`; "" when it is not a string or does not fit. */
static void copy_raw_string(const struct sg_json_member *m, char *out, size_t cap)
{
    out[0] = '\0';
    if (m && m->value.p[0] == '"' && m->value.n < cap) {
        memcpy(out, m->value.p, m->value.n);
        out[m->value.n] = '\0';
    }
}

/* The first chunk's id, model and created, for a usage chunk the gateway may have to write. */
static void remember_head(struct sg_openai_stream *s, struct sg_slice d)
{
    struct sg_json_member m[SG_CHAT_MAX_MEMBERS];
    size_t n = 0;
    char err[8];
    if (sg_json_members(d.p, d.n, m, SG_ARRAY_LEN(m), &n, err, 0) != SG_OK)
        return;
    copy_raw_string(last_member(m, n, "id"), s->id, sizeof s->id);
    copy_raw_string(last_member(m, n, "model"), s->model, sizeof s->model);
    s->created = member_int(m, n, "created", 0);
}

/* No choices, or an empty array: the final usage chunk. */
static bool no_choices(const struct sg_json_member *choices)
{
    if (!choices)
        return true;
    struct sg_slice v = choices->value;
    return v.p[0] == '[' && *ws_fwd(v.p + 1, v.p + v.n) == ']';
}

/* Any other layout: the scanner lists the members. Usage is read; for a client that did not
 * ask, the usage chunk is not forwarded and a usage member on any other chunk is cut. */
static void scan_chunk(struct sg_openai_stream *s, struct sg_slice d, bool *forward)
{
    struct sg_json_member m[SG_CHAT_MAX_MEMBERS];
    size_t n = 0;
    char err[8];
    if (sg_json_members(d.p, d.n, m, SG_ARRAY_LEN(m), &n, err, 0) != SG_OK)
        return;
    const struct sg_json_member *usage = last_member(m, n, "usage");
    if (!usage)
        return;
    bool counted = usage->value.p[0] == '{';
    if (counted)
        sg_openai_usage_parse(d.p, d.n, &s->usage);
    if (s->client_wants_usage)
        return;
    if (counted && no_choices(last_member(m, n, "choices")))
        *forward = false;
    else
        member_cut(d, usage->name.p - 1, usage->value.p + usage->value.n, &s->hide);
}

/* Is `u` right after the chunk's opening brace? Then a member there is a top-level one. */
static bool first_member(struct sg_slice d, const char *u)
{
    const char *first = ws_fwd(d.p, u);
    return first < u && *first == '{' && ws_fwd(first + 1, u) == u;
}

void sg_openai_stream_event(struct sg_openai_stream *s, struct sg_slice data, bool *forward)
{
    *forward = true;
    s->hide = (struct sg_slice){data.p, 0};
    if (sg_slice_eq(data, "[DONE]")) {
        s->done = true;
        return;
    }
    /* An error event (OpenAI sends one when it fails after the head, then ends the stream):
     * the answer is incomplete, whatever comes after. */
    const char *first = data.n && data.p[0] == '{' ? ws_fwd(data.p + 1, data.p + data.n) : NULL;
    if (first && data.p + data.n - first > 7 && memcmp(first, "\"error\"", 7) == 0) {
        s->failed = true;
        sg_provider_error_message(data.p, data.n, s->error, sizeof s->error);
        return;
    }
    s->chunks++; /* the whole cost of the estimate on the hot path */
    if (s->chunks == 1 && s->client_wants_usage)
        remember_head(s, data); /* once a stream */
    /* Every chunk but the last carries "usage":null (the gateway always asks for usage):
     * OpenAI's layout costs a look at the last bytes; any other a memmem, and a scan only
     * when it finds something other than a lone null. */
    struct sg_slice cut;
    if (null_usage_last(data, &cut)) {
        if (!s->client_wants_usage)
            s->hide = cut;
        return;
    }
    const char *u = data.n ? memmem(data.p, data.n, "\"usage\"", 7) : NULL, *vend;
    if (!u)
        return;
    if (only_null_usage(data, u, &vend) &&
        (s->client_wants_usage || (first_member(data, u) && member_cut(data, u, vend, &s->hide))))
        return; /* kept, or cut as the chunk's first member */
    scan_chunk(s, data, forward);
}

struct sg_slice sg_openai_stream_relay(struct sg_openai_stream *s, struct sg_slice raw,
                                       struct sg_slice data, struct sg_buf *scratch)
{
    bool forward;
    sg_openai_stream_event(s, data, &forward);
    if (!forward)
        return (struct sg_slice){raw.p, 0};
    /* `data` is the SSE parser's copy of the event's data lines joined by "\n". With one
     * data line (always, in practice) it is that line's value in `raw`; a value split over
     * several lines is relayed as it came. */
    if (!s->hide.n || memchr(data.p, '\n', data.n))
        return raw;
    const char *line = raw.p, *end = raw.p + raw.n;
    while (line < end && (end - line < 5 || memcmp(line, "data:", 5) != 0)) {
        /* A line before the data line (id:, event:, a comment; rare): skip it and its end of
         * line ("\r\n" takes two turns, the second as an empty line). */
        while (line < end && *line != '\r' && *line != '\n')
            line++;
        if (line < end)
            line++;
    }
    if (line == end)
        return raw;
    const char *v = line + 5 + (end - line > 5 && line[5] == ' ');
    if ((size_t)(end - v) < data.n)
        return raw;
    const char *cut = v + (s->hide.p - data.p);
    sg_buf_reset(scratch);
    if (sg_buf_append(scratch, raw.p, (size_t)(cut - raw.p)) != SG_OK ||
        sg_buf_append(scratch, cut + s->hide.n, (size_t)(end - cut - s->hide.n)) != SG_OK)
        return raw;
    return (struct sg_slice){scratch->data, scratch->len};
}

/* ---- usage the gateway writes (the estimate, docs/pricing.md) ---- */

/* OpenAI's usage object for `u`; embeddings answers have no completion tokens. */
static int append_openai_usage(struct sg_buf *out, const struct sg_usage *u, bool embeddings)
{
    if (embeddings)
        return sg_buf_appendf(out, "{\"prompt_tokens\":%lld,\"total_tokens\":%lld}",
                              (long long)u->input_tokens, (long long)u->input_tokens);
    int rc = sg_buf_appendf(out,
                            "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,"
                            "\"total_tokens\":%lld",
                            (long long)u->input_tokens, (long long)u->output_tokens,
                            (long long)(u->input_tokens + u->output_tokens));
    if (rc == SG_OK && u->cache_read_tokens)
        rc = sg_buf_appendf(out, ",\"prompt_tokens_details\":{\"cached_tokens\":%lld}",
                            (long long)u->cache_read_tokens);
    return rc == SG_OK ? sg_buf_append(out, "}", 1) : rc;
}

int sg_openai_usage_chunk(const struct sg_openai_stream *s, const struct sg_usage *u,
                          struct sg_buf *out)
{
    int rc = sg_buf_appends(out, "data: {");
    if (rc == SG_OK && s->id[0])
        rc = sg_buf_appendf(out, "\"id\":%s,", s->id);
    if (rc == SG_OK)
        rc = sg_buf_appends(out, "\"object\":\"chat.completion.chunk\",");
    if (rc == SG_OK && s->created > 0)
        rc = sg_buf_appendf(out, "\"created\":%lld,", (long long)s->created);
    if (rc == SG_OK && s->model[0])
        rc = sg_buf_appendf(out, "\"model\":%s,", s->model);
    if (rc == SG_OK)
        rc = sg_buf_appends(out, "\"choices\":[],\"usage\":");
    if (rc == SG_OK)
        rc = append_openai_usage(out, u, false);
    return rc == SG_OK ? sg_buf_appends(out, "}\n\n") : rc;
}

int sg_answer_set_usage(enum sg_api api, struct sg_slice answer, const struct sg_usage *u,
                        struct sg_buf *out)
{
    struct sg_buf usage;
    sg_buf_init(&usage, 0);
    int rc = api == SG_API_MESSAGES ? sg_messages_append_usage(&usage, u)
                                    : append_openai_usage(&usage, u, api == SG_API_EMBEDDINGS);
    if (rc == SG_OK)
        rc = sg_json_set_member(out, answer, "usage",
                                (struct sg_slice){usage.data ? usage.data : "", usage.len});
    sg_buf_dispose(&usage);
    return rc;
}

/* ---- embeddings ---- */

/* OpenAI's words for an input it cannot embed (an empty string, an empty list, a list with an
 * empty string or of mixed kinds, a value of another type): the same whatever was wrong. */
#define EMBED_INPUT_INVALID                                                                        \
    "'$.input' is invalid. Please check the API reference: "                                       \
    "https://platform.openai.com/docs/api-reference."
/* Inputs in one request (OpenAI's limit). */
#define EMBED_MAX_INPUTS 2048

/* One input of a list: a non-empty string, a token, or a non-empty list of tokens; every item of
 * the list of the same kind as the first (`*kind`: its JSON type, set by the first). */
static bool embed_item_ok(struct json_object *it, enum json_type *kind)
{
    enum json_type t = json_object_get_type(it);
    if (*kind == json_type_null)
        *kind = t;
    if (t != *kind)
        return false;
    if (t == json_type_string)
        return json_object_get_string_len(it) > 0;
    if (t == json_type_int)
        return true;
    if (t != json_type_array)
        return false;
    size_t n = json_object_array_length(it);
    for (size_t i = 0; i < n; i++)
        if (!json_object_is_type(json_object_array_get_idx(it, i), json_type_int))
            return false;
    return n > 0;
}

/* The input OpenAI embeds: a non-empty string, or a list of 1..2048 non-empty strings, of tokens
 * (integers), or of non-empty token lists. */
static bool embed_input_ok(struct sg_slice v)
{
    if (v.p[0] == '"')
        return v.n > 2;
    if (v.p[0] != '[')
        return false;
    char err[8];
    struct json_object *o = sg_json_parse_strict(v.p, v.n, err, sizeof err);
    size_t n = o ? json_object_array_length(o) : 0;
    bool ok = n > 0 && n <= EMBED_MAX_INPUTS;
    enum json_type kind = json_type_null;
    for (size_t i = 0; ok && i < n; i++)
        ok = embed_item_ok(json_object_array_get_idx(o, i), &kind);
    json_object_put(o);
    return ok;
}

int sg_embeddings_request_parse(const char *body, size_t len, struct sg_chat_request *out,
                                char *err, size_t err_len)
{
    struct sg_json_member m[SG_CHAT_MAX_MEMBERS];
    size_t n;
    const struct sg_json_member *model, *input = NULL, *user = NULL, *format = NULL;
    if (sg_request_scan(body, len, SG_API_EMBEDDINGS, out, m, &n, &model, err, err_len) != SG_OK ||
        sg_request_model(out, model, err, err_len) != SG_OK)
        return SG_EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (sg_member_is(&m[i], "input"))
            input = &m[i];
        else if (sg_member_is(&m[i], "user"))
            user = &m[i];
        else if (sg_member_is(&m[i], "encoding_format"))
            format = &m[i];
    }
    if (!input || sg_slice_eq(input->value, "null")) {
        out->error_param = "input";
        snprintf(err, err_len, "'input' is a required property");
        return SG_EINVAL;
    }
    if (!embed_input_ok(input->value)) {
        snprintf(err, err_len, "%s", EMBED_INPUT_INVALID);
        return SG_EINVAL;
    }
    if (format && !sg_slice_eq(format->value, "null") && !sg_slice_eq(format->value, "\"float\"") &&
        !sg_slice_eq(format->value, "\"base64\"")) {
        struct sg_slice v = format->value; /* a string as OpenAI prints it: without quotes */
        if (v.p[0] == '"')
            v = (struct sg_slice){v.p + 1, v.n - 2};
        snprintf(err, err_len,
                 "Invalid value for 'encoding_format' = %.*s. Supported values: ['float', "
                 "'base64'].",
                 (int)SG_MIN(v.n, 64), v.p);
        return SG_EINVAL;
    }
    if (check_params(out, m, n, embeddings_params, SG_ARRAY_LEN(embeddings_params), err, err_len) !=
        SG_OK)
        return SG_EINVAL;
    if (user)
        member_id(user, out->user, sizeof out->user);
    return SG_OK;
}

char *sg_openai_embeddings_url(const struct sg_deployment *d)
{
    return sg_xasprintf("%s/embeddings", d->api_base);
}
