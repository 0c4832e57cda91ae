/*
 * Anthropic Messages for chat.completions clients, the request: encode a chat.completions
 * request as a Messages request. The answer and the stream come back in anthropic_answer.c.
 *
 * These paths build json-c trees: a translation rewrites most of the body anyway, and the
 * tree keeps the escaping rules in one place. The OpenAI -> OpenAI hot path never comes here.
 *
 * Mapping (OpenAI -> Anthropic):
 *   system / developer messages  -> top-level `system` text blocks (in order)
 *   user content parts           -> text / image blocks (data: URLs -> base64 sources)
 *   file parts (file_data)       -> document blocks (PDF base64, plain text decoded), images
 *   assistant tool_calls         -> tool_use blocks (arguments parsed into `input`)
 *   tool messages                -> tool_result blocks in a user turn
 *   consecutive same-role turns  -> one turn (Anthropic wants tool results together)
 *   max_completion_tokens / max_tokens -> max_tokens (always present: Anthropic requires it)
 *   stop -> stop_sequences, temperature (clamped to Anthropic's 0..1), top_p,
 *   tools / tool_choice / parallel_tool_calls, user -> metadata.user_id
 *   response_format json_schema / json_object -> the json_tool_call tool, forced; its call in
 *   the answer (and its input_json_delta in a stream) -> the message's content
 */
#include "provider_int.h"

#include <stdio.h>
#include <stdlib.h>

#define ERR(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, err_len, __VA_ARGS__);                                                       \
        goto fail;                                                                                 \
    } while (0)

char *sg_anthropic_url(const struct sg_deployment *d)
{
    return sg_xasprintf("%s/v1/messages", d->api_base);
}

static struct json_object *text_block(const char *text, size_t n, struct json_object *cc)
{
    struct json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("text"));
    json_object_object_add(b, "text", json_object_new_string_len(text, (int)n));
    if (cc)
        pj_add_ref(b, "cache_control", cc);
    return b;
}

/* Append the text of an OpenAI content value (a string, or parts of which only text counts)
 * as text blocks to `arr`. False when a part is not text. */
static bool content_as_text_blocks(struct json_object *content, struct json_object *arr)
{
    if (!content)
        return true;
    if (pj_is(content, json_type_string)) {
        json_object_array_add(arr, text_block(json_object_get_string(content),
                                              (size_t)json_object_get_string_len(content), NULL));
        return true;
    }
    if (!pj_is(content, json_type_array))
        return false;
    size_t n = json_object_array_length(content);
    for (size_t i = 0; i < n; i++) {
        struct json_object *part = json_object_array_get_idx(content, i);
        const char *type = pj_str(part, "type");
        struct json_object *text = pj_get(part, "text");
        if (!type || strcmp(type, "text") != 0 || !pj_is(text, json_type_string))
            return false;
        json_object_array_add(arr, text_block(json_object_get_string(text),
                                              (size_t)json_object_get_string_len(text),
                                              pj_get(part, "cache_control")));
    }
    return true;
}

/* An image_url part as an Anthropic image block. */
static struct json_object *image_block(struct json_object *part, char *err, size_t err_len)
{
    struct json_object *iu = pj_get(part, "image_url");
    const char *url = pj_is(iu, json_type_string) ? json_object_get_string(iu) : pj_str(iu, "url");
    if (!url) {
        snprintf(err, err_len, "an image_url part needs image_url.url");
        return NULL;
    }
    struct json_object *src = json_object_new_object();
    struct sg_slice mt, data;
    if (strncmp(url, "data:", 5) == 0) {
        if (!sg_data_url(url, strlen(url), &mt, &data)) {
            json_object_put(src);
            snprintf(err, err_len,
                     "an image data URL must look like data:image/png;base64,... for Anthropic");
            return NULL;
        }
        json_object_object_add(src, "type", json_object_new_string("base64"));
        json_object_object_add(src, "media_type", json_object_new_string_len(mt.p, (int)mt.n));
        json_object_object_add(src, "data", json_object_new_string_len(data.p, (int)data.n));
    } else {
        json_object_object_add(src, "type", json_object_new_string("url"));
        json_object_object_add(src, "url", json_object_new_string(url));
    }
    struct json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("image"));
    json_object_object_add(b, "source", src);
    if (pj_get(part, "cache_control"))
        pj_add_ref(b, "cache_control", pj_get(part, "cache_control"));
    return b;
}

/* A file part ({"type":"file","file":{"file_data":"data:...;base64,...","filename":...}}) as
 * an Anthropic block, as LiteLLM maps it: a PDF is a base64 document; plain text (which
 * Anthropic takes only as a text source) a text document of the decoded bytes; a JPEG, PNG, GIF
 * or WebP an image block. The filename becomes the document's title. A file_id names a file in
 * OpenAI's Files API, which an Anthropic deployment cannot read. */
static struct json_object *file_block(struct json_object *part, char *err, size_t err_len)
{
    struct json_object *f = pj_get(part, "file");
    const char *data = pj_str(f, "file_data");
    if (!data) {
        if (pj_get(f, "file_id"))
            snprintf(err, err_len,
                     "file.file_id names a file in OpenAI's Files API, which Anthropic cannot "
                     "read; send the file's bytes in file.file_data");
        else
            snprintf(err, err_len, "a file part needs file.file_data (a base64 data URL)");
        return NULL;
    }
    struct sg_slice mt, b64;
    if (!sg_data_url(data, strlen(data), &mt, &b64)) {
        snprintf(err, err_len,
                 "file.file_data must be a base64 data URL (data:application/pdf;base64,...)");
        return NULL;
    }
    bool pdf = sg_slice_eq(mt, "application/pdf"), text = sg_slice_eq(mt, "text/plain");
    bool image = sg_slice_eq(mt, "image/jpeg") || sg_slice_eq(mt, "image/png") ||
                 sg_slice_eq(mt, "image/gif") || sg_slice_eq(mt, "image/webp");
    if (!pdf && !text && !image) {
        snprintf(err, err_len,
                 "a file of type '%.*s' cannot be read by Anthropic (PDF, plain text and "
                 "JPEG/PNG/GIF/WebP images can)",
                 (int)SG_MIN(mt.n, 90), mt.p);
        return NULL;
    }
    struct json_object *src = json_object_new_object();
    json_object_object_add(src, "type", json_object_new_string(text ? "text" : "base64"));
    json_object_object_add(src, "media_type", json_object_new_string_len(mt.p, (int)mt.n));
    if (text) {
        struct sg_buf plain;
        sg_buf_init(&plain, 0);
        int rc = sg_base64_decode(b64.p, b64.n, &plain);
        if (rc != SG_OK || sg_utf8_check(plain.data ? plain.data : "", plain.len) != plain.len) {
            sg_buf_dispose(&plain);
            json_object_put(src);
            snprintf(err, err_len, "a text/plain file.file_data must be base64 of UTF-8 text");
            return NULL;
        }
        json_object_object_add(
            src, "data", json_object_new_string_len(plain.data ? plain.data : "", (int)plain.len));
        sg_buf_dispose(&plain);
    } else {
        json_object_object_add(src, "data", json_object_new_string_len(b64.p, (int)b64.n));
    }
    struct json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string(image ? "image" : "document"));
    json_object_object_add(b, "source", src);
    const char *name = pj_str(f, "filename");
    if (!image && name && *name)
        pj_add_ref(b, "title", pj_get(f, "filename"));
    if (pj_get(part, "cache_control"))
        pj_add_ref(b, "cache_control", pj_get(part, "cache_control"));
    return b;
}

/* User content (string or parts) as blocks appended to `arr`. */
static int user_blocks(struct json_object *content, struct json_object *arr, size_t mi, char *err,
                       size_t err_len)
{
    if (pj_is(content, json_type_string)) {
        json_object_array_add(arr, text_block(json_object_get_string(content),
                                              (size_t)json_object_get_string_len(content), NULL));
        return SG_OK;
    }
    if (!pj_is(content, json_type_array)) {
        snprintf(err, err_len, "messages[%zu].content must be a string or an array of parts", mi);
        return SG_EINVAL;
    }
    size_t n = json_object_array_length(content);
    for (size_t i = 0; i < n; i++) {
        struct json_object *part = json_object_array_get_idx(content, i);
        const char *type = pj_str(part, "type");
        if (type && strcmp(type, "text") == 0 && pj_str(part, "text")) {
            struct json_object *t = pj_get(part, "text");
            json_object_array_add(arr, text_block(json_object_get_string(t),
                                                  (size_t)json_object_get_string_len(t),
                                                  pj_get(part, "cache_control")));
        } else if (type && (strcmp(type, "image_url") == 0 || strcmp(type, "file") == 0)) {
            char e2[200];
            struct json_object *b =
                type[0] == 'i' ? image_block(part, e2, sizeof e2) : file_block(part, e2, sizeof e2);
            if (!b) {
                snprintf(err, err_len, "messages[%zu].content[%zu]: %s", mi, i, e2);
                return SG_EINVAL;
            }
            json_object_array_add(arr, b);
        } else {
            snprintf(err, err_len,
                     "messages[%zu].content[%zu]: part type '%s' is not supported by Anthropic "
                     "deployments (text, image_url and file are)",
                     mi, i, type ? type : "(none)");
            return SG_EINVAL;
        }
    }
    return SG_OK;
}

/* Append a turn, merging into the previous one when the role repeats. */
static void push_turn(struct json_object *msgs, const char *role, struct json_object *blocks_take)
{
    size_t n = json_object_array_length(msgs);
    struct json_object *last = n ? json_object_array_get_idx(msgs, n - 1) : NULL;
    if (last && strcmp(pj_str(last, "role"), role) == 0) {
        struct json_object *c = pj_get(last, "content");
        size_t bn = json_object_array_length(blocks_take);
        for (size_t i = 0; i < bn; i++)
            json_object_array_add(c, json_object_get(json_object_array_get_idx(blocks_take, i)));
        json_object_put(blocks_take);
        return;
    }
    struct json_object *m = json_object_new_object();
    json_object_object_add(m, "role", json_object_new_string(role));
    json_object_object_add(m, "content", blocks_take);
    json_object_array_add(msgs, m);
}

/* An assistant message's thinking_blocks (LiteLLM's field: the blocks an answer carried) as the
 * turn's first blocks, where Anthropic wants them: with thinking on, the turn of a tool call
 * must start with its thinking, signature intact. reasoning_content alone has no signature
 * and is not sent. */
static int thinking_blocks(struct json_object *msg, struct json_object *arr, size_t mi, char *err,
                           size_t err_len)
{
    struct json_object *tb = pj_get(msg, "thinking_blocks");
    if (!tb)
        return SG_OK;
    if (!pj_is(tb, json_type_array)) {
        snprintf(err, err_len, "messages[%zu].thinking_blocks must be an array", mi);
        return SG_EINVAL;
    }
    size_t n = json_object_array_length(tb);
    for (size_t i = 0; i < n; i++) {
        struct json_object *b = json_object_array_get_idx(tb, i), *o = json_object_new_object();
        const char *type = pj_str(b, "type");
        if (type && strcmp(type, "thinking") == 0 && pj_str(b, "thinking") &&
            pj_str(b, "signature")) {
            json_object_object_add(o, "type", json_object_new_string("thinking"));
            pj_add_ref(o, "thinking", pj_get(b, "thinking"));
            pj_add_ref(o, "signature", pj_get(b, "signature"));
        } else if (type && strcmp(type, "redacted_thinking") == 0 && pj_str(b, "data")) {
            json_object_object_add(o, "type", json_object_new_string("redacted_thinking"));
            pj_add_ref(o, "data", pj_get(b, "data"));
        } else {
            json_object_put(o);
            snprintf(err, err_len,
                     "messages[%zu].thinking_blocks[%zu] must be {\"type\":\"thinking\","
                     "\"thinking\":...,\"signature\":...} or {\"type\":\"redacted_thinking\","
                     "\"data\":...}, as the answer gave it",
                     mi, i);
            return SG_EINVAL;
        }
        json_object_array_add(arr, o);
    }
    return SG_OK;
}

static int assistant_blocks(struct json_object *msg, struct json_object *arr, size_t mi, char *err,
                            size_t err_len)
{
    if (thinking_blocks(msg, arr, mi, err, err_len) != SG_OK)
        return SG_EINVAL;
    struct json_object *content = pj_get(msg, "content");
    if (pj_is(content, json_type_string)) {
        /* Anthropic rejects empty text blocks; an assistant turn with only tool calls often
         * carries content "" */
        if (json_object_get_string_len(content) > 0)
            json_object_array_add(arr,
                                  text_block(json_object_get_string(content),
                                             (size_t)json_object_get_string_len(content), NULL));
    } else if (content && !content_as_text_blocks(content, arr)) {
        snprintf(err, err_len, "messages[%zu].content: assistant content must be text", mi);
        return SG_EINVAL;
    }
    struct json_object *calls = pj_get(msg, "tool_calls");
    if (!calls)
        return SG_OK;
    if (!pj_is(calls, json_type_array)) {
        snprintf(err, err_len, "messages[%zu].tool_calls must be an array", mi);
        return SG_EINVAL;
    }
    size_t n = json_object_array_length(calls);
    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(calls, i);
        struct json_object *fn = pj_get(c, "function");
        const char *id = pj_str(c, "id"), *name = pj_str(fn, "name");
        const char *args = pj_str(fn, "arguments");
        if (!id || !name) {
            snprintf(err, err_len, "messages[%zu].tool_calls[%zu] needs an id and function.name",
                     mi, i);
            return SG_EINVAL;
        }
        struct json_object *input;
        size_t alen = args ? strlen(args) : 0;
        while (alen && strchr(" \t\r\n", args[alen - 1]))
            alen--;
        if (alen == 0) {
            input = json_object_new_object();
        } else {
            char e2[160];
            input = sg_json_parse_strict(args, alen, e2, sizeof e2);
            if (!pj_is(input, json_type_object)) {
                json_object_put(input);
                snprintf(err, err_len,
                         "messages[%zu].tool_calls[%zu].function.arguments must be a JSON object "
                         "(Anthropic takes tool input as an object)",
                         mi, i);
                return SG_EINVAL;
            }
        }
        struct json_object *b = json_object_new_object();
        json_object_object_add(b, "type", json_object_new_string("tool_use"));
        json_object_object_add(b, "id", json_object_new_string(id));
        json_object_object_add(b, "name", json_object_new_string(name));
        json_object_object_add(b, "input", input);
        json_object_array_add(arr, b);
    }
    return SG_OK;
}

static int tool_result_block(struct json_object *msg, struct json_object *arr, size_t mi, char *err,
                             size_t err_len)
{
    const char *id = pj_str(msg, "tool_call_id");
    if (!id) {
        snprintf(err, err_len, "messages[%zu]: a tool message needs tool_call_id", mi);
        return SG_EINVAL;
    }
    struct json_object *b = json_object_new_object();
    json_object_object_add(b, "type", json_object_new_string("tool_result"));
    json_object_object_add(b, "tool_use_id", json_object_new_string(id));
    struct json_object *content = pj_get(msg, "content");
    if (pj_is(content, json_type_array)) {
        struct json_object *c = json_object_new_array();
        if (!content_as_text_blocks(content, c)) {
            json_object_put(c);
            json_object_put(b);
            snprintf(err, err_len, "messages[%zu].content: tool results must be text", mi);
            return SG_EINVAL;
        }
        json_object_object_add(b, "content", c);
    } else if (pj_is(content, json_type_string)) {
        pj_add_ref(b, "content", content);
    } else {
        json_object_object_add(b, "content", json_object_new_string(""));
    }
    json_object_array_add(arr, b);
    return SG_OK;
}

static int convert_tools(struct json_object *tools, struct json_object *out_arr, char *err,
                         size_t err_len)
{
    if (!pj_is(tools, json_type_array)) {
        snprintf(err, err_len, "'tools' must be an array");
        return SG_EINVAL;
    }
    size_t n = json_object_array_length(tools);
    for (size_t i = 0; i < n; i++) {
        struct json_object *t = json_object_array_get_idx(tools, i);
        const char *type = pj_str(t, "type");
        struct json_object *fn = pj_get(t, "function");
        const char *name = pj_str(fn, "name");
        if (!type || strcmp(type, "function") != 0 || !name) {
            snprintf(err, err_len,
                     "tools[%zu] must be {\"type\":\"function\",\"function\":"
                     "{\"name\":...}}",
                     i);
            return SG_EINVAL;
        }
        if (strcmp(name, SG_ANTHROPIC_JSON_TOOL) == 0) {
            /* Answers are decoded without the request: a call of this name is taken for the
             * response_format answer, so a client's tool may not share it. */
            snprintf(err, err_len,
                     "tools[%zu].function.name '" SG_ANTHROPIC_JSON_TOOL
                     "' is reserved at Anthropic deployments (the gateway's response_format "
                     "tool): rename the function",
                     i);
            return SG_EINVAL;
        }
        struct json_object *a = json_object_new_object();
        json_object_object_add(a, "name", json_object_new_string(name));
        if (pj_str(fn, "description"))
            pj_add_ref(a, "description", pj_get(fn, "description"));
        struct json_object *params = pj_get(fn, "parameters");
        if (pj_is(params, json_type_object)) {
            pj_add_ref(a, "input_schema", params);
        } else {
            /* Anthropic requires a schema; OpenAI allows none (a function without arguments). */
            struct json_object *s = json_object_new_object();
            json_object_object_add(s, "type", json_object_new_string("object"));
            json_object_object_add(s, "properties", json_object_new_object());
            json_object_object_add(a, "input_schema", s);
        }
        if (pj_get(t, "cache_control"))
            pj_add_ref(a, "cache_control", pj_get(t, "cache_control"));
        json_object_array_add(out_arr, a);
    }
    return SG_OK;
}

static int convert_tool_choice(struct json_object *tc, struct json_object *parallel,
                               struct json_object *req, char *err, size_t err_len)
{
    struct json_object *out = NULL;
    if (pj_is(tc, json_type_string)) {
        const char *s = json_object_get_string(tc);
        const char *t = strcmp(s, "required") == 0 ? "any"
                        : strcmp(s, "none") == 0   ? "none"
                        : strcmp(s, "auto") == 0   ? "auto"
                                                   : NULL;
        if (!t) {
            snprintf(err, err_len, "tool_choice must be none, auto, required or a function");
            return SG_EINVAL;
        }
        out = json_object_new_object();
        json_object_object_add(out, "type", json_object_new_string(t));
    } else if (tc) {
        const char *name = pj_str(pj_get(tc, "function"), "name");
        if (!name) {
            snprintf(err, err_len, "tool_choice.function.name is required");
            return SG_EINVAL;
        }
        out = json_object_new_object();
        json_object_object_add(out, "type", json_object_new_string("tool"));
        json_object_object_add(out, "name", json_object_new_string(name));
    }
    if (pj_is(parallel, json_type_boolean) && !json_object_get_boolean(parallel)) {
        if (!out) {
            out = json_object_new_object();
            json_object_object_add(out, "type", json_object_new_string("auto"));
        }
        if (strcmp(pj_str(out, "type"), "none") != 0)
            json_object_object_add(out, "disable_parallel_tool_use", json_object_new_boolean(1));
    }
    if (out)
        json_object_object_add(req, "tool_choice", out);
    return SG_OK;
}

/* ---- response_format: a forced tool whose input is the answer (as LiteLLM does) ---- */

#define RF_SHAPES                                                                                  \
    "{\"type\":\"json_schema\",\"json_schema\":{\"name\":...,\"schema\":{\"type\":\"object\","     \
    "...}}}, {\"type\":\"json_object\"} or {\"type\":\"text\"}"

/* A json_schema's schema as an input_schema: Anthropic wants "type":"object" at the top, so an
 * untyped schema gets it (LiteLLM's default too) and another type is refused: the answer is a
 * tool's input, which is an object. NULL with a message otherwise. */
static struct json_object *rf_input_schema(struct json_object *js, char *err, size_t err_len)
{
    struct json_object *schema = pj_get(js, "schema"), *strict = pj_get(js, "strict");
    if (strict && !pj_is(strict, json_type_boolean)) {
        snprintf(err, err_len, "response_format.json_schema.strict must be a boolean");
        return NULL;
    }
    if (!schema) {
        snprintf(err, err_len,
                 "response_format.json_schema.schema is required at Anthropic deployments: send "
                 "the JSON Schema of the answer, {\"type\":\"object\",\"properties\":{...}}");
        return NULL;
    }
    if (!pj_is(schema, json_type_object)) {
        snprintf(err, err_len,
                 "response_format.json_schema.schema must be a JSON Schema object, "
                 "{\"type\":\"object\",\"properties\":{...}}");
        return NULL;
    }
    struct json_object *type = pj_get(schema, "type");
    if (type &&
        !(pj_is(type, json_type_string) && strcmp(json_object_get_string(type), "object") == 0)) {
        snprintf(err, err_len,
                 "response_format.json_schema.schema.type must be \"object\" at Anthropic "
                 "deployments (the answer is a tool's input, an object): put the value in a "
                 "property of an object");
        return NULL;
    }
    struct json_object *out = json_object_new_object();
    if (!type)
        json_object_object_add(out, "type", json_object_new_string("object"));
    json_object_object_foreach(schema, k, v)
    {
        pj_add_ref(out, k, v);
    }
    return out;
}

/* The input_schema response_format asks for: *schema NULL for "text" (or none), else a new
 * object. SG_EINVAL with a message naming the field and what to send. */
static int rf_schema(struct json_object *rf, struct json_object **schema, const char **desc,
                     char *err, size_t err_len)
{
    *schema = NULL;
    *desc = NULL;
    if (!rf)
        return SG_OK; /* absent or null */
    const char *type = pj_str(rf, "type");
    if (!pj_is(rf, json_type_object) || !type) {
        snprintf(err, err_len, "response_format must be an object with a type: " RF_SHAPES);
        return SG_EINVAL;
    }
    if (strcmp(type, "text") == 0)
        return SG_OK;
    if (strcmp(type, "json_object") == 0) {
        /* Any object: Anthropic refuses an input_schema whose properties are missing. */
        *schema = json_object_new_object();
        json_object_object_add(*schema, "type", json_object_new_string("object"));
        json_object_object_add(*schema, "properties", json_object_new_object());
        json_object_object_add(*schema, "additionalProperties", json_object_new_boolean(1));
        return SG_OK;
    }
    if (strcmp(type, "json_schema") != 0) {
        snprintf(err, err_len,
                 "response_format.type '%.40s' is not supported: send 'json_schema', "
                 "'json_object' or 'text'",
                 type);
        return SG_EINVAL;
    }
    struct json_object *js = pj_get(rf, "json_schema");
    if (!pj_is(js, json_type_object)) {
        snprintf(err, err_len,
                 "response_format.json_schema must be an object: "
                 "{\"name\":...,\"schema\":{\"type\":\"object\",...}}");
        return SG_EINVAL;
    }
    *desc = pj_str(js, "description");
    *schema = rf_input_schema(js, err, err_len);
    return *schema ? SG_OK : SG_EINVAL;
}

static struct json_object *rf_tool(struct json_object *schema_take, const char *desc)
{
    struct sg_buf d;
    sg_buf_init(&d, 0);
    /* Said from the model's side, as Anthropic advises for tools used for JSON output. */
    sg_buf_appends(&d, "Give your answer by calling this tool: its input is your whole answer, "
                       "a JSON object that follows the schema.");
    if (desc)
        sg_buf_appendf(&d, " The answer: %s", desc);
    struct json_object *t = json_object_new_object();
    json_object_object_add(t, "name", json_object_new_string(SG_ANTHROPIC_JSON_TOOL));
    json_object_object_add(t, "description", json_object_new_string(d.data));
    json_object_object_add(t, "input_schema", schema_take);
    sg_buf_dispose(&d);
    return t;
}

/* Add the response_format tool to an encoded request `req` and make the model answer with it.
 * Without tools of its own (or with tool_choice "none") the tool is forced, one call. With
 * tools the model may call, the choice is "any": it calls the client's tools or answers through
 * ours. A client that forces a tool call ("required", a function) gets that call, which has
 * no text to format, so nothing is added. With `thinking` on, the tool is offered and the
 * choice left as it is: Anthropic refuses forced tool use while thinking (LiteLLM does so). */
static int apply_response_format(struct json_object *rf, struct json_object *req, bool thinking,
                                 char *err, size_t err_len)
{
    struct json_object *schema;
    const char *desc;
    int rc = rf_schema(rf, &schema, &desc, err, err_len);
    if (rc != SG_OK || !schema)
        return rc;
    if (thinking) {
        struct json_object *t = pj_get(req, "tools");
        if (!t) {
            t = json_object_new_array();
            json_object_object_add(req, "tools", t);
        }
        json_object_array_add(t, rf_tool(schema, desc));
        return SG_OK;
    }
    struct json_object *choice = pj_get(req, "tool_choice");
    const char *type = pj_str(choice, "type");
    if (type && (strcmp(type, "any") == 0 || strcmp(type, "tool") == 0)) {
        json_object_put(schema);
        return SG_OK;
    }
    struct json_object *tools = pj_get(req, "tools");
    bool callable = tools && !(type && strcmp(type, "none") == 0);
    struct json_object *parallel = pj_get(choice, "disable_parallel_tool_use");
    if (!tools) {
        tools = json_object_new_array();
        json_object_object_add(req, "tools", tools);
    }
    json_object_array_add(tools, rf_tool(schema, desc));
    struct json_object *c = json_object_new_object();
    json_object_object_add(c, "type", json_object_new_string(callable ? "any" : "tool"));
    if (callable) {
        if (parallel)
            pj_add_ref(c, "disable_parallel_tool_use", parallel);
    } else {
        /* One answer: two calls would be two JSON texts in one content. */
        json_object_object_add(c, "name", json_object_new_string(SG_ANTHROPIC_JSON_TOOL));
        json_object_object_add(c, "disable_parallel_tool_use", json_object_new_boolean(1));
    }
    json_object_object_add(req, "tool_choice", c); /* replaces (and frees) the client's */
    return SG_OK;
}

/* Mark the last block of `arr` cacheable unless it already is; returns 1 when it added one. */
static int mark_last(struct json_object *arr)
{
    size_t n = pj_is(arr, json_type_array) ? json_object_array_length(arr) : 0;
    if (!n)
        return 0;
    struct json_object *b = json_object_array_get_idx(arr, n - 1);
    if (pj_get(b, "cache_control"))
        return 0;
    struct json_object *cc = json_object_new_object();
    json_object_object_add(cc, "type", json_object_new_string("ephemeral"));
    json_object_object_add(b, "cache_control", cc);
    return 1;
}

int pj_count_cache_control(struct json_object *o, int depth)
{
    if (depth > 16 || !o)
        return 0;
    int n = 0;
    if (json_object_is_type(o, json_type_array)) {
        size_t len = json_object_array_length(o);
        for (size_t i = 0; i < len; i++)
            n += pj_count_cache_control(json_object_array_get_idx(o, i), depth + 1);
    } else if (json_object_is_type(o, json_type_object)) {
        json_object_object_foreach(o, k, v)
        {
            if (strcmp(k, "cache_control") == 0 && v)
                n++;
            else
                n += pj_count_cache_control(v, depth + 1);
        }
    }
    return n;
}

/* Prompt caching: the stable prefix is tools, then system (Anthropic caches in that order), so
 * the last tool and the last system block are the breakpoints. Client markers count against
 * Anthropic's limit first; we add ours only while there is room. */
static void add_cache_markers(struct json_object *req)
{
    int used = pj_count_cache_control(pj_get(req, "tools"), 0) +
               pj_count_cache_control(pj_get(req, "system"), 0) +
               pj_count_cache_control(pj_get(req, "messages"), 0);
    if (used < SG_ANTHROPIC_MAX_BREAKPOINTS)
        used += mark_last(pj_get(req, "tools"));
    if (used < SG_ANTHROPIC_MAX_BREAKPOINTS)
        mark_last(pj_get(req, "system"));
}

/* Add a stop sequence unless it is only whitespace (or empty), which Anthropic refuses and
 * LiteLLM drops ("\n" is a common OpenAI stop). */
static void add_stop(struct json_object *seq, struct json_object *s)
{
    const char *p = json_object_get_string(s);
    for (; *p; p++)
        if (!strchr(" \t\r\n\f\v", *p)) {
            json_object_array_add(seq, json_object_get(s));
            return;
        }
}

/* Does a modalities list ask for audio? */
static bool wants_audio(struct json_object *modalities)
{
    size_t n = pj_is(modalities, json_type_array) ? json_object_array_length(modalities) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_array_get_idx(modalities, i);
        if (pj_is(m, json_type_string) && strcmp(json_object_get_string(m), "audio") == 0)
            return true;
    }
    return false;
}

/* ---- reasoning: reasoning_effort and LiteLLM's `thinking` -> Anthropic's thinking ---- */

/* Anthropic's smallest thinking budget, and what LiteLLM adds to a budget for the answer when
 * the request gives no max_tokens (its DEFAULT_MAX_TOKENS). */
#define THINKING_MIN_BUDGET 1024
#define THINKING_ANSWER_TOKENS 4096

/* The request's reasoning, as Anthropic's thinking: `thinking` NULL when off. `budget` is 0 for
 * adaptive thinking (the model decides). */
struct reasoning {
    struct json_object *thinking; /* owned; the object sent as `thinking` */
    int64_t budget;
    bool from_effort; /* the budget is LiteLLM's for a reasoning_effort, so it may shrink */
};

/* LiteLLM's budgets for OpenAI's reasoning_effort values ("minimal" gets Anthropic's minimum);
 * -1 for a value OpenAI does not accept. "none" is 0: no thinking. */
static int64_t effort_budget(const char *effort)
{
    static const struct {
        const char *name;
        int64_t budget;
    } table[] = {{"none", 0},      {"minimal", 1024}, {"low", 1024},
                 {"medium", 2048}, {"high", 4096},    {"xhigh", 8192}};
    for (size_t i = 0; i < SG_ARRAY_LEN(table); i++)
        if (strcmp(effort, table[i].name) == 0)
            return table[i].budget;
    return -1;
}

/* Read `thinking` (LiteLLM's parameter, Anthropic's shape; it wins over reasoning_effort, as it
 * says exactly what to send) or `reasoning_effort`. SG_EINVAL with a message naming the field. */
static int reasoning_parse(struct json_object *root, struct reasoning *r, char *err, size_t err_len)
{
    memset(r, 0, sizeof *r);
    struct json_object *th = pj_get(root, "thinking"), *effort = pj_get(root, "reasoning_effort");
    if (th) {
        const char *type = pj_str(th, "type");
        struct json_object *b = pj_get(th, "budget_tokens");
        if (!type || (strcmp(type, "enabled") != 0 && strcmp(type, "disabled") != 0 &&
                      strcmp(type, "adaptive") != 0)) {
            snprintf(err, err_len,
                     "thinking must be {\"type\":\"enabled\",\"budget_tokens\":N}, "
                     "{\"type\":\"adaptive\"} or {\"type\":\"disabled\"}");
            return SG_EINVAL;
        }
        if (strcmp(type, "disabled") == 0)
            return SG_OK;
        if (strcmp(type, "enabled") == 0 &&
            (!pj_is(b, json_type_int) || json_object_get_int64(b) < THINKING_MIN_BUDGET)) {
            snprintf(err, err_len,
                     "thinking.budget_tokens must be an integer >= %d (Anthropic's smallest "
                     "thinking budget)",
                     THINKING_MIN_BUDGET);
            return SG_EINVAL;
        }
        r->budget = b ? json_object_get_int64(b) : 0;
        r->thinking = json_object_get(th);
        return SG_OK;
    }
    if (!effort)
        return SG_OK;
    int64_t budget =
        pj_is(effort, json_type_string) ? effort_budget(json_object_get_string(effort)) : -1;
    if (budget < 0) {
        snprintf(err, err_len,
                 "reasoning_effort must be one of 'none', 'minimal', 'low', 'medium', 'high', "
                 "'xhigh'");
        return SG_EINVAL;
    }
    if (budget == 0)
        return SG_OK;
    r->budget = budget;
    r->from_effort = true;
    r->thinking = json_object_new_object();
    json_object_object_add(r->thinking, "type", json_object_new_string("enabled"));
    json_object_object_add(r->thinking, "budget_tokens", json_object_new_int64(budget));
    return SG_OK;
}

/* Fit the thinking into the encoded request `req` (max_tokens set; `client_max`: the client
 * gave it) and add it. Anthropic counts thinking in max_tokens and wants it above the budget:
 * without a client max_tokens the default is raised to budget + 4096 when it is not above (as
 * LiteLLM sets it); a reasoning_effort budget shrinks to fit the client's (OpenAI's
 * max_completion_tokens counts reasoning too), an explicit `thinking` budget that does not fit
 * is the client's error. Thinking refuses a temperature other than 1, a top_p below 0.95 and
 * forced tool use: the first two only tune the answer and are not sent (as any parameter
 * Anthropic cannot take), the last would turn a call the client waits for into text: a 400. */
static int reasoning_apply(struct reasoning *r, struct json_object *req, bool client_max, char *err,
                           size_t err_len)
{
    if (!r->thinking)
        return SG_OK;
    int64_t max = json_object_get_int64(pj_get(req, "max_tokens"));
    if (r->budget > 0 && max <= r->budget) {
        if (!client_max) {
            max = r->budget + THINKING_ANSWER_TOKENS;
            json_object_object_add(req, "max_tokens", json_object_new_int64(max));
        } else if (!r->from_effort) {
            snprintf(err, err_len,
                     "max_tokens (%lld) must be greater than thinking.budget_tokens (%lld): "
                     "Anthropic counts the thinking in max_tokens; raise max_tokens or lower "
                     "the budget",
                     (long long)max, (long long)r->budget);
            return SG_EINVAL;
        } else if (max <= THINKING_MIN_BUDGET) {
            snprintf(err, err_len,
                     "reasoning_effort needs max_completion_tokens (or max_tokens) above %d at "
                     "Anthropic deployments: the smallest thinking budget is %d tokens and is "
                     "counted in it; raise it or leave reasoning_effort out",
                     THINKING_MIN_BUDGET, THINKING_MIN_BUDGET);
            return SG_EINVAL;
        } else {
            r->budget = max - 1;
            json_object_object_add(r->thinking, "budget_tokens", json_object_new_int64(r->budget));
        }
    }
    const char *tc = pj_str(pj_get(req, "tool_choice"), "type");
    if (tc && (strcmp(tc, "any") == 0 || strcmp(tc, "tool") == 0)) {
        snprintf(err, err_len,
                 "tool_choice 'required' or a named function cannot be combined with reasoning "
                 "(reasoning_effort or thinking) at Anthropic deployments: Anthropic refuses "
                 "forced tool use while thinking; send tool_choice 'auto' or leave reasoning "
                 "out");
        return SG_EINVAL;
    }
    struct json_object *v = pj_get(req, "temperature");
    if (v && json_object_get_double(v) != 1.0)
        json_object_object_del(req, "temperature");
    if ((v = pj_get(req, "top_p")) && json_object_get_double(v) < 0.95)
        json_object_object_del(req, "top_p");
    json_object_object_add(req, "thinking", r->thinking);
    r->thinking = NULL;
    return SG_OK;
}

static int64_t default_max_tokens(const struct sg_deployment *d, const struct sg_anthropic_opts *o)
{
    if (o && o->default_max_tokens > 0)
        return o->default_max_tokens;
    const struct sg_price_entry *e = sg_pricing_lookup("anthropic", d->provider_model);
    return e && e->max_output > 0 ? e->max_output : SG_ANTHROPIC_DEFAULT_MAX_TOKENS;
}

int sg_anthropic_encode_chat(const struct sg_chat_request *r, const struct sg_deployment *d,
                             const struct sg_anthropic_opts *o, struct sg_buf *out, char *err,
                             size_t err_len)
{
    struct json_object *root = pj_parse_object(r->body, r->body_len, err, err_len);
    if (!root)
        return SG_EINVAL;
    struct json_object *req = json_object_new_object(), *msgs = json_object_new_array(),
                       *system = json_object_new_array();
    int rc = SG_EINVAL;
    struct reasoning reasoning = {0};
    json_object_object_add(req, "model", json_object_new_string(d->provider_model));
    if (reasoning_parse(root, &reasoning, err, err_len) != SG_OK)
        goto fail;

    struct json_object *in = pj_get(root, "messages");
    if (!pj_is(in, json_type_array))
        ERR("'messages' is a required property and must be an array");
    size_t n = json_object_array_length(in);
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_array_get_idx(in, i);
        const char *role = pj_str(m, "role");
        if (!role)
            ERR("messages[%zu].role is required", i);
        struct json_object *blocks = json_object_new_array();
        int erc = SG_OK;
        const char *as = NULL;
        if (strcmp(role, "system") == 0 || strcmp(role, "developer") == 0) {
            if (!content_as_text_blocks(pj_get(m, "content"), system)) {
                json_object_put(blocks);
                ERR("messages[%zu].content: a system message must be text", i);
            }
            json_object_put(blocks);
            continue;
        } else if (strcmp(role, "user") == 0) {
            erc = user_blocks(pj_get(m, "content"), blocks, i, err, err_len);
            as = "user";
        } else if (strcmp(role, "assistant") == 0) {
            erc = assistant_blocks(m, blocks, i, err, err_len);
            as = "assistant";
        } else if (strcmp(role, "tool") == 0) {
            erc = tool_result_block(m, blocks, i, err, err_len);
            as = "user";
        } else {
            json_object_put(blocks);
            ERR("messages[%zu].role '%s' is not supported by Anthropic deployments (system, "
                "developer, user, assistant, tool are)",
                i, role);
        }
        if (erc != SG_OK) {
            json_object_put(blocks);
            goto fail;
        }
        if (json_object_array_length(blocks) == 0) {
            json_object_put(blocks); /* e.g. an assistant turn with empty content */
            continue;
        }
        push_turn(msgs, as, blocks);
    }
    if (json_object_array_length(msgs) == 0)
        ERR("'messages' must hold at least one user or assistant message for Anthropic");
    if (json_object_array_length(system) > 0) {
        json_object_object_add(req, "system", system);
        system = NULL;
    }
    json_object_object_add(req, "messages", msgs);
    msgs = NULL;

    struct json_object *v = pj_get(root, "max_completion_tokens");
    if (!v)
        v = pj_get(root, "max_tokens");
    if (v && (!pj_is(v, json_type_int) || json_object_get_int64(v) < 1))
        ERR("max_tokens must be an integer >= 1");
    json_object_object_add(
        req, "max_tokens",
        json_object_new_int64(v ? json_object_get_int64(v) : default_max_tokens(d, o)));
    if ((v = pj_get(root, "n")) && (!pj_is(v, json_type_int) || json_object_get_int64(v) != 1))
        ERR("n other than 1 is not supported by Anthropic deployments");
    /* Dropped, these would turn a call the client's code waits for into a text answer. */
    if (pj_get(root, "functions") || pj_get(root, "function_call"))
        ERR("'functions' and 'function_call' (deprecated by OpenAI) are not supported by "
            "Anthropic deployments; send 'tools' and 'tool_choice'");
    if (pj_get(root, "audio") || wants_audio(pj_get(root, "modalities")))
        ERR("audio output ('modalities' with \"audio\", 'audio') is not supported by Anthropic "
            "deployments");
    if ((v = pj_get(root, "temperature"))) {
        if (!pj_is(v, json_type_double) && !pj_is(v, json_type_int))
            ERR("temperature must be a number");
        double t = json_object_get_double(v);
        /* OpenAI's range is 0..2, Anthropic's 0..1: clamp rather than fail a request that an
         * OpenAI deployment of the same alias would have taken. */
        if (t > 1.0)
            json_object_object_add(req, "temperature", json_object_new_double(1.0));
        else
            pj_add_ref(req, "temperature", v);
    }
    if ((v = pj_get(root, "top_p")))
        pj_add_ref(req, "top_p", v);
    if ((v = pj_get(root, "stop"))) {
        struct json_object *seq = json_object_new_array();
        if (pj_is(v, json_type_string)) {
            add_stop(seq, v);
        } else if (pj_is(v, json_type_array)) {
            size_t sn = json_object_array_length(v);
            for (size_t i = 0; i < sn; i++) {
                struct json_object *s = json_object_array_get_idx(v, i);
                if (!pj_is(s, json_type_string)) {
                    json_object_put(seq);
                    ERR("stop must be a string or an array of strings");
                }
                add_stop(seq, s);
            }
        } else {
            json_object_put(seq);
            ERR("stop must be a string or an array of strings");
        }
        if (json_object_array_length(seq))
            json_object_object_add(req, "stop_sequences", seq);
        else
            json_object_put(seq);
    }
    if ((v = pj_get(root, "stream")) && pj_is(v, json_type_boolean) && json_object_get_boolean(v))
        json_object_object_add(req, "stream", json_object_new_boolean(1));
    if ((v = pj_get(root, "user")) && pj_is(v, json_type_string)) {
        struct json_object *meta = json_object_new_object();
        pj_add_ref(meta, "user_id", v);
        json_object_object_add(req, "metadata", meta);
    }
    if ((v = pj_get(root, "tools"))) {
        struct json_object *tools = json_object_new_array();
        if (convert_tools(v, tools, err, err_len) != SG_OK) {
            json_object_put(tools);
            goto fail;
        }
        if (json_object_array_length(tools))
            json_object_object_add(req, "tools", tools);
        else
            json_object_put(tools);
    }
    if (convert_tool_choice(pj_get(root, "tool_choice"), pj_get(root, "parallel_tool_calls"), req,
                            err, err_len) != SG_OK)
        goto fail;
    bool thinking = reasoning.thinking != NULL;
    if (reasoning_apply(&reasoning, req,
                        pj_get(root, "max_completion_tokens") || pj_get(root, "max_tokens"), err,
                        err_len) != SG_OK)
        goto fail;
    if (apply_response_format(pj_get(root, "response_format"), req, thinking, err, err_len) !=
        SG_OK)
        goto fail;
    if (o && o->prompt_caching)
        add_cache_markers(req);
    rc = pj_append(out, req) == SG_OK ? SG_OK : SG_ETOOBIG;
fail:
    json_object_put(reasoning.thinking);
    json_object_put(system);
    json_object_put(msgs);
    json_object_put(req);
    json_object_put(root);
    return rc;
}
