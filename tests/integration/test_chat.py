"""The OpenAI surface through the gateway: chat (JSON), models, health, connection reuse."""

import json
import re
import threading
import time

from harness import (MASTER_KEY, build_request, chat, chat_body, check, contains, eq,
                     established_to, http, time_limit)

PROXY_HEADERS = ["x-request-id", "x-slogate-deployment", "x-slogate-provider",
                 "x-slogate-attempts", "x-slogate-failover-hops", "x-slogate-cache",
                 "x-slogate-latency-ms", "x-slogate-overhead-us"]


def check_proxy_headers(r, deployment="primary"):
    for h in PROXY_HEADERS:
        check(r.header(h) is not None, "response lacks header %s; headers: %r" % (h, r.headers))
    eq(r.header("x-slogate-deployment"), deployment, "x-slogate-deployment")
    eq(r.header("x-slogate-provider"), "openai", "x-slogate-provider")
    eq(r.header("x-slogate-attempts"), "1", "x-slogate-attempts")
    eq(r.header("x-slogate-failover-hops"), "0", "x-slogate-failover-hops")
    check(re.fullmatch(r"\d+", r.header("x-slogate-latency-ms")),
          "x-slogate-latency-ms is a number: %r" % r.header("x-slogate-latency-ms"))
    check(re.fullmatch(r"\d+", r.header("x-slogate-overhead-us")),
          "x-slogate-overhead-us is a number: %r" % r.header("x-slogate-overhead-us"))
    check(len(r.header("x-request-id")) >= 8, "x-request-id looks like an id")


def test_overhead_leaves_out_the_clients_upload(fx):
    # The headers, then the body a second later: the latency counts the wait, the gateway's own
    # time (x-slogate-overhead-us) does not.
    m, gw = fx.mock_and_gateway()
    body = json.dumps(chat_body()).encode()
    c = fx.conn(gw.port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nAuthorization: Bearer "
           + MASTER_KEY.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body))
    time.sleep(1.0)
    c.send(body)
    r = c.read_response()
    eq(r.status, 200, "status (%s)" % r.text)
    check(int(r.header("x-slogate-latency-ms")) >= 1000, "latency counts the upload: %s ms"
          % r.header("x-slogate-latency-ms"))
    check(int(r.header("x-slogate-overhead-us")) < 500000, "overhead leaves it out: %s us"
          % r.header("x-slogate-overhead-us"))


def test_chat_nonstreaming_reaches_provider_with_its_model_and_key(fx):
    m, gw = fx.mock_and_gateway()
    body = chat_body(content="What is the capital of France?", temperature=0.2)
    r = gw.chat(body)
    eq(r.status, 200, "status (%s)" % r.text)
    contains(r.header("content-type", ""), "application/json", "content-type")
    j = r.json()
    eq(j.get("object"), "chat.completion", "object")
    msg = j["choices"][0]["message"]
    eq(msg["role"], "assistant", "role")
    contains(msg["content"], "Mock answer from provider-a", "answer text")
    check(j["usage"]["completion_tokens"] > 0, "usage is relayed: %r" % j.get("usage"))
    check_proxy_headers(r)
    last = m.last()
    eq(last["path"], "/v1/chat/completions", "path the provider received")
    eq(last["model"], "gpt-4o-mini", "model the provider received (provider id, not the alias)")
    eq(last["authorization"], "Bearer key-a", "key the provider received (deployment's own)")
    check(MASTER_KEY not in json.dumps(last), "the client's key never reaches the provider")
    eq(last["body"]["messages"], body["messages"], "messages forwarded unchanged")
    eq(last["body"].get("temperature"), 0.2, "other parameters forwarded")
    s = m.stats()
    eq(s["chat"], 1, "chat requests the provider counted")
    eq(s["by_status"], {"200": 1}, "statuses the provider answered")


def test_chat_without_v1_prefix(fx):
    m, gw = fx.mock_and_gateway()
    r = gw.chat(path="/chat/completions")
    eq(r.status, 200, "POST /chat/completions (%s)" % r.text)
    eq(r.json()["object"], "chat.completion", "object")
    eq(m.last()["path"], "/v1/chat/completions", "upstream path is api_base + /chat/completions")


def test_request_ids_differ(fx):
    m, gw = fx.mock_and_gateway()
    ids = {gw.chat().header("x-request-id") for _ in range(5)}
    eq(len(ids), 5, "five requests get five x-request-id values")


def test_models_list(fx):
    m = fx.mock()
    cfg = fx.config([m])
    cfg["model_list"].append({"model_name": "app/chat-lite",
                              "litellm_params": {"model": "openai/gpt-4o-mini", "api_key": "k",
                                                 "api_base": m.url}})
    cfg["model_list"].append({"model_name": "app/chat",
                              "litellm_params": {"model": "openai/gpt-4o", "api_key": "k",
                                                 "api_base": m.url, "order": 2}})
    gw = fx.gateway(cfg)
    r = http(gw.port, "GET", "/v1/models")
    eq(r.status, 200, "GET /v1/models (%s)" % r.text)
    j = r.json()
    eq(j.get("object"), "list", "object")
    ids = [d["id"] for d in j["data"]]
    eq(sorted(ids), ["app/chat", "app/chat-lite"], "one entry per alias, not per deployment")
    for d in j["data"]:
        eq(d.get("object"), "model", "data[].object")
    eq(http(gw.port, "GET", "/v1/models", key=None).status, 401, "models without a key")
    eq(m.stats()["requests"], 0, "listing models does not call the provider")


def test_models_retrieve(fx):
    # The SDKs' models.retrieve("app/chat") is GET /v1/models/app/chat: the id as it is, its '/'
    # included. It answers the entry /v1/models lists; a name nothing serves is the 404 a chat
    # request with it gets.
    m, gw = fx.mock_and_gateway()
    listed = http(gw.port, "GET", "/v1/models").json()["data"][0]
    for path in ("/v1/models/app/chat", "/models/app/chat", "/v1/models/app%2Fchat"):
        r = http(gw.port, "GET", path)
        eq(r.status, 200, "GET %s (%s)" % (path, r.text))
        eq(r.json(), listed, "GET %s: the entry /v1/models lists" % path)
    r = http(gw.port, "GET", "/v1/models/gpt-5-turbo-ultra")
    eq(r.status, 404, "unknown model (%s)" % r.text)
    eq(r.error()["code"], "model_not_found", "unknown model: error code")
    contains(r.error()["message"], "gpt-5-turbo-ultra", "the message names the model")
    eq(http(gw.port, "GET", "/v1/models/app/chat", key=None).status, 401, "without a key")
    r = http(gw.port, "DELETE", "/v1/models/app/chat")
    eq(r.status, 405, "DELETE (%s)" % r.text)
    eq(r.header("allow"), "GET, HEAD", "DELETE: Allow")
    eq(m.stats()["requests"], 0, "retrieving a model does not call the provider")


def test_health_endpoints_need_no_key(fx):
    m, gw = fx.mock_and_gateway()
    r = http(gw.port, "GET", "/health/liveliness", key=None)
    eq(r.status, 200, "GET /health/liveliness (%s)" % r.text)
    r = http(gw.port, "GET", "/health/readiness", key=None)
    eq(r.status, 200, "GET /health/readiness (%s)" % r.text)
    j = r.json()
    eq(j.get("status"), "healthy", "readiness status")
    r = http(gw.port, "GET", "/health/readiness", key="sk-wrong")
    eq(r.status, 200, "readiness ignores a wrong key")


def test_unknown_path_and_method(fx):
    m, gw = fx.mock_and_gateway()
    r = http(gw.port, "GET", "/v1/nope")
    eq(r.status, 404, "unknown path (%s)" % r.text)
    r.error()
    r = http(gw.port, "GET", "/v1/chat/completions")
    eq(r.status, 405, "GET on the chat path (%s)" % r.text)
    r.error()


@time_limit(40)
def test_keepalive_reuses_upstream_connections(fx):
    m, gw = fx.mock_and_gateway(workers=1)
    before = m.stats()["connections_accepted"]  # counts the stats call's own connection
    c = fx.conn(gw.port)
    for i in range(50):
        c.request("POST", "/v1/chat/completions", chat_body(content="ping %d" % i))
        r = c.read_response()
        eq(r.status, 200, "request %d on one client connection (%s)" % (i, r.text))
        check(r.header("connection", "").lower() != "close",
              "the gateway keeps the client connection open (request %d)" % i)
    # While the client connection is open, the gateway holds its pooled connection(s).
    est = established_to(m.port)
    after = m.stats()["connections_accepted"]
    opened = after - before - 1  # minus this stats call's own connection
    eq(m.stats()["chat"], 50, "chat requests the provider received")
    check(1 <= opened <= gw.workers,
          "50 sequential requests opened %d upstream connections; want <= %d (one pool per "
          "worker)" % (opened, gw.workers))
    if est is not None:
        check(len(est) >= 1, "ss shows no established connection to the mock port %d" % m.port)
        mine = [ln for ln in est if "pid=%d," % gw.proc.pid in ln] if "pid=" in "".join(est) \
            else est
        check(1 <= len(mine) <= gw.workers,
              "ss: the gateway holds %d established connections to the mock (want 1..%d): %r"
              % (len(mine), gw.workers, est))


def test_pipelined_requests_answered_in_order(fx):
    m, gw = fx.mock_and_gateway()
    c = fx.conn(gw.port)
    # max_tokens tells the answers apart: the mock stops each answer at its own length.
    reqs = b"".join([
        build_request("POST", "/v1/chat/completions", chat_body(content="one", max_tokens=3)),
        build_request("GET", "/health/liveliness", key=None),
        build_request("POST", "/v1/chat/completions", chat_body(model="app/none")),
        build_request("POST", "/v1/chat/completions", chat_body(content="two", max_tokens=7)),
    ])
    c.send(reqs)  # all four in one write
    rs = [c.read_response() for _ in range(4)]
    eq([r.status for r in rs], [200, 200, 404, 200], "statuses, in request order")
    eq(rs[2].error()["code"], "model_not_found", "third answer is the unknown model's")
    eq(rs[0].json()["usage"]["completion_tokens"], 3, "first answer is the first request's")
    eq(rs[3].json()["usage"]["completion_tokens"], 7, "fourth answer is the fourth request's")
    eq(m.stats()["chat"], 2, "chat requests the provider received")


def test_chunked_request_body_accepted(fx):
    m, gw = fx.mock_and_gateway()
    body = json.dumps(chat_body(content="sent in chunks")).encode()
    parts = [body[:10], body[10:25], body[25:]]
    wire = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"
    c = fx.conn(gw.port)
    c.send(b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
           + MASTER_KEY.encode() + b"\r\nContent-Type: application/json\r\n"
           b"Transfer-Encoding: chunked\r\n\r\n")
    c.send(wire[:7])
    time.sleep(0.05)
    c.send(wire[7:])
    r = c.read_response()
    eq(r.status, 200, "chunked request body (%s)" % r.text)
    eq(m.last()["body"]["messages"][0]["content"], "sent in chunks", "body the provider got")


@time_limit(30)
def test_two_workers_both_serve(fx):
    m, gw = fx.mock_and_gateway(workers=2)
    eq(gw.workers, 2, "workers in the banner")
    seen = set()
    errors = []

    def one():
        try:
            r = http(gw.port, "GET", "/health/readiness", key=None)
            if r.status != 200:
                errors.append(r.status)
            else:
                seen.add(r.json().get("worker"))
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    deadline = time.monotonic() + 15
    while len(seen) < 2 and time.monotonic() < deadline:
        ts = [threading.Thread(target=one) for _ in range(8)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
    eq(errors, [], "errors from concurrent readiness checks")
    eq(sorted(seen), [0, 1], "workers that answered (SO_REUSEPORT spreads connections)")
    # And each answers a chat, concurrently.
    results = []

    def ch():
        results.append(chat(gw.port).status)

    ts = [threading.Thread(target=ch) for _ in range(8)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    eq(results, [200] * 8, "concurrent chats through two workers")


@time_limit(30)
def test_large_body_forwarded_whole_and_fast(fx):
    # 2 MB of prompt: above the size where libcurl would add `Expect: 100-continue` and wait.
    m, gw = fx.mock_and_gateway()
    body = chat_body(content="z" * (2 * 1024 * 1024))
    t0 = time.monotonic()
    r = gw.chat(body, timeout=20)
    took = time.monotonic() - t0
    eq(r.status, 200, "a 2 MB request (%s)" % r.text[:300])
    last = m.last()
    eq(len(last["body"]["messages"][0]["content"]), 2 * 1024 * 1024, "the whole prompt arrived")
    check("expect" not in {k.lower() for k in last["headers"]},
          "no Expect header sent upstream: %r" % last["headers"].get("expect"))
    check(took < 0.9, "a 2 MB request took %.2fs through the gateway (an Expect: 100-continue "
                      "wait costs 1 s)" % took)
    eq(r.json()["usage"]["prompt_tokens"], (2 * 1024 * 1024 + 3) // 4 + 4,
       "prompt tokens the provider counted for the whole prompt")
