/* Unit-test helpers for the config suites (test_config*.c): load a YAML document with an injected
 * environment, then assert what `slogate check` would show — the exact line, severity and wording
 * of a diagnostic, or a clean load. Header-only (static inline); every suite is an executable of
 * its own, so each has its own `D`. */
#ifndef SG_TEST_CONFIG_LOAD_H
#define SG_TEST_CONFIG_LOAD_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config/config.h"

/* One environment variable; a list of them ends with {NULL, NULL}. */
struct kv {
    const char *k, *v;
};

/* The environment every load sees unless a test gives its own. */
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

/* The sg_env_fn over a struct kv list (`ud`). */
static inline const char *env_fn(const char *name, void *ud)
{
    for (const struct kv *e = ud; e && e->k; e++)
        if (strcmp(e->k, name) == 0)
            return e->v;
    return NULL;
}

/* The diagnostics of the last load; the assertions below read them. */
static struct sg_diags D;

/* Load `yaml` as "t.yaml" with `env`; NULL when the load found an error. */
static inline struct sg_config *load_env(const char *yaml, const struct kv *env)
{
    sg_diags_dispose(&D);
    sg_diags_init(&D);
    return sg_config_load_string(yaml, strlen(yaml), "t.yaml", env_fn, (void *)env, &D);
}

/* The same with base_env. */
static inline struct sg_config *load(const char *yaml)
{
    return load_env(yaml, base_env);
}

/* Print every diagnostic, so a failing assertion shows what the load said instead. */
static inline void dump(void)
{
    for (size_t i = 0; i < D.n; i++)
        print_message("  diag: line %d %s: %s\n", D.v[i].line,
                      D.v[i].severity == SG_DIAG_ERROR ? "error" : "warning", D.v[i].msg);
}

/* Whether a diagnostic of `sev` at `line` contains `sub`; line < 0: any line. */
static inline bool has(enum sg_diag_severity sev, int line, const char *sub)
{
    for (size_t i = 0; i < D.n; i++)
        if (D.v[i].severity == sev && (line < 0 || D.v[i].line == line) && strstr(D.v[i].msg, sub))
            return true;
    return false;
}

/* Fail, printing every diagnostic, unless one of `sev` at `line` contains `sub`. */
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

/* Warnings, less the notes that a section is checked but not enforced by this version yet
 * (tests that are about those count them themselves). */
static inline size_t warnings(void)
{
    size_t n = 0;
    for (size_t i = 0; i < D.n; i++)
        n += D.v[i].severity == SG_DIAG_WARNING &&
             !strstr(D.v[i].msg, "not enforced by this version of slogate yet");
    return n;
}

/* The load gave a config and said nothing at all (but the not-enforced notes). */
#define assert_clean(c)                                                                            \
    do {                                                                                           \
        if (!(c) || sg_diags_errors(&D) || warnings()) {                                           \
            dump();                                                                                \
            fail_msg("expected a clean load");                                                     \
        }                                                                                          \
    } while (0)

/* The load gave a config; warnings are allowed. */
#define assert_loaded(c)                                                                           \
    do {                                                                                           \
        if (!(c) || sg_diags_errors(&D)) {                                                         \
            dump();                                                                                \
            fail_msg("expected a load without errors");                                            \
        }                                                                                          \
    } while (0)

/* The smallest model_list: one deployment of app/chat at lines 1-3. */
#define ONE_MODEL                                                                                  \
    "model_list:\n"                                                                                \
    "  - model_name: app/chat\n"                                                                   \
    "    litellm_params: { model: openai/gpt-4o-mini, api_key: sk-test }\n"

/* Every test's teardown: the diagnostics of its last load go. */
static inline int teardown(void **state)
{
    (void)state;
    sg_diags_dispose(&D);
    return 0;
}

#endif
