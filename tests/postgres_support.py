"""A throwaway PostgreSQL server for the gradebook tests, on 127.0.0.1, stopped by process id.

The server comes from Debian's packages (``apt-get install postgresql``, which ``.ci/run`` does):
its binaries live in ``/usr/lib/postgresql/<major>/bin``. ``initdb`` refuses to run as root, so
when the tests run as root the cluster belongs to an unprivileged account (``postgres`` when the
package created it, else ``nobody``) and the server runs as that account.

The gradebook URL carries no password (``postgresql+psycopg://lossopt@127.0.0.1:PORT/gradebook``):
the role has one, and libpq reads it from ``PGPASSWORD``, as a course's deployment would from
its environment or ``~/.pgpass``.
"""

from __future__ import annotations

import os
import pwd
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Literal

from browser_support import TRUE_WORDS, free_port

INSTALL_HINT = "apt-get install -y postgresql"
ROLE = "lossopt"


def postgres_bin() -> Path | None:
    """The newest installed PostgreSQL server's bin directory (or ``$POSTGRES_BIN``)."""
    if os.environ.get("POSTGRES_BIN"):
        return Path(os.environ["POSTGRES_BIN"])
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    on_path = shutil.which("postgres")
    return Path(on_path).parent if on_path else None


def postgres_unavailable(env: dict[str, str]) -> tuple[Literal["skip", "fail"], str] | None:
    """Why the PostgreSQL tests cannot run here: a skip, or a failure with ``REQUIRE_POSTGRES=1``."""
    problems = []
    bindir = postgres_bin()
    if bindir is None or not (bindir / "initdb").is_file():
        problems.append(f"no PostgreSQL server is installed (install it with `{INSTALL_HINT}`)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        problems.append("the psycopg package is missing (run `make setup`)")
    if not problems:
        return None
    reason = "PostgreSQL gradebook tests need a server: " + "; ".join(problems)
    if env.get("REQUIRE_POSTGRES", "").strip().lower() in TRUE_WORDS:
        return "fail", reason + " -- REQUIRE_POSTGRES is set, so this is a failure"
    return "skip", reason + " (set REQUIRE_POSTGRES=1 to make this a failure)"


def server_account() -> pwd.struct_passwd | None:
    """The account the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged account (postgres, nobody) exists")


class PostgresServer:
    """One PostgreSQL cluster in a temporary directory, listening on 127.0.0.1 only."""

    def __init__(self, max_connections: int = 200) -> None:
        self.bindir = postgres_bin()
        self.port = free_port()
        self.password = secrets.token_hex(12)
        self.max_connections = max_connections
        # Not under pytest's tmp_path: that is private to root, and the server runs as another uid.
        self.dir = Path(tempfile.mkdtemp(prefix="lossopt-pg-"))
        self.data = self.dir / "data"
        self.log_path = self.dir / "postgres.log"
        self.account = server_account()
        self.process: subprocess.Popen[bytes] | None = None

    def _as_server(self) -> dict:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}

    def url(self, database: str = "gradebook") -> str:
        """The SQLAlchemy URL of a database, without the password (libpq reads PGPASSWORD)."""
        return f"postgresql+psycopg://{ROLE}@127.0.0.1:{self.port}/{database}"

    def client_env(self, env: dict[str, str] | None = None) -> dict[str, str]:
        """``env`` (default: ours) plus the password for libpq."""
        env = dict(os.environ if env is None else env)
        env["PGPASSWORD"] = self.password
        return env

    def start(self, timeout: float = 60) -> None:
        """initdb (password auth on TCP), start ``postgres`` and wait until it accepts logins."""
        pwfile = self.dir / "pwfile"
        pwfile.write_text(self.password + "\n")
        if self.account is not None:
            os.chown(self.dir, self.account.pw_uid, self.account.pw_gid)
            os.chown(pwfile, self.account.pw_uid, self.account.pw_gid)
        subprocess.run([str(self.bindir / "initdb"), "-D", str(self.data), "-U", ROLE,
                        f"--pwfile={pwfile}", "--auth-host=scram-sha-256",
                        "--auth-local=scram-sha-256", "-E", "UTF8", "--no-instructions"],
                       check=True, capture_output=True, cwd=self.dir, timeout=120,
                       **self._as_server())
        pwfile.unlink()
        log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [str(self.bindir / "postgres"), "-D", str(self.data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.dir}",
             "-c", f"max_connections={self.max_connections}", "-c", "fsync=off",
             "-c", "shared_buffers=32MB"],
            cwd=self.dir, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            **self._as_server())
        log.close()
        import psycopg
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n"
                                   f"{self.log_tail()}")
            try:
                psycopg.connect(self.dsn("postgres"), connect_timeout=2).close()
                return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"postgres did not accept logins within {timeout:.0f} s:"
                                       f"\n{self.log_tail()}") from None
                time.sleep(0.2)

    def dsn(self, database: str) -> str:
        """A libpq connection string for psycopg (the password travels separately)."""
        return (f"host=127.0.0.1 port={self.port} user={ROLE} dbname={database} "
                f"password={self.password}")

    def create_database(self, name: str = "gradebook") -> str:
        """Create an empty database (nbgrader needs it to exist) and return its URL."""
        import psycopg
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def stop(self) -> None:
        """Fast shutdown (SIGINT) by process id; SIGKILL if it lingers; remove the cluster."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's log, for failure messages."""
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no log)"
