"""HTTP limits and protocol errors, on raw sockets: 413, 431, 400, 408, idle timeout; the
open-files limit."""

import json
import signal
import socket
import sqlite3
import sys
import time

from harness import (MASTER_KEY, ConnClosed, Gateway, Mock, Proc, TestFailure, chat_body, check, eq,
                     http_refused, time_limit)

SERVER = {"header_timeout_s": 1, "idle_timeout_s": 1, "drain_timeout_s": 5}
SMALL = {"max_request_size_mb": 0.01}  # 10 KiB (10485 bytes)


def gateway(fx, **kw):
    return fx.mock_and_gateway(server=SERVER, general=SMALL, **kw)


def still_serving(gw):
    r = gw.chat()
    eq(r.status, 200, "the gateway still serves afterwards (%s)" % r.text)


def test_413_body_over_max_request_size(fx):
    m, gw = gateway(fx)
    big = chat_body(content="x" * 20000)
    r = gw.chat(big)
    eq(r.status, 413, "a 20 KB body with max_request_size_mb 0.01 (%s)" % r.text)
    e = r.error()
    eq(e["type"], "invalid_request_error", "error type")
    # A client that sends its whole body before it reads (as the SDKs do) gets the 413 too, not a
    # connection reset: after answering, the gateway reads and drops the rest of the body.
    r = gw.chat(chat_body(content="z" * 8000000))
    eq(r.status, 413, "an 8 MB body sent whole before reading (%s)" % r.text[:200])
    # Announced by Content-Length, the gateway can answer before the body is sent.
    c = fx.conn(gw.port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
           + MASTER_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
           b"Content-Length: 50000000\r\n\r\n")
    r = c.read_response(timeout=5)
    eq(r.status, 413, "Content-Length: 50000000 answered without the body")
    check(c.closed_by_peer(), "the connection is closed after a 413")
    # Chunked, no length known in advance: counted as it arrives.
    c = fx.conn(gw.port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
           + MASTER_KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n")
    try:
        for _ in range(10):
            c.send(b"1000\r\n" + b"a" * 4096 + b"\r\n")
    except OSError:
        pass  # the gateway may close while we still send: that is the point
    r = c.read_response(timeout=5)
    eq(r.status, 413, "a chunked body growing past the limit")
    # Just under the limit passes.
    ok = chat_body(content="y" * 9000)
    check(len(json.dumps(ok)) < 10485, "test body under the limit")
    eq(gw.chat(ok).status, 200, "a 9 KB body passes")
    eq(m.stats()["chat"], 1, "only the body under the limit reached the provider")


@time_limit(30)
def test_413_chunked_body_counted_by_its_data(fx):
    m, gw = gateway(fx)
    # A chunk announced past the limit is answered at its size line, while the client still holds
    # its data back (it was answered once the data had come: never, for this client).
    c = fx.conn(gw.port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
           + MASTER_KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n4000\r\n{")
    r = c.read_response(timeout=5)
    eq(r.status, 413, "a 16 KB chunk announced (%s)" % r.text)
    check(c.closed_by_peer(), "the connection is closed after the 413")
    # The framing is not the body: 9 KB of JSON sent in 1-byte chunks with an extension each
    # (280 KB on the wire) is under a 10 KB limit. It was a 413.
    body = json.dumps(chat_body(content="y" * 8900)).encode()
    check(len(body) < 10485, "test body under the limit")
    wire = b"".join(b"1;ext=padding-padding\r\n%s\r\n" % body[i:i + 1] for i in range(len(body)))
    c = fx.conn(gw.port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
           + MASTER_KEY.encode() + b"\r\nTransfer-Encoding: chunked\r\n\r\n" + wire
           + b"0\r\n\r\n")
    r = c.read_response(timeout=10)
    eq(r.status, 200, "a 9 KB body in 1-byte chunks (%s)" % r.text[:300])
    eq(m.stats()["chat"], 1, "it reached the provider")


@time_limit(30)
def test_request_still_arriving_at_the_drain_deadline_gets_a_503(fx):
    # A client still sending its body when the drain deadline passes is told why the gateway
    # stops there (it was closed without a word), and the request is a row.
    db = fx.path("t.db")
    m, gw = fx.mock_and_gateway(server=dict(SERVER, drain_timeout_s=1),
                                general=dict(SMALL, database_url="sqlite://" + db))
    c = fx.conn(gw.port)
    body = json.dumps(chat_body()).encode()
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
           + MASTER_KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body[:10])
    time.sleep(0.2)
    gw.proc.signal(signal.SIGTERM)
    r = c.read_response(timeout=5)
    eq(r.status, 503, "the answer at the drain deadline (%s)" % r.text)
    eq(r.error()["code"], "gateway_shutdown", "error code")
    check("drain deadline" in r.error()["message"], "the message says why: %s" % r.text)
    check(r.header("x-request-id"), "x-request-id on the 503")
    check(c.closed_by_peer(), "the connection is closed")
    eq(gw.proc.wait(10), 0, "the gateway exits 0")
    con = sqlite3.connect(db)
    try:
        got = con.execute("SELECT request_id, status, error_type FROM slogate_requests").fetchall()
    finally:
        con.close()
    eq(got, [(r.header("x-request-id"), 503, "gateway_shutdown")], "its row")
    eq(m.stats()["chat"], 0, "nothing reached the provider")


def test_431_header_block_too_large(fx):
    m, gw = gateway(fx)
    c = fx.conn(gw.port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
           + MASTER_KEY.encode() + b"\r\n" + b"X-Filler: " + b"a" * 100000 + b"\r\n\r\n")
    r = c.read_response(timeout=5)
    eq(r.status, 431, "a 100 KB header block (%s)" % r.text)
    r.error()
    c = fx.conn(gw.port)
    many = b"".join(b"X-H%d: v\r\n" % i for i in range(5000))
    c.send(b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\n" + many + b"\r\n")
    r = c.read_response(timeout=5)
    eq(r.status, 431, "5000 header fields")
    still_serving(gw)
    eq(m.stats()["chat"], 1, "the oversized requests never reached the provider")


def test_400_malformed_http(fx):
    m, gw = gateway(fx)
    cases = [
        (b"THIS IS NOT HTTP\r\n\r\n", "garbage request line"),
        # (a well-formed version other than 1.0/1.1 is a 505: test_http_edges.py)
        (b"GET /health/liveliness HTTP/1.x\r\nHost: x\r\n\r\n", "malformed version"),
        (b"GET /health/liveliness HTTP/1.1\r\nHost x\r\n\r\n", "header without a colon"),
        (b"GET /health/liveliness HTTP/1.1\r\nHost : x\r\n\r\n", "space before the colon"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
         b"Content-Length: 7\r\n\r\nhello", "two different Content-Length"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
         "non-numeric Content-Length"),
        (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
         b"zz\r\n", "bad chunk size"),
    ]
    for raw, what in cases:
        http_refused(fx, gw, raw, 400, None, what)
    still_serving(gw)


def test_request_smuggling_shapes_rejected(fx):
    m, gw = gateway(fx)
    # Content-Length and Transfer-Encoding together: never forward a request read two ways.
    c = fx.conn(gw.port)
    body = json.dumps(chat_body()).encode()
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
           + MASTER_KEY.encode() + b"\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
           + b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body))
    r = c.read_response(timeout=3)
    check(r.status in (400, 200),
          "CL+TE: either rejected (400) or read as chunked; got %d" % r.status)
    if r.status == 200:
        check(c.closed_by_peer(),
              "CL+TE accepted as chunked must close the connection afterwards (RFC 9112 6.1)")
    # Bare LF line endings.
    c = fx.conn(gw.port)
    c.send(b"GET /health/liveliness HTTP/1.1\nHost: x\n\n")
    r = c.read_response(timeout=3)
    eq(r.status, 400, "bare LF line endings")


@time_limit(20)
def test_408_slow_headers(fx):
    m, gw = gateway(fx)
    c = fx.conn(gw.port)
    t0 = time.monotonic()
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")  # ... and nothing more
    r = c.read_response(timeout=5)
    took = time.monotonic() - t0
    eq(r.status, 408, "headers not finished within header_timeout_s 1 (%s)" % r.text)
    check(0.8 <= took <= 3.0, "408 after about 1 s (header_timeout_s), took %.2fs" % took)
    r.error()
    check(c.closed_by_peer(), "the connection is closed after a 408")
    # Trickling bytes does not extend the header deadline.
    c = fx.conn(gw.port)
    t0 = time.monotonic()
    status = None
    try:
        for ch in b"GET /health/liveliness HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 40:
            c.send(bytes([ch]))
            time.sleep(0.1)
            if time.monotonic() - t0 > 3.5:
                break
    except OSError:
        pass
    try:
        status = c.read_response(timeout=3).status
    except ConnClosed:
        status = "closed"
    check(status in (408, "closed"),
          "a client trickling its header one byte per 100 ms is cut off (got %r)" % status)
    check(time.monotonic() - t0 < 4.5, "... within the header deadline")
    still_serving(gw)


@time_limit(20)
def test_idle_keepalive_connection_closed(fx):
    m, gw = gateway(fx)
    c = fx.conn(gw.port)
    c.request("GET", "/health/liveliness", key=None)
    eq(c.read_response().status, 200, "first request")
    t0 = time.monotonic()
    check(c.closed_by_peer(timeout=4), "an idle keep-alive connection is closed (idle_timeout_s 1)")
    took = time.monotonic() - t0
    check(0.7 <= took <= 3.0, "closed after about 1 s idle, took %.2fs" % took)
    # A connection that never sends anything is closed too.
    c = fx.conn(gw.port)
    check(c.closed_by_peer(timeout=4), "a silent connection is closed")
    eq(bytes(c.buf), b"", "... without an answer (it asked nothing: a 408 there would be read as "
       "the answer to the request a pooled client sends next)")


def test_many_connections_then_still_serving(fx):
    m, gw = gateway(fx)
    socks = []
    try:
        for _ in range(200):
            socks.append(socket.create_connection(("127.0.0.1", gw.port), timeout=5))
        still_serving(gw)
    finally:
        for s in socks:
            s.close()
    still_serving(gw)


# ---- the open-files limit: raised to the hard limit at start, a warning when that is short ----

# Sets RLIMIT_NOFILE to soft:hard, then becomes the command (same pid).
_WITH_NOFILE = ("import os, resource, sys; "
                "resource.setrlimit(resource.RLIMIT_NOFILE, (int(sys.argv[1]), int(sys.argv[2]))); "
                "os.execv(sys.argv[3], sys.argv[3:])")


def start_with_nofile(fx, soft, hard, args, name):
    return Proc(fx, [sys.executable, "-c", _WITH_NOFILE, str(soft), str(hard), fx.bin] + args, name)


def nofile_of(pid):
    """(soft, hard) open-files limit of a running process."""
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max open files"):
                soft, hard = line.split()[3:5]
                return int(soft), int(hard)
    raise TestFailure("no open-files line in /proc/%d/limits" % pid)


def mock_and_gateway_with_nofile(fx, soft, hard, server):
    mp = start_with_nofile(fx, soft, hard, ["mock", "--port", "0", "--log-level", "warn"], "mock")
    m = mp.wait_line(r"^mock (\S+) listening on http://127\.0\.0\.1:(\d+)$")
    mock = Mock(mp, m.group(1), int(m.group(2)))
    path = fx.write_config(fx.config([mock], server=server))
    gp = start_with_nofile(fx, soft, hard, ["serve", "-c", path, "--port", "0", "--workers", "1",
                                            "--log-level", "warn"], "gateway")
    m = gp.wait_line(r"^slogate listening on http://([\d.]+):(\d+)")
    return mock, Gateway(gp, int(m.group(2)), path)


def test_serve_and_mock_raise_their_open_files_limit(fx):
    # 100 connections need 2 x 100 + 64 descriptors: well under the hard limit, no warning.
    m, gw = mock_and_gateway_with_nofile(fx, 256, 4096, {"max_connections": 100})
    eq(nofile_of(gw.proc.pid), (4096, 4096), "serve raised its soft limit 256 to the hard 4096")
    eq(nofile_of(m.proc.pid), (4096, 4096), "mock raised its soft limit 256 to the hard 4096")
    still_serving(gw)
    check("open-files" not in gw.proc.stderr(), "no warning: %r" % gw.proc.stderr())


def test_serve_warns_when_the_hard_limit_is_below_max_connections(fx):
    # The default 10,000 connections per worker need 20,064 descriptors; the hard limit is 1000.
    m, gw = mock_and_gateway_with_nofile(fx, 256, 1000, None)
    eq(nofile_of(gw.proc.pid), (1000, 1000), "raised as far as the hard limit goes")
    err = gw.proc.stderr()
    check("warn" in err and "open-files limit is 1000" in err and "20064" in err
          and "server.max_connections" in err,
          "a warning names the limit, what is needed and the setting: %r" % err)
    still_serving(gw)
