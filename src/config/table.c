/*
 * The table-driven loader (Redis / HAProxy style): one declarative table per section — key,
 * type, offset, default, bounds — drives defaults, parsing, range checks and the messages.
 * A section is a struct; a table says how each key of the YAML mapping lands in it.
 *
 * Every problem becomes a diagnostic and loading goes on, so one run shows them all.
 */
#include "config_int.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>

void sg_cfg_err(struct sg_cfg_loader *ld, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sg_diags_vadd(ld->d, SG_DIAG_ERROR, ld->file, line, fmt, ap);
    va_end(ap);
}

void sg_cfg_warn(struct sg_cfg_loader *ld, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sg_diags_vadd(ld->d, SG_DIAG_WARNING, ld->file, line, fmt, ap);
    va_end(ap);
}

/* Copy at most `max` bytes of s into out for display: unprintable bytes become '?'. */
static void printable(char *out, size_t cap, const char *s, size_t len, size_t max)
{
    size_t o = 0;
    bool cut = len > max;
    if (cut)
        len = max;
    for (size_t i = 0; i < len && o + 1 < cap; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[o++] = (ch < 0x20 || ch == 0x7f) ? '?' : (char)ch;
    }
    if (cut && o + 4 < cap) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

void sg_cfg_child(char *out, const char *path, const char *key, size_t klen)
{
    char k[80];
    printable(k, sizeof k, key, klen, 64);
    if (path && *path)
        snprintf(out, SG_CFG_PATH_MAX, "%.170s.%s", path, k);
    else
        snprintf(out, SG_CFG_PATH_MAX, "%s", k);
}

void sg_cfg_index(char *out, const char *path, size_t i)
{
    snprintf(out, SG_CFG_PATH_MAX, "%.200s[%zu]", path, i);
}

const char *sg_cfg_show(const struct sg_ynode *v, const char *env_name, char *buf, size_t n)
{
    if (env_name) {
        snprintf(buf, n, "the value of os.environ/%.60s", env_name);
    } else if (!v || sg_ynode_is_null(v)) {
        snprintf(buf, n, "nothing");
    } else if (v->kind == SG_YMAP) {
        snprintf(buf, n, "a mapping");
    } else if (v->kind == SG_YSEQ) {
        snprintf(buf, n, "a list");
    } else {
        char t[80];
        printable(t, sizeof t, v->s, v->len, 48);
        snprintf(buf, n, "\"%s\"", t);
    }
    return buf;
}

static bool valid_env_name(const char *s)
{
    if (!*s || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
              ch == '_'))
            return false;
    }
    return true;
}

#define ENV_PREFIX "os.environ/"

static const char *process_env(struct sg_cfg_loader *ld, const char *name)
{
    return ld->env ? ld->env(name, ld->env_ud) : getenv(name);
}

const char *sg_cfg_env(struct sg_cfg_loader *ld, const char *name)
{
    /* LiteLLM exports its config's environment_variables before reading the rest, so they
     * win over the process environment. A value written os.environ/OTHER is OTHER from the
     * process environment; when OTHER is unset LiteLLM exports nothing and NAME stays what
     * the process has. */
    const struct sg_ynode *v = sg_ynode_get(ld->envvars, name);
    if (v && v->kind == SG_YSCALAR && !sg_ynode_is_null(v)) {
        if (strncmp(v->s, ENV_PREFIX, sizeof ENV_PREFIX - 1) != 0)
            return v->s;
        const char *other = v->s + sizeof ENV_PREFIX - 1;
        const char *val = valid_env_name(other) ? process_env(ld, other) : NULL;
        if (val)
            return val;
    }
    return process_env(ld, name);
}

const char *sg_cfg_text(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                        const char **env_name)
{
    if (env_name)
        *env_name = NULL;
    if (v->kind != SG_YSCALAR)
        return NULL;
    if (strlen(v->s) != v->len) {
        sg_cfg_err(ld, v->line, "%s contains a NUL byte: remove the \\0 escape", path);
        return NULL;
    }
    if (strncmp(v->s, ENV_PREFIX, sizeof ENV_PREFIX - 1) != 0)
        return v->s;
    const char *name = v->s + sizeof ENV_PREFIX - 1;
    if (!valid_env_name(name)) {
        char t[80];
        printable(t, sizeof t, name, strlen(name), 60);
        sg_cfg_err(ld, v->line,
                   "%s: '" ENV_PREFIX "%s' is not a valid environment variable reference: "
                   "write " ENV_PREFIX "NAME with letters, digits and '_'",
                   path, t);
        return NULL;
    }
    const char *val = sg_cfg_env(ld, name);
    if (!val) {
        sg_cfg_err(ld, v->line,
                   "%s: " ENV_PREFIX "%s is not set: export %s or put the value in the config",
                   path, name, name);
        return NULL;
    }
    if (!*val) {
        sg_cfg_err(ld, v->line,
                   "%s: " ENV_PREFIX "%s is not set (it is empty): export %s or put the value "
                   "in the config",
                   path, name, name);
        return NULL;
    }
    if (env_name)
        *env_name = name;
    return val;
}

char *sg_cfg_string(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path)
{
    char shown[96];
    if (!v || sg_ynode_is_null(v)) {
        sg_cfg_err(ld, v ? v->line : 0, "%s is empty: give a value or remove the line", path);
        return NULL;
    }
    if (v->kind != SG_YSCALAR) {
        sg_cfg_err(ld, v->line, "%s must be a string, got %s", path,
                   sg_cfg_show(v, NULL, shown, sizeof shown));
        return NULL;
    }
    const char *t = sg_cfg_text(ld, v, path, NULL);
    if (!t)
        return NULL;
    if (!*t) {
        sg_cfg_err(ld, v->line, "%s is empty: give a value or remove the line", path);
        return NULL;
    }
    return sg_xstrdup(t);
}

bool sg_cfg_parse_double(const char *s, double *out)
{
    if (!s || !*s)
        return false;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno == ERANGE || !isfinite(v))
        return false;
    *out = v;
    return true;
}

/* Base 60, "1:30" (90) or "1:30.5" (90.5): PyYAML's sexagesimal numbers. */
static bool sexagesimal(const char *d, double *out)
{
    double v = 0;
    const char *p = d;
    for (bool first = true;; first = false) {
        size_t k = strspn(p, "0123456789");
        if (k == 0 || (!first && k > 2))
            return false;
        double part = 0;
        for (size_t i = 0; i < k; i++)
            part = part * 10 + (p[i] - '0');
        if (!first && part >= 60)
            return false;
        v = v * 60 + part;
        p += k;
        if (*p == ':') {
            p++;
            continue;
        }
        if (*p == '.' && !first) {
            size_t f = strspn(p + 1, "0123456789");
            if (p[1 + f])
                return false;
            v += strtod(p, NULL);
            p += 1 + f;
        }
        break;
    }
    *out = v;
    return *p == '\0';
}

const char *sg_cfg_number_text(const struct sg_ynode *v, const char *t, const char *env_name,
                               char *buf, size_t n)
{
    /* A quoted scalar or an os.environ/ value is a string to PyYAML, and stays as written. */
    if (env_name || !v->plain)
        return t;
    const char *p = t + (*t == '+' || *t == '-');
    const char *sign = *t == '-' ? "-" : "";
    if (!(*p >= '0' && *p <= '9'))
        return t;
    /* '_' may follow the first digit anywhere but in an exponent (1_000, 0.000_15, 0x_ff). */
    bool hex = p[0] == '0' && (p[1] == 'x' || p[1] == 'X');
    bool bin = p[0] == '0' && (p[1] == 'b' || p[1] == 'B');
    char d[80];
    size_t o = 0;
    bool exponent = false;
    for (const char *c = p; *c; c++) {
        if (!hex && (*c == 'e' || *c == 'E'))
            exponent = true;
        if (*c == '_' && exponent)
            return t;
        if (*c == '_')
            continue;
        if (o + 1 >= sizeof d)
            return t;
        d[o++] = *c;
    }
    d[o] = '\0';
    /* YAML 1.1's other integer forms, as PyYAML resolves a plain scalar: 0x1f, 0b101, a
     * leading 0 for octal (017 is 15) and sexagesimal 1:30 (90). */
    if (hex || bin) {
        const char *digits = d + 2;
        const char *set = hex ? "0123456789abcdefABCDEF" : "01";
        if (!*digits || strspn(digits, set) != strlen(digits) || strlen(digits) > 15)
            return t;
        snprintf(buf, n, "%s%llu", sign, strtoull(digits, NULL, hex ? 16 : 2));
        return buf;
    }
    if (d[0] == '0' && d[1] && strspn(d + 1, "01234567") == strlen(d + 1)) {
        if (strlen(d) > 20)
            return t;
        snprintf(buf, n, "%s%llu", sign, strtoull(d, NULL, 8));
        return buf;
    }
    double x;
    if (strchr(d, ':')) {
        if (!sexagesimal(d, &x))
            return t;
        snprintf(buf, n, "%s%.17g", sign, x);
        return buf;
    }
    if (strlen(d) == strlen(p))
        return t; /* nothing to drop */
    snprintf(buf, n, "%s%s", sign, d);
    return buf;
}

bool sg_cfg_parse_bool(const char *s, bool *out)
{
    /* YAML 1.1 booleans, as PyYAML (and so LiteLLM) reads them; and 1 and 0, since LiteLLM
     * tests a setting's truth (`if general_settings.get("disable_spend_logs")`), where the
     * integer 1 is true. */
    static const char *const yes[] = {"true", "True", "TRUE", "yes", "Yes",
                                      "YES",  "on",   "On",   "ON",  "1"};
    static const char *const no[] = {"false", "False", "FALSE", "no",  "No",
                                     "NO",    "off",   "Off",   "OFF", "0"};
    for (size_t i = 0; i < SG_ARRAY_LEN(yes); i++) {
        if (strcmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* "an integer >= 1", "a number > 0 and < 100", "a duration in seconds between 0 and 86400". */
static void describe(const struct sg_cfg_field *f, char *out, size_t n)
{
    const char *what;
    switch (f->type) {
    case SG_FT_INT:
    case SG_FT_I64:
    case SG_FT_U32: what = "an integer"; break;
    case SG_FT_MS: what = "an integer number of milliseconds"; break;
    case SG_FT_SECS_MS: what = "a duration in seconds"; break;
    case SG_FT_MB: what = "a size in megabytes"; break;
    default: what = "a number"; break;
    }
    bool has_max = f->max < SG_CFG_NOMAX;
    if (has_max && !(f->flags & (SG_FL_GT | SG_FL_LT)))
        snprintf(out, n, "%s between %.15g and %.15g", what, f->min, f->max);
    else if (has_max)
        snprintf(out, n, "%s %s %.15g and %s %.15g", what, f->flags & SG_FL_GT ? ">" : ">=", f->min,
                 f->flags & SG_FL_LT ? "<" : "<=", f->max);
    else
        snprintf(out, n, "%s %s %.15g", what, f->flags & SG_FL_GT ? ">" : ">=", f->min);
}

static bool in_range(const struct sg_cfg_field *f, double v)
{
    if (f->flags & SG_FL_GT ? v <= f->min : v < f->min)
        return false;
    if (f->max >= SG_CFG_NOMAX)
        return true;
    return f->flags & SG_FL_LT ? v < f->max : v <= f->max;
}

static void set_str(void *p, char *take)
{
    char **slot = p;
    free(*slot);
    *slot = take;
}

static void set_default(const struct sg_cfg_field *f, void *p, struct sg_cfg_loader *ld, void *base)
{
    switch (f->type) {
    case SG_FT_STR:
    case SG_FT_URL:
    case SG_FT_ENUM: set_str(p, f->defs ? sg_xstrdup(f->defs) : NULL); break;
    case SG_FT_BOOL: *(bool *)p = f->def != 0; break;
    case SG_FT_INT: *(int *)p = (int)f->def; break;
    case SG_FT_I64: *(int64_t *)p = (int64_t)f->def; break;
    case SG_FT_U32:
    case SG_FT_MS: *(uint32_t *)p = (uint32_t)f->def; break;
    case SG_FT_DOUBLE: *(double *)p = f->def; break;
    case SG_FT_SECS_MS: *(uint32_t *)p = (uint32_t)llround(f->def * 1000.0); break;
    case SG_FT_MB: *(size_t *)p = (size_t)(f->def * 1048576.0); break;
    case SG_FT_MAP: sg_cfg_defaults(ld, f->sub, p); break;
    case SG_FT_CUSTOM: f->custom(ld, NULL, NULL, base); break;
    }
}

void sg_cfg_defaults(struct sg_cfg_loader *ld, const struct sg_cfg_table *t, void *base)
{
    for (size_t i = 0; i < t->n; i++)
        set_default(&t->fields[i], (char *)base + t->fields[i].off, ld, base);
}

bool sg_cfg_url_ok(const char *s)
{
    const char *rest;
    if (strncasecmp(s, "http://", 7) == 0)
        rest = s + 7;
    else if (strncasecmp(s, "https://", 8) == 0)
        rest = s + 8;
    else
        return false;
    if (!*rest || *rest == '/')
        return false;
    for (const char *q = s; *q; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f)
            return false;
    return true;
}

static bool enum_ok(const char *choices, const char *s)
{
    size_t n = strlen(s);
    for (const char *c = choices; *c;) {
        const char *bar = strchr(c, '|');
        size_t len = bar ? (size_t)(bar - c) : strlen(c);
        if (len == n && memcmp(c, s, n) == 0)
            return true;
        if (!bar)
            break;
        c = bar + 1;
    }
    return false;
}

void sg_cfg_value(struct sg_cfg_loader *ld, const struct sg_cfg_field *f, const struct sg_ynode *v,
                  const char *path, void *base)
{
    void *p = (char *)base + f->off;
    char shown[96], want[128];
    if (sg_ynode_is_null(v)) {
        if (f->flags & SG_FL_REQUIRED)
            sg_cfg_err(ld, v->line, "%s is required%s", path, f->hint ? f->hint : "");
        return; /* the default stays */
    }
    if (f->type == SG_FT_MAP) {
        sg_cfg_values(ld, v, path, f->sub, p);
        return;
    }
    if (f->type == SG_FT_CUSTOM) {
        f->custom(ld, v, path, base);
        return;
    }
    if (v->kind != SG_YSCALAR) {
        const char *kind = "a single value";
        if (f->type == SG_FT_STR || f->type == SG_FT_URL || f->type == SG_FT_ENUM)
            kind = "a string";
        else if (f->type == SG_FT_BOOL)
            kind = "true or false";
        else {
            describe(f, want, sizeof want);
            kind = want;
        }
        sg_cfg_err(ld, v->line, "%s must be %s, got %s", path, kind,
                   sg_cfg_show(v, NULL, shown, sizeof shown));
        return;
    }
    const char *env = NULL;
    const char *t = sg_cfg_text(ld, v, path, &env);
    if (!t)
        return;
    sg_cfg_show(v, env, shown, sizeof shown);
    char num[64];
    if (f->type != SG_FT_STR && f->type != SG_FT_URL && f->type != SG_FT_ENUM &&
        f->type != SG_FT_BOOL)
        t = sg_cfg_number_text(v, t, env, num, sizeof num);

    switch (f->type) {
    case SG_FT_STR:
    case SG_FT_URL:
    case SG_FT_ENUM: {
        if (!*t) {
            sg_cfg_err(ld, v->line, "%s is empty: give a value or remove the line", path);
            return;
        }
        if (f->type == SG_FT_ENUM && !enum_ok(f->choices, t)) {
            char list[256];
            size_t o = 0;
            for (const char *c = f->choices; *c && o + 3 < sizeof list; c++)
                o += (size_t)snprintf(list + o, sizeof list - o, *c == '|' ? ", " : "%c", *c);
            sg_cfg_err(ld, v->line, "%s must be one of %s; got %s", path, list, shown);
            return;
        }
        if (f->type == SG_FT_URL && !sg_cfg_url_ok(t)) {
            sg_cfg_err(ld, v->line, "%s must be an http:// or https:// URL with a host, got %s",
                       path, shown);
            return;
        }
        char *s = sg_xstrdup(t);
        size_t n = strlen(s);
        if (f->type == SG_FT_URL && n > 0 && s[n - 1] == '/')
            s[n - 1] = '\0';
        set_str(p, s);
        return;
    }
    case SG_FT_BOOL: {
        bool b;
        if (!sg_cfg_parse_bool(t, &b)) {
            sg_cfg_err(ld, v->line, "%s must be true or false, got %s", path, shown);
            return;
        }
        *(bool *)p = b;
        return;
    }
    case SG_FT_INT:
    case SG_FT_I64:
    case SG_FT_U32:
    case SG_FT_MS: {
        int64_t x;
        describe(f, want, sizeof want);
        /* The storage type bounds the value too, whatever the table says. */
        int64_t lo = f->type == SG_FT_INT ? INT32_MIN : f->type == SG_FT_I64 ? INT64_MIN : 0;
        int64_t hi = f->type == SG_FT_INT   ? INT32_MAX
                     : f->type == SG_FT_I64 ? INT64_MAX
                                            : UINT32_MAX;
        if (!sg_parse_i64(t, lo, hi, &x) || !in_range(f, (double)x)) {
            sg_cfg_err(ld, v->line, "%s must be %s, got %s", path, want, shown);
            return;
        }
        if (f->type == SG_FT_INT)
            *(int *)p = (int)x;
        else if (f->type == SG_FT_I64)
            *(int64_t *)p = x;
        else
            *(uint32_t *)p = (uint32_t)x;
        return;
    }
    case SG_FT_DOUBLE:
    case SG_FT_SECS_MS:
    case SG_FT_MB: {
        double x;
        describe(f, want, sizeof want);
        if (!sg_cfg_parse_double(t, &x) || !in_range(f, x)) {
            sg_cfg_err(ld, v->line, "%s must be %s, got %s", path, want, shown);
            return;
        }
        if (f->type == SG_FT_DOUBLE) {
            *(double *)p = x;
        } else if (f->type == SG_FT_MB) {
            *(size_t *)p = (size_t)(x * 1048576.0);
        } else {
            /* A positive duration never rounds down to 0, which means "unset". */
            long long ms = llround(x * 1000.0);
            *(uint32_t *)p = (uint32_t)(ms == 0 && x > 0 ? 1 : ms);
        }
        return;
    }
    case SG_FT_MAP:
    case SG_FT_CUSTOM: return; /* handled above */
    }
}

static const struct sg_cfg_ignored *find_ignored(const struct sg_cfg_ignored *list,
                                                 const struct sg_ynode *key)
{
    for (; list && list->key; list++)
        if (strlen(list->key) == key->len && memcmp(list->key, key->s, key->len) == 0)
            return list;
    return NULL;
}

void sg_cfg_values(struct sg_cfg_loader *ld, const struct sg_ynode *node, const char *path,
                   const struct sg_cfg_table *t, void *base)
{
    char shown[96], sub[SG_CFG_PATH_MAX];
    bool seen[64] = {false};
    if (sg_ynode_is_null(node))
        goto required;
    if (node->kind != SG_YMAP) {
        sg_cfg_err(ld, node->line, "%s must be a mapping of `key: value` lines, got %s", path,
                   sg_cfg_show(node, NULL, shown, sizeof shown));
        return;
    }
    for (size_t i = 0; i < node->n; i++) {
        const struct sg_ynode *k = node->pairs[i].key;
        sg_cfg_child(sub, path, k->s, k->len);
        size_t j = 0;
        while (j < t->n &&
               !(strlen(t->fields[j].key) == k->len && memcmp(t->fields[j].key, k->s, k->len) == 0))
            j++;
        if (j < t->n) {
            if (j < SG_ARRAY_LEN(seen))
                seen[j] = true;
            sg_cfg_value(ld, &t->fields[j], node->pairs[i].val, sub, base);
            continue;
        }
        const struct sg_cfg_ignored *ig = find_ignored(t->litellm, k);
        char key[80];
        sg_cfg_child(key, "", k->s, k->len);
        if (ig && ig->hint)
            sg_cfg_warn(ld, k->line,
                        "%s is a LiteLLM setting slogate does not support; ignored (%s)", sub,
                        ig->hint);
        else if (ig)
            sg_cfg_warn(ld, k->line, "%s is a LiteLLM setting slogate does not support; ignored",
                        sub);
        else if (path && *path)
            sg_cfg_warn(ld, k->line, "unknown key '%s' in %s: not supported, ignored", key, path);
        else
            sg_cfg_warn(ld, k->line, "unknown key '%s' at the top level: not supported, ignored",
                        key);
    }
required:
    for (size_t j = 0; j < t->n && j < SG_ARRAY_LEN(seen); j++) {
        if ((t->fields[j].flags & SG_FL_REQUIRED) && !seen[j]) {
            sg_cfg_child(sub, path, t->fields[j].key, strlen(t->fields[j].key));
            sg_cfg_err(ld, node ? node->line : 0, "%s is required%s", sub,
                       t->fields[j].hint ? t->fields[j].hint : "");
        }
    }
}

void sg_cfg_load(struct sg_cfg_loader *ld, const struct sg_ynode *node, const char *path,
                 const struct sg_cfg_table *t, void *base)
{
    sg_cfg_defaults(ld, t, base);
    if (node && !sg_ynode_is_null(node))
        sg_cfg_values(ld, node, path, t, base);
}

static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    /* Howard Hinnant's algorithm: days since 1970-01-01 in the proleptic Gregorian calendar. */
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static bool digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

bool sg_cfg_parse_rfc3339(const char *s, uint64_t *ms)
{
    int y, mo, d, h, mi, sec, frac_ms = 0;
    if (strlen(s) < 20 || !digits(s, 4, &y) || s[4] != '-' || !digits(s + 5, 2, &mo) ||
        s[7] != '-' || !digits(s + 8, 2, &d) || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        !digits(s + 11, 2, &h) || s[13] != ':' || !digits(s + 14, 2, &mi) || s[16] != ':' ||
        !digits(s + 17, 2, &sec))
        return false;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    if (y < 1970 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1] ||
        (mo == 2 && d == 29 && !leap) || h > 23 || mi > 59 || sec > 60)
        return false;
    const char *p = s + 19;
    if (*p == '.') {
        int scale = 100, n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++) {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
        }
        if (n == 0)
            return false;
    }
    int64_t off_s = 0;
    if ((p[0] == 'Z' || p[0] == 'z') && p[1] == '\0') {
        off_s = 0;
    } else if ((p[0] == '+' || p[0] == '-') && strlen(p) == 6 && p[3] == ':') {
        int oh, om;
        if (!digits(p + 1, 2, &oh) || !digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return false;
        off_s = (int64_t)(oh * 3600 + om * 60) * (p[0] == '+' ? 1 : -1);
    } else {
        return false;
    }
    int64_t secs = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 +
                   (sec == 60 ? 59 : sec) - off_s;
    if (secs < 0)
        return false;
    *ms = (uint64_t)secs * 1000u + (uint64_t)frac_ms;
    return true;
}
