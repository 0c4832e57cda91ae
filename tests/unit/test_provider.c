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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
