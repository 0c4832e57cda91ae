/*
 * slogate drill: the failover drill against a running gateway, or self-contained (--demo: two
 * mock providers and a gateway started in this process, as `slogate demo` does).
 */
#include "cli.h"
#include "config/config.h"
#include "drill/drill.h"
#include "gateway/gateway.h"
#include "mock/mock.h"
#include "upstream/upstream.h"

#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char usage[] =
    "usage: slogate drill -c slogate.yaml [--gateway URL] [--mode MODE] [options]\n"
    "       slogate drill --demo [--mode MODE] [options]\n"
    "\n"
    "Break the primary deployment of an alias on purpose while a steady load runs, measure the\n"
    "time to recover, p95 and success rate, roll back, verify the bypass path against the\n"
    "router, and write drill-YYYY-MM-DD.md / .json / .svg. Exit 0 only when every target in\n"
    "slo: and drill: held, 1 otherwise, 2 for usage errors. Ctrl-C rolls back, then stops.\n"
    "\n"
    "  -c, --config FILE     the gateway's config: ids, targets, prices, master key\n"
    "      --gateway URL     the gateway (default: http://<server.host>:<server.port>)\n"
    "      --mode MODE       revoke-key (default), block-egress or ttft\n"
    "      --ttft-ms N       ttft mode: the cap forced on the primary (default 30)\n"
    "      --alias NAME      the model_name to drill (default: the first in model_list)\n"
    "      --feature F       send x-slogate-feature: F; its cost cap becomes a target\n"
    "      --rps N           load rate in requests per second (default 2; demo 10)\n"
    "      --warmup S        baseline load before the fault (default 30; demo 4)\n"
    "      --duration S      how long the fault stays on (default 300; demo 12)\n"
    "      --recovery-wait S rollback: wait this long for health green (default 60; demo 10)\n"
    "      --prompts FILE    one prompt per line ('#' comments; default: built-in prompts)\n"
    "      --stream          send streaming requests (ttft mode always does)\n"
    "      --out DIR         where the reports go (default: the current directory)\n"
    "      --plain           a plain log even on a terminal\n"
    "      --demo            run against two in-process mock providers and gateway\n"
    "\n"
    "The master key comes from general_settings.master_key, else $SLOGATE_MASTER_KEY.\n"
    "docs/drill.md explains each phase and the report.\n";

#define DEMO_KEY "sk-slogate-drill-demo"

/* The demo: the seed's two-provider router over two mocks (the primary a little faster and
 * cheaper, as primaries are), short cooldowns so the chart shows the half-open probes. */
static const char demo_yaml[] =
    "model_list:\n"
    "  - model_name: app/chat\n"
    "    litellm_params:\n"
    "      model: openai/gpt-4o-mini\n"
    "      api_key: demo-key-a\n"
    "      api_base: http://127.0.0.1:%d/v1\n"
    "      order: 1\n"
    "      timeout: 10\n"
    "      stream_timeout: 2\n"
    "      input_cost_per_token: 0.00000015\n"
    "      output_cost_per_token: 0.0000006\n"
    "    model_info: { id: primary }\n"
    "  - model_name: app/chat\n"
    "    litellm_params:\n"
    "      model: openai/gpt-4o\n"
    "      api_key: demo-key-b\n"
    "      api_base: http://127.0.0.1:%d/v1\n"
    "      order: 2\n"
    "      timeout: 10\n"
    "      stream_timeout: 2\n"
    "      input_cost_per_token: 0.0000025\n"
    "      output_cost_per_token: 0.00001\n"
    "    model_info: { id: secondary }\n"
    "router_settings:\n"
    "  num_retries: 1\n"
    "  allowed_fails: 3\n"
    "  cooldown_time: 5\n"
    "  timeout: 10\n"
    "general_settings:\n"
    "  master_key: " DEMO_KEY "\n"
    "service: { name: slogate drill demo }\n"
    "slo: { success_rate: 99.5, p95_latency_s: 2.5, cost_avg_usd: 0.015 }\n"
    "drill: { failover_target_s: 10, min_success_during_failover: 95 }\n";

/* Realistic-looking latencies: the primary answers in ~20 ms with a 120 ms first token on
 * streams (so a 30 ms TTFT cap bites), the secondary in ~45 ms. */
static const struct sg_mock_options demo_primary = {.name = "provider-a",
                                                    .expected_key = "demo-key-a",
                                                    .faults = {.latency_ms = 20, .ttft_ms = 120}};
static const struct sg_mock_options demo_secondary = {.name = "provider-b",
                                                      .expected_key = "demo-key-b",
                                                      .faults = {.latency_ms = 45, .ttft_ms = 60}};

static bool parse_num(const char *flag, const char *v, int64_t min, int64_t max, int64_t *out)
{
    if (sg_parse_i64(v, min, max, out))
        return true;
    fprintf(stderr, "slogate drill: %s must be an integer %lld..%lld, got '%s'\n", flag,
            (long long)min, (long long)max, v);
    return false;
}

static int run_demo(struct sg_drill_options *o)
{
    sg_upstream_global_init();
    /* The gateway's own log lines would tear through the live display. */
    sg_log_set_level(SG_LOG_ERROR);
    struct sg_mock_pair *mocks = sg_mock_pair_start(&demo_primary, &demo_secondary);
    int rc = SG_EXIT_FAIL;
    struct sg_gateway *gw = NULL;
    struct sg_config *cfg = NULL;
    if (!mocks) {
        fprintf(stderr, "slogate drill: could not start the mock providers\n");
        goto out;
    }
    char *yaml = sg_xasprintf(demo_yaml, sg_mock_pair_port(mocks, 0), sg_mock_pair_port(mocks, 1));
    struct sg_diags diags;
    sg_diags_init(&diags);
    cfg = sg_config_load_string(yaml, strlen(yaml), "<drill demo>", NULL, NULL, &diags);
    sg_diags_print(&diags, stderr);
    sg_diags_dispose(&diags);
    free(yaml);
    if (!cfg) {
        fprintf(stderr, "slogate drill: the embedded config did not load (a bug: please "
                        "report)\n");
        goto out;
    }
    struct sg_gateway_options go = {.host = "127.0.0.1", .port = 0, .workers = 1, .quiet = true};
    gw = sg_gateway_new(sg_config_ref(cfg), &go);
    if (sg_gateway_start(gw) != SG_OK) {
        fprintf(stderr, "slogate drill: the demo gateway did not start\n");
        goto out;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", sg_gateway_port(gw));
    fprintf(o->out,
            "slogate drill --demo: gateway %s, provider-a (primary) :%d, provider-b "
            "(secondary) :%d\n",
            url, sg_mock_pair_port(mocks, 0), sg_mock_pair_port(mocks, 1));
    o->cfg = cfg;
    o->gateway_url = url;
    o->master_key = DEMO_KEY;
    rc = sg_drill_run(o, NULL);
out:
    if (gw) {
        sg_gateway_stop(gw);
        sg_gateway_join(gw);
        sg_gateway_free(gw);
    }
    if (cfg)
        sg_config_unref(cfg);
    sg_mock_pair_stop(mocks);
    return rc;
}

int cmd_drill(int argc, char **argv)
{
    if (sg_cli_wants_help(argc, argv, usage))
        return SG_EXIT_OK;
    enum {
        O_GATEWAY = 1000,
        O_MODE,
        O_TTFT,
        O_ALIAS,
        O_FEATURE,
        O_RPS,
        O_WARMUP,
        O_DURATION,
        O_RECOVERY,
        O_PROMPTS,
        O_STREAM,
        O_OUT,
        O_PLAIN,
        O_DEMO
    };
    static const struct option opts[] = {{"config", required_argument, NULL, 'c'},
                                         {"gateway", required_argument, NULL, O_GATEWAY},
                                         {"mode", required_argument, NULL, O_MODE},
                                         {"ttft-ms", required_argument, NULL, O_TTFT},
                                         {"alias", required_argument, NULL, O_ALIAS},
                                         {"feature", required_argument, NULL, O_FEATURE},
                                         {"rps", required_argument, NULL, O_RPS},
                                         {"warmup", required_argument, NULL, O_WARMUP},
                                         {"duration", required_argument, NULL, O_DURATION},
                                         {"recovery-wait", required_argument, NULL, O_RECOVERY},
                                         {"prompts", required_argument, NULL, O_PROMPTS},
                                         {"stream", no_argument, NULL, O_STREAM},
                                         {"out", required_argument, NULL, O_OUT},
                                         {"plain", no_argument, NULL, O_PLAIN},
                                         {"demo", no_argument, NULL, O_DEMO},
                                         {NULL, 0, NULL, 0}};
    struct sg_drill_options o = {.mode = SG_DRILL_REVOKE_KEY, .ttft_cap_ms = 30, .out = stdout};
    const char *config = NULL;
    int64_t rps = -1, warmup = -1, duration = -1, recovery = -1, v;
    bool plain = false, demo = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "c:", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config = optarg; break;
        case O_GATEWAY: o.gateway_url = optarg; break;
        case O_MODE:
            if (sg_drill_mode_parse(optarg, &o.mode) != SG_OK) {
                fprintf(stderr,
                        "slogate drill: --mode must be revoke-key, block-egress or ttft, "
                        "got '%s'\n",
                        optarg);
                return SG_EXIT_USAGE;
            }
            break;
        case O_TTFT:
            if (!parse_num("--ttft-ms", optarg, 1, 600000, &v))
                return SG_EXIT_USAGE;
            o.ttft_cap_ms = (uint32_t)v;
            break;
        case O_ALIAS: o.alias = optarg; break;
        case O_FEATURE: o.feature = optarg; break;
        case O_RPS:
            if (!parse_num("--rps", optarg, 1, 1000, &rps))
                return SG_EXIT_USAGE;
            break;
        case O_WARMUP:
            if (!parse_num("--warmup", optarg, 1, 3600, &warmup))
                return SG_EXIT_USAGE;
            break;
        case O_DURATION:
            if (!parse_num("--duration", optarg, 1, 3600, &duration))
                return SG_EXIT_USAGE;
            break;
        case O_RECOVERY:
            if (!parse_num("--recovery-wait", optarg, 1, 3600, &recovery))
                return SG_EXIT_USAGE;
            break;
        case O_PROMPTS: o.prompts_file = optarg; break;
        case O_STREAM: o.stream = true; break;
        case O_OUT: o.out_dir = optarg; break;
        case O_PLAIN: plain = true; break;
        case O_DEMO: demo = true; break;
        default: fputs(usage, stderr); return SG_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "slogate drill: unexpected argument '%s'\n%s", argv[optind], usage);
        return SG_EXIT_USAGE;
    }
    if (demo && (config || o.gateway_url)) {
        fprintf(stderr, "slogate drill: --demo brings its own gateway and config; drop -c and "
                        "--gateway\n");
        return SG_EXIT_USAGE;
    }
    if (!demo && !config) {
        fprintf(stderr, "slogate drill: -c slogate.yaml is required (or --demo to try it with "
                        "mock providers)\n");
        return SG_EXIT_USAGE;
    }
    o.rps = rps > 0 ? (double)rps : demo ? 10 : 2;
    o.warmup_s = warmup > 0 ? (uint32_t)warmup : demo ? 4 : 30;
    o.duration_s = duration > 0 ? (uint32_t)duration : demo ? 12 : 300;
    o.recovery_wait_s = recovery > 0 ? (uint32_t)recovery : demo ? 10 : 60;
    o.out_dir = o.out_dir ? o.out_dir : ".";
    const char *term = getenv("TERM");
    o.tty = !plain && isatty(STDOUT_FILENO) && !(term && strcmp(term, "dumb") == 0);
    o.demo = demo;
    if (demo)
        return run_demo(&o);

    return sg_drill_from_config("drill", config, &o, sg_drill_run);
}
