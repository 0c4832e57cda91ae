"""Drill fault injection in the gateway (/admin/faults): each fault makes the real path fail the
way an outage would, is visible everywhere, and is undone by one call."""

from harness import check, contains, eq, http, time_limit


def setup(fx, **primary_faults):
    a = fx.mock("provider-a", **primary_faults)
    b = fx.mock("provider-b")
    cfg = fx.config([a, b])
    cfg["router_settings"] = {"allowed_fails": 3, "cooldown_time": 1, "num_retries": 1}
    return a, b, fx.gateway(cfg)


def faults(gw, method="GET", body=None, path="/admin/faults"):
    r = http(gw.port, method, path, body)
    eq(r.status, 200, "%s %s (%s)" % (method, path, r.text))
    return r.json()["faults"]


def primary_state(gw):
    deps = {d["id"]: d for d in http(gw.port, "GET", "/admin/deployments").json()["deployments"]}
    return deps["primary"]


@time_limit(20)
def test_revoke_key_makes_the_provider_answer_401_and_the_router_fails_over(fx):
    a, b, gw = setup(fx)
    eq(gw.chat().header("x-slogate-deployment"), "primary", "before the fault")
    f = faults(gw, "POST", {"deployment": "primary", "revoke_key": True})
    eq(f, [{"deployment": "primary", "faults": {"revoke_key": True, "block_egress": False,
                                                 "ttft_ms": 0}}], "the fault is listed")
    r = gw.chat()
    eq(r.status, 200, "the client is served (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "secondary", "by the secondary")
    eq(r.header("x-slogate-faults"), "primary=revoke_key", "every answer names the active fault")
    eq(a.stats()["auth_failures"], 1, "the real provider saw a wrong key and said 401")
    contains(a.last()["authorization"], "revoked", "the key sent was the drill's wrong key")
    eq(primary_state(gw)["faults"]["revoke_key"], True, "/admin/deployments shows the fault")
    eq(primary_state(gw)["state"], "cooling", "one 401 cooled the primary")
    # One call undoes it; after the cooldown the primary serves again with its real key.
    eq(faults(gw, "DELETE", path="/admin/faults/primary"), [], "undone")
    http(gw.port, "POST", "/admin/deployments/primary/clear-cooldown")
    r = gw.chat()
    eq(r.header("x-slogate-deployment"), "primary", "the primary serves again")
    eq(r.header("x-slogate-faults"), None, "no fault header once none is active")


@time_limit(20)
def test_block_egress_refuses_connections_and_the_provider_sees_nothing(fx):
    a, b, gw = setup(fx)
    faults(gw, "POST", {"deployment": "primary", "block_egress": True})
    a.reset_stats()
    for _ in range(3):
        r = gw.chat()
        eq(r.status, 200, "served (%s)" % r.text)
        eq(r.header("x-slogate-deployment"), "secondary", "by the secondary")
        eq(r.header("x-slogate-faults"), "primary=block_egress", "fault header")
    eq(a.stats()["requests"], 0, "nothing reached the primary provider")
    eq(faults(gw, "DELETE"), [], "DELETE /admin/faults undoes everything")


@time_limit(20)
def test_ttft_cap_forces_first_byte_timeouts_on_streams(fx):
    a, b, gw = setup(fx, ttft_ms=300)
    r = gw.chat({"model": "app/chat", "stream": True,
                 "messages": [{"role": "user", "content": "hi"}]})
    eq(r.header("x-slogate-deployment"), "primary", "a 300 ms first token is fine normally")
    faults(gw, "POST", {"deployment": "primary", "ttft_ms": 30})
    r = gw.chat({"model": "app/chat", "stream": True,
                 "messages": [{"role": "user", "content": "hi"}]})
    eq(r.status, 200, "served (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "secondary", "the 30 ms cap failed the primary over")
    eq(r.header("x-slogate-faults"), "primary=ttft_ms:30", "fault header")
    check(r.sse_events()[-1] == "[DONE]", "one clean stream from the secondary")


@time_limit(20)
def test_fault_requests_are_validated_and_need_the_master_key(fx):
    a, b, gw = setup(fx)
    for body, code, what in (
            ({"deployment": "nope", "revoke_key": True}, 404, "unknown deployment"),
            ({"revoke_key": True}, 400, "no deployment named"),
            ({"deployment": "primary", "ttft": 30}, 400, "unknown field"),
            ({"deployment": "primary", "ttft_ms": -1}, 400, "negative cap"),
            ({"deployment": "primary", "revoke_key": "yes"}, 400, "mistyped field")):
        r = http(gw.port, "POST", "/admin/faults", body)
        eq(r.status, code, what + " (%s)" % r.text)
        r.error()
    eq(http(gw.port, "GET", "/admin/faults", key="sk-wrong").status, 401, "needs the master key")
    eq(faults(gw), [], "nothing was set by the bad requests")
