/*
 * Prices and cost. A built-in table of the common OpenAI and Anthropic models (USD per million
 * tokens, as the providers publish them; docs/pricing.md names the pages and the date), which
 * `input_cost_per_token` / `output_cost_per_token` in the config override per deployment.
 *
 * Cost = uncached input x input price + cache reads x cached price + cache writes x cache-write
 * price + output x output price. Providers that report no cache fields simply have none.
 */
#include "provider.h"

#include <stdio.h>
#include <strings.h>

/* Keep rows grouped by provider; a model id matches a row exactly or as "<row>-<suffix>" where the
 * suffix is a dated snapshot, -latest or -preview (snapshot_suffix), the longest row winning, so
 * "gpt-4o-mini-2024-07-18" is gpt-4o-mini and not gpt-4o, and "o3-pro" is not o3. OpenAI rows:
 * cache_write = input (OpenAI charges nothing extra to write its cache). Anthropic rows:
 * cache_write is the 5-minute write price (1.25 x input), cache_read 0.1 x input; max_output is the
 * max_tokens we send when a chat.completions client gives none: the model's limit, capped at 8192
 * so an OpenAI-style "no limit" request does not reserve a huge output. */
static const struct sg_price_entry table[] = {
    /* provider, model,                input,  output, cached, cache write, max_output */
    {"openai", "gpt-5", 1.25, 10.00, 0.125, 1.25, 0},
    {"openai", "gpt-5-mini", 0.25, 2.00, 0.025, 0.25, 0},
    {"openai", "gpt-5-nano", 0.05, 0.40, 0.005, 0.05, 0},
    {"openai", "gpt-4.1", 2.00, 8.00, 0.50, 2.00, 0},
    {"openai", "gpt-4.1-mini", 0.40, 1.60, 0.10, 0.40, 0},
    {"openai", "gpt-4.1-nano", 0.10, 0.40, 0.025, 0.10, 0},
    {"openai", "gpt-4o", 2.50, 10.00, 1.25, 2.50, 0},
    {"openai", "gpt-4o-2024-05-13", 5.00, 15.00, 5.00, 5.00, 0},
    {"openai", "chatgpt-4o-latest", 5.00, 15.00, 5.00, 5.00, 0},
    {"openai", "gpt-4o-mini", 0.15, 0.60, 0.075, 0.15, 0},
    {"openai", "gpt-4-turbo", 10.00, 30.00, 10.00, 10.00, 0},
    {"openai", "gpt-4-1106-preview", 10.00, 30.00, 10.00, 10.00, 0},
    {"openai", "gpt-4-0125-preview", 10.00, 30.00, 10.00, 10.00, 0},
    {"openai", "gpt-4", 30.00, 60.00, 30.00, 30.00, 0},
    {"openai", "gpt-3.5-turbo", 0.50, 1.50, 0.50, 0.50, 0},
    {"openai", "o1", 15.00, 60.00, 7.50, 15.00, 0},
    {"openai", "o1-mini", 1.10, 4.40, 0.55, 1.10, 0},
    {"openai", "o3", 2.00, 8.00, 0.50, 2.00, 0},
    {"openai", "o3-mini", 1.10, 4.40, 0.55, 1.10, 0},
    {"openai", "o4-mini", 1.10, 4.40, 0.275, 1.10, 0},
    {"openai", "text-embedding-3-small", 0.02, 0, 0.02, 0.02, 0},
    {"openai", "text-embedding-3-large", 0.13, 0, 0.13, 0.13, 0},
    {"openai", "text-embedding-ada-002", 0.10, 0, 0.10, 0.10, 0},
    {"anthropic", "claude-opus-4-6", 5.00, 25.00, 0.50, 6.25, 8192},
    {"anthropic", "claude-opus-4-5", 5.00, 25.00, 0.50, 6.25, 8192},
    {"anthropic", "claude-opus-4-1", 15.00, 75.00, 1.50, 18.75, 8192},
    {"anthropic", "claude-opus-4", 15.00, 75.00, 1.50, 18.75, 8192},
    {"anthropic", "claude-sonnet-4-5", 3.00, 15.00, 0.30, 3.75, 8192},
    {"anthropic", "claude-sonnet-4", 3.00, 15.00, 0.30, 3.75, 8192},
    {"anthropic", "claude-3-7-sonnet", 3.00, 15.00, 0.30, 3.75, 8192},
    {"anthropic", "claude-3-5-sonnet", 3.00, 15.00, 0.30, 3.75, 8192},
    {"anthropic", "claude-haiku-4-5", 1.00, 5.00, 0.10, 1.25, 8192},
    {"anthropic", "claude-3-5-haiku", 0.80, 4.00, 0.08, 1.00, 8192},
    {"anthropic", "claude-3-opus", 15.00, 75.00, 1.50, 18.75, 4096},
    {"anthropic", "claude-3-sonnet", 3.00, 15.00, 0.30, 3.75, 4096},
    {"anthropic", "claude-3-haiku", 0.25, 1.25, 0.03, 0.30, 4096},
};

const struct sg_price_entry *sg_pricing_table(size_t *n)
{
    *n = SG_ARRAY_LEN(table);
    return table;
}

static bool all_digits(const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i] < '0' || p[i] > '9')
            return false;
    return n > 0;
}

/* Is `s` (what follows a row's name, after its '-') a snapshot or alias of that row: segments
 * that are a date (YYYYMMDD, YYYY-MM-DD, or OpenAI's MMDD), "latest" or "preview"? Anything else
 * names another model (o3-pro, gpt-4-32k, claude-opus-4-7) at another price. */
static bool snapshot_suffix(const char *s)
{
    while (*s) {
        size_t n = strcspn(s, "-");
        if (n == 8 && all_digits(s, 8)) {
            s += 8;
        } else if (n == 4 && all_digits(s, 4) && s[4] == '-' && strspn(s + 5, "0123456789") == 2 &&
                   s[7] == '-' && strspn(s + 8, "0123456789") == 2 &&
                   (s[10] == '\0' || s[10] == '-')) {
            s += 10; /* YYYY-MM-DD */
        } else if ((n == 4 && all_digits(s, 4)) || (n == 6 && strncmp(s, "latest", 6) == 0) ||
                   (n == 7 && strncmp(s, "preview", 7) == 0)) {
            s += n;
        } else {
            return false;
        }
        if (*s == '-' && s[1])
            s++;
        else if (*s)
            return false;
    }
    return true;
}

const struct sg_price_entry *sg_pricing_lookup(const char *provider, const char *model)
{
    if (!provider || !model)
        return NULL;
    const struct sg_price_entry *best = NULL;
    size_t best_len = 0;
    for (size_t i = 0; i < SG_ARRAY_LEN(table); i++) {
        const struct sg_price_entry *e = &table[i];
        size_t n = strlen(e->model);
        if (strcmp(e->provider, provider) != 0 || strncmp(model, e->model, n) != 0)
            continue;
        if ((model[n] == '\0' || (model[n] == '-' && snapshot_suffix(model + n + 1))) &&
            n > best_len) {
            best = e;
            best_len = n;
        }
    }
    return best;
}

const char *sg_pricing_family(const char *provider, size_t n)
{
    return n == 9 && strncasecmp(provider, "anthropic", 9) == 0 ? "anthropic"
           : (n == 6 && strncasecmp(provider, "openai", 6) == 0) ||
                   (n == 5 && strncasecmp(provider, "azure", 5) == 0)
               ? "openai"
               : NULL;
}

/* The built-in table's row for a deployment. The model is model_info.base_model when set (LiteLLM
 * prices an Azure deployment, whose name is its owner's choice, by it), else the model called. */
static const struct sg_price_entry *table_row(const struct sg_deployment *d)
{
    const char *model = d->provider_model, *provider = d->provider;
    const char *slash = d->base_model ? strchr(d->base_model, '/') : NULL;
    if (slash) { /* "azure/gpt-4o" */
        provider = d->base_model;
        model = slash + 1;
    } else if (d->base_model) { /* "gpt-4o", "claude-3-5-haiku" */
        model = d->base_model;
        provider = sg_config_bare_provider(model);
    }
    const char *family =
        sg_pricing_family(provider, slash ? (size_t)(slash - provider) : strlen(provider));
    return family ? sg_pricing_lookup(family, model) : NULL;
}

bool sg_pricing_resolve(const struct sg_deployment *d, struct sg_price *out)
{
    const struct sg_price_entry *e = table_row(d);
    memset(out, 0, sizeof *out);
    if (e) {
        out->input = e->input / 1e6;
        out->output = e->output / 1e6;
        out->cache_read = e->cache_read / 1e6;
        out->cache_write = e->cache_write / 1e6;
    }
    bool configured = d->input_cost_per_token >= 0 || d->output_cost_per_token >= 0;
    if (d->input_cost_per_token >= 0) {
        double in = d->input_cost_per_token;
        if (e && e->input > 0) {
            /* Keep the table's cache discount, applied to the configured price. */
            out->cache_read = in * (e->cache_read / e->input);
            out->cache_write = in * (e->cache_write / e->input);
        } else if (d->kind == SG_PROVIDER_ANTHROPIC) {
            out->cache_read = in * 0.1; /* Anthropic's published multipliers, all models */
            out->cache_write = in * 1.25;
        } else {
            out->cache_read = in; /* unknown discount: price cached tokens in full */
            out->cache_write = in;
        }
        out->input = in;
    }
    if (d->output_cost_per_token >= 0)
        out->output = d->output_cost_per_token;
    return e != NULL || configured;
}

double sg_pricing_cost(const struct sg_price *p, const struct sg_usage *u)
{
    int64_t uncached = u->input_tokens - u->cache_read_tokens - u->cache_creation_tokens;
    if (uncached < 0)
        uncached = 0;
    return (double)uncached * p->input + (double)u->cache_read_tokens * p->cache_read +
           (double)u->cache_creation_tokens * p->cache_write + (double)u->output_tokens * p->output;
}
