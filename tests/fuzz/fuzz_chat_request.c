/* Fuzz the chat request parser and the OpenAI encoder on whatever parses. */
#include "provider/provider.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sg_chat_request r;
    char err[300];
    if (sg_chat_request_parse((const char *)data, size, &r, err, sizeof err) != SG_OK)
        return 0;
    struct sg_deployment d = {.id = "d", .provider_model = "m", .api_base = "http://x"};
    struct sg_buf out;
    sg_buf_init(&out, 1 << 24);
    sg_openai_encode_chat(&r, &d, &out);
    sg_buf_dispose(&out);
    char msg[200];
    sg_provider_error_message((const char *)data, size, msg, sizeof msg);
    sg_chat_request_dispose(&r);
    return 0;
}
