/* Unit tests for the mock provider: wire formats, token estimate, faults and the decision, and
 * (when the http server is built in) one real request over a loopback socket. */
#include "mock/mock.h"

#include <arpa/inet.h>
#include <json-c/json.h>
#include <math.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

/* ---- helpers ---- */

static struct json_object *parse_ok(const char *s, size_t n)
{
    char err[256];
    struct json_object *o = sg_mock_json_parse(s, n, err, sizeof err);
    if (!o)
        fail_msg("JSON did not parse (%s): %.*s", err, (int)n, s);
    return o;
}

static struct json_object *at(struct json_object *o, const char *path)
{
    /* A dotted path; numbers index arrays: "choices.0.message.content". */
    char buf[256];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *save = NULL, *tok = strtok_r(buf, ".", &save); tok;
         tok = strtok_r(NULL, ".", &save)) {
        if (!o)
            fail_msg("path %s: hit null before %s", path, tok);
        if (json_object_is_type(o, json_type_array))
            o = json_object_array_get_idx(o, (size_t)atoi(tok));
        else if (!json_object_object_get_ex(o, tok, &o))
            fail_msg("path %s: no field %s", path, tok);
    }
    return o;
}

static const char *str_at(struct json_object *o, const char *path)
{
    struct json_object *v = at(o, path);
    if (!json_object_is_type(v, json_type_string))
        fail_msg("path %s: not a string", path);
    return json_object_get_string(v);
}

static int64_t int_at(struct json_object *o, const char *path)
{
    struct json_object *v = at(o, path);
    if (!json_object_is_type(v, json_type_int))
        fail_msg("path %s: not an integer", path);
    return json_object_get_int64(v);
}

static void parse_chat(enum sg_mock_api api, const char *body, struct sg_mock_chat *c)
{
    char err[256], param[64];
    int rc = sg_mock_chat_parse(api, body, strlen(body), c, err, sizeof err, param, sizeof param);
    if (rc)
        fail_msg("chat did not parse: %s", err);
}

static void parse_chat_fails(enum sg_mock_api api, const char *body, const char *want_param,
                             const char *want_in_msg)
{
    char err[256], param[64];
    struct sg_mock_chat c;
    int rc = sg_mock_chat_parse(api, body, strlen(body), &c, err, sizeof err, param, sizeof param);
    assert_int_equal(rc, SG_EINVAL);
    assert_string_equal(param, want_param);
    if (!strstr(err, want_in_msg))
        fail_msg("message '%s' lacks '%s'", err, want_in_msg);
    assert_null(c.model);
}

/* ---- JSON parsing ---- */

static void test_json_parse_strict(void **state)
{
    (void)state;
    char err[256];
    struct json_object *o = parse_ok("{\"a\":1}  \r\n", 11);
    json_object_put(o);
    /* Not listed: {'a':1}. json-c 0.16 accepts single-quoted keys even in strict mode. */
    static const char *bad[] = {
        "",
        "{\"a\":1} x",
        "{\"a\":1}{}",
        "{\"a\":NaN}",
        "{\"a\":Infinity}",
        "{\"a\":'x'}",
        "{\"a\":1,}",
        "{\"a\":\"\xff\"}",
        "[1,2",
        "{\"a\":1}\0",
        /* json-c's own UTF-8 check passes these three: overlong, a surrogate, past U+10FFFF */
        "{\"a\":\"\xc1\xa9\"}",
        "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xf4\x90\x80\x80\"}",
    };
    static const size_t lens[] = {0, 9, 9, 9, 14, 9, 8, 8, 4, 8, 10, 11, 12};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o = sg_mock_json_parse(bad[i], lens[i], err, sizeof err);
        if (o)
            fail_msg("accepted bad JSON #%zu", i);
        assert_true(strlen(err) > 0);
    }
    /* A top-level number is whole at the end of the body: "2" used to be refused as "unexpected
     * end of input" while "2 " parsed, and a body of 5 sent to /_mock/faults was "not valid
     * JSON" rather than "not an object". A number cut short is still refused. */
    o = parse_ok("2", 1);
    assert_int_equal(json_object_get_int(o), 2);
    json_object_put(o);
    o = parse_ok("-1.5e3", 6);
    assert_true(json_object_get_double(o) == -1500);
    json_object_put(o);
    assert_null(sg_mock_json_parse("-", 1, err, sizeof err));
    assert_null(sg_mock_json_parse("1e", 2, err, sizeof err));
    struct sg_mock_faults f = {0};
    assert_int_equal(sg_mock_faults_merge(&f, "5", 1, err, sizeof err), SG_EINVAL);
    assert_string_equal(err, "the faults must be a JSON object");
    /* Nesting: 64 levels pass, 65 do not. */
    char deep[200];
    for (int depth = 64; depth <= 65; depth++) {
        size_t n = 0;
        for (int i = 0; i < depth; i++)
            deep[n++] = '[';
        for (int i = 0; i < depth; i++)
            deep[n++] = ']';
        o = sg_mock_json_parse(deep, n, err, sizeof err);
        if (depth == 64)
            assert_non_null(o);
        else
            assert_null(o);
        json_object_put(o);
    }
}

/* ---- request parsing and the token estimate ---- */

static void test_count_tokens(void **state)
{
    (void)state;
    assert_int_equal(sg_mock_count_tokens(0), 4);
    assert_int_equal(sg_mock_count_tokens(1), 5);
    assert_int_equal(sg_mock_count_tokens(4), 5);
    assert_int_equal(sg_mock_count_tokens(5), 6);
    assert_int_equal(sg_mock_count_tokens(400), 104);
}

static void test_parse_openai(void **state)
{
    (void)state;
    struct sg_mock_chat c;
    /* "You are terse." = 14 bytes -> 4+4; "Hello" = 5 -> 2+4; parts "ab"+"cdef" = 6 -> 2+4. */
    parse_chat(SG_MOCK_API_OPENAI,
               "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":"
               "\"You are terse.\"},{\"role\":\"user\",\"content\":\"Hello\"},{\"role\":\"user\","
               "\"content\":[{\"type\":\"text\",\"text\":\"ab\"},{\"type\":\"text\",\"text\":"
               "\"cdef\"}]}],\"stream\":true,\"stream_options\":{\"include_usage\":true},"
               "\"max_tokens\":50,\"max_completion_tokens\":7}",
               &c);
    assert_string_equal(c.model, "gpt-4o-mini");
    assert_true(c.stream);
    assert_true(c.include_usage);
    assert_int_equal(c.max_tokens, 7);
    assert_int_equal(c.n_messages, 3);
    assert_int_equal(c.input_tokens, 8 + 6 + 6);
    sg_mock_chat_dispose(&c);

    /* Defaults; an assistant message with null content (tool calls) counts 4. */
    parse_chat(SG_MOCK_API_OPENAI,
               "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"},"
               "{\"role\":\"assistant\",\"content\":null}],\"stream\":null}",
               &c);
    assert_false(c.stream);
    assert_false(c.include_usage);
    assert_int_equal(c.max_tokens, -1);
    assert_int_equal(c.input_tokens, 5 + 4);
    sg_mock_chat_dispose(&c);
}

static void test_parse_anthropic(void **state)
{
    (void)state;
    struct sg_mock_chat c;
    /* system "Be brief" = 8 -> 2+4; "What is 2+2?" = 12 -> 3+4; blocks "abcdefghi" = 9 -> 3+4. */
    parse_chat(SG_MOCK_API_ANTHROPIC,
               "{\"model\":\"claude-x\",\"max_tokens\":1024,\"system\":[{\"type\":\"text\","
               "\"text\":\"Be brief\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
               "\"messages\":[{\"role\":\"user\",\"content\":\"What is 2+2?\"},{\"role\":"
               "\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"abcdefghi\"}]}]}",
               &c);
    assert_string_equal(c.model, "claude-x");
    assert_int_equal(c.max_tokens, 1024);
    assert_false(c.stream);
    assert_int_equal(c.input_tokens, 6 + 7 + 7);
    /* The system prompt is marked: it is the cacheable prefix. */
    assert_int_equal(c.cache_prefix_tokens, 6);
    uint64_t system_only_hash = c.cache_prefix_hash;
    sg_mock_chat_dispose(&c);

    /* A marker in the second message moves the prefix end there; same system, same hash start. */
    parse_chat(SG_MOCK_API_ANTHROPIC,
               "{\"model\":\"claude-x\",\"max_tokens\":1024,\"system\":[{\"type\":\"text\","
               "\"text\":\"Be brief\",\"cache_control\":{\"type\":\"ephemeral\"}}],"
               "\"messages\":[{\"role\":\"user\",\"content\":\"What is 2+2?\"},{\"role\":"
               "\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"abcdefghi\","
               "\"cache_control\":{\"type\":\"ephemeral\"}}]},{\"role\":\"user\",\"content\":"
               "\"more\"}]}",
               &c);
    assert_int_equal(c.input_tokens, 6 + 7 + 7 + 5);
    assert_int_equal(c.cache_prefix_tokens, 6 + 7 + 7);
    assert_true(c.cache_prefix_hash != system_only_hash);
    sg_mock_chat_dispose(&c);

    /* No marker, no prefix. */
    parse_chat(SG_MOCK_API_ANTHROPIC,
               "{\"model\":\"c\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
               "\"content\":\"x\"}]}",
               &c);
    assert_int_equal(c.cache_prefix_tokens, 0);
    sg_mock_chat_dispose(&c);
}

static void test_parse_errors(void **state)
{
    (void)state;
    parse_chat_fails(SG_MOCK_API_OPENAI, "[1]", "", "JSON object");
    parse_chat_fails(SG_MOCK_API_OPENAI, "{\"model\":", "", "not valid JSON");
    parse_chat_fails(SG_MOCK_API_OPENAI, "{\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                     "model", "model");
    parse_chat_fails(SG_MOCK_API_OPENAI, "{\"model\":\"m\"}", "messages", "required");
    parse_chat_fails(SG_MOCK_API_OPENAI, "{\"model\":\"m\",\"messages\":[]}", "messages",
                     "at least one");
    parse_chat_fails(SG_MOCK_API_OPENAI,
                     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                     "\"stream\":\"yes\"}",
                     "stream", "boolean");
    parse_chat_fails(SG_MOCK_API_OPENAI,
                     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                     "\"max_tokens\":0}",
                     "max_tokens", ">= 1");
    parse_chat_fails(SG_MOCK_API_OPENAI, "{\"model\":\"m\",\"messages\":[{\"role\":\"robot\"}]}",
                     "messages", "robot");
    parse_chat_fails(SG_MOCK_API_ANTHROPIC,
                     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}",
                     "max_tokens", "required");
    parse_chat_fails(SG_MOCK_API_ANTHROPIC,
                     "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\","
                     "\"content\":\"x\"}]}",
                     "messages", "top-level system");
}

/* ---- rendering ---- */

static void answer_for(struct sg_mock_answer *a, struct sg_mock_chat *c, enum sg_mock_api api,
                       const char *body, const char *model_override, uint32_t reply_tokens)
{
    parse_chat(api, body, c);
    sg_mock_answer_init(a, c, "provider-a", model_override,
                        api == SG_MOCK_API_OPENAI ? "chatcmpl-test1" : "msg_test1", 1700000000,
                        reply_tokens);
}

static const char *openai_req = "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
                                "\"content\":\"Hello\"}]}";

static void test_reply_text(void **state)
{
    (void)state;
    struct sg_mock_chat c;
    struct sg_mock_answer a;
    answer_for(&a, &c, SG_MOCK_API_OPENAI, openai_req, NULL, 0);
    assert_int_equal(a.output_tokens, SG_MOCK_REPLY_TOKENS);
    struct sg_buf t;
    sg_buf_init(&t, 0);
    assert_int_equal(sg_mock_reply_text(&t, &a), 0);
    assert_true(strncmp(t.data, "Mock answer from provider-a: ", 29) == 0);
    /* One word per token: the spaces count the tokens. */
    size_t words = 1;
    for (size_t i = 0; i < t.len; i++)
        words += t.data[i] == ' ';
    assert_int_equal(words, SG_MOCK_REPLY_TOKENS);
    assert_int_equal(t.data[t.len - 1], '.');
    /* The same prompt gives the same text; another prompt another one. */
    struct sg_buf t2;
    sg_buf_init(&t2, 0);
    sg_mock_reply_text(&t2, &a);
    assert_string_equal(t.data, t2.data);
    struct sg_mock_chat c2;
    struct sg_mock_answer a2;
    answer_for(&a2, &c2, SG_MOCK_API_OPENAI,
               "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Bye\"}]}", NULL, 0);
    sg_buf_reset(&t2);
    sg_mock_reply_text(&t2, &a2);
    assert_string_not_equal(t.data, t2.data);
    sg_buf_dispose(&t);
    sg_buf_dispose(&t2);
    sg_mock_chat_dispose(&c);
    sg_mock_chat_dispose(&c2);
}

static void test_render_openai_body(void **state)
{
    (void)state;
    struct sg_mock_chat c;
    struct sg_mock_answer a;
    answer_for(&a, &c, SG_MOCK_API_OPENAI, openai_req, NULL, 0);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_mock_render_body(&b, &a), 0);
    struct json_object *o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "id"), "chatcmpl-test1");
    assert_string_equal(str_at(o, "object"), "chat.completion");
    assert_int_equal(int_at(o, "created"), 1700000000);
    assert_string_equal(str_at(o, "model"), "gpt-4o-mini");
    assert_string_equal(str_at(o, "system_fingerprint"), "fp_mock");
    assert_int_equal(int_at(o, "choices.0.index"), 0);
    assert_string_equal(str_at(o, "choices.0.message.role"), "assistant");
    assert_true(
        strncmp(str_at(o, "choices.0.message.content"), "Mock answer from provider-a:", 28) == 0);
    assert_string_equal(str_at(o, "choices.0.finish_reason"), "stop");
    assert_null(at(o, "choices.0.logprobs"));
    assert_int_equal(int_at(o, "usage.prompt_tokens"), 6); /* "Hello": 2 + 4 */
    assert_int_equal(int_at(o, "usage.completion_tokens"), SG_MOCK_REPLY_TOKENS);
    assert_int_equal(int_at(o, "usage.total_tokens"), 6 + SG_MOCK_REPLY_TOKENS);
    json_object_put(o);
    sg_mock_chat_dispose(&c);

    /* max_tokens below the default truncates ("length"); the override model is reported. */
    answer_for(&a, &c, SG_MOCK_API_OPENAI,
               "{\"model\":\"alias\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
               "\"a \\\"quoted\\\" line\\n\"}]}",
               "gpt-real-id", 0);
    sg_buf_reset(&b);
    sg_mock_render_body(&b, &a);
    o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "model"), "gpt-real-id");
    assert_string_equal(str_at(o, "choices.0.finish_reason"), "length");
    assert_int_equal(int_at(o, "usage.completion_tokens"), 5);
    json_object_put(o);
    sg_mock_chat_dispose(&c);
    sg_buf_dispose(&b);
}

static void test_render_anthropic_body(void **state)
{
    (void)state;
    struct sg_mock_chat c;
    struct sg_mock_answer a;
    answer_for(&a, &c, SG_MOCK_API_ANTHROPIC,
               "{\"model\":\"claude-x\",\"max_tokens\":3,\"messages\":[{\"role\":\"user\","
               "\"content\":\"Hello\"}]}",
               NULL, 0);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_mock_render_body(&b, &a);
    struct json_object *o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "id"), "msg_test1");
    assert_string_equal(str_at(o, "type"), "message");
    assert_string_equal(str_at(o, "role"), "assistant");
    assert_string_equal(str_at(o, "model"), "claude-x");
    assert_string_equal(str_at(o, "content.0.type"), "text");
    assert_string_equal(str_at(o, "content.0.text"), "Mock answer from");
    assert_string_equal(str_at(o, "stop_reason"), "max_tokens");
    assert_null(at(o, "stop_sequence"));
    assert_int_equal(int_at(o, "usage.input_tokens"), 6);
    assert_int_equal(int_at(o, "usage.output_tokens"), 3);
    assert_int_equal(int_at(o, "usage.cache_read_input_tokens"), 0);
    assert_int_equal(int_at(o, "usage.cache_creation_input_tokens"), 0);
    json_object_put(o);

    /* Cached prefix: input_tokens no longer counts it; creation, then read. */
    sg_mock_answer_cache(&a, 4, false);
    sg_buf_reset(&b);
    sg_mock_render_body(&b, &a);
    o = parse_ok(b.data, b.len);
    assert_int_equal(int_at(o, "usage.input_tokens"), 2);
    assert_int_equal(int_at(o, "usage.cache_creation_input_tokens"), 4);
    assert_int_equal(int_at(o, "usage.cache_read_input_tokens"), 0);
    json_object_put(o);
    sg_mock_answer_init(&a, &c, "provider-a", NULL, "msg_test1", 1700000000, 0);
    sg_mock_answer_cache(&a, 4, true);
    sg_buf_reset(&b);
    sg_mock_render_body(&b, &a);
    o = parse_ok(b.data, b.len);
    assert_int_equal(int_at(o, "usage.input_tokens"), 2);
    assert_int_equal(int_at(o, "usage.cache_read_input_tokens"), 4);
    json_object_put(o);
    sg_mock_chat_dispose(&c);
    sg_buf_dispose(&b);
}

/* Split a rendered stream into events: for each, its "event:" name (or "") and data. */
struct ev {
    char name[32];
    char *data;
};

static size_t split_events(char *s, struct ev *evs, size_t max)
{
    size_t n = 0;
    char *p = s;
    while (*p && n < max) {
        char *end = strstr(p, "\n\n");
        assert_non_null(end);
        *end = '\0';
        evs[n].name[0] = '\0';
        evs[n].data = NULL;
        for (char *save = NULL, *line = strtok_r(p, "\n", &save); line;
             line = strtok_r(NULL, "\n", &save)) {
            if (strncmp(line, "event: ", 7) == 0)
                snprintf(evs[n].name, sizeof evs[n].name, "%s", line + 7);
            else if (strncmp(line, "data: ", 6) == 0)
                evs[n].data = line + 6;
            else
                fail_msg("unexpected line in event: %s", line);
        }
        assert_non_null(evs[n].data);
        n++;
        p = end + 2;
    }
    return n;
}

static char *render_stream(const struct sg_mock_answer *a, size_t *n_events)
{
    struct sg_mock_stream_plan p;
    sg_mock_stream_plan(a, &p);
    *n_events = p.n_head + p.n_content + p.n_tail;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    for (size_t i = 0; i < *n_events; i++)
        assert_int_equal(sg_mock_render_event(&b, a, i), 0);
    assert_int_equal(sg_mock_render_event(&b, a, *n_events), SG_EINVAL);
    return sg_buf_steal(&b, NULL);
}

static void check_openai_stream(bool include_usage)
{
    struct sg_mock_chat c;
    struct sg_mock_answer a;
    answer_for(&a, &c, SG_MOCK_API_OPENAI,
               include_usage ? "{\"model\":\"m\",\"stream\":true,\"stream_options\":{"
                               "\"include_usage\":true},\"messages\":[{\"role\":\"user\","
                               "\"content\":\"Hello\"}]}"
                             : "{\"model\":\"m\",\"stream\":true,\"messages\":[{\"role\":\"user\","
                               "\"content\":\"Hello\"}]}",
               NULL, 6);
    size_t n;
    char *s = render_stream(&a, &n);
    struct ev evs[64];
    assert_int_equal(split_events(s, evs, 64), n);
    assert_int_equal(n, 1 + 6 + 1 + (include_usage ? 1 : 0) + 1);
    struct sg_buf text;
    sg_buf_init(&text, 0);
    for (size_t i = 0; i + 1 < n; i++) {
        struct json_object *o = parse_ok(evs[i].data, strlen(evs[i].data));
        assert_string_equal(str_at(o, "object"), "chat.completion.chunk");
        assert_string_equal(str_at(o, "id"), "chatcmpl-test1");
        bool usage_chunk = include_usage && i == n - 2;
        if (usage_chunk) {
            assert_int_equal(json_object_array_length(at(o, "choices")), 0);
            assert_int_equal(int_at(o, "usage.completion_tokens"), 6);
            assert_int_equal(int_at(o, "usage.prompt_tokens"), 6);
        } else {
            struct json_object *u;
            /* With include_usage every other chunk carries usage: null; without, none. */
            assert_int_equal(json_object_object_get_ex(o, "usage", &u), include_usage);
            assert_null(u);
            if (i == 0)
                assert_string_equal(str_at(o, "choices.0.delta.role"), "assistant");
            else if (i <= 6)
                sg_buf_appends(&text, str_at(o, "choices.0.delta.content"));
            if (i == 7)
                assert_string_equal(str_at(o, "choices.0.finish_reason"), "stop");
            else
                assert_null(at(o, "choices.0.finish_reason"));
        }
        json_object_put(o);
    }
    assert_string_equal(evs[n - 1].data, "[DONE]");
    assert_true(strncmp(text.data, "Mock answer from provider-a:", 28) == 0);
    struct sg_buf whole;
    sg_buf_init(&whole, 0);
    sg_mock_reply_text(&whole, &a);
    assert_string_equal(text.data, whole.data);
    sg_buf_dispose(&whole);
    sg_buf_dispose(&text);
    free(s);
    sg_mock_chat_dispose(&c);
}

static void test_openai_stream(void **state)
{
    (void)state;
    check_openai_stream(false);
    check_openai_stream(true);
}

/* The no_usage fault: an OpenAI answer without its usage object, a stream without its usage
 * chunk or "usage":null even though include_usage asked, still ended by [DONE]; text and tool
 * answers alike. Anthropic answers keep their usage (Anthropic always sends it). */
static void test_no_usage(void **state)
{
    (void)state;
    static const char *const bodies[] = {
        "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}",
        "{\"model\":\"m\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":"
        "\"required\",\"messages\":[{\"role\":\"user\",\"content\":\"Hello\"}]}",
    };
    for (size_t k = 0; k < SG_ARRAY_LEN(bodies); k++) {
        struct sg_mock_chat c;
        struct sg_mock_answer a;
        answer_for(&a, &c, SG_MOCK_API_OPENAI, bodies[k], NULL, 5);
        assert_true(a.include_usage);
        a.no_usage = true;
        struct sg_buf b;
        sg_buf_init(&b, 0);
        assert_int_equal(sg_mock_render_body(&b, &a), 0);
        struct json_object *o = parse_ok(b.data, b.len);
        assert_false(json_object_object_get_ex(o, "usage", NULL));
        assert_string_equal(str_at(o, "choices.0.finish_reason"), k ? "tool_calls" : "stop");
        json_object_put(o);
        sg_buf_dispose(&b);

        size_t n;
        char *s = render_stream(&a, &n);
        assert_null(strstr(s, "usage"));
        struct ev evs[64];
        assert_int_equal(split_events(s, evs, 64), n);
        /* role, content events, finish, [DONE]: no usage chunk */
        assert_int_equal(n, 1 + a.output_tokens + 2);
        assert_string_equal(evs[n - 1].data, "[DONE]");
        free(s);
        sg_mock_chat_dispose(&c);
    }

    struct sg_mock_chat c;
    struct sg_mock_answer a;
    answer_for(&a, &c, SG_MOCK_API_ANTHROPIC,
               "{\"model\":\"c\",\"max_tokens\":4,\"messages\":[{\"role\":\"user\","
               "\"content\":\"Hello\"}]}",
               NULL, 0);
    a.no_usage = true;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_mock_render_body(&b, &a);
    struct json_object *o = parse_ok(b.data, b.len);
    assert_int_equal(int_at(o, "usage.output_tokens"), 4);
    json_object_put(o);
    sg_buf_dispose(&b);
    sg_mock_chat_dispose(&c);
}

static void test_anthropic_stream(void **state)
{
    (void)state;
    struct sg_mock_chat c;
    struct sg_mock_answer a;
    answer_for(&a, &c, SG_MOCK_API_ANTHROPIC,
               "{\"model\":\"claude-x\",\"max_tokens\":4,\"stream\":true,\"messages\":[{\"role\":"
               "\"user\",\"content\":\"Hello\"}]}",
               NULL, 0);
    size_t n;
    char *s = render_stream(&a, &n);
    struct ev evs[32];
    assert_int_equal(split_events(s, evs, 32), n);
    static const char *want[] = {
        "message_start",       "content_block_start", "ping",
        "content_block_delta", "content_block_delta", "content_block_delta",
        "content_block_delta", "content_block_stop",  "message_delta",
        "message_stop"};
    assert_int_equal(n, sizeof want / sizeof want[0]);
    struct sg_buf text;
    sg_buf_init(&text, 0);
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(evs[i].name, want[i]);
        struct json_object *o = parse_ok(evs[i].data, strlen(evs[i].data));
        assert_string_equal(str_at(o, "type"), want[i]);
        if (i == 0) {
            assert_string_equal(str_at(o, "message.id"), "msg_test1");
            assert_string_equal(str_at(o, "message.model"), "claude-x");
            assert_int_equal(int_at(o, "message.usage.input_tokens"), 6);
            assert_null(at(o, "message.stop_reason"));
        } else if (i == 1) {
            assert_string_equal(str_at(o, "content_block.type"), "text");
        } else if (strcmp(want[i], "content_block_delta") == 0) {
            assert_string_equal(str_at(o, "delta.type"), "text_delta");
            assert_int_equal(int_at(o, "index"), 0);
            sg_buf_appends(&text, str_at(o, "delta.text"));
        } else if (i == 8) {
            assert_string_equal(str_at(o, "delta.stop_reason"), "max_tokens");
            assert_int_equal(int_at(o, "usage.output_tokens"), 4);
        }
        json_object_put(o);
    }
    assert_string_equal(text.data, "Mock answer from provider-a:");
    sg_buf_dispose(&text);
    free(s);
    sg_mock_chat_dispose(&c);
}

static void test_render_errors(void **state)
{
    (void)state;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_mock_render_error(&b, SG_MOCK_API_OPENAI, 401, NULL, NULL, "Incorrect \"key\"");
    struct json_object *o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "error.message"), "Incorrect \"key\"");
    assert_string_equal(str_at(o, "error.type"), "invalid_request_error");
    assert_string_equal(str_at(o, "error.code"), "invalid_api_key");
    assert_null(at(o, "error.param"));
    json_object_put(o);

    sg_buf_reset(&b);
    sg_mock_render_error(&b, SG_MOCK_API_OPENAI, 400, NULL, "messages", "messages: required");
    o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "error.param"), "messages");
    assert_null(at(o, "error.code"));
    json_object_put(o);

    sg_buf_reset(&b);
    sg_mock_render_error(&b, SG_MOCK_API_OPENAI, 429, NULL, NULL, NULL);
    o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "error.code"), "rate_limit_exceeded");
    json_object_put(o);

    static const struct {
        int status;
        const char *type;
    } anth[] = {{400, "invalid_request_error"},
                {401, "authentication_error"},
                {403, "permission_error"},
                {429, "rate_limit_error"},
                {500, "api_error"},
                {503, "overloaded_error"},
                {418, "invalid_request_error"},
                {599, "api_error"}};
    for (size_t i = 0; i < sizeof anth / sizeof anth[0]; i++) {
        sg_buf_reset(&b);
        sg_mock_render_error(&b, SG_MOCK_API_ANTHROPIC, anth[i].status, NULL, NULL, NULL);
        o = parse_ok(b.data, b.len);
        assert_string_equal(str_at(o, "type"), "error");
        assert_string_equal(str_at(o, "error.type"), anth[i].type);
        assert_true(strlen(str_at(o, "error.message")) > 0);
        json_object_put(o);
    }
    sg_buf_dispose(&b);
}

/* An error message quotes what the client sent and is cut to mock.c's 256-byte buffer: cut in
 * the middle of a two-byte character it used to put a lone lead byte in the body, which no
 * UTF-8 JSON parser accepts. Bytes that are not UTF-8 at all (a header) become U+FFFD too. */
static void test_render_errors_utf8(void **state)
{
    (void)state;
    char body[400], err[256], param[64];
    int n = snprintf(body, sizeof body, "{\"model\":\"m\",\"messages\":[{\"role\":\"x");
    for (int i = 0; i < 150; i++)
        n += snprintf(body + n, sizeof body - (size_t)n, "\xc3\xa9");
    snprintf(body + n, sizeof body - (size_t)n, "\",\"content\":\"hi\"}]}");
    struct sg_mock_chat c;
    assert_int_equal(sg_mock_chat_parse(SG_MOCK_API_OPENAI, body, strlen(body), &c, err, sizeof err,
                                        param, sizeof param),
                     SG_EINVAL);
    assert_int_equal(strlen(err), sizeof err - 1);
    assert_int_equal((unsigned char)err[sizeof err - 2], 0xc3); /* cut mid-character */
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_mock_render_error(&b, SG_MOCK_API_OPENAI, 400, NULL, param, err);
    struct json_object *o = parse_ok(b.data, b.len);
    const char *msg = str_at(o, "error.message");
    assert_int_equal(strncmp(msg, "messages[0].role: 'x\xc3\xa9", 22), 0);
    assert_string_equal(msg + strlen(msg) - 3, "\xef\xbf\xbd");
    json_object_put(o);

    sg_buf_reset(&b);
    sg_mock_render_error(&b, SG_MOCK_API_ANTHROPIC, 401, NULL, NULL, "invalid x-api-key s\xe9***");
    o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "error.message"), "invalid x-api-key s\xef\xbf\xbd***");
    json_object_put(o);
    sg_buf_dispose(&b);
}

/* ---- faults ---- */

static bool faults_equal(const struct sg_mock_faults *a, const struct sg_mock_faults *b)
{
    return a->latency_ms == b->latency_ms && a->ttft_ms == b->ttft_ms &&
           a->tokens_per_s == b->tokens_per_s && a->error_rate == b->error_rate &&
           a->error_status == b->error_status && a->status == b->status &&
           a->retry_after_s == b->retry_after_s && a->hang == b->hang && a->reset == b->reset &&
           a->malformed == b->malformed && a->no_usage == b->no_usage;
}

static int merge(struct sg_mock_faults *f, const char *json, char *err)
{
    return sg_mock_faults_merge(f, json, strlen(json), err, 256);
}

static void test_faults_merge(void **state)
{
    (void)state;
    struct sg_mock_faults f = {0};
    char err[256];
    assert_int_equal(merge(&f,
                           "{\"latency_ms\":150,\"error_rate\":0.25,\"status\":503,"
                           "\"retry_after_s\":7,\"reset\":\"mid\",\"tokens_per_s\":20}",
                           err),
                     0);
    assert_int_equal(f.latency_ms, 150);
    assert_true(f.error_rate == 0.25);
    assert_int_equal(f.status, 503);
    assert_int_equal(f.retry_after_s, 7);
    assert_int_equal(f.reset, SG_MOCK_RESET_MID);
    assert_true(f.tokens_per_s == 20);
    /* A merge only touches the fields given. */
    assert_int_equal(merge(&f, "{\"hang\":true,\"status\":null,\"reset\":\"none\"}", err), 0);
    assert_true(f.hang);
    assert_int_equal(f.status, 0);
    assert_int_equal(f.reset, SG_MOCK_RESET_NONE);
    assert_int_equal(f.latency_ms, 150);
    assert_int_equal(merge(&f, "{\"malformed\":\"html\"}", err), 0);
    assert_int_equal(f.malformed, SG_MOCK_MALFORMED_HTML);
    assert_int_equal(merge(&f, "{\"malformed\":null}", err), 0);
    assert_int_equal(f.malformed, SG_MOCK_MALFORMED_NONE);
    assert_int_equal(merge(&f, "{\"no_usage\":true}", err), 0);
    assert_true(f.no_usage);
    assert_int_equal(merge(&f, "{\"no_usage\":false}", err), 0);
    assert_false(f.no_usage);

    /* All or nothing: a bad field leaves everything as it was, and is named. */
    struct sg_mock_faults before = f;
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"latency_ms\":5,\"colour\":1}", "colour"},
        {"{\"latency_ms\":\"5\"}",
         "latency_ms: must be an integer between 0 and 3600000, got \"5\""},
        {"{\"latency_ms\":1.5}", "latency_ms: must be an integer between 0 and 3600000, got 1.5"},
        {"{\"latency_ms\":-1}", "latency_ms"},
        {"{\"error_rate\":1.5}", "error_rate"},
        {"{\"error_rate\":true}", "error_rate: must be a number between 0 and 1, got true"},
        {"{\"status\":200}", "status"},
        {"{\"error_status\":0}", "error_status"},
        {"{\"hang\":1}", "hang: must be a boolean (true or false), got 1"},
        {"{\"retry_after_s\":86401}", "retry_after_s: must be between 0 and 86400, got 86401"},
        {"{\"malformed\":\"broken\"}",
         "malformed: must be \"none\", \"empty\", \"html\" or \"cut\", got \"broken\""},
        {"{\"malformed\":true}", "malformed: must be"},
        {"{\"no_usage\":1}", "no_usage: must be a boolean"},
        {"{\"no_usage\":null}", "no_usage: must be a boolean (true or false), got null"},
        {"{\"no_usage\":\"yes\"}", "no_usage: must be a boolean"},
        {"{\"usage\":false}", "unknown field 'usage' (known: latency_ms, ttft_ms, tokens_per_s, "
                              "error_rate, error_status, status, retry_after_s, hang, reset, "
                              "malformed, no_usage)"},
        /* A pace so slow that its delay overflows (or so fast it rounds to nothing) is refused
         * with the range, not sent all at once. */
        {"{\"tokens_per_s\":1e-300}",
         "tokens_per_s: must be 0 (no pacing) or between 0.001 and 1000000, got 1e-300"},
        {"{\"tokens_per_s\":5e-324}", "tokens_per_s: must be 0 (no pacing) or between 0.001"},
        {"{\"tokens_per_s\":0.0009}", "got 0.0009"},
        {"{\"tokens_per_s\":1000000.5}", "got 1000000.5"},
        {"{\"tokens_per_s\":-1}", "tokens_per_s: must be 0 (no pacing)"},
        {"{\"tokens_per_s\":1e400}", "NaN or Infinity"}, /* refused by the parser */
        {"{\"tokens_per_s\":\"fast\"}", "tokens_per_s: must be a number, 0 (no pacing) or between "
                                        "0.001 and 1000000, got \"fast\""},
        {"{\"error_rate\":-0.5}", "error_rate: must be between 0 and 1, got -0.5"},
        {"{\"latency_ms\":3600001}", "latency_ms: must be between 0 and 3600000, got 3600001"},
        {"{\"reset\":\"later\"}", "reset: must be \"none\", \"before\" or \"mid\", got \"later\""},
        {"[1]", "JSON object"},
        {"{\"hang\":", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        assert_int_equal(merge(&f, bad[i].json, err), SG_EINVAL);
        if (!strstr(err, bad[i].want))
            fail_msg("%s: message '%s' lacks '%s'", bad[i].json, err, bad[i].want);
        assert_true(faults_equal(&f, &before));
    }
}

/* The edges of tokens_per_s: both ends of the range are accepted as written, -0 is 0. */
static void test_faults_tokens_per_s_range(void **state)
{
    (void)state;
    struct sg_mock_faults f = {0};
    char err[256];
    assert_int_equal(merge(&f, "{\"tokens_per_s\":0.001}", err), 0);
    assert_true(f.tokens_per_s == SG_MOCK_TPS_MIN);
    assert_int_equal(merge(&f, "{\"tokens_per_s\":1000000}", err), 0);
    assert_true(f.tokens_per_s == SG_MOCK_TPS_MAX);
    assert_int_equal(merge(&f, "{\"tokens_per_s\":-0.0}", err), 0);
    assert_true(f.tokens_per_s == 0 && !signbit(f.tokens_per_s));
    assert_true(sg_mock_tps_valid(0) && sg_mock_tps_valid(0.001) && sg_mock_tps_valid(1e6));
    assert_false(sg_mock_tps_valid(1e-300) || sg_mock_tps_valid(1e6 + 1) || sg_mock_tps_valid(-1) ||
                 sg_mock_tps_valid(NAN) || sg_mock_tps_valid(INFINITY));
}

/* When content token k of a stream is due, in ms after the first: exact for the whole accepted
 * range, and never an overflow (or "all at once") for a value set in-process past the checks. */
static void test_token_offsets(void **state)
{
    (void)state;
    assert_int_equal(sg_mock_token_offset_ms(0, 5), 0); /* no pacing */
    assert_int_equal(sg_mock_token_offset_ms(20, 0), 0);
    assert_int_equal(sg_mock_token_offset_ms(20, 1), 50);
    assert_int_equal(sg_mock_token_offset_ms(20, 3), 150);
    assert_int_equal(sg_mock_token_offset_ms(3, 1), 333); /* from t0: no drift */
    assert_int_equal(sg_mock_token_offset_ms(3, 2), 667);
    assert_int_equal(sg_mock_token_offset_ms(3, 300), 100000);
    assert_int_equal(sg_mock_token_offset_ms(SG_MOCK_TPS_MIN, 1), 1000000);
    assert_int_equal(sg_mock_token_offset_ms(SG_MOCK_TPS_MIN, 100000), 100000000000ull);
    assert_int_equal(sg_mock_token_offset_ms(SG_MOCK_TPS_MAX, 1), 0);
    assert_int_equal(sg_mock_token_offset_ms(SG_MOCK_TPS_MAX, 100000), 100);
    assert_int_equal(sg_mock_token_offset_ms(SG_MOCK_TPS_MAX, SIZE_MAX), SG_MOCK_OFFSET_MAX_MS);
    /* Out of range (sg_mock_set_faults does not check): clamped to the slowest accepted pace. */
    assert_int_equal(sg_mock_token_offset_ms(1e-300, 1), 1000000);
    assert_int_equal(sg_mock_token_offset_ms(5e-324, 2), 2000000);
    assert_int_equal(sg_mock_token_offset_ms(1e-300, SIZE_MAX), SG_MOCK_OFFSET_MAX_MS);
    assert_int_equal(sg_mock_token_offset_ms(1e300, 7), 0);
    assert_int_equal(sg_mock_token_offset_ms(INFINITY, 7), 0);
    assert_int_equal(sg_mock_token_offset_ms(-5, 7), 0);
    assert_int_equal(sg_mock_token_offset_ms(NAN, 7), 0);
}

static void test_faults_json_roundtrip(void **state)
{
    (void)state;
    struct sg_mock_faults f = {.latency_ms = 10,
                               .ttft_ms = 20,
                               .tokens_per_s = 12.5,
                               .error_rate = 0.1,
                               .error_status = 429,
                               .status = 0,
                               .retry_after_s = 3,
                               .hang = false,
                               .reset = SG_MOCK_RESET_BEFORE,
                               .malformed = SG_MOCK_MALFORMED_CUT,
                               .no_usage = true};
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_mock_faults_to_json(&b, &f);
    struct json_object *o = parse_ok(b.data, b.len);
    assert_int_equal(int_at(o, "latency_ms"), 10);
    assert_string_equal(str_at(o, "reset"), "before");
    assert_string_equal(str_at(o, "malformed"), "cut");
    assert_true(json_object_get_boolean(at(o, "no_usage")));
    json_object_put(o);
    struct sg_mock_faults g = {0};
    char err[256];
    assert_int_equal(sg_mock_faults_merge(&g, b.data, b.len, err, sizeof err), 0);
    assert_true(faults_equal(&f, &g));
    /* The zero struct shows error_status as its effective 500. */
    struct sg_mock_faults z = {0};
    sg_buf_reset(&b);
    sg_mock_faults_to_json(&b, &z);
    assert_string_equal(b.data, "{\"latency_ms\":0,\"ttft_ms\":0,\"tokens_per_s\":0,"
                                "\"error_rate\":0,\"error_status\":500,\"status\":0,"
                                "\"retry_after_s\":0,\"hang\":false,\"reset\":\"none\","
                                "\"malformed\":\"none\",\"no_usage\":false}");
    sg_buf_dispose(&b);
}

static void test_decide(void **state)
{
    (void)state;
    struct sg_mock_decision d;
    struct sg_mock_faults f = {0};
    sg_mock_decide(&f, true, true, false, 0.0, &d);
    assert_int_equal(d.action, SG_MOCK_ANSWER);
    assert_int_equal(d.status, 200);
    assert_int_equal(d.delay_ms, 0);

    /* Latency for everything; ttft on top for a stream's answer only. */
    f.latency_ms = 100;
    f.ttft_ms = 40;
    sg_mock_decide(&f, true, true, true, 0.5, &d);
    assert_int_equal(d.delay_ms, 140);
    sg_mock_decide(&f, false, true, true, 0.5, &d);
    assert_int_equal(d.action, SG_MOCK_ERROR);
    assert_int_equal(d.status, 401);
    assert_int_equal(d.cause, SG_MOCK_CAUSE_AUTH);
    assert_int_equal(d.delay_ms, 100);

    /* Order: 401 before a forced status before 400 before error_rate. */
    f = (struct sg_mock_faults){.status = 503, .retry_after_s = 9, .error_rate = 1.0};
    sg_mock_decide(&f, false, false, false, 0.0, &d);
    assert_int_equal(d.status, 401);
    assert_int_equal(d.retry_after_s, 0);
    sg_mock_decide(&f, true, false, false, 0.0, &d);
    assert_int_equal(d.status, 503);
    assert_int_equal(d.cause, SG_MOCK_CAUSE_FORCED);
    assert_int_equal(d.retry_after_s, 9);
    f.status = 0;
    sg_mock_decide(&f, true, false, false, 0.0, &d);
    assert_int_equal(d.status, 400);
    sg_mock_decide(&f, true, true, false, 0.999, &d);
    assert_int_equal(d.status, 500);
    assert_int_equal(d.cause, SG_MOCK_CAUSE_RATE);
    assert_int_equal(d.retry_after_s, 0); /* only 429 and 503 carry it */
    f.error_rate = 0.3;
    f.error_status = 429;
    sg_mock_decide(&f, true, true, false, 0.29, &d);
    assert_int_equal(d.status, 429);
    assert_int_equal(d.retry_after_s, 9);
    sg_mock_decide(&f, true, true, false, 0.30, &d);
    assert_int_equal(d.action, SG_MOCK_ANSWER);

    /* Connection faults beat everything, even a bad key. */
    f = (struct sg_mock_faults){.hang = true, .status = 500};
    sg_mock_decide(&f, false, false, false, 0.0, &d);
    assert_int_equal(d.action, SG_MOCK_HANG);
    f.reset = SG_MOCK_RESET_BEFORE;
    sg_mock_decide(&f, false, false, false, 0.0, &d);
    assert_int_equal(d.action, SG_MOCK_RESET);

    /* reset mid: a stream answers and is cut; a JSON answer is reset after the latency; an
     * error is still sent whole. */
    f = (struct sg_mock_faults){.reset = SG_MOCK_RESET_MID, .latency_ms = 5};
    sg_mock_decide(&f, true, true, true, 0.0, &d);
    assert_int_equal(d.action, SG_MOCK_ANSWER);
    assert_true(d.reset_mid);
    sg_mock_decide(&f, true, true, false, 0.0, &d);
    assert_int_equal(d.action, SG_MOCK_RESET);
    assert_int_equal(d.delay_ms, 5);
    sg_mock_decide(&f, false, true, true, 0.0, &d);
    assert_int_equal(d.action, SG_MOCK_ERROR);

    /* no_usage rides on answers, whole or streamed. */
    f = (struct sg_mock_faults){.no_usage = true};
    sg_mock_decide(&f, true, true, true, 0.0, &d);
    assert_int_equal(d.action, SG_MOCK_ANSWER);
    assert_true(d.no_usage);
    sg_mock_decide(&f, true, true, false, 0.0, &d);
    assert_true(d.no_usage);
    f.no_usage = false;
    sg_mock_decide(&f, true, true, false, 0.0, &d);
    assert_false(d.no_usage);
}

static void test_error_rate_seeded(void **state)
{
    (void)state;
    /* 20,000 draws at 0.3: the standard deviation of the fraction is sqrt(.21/20000) = 0.0032,
     * so +-0.015 is over 4.5 sigma — and the seed makes it the same every run anyway. */
    struct sg_mock_faults f = {.error_rate = 0.3};
    uint64_t rng = 42;
    int errors = 0;
    const int n = 20000;
    for (int i = 0; i < n; i++) {
        struct sg_mock_decision d;
        sg_mock_decide(&f, true, true, false, sg_mock_rand_unit(&rng), &d);
        errors += d.action == SG_MOCK_ERROR;
    }
    double frac = (double)errors / n;
    if (frac < 0.285 || frac > 0.315)
        fail_msg("error fraction %f not within 0.3 +- 0.015", frac);
    /* Same seed, same sequence; another seed, another one. */
    uint64_t a = 7, b = 7, c = 8;
    for (int i = 0; i < 100; i++) {
        double x = sg_mock_rand_unit(&a);
        assert_true(x == sg_mock_rand_unit(&b));
        assert_true(x >= 0.0 && x < 1.0);
    }
    assert_true(sg_mock_rand_next(&a) != sg_mock_rand_next(&c));
}

/* ---- one mock on a real socket: a loop on a thread, a blocking client here ---- */

struct live {
    pthread_t thread;
    uv_loop_t loop;
    uv_async_t stop;
    struct sg_mock *mock;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int port;     /* 0 until listening, -1 on failure */
    int close_rc; /* uv_loop_close at the end: 0 when the mock closed all it opened */
};

static void live_on_stop(uv_async_t *a)
{
    struct live *l = a->data;
    sg_mock_free(l->mock);
    uv_close((uv_handle_t *)&l->stop, NULL);
}

static void *live_main(void *arg)
{
    struct live *l = arg;
    uv_loop_init(&l->loop);
    uv_async_init(&l->loop, &l->stop, live_on_stop);
    l->stop.data = l;
    struct sg_mock_options o = {
        .name = "live", .expected_key = "sk-live", .seed = 1, .reply_tokens = 10};
    l->mock = sg_mock_new(&l->loop, &o);
    int rc = sg_mock_listen(l->mock, "127.0.0.1", 0);
    pthread_mutex_lock(&l->mu);
    l->port = rc ? -1 : sg_mock_port(l->mock);
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    uv_run(&l->loop, UV_RUN_DEFAULT);
    /* Checked on the test's thread: cmocka asserts must not run here. */
    l->close_rc = uv_loop_close(&l->loop);
    return NULL;
}

static int live_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct timeval tv = {.tv_sec = 5};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

static void live_send(int fd, const char *method, const char *path, const char *headers,
                      const char *body)
{
    char req[4096];
    int n =
        snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: x\r\n%sContent-Length: %zu\r\n\r\n%s",
                 method, path, headers, strlen(body), body);
    assert_true(n > 0 && (size_t)n < sizeof req);
    assert_int_equal(write(fd, req, (size_t)n), n);
}

/* Read one response with a Content-Length (keep-alive safe); returns the status. */
static int live_read(int fd, struct sg_buf *head, struct sg_buf *body)
{
    char buf[4096];
    sg_buf_reset(head);
    sg_buf_reset(body);
    char *end = NULL;
    while (!(head->data && (end = strstr(head->data, "\r\n\r\n")))) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0)
            return -1;
        sg_buf_append(head, buf, (size_t)r);
    }
    size_t hlen = (size_t)(end - head->data) + 4;
    const char *cl = strcasestr(head->data, "content-length:");
    assert_non_null(cl);
    size_t want = strtoul(cl + 15, NULL, 10);
    sg_buf_append(body, head->data + hlen, head->len - hlen);
    head->len = hlen;
    head->data[hlen] = '\0';
    while (body->len < want) {
        ssize_t r = read(fd, buf, sizeof buf);
        if (r <= 0)
            return -1;
        sg_buf_append(body, buf, (size_t)r);
    }
    return atoi(head->data + 9);
}

/* Everything until the peer closes or resets; *reset tells which. */
static void live_read_all(int fd, struct sg_buf *all, bool *reset)
{
    char buf[4096];
    ssize_t r;
    while ((r = read(fd, buf, sizeof buf)) > 0)
        sg_buf_append(all, buf, (size_t)r);
    *reset = r < 0;
}

static struct json_object *live_get_json(int port, const char *path)
{
    int fd = live_connect(port);
    struct sg_buf h, b;
    sg_buf_init(&h, 0);
    sg_buf_init(&b, 0);
    live_send(fd, "GET", path, "", "");
    assert_int_equal(live_read(fd, &h, &b), 200);
    struct json_object *o = parse_ok(b.data, b.len);
    close(fd);
    sg_buf_dispose(&h);
    sg_buf_dispose(&b);
    return o;
}

static void live_post(int port, const char *path, const char *body, int want)
{
    int fd = live_connect(port);
    struct sg_buf h, b;
    sg_buf_init(&h, 0);
    sg_buf_init(&b, 0);
    live_send(fd, "POST", path, "", body);
    assert_int_equal(live_read(fd, &h, &b), want);
    close(fd);
    sg_buf_dispose(&h);
    sg_buf_dispose(&b);
}

static const char *live_chat = "{\"model\":\"gpt-x\",\"messages\":[{\"role\":\"user\","
                               "\"content\":\"Hello\"}]}";

static void test_live(void **state)
{
    (void)state;
    sg_log_set_level(SG_LOG_WARN);
    struct live l = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_int_equal(pthread_create(&l.thread, NULL, live_main, &l), 0);
    pthread_mutex_lock(&l.mu);
    while (l.port == 0)
        pthread_cond_wait(&l.cv, &l.mu);
    pthread_mutex_unlock(&l.mu);
    assert_true(l.port > 0);
    int port = l.port;
    struct sg_buf h, b;
    sg_buf_init(&h, 0);
    sg_buf_init(&b, 0);

    /* Keep-alive: a wrong key then a good one on one connection; one connection accepted. */
    struct json_object *st = live_get_json(port, "/_mock/stats");
    int64_t accepted0 = int_at(st, "connections_accepted");
    json_object_put(st);
    int fd = live_connect(port);
    live_send(fd, "POST", "/v1/chat/completions", "Authorization: Bearer sk-nope\r\n", live_chat);
    assert_int_equal(live_read(fd, &h, &b), 401);
    assert_non_null(strcasestr(h.data, "x-mock-name: live\r\n"));
    struct json_object *o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "error.code"), "invalid_api_key");
    json_object_put(o);
    live_send(fd, "POST", "/v1/chat/completions", "Authorization: Bearer sk-live\r\n", live_chat);
    assert_int_equal(live_read(fd, &h, &b), 200);
    o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "model"), "gpt-x");
    assert_int_equal(int_at(o, "usage.completion_tokens"), 10);
    json_object_put(o);
    close(fd);
    st = live_get_json(port, "/_mock/stats");
    assert_int_equal(int_at(st, "connections_accepted"), accepted0 + 2); /* ours + this GET */
    assert_int_equal(int_at(st, "auth_failures"), 1);
    assert_int_equal(int_at(st, "by_status.200"), 1);
    assert_int_equal(int_at(st, "by_status.401"), 1);
    json_object_put(st);

    /* A wrong method gets a 405 that names the right ones in Allow, on the API and control paths
     * alike. */
    static const struct {
        const char *method, *path, *allow;
    } wrong[] = {{"GET", "/v1/chat/completions", "POST"},
                 {"PUT", "/_mock/faults", "GET, HEAD, POST, PATCH, DELETE"},
                 {"POST", "/_mock/stats", "GET, HEAD"},
                 {"POST", "/v1/models", "GET, HEAD"},
                 {"GET", "/_mock/stats/reset", "POST"}};
    for (size_t i = 0; i < SG_ARRAY_LEN(wrong); i++) {
        fd = live_connect(port);
        live_send(fd, wrong[i].method, wrong[i].path, "", "");
        assert_int_equal(live_read(fd, &h, &b), 405);
        close(fd);
        char want[64];
        snprintf(want, sizeof want, "allow: %s\r\n", wrong[i].allow);
        assert_non_null(strcasestr(h.data, want));
        o = parse_ok(b.data, b.len);
        assert_string_equal(str_at(o, "error.code"), "method_not_allowed");
        json_object_put(o);
    }

    /* An unknown control path is a 404 that names it and lists the control paths, not a
     * model_not_found; the health check is GET only, like the others. */
    fd = live_connect(port);
    live_send(fd, "POST", "/_mock/fault", "", "{\"status\":503}");
    assert_int_equal(live_read(fd, &h, &b), 404);
    close(fd);
    o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "error.code"), "not_found");
    assert_string_equal(str_at(o, "error.type"), "invalid_request_error");
    assert_string_equal(str_at(o, "error.message"),
                        "Unknown control path /_mock/fault (mock live). The control API is "
                        "/_mock/faults (GET, POST, PATCH, DELETE), /_mock/stats (GET), "
                        "/_mock/stats/reset (POST), /_mock/last (GET), /_mock/health (GET).");
    json_object_put(o);
    fd = live_connect(port);
    live_send(fd, "DELETE", "/_mock/health", "", "");
    assert_int_equal(live_read(fd, &h, &b), 405);
    close(fd);
    assert_non_null(strcasestr(h.data, "allow: GET, HEAD\r\n"));
    st = live_get_json(port, "/_mock/health");
    assert_true(json_object_get_boolean(json_object_object_get(st, "ok")));
    json_object_put(st);
    st = live_get_json(port, "/_mock/faults"); /* the typo changed nothing */
    assert_int_equal(int_at(st, "status"), 0);
    json_object_put(st);

    /* The last request shows the key and the model as sent. */
    o = live_get_json(port, "/_mock/last");
    assert_string_equal(str_at(o, "authorization"), "Bearer sk-live");
    assert_string_equal(str_at(o, "model"), "gpt-x");
    assert_string_equal(str_at(o, "body.messages.0.content"), "Hello");
    json_object_put(o);
    /* A header byte that is not UTF-8 (Latin-1 e-acute) is shown as U+FFFD: the page stays
     * UTF-8 JSON. */
    fd = live_connect(port);
    live_send(fd, "POST", "/v1/chat/completions?q=\xff",
              "Authorization: Bearer sk-live\r\nX-Note: caf\xe9\r\n", live_chat);
    assert_int_equal(live_read(fd, &h, &b), 200);
    live_send(fd, "GET", "/_mock/last", "", "");
    assert_int_equal(live_read(fd, &h, &b), 200);
    close(fd);
    assert_int_equal(sg_utf8_check(b.data, b.len), b.len);
    o = parse_ok(b.data, b.len);
    assert_string_equal(str_at(o, "headers.x-note"), "caf\xef\xbf\xbd");
    assert_string_equal(str_at(o, "query"), "q=\xef\xbf\xbd");
    json_object_put(o);

    /* Prompt caching: the same marked system prompt writes the cache, then reads it. */
    static const char *cached = "{\"model\":\"c\",\"max_tokens\":5,\"system\":[{\"type\":"
                                "\"text\",\"text\":\"Long stable instructions\",\"cache_control\":"
                                "{\"type\":\"ephemeral\"}}],\"messages\":[{\"role\":\"user\","
                                "\"content\":\"Hi\"}]}";
    for (int round = 0; round < 2; round++) {
        fd = live_connect(port);
        live_send(fd, "POST", "/v1/messages", "x-api-key: sk-live\r\n", cached);
        assert_int_equal(live_read(fd, &h, &b), 200);
        close(fd);
        o = parse_ok(b.data, b.len);
        /* system: 24 bytes -> 6 + 4 = 10 cached; "Hi" -> 1 + 4 = 5 not */
        assert_int_equal(int_at(o, "usage.input_tokens"), 5);
        assert_int_equal(int_at(o, "usage.cache_creation_input_tokens"), round == 0 ? 10 : 0);
        assert_int_equal(int_at(o, "usage.cache_read_input_tokens"), round == 0 ? 0 : 10);
        json_object_put(o);
    }

    /* no_usage over the wire: an OpenAI answer and a stream that asked for usage come without
     * it; a Messages answer keeps its usage. */
    live_post(port, "/_mock/faults", "{\"no_usage\":true}", 200);
    st = live_get_json(port, "/_mock/faults");
    assert_true(json_object_get_boolean(at(st, "no_usage")));
    json_object_put(st);
    fd = live_connect(port);
    live_send(fd, "POST", "/v1/chat/completions", "Authorization: Bearer sk-live\r\n", live_chat);
    assert_int_equal(live_read(fd, &h, &b), 200);
    close(fd);
    o = parse_ok(b.data, b.len);
    assert_false(json_object_object_get_ex(o, "usage", NULL));
    json_object_put(o);
    fd = live_connect(port);
    live_send(fd, "POST", "/v1/chat/completions",
              "Authorization: Bearer sk-live\r\nConnection: close\r\n",
              "{\"model\":\"gpt-x\",\"stream\":true,\"stream_options\":{\"include_usage\":true},"
              "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}");
    sg_buf_reset(&b);
    bool closed_reset = false;
    live_read_all(fd, &b, &closed_reset);
    close(fd);
    assert_false(closed_reset);
    assert_true(strncmp(b.data, "HTTP/1.1 200", 12) == 0);
    assert_non_null(strstr(b.data, "data: [DONE]"));
    assert_non_null(strstr(b.data, "chat.completion.chunk"));
    assert_null(strstr(b.data, "usage"));
    fd = live_connect(port);
    live_send(fd, "POST", "/v1/messages", "x-api-key: sk-live\r\n",
              "{\"model\":\"c\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
              "\"content\":\"Hi\"}]}");
    assert_int_equal(live_read(fd, &h, &b), 200);
    close(fd);
    o = parse_ok(b.data, b.len);
    assert_int_equal(int_at(o, "usage.output_tokens"), 5);
    json_object_put(o);
    live_post(port, "/_mock/faults", "{\"no_usage\":false}", 200);

    /* reset mid on a stream: the head and 5 of 10 tokens, then a reset. */
    live_post(port, "/_mock/faults", "{\"reset\":\"mid\"}", 200);
    fd = live_connect(port);
    live_send(fd, "POST", "/v1/messages", "x-api-key: sk-live\r\n",
              "{\"model\":\"c\",\"max_tokens\":100,\"stream\":true,\"messages\":[{\"role\":"
              "\"user\",\"content\":\"Hi\"}]}");
    sg_buf_reset(&b);
    bool reset = false;
    live_read_all(fd, &b, &reset);
    close(fd);
    assert_true(reset);
    assert_true(strncmp(b.data, "HTTP/1.1 200", 12) == 0);
    size_t deltas = 0;
    for (const char *p = b.data; (p = strstr(p, "event: content_block_delta")); p++)
        deltas++;
    assert_int_equal(deltas, 5);
    assert_null(strstr(b.data, "message_stop"));

    /* A hang is released when the client leaves. */
    live_post(port, "/_mock/faults", "{\"reset\":\"none\",\"hang\":true}", 200);
    fd = live_connect(port);
    live_send(fd, "POST", "/v1/chat/completions", "Authorization: Bearer sk-live\r\n", live_chat);
    for (int i = 0; i < 200; i++) { /* wait until the mock holds it */
        st = live_get_json(port, "/_mock/stats");
        int64_t hangs = int_at(st, "hangs");
        json_object_put(st);
        if (hangs == 1)
            break;
        usleep(10000);
    }
    close(fd);
    int64_t in_flight = -1, aborted = 0;
    for (int i = 0; i < 200 && in_flight != 0; i++) {
        usleep(10000);
        st = live_get_json(port, "/_mock/stats");
        in_flight = int_at(st, "in_flight");
        aborted = int_at(st, "aborted");
        json_object_put(st);
    }
    assert_int_equal(in_flight, 0);
    assert_int_equal(aborted, 1);

    /* Shutting down with a request still hanging finishes it (reset) and closes everything. */
    fd = live_connect(port);
    live_send(fd, "POST", "/v1/chat/completions", "Authorization: Bearer sk-live\r\n", live_chat);
    for (int i = 0; i < 200; i++) {
        st = live_get_json(port, "/_mock/stats");
        in_flight = int_at(st, "in_flight");
        json_object_put(st);
        if (in_flight == 1)
            break;
        usleep(10000);
    }
    assert_int_equal(in_flight, 1);
    uv_async_send(&l.stop);
    pthread_join(l.thread, NULL);
    assert_int_equal(l.close_rc, 0); /* every handle the mock opened was closed */
    sg_buf_reset(&b);
    live_read_all(fd, &b, &reset);
    assert_int_equal(b.len, 0);
    close(fd);
    sg_buf_dispose(&h);
    sg_buf_dispose(&b);
}

/* ---- tool calls ---- */

static const char *oa_tools =
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"parameters\":"
    "{\"type\":\"object\"}}},{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}]";
static const char *an_tools = "\"tools\":[{\"name\":\"get_weather\",\"input_schema\":{\"type\":"
                              "\"object\"}},{\"name\":\"get_time\",\"input_schema\":{}}]";

static void chat_with(enum sg_mock_api api, const char *extra, bool stream, struct sg_mock_chat *c)
{
    char body[4096];
    snprintf(body, sizeof body,
             "{\"model\":\"m\",%s\"stream\":%s,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"Hello\"}],%s}",
             api == SG_MOCK_API_ANTHROPIC ? "\"max_tokens\":50," : "", stream ? "true" : "false",
             extra);
    parse_chat(api, body, c);
}

static void test_parse_tool_choice(void **state)
{
    (void)state;
    struct sg_mock_chat c;
    char x[512];
    /* Not forced: a text answer, as before. */
    snprintf(x, sizeof x, "%s,\"tool_choice\":\"auto\"", oa_tools);
    chat_with(SG_MOCK_API_OPENAI, x, false, &c);
    assert_int_equal(c.n_calls, 0);
    sg_mock_chat_dispose(&c);
    /* required: every tool, in parallel; parallel_tool_calls false: the first. */
    snprintf(x, sizeof x, "%s,\"tool_choice\":\"required\"", oa_tools);
    chat_with(SG_MOCK_API_OPENAI, x, false, &c);
    assert_int_equal(c.n_calls, 2);
    assert_string_equal(c.calls[1], "get_time");
    sg_mock_chat_dispose(&c);
    snprintf(x, sizeof x, "%s,\"tool_choice\":\"required\",\"parallel_tool_calls\":false",
             oa_tools);
    chat_with(SG_MOCK_API_OPENAI, x, false, &c);
    assert_int_equal(c.n_calls, 1);
    assert_string_equal(c.calls[0], "get_weather");
    sg_mock_chat_dispose(&c);
    snprintf(x, sizeof x,
             "%s,\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"get_time\"}}",
             oa_tools);
    chat_with(SG_MOCK_API_OPENAI, x, false, &c);
    assert_int_equal(c.n_calls, 1);
    assert_string_equal(c.calls[0], "get_time");
    sg_mock_chat_dispose(&c);
    /* Anthropic: any (with disable_parallel_tool_use), tool by name. */
    snprintf(x, sizeof x, "%s,\"tool_choice\":{\"type\":\"any\"}", an_tools);
    chat_with(SG_MOCK_API_ANTHROPIC, x, false, &c);
    assert_int_equal(c.n_calls, 2);
    sg_mock_chat_dispose(&c);
    snprintf(x, sizeof x,
             "%s,\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true}", an_tools);
    chat_with(SG_MOCK_API_ANTHROPIC, x, false, &c);
    assert_int_equal(c.n_calls, 1);
    sg_mock_chat_dispose(&c);
    snprintf(x, sizeof x, "%s,\"tool_choice\":{\"type\":\"tool\",\"name\":\"get_time\"}", an_tools);
    chat_with(SG_MOCK_API_ANTHROPIC, x, false, &c);
    assert_int_equal(c.n_calls, 1);
    assert_string_equal(c.calls[0], "get_time");
    sg_mock_chat_dispose(&c);
    /* Refused as the APIs refuse them. */
    parse_chat_fails(SG_MOCK_API_OPENAI,
                     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                     "\"tool_choice\":\"required\"}",
                     "tool_choice", "no tools");
    parse_chat_fails(SG_MOCK_API_OPENAI,
                     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                     "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"a\"}}],"
                     "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"b\"}}}",
                     "tool_choice", "'b' is not in tools");
    parse_chat_fails(SG_MOCK_API_ANTHROPIC,
                     "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","
                     "\"content\":\"x\"}],\"tools\":[{\"input_schema\":{}}]}",
                     "tools", "tools[0].name");
}

/* A tool answer, whole and streamed: the stream assembles (by index, as the SDKs do) into the
 * calls of the whole answer, pieces cut at character boundaries. */
static void check_tool_answer(enum sg_mock_api api)
{
    bool oa = api == SG_MOCK_API_OPENAI;
    char x[512];
    snprintf(x, sizeof x, "%s,\"tool_choice\":%s", oa ? oa_tools : an_tools,
             oa ? "\"required\"" : "{\"type\":\"any\"}");
    struct sg_mock_chat c;
    chat_with(api, x, true, &c);
    struct sg_mock_answer a;
    sg_mock_answer_init(&a, &c, "provider-a", NULL, oa ? "chatcmpl-test1" : "msg_test1", 1, 0);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_mock_render_body(&b, &a), 0);
    struct json_object *whole = parse_ok(b.data, b.len);
    size_t n;
    char *s = render_stream(&a, &n);
    struct ev evs[64];
    assert_int_equal(split_events(s, evs, 64), n);
    char args[2][128] = {"", ""};
    for (size_t i = 0; i < n; i++) {
        if (strcmp(evs[i].data, "[DONE]") == 0)
            continue;
        struct json_object *o = parse_ok(evs[i].data, strlen(evs[i].data)), *v;
        if (oa && json_object_object_get_ex(at(o, "choices.0.delta"), "tool_calls", &v)) {
            int k = (int)int_at(v, "0.index");
            strcat(args[k], str_at(v, "0.function.arguments"));
        }
        if (!oa && strcmp(evs[i].name, "content_block_delta") == 0)
            strcat(args[int_at(o, "index")], str_at(o, "delta.partial_json"));
        if (oa && i == n - 2)
            assert_string_equal(str_at(o, "choices.0.finish_reason"), "tool_calls");
        if (!oa && strcmp(evs[i].name, "message_delta") == 0)
            assert_string_equal(str_at(o, "delta.stop_reason"), "tool_use");
        json_object_put(o);
    }
    for (int k = 0; k < 2; k++) {
        struct json_object *got = parse_ok(args[k], strlen(args[k]));
        assert_string_equal(str_at(got, "text"), "Gr\xc3\xbc\xc3\x9f"
                                                 "e \xf0\x9f\x98\x80");
        assert_int_equal(int_at(got, "call"), k);
        char path[64];
        snprintf(path, sizeof path,
                 oa ? "choices.0.message.tool_calls.%d.function.arguments" : "content.%d.input", k);
        if (oa)
            assert_string_equal(str_at(whole, path), args[k]);
        else
            assert_string_equal(
                json_object_to_json_string_ext(at(whole, path), JSON_C_TO_STRING_PLAIN),
                json_object_to_json_string_ext(got, JSON_C_TO_STRING_PLAIN));
        json_object_put(got);
    }
    if (oa) {
        assert_null(at(whole, "choices.0.message.content"));
        assert_string_equal(str_at(whole, "choices.0.message.tool_calls.1.function.name"),
                            "get_time");
        assert_true(strncmp(str_at(whole, "choices.0.message.tool_calls.0.id"), "call_", 5) == 0);
        assert_string_equal(str_at(whole, "choices.0.finish_reason"), "tool_calls");
    } else {
        assert_string_equal(str_at(whole, "content.0.type"), "tool_use");
        assert_true(strncmp(str_at(whole, "content.1.id"), "toolu_", 6) == 0);
        assert_string_equal(str_at(whole, "stop_reason"), "tool_use");
    }
    json_object_put(whole);
    free(s);
    sg_buf_dispose(&b);
    sg_mock_chat_dispose(&c);
}

static void test_tool_answers(void **state)
{
    (void)state;
    check_tool_answer(SG_MOCK_API_OPENAI);
    check_tool_answer(SG_MOCK_API_ANTHROPIC);
}

/* An Anthropic call forced by name fits the tool's input_schema: its required properties
 * filled by type (nested objects, arrays, enums too), whole and streamed alike. */
static void test_forced_tool_input(void **state)
{
    (void)state;
    static const char schema[] =
        "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"pop\":{\"type\":"
        "\"integer\"},\"area\":{\"type\":\"number\"},\"capital\":{\"type\":\"boolean\"},"
        "\"unit\":{\"enum\":[\"km\",\"mi\"]},\"tags\":{\"type\":\"array\",\"items\":{\"type\":"
        "\"string\"},\"minItems\":2},\"mayor\":{\"type\":[\"object\",\"null\"],\"properties\":{"
        "\"name\":{\"type\":\"string\"}},\"required\":[\"name\"]},\"note\":{\"anyOf\":[{"
        "\"type\":\"null\"},{\"type\":\"string\"}]},\"extra\":{\"type\":\"string\"}},"
        "\"required\":[\"city\",\"pop\",\"area\",\"capital\",\"unit\",\"tags\",\"mayor\","
        "\"note\"],\"additionalProperties\":false}";
    static const char want[] =
        "{\"city\":\"Gr\xc3\xbc\xc3\x9f"
        "e \xf0\x9f\x98\x80\",\"pop\":1,\"area\":1.5,\"capital\":true,\"unit\":\"km\","
        "\"tags\":[\"Gr\xc3\xbc\xc3\x9f"
        "e \xf0\x9f\x98\x80\",\"Gr\xc3\xbc\xc3\x9f"
        "e \xf0\x9f\x98\x80\"],\"mayor\":{\"name\":\"Gr\xc3\xbc\xc3\x9f"
        "e \xf0\x9f\x98\x80\"},\"note\":null}";
    char x[1536];
    snprintf(x, sizeof x,
             "\"tools\":[{\"name\":\"other\",\"input_schema\":{}},{\"name\":\"json_tool_call\","
             "\"input_schema\":%s}],\"tool_choice\":{\"type\":\"tool\",\"name\":"
             "\"json_tool_call\"}",
             schema);
    struct sg_mock_chat c;
    chat_with(SG_MOCK_API_ANTHROPIC, x, true, &c);
    assert_int_equal(c.n_calls, 1);
    assert_non_null(c.input);
    assert_string_equal(c.input, want);
    struct sg_mock_answer a;
    sg_mock_answer_init(&a, &c, "provider-a", NULL, "msg_f1", 1, 0);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    assert_int_equal(sg_mock_render_body(&b, &a), 0);
    struct json_object *whole = parse_ok(b.data, b.len);
    assert_string_equal(str_at(whole, "content.0.name"), "json_tool_call");
    assert_string_equal(
        json_object_to_json_string_ext(at(whole, "content.0.input"),
                                       JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE),
        want);
    assert_string_equal(str_at(whole, "stop_reason"), "tool_use");
    json_object_put(whole);
    size_t n;
    char *sse = render_stream(&a, &n);
    struct ev evs[32];
    assert_int_equal(split_events(sse, evs, 32), n);
    char input[1024] = "";
    for (size_t i = 0; i < n; i++) {
        if (strcmp(evs[i].name, "content_block_delta") != 0)
            continue;
        struct json_object *o = parse_ok(evs[i].data, strlen(evs[i].data));
        strcat(input, str_at(o, "delta.partial_json"));
        json_object_put(o);
    }
    assert_string_equal(input, want);
    free(sse);
    sg_buf_dispose(&b);
    sg_mock_chat_dispose(&c);

    /* A schema that requires nothing keeps the usual arguments, unless it forbids them. */
    const char *open_s = "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":true}";
    const char *closed = "{\"type\":\"object\",\"properties\":{\"a\":{\"type\":\"string\"}},"
                         "\"additionalProperties\":false}";
    const char *schemas[] = {open_s, closed};
    for (size_t i = 0; i < 2; i++) {
        snprintf(x, sizeof x,
                 "\"tools\":[{\"name\":\"t\",\"input_schema\":%s}],\"tool_choice\":{\"type\":"
                 "\"tool\",\"name\":\"t\"}",
                 schemas[i]);
        chat_with(SG_MOCK_API_ANTHROPIC, x, false, &c);
        if (i == 0)
            assert_null(c.input);
        else
            assert_string_equal(c.input, "{}");
        sg_mock_chat_dispose(&c);
    }
    /* OpenAI's forced function keeps the usual arguments; a hostile schema (a required name
     * listed again and again, nested) stays bounded. */
    snprintf(x, sizeof x,
             "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"t\",\"parameters\":%s}}],"
             "\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"t\"}}",
             closed);
    chat_with(SG_MOCK_API_OPENAI, x, false, &c);
    assert_null(c.input);
    sg_mock_chat_dispose(&c);
    struct sg_buf big;
    sg_buf_init(&big, 0);
    sg_buf_appends(&big, "\"tools\":[{\"name\":\"t\",\"input_schema\":");
    for (int d = 0; d < 12; d++) {
        sg_buf_appends(&big, "{\"type\":\"object\",\"required\":[");
        for (int k = 0; k < 40; k++)
            sg_buf_appendf(&big, "%s\"p%d\"", k ? "," : "", k);
        sg_buf_appends(&big, "],\"properties\":{\"p0\":");
    }
    sg_buf_appends(&big, "{\"type\":\"integer\"}");
    for (int d = 0; d < 12; d++)
        sg_buf_appends(&big, "}}");
    sg_buf_appends(&big, "}],\"tool_choice\":{\"type\":\"tool\",\"name\":\"t\"}");
    char body[8192];
    snprintf(body, sizeof body,
             "{\"model\":\"m\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
             "\"x\"}],%s}",
             big.data);
    parse_chat(SG_MOCK_API_ANTHROPIC, body, &c);
    assert_non_null(c.input);
    assert_true(strlen(c.input) < 8192);
    json_object_put(parse_ok(c.input, strlen(c.input)));
    sg_mock_chat_dispose(&c);
    sg_buf_dispose(&big);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_parse_strict),
        cmocka_unit_test(test_count_tokens),
        cmocka_unit_test(test_parse_openai),
        cmocka_unit_test(test_parse_anthropic),
        cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_reply_text),
        cmocka_unit_test(test_render_openai_body),
        cmocka_unit_test(test_render_anthropic_body),
        cmocka_unit_test(test_openai_stream),
        cmocka_unit_test(test_no_usage),
        cmocka_unit_test(test_anthropic_stream),
        cmocka_unit_test(test_render_errors),
        cmocka_unit_test(test_render_errors_utf8),
        cmocka_unit_test(test_faults_merge),
        cmocka_unit_test(test_faults_tokens_per_s_range),
        cmocka_unit_test(test_token_offsets),
        cmocka_unit_test(test_faults_json_roundtrip),
        cmocka_unit_test(test_decide),
        cmocka_unit_test(test_error_rate_seeded),
        cmocka_unit_test(test_live),
        cmocka_unit_test(test_parse_tool_choice),
        cmocka_unit_test(test_tool_answers),
        cmocka_unit_test(test_forced_tool_input),
    };
    return cmocka_run_group_tests_name("mock", tests, NULL, NULL);
}
