/*
 * mock — a fake model provider speaking the OpenAI chat.completions and Anthropic Messages wire
 * formats, with fault injection (latency, slow first token, slow streams, error bursts, forced
 * statuses, hangs, connection resets, a wrong key) that can be changed while it runs.
 *
 * It is a product feature: `slogate mock` runs one as a process, `slogate demo` and the drill run
 * two in-process, and tests drive it through its control endpoint under /_mock/.
 *
 * Threading: a mock belongs to the uv loop it was created on; every sg_mock_* function that
 * takes a `struct sg_mock *` must be called on that loop's thread. The pure helpers further down
 * (parsing, rendering, faults) touch no shared state and may be called from anywhere.
 */
#ifndef SG_MOCK_H
#define SG_MOCK_H

#include "base/base.h"

#include <uv.h>

struct sg_http_limits;
struct json_object;

/* What the mock does to a connection instead of answering. */
enum sg_mock_reset {
    SG_MOCK_RESET_NONE = 0,
    SG_MOCK_RESET_BEFORE, /* reset the connection instead of answering */
    SG_MOCK_RESET_MID,    /* streams: head and about half the chunks, then reset;
                           * non-streaming: reset without sending anything */
};

/* An answer that is not one: what broken providers and the proxies in front of them send. */
enum sg_mock_malformed {
    SG_MOCK_MALFORMED_NONE = 0,
    SG_MOCK_MALFORMED_EMPTY, /* 200 with nothing: an empty body, a stream head with no event */
    SG_MOCK_MALFORMED_HTML,  /* 200 text/html (a proxy's page), for streams too */
    SG_MOCK_MALFORMED_CUT,   /* the answer cut halfway but ended cleanly: half a JSON body; a
                              * stream without its last events ([DONE], usage, message_stop) */
};

/* Injected faults. All zero = a healthy provider. They apply to POST /v1/chat/completions,
 * /chat/completions and /v1/messages; GET /v1/models only checks the key; /_mock/ never. */
struct sg_mock_faults {
    uint32_t latency_ms;    /* delay before a non-streaming answer (errors too) or stream head */
    uint32_t ttft_ms;       /* streams: further delay until the first content chunk; the head
                             * goes out together with that chunk */
    double tokens_per_s;    /* streams: pace of the chunks after the first; 0 = at once,
                             * else SG_MOCK_TPS_MIN..SG_MOCK_TPS_MAX */
    double error_rate;      /* 0..1: fraction of requests answered with error_status */
    int error_status;       /* status of error_rate answers; 0 means 500 */
    int status;             /* 0 = off; else every answer gets this status (400..599) */
    uint32_t retry_after_s; /* 0 = none; else 429 and 503 answers carry Retry-After */
    bool hang;              /* accept the request and never answer */
    enum sg_mock_reset reset;
    enum sg_mock_malformed malformed; /* 200 answers only; a reset comes first */
    bool no_usage; /* OpenAI-format answers carry no usage: no usage object in a whole answer,
                    * no usage chunk (nor "usage":null) in a stream even when asked for */
};

struct sg_mock_options {
    const char *name;             /* shown in answers and in x-mock-name; NULL = "mock" */
    const char *expected_key;     /* NULL = accept any key (or none) */
    const char *model;            /* reported model if set, else the request's is echoed */
    struct sg_mock_faults faults; /* at start; DELETE /_mock/faults returns to these */
    uint64_t seed;                /* seeds the error_rate draws; 0 = from the OS */
    uint32_t reply_tokens;        /* output tokens of a full answer; 0 = SG_MOCK_REPLY_TOKENS */
    const struct sg_http_limits *limits; /* NULL = the http defaults */
};

#define SG_MOCK_REPLY_TOKENS 24

struct sg_mock;

/* Create a mock on `loop` (strings in `opts` are copied). Does not listen yet. */
struct sg_mock *sg_mock_new(uv_loop_t *loop, const struct sg_mock_options *opts);
/* Bind and listen; port 0 = ephemeral. Returns 0 or SG_EIO. */
int sg_mock_listen(struct sg_mock *m, const char *host, int port);
int sg_mock_port(const struct sg_mock *m);
const char *sg_mock_name(const struct sg_mock *m);
/* Finish every request still held (hangs, delayed answers: their connections are reset), close
 * the server, and free the mock once its handles are closed (run the loop to completion). */
void sg_mock_free(struct sg_mock *m);
/* Replace the current faults (what POST /_mock/faults does, without the JSON). */
void sg_mock_set_faults(struct sg_mock *m, const struct sg_mock_faults *f);
void sg_mock_get_faults(const struct sg_mock *m, struct sg_mock_faults *out);

/* Two mocks on a loop and a thread of their own (demo, drill --demo), on 127.0.0.1 ephemeral
 * ports. NULL when they could not listen. */
struct sg_mock_pair;
struct sg_mock_pair *sg_mock_pair_start(const struct sg_mock_options *a,
                                        const struct sg_mock_options *b);
/* The port of mock 0 (a) or 1 (b). */
int sg_mock_pair_port(const struct sg_mock_pair *p, int which);
/* Stop both mocks, join their thread, free the pair. */
void sg_mock_pair_stop(struct sg_mock_pair *p);

/* ---------------------------------------------------------------------------------------------
 * Pure protocol helpers (render.c, faults.c): no sockets, no loop; unit-tested one by one.
 * ------------------------------------------------------------------------------------------- */

enum sg_mock_api { SG_MOCK_API_OPENAI, SG_MOCK_API_ANTHROPIC };

#define SG_MOCK_JSON_DEPTH 64

/* Parse `n` bytes as one strict JSON value (UTF-8 validated, nesting <= 64, nothing but
 * whitespace after it). Returns the object (caller puts it) or NULL with a message in err. */
struct json_object *sg_mock_json_parse(const char *p, size_t n, char *err, size_t errn);

/* Tool calls: a request that forces a tool (OpenAI tool_choice "required" or a function,
 * Anthropic tool_choice "any" or a tool) is answered with calls to it (to each tool, at most
 * this many, when "required"/"any" and parallel calls are allowed). */
#define SG_MOCK_MAX_TOOL_CALLS 4
#define SG_MOCK_TOOL_NAME_MAX 64 /* OpenAI's limit for a function name */
/* A call's arguments are streamed in this many pieces, cut at UTF-8 character boundaries. */
#define SG_MOCK_ARG_PIECES 4

/* A parsed chat request: what the mock needs to answer it. */
struct sg_mock_chat {
    enum sg_mock_api api;
    char *model; /* owned; the requested model */
    bool stream;
    bool include_usage; /* OpenAI stream_options.include_usage */
    int64_t max_tokens; /* max_tokens / max_completion_tokens; -1 when absent */
    uint32_t n_messages;
    uint64_t input_tokens; /* see sg_mock_count_tokens() */
    uint64_t prompt_hash;  /* FNV-1a over every text part: picks the reply's words */
    /* Anthropic prompt caching: input tokens up to and including the last message (or system
     * prompt) holding a cache_control block, and the hash of that prefix; 0 when unmarked. */
    uint64_t cache_prefix_tokens;
    uint64_t cache_prefix_hash;
    uint32_t n_calls; /* tools the answer calls; 0 = a text answer */
    char calls[SG_MOCK_MAX_TOOL_CALLS][SG_MOCK_TOOL_NAME_MAX + 1];
    /* Owned: the input of an Anthropic call forced by name ({"type":"tool","name":N}) when N's
     * input_schema requires properties or forbids additional ones: the required properties
     * filled by type (docs/mock.md). NULL: the usual arguments (sg_mock_tool_args). */
    char *input;
    uint32_t thinking_tokens; /* reasoning asked for (Anthropic thinking, OpenAI
                               * reasoning_effort): SG_MOCK_THINKING_TOKENS, else 0 */
    bool redacted; /* Anthropic: the prompt holds SG_MOCK_REDACTED_TRIGGER: the thinking is
                    * one redacted_thinking block */
};

/* Reasoning (src/mock/thinking.c, docs/mock.md). A request that asks for it gets this many
 * thinking tokens first: an Anthropic thinking block (signed) or an OpenAI reasoning_content
 * (DeepSeek's field), counted in the output tokens and, for OpenAI, reasoning_tokens. */
#define SG_MOCK_THINKING_TOKENS 6
/* Anthropic's documented string that makes a thinking model answer with redacted_thinking. */
#define SG_MOCK_REDACTED_TRIGGER                                                                   \
    "ANTHROPIC_MAGIC_STRING_TRIGGER_REDACTED_THINKING_46C9A13E193C177646C7398A98432ECCCE4C1253"

/* Read what a request says about reasoning into out->thinking_tokens and out->redacted, with
 * the checks the provider makes: Anthropic's thinking shape, budget (>= 1024, below
 * max_tokens), no temperature but 1, top_p >= 0.95, no top_k and no forced tool with it, and
 * every thinking block sent back signed by the mock (the last assistant turn with a tool_use
 * starting with one when thinking is on); OpenAI's reasoning_effort values. SG_EINVAL with
 * the provider's message and the field in `param`. */
int sg_mock_thinking_parse(enum sg_mock_api api, struct json_object *root, const char *body,
                           size_t len, struct sg_mock_chat *out, char *err, size_t errn,
                           char *param, size_t paramn);
/* Append the signature the mock gives a thinking text ("mocksig-" and 16 hex digits). */
int sg_mock_thinking_signature(struct sg_buf *out, const char *text, size_t n);

/* Parse and validate a request body. On failure returns SG_EINVAL and writes a message for the
 * client into err and the offending field (or "") into param. */
int sg_mock_chat_parse(enum sg_mock_api api, const char *body, size_t len, struct sg_mock_chat *out,
                       char *err, size_t errn, char *param, size_t paramn);
void sg_mock_chat_dispose(struct sg_mock_chat *c);
/* The content parts (OpenAI) or blocks (Anthropic) of message `mi` with role `role`, checked as
 * the provider checks them (parts.c): SG_EINVAL with the provider's message in `err`. */
int sg_mock_check_parts(enum sg_mock_api api, const char *role, struct json_object *content,
                        size_t mi, char *err, size_t errn);

/* The input-token estimate for one message (or system prompt) holding `text_bytes` bytes of
 * text: ceil(text_bytes / 4) + 4. A request's input tokens are the sum over its messages. */
uint64_t sg_mock_count_tokens(uint64_t text_bytes);

/* Everything that decides the bytes of one answer. */
struct sg_mock_answer {
    enum sg_mock_api api;
    const char *name;      /* the mock's name, quoted in the text */
    const char *model;     /* the model reported */
    const char *id;        /* "chatcmpl-..." or "msg_..." */
    uint64_t created;      /* Unix seconds */
    uint64_t input_tokens; /* not counting the cached tokens below (Anthropic's convention) */
    uint64_t cache_creation_tokens;
    uint64_t cache_read_tokens;
    uint32_t output_tokens; /* >= 1 */
    bool truncated;         /* output stopped by max_tokens: "length" / "max_tokens" */
    bool include_usage;     /* OpenAI streams: the usage chunk */
    bool no_usage;          /* OpenAI: no usage anywhere (the no_usage fault); Anthropic keeps it */
    uint64_t prompt_hash;
    uint32_t n_calls; /* tool calls instead of text (output_tokens = their stream events) */
    char calls[SG_MOCK_MAX_TOOL_CALLS][SG_MOCK_TOOL_NAME_MAX + 1];
    const char *input;        /* borrowed sg_mock_chat.input: call 0's input, or NULL */
    uint32_t thinking_tokens; /* before the text, counted in the usage beside output_tokens */
    bool redacted;            /* Anthropic: the thinking is a redacted_thinking block */
};

/* Fill `a` for request `c` from a mock called `name` whose full answer has `reply_tokens`
 * tokens; `model` overrides the echoed model when non-NULL. Strings are borrowed. */
void sg_mock_answer_init(struct sg_mock_answer *a, const struct sg_mock_chat *c, const char *name,
                         const char *model, const char *id, uint64_t created,
                         uint32_t reply_tokens);
/* Move `prefix_tokens` of the input into cache_read (hit) or cache_creation (first sight). */
void sg_mock_answer_cache(struct sg_mock_answer *a, uint64_t prefix_tokens, bool hit);
/* Append token i (0-based) of the reply: "Mock", " answer", " from", " <name>:", then words. */
int sg_mock_reply_token(struct sg_buf *out, const struct sg_mock_answer *a, uint32_t i);
/* The whole reply text: tokens 0..output_tokens-1. */
int sg_mock_reply_text(struct sg_buf *out, const struct sg_mock_answer *a);
/* Token i of the thinking ("Thinking", " it", " over", " for <name>:", then words) and the
 * whole thinking text (tokens 0..thinking_tokens-1); the redacted block's data. */
int sg_mock_thinking_token(struct sg_buf *out, const struct sg_mock_answer *a, uint32_t i);
int sg_mock_thinking_text(struct sg_buf *out, const struct sg_mock_answer *a);
int sg_mock_redacted_data(struct sg_buf *out, const struct sg_mock_answer *a);

/* The arguments of tool call k (a JSON object's text: {"mock":NAME,"call":k,"text":...}, or
 * `input` for a call forced by name) and piece j (0..SG_MOCK_ARG_PIECES-1) of it as streamed. */
int sg_mock_tool_args(struct sg_buf *out, const struct sg_mock_answer *a, uint32_t k);
int sg_mock_tool_args_piece(struct sg_buf *out, const struct sg_mock_answer *a, uint32_t k,
                            uint32_t j);

/* The non-streaming body: a chat.completion or a message object. */
int sg_mock_render_body(struct sg_buf *out, const struct sg_mock_answer *a);

/* A stream is a sequence of SSE events: head events, one content event per output token, then
 * tail events. The head goes out with content event 0; see docs/internals/mock.md. */
struct sg_mock_stream_plan {
    size_t n_head;
    size_t n_content;
    size_t n_tail;
};
void sg_mock_stream_plan(const struct sg_mock_answer *a, struct sg_mock_stream_plan *plan);
/* Append event i (0 <= i < n_head + n_content + n_tail), framed ("data: ...\n\n", with an
 * "event: X" line for Anthropic). */
int sg_mock_render_event(struct sg_buf *out, const struct sg_mock_answer *a, size_t i);

/* An error body in the API's shape for `status`: OpenAI {"error":{message,type,param,code}},
 * Anthropic {"type":"error","error":{type,message}}. `code` and `param` may be NULL (then the
 * status decides the OpenAI code / null). */
int sg_mock_render_error(struct sg_buf *out, enum sg_mock_api api, int status, const char *code,
                         const char *param, const char *message);

/* Faults <-> JSON. The JSON names are the struct's field names; reset is "none"|"before"|"mid",
 * malformed "none"|"empty"|"html"|"cut", no_usage a boolean.
 * Merge applies the fields of a JSON object onto `f` all-or-nothing: unknown field, wrong type or
 * a value out of range -> SG_EINVAL, `f` unchanged, err names the field. */
int sg_mock_faults_merge(struct sg_mock_faults *f, const char *json, size_t len, char *err,
                         size_t errn);
int sg_mock_faults_to_json(struct sg_buf *out, const struct sg_mock_faults *f);
/* Valid ranges: the checks the merge and the CLI share. */
bool sg_mock_status_valid(int status);
/* tokens_per_s: 0 (no pacing) or SG_MOCK_TPS_MIN..SG_MOCK_TPS_MAX. The slowest is a token every
 * 1000 s (the other delays stop at an hour); the fastest is already "at once" to a client. */
/* Retry-After seconds: a day at most, the most the gateway honours (larger is a typo). */
#define SG_MOCK_RETRY_AFTER_MAX 86400
#define SG_MOCK_TPS_MIN 0.001
#define SG_MOCK_TPS_MAX 1e6
bool sg_mock_tps_valid(double tokens_per_s);
/* When content event k (0 = the first) of a stream paced at `tokens_per_s` is due, in ms after
 * the first: round(k * 1000 / tokens_per_s), counted from the first so rounding never drifts.
 * 0 for no pacing (0, negative, NaN). A pace outside the valid range (sg_mock_set_faults does
 * not check) is clamped into it, and the result is at most SG_MOCK_OFFSET_MAX_MS, so nothing
 * overflows and nothing is sent all at once by accident. */
#define SG_MOCK_OFFSET_MAX_MS (UINT64_C(1) << 52) /* exact in a double; loop time + it fits */
uint64_t sg_mock_token_offset_ms(double tokens_per_s, size_t k);
const char *sg_mock_reset_name(enum sg_mock_reset r);
const char *sg_mock_malformed_name(enum sg_mock_malformed m);
/* "none", "empty", "html" or "cut"; SG_EINVAL otherwise. */
int sg_mock_malformed_parse(const char *s, enum sg_mock_malformed *out);

/* What to do with one model request. */
enum sg_mock_action {
    SG_MOCK_ANSWER, /* the normal answer (a stream may still be reset mid-way) */
    SG_MOCK_ERROR,  /* answer `status` in the API's error shape */
    SG_MOCK_HANG,   /* never answer */
    SG_MOCK_RESET,  /* reset the connection without answering */
};
enum sg_mock_cause {
    SG_MOCK_CAUSE_NONE,
    SG_MOCK_CAUSE_AUTH,    /* missing or wrong key: 401 */
    SG_MOCK_CAUSE_INVALID, /* the body did not parse: 400 */
    SG_MOCK_CAUSE_FORCED,  /* faults.status */
    SG_MOCK_CAUSE_RATE,    /* faults.error_rate drew an error */
    SG_MOCK_CAUSE_FAULT,   /* hang or reset */
};
struct sg_mock_decision {
    enum sg_mock_action action;
    enum sg_mock_cause cause;
    int status;                       /* for ANSWER 200, for ERROR the status */
    uint32_t delay_ms;                /* before the answer, the error or the stream head */
    bool reset_mid;                   /* ANSWER of a stream: reset after about half the content */
    enum sg_mock_malformed malformed; /* ANSWER: sent broken this way */
    bool no_usage;                    /* ANSWER: OpenAI format without its usage */
    uint32_t retry_after_s;           /* 0 = no Retry-After header */
};
/* Decide, in this order: reset before -> hang -> (latency) -> 401 when !key_ok -> forced status
 * -> 400 when !body_ok -> error_rate (error when draw < error_rate; draw in [0,1)) -> answer. */
void sg_mock_decide(const struct sg_mock_faults *f, bool key_ok, bool body_ok, bool stream,
                    double draw, struct sg_mock_decision *d);

/* The mock's own generator (splitmix64), so that two mocks on one thread, or a gateway sharing
 * the thread, do not disturb each other's sequences. */
uint64_t sg_mock_rand_next(uint64_t *state);
/* A draw in [0,1) with 53 random bits. */
double sg_mock_rand_unit(uint64_t *state);

#endif
