/* slogate serve: load a config and run the gateway until SIGINT/SIGTERM. */
#include "cli.h"
#include "config/config.h"
#include "gateway/gateway.h"
#include "upstream/upstream.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
    "usage: slogate serve -c CONFIG [--host HOST] [--port PORT] [--workers N] [--log-level L]\n"
    "\n"
    "Run the gateway. CONFIG is a slogate.yaml or a LiteLLM proxy config (litellm_config.yaml).\n"
    "\n"
    "  -c, --config FILE   the configuration (or set SLOGATE_CONFIG)\n"
    "      --host HOST     listen address (default: server.host, 127.0.0.1)\n"
    "      --port PORT     listen port (default: server.port, 4000; 0 picks a free one)\n"
    "      --workers N     event-loop threads, 0 = one per core, at most " SG_CLI_WORKERS_MAX "\n"
    "                      (default: server.workers, else one per core)\n"
    "      --log-level L   debug | info | warn | error (default: server.log_level, info)\n"
    "\n"
    "No config yet? `slogate demo` runs the gateway in front of two built-in mock providers,\n"
    "and examples/ holds slogate.yaml and litellm_config.yaml to start from.\n";

static void banner(struct sg_gateway *gw, void *ud)
{
    const char *host = ud;
    struct sg_config *cfg = sg_gateway_config_ref(gw);
    int workers = sg_gateway_workers(gw);
    printf("slogate listening on http://%s:%d (%d %s, %zu %s in %zu %s)\n",
           host ? host : cfg->server.host, sg_gateway_port(gw), workers,
           sg_cli_plural(workers, "worker", "workers"), cfg->n_deployments,
           sg_cli_plural((long long)cfg->n_deployments, "deployment", "deployments"), cfg->n_groups,
           sg_cli_plural((long long)cfg->n_groups, "group", "groups"));
    sg_config_unref(cfg);
    fflush(stdout);
}

/* Each client connection can hold one upstream connection too; the slack covers the listeners,
 * the loops' own descriptors, the store and the log. */
#define FDS_PER_CONNECTION 2
#define FDS_SLACK 64

/* Raise the open-files limit before the workers listen, and warn when even the hard limit is
 * below what server.max_connections lets the workers open. */
static void raise_nofile(struct sg_gateway *gw)
{
    struct sg_config *cfg = sg_gateway_config_ref(gw);
    uint64_t per_worker = cfg->server.max_connections;
    int workers = sg_gateway_workers(gw);
    uint64_t need = per_worker * (uint64_t)workers * FDS_PER_CONNECTION + FDS_SLACK;
    char why[128];
    snprintf(why, sizeof why,
             "server.max_connections (%" PRIu64 " per worker x %d worker%s, a client and an "
             "upstream socket each)",
             per_worker, workers, workers == 1 ? "" : "s");
    sg_nofile_raise(need, why);
    sg_config_unref(cfg);
}

int cmd_serve(int argc, char **argv)
{
    if (sg_cli_wants_help(argc, argv, usage))
        return SG_EXIT_OK;
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},    {"host", required_argument, NULL, 'H'},
        {"port", required_argument, NULL, 'p'},      {"workers", required_argument, NULL, 'w'},
        {"log-level", required_argument, NULL, 'l'}, {NULL, 0, NULL, 0}};
    const char *path = getenv("SLOGATE_CONFIG"), *log_level = NULL;
    if (path && !*path) /* SLOGATE_CONFIG= is no config */
        path = NULL;
    struct sg_gateway_options go = {.port = -1};
    int workers = -1; /* -1: not given */
    int64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': path = optarg; break;
        case 'H': go.host = optarg; break;
        case 'p':
            if (!sg_parse_i64(optarg, 0, 65535, &v)) {
                fprintf(stderr, "slogate serve: --port must be 0..65535, got '%s'\n", optarg);
                return SG_EXIT_USAGE;
            }
            go.port = (int)v;
            break;
        case 'w':
            if (sg_cli_parse_workers("serve", optarg, &workers))
                return SG_EXIT_USAGE;
            break;
        case 'l': log_level = optarg; break;
        default: fputs(usage, stderr); return SG_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "slogate serve: unexpected argument '%s'\n%s", argv[optind], usage);
        return SG_EXIT_USAGE;
    }
    if (go.host && sg_cli_check_host("serve", go.host))
        return SG_EXIT_USAGE;
    if (path && !*path) {
        fprintf(stderr, "slogate serve: -c needs a file name\n");
        return SG_EXIT_USAGE;
    }
    if (path && strcmp(path, "-") == 0) {
        fprintf(stderr, "slogate serve: -c - (stdin) is for `slogate check`; serve reads its "
                        "config from a file, which a reload (SIGHUP) reads again\n");
        return SG_EXIT_USAGE;
    }
    if (!path) {
        fprintf(stderr, "slogate serve: no configuration given, so there are no providers to route "
                        "to.\n  Pass -c slogate.yaml (examples/ has slogate.yaml and "
                        "litellm_config.yaml),\n  or try `slogate demo`, which needs no keys.\n");
        return SG_EXIT_USAGE;
    }
    struct sg_diags diags;
    sg_diags_init(&diags);
    struct sg_config *cfg = sg_config_load_file(path, NULL, NULL, &diags);
    sg_diags_print(&diags, stderr);
    sg_diags_dispose(&diags);
    if (!cfg) {
        fprintf(stderr,
                "slogate serve: %s has errors (listed above); `slogate check -c %s` "
                "lists them too\n",
                path, path);
        return SG_EXIT_USAGE;
    }
    if (cfg->n_deployments == 0) {
        fprintf(stderr,
                "slogate serve: %s has no model_list entries slogate can route (any it "
                "left out are in the warnings above), so there is nothing to route to.\n  Add "
                "deployments (see examples/slogate.yaml) or try `slogate demo`.\n",
                path);
        sg_config_unref(cfg);
        return SG_EXIT_USAGE;
    }
    const char *lvl = log_level ? log_level : cfg->server.log_level;
    int lv = lvl ? sg_log_level_parse(lvl) : SG_LOG_INFO;
    if (lv < 0) {
        fprintf(stderr, "slogate serve: --log-level must be debug, info, warn or error, got '%s'\n",
                lvl);
        sg_config_unref(cfg);
        return SG_EXIT_USAGE;
    }
    sg_log_set_level((enum sg_log_level)lv);
    if (!cfg->general.master_key)
        SG_WARN("serve", "no general_settings.master_key: every client is let in. Set one "
                         "(master_key: os.environ/SLOGATE_MASTER_KEY) before exposing the gateway");
    sg_upstream_global_init();
    go.config_path = path;
    /* Resolved here so --workers 0 means one per core, as in the config, not "the config's". */
    go.workers = sg_config_workers(cfg, workers);
    struct sg_gateway *gw = sg_gateway_new(cfg, &go);
    raise_nofile(gw);
    int rc = sg_gateway_run(gw, banner, (void *)go.host);
    sg_gateway_free(gw);
    return rc ? SG_EXIT_FAIL : SG_EXIT_OK;
}
