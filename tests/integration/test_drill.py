"""slogate drill and slogate trial against real `slogate mock` providers and a real gateway:
each fault mode, a secondary that is broken too (exit 1, a report that says why), rollback
after Ctrl-C, the self-contained --demo, and the report's numbers checked against what the mocks
counted. Durations are kept to a few seconds (the suite shares two cores)."""

import json
import os
import re
import signal
import sqlite3
import time
import xml.etree.ElementTree as ET

from harness import MASTER_KEY, check, contains, eq, http, time_limit
from pg import Postgres

SUMMARY = re.compile(r"^TTR=(none|\d+\.\d\ds), p95=\d+\.\d\ds, SR=\d+\.\d%$", re.M)
SHORT = ["--warmup", "1", "--duration", "2", "--rps", "10", "--recovery-wait", "5", "--plain"]


def setup(fx, a_faults=None, b_faults=None, db=True, slo=None, db_url=None, service=None):
    """Two mocks behind app/chat (primary a, secondary b) and a gateway; returns a, b, gw, cfg
    path, out dir."""
    a = fx.mock("provider-a", **(a_faults or {}))
    b = fx.mock("provider-b", **(b_faults or {}))
    cfg = fx.config([a, b], input_cost_per_token=0.00000015, output_cost_per_token=0.0000006)
    cfg["router_settings"] = {"allowed_fails": 3, "cooldown_time": 1, "num_retries": 1}
    cfg["slo"] = slo or {"success_rate": 99.5, "p95_latency_s": 2.5, "cost_avg_usd": 0.015}
    cfg["drill"] = {"failover_target_s": 10, "min_success_during_failover": 95}
    if service:
        cfg["service"] = service
    if db:
        cfg["general_settings"]["database_url"] = db_url or "sqlite://" + fx.path("slogate.db")
    gw = fx.gateway(cfg)
    path = fx.write_config(dict(cfg, server={"port": gw.port}), "drill.yaml")
    return a, b, gw, path, fx.path("reports")


def run(fx, path, out, *args, timeout=40):
    return fx.cli(["drill", "-c", path, "--out", out] + SHORT + list(args), timeout=timeout)


def report(out, kind="drill"):
    names = sorted(n for n in os.listdir(out) if n.startswith(kind + "-") and n.endswith(".json"))
    check(names, "no %s-*.json in %s: %s" % (kind, out, os.listdir(out)))
    base = os.path.join(out, names[-1][:-5])
    with open(base + ".json") as f:
        j = json.load(f)
    with open(base + ".md") as f:
        md = f.read()
    ET.parse(base + ".svg")  # well-formed, or this raises
    return j, md


def gateway_clean(gw):
    eq(http(gw.port, "GET", "/admin/faults").json()["faults"], [], "no fault left on")
    eq(http(gw.port, "GET", "/admin/bypass").json()["bypass"], False, "bypass left off")
    for d in http(gw.port, "GET", "/admin/deployments").json()["deployments"]:
        eq(d["pinned"], False, "%s left unpinned" % d["id"])


def served(j, dep):
    return j["totals"]["served_by"].get(dep, 0)


def check_metrics(j):
    eq(j["metrics_crosscheck"]["state"], "agrees",
       "the gateway's /metrics against the drill (%s)" % j["metrics_crosscheck"]["note"])


@time_limit(50)
def test_revoke_key_drill_passes_and_matches_what_the_mocks_counted(fx):
    a, b, gw, path, out = setup(fx, service={"name": "Acme Assistant",
                                             "timezone": "Europe/Berlin"})
    r = run(fx, path, out, "--mode", "revoke-key")
    eq(r.code, 0, "exit code of a drill whose targets held (%s)" % r)
    check(SUMMARY.search(r.out), "the TTR/p95/SR summary line: %s" % r.out[-600:])
    contains(r.out, ": PASSED", "summary line 1")
    j, md = report(out)
    eq(j["passed"], True, "report verdict")
    check(j["measured"]["ttr_s"] is not None and j["measured"]["ttr_s"] < 10, "TTR measured")
    eq(j["phases"]["fault"]["success_rate"], 100, "every request answered during the fault")
    check(j["phases"]["fault"]["served_by"].get("secondary", 0) >= 10,
          "the secondary served the fault phase: %s" % j["phases"]["fault"])
    eq(j["phases"]["fault"]["served_by"].get("primary", 0), 0, "nothing from the revoked primary")
    check(j["phases"]["recovery"]["served_by"].get("primary", 0) >= 1, "the primary serves again")
    eq(j["verify"]["ok"], True, "bypass/router parity (%s)" % j["verify"]["note"])
    check(j["measured"]["cost_avg_usd"] > 0, "cost priced from usage x the config's prices")
    check_metrics(j)
    # The report against the mocks: every answer the drill got from a deployment is one the
    # provider counted, and every failed first attempt is a 401 the primary sent.
    sa, sb = a.stats(), b.stats()
    eq(sa["by_status"].get("200", 0), served(j, "primary"), "primary answers: mock vs report")
    eq(sb["by_status"].get("200", 0), served(j, "secondary"), "secondary answers: mock vs report")
    retried = sum(q["attempts"] - 1 for q in j["requests"] if q["deployment"] == "secondary")
    eq(sa["auth_failures"], retried, "401s the primary sent = attempts the gateway retried")
    eq(sa["chat"] + sb["chat"], j["totals"]["attempts"], "upstream attempts: mocks vs report")
    eq(j["totals"]["requests"], len(j["requests"]), "every request is in the report")
    for part in ("## Targets vs measured", "## Timeline", "fault on: revoke-key on primary",
                 "## Follow-ups", "drill-", ".svg"):
        contains(md, part, "markdown report")
    # Headed by the service's name; its start in UTC and in the service's zone.
    check(md.startswith("# Acme Assistant: failover drill, " + j["date"]), md[:200])
    check(re.search(r"started %s, that is \d{4}-\d\d-\d\d \d\d:\d\d CES?T \(Europe/Berlin\)\."
                    % re.escape(j["started_at"]), md), "the start in Europe/Berlin: %s" % md[:600])
    eq(j["service"], "Acme Assistant", "the JSON report's service")
    gateway_clean(gw)
    # The result is in the store.
    with sqlite3.connect(fx.path("slogate.db")) as db:
        rows = db.execute("SELECT kind, deployment, mode, passed, ttr_s, result_json "
                          "FROM slogate_drills").fetchall()
    eq(len(rows), 1, "one drill row")
    eq(rows[0][:4], ("drill", "primary", "revoke-key", 1), "the row")
    eq(json.loads(rows[0][5])["summary"], j["summary"], "the stored JSON is the report")


@time_limit(50)
def test_block_egress_drill_never_reaches_the_primary(fx):
    a, b, gw, path, out = setup(fx)
    r = run(fx, path, out, "--mode", "block-egress")
    eq(r.code, 0, "exit code (%s)" % r)
    j, _ = report(out)
    eq(j["mode"], "block-egress", "mode in the report")
    check_metrics(j)
    eq(j["phases"]["fault"]["success_rate"], 100, "served during the fault")
    # Blocked egress: the primary's provider saw only the requests it answered.
    eq(a.stats()["chat"], served(j, "primary"), "nothing reached the blocked primary")
    eq(b.stats()["by_status"].get("200", 0), served(j, "secondary"), "secondary answers")
    gateway_clean(gw)


@time_limit(50)
def test_ttft_drill_streams_and_fails_over_on_first_token(fx):
    a, b, gw, path, out = setup(fx, a_faults={"ttft_ms": 200})
    r = run(fx, path, out, "--mode", "ttft", "--ttft-ms", "30")
    eq(r.code, 0, "exit code (%s)" % r)
    j, md = report(out)
    eq(j["stream"], True, "a TTFT drill measures streams")
    eq(j["ttft_cap_ms"], 30, "the cap in the report")
    check_metrics(j)
    check(j["phases"]["baseline"]["served_by"].get("primary", 0) >= 5, "baseline on the primary")
    eq(j["phases"]["fault"]["served_by"].get("primary", 0), 0, "no stream from the capped primary")
    eq(j["phases"]["fault"]["success_rate"], 100, "every stream served")
    contains(md, "time to first token capped at 30 ms", "the timeline")
    eq(b.stats()["streams"], served(j, "secondary"), "streams the secondary served")
    gateway_clean(gw)


@time_limit(50)
def test_broken_secondary_fails_the_drill_with_exit_1_and_says_why(fx):
    a, b, gw, path, out = setup(fx, b_faults={"status": 500})
    r = run(fx, path, out, "--mode", "revoke-key")
    eq(r.code, 1, "exit code when the targets were missed (%s)" % r)
    contains(r.out, "TTR=none", "no failover: no TTR")
    contains(r.out, "FAILED", "summary verdict")
    j, md = report(out)
    eq(j["passed"], False, "verdict")
    eq(j["measured"]["ttr_s"], None, "no TTR in the JSON")
    check_metrics(j)
    failed = {c["name"]: c for c in j["checks"]}
    check(not failed["time to recover (TTR)"]["ok"], "the TTR check failed: %s" % j["checks"])
    check(not failed["success rate during fault"]["ok"], "the SR check failed")
    # The report says why: the secondary answered 500 too.
    contains(md, "**missed**", "the targets table marks the misses")
    contains(md, "No request was served by another deployment (secondary)", "follow-up")
    contains(md, "HTTP 500", "the secondary's answer is quoted")
    check(j["fault_errors"] and "secondary" in j["fault_errors"][0], "why: %s" % j["fault_errors"])
    # Numbers against the mocks: every upstream attempt the gateway reported is a request a
    # mock counted (once both cool down, the gateway answers 503 without trying either).
    sa, sb = a.stats(), b.stats()
    eq(sa["chat"] + sb["chat"], j["totals"]["attempts"], "upstream attempts: mocks vs report")
    fault = [q for q in j["requests"] if q["phase"] == "fault"]
    eq(j["phases"]["fault"]["failed"], len(fault), "every fault-phase request failed")
    check(sb["by_status"].get("500", 0) >= 1, "the secondary was tried: %s" % sb)
    eq(sb["by_status"].get("500", 0), sb["chat"] - sb["by_status"].get("200", 0),
       "the secondary answered 500 to everything but the verify phase")
    gateway_clean(gw)


@time_limit(40)
def test_sigint_mid_fault_rolls_back(fx):
    a, b, gw, path, out = setup(fx)
    p = fx.spawn(["drill", "-c", path, "--out", out, "--warmup", "1", "--duration", "60",
                  "--rps", "5", "--plain"], "drill")
    p.wait_line(r"fault on: revoke-key on primary", timeout=15)
    faults = http(gw.port, "GET", "/admin/faults").json()["faults"]
    eq([f["deployment"] for f in faults], ["primary"], "the fault is on mid-drill")
    p.signal(signal.SIGINT)
    eq(p.wait(15), 1, "an interrupted drill exits 1")
    gateway_clean(gw)
    contains(p.stdout(), "INTERRUPTED (rolled back)", "the summary says so")
    j, _ = report(out)
    eq(j["interrupted"], True, "report: interrupted")
    eq(j["passed"], False, "never a pass")
    # And the primary serves again once its cooldown is cleared.
    http(gw.port, "POST", "/admin/deployments/clear-cooldowns")
    eq(gw.chat().header("x-slogate-deployment"), "primary", "the primary serves after the drill")


@time_limit(30)
def test_sigint_while_the_bypass_is_on_turns_it_off(fx):
    # A slow primary keeps the pre-check's bypass request in flight long enough to interrupt.
    a, b, gw, path, out = setup(fx, a_faults={"latency_ms": 1500}, db=False)
    p = fx.spawn(["drill", "-c", path, "--out", out, "--plain"], "drill")
    p.wait_line(r"router bypass on", timeout=10)
    eq(http(gw.port, "GET", "/admin/bypass").json()["bypass"], True, "bypass on mid-pre-check")
    p.signal(signal.SIGINT)
    eq(p.wait(15), 1, "exit code")
    gateway_clean(gw)
    j, _ = report(out)
    eq(j["interrupted"], True, "interrupted")
    eq(a.stats()["chat"], 1, "the pre-check stopped after the request in flight")


@time_limit(30)
def test_sigterm_during_baseline_stops_cleanly(fx):
    a, b, gw, path, out = setup(fx, db=False)
    p = fx.spawn(["drill", "-c", path, "--out", out, "--warmup", "30", "--rps", "5", "--plain"],
                 "drill")
    p.wait_line(r"baseline load started", timeout=10)
    p.signal(signal.SIGTERM)
    eq(p.wait(15), 1, "exit code")
    gateway_clean(gw)
    j, _ = report(out)
    eq(j["interrupted"], True, "interrupted")
    eq(j["times"]["inject_s"], None, "no fault was injected")


@time_limit(60)
def test_demo_finishes_under_a_minute(fx):
    t0 = time.monotonic()
    r = fx.cli(["drill", "--demo", "--plain", "--out", fx.path("demo")], timeout=60)
    took = time.monotonic() - t0
    eq(r.code, 0, "demo exit code (%s)" % r)
    check(took < 60, "the demo took %.1fs" % took)
    check(SUMMARY.search(r.out), "summary line: %s" % r.out[-500:])
    lines = r.out.rstrip().split("\n")
    check(lines[-1].startswith("report: "), "the report path is printed last: %s" % lines[-1])
    j, md = report(fx.path("demo"))
    eq(j["demo"], True, "demo run")
    eq(j["passed"], True, "demo passes")
    eq(j["store"], "not stored: a --demo run", "a demo is not stored")
    eq(md.rstrip().split("\n")[-1], "Drill history: not stored: a --demo run",
       "the markdown report's last line says where the result went")


@time_limit(40)
def test_trial_pins_the_candidate_and_unpins(fx):
    a, b, gw, path, out = setup(fx)
    r = fx.cli(["trial", "-c", path, "--candidate", "secondary", "--samples", "20", "--rps", "20",
                "--out", out, "--plain"], timeout=30)
    eq(r.code, 0, "trial exit code (%s)" % r)
    check(re.search(r"^p95=\d+\.\d\ds, cost=\$\d+\.\d{6}/request, SR=100\.0%$", r.out, re.M),
          "trial summary: %s" % r.out[-400:])
    j, md = report(out, "trial")
    eq(j["candidate"], "secondary", "candidate")
    eq(j["measured"]["requests"], 20, "samples sent")
    eq(j["measured"]["served_by"], {"secondary": 20}, "all served by the candidate")
    eq(b.stats()["by_status"], {"200": 20}, "the candidate's provider saw exactly the samples")
    eq(a.stats()["chat"], 0, "nothing went to the primary")
    gateway_clean(gw)
    contains(md, "# slogate: change trial, ", "markdown")


@time_limit(60)
def test_trial_result_stored_in_postgresql(fx):
    pg = Postgres(fx)
    a, b, gw, path, out = setup(fx, db_url=pg.createdb("slogate"))
    r = fx.cli(["trial", "-c", path, "--candidate", "secondary", "--samples", "5", "--rps", "20",
                "--out", out, "--plain"], timeout=30)
    eq(r.code, 0, "trial exit code (%s)" % r)
    row = pg.query("SELECT kind, deployment, mode IS NULL, passed, success_rate, "
                   "result_json::json->>'candidate', report_path LIKE '%.md' "
                   "FROM slogate_drills", "slogate")
    eq(row, "trial|secondary|t|t|100|secondary|t", "the trial's row in PostgreSQL")
    j, _ = report(out, "trial")
    contains(j["store"], "postgresql database", "the report says where it went")


@time_limit(40)
def test_trial_fails_a_candidate_over_the_slo(fx):
    # The candidate answers in ~80 ms; an SLO of 50 ms p95 fails it.
    a, b, gw, path, out = setup(fx, b_faults={"latency_ms": 80},
                                slo={"success_rate": 99.5, "p95_latency_s": 0.05,
                                     "cost_avg_usd": 0.015})
    r = fx.cli(["trial", "-c", path, "--candidate", "secondary", "--samples", "10", "--rps", "20",
                "--out", out, "--plain"], timeout=30)
    eq(r.code, 1, "trial exit code (%s)" % r)
    contains(r.out, "p95 MISSED", "summary")
    gateway_clean(gw)


@time_limit(30)
def test_usage_errors_exit_2_and_runtime_failures_exit_1(fx):
    a, b, gw, path, out = setup(fx, db=False)
    for args, what in (([], "no -c"),
                       (["-c", path, "--mode", "unplug"], "unknown mode"),
                       (["-c", path, "--rps", "0"], "bad rate"),
                       (["-c", path, "--alias", "nope"], "unknown alias"),
                       (["-c", path, "--feature", "nope"], "unknown feature"),
                       (["--demo", "-c", path], "--demo with -c"),
                       (["-c", fx.path("missing.yaml")], "missing config")):
        r = fx.cli(["drill"] + args + ["--out", out])
        eq(r.code, 2, "%s: exit code (%s)" % (what, r))
        check(r.err.strip(), "%s: a message on stderr" % what)
        if what == "unknown feature":
            contains(r.err, "no feature 'nope' under features:", what)
    # A wrong master key: the gateway refuses it, a usage error.
    bad = fx.write_config(open(path).read().replace(MASTER_KEY, "sk-wrong"), "bad.yaml")
    r = fx.cli(["drill", "-c", bad, "--out", out, "--plain"])
    eq(r.code, 2, "refused master key (%s)" % r)
    contains(r.err, "refused the master key", "message")
    # No gateway there: a runtime failure, reported.
    r = fx.cli(["drill", "-c", path, "--gateway", "http://127.0.0.1:1", "--out", out, "--plain"])
    eq(r.code, 1, "unreachable gateway (%s)" % r)
    contains(r.out, "did not answer", "why")
    r = fx.cli(["trial", "-c", path, "--out", out])
    eq(r.code, 2, "trial without --candidate")
    r = fx.cli(["trial", "-c", path, "--candidate", "nope", "--out", out])
    eq(r.code, 2, "unknown candidate")
    r = fx.cli(["trial", "-c", path, "--candidate", "secondary", "--feature", "nope", "--out", out])
    eq(r.code, 2, "trial, unknown feature (%s)" % r)
    contains(r.err, "no feature 'nope' under features:", "trial, unknown feature")
    gateway_clean(gw)


@time_limit(30)
def test_refuses_to_start_when_a_fault_is_already_on(fx):
    a, b, gw, path, out = setup(fx, db=False)
    http(gw.port, "POST", "/admin/faults", {"deployment": "secondary", "block_egress": True})
    a.reset_stats()
    r = run(fx, path, out, "--mode", "revoke-key")
    eq(r.code, 1, "exit code (%s)" % r)
    contains(r.out, "drill faults are already on (secondary)", "why")
    j, _ = report(out)
    eq(j["aborted"], True, "aborted")
    eq(a.stats()["chat"], 0, "nothing was sent")
    faults = http(gw.port, "GET", "/admin/faults").json()["faults"]
    eq([f["deployment"] for f in faults], ["secondary"], "someone else's fault is left alone")
    http(gw.port, "DELETE", "/admin/faults")


@time_limit(30)
def test_single_deployment_alias_is_a_usage_error(fx):
    m = fx.mock("provider-a")
    cfg = fx.config([m])
    path = fx.write_config(cfg)
    r = fx.cli(["drill", "-c", path, "--plain"])
    eq(r.code, 2, "exit code (%s)" % r)
    contains(r.err, "nothing to fail over to", "message")
