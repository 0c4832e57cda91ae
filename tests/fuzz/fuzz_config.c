/*
 * libFuzzer target for the config loader: arbitrary bytes through libyaml, the node tree
 * (aliases, merge keys, duplicate keys, depth) and the typed loader. Everything loaded is
 * freed, so the replay run under ASan also catches leaks.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A deterministic environment: names starting with UNSET are unset, EMPTY are empty, and
 * every other name resolves, so both the error and the success paths are reachable. */
static const char *fuzz_env(const char *name, void *ud)
{
    (void)ud;
    if (strncmp(name, "UNSET", 5) == 0)
        return NULL;
    if (strncmp(name, "EMPTY", 5) == 0)
        return "";
    if (strncmp(name, "NUM", 3) == 0)
        return "7";
    return "https://env.example/v1";
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct sg_diags d;
    sg_diags_init(&d);
    struct sg_config *c =
        sg_config_load_string((const char *)data, size, "fuzz.yaml", fuzz_env, NULL, &d);
    if (c) {
        /* Touch what the rest of the gateway reads, so a dangling pointer shows up here. */
        for (size_t i = 0; i < c->n_groups; i++) {
            const struct sg_group *g =
                c->groups[i].alias
                    ? sg_config_group(c, c->groups[i].alias, strlen(c->groups[i].alias))
                    : NULL;
            for (size_t j = 0; g && j < g->n; j++)
                (void)strlen(g->deployments[j]->id);
        }
        for (size_t i = 0; i < c->n_features; i++)
            (void)sg_config_feature(c, c->features[i].name, strlen(c->features[i].name));
        sg_config_ref(c);
        sg_config_unref(c);
        sg_config_unref(c);
    }
    for (size_t i = 0; i < d.n; i++)
        (void)strlen(d.v[i].msg);
    sg_diags_dispose(&d);
    return 0;
}
