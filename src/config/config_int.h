/*
 * config internals: the YAML node tree the typed loader walks, and the diagnostics helper
 * the two layers share. Nothing here crosses the module boundary.
 */
#ifndef SG_CONFIG_INT_H
#define SG_CONFIG_INT_H

#include "config.h"

/* Limits that keep a hostile or broken file from exhausting the process. */
#define SG_YAML_MAX_DEPTH 64               /* nested collections */
#define SG_YAML_MAX_ALIAS_NODES 50000u     /* nodes created by expanding aliases */
#define SG_YAML_MAX_ALIAS_BYTES (8u << 20) /* scalar bytes copied by expanding aliases */
#define SG_CONFIG_MAX_FILE (16u << 20)     /* bytes read from a config file */

enum sg_ykind { SG_YSCALAR, SG_YSEQ, SG_YMAP };

struct sg_ynode;

/* One `key: value` of a mapping. The key is always a scalar (others are rejected). */
struct sg_ypair {
    struct sg_ynode *key;
    struct sg_ynode *val;
};

/*
 * A node of the document. Aliases are expanded into copies, so the tree is a tree: every node
 * has one owner and freeing the root frees everything.
 */
struct sg_ynode {
    enum sg_ykind kind;
    int line;   /* 1-based line where the node starts */
    bool plain; /* scalar written without quotes or tag: may mean null, a bool or a number */
    char *s;    /* scalar text, NUL-terminated (may hold NULs inside: see len) */
    size_t len;
    struct sg_ynode **items; /* SG_YSEQ */
    struct sg_ypair *pairs;  /* SG_YMAP, in document order, keys unique */
    size_t n, cap;
    /* For the alias budget: nodes and scalar bytes in this subtree, and its height. */
    size_t size, bytes;
    unsigned height;
};

/*
 * Parse one YAML document into a tree. Syntax errors, duplicate keys, undefined or recursive
 * aliases and limit violations are added to `d` with `file` and a line. Returns the root, or
 * NULL when the document could not be built (an error was added) or holds nothing (in which
 * case *empty is set and nothing is added). The caller frees the tree with sg_yaml_free.
 */
struct sg_ynode *sg_yaml_parse(const char *buf, size_t len, const char *file, struct sg_diags *d,
                               bool *empty);
void sg_yaml_free(struct sg_ynode *n);

/* A scalar that YAML reads as null: plain "", "~", "null", "Null", "NULL". */
bool sg_ynode_is_null(const struct sg_ynode *n);
/* The value under `key` in a mapping, or NULL. */
const struct sg_ynode *sg_ynode_get(const struct sg_ynode *map, const char *key);

void sg_diags_vadd(struct sg_diags *d, enum sg_diag_severity sev, const char *file, int line,
                   const char *fmt, va_list ap) SG_PRINTF(5, 0);
/* Stable-sort the diagnostics from index `from` on by line, so they read in source order. */
void sg_diags_sort_from(struct sg_diags *d, size_t from);

/* ---- the table-driven loader (table.c), shared by config.c and sections.c ---- */

/*
 * The top level after LiteLLM's `include:` (include.c): the main file's mapping with each
 * included file's sections merged in, as LiteLLM merges them (a list extends the list of the
 * same name, anything else replaces the section). The nodes are borrowed from the files'
 * trees; `files` says which file each top-level pair and each model_list entry was written
 * in, so a message names the right file and line.
 */
struct sg_cfg_doc {
    const struct sg_ynode *root;  /* the merged top-level mapping */
    const char *const *pair_file; /* per root pair; NULL: all in the main file */
    const char *const *item_file; /* per model_list entry; NULL: all in the main file */
    const size_t *item_index;     /* per entry: its index in its own file's model_list */
};

struct sg_cfg_loader {
    const char *file; /* where the node being read is written: messages name it */
    const char *main_file;
    struct sg_diags *d;
    sg_env_fn env;
    void *env_ud;
    const struct sg_ynode *envvars; /* top-level environment_variables (LiteLLM), or NULL */
    struct sg_config *c;            /* being built */
    const struct sg_cfg_doc *doc;
    size_t groups_cap;   /* c->groups' room: model_group_alias appends to it */
    size_t model_groups; /* c->groups before it: model_list's own */
};

enum sg_cfg_ftype {
    SG_FT_STR,     /* char *; os.environ/NAME resolved; "" is an error */
    SG_FT_URL,     /* char *; http:// or https://, one trailing '/' dropped */
    SG_FT_ENUM,    /* char *; one of `choices` ("a|b|c") */
    SG_FT_BOOL,    /* bool; true/false, yes/no, on/off */
    SG_FT_INT,     /* int */
    SG_FT_I64,     /* int64_t */
    SG_FT_U32,     /* uint32_t */
    SG_FT_DOUBLE,  /* double; finite */
    SG_FT_SECS_MS, /* seconds (a float is fine) stored as uint32_t milliseconds */
    SG_FT_MS,      /* integer milliseconds stored as uint32_t */
    SG_FT_MB,      /* megabytes (a float is fine) stored as size_t bytes */
    SG_FT_MAP,     /* a nested mapping loaded with `sub` at base + off */
    SG_FT_CUSTOM,  /* `custom` does everything */
};

/* Bounds are inclusive unless a flag says otherwise; max >= SG_CFG_NOMAX means no upper bound. */
#define SG_CFG_NOMAX 1e300
enum {
    SG_FL_REQUIRED = 1 << 0,
    SG_FL_GT = 1 << 1, /* min is exclusive */
    SG_FL_LT = 1 << 2, /* max is exclusive */
};

struct sg_cfg_loader;
struct sg_cfg_table;

/* A custom field. Called with v == NULL (and path NULL) to set its default; otherwise with the
 * value node (never a YAML null unless the field is absent-tolerant) and the key's path. `base`
 * is the struct the table fills. */
typedef void (*sg_cfg_custom_fn)(struct sg_cfg_loader *ld, const struct sg_ynode *v,
                                 const char *path, void *base);

struct sg_cfg_field {
    const char *key;
    enum sg_cfg_ftype type;
    size_t off;
    double def;       /* numeric and bool default (seconds for SG_FT_SECS_MS) */
    const char *defs; /* string default, copied; NULL = none */
    double min, max;
    unsigned flags;
    const char *choices;            /* SG_FT_ENUM: "a|b|c" */
    const char *hint;               /* appended to "is required" errors */
    const struct sg_cfg_table *sub; /* SG_FT_MAP */
    sg_cfg_custom_fn custom;        /* SG_FT_CUSTOM */
};

/* A LiteLLM key slogate knows but does not implement; hint (optional) says what to use. */
struct sg_cfg_ignored {
    const char *key;
    const char *hint;
};

struct sg_cfg_table {
    const struct sg_cfg_field *fields;
    size_t n;
    const struct sg_cfg_ignored *litellm; /* terminated by {NULL}; may be NULL */
};

#define SG_CFG_PATH_MAX 256

void sg_cfg_err(struct sg_cfg_loader *ld, int line, const char *fmt, ...) SG_PRINTF(3, 4);
void sg_cfg_warn(struct sg_cfg_loader *ld, int line, const char *fmt, ...) SG_PRINTF(3, 4);
/* Defaults for every field of `t`, then the values found in `node` (NULL or a YAML null means
 * "section absent": defaults only). Unknown keys warn; missing required keys are errors. */
void sg_cfg_load(struct sg_cfg_loader *ld, const struct sg_ynode *node, const char *path,
                 const struct sg_cfg_table *t, void *base);
void sg_cfg_defaults(struct sg_cfg_loader *ld, const struct sg_cfg_table *t, void *base);
/* One field's value `v` (not NULL) into base, as a table would load it; `path` names it. */
void sg_cfg_value(struct sg_cfg_loader *ld, const struct sg_cfg_field *f, const struct sg_ynode *v,
                  const char *path, void *base);
void sg_cfg_values(struct sg_cfg_loader *ld, const struct sg_ynode *node, const char *path,
                   const struct sg_cfg_table *t, void *base);
/* The text of a scalar with os.environ/NAME resolved; NULL after an error. *env_name (may be
 * NULL) receives the variable's name when the text came from the environment. */
const char *sg_cfg_text(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                        const char **env_name);
/* An environment variable: the config's environment_variables first, then the env function. */
const char *sg_cfg_env(struct sg_cfg_loader *ld, const char *name);
/* A string value (scalar, not null, not empty) as a fresh heap copy; NULL after an error. */
char *sg_cfg_string(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path);
/* An http:// or https:// URL with a host and no space or control character. */
bool sg_cfg_url_ok(const char *s);
/* YAML 1.1 booleans as PyYAML reads them (true/false, yes/no, on/off). */
bool sg_cfg_parse_bool(const char *s, bool *out);
/* Parse a number; false on junk, NaN or infinity. */
bool sg_cfg_parse_double(const char *s, double *out);
/* The text of a number as PyYAML reads it: a plain (unquoted) scalar such as 10_000 or
 * 0.000_15 loses its '_' separators (YAML 1.1) into buf; anything else is returned as is. */
const char *sg_cfg_number_text(const struct sg_ynode *v, const char *t, const char *env_name,
                               char *buf, size_t n);
/* "path.key" (or "key" at the top), with unprintable bytes shown as '?'. */
void sg_cfg_child(char *out, const char *path, const char *key, size_t klen);
/* "path[i]". */
void sg_cfg_index(char *out, const char *path, size_t i);
/* A short, printable rendering of a value for messages: "\"first\"", "a mapping", ... */
const char *sg_cfg_show(const struct sg_ynode *v, const char *env_name, char *buf, size_t n);
/* Whether `name` is a model_name in model_list that slogate routes (has a deployment). */
bool sg_cfg_has_alias(const struct sg_cfg_loader *ld, const char *name);
/* Whether `name` is a model_name whose entries are all not routed (config.c says why). */
bool sg_cfg_unrouted_alias(const struct sg_cfg_loader *ld, const char *name);
/* Messages from here on name the file the top-level `key` was written in (include:). */
void sg_cfg_at(struct sg_cfg_loader *ld, const char *key);
/* Append a group `alias` that routes to the deployments of the model_list group `target`
 * (model_group_alias); false when there is no such group. O(log groups) each. */
bool sg_cfg_add_alias_group(struct sg_cfg_loader *ld, const char *alias, const char *target,
                            bool hidden);
/* "a, b, c" (at most a few) for "use one of ..." messages; writes into buf. */
const char *sg_cfg_alias_list(const struct sg_cfg_loader *ld, char *buf, size_t n);

/* Wildcard routes (wildcard.c). Why an entry with '*' in its model_name or model cannot be
 * served as LiteLLM's pattern router would (into `why`), or NULL when it can or has no '*'. */
const char *sg_cfg_wild_unrouted(const char *name, size_t name_len, const char *model, char *why,
                                 size_t n);
/* Once model_list's groups are built: each group's stars, and the routes in LiteLLM's order
 * (c->patterns), with the left-out ones apart (c->unrouted_patterns). */
void sg_cfg_index_patterns(struct sg_cfg_loader *ld);
void sg_cfg_free_patterns(struct sg_config *c);
/* The group `alias` when a deployment of it has a '*' in its model, which only a client's name
 * fills: such a group cannot be a fallback or model_group_alias target. NULL otherwise. */
const struct sg_group *sg_cfg_takes_name(const struct sg_cfg_loader *ld, const char *alias);
/* The reason of the first left-out wildcard route that matches `name`, or NULL. */
const char *sg_cfg_unrouted_match(const struct sg_config *c, const char *name, size_t len);

/* Read `f` to its end into b (initialised here; at most `max` bytes): SG_OK, SG_ETOOBIG, or
 * the errno of a read error (> 0). The caller disposes of b either way. */
int sg_cfg_read_all(FILE *f, size_t max, struct sg_buf *b);

/* LiteLLM's `include:` (include.c). Parses every file the main config's `include` lists
 * (paths relative to `base_dir`, the main file's folder; NULL refuses includes: the config
 * was not read from a file) and merges their sections into `doc`. Problems are added to the
 * diagnostics. sg_cfg_doc_free releases what it built (not the main tree). */
struct sg_cfg_includes;
struct sg_cfg_includes *sg_cfg_include(struct sg_cfg_loader *ld, const struct sg_ynode *main_root,
                                       const char *base_dir, struct sg_cfg_doc *doc);
void sg_cfg_includes_free(struct sg_cfg_includes *inc);

/* router_settings (router_settings.c). */
extern const struct sg_cfg_table sg_cfg_router_table;
/* The router keys LiteLLM also takes from litellm_settings, and default_fallbacks: read once
 * router_settings is. */
void sg_cfg_router_defaults(struct sg_cfg_loader *ld, const struct sg_ynode *root);
void sg_cfg_free_router(struct sg_router_settings *r);
/* A custom field that does nothing: the key is known, and read elsewhere, later. */
void sg_cfg_later(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path, void *base);

/* Section tables and top-level loaders (sections.c). */
void sg_cfg_load_sections(struct sg_cfg_loader *ld, const struct sg_ynode *root);
bool sg_cfg_is_section(const char *key, size_t len);
const struct sg_cfg_ignored *sg_cfg_top_litellm(void);
void sg_cfg_free_sections(struct sg_config *c);
/* RFC 3339 ("2026-12-01T02:00:00Z", offsets allowed) to epoch milliseconds. */
bool sg_cfg_parse_rfc3339(const char *s, uint64_t *ms);

#endif
