"""Forbidden calls, found by reading the code (AST) and by resolving what torch names point to.

An exercise lists the dotted paths its answer must not use (``Exercise.forbidden``). Names are
slippery, so both halves of the detection work on *objects*:

- :func:`forbidden_targets` resolves every path and records the ``id`` of the object it names,
  then finds every other name the same object has in the loaded ``torch`` modules
  (``torch.log_softmax`` is ``torch._C._VariableFunctions.log_softmax``, ``torch.Tensor.softmax``
  is ``torch._C.TensorBase.softmax``, ``nn.CrossEntropyLoss`` lives in ``torch.nn.modules.loss``).
  The worker wires a tripwire on each such name (:func:`wiring_sites`); the scanner below
  flags any name in the code that resolves to one of those objects.
- :func:`scan` reads the code an answer can run: the binding of the answer's name (the ``def``,
  ``class`` or assignment in force where its test would run) and, transitively, the top-level
  definitions of every global name it mentions, in the answer and the learner's own cells. It
  resolves aliases (``import torch.nn.functional as F``, ``from torch.nn import functional``,
  ``ce = F.cross_entropy``, ``from torch.nn.functional import *``), ``getattr`` / ``vars()[...]`` /
  ``__dict__[...]`` with constant strings (concatenations, f-strings, ``"".join``, reversal
  included), ``__import__`` and ``importlib.import_module``, ``eval``/``exec`` of constant code,
  ``class Adam(torch.optim.Adam)``, and the method form (``x.log_softmax(1)``) of a forbidden
  ``torch.Tensor`` method. It also flags code that reaches into the interpreter to get past the
  tripwires (closures, frames, the garbage collector's object lists, torch-function-mode
  switches): an answer never needs them.

Top-level statements that merely *compare* with PyTorch in a scratch cell are not the answer and
are not flagged; the runtime tripwires are armed only while the exercise's check runs.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
import sys
import types
from collections.abc import Iterable, Sequence
from typing import Any

INTROSPECTION_ATTRS = frozenset({
    "__closure__", "cell_contents", "__wrapped_forbidden__", "f_globals", "f_locals", "f_back",
    "tb_frame", "gi_frame", "cr_frame", "f_builtins",
})
INTROSPECTION_PATHS = frozenset({
    "gc.get_referents", "gc.get_referrers", "gc.get_objects", "sys._getframe",
    "inspect.currentframe", "inspect.stack", "inspect.getclosurevars", "inspect.getouterframes",
    "torch._C._DisableTorchFunction", "torch._C._DisableTorchFunctionSubclass",
    "torch._C.DisableTorchFunction", "torch._C.DisableTorchFunctionSubclass",
    "torch.overrides._pop_mode", "torch.overrides._pop_mode_temporarily",
    "torch._C._pop_torch_function_stack", "torch.overrides._no_torch_function_mode",
    "torch._C._disabled_torch_function_impl",
})
ALIAS_NAMESPACES = ("torch",)  # module prefixes searched for other names of a forbidden object


# ---------------------------------------------------------------------------------------------
# What a forbidden path points to


@functools.lru_cache(maxsize=8192)
def resolve_path(path: str) -> Any:
    """The object a dotted path names, importing modules as needed; ``None`` if it names nothing.

    Only modules and classes are traversed, so resolving never runs a property.
    """
    parts = path.split(".")
    obj: Any = None
    start = 0
    for split in range(len(parts), 0, -1):
        name = ".".join(parts[:split])
        module = sys.modules.get(name)
        if module is None and parts[0] in ("torch", "numpy", "math", "scipy"):
            try:
                module = importlib.import_module(name)
            except Exception:  # not a module: an attribute path
                module = None
        if module is not None:
            obj, start = module, split
            break
    if obj is None:
        return None
    for name in parts[start:]:
        # Modules and classes only (no property runs), and torch's namespace of C functions.
        if not isinstance(obj, types.ModuleType | type) and \
                type(obj).__name__ != "_VariableFunctionsClass":
            return None
        try:
            obj = inspect_getattr(obj, name)
        except AttributeError:
            return None
    return obj


def inspect_getattr(obj: Any, name: str) -> Any:
    """``getattr`` that looks in class dictionaries first (no descriptors run for classes)."""
    if isinstance(obj, type):
        for klass in obj.__mro__:
            if name in vars(klass):
                return vars(klass)[name]
        raise AttributeError(name)
    return getattr(obj, name)


@dataclasses.dataclass
class Targets:
    """The forbidden objects of one exercise."""

    by_id: dict[int, str]  # id(object) -> the forbidden path it was listed under
    objects: list[Any]  # keeps the objects alive so that the ids stay meaningful
    paths: tuple[str, ...]
    methods: dict[str, str]  # Tensor method name -> forbidden path ("log_softmax" -> ...)
    classes: dict[int, str]  # id(class) -> path, for subclass checks

    def path_of(self, obj: Any) -> str | None:
        return self.by_id.get(id(obj))


def forbidden_targets(paths: Iterable[str]) -> Targets:
    """Resolve forbidden paths to objects (see the module docstring)."""
    paths = tuple(paths)
    by_id: dict[int, str] = {}
    objects: list[Any] = []
    methods: dict[str, str] = {}
    classes: dict[int, str] = {}
    for path in paths:
        obj = resolve_path(path)
        if obj is None or isinstance(obj, types.ModuleType):
            continue
        by_id.setdefault(id(obj), path)
        objects.append(obj)
        if isinstance(obj, type):
            classes[id(obj)] = path
        if path.startswith("torch.Tensor."):
            methods[path.rsplit(".", 1)[1]] = path
    return Targets(by_id, objects, paths, methods, classes)


def wiring_sites(targets: Targets) -> list[tuple[Any, str, str, Any]]:
    """Every (owner, attribute, path, object) where a forbidden callable can be reached by name.

    Searches the listed paths and every loaded ``torch`` module (and ``torch.Tensor``) for other
    attributes bound to the same object. Classes are left out: a class is caught by the subclass
    check and by the tripwires on the functions it calls.
    """
    sites: list[tuple[Any, str, str, Any]] = []
    seen: set[tuple[int, str]] = set()

    def add(owner: Any, attr: str, path: str, obj: Any) -> None:
        if (id(owner), attr) not in seen:
            seen.add((id(owner), attr))
            sites.append((owner, attr, path, obj))

    for path in targets.paths:
        obj = resolve_path(path)
        if obj is None or isinstance(obj, type | types.ModuleType) or not callable(obj):
            continue
        owner = resolve_path(path.rsplit(".", 1)[0])
        if owner is not None:
            add(owner, path.rsplit(".", 1)[1], path, obj)
    callables = {i: p for i, p in targets.by_id.items() if i not in targets.classes}
    if not callables:
        return sites
    import torch  # the namespaces to search

    spaces: list[Any] = [torch.Tensor]
    spaces += [m for name, m in list(sys.modules.items())
               if isinstance(m, types.ModuleType) and name.split(".")[0] in ALIAS_NAMESPACES]
    for space in spaces:
        try:
            items = list(vars(space).items())
        except TypeError:
            continue
        for attr, value in items:
            path = callables.get(id(value))
            if path is not None:
                add(space, attr, path, value)
    return sites


# ---------------------------------------------------------------------------------------------
# Reading code


@dataclasses.dataclass(frozen=True)
class Finding:
    """A use of something the exercise forbids."""

    path: str  # what was used (a forbidden path, or the introspection entry point)
    label: str  # which cell
    line: int
    text: str  # the source line
    kind: str  # "call" | "subclass" | "introspection"

    def message(self, exercise: str) -> str:
        where = f"{self.label}, line {self.line}: `{self.text.strip()[:120]}`"
        if self.kind == "subclass":
            return (f"{exercise} subclasses {self.path} ({where}), which this exercise asks you "
                    f"to write yourself")
        if self.kind == "introspection":
            return (f"{exercise} reaches into the interpreter with {self.path} ({where}); an "
                    f"answer never needs that, and the grader treats it as a way around the "
                    f"off-limits functions")
        return (f"{exercise} uses {self.path} ({where}), which is off-limits in this exercise: "
                f"write it yourself")


def python_source(source: str) -> str:
    """A cell's source with IPython syntax (magics, ``!cmd``) turned into Python."""
    try:
        from IPython.core.inputtransformer2 import TransformerManager

        return TransformerManager().transform_cell(source)
    except Exception:
        return source


def parse(source: str) -> ast.Module | None:
    """Parse a cell (IPython syntax allowed); ``None`` when it does not parse."""
    for text in (source, python_source(source)):  # plain Python first: exact line numbers
        try:
            return ast.parse(text)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            continue
    return None


def const_str(node: ast.AST) -> str | None:
    """The value of a string expression built from constants, if it is one."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        left, right = const_str(node.left), const_str(node.right)
        return left + right if left is not None and right is not None else None
    if isinstance(node, ast.JoinedStr):
        parts = []
        for value in node.values:
            if isinstance(value, ast.FormattedValue):
                inner = const_str(value.value)
                if inner is None:
                    return None
                parts.append(inner)
            else:
                part = const_str(value)
                if part is None:
                    return None
                parts.append(part)
        return "".join(parts)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
            node.func.attr == "join" and len(node.args) == 1 and not node.keywords:
        sep = const_str(node.func.value)
        items = node.args[0]
        if sep is not None and isinstance(items, ast.List | ast.Tuple):
            values = [const_str(e) for e in items.elts]
            if all(v is not None for v in values):
                return sep.join(values)  # type: ignore[arg-type]
        if sep is not None:
            inner = const_str(items)
            if inner is not None:
                return sep.join(inner)
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
            node.func.id == "reversed" and len(node.args) == 1:
        inner = const_str(node.args[0])
        return inner[::-1] if inner is not None else None
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Slice):
        inner = const_str(node.value)
        s = node.slice
        if inner is not None and s.lower is None and s.upper is None and \
                isinstance(s.step, ast.UnaryOp) and isinstance(s.step.op, ast.USub) and \
                isinstance(s.step.operand, ast.Constant) and s.step.operand.value == 1:
            return inner[::-1]
    return None


def top_statements(tree: ast.Module) -> list[ast.stmt]:
    """Top-level statements, looking inside top-level if/try/with/for blocks."""
    out: list[ast.stmt] = []
    stack = list(reversed(tree.body))
    while stack:
        node = stack.pop()
        out.append(node)
        if isinstance(node, ast.If | ast.For | ast.While | ast.With | ast.Try):
            inner: list[ast.stmt] = list(node.body) + list(getattr(node, "orelse", []))
            if isinstance(node, ast.Try):
                inner += list(node.finalbody)
                for handler in node.handlers:
                    inner += handler.body
            stack.extend(reversed(inner))
    return out


def bound_names(stmt: ast.stmt) -> list[str]:
    """Names a top-level statement binds."""
    if isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [stmt.name]
    if isinstance(stmt, ast.Assign):
        names = []
        for target in stmt.targets:
            for node in ast.walk(target):
                if isinstance(node, ast.Name):
                    names.append(node.id)
        return names
    if isinstance(stmt, ast.AnnAssign | ast.AugAssign) and isinstance(stmt.target, ast.Name):
        return [stmt.target.id]
    if isinstance(stmt, ast.Import | ast.ImportFrom):
        return [(a.asname or a.name).split(".")[0] for a in stmt.names if a.name != "*"]
    return []


@dataclasses.dataclass
class Unit:
    """A parsed cell."""

    label: str
    source: str
    tree: ast.Module
    learner: bool  # the learner's code (answer or own cell), not the course's setup cell


class Scanner:
    """Finds uses of forbidden objects in the code an answer runs."""

    def __init__(self, units: Sequence[Unit]) -> None:
        self.units = list(units)
        self.aliases: dict[str, str] = {}
        self.stars: list[str] = []
        self.bindings: dict[str, list[tuple[int, Unit, ast.stmt]]] = {}
        for position, unit in enumerate(self.units):
            for stmt in top_statements(unit.tree):
                self._learn_aliases(stmt)
                if unit.learner and isinstance(stmt, ast.FunctionDef | ast.AsyncFunctionDef |
                                               ast.ClassDef):
                    self.aliases.pop(stmt.name, None)  # the learner's own definition wins
                if unit.learner:
                    for name in bound_names(stmt):
                        self.bindings.setdefault(name, []).append((position, unit, stmt))

    # -- aliases ----------------------------------------------------------------------------------
    def _learn_aliases(self, stmt: ast.stmt) -> None:
        if isinstance(stmt, ast.Import):
            for a in stmt.names:
                if a.asname:
                    self.aliases[a.asname] = a.name
                else:
                    root = a.name.split(".")[0]
                    self.aliases[root] = root
        elif isinstance(stmt, ast.ImportFrom) and stmt.module and not stmt.level:
            for a in stmt.names:
                if a.name == "*":
                    self.stars.append(stmt.module)
                else:
                    self.aliases[a.asname or a.name] = f"{stmt.module}.{a.name}"
        elif isinstance(stmt, ast.Assign):
            for target in stmt.targets:
                if isinstance(target, ast.Name):
                    path = self.dotted(stmt.value)
                    if path is not None:
                        self.aliases[target.id] = path
                elif isinstance(target, ast.Tuple) and isinstance(stmt.value, ast.Tuple) and \
                        len(target.elts) == len(stmt.value.elts):
                    for t, v in zip(target.elts, stmt.value.elts, strict=True):
                        path = self.dotted(v)
                        if isinstance(t, ast.Name) and path is not None:
                            self.aliases[t.id] = path

    def dotted(self, node: ast.AST) -> str | None:
        """The dotted path an expression names, when it is a (possibly aliased) module path."""
        if isinstance(node, ast.Name):
            if node.id in self.aliases:
                return self.aliases[node.id]
            for module in self.stars:
                if resolve_path(f"{module}.{node.id}") is not None:
                    return f"{module}.{node.id}"
            if node.id in ("torch", "numpy", "gc", "sys", "inspect", "importlib"):
                return node.id
            return None
        if isinstance(node, ast.Attribute):
            base = self.dotted(node.value)
            if base is not None:
                return f"{base}.{node.attr}"
            if node.attr == "__dict__":
                return None
            return None
        if isinstance(node, ast.Call):
            func = self.dotted(node.func) if not isinstance(node.func, ast.Name) or \
                node.func.id in self.aliases else node.func.id
            args = node.args
            if func in ("getattr", "builtins.getattr") and len(args) >= 2:
                base, name = self.dotted(args[0]), const_str(args[1])
                return f"{base}.{name}" if base is not None and name is not None else None
            if func in ("__import__", "builtins.__import__") and args:
                name = const_str(args[0])
                if name is None:
                    return None
                fromlist = args[3] if len(args) > 3 else next(
                    (k.value for k in node.keywords if k.arg == "fromlist"), None)
                return name if fromlist is not None else name.split(".")[0]
            if func in ("importlib.import_module", "import_module") and args:
                return const_str(args[0])
            if func == "vars" and len(args) == 1:
                return self.dotted(args[0])
            return None
        if isinstance(node, ast.Subscript):
            key = const_str(node.slice)
            if key is None:
                return None
            value = node.value
            if isinstance(value, ast.Attribute) and value.attr == "__dict__":
                base = self.dotted(value.value)
            elif isinstance(value, ast.Call) and isinstance(value.func, ast.Name) and \
                    value.func.id == "vars" and len(value.args) == 1:
                base = self.dotted(value.args[0])
            else:
                return None
            return f"{base}.{key}" if base is not None else None
        return None

    # -- scope ------------------------------------------------------------------------------------
    def scope(self, name: str, before: int, replaced: tuple[str, ...] = ()
              ) -> list[tuple[Unit, ast.AST]]:
        """The code an answer runs: the binding of ``name`` in force before unit ``before``, and
        the last binding of every global name it mentions, transitively, except the names in
        ``replaced`` (earlier exercises it is checked on correct versions of)."""
        first = [b for b in self.bindings.get(name, []) if b[0] < before]
        if not first:
            return []
        todo: list[tuple[Unit, ast.AST]] = [(first[-1][1], first[-1][2])]
        done: set[int] = set()
        out = []
        while todo:
            unit, node = todo.pop()
            if id(node) in done:
                continue
            done.add(id(node))
            out.append((unit, node))
            for sub in ast.walk(node):
                if isinstance(sub, ast.Name) and isinstance(sub.ctx, ast.Load) and \
                        sub.id in self.bindings and sub.id != name and \
                        sub.id not in replaced:
                    _, u, stmt = self.bindings[sub.id][-1]
                    todo.append((u, stmt))
        return out

    # -- findings ---------------------------------------------------------------------------------
    def findings(self, name: str, before: int, targets: Targets,
                 replaced: tuple[str, ...] = ()) -> list[Finding]:
        """Uses of forbidden objects in the scope of ``name`` (see :meth:`scope`)."""
        found: list[Finding] = []
        for unit, node in self.scope(name, before, replaced):
            self._scan(unit, node, targets, found, depth=0)
        return found

    def _scan(self, unit: Unit, root: ast.AST, targets: Targets, found: list[Finding],
              depth: int) -> None:
        lines = unit.source.splitlines()

        def add(path: str, node: ast.AST, kind: str) -> None:
            line = getattr(node, "lineno", 1)
            text = lines[line - 1] if 0 < line <= len(lines) else ""
            found.append(Finding(path, unit.label, line, text, kind))

        for node in ast.walk(root):
            if isinstance(node, ast.ClassDef):
                for base in node.bases:
                    hit = self.forbidden_path(self.dotted(base), targets)
                    if hit:
                        add(hit, node, "subclass")
            if isinstance(node, ast.Import | ast.ImportFrom):
                module = getattr(node, "module", None)
                for a in node.names:
                    full = f"{module}.{a.name}" if module else a.name
                    hit = self.forbidden_path(full, targets)
                    if hit:
                        add(hit, node, "call")
            if isinstance(node, ast.Attribute | ast.Name | ast.Call | ast.Subscript):
                path = self.dotted(node)
                if path is not None:
                    hit = self.forbidden_path(path, targets)
                    if hit:
                        add(hit, node, "call")
                    if path in INTROSPECTION_PATHS:
                        add(path, node, "introspection")
                if isinstance(node, ast.Attribute):
                    if node.attr in INTROSPECTION_ATTRS:
                        add(f".{node.attr}", node, "introspection")
                    if path is None and node.attr in targets.methods and \
                            self.dotted(node.value) is None:
                        add(targets.methods[node.attr], node, "call")
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and \
                    node.func.id in ("eval", "exec") and node.args and depth < 3:
                code = const_str(node.args[0])
                tree = parse(code) if code is not None else None
                if tree is not None:
                    self._scan(Unit(unit.label, unit.source, tree, True), tree, targets, found,
                               depth + 1)
        # One finding per path and line is enough.
        unique: dict[tuple[str, int, str], Finding] = {}
        for f in found:
            unique.setdefault((f.path, f.line, f.label), f)
        found[:] = list(unique.values())

    @staticmethod
    def forbidden_path(path: str | None, targets: Targets) -> str | None:
        """The forbidden path that ``path`` (or a prefix of it) names, if any."""
        if not path:
            return None
        for listed in targets.paths:
            if path == listed or path.startswith(listed + "."):
                return listed
        parts = path.split(".")
        for k in range(len(parts), 1, -1):
            obj = resolve_path(".".join(parts[:k]))
            if obj is not None:
                hit = targets.path_of(obj)
                if hit:
                    return hit
        return None


def scan_exercise(name: str, units: Sequence[Unit], before: int,
                  forbidden: Sequence[str]) -> list[Finding]:
    """Static findings for one exercise (see :class:`Scanner`)."""
    return Scanner(units).findings(name, before, forbidden_targets(forbidden))
