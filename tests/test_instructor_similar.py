"""``python -m grader similar``: a synthetic class of the fixture chapter (mse_loss, softplus,
SGD) with a planted copy, a copy with every variable renamed and its comments reworded, and
independent correct answers that must not be flagged."""

from __future__ import annotations

import json
import shutil
import textwrap
from pathlib import Path

import pytest
from submissions import Chapter

from grader.core.cli import main
from grader.instructor.similar import fingerprints, tokens

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "course"


def dedent(text: str) -> str:
    return textwrap.dedent(text).strip("\n")


SGD_HEAD = dedent('''
    class SGD(torch.optim.Optimizer):
        """Plain SGD."""

        def __init__(self, params, lr=1e-3):
            super().__init__(params, {"lr": lr})

        @torch.no_grad()
        def step(self, closure=None):
    ''') + "\n"



def step(body: str) -> str:
    """The SGD answer cell: the template's class with ``body`` as its step."""
    return SGD_HEAD + textwrap.indent(dedent(body), " " * 8)


# Four learners who wrote their own (correct) answers, each in their own way.
INDEPENDENT = {
    "ada": {
        "mse_loss": dedent('''
            def mse_loss(input, target, reduction="mean"):
                """Mean squared error."""
                squared = (input - target) ** 2
                if reduction == "mean":
                    return squared.mean()
                if reduction == "sum":
                    return squared.sum()
                return squared
            '''),
        "softplus": dedent('''
            def softplus(input, beta=1.0):
                """Softplus."""
                z = beta * input
                # log(1 + e^z) = max(z, 0) + log(1 + e^-|z|): no overflow
                return (torch.clamp(z, min=0) + torch.log1p(torch.exp(-z.abs()))) / beta
            '''),
        "SGD": step('''
                    loss = None
                    if closure is not None:
                        with torch.enable_grad():
                            loss = closure()
                    for group in self.param_groups:
                        for p in group["params"]:
                            if p.grad is not None:
                                p.add_(p.grad, alpha=-group["lr"])
                    return loss
            '''),
    },
    "bo": {
        "mse_loss": dedent('''
            def mse_loss(input, target, reduction="mean"):
                diff = input.sub(target)
                out = diff * diff
                return {"none": lambda t: t, "sum": torch.sum, "mean": torch.mean}[reduction](out)
            '''),
        "softplus": dedent('''
            def softplus(input, beta=1.0):
                return torch.logaddexp(beta * input, torch.zeros_like(input)) / beta
            '''),
        "SGD": step('''
                    for g in self.param_groups:
                        lr = g["lr"]
                        for w in g["params"]:
                            if w.grad is None:
                                continue
                            w -= lr * w.grad
            '''),
    },
    "cy": {
        "mse_loss": dedent('''
            def mse_loss(input, target, reduction="mean"):
                errors = torch.pow(target - input, 2)
                if reduction == "none":
                    return errors
                total = errors.sum()
                return total / errors.numel() if reduction == "mean" else total
            '''),
        "softplus": dedent('''
            def softplus(input, beta=1.0):
                x = input * beta
                big = x > 20
                safe = torch.where(big, torch.zeros_like(x), x)
                return torch.where(big, x, torch.log1p(torch.exp(safe))) / beta
            '''),
        "SGD": step('''
                    params = [p for group in self.param_groups for p in group["params"]]
                    lrs = [group["lr"] for group in self.param_groups for _ in group["params"]]
                    for param, rate in zip(params, lrs):
                        if param.grad is not None:
                            param.data = param.data - rate * param.grad
            '''),
    },
    "di": {
        "mse_loss": dedent('''
            def mse_loss(input, target, reduction="mean"):
                assert reduction in ("mean", "sum", "none"), reduction
                res = (input - target).square()
                if reduction != "none":
                    res = res.sum()
                    if reduction == "mean":
                        res = res / input.numel()
                return res
            '''),
        "softplus": dedent('''
            def softplus(input, beta=1.0):
                m = torch.maximum(beta * input, torch.zeros_like(input))
                return (m + torch.log(torch.exp(-m) + torch.exp(beta * input - m))) / beta
            '''),
        "SGD": step('''
                    for group in self.param_groups:
                        step_size = group["lr"]
                        for param in group["params"]:
                            grad = param.grad
                            if grad is not None:
                                param.sub_(step_size * grad)
            '''),
    },
}

# ed hands in ada's notebook with reworded comments; fay renames every variable of cy's.
COPIED = dict(INDEPENDENT["ada"])
COPIED["softplus"] = COPIED["softplus"].replace(
    "# log(1 + e^z) = max(z, 0) + log(1 + e^-|z|): no overflow", "# stable version (see notes)")
RENAMED = {
    "mse_loss": dedent('''
        def mse_loss(input, target, reduction="mean"):
            # squared error of each element
            sq_err = torch.pow(target - input, 2)
            if reduction == "none":
                return sq_err
            s = sq_err.sum()
            return s / sq_err.numel() if reduction == "mean" else s
        '''),
    "softplus": dedent('''
        def softplus(input, beta=1.0):
            bx = input * beta
            mask = bx > 20  # exp overflows past here
            bx_safe = torch.where(mask, torch.zeros_like(bx), bx)
            return torch.where(mask, bx, torch.log1p(torch.exp(bx_safe))) / beta
        '''),
    "SGD": step('''
                ps = [q for g in self.param_groups for q in g["params"]]
                rates = [g["lr"] for g in self.param_groups for _ in g["params"]]
                for q, eta in zip(ps, rates):
                    if q.grad is not None:
                        q.data = q.data - eta * q.grad
        '''),
}
CLASS = {**INDEPENDENT, "ed": COPIED, "fay": RENAMED}


@pytest.fixture(scope="module")
def course(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("course")
    shutil.copytree(FIXTURE / "solutions", root / "solutions")
    shutil.copytree(FIXTURE / "notebooks", root / "notebooks")
    ch = Chapter(root / "solutions/99_fixture/99_fixture.ipynb",
                 root / "notebooks/99_fixture/99_fixture.ipynb")
    for student, answers in CLASS.items():
        path = root / "submitted" / student / "99_fixture" / "99_fixture.ipynb"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(ch.filled(**answers)))
    # A learner who handed in the untouched template: nothing of their own to compare.
    path = root / "submitted" / "gus" / "99_fixture" / "99_fixture.ipynb"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(ch.untouched()))
    return root


def test_renamed_variables_give_the_same_tokens():
    a, b = INDEPENDENT["cy"]["mse_loss"], RENAMED["mse_loss"]
    assert a != b
    assert [t.text for t in tokens(a)] == [t.text for t in tokens(b)]
    assert set(fingerprints(tokens(a))) == set(fingerprints(tokens(b)))


def test_copies_are_flagged_and_independent_answers_are_not(course, capsys):
    assert main(["similar", "99_fixture", "--course", str(course), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    flagged = {tuple(p["students"]): p for p in doc["pairs"]}
    assert set(flagged) == {("ada", "ed"), ("cy", "fay")}, {k: v["similarity"]
                                                            for k, v in flagged.items()}
    assert flagged["ada", "ed"]["similarity"] >= 0.9 and flagged["cy", "fay"]["similarity"] >= 0.9
    assert doc["students"] == 7


def test_every_pair_of_independent_answers_stays_below_the_threshold(course, capsys):
    assert main(["similar", "99_fixture", "--course", str(course), "--json",
                 "--threshold", "0"]) == 0
    doc = json.loads(capsys.readouterr().out)
    scores = {tuple(p["students"]): p["similarity"] for p in doc["pairs"]}
    independent = [(a, b) for a in INDEPENDENT for b in INDEPENDENT if a < b]
    assert max(scores.get(pair, 0) for pair in independent) < 0.3, scores
    assert all("gus" not in pair for pair in scores), "the template alone is never a match"


def test_html_shows_both_sides_with_the_matching_lines(course, tmp_path, capsys):
    out = tmp_path / "similar.html"
    assert main(["similar", "99_fixture", "--course", str(course), "--html", str(out)]) == 0
    text = capsys.readouterr().out
    assert "ada and ed" in text and "cy and fay" in text
    page = out.read_text()
    assert page.count("<table>") >= 3 and "class='m'" in page
    assert "sq_err" in page and "errors" in page  # fay's and cy's code side by side
    assert "http" not in page


def test_a_folder_of_notebooks(course, capsys):
    assert main(["similar", str(course / "submitted"), "--course", str(course)]) == 0
    assert "ada and ed" in capsys.readouterr().out


def test_clear_errors(course, tmp_path, capsys):
    assert main(["similar", "00_nothing", "--course", str(course)]) == 2
    assert "unknown assignment '00_nothing'" in capsys.readouterr().err
    empty = tmp_path / "empty"
    (empty / "notebooks/99_fixture").mkdir(parents=True)
    shutil.copy(course / "notebooks/99_fixture/99_fixture.ipynb", empty / "notebooks/99_fixture")
    assert main(["similar", "99_fixture", "--course", str(empty)]) == 2
    assert "no submissions of 99_fixture" in capsys.readouterr().err
    assert main(["similar", str(tmp_path / "nope/"), "--course", str(course)]) == 2
    assert "no such folder" in capsys.readouterr().err
