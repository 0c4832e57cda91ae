/*
 * router_settings: the routing strategy, retries, cooldowns, timeouts and fallbacks, read the
 * way LiteLLM's Router reads them. Its fallbacks take what LiteLLM loads (an alias it has no
 * group for is skipped with a warning, not refused), default_fallbacks become the fallbacks of
 * any alias, model_group_alias adds groups, and the keys LiteLLM's router also takes from
 * litellm_settings are read from there when router_settings does not set them.
 */
#include "config_int.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OFF(type, member) offsetof(type, member)
#define TABLE(fields, litellm)                                                                     \
    {                                                                                              \
        fields, SG_ARRAY_LEN(fields), litellm                                                      \
    }

static void replace_str(char **slot, char *take)
{
    free(*slot);
    *slot = take;
}

/* ---- router_settings ---- */

static const char *const strategies[] = {"simple-shuffle", "latency-based-routing", "least-busy",
                                         "usage-based-routing", "cost-based-routing"};

static void routing_strategy(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                             void *base)
{
    struct sg_router_settings *r = base;
    if (!v) {
        replace_str(&r->routing_strategy, sg_xstrdup(strategies[0]));
        return;
    }
    char *s = sg_cfg_string(ld, v, path);
    if (!s)
        return;
    if (strcmp(s, "usage-based-routing-v2") == 0) {
        sg_cfg_warn(ld, v->line,
                    "%s: usage-based-routing-v2 is LiteLLM's Redis-backed variant; "
                    "slogate runs it as usage-based-routing",
                    path);
        replace_str(&s, sg_xstrdup("usage-based-routing"));
    }
    for (size_t i = 0; i < SG_ARRAY_LEN(strategies); i++) {
        if (strcmp(s, strategies[i]) == 0) {
            replace_str(&r->routing_strategy, s);
            return;
        }
    }
    char shown[96];
    sg_cfg_err(ld, v->line,
               "%s must be one of simple-shuffle, latency-based-routing, least-busy, "
               "usage-based-routing, cost-based-routing; got %s",
               path, sg_cfg_show(v, NULL, shown, sizeof shown));
    free(s);
}

static void free_fallbacks(struct sg_fallback *fb, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(fb[i].alias);
        for (size_t j = 0; j < fb[i].n; j++)
            free(fb[i].targets[j]);
        free(fb[i].targets);
    }
    free(fb);
}

struct fb_seen {
    const char *alias;
    int line;
    size_t item;
};

static int fb_seen_cmp(const void *a, const void *b)
{
    const struct fb_seen *x = a, *y = b;
    int c = strcmp(x->alias, y->alias);
    if (c)
        return c;
    if (x->line != y->line)
        return x->line < y->line ? -1 : 1;
    return x->item < y->item ? -1 : x->item > y->item;
}

/* A fallback alias slogate has no group for: said, and skipped. LiteLLM loads such an entry
 * and fails only when a request needs it, so it is no reason to refuse the config. */
static void warn_missing_alias(struct sg_cfg_loader *ld, int line, const char *path,
                               const char *alias, const char *what)
{
    if (sg_cfg_unrouted_alias(ld, alias))
        sg_cfg_warn(ld, line,
                    "%s: '%.60s' is a model_name slogate does not route (its model_list entries "
                    "say why): %s",
                    path, alias, what);
    else
        sg_cfg_warn(ld, line,
                    "%s: '%.60s' is not a model_name in model_list: add a deployment with "
                    "model_name: %.60s or remove it; %s",
                    path, alias, alias, what);
}

/* A fallback or model_group_alias target: a model_name or alias whose deployments call their
 * own model. A wildcard route whose model takes the client's name has no name to take there,
 * and a name only a wildcard route serves is no group to go to: said, and skipped. */
static bool target_ok(struct sg_cfg_loader *ld, int line, const char *path, const char *target,
                      const char *what)
{
    struct sg_match m;
    const struct sg_group *g = sg_cfg_takes_name(ld, target);
    if (g)
        sg_cfg_warn(ld, line,
                    "%s: '%.60s' is a wildcard route whose model takes the client's model name "
                    "('%.60s'), which a fallback or alias does not give: %s (name a model_name "
                    "whose model is written out)",
                    path, target, g->deployments[0]->model, what);
    else if (sg_cfg_has_alias(ld, target))
        return true;
    else if ((g = sg_config_match(ld->c, target, strlen(target), &m)))
        sg_cfg_warn(ld, line,
                    "%s: '%.60s' is no model_name, only a name the wildcard route '%.60s' serves "
                    "to clients: add a model_list entry with model_name: %.60s; %s",
                    path, target, g->alias, target, what);
    else
        warn_missing_alias(ld, line, path, target, what);
    return false;
}

/* `[{alias: [target, ...]}, ...]`; "*" as the alias means any alias. A source or a target that
 * is not a routed model_name, a target equal to its source and a source listed again (LiteLLM
 * uses the first list) are warnings and skipped; a shape LiteLLM refuses too is an error. */
static void load_fallbacks(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                           struct sg_fallback **out, size_t *n_out)
{
    char shown[96], ipath[SG_CFG_PATH_MAX], kpath[SG_CFG_PATH_MAX], tpath[SG_CFG_PATH_MAX];
    struct fb_seen *seen = NULL;
    size_t n_seen = 0;
    if (!v) {
        *out = NULL;
        *n_out = 0;
        return;
    }
    if (v->kind != SG_YSEQ) {
        sg_cfg_err(ld, v->line,
                   "%s must be a list of {alias: [fallback aliases]} entries, e.g. "
                   "[{app/chat: [app/chat-lite]}]; got %s",
                   path, sg_cfg_show(v, NULL, shown, sizeof shown));
        return;
    }
    /* The same source alias twice: sorted, so a long list stays O(n log n). LiteLLM uses the
     * first list for an alias, so the later ones are skipped. */
    for (size_t i = 0; i < v->n; i++) {
        const struct sg_ynode *item = v->items[i];
        for (size_t k = 0; item->kind == SG_YMAP && k < item->n; k++) {
            const struct sg_ynode *key = item->pairs[k].key;
            if (strlen(key->s) != key->len)
                continue;
            seen = sg_xrealloc(seen, (n_seen + 1) * sizeof *seen);
            seen[n_seen++] = (struct fb_seen){key->s, key->line, i};
        }
    }
    if (n_seen > 1) /* qsort of NULL (none seen) is undefined even for 0 items */
        qsort(seen, n_seen, sizeof *seen, fb_seen_cmp);
    for (size_t i = 0; i < v->n; i++) {
        const struct sg_ynode *item = v->items[i];
        sg_cfg_index(ipath, path, i);
        if (item->kind != SG_YMAP) {
            sg_cfg_err(ld, item->line,
                       "%s must be a one-key mapping {alias: [fallback aliases]}, got %s", ipath,
                       sg_cfg_show(item, NULL, shown, sizeof shown));
            continue;
        }
        for (size_t k = 0; k < item->n; k++) {
            const struct sg_ynode *key = item->pairs[k].key, *val = item->pairs[k].val;
            sg_cfg_child(kpath, ipath, key->s, key->len);
            if (strlen(key->s) != key->len)
                continue;
            struct fb_seen probe = {key->s, key->line, i};
            struct fb_seen *hit =
                n_seen ? bsearch(&probe, seen, n_seen, sizeof *seen, fb_seen_cmp) : NULL;
            if (hit && hit > seen && strcmp(hit[-1].alias, key->s) == 0) {
                const struct fb_seen *first = hit;
                while (first > seen && strcmp(first[-1].alias, key->s) == 0)
                    first--;
                sg_cfg_warn(ld, key->line,
                            "%s: fallbacks for '%.60s' are listed twice (first at line %d): "
                            "the first list is used, as in LiteLLM; merge them into one",
                            kpath, key->s, first->line);
                continue;
            }
            size_t n_t = val->kind == SG_YSEQ ? val->n : 1;
            if (val->kind == SG_YMAP || sg_ynode_is_null(val)) {
                sg_cfg_err(ld, val->line, "%s must be a list of aliases, e.g. [app/chat-lite]",
                           kpath);
                continue;
            }
            bool bad = false, known = true;
            struct sg_match m;
            /* A name a wildcard route serves is a source too: LiteLLM keys a request's
             * fallbacks by the name the client sent. */
            if (strcmp(key->s, "*") != 0 && !sg_cfg_has_alias(ld, key->s) &&
                !sg_config_match(ld->c, key->s, key->len, &m)) {
                warn_missing_alias(ld, key->line, kpath, key->s, "this fallback is skipped");
                known = false;
            }
            struct sg_fallback fb = {.alias = sg_xstrdup(key->s)};
            fb.targets = sg_xcalloc(n_t ? n_t : 1, sizeof *fb.targets);
            for (size_t t = 0; t < n_t; t++) {
                const struct sg_ynode *tv = val->kind == SG_YSEQ ? val->items[t] : val;
                sg_cfg_index(tpath, kpath, t);
                char *target = sg_cfg_string(ld, tv, tpath);
                if (!target) {
                    bad = true;
                    continue;
                }
                if (!known) {
                    free(target);
                } else if (strcmp(target, key->s) == 0) {
                    sg_cfg_warn(ld, tv->line,
                                "%s: '%.60s' falls back to itself: skipped (list other aliases)",
                                tpath, target);
                    free(target);
                } else if (!target_ok(ld, tv->line, tpath, target, "skipped")) {
                    free(target);
                } else {
                    fb.targets[fb.n++] = target;
                }
            }
            if (bad || !known || fb.n == 0) {
                free(fb.alias);
                for (size_t t = 0; t < fb.n; t++)
                    free(fb.targets[t]);
                free(fb.targets);
                continue;
            }
            *out = sg_xrealloc(*out, (*n_out + 1) * sizeof **out);
            (*out)[(*n_out)++] = fb;
        }
    }
    free(seen);
}

static void fallbacks(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                      void *base)
{
    struct sg_router_settings *r = base;
    if (!v)
        free_fallbacks(r->fallbacks, r->n_fallbacks);
    load_fallbacks(ld, v, path, &r->fallbacks, &r->n_fallbacks);
}

static void cw_fallbacks(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                         void *base)
{
    struct sg_router_settings *r = base;
    if (!v)
        free_fallbacks(r->context_window_fallbacks, r->n_context_window_fallbacks);
    load_fallbacks(ld, v, path, &r->context_window_fallbacks, &r->n_context_window_fallbacks);
}

/* A key the table knows (no "unknown key" warning) but that is read elsewhere, later. */
void sg_cfg_later(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path, void *base)
{
    (void)ld;
    (void)v;
    (void)path;
    (void)base;
}

/* default_fallbacks: [alias, ...] — LiteLLM appends them as the fallbacks of any alias
 * ({"*": [...]}), after the explicit fallbacks; a "*" entry already there wins. */
static void default_fallbacks(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                              struct sg_router_settings *r)
{
    char shown[96], tpath[SG_CFG_PATH_MAX];
    if (v->kind != SG_YSEQ) {
        sg_cfg_err(ld, v->line, "%s must be a list of aliases, e.g. [app/chat-lite]; got %s", path,
                   sg_cfg_show(v, NULL, shown, sizeof shown));
        return;
    }
    for (size_t i = 0; i < r->n_fallbacks; i++) {
        if (strcmp(r->fallbacks[i].alias, "*") == 0) {
            sg_cfg_warn(ld, v->line,
                        "%s is ignored: the fallbacks already list '*' (any alias), which "
                        "LiteLLM uses first too; put these aliases there",
                        path);
            return;
        }
    }
    struct sg_fallback fb = {.alias = sg_xstrdup("*")};
    fb.targets = sg_xcalloc(v->n ? v->n : 1, sizeof *fb.targets);
    for (size_t t = 0; t < v->n; t++) {
        sg_cfg_index(tpath, path, t);
        char *target = sg_cfg_string(ld, v->items[t], tpath);
        if (target && !target_ok(ld, v->items[t]->line, tpath, target, "skipped")) {
            free(target);
        } else if (target) {
            fb.targets[fb.n++] = target;
        }
    }
    if (!fb.n) {
        free(fb.alias);
        free(fb.targets);
        return;
    }
    r->fallbacks = sg_xrealloc(r->fallbacks, (r->n_fallbacks + 1) * sizeof *r->fallbacks);
    r->fallbacks[r->n_fallbacks++] = fb;
}

/* model_group_alias: {alias: target} or {alias: {model: target, hidden: bool}} — clients may
 * call `alias` and are served by the group `target`, which LiteLLM lists in /v1/models too.
 * slogate adds a group of that name with the target's deployments. */
static void model_group_alias(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                              void *base)
{
    (void)base;
    char shown[96], apath[SG_CFG_PATH_MAX], tpath[SG_CFG_PATH_MAX];
    if (!v)
        return;
    if (v->kind != SG_YMAP) {
        sg_cfg_err(ld, v->line,
                   "%s must be a mapping of alias: model_name, e.g. {gpt-4: gpt-4o}; got %s", path,
                   sg_cfg_show(v, NULL, shown, sizeof shown));
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const struct sg_ynode *k = v->pairs[i].key, *t = v->pairs[i].val;
        sg_cfg_child(apath, path, k->s, k->len);
        if (strlen(k->s) != k->len)
            continue;
        const struct sg_ynode *hidden = NULL;
        if (t->kind == SG_YMAP) {
            hidden = sg_ynode_get(t, "hidden");
            t = sg_ynode_get(t, "model");
            sg_cfg_child(tpath, apath, "model", 5);
            if (!t) {
                sg_cfg_err(ld, v->pairs[i].val->line,
                           "%s needs model: the model_name it stands for", apath);
                continue;
            }
        } else {
            snprintf(tpath, sizeof tpath, "%s", apath);
        }
        char *target = sg_cfg_string(ld, t, tpath);
        if (!target)
            continue;
        bool hide = false;
        if (hidden && !sg_ynode_is_null(hidden) &&
            (hidden->kind != SG_YSCALAR || !sg_cfg_parse_bool(hidden->s, &hide)))
            sg_cfg_err(ld, hidden->line, "%s.hidden must be true or false", apath);
        if (sg_cfg_has_alias(ld, k->s) || sg_cfg_unrouted_alias(ld, k->s))
            sg_cfg_warn(ld, k->line,
                        "%s: '%.60s' is a model_name of model_list already: the alias is "
                        "ignored, requests for it go to its own deployments",
                        apath, k->s);
        else if (target_ok(ld, t->line, tpath, target, "the alias is ignored") &&
                 !sg_cfg_add_alias_group(ld, k->s, target, hide))
            warn_missing_alias(ld, t->line, tpath, target, "the alias is ignored");
        free(target);
    }
}

static const struct sg_cfg_field strategy_args_fields[] = {
    {"ttl", SG_FT_SECS_MS, OFF(struct sg_router_settings, latency_ttl_ms), .def = 60, .min = 0,
     .max = 86400, .flags = SG_FL_GT},
};
static const struct sg_cfg_ignored strategy_args_litellm[] = {
    {"lowest_latency_buffer", NULL}, {"max_latency_list_size", NULL}, {NULL, NULL}};
static const struct sg_cfg_table strategy_args_table =
    TABLE(strategy_args_fields, strategy_args_litellm);

#define ROUTER(m) OFF(struct sg_router_settings, m)
static const struct sg_cfg_field router_fields[] = {
    {"routing_strategy", SG_FT_CUSTOM, 0, .custom = routing_strategy},
    {"enable_weighted_failover", SG_FT_BOOL, ROUTER(enable_weighted_failover), .def = 1},
    {"num_retries", SG_FT_INT, ROUTER(num_retries), .def = 1, .min = 0, .max = 100},
    {"allowed_fails", SG_FT_INT, ROUTER(allowed_fails), .def = 3, .min = 0, .max = 1000000},
    {"cooldown_time", SG_FT_SECS_MS, ROUTER(cooldown_ms), .def = 30, .min = 0, .max = 86400},
    {"timeout", SG_FT_SECS_MS, ROUTER(timeout_ms), .def = 30, .min = 0, .max = 86400,
     .flags = SG_FL_GT},
    {"stream_timeout", SG_FT_SECS_MS, ROUTER(stream_timeout_ms), .def = 0, .min = 0, .max = 86400},
    {"hedge_after_ms", SG_FT_MS, ROUTER(hedge_after_ms), .def = 0, .min = 0, .max = 600000},
    {"routing_strategy_args", SG_FT_MAP, 0, .sub = &strategy_args_table},
    {"fallbacks", SG_FT_CUSTOM, 0, .custom = fallbacks},
    {"context_window_fallbacks", SG_FT_CUSTOM, 0, .custom = cw_fallbacks},
    /* Read once the whole section is (router_defaults): it appends to the fallbacks. */
    {"default_fallbacks", SG_FT_CUSTOM, 0, .custom = sg_cfg_later},
    {"model_group_alias", SG_FT_CUSTOM, 0, .custom = model_group_alias},
};
static const struct sg_cfg_ignored router_litellm[] = {
    {"redis_host", "set general_settings.redis_url: redis://HOST:PORT/0 instead"},
    {"redis_port", "set general_settings.redis_url: redis://HOST:PORT/0 instead"},
    {"redis_password", "put the password in general_settings.redis_url"},
    {"redis_url", "move it to general_settings.redis_url"},
    {"routing_groups", "one routing_strategy applies to every group"},
    {"cache_responses", "configure caching per feature under features:"},
    {"cache_kwargs", NULL},
    {"content_policy_fallbacks", NULL},
    {"retry_policy", "num_retries applies to every error class"},
    {"model_group_retry_policy", NULL},
    {"allowed_fails_policy", "allowed_fails applies to every error class"},
    {"enable_pre_call_checks", NULL},
    {"optional_pre_call_checks", NULL},
    {"retry_after", NULL},
    {"provider_budget_config", "use budgets: and features: caps"},
    {"default_litellm_params", NULL},
    {"set_verbose", "use server.log_level"},
    {"debug_level", "use server.log_level"},
    {"disable_cooldowns", "set cooldown_time: 0"},
    {"polling_interval", NULL},
    {"max_fallbacks", NULL},
    {"enable_tag_filtering", NULL},
    {"default_max_parallel_requests", NULL},
    {"client_ttl", NULL},
    {"default_priority", NULL},
    {"router_general_settings", NULL},
    {"alerting_config", "use alerts.sinks"},
    {"redis_db", "put the database number in general_settings.redis_url"},
    {"enable_pre_call_check", NULL},
    {"tag_filtering_match_any", NULL},
    {"caching_groups", NULL},
    {"assistants_config", NULL},
    {"deployment_affinity_ttl_seconds", NULL},
    {"ignore_invalid_deployments", NULL},
    {"search_tools", NULL},
    {"guardrail_list", NULL},
    {NULL, NULL},
};
const struct sg_cfg_table sg_cfg_router_table = TABLE(router_fields, router_litellm);

/* LiteLLM's router takes these from litellm_settings when router_settings does not set them
 * (Router.__init__: `num_retries` else litellm.num_retries, `timeout or
 * litellm.request_timeout`, `fallbacks or litellm.fallbacks`, ...), and LiteLLM's own docs put
 * them there: so does slogate. */
static const struct {
    const char *lkey, *rkey;
} router_keys[] = {
    {"num_retries", "num_retries"},
    {"request_timeout", "timeout"},
    {"allowed_fails", "allowed_fails"},
    {"fallbacks", "fallbacks"},
    {"context_window_fallbacks", "context_window_fallbacks"},
    {"default_fallbacks", "default_fallbacks"}, /* read here for both sections */
};

void sg_cfg_router_defaults(struct sg_cfg_loader *ld, const struct sg_ynode *root)
{
    const struct sg_ynode *rn = sg_ynode_get(root, "router_settings");
    const struct sg_ynode *ln = sg_ynode_get(root, "litellm_settings");
    struct sg_router_settings *r = &ld->c->router;
    char path[SG_CFG_PATH_MAX];
    for (size_t i = 0; i < SG_ARRAY_LEN(router_keys); i++) {
        const char *lkey = router_keys[i].lkey, *rkey = router_keys[i].rkey;
        const struct sg_ynode *lv = sg_ynode_get(ln, lkey), *rv = sg_ynode_get(rn, rkey);
        bool has_l = lv && !sg_ynode_is_null(lv), has_r = rv && !sg_ynode_is_null(rv);
        if (has_l && has_r) {
            sg_cfg_at(ld, "litellm_settings");
            sg_cfg_warn(ld, lv->line,
                        "litellm_settings.%s is ignored because router_settings.%s is set, as "
                        "LiteLLM's router does: remove one of them",
                        lkey, rkey);
        }
        bool fallbacks_default = strcmp(rkey, "default_fallbacks") == 0;
        if (!has_l && !(has_r && fallbacks_default))
            continue;
        if (has_r && !fallbacks_default)
            continue; /* the router table read it */
        const char *section = has_r ? "router_settings" : "litellm_settings";
        sg_cfg_at(ld, section);
        snprintf(path, sizeof path, "%s.%s", section, has_r ? rkey : lkey);
        if (fallbacks_default) {
            default_fallbacks(ld, has_r ? rv : lv, path, r);
            continue;
        }
        for (size_t f = 0; f < SG_ARRAY_LEN(router_fields); f++)
            if (strcmp(router_fields[f].key, rkey) == 0)
                sg_cfg_value(ld, &router_fields[f], lv, path, r);
    }
    ld->file = ld->main_file;
}

void sg_cfg_free_router(struct sg_router_settings *r)
{
    free(r->routing_strategy);
    free_fallbacks(r->fallbacks, r->n_fallbacks);
    free_fallbacks(r->context_window_fallbacks, r->n_context_window_fallbacks);
}
