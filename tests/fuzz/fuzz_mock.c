/*
 * Fuzz the mock provider's readers of client bytes (`slogate mock` answers whoever points at it):
 * sg_mock_json_parse, sg_mock_chat_parse for each API, and sg_mock_faults_merge (the body of
 * POST /_mock/faults). One input goes through all of them. Beyond no crash, leak or hang:
 *   json   - what is accepted, written back by json-c (as /_mock/last does), is accepted again;
 *   chat   - an accepted request has a model, at least one message, max_tokens -1 or >= 1
 *            (always >= 1 for Anthropic), at least 4 input tokens per message, a cache prefix
 *            no longer than the input (none for OpenAI); every answer rendered for it (the body
 *            and each stream event, cache hit or miss) is strict UTF-8 JSON naming that model
 *            and keeps the input tokens (a tool answer: its output tokens are one per event of
 *            each call), and with the no_usage fault an OpenAI body and its chunks carry no
 *            usage member and the stream still ends with [DONE]; a refused request owns
 *            nothing and has a message, and
 *            the error body the mock sends with it (message and param cut to the buffers
 *            mock.c uses) is strict UTF-8 JSON;
 *   faults - a refused merge leaves the faults as they were and its error body is strict UTF-8
 *            JSON; an accepted one leaves every field in range (a stream's pace gives delays
 *            that neither overflow nor go backwards), and the faults written out and merged
 *            back onto zeros are the same faults.
 */
#include "fuzz.h"
#include "mock/mock.h"

#include <json-c/json.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The sizes of mock.c's buffers for a client's error message and the offending field. */
#define ERRLEN 256
#define PARAMLEN 64

/* `p` is strict, UTF-8 valid JSON; returns it parsed (the caller puts it). */
static struct json_object *must_parse(const char *p, size_t n)
{
    char err[ERRLEN];
    struct json_object *o = sg_mock_json_parse(p, n, err, sizeof err);
    check(o != NULL);
    return o;
}

static void check_json(const char *s, size_t n)
{
    char err[ERRLEN];
    struct json_object *o = sg_mock_json_parse(s, n, err, sizeof err);
    if (!o) {
        check(err[0] != '\0');
        return;
    }
    size_t len;
    const char *w = json_object_to_json_string_length(o, JSON_C_TO_STRING_PLAIN, &len);
    json_object_put(must_parse(w, len));
    json_object_put(o);
}

static void check_model(struct json_object *o, const char *model)
{
    struct json_object *m = NULL;
    if (json_object_object_get_ex(o, "message", &m)) /* Anthropic's message_start */
        o = m;
    check(json_object_object_get_ex(o, "model", &m) &&
          strcmp(json_object_get_string(m), model) == 0);
}

/* The no_usage fault on an OpenAI answer: the body and every chunk are still JSON, none has a
 * usage member, and the stream still ends with [DONE]. */
static void check_no_usage(struct sg_mock_answer *a)
{
    a->no_usage = true;
    struct sg_buf b;
    sg_buf_init(&b, 0);
    check(sg_mock_render_body(&b, a) == 0);
    struct json_object *o = must_parse(b.data, b.len);
    check(!json_object_object_get_ex(o, "usage", NULL));
    json_object_put(o);
    sg_buf_reset(&b);
    struct sg_mock_stream_plan plan;
    sg_mock_stream_plan(a, &plan);
    size_t total = plan.n_head + plan.n_content + plan.n_tail;
    for (size_t i = 0; i < total; i++) {
        sg_buf_reset(&b);
        check(sg_mock_render_event(&b, a, i) == 0 && b.len > 8);
        const char *d = b.data + 6; /* "data: " */
        size_t dl = b.len - 8;
        if (i + 1 == total) {
            check(dl == 6 && memcmp(d, "[DONE]", 6) == 0);
        } else {
            o = must_parse(d, dl);
            check(!json_object_object_get_ex(o, "usage", NULL));
            json_object_put(o);
        }
    }
    sg_buf_dispose(&b);
    a->no_usage = false;
}

static void check_answer(const struct sg_mock_chat *c, uint32_t reply_tokens, bool hit)
{
    struct sg_mock_answer a;
    sg_mock_answer_init(&a, c, "mock", NULL, "chatcmpl-1", 1700000000, reply_tokens);
    sg_mock_answer_cache(&a, c->cache_prefix_tokens, hit);
    check(a.input_tokens + a.cache_read_tokens + a.cache_creation_tokens == c->input_tokens);
    if (c->n_calls) /* tool calls: one token per event of each call */
        check(c->n_calls <= SG_MOCK_MAX_TOOL_CALLS &&
              a.output_tokens ==
                  c->n_calls * (SG_MOCK_ARG_PIECES + (c->api == SG_MOCK_API_ANTHROPIC ? 2 : 1)));
    else
        check(a.output_tokens >= 1 && a.output_tokens <= reply_tokens);

    struct sg_buf b;
    sg_buf_init(&b, 0);
    check(sg_mock_render_body(&b, &a) == 0);
    struct json_object *o = must_parse(b.data, b.len);
    check_model(o, c->model);
    json_object_put(o);
    sg_buf_dispose(&b);

    struct sg_mock_stream_plan plan;
    sg_mock_stream_plan(&a, &plan);
    size_t total = plan.n_head + plan.n_content + plan.n_tail;
    for (size_t i = 0; i < total; i++) {
        sg_buf_init(&b, 0);
        check(sg_mock_render_event(&b, &a, i) == 0);
        /* "[event: X\n]data: JSON\n\n", one or more (the end of a thinking block and the start
         * of the text ride with the first text token) */
        const char *d = strstr(b.data, "data: ");
        check(d && b.len >= 2 && memcmp(b.data + b.len - 2, "\n\n", 2) == 0);
        for (; d; d = strstr(d, "data: ")) {
            d += 6;
            const char *e = strstr(d, "\n\n");
            check(e != NULL);
            size_t dl = (size_t)(e - d);
            if (!(dl == 6 && memcmp(d, "[DONE]", 6) == 0)) {
                o = must_parse(d, dl);
                if (i == 0)
                    check_model(o, c->model);
                json_object_put(o);
            }
            d = e;
        }
        sg_buf_dispose(&b);
    }
    sg_buf_init(&b, 0);
    check(sg_mock_render_event(&b, &a, total) == SG_EINVAL && b.len == 0);
    sg_buf_dispose(&b);
    if (c->api == SG_MOCK_API_OPENAI)
        check_no_usage(&a);
}

static void check_chat(enum sg_mock_api api, const char *s, size_t n, uint32_t reply_tokens,
                       bool hit)
{
    struct sg_mock_chat c;
    char err[ERRLEN], param[PARAMLEN];
    if (sg_mock_chat_parse(api, s, n, &c, err, sizeof err, param, sizeof param) != 0) {
        check(c.model == NULL && err[0] != '\0');
        struct sg_buf b;
        sg_buf_init(&b, 0);
        check(sg_mock_render_error(&b, api, 400, NULL, param, err) == 0);
        json_object_put(must_parse(b.data, b.len));
        sg_buf_dispose(&b);
        return;
    }
    check(c.api == api && c.model != NULL && c.n_messages >= 1);
    check(c.max_tokens == -1 || c.max_tokens >= 1);
    check(api == SG_MOCK_API_OPENAI || c.max_tokens >= 1);
    check(c.input_tokens >= 4 * (uint64_t)c.n_messages);
    check(c.cache_prefix_tokens <= c.input_tokens);
    check(api == SG_MOCK_API_ANTHROPIC || c.cache_prefix_tokens == 0);
    check(api == SG_MOCK_API_OPENAI || !c.include_usage);
    check_answer(&c, reply_tokens, hit);
    sg_mock_chat_dispose(&c);
}

static bool faults_equal(const struct sg_mock_faults *a, const struct sg_mock_faults *b)
{
    return a->latency_ms == b->latency_ms && a->ttft_ms == b->ttft_ms &&
           a->tokens_per_s == b->tokens_per_s && a->error_rate == b->error_rate &&
           (a->error_status ? a->error_status : 500) == (b->error_status ? b->error_status : 500) &&
           a->status == b->status && a->retry_after_s == b->retry_after_s && a->hang == b->hang &&
           a->reset == b->reset && a->malformed == b->malformed && a->no_usage == b->no_usage;
}

static void check_faults(const char *s, size_t n)
{
    const struct sg_mock_faults start = {.latency_ms = 5,
                                         .ttft_ms = 7,
                                         .tokens_per_s = 3.5,
                                         .error_rate = 0.25,
                                         .error_status = 503,
                                         .retry_after_s = 2,
                                         .reset = SG_MOCK_RESET_MID,
                                         .malformed = SG_MOCK_MALFORMED_HTML};
    struct sg_mock_faults f = start;
    char err[ERRLEN];
    if (sg_mock_faults_merge(&f, s, n, err, sizeof err) != 0) {
        check(memcmp(&f, &start, sizeof f) == 0 && err[0] != '\0');
        struct sg_buf b;
        sg_buf_init(&b, 0);
        check(sg_mock_render_error(&b, SG_MOCK_API_OPENAI, 400, NULL, NULL, err) == 0);
        json_object_put(must_parse(b.data, b.len));
        sg_buf_dispose(&b);
        return;
    }
    check(f.latency_ms <= 3600000 && f.ttft_ms <= 3600000 &&
          f.retry_after_s <= SG_MOCK_RETRY_AFTER_MAX);
    check(sg_mock_tps_valid(f.tokens_per_s) && !signbit(f.tokens_per_s));
    /* Any accepted pace is paced without overflow (UBSan's float-cast-overflow watches the
     * conversion), token after token, for the longest answer the CLI allows. */
    uint64_t last = sg_mock_token_offset_ms(f.tokens_per_s, 100000);
    check(last <= SG_MOCK_OFFSET_MAX_MS);
    check(f.tokens_per_s == 0 ? last == 0 : last >= sg_mock_token_offset_ms(f.tokens_per_s, 1));
    check(f.error_rate >= 0 && f.error_rate <= 1);
    check(f.error_status == 0 || sg_mock_status_valid(f.error_status));
    check(f.status == 0 || sg_mock_status_valid(f.status));
    check(f.reset == SG_MOCK_RESET_NONE || f.reset == SG_MOCK_RESET_BEFORE ||
          f.reset == SG_MOCK_RESET_MID);
    check(f.malformed >= SG_MOCK_MALFORMED_NONE && f.malformed <= SG_MOCK_MALFORMED_CUT);
    struct sg_buf b;
    sg_buf_init(&b, 0);
    check(sg_mock_faults_to_json(&b, &f) == 0);
    struct sg_mock_faults back = {0};
    check(sg_mock_faults_merge(&back, b.data, b.len, err, sizeof err) == 0);
    check(faults_equal(&f, &back));
    sg_buf_dispose(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    uint32_t reply_tokens = 1 + (uint32_t)(size % 40);
    check_json(s, size);
    check_chat(SG_MOCK_API_OPENAI, s, size, reply_tokens, size & 1);
    check_chat(SG_MOCK_API_ANTHROPIC, s, size, reply_tokens, size & 2);
    check_faults(s, size);
    return 0;
}
