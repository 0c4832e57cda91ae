/*
 * The mock's checks of content parts (OpenAI) and content blocks (Anthropic): the shapes each
 * provider takes, and the refusals it answers with, so a test through the gateway sees what the
 * real provider would do with a translated image or document.
 */
#include "mock/mock.h"
#include "provider/provider.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errn, __VA_ARGS__);                                                          \
        return SG_EINVAL;                                                                          \
    } while (0)

static const char *str_of(struct json_object *o, const char *k)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static struct json_object *obj_of(struct json_object *o, const char *k)
{
    struct json_object *v;
    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_object))
        return NULL;
    return v;
}

static bool one_of(const char *s, const char *const *list)
{
    for (; s && *list; list++)
        if (strcmp(s, *list) == 0)
            return true;
    return false;
}

/* OpenAI: one part of message `mi` with role `role`. */
static int openai_part(struct json_object *p, const char *role, size_t mi, size_t pi, char *err,
                       size_t errn)
{
    static const char *const user[] = {"text", "image_url", "input_audio", "file", NULL};
    static const char *const assistant[] = {"text", "refusal", NULL};
    static const char *const text_only[] = {"text", NULL};
    const char *type = str_of(p, "type");
    if (!type)
        FAIL("Missing required parameter: 'messages[%zu].content[%zu].type'.", mi, pi);
    bool is_user = strcmp(role, "user") == 0, is_assistant = strcmp(role, "assistant") == 0;
    const char *const *ok = is_user ? user : is_assistant ? assistant : text_only;
    if (!one_of(type, ok))
        FAIL("Invalid value: '%.40s'. Supported values are: %s.", type,
             is_user        ? "'text', 'image_url', 'input_audio', and 'file'"
             : is_assistant ? "'text' and 'refusal'"
                            : "'text'");
    if (strcmp(type, "image_url") == 0) {
        struct json_object *iu = obj_of(p, "image_url");
        if (!str_of(iu, "url"))
            FAIL("Missing required parameter: 'messages[%zu].content[%zu].image_url.url'.", mi, pi);
    } else if (strcmp(type, "input_audio") == 0) {
        struct json_object *a = obj_of(p, "input_audio");
        if (!str_of(a, "data") || !str_of(a, "format"))
            FAIL("Missing required parameter: 'messages[%zu].content[%zu].input_audio.data'.", mi,
                 pi);
    } else if (strcmp(type, "file") == 0) {
        struct json_object *f = obj_of(p, "file");
        const char *data = str_of(f, "file_data");
        /* OpenAI names file_id when file_data comes without the filename it needs. */
        if (!str_of(f, "file_id") && (!data || !str_of(f, "filename")))
            FAIL("Missing required parameter: 'messages[%zu].content[%zu].file.file_id'.", mi, pi);
        struct sg_slice mt, b64;
        if (data && !sg_data_url(data, strlen(data), &mt, &b64))
            FAIL("Invalid value for 'messages[%zu].content[%zu].file.file_data': expected a "
                 "base64-encoded data URL.",
                 mi, pi);
    } else if (!str_of(p, strcmp(type, "refusal") == 0 ? "refusal" : "text")) {
        FAIL("Missing required parameter: 'messages[%zu].content[%zu].%s'.", mi, pi,
             strcmp(type, "refusal") == 0 ? "refusal" : "text");
    }
    return SG_OK;
}

/* Anthropic: an image or document block's source. `at` is the block's path. */
static int anthropic_source(struct json_object *b, bool document, const char *at, char *err,
                            size_t errn)
{
    static const char *const images[] = {"image/jpeg", "image/png", "image/gif", "image/webp",
                                         NULL};
    const char *kind = document ? "document" : "image";
    struct json_object *src = obj_of(b, "source");
    const char *st = str_of(src, "type");
    if (!st)
        FAIL("%s.%s.source: Field required", at, kind);
    if (strcmp(st, "base64") == 0) {
        const char *mt = str_of(src, "media_type");
        if (document ? !mt || strcmp(mt, "application/pdf") != 0 : !one_of(mt, images))
            FAIL("%s.%s.source.base64.media_type: Input should be %s", at, kind,
                 document ? "'application/pdf'"
                          : "'image/jpeg', 'image/png', 'image/gif' or 'image/webp'");
        if (!str_of(src, "data"))
            FAIL("%s.%s.source.base64.data: Field required", at, kind);
    } else if (strcmp(st, "url") == 0) {
        if (!str_of(src, "url"))
            FAIL("%s.%s.source.url.url: Field required", at, kind);
    } else if (strcmp(st, "file") == 0) {
        if (!str_of(src, "file_id"))
            FAIL("%s.%s.source.file.file_id: Field required", at, kind);
    } else if (document && strcmp(st, "text") == 0) {
        const char *mt = str_of(src, "media_type");
        if (!mt || strcmp(mt, "text/plain") != 0)
            FAIL("%s.document.source.text.media_type: Input should be 'text/plain'", at);
        if (!str_of(src, "data"))
            FAIL("%s.document.source.text.data: Field required", at);
    } else if (document && strcmp(st, "content") == 0) {
        struct json_object *c;
        if (!json_object_object_get_ex(src, "content", &c) ||
            (!json_object_is_type(c, json_type_string) && !json_object_is_type(c, json_type_array)))
            FAIL("%s.document.source.content.content: Field required", at);
    } else {
        FAIL("%s.%s.source: Input tag '%.40s' found using 'type' does not match any of the "
             "expected tags: %s",
             at, kind, st,
             document ? "'base64', 'content', 'file', 'text', 'url'" : "'base64', 'file', 'url'");
    }
    return SG_OK;
}

static int anthropic_blocks(struct json_object *content, const char *at, bool in_tool_result,
                            char *err, size_t errn);

/* Anthropic: one block of a user turn (or of a tool_result's content). */
static int anthropic_block(struct json_object *b, const char *at, bool in_tool_result, char *err,
                           size_t errn)
{
    static const char *const user[] = {"text",        "image",         "document",
                                       "tool_result", "search_result", NULL};
    static const char *const result[] = {"text", "image", "document", "search_result", NULL};
    const char *type = str_of(b, "type");
    if (!type)
        FAIL("%s.type: Field required", at);
    if (!one_of(type, in_tool_result ? result : user))
        FAIL("%s: Input tag '%.40s' found using 'type' does not match any of the expected tags: "
             "%s",
             at, type,
             in_tool_result ? "'document', 'image', 'search_result', 'text'"
                            : "'document', 'image', 'search_result', 'text', 'tool_result'");
    if (strcmp(type, "text") == 0 && !str_of(b, "text"))
        FAIL("%s.text.text: Field required", at);
    if (strcmp(type, "image") == 0 || strcmp(type, "document") == 0)
        return anthropic_source(b, type[0] == 'd', at, err, errn);
    if (strcmp(type, "tool_result") == 0) {
        struct json_object *c;
        if (!str_of(b, "tool_use_id"))
            FAIL("%s.tool_result.tool_use_id: Field required", at);
        if (json_object_object_get_ex(b, "content", &c) && json_object_is_type(c, json_type_array))
            return anthropic_blocks(c, at, true, err, errn);
    }
    return SG_OK;
}

static int anthropic_blocks(struct json_object *content, const char *at, bool in_tool_result,
                            char *err, size_t errn)
{
    for (size_t i = 0, n = json_object_array_length(content); i < n; i++) {
        char path[96];
        snprintf(path, sizeof path, "%s%s.%zu", at, in_tool_result ? ".tool_result.content" : "",
                 i);
        if (anthropic_block(json_object_array_get_idx(content, i), path, in_tool_result, err,
                            errn) != SG_OK)
            return SG_EINVAL;
    }
    return SG_OK;
}

int sg_mock_check_parts(enum sg_mock_api api, const char *role, struct json_object *content,
                        size_t mi, char *err, size_t errn)
{
    if (!json_object_is_type(content, json_type_array))
        return SG_OK;
    size_t n = json_object_array_length(content);
    if (api == SG_MOCK_API_ANTHROPIC) {
        if (strcmp(role, "user") != 0)
            return SG_OK; /* assistant turns: text, tool_use, thinking... not checked */
        char at[48];
        snprintf(at, sizeof at, "messages.%zu.content", mi);
        return anthropic_blocks(content, at, false, err, errn);
    }
    for (size_t i = 0; i < n; i++) {
        struct json_object *p = json_object_array_get_idx(content, i);
        if (!json_object_is_type(p, json_type_object))
            FAIL("Invalid type for 'messages[%zu].content[%zu]': expected an object.", mi, i);
        if (openai_part(p, role, mi, i, err, errn) != SG_OK)
            return SG_EINVAL;
    }
    return SG_OK;
}
