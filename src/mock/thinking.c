/*
 * Reasoning at the mock: what a request says about it (Anthropic's thinking, OpenAI's
 * reasoning_effort) and the checks the providers make on it, so a gateway that sends what
 * Claude would refuse gets the refusal here too. The answers are rendered in render.c.
 */
#include "mock/mock.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

int sg_mock_thinking_signature(struct sg_buf *out, const char *text, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)text[i];
        h *= 0x100000001b3ull;
    }
    return sg_buf_appendf(out, "mocksig-%016" PRIx64, h);
}

static struct json_object *member(struct json_object *o, const char *k)
{
    struct json_object *v = NULL;
    if (json_object_is_type(o, json_type_object))
        json_object_object_get_ex(o, k, &v);
    return v;
}

#define FAIL(pname, ...)                                                                           \
    do {                                                                                           \
        snprintf(err, errn, __VA_ARGS__);                                                          \
        snprintf(param, paramn, "%s", pname);                                                      \
        return SG_EINVAL;                                                                          \
    } while (0)

/* A thinking block sent back must carry the signature the mock gave its text. */
static bool signed_by_mock(struct json_object *b)
{
    struct json_object *t = member(b, "thinking"), *sig = member(b, "signature");
    if (!json_object_is_type(t, json_type_string) || !json_object_is_type(sig, json_type_string))
        return false;
    struct sg_buf want;
    sg_buf_init(&want, 0);
    sg_mock_thinking_signature(&want, json_object_get_string(t),
                               (size_t)json_object_get_string_len(t));
    bool ok = want.len == (size_t)json_object_get_string_len(sig) &&
              memcmp(want.data, json_object_get_string(sig), want.len) == 0;
    sg_buf_dispose(&want);
    return ok;
}

/* The assistant turns' thinking blocks: each signed by the mock; with thinking on, the last
 * assistant turn that calls a tool starts with its thinking (Anthropic's rule for tool use). */
static int check_turns(struct json_object *msgs, bool on, char *err, size_t errn, char *param,
                       size_t paramn)
{
    size_t n = json_object_is_type(msgs, json_type_array) ? json_object_array_length(msgs) : 0;
    long last_tool = -1;
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_array_get_idx(msgs, i), *c = member(m, "content");
        struct json_object *role = member(m, "role");
        if (!json_object_is_type(role, json_type_string) ||
            strcmp(json_object_get_string(role), "assistant") != 0 ||
            !json_object_is_type(c, json_type_array))
            continue;
        size_t k = json_object_array_length(c);
        for (size_t j = 0; j < k; j++) {
            struct json_object *b = json_object_array_get_idx(c, j), *t = member(b, "type");
            const char *type =
                json_object_is_type(t, json_type_string) ? json_object_get_string(t) : "";
            if (strcmp(type, "thinking") == 0 && !signed_by_mock(b))
                FAIL("messages",
                     "messages.%zu.content.%zu: Invalid `signature` in `thinking` block", i, j);
            if (strcmp(type, "redacted_thinking") == 0 &&
                !json_object_is_type(member(b, "data"), json_type_string))
                FAIL("messages", "messages.%zu.content.%zu.data: Field required", i, j);
            if (strcmp(type, "tool_use") == 0)
                last_tool = (long)i;
        }
    }
    if (!on || last_tool < 0)
        return 0;
    struct json_object *c = member(json_object_array_get_idx(msgs, (size_t)last_tool), "content");
    struct json_object *t = member(json_object_array_get_idx(c, 0), "type");
    const char *type = json_object_is_type(t, json_type_string) ? json_object_get_string(t) : "";
    if (strcmp(type, "thinking") != 0 && strcmp(type, "redacted_thinking") != 0)
        FAIL("messages",
             "messages.%ld.content.0.type: Expected `thinking` or `redacted_thinking`, but found "
             "`%.32s`. When `thinking` is enabled, a final `assistant` message must start with a "
             "thinking block (preceeding the lastmost set of `tool_use` and `tool_result` "
             "blocks).",
             last_tool, type);
    return 0;
}

static int anthropic_thinking(struct json_object *root, struct sg_mock_chat *out, char *err,
                              size_t errn, char *param, size_t paramn)
{
    struct json_object *th = member(root, "thinking"), *v;
    bool on = false;
    if (th) {
        v = member(th, "type");
        const char *type =
            json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
        if (strcmp(type, "enabled") == 0) {
            v = member(th, "budget_tokens");
            if (!json_object_is_type(v, json_type_int))
                FAIL("thinking", "thinking.enabled.budget_tokens: Field required");
            int64_t b = json_object_get_int64(v);
            if (b < 1024)
                FAIL("thinking", "thinking.enabled.budget_tokens: Input should be greater than "
                                 "or equal to 1024");
            if (out->max_tokens > 0 && b >= out->max_tokens)
                FAIL("max_tokens", "`max_tokens` must be greater than `thinking.budget_tokens`");
            on = true;
        } else if (strcmp(type, "adaptive") == 0) {
            on = true;
        } else if (strcmp(type, "disabled") != 0) {
            FAIL("thinking",
                 "thinking: Input tag '%.32s' found using 'type' does not match any "
                 "of the expected tags: 'enabled', 'disabled', 'adaptive'",
                 type);
        }
    }
    if (on) {
        if ((v = member(root, "temperature")) && json_object_get_double(v) != 1.0)
            FAIL("temperature", "`temperature` may only be set to 1 when thinking is enabled.");
        if ((v = member(root, "top_p")) && json_object_get_double(v) < 0.95)
            FAIL("top_p", "`top_p` must be greater than or equal to 0.95 or unset when thinking "
                          "is enabled.");
        if (member(root, "top_k"))
            FAIL("top_k", "`top_k` must be unset when thinking is enabled.");
        if (out->n_calls)
            FAIL("tool_choice", "Thinking may not be enabled when tool_choice forces tool use.");
        out->thinking_tokens = SG_MOCK_THINKING_TOKENS;
    }
    return check_turns(member(root, "messages"), on, err, errn, param, paramn);
}

int sg_mock_thinking_parse(enum sg_mock_api api, struct json_object *root, const char *body,
                           size_t len, struct sg_mock_chat *out, char *err, size_t errn,
                           char *param, size_t paramn)
{
    if (api == SG_MOCK_API_ANTHROPIC) {
        int rc = anthropic_thinking(root, out, err, errn, param, paramn);
        if (!rc && out->thinking_tokens)
            out->redacted = memmem(body, len, SG_MOCK_REDACTED_TRIGGER,
                                   strlen(SG_MOCK_REDACTED_TRIGGER)) != NULL;
        return rc;
    }
    struct json_object *v = member(root, "reasoning_effort");
    if (!v)
        return 0;
    static const char *const efforts[] = {"none", "minimal", "low", "medium", "high", "xhigh"};
    const char *e = json_object_is_type(v, json_type_string) ? json_object_get_string(v) : "";
    for (size_t i = 0; i < SG_ARRAY_LEN(efforts); i++)
        if (strcmp(e, efforts[i]) == 0) {
            /* A tool call answer carries no reasoning (docs/mock.md). */
            out->thinking_tokens = i && !out->n_calls ? SG_MOCK_THINKING_TOKENS : 0;
            return 0;
        }
    FAIL("reasoning_effort",
         "Invalid value: '%.32s'. Supported values are: 'none', 'minimal', 'low', 'medium', "
         "'high', and 'xhigh'.",
         e);
}

#undef FAIL
