/* provider: strict request parsing (the cJSON traps of DESIGN §3), model-id mapping, encoding. */
#include "provider/provider.h"

#include <json-c/json.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static int parse(const char *body, struct sg_chat_request *r, char *err)
{
    return sg_chat_request_parse(body, strlen(body), r, err, 300);
}

static void expect_400(const char *body, const char *msg_part)
{
    struct sg_chat_request r;
    char err[300] = "";
    assert_int_equal(parse(body, &r, err), SG_EINVAL);
    if (!strstr(err, msg_part))
        fail_msg("for %s expected '%s' in '%s'", body, msg_part, err);
}

static void test_parse_ok(void **state)
{
    (void)state;
    struct sg_chat_request r;
    char err[300];
    assert_int_equal(parse("{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"hi\"}],\"stream\":true,\"stream_options\":{\"include_usage\":true},"
                           "\"user\":\"u1\",\"metadata\":{\"feature\":\"summarize\"}}",
                           &r, err),
                     SG_OK);
    assert_string_equal(r.model, "app/chat");
    assert_true(r.stream);
    assert_true(r.include_usage);
    assert_string_equal(r.user, "u1");
    assert_string_equal(r.feature, "summarize");
}

static void test_long_user_keeps_its_start_and_a_hash(void **state)
{
    (void)state;
    /* A user longer than the field (escaped in the JSON) is not dropped: its decoded start and a
     * hash of the whole, so two long users stay two. */
    char body[1024], u1[sizeof((struct sg_chat_request){0}.user)], u2[sizeof u1];
    struct sg_chat_request r;
    char err[300];
    for (int k = 0; k < 2; k++) {
        int n = snprintf(
            body, sizeof body,
            "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"user\":\"");
        for (int i = 0; i < 100; i++)
            n += snprintf(body + n, sizeof body - (size_t)n, "\\u00e9"); /* é, 2 bytes each */
        snprintf(body + n, sizeof body - (size_t)n, "%s\"}", k ? "b" : "a");
        assert_int_equal(parse(body, &r, err), SG_OK);
        strcpy(k ? u2 : u1, r.user);
    }
    assert_true(strlen(u1) < sizeof u1 && strlen(u1) > 100);
    assert_memory_equal(u1, "\xc3\xa9\xc3\xa9", 4);
    assert_non_null(strchr(u1, '~'));
    assert_string_not_equal(u1, u2);
}

static void test_duplicate_key_last_wins(void **state)
{
    (void)state;
    /* Billing and routing must see the same model the provider will: the last one. */
    struct sg_chat_request r;
    char err[300];
    assert_int_equal(
        parse("{\"model\":\"cheap\",\"messages\":[{}],\"model\":\"expensive\"}", &r, err), SG_OK);
    assert_string_equal(r.model, "expensive");
    /* ... and an escaped member name is the same member. */
    assert_int_equal(
        parse("{\"model\":\"cheap\",\"messages\":[{}],\"mod\\u0065l\":\"x\\u002fy\"}", &r, err),
        SG_OK);
    assert_string_equal(r.model, "x/y");
    struct sg_deployment d = {.id = "d", .provider_model = "gpt-4o-mini"};
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_openai_encode_chat(&r, &d, &out), SG_OK);
    assert_string_equal(out.data, "{\"model\":\"gpt-4o-mini\",\"messages\":[{}],\"mod\\u0065l\":"
                                  "\"gpt-4o-mini\"}");
    sg_buf_dispose(&out);
}

static void test_rejects(void **state)
{
    (void)state;
    expect_400("", "empty");
    expect_400("{\"model\":\"a\",", "ends early");
    expect_400("{\"model\":\"a\",\"messages\":[{}]} x", "unexpected data");
    expect_400("[1]", "must be a JSON object");
    expect_400("{\"messages\":[{}]}", "you must provide a model parameter");
    expect_400("{\"model\":\"\",\"messages\":[{}]}", "you must provide a model parameter");
    expect_400("{\"model\":null,\"messages\":[{}]}", "you must provide a model parameter");
    expect_400("{\"model\":3,\"messages\":[{}]}",
               "Invalid type for 'model': expected a string, but got a number instead.");
    expect_400("{\"model\":[\"a\"],\"messages\":[{}]}", "but got an array instead");
    expect_400("{\"model\":{},\"messages\":[{}]}", "but got an object instead");
    expect_400("{\"model\":true,\"messages\":[{}]}", "but got a boolean instead");
    expect_400("{\"model\":\"a\"}", "'messages' is a required property");
    expect_400("{\"model\":\"a\",\"messages\":[]}", "at least one message");
    expect_400("{\"model\":\"a\",\"messages\":[{}],\"stream\":\"yes\"}",
               "'stream' must be a boolean");
    expect_400("{\"model\":\"a\",\"messages\":[{}],\"t\":NaN}",
               "not valid JSON: NaN and Infinity are not JSON numbers");
    expect_400("{\"model\":\"a\",\"messages\":[{}],\"t\":Infinity}", "NaN and Infinity");
    expect_400("{\"model\":\"a\",\"messages\":[{}],\"t\":-Infinity}", "NaN and Infinity");
    expect_400("{\"model\":\"a\xff\",\"messages\":[{}]}", "not valid JSON");
    expect_400("{'model':'a','messages':[{}]}", "not valid JSON");
    expect_400("{\"model\":\"a\",\"messages\":[{},],}", "not valid JSON");
    expect_400("{\"model\":\"a\",\"messages\":[{}],\"x\":01}", "not valid JSON");
    expect_400("{\"model\":\"a\",\"messages\":[{}],\"x\":\"\\x\"}", "invalid escape");
    expect_400("{\"model\":\"a\",\"messages\":[{}],\"x\":\"\xc0\xaf\"}", "invalid UTF-8");
    expect_400("{\"model\":\"a\",\"messages\":[{}],\"x\":\"\xed\xa0\x80\"}", "invalid UTF-8");
    expect_400("{\"model\":\"a\",\"messages\":[{}],\"x\":\"tab\there\"}", "control character");
    expect_400("{\"model\":\"a\\u0000\",\"messages\":[{}]}", "'model' must be at most");
    /* Nesting beyond the depth limit is refused, not a stack overflow. */
    char deep[1000];
    size_t n = 0;
    n += (size_t)snprintf(deep, sizeof deep, "{\"model\":\"a\",\"messages\":[{}],\"x\":");
    for (int i = 0; i < 200; i++)
        deep[n++] = '[';
    for (int i = 0; i < 200; i++)
        deep[n++] = ']';
    deep[n++] = '}';
    deep[n] = '\0';
    expect_400(deep, "not valid JSON");
}

static void test_split_model_and_encode(void **state)
{
    (void)state;
    char *prov = NULL, *model = NULL;
    enum sg_provider_kind kind;
    assert_int_equal(sg_config_split_model("openai/gpt-4o-mini", &prov, &model, &kind), 0);
    assert_string_equal(prov, "openai");
    assert_string_equal(model, "gpt-4o-mini");
    assert_int_equal(kind, SG_PROVIDER_OPENAI);
    free(prov);
    free(model);
    assert_int_equal(sg_config_split_model("gpt-4o", &prov, &model, &kind), 0);
    assert_string_equal(prov, "openai");
    assert_string_equal(model, "gpt-4o");
    free(prov);
    free(model);
    assert_int_equal(
        sg_config_split_model("anthropic/claude-3-5-haiku-latest", &prov, &model, &kind), 0);
    assert_int_equal(kind, SG_PROVIDER_ANTHROPIC);
    assert_string_equal(model, "claude-3-5-haiku-latest");
    free(prov);
    free(model);

    struct sg_deployment d = {
        .id = "primary", .provider_model = "gpt-4o-mini", .api_base = "http://127.0.0.1:9/v1"};
    struct sg_chat_request r;
    char err[300];
    assert_int_equal(parse("{\"model\":\"app/chat\",\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"a/b\"}],\"temperature\":0.5}",
                           &r, err),
                     SG_OK);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_openai_encode_chat(&r, &d, &out), SG_OK);
    assert_string_equal(out.data, "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\","
                                  "\"content\":\"a/b\"}],\"temperature\":0.5}");
    /* The request still names the client's alias afterwards (a retry re-encodes it). */
    assert_string_equal(r.model, "app/chat");
    sg_buf_reset(&out);
    assert_int_equal(sg_openai_encode_chat(&r, &d, &out), SG_OK);
    assert_non_null(strstr(out.data, "\"model\":\"gpt-4o-mini\""));
    sg_buf_dispose(&out);
    char *url = sg_openai_chat_url(&d);
    assert_string_equal(url, "http://127.0.0.1:9/v1/chat/completions");
    free(url);
}

static void test_provider_error_message(void **state)
{
    (void)state;
    char out[100];
    const char oa[] = "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\"}}";
    sg_provider_error_message(oa, sizeof oa - 1, out, sizeof out);
    assert_string_equal(out, "Rate limit reached");
    const char an[] = "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
                      "\"Overloaded\"}}";
    sg_provider_error_message(an, sizeof an - 1, out, sizeof out);
    assert_string_equal(out, "Overloaded");
    const char html[] = "<html>\n502 Bad Gateway</html>";
    sg_provider_error_message(html, sizeof html - 1, out, sizeof out);
    assert_string_equal(out, "<html> 502 Bad Gateway</html>");
    sg_provider_error_message(NULL, 0, out, sizeof out);
    assert_string_equal(out, "");
}

/* Strings are scanned 8 bytes at a time while they are plain ASCII: a byte that needs a look of
 * its own must be seen at every offset within and across those words. */
static void test_string_scan_every_offset(void **state)
{
    (void)state;
    static const struct {
        const char *bytes, *err; /* err NULL: valid */
    } cases[] = {
        {"\t", "control character"},
        {"\x1f", "control character"},
        {"\x80", "invalid UTF-8"},
        {"\xff", "invalid UTF-8"},
        {"\\q", "invalid escape"},
        {"\"x", "expected"},
        {"\\n", NULL},
        {"\\u00e9", NULL},
        {"\xc3\xa9", NULL},
        {" ", NULL},
        {"\x7f", NULL},
        {"!#[]~", NULL},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t off = 0; off < 20; off++) {
            char body[128], err[200] = "";
            snprintf(body, sizeof body, "{\"x\":\"%.*s%s%.*s\"}", (int)off,
                     "abcdefghijklmnopqrstuvwxyz", cases[c].bytes, (int)(19 - off),
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
            int rc = sg_json_validate(body, strlen(body), err, sizeof err);
            if (cases[c].err ? rc != SG_EINVAL || !strstr(err, cases[c].err) : rc != SG_OK)
                fail_msg("case %zu at offset %zu: rc %d, '%s'", c, off, rc, err);
        }
    }
    /* A string that ends without its quote, at and around a word's end. */
    for (size_t n = 0; n < 20; n++) {
        char body[64], err[200] = "";
        snprintf(body, sizeof body, "\"%.*s", (int)n, "abcdefghijklmnopqrstuvwxyz");
        assert_int_equal(sg_json_validate(body, strlen(body), err, sizeof err), SG_EINVAL);
        assert_non_null(strstr(err, "unterminated string"));
    }
}

/* The stream watcher for a client that did not ask for usage: what is left of one chunk's data
 * once `hide` is cut (must still be JSON), and whether it is forwarded at all. */
static void expect_cut(const char *data, bool wants, const char *left)
{
    struct sg_openai_stream s = {.client_wants_usage = wants};
    bool fwd;
    size_t n = strlen(data);
    sg_openai_stream_event(&s, (struct sg_slice){data, n}, &fwd);
    assert_true(fwd);
    assert_true(s.hide.p >= data && s.hide.p + s.hide.n <= data + n);
    char out[512];
    size_t head = (size_t)(s.hide.p - data);
    snprintf(out, sizeof out, "%.*s%s", (int)head, data, data + head + s.hide.n);
    if (strcmp(out, left) != 0)
        fail_msg("for %s expected %s, got %s", data, left, out);
    char err[64];
    assert_int_equal(sg_json_validate(out, strlen(out), err, sizeof err), SG_OK);
}

static void test_stream_usage_null_is_cut_unless_asked(void **state)
{
    (void)state;
    /* OpenAI's layout: the last member, found from the end; any whitespace a provider puts. */
    expect_cut("{\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}],\"usage\":null}",
               false, "{\"id\":\"c\",\"choices\":[{\"delta\":{\"content\":\"hi\"}}]}");
    expect_cut("{\"id\":\"c\" , \"usage\" :\n null }\n", false, "{\"id\":\"c\" }\n");
    expect_cut("{\"usage\":null}", false, "{}");
    /* First, middle, after a content of "usage": the first by a memmem, the others scanned. */
    expect_cut("{\"usage\":null,\"id\":\"c\"}", false, "{\"id\":\"c\"}");
    expect_cut("{ \"usage\" : null ,\n \"id\":\"c\"}", false, "{ \"id\":\"c\"}");
    expect_cut("{\"id\":\"c\",\"usage\": null,\"choices\":[]}", false,
               "{\"id\":\"c\",\"choices\":[]}");
    expect_cut("{\"choices\":[{\"delta\":{\"content\":\"usage\"}}],\"usage\":null,\"x\":1}", false,
               "{\"choices\":[{\"delta\":{\"content\":\"usage\"}}],\"x\":1}");
    /* Usage on a chunk with choices (servers that put it on the finish chunk): counted, and cut
     * for a client that did not ask. */
    expect_cut("{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_to"
               "kens\":1,\"completion_tokens\":2}}",
               false, "{\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}");
    /* A client that asked sees every chunk as it came. */
    expect_cut("{\"id\":\"c\",\"usage\":null}", true, "{\"id\":\"c\",\"usage\":null}");
    expect_cut("{\"usage\":null,\"id\":\"c\"}", true, "{\"usage\":null,\"id\":\"c\"}");
    /* Only a top-level member is the chunk's usage: nested ones, values and keys that merely
     * end in "usage" stay. */
    expect_cut("{\"choices\":[{\"delta\":{},\"usage\":null}]}", false,
               "{\"choices\":[{\"delta\":{},\"usage\":null}]}");
    expect_cut("{\"a\":{\"usage\":null}}", false, "{\"a\":{\"usage\":null}}");
    expect_cut("{\"a\":{\"usage\":null},\"b\":1}", false, "{\"a\":{\"usage\":null},\"b\":1}");
    expect_cut("{\"x\\\"usage\":null}", false, "{\"x\\\"usage\":null}");
    expect_cut("{\"note\":\"usage\"}", false, "{\"note\":\"usage\"}");
    expect_cut("{\"id\":\"c\"}", false, "{\"id\":\"c\"}");
    /* Not JSON: relayed as it came. */
    struct sg_openai_stream s = {0};
    bool fwd;
    sg_openai_stream_event(&s, SG_SLICE_LIT("usage\":null}"), &fwd);
    assert_true(fwd);
    assert_int_equal(s.hide.n, 0);
    sg_openai_stream_event(&s, SG_SLICE_LIT("{\"a\":[\"usage\":null]}"), &fwd);
    assert_int_equal(s.hide.n, 0);
}

static struct sg_slice relay(struct sg_openai_stream *s, const char *raw, const char *data,
                             struct sg_buf *scratch)
{
    return sg_openai_stream_relay(s, (struct sg_slice){raw, strlen(raw)},
                                  (struct sg_slice){data, strlen(data)}, scratch);
}

static void expect_relay(const char *raw, const char *data, bool wants, const char *sent)
{
    struct sg_openai_stream s = {.client_wants_usage = wants};
    struct sg_buf scratch;
    sg_buf_init(&scratch, 0);
    struct sg_slice out = relay(&s, raw, data, &scratch);
    if (out.n != strlen(sent) || memcmp(out.p, sent, out.n) != 0)
        fail_msg("for %s expected %s, got %.*s", raw, sent, (int)out.n, out.p);
    sg_buf_dispose(&scratch);
}

static void test_stream_relay_cuts_in_the_event(void **state)
{
    (void)state;
    expect_relay("data: {\"id\":\"c\",\"usage\":null}\n\n", "{\"id\":\"c\",\"usage\":null}", false,
                 "data: {\"id\":\"c\"}\n\n");
    expect_relay("data:{\"id\":\"c\",\"usage\":null}\r\n\r\n", "{\"id\":\"c\",\"usage\":null}",
                 false, "data:{\"id\":\"c\"}\r\n\r\n");
    /* Lines before the data line are kept. */
    expect_relay(": keep-alive\nid: 7\ndata: {\"usage\":null,\"id\":\"c\"}\n\n",
                 "{\"usage\":null,\"id\":\"c\"}", false,
                 ": keep-alive\nid: 7\ndata: {\"id\":\"c\"}\n\n");
    expect_relay("event: chunk\r\nid: 7\rdata:{\"id\":\"c\",\"usage\":null}\r\n\r\n",
                 "{\"id\":\"c\",\"usage\":null}", false,
                 "event: chunk\r\nid: 7\rdata:{\"id\":\"c\"}\r\n\r\n");
    expect_relay("data: {\"id\":\"c\",\"usage\":null}\n\n", "{\"id\":\"c\",\"usage\":null}", true,
                 "data: {\"id\":\"c\",\"usage\":null}\n\n");
    /* A value split over two data lines: as it came. */
    expect_relay("data: {\"id\":\"c\",\ndata: \"usage\":null}\n\n",
                 "{\"id\":\"c\",\n\"usage\":null}", false,
                 "data: {\"id\":\"c\",\ndata: \"usage\":null}\n\n");
    /* The usage chunk the client did not ask for: nothing; [DONE]: as it came. */
    expect_relay("data: {\"choices\":[],\"usage\":{\"prompt_tokens\":1}}\n\n",
                 "{\"choices\":[],\"usage\":{\"prompt_tokens\":1}}", false, "");
    expect_relay("data: [DONE]\n\n", "[DONE]", false, "data: [DONE]\n\n");
}

static void test_usage_chunk_and_answer_usage(void **state)
{
    (void)state;
    struct sg_openai_stream s = {.client_wants_usage = true};
    struct sg_buf out;
    sg_buf_init(&out, 0);
    const char *first =
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":17,"
        "\"model\":\"m\\\"x\",\"choices\":[],\"usage\":null}";
    relay(&s, "data: x\n\n", first, &out);
    struct sg_usage u = {.input_tokens = 12, .output_tokens = 26, .estimated = true};
    sg_buf_reset(&out);
    assert_int_equal(sg_openai_usage_chunk(&s, &u, &out), SG_OK);
    assert_string_equal(out.data,
                        "data: {\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\","
                        "\"created\":17,\"model\":\"m\\\"x\",\"choices\":[],\"usage\":{\"prompt_"
                        "tokens\":12,\"completion_tokens\":26,\"total_tokens\":38}}\n\n");
    /* No first chunk seen (or one without these members): only what is known. */
    struct sg_openai_stream none = {0};
    sg_buf_reset(&out);
    sg_openai_usage_chunk(&none, &u, &out);
    assert_string_equal(out.data, "data: {\"object\":\"chat.completion.chunk\",\"choices\":[],"
                                  "\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":26,"
                                  "\"total_tokens\":38}}\n\n");
    /* Whole answers: usage added, or put in place of a null one, in each API's shape. */
    sg_buf_reset(&out);
    assert_int_equal(sg_answer_set_usage(SG_API_CHAT,
                                         SG_SLICE_LIT("{\"id\":\"a\",\"usage\":null,\"x\":[1]}"),
                                         &u, &out),
                     SG_OK);
    assert_string_equal(out.data, "{\"id\":\"a\",\"x\":[1],\"usage\":{\"prompt_tokens\":12,"
                                  "\"completion_tokens\":26,\"total_tokens\":38}}");
    sg_buf_reset(&out);
    sg_answer_set_usage(SG_API_EMBEDDINGS, SG_SLICE_LIT("{ \"data\" : [] }"), &u, &out);
    assert_string_equal(out.data,
                        "{\"data\" : [],\"usage\":{\"prompt_tokens\":12,\"total_tokens\":12}}");
    sg_buf_reset(&out);
    sg_answer_set_usage(SG_API_MESSAGES,
                        SG_SLICE_LIT("{\"type\":\"message\",\"usage\":{\"input_tokens\":0,"
                                     "\"output_tokens\":0}}"),
                        &u, &out);
    assert_string_equal(out.data, "{\"type\":\"message\",\"usage\":{\"input_tokens\":12,"
                                  "\"output_tokens\":26,\"cache_creation_input_tokens\":0,"
                                  "\"cache_read_input_tokens\":0}}");
    sg_buf_reset(&out);
    assert_int_equal(sg_answer_set_usage(SG_API_CHAT, SG_SLICE_LIT("[1]"), &u, &out), SG_EINVAL);
    assert_int_equal(sg_answer_set_usage(SG_API_CHAT, SG_SLICE_LIT("{\"a\":"), &u, &out),
                     SG_EINVAL);
    assert_int_equal(out.len, 0);
    sg_buf_dispose(&out);
}

static void test_stream_options_spliced(void **state)
{
    (void)state;
    struct sg_deployment d = {.id = "p", .provider_model = "gpt", .api_base = "http://x/v1"};
    struct sg_chat_request r;
    char err[300];
    struct sg_buf out;
    sg_buf_init(&out, 0);
    /* The client's other stream_options stay; include_usage is forced to true. */
    assert_int_equal(
        parse("{\"model\":\"a\",\"stream\":true,\"stream_options\":{\"include_usage\""
              ":false, \"x\" : 1},\"messages\":[{\"role\":\"user\",\"content\":\"h\"}]}",
              &r, err),
        SG_OK);
    assert_int_equal(sg_openai_encode_chat(&r, &d, &out), SG_OK);
    assert_non_null(strstr(out.data, "\"stream_options\":{\"x\" : 1,\"include_usage\":true}"));
    sg_buf_reset(&out);
    assert_int_equal(parse("{\"model\":\"a\",\"stream\":true,\"stream_options\":null,\"messages\""
                           ":[{\"role\":\"user\",\"content\":\"h\"}]}",
                           &r, err),
                     SG_OK);
    assert_int_equal(sg_openai_encode_chat(&r, &d, &out), SG_OK);
    assert_non_null(strstr(out.data, "\"stream_options\":{\"include_usage\":true}"));
    sg_buf_dispose(&out);
}

/* metadata (without "store": true) and cache are the gateway's: cut with one comma beside them,
 * wherever they are and however the client spaced the object; the rest is byte for byte. */
static void test_gateway_members_cut(void **state)
{
    (void)state;
    struct sg_deployment d = {.id = "p", .provider_model = "gpt", .api_base = "http://x/v1"};
    static const char *const cases[][2] = {
        {"{\"metadata\":{\"feature\":\"f\"},\"model\":\"a\",\"messages\":[]}",
         "{\"model\":\"gpt\",\"messages\":[]}"},
        {"{\"model\":\"a\", \"messages\":[] , \"metadata\" : {\"x\":1} }",
         "{\"model\":\"gpt\", \"messages\":[]  }"},
        {"{\"model\":\"a\",\"cache\":{\"no-cache\":true},\"metadata\":{},\"messages\":[],"
         "\"temperature\":0}",
         "{\"model\":\"gpt\",\"messages\":[],\"temperature\":0}"},
        {"{\"model\":\"a\",\"messages\":[],\"store\":true,\"metadata\":{\"k\":\"v\"},\"cache\":{}}",
         "{\"model\":\"gpt\",\"messages\":[],\"store\":true,\"metadata\":{\"k\":\"v\"}}"},
        {"{\"model\":\"a\",\"messages\":[],\"store\":false,\"metadata\":null}",
         "{\"model\":\"gpt\",\"messages\":[],\"store\":false}"},
        /* Two cut members side by side, at either end: each takes its own comma. */
        {"{\"model\":\"a\",\"messages\":[],\"metadata\":{\"feature\":\"x\"},\"cache\":{}}",
         "{\"model\":\"gpt\",\"messages\":[]}"},
        {"{\"metadata\":{} ,\"cache\":{},\"model\":\"a\",\"messages\":[]}",
         "{\"model\":\"gpt\",\"messages\":[]}"},
        {"{\"messages\":[],\"metadata\":{},\"model\":\"a\", \"cache\":{}}",
         "{\"messages\":[],\"model\":\"gpt\"}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* messages may not be empty: the cases put one message in place of [] */
        char body[512], want[512];
        struct sg_buf b;
        sg_buf_init(&b, 0);
        const char *msg = "[{\"role\":\"user\",\"content\":\"h\"}]";
        for (int k = 0; k < 2; k++) {
            char *dst = k ? want : body;
            const char *src = cases[i][k], *at = strstr(src, "[]");
            snprintf(dst, 512, "%.*s%s%s", (int)(at - src), src, msg, at + 2);
        }
        struct sg_chat_request r;
        char err[300];
        assert_int_equal(parse(body, &r, err), SG_OK);
        assert_int_equal(sg_openai_encode_chat(&r, &d, &b), SG_OK);
        assert_string_equal(b.data, want);
        sg_buf_dispose(&b);
    }
}

/* OpenAI's type and range checks, with its codes and the field in param. */
static void test_typed_params(void **state)
{
    (void)state;
    static const struct {
        const char *member, *param, *code, *msg;
    } cases[] = {
        {"\"frequency_penalty\":2.5", "frequency_penalty", "decimal_above_max_value",
         "Invalid 'frequency_penalty': decimal above maximum value. Expected a value <= 2, but got "
         "2.5 instead."},
        {"\"temperature\":-1", "temperature", "decimal_below_min_value", "Expected a value >= 0"},
        {"\"n\":129", "n", "integer_above_max_value", "Expected a value <= 128, but got 129"},
        {"\"n\":1e0", "n", "invalid_type", "expected an integer, but got a decimal instead."},
        {"\"max_tokens\":\"5\"", "max_tokens", "invalid_type", "but got a string instead."},
        {"\"parallel_tool_calls\":1", "parallel_tool_calls", "invalid_type",
         "expected a boolean, but got an integer instead."},
        {"\"store\":{}", "store", "invalid_type", "expected a boolean, but got an object instead."},
        {"\"user\":[]", "user", "invalid_type", "expected a string, but got an array instead."},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256], err[300] = "";
        snprintf(body, sizeof body,
                 "{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":\"h\"}],%s}",
                 cases[i].member);
        struct sg_chat_request r;
        assert_int_equal(parse(body, &r, err), SG_EINVAL);
        assert_string_equal(r.error_param, cases[i].param);
        assert_string_equal(r.error_code, cases[i].code);
        if (!strstr(err, cases[i].msg))
            fail_msg("for %s expected '%s' in '%s'", body, cases[i].msg, err);
    }
    struct sg_chat_request r;
    char err[300];
    assert_int_equal(parse("{\"model\":\"a\",\"messages\":[{\"role\":\"user\",\"content\":"
                           "\"h\"}],\"n\":null,\"temperature\":2,\"top_p\":0,\"seed\":-5,"
                           "\"top_logprobs\":0,\"logprobs\":true,\"max_tokens\":1}",
                           &r, err),
                     SG_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_ok),
        cmocka_unit_test(test_long_user_keeps_its_start_and_a_hash),
        cmocka_unit_test(test_duplicate_key_last_wins),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_split_model_and_encode),
        cmocka_unit_test(test_provider_error_message),
        cmocka_unit_test(test_string_scan_every_offset),
        cmocka_unit_test(test_stream_usage_null_is_cut_unless_asked),
        cmocka_unit_test(test_stream_relay_cuts_in_the_event),
        cmocka_unit_test(test_usage_chunk_and_answer_usage),
        cmocka_unit_test(test_stream_options_spliced),
        cmocka_unit_test(test_gateway_members_cut),
        cmocka_unit_test(test_typed_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
