/*
 * Anthropic-format clients (POST /v1/messages) served by any deployment.
 *
 * To an Anthropic deployment the client's bytes go as they are, with the model spliced in (and
 * cache_control markers when the feature asks for prompt caching). To an OpenAI-compatible
 * deployment the request becomes a chat.completions request, and the answer — whole or
 * streamed — becomes a Messages answer again:
 *
 *   system (string or text blocks)  -> a leading system message
 *   text / image blocks             -> content parts (base64 sources -> data: URLs)
 *   document blocks                 -> file parts (base64 PDF), text parts (text, content
 *                                      sources); url and file sources refused
 *   images / documents in tool_result -> parts of the user message after the tool messages
 *   tool_use blocks                 -> assistant tool_calls (input serialised as arguments)
 *   tool_result blocks              -> tool messages, before the rest of that user turn
 *   stop_sequences -> stop, max_tokens, temperature, top_p, metadata.user_id -> user,
 *   tools (input_schema -> parameters), tool_choice (any -> required, tool -> function),
 *   thinking -> reasoning_effort (LiteLLM's budget thresholds)
 *   and back: reasoning_content / reasoning (or LiteLLM's thinking_blocks) -> thinking blocks
 */
#include "provider_int.h"

#include <stdio.h>
#include <stdlib.h>

#define ERR(...)                                                                                   \
    do {                                                                                           \
        snprintf(err, err_len, __VA_ARGS__);                                                       \
        goto fail;                                                                                 \
    } while (0)

/* A Messages body; `count`: one for count_tokens, which needs no max_tokens. */
static int messages_parse(const char *body, size_t len, bool count, struct sg_chat_request *out,
                          char *err, size_t err_len)
{
    /* The scanner finds the model values for the splice; json-c (strict) checks the rest. */
    struct sg_json_member m[SG_CHAT_MAX_MEMBERS];
    size_t n;
    const struct sg_json_member *scanned_model;
    if (sg_request_scan(body, len, SG_API_MESSAGES, out, m, &n, &scanned_model, err, err_len) !=
        SG_OK)
        return SG_EINVAL;
    struct json_object *root = pj_parse_object(body, len, err, err_len);
    if (!root)
        return SG_EINVAL;
    int rc = SG_EINVAL;
    const char *model = pj_str(root, "model");
    struct json_object *msgs = pj_get(root, "messages"), *v;
    if ((v = pj_get(root, "model")) && !pj_is(v, json_type_string) && !pj_is(v, json_type_null))
        ERR("model: Input should be a valid string"); /* Anthropic's wording */
    if (!model || !*model)
        ERR("model: Field required (a non-empty string)");
    if (strlen(model) >= sizeof out->model)
        ERR("model: the name is too long");
    snprintf(out->model, sizeof out->model, "%s", model);
    out->model_len = strlen(out->model);
    if (!pj_is(msgs, json_type_array) || json_object_array_length(msgs) == 0)
        ERR("messages: Field required (a non-empty array)");
    v = pj_get(root, "max_tokens");
    if (!count && (!pj_is(v, json_type_int) || json_object_get_int64(v) < 1))
        ERR("max_tokens: Field required (an integer >= 1)");
    if ((v = pj_get(root, "stream")) && !pj_is(v, json_type_boolean))
        ERR("stream: Input should be a valid boolean");
    out->stream = v && json_object_get_boolean(v);
    out->include_usage = true; /* Messages streams always carry usage */
    struct json_object *meta = pj_get(root, "metadata");
    const char *id;
    if ((id = pj_str(meta, "user_id")))
        sg_id_copy(out->user, sizeof out->user, id, strlen(id));
    if ((id = pj_str(meta, "feature")))
        sg_id_copy(out->feature, sizeof out->feature, id, strlen(id));
    out->metadata_extra = pj_is(meta, json_type_object) &&
                          json_object_object_length(meta) > (pj_get(meta, "user_id") ? 1 : 0);
    rc = SG_OK;
fail:
    json_object_put(root);
    return rc;
}

int sg_messages_request_parse(const char *body, size_t len, struct sg_chat_request *out, char *err,
                              size_t err_len)
{
    return messages_parse(body, len, false, out, err, err_len);
}

int sg_messages_count_parse(const char *body, size_t len, struct sg_chat_request *out, char *err,
                            size_t err_len)
{
    return messages_parse(body, len, true, out, err, err_len);
}

/* The splice of openai.c, for the model only (Messages bodies have no stream_options). */
static int splice_model(const struct sg_chat_request *r, const struct sg_deployment *d,
                        struct sg_buf *out)
{
    const char *p = r->body;
    int rc = sg_buf_reserve(out, r->body_len + strlen(d->provider_model) + 16);
    for (size_t i = 0; rc == SG_OK && i < r->n_model_values; i++) {
        struct sg_slice v = r->model_values[i];
        rc = sg_buf_append(out, p, (size_t)(v.p - p));
        if (rc == SG_OK)
            rc = sg_buf_append(out, "\"", 1);
        if (rc == SG_OK)
            rc = sg_buf_append_json_str(out, d->provider_model, strlen(d->provider_model));
        if (rc == SG_OK)
            rc = sg_buf_append(out, "\"", 1);
        p = v.p + v.n;
    }
    if (rc == SG_OK)
        rc = sg_buf_append(out, p, (size_t)(r->body + r->body_len - p));
    return rc;
}

static struct json_object *ephemeral(void)
{
    struct json_object *cc = json_object_new_object();
    json_object_object_add(cc, "type", json_object_new_string("ephemeral"));
    return cc;
}

int sg_messages_encode_anthropic(const struct sg_chat_request *r, const struct sg_deployment *d,
                                 const struct sg_anthropic_opts *o, struct sg_buf *out, char *err,
                                 size_t err_len)
{
    bool caching = o && o->prompt_caching;
    if (!caching && !r->metadata_extra)
        return splice_model(r, d, out);
    struct json_object *root = pj_parse_object(r->body, r->body_len, err, err_len);
    if (!root)
        return SG_EINVAL;
    json_object_object_add(root, "model", json_object_new_string(d->provider_model));
    if (r->metadata_extra) {
        /* Anthropic takes user_id alone in metadata ("Extra inputs are not permitted"); the
         * rest (metadata.feature) was for the gateway. As LiteLLM strips it. */
        struct json_object *meta = pj_get(root, "metadata"), *uid = pj_get(meta, "user_id");
        if (uid) {
            struct json_object *m = json_object_new_object();
            pj_add_ref(m, "user_id", uid);
            json_object_object_add(root, "metadata", m);
        } else {
            json_object_object_del(root, "metadata");
        }
    }
    if (!caching) {
        int rc = pj_append(out, root) == SG_OK ? SG_OK : SG_ETOOBIG;
        json_object_put(root);
        return rc;
    }
    struct json_object *tools = pj_get(root, "tools"), *sys = pj_get(root, "system");
    int used = pj_count_cache_control(tools, 0) + pj_count_cache_control(sys, 0) +
               pj_count_cache_control(pj_get(root, "messages"), 0);
    size_t nt = pj_is(tools, json_type_array) ? json_object_array_length(tools) : 0;
    if (nt && used < SG_ANTHROPIC_MAX_BREAKPOINTS) {
        struct json_object *t = json_object_array_get_idx(tools, nt - 1);
        if (pj_is(t, json_type_object) && !pj_get(t, "cache_control")) {
            json_object_object_add(t, "cache_control", ephemeral());
            used++;
        }
    }
    if (used < SG_ANTHROPIC_MAX_BREAKPOINTS && pj_is(sys, json_type_string) &&
        json_object_get_string_len(sys) > 0) {
        /* A string system prompt cannot carry a marker: make it one text block. */
        struct json_object *arr = json_object_new_array(), *b = json_object_new_object();
        json_object_object_add(b, "type", json_object_new_string("text"));
        pj_add_ref(b, "text", sys);
        json_object_object_add(b, "cache_control", ephemeral());
        json_object_array_add(arr, b);
        json_object_object_add(root, "system", arr);
    } else if (used < SG_ANTHROPIC_MAX_BREAKPOINTS && pj_is(sys, json_type_array) &&
               json_object_array_length(sys) > 0) {
        struct json_object *b = json_object_array_get_idx(sys, json_object_array_length(sys) - 1);
        if (pj_is(b, json_type_object) && !pj_get(b, "cache_control"))
            json_object_object_add(b, "cache_control", ephemeral());
    }
    int rc = pj_append(out, root) == SG_OK ? SG_OK : SG_ETOOBIG;
    json_object_put(root);
    return rc;
}

/* ---- Messages request -> chat.completions request ---- */

static struct json_object *text_part(struct json_object *text)
{
    struct json_object *p = json_object_new_object();
    json_object_object_add(p, "type", json_object_new_string("text"));
    pj_add_ref(p, "text", text);
    return p;
}

static struct json_object *image_part(struct json_object *block, char *err, size_t err_len)
{
    struct json_object *src = pj_get(block, "source");
    const char *st = pj_str(src, "type");
    struct json_object *iu = json_object_new_object();
    if (st && strcmp(st, "base64") == 0 && pj_str(src, "media_type") && pj_str(src, "data")) {
        char *url =
            sg_xasprintf("data:%s;base64,%s", pj_str(src, "media_type"), pj_str(src, "data"));
        json_object_object_add(iu, "url", json_object_new_string(url));
        free(url);
    } else if (st && strcmp(st, "url") == 0 && pj_str(src, "url")) {
        pj_add_ref(iu, "url", pj_get(src, "url"));
    } else {
        json_object_put(iu);
        snprintf(err, err_len, "an image block needs a base64 or url source");
        return NULL;
    }
    struct json_object *p = json_object_new_object();
    json_object_object_add(p, "type", json_object_new_string("image_url"));
    json_object_object_add(p, "image_url", iu);
    return p;
}

static struct json_object *text_part_str(const char *t)
{
    struct json_object *s = json_object_new_string(t);
    struct json_object *p = text_part(s);
    json_object_put(s);
    return p;
}

static bool ends_with_pdf(const char *s)
{
    size_t n = strlen(s);
    return n >= 4 && strcasecmp(s + n - 4, ".pdf") == 0;
}

/* A document block as chat.completions content parts appended to `parts`: a base64 PDF is a
 * file part (file_data a data URL; the title, else "document.pdf", its filename, which OpenAI
 * requires), a plain-text source a text part (the title a text part before it), a content
 * source its text and image blocks as parts; `context` a text part after the document. OpenAI
 * takes no document by URL and cannot read Anthropic's Files API: refused. `citations` and
 * `cache_control` have no chat.completions form: dropped. */
static int document_parts(struct json_object *b, struct json_object *parts, char *err,
                          size_t err_len)
{
    struct json_object *src = pj_get(b, "source");
    const char *st = pj_str(src, "type"), *title = pj_str(b, "title");
    if (st && strcmp(st, "base64") == 0 && pj_str(src, "data")) {
        const char *mt = pj_str(src, "media_type");
        if (!mt || strcmp(mt, "application/pdf") != 0) {
            snprintf(err, err_len, "a base64 document must be application/pdf");
            return SG_EINVAL;
        }
        char *url = sg_xasprintf("data:application/pdf;base64,%s", pj_str(src, "data"));
        char *name = title && *title ? sg_xasprintf(ends_with_pdf(title) ? "%s" : "%s.pdf", title)
                                     : sg_xasprintf("document.pdf");
        struct json_object *f = json_object_new_object(), *p = json_object_new_object();
        json_object_object_add(f, "filename", json_object_new_string(name));
        json_object_object_add(f, "file_data", json_object_new_string(url));
        json_object_object_add(p, "type", json_object_new_string("file"));
        json_object_object_add(p, "file", f);
        json_object_array_add(parts, p);
        free(url);
        free(name);
    } else if (st && strcmp(st, "text") == 0 && pj_is(pj_get(src, "data"), json_type_string)) {
        if (title && *title)
            json_object_array_add(parts, text_part_str(title));
        json_object_array_add(parts, text_part(pj_get(src, "data")));
    } else if (st && strcmp(st, "content") == 0 &&
               pj_is(pj_get(src, "content"), json_type_string)) {
        json_object_array_add(parts, text_part(pj_get(src, "content")));
    } else if (st && strcmp(st, "content") == 0 && pj_is(pj_get(src, "content"), json_type_array)) {
        struct json_object *c = pj_get(src, "content");
        for (size_t i = 0, n = json_object_array_length(c); i < n; i++) {
            struct json_object *cb = json_object_array_get_idx(c, i);
            const char *ct = pj_str(cb, "type");
            struct json_object *p = NULL;
            if (ct && strcmp(ct, "text") == 0 && pj_str(cb, "text"))
                p = text_part(pj_get(cb, "text"));
            else if (ct && strcmp(ct, "image") == 0 && !(p = image_part(cb, err, err_len)))
                return SG_EINVAL;
            if (!p) {
                snprintf(err, err_len, "a content document holds text and image blocks only");
                return SG_EINVAL;
            }
            json_object_array_add(parts, p);
        }
    } else if (st && strcmp(st, "url") == 0) {
        snprintf(err, err_len,
                 "a document with a url source cannot be sent to an OpenAI-compatible "
                 "deployment (OpenAI fetches no document URLs); send the PDF as a base64 source");
        return SG_EINVAL;
    } else if (st && strcmp(st, "file") == 0) {
        snprintf(err, err_len,
                 "a document with a file source (Anthropic's Files API) cannot be sent to an "
                 "OpenAI-compatible deployment; send the PDF as a base64 source");
        return SG_EINVAL;
    } else {
        snprintf(err, err_len,
                 "a document block needs a base64 (PDF), text, content, url or file source");
        return SG_EINVAL;
    }
    if (pj_str(b, "context") && *pj_str(b, "context"))
        json_object_array_add(parts, text_part(pj_get(b, "context")));
    return SG_OK;
}

/* The images and documents of a tool_result, appended to `parts`: OpenAI's tool messages take
 * text only, so they go to the user message that follows the tool messages. */
static int tool_result_media(struct json_object *content, struct json_object *parts, char *err,
                             size_t err_len)
{
    size_t n = pj_is(content, json_type_array) ? json_object_array_length(content) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *cb = json_object_array_get_idx(content, i);
        const char *ct = pj_str(cb, "type");
        if (ct && strcmp(ct, "image") == 0) {
            struct json_object *p = image_part(cb, err, err_len);
            if (!p)
                return SG_EINVAL;
            json_object_array_add(parts, p);
        } else if (ct && strcmp(ct, "document") == 0) {
            if (document_parts(cb, parts, err, err_len) != SG_OK)
                return SG_EINVAL;
        }
    }
    return SG_OK;
}

/* Text of a tool_result's content (a string, or text blocks joined). */
static struct json_object *tool_result_text(struct json_object *content)
{
    if (pj_is(content, json_type_string))
        return json_object_get(content);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    size_t n = pj_is(content, json_type_array) ? json_object_array_length(content) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *t = pj_get(json_object_array_get_idx(content, i), "text");
        if (pj_is(t, json_type_string)) {
            if (b.len)
                sg_buf_append(&b, "\n", 1);
            sg_buf_append(&b, json_object_get_string(t), (size_t)json_object_get_string_len(t));
        }
    }
    struct json_object *s = json_object_new_string_len(b.data ? b.data : "", (int)b.len);
    sg_buf_dispose(&b);
    return s;
}

static int convert_turn(struct json_object *m, size_t mi, struct json_object *msgs, char *err,
                        size_t err_len)
{
    const char *role = pj_str(m, "role");
    if (!role || (strcmp(role, "user") != 0 && strcmp(role, "assistant") != 0)) {
        snprintf(err, err_len, "messages.%zu.role: Input should be 'user' or 'assistant'", mi);
        return SG_EINVAL;
    }
    bool assistant = role[0] == 'a';
    struct json_object *content = pj_get(m, "content");
    if (pj_is(content, json_type_string)) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "role", json_object_new_string(role));
        pj_add_ref(o, "content", content);
        json_object_array_add(msgs, o);
        return SG_OK;
    }
    if (!pj_is(content, json_type_array)) {
        snprintf(err, err_len, "messages.%zu.content: a string or an array of blocks", mi);
        return SG_EINVAL;
    }
    struct json_object *parts = json_object_new_array(), *calls = json_object_new_array();
    struct sg_buf text;
    sg_buf_init(&text, 0);
    size_t n = json_object_array_length(content);
    int rc = SG_OK;
    char e2[240] = "";
    size_t i;
    for (i = 0; i < n && rc == SG_OK; i++) {
        struct json_object *b = json_object_array_get_idx(content, i);
        const char *bt = pj_str(b, "type");
        if (!bt) {
            snprintf(err, err_len, "messages.%zu.content.%zu.type: Field required", mi, i);
            rc = SG_EINVAL;
        } else if (strcmp(bt, "text") == 0 && pj_str(b, "text")) {
            if (assistant)
                sg_buf_append(&text, pj_str(b, "text"),
                              (size_t)json_object_get_string_len(pj_get(b, "text")));
            else
                json_object_array_add(parts, text_part(pj_get(b, "text")));
        } else if (strcmp(bt, "image") == 0 && !assistant) {
            struct json_object *p = image_part(b, e2, sizeof e2);
            if (p)
                json_object_array_add(parts, p);
            else
                rc = SG_EINVAL;
        } else if (strcmp(bt, "document") == 0 && !assistant) {
            rc = document_parts(b, parts, e2, sizeof e2);
        } else if (strcmp(bt, "tool_use") == 0 && assistant) {
            struct json_object *c = json_object_new_object(), *fn = json_object_new_object();
            pj_add_ref(c, "id", pj_get(b, "id"));
            json_object_object_add(c, "type", json_object_new_string("function"));
            pj_add_ref(fn, "name", pj_get(b, "name"));
            struct sg_buf args;
            sg_buf_init(&args, 0);
            if (pj_get(b, "input"))
                pj_append(&args, pj_get(b, "input"));
            else
                sg_buf_appends(&args, "{}");
            json_object_object_add(fn, "arguments",
                                   json_object_new_string_len(args.data, (int)args.len));
            sg_buf_dispose(&args);
            json_object_object_add(c, "function", fn);
            json_object_array_add(calls, c);
        } else if (strcmp(bt, "tool_result") == 0 && !assistant) {
            /* Tool results answer the previous assistant turn: they come first, as messages. */
            struct json_object *t = json_object_new_object();
            json_object_object_add(t, "role", json_object_new_string("tool"));
            pj_add_ref(t, "tool_call_id", pj_get(b, "tool_use_id"));
            json_object_object_add(t, "content", tool_result_text(pj_get(b, "content")));
            json_object_array_add(msgs, t);
            rc = tool_result_media(pj_get(b, "content"), parts, e2, sizeof e2);
        } else if (strcmp(bt, "thinking") == 0 || strcmp(bt, "redacted_thinking") == 0) {
            /* earlier turns' reasoning: unsigned providers take none back, dropped */
        } else {
            snprintf(err, err_len,
                     "messages.%zu.content.%zu: block type '%s' cannot be sent to an "
                     "OpenAI-compatible deployment",
                     mi, i, bt);
            rc = SG_EINVAL;
        }
    }
    if (rc != SG_OK && e2[0])
        snprintf(err, err_len, "messages.%zu.content.%zu: %s", mi, i - 1, e2); /* i went on */
    if (rc == SG_OK &&
        (json_object_array_length(parts) || text.len || json_object_array_length(calls))) {
        struct json_object *o = json_object_new_object();
        json_object_object_add(o, "role", json_object_new_string(role));
        if (assistant) {
            if (text.len || !json_object_array_length(calls))
                json_object_object_add(
                    o, "content",
                    json_object_new_string_len(text.data ? text.data : "", (int)text.len));
            else
                json_object_object_add(o, "content", NULL);
            if (json_object_array_length(calls))
                json_object_object_add(o, "tool_calls", json_object_get(calls));
        } else {
            json_object_object_add(o, "content", json_object_get(parts));
        }
        json_object_array_add(msgs, o);
    }
    sg_buf_dispose(&text);
    json_object_put(parts);
    json_object_put(calls);
    return rc;
}

/* Anthropic's thinking as OpenAI's reasoning_effort, by LiteLLM's budget thresholds (the
 * budgets it sends for each effort the other way): 4096 and more high, 2048 medium, 1024 low,
 * less minimal; adaptive medium; disabled (or none) nothing. NULL effort: send none.
 * SG_EINVAL for a thinking that is none of Anthropic's shapes. */
static int thinking_effort(struct json_object *th, const char **effort, char *err, size_t err_len)
{
    *effort = NULL;
    if (!th)
        return SG_OK;
    const char *type = pj_str(th, "type");
    struct json_object *b = pj_get(th, "budget_tokens");
    if (type && strcmp(type, "disabled") == 0)
        return SG_OK;
    if (type && strcmp(type, "adaptive") == 0) {
        *effort = "medium";
        return SG_OK;
    }
    if (!type || strcmp(type, "enabled") != 0 || !pj_is(b, json_type_int)) {
        snprintf(err, err_len,
                 "thinking: must be {\"type\":\"enabled\",\"budget_tokens\":N}, "
                 "{\"type\":\"adaptive\"} or {\"type\":\"disabled\"}");
        return SG_EINVAL;
    }
    int64_t n = json_object_get_int64(b);
    *effort = n >= 4096 ? "high" : n >= 2048 ? "medium" : n >= 1024 ? "low" : "minimal";
    return SG_OK;
}

bool sg_provider_reasons(const struct sg_deployment *d)
{
    if (d->supports_reasoning)
        return d->supports_reasoning > 0;
    const char *m = d->provider_model;
    if (d->base_model) { /* an Azure deployment's own name says nothing */
        const char *slash = strchr(d->base_model, '/');
        m = slash ? slash + 1 : d->base_model;
    }
    if (!m)
        return false;
    if (m[0] == 'o' && (m[1] == '1' || m[1] == '3' || m[1] == '4') && (!m[2] || m[2] == '-'))
        return true;
    return (strncmp(m, "gpt-5", 5) == 0 && strncmp(m, "gpt-5-chat", 10) != 0) ||
           strncmp(m, "gpt-oss", 7) == 0 || strncmp(m, "codex-", 6) == 0;
}

int sg_messages_encode_openai(const struct sg_chat_request *r, const struct sg_deployment *d,
                              struct sg_buf *out, char *err, size_t err_len)
{
    struct json_object *root = pj_parse_object(r->body, r->body_len, err, err_len);
    if (!root)
        return SG_EINVAL;
    struct json_object *req = json_object_new_object(), *msgs = json_object_new_array(), *v;
    int rc = SG_EINVAL;
    json_object_object_add(req, "model", json_object_new_string(d->provider_model));
    struct json_object *sys = pj_get(root, "system");
    if (pj_is(sys, json_type_string) || pj_is(sys, json_type_array)) {
        struct json_object *s = json_object_new_object();
        json_object_object_add(s, "role", json_object_new_string("system"));
        json_object_object_add(s, "content", tool_result_text(sys));
        json_object_array_add(msgs, s);
    }
    struct json_object *in = pj_get(root, "messages");
    size_t n = pj_is(in, json_type_array) ? json_object_array_length(in) : 0;
    for (size_t i = 0; i < n; i++)
        if (convert_turn(json_object_array_get_idx(in, i), i, msgs, err, err_len) != SG_OK)
            goto fail;
    json_object_object_add(req, "messages", msgs);
    msgs = NULL;
    if ((v = pj_get(root, "max_tokens")))
        pj_add_ref(req, "max_tokens", v);
    if ((v = pj_get(root, "temperature")))
        pj_add_ref(req, "temperature", v);
    if ((v = pj_get(root, "top_p")))
        pj_add_ref(req, "top_p", v);
    if ((v = pj_get(root, "stop_sequences")))
        pj_add_ref(req, "stop", v);
    const char *effort;
    if (thinking_effort(pj_get(root, "thinking"), &effort, err, err_len) != SG_OK)
        goto fail;
    if (effort && sg_provider_reasons(d))
        json_object_object_add(req, "reasoning_effort", json_object_new_string(effort));
    if (r->stream) {
        struct json_object *so = json_object_new_object();
        json_object_object_add(req, "stream", json_object_new_boolean(1));
        json_object_object_add(so, "include_usage", json_object_new_boolean(1));
        json_object_object_add(req, "stream_options", so);
    }
    if (pj_str(pj_get(root, "metadata"), "user_id"))
        pj_add_ref(req, "user", pj_get(pj_get(root, "metadata"), "user_id"));
    struct json_object *tools = pj_get(root, "tools");
    size_t nt = pj_is(tools, json_type_array) ? json_object_array_length(tools) : 0;
    if (nt) {
        struct json_object *arr = json_object_new_array();
        json_object_object_add(req, "tools", arr);
        for (size_t i = 0; i < nt; i++) {
            struct json_object *t = json_object_array_get_idx(tools, i);
            const char *type = pj_str(t, "type");
            if (!pj_str(t, "name") || (type && strcmp(type, "custom") != 0))
                ERR("tools.%zu: only client tools (name, description, input_schema) can be sent "
                    "to an OpenAI-compatible deployment",
                    i);
            struct json_object *fn = json_object_new_object(), *w = json_object_new_object();
            pj_add_ref(fn, "name", pj_get(t, "name"));
            if (pj_get(t, "description"))
                pj_add_ref(fn, "description", pj_get(t, "description"));
            if (pj_get(t, "input_schema"))
                pj_add_ref(fn, "parameters", pj_get(t, "input_schema"));
            json_object_object_add(w, "type", json_object_new_string("function"));
            json_object_object_add(w, "function", fn);
            json_object_array_add(arr, w);
        }
    }
    struct json_object *tc = pj_get(root, "tool_choice");
    const char *tct = pj_str(tc, "type");
    if (tct && !nt && (strcmp(tct, "auto") == 0 || strcmp(tct, "none") == 0))
        tct = NULL; /* nothing to choose from: OpenAI refuses a tool_choice without tools */
    if (tct) {
        if (strcmp(tct, "auto") == 0 || strcmp(tct, "none") == 0) {
            json_object_object_add(req, "tool_choice", json_object_new_string(tct));
        } else if (strcmp(tct, "any") == 0) {
            json_object_object_add(req, "tool_choice", json_object_new_string("required"));
        } else if (strcmp(tct, "tool") == 0 && pj_str(tc, "name")) {
            struct json_object *c = json_object_new_object(), *fn = json_object_new_object();
            json_object_object_add(c, "type", json_object_new_string("function"));
            pj_add_ref(fn, "name", pj_get(tc, "name"));
            json_object_object_add(c, "function", fn);
            json_object_object_add(req, "tool_choice", c);
        } else {
            ERR("tool_choice: type must be auto, any, tool (with a name) or none");
        }
        struct json_object *dp = pj_get(tc, "disable_parallel_tool_use");
        if (pj_is(dp, json_type_boolean) && json_object_get_boolean(dp) && nt)
            json_object_object_add(req, "parallel_tool_calls", json_object_new_boolean(0));
    }
    rc = pj_append(out, req) == SG_OK ? SG_OK : SG_ETOOBIG;
fail:
    json_object_put(msgs);
    json_object_put(req);
    json_object_put(root);
    return rc;
}

/* ---- chat.completion -> Messages answer ---- */

static const char *stop_reason(const char *finish)
{
    if (!finish)
        return "end_turn";
    if (strcmp(finish, "length") == 0)
        return "max_tokens";
    if (strcmp(finish, "tool_calls") == 0 || strcmp(finish, "function_call") == 0)
        return "tool_use";
    if (strcmp(finish, "content_filter") == 0)
        return "refusal";
    return "end_turn";
}

static void append_str(struct sg_buf *out, const char *s)
{
    sg_buf_append(out, "\"", 1);
    sg_buf_append_json_str(out, s ? s : "", s ? strlen(s) : 0);
    sg_buf_append(out, "\"", 1);
}

int sg_messages_append_usage(struct sg_buf *out, const struct sg_usage *u)
{
    return sg_buf_appendf(
        out,
        "{\"input_tokens\":%lld,\"output_tokens\":%lld,"
        "\"cache_creation_input_tokens\":%lld,\"cache_read_input_tokens\":%lld}",
        (long long)(u->input_tokens - u->cache_read_tokens - u->cache_creation_tokens),
        (long long)u->output_tokens, (long long)u->cache_creation_tokens,
        (long long)u->cache_read_tokens);
}

/* A tool call's arguments as a JSON object for `input` ({} when they are not an object). */
static void append_input(struct sg_buf *out, const char *args)
{
    char err[8];
    size_t n = args ? strlen(args) : 0;
    struct json_object *o = n ? sg_json_parse_strict(args, n, err, sizeof err) : NULL;
    if (pj_is(o, json_type_object))
        pj_append(out, o);
    else
        sg_buf_appends(out, "{}");
    json_object_put(o);
}

/* The reasoning an OpenAI-compatible provider returns beside the content: reasoning_content
 * (DeepSeek, vLLM, LiteLLM) or reasoning (OpenRouter), a string. */
static struct json_object *reasoning_text(struct json_object *m)
{
    struct json_object *t = pj_get(m, "reasoning_content");
    if (!pj_is(t, json_type_string))
        t = pj_get(m, "reasoning");
    return pj_is(t, json_type_string) && json_object_get_string_len(t) > 0 ? t : NULL;
}

/* A thinking block's fields as Anthropic writes them (the signature "" when the provider has
 * none: OpenAI-compatible reasoning is not signed). */
static void append_thinking_block(struct sg_buf *out, struct json_object *text,
                                  struct json_object *sig)
{
    sg_buf_appends(out, "{\"type\":\"thinking\",\"thinking\":\"");
    pj_append_text(out, text);
    sg_buf_appends(out, "\",\"signature\":\"");
    pj_append_text(out, sig);
    sg_buf_appends(out, "\"}");
}

/* A message's reasoning as the answer's first blocks: its thinking_blocks when it has them (a
 * LiteLLM in front of Claude keeps the signatures and redacted blocks there), else its
 * reasoning text as one thinking block. True when it wrote any. */
static bool append_thinking(struct sg_buf *out, struct json_object *msg)
{
    struct json_object *tb = pj_get(msg, "thinking_blocks");
    size_t n = pj_is(tb, json_type_array) ? json_object_array_length(tb) : 0, k = 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *b = json_object_array_get_idx(tb, i);
        const char *type = pj_str(b, "type");
        if (type && strcmp(type, "thinking") == 0 && pj_str(b, "thinking")) {
            sg_buf_appends(out, k++ ? "," : "");
            append_thinking_block(out, pj_get(b, "thinking"),
                                  pj_str(b, "signature") ? pj_get(b, "signature") : NULL);
        } else if (type && strcmp(type, "redacted_thinking") == 0 && pj_str(b, "data")) {
            sg_buf_appends(out, k++ ? ",{\"type\":\"redacted_thinking\",\"data\":\""
                                    : "{\"type\":\"redacted_thinking\",\"data\":\"");
            struct json_object *data = pj_get(b, "data");
            pj_append_text(out, data);
            sg_buf_appends(out, "\"}");
        }
    }
    struct json_object *t = k ? NULL : reasoning_text(msg);
    if (t)
        append_thinking_block(out, t, NULL);
    return k || t;
}

int sg_messages_decode_openai(const char *body, size_t len, struct sg_buf *out, struct sg_usage *u)
{
    char err[64];
    struct json_object *root = len ? sg_json_parse_strict(body, len, err, sizeof err) : NULL;
    struct json_object *choices = pj_get(root, "choices");
    if (!pj_is(choices, json_type_array) || json_object_array_length(choices) == 0) {
        json_object_put(root);
        return SG_EPROTO;
    }
    struct json_object *c0 = json_object_array_get_idx(choices, 0);
    struct json_object *msg = pj_get(c0, "message");
    memset(u, 0, sizeof *u);
    pj_openai_usage(pj_get(root, "usage"), u);
    char id[160];
    pj_translated_id(id, sizeof id, pj_str(root, "id"), "chatcmpl-", "msg_");
    sg_buf_appends(out, "{\"id\":");
    append_str(out, id);
    sg_buf_appends(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    append_str(out, pj_str(root, "model"));
    sg_buf_appends(out, ",\"content\":[");
    bool first = !append_thinking(out, msg);
    struct json_object *text = pj_get(msg, "content");
    if (pj_is(text, json_type_string) && json_object_get_string_len(text) > 0) {
        sg_buf_appends(out, first ? "{\"type\":\"text\",\"text\":\""
                                  : ",{\"type\":\"text\",\"text\":\"");
        pj_append_text(out, text);
        sg_buf_appends(out, "\"}");
        first = false;
    }
    struct json_object *calls = pj_get(msg, "tool_calls");
    size_t n = pj_is(calls, json_type_array) ? json_object_array_length(calls) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(calls, i), *fn = pj_get(c, "function");
        sg_buf_appends(out, first ? "{\"type\":\"tool_use\",\"id\":"
                                  : ",{\"type\":\"tool_use\","
                                    "\"id\":");
        first = false;
        append_str(out, pj_str(c, "id"));
        sg_buf_appends(out, ",\"name\":");
        append_str(out, pj_str(fn, "name"));
        sg_buf_appends(out, ",\"input\":");
        append_input(out, pj_str(fn, "arguments"));
        sg_buf_appends(out, "}");
    }
    sg_buf_appends(out, "],\"stop_reason\":");
    append_str(out, stop_reason(pj_str(c0, "finish_reason")));
    sg_buf_appends(out, ",\"stop_sequence\":null,\"usage\":");
    sg_messages_append_usage(out, u);
    int rc = sg_buf_appends(out, "}");
    json_object_put(root);
    return rc == SG_OK ? SG_OK : SG_ETOOBIG;
}

/* ---- chunks -> Messages events ---- */

void sg_messages_stream_init(struct sg_messages_stream *s)
{
    memset(s, 0, sizeof *s);
    s->block_index = -1;
    s->tool_index = -1;
}

static void event(struct sg_buf *out, const char *name)
{
    sg_buf_appendf(out, "event: %s\ndata: {\"type\":\"%s\"", name, name);
}

/* Anthropic's streams have a ping after the first content_block_start. */
static void ping_once(struct sg_messages_stream *s, struct sg_buf *out)
{
    if (s->pinged)
        return;
    s->pinged = true;
    sg_buf_appends(out, "event: ping\ndata: {\"type\":\"ping\"}\n\n");
}

static void close_block(struct sg_messages_stream *s, struct sg_buf *out)
{
    if (!s->block_kind)
        return;
    event(out, "content_block_stop");
    sg_buf_appendf(out, ",\"index\":%d}\n\n", s->block_index);
    s->block_kind = 0;
}

static void start_message(struct sg_messages_stream *s, struct sg_buf *out)
{
    s->started = true;
    event(out, "message_start");
    sg_buf_appends(out, ",\"message\":{\"id\":");
    append_str(out, s->id);
    sg_buf_appends(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    append_str(out, s->model);
    /* The provider counts input tokens only in its final usage chunk, so message_delta carries
     * the count; here, as Anthropic counts the prompt before answering, the caller's estimate
     * (what SDKs that read input_tokens only from message_start keep; docs/pricing.md). */
    sg_buf_appendf(out,
                   ",\"content\":[],\"stop_reason\":null,\"stop_sequence\":null,"
                   "\"usage\":{\"input_tokens\":%lld,\"cache_creation_input_tokens\":0,"
                   "\"cache_read_input_tokens\":0,\"output_tokens\":0}}}\n\n",
                   (long long)s->input_estimate);
}

int sg_messages_stream_finish(struct sg_messages_stream *s, struct sg_buf *out)
{
    if (s->done)
        return SG_OK;
    if (!s->started)
        start_message(s, out);
    close_block(s, out);
    if (!s->usage.known) /* the numbers the gateway records (docs/pricing.md) */
        s->usage = (struct sg_usage){.input_tokens = s->input_estimate,
                                     .output_tokens = s->content_chunks,
                                     .estimated = true};
    event(out, "message_delta");
    sg_buf_appends(out, ",\"delta\":{\"stop_reason\":");
    append_str(out, s->stop_reason[0] ? s->stop_reason : "end_turn");
    sg_buf_appends(out, ",\"stop_sequence\":null},\"usage\":");
    sg_messages_append_usage(out, &s->usage);
    sg_buf_appends(out, "}\n\n");
    event(out, "message_stop");
    s->done = true;
    return sg_buf_appends(out, "}\n\n");
}

/* Close the open block and start a reasoning block of `kind` (3 thinking, 4 redacted): its
 * content_block_start up to the block's opening brace and type, which the caller finishes. */
static void start_reasoning_block(struct sg_messages_stream *s, struct sg_buf *out, int kind)
{
    close_block(s, out);
    s->block_kind = kind;
    s->block_index = s->n_blocks++;
    event(out, "content_block_start");
    sg_buf_appendf(out, ",\"index\":%d,\"content_block\":{\"type\":\"%s\"", s->block_index,
                   kind == 3 ? "thinking" : "redacted_thinking");
}

/* Open a thinking block unless one is open. */
static void open_thinking(struct sg_messages_stream *s, struct sg_buf *out)
{
    if (s->block_kind == 3)
        return;
    start_reasoning_block(s, out, 3);
    sg_buf_appends(out, ",\"thinking\":\"\",\"signature\":\"\"}}\n\n");
    ping_once(s, out);
}

/* A delta's reasoning as thinking events: `text` as a thinking_delta, `sig` as a
 * signature_delta (both JSON strings, NULL when none). */
static void thinking_delta(struct sg_messages_stream *s, struct sg_buf *out,
                           struct json_object *text, struct json_object *sig)
{
    bool t = text && json_object_get_string_len(text) > 0;
    bool g = sig && json_object_get_string_len(sig) > 0;
    if (!t && !g)
        return;
    open_thinking(s, out);
    event(out, "content_block_delta");
    sg_buf_appendf(out, ",\"index\":%d,\"delta\":{\"type\":\"%s\",\"%s\":\"", s->block_index,
                   t ? "thinking_delta" : "signature_delta", t ? "thinking" : "signature");
    struct json_object *v = t ? text : sig;
    pj_append_text(out, v);
    sg_buf_appends(out, "\"}}\n\n");
    if (t && g)
        thinking_delta(s, out, NULL, sig);
}

/* A chunk delta's reasoning: its thinking_blocks when it has them (LiteLLM sends the text
 * there too, with signatures and redacted blocks), else reasoning_content / reasoning. True
 * when there was some. */
static bool stream_thinking(struct sg_messages_stream *s, struct sg_buf *out,
                            struct json_object *delta)
{
    struct json_object *tb = pj_get(delta, "thinking_blocks");
    size_t n = pj_is(tb, json_type_array) ? json_object_array_length(tb) : 0;
    bool some = false;
    for (size_t i = 0; i < n; i++) {
        struct json_object *b = json_object_array_get_idx(tb, i), *data = pj_get(b, "data");
        const char *type = pj_str(b, "type");
        if (type && strcmp(type, "redacted_thinking") == 0 && pj_is(data, json_type_string)) {
            start_reasoning_block(s, out, 4);
            sg_buf_appends(out, ",\"data\":\"");
            pj_append_text(out, data);
            sg_buf_appends(out, "\"}}\n\n");
            ping_once(s, out);
            close_block(s, out);
            some = true;
        } else if (type && strcmp(type, "thinking") == 0) {
            struct json_object *t = pj_get(b, "thinking"), *g = pj_get(b, "signature");
            t = pj_is(t, json_type_string) ? t : NULL;
            g = pj_is(g, json_type_string) ? g : NULL;
            thinking_delta(s, out, t, g);
            some = some || (t && json_object_get_string_len(t)) ||
                   (g && json_object_get_string_len(g));
        }
    }
    if (n)
        return some;
    struct json_object *t = reasoning_text(delta);
    thinking_delta(s, out, t, NULL);
    return t != NULL;
}

int sg_messages_stream_chunk(struct sg_messages_stream *s, struct sg_slice data, struct sg_buf *out)
{
    if (s->done)
        return SG_OK;
    if (sg_slice_eq(data, "[DONE]"))
        return sg_messages_stream_finish(s, out);
    char err[64];
    struct json_object *root =
        data.n ? sg_json_parse_strict(data.p, data.n, err, sizeof err) : NULL;
    if (!pj_is(root, json_type_object)) {
        json_object_put(root);
        return SG_EPROTO;
    }
    struct json_object *e = pj_get(root, "error");
    if (e) { /* an error event mid-stream: the caller ends the stream with its message */
        const char *msg =
            pj_is(e, json_type_string) ? json_object_get_string(e) : pj_str(e, "message");
        snprintf(s->error, sizeof s->error, "it sent an error: %s",
                 msg && *msg ? msg : "(no message)");
        json_object_put(root);
        return SG_EPROTO;
    }
    if (!s->started) {
        pj_translated_id(s->id, sizeof s->id, pj_str(root, "id"), "chatcmpl-", "msg_");
        snprintf(s->model, sizeof s->model, "%s",
                 pj_str(root, "model") ? pj_str(root, "model") : "");
        start_message(s, out);
    }
    if (pj_get(root, "usage"))
        pj_openai_usage(pj_get(root, "usage"), &s->usage);
    struct json_object *choices = pj_get(root, "choices");
    struct json_object *c0 = pj_is(choices, json_type_array) && json_object_array_length(choices)
                                 ? json_object_array_get_idx(choices, 0)
                                 : NULL;
    struct json_object *delta = pj_get(c0, "delta");
    struct json_object *content = pj_get(delta, "content");
    struct json_object *calls = pj_get(delta, "tool_calls");
    size_t n = pj_is(calls, json_type_array) ? json_object_array_length(calls) : 0;
    bool thought = stream_thinking(s, out, delta);
    if ((pj_is(content, json_type_string) && json_object_get_string_len(content) > 0) || n ||
        thought)
        s->content_chunks++;
    if (pj_is(content, json_type_string) && json_object_get_string_len(content) > 0) {
        if (s->block_kind != 1) {
            close_block(s, out);
            s->block_kind = 1;
            s->block_index = s->n_blocks++;
            event(out, "content_block_start");
            sg_buf_appendf(out,
                           ",\"index\":%d,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}"
                           "\n\n",
                           s->block_index);
            ping_once(s, out);
        }
        event(out, "content_block_delta");
        sg_buf_appendf(out, ",\"index\":%d,\"delta\":{\"type\":\"text_delta\",\"text\":\"",
                       s->block_index);
        pj_append_text(out, content);
        sg_buf_appends(out, "\"}}\n\n");
    }
    for (size_t i = 0; i < n; i++) {
        struct json_object *c = json_object_array_get_idx(calls, i), *fn = pj_get(c, "function");
        int64_t idx = pj_int(c, "index", (int64_t)i);
        bool mapped = idx >= 0 && idx < SG_MESSAGES_MAX_TOOL_INDEX;
        int block = mapped ? s->tool_block[idx] - 1 : -1;
        if (block < 0 && (s->block_kind != 2 || idx != s->tool_index)) {
            close_block(s, out);
            s->block_kind = 2;
            s->tool_index = (int)idx;
            s->block_index = block = s->n_blocks++;
            if (mapped)
                s->tool_block[idx] = (int16_t)(block + 1);
            event(out, "content_block_start");
            sg_buf_appendf(out, ",\"index\":%d,\"content_block\":{\"type\":\"tool_use\",\"id\":",
                           s->block_index);
            append_str(out, pj_str(c, "id"));
            sg_buf_appends(out, ",\"name\":");
            append_str(out, pj_str(fn, "name"));
            sg_buf_appends(out, ",\"input\":{}}}\n\n");
            ping_once(s, out);
        }
        if (block < 0)
            block = s->block_index; /* an index past the map: the open block's */
        /* A call whose block was already closed (another call's chunks came between): its
         * arguments still go to its own block, by index, which is how clients assemble them. */
        const char *args = pj_str(fn, "arguments");
        if (args && *args) {
            event(out, "content_block_delta");
            sg_buf_appendf(out,
                           ",\"index\":%d,\"delta\":{\"type\":\"input_json_delta\","
                           "\"partial_json\":",
                           block);
            append_str(out, args);
            sg_buf_appends(out, "}}\n\n");
        }
    }
    const char *fr = pj_str(c0, "finish_reason");
    if (fr)
        snprintf(s->stop_reason, sizeof s->stop_reason, "%s", stop_reason(fr));
    json_object_put(root);
    return out->len <= out->max || !out->max ? SG_OK : SG_ETOOBIG;
}
