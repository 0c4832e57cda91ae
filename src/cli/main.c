/* slogate's entry point: find the command in the table and hand it argv. */
#include "cli.h"
#include "config/config.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>

struct command {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"serve", cmd_serve, "run the gateway (-c slogate.yaml)"},
    {"check", cmd_check, "validate a config, print every problem with file:line"},
    {"mock", cmd_mock, "run a fake model provider with fault injection"},
    {"demo", cmd_demo, "the gateway in front of two built-in mock providers, no keys needed"},
    {"drill", cmd_drill, "break the primary on purpose, measure failover, roll back, report"},
    {"trial", cmd_trial, "sample traffic through one candidate deployment, judged by the SLO"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: slogate <command> [options]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`slogate <command> --help` explains a command.\n"
                 "exit codes: 0 ok, 1 runtime failure, 2 usage or config error\n");
}

int sg_cli_wants_help(int argc, char **argv, const char *text)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(text, stdout);
            return 1;
        }
    }
    return 0;
}

int sg_cli_wants_version(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--version") == 0) {
            printf("slogate %s\n", SG_VERSION);
            return 1;
        }
    }
    return 0;
}

int sg_cli_parse_workers(const char *cmd, const char *arg, int *out)
{
    int64_t v;
    if (!sg_parse_i64(arg, 0, SG_WORKERS_MAX, &v)) {
        fprintf(stderr, "slogate %s: --workers must be 0 (one per core) or 1..%d, got '%s'\n", cmd,
                SG_WORKERS_MAX, arg);
        return SG_EXIT_USAGE;
    }
    *out = (int)v;
    return 0;
}

int sg_cli_check_host(const char *cmd, const char *host)
{
    if (sg_config_host_ok(host))
        return 0;
    if (!*host)
        fprintf(stderr, "slogate %s: --host needs an address, such as 127.0.0.1\n", cmd);
    else
        fprintf(stderr,
                "slogate %s: --host '%s' is not an IP address or a host name; listen on an "
                "address such as 127.0.0.1, 0.0.0.0 (every IPv4 interface) or :: (every "
                "interface)\n",
                cmd, host);
    return SG_EXIT_USAGE;
}

int main(int argc, char **argv)
{
    /* A client that hangs up must cost its own request, never the process: writes to a closed
     * socket return EPIPE instead of raising SIGPIPE. */
    signal(SIGPIPE, SIG_IGN);
    if (argc < 2) {
        usage(stderr);
        return SG_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return SG_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("slogate %s\n", SG_VERSION);
        return SG_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        if (strcmp(name, commands[i].name) == 0) {
            if (sg_cli_wants_version(argc - 1, argv + 1))
                return SG_EXIT_OK;
            /* getopt names the program by argv[0] in its messages: "slogate demo: unrecognized
             * option '--bogus'", as the commands name themselves, not "demo: ...". */
            char prog[32];
            snprintf(prog, sizeof prog, "slogate %s", commands[i].name);
            argv[1] = prog;
            return commands[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "slogate: '%s' is not a command. See 'slogate --help'.\n", name);
    return SG_EXIT_USAGE;
}
