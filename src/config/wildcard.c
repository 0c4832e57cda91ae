/*
 * Wildcard routes: a model_list entry whose model_name holds '*' (LiteLLM's pattern router,
 * litellm/router_utils/pattern_match_deployments.py). A client's model name that is no exact
 * model_name or alias is matched against them, most specific first, and what each '*' matched
 * replaces the same '*' of litellm_params.model: model_name "*" with model "openai/" and a
 * '*' after it serves gpt-4o-mini as openai/gpt-4o-mini.
 *
 * The loader checks each entry's shape here (what LiteLLM loads but cannot fill is left out
 * with a warning that says what to write) and sorts the routes once; a request then scans them
 * only when its exact lookup missed, with no allocation and no lock (the config is immutable).
 */
#include "config_int.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static unsigned count_stars(const char *s, size_t n)
{
    unsigned k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == '*';
    return k;
}

/* ---- what an entry may be ---- */

const char *sg_cfg_wild_unrouted(const char *name, size_t name_len, const char *model, char *why,
                                 size_t n)
{
    unsigned ns = count_stars(name, name_len), ms = count_stars(model, strlen(model));
    const char *slash = strchr(model, '/');
    if (!ns && !ms)
        return NULL;
    if (slash && memchr(model, '*', (size_t)(slash - model))) {
        snprintf(why, n,
                 "'*' in the provider of litellm_params.model '%.60s': LiteLLM picks each "
                 "request's provider there, slogate calls one provider per deployment; write "
                 "the provider, one entry per provider (model: openai/*, model: anthropic/*)",
                 model);
    } else if (ns > SG_WILDCARD_MAX) {
        snprintf(why, n, "model_name '%.60s' has %u '*': slogate takes at most %d", name, ns,
                 SG_WILDCARD_MAX);
    } else if (ms && strlen(model) > SG_WILD_TEMPLATE_MAX) {
        snprintf(why, n, "litellm_params.model with a '*' is longer than %d bytes",
                 SG_WILD_TEMPLATE_MAX);
    } else if (ms && !ns) {
        snprintf(why, n,
                 "litellm_params.model '%.60s' has a '*' but model_name '%.60s' has none to "
                 "fill it (LiteLLM would send the '*' itself as the model): write model_name: "
                 "\"%.60s/*\" so that %.60s/<model> calls <model>, or name the model "
                 "(model: openai/gpt-4o)",
                 model, name, name, name);
    } else if (ms > ns) {
        snprintf(why, n,
                 "litellm_params.model '%.60s' has %u '*' but model_name '%.60s' has %u: the "
                 "i-th '*' of the model takes what the i-th '*' of model_name matched, so write "
                 "as many in model_name (or fewer in the model)",
                 model, ms, name, ns);
    } else if (ms && ms < ns) {
        snprintf(why, n,
                 "model_name '%.60s' has %u '*' but litellm_params.model '%.60s' has %u: LiteLLM "
                 "then sends the client's whole model name upstream, not its parts; write as "
                 "many '*' in the model as in model_name (the i-th takes what the i-th matched), "
                 "or none to call one model",
                 name, ns, model, ms);
    } else {
        return NULL;
    }
    return why;
}

/* ---- the order LiteLLM tries them in ---- */

/* LiteLLM's PatternUtils.calculate_pattern_specificity over the regex it makes of a model_name,
 * re.escape(name) with each escaped '*' turned into "(.*)": (its length in characters, how many
 * of * + ? \ ^ $ | ( ) it holds). Python's re.escape (3.7+) puts a '\' before ()[]{}?*+-|^$\.&~#
 * and whitespace; '.' is not counted, so "(.*)" counts 3. */
struct spec {
    size_t len, complexity;
    size_t order; /* position among the routes: Python's sort is stable */
    size_t item;
};

static struct spec specificity(const char *s, size_t n)
{
    static const char escaped[] = "()[]{}?+-|^$\\.&~# \t\n\r\v\f";
    static const char counted[] = "()?+|^$\\";
    struct spec k = {0};
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (((unsigned char)c & 0xc0) == 0x80)
            continue; /* a UTF-8 continuation byte: the same character */
        if (c == '*') {
            k.len += 4;
            k.complexity += 3;
        } else if (c && strchr(escaped, c)) {
            k.len += 2;
            k.complexity += 1 + (strchr(counted, c) != NULL);
        } else {
            k.len += 1;
        }
    }
    return k;
}

/* Most specific first (LiteLLM sorts by the key, reverse=True); equal keys in config order. */
static int by_spec(const void *a, const void *b)
{
    const struct spec *x = a, *y = b;
    if (x->len != y->len)
        return x->len > y->len ? -1 : 1;
    if (x->complexity != y->complexity)
        return x->complexity > y->complexity ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

static struct sg_pattern *sorted(struct sg_pattern *v, size_t n)
{
    if (n < 2)
        return v;
    struct spec *keys = sg_xmalloc(n * sizeof *keys);
    for (size_t i = 0; i < n; i++) {
        keys[i] = specificity(v[i].text, v[i].len);
        keys[i].order = keys[i].item = i;
    }
    qsort(keys, n, sizeof *keys, by_spec);
    struct sg_pattern *out = sg_xmalloc(n * sizeof *out);
    for (size_t i = 0; i < n; i++)
        out[i] = v[keys[i].item];
    free(keys);
    free(v);
    return out;
}

void sg_cfg_index_patterns(struct sg_cfg_loader *ld)
{
    struct sg_config *c = ld->c;
    for (size_t i = 0; i < c->n_groups; i++) {
        struct sg_group *g = &c->groups[i];
        g->stars = count_stars(g->alias, strlen(g->alias));
        if (!g->stars)
            continue;
        c->patterns = sg_xrealloc(c->patterns, (c->n_patterns + 1) * sizeof *c->patterns);
        c->patterns[c->n_patterns++] = (struct sg_pattern){g->alias, strlen(g->alias), i, NULL};
    }
    for (size_t i = 0; i < c->n_unrouted; i++) {
        const struct sg_unrouted *u = &c->unrouted[i];
        size_t len = strlen(u->alias);
        if (!memchr(u->alias, '*', len) || sg_config_group(c, u->alias, len))
            continue; /* another entry of that name is routed */
        c->unrouted_patterns = sg_xrealloc(c->unrouted_patterns, (c->n_unrouted_patterns + 1) *
                                                                     sizeof *c->unrouted_patterns);
        c->unrouted_patterns[c->n_unrouted_patterns++] =
            (struct sg_pattern){u->alias, len, 0, u->why};
    }
    c->patterns = sorted(c->patterns, c->n_patterns);
    c->unrouted_patterns = sorted(c->unrouted_patterns, c->n_unrouted_patterns);
}

void sg_cfg_free_patterns(struct sg_config *c)
{
    free(c->patterns);
    free(c->unrouted_patterns);
}

const struct sg_group *sg_cfg_takes_name(const struct sg_cfg_loader *ld, const char *alias)
{
    const struct sg_group *g = sg_config_group(ld->c, alias, strlen(alias));
    for (size_t i = 0; g && i < g->n; i++)
        if (g->deployments[i]->stars)
            return g;
    return NULL;
}

/* ---- matching ---- */

/* Whether `s` (n bytes) is matched whole by pattern `p` (pn bytes, with k <= SG_WILDCARD_MAX
 * stars), and where each '*' took its text, as Python's re takes it with LiteLLM's "(.*)"
 * groups: each as long as what follows still allows, the first first. That is each literal
 * between stars placed as late as the literals after it allow: found from the end, in one
 * pass per literal (no backtracking, no table). Offsets and lengths go to off/len. */
static bool match_pattern(const char *p, size_t pn, const char *s, size_t n, size_t *off,
                          size_t *len)
{
    size_t lo[SG_WILDCARD_MAX + 1], ll[SG_WILDCARD_MAX + 1], at[SG_WILDCARD_MAX + 1];
    unsigned k = 0;
    size_t start = 0;
    for (size_t i = 0; i < pn; i++) {
        if (p[i] != '*')
            continue;
        if (k == SG_WILDCARD_MAX)
            return false;
        lo[k] = start;
        ll[k++] = i - start;
        start = i + 1;
    }
    lo[k] = start;
    ll[k] = pn - start;
    if (k == 0)
        return n == pn && memcmp(s, p, n) == 0;
    if (n < ll[0] + ll[k] || memcmp(s, p, ll[0]) != 0 ||
        memcmp(s + n - ll[k], p + lo[k], ll[k]) != 0)
        return false;
    at[k] = n - ll[k];
    for (unsigned j = k - 1; j >= 1; j--) {
        if (at[j + 1] < ll[0] + ll[j])
            return false;
        size_t e = at[j + 1] - ll[j];
        while (memcmp(s + e, p + lo[j], ll[j]) != 0) {
            if (e == ll[0])
                return false;
            e--;
        }
        at[j] = e;
    }
    at[0] = 0;
    for (unsigned j = 1; j <= k; j++) {
        off[j - 1] = at[j - 1] + ll[j - 1];
        len[j - 1] = at[j] - off[j - 1];
    }
    return true;
}

/* Match `name` against one route; fills m on success. */
static bool match_into(const struct sg_pattern *pt, const char *name, size_t len,
                       struct sg_match *m)
{
    size_t off[SG_WILDCARD_MAX], cl[SG_WILDCARD_MAX];
    if (!match_pattern(pt->text, pt->len, name, len, off, cl))
        return false;
    m->n = count_stars(pt->text, pt->len);
    for (unsigned i = 0; i < m->n; i++) {
        m->off[i] = (uint16_t)off[i];
        m->len[i] = (uint16_t)cl[i];
    }
    memcpy(m->text, name, len);
    m->text[len] = '\0';
    return true;
}

static bool matchable(const char *name, size_t len)
{
    /* LiteLLM's '.' takes no newline, and a route's literals hold none (no control characters
     * in a model_name): such a name matches no route. */
    return len < SG_MATCH_MAX && !memchr(name, '\n', len);
}

const struct sg_group *sg_config_match(const struct sg_config *c, const char *name, size_t len,
                                       struct sg_match *m)
{
    if (!c->n_patterns || !matchable(name, len))
        return NULL;
    for (size_t i = 0; i < c->n_patterns; i++) {
        if (match_into(&c->patterns[i], name, len, m)) {
            m->group = &c->groups[c->patterns[i].group];
            return m->group;
        }
    }
    return NULL;
}

const struct sg_group *sg_config_resolve(const struct sg_config *c, const char *name, size_t len,
                                         struct sg_match *m)
{
    const struct sg_group *g = sg_config_group(c, name, len);
    if (g && !g->stars) {
        m->group = g;
        m->n = 0;
        return g;
    }
    if (g) { /* a route's own name, sent as is: it matches itself, each '*' taking a '*' */
        struct sg_pattern self = {g->alias, strlen(g->alias), (size_t)(g - c->groups), NULL};
        if (matchable(name, len) && match_into(&self, name, len, m)) {
            m->group = g;
            return g;
        }
    }
    return sg_config_match(c, name, len, m);
}

const char *sg_cfg_unrouted_match(const struct sg_config *c, const char *name, size_t len)
{
    size_t off[SG_WILDCARD_MAX], cl[SG_WILDCARD_MAX];
    for (size_t i = 0; matchable(name, len) && i < c->n_unrouted_patterns; i++) {
        const struct sg_pattern *pt = &c->unrouted_patterns[i];
        if (match_pattern(pt->text, pt->len, name, len, off, cl))
            return pt->why;
    }
    return NULL;
}

/* Copy `tmpl` with its i-th '*' replaced by caps[i] into out (SG_WILD_MODEL_MAX bytes); false
 * when it does not fit (the load's limits make that impossible for a model and a match). */
static bool fill(const char *tmpl, const char *text, const uint16_t *off, const uint16_t *cl,
                 char *out)
{
    size_t o = 0;
    unsigned i = 0;
    for (const char *p = tmpl; *p; p++) {
        const char *src = p;
        size_t k = 1;
        if (*p == '*') {
            src = text + off[i];
            k = cl[i++];
        }
        if (o + k >= SG_WILD_MODEL_MAX)
            return false;
        memcpy(out + o, src, k);
        o += k;
    }
    out[o] = '\0';
    return true;
}

const char *sg_config_fill(const struct sg_deployment *d, const struct sg_match *m, char *buf)
{
    if (!d->stars || m->n != d->stars || !fill(d->provider_model, m->text, m->off, m->len, buf))
        return d->provider_model;
    return buf;
}

bool sg_config_unfill(const struct sg_group *g, const struct sg_deployment *d, const char *model,
                      char *out)
{
    size_t n = strlen(model), off[SG_WILDCARD_MAX], cl[SG_WILDCARD_MAX];
    uint16_t o16[SG_WILDCARD_MAX], l16[SG_WILDCARD_MAX];
    if (!d->stars || d->stars != g->stars || n >= SG_MATCH_MAX ||
        !match_pattern(d->provider_model, strlen(d->provider_model), model, n, off, cl))
        return false;
    for (unsigned i = 0; i < d->stars; i++) {
        o16[i] = (uint16_t)off[i];
        l16[i] = (uint16_t)cl[i];
    }
    return fill(g->alias, model, o16, l16, out);
}
