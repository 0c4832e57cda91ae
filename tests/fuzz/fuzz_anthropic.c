/*
 * Fuzz the Anthropic adapter's decoders with one input three ways: as a Messages answer, as a
 * Messages event stream (through the SSE splitter, chunks translated one event at a time), and
 * as a chat.completions request to encode. Whatever comes in, what goes out must be valid JSON:
 * a translated chunk the client cannot parse is as bad as a crash.
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

/* Every "data: " line of translated output is JSON or [DONE]. */
static void check_chunks(const struct sg_buf *b)
{
    for (const char *p = b->data; p && (p = strstr(p, "data: ")) != NULL;) {
        p += 6;
        const char *e = strstr(p, "\n\n");
        if (!e)
            abort();
        if (!(e - p == 6 && memcmp(p, "[DONE]", 6) == 0))
            must_be_json(p, (size_t)(e - p));
        p = e;
    }
}

struct ctx {
    struct sg_anthropic_stream s;
    struct sg_buf out;
};

static void on_event(void *ud, struct sg_slice raw, struct sg_slice event, struct sg_slice d)
{
    (void)raw;
    struct ctx *c = ud;
    sg_anthropic_stream_event(&c->s, event, d, &c->out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    struct sg_buf out;
    struct sg_usage u;
    sg_buf_init(&out, 1 << 24);
    if (sg_anthropic_decode_response(s, size, 1, &out, &u) == SG_OK) {
        must_be_json(out.data, out.len);
        if (u.input_tokens < 0 || u.output_tokens < 0 || u.cache_read_tokens < 0)
            abort();
    }
    sg_buf_dispose(&out);

    struct ctx c;
    sg_anthropic_stream_init(&c.s, size & 1, 1);
    sg_buf_init(&c.out, 1 << 24);
    struct sg_sse_parser p;
    sg_sse_parser_init(&p, 1 << 20, on_event, &c);
    size_t split = size ? data[0] % (size + 1) : 0;
    if (sg_sse_parser_feed(&p, s, split) == SG_OK)
        sg_sse_parser_feed(&p, s + split, size - split);
    sg_sse_parser_dispose(&p);
    check_chunks(&c.out);
    sg_buf_dispose(&c.out);

    struct sg_chat_request r;
    char err[300];
    if (sg_chat_request_parse(s, size, &r, err, sizeof err) == SG_OK) {
        struct sg_deployment d = {.id = "d",
                                  .provider = "anthropic",
                                  .provider_model = "claude-3-5-haiku",
                                  .api_base = "http://x",
                                  .kind = SG_PROVIDER_ANTHROPIC};
        struct sg_anthropic_opts o = {.prompt_caching = size & 2};
        sg_buf_init(&out, 1 << 24);
        if (sg_anthropic_encode_chat(&r, &d, &o, &out, err, sizeof err) == SG_OK)
            must_be_json(out.data, out.len);
        sg_buf_dispose(&out);
    }
    return 0;
}
