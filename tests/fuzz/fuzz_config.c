/*
 * libFuzzer target for the config loader: arbitrary bytes through libyaml, the node tree
 * (aliases, merge keys, duplicate keys, depth) and the typed loader. Everything loaded is
 * freed, so the replay run under ASan also catches leaks.
 *
 * An input with lines `#file: NAME` is a set of files: what comes before the first such line is
 * main.yaml, and each `#file:` line starts the file NAME (letters, digits, `.`, `_`, `-`, at
 * most one `/` for a subfolder). They are written to a fresh folder and main.yaml is loaded
 * from there with sg_config_load_file, so `include:` (nested includes, lists extended across
 * files, repeats and cycles, subfolders) is fuzzed too; the folder is removed before the next
 * input. Any other input is loaded from memory.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config/config.h"
#include "fuzz.h"

#define MARK "#file: "
#define MAX_FILES 16

/* A deterministic environment: names starting with UNSET are unset, EMPTY are empty, and
 * every other name resolves, so both the error and the success paths are reachable. */
static const char *fuzz_env(const char *name, void *ud)
{
    (void)ud;
    if (strncmp(name, "UNSET", 5) == 0)
        return NULL;
    if (strncmp(name, "EMPTY", 5) == 0)
        return "";
    if (strncmp(name, "NUM", 3) == 0)
        return "7";
    return "https://env.example/v1";
}

/* The folder of one input's files: made for each input that has some, removed after it. */
static char folder[200];

static void make_folder(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(folder, sizeof folder, "%.150s/sg-fuzz-config-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    check(mkdtemp(folder) != NULL);
}

static bool name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '.' || ch == '_' || ch == '-';
}

/* A file name the input may use: at most one subfolder, no `.` or `..` component. */
static bool good_name(const char *s, size_t n)
{
    size_t slashes = 0, part = 0;
    if (n == 0 || n > 40)
        return false;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || s[i] == '/') {
            if (part == 0 || (part == 1 && s[i - 1] == '.') ||
                (part == 2 && s[i - 1] == '.' && s[i - 2] == '.'))
                return false;
            if (i < n && ++slashes > 1)
                return false;
            part = 0;
        } else if (!name_char(s[i])) {
            return false;
        } else {
            part++;
        }
    }
    return true;
}

struct written {
    char path[256];
    char sub[256]; /* the subfolder made for it, or "" */
};

static void write_file(struct written *w, const char *name, size_t name_len, const uint8_t *data,
                       size_t size)
{
    const char *slash = memchr(name, '/', name_len);
    w->sub[0] = '\0';
    if (slash) {
        snprintf(w->sub, sizeof w->sub, "%s/%.*s", folder, (int)(slash - name), name);
        if (mkdir(w->sub, 0700) != 0)
            w->sub[0] = '\0'; /* there already, made by an earlier file of this input */
    }
    snprintf(w->path, sizeof w->path, "%s/%.*s", folder, (int)name_len, name);
    FILE *f = fopen(w->path, "wb");
    if (!f) { /* a name that is a subfolder of this input already */
        w->path[0] = '\0';
        return;
    }
    check(fwrite(data, 1, size, f) == size || size == 0);
    check(fclose(f) == 0);
}

/* The input as files; the number written into w, or 0 when the input has no `#file:` line. */
static size_t write_files(const uint8_t *data, size_t size, struct written *w)
{
    const char *s = (const char *)data, *end = s + size;
    size_t n = 0;
    const char *name = "main.yaml", *at = s;
    size_t name_len = strlen(name);
    for (const char *p = s; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *next = eol ? eol + 1 : end;
        size_t mark = strlen(MARK);
        if ((size_t)(end - p) > mark && memcmp(p, MARK, mark) == 0) {
            if (n == MAX_FILES)
                break;
            if (n == 0)
                make_folder();
            write_file(&w[n++], name, name_len, (const uint8_t *)at, (size_t)(p - at));
            name = p + mark;
            name_len = (size_t)((eol ? eol : end) - name);
            if (!good_name(name, name_len) ||
                (name_len == 9 && memcmp(name, "main.yaml", 9) == 0)) {
                name = "ignored";
                name_len = strlen(name);
            }
            at = next;
        }
        p = next;
    }
    if (n == 0)
        return 0;
    if (n < MAX_FILES)
        write_file(&w[n++], name, name_len, (const uint8_t *)at, (size_t)(end - at));
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sg_diags d;
    sg_diags_init(&d);
    struct written w[MAX_FILES];
    size_t n_files = write_files(data, size, w);
    struct sg_config *c;
    if (n_files) {
        c = sg_config_load_file(w[0].path, fuzz_env, NULL, &d);
        for (size_t i = n_files; i-- > 0;) {
            if (w[i].path[0])
                unlink(w[i].path);
            if (w[i].sub[0])
                rmdir(w[i].sub);
        }
        check(rmdir(folder) == 0);
    } else {
        c = sg_config_load_string((const char *)data, size, "fuzz.yaml", fuzz_env, NULL, &d);
    }
    if (c) {
        /* Touch what the rest of the gateway reads, so a dangling pointer shows up here. */
        for (size_t i = 0; i < c->n_groups; i++) {
            const struct sg_group *g =
                c->groups[i].alias
                    ? sg_config_group(c, c->groups[i].alias, strlen(c->groups[i].alias))
                    : NULL;
            for (size_t j = 0; g && j < g->n; j++)
                (void)strlen(g->deployments[j]->id);
        }
        for (size_t i = 0; i < c->n_features; i++)
            (void)sg_config_feature(c, c->features[i].name, strlen(c->features[i].name));
        sg_config_ref(c);
        sg_config_unref(c);
        sg_config_unref(c);
    }
    for (size_t i = 0; i < d.n; i++)
        (void)strlen(d.v[i].msg);
    sg_diags_dispose(&d);
    return 0;
}
