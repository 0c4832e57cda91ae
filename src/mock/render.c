/*
 * The mock's wire formats as pure functions: parse a chat request, estimate its tokens, and
 * render completions, stream events and errors the way OpenAI and Anthropic write them.
 * Nothing here knows about sockets or time, so every byte can be checked by a unit test.
 */
#include "mock/mock.h"
#include "provider/provider.h"

#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>

struct json_object *sg_mock_json_parse(const char *p, size_t n, char *err, size_t errn)
{
    return sg_json_parse_depth(p, n, SG_MOCK_JSON_DEPTH, err, errn);
}

uint64_t sg_mock_count_tokens(uint64_t text_bytes)
{
    return (text_bytes + 3) / 4 + 4;
}

static void fnv1a(uint64_t *h, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        *h ^= (unsigned char)p[i];
        *h *= 0x100000001b3ull;
    }
}

/* Sum the text of one content value: a string, or an array of blocks whose "text" strings (and,
 * for tool results, whose nested "content") count. Other block kinds count as nothing. Sets
 * *marked when a block carries an Anthropic cache_control marker. */
static uint64_t content_text(struct json_object *content, uint64_t *hash, bool *marked, int depth)
{
    if (!content || depth > 2)
        return 0;
    if (json_object_is_type(content, json_type_string)) {
        size_t n = (size_t)json_object_get_string_len(content);
        fnv1a(hash, json_object_get_string(content), n);
        return n;
    }
    if (!json_object_is_type(content, json_type_array))
        return 0;
    uint64_t total = 0;
    size_t len = json_object_array_length(content);
    for (size_t i = 0; i < len; i++) {
        struct json_object *part = json_object_array_get_idx(content, i), *v;
        if (!json_object_is_type(part, json_type_object))
            continue;
        if (json_object_object_get_ex(part, "cache_control", &v) && v)
            *marked = true;
        if (json_object_object_get_ex(part, "text", &v))
            total += content_text(v, hash, marked, depth + 1);
        if (json_object_object_get_ex(part, "content", &v))
            total += content_text(v, hash, marked, depth + 1);
    }
    return total;
}

/* Count one message (or the system prompt); a cache_control marker in it moves the end of the
 * cacheable prefix to here, as Anthropic caches everything up to the last marked block. */
static void count_part(struct sg_mock_chat *out, struct json_object *content)
{
    bool marked = false;
    out->input_tokens += sg_mock_count_tokens(content_text(content, &out->prompt_hash, &marked, 0));
    if (marked && out->api == SG_MOCK_API_ANTHROPIC) {
        out->cache_prefix_tokens = out->input_tokens;
        out->cache_prefix_hash = out->prompt_hash;
    }
}

static bool role_allowed(enum sg_mock_api api, const char *role)
{
    static const char *openai[] = {"system", "developer", "user", "assistant", "tool", "function"};
    if (api == SG_MOCK_API_ANTHROPIC)
        return strcmp(role, "user") == 0 || strcmp(role, "assistant") == 0;
    for (size_t i = 0; i < SG_ARRAY_LEN(openai); i++)
        if (strcmp(role, openai[i]) == 0)
            return true;
    return false;
}

/* Read an optional positive integer field; -1 when absent or null. */
static int opt_pos_int(struct json_object *root, const char *key, int64_t *out)
{
    struct json_object *v;
    *out = -1;
    if (!json_object_object_get_ex(root, key, &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_int))
        return SG_EINVAL;
    int64_t x = json_object_get_int64(v);
    if (x < 1)
        return SG_EINVAL;
    *out = x;
    return 0;
}

static int opt_bool(struct json_object *obj, const char *key, bool *out)
{
    struct json_object *v;
    if (!json_object_object_get_ex(obj, key, &v) || !v)
        return 0;
    if (!json_object_is_type(v, json_type_boolean))
        return SG_EINVAL;
    *out = json_object_get_boolean(v);
    return 0;
}

/* ---- a forced tool's input, from its schema ---- */

/* Values a schema fill may write at most: a schema that nests objects and arrays (or lists a
 * required name many times) must not make a request's answer grow without bound. */
#define FILL_BUDGET 256
#define FILL_DEPTH 8
#define FILL_TEXT                                                                                  \
    "Gr\xc3\xbc\xc3\x9f"                                                                           \
    "e \xf0\x9f\x98\x80" /* split mid-character if cut by bytes */

/* The type a schema names: its "type" string, or the first non-null one of a type array. */
static const char *schema_type(struct json_object *schema)
{
    struct json_object *t;
    if (!json_object_object_get_ex(schema, "type", &t))
        return json_object_object_get_ex(schema, "properties", &t) ? "object" : NULL;
    if (json_object_is_type(t, json_type_string))
        return json_object_get_string(t);
    size_t n = json_object_is_type(t, json_type_array) ? json_object_array_length(t) : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(t, i);
        if (json_object_is_type(e, json_type_string) &&
            strcmp(json_object_get_string(e), "null") != 0)
            return json_object_get_string(e);
    }
    return NULL;
}

/* The first element of schema[key] when that is a non-empty array, else NULL. */
static struct json_object *first_of(struct json_object *schema, const char *key, bool *found)
{
    struct json_object *v;
    *found = json_object_object_get_ex(schema, key, &v) &&
             json_object_is_type(v, json_type_array) && json_object_array_length(v) > 0;
    return *found ? json_object_array_get_idx(v, 0) : NULL;
}

static struct json_object *fill_value(struct json_object *schema, int depth, int *budget);

/* An object with every property `required` lists, each filled from its schema in properties. */
static struct json_object *fill_object(struct json_object *schema, int depth, int *budget)
{
    struct json_object *obj = json_object_new_object(), *req, *props = NULL, *ps;
    json_object_object_get_ex(schema, "properties", &props);
    size_t n = json_object_object_get_ex(schema, "required", &req) &&
                       json_object_is_type(req, json_type_array)
                   ? json_object_array_length(req)
                   : 0;
    for (size_t i = 0; i < n; i++) {
        struct json_object *name = json_object_array_get_idx(req, i);
        if (!json_object_is_type(name, json_type_string))
            continue;
        ps = NULL;
        if (json_object_is_type(props, json_type_object))
            json_object_object_get_ex(props, json_object_get_string(name), &ps);
        json_object_object_add(obj, json_object_get_string(name),
                               fill_value(ps, depth + 1, budget));
    }
    return obj;
}

/* A value that fits `schema` for the schemas response formats use: const, the first enum value,
 * the first anyOf/oneOf branch, else by type (an object with its required properties, minItems
 * items of an array up to 4, FILL_TEXT, 1, 1.5, true); null for anything else ($ref included)
 * and once the depth or the budget is spent. */
static struct json_object *fill_value(struct json_object *schema, int depth, int *budget)
{
    struct json_object *v;
    bool found;
    if (!json_object_is_type(schema, json_type_object) || depth > FILL_DEPTH || --*budget < 0)
        return NULL;
    if (json_object_object_get_ex(schema, "const", &v))
        return json_object_get(v);
    if ((v = first_of(schema, "enum", &found)) || found)
        return json_object_get(v);
    if ((v = first_of(schema, "anyOf", &found)) || (v = first_of(schema, "oneOf", &found)))
        return fill_value(v, depth + 1, budget);
    const char *type = schema_type(schema);
    if (!type)
        return NULL;
    if (strcmp(type, "object") == 0)
        return fill_object(schema, depth, budget);
    if (strcmp(type, "array") == 0) {
        struct json_object *arr = json_object_new_array(), *items = NULL;
        json_object_object_get_ex(schema, "items", &items);
        int64_t k =
            json_object_object_get_ex(schema, "minItems", &v) ? json_object_get_int64(v) : 0;
        for (int64_t i = 0; i < SG_MIN(k, 4); i++)
            json_object_array_add(arr, fill_value(items, depth + 1, budget));
        return arr;
    }
    if (strcmp(type, "string") == 0)
        return json_object_new_string(FILL_TEXT);
    if (strcmp(type, "integer") == 0)
        return json_object_new_int(1);
    if (strcmp(type, "number") == 0)
        return json_object_new_double(1.5);
    if (strcmp(type, "boolean") == 0)
        return json_object_new_boolean(1);
    return NULL;
}

/* The input of an Anthropic call forced by name, as JSON text (owned), from the tool's
 * input_schema when that requires properties (or forbids any); NULL for the usual arguments. */
static char *forced_input(struct json_object *tool)
{
    struct json_object *schema, *req, *extra;
    if (!json_object_object_get_ex(tool, "input_schema", &schema) ||
        !json_object_is_type(schema, json_type_object))
        return NULL;
    bool required = json_object_object_get_ex(schema, "required", &req) &&
                    json_object_is_type(req, json_type_array) && json_object_array_length(req);
    bool closed = json_object_object_get_ex(schema, "additionalProperties", &extra) &&
                  json_object_is_type(extra, json_type_boolean) && !json_object_get_boolean(extra);
    if (!required && !closed)
        return NULL;
    int budget = FILL_BUDGET;
    struct json_object *input = fill_object(schema, 0, &budget);
    char *s = sg_xstrdup(json_object_to_json_string_ext(input, JSON_C_TO_STRING_PLAIN |
                                                                   JSON_C_TO_STRING_NOSLASHESCAPE));
    json_object_put(input);
    return s;
}

/* tools and tool_choice: which tools the answer calls. The checks are the ones both APIs make
 * first (a list of named tools; a choice that names one of them). */
static int parse_tools(enum sg_mock_api api, struct json_object *root, struct sg_mock_chat *out,
                       char *err, size_t errn, char *param, size_t paramn)
{
    bool oa = api == SG_MOCK_API_OPENAI;
    struct json_object *tools = NULL, *tc = NULL, *v;
    const char *names[SG_MOCK_MAX_TOOL_CALLS];
    size_t n_names = 0, n_tools = 0;
    json_object_object_get_ex(root, "tools", &tools);
    json_object_object_get_ex(root, "tool_choice", &tc);
    if (tools) {
        if (!json_object_is_type(tools, json_type_array)) {
            snprintf(param, paramn, "tools");
            snprintf(err, errn, "tools: must be an array");
            return SG_EINVAL;
        }
        n_tools = json_object_array_length(tools);
        for (size_t i = 0; i < n_tools; i++) {
            struct json_object *t = json_object_array_get_idx(tools, i), *fn = t, *name = NULL;
            if (oa && (!json_object_object_get_ex(t, "function", &fn) ||
                       !json_object_is_type(fn, json_type_object)))
                fn = NULL;
            if (fn)
                json_object_object_get_ex(fn, "name", &name);
            if (!json_object_is_type(name, json_type_string) ||
                json_object_get_string_len(name) < 1 ||
                json_object_get_string_len(name) > SG_MOCK_TOOL_NAME_MAX) {
                snprintf(param, paramn, "tools");
                snprintf(err, errn, "tools[%zu]%s: a name of 1 to %d characters is required", i,
                         oa ? ".function.name" : ".name", SG_MOCK_TOOL_NAME_MAX);
                return SG_EINVAL;
            }
            if (n_names < SG_MOCK_MAX_TOOL_CALLS)
                names[n_names++] = json_object_get_string(name);
        }
    }
    /* What the choice asks: "any" (required), a tool by name, or nothing forced. */
    const char *type = NULL, *named = NULL;
    bool parallel = true;
    if (tc && json_object_is_type(tc, json_type_string) && oa) {
        type = json_object_get_string(tc);
    } else if (tc && json_object_is_type(tc, json_type_object)) {
        type = json_object_object_get_ex(tc, "type", &v) ? json_object_get_string(v) : "";
        if (oa && json_object_object_get_ex(tc, "function", &v) &&
            json_object_object_get_ex(v, "name", &v))
            named = json_object_get_string(v);
        if (!oa && json_object_object_get_ex(tc, "name", &v))
            named = json_object_get_string(v);
        if (!oa && json_object_object_get_ex(tc, "disable_parallel_tool_use", &v) &&
            json_object_is_type(v, json_type_boolean))
            parallel = !json_object_get_boolean(v);
    } else if (tc) {
        snprintf(param, paramn, "tool_choice");
        snprintf(err, errn, "tool_choice: must be %s", oa ? "a string or an object" : "an object");
        return SG_EINVAL;
    }
    if (oa && json_object_object_get_ex(root, "parallel_tool_calls", &v) &&
        json_object_is_type(v, json_type_boolean))
        parallel = json_object_get_boolean(v);
    bool any = type && strcmp(type, oa ? "required" : "any") == 0;
    bool one = type && strcmp(type, oa ? "function" : "tool") == 0;
    if (type && !any && !one && strcmp(type, "auto") != 0 && strcmp(type, "none") != 0) {
        snprintf(param, paramn, "tool_choice");
        snprintf(err, errn, "tool_choice: unknown type '%.40s'", type);
        return SG_EINVAL;
    }
    if ((any || one) && n_tools == 0) {
        snprintf(param, paramn, "tool_choice");
        snprintf(err, errn, "tool_choice: a tool is required but no tools were given");
        return SG_EINVAL;
    }
    if (one) {
        size_t i = 0;
        struct json_object *t;
        for (; named && i < n_tools; i++) {
            t = json_object_array_get_idx(tools, i);
            if (oa)
                json_object_object_get_ex(t, "function", &t);
            if (json_object_object_get_ex(t, "name", &v) &&
                strcmp(json_object_get_string(v), named) == 0)
                break;
        }
        if (!named || i == n_tools) {
            snprintf(param, paramn, "tool_choice");
            snprintf(err, errn, "tool_choice: the tool '%.64s' is not in tools",
                     named ? named : "");
            return SG_EINVAL;
        }
        snprintf(out->calls[0], sizeof out->calls[0], "%s", named);
        out->n_calls = 1;
        if (!oa)
            out->input = forced_input(t);
    } else if (any) {
        out->n_calls = parallel ? (uint32_t)n_names : 1;
        for (uint32_t i = 0; i < out->n_calls; i++)
            snprintf(out->calls[i], sizeof out->calls[i], "%s", names[i]);
    }
    return 0;
}

#define FAIL(pname, ...)                                                                           \
    do {                                                                                           \
        snprintf(err, errn, __VA_ARGS__);                                                          \
        snprintf(param, paramn, "%s", pname);                                                      \
        goto fail;                                                                                 \
    } while (0)

int sg_mock_chat_parse(enum sg_mock_api api, const char *body, size_t len, struct sg_mock_chat *out,
                       char *err, size_t errn, char *param, size_t paramn)
{
    memset(out, 0, sizeof *out);
    out->api = api;
    out->max_tokens = -1;
    out->prompt_hash = 0xcbf29ce484222325ull;
    snprintf(param, paramn, "%s", "");
    struct json_object *root = sg_mock_json_parse(body, len, err, errn), *v;
    if (!root)
        return SG_EINVAL;
    if (!json_object_is_type(root, json_type_object))
        FAIL("", "the request body must be a JSON object");

    if (!json_object_object_get_ex(root, "model", &v) || !v)
        FAIL("model", "model: field required (you must provide a model parameter)");
    if (!json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0)
        FAIL("model", "model: must be a non-empty string");
    out->model = sg_xstrdup(json_object_get_string(v));

    if (opt_bool(root, "stream", &out->stream))
        FAIL("stream", "stream: must be a boolean");

    if (api == SG_MOCK_API_OPENAI) {
        int64_t a, b;
        if (opt_pos_int(root, "max_tokens", &a))
            FAIL("max_tokens", "max_tokens: must be an integer >= 1");
        if (opt_pos_int(root, "max_completion_tokens", &b))
            FAIL("max_completion_tokens", "max_completion_tokens: must be an integer >= 1");
        out->max_tokens = a < 0 ? b : (b < 0 ? a : SG_MIN(a, b));
        if (json_object_object_get_ex(root, "stream_options", &v) && v) {
            if (!json_object_is_type(v, json_type_object))
                FAIL("stream_options", "stream_options: must be an object");
            if (opt_bool(v, "include_usage", &out->include_usage))
                FAIL("stream_options.include_usage",
                     "stream_options.include_usage: must be a boolean");
        }
    } else {
        if (!json_object_object_get_ex(root, "max_tokens", &v) || !v)
            FAIL("max_tokens", "max_tokens: field required");
        if (opt_pos_int(root, "max_tokens", &out->max_tokens))
            FAIL("max_tokens", "max_tokens: must be an integer >= 1");
        if (json_object_object_get_ex(root, "system", &v) && v) {
            if (!json_object_is_type(v, json_type_string) &&
                !json_object_is_type(v, json_type_array))
                FAIL("system", "system: must be a string or an array of text blocks");
            count_part(out, v);
        }
    }

    if (parse_tools(api, root, out, err, errn, param, paramn))
        goto fail;
    if (sg_mock_thinking_parse(api, root, body, len, out, err, errn, param, paramn))
        goto fail;

    if (!json_object_object_get_ex(root, "messages", &v) || !v)
        FAIL("messages", "messages: field required");
    if (!json_object_is_type(v, json_type_array))
        FAIL("messages", "messages: must be an array");
    size_t n = json_object_array_length(v);
    if (n == 0)
        FAIL("messages", "messages: must hold at least one message");
    for (size_t i = 0; i < n; i++) {
        struct json_object *msg = json_object_array_get_idx(v, i), *role, *content = NULL;
        if (!json_object_is_type(msg, json_type_object))
            FAIL("messages", "messages[%zu]: must be an object", i);
        if (!json_object_object_get_ex(msg, "role", &role) ||
            !json_object_is_type(role, json_type_string))
            FAIL("messages", "messages[%zu].role: field required (a string)", i);
        if (!role_allowed(api, json_object_get_string(role)))
            FAIL("messages", "messages[%zu].role: '%s' is not a valid role%s", i,
                 json_object_get_string(role),
                 api == SG_MOCK_API_ANTHROPIC ? " (user or assistant; the system prompt is the "
                                                "top-level system field)"
                                              : "");
        json_object_object_get_ex(msg, "content", &content);
        if (content && !json_object_is_type(content, json_type_string) &&
            !json_object_is_type(content, json_type_array))
            FAIL("messages", "messages[%zu].content: must be a string or an array", i);
        if (api == SG_MOCK_API_ANTHROPIC && !content)
            FAIL("messages", "messages[%zu].content: field required", i);
        if (sg_mock_check_parts(api, json_object_get_string(role), content, i, err, errn)) {
            snprintf(param, paramn, "messages");
            goto fail;
        }
        count_part(out, content);
    }
    out->n_messages = (uint32_t)n;
    json_object_put(root);
    return 0;
fail:
    json_object_put(root);
    sg_mock_chat_dispose(out);
    return SG_EINVAL;
}

#undef FAIL

void sg_mock_chat_dispose(struct sg_mock_chat *c)
{
    free(c->model);
    c->model = NULL;
    free(c->input);
    c->input = NULL;
}

void sg_mock_answer_init(struct sg_mock_answer *a, const struct sg_mock_chat *c, const char *name,
                         const char *model, const char *id, uint64_t created, uint32_t reply_tokens)
{
    if (reply_tokens == 0)
        reply_tokens = SG_MOCK_REPLY_TOKENS;
    memset(a, 0, sizeof *a);
    a->api = c->api;
    a->name = name;
    a->model = model ? model : c->model;
    a->id = id;
    a->created = created;
    a->input_tokens = c->input_tokens;
    a->output_tokens = reply_tokens;
    if (c->max_tokens > 0 && (uint64_t)c->max_tokens < reply_tokens) {
        a->output_tokens = (uint32_t)c->max_tokens;
        a->truncated = true;
    }
    a->include_usage = c->include_usage;
    a->prompt_hash = c->prompt_hash;
    a->n_calls = c->n_calls;
    a->input = c->input;
    memcpy(a->calls, c->calls, sizeof a->calls);
    if (a->n_calls) {
        /* One output token per stream event of the calls (a call's start, its pieces, and for
         * Anthropic its stop); max_tokens does not cut a tool call. */
        a->output_tokens =
            a->n_calls * (SG_MOCK_ARG_PIECES + (a->api == SG_MOCK_API_ANTHROPIC ? 2 : 1));
        a->truncated = false;
    }
    /* Thinking comes first and counts in max_tokens (Anthropic's budget is below it; OpenAI's
     * max_completion_tokens covers reasoning): at least one text token stays. */
    a->redacted = c->redacted;
    a->thinking_tokens = c->thinking_tokens;
    if (a->thinking_tokens && c->max_tokens > 0) {
        uint64_t max = (uint64_t)c->max_tokens;
        a->thinking_tokens = (uint32_t)SG_MIN(a->thinking_tokens, max - 1);
        if ((uint64_t)a->output_tokens + a->thinking_tokens > max) {
            a->output_tokens = (uint32_t)(max - a->thinking_tokens);
            a->truncated = true;
        }
    }
}

int sg_mock_tool_args(struct sg_buf *out, const struct sg_mock_answer *a, uint32_t k)
{
    if (a->input && k == 0)
        return sg_buf_appends(out, a->input); /* a call forced by name fits its schema */
    int rc = sg_buf_appends(out, "{\"mock\":\"");
    if (!rc)
        rc = sg_buf_append_json_str(out, a->name, strlen(a->name));
    /* Non-ASCII text, so a client that splits the pieces by bytes shows it. */
    if (!rc)
        rc = sg_buf_appendf(out,
                            "\",\"call\":%" PRIu32 ",\"text\":\"Gr\xc3\xbc\xc3\x9f"
                            "e \xf0\x9f\x98\x80\"}",
                            k);
    return rc;
}

int sg_mock_tool_args_piece(struct sg_buf *out, const struct sg_mock_answer *a, uint32_t k,
                            uint32_t j)
{
    struct sg_buf all;
    sg_buf_init(&all, 0);
    int rc = sg_mock_tool_args(&all, a, k);
    size_t cut[SG_MOCK_ARG_PIECES + 1];
    for (uint32_t i = 0; !rc && i <= SG_MOCK_ARG_PIECES; i++) {
        size_t c = all.len * i / SG_MOCK_ARG_PIECES;
        while (c < all.len && ((unsigned char)all.data[c] & 0xc0) == 0x80)
            c++; /* never inside a character */
        cut[i] = c;
    }
    if (!rc && j < SG_MOCK_ARG_PIECES)
        rc = sg_buf_append(out, all.data + cut[j], cut[j + 1] - cut[j]);
    sg_buf_dispose(&all);
    return rc;
}

/* The id of tool call k: OpenAI's call_..., Anthropic's toolu_..., from the answer's id. */
static void tool_id(char *out, size_t n, const struct sg_mock_answer *a, uint32_t k)
{
    const char *dash = strpbrk(a->id, "-_");
    snprintf(out, n, "%s%.24s%" PRIu32, a->api == SG_MOCK_API_OPENAI ? "call_" : "toolu_",
             dash ? dash + 1 : a->id, k);
}

void sg_mock_answer_cache(struct sg_mock_answer *a, uint64_t prefix_tokens, bool hit)
{
    prefix_tokens = SG_MIN(prefix_tokens, a->input_tokens);
    a->input_tokens -= prefix_tokens;
    if (hit)
        a->cache_read_tokens += prefix_tokens;
    else
        a->cache_creation_tokens += prefix_tokens;
}

static const char *const lorem[] = {
    "lorem",      "ipsum",        "dolor",
    "sit",        "amet",         "consectetur",
    "adipiscing", "elit",         "sed",
    "do",         "eiusmod",      "tempor",
    "incididunt", "ut",           "labore",
    "et",         "dolore",       "magna",
    "aliqua",     "enim",         "ad",
    "minim",      "veniam",       "quis",
    "nostrud",    "exercitation", "ullamco",
    "laboris",    "nisi",         "aliquip",
    "ex",         "ea",           "commodo",
    "consequat",  "duis",         "aute",
    "irure",      "in",           "reprehenderit",
    "voluptate",  "velit",        "esse",
};

int sg_mock_reply_token(struct sg_buf *out, const struct sg_mock_answer *a, uint32_t i)
{
    switch (i) {
    case 0: return sg_buf_appends(out, "Mock");
    case 1: return sg_buf_appends(out, " answer");
    case 2: return sg_buf_appends(out, " from");
    case 3: return sg_buf_appendf(out, " %s:", a->name);
    default: {
        /* The prompt picks where in the word list the answer starts, so two prompts get two
         * different answers (a cache mix-up shows) and one prompt always gets the same one. */
        size_t w = (size_t)((a->prompt_hash % SG_ARRAY_LEN(lorem)) + (i - 4)) % SG_ARRAY_LEN(lorem);
        bool last = i + 1 == a->output_tokens && !a->truncated; /* a cut answer has no stop */
        return sg_buf_appendf(out, " %s%s", lorem[w], last ? "." : "");
    }
    }
}

int sg_mock_thinking_token(struct sg_buf *out, const struct sg_mock_answer *a, uint32_t i)
{
    switch (i) {
    case 0: return sg_buf_appends(out, "Thinking");
    case 1: return sg_buf_appends(out, " it");
    case 2: return sg_buf_appends(out, " over");
    case 3: return sg_buf_appendf(out, " for %s:", a->name);
    default: {
        size_t w =
            (size_t)((a->prompt_hash / 7 % SG_ARRAY_LEN(lorem)) + (i - 4)) % SG_ARRAY_LEN(lorem);
        return sg_buf_appendf(out, " %s%s", lorem[w], i + 1 == a->thinking_tokens ? "." : "");
    }
    }
}

int sg_mock_thinking_text(struct sg_buf *out, const struct sg_mock_answer *a)
{
    for (uint32_t i = 0; i < a->thinking_tokens; i++) {
        int rc = sg_mock_thinking_token(out, a, i);
        if (rc)
            return rc;
    }
    return 0;
}

int sg_mock_redacted_data(struct sg_buf *out, const struct sg_mock_answer *a)
{
    return sg_buf_appendf(out, "mockredacted-%016" PRIx64, a->prompt_hash);
}

int sg_mock_reply_text(struct sg_buf *out, const struct sg_mock_answer *a)
{
    for (uint32_t i = 0; i < a->output_tokens; i++) {
        int rc = sg_mock_reply_token(out, a, i);
        if (rc)
            return rc;
    }
    return 0;
}

/* Append `s` as a JSON string literal, quotes included. Error messages quote what a client sent
 * (a role, a field name, a key) and are cut to their buffer, maybe mid-character: the base writer
 * turns such bytes into U+FFFD, so the body stays JSON any client can parse. */
static int json_str(struct sg_buf *out, const char *s, size_t n)
{
    int rc = sg_buf_append(out, "\"", 1);
    if (!rc)
        rc = sg_buf_append_json_str(out, s, n);
    if (!rc)
        rc = sg_buf_append(out, "\"", 1);
    return rc;
}

static int json_cstr(struct sg_buf *out, const char *s)
{
    return json_str(out, s, strlen(s));
}

static int openai_usage(struct sg_buf *out, const struct sg_mock_answer *a)
{
    uint64_t output = (uint64_t)a->output_tokens + a->thinking_tokens;
    return sg_buf_appendf(out,
                          "{\"prompt_tokens\":%" PRIu64 ",\"completion_tokens\":%" PRIu64
                          ",\"total_tokens\":%" PRIu64 ",\"prompt_tokens_details\":"
                          "{\"cached_tokens\":0},\"completion_tokens_details\":"
                          "{\"reasoning_tokens\":%" PRIu32 "}}",
                          a->input_tokens, output, a->input_tokens + output, a->thinking_tokens);
}

/* The fields every OpenAI object and chunk starts with, up to and including "model". */
static int openai_prefix(struct sg_buf *out, const struct sg_mock_answer *a, const char *object)
{
    int rc = sg_buf_appends(out, "{\"id\":");
    if (!rc)
        rc = json_cstr(out, a->id);
    if (!rc)
        rc = sg_buf_appendf(out, ",\"object\":\"%s\",\"created\":%" PRIu64 ",\"model\":", object,
                            a->created);
    if (!rc)
        rc = json_cstr(out, a->model);
    return rc;
}

static int render_text_json(struct sg_buf *out, const struct sg_mock_answer *a)
{
    struct sg_buf text;
    sg_buf_init(&text, 0);
    int rc = sg_mock_reply_text(&text, a);
    if (!rc)
        rc = json_str(out, text.data ? text.data : "", text.len);
    sg_buf_dispose(&text);
    return rc;
}

static int anthropic_usage(struct sg_buf *out, const struct sg_mock_answer *a, uint32_t output)
{
    return sg_buf_appendf(out,
                          "{\"input_tokens\":%" PRIu64 ",\"cache_creation_input_tokens\":%" PRIu64
                          ",\"cache_read_input_tokens\":%" PRIu64 ",\"output_tokens\":%" PRIu32 "}",
                          a->input_tokens, a->cache_creation_tokens, a->cache_read_tokens, output);
}

/* The calls of a tool answer, whole: OpenAI's tool_calls array items, Anthropic's tool_use
 * blocks. */
static int render_calls(struct sg_buf *out, const struct sg_mock_answer *a)
{
    int rc = 0;
    char id[64];
    for (uint32_t k = 0; !rc && k < a->n_calls; k++) {
        tool_id(id, sizeof id, a, k);
        bool oa = a->api == SG_MOCK_API_OPENAI;
        rc = sg_buf_appends(out, k ? "," : "");
        if (!rc)
            rc = sg_buf_appends(out, oa ? "{\"id\":" : "{\"type\":\"tool_use\",\"id\":");
        if (!rc)
            rc = json_cstr(out, id);
        if (!rc)
            rc = sg_buf_appends(out, oa ? ",\"type\":\"function\",\"function\":{\"name\":"
                                        : ",\"name\":");
        if (!rc)
            rc = json_cstr(out, a->calls[k]);
        struct sg_buf args;
        sg_buf_init(&args, 0);
        if (!rc)
            rc = sg_mock_tool_args(&args, a, k);
        if (!rc && oa) {
            rc = sg_buf_appends(out, ",\"arguments\":");
            if (!rc)
                rc = json_str(out, args.data, args.len);
            if (!rc)
                rc = sg_buf_appends(out, "}}");
        } else if (!rc) {
            rc = sg_buf_appends(out, ",\"input\":");
            if (!rc)
                rc = sg_buf_append(out, args.data, args.len);
            if (!rc)
                rc = sg_buf_appends(out, "}");
        }
        sg_buf_dispose(&args);
    }
    return rc;
}

/* The thinking of a whole answer: OpenAI's ,"reasoning_content":"..." member, or Anthropic's
 * first block and its comma (signed thinking, or redacted_thinking). Nothing without thinking. */
static int render_thinking(struct sg_buf *out, const struct sg_mock_answer *a)
{
    if (!a->thinking_tokens)
        return 0;
    struct sg_buf t;
    sg_buf_init(&t, 0);
    int rc;
    if (a->api == SG_MOCK_API_ANTHROPIC && a->redacted) {
        rc = sg_mock_redacted_data(&t, a);
        if (!rc)
            rc = sg_buf_appends(out, "{\"type\":\"redacted_thinking\",\"data\":");
        if (!rc)
            rc = json_str(out, t.data, t.len);
        if (!rc)
            rc = sg_buf_appends(out, "},");
        sg_buf_dispose(&t);
        return rc;
    }
    rc = sg_mock_thinking_text(&t, a);
    if (!rc && a->api == SG_MOCK_API_OPENAI) {
        rc = sg_buf_appends(out, ",\"reasoning_content\":");
        if (!rc)
            rc = json_str(out, t.data, t.len);
    } else if (!rc) {
        struct sg_buf sig;
        sg_buf_init(&sig, 0);
        rc = sg_mock_thinking_signature(&sig, t.data, t.len);
        if (!rc)
            rc = sg_buf_appends(out, "{\"type\":\"thinking\",\"thinking\":");
        if (!rc)
            rc = json_str(out, t.data, t.len);
        if (!rc)
            rc = sg_buf_appends(out, ",\"signature\":");
        if (!rc)
            rc = json_str(out, sig.data, sig.len);
        if (!rc)
            rc = sg_buf_appends(out, "},");
        sg_buf_dispose(&sig);
    }
    sg_buf_dispose(&t);
    return rc;
}

/* A whole answer: its text, or the tool calls a forced tool choice asked for. */
int sg_mock_render_body(struct sg_buf *out, const struct sg_mock_answer *a)
{
    int rc;
    bool calls = a->n_calls > 0;
    if (a->api == SG_MOCK_API_OPENAI) {
        rc = openai_prefix(out, a, "chat.completion");
        if (!rc)
            rc = sg_buf_appends(out, ",\"choices\":[{\"index\":0,\"message\":{\"role\":"
                                     "\"assistant\",\"content\":");
        if (!rc && calls)
            rc = sg_buf_appends(out, "null,\"tool_calls\":[");
        if (!rc)
            rc = calls ? render_calls(out, a) : render_text_json(out, a);
        if (!rc)
            rc = render_thinking(out, a);
        if (!rc)
            rc = sg_buf_appendf(out,
                                "%s,\"refusal\":null},\"logprobs\":null,\"finish_reason\":"
                                "\"%s\"}]%s",
                                calls ? "]" : "",
                                calls          ? "tool_calls"
                                : a->truncated ? "length"
                                               : "stop",
                                a->no_usage ? "" : ",\"usage\":");
        if (!rc && !a->no_usage)
            rc = openai_usage(out, a);
        return rc ? rc : sg_buf_appends(out, ",\"system_fingerprint\":\"fp_mock\"}");
    }
    rc = sg_buf_appends(out, "{\"id\":");
    if (!rc)
        rc = json_cstr(out, a->id);
    if (!rc)
        rc = sg_buf_appends(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
    if (!rc)
        rc = json_cstr(out, a->model);
    if (!rc)
        rc = sg_buf_appends(out, ",\"content\":[");
    if (!rc)
        rc = render_thinking(out, a);
    if (!rc && !calls)
        rc = sg_buf_appends(out, "{\"type\":\"text\",\"text\":");
    if (!rc)
        rc = calls ? render_calls(out, a) : render_text_json(out, a);
    if (!rc)
        rc = sg_buf_appendf(
            out, "%s],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":", calls ? "" : "}",
            calls          ? "tool_use"
            : a->truncated ? "max_tokens"
                           : "end_turn");
    if (!rc)
        rc = anthropic_usage(out, a, a->output_tokens + a->thinking_tokens);
    return rc ? rc : sg_buf_appends(out, "}");
}

/* An OpenAI stream that carries usage: asked for, and not withheld by the no_usage fault. */
static bool stream_usage(const struct sg_mock_answer *a)
{
    return a->include_usage && !a->no_usage;
}

/* Thinking deltas a stream sends before its text: one per thinking token; a redacted block
 * comes whole in its content_block_start. */
static uint32_t thinking_events(const struct sg_mock_answer *a)
{
    return a->api == SG_MOCK_API_ANTHROPIC && a->redacted ? 0 : a->thinking_tokens;
}

void sg_mock_stream_plan(const struct sg_mock_answer *a, struct sg_mock_stream_plan *plan)
{
    plan->n_content = a->output_tokens + thinking_events(a);
    if (a->api == SG_MOCK_API_OPENAI) {
        plan->n_head = 1;                             /* the role delta */
        plan->n_tail = 2 + (stream_usage(a) ? 1 : 0); /* finish_reason, [usage], [DONE] */
    } else if (a->n_calls) {
        plan->n_head = 2; /* message_start, ping; each call has its block start and stop */
        plan->n_tail = 2; /* message_delta, message_stop */
    } else {
        plan->n_head = 3; /* message_start, content_block_start, ping */
        plan->n_tail = 3; /* content_block_stop, message_delta, message_stop */
    }
}

/* One chat.completion.chunk with `choices` (raw JSON) — usage:null rides along when the client
 * asked for usage, as OpenAI does on every chunk but the last. */
static int openai_chunk_begin(struct sg_buf *out, const struct sg_mock_answer *a)
{
    int rc = sg_buf_appends(out, "data: ");
    if (!rc)
        rc = openai_prefix(out, a, "chat.completion.chunk");
    if (!rc)
        rc = sg_buf_appends(out, ",\"system_fingerprint\":\"fp_mock\",\"choices\":");
    return rc;
}

static int openai_chunk_end(struct sg_buf *out, const struct sg_mock_answer *a)
{
    return sg_buf_appends(out, stream_usage(a) ? ",\"usage\":null}\n\n" : "}\n\n");
}

static int render_openai_event(struct sg_buf *out, const struct sg_mock_answer *a, size_t i,
                               const struct sg_mock_stream_plan *p)
{
    int rc;
    if (i == 0) {
        rc = openai_chunk_begin(out, a);
        if (!rc)
            rc = sg_buf_appends(out, a->n_calls ? "[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                                                  "\"content\":null,\"refusal\":null},"
                                                  "\"logprobs\":null,\"finish_reason\":null}]"
                                                : "[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                                                  "\"content\":\"\",\"refusal\":null},"
                                                  "\"logprobs\":null,\"finish_reason\":null}]");
        return rc ? rc : openai_chunk_end(out, a);
    }
    if (i < p->n_head + p->n_content && a->n_calls) {
        /* Call k: its start (id, name, empty arguments), then its argument pieces. */
        size_t e = i - p->n_head, per = 1 + SG_MOCK_ARG_PIECES;
        uint32_t k = (uint32_t)(e / per), j = (uint32_t)(e % per);
        rc = openai_chunk_begin(out, a);
        if (!rc)
            rc = sg_buf_appendf(out, "[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%" PRIu32,
                                k);
        if (!rc && j == 0) {
            char id[64];
            tool_id(id, sizeof id, a, k);
            rc = sg_buf_appends(out, ",\"id\":");
            if (!rc)
                rc = json_cstr(out, id);
            if (!rc)
                rc = sg_buf_appends(out, ",\"type\":\"function\",\"function\":{\"name\":");
            if (!rc)
                rc = json_cstr(out, a->calls[k]);
            if (!rc)
                rc = sg_buf_appends(out, ",\"arguments\":\"\"}");
        } else if (!rc) {
            struct sg_buf piece;
            sg_buf_init(&piece, 0);
            rc = sg_mock_tool_args_piece(&piece, a, k, j - 1);
            if (!rc)
                rc = sg_buf_appends(out, ",\"function\":{\"arguments\":");
            if (!rc)
                rc = json_str(out, piece.data ? piece.data : "", piece.len);
            if (!rc)
                rc = sg_buf_appends(out, "}");
            sg_buf_dispose(&piece);
        }
        if (!rc)
            rc = sg_buf_appends(out, "}]},\"logprobs\":null,\"finish_reason\":null}]");
        return rc ? rc : openai_chunk_end(out, a);
    }
    if (i < p->n_head + p->n_content) {
        struct sg_buf tok;
        sg_buf_init(&tok, 0);
        uint32_t k = (uint32_t)(i - p->n_head), t = a->thinking_tokens;
        rc = k < t ? sg_mock_thinking_token(&tok, a, k) : sg_mock_reply_token(&tok, a, k - t);
        if (!rc)
            rc = openai_chunk_begin(out, a);
        if (!rc)
            rc = sg_buf_appends(out, k < t ? "[{\"index\":0,\"delta\":{\"reasoning_content\":"
                                           : "[{\"index\":0,\"delta\":{\"content\":");
        if (!rc)
            rc = json_str(out, tok.data, tok.len);
        if (!rc)
            rc = sg_buf_appends(out, "},\"logprobs\":null,\"finish_reason\":null}]");
        sg_buf_dispose(&tok);
        return rc ? rc : openai_chunk_end(out, a);
    }
    size_t t = i - p->n_head - p->n_content;
    if (t == 0) {
        rc = openai_chunk_begin(out, a);
        if (!rc)
            rc = sg_buf_appendf(out,
                                "[{\"index\":0,\"delta\":{},\"logprobs\":null,"
                                "\"finish_reason\":\"%s\"}]",
                                a->n_calls     ? "tool_calls"
                                : a->truncated ? "length"
                                               : "stop");
        return rc ? rc : openai_chunk_end(out, a);
    }
    if (t == 1 && stream_usage(a)) {
        rc = openai_chunk_begin(out, a);
        if (!rc)
            rc = sg_buf_appends(out, "[],\"usage\":");
        if (!rc)
            rc = openai_usage(out, a);
        return rc ? rc : sg_buf_appends(out, "}\n\n");
    }
    return sg_buf_appends(out, "data: [DONE]\n\n");
}

static int anthropic_event(struct sg_buf *out, const char *type)
{
    return sg_buf_appendf(out, "event: %s\ndata: {\"type\":\"%s\"", type, type);
}

static int render_anthropic_event(struct sg_buf *out, const struct sg_mock_answer *a, size_t i,
                                  const struct sg_mock_stream_plan *p)
{
    int rc = 0;
    if (i == 0) {
        rc = anthropic_event(out, "message_start");
        if (!rc)
            rc = sg_buf_appends(out, ",\"message\":{\"id\":");
        if (!rc)
            rc = json_cstr(out, a->id);
        if (!rc)
            rc = sg_buf_appends(out, ",\"type\":\"message\",\"role\":\"assistant\",\"model\":");
        if (!rc)
            rc = json_cstr(out, a->model);
        if (!rc)
            rc = sg_buf_appends(out, ",\"content\":[],\"stop_reason\":null,"
                                     "\"stop_sequence\":null,\"usage\":");
        /* Anthropic reports the input in message_start and one output token so far. */
        if (!rc)
            rc = anthropic_usage(out, a, 1);
        return rc ? rc : sg_buf_appends(out, "}}\n\n");
    }
    if (a->n_calls && i == 1) {
        rc = anthropic_event(out, "ping");
        return rc ? rc : sg_buf_appends(out, "}\n\n");
    }
    if (a->n_calls && i < p->n_head + p->n_content) {
        /* Call k is block k: its start (input {}), its input_json_delta pieces, its stop. */
        size_t e = i - p->n_head, per = 2 + SG_MOCK_ARG_PIECES;
        uint32_t k = (uint32_t)(e / per), j = (uint32_t)(e % per);
        if (j == 0) {
            char id[64];
            tool_id(id, sizeof id, a, k);
            rc = anthropic_event(out, "content_block_start");
            if (!rc)
                rc = sg_buf_appendf(out,
                                    ",\"index\":%" PRIu32 ",\"content_block\":{\"type\":"
                                    "\"tool_use\",\"id\":",
                                    k);
            if (!rc)
                rc = json_cstr(out, id);
            if (!rc)
                rc = sg_buf_appends(out, ",\"name\":");
            if (!rc)
                rc = json_cstr(out, a->calls[k]);
            return rc ? rc : sg_buf_appends(out, ",\"input\":{}}}\n\n");
        }
        if (j == per - 1) {
            rc = anthropic_event(out, "content_block_stop");
            return rc ? rc : sg_buf_appendf(out, ",\"index\":%" PRIu32 "}\n\n", k);
        }
        struct sg_buf piece;
        sg_buf_init(&piece, 0);
        rc = sg_mock_tool_args_piece(&piece, a, k, j - 1);
        if (!rc)
            rc = anthropic_event(out, "content_block_delta");
        if (!rc)
            rc = sg_buf_appendf(out,
                                ",\"index\":%" PRIu32 ",\"delta\":{\"type\":\"input_json_delta\","
                                "\"partial_json\":",
                                k);
        if (!rc)
            rc = json_str(out, piece.data ? piece.data : "", piece.len);
        sg_buf_dispose(&piece);
        return rc ? rc : sg_buf_appends(out, "}}\n\n");
    }
    if (a->n_calls && i == p->n_head + p->n_content) {
        rc = anthropic_event(out, "message_delta");
        return rc ? rc
                  : sg_buf_appendf(
                        out,
                        ",\"delta\":{\"stop_reason\":\"tool_use\",\"stop_sequence\":null},"
                        "\"usage\":{\"output_tokens\":%" PRIu32 "}}\n\n",
                        a->output_tokens);
    }
    if (a->n_calls) {
        rc = anthropic_event(out, "message_stop");
        return rc ? rc : sg_buf_appends(out, "}\n\n");
    }
    uint32_t te = thinking_events(a), ti = a->thinking_tokens ? 1 : 0; /* the text's index */
    if (i == 1 && a->thinking_tokens && a->redacted) {
        struct sg_buf d;
        sg_buf_init(&d, 0);
        rc = sg_mock_redacted_data(&d, a);
        if (!rc)
            rc = anthropic_event(out, "content_block_start");
        if (!rc)
            rc = sg_buf_appends(out, ",\"index\":0,\"content_block\":{\"type\":"
                                     "\"redacted_thinking\",\"data\":");
        if (!rc)
            rc = json_str(out, d.data, d.len);
        if (!rc)
            rc = sg_buf_appends(out, "}}\n\n");
        if (!rc)
            rc = anthropic_event(out, "content_block_stop");
        sg_buf_dispose(&d);
        return rc ? rc : sg_buf_appends(out, ",\"index\":0}\n\n");
    }
    if (i == 1) {
        rc = anthropic_event(out, "content_block_start");
        return rc ? rc
               : a->thinking_tokens
                   ? sg_buf_appends(out, ",\"index\":0,\"content_block\":{\"type\":\"thinking\","
                                         "\"thinking\":\"\",\"signature\":\"\"}}\n\n")
                   : sg_buf_appends(out, ",\"index\":0,\"content_block\":{\"type\":\"text\","
                                         "\"text\":\"\"}}\n\n");
    }
    if (i >= p->n_head && i < p->n_head + te) {
        struct sg_buf tok;
        sg_buf_init(&tok, 0);
        rc = sg_mock_thinking_token(&tok, a, (uint32_t)(i - p->n_head));
        if (!rc)
            rc = anthropic_event(out, "content_block_delta");
        if (!rc)
            rc = sg_buf_appends(out, ",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
                                     "\"thinking\":");
        if (!rc)
            rc = json_str(out, tok.data, tok.len);
        sg_buf_dispose(&tok);
        return rc ? rc : sg_buf_appends(out, "}}\n\n");
    }
    if (i == p->n_head + te && a->thinking_tokens) {
        /* The thinking ends (its signature, its stop) and the text block opens before the
         * first text token. */
        if (!a->redacted) {
            struct sg_buf t, sig;
            sg_buf_init(&t, 0);
            sg_buf_init(&sig, 0);
            rc = sg_mock_thinking_text(&t, a);
            if (!rc)
                rc = sg_mock_thinking_signature(&sig, t.data, t.len);
            if (!rc)
                rc = anthropic_event(out, "content_block_delta");
            if (!rc)
                rc = sg_buf_appends(out, ",\"index\":0,\"delta\":{\"type\":\"signature_delta\","
                                         "\"signature\":");
            if (!rc)
                rc = json_str(out, sig.data, sig.len);
            if (!rc)
                rc = sg_buf_appends(out, "}}\n\n");
            if (!rc)
                rc = anthropic_event(out, "content_block_stop");
            if (!rc)
                rc = sg_buf_appends(out, ",\"index\":0}\n\n");
            sg_buf_dispose(&t);
            sg_buf_dispose(&sig);
        }
        rc = rc ? rc : anthropic_event(out, "content_block_start");
        if (!rc)
            rc = sg_buf_appends(out, ",\"index\":1,\"content_block\":{\"type\":\"text\","
                                     "\"text\":\"\"}}\n\n");
        if (rc)
            return rc;
    }
    if (i == 2) {
        rc = anthropic_event(out, "ping");
        return rc ? rc : sg_buf_appends(out, "}\n\n");
    }
    if (i < p->n_head + p->n_content) {
        struct sg_buf tok;
        sg_buf_init(&tok, 0);
        rc = sg_mock_reply_token(&tok, a, (uint32_t)(i - p->n_head - te));
        if (!rc)
            rc = anthropic_event(out, "content_block_delta");
        if (!rc)
            rc = sg_buf_appendf(out,
                                ",\"index\":%" PRIu32 ",\"delta\":{\"type\":\"text_delta\","
                                "\"text\":",
                                ti);
        if (!rc)
            rc = json_str(out, tok.data, tok.len);
        sg_buf_dispose(&tok);
        return rc ? rc : sg_buf_appends(out, "}}\n\n");
    }
    size_t t = i - p->n_head - p->n_content;
    if (t == 0) {
        rc = anthropic_event(out, "content_block_stop");
        return rc ? rc : sg_buf_appendf(out, ",\"index\":%" PRIu32 "}\n\n", ti);
    }
    if (t == 1) {
        rc = anthropic_event(out, "message_delta");
        if (!rc)
            rc = sg_buf_appendf(out,
                                ",\"delta\":{\"stop_reason\":\"%s\",\"stop_sequence\":null},"
                                "\"usage\":{\"output_tokens\":%" PRIu32 "}}\n\n",
                                a->truncated ? "max_tokens" : "end_turn",
                                a->output_tokens + a->thinking_tokens);
        return rc;
    }
    rc = anthropic_event(out, "message_stop");
    return rc ? rc : sg_buf_appends(out, "}\n\n");
}

int sg_mock_render_event(struct sg_buf *out, const struct sg_mock_answer *a, size_t i)
{
    struct sg_mock_stream_plan p;
    sg_mock_stream_plan(a, &p);
    if (i >= p.n_head + p.n_content + p.n_tail)
        return SG_EINVAL;
    size_t start = out->len;
    int rc = a->api == SG_MOCK_API_OPENAI ? render_openai_event(out, a, i, &p)
                                          : render_anthropic_event(out, a, i, &p);
    if (rc && out->data) {
        out->len = start; /* a failed event leaves nothing half-written */
        out->data[start] = '\0';
    }
    return rc;
}

struct error_kind {
    int status;
    const char *openai_type;
    const char *openai_code;
    const char *anthropic_type;
    const char *message;
};

/* The table mirrors what each provider documents for the status; the message says it's a mock. */
static const struct error_kind error_kinds[] = {
    {400, "invalid_request_error", NULL, "invalid_request_error", "Invalid request."},
    {401, "invalid_request_error", "invalid_api_key", "authentication_error",
     "Incorrect API key provided."},
    {403, "permission_error", "permission_denied", "permission_error",
     "Your API key does not have permission to use the specified resource."},
    {404, "invalid_request_error", "model_not_found", "not_found_error",
     "The model does not exist or you do not have access to it."},
    {408, "timeout", "timeout", "timeout_error", "Request timed out."},
    {413, "invalid_request_error", "request_too_large", "request_too_large",
     "Request exceeds the maximum allowed number of bytes."},
    {429, "requests", "rate_limit_exceeded", "rate_limit_error",
     "Rate limit reached for requests. Please try again later."},
    {500, "server_error", NULL, "api_error",
     "The server had an error while processing your request."},
    {502, "server_error", "bad_gateway", "api_error", "Bad gateway."},
    {503, "server_error", "service_unavailable", "overloaded_error",
     "The server is overloaded or not ready yet."},
    {504, "timeout", "timeout", "timeout_error", "The server timed out."},
    {529, "server_error", "overloaded", "overloaded_error", "Overloaded."},
};

int sg_mock_render_error(struct sg_buf *out, enum sg_mock_api api, int status, const char *code,
                         const char *param, const char *message)
{
    const struct error_kind *k = NULL;
    for (size_t i = 0; i < SG_ARRAY_LEN(error_kinds); i++)
        if (error_kinds[i].status == status)
            k = &error_kinds[i];
    struct error_kind generic = {status, status < 500 ? "invalid_request_error" : "server_error",
                                 NULL, status < 500 ? "invalid_request_error" : "api_error",
                                 status < 500 ? "The request was rejected." : "Server error."};
    if (!k)
        k = &generic;
    if (!message)
        message = k->message;
    int rc;
    if (api == SG_MOCK_API_ANTHROPIC) {
        rc = sg_buf_appendf(
            out, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",\"message\":", k->anthropic_type);
        if (!rc)
            rc = json_cstr(out, message);
        return rc ? rc : sg_buf_appends(out, "}}");
    }
    if (!code)
        code = k->openai_code;
    rc = sg_buf_appends(out, "{\"error\":{\"message\":");
    if (!rc)
        rc = json_cstr(out, message);
    if (!rc)
        rc = sg_buf_appendf(out, ",\"type\":\"%s\",\"param\":", k->openai_type);
    if (!rc)
        rc = param && *param ? json_cstr(out, param) : sg_buf_appends(out, "null");
    if (!rc)
        rc = sg_buf_appends(out, ",\"code\":");
    if (!rc)
        rc = code ? json_cstr(out, code) : sg_buf_appends(out, "null");
    return rc ? rc : sg_buf_appends(out, "}}");
}
