/*
 * Fuzz the Messages-client adapter: one input as a /v1/messages request (parsed, encoded for an
 * OpenAI-compatible deployment and for Anthropic with prompt caching), as a chat.completion
 * answer to turn into a Messages answer, and as a stream of chunks to turn into Messages
 * events. Every JSON it produces must parse.
 */
#include "http/http.h"
#include "provider/provider.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void must_be_json(const char *p, size_t n)
{
    char err[200];
    struct json_object *o = sg_json_parse_strict(p, n, err, sizeof err);
    if (!o)
        abort();
    json_object_put(o);
}

struct ctx {
    struct sg_messages_stream s;
    struct sg_buf out;
};

static void on_event(void *ud, struct sg_slice raw, struct sg_slice event, struct sg_slice d)
{
    (void)raw;
    (void)event;
    struct ctx *c = ud;
    sg_messages_stream_chunk(&c->s, d, &c->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char err[300];
    struct sg_buf out;
    struct sg_chat_request r;
    if (sg_messages_request_parse(s, size, &r, err, sizeof err) == SG_OK) {
        struct sg_deployment oai = {.id = "o",
                                    .provider = "openai",
                                    .provider_model = "gpt",
                                    .api_base = "http://x",
                                    .kind = SG_PROVIDER_OPENAI};
        struct sg_deployment ant = {.id = "a",
                                    .provider = "anthropic",
                                    .provider_model = "claude",
                                    .api_base = "http://x",
                                    .kind = SG_PROVIDER_ANTHROPIC};
        sg_buf_init(&out, 1 << 24);
        if (sg_messages_encode_openai(&r, &oai, &out, err, sizeof err) == SG_OK)
            must_be_json(out.data, out.len);
        sg_buf_reset(&out);
        struct sg_anthropic_opts o = {.prompt_caching = true};
        if (sg_messages_encode_anthropic(&r, &ant, &o, &out, err, sizeof err) == SG_OK)
            must_be_json(out.data, out.len);
        sg_buf_dispose(&out);
    }
    struct sg_usage u;
    sg_buf_init(&out, 1 << 24);
    if (sg_messages_decode_openai(s, size, &out, &u) == SG_OK)
        must_be_json(out.data, out.len);
    sg_buf_dispose(&out);

    struct ctx c;
    sg_messages_stream_init(&c.s);
    sg_buf_init(&c.out, 1 << 24);
    struct sg_sse_parser p;
    sg_sse_parser_init(&p, 1 << 20, on_event, &c);
    size_t split = size ? data[0] % (size + 1) : 0;
    if (sg_sse_parser_feed(&p, s, split) == SG_OK)
        sg_sse_parser_feed(&p, s + split, size - split);
    sg_sse_parser_dispose(&p);
    sg_messages_stream_finish(&c.s, &c.out);
    for (const char *q = c.out.data; q && (q = strstr(q, "data: ")) != NULL;) {
        q += 6;
        const char *e = strstr(q, "\n\n");
        if (!e)
            abort();
        must_be_json(q, (size_t)(e - q));
        q = e;
    }
    sg_buf_dispose(&c.out);
    return 0;
}
