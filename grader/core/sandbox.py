"""Starting, talking to and killing the worker processes that run submissions.

Two ways to confine a worker, chosen by :func:`sandbox_mode` (``$LOSSOPT_SANDBOX``: ``bwrap``,
``fallback`` or ``auto``, the default, which probes bubblewrap once):

**bubblewrap** (Debian package ``bubblewrap``). The worker sees a fresh root: ``/usr`` and
``/etc`` read-only, the Python installation, the virtual environment and the two course packages
(``grader/``, ``lossopt_helpers/``) read-only at their own paths, a size-limited tmpfs ``/tmp``
holding its scratch directory, new ``/proc`` and ``/dev``, and its own PID, network, IPC and UTS
namespaces. Nothing else exists in there: not ``solutions/``, the gradebook, other submissions or
the course files.

**fallback** (no bubblewrap, or it cannot create namespaces). The worker runs in its own session,
with a scratch working directory and a clean environment. See grader/README.md for what the
fallback does not protect.

When the grader runs as root (as in CI and on a grading server), a :class:`Zygote` per batch
imports torch, NumPy, IPython and matplotlib once, inside the sandbox, and forks one child per
submission; each child takes a dedicated unprivileged uid (:class:`UidLease`) before any submitted
code runs. The uid makes the process limit effective and lets the core kill every process of a
submission (:func:`kill_uid`), double-forked daemons included, without touching the others. Not
as root, each worker is a sandbox of its own (:class:`Worker` without a zygote), and killing it
ends its process group (bubblewrap: its PID namespace).

In both cases the worker sets its resource limits (:class:`Limits`) before any submitted code
runs. Wall-clock limits are the core's: :meth:`Worker.request` waits at most ``timeout`` seconds
and the caller then kills the worker with SIGKILL (SIGINT-proof loops and sleeps included).
"""

from __future__ import annotations

import atexit
import dataclasses
import fcntl
import functools
import importlib.util
import json
import logging
import os
import queue
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from grader.core import wire

UID_BASE, UID_COUNT = 61000, 512  # dedicated sandbox uids (when the grader runs as root)
LOCK_DIR = Path(tempfile.gettempdir()) / "lossopt-grader-uids"
TMPFS_SIZE = 2 * 2**30  # the bubblewrap sandbox's /tmp, shared by the submissions of a batch


@dataclasses.dataclass(frozen=True)
class Limits:
    """Resource limits for one worker."""

    timeout: float = 60.0  # seconds, per cell and per exercise check (wall clock)
    memory: int = 4 * 2**30  # bytes of address space (torch alone maps about 0.7 GB)
    processes: int = 64  # processes and threads of the sandbox uid
    file_size: int = 64 * 2**20  # bytes, per file written
    output: int = 64 * 2**10  # bytes of raw stdout/stderr kept (the rest is counted, dropped)
    cpu: int = 3600  # seconds of CPU time, a backstop for the whole worker


class WorkerTimeout(Exception):
    """No reply within the time limit."""


class WorkerDied(Exception):
    """The worker process ended (its exit is described in the message)."""


class WorkerProtocolError(Exception):
    """The worker's reply is not valid plain data."""


# ---------------------------------------------------------------------------------------------
# Which sandbox


@functools.lru_cache(maxsize=1)
def bwrap_works() -> bool:
    """Whether bubblewrap is installed and can create the namespaces the worker needs."""
    exe = shutil.which("bwrap")
    if exe is None:
        return False
    try:
        probe = subprocess.run(
            [exe, "--ro-bind", "/", "/", "--unshare-pid", "--unshare-net", "--unshare-ipc",
             "--dev", "/dev", "--proc", "/proc", "--die-with-parent", "true"],
            capture_output=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def sandbox_mode() -> str:
    """``"bwrap"`` or ``"fallback"`` (see the module docstring)."""
    wanted = os.environ.get("LOSSOPT_SANDBOX", "auto")
    if wanted == "fallback":
        return "fallback"
    if wanted == "bwrap":
        if not bwrap_works():
            raise RuntimeError("LOSSOPT_SANDBOX=bwrap but bubblewrap cannot run here")
        return "bwrap"
    return "bwrap" if bwrap_works() else "fallback"


def package_dirs() -> list[Path]:
    """The directories of the course's own packages (an editable install points at the repo)."""
    dirs = []
    for name in ("grader", "lossopt_helpers"):
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.submodule_search_locations:
            dirs += [Path(p).resolve() for p in spec.submodule_search_locations]
    return dirs


def worker_env(home: str) -> dict[str, str]:
    """The worker's whole environment: nothing of the grader's (no seed, no secrets)."""
    venv_bin = str(Path(sys.executable).parent)
    return {
        "PATH": f"{venv_bin}:/usr/local/bin:/usr/bin:/bin", "HOME": home,
        "USER": "student", "LOGNAME": "student", "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8",
        "MPLBACKEND": "Agg", "MPLCONFIGDIR": f"{home}/.config/matplotlib",
        "IPYTHONDIR": f"{home}/.ipython", "JUPYTER_PLATFORM_DIRS": "1",
        # One thread each: notebooks are graded side by side, and a process that forks (the
        # zygote) must not hold a BLAS or OpenMP thread pool.
        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
        "PYTHONDONTWRITEBYTECODE": "1", "PYTHONHASHSEED": "0", "TMPDIR": home,
    }


def bwrap_prefix(extra_paths: list[Path], *, die_with_parent: bool = True) -> list[str]:
    """The bubblewrap command line up to the program to run (see the module docstring).

    ``die_with_parent`` ties the sandbox to the *thread* that starts it (PR_SET_PDEATHSIG follows
    the creating thread): right for a worker, wrong for a zygote started from a pool thread, which
    ends instead when the core closes its control socket.
    """
    argv = ["bwrap", *(["--die-with-parent"] if die_with_parent else []), "--unshare-pid",
            "--unshare-net", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
            "--hostname", "sandbox", "--ro-bind", "/usr", "/usr", "--ro-bind", "/etc", "/etc"]
    for top in ("/bin", "/sbin", "/lib", "/lib64", "/lib32", "/libx32"):
        if os.path.islink(top):
            argv += ["--symlink", os.readlink(top), top]
        elif os.path.isdir(top):
            argv += ["--ro-bind", top, top]
    argv += ["--proc", "/proc", "--dev", "/dev",
             "--perms", "1777", "--size", str(TMPFS_SIZE), "--tmpfs", "/tmp"]
    bound: list[Path] = []
    for path in [Path(sys.base_prefix).resolve(), Path(sys.prefix).resolve(), *package_dirs(),
                 *extra_paths]:
        if path.is_dir() and not any(path == b or b in path.parents for b in bound) and \
                not str(path).startswith(("/usr/", "/etc/")):
            bound.append(path)
    # bubblewrap creates missing parent directories 0700: the sandbox uid must traverse them.
    parents = sorted({p for path in bound for p in path.parents if str(p) != "/"},
                     key=lambda p: len(p.parts))
    for parent in parents:
        argv += ["--perms", "0755", "--dir", str(parent)]
    for path in bound:
        argv += ["--ro-bind", str(path), str(path)]
    argv += ["--perms", "0755", "--dir", "/tmp/sandbox", "--chdir", "/tmp/sandbox", "--clearenv"]
    for key, value in worker_env("/tmp/sandbox").items():
        argv += ["--setenv", key, value]
    return argv + ["--"]


# ---------------------------------------------------------------------------------------------
# Sandbox uids


class UidLease:
    """An exclusive sandbox uid for one worker (root only), held with a lock file."""

    def __init__(self) -> None:
        self.uid: int | None = None
        self._fd: int | None = None
        if os.geteuid() != 0:
            return
        LOCK_DIR.mkdir(mode=0o700, exist_ok=True)
        start = (os.getpid() * 7 + threading.get_ident()) % UID_COUNT
        for k in range(UID_COUNT):
            uid = UID_BASE + (start + k) % UID_COUNT
            fd = os.open(LOCK_DIR / str(uid), os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                continue
            self.uid, self._fd = uid, fd
            kill_uid(uid)  # leftovers of a grader that died before cleaning up
            return
        raise RuntimeError("no free sandbox uid")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def uid_processes(uid: int) -> list[int]:
    """Live (not zombie) processes whose real, effective or saved uid is ``uid``."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", "rb") as f:
                status = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        uids = fields.get("Uid", "").split()[:3]
        if str(uid) in uids and not fields.get("State", "").strip().startswith(("Z", "X")):
            found.append(int(entry))
    return found


def kill_uid(uid: int) -> None:
    """SIGKILL every process of ``uid``, until none is left.

    A child takes that uid and calls kill(-1), which signals every process the uid may signal:
    exactly its own. The killer runs in the grader's PID namespace, so it reaches into the
    sandboxes too; repeating covers a fork bomb racing the kill.
    """
    for _ in range(50):
        if not uid_processes(uid):
            return
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the child
            try:
                os.setgroups([])
                os.setresgid(uid, uid, uid)
                os.setresuid(uid, uid, uid)
                os.kill(-1, signal.SIGKILL)
            except BaseException:
                pass
            os._exit(0)
        os.waitpid(pid, 0)
        time.sleep(0.01)


def set_subreaper() -> None:
    """Make this process adopt orphans (a submission's double-forked processes, fallback mode)."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
    except Exception:
        pass


def describe_exit(code: int | None) -> str:
    """A learner-facing description of how the worker process ended."""
    names = {signal.SIGSEGV: "a segmentation fault (SIGSEGV)", signal.SIGBUS: "a bus error",
             signal.SIGFPE: "a floating-point exception (SIGFPE)", signal.SIGILL: "SIGILL",
             signal.SIGABRT: "an abort (SIGABRT)",
             signal.SIGKILL: "SIGKILL (possibly the system running out of memory)"}
    if code is None:
        return "the process stopped answering"
    sig = -code if code < 0 else code - 128 if code > 128 else None
    if sig is not None:
        try:
            name = names.get(signal.Signals(sig), signal.Signals(sig).name)
        except ValueError:
            name = f"signal {sig}"
        return f"the process was killed by {name}"
    if code == 0:
        return "the process exited (sys.exit() or os._exit(0) in your code?)"
    return f"the process exited with status {code} (os._exit({code}) or sys.exit({code}))"


# ---------------------------------------------------------------------------------------------
# The zygote: one pre-imported process that forks a worker per submission


class Zygote:
    """A sandboxed process that has imported the heavy modules and forks workers on request."""

    def __init__(self, mode: str, extra_paths: list[Path]) -> None:
        self.mode, self.extra_paths = mode, extra_paths
        self.lock = threading.Lock()
        self.exits: dict[int, int] = {}
        self.exited = threading.Condition()
        self.forked: queue.Queue[Any] = queue.Queue()
        self.alive = False
        self.home: str | None = None
        self._start()

    def _start(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        program = [sys.executable, "-I", "-m", "grader.core.worker", "--zygote",
                   str(theirs.fileno())]
        if self.mode == "bwrap":
            argv = bwrap_prefix(self.extra_paths, die_with_parent=False) + program
            env, cwd = {"PATH": "/usr/bin:/bin"}, "/"
        else:
            set_subreaper()
            self.home = tempfile.mkdtemp(prefix="lossopt-zygote-")
            os.chmod(self.home, 0o755)
            argv, env, cwd = program, worker_env(self.home), self.home
        try:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, env=env, cwd=cwd,
                                         pass_fds=(theirs.fileno(),), start_new_session=True)
        finally:
            theirs.close()
        self.sock = ours
        threading.Thread(target=self._read, daemon=True).start()
        kind, payload = self.forked.get(timeout=300)
        if kind != "ready":
            raise RuntimeError(f"the grader's zygote did not start: {payload}")
        self.alive = True

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                data = b""
            if not data:
                self.alive = False
                self.forked.put(("gone", "the zygote exited"))
                with self.exited:
                    self.exited.notify_all()
                return
            message = json.loads(data)
            if "exit" in message:
                with self.exited:
                    self.exits[message["exit"]] = message["code"]
                    self.exited.notify_all()
            elif "ready" in message:
                self.forked.put(("ready", None))
            else:
                self.forked.put(("forked", message))

    def fork(self, uid: int, fds: tuple[int, int, int], limits: dict[str, int]) -> int:
        """Fork a worker that serves on the given pipe ends; return its pid (in the sandbox)."""
        with self.lock:
            if not self.alive:
                raise RuntimeError("the grader's zygote is gone")
            request = json.dumps({"uid": uid, "limits": limits}).encode()
            socket.send_fds(self.sock, [request], list(fds))
            kind, payload = self.forked.get(timeout=60)
        if kind != "forked" or "pid" not in payload:
            raise RuntimeError(f"the grader's zygote could not fork: {payload}")
        return int(payload["pid"])

    def exit_code(self, pid: int, timeout: float) -> int | None:
        """The exit code of a forked worker, once the zygote has reaped it."""
        deadline = time.monotonic() + timeout
        with self.exited:
            while pid not in self.exits and self.alive:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.exited.wait(left)
            return self.exits.pop(pid, None)

    def close(self) -> None:
        self.alive = False
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        self.proc.kill()
        self.proc.wait()
        self.sock.close()
        if self.mode != "bwrap":
            reap_orphans()  # the zygote's last children were re-parented to us
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)


class Pool:
    """Where workers come from: a zygote when running as root, fresh processes otherwise."""

    def __init__(self, mode: str | None = None, extra_paths: list[Path] | None = None) -> None:
        self.mode = mode or sandbox_mode()
        self.extra_paths = [Path(p).resolve() for p in (extra_paths or [])]
        self.zygote: Zygote | None = None
        self.lock = threading.Lock()
        # Spare workers (see warm()): one started ahead of time per Limits, and the long-lived
        # thread that starts them (bubblewrap's --die-with-parent follows the starting thread).
        self.spares: dict[Limits, Worker] = {}
        self.warmed: set[Limits] = set()
        self.spare_requests: queue.Queue[Limits | None] | None = None
        self.closed = False

    def warm(self, limits: Limits) -> None:
        """Get ready to hand out a worker for ``limits`` at once.

        With a zygote (as root), start it (it imports torch and the rest once). Otherwise start one
        sandboxed worker ahead of time, which imports the heavy modules as soon as it starts
        (:func:`grader.core.worker.preload`); the next :class:`Worker` asked for with the same
        limits is that one, and a new spare is started after each take.
        """
        if self.get_zygote() is not None:
            return
        with self.lock:
            if self.closed or limits in self.warmed:
                return
            self.warmed.add(limits)
        self._request_spare(limits)

    def _request_spare(self, limits: Limits) -> None:
        with self.lock:
            if self.closed:
                return
            if self.spare_requests is None:
                self.spare_requests = queue.Queue()
                threading.Thread(target=self._make_spares, args=(self.spare_requests,),
                                 name="lossopt-spare-workers", daemon=True).start()
            self.spare_requests.put(limits)

    def _make_spares(self, requests: queue.Queue[Limits | None]) -> None:
        while True:
            limits = requests.get()
            if limits is None:
                return
            with self.lock:
                if self.closed or limits in self.spares:
                    continue
            try:
                spare = Worker(limits, self, spare=True)
            except Exception as exc:  # no spare: the next request starts its worker itself
                logging.getLogger("grader").warning("could not start a spare worker: %s", exc)
                continue
            with self.lock:
                if self.closed or limits in self.spares:
                    keep = False
                else:
                    self.spares[limits] = spare
                    keep = True
            if not keep:
                spare.close()

    def take_spare(self, limits: Limits) -> Worker | None:
        """The spare worker started for ``limits`` if it is still alive (then a new spare is
        started), else None."""
        with self.lock:
            spare = self.spares.pop(limits, None)
            wanted = limits in self.warmed and not self.closed
        if wanted:
            self._request_spare(limits)
        if spare is not None and (spare.proc is None or spare.proc.poll() is not None):
            spare.close()
            return None
        return spare

    def get_zygote(self) -> Zygote | None:
        """The batch's zygote: as root only (each worker needs its own uid), unless
        ``$LOSSOPT_ZYGOTE=0`` asks for one fresh sandbox per worker."""
        if os.geteuid() != 0 or os.environ.get("LOSSOPT_ZYGOTE", "1") == "0":
            return None
        with self.lock:
            if self.zygote is None or not self.zygote.alive:
                if self.zygote is not None:
                    self.zygote.close()
                self.zygote = Zygote(self.mode, self.extra_paths)
            return self.zygote

    def close(self) -> None:
        with self.lock:
            self.closed = True
            spares, self.spares = list(self.spares.values()), {}
            if self.spare_requests is not None:
                self.spare_requests.put(None)
            if self.zygote is not None:
                self.zygote.close()
                self.zygote = None
        for spare in spares:
            spare.close()


_shared: dict[tuple[str, tuple[str, ...]], Pool] = {}


def shared_pool(mode: str | None, extra_paths: list[Path]) -> Pool:
    """A pool kept for the life of this process (for nbgrader, which grades one at a time)."""
    key = (mode or sandbox_mode(), tuple(str(p) for p in extra_paths))
    if key not in _shared:
        _shared[key] = Pool(*key[:1], extra_paths)
        atexit.register(_shared[key].close)
    return _shared[key]


# ---------------------------------------------------------------------------------------------
# A worker, seen from the core


_live: set[int] = set()  # pids of running standalone workers (children of this process)
_live_lock = threading.Lock()


class Worker:
    """One worker process (forked by a zygote, or standalone) and its pipes."""

    def __new__(cls, limits: Limits, pool: Pool, *, spare: bool = False) -> Worker:
        # A worker asked for with limits the pool was warmed for is its spare, already started.
        if not spare:
            taken = pool.take_spare(limits)
            if taken is not None:
                return taken
        return super().__new__(cls)

    def __init__(self, limits: Limits, pool: Pool, *, spare: bool = False) -> None:
        if getattr(self, "started", False):  # a spare handed out by __new__
            return
        self.started = True
        self.limits, self.pool = limits, pool
        self.replies: queue.Queue[Any] = queue.Queue()
        self.output_head = bytearray()
        self.output_tail = b""
        self.output_total = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.zygote: Zygote | None = None
        self.zpid: int | None = None
        self.scratch: str | None = None
        self.lease = UidLease()
        self.cmd_fd = self.reply_fd = self.out_fd = None
        try:
            self._start()
        except BaseException:
            self.close()
            raise

    @property
    def uid(self) -> int | None:
        return self.lease.uid

    def rlimits(self) -> dict[str, int]:
        """The limits the worker sets on itself (see :func:`grader.core.worker.confine`)."""
        return {"memory": self.limits.memory, "processes": self.limits.processes,
                "file_size": self.limits.file_size, "cpu": self.limits.cpu}

    def _start(self) -> None:
        cmd_r, cmd_w = os.pipe()
        reply_r, reply_w = os.pipe()
        out_r, out_w = os.pipe()
        self.cmd_fd, self.reply_fd, self.out_fd = cmd_w, reply_r, out_r
        try:
            zygote = self.pool.get_zygote()
            if zygote is not None and self.uid is not None:
                self.zygote = zygote
                self.zpid = zygote.fork(self.uid, (cmd_r, reply_w, out_w), self.rlimits())
            else:
                self._spawn(cmd_r, reply_w, out_w)
        finally:
            for fd in (cmd_r, reply_w, out_w):
                os.close(fd)
        threading.Thread(target=self._read_replies, daemon=True).start()
        threading.Thread(target=self._drain_output, daemon=True).start()

    def _spawn(self, cmd_r: int, reply_w: int, out_w: int) -> None:
        program = [sys.executable, "-I", "-m", "grader.core.worker", str(cmd_r), str(reply_w)]
        if self.pool.mode == "bwrap":
            argv, env, cwd = bwrap_prefix(self.pool.extra_paths) + program, {
                "PATH": "/usr/bin:/bin"}, "/"
        else:
            set_subreaper()
            self.scratch = tempfile.mkdtemp(prefix="lossopt-work-")
            if self.uid is not None:
                os.chown(self.scratch, self.uid, self.uid)
            argv, env, cwd = program, worker_env(self.scratch), self.scratch
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out_w, stderr=out_w,
                                     env=env, cwd=cwd, pass_fds=(cmd_r, reply_w),
                                     start_new_session=True, close_fds=True)
        with _live_lock:
            _live.add(self.proc.pid)

    # -- pipes ------------------------------------------------------------------------------------
    def _read_replies(self) -> None:
        buffer = b""
        try:
            while True:
                chunk = os.read(self.reply_fd, 1 << 20)
                if not chunk:
                    break
                buffer += chunk
                while b"\n" in buffer:
                    line, buffer = buffer.split(b"\n", 1)
                    self.replies.put(("line", line))
                if len(buffer) > wire.MAX_TOTAL_BYTES:
                    self.replies.put(("error", "a reply exceeded the size limit"))
                    break
        except (OSError, TypeError):
            pass
        self.replies.put(("eof", None))

    def _drain_output(self) -> None:
        try:
            while True:
                chunk = os.read(self.out_fd, 1 << 16)
                if not chunk:
                    break
                self.output_total += len(chunk)
                room = self.limits.output - len(self.output_head)
                if room > 0:
                    self.output_head += chunk[:room]
                self.output_tail = (self.output_tail + chunk)[-4096:]
        except (OSError, TypeError):
            pass

    def raw_output(self) -> str:
        """What the process wrote to its stdout/stderr at the file-descriptor level (truncated)."""
        text = self.output_head.decode("utf-8", "replace")
        if self.output_total > len(self.output_head):
            text += (f"\n... [{self.output_total - len(self.output_head)} more bytes] ...\n"
                     + self.output_tail.decode("utf-8", "replace")[-1000:])
        return text

    def request(self, message: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Send one request and wait for its reply.

        Raises:
            WorkerTimeout: no reply within ``timeout`` seconds (the caller kills the worker).
            WorkerDied: the process ended; the message says how.
            WorkerProtocolError: the reply is not valid plain data.
        """
        deadline = time.monotonic() + timeout
        self._write(wire.dumps(message), deadline)
        try:
            kind, payload = self.replies.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            raise WorkerTimeout() from None
        if kind == "eof":
            self.replies.put(("eof", None))
            raise WorkerDied(describe_exit(self.exit_code(5.0)))
        if kind == "error":
            raise WorkerProtocolError(payload)
        try:
            reply = wire.loads(payload)
        except wire.WireError as exc:
            raise WorkerProtocolError(str(exc)) from None
        if type(reply) is not dict:
            raise WorkerProtocolError("the reply is not a JSON object")
        return reply

    def _write(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            left = deadline - time.monotonic()
            if left <= 0:
                raise WorkerTimeout()
            try:
                _, ready, _ = select.select([], [self.cmd_fd], [], left)
            except (OSError, ValueError):
                raise WorkerDied(describe_exit(self.exit_code(5.0))) from None
            if not ready:
                continue
            try:
                written = os.write(self.cmd_fd, view[:1 << 16])
            except BrokenPipeError:
                raise WorkerDied(describe_exit(self.exit_code(5.0))) from None
            view = view[written:]

    def exit_code(self, timeout: float) -> int | None:
        """The worker's exit code (waiting up to ``timeout`` s), None if unknown or running."""
        if self.zygote is not None and self.zpid is not None:
            return self.zygote.exit_code(self.zpid, timeout)
        if self.proc is None:
            return None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def peak_memory(self) -> int:
        """The largest address space (bytes) any live process of this worker reached so far.

        Read before a kill, it tells a memory bomb that ran into ``RLIMIT_AS`` somewhere the
        answer cannot report it (in a C extension, in a child process, in the worker's own
        plumbing) from a plain infinite loop. 0 when unknown.
        """
        pids = uid_processes(self.uid) if self.uid is not None else []
        if not pids and self.proc is not None:
            pids = [self.proc.pid]
        peak = 0
        for pid in pids:
            try:
                with open(f"/proc/{pid}/status", "rb") as f:
                    status = f.read().decode("ascii", "replace")
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmPeak:"):
                    peak = max(peak, int(line.split()[1]) * 1024)
        return peak

    def near_memory_limit(self) -> bool:
        """Whether the worker came within 5 % of its memory limit."""
        return self.peak_memory() >= 0.95 * self.limits.memory

    # -- stop -------------------------------------------------------------------------------------
    def kill(self) -> None:
        """SIGKILL the worker and every process it started."""
        if self.proc is not None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
            try:
                self.proc.kill()
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(10.0)
            except subprocess.TimeoutExpired:
                pass
            with _live_lock:
                _live.discard(self.proc.pid)
        if self.uid is not None:
            kill_uid(self.uid)
        if self.pool.mode != "bwrap" and self.zygote is None:
            reap_orphans()

    def close(self) -> None:
        """Kill the worker (if running) and free its pipes, scratch directory and uid."""
        self.kill()
        for name in ("cmd_fd", "reply_fd", "out_fd"):
            fd = getattr(self, name, None)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)
        if self.scratch is not None:
            shutil.rmtree(self.scratch, ignore_errors=True)
            self.scratch = None
        self.lease.release()


def reap_orphans() -> None:
    """Kill and reap processes that became our children by adoption (fallback, not as root).

    With the subreaper flag set, a submission's double-forked process is re-parented to the grader
    when its parent dies. A child of ours in another session that is not a running worker is such
    an orphan.
    """
    me, session = str(os.getpid()), str(os.getsid(0))
    try:
        entries = os.listdir("/proc")
    except OSError:
        return
    with _live_lock:
        live = set(_live)
    for entry in entries:
        if not entry.isdigit() or int(entry) in live:
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read().decode("ascii", "replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 3 and fields[1] == me and fields[3] != session:
            try:
                os.kill(int(entry), signal.SIGKILL)
                os.waitpid(int(entry), 0)
            except (ProcessLookupError, ChildProcessError, PermissionError):
                pass
