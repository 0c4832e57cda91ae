/* `slogate check -c FILE`: load a config the way `serve` would and print every problem. */
#include "cli.h"
#include "provider/provider.h"
#include "config/config.h"
#include "store/store.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

static const char usage[] =
    "usage: slogate check -c FILE\n"
    "\n"
    "Validate a slogate.yaml (or a LiteLLM litellm_config.yaml) without starting anything.\n"
    "Every problem is printed to stderr as `file:line: error|warning: message`; a one-line\n"
    "summary goes to stdout. Secrets written as os.environ/NAME are resolved from the\n"
    "environment, so run it with the same environment as `slogate serve`.\n"
    "\n"
    "options:\n"
    "  -c, --config FILE   the config to check; - reads it from stdin (named <stdin>)\n"
    "  -h, --help          this text\n"
    "\n"
    "exit codes: 0 no errors (warnings allowed), 2 errors or a usage problem\n";

/* The store's schema version, read without creating or migrating anything. */
static void report_store(const struct sg_config *c)
{
    const char *url = c->general.database_url;
    if (!url || c->general.disable_spend_logs)
        return;
    /* A PostgreSQL URL may hold a password: name the scheme only, as diagnostics do. */
    const char *name = strncmp(url, "sqlite://", 9) == 0 ? url : "postgresql";
    int version = 0;
    char err[512] = "";
    int rc = sg_store_inspect(url, &version, err, sizeof err);
    if (rc == SG_EINVAL) /* no retry mends it: the message says what to do */
        printf("store: %s: %s; until then serve answers and spools every request event\n", name,
               err);
    else if (rc != SG_OK)
        printf("store: %s: not reachable now (%s); serve keeps answering and spools request "
               "events until it is\n",
               name, err);
    else if (version == 0)
        printf("store: %s: no schema yet; serve creates it (schema version %d)\n", name,
               SG_STORE_SCHEMA_VERSION);
    else
        printf("store: %s: schema version %d%s\n", name, version,
               version < SG_STORE_SCHEMA_VERSION   ? " (serve migrates it to the current one)"
               : version > SG_STORE_SCHEMA_VERSION ? " (newer than this slogate)"
                                                   : " (current)");
}

int cmd_check(int argc, char **argv)
{
    if (sg_cli_wants_help(argc, argv, usage))
        return SG_EXIT_OK;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-c") == 0 || strcmp(a, "--config") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, "slogate check: %s needs a file name\n", a);
                return SG_EXIT_USAGE;
            }
            path = argv[++i];
        } else if (strncmp(a, "--config=", 9) == 0) {
            path = a + 9;
        } else {
            fprintf(stderr, "slogate check: unknown argument '%s'\n%s", a, usage);
            return SG_EXIT_USAGE;
        }
    }
    if (!path || !*path) {
        fprintf(stderr, "slogate check: say which config to check: slogate check -c slogate.yaml "
                        "(examples are in examples/)\n");
        return SG_EXIT_USAGE;
    }
    struct sg_diags diags;
    sg_diags_init(&diags);
    struct sg_config *c = NULL;
    struct stat st;
    if (strcmp(path, "-") == 0) {
        /* A config made by a template (envsubst, helm) is checked before it is written. */
        path = "<stdin>";
        c = sg_config_load_stream(stdin, path, NULL, NULL, &diags);
    } else if (stat(path, &st) != 0) {
        fprintf(stderr, "slogate check: cannot read %s: %s\n", path, strerror(errno));
        return SG_EXIT_USAGE;
    } else if (S_ISDIR(st.st_mode)) {
        fprintf(stderr, "slogate check: %s is a directory; give the config file\n", path);
        return SG_EXIT_USAGE;
    } else {
        c = sg_config_load_file(path, NULL, NULL, &diags);
    }
    /* A deployment nobody can price costs 0 on every answer: budgets and cost SLOs would
     * silently miss it. Say so here (serve counts such answers instead). */
    for (size_t i = 0; c && i < c->n_deployments; i++) {
        const struct sg_deployment *d = &c->deployments[i];
        struct sg_price p;
        /* A wildcard route's model is priced per request, for the model the name fills in:
         * the built-in table knows OpenAI's and Anthropic's (docs/pricing.md). */
        if (d->stars && sg_pricing_family(d->provider, strlen(d->provider)))
            continue;
        if (!sg_pricing_resolve(d, &p))
            sg_diags_add(&diags, SG_DIAG_WARNING, d->file ? d->file : path, d->line,
                         "model_list[%zu] (%s): no price known for %s; its requests will cost 0. "
                         "Set litellm_params.input_cost_per_token and output_cost_per_token",
                         d->index, d->id, d->model);
    }
    sg_diags_sort(&diags); /* the load's own are in file order; these join them there */
    sg_diags_print(&diags, stderr);
    fflush(stderr);
    size_t errors = sg_diags_errors(&diags), warnings = sg_diags_warnings(&diags);
    if (c && errors == 0) {
        printf("%s: ok \xe2\x80\x94 %zu %s in %zu %s, %zu %s\n", path, c->n_deployments,
               sg_cli_plural((long long)c->n_deployments, "deployment", "deployments"), c->n_groups,
               sg_cli_plural((long long)c->n_groups, "group", "groups"), warnings,
               sg_cli_plural((long long)warnings, "warning", "warnings"));
        report_store(c);
    } else {
        printf("%s: %zu %s, %zu %s\n", path, errors,
               sg_cli_plural((long long)errors, "error", "errors"), warnings,
               sg_cli_plural((long long)warnings, "warning", "warnings"));
    }
    sg_config_unref(c);
    sg_diags_dispose(&diags);
    return errors ? SG_EXIT_USAGE : SG_EXIT_OK;
}
