/* provider: Anthropic-format clients (messages.c) — Messages requests to OpenAI-compatible and
 * Anthropic deployments, chat.completion(s) back into Messages answers and events. */
#include "provider/provider.h"

#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

#include "json_path.h"

static struct sg_deployment oai = {.id = "gpt",
                                   .provider = "openai",
                                   .provider_model = "gpt-4o-mini",
                                   .kind = SG_PROVIDER_OPENAI,
                                   .api_base = "https://api.openai.com/v1",
                                   .input_cost_per_token = -1,
                                   .output_cost_per_token = -1};
static struct sg_deployment ant = {.id = "claude",
                                   .provider = "anthropic",
                                   .provider_model = "claude-3-5-haiku-latest",
                                   .kind = SG_PROVIDER_ANTHROPIC,
                                   .api_base = "https://api.anthropic.com",
                                   .input_cost_per_token = -1,
                                   .output_cost_per_token = -1};

static void parse_fails(const char *body, const char *part)
{
    struct sg_chat_request r;
    char err[300] = "";
    assert_int_equal(sg_messages_request_parse(body, strlen(body), &r, err, sizeof err), SG_EINVAL);
    if (!strstr(err, part))
        fail_msg("for %s expected '%s' in '%s'", body, part, err);
}

static void test_parse(void **state)
{
    (void)state;
    struct sg_chat_request r;
    char err[300];
    const char *b = "{\"model\":\"app/chat\",\"max_tokens\":64,\"stream\":true,\"messages\":[{"
                    "\"role\":\"user\",\"content\":\"Hi\"}],\"metadata\":{\"user_id\":\"u1\"}}";
    assert_int_equal(sg_messages_request_parse(b, strlen(b), &r, err, sizeof err), SG_OK);
    assert_int_equal(r.api, SG_API_MESSAGES);
    assert_string_equal(r.model, "app/chat");
    assert_true(r.stream);
    assert_string_equal(r.user, "u1");
    assert_int_equal(r.n_model_values, 1);
    assert_false(r.metadata_extra); /* user_id alone goes to Anthropic as it is */
    const char *f = "{\"model\":\"a\",\"max_tokens\":1,\"messages\":[{}],\"metadata\":{"
                    "\"feature\":\"s\"}}";
    assert_int_equal(sg_messages_request_parse(f, strlen(f), &r, err, sizeof err), SG_OK);
    assert_string_equal(r.feature, "s");
    assert_true(r.metadata_extra);
    /* count_tokens: no max_tokens needed; the rest is checked the same. */
    const char *c = "{\"model\":\"a\",\"messages\":[{}]}";
    assert_int_equal(sg_messages_count_parse(c, strlen(c), &r, err, sizeof err), SG_OK);
    c = "{\"model\":\"a\",\"messages\":[]}";
    assert_int_equal(sg_messages_count_parse(c, strlen(c), &r, err, sizeof err), SG_EINVAL);
    parse_fails("{\"max_tokens\":1,\"messages\":[{}]}", "model: Field required");
    parse_fails("{\"model\":7,\"max_tokens\":1,\"messages\":[{}]}",
                "model: Input should be a valid string");
    parse_fails("{\"model\":\"a\",\"messages\":[{}]}", "max_tokens");
    parse_fails("{\"model\":\"a\",\"max_tokens\":0,\"messages\":[{}]}", "max_tokens");
    parse_fails("{\"model\":\"a\",\"max_tokens\":1,\"messages\":[]}", "messages");
    parse_fails("{\"model\":\"a\",\"max_tokens\":1,\"messages\":[{}],\"stream\":1}", "stream");
    parse_fails("{\"model\":\"a\",\"max_tokens\":1,\"messages\":[{}],}", "not valid JSON");
    parse_fails("[1]", "JSON object");
}

static struct json_object *to_deployment(const char *body, const struct sg_deployment *d)
{
    struct sg_chat_request r;
    char err[300];
    assert_int_equal(sg_messages_request_parse(body, strlen(body), &r, err, sizeof err), SG_OK);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    if (sg_messages_encode_openai(&r, d, &out, err, sizeof err) != SG_OK)
        fail_msg("encode: %s", err);
    struct json_object *j = json_tokener_parse(out.data);
    assert_non_null(j);
    sg_buf_dispose(&out);
    return j;
}

static struct json_object *to_openai(const char *body)
{
    return to_deployment(body, &oai);
}

static void test_encode_openai(void **state)
{
    (void)state;
    struct json_object *j = to_openai(
        "{\"model\":\"app/chat\",\"max_tokens\":256,\"system\":[{\"type\":\"text\",\"text\":"
        "\"You are terse.\",\"cache_control\":{\"type\":\"ephemeral\"}}],\"stop_sequences\":"
        "[\"###\"],\"temperature\":0.5,\"top_k\":5,\"stream\":true,\"metadata\":{\"user_id\":"
        "\"u9\"},\"messages\":["
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Look:\"},{\"type\":"
        "\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/jpeg\",\"data\":"
        "\"/9j/4AAQ\"}}]},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"Calling.\"},{\"type\":"
        "\"tool_use\",\"id\":\"toolu_1\",\"name\":\"lookup\",\"input\":{\"q\":\"cat\"}}]},"
        "{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":\"toolu_1\","
        "\"content\":[{\"type\":\"text\",\"text\":\"a cat\"}]},{\"type\":\"text\",\"text\":"
        "\"Thanks\"}]}],"
        "\"tools\":[{\"name\":\"lookup\",\"description\":\"Look up\",\"input_schema\":{\"type\":"
        "\"object\",\"properties\":{\"q\":{\"type\":\"string\"}}}}],\"tool_choice\":{\"type\":"
        "\"any\",\"disable_parallel_tool_use\":true}}");
    assert_string_equal(json_path_text(j, "model"), "\"gpt-4o-mini\"");
    assert_string_equal(json_path_text(j, "messages.0"),
                        "{\"role\":\"system\",\"content\":\"You are terse.\"}");
    assert_string_equal(json_path_text(j, "messages.1.content"),
                        "[{\"type\":\"text\",\"text\":\"Look:\"},{\"type\":\"image_url\","
                        "\"image_url\":{\"url\":\"data:image/jpeg;base64,/9j/4AAQ\"}}]");
    assert_string_equal(json_path_text(j, "messages.2"),
                        "{\"role\":\"assistant\",\"content\":\"Calling.\",\"tool_calls\":[{\"id\":"
                        "\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":\"lookup\","
                        "\"arguments\":\"{\\\"q\\\":\\\"cat\\\"}\"}}]}");
    /* The tool result first, as a tool message, then the rest of the user turn. */
    assert_string_equal(json_path_text(j, "messages.3"),
                        "{\"role\":\"tool\",\"tool_call_id\":\"toolu_1\",\"content\":\"a cat\"}");
    assert_string_equal(
        json_path_text(j, "messages.4"),
        "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Thanks\"}]}");
    assert_string_equal(json_path_text(j, "max_tokens"), "256");
    assert_string_equal(json_path_text(j, "stop"), "[\"###\"]");
    assert_string_equal(json_path_text(j, "temperature"), "0.5");
    assert_string_equal(json_path_text(j, "top_k"), "(missing)");
    assert_string_equal(json_path_text(j, "stream_options"), "{\"include_usage\":true}");
    assert_string_equal(json_path_text(j, "user"), "\"u9\"");
    assert_string_equal(json_path_text(j, "tools.0"),
                        "{\"type\":\"function\",\"function\":{\"name\":\"lookup\",\"description\":"
                        "\"Look up\",\"parameters\":{\"type\":\"object\",\"properties\":{\"q\":"
                        "{\"type\":\"string\"}}}}}");
    assert_string_equal(json_path_text(j, "tool_choice"), "\"required\"");
    assert_string_equal(json_path_text(j, "parallel_tool_calls"), "false");
    json_object_put(j);

    /* A server tool has no OpenAI form. */
    struct sg_chat_request r;
    char err[300];
    const char *b =
        "{\"model\":\"a\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":"
        "\"x\"}],\"tools\":[{\"type\":\"web_search_20250305\",\"name\":\"web_search\"}]}";
    assert_int_equal(sg_messages_request_parse(b, strlen(b), &r, err, sizeof err), SG_OK);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_messages_encode_openai(&r, &oai, &out, err, sizeof err), SG_EINVAL);
    assert_non_null(strstr(err, "tools.0"));
    b = "{\"model\":\"a\",\"max_tokens\":5,\"messages\":[{\"role\":\"system\",\"content\":\"x\"}]}";
    assert_int_equal(sg_messages_request_parse(b, strlen(b), &r, err, sizeof err), SG_OK);
    assert_int_equal(sg_messages_encode_openai(&r, &oai, &out, err, sizeof err), SG_EINVAL);
    assert_non_null(strstr(err, "messages.0.role"));
    sg_buf_dispose(&out);
}

static void encode_openai_fails(const char *body, const char *part)
{
    struct sg_chat_request r;
    char err[300] = "";
    assert_int_equal(sg_messages_request_parse(body, strlen(body), &r, err, sizeof err), SG_OK);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_messages_encode_openai(&r, &oai, &out, err, sizeof err), SG_EINVAL);
    if (!strstr(err, part))
        fail_msg("for %s expected '%s' in '%s'", body, part, err);
    sg_buf_dispose(&out);
}

/* Document blocks: a base64 PDF is a file part with a filename, text and content sources text
 * parts, context a text part after; tool results' images and documents follow the tool
 * messages in a user message (OpenAI's tool messages take text only). */
static void test_encode_openai_documents(void **state)
{
    (void)state;
    struct json_object *j = to_openai(
        "{\"model\":\"a\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":["
        "{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":"
        "\"application/pdf\",\"data\":\"JVBERi0x\"},\"title\":\"Q3 report\",\"context\":"
        "\"from finance\",\"citations\":{\"enabled\":true},\"cache_control\":{\"type\":"
        "\"ephemeral\"}},"
        "{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":"
        "\"application/pdf\",\"data\":\"JVBERi0y\"},\"title\":\"b.PDF\"},"
        "{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":"
        "\"application/pdf\",\"data\":\"JVBERi0z\"}},"
        "{\"type\":\"document\",\"source\":{\"type\":\"text\",\"media_type\":\"text/plain\","
        "\"data\":\"The grass is green.\"},\"title\":\"Facts\"},"
        "{\"type\":\"document\",\"source\":{\"type\":\"content\",\"content\":[{\"type\":"
        "\"text\",\"text\":\"chunk 1\"},{\"type\":\"image\",\"source\":{\"type\":\"url\","
        "\"url\":\"https://example.com/a.png\"}}]}},"
        "{\"type\":\"text\",\"text\":\"Summarise\"}]}]}");
    assert_string_equal(
        json_path_text(j, "messages.0.content"),
        "[{\"type\":\"file\",\"file\":{\"filename\":\"Q3 report.pdf\",\"file_data\":"
        "\"data:application/pdf;base64,JVBERi0x\"}},{\"type\":\"text\",\"text\":\"from finance\"},"
        "{\"type\":\"file\",\"file\":{\"filename\":\"b.PDF\",\"file_data\":"
        "\"data:application/pdf;base64,JVBERi0y\"}},"
        "{\"type\":\"file\",\"file\":{\"filename\":\"document.pdf\",\"file_data\":"
        "\"data:application/pdf;base64,JVBERi0z\"}},"
        "{\"type\":\"text\",\"text\":\"Facts\"},{\"type\":\"text\",\"text\":\"The grass is "
        "green.\"},"
        "{\"type\":\"text\",\"text\":\"chunk 1\"},{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"https://example.com/a.png\"}},{\"type\":\"text\",\"text\":\"Summarise\"}]");
    json_object_put(j);

    j = to_openai(
        "{\"model\":\"a\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"},"
        "{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":"
        "\"shot\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\","
        "\"tool_use_id\":\"t1\",\"content\":[{\"type\":\"text\",\"text\":\"screen:\"},{\"type\":"
        "\"image\",\"source\":{\"type\":\"base64\",\"media_type\":\"image/png\",\"data\":"
        "\"iVBO\"}},{\"type\":\"document\",\"source\":{\"type\":\"base64\",\"media_type\":"
        "\"application/pdf\",\"data\":\"JVBE\"}}]},{\"type\":\"text\",\"text\":\"Now?\"}]}]}");
    assert_string_equal(json_path_text(j, "messages.2"),
                        "{\"role\":\"tool\",\"tool_call_id\":\"t1\",\"content\":\"screen:\"}");
    assert_string_equal(
        json_path_text(j, "messages.3"),
        "{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
        "\"data:image/png;base64,iVBO\"}},{\"type\":\"file\",\"file\":{\"filename\":"
        "\"document.pdf\",\"file_data\":\"data:application/pdf;base64,JVBE\"}},{\"type\":"
        "\"text\",\"text\":\"Now?\"}]}");
    json_object_put(j);

#define DOC(src)                                                                                   \
    "{\"model\":\"a\",\"max_tokens\":5,\"messages\":[{\"role\":\"user\","                          \
    "\"content\":[{\"type\":\"text\",\"text\":\"x\"},{\"type\":\"document\","                      \
    "\"source\":" src "}]}]}"
    encode_openai_fails(DOC("{\"type\":\"url\",\"url\":\"https://example.com/a.pdf\"}"),
                        "messages.0.content.1: a document with a url source cannot be sent to "
                        "an OpenAI-compatible deployment");
    encode_openai_fails(DOC("{\"type\":\"file\",\"file_id\":\"file_011\"}"),
                        "messages.0.content.1: a document with a file source");
    encode_openai_fails(DOC("{\"type\":\"base64\",\"media_type\":\"text/plain\",\"data\":"
                            "\"eA==\"}"),
                        "a base64 document must be application/pdf");
    encode_openai_fails(DOC("{\"type\":\"content\",\"content\":[{\"type\":\"document\"}]}"),
                        "a content document holds text and image blocks only");
    encode_openai_fails(DOC("null"), "a document block needs a base64 (PDF), text, content");
    encode_openai_fails(DOC("{\"type\":\"content\",\"content\":[{\"type\":\"image\"}]}"),
                        "an image block needs a base64 or url source");
#undef DOC
}

static void test_encode_anthropic(void **state)
{
    (void)state;
    struct sg_chat_request r;
    char err[300];
    const char *b = "{\"model\":\"app/chat\",\"max_tokens\":64,\"system\":\"Policy text\","
                    "\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}]}";
    assert_int_equal(sg_messages_request_parse(b, strlen(b), &r, err, sizeof err), SG_OK);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    /* No caching: the client's bytes, the model spliced in. */
    assert_int_equal(sg_messages_encode_anthropic(&r, &ant, NULL, &out, err, sizeof err), SG_OK);
    assert_string_equal(out.data, "{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":64,"
                                  "\"system\":\"Policy text\",\"messages\":[{\"role\":\"user\","
                                  "\"content\":\"Hi\"}]}");
    sg_buf_reset(&out);
    struct sg_anthropic_opts o = {.prompt_caching = true};
    assert_int_equal(sg_messages_encode_anthropic(&r, &ant, &o, &out, err, sizeof err), SG_OK);
    struct json_object *j = json_tokener_parse(out.data);
    assert_string_equal(json_path_text(j, "system"),
                        "[{\"type\":\"text\",\"text\":\"Policy text\","
                        "\"cache_control\":{\"type\":\"ephemeral\"}}]");
    assert_string_equal(json_path_text(j, "model"), "\"claude-3-5-haiku-latest\"");
    json_object_put(j);
    sg_buf_dispose(&out);
}

static void test_decode_openai(void **state)
{
    (void)state;
    const char *body =
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":"
        "\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
        "\"content\":null,\"tool_calls\":[{\"id\":\"call_9\",\"type\":\"function\",\"function\":"
        "{\"name\":\"lookup\",\"arguments\":\"{\\\"q\\\":\\\"x\\\"}\"}}]},\"finish_reason\":"
        "\"tool_calls\"}],\"usage\":{\"prompt_tokens\":100,\"completion_tokens\":7,"
        "\"total_tokens\":107,\"prompt_tokens_details\":{\"cached_tokens\":64}}}";
    struct sg_buf out;
    struct sg_usage u;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_messages_decode_openai(body, strlen(body), &out, &u), SG_OK);
    struct json_object *j = json_tokener_parse(out.data);
    assert_non_null(j);
    assert_string_equal(json_path_text(j, "type"), "\"message\"");
    /* A Messages client sees a Messages id, with the provider's in it. */
    assert_string_equal(json_path_text(j, "id"), "\"msg_1\"");
    assert_string_equal(json_path_text(j, "content"),
                        "[{\"type\":\"tool_use\",\"id\":\"call_9\",\"name\":"
                        "\"lookup\",\"input\":{\"q\":\"x\"}}]");
    assert_string_equal(json_path_text(j, "stop_reason"), "\"tool_use\"");
    /* Anthropic's input_tokens excludes what was read from the cache. */
    assert_string_equal(json_path_text(j, "usage"), "{\"input_tokens\":36,\"output_tokens\":7,"
                                                    "\"cache_creation_input_tokens\":0,"
                                                    "\"cache_read_input_tokens\":64}");
    assert_int_equal(u.input_tokens, 100);
    assert_int_equal(u.cache_read_tokens, 64);
    json_object_put(j);
    sg_buf_reset(&out);
    const char *text = "{\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":"
                       "\"Hi there\"},\"finish_reason\":\"length\"}]}";
    assert_int_equal(sg_messages_decode_openai(text, strlen(text), &out, &u), SG_OK);
    j = json_tokener_parse(out.data);
    assert_string_equal(json_path_text(j, "content"),
                        "[{\"type\":\"text\",\"text\":\"Hi there\"}]");
    assert_string_equal(json_path_text(j, "stop_reason"), "\"max_tokens\"");
    assert_string_equal(json_path_text(j, "id"), "\"msg_c\"");
    json_object_put(j);
    assert_int_equal(sg_messages_decode_openai("{\"choices\":[]}", 14, &out, &u), SG_EPROTO);
    assert_int_equal(sg_messages_decode_openai("nope", 4, &out, &u), SG_EPROTO);
    sg_buf_dispose(&out);
}

/* Event names in order, e.g. "message_start content_block_start ...". */
static void names(const char *sse, char *out, size_t cap)
{
    out[0] = '\0';
    for (const char *p = sse; (p = strstr(p, "event: ")) != NULL;) {
        p += 7;
        size_t n = strcspn(p, "\n");
        if (out[0])
            strncat(out, " ", cap - strlen(out) - 1);
        strncat(out, p, SG_MIN(n, cap - strlen(out) - 1));
    }
}

static int chunk(struct sg_messages_stream *s, const char *data, struct sg_buf *out)
{
    return sg_messages_stream_chunk(s, sg_slice_of(data), out);
}

static void test_stream(void **state)
{
    (void)state;
    struct sg_messages_stream s;
    struct sg_buf out;
    sg_buf_init(&out, 0);
    sg_messages_stream_init(&s);
    const char *pre = "{\"id\":\"chatcmpl-7\",\"object\":\"chat.completion.chunk\",\"model\":"
                      "\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":";
    char c[512];
    snprintf(c, sizeof c, "%s{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}",
             pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    snprintf(c, sizeof c, "%s{\"content\":\"Hel\"},\"finish_reason\":null}]}", pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    snprintf(c, sizeof c, "%s{\"content\":\"lo\"},\"finish_reason\":null}]}", pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    snprintf(c, sizeof c,
             "%s{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":"
             "\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]},"
             "\"finish_reason\":null}]}",
             pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    snprintf(c, sizeof c,
             "%s{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":"
             "\"{\\\"a\\\":1}\"}}]},\"finish_reason\":null}]}",
             pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    snprintf(c, sizeof c, "%s{},\"finish_reason\":\"tool_calls\"}]}", pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    assert_int_equal(chunk(&s,
                           "{\"id\":\"chatcmpl-7\",\"choices\":[],\"usage\":{\"prompt_tokens\":"
                           "20,\"completion_tokens\":9,\"total_tokens\":29}}",
                           &out),
                     SG_OK);
    assert_false(s.done);
    assert_int_equal(chunk(&s, "[DONE]", &out), SG_OK);
    assert_true(s.done);
    /* The chunks with text or tool-call parts (the estimate if no usage had come): not the role
     * chunk with "" nor the finish and usage chunks. */
    assert_int_equal(s.content_chunks, 4);
    char n[1024];
    names(out.data, n, sizeof n);
    /* Anthropic's order: one ping after the first block started. */
    assert_string_equal(n, "message_start content_block_start ping content_block_delta "
                           "content_block_delta content_block_stop content_block_start "
                           "content_block_delta content_block_stop message_delta message_stop");
    assert_non_null(strstr(out.data, "\"message\":{\"id\":\"msg_7\","));
    assert_non_null(strstr(out.data, "\"delta\":{\"type\":\"text_delta\",\"text\":\"Hel\"}"));
    assert_non_null(strstr(out.data, "\"content_block\":{\"type\":\"tool_use\",\"id\":\"call_1\","
                                     "\"name\":\"f\",\"input\":{}}"));
    assert_non_null(strstr(out.data, "\"partial_json\":\"{\\\"a\\\":1}\""));
    assert_non_null(strstr(out.data, "\"stop_reason\":\"tool_use\""));
    assert_non_null(strstr(out.data, "\"usage\":{\"input_tokens\":20,\"output_tokens\":9,"));
    /* Every data line is JSON. */
    for (const char *p = out.data; (p = strstr(p, "data: ")) != NULL;) {
        p += 6;
        size_t len = strcspn(p, "\n");
        char err[64];
        struct json_object *o = sg_json_parse_strict(p, len, err, sizeof err);
        assert_non_null(o);
        json_object_put(o);
    }
    /* After the end, nothing more. */
    size_t len = out.len;
    assert_int_equal(chunk(&s, "[DONE]", &out), SG_OK);
    assert_int_equal(out.len, len);

    /* A stream cut before [DONE] can be closed; a broken chunk is a protocol error. */
    sg_buf_reset(&out);
    sg_messages_stream_init(&s);
    snprintf(c, sizeof c, "%s{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}", pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    assert_int_equal(sg_messages_stream_finish(&s, &out), SG_OK);
    names(out.data, n, sizeof n);
    assert_string_equal(n, "message_start content_block_start ping content_block_delta "
                           "content_block_stop message_delta message_stop");
    sg_messages_stream_init(&s);
    assert_int_equal(chunk(&s, "{\"choices\":[", &out), SG_EPROTO);
    assert_string_equal(s.error, ""); /* broken, not an error the provider sent */
    /* An error chunk: its message is kept for the client's error event. */
    assert_int_equal(chunk(&s, "{\"error\":{\"message\":\"boom\"}}", &out), SG_EPROTO);
    assert_string_equal(s.error, "it sent an error: boom");
    sg_messages_stream_init(&s);
    assert_int_equal(chunk(&s, "{\"error\":\"overloaded\"}", &out), SG_EPROTO);
    assert_string_equal(s.error, "it sent an error: overloaded");
    sg_buf_dispose(&out);
}

/* message_start's input_tokens is the caller's pre-call estimate (Anthropic counts the prompt
 * before answering); message_delta carries the final counts: the reported ones, or, when none
 * came, the estimate the gateway records (input estimate, chunks with text). */
static void test_stream_usage_estimate(void **state)
{
    (void)state;
    struct sg_messages_stream s;
    struct sg_buf out;
    sg_buf_init(&out, 0);
    const char *text = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},"
                       "\"finish_reason\":null}]}",
               *stop = "{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{},"
                       "\"finish_reason\":\"stop\"}]}";
    for (int reported = 0; reported < 2; reported++) {
        sg_buf_reset(&out);
        sg_messages_stream_init(&s);
        s.input_estimate = 31;
        assert_int_equal(chunk(&s, text, &out), SG_OK);
        assert_non_null(strstr(out.data, "\"usage\":{\"input_tokens\":31,"
                                         "\"cache_creation_input_tokens\":0,"
                                         "\"cache_read_input_tokens\":0,\"output_tokens\":0}"));
        assert_int_equal(chunk(&s, text, &out), SG_OK);
        assert_int_equal(chunk(&s, stop, &out), SG_OK);
        if (reported)
            assert_int_equal(chunk(&s,
                                   "{\"id\":\"c\",\"choices\":[],\"usage\":{\"prompt_tokens\":"
                                   "20,\"completion_tokens\":9}}",
                                   &out),
                             SG_OK);
        assert_int_equal(chunk(&s, "[DONE]", &out), SG_OK);
        const char *delta = strstr(out.data, "event: message_delta");
        assert_non_null(delta);
        assert_non_null(strstr(delta, reported ? "\"usage\":{\"input_tokens\":20,"
                                                 "\"output_tokens\":9,"
                                               : "\"usage\":{\"input_tokens\":31,"
                                                 "\"output_tokens\":2,"));
        assert_int_equal(s.usage.known, reported);
        assert_int_equal(s.usage.estimated, !reported);
        assert_int_equal(s.usage.input_tokens, reported ? 20 : 31);
        assert_int_equal(s.usage.output_tokens, reported ? 9 : 2);
    }
    sg_buf_dispose(&out);
}

/* A NUL (\u0000) in an answer's text is text like any other: the Messages answer carries all of
 * it, not the part before the NUL. */
static void test_decode_openai_text_with_nul(void **state)
{
    (void)state;
    const char *body = "{\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":"
                       "\"a\\u0000b \\ud83d\\ude00\"},\"finish_reason\":\"stop\"}]}";
    struct sg_buf out;
    struct sg_usage u;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_messages_decode_openai(body, strlen(body), &out, &u), SG_OK);
    struct json_object *j = json_tokener_parse(out.data);
    assert_non_null(j);
    struct json_object *t = json_path(j, "content.0.text");
    assert_non_null(t);
    assert_int_equal(json_object_get_string_len(t), 8);
    assert_memory_equal(json_object_get_string(t), "a\0b \xf0\x9f\x98\x80", 8);
    json_object_put(j);
    sg_buf_dispose(&out);
}

/* What the Anthropic SDK assembles from a Messages stream: blocks by their index, deltas
 * appended to the block their index names. */
struct assembled {
    int n;
    char type[8][16], id[8][32], name[8][32], json[8][128];
};

static void assemble(const char *sse, struct assembled *a)
{
    memset(a, 0, sizeof *a);
    for (const char *p = sse; (p = strstr(p, "data: ")) != NULL;) {
        p += 6;
        size_t len = strcspn(p, "\n");
        char err[64];
        struct json_object *o = sg_json_parse_strict(p, len, err, sizeof err);
        assert_non_null(o);
        const char *type = json_object_get_string(json_path(o, "type"));
        if (strcmp(type, "content_block_start") == 0) {
            int i = json_object_get_int(json_path(o, "index"));
            assert_int_equal(i, a->n); /* blocks are numbered in order */
            a->n++;
            snprintf(a->type[i], 16, "%s",
                     json_object_get_string(json_path(o, "content_block.type")));
            struct json_object *v;
            if ((v = json_path(o, "content_block.id")))
                snprintf(a->id[i], 32, "%s", json_object_get_string(v));
            if ((v = json_path(o, "content_block.name")))
                snprintf(a->name[i], 32, "%s", json_object_get_string(v));
        } else if (strcmp(type, "content_block_delta") == 0) {
            int i = json_object_get_int(json_path(o, "index"));
            assert_true(i < a->n);
            struct json_object *v = json_path(o, "delta.partial_json");
            if (!v)
                v = json_path(o, "delta.text");
            strncat(a->json[i], json_object_get_string(v), 127 - strlen(a->json[i]));
        }
        json_object_put(o);
        p += len;
    }
}

/* Parallel tool calls whose chunks interleave by index (OpenAI-compatible servers may send the
 * arguments of several calls in turns): each call stays one tool_use block with its id, name and
 * whole arguments. */
static void test_stream_interleaved_tool_calls(void **state)
{
    (void)state;
    struct sg_messages_stream s;
    struct sg_buf out;
    sg_buf_init(&out, 0);
    sg_messages_stream_init(&s);
    const char *pre = "{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"model\":"
                      "\"m\",\"choices\":[{\"index\":0,\"delta\":";
    static const char *const deltas[] = {
        "{\"role\":\"assistant\",\"content\":null}",
        "{\"tool_calls\":[{\"index\":0,\"id\":\"call_A\",\"type\":\"function\",\"function\":"
        "{\"name\":\"f\",\"arguments\":\"\"}}]}",
        "{\"tool_calls\":[{\"index\":1,\"id\":\"call_B\",\"type\":\"function\",\"function\":"
        "{\"name\":\"g\",\"arguments\":\"{\\\"y\\\":\"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"x\\\":\"}}]}",
        "{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"2}\"}}]}",
        "{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"1}\"}}]}",
    };
    char c[512];
    for (size_t i = 0; i < sizeof deltas / sizeof deltas[0]; i++) {
        snprintf(c, sizeof c, "%s%s,\"finish_reason\":null}]}", pre, deltas[i]);
        assert_int_equal(chunk(&s, c, &out), SG_OK);
    }
    snprintf(c, sizeof c, "%s{},\"finish_reason\":\"tool_calls\"}]}", pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    assert_int_equal(chunk(&s, "[DONE]", &out), SG_OK);
    struct assembled a;
    assemble(out.data, &a);
    assert_int_equal(a.n, 2);
    assert_string_equal(a.type[0], "tool_use");
    assert_string_equal(a.id[0], "call_A");
    assert_string_equal(a.name[0], "f");
    assert_string_equal(a.json[0], "{\"x\":1}");
    assert_string_equal(a.id[1], "call_B");
    assert_string_equal(a.name[1], "g");
    assert_string_equal(a.json[1], "{\"y\":2}");
    sg_buf_dispose(&out);
}

/* thinking -> reasoning_effort; reasoning_content (or reasoning, or LiteLLM's thinking_blocks)
 * -> thinking blocks, whole and streamed in Anthropic's order. */
static void test_reasoning(void **state)
{
    (void)state;
    static const struct {
        const char *thinking, *effort;
    } map[] = {{"{\"type\":\"enabled\",\"budget_tokens\":1024}", "\"low\""},
               {"{\"type\":\"enabled\",\"budget_tokens\":3000}", "\"medium\""},
               {"{\"type\":\"enabled\",\"budget_tokens\":4096}", "\"high\""},
               {"{\"type\":\"adaptive\"}", "\"medium\""},
               {"{\"type\":\"disabled\"}", NULL}};
    char body[400];
    struct sg_deployment o4 = oai;
    o4.provider_model = "o4-mini";
    for (size_t i = 0; i < SG_ARRAY_LEN(map); i++) {
        snprintf(body, sizeof body,
                 "{\"model\":\"m\",\"max_tokens\":9000,\"thinking\":%s,\"messages\":[{\"role\":"
                 "\"user\",\"content\":\"hi\"}]}",
                 map[i].thinking);
        struct json_object *j = to_deployment(body, &o4);
        if (map[i].effort)
            assert_string_equal(json_path_text(j, "reasoning_effort"), map[i].effort);
        else
            assert_null(json_path(j, "reasoning_effort"));
        assert_null(json_path(j, "thinking"));
        json_object_put(j);
        j = to_openai(body); /* gpt-4o-mini does not reason: OpenAI would refuse the effort */
        assert_null(json_path(j, "reasoning_effort"));
        assert_null(json_path(j, "thinking"));
        json_object_put(j);
    }
    /* Which models take reasoning_effort: model_info first, else the name (base_model's). */
    static const struct {
        const char *model, *base;
        signed char said;
        bool reasons;
    } who[] = {{"o1", NULL, 0, true},
               {"o3-mini", NULL, 0, true},
               {"o4-mini-2025-04-16", NULL, 0, true},
               {"gpt-5", NULL, 0, true},
               {"gpt-5-mini", NULL, 0, true},
               {"gpt-5-chat-latest", NULL, 0, false},
               {"gpt-oss-120b", NULL, 0, true},
               {"codex-mini-latest", NULL, 0, true},
               {"gpt-4o-mini", NULL, 0, false},
               {"o10", NULL, 0, false},
               {"omni", NULL, 0, false},
               {"house", NULL, 1, true},
               {"o3", NULL, -1, false},
               {"my-azure-name", "azure/o3-mini", 0, true},
               {"o3", "azure/gpt-4o", 0, false}};
    for (size_t i = 0; i < SG_ARRAY_LEN(who); i++) {
        struct sg_deployment d = oai;
        d.provider_model = (char *)who[i].model;
        d.base_model = (char *)who[i].base;
        d.supports_reasoning = who[i].said;
        if (sg_provider_reasons(&d) != who[i].reasons)
            fail_msg("%s (base %s, said %d): reasons %d", who[i].model,
                     who[i].base ? who[i].base : "-", who[i].said, who[i].reasons);
    }
    const char *ans = "{\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":\"4\","
                      "\"reasoning\":\"2+2\"},\"finish_reason\":\"stop\"}]}";
    struct sg_buf out;
    struct sg_usage u;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_messages_decode_openai(ans, strlen(ans), &out, &u), SG_OK);
    struct json_object *j = json_tokener_parse(out.data);
    assert_non_null(j);
    assert_string_equal(json_path_text(j, "content"),
                        "[{\"type\":\"thinking\",\"thinking\":\"2+2\",\"signature\":\"\"},"
                        "{\"type\":\"text\",\"text\":\"4\"}]");
    json_object_put(j);
    sg_buf_reset(&out);
    ans = "{\"id\":\"c\",\"model\":\"m\",\"choices\":[{\"message\":{\"content\":null,"
          "\"reasoning_content\":\"r\",\"thinking_blocks\":[{\"type\":\"thinking\",\"thinking\":"
          "\"r\",\"signature\":\"s\"},{\"type\":\"redacted_thinking\",\"data\":\"d\"}]},"
          "\"finish_reason\":\"stop\"}]}";
    assert_int_equal(sg_messages_decode_openai(ans, strlen(ans), &out, &u), SG_OK);
    j = json_tokener_parse(out.data);
    assert_string_equal(json_path_text(j, "content"),
                        "[{\"type\":\"thinking\",\"thinking\":\"r\",\"signature\":\"s\"},{\"type\":"
                        "\"redacted_thinking\",\"data\":\"d\"}]");
    json_object_put(j);
    sg_buf_reset(&out);

    struct sg_messages_stream s;
    sg_messages_stream_init(&s);
    const char *pre = "{\"id\":\"x\",\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":";
    char c[400];
    snprintf(c, sizeof c, "%s{\"reasoning_content\":\"Hm\"},\"finish_reason\":null}]}", pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    snprintf(c, sizeof c, "%s{\"reasoning_content\":\"m.\"},\"finish_reason\":null}]}", pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    snprintf(c, sizeof c, "%s{\"content\":\"Hi\"},\"finish_reason\":\"stop\"}]}", pre);
    assert_int_equal(chunk(&s, c, &out), SG_OK);
    assert_int_equal(chunk(&s, "[DONE]", &out), SG_OK);
    char seq[600];
    names(out.data, seq, sizeof seq);
    assert_string_equal(seq, "message_start content_block_start ping content_block_delta "
                             "content_block_delta content_block_stop content_block_start "
                             "content_block_delta content_block_stop message_delta message_stop");
    assert_non_null(strstr(out.data, "{\"type\":\"thinking_delta\",\"thinking\":\"Hm\"}"));
    assert_non_null(strstr(out.data, "\"index\":1,\"content_block\":{\"type\":\"text\""));
    assert_int_equal(s.content_chunks, 3); /* reasoning counts in the output estimate */
    sg_buf_dispose(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_reasoning),
        cmocka_unit_test(test_encode_openai),
        cmocka_unit_test(test_encode_openai_documents),
        cmocka_unit_test(test_encode_anthropic),
        cmocka_unit_test(test_decode_openai),
        cmocka_unit_test(test_stream),
        cmocka_unit_test(test_stream_usage_estimate),
        cmocka_unit_test(test_decode_openai_text_with_nul),
        cmocka_unit_test(test_stream_interleaved_tool_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
