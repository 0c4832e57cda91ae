/*
 * slogate trial: sample traffic through one candidate deployment, judged against the SLO.
 */
#include "cli.h"
#include "config/config.h"
#include "drill/drill.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char usage[] =
    "usage: slogate trial -c slogate.yaml --candidate DEPLOYMENT_ID [--samples 200] [options]\n"
    "\n"
    "Send sample requests through one deployment (pinned for its alias while the trial runs)\n"
    "and pass when its p95 latency, average cost per request and answer rate meet slo:.\n"
    "Writes trial-YYYY-MM-DD.md / .json / .svg. Exit 0 pass, 1 fail, 2 usage error.\n"
    "The pin affects every client of that alias on the gateway: use a staging gateway.\n"
    "\n"
    "  -c, --config FILE     the gateway's config: ids, targets, prices, master key\n"
    "      --candidate ID    the deployment to try (its model_info.id)\n"
    "      --samples N       requests to send (default 200)\n"
    "      --rps N           requests per second (default 5)\n"
    "      --gateway URL     the gateway (default: http://<server.host>:<server.port>)\n"
    "      --feature F       send x-slogate-feature: F\n"
    "      --prompts FILE    one prompt per line ('#' comments; default: built-in prompts)\n"
    "      --stream          send streaming requests\n"
    "      --out DIR         where the reports go (default: the current directory)\n"
    "      --plain           a plain log even on a terminal\n";

int cmd_trial(int argc, char **argv)
{
    if (sg_cli_wants_help(argc, argv, usage))
        return SG_EXIT_OK;
    enum {
        O_CANDIDATE = 1000,
        O_SAMPLES,
        O_RPS,
        O_GATEWAY,
        O_FEATURE,
        O_PROMPTS,
        O_STREAM,
        O_OUT,
        O_PLAIN
    };
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"candidate", required_argument, NULL, O_CANDIDATE},
                                         {"samples", required_argument, NULL, O_SAMPLES},
                                         {"rps", required_argument, NULL, O_RPS},
                                         {"gateway", required_argument, NULL, O_GATEWAY},
                                         {"feature", required_argument, NULL, O_FEATURE},
                                         {"prompts", required_argument, NULL, O_PROMPTS},
                                         {"stream", no_argument, NULL, O_STREAM},
                                         {"out", required_argument, NULL, O_OUT},
                                         {"plain", no_argument, NULL, O_PLAIN},
                                         {NULL, 0, NULL, 0}};
    struct sg_drill_options o = {.samples = 200, .rps = 5, .out = stdout, .out_dir = "."};
    const char *config = NULL;
    bool plain = false;
    int64_t v;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case O_CANDIDATE: o.candidate = optarg; break;
        case O_SAMPLES:
            if (!sg_parse_i64(optarg, 1, 100000, &v)) {
                fprintf(stderr, "slogate trial: --samples must be 1..100000, got '%s'\n", optarg);
                return SG_EXIT_USAGE;
            }
            o.samples = (uint32_t)v;
            break;
        case O_RPS:
            if (!sg_parse_i64(optarg, 1, 1000, &v)) {
                fprintf(stderr, "slogate trial: --rps must be 1..1000, got '%s'\n", optarg);
                return SG_EXIT_USAGE;
            }
            o.rps = (double)v;
            break;
        case O_GATEWAY: o.gateway_url = optarg; break;
        case O_FEATURE: o.feature = optarg; break;
        case O_PROMPTS: o.prompts_file = optarg; break;
        case O_STREAM: o.stream = true; break;
        case O_OUT: o.out_dir = optarg; break;
        case O_PLAIN: plain = true; break;
        default: fputs(usage, stderr); return SG_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "slogate trial: unexpected argument '%s'\n%s", argv[optind], usage);
        return SG_EXIT_USAGE;
    }
    if (!config || !o.candidate) {
        fprintf(stderr, "slogate trial: -c slogate.yaml and --candidate DEPLOYMENT_ID are "
                        "required\n");
        return SG_EXIT_USAGE;
    }
    const char *term = getenv("TERM");
    o.tty = !plain && isatty(STDOUT_FILENO) && !(term && strcmp(term, "dumb") == 0);
    return sg_drill_from_config("trial", config, &o, sg_trial_run);
}
