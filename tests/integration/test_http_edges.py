"""The HTTP layer at the edges of HTTP/1.1, on raw sockets, as a client sees it: absolute-form
targets (accepted, RFC 9112 3.2.2), a #fragment (dropped), Host (required once, a host[:port]),
CONNECT and OPTIONS * (405), HEAD (answered as GET without the body),
transfer codings other than chunked (501/400), versions other than 1.0/1.1 (505), a request target
over the limit (414), bare LF line ends (400 that says so). Every refusal closes the connection
and, on a model endpoint, carries an x-request-id and is recorded as a row."""

import os
import sqlite3
import time

from harness import MASTER_KEY, check, contains, eq, http, http_refused, wait_until

CHAT = b"/v1/chat/completions"
AUTH = b"Authorization: Bearer " + MASTER_KEY.encode() + b"\r\n"
BODY = b'{"model":"app/chat","messages":[{"role":"user","content":"Hello"}]}'


def gateway(fx):
    m = fx.mock()
    cfg = fx.config([m], general={"database_url": "sqlite://" + fx.path("t.db")})
    return m, fx.gateway(cfg)


def post(target=CHAT, version=b"HTTP/1.1", host=b"Host: 127.0.0.1\r\n", extra=b"",
         body=BODY, length=True):
    """A chat POST as bytes, with the parts a test wants wrong."""
    head = b"POST " + target + b" " + version + b"\r\n" + host + AUTH
    head += b"Content-Type: application/json\r\n" + extra
    if length:
        head += b"Content-Length: %d\r\n" % len(body)
    return head + b"\r\n" + body


def rows(path, ids):
    """{request_id: (status, error_type)} of the stored rows among `ids`."""
    if not os.path.exists(path):
        return {}
    con = sqlite3.connect("file:%s?mode=ro" % path, uri=True, timeout=5)
    try:
        got = con.execute("SELECT request_id, status, error_type FROM slogate_requests").fetchall()
    except sqlite3.OperationalError:
        return {}
    finally:
        con.close()
    return dict((i, (s, e)) for i, s, e in got if i in ids)


def test_absolute_form_target_is_routed_by_its_path(fx):
    m, gw = gateway(fx)
    # What a client configured with the gateway as its HTTP proxy sends.
    c = fx.conn(gw.port)
    c.send(post(target=b"http://127.0.0.1:%d/v1/chat/completions" % gw.port))
    r = c.read_response()
    eq(r.status, 200, "an absolute-form chat request (%s)" % r.text[:300])
    check(r.json()["choices"][0]["message"]["content"], "a chat answer")
    check(r.header("x-request-id"), "x-request-id on the answer")
    eq(m.stats()["chat"], 1, "the request reached the provider")
    # The query goes with the path; no path is "/"; the authority is not the Host's business.
    c.send(b"GET HTTP://elsewhere.example/health/liveliness?x=1 HTTP/1.1\r\nHost: a\r\n\r\n")
    eq(c.read_response().status, 200, "an absolute-form GET, on the same connection")
    c.send(b"GET http://127.0.0.1 HTTP/1.1\r\nHost: a\r\n\r\n")
    r = c.read_response()
    eq(r.status, 404, "http://host alone is the path /")
    contains(r.error()["message"], "Invalid URL (GET /)", "routed as /")
    # Asterisk-form outside OPTIONS, authority-form outside CONNECT, other schemes: 400.
    http_refused(fx, gw, b"GET * HTTP/1.1\r\nHost: a\r\n\r\n", 400,
            "the request target * (asterisk-form) is only for OPTIONS", "GET *")
    http_refused(fx, gw, b"POST 127.0.0.1:%d HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n"
            % gw.port, 400, "host:port alone is only for CONNECT", "authority-form POST")
    http_refused(fx, gw, post(target=b"ftp://127.0.0.1/v1/chat/completions"), 400,
            "scheme is not http or https", "an ftp:// target")
    http_refused(fx, gw, post(target=b"http://user:pw@127.0.0.1/v1/chat/completions"), 400,
            "user information", "userinfo in the target")
    # A #fragment is not part of what is asked for (RFC 3986 3.5): dropped, as nginx does.
    c = fx.conn(gw.port)
    c.send(post(target=b"/v1/chat/completions#section"))
    r = c.read_response()
    eq(r.status, 200, "a chat request whose target has a #fragment (%s)" % r.text[:300])
    c.send(b"GET http://a/health/liveliness?x=1#top HTTP/1.1\r\nHost: a\r\n\r\n")
    eq(c.read_response().body, b'"I\'m alive!"', "an absolute-form GET with a query and #fragment")
    c.send(b"GET /#x HTTP/1.1\r\nHost: a\r\n\r\n")
    contains(c.read_response().error()["message"], "Invalid URL (GET /)", "'/#x' is routed as /")


def test_connect_and_options_asterisk_name_no_resource(fx):
    m, gw = gateway(fx)
    c = fx.conn(gw.port)
    for raw, says in ((b"CONNECT api.openai.com:443 HTTP/1.1\r\nHost: api.openai.com:443\r\n\r\n",
                       "CONNECT api.openai.com:443 is not supported: this server is not a forward "
                       "proxy"),
                      (b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
                       "OPTIONS * is not supported: ask about a path")):
        c.send(raw)
        r = c.read_response()
        eq(r.status, 405, raw.split(b"\r\n")[0].decode())
        eq(r.header("allow"), "", "an empty Allow: the target takes no method")
        contains(r.error()["message"], says, "the message")
        # The connection stays HTTP after a refused CONNECT (RFC 9110 9.3.6: only a 2xx tunnels).
        c.send(b"GET /health/liveliness HTTP/1.1\r\nHost: a\r\n\r\n")
        eq(c.read_response().status, 200, "the same connection serves on")
    eq(m.stats()["chat"], 0, "nothing reached the provider")


def test_host_header_required_once(fx):
    m, gw = gateway(fx)
    r = http_refused(fx, gw, post(host=b""), 400, "HTTP/1.1 request without Host header", "no Host")
    check(r.header("x-request-id"), "a refusal on a model endpoint has an x-request-id")
    http_refused(fx, gw, post(host=b"Host: a\r\nHost: b\r\n"), 400, "more than one Host header",
            "two Host headers")
    http_refused(fx, gw, b"GET /health/liveliness HTTP/1.1\r\n\r\n", 400, "without Host header",
            "no Host on a GET")
    # A Host that is no host[:port] (RFC 9110 7.2), as nginx refuses it.
    for bad in (b"a/b", b"a b", b"h:8x", b"[::1", b"user@h", b"h\\x"):
        http_refused(fx, gw, post(host=b"Host: " + bad + b"\r\n"), 400,
                     'the Host header "%s" is not a host with an optional :port' % bad.decode(),
                     "Host: %s" % bad.decode())
    c = fx.conn(gw.port)
    for good in (b"[::1]:8080", b"", b"localhost:", b"xn--bcher-kva.example:4000", b"10.0.0.1"):
        c.send(b"GET /health/liveliness HTTP/1.1\r\nHost: " + good + b"\r\n\r\n")
        eq(c.read_response().status, 200, "Host: %s" % good.decode())
    # HTTP/1.0 needs none.
    c = fx.conn(gw.port)
    c.send(b"GET /health/liveliness HTTP/1.0\r\n\r\n")
    r = c.read_response()
    eq(r.status, 200, "HTTP/1.0 without Host (%s)" % r.text)
    eq(r.body, b'"I\'m alive!"', "the liveness answer")
    eq(m.stats()["chat"], 0, "nothing reached the provider")


def comparable(r):
    """An answer's headers but its Date, and its x-request-id's length (each answer its own)."""
    return [(k, len(v) if k == "x-request-id" else v) for k, v in r.headers if k != "date"]


def test_head_answers_as_get_without_body(fx):
    m, gw = gateway(fx)
    c = fx.conn(gw.port)
    for path in ("/health/liveliness", "/health/readiness", "/v1/models", "/models"):
        c.request("GET", path)
        g = c.read_response()
        eq(g.status, 200, "GET %s" % path)
        c.request("HEAD", path)
        h = c.read_response(head_only_method=True)
        eq(h.status, g.status, "HEAD %s: the GET's status" % path)
        eq(comparable(h), comparable(g), "HEAD %s: the GET's headers" % path)
        eq(h.header("content-length"), str(len(g.body)), "HEAD %s: the GET body's length" % path)
        # No body followed: the next answer on this connection starts with its status line.
        c.request("GET", path)
        eq(c.read_response().body, g.body, "GET %s after the HEAD, same connection" % path)
    # /metrics changes between two requests (process gauges): its HEAD has a length and no body
    # (the next answer on the connection is read right).
    c.request("HEAD", "/metrics")
    h = c.read_response(head_only_method=True)
    eq(h.status, 200, "HEAD /metrics")
    eq(h.header("content-type"), "text/plain; version=0.0.4; charset=utf-8", "its Content-Type")
    check(int(h.header("content-length")) > 100, "HEAD /metrics has a Content-Length")
    c.request("HEAD", "/metrics", key="wrong")
    eq(c.read_response(head_only_method=True).status, 401, "HEAD /metrics with a wrong key")
    # Where only POST is taken, HEAD is a 405 (without a body); where GET is, Allow lists HEAD.
    c.request("HEAD", "/v1/chat/completions")
    h = c.read_response(head_only_method=True)
    eq(h.status, 405, "HEAD on the chat endpoint")
    eq(h.header("allow"), "POST", "Allow on the chat endpoint")
    for method, path, allow in (("PUT", "/metrics", "GET, HEAD"),
                                ("POST", "/health/liveliness", "GET, HEAD"),
                                ("PATCH", "/admin/faults", "GET, HEAD, POST, DELETE")):
        c.request(method, path, body="{}")
        r = c.read_response()
        eq(r.status, 405, "%s %s" % (method, path))
        eq(r.header("allow"), allow, "Allow on %s %s" % (method, path))
    c.request("GET", "/health/liveliness", close=True)
    eq(c.read_response().status, 200, "the connection still serves after all that")


def test_transfer_codings_other_than_chunked(fx):
    m, gw = gateway(fx)
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)
    r = http_refused(fx, gw, post(extra=b"Transfer-Encoding: gzip, chunked\r\n", body=chunked,
                             length=False), 501, "Transfer-Encoding \"gzip, chunked\" is not "
                "implemented", "gzip, chunked")
    eq(r.reason, "Not Implemented", "reason phrase")
    eq(r.error()["code"], "not_implemented", "error code")
    check(r.header("x-request-id"), "x-request-id on the 501")
    http_refused(fx, gw, post(extra=b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
                         body=chunked, length=False), 501, "is not implemented",
            "gzip and chunked on two lines")
    http_refused(fx, gw, post(extra=b"Transfer-Encoding: gzip\r\n", body=b"", length=False), 400,
            "does not end with chunked", "gzip alone")
    http_refused(fx, gw, post(extra=b"Transfer-Encoding: chunked\r\n", body=chunked), 400,
            "Content-Length and Transfer-Encoding together", "chunked with Content-Length")
    http_refused(fx, gw, post(version=b"HTTP/1.0", extra=b"Transfer-Encoding: chunked\r\n",
                         body=chunked, length=False), 400, "HTTP/1.0", "chunked in HTTP/1.0")
    # The one coding implemented still works, in any letter case.
    c = fx.conn(gw.port)
    c.send(post(extra=b"Transfer-Encoding: Chunked\r\n", body=chunked, length=False))
    eq(c.read_response().status, 200, "a chunked chat request")
    eq(m.stats()["chat"], 1, "only that one reached the provider")


def test_http_versions_other_than_1_0_and_1_1(fx):
    m, gw = gateway(fx)
    for v in (b"HTTP/2.0", b"HTTP/1.2", b"HTTP/3.0", b"HTTP/9.9", b"HTTP/0.9"):
        r = http_refused(fx, gw, post(version=v), 505,
                    "%s is not supported: the gateway speaks HTTP/1.1" % v.decode(), v.decode())
        eq(r.reason, "HTTP Version Not Supported", "reason phrase")
        check(r.header("x-request-id"), "x-request-id on the 505 (%s)" % v.decode())
    # HTTP/2 with prior knowledge on the HTTP/1.1 port.
    http_refused(fx, gw, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505, "HTTP/2.0 is not supported",
            "the HTTP/2 preface")
    # A request line without a version (HTTP/0.9's), or with a malformed one: 400.
    http_refused(fx, gw, b"GET /health/liveliness\r\n\r\n", 400, "no HTTP version", "no version")
    http_refused(fx, gw, b"GET /health/liveliness HTTP/1.x\r\nHost: a\r\n\r\n", 400,
            "malformed HTTP request", "HTTP/1.x")
    c = fx.conn(gw.port)
    c.send(post(version=b"HTTP/1.0"))
    eq(c.read_response().status, 200, "HTTP/1.0 is served")
    eq(m.stats()["chat"], 1, "only the HTTP/1.0 request reached the provider")


def test_target_over_the_limit_is_414_headers_431(fx):
    m, gw = gateway(fx)
    r = http_refused(fx, gw, post(target=CHAT + b"?pad=" + b"a" * 17000), 414,
                "the request target (URL) is longer than the limit of 16384 bytes", "17 KB target")
    eq(r.reason, "URI Too Long", "reason phrase")
    eq(r.error()["code"], "uri_too_long", "error code")
    check(r.header("x-request-id"), "x-request-id on the 414")
    http_refused(fx, gw, post(extra=b"X-Big: " + b"b" * 20000 + b"\r\n"), 431,
            "request headers are larger than the limit of 16384 bytes", "20 KB header")
    eq(m.stats()["chat"], 0, "nothing reached the provider")


def test_bare_lf_is_refused_and_said(fx):
    m, gw = gateway(fx)
    says = "must end with CRLF"
    http_refused(fx, gw, b"GET /health/liveliness HTTP/1.1\nHost: a\n\n", 400, says, "all bare LF")
    http_refused(fx, gw, b"GET /health/liveliness HTTP/1.1\nHost: a\r\n\r\n", 400, says,
            "bare LF after the request line")
    http_refused(fx, gw, b"GET /health/liveliness HTTP/1.1\r\nHost: a\r\n\n", 400, says,
            "bare LF as the blank line")
    http_refused(fx, gw, post(extra=b"Transfer-Encoding: chunked\r\n", length=False,
                         body=b"%x\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)), 400, says,
            "bare LF after a chunk size")
    http_refused(fx, gw, post(extra=b"Transfer-Encoding: chunked\r\n", length=False,
                         body=b"%x\r\n%sXY0\r\n\r\n" % (len(BODY), BODY)), 400,
            "not followed by CRLF", "a chunk's data followed by XY")
    http_refused(fx, gw, post(extra=b"X-Folded: a\r\n b\r\n"), 400, "obsolete line folding",
            "a folded header line")
    eq(m.stats()["chat"], 0, "nothing reached the provider")


def test_framing_read_two_ways_is_refused_and_said(fx):
    # llhttp read the body of an empty Transfer-Encoding by its Content-Length, and took a header
    # line without a name; a proxy in front may read either another way. Two Content-Length were
    # refused with a message about Transfer-Encoding, which the request did not have.
    m, gw = gateway(fx)
    http_refused(fx, gw, post(extra=b"Transfer-Encoding: \r\n"), 400,
            "an empty Transfer-Encoding header", "an empty Transfer-Encoding")
    http_refused(fx, gw, post(extra=b": x\r\n"), 400, "a header line without a name",
            "a header line without a name")
    http_refused(fx, gw, post(extra=b"Content-Length: %d\r\n" % len(BODY)), 400,
            "more than one Content-Length header", "Content-Length twice, the same")
    eq(m.stats()["chat"], 0, "nothing reached the provider")


def test_client_leaving_mid_request_is_recorded(fx):
    # A client that hangs up while it sends its request on a model endpoint: mid-head once the
    # path was read, mid-body, after an Expect: 100-continue, mid-chunked body. Each is a row
    # (499, client_disconnected) as a hang-up while the provider answers is; nginx logs them too.
    m, gw = gateway(fx)
    whole = post()
    partial = [whole[:whole.index(b"Content-Type")], whole[:-10],
               post(extra=b"Expect: 100-continue\r\n")[:-len(BODY)],
               post(extra=b"Transfer-Encoding: chunked\r\n", length=False, body=b"5\r\n{\"mo")]
    db = fx.path("t.db")
    for raw in partial:
        c = fx.conn(gw.port)
        c.send(raw)
        time.sleep(0.1)
        c.close()
    # Elsewhere, and before the path was read, it is no request of the gateway's records.
    for raw in (whole.replace(CHAT, b"/elsewhere")[:-10], whole[:10]):
        c = fx.conn(gw.port)
        c.send(raw)
        time.sleep(0.1)
        c.close()

    def gone():
        if not os.path.exists(db):
            return []
        con = sqlite3.connect("file:%s?mode=ro" % db, uri=True, timeout=5)
        try:
            return con.execute("SELECT status, error_type FROM slogate_requests").fetchall()
        except sqlite3.OperationalError:
            return []
        finally:
            con.close()
    wait_until(lambda: len(gone()) >= len(partial), 10, "%d rows in SQLite" % len(partial))
    time.sleep(0.3)
    eq(gone(), [(499, "client_disconnected")] * len(partial), "a row for each, and only those")
    eq(m.stats()["chat"], 0, "nothing reached the provider")
    eq(gw.chat().status, 200, "the gateway serves on")


def test_refusals_on_model_endpoints_are_recorded(fx):
    m, gw = gateway(fx)
    cases = [
        (post(host=b""), 400, "bad_request"),
        (post(extra=b"Transfer-Encoding: gzip, chunked\r\n", length=False,
              body=b"0\r\n\r\n"), 501, "not_implemented"),
        (post(version=b"HTTP/2.0"), 505, "http_version_not_supported"),
        (post(target=CHAT + b"?pad=" + b"a" * 17000), 414, "uri_too_long"),
        (post(target=b"http://127.0.0.1/v1/chat/completions", host=b""), 400, "bad_request"),
    ]
    ids = {}
    for raw, status, code in cases:
        for target, model in ((CHAT, True), (b"/elsewhere", False)):
            c = fx.conn(gw.port)
            c.send(raw.replace(CHAT, target, 1))
            r = c.read_response(timeout=5)
            eq(r.status, status, "%s refused (%s)" % (code, r.text[:200]))
            rid = r.header("x-request-id")
            if model:
                check(rid, "x-request-id on the %d on the chat endpoint" % status)
                ids[rid] = (status, code)
            else:
                eq(rid, None, "no x-request-id on a refusal elsewhere (%d)" % status)
    db = fx.path("t.db")
    wait_until(lambda: len(rows(db, ids)) == len(ids), 10, "%d rows in SQLite" % len(ids))
    time.sleep(0.3)
    eq(rows(db, ids), ids, "each refusal's row: its status and error type")
    eq(m.stats()["chat"], 0, "nothing reached the provider")


def test_refusals_on_the_messages_endpoint_are_in_anthropics_shape(fx):
    # Anthropic's SDK reads {"type":"error","error":{"type":...,"message":...}} to pick its
    # exception; an OpenAI-shaped body would surface as an unknown error. The chat endpoint keeps
    # OpenAI's shape.
    m, gw = gateway(fx)
    big = b'{"model":"app/chat","max_tokens":5,"messages":[{"role":"user","content":"' + \
        b"x" * (9 * 1024 * 1024) + b'"}]}'
    for target, raw_body, status, etype in ((b"/v1/messages", big, 413, "request_too_large"),
                                            (b"/v1/messages", BODY, 505, "api_error")):
        raw = post(target=target, body=raw_body,
                   version=b"HTTP/1.1" if status == 413 else b"HTTP/2.0")
        c = fx.conn(gw.port)
        try:
            c.send(raw)
        except OSError:
            pass  # the gateway answered the 413 and shut its side while we were still sending
        r = c.read_response(timeout=5)
        eq(r.status, status, "%s: status (%s)" % (target, r.text[:200]))
        j = r.json()
        eq(j.get("type"), "error", "%d on %s: Anthropic's shape (%s)" % (status, target, r.text))
        eq(j["error"]["type"], etype, "%d: Anthropic's error type" % status)
        check(j["error"]["message"], "%d: a message" % status)
        check(r.header("x-request-id"), "%d: the request id" % status)
        eq(r.header("request-id"), r.header("x-request-id"),
           "%d: the id also as request-id, which Anthropic's SDK reads" % status)
    r = http_refused(fx, gw, post(version=b"HTTP/2.0"), 505, "HTTP/2.0", "chat endpoint")
    eq(r.json()["error"]["code"], "http_version_not_supported", "the chat endpoint: OpenAI's shape")


def test_cors_lets_a_browser_page_call_the_gateway(fx):
    # A page on another origin calls with fetch(): the browser first sends a preflight (OPTIONS
    # with Access-Control-Request-Method), then the request, and lets the page read the answer
    # only when it names the origin (or "*"), and its headers only when exposed. By default every
    # origin may, as LiteLLM's proxy and OpenAI's API allow (the key is the credential).
    from harness import chat_body, http
    origin = {"Origin": "https://app.example"}
    preflight = dict(origin, **{"Access-Control-Request-Method": "POST",
                                "Access-Control-Request-Headers": "authorization,content-type"})
    m, gw = fx.mock_and_gateway()
    r = http(gw.port, "OPTIONS", "/v1/chat/completions", headers=preflight, key=None)
    eq(r.status, 200, "preflight (%s)" % r.text)
    eq(r.header("access-control-allow-origin"), "*", "preflight: any origin")
    contains(r.header("access-control-allow-methods", ""), "POST", "preflight: methods")
    eq(r.header("access-control-allow-headers"), "authorization,content-type",
       "preflight: the headers asked for, Authorization among them")
    for stream in (False, True):
        r = http(gw.port, "POST", "/v1/chat/completions", chat_body(stream=stream), headers=origin)
        eq(r.status, 200, "stream=%s (%s)" % (stream, r.text[:200]))
        eq(r.header("access-control-allow-origin"), "*", "stream=%s: the page may read it" % stream)
        eq(r.header("access-control-expose-headers"), "*", "stream=%s: and x-request-id" % stream)
    r = http(gw.port, "POST", "/v1/chat/completions", chat_body(), headers=origin, key="sk-wrong")
    eq((r.status, r.header("access-control-allow-origin")), (401, "*"), "an error is readable too")
    r = http(gw.port, "POST", "/v1/chat/completions", chat_body())
    eq(r.header("access-control-allow-origin"), None, "no Origin: no CORS headers")
    eq(m.stats()["chat"], 3, "the preflight reached no provider")

    # Listed origins: the one that matches is named (and Vary: Origin); another gets nothing.
    m2, gw2 = fx.mock_and_gateway(server={"cors_origins": ["https://app.example",
                                                            "http://localhost:3000"]})
    r = http(gw2.port, "OPTIONS", "/v1/chat/completions",
             headers=dict(preflight, Origin="http://localhost:3000"), key=None)
    eq((r.status, r.header("access-control-allow-origin")), (200, "http://localhost:3000"),
       "a listed origin's preflight")
    r = http(gw2.port, "GET", "/v1/models", headers=origin)
    eq(r.header("access-control-allow-origin"), "https://app.example", "a listed origin")
    eq(r.header("vary"), "Origin", "caches keep one answer per origin")
    r = http(gw2.port, "OPTIONS", "/v1/chat/completions",
             headers=dict(preflight, Origin="https://evil.example"), key=None)
    eq(r.header("access-control-allow-origin"), None, "an origin not listed: no CORS headers")
    check(r.status in (401, 405), "and no preflight answer (%d)" % r.status)


def test_every_answer_carries_a_request_id(fx):
    # OpenAI and Anthropic put a request id on every answer, and their SDKs show it
    # (response._request_id, APIError.requestID): a 404 a client reports names one too. The
    # Messages paths carry it as request-id as well.
    m, gw = gateway(fx)
    count = {"model": "app/chat", "messages": [{"role": "user", "content": "Hi"}]}
    cases = [("GET", "/v1/models", None, 200, False), ("GET", "/v1/models/app/chat", None, 200, False),
             ("GET", "/v1/models/nothing", None, 404, False), ("GET", "/nope", None, 404, False),
             ("DELETE", "/v1/chat/completions", None, 405, False),
             ("GET", "/v1/messages", None, 405, True),
             ("POST", "/v1/messages/count_tokens", count, 200, True),
             ("GET", "/health/readiness", None, 200, False),
             ("GET", "/admin/deployments", None, 200, False), ("GET", "/admin/nope", None, 404, False)]
    seen = set()
    for method, path, body, status, twice in cases:
        r = http(gw.port, method, path, body)
        eq(r.status, status, "%s %s (%s)" % (method, path, r.text[:200]))
        rid = r.header("x-request-id")
        check(rid and len(rid) == 32 and rid not in seen, "%s %s: a new x-request-id (%r)" %
              (method, path, rid))
        seen.add(rid)
        eq(r.header("request-id"), rid if twice else None, "%s %s: request-id" % (method, path))
    eq(m.stats()["chat"], 0, "nothing reached the provider")
