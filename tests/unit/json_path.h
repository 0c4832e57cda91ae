/* Unit-test helpers: a value inside a json-c tree by a path of member names and array indexes,
 * like "messages.0.content.1.text". Header-only (static inline), for the tests that read JSON. */
#ifndef SG_TEST_JSON_PATH_H
#define SG_TEST_JSON_PATH_H

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The value at `path`, or NULL. */
static inline struct json_object *json_path(struct json_object *j, const char *path)
{
    char p[256];
    snprintf(p, sizeof p, "%s", path);
    char *save = NULL;
    for (char *tok = strtok_r(p, ".", &save); tok && j; tok = strtok_r(NULL, ".", &save)) {
        if (json_object_is_type(j, json_type_array))
            j = json_object_array_get_idx(j, (size_t)atoi(tok));
        else if (!json_object_object_get_ex(j, tok, &j))
            j = NULL;
    }
    return j;
}

/* The value at `path` as compact JSON text, or "(missing)". The text lives until the next call. */
static inline const char *json_path_text(struct json_object *j, const char *path)
{
    static char buf[4096];
    struct json_object *v = json_path(j, path);
    if (!v)
        return "(missing)";
    snprintf(
        buf, sizeof buf, "%s",
        json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
    return buf;
}

#endif
