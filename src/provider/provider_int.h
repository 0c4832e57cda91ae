/* provider — private helpers shared by the adapters (json-c trees on the translation paths). */
#ifndef SG_PROVIDER_INT_H
#define SG_PROVIDER_INT_H

#include "provider.h"

#include <json-c/json.h>
#include <stdio.h>

/* Member `k` of an object, or NULL (also when `o` is not an object or the value is null). */
static inline struct json_object *pj_get(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    if (o && json_object_is_type(o, json_type_object))
        json_object_object_get_ex(o, k, &v);
    return v;
}

/* Member `k` as a string, or NULL when absent or not a string. */
static inline const char *pj_str(struct json_object *o, const char *k)
{
    struct json_object *v = pj_get(o, k);
    return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static inline bool pj_is(struct json_object *o, enum json_type t)
{
    return o && json_object_is_type(o, t);
}

/* Member `k` as an integer, or `def` when absent or not an integer. */
static inline int64_t pj_int(struct json_object *o, const char *k, int64_t def)
{
    struct json_object *v = pj_get(o, k);
    return pj_is(v, json_type_int) ? json_object_get_int64(v) : def;
}

/* A token count a provider reported, clamped to [0, SG_USAGE_MAX_TOKENS]. */
static inline int64_t pj_tokens(int64_t v)
{
    return v < 0 ? 0 : v > SG_USAGE_MAX_TOKENS ? SG_USAGE_MAX_TOKENS : v;
}

/* Add `v` under `k`, taking a new reference to a value owned by another tree. */
static inline void pj_add_ref(struct json_object *dst, const char *k, struct json_object *v)
{
    json_object_object_add(dst, k, json_object_get(v));
}

/* Append the compact JSON text of `o` (no "\/" escapes). */
int pj_append(struct sg_buf *out, struct json_object *o);
/* Parse a body strictly (sg_json_parse_strict) and insist on an object. */
struct json_object *pj_parse_object(const char *body, size_t len, char *err, size_t err_len);
/* Read an OpenAI-shaped usage object into `u` (prompt/completion tokens, cached details, and
 * Anthropic-style cache fields some gateways add). */
void pj_openai_usage(struct json_object *usage, struct sg_usage *u);
/* Read an Anthropic usage object: input_tokens excludes the cache, we include it. Fields that are
 * absent leave `u` as it was (message_delta carries only some of them). */
void pj_anthropic_usage(struct json_object *usage, struct sg_usage *u);
/* What every request parser (chat, Messages, embeddings) starts with: reset `out` for `api`,
 * scan the body's top-level members into `m` (SG_CHAT_MAX_MEMBERS of them), and record every
 * top-level "model" value for the splice. `*model` is the last "model" member (json-c's and the
 * providers' reading), or NULL. SG_EINVAL with the client's message in `err`. */
int sg_request_scan(const char *body, size_t len, enum sg_api api, struct sg_chat_request *out,
                    struct sg_json_member *m, size_t *n, const struct sg_json_member **model,
                    char *err, size_t err_len);
/* Is this member's name `name` (escapes decoded: "mod\u0065l" is "model")? */
bool sg_member_is(const struct sg_json_member *m, const char *name);
/* Decode `model` into out->model; SG_EINVAL with OpenAI's "you must provide a model parameter"
 * when it is absent, not a string, empty or too long. */
int sg_request_model(struct sg_chat_request *out, const struct sg_json_member *model, char *err,
                     size_t err_len);
/* Append `obj` (raw JSON) with its top-level member `name` set to `value` (raw JSON): the other
 * members as written, in order, then "name":value; any earlier member of that name is left out.
 * SG_EINVAL, nothing appended, when `obj` is not an object of at most SG_CHAT_MAX_MEMBERS. */
int sg_json_set_member(struct sg_buf *out, struct sg_slice obj, const char *name,
                       struct sg_slice value);
/* Append the Messages API usage object for `u` (input_tokens without the cached parts). */
int sg_messages_append_usage(struct sg_buf *out, const struct sg_usage *u);
/* Append the escaped text of JSON string `s` (no quotes around it); nothing when `s` is NULL. */
static inline void pj_append_text(struct sg_buf *out, struct json_object *s)
{
    if (s)
        sg_buf_append_json_str(out, json_object_get_string(s),
                               (size_t)json_object_get_string_len(s));
}
/* The id a translated answer carries, in the client's API's form: `id` with the provider's
 * prefix `from` ("msg_", "chatcmpl-") replaced by the client's `to`, so a chat client sees
 * "chatcmpl-…" ids and a Messages client "msg_…" ones, and the provider's id can still be read
 * in it. An absent or empty id is `to` followed by "0". */
static inline void pj_translated_id(char *dst, size_t cap, const char *id, const char *from,
                                    const char *to)
{
    size_t fl = strlen(from);
    if (!id || !*id)
        id = "0";
    else if (strncmp(id, from, fl) == 0 && id[fl])
        id += fl;
    snprintf(dst, cap, "%s%s", to, id);
}
/* Count cache_control markers anywhere under `o` (bounded depth). */
int pj_count_cache_control(struct json_object *o, int depth);

#endif
