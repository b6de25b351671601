"""grader.core.static: forbidden calls found by reading the answer, through every disguise.

Each case is an answer to an exercise ``loss`` whose off-limits functions are PyTorch's
cross-entropy family and ``torch.optim.Adam``. The setup cell is the course's; extra cells are
the learner's own.
"""

from __future__ import annotations

import pytest

from grader.core.static import Scanner, Unit, forbidden_targets, parse, wiring_sites

SETUP = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\nimport numpy as np"
FORBIDDEN = ("torch.nn.functional.cross_entropy", "torch.nn.CrossEntropyLoss",
             "torch._C._nn.cross_entropy_loss", "torch.log_softmax", "torch.Tensor.log_softmax",
             "torch.nn.functional.log_softmax", "torch.optim.Adam", "torch.ops.aten.log_softmax")


def scan(answer: str, *own: str, name: str = "loss", after: str = "") -> list[str]:
    """Paths found in ``answer`` (the learner's own cells before it, ``after`` after it)."""
    units = [Unit("setup", SETUP, parse(SETUP), False)]
    units += [Unit(f"own {i}", src, parse(src), True) for i, src in enumerate(own)]
    units.append(Unit("answer", answer, parse(answer), True))
    before = len(units)
    if after:
        units.append(Unit("after", after, parse(after), True))
    found = Scanner(units).findings(name, before, forbidden_targets(FORBIDDEN))
    return sorted({f.path for f in found})


CE = "torch.nn.functional.cross_entropy"


@pytest.mark.parametrize("answer, own, expected", [
    ("def loss(x, t):\n    return F.cross_entropy(x, t)", (), CE),
    ("def loss(x, t):\n    return torch.nn.functional.cross_entropy(x, t)", (), CE),
    ("from torch.nn.functional import cross_entropy as ce\ndef loss(x, t):\n    return ce(x, t)",
     (), CE),
    ("def loss(x, t):\n    return ce(x, t)",
     ("from torch.nn import functional as G\nce = G.cross_entropy",), CE),
    ("def loss(x, t):\n    return nn.CrossEntropyLoss()(x, t)", (), "torch.nn.CrossEntropyLoss"),
    ("def loss(x, t):\n    return torch.nn.modules.loss.CrossEntropyLoss()(x, t)", (),
     "torch.nn.CrossEntropyLoss"),
    ("def loss(x, t):\n    return getattr(F, 'cross_' + 'entropy')(x, t)", (), CE),
    ("def loss(x, t):\n    return getattr(F, ''.join(['cross', '_', 'entropy']))(x, t)", (), CE),
    ("def loss(x, t):\n    return getattr(F, 'yportne_ssorc'[::-1])(x, t)", (), CE),
    ("def loss(x, t):\n    return getattr(F, f'cross_{\"entropy\"}')(x, t)", (), CE),
    ("def loss(x, t):\n    return vars(F)['cross_entropy'](x, t)", (), CE),
    ("def loss(x, t):\n    return F.__dict__['cross_entropy'](x, t)", (), CE),
    ("def loss(x, t):\n    return __import__('torch').nn.functional.cross_entropy(x, t)", (), CE),
    ("def loss(x, t):\n    m = __import__('torch.nn.functional', fromlist=['x'])\n"
     "    return m.cross_entropy(x, t)", (), None),
    ("import importlib\ndef loss(x, t):\n"
     "    return importlib.import_module('torch.nn.functional').cross_entropy(x, t)", (), CE),
    ("def loss(x, t):\n    return eval('F.cross_entropy(x, t)')", (), CE),
    ("def loss(x, t):\n    return torch._C._nn.cross_entropy_loss(x, t)", (),
     "torch._C._nn.cross_entropy_loss"),
    ("def loss(x, t):\n    return torch._C._VariableFunctions.log_softmax(x, 1).mean()", (),
     "torch.log_softmax"),
    ("def loss(x, t):\n    return torch._C.TensorBase.log_softmax(x, 1).mean()", (),
     "torch.Tensor.log_softmax"),
    ("def loss(x, t):\n    return x.log_softmax(1).mean()", (), "torch.Tensor.log_softmax"),
    ("def loss(x, t):\n    return torch.ops.aten.log_softmax.int(x, 1).mean()", (),
     "torch.ops.aten.log_softmax"),
    ("def loss(x, t):\n    return helper(x, t)", ("def helper(x, t):\n    return deeper(x)",
                                                  "def deeper(x):\n    return F.log_softmax(x, 1)"),
     "torch.nn.functional.log_softmax"),
    ("loss = F.cross_entropy", (), CE),
    ("loss = lambda x, t: F.cross_entropy(x, t)", (), CE),
    ("def loss(x, t, f=F.cross_entropy):\n    return f(x, t)", (), CE),
    ("def loss(x, t):\n    from torch.nn.functional import cross_entropy\n"
     "    return cross_entropy(x, t)", (), CE),
    ("from torch.nn.functional import *\ndef loss(x, t):\n    return cross_entropy(x, t)", (), CE),
])
def test_forbidden_uses_are_found(answer, own, expected):
    found = scan(answer, *own)
    if expected is None:  # a computed module: left to the runtime tripwires
        assert CE not in found
    else:
        assert expected in found, found


def test_subclassing_a_forbidden_class_is_found():
    found = Scanner([Unit("answer", src := "class Adam(torch.optim.Adam):\n    pass",
                          parse(src), True), Unit("setup", SETUP, parse(SETUP), False)])
    hits = found.findings("Adam", 2, forbidden_targets(FORBIDDEN))
    assert [(h.path, h.kind) for h in hits] == [("torch.optim.Adam", "subclass")]
    assert "subclasses torch.optim.Adam" in hits[0].message("Adam")
    assert "line 1" in hits[0].message("Adam")


@pytest.mark.parametrize("answer", [
    "def loss(x, t):\n    return F.cross_entropy.__closure__",
    "def loss(x, t):\n    import gc\n    return gc.get_referents(F.mse_loss)",
    "import sys\ndef loss(x, t):\n    return sys._getframe(1).f_globals",
    "def loss(x, t):\n    with torch._C.DisableTorchFunction():\n        return x.sum()",
])
def test_reaching_into_the_interpreter_is_found(answer):
    units = [Unit("setup", SETUP, parse(SETUP), False), Unit("answer", answer, parse(answer), True)]
    hits = Scanner(units).findings("loss", 2, forbidden_targets(FORBIDDEN))
    assert hits, answer
    assert any(h.kind == "introspection" or h.path == CE for h in hits)


@pytest.mark.parametrize("answer, own, after", [
    # Comparing with PyTorch in a scratch cell is not the answer.
    ("def loss(x, t):\n    return -(x.softmax(1) * 0).sum()", ("print(F.cross_entropy(x, t))",),
     ""),
    # A learner's own function with a forbidden name shadows the import.
    ("def loss(x, t):\n    return log_softmax(x).mean()",
     ("from torch.nn.functional import log_softmax",
      "def log_softmax(x):\n    m = x.amax(1, keepdim=True)\n"
      "    return x - m - (x - m).exp().sum(1, keepdim=True).log()"), ""),
    # Mentions in strings and comments are not calls.
    ('def loss(x, t):\n    """Like F.cross_entropy, by hand."""  # not F.cross_entropy\n'
     "    return x.sum()", (), ""),
    # An import of the forbidden function *after* the answer's test point does not count.
    ("def loss(x, t):\n    return x.sum()", (), "loss = F.cross_entropy"),
    ("def loss(x, t):\n    return torch.logsumexp(x, 1).mean()", (), ""),
])
def test_legitimate_code_is_not_flagged(answer, own, after):
    assert scan(answer, *own, after=after) == []


def test_wiring_sites_cover_every_name_of_a_forbidden_function():
    import torch

    sites = {(getattr(owner, "__name__", ""), attr)
             for owner, attr, _, _ in wiring_sites(forbidden_targets(FORBIDDEN))}
    assert ("torch.nn.functional", "cross_entropy") in sites
    assert ("torch", "log_softmax") in sites
    assert ("Tensor", "log_softmax") in sites
    assert ("torch._C._nn", "cross_entropy_loss") in sites
    assert all(attr != "Adam" for _, attr in sites)  # classes: subclass checks, not wrappers
    assert torch.nn.functional.cross_entropy.__module__ == "torch.nn.functional"  # untouched here
