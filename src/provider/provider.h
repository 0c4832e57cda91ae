/*
 * provider — adapters as pure functions over buffers: parse a client's chat request, encode it
 * for a deployment's wire format, classify answers. No I/O here, so everything is unit-tested
 * and fuzzed without sockets.
 */
#ifndef SG_PROVIDER_H
#define SG_PROVIDER_H

#include "base/base.h"
#include "config/config.h"

struct json_object;

/* JSON nesting allowed in request bodies: json-c's default (32) is too small for tool schemas,
 * a very large one lets a hostile body exhaust the stack. */
#define SG_JSON_MAX_DEPTH 96

/* The parts of a chat.completions request the gateway needs before routing. */
struct sg_chat_request {
    struct json_object *root; /* the parsed body, owned */
    struct sg_slice model;    /* the alias the client asked for (points into root) */
    bool stream;
    bool include_usage;       /* stream_options.include_usage, as the client asked */
    struct sg_slice user;     /* "user", may be empty */
    struct sg_slice feature;  /* metadata.feature, may be empty */
};

/* Parse and validate a body strictly (UTF-8, no duplicate-key ambiguity beyond json-c's
 * last-wins, no trailing bytes, no NaN, bounded depth). On failure returns SG_EINVAL and writes
 * an error for the client into `err` (OpenAI's wording where OpenAI has one). */
int sg_chat_request_parse(const char *body, size_t len, struct sg_chat_request *out, char *err,
                          size_t err_len);
void sg_chat_request_dispose(struct sg_chat_request *r);

/* Parse any JSON value strictly, as above; NULL on failure with a message in `err`. */
struct json_object *sg_json_parse_strict(const char *body, size_t len, char *err, size_t err_len);

/* The body sent to an OpenAI-compatible deployment: the client's request with `model` replaced
 * by the deployment's provider model id. Appends to `out`. */
int sg_openai_encode_chat(const struct sg_chat_request *r, const struct sg_deployment *d,
                          struct sg_buf *out);

/* The URL of a deployment's chat endpoint: api_base + "/chat/completions". Heap string. */
char *sg_openai_chat_url(const struct sg_deployment *d);

/* Pull the error message out of a provider's error body ({"error":{"message":...}} or
 * Anthropic's {"type":"error","error":{...}}); falls back to the first bytes of the body.
 * Writes a NUL-terminated string into `out`. */
void sg_provider_error_message(const char *body, size_t len, char *out, size_t out_len);

#endif
