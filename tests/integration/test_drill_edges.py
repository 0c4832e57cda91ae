"""slogate drill and trial at their edges: a report directory that cannot be written (refused
before anything is broken), a gateway that dies mid-drill (the report and the summary say what
was left on), a pin the trial found in place (put back), a candidate the gateway serves under
another alias, prompts longer than a line buffer, and changes whose answer was lost on the way
back (undone all the same). Each test is a few seconds."""

import json
import os
import select
import signal
import socket
import threading
import time

import yaml

from harness import check, contains, eq, http, time_limit
from test_drill import SHORT, gateway_clean, report, setup


@time_limit(30)
def test_an_out_dir_that_cannot_be_written_is_refused_before_anything_breaks(fx):
    a, b, gw, path, out = setup(fx, db=False)
    blocker = fx.write("not-a-dir", "a file where the report directory should go\n")
    for bad in (blocker, os.path.join(blocker, "reports")):
        t0 = time.monotonic()
        r = fx.cli(["drill", "-c", path, "--out", bad] + SHORT, timeout=30)
        took = time.monotonic() - t0
        eq(r.code, 2, "an unwritable --out is a usage error (%s)" % r)
        contains(r.err, bad, "the message names the directory")
        check(took < 2.5, "refused at once, not after the drill (%.1fs)" % took)
        eq(a.stats()["chat"], 0, "nothing was sent to the primary")
        eq(b.stats()["chat"], 0, "nothing was sent to the secondary")
        gateway_clean(gw)
        r = fx.cli(["trial", "-c", path, "--candidate", "secondary", "--samples", "3", "--rps",
                    "20", "--out", bad, "--plain"], timeout=30)
        eq(r.code, 2, "trial: an unwritable --out is a usage error (%s)" % r)
        eq(b.stats()["chat"], 0, "the trial sent nothing")
        gateway_clean(gw)


@time_limit(30)
def test_the_report_name_is_taken_at_the_start_so_two_runs_never_share_it(fx):
    a, b, gw, path, out = setup(fx, db=False)
    # A drill that stops at once (a fault someone else left on) still takes its name.
    os.makedirs(out)
    day = time.strftime("%Y-%m-%d", time.gmtime())
    open(os.path.join(out, "drill-%s.json" % day), "w").write("{}")  # a stray earlier file
    http(gw.port, "POST", "/admin/faults", {"deployment": "secondary", "block_egress": True})
    r = fx.cli(["drill", "-c", path, "--out", out] + SHORT, timeout=30)
    eq(r.code, 1, "aborted (%s)" % r)
    http(gw.port, "DELETE", "/admin/faults")
    names = sorted(os.listdir(out))
    check("drill-%s-2.md" % day in names, "a name no file of the day has: %s" % names)
    eq(open(os.path.join(out, "drill-%s.json" % day)).read(), "{}", "the stray file is kept")
    contains(r.out, "report: %s/drill-%s-2.md" % (out, day), "the path printed")


@time_limit(40)
def test_a_gateway_that_dies_mid_drill_is_reported_as_not_rolled_back(fx):
    a, b, gw, path, out = setup(fx, db=False)
    p = fx.spawn(["drill", "-c", path, "--out", out, "--warmup", "1", "--duration", "30",
                  "--rps", "5", "--plain"], "drill")
    p.wait_line(r"fault on: revoke-key on primary", timeout=15)
    gw.proc.signal(signal.SIGKILL)  # the fault dies with it, but the drill cannot know that
    gw.proc.wait(5)
    time.sleep(0.3)
    t0 = time.monotonic()
    p.signal(signal.SIGINT)
    eq(p.wait(20), 1, "exit code")
    check(time.monotonic() - t0 < 15, "the rollback gave up in bounded time")
    out_text = p.stdout()
    check("(rolled back)" not in out_text,
          "the summary must not claim a rollback that failed: %s" % out_text[-600:])
    contains(out_text, "NOT ROLLED BACK", "the summary says it")
    j, md = report(out)
    eq(j["interrupted"], True, "interrupted")
    eq(j["rollback"]["ok"], False, "rollback not ok")
    check(any("fault" in x and "primary" in x for x in j["left_on"]),
          "the report lists the fault left on: %s" % j.get("left_on"))
    check(not any("was rolled back" in f for f in j["followups"]),
          "no follow-up claims a rollback: %s" % j["followups"])
    contains(md, "DELETE /admin/faults", "the report says what to do by hand")


@time_limit(40)
def test_a_gateway_gone_at_the_rollback_fails_the_drill_and_says_what_is_left(fx):
    a, b, gw, path, out = setup(fx, db=False)
    p = fx.spawn(["drill", "-c", path, "--out", out, "--warmup", "1", "--duration", "2",
                  "--rps", "5", "--recovery-wait", "5", "--plain"], "drill")
    p.wait_line(r"fault on: revoke-key on primary", timeout=15)
    gw.proc.signal(signal.SIGKILL)
    gw.proc.wait(5)
    eq(p.wait(20), 1, "exit code")
    out_text = p.stdout()
    contains(out_text, "FAILED, NOT ROLLED BACK", "summary line 1")
    contains(p.stderr(), "STILL ON at the gateway: the revoke-key fault on primary", "stderr")
    j, md = report(out)
    eq(j["passed"], False, "verdict")
    eq(len(j["left_on"]), 1, "one thing left on: %s" % j["left_on"])
    contains(j["followups"][0], "STILL ON at the gateway", "the first follow-up")
    contains(j["verify"]["note"], "not run", "no verification through a gateway that is gone")
    contains(md, "**Not rolled back.**", "markdown")


@time_limit(30)
def test_trial_puts_back_a_pin_the_candidate_already_had(fx):
    a, b, gw, path, out = setup(fx, db=False)
    eq(http(gw.port, "POST", "/admin/deployments/secondary/pin", {}).status, 200, "pinned")
    r = fx.cli(["trial", "-c", path, "--candidate", "secondary", "--samples", "3", "--rps", "20",
                "--out", out, "--plain"], timeout=30)
    eq(r.code, 0, "trial exit code (%s)" % r)
    pins = {d["id"]: d["pinned"]
            for d in http(gw.port, "GET", "/admin/deployments").json()["deployments"]}
    eq(pins, {"primary": False, "secondary": True}, "the operator's pin is still there")
    http(gw.port, "POST", "/admin/deployments/secondary/unpin", {})
    gateway_clean(gw)


@time_limit(30)
def test_trial_refuses_a_candidate_the_gateway_serves_under_another_alias(fx):
    a, b, gw, path, out = setup(fx, db=False)
    # The trial's config files the candidate under another model_name than the gateway does.
    cfg = yaml.safe_load(open(path))
    cfg["model_list"][1]["model_name"] = "app/other"
    other = fx.write_config(cfg, "other.yaml")
    r = fx.cli(["trial", "-c", other, "--candidate", "secondary", "--samples", "3", "--rps", "20",
                "--out", out, "--plain"], timeout=30)
    eq(r.code, 2, "a config that is not the gateway's is a usage error (%s)" % r)
    contains(r.err, "app/other", "the message names the two aliases")
    contains(r.err, "app/chat", "the message names the two aliases")
    eq(b.stats()["chat"], 0, "nothing was sent")
    gateway_clean(gw)


@time_limit(30)
def test_a_prompt_longer_than_8_kib_is_sent_whole(fx):
    a, b, gw, path, out = setup(fx, db=False)
    long = "word " * 4000  # 20 kB on one line
    prompts = fx.write("prompts.txt", "# one long prompt\n" + long.strip() + "\n")
    r = fx.cli(["trial", "-c", path, "--candidate", "secondary", "--samples", "4", "--rps", "20",
                "--prompts", prompts, "--out", out, "--plain"], timeout=30)
    eq(r.code, 0, "trial exit code (%s)" % r)
    j, _ = report(out, "trial")
    eq(j["measured"]["requests"], 4, "samples")
    # The last sample carried the whole line (fgets into 8 KiB cut it into three prompts).
    got = b.last()["body"]["messages"][0]["content"]
    eq(len(got), len(long.strip()), "the length of the prompt the provider got")
    eq(got, long.strip(), "the prompt the provider got")


class SwallowingProxy:
    """A loopback proxy in front of the gateway. Every connection is passed through, except one
    whose first request matches `swallow(request_line, body)`: that request goes to the gateway,
    whose whole answer is read (so the change takes effect), and then the client's connection is
    closed without a byte of it — an answer lost on the way back. close() stops every thread."""

    def __init__(self, target_port, swallow):
        self.target = target_port
        self.swallow = swallow
        self.swallowed = []
        self.stop = threading.Event()
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.srv.settimeout(0.2)
        self.port = self.srv.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.stop.set()
        self.srv.close()

    def _accept(self):
        while not self.stop.is_set():
            try:
                c, _ = self.srv.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    @staticmethod
    def _message(sock, data=b""):
        """Read one HTTP message (head + Content-Length body) from sock: (head, body, rest)."""
        while b"\r\n\r\n" not in data:
            more = sock.recv(65536)
            if not more:
                return None, None, data
            data += more
        head, body = data.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        while len(body) < length:
            more = sock.recv(65536)
            if not more:
                break
            body += more
        return head, body[:length], body[length:]

    def _serve(self, c):
        up = None
        try:
            c.settimeout(10)
            head, body, rest = self._message(c)
            if head is None:
                return
            up = socket.create_connection(("127.0.0.1", self.target), timeout=10)
            up.sendall(head + b"\r\n\r\n" + body + rest)
            line = head.split(b"\r\n", 1)[0].decode("latin-1")
            if self.swallow(line, body):
                self._message(up)  # the gateway acted and answered; the client gets nothing
                self.swallowed.append(line)
                return
            self._pipe(c, up)
        except OSError:
            pass
        finally:
            c.close()
            if up:
                up.close()

    def _pipe(self, c, up):
        peer = {c: up, up: c}
        while not self.stop.is_set():
            ready, _, _ = select.select([c, up], [], [], 0.2)
            for s in ready:
                data = s.recv(65536)
                if not data:
                    return
                peer[s].sendall(data)


def via_proxy(fx, path, proxy):
    """The drill's config, pointed at the proxy instead of the gateway."""
    cfg = yaml.safe_load(open(path))
    cfg["server"]["port"] = proxy.port
    return fx.write_config(cfg, "via-proxy.yaml")


def timeline(j):
    return "\n".join(e["event"] for e in j["timeline"])


@time_limit(40)
def test_trial_undoes_a_pin_whose_answer_was_lost(fx):
    # The pin reached the gateway, its answer did not reach the trial (three times): the trial
    # cannot know the pin is on, so it unpins — it used to stop and leave the pin in place,
    # sending every client of the alias to the candidate.
    a, b, gw, path, out = setup(fx, db=False)
    proxy = SwallowingProxy(gw.port, lambda line, body: "/admin/deployments/secondary/pin " in line)
    try:
        r = fx.cli(["trial", "-c", via_proxy(fx, path, proxy), "--candidate", "secondary",
                    "--samples", "3", "--rps", "20", "--out", out, "--plain"], timeout=40)
        eq(r.code, 1, "a trial that could not pin fails (%s)" % r)
        check(proxy.swallowed, "the pin went to the gateway and its answer was lost")
        gateway_clean(gw)
        j, md = report(out, "trial")
        contains(j["abort_reason"], "got no answer", "the abort reason")
        contains(timeline(j), "/admin/deployments/secondary/pin (try 1 of 3) got no answer",
                 "the timeline says a reply was lost")
        contains(timeline(j), "secondary unpinned", "and that the pin was undone")
        eq(j["left_on"], [], "nothing left on")
        contains(md, "may have applied it, so the rollback undoes it", "the markdown report")
    finally:
        proxy.close()


def drill_losing_an_answer(fx, what, swallow):
    """A drill through a proxy that swallows the answer to one request (`swallow`): it stops
    (exit 1), undoes what that request did, and leaves nothing on. Returns (primary mock, report
    JSON)."""
    a, b, gw, path, out = setup(fx, db=False)
    proxy = SwallowingProxy(gw.port, swallow)
    try:
        r = fx.cli(["drill", "-c", via_proxy(fx, path, proxy), "--out", out] + SHORT, timeout=40)
        eq(r.code, 1, "the drill stops (%s)" % r)
        eq(len(proxy.swallowed), 1, "%s reached the gateway and its answer was lost" % what)
        gateway_clean(gw)
        j, _ = report(out)
        eq(j["left_on"], [], "nothing left on")
        return a, j
    finally:
        proxy.close()


@time_limit(40)
def test_drill_turns_off_a_bypass_whose_answer_was_lost(fx):
    # The pre-check's bypass reached the gateway, its answer did not reach the drill: the bypass
    # may be on (it is), so the drill's rollback turns it off.
    a, j = drill_losing_an_answer(fx, "the bypass", lambda line, body: line.startswith(
        "POST /admin/bypass ") and b"true" in body)
    contains(j["precheck"]["note"], "got no answer", "the pre-check note")
    contains(timeline(j), "turning the router bypass on got no answer", "the timeline")
    contains(timeline(j), "router bypass off", "the rollback")
    eq(a.stats()["chat"], 0, "no load was sent: nothing was broken")


@time_limit(40)
def test_drill_removes_a_fault_whose_answer_was_lost(fx):
    # The fault reached the gateway, its answer did not reach the drill: the drill stops, takes
    # the fault off, and says the answer was lost rather than that the gateway refused.
    a, j = drill_losing_an_answer(fx, "the fault", lambda line, body: line.startswith(
        "POST /admin/faults ") and b'revoke_key":true' in body)
    contains(timeline(j), "putting the fault on got no answer", "the timeline")
    contains(timeline(j), "fault removed from primary", "the rollback")


@time_limit(40)
def test_trial_leaves_a_pin_an_operator_set_meanwhile(fx):
    # While the trial ran, an operator pinned another deployment of the alias (replacing the
    # candidate's pin). The trial unpins only the candidate: the gateway answers 409, and the
    # operator's pin stays — an unpin used to clear the alias's pin whoever held it.
    a, b, gw, path, out = setup(fx, db=False)
    p = fx.spawn(["trial", "-c", path, "--candidate", "secondary", "--samples", "20", "--rps",
                  "10", "--out", out, "--plain"], "trial")
    p.wait_line(r"secondary pinned for app/chat", timeout=15)
    eq(http(gw.port, "POST", "/admin/deployments/primary/pin", {}).status, 200, "operator's pin")
    p.wait(30)
    pins = {d["id"]: d["pinned"]
            for d in http(gw.port, "GET", "/admin/deployments").json()["deployments"]}
    eq(pins, {"primary": True, "secondary": False}, "the operator's pin is still there")
    j, _ = report(out, "trial")
    contains(timeline(j), "another deployment of app/chat was pinned meanwhile, and keeps its pin",
             "the timeline")
    eq(j["left_on"], [], "nothing claimed left on")
    http(gw.port, "POST", "/admin/deployments/primary/unpin", {})
    gateway_clean(gw)
