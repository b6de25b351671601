"""The bad-submission corpus of the fixture chapter ``99_fixture`` (mse_loss, softplus, SGD).

Each :class:`Submission` is built from the fixture's real notebooks and says what the grading core
must answer: a status per graded cell and words its message must contain. Most submissions attack
all three exercises at once (one per exercise), so that a single grading batch covers many
threats with few worker processes.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from submissions import (Chapter, Notebook, code_cell, delete, duplicate, edit_test_cells, insert,
                         markdown_cell, move_to_end, own_cell_after_setup, retype, set_answer,
                         strip_metadata)

M, S, G = "test_mse_loss", "test_softplus", "test_SGD"
FAILED = ("failed", "error", "missing")  # an answer spoiled by its own tampering

# Wrong answers, each a known mistake of the fixture's checks.
M_WRONG = '''def mse_loss(input, target, reduction="mean"):
    d = (input - target).abs()
    return d.mean() if reduction == "mean" else d.sum() if reduction == "sum" else d'''
S_WRONG = '''def softplus(input, beta=1.0):
    return torch.log1p(torch.exp(beta * input)) / beta'''
G_WRONG = '''class SGD(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3):
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure=None):
        for group in self.param_groups:
            for p in group["params"]:
                p.add_(p.grad, alpha=group["lr"])'''

SGD_HEAD = '''class SGD(torch.optim.Optimizer):
    def __init__(self, params, lr=1e-3):
        super().__init__(params, {"lr": lr})

'''


@dataclasses.dataclass
class Submission:
    """A submission and the verdict the core must give it."""

    name: str
    content: Notebook | bytes
    expect: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = dataclasses.field(
        default_factory=dict)
    status: str = "graded"
    message_has: tuple[str, ...] = ()
    filename: str | None = None  # default: <name>/99_fixture.ipynb
    fallback: bool = False  # also graded in the fallback sandbox


def wrong(ch: Chapter, **answers: str) -> Notebook:
    """All three answers wrong, unless given."""
    return ch.filled(**{"mse_loss": M_WRONG, "softplus": S_WRONG, "SGD": G_WRONG, **answers})


def tampering(ch: Chapter) -> list[Submission]:
    """Tampering inside the learner's process can only make their own answers wrong."""
    builtins_ = own_cell_after_setup(wrong(ch), '''
import builtins, math
import numpy as np
import numpy.testing
builtins.abs = lambda x: 0
math.isclose = lambda *a, **k: True
torch.allclose = lambda *a, **k: True
torch.equal = lambda *a, **k: True
np.isclose = lambda *a, **k: np.True_
np.allclose = lambda *a, **k: True
np.array_equal = lambda *a, **k: True
np.testing.assert_allclose = lambda *a, **k: None
''')
    modules = own_cell_after_setup(wrong(ch), '''
import sys, types, importlib.abc, importlib.machinery
import grader.kit.exercise as E
E.compare_outputs = lambda *a, **k: None
E.Exercise.judge = lambda self, *a, **k: E.Verdict(True)
E.Exercise.compare = lambda self, *a, **k: None
torch.Tensor.__eq__ = lambda self, other: True
torch.Tensor.numpy = lambda self, *a, **k: np.zeros(self.shape)
class Fake(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path=None, target=None):
        if name.startswith("grader"):
            return importlib.machinery.ModuleSpec(name, self)
    def create_module(self, spec):
        return types.ModuleType(spec.name)
    def exec_module(self, module):
        module.check = lambda *a, **k: None
for name in [m for m in sys.modules if m.startswith(("grader", "ch99"))]:
    sys.modules[name] = types.ModuleType(name)
sys.meta_path.insert(0, Fake())
''')
    liars = wrong(ch, mse_loss='''class Liar(float):
    def __eq__(self, other):
        return True
    def __sub__(self, other):
        return 0.0
    __rsub__ = __sub__
    def __abs__(self):
        return 0.0

def mse_loss(input, target, reduction="mean"):
    return Liar(0.0)''', softplus='''class Rigged(torch.Tensor):
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        return torch.tensor(0.0)
    def __eq__(self, other):
        return True

def softplus(input, beta=1.0):
    return input.as_subclass(Rigged)''')
    hooks = own_cell_after_setup(wrong(ch, softplus=ch.answers()["softplus"],
                                       SGD=ch.answers()["SGD"]), '''
import ast, sys
ip = get_ipython()
ip.input_transformers_cleanup.append(lambda lines: ["pass\\n"])
ip.input_transformers_post.append(lambda lines: ["pass\\n"])
class Blank(ast.NodeTransformer):
    def visit_Module(self, node):
        return ast.Module(body=[], type_ignores=[])
ip.ast_transformers.append(Blank())
ip.set_custom_exc((Exception,), lambda self, etype, value, tb, tb_offset=None: None)
ip.showtraceback = lambda *a, **k: None
ip.run_cell = lambda *a, **k: None
ip.events.register("pre_run_cell", lambda *a: None)
sys.excepthook = lambda *a: None
''')
    thread = own_cell_after_setup(wrong(ch, mse_loss='''def mse_loss(input, target, reduction="mean"):
    return _hidden(input, target, reduction=reduction)'''), '''
import builtins, threading, time
_hidden = getattr(F, "".join(map(chr, [109, 115, 101, 95, 108, 111, 115, 115])))
def _repatch():
    while True:
        builtins.abs = lambda x: 0
        torch.allclose = lambda *a, **k: True
        np.isclose = lambda *a, **k: np.True_
        F.mse_loss = _hidden
        time.sleep(0.001)
threading.Thread(target=_repatch, daemon=True).start()
''')
    return [
        Submission("tamper_builtins", builtins_, {M: (FAILED, ()), S: (FAILED, ()),
                                                  G: (FAILED, ())}),
        Submission("tamper_modules", modules, {M: (FAILED, ()), S: (FAILED, ()),
                                               G: (FAILED, ())}),
        Submission("tamper_liars", liars, {
            M: (("error",), ("must be a torch.Tensor", "Liar")),
            S: (("error",), ("must be a torch.Tensor", "Rigged")), G: (FAILED, ())}),
        Submission("tamper_ipython_hooks", hooks, {
            M: (("failed",), ("Likely mistake",)), S: (("passed",), ()), G: (("passed",), ())}),
        Submission("tamper_thread", thread, {
            M: (("forbidden",), ("torch.nn.functional.mse_loss",)), S: (FAILED, ()),
            G: (FAILED, ())}),
    ]


# Answers that hand the work to PyTorch, by route: direct call, alias, module form, getattr
# string, __import__, subclassing; and routes only the run-time tripwires can see.
DIRECT = {
    "mse_loss": 'def mse_loss(input, target, reduction="mean"):\n'
                "    return F.mse_loss(input, target, reduction=reduction)",
    "softplus": "from torch.nn.functional import softplus as sp\n\n"
                "def softplus(input, beta=1.0):\n    return sp(input, beta=beta)",
    "SGD": "class SGD(torch.optim.SGD):\n    pass",
}
ROUTES = {
    "mse_loss": 'import torch.nn as nn\n\ndef mse_loss(input, target, reduction="mean"):\n'
                "    return nn.MSELoss(reduction=reduction)(input, target)",
    "softplus": "def softplus(input, beta=1.0):\n"
                '    f = getattr(F, "soft" + "plus")\n    return f(input, beta)',
    "SGD": SGD_HEAD.replace("        super()", "        params = list(params)\n        super()")
    + '        self.inner = __import__("torch.optim", fromlist=["SGD"]).SGD(params, lr=lr)\n\n'
      "    def step(self, closure=None):\n        return self.inner.step(closure)",
}
RUNTIME = {
    "mse_loss": '_name = "".join(map(chr, [109, 115, 101, 95, 108, 111, 115, 115]))\n\n'
                'def mse_loss(input, target, reduction="mean"):\n'
                "    return getattr(F, _name)(input, target, reduction=reduction)",
    "softplus": "_f = getattr(torch._C._nn,\n"
                '           "".join(map(chr, [115, 111, 102, 116, 112, 108, 117, 115])))\n\n'
                "def softplus(input, beta=1.0):\n    return _f(input, beta, 20.0)",
    "SGD": '_cls = getattr(torch.optim, "".join(map(chr, [83, 71, 68])))\n\n'
    + SGD_HEAD.replace("        super()", "        params = list(params)\n        super()")
    + "        self.inner = _cls(params, lr=lr)\n\n"
      "    def step(self, closure=None):\n        return self.inner.step(closure)",
}


def forbidden(ch: Chapter) -> list[Submission]:
    """Calling what the exercise re-implements, by every route."""
    direct, routes, runtime = (wrong(ch, **answers) for answers in (DIRECT, ROUTES, RUNTIME))
    answers = ch.answers()
    digging = own_cell_after_setup(wrong(ch, mse_loss='''def mse_loss(input, target, reduction="mean"):
    return _original(input, target, reduction=reduction)''', softplus='''def softplus(input, beta=1.0):
    return [c.cell_contents for c in F.softplus.__closure__][0](input, beta)''',
        SGD=answers["SGD"]), '''
_name = lambda *codes: "".join(map(chr, codes))
_fn = getattr(F, _name(109, 115, 101, 95, 108, 111, 115, 115))
_cells = getattr(_fn, _name(95, 95, 99, 108, 111, 115, 117, 114, 101, 95, 95))
_contents = [getattr(c, _name(99, 101, 108, 108, 95, 99, 111, 110, 116, 101, 110, 116, 115))
             for c in _cells]
_original = next(v for v in _contents if callable(v) and getattr(v, "__name__", "") == "mse_loss")
''')
    control = insert(own_cell_after_setup(
        ch.filled(mse_loss=answers["mse_loss"].replace("(input - target) ** 2",
                                                       "_square(input - target)")),
        "def _square(d):\n    return d * d"), "mse_loss", code_cell(
        "x, y = torch.randn(3), torch.randn(3)\nprint(F.mse_loss(x, y), mse_loss(x, y))\n"
        "print(F.softplus(x))"))
    return [
        Submission("forbidden_direct", direct, {
            M: (("forbidden",), ("torch.nn.functional.mse_loss", "off-limits")),
            S: (("forbidden",), ("torch.nn.functional.softplus",)),
            G: (("forbidden",), ("subclasses torch.optim.SGD",))}),
        Submission("forbidden_routes", routes, {
            M: (("forbidden",), ("torch.nn.MSELoss",)),
            S: (("forbidden",), ("torch.nn.functional.softplus",)),
            G: (("forbidden",), ("torch.optim.SGD",))}),
        Submission("forbidden_runtime", runtime, {
            M: (("forbidden",), ("torch.nn.functional.mse_loss", "while it was checked")),
            S: (("forbidden",), ("softplus", "while it was checked")),
            G: (("forbidden",), ("torch.optim.sgd.sgd",))}),
        Submission("forbidden_digging", digging, {
            M: (("forbidden",), ("torch.nn.functional.mse_loss", "while it was checked")),
            S: (("forbidden",), ("reaches into the interpreter", ".__closure__")),
            G: (("passed",), ())}),
        Submission("scratch_comparison_allowed", control, {
            M: (("passed",), ()), S: (("passed",), ()), G: (("passed",), ())}),
    ]


def crashes(ch: Chapter) -> list[Submission]:
    """Crashes, hangs and resource abuse: the damage stays inside one exercise."""
    answers = ch.answers()
    exits = wrong(ch, mse_loss='''def mse_loss(input, target, reduction="mean"):
    import os
    os._exit(3)''', softplus='''def softplus(input, beta=1.0):
    import ctypes
    return ctypes.string_at(0)''', SGD=SGD_HEAD + '''    def step(self, closure=None):
        import sys
        sys.exit(2)''')
    hangs = wrong(ch, mse_loss='''import signal

def mse_loss(input, target, reduction="mean"):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while True:
        pass''', softplus='''import time

def softplus(input, beta=1.0):
    time.sleep(10 ** 6)''', SGD=answers["SGD"])
    memory = own_cell_after_setup(wrong(ch, mse_loss='''def mse_loss(input, target, reduction="mean"):
    return torch.empty(2 ** 40)''', softplus='''def softplus(input, beta=1.0):
    hog = bytearray(16 * 2 ** 30)
    return input''', SGD=answers["SGD"]), "hog = [0] * (2 ** 33)")
    processes = own_cell_after_setup(ch.filled(), '''
import os, subprocess, time
subprocess.Popen(["sleep", "4321.5"], start_new_session=True)
if os.fork() == 0:          # a double-forked daemon
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", "4321.5"])
    os._exit(0)
children = 0
try:
    for _ in range(100000):  # a fork bomb, stopped by the process limit
        if os.fork() == 0:
            time.sleep(4321.5)
            os._exit(0)
        children += 1
except OSError as exc:
    print("fork refused after", children, "children:", exc)
''')
    output = own_cell_after_setup(wrong(ch, mse_loss='''def mse_loss(input, target, reduction="mean"):
    print("debug " * 200000)
    return (input - target).abs().mean()''', softplus=answers["softplus"], SGD=answers["SGD"]),
        'print("x" * (100 * 2 ** 20))\nimport os\nos.write(1, b"y" * (100 * 2 ** 20))')
    cell_crash = own_cell_after_setup(ch.filled(mse_loss="import os\nos._exit(0)\n" +
                                                answers["mse_loss"]), "import os\nos._exit(1)")
    return [
        Submission("crash_exits", exits, {
            M: (("crashed",), ("status 3",)), S: (("crashed",), ("segmentation fault",)),
            G: (("crashed",), ("SystemExit",))}, fallback=True),
        Submission("crash_hangs", hangs, {
            M: (("timeout",), ("longer than",)), S: (("timeout",), ("longer than",)),
            G: (("passed",), ())}, fallback=True),
        Submission("crash_memory", memory, {
            M: (("error",), ("out of memory",)), S: (("error",), ("out of memory",)),
            G: (("passed",), ())}),
        Submission("crash_processes", processes, {
            M: (("passed",), ()), S: (("passed",), ()), G: (("passed",), ())}, fallback=True),
        Submission("crash_output", output, {
            M: (("failed",), ("Your code printed", "debug")), S: (("passed",), ()),
            G: (("passed",), ())}),
        Submission("crash_cells", cell_crash, {
            M: (("crashed",), ("answer cell",)), S: (("passed",), ()), G: (("passed",), ())},
            message_has=("own cell",), fallback=True),
    ]


def structure(ch: Chapter) -> list[Submission]:
    """Cells deleted, duplicated, reordered, retyped; metadata lost; tests edited."""
    answers = ch.answers()
    shuffled = duplicate(move_to_end(delete(ch.filled(), "mse_loss", "test_mse_loss",
                                            "test_softplus"), "softplus"), "SGD", G_WRONG)
    no_meta = strip_metadata(ch.filled())
    pasted = strip_metadata(ch.filled(), ids=True)
    edited = set_answer(ch.filled(softplus=answers["softplus"].replace(
        "torch.log(", "my_log(")), "setup", "import numpy as np\nimport torch\n"
        "import torch.nn.functional as F\nfrom ch99_fixture import check\nimport math")
    edited = insert(edited, "softplus", code_cell("def my_log(x):\n    return torch.log(x)"),
                    after=False)
    edited = insert(edited, "SGD", code_cell("1 / 0  # a broken scratch cell"),
                    markdown_cell("my notes"))
    edited = edit_test_cells(retype(edited, "mse_loss"))
    return [
        Submission("structure_shuffled", shuffled, {
            M: (("missing",), ("no answer cell",)), S: (("passed",), ()), G: (("passed",), ())},
            message_has=("appears 2 times",)),
        Submission("structure_no_metadata", no_meta, {
            M: (("passed",), ()), S: (("passed",), ()), G: (("passed",), ())}),
        Submission("structure_pasted", pasted, {
            M: (("passed",), ()), S: (("passed",), ()), G: (("passed",), ())},
            message_has=("which defines it",)),
        Submission("structure_edited", edited, {
            M: (("missing",), ("markdown",)), S: (("passed",), ()), G: (("passed",), ())},
            message_has=("ZeroDivisionError", "test cell", "setup cell")),
        Submission("structure_untouched", ch.untouched(), {
            M: (("missing",), ("NotImplementedError",)), S: (("missing",), ()),
            G: (("missing",), ())}),
        Submission("structure_renamed_file", ch.filled(), {
            M: (("passed",), ()), S: (("passed",), ()), G: (("passed",), ())},
            filename="homework (final).ipynb"),
    ]


def unreadable() -> list[Submission]:
    """Files that are not usable notebooks: invalid, with a reason."""
    return [
        Submission("invalid_truncated", b'{"cells": [{"cell_type": "code", "source": "x = ',
                   status="invalid", message_has=("truncated",)),
        Submission("invalid_empty", b"", status="invalid", message_has=("empty",)),
        Submission("invalid_not_notebook", b"[1, 2, 3]", status="invalid",
                   message_has=("not a notebook",)),
        Submission("invalid_binary", bytes(range(256)) * 4, status="invalid",
                   message_has=("UTF-8",)),
        Submission("invalid_nested", b"[" * 100000 + b"]" * 100000, status="invalid",
                   message_has=("not a notebook",)),
    ]


def secrets(ch: Chapter, solution_path: str, course_dir: str, other: str) -> list[Submission]:
    """Reading the instructor's files or writing the course's: each success spoils an answer."""
    answers = ch.answers()
    probe = f'''
import os
LEAKS = []
for path in [{solution_path!r}, {other!r}, os.path.join({course_dir!r}, "nbgrader_config.py")]:
    try:
        open(path).read(10)
        LEAKS.append(path)
    except OSError:
        pass
WROTE = []
for path in [os.path.join({course_dir!r}, "pwned.txt"), {other!r} + ".pwned"]:
    try:
        with open(path, "w") as f:
            f.write("pwned")
        WROTE.append(path)
    except OSError:
        pass
'''
    nb = own_cell_after_setup(ch.filled(
        mse_loss=answers["mse_loss"].replace("    d = (input", "    d = 1e3 * len(LEAKS) + (input"),
        softplus=answers["softplus"].replace("    z = beta", "    z = 1e3 * len(WROTE) + beta")),
        probe)
    return [Submission("secrets_files", nb, {
        M: (("passed",), ()), S: (("passed",), ()), G: (("passed",), ())})]


def overfit_public(ch: Chapter) -> Submission:
    """An answer right only on the public cases' shapes passes them and fails hidden ones."""
    nb = ch.filled(mse_loss='''def mse_loss(input, target, reduction="mean"):
    d = (input - target) ** 2
    if tuple(input.shape) == (3,):  # the public cases
        return d.mean() if reduction == "mean" else d.sum() if reduction == "sum" else d
    return d.sum()''')
    return Submission("overfit_public", nb, {M: (("failed",), ("hidden case", "grading seed")),
                                             S: (("passed",), ()), G: (("passed",), ())})


def every(ch: Chapter, **paths: str) -> list[Submission]:
    """The whole corpus except the unreadable files."""
    return (tampering(ch) + forbidden(ch) + crashes(ch) + structure(ch) +
            secrets(ch, **paths) + [overfit_public(ch)])


def as_bytes(sub: Submission) -> bytes:
    """A submission's file contents."""
    import json

    if isinstance(sub.content, bytes):
        return sub.content
    return json.dumps(sub.content, indent=1).encode()


def describe(res: dict[str, Any]) -> str:
    """A result, for assertion messages."""
    lines = [f"{res['notebook']}: {res['status']} {res['score']}/{res['max_score']} "
             f"{res['message']}"]
    lines += [f"  {c['grade_id']}: {c['status']}: {c['message'][:400]}" for c in res["cells"]]
    return "\n".join(lines)
