"""The chaos soak (tests/soak/run): a gateway in front of two `slogate mock` providers, a mixed
client load, and a seeded chaos loop (provider faults, the database going away, reloads,
SIGKILLs and graceful restarts on the same store and spool) for M minutes; then the invariants.

Lifetimes and segments. Each start of the gateway is a lifetime (0, 1, ...). Before a lifetime is
ended (SIGKILL or SIGTERM) the load pauses, nothing is in flight, and /metrics is read: a
checkpoint. A request remembers the lifetime and the segment (checkpoints so far) it was sent in,
so a checkpoint's counters can be compared with the rows of exactly the requests it counted.
"""

import ctypes
import datetime
import json
import os
import shutil
import signal
import sqlite3
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import harness  # noqa: E402
from harness import MOCK_KEY, MASTER_KEY, http  # noqa: E402
from pg import Postgres  # noqa: E402
from test_consistency import parse_prom  # noqa: E402

import chaos  # noqa: E402
from load import (ANSWERED, CUT, LEFT, PRICE_IN, PRICE_OUT, UNANSWERED, UNTAGGED,  # noqa: E402
                  Load)

MiB = 1024 * 1024


class State:
    """What a client reads when it sends: the gateway's lifetime and the checkpoint segment."""
    life = 0
    seg = 0


class Kill:
    """The end of a gateway lifetime under load: a SIGKILL, or a graceful restart (SIGTERM)."""

    def __init__(self, life, t_kill, graceful):
        self.life, self.t_kill, self.t_ready = life, t_kill, None
        self.t_gone = None  # the process had exited: the next lifetime's rows start after it
        self.graceful = graceful


class Soak:
    def __init__(self, args):
        self.args = args
        self.fx = harness.Fixture(args.bin, "soak")
        self.state = State()
        self.t0 = time.time()
        self.timeline = []
        self.kills = []
        self.checkpoints = []
        self.problems = []          # things that went wrong during the run, beside the invariants
        self.rss = []               # (life, seconds since its start, bytes)
        self.life_start = {}        # life -> wall time its banner came
        self.cpu = {}               # process name -> CPU seconds, read before it ended
        self.end_store = {}         # slogate_store_* at the end, by name without the prefix
        self.variant = 0
        self.pg = None
        self.gw = None
        self.load = None
        self.pending = {}           # undo key -> (due, fn)
        self.acted = {}             # chaos action kind -> times done

    # ---- output ---------------------------------------------------------------------------

    def say(self, msg):
        line = "[%6.1fs] %s" % (time.time() - self.t0, msg)
        self.timeline.append(line)
        if self.args.verbose:
            print(line, flush=True)

    def problem(self, msg):
        self.say("PROBLEM " + msg)
        self.problems.append(msg)

    # ---- setup ----------------------------------------------------------------------------

    def setup(self):
        fx = self.fx
        self.a = fx.mock("provider-a", args=["--seed", str(self.args.seed)])
        self.b = fx.mock("provider-b", args=["--seed", str(self.args.seed + 1)])
        if self.args.store == "postgres":
            self.pg = Postgres(fx)
            self.db_url = self.pg.createdb("slogate")
        else:
            self.db_path = fx.path("soak.db")
            self.db_url = "sqlite://" + self.db_path
        self.reqlog_path = fx.path("requests.jsonl")
        self.gw = self.start_gateway(port=None)

    def dep(self, dep_id, alias, mock, order, model="openai/gpt-4o-mini", **extra):
        anthropic = model.startswith("anthropic/")
        lp = {"model": model, "api_key": MOCK_KEY,
              "api_base": "http://127.0.0.1:%d" % mock.port if anthropic else mock.url,
              "order": order, "stream_timeout": 1, "timeout": 4,
              "input_cost_per_token": PRICE_IN, "output_cost_per_token": PRICE_OUT}
        lp.update(extra)
        return {"model_name": alias, "litellm_params": lp, "model_info": {"id": dep_id}}

    def config(self, variant):
        """The gateway's config; a reload moves between VARIANTS of its routing (deployments
        added and removed, tiers swapped, strategies, hedging) — never its prices."""
        a, b = self.a, self.b
        rs = {"num_retries": 1, "allowed_fails": 3, "cooldown_time": 2, "timeout": 10,
              "fallbacks": [{"app/chat": ["app/lite"]}]}
        chat = [self.dep("primary", "app/chat", a, 1), self.dep("secondary", "app/chat", b, 2)]
        if variant == 1:
            chat[1]["litellm_params"]["weight"] = 3
            chat.append(self.dep("secondary-2", "app/chat", b, 2, weight=1))
            rs.update(cooldown_time=1, allowed_fails=2, num_retries=2)
        elif variant == 2:
            chat = [self.dep("primary", "app/chat", a, 2), self.dep("secondary", "app/chat", b, 1)]
            rs["routing_strategy"] = "least-busy"
        elif variant == 3:
            rs.update(hedge_after_ms=400, routing_strategy="latency-based-routing")
        claude = "anthropic/claude-3-5-haiku-latest"
        model_list = chat + [self.dep("claude-a", "app/claude", a, 1, claude),
                             self.dep("claude-b", "app/claude", b, 2, claude),
                             self.dep("lite", "app/lite", b, 1)]
        return {"model_list": model_list, "router_settings": rs,
                "general_settings": {"master_key": MASTER_KEY, "database_url": self.db_url},
                "telemetry": {"request_log": self.reqlog_path},
                "server": {"drain_timeout_s": 10}}

    def start_gateway(self, port):
        life = self.state.life
        args = ["--port", str(port)] if port else []
        gw = self.fx.gateway(self.config(self.variant), workers=self.args.workers, args=args,
                             name="gateway-%d" % life)
        self.life_start[life] = time.time()
        self.say("gateway lifetime %d: pid %d, port %d, config variant %d"
                 % (life, gw.proc.pid, gw.port, self.variant))
        return gw

    # ---- measurements -----------------------------------------------------------------------

    def proc_cpu(self, name, pid):
        """Add the CPU seconds /proc says `pid` used (its threads included) to `name`."""
        try:
            with open("/proc/%d/stat" % pid) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            secs = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            return
        self.cpu[name] = self.cpu.get(name, 0.0) + secs

    def sample_rss(self):
        try:
            with open("/proc/%d/status" % self.gw.proc.pid) as f:
                for ln in f:
                    if ln.startswith("VmRSS:"):
                        life = self.state.life
                        self.rss.append((life, time.time() - self.life_start[life],
                                         int(ln.split()[1]) * 1024))
                        return self.rss[-1][2]
        except OSError:
            pass
        return None

    def metrics(self):
        r = http(self.gw.port, "GET", "/metrics", timeout=10)
        if r.status != 200:
            raise harness.TestFailure("GET /metrics: %d %s" % (r.status, r.text[:200]))
        return parse_prom(r.text)

    def checkpoint(self, what):
        """The load is paused: wait until nothing is in flight, read the counters."""
        deadline = time.monotonic() + 20
        while True:
            p = self.metrics()
            in_flight = sum(v for _, v in p.get("slogate_requests_in_flight", []))
            if in_flight == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        if in_flight:
            self.problem("%s: slogate_requests_in_flight still %d 20 s after the clients stopped"
                         % (what, in_flight))
        by_class = {}
        for labels, v in p.get("slogate_requests_total", []):
            by_class[labels["status_class"]] = by_class.get(labels["status_class"], 0) + v
        cp = {"what": what, "life": self.state.life, "seg": self.state.seg, "t": time.time(),
              "requests": sum(by_class.values()),
              "by_class": {k: int(v) for k, v in by_class.items() if v},
              "failures": sum(v for _, v in p.get("slogate_request_failures_total", [])),
              "cost": sum(v for _, v in p.get("slogate_cost_usd_total", [])),
              "in_flight": in_flight}
        self.checkpoints.append(cp)
        self.say("checkpoint %s: lifetime %d, %d requests counted" % (what, cp["life"],
                                                                      cp["requests"]))
        self.state.seg += 1
        return cp

    # ---- chaos actions ------------------------------------------------------------------------

    def mocks(self, which):
        return {"a": [self.a], "b": [self.b], "both": [self.a, self.b]}[which]

    def do(self, act):
        p = act.params
        self.acted[act.kind] = self.acted.get(act.kind, 0) + 1
        if act.kind == "fault":
            for m in self.mocks(p["mock"]):
                m.clear_faults()
                m.faults(**p["faults"])
                self.defer(("fault", m.name), p["for_s"], m.clear_faults)
            self.say("fault %s on %s for %ss" % (p["name"], p["mock"], p["for_s"]))
        elif act.kind == "pg-down":
            if ("store",) in self.pending:
                return
            self.pg.stop(mode=p["mode"])
            self.defer(("store",), p["for_s"], self.pg.start)
            self.say("postgres stopped (%s) for %ss" % (p["mode"], p["for_s"]))
        elif act.kind == "sqlite-lock":
            if ("store",) in self.pending or not os.path.exists(self.db_path):
                return
            con = sqlite3.connect(self.db_path, timeout=5, isolation_level=None)
            con.execute("BEGIN EXCLUSIVE")

            def unlock():
                con.execute("ROLLBACK")
                con.close()
            self.defer(("store",), p["for_s"], unlock)
            self.say("sqlite locked by another process for %ss" % p["for_s"])
        elif act.kind == "reload":
            self.reload(p["variant"])
        elif act.kind in ("kill", "restart"):
            self.end_lifetime(p["after_s"], graceful=act.kind == "restart")

    def defer(self, key, after_s, fn):
        self.pending[key] = (time.monotonic() + after_s, fn)

    def run_due(self, everything=False):
        now = time.monotonic()
        for key, (due, fn) in sorted(self.pending.items(), key=lambda kv: kv[1][0]):
            if everything or due <= now:
                del self.pending[key]
                fn()
                self.say("undone: %s" % (key,))

    def reload(self, variant):
        self.variant = variant
        cfg = self.config(variant)
        self.fx.write_config(cfg, os.path.basename(self.gw.config_path))
        self.gw.proc.signal(signal.SIGHUP)
        want = sorted(d["model_info"]["id"] for d in cfg["model_list"])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            r = http(self.gw.port, "GET", "/admin/deployments", timeout=10)
            got = sorted(d["id"] for d in r.json()["deployments"]) if r.status == 200 else None
            orders = {d["id"]: d.get("order") for d in r.json()["deployments"]} \
                if r.status == 200 else {}
            want_orders = {d["model_info"]["id"]: d["litellm_params"]["order"]
                           for d in cfg["model_list"]}
            if got == want and all(orders.get(k) in (None, v) for k, v in want_orders.items()):
                self.say("reloaded (SIGHUP): config variant %d" % variant)
                return
            time.sleep(0.1)
        self.problem("SIGHUP reload to config variant %d not applied within 10 s "
                     "(/admin/deployments lists %s)" % (variant, got))

    def end_lifetime(self, after_s, graceful):
        """A SIGKILL, or a SIGTERM (the drain answers what is in flight), `after_s` after a
        checkpoint, under load; then a new lifetime on the same port, store and spool."""
        if not self.load.pause(30):
            self.problem("before ending lifetime %d: clients still waiting 30 s after the pause"
                         % self.state.life)
        self.checkpoint("before %s of lifetime %d" % ("SIGTERM" if graceful else "SIGKILL",
                                                     self.state.life))
        self.load.resume()
        time.sleep(after_s)
        k = Kill(self.state.life, time.time(), graceful)
        self.proc_cpu("gateway", self.gw.proc.pid)
        self.gw.proc.signal(signal.SIGTERM if graceful else signal.SIGKILL)
        try:
            code = self.gw.proc.wait(30)
        except harness.TestFailure:
            code = "still running 30 s later"
        if graceful and code != 0:
            self.problem("lifetime %d: exit %s after SIGTERM under load (want 0)"
                         % (k.life, code))
        k.t_gone = time.time()
        self.kills.append(k)
        self.say("%s lifetime %d (%.2fs after its checkpoint, under load)"
                 % ("SIGTERM (graceful restart)" if graceful else "SIGKILL", k.life, after_s))
        self.state.life += 1
        self.gw = self.start_gateway(port=self.gw.port)
        k.t_ready = time.time()

    # ---- the run -------------------------------------------------------------------------------

    def run(self):
        args = self.args
        duration = args.minutes * 60.0
        actions = chaos.plan(args.seed, duration, args.store, kills=args.kills,
                             restarts=args.restarts)
        self.say("plan: %d actions, seed %d, %s store, %.1f min"
                 % (len(actions), args.seed, args.store, args.minutes))
        self.setup()
        self.load = Load(self.gw.port, args.seed, args.clients, self.state)
        self.load.start()
        t_start = time.monotonic()
        i = 0
        last_rss = 0.0
        while True:
            now = time.monotonic() - t_start
            if now >= duration:
                break
            self.run_due()
            if i < len(actions) and now >= actions[i].t:
                self.do(actions[i])
                i += 1
            if time.monotonic() - last_rss >= 1.0:
                rss = self.sample_rss()
                last_rss = time.monotonic()
                if rss and len(self.rss) % 30 == 0:
                    self.say("RSS %.1f MiB" % (rss / MiB))
            if not self.gw.proc.alive():
                self.problem("the gateway (lifetime %d) died: exit %s"
                             % (self.state.life, self.gw.proc.p.returncode))
                break
            if self.load.crashed:
                break
            time.sleep(0.05)
        self.finish()

    def finish(self):
        self.run_due(everything=True)
        if self.gw.proc.alive():
            time.sleep(3)  # a few seconds of clean load: the cooldowns end, the store catches up
            if not self.load.pause(30):
                self.problem("at the end: clients still waiting 30 s after the pause")
            self.sample_rss()
            self.checkpoint("end")
            self.store_caught_up()
            self.rows = self.read_rows()  # at once: the store says every event is written
            p = self.metrics()
            self.end_store = {k[len("slogate_store_"):]: sum(v for _, v in p.get(k, []))
                              for k in p if k.startswith("slogate_store_")}
            self.end_rss = self.sample_rss()
            self.ready = readiness(self.gw)
        else:
            self.rows = self.read_rows()
        self.reqs = self.load.stop()
        self.stop_processes()
        self.logged, self.log_unreadable = self.read_request_log()

    def store_caught_up(self):
        deadline = time.monotonic() + 60
        st = None
        while time.monotonic() < deadline:
            st = readiness(self.gw)[1].get("store", {})
            if st.get("status") == "ok" and st.get("queued") == 0 and \
                    st.get("spool_events") == 0:
                return
            time.sleep(0.2)
        self.problem("the store did not catch up within 60 s of the end: %s" % st)

    def stop_processes(self):
        """SIGTERM the gateway (its exit code and LeakSanitizer's report at exit), then the rest."""
        gw = self.gw.proc
        if gw.alive():
            self.proc_cpu("gateway", gw.pid)
            gw.signal(signal.SIGTERM)
            try:
                self.gw_exit = gw.wait(30)
            except harness.TestFailure:
                self.gw_exit = "still running 30 s after SIGTERM"
        for m in (self.a, self.b):
            self.proc_cpu("mocks", m.proc.pid)
        self.fx.stop_all()

    # ---- rows ------------------------------------------------------------------------------------

    def read_request_log(self):
        """({request_id: lines}, unreadable lines) over the request log and its rotated files."""
        logged, bad = {}, 0
        paths = [self.reqlog_path] + ["%s.%d" % (self.reqlog_path, i) for i in range(1, 6)]
        for path in (p for p in paths if os.path.exists(p)):
            with open(path, "rb") as f:
                for line in f:
                    try:
                        rid = json.loads(line)["request_id"]
                    except (ValueError, KeyError, TypeError):
                        bad += 1
                        continue
                    logged[rid] = logged.get(rid, 0) + 1
        return logged, bad

    def read_rows(self):
        """[Row] of every request in the store."""
        cols = ["request_id", "coalesce(feature, '')", "status", "coalesce(error_type, '')",
                "cost_usd", "input_tokens", "output_tokens", "usage_estimated", "stream",
                "coalesce(deployment, '')"]
        if self.pg:
            sql = "SELECT %s, extract(epoch FROM start_time) FROM slogate_requests" % \
                ", ".join(cols)
            out = []
            text = self.pg.query(sql, "slogate")
            for line in text.split("\n") if text else []:
                v = line.split("|")
                out.append(Row(v[0], v[1], int(v[2]), v[3], float(v[4]), int(v[5]), int(v[6]),
                               v[7] == "t", v[8] == "t", v[9], float(v[10])))
            return out
        con = sqlite3.connect("file:%s?mode=ro" % self.db_path, uri=True, timeout=10)
        try:
            rows = con.execute("SELECT %s, start_time FROM slogate_requests"
                               % ", ".join(cols)).fetchall()
        finally:
            con.close()
        return [Row(*(list(r[:7]) + [bool(r[7]), bool(r[8]), r[9],
                                     datetime.datetime.fromisoformat(
                                         r[10].replace("Z", "+00:00")).timestamp()]))
                for r in rows]


class Row:
    __slots__ = ("rid", "feature", "status", "error", "cost", "input", "output", "estimated",
                 "stream", "deployment", "start")

    def __init__(self, *v):
        for k, x in zip(self.__slots__, v):
            setattr(self, k, x)

    def __repr__(self):
        return "row %s %s status %d %s cost %.8f%s" % (self.rid, self.feature or "(no feature)",
                                                     self.status, self.error or "ok", self.cost,
                                                     " estimated" if self.estimated else "")


def readiness(gw):
    r = http(gw.port, "GET", "/health/readiness", key=None, timeout=10)
    try:
        return r.status, r.json()
    except harness.TestFailure:
        return r.status, {"body": r.text[:200]}


# ---- the invariants ------------------------------------------------------------------------------

class Verdicts:
    def __init__(self):
        self.items = []

    def add(self, ok, name, details=()):
        self.items.append((bool(ok), name, list(details)))

    def failed(self):
        return sum(1 for ok, _, _ in self.items if not ok)


def fmt_list(items, n=8):
    items = list(items)
    out = ["    " + str(x) for x in items[:n]]
    if len(items) > n:
        out.append("    ... and %d more" % (len(items) - n))
    return out


def evaluate(s):
    """The invariants over what the clients saw, the rows, the checkpoints and the processes."""
    v = Verdicts()
    reqs, rows = s.reqs, s.rows
    eps = 0.05

    def cut_by_kill(q):
        """The end of a lifetime in whose reach this request was: sent while the gateway was
        stopping or down, or — for a SIGKILL — in flight when it came (a SIGTERM's drain answers
        those)."""
        for k in s.kills:
            if not k.graceful and q.t0 <= k.t_kill + eps and q.t1 >= k.t_kill - eps:
                return k
            if k.t_ready and k.t_kill - eps <= q.t0 <= k.t_ready + eps:
                return k
        return None

    by_rid = {r.rid: r for r in rows}
    by_tag = {}
    for r in rows:
        if r.feature.startswith("soak-"):
            by_tag.setdefault(r.feature, []).append(r)
    found = {}
    used = set()
    for q in reqs:
        mine = {r.rid: r for r in by_tag.get(q.tag, [])}
        if q.rid and q.rid in by_rid:
            mine[q.rid] = by_rid[q.rid]
        found[q.seq] = list(mine.values())
        used.update(mine)

    # 0. Every request outside the reach of a lifetime's end got its whole answer.
    bad = [q for q in reqs if q.outcome in (CUT, UNANSWERED) and not cut_by_kill(q)]
    v.add(not bad, "every request outside the reach of a SIGKILL or a restart was answered whole "
          "(%d requests; %d cut or not answered by them, counted apart)"
          % (len(reqs), sum(1 for q in reqs if q.outcome in (CUT, UNANSWERED) and cut_by_kill(q))),
          fmt_list(bad))

    # 1. Every answered request (an x-request-id seen) and every client that hung up: one row —
    # a SIGKILL's too: what the writer held in memory is in the crash journal, and the next
    # start writes it (docs/internals/store.md, The crash journal). A client that hung up on a
    # request a kill or a restart cut may have no row: the gateway may not have seen it leave.
    answered = [q for q in reqs if q.outcome == ANSWERED]
    left = [q for q in reqs if q.outcome == LEFT]
    lost = [q for q in answered + left if not found[q.seq] and
            not (q.outcome == LEFT and cut_by_kill(q))]

    def when(q):
        k = next((k for k in s.kills if k.life == q.life), None)
        return "%r, %s" % (q, "%.3f s before the %s of its lifetime" % (
            k.t_kill - q.t1, "SIGTERM" if k.graceful else "SIGKILL") if k else
            "in the last lifetime")
    v.add(not lost, "every answered request has its row, every client that hung up too "
          "(%d answered, %d hung up; %d rows missing)" % (len(answered), len(left), len(lost)),
          [when(q) for q in lost[:12]] + (["... and %d more" % (len(lost) - 12)]
                                          if len(lost) > 12 else []))

    # 2. No duplicates: one row per request, one request per x-request-id, and no row that no
    # request made (except those of requests a SIGKILL or a restart cut: listed).
    dups = [(q, found[q.seq]) for q in reqs if len(found[q.seq]) > 1]
    rids = [q.rid for q in reqs if q.rid]
    shared = sorted(set(x for x in rids if rids.count(x) > 1)) if len(set(rids)) != len(rids) \
        else []
    orphans = [r for rid, r in by_rid.items() if rid not in used]
    cut_reqs = [q for q in reqs if q.outcome in (CUT, UNANSWERED) and cut_by_kill(q)]
    cut_rows = [(q, found[q.seq][0]) for q in cut_reqs if found[q.seq]]
    # A wrong key's row and the HTTP layer's refusals carry no tag: one a SIGKILL cut before its
    # id reached the client has nothing to be matched by but the time.
    blind = [q for q in cut_reqs if q.kind in UNTAGGED and not q.rid]
    orphans_near_kill = [r for r in orphans if not r.feature and any(
        k.t_kill - 35 <= r.start <= k.t_kill for k in s.kills)]
    stray = [r for r in orphans if r not in orphans_near_kill] if \
        len(orphans_near_kill) <= len(blind) else orphans
    v.add(not dups and not shared and not stray and len(rows) == len(by_rid),
          "no duplicate: one row per request, one request per x-request-id, no row without a "
          "request (%d rows)" % len(rows),
          ["two rows for %r: %s" % (q, rs) for q, rs in dups[:8]] +
          ["x-request-id %s given to two requests" % x for x in shared[:8]] +
          ["a row no request made: %r" % r for r in stray[:8]])
    v.add(True, "rows whose answer a SIGKILL or a restart cut: %d (of %d requests they cut)"
          % (len(cut_rows) + len(orphans_near_kill), len(cut_reqs)),
          fmt_list(["%r -> %r" % qr for qr in cut_rows] +
                   ["%r (no tag, no id seen)" % r for r in orphans_near_kill]))

    # 3. Spend: what the clients were shown equals what the store holds for those rows.
    client_sum = store_sum = 0.0
    n_visible = 0
    mismatched = []
    hidden = []
    for q in answered:
        if len(found[q.seq]) != 1:
            continue
        r = found[q.seq][0]
        if q.stream and q.status == 200:
            if q.usage is None:
                hidden.append(r)
                continue
            shown = q.usage[0] * PRICE_IN + q.usage[1] * PRICE_OUT
            same = abs(shown - r.cost) <= 1e-9 * max(shown, r.cost) + 1e-15
        elif q.cost is not None:
            shown = float(q.cost)
            same = q.cost == "%.8f" % r.cost
        else:  # no x-slogate-cost-usd (the HTTP layer's refusals): nothing shown, nothing owed
            shown = 0.0
            same = r.cost == 0
        n_visible += 1
        client_sum += shown
        store_sum += r.cost
        if not same:
            mismatched.append("%r: the client was shown %.8f, the row holds %.10f (%r)"
                              % (q, shown, r.cost, r))
    v.add(not mismatched and abs(client_sum - store_sum) <= n_visible * 5e-9 + 1e-12,
          "spend: the clients were shown %.8f USD over %d answers, the store holds %.8f for "
          "their rows (%d streams showed no usage: cut, or not asked for; their rows hold %.8f)"
          % (client_sum, n_visible, store_sum, len(hidden), sum(r.cost for r in hidden)),
          mismatched[:8])

    # 4. /metrics of each lifetime equals its rows: those whose request reached that process
    # before its checkpoint. A row's start time says which process that was (they never overlap:
    # the next starts once the last has exited), where the lifetime a client read when it sent
    # may be an earlier one: it can connect only once the next process listens.
    lines = []
    ok = True
    gone = {k.life: k.t_gone for k in s.kills}
    for cp in s.checkpoints:
        since = gone.get(cp["life"] - 1, 0.0)
        mine = [r for r in rows if since < r.start <= cp["t"]]
        by_class = {}
        for r in mine:
            c = "%dxx" % min(max(r.status // 100, 2), 5)
            by_class[c] = by_class.get(c, 0) + 1
        fails = sum(1 for r in mine if r.error)
        cost = sum(r.cost for r in mine)
        good = (cp["requests"] == len(mine) and cp["by_class"] == by_class and
                cp["failures"] == fails and abs(cp["cost"] - cost) <= 1e-9 * max(cost, 1e-9))
        ok = ok and good
        lines.append("%s %s: /metrics %d requests %s, %d failures, %.8f USD; rows %d %s, %d "
                     "failures, %.8f USD" % ("ok  " if good else "DIFF", cp["what"],
                                             cp["requests"], cp["by_class"], cp["failures"],
                                             cp["cost"], len(mine), by_class, fails, cost))
    v.add(ok and s.checkpoints, "/metrics counters equal the rows of each gateway lifetime "
          "(%d checkpoints)" % len(s.checkpoints), lines)

    # 5. No sanitizer report, no crash, a clean exit at the end.
    reports = s.fx.problems()
    v.add(not reports and getattr(s, "gw_exit", None) == 0,
          "no sanitizer report, no crash; the gateway exits 0 on SIGTERM at the end (exit %s)"
          % getattr(s, "gw_exit", None), reports)

    # 6. Memory: the last lifetime's RSS at the end against its RSS after warm-up.
    last = s.state.life
    samples = [(t, b) for life, t, b in s.rss if life == last]
    warm = next((b for t, b in samples if t >= s.args.warmup_s), None)
    end = getattr(s, "end_rss", None)
    if warm and end:
        bound = warm * (1 + s.args.rss_growth) + s.args.rss_slack_mib * MiB
        v.add(end <= bound, "RSS: %.1f MiB at the end, %.1f MiB after warm-up (%.0f s into "
              "lifetime %d); bound %.1f MiB (+%d%% +%d MiB)"
              % (end / MiB, warm / MiB, s.args.warmup_s, last, bound / MiB,
                 s.args.rss_growth * 100, s.args.rss_slack_mib),
              ["peak %.1f MiB" % (max(b for _, b in samples) / MiB)])
    else:
        v.add(False, "RSS: no sample after warm-up in the last lifetime (it lasted %.0f s)"
              % (samples[-1][0] if samples else 0))

    # 7. Ready at the end.
    st, body = getattr(s, "ready", (0, {}))
    store = body.get("store", {}) if isinstance(body, dict) else {}
    v.add(st == 200 and body.get("status") == "healthy" and store.get("status") == "ok",
          "/health/readiness at the end: %d %s, store %s" % (st, body.get("status"),
                                                              store.get("status")),
          [json.dumps(body)[:400]] if st != 200 else [])

    es = s.end_store
    v.add(es and es.get("events_lost_total") == 0 and es.get("queue_depth") == 0 and
          es.get("spool_events") == 0, "the store at the end (last lifetime): %d events lost, "
          "%d queued, %d spooled; %d rows written, %d duplicates absorbed, %d queue overflows, %d "
          "failed writes" % tuple(es.get(k, -1) for k in (
              "events_lost_total", "queue_depth", "spool_events", "rows_written_total",
              "duplicate_rows_total", "queue_overflows_total", "write_failures_total")))

    # 8. The request log: a line for every row, a SIGKILL's recovered events too. One line each
    # but for a kill inside the log's own write (it cannot mark what it had written): counted.
    unlogged = [r for r in rows if r.rid not in s.logged]
    twice = [rid for rid, n in s.logged.items() if n > 1]
    v.add(not unlogged, "the request log has a line for every row (%d lines; %d rows logged "
          "twice, %d lines without a row, %d unreadable)"
          % (sum(s.logged.values()), len(twice), len(set(s.logged) - set(by_rid)),
             s.log_unreadable), ["no line for %r" % r for r in unlogged[:8]])

    v.add(not s.problems and not s.load.crashed, "the run itself: no stuck request, every "
          "reload applied, the soak's clients ran", s.problems + s.load.crashed)
    return v


def summary(s):
    out = []
    reqs = s.reqs
    wall = time.time() - s.t0
    out.append("load: %d requests in %.0f s (%.0f/s), %d clients, %d gateway lifetimes, %d rows"
               % (len(reqs), wall, len(reqs) / max(wall, 1), s.args.clients,
                  s.state.life + 1, len(s.rows)))
    kinds = {}
    for q in reqs:
        d = kinds.setdefault(q.kind, {})
        key = q.outcome if q.outcome != ANSWERED else str(q.status)
        d[key] = d.get(key, 0) + 1
    for k in sorted(kinds):
        out.append("  %-20s %s" % (k, " ".join("%s:%d" % kv for kv in sorted(kinds[k].items()))))
    out.append("chaos: " + ", ".join("%s %d" % kv for kv in sorted(s.acted.items())))
    return out


def own_cost(s):
    import resource
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ("cost: %.0f s wall; CPU: the soak's clients and chaos %.1f s, gateway %.1f s, mocks "
            "%.1f s, all children %.1f s; the soak's own peak RSS %.0f MiB"
            % (time.time() - s.t0, me.ru_utime + me.ru_stime, s.cpu.get("gateway", 0),
               s.cpu.get("mocks", 0), kids.ru_utime + kids.ru_stime, me.ru_maxrss / 1024))


def set_pdeathsig():
    """Be told (SIGTERM) when the supervisor dies, so this process cleans up after itself."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def main(args):
    """The soak in this process; 0 when every invariant held."""
    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, on_term)
    # Under ASan: leaks reported at the gateway's exit, and a quarantine of freed memory small
    # enough that RSS says something (the default holds up to 256 MiB of freed blocks, which
    # the RSS check would read as growth); set ASAN_OPTIONS to choose otherwise.
    env = os.environ
    for opt in ("detect_leaks=1", "quarantine_size_mb=16"):
        if opt.split("=")[0] not in env.get("ASAN_OPTIONS", ""):
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":" + opt).lstrip(":")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    s = Soak(args)
    print("soak: %s, %s store, %.1f min, seed %d, files in %s"
          % (args.bin, args.store, args.minutes, args.seed, s.fx.dir), flush=True)
    failed = 1
    try:
        s.run()
        v = evaluate(s)
        for line in summary(s):
            print(line)
        for ok, name, details in v.items:
            print("%s %s" % ("PASS" if ok else "FAIL", name))
            shown = not ok or args.verbose or name.startswith(("rows whose", "KNOWN"))
            for d in details if shown else []:
                print("    " + str(d).lstrip())
        failed = v.failed()
        print(own_cost(s))
        print("soak: %d passed, %d failed" % (len(v.items) - failed, failed), flush=True)
    except KeyboardInterrupt:
        print("soak: interrupted; stopping everything it started", flush=True)
        failed = 130
    except Exception as e:
        import traceback
        traceback.print_exc()
        print("soak: the soak itself failed: %r" % (e,), flush=True)
        print(s.fx.diagnostics())
    finally:
        if s.load:
            s.load.stopping.set()
            s.load.running.set()
        s.fx.stop_all()
        keep = args.keep or (failed and failed != 130)
        if keep:
            with open(os.path.join(s.fx.dir, "timeline.txt"), "w") as f:
                f.write("\n".join(s.timeline) + "\n")
            print("soak: files kept in %s (timeline.txt, process stderr)" % s.fx.dir)
        else:
            shutil.rmtree(s.fx.dir, ignore_errors=True)
    if failed == 130:
        return 130
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit("run tests/soak/run")
