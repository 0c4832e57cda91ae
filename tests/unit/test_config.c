/*
 * config: a loaded config as a whole. The defaults, the example files, model_list (providers,
 * endpoints, ids, groups, costs), every problem collected in file order, loading from a file,
 * the diagnostics list and the reference count. Each test loads a small YAML document with an
 * injected environment (config_load.h) and asserts what `slogate check` would show.
 */
#include "config_load.h"

static char *read_example(const char *name)
{
    char path[1024];
    const char *root = getenv("SG_SOURCE_ROOT");
    if (root) {
        snprintf(path, sizeof path, "%s/examples/%s", root, name);
    } else {
        /* __FILE__ is tests/unit/test_config.c, relative to wherever the compiler ran. */
        const char *f = __FILE__;
        const char *cut = strstr(f, "tests/unit/test_config.c");
        snprintf(path, sizeof path, "%.*sexamples/%s", (int)(cut ? cut - f : 0), f, name);
    }
    FILE *fp = fopen(path, "rb");
    if (!fp)
        fail_msg("cannot open %s (set SG_SOURCE_ROOT)", path);
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = '\0';
    return buf;
}

/* "<alias>#" and 8 lowercase hex digits: the id of an entry without model_info.id. */
static bool generated_id(const char *id, const char *alias)
{
    size_t n = strlen(alias);
    if (strncmp(id, alias, n) != 0 || id[n] != '#' || strlen(id + n + 1) != 8)
        return false;
    for (const char *p = id + n + 1; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL);
    assert_clean(c);
    assert_int_equal(c->n_deployments, 1);
    const struct sg_deployment *d = &c->deployments[0];
    assert_true(generated_id(d->id, "app/chat"));
    assert_string_equal(d->alias, "app/chat");
    assert_string_equal(d->model, "openai/gpt-4o-mini");
    assert_string_equal(d->provider, "openai");
    assert_string_equal(d->provider_model, "gpt-4o-mini");
    assert_int_equal(d->kind, SG_PROVIDER_OPENAI);
    assert_string_equal(d->api_key, "sk-test");
    assert_string_equal(d->api_base, "https://api.openai.com/v1");
    assert_null(d->region);
    assert_int_equal(d->order, 1);
    assert_true(d->weight == 0);
    assert_int_equal(d->rpm, 0);
    assert_int_equal(d->tpm, 0);
    assert_int_equal(d->timeout_ms, 0);
    assert_int_equal(d->stream_timeout_ms, 0);
    assert_int_equal(d->num_retries, -1);
    assert_true(d->input_cost_per_token < 0 && d->output_cost_per_token < 0);
    assert_int_equal(d->line, 2);

    assert_string_equal(c->router.routing_strategy, "simple-shuffle");
    assert_true(c->router.enable_weighted_failover);
    assert_int_equal(c->router.num_retries, 1);
    assert_int_equal(c->router.allowed_fails, 3);
    assert_int_equal(c->router.cooldown_ms, 30000);
    assert_int_equal(c->router.timeout_ms, 30000);
    assert_int_equal(c->router.stream_timeout_ms, 0);
    assert_int_equal(c->router.hedge_after_ms, 0);
    assert_int_equal(c->router.latency_ttl_ms, 60000);
    assert_int_equal(c->router.n_fallbacks, 0);

    assert_null(c->general.master_key);
    assert_string_equal(c->general.database_url, "sqlite://slogate.db");
    assert_null(c->general.redis_url);
    assert_int_equal(c->general.max_request_size_bytes, 8 * 1024 * 1024);

    assert_string_equal(c->server.host, "127.0.0.1");
    assert_int_equal(c->server.port, 4000);
    assert_int_equal(c->server.workers, 0);
    assert_int_equal(c->server.idle_timeout_ms, 60000);
    assert_int_equal(c->server.header_timeout_ms, 10000);
    assert_int_equal(c->server.drain_timeout_ms, 30000);
    assert_int_equal(c->server.max_connections, 10000);
    assert_string_equal(c->server.log_level, "info");

    assert_string_equal(c->service.name, "slogate");
    assert_string_equal(c->service.timezone, "UTC");
    assert_int_equal(c->slo.window_days, 30);
    assert_true(c->slo.success_rate == 99.5);
    assert_true(c->slo.p95_latency_s == 2.5);
    assert_true(c->slo.cost_avg_usd == 0.015);
    assert_int_equal(c->slo.n_maintenance, 0);
    assert_int_equal(c->n_features, 0);
    assert_int_equal(c->budgets.n_alert_at, 3);
    assert_true(c->budgets.alert_at[0] == 60 && c->budgets.alert_at[1] == 85 &&
                c->budgets.alert_at[2] == 95);
    assert_true(c->budgets.safeguard_at == 95);
    assert_null(c->budgets.safeguard_model);
    assert_true(c->rate_limits.rps == 0 && c->rate_limits.burst == 0);
    assert_string_equal(c->cache.backend, "memory");
    assert_int_equal(c->cache.max_mb, 256);
    assert_false(c->cache.stale_if_error);
    assert_int_equal(c->alerts.n_sinks, 0);
    assert_null(c->telemetry.otlp_endpoint);
    assert_null(c->telemetry.request_log);
    assert_false(c->telemetry.log_prompts);
    assert_true(c->drill.failover_target_s == 10);
    assert_true(c->drill.min_success_during_failover == 95);
    assert_string_equal(c->path, "t.yaml");
    assert_int_equal(c->refs, 1);
    sg_config_unref(c);
}

/* ---- the example files ---- */

static void test_example_slogate(void **state)
{
    (void)state;
    const char *y = read_example("slogate.yaml");
    struct sg_config *c = load(y);
    assert_clean(c);
    assert_int_equal(c->n_deployments, 3);
    assert_int_equal(c->n_groups, 2);
    assert_string_equal(c->groups[0].alias, "app/chat");
    assert_int_equal(c->groups[0].n, 2);
    assert_string_equal(c->groups[1].alias, "app/chat-lite");
    const struct sg_deployment *p = &c->deployments[0], *s = &c->deployments[1];
    assert_string_equal(p->id, "primary");
    assert_string_equal(p->api_key, "sk-a");
    assert_string_equal(p->api_base, "https://api.openai.com/v1");
    assert_int_equal(p->order, 1);
    assert_true(p->weight == 9);
    assert_int_equal(p->timeout_ms, 30000);
    assert_int_equal(p->stream_timeout_ms, 2000);
    assert_int_equal(p->rpm, 600);
    assert_int_equal(p->tpm, 200000);
    assert_true(p->input_cost_per_token == 0.00000015);
    assert_true(p->output_cost_per_token == 0.0000006);
    assert_string_equal(s->id, "secondary");
    assert_int_equal(s->kind, SG_PROVIDER_ANTHROPIC);
    assert_string_equal(s->provider_model, "claude-3-5-haiku-latest");
    assert_string_equal(s->api_base, "https://api.anthropic.com");
    assert_int_equal(s->order, 2);
    assert_int_equal(c->router.n_fallbacks, 1);
    assert_string_equal(c->router.fallbacks[0].alias, "app/chat");
    assert_int_equal(c->router.fallbacks[0].n, 1);
    assert_string_equal(c->router.fallbacks[0].targets[0], "app/chat-lite");
    assert_string_equal(c->general.master_key, "sk-master");
    assert_string_equal(c->service.name, "Acme Assistant");
    assert_int_equal(c->slo.n_maintenance, 1);
    assert_true(c->slo.maintenance[0].start_ms == 1796090400000ull);
    assert_int_equal(c->slo.maintenance[0].minutes, 30);
    assert_int_equal(c->n_features, 2);
    const struct sg_feature *f = sg_config_feature(c, "summarize", 9);
    assert_non_null(f);
    assert_int_equal(f->max_input_tokens, 8000);
    assert_int_equal(f->max_output_tokens, 800);
    assert_true(f->max_cost_per_request_usd == 0.02);
    assert_false(f->on_cost_cap_reject);
    assert_true(f->prompt_caching);
    assert_true(f->cache.enabled);
    assert_int_equal(f->cache.ttl_min, 60);
    assert_false(f->cache.lowercase);
    assert_int_equal(f->cache.n_strip, 1);
    assert_string_equal(f->cache.strip[0], "[0-9a-f]{8}-[0-9a-f-]{27}");
    assert_true(sg_config_feature(c, "classify", 8)->on_cost_cap_reject);
    assert_string_equal(c->budgets.safeguard_model, "app/chat-lite");
    assert_true(c->rate_limits.rps == 5 && c->rate_limits.burst == 20);
    assert_true(c->cache.stale_if_error);
    assert_int_equal(c->alerts.n_sinks, 3);
    assert_int_equal(c->alerts.sinks[0].type, SG_SINK_SLACK);
    assert_string_equal(c->alerts.sinks[0].url, "https://hooks.slack.com/services/T/B/x");
    assert_int_equal(c->alerts.sinks[1].type, SG_SINK_WEBHOOK);
    assert_int_equal(c->alerts.sinks[2].type, SG_SINK_LOG);
    assert_null(c->alerts.sinks[2].url);
    assert_string_equal(c->telemetry.otlp_endpoint, "http://127.0.0.1:4318");
    assert_string_equal(c->telemetry.request_log, "slogate-requests.jsonl");
    sg_config_unref(c);
}

static void test_example_litellm(void **state)
{
    (void)state;
    const char *y = read_example("litellm_config.yaml");
    struct sg_config *c = load(y);
    assert_loaded(c);
    assert_int_equal(sg_diags_warnings(&D), 2);
    assert_warning(-1, "litellm_settings.master_key is accepted, but it belongs in "
                       "general_settings");
    assert_warning(-1, "litellm_settings.database_url is accepted");
    assert_int_equal(c->n_deployments, 2);
    assert_int_equal(c->n_groups, 1);
    assert_string_equal(c->general.master_key, "sk-local-dev-key");
    assert_string_equal(c->general.database_url, "postgresql://slogate:pw@127.0.0.1:5432/slogate");
    assert_string_equal(c->deployments[0].api_base, "https://api.openai.com/v1");
    assert_string_equal(c->deployments[1].provider, "anthropic");
    assert_int_equal(c->deployments[1].order, 2);
    assert_int_equal(c->deployments[1].stream_timeout_ms, 2000);
    sg_config_unref(c);

    /* The same file without its environment: every missing secret is an error. */
    static const struct kv none[] = {{NULL, NULL}};
    c = load_env(y, none);
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 5);
    assert_error(14, "model_list[0].litellm_params.api_key: os.environ/PROVIDER_A_KEY is not set: "
                     "export PROVIDER_A_KEY or put the value in the config");
}

static void test_example_files_on_disk(void **state)
{
    (void)state;
    char path[1024];
    const char *root = getenv("SG_SOURCE_ROOT");
    const char *f = __FILE__, *cut = strstr(f, "tests/unit/test_config.c");
    if (root)
        snprintf(path, sizeof path, "%s/examples/slogate.yaml", root);
    else
        snprintf(path, sizeof path, "%.*sexamples/slogate.yaml", (int)(cut ? cut - f : 0), f);
    sg_diags_dispose(&D);
    sg_diags_init(&D);
    struct sg_config *c = sg_config_load_file(path, env_fn, (void *)base_env, &D);
    assert_clean(c);
    assert_string_equal(c->path, path);
    sg_config_unref(c);
}

/* ---- providers and models ---- */

static void test_split_model(void **state)
{
    (void)state;
    struct {
        const char *in, *provider, *model;
        enum sg_provider_kind kind;
    } ok[] = {
        {"openai/gpt-4o-mini", "openai", "gpt-4o-mini", SG_PROVIDER_OPENAI},
        {"gpt-4o", "openai", "gpt-4o", SG_PROVIDER_OPENAI},
        /* A bare claude name is Anthropic's, as LiteLLM's model lists say. */
        {"claude-3-haiku-20240307", "anthropic", "claude-3-haiku-20240307", SG_PROVIDER_ANTHROPIC},
        {"claude", "openai", "claude", SG_PROVIDER_OPENAI},
        {"anthropic/claude-3-5-haiku-latest", "anthropic", "claude-3-5-haiku-latest",
         SG_PROVIDER_ANTHROPIC},
        {"groq/llama3-8b", "groq", "llama3-8b", SG_PROVIDER_OPENAI},
        {"openrouter/meta-llama/llama-3", "openrouter", "meta-llama/llama-3", SG_PROVIDER_OPENAI},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char *p, *m;
        enum sg_provider_kind k;
        assert_int_equal(sg_config_split_model(ok[i].in, &p, &m, &k), SG_OK);
        assert_string_equal(p, ok[i].provider);
        assert_string_equal(m, ok[i].model);
        assert_int_equal(k, ok[i].kind);
        free(p);
        free(m);
    }
    const char *bad[] = {"", "/gpt", "openai/"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *p, *m;
        enum sg_provider_kind k;
        assert_int_equal(sg_config_split_model(bad[i], &p, &m, &k), SG_EINVAL);
        assert_null(p);
        assert_null(m);
    }
}

static void test_provider_endpoints(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/x, api_key: k, api_base: "
                               "\"http://127.0.0.1:9001/v1/\" }\n"
                               "  - model_name: b\n"
                               "    litellm_params: { model: anthropic/claude-3-5-haiku-latest, "
                               "api_key: k }\n"
                               "  - model_name: c\n"
                               "    litellm_params: { model: anthropic/claude, api_key: k, "
                               "api_base: \"https://api.anthropic.com/v1/messages\" }\n"
                               "  - model_name: d\n"
                               "    litellm_params: { model: groq/llama3, api_key: k }\n"
                               "  - model_name: e\n"
                               "    litellm_params: { model: ollama/llama3, api_base: "
                               "\"http://localhost:11434/v1\" }\n");
    assert_clean(c);
    assert_string_equal(c->deployments[0].api_base, "http://127.0.0.1:9001/v1");
    assert_string_equal(c->deployments[1].api_base, "https://api.anthropic.com");
    assert_string_equal(c->deployments[2].api_base, "https://api.anthropic.com");
    assert_string_equal(c->deployments[3].api_base, "https://api.groq.com/openai/v1");
    assert_int_equal(c->deployments[3].kind, SG_PROVIDER_OPENAI);
    assert_string_equal(c->deployments[4].provider, "ollama");
    assert_int_equal(c->deployments[4].kind, SG_PROVIDER_OPENAI);
    sg_config_unref(c);
}

static void test_provider_needs_api_base(void **state)
{
    (void)state;
    /* An entry slogate cannot route is a warning and left out (LiteLLM's proxy, too, starts
     * without a deployment it cannot set up); a malformed value stays an error. */
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params:\n"
                               "      model: hosted_vllm/llama-3\n"
                               "  - model_name: b\n"
                               "    litellm_params: { model: bedrock/claude, api_base: "
                               "\"https://x.example/v1\" }\n"
                               "  - model_name: c\n"
                               "    litellm_params: { model: claude-3-haiku, api_key: k }\n"
                               "  - model_name: d\n"
                               "    litellm_params: { model: \"openai/\", api_key: k }\n"
                               "  - model_name: e\n"
                               "    litellm_params: { model: openai/x, api_key: k, api_base: "
                               "\"ftp://x\" }\n");
    assert_null(c);
    assert_warning(4, "model_list[0] (a) is not routed: provider 'hosted_vllm' has no default "
                      "endpoint: set litellm_params.api_base to its OpenAI-compatible URL (e.g. "
                      "http://127.0.0.1:8000/v1)");
    assert_warning(6, "model_list[1] (b) is not routed: slogate has no bedrock adapter (it "
                      "speaks the OpenAI and Anthropic APIs); to reach claude through an "
                      "OpenAI-compatible endpoint, write model: openai/claude with that endpoint "
                      "as api_base");
    assert_warning(10, "model_list[3] (d) is not routed: litellm_params.model 'openai/' names a "
                       "provider but no model");
    assert_error(12, "model_list[4].litellm_params.api_base must be an http:// or https:// URL");
    assert_int_equal(sg_diags_errors(&D), 1);
}

/* ---- model_list shape ---- */

static void test_model_list_shape(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - just-a-string\n"
                               "  - litellm_params: { model: openai/x, api_key: k }\n"
                               "  - model_name: b\n"
                               "  - model_name: c\n"
                               "    litellm_params: { api_key: k }\n"
                               "  - model_name: d\n"
                               "    litellm_params: openai/x\n");
    assert_null(c);
    assert_error(2, "model_list[0] must be a mapping with model_name and litellm_params, got "
                    "\"just-a-string\"");
    assert_error(3, "model_list[1].model_name is required: it is the alias clients send as "
                    "\"model\"");
    assert_error(4, "model_list[2].litellm_params is required: add one with at least `model: "
                    "provider/model`");
    assert_error(6, "model_list[3].litellm_params.model is required: write provider/model");
    assert_error(8, "model_list[4].litellm_params must be a mapping");
    assert_int_equal(sg_diags_errors(&D), 5);

    c = load("model_list: { model_name: a }\n");
    assert_null(c);
    assert_error(1, "model_list must be a list of deployments");
}

static void test_empty_model_list(void **state)
{
    (void)state;
    struct sg_config *c = load("server: { port: 4001 }\n");
    assert_non_null(c);
    assert_int_equal(sg_diags_errors(&D), 0);
    assert_warning(0, "no model_list: the gateway has nothing to route to");
    assert_int_equal(c->n_deployments, 0);
    assert_int_equal(c->n_groups, 0);
    assert_int_equal(c->server.port, 4001);
    sg_config_unref(c);

    c = load("model_list: []\n");
    assert_non_null(c);
    assert_warning(1, "no model_list");
    sg_config_unref(c);
}

static void test_ids_and_duplicates(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/x, api_key: k }\n"
                               "    model_info: { id: same }\n"
                               "  - model_name: b\n"
                               "    litellm_params: { model: openai/x, api_key: k }\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/x, api_key: k }\n"
                               "    model_info: { id: same }\n"
                               "  - model_name: c\n"
                               "    litellm_params: { model: openai/x, api_key: k }\n");
    assert_null(c);
    assert_error(9, "model_list[2] has deployment id 'same', already used by model_list[0] "
                    "(line 2): give each deployment its own model_info.id");
    assert_int_equal(sg_diags_errors(&D), 1);

    /* LiteLLM takes any string as an id; one the header cannot carry gets the generated id,
     * with a warning, and the config loads. Two such entries stay two deployments. */
    c = load("model_list:\n"
             "  - model_name: c\n"
             "    litellm_params: { model: openai/x, api_key: k }\n"
             "    model_info: { id: \"azure gpt-4o eu\" }\n"
             "  - model_name: c\n"
             "    litellm_params: { model: openai/x, api_key: k }\n"
             "    model_info: { id: \"\u00e9u\" }\n");
    assert_loaded(c);
    assert_int_equal(c->n_deployments, 2);
    assert_true(generated_id(c->deployments[0].id, "c"));
    char second[64];
    snprintf(second, sizeof second, "%s-2", c->deployments[0].id);
    assert_string_equal(c->deployments[1].id, second);
    char want[256];
    snprintf(want, sizeof want,
             "model_list[0].model_info.id \"azure gpt-4o eu\" is not visible ASCII without "
             "spaces, which the x-slogate-deployment header needs: the deployment's id is %s "
             "instead",
             c->deployments[0].id);
    assert_warning(4, want);
    assert_warning(7, "model_list[1].model_info.id");
    assert_int_equal(warnings(), 2);
    sg_config_unref(c);

    c = load("model_list:\n"
             "  - model_name: my model\n"
             "    litellm_params: { model: openai/x, api_key: k }\n"
             "  - model_name: b\n"
             "    litellm_params: { model: openai/x, api_key: k }\n");
    assert_clean(c);
    assert_true(generated_id(c->deployments[0].id, "my_model"));
    assert_true(generated_id(c->deployments[1].id, "b"));
    sg_config_unref(c);
}

/* A generated id is not a position: entries added above or removed leave the others' ids (and
 * so their health across a reload) alone. Entries differing only in the api_key line differ;
 * identical ones are told apart by "-2", "-3" in file order. */
static void test_generated_ids_are_stable(void **state)
{
    (void)state;
#define E(alias, key)                                                                              \
    "  - model_name: " alias "\n    litellm_params: { model: openai/x, api_key: " key " }\n"
    struct sg_config *c = load("model_list:\n" E("a", "k1") E("a", "os.environ/PROVIDER_A_KEY"));
    assert_clean(c);
    char *first = strdup(c->deployments[0].id), *second = strdup(c->deployments[1].id);
    assert_string_not_equal(first, second);
    sg_config_unref(c);
    c = load("model_list:\n" E("b", "k1") E("a", "k0") E("a", "os.environ/PROVIDER_A_KEY")
                 E("a", "k1"));
    assert_clean(c);
    assert_string_not_equal(c->deployments[1].id, first);
    assert_string_equal(c->deployments[2].id, second);
    assert_string_equal(c->deployments[3].id, first);
    sg_config_unref(c);
    c = load("model_list:\n" E("a", "k1") E("a", "k1") E("a", "k1"));
    assert_clean(c);
    assert_string_equal(c->deployments[0].id, first);
    char want[64];
    snprintf(want, sizeof want, "%s-2", first);
    assert_string_equal(c->deployments[1].id, want);
    snprintf(want, sizeof want, "%s-3", first);
    assert_string_equal(c->deployments[2].id, want);
    sg_config_unref(c);
#undef E
    free(first);
    free(second);
}

static void test_groups_first_seen_order(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - { model_name: zeta, litellm_params: { model: openai/a, "
                               "api_key: k } }\n"
                               "  - { model_name: alpha, litellm_params: { model: openai/b, "
                               "api_key: k } }\n"
                               "  - { model_name: zeta, litellm_params: { model: openai/c, "
                               "api_key: k } }\n"
                               "  - { model_name: mid, litellm_params: { model: openai/d, "
                               "api_key: k } }\n");
    assert_clean(c);
    assert_int_equal(c->n_groups, 3);
    assert_string_equal(c->groups[0].alias, "zeta");
    assert_string_equal(c->groups[1].alias, "alpha");
    assert_string_equal(c->groups[2].alias, "mid");
    assert_int_equal(c->groups[0].n, 2);
    assert_ptr_equal(c->groups[0].deployments[0], &c->deployments[0]);
    assert_ptr_equal(c->groups[0].deployments[1], &c->deployments[2]);
    assert_ptr_equal(sg_config_group(c, "alpha", 5), &c->groups[1]);
    assert_ptr_equal(sg_config_group(c, "zetaX", 4), &c->groups[0]);
    assert_null(sg_config_group(c, "nope", 4));
    assert_null(sg_config_feature(c, "x", 1));
    sg_config_unref(c);
}

static void test_costs_and_region(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/x, api_key: k, "
                               "input_cost_per_token: 0.001 }\n"
                               "    model_info: { input_cost_per_token: 0.5, "
                               "output_cost_per_token: 0.002, region: eu }\n"
                               "  - model_name: b\n"
                               "    litellm_params: { model: openai/x, api_key: k, region_name: "
                               "us-east-1 }\n"
                               "    model_info: { region: eu }\n");
    assert_clean(c);
    assert_true(c->deployments[0].input_cost_per_token == 0.001); /* litellm_params wins */
    assert_true(c->deployments[0].output_cost_per_token == 0.002);
    assert_string_equal(c->deployments[0].region, "eu");
    assert_string_equal(c->deployments[1].region, "us-east-1");
    assert_true(c->deployments[1].input_cost_per_token < 0);
    sg_config_unref(c);
}

/* ---- files, diagnostics, references ---- */

static void test_every_problem_collected(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/x, api_key: os.environ/NOPE, "
                               "order: x }\n"
                               "router_settings: { routing_strategy: random, num_retries: -1 }\n"
                               "server: { port: 0 }\n"
                               "slo: { success_rate: 0 }\n"
                               "budgets: { safeguard_model: ghost }\n"
                               "extra: 1\n");
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 7);
    assert_int_equal(warnings(), 1);
    /* In source order. */
    for (size_t i = 1; i < D.n; i++)
        assert_true(D.v[i - 1].line <= D.v[i].line);
}

static void test_load_file_errors(void **state)
{
    (void)state;
    sg_diags_dispose(&D);
    sg_diags_init(&D);
    struct sg_config *c =
        sg_config_load_file("/nonexistent/slogate.yaml", env_fn, (void *)base_env, &D);
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 1);
    assert_error(0, "cannot open the config: No such file or directory");
    assert_string_equal(D.v[0].file, "/nonexistent/slogate.yaml");

    sg_diags_dispose(&D);
    sg_diags_init(&D);
    c = sg_config_load_file("/", env_fn, (void *)base_env, &D);
    assert_null(c);
    assert_error(0, "cannot read the config");
}

static void test_diags_print(void **state)
{
    (void)state;
    struct sg_diags d;
    sg_diags_init(&d);
    sg_diags_add(&d, SG_DIAG_ERROR, "x.yaml", 3, "bad %s", "thing");
    sg_diags_add(&d, SG_DIAG_WARNING, "x.yaml", 0, "whole file");
    assert_int_equal(sg_diags_errors(&d), 1);
    assert_int_equal(sg_diags_warnings(&d), 1);
    char buf[256] = {0};
    FILE *f = fmemopen(buf, sizeof buf, "w");
    sg_diags_print(&d, f);
    fclose(f);
    assert_string_equal(buf, "x.yaml:3: error: bad thing\nx.yaml: warning: whole file\n");
    sg_diags_dispose(&d);
    assert_int_equal(d.n, 0);
}

/* Diagnostics added after a load (check adds its pricing warnings) are put back in file order:
 * by line, problems about the whole file (line 0) first, equal lines in the order added. */
static void test_diags_sort(void **state)
{
    (void)state;
    struct sg_diags d;
    sg_diags_init(&d);
    sg_diags_sort(&d); /* empty: nothing to do */
    static const struct {
        int line;
        const char *msg;
    } added[] = {{7, "b7"}, {2, "a2"}, {7, "c7"}, {0, "file"}, {30, "z30"},
                 {2, "b2"}, {7, "d7"}, {1, "a1"}, {0, "file2"}};
    for (size_t i = 0; i < SG_ARRAY_LEN(added); i++)
        sg_diags_add(&d, i % 2 ? SG_DIAG_ERROR : SG_DIAG_WARNING, "x.yaml", added[i].line, "%s",
                     added[i].msg);
    sg_diags_sort(&d);
    static const char *want[] = {"file", "file2", "a1", "a2", "b2", "b7", "c7", "d7", "z30"};
    assert_int_equal(d.n, SG_ARRAY_LEN(want));
    for (size_t i = 0; i < d.n; i++)
        assert_string_equal(d.v[i].msg, want[i]);
    assert_int_equal(sg_diags_errors(&d), 4);           /* severities travel with their messages */
    assert_int_equal(d.v[1].severity, SG_DIAG_WARNING); /* file2 was added as a warning */
    assert_int_equal(d.v[3].severity, SG_DIAG_ERROR);   /* a2 as an error */
    sg_diags_dispose(&d);
}

static void test_refcount(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL);
    assert_clean(c);
    assert_ptr_equal(sg_config_ref(c), c);
    assert_int_equal(c->refs, 2);
    sg_config_unref(c);
    assert_int_equal(c->refs, 1);
    assert_string_equal(c->deployments[0].alias, "app/chat"); /* still alive */
    sg_config_unref(c); /* freed: ASan / valgrind report a leak otherwise */
    sg_config_unref(NULL);
    assert_null(sg_config_ref(NULL));
}

/* Every key read only at start is compared, each under the name the file uses; a change
 * elsewhere (a deployment, the router) is not one of them. */
static void test_start_keys_changed(void **state)
{
    (void)state;
    struct sg_config *a = load(ONE_MODEL);
    assert_clean(a);
    const char *keys[SG_CONFIG_N_START_KEYS];
    assert_int_equal(sg_config_start_keys_changed(a, a, keys), 0);

    struct sg_config *b = load(ONE_MODEL "router_settings: { num_retries: 5 }\n"
                                         "general_settings: { master_key: sk-new }\n");
    assert_clean(b);
    assert_int_equal(sg_config_start_keys_changed(a, b, keys), 0); /* reloadable */
    sg_config_unref(b);

    b = load(ONE_MODEL
             "server: { host: 0.0.0.0, port: 4001, workers: 3, idle_timeout_s: 5,\n"
             "  header_timeout_s: 5, drain_timeout_s: 5, shutdown_delay_s: 5, max_connections: 7,\n"
             "  log_level: debug, cors_origins: [https://app.example] }\n"
             "general_settings: { database_url: 'sqlite://other.db',\n"
             "  disable_spend_logs: true, redis_url: 'redis://127.0.0.1:6379/0',\n"
             "  max_request_size_mb: 2, background_health_checks: true,\n"
             "  health_check_interval: 60 }\n"
             "service: { name: Acme }\n"
             "telemetry: { otlp_endpoint: 'http://127.0.0.1:4318', request_log: r.jsonl,\n"
             "  log_prompts: true, request_log_max_mb: 1, request_log_backups: 2,\n"
             "  metrics_token: tok, spool_path: s.jsonl, journal_dir: /run/sg }\n");
    assert_clean(b);
    size_t n = sg_config_start_keys_changed(a, b, keys);
    assert_int_equal(n, SG_CONFIG_N_START_KEYS);
    assert_string_equal(keys[0], "server.host");
    assert_string_equal(keys[7], "server.max_connections");
    assert_string_equal(keys[9], "server.cors_origins");
    assert_string_equal(keys[12], "general_settings.redis_url");
    assert_string_equal(keys[n - 1], "telemetry.journal_dir");
    for (size_t i = 0; i < n; i++) /* each named once */
        for (size_t j = i + 1; j < n; j++)
            assert_string_not_equal(keys[i], keys[j]);
    /* One key back to its start value drops out; a string set on one side only counts. */
    assert_int_equal(sg_config_start_keys_changed(b, b, keys), 0);
    sg_config_unref(b);
    b = load(ONE_MODEL "telemetry: { metrics_token: tok }\n");
    assert_clean(b);
    assert_int_equal(sg_config_start_keys_changed(a, b, keys), 1);
    assert_string_equal(keys[0], "telemetry.metrics_token");
    assert_int_equal(sg_config_start_keys_changed(b, a, keys), 1);
    sg_config_unref(b);
    sg_config_unref(a);
}

int main(void)
{
    sg_diags_init(&D);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults, teardown),
        cmocka_unit_test_teardown(test_example_slogate, teardown),
        cmocka_unit_test_teardown(test_example_litellm, teardown),
        cmocka_unit_test_teardown(test_example_files_on_disk, teardown),
        cmocka_unit_test_teardown(test_split_model, teardown),
        cmocka_unit_test_teardown(test_provider_endpoints, teardown),
        cmocka_unit_test_teardown(test_provider_needs_api_base, teardown),
        cmocka_unit_test_teardown(test_model_list_shape, teardown),
        cmocka_unit_test_teardown(test_empty_model_list, teardown),
        cmocka_unit_test_teardown(test_ids_and_duplicates, teardown),
        cmocka_unit_test_teardown(test_generated_ids_are_stable, teardown),
        cmocka_unit_test_teardown(test_groups_first_seen_order, teardown),
        cmocka_unit_test_teardown(test_costs_and_region, teardown),
        cmocka_unit_test_teardown(test_every_problem_collected, teardown),
        cmocka_unit_test_teardown(test_load_file_errors, teardown),
        cmocka_unit_test_teardown(test_diags_print, teardown),
        cmocka_unit_test_teardown(test_diags_sort, teardown),
        cmocka_unit_test_teardown(test_refcount, teardown),
        cmocka_unit_test_teardown(test_start_keys_changed, teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
