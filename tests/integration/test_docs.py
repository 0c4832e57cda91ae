"""The docs against the program: the lists a user reads in README.md and docs/ that drift when
the program changes — the command table, the flag tables, the response headers, the metric
families — checked against `--help`, the gateway's answers and a live /metrics."""

import os
import re
import subprocess
import sys

from harness import REPO, TestFailure, check, eq, free_port, http

COMMANDS = ["serve", "check", "mock", "demo", "drill", "trial"]


def doc(path):
    with open(os.path.join(REPO, path), encoding="utf-8") as f:
        return f.read()


def table_after(text, header):
    """The rows of the markdown table whose header line starts with `header`, split in cells."""
    at = text.find(header)
    if at < 0:
        raise TestFailure("no table headed %r in the doc" % header)
    lines = text[at:].splitlines()
    rows = []
    for ln in lines[2:]:  # past the header and the |---| line
        if not ln.startswith("|"):
            break
        rows.append([c.strip() for c in ln.strip().strip("|").split("|")])
    return rows


def help_flags(fx, cmd):
    """The long options `slogate CMD --help` lists, one per line at the start of the line."""
    r = fx.cli([cmd, "--help"])
    eq(r.code, 0, "slogate %s --help (%s)" % (cmd, r))
    return set(re.findall(r"(?m)^\s+(?:-\w, )?(--[a-z][a-z-]*)", r.out))


def test_readme_command_table_is_the_command_list(fx):
    r = fx.cli(["--help"])
    listed = re.findall(r"(?m)^  ([a-z]+) ", r.out)
    eq(sorted(listed), sorted(COMMANDS), "the commands `slogate --help` lists")
    rows = table_after(doc("README.md"), "| command | what it does |")
    in_readme = {}
    for cells in rows:
        m = re.match(r"`slogate ([a-z]+)", cells[0])
        check(m, "a README command row names `slogate CMD`: %r" % cells)
        in_readme[m.group(1)] = " ".join(cells)
    eq(sorted(in_readme), sorted(listed), "the commands in README.md's table")
    for cmd, row in in_readme.items():
        flags = set(re.findall(r"(--[a-z][a-z-]*)", row))
        missing = flags - help_flags(fx, cmd) - {"--help", "--version"}
        check(not missing, "README.md names %s for `slogate %s`, which its --help does not list"
              % (sorted(missing), cmd))


def test_flag_tables_are_what_help_lists(fx):
    for cmd, path, header, start in (
            ("mock", "docs/mock.md", "| flag | meaning |", None),
            ("drill", "docs/drill.md", "| flag | default | meaning |", None),
            ("trial", "docs/drill.md", "| flag | default | meaning |", "## slogate trial")):
        text = doc(path)
        if start:
            text = text[text.index(start):]
        documented = set()
        for cells in table_after(text, header):
            documented |= set(re.findall(r"`(?:-\w, )?(--[a-z][a-z-]*)", cells[0]))
        listed = help_flags(fx, cmd)
        eq(sorted(documented), sorted(listed),
           "the flags %s's table documents for `slogate %s` vs its --help" % (path, cmd))


def test_response_headers_table_is_what_the_gateway_sends(fx):
    m, gw = fx.mock_and_gateway()
    seen = set()

    def headers_of(r):
        return {k.lower() for k, _ in r.headers if k.lower().startswith("x-")}

    r = gw.chat()
    eq(r.status, 200, "a chat (%s)" % r.text)
    seen |= headers_of(r)
    # The two headers that are there only while an operator switch is on.
    eq(http(gw.port, "POST", "/admin/bypass", '{"enabled": true}').status, 200, "bypass on")
    eq(http(gw.port, "POST", "/admin/faults", '{"deployment":"primary","ttft_ms":5000}').status,
       200, "a drill fault on")
    r = gw.chat()
    eq(r.status, 200, "a chat with the bypass and a fault on (%s)" % r.text)
    seen |= headers_of(r)
    rows = table_after(doc("docs/api.md"), "| header | meaning |")
    documented = {re.sub(r"`", "", cells[0]) for cells in rows}
    eq(sorted(documented), sorted(seen),
       "the x- headers docs/api.md lists vs those the gateway sent")


def test_metric_families_table_is_what_metrics_shows(fx):
    # A redis_url (nothing listens there) so slogate_redis_up, shown only with one, is there.
    m, gw = fx.mock_and_gateway(general={"redis_url": "redis://127.0.0.1:%d/0" % free_port()})
    eq(gw.chat().status, 200, "a chat, so every family has a series")
    r = http(gw.port, "GET", "/metrics")
    eq(r.status, 200, "GET /metrics (%s)" % r.text[:200])
    live = dict(re.findall(r"(?m)^# TYPE (\S+) (\S+)$", r.text))
    documented = {}
    for cells in table_after(doc("docs/internals/telemetry.md"), "| family | type | labels |"):
        for name in re.findall(r"`(slogate_[a-z_]+)`", cells[0]):
            documented[name] = cells[1]
    eq(sorted(documented), sorted(live),
       "the families docs/internals/telemetry.md lists vs those /metrics shows")
    for name, kind in live.items():
        eq(documented[name], kind, "the type the doc gives %s" % name)


def test_run_list_needs_no_binary(fx):
    # docs/testing.md: `run.py --list` prints the names; it refused to without a built binary.
    runner = os.path.join(REPO, "tests", "integration", "run.py")
    p = subprocess.run([sys.executable, runner, "--list", "--bin", fx.path("no-such-slogate"),
                        "-k", "docs."], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=30, cwd=fx.dir)
    out = p.stdout.decode()
    eq(p.returncode, 0, "run.py --list without a binary (%s %s)" % (out, p.stderr.decode()))
    check("docs.test_run_list_needs_no_binary" in out.splitlines(),
          "the list names this test: %r" % out)


def test_an_unknown_admin_path_lists_the_admin_api_routing_md_documents(fx):
    # It said "see docs/api.md", which has no admin endpoints but the pins.
    m, gw = fx.mock_and_gateway()
    r = http(gw.port, "GET", "/admin/deployment")
    eq(r.status, 404, "GET /admin/deployment (%s)" % r.text)
    e = r.error()
    eq(e["code"], "not_found", "the code")
    check(e["message"].startswith("no admin endpoint GET /admin/deployment; the admin API is "),
          "the message names the request and lists the endpoints: %r" % e["message"])
    check("docs/routing.md" in e["message"], "it points at docs/routing.md: %r" % e["message"])
    listed = re.findall(r"(/admin/[a-z/<>_-]*[a-z>])", e["message"].split(" is ", 1)[1])
    check(len(listed) >= 6, "the endpoints listed: %r" % listed)
    text = doc("docs/routing.md")
    section = text[text.index("## The admin API"):text.index("## What the client sees")]
    for path in listed:
        probe = path.split("<")[0].rstrip("/") if "<" in path else path
        check(probe in section, "%s (in the message) is in routing.md's admin API section" % path)


def test_testing_md_names_every_test_file(fx):
    # docs/testing.md is where a reader finds what each suite covers: a test file it does not
    # name is coverage nobody knows of.
    text = doc("docs/testing.md")
    missing = []
    for folder, pattern in (("tests/integration", r"^test_\w+\.py$"),
                            ("tests/e2e", r"^\w+\.test\.mjs$")):
        for name in sorted(os.listdir(os.path.join(REPO, folder))):
            if re.match(pattern, name) and "`%s`" % name not in text and \
                    "`%s/%s`" % (folder, name) not in text:
                missing.append("%s/%s" % (folder, name))
    eq(missing, [], "test files docs/testing.md does not name")
