"""A mistake is charged once: dependent answers are checked on correct versions of what they use.

``cross_entropy`` is usually written on the learner's own ``log_softmax`` and ``nll_loss``,
``sigmoid_focal_loss`` on their ``binary_cross_entropy_with_logits``, and ``AdamW`` as a subclass
of their ``Adam``. Checked as written, a bug in ``nll_loss`` would also fail ``cross_entropy``:
one mistake, charged twice. So a dependent exercise is checked on a *rebuilt* answer:

- a function gets a copy of its globals in which each name it depends on is bound to a correct
  implementation (:meth:`Exercise.substitutes`); the learner's other helper functions from the same
  namespace are rebuilt on that copy too, so a helper that calls ``nll_loss`` sees the correct one;
- a class whose bases include a class it depends on (``class AdamW(Adam)``) is rebuilt on the
  correct base class: same name, same attributes and methods, and each method's ``__class__``
  cell points at the rebuilt class, so that zero-argument ``super()`` keeps working.

Nothing else changes: an answer that does not use the earlier exercise is checked as written.
The rebuilt answer is what the checks call, in the notebook and in the grading core's sandbox.
"""

from __future__ import annotations

import types
from typing import Any

_SKIP = frozenset({"__dict__", "__weakref__"})


def rebind(impl: Any, substitutes: dict[str, Any]) -> Any:
    """``impl`` rebuilt with ``substitutes`` (name -> correct implementation) in place of the
    learner's own versions of those names; ``impl`` itself when it uses none of them."""
    if not substitutes:
        return impl
    if isinstance(impl, type):
        return _rebuild_class(impl, substitutes)
    if isinstance(impl, types.FunctionType):
        return _rebuild_function(impl, substitutes)
    return impl


def _rebuild_function(fn: types.FunctionType, substitutes: dict[str, Any]) -> types.FunctionType:
    source = fn.__globals__
    if not any(name in source for name in substitutes):
        return fn
    new_globals: dict[str, Any] = dict(source)
    new_globals.update(substitutes)
    rebuilt: dict[int, types.FunctionType] = {}

    def copy(f: types.FunctionType) -> types.FunctionType:
        if id(f) in rebuilt:
            return rebuilt[id(f)]
        g = types.FunctionType(f.__code__, new_globals, f.__name__, f.__defaults__,
                               f.__closure__)
        g.__kwdefaults__ = dict(f.__kwdefaults__) if f.__kwdefaults__ else None
        g.__qualname__, g.__doc__, g.__module__ = f.__qualname__, f.__doc__, f.__module__
        g.__dict__.update(f.__dict__)
        rebuilt[id(f)] = g
        return g

    # The learner's other functions of the same namespace (helpers) see the substitutes too.
    for name, value in source.items():
        if name in substitutes or not isinstance(value, types.FunctionType):
            continue
        if value.__globals__ is source:
            new_globals[name] = copy(value)
    return copy(fn)


def _rebuild_class(cls: type, substitutes: dict[str, Any]) -> type:
    by_identity = {}
    for name, replacement in substitutes.items():
        for klass in cls.__mro__[1:]:
            if klass.__name__ == name and isinstance(replacement, type):
                by_identity[klass] = replacement
    if not any(base in by_identity for base in cls.__bases__):
        return cls
    bases = tuple(by_identity.get(base, base) for base in cls.__bases__)
    namespace = {k: v for k, v in cls.__dict__.items() if k not in _SKIP}
    new = types.new_class(cls.__name__, bases, {}, lambda ns: ns.update(namespace))
    new.__qualname__, new.__module__ = cls.__qualname__, cls.__module__
    for key, value in list(namespace.items()):
        fixed = _with_class_cell(value, cls, new)
        if fixed is not value:
            setattr(new, key, fixed)
    return new


def _with_class_cell(value: Any, old: type, new: type) -> Any:
    """A method (or static/class method, property) whose ``__class__`` cell is ``new``."""
    if isinstance(value, staticmethod | classmethod):
        inner = _with_class_cell(value.__func__, old, new)
        return value if inner is value.__func__ else type(value)(inner)
    if isinstance(value, property):
        parts = [_with_class_cell(f, old, new) if f is not None else None
                 for f in (value.fget, value.fset, value.fdel)]
        return property(*parts, value.__doc__)
    if not isinstance(value, types.FunctionType) or "__class__" not in value.__code__.co_freevars:
        return value
    cells = list(value.__closure__ or ())
    index = value.__code__.co_freevars.index("__class__")
    if cells[index].cell_contents is not old:
        return value
    cells[index] = types.CellType(new)
    g = types.FunctionType(value.__code__, value.__globals__, value.__name__, value.__defaults__,
                           tuple(cells))
    g.__kwdefaults__ = value.__kwdefaults__
    g.__qualname__, g.__doc__, g.__module__ = value.__qualname__, value.__doc__, value.__module__
    g.__dict__.update(value.__dict__)
    return g
