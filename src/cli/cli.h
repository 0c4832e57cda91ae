/*
 * cli — the command table (git style): `slogate <command> [options]`, one cmd_*.c per command.
 * Every command handles --help itself and returns an exit code.
 */
#ifndef SG_CLI_H
#define SG_CLI_H

enum { SG_EXIT_OK = 0, SG_EXIT_FAIL = 1, SG_EXIT_USAGE = 2 };

#define SG_VERSION "0.1.0"

int cmd_serve(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_mock(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_drill(int argc, char **argv);
int cmd_trial(int argc, char **argv);

/* True when argv holds --help/-h; prints `usage` to stdout then. */
int sg_cli_wants_help(int argc, char **argv, const char *usage);
/* True when argv holds --version; prints the version then. */
int sg_cli_wants_version(int argc, char **argv);

/* `one` when n is 1, else `many`: "1 deployment", "2 deployments". */
static inline const char *sg_cli_plural(long long n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

/* A macro's value as a string literal, for usage texts. */
#define SG_CLI_STR_(x) #x
#define SG_CLI_STR(x) SG_CLI_STR_(x)
/* SG_WORKERS_MAX (config.h) as a string: "... at most " SG_CLI_WORKERS_MAX "\n". */
#define SG_CLI_WORKERS_MAX SG_CLI_STR(SG_WORKERS_MAX)

/* `--workers N` of serve and demo, with server.workers' range (0 = one per core). Returns 0 and
 * sets *out, or prints "slogate CMD: --workers must be ..." and returns SG_EXIT_USAGE. */
int sg_cli_parse_workers(const char *cmd, const char *arg, int *out);
/* `--host HOST` of serve and demo, checked as server.host is (sg_config_host_ok). Returns 0, or
 * prints "slogate CMD: --host ..." and returns SG_EXIT_USAGE. */
int sg_cli_check_host(const char *cmd, const char *host);

#endif
