"""A mistake is charged once: dependent answers are checked on correct versions of what they use.

``cross_entropy`` is usually written on the learner's own ``log_softmax`` and ``nll_loss``,
``sigmoid_focal_loss`` on their ``binary_cross_entropy_with_logits``, ``SGD.step`` on their
``sgd_step``, and ``AdamW`` as a subclass of their ``Adam``. Checked as written, a bug in
``nll_loss`` would also fail ``cross_entropy``: one mistake, charged twice. So a dependent exercise
is checked on a *rebuilt* answer (:func:`rebind`):

- a function, or a method, that reads a name it depends on from its globals gets a copy of those
  globals with a correct implementation (:meth:`Exercise.substitutes`) in its place; the learner's
  other functions of the same namespace (helpers) are rebuilt on that copy too, so a helper that
  calls ``nll_loss`` sees the correct one; functions held in closures (a method wrapped by
  ``@torch.no_grad()``) are rebuilt as well;
- a class whose bases include the learner's version of a class it depends on
  (``class AdamW(Adam)``) is rebuilt on the correct class: same name, attributes and methods,
  each method's ``__class__`` cell pointing at the rebuilt class (zero-argument ``super()`` keeps
  working), and the class's own name in its namespace bound to the rebuilt class.

Nothing else changes: an answer that does not use the earlier exercise is checked as written.
The rebuilt answer is what the checks call, in the notebook and in the grading core's sandbox.
"""

from __future__ import annotations

import builtins
import contextlib
import types
from typing import Any


def rebind(impl: Any, substitutes: dict[str, Any]) -> Any:
    """``impl`` rebuilt with ``substitutes`` (name -> correct implementation) in place of the
    learner's own versions of those names; ``impl`` itself when it uses none of them."""
    if not substitutes:
        return impl
    rebinder = Rebinder(substitutes)
    if isinstance(impl, type):
        return rebinder.cls(impl)
    if isinstance(impl, types.FunctionType):
        return rebinder.function(impl)
    return impl


class Rebinder:
    """Rebuilds classes and functions of the learner's namespace on substitute globals."""

    def __init__(self, substitutes: dict[str, Any]) -> None:
        self.substitutes = substitutes
        self.namespaces: dict[int, dict[str, Any]] = {}  # id(source globals) -> new globals
        self.classes: dict[type, type] = {}
        self.functions: dict[int, types.FunctionType] = {}

    def functions_in(self, value: Any, seen: set[int]) -> Any:
        """The functions a class attribute holds: its own, unwrapped, and in closures."""
        if isinstance(value, staticmethod | classmethod):
            yield from self.functions_in(value.__func__, seen)
        elif isinstance(value, property):
            for f in (value.fget, value.fset, value.fdel):
                yield from self.functions_in(f, seen)
        elif isinstance(value, types.FunctionType) and id(value) not in seen:
            seen.add(id(value))
            yield value
            for cell in value.__closure__ or ():
                with contextlib.suppress(ValueError):  # an empty cell
                    yield from self.functions_in(cell.cell_contents, seen)

    def uses(self, cls: type) -> bool:
        seen: set[int] = set()
        return any(name in f.__globals__ for v in vars(cls).values()
                   for f in self.functions_in(v, seen) for name in self.substitutes)

    def cls(self, cls: type, top: bool = True) -> type:
        if cls in self.classes:
            return self.classes[cls]
        if cls.__module__.split(".")[0] in ("torch", "grader") or \
                getattr(builtins, cls.__name__, None) is cls:
            return cls  # PyTorch's, the grader's and Python's own classes are never rebuilt
        substitute = self.substitutes.get(cls.__name__)
        if not top and isinstance(substitute, type):  # the learner's Adam under their AdamW
            self.classes[cls] = substitute
            return substitute
        bases = tuple(self.cls(b, top=False) for b in cls.__bases__)
        if bases == cls.__bases__ and not self.uses(cls):
            self.classes[cls] = cls
            return cls
        namespace = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__")}
        new = types.new_class(cls.__name__, bases, {"metaclass": type(cls)},
                              lambda ns: ns.update(namespace))
        new.__qualname__, new.__module__ = cls.__qualname__, cls.__module__
        self.classes[cls] = new  # before the methods: their __class__ cells point at `new`
        for key, value in namespace.items():
            rebuilt = self.value(value)
            if rebuilt is not value:
                setattr(new, key, rebuilt)
        for namespace_globals in self.namespaces.values():  # `SGD` named inside its methods
            if namespace_globals.get(cls.__name__) is cls:
                namespace_globals[cls.__name__] = new
        return new

    def value(self, value: Any) -> Any:
        if isinstance(value, staticmethod | classmethod):
            inner = self.value(value.__func__)
            return value if inner is value.__func__ else type(value)(inner)
        if isinstance(value, property):
            parts = [self.value(f) if f is not None else None
                     for f in (value.fget, value.fset, value.fdel)]
            if all(a is b for a, b in zip(parts, (value.fget, value.fset, value.fdel))):
                return value
            return property(*parts, value.__doc__)
        if isinstance(value, types.FunctionType):
            return self.function(value)
        return value

    def function(self, f: types.FunctionType) -> types.FunctionType:
        if id(f) in self.functions:
            return self.functions[id(f)]
        self.functions[id(f)] = f  # a guard against cycles (recursive helpers)
        uses = any(name in f.__globals__ for name in self.substitutes)
        cells, changed = list(f.__closure__ or ()), uses
        for i, cell in enumerate(cells):
            try:
                content = cell.cell_contents
            except ValueError:
                continue
            if isinstance(content, type) and self.classes.get(content, content) is not content:
                cells[i], changed = types.CellType(self.classes[content]), True
            elif isinstance(content, types.FunctionType):
                inner = self.function(content)
                if inner is not content:
                    cells[i], changed = types.CellType(inner), True
        if not changed:
            return f
        globals_ = self.namespace(f.__globals__) if uses else f.__globals__
        new = types.FunctionType(f.__code__, globals_, f.__name__, f.__defaults__,
                                 tuple(cells) if f.__closure__ is not None else None)
        new.__kwdefaults__ = dict(f.__kwdefaults__) if f.__kwdefaults__ else None
        new.__qualname__, new.__doc__, new.__module__ = f.__qualname__, f.__doc__, f.__module__
        new.__dict__.update(f.__dict__)
        self.functions[id(f)] = new
        for name, value in list(globals_.items()):
            if value is f and uses:
                globals_[name] = new
        return new

    def namespace(self, source: dict[str, Any]) -> dict[str, Any]:
        """A copy of the learner's globals with the substitutes, and their helpers rebuilt on it."""
        if id(source) in self.namespaces:
            return self.namespaces[id(source)]
        new = dict(source)
        new.update(self.substitutes)
        self.namespaces[id(source)] = new
        for name, value in source.items():
            if name not in self.substitutes and isinstance(value, types.FunctionType) \
                    and value.__globals__ is source:
                new[name] = self.function(value)
        return new
