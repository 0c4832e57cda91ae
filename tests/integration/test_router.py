"""The router, end to end: two and three `slogate mock` providers whose faults are switched while
the gateway runs. Each test asserts what the client sees (status, body, x-slogate-* headers,
Retry-After) and what each provider counted (`/_mock/stats`), and reads the router's view of
health through `GET /admin/deployments`.

DESIGN §7 is the specification; docs/routing.md describes the behaviour these tests pin down.
Waits are on observable conditions (wait_until), never fixed sleeps; timing bounds are generous
(the suite also runs under ASan on a 2-core machine next to other suites).
"""

import json
import os
import signal
import threading
import time

from harness import (Conn, MASTER_KEY, MOCK_KEY, chat, chat_body, check, contains, eq, http,
                     time_limit, wait_until)


# ---- helpers ---------------------------------------------------------------------------------

def dep(alias, mock, dep_id, order=1, model="openai/gpt-4o-mini", **params):
    """One model_list entry for `mock` (a Mock) as deployment `dep_id` of `alias`."""
    lp = {"model": model, "api_key": MOCK_KEY, "api_base": mock.url, "order": order,
          "stream_timeout": 2}
    lp.update(params)
    return {"model_name": alias, "litellm_params": lp, "model_info": {"id": dep_id}}


def config(deps, **router):
    cfg = {"model_list": list(deps), "general_settings": {"master_key": MASTER_KEY}}
    if router:
        cfg["router_settings"] = router
    return cfg


def two(fx, workers=1, env=None, a_args=None, b_args=None, dep_params=None, **router):
    """Mocks provider-a (deployment `primary`, order 1) and provider-b (`secondary`, order 2)
    behind one gateway."""
    a = fx.mock(name="provider-a", **(a_args or {}))
    b = fx.mock(name="provider-b", **(b_args or {}))
    dp = dep_params or {}
    gw = fx.gateway(config([dep("app/chat", a, "primary", 1, **dp),
                            dep("app/chat", b, "secondary", 2, **dp)], **router),
                    workers=workers, env=env)
    return a, b, gw


def admin(gw, method, path, body=None, key=MASTER_KEY, want=200):
    r = http(gw.port, method, path, body, key=key)
    if want is not None:
        eq(r.status, want, "%s %s (%s)" % (method, path, r.text))
    return r


def deployments(gw):
    """GET /admin/deployments as {id: entry}."""
    j = admin(gw, "GET", "/admin/deployments").json()
    return {d["id"]: d for d in j["deployments"]}


def state(gw, dep_id):
    return deployments(gw)[dep_id]["state"]


def who(r):
    return r.header("x-slogate-deployment")


def hdr_int(r, name):
    v = r.header(name)
    check(v is not None, "answer lacks %s: %r" % (name, r.headers))
    return int(v)


def answered(r, dep_id, status=200, attempts=None, hops=None, what="request"):
    """Assert status, x-slogate-deployment and (optionally) attempts and hops."""
    eq(r.status, status, "%s: status (%s)" % (what, r.text[:400]))
    eq(who(r), dep_id, "%s: x-slogate-deployment" % what)
    if attempts is not None:
        eq(hdr_int(r, "x-slogate-attempts"), attempts, "%s: x-slogate-attempts" % what)
    if hops is not None:
        eq(hdr_int(r, "x-slogate-failover-hops"), hops, "%s: x-slogate-failover-hops" % what)


def chats(m):
    return m.stats()["chat"]


def stream_text(r):
    """The assembled content of an OpenAI SSE answer, and its events (parsed, [DONE] kept)."""
    evs = r.sse_events()
    text = []
    for e in evs:
        if e == "[DONE]":
            continue
        j = json.loads(e)
        for c in j.get("choices") or []:
            text.append((c.get("delta") or {}).get("content") or "")
    return "".join(text), evs


def parallel(n, fn):
    """Run fn(i) on n threads at once; returns the results (or the exception) in order."""
    out = [None] * n
    go = threading.Event()

    def run(i):
        go.wait()
        try:
            out[i] = fn(i)
        except Exception as e:  # noqa: BLE001 - returned to the test
            out[i] = e
    ts = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    go.set()
    for t in ts:
        t.join()
    for v in out:
        if isinstance(v, Exception):
            raise v
    return out


# ---- failures of the primary -----------------------------------------------------------------

@time_limit(30)
def test_500_burst_fails_over_then_cools_primary(fx):
    a, b, gw = two(fx, allowed_fails=3, cooldown_time=30)
    a.faults(status=500)
    for i in range(1, 4):
        r = gw.chat()
        answered(r, "secondary", attempts=2, hops=1, what="request %d during a 500 burst" % i)
        contains(r.text, "Mock answer from provider-b", "request %d: the secondary's answer" % i)
        d = deployments(gw)["primary"]
        if i < 3:
            # DESIGN §7: the cooldown opens at allowed_fails failures (LiteLLM: above it).
            eq(d["state"], "healthy", "primary after %d of allowed_fails=3 failures" % i)
            eq(d["fails_in_window"], i, "primary's failures in the 60 s window")
        else:
            eq(d["state"], "cooling", "primary after allowed_fails=3 failures in 60 s")
            check(25000 < d["cooling_ms"] <= 30000,
                  "cooling for about cooldown_time=30 s, cooling_ms=%r" % d["cooling_ms"])
            contains(d["cooldown_reason"], "allowed_fails", "cooldown_reason")
    eq(chats(a), 3, "requests the primary received during the burst")
    for i in range(5):
        r = gw.chat()
        answered(r, "secondary", attempts=1, hops=0, what="request %d while primary cools" % i)
    eq(chats(a), 3, "a cooling primary receives no request")
    eq(chats(b), 8, "the secondary answered every request")
    eq(a.stats()["by_status"], {"500": 3}, "the primary's answers")


@time_limit(30)
def test_429_retry_after_cooldown_then_exactly_one_probe(fx):
    a, b, gw = two(fx, allowed_fails=3, cooldown_time=30)
    a.faults(status=429, retry_after_s=2)
    t_429 = time.monotonic()
    r = gw.chat()
    answered(r, "secondary", attempts=2, hops=1, what="request answered 429 by the primary")
    d = deployments(gw)["primary"]
    eq(d["state"], "cooling", "one 429 cools the primary at once")
    check(1000 < d["cooling_ms"] <= 2000,
          "cooldown is the provider's Retry-After (2 s), not cooldown_time (30 s): cooling_ms=%r"
          % d["cooling_ms"])
    contains(d["cooldown_reason"], "429", "cooldown_reason")
    # The provider is fine again, but slow: the half-open probe stays in flight a while.
    a.clear_faults()
    a.faults(latency_ms=800)
    r = gw.chat()
    if time.monotonic() - t_429 < 1.5:
        answered(r, "secondary", attempts=1, what="request during the Retry-After cooldown")
        eq(chats(a), 1, "no request reaches the primary during its cooldown")
    wait_until(lambda: deployments(gw)["primary"]["cooling_ms"] == 0, 5,
               "the primary's 2 s cooldown to end")
    check(time.monotonic() - t_429 >= 1.8,
          "the cooldown lasted %.2fs, want about Retry-After=2 s" % (time.monotonic() - t_429))
    before_a, before_b = chats(a), chats(b)
    # Six requests at once after the cooldown: exactly one is the probe.
    results = {}

    def one(i):
        rr = gw.chat(chat_body(content="after cooldown %d" % i))
        results[i] = rr
        return rr
    t = threading.Thread(target=parallel, args=(6, one))
    t.start()
    wait_until(lambda: deployments(gw)["primary"]["state"] == "probing", 5,
               "GET /admin/deployments to show the primary probing (half-open)")
    t.join()
    got = sorted(who(rr) for rr in results.values())
    eq([rr.status for rr in results.values()], [200] * 6, "statuses of six concurrent requests")
    eq(got, ["primary"] + ["secondary"] * 5,
       "six concurrent requests after the cooldown: one half-open probe to the primary, the "
       "rest to the secondary")
    eq(chats(a) - before_a, 1, "requests the primary received while half-open")
    eq(chats(b) - before_b, 5, "requests the secondary received while the probe was out")
    d = deployments(gw)["primary"]
    eq(d["state"], "healthy", "a successful probe closes the breaker")
    a.clear_faults()
    answered(gw.chat(), "primary", attempts=1, hops=0, what="request after the probe succeeded")


@time_limit(30)
def test_revoked_key_cools_at_once_client_never_sees_401(fx):
    a = fx.mock(name="provider-a", key="the-new-key")   # the deployment's key-a was revoked
    b = fx.mock(name="provider-b")
    gw = fx.gateway(config([dep("app/chat", a, "primary", 1), dep("app/chat", b, "secondary", 2)],
                           allowed_fails=3, cooldown_time=30))
    r = gw.chat()
    answered(r, "secondary", attempts=2, hops=1, what="request whose primary key is revoked")
    s = a.stats()
    eq(s["auth_failures"], 1, "the primary rejected the key once")
    eq(s["by_status"], {"401": 1}, "the primary's answers")
    d = deployments(gw)["primary"]
    eq(d["state"], "cooling", "one 401 cools the primary at once (allowed_fails=3 not needed)")
    contains(d["cooldown_reason"], "key", "cooldown_reason")
    for i in range(4):
        r = gw.chat()
        check(r.status != 401, "the client never sees the provider's 401 (%s)" % r.text)
        answered(r, "secondary", attempts=1, hops=0, what="request %d after the 401" % i)
    eq(a.stats()["chat"], 1, "the primary with the revoked key got no further request")


@time_limit(30)
def test_hang_answered_by_secondary_after_stream_timeout(fx):
    a, b, gw = two(fx, allowed_fails=5, dep_params={"stream_timeout": 1})
    a.faults(hang=True)
    for what, body in (("non-streamed", chat_body()), ("streamed", chat_body(stream=True))):
        t0 = time.monotonic()
        r = gw.chat(body)
        first = r.t_head - t0
        answered(r, "secondary", attempts=2, hops=1, what="%s request, primary hung" % what)
        # stream_timeout caps the first byte of a stream and the head of a whole answer.
        check(0.9 <= first <= 2.5,
              "%s: the secondary's answer began %.2fs after the request; want stream_timeout "
              "(1 s) + a failover" % (what, first))
        contains(r.text, "Mock answer from provider-b" if what == "non-streamed"
                 else "provider-b", "%s: the secondary's answer" % what)
        if what == "streamed":
            text, evs = stream_text(r)
            eq(evs[-1], "[DONE]", "the stream ends with [DONE]")
            check(text.startswith("Mock answer from provider-b"), "stream text %r" % text)
    wait_until(lambda: a.stats()["in_flight"] == 0, 3,
               "the hung primary's requests to be abandoned (mock in_flight 0)")
    s = a.stats()
    eq(s["hangs"], 2, "requests the hung primary held")
    eq(s["aborted"], 2, "the gateway abandoned both hung requests")
    d = deployments(gw)["primary"]
    eq(d["fails_in_window"], 2, "a missed first byte counts as a failure")
    eq(d["state"], "healthy", "two failures are below allowed_fails=5")


@time_limit(30)
def test_slow_first_token_fails_over_before_the_first_byte(fx):
    a, b, gw = two(fx, allowed_fails=5, dep_params={"stream_timeout": 1})
    # Below stream_timeout the primary serves.
    a.faults(ttft_ms=300)
    r = gw.chat(chat_body(stream=True))
    answered(r, "primary", attempts=1, what="stream with a 300 ms first token")
    # Above it, the gateway moves on before anything reached the client.
    a.faults(ttft_ms=4000)
    t0 = time.monotonic()
    r = gw.chat(chat_body(stream=True))
    answered(r, "secondary", attempts=2, hops=1, what="stream with a 4 s first token")
    check(0.9 <= r.t_head - t0 <= 2.5,
          "the stream began %.2fs after the request; want stream_timeout (1 s) + a failover"
          % (r.t_head - t0))
    check(r.complete, "the stream ended properly (last chunk)")
    text, evs = stream_text(r)
    eq(evs[-1], "[DONE]", "last event")
    eq(evs.count("[DONE]"), 1, "exactly one [DONE]: one stream, not two spliced")
    check("provider-a" not in r.text, "no byte of the slow primary reached the client")
    check(not any('"error"' in e for e in evs), "no error event in a failed-over stream")
    first = json.loads(evs[0])
    eq(first["choices"][0]["delta"].get("role"), "assistant", "the stream starts at its start")
    # The same text the secondary gives when asked directly.
    direct = chat(b.port, {"model": "gpt-4o-mini", "stream": False,
                           "messages": [{"role": "user", "content": "Hello"}]}, key=MOCK_KEY)
    eq(text, direct.json()["choices"][0]["message"]["content"],
       "the client's stream is the secondary's whole answer")
    wait_until(lambda: a.stats()["aborted"] == 1, 5,
               "the slow primary's request to be cancelled (mock aborted 1)")


@time_limit(30)
def test_reset_mid_stream_ends_with_error_event_no_failover(fx):
    a, b, gw = two(fx, allowed_fails=5)
    a.faults(reset="mid", tokens_per_s=50)   # paced: the first half reaches the client first
    r = gw.chat(chat_body(stream=True))
    answered(r, "primary", attempts=1, hops=0, what="stream reset by the primary mid-way")
    check(r.complete, "the chunked body is terminated properly after the error event")
    text, evs = stream_text_lenient(r)
    check(text.startswith("Mock answer from provider-a"),
          "the first half of the primary's answer reached the client: %r" % text)
    check(evs and '"error"' in evs[-1], "the stream ends with an SSE error event: %r" % evs[-2:])
    err = json.loads(evs[-1])["error"]
    eq(err["code"], "stream_interrupted", "error event code")
    contains(err["message"], "primary", "the error event names the deployment")
    check("[DONE]" not in evs, "no [DONE] after a broken stream")
    eq(chats(b), 0, "no failover after the first byte: the secondary got nothing")
    eq(deployments(gw)["primary"]["fails_in_window"], 1, "the broken stream counts as a failure")
    a.clear_faults()
    answered(gw.chat(chat_body(stream=True)), "primary", what="the next stream")


def stream_text_lenient(r):
    """Like stream_text, but keeps error events as raw strings."""
    evs = r.sse_events()
    text = []
    for e in evs:
        if e == "[DONE]" or '"error"' in e:
            continue
        for c in json.loads(e).get("choices") or []:
            text.append((c.get("delta") or {}).get("content") or "")
    return "".join(text), evs


@time_limit(30)
def test_all_down_502_lists_attempts_then_503_with_shortest_retry_after(fx):
    a, b, gw = two(fx, allowed_fails=2, cooldown_time=20)
    a.faults(status=500)
    b.faults(status=429, retry_after_s=4)
    r = gw.chat()
    eq(r.status, 502, "every deployment failing (%s)" % r.text)
    e = r.error()
    eq(e["code"], "upstream_error", "error code")
    for part in ("2 attempts", "primary", "HTTP 500", "secondary", "HTTP 429"):
        contains(e["message"], part, "the 502 lists each attempt with its deployment and cause")
    check(e["message"].index("primary") < e["message"].index("secondary"),
          "attempts listed in order: %s" % e["message"])
    eq(who(r), "secondary", "x-slogate-deployment on the final error: the last one tried")
    eq(hdr_int(r, "x-slogate-attempts"), 2, "attempts")
    # The secondary cools for its Retry-After (4 s); a second 500 cools the primary for 20 s.
    r = gw.chat()
    eq(r.status, 502, "second request: the primary fails, the secondary is cooling (%s)" % r.text)
    eq(hdr_int(r, "x-slogate-attempts"), 1, "attempts on the second request")
    eq(who(r), "primary", "x-slogate-deployment on the second 502")
    ds = deployments(gw)
    eq((ds["primary"]["state"], ds["secondary"]["state"]), ("cooling", "cooling"),
       "both deployments cooling")
    before = (chats(a), chats(b))
    r = gw.chat()
    eq(r.status, 503, "every deployment cooling (%s)" % r.text)
    e = r.error()
    eq(e["code"], "no_healthy_deployment", "error code")
    contains(e["message"], "primary", "the 503 lists the deployments")
    contains(e["message"], "secondary", "the 503 lists the deployments")
    ra = r.header("retry-after")
    check(ra is not None and ra.isdigit() and 2 <= int(ra) <= 4,
          "Retry-After = the shortest cooldown left (the secondary's ~4 s, not the primary's "
          "20 s), got %r" % ra)
    eq((chats(a), chats(b)), before, "no request reaches a cooling deployment")


@time_limit(30)
def test_every_deployment_disabled_is_503_not_502(fx):
    a, b, gw = two(fx)
    admin(gw, "POST", "/admin/deployments/primary/disable")
    admin(gw, "POST", "/admin/deployments/secondary/disable")
    r = gw.chat()
    # DESIGN §6/§7: no healthy deployment is a 503 that says why; a 502 reports attempts that
    # failed, and none was made.
    eq(r.status, 503, "every deployment disabled by the operator (%s)" % r.text)
    e = r.error()
    eq(e["code"], "no_healthy_deployment", "error code")
    contains(e["message"], "disabled", "the message says the deployments are disabled")
    eq((chats(a), chats(b)), (0, 0), "no provider was called")


@time_limit(30)
def test_request_while_the_only_probe_is_out_is_503(fx):
    # One deployment, half-open, its probe slow: another request has nowhere to go. That is
    # "no healthy deployment" (503 + Retry-After), not a 502 about attempts that never happened.
    a = fx.mock(name="provider-a")
    gw = fx.gateway(config([dep("app/chat", a, "only", 1)], allowed_fails=1, cooldown_time=1))
    a.faults(status=500)
    eq(gw.chat().status, 502, "the only deployment failing")
    eq(state(gw, "only"), "cooling", "cooled after allowed_fails=1")
    a.faults(status=0, latency_ms=1500)
    wait_until(lambda: deployments(gw)["only"]["cooling_ms"] == 0, 5, "the cooldown to end")
    probe = {}
    t = threading.Thread(target=lambda: probe.setdefault("r", gw.chat()))
    t.start()
    wait_until(lambda: state(gw, "only") == "probing", 5, "the half-open probe to be in flight")
    r = gw.chat()
    t.join()
    eq(probe["r"].status, 200, "the probe itself (%s)" % probe["r"].text)
    eq(r.status, 503, "a request while the only deployment's probe is out (%s)" % r.text)
    eq(r.error()["code"], "no_healthy_deployment", "error code")
    ra = r.header("retry-after")
    check(ra is not None and ra.isdigit() and int(ra) >= 1, "Retry-After on the 503: %r" % ra)


@time_limit(30)
def test_killed_primary_and_reset_fail_over_within_one_attempt(fx):
    a, b, gw = two(fx, allowed_fails=10)
    a.faults(reset="before")
    t0 = time.monotonic()
    r = gw.chat()
    answered(r, "secondary", attempts=2, hops=1, what="primary resets the connection")
    check(time.monotonic() - t0 < 1.0, "failover after a reset took %.2fs" % (time.monotonic() - t0))
    eq(a.stats()["resets"], 1, "the primary reset one connection")
    a.clear_faults()
    answered(gw.chat(), "primary", what="primary back")
    a.proc.kill()       # the gateway holds a pooled connection to it: it breaks, then refused
    for i in range(3):
        t0 = time.monotonic()
        r = gw.chat()
        answered(r, "secondary", attempts=2, hops=1, what="request %d, primary killed" % i)
        check(time.monotonic() - t0 < 1.0,
              "failover from a dead primary took %.2fs" % (time.monotonic() - t0))
    d = deployments(gw)["primary"]
    eq(d["fails_in_window"], 4, "the reset and the three refused connections all count")


@time_limit(30)
def test_deadline_bounds_all_attempts(fx):
    # router timeout 1.5 s is the whole request's budget; stream_timeout 1 s per attempt.
    a, b, gw = two(fx, allowed_fails=10, timeout=1.5, dep_params={"stream_timeout": 1})
    a.faults(hang=True)
    b.faults(hang=True)
    t0 = time.monotonic()
    r = gw.chat()
    took = time.monotonic() - t0
    eq(r.status, 504, "two hung deployments and a 1.5 s deadline (%s)" % r.text)
    e = r.error()
    eq(e["code"], "deadline_exceeded", "error code")
    contains(e["message"], "primary", "the message lists the attempts")
    contains(e["message"], "secondary", "the message lists the attempts")
    check(1.3 <= took <= 2.5, "504 after %.2fs; want the 1.5 s deadline" % took)
    eq(hdr_int(r, "x-slogate-attempts"), 2, "attempts")
    wait_until(lambda: a.stats()["in_flight"] + b.stats()["in_flight"] == 0, 3,
               "both hung requests to be abandoned")


@time_limit(30)
def test_recovery_after_cooldown(fx):
    a, b, gw = two(fx, allowed_fails=1, cooldown_time=1)
    a.faults(status=500)
    answered(gw.chat(), "secondary", attempts=2, what="request meeting the primary's 500")
    t_cool = time.monotonic()
    d = deployments(gw)["primary"]
    eq(d["state"], "cooling", "one failure with allowed_fails=1")
    check(0 < d["cooling_ms"] <= 1000, "cooling for cooldown_time=1 s: %r" % d["cooling_ms"])
    a.clear_faults()
    served = []

    def primary_serves():
        r = gw.chat()
        eq(r.status, 200, "request while the primary recovers (%s)" % r.text)
        served.append(who(r))
        return who(r) == "primary"
    wait_until(primary_serves, 5, "the primary to serve again after its 1 s cooldown",
               interval=0.05)
    took = time.monotonic() - t_cool
    check(0.8 <= took <= 3.0,
          "the primary served again %.2fs after its cooldown began; want about 1 s" % took)
    check(served[0] == "secondary" or took >= 0.8,
          "requests during the cooldown went to the secondary: %r" % served)
    d = deployments(gw)["primary"]
    eq((d["state"], d["fails_in_window"]), ("healthy", 0), "the probe's success closed it")
    for i in range(3):
        answered(gw.chat(), "primary", attempts=1, hops=0, what="request %d after recovery" % i)


# ---- tiers, weights, fallbacks ---------------------------------------------------------------

def weighted_config(a, b, c, **router):
    """heavy (weight 3) and light (weight 1) in tier 1, backup in tier 2."""
    return config([dep("app/chat", a, "heavy", 1, weight=3),
                   dep("app/chat", b, "light", 1, weight=1),
                   dep("app/chat", c, "backup", 2)], **router)


@time_limit(40)
def test_same_tier_retry_with_weights(fx):
    a, b, c = (fx.mock(name="provider-" + x) for x in "abc")
    gw = fx.gateway(weighted_config(a, b, c, num_retries=1, allowed_fails=1000))
    # Weighted pick inside tier 1: 3:1. 200 draws, expected 150; ±30 is about ±5 sd.
    n = 200
    for i in range(n):
        eq(gw.chat().status, 200, "request %d" % i)
    sa, sb = chats(a), chats(b)
    check(120 <= sa <= 180 and sa + sb == n,
          "weights 3:1 over %d requests: heavy got %d, light %d (want about 150/50)" % (n, sa, sb))
    eq(chats(c), 0, "order 2 gets nothing while order 1 is healthy")
    # The heavy one fails: a retry goes to its tier peer first (no hop), never to itself.
    for m in (a, b, c):
        m.reset_stats()
    a.faults(status=500)
    retried = 0
    for i in range(30):
        r = gw.chat()
        answered(r, "light", hops=0, what="request %d, heavy failing" % i)
        att = hdr_int(r, "x-slogate-attempts")
        check(att in (1, 2), "attempts %d" % att)
        retried += att == 2
    eq(chats(a), retried, "each request that picked the failing heavy one tried it once")
    check(retried > 0, "the failing deployment was picked at least once in 30 (weight 3 of 4)")
    eq(chats(c), 0, "the same-tier retry answered: tier 2 untouched")
    # Both of tier 1 fail: heavy/light (one retry in the tier), then tier 2.
    b.faults(status=500)
    r = gw.chat()
    answered(r, "backup", attempts=3, hops=1, what="request with tier 1 all failing")
    eq(chats(c), 1, "tier 2 answered")
    # num_retries: 0 — no peer retry inside the tier: one of tier 1, then tier 2.
    gw0 = fx.gateway(weighted_config(a, b, c, num_retries=0, allowed_fails=1000),
                     name="gateway-no-retries")
    for m in (a, b, c):
        m.reset_stats()
    r = gw0.chat()
    answered(r, "backup", attempts=2, hops=1, what="num_retries=0, tier 1 failing")
    eq(chats(a) + chats(b), 1, "exactly one tier-1 deployment was tried")


@time_limit(30)
def test_recovered_deployment_rejoins_its_tier(fx):
    # Two equal peers in one tier. One cools down, recovers, and must get traffic again:
    # after cooldown_time the next request that picks it is its half-open probe.
    a = fx.mock(name="provider-a")
    b = fx.mock(name="provider-b")
    gw = fx.gateway(config([dep("app/chat", a, "one", 1, weight=1),
                            dep("app/chat", b, "two", 1, weight=1)],
                           allowed_fails=1, cooldown_time=1, num_retries=1))
    a.faults(status=500)
    wait_until(lambda: gw.chat().status == 200 and chats(a) >= 1, 5,
               "a request to reach the failing deployment")
    eq(state(gw, "one"), "cooling", "deployment 'one' after its failure")
    a.clear_faults()
    wait_until(lambda: deployments(gw)["one"]["cooling_ms"] == 0, 5, "the 1 s cooldown to end")
    before = chats(a)
    n = 40
    for i in range(n):
        eq(gw.chat().status, 200, "request %d" % i)
    got = chats(a) - before
    check(got >= 5,
          "after its cooldown ended, deployment 'one' (weight 1 of 2) received %d of %d requests "
          "(expected about %d): a recovered deployment must be probed and rejoin its tier; "
          "admin shows it as %r" % (got, n, n // 2, state(gw, "one")))


@time_limit(30)
def test_fallbacks_to_another_alias(fx):
    a = fx.mock(name="provider-a")
    b = fx.mock(name="provider-b")
    cfg = config([dep("app/chat", a, "primary", 1),
                  dep("app/chat-lite", b, "lite", 1, model="openai/gpt-4o-mini-lite")],
                 fallbacks=[{"app/chat": ["app/chat-lite"]}], allowed_fails=100)
    gw = fx.gateway(cfg)
    answered(gw.chat(), "primary", attempts=1, hops=0, what="healthy primary")
    a.faults(status=503)
    r = gw.chat()
    answered(r, "lite", attempts=2, hops=1, what="app/chat failing, fallback app/chat-lite")
    eq(b.last()["model"], "gpt-4o-mini-lite", "the fallback deployment's own model id upstream")
    # No fallback is configured from the lite alias.
    b.faults(status=500)
    r = gw.chat(chat_body(model="app/chat-lite"))
    eq(r.status, 502, "app/chat-lite has no fallbacks (%s)" % r.text)
    eq(hdr_int(r, "x-slogate-attempts"), 1, "one attempt")
    eq(chats(a), 2, "the failing lite alias did not fall back to app/chat")
    # Both failing: the 502 lists the attempt in each alias.
    r = gw.chat()
    eq(r.status, 502, "both aliases failing (%s)" % r.text)
    for part in ("primary", "HTTP 503", "lite", "HTTP 500"):
        contains(r.error()["message"], part, "the 502 names each attempt")
    eq(who(r), "lite", "x-slogate-deployment names the last deployment tried")


def away_from_minute_boundary():
    """usage-based-routing counts per minute of CLOCK_MONOTONIC (sg_now_ms() / 60000), which is
    Python's time.monotonic(): start a short sequence well inside one minute."""
    wait_until(lambda: 1.0 < time.monotonic() % 60 < 55.0, 10, "a point well inside a minute",
               interval=0.1)


@time_limit(30)
def test_usage_based_routing_skips_deployments_over_rpm(fx):
    a, b, c = (fx.mock(name="provider-" + x) for x in "abc")
    gw = fx.gateway(config([dep("app/chat", a, "a", 1, rpm=2), dep("app/chat", b, "b", 1, rpm=2),
                            dep("app/chat", c, "c", 2)],
                           routing_strategy="usage-based-routing"))
    away_from_minute_boundary()
    got = [who(gw.chat()) for _ in range(6)]
    eq(sorted(got[:4]), ["a", "a", "b", "b"],
       "the first four requests fill both tier-1 deployments' rpm=2 evenly (lowest use first)")
    # DESIGN §7: usage-based-routing skips deployments over their limits.
    eq(got[4:], ["c", "c"], "with both tier-1 deployments at their rpm this minute, requests go "
                            "to tier 2 (all picks: %r)" % got)


@time_limit(30)
def test_usage_based_routing_counts_tokens_for_tpm(fx):
    a, c = fx.mock(name="provider-a"), fx.mock(name="provider-c")
    # Each answer is 30 tokens (6 prompt + 24 completion): two fit in tpm=50, a third does not.
    gw = fx.gateway(config([dep("app/chat", a, "a", 1, tpm=50), dep("app/chat", c, "c", 2)],
                           routing_strategy="usage-based-routing"))
    away_from_minute_boundary()
    r = gw.chat()
    eq(r.json()["usage"]["total_tokens"], 30, "tokens of one answer")
    got = [who(r)] + [who(gw.chat()) for _ in range(3)]
    eq(got, ["a", "a", "c", "c"],
       "deployment a (tpm=50) serves until its 60 tokens this minute exceed tpm, then tier 2")


# ---- hedging ---------------------------------------------------------------------------------

@time_limit(30)
def test_hedge_win_cancels_the_slow_primary(fx):
    a, b, gw = two(fx, hedge_after_ms=100)
    # A fast primary: no hedge is started.
    answered(gw.chat(), "primary", attempts=1, what="fast primary")
    eq(chats(b), 0, "no hedge when the first byte comes before hedge_after_ms")
    a.faults(latency_ms=1000)
    t0 = time.monotonic()
    r = gw.chat()
    took = time.monotonic() - t0
    answered(r, "secondary", attempts=2, what="primary 1 s slow, hedge after 100 ms")
    check(took < 0.7, "the hedge answered in %.2fs; the primary alone takes 1 s" % took)
    wait_until(lambda: a.stats()["aborted"] == 1, 5,
               "the primary's (losing) request to be cancelled (mock aborted 1)")
    # A stream: the hedge is decided by the first token.
    a.faults(latency_ms=0, ttft_ms=1000)
    t0 = time.monotonic()
    r = gw.chat(chat_body(stream=True))
    answered(r, "secondary", attempts=2, what="stream, primary's first token 1 s late")
    check(r.t_head - t0 < 0.7, "the hedged stream began after %.2fs" % (r.t_head - t0))
    text, evs = stream_text(r)
    eq(evs.count("[DONE]"), 1, "one clean stream")
    check("provider-a" not in r.text, "nothing of the losing primary in the stream")
    wait_until(lambda: a.stats()["aborted"] == 2, 5, "the losing stream to be cancelled")
    d = deployments(gw)["primary"]
    eq((d["state"], d["failures"], d["fails_in_window"]), ("healthy", 0, 0),
       "a hedge that lost is cancelled, not a failure")
    # The primary wins when it answers first after the hedge started.
    a.faults(latency_ms=300, ttft_ms=0)
    b.faults(latency_ms=2000)
    r = gw.chat()
    answered(r, "primary", attempts=2, what="primary at 300 ms, hedge at 2 s")
    wait_until(lambda: b.stats()["aborted"] == 1, 5, "the losing hedge to be cancelled")


# ---- operator controls -----------------------------------------------------------------------

@time_limit(30)
def test_admin_pin_unpin_disable_enable_clear_cooldown(fx):
    a, b, gw = two(fx, allowed_fails=1, cooldown_time=30)
    r = http(gw.port, "GET", "/admin/deployments", key=None)
    eq(r.status, 401, "admin API without the master key")
    ds = deployments(gw)
    eq(sorted(ds), ["primary", "secondary"], "deployments listed")
    for k in ("state", "healthy", "disabled", "pinned", "cooling_ms", "fails_in_window",
              "in_flight", "ewma_total_ms", "order", "weight", "alias", "model"):
        check(k in ds["primary"], "GET /admin/deployments entry lacks %r: %r" % (k, ds["primary"]))
    eq(ds["primary"]["state"], "healthy", "initial state")
    # pin / unpin
    j = admin(gw, "POST", "/admin/deployments/secondary/pin").json()
    eq(j, {"id": "secondary", "done": "pin"}, "pin reply")
    eq(deployments(gw)["secondary"]["pinned"], True, "pinned shown")
    for i in range(3):
        answered(gw.chat(), "secondary", attempts=1, what="request %d with secondary pinned" % i)
    admin(gw, "POST", "/admin/deployments/secondary/unpin")
    eq(deployments(gw)["secondary"]["pinned"], False, "unpinned")
    answered(gw.chat(), "primary", attempts=1, what="after unpin")
    # disable / enable
    admin(gw, "POST", "/admin/deployments/primary/disable")
    d = deployments(gw)["primary"]
    eq((d["state"], d["healthy"], d["disabled"]), ("disabled", False, True), "disabled primary")
    n = chats(a)
    answered(gw.chat(), "secondary", attempts=1, hops=0, what="primary disabled")
    eq(chats(a), n, "a disabled deployment gets no request")
    admin(gw, "POST", "/admin/deployments/primary/enable")
    eq(state(gw, "primary"), "healthy", "enabled again")
    answered(gw.chat(), "primary", what="after enable")
    # clear-cooldown
    a.faults(status=500)
    answered(gw.chat(), "secondary", attempts=2, what="primary failing")
    eq(state(gw, "primary"), "cooling", "primary cooling (allowed_fails=1, cooldown 30 s)")
    a.clear_faults()
    answered(gw.chat(), "secondary", what="primary still cooling")
    admin(gw, "POST", "/admin/deployments/primary/clear-cooldown")
    d = deployments(gw)["primary"]
    eq((d["state"], d["cooling_ms"], d["fails_in_window"]), ("healthy", 0, 0),
       "after clear-cooldown")
    answered(gw.chat(), "primary", attempts=1, what="after clear-cooldown")
    # clear-cooldowns (all)
    a.faults(status=500)
    gw.chat()
    eq(state(gw, "primary"), "cooling", "cooling again")
    a.clear_faults()
    eq(admin(gw, "POST", "/admin/deployments/clear-cooldowns").json(), {"cleared": 2},
       "clear-cooldowns reply")
    answered(gw.chat(), "primary", what="after clear-cooldowns")
    # Mistakes say what to send.
    r = admin(gw, "POST", "/admin/deployments/nope/pin", want=404)
    eq(r.error()["code"], "deployment_not_found", "unknown deployment")
    r = admin(gw, "POST", "/admin/deployments/primary/explode", want=404)
    eq(r.error()["code"], "unknown_action", "unknown action")


@time_limit(30)
def test_pinned_deployment_failing_still_fails_over(fx):
    # A pin is the operator's preference, not a way to lose failover: when the pinned deployment
    # fails, the request goes on to the other healthy deployments of the alias.
    a, b, gw = two(fx, allowed_fails=10)
    admin(gw, "POST", "/admin/deployments/secondary/pin")
    answered(gw.chat(), "secondary", attempts=1, what="secondary pinned")
    b.faults(status=500)
    r = gw.chat()
    answered(r, "primary", attempts=2,
             what="pinned secondary (order 2) failing while the order-1 primary is healthy")


@time_limit(30)
def test_bypass_from_the_environment(fx):
    a, b, gw = two(fx, env={"BYPASS_ROUTER": "true"}, allowed_fails=1, hedge_after_ms=50)
    eq(admin(gw, "GET", "/admin/bypass").json(), {"bypass": True}, "GET /admin/bypass")
    r = gw.chat()
    answered(r, "primary", attempts=1, hops=0, what="bypass, healthy primary")
    eq(r.header("x-slogate-bypass"), "true", "x-slogate-bypass header")
    a.faults(status=500)
    r = gw.chat()
    eq(r.status, 502, "bypass: a failing primary is a 502, no failover (%s)" % r.text)
    eq(r.header("x-slogate-bypass"), "true", "x-slogate-bypass on the error")
    eq(who(r), "primary", "x-slogate-deployment on the error")
    eq(hdr_int(r, "x-slogate-attempts"), 1, "one attempt")
    contains(r.error()["message"], "bypass", "the 502 says the router is bypassed")
    # No intelligence: the primary is cooling now, and bypass still sends there.
    eq(state(gw, "primary"), "cooling", "the failure still counts")
    eq(gw.chat().status, 502, "bypass ignores cooldowns")
    a.faults(status=0, latency_ms=300)
    r = gw.chat()
    answered(r, "primary", attempts=1, what="bypass, slow primary: no hedge")
    eq(chats(b), 0, "the secondary never got a request under bypass")


@time_limit(30)
def test_bypass_switched_through_admin(fx):
    a, b, gw = two(fx)
    a.faults(status=500)
    r = gw.chat()
    answered(r, "secondary", attempts=2, what="router on: failover")
    eq(r.header("x-slogate-bypass"), None, "no x-slogate-bypass with the router on")
    eq(admin(gw, "POST", "/admin/bypass", {"enabled": True}).json(), {"bypass": True},
       "POST /admin/bypass on")
    eq(deployments(gw)["primary"]["state"], "healthy", "primary not cooled yet (allowed_fails=3)")
    n = chats(b)
    r = gw.chat()
    eq(r.status, 502, "bypass on: no failover (%s)" % r.text)
    eq(r.header("x-slogate-bypass"), "true", "x-slogate-bypass")
    eq(chats(b), n, "the secondary got nothing under bypass")
    r = admin(gw, "POST", "/admin/bypass", {"enabled": "yes"}, want=400)
    contains(r.error()["message"], "enabled", "a bad body says what to send")
    eq(admin(gw, "POST", "/admin/bypass", {"enabled": False}).json(), {"bypass": False},
       "POST /admin/bypass off")
    r = gw.chat()
    answered(r, "secondary", what="router back on: failover again")
    eq(r.header("x-slogate-bypass"), None, "no x-slogate-bypass after switching it off")


@time_limit(40)
def test_reload_under_load_keeps_health(fx):
    a = fx.mock(name="provider-a")
    b = fx.mock(name="provider-b", latency_ms=40)   # requests are in flight across each reload
    c = fx.mock(name="provider-c", latency_ms=40)
    base = [dep("app/chat", a, "primary", 1), dep("app/chat", b, "secondary", 2, weight=1)]
    router = {"allowed_fails": 1, "cooldown_time": 60}
    gw = fx.gateway(config(base, **router))
    # Cool the primary down, then let its provider recover: were its health forgotten by a
    # reload, it would serve again at once.
    a.faults(status=500)
    answered(gw.chat(), "secondary", attempts=2, what="primary failing")
    eq(state(gw, "primary"), "cooling", "primary before the reload")
    a.clear_faults()

    stop = threading.Event()
    results = []   # (status or exception text, deployment)

    def load(keepalive):
        conn = None
        while not stop.is_set():
            try:
                if keepalive:
                    if conn is None:
                        conn = Conn(gw.port)
                    conn.request("POST", "/v1/chat/completions", chat_body(content="load"))
                    r = conn.read_response()
                    if (r.header("connection") or "").lower() == "close":
                        conn.close()
                        conn = None
                else:
                    r = gw.chat(chat_body(content="load"))
                results.append((r.status, who(r)))
            except Exception as e:  # noqa: BLE001 - counted as a failed request
                results.append((repr(e), None))
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()
    threads = [threading.Thread(target=load, args=(k,)) for k in (True, False)]
    for t in threads:
        t.start()
    try:
        wait_until(lambda: len(results) >= 20, 10, "load before the reload")
        # 1. A weight changed and a deployment added, then POST /admin/reload.
        v2 = [dep("app/chat", a, "primary", 1), dep("app/chat", b, "secondary", 2, weight=2),
              dep("app/chat", c, "tertiary", 2, weight=2)]
        fx.write_config(config(v2, **router), "gateway.yaml")
        wait_until(lambda: b.stats()["in_flight"] >= 1, 5, "a request in flight on the secondary")
        j = admin(gw, "POST", "/admin/reload").json()
        eq((j.get("reloaded"), j.get("deployments")), (True, 3), "POST /admin/reload reply")
        ds = deployments(gw)
        eq(sorted(ds), ["primary", "secondary", "tertiary"], "deployments after the reload")
        eq(ds["secondary"]["weight"], 2, "secondary's new weight")
        eq(ds["primary"]["state"], "cooling", "the primary still cools after the reload")
        n = len(results)
        wait_until(lambda: chats(c) >= 3, 10, "the new deployment to take traffic")
        # 2. An invalid config is refused; the running one stays.
        fx.write_config("model_list: [ {model_name: app/chat, litellm_params: {order: x}} ]\n",
                        "gateway.yaml")
        r = admin(gw, "POST", "/admin/reload", want=None)
        check(r.status in (400, 409), "reload of a broken config refused, got %d (%s)"
              % (r.status, r.text))
        contains(r.error()["message"], "gateway.yaml", "the refusal names file:line")
        eq(len(deployments(gw)), 3, "the running config stays after a refused reload")
        # Reloads in quick succession, alternating two configs, while requests are in flight.
        for i in range(10):
            fx.write_config(config(v2 if i % 2 else base, **router), "gateway.yaml")
            admin(gw, "POST", "/admin/reload")
        eq(sorted(deployments(gw)), ["primary", "secondary", "tertiary"], "after 10 reloads")
        eq(state(gw, "primary"), "cooling", "the primary still cools after 10 reloads")
        # 3. SIGHUP: the tertiary's weight changes.
        v3 = [dep("app/chat", a, "primary", 1), dep("app/chat", b, "secondary", 2, weight=2),
              dep("app/chat", c, "tertiary", 2, weight=5)]
        fx.write_config(config(v3, **router), "gateway.yaml")
        gw.proc.signal(signal.SIGHUP)
        wait_until(lambda: deployments(gw)["tertiary"]["weight"] == 5, 10,
                   "SIGHUP to load the tertiary's new weight")
        eq(state(gw, "primary"), "cooling", "the primary still cools after SIGHUP")
        m = len(results)
        wait_until(lambda: len(results) >= m + 20, 10, "load after SIGHUP")
    finally:
        stop.set()
        for t in threads:
            t.join()
    bad = [x for x in results if x[0] != 200]
    eq(bad[:5], [], "failed client requests during reloads (of %d)" % len(results))
    check(len(results) > n, "requests went on during the reloads")
    eq(sum(1 for _, d in results if d == "primary"), 0, "the cooling primary served nothing")
    check(gw.proc.alive(), "the gateway is still running")


def test_reload_names_the_keys_only_a_restart_applies(fx):
    m = fx.mock()
    cfg = fx.config([m], server={"max_connections": 500})
    gw = fx.gateway(cfg)
    # The listener's limit, the Redis connection and the request log are set up at start.
    cfg2 = fx.config([m], server={"max_connections": 9000},
                     general={"redis_url": "redis://127.0.0.1:1/0"})
    cfg2["telemetry"] = {"request_log": "requests.jsonl"}
    cfg2["model_list"][0]["litellm_params"]["stream_timeout"] = 5   # a reloadable change
    fx.write_config(cfg2, "gateway.yaml")
    want = ["server.max_connections", "general_settings.redis_url", "telemetry.request_log"]
    j = admin(gw, "POST", "/admin/reload").json()
    eq((j["reloaded"], j["restart_required"]), (True, want), "POST /admin/reload reply")
    wait_until(lambda: "server.max_connections, general_settings.redis_url, "
               "telemetry.request_log, which the gateway reads only when it starts"
               in gw.proc.stderr(), 5, "the reload's warning in the log")
    r = http(gw.port, "GET", "/health/readiness")
    eq(r.json()["redis"], "none", "readiness: no Redis is connected after the reload either")
    eq(chat(gw.port).status, 200, "requests are served on the new config")
    check(not os.path.exists(fx.path("requests.jsonl")), "no request log opened by a reload")
    # Compared with what the gateway started with, not with the previous reload.
    eq(admin(gw, "POST", "/admin/reload").json()["restart_required"], want, "a second reload")
    fx.write_config(cfg, "gateway.yaml")
    eq(admin(gw, "POST", "/admin/reload").json()["restart_required"], [],
       "back to the start values: nothing waits for a restart")
    # SIGHUP says the same in the log.
    fx.write_config(fx.config([m], server={"max_connections": 501}), "gateway.yaml")
    gw.proc.signal(signal.SIGHUP)
    wait_until(lambda: "changes server.max_connections, which" in gw.proc.stderr(), 5,
               "SIGHUP's warning")


@time_limit(30)
def test_client_errors_never_retried_never_counted(fx):
    a, b, gw = two(fx, allowed_fails=2, cooldown_time=30)
    for status in (400, 404, 422):
        a.faults(status=status)
        for i in range(3):   # more than allowed_fails
            r = gw.chat()
            answered(r, "primary", status=status, attempts=1, hops=0,
                     what="provider %d, request %d" % (status, i))
            contains(r.error()["message"], "provider-a", "the provider's own error is relayed")
        d = deployments(gw)["primary"]
        eq((d["state"], d["failures"], d["fails_in_window"]), ("healthy", 0, 0),
           "the primary after %d answers (the client's fault)" % status)
    eq(a.stats()["by_status"], {"400": 3, "404": 3, "422": 3}, "what the primary answered")
    eq(chats(b), 0, "the secondary never got a retry of a client error")
    a.clear_faults()
    answered(gw.chat(), "primary", attempts=1, what="after the client errors")


@time_limit(30)
def test_two_workers_share_cooldowns(fx):
    a, b, gw = two(fx, workers=2, allowed_fails=2, cooldown_time=30)
    eq(gw.workers, 2, "workers")
    # One keep-alive client connection on each worker (the readiness answer names the worker).
    on = {}
    deadline = time.monotonic() + 10
    while len(on) < 2 and time.monotonic() < deadline:
        c = fx.conn(gw.port)
        c.request("GET", "/health/readiness", key=None)
        w = c.read_response().json()["worker"]
        if w in on:
            c.close()
        else:
            on[w] = c
    eq(sorted(on), [0, 1], "a client connection on each worker")

    def ask(c, what):
        c.request("POST", "/v1/chat/completions", chat_body())
        r = c.read_response()
        eq(r.status, 200, "%s (%s)" % (what, r.text))
        return r
    a.faults(status=500)
    # One failure seen by each worker: two in all, allowed_fails=2.
    answered(ask(on[0], "worker 0"), "secondary", attempts=2, what="worker 0, primary failing")
    answered(ask(on[1], "worker 1"), "secondary", attempts=2, what="worker 1, primary failing")
    eq(chats(a), 2, "failures the primary answered")
    a.clear_faults()
    for w in (0, 1):
        for i in range(3):
            answered(ask(on[w], "worker %d" % w), "secondary", attempts=1,
                     what="worker %d, request %d after the shared cooldown" % (w, i))
    eq(chats(a), 2, "neither worker sends to the primary cooled by failures on both")
    for w in (0, 1):
        on[w].request("GET", "/admin/deployments")
        j = on[w].read_response().json()
        st = {d["id"]: d["state"] for d in j["deployments"]}
        eq(st["primary"], "cooling", "worker %d's view of the primary" % w)
