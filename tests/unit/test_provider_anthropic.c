/* provider: chat.completions -> Anthropic Messages and back (anthropic.c). Fixtures are written
 * by hand from the public API references of both providers. */
#include "http/http.h"
#include "provider/provider.h"

#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "json_path.h"

static struct sg_deployment dep = {.id = "claude",
                                   .provider = "anthropic",
                                   .provider_model = "claude-3-5-haiku-20241022",
                                   .kind = SG_PROVIDER_ANTHROPIC,
                                   .api_base = "https://api.anthropic.com",
                                   .input_cost_per_token = -1,
                                   .output_cost_per_token = -1};

/* Encode a chat body; returns the parsed Messages request (caller puts it). */
static struct json_object *encode(const char *body, bool caching)
{
    struct sg_chat_request r;
    char err[300];
    assert_int_equal(sg_chat_request_parse(body, strlen(body), &r, err, sizeof err), SG_OK);
    struct sg_anthropic_opts o = {.prompt_caching = caching};
    struct sg_buf out;
    sg_buf_init(&out, 0);
    int rc = sg_anthropic_encode_chat(&r, &dep, &o, &out, err, sizeof err);
    if (rc != SG_OK)
        fail_msg("encode failed: %s", err);
    struct json_object *j = json_tokener_parse(out.data);
    assert_non_null(j);
    sg_buf_dispose(&out);
    return j;
}

static void encode_fails(const char *body, const char *part)
{
    struct sg_chat_request r;
    char err[300] = "";
    assert_int_equal(sg_chat_request_parse(body, strlen(body), &r, err, sizeof err), SG_OK);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_anthropic_encode_chat(&r, &dep, NULL, &out, err, sizeof err), SG_EINVAL);
    if (!strstr(err, part))
        fail_msg("expected '%s' in '%s'", part, err);
    sg_buf_dispose(&out);
}

static void test_encode_basic(void **state)
{
    (void)state;
    struct json_object *j =
        encode("{\"model\":\"app/chat\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief."
               "\"},{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"No lists."
               "\"}]},{\"role\":\"user\",\"content\":\"Hi\"}],\"temperature\":0.3,\"top_p\":0.9,"
               "\"stop\":\"END\",\"max_tokens\":100,\"user\":\"u-7\",\"stream\":true,"
               "\"stream_options\":{\"include_usage\":true},\"frequency_penalty\":0}",
               false);
    assert_string_equal(json_path_text(j, "model"), "\"claude-3-5-haiku-20241022\"");
    assert_string_equal(json_path_text(j, "system"), "[{\"type\":\"text\",\"text\":\"Be brief.\"},"
                                                     "{\"type\":\"text\",\"text\":\"No lists.\"}]");
    assert_string_equal(json_path_text(j, "messages"),
                        "[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}]");
    assert_string_equal(json_path_text(j, "max_tokens"), "100");
    assert_string_equal(json_path_text(j, "temperature"), "0.3");
    assert_string_equal(json_path_text(j, "top_p"), "0.9");
    assert_string_equal(json_path_text(j, "stop_sequences"), "[\"END\"]");
    assert_string_equal(json_path_text(j, "metadata"), "{\"user_id\":\"u-7\"}");
    assert_string_equal(json_path_text(j, "stream"), "true");
    assert_string_equal(json_path_text(j, "stream_options"), "(missing)");
    assert_string_equal(json_path_text(j, "frequency_penalty"), "(missing)");
    json_object_put(j);
}

static void test_encode_max_tokens_and_clamp(void **state)
{
    (void)state;
    /* No max_tokens: Anthropic requires one; the table gives the model's default. */
    struct json_object *j = encode("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":"
                                   "\"x\"}],\"temperature\":1.7,\"stop\":[\"a\",\"b\"]}",
                                   false);
    assert_string_equal(json_path_text(j, "max_tokens"), "8192");
    assert_string_equal(json_path_text(j, "temperature"), "1.0");
    assert_string_equal(json_path_text(j, "stop_sequences"), "[\"a\",\"b\"]");
    json_object_put(j);
    j = encode("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
               "\"max_tokens\":5,\"max_completion_tokens\":50}",
               false);
    assert_string_equal(json_path_text(j, "max_tokens"),
                        "50"); /* the newer name wins, as OpenAI does */
    json_object_put(j);
    struct sg_deployment unknown = dep;
    unknown.provider_model = "claude-future-9";
    struct sg_chat_request r;
    char err[300];
    const char *b = "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    assert_int_equal(sg_chat_request_parse(b, strlen(b), &r, err, sizeof err), SG_OK);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_anthropic_encode_chat(&r, &unknown, NULL, &out, err, sizeof err), SG_OK);
    assert_non_null(strstr(out.data, "\"max_tokens\":4096"));
    sg_buf_dispose(&out);
}

static void test_encode_tools_round_trip(void **state)
{
    (void)state;
    /* The second leg of a tool call: the assistant's call and two results, then a question. */
    struct json_object *j = encode(
        "{\"model\":\"a\",\"messages\":["
        "{\"role\":\"user\",\"content\":\"Weather in Paris and Rome?\"},"
        "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":["
        "{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},"
        "{\"id\":\"call_2\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"arguments\":\"{\\\"city\\\":\\\"Rome\\\"}\"}}]},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C\"},"
        "{\"role\":\"tool\",\"tool_call_id\":\"call_2\",\"content\":[{\"type\":\"text\","
        "\"text\":\"24C\"}]},"
        "{\"role\":\"user\",\"content\":\"Which is warmer?\"}],"
        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
        "\"description\":\"Current weather\",\"parameters\":{\"type\":\"object\",\"properties\":"
        "{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}}},"
        "{\"type\":\"function\",\"function\":{\"name\":\"now\"}}],"
        "\"tool_choice\":\"required\",\"parallel_tool_calls\":false}",
        false);
    assert_string_equal(json_path_text(j, "messages.1.role"), "\"assistant\"");
    /* The empty content of a tool-calling turn is left out: Anthropic rejects empty text. */
    assert_string_equal(json_path_text(j, "messages.1.content"),
                        "[{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":\"get_weather\","
                        "\"input\":{\"city\":\"Paris\"}},{\"type\":\"tool_use\",\"id\":\"call_2\","
                        "\"name\":\"get_weather\",\"input\":{\"city\":\"Rome\"}}]");
    /* Both results and the question are one user turn. */
    assert_string_equal(json_path_text(j, "messages.2.role"), "\"user\"");
    assert_string_equal(json_path_text(j, "messages.2.content"),
                        "[{\"type\":\"tool_result\",\"tool_use_id\":\"call_1\",\"content\":"
                        "\"18C\"},{\"type\":\"tool_result\",\"tool_use_id\":\"call_2\","
                        "\"content\":[{\"type\":\"text\",\"text\":\"24C\"}]},{\"type\":\"text\","
                        "\"text\":\"Which is warmer?\"}]");
    assert_string_equal(json_path_text(j, "messages.3"), "(missing)");
    assert_string_equal(json_path_text(j, "tools.0"),
                        "{\"name\":\"get_weather\",\"description\":\"Current weather\","
                        "\"input_schema\":{\"type\":\"object\",\"properties\":{\"city\":{\"type\":"
                        "\"string\"}},\"required\":[\"city\"]}}");
    assert_string_equal(json_path_text(j, "tools.1"),
                        "{\"name\":\"now\",\"input_schema\":{\"type\":"
                        "\"object\",\"properties\":{}}}");
    assert_string_equal(json_path_text(j, "tool_choice"),
                        "{\"type\":\"any\",\"disable_parallel_tool_use\":true}");
    json_object_put(j);
    j = encode("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":"
               "[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":"
               "\"function\",\"function\":{\"name\":\"f\"}}}",
               false);
    assert_string_equal(json_path_text(j, "tool_choice"), "{\"type\":\"tool\",\"name\":\"f\"}");
    json_object_put(j);
}

static void test_encode_images(void **state)
{
    (void)state;
    struct json_object *j = encode(
        "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"What is this?\"},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,iVBORw0KGgo=\"}},"
        "{\"type\":\"image_url\",\"image_url\":{\"url\":\"https://example.com/cat.jpg\","
        "\"detail\":\"low\"}}]}]}",
        false);
    assert_string_equal(json_path_text(j, "messages.0.content.1"),
                        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
                        "\"image/png\",\"data\":\"iVBORw0KGgo=\"}}");
    assert_string_equal(json_path_text(j, "messages.0.content.2.source"),
                        "{\"type\":\"url\",\"url\":\"https://example.com/cat.jpg\"}");
    json_object_put(j);
}

/* file parts: a PDF becomes a base64 document, plain text a text document of the decoded
 * bytes, an image an image block; the filename is the title, cache_control is kept. */
static void test_encode_files(void **state)
{
    (void)state;
    struct json_object *j = encode(
        "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"text\",\"text\":\"Summarise\"},"
        "{\"type\":\"file\",\"file\":{\"filename\":\"report.pdf\",\"file_data\":"
        "\"data:application/pdf;base64,JVBERi0xLjQK\"},\"cache_control\":{\"type\":\"ephemeral\"}},"
        "{\"type\":\"file\",\"file\":{\"file_data\":\"data:text/plain;base64,R3LDvMOfZQ==\"}},"
        "{\"type\":\"file\",\"file\":{\"filename\":\"a.png\",\"file_data\":"
        "\"data:image/png;base64,iVBORw0KGgo=\"}}]}]}",
        false);
    assert_string_equal(json_path_text(j, "messages.0.content.1"),
                        "{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":"
                        "\"application/pdf\",\"data\":\"JVBERi0xLjQK\"},\"title\":\"report.pdf\","
                        "\"cache_control\":{\"type\":\"ephemeral\"}}");
    assert_string_equal(json_path_text(j, "messages.0.content.2"),
                        "{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":"
                        "\"text/plain\",\"data\":\"Grüße\"}}");
    assert_string_equal(json_path_text(j, "messages.0.content.3"),
                        "{\"type\":\"image\",\"source\":{\"type\":\"base64\",\"media_type\":"
                        "\"image/png\",\"data\":\"iVBORw0KGgo=\"}}");
    json_object_put(j);
}

static void test_encode_files_rejected(void **state)
{
    (void)state;
#define FILE_MSG(f)                                                                                \
    "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"                    \
    "\"text\",\"text\":\"x\"},{\"type\":\"file\",\"file\":" f "}]}]}"
    encode_fails(FILE_MSG("{\"file_id\":\"file-abc\"}"),
                 "messages[0].content[1]: file.file_id names a file in OpenAI's Files API");
    encode_fails(FILE_MSG("{\"filename\":\"a.docx\",\"file_data\":\"data:application/"
                          "vnd.openxmlformats-officedocument.wordprocessingml.document;base64,"
                          "UEsDBA==\"}"),
                 "a file of type 'application/vnd.openxmlformats-officedocument."
                 "wordprocessingml.document' cannot be read by Anthropic");
    encode_fails(FILE_MSG("{\"file_data\":\"JVBERi0xLjQK\"}"), "must be a base64 data URL");
    encode_fails(FILE_MSG("{\"file_data\":\"data:text/plain;base64,//79\"}"),
                 "base64 of UTF-8 text");
    encode_fails(FILE_MSG("{\"file_data\":\"data:text/plain;base64,a$b\"}"),
                 "base64 of UTF-8 text");
    encode_fails(FILE_MSG("{}"), "a file part needs file.file_data");
    encode_fails(FILE_MSG("null"), "a file part needs file.file_data");
#undef FILE_MSG
}

static void test_encode_prompt_caching(void **state)
{
    (void)state;
    const char *body =
        "{\"model\":\"a\",\"messages\":[{\"role\":\"system\",\"content\":\"Long stable policy\"},"
        "{\"role\":\"user\",\"content\":\"q\"}],\"tools\":[{\"type\":\"function\",\"function\":"
        "{\"name\":\"f\"}},{\"type\":\"function\",\"function\":{\"name\":\"g\"}}]}";
    struct json_object *j = encode(body, true);
    assert_string_equal(json_path_text(j, "tools.0.cache_control"), "(missing)");
    assert_string_equal(json_path_text(j, "tools.1.cache_control"), "{\"type\":\"ephemeral\"}");
    assert_string_equal(json_path_text(j, "system.0.cache_control"), "{\"type\":\"ephemeral\"}");
    assert_string_equal(json_path_text(j, "messages.0.content.0.cache_control"), "(missing)");
    json_object_put(j);
    /* Without the feature flag: no markers. */
    j = encode(body, false);
    assert_string_equal(json_path_text(j, "tools.1.cache_control"), "(missing)");
    assert_string_equal(json_path_text(j, "system.0.cache_control"), "(missing)");
    json_object_put(j);
    /* The client already placed 3 breakpoints: one left, the tools get it (earlier in the
     * prefix); never more than 4 in all. */
    const char *three =
        "{\"model\":\"a\",\"messages\":[{\"role\":\"system\",\"content\":\"S\"},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\",\"cache_control\":"
        "{\"type\":\"ephemeral\"}},{\"type\":\"text\",\"text\":\"b\",\"cache_control\":{\"type\":"
        "\"ephemeral\"}},{\"type\":\"text\",\"text\":\"c\",\"cache_control\":{\"type\":"
        "\"ephemeral\"}}]}],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}]}";
    j = encode(three, true);
    assert_string_equal(json_path_text(j, "tools.0.cache_control"), "{\"type\":\"ephemeral\"}");
    assert_string_equal(json_path_text(j, "system.0.cache_control"), "(missing)");
    assert_string_equal(json_path_text(j, "messages.0.content.2.cache_control"),
                        "{\"type\":\"ephemeral\"}");
    json_object_put(j);
}

static void test_encode_rejects(void **state)
{
    (void)state;
    encode_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"n\":2}",
                 "n other than 1");
    encode_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                 "\"input_audio\",\"input_audio\":{}}]}]}",
                 "part type 'input_audio' is not supported by Anthropic deployments (text, "
                 "image_url and file are)");
    encode_fails(
        "{\"model\":\"a\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":"
        "\"c\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
        "arguments must be a JSON object");
    encode_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}",
                 "tool_call_id");
    encode_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}",
                 "at least one user or assistant");
    encode_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"functions\":[{\"name\":\"f\"}]}",
                 "send 'tools'");
    encode_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"function_call\":\"auto\"}",
                 "'functions' and 'function_call'");
    encode_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                 "\"modalities\":[\"text\",\"audio\"]}",
                 "audio output");
    encode_fails("{\"model\":\"a\",\"messages\":[{\"role\":\"wizard\",\"content\":\"x\"}]}",
                 "wizard");
}

/* From the Messages API reference: a text answer with cache usage. */
static const char msg_text[] =
    "{\"id\":\"msg_01XFDUDYJgAACzvnptvVoYEL\",\"type\":\"message\",\"role\":\"assistant\","
    "\"model\":\"claude-3-5-haiku-20241022\",\"content\":[{\"type\":\"text\",\"text\":\"Hello! "
    "\\\"Hi\\\"\"}],\"stop_reason\":\"end_turn\",\"stop_sequence\":null,\"usage\":{"
    "\"input_tokens\":12,\"cache_creation_input_tokens\":100,\"cache_read_input_tokens\":2000,"
    "\"output_tokens\":6}}";

static const char msg_tool[] =
    "{\"id\":\"msg_2\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\","
    "\"content\":[{\"type\":\"text\",\"text\":\"Let me check.\"},{\"type\":\"tool_use\","
    "\"id\":\"toolu_01A\",\"name\":\"get_weather\",\"input\":{\"city\":\"Paris\"}}],"
    "\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":50,"
    "\"output_tokens\":20}}";

static void test_decode_response(void **state)
{
    (void)state;
    struct sg_buf out;
    struct sg_usage u;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_anthropic_decode_response(msg_text, strlen(msg_text), 1700000000, &out, &u),
                     SG_OK);
    struct json_object *j = json_tokener_parse(out.data);
    assert_non_null(j);
    assert_string_equal(json_path_text(j, "object"), "\"chat.completion\"");
    assert_string_equal(json_path_text(j, "id"), "\"chatcmpl-01XFDUDYJgAACzvnptvVoYEL\"");
    assert_string_equal(json_path_text(j, "created"), "1700000000");
    assert_string_equal(json_path_text(j, "choices.0.message.content"), "\"Hello! \\\"Hi\\\"\"");
    assert_string_equal(json_path_text(j, "choices.0.finish_reason"), "\"stop\"");
    /* prompt_tokens counts every input token; the cached part is in the details. */
    assert_string_equal(json_path_text(j, "usage.prompt_tokens"), "2112");
    assert_string_equal(json_path_text(j, "usage.completion_tokens"), "6");
    assert_string_equal(json_path_text(j, "usage.total_tokens"), "2118");
    assert_string_equal(json_path_text(j, "usage.prompt_tokens_details.cached_tokens"), "2000");
    assert_string_equal(json_path_text(j, "usage.cache_creation_input_tokens"), "100");
    assert_int_equal(u.input_tokens, 2112);
    assert_int_equal(u.cache_read_tokens, 2000);
    assert_int_equal(u.cache_creation_tokens, 100);
    assert_int_equal(u.output_tokens, 6);
    json_object_put(j);

    sg_buf_reset(&out);
    assert_int_equal(sg_anthropic_decode_response(msg_tool, strlen(msg_tool), 1, &out, &u), SG_OK);
    j = json_tokener_parse(out.data);
    assert_string_equal(json_path_text(j, "choices.0.finish_reason"), "\"tool_calls\"");
    assert_string_equal(json_path_text(j, "choices.0.message.content"), "\"Let me check.\"");
    assert_string_equal(json_path_text(j, "choices.0.message.tool_calls"),
                        "[{\"id\":\"toolu_01A\",\"type\":\"function\",\"function\":{\"name\":"
                        "\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}}]");
    json_object_put(j);

    /* Not a Messages answer. */
    sg_buf_reset(&out);
    assert_int_equal(sg_anthropic_decode_response("{\"type\":\"error\"}", 16, 1, &out, &u),
                     SG_EPROTO);
    assert_int_equal(sg_anthropic_decode_response("{\"type\":\"mess", 13, 1, &out, &u), SG_EPROTO);
    assert_int_equal(sg_anthropic_decode_response("", 0, 1, &out, &u), SG_EPROTO);
    /* Text that is not UTF-8 (an overlong '/', json-c's own check lets it through) is not handed
     * on to the client. */
    static const char bad_text[] =
        "{\"type\":\"message\",\"role\":\"assistant\",\"model\":\"m\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"a\xc0\xaf\"}],\"stop_reason\":\"end_turn\",\"usage\":{}}";
    assert_int_equal(sg_anthropic_decode_response(bad_text, strlen(bad_text), 1, &out, &u),
                     SG_EPROTO);
    sg_buf_dispose(&out);
}

/* Feed an SSE text through the splitter and the translator. */
struct feed_ctx {
    struct sg_anthropic_stream s;
    struct sg_buf out;
    int rc;
};

static void on_event(void *ud, struct sg_slice raw, struct sg_slice event, struct sg_slice data)
{
    (void)raw;
    struct feed_ctx *c = ud;
    int rc = sg_anthropic_stream_event(&c->s, event, data, &c->out);
    if (rc && !c->rc)
        c->rc = rc;
}

static int run_stream(struct feed_ctx *c, const char *sse, bool include_usage)
{
    sg_anthropic_stream_init(&c->s, include_usage, 1700000000);
    sg_buf_init(&c->out, 0);
    c->rc = 0;
    struct sg_sse_parser p;
    sg_sse_parser_init(&p, 1 << 20, on_event, c);
    /* Byte by byte: events split across reads must not matter. */
    for (size_t i = 0; sse[i]; i++)
        sg_sse_parser_feed(&p, sse + i, 1);
    sg_sse_parser_dispose(&p);
    return c->rc;
}

#define EV(name, json) "event: " name "\ndata: " json "\n\n"

static const char text_stream[] =
    EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1nZdL29x\","
                        "\"type\":\"message\",\"role\":\"assistant\",\"content\":[],\"model\":"
                        "\"claude-3-5-haiku-20241022\",\"stop_reason\":null,\"stop_sequence\":null,"
                        "\"usage\":{\"input_tokens\":25,\"cache_creation_input_tokens\":0,"
                        "\"cache_read_input_tokens\":1000,\"output_tokens\":1}}}")
        EV("content_block_start",
           "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
           "{\"type\":\"text\",\"text\":\"\"}}") EV("ping", "{\"type\": \"ping\"}")
            EV("content_block_delta",
               "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
               "\"text_delta\",\"text\":\"Hello\"}}")
                EV("content_block_delta",
                   "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                   "\"text_delta\",\"text\":\" \\\"world\\\"\\n\"}}")
                    EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")
                        EV("message_delta",
                           "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"end_turn\","
                           "\"stop_sequence\":null},\"usage\":{\"output_tokens\":15}}")
                            EV("message_stop", "{\"type\":\"message_stop\"}");

/* The chunks' JSON objects, [DONE] as NULL-terminated list end; returns how many. */
static size_t chunks(const char *sse, struct json_object **out, size_t max, bool *done)
{
    size_t n = 0;
    *done = false;
    for (const char *p = sse; (p = strstr(p, "data: ")) != NULL;) {
        p += 6;
        const char *e = strstr(p, "\n\n");
        assert_non_null(e);
        if (strncmp(p, "[DONE]", 6) == 0)
            *done = true;
        else if (n < max)
            out[n++] = json_tokener_parse(p);
        p = e;
    }
    return n;
}

static void test_stream_text(void **state)
{
    (void)state;
    struct feed_ctx c;
    assert_int_equal(run_stream(&c, text_stream, true), SG_OK);
    assert_true(c.s.done);
    struct json_object *ch[16];
    bool done;
    size_t n = chunks(c.out.data, ch, 16, &done);
    assert_true(done);
    assert_int_equal(n, 5); /* role, 2 deltas, finish, usage */
    assert_string_equal(json_path_text(ch[0], "object"), "\"chat.completion.chunk\"");
    /* A chat client sees a chat.completions id, with Anthropic's in it. */
    assert_string_equal(json_path_text(ch[0], "id"), "\"chatcmpl-1nZdL29x\"");
    assert_string_equal(json_path_text(ch[0], "choices.0.delta"),
                        "{\"role\":\"assistant\",\"content\":\"\"}");
    assert_string_equal(json_path_text(ch[1], "choices.0.delta.content"), "\"Hello\"");
    assert_string_equal(json_path_text(ch[2], "choices.0.delta.content"), "\" \\\"world\\\"\\n\"");
    assert_string_equal(json_path_text(ch[3], "choices.0.finish_reason"), "\"stop\"");
    assert_string_equal(json_path_text(ch[4], "choices"), "[]");
    assert_string_equal(json_path_text(ch[4], "usage.prompt_tokens"), "1025");
    assert_string_equal(json_path_text(ch[4], "usage.completion_tokens"), "15");
    assert_string_equal(json_path_text(ch[4], "usage.prompt_tokens_details.cached_tokens"), "1000");
    for (size_t i = 0; i < n; i++)
        json_object_put(ch[i]);
    assert_int_equal(c.s.usage.input_tokens, 1025);
    assert_int_equal(c.s.usage.output_tokens, 15);
    sg_buf_dispose(&c.out);

    /* The client did not ask for usage: no usage chunk, but the gateway still knows it. */
    assert_int_equal(run_stream(&c, text_stream, false), SG_OK);
    n = chunks(c.out.data, ch, 16, &done);
    assert_int_equal(n, 4);
    assert_true(done);
    assert_int_equal(c.s.usage.output_tokens, 15);
    for (size_t i = 0; i < n; i++)
        json_object_put(ch[i]);
    sg_buf_dispose(&c.out);
}

static const char tool_stream[] =
    EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_t\",\"type\":"
                        "\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"claude\","
                        "\"usage\":{\"input_tokens\":400,\"output_tokens\":1}}}")
        EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":"
                                  "{\"type\":\"text\",\"text\":\"\"}}")
            EV("content_block_delta",
               "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
               "\"text_delta\",\"text\":\"Checking.\"}}")
                EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}") EV(
                    "content_block_start",
                    "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
                    "{\"type\":\"tool_use\",\"id\":\"toolu_01T\",\"name\":"
                    "\"get_weather\",\"input\":{}}}")
                    EV("content_block_delta",
                       "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
                       "\"input_json_delta\",\"partial_json\":\"\"}}")
                        EV("content_block_delta",
                           "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
                           "\"input_json_delta\",\"partial_json\":\"{\\\"city\\\": \"}}")
                            EV("content_block_delta",
                               "{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":"
                               "\"input_json_delta\",\"partial_json\":\"\\\"Paris\\\"}\"}}")
                                EV("content_block_stop",
                                   "{\"type\":\"content_block_stop\",\"index\":1}")
                                    EV("message_delta",
                                       "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                                       "\"tool_use\","
                                       "\"stop_sequence\":null},\"usage\":{\"output_tokens\":89}}")
                                        EV("message_stop", "{\"type\":\"message_stop\"}");

static void test_stream_tool_use(void **state)
{
    (void)state;
    struct feed_ctx c;
    assert_int_equal(run_stream(&c, tool_stream, false), SG_OK);
    struct json_object *ch[16];
    bool done;
    size_t n = chunks(c.out.data, ch, 16, &done);
    assert_int_equal(n, 6);
    assert_string_equal(json_path_text(ch[1], "choices.0.delta.content"), "\"Checking.\"");
    assert_string_equal(json_path_text(ch[2], "choices.0.delta.tool_calls"),
                        "[{\"index\":0,\"id\":\"toolu_01T\",\"type\":\"function\",\"function\":"
                        "{\"name\":\"get_weather\",\"arguments\":\"\"}}]");
    assert_string_equal(json_path_text(ch[3], "choices.0.delta.tool_calls.0.function.arguments"),
                        "\"{\\\"city\\\": \"");
    assert_string_equal(json_path_text(ch[4], "choices.0.delta.tool_calls.0.function.arguments"),
                        "\"\\\"Paris\\\"}\"");
    assert_string_equal(json_path_text(ch[5], "choices.0.finish_reason"), "\"tool_calls\"");
    for (size_t i = 0; i < n; i++)
        json_object_put(ch[i]);
    sg_buf_dispose(&c.out);
}

static void test_stream_error_and_broken(void **state)
{
    (void)state;
    struct feed_ctx c;
    /* An error event mid-stream (Anthropic's overloaded_error). */
    const char err_stream[] =
        EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":"
                            "\"c\",\"usage\":{\"input_tokens\":3}}}")
            EV("error", "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                        "\"Overloaded\"}}");
    assert_int_equal(run_stream(&c, err_stream, false), SG_OK);
    assert_true(c.s.failed);
    assert_false(c.s.done);
    assert_string_equal(c.s.error_type, "overloaded_error");
    assert_string_equal(c.s.error, "Overloaded");
    sg_buf_dispose(&c.out);

    /* Truncated: no message_stop, so not done (the gateway reports an interrupted stream). */
    char cut[sizeof text_stream];
    memcpy(cut, text_stream, sizeof text_stream);
    *strstr(cut, "event: content_block_stop") = '\0';
    assert_int_equal(run_stream(&c, cut, true), SG_OK);
    assert_false(c.s.done);
    assert_null(strstr(c.out.data, "[DONE]"));
    sg_buf_dispose(&c.out);

    /* Not JSON; content before message_start; a delta for a block never started. */
    assert_int_equal(run_stream(&c, "event: message_start\ndata: {not json\n\n", false), SG_EPROTO);
    sg_buf_dispose(&c.out);
    assert_int_equal(run_stream(&c,
                                EV("content_block_delta", "{\"type\":\"content_block_delta\","
                                                          "\"delta\":{\"type\":\"text_delta\","
                                                          "\"text\":\"x\"}}"),
                                false),
                     SG_EPROTO);
    sg_buf_dispose(&c.out);
    assert_int_equal(
        run_stream(&c,
                   EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}")
                       EV("content_block_delta",
                          "{\"type\":\"content_block_delta\",\"delta\":{\"type\":"
                          "\"input_json_delta\",\"partial_json\":\"{\"}}"),
                   false),
        SG_EPROTO);
    sg_buf_dispose(&c.out);
    /* Two message_starts. */
    assert_int_equal(
        run_stream(
            &c,
            EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}")
                EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}"),
            false),
        SG_EPROTO);
    sg_buf_dispose(&c.out);
    /* Unknown event types are skipped (Anthropic may add some). */
    assert_int_equal(
        run_stream(&c,
                   EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\"}}")
                       EV("future", "{\"type\":\"future_thing\"}")
                           EV("message_stop", "{\"type\":\"message_stop\"}"),
                   false),
        SG_OK);
    assert_true(c.s.done);
    sg_buf_dispose(&c.out);
}

/* Anthropic's model_context_window_exceeded cut the answer short as max_tokens does: OpenAI says
 * "length", whole or streamed. */
static void test_context_window_stop_is_length(void **state)
{
    (void)state;
    static const char body[] =
        "{\"id\":\"msg_c\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\","
        "\"content\":[{\"type\":\"text\",\"text\":\"partial\"}],\"stop_reason\":"
        "\"model_context_window_exceeded\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":9,"
        "\"output_tokens\":3}}";
    struct sg_buf out;
    struct sg_usage u;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_anthropic_decode_response(body, strlen(body), 1, &out, &u), SG_OK);
    struct json_object *j = json_tokener_parse(out.data);
    assert_string_equal(json_path_text(j, "choices.0.finish_reason"), "\"length\"");
    json_object_put(j);
    sg_buf_dispose(&out);

    struct feed_ctx c;
    assert_int_equal(
        run_stream(&c,
                   EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"m\","
                                       "\"model\":\"c\",\"usage\":{\"input_tokens\":3}}}")
                       EV("message_delta",
                          "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                          "\"model_context_window_exceeded\"},\"usage\":{\"output_tokens\":2}}")
                           EV("message_stop", "{\"type\":\"message_stop\"}"),
                   false),
        SG_OK);
    assert_non_null(strstr(c.out.data, "\"finish_reason\":\"length\""));
    sg_buf_dispose(&c.out);
}

/* A tool called with no arguments: Anthropic streams its input {} in content_block_start and
 * no (or only empty) input_json_delta. OpenAI streams "{}" as its arguments; an empty string is
 * no JSON, and the openai SDK's stream helper (JSON.parse of a strict tool's arguments) and
 * every caller that parses them would throw. */
static void test_stream_tool_use_without_arguments(void **state)
{
    (void)state;
    static const char sse[] =
        EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_n\",\"model\":"
                            "\"claude\",\"usage\":{\"input_tokens\":40,\"output_tokens\":1}}}")
            EV("content_block_start",
               "{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":"
               "\"tool_use\",\"id\":\"toolu_A\",\"name\":\"now\",\"input\":{}}}")
                EV("content_block_delta",
                   "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
                   "\"input_json_delta\",\"partial_json\":\"\"}}")
                    EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}")
                        EV("content_block_start",
                           "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{"
                           "\"type\":\"tool_use\",\"id\":\"toolu_B\",\"name\":\"ping\","
                           "\"input\":{}}}") EV("content_block_stop",
                                                "{\"type\":\"content_block_stop\",\"index\":1}")
                            EV("message_delta",
                               "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":"
                               "\"tool_use\"},\"usage\":{\"output_tokens\":20}}")
                                EV("message_stop", "{\"type\":\"message_stop\"}");
    struct feed_ctx c;
    assert_int_equal(run_stream(&c, sse, false), SG_OK);
    /* What a client assembles per tool call index: the concatenated arguments. */
    char args[2][64] = {"", ""};
    struct json_object *ch[16];
    bool done;
    size_t n = chunks(c.out.data, ch, 16, &done);
    for (size_t i = 0; i < n; i++) {
        struct json_object *calls = NULL;
        const char *t = json_path_text(ch[i], "choices.0.delta.tool_calls");
        if (t && strcmp(t, "null") != 0)
            calls = json_tokener_parse(t);
        for (size_t k = 0; calls && k < json_object_array_length(calls); k++) {
            struct json_object *tc = json_object_array_get_idx(calls, k), *fn, *a, *ix;
            json_object_object_get_ex(tc, "index", &ix);
            if (json_object_object_get_ex(tc, "function", &fn) &&
                json_object_object_get_ex(fn, "arguments", &a))
                strcat(args[json_object_get_int(ix)], json_object_get_string(a));
        }
        json_object_put(calls);
        json_object_put(ch[i]);
    }
    assert_true(done);
    assert_string_equal(args[0], "{}");
    assert_string_equal(args[1], "{}");
    sg_buf_dispose(&c.out);
}

/* ---- response_format: the json_tool_call tool ---- */

#define RF_USER "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"Paris?\"}],"
#define RF_SCHEMA                                                                                  \
    "{\"type\":\"object\",\"properties\":{\"city\":{\"type\":\"string\"},\"pop\":{\"type\":"       \
    "\"integer\"}},\"required\":[\"city\",\"pop\"],\"additionalProperties\":false}"
#define RF_JSON_SCHEMA                                                                             \
    "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":\"city\","            \
    "\"strict\":true,\"schema\":" RF_SCHEMA "}}"
#define RF_TOOLS                                                                                   \
    "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"parameters\":{"         \
    "\"type\":\"object\",\"properties\":{}}}}]"
#define FORCED "{\"type\":\"tool\",\"name\":\"json_tool_call\",\"disable_parallel_tool_use\":true}"

static void test_encode_response_format(void **state)
{
    (void)state;
    /* json_schema: the schema is the tool's input_schema, the tool is forced, and the field
     * itself is not sent (Anthropic would refuse it). */
    struct json_object *j = encode(RF_USER RF_JSON_SCHEMA "}", false);
    assert_string_equal(json_path_text(j, "tools.0.name"), "\"json_tool_call\"");
    assert_string_equal(json_path_text(j, "tools.0.input_schema"), RF_SCHEMA);
    assert_non_null(strstr(json_path_text(j, "tools.0.description"), "your whole answer"));
    assert_string_equal(json_path_text(j, "tools.1"), "(missing)");
    assert_string_equal(json_path_text(j, "tool_choice"), FORCED);
    assert_string_equal(json_path_text(j, "response_format"), "(missing)");
    json_object_put(j);
    /* A schema without a type gets "type":"object" (Anthropic requires it), a description is
     * passed on to the model, strict: false is fine. */
    j = encode(RF_USER "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                       "\"n\",\"description\":\"A city.\",\"strict\":false,\"schema\":{"
                       "\"properties\":{\"x\":{\"type\":\"number\"}}}}}}",
               false);
    assert_string_equal(json_path_text(j, "tools.0.input_schema"),
                        "{\"type\":\"object\",\"properties\":{\"x\":{\"type\":\"number\"}}}");
    assert_non_null(strstr(json_path_text(j, "tools.0.description"), "The answer: A city."));
    json_object_put(j);
    /* json_object: any object (properties present: Anthropic refuses a schema without). */
    j = encode(RF_USER "\"response_format\":{\"type\":\"json_object\"}}", false);
    assert_string_equal(json_path_text(j, "tools.0.input_schema"),
                        "{\"type\":\"object\",\"properties\":{},\"additionalProperties\":true}");
    assert_string_equal(json_path_text(j, "tool_choice"), FORCED);
    json_object_put(j);
    /* text, null: nothing to do. */
    const char *plain[] = {RF_USER "\"response_format\":{\"type\":\"text\"}}",
                           RF_USER "\"response_format\":null}"};
    for (size_t i = 0; i < 2; i++) {
        j = encode(plain[i], false);
        assert_string_equal(json_path_text(j, "tools"), "(missing)");
        assert_string_equal(json_path_text(j, "tool_choice"), "(missing)");
        json_object_put(j);
    }
    /* With caching, the stable prefix ends with the response_format tool. */
    j = encode(RF_USER RF_JSON_SCHEMA "}", true);
    assert_string_equal(json_path_text(j, "tools.0.cache_control"), "{\"type\":\"ephemeral\"}");
    json_object_put(j);
}

static void test_encode_response_format_with_tools(void **state)
{
    (void)state;
    /* Tools the model may call: it calls one of them or answers through ours ("any"). */
    struct json_object *j = encode(RF_USER RF_TOOLS "," RF_JSON_SCHEMA "}", false);
    assert_string_equal(json_path_text(j, "tools.0.name"), "\"lookup\"");
    assert_string_equal(json_path_text(j, "tools.1.name"), "\"json_tool_call\"");
    assert_string_equal(json_path_text(j, "tool_choice"), "{\"type\":\"any\"}");
    json_object_put(j);
    j = encode(RF_USER RF_TOOLS
               ",\"tool_choice\":\"auto\",\"parallel_tool_calls\":false," RF_JSON_SCHEMA "}",
               false);
    assert_string_equal(json_path_text(j, "tool_choice"),
                        "{\"type\":\"any\",\"disable_parallel_tool_use\":true}");
    json_object_put(j);
    /* tool_choice none: the tools cannot be called, the answer is forced through ours. */
    j = encode(RF_USER RF_TOOLS ",\"tool_choice\":\"none\"," RF_JSON_SCHEMA "}", false);
    assert_string_equal(json_path_text(j, "tools.1.name"), "\"json_tool_call\"");
    assert_string_equal(json_path_text(j, "tool_choice"), FORCED);
    json_object_put(j);
    /* A forced tool call has no text to format: the request goes as without response_format. */
    const char *forced[] = {RF_USER RF_TOOLS ",\"tool_choice\":\"required\"," RF_JSON_SCHEMA "}",
                            RF_USER RF_TOOLS
                            ",\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":"
                            "\"lookup\"}}," RF_JSON_SCHEMA "}"};
    const char *choice[] = {"{\"type\":\"any\"}", "{\"type\":\"tool\",\"name\":\"lookup\"}"};
    for (size_t i = 0; i < 2; i++) {
        j = encode(forced[i], false);
        assert_string_equal(json_path_text(j, "tools.1"), "(missing)");
        assert_string_equal(json_path_text(j, "tool_choice"), choice[i]);
        json_object_put(j);
    }
}

static void test_encode_response_format_rejects(void **state)
{
    (void)state;
    encode_fails(RF_USER "\"response_format\":\"json\"}", "response_format must be an object");
    encode_fails(RF_USER "\"response_format\":{}}",
                 "response_format must be an object with a type");
    encode_fails(RF_USER "\"response_format\":{\"type\":\"yaml\"}}",
                 "response_format.type 'yaml' is not supported: send 'json_schema'");
    encode_fails(RF_USER "\"response_format\":{\"type\":\"json_schema\"}}",
                 "response_format.json_schema must be an object");
    encode_fails(RF_USER "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                         "\"x\"}}}",
                 "response_format.json_schema.schema is required");
    encode_fails(RF_USER "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                         "\"x\",\"schema\":[1]}}}",
                 "response_format.json_schema.schema must be a JSON Schema object");
    encode_fails(RF_USER "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                         "\"x\",\"schema\":{\"type\":\"array\"}}}}",
                 "schema.type must be \"object\"");
    encode_fails(RF_USER "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{\"name\":"
                         "\"x\",\"strict\":\"yes\",\"schema\":{}}}}",
                 "response_format.json_schema.strict must be a boolean");
    /* The name is the gateway's: a client tool of that name would be taken for the answer. */
    encode_fails(RF_USER "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":"
                         "\"json_tool_call\"}}]}",
                 "tools[0].function.name 'json_tool_call' is reserved");
}

/* A whole answer through json_tool_call, with `extra` blocks after it and `stop` as its
 * stop_reason; returns the chat.completion (caller puts it). */
static struct json_object *decode_json_answer(const char *blocks, const char *stop,
                                              struct sg_usage *u)
{
    char body[2048];
    snprintf(body, sizeof body,
             "{\"id\":\"msg_j\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude\","
             "\"content\":[%s],\"stop_reason\":\"%s\",\"stop_sequence\":null,\"usage\":{"
             "\"input_tokens\":420,\"output_tokens\":30}}",
             blocks, stop);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_anthropic_decode_response(body, strlen(body), 1, &out, u), SG_OK);
    struct json_object *j = json_tokener_parse(out.data);
    assert_non_null(j);
    sg_buf_dispose(&out);
    return j;
}

#define JSON_USE(id, input)                                                                        \
    "{\"type\":\"tool_use\",\"id\":\"" id "\",\"name\":\"json_tool_call\",\"input\":" input "}"

static void test_decode_json_answer(void **state)
{
    (void)state;
    struct sg_usage u;
    /* The input is the content, as text; no tool call; stop. Usage as Anthropic counted it
     * (the tool's definition is in its input tokens, which is what is billed). */
    struct json_object *j = decode_json_answer(
        JSON_USE("toolu_1", "{\"city\":\"Paris\",\"pop\":2102650}"), "tool_use", &u);
    assert_string_equal(json_path_text(j, "choices.0.message.content"),
                        "\"{\\\"city\\\":\\\"Paris\\\",\\\"pop\\\":2102650}\"");
    assert_string_equal(json_path_text(j, "choices.0.message.tool_calls"), "(missing)");
    assert_string_equal(json_path_text(j, "choices.0.finish_reason"), "\"stop\"");
    assert_string_equal(json_path_text(j, "usage.prompt_tokens"), "420");
    assert_string_equal(json_path_text(j, "usage.completion_tokens"), "30");
    assert_int_equal(u.input_tokens, 420);
    assert_int_equal(u.output_tokens, 30);
    json_object_put(j);
    /* Text around it and a second answer are left out: the content must parse as JSON. */
    j = decode_json_answer("{\"type\":\"text\",\"text\":\"Sure.\"}," JSON_USE(
                               "t1", "{\"a\":1}") "," JSON_USE("t2", "{\"a\":2}"),
                           "tool_use", &u);
    assert_string_equal(json_path_text(j, "choices.0.message.content"), "\"{\\\"a\\\":1}\"");
    json_object_put(j);
    /* A call of the client's own tool beside it stays a tool call. */
    j = decode_json_answer(JSON_USE("t1", "{\"a\":1}") ",{\"type\":\"tool_use\",\"id\":\"t2\","
                                                       "\"name\":\"lookup\",\"input\":{}}",
                           "tool_use", &u);
    assert_string_equal(json_path_text(j, "choices.0.message.content"), "\"{\\\"a\\\":1}\"");
    assert_string_equal(json_path_text(j, "choices.0.message.tool_calls.0.function.name"),
                        "\"lookup\"");
    assert_string_equal(json_path_text(j, "choices.0.message.tool_calls.1"), "(missing)");
    assert_string_equal(json_path_text(j, "choices.0.finish_reason"), "\"tool_calls\"");
    json_object_put(j);
    /* Cut by max_tokens: length, as OpenAI says of a cut JSON answer; no input is "{}". */
    j = decode_json_answer("{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"json_tool_call\"}",
                           "max_tokens", &u);
    assert_string_equal(json_path_text(j, "choices.0.message.content"), "\"{}\"");
    assert_string_equal(json_path_text(j, "choices.0.finish_reason"), "\"length\"");
    json_object_put(j);
}

#define MSG_START(id)                                                                              \
    EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"" id "\",\"model\":"    \
                        "\"claude\",\"usage\":{\"input_tokens\":420,\"output_tokens\":1}}}")
#define BLOCK_START(i, block)                                                                      \
    EV("content_block_start",                                                                      \
       "{\"type\":\"content_block_start\",\"index\":" #i ",\"content_block\":" block "}")
#define INPUT(i, js)                                                                               \
    EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":" #i ",\"delta\":{"     \
                              "\"type\":\"input_json_delta\",\"partial_json\":" js "}}")
#define BLOCK_STOP(i) EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":" #i "}")
#define MSG_END(stop)                                                                              \
    EV("message_delta", "{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"" stop "\"},"    \
                        "\"usage\":{\"output_tokens\":30}}")                                       \
    EV("message_stop", "{\"type\":\"message_stop\"}")
#define JSON_START(i)                                                                              \
    BLOCK_START(i, "{\"type\":\"tool_use\",\"id\":\"toolu_j\",\"name\":\"json_tool_call\","        \
                   "\"input\":{}}")

/* What a client assembles from a translated stream: content, tool call names, finish. */
struct assembled {
    char content[256];
    char tools[128];
    char finish[24];
    int64_t usage_prompt;
    bool done;
};

static void assemble(const char *sse, bool include_usage, struct assembled *a)
{
    struct feed_ctx c;
    assert_int_equal(run_stream(&c, sse, include_usage), SG_OK);
    memset(a, 0, sizeof *a);
    struct json_object *ch[32];
    size_t n = chunks(c.out.data, ch, 32, &a->done);
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_path(ch[i], "choices.0.delta.content");
        if (v && json_object_is_type(v, json_type_string))
            strcat(a->content, json_object_get_string(v));
        if ((v = json_path(ch[i], "choices.0.delta.tool_calls.0.function.name")))
            strcat(a->tools, json_object_get_string(v));
        if ((v = json_path(ch[i], "choices.0.finish_reason")) &&
            json_object_is_type(v, json_type_string))
            snprintf(a->finish, sizeof a->finish, "%s", json_object_get_string(v));
        if ((v = json_path(ch[i], "usage.prompt_tokens")))
            a->usage_prompt = json_object_get_int64(v);
        json_object_put(ch[i]);
    }
    sg_buf_dispose(&c.out);
}

static void test_stream_json_answer(void **state)
{
    (void)state;
    struct assembled a;
    /* input_json_delta pieces become content deltas; no tool call; stop; usage unchanged. */
    assemble(MSG_START("msg_s") JSON_START(0) INPUT(0, "\"\"") INPUT(0, "\"{\\\"city\\\": \\\"Pa\"")
                 INPUT(0, "\"ris\\\", \\\"pop\\\": 2102650}\"") BLOCK_STOP(0) MSG_END("tool_use"),
             true, &a);
    assert_string_equal(a.content, "{\"city\": \"Paris\", \"pop\": 2102650}");
    assert_string_equal(a.tools, "");
    assert_string_equal(a.finish, "stop");
    assert_int_equal(a.usage_prompt, 420);
    assert_true(a.done);
    /* No input at all: "{}", as the whole answer says. */
    assemble(MSG_START("msg_e") JSON_START(0) BLOCK_STOP(0) MSG_END("tool_use"), false, &a);
    assert_string_equal(a.content, "{}");
    assert_string_equal(a.finish, "stop");
    /* Text and a second answer after it are left out; a client tool call stays one. */
    assemble(MSG_START("msg_m") JSON_START(0) INPUT(0, "\"{\\\"a\\\":1}\"") BLOCK_STOP(0)
                 JSON_START(1) INPUT(1, "\"{\\\"a\\\":2}\"") BLOCK_STOP(1)
                     BLOCK_START(2, "{\"type\":\"text\",\"text\":\"Done.\"}")
                         EV("content_block_delta",
                            "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":"
                            "\"text_delta\",\"text\":\" Really.\"}}") BLOCK_STOP(2)
                             BLOCK_START(3, "{\"type\":\"tool_use\",\"id\":\"toolu_l\",\"name\":"
                                            "\"lookup\",\"input\":{}}") BLOCK_STOP(3)
                                 MSG_END("tool_use"),
             false, &a);
    assert_string_equal(a.content, "{\"a\":1}");
    assert_string_equal(a.tools, "lookup");
    assert_string_equal(a.finish, "tool_calls");
    /* Cut by max_tokens: length. */
    assemble(MSG_START("msg_c") JSON_START(0) INPUT(0, "\"{\\\"a\\\":\"") MSG_END("max_tokens"),
             false, &a);
    assert_string_equal(a.content, "{\"a\":");
    assert_string_equal(a.finish, "length");
}

static void test_url(void **state)
{
    (void)state;
    char *u = sg_anthropic_url(&dep);
    assert_string_equal(u, "https://api.anthropic.com/v1/messages");
    free(u);
}

/* reasoning_effort / thinking -> Anthropic's thinking, and thinking_blocks sent back. */
static void test_encode_reasoning(void **state)
{
    (void)state;
    struct json_object *j = encode("{\"model\":\"m\",\"reasoning_effort\":\"high\",\"temperature\":"
                                   "0.2,\"top_p\":0.99,\"messages\":[{\"role\":\"user\","
                                   "\"content\":\"hi\"}]}",
                                   false);
    assert_string_equal(json_path_text(j, "thinking"),
                        "{\"type\":\"enabled\",\"budget_tokens\":4096}");
    assert_null(json_path(j, "temperature")); /* thinking takes only 1 */
    assert_string_equal(json_path_text(j, "top_p"), "0.99");
    json_object_put(j);
    /* A budget that does not fit the default max_tokens gets LiteLLM's 4096 on top. */
    j = encode("{\"model\":\"m\",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":9000},"
               "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
               false);
    assert_string_equal(json_path_text(j, "max_tokens"), "13096");
    json_object_put(j);
    /* The effort's budget shrinks under the client's max_completion_tokens. */
    j = encode("{\"model\":\"m\",\"reasoning_effort\":\"medium\",\"max_completion_tokens\":2000,"
               "\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
               false);
    assert_string_equal(json_path_text(j, "thinking.budget_tokens"), "1999");
    json_object_put(j);
    j = encode("{\"model\":\"m\",\"reasoning_effort\":\"none\",\"messages\":[{\"role\":\"user\","
               "\"content\":\"hi\"}]}",
               false);
    assert_null(json_path(j, "thinking"));
    json_object_put(j);
    /* The assistant's thinking_blocks open its turn, before text and tool_use. */
    j = encode("{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"q\"},{\"role\":"
               "\"assistant\",\"content\":\"a\",\"reasoning_content\":\"r\",\"thinking_blocks\":["
               "{\"type\":\"thinking\",\"thinking\":\"r\",\"signature\":\"s\",\"x\":1},{\"type\":"
               "\"redacted_thinking\",\"data\":\"d\"}],\"tool_calls\":[{\"id\":\"t\",\"type\":"
               "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},{\"role\":"
               "\"tool\",\"tool_call_id\":\"t\",\"content\":\"ok\"}]}",
               false);
    assert_string_equal(json_path_text(j, "messages.1.content"),
                        "[{\"type\":\"thinking\",\"thinking\":\"r\",\"signature\":\"s\"},{\"type\":"
                        "\"redacted_thinking\",\"data\":\"d\"},{\"type\":\"text\",\"text\":\"a\"},"
                        "{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"f\",\"input\":{}}]");
    json_object_put(j);
    encode_fails("{\"model\":\"m\",\"reasoning_effort\":\"huge\",\"messages\":[{\"role\":\"user\","
                 "\"content\":\"hi\"}]}",
                 "reasoning_effort must be one of");
    encode_fails("{\"model\":\"m\",\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":2000},"
                 "\"max_tokens\":2000,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 "max_tokens (2000) must be greater than thinking.budget_tokens (2000)");
    encode_fails("{\"model\":\"m\",\"reasoning_effort\":\"low\",\"max_tokens\":1024,\"messages\":"
                 "[{\"role\":\"user\",\"content\":\"hi\"}]}",
                 "above 1024");
    encode_fails("{\"model\":\"m\",\"reasoning_effort\":\"low\",\"tools\":[{\"type\":\"function\","
                 "\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"required\",\"messages\":[{"
                 "\"role\":\"user\",\"content\":\"hi\"}]}",
                 "forced tool use");
    encode_fails("{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"content\":\"a\","
                 "\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":\"r\"}]}]}",
                 "messages[0].thinking_blocks[0]");
}

/* Thinking blocks -> reasoning_content and thinking_blocks; the estimate in reasoning_tokens. */
static void test_decode_reasoning(void **state)
{
    (void)state;
    const char *body =
        "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"c\",\"content\":"
        "["
        "{\"type\":\"thinking\",\"thinking\":\"Let me think.\",\"signature\":\"sig1\"},"
        "{\"type\":\"redacted_thinking\",\"data\":\"enc\"},{\"type\":\"text\",\"text\":\"4\"}],"
        "\"stop_reason\":\"end_turn\",\"usage\":{\"input_tokens\":10,\"output_tokens\":50}}";
    struct sg_buf out;
    struct sg_usage u;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_anthropic_decode_response(body, strlen(body), 1, &out, &u), SG_OK);
    struct json_object *j = json_tokener_parse(out.data);
    assert_non_null(j);
    assert_string_equal(json_path_text(j, "choices.0.message.content"), "\"4\"");
    assert_string_equal(json_path_text(j, "choices.0.message.reasoning_content"),
                        "\"Let me think.\"");
    assert_string_equal(json_path_text(j, "choices.0.message.thinking_blocks"),
                        "[{\"type\":\"thinking\",\"thinking\":\"Let me think.\",\"signature\":"
                        "\"sig1\"},{\"type\":\"redacted_thinking\",\"data\":\"enc\"}]");
    assert_string_equal(json_path_text(j, "usage.completion_tokens"), "50");
    int64_t rt = json_object_get_int64(json_path(j, "usage.completion_tokens_details."
                                                    "reasoning_tokens"));
    assert_true(rt > 0 && rt < 50);
    assert_int_equal(u.output_tokens, 50);
    json_object_put(j);
    sg_buf_dispose(&out);
}

static const char thinking_stream[] =
    EV("message_start", "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_t\",\"type\":"
                        "\"message\",\"role\":\"assistant\",\"content\":[],\"model\":\"c\","
                        "\"usage\":{\"input_tokens\":5,\"output_tokens\":1}}}")
        EV("content_block_start", "{\"type\":\"content_block_start\",\"index\":0,"
                                  "\"content_block\":{\"type\":\"thinking\",\"thinking\":\"\"}}")
            EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                      "{\"type\":\"thinking_delta\",\"thinking\":\"Hmm\"}}")
                EV("content_block_delta", "{\"type\":\"content_block_delta\",\"index\":0,\"delta\":"
                                          "{\"type\":\"signature_delta\",\"signature\":\"sig\"}}")
                    EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":0}") EV(
                        "content_block_start",
                        "{\"type\":\"content_block_start\",\"index\":1,\"content_block\":"
                        "{\"type\":\"redacted_thinking\",\"data\":\"enc\"}}")
                        EV("content_block_stop", "{\"type\":\"content_block_stop\",\"index\":1}")
                            EV("content_block_start",
                               "{\"type\":\"content_block_start\",\"index\":2,"
                               "\"content_block\":{\"type\":\"text\",\"text\":\"\"}}")
                                EV("content_block_delta",
                                   "{\"type\":\"content_block_delta\",\"index\":2,\"delta\":"
                                   "{\"type\":\"text_delta\",\"text\":\"Hi\"}}")
                                    EV("content_block_stop",
                                       "{\"type\":\"content_block_stop\",\"index\":2}")
                                        EV("message_delta",
                                           "{\"type\":\"message_delta\",\"delta\":{"
                                           "\"stop_reason\":\"end_turn\"},\"usage\":{"
                                           "\"output_tokens\":20}}")
                                            EV("message_stop", "{\"type\":\"message_stop\"}");

static void test_stream_thinking(void **state)
{
    (void)state;
    struct feed_ctx c;
    assert_int_equal(run_stream(&c, thinking_stream, true), SG_OK);
    struct json_object *ch[16];
    bool done;
    size_t n = chunks(c.out.data, ch, 16, &done);
    assert_true(done);
    assert_int_equal(n, 7); /* role, thinking, signature, redacted, text, finish, usage */
    assert_string_equal(
        json_path_text(ch[1], "choices.0.delta"),
        "{\"reasoning_content\":\"Hmm\",\"thinking_blocks\":[{\"type\":\"thinking\","
        "\"thinking\":\"Hmm\"}]}");
    assert_string_equal(json_path_text(ch[2], "choices.0.delta"),
                        "{\"reasoning_content\":\"\",\"thinking_blocks\":[{\"type\":\"thinking\","
                        "\"thinking\":\"\",\"signature\":\"sig\"}]}");
    assert_string_equal(json_path_text(ch[3], "choices.0.delta.thinking_blocks"),
                        "[{\"type\":\"redacted_thinking\",\"data\":\"enc\"}]");
    assert_string_equal(json_path_text(ch[4], "choices.0.delta.content"), "\"Hi\"");
    assert_string_equal(json_path_text(ch[6], "usage.completion_tokens"), "20");
    assert_non_null(json_path(ch[6], "usage.completion_tokens_details.reasoning_tokens"));
    for (size_t i = 0; i < n; i++)
        json_object_put(ch[i]);
    sg_buf_dispose(&c.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_basic),
        cmocka_unit_test(test_encode_reasoning),
        cmocka_unit_test(test_decode_reasoning),
        cmocka_unit_test(test_stream_thinking),
        cmocka_unit_test(test_encode_max_tokens_and_clamp),
        cmocka_unit_test(test_encode_tools_round_trip),
        cmocka_unit_test(test_encode_images),
        cmocka_unit_test(test_encode_files),
        cmocka_unit_test(test_encode_files_rejected),
        cmocka_unit_test(test_encode_prompt_caching),
        cmocka_unit_test(test_encode_rejects),
        cmocka_unit_test(test_decode_response),
        cmocka_unit_test(test_stream_text),
        cmocka_unit_test(test_stream_tool_use),
        cmocka_unit_test(test_stream_error_and_broken),
        cmocka_unit_test(test_url),
        cmocka_unit_test(test_context_window_stop_is_length),
        cmocka_unit_test(test_stream_tool_use_without_arguments),
        cmocka_unit_test(test_encode_response_format),
        cmocka_unit_test(test_encode_response_format_with_tools),
        cmocka_unit_test(test_encode_response_format_rejects),
        cmocka_unit_test(test_decode_json_answer),
        cmocka_unit_test(test_stream_json_answer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
