/* The OpenAI chat.completions wire format: request parsing and encoding for compatible APIs. */
#include "provider.h"

#include <json-c/json.h>
#include <math.h>
#include <stdio.h>

/* json-c accepts NaN and Infinity literals in some modes; providers do not, and a NaN in a
 * number the gateway reads (max_tokens, temperature) would poison arithmetic. */
static bool has_non_finite(struct json_object *o, int depth)
{
    if (depth > SG_JSON_MAX_DEPTH)
        return true;
    switch (json_object_get_type(o)) {
    case json_type_double:
        return !isfinite(json_object_get_double(o));
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
    default:
        return false;
    }
}

struct json_object *sg_json_parse_strict(const char *body, size_t len, char *err, size_t err_len)
{
    if (len == 0) {
        snprintf(err, err_len, "the request body is empty; send a JSON object");
        return NULL;
    }
    if (len > INT32_MAX) {
        snprintf(err, err_len, "the request body is too large");
        return NULL;
    }
    struct json_tokener *tok = json_tokener_new_ex(SG_JSON_MAX_DEPTH);
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    struct json_object *o = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t end = json_tokener_get_parse_end(tok);
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
    while (end < len && (body[end] == ' ' || body[end] == '\n' || body[end] == '\r' ||
                         body[end] == '\t'))
        end++;
    if (end != len) {
        snprintf(err, err_len, "the request body is not valid JSON: unexpected data at byte %zu",
                 end);
        json_object_put(o);
        return NULL;
    }
    if (has_non_finite(o, 0)) {
        snprintf(err, err_len, "the request body holds NaN or Infinity, which JSON does not "
                               "allow; send finite numbers");
        json_object_put(o);
        return NULL;
    }
    return o;
}

static struct sg_slice str_slice(struct json_object *o)
{
    return (struct sg_slice){json_object_get_string(o), (size_t)json_object_get_string_len(o)};
}

int sg_chat_request_parse(const char *body, size_t len, struct sg_chat_request *out, char *err,
                          size_t err_len)
{
    memset(out, 0, sizeof *out);
    struct json_object *root = sg_json_parse_strict(body, len, err, err_len);
    if (!root)
        return SG_EINVAL;
    if (!json_object_is_type(root, json_type_object)) {
        snprintf(err, err_len, "the request body must be a JSON object");
        goto fail;
    }
    struct json_object *v;
    if (!json_object_object_get_ex(root, "model", &v) || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) == 0) {
        snprintf(err, err_len, "you must provide a model parameter");
        goto fail;
    }
    out->model = str_slice(v);
    if (!json_object_object_get_ex(root, "messages", &v) ||
        !json_object_is_type(v, json_type_array)) {
        snprintf(err, err_len, "'messages' is a required property and must be an array");
        goto fail;
    }
    if (json_object_array_length(v) == 0) {
        snprintf(err, err_len, "'messages' must contain at least one message");
        goto fail;
    }
    if (json_object_object_get_ex(root, "stream", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_boolean)) {
            snprintf(err, err_len, "'stream' must be a boolean");
            goto fail;
        }
        out->stream = json_object_get_boolean(v);
    }
    struct json_object *so, *iu;
    if (json_object_object_get_ex(root, "stream_options", &so) &&
        json_object_object_get_ex(so, "include_usage", &iu))
        out->include_usage = json_object_get_boolean(iu);
    if (json_object_object_get_ex(root, "user", &v) && json_object_is_type(v, json_type_string))
        out->user = str_slice(v);
    struct json_object *md, *f;
    if (json_object_object_get_ex(root, "metadata", &md) &&
        json_object_object_get_ex(md, "feature", &f) && json_object_is_type(f, json_type_string))
        out->feature = str_slice(f);
    out->root = root;
    return SG_OK;
fail:
    json_object_put(root);
    return SG_EINVAL;
}

void sg_chat_request_dispose(struct sg_chat_request *r)
{
    json_object_put(r->root);
    r->root = NULL;
}

int sg_openai_encode_chat(const struct sg_chat_request *r, const struct sg_deployment *d,
                          struct sg_buf *out)
{
    /* The model is the only field that changes; re-serialising keeps the encoder obviously
     * correct. (Splicing into the original bytes is the measured next step, DESIGN §3.) */
    struct json_object *model = json_object_new_string(d->provider_model);
    struct json_object *old = NULL;
    json_object_object_get_ex(r->root, "model", &old);
    json_object_get(old); /* keep the client's alias alive: r->model points into it */
    json_object_object_add(r->root, "model", model);
    size_t n;
    const char *s = json_object_to_json_string_length(
        r->root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &n);
    int rc = sg_buf_append(out, s, n);
    json_object_object_add(r->root, "model", old); /* restore for the next attempt */
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
        if (json_object_is_type(e, json_type_object) && json_object_object_get_ex(e, "message", &m)) {
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
