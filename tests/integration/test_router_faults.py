"""The router and the upstream client under failure, beyond what `slogate mock` can fake: a
scripted provider in this process (RawUpstream) sends exactly the bytes a test wants, when it
wants (a trickled first event, a Retry-After as an HTTP date...), and a real redis-server is
stopped and resumed under the gateway.

Each test asserts what a user sees: status, body, x-slogate-* headers, what each provider
received, the router's view in GET /admin/deployments and /metrics. Waits poll; timing bounds are
generous (the suite runs under ASan on a shared 2-core machine).
"""

import email.utils
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time

from harness import (MASTER_KEY, MOCK_KEY, chat_body, check, contains, eq, http, time_limit,
                     wait_until)
from test_redis import start_redis


# ---- a scripted provider ---------------------------------------------------------------------

class RawUpstream:
    """A loopback HTTP/1.1 server whose answers are written by `handler(sock, req)`, one thread
    per connection. `req` is {"method", "path", "headers", "body"}; the handler writes what it
    likes and returns True to keep the connection for another request. Every request is kept in
    `self.requests`."""

    def __init__(self, fx, handler):
        self.handler = handler
        self.requests = []
        self.lock = threading.Lock()
        self.srv = socket.socket()
        self.srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(64)
        self.port = self.srv.getsockname()[1]
        self.url = "http://127.0.0.1:%d/v1" % self.port
        self.closed = False
        self.conns = []
        fx.sockets.append(self)
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.closed = True
        try:
            self.srv.close()
        except OSError:
            pass
        for c in list(self.conns):
            try:
                c.close()
            except OSError:
                pass

    def count(self):
        with self.lock:
            return len(self.requests)

    def _accept(self):
        while not self.closed:
            try:
                s, _ = self.srv.accept()
            except OSError:
                return
            self.conns.append(s)
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    def _serve(self, s):
        buf = b""
        try:
            while not self.closed:
                while b"\r\n\r\n" not in buf:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for ln in lines[1:]:
                    k, v = ln.split(":", 1)
                    headers[k.strip().lower()] = v.strip()
                n = int(headers.get("content-length", "0"))
                while len(buf) < n:
                    d = s.recv(65536)
                    if not d:
                        return
                    buf += d
                body, buf = buf[:n], buf[n:]
                req = {"method": method, "path": path, "headers": headers, "body": body}
                with self.lock:
                    self.requests.append(req)
                if not self.handler(s, req):
                    return
        except OSError:
            return
        finally:
            try:
                s.close()
            except OSError:
                pass


def answer(s, status, body, headers=(), close=False):
    """A whole HTTP/1.1 answer with a Content-Length."""
    data = body if isinstance(body, bytes) else body.encode()
    h = ["HTTP/1.1 %d X" % status, "Content-Type: application/json",
         "Content-Length: %d" % len(data)] + list(headers)
    if close:
        h.append("Connection: close")
    s.sendall(("\r\n".join(h) + "\r\n\r\n").encode() + data)


def completion(text="hi"):
    return json.dumps({"id": "x", "object": "chat.completion", "created": 1, "model": "gpt-4o-mini",
                       "choices": [{"index": 0, "message": {"role": "assistant", "content": text},
                                    "finish_reason": "stop"}],
                       "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}})


def chunk(text):
    return "data: " + json.dumps({"id": "x", "object": "chat.completion.chunk", "created": 1,
                                  "model": "gpt-4o-mini",
                                  "choices": [{"index": 0, "delta": {"content": text},
                                               "finish_reason": None}]}) + "\n\n"


# ---- config helpers --------------------------------------------------------------------------

def dep(alias, url, dep_id, order=1, **params):
    lp = {"model": "openai/gpt-4o-mini", "api_key": MOCK_KEY, "api_base": url, "order": order}
    lp.update(params)
    return {"model_name": alias, "litellm_params": lp, "model_info": {"id": dep_id}}


def config(deps, general=None, **router):
    gs = {"master_key": MASTER_KEY}
    gs.update(general or {})
    cfg = {"model_list": list(deps), "general_settings": gs}
    if router:
        cfg["router_settings"] = router
    return cfg


def deployments(gw):
    r = http(gw.port, "GET", "/admin/deployments")
    eq(r.status, 200, "GET /admin/deployments (%s)" % r.text)
    return {d["id"]: d for d in r.json()["deployments"]}


def metric(gw, name, **labels):
    r = http(gw.port, "GET", "/metrics")
    eq(r.status, 200, "GET /metrics")
    for ln in r.text.splitlines():
        if not ln.startswith(name + "{") and not ln.startswith(name + " "):
            continue
        if all('%s="%s"' % (k, v) in ln for k, v in labels.items()):
            return float(ln.rsplit(" ", 1)[1])
    return None


def readiness_redis(gw):
    return http(gw.port, "GET", "/health/readiness", key=None).json().get("redis")


# ---- time to first token ---------------------------------------------------------------------

@time_limit(40)
def test_stream_trickling_its_first_event_fails_over_at_stream_timeout(fx):
    """A provider that sends a 200 head and then its first event one byte at a time has no first
    token for as long as it trickles: stream_timeout caps the wait for the first event, not for
    the first byte of the body."""
    stop = threading.Event()

    def trickle(s, req):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        for ch in chunk("slow").encode():
            if stop.wait(0.2):
                return False
            s.sendall(b"1\r\n" + bytes([ch]) + b"\r\n")
        return False

    up = RawUpstream(fx, trickle)
    b = fx.mock(name="provider-b")
    gw = fx.gateway(config([dep("app/chat", up.url, "primary", 1, stream_timeout=1),
                            dep("app/chat", b.url, "secondary", 2, stream_timeout=1)],
                           timeout=20, allowed_fails=10))
    t0 = time.monotonic()
    r = gw.chat(chat_body(stream=True), timeout=30)
    took = time.monotonic() - t0
    stop.set()
    eq(r.status, 200, "status (%s)" % r.text[:300])
    eq(r.header("x-slogate-deployment"), "secondary", "the stream comes from the secondary")
    check(took < 6, "answered after %.1f s: the first event was awaited for the whole 20 s "
          "timeout instead of stream_timeout (1 s)" % took)
    d = deployments(gw)["primary"]
    eq(d["failures"], 1, "the trickling primary's first-token timeout counts as its failure")


# ---- Retry-After -----------------------------------------------------------------------------

@time_limit(30)
def test_429_retry_after_as_an_http_date_is_the_cooldown(fx):
    """RFC 9110 lets Retry-After be an HTTP date as well as seconds; a provider that sends a date
    4 s ahead is back in 4 s, not after cooldown_time (60 s here)."""
    def limited(s, req):
        when = email.utils.formatdate(time.time() + 4, usegmt=True)
        answer(s, 429, '{"error":{"message":"slow down","type":"rate_limit_error"}}',
               ["Retry-After: " + when])
        return True

    up = RawUpstream(fx, limited)
    b = fx.mock(name="provider-b")
    gw = fx.gateway(config([dep("app/chat", up.url, "primary", 1),
                            dep("app/chat", b.url, "secondary", 2)], cooldown_time=60))
    r = gw.chat()
    eq(r.status, 200, "the secondary answers (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "secondary", "answered by")
    d = deployments(gw)["primary"]
    eq(d["state"], "cooling", "a 429 cools the primary")
    check(1000 <= d["cooling_ms"] <= 5500,
          "the primary cools for what its Retry-After date says (about 4 s), not cooldown_time "
          "(60 s): cooling_ms %d" % d["cooling_ms"])


# ---- shared cooldowns: a Redis that stops answering -------------------------------------------

@time_limit(40)
def test_redis_that_stops_answering_is_said_and_sharing_resumes_after(fx):
    """A Redis that accepts connections but answers nothing (stopped, overloaded, a network
    black hole) is not "ok": readiness says cooldowns are local only, requests are served as
    usual, and the sharing comes back once it answers again."""
    rport = start_redis(fx)
    redis = [p for p in fx.procs if p.name == "redis"][0]
    a = fx.mock(name="provider-a", key="not-the-key")  # 401: cools at once
    b = fx.mock(name="provider-b")
    cfg = config([dep("app/chat", a.url, "primary", 1), dep("app/chat", b.url, "secondary", 2)],
                 general={"redis_url": "redis://127.0.0.1:%d/0" % rport}, cooldown_time=30)
    gw1 = fx.gateway(cfg, name="gateway-1")
    gw2 = fx.gateway(cfg, name="gateway-2")
    for gw in (gw1, gw2):
        wait_until(lambda: readiness_redis(gw) == "ok", 5, "the gateway to reach Redis")
    redis.signal(signal.SIGSTOP)
    try:
        wait_until(lambda: "unreachable" in readiness_redis(gw1), 6,
                   "readiness to say Redis stopped answering")
        t0 = time.monotonic()
        r = gw1.chat()
        eq(r.status, 200, "served on local state while Redis is silent (%s)" % r.text)
        check(time.monotonic() - t0 < 2, "the request did not wait for Redis")
        eq(deployments(gw1)["primary"]["state"], "cooling", "gateway-1 cooled the primary")
    finally:
        redis.signal(signal.SIGCONT)
    wait_until(lambda: readiness_redis(gw1) == "ok", 6, "readiness to say Redis is back")
    # The cooldown made while Redis was silent reaches the other instance once it answers.
    wait_until(lambda: deployments(gw2)["primary"]["state"] == "cooling", 6,
               "gateway-2 to adopt the cooldown gateway-1 made while Redis was silent")


# ---- the request deadline --------------------------------------------------------------------

@time_limit(40)
def test_deadline_never_starts_an_attempt_it_cannot_wait_for(fx):
    """The primary hangs and the deadline (router timeout) cuts its attempt: the answer is 504
    deadline_exceeded, and no attempt is started on the secondary with a millisecond or two left
    (it would time out at once and count as the healthy secondary's failure)."""
    a = fx.mock(name="provider-a", hang=True)
    b = fx.mock(name="provider-b")
    gw = fx.gateway(config([dep("app/chat", a.url, "primary", 1),
                            dep("app/chat", b.url, "secondary", 2)],
                           timeout=0.3, allowed_fails=100))
    for i in range(12):
        r = gw.chat()
        eq(r.status, 504, "request %d: status (%s)" % (i, r.text))
        eq(r.error()["code"], "deadline_exceeded", "request %d: error code" % i)
        eq(r.header("x-slogate-attempts"), "1", "request %d: attempts (%s)" % (i, r.text))
    eq(b.stats()["chat"], 0, "the secondary was never sent a request it had no time to answer")
    eq(deployments(gw)["secondary"]["failures"], 0, "the healthy secondary has no failure")


# ---- reload ----------------------------------------------------------------------------------

@time_limit(30)
def test_reload_moving_a_deployment_keeps_its_failure_counter(fx):
    """slogate_deployment_attempt_failures_total is a counter: a reload that changes a
    deployment's api_base starts its breaker afresh but must not make the counter go down
    (Prometheus would read a reset and rate() would jump)."""
    a = fx.mock(name="provider-a", status=500)
    a2 = fx.mock(name="provider-a2")
    b = fx.mock(name="provider-b")
    cfg = config([dep("app/chat", a.url, "primary", 1), dep("app/chat", b.url, "secondary", 2)],
                 allowed_fails=2, cooldown_time=30)
    gw = fx.gateway(cfg)
    for _ in range(2):
        eq(gw.chat().status, 200, "failover to the secondary")
    before = metric(gw, "slogate_deployment_attempt_failures_total", deployment="primary")
    eq(before, 2.0, "the primary's failures before the reload")
    eq(deployments(gw)["primary"]["state"], "cooling", "the primary cools at allowed_fails")
    cfg["model_list"][0]["litellm_params"]["api_base"] = a2.url
    fx.write_config(cfg, "gateway.yaml")
    r = http(gw.port, "POST", "/admin/reload")
    eq(r.status, 200, "reload (%s)" % r.text)
    eq(deployments(gw)["primary"]["state"], "healthy", "the moved deployment starts healthy")
    after = metric(gw, "slogate_deployment_attempt_failures_total", deployment="primary")
    check(after is not None and after >= before,
          "the failure counter went from %r to %r across the reload" % (before, after))
    r = gw.chat()
    eq(r.header("x-slogate-deployment"), "primary", "the moved primary serves again")


# ---- the upstream connection under failure ---------------------------------------------------

@time_limit(30)
def test_whole_answer_cut_mid_body_fails_over(fx):
    """A 200 head and half a body, then the connection closes: nothing reached the client, so
    the request fails over and the primary is charged one failure."""
    def cut(s, req):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 500\r\n\r\n{\"id\":\"x\",\"choi")
        return False

    up = RawUpstream(fx, cut)
    b = fx.mock(name="provider-b")
    gw = fx.gateway(config([dep("app/chat", up.url, "primary", 1),
                            dep("app/chat", b.url, "secondary", 2)], allowed_fails=10))
    r = gw.chat()
    eq(r.status, 200, "status (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "secondary", "answered by")
    eq(r.header("x-slogate-attempts"), "2", "attempts")
    eq(deployments(gw)["primary"]["failures"], 1, "the cut answer is the primary's failure")


@time_limit(30)
def test_kept_alive_connection_closed_by_the_provider_is_retried_once_fresh(fx):
    """The provider answers with keep-alive and then closes the idle connection: the next
    request, sent on the pooled connection, is re-sent once on a fresh one, and the client sees
    one clean answer from the primary with no failure counted."""
    def then_close(s, req):
        answer(s, 200, completion("ok"))
        time.sleep(0.2)  # the gateway has pooled it by now; close without saying so
        return False

    up = RawUpstream(fx, then_close)
    b = fx.mock(name="provider-b")
    gw = fx.gateway(config([dep("app/chat", up.url, "primary", 1),
                            dep("app/chat", b.url, "secondary", 2)]))
    for i in range(3):
        r = gw.chat()
        eq(r.status, 200, "request %d (%s)" % (i, r.text))
        eq(r.header("x-slogate-deployment"), "primary", "request %d: answered by" % i)
        eq(r.header("x-slogate-attempts"), "1", "request %d: attempts" % i)
        time.sleep(0.4)
    eq(up.count(), 3, "the primary got each request once")
    eq(deployments(gw)["primary"]["failures"], 0, "no failure counted")
    eq(b.stats()["chat"], 0, "nothing failed over")


# ---- hedging ---------------------------------------------------------------------------------

@time_limit(30)
def test_hedge_both_attempts_fail_lists_both_and_counts_both(fx):
    """num_retries 0, a hedge after 100 ms: the slow primary and its hedge both fail. The client
    gets one 502 listing both attempts; each deployment is charged once."""
    a = fx.mock(name="provider-a", latency_ms=400, status=500)
    b = fx.mock(name="provider-b", status=503)
    gw = fx.gateway(config([dep("app/chat", a.url, "primary", 1),
                            dep("app/chat", b.url, "secondary", 2)],
                           num_retries=0, hedge_after_ms=100, allowed_fails=10))
    r = gw.chat()
    eq(r.status, 502, "status (%s)" % r.text)
    eq(r.header("x-slogate-attempts"), "2", "attempts")
    msg = r.error()["message"]
    contains(msg, "2 attempts failed", "the message")
    contains(msg, "primary", "the message lists the primary")
    contains(msg, "secondary", "the message lists the hedge")
    d = deployments(gw)
    eq(d["primary"]["failures"], 1, "the primary's failures")
    eq(d["secondary"]["failures"], 1, "the secondary's failures")
    eq(d["primary"]["in_flight"] + d["secondary"]["in_flight"], 0, "nothing left in flight")


@time_limit(40)
def test_attempt_cut_short_by_the_deadline_is_not_the_deployments_failure(fx):
    """The primary hangs for its stream_timeout (1 s) and leaves the healthy secondary (0.8 s to
    answer, stream_timeout 2 s) 0.5 s of the 1.5 s deadline. The client gets 504
    deadline_exceeded, but the secondary was not given its own time: its timeout is the
    deadline's, not a failure of the secondary. Charging it would cool a healthy deployment and
    turn one hung provider into a total outage (503 for everyone)."""
    a = fx.mock(name="provider-a", hang=True)
    b = fx.mock(name="provider-b", latency_ms=800)
    gw = fx.gateway(config([dep("app/chat", a.url, "primary", 1, stream_timeout=1),
                            dep("app/chat", b.url, "secondary", 2, stream_timeout=2)],
                           timeout=1.5, allowed_fails=2, cooldown_time=30))
    for i in range(2):
        r = gw.chat()
        eq(r.status, 504, "request %d: status (%s)" % (i, r.text))
        eq(r.error()["code"], "deadline_exceeded", "request %d: error code" % i)
        eq(r.header("x-slogate-attempts"), "2", "request %d: attempts" % i)
    d = deployments(gw)
    eq(d["primary"]["state"], "cooling", "the hung primary cools at allowed_fails")
    eq(d["secondary"]["failures"], 0, "the secondary's attempts were cut by the deadline")
    eq(d["secondary"]["state"], "healthy", "the secondary is not cooled")
    r = gw.chat()
    eq(r.status, 200, "with the primary cooling the secondary has the whole deadline (%s)" % r.text)
    eq(r.header("x-slogate-deployment"), "secondary", "answered by")


# ---- latency-based routing -------------------------------------------------------------------

@time_limit(40)
def test_latency_based_streams_rank_by_first_token_not_by_head(fx):
    """latency-based-routing ranks streams by time to first token. A provider that sends its
    head at once and its first token 600 ms later is slower than one that sends both after
    150 ms; ranking by the head's time picked the slow one for every request."""
    def slow_token(s, req):
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        time.sleep(0.6)
        for ev in (chunk("slow"), "data: [DONE]\n\n"):
            data = ev.encode()
            s.sendall(b"%x\r\n" % len(data) + data + b"\r\n")
        s.sendall(b"0\r\n\r\n")
        return True

    up = RawUpstream(fx, slow_token)
    b = fx.mock(name="provider-b", latency_ms=150)
    gw = fx.gateway(config([dep("app/chat", up.url, "slow-token", 1, stream_timeout=5),
                            dep("app/chat", b.url, "fast-token", 1, stream_timeout=5)],
                           routing_strategy="latency-based-routing"))
    for _ in range(2):  # both unmeasured: each gets measured once, whatever the order
        eq(gw.chat(chat_body(stream=True)).status, 200, "warm-up stream")
    who = set(d for d, v in deployments(gw).items() if v["successes"])
    eq(who, {"slow-token", "fast-token"}, "both deployments measured")
    for i in range(4):
        r = gw.chat(chat_body(stream=True))
        eq(r.status, 200, "stream %d" % i)
        eq(r.header("x-slogate-deployment"), "fast-token",
           "stream %d goes to the deployment whose first token comes first" % i)


@time_limit(30)
def test_latency_based_ranks_a_failing_deployment_last_before_any_cooldown(fx):
    """latency-based-routing counts a failed attempt as a sample at the deployment's timeout (as
    LiteLLM counts a timeout). A deployment that answers every request with a 500 never had a
    latency, so it scored 0 (the best, "unmeasured") and was tried first by every request, each
    client paying a failed attempt, until allowed_fails cooled it."""
    a = fx.mock("provider-a", status=500)
    b = fx.mock("provider-b")
    gw = fx.gateway(config([dep("app/chat", a.url, "primary", 1, timeout=10),
                            dep("app/chat", b.url, "secondary", 1, timeout=10)],
                           routing_strategy="latency-based-routing", allowed_fails=50,
                           num_retries=1))
    for i in range(2):  # both unmeasured at first: the failing one is tried once at most
        r = gw.chat()
        eq(r.status, 200, "request %d (%s)" % (i, r.text))
        eq(r.header("x-slogate-deployment"), "secondary", "request %d answered by" % i)
    tried = a.stats()["chat"]
    check(tried <= 1, "the failing primary was tried %d times in the first 2 requests" % tried)
    for i in range(6):
        r = gw.chat()
        eq(r.status, 200, "request %d (%s)" % (i + 2, r.text))
        eq(r.header("x-slogate-deployment"), "secondary", "request %d answered by" % (i + 2))
        eq(r.header("x-slogate-attempts"), "1",
           "request %d goes straight to the healthy secondary, no failed attempt first" % (i + 2))
    eq(a.stats()["chat"], tried, "the failing primary got no more requests")
    d = deployments(gw)["primary"]
    eq(d["state"], "healthy", "the primary is not cooling (allowed_fails 50): latency alone")
    check(d["ewma_total_ms"] >= 10000,
          "the primary's average is its timeout (10 s): %s" % d["ewma_total_ms"])


# ---- the Redis host's name is resolved off the loop ------------------------------------------

SLOW_DNS_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double mono(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* getaddrinfo() as a slow DNS server makes it: the name below takes SLOW_DNS_MS to resolve (to
 * 127.0.0.1), and each lookup's start and end (CLOCK_MONOTONIC) are appended to SLOW_DNS_LOG;
 * every other name is resolved as usual. */
int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
                struct addrinfo **res)
{
    int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
        (int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))
            dlsym(RTLD_NEXT, "getaddrinfo");
    if (node && strcmp(node, "redis.slow-dns.test") == 0) {
        const char *ms = getenv("SLOW_DNS_MS");
        long v = ms ? atol(ms) : 1000;
        struct timespec ts = {v / 1000, (v % 1000) * 1000000L};
        double t0 = mono();
        nanosleep(&ts, NULL);
        char line[64];
        int n = snprintf(line, sizeof line, "%.6f %.6f\n", t0, mono());
        int fd = open(getenv("SLOW_DNS_LOG"), O_WRONLY | O_APPEND | O_CREAT, 0644);
        if (fd >= 0) {
            (void)!write(fd, line, (size_t)n);
            close(fd);
        }
        node = "127.0.0.1";
    }
    return real(node, service, hints, res);
}
"""


def slow_dns_env(fx, ms):
    """The environment for a process whose getaddrinfo() takes `ms` for redis.slow-dns.test."""
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    check(cc, "a C compiler to build the slow-DNS shim (the one that builds slogate)")
    src = fx.write("slow_dns.c", SLOW_DNS_SHIM)
    so = os.path.join(fx.dir, "slow_dns.so")
    res = subprocess.run([cc, "-shared", "-fPIC", "-O1", "-o", so, src, "-ldl"],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    eq(res.returncode, 0, "building the shim: %s" % res.stdout.decode(errors="replace"))
    asan = os.environ.get("ASAN_OPTIONS", "")
    return {"LD_PRELOAD": so, "SLOW_DNS_MS": str(ms),
            "SLOW_DNS_LOG": os.path.join(fx.dir, "dns.log"),
            # the shim comes before the sanitizer runtime in the library list
            "ASAN_OPTIONS": (asan + ":" if asan else "") + "verify_asan_link_order=0"}


@time_limit(40)
def test_slow_dns_for_the_redis_host_does_not_stall_requests(fx):
    """The Redis host is named, and its DNS answers after 1 s. hiredis 0.14 resolves the name
    with a blocking getaddrinfo() on the worker's loop at every connect, and while Redis is down
    the gateway reconnects again and again: the worker stood still for each lookup, and every
    client request on it waited up to 1 s. The name is now resolved on libuv's thread pool and
    hiredis connects to the address: requests sent while a lookup is under way are answered at
    once (the shim logs when each lookup ran, so the test knows they overlapped)."""
    env = slow_dns_env(fx, 1000)
    rport = start_redis(fx)
    redis = [p for p in fx.procs if p.name == "redis"][0]
    m = fx.mock()
    gw = fx.gateway(fx.config([m], general={"redis_url": "redis://redis.slow-dns.test:%d/0"
                                            % rport}), env=env)
    wait_until(lambda: readiness_redis(gw) == "ok", 10,
               "the gateway to resolve the name (1 s) and reach Redis at its address")
    redis.signal(signal.SIGTERM)
    redis.wait(5)
    wait_until(lambda: "unreachable" in readiness_redis(gw), 10, "readiness to say Redis is gone")
    contains(readiness_redis(gw), "unreachable", "Redis is down: the gateway reconnects, "
             "resolving redis.slow-dns.test (1 s) each time")
    times = []
    t_end = time.monotonic() + 4.5  # a lookup starts every 2.25 s (1 s + a 1 s stall + a tick)
    while time.monotonic() < t_end:
        t0 = time.monotonic()
        r = gw.chat()
        times.append((t0, time.monotonic() - t0))
        eq(r.status, 200, "chat while the Redis host's name resolves (%s)" % r.text)
        time.sleep(0.05)
    with open(env["SLOW_DNS_LOG"]) as f:
        lookups = [tuple(map(float, ln.split())) for ln in f if ln.strip()]
    # Requests that arrived while a lookup of the Redis host was under way.
    during = [took for t0, took in times if any(a <= t0 < b for a, b in lookups)]
    slowest = max(took for _, took in times)
    # A worker held by a lookup answers after most of its 1 s; 0.6 s leaves room for ASan on
    # two loaded cores.
    check(slowest < 0.6, "the slowest of %d requests took %.2f s (%d lookups of 1 s meanwhile): "
          "the worker waited for the Redis host's DNS lookup" % (len(times), slowest, len(lookups)))
    check(len(during) >= 5, "only %d of %d requests were sent during a lookup (%d lookups): "
          "the test did not measure what it is for" % (len(during), len(times), len(lookups)))
    contains(gw.proc.stderr(), "redis redis.slow-dns.test:%d:" % rport,
             "the log names the Redis host as configured, not its address")


# ---- oversized answers -----------------------------------------------------------------------

@time_limit(60)
def test_oversized_answer_before_any_byte_went_to_the_client_fails_over(fx):
    """An SSE event over 4 MiB, or a whole answer over 32 MiB, from an attempt that has sent the
    client nothing yet is a broken answer like any other: the next deployment serves the client
    and the deployment that sent it is charged a failure."""
    big_event = ("data: " + json.dumps({"choices": [{"index": 0, "delta": {
        "content": "x" * (5 * 1024 * 1024)}, "finish_reason": None}]}) + "\n\n").encode()

    def huge(s, req):
        if json.loads(req["body"]).get("stream"):
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      b"Transfer-Encoding: chunked\r\n\r\n")
            s.sendall(b"%x\r\n" % len(big_event) + big_event + b"\r\n0\r\n\r\n")
        else:
            body = b" " * (33 * 1024 * 1024) + completion().encode()
            s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)
        return False

    up = RawUpstream(fx, huge)
    b = fx.mock(name="provider-b")
    cfg = config([dep("app/chat", up.url, "primary", 1), dep("app/chat", b.url, "secondary", 2)],
                 allowed_fails=10)
    # curl carries https:// calls: the failover must not start a transfer inside its callbacks.
    gw = fx.gateway(cfg, env={"SLOGATE_UPSTREAM": "curl"}, name="gw-curl")
    for stream in (False, True):
        r = gw.chat(chat_body(stream=stream))
        eq((r.status, r.header("x-slogate-deployment")), (200, "secondary"),
           "through curl, stream=%s: failed over (%s)" % (stream, r.text[:300]))
    eq(deployments(gw)["primary"]["failures"], 2, "through curl: both charged")
    gw = fx.gateway(cfg)
    r = gw.chat()
    eq(r.status, 200, "a whole answer over 32 MiB fails over (%s)" % r.text[:300])
    eq(r.header("x-slogate-deployment"), "secondary", "answered by")
    eq(r.header("x-slogate-attempts"), "2", "attempts")
    eq(deployments(gw)["primary"]["failures"], 1, "the oversized answer is the primary's failure")
    r = gw.chat(chat_body(stream=True))
    eq(r.status, 200, "a stream event over 4 MiB fails over (%s)" % r.text[:300])
    eq(r.header("x-slogate-deployment"), "secondary", "the stream answered by")
    contains(r.text, "data: [DONE]", "one clean stream from the secondary")
    check("error" not in r.text, "no error event in the stream")
    eq(deployments(gw)["primary"]["failures"], 2, "the oversized event is a failure too")
    eq(deployments(gw)["secondary"]["failures"], 0, "the secondary is not charged")
    # All deployments sending one: the client hears what each did.
    b.faults(status=500)
    r = gw.chat()
    eq(r.status, 502, "nothing left (%s)" % r.text[:300])
    contains(r.json()["error"]["message"], "larger than 32 MiB", "the final error names it")


@time_limit(60)
def test_oversized_event_after_the_stream_began_ends_it_with_an_error_event(fx):
    big_event = ("data: " + json.dumps({"choices": [{"index": 0, "delta": {
        "content": "x" * (5 * 1024 * 1024)}, "finish_reason": None}]}) + "\n\n").encode()

    def late(s, req):
        first = chunk("hello").encode()
        s.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                  b"Transfer-Encoding: chunked\r\n\r\n")
        s.sendall(b"%x\r\n" % len(first) + first + b"\r\n")
        time.sleep(0.2)
        s.sendall(b"%x\r\n" % len(big_event) + big_event + b"\r\n0\r\n\r\n")
        return False

    up = RawUpstream(fx, late)
    b = fx.mock(name="provider-b")
    gw = fx.gateway(config([dep("app/chat", up.url, "primary", 1),
                            dep("app/chat", b.url, "secondary", 2)], allowed_fails=10))
    r = gw.chat(chat_body(stream=True))
    eq(r.status, 200, "the stream began (%s)" % r.text[:300])
    eq(r.header("x-slogate-deployment"), "primary", "committed to the primary")
    contains(r.text, "hello", "the first event reached the client")
    contains(r.text, "larger than 4 MiB", "the stream ends with an error event that says why")
    check("[DONE]" not in r.text, "no [DONE] after the error")
    eq(b.stats()["chat"], 0, "too late to fail over: the secondary got nothing")


def test_fallback_that_cannot_carry_the_request_does_not_hide_the_failure(fx):
    """An OpenAI primary and an Anthropic secondary; the client asks for n=2, which Anthropic's
    format cannot say. Failing over, the secondary is skipped, not made the answer: the client gets
    the 502 of the primary's failure (an SDK retries it; it would not retry a 400), naming both.
    With a slow primary and a hedge, the hedge is skipped and the primary's answer arrives. The
    first deployment tried still answers for the request: an Anthropic primary is a 400."""
    a = fx.mock(name="provider-a")
    b = fx.mock(name="provider-b")
    anth = {"model": "anthropic/claude-3-5-haiku-latest", "api_key": MOCK_KEY,
            "api_base": "http://127.0.0.1:%d" % b.port}
    gw = fx.gateway(config([dep("app/chat", a.url, "primary", 1),
                            {"model_name": "app/chat", "model_info": {"id": "claude"},
                             "litellm_params": dict(anth, order=2)},
                            {"model_name": "app/claude", "model_info": {"id": "claude-first"},
                             "litellm_params": dict(anth, order=1)},
                            dep("app/claude", a.url, "gpt-second", 2)],
                           num_retries=1, allowed_fails=10, hedge_after_ms=100))
    a.faults(status=500)
    r = http(gw.port, "POST", "/v1/chat/completions", chat_body(n=2))
    eq(r.status, 502, "the primary's failure (%s)" % r.text[:400])
    msg = r.error()["message"]
    contains(msg, "2 attempts failed", "the message")
    contains(msg, "HTTP 500", "the message says how the primary failed")
    contains(msg, "claude (anthropic/claude-3-5-haiku-latest): cannot carry this request: n other "
             "than 1", "the message says why the secondary was not called")
    eq(r.header("x-slogate-attempts"), "2", "attempts")
    eq(b.stats()["messages"], 0, "nothing reached the secondary")
    eq(deployments(gw)["claude"]["failures"], 0, "the secondary is not charged")

    # A hedge that cannot carry the request is not started, and the running primary is kept.
    a.faults(status=0, latency_ms=400)
    r = http(gw.port, "POST", "/v1/chat/completions", chat_body(n=2))
    eq(r.status, 200, "the slow primary's answer (%s)" % r.text[:400])
    eq(r.header("x-slogate-deployment"), "primary", "answered by")
    eq(b.stats()["messages"], 0, "the hedge did not reach the secondary")

    # The first deployment tried cannot carry it: the client's request is the problem.
    r = http(gw.port, "POST", "/v1/chat/completions", chat_body(model="app/claude", n=2))
    eq(r.status, 400, "status (%s)" % r.text[:400])
    eq(r.header("x-slogate-deployment"), "claude-first", "the deployment named")
    contains(r.error()["message"], "n other than 1", "the message")


def test_a_deployment_that_cannot_carry_the_request_uses_no_retry(fx):
    """Tier 2 holds an Anthropic deployment (picked first: weight) and an OpenAI one, with no
    retry in the tier (num_retries 0). The primary fails; the Anthropic one cannot say n=2 and is
    skipped without being called: that used no retry, so the OpenAI one in its tier answers."""
    a = fx.mock(name="provider-a", status=500)
    b = fx.mock(name="provider-b")
    c = fx.mock(name="provider-c")
    gw = fx.gateway(config([dep("app/chat", a.url, "primary", 1),
                            {"model_name": "app/chat", "model_info": {"id": "claude"},
                             "litellm_params": {"model": "anthropic/claude-3-5-haiku-latest",
                                                "api_key": MOCK_KEY, "order": 2,
                                                "weight": 1000000,
                                                "api_base": "http://127.0.0.1:%d" % b.port}},
                            dep("app/chat", c.url, "gpt-backup", 2, weight=1)],
                           num_retries=0, allowed_fails=10))
    r = http(gw.port, "POST", "/v1/chat/completions", chat_body(n=2))
    eq(r.status, 200, "the tier's OpenAI deployment answers (%s)" % r.text[:400])
    eq(r.header("x-slogate-deployment"), "gpt-backup", "answered by")
    eq(r.header("x-slogate-attempts"), "3", "the primary, the skipped one, the answer")
    eq(b.stats()["messages"], 0, "nothing reached the Anthropic deployment")
    eq(deployments(gw)["claude"]["in_flight"], 0, "nothing left in flight")
