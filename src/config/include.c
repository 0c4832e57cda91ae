/*
 * LiteLLM's `include:` — a config names other YAML files whose sections join its own.
 *
 * LiteLLM's proxy (proxy_server.py, _process_includes) reads each file of the top-level
 * `include` list, relative to the main config's folder; for each top-level key of an included
 * file it extends the config's list of that name when both are lists (model_list grows), and
 * otherwise sets the key, replacing a section the config already has. A file it cannot find
 * stops it, and an `include` inside an included file is followed too (its paths still relative
 * to the main config's folder). slogate merges the same way, says when an included section
 * replaces one, and reads each file once (LiteLLM would load a repeated file's entries twice,
 * and loop forever on a cycle): a repeat is a warning and skipped.
 *
 * The merged top level borrows the files' nodes: only the containers built here (the merged
 * mapping, the extended lists) are owned, and each file's tree lives until the load ends.
 */
#include "config_int.h"

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* More files than any modular config needs; a bound against a generated include list. */
#define SG_INCLUDE_MAX_FILES 64

struct inc_file {
    char *name; /* as messages show it: the main config's folder joined with the path */
    char *real; /* realpath(3), to include each file once */
    struct sg_ynode *root;
    const char *from; /* the file whose include: names it first, and the line */
    int line;
};

/* One piece of a list that includes extended: the list as one file wrote it. */
struct seg {
    const struct sg_ynode *list;
    const char *file;
};

/* A top-level key of the merged config. */
struct mpair {
    const struct sg_ynode *key, *val;
    const char *file; /* where the value in effect was written (the first piece of a list) */
    struct seg *segs; /* a list extended by includes: its pieces in order; else NULL */
    size_t n_segs;
};

/* An `include` entry still to read, and the file that lists it. */
struct pending {
    const struct sg_ynode *item;
    const char *from;
};

struct sg_cfg_includes {
    struct inc_file *files;
    size_t n_files;
    struct sg_ynode *root;   /* the merged mapping: pairs borrowed */
    struct sg_ynode **lists; /* the extended lists: items borrowed */
    size_t n_lists;
    const char **pair_file;
    const char **item_file;
    size_t *item_index;
};

struct merge {
    struct sg_cfg_loader *ld;
    struct sg_cfg_includes *inc;
    struct mpair *pairs;
    size_t n_pairs;
    struct sg_map by_key; /* key -> index + 1 into pairs: merge keys may make a file long */
    struct pending *queue;
    size_t n_queue;
    size_t bytes; /* read from included files so far */
};

static void queue_list(struct merge *m, const struct sg_ynode *list, const char *from)
{
    struct sg_cfg_loader *ld = m->ld;
    ld->file = from;
    if (list->kind != SG_YSEQ) {
        sg_cfg_err(ld, list->line,
                   "include must be a list of files, e.g. include: [models.yaml] (LiteLLM "
                   "refuses anything else too)");
        return;
    }
    m->queue = sg_xrealloc(m->queue, (m->n_queue + list->n + 1) * sizeof *m->queue);
    for (size_t i = 0; i < list->n; i++)
        m->queue[m->n_queue++] = (struct pending){list->items[i], from};
}

static struct mpair *find_pair(struct merge *m, const struct sg_ynode *key)
{
    uintptr_t i = (uintptr_t)sg_map_get(&m->by_key, key->s, key->len);
    return i ? &m->pairs[i - 1] : NULL;
}

static struct mpair *add_pair(struct merge *m, const struct sg_ynode *key)
{
    m->pairs = sg_xrealloc(m->pairs, (m->n_pairs + 1) * sizeof *m->pairs);
    struct mpair *p = &m->pairs[m->n_pairs++];
    *p = (struct mpair){.key = key};
    sg_map_put(&m->by_key, key->s, key->len, (void *)(uintptr_t)m->n_pairs);
    return p;
}

static void add_seg(struct mpair *p, const struct sg_ynode *list, const char *file)
{
    p->segs = sg_xrealloc(p->segs, (p->n_segs + 1) * sizeof *p->segs);
    p->segs[p->n_segs++] = (struct seg){list, file};
}

/* One top-level `key: value` of an included file joins the merged config. */
static void merge_pair(struct merge *m, const struct sg_ynode *k, const struct sg_ynode *v,
                       const char *file)
{
    struct sg_cfg_loader *ld = m->ld;
    struct mpair *p = find_pair(m, k);
    ld->file = file;
    if (p && v->kind == SG_YSEQ && p->val->kind == SG_YSEQ) {
        if (!p->n_segs)
            add_seg(p, p->val, p->file);
        add_seg(p, v, file);
        return;
    }
    if (p && v->kind == SG_YSEQ && !sg_ynode_is_null(p->val)) {
        sg_cfg_err(ld, k->line,
                   "%.60s: this list cannot extend the %.60s of %.200s (line %d), which is not a "
                   "list; make both lists or keep one",
                   k->s, k->s, p->file, p->key->line);
        return;
    }
    if (!p) {
        p = add_pair(m, k);
    } else if (!sg_ynode_is_null(p->val)) {
        sg_cfg_warn(ld, k->line,
                    "%.60s replaces the %.60s of %.200s (line %d): an included file's section "
                    "takes the place of one the config has (as LiteLLM merges includes; only "
                    "lists such as model_list are extended)",
                    k->s, k->s, p->file, p->key->line);
    }
    free(p->segs);
    p->segs = NULL;
    p->n_segs = 0;
    p->key = k;
    p->val = v;
    p->file = file;
}

/* "dir/path", or path itself when it is absolute. */
static char *join(const char *dir, const char *path)
{
    if (path[0] == '/' || !*dir || strcmp(dir, ".") == 0)
        return sg_xstrdup(path);
    return sg_xasprintf("%s%s%s", dir, dir[strlen(dir) - 1] == '/' ? "" : "/", path);
}

/* Read a whole regular file of at most `max` bytes into b; an error message into err. */
static bool read_file(const char *name, size_t max, struct sg_buf *b, char *err, size_t n)
{
    struct stat st;
    if (stat(name, &st) != 0) {
        snprintf(err, n, "%s", strerror(errno));
        return false;
    }
    if (!S_ISREG(st.st_mode)) {
        snprintf(err, n, "it is not a regular file");
        return false;
    }
    if ((uint64_t)st.st_size > max) {
        snprintf(err, n, "the config and its includes pass %u MiB together",
                 SG_CONFIG_MAX_FILE >> 20);
        return false;
    }
    FILE *f = fopen(name, "rb");
    if (!f) {
        snprintf(err, n, "%s", strerror(errno));
        return false;
    }
    int rc = sg_cfg_read_all(f, max, b);
    bool ok = rc == SG_OK;
    if (!ok) {
        snprintf(err, n, "%s", rc == SG_ETOOBIG ? "it grew past the size limit" : strerror(rc));
        sg_buf_dispose(b);
    }
    fclose(f);
    return ok;
}

/* Read and merge one file named by an `include` entry. */
static void include_one(struct merge *m, const struct pending *pe, const char *base_dir)
{
    struct sg_cfg_loader *ld = m->ld;
    struct sg_cfg_includes *inc = m->inc;
    const struct sg_ynode *item = pe->item;
    char err[160];
    ld->file = pe->from;
    if (item->kind != SG_YSCALAR || sg_ynode_is_null(item) || !item->len ||
        strlen(item->s) != item->len) {
        sg_cfg_err(ld, item->line,
                   "include: each entry is the path of a YAML file, e.g. "
                   "models.yaml");
        return;
    }
    if (inc->n_files == SG_INCLUDE_MAX_FILES) {
        sg_cfg_err(ld, item->line, "include: more than %d files; merge some of them",
                   SG_INCLUDE_MAX_FILES);
        return;
    }
    char *name = join(base_dir, item->s);
    char real[PATH_MAX];
    struct sg_buf b;
    bool found = realpath(name, real) != NULL;
    if (!found)
        snprintf(err, sizeof err, "%s",
                 errno == ENOENT || errno == ENOTDIR ? "no such file" : strerror(errno));
    if (!found || !read_file(name, SG_CONFIG_MAX_FILE - m->bytes, &b, err, sizeof err)) {
        sg_cfg_err(ld, item->line,
                   "include: cannot read %.200s: %s (paths are relative to the main config's "
                   "folder, as in LiteLLM, which stops on a missing file too)",
                   name, err);
        free(name);
        return;
    }
    for (size_t i = 0; i < inc->n_files; i++) {
        if (strcmp(inc->files[i].real, real) != 0)
            continue;
        /* LiteLLM would read it again: its entries twice, or forever when it is a cycle. */
        if (i == 0)
            sg_cfg_warn(ld, item->line,
                        "include: %.200s is the config itself: skipped; remove this entry", name);
        else
            sg_cfg_warn(ld, item->line,
                        "include: %.200s is included already (%.200s line %d): skipped; name "
                        "each file once",
                        name, inc->files[i].from, inc->files[i].line);
        free(name);
        sg_buf_dispose(&b);
        return;
    }
    m->bytes += b.len;
    bool empty = false;
    struct sg_ynode *root = sg_yaml_parse(b.data ? b.data : "", b.len, name, ld->d, &empty);
    sg_buf_dispose(&b);
    inc->files = sg_xrealloc(inc->files, (inc->n_files + 1) * sizeof *inc->files);
    inc->files[inc->n_files++] =
        (struct inc_file){name, sg_xstrdup(real), root, pe->from, item->line};
    if (!root) {
        if (empty)
            sg_cfg_warn(ld, item->line, "include: %.200s is empty: nothing to include", name);
        return;
    }
    if (root->kind != SG_YMAP) {
        ld->file = name;
        sg_cfg_err(ld, root->line,
                   "an included file must be a mapping of sections (model_list:, "
                   "litellm_settings:, ...), like the config itself");
        return;
    }
    for (size_t i = 0; i < root->n; i++) {
        const struct sg_ynode *k = root->pairs[i].key, *v = root->pairs[i].val;
        if (k->len == 7 && memcmp(k->s, "include", 7) == 0)
            queue_list(m, v, name);
        else
            merge_pair(m, k, v, name);
    }
}

static struct sg_ynode *synth(enum sg_ykind kind, int line)
{
    struct sg_ynode *n = sg_xcalloc(1, sizeof *n);
    n->kind = kind;
    n->line = line;
    return n;
}

/* The merged mapping (and the lists includes extended) as nodes the loader walks. */
static void build(struct merge *m, struct sg_cfg_doc *doc)
{
    struct sg_cfg_includes *inc = m->inc;
    int line = m->n_pairs ? m->pairs[0].key->line : 1;
    inc->root = synth(SG_YMAP, line);
    inc->root->pairs = sg_xcalloc(m->n_pairs ? m->n_pairs : 1, sizeof *inc->root->pairs);
    inc->pair_file = sg_xcalloc(m->n_pairs ? m->n_pairs : 1, sizeof *inc->pair_file);
    inc->lists = sg_xcalloc(m->n_pairs ? m->n_pairs : 1, sizeof *inc->lists);
    for (size_t i = 0; i < m->n_pairs; i++) {
        struct mpair *p = &m->pairs[i];
        const struct sg_ynode *val = p->val;
        if (p->n_segs) {
            struct sg_ynode *list = synth(SG_YSEQ, p->segs[0].list->line);
            for (size_t s = 0; s < p->n_segs; s++)
                list->n += p->segs[s].list->n;
            list->items = sg_xcalloc(list->n ? list->n : 1, sizeof *list->items);
            list->n = 0;
            for (size_t s = 0; s < p->n_segs; s++)
                for (size_t k = 0; k < p->segs[s].list->n; k++)
                    list->items[list->n++] = p->segs[s].list->items[k];
            inc->lists[inc->n_lists++] = list;
            val = list;
        }
        inc->root->pairs[i].key = (struct sg_ynode *)p->key;
        inc->root->pairs[i].val = (struct sg_ynode *)val;
        inc->root->n++;
        inc->pair_file[i] = p->file;
        if (p->key->len == 10 && memcmp(p->key->s, "model_list", 10) == 0 && val->kind == SG_YSEQ) {
            /* Which file, and which index in it, each entry of the merged model_list has. */
            inc->item_file = sg_xcalloc(val->n ? val->n : 1, sizeof *inc->item_file);
            inc->item_index = sg_xcalloc(val->n ? val->n : 1, sizeof *inc->item_index);
            size_t o = 0;
            for (size_t s = 0; s < (p->n_segs ? p->n_segs : 1); s++) {
                const struct sg_ynode *piece = p->n_segs ? p->segs[s].list : val;
                for (size_t k = 0; k < piece->n; k++, o++) {
                    inc->item_file[o] = p->n_segs ? p->segs[s].file : p->file;
                    inc->item_index[o] = k;
                }
            }
            doc->item_file = inc->item_file;
            doc->item_index = inc->item_index;
        }
    }
    doc->root = inc->root;
    doc->pair_file = inc->pair_file;
}

struct sg_cfg_includes *sg_cfg_include(struct sg_cfg_loader *ld, const struct sg_ynode *main_root,
                                       const char *base_dir, struct sg_cfg_doc *doc)
{
    struct sg_cfg_includes *inc = sg_xcalloc(1, sizeof *inc);
    struct merge m = {.ld = ld, .inc = inc};
    const struct sg_ynode *list = NULL;
    for (size_t i = 0; i < main_root->n; i++) {
        const struct sg_ynode *k = main_root->pairs[i].key;
        if (k->len == 7 && memcmp(k->s, "include", 7) == 0) {
            list = main_root->pairs[i].val;
            continue;
        }
        struct mpair *p = add_pair(&m, k);
        p->val = main_root->pairs[i].val;
        p->file = ld->main_file;
    }
    if (list && !base_dir) {
        ld->file = ld->main_file;
        sg_cfg_err(ld, list->line,
                   "include names files relative to the config's folder, but this config was "
                   "not read from a file: check the file itself (slogate check -c FILE)");
    } else if (list) {
        /* The config itself counts as included: a file that includes it is a cycle. */
        char real[PATH_MAX];
        inc->files = sg_xcalloc(1, sizeof *inc->files);
        inc->files[0] = (struct inc_file){sg_xstrdup(ld->main_file),
                                          sg_xstrdup(realpath(ld->main_file, real) ? real : ""),
                                          NULL, ld->main_file, 0};
        inc->n_files = 1;
        queue_list(&m, list, ld->main_file);
        for (size_t q = 0; q < m.n_queue; q++) /* grows as included files add their own */
            include_one(&m, &m.queue[q], base_dir);
    }
    build(&m, doc);
    for (size_t i = 0; i < m.n_pairs; i++)
        free(m.pairs[i].segs);
    free(m.pairs);
    free(m.queue);
    sg_map_dispose(&m.by_key);
    ld->file = ld->main_file;
    return inc;
}

void sg_cfg_includes_free(struct sg_cfg_includes *inc)
{
    if (!inc)
        return;
    for (size_t i = 0; i < inc->n_files; i++) {
        free(inc->files[i].name);
        free(inc->files[i].real);
        sg_yaml_free(inc->files[i].root);
    }
    free(inc->files);
    for (size_t i = 0; i < inc->n_lists; i++) {
        free(inc->lists[i]->items);
        free(inc->lists[i]);
    }
    free(inc->lists);
    if (inc->root) {
        free(inc->root->pairs);
        free(inc->root);
    }
    free(inc->pair_file);
    free(inc->item_file);
    free(inc->item_index);
    free(inc);
}
