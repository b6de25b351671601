"""Similar submissions: which students' answer cells share code the template does not explain.

Offline and self-contained, the method of MOSS and copydetect (Schleimer, Wilkerson and Aiken,
"Winnowing: local algorithms for document fingerprinting", SIGMOD 2003):

1. only the **answer cells** of each submission are read (the grading core's own matching of a
   submission against the released template, :func:`grader.core.notebook.make_plan`); the setup,
   test and demo cells are the course's, not the student's;
2. each answer is **tokenized** with Python's :mod:`tokenize`; comments, blank lines and
   docstrings are dropped, every identifier that is not a keyword, a builtin, an attribute name
   (``.exp``, ``.sum``: the API used) or a name the template defines (``torch``, ``F``) becomes
   ``V``, every number ``N`` and every string ``S``: renaming variables, re-wording comments or
   changing constants does not hide a copy;
3. every run of ``k`` tokens is hashed, and **winnowing** keeps the smallest hash of each window
   of ``w`` consecutive hashes: any shared run of ``k + w - 1`` tokens is guaranteed to be
   detected, shorter coincidences mostly are not;
4. fingerprints of the **released template** (the stubs, signatures and given code of each
   answer cell) are removed, and so are fingerprints found in more than ``max_share`` of the
   class (idioms everybody writes, like MOSS's ``-m``);
5. for a pair of students, the **similarity** is the number of fingerprints they share divided by
   the fingerprints of the one with fewer (so copying a part of a longer answer still counts);
   pairs with at least ``min_fingerprints`` fingerprints each and a similarity of at least
   ``threshold`` are reported, with the matching lines of both side by side in HTML.

A high similarity is a reason to look, not a verdict: short exercises have few ways to be right.
"""

from __future__ import annotations

import builtins
import dataclasses
import hashlib
import html
import io
import itertools
import keyword
import token
import tokenize
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

K = 8  # tokens per k-gram
WINDOW = 4  # k-grams per winnowing window: shared runs of K + WINDOW - 1 = 11 tokens are found
THRESHOLD = 0.5
MIN_FINGERPRINTS = 8
MAX_SHARE = 0.5  # fingerprints in more than this share of the class are common idioms

KEEP = frozenset(keyword.kwlist) | frozenset(keyword.softkwlist) | frozenset(dir(builtins))
SKIP = {token.COMMENT, token.NL, token.NEWLINE, token.INDENT, token.DEDENT, token.ENCODING,
        token.ENDMARKER, token.TYPE_COMMENT}

# f-strings are one STRING token up to Python 3.11, three kinds of token from 3.12 on
STRINGS = {token.STRING} | {getattr(token, n) for n in ("FSTRING_START", "FSTRING_MIDDLE",
                                                         "FSTRING_END") if hasattr(token, n)}


@dataclasses.dataclass(frozen=True)
class Token:
    """A normalised token, with the line (1-based, in its cell) it comes from."""

    text: str
    line: int


def tokens(source: str, keep: frozenset[str] = frozenset()) -> list[Token]:
    """The normalised tokens of ``source`` (see the module docstring). Code that does not
    tokenize (a syntax error) falls back to its whitespace-separated words."""
    out: list[Token] = []
    try:
        toks = list(tokenize.generate_tokens(io.StringIO(source).readline))
    except (tokenize.TokenError, IndentationError, SyntaxError):
        return [Token(word, n) for n, line in enumerate(source.splitlines(), 1)
                for word in line.split() if not word.startswith("#")]
    previous = None
    statement_start = True
    for tok in toks:
        if tok.type in SKIP:
            if tok.type in (token.NEWLINE, token.INDENT, token.DEDENT):
                statement_start = True
            continue
        if tok.type == token.STRING and statement_start:  # a docstring or a bare string
            statement_start = False
            previous = tok
            continue
        statement_start = False
        if tok.type == token.NAME:
            after_dot = previous is not None and previous.string == "."
            text = tok.string if (after_dot or tok.string in KEEP or tok.string in keep) else "V"
        elif tok.type == token.NUMBER:
            text = "N"
        elif tok.type in STRINGS:
            text = "S"
        else:
            text = tok.string
        out.append(Token(text, tok.start[0]))
        previous = tok
    return out


def _hash(gram: Iterable[str]) -> int:
    digest = hashlib.blake2b("\x1f".join(gram).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def fingerprints(toks: list[Token], k: int = K, window: int = WINDOW
                 ) -> dict[int, list[tuple[int, int]]]:
    """Winnowed fingerprints: hash -> the (first line, last line) of each k-gram it stands for."""
    grams = [(_hash(t.text for t in toks[i:i + k]), toks[i].line, toks[i + k - 1].line)
             for i in range(len(toks) - k + 1)]
    chosen: dict[int, list[tuple[int, int]]] = defaultdict(list)
    if not grams:
        return chosen
    last = -1
    for start in range(max(1, len(grams) - window + 1)):
        win = grams[start:start + window]
        # the rightmost smallest hash of the window (Schleimer et al.'s robust winnowing)
        pos = start + min(range(len(win)), key=lambda j: (win[j][0], -j))
        if pos != last:
            h, first, end = grams[pos]
            chosen[h].append((first, end))
            last = pos
    return chosen


@dataclasses.dataclass
class Submission:
    """One student's answers: grade_id -> source, and their fingerprints."""

    student: str
    answers: dict[str, str]
    prints: dict[str, dict[int, list[tuple[int, int]]]] = dataclasses.field(default_factory=dict)

    def hashes(self) -> set[tuple[str, int]]:
        return {(gid, h) for gid, fp in self.prints.items() for h in fp}


def template_names(template_sources: Iterable[str]) -> frozenset[str]:
    """Names the course's own cells bind at the top (``torch``, ``F``, ``np``...): kept as
    themselves, like builtins."""
    import ast

    names: set[str] = set()
    for source in template_sources:
        try:
            tree = ast.parse(source)
        except SyntaxError:
            continue
        for node in tree.body:
            if isinstance(node, ast.Import | ast.ImportFrom):
                names.update((a.asname or a.name).split(".")[0] for a in node.names)
    return frozenset(names)


def compare(subs: list[Submission], template: dict[str, str], *, keep: frozenset[str],
            threshold: float = THRESHOLD, min_fingerprints: int = MIN_FINGERPRINTS,
            max_share: float = MAX_SHARE, k: int = K, window: int = WINDOW,
            progress: Callable[[Iterable[Any], int, str], Iterable[Any]] | None = None
            ) -> dict[str, Any]:
    """Pairs of students whose answers are similar (see the module docstring)."""
    boiler = {gid: set(fingerprints(tokens(src, keep), k, window)) for gid, src in template.items()}
    for sub in subs:
        sub.prints = {}
        for gid, src in sub.answers.items():
            fp = fingerprints(tokens(src, keep), k, window)
            sub.prints[gid] = {h: v for h, v in fp.items() if h not in boiler.get(gid, ())}
    spread = Counter(h for sub in subs for h in sub.hashes())
    limit = max(2, max_share * len(subs))
    common = {h for h, n in spread.items() if n > limit}
    sets = {sub.student: sub.hashes() - common for sub in subs}
    pairs = []
    combos = list(itertools.combinations(subs, 2))
    for a, b in (progress(combos, len(combos), "comparing") if progress else combos):
        fa, fb = sets[a.student], sets[b.student]
        smaller = min(len(fa), len(fb))
        if smaller < min_fingerprints:
            continue
        shared = fa & fb
        score = len(shared) / smaller
        if score >= threshold:
            pairs.append({"students": [a.student, b.student], "similarity": round(score, 3),
                          "shared": len(shared), "fingerprints": [len(fa), len(fb)],
                          "cells": matches(a, b, shared)})
    pairs.sort(key=lambda p: (-p["similarity"], p["students"]))
    return {"students": len(subs), "threshold": threshold, "k": k, "window": window,
            "min_fingerprints": min_fingerprints, "max_share": max_share,
            "ignored_common": len(common),
            "pairs": pairs}


def matches(a: Submission, b: Submission, shared: set[tuple[str, int]]) -> list[dict[str, Any]]:
    """Per answer cell with shared fingerprints: both sources and the lines that match."""
    cells = []
    for gid in sorted({g for g, _ in shared}):
        lines_a, lines_b = set(), set()
        for g, h in shared:
            if g != gid:
                continue
            for first, last in a.prints[gid].get(h, []):
                lines_a.update(range(first, last + 1))
            for first, last in b.prints[gid].get(h, []):
                lines_b.update(range(first, last + 1))
        cells.append({"cell": gid, "sources": [a.answers[gid], b.answers[gid]],
                      "lines": [sorted(lines_a), sorted(lines_b)]})
    return cells


def text(doc: dict[str, Any]) -> str:
    """A readable list of the flagged pairs."""
    head = (f"{doc['students']} submissions compared; pairs with a similarity of at least "
            f"{doc['threshold']:.0%}:")
    if not doc["pairs"]:
        return head + "\n  none"
    return "\n".join([head] + [
        f"  {p['students'][0]} and {p['students'][1]}: {p['similarity']:.0%} "
        f"({p['shared']} shared fingerprints"
        + (f", in {', '.join(c['cell'] for c in p['cells'])})" if p["cells"] else ")")
        for p in doc["pairs"]])


def page(doc: dict[str, Any], title: str = "Similar submissions") -> str:
    """The flagged pairs as one self-contained HTML page, matching lines highlighted."""
    esc = html.escape

    def listing(source: str, lines: list[int]) -> str:
        marked = set(lines)
        rows = [f"<span class='{'m' if n in marked else ''}'>{n:>3} {esc(line)}</span>"
                for n, line in enumerate(source.splitlines(), 1)]
        return "<pre>" + "\n".join(rows) + "</pre>"

    parts = [f"<!doctype html><html><head><meta charset='utf-8'><title>{esc(title)}</title>",
             "<style>body{font-family:sans-serif;margin:2em;}table{width:100%;"
             "border-collapse:collapse;}td{vertical-align:top;width:50%;padding:.3em;}"
             "pre{background:#f6f6f6;padding:.4em;font-size:85%;white-space:pre-wrap;}"
             ".m{background:#ffd966;}</style></head><body>",
             f"<h1>{esc(title)}</h1>",
             f"<p>{doc['students']} submissions, answer cells only; the template's code and "
             f"{doc['ignored_common']} fingerprints found in more than {doc['max_share']:.0%} "
             "of the class are discounted. "
             f"Pairs at or above {doc['threshold']:.0%} similarity (shared fingerprints over "
             "those of the shorter submission). Highlighted: lines in matching code. A high "
             "similarity is a reason to look, not a verdict.</p>"]
    if not doc["pairs"]:
        parts.append("<p>No pair is above the threshold.</p>")
    for p in doc["pairs"]:
        a, b = (esc(s) for s in p["students"])
        parts.append(f"<h2>{a} and {b}: {p['similarity']:.0%}</h2>"
                     f"<p>{p['shared']} shared fingerprints ({a}: {p['fingerprints'][0]}, "
                     f"{b}: {p['fingerprints'][1]})</p>")
        for cell in p["cells"]:
            parts.append(f"<h3>{esc(cell['cell'])}</h3><table><tr><th>{a}</th><th>{b}</th></tr>"
                         f"<tr><td>{listing(cell['sources'][0], cell['lines'][0])}</td>"
                         f"<td>{listing(cell['sources'][1], cell['lines'][1])}</td></tr></table>")
    parts.append("</body></html>")
    return "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# Reading a class


def answers_of(path: Path, chapter: Any) -> dict[str, str]:
    """The answer cells of one submitted notebook (grade_id -> source), matched as the grading
    core matches them; {} for a notebook that cannot be read."""
    from grader.core.notebook import InvalidNotebook, make_plan, read_submission

    try:
        cells = read_submission(path)
    except InvalidNotebook:
        return {}
    plan = make_plan(chapter, cells)
    return {gid: cell.source for gid, cell in plan.answers.items() if cell is not None}


def student_of(path: Path, root: Path) -> str:
    """The student a submission belongs to: nbgrader's ``<student>/<assignment>/x.ipynb``
    layout, else the file's folder or name under ``root``."""
    rel = path.relative_to(root)
    if len(rel.parts) >= 3:
        return rel.parts[-3]
    return rel.parts[0] if len(rel.parts) == 2 else rel.stem


def collect(course_root: Path, assignment: str, folder: Path | None = None) -> list[Path]:
    """The submitted notebooks of ``assignment``: ``submitted/*/ASSIGNMENT/*.ipynb`` of the
    course (nbgrader collect's layout), or every ``*.ipynb`` under ``folder``."""
    if folder is not None:
        if not folder.is_dir():
            raise FileNotFoundError(f"no such folder of submissions: {folder}")
        return sorted(p for p in folder.rglob("*.ipynb") if ".ipynb_checkpoints" not in p.parts)
    return sorted((course_root / "submitted").glob(f"*/{assignment}/*.ipynb"))
