"""The soak's client load: a few threads, each sending one request at a time on a fresh connection,
a seeded mix of what clients send (whole and streamed chat, Messages, embeddings, clients that hang
up, bad requests), and a record of what each client saw.

Every request carries a unique `x-slogate-feature` tag (soak-<seq>), so its row is found even
when the client never saw its x-request-id (it hung up first, or a SIGKILL cut the answer). A
wrong key is refused before attribution: those rows are found by their x-request-id alone.
"""

import json
import random
import threading
import time

from harness import MASTER_KEY, ConnClosed, Conn, TestFailure, build_request, sse_data

# Prices of every deployment the soak configures (USD per token): a stream's cost is its usage at
# these prices (x-slogate-cost-usd on a stream is only the pre-call estimate of its input).
PRICE_IN = 1e-6
PRICE_OUT = 2e-6

# (kind, weight): what the load sends, and how often.
KINDS = [
    ("chat", 26),
    ("chat-stream", 14),          # stream_options.include_usage: the client sees the usage
    ("chat-stream-nousage", 5),   # the client sees no usage (the row has it)
    ("messages", 9),
    ("messages-stream", 7),
    ("embeddings", 7),
    ("hangup-mid", 4),            # reads the stream's head and first chunk, then closes
    ("hangup-early", 4),          # sends the request and closes 0-300 ms later, reading nothing
    ("bad-json", 3),              # 400
    ("unknown-model", 3),         # 404
    ("bad-key", 2),               # 401, refused before attribution: no tag in its row
    ("too-large", 1),             # 413 from the HTTP layer, before any handler: no tag either
]

# Kinds whose row has no tag (refused before attribution): matched by x-request-id alone.
UNTAGGED = ("bad-key", "too-large")

# Outcomes of a request, from the client's side.
ANSWERED = "answered"      # a status line and the whole body as its framing says
CUT = "cut"                # a status line, then the connection ended mid-body
UNANSWERED = "unanswered"  # no status line: refused, reset, closed or timed out
LEFT = "left"              # the client hung up on purpose (hangup-* kinds)


class Req:
    """One request and what its client saw of it."""

    __slots__ = ("seq", "thread", "kind", "tag", "life", "seg", "t0", "t1", "status", "rid",
                 "cost", "usage", "stream", "outcome", "error", "detail")

    def __init__(self, seq, thread, kind, life, seg):
        self.seq, self.thread, self.kind = seq, thread, kind
        self.tag = "soak-%06d" % seq
        self.life, self.seg = life, seg
        self.t0 = self.t1 = 0.0          # wall clock: sent, outcome known
        self.status = 0
        self.rid = None                  # x-request-id, when a head arrived
        self.cost = None                 # x-slogate-cost-usd
        self.usage = None                # (input, output) tokens the answer reported
        self.stream = kind.endswith("stream") or kind.endswith("nousage") or \
            kind.startswith("hangup")
        self.outcome = UNANSWERED
        self.error = None                # the error code the answer named (body or stream event)
        self.detail = ""                 # why it was not answered

    def __repr__(self):
        return "#%d %s %s status %d rid %s (%s%s)" % (self.seq, self.kind, self.outcome,
                                                      self.status, self.rid, self.tag,
                                                      ", " + self.detail if self.detail else "")


def request_for(kind, seq, rnd):
    """(path, body bytes, headers, key) of one request of this kind."""
    headers = {"x-slogate-feature": "soak-%06d" % seq}
    key = MASTER_KEY
    user = "soak-user-%d" % (seq % 7)
    content = "soak request %d: %s" % (seq, rnd.choice(["hello", "summarize this", "a longer "
                                                        "question about the weather " * 3]))
    path = "/v1/chat/completions"
    if kind.startswith("messages"):
        path = "/v1/messages"
        body = {"model": rnd.choice(["app/claude", "app/chat"]), "max_tokens": 16,
                "messages": [{"role": "user", "content": content}],
                "metadata": {"user_id": user}}
        if kind == "messages-stream":
            body["stream"] = True
        headers.update({"x-api-key": key, "anthropic-version": "2023-06-01"})
        key = None
    elif kind == "embeddings":
        path = "/v1/embeddings"
        body = {"model": "app/chat", "input": [content, "and another"], "user": user}
    else:
        body = {"model": "app/chat", "messages": [{"role": "user", "content": content}],
                "user": user}
        if kind in ("chat-stream", "hangup-mid", "hangup-early"):
            body["stream"] = True
            body["stream_options"] = {"include_usage": True}
        elif kind == "chat-stream-nousage":
            body["stream"] = True
        elif kind == "unknown-model":
            body["model"] = "app/no-such-model"
        elif kind == "bad-key":
            key = "sk-soak-wrong"
    raw = json.dumps(body).encode()
    if kind == "bad-json":
        raw = raw[:len(raw) // 2]
    elif kind == "too-large":  # announces 50 MB, sends nothing of it: refused on the head
        headers["Content-Length"] = "50000000"
        raw = b""
    return path, raw, headers, key


def _usage(kind, j):
    """(input, output) tokens of a JSON answer, or None."""
    u = j.get("usage") if isinstance(j, dict) else None
    if not isinstance(u, dict):
        return None
    if kind.startswith("messages"):
        return (u.get("input_tokens", 0) + (u.get("cache_read_input_tokens") or 0) +
                (u.get("cache_creation_input_tokens") or 0), u.get("output_tokens", 0))
    return (u.get("prompt_tokens", 0), u.get("completion_tokens", 0))


def _error_code(j):
    e = j.get("error") if isinstance(j, dict) else None
    if not isinstance(e, dict):
        return None
    return e.get("code") or e.get("type") or "error"


def read_answer(req, r):
    """Fill `req` from a response read whole (or cut)."""
    req.status = r.status
    req.rid = r.header("x-request-id")
    req.cost = r.header("x-slogate-cost-usd")
    if not r.complete:
        req.outcome, req.detail = CUT, "the body ended early (%d bytes)" % len(r.body)
        return
    req.outcome = ANSWERED
    if (r.header("content-type") or "").startswith("text/event-stream"):
        mu = None
        for d in sse_data(r.body):
            if d == "[DONE]":
                continue
            try:
                j = json.loads(d)
            except ValueError:
                req.error = "unparsable event"
                continue
            if _error_code(j):
                req.error = _error_code(j)
            elif j.get("type") == "message_start":
                mu = dict(j["message"].get("usage") or {})
            elif j.get("type") == "message_delta" and mu is not None:
                mu.update(j.get("usage") or {})
                req.usage = _usage(req.kind, {"usage": mu})  # the final count
            elif j.get("usage"):
                req.usage = _usage(req.kind, j)
        if req.error:  # cut short: the client saw no final usage (the row holds the estimate)
            req.usage = None
        return
    try:
        j = json.loads(r.body)
    except ValueError:
        req.error = "not JSON"
        return
    req.error = _error_code(j)
    if req.error is None:
        req.usage = _usage(req.kind, j)


def _hang_up_mid_stream(req, c):
    """Read the head and the first bytes of the body, then close (the caller does)."""
    buf = b""
    deadline = time.monotonic() + 20
    while b"\r\n\r\n" not in buf or buf.endswith(b"\r\n\r\n"):
        if b"\r\n\r\n" in buf and req.status == 0:
            _head(req, buf)
        if time.monotonic() > deadline:
            raise TestFailure("no stream event within 20 s")
        c.sock.settimeout(max(0.01, deadline - time.monotonic()))
        d = c.sock.recv(65536)
        if not d:
            if req.status:  # the head came, then the end: an answer with no body to leave
                break
            raise ConnClosed()
        buf += d
    if req.status == 0:
        _head(req, buf)
    req.outcome = LEFT


def _head(req, buf):
    head = buf.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
    req.status = int(head[0].split(" ")[1])
    for ln in head[1:]:
        k, _, v = ln.partition(":")
        if k.strip().lower() == "x-request-id":
            req.rid = v.strip()


def run_one(port, req, rnd, timeout):
    path, raw, headers, key = request_for(req.kind, req.seq, rnd)
    req.t0 = time.time()
    try:
        with Conn(port, timeout=timeout) as c:
            c.send(build_request("POST", path, raw, headers, key, close=True))
            if req.kind == "hangup-early":
                time.sleep(rnd.uniform(0, 0.3))
                req.outcome = LEFT
            elif req.kind == "hangup-mid":
                _hang_up_mid_stream(req, c)
            else:
                read_answer(req, c.read_response(timeout=timeout))
    except (ConnClosed, OSError, TestFailure) as e:
        if req.outcome != LEFT:
            req.outcome = UNANSWERED if req.status == 0 else CUT
            req.detail = type(e).__name__ + (": %s" % e if str(e) else "")
    req.t1 = time.time()


class Load:
    """`clients` threads sending requests until stop(); pause() holds them between requests."""

    def __init__(self, port, seed, clients, state, timeout=30.0):
        self.port = port
        self.state = state            # .life, .seg: read when a request is sent
        self.timeout = timeout
        self.reqs = []
        self.lock = threading.Lock()
        self.seq = 0
        self.stopping = threading.Event()
        self.running = threading.Event()
        self.running.set()
        self.busy = 0
        self.idle_cv = threading.Condition(self.lock)
        self.crashed = []
        kinds, weights = zip(*KINDS)
        self.kinds, self.weights = kinds, weights
        self.threads = [threading.Thread(target=self._run, args=(i, seed * 1000 + i),
                                         daemon=True, name="soak-client-%d" % i)
                        for i in range(clients)]

    def start(self):
        for t in self.threads:
            t.start()

    def _run(self, i, seed):
        rnd = random.Random(seed)
        try:
            while not self.stopping.is_set():
                self.running.wait(0.2)
                with self.lock:
                    if not self.running.is_set() or self.stopping.is_set():
                        continue
                    self.busy += 1
                    self.seq += 1
                    req = Req(self.seq, i, rnd.choices(self.kinds, self.weights)[0],
                              self.state.life, self.state.seg)
                    self.reqs.append(req)
                try:
                    run_one(self.port, req, rnd, self.timeout)
                finally:
                    with self.lock:
                        self.busy -= 1
                        self.idle_cv.notify_all()
                time.sleep(rnd.uniform(0.005, 0.04))
        except BaseException as e:  # a bug in the soak itself: reported, never silent
            self.crashed.append("client %d: %r" % (i, e))

    def pause(self, timeout):
        """Hold every client between two requests; True once none is in flight."""
        self.running.clear()
        deadline = time.monotonic() + timeout
        with self.lock:
            while self.busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.idle_cv.wait(left)
        return True

    def resume(self):
        self.running.set()

    def stop(self):
        self.stopping.set()
        self.running.set()
        for t in self.threads:
            t.join(self.timeout + 5)
        return self.reqs
