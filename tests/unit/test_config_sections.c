/*
 * config: the sections around model_list. Unknown keys and the LiteLLM keys slogate accepts or
 * ignores; LiteLLM's router_settings and general_settings; slogate's own server, slo, features,
 * budgets, cache, rate_limits, alerts, telemetry and drill.
 */
#include "config_load.h"

#include <sys/stat.h>
#include <unistd.h>

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
    assert_warning(12, "router_settings.redis_host is a LiteLLM setting slogate does not support; "
                       "ignored (set general_settings.redis_url");
    assert_warning(13, "router_settings.routing_groups");
    assert_warning(15, "litellm_settings.success_callback");
    assert_warning(16, "litellm_settings.drop_params");
    assert_warning(17, "litellm_settings.set_verbose");
    assert_warning(19, "general_settings.alerting");
    assert_warning(20, "guardrails is a LiteLLM setting");
    assert_int_equal(sg_diags_warnings(&D), 10);
    for (size_t i = 0; i < D.n; i++)
        assert_non_null(strstr(D.v[i].msg, tail));
    sg_config_unref(c);
}

/* Every key of LiteLLM's config reference (docs/proxy/config_settings.md) that slogate does
 * not implement is named as a LiteLLM setting, never as an unknown key: "unknown" reads as a
 * typo in a config LiteLLM runs as written. */
static void test_litellm_documented_keys(void **state)
{
    (void)state;
    static const struct {
        const char *section, *keys;
    } documented[] = {
        {"general_settings",
         "completion_model disable_spend_updates disable_retry_on_max_parallel_request_limit_error "
         "disable_adding_master_key_hash_to_db disable_responses_id_security "
         "reject_clientside_metadata_tags use_client_credentials_pass_through_routes "
         "enforced_params enable_oauth2_auth use_x_forwarded_for service_account_settings "
         "image_generation_model supported_db_objects user_mcp_management_mode "
         "store_prompts_in_spend_logs proxy_batch_polling_interval alerting_args "
         "custom_key_generate embedding_model default_team_disabled allow_user_auth "
         "user_api_key_cache_ttl moderation_model custom_sso allow_client_side_credentials "
         "use_azure_key_vault use_google_kms litellm_license oauth2_config_mappings "
         "enable_oauth2_proxy_auth forward_openai_org_id maximum_spend_logs_retention_interval"},
        {"litellm_settings",
         "service_callbacks s3_callback_params mcp_aliases "
         "disable_end_user_cost_tracking_prometheus_only disable_add_transform_inline_image_block "
         "use_chat_completions_url_for_anthropic_messages disable_hf_tokenizer_download "
         "enable_key_alias_format_validation disable_copilot_system_to_assistant"},
        {"router_settings",
         "redis_db enable_pre_call_check tag_filtering_match_any caching_groups assistants_config "
         "deployment_affinity_ttl_seconds ignore_invalid_deployments search_tools guardrail_list"},
    };
    for (size_t i = 0; i < sizeof documented / sizeof documented[0]; i++) {
        char yaml[4096];
        int n = snprintf(yaml, sizeof yaml, ONE_MODEL "%s:\n", documented[i].section);
        size_t keys = 0;
        for (const char *k = documented[i].keys; *k;) {
            size_t len = strcspn(k, " ");
            n += snprintf(yaml + n, sizeof yaml - (size_t)n, "  %.*s: os.environ/NEVER_SET\n",
                          (int)len, k);
            keys++;
            k += len + (k[len] == ' ');
        }
        assert_true((size_t)n < sizeof yaml);
        struct sg_config *c = load(yaml);
        assert_loaded(c);
        for (size_t j = 0; j < D.n; j++) {
            if (strstr(D.v[j].msg, "unknown key")) {
                dump();
                fail_msg("a LiteLLM key reported as unknown: %s", D.v[j].msg);
            }
            assert_non_null(strstr(D.v[j].msg, "is a LiteLLM setting slogate does not support"));
        }
        assert_int_equal(warnings(), keys);
        sg_config_unref(c);
    }
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
    /* What LiteLLM loads (and fails on only when a request needs it) is a warning, skipped. */
    assert_warning(7, "router_settings.fallbacks[0].a[0]: 'a-lite' is not a model_name in "
                      "model_list: add a deployment with model_name: a-lite or remove it; "
                      "skipped");
    assert_warning(8, "router_settings.fallbacks[1].b[0]: 'b' falls back to itself: skipped "
                      "(list other aliases)");
    assert_warning(9, "router_settings.fallbacks[2].nope: 'nope' is not a model_name in "
                      "model_list: add a deployment with model_name: nope or remove it; this "
                      "fallback is skipped");
    assert_warning(10, "router_settings.fallbacks[3].a: fallbacks for 'a' are listed twice "
                       "(first at line 7): the first list is used, as in LiteLLM; merge them "
                       "into one");
    /* What LiteLLM refuses too (Router.validate_fallbacks) stays an error. */
    assert_error(11, "router_settings.fallbacks[4] must be a one-key mapping {alias: [fallback "
                     "aliases]}, got \"just-a-string\"");
    assert_error(12, "router_settings.context_window_fallbacks must be a list of {alias: "
                     "[fallback aliases]} entries");
    assert_int_equal(sg_diags_errors(&D), 2);

    /* Without the shapes LiteLLM refuses, it loads: each skipped part is gone, the rest kept
     * (a's first list, with a-lite dropped, is empty, so a has no fallbacks; the repeat of a
     * is not used). */
    snprintf(y, sizeof y,
             "%srouter_settings:\n"
             "  fallbacks:\n"
             "    - a: [a-lite, b]\n"
             "    - b: [b]\n"
             "    - nope: [a]\n"
             "    - a: [c]\n",
             models);
    c = load(y);
    assert_loaded(c);
    assert_int_equal(c->router.n_fallbacks, 1);
    assert_string_equal(c->router.fallbacks[0].alias, "a");
    assert_int_equal(c->router.fallbacks[0].n, 1);
    assert_string_equal(c->router.fallbacks[0].targets[0], "b");
    assert_int_equal(warnings(), 4);
    sg_config_unref(c);
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
    assert_error(7, "general_settings.redis_url must start with redis:// or unix://");
    for (size_t i = 0; i < D.n; i++)
        assert_null(strstr(D.v[i].msg, "hunter2")); /* passwords never echoed */

    /* TLS: the router's client (hiredis 0.14) has none; it used to pass here and leave every
     * instance on local cooldowns, saying only "unreachable". */
    c = load(ONE_MODEL "general_settings:\n"
                       "  redis_url: rediss://:hunter2@cache:6380/0\n");
    assert_null(c);
    assert_error(5, "general_settings.redis_url: rediss:// (TLS) is not supported");
    for (size_t i = 0; i < D.n; i++)
        assert_null(strstr(D.v[i].msg, "hunter2"));
}

static void str_is(const char *got, const char *want)
{
    if (want)
        assert_string_equal(got, want);
    else
        assert_null(got);
}

/* One URL through sg_redis_url_parse: SG_OK and its parts, or the error's text. */
static void redis_url_is(const char *url, const char *host, const char *unix_path, const char *user,
                         const char *password, int port, int db)
{
    struct sg_redis_url u;
    char err[160] = "";
    int rc = sg_redis_url_parse(url, &u, err, sizeof err);
    if (rc != SG_OK)
        fail_msg("%s: %s", url, err);
    str_is(u.host, host);
    str_is(u.unix_path, unix_path);
    str_is(u.user, user);
    str_is(u.password, password);
    assert_int_equal(u.port, port);
    assert_int_equal(u.db, db);
    sg_redis_url_dispose(&u);
}

static void redis_url_refused(const char *url, const char *why)
{
    struct sg_redis_url u;
    char err[160] = "";
    assert_int_equal(sg_redis_url_parse(url, &u, err, sizeof err), SG_EINVAL);
    if (!strstr(err, why))
        fail_msg("%s: got \"%s\", want \"%s\"", url, err, why);
    assert_null(strstr(err, "hunter2")); /* never the password */
    assert_null(u.host);
    assert_null(u.password);
}

static void test_redis_url(void **state)
{
    (void)state;
    redis_url_is("redis://cache", "cache", NULL, NULL, NULL, 6379, 0);
    redis_url_is("redis://", "127.0.0.1", NULL, NULL, NULL, 6379, 0);
    redis_url_is("redis://cache:6380/", "cache", NULL, NULL, NULL, 6380, 0);
    redis_url_is("redis://:hunter2@10.0.0.5:6380/3", "10.0.0.5", NULL, NULL, "hunter2", 6380, 3);
    redis_url_is("redis://hunter2@cache", "cache", NULL, NULL, "hunter2", 6379, 0);
    redis_url_is("redis://app:p%40ss%3Aw%2Frd@cache/1", "cache", NULL, "app", "p@ss:w/rd", 6379, 1);
    redis_url_is("redis://app:p@ss@cache", "cache", NULL, "app", "p@ss", 6379, 0);
    redis_url_is("redis://[::1]:7000/2", "::1", NULL, NULL, NULL, 7000, 2);
    redis_url_is("redis://[fe80::1]", "fe80::1", NULL, NULL, NULL, 6379, 0);
    redis_url_is("unix:///run/redis.sock", NULL, "/run/redis.sock", NULL, NULL, 6379, 0);
    redis_url_is("unix://:pw@/run/redis.sock?db=4", NULL, "/run/redis.sock", NULL, "pw", 6379, 4);

    redis_url_refused("http://cache", "must start with redis:// or unix://");
    redis_url_refused("redis://cache:0", "the port must be a number from 1 to 65535, got '0'");
    redis_url_refused("redis://cache:65536", "got '65536'");
    redis_url_refused("redis://cache:63x79/0", "got '63x79'");
    redis_url_refused("redis://cache:/0", "got ''");
    redis_url_refused("redis://:hunter2@cache:99999999999", "the port must be a number");
    redis_url_refused("redis://cache/db0", "the path is the database number");
    redis_url_refused("redis://cache/-1", "got '/-1'");
    redis_url_refused("redis://cache?db=1", "unexpected '?db=1'");
    redis_url_refused("redis://:hunter2%4@cache", "must start an escape such as %40");
    redis_url_refused("redis://:hunter2%zz@cache", "must start an escape");
    redis_url_refused("redis://[::1", "an IPv6 host is written in brackets");
    redis_url_refused("redis://[::1]x", "after ']' comes :PORT or /DB");
    redis_url_refused("redis://[]:6379", "the host is empty");
    redis_url_refused("unix://run/redis.sock", "the socket's absolute path");
    redis_url_refused("unix:///run/redis.sock?database=1", "only ?db=N");

    /* The loader reports it where the URL is, without the password: check names it. */
    struct sg_config *c = load(ONE_MODEL "general_settings:\n"
                                         "  redis_url: redis://:hunter2@cache:637900/0\n");
    assert_null(c);
    assert_error(5, "general_settings.redis_url: the port must be a number from 1 to 65535, got "
                    "'637900'");
    for (size_t i = 0; i < D.n; i++)
        assert_null(strstr(D.v[i].msg, "hunter2"));
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
    /* --workers overrides server.workers; 0 means one per core in both places. */
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    int per_core = cores < 1 ? 1 : cores > SG_WORKERS_MAX ? SG_WORKERS_MAX : (int)cores;
    assert_int_equal(sg_config_workers(c, -1), 4); /* no flag: the config's 4 */
    assert_int_equal(sg_config_workers(c, 0), per_core);
    assert_int_equal(sg_config_workers(c, 7), 7);
    assert_int_equal(sg_config_workers(c, SG_WORKERS_MAX), SG_WORKERS_MAX);
    sg_config_unref(c);
    c = load(ONE_MODEL "server: { workers: 0 }\n");
    assert_clean(c);
    assert_int_equal(sg_config_workers(c, -1), per_core);
    sg_config_unref(c);
    c = load(ONE_MODEL "server: { workers: 1024 }\n");
    assert_clean(c);
    assert_int_equal(sg_config_workers(c, -1), 1024);
    sg_config_unref(c);
    c = load(ONE_MODEL "server: { workers: 1025 }\n");
    assert_null(c);
    assert_error(4, "server.workers must be an integer between 0 and 1024, got \"1025\"");

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

    /* server.host: an address or a host name as written (nothing resolved). */
    static const char *const hosts_ok[] = {"::", "::1", "10.1.2.3", "localhost", "gw-1.internal"};
    char yaml[256];
    for (size_t i = 0; i < SG_ARRAY_LEN(hosts_ok); i++) {
        snprintf(yaml, sizeof yaml, ONE_MODEL "server: { host: '%s' }\n", hosts_ok[i]);
        c = load(yaml);
        assert_clean(c);
        assert_string_equal(c->server.host, hosts_ok[i]);
        sg_config_unref(c);
    }
    static const char *const hosts_bad[] = {
        "http://0.0.0.0", "0.0.0.0:4000", "-gw",       "gw-",  "a..b",
        "[::1]",          "my host",      "999.1.1.1", "1234", "gw.10"};
    for (size_t i = 0; i < SG_ARRAY_LEN(hosts_bad); i++) {
        snprintf(yaml, sizeof yaml, ONE_MODEL "server: { host: '%s' }\n", hosts_bad[i]);
        c = load(yaml);
        assert_null(c);
        assert_error(4, "is not an IP address or a host name; listen on an address such as "
                        "127.0.0.1, 0.0.0.0");
    }
}

/* service.timezone: UTC, or a zone in the time zone database ($TZDIR, here a made-up one). */
static void test_service_timezone(void **state)
{
    (void)state;
    char dir[] = "/tmp/sg-tzdir-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/Europe", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/Europe/Berlin", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("TZif", f);
    fclose(f);
    setenv("TZDIR", dir, 1);

    struct sg_config *c = load(ONE_MODEL "service: { name: Acme, timezone: Europe/Berlin }\n");
    assert_clean(c);
    assert_string_equal(c->service.timezone, "Europe/Berlin");
    sg_config_unref(c);
    c = load(ONE_MODEL "service: { name: Acme }\n");
    assert_clean(c);
    assert_string_equal(c->service.timezone, "UTC");
    sg_config_unref(c);
    c = load(ONE_MODEL "service:\n"
                       "  timezone: Europe/Berln\n");
    assert_null(c);
    assert_error(5, "service.timezone: \"Europe/Berln\" is not a time zone in /tmp/sg-tzdir-");
    assert_error(5, "use UTC or an IANA name such as Europe/Berlin");
    static const char *const bad[] = {"Europe", "../Europe/Berlin", "/etc/passwd",
                                      "Europe/Ber lin"};
    char yaml[256];
    for (size_t i = 0; i < SG_ARRAY_LEN(bad); i++) {
        snprintf(yaml, sizeof yaml, ONE_MODEL "service: { timezone: '%s' }\n", bad[i]);
        c = load(yaml);
        assert_null(c);
        assert_error(4, "is not a time zone in");
    }
    unsetenv("TZDIR");
    unlink(path);
    snprintf(path, sizeof path, "%s/Europe", dir);
    rmdir(path);
    rmdir(dir);
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

    /* A name no request could give, or no row could hold whole. */
    c = load(ONE_MODEL "features:\n"
                       "  \"tab\\there\": {}\n"
                       "  ? \"\"\n"
                       "  : {}\n"
                       "  f123456789012345678901234567890123456789012345678901234567890123: {}\n"
                       "  f12345678901234567890123456789012345678901234567890123456789012: {}\n");
    assert_null(c);
    assert_error(5, "features.tab?here: a feature name must be 1 to 63 bytes with no control "
                    "character");
    assert_error(6, "a feature name must be 1 to 63 bytes");
    assert_error(8, "a feature name must be 1 to 63 bytes");
    assert_false(has(SG_DIAG_ERROR, 9, "feature name")); /* 63 bytes: fine */
}

/* cache.normalize.strip is a list of PCRE2 patterns: each is compiled when the config loads,
 * so `check` names a pattern the cache could not use, with the compiler's reason and offset. */
static void test_features_strip_regex(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "features:\n"
                                         "  a:\n"
                                         "    cache:\n"
                                         "      normalize:\n"
                                         "        strip:\n"
                                         "          - '[0-9a-f]{8}-[0-9a-f-]{27}'\n"
                                         "          - '(?i)order #\\d+'\n"
                                         "          - '(?<=token=)[^&\\s]+'\n"
                                         "          - '\\bsess_\\w+?\\b'\n"
                                         "          - 'caf\xc3\xa9'\n");
    assert_clean(c);
    assert_int_equal(c->features[0].cache.n_strip, 5);
    assert_string_equal(c->features[0].cache.strip[1], "(?i)order #\\d+");
    sg_config_unref(c);

    c = load(ONE_MODEL "features:\n"
                       "  a:\n"
                       "    cache:\n"
                       "      normalize:\n"
                       "        strip:\n"
                       "          - '(unclosed'\n"
                       "          - ok+\n"
                       "          - '[z-a]'\n"
                       "  b: { cache: { normalize: { strip: ['x{2,1}', '*lead'] } } }\n"
                       "  c: { cache: { normalize: { strip: ['a*', '(x)?|y', 'ok+'] } } }\n");
    assert_null(c);
    assert_error(9, "features.a.cache.normalize.strip[0]: \"(unclosed\" is not a valid regular "
                    "expression: missing closing parenthesis at offset 9");
    assert_error(11, "features.a.cache.normalize.strip[2]: \"[z-a]\" is not a valid regular "
                     "expression: range out of order in character class at offset 3");
    assert_error(12, "features.b.cache.normalize.strip[0]: \"x{2,1}\" is not a valid regular "
                     "expression: numbers out of order in {} quantifier at offset 5");
    assert_error(12, "features.b.cache.normalize.strip[1]: \"*lead\" is not a valid regular "
                     "expression: quantifier does not follow a repeatable item at offset 0");
    assert_error(9, "(PCRE2 syntax");
    /* One that matches "" would strip nothing where it matches nothing. */
    assert_error(13, "features.c.cache.normalize.strip[0]: \"a*\" matches the empty string");
    assert_error(13, "features.c.cache.normalize.strip[1]: \"(x)?|y\" matches the empty string; "
                     "a strip pattern must match at least one character (use + where it says *)");
    assert_int_equal(sg_diags_errors(&D), 6);

    /* One from the environment is named by its variable. */
    static const struct kv env[] = {{"STRIP_RE", "(?<=x"}, {NULL, NULL}};
    c = load_env(ONE_MODEL "features: { f: { cache: { normalize: { strip: [os.environ/STRIP_RE] } "
                           "} } }\n",
                 env);
    assert_null(c);
    assert_error(4, "features.f.cache.normalize.strip[0]: the value of os.environ/STRIP_RE is not "
                    "a valid regular expression: ");

    /* A pattern longer than 4096 bytes is refused before it is compiled. */
    char yaml[9000];
    char *re = malloc(4098);
    for (size_t n = 4096; n <= 4097; n++) {
        memset(re, 'a', n);
        re[n] = '\0';
        snprintf(yaml, sizeof yaml,
                 ONE_MODEL "features: { f: { cache: { normalize: { strip: [%s] } } } }\n", re);
        c = load(yaml);
        if (n == 4096) {
            assert_clean(c);
            sg_config_unref(c);
        } else {
            assert_null(c);
            assert_error(4, "features.f.cache.normalize.strip[0]: \"aaaa");
            assert_error(4, "is 4097 bytes long; a strip pattern may have at most 4096: split it");
        }
    }
    free(re);
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

/* What is read and checked but not acted on yet is said, once per section or feature, on its
 * line; a feature that only asks for prompt caching (which works) is not. */
static void test_not_enforced_yet_is_said(void **state)
{
    (void)state;
    struct sg_config *c = load(ONE_MODEL "features:\n"
                                         "  capped: { max_output_tokens: 5 }\n"
                                         "  cached: { prompt_caching: true }\n"
                                         "budgets: { tenant_monthly_usd: 10 }\n"
                                         "rate_limits: { rps: 5 }\n"
                                         "cache: { max_mb: 1 }\n"
                                         "alerts: { sinks: [{ type: log }] }\n");
    assert_non_null(c);
    assert_int_equal(warnings(), 0);
    assert_warning(5, "features.capped: its caps and cache are checked but not enforced");
    assert_warning(7, "budgets is checked but not enforced by this version of slogate yet");
    assert_warning(8, "rate_limits is checked but not enforced");
    assert_warning(9, "cache is checked but not enforced");
    assert_warning(10, "alerts is checked but not enforced");
    assert_int_equal(sg_diags_warnings(&D), 5);
    sg_config_unref(c);
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

int main(void)
{
    sg_diags_init(&D);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_unknown_keys, teardown),
        cmocka_unit_test_teardown(test_litellm_unsupported_keys, teardown),
        cmocka_unit_test_teardown(test_litellm_documented_keys, teardown),
        cmocka_unit_test_teardown(test_master_key_in_litellm_settings, teardown),
        cmocka_unit_test_teardown(test_routing_strategy, teardown),
        cmocka_unit_test_teardown(test_fallbacks, teardown),
        cmocka_unit_test_teardown(test_general_settings, teardown),
        cmocka_unit_test_teardown(test_server_section, teardown),
        cmocka_unit_test_teardown(test_service_timezone, teardown),
        cmocka_unit_test_teardown(test_slo_section, teardown),
        cmocka_unit_test_teardown(test_features_section, teardown),
        cmocka_unit_test_teardown(test_features_strip_regex, teardown),
        cmocka_unit_test_teardown(test_budgets_section, teardown),
        cmocka_unit_test_teardown(test_cache_and_rate_limits, teardown),
        cmocka_unit_test_teardown(test_redis_url, teardown),
        cmocka_unit_test_teardown(test_alert_sinks, teardown),
        cmocka_unit_test_teardown(test_not_enforced_yet_is_said, teardown),
        cmocka_unit_test_teardown(test_telemetry_and_drill, teardown),
    };
    return cmocka_run_group_tests_name("config_sections", tests, NULL, NULL);
}
