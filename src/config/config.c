/*
 * config: the public entry points, model_list (deployments, providers, groups) and the life
 * of a loaded config. YAML parsing is in yaml.c, the table machinery in table.c and the other
 * sections in sections.c.
 *
 * Threads: loading touches nothing global; a loaded config is immutable and shared between
 * workers, its lifetime governed by an atomic reference count.
 */
#include "config_int.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

/* ---- providers ---- */

/* How a provider's api_base becomes the OpenAI-compatible base slogate appends
 * /chat/completions to. LiteLLM writes some of them as the server's root. */
enum base_rule {
    BASE_AS_IS,
    BASE_ADD_V1,   /* Ollama: LiteLLM's api_base is the root; the OpenAI API is under /v1 */
    BASE_AZURE_V1, /* Azure OpenAI: the resource root; its OpenAI-compatible v1 API is under
                    * /openai/v1 (model = the deployment name, key as a Bearer token) */
};

/* Providers slogate knows an endpoint for. Everything not listed here (nor foreign, below)
 * speaks the OpenAI wire format at an api_base the config must give. key_env (in LiteLLM's
 * order: the first one set wins) and base_env are where LiteLLM looks for the key and the
 * endpoint when litellm_params has none; slogate does the same. */
struct provider_info {
    const char *name;
    const char *api_base; /* NULL: the config (or base_env) must give one */
    const char *key_env[4];
    const char *base_env;
    enum base_rule rule;
};

static const struct provider_info providers[] = {
    {"openai", "https://api.openai.com/v1", {"OPENAI_API_KEY"}, NULL, BASE_AS_IS},
    {"anthropic", "https://api.anthropic.com", {"ANTHROPIC_API_KEY"}, NULL, BASE_AS_IS},
    {"groq", "https://api.groq.com/openai/v1", {"GROQ_API_KEY"}, NULL, BASE_AS_IS},
    {"together_ai",
     "https://api.together.xyz/v1",
     {"TOGETHER_API_KEY", "TOGETHER_AI_API_KEY", "TOGETHERAI_API_KEY", "TOGETHER_AI_TOKEN"},
     NULL,
     BASE_AS_IS},
    {"openrouter",
     "https://openrouter.ai/api/v1",
     {"OPENROUTER_API_KEY", "OR_API_KEY"},
     NULL,
     BASE_AS_IS},
    {"mistral", "https://api.mistral.ai/v1", {"MISTRAL_API_KEY"}, NULL, BASE_AS_IS},
    {"deepseek", "https://api.deepseek.com/v1", {"DEEPSEEK_API_KEY"}, NULL, BASE_AS_IS},
    {"fireworks_ai",
     "https://api.fireworks.ai/inference/v1",
     {"FIREWORKS_API_KEY", "FIREWORKS_AI_API_KEY", "FIREWORKSAI_API_KEY", "FIREWORKS_AI_TOKEN"},
     NULL,
     BASE_AS_IS},
    {"xai", "https://api.x.ai/v1", {"XAI_API_KEY"}, NULL, BASE_AS_IS},
    {"perplexity",
     "https://api.perplexity.ai",
     {"PERPLEXITYAI_API_KEY", "PERPLEXITY_API_KEY"},
     NULL,
     BASE_AS_IS},
    /* Google's OpenAI-compatible endpoint for the Gemini API (same key). */
    {"gemini",
     "https://generativelanguage.googleapis.com/v1beta/openai",
     {"GEMINI_API_KEY", "GOOGLE_API_KEY"},
     NULL,
     BASE_AS_IS},
    {"ollama", "http://localhost:11434", {NULL}, "OLLAMA_API_BASE", BASE_ADD_V1},
    {"ollama_chat", "http://localhost:11434", {NULL}, "OLLAMA_API_BASE", BASE_ADD_V1},
    {"azure", NULL, {"AZURE_API_KEY"}, "AZURE_API_BASE", BASE_AZURE_V1},
    /* OpenAI-compatible providers LiteLLM gives a default endpoint
     * (_get_openai_compatible_provider_info). */
    {"cerebras",
     "https://api.cerebras.ai/v1",
     {"CEREBRAS_API_KEY"},
     "CEREBRAS_API_BASE",
     BASE_AS_IS},
    {"sambanova",
     "https://api.sambanova.ai/v1",
     {"SAMBANOVA_API_KEY"},
     "SAMBANOVA_API_BASE",
     BASE_AS_IS},
    {"nvidia_nim",
     "https://integrate.api.nvidia.com/v1",
     {"NVIDIA_NIM_API_KEY"},
     "NVIDIA_NIM_API_BASE",
     BASE_AS_IS},
    {"deepinfra",
     "https://api.deepinfra.com/v1/openai",
     {"DEEPINFRA_API_KEY"},
     "DEEPINFRA_API_BASE",
     BASE_AS_IS},
    {"codestral",
     "https://codestral.mistral.ai/v1",
     {"CODESTRAL_API_KEY"},
     "CODESTRAL_API_BASE",
     BASE_AS_IS},
    {"meta_llama",
     "https://api.llama.com/compat/v1",
     {"LLAMA_API_KEY"},
     "LLAMA_API_BASE",
     BASE_AS_IS},
    {"github",
     "https://models.inference.ai.azure.com",
     {"GITHUB_API_KEY"},
     "GITHUB_API_BASE",
     BASE_AS_IS},
    {"friendliai",
     "https://api.friendli.ai/serverless/v1",
     {"FRIENDLIAI_API_KEY", "FRIENDLI_TOKEN"},
     "FRIENDLI_API_BASE",
     BASE_AS_IS},
    {"volcengine",
     "https://ark.cn-beijing.volces.com/api/v3",
     {"VOLCENGINE_API_KEY"},
     "VOLCENGINE_API_BASE",
     BASE_AS_IS},
    /* Another LiteLLM proxy: no default endpoint, but LiteLLM's variables. */
    {"litellm_proxy", NULL, {"LITELLM_PROXY_API_KEY"}, "LITELLM_PROXY_API_BASE", BASE_AS_IS},
};

/* LiteLLM providers with their own wire format (or API), which slogate has no adapter for:
 * their deployments are not routed (LiteLLM's proxy drops a deployment it cannot set up and
 * starts with the others, too). */
static const char *const foreign_providers[] = {"azure_ai",
                                                "bedrock",
                                                "vertex_ai",
                                                "vertex_ai_beta",
                                                "cohere",
                                                "cohere_chat",
                                                "sagemaker",
                                                "sagemaker_chat",
                                                "watsonx",
                                                "replicate",
                                                "huggingface",
                                                "cloudflare",
                                                "palm",
                                                "ai21",
                                                "predibase",
                                                "text-completion-openai",
                                                "text-completion-codestral",
                                                "auto_router"};

static bool is_foreign(const char *provider, size_t len)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(foreign_providers); i++)
        if (strlen(foreign_providers[i]) == len &&
            strncasecmp(foreign_providers[i], provider, len) == 0)
            return true;
    return false;
}

static const struct provider_info *find_provider(const char *name, size_t len)
{
    for (size_t i = 0; i < SG_ARRAY_LEN(providers); i++)
        if (strlen(providers[i].name) == len && strncasecmp(providers[i].name, name, len) == 0)
            return &providers[i];
    return NULL;
}

/* The provider of a model written without one. LiteLLM looks the name up in its model lists:
 * every Anthropic model there is a "claude-..." name (and a claude name it does not know, it
 * refuses), the rest slogate sends to OpenAI. Sending a claude model to OpenAI would hand the
 * Anthropic key to the wrong company. */
const char *sg_config_bare_provider(const char *model)
{
    return strncmp(model, "claude-", 7) == 0 ? "anthropic" : "openai";
}

int sg_config_split_model(const char *model, char **provider, char **provider_model,
                          enum sg_provider_kind *kind)
{
    *provider = NULL;
    *provider_model = NULL;
    if (!model || !*model)
        return SG_EINVAL;
    const char *slash = strchr(model, '/');
    if (slash && (slash == model || slash[1] == '\0'))
        return SG_EINVAL;
    *provider = slash ? sg_xstrndup(model, (size_t)(slash - model))
                      : sg_xstrdup(sg_config_bare_provider(model));
    *provider_model = sg_xstrdup(slash ? slash + 1 : model);
    *kind = strcasecmp(*provider, "anthropic") == 0 ? SG_PROVIDER_ANTHROPIC : SG_PROVIDER_OPENAI;
    return SG_OK;
}

/* ---- model_list tables ---- */

/* A deployment while it loads: the public struct plus what model_info and litellm_params both
 * may set, merged once the entry is read (litellm_params wins). */
struct dep_load {
    struct sg_deployment d;
    char *region_name;
    char *mi_id;
    char *mi_region;
    char *mi_health_model;
    char *mi_base_model;
    bool mi_reasoning;
    double mi_in, mi_out;
    int64_t entry_rpm, entry_tpm; /* rpm / tpm beside litellm_params (LiteLLM takes them too) */
};

/* Headers the gateway writes itself: a deployment's header lines may not give them again. */
static bool gateway_header(const char *name)
{
    static const char *const own[] = {
        "host",          "content-length", "content-type",      "transfer-encoding", "connection",
        "authorization", "x-api-key",      "anthropic-version", "traceparent",       "tracestate"};
    for (size_t i = 0; i < SG_ARRAY_LEN(own); i++)
        if (strcasecmp(name, own[i]) == 0)
            return true;
    return false;
}

/* Add "name: value" to the deployment's header lines; a bad name or value is an error. */
static void add_header(struct sg_cfg_loader *ld, struct dep_load *dl, int line, const char *path,
                       const char *name, const char *value)
{
    size_t nl = strlen(name);
    if (nl == 0 || nl > 100 ||
        strspn(name, "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"
                     "ABCDEFGHIJKLMNOPQRSTUVWXYZ") != nl) {
        sg_cfg_err(ld, line, "%s: '%.100s' is not an HTTP header name (letters, digits, - and _)",
                   path, name);
        return;
    }
    if (strlen(value) > 4096 || strpbrk(value, "\r\n")) {
        sg_cfg_err(ld, line, "%s.%s: a header value is one line of at most 4096 bytes", path, name);
        return;
    }
    if (gateway_header(name)) {
        sg_cfg_warn(ld, line, "%s.%s is ignored: the gateway sets %s itself%s", path, name, name,
                    strcasecmp(name, "authorization") == 0 || strcasecmp(name, "x-api-key") == 0
                        ? " from api_key"
                        : "");
        return;
    }
    struct sg_deployment *d = &dl->d;
    d->headers = sg_xrealloc(d->headers, (d->n_headers + 1) * sizeof *d->headers);
    d->headers[d->n_headers++] = sg_xasprintf("%s: %s", name, value);
}

/* litellm_params.extra_headers and headers: a mapping of header names to values (os.environ/
 * references allowed), sent on every call to the deployment, as LiteLLM does. */
static void extra_headers(struct sg_cfg_loader *ld, const struct sg_ynode *v, const char *path,
                          void *base)
{
    if (!v)
        return;
    if (v->kind != SG_YMAP) {
        sg_cfg_err(ld, v->line, "%s must be a mapping of header names to values", path);
        return;
    }
    for (size_t i = 0; i < v->n; i++) {
        const struct sg_ynode *k = v->pairs[i].key, *val = v->pairs[i].val;
        if (k->kind != SG_YSCALAR || strlen(k->s) != k->len) { /* a list, a mapping, a NUL */
            sg_cfg_err(ld, k->line, "%s: a header name is a string without NUL bytes", path);
            continue;
        }
        char vpath[300];
        snprintf(vpath, sizeof vpath, "%s.%s", path, k->s);
        char *value = sg_cfg_string(ld, val, vpath);
        if (value)
            add_header(ld, base, val->line, path, k->s, value);
        free(value);
    }
}

#define DEP(m) offsetof(struct dep_load, m)
static const struct sg_cfg_field lp_fields[] = {
    {"model", SG_FT_STR, DEP(d.model), .flags = SG_FL_REQUIRED,
     .hint = ": write provider/model, e.g. openai/gpt-4o-mini"},
    {"api_key", SG_FT_STR, DEP(d.api_key), .defs = NULL},
    {"api_base", SG_FT_URL, DEP(d.api_base), .defs = NULL},
    {"order", SG_FT_INT, DEP(d.order), .def = 1, .min = 1, .max = SG_CFG_NOMAX},
    {"weight", SG_FT_DOUBLE, DEP(d.weight), .def = 0, .min = 0, .max = SG_CFG_NOMAX},
    {"rpm", SG_FT_I64, DEP(d.rpm), .def = 0, .min = 0, .max = SG_CFG_NOMAX},
    {"tpm", SG_FT_I64, DEP(d.tpm), .def = 0, .min = 0, .max = SG_CFG_NOMAX},
    {"timeout", SG_FT_SECS_MS, DEP(d.timeout_ms), .def = 0, .min = 0, .max = 86400,
     .flags = SG_FL_GT},
    {"stream_timeout", SG_FT_SECS_MS, DEP(d.stream_timeout_ms), .def = 0, .min = 0, .max = 86400,
     .flags = SG_FL_GT},
    {"num_retries", SG_FT_INT, DEP(d.num_retries), .def = -1, .min = 0, .max = 100},
    /* LiteLLM's per-deployment client retries; slogate retries at the router. */
    {"max_retries", SG_FT_INT, DEP(d.num_retries), .def = -1, .min = 0, .max = 100},
    {"input_cost_per_token", SG_FT_DOUBLE, DEP(d.input_cost_per_token), .def = -1, .min = 0,
     .max = SG_CFG_NOMAX},
    {"output_cost_per_token", SG_FT_DOUBLE, DEP(d.output_cost_per_token), .def = -1, .min = 0,
     .max = SG_CFG_NOMAX},
    {"region_name", SG_FT_STR, DEP(region_name), .defs = NULL},
    {"organization", SG_FT_STR, DEP(d.organization), .defs = NULL},
    {"extra_headers", SG_FT_CUSTOM, 0, .custom = extra_headers},
    {"headers", SG_FT_CUSTOM, 0, .custom = extra_headers},
};
static const struct sg_cfg_ignored lp_litellm[] = {
    {"api_version", "slogate calls Azure OpenAI's v1 API, which takes none"},
    {"custom_llm_provider", "write the provider as the model's prefix: provider/model"},
    {"vertex_project", NULL},
    {"vertex_location", NULL},
    {"vertex_credentials", NULL},
    {"aws_access_key_id", NULL},
    {"aws_secret_access_key", NULL},
    {"aws_session_token", NULL},
    {"aws_region_name", NULL},
    {"azure_ad_token", NULL},
    {"azure_ad_token_provider", NULL},
    {"tenant_id", NULL},
    {"client_id", NULL},
    {"client_secret", NULL},
    {"litellm_credential_name", "reference secrets with os.environ/NAME"},
    {"max_tokens", "cap output per feature with features.<name>.max_output_tokens"},
    {"temperature", NULL},
    {"top_p", NULL},
    {"seed", NULL},
    {"stop", NULL},
    {"tags", NULL},
    {"drop_params", NULL},
    {"additional_drop_params", NULL},
    {"input_cost_per_second", "give input_cost_per_token"},
    {"output_cost_per_second", "give output_cost_per_token"},
    {"mock_response", "use `slogate mock` as the api_base"},
    {"cache_control_injection_points", "use features.<name>.prompt_caching"},
    {"use_in_pass_through", NULL},
    {"merge_reasoning_content_in_choices", NULL},
    {"max_parallel_requests", "use rpm / tpm"},
    {"max_budget", "use budgets:"},
    {"budget_duration", NULL},
    {"configurable_clientside_auth_params", NULL},
    {"custom_user_agent", NULL},
    {"mock_timeout", NULL},
    {"initial_prompt_value", NULL},
    {"roles", NULL},
    {"final_prompt_value", NULL},
    {"bos_token", NULL},
    {"eos_token", NULL},
    {NULL, NULL},
};
static const struct sg_cfg_table lp_table = {lp_fields, SG_ARRAY_LEN(lp_fields), lp_litellm};

static const struct sg_cfg_field mi_fields[] = {
    {"id", SG_FT_STR, DEP(mi_id), .defs = NULL},
    {"input_cost_per_token", SG_FT_DOUBLE, DEP(mi_in), .def = -1, .min = 0, .max = SG_CFG_NOMAX},
    {"output_cost_per_token", SG_FT_DOUBLE, DEP(mi_out), .def = -1, .min = 0, .max = SG_CFG_NOMAX},
    {"region", SG_FT_STR, DEP(mi_region), .defs = NULL},
    {"health_check_model", SG_FT_STR, DEP(mi_health_model), .defs = NULL},
    {"base_model", SG_FT_STR, DEP(mi_base_model), .defs = NULL},
    {"supports_reasoning", SG_FT_BOOL, DEP(mi_reasoning), .def = 0},
};
static const struct sg_cfg_ignored mi_litellm[] = {
    {"mode", NULL},
    {"max_tokens", NULL},
    {"max_input_tokens", NULL},
    {"max_output_tokens", NULL},
    {"supports_function_calling", NULL},
    {"supports_parallel_function_calling", NULL},
    {"supports_vision", NULL},
    {"supports_response_schema", NULL},
    {"supports_prompt_caching", NULL},
    {"access_groups", NULL},
    {"db_model", NULL},
    {"team_id", NULL},
    {"supported_environments", NULL},
    {"litellm_provider", NULL},
    {"description", NULL},
    {"cache_read_input_token_cost", NULL},
    {"cache_creation_input_token_cost", NULL},
    {"input_cost_per_second", NULL},
    {"output_cost_per_second", NULL},
    {"output_cost_per_reasoning_token", NULL},
    {"rpm", "put rpm in litellm_params"},
    {"tpm", "put tpm in litellm_params"},
    {"version", NULL},
    {"custom_tokenizer", NULL},
    {"health_check_timeout", NULL},
    {NULL, NULL},
};
static const struct sg_cfg_table mi_table = {mi_fields, SG_ARRAY_LEN(mi_fields), mi_litellm};

static const struct sg_cfg_field entry_fields[] = {
    {"model_name", SG_FT_STR, DEP(d.alias), .flags = SG_FL_REQUIRED,
     .hint = ": it is the alias clients send as \"model\""},
    {"litellm_params", SG_FT_MAP, 0, .sub = &lp_table, .flags = SG_FL_REQUIRED,
     .hint = ": add one with at least `model: provider/model`"},
    {"model_info", SG_FT_MAP, 0, .sub = &mi_table},
    /* LiteLLM's router copies a deployment's own rpm/tpm into litellm_params when those have
     * none (load_balancer.yaml writes them there). */
    {"rpm", SG_FT_I64, DEP(entry_rpm), .def = -1, .min = 0, .max = SG_CFG_NOMAX},
    {"tpm", SG_FT_I64, DEP(entry_tpm), .def = -1, .min = 0, .max = SG_CFG_NOMAX},
};
static const struct sg_cfg_table entry_table = {entry_fields, SG_ARRAY_LEN(entry_fields), NULL};

/* ---- deployments ---- */

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

/* Deployment ids travel in the x-slogate-deployment header: visible ASCII only. */
static bool header_safe(const char *s)
{
    if (!*s)
        return false;
    for (; *s; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7f)
            return false;
    return true;
}

static bool provider_name_ok(const char *s)
{
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
              *s == '_' || *s == '-' || *s == '.'))
            return false;
    return true;
}

static int line_of(const struct sg_ynode *n, int fallback)
{
    return n && n->line ? n->line : fallback;
}

/* Drop a suffix the Anthropic adapter appends itself, so api_base is always the root. */
static void trim_suffix(char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    if (n > k && strcasecmp(s + n - k, suffix) == 0)
        s[n - k] = '\0';
}

static void append_str(char **s, const char *tail)
{
    char *t = sg_xasprintf("%s%s", *s, tail);
    free(*s);
    *s = t;
}

/* The base the OpenAI adapter appends /chat/completions to, from the api_base as LiteLLM's
 * config writes it for this provider (no trailing '/': the URL field dropped it). */
static void apply_base_rule(char **base, enum base_rule rule)
{
    const char *host = strstr(*base, "://");
    const char *path = host ? strchr(host + 3, '/') : NULL;
    size_t n = strlen(*base);
    if (rule == BASE_ADD_V1 && !(n >= 3 && strcasecmp(*base + n - 3, "/v1") == 0))
        append_str(base, "/v1");
    else if (rule == BASE_AZURE_V1 && !path)
        append_str(base, "/openai/v1");
    else if (rule == BASE_AZURE_V1 && strcasecmp(path, "/openai") == 0)
        append_str(base, "/v1");
}

/* A provider's fallback endpoint from the environment (base_env), or NULL. */
static const char *env_base(struct sg_cfg_loader *ld, const struct provider_info *pi)
{
    const char *v = pi && pi->base_env ? sg_cfg_env(ld, pi->base_env) : NULL;
    return v && sg_cfg_url_ok(v) ? v : NULL;
}

static void resolve_provider(struct sg_cfg_loader *ld, struct sg_deployment *d,
                             const struct sg_ynode *lp, const char *path, int line)
{
    const struct sg_ynode *mv = sg_ynode_get(lp, "model");
    int mline = line_of(mv, line);
    char shown[96];
    if (sg_config_split_model(d->model, &d->provider, &d->provider_model, &d->kind) != SG_OK) {
        sg_cfg_err(ld, mline,
                   "%s.litellm_params.model must be provider/model such as openai/gpt-4o-mini, "
                   "got %s",
                   path, sg_cfg_show(mv, NULL, shown, sizeof shown));
        return;
    }
    if (!provider_name_ok(d->provider)) {
        sg_cfg_err(ld, mline,
                   "%s.litellm_params.model: the provider before '/' may hold only letters, "
                   "digits, '_', '-' and '.'",
                   path);
        return;
    }
    const struct provider_info *pi = find_provider(d->provider, strlen(d->provider));
    if (!strchr(d->model, '/') && strchr(d->model, '*') && d->kind == SG_PROVIDER_OPENAI &&
        !d->api_base)
        sg_cfg_warn(ld, mline,
                    "%s.litellm_params.model '%.60s' names no provider, so every model it takes "
                    "is sent to OpenAI (LiteLLM picks each name's provider from its own model "
                    "list): write openai/%.60s to say so, and an entry per other provider "
                    "(model_name: \"anthropic/*\", model: \"anthropic/*\")",
                    path, d->model, d->model);
    if (!d->api_base) {
        /* An api_base line that failed to resolve was reported already. */
        if (sg_ynode_get(lp, "api_base") && !sg_ynode_is_null(sg_ynode_get(lp, "api_base")))
            return;
        const char *eb = env_base(ld, pi);
        if (eb) {
            d->api_base = sg_xstrdup(eb);
            trim_suffix(d->api_base, "/");
        } else if (pi && pi->api_base) {
            d->api_base = sg_xstrdup(pi->api_base);
        } else {
            return; /* unrouted() took the entry out already; not reached */
        }
    }
    if (pi)
        apply_base_rule(&d->api_base, pi->rule);
    if (d->kind == SG_PROVIDER_ANTHROPIC) {
        trim_suffix(d->api_base, "/v1/messages");
        trim_suffix(d->api_base, "/v1");
    }
    /* An api_key line that failed to resolve was reported already: no second message. */
    if (!d->api_key && !sg_ynode_get(lp, "api_key") && pi && pi->key_env[0]) {
        const char *k = NULL;
        for (size_t i = 0; i < SG_ARRAY_LEN(pi->key_env) && pi->key_env[i] && !k; i++)
            if ((k = sg_cfg_env(ld, pi->key_env[i])) && !*k)
                k = NULL;
        if (k)
            d->api_key = sg_xstrdup(k);
        else if (!pi->api_base || strcmp(d->api_base, pi->api_base) == 0)
            sg_cfg_warn(ld, line,
                        "%s has no litellm_params.api_key and %s is not exported: %s will "
                        "refuse its requests; set api_key: os.environ/%s",
                        path, pi->key_env[0], pi->api_base ? pi->api_base : pi->name,
                        pi->key_env[0]);
    }
}

/* Why slogate cannot route this model_list entry, into `why`; NULL when it can. Decided from
 * the text as written, before the rest of the entry is read, so the secrets of an entry that
 * is not routed are never looked up: LiteLLM's proxy, too, starts without a deployment it
 * cannot set up and serves the others. Anything odd (not a string, os.environ/, a bad
 * provider name) is left to the normal checks. */
static const char *unrouted(struct sg_cfg_loader *ld, const struct sg_ynode *entry, char *why,
                            size_t n)
{
    const struct sg_ynode *name = sg_ynode_get(entry, "model_name");
    const struct sg_ynode *lp = sg_ynode_get(entry, "litellm_params");
    const struct sg_ynode *mv = sg_ynode_get(lp, "model");
    if (!mv || mv->kind != SG_YSCALAR || sg_ynode_is_null(mv) || strlen(mv->s) != mv->len ||
        strncmp(mv->s, "os.environ/", 11) == 0)
        return NULL;
    const char *m = mv->s;
    bool named = name && name->kind == SG_YSCALAR && strlen(name->s) == name->len;
    const char *slash = strchr(m, '/');
    if (slash == m)
        return NULL;
    const char *provider = slash ? m : sg_config_bare_provider(m);
    size_t plen = slash ? (size_t)(slash - m) : strlen(provider);
    char pname[64];
    snprintf(pname, sizeof pname, "%.*s", (int)SG_MIN(plen, 60), provider);
    if (memchr(pname, '*', strlen(pname))) /* a wildcard provider: wildcard.c says why */
        return sg_cfg_wild_unrouted(named ? name->s : "", named ? name->len : 0, m, why, n);
    if (!provider_name_ok(pname))
        return NULL;
    if (slash && slash[1] == '\0') {
        snprintf(why, n, "litellm_params.model '%.60s' names a provider but no model", m);
        return why;
    }
    if (is_foreign(provider, plen)) {
        snprintf(why, n,
                 "slogate has no %s adapter (it speaks the OpenAI and Anthropic APIs); to reach "
                 "%.60s through an OpenAI-compatible endpoint, write model: openai/%.60s with "
                 "that endpoint as api_base",
                 pname, slash + 1, slash + 1);
        return why;
    }
    const struct provider_info *pi = find_provider(provider, plen);
    const struct sg_ynode *base = sg_ynode_get(lp, "api_base");
    if ((base && !sg_ynode_is_null(base)) || (pi && pi->api_base) || env_base(ld, pi))
        /* Served, unless a wildcard route's '*'s do not fit (LiteLLM's pattern router). */
        return sg_cfg_wild_unrouted(named ? name->s : "", named ? name->len : 0, m, why, n);
    if (pi)
        snprintf(why, n,
                 "%s needs its endpoint: set litellm_params.api_base (https://NAME.openai.azure."
                 "com for Azure) or export %s",
                 pname, pi->base_env);
    else
        snprintf(why, n,
                 "provider '%s' has no default endpoint: set litellm_params.api_base to its "
                 "OpenAI-compatible URL (e.g. http://127.0.0.1:8000/v1)",
                 pname);
    return why;
}

static uint64_t fnv1a(uint64_t h, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++)
        h = (h ^ *p) * 0x100000001b3ULL;
    return (h ^ 0xff) * 0x100000001b3ULL; /* a separator: ("ab","c") is not ("a","bc") */
}

/* The id of a deployment without model_info.id: "<model_name>#<8 hex digits>", a hash of what
 * makes it this deployment (alias, model, endpoint, the api_key line as written, so
 * os.environ/NAME and not the secret), as LiteLLM derives its ids from the params. It does
 * not depend on the entry's position: an entry added or removed elsewhere leaves the other ids
 * alone, so a reload keeps each deployment's health and metric series. Identical entries get
 * "-2", "-3", ... in file order (dedupe_generated_ids). */
static char *generated_id(const struct sg_deployment *d, const struct sg_ynode *lp)
{
    const struct sg_ynode *key = sg_ynode_get(lp, "api_key");
    uint64_t h = 0xcbf29ce484222325ULL;
    h = fnv1a(h, d->alias);
    h = fnv1a(h, d->model);
    h = fnv1a(h, d->api_base);
    h = fnv1a(h, key && key->kind == SG_YSCALAR ? key->s : NULL);
    char *id =
        sg_xasprintf("%s#%08x", d->alias ? d->alias : "deployment", (unsigned)(h ^ (h >> 32)));
    for (char *p = id; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            *p = '_';
    return id;
}

/* True when the deployment's id is generated (no usable model_info.id). */
static bool finish_deployment(struct sg_cfg_loader *ld, struct dep_load *dl,
                              const struct sg_ynode *entry, const char *path)
{
    struct sg_deployment *d = &dl->d;
    const struct sg_ynode *lp = sg_ynode_get(entry, "litellm_params");
    if (d->alias && has_control(d->alias))
        sg_cfg_err(ld, line_of(sg_ynode_get(entry, "model_name"), d->line),
                   "%s.model_name must not hold control characters", path);
    if (d->model)
        resolve_provider(ld, d, lp, path, d->line);
    for (const char *p = d->provider_model; p && *p; p++)
        d->stars += *p == '*';

    bool generated = !dl->mi_id || !header_safe(dl->mi_id);
    if (!generated) {
        d->id = dl->mi_id;
        dl->mi_id = NULL;
    } else {
        d->id = generated_id(d, lp);
    }
    if (dl->mi_id) {
        /* LiteLLM takes any string; the header cannot carry it, so the id is the one slogate
         * generates, and the config still loads. */
        const struct sg_ynode *idn = sg_ynode_get(sg_ynode_get(entry, "model_info"), "id");
        char shown[96];
        sg_cfg_warn(ld, line_of(idn, d->line),
                    "%s.model_info.id %s is not visible ASCII without spaces, which the "
                    "x-slogate-deployment header needs: the deployment's id is %s instead",
                    path, sg_cfg_show(idn, NULL, shown, sizeof shown), d->id);
        free(dl->mi_id);
        dl->mi_id = NULL;
    }
    if (dl->entry_rpm >= 0 && !sg_ynode_get(lp, "rpm"))
        d->rpm = dl->entry_rpm;
    if (dl->entry_tpm >= 0 && !sg_ynode_get(lp, "tpm"))
        d->tpm = dl->entry_tpm;
    if (d->input_cost_per_token < 0)
        d->input_cost_per_token = dl->mi_in;
    if (d->output_cost_per_token < 0)
        d->output_cost_per_token = dl->mi_out;
    if (dl->region_name) {
        d->region = dl->region_name;
        dl->region_name = NULL;
    } else {
        d->region = dl->mi_region;
        dl->mi_region = NULL;
    }
    /* LiteLLM's form is provider/model (openai/gpt-4o-mini): the provider is the deployment's. */
    if (dl->mi_health_model) {
        const char *slash = strchr(dl->mi_health_model, '/');
        d->health_check_model = sg_xstrdup(slash ? slash + 1 : dl->mi_health_model);
    }
    free(dl->mi_health_model);
    d->base_model = dl->mi_base_model;
    dl->mi_base_model = NULL;
    if (sg_ynode_get(sg_ynode_get(entry, "model_info"), "supports_reasoning"))
        d->supports_reasoning = dl->mi_reasoning ? 1 : -1;
    free(dl->region_name);
    free(dl->mi_region);
    free(dl->mi_id);
    return generated;
}

static void free_deployment(struct sg_deployment *d)
{
    free(d->id);
    free(d->alias);
    free(d->model);
    free(d->provider);
    free(d->provider_model);
    free(d->api_key);
    free(d->api_base);
    free(d->region);
    free(d->organization);
    for (size_t i = 0; i < d->n_headers; i++)
        free(d->headers[i]);
    free(d->headers);
    free(d->health_check_model);
    free(d->base_model);
    free(d->file);
}

/* qsort has no context argument: the array being sorted, for this thread's current sort. */
static _Thread_local const struct sg_deployment *sort_deps;

static int by_alias(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(sort_deps[i].alias, sort_deps[j].alias);
    return c ? c : (i < j ? -1 : i > j);
}

static int by_id(const void *a, const void *b)
{
    size_t i = *(const size_t *)a, j = *(const size_t *)b;
    int c = strcmp(sort_deps[i].id, sort_deps[j].id);
    return c ? c : (i < j ? -1 : i > j);
}

static int by_first(const void *a, const void *b)
{
    const struct sg_group *x = a, *y = b;
    size_t i = (size_t)(x->deployments[0] - sort_deps), j = (size_t)(y->deployments[0] - sort_deps);
    return i < j ? -1 : i > j;
}

/* The alias index over c->groups, built again whenever the array moves. */
static void index_groups(struct sg_config *c)
{
    sg_map_dispose(&c->group_index);
    for (size_t i = 0; i < c->n_groups; i++)
        sg_map_put(&c->group_index, c->groups[i].alias, strlen(c->groups[i].alias), &c->groups[i]);
}

/* Groups in first-seen order, and their alias index (sg_config_group), which the other sections
 * use while they load and every request after. Sorting keeps this O(n log n) even for a
 * model_list inflated by aliases. */
static void build_groups(struct sg_cfg_loader *ld)
{
    struct sg_config *c = ld->c;
    size_t n = 0;
    size_t *ix = sg_xmalloc((c->n_deployments ? c->n_deployments : 1) * sizeof *ix);
    for (size_t i = 0; i < c->n_deployments; i++)
        if (c->deployments[i].alias)
            ix[n++] = i;
    sort_deps = c->deployments;
    qsort(ix, n, sizeof *ix, by_alias);
    c->groups = sg_xcalloc(n ? n : 1, sizeof *c->groups);
    ld->groups_cap = n ? n : 1;
    for (size_t s = 0; s < n;) {
        size_t e = s + 1;
        while (e < n && strcmp(c->deployments[ix[e]].alias, c->deployments[ix[s]].alias) == 0)
            e++;
        struct sg_group *g = &c->groups[c->n_groups++];
        g->alias = sg_xstrdup(c->deployments[ix[s]].alias);
        g->n = e - s;
        g->deployments = sg_xmalloc(g->n * sizeof *g->deployments);
        for (size_t k = s; k < e; k++)
            g->deployments[k - s] = &c->deployments[ix[k]];
        s = e;
    }
    qsort(c->groups, c->n_groups, sizeof *c->groups, by_first);
    sort_deps = NULL;
    free(ix);
    ld->model_groups = c->n_groups;
    index_groups(c);
}

/* Identical entries without model_info.id hash to one id: the second becomes "<id>-2", the
 * third "<id>-3", in file order. Sorted, so a model_list inflated by aliases stays cheap. */
static void dedupe_generated_ids(struct sg_config *c, const bool *generated)
{
    size_t n = 0;
    size_t *ix = sg_xmalloc((c->n_deployments ? c->n_deployments : 1) * sizeof *ix);
    for (size_t i = 0; i < c->n_deployments; i++)
        if (generated[i])
            ix[n++] = i;
    sort_deps = c->deployments;
    qsort(ix, n, sizeof *ix, by_id); /* equal ids in file order */
    sort_deps = NULL;
    for (size_t s = 0, e; s < n; s = e) {
        for (e = s + 1; e < n && strcmp(c->deployments[ix[e]].id, c->deployments[ix[s]].id) == 0;
             e++) {
        }
        for (size_t k = s + 1; k < e; k++) {
            struct sg_deployment *d = &c->deployments[ix[k]];
            char *id = sg_xasprintf("%s-%zu", d->id, k - s + 1);
            free(d->id);
            d->id = id;
        }
    }
    free(ix);
}

/* "line 12" in the file being read, or "models.yaml:12" in another one (include:). */
static const char *where(const struct sg_cfg_loader *ld, const char *file, int line, char *buf,
                         size_t n)
{
    if (!file || strcmp(file, ld->file) == 0)
        snprintf(buf, n, "line %d", line);
    else
        snprintf(buf, n, "%.200s:%d", file, line);
    return buf;
}

/* `entries[i]` is the model_list entry deployment i was read from. */
static void check_ids(struct sg_cfg_loader *ld, const struct sg_ynode *const *entries)
{
    struct sg_config *c = ld->c;
    char at[256];
    size_t *ix = sg_xmalloc((c->n_deployments ? c->n_deployments : 1) * sizeof *ix);
    for (size_t i = 0; i < c->n_deployments; i++)
        ix[i] = i;
    sort_deps = c->deployments;
    qsort(ix, c->n_deployments, sizeof *ix, by_id);
    sort_deps = NULL;
    for (size_t k = 1; k < c->n_deployments; k++) {
        const struct sg_deployment *a = &c->deployments[ix[k - 1]], *b = &c->deployments[ix[k]];
        if (strcmp(a->id, b->id) != 0)
            continue;
        const struct sg_ynode *idn = sg_ynode_get(sg_ynode_get(entries[ix[k]], "model_info"), "id");
        ld->file = b->file;
        sg_cfg_err(ld, line_of(idn, b->line),
                   "model_list[%zu] has deployment id '%.60s', already used by model_list[%zu] "
                   "(%s): give each deployment its own model_info.id",
                   b->index, b->id, a->index, where(ld, a->file, a->line, at, sizeof at));
    }
    ld->file = ld->main_file;
    free(ix);
}

static void load_model_list(struct sg_cfg_loader *ld, const struct sg_ynode *list)
{
    struct sg_config *c = ld->c;
    const struct sg_cfg_doc *doc = ld->doc;
    char shown[96], path[SG_CFG_PATH_MAX], why[400];
    sg_cfg_at(ld, "model_list");
    if (!list || sg_ynode_is_null(list) || (list->kind == SG_YSEQ && list->n == 0)) {
        sg_cfg_warn(ld, list ? list->line : 0,
                    "no model_list: the gateway has nothing to route to; add deployments "
                    "(see examples/slogate.yaml)");
        build_groups(ld);
        ld->file = ld->main_file;
        return;
    }
    if (list->kind != SG_YSEQ) {
        sg_cfg_err(ld, list->line,
                   "model_list must be a list of deployments (lines starting with "
                   "'- model_name: ...'), got %s",
                   sg_cfg_show(list, NULL, shown, sizeof shown));
        build_groups(ld);
        ld->file = ld->main_file;
        return;
    }
    c->deployments = sg_xcalloc(list->n, sizeof *c->deployments);
    bool *generated = sg_xcalloc(list->n, sizeof *generated);
    const struct sg_ynode **entries = sg_xcalloc(list->n, sizeof *entries);
    c->unrouted = sg_xcalloc(list->n, sizeof *c->unrouted);
    for (size_t i = 0; i < list->n; i++) {
        const struct sg_ynode *entry = list->items[i];
        size_t index = doc && doc->item_index ? doc->item_index[i] : i;
        ld->file = doc && doc->item_file ? doc->item_file[i] : ld->main_file;
        sg_cfg_index(path, "model_list", index);
        const struct sg_ynode *name = sg_ynode_get(entry, "model_name");
        if (entry->kind == SG_YMAP && unrouted(ld, entry, why, sizeof why)) {
            bool named = name && name->kind == SG_YSCALAR && strlen(name->s) == name->len;
            sg_cfg_warn(
                ld,
                line_of(sg_ynode_get(sg_ynode_get(entry, "litellm_params"), "model"), entry->line),
                "%s (%.60s) is not routed: %s", path, named ? name->s : "?", why);
            if (named && !sg_map_find(&c->unrouted_index, name->s, name->len)) {
                struct sg_unrouted *u = &c->unrouted[c->n_unrouted++];
                *u = (struct sg_unrouted){sg_xstrdup(name->s), sg_xstrdup(why)};
                sg_map_put(&c->unrouted_index, u->alias, name->len, u);
            }
            continue;
        }
        struct dep_load dl = {0};
        dl.d.line = entry->line;
        sg_cfg_defaults(ld, &entry_table, &dl);
        if (entry->kind != SG_YMAP) {
            sg_cfg_err(ld, entry->line,
                       "%s must be a mapping with model_name and litellm_params, got %s", path,
                       sg_cfg_show(entry, NULL, shown, sizeof shown));
        } else {
            sg_cfg_values(ld, entry, path, &entry_table, &dl);
        }
        generated[c->n_deployments] = finish_deployment(ld, &dl, entry, path);
        dl.d.file = sg_xstrdup(ld->file);
        dl.d.index = index;
        entries[c->n_deployments] = entry;
        c->deployments[c->n_deployments++] = dl.d;
    }
    ld->file = ld->main_file;
    sg_cfg_at(ld, "model_list");
    if (c->n_deployments == 0)
        sg_cfg_warn(ld, list->line,
                    "none of the %zu model_list entries can be routed by slogate (each says "
                    "why): the gateway has nothing to route to, and serve refuses to start",
                    list->n);
    ld->file = ld->main_file;
    dedupe_generated_ids(c, generated);
    free(generated);
    build_groups(ld);
    sg_cfg_index_patterns(ld);
    check_ids(ld, entries);
    free(entries);
}

/* ---- lookups used while loading ---- */

bool sg_cfg_has_alias(const struct sg_cfg_loader *ld, const char *name)
{
    return sg_config_group(ld->c, name, strlen(name)) != NULL;
}

bool sg_cfg_unrouted_alias(const struct sg_cfg_loader *ld, const char *name)
{
    return !sg_cfg_has_alias(ld, name) && sg_config_unrouted(ld->c, name, strlen(name));
}

void sg_cfg_at(struct sg_cfg_loader *ld, const char *key)
{
    ld->file = ld->main_file;
    const struct sg_cfg_doc *doc = ld->doc;
    if (!doc || !doc->pair_file || !doc->root)
        return;
    size_t kl = strlen(key);
    for (size_t i = 0; i < doc->root->n; i++) {
        const struct sg_ynode *k = doc->root->pairs[i].key;
        if (k->len == kl && memcmp(k->s, key, kl) == 0) {
            ld->file = doc->pair_file[i];
            return;
        }
    }
}

bool sg_cfg_add_alias_group(struct sg_cfg_loader *ld, const char *alias, const char *target,
                            bool hidden)
{
    struct sg_config *c = ld->c;
    /* A model_list group, as LiteLLM resolves an alias once: not another alias. */
    const struct sg_group *hit = sg_config_group(c, target, strlen(target));
    if (!hit || (size_t)(hit - c->groups) >= ld->model_groups)
        return false;
    size_t target_ix = (size_t)(hit - c->groups);
    if (c->n_groups == ld->groups_cap) { /* doubling: the index is rebuilt O(log n) times */
        ld->groups_cap *= 2;
        c->groups = sg_xrealloc(c->groups, ld->groups_cap * sizeof *c->groups);
        index_groups(c);
    }
    const struct sg_group *t = &c->groups[target_ix];
    struct sg_group *g = &c->groups[c->n_groups++];
    g->alias = sg_xstrdup(alias);
    g->hidden = hidden;
    g->stars = 0; /* an alias is an exact name, whatever it holds */
    g->n = t->n;
    g->deployments = sg_xmalloc(g->n * sizeof *g->deployments);
    memcpy(g->deployments, t->deployments, g->n * sizeof *g->deployments);
    sg_map_put(&c->group_index, g->alias, strlen(g->alias), g);
    return true;
}

const char *sg_cfg_alias_list(const struct sg_cfg_loader *ld, char *buf, size_t n)
{
    const struct sg_config *c = ld->c;
    size_t o = 0;
    buf[0] = '\0';
    if (c->n_groups == 0) {
        snprintf(buf, n, "(none: model_list is empty)");
        return buf;
    }
    for (size_t i = 0; i < c->n_groups && i < 5 && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%.60s", i ? ", " : "", c->groups[i].alias);
    if (c->n_groups > 5 && o < n)
        snprintf(buf + o, n - o, ", ...");
    return buf;
}

/* ---- life of a config ---- */

static void config_free(struct sg_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_deployments; i++)
        free_deployment(&c->deployments[i]);
    free(c->deployments);
    for (size_t i = 0; i < c->n_groups; i++) {
        free(c->groups[i].alias);
        free(c->groups[i].deployments);
    }
    free(c->groups);
    sg_map_dispose(&c->group_index);
    sg_map_dispose(&c->feature_index);
    for (size_t i = 0; i < c->n_unrouted; i++) {
        free(c->unrouted[i].alias);
        free(c->unrouted[i].why);
    }
    free(c->unrouted);
    sg_map_dispose(&c->unrouted_index);
    sg_cfg_free_patterns(c);
    sg_cfg_free_sections(c);
    free(c->path);
    free(c);
}

struct sg_config *sg_config_ref(struct sg_config *c)
{
    if (c)
        __atomic_add_fetch(&c->refs, 1, __ATOMIC_RELAXED);
    return c;
}

void sg_config_unref(struct sg_config *c)
{
    /* acq_rel: every use of the config by other threads happens before the free. */
    if (c && __atomic_sub_fetch(&c->refs, 1, __ATOMIC_ACQ_REL) == 0)
        config_free(c);
}

/* Once the config is whole: the features no longer move, so the index can point into them. */
static void index_features(struct sg_config *c)
{
    for (size_t i = 0; i < c->n_features; i++)
        sg_map_put(&c->feature_index, c->features[i].name, strlen(c->features[i].name),
                   &c->features[i]);
}

const struct sg_group *sg_config_group(const struct sg_config *c, const char *alias, size_t len)
{
    return sg_map_find(&c->group_index, alias, len);
}

const char *sg_config_unrouted(const struct sg_config *c, const char *alias, size_t len)
{
    const struct sg_unrouted *u = sg_map_find(&c->unrouted_index, alias, len);
    return u ? u->why : sg_cfg_unrouted_match(c, alias, len);
}

const struct sg_feature *sg_config_feature(const struct sg_config *c, const char *name, size_t len)
{
    return sg_map_find(&c->feature_index, name, len);
}

int sg_config_workers(const struct sg_config *c, int flag)
{
    int n = flag >= 0 ? flag : c->server.workers;
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores < 1 ? 1 : (int)SG_MIN(cores, (long)SG_WORKERS_MAX);
    }
    return SG_MIN(n, SG_WORKERS_MAX);
}

/* ---- keys read at start ---- */

enum start_key_kind { SK_STR, SK_INT, SK_U32, SK_SIZE, SK_BOOL };

static const struct start_key {
    const char *name;
    enum start_key_kind kind;
    size_t off; /* into struct sg_config */
} start_keys[] = {
#define SK(name, kind, field)                                                                      \
    {                                                                                              \
        name, kind, offsetof(struct sg_config, field)                                              \
    }
    SK("server.host", SK_STR, server.host),
    SK("server.port", SK_INT, server.port),
    SK("server.workers", SK_INT, server.workers),
    SK("server.idle_timeout_s", SK_U32, server.idle_timeout_ms),
    SK("server.header_timeout_s", SK_U32, server.header_timeout_ms),
    SK("server.drain_timeout_s", SK_U32, server.drain_timeout_ms),
    SK("server.shutdown_delay_s", SK_U32, server.shutdown_delay_ms),
    SK("server.max_connections", SK_U32, server.max_connections),
    SK("server.log_level", SK_STR, server.log_level),
    SK("server.cors_origins", SK_STR, server.cors_origins),
    SK("general_settings.database_url", SK_STR, general.database_url),
    SK("general_settings.disable_spend_logs", SK_BOOL, general.disable_spend_logs),
    SK("general_settings.redis_url", SK_STR, general.redis_url),
    SK("general_settings.max_request_size_mb", SK_SIZE, general.max_request_size_bytes),
    SK("general_settings.background_health_checks", SK_BOOL, general.background_health_checks),
    SK("general_settings.health_check_interval", SK_U32, general.health_check_interval_ms),
    SK("service.name", SK_STR, service.name),
    SK("telemetry.otlp_endpoint", SK_STR, telemetry.otlp_endpoint),
    SK("telemetry.request_log", SK_STR, telemetry.request_log),
    SK("telemetry.log_prompts", SK_BOOL, telemetry.log_prompts),
    SK("telemetry.request_log_max_mb", SK_SIZE, telemetry.request_log_max_bytes),
    SK("telemetry.request_log_backups", SK_INT, telemetry.request_log_backups),
    SK("telemetry.metrics_token", SK_STR, telemetry.metrics_token),
    SK("telemetry.spool_path", SK_STR, telemetry.spool_path),
    SK("telemetry.journal_dir", SK_STR, telemetry.journal_dir),
#undef SK
};

_Static_assert(SG_ARRAY_LEN(start_keys) == SG_CONFIG_N_START_KEYS, "one name per key");

static bool start_key_equal(const struct start_key *k, const struct sg_config *a,
                            const struct sg_config *b)
{
    const char *pa = (const char *)a + k->off, *pb = (const char *)b + k->off;
    switch (k->kind) {
    case SK_STR: {
        const char *sa = *(char *const *)(const void *)pa, *sb = *(char *const *)(const void *)pb;
        return sa == sb || (sa && sb && strcmp(sa, sb) == 0);
    }
    case SK_INT: return memcmp(pa, pb, sizeof(int)) == 0;
    case SK_U32: return memcmp(pa, pb, sizeof(uint32_t)) == 0;
    case SK_SIZE: return memcmp(pa, pb, sizeof(size_t)) == 0;
    case SK_BOOL: return memcmp(pa, pb, sizeof(bool)) == 0;
    }
    return false;
}

size_t sg_config_start_keys_changed(const struct sg_config *running, const struct sg_config *fresh,
                                    const char *keys[SG_CONFIG_N_START_KEYS])
{
    size_t n = 0;
    for (size_t i = 0; i < SG_ARRAY_LEN(start_keys); i++)
        if (!start_key_equal(&start_keys[i], running, fresh))
            keys[n++] = start_keys[i].name;
    return n;
}

static void top_level_keys(struct sg_cfg_loader *ld, const struct sg_ynode *root)
{
    char key[SG_CFG_PATH_MAX];
    const struct sg_cfg_doc *doc = ld->doc;
    for (size_t i = 0; i < root->n; i++) {
        const struct sg_ynode *k = root->pairs[i].key;
        if (sg_cfg_is_section(k->s, k->len))
            continue;
        ld->file = doc && doc->pair_file ? doc->pair_file[i] : ld->main_file;
        sg_cfg_child(key, "", k->s, k->len);
        const struct sg_cfg_ignored *ig = sg_cfg_top_litellm();
        while (ig->key && !(strlen(ig->key) == k->len && memcmp(ig->key, k->s, k->len) == 0))
            ig++;
        if (ig->key)
            sg_cfg_warn(ld, k->line,
                        "%s is a LiteLLM setting slogate does not support; ignored%s%s%s", key,
                        ig->hint ? " (" : "", ig->hint ? ig->hint : "", ig->hint ? ")" : "");
        else
            sg_cfg_warn(ld, k->line, "unknown key '%s' at the top level: not supported, ignored",
                        key);
    }
    ld->file = ld->main_file;
}

static size_t errors_from(const struct sg_diags *d, size_t from)
{
    size_t n = 0;
    for (size_t i = from; i < d->n; i++)
        n += d->v[i].severity == SG_DIAG_ERROR;
    return n;
}

/* Load a config held in memory. `base_dir` is the folder of the file it was read from, where
 * `include:` paths start; NULL when it was not read from a file (includes are refused). */
static struct sg_config *load_buf(const char *yaml, size_t len, const char *name,
                                  const char *base_dir, sg_env_fn env, void *env_ud,
                                  struct sg_diags *diags)
{
    const char *file = name ? name : "<config>";
    size_t from = diags->n;
    struct sg_config *c = NULL;
    struct sg_cfg_loader ld = {
        .file = file, .main_file = file, .d = diags, .env = env, .env_ud = env_ud};
    struct sg_cfg_includes *inc = NULL;
    struct sg_cfg_doc doc = {0};
    char shown[96];
    bool empty = false;
    struct sg_ynode *root = sg_yaml_parse(yaml ? yaml : "", yaml ? len : 0, file, diags, &empty);
    if (!root) {
        if (empty)
            sg_cfg_err(&ld, 0,
                       "the config is empty: start from examples/slogate.yaml or "
                       "examples/litellm_config.yaml");
        goto out;
    }
    if (root->kind != SG_YMAP) {
        sg_cfg_err(&ld, root->line,
                   "the top level must be a mapping of sections (model_list:, router_settings:, "
                   "...), got %s",
                   sg_cfg_show(root, NULL, shown, sizeof shown));
        goto out;
    }
    doc.root = root;
    if (sg_ynode_get(root, "include"))
        inc = sg_cfg_include(&ld, root, base_dir, &doc);
    ld.doc = &doc;
    c = sg_xcalloc(1, sizeof *c);
    c->refs = 1;
    c->path = sg_xstrdup(file);
    ld.c = c;

    const struct sg_ynode *ev = sg_ynode_get(doc.root, "environment_variables");
    sg_cfg_at(&ld, "environment_variables");
    if (ev && ev->kind == SG_YMAP)
        ld.envvars = ev;
    else if (ev && !sg_ynode_is_null(ev))
        sg_cfg_err(&ld, ev->line, "environment_variables must be a mapping of NAME: value");
    ld.file = ld.main_file;

    load_model_list(&ld, sg_ynode_get(doc.root, "model_list"));
    sg_cfg_load_sections(&ld, doc.root);
    top_level_keys(&ld, doc.root);

out:
    sg_diags_sort_from(diags, from);
    if (errors_from(diags, from) > 0) {
        config_free(c);
        c = NULL;
    } else if (c) {
        index_features(c);
    }
    sg_cfg_includes_free(inc);
    sg_yaml_free(root);
    return c;
}

struct sg_config *sg_config_load_string(const char *yaml, size_t len, const char *name,
                                        sg_env_fn env, void *env_ud, struct sg_diags *diags)
{
    return load_buf(yaml, len, name, NULL, env, env_ud, diags);
}

int sg_cfg_read_all(FILE *f, size_t max, struct sg_buf *b)
{
    sg_buf_init(b, max);
    char chunk[16384];
    size_t got;
    int rc = SG_OK;
    while (rc == SG_OK && (got = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = sg_buf_append(b, chunk, got);
    if (ferror(f))
        return errno ? errno : EIO;
    return rc == SG_ETOOBIG ? SG_ETOOBIG : SG_OK;
}

/* Read `f` to its end into b; false (after a diagnostic) when it cannot. */
static bool read_stream(FILE *f, const char *name, struct sg_buf *b, struct sg_diags *diags)
{
    int rc = sg_cfg_read_all(f, SG_CONFIG_MAX_FILE, b);
    int err = rc > 0 ? rc : 0;
    if (err)
        sg_diags_add(diags, SG_DIAG_ERROR, name, 0, "cannot read the config: %s", strerror(err));
    else if (rc == SG_ETOOBIG)
        sg_diags_add(diags, SG_DIAG_ERROR, name, 0,
                     "the config is larger than %u MiB: is this the right file?",
                     SG_CONFIG_MAX_FILE >> 20);
    return rc == SG_OK;
}

struct sg_config *sg_config_load_stream(FILE *f, const char *name, sg_env_fn env, void *env_ud,
                                        struct sg_diags *diags)
{
    struct sg_buf b;
    struct sg_config *c = NULL;
    if (read_stream(f, name, &b, diags))
        c = load_buf(b.data ? b.data : "", b.len, name, NULL, env, env_ud, diags);
    sg_buf_dispose(&b);
    return c;
}

struct sg_config *sg_config_load_file(const char *path, sg_env_fn env, void *env_ud,
                                      struct sg_diags *diags)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        sg_diags_add(diags, SG_DIAG_ERROR, path, 0, "cannot open the config: %s", strerror(errno));
        return NULL;
    }
    struct sg_buf b;
    struct sg_config *c = NULL;
    if (read_stream(f, path, &b, diags)) {
        const char *slash = strrchr(path, '/');
        char *dir = slash ? sg_xstrndup(path, (size_t)(slash - path + (slash == path))) : NULL;
        c = load_buf(b.data ? b.data : "", b.len, path, dir ? dir : ".", env, env_ud, diags);
        free(dir);
    }
    sg_buf_dispose(&b);
    fclose(f);
    return c;
}
