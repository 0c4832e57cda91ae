/*
 * config: LiteLLM configs as LiteLLM's proxy reads them. Entries slogate cannot route (a
 * provider without an adapter, a wildcard it cannot fill, no endpoint) load with a warning and are
 * left out; the OpenAI-compatible APIs of Gemini, Ollama and Azure OpenAI; rpm/tpm beside
 * litellm_params; the router settings LiteLLM also takes from litellm_settings;
 * default_fallbacks and model_group_alias; and `include:` of other files. Each test says which
 * LiteLLM behaviour it pins.
 */
#include "config_load.h"

#include <sys/stat.h>
#include <unistd.h>

/* ---- entries slogate does not route ---- */

static void test_unrouted_entries_are_left_out(void **state)
{
    (void)state;
    /* LiteLLM's proxy builds its router with ignore_invalid_deployments: a deployment it
     * cannot set up is logged and dropped, the others are served. The secret of an entry that
     * is not routed is never looked up, so an unset one is no error. */
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: claude\n"
                               "    litellm_params:\n"
                               "      model: bedrock/anthropic.claude-v2\n"
                               "      aws_secret_access_key: os.environ/UNSET_AWS_SECRET\n"
                               "      api_key: os.environ/UNSET_KEY\n"
                               "  - model_name: team\n"
                               "    litellm_params: { model: \"openai/*\" }\n"
                               "  - model_name: bedrock/*\n"
                               "    litellm_params: { model: bedrock/*, api_key: k }\n"
                               "  - model_name: chat\n"
                               "    litellm_params: { model: openai/gpt-4o-mini, api_key: k, "
                               "order: 0 }\n"
                               "  - model_name: gpt-35\n"
                               "    litellm_params: { model: azure/gpt-35 }\n");
    assert_null(c); /* the bad order of model_list[3] still counts, with its own index */
    assert_warning(4, "model_list[0] (claude) is not routed: slogate has no bedrock adapter (it "
                      "speaks the OpenAI and Anthropic APIs); to reach anthropic.claude-v2 "
                      "through an OpenAI-compatible endpoint, write model: "
                      "openai/anthropic.claude-v2 with that endpoint as api_base");
    /* Wildcard routes are served (test_config_wildcard.c), but for what cannot be filled. */
    assert_warning(8, "model_list[1] (team) is not routed: litellm_params.model 'openai/*' has a "
                      "'*' but model_name 'team' has none to fill it");
    assert_warning(10, "model_list[2] (bedrock/*) is not routed: slogate has no bedrock adapter");
    assert_error(12, "model_list[3].litellm_params.order must be an integer >= 1, got \"0\"");
    assert_warning(14, "model_list[4] (gpt-35) is not routed: azure needs its endpoint: set "
                       "litellm_params.api_base (https://NAME.openai.azure.com for Azure) or "
                       "export AZURE_API_BASE");
    assert_int_equal(sg_diags_errors(&D), 1);
    assert_false(has(SG_DIAG_ERROR, -1, "UNSET"));
}

static void test_unrouted_config_loads(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: claude\n"
                               "    litellm_params: { model: bedrock/anthropic.claude-v2 }\n"
                               "  - model_name: chat\n"
                               "    litellm_params: { model: openai/gpt-4o-mini, api_key: k }\n"
                               "  - model_name: embed\n"
                               "    litellm_params: { model: sagemaker/gpt-j }\n");
    assert_loaded(c);
    assert_int_equal(c->n_deployments, 1);
    assert_int_equal(c->n_groups, 1);
    assert_string_equal(c->groups[0].alias, "chat");
    /* Where the deployment is written, for check's own messages. */
    assert_int_equal(c->deployments[0].index, 1);
    assert_string_equal(c->deployments[0].file, "t.yaml");
    assert_int_equal(c->deployments[0].line, 4);
    assert_int_equal(warnings(), 2);
    sg_config_unref(c);

    c = load("model_list:\n"
             "  - model_name: claude\n"
             "    litellm_params: { model: vertex_ai/gemini-pro }\n");
    assert_loaded(c);
    assert_int_equal(c->n_deployments, 0);
    assert_warning(2, "none of the 1 model_list entries can be routed by slogate (each says "
                      "why): the gateway has nothing to route to, and serve refuses to start");
    sg_config_unref(c);
}

/* ---- OpenAI-compatible endpoints of LiteLLM providers ---- */

static void test_openai_compatible_providers(void **state)
{
    (void)state;
    static const struct kv env[] = {{"GEMINI_API_KEY", "g-key"},
                                    {"AZURE_API_KEY", "az-key"},
                                    {"AZURE_API_BASE", "https://env-res.openai.azure.com/"},
                                    {NULL, NULL}};
    struct sg_config *c = load_env(
        "model_list:\n"
        "  - model_name: a\n"
        "    litellm_params: { model: gemini/gemini-2.0-flash }\n"
        "  - model_name: b\n"
        "    litellm_params: { model: ollama/llama2 }\n"
        "  - model_name: c\n"
        "    litellm_params: { model: ollama_chat/llama3, api_base: \"http://gpu:11434/\" }\n"
        "  - model_name: d\n"
        "    litellm_params: { model: azure/chat-dep, api_base: "
        "\"https://res.openai.azure.com/\", api_version: \"2024-02-01\" }\n"
        "  - model_name: e\n"
        "    litellm_params: { model: azure/chat-dep, api_base: "
        "\"https://res.openai.azure.com/openai\", api_key: k }\n"
        "  - model_name: f\n"
        "    litellm_params: { model: azure/other }\n",
        env);
    assert_loaded(c);
    assert_int_equal(c->n_deployments, 6);
    /* Google's OpenAI-compatible Gemini endpoint, with LiteLLM's key variable. */
    assert_string_equal(c->deployments[0].api_base,
                        "https://generativelanguage.googleapis.com/v1beta/openai");
    assert_string_equal(c->deployments[0].api_key, "g-key");
    assert_string_equal(c->deployments[0].provider_model, "gemini-2.0-flash");
    /* LiteLLM's Ollama api_base is the server's root (default http://localhost:11434); its
     * OpenAI-compatible API is under /v1. */
    assert_string_equal(c->deployments[1].api_base, "http://localhost:11434/v1");
    assert_null(c->deployments[1].api_key);
    assert_string_equal(c->deployments[2].api_base, "http://gpu:11434/v1");
    /* Azure OpenAI: the resource's v1 API, the deployment name as the model. */
    assert_string_equal(c->deployments[3].api_base, "https://res.openai.azure.com/openai/v1");
    assert_string_equal(c->deployments[3].provider_model, "chat-dep");
    assert_string_equal(c->deployments[3].api_key, "az-key");
    assert_int_equal(c->deployments[3].kind, SG_PROVIDER_OPENAI);
    assert_warning(9, "model_list[3].litellm_params.api_version is a LiteLLM setting slogate "
                      "does not support; ignored (slogate calls Azure OpenAI's v1 API, which "
                      "takes none)");
    assert_string_equal(c->deployments[4].api_base, "https://res.openai.azure.com/openai/v1");
    assert_string_equal(c->deployments[4].api_key, "k");
    /* No api_base: AZURE_API_BASE, as LiteLLM reads it. */
    assert_string_equal(c->deployments[5].api_base, "https://env-res.openai.azure.com/openai/v1");
    assert_int_equal(warnings(), 1);
    sg_config_unref(c);

    static const struct kv no_key[] = {{"AZURE_API_BASE", "https://r.openai.azure.com"},
                                       {NULL, NULL}};
    c = load_env("model_list:\n"
                 "  - model_name: f\n"
                 "    litellm_params: { model: azure/other }\n",
                 no_key);
    assert_loaded(c);
    assert_warning(2, "model_list[0] has no litellm_params.api_key and AZURE_API_KEY is not "
                      "exported: azure will refuse its requests; set api_key: "
                      "os.environ/AZURE_API_KEY");
    sg_config_unref(c);
}

static void test_bare_claude_model_is_anthropic(void **state)
{
    (void)state;
    /* LiteLLM's reliability docs write `model: claude-3-opus-20240229`: LiteLLM finds the name
     * in its Anthropic list. Sent to OpenAI, the Anthropic key would go there too. */
    static const struct kv env[] = {{"ANTHROPIC_API_KEY", "ant-key"}, {NULL, NULL}};
    struct sg_config *c =
        load_env("model_list:\n"
                 "  - model_name: claude-opus\n"
                 "    litellm_params: { model: claude-3-opus-20240229 }\n"
                 "  - model_name: haiku\n"
                 "    litellm_params: { model: claude-3-haiku-20240307, api_base: "
                 "\"https://proxy.example/v1/messages\", api_key: k }\n"
                 "  - model_name: gpt\n"
                 "    litellm_params: { model: gpt-4o, api_key: k }\n",
                 env);
    assert_clean(c);
    const struct sg_deployment *d = &c->deployments[0];
    assert_string_equal(d->provider, "anthropic");
    assert_int_equal(d->kind, SG_PROVIDER_ANTHROPIC);
    assert_string_equal(d->provider_model, "claude-3-opus-20240229");
    assert_string_equal(d->api_base, "https://api.anthropic.com");
    assert_string_equal(d->api_key, "ant-key");
    assert_int_equal(c->deployments[1].kind, SG_PROVIDER_ANTHROPIC);
    assert_string_equal(c->deployments[1].api_base, "https://proxy.example");
    assert_string_equal(c->deployments[2].provider, "openai");
    sg_config_unref(c);
}

static void test_provider_defaults_and_key_variables(void **state)
{
    (void)state;
    /* LiteLLM gives these OpenAI-compatible providers an endpoint (its variable first), and
     * reads a provider's key from any of the variables it knows, first set first: a config
     * that names neither loads and calls the same endpoint with the same key as LiteLLM. */
    static const struct kv env[] = {{"CEREBRAS_API_KEY", "cb-key"},
                                    {"NVIDIA_NIM_API_BASE", "https://nim.internal/v1/"},
                                    {"TOGETHERAI_API_KEY", "tg-later"},
                                    {"TOGETHER_API_KEY", "tg-first"},
                                    {"FIREWORKS_API_KEY", "fw-key"},
                                    {"PERPLEXITYAI_API_KEY", ""},
                                    {"PERPLEXITY_API_KEY", "px-key"},
                                    {"GOOGLE_API_KEY", "gg-key"},
                                    {"OR_API_KEY", "or-key"},
                                    {"LITELLM_PROXY_API_BASE", "http://upstream-litellm:4000"},
                                    {"LITELLM_PROXY_API_KEY", "lp-key"},
                                    {NULL, NULL}};
    struct sg_config *c =
        load_env("model_list:\n"
                 "  - model_name: a\n"
                 "    litellm_params: { model: cerebras/llama3.1-70b }\n"
                 "  - model_name: b\n"
                 "    litellm_params: { model: nvidia_nim/meta/llama3-70b-instruct, api_key: k }\n"
                 "  - model_name: c\n"
                 "    litellm_params: { model: together_ai/meta-llama/Llama-3-70b-chat-hf }\n"
                 "  - model_name: d\n"
                 "    litellm_params: { model: fireworks_ai/accounts/fireworks/models/x }\n"
                 "  - model_name: e\n"
                 "    litellm_params: { model: perplexity/sonar }\n"
                 "  - model_name: f\n"
                 "    litellm_params: { model: gemini/gemini-2.0-flash }\n"
                 "  - model_name: g\n"
                 "    litellm_params: { model: openrouter/meta-llama/llama-3-70b-instruct }\n"
                 "  - model_name: h\n"
                 "    litellm_params: { model: litellm_proxy/gpt-4o }\n"
                 "  - model_name: i\n"
                 "    litellm_params: { model: deepinfra/meta-llama/Meta-Llama-3-8B-Instruct, "
                 "api_key: k }\n",
                 env);
    assert_clean(c);
    assert_int_equal(c->n_deployments, 9);
    static const struct {
        const char *base, *key;
    } want[] = {
        {"https://api.cerebras.ai/v1", "cb-key"},
        {"https://nim.internal/v1", "k"},
        {"https://api.together.xyz/v1", "tg-first"},
        {"https://api.fireworks.ai/inference/v1", "fw-key"},
        {"https://api.perplexity.ai", "px-key"},
        {"https://generativelanguage.googleapis.com/v1beta/openai", "gg-key"},
        {"https://openrouter.ai/api/v1", "or-key"},
        {"http://upstream-litellm:4000", "lp-key"},
        {"https://api.deepinfra.com/v1/openai", "k"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_string_equal(c->deployments[i].api_base, want[i].base);
        assert_string_equal(c->deployments[i].api_key, want[i].key);
        assert_int_equal(c->deployments[i].kind, SG_PROVIDER_OPENAI);
    }
    sg_config_unref(c);

    /* None of a provider's variables set: the warning names LiteLLM's first. */
    c = load_env("model_list:\n"
                 "  - model_name: c\n"
                 "    litellm_params: { model: together_ai/x }\n",
                 NULL);
    assert_loaded(c);
    assert_warning(2, "model_list[0] has no litellm_params.api_key and TOGETHER_API_KEY is not "
                      "exported: https://api.together.xyz/v1 will refuse its requests; set "
                      "api_key: os.environ/TOGETHER_API_KEY");
    sg_config_unref(c);
}

static void test_entry_rpm_tpm(void **state)
{
    (void)state;
    /* LiteLLM's router copies a deployment's own rpm/tpm into litellm_params when those have
     * none: load_balancer.yaml writes them beside litellm_params. */
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/x, api_key: k }\n"
                               "    tpm: 20000\n"
                               "    rpm: 3\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/y, api_key: k, rpm: 7 }\n"
                               "    rpm: 3\n"
                               "    tpm: -1\n");
    assert_null(c);
    assert_error(9, "model_list[1].tpm must be an integer >= 0, got \"-1\"");
    assert_int_equal(sg_diags_errors(&D), 1);
    assert_int_equal(warnings(), 0);

    c = load("model_list:\n"
             "  - model_name: a\n"
             "    litellm_params: { model: openai/x, api_key: k }\n"
             "    tpm: 20000\n"
             "    rpm: 3\n"
             "  - model_name: a\n"
             "    litellm_params: { model: openai/y, api_key: k, rpm: 7 }\n"
             "    rpm: 3\n");
    assert_clean(c);
    assert_int_equal(c->deployments[0].rpm, 3);
    assert_int_equal(c->deployments[0].tpm, 20000);
    assert_int_equal(c->deployments[1].rpm, 7); /* litellm_params wins */
    assert_int_equal(c->deployments[1].tpm, 0);
    sg_config_unref(c);
}

/* ---- router settings ---- */

#define THREE_GROUPS                                                                               \
    "model_list:\n"                                                                                \
    "  - { model_name: a, litellm_params: { model: openai/x, api_key: k } }\n"                     \
    "  - { model_name: b, litellm_params: { model: openai/y, api_key: k } }\n"                     \
    "  - { model_name: c, litellm_params: { model: openai/z, api_key: k } }\n"

static void test_litellm_settings_router_keys(void **state)
{
    (void)state;
    /* Router.__init__ takes num_retries, timeout (request_timeout), allowed_fails and the
     * fallbacks from litellm_settings when router_settings has none; LiteLLM's reliability
     * docs put them there. */
    struct sg_config *c = load(THREE_GROUPS "litellm_settings:\n"
                                            "  num_retries: 3\n"
                                            "  request_timeout: 10\n"
                                            "  allowed_fails: 5\n"
                                            "  fallbacks: [{a: [b]}]\n"
                                            "  context_window_fallbacks: [{a: [c]}]\n"
                                            "  cooldown_time: 9\n");
    assert_loaded(c);
    assert_int_equal(c->router.num_retries, 3);
    assert_int_equal(c->router.timeout_ms, 10000);
    assert_int_equal(c->router.allowed_fails, 5);
    assert_int_equal(c->router.n_fallbacks, 1);
    assert_string_equal(c->router.fallbacks[0].targets[0], "b");
    assert_int_equal(c->router.n_context_window_fallbacks, 1);
    assert_string_equal(c->router.context_window_fallbacks[0].targets[0], "c");
    /* cooldown_time is read from router_settings only, by LiteLLM too. */
    assert_int_equal(c->router.cooldown_ms, 30000);
    assert_warning(11, "litellm_settings.cooldown_time is a LiteLLM setting slogate does not "
                       "support; ignored (LiteLLM's router reads it from "
                       "router_settings.cooldown_time only, as slogate does)");
    assert_int_equal(warnings(), 1);
    sg_config_unref(c);

    c = load(THREE_GROUPS "router_settings:\n"
                          "  num_retries: 2\n"
                          "  fallbacks: [{a: [c]}]\n"
                          "litellm_settings:\n"
                          "  num_retries: 3\n"
                          "  fallbacks: [{a: [b]}]\n"
                          "  request_timeout: 10\n");
    assert_loaded(c);
    assert_int_equal(c->router.num_retries, 2);
    assert_string_equal(c->router.fallbacks[0].targets[0], "c");
    assert_int_equal(c->router.timeout_ms, 10000);
    assert_warning(9, "litellm_settings.num_retries is ignored because router_settings.num_retries "
                      "is set, as LiteLLM's router does: remove one of them");
    assert_warning(10, "litellm_settings.fallbacks is ignored because router_settings.fallbacks is "
                       "set");
    assert_int_equal(warnings(), 2);
    sg_config_unref(c);

    c = load(THREE_GROUPS "litellm_settings:\n"
                          "  num_retries: many\n"
                          "  fallbacks: [{a: [nope]}]\n");
    assert_null(c);
    assert_error(6, "litellm_settings.num_retries must be an integer between 0 and 100, got "
                    "\"many\"");
    assert_warning(7, "litellm_settings.fallbacks[0].a[0]: 'nope' is not a model_name in "
                      "model_list");
}

static void test_default_fallbacks(void **state)
{
    (void)state;
    /* LiteLLM appends default_fallbacks as the fallbacks of any alias ({"*": [...]}). */
    struct sg_config *c = load(THREE_GROUPS "router_settings:\n"
                                            "  fallbacks: [{a: [b]}]\n"
                                            "  default_fallbacks: [c, gone]\n");
    assert_loaded(c);
    assert_int_equal(c->router.n_fallbacks, 2);
    assert_string_equal(c->router.fallbacks[1].alias, "*");
    assert_int_equal(c->router.fallbacks[1].n, 1);
    assert_string_equal(c->router.fallbacks[1].targets[0], "c");
    assert_warning(7, "router_settings.default_fallbacks[1]: 'gone' is not a model_name in "
                      "model_list: add a deployment with model_name: gone or remove it; skipped");
    sg_config_unref(c);

    /* An explicit "*" entry comes first and wins, in LiteLLM as here; written after the
     * default, too. */
    c = load(THREE_GROUPS "router_settings:\n"
                          "  default_fallbacks: [c]\n"
                          "  fallbacks: [{\"*\": [b]}]\n");
    assert_loaded(c);
    assert_int_equal(c->router.n_fallbacks, 1);
    assert_string_equal(c->router.fallbacks[0].targets[0], "b");
    assert_warning(6, "router_settings.default_fallbacks is ignored: the fallbacks already list "
                      "'*' (any alias), which LiteLLM uses first too; put these aliases there");
    sg_config_unref(c);

    c = load(THREE_GROUPS "litellm_settings:\n"
                          "  default_fallbacks: [b]\n");
    assert_clean(c);
    assert_string_equal(c->router.fallbacks[0].alias, "*");
    sg_config_unref(c);
}

static void test_model_group_alias(void **state)
{
    (void)state;
    /* Clients may call the alias; LiteLLM serves it from the target group and lists it in
     * /v1/models (here: a group of that name with the same deployments). */
    struct sg_config *c = load(THREE_GROUPS "router_settings:\n"
                                            "  model_group_alias:\n"
                                            "    gpt-4: a\n"
                                            "    GPT-B: { model: b, hidden: true }\n"
                                            "    c: a\n"
                                            "    old: nope\n"
                                            "    chain: gpt-4\n");
    assert_loaded(c);
    assert_int_equal(c->n_groups, 5);
    assert_string_equal(c->groups[3].alias, "gpt-4");
    assert_int_equal(c->groups[3].n, 1);
    assert_ptr_equal(c->groups[3].deployments[0], &c->deployments[0]);
    assert_string_equal(c->groups[4].alias, "GPT-B");
    assert_ptr_equal(c->groups[4].deployments[0], &c->deployments[1]);
    assert_ptr_equal(sg_config_group(c, "gpt-4", 5), &c->groups[3]);
    assert_ptr_equal(sg_config_group(c, "a", 1), &c->groups[0]); /* the index followed the move */
    assert_null(sg_config_group(c, "chain", 5));
    assert_true(c->groups[4].hidden); /* routed, left out of /v1/models */
    assert_false(c->groups[3].hidden);
    assert_warning(9, "router_settings.model_group_alias.c: 'c' is a model_name of model_list "
                      "already: the alias is ignored, requests for it go to its own deployments");
    assert_warning(10, "router_settings.model_group_alias.old: 'nope' is not a model_name in "
                       "model_list: add a deployment with model_name: nope or remove it; the "
                       "alias is ignored");
    /* LiteLLM resolves an alias once: an alias of an alias finds no model_list group. */
    assert_warning(11, "router_settings.model_group_alias.chain: 'gpt-4' is not a model_name in "
                       "model_list: add a deployment with model_name: gpt-4 or remove it; the "
                       "alias is ignored");
    assert_int_equal(warnings(), 3);
    sg_config_unref(c);

    c = load(THREE_GROUPS "router_settings:\n"
                          "  model_group_alias: [a, b]\n");
    assert_null(c);
    assert_error(6, "router_settings.model_group_alias must be a mapping of alias: model_name, "
                    "e.g. {gpt-4: gpt-4o}; got a list");

    c = load(THREE_GROUPS "router_settings:\n"
                          "  model_group_alias:\n"
                          "    old: { model: a, hidden: maybe }\n");
    assert_null(c);
    assert_error(7, "router_settings.model_group_alias.old.hidden must be true or false");
}

/* ---- include: ---- */

/* A fresh folder for include tests, with `name` written in it; returns the file's path. */
static const char *write_in(const char *dir, const char *name, const char *text)
{
    static char path[4][1024];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, 1024, "%.600s/%s", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return p;
}

static struct sg_config *load_path(const char *path)
{
    sg_diags_dispose(&D);
    sg_diags_init(&D);
    return sg_config_load_file(path, env_fn, (void *)base_env, &D);
}

static void test_include(void **state)
{
    (void)state;
    char dir[] = "/tmp/slogate-include-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[600];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    /* LiteLLM: a list extends the list of the same name, anything else replaces the section;
     * paths are relative to the main config's folder, nested includes too. */
    write_in(dir, "models.yaml",
             "model_list:\n"
             "  - model_name: b\n"
             "    litellm_params: { model: openai/y, api_key: k }\n"
             "  - model_name: bed\n"
             "    litellm_params: { model: bedrock/claude }\n"
             "litellm_settings:\n"
             "  num_retries: 4\n"
             "include: [sub/more.yaml]\n");
    write_in(sub, "more.yaml",
             "model_list:\n"
             "  - model_name: c\n"
             "    litellm_params: { model: openai/z, api_key: k, weight: heavy }\n");
    char main_name[600];
    snprintf(main_name, sizeof main_name, "%s/main.yaml", dir);
    const char *main_path = write_in(dir, "main.yaml",
                                     "include:\n"
                                     "  - models.yaml\n"
                                     "model_list:\n"
                                     "  - model_name: a\n"
                                     "    litellm_params: { model: openai/x, api_key: k }\n"
                                     "litellm_settings:\n"
                                     "  num_retries: 2\n");
    char models_name[600], more_name[700];
    snprintf(models_name, sizeof models_name, "%s/models.yaml", dir);
    snprintf(more_name, sizeof more_name, "%s/sub/more.yaml", dir);
    struct sg_config *c = load_path(main_path);
    assert_null(c);
    /* Each message names the file the problem is in, with that file's line and index. */
    assert_int_equal(sg_diags_errors(&D), 1);
    bool found = false;
    for (size_t i = 0; i < D.n; i++) {
        if (D.v[i].severity != SG_DIAG_ERROR)
            continue;
        assert_string_equal(D.v[i].file, more_name);
        assert_int_equal(D.v[i].line, 3);
        assert_non_null(strstr(D.v[i].msg, "model_list[0].litellm_params.weight must be a number"));
        found = true;
    }
    assert_true(found);
    for (size_t i = 0; i < D.n; i++)
        if (strstr(D.v[i].msg, "is not routed"))
            assert_string_equal(D.v[i].file, models_name);
    assert_warning(6, "litellm_settings replaces the litellm_settings of");
    /* Sorted by file in the order they appear, then by line. */
    assert_string_equal(D.v[0].file, models_name);

    write_in(sub, "more.yaml",
             "model_list:\n"
             "  - model_name: c\n"
             "    litellm_params: { model: openai/z, api_key: k }\n"
             "include: [models.yaml]\n");
    c = load_path(main_path);
    assert_loaded(c);
    assert_int_equal(c->n_deployments, 3);
    assert_string_equal(c->deployments[0].alias, "a");
    assert_string_equal(c->deployments[0].file, main_name);
    assert_string_equal(c->deployments[1].alias, "b");
    assert_string_equal(c->deployments[1].file, models_name);
    assert_int_equal(c->deployments[1].index, 0);
    assert_string_equal(c->deployments[2].alias, "c");
    assert_string_equal(c->deployments[2].file, more_name);
    assert_int_equal(c->deployments[2].line, 2);
    assert_int_equal(c->router.num_retries, 4); /* the included section replaced the main's */
    /* A file named again is read once (LiteLLM would load its entries twice). */
    assert_warning(4, "is included already (");
    assert_warning(4, "skipped; name each file once");
    sg_config_unref(c);

    /* A missing file stops LiteLLM too; so does an include that is not a list. */
    write_in(dir, "main.yaml", "include: [nope.yaml, models.yaml]\n" ONE_MODEL);
    c = load_path(main_path);
    assert_null(c);
    assert_error(1, "nope.yaml: no such file (paths are relative to the main config's folder, "
                    "as in LiteLLM, which stops on a missing file too)");
    write_in(dir, "main.yaml", "include: models.yaml\n" ONE_MODEL);
    c = load_path(main_path);
    assert_null(c);
    assert_error(1, "include must be a list of files, e.g. include: [models.yaml] (LiteLLM "
                    "refuses anything else too)");
    write_in(dir, "main.yaml", "include: [\"\"]\n" ONE_MODEL); /* not "cannot read : ..." */
    c = load_path(main_path);
    assert_null(c);
    assert_error(1, "include: each entry is the path of a YAML file, e.g. models.yaml");

    /* Read from memory (check -c -), there is no folder to start from. */
    c = load("include: [models.yaml]\n" ONE_MODEL);
    assert_null(c);
    assert_error(1, "include names files relative to the config's folder, but this config was "
                    "not read from a file: check the file itself (slogate check -c FILE)");

    unlink(more_name);
    rmdir(sub);
    unlink(models_name);
    unlink(main_path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_unrouted_entries_are_left_out, teardown),
        cmocka_unit_test_teardown(test_unrouted_config_loads, teardown),
        cmocka_unit_test_teardown(test_openai_compatible_providers, teardown),
        cmocka_unit_test_teardown(test_bare_claude_model_is_anthropic, teardown),
        cmocka_unit_test_teardown(test_provider_defaults_and_key_variables, teardown),
        cmocka_unit_test_teardown(test_entry_rpm_tpm, teardown),
        cmocka_unit_test_teardown(test_litellm_settings_router_keys, teardown),
        cmocka_unit_test_teardown(test_default_fallbacks, teardown),
        cmocka_unit_test_teardown(test_model_group_alias, teardown),
        cmocka_unit_test_teardown(test_include, teardown),
    };
    return cmocka_run_group_tests_name("config_litellm", tests, NULL, NULL);
}
