/* provider: usage in answers and streams (openai.c), prices and cost (pricing.c), the input-token
 * estimate (tokens.c) and error classification (errors.c). */
#include "provider/provider.h"

#include <json-c/json.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>

static struct sg_deployment dep(const char *provider, const char *model, enum sg_provider_kind k)
{
    struct sg_deployment d = {.id = "d",
                              .provider = (char *)provider,
                              .provider_model = (char *)model,
                              .kind = k,
                              .api_base = "http://x/v1",
                              .input_cost_per_token = -1,
                              .output_cost_per_token = -1};
    return d;
}

static void test_lookup(void **state)
{
    (void)state;
    const struct sg_price_entry *e = sg_pricing_lookup("openai", "gpt-4o-mini-2024-07-18");
    assert_non_null(e);
    assert_string_equal(e->model, "gpt-4o-mini"); /* the longest row, not gpt-4o */
    e = sg_pricing_lookup("openai", "gpt-4o-2024-08-06");
    assert_string_equal(e->model, "gpt-4o");
    e = sg_pricing_lookup("openai", "gpt-4o-2024-05-13");
    assert_true(e->input == 5.0);
    assert_string_equal(sg_pricing_lookup("anthropic", "claude-3-5-haiku-latest")->model,
                        "claude-3-5-haiku");
    assert_string_equal(sg_pricing_lookup("anthropic", "claude-opus-4-1-20250805")->model,
                        "claude-opus-4-1");
    assert_string_equal(sg_pricing_lookup("anthropic", "claude-opus-4-20250514")->model,
                        "claude-opus-4");
    assert_null(sg_pricing_lookup("openai", "gpt-4oz")); /* a prefix must end at a '-' */
    assert_null(sg_pricing_lookup("openai", "claude-3-haiku"));
    assert_null(sg_pricing_lookup("anthropic", "gpt-4o"));
    assert_null(sg_pricing_lookup("openai", "llama-3.1-8b"));
    /* Every row: positive input, cache prices no dearer than a write, Anthropic rows carry
     * Anthropic's multipliers. */
    size_t n;
    const struct sg_price_entry *t = sg_pricing_table(&n);
    assert_true(n >= 30);
    for (size_t i = 0; i < n; i++) {
        assert_true(t[i].input > 0);
        assert_true(t[i].cache_read <= t[i].input);
        if (strcmp(t[i].provider, "anthropic") == 0) {
            /* (Haiku 3's published write price is rounded: 0.30, not 0.3125.) */
            assert_true(fabs(t[i].cache_write - 1.25 * t[i].input) < 0.02);
            assert_true(fabs(t[i].cache_read - 0.1 * t[i].input) < 0.011);
            assert_true(t[i].max_output > 0);
        }
    }
}

static void test_resolve_and_cost(void **state)
{
    (void)state;
    struct sg_price p;
    struct sg_deployment d = dep("openai", "gpt-4o-mini", SG_PROVIDER_OPENAI);
    assert_true(sg_pricing_resolve(&d, &p));
    struct sg_usage u = {.input_tokens = 1000000,
                         .output_tokens = 1000000,
                         .cache_read_tokens = 400000,
                         .known = true};
    /* 600k uncached x 0.15 + 400k cached x 0.075 + 1M out x 0.60 (per million) */
    assert_true(fabs(sg_pricing_cost(&p, &u) - (0.09 + 0.03 + 0.60)) < 1e-9);

    /* Anthropic: cache reads at 0.1x, cache writes at 1.25x of input. */
    d = dep("anthropic", "claude-3-5-haiku-20241022", SG_PROVIDER_ANTHROPIC);
    assert_true(sg_pricing_resolve(&d, &p));
    u = (struct sg_usage){.input_tokens = 2112,
                          .cache_read_tokens = 2000,
                          .cache_creation_tokens = 100,
                          .output_tokens = 6};
    double want = 12 * 0.8e-6 + 2000 * 0.08e-6 + 100 * 1.0e-6 + 6 * 4e-6;
    assert_true(fabs(sg_pricing_cost(&p, &u) - want) < 1e-12);

    /* Config prices win; cache prices keep the table's ratios. */
    d.input_cost_per_token = 0.000002;
    d.output_cost_per_token = 0.00001;
    assert_true(sg_pricing_resolve(&d, &p));
    assert_true(fabs(p.input - 2e-6) < 1e-15 && fabs(p.output - 1e-5) < 1e-15);
    assert_true(fabs(p.cache_read - 2e-7) < 1e-15 && fabs(p.cache_write - 2.5e-6) < 1e-15);

    /* An unknown model is unpriced, unless the config prices it. */
    d = dep("hosted_vllm", "llama-3.1-8b", SG_PROVIDER_OPENAI);
    assert_false(sg_pricing_resolve(&d, &p));
    assert_true(sg_pricing_cost(&p, &u) == 0.0);
    d.input_cost_per_token = 1e-7;
    assert_true(sg_pricing_resolve(&d, &p));
    assert_true(p.cache_read == 1e-7); /* no known discount: cached tokens in full */
    /* A non-OpenAI provider serving an OpenAI-sounding name is not OpenAI's price list. */
    d = dep("groq", "gpt-4o", SG_PROVIDER_OPENAI);
    assert_false(sg_pricing_resolve(&d, &p));
    /* Nonsense usage never prices negative. */
    d = dep("openai", "gpt-4o", SG_PROVIDER_OPENAI);
    sg_pricing_resolve(&d, &p);
    u = (struct sg_usage){.input_tokens = 5, .cache_read_tokens = 50};
    assert_true(sg_pricing_cost(&p, &u) >= 0);
}

static void test_usage_parse(void **state)
{
    (void)state;
    struct sg_usage u = {0};
    const char *b = "{\"id\":\"x\",\"usage\":{\"prompt_tokens\":19,\"completion_tokens\":10,"
                    "\"total_tokens\":29,\"prompt_tokens_details\":{\"cached_tokens\":0,"
                    "\"audio_tokens\":0}}}";
    assert_int_equal(sg_openai_usage_parse(b, strlen(b), &u), SG_OK);
    assert_true(u.known);
    assert_int_equal(u.input_tokens, 19);
    assert_int_equal(u.output_tokens, 10);
    memset(&u, 0, sizeof u);
    assert_int_equal(sg_openai_usage_parse("{\"usage\":null}", 14, &u), SG_ENOTFOUND);
    assert_false(u.known);
    /* Not an answer at all (cut short, empty, HTML): the gateway fails over on it. */
    assert_int_equal(sg_openai_usage_parse("{\"usa", 5, &u), SG_EINVAL);
    assert_int_equal(sg_openai_usage_parse("", 0, &u), SG_EINVAL);
    assert_int_equal(sg_openai_usage_parse("<html></html>", 13, &u), SG_EINVAL);
    assert_int_equal(sg_anthropic_usage_parse("{\"usa", 5, &u), SG_EINVAL);
    assert_int_equal(sg_anthropic_usage_parse("{\"id\":1}", 8, &u), SG_ENOTFOUND);
    /* Embeddings answers have prompt_tokens only. */
    b = "{\"object\":\"list\",\"data\":[],\"model\":\"text-embedding-3-small\",\"usage\":"
        "{\"prompt_tokens\":8,\"total_tokens\":8}}";
    assert_int_equal(sg_openai_usage_parse(b, strlen(b), &u), SG_OK);
    assert_int_equal(u.input_tokens, 8);
    assert_int_equal(u.output_tokens, 0);
}

/* Counts near INT64_MAX used to overflow the sums the readers make (Anthropic's three input
 * parts, OpenAI's cached + written check): a negative input_tokens, or UB under UBSan. */
static void test_usage_huge_counts(void **state)
{
    (void)state;
    struct sg_usage u = {0};
    const char *b = "{\"usage\":{\"input_tokens\":9223372036854775807,"
                    "\"cache_read_input_tokens\":5,\"cache_creation_input_tokens\":"
                    "9223372036854775807,\"output_tokens\":-4}}";
    assert_int_equal(sg_anthropic_usage_parse(b, strlen(b), &u), SG_OK);
    assert_true(u.known);
    assert_int_equal(u.cache_read_tokens, 5);
    assert_int_equal(u.cache_creation_tokens, SG_USAGE_MAX_TOKENS);
    assert_int_equal(u.input_tokens, 2 * SG_USAGE_MAX_TOKENS + 5);
    assert_int_equal(u.output_tokens, 0);

    memset(&u, 0, sizeof u);
    b = "{\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":9223372036854775807,"
        "\"cache_creation_input_tokens\":9223372036854775807,"
        "\"cache_read_input_tokens\":9223372036854775807}}";
    assert_int_equal(sg_openai_usage_parse(b, strlen(b), &u), SG_OK);
    assert_int_equal(u.cache_read_tokens, SG_USAGE_MAX_TOKENS);
    assert_int_equal(u.cache_creation_tokens, SG_USAGE_MAX_TOKENS);
    assert_int_equal(u.input_tokens, 2 * SG_USAGE_MAX_TOKENS);
    assert_int_equal(u.output_tokens, SG_USAGE_MAX_TOKENS);
}

static void test_stream_usage_chunk(void **state)
{
    (void)state;
    struct sg_openai_stream s = {.client_wants_usage = false};
    bool fwd;
    sg_openai_stream_event(&s,
                           SG_SLICE_LIT("{\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":"
                                        "{\"content\":\"hi\"}}],\"usage\":null}"),
                           &fwd);
    assert_true(fwd);
    assert_false(s.usage.known);
    /* The final usage chunk: recorded, and dropped for a client that did not ask for it. */
    struct sg_slice usage =
        SG_SLICE_LIT("{\"id\":\"c\",\"choices\":[ ],\"usage\":{\"prompt_tokens\""
                     ":7,\"completion_tokens\":3,\"total_tokens\":10}}");
    sg_openai_stream_event(&s, usage, &fwd);
    assert_false(fwd);
    assert_true(s.usage.known);
    assert_int_equal(s.usage.input_tokens, 7);
    assert_int_equal(s.usage.output_tokens, 3);
    sg_openai_stream_event(&s, SG_SLICE_LIT("[DONE]"), &fwd);
    assert_true(fwd);
    assert_true(s.done);
    /* Every event but [DONE] is counted: the output-token estimate when no usage comes. */
    assert_int_equal(s.chunks, 2);
    struct sg_openai_stream asked = {.client_wants_usage = true};
    sg_openai_stream_event(&asked, usage, &fwd);
    assert_true(fwd);
    assert_int_equal(asked.usage.output_tokens, 3);
    /* Some servers put usage on the last content chunk: it must reach the client. */
    struct sg_openai_stream s2 = {0};
    sg_openai_stream_event(&s2,
                           SG_SLICE_LIT("{\"choices\":[{\"delta\":{},\"finish_reason\":"
                                        "\"stop\"}],\"usage\":{\"prompt_tokens\":1,"
                                        "\"completion_tokens\":2}}"),
                           &fwd);
    assert_true(fwd);
    assert_int_equal(s2.usage.output_tokens, 2);
    /* Garbage is forwarded untouched, never a crash. */
    sg_openai_stream_event(&s2, SG_SLICE_LIT("{\"usage\":{"), &fwd);
    assert_true(fwd);
    /* "usage": null (spaced) is passed over without a scan; a content of "usage" is no member;
     * a later duplicate usage member still counts (the last one wins, as json-c reads it). */
    struct sg_openai_stream s3 = {0};
    sg_openai_stream_event(&s3, SG_SLICE_LIT("{\"choices\":[],\"usage\" :\n null }"), &fwd);
    assert_true(fwd);
    assert_false(s3.usage.known);
    sg_openai_stream_event(&s3,
                           SG_SLICE_LIT("{\"choices\":[{\"delta\":{\"content\":\"usage\"}}],"
                                        "\"usage\":{\"prompt_tokens\":4,\"completion_tokens\":5}}"),
                           &fwd);
    assert_true(fwd);
    assert_int_equal(s3.usage.output_tokens, 5);
    struct sg_openai_stream s4 = {0};
    sg_openai_stream_event(&s4,
                           SG_SLICE_LIT("{\"choices\":[],\"usage\":null,\"usage\":{"
                                        "\"prompt_tokens\":6,\"completion_tokens\":1}}"),
                           &fwd);
    assert_false(fwd);
    assert_int_equal(s4.usage.input_tokens, 6);
}

static char *encode(const char *body)
{
    struct sg_chat_request r;
    char err[300];
    assert_int_equal(sg_chat_request_parse(body, strlen(body), &r, err, sizeof err), SG_OK);
    struct sg_deployment d = dep("openai", "gpt-4o-mini", SG_PROVIDER_OPENAI);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_openai_encode_chat(&r, &d, &out), SG_OK);
    char e2[200];
    struct json_object *j = sg_json_parse_strict(out.data, out.len, e2, sizeof e2);
    if (!j)
        fail_msg("not JSON (%s): %s", e2, out.data);
    json_object_put(j);
    return out.data;
}

/* LiteLLM prices a deployment by model_info.base_model when it has one: an Azure deployment is
 * named by its owner, so its name says nothing of its price. Azure OpenAI has OpenAI's prices. */
static void test_base_model_prices_the_deployment(void **state)
{
    (void)state;
    struct sg_price p;
    struct sg_deployment d = dep("azure", "prod-4o-eu", SG_PROVIDER_OPENAI);
    assert_false(sg_pricing_resolve(&d, &p));
    d.base_model = "azure/gpt-4o-2024-08-06";
    assert_true(sg_pricing_resolve(&d, &p));
    assert_true(fabs(p.input - 2.5e-6) < 1e-15 && fabs(p.output - 1e-5) < 1e-15);
    d.base_model = "gpt-4o-mini"; /* no provider: OpenAI's, as LiteLLM reads a bare name */
    assert_true(sg_pricing_resolve(&d, &p));
    assert_true(fabs(p.input - 0.15e-6) < 1e-15);
    d.base_model = "claude-3-5-haiku"; /* a bare claude- name is Anthropic's */
    assert_true(sg_pricing_resolve(&d, &p));
    assert_true(fabs(p.input - 0.8e-6) < 1e-15);
    d.base_model = "anthropic/claude-3-5-haiku-20241022";
    assert_true(sg_pricing_resolve(&d, &p));
    assert_true(fabs(p.output - 4e-6) < 1e-15);
    d.base_model = "groq/gpt-4o"; /* another provider's list: not in the table */
    assert_false(sg_pricing_resolve(&d, &p));
    d.base_model = "azure/gpt-4o-turbo-ultra"; /* a model the table does not know */
    assert_false(sg_pricing_resolve(&d, &p));
    /* An Azure deployment named as its model is priced without one. */
    d = dep("azure", "gpt-4o", SG_PROVIDER_OPENAI);
    assert_true(sg_pricing_resolve(&d, &p));
    assert_true(fabs(p.input - 2.5e-6) < 1e-15);
    /* Whose list: one answer for pricing, check's warning and the wildcard listing. */
    assert_string_equal(sg_pricing_family("azure/gpt-4o", 5), "openai");
    assert_string_equal(sg_pricing_family("Anthropic", 9), "anthropic");
    assert_null(sg_pricing_family("groq", 4));
    assert_null(sg_pricing_family("azure_ai", 8));
    /* Configured prices still win over the base model's. */
    d.base_model = "gpt-4o-mini";
    d.input_cost_per_token = 1e-6;
    assert_true(sg_pricing_resolve(&d, &p));
    assert_true(fabs(p.input - 1e-6) < 1e-15 && fabs(p.output - 0.6e-6) < 1e-15);
}

static void test_encode_include_usage(void **state)
{
    (void)state;
    char *s = encode("{\"model\":\"a\",\"messages\":[{}],\"stream\":true}");
    assert_string_equal(s, "{\"stream_options\":{\"include_usage\":true},\"model\":\"gpt-4o-mini\","
                           "\"messages\":[{}],\"stream\":true}");
    free(s);
    s = encode("{\"stream_options\":{\"include_usage\":false,\"x\":1},\"model\":\"a\","
               "\"messages\":[{}],\"stream\":true}");
    assert_string_equal(s, "{\"stream_options\":{\"x\":1,\"include_usage\":true},\"model\":"
                           "\"gpt-4o-mini\",\"messages\":[{}],\"stream\":true}");
    free(s);
    s = encode("{\"model\":\"a\",\"messages\":[{}],\"stream\":true,\"stream_options\":null}");
    assert_string_equal(s, "{\"model\":\"gpt-4o-mini\",\"messages\":[{}],\"stream\":true,"
                           "\"stream_options\":{\"include_usage\":true}}");
    free(s);
    /* Not a stream: stream_options are refused, as OpenAI refuses them; null is no options. */
    struct sg_chat_request r;
    char err[300];
    const char *b =
        "{\"model\":\"a\",\"messages\":[{}],\"stream_options\":{\"include_usage\":false}}";
    assert_int_equal(sg_chat_request_parse(b, strlen(b), &r, err, sizeof err), SG_EINVAL);
    assert_string_equal(r.error_param, "stream_options");
    assert_non_null(strstr(err, "only allowed when 'stream' is enabled"));
    s = encode("{\"model\":\"a\",\"messages\":[{}],\"stream_options\":null}");
    assert_string_equal(s, "{\"model\":\"gpt-4o-mini\",\"messages\":[{}],\"stream_options\":null}");
    free(s);
}

static void test_embeddings_parse(void **state)
{
    (void)state;
    struct sg_chat_request r;
    char err[300];
    const char *b = "{\"model\":\"app/embed\",\"input\":[\"a\",\"b\"],\"user\":\"u\"}";
    assert_int_equal(sg_embeddings_request_parse(b, strlen(b), &r, err, sizeof err), SG_OK);
    assert_string_equal(r.model, "app/embed");
    assert_int_equal(r.api, SG_API_EMBEDDINGS);
    struct sg_deployment d = dep("openai", "text-embedding-3-small", SG_PROVIDER_OPENAI);
    struct sg_buf out;
    sg_buf_init(&out, 0);
    assert_int_equal(sg_openai_encode_chat(&r, &d, &out), SG_OK);
    assert_string_equal(out.data, "{\"model\":\"text-embedding-3-small\",\"input\":[\"a\",\"b\"],"
                                  "\"user\":\"u\"}");
    sg_buf_dispose(&out);
    assert_int_equal(sg_embeddings_request_parse("{\"model\":\"a\"}", 13, &r, err, sizeof err),
                     SG_EINVAL);
    assert_non_null(strstr(err, "input"));
    assert_int_equal(sg_embeddings_request_parse("{\"input\":\"a\"}", 13, &r, err, sizeof err),
                     SG_EINVAL);
    char *u = sg_openai_embeddings_url(&d);
    assert_string_equal(u, "http://x/v1/embeddings");
    free(u);
}

static int64_t est(const char *s)
{
    return sg_tokens_estimate_text(s, strlen(s));
}

static void test_tokens(void **state)
{
    (void)state;
    assert_int_equal(est(""), 0);
    assert_true(est("Hello") >= 1);
    /* "The quick brown fox jumps over the lazy dog." is 10 tokens in cl100k/o200k. */
    int64_t fox = est("The quick brown fox jumps over the lazy dog.");
    assert_true(fox >= 10 && fox <= 14);
    /* Longer text never estimates fewer tokens than a prefix of it. */
    assert_true(est("Hello world, hello world") >= est("Hello world"));
    /* Digits go in groups of three; CJK costs at least a token a character. */
    assert_true(est("1234567890") >= 4);
    assert_true(est("日本語のテキスト") >= 8);
    /* Invalid UTF-8 is counted, not a crash. */
    assert_true(est("\xff\xfe\x80") >= 3);

    const char *body = "{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":\"Be "
                       "brief.\"},{\"role\":\"user\",\"content\":\"Hello there\"}]}";
    int64_t n = sg_tokens_estimate_request(body, strlen(body));
    /* 2 messages x 4 framing + 3 priming + the two texts */
    assert_true(n >= 8 + 3 + est("Be brief.") + est("Hello there") - 1);
    assert_true(n <= 8 + 3 + est("Be brief.") + est("Hello there") + 1);
    /* An image costs a flat amount, whatever the size of its base64 text. */
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                       "\"image_url\",\"image_url\":{\"url\":\"data:image/png;base64,");
    for (int i = 0; i < 100000; i++)
        sg_buf_appends(&b, "QUFB");
    sg_buf_appends(&b, "\"}}]}]}");
    n = sg_tokens_estimate_request(b.data, b.len);
    assert_true(n >= 1600 && n < 1700);
    sg_buf_dispose(&b);
    /* Tools count with their schema; a Messages body's system prompt counts too. */
    const char *tools = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                        "\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
                        "\"parameters\":{\"type\":\"object\"}}}]}";
    const char *plain = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    assert_true(sg_tokens_estimate_request(tools, strlen(tools)) >
                sg_tokens_estimate_request(plain, strlen(plain)) + 10);
    /* So does a response_format's schema: the model reads it (at an Anthropic deployment, as
     * the forced tool's input_schema). */
    const char *schema = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],"
                         "\"response_format\":{\"type\":\"json_schema\",\"json_schema\":{"
                         "\"name\":\"weather\",\"schema\":{\"type\":\"object\",\"properties\":"
                         "{\"city\":{\"type\":\"string\"},\"celsius\":{\"type\":\"number\"}}}}}}";
    assert_true(sg_tokens_estimate_request(schema, strlen(schema)) >
                sg_tokens_estimate_request(plain, strlen(plain)) + 20);
    const char *sys = "{\"model\":\"m\",\"system\":\"A long system prompt here\",\"messages\":"
                      "[{\"role\":\"user\",\"content\":\"x\"}]}";
    assert_true(sg_tokens_estimate_request(sys, strlen(sys)) >
                sg_tokens_estimate_request(plain, strlen(plain)) + 5);
    assert_int_equal(sg_tokens_estimate_request("[1]", 3), -1);
    assert_int_equal(sg_tokens_estimate_request("{\"a\":", 5), -1);
}

static int64_t est_answer(const char *s)
{
    return sg_tokens_estimate_answer(s, strlen(s));
}

/* The output of a whole answer that came without usage: what the model wrote, by the text
 * estimator, in either API's shape; nothing else in the answer counts. */
static void test_estimate_answer(void **state)
{
    (void)state;
    const char *text = "The quick brown fox jumps over the lazy dog.";
    char b[2048];
    snprintf(
        b, sizeof b,
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":1,\"model\":"
        "\"qwen2.5-7b-instruct-a-very-long-model-name\",\"choices\":[{\"index\":0,"
        "\"message\":{\"role\":\"assistant\",\"content\":\"%s\"},\"finish_reason\":\"stop\"}]}",
        text);
    assert_int_equal(est_answer(b), est(text));
    /* Two choices, reasoning, a refusal: each counts. */
    snprintf(b, sizeof b,
             "{\"choices\":[{\"message\":{\"content\":\"%s\",\"reasoning_content\":\"Let me "
             "think\"}},{\"message\":{\"content\":null,\"refusal\":\"No\"}}]}",
             text);
    assert_int_equal(est_answer(b), est(text) + est("Let me think") + est("No"));
    /* Tool calls: names and arguments (the JSON text the model wrote). */
    const char *args = "{\\\"city\\\":\\\"Paris\\\",\\\"days\\\":3}";
    snprintf(b, sizeof b,
             "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":null,\"tool_calls\":"
             "[{\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"get_weather\","
             "\"arguments\":\"%s\"}},{\"id\":\"call_2\",\"type\":\"function\",\"function\":"
             "{\"name\":\"get_time\",\"arguments\":\"{}\"}}]},\"finish_reason\":\"tool_calls\"}]}",
             args);
    int64_t calls = est_answer(b);
    assert_int_equal(calls, est("get_weather") + est("{\"city\":\"Paris\",\"days\":3}") +
                                est("get_time") + est("{}"));
    assert_true(calls > 0);
    /* Content as parts: their text. */
    assert_int_equal(est_answer("{\"choices\":[{\"message\":{\"content\":[{\"type\":\"text\","
                                "\"text\":\"Hello world\"},{\"type\":\"image_url\"}]}}]}"),
                     est("Hello world"));
    /* A Messages answer: text, thinking and tool_use input. */
    snprintf(b, sizeof b,
             "{\"type\":\"message\",\"content\":[{\"type\":\"thinking\",\"thinking\":\"Hmm\"},"
             "{\"type\":\"text\",\"text\":\"%s\"},{\"type\":\"tool_use\",\"id\":\"t\",\"name\":"
             "\"f\",\"input\":{\"a\":1}}]}",
             text);
    assert_int_equal(est_answer(b), est("Hmm") + est(text) + est("f") + est("{\"a\":1}"));
    /* Nothing written, or no answer at all. */
    assert_int_equal(est_answer("{\"choices\":[]}"), 0);
    assert_int_equal(est_answer("{}"), 0);
    assert_int_equal(est_answer("[1]"), -1);
    assert_int_equal(est_answer("{\"choices\":"), -1);
    assert_int_equal(sg_tokens_estimate_answer("", 0), -1);
    assert_int_equal(est_answer("<html>502</html>"), -1);
    /* An embeddings body's input is counted by the request estimator too. */
    const char *emb = "{\"model\":\"e\",\"input\":[\"The quick brown fox jumps over the lazy "
                      "dog.\",\"Hello world\"]}";
    assert_true(sg_tokens_estimate_request(emb, strlen(emb)) >= est(text) + est("Hello world"));
}

static void classify(int status, const char *body, enum sg_error_class want, bool retry)
{
    struct sg_provider_error e;
    sg_provider_classify(status, body, strlen(body), &e);
    if (e.cls != want)
        fail_msg("%d %s: got %s, want %s", status, body, sg_error_class_name(e.cls),
                 sg_error_class_name(want));
    assert_int_equal(e.retryable, retry);
}

static void test_classify(void **state)
{
    (void)state;
    classify(401,
             "{\"error\":{\"message\":\"Incorrect API key provided\",\"type\":"
             "\"invalid_request_error\",\"code\":\"invalid_api_key\"}}",
             SG_ERRC_AUTH, true);
    classify(401,
             "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":"
             "\"invalid x-api-key\"}}",
             SG_ERRC_AUTH, true);
    classify(403, "", SG_ERRC_AUTH, true);
    classify(429,
             "{\"error\":{\"message\":\"Rate limit reached\",\"type\":\"requests\",\"code\":"
             "\"rate_limit_exceeded\"}}",
             SG_ERRC_RATE_LIMIT, true);
    classify(429,
             "{\"error\":{\"message\":\"You exceeded your current quota\",\"type\":"
             "\"insufficient_quota\",\"code\":\"insufficient_quota\"}}",
             SG_ERRC_AUTH, true);
    classify(400,
             "{\"error\":{\"message\":\"This model's maximum context length is 128000 "
             "tokens. However, your messages resulted in 130000 tokens.\",\"type\":"
             "\"invalid_request_error\",\"code\":\"context_length_exceeded\"}}",
             SG_ERRC_CONTEXT_WINDOW, false);
    classify(400,
             "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":"
             "\"prompt is too long: 210000 tokens > 200000 maximum\"}}",
             SG_ERRC_CONTEXT_WINDOW, false);
    classify(400,
             "{\"error\":{\"message\":\"Your request was rejected as a result of our safety "
             "system.\",\"type\":\"invalid_request_error\",\"code\":"
             "\"content_policy_violation\"}}",
             SG_ERRC_CONTENT_POLICY, false);
    classify(400, "{\"error\":{\"message\":\"'messages' is a required property\"}}",
             SG_ERRC_BAD_REQUEST, false);
    classify(422, "{\"detail\":\"bad\"}", SG_ERRC_BAD_REQUEST, false);
    classify(404,
             "{\"type\":\"error\",\"error\":{\"type\":\"not_found_error\",\"message\":"
             "\"model: claude-x\"}}",
             SG_ERRC_NOT_FOUND, false);
    classify(500, "{\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"x\"}}",
             SG_ERRC_SERVER, true);
    classify(529,
             "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":"
             "\"Overloaded\"}}",
             SG_ERRC_SERVER, true);
    classify(503, "<html>busy</html>", SG_ERRC_SERVER, true);
    classify(504, "", SG_ERRC_TIMEOUT, true);
    classify(408, "", SG_ERRC_TIMEOUT, true);
    classify(200, "{}", SG_ERRC_NONE, false);

    struct sg_provider_error e;
    const char *b = "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\",\"message\":"
                    "\"Number of request tokens has exceeded your per-minute rate limit\"}}";
    sg_provider_classify(429, b, strlen(b), &e);
    assert_string_equal(e.type, "rate_limit_error");
    assert_string_equal(e.message, "Number of request tokens has exceeded your per-minute rate "
                                   "limit");
    sg_provider_classify(502, "<html>Bad gateway</html>", 24, &e);
    assert_string_equal(e.message, "<html>Bad gateway</html>");

    int status;
    const char *type, *code;
    sg_error_class_openai(SG_ERRC_CONTEXT_WINDOW, &status, &type, &code);
    assert_int_equal(status, 400);
    assert_string_equal(code, "context_length_exceeded");
    sg_error_class_openai(SG_ERRC_AUTH, &status, &type, &code);
    assert_int_equal(status, 502); /* never the client's 401: the deployment's key is bad */

    struct sg_buf out;
    sg_buf_init(&out, 0);
    sg_anthropic_error_body(&out, 429, "slow \"down\"");
    assert_string_equal(out.data, "{\"type\":\"error\",\"error\":{\"type\":\"rate_limit_error\","
                                  "\"message\":\"slow \\\"down\\\"\"}}");
    sg_buf_reset(&out);
    sg_openai_error_body(&out, "invalid_request_error", NULL, "m");
    assert_string_equal(out.data,
                        "{\"error\":{\"message\":\"m\",\"type\":\"invalid_request_error\","
                        "\"param\":null,\"code\":null}}");
    sg_buf_dispose(&out);
}

/* A model id that only starts like a row is another model: o3-pro costs ten times o3, gpt-4-32k
 * twice gpt-4. Only dated snapshots and aliases of a row take its prices; anything else is
 * unpriced (slogate check warns) rather than billed at a cheaper model's price. */
static void test_lookup_variants_are_not_the_base_model(void **state)
{
    (void)state;
    static const char *const not_base[] = {
        "o3-pro",
        "o3-pro-2025-06-10",
        "o1-pro",
        "gpt-5-pro",
        "gpt-4-32k",
        "gpt-3.5-turbo-instruct",
        "gpt-4o-realtime-preview-2024-12-17",
        "o3-deep-research",
        "claude-opus-4-7",
        "claude-3-5-sonnet-v2",
    };
    for (size_t i = 0; i < sizeof not_base / sizeof not_base[0]; i++) {
        const char *prov = strncmp(not_base[i], "claude", 6) == 0 ? "anthropic" : "openai";
        const struct sg_price_entry *e = sg_pricing_lookup(prov, not_base[i]);
        if (e)
            fail_msg("%s priced as %s", not_base[i], e->model);
    }
    /* Snapshots and aliases still match. */
    static const char *const snap[][2] = {
        {"gpt-4-0613", "gpt-4"},
        {"gpt-3.5-turbo-0125", "gpt-3.5-turbo"},
        {"gpt-4-turbo-2024-04-09", "gpt-4-turbo"},
        {"gpt-4-turbo-preview", "gpt-4-turbo"},
        {"gpt-4.1-mini-2025-04-14", "gpt-4.1-mini"},
        {"o1-2024-12-17", "o1"},
        {"o3-mini-2025-01-31", "o3-mini"},
        {"gpt-5-2025-08-07", "gpt-5"},
        {"claude-3-7-sonnet-20250219", "claude-3-7-sonnet"},
        {"claude-3-5-sonnet-latest", "claude-3-5-sonnet"},
        {"claude-sonnet-4-5-20250929", "claude-sonnet-4-5"},
        {"claude-haiku-4-5", "claude-haiku-4-5"},
    };
    for (size_t i = 0; i < sizeof snap / sizeof snap[0]; i++) {
        const char *prov = strncmp(snap[i][0], "claude", 6) == 0 ? "anthropic" : "openai";
        const struct sg_price_entry *e = sg_pricing_lookup(prov, snap[i][0]);
        if (!e || strcmp(e->model, snap[i][1]) != 0)
            fail_msg("%s priced as %s, want %s", snap[i][0], e ? e->model : "nothing", snap[i][1]);
    }
}

/* Anthropic's error type for each status, as its API and SDK name them. */
static void test_anthropic_error_types(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *type;
    } want[] = {
        {400, "invalid_request_error"},
        {401, "authentication_error"},
        {402, "billing_error"},
        {403, "permission_error"},
        {404, "not_found_error"},
        {413, "request_too_large"},
        {429, "rate_limit_error"},
        {500, "api_error"},
        {502, "api_error"},
        {503, "overloaded_error"},
        {504, "timeout_error"},
        {529, "overloaded_error"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        struct sg_buf out;
        sg_buf_init(&out, 0);
        sg_anthropic_error_body(&out, want[i].status, "m");
        char exp[160];
        snprintf(exp, sizeof exp, "{\"type\":\"error\",\"error\":{\"type\":\"%s\",", want[i].type);
        if (strncmp(out.data, exp, strlen(exp)) != 0)
            fail_msg("status %d: %s, want type %s", want[i].status, out.data, want[i].type);
        sg_buf_dispose(&out);
    }
}

static void b64(struct sg_buf *out, const unsigned char *p, size_t n, bool escape_slash)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
                     (i + 2 < n ? p[i + 2] : 0);
        for (int k = 0; k < 4; k++) {
            char c = k <= (int)(n - i) ? a[(v >> (18 - 6 * k)) & 63] : '=';
            if (c == '/' && escape_slash)
                sg_buf_appends(out, "\\/"); /* json-c writes "/" so */
            else
                sg_buf_append(out, &c, 1);
        }
    }
}

/* `head` + base64 of `doc` + `tail`, estimated. */
static int64_t est_doc(const char *head, const void *doc, size_t n, const char *tail, bool esc)
{
    struct sg_buf b;
    sg_buf_init(&b, 0);
    sg_buf_appends(&b, head);
    b64(&b, doc, n, esc);
    sg_buf_appends(&b, tail);
    int64_t e = sg_tokens_estimate_request(b.data, b.len);
    sg_buf_dispose(&b);
    return e;
}

/* Documents: a base64 PDF costs 3,000 tokens a page (its page objects counted), not its base64
 * length; without visible page objects a page per 50 KB; a text document costs its text. */
static void test_estimate_documents(void **state)
{
    (void)state;
    static const char pdf[] = "%PDF-1.4\n1 0 obj << /Type /Catalog /Pages 2 0 R >> endobj\n"
                              "2 0 obj << /Type /Pages /Kids [3 0 R 4 0 R 5 0 R] /Count 3 >>\n"
                              "3 0 obj << /Type /Page /Parent 2 0 R >> endobj\n"
                              "4 0 obj <</Type/Page/Parent 2 0 R>> endobj\n"
                              "5 0 obj << /Type\n/Page>> endobj\n%%EOF\n";
    const char *plain = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[]}]}";
    int64_t base = sg_tokens_estimate_request(plain, strlen(plain));
    const char *oai = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                      "\"file\",\"file\":{\"filename\":\"a.pdf\",\"file_data\":\"data:"
                      "application/pdf;base64,";
    const char *oai_end = "\"}}]}]}";
    assert_int_equal(est_doc(oai, pdf, sizeof pdf - 1, oai_end, false), base + 3 * 3000);
    assert_int_equal(est_doc(oai, pdf, sizeof pdf - 1, oai_end, true), base + 3 * 3000);
    const char *ant = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                      "\"document\",\"source\":{\"type\":\"base64\",\"media_type\":"
                      "\"application/pdf\",\"data\":\"";
    const char *ant_end = "\"}}]}]}";
    assert_int_equal(est_doc(ant, pdf, sizeof pdf - 1, ant_end, false), base + 3 * 3000);
    /* data before type: the same */
    const char *ant2 = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                       "\"document\",\"source\":{\"data\":\"";
    const char *ant2_end = "\",\"type\":\"base64\",\"media_type\":\"application/pdf\"}}]}]}";
    assert_int_equal(est_doc(ant2, pdf, sizeof pdf - 1, ant2_end, false), base + 3 * 3000);
    /* 120 KB with no page object to see (compressed object streams): 1 + 120 KB / 50 KB. */
    size_t big_n = 120 * 1024;
    unsigned char *big = malloc(big_n);
    for (size_t i = 0; i < big_n; i++)
        big[i] = (unsigned char)(i * 131 + 7);
    memcpy(big, "%PDF-1.7\n", 9);
    assert_int_equal(est_doc(ant, big, big_n, ant_end, false), base + 3 * 3000);
    /* Not a PDF: an image or unknown bytes stay a flat 1,600. */
    big[0] = 'x';
    assert_int_equal(est_doc(ant, big, big_n, ant_end, false), base + 1600);
    free(big);
    /* A text document is its text; its title counts too. */
    const char *txt = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                      "\"document\",\"source\":{\"type\":\"text\",\"media_type\":\"text/plain\","
                      "\"data\":\"The grass is green. The sky is blue.\"},\"title\":\"Facts\"}]}]}";
    int64_t t = sg_tokens_estimate_request(txt, strlen(txt));
    int64_t words = sg_tokens_estimate_text("The grass is green. The sky is blue.", 36);
    assert_true(t >= base + words && t <= base + words + 4);
    /* A URL document cannot be seen: flat. */
    const char *url = "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":"
                      "\"document\",\"source\":{\"type\":\"url\",\"url\":\"https://x/a.pdf\"}}]}]}";
    assert_int_equal(sg_tokens_estimate_request(url, strlen(url)), base + 1600);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_resolve_and_cost),
        cmocka_unit_test(test_usage_parse),
        cmocka_unit_test(test_usage_huge_counts),
        cmocka_unit_test(test_stream_usage_chunk),
        cmocka_unit_test(test_base_model_prices_the_deployment),
        cmocka_unit_test(test_encode_include_usage),
        cmocka_unit_test(test_embeddings_parse),
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_estimate_answer),
        cmocka_unit_test(test_classify),
        cmocka_unit_test(test_lookup_variants_are_not_the_base_model),
        cmocka_unit_test(test_anthropic_error_types),
        cmocka_unit_test(test_estimate_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
