#!/usr/bin/env python3
"""Run the integration tests: real slogate processes on ephemeral loopback ports.

    python3 tests/integration/run.py --bin build/slogate [-k PATTERN] [--timeout S] [-v]

Discovers `test_*` functions in tests/integration/test_*.py and runs each in a child process of
its own (a new session, so every process the test started is in one process group). The child
builds a fresh harness.Fixture, runs the test under a time limit and kills what it started; the
parent kills the whole group afterwards in any case, so nothing is left behind even when a test
hangs or the child crashes. One line per test (`ok name (0.3s)` / `FAIL name: reason`), then
exactly one line `N passed, N failed`; exit 0 only when nothing failed (and something ran).
"""

import argparse
import importlib
import inspect
import json
import os
import signal
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

DEFAULT_TIMEOUT = 30.0


def discover(pattern=None):
    """[(display name, module name, function name, timeout)] in file then source order."""
    tests = []
    for fn in sorted(os.listdir(HERE)):
        if not (fn.startswith("test_") and fn.endswith(".py")):
            continue
        modname = fn[:-3]
        mod = importlib.import_module(modname)
        funcs = [(n, f) for n, f in vars(mod).items()
                 if n.startswith("test_") and inspect.isfunction(f) and f.__module__ == modname]
        funcs.sort(key=lambda nf: nf[1].__code__.co_firstlineno)
        for n, f in funcs:
            display = "%s.%s" % (modname[len("test_"):], n)
            if pattern and pattern not in display:
                continue
            tests.append((display, modname, n, getattr(f, "timeout", None)))
    return tests


# ---- the child: run one test ----------------------------------------------------------------

class _Timeout(BaseException):
    pass


def _on_alarm(signum, frame):
    raise _Timeout()


def _where(e):
    """`test_x.py:LINE: ` of the innermost test-file frame of an exception."""
    for fr in reversed(traceback.extract_tb(e.__traceback__)):
        if os.path.basename(fr.filename).startswith("test_"):
            return "%s:%d: " % (os.path.basename(fr.filename), fr.lineno)
    return ""


def run_child(bin_path, modname, funcname, timeout, result_fd):
    import harness
    harness.BIN = bin_path
    os.environ["SLOGATE_BIN"] = bin_path
    result = {"ok": False, "reason": "did not run"}
    fx = None
    try:
        mod = importlib.import_module(modname)
        func = getattr(mod, funcname)
        fx = harness.Fixture(bin_path, funcname)
        signal.signal(signal.SIGALRM, _on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        try:
            func(fx)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
        result = {"ok": True}
    except _Timeout as e:
        result = {"ok": False, "reason": "%stimed out after %.0fs" % (_where(e), timeout),
                  "detail": traceback.format_exc()}
    except Exception as e:
        where = _where(e)
        if isinstance(e, harness.TestFailure):
            result = {"ok": False, "reason": where + str(e)}
        else:
            result = {"ok": False, "reason": "%s%s: %s" % (where, type(e).__name__, e),
                      "detail": traceback.format_exc()}
    if fx is not None:
        try:
            fx.stop_all()
        except Exception:
            pass
        crashes = fx.problems()
        if crashes:
            # A crash explains whatever else went wrong, and fails a test that "passed".
            prefix = "; ".join(crashes)
            result = {"ok": False, "reason": prefix + ("" if result["ok"] else
                                                       " -- then: " + result["reason"]),
                      "detail": result.get("detail")}
        if not result["ok"]:
            result["diagnostics"] = fx.diagnostics()
        try:
            fx.close()
        except Exception:
            pass
    with os.fdopen(result_fd, "w") as f:
        json.dump(result, f)
    return 0


# ---- the parent ------------------------------------------------------------------------------

def _killpg(pgid):
    """Kill what is left of a test's process group; True when something was left."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    return True


def run_one(args, display, modname, funcname, timeout):
    r, w = os.pipe()
    cmd = [sys.executable, os.path.abspath(__file__), "--bin", args.bin, "--child",
           "%s:%s" % (modname, funcname), "--timeout", str(timeout), "--result-fd", str(w)]
    t0 = time.monotonic()
    p = subprocess.Popen(cmd, pass_fds=(w,), start_new_session=True, stdin=subprocess.DEVNULL)
    os.close(w)
    try:
        p.wait(timeout=timeout + 15)
    except subprocess.TimeoutExpired:
        pass
    leftovers = _killpg(p.pid)
    p.wait()
    with os.fdopen(r) as f:
        raw = f.read()
    elapsed = time.monotonic() - t0
    try:
        res = json.loads(raw)
    except ValueError:
        res = {"ok": False, "reason": "the test process died (exit %s) without a result"
               % p.returncode}
    if leftovers and res.get("ok"):
        # The fixture kills what it starts; anything left is a harness defect worth seeing.
        sys.stderr.write("note: %s left processes behind (killed)\n" % display)
    return res, elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin", default=os.environ.get("SLOGATE_BIN", "build/slogate"),
                    help="the slogate binary (default: build/slogate)")
    ap.add_argument("-k", dest="pattern", help="run only tests whose name contains PATTERN")
    ap.add_argument("--timeout", type=float, default=None,
                    help="per-test time limit in seconds (default: %.0f, or the test's own)"
                    % DEFAULT_TIMEOUT)
    ap.add_argument("-v", "--verbose", action="store_true",
                    help="print tracebacks and process stderr of failures")
    ap.add_argument("--list", action="store_true", help="list the tests and exit")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--result-fd", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()

    if args.child:
        modname, funcname = args.child.split(":")
        return run_child(args.bin, modname, funcname, args.timeout or DEFAULT_TIMEOUT,
                         args.result_fd)

    tests = discover(args.pattern)
    if args.list:  # names only: no binary needed
        for d, _, _, _ in tests:
            print(d)
        return 0
    if not os.access(args.bin, os.X_OK):
        print("FAIL setup: %s is not an executable (build first, or pass --bin)" % args.bin)
        print("0 passed, 1 failed")
        return 1
    args.bin = os.path.abspath(args.bin)
    if not tests:
        print("no test matches %r" % args.pattern)
        print("0 passed, 0 failed")
        return 1
    passed = failed = 0
    t_all = time.monotonic()
    for display, modname, funcname, own_timeout in tests:
        timeout = args.timeout or own_timeout or DEFAULT_TIMEOUT
        res, elapsed = run_one(args, display, modname, funcname, timeout)
        if res.get("ok"):
            passed += 1
            print("ok %s (%.1fs)" % (display, elapsed), flush=True)
        else:
            failed += 1
            reason = " | ".join(ln.strip() for ln in str(res.get("reason")).splitlines()
                                if ln.strip())
            print("FAIL %s: %s (%.1fs)" % (display, reason, elapsed), flush=True)
            if args.verbose:
                for k in ("detail", "diagnostics"):
                    if res.get(k):
                        print("    " + res[k].rstrip().replace("\n", "\n    "), flush=True)
    print("integration: %d tests in %.1fs" % (passed + failed, time.monotonic() - t_all))
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
