"""The worker: the one process that runs a submission's code, inside the sandbox.

The grading core starts it, either forked by the zygote (``python -I -m grader.core.worker --zygote
CTRL_FD``, :func:`zygote_main`: torch, NumPy, IPython and matplotlib imported once per batch) or
on its own (``python -I -m grader.core.worker CMD_FD REPLY_FD``), and drives it over two pipes with
JSON lines (:mod:`grader.core.wire`). The worker never decides a grade: it runs cells and, for each
exercise, calls ``Exercise.run`` on the cases it is sent and sends back the plain outputs.
Everything it reports is checked again by the core, so a submission that tampers with this
process can only spoil its own outputs.

Order of events, which is what makes tampering harmless:

0. :func:`confine`: resource limits, then the sandbox's unprivileged uid (right after the fork
   for a zygote's worker; after the course's setup cell for a standalone one).
1. ``init``: import the chapter's check module; bind the references the worker needs
   (``Exercise.run`` of every exercise, the encoder, the pipes); wire a pass-through tripwire on
   every name of every forbidden function (:func:`grader.core.static.wiring_sites`), so that a
   reference the learner's code takes later is the tripwire, not the original; run the course's
   setup cell.
2. ``cell``: run one cell with IPython (magics work). The learner's input transformers, AST
   transformers, custom exception handlers and patched shell methods are undone before every
   cell, so nothing a cell installs changes how the next one is read.
3. ``snapshot``: remember what an answer's name is bound to at the point its test cell would run.
4. ``check``: arm the exercise's tripwires (and a torch-function mode that catches calls to the
   originals by any route), run each case, disarm, reply with the outputs, the forbidden calls
   seen, and what was printed (truncated).
"""

from __future__ import annotations

import importlib
import io
import linecache
import os
import resource
import signal
import sys
from typing import Any

from grader.core import wire

_write, _read, _close, _getpid, _exit = os.write, os.read, os.close, os.getpid, os._exit
_encode, _dumps, _loads, _decode = wire.encode, wire.dumps, wire.loads, wire.decode
_type, _len, _isinstance, _str = type, len, isinstance, str

MISSING = object()
OUTPUT_LIMIT = 16_000  # characters of printed output kept per step
ERROR_LIMIT = 2_000


class Capped(io.TextIOBase):
    """A text stream that keeps the first characters written to it and counts the rest."""

    def __init__(self, limit: int = OUTPUT_LIMIT) -> None:
        super().__init__()
        self.limit, self.parts, self.kept, self.dropped = limit, [], 0, 0

    def write(self, text: Any) -> int:
        text = text if _type(text) is str else _str(text)
        room = self.limit - self.kept
        if room > 0:
            self.parts.append(text[:room])
            self.kept += min(room, _len(text))
        self.dropped += max(0, _len(text) - max(room, 0))
        return _len(text)

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        pass

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    def text(self) -> str:
        body = "".join(self.parts)
        if self.dropped:
            body += f"\n... [{self.dropped} more characters not shown]"
        return body


class Tripwires:
    """Pass-through wrappers on forbidden callables, raising only while their exercise is armed."""

    def __init__(self, forbidden: dict[str, list[str]]) -> None:
        from grader.kit.exercise import ForbiddenCallError
        from grader.core.static import forbidden_targets, wiring_sites

        self.error = ForbiddenCallError
        self.targets = {name: forbidden_targets(paths) for name, paths in forbidden.items()}
        self.armed: dict[int, str] = {}  # id(original or wrapper) -> path, while a check runs
        self.calls: list[str] = []
        self.wrappers: dict[int, int] = {}  # id(original) -> id(wrapper)
        union = forbidden_targets(sorted({p for paths in forbidden.values() for p in paths}))
        for owner, attr, path, original in wiring_sites(union):
            wrapper = self._wrap(path, original)
            try:
                setattr(owner, attr, wrapper)
            except (AttributeError, TypeError):
                continue
            self.wrappers[id(original)] = id(wrapper)

    def _wrap(self, path: str, original: Any) -> Any:
        armed, calls, error, key = self.armed, self.calls, self.error, id(original)

        def tripwire(*args: Any, **kwargs: Any) -> Any:
            if key in armed:
                calls.append(armed[key])
                raise error(f"{armed[key]} is off-limits in this exercise: write it yourself")
            return original(*args, **kwargs)

        for attr in ("__name__", "__qualname__", "__doc__", "__module__"):
            try:
                setattr(tripwire, attr, getattr(original, attr))
            except (AttributeError, TypeError):
                pass
        return tripwire

    def arm(self, exercise: str) -> None:
        self.calls.clear()
        self.armed.clear()
        targets = self.targets.get(exercise)
        if targets is None:
            return
        for key, path in targets.by_id.items():
            self.armed[key] = path
            if key in self.wrappers:
                self.armed[self.wrappers[key]] = path

    def disarm(self) -> None:
        self.armed.clear()


def make_mode(tripwires: Tripwires) -> Any:
    """A torch function mode that refuses armed functions reached by any route (originals too)."""
    from torch.overrides import TorchFunctionMode

    armed, calls, error = tripwires.armed, tripwires.calls, tripwires.error

    class Guard(TorchFunctionMode):
        def __torch_function__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None):
            path = armed.get(id(func))
            if path is not None:
                calls.append(path)
                raise error(f"{path} is off-limits in this exercise: write it yourself")
            return func(*args, **(kwargs or {}))

    return Guard()


class Worker:
    """Serves the grading core's requests (see the module docstring)."""

    def __init__(self, cmd_fd: int, reply_fd: int) -> None:
        self.cmd_fd, self.reply_fd = cmd_fd, reply_fd
        self.pid = _getpid()
        self.buffer = b""
        self.snapshots: dict[str, Any] = {}
        self.cell_files: dict[str, str] = {}  # IPython's file name of a cell -> our label
        self.shell: Any = None
        self.stdout, self.stderr = sys.stdout, sys.stderr
        self.confined = False
        # Room to report "out of memory" when an answer holds all the memory there is.
        self.reserve: bytearray | None = bytearray(8 * 2**20)

    # -- transport --------------------------------------------------------------------------------
    def receive(self) -> Any:
        while b"\n" not in self.buffer:
            chunk = _read(self.cmd_fd, 1 << 20)
            if not chunk:
                _exit(0)
            self.buffer += chunk
        line, self.buffer = self.buffer.split(b"\n", 1)
        return _loads(line)

    def send(self, message: Any) -> None:
        data = memoryview(_dumps(message))
        while data:
            written = _write(self.reply_fd, data)
            data = data[written:]

    def serve(self) -> None:
        handlers = {"init": self.init, "cell": self.cell, "snapshot": self.snapshot,
                    "check": self.check}
        while True:
            message = self.receive()
            try:
                reply = handlers[message["cmd"]](message)
            except MemoryError:  # the answer holds the memory: free the reserve to say so
                self.reserve = None
                reply = {"fatal": "MemoryError: the worker ran out of memory"}
            except BaseException as exc:  # the worker's own failure: report it, keep serving
                reply = {"fatal": f"{_type(exc).__name__}: {exc}"[:ERROR_LIMIT]}
            if _getpid() != self.pid:  # a fork of the learner's came back here: not ours
                _exit(0)
            self.send(reply)

    # -- init -------------------------------------------------------------------------------------
    def init(self, msg: dict[str, Any]) -> dict[str, Any]:
        for path in reversed(msg.get("paths", [])):
            sys.path.insert(0, path)
        import torch

        torch.set_num_threads(1)
        from grader.kit.exercise import Case, error_outputs

        self.Case, self.error_outputs = Case, error_outputs
        module = importlib.import_module(msg["module"])
        exercises = dict(module.EXERCISES)
        self.runs = {name: ex.run for name, ex in exercises.items()}
        # A dependent exercise is checked with references in place of the answers it builds on
        # (Exercise.prepare), so that a mistake in those is charged to their own exercise only.
        self.prepares = {name: ex.prepare for name, ex in exercises.items()}
        self.tripwires = Tripwires({name: list(ex.forbidden) for name, ex in exercises.items()})
        self.mode = make_mode(self.tripwires) if msg.get("mode", True) else None
        self.shell = make_shell()
        setup = self.run_source(msg.get("setup", ""), "the course's setup cell")
        if not self.confined:
            confine(msg.get("limits", {}), msg.get("uid"))
        os.register_at_fork(after_in_child=self._forked)
        self.saved = save_hooks(self.shell)
        return {"ok": True, "setup": setup}

    def _forked(self) -> None:
        # A child of the learner's code must not speak for the worker.
        for fd in (self.cmd_fd, self.reply_fd):
            try:
                _close(fd)
            except OSError:
                pass

    # -- cells ------------------------------------------------------------------------------------
    def run_source(self, source: str, label: str) -> dict[str, Any]:
        """Run one cell; report success or the learner-facing error, and what it printed."""
        before = {k for k in linecache.cache if k.startswith("<ipython-input")}
        out = Capped()
        sys.stdout = sys.stderr = out
        try:
            result = self.shell.run_cell(source, store_history=False, silent=False)
        finally:
            sys.stdout, sys.stderr = self.stdout, self.stderr
        for name in linecache.cache:
            if name.startswith("<ipython-input") and name not in before:
                self.cell_files[name] = label
        error = result.error_before_exec or result.error_in_exec
        return {"ok": error is None, "error": self.describe(error) if error is not None else None,
                "output": out.text()}

    def cell(self, msg: dict[str, Any]) -> dict[str, Any]:
        restore_hooks(self.shell, self.saved)
        return self.run_source(msg["source"], msg["label"])

    def snapshot(self, msg: dict[str, Any]) -> dict[str, Any]:
        found = {}
        for name in msg["names"]:
            value = self.shell.user_ns.get(name, MISSING)
            if value is not MISSING:
                self.snapshots[name] = value
            found[name] = None if value is MISSING else _type(value).__name__
        return {"found": found}

    def describe(self, exc: BaseException) -> dict[str, Any]:
        """An exception as the learner should see it: type, message, frames of their own cells."""
        try:
            message = _str(exc)
        except BaseException:
            message = "<the exception's message could not be shown>"
        frames = []
        tb = exc.__traceback__
        while tb is not None:
            filename = tb.tb_frame.f_code.co_filename
            if filename in self.cell_files:
                line = linecache.getline(filename, tb.tb_lineno).rstrip()
                frames.append([self.cell_files[filename], tb.tb_lineno,
                               tb.tb_frame.f_code.co_name, line[:200]])
            tb = tb.tb_next
        if _isinstance(exc, SyntaxError) and exc.lineno:
            frames.append(["", exc.lineno, "", (exc.text or "").rstrip()[:200]])
        return {"type": _type(exc).__name__, "message": message[:ERROR_LIMIT],
                "frames": frames[-6:]}

    # -- checks -----------------------------------------------------------------------------------
    def check(self, msg: dict[str, Any]) -> dict[str, Any]:
        name = msg["exercise"]
        impl = self.snapshots.get(name, MISSING)
        if impl is MISSING:
            impl = self.shell.user_ns.get(name, MISSING)
        if impl is MISSING:
            return {"missing": True}
        base = self.forbidden_base(name, impl)
        if base is not None:
            return {"results": [], "forbidden": [base], "subclass": True, "output": ""}
        cases = [self.Case(c["label"], _decode(c["args"]), c["public"], c.get("facet", ""))
                 for c in msg["cases"]]
        run, out, results, crash = self.runs[name], Capped(), [], None
        sys.stdout = sys.stderr = out
        self.tripwires.arm(name)
        mode = self.mode
        try:
            if mode is not None:
                mode.__enter__()
            try:
                try:
                    impl = self.prepares[name](impl)
                except Exception:  # cannot be rebuilt on the reference: checked as written
                    pass
                for case in cases:
                    results.append(self.run_case(run, impl, case))
                    if self.tripwires.calls:
                        break
            finally:
                self.tripwires.disarm()
                if mode is not None:
                    mode.__exit__(None, None, None)
        except BaseException as exc:  # SystemExit, KeyboardInterrupt... from the learner's code
            crash = self.describe(exc)
        finally:
            self.tripwires.disarm()
            sys.stdout, sys.stderr = self.stdout, self.stderr
        return {"results": results, "forbidden": list(self.tripwires.calls), "crash": crash,
                "output": out.text()}

    def run_case(self, run: Any, impl: Any, case: Any) -> dict[str, Any]:
        try:
            outputs = run(impl, case)
        except self.tripwires.error as exc:
            return {"out": _encode(self.error_outputs(exc)), "frames": []}
        except Exception as exc:
            error = self.describe(exc)
            try:
                outputs = self.error_outputs(exc)
            except Exception:
                outputs = {"__error__": _type(exc).__name__}
            try:
                return {"out": _encode({k: v for k, v in outputs.items()}),
                        "frames": error["frames"]}
            except Exception:
                return {"bad": "the error raised by the answer could not be reported"}
        if _type(outputs) is not dict:
            return {"bad": f"the check produced {_type(outputs).__name__}, not plain outputs"}
        try:
            return {"out": _encode(outputs)}
        except Exception as exc:
            return {"bad": f"the answer's outputs are not plain data: {exc}"[:ERROR_LIMIT]}

    def forbidden_base(self, name: str, impl: Any) -> str | None:
        targets = self.tripwires.targets.get(name)
        if targets is None or not _isinstance(impl, type):
            return None
        for klass in impl.__mro__[1:]:
            path = targets.classes.get(id(klass))
            if path is not None:
                return path
        return None


# ---------------------------------------------------------------------------------------------
# IPython


def make_shell() -> Any:
    """The IPython shell (one per process): no history, no tracebacks of its own."""
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    global WorkerShell
    if WorkerShell is None:
        class _WorkerShell(InteractiveShell):
            def showtraceback(self, *args: Any, **kwargs: Any) -> None:
                pass  # the core reports errors itself, from the learner's frames only

            def showsyntaxerror(self, *args: Any, **kwargs: Any) -> None:
                pass

            def enable_gui(self, gui: Any = None) -> None:
                pass  # headless: `%matplotlib inline` and friends must not fail a cell

        WorkerShell = _WorkerShell
    config = Config()
    config.HistoryManager.enabled = False
    config.InteractiveShell.colors = "nocolor"
    config.InteractiveShell.xmode = "Plain"
    return WorkerShell.instance(config=config)


WorkerShell: Any = None


def save_hooks(shell: Any) -> dict[str, Any]:
    """What :func:`restore_hooks` puts back before every cell."""
    manager = shell.input_transformer_manager
    return {
        "manager": manager,
        "cleanup": list(manager.cleanup_transforms),
        "line": list(manager.line_transforms),
        "token": list(manager.token_transformers),
        "post": list(shell.input_transformers_post),
        "ast": list(shell.ast_transformers),
        "custom_exceptions": shell.custom_exceptions,
        "events": {k: list(v) for k, v in shell.events.callbacks.items()},
        "instance": set(vars(shell)),
        "displayhook": sys.displayhook,
        "excepthook": sys.excepthook,
    }


def restore_hooks(shell: Any, saved: dict[str, Any]) -> None:
    """Undo what a cell may have installed to change how later cells are read or reported."""
    for key in list(vars(shell)):
        if key not in saved["instance"] and callable(getattr(type(shell), key, None)):
            try:
                delattr(shell, key)  # an instance-level override of a shell method
            except AttributeError:
                pass
    manager = saved["manager"]
    shell.input_transformer_manager = manager
    manager.cleanup_transforms[:] = saved["cleanup"]
    manager.line_transforms[:] = saved["line"]
    manager.token_transformers[:] = saved["token"]
    shell.input_transformers_post = list(saved["post"])
    shell.ast_transformers = list(saved["ast"])
    shell.custom_exceptions = saved["custom_exceptions"]
    if "CustomTB" in vars(shell):
        del shell.CustomTB
    for event, callbacks in saved["events"].items():
        shell.events.callbacks[event] = list(callbacks)
    sys.displayhook, sys.excepthook = saved["displayhook"], saved["excepthook"]


def confine(limits: dict[str, Any], uid: int | None) -> None:
    """Resource limits, then the unprivileged uid (as root): before any learner code runs."""
    for name, value in (("RLIMIT_CORE", 0), ("RLIMIT_AS", limits.get("memory")),
                        ("RLIMIT_FSIZE", limits.get("file_size")),
                        ("RLIMIT_NPROC", limits.get("processes")),
                        ("RLIMIT_CPU", limits.get("cpu"))):
        if value is not None and hasattr(resource, name):
            resource.setrlimit(getattr(resource, name), (int(value), int(value)))
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a too-large file fails the write, not us
    if uid is not None and os.geteuid() == 0:
        for top, dirs, files in os.walk(os.getcwd()):
            for name in dirs + files:
                os.lchown(os.path.join(top, name), uid, uid)
        os.chown(os.getcwd(), uid, uid)
        hidden = {p: os.open(p, os.O_RDONLY | os.O_DIRECTORY)
                  for p in {sys.base_prefix, sys.prefix} if not reachable(p)}
        os.setgroups([])
        os.setresgid(uid, uid, uid)
        os.setresuid(uid, uid, uid)
        if hidden:
            reach_through_fds(hidden)
    no_new_privileges()


def reachable(path: str) -> bool:
    """Whether any user may traverse every directory down to ``path``."""
    import stat

    current = os.path.abspath(path)
    while True:
        if not os.stat(current).st_mode & stat.S_IXOTH:
            return False
        parent = os.path.dirname(current)
        if parent == current:
            return True
        current = parent


def reach_through_fds(hidden: dict[str, int]) -> None:
    """Import from a Python installation the sandbox uid cannot traverse to (fallback only).

    A Python installed under a private home (``/root/.pyenv``) is out of reach once the worker
    drops to the sandbox uid. Directory descriptors opened before the drop still reach it through
    ``/proc/self/fd/N`` (which needs the process to stay "dumpable"): every import path under such
    a prefix is rewritten to go through its descriptor.
    """
    import ctypes

    ctypes.CDLL(None).prctl(4, 1, 0, 0, 0)  # PR_SET_DUMPABLE: /proc/self/fd stays ours

    def through(path: Any) -> Any:
        for prefix, fd in hidden.items():
            if isinstance(path, str) and (path == prefix or path.startswith(prefix + os.sep)):
                return f"/proc/self/fd/{fd}" + path[len(prefix):]
        return path

    sys.path[:] = [through(p) for p in sys.path]
    for module in list(sys.modules.values()):
        paths = getattr(module, "__path__", None)
        if isinstance(paths, list):
            paths[:] = [through(p) for p in paths]
    sys.path_importer_cache.clear()
    importlib.invalidate_caches()


def no_new_privileges() -> None:
    """PR_SET_NO_NEW_PRIVS: setuid programs cannot raise the sandbox's privileges."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(38, 1, 0, 0, 0)
    except Exception:
        pass


# ---------------------------------------------------------------------------------------------
# The zygote (see grader.core.sandbox.Zygote)


def preload() -> None:
    """Import what every worker needs, once, before forking (single-threaded: see worker_env)."""
    import numpy  # noqa: F401
    import torch
    import torch.nn.functional  # noqa: F401
    import torch.optim  # noqa: F401

    torch.set_num_threads(1)
    torch.zeros(2).add_(1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot  # noqa: F401

    import grader.kit.exercise  # noqa: F401
    import grader.core.static  # noqa: F401

    make_shell()
    for name in ("lossopt_helpers.data", "lossopt_helpers.plots", "lossopt_helpers.training"):
        try:
            importlib.import_module(name)
        except Exception:  # a helper that cannot load here is the setup cell's business
            pass


def zygote_main(ctrl_fd: int) -> None:
    """Serve fork requests from the grading core until it goes away."""
    import json
    import select
    import shutil
    import socket

    sock = socket.socket(fileno=ctrl_fd)
    preload()
    try:
        import ctypes

        ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: adopt orphans
    except Exception:
        pass
    base = os.getcwd()
    children: dict[int, str] = {}
    count = 0
    sock.send(b'{"ready": true}')
    while True:
        ready, _, _ = select.select([sock], [], [], 0.2)
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid in children:
                shutil.rmtree(children.pop(pid), ignore_errors=True)
                sock.send(json.dumps({"exit": pid,
                                      "code": os.waitstatus_to_exitcode(status)}).encode())
        if not ready:
            continue
        try:
            data, fds, _, _ = socket.recv_fds(sock, 65536, 3)
        except OSError:
            _exit(0)
        if not data:
            _exit(0)  # the grading core is gone
        request = json.loads(data)
        count += 1
        scratch = os.path.join(base, f"work-{request['uid']}-{count}")
        os.mkdir(scratch, 0o700)
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            child(sock, fds, scratch, request)
        for fd in fds:
            os.close(fd)
        children[pid] = scratch
        sock.send(json.dumps({"pid": pid}).encode())


def child(sock: Any, fds: list[int], scratch: str, request: dict[str, Any]) -> None:
    """In a forked child: become one submission's worker (never returns)."""
    code = 0
    try:
        sock.close()
        cmd_fd, reply_fd, out_fd = fds
        os.setsid()
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.chdir(scratch)
        for key in ("HOME", "TMPDIR"):
            os.environ[key] = scratch
        os.environ["MPLCONFIGDIR"] = f"{scratch}/.config/matplotlib"
        os.environ["IPYTHONDIR"] = f"{scratch}/.ipython"
        confine(request.get("limits", {}), request.get("uid"))
        worker = Worker(cmd_fd, reply_fd)
        worker.confined = True
        worker.serve()
    except BaseException:
        code = 70
    _exit(code)


def main(argv: list[str]) -> None:
    """Entry point: ``python -m grader.core.worker CMD_FD REPLY_FD`` or ``--zygote CTRL_FD``."""
    signal.signal(signal.SIGPIPE, signal.SIG_DFL)
    if argv[1] == "--zygote":
        zygote_main(int(argv[2]))
        return
    # Import the heavy modules now, before the first command: a worker started ahead of time
    # (a spare, see grader.core.sandbox.Pool.warm) is then ready when the core needs it.
    preload()
    Worker(int(argv[1]), int(argv[2])).serve()


if __name__ == "__main__":
    main(sys.argv)
