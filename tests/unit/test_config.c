/*
 * config: one test per rule. Each test loads a small YAML document with an injected
 * environment and asserts what `slogate check` would show: the values, and the exact line and
 * wording of every diagnostic.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"

/* ---- helpers ---- */

struct kv {
    const char *k, *v;
};

static const struct kv base_env[] = {
    {"PROVIDER_A_KEY", "sk-a"},
    {"PROVIDER_A_API_BASE", "https://api.openai.com/v1/"},
    {"PROVIDER_B_KEY", "sk-b"},
    {"PROVIDER_B_API_BASE", "https://api.anthropic.com"},
    {"SLOGATE_MASTER_KEY", "sk-master"},
    {"SLACK_WEBHOOK_URL", "https://hooks.slack.com/services/T/B/x"},
    {"DATABASE_URL", "postgresql://slogate:pw@127.0.0.1:5432/slogate"},
    {"EMPTY_VAR", ""},
    {"ORDER_TWO", "2"},
    {NULL, NULL},
};

static const char *env_fn(const char *name, void *ud)
{
    for (const struct kv *e = ud; e && e->k; e++)
        if (strcmp(e->k, name) == 0)
            return e->v;
    return NULL;
}

static struct sg_diags D;

static struct sg_config *load_env(const char *yaml, const struct kv *env)
{
    sg_diags_dispose(&D);
    sg_diags_init(&D);
    return sg_config_load_string(yaml, strlen(yaml), "t.yaml", env_fn, (void *)env, &D);
}

static struct sg_config *load(const char *yaml)
{
    return load_env(yaml, base_env);
}

static void dump(void)
{
    for (size_t i = 0; i < D.n; i++)
        print_message("  diag: line %d %s: %s\n", D.v[i].line,
                      D.v[i].severity == SG_DIAG_ERROR ? "error" : "warning", D.v[i].msg);
}

/* line < 0: any line. */
static bool has(enum sg_diag_severity sev, int line, const char *sub)
{
    for (size_t i = 0; i < D.n; i++)
        if (D.v[i].severity == sev && (line < 0 || D.v[i].line == line) && strstr(D.v[i].msg, sub))
            return true;
    return false;
}

#define assert_diag(sev, line, sub)                                                                \
    do {                                                                                           \
        if (!has(sev, line, sub)) {                                                                \
            dump();                                                                                \
            fail_msg("no %s at line %d containing: %s",                                            \
                     sev == SG_DIAG_ERROR ? "error" : "warning", line, sub);                       \
        }                                                                                          \
    } while (0)
#define assert_error(line, sub) assert_diag(SG_DIAG_ERROR, line, sub)
#define assert_warning(line, sub) assert_diag(SG_DIAG_WARNING, line, sub)

#define assert_clean(c)                                                                            \
    do {                                                                                           \
        if (!(c) || sg_diags_errors(&D) || sg_diags_warnings(&D)) {                                \
            dump();                                                                                \
            fail_msg("expected a clean load");                                                     \
        }                                                                                          \
    } while (0)

#define assert_loaded(c)                                                                           \
    do {                                                                                           \
        if (!(c) || sg_diags_errors(&D)) {                                                         \
            dump();                                                                                \
            fail_msg("expected a load without errors");                                            \
        }                                                                                          \
    } while (0)

#define ONE_MODEL                                                                                  \
    "model_list:\n"                                                                                \
    "  - model_name: app/chat\n"                                                                   \
    "    litellm_params: { model: openai/gpt-4o-mini, api_key: sk-test }\n"

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

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL);
    assert_clean(c);
    assert_int_equal(c->n_deployments, 1);
    const struct sg_deployment *d = &c->deployments[0];
    assert_string_equal(d->id, "app/chat#1");
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

/* ---- secrets ---- */

static void test_env_secret_set(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params:\n"
                               "      model: openai/gpt-4o-mini\n"
                               "      api_key: os.environ/PROVIDER_A_KEY\n"
                               "      order: os.environ/ORDER_TWO\n");
    assert_clean(c);
    assert_string_equal(c->deployments[0].api_key, "sk-a");
    assert_int_equal(c->deployments[0].order, 2);
    sg_config_unref(c);
}

static void test_env_secret_unset(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params:\n"
                               "      model: openai/gpt-4o-mini\n"
                               "      api_key: os.environ/PROVIDER_Z_KEY\n");
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 1);
    assert_error(5, "model_list[0].litellm_params.api_key: os.environ/PROVIDER_Z_KEY is not set: "
                    "export PROVIDER_Z_KEY or put the value in the config");
    /* No second message about OPENAI_API_KEY: the api_key line was there. */
    assert_int_equal(sg_diags_warnings(&D), 0);
}

static void test_env_secret_empty(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "general_settings:\n"
                                         "  master_key: os.environ/EMPTY_VAR\n");
    assert_null(c);
    assert_error(5, "general_settings.master_key: os.environ/EMPTY_VAR is not set (it is empty): "
                    "export EMPTY_VAR or put the value in the config");
}

static void test_env_bad_name(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "general_settings:\n"
                                         "  master_key: os.environ/\n"
                                         "  redis_url: os.environ/BAD-NAME\n");
    assert_null(c);
    assert_error(5, "'os.environ/' is not a valid environment variable reference");
    assert_error(6, "'os.environ/BAD-NAME' is not a valid environment variable reference");
}

static void test_env_getenv_default(void **state)
{
    (void)state;
    setenv("SG_TEST_CONFIG_KEY", "from-getenv", 1);
    const char *y =
        "model_list:\n"
        "  - model_name: a\n"
        "    litellm_params: { model: openai/x, api_key: os.environ/SG_TEST_CONFIG_KEY }\n";
    sg_diags_dispose(&D);
    sg_diags_init(&D);
    struct sg_config *c = sg_config_load_string(y, strlen(y), "t.yaml", NULL, NULL, &D);
    assert_clean(c);
    assert_string_equal(c->deployments[0].api_key, "from-getenv");
    sg_config_unref(c);
    unsetenv("SG_TEST_CONFIG_KEY");
}

static void test_environment_variables_section(void **state)
{
    (void)state;
    struct sg_config *c =
        load("environment_variables:\n"
             "  MY_KEY: sk-inline\n"
             "model_list:\n"
             "  - model_name: a\n"
             "    litellm_params: { model: openai/x, api_key: os.environ/MY_KEY }\n");
    assert_clean(c);
    assert_string_equal(c->deployments[0].api_key, "sk-inline");
    sg_config_unref(c);
}

static void test_api_key_from_provider_env(void **state)
{
    (void)state;
    static const struct kv env[] = {{"OPENAI_API_KEY", "sk-openai"}, {NULL, NULL}};
    const char *y = "model_list:\n"
                    "  - model_name: a\n"
                    "    litellm_params: { model: openai/gpt-4o-mini }\n"
                    "  - model_name: b\n"
                    "    litellm_params: { model: anthropic/claude-3-5-haiku-latest }\n"
                    "  - model_name: c\n"
                    "    litellm_params: { model: hosted_vllm/llama, api_base: "
                    "\"http://10.0.0.2:8000/v1\" }\n";
    struct sg_config *c = load_env(y, env);
    assert_loaded(c);
    assert_string_equal(c->deployments[0].api_key, "sk-openai");
    assert_null(c->deployments[1].api_key);
    assert_null(c->deployments[2].api_key);
    assert_int_equal(sg_diags_warnings(&D), 1);
    assert_warning(4, "model_list[1] has no litellm_params.api_key and ANTHROPIC_API_KEY is not "
                      "exported");
    sg_config_unref(c);
}

/* ---- typed values and their messages ---- */

static void test_order_not_integer(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/x, api_key: k }\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/x, api_key: k }\n"
                               "  - model_name: a\n"
                               "    litellm_params:\n"
                               "      model: openai/x\n"
                               "      api_key: k\n"
                               "      order: first\n");
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 1);
    assert_error(10, "model_list[2].litellm_params.order must be an integer >= 1, got \"first\"");
}

static void test_numeric_ranges(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params:\n"
                               "      model: openai/x\n"
                               "      api_key: k\n"
                               "      order: 0\n"
                               "      weight: -1\n"
                               "      rpm: -5\n"
                               "      tpm: 1.5\n"
                               "      timeout: 0\n"
                               "      stream_timeout: fast\n"
                               "      num_retries: [1]\n"
                               "      input_cost_per_token: -0.1\n");
    assert_null(c);
    assert_error(6, "model_list[0].litellm_params.order must be an integer >= 1, got \"0\"");
    assert_error(7, "model_list[0].litellm_params.weight must be a number >= 0, got \"-1\"");
    assert_error(8, "model_list[0].litellm_params.rpm must be an integer >= 0, got \"-5\"");
    assert_error(9, "model_list[0].litellm_params.tpm must be an integer");
    assert_error(10, "model_list[0].litellm_params.timeout must be a duration in seconds > 0 "
                     "and <= 86400, got \"0\"");
    assert_error(11, "stream_timeout must be a duration in seconds > 0 and <= 86400, got \"fast\"");
    assert_error(12, "num_retries must be an integer between 0 and 100, got a list");
    assert_error(13, "input_cost_per_token must be a number >= 0, got \"-0.1\"");
    assert_int_equal(sg_diags_errors(&D), 8);
}

static void test_durations(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params:\n"
                               "      model: openai/x\n"
                               "      api_key: k\n"
                               "      timeout: 1.5\n"
                               "      stream_timeout: 0.0001\n"
                               "router_settings:\n"
                               "  cooldown_time: 0.5\n"
                               "  timeout: 45\n"
                               "  stream_timeout: 3\n"
                               "  hedge_after_ms: 250\n"
                               "  routing_strategy_args: { ttl: 120 }\n");
    assert_clean(c);
    assert_int_equal(c->deployments[0].timeout_ms, 1500);
    assert_int_equal(c->deployments[0].stream_timeout_ms, 1); /* never rounds down to "unset" */
    assert_int_equal(c->router.cooldown_ms, 500);
    assert_int_equal(c->router.timeout_ms, 45000);
    assert_int_equal(c->router.stream_timeout_ms, 3000);
    assert_int_equal(c->router.hedge_after_ms, 250);
    assert_int_equal(c->router.latency_ttl_ms, 120000);
    sg_config_unref(c);

    c = load(ONE_MODEL "router_settings:\n"
                       "  hedge_after_ms: 1.5\n"
                       "  cooldown_time: -1\n");
    assert_null(c);
    assert_error(5, "router_settings.hedge_after_ms must be an integer number of milliseconds "
                    "between 0 and 600000, got \"1.5\"");
    assert_error(6, "router_settings.cooldown_time must be a duration in seconds between 0 and "
                    "86400, got \"-1\"");
}

static void test_bools(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "router_settings: { enable_weighted_failover: no }\n"
                                         "cache: { stale_if_error: On }\n"
                                         "telemetry: { log_prompts: maybe }\n");
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 1);
    assert_error(6, "telemetry.log_prompts must be true or false, got \"maybe\"");
    c = load(ONE_MODEL "router_settings: { enable_weighted_failover: no }\n"
                       "cache: { stale_if_error: On }\n");
    assert_clean(c);
    assert_false(c->router.enable_weighted_failover);
    assert_true(c->cache.stale_if_error);
    sg_config_unref(c);
}

static void test_wrong_shapes(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "router_settings: [1, 2]\n"
                                         "server:\n"
                                         "  host: { a: 1 }\n"
                                         "  port: \"8080\"\n"
                                         "service:\n"
                                         "  name: \"\"\n");
    assert_null(c);
    assert_error(4, "router_settings must be a mapping of `key: value` lines, got a list");
    assert_error(6, "server.host must be a string, got a mapping");
    assert_error(9, "service.name is empty: give a value or remove the line");
    assert_int_equal(sg_diags_errors(&D), 3); /* a quoted "8080" is still a port */
}

static void test_nul_byte(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "service: { name: \"a\\0b\" }\n");
    assert_null(c);
    assert_error(4, "service.name contains a NUL byte");
}

/* ---- unknown and unsupported keys ---- */

static void test_unknown_keys(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "router_settings:\n"
                                         "  foo: 1\n"
                                         "bogus_section: {}\n"
                                         "server: { colour: blue }\n");
    assert_loaded(c);
    assert_warning(5, "unknown key 'foo' in router_settings: not supported, ignored");
    assert_warning(6, "unknown key 'bogus_section' at the top level: not supported, ignored");
    assert_warning(7, "unknown key 'colour' in server: not supported, ignored");
    assert_int_equal(sg_diags_warnings(&D), 3);
    sg_config_unref(c);
}

static void test_litellm_unsupported_keys(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params:\n"
                               "      model: openai/x\n"
                               "      api_key: k\n"
                               "      api_version: \"2024-02-01\"\n"
                               "      vertex_project: p\n"
                               "    model_info:\n"
                               "      mode: chat\n"
                               "      base_model: gpt-4o\n"
                               "router_settings:\n"
                               "  redis_host: localhost\n"
                               "  routing_groups: []\n"
                               "litellm_settings:\n"
                               "  success_callback: [langfuse]\n"
                               "  drop_params: true\n"
                               "  set_verbose: false\n"
                               "general_settings:\n"
                               "  alerting: [slack]\n"
                               "guardrails: []\n");
    assert_loaded(c);
    const char *tail = "is a LiteLLM setting slogate does not support; ignored";
    assert_warning(6, "model_list[0].litellm_params.api_version is a LiteLLM setting slogate "
                      "does not support; ignored");
    assert_warning(7, "model_list[0].litellm_params.vertex_project");
    assert_warning(9, "model_list[0].model_info.mode is a LiteLLM setting");
    assert_warning(10, "model_list[0].model_info.base_model");
    assert_warning(12, "router_settings.redis_host is a LiteLLM setting slogate does not support; "
                       "ignored (set general_settings.redis_url");
    assert_warning(13, "router_settings.routing_groups");
    assert_warning(15, "litellm_settings.success_callback");
    assert_warning(16, "litellm_settings.drop_params");
    assert_warning(17, "litellm_settings.set_verbose");
    assert_warning(19, "general_settings.alerting");
    assert_warning(20, "guardrails is a LiteLLM setting");
    assert_int_equal(sg_diags_warnings(&D), 11);
    for (size_t i = 0; i < D.n; i++)
        assert_non_null(strstr(D.v[i].msg, tail));
    sg_config_unref(c);
}

static void test_master_key_in_litellm_settings(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "litellm_settings:\n"
                                         "  master_key: sk-1234\n"
                                         "  database_url: postgresql://u@h/db\n");
    assert_loaded(c);
    assert_warning(5, "litellm_settings.master_key is accepted, but it belongs in "
                      "general_settings");
    assert_warning(6, "litellm_settings.database_url is accepted");
    assert_string_equal(c->general.master_key, "sk-1234");
    assert_string_equal(c->general.database_url, "postgresql://u@h/db");
    sg_config_unref(c);

    c = load(ONE_MODEL "general_settings: { master_key: sk-general }\n"
                       "litellm_settings: { master_key: sk-litellm }\n");
    assert_loaded(c);
    assert_warning(5, "litellm_settings.master_key is ignored because general_settings.master_key "
                      "is set");
    assert_string_equal(c->general.master_key, "sk-general");
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
    assert_error(4, "model_list[0]: provider 'hosted_vllm' has no default endpoint: set "
                    "litellm_params.api_base");
    assert_warning(6, "slogate has no bedrock adapter");
    assert_warning(8, "model_list[2].litellm_params.model 'claude-3-haiku' has no provider "
                      "prefix, so it is sent to OpenAI: write anthropic/claude-3-haiku");
    assert_error(10, "model_list[3].litellm_params.model must be provider/model such as "
                     "openai/gpt-4o-mini, got \"openai/\"");
    assert_error(12, "model_list[4].litellm_params.api_base must be an http:// or https:// URL");
    assert_int_equal(sg_diags_errors(&D), 3);
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
                               "    litellm_params: { model: openai/x, api_key: k }\n"
                               "    model_info: { id: \"has space\" }\n");
    assert_null(c);
    assert_error(9, "model_list[2] has deployment id 'same', already used by model_list[0] "
                    "(line 2): give each deployment its own model_info.id");
    assert_error(12, "model_list[3].model_info.id must be visible ASCII without spaces");
    assert_int_equal(sg_diags_errors(&D), 2);

    c = load("model_list:\n"
             "  - model_name: my model\n"
             "    litellm_params: { model: openai/x, api_key: k }\n"
             "  - model_name: b\n"
             "    litellm_params: { model: openai/x, api_key: k }\n");
    assert_clean(c);
    assert_string_equal(c->deployments[0].id, "my_model#1");
    assert_string_equal(c->deployments[1].id, "b#2");
    sg_config_unref(c);
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

/* ---- router_settings ---- */

static void test_routing_strategy(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "router_settings: { routing_strategy: fastest }\n");
    assert_null(c);
    assert_error(4, "router_settings.routing_strategy must be one of simple-shuffle, "
                    "latency-based-routing, least-busy, usage-based-routing, cost-based-routing; "
                    "got \"fastest\"");
    const char *ok[] = {"latency-based-routing", "least-busy", "usage-based-routing",
                        "cost-based-routing"};
    for (size_t i = 0; i < 4; i++) {
        char y[512];
        snprintf(y, sizeof y, ONE_MODEL "router_settings: { routing_strategy: %s }\n", ok[i]);
        c = load(y);
        assert_clean(c);
        assert_string_equal(c->router.routing_strategy, ok[i]);
        sg_config_unref(c);
    }
    c = load(ONE_MODEL "router_settings: { routing_strategy: usage-based-routing-v2 }\n");
    assert_loaded(c);
    assert_warning(4, "runs it as usage-based-routing");
    assert_string_equal(c->router.routing_strategy, "usage-based-routing");
    sg_config_unref(c);
}

static void test_fallbacks(void **state)
{
    (void)state;
    const char *models = "model_list:\n"
                         "  - { model_name: a, litellm_params: { model: openai/x, api_key: k } }\n"
                         "  - { model_name: b, litellm_params: { model: openai/y, api_key: k } }\n"
                         "  - { model_name: c, litellm_params: { model: openai/z, api_key: k } }\n";
    char y[2048];
    snprintf(y, sizeof y,
             "%srouter_settings:\n"
             "  fallbacks:\n"
             "    - a: [b, c]\n"
             "    - { b: [c] }\n"
             "  context_window_fallbacks: [{a: [c]}, {\"*\": [b]}]\n",
             models);
    struct sg_config *c = load(y);
    assert_clean(c);
    assert_int_equal(c->router.n_fallbacks, 2);
    assert_string_equal(c->router.fallbacks[0].alias, "a");
    assert_int_equal(c->router.fallbacks[0].n, 2);
    assert_string_equal(c->router.fallbacks[0].targets[1], "c");
    assert_string_equal(c->router.fallbacks[1].alias, "b");
    assert_int_equal(c->router.n_context_window_fallbacks, 2);
    assert_string_equal(c->router.context_window_fallbacks[1].alias, "*");
    sg_config_unref(c);

    snprintf(y, sizeof y,
             "%srouter_settings:\n"
             "  fallbacks:\n"
             "    - a: [a-lite]\n"
             "    - b: [b]\n"
             "    - nope: [a]\n"
             "    - a: [c]\n"
             "    - just-a-string\n"
             "  context_window_fallbacks: {a: [b]}\n",
             models);
    c = load(y);
    assert_null(c);
    assert_error(7, "router_settings.fallbacks[0].a[0]: 'a-lite' is not a model_name in "
                    "model_list: add a deployment with model_name: a-lite or remove it");
    assert_error(8, "router_settings.fallbacks[1].b[0]: 'b' falls back to itself: list other "
                    "aliases");
    assert_error(9, "router_settings.fallbacks[2].nope: 'nope' is not a model_name in "
                    "model_list");
    assert_error(
        10, "router_settings.fallbacks[3].a: fallbacks for 'a' are listed twice (first at line 7)");
    assert_error(11, "router_settings.fallbacks[4] must be a one-key mapping {alias: [fallback "
                     "aliases]}, got \"just-a-string\"");
    assert_error(12, "router_settings.context_window_fallbacks must be a list of {alias: "
                     "[fallback aliases]} entries");
    assert_int_equal(sg_diags_errors(&D), 6);
}

/* ---- general_settings, server ---- */

static void test_general_settings(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "general_settings:\n"
                                         "  max_request_size_mb: 0.5\n"
                                         "  database_url: postgresql://u:pw@db/slogate\n"
                                         "  redis_url: redis://127.0.0.1:6379/0\n");
    assert_clean(c);
    assert_int_equal(c->general.max_request_size_bytes, 524288);
    assert_string_equal(c->general.database_url, "postgresql://u:pw@db/slogate");
    assert_string_equal(c->general.redis_url, "redis://127.0.0.1:6379/0");
    sg_config_unref(c);

    c = load(ONE_MODEL "general_settings:\n"
                       "  max_request_size_mb: 0\n"
                       "  database_url: mysql://root:hunter2@db/x\n"
                       "  redis_url: localhost:6379\n");
    assert_null(c);
    assert_error(5, "general_settings.max_request_size_mb must be a size in megabytes > 0 and "
                    "<= 1024, got \"0\"");
    assert_error(6, "general_settings.database_url must start with sqlite:// or postgresql://; "
                    "got a mysql:// URL");
    assert_error(7, "general_settings.redis_url must start with redis://, rediss:// or unix://");
    for (size_t i = 0; i < D.n; i++)
        assert_null(strstr(D.v[i].msg, "hunter2")); /* passwords never echoed */
}

static void test_server_section(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "server:\n"
                                         "  host: 0.0.0.0\n"
                                         "  port: 8080\n"
                                         "  workers: 4\n"
                                         "  idle_timeout_s: 5\n"
                                         "  header_timeout_s: 2.5\n"
                                         "  drain_timeout_s: 0\n"
                                         "  max_connections: 100\n"
                                         "  log_level: debug\n");
    assert_clean(c);
    assert_string_equal(c->server.host, "0.0.0.0");
    assert_int_equal(c->server.port, 8080);
    assert_int_equal(c->server.workers, 4);
    assert_int_equal(c->server.idle_timeout_ms, 5000);
    assert_int_equal(c->server.header_timeout_ms, 2500);
    assert_int_equal(c->server.drain_timeout_ms, 0);
    assert_int_equal(c->server.max_connections, 100);
    assert_string_equal(c->server.log_level, "debug");
    sg_config_unref(c);

    c = load(ONE_MODEL "server:\n"
                       "  port: 70000\n"
                       "  workers: -1\n"
                       "  log_level: verbose\n"
                       "  max_connections: 0\n");
    assert_null(c);
    assert_error(5, "server.port must be an integer between 1 and 65535, got \"70000\"");
    assert_error(6, "server.workers must be an integer between 0 and 1024, got \"-1\"");
    assert_error(7, "server.log_level must be one of debug, info, warn, error; got \"verbose\"");
    assert_error(8, "server.max_connections must be an integer between 1 and 10000000, got \"0\"");
}

/* ---- slogate's sections ---- */

static void test_slo_section(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "slo:\n"
                                         "  window_days: 7\n"
                                         "  success_rate: 99.9\n"
                                         "  maintenance:\n"
                                         "    - { start: \"2024-03-01T00:30:00.250+01:00\", "
                                         "minutes: 15 }\n");
    assert_clean(c);
    assert_int_equal(c->slo.window_days, 7);
    assert_true(c->slo.success_rate == 99.9);
    assert_true(c->slo.maintenance[0].start_ms == 1709249400250ull);
    sg_config_unref(c);

    c = load(ONE_MODEL "slo:\n"
                       "  success_rate: 100\n"
                       "  p95_latency_s: 0\n"
                       "  maintenance:\n"
                       "    - { start: \"2026-12-01 02:00\", minutes: 30 }\n"
                       "    - { start: \"2026-02-30T00:00:00Z\", minutes: 30 }\n"
                       "    - { minutes: 0 }\n"
                       "    - { start: \"2026-12-01T02:00:00\" }\n");
    assert_null(c);
    assert_error(5, "slo.success_rate must be a number > 0 and < 100, got \"100\"");
    assert_error(6, "slo.p95_latency_s must be a number > 0 and <= 3600, got \"0\"");
    assert_error(8, "slo.maintenance[0].start must be an RFC 3339 time in UTC, e.g. "
                    "\"2026-12-01T02:00:00Z\"; got \"2026-12-01 02:00\"");
    assert_error(9, "slo.maintenance[1].start must be an RFC 3339 time");
    assert_error(10, "slo.maintenance[2].minutes must be an integer between 1 and 10080");
    assert_error(10, "slo.maintenance[2].start is required");
    assert_error(11, "slo.maintenance[3].start must be an RFC 3339 time"); /* no zone */
    assert_error(11, "slo.maintenance[3].minutes is required");
    assert_int_equal(sg_diags_errors(&D), 8);
}

static void test_features_section(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "features:\n"
                                         "  a: { cache: true }\n"
                                         "  b: { cache: { enabled: false, ttl_min: 5 } }\n"
                                         "  c:\n"
                                         "  d: { cache: { normalize: { lowercase: yes } } }\n");
    assert_clean(c);
    assert_int_equal(c->n_features, 4);
    assert_true(c->features[0].cache.enabled);
    assert_int_equal(c->features[0].cache.ttl_min, 60);
    assert_false(c->features[1].cache.enabled);
    assert_int_equal(c->features[1].cache.ttl_min, 5);
    assert_false(c->features[2].cache.enabled);
    assert_string_equal(c->features[2].name, "c");
    assert_int_equal(c->features[2].line, 7);
    assert_true(c->features[3].cache.enabled);
    assert_true(c->features[3].cache.lowercase);
    assert_ptr_equal(sg_config_feature(c, "d", 1), &c->features[3]);
    sg_config_unref(c);

    c = load(ONE_MODEL "features:\n"
                       "  a:\n"
                       "    on_cost_cap: explode\n"
                       "    max_output_tokens: -1\n"
                       "    cache: sometimes\n"
                       "    budget: 3\n"
                       "  b: { cache: { normalize: { strip: \"[0-9]+\" } } }\n");
    assert_null(c);
    assert_error(6, "features.a.on_cost_cap must be one of degrade, reject; got \"explode\"");
    assert_error(7, "features.a.max_output_tokens must be an integer >= 0, got \"-1\"");
    assert_error(8, "features.a.cache must be true, false or a mapping");
    assert_warning(9, "unknown key 'budget' in features.a: not supported, ignored");
    assert_error(10, "features.b.cache.normalize.strip must be a list of regular expressions");

    c = load(ONE_MODEL "features: [summarize]\n");
    assert_null(c);
    assert_error(4, "features must be a mapping of feature name to its settings");
}

static void test_budgets_section(void **state)
{
    (void)state;
    const char *models = "model_list:\n"
                         "  - { model_name: app/chat, litellm_params: { model: openai/x, "
                         "api_key: k } }\n"
                         "  - { model_name: app/lite, litellm_params: { model: openai/y, "
                         "api_key: k } }\n";
    char y[1024];
    snprintf(y, sizeof y,
             "%sbudgets: { tenant_monthly_usd: 100, alert_at: [50, 90], safeguard_model: "
             "app/lite }\n",
             models);
    struct sg_config *c = load(y);
    assert_clean(c);
    assert_true(c->budgets.tenant_monthly_usd == 100);
    assert_int_equal(c->budgets.n_alert_at, 2);
    assert_true(c->budgets.alert_at[1] == 90);
    assert_string_equal(c->budgets.safeguard_model, "app/lite");
    sg_config_unref(c);

    snprintf(y, sizeof y,
             "%sbudgets:\n"
             "  alert_at: [60, 95, 85, 0, 120]\n"
             "  safeguard_at: 0\n"
             "  safeguard_model: app/cheap\n"
             "  user_monthly_usd: -5\n",
             models);
    c = load(y);
    assert_null(c);
    assert_error(5, "budgets.alert_at must list percents in ascending order: 85 comes after 95");
    assert_error(5, "budgets.alert_at[3] must be a percentage > 0 and <= 100, got \"0\"");
    assert_error(5, "budgets.alert_at[4] must be a percentage > 0 and <= 100, got \"120\"");
    assert_error(6, "budgets.safeguard_at must be a number > 0 and <= 100");
    assert_error(7, "budgets.safeguard_model 'app/cheap' is not a model_name in model_list; use "
                    "one of: app/chat, app/lite");
    assert_error(8, "budgets.user_monthly_usd must be a number >= 0");
    assert_int_equal(sg_diags_errors(&D), 6);
}

static void test_cache_and_rate_limits(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "cache: { backend: redis }\n");
    assert_null(c);
    assert_error(4, "cache.backend is redis but general_settings.redis_url is not set");

    c = load(ONE_MODEL "cache: { backend: redis, max_mb: 64 }\n"
                       "general_settings: { redis_url: \"redis://r:6379/1\" }\n"
                       "rate_limits: { rps: 5 }\n");
    assert_clean(c);
    assert_string_equal(c->cache.backend, "redis");
    assert_int_equal(c->cache.max_mb, 64);
    assert_true(c->rate_limits.burst == 5); /* one second's worth by default */
    sg_config_unref(c);

    c = load(ONE_MODEL "cache: { backend: disk }\n"
                       "rate_limits: { rps: 5, burst: 0.5 }\n");
    assert_null(c);
    assert_error(4, "cache.backend must be one of memory, redis; got \"disk\"");
    assert_error(5, "rate_limits.burst must be >= 1 when rps is set");

    c = load(ONE_MODEL "rate_limits: { burst: 3 }\n");
    assert_loaded(c);
    assert_warning(4, "rate_limits.burst has no effect without rps");
    sg_config_unref(c);
}

static void test_alert_sinks(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "alerts:\n"
                                         "  sinks:\n"
                                         "    - { type: slack }\n"
                                         "    - { type: pager, url: \"https://x\" }\n"
                                         "    - { type: webhook, url: \"not a url\" }\n"
                                         "    - { type: log, url: \"https://x\" }\n"
                                         "    - { url: \"https://x\" }\n");
    assert_null(c);
    assert_error(6, "alerts.sinks[0].url is required for a slack sink");
    assert_error(7, "alerts.sinks[1].type must be one of slack, webhook, log; got \"pager\"");
    assert_error(8, "alerts.sinks[2].url must be an http:// or https:// URL with a host, got "
                    "\"not a url\"");
    assert_warning(9, "alerts.sinks[3].url is not used by a log sink; ignored");
    assert_error(10, "alerts.sinks[4].type is required: slack, webhook or log");
    assert_int_equal(sg_diags_errors(&D), 4);

    c = load(ONE_MODEL "alerts: { sinks: { type: log } }\n");
    assert_null(c);
    assert_error(4, "alerts.sinks must be a list");
}

static void test_telemetry_and_drill(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "telemetry: { otlp_endpoint: \"http://otel:4318/\", "
                                         "log_prompts: true }\n"
                                         "drill: { failover_target_s: 5, "
                                         "min_success_during_failover: 99 }\n");
    assert_clean(c);
    assert_string_equal(c->telemetry.otlp_endpoint, "http://otel:4318");
    assert_true(c->telemetry.log_prompts);
    assert_true(c->drill.failover_target_s == 5);
    assert_true(c->drill.min_success_during_failover == 99);
    sg_config_unref(c);

    c = load(ONE_MODEL "drill: { failover_target_s: 0, min_success_during_failover: 101 }\n");
    assert_null(c);
    assert_error(4, "drill.failover_target_s must be a number > 0 and <= 3600");
    assert_error(4, "drill.min_success_during_failover must be a number > 0 and <= 100");
}

/* ---- YAML level ---- */

static void test_yaml_syntax_error(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params: { model: openai/x\n"
                               "router_settings:\n"
                               "  timeout: 30\n");
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 1);
    assert_error(4, "YAML syntax error: did not find expected ',' or '}'");

    c = load("a: b: c\n");
    assert_null(c);
    assert_error(1, "YAML syntax error: mapping values are not allowed in this context");

    c = load("model_list:\n  - model_name: \"\xff\xfe\"\n");
    assert_null(c);
    assert_error(2, "the file is not valid text");
}

static void test_top_level_not_mapping(void **state)
{
    (void)state;
    struct sg_config *c = load("- model_name: a\n");
    assert_null(c);
    assert_error(1, "the top level must be a mapping of sections (model_list:, router_settings:, "
                    "...), got a list");
    c = load("just text\n");
    assert_null(c);
    assert_error(1, "got \"just text\"");
}

static void test_empty_file(void **state)
{
    (void)state;
    const char *empties[] = {"", "# only a comment\n", "---\n", "~\n", "\n\n   \n"};
    for (size_t i = 0; i < sizeof empties / sizeof empties[0]; i++) {
        struct sg_config *c = load(empties[i]);
        assert_null(c);
        assert_int_equal(sg_diags_errors(&D), 1);
        assert_error(0, "the config is empty");
    }
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: a\n"
                               "    litellm_params:\n"
                               "      model: openai/cheap\n"
                               "      api_key: k\n"
                               "      model: openai/expensive\n"
                               "router_settings: { timeout: 1 }\n"
                               "router_settings: { timeout: 2 }\n");
    assert_null(c);
    assert_error(6, "duplicate key 'model' (first at line 4): YAML allows a key once per mapping; "
                    "remove one of them");
    assert_error(8, "duplicate key 'router_settings' (first at line 7)");
    assert_int_equal(sg_diags_errors(&D), 2);
}

static void test_anchors_and_merge(void **state)
{
    (void)state;
    struct sg_config *c = load("x-defaults: &defaults\n"
                               "  api_key: os.environ/PROVIDER_A_KEY\n"
                               "  timeout: 30\n"
                               "  stream_timeout: 2\n"
                               "model_list:\n"
                               "  - model_name: &alias app/chat\n"
                               "    litellm_params:\n"
                               "      <<: *defaults\n"
                               "      model: openai/gpt-4o-mini\n"
                               "      timeout: 10\n"
                               "  - model_name: *alias\n"
                               "    litellm_params: { <<: [*defaults], model: openai/gpt-4o }\n"
                               "router_settings:\n"
                               "  fallbacks: [ { *alias : [*alias] } ]\n");
    assert_null(c); /* the fallback to itself */
    assert_error(14, "'app/chat' falls back to itself");
    assert_warning(1, "unknown key 'x-defaults' at the top level");

    c = load("x-defaults: &defaults\n"
             "  api_key: os.environ/PROVIDER_A_KEY\n"
             "  timeout: 30\n"
             "model_list:\n"
             "  - model_name: &alias app/chat\n"
             "    litellm_params:\n"
             "      <<: *defaults\n"
             "      model: openai/gpt-4o-mini\n"
             "      timeout: 10\n"
             "  - model_name: *alias\n"
             "    litellm_params: { <<: [*defaults], model: openai/gpt-4o }\n");
    assert_loaded(c);
    assert_int_equal(c->n_groups, 1);
    assert_int_equal(c->deployments[0].timeout_ms, 10000); /* explicit key beats the merge */
    assert_int_equal(c->deployments[1].timeout_ms, 30000);
    assert_string_equal(c->deployments[1].api_key, "sk-a");
    assert_string_equal(c->deployments[1].provider_model, "gpt-4o");
    sg_config_unref(c);
}

static void test_billion_laughs(void **state)
{
    (void)state;
    struct sg_config *c = load("a: &a [x, x, x, x, x, x, x, x, x, x]\n"
                               "b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a, *a]\n"
                               "c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
                               "d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
                               "e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
                               "f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
                               "g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n"
                               "h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g, *g]\n");
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 1);
    assert_error(-1, "aliases expand to more than 50000 nodes");
}

static void test_bad_aliases(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "server: { host: *nowhere }\n");
    assert_null(c);
    assert_error(4, "alias *nowhere has no anchor &nowhere defined before it");

    c = load("a: &loop\n"
             "  b: *loop\n");
    assert_null(c);
    assert_error(2, "alias *loop refers to a node that contains it");
}

static void test_depth_limit(void **state)
{
    (void)state;
    char y[1024];
    size_t o = 0;
    o += (size_t)snprintf(y + o, sizeof y - o, "a: ");
    for (int i = 0; i < 100; i++)
        y[o++] = '[';
    for (int i = 0; i < 100; i++)
        y[o++] = ']';
    y[o++] = '\n';
    y[o] = '\0';
    struct sg_config *c = load(y);
    assert_null(c);
    assert_error(1, "nesting is deeper than 64 levels");
}

static void test_multiple_documents(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "---\nserver: { port: 1 }\n");
    assert_null(c);
    assert_error(4, "a second YAML document starts here");
}

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
    assert_int_equal(sg_diags_warnings(&D), 1);
    /* In source order. */
    for (size_t i = 1; i < D.n; i++)
        assert_true(D.v[i - 1].line <= D.v[i].line);
}

/* ---- files, diagnostics, references ---- */

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

static int teardown(void **state)
{
    (void)state;
    sg_diags_dispose(&D);
    return 0;
}

int main(void)
{
    sg_diags_init(&D);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_defaults, teardown),
        cmocka_unit_test_teardown(test_example_slogate, teardown),
        cmocka_unit_test_teardown(test_example_litellm, teardown),
        cmocka_unit_test_teardown(test_example_files_on_disk, teardown),
        cmocka_unit_test_teardown(test_env_secret_set, teardown),
        cmocka_unit_test_teardown(test_env_secret_unset, teardown),
        cmocka_unit_test_teardown(test_env_secret_empty, teardown),
        cmocka_unit_test_teardown(test_env_bad_name, teardown),
        cmocka_unit_test_teardown(test_env_getenv_default, teardown),
        cmocka_unit_test_teardown(test_environment_variables_section, teardown),
        cmocka_unit_test_teardown(test_api_key_from_provider_env, teardown),
        cmocka_unit_test_teardown(test_order_not_integer, teardown),
        cmocka_unit_test_teardown(test_numeric_ranges, teardown),
        cmocka_unit_test_teardown(test_durations, teardown),
        cmocka_unit_test_teardown(test_bools, teardown),
        cmocka_unit_test_teardown(test_wrong_shapes, teardown),
        cmocka_unit_test_teardown(test_nul_byte, teardown),
        cmocka_unit_test_teardown(test_unknown_keys, teardown),
        cmocka_unit_test_teardown(test_litellm_unsupported_keys, teardown),
        cmocka_unit_test_teardown(test_master_key_in_litellm_settings, teardown),
        cmocka_unit_test_teardown(test_split_model, teardown),
        cmocka_unit_test_teardown(test_provider_endpoints, teardown),
        cmocka_unit_test_teardown(test_provider_needs_api_base, teardown),
        cmocka_unit_test_teardown(test_model_list_shape, teardown),
        cmocka_unit_test_teardown(test_empty_model_list, teardown),
        cmocka_unit_test_teardown(test_ids_and_duplicates, teardown),
        cmocka_unit_test_teardown(test_groups_first_seen_order, teardown),
        cmocka_unit_test_teardown(test_costs_and_region, teardown),
        cmocka_unit_test_teardown(test_routing_strategy, teardown),
        cmocka_unit_test_teardown(test_fallbacks, teardown),
        cmocka_unit_test_teardown(test_general_settings, teardown),
        cmocka_unit_test_teardown(test_server_section, teardown),
        cmocka_unit_test_teardown(test_slo_section, teardown),
        cmocka_unit_test_teardown(test_features_section, teardown),
        cmocka_unit_test_teardown(test_budgets_section, teardown),
        cmocka_unit_test_teardown(test_cache_and_rate_limits, teardown),
        cmocka_unit_test_teardown(test_alert_sinks, teardown),
        cmocka_unit_test_teardown(test_telemetry_and_drill, teardown),
        cmocka_unit_test_teardown(test_yaml_syntax_error, teardown),
        cmocka_unit_test_teardown(test_top_level_not_mapping, teardown),
        cmocka_unit_test_teardown(test_empty_file, teardown),
        cmocka_unit_test_teardown(test_duplicate_keys, teardown),
        cmocka_unit_test_teardown(test_anchors_and_merge, teardown),
        cmocka_unit_test_teardown(test_billion_laughs, teardown),
        cmocka_unit_test_teardown(test_bad_aliases, teardown),
        cmocka_unit_test_teardown(test_depth_limit, teardown),
        cmocka_unit_test_teardown(test_multiple_documents, teardown),
        cmocka_unit_test_teardown(test_every_problem_collected, teardown),
        cmocka_unit_test_teardown(test_load_file_errors, teardown),
        cmocka_unit_test_teardown(test_diags_print, teardown),
        cmocka_unit_test_teardown(test_refcount, teardown),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
