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

#endif
