"""The command line: help, version, exit codes, `check` diagnostics, config loading at start."""

import os
import re
import signal

from harness import REPO, MASTER_KEY, chat, chat_body, check, contains, eq, http, time_limit

COMMANDS = ["serve", "check", "mock", "demo", "drill", "trial"]


def test_help_everywhere_exits_0(fx):
    r = fx.cli(["--help"])
    eq(r.code, 0, "slogate --help exit code")
    for cmd in COMMANDS:
        contains(r.out, cmd, "slogate --help lists the command")
    for cmd in COMMANDS:
        r = fx.cli([cmd, "--help"])
        eq(r.code, 0, "slogate %s --help exit code (%s)" % (cmd, r))
        contains(r.out.lower(), "usage: slogate " + cmd, "slogate %s --help on stdout" % cmd)


def test_version_everywhere_exits_0(fx):
    for args in (["--version"], ["serve", "--version"], ["mock", "--version"]):
        r = fx.cli(args)
        eq(r.code, 0, "slogate %s exit code" % " ".join(args))
        check(re.match(r"^slogate \d+\.\d+\.\d+", r.out),
              "slogate %s prints 'slogate X.Y.Z', got %r" % (" ".join(args), r.out))


def test_unknown_command_and_no_command_exit_2(fx):
    r = fx.cli(["frobnicate"])
    eq(r.code, 2, "unknown command exit code")
    contains(r.err, "frobnicate", "the message names the unknown command")
    r = fx.cli([])
    eq(r.code, 2, "no command exit code")
    contains(r.err.lower(), "usage", "no command prints the usage on stderr")


def test_serve_without_config_points_at_demo(fx):
    r = fx.cli(["serve"], env={"SLOGATE_CONFIG": None})
    eq(r.code, 2, "serve without -c exit code")
    contains(r.err, "slogate demo", "serve without -c mentions `slogate demo`")
    contains(r.err, "examples/", "serve without -c points at examples/")


def test_serve_bad_flag_values_exit_2(fx):
    cfg = fx.write_config(fx.config(["http://127.0.0.1:9/v1"]))
    for args in (["--port", "70000"], ["--workers", "1025"], ["--workers", "-1"], ["--bogus"]):
        r = fx.cli(["serve", "-c", cfg] + args, timeout=5)
        eq(r.code, 2, "serve %s exit code (%s)" % (" ".join(args), r))
    for cmd in ("serve", "demo"):
        r = fx.cli([cmd, "--workers", "1025"], timeout=5)
        eq(r.code, 2, "%s --workers 1025 exit code (%s)" % (cmd, r))
        contains(r.err, "--workers must be 0 (one per core) or 1..1024, got '1025'",
                 "%s --workers names the range server.workers has" % cmd)
        contains(fx.cli([cmd, "--help"]).out, "0 = one per core, at most 1024",
                 "%s --help gives the range" % cmd)


def test_option_errors_name_the_command_and_what_was_wrong(fx):
    # Every command names itself as `slogate CMD:` in its errors; the option parser's own
    # messages said "demo: unrecognized option" (argv[0] was the bare command name).
    for cmd in COMMANDS:
        r = fx.cli([cmd, "--bogus"], timeout=5)
        eq(r.code, 2, "slogate %s --bogus exit code (%s)" % (cmd, r))
        first = r.err.splitlines()[0] if r.err else ""
        check(first.startswith("slogate %s: " % cmd) and "--bogus" in first,
              "slogate %s --bogus: the first line names the command and the option, got %r"
              % (cmd, first))
    for cmd in ("serve", "drill", "trial"):
        r = fx.cli([cmd, "-c"], timeout=5)
        eq(r.code, 2, "slogate %s -c with no file exit code (%s)" % (cmd, r))
        contains(r.err.splitlines()[0], "slogate %s: option requires an argument" % cmd,
                 "slogate %s -c without its argument" % cmd)
    cfg = fx.write_config(fx.config(["http://127.0.0.1:9/v1"]))
    r = fx.cli(["serve", "-c", cfg, "--port", "0", "--log-level", "loud"], timeout=5)
    eq(r.code, 2, "serve --log-level loud exit code (%s)" % r)
    contains(r.err, "slogate serve: --log-level must be debug, info, warn or error, got 'loud'",
             "a bad --log-level is named")


def test_serve_workers_flag_has_the_config_key_range(fx):
    # The flag takes what server.workers takes: up to 1024 gets past the flag to the config
    # (here one with nothing to route to, so nothing starts)...
    empty = fx.write("empty.yaml", "server: { port: 4000 }\n")
    r = fx.cli(["serve", "-c", empty, "--workers", "1024"], timeout=5)
    eq(r.code, 2, "serve --workers 1024 on a config without model_list (%s)" % r)
    contains(r.err, "no model_list entries", "--workers 1024 is accepted; the config is not")
    # ... and 0 means one per core there too, whatever server.workers says.
    cores = min(os.cpu_count() or 1, 1024)
    cfg = fx.config(["http://127.0.0.1:9/v1"], server={"workers": cores + 1})
    gw = fx.gateway(cfg, workers=None, args=["--workers", "0"])
    eq(gw.workers, cores, "serve --workers 0 with server.workers: %d" % (cores + 1))


def test_check_good_config_exits_0(fx):
    cfg = fx.write_config(fx.config(["http://127.0.0.1:9/v1"]))
    r = fx.cli(["check", "-c", cfg])
    eq(r.code, 0, "check on a good config (%s)" % r)
    check(r.out.strip(), "check prints a summary on stdout")
    check("error" not in r.err, "no error lines for a good config: %r" % r.err)


BAD_CONFIG = """\
model_list:
  - model_name: app/chat
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: "http://127.0.0.1:9/v1"
      order: "first"
      colour: blue
  - litellm_params:
      model: openai/gpt-4o
router_settings:
  num_retries: -3
general_settings:
  max_request_size_mb: lots
"""


def test_check_bad_config_lists_every_problem_with_file_line(fx):
    path = fx.write("bad.yaml", BAD_CONFIG)
    r = fx.cli(["check", "-c", path])
    eq(r.code, 2, "check on a bad config exit code (%s)" % r)
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    rx = re.compile(r"^(.*):(\d+): (error|warning): (.+)$")
    diags = [rx.match(ln) for ln in lines]
    check(all(diags), "every stderr line is `file:line: error|warning: message`: %r" % lines)
    for m in diags:
        eq(m.group(1), path, "file part of %r" % m.group(0))
    errors = {int(m.group(2)): m.group(4) for m in diags if m.group(3) == "error"}
    warnings = {int(m.group(2)): m.group(4) for m in diags if m.group(3) == "warning"}
    # order: "first" (line 6), the entry without model_name (line 8), num_retries -3 (line 11),
    # max_request_size_mb: lots (line 13): four errors, reported at once.
    for line, word in ((6, "order"), (11, "num_retries"), (13, "max_request_size_mb")):
        check(line in errors, "an error at line %d (%s); got errors %r" % (line, word, errors))
        contains(errors[line], word, "the line-%d error names the key" % line)
    check(any(ln in errors for ln in (8, 9)) and
          any("model_name" in errors.get(ln, "") for ln in (8, 9)),
          "an error at line 8 naming the missing model_name; got %r" % errors)
    check(7 in warnings and "colour" in warnings[7],
          "unknown key `colour` is a warning at line 7 naming it; got warnings %r" % warnings)
    check(r.out.strip(), "check prints a summary on stdout")


def test_check_refuses_a_strip_pattern_that_does_not_compile(fx):
    path = fx.write("strip.yaml", """\
model_list:
  - model_name: app/chat
    litellm_params: { model: openai/gpt-4o-mini, api_key: k, api_base: "http://127.0.0.1:9/v1" }
features:
  summarize:
    cache:
      normalize:
        strip:
          - "[0-9a-f]{8}-[0-9a-f-]{27}"
          - "(unclosed"
          - '(?i)ticket-\\d+'
""")
    r = fx.cli(["check", "-c", path])
    eq(r.code, 2, "check with a bad strip pattern (%s)" % r)
    contains(r.err, "%s:10: error: features.summarize.cache.normalize.strip[1]: \"(unclosed\" is "
                    "not a valid regular expression: missing closing parenthesis at offset 9"
             % path, "the error names the pattern, the reason and the line")
    eq(len([ln for ln in r.err.splitlines() if ": error: " in ln]), 1,
       "only the bad pattern is an error (%s)" % r.err)
    contains(r.out, "1 error", "the summary counts it")


def test_check_prints_every_problem_in_file_order(fx):
    # The price check runs after the load; its warning (line 2) must still come first.
    path = fx.write("order.yaml", """\
model_list:
  - model_name: app/chat
    litellm_params:
      model: hosted_vllm/my-model
      api_base: "http://127.0.0.1:9/v1"
      api_key: k
      colour: blue
router_settings:
  bogus: 1
budgets:
  tenant_monthly_usd: 5
""")
    r = fx.cli(["check", "-c", path])
    eq(r.code, 0, "warnings only (%s)" % r)
    lines = [int(m.group(1)) for m in
             (re.match(r"^.*?:(\d+): (?:error|warning): ", ln) for ln in r.err.splitlines()) if m]
    check(len(lines) >= 4, "four warnings at least: %r" % r.err)
    eq(lines, sorted(lines), "the lines of every problem, as printed")
    check(re.search(r":2: warning: model_list\[0\] \(app/chat#[0-9a-f]{8}\): no price known",
                    r.err.splitlines()[0]), "the first problem is the one on line 2: %r" % r.err)


def test_check_unknown_keys_are_warnings_not_errors(fx):
    text = fx.write("warn.yaml", """\
model_list:
  - model_name: app/chat
    litellm_params:
      model: openai/gpt-4o-mini
      api_base: "http://127.0.0.1:9/v1"
      api_key: k
litellm_settings:
  drop_params: true
  success_callback: ["langfuse"]
""")
    r = fx.cli(["check", "-c", text])
    eq(r.code, 0, "unknown LiteLLM keys do not fail check (%s)" % r)
    contains(r.err, "warning", "unknown keys are reported as warnings")
    contains(r.err, "drop_params", "the warning names the key")


def test_check_missing_file_exits_2(fx):
    r = fx.cli(["check", "-c", fx.path("nope.yaml")])
    eq(r.code, 2, "check on a missing file (%s)" % r)
    contains(r.err, "nope.yaml", "the message names the file")


def test_unset_environ_secret_exits_2_naming_variable(fx):
    cfg = fx.config(["http://127.0.0.1:9/v1"], api_key="os.environ/SLOGATE_IT_UNSET_KEY")
    path = fx.write_config(cfg)
    env = {"SLOGATE_IT_UNSET_KEY": None}
    r = fx.cli(["check", "-c", path], env=env)
    eq(r.code, 2, "check with an unset os.environ/ secret (%s)" % r)
    contains(r.err, "SLOGATE_IT_UNSET_KEY", "check names the variable")
    check(re.search(re.escape(path) + r":\d+: error", r.err), "the error has file:line: %r" % r.err)
    r = fx.cli(["serve", "-c", path, "--port", "0"], env=env, timeout=5)
    eq(r.code, 2, "serve with an unset os.environ/ secret (%s)" % r)
    contains(r.err, "SLOGATE_IT_UNSET_KEY", "serve names the variable")


def test_environ_secret_is_resolved_and_sent_upstream(fx):
    m = fx.mock(key="key-from-env")
    cfg = fx.config([m], api_key="os.environ/SLOGATE_IT_PROVIDER_KEY")
    gw = fx.gateway(cfg, env={"SLOGATE_IT_PROVIDER_KEY": "key-from-env"})
    r = gw.chat()
    eq(r.status, 200, "chat with an env-resolved provider key (%s)" % r.text)
    eq(m.last()["authorization"], "Bearer key-from-env", "key the provider received")


def example_env(mock_url):
    return {"PROVIDER_A_KEY": "key-a", "PROVIDER_A_API_BASE": mock_url,
            "PROVIDER_B_KEY": "key-b", "PROVIDER_B_API_BASE": "http://127.0.0.1:9",
            "DATABASE_URL": "postgresql://slogate:secret@127.0.0.1:5432/slogate"}


def test_example_litellm_config_checks_clean(fx):
    path = os.path.join(REPO, "examples", "litellm_config.yaml")
    check(os.path.exists(path), "examples/litellm_config.yaml exists")
    r = fx.cli(["check", "-c", path], env=example_env("http://127.0.0.1:9/v1"))
    eq(r.code, 0, "check examples/litellm_config.yaml with its env set (%s)" % r)
    check(not re.search(r": error: ", r.err), "no errors: %r" % r.err)
    # Without its environment it must fail and say which variables are missing.
    env = {k: None for k in example_env("")}
    r = fx.cli(["check", "-c", path], env=env)
    eq(r.code, 2, "check examples/litellm_config.yaml without its env (%s)" % r)
    for var in ("PROVIDER_A_KEY", "PROVIDER_A_API_BASE"):
        contains(r.err, var, "the errors name every unset variable")


def test_example_litellm_config_serves(fx):
    m = fx.mock(key="key-a")
    path = os.path.join(REPO, "examples", "litellm_config.yaml")
    with open(path) as f:
        text = f.read()
    gw = fx.gateway(text, env=example_env(m.url))
    # The example sets master_key under litellm_settings (LiteLLM accepts it there).
    r = gw.chat(key="sk-local-dev-key")
    eq(r.status, 200, "chat through the example config (%s)" % r.text)
    # No model_info.id in the example: the id is "<model_name>#<8 hex digits>", the same on
    # every start (a hash of the entry, not its position).
    dep = r.header("x-slogate-deployment") or ""
    check(re.match(r"^app/chat#[0-9a-f]{8}$", dep), "x-slogate-deployment: %r" % dep)
    ids = {d["id"]: d["api_base"] for d in
           http(gw.port, "GET", "/admin/deployments", key="sk-local-dev-key").json()["deployments"]}
    eq(ids.get(dep), m.url, "the id names the primary")
    eq(m.last()["model"], "gpt-4o-mini", "provider model id received by the primary")
    eq(m.last()["authorization"], "Bearer key-a", "key received by the primary")
    r = gw.chat(key="sk-wrong")
    eq(r.status, 401, "a wrong key against the example's master key")


@time_limit(20)
def test_demo_answers_chat_and_exits_0_on_sigint(fx):
    p = fx.spawn(["demo", "--port", "0", "--workers", "1"], "demo")
    m = p.wait_line(r"http://127\.0\.0\.1:(\d+)")
    port = int(m.group(1))
    p.wait_line(r"curl .*http://127\.0\.0\.1:%d/v1/chat/completions" % port, timeout=2)
    out = p.stdout()
    contains(out, "sk-slogate-demo", "the banner shows the demo key")
    r = chat(port, chat_body(), key="sk-slogate-demo")
    eq(r.status, 200, "demo answers app/chat (%s)" % r.text)
    text = r.json()["choices"][0]["message"]["content"]
    contains(text, "provider-a", "the primary mock answered")
    eq(r.header("x-slogate-deployment"), "primary", "x-slogate-deployment")
    r = chat(port, chat_body(), key=MASTER_KEY)
    eq(r.status, 401, "demo rejects another key")
    p.signal(signal.SIGINT)
    eq(p.wait(10), 0, "demo exit code after SIGINT")


def test_serve_banner_counts_in_words_that_agree(fx):
    m, gw = fx.mock_and_gateway(workers=1)
    eq(gw.banner, "slogate listening on http://127.0.0.1:%d (1 worker, 1 deployment in 1 group)"
       % gw.port, "the banner, singular where it is one")
