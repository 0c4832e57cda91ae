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

/* One member of a JSON object: its name as written (escapes not decoded; `name_escaped` says
 * whether it has any) and its value's raw JSON text. Both point into the scanned bytes. */
struct sg_json_member {
    struct sg_slice name;
    struct sg_slice value;
    bool name_escaped;
};

/* Validate JSON strictly (RFC 8259, UTF-8, depth SG_JSON_MAX_DEPTH, nothing after the value).
 * SG_EINVAL with a message saying what and where otherwise. */
int sg_json_validate(const char *p, size_t n, char *err, size_t err_len);
/* Validate an object and list its members in order (at most `max`; more is an error). */
int sg_json_members(const char *p, size_t n, struct sg_json_member *out, size_t max,
                    size_t *count, char *err, size_t err_len);
/* Decode a validated string's inside; false when it does not fit `cap` or holds a NUL. */
bool sg_json_unescape(struct sg_slice raw, char *out, size_t cap, size_t *len);

#define SG_CHAT_MAX_MEMBERS 128
#define SG_CHAT_MAX_MODEL 256

/* The parts of a chat.completions request the gateway needs before routing. Found by scanning
 * the client's bytes, which stay borrowed (the HTTP request owns them) — no tree is built. */
struct sg_chat_request {
    const char *body;
    size_t body_len;
    char model[SG_CHAT_MAX_MODEL]; /* the alias asked for, decoded */
    size_t model_len;
    bool stream;
    bool include_usage;            /* stream_options.include_usage, as the client asked */
    char user[128];                /* "user", decoded, may be empty */
    char feature[128];             /* metadata.feature, decoded, may be empty */
    /* Every top-level "model" value (json-c and the providers take the last of duplicates; the
     * encoder replaces them all, so what is billed is what runs). */
    struct sg_slice model_values[8];
    size_t n_model_values;
};

/* Parse and validate a body strictly. On failure returns SG_EINVAL and writes an error for the
 * client into `err` (OpenAI's wording where OpenAI has one). `body` must outlive `out`. */
int sg_chat_request_parse(const char *body, size_t len, struct sg_chat_request *out, char *err,
                          size_t err_len);

/* Parse any JSON value strictly, as above; NULL on failure with a message in `err`. */
struct json_object *sg_json_parse_strict(const char *body, size_t len, char *err, size_t err_len);

/* The body sent to an OpenAI-compatible deployment: the client's bytes with every top-level
 * `model` value replaced by the deployment's provider model id. Appends to `out`. */
int sg_openai_encode_chat(const struct sg_chat_request *r, const struct sg_deployment *d,
                          struct sg_buf *out);

/* The URL of a deployment's chat endpoint: api_base + "/chat/completions". Heap string. */
char *sg_openai_chat_url(const struct sg_deployment *d);

/* Pull the error message out of a provider's error body ({"error":{"message":...}} or
 * Anthropic's {"type":"error","error":{...}}); falls back to the first bytes of the body.
 * Writes a NUL-terminated string into `out`. */
void sg_provider_error_message(const char *body, size_t len, char *out, size_t out_len);

#endif
