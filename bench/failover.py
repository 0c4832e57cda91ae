#!/usr/bin/env python3
"""bench/failover.py — what the router costs and what it buys, measured (not a test).

    python3 bench/failover.py [--bin build/slogate] [--only recover,hedge,overhead] [--quick]

Real `slogate serve` and `slogate mock` processes on loopback (the integration harness starts
and stops them). Three parts:

  recover   The primary breaks at t0 (hang, HTTP 500, HTTP 401 "revoked key", process killed)
            while 4 clients send 50 req/s each. Reported: time from t0 to the first answer
            from the secondary; the latency of the requests that met the fault; failed client
            requests; p50 before t0 against p50 once the primary is cooling.
  hedge     A primary with a long-tailed latency (drawn per request: 90% 30 ms, 7% 300 ms,
            3% 1500 ms; the same draws for every mode) and a steady 30 ms secondary, one client,
            hedge_after_ms off / 100 / 250: p50/p95/p99 and the extra upstream requests.
  overhead  x-slogate-overhead-us (the gateway's own time per request) p50/p99 and the client's
            p50/p99 at a moderate load (4 keep-alive clients, fast mock), router on vs
            BYPASS_ROUTER=true. (Throughput router vs bypass: `bench/run` and
            `bench/run --bypass`.)

Prints a summary and writes bench/results/failover-<UTC time>.json. Python standard library.
"""

import argparse
import json
import os
import random
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))

import harness  # noqa: E402
from harness import Conn, Fixture, MASTER_KEY, MOCK_KEY, chat_body, http  # noqa: E402


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    k = (len(xs) - 1) * p / 100.0
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def dep(mock, dep_id, order, **params):
    lp = {"model": "openai/gpt-4o-mini", "api_key": MOCK_KEY, "api_base": mock.url,
          "order": order}
    lp.update(params)
    return {"model_name": "app/chat", "litellm_params": lp, "model_info": {"id": dep_id}}


def config(deps, **router):
    cfg = {"model_list": deps, "general_settings": {"master_key": MASTER_KEY},
           "server": {"log_level": "warn"}}
    if router:
        cfg["router_settings"] = router
    return cfg


# ---- load ------------------------------------------------------------------------------------

class Load:
    """`clients` threads, each on its own keep-alive connection, one request every `period` s.
    Records (t_send, t_done, status, deployment, attempts, overhead_us) per request."""

    def __init__(self, port, clients, period, body=None):
        self.port, self.clients, self.period = port, clients, period
        self.body = body or chat_body()
        self.rows = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(clients)]

    def _run(self, i):
        conn = None
        nxt = time.monotonic() + i * self.period / self.clients
        while not self.stop.is_set():
            now = time.monotonic()
            if nxt > now:
                time.sleep(nxt - now)
            nxt += self.period
            t0 = time.monotonic()
            try:
                if conn is None:
                    conn = Conn(self.port, timeout=30)
                conn.request("POST", "/v1/chat/completions", self.body)
                r = conn.read_response()
                row = (t0, time.monotonic(), r.status, r.header("x-slogate-deployment"),
                       int(r.header("x-slogate-attempts") or 0),
                       int(r.header("x-slogate-overhead-us") or 0))
                if (r.header("connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - a failed request is a result
                row = (t0, time.monotonic(), repr(e), None, 0, 0)
                if conn:
                    conn.close()
                conn = None
            with self.lock:
                self.rows.append(row)
        if conn:
            conn.close()

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join()
        return sorted(self.rows)


# ---- recover ---------------------------------------------------------------------------------

FAULTS = {
    "hang": lambda a: a.faults(hang=True),
    "500": lambda a: a.faults(status=500),
    "401": lambda a: a.faults(status=401),
    "killed": lambda a: a.proc.p.kill(),
}


def bench_recover(bin_path, quick):
    stream_timeout = 0.5
    out = {}
    for kind, inject in FAULTS.items():
        fx = Fixture(bin_path, "bench-recover")
        try:
            a = fx.mock(name="provider-a")
            b = fx.mock(name="provider-b")
            gw = fx.gateway(config([dep(a, "primary", 1, stream_timeout=stream_timeout),
                                    dep(b, "secondary", 2, stream_timeout=stream_timeout)],
                                   allowed_fails=3, cooldown_time=60), workers=2)
            load = Load(gw.port, clients=4, period=0.02).start()
            time.sleep(1.0 if quick else 2.0)
            t0 = time.monotonic()
            inject(a)
            time.sleep(1.5 if quick else 3.0)
            rows = load.finish()
            states = http(gw.port, "GET", "/admin/deployments").json()
        finally:
            fx.close()
        before = [r for r in rows if r[1] < t0]
        after_sent = [r for r in rows if r[0] >= t0]
        failed = [r for r in rows if r[2] != 200]
        first_b = min((r[1] for r in rows if r[3] == "secondary" and r[1] >= t0), default=None)
        # Requests that met the fault: in flight at t0 or sent after it, and failed over.
        met = [r for r in rows if r[1] >= t0 and r[4] > 1]
        cooled = [r for r in after_sent if r[4] == 1 and r[3] == "secondary"]
        lat = lambda rs: [(r[1] - r[0]) * 1000 for r in rs]  # noqa: E731
        res = {
            "requests": len(rows), "failed": len(failed),
            "failed_examples": [str(r[2]) for r in failed[:3]],
            "ttr_ms": round((first_b - t0) * 1000, 1) if first_b else None,
            "met_fault": len(met),
            "met_fault_latency_ms_max": round(max(lat(met)), 1) if met else None,
            "p50_before_ms": round(pct(lat(before), 50), 3),
            "p50_cooled_ms": round(pct(lat(cooled), 50), 3),
            "p99_before_ms": round(pct(lat(before), 99), 3),
            "p99_cooled_ms": round(pct(lat(cooled), 99), 3),
            "primary_state_after": {d["id"]: d["state"] for d in states["deployments"]}["primary"],
            "stream_timeout_ms": stream_timeout * 1000,
        }
        out[kind] = res
        print("  %-7s ttr %7s ms  met-fault %2d (max %7s ms)  failed %d/%d  p50 before %.2f ms "
              "cooled %.2f ms  p99 %.2f / %.2f ms  primary %s"
              % (kind, res["ttr_ms"], res["met_fault"], res["met_fault_latency_ms_max"],
                 res["failed"], res["requests"], res["p50_before_ms"], res["p50_cooled_ms"],
                 res["p99_before_ms"], res["p99_cooled_ms"], res["primary_state_after"]),
              flush=True)
    return out


# ---- hedge -----------------------------------------------------------------------------------

def draws(n, seed=7):
    rnd = random.Random(seed)
    out = []
    for _ in range(n):
        x = rnd.random()
        out.append(30 if x < 0.90 else 300 if x < 0.97 else 1500)
    return out


def bench_hedge(bin_path, quick):
    n = 120 if quick else 300
    lat_draws = draws(n)
    out = {"primary_latency_ms": "90% 30, 7% 300, 3% 1500 (drawn per request, seed 7)",
           "secondary_latency_ms": 30, "requests": n}
    for hedge in (0, 100, 250):
        fx = Fixture(bin_path, "bench-hedge")
        try:
            a = fx.mock(name="provider-a")
            b = fx.mock(name="provider-b", latency_ms=30)
            router = {"allowed_fails": 1000}   # measure hedging, not the circuit breaker
            if hedge:
                router["hedge_after_ms"] = hedge
            gw = fx.gateway(config([dep(a, "primary", 1, stream_timeout=5),
                                    dep(b, "secondary", 2, stream_timeout=5)], **router))
            conn = Conn(gw.port, timeout=30)
            lats, by = [], {"primary": 0, "secondary": 0}
            failed = 0
            for ms in lat_draws:
                a.faults(latency_ms=ms)
                t0 = time.monotonic()
                conn.request("POST", "/v1/chat/completions", chat_body())
                r = conn.read_response()
                lats.append((time.monotonic() - t0) * 1000)
                failed += r.status != 200
                by[r.header("x-slogate-deployment")] = by.get(r.header("x-slogate-deployment"),
                                                             0) + 1
            conn.close()
            time.sleep(0.2)
            sa, sb = a.stats(), b.stats()
        finally:
            fx.close()
        key = "hedge_%s" % (hedge or "off")
        out[key] = {
            "p50_ms": round(pct(lats, 50), 1), "p95_ms": round(pct(lats, 95), 1),
            "p99_ms": round(pct(lats, 99), 1), "max_ms": round(max(lats), 1),
            "failed": failed, "answered_by": by,
            "upstream_requests": sa["chat"] + sb["chat"],
            "extra_upstream_requests": sa["chat"] + sb["chat"] - n,
            "primary_aborted": sa["aborted"],
        }
        o = out[key]
        print("  hedge %-4s p50 %6.1f  p95 %6.1f  p99 %6.1f  max %6.1f ms  upstream %d for %d "
              "requests (+%.1f%%), primary cancelled %d, answered by %s"
              % (hedge or "off", o["p50_ms"], o["p95_ms"], o["p99_ms"], o["max_ms"],
                 o["upstream_requests"], n, 100.0 * o["extra_upstream_requests"] / n,
                 o["primary_aborted"], by), flush=True)
    return out


# ---- overhead --------------------------------------------------------------------------------

def bench_overhead(bin_path, quick):
    out = {}
    secs = 3.0 if quick else 6.0
    for mode in ("router", "bypass", "router-3-deployments"):
        fx = Fixture(bin_path, "bench-overhead")
        try:
            a = fx.mock(name="provider-a")
            deps = [dep(a, "primary", 1)]
            if mode == "router-3-deployments":
                b = fx.mock(name="provider-b")
                c = fx.mock(name="provider-c")
                deps = [dep(a, "primary", 1, weight=3), dep(b, "peer", 1, weight=1),
                        dep(c, "backup", 2)]
            env = {"BYPASS_ROUTER": "true"} if mode == "bypass" else {"BYPASS_ROUTER": None}
            gw = fx.gateway(config(deps), workers=1, env=env)
            warm = Load(gw.port, clients=4, period=0.002).start()
            time.sleep(0.5)
            warm.finish()
            load = Load(gw.port, clients=4, period=0.002).start()   # ≈ 2000 req/s offered
            time.sleep(secs)
            rows = load.finish()
        finally:
            fx.close()
        ok = [r for r in rows if r[2] == 200]
        ov = [r[5] for r in ok]
        lat = [(r[1] - r[0]) * 1e6 for r in ok]
        out[mode] = {"requests": len(rows), "failed": len(rows) - len(ok),
                     "rps": round(len(rows) / secs),
                     "overhead_us_p50": round(pct(ov, 50), 1),
                     "overhead_us_p99": round(pct(ov, 99), 1),
                     "client_us_p50": round(pct(lat, 50)), "client_us_p99": round(pct(lat, 99))}
        o = out[mode]
        print("  %-21s %5d req/s  overhead p50 %5.1f us  p99 %6.1f us  client p50 %5d us  "
              "p99 %6d us  failed %d" % (mode, o["rps"], o["overhead_us_p50"],
                                         o["overhead_us_p99"], o["client_us_p50"],
                                         o["client_us_p99"], o["failed"]), flush=True)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("SLOGATE_BIN", "build/slogate"))
    ap.add_argument("--only", default="recover,hedge,overhead")
    ap.add_argument("--quick", action="store_true", help="shorter phases (a smoke run)")
    args = ap.parse_args()
    bin_path = os.path.abspath(args.bin)
    harness.BIN = bin_path
    if not os.path.exists(bin_path):
        sys.exit("bench/failover.py: no binary at %s (scripts/build first)" % bin_path)
    parts = args.only.split(",")
    res = {"bench": "failover", "cores": os.cpu_count(), "bin": args.bin, "quick": args.quick}
    t_start = time.monotonic()
    if "recover" in parts:
        print("time to recover (primary breaks at t0; 4 clients x 50 req/s; stream_timeout "
              "500 ms; allowed_fails 3; 2 workers)", flush=True)
        res["recover"] = bench_recover(bin_path, args.quick)
    if "hedge" in parts:
        print("hedging (one client; long-tailed primary, 30 ms secondary)", flush=True)
        res["hedge"] = bench_hedge(bin_path, args.quick)
    if "overhead" in parts:
        print("router overhead (4 keep-alive clients, ~2000 req/s offered, fast mock, 1 worker)",
              flush=True)
        res["overhead"] = bench_overhead(bin_path, args.quick)
    res["took_s"] = round(time.monotonic() - t_start, 1)
    os.makedirs(os.path.join(REPO, "bench", "results"), exist_ok=True)
    path = os.path.join(REPO, "bench", "results",
                        "failover-%s.json" % time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
    with open(path, "w") as f:
        json.dump(res, f, indent=1)
    print("wrote %s (%.0f s)" % (os.path.relpath(path, REPO), res["took_s"]))


if __name__ == "__main__":
    main()
