/*
 * The section tables: LiteLLM's general_settings and litellm_settings, and slogate's own
 * server, service, slo, features, budgets, rate_limits, cache, alerts, telemetry and drill
 * (router_settings has a file of its own, router_settings.c). Each table is the single place that
 * says a key's type, default and bounds; the few keys that need more than a table row have a custom
 * loader next to their table.
 *
 * model_list lives in config.c: it needs the provider logic and builds the groups that the
 * fallbacks and budgets checks below look aliases up in.
 */
#include "config_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

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

/* ---- general_settings and litellm_settings ---- */

/* Show only a URL's scheme: database and Redis URLs carry passwords. */
static void url_scheme_check(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                             char **slot, const char *const *schemes, size_t n, const char *want)
{
    char *s = sg_cfg_string(ld, v, path);
    if (!s)
        return;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(s, schemes[i], strlen(schemes[i])) == 0 && s[strlen(schemes[i])]) {
            replace_str(slot, s);
            return;
        }
    }
    const char *sep = strstr(s, "://");
    if (sep && sep - s < 20)
        sg_cfg_err(ld, v->line, "%s must start with %s; got a %.*s:// URL", path, want,
                   (int)(sep - s), s);
    else
        sg_cfg_err(ld, v->line, "%s must start with %s; got a value without a URL scheme", path,
                   want);
    free(s);
}

static void database_url(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                         void *base)
{
    static const char *const schemes[] = {"sqlite://", "postgresql://", "postgres://"};
    struct sg_general_settings *g = base;
    if (!v)
        replace_str(&g->database_url, sg_xstrdup("sqlite://slogate.db"));
    else
        url_scheme_check(ld, v, path, &g->database_url, schemes, SG_ARRAY_LEN(schemes),
                         "sqlite:// or postgresql://");
}

static void redis_url(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                      void *base)
{
    static const char *const schemes[] = {"redis://", "unix://"};
    struct sg_general_settings *g = base;
    if (!v)
        replace_str(&g->redis_url, NULL);
    else if (v->s && strncmp(v->s, "rediss://", 9) == 0)
        /* hiredis 0.14 (Debian's) has no TLS: the URL used to pass here and leave every
         * instance on local cooldowns, readiness saying "unreachable", with no hint why. */
        sg_cfg_err(ld, v->line,
                   "%s: rediss:// (TLS) is not supported; use redis:// on a private network or "
                   "through a local TLS tunnel (stunnel, spiped), or unix://",
                   path);
    else {
        char *url = NULL;
        url_scheme_check(ld, v, path, &url, schemes, SG_ARRAY_LEN(schemes), "redis:// or unix://");
        struct sg_redis_url u;
        char why[160];
        if (url && sg_redis_url_parse(url, &u, why, sizeof why) != SG_OK) {
            sg_cfg_err(ld, v->line, "%s: %s", path, why); /* never the URL: it has the password */
            free(url);
        } else if (url) {
            sg_redis_url_dispose(&u);
            replace_str(&g->redis_url, url);
        }
    }
}

#define GENERAL(m) OFF(struct sg_general_settings, m)
static const struct sg_cfg_field general_fields[] = {
    {"master_key", SG_FT_STR, GENERAL(master_key), .defs = NULL},
    {"database_url", SG_FT_CUSTOM, 0, .custom = database_url},
    {"redis_url", SG_FT_CUSTOM, 0, .custom = redis_url},
    {"disable_spend_logs", SG_FT_BOOL, GENERAL(disable_spend_logs), .def = 0},
    {"max_request_size_mb", SG_FT_MB, GENERAL(max_request_size_bytes), .def = 8, .min = 0,
     .max = 1024, .flags = SG_FL_GT},
    {"background_health_checks", SG_FT_BOOL, GENERAL(background_health_checks), .def = 0},
    {"health_check_interval", SG_FT_SECS_MS, GENERAL(health_check_interval_ms), .def = 300,
     .min = 1, .max = 86400},
};
static const struct sg_cfg_ignored general_litellm[] = {
    {"alerting", "use alerts.sinks"},
    {"alerting_threshold", "use alerts.sinks and the slo: targets"},
    {"alert_types", NULL},
    {"alert_to_webhook_url", "use alerts.sinks"},
    {"store_model_in_db", NULL},
    {"proxy_batch_write_at", NULL},
    {"database_connection_pool_limit", NULL},
    {"database_connection_timeout", NULL},
    {"disable_master_key_return", NULL},
    {"allowed_routes", NULL},
    {"public_routes", NULL},
    {"admin_only_routes", NULL},
    {"enforce_user_param", NULL},
    {"custom_auth", NULL},
    {"health_check_details", NULL},
    {"max_parallel_requests", "use rate_limits"},
    {"global_max_parallel_requests", "use server.max_connections"},
    {"infer_model_from_keys", NULL},
    {"allow_requests_on_db_unavailable", NULL},
    {"ui_access_mode", NULL},
    {"maximum_spend_logs_retention_period", NULL},
    {"litellm_key_header_name", NULL},
    {"pass_through_endpoints", NULL},
    {"user_header_name", NULL},
    {"allowed_ips", NULL},
    {"enable_jwt_auth", NULL},
    {"disable_reset_budget", NULL},
    {"spend_report_frequency", NULL},
    {"max_response_size_mb", NULL},
    {"proxy_budget_rescheduler_min_time", NULL},
    {"proxy_budget_rescheduler_max_time", NULL},
    {"disable_prisma_schema_update", NULL},
    {"use_redis_transaction_buffer", NULL},
    {"key_management_system", NULL},
    {"key_management_settings", NULL},
    {"forward_client_headers_to_llm_api", NULL},
    {"disable_error_logs", NULL},
    {"litellm_jwtauth", NULL},
    {"use_queue", NULL},
    {"completion_model", NULL},
    {"embedding_model", NULL},
    {"image_generation_model", NULL},
    {"moderation_model", NULL},
    {"store_prompts_in_spend_logs", "telemetry.log_prompts puts prompts in the request log"},
    {"disable_spend_updates", NULL},
    {"disable_retry_on_max_parallel_request_limit_error", NULL},
    {"disable_adding_master_key_hash_to_db", NULL},
    {"disable_responses_id_security", NULL},
    {"reject_clientside_metadata_tags", NULL},
    {"use_client_credentials_pass_through_routes", NULL},
    {"enforced_params", NULL},
    {"enable_oauth2_auth", NULL},
    {"enable_oauth2_proxy_auth", NULL},
    {"oauth2_config_mappings", NULL},
    {"use_x_forwarded_for", NULL},
    {"service_account_settings", NULL},
    {"supported_db_objects", NULL},
    {"user_mcp_management_mode", NULL},
    {"proxy_batch_polling_interval", NULL},
    {"alerting_args", "use alerts.sinks"},
    {"custom_key_generate", NULL},
    {"custom_sso", NULL},
    {"default_team_disabled", NULL},
    {"allow_user_auth", NULL},
    {"allow_client_side_credentials", NULL},
    {"user_api_key_cache_ttl", NULL},
    {"use_azure_key_vault", "reference secrets with os.environ/NAME"},
    {"use_google_kms", "reference secrets with os.environ/NAME"},
    {"litellm_license", NULL},
    {"forward_openai_org_id", NULL},
    {"maximum_spend_logs_retention_interval", NULL},
    {NULL, NULL},
};
static const struct sg_cfg_table general_table = TABLE(general_fields, general_litellm);

/* litellm_settings is loaded into a scratch sg_general_settings, then merged (see below). */
static const struct sg_cfg_field litellm_fields[] = {
    {"master_key", SG_FT_STR, GENERAL(master_key), .defs = NULL},
    {"database_url", SG_FT_CUSTOM, 0, .custom = database_url},
    /* LiteLLM's router defaults (router_defaults). */
    {"num_retries", SG_FT_CUSTOM, 0, .custom = sg_cfg_later},
    {"request_timeout", SG_FT_CUSTOM, 0, .custom = sg_cfg_later},
    {"allowed_fails", SG_FT_CUSTOM, 0, .custom = sg_cfg_later},
    {"fallbacks", SG_FT_CUSTOM, 0, .custom = sg_cfg_later},
    {"context_window_fallbacks", SG_FT_CUSTOM, 0, .custom = sg_cfg_later},
    {"default_fallbacks", SG_FT_CUSTOM, 0, .custom = sg_cfg_later},
};
static const struct sg_cfg_ignored litellm_litellm[] = {
    {"success_callback", "slogate exports OTLP spans: see telemetry.otlp_endpoint"},
    {"failure_callback", "slogate exports OTLP spans: see telemetry.otlp_endpoint"},
    {"callbacks", "slogate exports OTLP spans: see telemetry.otlp_endpoint"},
    {"service_callback", NULL},
    {"drop_params", NULL},
    {"modify_params", NULL},
    {"set_verbose", "use server.log_level"},
    {"json_logs", NULL},
    {"content_policy_fallbacks", NULL},
    {"cooldown_time", "LiteLLM's router reads it from router_settings.cooldown_time only, as "
                      "slogate does"},
    {"include_cost_in_streaming_usage", "x-slogate-cost-usd carries each answer's cost"},
    {"cache", "configure caching in the cache: section and per feature"},
    {"cache_params", "configure caching in the cache: section and per feature"},
    {"turn_off_message_logging", "prompts are not logged unless telemetry.log_prompts is true"},
    {"redact_user_api_key_info", NULL},
    {"redact_messages_in_exceptions", NULL},
    {"default_team_settings", NULL},
    {"max_budget", "use budgets:"},
    {"budget_duration", "budgets are monthly"},
    {"max_internal_user_budget", "use budgets.user_monthly_usd"},
    {"internal_user_budget_duration", NULL},
    {"telemetry", NULL},
    {"enable_preview_features", NULL},
    {"langfuse_default_tags", NULL},
    {"default_internal_user_params", NULL},
    {"upperbound_key_generate_params", NULL},
    {"default_key_generate_params", NULL},
    {"key_generation_settings", NULL},
    {"force_ipv4", NULL},
    {"ssl_verify", NULL},
    {"enable_json_schema_validation", NULL},
    {"disable_end_user_cost_tracking", NULL},
    {"return_response_headers", NULL},
    {"callback_settings", NULL},
    {"public_model_groups", NULL},
    {"disable_token_counter", NULL},
    {"service_callbacks", "slogate exports Prometheus metrics and OTLP spans"},
    {"s3_callback_params", NULL},
    {"mcp_aliases", NULL},
    {"disable_end_user_cost_tracking_prometheus_only", NULL},
    {"disable_add_transform_inline_image_block", NULL},
    {"use_chat_completions_url_for_anthropic_messages", NULL},
    {"disable_hf_tokenizer_download", NULL},
    {"enable_key_alias_format_validation", NULL},
    {"disable_copilot_system_to_assistant", NULL},
    {NULL, NULL},
};
static const struct sg_cfg_table litellm_table = TABLE(litellm_fields, litellm_litellm);

/* Move master_key / database_url from litellm_settings (where the seed puts them) to general
 * settings, unless general_settings already sets them. */
static void merge_litellm(struct sg_cfg_loader *ld, const struct sg_ynode *root)
{
    const struct sg_ynode *gn = sg_ynode_get(root, "general_settings");
    const struct sg_ynode *ln = sg_ynode_get(root, "litellm_settings");
    struct sg_general_settings tmp = {0};
    sg_cfg_at(ld, "litellm_settings");
    sg_cfg_values(ld, ln, "litellm_settings", &litellm_table, &tmp);
    static const char *const keys[] = {"master_key", "database_url"};
    char **from[] = {&tmp.master_key, &tmp.database_url};
    char **to[] = {&ld->c->general.master_key, &ld->c->general.database_url};
    for (size_t i = 0; i < SG_ARRAY_LEN(keys); i++) {
        const struct sg_ynode *lv = sg_ynode_get(ln, keys[i]);
        if (!lv || sg_ynode_is_null(lv))
            continue;
        const struct sg_ynode *gv = sg_ynode_get(gn, keys[i]);
        if (gv && !sg_ynode_is_null(gv)) {
            sg_cfg_warn(ld, lv->line,
                        "litellm_settings.%s is ignored because general_settings.%s is set: "
                        "remove one of them",
                        keys[i], keys[i]);
        } else if (*from[i]) {
            sg_cfg_warn(ld, lv->line,
                        "litellm_settings.%s is accepted, but it belongs in general_settings "
                        "(where LiteLLM's proxy reads it): move it there",
                        keys[i]);
            replace_str(to[i], *from[i]);
            *from[i] = NULL;
        }
    }
    free(tmp.master_key);
    free(tmp.database_url);
}

/* ---- server, service ---- */

/* An IPv4 or IPv6 address, or a host name (RFC 1123: labels of letters, digits and inner '-'),
 * taken as written: `check` may run on another machine than `serve`, so nothing is resolved.
 * The last label of a name is not all digits (RFC 3696 2): "999.1.1.1" is a mistyped address,
 * which getaddrinfo would send to DNS, and "1234" is one inet_aton would read as 0.0.4.210. */
bool sg_config_host_ok(const char *s)
{
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET, s, addr) == 1 || inet_pton(AF_INET6, s, addr) == 1)
        return true;
    size_t label = 0;
    bool digits = true; /* the current label holds only digits */
    for (const char *p = s;; p++) {
        if (*p == '.' || *p == '\0') {
            if (label == 0 || label > 63 || p[-1] == '-')
                return false;
            if (!*p)
                return p - s <= 253 && !digits;
            label = 0;
            digits = true;
        } else if (isalnum((unsigned char)*p) || (*p == '-' && label > 0)) {
            label++;
            digits &= isdigit((unsigned char)*p) != 0;
        } else {
            return false;
        }
    }
}

static void server_host(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                        void *base)
{
    struct sg_server_settings *srv = base;
    char *host = v ? sg_cfg_string(ld, v, path) : sg_xstrdup("127.0.0.1");
    if (host && !sg_config_host_ok(host)) {
        char shown[96];
        sg_cfg_err(ld, v->line,
                   "%s: %s is not an IP address or a host name; listen on an address such as "
                   "127.0.0.1, 0.0.0.0 (every IPv4 interface) or :: (every interface)",
                   path, sg_cfg_show(v, NULL, shown, sizeof shown));
        free(host);
        host = NULL;
    }
    if (host)
        replace_str(&srv->host, host);
}

/* An origin as a browser sends it in Origin: scheme://host[:port], no path, no trailing '/'. */
static bool origin_ok(const char *s)
{
    const char *host = strncmp(s, "https://", 8) == 0  ? s + 8
                       : strncmp(s, "http://", 7) == 0 ? s + 7
                                                       : NULL;
    return strcmp(s, "*") == 0 || (host && *host && !strpbrk(host, "/, \t"));
}

/* server.cors_origins: the web origins whose pages may call the gateway from a browser (CORS).
 * "*" (the default, as LiteLLM's proxy and OpenAI's API answer: the key is the credential), one
 * origin, or a list; [] for none. Kept as one string, "," between origins. */
static void server_cors(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                        void *base)
{
    struct sg_server_settings *srv = base;
    if (!v) {
        replace_str(&srv->cors_origins, sg_xstrdup("*"));
        return;
    }
    struct sg_buf b;
    sg_buf_init(&b, 0);
    size_t n = v->kind == SG_YSEQ ? v->n : 1;
    for (size_t i = 0; i < n; i++) {
        const struct sg_ynode *o = v->kind == SG_YSEQ ? v->items[i] : v;
        char *s = o->kind == SG_YSCALAR ? sg_cfg_string(ld, o, path) : NULL;
        if (o->kind == SG_YSCALAR && !s)
            continue; /* sg_cfg_string said why */
        if (!s || !origin_ok(s)) {
            char shown[96];
            sg_cfg_err(ld, o->line,
                       "%s: %s is not an origin; write each as a browser sends it, such as "
                       "https://app.example.com or http://localhost:3000 (no path, no trailing "
                       "'/'), \"*\" for any, or [] for none",
                       path, sg_cfg_show(o, NULL, shown, sizeof shown));
        } else {
            sg_buf_appendf(&b, "%s%s", b.len ? "," : "", s);
        }
        free(s);
    }
    if (b.len > SG_CFG_CORS_MAX)
        sg_cfg_err(ld, v->line, "%s: the origins are longer than %d bytes together; list fewer",
                   path, SG_CFG_CORS_MAX);
    replace_str(&srv->cors_origins, sg_xstrdup(b.len <= SG_CFG_CORS_MAX && b.data ? b.data : ""));
    sg_buf_dispose(&b);
}

/* service.timezone: UTC, or an IANA zone the machine's time zone database holds (the drill's
 * report gives its start in it). */
static void service_timezone(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                             void *base)
{
    struct sg_service_settings *svc = base;
    char *tz = v ? sg_cfg_string(ld, v, path) : sg_xstrdup("UTC");
    if (!tz)
        return;
    const char *dir = getenv("TZDIR") ? getenv("TZDIR") : "/usr/share/zoneinfo";
    bool ok = strcmp(tz, "UTC") == 0;
    if (!ok && tz[0] != '/' && !strstr(tz, "..") &&
        strspn(tz, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789/_+-") ==
            strlen(tz)) {
        char file[PATH_MAX];
        struct stat st;
        ok = (size_t)snprintf(file, sizeof file, "%s/%s", dir, tz) < sizeof file &&
             stat(file, &st) == 0 && S_ISREG(st.st_mode);
    }
    if (!ok) {
        char shown[96];
        sg_cfg_err(ld, v->line,
                   "%s: %s is not a time zone in %s; use UTC or an IANA name such as "
                   "Europe/Berlin or America/New_York (Debian's tzdata package installs them)",
                   path, sg_cfg_show(v, NULL, shown, sizeof shown), dir);
        free(tz);
        return;
    }
    replace_str(&svc->timezone, tz);
}

#define SERVER(m) OFF(struct sg_server_settings, m)
static const struct sg_cfg_field server_fields[] = {
    {"host", SG_FT_CUSTOM, 0, .custom = server_host},
    {"port", SG_FT_INT, SERVER(port), .def = 4000, .min = 1, .max = 65535},
    {"workers", SG_FT_INT, SERVER(workers), .def = 0, .min = 0, .max = SG_WORKERS_MAX},
    {"idle_timeout_s", SG_FT_SECS_MS, SERVER(idle_timeout_ms), .def = 60, .min = 0, .max = 86400,
     .flags = SG_FL_GT},
    {"header_timeout_s", SG_FT_SECS_MS, SERVER(header_timeout_ms), .def = 10, .min = 0, .max = 3600,
     .flags = SG_FL_GT},
    {"drain_timeout_s", SG_FT_SECS_MS, SERVER(drain_timeout_ms), .def = 30, .min = 0, .max = 3600},
    {"shutdown_delay_s", SG_FT_SECS_MS, SERVER(shutdown_delay_ms), .def = 0, .min = 0, .max = 3600},
    {"max_connections", SG_FT_U32, SERVER(max_connections), .def = 10000, .min = 1,
     .max = 10000000},
    {"log_level", SG_FT_ENUM, SERVER(log_level), .defs = "info",
     .choices = "debug|info|warn|error"},
    {"cors_origins", SG_FT_CUSTOM, 0, .custom = server_cors},
};
static const struct sg_cfg_table server_table = TABLE(server_fields, NULL);

static const struct sg_cfg_field service_fields[] = {
    {"name", SG_FT_STR, OFF(struct sg_service_settings, name), .defs = "slogate"},
    {"timezone", SG_FT_CUSTOM, 0, .custom = service_timezone},
};
static const struct sg_cfg_table service_table = TABLE(service_fields, NULL);

/* ---- slo ---- */

static void maint_start(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                        void *base)
{
    struct sg_maintenance *m = base;
    if (!v) {
        m->start_ms = 0;
        return;
    }
    char *s = sg_cfg_string(ld, v, path);
    if (!s)
        return;
    if (!sg_cfg_parse_rfc3339(s, &m->start_ms)) {
        char shown[96];
        sg_cfg_err(ld, v->line,
                   "%s must be an RFC 3339 time in UTC, e.g. \"2026-12-01T02:00:00Z\"; got %s",
                   path, sg_cfg_show(v, NULL, shown, sizeof shown));
    }
    free(s);
}

static const struct sg_cfg_field maint_fields[] = {
    {"start", SG_FT_CUSTOM, 0, .custom = maint_start, .flags = SG_FL_REQUIRED,
     .hint = ": an RFC 3339 UTC time such as \"2026-12-01T02:00:00Z\""},
    {"minutes", SG_FT_U32, OFF(struct sg_maintenance, minutes), .min = 1, .max = 10080,
     .flags = SG_FL_REQUIRED, .hint = ": how long the window lasts"},
};
static const struct sg_cfg_table maint_table = TABLE(maint_fields, NULL);

static void maintenance(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                        void *base)
{
    struct sg_slo_settings *s = base;
    char shown[96], ipath[SG_CFG_PATH_MAX];
    if (!v) {
        free(s->maintenance);
        s->maintenance = NULL;
        s->n_maintenance = 0;
        return;
    }
    if (v->kind != SG_YSEQ) {
        sg_cfg_err(ld, v->line,
                   "%s must be a list of {start: \"2026-12-01T02:00:00Z\", minutes: 30}, got %s",
                   path, sg_cfg_show(v, NULL, shown, sizeof shown));
        return;
    }
    s->maintenance = sg_xcalloc(v->n ? v->n : 1, sizeof *s->maintenance);
    for (size_t i = 0; i < v->n; i++) {
        sg_cfg_index(ipath, path, i);
        sg_cfg_defaults(ld, &maint_table, &s->maintenance[i]);
        sg_cfg_values(ld, v->items[i], ipath, &maint_table, &s->maintenance[i]);
    }
    s->n_maintenance = v->n;
}

#define SLO(m) OFF(struct sg_slo_settings, m)
static const struct sg_cfg_field slo_fields[] = {
    {"window_days", SG_FT_INT, SLO(window_days), .def = 30, .min = 1, .max = 366},
    {"success_rate", SG_FT_DOUBLE, SLO(success_rate), .def = 99.5, .min = 0, .max = 100,
     .flags = SG_FL_GT | SG_FL_LT},
    {"p95_latency_s", SG_FT_DOUBLE, SLO(p95_latency_s), .def = 2.5, .min = 0, .max = 3600,
     .flags = SG_FL_GT},
    {"cost_avg_usd", SG_FT_DOUBLE, SLO(cost_avg_usd), .def = 0.015, .min = 0, .max = SG_CFG_NOMAX},
    {"maintenance", SG_FT_CUSTOM, 0, .custom = maintenance},
};
static const struct sg_cfg_table slo_table = TABLE(slo_fields, NULL);

/* ---- features ---- */

/* How strip patterns are compiled: PCRE2 (DESIGN §3), UTF-8 mode, since prompts are UTF-8 and
 * `.` must take a whole character. The cache must compile them the same way. */
#define STRIP_OPTIONS PCRE2_UTF
/* Longer than any pattern a person writes; keeps a hostile file from compiling megabytes. */
#define STRIP_PATTERN_MAX 4096

/* Whether `re` (the text of `v`) compiles as the cache will compile it; an error naming the
 * pattern, the compiler's reason and the offset otherwise. Nothing compiled is kept. */
static bool strip_compiles(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                           const char *re)
{
    char shown[96];
    /* Name a pattern taken from the environment by its variable, as every message does. */
    const char *env = strncmp(v->s, "os.environ/", 11) == 0 ? v->s + 11 : NULL;
    size_t len = strlen(re);
    if (len > STRIP_PATTERN_MAX) {
        sg_cfg_err(ld, v->line,
                   "%s: %s is %zu bytes long; a strip pattern may have at most %d: split it", path,
                   sg_cfg_show(v, NULL, shown, sizeof shown), len, STRIP_PATTERN_MAX);
        return false;
    }
    int code;
    PCRE2_SIZE off;
    pcre2_code *compiled = pcre2_compile((PCRE2_SPTR)re, len, STRIP_OPTIONS, &code, &off, NULL);
    if (compiled) {
        pcre2_match_data *md = pcre2_match_data_create_from_pattern(compiled, NULL);
        bool empty = pcre2_match(compiled, (PCRE2_SPTR) "", 0, 0, 0, md, NULL) >= 0;
        pcre2_match_data_free(md);
        pcre2_code_free(compiled);
        if (empty)
            sg_cfg_err(ld, v->line,
                       "%s: %s matches the empty string; a strip pattern must match at least one "
                       "character (use + where it says *)",
                       path, sg_cfg_show(v, env, shown, sizeof shown));
        return !empty;
    }
    PCRE2_UCHAR why[160];
    if (pcre2_get_error_message(code, why, sizeof why) < 0)
        snprintf((char *)why, sizeof why, "PCRE2 error %d", code);
    sg_cfg_err(ld, v->line,
               "%s: %s is not a valid regular expression: %s at offset %zu (PCRE2 syntax; fix "
               "the pattern or remove it)",
               path, sg_cfg_show(v, env, shown, sizeof shown), (const char *)why, (size_t)off);
    return false;
}

static void strip_list(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                       void *base)
{
    struct sg_feature_cache *fc = base;
    char shown[96], ipath[SG_CFG_PATH_MAX];
    for (size_t i = 0; i < fc->n_strip; i++)
        free(fc->strip[i]);
    free(fc->strip);
    fc->strip = NULL;
    fc->n_strip = 0;
    if (!v)
        return;
    if (v->kind != SG_YSEQ) {
        sg_cfg_err(ld, v->line, "%s must be a list of regular expressions, got %s", path,
                   sg_cfg_show(v, NULL, shown, sizeof shown));
        return;
    }
    /* Kept as text; compiled here only to refuse what the cache could not use. */
    fc->strip = sg_xcalloc(v->n ? v->n : 1, sizeof *fc->strip);
    for (size_t i = 0; i < v->n; i++) {
        sg_cfg_index(ipath, path, i);
        char *re = sg_cfg_string(ld, v->items[i], ipath);
        if (re && strip_compiles(ld, v->items[i], ipath, re))
            fc->strip[fc->n_strip++] = re;
        else
            free(re);
    }
}

#define FCACHE(m) OFF(struct sg_feature_cache, m)
static const struct sg_cfg_field normalize_fields[] = {
    {"lowercase", SG_FT_BOOL, FCACHE(lowercase), .def = 0},
    {"strip", SG_FT_CUSTOM, 0, .custom = strip_list},
};
static const struct sg_cfg_table normalize_table = TABLE(normalize_fields, NULL);

static const struct sg_cfg_field fcache_fields[] = {
    {"enabled", SG_FT_BOOL, FCACHE(enabled), .def = 0},
    {"ttl_min", SG_FT_U32, FCACHE(ttl_min), .def = 60, .min = 1, .max = 525600},
    {"normalize", SG_FT_MAP, 0, .sub = &normalize_table},
};
static const struct sg_cfg_table fcache_table = TABLE(fcache_fields, NULL);

static void feature_cache(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                          void *base)
{
    struct sg_feature *f = base;
    char shown[96];
    if (!v) {
        sg_cfg_defaults(ld, &fcache_table, &f->cache);
        return;
    }
    if (v->kind == SG_YMAP) {
        f->cache.enabled = true; /* a cache: block turns it on unless it says enabled: false */
        sg_cfg_values(ld, v, path, &fcache_table, &f->cache);
        return;
    }
    bool on;
    if (v->kind == SG_YSCALAR && sg_cfg_parse_bool(v->s, &on)) {
        f->cache.enabled = on;
        return;
    }
    sg_cfg_err(ld, v->line,
               "%s must be true, false or a mapping such as {ttl_min: 60, normalize: "
               "{lowercase: false}}; got %s",
               path, sg_cfg_show(v, NULL, shown, sizeof shown));
}

static void on_cost_cap(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                        void *base)
{
    struct sg_feature *f = base;
    if (!v) {
        f->on_cost_cap_reject = false;
        return;
    }
    char *s = sg_cfg_string(ld, v, path);
    if (!s)
        return;
    if (strcmp(s, "degrade") == 0 || strcmp(s, "reject") == 0) {
        f->on_cost_cap_reject = s[0] == 'r';
    } else {
        char shown[96];
        sg_cfg_err(ld, v->line, "%s must be one of degrade, reject; got %s", path,
                   sg_cfg_show(v, NULL, shown, sizeof shown));
    }
    free(s);
}

#define FEATURE(m) OFF(struct sg_feature, m)
static const struct sg_cfg_field feature_fields[] = {
    {"max_input_tokens", SG_FT_I64, FEATURE(max_input_tokens), .min = 0, .max = SG_CFG_NOMAX},
    {"max_output_tokens", SG_FT_I64, FEATURE(max_output_tokens), .min = 0, .max = SG_CFG_NOMAX},
    {"max_cost_per_request_usd", SG_FT_DOUBLE, FEATURE(max_cost_per_request_usd), .min = 0,
     .max = SG_CFG_NOMAX},
    {"on_cost_cap", SG_FT_CUSTOM, 0, .custom = on_cost_cap},
    {"prompt_caching", SG_FT_BOOL, FEATURE(prompt_caching), .def = 0},
    {"cache", SG_FT_CUSTOM, 0, .custom = feature_cache},
};
static const struct sg_cfg_table feature_table = TABLE(feature_fields, NULL);

/* A name a request can give (a header value has no control characters) and a row can store
 * whole (its feature column). */
static bool feature_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > SG_FEATURE_NAME_MAX || strlen(s) != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

static void load_features(struct sg_cfg_loader *ld, const struct sg_ynode *v)
{
    struct sg_config *c = ld->c;
    char shown[96], path[SG_CFG_PATH_MAX];
    if (sg_ynode_is_null(v))
        return;
    if (v->kind != SG_YMAP) {
        sg_cfg_err(ld, v->line,
                   "features must be a mapping of feature name to its settings "
                   "(summarize: {max_output_tokens: 800}), got %s",
                   sg_cfg_show(v, NULL, shown, sizeof shown));
        return;
    }
    c->features = sg_xcalloc(v->n ? v->n : 1, sizeof *c->features);
    for (size_t i = 0; i < v->n; i++) {
        const struct sg_ynode *k = v->pairs[i].key;
        struct sg_feature *f = &c->features[c->n_features++];
        f->name = sg_xstrndup(k->s, k->len);
        f->line = k->line;
        sg_cfg_child(path, "features", k->s, k->len);
        if (!feature_name_ok(k->s, k->len))
            sg_cfg_err(ld, k->line,
                       "%s: a feature name must be 1 to %d bytes with no control character (it "
                       "is what x-slogate-feature or metadata.feature names, and what the request "
                       "rows store)",
                       path, SG_FEATURE_NAME_MAX);
        sg_cfg_load(ld, v->pairs[i].val, path, &feature_table, f);
    }
}

/* ---- budgets, rate_limits, cache ---- */

static void alert_at(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                     void *base)
{
    static const double defaults[] = {60, 85, 95};
    struct sg_budget_settings *b = base;
    char shown[96], ipath[SG_CFG_PATH_MAX];
    free(b->alert_at);
    b->alert_at = NULL;
    b->n_alert_at = 0;
    if (!v) {
        b->alert_at = sg_xmalloc(sizeof defaults);
        memcpy(b->alert_at, defaults, sizeof defaults);
        b->n_alert_at = SG_ARRAY_LEN(defaults);
        return;
    }
    if (v->kind != SG_YSEQ) {
        sg_cfg_err(ld, v->line, "%s must be a list of percents such as [60, 85, 95], got %s", path,
                   sg_cfg_show(v, NULL, shown, sizeof shown));
        return;
    }
    b->alert_at = sg_xcalloc(v->n ? v->n : 1, sizeof *b->alert_at);
    for (size_t i = 0; i < v->n; i++) {
        const struct sg_ynode *it = v->items[i];
        const char *env = NULL, *t = NULL;
        double x;
        sg_cfg_index(ipath, path, i);
        char num[64];
        if (it->kind == SG_YSCALAR && !sg_ynode_is_null(it)) {
            t = sg_cfg_text(ld, it, ipath, &env);
            if (!t)
                continue;
            t = sg_cfg_number_text(it, t, env, num, sizeof num);
        }
        if (!t || !sg_cfg_parse_double(t, &x) || x <= 0 || x > 100) {
            sg_cfg_err(ld, it->line, "%s must be a percentage > 0 and <= 100, got %s", ipath,
                       sg_cfg_show(it, env, shown, sizeof shown));
            continue;
        }
        if (b->n_alert_at > 0 && x <= b->alert_at[b->n_alert_at - 1]) {
            sg_cfg_err(ld, it->line, "%s must list percents in ascending order: %g comes after %g",
                       path, x, b->alert_at[b->n_alert_at - 1]);
            continue;
        }
        b->alert_at[b->n_alert_at++] = x;
    }
}

static void safeguard_model(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                            void *base)
{
    struct sg_budget_settings *b = base;
    if (!v) {
        replace_str(&b->safeguard_model, NULL);
        return;
    }
    char *s = sg_cfg_string(ld, v, path);
    if (!s)
        return;
    if (!sg_cfg_has_alias(ld, s)) {
        char list[256];
        sg_cfg_err(ld, v->line, "%s '%.60s' is not a model_name in model_list; use one of: %s",
                   path, s, sg_cfg_alias_list(ld, list, sizeof list));
        free(s);
        return;
    }
    replace_str(&b->safeguard_model, s);
}

#define BUDGET(m) OFF(struct sg_budget_settings, m)
static const struct sg_cfg_field budget_fields[] = {
    {"tenant_monthly_usd", SG_FT_DOUBLE, BUDGET(tenant_monthly_usd), .min = 0, .max = SG_CFG_NOMAX},
    {"user_monthly_usd", SG_FT_DOUBLE, BUDGET(user_monthly_usd), .min = 0, .max = SG_CFG_NOMAX},
    {"alert_at", SG_FT_CUSTOM, 0, .custom = alert_at},
    {"safeguard_at", SG_FT_DOUBLE, BUDGET(safeguard_at), .def = 95, .min = 0, .max = 100,
     .flags = SG_FL_GT},
    {"safeguard_model", SG_FT_CUSTOM, 0, .custom = safeguard_model},
};
static const struct sg_cfg_table budget_table = TABLE(budget_fields, NULL);

static const struct sg_cfg_field rate_fields[] = {
    {"rps", SG_FT_DOUBLE, OFF(struct sg_rate_limit_settings, rps), .min = 0, .max = 1e6},
    {"burst", SG_FT_DOUBLE, OFF(struct sg_rate_limit_settings, burst), .min = 0, .max = 1e7},
};
static const struct sg_cfg_table rate_table = TABLE(rate_fields, NULL);

#define CACHE(m) OFF(struct sg_cache_settings, m)
static const struct sg_cfg_field cache_fields[] = {
    {"backend", SG_FT_ENUM, CACHE(backend), .defs = "memory", .choices = "memory|redis"},
    {"max_mb", SG_FT_U32, CACHE(max_mb), .def = 256, .min = 1, .max = 1048576},
    {"stale_if_error", SG_FT_BOOL, CACHE(stale_if_error), .def = 0},
};
static const struct sg_cfg_table cache_table = TABLE(cache_fields, NULL);

/* ---- alerts ---- */

struct sink_load {
    char *type;
    char *url;
};

static const struct sg_cfg_field sink_fields[] = {
    {"type", SG_FT_ENUM, OFF(struct sink_load, type), .choices = "slack|webhook|log",
     .flags = SG_FL_REQUIRED, .hint = ": slack, webhook or log"},
    {"url", SG_FT_URL, OFF(struct sink_load, url), .defs = NULL},
};
static const struct sg_cfg_table sink_table = TABLE(sink_fields, NULL);

static void sinks(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path, void *base)
{
    struct sg_alert_settings *a = base;
    char shown[96], ipath[SG_CFG_PATH_MAX];
    for (size_t i = 0; i < a->n_sinks; i++)
        free(a->sinks[i].url);
    free(a->sinks);
    a->sinks = NULL;
    a->n_sinks = 0;
    if (!v)
        return;
    if (v->kind != SG_YSEQ) {
        sg_cfg_err(ld, v->line,
                   "%s must be a list such as [{type: slack, url: os.environ/SLACK_WEBHOOK_URL}], "
                   "got %s",
                   path, sg_cfg_show(v, NULL, shown, sizeof shown));
        return;
    }
    a->sinks = sg_xcalloc(v->n ? v->n : 1, sizeof *a->sinks);
    for (size_t i = 0; i < v->n; i++) {
        struct sink_load s = {0};
        sg_cfg_index(ipath, path, i);
        sg_cfg_load(ld, v->items[i], ipath, &sink_table, &s);
        if (s.type) {
            struct sg_alert_sink *out = &a->sinks[a->n_sinks++];
            out->type = strcmp(s.type, "slack") == 0     ? SG_SINK_SLACK
                        : strcmp(s.type, "webhook") == 0 ? SG_SINK_WEBHOOK
                                                         : SG_SINK_LOG;
            const struct sg_ynode *u = sg_ynode_get(v->items[i], "url");
            if (out->type != SG_SINK_LOG && !s.url && sg_ynode_is_null(u)) /* else reported */
                sg_cfg_err(ld, v->items[i]->line,
                           "%s.url is required for a %s sink: e.g. url: "
                           "os.environ/SLACK_WEBHOOK_URL",
                           ipath, s.type);
            if (out->type == SG_SINK_LOG && s.url)
                sg_cfg_warn(ld, u->line, "%s.url is not used by a log sink; ignored", ipath);
            if (out->type != SG_SINK_LOG) {
                out->url = s.url;
                s.url = NULL;
            }
        }
        free(s.type);
        free(s.url);
    }
}

static const struct sg_cfg_field alert_fields[] = {
    {"sinks", SG_FT_CUSTOM, 0, .custom = sinks},
};
static const struct sg_cfg_table alert_table = TABLE(alert_fields, NULL);

/* ---- telemetry, drill ---- */

#define TELEMETRY(m) OFF(struct sg_telemetry_settings, m)
static const struct sg_cfg_field telemetry_fields[] = {
    {"otlp_endpoint", SG_FT_URL, TELEMETRY(otlp_endpoint), .defs = NULL},
    {"request_log", SG_FT_STR, TELEMETRY(request_log), .defs = NULL},
    {"log_prompts", SG_FT_BOOL, TELEMETRY(log_prompts), .def = 0},
    {"request_log_max_mb", SG_FT_MB, TELEMETRY(request_log_max_bytes), .def = 100, .min = 0,
     .max = 1048576},
    {"request_log_backups", SG_FT_INT, TELEMETRY(request_log_backups), .def = 5, .min = 1,
     .max = 1000},
    {"metrics_token", SG_FT_STR, TELEMETRY(metrics_token), .defs = NULL},
    {"spool_path", SG_FT_STR, TELEMETRY(spool_path), .defs = NULL},
    {"journal_dir", SG_FT_STR, TELEMETRY(journal_dir), .defs = "/dev/shm"},
};
static const struct sg_cfg_table telemetry_table = TABLE(telemetry_fields, NULL);

static const struct sg_cfg_field drill_fields[] = {
    {"failover_target_s", SG_FT_DOUBLE, OFF(struct sg_drill_settings, failover_target_s), .def = 10,
     .min = 0, .max = 3600, .flags = SG_FL_GT},
    {"min_success_during_failover", SG_FT_DOUBLE,
     OFF(struct sg_drill_settings, min_success_during_failover), .def = 95, .min = 0, .max = 100,
     .flags = SG_FL_GT},
};
static const struct sg_cfg_table drill_table = TABLE(drill_fields, NULL);

/* ---- the top level ---- */

struct section {
    const char *name;
    const struct sg_cfg_table *table;
    size_t off; /* into struct sg_config */
};

/* In load order: router_settings and budgets look aliases up, so model_list comes first (in
 * config.c); litellm_settings merges into general_settings, so general comes before it. */
static const struct section sections[] = {
    {"general_settings", &general_table, OFF(struct sg_config, general)},
    {"router_settings", &sg_cfg_router_table, OFF(struct sg_config, router)},
    {"server", &server_table, OFF(struct sg_config, server)},
    {"service", &service_table, OFF(struct sg_config, service)},
    {"slo", &slo_table, OFF(struct sg_config, slo)},
    {"budgets", &budget_table, OFF(struct sg_config, budgets)},
    {"rate_limits", &rate_table, OFF(struct sg_config, rate_limits)},
    {"cache", &cache_table, OFF(struct sg_config, cache)},
    {"alerts", &alert_table, OFF(struct sg_config, alerts)},
    {"telemetry", &telemetry_table, OFF(struct sg_config, telemetry)},
    {"drill", &drill_table, OFF(struct sg_config, drill)},
};

static const char *const other_sections[] = {"model_list", "litellm_settings", "features",
                                             "environment_variables"};

static const struct sg_cfg_ignored top_litellm[] = {
    {"guardrails", NULL},
    {"policies", NULL},
    {"policy_attachments", NULL},
    {"callback_settings", NULL},
    {"credential_list", "reference secrets with os.environ/NAME"},
    {"mcp_servers", NULL},
    {"mcp_builtin_servers", NULL},
    {"search_tools", NULL},
    {"sandbox_tools", NULL},
    {"agent_settings", NULL},
    {"files_settings", NULL},
    {"assistant_settings", NULL},
    {"finetune_settings", NULL},
    {"vector_store_registry", NULL},
    {NULL, NULL},
};

const struct sg_cfg_ignored *sg_cfg_top_litellm(void)
{
    return top_litellm;
}

bool sg_cfg_is_section(const char *key, size_t len)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(sections); i++)
        if (strlen(sections[i].name) == len && memcmp(sections[i].name, key, len) == 0)
            return true;
    for (size_t i = 0; i < SG_ARRAY_LEN(other_sections); i++)
        if (strlen(other_sections[i]) == len && memcmp(other_sections[i], key, len) == 0)
            return true;
    return false;
}

/* Sections this version reads and checks but does not act on yet: said once each, so nobody
 * believes a budget or a rate limit protects them (docs/configuration.md, "Not enforced yet"). */
static void warn_not_enforced(struct sg_cfg_loader *ld, const struct sg_ynode *root)
{
    static const char *const idle[] = {"budgets", "rate_limits", "cache", "alerts"};
    for (size_t i = 0; root && root->kind == SG_YMAP && i < root->n; i++) {
        const struct sg_ynode *k = root->pairs[i].key;
        for (size_t j = 0; j < SG_ARRAY_LEN(idle); j++)
            if (k->len == strlen(idle[j]) && memcmp(k->s, idle[j], k->len) == 0 &&
                !sg_ynode_is_null(root->pairs[i].val) && (sg_cfg_at(ld, idle[j]), true))
                sg_cfg_warn(ld, k->line,
                            "%s is checked but not enforced by this version of slogate yet",
                            idle[j]);
    }
    const struct sg_config *c = ld->c;
    sg_cfg_at(ld, "features");
    for (size_t i = 0; i < c->n_features; i++) {
        const struct sg_feature *f = &c->features[i];
        if (f->max_input_tokens || f->max_output_tokens || f->max_cost_per_request_usd > 0 ||
            f->cache.enabled)
            sg_cfg_warn(ld, f->line,
                        "features.%s: its caps and cache are checked but not enforced by this "
                        "version of slogate yet (prompt_caching works)",
                        f->name);
    }
}

void sg_cfg_load_sections(struct sg_cfg_loader *ld, const struct sg_ynode *root)
{
    struct sg_config *c = ld->c;
    for (size_t i = 0; i < SG_ARRAY_LEN(sections); i++) {
        const struct sg_ynode *n = sg_ynode_get(root, sections[i].name);
        sg_cfg_at(ld, sections[i].name);
        sg_cfg_load(ld, n, sections[i].name, sections[i].table, (char *)c + sections[i].off);
        if (i == 0)
            merge_litellm(ld, root);
        if (i == 1)
            sg_cfg_router_defaults(ld, root);
    }
    sg_cfg_at(ld, "features");
    load_features(ld, sg_ynode_get(root, "features"));

    /* Checks that span sections. */
    sg_cfg_at(ld, "cache");
    if (strcmp(c->cache.backend, "redis") == 0 && !c->general.redis_url) {
        const struct sg_ynode *b = sg_ynode_get(sg_ynode_get(root, "cache"), "backend");
        sg_cfg_err(ld, b ? b->line : 0,
                   "cache.backend is redis but general_settings.redis_url is not set: set it "
                   "(redis://HOST:6379/0) or use backend: memory");
    }
    sg_cfg_at(ld, "rate_limits");
    if (c->rate_limits.rps > 0 && c->rate_limits.burst == 0) {
        /* A bucket must hold at least one request; by default it holds one second's worth. */
        c->rate_limits.burst = c->rate_limits.rps < 1 ? 1 : c->rate_limits.rps;
    } else if (c->rate_limits.rps > 0 && c->rate_limits.burst < 1) {
        const struct sg_ynode *b = sg_ynode_get(sg_ynode_get(root, "rate_limits"), "burst");
        sg_cfg_err(ld, b ? b->line : 0,
                   "rate_limits.burst must be >= 1 when rps is set: the bucket must hold at "
                   "least one request");
    } else if (c->rate_limits.rps == 0 && c->rate_limits.burst > 0) {
        const struct sg_ynode *b = sg_ynode_get(sg_ynode_get(root, "rate_limits"), "burst");
        sg_cfg_warn(ld, b ? b->line : 0,
                    "rate_limits.burst has no effect without rps: set rps (requests per second "
                    "per key)");
    }
    warn_not_enforced(ld, root);
    ld->file = ld->main_file;
}

void sg_cfg_free_sections(struct sg_config *c)
{
    sg_cfg_free_router(&c->router);
    free(c->general.master_key);
    free(c->general.database_url);
    free(c->general.redis_url);
    free(c->server.host);
    free(c->server.log_level);
    free(c->server.cors_origins);
    free(c->service.name);
    free(c->service.timezone);
    free(c->slo.maintenance);
    for (size_t i = 0; i < c->n_features; i++) {
        struct sg_feature *f = &c->features[i];
        free(f->name);
        for (size_t j = 0; j < f->cache.n_strip; j++)
            free(f->cache.strip[j]);
        free(f->cache.strip);
    }
    free(c->features);
    free(c->budgets.alert_at);
    free(c->budgets.safeguard_model);
    free(c->cache.backend);
    for (size_t i = 0; i < c->alerts.n_sinks; i++)
        free(c->alerts.sinks[i].url);
    free(c->alerts.sinks);
    free(c->telemetry.otlp_endpoint);
    free(c->telemetry.request_log);
    free(c->telemetry.metrics_token);
    free(c->telemetry.spool_path);
    free(c->telemetry.journal_dir);
}
