/*
 * Fuzz the chat request scanner differentially: the strict scanner and json-c (strict mode) must
 * agree on what is valid JSON, and on the model a request names — a disagreement would let a
 * request be routed and billed as one model and run as another. The splice encoder's output must
 * be valid JSON naming the provider model.
 */
#include "provider/provider.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char err[300];
    bool ours = sg_json_validate(s, size, err, sizeof err) == SG_OK;
    struct json_object *theirs = sg_json_parse_strict(s, size, err, sizeof err);
    /* json-c 0.16 strict still takes single-quoted strings and a few other liberties; we are
     * stricter, never looser. */
    if (ours && !theirs) {
        /* json-c represents a JSON null as a NULL object: the one legitimate disagreement. */
        size_t a = 0, b = size;
        while (a < b && strchr(" \t\r\n", s[a]))
            a++;
        while (b > a && strchr(" \t\r\n", s[b - 1]))
            b--;
        if (!(b - a == 4 && memcmp(s + a, "null", 4) == 0))
            abort();
    }
    struct sg_chat_request r;
    if (sg_chat_request_parse(s, size, &r, err, sizeof err) == SG_OK) {
        struct json_object *m;
        if (!theirs || !json_object_object_get_ex(theirs, "model", &m) ||
            strcmp(json_object_get_string(m), r.model) != 0)
            abort();
        struct sg_deployment d = {
            .id = "d", .provider_model = "prov-model", .api_base = "http://x"};
        struct sg_buf out;
        sg_buf_init(&out, 1 << 24);
        /* A body the parser took always encodes (the buffer's cap is far past any input), to
         * valid JSON with the provider's model, without the gateway's members (`cache`, and
         * `metadata` unless "store": true). */
        if (sg_openai_encode_chat(&r, &d, &out) != SG_OK)
            abort();
        struct json_object *enc = sg_json_parse_strict(out.data, out.len, err, sizeof err), *st;
        if (!enc || !json_object_object_get_ex(enc, "model", &m) ||
            strcmp(json_object_get_string(m), "prov-model") != 0 ||
            json_object_object_get_ex(enc, "cache", NULL) ||
            (json_object_object_get_ex(enc, "metadata", NULL) &&
             !(json_object_object_get_ex(enc, "store", &st) && json_object_get_boolean(st))))
            abort();
        json_object_put(enc);
        sg_buf_dispose(&out);
    }
    json_object_put(theirs);
    char msg[200];
    sg_provider_error_message(s, size, msg, sizeof msg);
    return 0;
}
