/*
 * config: where a value comes from and how it is read. os.environ/ secrets, the
 * environment_variables section and a provider's key variable; typed values (integers, numbers,
 * durations, booleans, strings) and the exact wording of their messages.
 */
#include "config_load.h"

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

/* LiteLLM resolves an environment_variables value written os.environ/NAME from the process
 * environment before exporting it (and exports nothing when NAME is unset); it is never the
 * literal text "os.environ/NAME", which would be sent upstream as a key. */
static void test_environment_variables_refer_to_the_environment(void **state)
{
    (void)state;
    static const struct kv env[] = {{"REAL_KEY", "sk-real"},
                                    {"B_KEY", "sk-b-process"},
                                    {"C_KEY", "sk-c-process"},
                                    {NULL, NULL}};
    struct sg_config *c =
        load_env("environment_variables:\n"
                 "  A_KEY: os.environ/REAL_KEY\n"
                 "  B_KEY: os.environ/NOT_SET\n"
                 "  C_KEY: 12\n"
                 "model_list:\n"
                 "  - model_name: a\n"
                 "    litellm_params: { model: openai/x, api_key: os.environ/A_KEY }\n"
                 "  - model_name: b\n"
                 "    litellm_params: { model: openai/x, api_key: os.environ/B_KEY }\n"
                 "  - model_name: c\n"
                 "    litellm_params: { model: openai/x, api_key: os.environ/C_KEY }\n",
                 env);
    assert_clean(c);
    assert_string_equal(c->deployments[0].api_key, "sk-real");
    assert_string_equal(c->deployments[1].api_key, "sk-b-process");
    assert_string_equal(c->deployments[2].api_key, "12");
    sg_config_unref(c);
    c = load_env("environment_variables: { A_KEY: os.environ/NOT_SET }\n"
                 "model_list:\n"
                 "  - model_name: a\n"
                 "    litellm_params: { model: openai/x, api_key: os.environ/A_KEY }\n",
                 env);
    assert_null(c);
    assert_error(4, "model_list[0].litellm_params.api_key: os.environ/A_KEY is not set");
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

    /* LiteLLM tests a setting's truth, so configs written for it may say 1 and 0. */
    c = load(ONE_MODEL "general_settings: { disable_spend_logs: 1, background_health_checks: 0 }\n"
                       "router_settings: { enable_weighted_failover: 0 }\n");
    assert_clean(c);
    assert_true(c->general.disable_spend_logs);
    assert_false(c->general.background_health_checks);
    assert_false(c->router.enable_weighted_failover);
    sg_config_unref(c);
}

/* server.cors_origins: "*" unless set; one origin or a list, kept joined by ','; [] for none. */
static void test_cors_origins(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL);
    assert_clean(c);
    assert_string_equal(c->server.cors_origins, "*");
    sg_config_unref(c);
    c = load(ONE_MODEL
             "server: { cors_origins: [https://app.example, 'http://localhost:3000'] }\n");
    assert_clean(c);
    assert_string_equal(c->server.cors_origins, "https://app.example,http://localhost:3000");
    sg_config_unref(c);
    c = load(ONE_MODEL "server: { cors_origins: [] }\n");
    assert_clean(c);
    assert_string_equal(c->server.cors_origins, "");
    sg_config_unref(c);
    c = load(ONE_MODEL "server: { cors_origins: https://app.example/ }\n");
    assert_null(c);
    assert_error(4, "server.cors_origins: \"https://app.example/\" is not an origin; write each as "
                    "a browser sends it");
    c = load(ONE_MODEL "server:\n  cors_origins: [app.example, {a: 1}]\n");
    assert_null(c);
    assert_int_equal(sg_diags_errors(&D), 2);
}

/* PyYAML reads a plain 10_000 as the integer 10000 (YAML 1.1), so LiteLLM configs may say so;
 * quoted, or in an exponent, it is a string there and an error here. */
static void test_yaml11_underscore_numbers(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: app/chat\n"
                               "    litellm_params:\n"
                               "      model: openai/gpt-4o-mini\n"
                               "      api_key: sk-test\n"
                               "      rpm: 10_000\n"
                               "      tpm: +1_000__000\n"
                               "      input_cost_per_token: 0.000_000_15\n"
                               "      timeout: 1_5\n"
                               "budgets: { alert_at: [5_0, 9_0] }\n");
    assert_loaded(c);
    assert_int_equal(c->deployments[0].rpm, 10000);
    assert_int_equal(c->deployments[0].tpm, 1000000);
    assert_true(c->deployments[0].input_cost_per_token == 0.00000015);
    assert_int_equal(c->deployments[0].timeout_ms, 15000);
    assert_int_equal(c->budgets.n_alert_at, 2);
    assert_true(c->budgets.alert_at[1] == 90);
    sg_config_unref(c);
    c = load_env("model_list:\n"
                 "  - model_name: app/chat\n"
                 "    litellm_params:\n"
                 "      model: openai/gpt-4o-mini\n"
                 "      api_key: sk-test\n"
                 "      rpm: \"10_000\"\n"
                 "      tpm: _10\n"
                 "      timeout: 1e1_0\n"
                 "      order: os.environ/U\n",
                 (const struct kv[]){{"U", "1_0"}, {NULL, NULL}});
    assert_null(c);
    assert_error(6, "model_list[0].litellm_params.rpm must be an integer >= 0, got \"10_000\"");
    assert_error(7, "model_list[0].litellm_params.tpm must be an integer >= 0, got \"_10\"");
    assert_error(8, "model_list[0].litellm_params.timeout must be a duration");
    assert_error(9, "model_list[0].litellm_params.order must be an integer >= 1, got the value "
                    "of os.environ/U");
    assert_int_equal(sg_diags_errors(&D), 4);
}

/* YAML 1.1's other integer forms, as PyYAML (and so LiteLLM) resolves a plain scalar: 0x1f is
 * 31, 0b1010 is 10, a leading zero is octal (017 is 15), and 1:30 is sexagesimal (90). A quoted
 * one is a string to PyYAML, which LiteLLM's int() reads in base 10, as slogate does. */
static void test_yaml11_integer_forms(void **state)
{
    (void)state;
    struct sg_config *c = load("model_list:\n"
                               "  - model_name: app/chat\n"
                               "    litellm_params:\n"
                               "      model: openai/gpt-4o-mini\n"
                               "      api_key: sk-test\n"
                               "      rpm: 0x1f\n"
                               "      tpm: 0b1010\n"
                               "      order: 017\n"
                               "      timeout: 1:30\n"
                               "      stream_timeout: 1:30.5\n"
                               "      num_retries: 09\n"
                               "router_settings: { allowed_fails: 0x_f, num_retries: \"017\" }\n");
    assert_clean(c);
    const struct sg_deployment *d = &c->deployments[0];
    assert_int_equal(d->rpm, 31);
    assert_int_equal(d->tpm, 10);
    assert_int_equal(d->order, 15);
    assert_int_equal(d->timeout_ms, 90000);
    assert_int_equal(d->stream_timeout_ms, 90500);
    assert_int_equal(d->num_retries, 9);
    assert_int_equal(c->router.allowed_fails, 15);
    assert_int_equal(c->router.num_retries, 17);
    sg_config_unref(c);

    c = load("model_list:\n"
             "  - model_name: app/chat\n"
             "    litellm_params:\n"
             "      model: openai/gpt-4o-mini\n"
             "      api_key: sk-test\n"
             "      rpm: 0o17\n"
             "      timeout: 1:60\n"
             "      tpm: 0x\n");
    assert_null(c);
    assert_error(6, "model_list[0].litellm_params.rpm must be an integer >= 0, got \"0o17\"");
    assert_error(7, "model_list[0].litellm_params.timeout must be a duration");
    assert_error(8, "model_list[0].litellm_params.tpm must be an integer >= 0, got \"0x\"");
    assert_int_equal(sg_diags_errors(&D), 3);
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

int main(void)
{
    sg_diags_init(&D);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_env_secret_set, teardown),
        cmocka_unit_test_teardown(test_env_secret_unset, teardown),
        cmocka_unit_test_teardown(test_env_secret_empty, teardown),
        cmocka_unit_test_teardown(test_env_bad_name, teardown),
        cmocka_unit_test_teardown(test_env_getenv_default, teardown),
        cmocka_unit_test_teardown(test_environment_variables_section, teardown),
        cmocka_unit_test_teardown(test_environment_variables_refer_to_the_environment, teardown),
        cmocka_unit_test_teardown(test_api_key_from_provider_env, teardown),
        cmocka_unit_test_teardown(test_order_not_integer, teardown),
        cmocka_unit_test_teardown(test_numeric_ranges, teardown),
        cmocka_unit_test_teardown(test_durations, teardown),
        cmocka_unit_test_teardown(test_bools, teardown),
        cmocka_unit_test_teardown(test_cors_origins, teardown),
        cmocka_unit_test_teardown(test_yaml11_underscore_numbers, teardown),
        cmocka_unit_test_teardown(test_yaml11_integer_forms, teardown),
        cmocka_unit_test_teardown(test_wrong_shapes, teardown),
        cmocka_unit_test_teardown(test_nul_byte, teardown),
    };
    return cmocka_run_group_tests_name("config_values", tests, NULL, NULL);
}
