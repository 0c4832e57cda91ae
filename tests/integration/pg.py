"""A real PostgreSQL per test, started by the test itself: initdb into the test's temporary
directory, the server on a free loopback port, stopped (and its files removed) with the test.

CI runs as root and PostgreSQL refuses to run as root, so as root every server-side command runs
as Debian's `postgres` user through `runuser` on a directory that user owns. The postmaster runs in
the foreground as a child of the test (not daemonized by pg_ctl), so the runner's process-group
kill reaches it even when a test hangs. Clients (psql) connect over TCP with trust auth.

    pg = Postgres(fx)              # initdb + start; pg.url("postgres")
    pg.createdb("t1")
    pg.query("SELECT count(*) FROM slogate_requests", db="t1") -> "42"
    pg.stop()                      # fast shutdown (SIGINT), as `pg_ctl stop -m fast`
    pg.start()                     # again, same data
"""

import glob
import os
import pwd
import re
import shutil
import signal
import subprocess
import time

from harness import TestFailure, free_port


def pg_bindir():
    """The newest /usr/lib/postgresql/*/bin with initdb, or the directory of initdb on PATH."""
    found = glob.glob("/usr/lib/postgresql/*/bin/initdb")
    if found:
        found.sort(key=lambda p: [int(x) for x in re.findall(r"\d+", p)])
        return os.path.dirname(found[-1])
    w = shutil.which("initdb")
    if w:
        return os.path.dirname(w)
    raise TestFailure("PostgreSQL server binaries (initdb, postgres) not found: scripts/install-deps "
                      "installs the Debian package `postgresql`")


class _PgProc:
    """What the fixture needs to stop and report on the server like any other process."""

    def __init__(self, pg):
        self.pg = pg
        self.name = "postgres"

    @property
    def pid(self):
        return self.pg.p.pid if self.pg.p else 0

    def kill(self):
        self.pg.stop(mode="immediate")

    def crash(self):
        return None

    def sanitizer_report(self):
        return None

    def stderr(self):
        try:
            with open(self.pg.log, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""


class Postgres:
    def __init__(self, fx, start=True):
        self.fx = fx
        self.bin = pg_bindir()
        self.root = os.getuid() == 0
        self.dir = os.path.join(fx.dir, "pg")
        self.data = os.path.join(self.dir, "data")
        self.log = os.path.join(self.dir, "server.log")
        self.port = free_port()
        self.p = None
        os.makedirs(self.dir)
        if self.root:
            # The postgres user must reach its directory through the test's (root-owned, 0700)
            # temporary directory.
            os.chmod(fx.dir, 0o711)
            pw = pwd.getpwnam("postgres")
            os.chown(self.dir, pw.pw_uid, pw.pw_gid)
        r = subprocess.run(self._as_server([os.path.join(self.bin, "initdb"), "-D", self.data,
                                            "-A", "trust", "-U", "postgres", "--no-sync",
                                            "-E", "UTF8", "--locale=C"]),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        if r.returncode != 0:
            raise TestFailure("initdb failed: %s" % r.stdout.decode("utf-8", "replace")[-1500:])
        fx.procs.append(_PgProc(self))
        if start:
            self.start()

    def _as_server(self, args):
        return (["runuser", "-u", "postgres", "--"] + args) if self.root else args

    def start(self, timeout=20):
        if self.p and self.p.poll() is None:
            return
        logf = open(self.log, "ab")
        # fsync off: a test's database does not need to survive a power cut, and it keeps the
        # tests fast on a shared machine.
        self.p = subprocess.Popen(self._as_server([
            os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port),
            "-k", self.dir, "-c", "listen_addresses=127.0.0.1", "-c", "fsync=off",
            "-c", "full_page_writes=off", "-c", "max_connections=50"]),
            stdout=logf, stderr=logf, stdin=subprocess.DEVNULL)
        logf.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.p.poll() is not None:
                raise TestFailure("postgres exited at start: %s" % _PgProc(self).stderr()[-1500:])
            r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                                "-d", "postgres", "-Atc", "SELECT 1"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, timeout=10)
            if r.returncode == 0:
                return
            time.sleep(0.1)
        raise TestFailure("postgres did not accept connections within %ss" % timeout)

    def _postmaster_pid(self):
        try:
            with open(os.path.join(self.data, "postmaster.pid")) as f:
                return int(f.readline().strip())
        except (OSError, ValueError):
            return None

    def stop(self, mode="fast", timeout=20):
        """fast: SIGINT (abort sessions, clean shutdown); immediate: SIGQUIT (crash-like)."""
        if not self.p or self.p.poll() is not None:
            return
        sig = signal.SIGINT if mode == "fast" else signal.SIGQUIT
        pid = self._postmaster_pid() or self.p.pid
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
        try:
            self.p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pid = self._postmaster_pid()
            if pid:
                os.kill(pid, signal.SIGKILL)
            self.p.kill()
            self.p.wait()

    def url(self, db="postgres"):
        return "postgresql://postgres@127.0.0.1:%d/%s" % (self.port, db)

    def query(self, sql, db="postgres"):
        r = subprocess.run(["psql", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                            "-d", db, "-v", "ON_ERROR_STOP=1", "-Atc", sql],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        if r.returncode != 0:
            raise TestFailure("psql %r failed: %s" % (sql, r.stderr.decode("utf-8", "replace")))
        return r.stdout.decode().strip()

    def createdb(self, name):
        self.query('CREATE DATABASE "%s"' % name)
        return self.url(name)
