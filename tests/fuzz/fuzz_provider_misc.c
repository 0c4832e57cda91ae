/*
 * Fuzz the small readers on the gateway's path: the input-token estimator (request and text),
 * error classification, usage extraction (OpenAI and Anthropic answers) and the OpenAI stream
 * usage watcher. They see provider and client bytes as they come; none may crash, loop or return
 * nonsense: counts are never negative, the cached parts never exceed the input they belong to,
 * and a body without usage leaves the caller's struct as it was. A chunk that is JSON stays JSON
 * once the watcher's cut (its usage member) is taken out, and so does an answer given usage.
 */
#include "provider/provider.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    if (sg_tokens_estimate_text(s, size) < 0)
        abort();
    char err[8];
    if (sg_json_validate(s, size, err, sizeof err) == SG_OK &&
        sg_tokens_estimate_request(s, size) < -1)
        abort();
    struct sg_provider_error e;
    sg_provider_classify(size ? 400 + data[0] % 200 : 500, s, size, &e);
    struct sg_usage u = {0};
    sg_openai_usage_parse(s, size, &u);
    if (u.input_tokens < 0 || u.output_tokens < 0 || u.cache_read_tokens > u.input_tokens)
        abort();
    struct sg_usage a = {.input_tokens = 7, .output_tokens = 7, .known = false};
    if (sg_anthropic_usage_parse(s, size, &a) == SG_OK) {
        if (!a.known || a.input_tokens < 0 || a.output_tokens < 0 || a.cache_read_tokens < 0 ||
            a.cache_creation_tokens < 0 || a.cache_read_tokens > a.input_tokens ||
            a.cache_creation_tokens > a.input_tokens - a.cache_read_tokens)
            abort();
    } else if (a.input_tokens != 7 || a.output_tokens != 7 || a.known) {
        abort();
    }
    struct sg_openai_stream st = {.client_wants_usage = size & 1};
    bool fwd;
    sg_openai_stream_event(&st, (struct sg_slice){s, size}, &fwd);
    bool json = sg_json_validate(s, size, err, sizeof err) == SG_OK;
    if (st.hide.n) {
        if (st.client_wants_usage || st.hide.p < s || st.hide.p + st.hide.n > s + size)
            abort();
        char *left = malloc(size);
        size_t head = (size_t)(st.hide.p - s);
        memcpy(left, s, head);
        memcpy(left + head, st.hide.p + st.hide.n, size - head - st.hide.n);
        if (json && sg_json_validate(left, size - st.hide.n, err, sizeof err) != SG_OK)
            abort();
        free(left);
    }
    struct sg_buf ans;
    sg_buf_init(&ans, 0);
    struct sg_usage est = {.input_tokens = 3, .output_tokens = 4, .estimated = true};
    if (sg_answer_set_usage((enum sg_api)(size % 3), (struct sg_slice){s, size}, &est, &ans) ==
            SG_OK &&
        (!json || sg_json_validate(ans.data, ans.len, err, sizeof err) != SG_OK))
        abort();
    sg_buf_dispose(&ans);
    struct sg_chat_request r;
    char e2[300];
    if (sg_embeddings_request_parse(s, size, &r, e2, sizeof e2) == SG_OK && r.model_len == 0)
        abort();
    return 0;
}
