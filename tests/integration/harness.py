"""Integration test harness: real slogate processes on ephemeral loopback ports.

Python 3 standard library only. A test is a function `test_*(fx)` in a `test_*.py` file of this
folder; `fx` is a fresh `Fixture` that starts processes, writes configs into its own temporary
directory and kills everything it started when the test ends, whether it passed or not.

The pieces:
  fx.mock(...)        `slogate mock --port 0 ...`   -> Mock   (control API helpers)
  fx.gateway(cfg)     `slogate serve -c ... --port 0` -> Gateway
  fx.demo()           `slogate demo --port 0`         -> Gateway
  fx.cli(args)        run a command to completion     -> Result(code, out, err)
  fx.config(...)      a gateway config (dict) with one deployment per mock
  Conn(port)          a raw HTTP/1.1 client connection: send bytes, read responses exactly as
                      they came off the wire (chunk boundaries and arrival times included)
  http(port, ...)     one request on a fresh connection, the answer read whole

Assertions use `check(cond, msg)` / `eq(got, want, what)` so a failure says what a user would
have seen, not just "assert False".
"""

import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

BIN = os.environ.get("SLOGATE_BIN", "build/slogate")
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MASTER_KEY = "sk-test"
MOCK_KEY = "key-a"


class TestFailure(AssertionError):
    pass


def check(cond, msg):
    if not cond:
        raise TestFailure(msg)


def eq(got, want, what):
    if got != want:
        raise TestFailure("%s: expected %r, got %r" % (what, want, got))


def contains(haystack, needle, what):
    if needle not in haystack:
        raise TestFailure("%s: expected to contain %r, got %r" % (what, needle, _short(haystack)))


def _short(s, n=600):
    s = s if isinstance(s, str) else repr(s)
    return s if len(s) <= n else s[:n] + "...(%d more)" % (len(s) - n)


def wait_until(pred, timeout, what, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise TestFailure("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


# ---------------------------------------------------------------------------------------------
# YAML: configs are written in block style, the way people write them.
# ---------------------------------------------------------------------------------------------

def _yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return json.dumps(str(v))  # a JSON string is a valid YAML double-quoted scalar


def to_yaml(obj, indent=0):
    pad = " " * indent
    out = []
    if isinstance(obj, dict):
        for k, v in obj.items():
            if isinstance(v, (dict, list)) and v:
                out.append("%s%s:" % (pad, k))
                out.append(to_yaml(v, indent + 2))
            elif isinstance(v, (dict, list)):
                out.append("%s%s: %s" % (pad, k, "{}" if isinstance(v, dict) else "[]"))
            else:
                out.append("%s%s: %s" % (pad, k, _yaml_scalar(v)))
    elif isinstance(obj, list):
        for v in obj:
            if isinstance(v, dict) and v:
                inner = to_yaml(v, indent + 2).split("\n")
                inner[0] = pad + "- " + inner[0][indent + 2:]
                out.append("\n".join(inner))
            elif isinstance(v, list) and v:
                out.append("%s-\n%s" % (pad, to_yaml(v, indent + 2)))
            else:
                out.append("%s- %s" % (pad, _yaml_scalar(v)))
    else:
        out.append(pad + _yaml_scalar(obj))
    return "\n".join(out)


# ---------------------------------------------------------------------------------------------
# HTTP on raw sockets
# ---------------------------------------------------------------------------------------------

class Response:
    """One HTTP response as read off the wire."""

    def __init__(self):
        self.status = 0
        self.reason = ""
        self.headers = []        # [(lower-case name, value)] in order
        self.body = b""
        self.chunks = []         # chunked bodies: [(arrival time, bytes)] per chunk
        self.chunked = False
        self.complete = False    # the body ended as its framing says (length, last chunk)
        self.t_head = None       # when the status line arrived (monotonic)
        self.t_end = None

    def header(self, name, default=None):
        name = name.lower()
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k == name.lower()]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        try:
            return json.loads(self.body)
        except ValueError as e:
            raise TestFailure("body is not JSON (%s): %s" % (e, _short(self.text)))

    def error(self):
        """The OpenAI error object of an error answer, checked for its shape."""
        j = self.json()
        check(isinstance(j, dict) and isinstance(j.get("error"), dict),
              "expected an OpenAI error body {\"error\":{...}}, got %s" % _short(self.text))
        e = j["error"]
        for k in ("message", "type", "param", "code"):
            check(k in e, "error object lacks %r: %s" % (k, _short(self.text)))
        check(isinstance(e["message"], str) and e["message"],
              "error message is empty: %s" % _short(self.text))
        return e

    def sse_events(self):
        """The `data:` payloads of an SSE body, in order."""
        return sse_data(self.body)

    def __repr__(self):
        return "<HTTP %d %s, %d bytes>" % (self.status, self.reason, len(self.body))


def sse_data(raw):
    events = []
    for block in raw.replace(b"\r\n", b"\n").split(b"\n\n"):
        data = [ln[5:].lstrip(b" ") for ln in block.split(b"\n") if ln.startswith(b"data:")]
        if data:
            events.append(b"\n".join(data).decode("utf-8", "replace"))
    return events


class ConnClosed(Exception):
    pass


class Conn:
    """A raw HTTP/1.1 client connection. Reads exactly what the server sends."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout
        self.eof = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def request(self, method, path, body=None, headers=None, key=MASTER_KEY, close=False):
        self.send(build_request(method, path, body, headers, key, close))

    def _fill(self, deadline):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TestFailure("timed out reading from the server (have %d bytes: %r)"
                              % (len(self.buf), self.buf[:200]))
        self.sock.settimeout(remaining)
        try:
            d = self.sock.recv(65536)
        except socket.timeout:
            raise TestFailure("timed out reading from the server (have %d bytes: %r)"
                              % (len(self.buf), self.buf[:200]))
        except ConnectionResetError:
            d = b""
        if not d:
            self.eof = True
            raise ConnClosed()
        self.buf += d

    def _line(self, deadline):
        while b"\r\n" not in self.buf:
            self._fill(deadline)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n, deadline):
        while len(self.buf) < n:
            self._fill(deadline)
        d, self.buf = self.buf[:n], self.buf[n:]
        return d

    def read_response(self, timeout=None, head_only_method=False, on_chunk=None):
        """Read one response. Raises ConnClosed when the server closes before a status line.
        A body cut short sets .complete False instead of raising."""
        deadline = time.monotonic() + (timeout if timeout is not None else self.timeout)
        r = Response()
        status_line = self._line(deadline)
        r.t_head = time.monotonic()
        m = re.match(rb"HTTP/1\.[01] (\d{3}) ?(.*)$", status_line)
        check(m, "not an HTTP status line: %r" % status_line)
        r.status = int(m.group(1))
        r.reason = m.group(2).decode("latin-1")
        while True:
            ln = self._line(deadline)
            if not ln:
                break
            k, _, v = ln.decode("latin-1").partition(":")
            r.headers.append((k.strip().lower(), v.strip()))
        te = (r.header("transfer-encoding") or "").lower()
        cl = r.header("content-length")
        try:
            if head_only_method or r.status in (204, 304) or 100 <= r.status < 200:
                r.complete = True
            elif "chunked" in te:
                r.chunked = True
                body = []
                while True:
                    size_line = self._line(deadline)
                    size = int(size_line.split(b";")[0].strip(), 16)
                    if size == 0:
                        while self._line(deadline):  # trailers, then the empty line
                            pass
                        r.complete = True
                        break
                    data = self._exact(size, deadline)
                    check(self._exact(2, deadline) == b"\r\n", "chunk not followed by CRLF")
                    r.chunks.append((time.monotonic(), data))
                    body.append(data)
                    if on_chunk:
                        on_chunk(data)
                r.body = b"".join(body)
            elif cl is not None:
                r.body = self._exact(int(cl), deadline)
                r.complete = True
            else:  # until close
                try:
                    while True:
                        self._fill(deadline)
                except ConnClosed:
                    pass
                r.body, self.buf = self.buf, b""
                r.complete = True
        except ConnClosed:
            r.body = b"".join(d for _, d in r.chunks) if r.chunked else self.buf
            r.complete = False
        r.t_end = time.monotonic()
        return r

    def closed_by_peer(self, timeout=2.0):
        """True when the server closes the connection (EOF or reset) within `timeout`."""
        if self.eof:
            return True
        deadline = time.monotonic() + timeout
        try:
            while True:
                self._fill(deadline)
        except ConnClosed:
            return True
        except TestFailure:
            return False


def build_request(method, path, body=None, headers=None, key=MASTER_KEY, close=False):
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    h = [("Host", "127.0.0.1")]
    if key is not None:
        h.append(("Authorization", "Bearer " + key))
    if body is not None:
        h.append(("Content-Type", "application/json"))
    hdrs = dict((k.lower(), v) for k, v in (headers or {}).items())
    for k, v in (headers or {}).items():
        h = [(a, b) for a, b in h if a.lower() != k.lower()]
        if v is not None:
            h.append((k, v))
    chunked = "chunked" in hdrs.get("transfer-encoding", "").lower()
    if body is not None and not chunked and "content-length" not in hdrs:
        h.append(("Content-Length", str(len(body))))
    if close:
        h.append(("Connection", "close"))
    head = "%s %s HTTP/1.1\r\n" % (method, path) + "".join("%s: %s\r\n" % kv for kv in h) + "\r\n"
    return head.encode("latin-1") + (body or b"")


def http(port, method, path, body=None, headers=None, key=MASTER_KEY, timeout=10.0):
    """One request on a fresh connection; the response read whole."""
    with Conn(port, timeout=timeout) as c:
        c.request(method, path, body, headers, key, close=True)
        return c.read_response(head_only_method=(method == "HEAD"))


def chat_body(model="app/chat", content="Hello", stream=False, **extra):
    b = {"model": model, "messages": [{"role": "user", "content": content}]}
    if stream:
        b["stream"] = True
    b.update(extra)
    return b


def chat(port, body=None, key=MASTER_KEY, path="/v1/chat/completions", headers=None, timeout=10):
    return http(port, "POST", path, body if body is not None else chat_body(), headers, key,
                timeout)


def http_refused(fx, gw, raw, status, says, what):
    """Send the raw bytes `raw` to the gateway on a fresh connection: the HTTP layer refuses them
    with `status`, an error body (whose message contains `says`, unless None) and Connection:
    close, and the connection is closed after the answer."""
    c = fx.conn(gw.port)
    c.send(raw)
    try:
        r = c.read_response(timeout=5)
    except ConnClosed:
        raise TestFailure("%s: the connection closed without an answer" % what)
    eq(r.status, status, "%s: status (%s)" % (what, r.text))
    msg = r.error()["message"]
    if says is not None:
        contains(msg, says, what + ": the message")
    eq(r.header("connection"), "close", what + ": Connection")
    check(c.closed_by_peer(), what + ": the connection is closed after the %d" % status)
    return r


# ---------------------------------------------------------------------------------------------
# Processes
# ---------------------------------------------------------------------------------------------

class Proc:
    """A started slogate process: stdout read line by line on a thread, stderr into a file."""

    def __init__(self, fx, args, name, env=None):
        self.fx = fx
        self.name = name
        self.args = args
        self.stderr_path = os.path.join(fx.dir, "%s.%d.stderr" % (name, len(fx.procs)))
        self._stderr = open(self.stderr_path, "wb")
        full_env = dict(os.environ)
        full_env.update(env or {})
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self._stderr,
                                  stdin=subprocess.DEVNULL, env=full_env, cwd=fx.dir)
        fx.procs.append(self)
        self.sent_signals = set()
        self.lines = []
        self._q = queue.Queue()
        t = threading.Thread(target=self._reader, daemon=True)
        t.start()

    @property
    def pid(self):
        return self.p.pid

    def _reader(self):
        for raw in iter(self.p.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            self.lines.append(line)
            self._q.put(line)
        self._q.put(None)

    def stdout(self):
        return "\n".join(self.lines)

    def stderr(self):
        try:
            with open(self.stderr_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def wait_line(self, pattern, timeout=10.0):
        """Wait for a stdout line matching `pattern`; returns the match."""
        rx = re.compile(pattern)
        for ln in self.lines:
            m = rx.search(ln)
            if m:
                return m
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                ln = self._q.get(timeout=remaining)
            except queue.Empty:
                break
            if ln is None:
                self.p.wait()
                raise TestFailure("%s exited with %s before printing /%s/; stdout: %s; stderr: %s"
                                  % (self.name, self.p.returncode, pattern,
                                     _short(self.stdout()), _short(self.stderr(), 1500)))
            m = rx.search(ln)
            if m:
                return m
        raise TestFailure("%s did not print /%s/ within %.0fs; stdout: %s; stderr: %s"
                          % (self.name, pattern, timeout, _short(self.stdout()),
                             _short(self.stderr(), 1500)))

    def signal(self, sig):
        if self.p.poll() is None:
            self.sent_signals.add(sig)
            self.p.send_signal(sig)

    def crash(self):
        """A description when the process died of a signal nobody sent it (a crash), else None."""
        rc = self.p.poll()
        if rc is None or rc >= 0 or -rc in self.sent_signals:
            return None
        try:
            name = signal.Signals(-rc).name
        except ValueError:
            name = "signal %d" % -rc
        return "%s (pid %d) died of %s" % (self.name, self.pid, name)

    def wait(self, timeout):
        try:
            return self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TestFailure("%s still running %.1fs later; stderr: %s"
                              % (self.name, timeout, _short(self.stderr(), 1500)))

    def alive(self):
        return self.p.poll() is None

    def kill(self):
        if self.p.poll() is None:
            self.sent_signals.add(signal.SIGTERM)
            self.p.terminate()
            try:
                self.p.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.sent_signals.add(signal.SIGKILL)
                self.p.kill()
                self.p.wait()
        self._stderr.close()

    def sanitizer_report(self):
        """The first line of an ASan/UBSan/LSan report in stderr, or None."""
        return sanitizer_report(self.stderr())


class Mock:
    def __init__(self, proc, name, port):
        self.proc = proc
        self.name = name
        self.port = port
        self.url = "http://127.0.0.1:%d/v1" % port

    def _control(self, method, path, body=None):
        r = http(self.port, method, path, body, key=None)
        eq(r.status, 200, "mock %s control %s %s (%s)" % (self.name, method, path, r.text))
        return r.json()

    def faults(self, **f):
        return self._control("POST", "/_mock/faults", f)

    def clear_faults(self):
        return self._control("DELETE", "/_mock/faults")

    def stats(self):
        return self._control("GET", "/_mock/stats")

    def reset_stats(self):
        return self._control("POST", "/_mock/stats/reset")

    def last(self):
        return self._control("GET", "/_mock/last")


class Gateway:
    def __init__(self, proc, port, config_path=None):
        self.proc = proc
        self.port = port
        self.config_path = config_path
        self.url = "http://127.0.0.1:%d" % port

    def chat(self, body=None, **kw):
        return chat(self.port, body, **kw)


class Result:
    def __init__(self, code, out, err):
        self.code, self.out, self.err = code, out, err

    def __repr__(self):
        return "exit %s, stdout %s, stderr %s" % (self.code, _short(self.out), _short(self.err))


def remove_journals(folder, shm="/dev/shm"):
    """The crash journals (docs/internals/store.md) of spools under `folder`: a gateway a test
    killed and never started again leaves its journal in /dev/shm, and its folder is going away,
    so nothing would ever read it. The header (cell 0) holds the spool's real path at byte 24."""
    prefix = os.path.realpath(folder) + "/"
    try:
        names = [n for n in os.listdir(shm) if n.startswith("slogate-") and n.endswith(".journal")]
    except OSError:
        return
    for n in names:
        path = os.path.join(shm, n)
        try:
            with open(path, "rb") as f:
                head = f.read(1024)
            if head[:8] == b"SGJRNL1\0" and head[24:].split(b"\0")[0].decode(
                    "utf-8", "replace").startswith(prefix):
                os.unlink(path)
        except OSError:
            pass


class Fixture:
    """Everything one test starts; `close()` kills it all and removes the temp dir."""

    def __init__(self, bin_path, name="test"):
        self.bin = os.path.abspath(bin_path)
        self.dir = tempfile.mkdtemp(prefix="slogate-it-%s-" % name)
        self.procs = []
        self.sockets = []

    def stop_all(self):
        """Close the test's sockets and stop its processes (SIGTERM, then SIGKILL after 3 s)."""
        for c in self.sockets:
            c.close()
        for p in reversed(self.procs):
            try:
                p.kill()
            except Exception:
                pass

    def problems(self):
        """What went wrong inside the processes, whatever the test asserted: deaths by a signal
        the test did not send, and sanitizer reports (ASan/UBSan/LSan/TSan). Call after stop_all()."""
        out = [c for c in (p.crash() for p in self.procs) if c]
        for p in self.procs:
            rep = p.sanitizer_report()
            if rep:
                out.append("%s (pid %d): %s" % (p.name, p.pid, rep))
        return out

    def close(self):
        self.stop_all()
        remove_journals(self.dir)
        shutil.rmtree(self.dir, ignore_errors=True)

    def diagnostics(self):
        """stderr tails of the processes, for a failure report."""
        parts = []
        for p in self.procs:
            e = p.stderr().strip()
            if e:
                parts.append("[%s stderr] %s" % (p.name, e[-800:]))
        return "\n".join(parts)

    def path(self, name):
        return os.path.join(self.dir, name)

    def write(self, name, text):
        p = self.path(name)
        with open(p, "w") as f:
            f.write(text)
        return p

    def cli(self, args, env=None, timeout=10, cwd=None):
        full_env = dict(os.environ)
        for k, v in (env or {}).items():
            if v is None:
                full_env.pop(k, None)
            else:
                full_env[k] = v
        try:
            p = subprocess.run([self.bin] + list(args), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, env=full_env,
                               timeout=timeout, cwd=cwd or self.dir)
        except subprocess.TimeoutExpired:
            raise TestFailure("slogate %s did not finish within %ss" % (" ".join(args), timeout))
        res = Result(p.returncode, p.stdout.decode("utf-8", "replace"),
                     p.stderr.decode("utf-8", "replace"))
        rep = sanitizer_report(res.err)
        if rep:
            raise TestFailure("slogate %s: %s" % (" ".join(args), rep))
        if p.returncode < 0:
            raise TestFailure("slogate %s died of signal %d; stderr: %s"
                              % (" ".join(args), -p.returncode, _short(res.err)))
        return res

    def spawn(self, args, name, env=None):
        return Proc(self, [self.bin] + list(args), name, env)

    def mock(self, name="provider-a", key=MOCK_KEY, args=(), **faults):
        """Start `slogate mock --port 0`. Keyword faults become flags: latency_ms=5 -> --latency-ms 5,
        hang=True -> --hang."""
        a = ["mock", "--port", "0", "--name", name, "--log-level", "warn"]
        if key:
            a += ["--key", key]
        for k, v in faults.items():
            flag = "--" + k.replace("_", "-")
            if v is True:
                a.append(flag)
            elif v is not False and v is not None:
                a += [flag, str(v)]
        a += list(args)
        p = self.spawn(a, "mock-" + name)
        m = p.wait_line(r"^mock (\S+) listening on http://127\.0\.0\.1:(\d+)$")
        eq(m.group(1), name, "mock name in its banner")
        return Mock(p, name, int(m.group(2)))

    def config(self, mocks=(), master_key=MASTER_KEY, server=None, general=None, alias="app/chat",
               **params):
        """A config dict: one deployment of `alias` per mock (ids primary, secondary, ...)."""
        ids = ["primary", "secondary", "tertiary"]
        model_list = []
        for i, m in enumerate(mocks):
            lp = {"model": "openai/gpt-4o-mini", "api_key": MOCK_KEY,
                  "api_base": m.url if isinstance(m, Mock) else m, "order": i + 1,
                  "stream_timeout": 2}
            lp.update(params)
            model_list.append({"model_name": alias, "litellm_params": lp,
                               "model_info": {"id": ids[i]}})
        cfg = {"model_list": model_list}
        gs = {}
        if master_key:
            gs["master_key"] = master_key
        gs.update(general or {})
        if gs:
            cfg["general_settings"] = gs
        if server:
            cfg["server"] = server
        return cfg

    def write_config(self, cfg, name="slogate.yaml"):
        text = cfg if isinstance(cfg, str) else to_yaml(cfg) + "\n"
        return self.write(name, text)

    def gateway(self, cfg, workers=1, env=None, args=(), name="gateway"):
        """Start `slogate serve -c CONFIG --port 0` and wait for its banner."""
        path = self.write_config(cfg, name + ".yaml")
        a = ["serve", "-c", path, "--port", "0", "--log-level", "warn"]
        if workers:
            a += ["--workers", str(workers)]
        p = self.spawn(a + list(args), name, env)
        m = p.wait_line(r"^slogate listening on http://([\d.]+):(\d+) \((\d+) workers?, .*\)$")
        gw = Gateway(p, int(m.group(2)), path)
        gw.workers = int(m.group(3))
        gw.banner = m.group(0)
        return gw

    def mock_and_gateway(self, workers=1, server=None, general=None, mock_args=None, **params):
        m = self.mock(**(mock_args or {}))
        gw = self.gateway(self.config([m], server=server, general=general, **params), workers)
        return m, gw

    def conn(self, port, timeout=10.0):
        c = Conn(port, timeout=timeout)
        self.sockets.append(c)
        return c


_SANITIZER = re.compile(r"(ERROR: (Address|Leak|Thread|Memory)Sanitizer.*|WARNING: ThreadSanitizer.*|"
                        r"SUMMARY: UndefinedBehaviorSanitizer.*|\S+:\d+:\d+: runtime error: .*)")


def sanitizer_report(text):
    m = _SANITIZER.search(text or "")
    return m.group(0).strip() if m else None


def free_port():
    """A port nothing listens on (bound then released; loopback)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def established_to(port):
    """Lines of `ss -tn` for established TCP connections whose peer is 127.0.0.1:port."""
    if not shutil.which("ss"):
        return None
    out = subprocess.run(["ss", "-tnpH", "state", "established", "dport", "= :%d" % port],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=5).stdout
    return [ln for ln in out.decode().splitlines() if ln.strip()]


def time_limit(seconds):
    """Decorator: this test's own time limit (the runner's default is 30 s)."""
    def deco(f):
        f.timeout = seconds
        return f
    return deco
