"""Router state beyond one process: cooldowns shared through a real redis-server, the gateway
serving on when Redis is gone, and background health checks cooling a dead deployment."""

import shutil
import socket
import threading
import time

from harness import (MASTER_KEY, Proc, check, contains, eq, free_port, http, time_limit,
                     wait_until)


def start_redis(fx, port=None, args=()):
    """A throwaway redis-server on a free loopback port (no persistence); `port` starts it again
    on the port of one stopped before, `args` adds options (e.g. "--requirepass", "pw")."""
    exe = shutil.which("redis-server")
    check(exe, "redis-server is installed (scripts/install-deps)")
    port = port or free_port()
    p = Proc(fx, [exe, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                  "--appendonly", "no"] + list(args), "redis")
    p.wait_line(r"Ready to accept connections")
    return port


def redis_cmd(port, *args):
    """One command on a fresh connection; the reply as an int, a str, or None (nil)."""
    out = b"*%d\r\n" % len(args) + b"".join(
        b"$%d\r\n%s\r\n" % (len(str(a).encode()), str(a).encode()) for a in args)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(out)
        buf = b""
        while not buf.endswith(b"\r\n") or (buf[:1] == b"$" and buf.count(b"\r\n") < 2
                                             and not buf.startswith(b"$-1")):
            d = s.recv(65536)
            check(d, "redis answered %r" % (args,))
            buf += d
    kind, rest = buf[:1], buf[1:].split(b"\r\n")
    if kind == b":":
        return int(rest[0])
    if kind == b"$":
        return None if rest[0] == b"-1" else rest[1].decode()
    check(kind == b"+", "redis %r answered %r" % (args, buf))
    return rest[0].decode()


class Relay:
    """A TCP relay to a port that can be cut: while down it accepts connections and closes them
    at once (a gateway sees its Redis as unreachable), while up it copies bytes both ways."""

    def __init__(self, fx, port):
        self.target = port
        self.up = False
        self.conns = []
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.port = self.srv.getsockname()[1]
        self.closed = False
        fx.sockets.append(self)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        for c in [self.srv] + self.conns:
            try:
                c.close()
            except OSError:
                pass

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            if not self.up:
                c.close()
                continue
            t = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [c, t]
            for a, b in ((c, t), (t, c)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a, b):
        try:
            while True:
                d = a.recv(65536)
                if not d:
                    break
                b.sendall(d)
        except OSError:
            pass
        for x in (a, b):
            try:
                x.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


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
    # Clearing it on gateway-1 replaces the shared cooldown with a clear mark ("c<end>"), so
    # no instance re-adopts it (and the others drop theirs: test_instances.py).
    eq(http(gw1.port, "POST", "/admin/deployments/primary/clear-cooldown").status, 200, "clear")
    eq(deployments(gw1)["primary"]["state"], "healthy", "cleared on gateway-1")
    wait_until(lambda: (redis_cmd(rport, "GET", "slogate:cooldown:primary") or "").startswith("c"),
               3, "the shared cooldown to be replaced by a clear mark")


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


@time_limit(40)
def test_a_shorter_cooldown_written_later_does_not_replace_a_longer_one(fx):
    """Two instances cool the same deployment: gateway-1 for 30 s (a revoked key), gateway-2 for
    5 s (a 429 with Retry-After: 5) while it could not reach Redis, so it publishes its own once
    it can, after gateway-1's. A plain SET replaced the 30 s cooldown with the 5 s one: every
    instance but gateway-1 sent traffic to the deployment again after 5 s. The write keeps the
    cooldown that ends later, and gateway-2 adopts it."""
    rport = start_redis(fx)
    relay = Relay(fx, rport)
    revoked = fx.mock("provider-a", key="not-the-key")  # gateway-1's primary: 401
    limited = fx.mock("provider-c", status=429, retry_after=5)  # gateway-2's primary: 429
    b = fx.mock("provider-b")
    key = "slogate:cooldown:primary"
    gw1 = fx.gateway(two_mock_config(fx, revoked, b,
                                     {"redis_url": "redis://127.0.0.1:%d/0" % rport}),
                     name="gateway-1")
    gw2 = fx.gateway(two_mock_config(fx, limited, b,
                                     {"redis_url": "redis://127.0.0.1:%d/0" % relay.port}),
                     name="gateway-2")
    wait_until(lambda: http(gw1.port, "GET", "/health/readiness", key=None).json()["redis"]
               == "ok", 5, "gateway-1 to reach Redis")
    contains(http(gw2.port, "GET", "/health/readiness", key=None).json()["redis"], "unreachable",
             "gateway-2 cannot reach Redis yet")
    eq(gw2.chat().header("x-slogate-deployment"), "secondary", "gateway-2 fails over on the 429")
    left = deployments(gw2)["primary"]["cooling_ms"]
    check(0 < left <= 5000, "gateway-2 cools the primary for its Retry-After: %d ms" % left)
    eq(gw1.chat().header("x-slogate-deployment"), "secondary", "gateway-1 fails over on the 401")
    wait_until(lambda: (redis_cmd(rport, "PTTL", key) or 0) > 20000, 3,
               "gateway-1's 30 s cooldown in Redis")
    long_value = redis_cmd(rport, "GET", key)
    relay.up = True  # gateway-2 reconnects and publishes its 5 s cooldown, second
    wait_until(lambda: http(gw2.port, "GET", "/health/readiness", key=None).json()["redis"]
               == "ok", 5, "gateway-2 to reach Redis")
    time.sleep(0.6)  # two more rounds
    eq(redis_cmd(rport, "GET", key), long_value,
       "Redis keeps the cooldown that ends later (gateway-1's 30 s)")
    check(redis_cmd(rport, "PTTL", key) > 20000,
          "and its expiry: %s ms left" % redis_cmd(rport, "PTTL", key))
    d = deployments(gw2)["primary"]
    check(d["cooling_ms"] > 20000,
          "gateway-2 adopts the longer cooldown (cooling_ms %d, 5 s of its own)" % d["cooling_ms"])
    contains(d["cooldown_reason"], "another instance", "gateway-2 says where it came from")


@time_limit(40)
def test_clearing_a_cooldown_keeps_a_longer_one_another_instance_wrote_meanwhile(fx):
    """Gateway-2 cools the primary and publishes it; it loses Redis; another instance writes a
    cooldown that ends later; the operator clears the primary on gateway-2, which deletes its
    shared key once it is back. An unconditional DEL deleted the other instance's longer
    cooldown (every instance sent traffic to the deployment again); the delete happens only when
    Redis still holds the cooldown gateway-2 knew, and gateway-2 adopts the longer one."""
    rport = start_redis(fx)
    relay = Relay(fx, rport)
    relay.up = True
    revoked = fx.mock("provider-a", key="not-the-key")      # 401: a cooldown at once
    b = fx.mock("provider-b")
    key = "slogate:cooldown:primary"
    gw = fx.gateway(two_mock_config(fx, revoked, b,
                                    {"redis_url": "redis://127.0.0.1:%d/0" % relay.port}))
    wait_until(lambda: http(gw.port, "GET", "/health/readiness", key=None).json()["redis"]
               == "ok", 5, "the gateway to reach Redis")
    eq(gw.chat().header("x-slogate-deployment"), "secondary", "the gateway fails over on the 401")
    wait_until(lambda: (redis_cmd(rport, "PTTL", key) or 0) > 20000, 3,
               "the gateway's 30 s cooldown in Redis")
    # Redis goes out of the gateway's reach (connections cut, new ones refused).
    relay.up = False
    for c in list(relay.conns):
        try:
            c.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    wait_until(lambda: "unreachable" in http(gw.port, "GET", "/health/readiness",
                                             key=None).json()["redis"], 5,
               "the gateway to see Redis unreachable")
    # Another instance cools the primary for longer meanwhile (its compare-and-set wins).
    longer = str(int(time.time() * 1000) + 60000)
    eq(redis_cmd(rport, "SET", key, longer, "PX", "60000"), "OK", "the other instance's write")
    eq(http(gw.port, "POST", "/admin/deployments/primary/clear-cooldown").status, 200, "clear")
    eq(deployments(gw)["primary"]["state"], "healthy", "cleared on this gateway")
    relay.up = True
    wait_until(lambda: http(gw.port, "GET", "/health/readiness", key=None).json()["redis"]
               == "ok", 5, "the gateway to reach Redis again")
    time.sleep(0.6)  # two more rounds: the delete of the cleared cooldown ran
    eq(redis_cmd(rport, "GET", key), longer,
       "Redis keeps the other instance's longer cooldown")
    check((redis_cmd(rport, "PTTL", key) or 0) > 40000, "with its expiry")
    d = deployments(gw)["primary"]
    eq(d["state"], "cooling", "the gateway adopts the longer cooldown (%s)" % d)
    contains(d["cooldown_reason"], "another instance", "and says where it came from")
    # Its own cooldown, cleared with nothing newer in Redis, is still cleared there: a clear
    # mark takes its place, for the time the cooldown had left.
    eq(http(gw.port, "POST", "/admin/deployments/primary/clear-cooldown").status, 200, "clear")
    wait_until(lambda: (redis_cmd(rport, "GET", key) or "").startswith("c"), 3,
               "clearing the cooldown Redis holds replaces it with a clear mark")
    check(0 < redis_cmd(rport, "PTTL", key) <= 61000, "the mark expires with the cooldown")


@time_limit(30)
def test_a_redis_that_resets_the_connection_is_said_at_once(fx):
    """hiredis 0.14's libuv adapter drops a poll error (a connection refused or reset under it):
    the gateway only learnt of it from its 1 s stall timeout, saying 'no answer within 1000 ms'.
    It now reads the socket's error on its next sync tick (250 ms) and says what it was."""
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", 0))
    srv.listen(64)
    fx.sockets.append(srv)
    accepted = []

    def reset_all():
        import struct
        while True:
            try:
                c, _ = srv.accept()
            except OSError:
                return
            accepted.append(time.monotonic())
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            c.close()      # RST, not FIN
    threading.Thread(target=reset_all, daemon=True).start()
    m = fx.mock()
    gw = fx.gateway(fx.config([m], general={"redis_url": "redis://127.0.0.1:%d/0"
                                            % srv.getsockname()[1]}))
    wait_until(lambda: len(accepted) >= 4, 10, "the gateway to reconnect a few times")
    err = gw.proc.stderr()
    contains(err.lower(), "connection reset by peer", "the log says what happened")
    check("no answer within" not in err, "not the stall timeout: %s" % err[-600:])
    gaps = [b - a for a, b in zip(accepted, accepted[1:])]
    check(max(gaps) < 0.8, "each reconnect within a tick or two, not after the 1 s stall: %s"
          % ["%.2f" % g for g in gaps])
    eq(gw.chat().status, 200, "the gateway serves on local state")
