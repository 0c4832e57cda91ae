/*
 * Input-token estimates before the call, for caps and budgets (DESIGN §8, §9). No tokenizer
 * vocabulary ships in the binary: the estimate imitates how byte-pair tokenizers split text
 * (tiktoken's pre-tokenizer: letter runs with their leading space, digit groups of three,
 * punctuation runs, whitespace runs) and charges each piece what such a piece costs at most in
 * common cases, per script. It is meant to over-estimate: a cap that under-counts lets an
 * expensive request through. docs/pricing.md gives the measured error on tests/data/.
 *
 * The text estimator is a state machine over code points, so a JSON body's strings are fed as
 * they are decoded, without copies; the request walker needs a body already validated.
 *
 * The same text estimate counts the output of an answer whose provider reported no usage
 * (sg_tokens_estimate_answer), after the call and off the hot path.
 */
#include "provider_int.h"

#include <math.h>

/* Tuned on tests/data/token_corpus.jsonl against tiktoken (o200k_base, cl100k_base) and
 * Anthropic's published tokenizer; see docs/pricing.md before changing one. */
#define WORD_CHARS 5        /* an ASCII word costs 1 token per started WORD_CHARS letters */
#define ACCENT_COST 1.5     /* extra per non-ASCII Latin letter in a word */
#define CASE_BREAK_COST 1.0 /* extra per lower->upper change inside a word (camelCase) */
#define PUNCT_COST 0.75     /* per ASCII punctuation character */
#define CJK_COST 1.25       /* per Han / kana / Hangul character */
#define CYRILLIC_COST 0.65  /* per Cyrillic letter */
#define SCRIPT_COST 1.05    /* per Greek, Armenian, Hebrew, Arabic letter */
#define BRAHMIC_COST 2.2    /* per Devanagari, Bengali, Thai... character (byte-heavy) */
#define EMOJI_COST 3.0      /* per emoji / pictograph */
#define OTHER_COST 1.5      /* any other code point */
#define SAFETY 1.10         /* overall margin */

#define MESSAGE_FRAMING 4 /* role and separators around each message */
#define REPLY_PRIMING 3   /* the assistant turn the model is primed with */
#define IMAGE_TOKENS 1600 /* one image: the ceiling of Anthropic's and gpt-4o's counts */
/* One PDF page: its text (Anthropic: 1,500-3,000 a page) and the page's image; measured on
 * Claude at 2,100-2,500 for a page of text or a table, 1,600 for a scanned page. */
#define PDF_PAGE_TOKENS 3000

enum run { R_NONE, R_WORD, R_DIGITS, R_SPACE, R_NEWLINE, R_PUNCT, R_CYRILLIC, R_SCRIPT };

struct est {
    double tokens;
    enum run run;
    int64_t len;   /* code points in the current run */
    int64_t extra; /* accent / case-break weight of the current word, x4 */
    bool prev_lower;
};

static void flush(struct est *e)
{
    switch (e->run) {
    case R_WORD:
        e->tokens += (double)(1 + (e->len - 1) / WORD_CHARS) + (double)e->extra / 4.0;
        break;
    case R_DIGITS: e->tokens += (double)((e->len + 2) / 3); break;
    case R_SPACE: e->tokens += 1.0 + (double)(e->len / 16); break; /* not before a word */
    case R_NEWLINE: e->tokens += 1.0 + (double)(e->len / 8); break;
    case R_PUNCT: e->tokens += ceil((double)e->len * PUNCT_COST); break;
    case R_CYRILLIC: e->tokens += ceil((double)e->len * CYRILLIC_COST); break;
    case R_SCRIPT: e->tokens += ceil((double)e->len * SCRIPT_COST); break;
    case R_NONE: break;
    }
    e->run = R_NONE;
    e->len = 0;
    e->extra = 0;
    e->prev_lower = false;
}

static void to_run(struct est *e, enum run r)
{
    /* A single space is part of the word (or punctuation) after it, as in tiktoken. */
    if (e->run == R_SPACE && e->len == 1 &&
        (r == R_WORD || r == R_PUNCT || r == R_SCRIPT || r == R_CYRILLIC)) {
        e->run = r;
        e->len = 0;
        return;
    }
    if (e->run != r)
        flush(e);
    e->run = r;
}

static bool is_cjk(uint32_t c)
{
    return (c >= 0x3040 && c <= 0x30ff) || (c >= 0x3400 && c <= 0x4dbf) ||
           (c >= 0x4e00 && c <= 0x9fff) || (c >= 0xac00 && c <= 0xd7af) ||
           (c >= 0xf900 && c <= 0xfaff) || (c >= 0x20000 && c <= 0x3ffff) ||
           (c >= 0x1100 && c <= 0x11ff) || (c >= 0x3130 && c <= 0x318f);
}

static void feed(struct est *e, uint32_t c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) {
        to_run(e, R_WORD);
        bool upper = c <= 'Z';
        if (upper && e->prev_lower)
            e->extra += (int64_t)(CASE_BREAK_COST * 4);
        e->prev_lower = !upper;
        e->len++;
    } else if (c >= '0' && c <= '9') {
        to_run(e, R_DIGITS);
        e->len++;
    } else if (c == ' ' || c == '\t') {
        to_run(e, R_SPACE);
        e->len++;
    } else if (c == '\n' || c == '\r') {
        to_run(e, R_NEWLINE);
        e->len++;
    } else if (c < 0x80) {
        if (c < 0x20) {
            flush(e);
            e->tokens += 1.0;
            return;
        }
        to_run(e, R_PUNCT);
        e->len++;
    } else if ((c >= 0xc0 && c <= 0x24f && c != 0xd7 && c != 0xf7) ||
               (c >= 0x1e00 && c <= 0x1eff)) {
        to_run(e, R_WORD); /* accented Latin: the word goes on, at a price */
        e->extra += (int64_t)(ACCENT_COST * 4);
        e->prev_lower = true;
        e->len++;
    } else if (c >= 0x400 && c <= 0x52f) {
        to_run(e, R_CYRILLIC);
        e->len++;
    } else if ((c >= 0x370 && c <= 0x6ff) || (c >= 0x750 && c <= 0x77f)) {
        to_run(e, R_SCRIPT); /* Greek, Armenian, Hebrew, Arabic */
        e->len++;
    } else if (is_cjk(c)) {
        flush(e);
        e->tokens += CJK_COST;
    } else if ((c >= 0x900 && c <= 0xdff) || (c >= 0xe00 && c <= 0xeff) ||
               (c >= 0x1000 && c <= 0x109f)) {
        flush(e);
        e->tokens += BRAHMIC_COST;
    } else if (c >= 0x1f000 || (c >= 0x2600 && c <= 0x27bf)) {
        flush(e);
        e->tokens += EMOJI_COST;
    } else if (c == 0x200d || c == 0xfe0f) {
        flush(e); /* joiners and variation selectors: priced with the emoji they join */
        e->tokens += 1.0;
    } else {
        flush(e);
        e->tokens += OTHER_COST;
    }
}

/* Decode one UTF-8 sequence at p (n bytes left); invalid bytes count as one code point each. */
static uint32_t utf8_next(const unsigned char *p, size_t n, size_t *used)
{
    unsigned c = p[0];
    size_t len = c < 0x80 ? 1 : c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 1;
    if (len > n || len == 1) {
        *used = 1;
        return c < 0x80 ? c : 0xfffd;
    }
    uint32_t cp = c & (0x7f >> len);
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80) {
            *used = 1;
            return 0xfffd;
        }
        cp = (cp << 6) | (p[i] & 0x3f);
    }
    *used = len;
    return cp;
}

static double est_done(struct est *e)
{
    flush(e);
    return e->tokens;
}

int64_t sg_tokens_estimate_text(const char *s, size_t n)
{
    struct est e = {0};
    for (size_t i = 0; i < n;) {
        size_t used;
        feed(&e, utf8_next((const unsigned char *)s + i, n - i, &used));
        i += used;
    }
    return (int64_t)ceil(est_done(&e) * SAFETY);
}

/* ---- the request walker: a validated JSON body, strings fed as they are decoded ---- */

enum ctx {
    CTX_SKIP,    /* count nothing (model, temperature, type tags...) */
    CTX_CONTENT, /* count string values (message text, ids) */
    CTX_RAW,     /* count the JSON text itself (tool schemas, tool-call arguments) */
    CTX_MEDIA,   /* an image, audio or document: priced by what it holds (walk_media) */
};

struct walk {
    const char *p, *end;
    struct est e;
    int64_t fixed; /* framing and images, added outside the text estimate */
};

static void ws(struct walk *w)
{
    while (w->p < w->end && (*w->p == ' ' || *w->p == '\n' || *w->p == '\r' || *w->p == '\t'))
        w->p++;
}

static int hex(char c)
{
    return c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10;
}

/* The next code point of a string's text at w->p (escapes decoded). */
static uint32_t string_next(struct walk *w)
{
    uint32_t cp;
    if (*w->p == '\\' && w->p + 1 < w->end) {
        char c = w->p[1];
        w->p += 2;
        if (c == 'u' && w->end - w->p >= 4) {
            cp = (uint32_t)(hex(w->p[0]) << 12 | hex(w->p[1]) << 8 | hex(w->p[2]) << 4 |
                            hex(w->p[3]));
            w->p += 4;
        } else {
            cp = c == 'n' ? '\n' : c == 't' ? '\t' : c == 'r' ? '\r' : (uint32_t)c;
        }
    } else {
        size_t used;
        cp = utf8_next((const unsigned char *)w->p, (size_t)(w->end - w->p), &used);
        w->p += used;
    }
    return cp;
}

/* A string at w->p (the opening quote). Feeds its decoded text when `count`; copies up to
 * `cap - 1` bytes of it into `name` when given (for member names). */
static void walk_string(struct walk *w, bool count, char *name, size_t cap)
{
    size_t nl = 0;
    w->p++;
    while (w->p < w->end && *w->p != '"') {
        uint32_t cp = string_next(w);
        if (count)
            feed(&w->e, cp);
        if (name && cp < 0x80 && nl + 1 < cap)
            name[nl++] = (char)cp;
    }
    if (name)
        name[nl] = '\0';
    if (count)
        flush(&w->e);
    w->p++;
}

static void walk_value(struct walk *w, enum ctx ctx, int depth);

/* What a media value (image_url, input_audio, file, a block's source) holds, read as it is
 * walked: its base64 or URL text is no prompt. */
struct media {
    char type[16];       /* a source's type: base64, text, content, url, file */
    char media_type[48]; /* media_type, or a data URL's */
    bool data;           /* a data / file_data string was read */
    struct sg_b64 b64;   /* that string decoded (after a data URL's comma) */
    struct est text;     /* that string as text (a text source's document) */
};

/* A data / file_data string: fed to the text estimate and the base64 decoder, a data URL's
 * media type kept. An image's bytes are not decoded: they cost the same whatever they are. */
static void media_string(struct walk *w, struct media *m)
{
    size_t i = 0, mt = 0;
    int url = -1; /* -1: not known yet, 1: in a data URL's head, 0: in the data */
    /* What the data is read for. The order of members is free: when the type came first, only
     * what it needs; a data URL's data is base64, never text. */
    bool image = strncmp(m->media_type, "image/", 6) == 0;
    bool as_text = strcmp(m->type, "base64") != 0;
    bool as_b64 = !image && strcmp(m->type, "text") != 0;
    m->data = true;
    w->p++;
    while (w->p < w->end && *w->p != '"') {
        uint32_t cp = string_next(w);
        if (url == -1 && i < 5 && cp == (uint32_t) "data:"[i]) {
            if (++i == 5)
                url = 1, mt = 0;
            continue;
        }
        if (url == -1 && i > 0) { /* not a data URL after all: what was skipped is data */
            for (size_t k = 0; k < i; k++) {
                feed(&m->text, (uint32_t) "data:"[k]);
                sg_b64_feed(&m->b64, (uint32_t) "data:"[k]);
            }
        }
        if (url == -1)
            url = 0;
        if (url == 1) {
            if (cp == ',') {
                url = 0;
                as_text = false;
                as_b64 = strncmp(m->media_type, "image/", 6) != 0;
            } else if (cp == ';') {
                mt = sizeof m->media_type; /* parameters follow: the type is complete */
            } else if (mt + 1 < sizeof m->media_type && cp < 0x80) {
                m->media_type[mt++] = (char)cp;
                m->media_type[mt] = '\0';
            }
            continue;
        }
        if (as_text)
            feed(&m->text, cp);
        if (as_b64)
            sg_b64_feed(&m->b64, cp);
    }
    w->p++;
}

/* A media value at w->p: members walked, then priced. A text source is its text; a content
 * source's blocks were walked as content; a base64 PDF costs PDF_PAGE_TOKENS a page; base64
 * text (text/...) a token per 2 bytes; anything else (images, audio, URLs, file ids) is
 * IMAGE_TOKENS. */
static void walk_media(struct walk *w, int depth)
{
    struct media m = {0};
    sg_b64_init(&m.b64);
    if (*w->p == '{') {
        w->p++;
        for (;;) {
            ws(w);
            if (w->p >= w->end)
                return;
            if (*w->p == '}') {
                w->p++;
                break;
            }
            if (*w->p == ',') {
                w->p++;
                continue;
            }
            char name[32];
            walk_string(w, false, name, sizeof name);
            ws(w);
            if (w->p < w->end && *w->p == ':')
                w->p++;
            ws(w);
            bool str = w->p < w->end && *w->p == '"';
            if (str && strcmp(name, "type") == 0)
                walk_string(w, false, m.type, sizeof m.type);
            else if (str && strcmp(name, "media_type") == 0)
                walk_string(w, false, m.media_type, sizeof m.media_type);
            else if (str && (strcmp(name, "data") == 0 || strcmp(name, "file_data") == 0))
                media_string(w, &m);
            else if (strcmp(name, "content") == 0) { /* a content source: text blocks */
                walk_value(w, CTX_CONTENT, depth + 1);
                snprintf(m.type, sizeof m.type, "content");
            } else
                walk_value(w, CTX_SKIP, depth + 1);
        }
    } else {
        walk_value(w, CTX_SKIP, depth); /* an image_url given as a string */
    }
    if (strcmp(m.type, "content") == 0)
        return;
    if (strcmp(m.type, "text") == 0 && m.data)
        w->fixed += (int64_t)ceil(est_done(&m.text) * SAFETY);
    else if (m.data && sg_b64_is_pdf(&m.b64))
        w->fixed += sg_b64_pdf_pages(&m.b64) * PDF_PAGE_TOKENS;
    else if (m.data && !m.b64.bad && strncmp(m.media_type, "text/", 5) == 0)
        w->fixed += (m.b64.bytes + 1) / 2;
    else
        w->fixed += IMAGE_TOKENS;
}

/* Members of an object in CONTENT context: media are priced by walk_media, type tags and
 * cache markers are not text. */
static enum ctx content_member(const char *name, enum ctx ctx, struct walk *w)
{
    if (ctx != CTX_CONTENT)
        return ctx;
    if (strcmp(name, "image_url") == 0 || strcmp(name, "source") == 0 ||
        strcmp(name, "input_audio") == 0 || strcmp(name, "file") == 0)
        return CTX_MEDIA;
    if (strcmp(name, "type") == 0 || strcmp(name, "cache_control") == 0 ||
        strcmp(name, "role") == 0)
        return CTX_SKIP;
    if (strcmp(name, "name") == 0)
        w->fixed += 1;
    if (strcmp(name, "input") == 0 || strcmp(name, "tool_calls") == 0)
        return CTX_RAW;
    return CTX_CONTENT;
}

static void walk_container(struct walk *w, enum ctx ctx, int depth, bool messages)
{
    char close = *w->p == '{' ? '}' : ']';
    bool obj = close == '}';
    if (ctx == CTX_RAW)
        feed(&w->e, (uint32_t)*w->p);
    w->p++;
    for (;;) {
        ws(w);
        if (w->p >= w->end)
            return;
        if (*w->p == close) {
            if (ctx == CTX_RAW)
                feed(&w->e, (uint32_t)close);
            w->p++;
            return;
        }
        if (*w->p == ',') {
            if (ctx == CTX_RAW)
                feed(&w->e, ',');
            w->p++;
            continue;
        }
        enum ctx sub = ctx;
        if (obj) {
            char name[32];
            walk_string(w, ctx == CTX_RAW, name, sizeof name);
            ws(w);
            if (w->p < w->end && *w->p == ':') {
                if (ctx == CTX_RAW)
                    feed(&w->e, ':');
                w->p++;
            }
            sub = content_member(name, ctx, w);
        } else if (messages) {
            flush(&w->e); /* messages are separate texts */
            w->fixed += MESSAGE_FRAMING;
        }
        if (sub == CTX_MEDIA) {
            ws(w);
            if (w->p < w->end && depth < SG_JSON_MAX_DEPTH)
                walk_media(w, depth + 1);
            else
                walk_value(w, CTX_SKIP, depth + 1);
            continue;
        }
        walk_value(w, sub, depth + 1);
    }
}

static void walk_value(struct walk *w, enum ctx ctx, int depth)
{
    ws(w);
    if (w->p >= w->end || depth > SG_JSON_MAX_DEPTH)
        return;
    char c = *w->p;
    if (c == '{' || c == '[') {
        walk_container(w, ctx, depth, false);
    } else if (c == '"') {
        if (ctx == CTX_RAW)
            feed(&w->e, '"');
        walk_string(w, ctx != CTX_SKIP, NULL, 0);
        if (ctx == CTX_RAW)
            feed(&w->e, '"');
    } else {
        while (w->p < w->end && !strchr(",]} \n\r\t", *w->p)) {
            if (ctx == CTX_RAW)
                feed(&w->e, (uint32_t)(unsigned char)*w->p);
            w->p++;
        }
    }
}

int64_t sg_tokens_estimate_request(const char *body, size_t len)
{
    struct sg_json_member m[SG_CHAT_MAX_MEMBERS];
    size_t n = 0;
    char err[8];
    if (sg_json_members(body, len, m, SG_ARRAY_LEN(m), &n, err, 0) != SG_OK)
        return -1;
    struct walk w = {0};
    w.fixed = REPLY_PRIMING;
    for (size_t i = 0; i < n; i++) {
        char name[32];
        size_t nl;
        if (!sg_json_unescape(m[i].name, name, sizeof name, &nl))
            continue;
        struct walk sub = {m[i].value.p, m[i].value.p + m[i].value.n, w.e, 0};
        if (strcmp(name, "messages") == 0 && m[i].value.p[0] == '[') {
            walk_container(&sub, CTX_CONTENT, 1, true);
        } else if (strcmp(name, "system") == 0) {
            sub.fixed += MESSAGE_FRAMING; /* Anthropic's system prompt */
            walk_value(&sub, CTX_CONTENT, 1);
        } else if (strcmp(name, "tools") == 0 || strcmp(name, "functions") == 0 ||
                   strcmp(name, "response_format") == 0) {
            /* A schema is prompt: OpenAI puts response_format's in front of the model, and an
             * Anthropic deployment gets it as the forced tool's input_schema. */
            walk_value(&sub, CTX_RAW, 1);
        } else if (strcmp(name, "input") == 0) {
            walk_value(&sub, CTX_CONTENT, 1); /* an embeddings body's text(s) */
        } else {
            continue;
        }
        w.e = sub.e;
        w.fixed += sub.fixed;
    }
    return (int64_t)ceil(est_done(&w.e) * SAFETY) + w.fixed;
}

/* ---- the output of a whole answer that came without usage ---- */

static int64_t est_str(struct json_object *v)
{
    return pj_is(v, json_type_string)
               ? sg_tokens_estimate_text(json_object_get_string(v),
                                         (size_t)json_object_get_string_len(v))
               : 0;
}

/* A message's content: a string, or parts whose text counts ({"type":"text","text":...}). */
static int64_t est_content(struct json_object *c)
{
    if (!pj_is(c, json_type_array))
        return est_str(c);
    int64_t n = 0;
    for (size_t i = 0, len = json_object_array_length(c); i < len; i++)
        n += est_str(pj_get(json_object_array_get_idx(c, i), "text"));
    return n;
}

/* A string's text, or any other value's compact JSON text (a tool's input). */
static int64_t est_json(struct json_object *v)
{
    if (!v || pj_is(v, json_type_string))
        return est_str(v);
    size_t len;
    const char *t = json_object_to_json_string_length(v, JSON_C_TO_STRING_PLAIN, &len);
    return sg_tokens_estimate_text(t, len);
}

/* A tool call: its name and arguments (a string of JSON, as the model wrote it). */
static int64_t est_function(struct json_object *fn)
{
    return est_str(pj_get(fn, "name")) + est_json(pj_get(fn, "arguments"));
}

int64_t sg_tokens_estimate_answer(const char *body, size_t len)
{
    char err[8];
    struct json_object *root = len ? sg_json_parse_strict(body, len, err, sizeof err) : NULL;
    if (!pj_is(root, json_type_object)) {
        json_object_put(root);
        return -1;
    }
    int64_t n = 0;
    struct json_object *choices = pj_get(root, "choices"), *content = pj_get(root, "content");
    if (pj_is(choices, json_type_array)) { /* a chat.completion */
        for (size_t i = 0, nc = json_object_array_length(choices); i < nc; i++) {
            struct json_object *c = json_object_array_get_idx(choices, i);
            struct json_object *m = pj_get(c, "message");
            n += est_str(pj_get(c, "text")); /* a legacy completion */
            n += est_content(pj_get(m, "content"));
            n += est_str(pj_get(m, "reasoning_content")); /* vLLM's and DeepSeek's reasoning */
            n += est_str(pj_get(m, "refusal"));
            n += est_function(pj_get(m, "function_call"));
            struct json_object *calls = pj_get(m, "tool_calls");
            for (size_t k = 0,
                        nk = pj_is(calls, json_type_array) ? json_object_array_length(calls) : 0;
                 k < nk; k++)
                n += est_function(pj_get(json_object_array_get_idx(calls, k), "function"));
        }
    } else if (pj_is(content, json_type_array)) { /* a Messages answer */
        for (size_t i = 0, nb = json_object_array_length(content); i < nb; i++) {
            struct json_object *b = json_object_array_get_idx(content, i);
            n += est_str(pj_get(b, "text")) + est_str(pj_get(b, "thinking"));
            if (pj_get(b, "input")) /* tool_use */
                n += est_str(pj_get(b, "name")) + est_json(pj_get(b, "input"));
        }
    }
    json_object_put(root);
    return n;
}
