/*
 * config: LiteLLM's wildcard routes (a '*' in model_name), as LiteLLM's PatternMatchRouter
 * serves them — which entries load and which are left out with a warning, the order routes are
 * tried in (LiteLLM's specificity), what each '*' takes, the model a deployment is then called
 * with, the router's resolution (exact names first; a bare name with the provider LiteLLM would
 * put before it), fallbacks keyed by the name the client sent, and the names /v1/models lists.
 */
#include "config_load.h"

#include "router/router.h"

/* One deployment: `name` served by `model` at a loopback endpoint. */
#define WILD(name, model)                                                                          \
    "  - model_name: \"" name "\"\n"                                                               \
    "    litellm_params: { model: \"" model                                                        \
    "\", api_key: k, api_base: \"http://127.0.0.1:1/v1\" }\n"

/* The model `name` resolves to through deployment j of its group, or NULL when nothing serves
 * it. `buf` holds the answer. */
static const char *resolve(const struct sg_config *c, const char *name, size_t j, char *buf,
                           const char **alias)
{
    struct sg_match m;
    const struct sg_group *g = sg_config_resolve(c, name, strlen(name), &m);
    if (alias)
        *alias = g ? g->alias : NULL;
    if (!g)
        return NULL;
    assert_ptr_equal(m.group, g);
    return sg_config_fill(g->deployments[j], &m, buf);
}

/* `name` resolves to the group `alias`, whose first deployment is then called with `model`. */
static void expect_route(const struct sg_config *c, const char *name, const char *model,
                         const char *alias)
{
    char buf[SG_WILD_MODEL_MAX];
    const char *got_alias;
    const char *got = resolve(c, name, 0, buf, &got_alias);
    if (!got)
        fail_msg("%s resolves to no group", name);
    assert_string_equal(got, model);
    assert_string_equal(got_alias, alias);
}

/* ---- which entries are served ---- */

static void test_litellm_shapes_are_served(void **state)
{
    (void)state;
    /* LiteLLM's proxy docs ("Provider specific wildcard routing", the configs page): a route
     * per provider, a catch-all, a team prefix, a fixed model behind a pattern. */
    struct sg_config *c =
        load("model_list:\n" WILD("anthropic/*", "anthropic/*") WILD("openai/*", "openai/*")
                 WILD("my-team/*", "openai/*") WILD("*", "openai/*")
                     WILD("cheap/*", "openai/gpt-4o-mini") WILD("gpt-4o", "openai/gpt-4o"));
    assert_clean(c);
    assert_int_equal(c->n_groups, 6);
    assert_int_equal(c->n_patterns, 5);
    assert_int_equal(c->groups[0].stars, 1);
    assert_int_equal(c->groups[5].stars, 0);
    assert_int_equal(c->groups[0].deployments[0]->stars, 1);
    assert_int_equal(c->groups[4].deployments[0]->stars, 0); /* one fixed model */
    assert_string_equal(c->groups[0].deployments[0]->provider_model, "*");

    /* The '*' of model_name fills the '*' of the model. */
    expect_route(c, "gpt-4o-mini", "gpt-4o-mini", "*");
    expect_route(c, "openai/gpt-4o", "gpt-4o", "openai/*");
    expect_route(c, "anthropic/claude-3-5-haiku-latest", "claude-3-5-haiku-latest", "anthropic/*");
    expect_route(c, "my-team/o3-mini", "o3-mini", "my-team/*");
    /* A model with no '*' is called as written, whatever the name. */
    expect_route(c, "cheap/anything", "gpt-4o-mini", "cheap/*");
    /* Exact names win over every route, "*" included. */
    expect_route(c, "gpt-4o", "gpt-4o", "gpt-4o");
    sg_config_unref(c);
}

static void test_bad_shapes_are_left_out_saying_what_to_write(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"                            /* 1 */
                               WILD("team", "openai/*")                   /* 2-3 */
                               WILD("a/*", "openai/*-*")                  /* 4-5 */
                               WILD("*/*", "openai/*")                    /* 6-7 */
                               WILD("x/*", "*/gpt-4o")                    /* 8-9 */
                               WILD("*.*.*.*.*.*.*.*.*", "openai/gpt-4o") /* 10-11 */
                               WILD("chat", "openai/gpt-4o"));            /* 12-13 */
    assert_loaded(c);
    assert_warning(3, "model_list[0] (team) is not routed: litellm_params.model 'openai/*' has a "
                      "'*' but model_name 'team' has none to fill it (LiteLLM would send the "
                      "'*' itself as the model): write model_name: \"team/*\" so that "
                      "team/<model> calls <model>, or name the model (model: openai/gpt-4o)");
    assert_warning(5, "model_list[1] (a/*) is not routed: litellm_params.model 'openai/*-*' has "
                      "2 '*' but model_name 'a/*' has 1: the i-th '*' of the model takes what the "
                      "i-th '*' of model_name matched, so write as many in model_name (or fewer "
                      "in the model)");
    assert_warning(7, "model_list[2] (*/*) is not routed: model_name '*/*' has 2 '*' but "
                      "litellm_params.model 'openai/*' has 1: LiteLLM then sends the client's "
                      "whole model name upstream, not its parts; write as many '*' in the model "
                      "as in model_name (the i-th takes what the i-th matched), or none to call "
                      "one model");
    assert_warning(9, "model_list[3] (x/*) is not routed: '*' in the provider of "
                      "litellm_params.model '*/gpt-4o': LiteLLM picks each request's provider "
                      "there, slogate calls one provider per deployment; write the provider, one "
                      "entry per provider (model: openai/*, model: anthropic/*)");
    assert_warning(11, "model_list[4] (*.*.*.*.*.*.*.*.*) is not routed: model_name "
                       "'*.*.*.*.*.*.*.*.*' has 9 '*': slogate takes at most 8");
    assert_int_equal(warnings(), 5);
    assert_int_equal(c->n_groups, 1);
    assert_int_equal(c->n_patterns, 0);
    /* A client asking for such a name is told why, as for any entry left out. */
    const char *why = sg_config_unrouted(c, "team", 4);
    assert_non_null(why);
    assert_non_null(strstr(why, "has a '*' but model_name 'team' has none"));
    /* No such name: the reason of the route that would have taken it, the most specific first
     * ("*-slash-*" is longer than "a-slash-*", as LiteLLM orders them). */
    why = sg_config_unrouted(c, "a/gpt-4o", 8);
    assert_non_null(why);
    assert_non_null(strstr(why, "model_name '*/*' has 2 '*'"));
    why = sg_config_unrouted(c, "x.y", 3);
    assert_null(why);
    assert_null(sg_config_unrouted(c, "chat2", 5));
    sg_config_unref(c);
}

static void test_providers_without_adapter_stay_left_out(void **state)
{
    (void)state;
    /* A wildcard changes nothing for a provider slogate cannot call: the same warning. */
    struct sg_config *c =
        load("model_list:\n"
             "  - model_name: \"bedrock/*\"\n"
             "    litellm_params: { model: \"bedrock/*\" }\n"
             "  - model_name: \"*\"\n"
             "    litellm_params: { model: \"vertex_ai/*\" }\n" WILD("chat", "openai/gpt-4o"));
    assert_loaded(c);
    assert_warning(3, "model_list[0] (bedrock/*) is not routed: slogate has no bedrock adapter "
                      "(it speaks the OpenAI and Anthropic APIs); to reach * through an "
                      "OpenAI-compatible endpoint, write model: openai/* with that endpoint as "
                      "api_base");
    assert_warning(5, "model_list[1] (*) is not routed: slogate has no vertex_ai adapter");
    assert_int_equal(c->n_patterns, 0);
    assert_int_equal(c->n_unrouted_patterns, 2);
    struct sg_match m;
    assert_null(sg_config_resolve(c, "bedrock/claude", 14, &m));
    /* Its names get the reason of the route that would have served them: the more specific
     * route first, as it would have been tried. */
    assert_non_null(strstr(sg_config_unrouted(c, "bedrock/claude", 14), "no bedrock adapter"));
    assert_non_null(strstr(sg_config_unrouted(c, "gemini-pro", 10), "no vertex_ai adapter"));
    sg_config_unref(c);
}

static void test_model_without_provider_warns(void **state)
{
    (void)state;
    /* LiteLLM guesses each name's provider for a bare "*"; slogate reads a model without a
     * provider as OpenAI's, as everywhere, and says so. An api_base of its own is no guess. */
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: \"*\"\n"
                               "    litellm_params: { model: \"*\", api_key: k }\n"
                               "  - model_name: \"local/*\"\n"
                               "    litellm_params: { model: \"*\", api_base: "
                               "\"http://127.0.0.1:8000/v1\" }\n");
    assert_loaded(c);
    assert_warning(3, "model_list[0].litellm_params.model '*' names no provider, so every model "
                      "it takes is sent to OpenAI (LiteLLM picks each name's provider from its "
                      "own model list): write openai/* to say so, and an entry per other "
                      "provider (model_name: \"anthropic/*\", model: \"anthropic/*\")");
    assert_int_equal(warnings(), 1);
    char buf[SG_WILD_MODEL_MAX];
    assert_string_equal(resolve(c, "local/llama3", 0, buf, NULL), "llama3");
    assert_string_equal(c->groups[1].deployments[0]->provider, "openai");
    sg_config_unref(c);
}

/* ---- which route, and what each '*' takes ---- */

static void test_most_specific_route_first(void **state)
{
    (void)state;
    /* LiteLLM sorts its routes by (length, complexity) of the regex it makes of each name,
     * re.escape(name) with '*' as "(.*)", longest first: "openai/gpt\-4o(.*)" (18 characters),
     * "(.*)\-(.*)\-(.*)" (16), "openai/(.*)" (11), "a/(.*)" (6), "(.*)" (4). So the three-dash
     * route takes openai/gpt-4-turbo-x before the openai route does, as in LiteLLM. */
    struct sg_config *c = load("model_list:\n" WILD("*", "openai/*") WILD("openai/*", "openai/*")
                                   WILD("a/*", "openai/*") WILD("*-*-*", "openai/*-*-*")
                                       WILD("openai/gpt-4o*", "openai/gpt-4o*"));
    assert_clean(c);
    const char *order[] = {"openai/gpt-4o*", "*-*-*", "openai/*", "a/*", "*"};
    assert_int_equal(c->n_patterns, 5);
    for (size_t i = 0; i < 5; i++)
        assert_string_equal(c->patterns[i].text, order[i]);
    char buf[SG_WILD_MODEL_MAX];
    const char *alias;
    expect_route(c, "openai/gpt-4o-mini", "gpt-4o-mini", "openai/gpt-4o*");
    expect_route(c, "openai/gpt-4.1", "gpt-4.1", "openai/*");
    expect_route(c, "openai/gpt-4-turbo-x", "openai/gpt-4-turbo-x", "*-*-*");
    expect_route(c, "a/b", "b", "a/*");
    expect_route(c, "b/c", "b/c", "*");
    sg_config_unref(c);

    /* Equal keys: the one written first ("*a" and "a*" are both 5 characters, complexity 3). */
    c = load("model_list:\n" WILD("*a", "openai/x-*") WILD("a*", "openai/y-*"));
    assert_clean(c);
    expect_route(c, "aa", "x-a", "*a");
    sg_config_unref(c);
    c = load("model_list:\n" WILD("a*", "openai/y-*") WILD("*a", "openai/x-*"));
    assert_clean(c);
    assert_string_equal(resolve(c, "aa", 0, buf, &alias), "y-a");
    sg_config_unref(c);
}

static void test_each_star_takes_what_python_re_gives_it(void **state)
{
    (void)state;
    /* LiteLLM's regex: each '*' a greedy "(.*)", the first as long as what follows allows. Its
     * docs' example: "fo::*:static::*" asked as fo::hi::static::hi calls fo::hi::static::hi. */
    struct sg_config *c = load("model_list:\n" WILD("fo::*:static::*", "openai/fo::*:static::*")
                                   WILD("x/*/*", "openai/*--*") WILD("p*q", "openai/[*]"));
    assert_clean(c);
    char buf[SG_WILD_MODEL_MAX];
    const char *alias;
    expect_route(c, "fo::hi::static::hi", "fo::hi::static::hi", "fo::*:static::*");
    assert_string_equal(resolve(c, "fo::a:static::b:static::c", 0, buf, NULL),
                        "fo::a:static::b:static::c");
    struct sg_match m;
    assert_non_null(sg_config_resolve(c, "fo::a:static::b:static::c", 25, &m));
    assert_int_equal(m.n, 2);
    assert_int_equal(m.len[0], strlen("a:static::b"));
    assert_memory_equal(m.text + m.off[0], "a:static::b", m.len[0]);
    assert_memory_equal(m.text + m.off[1], "c", m.len[1]);
    expect_route(c, "x/a/b/c", "a/b--c", "x/*/*");
    assert_string_equal(resolve(c, "pq", 0, buf, &alias), "[]"); /* '*' may take nothing */
    expect_route(c, "pxqyq", "[xqy]", "p*q");
    /* The whole name must match: LiteLLM's re.match would take "pq" of "pqr" and call p*q's
     * model, dropping the "r"; slogate matches names whole. */
    assert_null(resolve(c, "pqr", 0, buf, &alias));
    sg_config_unref(c);
    /* Two stars side by side: the first takes everything. */
    c = load("model_list:\n" WILD("**", "openai/*|*"));
    assert_clean(c);
    assert_string_equal(resolve(c, "zzz", 0, buf, &alias), "zzz|");
    sg_config_unref(c);
}

static void test_names_no_route_takes(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n" WILD("*", "openai/*") WILD(
        "gpt-4o", "openai/gpt-4o") "router_settings:\n  model_group_alias: {gpt-4: gpt-4o, "
                                   "\"gpt-*\": gpt-4o}\n");
    assert_clean(c);
    struct sg_match m;
    /* An alias is an exact name: it wins, and is no route, whatever it holds. */
    expect_route(c, "gpt-4", "gpt-4o", "gpt-4");
    expect_route(c, "gpt-*", "gpt-4o", "gpt-*");
    assert_int_equal(c->groups[3].stars, 0);
    assert_int_equal(c->n_patterns, 1);
    expect_route(c, "gpt-5", "gpt-5", "*");
    /* The route's own name, sent as is: each '*' takes a '*' (LiteLLM sends that upstream). */
    expect_route(c, "*", "*", "*");
    /* LiteLLM's '.' takes no newline; names too long for a route match none. */
    assert_null(sg_config_resolve(c, "a\nb", 3, &m));
    char longname[SG_MATCH_MAX + 1];
    memset(longname, 'a', sizeof longname - 1);
    longname[SG_MATCH_MAX] = '\0';
    assert_null(sg_config_resolve(c, longname, SG_MATCH_MAX, &m));
    assert_non_null(sg_config_resolve(c, longname, SG_MATCH_MAX - 1, &m));
    assert_int_equal(m.len[0], SG_MATCH_MAX - 1);
    sg_config_unref(c);
}

/* ---- fallbacks and aliases ---- */

static void test_fallbacks_and_aliases(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"                                     /* 1 */
                               WILD("*", "openai/*")                               /* 2-3 */
                               WILD("anthropic/*", "anthropic/*")                  /* 4-5 */
                               WILD("backup", "openai/gpt-4o-mini")                /* 6-7 */
                               "router_settings:\n"                                /* 8 */
                               "  fallbacks:\n"                                    /* 9 */
                               "    - gpt-4o: [backup]\n"                          /* 10 */
                               "    - backup: [\"anthropic/*\", claude-3-haiku]\n" /* 11 */
                               "  model_group_alias:\n"                            /* 12 */
                               "    claude: anthropic/*\n");                       /* 13 */
    assert_loaded(c);
    /* A name a route serves is a fallback source: LiteLLM keys fallbacks by the name sent. */
    assert_false(has(SG_DIAG_WARNING, 10, ""));
    assert_int_equal(c->router.n_fallbacks, 1);
    assert_string_equal(c->router.fallbacks[0].alias, "gpt-4o");
    /* A route whose model takes the client's name has no name to take as a target. */
    assert_warning(11, "router_settings.fallbacks[1].backup[0]: 'anthropic/*' is a wildcard "
                       "route whose model takes the client's model name ('anthropic/*'), which "
                       "a fallback or alias does not give: skipped (name a model_name whose "
                       "model is written out)");
    assert_warning(11, "router_settings.fallbacks[1].backup[1]: 'claude-3-haiku' is no "
                       "model_name, only a name the wildcard route '*' serves to clients: add a "
                       "model_list entry with model_name: claude-3-haiku; skipped");
    assert_warning(13, "router_settings.model_group_alias.claude: 'anthropic/*' is a wildcard "
                       "route whose model takes the client's model name ('anthropic/*'), which "
                       "a fallback or alias does not give: the alias is ignored");
    assert_int_equal(warnings(), 3);
    struct sg_match m;
    assert_ptr_equal(sg_config_resolve(c, "claude", 6, &m), &c->groups[0]); /* "*" serves it */
    sg_config_unref(c);
}

/* ---- the router ---- */

struct rfx {
    struct sg_config *c;
    struct sg_health *h;
    struct sg_router *r;
};

static void rfx_load(struct rfx *f, const char *yaml)
{
    f->c = load(yaml);
    assert_loaded(f->c);
    f->h = sg_health_new();
    f->r = sg_router_new(f->c, f->h);
}

static void rfx_free(struct rfx *f)
{
    sg_router_free(f->r);
    sg_config_unref(f->c);
    sg_health_free(f->h);
}

static void test_router_puts_the_provider_before_a_bare_name(void **state)
{
    (void)state;
    /* LiteLLM's get_pattern: route(model) or route(f"{provider}/{model}"), the provider its
     * get_llm_provider knows for the name: an OpenAI SDK's "gpt-4o" reaches the openai route. */
    struct rfx f;
    rfx_load(&f, "model_list:\n" WILD("openai/*", "openai/*") WILD("anthropic/*", "anthropic/*")
                     WILD("my-team/*", "openai/*"));
    struct sg_match m;
    char buf[SG_WILD_MODEL_MAX];
    const struct sg_router_group *rg = sg_router_resolve(f.r, "gpt-4o", 6, &m);
    assert_non_null(rg);
    assert_string_equal(rg->group->alias, "openai/*");
    assert_string_equal(sg_config_fill(rg->group->deployments[0], &m, buf), "gpt-4o");
    rg = sg_router_resolve(f.r, "claude-3-5-haiku-20241022", 25, &m);
    assert_non_null(rg);
    assert_string_equal(rg->group->alias, "anthropic/*");
    assert_string_equal(sg_config_fill(rg->group->deployments[0], &m, buf),
                        "claude-3-5-haiku-20241022");
    /* A name LiteLLM knows no provider for, or one with a prefix, is not guessed at. */
    assert_null(sg_router_resolve(f.r, "llama3", 6, &m));
    assert_null(sg_router_resolve(f.r, "x/gpt-4o", 8, &m));
    /* Exact names are the config's index, the same as sg_router_group. */
    rg = sg_router_resolve(f.r, "my-team/*", 9, &m);
    assert_ptr_equal(rg, sg_router_group(f.r, "my-team/*", 9));
    rfx_free(&f);
}

static uint64_t zero_rand(void *ud)
{
    (void)ud;
    return 0;
}

static void test_fallbacks_keyed_by_the_name_sent(void **state)
{
    (void)state;
    /* The client asks for gpt-4o, which "*" serves: LiteLLM looks its fallbacks up by
     * "gpt-4o"; the route's own name ("*") comes next. Deployment health is the route's: the
     * failure of gpt-4o counts against wild, for every name "*" serves. */
    struct rfx f;
    rfx_load(&f, "model_list:\n"
                 "  - model_name: \"*\"\n"
                 "    litellm_params: { model: \"openai/*\", api_key: k, api_base: "
                 "\"http://127.0.0.1:1/v1\" }\n"
                 "    model_info: { id: wild }\n"
                 "  - model_name: backup\n"
                 "    litellm_params: { model: openai/b, api_key: k, api_base: "
                 "\"http://127.0.0.1:1/v1\" }\n"
                 "    model_info: { id: b }\n"
                 "  - model_name: other\n"
                 "    litellm_params: { model: openai/o, api_key: k, api_base: "
                 "\"http://127.0.0.1:1/v1\" }\n"
                 "    model_info: { id: o }\n"
                 "router_settings:\n"
                 "  num_retries: 0\n"
                 "  allowed_fails: 1\n"
                 "  fallbacks: [{gpt-4o: [backup]}, {\"*\": [other]}]\n");
    struct sg_match m;
    const struct sg_router_group *rg = sg_router_resolve(f.r, "gpt-4o", 6, &m);
    assert_non_null(rg);
    struct sg_route rt = {.rand = zero_rand};
    sg_route_begin(&rt, f.r, rg, false, 1000, 31000);
    rt.name = "gpt-4o";
    rt.name_len = 6;
    const struct sg_deployment *d = sg_route_next(&rt, 1000);
    assert_string_equal(d->id, "wild");
    sg_route_report(&rt, d, SG_OUT_FAILURE, 1000, 0, 0, 0, 0);
    d = sg_route_next(&rt, 1000);
    assert_non_null(d);
    assert_string_equal(d->id, "b");
    sg_route_report(&rt, d, SG_OUT_SUCCESS, 1000, 0, 0, 0, 0);

    /* Another name of the same route: the route's fallbacks ("*" here), and its deployment is
     * cooling down for gpt-4o's failure (allowed_fails: 1): state is per deployment. */
    rg = sg_router_resolve(f.r, "o3-mini", 7, &m);
    sg_route_begin(&rt, f.r, rg, false, 1001, 31001);
    rt.name = "o3-mini";
    rt.name_len = 7;
    d = sg_route_next(&rt, 1001);
    assert_non_null(d);
    assert_string_equal(d->id, "o");
    rfx_free(&f);
}

static void collect(const char *name, void *ud)
{
    char *out = ud;
    strcat(out, name);
    strcat(out, " ");
}

static void test_listed_names(void **state)
{
    (void)state;
    /* /v1/models: LiteLLM lists a route's own name and the provider's models it knows, with
     * the route's prefix; slogate's known models are its price table's. A name another group
     * takes (an exact name, a more specific route) is not the route's to list. */
    struct rfx f;
    rfx_load(&f, "model_list:\n" WILD("my-team/*", "openai/*")
                     WILD("my-team/gpt-4o", "openai/gpt-4o-2024-08-06")
                         WILD("my-team/o*", "openai/o*") WILD("claude/*", "anthropic/claude-*")
                             WILD("groq/*", "groq/*") WILD("fixed/*", "openai/gpt-4o"));
    static char out[8192];
    out[0] = '\0';
    sg_router_wildcard_names(f.r, &f.c->groups[0], collect, out);
    assert_non_null(strstr(out, "my-team/gpt-4o-mini "));
    assert_non_null(strstr(out, "my-team/gpt-5 "));
    assert_non_null(strstr(out, "my-team/text-embedding-3-small "));
    assert_null(strstr(out, "my-team/gpt-4o ")); /* an exact name */
    assert_null(strstr(out, "my-team/o3 "));     /* my-team/o* is longer, so more specific */
    assert_null(strstr(out, "claude"));          /* only the deployment's provider */
    out[0] = '\0';
    sg_router_wildcard_names(f.r, &f.c->groups[2], collect, out);
    assert_string_equal(out, "my-team/o1 my-team/o1-mini my-team/o3 my-team/o3-mini "
                             "my-team/o4-mini ");
    out[0] = '\0';
    sg_router_wildcard_names(f.r, &f.c->groups[3], collect, out);
    assert_non_null(strstr(out, "claude/3-5-haiku "));
    assert_null(strstr(out, "gpt"));
    /* No price table for the provider, or a fixed model: the route's own name only. */
    out[0] = '\0';
    sg_router_wildcard_names(f.r, &f.c->groups[4], collect, out);
    sg_router_wildcard_names(f.r, &f.c->groups[5], collect, out);
    assert_string_equal(out, "");
    rfx_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_litellm_shapes_are_served, teardown),
        cmocka_unit_test_teardown(test_bad_shapes_are_left_out_saying_what_to_write, teardown),
        cmocka_unit_test_teardown(test_providers_without_adapter_stay_left_out, teardown),
        cmocka_unit_test_teardown(test_model_without_provider_warns, teardown),
        cmocka_unit_test_teardown(test_most_specific_route_first, teardown),
        cmocka_unit_test_teardown(test_each_star_takes_what_python_re_gives_it, teardown),
        cmocka_unit_test_teardown(test_names_no_route_takes, teardown),
        cmocka_unit_test_teardown(test_fallbacks_and_aliases, teardown),
        cmocka_unit_test_teardown(test_router_puts_the_provider_before_a_bare_name, teardown),
        cmocka_unit_test_teardown(test_fallbacks_keyed_by_the_name_sent, teardown),
        cmocka_unit_test_teardown(test_listed_names, teardown),
    };
    return cmocka_run_group_tests_name("config_wildcard", tests, NULL, NULL);
}
