"""Router state beyond one process: cooldowns shared through a real redis-server, the gateway
serving on when Redis is gone, and background health checks cooling a dead deployment."""

import shutil
import subprocess

from harness import (MASTER_KEY, Proc, check, contains, eq, free_port, http, time_limit,
                     wait_until)


def start_redis(fx):
    """A throwaway redis-server on a free loopback port (no persistence)."""
    exe = shutil.which("redis-server")
    check(exe, "redis-server is installed (scripts/install-deps)")
    port = free_port()
    p = Proc(fx, [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no"], "redis")
    p.wait_line(r"Ready to accept connections")
    return port


def deployments(gw):
    r = http(gw.port, "GET", "/admin/deployments")
    eq(r.status, 200, "GET /admin/deployments (%s)" % r.text)
    return {d["id"]: d for d in r.json()["deployments"]}


def two_mock_config(fx, a, b, general):
    cfg = fx.config([a, b], general=general)
    cfg["router_settings"] = {"allowed_fails": 3, "cooldown_time": 30, "num_retries": 1}
    return cfg


@time_limit(30)
def test_cooldown_is_shared_across_instances_through_redis(fx):
    rport = start_redis(fx)
    a = fx.mock("provider-a", key="not-the-key")  # the gateway's key is refused: 401
    b = fx.mock("provider-b")
    cfg = two_mock_config(fx, a, b, {"redis_url": "redis://127.0.0.1:%d/0" % rport})
    gw1 = fx.gateway(cfg, name="gateway-1")
    gw2 = fx.gateway(cfg, name="gateway-2")
    wait_until(lambda: http(gw2.port, "GET", "/health/readiness", key=None).json()["redis"] == "ok",
               5, "gateway-2 to reach Redis")
    r = gw1.chat()
    eq(r.status, 200, "gateway-1 fails over (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "secondary", "answered by the secondary")
    eq(deployments(gw1)["primary"]["state"], "cooling", "one 401 cools the primary on gateway-1")
    # Gateway-2 never talked to the primary, yet learns of its cooldown through Redis.
    wait_until(lambda: deployments(gw2)["primary"]["state"] == "cooling", 3,
               "gateway-2 to adopt the primary's cooldown")
    contains(deployments(gw2)["primary"]["cooldown_reason"], "another instance",
             "gateway-2 says where the cooldown came from")
    a.reset_stats()
    for _ in range(5):
        r = gw2.chat()
        eq(r.status, 200, "gateway-2 (%s)" % r.text)
        eq(r.header("x-slogate-deployment"), "secondary", "gateway-2 goes straight to the secondary")
        eq(r.header("x-slogate-attempts"), "1", "no attempt wasted on the cooling primary")
    eq(a.stats()["requests"], 0, "the primary saw nothing from gateway-2")
    # Clearing it on gateway-1 deletes the shared key, so no instance re-adopts it.
    eq(http(gw1.port, "POST", "/admin/deployments/primary/clear-cooldown").status, 200, "clear")
    eq(deployments(gw1)["primary"]["state"], "healthy", "cleared on gateway-1")
    redis_cli = shutil.which("redis-cli")
    if redis_cli:
        wait_until(lambda: subprocess.run([redis_cli, "-p", str(rport), "exists",
                                           "slogate:cooldown:primary"], stdout=subprocess.PIPE,
                                          timeout=5).stdout.strip() == b"0",
                   3, "the shared cooldown key to be deleted")


@time_limit(20)
def test_redis_down_gateway_keeps_serving_on_local_state(fx):
    m = fx.mock()
    dead = free_port()
    gw = fx.gateway(fx.config([m], general={"redis_url": "redis://127.0.0.1:%d/0" % dead}))
    r = http(gw.port, "GET", "/health/readiness", key=None)
    eq(r.status, 200, "ready: serving on local state")
    contains(r.json()["redis"], "unreachable", "readiness says Redis is unreachable")
    for _ in range(3):
        eq(gw.chat().status, 200, "chat while Redis is down")


@time_limit(30)
def test_background_health_check_cools_a_dead_deployment_before_clients_hit_it(fx):
    a = fx.mock("provider-a", status=500)
    b = fx.mock("provider-b")
    cfg = two_mock_config(fx, a, b, {"background_health_checks": True, "health_check_interval": 1})
    gw = fx.gateway(cfg)
    wait_until(lambda: deployments(gw)["primary"]["state"] == "cooling", 5,
               "the health check to cool the failing primary")
    contains(deployments(gw)["primary"]["cooldown_reason"], "health check",
             "the cooldown names its cause")
    last = a.last()
    eq(last["body"].get("max_tokens"), 1, "the probe is a one-token request")
    eq(last["model"], "gpt-4o-mini", "the probe asks for the deployment's own model")
    probes = a.stats()["chat"]
    r = gw.chat()
    eq(r.status, 200, "the client is served (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "secondary", "by the secondary")
    eq(r.header("x-slogate-attempts"), "1", "without first trying the dead primary")
    check(a.stats()["chat"] - probes <= 1, "client requests did not reach the dead primary")
    check(b.stats()["by_status"].get("200", 0) >= 1, "the secondary answered")
