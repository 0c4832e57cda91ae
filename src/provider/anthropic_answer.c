/*
 * Anthropic Messages for chat.completions clients, the answer: decode a Messages answer into a
 * chat.completion, and translate a Messages stream event by event into chat.completion.chunk
 * events (anthropic.c encodes the request).
 *
 * Mapping (Anthropic -> OpenAI):
 *   text blocks                  -> message.content (joined)
 *   tool_use blocks              -> tool_calls (input serialised as arguments)
 *   the json_tool_call tool's input (response_format) -> the content
 *   thinking / redacted_thinking -> reasoning_content and thinking_blocks (LiteLLM's fields)
 *   stop_reason                  -> finish_reason; usage with the cache fields beside it
 *   msg_ ids                     -> chatcmpl- ids
 */
#include "provider_int.h"

#include <stdio.h>
#include <stdlib.h>

/* ---- answers ---- */

/* A tool_use block that carries the response_format answer. */
static bool is_json_tool(struct json_object *block)
{
    const char *name = pj_str(block, "name");
    return name && strcmp(name, SG_ANTHROPIC_JSON_TOOL) == 0;
}

/* finish_reason of an answer: a response_format answer made with no call of the client's own
 * tools stopped as a text answer does ("stop"), not as a tool call. */
static const char *answer_finish(const char *fr, bool json_answer, int n_tools)
{
    return fr && json_answer && n_tools == 0 && strcmp(fr, "tool_calls") == 0 ? "stop" : fr;
}

static const char *finish_reason(const char *stop_reason)
{
    if (!stop_reason)
        return NULL;
    if (strcmp(stop_reason, "max_tokens") == 0 ||
        strcmp(stop_reason, "model_context_window_exceeded") == 0)
        return "length";
    if (strcmp(stop_reason, "tool_use") == 0)
        return "tool_calls";
    if (strcmp(stop_reason, "refusal") == 0)
        return "content_filter";
    return "stop"; /* end_turn, stop_sequence, pause_turn */
}

void pj_anthropic_usage(struct json_object *usage, struct sg_usage *u)
{
    if (!pj_is(usage, json_type_object))
        return;
    u->known = true;
    /* Anthropic's input_tokens excludes the cached part; ours includes it. Keep the pieces
     * apart until all are known (message_start has them, message_delta may repeat them). */
    int64_t uncached = u->input_tokens - u->cache_read_tokens - u->cache_creation_tokens;
    struct json_object *v;
    if ((v = pj_get(usage, "input_tokens")) && pj_is(v, json_type_int))
        uncached = json_object_get_int64(v);
    if ((v = pj_get(usage, "cache_read_input_tokens")) && pj_is(v, json_type_int))
        u->cache_read_tokens = json_object_get_int64(v);
    if ((v = pj_get(usage, "cache_creation_input_tokens")) && pj_is(v, json_type_int))
        u->cache_creation_tokens = json_object_get_int64(v);
    if ((v = pj_get(usage, "output_tokens")) && pj_is(v, json_type_int))
        u->output_tokens = json_object_get_int64(v);
    /* Clamped first: the sum below is of three counts a provider wrote. */
    uncached = pj_tokens(uncached);
    u->cache_read_tokens = pj_tokens(u->cache_read_tokens);
    u->cache_creation_tokens = pj_tokens(u->cache_creation_tokens);
    u->output_tokens = pj_tokens(u->output_tokens);
    u->input_tokens = uncached + u->cache_read_tokens + u->cache_creation_tokens;
}

int sg_anthropic_usage_parse(const char *body, size_t len, struct sg_usage *u)
{
    char err[64];
    struct json_object *root = len ? sg_json_parse_strict(body, len, err, sizeof err) : NULL;
    struct json_object *usage = pj_get(root, "usage");
    int rc = root ? SG_ENOTFOUND : SG_EINVAL;
    if (pj_is(usage, json_type_object)) {
        memset(u, 0, sizeof *u);
        pj_anthropic_usage(usage, u);
        rc = SG_OK;
    }
    json_object_put(root);
    return rc;
}

/* The OpenAI usage object for `u`, with Anthropic's cache fields beside it (as LiteLLM adds).
 * `reasoning` > 0: completion_tokens_details.reasoning_tokens, the estimate of the thinking
 * text (Anthropic counts thinking in output_tokens without saying how much; LiteLLM counts it
 * so too), never more than the output. */
static void append_usage(struct sg_buf *out, const struct sg_usage *u, int64_t reasoning)
{
    sg_buf_appendf(out,
                   "{\"prompt_tokens\":%lld,\"completion_tokens\":%lld,\"total_tokens\":%lld,"
                   "\"prompt_tokens_details\":{\"cached_tokens\":%lld},",
                   (long long)u->input_tokens, (long long)u->output_tokens,
                   (long long)(u->input_tokens + u->output_tokens),
                   (long long)u->cache_read_tokens);
    if (reasoning > 0)
        sg_buf_appendf(out, "\"completion_tokens_details\":{\"reasoning_tokens\":%lld},",
                       (long long)SG_MIN(reasoning, u->output_tokens));
    sg_buf_appendf(out, "\"cache_creation_input_tokens\":%lld,\"cache_read_input_tokens\":%lld}",
                   (long long)u->cache_creation_tokens, (long long)u->cache_read_tokens);
}

static void append_str(struct sg_buf *out, const char *s)
{
    sg_buf_append(out, "\"", 1);
    sg_buf_append_json_str(out, s, strlen(s));
    sg_buf_append(out, "\"", 1);
}

/* A tool_use block's input as JSON text ("{}" when it has none). */
static void append_input(struct sg_buf *out, struct json_object *block)
{
    struct json_object *input = pj_get(block, "input");
    if (input)
        pj_append(out, input);
    else
        sg_buf_appends(out, "{}");
}

int sg_anthropic_decode_response(const char *body, size_t len, int64_t created, struct sg_buf *out,
                                 struct sg_usage *u)
{
    char err[64];
    struct json_object *root = len ? sg_json_parse_strict(body, len, err, sizeof err) : NULL;
    struct json_object *content = pj_get(root, "content");
    const char *type = pj_str(root, "type");
    if (!type || strcmp(type, "message") != 0 || !pj_is(content, json_type_array)) {
        json_object_put(root);
        return SG_EPROTO;
    }
    memset(u, 0, sizeof *u);
    pj_anthropic_usage(pj_get(root, "usage"), u);
    struct sg_buf text, tools, json, reasoning, blocks;
    sg_buf_init(&text, 0);
    sg_buf_init(&tools, 0);
    sg_buf_init(&json, 0);
    sg_buf_init(&reasoning, 0);
    sg_buf_init(&blocks, 0);
    size_t n = json_object_array_length(content);
    bool any_text = false, json_answer = false;
    int n_tools = 0, n_thinking = 0;
    int64_t reasoning_tokens = 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *b = json_object_array_get_idx(content, i);
        const char *bt = pj_str(b, "type");
        if (!bt)
            continue;
        if (strcmp(bt, "text") == 0 && pj_str(b, "text")) {
            struct json_object *t = pj_get(b, "text");
            pj_append_text(&text, t);
            any_text = true;
        } else if (strcmp(bt, "tool_use") == 0 && is_json_tool(b)) {
            /* The response_format answer is the content; a second one (the forced tool is
             * asked for once) would make it two JSON texts, so only the first counts. */
            if (!json_answer)
                append_input(&json, b);
            json_answer = true;
        } else if (strcmp(bt, "tool_use") == 0) {
            sg_buf_appends(&tools, n_tools++ ? ",{\"id\":" : "{\"id\":");
            append_str(&tools, pj_str(b, "id") ? pj_str(b, "id") : "");
            sg_buf_appends(&tools, ",\"type\":\"function\",\"function\":{\"name\":");
            append_str(&tools, pj_str(b, "name") ? pj_str(b, "name") : "");
            sg_buf_appends(&tools, ",\"arguments\":");
            struct sg_buf args;
            sg_buf_init(&args, 0);
            append_input(&args, b);
            append_str(&tools, args.data);
            sg_buf_dispose(&args);
            sg_buf_appends(&tools, "}}");
        } else if (strcmp(bt, "thinking") == 0 || strcmp(bt, "redacted_thinking") == 0) {
            /* As LiteLLM: the blocks as they came (signatures, for the next turn) and their
             * text joined as reasoning_content. */
            struct json_object *t = pj_get(b, "thinking");
            sg_buf_appends(&blocks, n_thinking++ ? "," : "");
            pj_append(&blocks, b);
            if (pj_is(t, json_type_string)) {
                pj_append_text(&reasoning, t);
                reasoning_tokens += sg_tokens_estimate_text(json_object_get_string(t),
                                                            (size_t)json_object_get_string_len(t));
            }
        }
        /* server-tool blocks have no chat.completions form: left out */
    }
    if (json_answer) {
        /* The JSON is the whole content: text around it would break the client's parse. */
        sg_buf_reset(&text);
        sg_buf_append_json_str(&text, json.data ? json.data : "", json.len);
        any_text = true;
    }
    char id[160];
    pj_translated_id(id, sizeof id, pj_str(root, "id"), "msg_", "chatcmpl-");
    sg_buf_appends(out, "{\"id\":");
    append_str(out, id);
    sg_buf_appendf(
        out, ",\"object\":\"chat.completion\",\"created\":%lld,\"model\":", (long long)created);
    append_str(out, pj_str(root, "model") ? pj_str(root, "model") : "");
    sg_buf_appends(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
                        "\"content\":");
    if (any_text || !n_tools) {
        sg_buf_append(out, "\"", 1);
        sg_buf_append(out, text.data ? text.data : "", text.len);
        sg_buf_append(out, "\"", 1);
    } else {
        sg_buf_appends(out, "null");
    }
    if (n_tools) {
        sg_buf_appends(out, ",\"tool_calls\":[");
        sg_buf_append(out, tools.data, tools.len);
        sg_buf_appends(out, "]");
    }
    if (n_thinking) {
        sg_buf_appends(out, ",\"reasoning_content\":\"");
        sg_buf_append(out, reasoning.data ? reasoning.data : "", reasoning.len);
        sg_buf_appends(out, "\",\"thinking_blocks\":[");
        sg_buf_append(out, blocks.data, blocks.len);
        sg_buf_appends(out, "]");
    }
    sg_buf_appends(out, ",\"refusal\":null},\"logprobs\":null,\"finish_reason\":");
    const char *fr =
        answer_finish(finish_reason(pj_str(root, "stop_reason")), json_answer, n_tools);
    if (fr)
        append_str(out, fr);
    else
        sg_buf_appends(out, "null");
    sg_buf_appends(out, "}],\"usage\":");
    append_usage(out, u, reasoning_tokens);
    int rc = sg_buf_appends(out, "}");
    sg_buf_dispose(&text);
    sg_buf_dispose(&tools);
    sg_buf_dispose(&json);
    sg_buf_dispose(&reasoning);
    sg_buf_dispose(&blocks);
    json_object_put(root);
    return rc == SG_OK ? SG_OK : SG_ETOOBIG;
}

/* ---- streams ---- */

void sg_anthropic_stream_init(struct sg_anthropic_stream *s, bool include_usage, int64_t created)
{
    memset(s, 0, sizeof *s);
    s->include_usage = include_usage;
    s->created = created;
    snprintf(s->id, sizeof s->id, "msg");
}

/* "data: {"id":...,"object":"chat.completion.chunk","created":...,"model":..." */
static void chunk_head(const struct sg_anthropic_stream *s, struct sg_buf *out)
{
    sg_buf_appends(out, "data: {\"id\":");
    append_str(out, s->id);
    sg_buf_appendf(out, ",\"object\":\"chat.completion.chunk\",\"created\":%lld,\"model\":",
                   (long long)s->created);
    append_str(out, s->model);
}

/* The chunk head and "choices":[{"index":0,"delta": — the caller writes the delta. */
static void chunk_open(struct sg_anthropic_stream *s, struct sg_buf *out)
{
    chunk_head(s, out);
    sg_buf_appends(out, ",\"choices\":[{\"index\":0,\"delta\":");
}

/* A client that asked for usage sees "usage":null on every chunk before the usage chunk, as
 * OpenAI sends them. */
static void chunk_close(const struct sg_anthropic_stream *s, struct sg_buf *out, const char *finish)
{
    sg_buf_appends(out, ",\"logprobs\":null,\"finish_reason\":");
    if (finish)
        append_str(out, finish);
    else
        sg_buf_appends(out, "null");
    sg_buf_appends(out, s->include_usage ? "}],\"usage\":null}\n\n" : "}]}\n\n");
}

/* A chunk whose delta is the JSON string `t` as content. */
static void content_chunk(struct sg_anthropic_stream *s, struct sg_buf *out, struct json_object *t)
{
    chunk_open(s, out);
    sg_buf_appends(out, "{\"content\":\"");
    pj_append_text(out, t);
    sg_buf_appends(out, "\"}");
    chunk_close(s, out, NULL);
}

static void copy_str(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* A chunk whose delta carries thinking, as LiteLLM streams it: `text` (a JSON string or NULL)
 * as reasoning_content, and one entry of thinking_blocks: {"type":"thinking","thinking":text}
 * with "signature" when `sig` is given (a signature_delta), or the whole `block` (a
 * redacted_thinking block, whose reasoning_content is ""). */
static void thinking_chunk(struct sg_anthropic_stream *s, struct sg_buf *out,
                           struct json_object *text, struct json_object *sig,
                           struct json_object *block)
{
    chunk_open(s, out);
    sg_buf_appends(out, "{\"reasoning_content\":\"");
    pj_append_text(out, text);
    sg_buf_appends(out, "\",\"thinking_blocks\":[");
    if (block) {
        pj_append(out, block);
    } else {
        sg_buf_appends(out, "{\"type\":\"thinking\",\"thinking\":\"");
        pj_append_text(out, text);
        sg_buf_appends(out, "\"");
        if (sig) {
            sg_buf_appends(out, ",\"signature\":\"");
            pj_append_text(out, sig);
            sg_buf_appends(out, "\"");
        }
        sg_buf_appends(out, "}");
    }
    sg_buf_appends(out, "]}");
    chunk_close(s, out, NULL);
}

/* content_block_start: which kind of block opens, and its first chunk. */
static void block_start(struct sg_anthropic_stream *s, struct json_object *b, struct sg_buf *out)
{
    const char *bt = pj_str(b, "type");
    bool text = bt && strcmp(bt, "text") == 0;
    bool tool = bt && strcmp(bt, "tool_use") == 0;
    bool json = tool && is_json_tool(b);
    s->block_kind = SG_ABLOCK_OTHER;
    s->tool_args = false;
    if (bt && strcmp(bt, "thinking") == 0) {
        s->block_kind = SG_ABLOCK_THINKING; /* its text comes in thinking_delta events */
    } else if (bt && strcmp(bt, "redacted_thinking") == 0) {
        if (out) /* no deltas follow: the block is whole here */
            thinking_chunk(s, out, NULL, NULL, b);
    } else if (s->json_answer && (text || json)) {
        s->block_kind = SG_ABLOCK_DROPPED; /* after the JSON content nothing may be added to it */
    } else if (json) {
        s->block_kind = SG_ABLOCK_ANSWER;
        s->json_answer = true;
    } else if (text) {
        s->block_kind = SG_ABLOCK_TEXT;
        struct json_object *t = pj_get(b, "text");
        if (out && pj_is(t, json_type_string) && json_object_get_string_len(t) > 0)
            content_chunk(s, out, t);
    } else if (tool) {
        s->block_kind = SG_ABLOCK_TOOL;
        s->tool_index = s->n_tools++;
        if (out) {
            chunk_open(s, out);
            sg_buf_appendf(out, "{\"tool_calls\":[{\"index\":%d,\"id\":", s->tool_index);
            append_str(out, pj_str(b, "id") ? pj_str(b, "id") : "");
            sg_buf_appends(out, ",\"type\":\"function\",\"function\":{\"name\":");
            append_str(out, pj_str(b, "name") ? pj_str(b, "name") : "");
            sg_buf_appends(out, ",\"arguments\":\"\"}}]}");
            chunk_close(s, out, NULL);
        }
    }
}

/* A tool call's arguments piece `t` (a JSON string). */
static void arguments_chunk(struct sg_anthropic_stream *s, struct sg_buf *out,
                            struct json_object *t)
{
    chunk_open(s, out);
    sg_buf_appendf(out, "{\"tool_calls\":[{\"index\":%d,\"function\":{\"arguments\":\"",
                   s->tool_index);
    pj_append_text(out, t);
    sg_buf_appends(out, "\"}}]}");
    chunk_close(s, out, NULL);
}

/* content_block_delta: text and tool input become chunks; SG_EPROTO for a delta whose block
 * was never started. */
static int block_delta(struct sg_anthropic_stream *s, struct json_object *d, struct sg_buf *out)
{
    const char *dt = pj_str(d, "type");
    if (!dt)
        return SG_EPROTO;
    if (s->block_kind == SG_ABLOCK_THINKING) {
        struct json_object *t = pj_get(d, "thinking"), *sig = pj_get(d, "signature");
        if (strcmp(dt, "thinking_delta") == 0 && pj_is(t, json_type_string)) {
            s->reasoning_tokens += sg_tokens_estimate_text(json_object_get_string(t),
                                                           (size_t)json_object_get_string_len(t));
            if (out && json_object_get_string_len(t) > 0)
                thinking_chunk(s, out, t, NULL, NULL);
        } else if (strcmp(dt, "signature_delta") == 0 && pj_is(sig, json_type_string)) {
            if (out)
                thinking_chunk(s, out, NULL, sig, NULL);
        }
        return SG_OK;
    }
    bool text = strcmp(dt, "text_delta") == 0, input = strcmp(dt, "input_json_delta") == 0;
    struct json_object *t = pj_get(d, text ? "text" : "partial_json");
    bool some = pj_is(t, json_type_string) && json_object_get_string_len(t) > 0;
    if (s->block_kind == SG_ABLOCK_DROPPED || (!text && !input))
        return SG_OK; /* left out; citations_delta: no chat.completions form */
    if (text && s->block_kind == SG_ABLOCK_TEXT) {
        if (out && pj_is(t, json_type_string))
            content_chunk(s, out, t);
    } else if (input && (s->block_kind == SG_ABLOCK_TOOL || s->block_kind == SG_ABLOCK_ANSWER)) {
        s->tool_args = s->tool_args || some;
        if (out && some && s->block_kind == SG_ABLOCK_ANSWER)
            content_chunk(s, out, t); /* the response_format answer is the content */
        else if (out && some)
            arguments_chunk(s, out, t);
    } else {
        return SG_EPROTO;
    }
    return SG_OK;
}

/* content_block_stop: a tool (or response_format) block that sent no input gets "{}". */
static void block_stop(struct sg_anthropic_stream *s, struct sg_buf *out)
{
    if ((s->block_kind == SG_ABLOCK_TOOL || s->block_kind == SG_ABLOCK_ANSWER) && !s->tool_args &&
        out) {
        /* No input_json_delta: the tool takes no arguments. OpenAI sends "{}" then; an empty
         * string is no JSON to whoever parses the arguments. */
        struct json_object *empty = json_object_new_string("{}");
        if (s->block_kind == SG_ABLOCK_ANSWER)
            content_chunk(s, out, empty);
        else
            arguments_chunk(s, out, empty);
        json_object_put(empty);
    }
    s->block_kind = SG_ABLOCK_NONE;
}

int sg_anthropic_stream_event(struct sg_anthropic_stream *s, struct sg_slice event,
                              struct sg_slice data, struct sg_buf *out)
{
    char err[64];
    if (s->done || s->failed)
        return SG_OK; /* nothing may follow message_stop; ignore stray bytes */
    struct json_object *root =
        data.n ? sg_json_parse_strict(data.p, data.n, err, sizeof err) : NULL;
    const char *type = pj_str(root, "type");
    char ev[32];
    if (!type && event.n && event.n < sizeof ev) {
        memcpy(ev, event.p, event.n);
        ev[event.n] = '\0';
        type = ev;
    }
    int rc = SG_OK;
    if (!type || !root) {
        if (type && strcmp(type, "ping") == 0)
            goto out;
        rc = SG_EPROTO;
        goto out;
    }
    if (strcmp(type, "ping") == 0)
        goto out;
    if (strcmp(type, "error") == 0) {
        struct json_object *e = pj_get(root, "error");
        s->failed = true;
        copy_str(s->error_type, sizeof s->error_type,
                 pj_str(e, "type") ? pj_str(e, "type") : "api_error");
        copy_str(s->error, sizeof s->error,
                 pj_str(e, "message") ? pj_str(e, "message") : "the provider sent an error event");
        goto out;
    }
    if (strcmp(type, "message_start") == 0) {
        struct json_object *m = pj_get(root, "message");
        if (s->started || !m) {
            rc = SG_EPROTO;
            goto out;
        }
        s->started = true;
        pj_translated_id(s->id, sizeof s->id, pj_str(m, "id"), "msg_", "chatcmpl-");
        copy_str(s->model, sizeof s->model, pj_str(m, "model"));
        pj_anthropic_usage(pj_get(m, "usage"), &s->usage);
        if (out) {
            chunk_open(s, out);
            sg_buf_appends(out, "{\"role\":\"assistant\",\"content\":\"\"}");
            chunk_close(s, out, NULL);
        }
        goto out;
    }
    if (!s->started) {
        rc = SG_EPROTO; /* content before message_start */
        goto out;
    }
    if (strcmp(type, "content_block_start") == 0) {
        block_start(s, pj_get(root, "content_block"), out);
    } else if (strcmp(type, "content_block_delta") == 0) {
        rc = block_delta(s, pj_get(root, "delta"), out);
        /* Until message_delta counts them, a stream cut short is charged at least a token per
         * delta it relayed (message_start says 1), as an OpenAI stream one per chunk. */
        if (++s->deltas > s->usage.output_tokens)
            s->usage.output_tokens = s->deltas;
    } else if (strcmp(type, "content_block_stop") == 0) {
        block_stop(s, out);
    } else if (strcmp(type, "message_delta") == 0) {
        const char *sr = pj_str(pj_get(root, "delta"), "stop_reason");
        if (sr)
            copy_str(s->finish, sizeof s->finish,
                     answer_finish(finish_reason(sr), s->json_answer, s->n_tools));
        pj_anthropic_usage(pj_get(root, "usage"), &s->usage);
        if (out) {
            chunk_open(s, out);
            sg_buf_appends(out, "{}");
            chunk_close(s, out, s->finish[0] ? s->finish : "stop");
        }
    } else if (strcmp(type, "message_stop") == 0) {
        s->done = true;
        if (out && s->include_usage) {
            chunk_head(s, out);
            sg_buf_appends(out, ",\"choices\":[],\"usage\":");
            append_usage(out, &s->usage, s->reasoning_tokens);
            sg_buf_appends(out, "}\n\n");
        }
        if (out)
            sg_buf_appends(out, "data: [DONE]\n\n");
    }
    /* Unknown event types are skipped: Anthropic says new ones may appear. */
out:
    json_object_put(root);
    return rc;
}
