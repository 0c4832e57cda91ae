"""Errors a client sees: auth, bad requests, unknown models, upstream failures. OpenAI-shaped."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from harness import (Conn, MASTER_KEY, chat_body, check, contains, eq, free_port, http,
                     time_limit, wait_until)


def test_401_without_key_wrong_key_wrong_scheme(fx):
    m, gw = fx.mock_and_gateway()
    cases = [
        ("no Authorization header", {}, None),
        ("wrong key", {}, "sk-wrong"),
        ("right key, wrong scheme", {"Authorization": "Basic " + MASTER_KEY}, None),
        ("right key, no scheme", {"Authorization": MASTER_KEY}, None),
        ("empty bearer", {"Authorization": "Bearer "}, None),
        ("key with a suffix", {}, MASTER_KEY + "x"),
        ("key prefix", {}, MASTER_KEY[:-1]),
    ]
    for what, headers, key in cases:
        r = http(gw.port, "POST", "/v1/chat/completions", chat_body(), headers=headers, key=key)
        eq(r.status, 401, what + " (%s)" % r.text)
        e = r.error()
        eq(e["code"], "invalid_api_key", what + ": error code")
        check(MASTER_KEY not in r.text, what + ": the answer does not reveal the master key")
    # The bearer scheme is case-insensitive (RFC 7235).
    r = http(gw.port, "POST", "/v1/chat/completions", chat_body(),
             headers={"Authorization": "bearer " + MASTER_KEY}, key=None)
    eq(r.status, 200, "lower-case 'bearer' scheme (%s)" % r.text)
    eq(m.stats()["chat"], 1, "only the authenticated request reached the provider")

    # A key sent only as a chunked body's trailer field is no key: trailers are not headers.
    body = json.dumps(chat_body()).encode()
    with Conn(gw.port) as c:
        c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
               b"Content-Type: application/json\r\n\r\n%x\r\n%s\r\n0\r\n"
               b"Authorization: Bearer %s\r\n\r\n" % (len(body), body, MASTER_KEY.encode()))
        r = c.read_response()
    eq(r.status, 401, "a key in the trailer (%s)" % r.text)
    eq(m.stats()["chat"], 1, "the trailer-keyed request did not reach the provider")


def test_400_bad_json_says_what_is_wrong(fx):
    m, gw = fx.mock_and_gateway()
    cases = [
        ("not JSON", b"{\"model\": \"app/chat\", \"messages\": [", None),
        ("trailing garbage", b'{"model":"app/chat","messages":[{"role":"user","content":"x"}]}xyz',
         None),
        ("NaN", b'{"model":"app/chat","messages":[{"role":"user","content":"x"}],'
                b'"temperature":NaN}', None),
        ("a JSON array", b'[{"model":"app/chat"}]', None),
        ("empty body", b"", None),
        ("missing messages", b'{"model":"app/chat"}', "messages"),
        ("messages not an array", b'{"model":"app/chat","messages":"hi"}', "messages"),
        ("missing model", b'{"messages":[{"role":"user","content":"x"}]}', "model"),
        ("invalid UTF-8", b'{"model":"app/chat","messages":[{"role":"user","content":"\xff"}]}',
         None),
    ]
    for what, body, word in cases:
        r = http(gw.port, "POST", "/v1/chat/completions", body)
        eq(r.status, 400, what + " (%s)" % r.text)
        e = r.error()
        eq(e["type"], "invalid_request_error", what + ": error type")
        if word:
            contains(e["message"], word, what + ": the message names the field")
    eq(m.stats()["requests"], 0, "no bad request reached the provider")


def test_400_names_the_field_in_param(fx):
    # OpenAI's SDKs show error.param: the field a refused body got wrong, as OpenAI names it.
    # A stream_options whose include_usage is no boolean, or that comes without a stream, is
    # refused as OpenAI refuses it, not read as "no usage" or passed on.
    m, gw = fx.mock_and_gateway()
    msg = [{"role": "user", "content": "x"}]
    cases = [
        ("model a number", {"model": 5, "messages": msg}, "model"),
        ("missing messages", {"model": "app/chat"}, "messages"),
        ("messages not an array", {"model": "app/chat", "messages": "hi"}, "messages"),
        ("empty messages", {"model": "app/chat", "messages": []}, "messages"),
        ("stream a string", {"model": "app/chat", "messages": msg, "stream": "yes"}, "stream"),
        ("stream_options not an object",
         {"model": "app/chat", "messages": msg, "stream": True, "stream_options": [True]},
         "stream_options"),
        ("include_usage a string",
         {"model": "app/chat", "messages": msg, "stream": True,
          "stream_options": {"include_usage": "yes"}}, "stream_options.include_usage"),
        ("stream_options without stream",
         {"model": "app/chat", "messages": msg, "stream_options": {"include_usage": True}},
         "stream_options"),
        ("missing model", {"messages": msg}, None),
    ]
    for what, body, param in cases:
        r = gw.chat(body)
        eq(r.status, 400, what + " (%s)" % r.text)
        eq(r.error()["param"], param, what + ": param")
        if param:
            contains(r.error()["message"], param, what + ": the message names it")
    r = http(gw.port, "POST", "/v1/embeddings", {"model": "app/chat"})
    eq((r.status, r.error()["param"]), (400, "input"), "embeddings without input (%s)" % r.text)
    eq(m.stats()["requests"], 0, "no refused body reached the provider")
    r = gw.chat(chat_body(stream=True, stream_options={"include_usage": None}))
    eq(r.status, 200, "include_usage null: no usage asked (%s)" % r.text[:300])
    check(all("usage" not in json.loads(d) for d in r.sse_events() if d != "[DONE]"),
          "include_usage null: no usage member on any chunk")


def test_404_unknown_model(fx):
    m, gw = fx.mock_and_gateway()
    r = gw.chat(chat_body(model="gpt-5-turbo-ultra"))
    eq(r.status, 404, "unknown alias (%s)" % r.text)
    e = r.error()
    eq(e["code"], "model_not_found", "error code")
    contains(e["message"], "gpt-5-turbo-ultra", "the message names the model")
    # The provider's own model id is not an alias either.
    eq(gw.chat(chat_body(model="gpt-4o-mini")).status, 404, "provider model id as the model")
    eq(m.stats()["requests"], 0, "the provider was not called")


@time_limit(30)
def test_502_unreachable_upstream_names_deployment(fx):
    port = free_port()
    gw = fx.gateway(fx.config(["http://127.0.0.1:%d/v1" % port]))
    r = gw.chat()
    eq(r.status, 502, "upstream unreachable (%s)" % r.text)
    e = r.error()
    contains(e["message"], "primary", "the message names the deployment")
    eq(r.header("x-slogate-deployment"), "primary", "x-slogate-deployment on the error")
    # The gateway is still fine afterwards.
    eq(http(gw.port, "GET", "/health/liveliness", key=None).status, 200, "liveliness after")


def test_502_upstream_500_names_deployment_and_status(fx):
    m, gw = fx.mock_and_gateway()
    m.faults(status=500)
    r = gw.chat()
    eq(r.status, 502, "upstream answered 500 (%s)" % r.text)
    e = r.error()
    contains(e["message"], "primary", "the message names the deployment")
    contains(e["message"], "500", "the message names the upstream status")
    eq(m.stats()["by_status"].get("500"), 1, "the provider answered one 500")
    m.clear_faults()
    eq(gw.chat().status, 200, "after the provider recovers")


def test_upstream_client_errors_pass_through_unchanged(fx):
    m, gw = fx.mock_and_gateway()
    for status in (400, 404, 422):
        m.faults(status=status)
        r = gw.chat()
        eq(r.status, status, "upstream %d is returned as is (%s)" % (status, r.text))
        e = r.error()
        contains(e["message"], "provider-a", "the provider's own error body is relayed")
    m.clear_faults()
    # An invalid request the gateway cannot see (a role the provider rejects) comes back as 400.
    r = gw.chat({"model": "app/chat", "messages": [{"role": "wizard", "content": "x"}]})
    eq(r.status, 400, "provider-side validation error (%s)" % r.text)
    contains(r.error()["message"].lower(), "role", "the provider's message")


class canned_upstream:
    """A provider on a loopback port answering every POST with `status`, `content_type` and
    `body(path)`; `with canned_upstream(...) as url:` gives its base URL and stops it after."""

    def __init__(self, status, content_type, body):
        class Upstream(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                self.rfile.read(int(self.headers["Content-Length"]))
                data = body(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.srv = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)

    def __enter__(self):
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        return "http://127.0.0.1:%d" % self.srv.server_port

    def __exit__(self, *a):
        self.srv.shutdown()
        self.srv.server_close()


def test_a_providers_plain_text_error_comes_in_the_clients_shape(fx):
    # A 400 that is not JSON (a proxy in front of the provider, say) still reaches an OpenAI
    # client as an OpenAI error, its text as the message.
    with canned_upstream(400, "text/plain", lambda path: b"bad request from the edge proxy") as url:
        gw = fx.gateway(fx.config([url + "/v1"]))
        r = gw.chat()
        eq(r.status, 400, "the provider's 400 (%s)" % r.text)
        eq(r.header("content-type"), "application/json", "content type")
        contains(r.error()["message"], "bad request from the edge proxy", "its text")


def test_upstream_wrong_key_is_not_the_clients_fault(fx):
    m = fx.mock(key="the-real-key")
    gw = fx.gateway(fx.config([m], api_key="a-revoked-key"))
    r = gw.chat()
    check(r.status != 401,
          "a provider rejecting the deployment's key must not look like the client's bad key "
          "(got 401: %s)" % r.text)
    check(r.status in (502, 503), "provider 401 -> 502/503, got %d: %s" % (r.status, r.text))
    contains(r.error()["message"], "primary", "the message names the deployment")


def test_405_and_404_are_openai_shaped(fx):
    m, gw = fx.mock_and_gateway()
    # A 405 names the methods the path takes in Allow, as HTTP requires, and its message says
    # which to use (HEAD, which the HTTP layer adds to Allow, goes without saying); admin paths
    # alike.
    for method, path, want, allow in (("DELETE", "/v1/chat/completions", 405, "POST"),
                                      ("PUT", "/metrics", 405, "GET, HEAD"),
                                      ("PATCH", "/admin/faults", 405, "GET, HEAD, POST, DELETE"),
                                      ("PUT", "/admin/deployments", 405, "GET, HEAD"),
                                      ("GET", "/admin/deployments/primary/pin", 405, "POST"),
                                      ("DELETE", "/admin/reload", 405, "POST"),
                                      ("PUT", "/admin/bypass", 405, "GET, HEAD, POST"),
                                      ("POST", "/admin/faults/primary", 405, "DELETE"),
                                      ("GET", "/admin/nothing", 404, None),
                                      ("GET", "/nothing-here", 404, None)):
        with Conn(gw.port) as c:
            c.request(method, path, None)
            r = c.read_response()
        eq(r.status, want, "%s %s (%s)" % (method, path, r.text[:200]))
        eq(r.header("allow"), allow, "Allow on %s %s" % (method, path))
        msg = r.error()["message"]
        if allow:
            contains(msg, "use " + allow.replace(", HEAD", ""), "the message says what to use")


@time_limit(30)
def test_hung_upstream_is_504_after_its_timeout(fx):
    # stream_timeout bounds the wait for a stream's first byte and, for a non-streamed answer,
    # for its head (DESIGN §7); timeout bounds the whole attempt when stream_timeout is unset.
    m, gw = fx.mock_and_gateway(stream_timeout=1, timeout=2)
    m.faults(hang=True)
    for what, body, limit in (("stream", chat_body(stream=True), 1.0),
                              ("non-streaming", chat_body(), 1.0)):
        t0 = time.monotonic()
        r = gw.chat(body)
        took = time.monotonic() - t0
        eq(r.status, 504, "%s request to a provider that never answers (%s)" % (what, r.text))
        contains(r.error()["message"], "primary", "%s: the message names the deployment" % what)
        check(limit * 0.8 <= took <= limit + 1.5,
              "%s: 504 after about %.0f s, took %.2fs" % (what, limit, took))
    wait_until(lambda: m.stats()["in_flight"] == 0, 2,
               "the timed-out upstream requests to be abandoned (mock in_flight 0)")
    eq(m.stats()["aborted"], 2, "the provider saw both requests abandoned")
    # With timeout alone (no stream_timeout) the whole answer is bounded: 504 `timeout` too.
    cfg = fx.config([m], timeout=1)
    del cfg["model_list"][0]["litellm_params"]["stream_timeout"]
    gw2 = fx.gateway(cfg, name="gateway2")
    r = gw2.chat(chat_body())
    eq(r.status, 504, "a provider that never answers, timeout 1 s (%s)" % r.text)
    eq(r.error()["code"], "timeout", "error code")
    contains(r.error()["message"], "did not complete the response within 1000 ms", "the reason")
    # Every attempt timing out, over a failover too, is a 504 naming each deployment; one
    # attempt that failed otherwise makes it a 502.
    m2 = fx.mock(name="mock2", hang=True)
    gw3 = fx.gateway(fx.config([m, m2], stream_timeout=0.5), name="gateway3")
    r = gw3.chat(chat_body())
    eq(r.status, 504, "both deployments never answer (%s)" % r.text)
    eq(r.error()["code"], "first_byte_timeout", "error code")
    contains(r.error()["message"], "secondary", "the message names the second attempt")
    eq(r.header("x-slogate-attempts"), "2", "two attempts")
    m2.faults(hang=False, status=500)
    r = gw3.chat(chat_body())
    eq(r.status, 502, "a timeout, then a 500 (%s)" % r.text)
    m.clear_faults()
    eq(gw.chat().status, 200, "after the provider recovers")


@time_limit(30)
def test_a_200_that_is_no_answer_fails_over_or_says_so(fx):
    # Broken providers (and proxies in front of them) answer 200 with nothing, an HTML page or an
    # answer cut short. None of that is relayed as a success: a whole answer fails over, and
    # the final error says what the 200 was; a stream already relayed ends with an error event.
    bad = fx.mock("provider-a", malformed="html")
    good = fx.mock("provider-b")
    cfg = fx.config([bad, good])
    cfg["router_settings"] = {"allowed_fails": 100}  # every request meets the broken provider
    gw = fx.gateway(cfg)
    for kind in ("html", "empty", "cut"):
        bad.faults(malformed=kind)
        r = gw.chat(chat_body())
        eq(r.status, 200, "%s: the second deployment answers (%s)" % (kind, r.text[:300]))
        eq(r.header("x-slogate-deployment"), "secondary", "%s: answered by" % kind)
        eq(r.header("x-slogate-attempts"), "2", "%s: after one failed attempt" % kind)
        r.json()
    cfg = fx.config([bad])
    cfg["router_settings"] = {"allowed_fails": 100}
    alone = fx.gateway(cfg, name="alone")
    for kind, stream, why in (("html", False, "HTTP 200 but its body is not a valid answer"),
                              ("empty", False, "HTTP 200 but its body is not a valid answer"),
                              ("cut", False, "HTTP 200 but its body is not a valid answer"),
                              ("html", True, "HTTP 200 but it is not an event stream "
                                             "(Content-Type: text/html"),
                              ("empty", True, "HTTP 200 but its stream ended before its first event")):
        bad.faults(malformed=kind)
        r = alone.chat(chat_body(stream=stream))
        eq(r.status, 502, "%s%s alone (%s)" % (kind, " stream" if stream else "", r.text[:300]))
        contains(r.error()["message"], why, "%s: the message says what the 200 was" % kind)
    # A stream cut short but ended cleanly: the client has tokens already, so it gets an error
    # event instead of [DONE], and no success is recorded.
    bad.faults(malformed="cut")
    r = alone.chat(chat_body(stream=True))
    eq(r.status, 200, "the stream began")
    events = r.sse_events()
    check("[DONE]" not in events, "no [DONE] relayed for a cut stream")
    last = json.loads(events[-1])
    eq(last.get("error", {}).get("code"), "stream_interrupted", "ends with an error event")
    contains(last["error"]["message"], "ended without [DONE]", "which says why")
