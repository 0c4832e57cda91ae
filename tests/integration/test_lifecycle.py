"""Process lifecycle: graceful SIGTERM/SIGINT drain, drain deadline, restart on the same port."""

import json
import select
import signal
import socket
import sqlite3
import time

from harness import Conn, chat_body, check, contains, eq, http, time_limit, wait_until


def refused(port):
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1)
    except ConnectionRefusedError:
        return True
    except OSError:
        return True
    s.close()
    return False


@time_limit(30)
def test_sigterm_drains_inflight_request_then_exits_0(fx):
    m, gw = fx.mock_and_gateway(server={"drain_timeout_s": 5})
    m.faults(latency_ms=1000)
    c = fx.conn(gw.port)
    idle = fx.conn(gw.port)  # an idle keep-alive connection: closed by the drain
    idle.request("GET", "/health/liveliness", key=None)
    eq(idle.read_response().status, 200, "idle connection's first request")
    t0 = time.monotonic()
    c.request("POST", "/v1/chat/completions", chat_body(content="in flight"))
    wait_until(lambda: m.stats()["in_flight"] == 1, 2, "the request to reach the provider")
    gw.proc.signal(signal.SIGTERM)
    # New connections are refused while the in-flight request finishes.
    wait_until(lambda: refused(gw.port), 0.8, "the listener to close after SIGTERM")
    pending, _, _ = select.select([c.sock], [], [], 0)
    check(not pending, "the listener closed while the request was still in flight")
    check(gw.proc.alive(), "the gateway waits for the in-flight request")
    r = c.read_response(timeout=5)
    eq(r.status, 200, "the in-flight request completes (%s)" % r.text)
    check(r.json()["choices"][0]["message"]["content"], "with its answer")
    eq((r.header("connection") or "").lower(), "close", "Connection: close while draining")
    check(time.monotonic() - t0 >= 0.9, "it was really in flight (latency 1 s)")
    eq(gw.proc.wait(5), 0, "exit code after the drain")
    check(idle.closed_by_peer(1), "the idle keep-alive connection was closed")


@time_limit(30)
def test_sigint_exits_0_when_idle(fx):
    m, gw = fx.mock_and_gateway()
    eq(gw.chat().status, 200, "a request first")
    t0 = time.monotonic()
    gw.proc.signal(signal.SIGINT)
    eq(gw.proc.wait(5), 0, "exit code after SIGINT")
    check(time.monotonic() - t0 < 2, "an idle gateway stops at once")


@time_limit(30)
def test_drain_deadline_bounds_shutdown(fx):
    m, gw = fx.mock_and_gateway(server={"drain_timeout_s": 1})
    m.faults(hang=True)
    c = fx.conn(gw.port)
    c.request("POST", "/v1/chat/completions", chat_body())
    wait_until(lambda: m.stats()["hangs"] == 1, 2, "the request to reach the provider")
    t0 = time.monotonic()
    gw.proc.signal(signal.SIGTERM)
    code = gw.proc.wait(6)
    took = time.monotonic() - t0
    check(took <= 3.0, "a hung request does not hold the shutdown past drain_timeout_s 1 "
                       "(took %.1fs)" % took)
    check(took >= 0.8, "the drain waited for the in-flight request (%.1fs)" % took)
    check(code in (0, 1), "exit code after a drain deadline: %r" % code)
    # The abandoned client gets an answer or a closed connection, never silence.
    try:
        r = c.read_response(timeout=2)
        check(r.status >= 500, "a request cut by the drain deadline gets a 5xx, got %d"
              % r.status)
    except Exception:
        check(c.closed_by_peer(1), "or its connection is closed")


@time_limit(30)
def test_shutdown_delay_serves_on_with_readiness_503_then_drains(fx):
    # server.shutdown_delay_s: after SIGTERM the gateway goes on serving, new connections too,
    # while readiness says "draining", so a load balancer takes it out before the listener closes.
    m, gw = fx.mock_and_gateway(server={"shutdown_delay_s": 3, "drain_timeout_s": 5})
    eq(http(gw.port, "GET", "/health/readiness", key=None).status, 200, "ready before")
    t0 = time.monotonic()
    gw.proc.signal(signal.SIGTERM)
    wait_until(lambda: http(gw.port, "GET", "/health/readiness", key=None).status == 503, 1,
               "readiness to answer 503 after SIGTERM")
    r = http(gw.port, "GET", "/health/readiness", key=None)
    eq(r.json()["status"], "draining", "readiness body")
    eq(gw.chat().status, 200, "a new connection is still served during the delay")
    check(time.monotonic() - t0 < 2.5, "all of that within the delay")
    wait_until(lambda: refused(gw.port), 4, "the listener to close after the delay")
    check(time.monotonic() - t0 >= 2.9, "not before the delay (%.2fs)" % (time.monotonic() - t0))
    eq(gw.proc.wait(5), 0, "exit code")


def _rows(db):
    con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
    try:
        return con.execute("SELECT status, error_type, deployment FROM slogate_requests").fetchall()
    finally:
        con.close()


@time_limit(30)
def test_drain_deadline_answers_what_it_cuts_and_records_it(fx):
    # At the drain deadline a request still waiting for its provider gets a 503 that says the
    # gateway is shutting down, and a stream already under way ends with an error event: the
    # client learns its answer is incomplete, and the row says why, not "client went away".
    m = fx.mock(tps=5, tokens=200)
    db = fx.path("drain.db")
    cfg = fx.config([m], server={"drain_timeout_s": 1}, general={"database_url": "sqlite://" + db})
    gw = fx.gateway(cfg)
    s = fx.conn(gw.port)
    s.request("POST", "/v1/chat/completions", chat_body(stream=True))
    wait_until(lambda: m.stats()["in_flight"] == 1, 3, "the stream to reach the provider")
    time.sleep(0.5)  # a few tokens reach the client
    w = fx.conn(gw.port)
    m.faults(hang=True)
    w.request("POST", "/v1/chat/completions", chat_body())
    wait_until(lambda: m.stats()["hangs"] == 1, 3, "the second request to reach the provider")
    gw.proc.signal(signal.SIGTERM)
    r = s.read_response(timeout=5)
    eq(r.status, 200, "the stream began before the signal")
    events = r.sse_events()
    check(len(events) > 2, "some tokens went out before the deadline (%d events)" % len(events))
    last = json.loads(events[-1])
    eq(last.get("error", {}).get("code"), "gateway_shutdown",
       "the stream ends with an error event (%s)" % events[-1][:300])
    contains(last["error"]["message"], "drain_timeout_s", "which says what cut it")
    check("[DONE]" not in events, "no [DONE] after a cut stream")
    r = w.read_response(timeout=5)
    eq(r.status, 503, "the waiting request is answered 503 (%s)" % r.text[:300])
    eq(r.error()["code"], "gateway_shutdown", "error code")
    check(r.header("x-request-id"), "the 503 carries its request id")
    eq(gw.proc.wait(5), 0, "exit code")
    got = sorted(_rows(db))
    eq(got, [(200, "gateway_shutdown", "primary"), (503, "gateway_shutdown", "primary")],
       "both cut requests are rows that say the shutdown cut them")


@time_limit(30)
def test_restart_on_same_port(fx):
    m = fx.mock()
    cfg = fx.config([m])
    gw = fx.gateway(cfg)
    port = gw.port
    eq(gw.chat().status, 200, "first instance")
    gw.proc.signal(signal.SIGTERM)
    eq(gw.proc.wait(5), 0, "first instance exits 0")
    gw2 = fx.gateway(cfg, args=["--port", str(port)], name="gateway2")
    eq(gw2.port, port, "the second instance binds the same port right away")
    eq(gw2.chat().status, 200, "second instance")


@time_limit(30)
def test_a_second_instance_on_a_taken_port_exits_instead_of_sharing_it(fx):
    # The workers' listeners set SO_REUSEPORT; a second slogate must not join the first one's
    # port and take part of its traffic with another config.
    m = fx.mock()
    gw = fx.gateway(fx.config([m]), workers=2)
    other = fx.config([m], master_key="sk-other-instance")
    path = fx.write_config(other, name="other.yaml")
    r = fx.cli(["serve", "-c", path, "--port", str(gw.port), "--workers", "2"], timeout=10)
    eq(r.code, 1, "the second instance exits 1 (%s)" % r.err)
    contains(r.err, "already in use", "it says the port is taken")
    contains(r.err, str(gw.port), "and which port")
    for i in range(20):
        eq(gw.chat().status, 200, "request %d goes to the first instance" % i)


@time_limit(30)
def test_concurrent_requests_during_sigterm_all_answered(fx):
    m, gw = fx.mock_and_gateway(workers=2, server={"drain_timeout_s": 5})
    m.faults(latency_ms=500)
    conns = []
    for i in range(6):
        c = Conn(gw.port)
        fx.sockets.append(c)
        c.request("POST", "/v1/chat/completions", chat_body(content="req %d" % i))
        conns.append(c)
    wait_until(lambda: m.stats()["in_flight"] == 6, 3, "six requests in flight")
    gw.proc.signal(signal.SIGTERM)
    statuses = [c.read_response(timeout=5).status for c in conns]
    eq(statuses, [200] * 6, "every in-flight request is answered")
    eq(gw.proc.wait(5), 0, "exit code")


def test_sigpipe_does_not_kill_the_servers(fx):
    # A client that hangs up while its answer is being written makes write() raise SIGPIPE; a
    # server must ignore it (MSG_NOSIGNAL / SIG_IGN) or one rude client stops the gateway. The
    # race is hard to hit on purpose, so deliver the signal directly: same effect, every time.
    m, gw = fx.mock_and_gateway()
    demo = fx.spawn(["demo", "--port", "0", "--workers", "1"], "demo")
    demo.wait_line(r"http://127\.0\.0\.1:\d+")
    dead = []
    for name, proc in (("slogate serve", gw.proc), ("slogate mock", m.proc),
                       ("slogate demo", demo)):
        proc.signal(signal.SIGPIPE)
        time.sleep(0.2)
        if not proc.alive():
            dead.append("%s (exit %s)" % (name, proc.p.returncode))
    eq(dead, [], "processes killed by SIGPIPE (they must ignore it)")
    eq(gw.chat().status, 200, "the gateway still serves")
