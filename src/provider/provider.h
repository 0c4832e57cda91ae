/*
 * provider — adapters as pure functions over buffers: parse a client's request, encode it for a
 * deployment's wire format (OpenAI chat.completions or Anthropic Messages, both ways), decode
 * answers and stream events, read usage, price it, estimate input tokens, classify errors.
 * No I/O here, so everything is unit-tested and fuzzed without sockets.
 *
 * Files: jscan.c (strict scanner), openai.c (chat.completions: parse, splice, usage, streams,
 * embeddings), anthropic.c (chat.completions -> Messages and back), messages.c (Messages
 * clients -> chat.completions and back), pricing.c, tokens.c, errors.c (classification).
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
int sg_json_members(const char *p, size_t n, struct sg_json_member *out, size_t max, size_t *count,
                    char *err, size_t err_len);
/* Decode a validated string's inside; false when it does not fit `cap` or holds a NUL (`out`
 * then holds the part before, NUL-terminated, `*len` its length). */
bool sg_json_unescape(struct sg_slice raw, char *out, size_t cap, size_t *len);

#define SG_CHAT_MAX_MEMBERS 128
#define SG_CHAT_MAX_MODEL 256

/* The parts of a chat.completions request the gateway needs before routing. Found by scanning
 * the client's bytes, which stay borrowed (the HTTP request owns them) — no tree is built. */
/* Which API a client spoke. */
enum sg_api {
    SG_API_CHAT,       /* POST /v1/chat/completions */
    SG_API_MESSAGES,   /* POST /v1/messages (Anthropic clients) */
    SG_API_EMBEDDINGS, /* POST /v1/embeddings */
};

struct sg_chat_request {
    enum sg_api api;
    const char *body;
    size_t body_len;
    char model[SG_CHAT_MAX_MODEL]; /* the alias asked for, decoded */
    size_t model_len;
    bool stream;
    bool include_usage;      /* stream_options.include_usage, as the client asked */
    const char *error_param; /* a refused body: the field the error names (OpenAI's "param"),
                              * or NULL */
    const char *error_code;  /* ... and OpenAI's "code" for it, or NULL */
    char user[128];          /* "user", decoded, may be empty */
    char feature[128];       /* metadata.feature, decoded, may be empty */
    bool metadata_extra;     /* Messages: `metadata` has members besides user_id (the gateway's
                              * feature), which Anthropic refuses: not sent there */
    /* Every top-level "model" value (json-c and the providers take the last of duplicates; the
     * encoder replaces them all, so what is billed is what runs). */
    struct sg_slice model_values[8];
    size_t n_model_values;
    /* Every top-level "stream_options" value: a stream to an OpenAI-compatible deployment always
     * asks for usage, so the encoder rewrites these. */
    struct sg_slice stream_options_values[4];
    size_t n_stream_options_values;
    /* Top-level members that are the gateway's, not the provider's, each from its name's opening
     * quote to its value's end: the OpenAI encoder leaves them out. `metadata` without
     * `"store": true` (OpenAI refuses it then; the gateway reads metadata.feature) and LiteLLM's
     * per-request `cache` controls. */
    struct sg_slice gateway_members[4];
    size_t n_gateway_members;
};

/* Parse and validate a body strictly. On failure returns SG_EINVAL and writes an error for the
 * client into `err` (OpenAI's wording where OpenAI has one). `body` must outlive `out`. */
int sg_chat_request_parse(const char *body, size_t len, struct sg_chat_request *out, char *err,
                          size_t err_len);

/* Parse any JSON value strictly, as above; NULL on failure with a message in `err`. */
struct json_object *sg_json_parse_strict(const char *body, size_t len, char *err, size_t err_len);
/* The same with nesting bounded at `depth` (<= SG_JSON_MAX_DEPTH) instead (the mock's 64). */
struct json_object *sg_json_parse_depth(const char *body, size_t len, int depth, char *err,
                                        size_t err_len);

/* The body sent to an OpenAI-compatible deployment: the client's bytes with every top-level
 * `model` value replaced by the deployment's provider model id, the gateway's own members
 * (`gateway_members`) left out, and — for a stream — `stream_options.include_usage` set to true
 * (added or rewritten), so the gateway always learns the usage; the client gets the usage chunk
 * only if it asked (sg_openai_stream_event). Appends to `out`. */
int sg_openai_encode_chat(const struct sg_chat_request *r, const struct sg_deployment *d,
                          struct sg_buf *out);

/* The URL of a deployment's chat endpoint: api_base + "/chat/completions". Heap string. */
char *sg_openai_chat_url(const struct sg_deployment *d);

/* Pull the error message out of a provider's error body ({"error":{"message":...}} or
 * Anthropic's {"type":"error","error":{...}}); falls back to the first bytes of the body.
 * Writes a NUL-terminated string into `out`. */
void sg_provider_error_message(const char *body, size_t len, char *out, size_t out_len);

/* ---- usage, prices and cost (pricing.c) ---- */

/* Token counts as a provider reported them, normalised: `input_tokens` counts every prompt token,
 * cached ones included (OpenAI's prompt_tokens; for Anthropic input + cache read + cache
 * creation), and the two cache fields say which part of it was read from / written to the
 * provider's prompt cache. Each count read is clamped to [0, SG_USAGE_MAX_TOKENS], so the sums
 * made of them (input + output, Anthropic's three input parts) cannot overflow whatever a
 * provider writes. */
#define SG_USAGE_MAX_TOKENS (INT64_C(1) << 40) /* about 10^12: no request comes near */
struct sg_usage {
    int64_t input_tokens;
    int64_t output_tokens;
    int64_t cache_read_tokens;
    int64_t cache_creation_tokens;
    bool known;     /* the provider reported usage */
    bool estimated; /* it did not: the counts are the gateway's estimate (docs/pricing.md) */
};

/* USD per token. */
struct sg_price {
    double input, output;
    double cache_read;  /* cached input read */
    double cache_write; /* input written to the cache (Anthropic: 1.25 x input) */
};

/* One row of the built-in table; prices in USD per million tokens as the providers publish
 * them. `model` matches the model id exactly or followed by a snapshot suffix (a date,
 * "-latest", "-preview"); the longest match wins. Other suffixes are other models. */
struct sg_price_entry {
    const char *provider; /* "openai" | "anthropic" */
    const char *model;
    double input, output, cache_read, cache_write;
    int64_t max_output; /* Anthropic: the default max_tokens we send; 0 for OpenAI rows */
};

/* The date the built-in prices were transcribed (docs/pricing.md names the sources). */
#define SG_PRICING_TABLE_DATE "2025-11-30"

/* The built-in table (for docs and tests). */
const struct sg_price_entry *sg_pricing_table(size_t *n);
/* Whose built-in prices a provider's models have: "openai" (Azure OpenAI lists the same),
 * "anthropic", or NULL (other providers set their own). `provider` need not end at n. */
const char *sg_pricing_family(const char *provider, size_t n);
/* The built-in row for a provider ("openai", "anthropic") and model id, or NULL. */
const struct sg_price_entry *sg_pricing_lookup(const char *provider, const char *model);
/* A deployment's prices: litellm_params/model_info costs win over the table (cache prices then
 * follow the table's ratios, or Anthropic's published multipliers). False when neither knows
 * the model: the request costs 0 and is counted as unpriced. */
bool sg_pricing_resolve(const struct sg_deployment *d, struct sg_price *out);
/* Cost in USD of `u` at `p`: uncached input, cache reads, cache writes and output each at
 * their own price. */
double sg_pricing_cost(const struct sg_price *p, const struct sg_usage *u);

/* ---- media in content parts (media.c) ---- */

/* A base64 data URL, "data:<media type>[;params];base64,<data>": its media type (without the
 * params) and its data, as views into `url`. False when `url` is not one. */
bool sg_data_url(const char *url, size_t n, struct sg_slice *media_type, struct sg_slice *data);
/* Append the bytes of base64 text `in` (standard alphabet; padding and line breaks allowed) to
 * `out`. SG_EINVAL on any other character, SG_ETOOBIG when `out` is full. */
int sg_base64_decode(const char *in, size_t n, struct sg_buf *out);

/* A PDF is charged per page when its page objects can be seen, else one page per this many
 * bytes (page objects packed in compressed object streams). */
#define SG_PDF_BYTES_PER_PAGE 51200
/* base64 decoded one character at a time, keeping only what a document's estimate needs: the
 * decoded length, its first bytes, and the PDF page objects seen (`/Type /Page`). */
struct sg_b64 {
    uint32_t acc;
    int bits;
    bool padded, bad; /* bad: a character outside base64, the rest is ignored */
    int pdf_state;    /* how much of "/Type /Page" the last bytes matched */
    int64_t bytes;    /* decoded so far */
    int64_t pdf_pages;
    unsigned char head[8];
};
void sg_b64_init(struct sg_b64 *d);
/* One code point of the base64 text. */
void sg_b64_feed(struct sg_b64 *d, uint32_t c);
/* The decoded bytes start as a PDF does ("%PDF-"). */
bool sg_b64_is_pdf(const struct sg_b64 *d);
/* The pages of a PDF: the page objects seen, or by size when none was (at least 1). */
int64_t sg_b64_pdf_pages(const struct sg_b64 *d);

/* ---- input token estimate before the call (tokens.c) ---- */

/* A conservative token count for a piece of UTF-8 text: it aims to over-estimate the
 * providers' tokenizers (docs/pricing.md has the method and the measured error). */
int64_t sg_tokens_estimate_text(const char *s, size_t n);
/* Input tokens of a chat.completions or Messages body: messages, system prompt, tool
 * definitions, images, plus the per-message framing; of an embeddings body, the text of its
 * input (and the same 3 of framing). -1 when the body is not a JSON object. */
int64_t sg_tokens_estimate_request(const char *body, size_t len);
/* Output tokens of a whole answer that came without usage, by sg_tokens_estimate_text over
 * what the model wrote: a chat.completion's choices[].message content (text, or its text
 * parts), reasoning_content, refusal and tool calls' names and arguments (legacy
 * function_call too); a Messages answer's text, thinking and tool_use name and input. Parses
 * the body with json-c: for the rare answer without usage, never on the hot path. -1 when the
 * body is not a JSON object. */
int64_t sg_tokens_estimate_answer(const char *body, size_t len);

/* ---- OpenAI-compatible answers (openai.c) ---- */

/* Read the top-level "usage" of a chat.completion, a chunk or an embeddings answer. Returns 0
 * and sets u->known when there is one; SG_ENOTFOUND when there is none or it is null; SG_EINVAL
 * when the body is not a JSON object at all. */
int sg_openai_usage_parse(const char *body, size_t len, struct sg_usage *u);

/* Relaying an OpenAI-compatible stream: watches for the usage chunk. */
struct sg_openai_stream {
    bool client_wants_usage; /* the client's own stream_options.include_usage */
    bool done;               /* "[DONE]" seen */
    bool failed;             /* an error event came ({"error":...}): `error` holds its message */
    char error[256];
    int64_t chunks; /* events before "[DONE]": the output-token estimate of a stream
                     * that brings no usage (about one token a chunk, docs/pricing.md) */
    struct sg_usage usage;
    struct sg_slice hide; /* of the last event's data, what the client must not see: its
                           * top-level usage member and the comma joining it (n = 0: nothing) */
    /* The first chunk's id and model (raw JSON strings, "" when absent or longer) and created
     * (0: none), kept for a client that asked for usage: the usage chunk the gateway writes
     * when the provider sends none (sg_openai_usage_chunk). */
    char id[128];
    char model[SG_CHAT_MAX_MODEL + 8];
    int64_t created;
};
/* Look at one event's data. *forward is false for the usage chunk (choices: [] with usage)
 * when the client did not ask for it; for such a client `hide` is the usage member of any
 * other chunk ("usage":null on every chunk, as the gateway always asks for usage): OpenAI
 * sends it only to clients that set include_usage. Never fails: a chunk it cannot read is
 * forwarded. No allocation; a chunk in OpenAI's layout ("usage" last) is not scanned. */
void sg_openai_stream_event(struct sg_openai_stream *s, struct sg_slice data, bool *forward);
/* sg_openai_stream_event, then what the client gets of the event `raw` (whose data is `data`):
 * `raw`, nothing (n = 0), or `raw` without `hide`, written into `scratch` (reset first). A data
 * value split over several data lines is relayed as it came. */
struct sg_slice sg_openai_stream_relay(struct sg_openai_stream *s, struct sg_slice raw,
                                       struct sg_slice data, struct sg_buf *scratch);
/* Append the final usage chunk ("data: {...,\"choices\":[],\"usage\":{...}}\n\n") for `u`,
 * with the id, model and created the stream's first chunk had. */
int sg_openai_usage_chunk(const struct sg_openai_stream *s, const struct sg_usage *u,
                          struct sg_buf *out);
/* Append `answer` (a whole answer in the `api`'s format, a JSON object) with its top-level usage
 * set to `u` in that format, replacing any usage it had. SG_EINVAL (nothing appended) when it is
 * not a JSON object. */
int sg_answer_set_usage(enum sg_api api, struct sg_slice answer, const struct sg_usage *u,
                        struct sg_buf *out);

/* POST /v1/embeddings: the model (and model_values, for the splice encoder) of a body. */
int sg_embeddings_request_parse(const char *body, size_t len, struct sg_chat_request *out,
                                char *err, size_t err_len);
/* api_base + "/embeddings". Heap string. */
char *sg_openai_embeddings_url(const struct sg_deployment *d);

/* ---- Anthropic Messages (anthropic.c): chat.completions -> Messages and back ---- */

#define SG_ANTHROPIC_VERSION "2023-06-01"
/* Anthropic accepts at most this many cache_control breakpoints in one request. */
#define SG_ANTHROPIC_MAX_BREAKPOINTS 4
/* max_tokens sent when neither the request nor the price table gives one. */
#define SG_ANTHROPIC_DEFAULT_MAX_TOKENS 4096
/* The tool a chat request's response_format becomes at an Anthropic deployment (LiteLLM's name):
 * its input_schema is the answer's schema and its input the answer, turned back into the
 * message's text content. Clients may not name a tool so (sg_anthropic_encode_chat refuses
 * it), so a tool_use of this name in an answer is always the response_format's. */
#define SG_ANTHROPIC_JSON_TOOL "json_tool_call"

struct sg_anthropic_opts {
    bool prompt_caching;        /* mark stable system and tool blocks with cache_control */
    int64_t default_max_tokens; /* 0: the price table's max_output, else the default above */
};

/* api_base + "/v1/messages". Heap string. */
char *sg_anthropic_url(const struct sg_deployment *d);
/* Encode a chat.completions request as a Messages request for `d`. SG_EINVAL with a message
 * for the client when the request uses something Messages cannot express (n > 1, audio...) or
 * a malformed response_format. A json_schema / json_object response_format becomes the
 * SG_ANTHROPIC_JSON_TOOL tool, forced (docs/api.md says when it is not). */
int sg_anthropic_encode_chat(const struct sg_chat_request *r, const struct sg_deployment *d,
                             const struct sg_anthropic_opts *o, struct sg_buf *out, char *err,
                             size_t err_len);
/* Decode a Messages answer into a chat.completion (`created` is the Unix time to stamp).
 * SG_EPROTO when the body is not a Messages answer. Fills `u` from its usage. A
 * SG_ANTHROPIC_JSON_TOOL call is the response_format answer: its input is the message content
 * and, without other tool calls, the finish_reason is "stop" (streams alike). */
int sg_anthropic_decode_response(const char *body, size_t len, int64_t created, struct sg_buf *out,
                                 struct sg_usage *u);

/* Read the usage of a Messages answer (for Messages clients, whose answers pass as they are).
 * SG_ENOTFOUND when there is none, SG_EINVAL when the body is not JSON. */
int sg_anthropic_usage_parse(const char *body, size_t len, struct sg_usage *u);

/* The content block an Anthropic stream has open. */
enum sg_ablock {
    SG_ABLOCK_NONE,
    SG_ABLOCK_TEXT,
    SG_ABLOCK_TOOL,    /* a client tool's tool_use */
    SG_ABLOCK_OTHER,   /* server tools: no chat.completions form */
    SG_ABLOCK_ANSWER,  /* the response_format tool: its input streams as content */
    SG_ABLOCK_DROPPED, /* text or a second answer after the response_format one */
    SG_ABLOCK_THINKING /* thinking: reasoning_content and thinking_blocks deltas */
};

/* Per-stream state of a Messages stream being read (and translated to chunks). */
struct sg_anthropic_stream {
    int64_t created;
    bool include_usage;        /* emit the final usage chunk (the client asked) */
    bool started;              /* message_start seen */
    bool done;                 /* message_stop seen: the stream is complete */
    bool failed;               /* an error event came: `error` and `error_type` say what */
    enum sg_ablock block_kind; /* the open content block */
    int tool_index;            /* chunk tool_calls index of the open tool_use block */
    bool tool_args;            /* the open tool_use (or response_format) block sent some input */
    bool json_answer;          /* a response_format tool block came: the input is the content */
    int n_tools;               /* the client's tool calls (the response_format tool is not one) */
    char id[96];
    char model[160];
    char finish[24];          /* finish_reason from message_delta */
    int64_t deltas;           /* content_block_delta events so far */
    int64_t reasoning_tokens; /* the estimate of the thinking text so far (the usage chunk's
                               * completion_tokens_details.reasoning_tokens) */
    char error_type[48];
    char error[256];
    struct sg_usage usage;
};
void sg_anthropic_stream_init(struct sg_anthropic_stream *s, bool include_usage, int64_t created);
/* Read one event (its `event:` name and `data:`) and append the chat.completion.chunk events it
 * becomes ("data: {...}\n\n", and "data: [DONE]\n\n" after message_stop) to `out`; `out`
 * may be NULL to only track usage and completion (Messages clients get the events as they
 * are). SG_EPROTO for an event that is not JSON or out of order. */
int sg_anthropic_stream_event(struct sg_anthropic_stream *s, struct sg_slice event,
                              struct sg_slice data, struct sg_buf *out);

/* ---- Messages clients (messages.c): POST /v1/messages to any deployment ---- */

/* Parse a Messages request: model, stream, metadata.user_id, and the checks Anthropic makes
 * first (messages non-empty, max_tokens a positive integer). */
int sg_messages_request_parse(const char *body, size_t len, struct sg_chat_request *out, char *err,
                              size_t err_len);
/* The same for POST /v1/messages/count_tokens, which needs no max_tokens. */
int sg_messages_count_parse(const char *body, size_t len, struct sg_chat_request *out, char *err,
                            size_t err_len);
/* To an Anthropic deployment: the client's bytes with the model spliced in; with
 * prompt_caching, stable system and tool blocks get cache_control markers too. */
int sg_messages_encode_anthropic(const struct sg_chat_request *r, const struct sg_deployment *d,
                                 const struct sg_anthropic_opts *o, struct sg_buf *out, char *err,
                                 size_t err_len);
/* Whether the deployment's model takes reasoning_effort: model_info.supports_reasoning when
 * given, else OpenAI's reasoning families by name (o1, o3, o4, gpt-5 but gpt-5-chat, gpt-oss,
 * codex-; base_model's name when set). OpenAI refuses the parameter from the others. */
bool sg_provider_reasons(const struct sg_deployment *d);
/* To an OpenAI-compatible deployment: a chat.completions request (streams ask for usage); a
 * Messages client's thinking becomes reasoning_effort where sg_provider_reasons, else it is
 * dropped (the answer comes without thinking, as from a model that does not think). */
int sg_messages_encode_openai(const struct sg_chat_request *r, const struct sg_deployment *d,
                              struct sg_buf *out, char *err, size_t err_len);
/* A chat.completion answer as a Messages answer. */
int sg_messages_decode_openai(const char *body, size_t len, struct sg_buf *out, struct sg_usage *u);

/* Tool call indexes below this are remembered with their block, so the chunks of parallel calls
 * may interleave. */
#define SG_MESSAGES_MAX_TOOL_INDEX 64

/* Per-stream state: chat.completion.chunk events in, Messages events out. */
struct sg_messages_stream {
    bool started;    /* message_start sent */
    bool done;       /* message_stop sent */
    bool pinged;     /* the ping Anthropic sends after the first content_block_start, sent */
    int block_kind;  /* the open block: 0 none, 1 text, 2 tool_use, 3 thinking, 4 redacted */
    int block_index; /* its index in the message's content */
    int tool_index;  /* the chunk tool_calls index it belongs to */
    int n_blocks;
    int16_t tool_block[SG_MESSAGES_MAX_TOOL_INDEX]; /* tool call index -> its block + 1 */
    char id[96];
    char model[160];
    char stop_reason[24];
    char error[256];        /* an error chunk's message (sg_messages_stream_chunk said SG_EPROTO) */
    int64_t content_chunks; /* chunks with text or tool arguments: the output-token estimate
                             * when no usage comes */
    int64_t input_estimate; /* set by the caller after init: the request's estimated input
                             * tokens, message_start's input_tokens and the input count when no
                             * usage comes (docs/pricing.md) */
    struct sg_usage usage;  /* reported, or at the end (sg_messages_stream_finish) estimated:
                             * input_estimate and content_chunks */
};
void sg_messages_stream_init(struct sg_messages_stream *s);
/* One chunk's data (or "[DONE]") in; Messages events ("event: X\ndata: {...}\n\n") out.
 * SG_EPROTO for data that is not a chunk, or an error chunk (then `error` holds its message). */
int sg_messages_stream_chunk(struct sg_messages_stream *s, struct sg_slice data,
                             struct sg_buf *out);
/* The upstream ended without "[DONE]" after a finish_reason: close the message. */
int sg_messages_stream_finish(struct sg_messages_stream *s, struct sg_buf *out);

/* ---- provider errors (errors.c) ---- */

enum sg_error_class {
    SG_ERRC_NONE,
    SG_ERRC_BAD_REQUEST,    /* the client's fault: returned as is, never retried */
    SG_ERRC_NOT_FOUND,      /* unknown model at the provider (the deployment's config) */
    SG_ERRC_AUTH,           /* 401/403: the deployment's key is bad: fail over at once */
    SG_ERRC_RATE_LIMIT,     /* 429 */
    SG_ERRC_CONTEXT_WINDOW, /* the prompt is too long for the model: context_window_fallbacks */
    SG_ERRC_CONTENT_POLICY, /* refused by the provider's content filter */
    SG_ERRC_SERVER,         /* 5xx, 529 overloaded, a broken answer */
    SG_ERRC_TIMEOUT,        /* 408, 504, or no answer in time */
};

struct sg_provider_error {
    enum sg_error_class cls;
    int status;
    bool retryable; /* the router may try another deployment */
    bool shaped;    /* the body is a JSON object with an "error" member (an API's own shape) */
    char type[64];  /* the provider's error type, if any */
    char code[64];  /* the provider's error code, if any */
    char message[512];
};

/* Classify an HTTP answer from either provider (status + body, OpenAI or Anthropic shape). */
void sg_provider_classify(int status, const char *body, size_t len, struct sg_provider_error *out);
const char *sg_error_class_name(enum sg_error_class c);
/* The status, OpenAI error type and code a client is shown for a class. */
void sg_error_class_openai(enum sg_error_class c, int *status, const char **type,
                           const char **code);
/* Append an error body: OpenAI's {"error":{...}} or Anthropic's {"type":"error",...}. */
int sg_openai_error_body(struct sg_buf *out, const char *type, const char *code, const char *msg);
int sg_anthropic_error_body(struct sg_buf *out, int status, const char *msg);

#endif
