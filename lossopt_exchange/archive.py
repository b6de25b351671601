"""Assignment folders as gzipped tar archives, in memory, checked before anything is stored.

Both sides use these: the plugin packs a folder to send it, the service checks what arrives
(regular files only, relative paths, bounded size, notebooks that parse) before keeping it.
"""

from __future__ import annotations

import fnmatch
import io
import tarfile
from pathlib import Path, PurePosixPath

import nbformat

MAX_FILES = 200
MAX_BYTES = 64 * 2**20  # uncompressed, per archive
# Never packed or accepted: editor leftovers, and the timestamp that only the server may write.
IGNORED = (".ipynb_checkpoints", "__pycache__", "*.pyc", ".DS_Store", "timestamp.txt")


class ArchiveError(ValueError):
    """An archive that cannot be accepted; the message says why, for the person who sent it."""


def ignored(name: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether any part of a relative path matches an ignore pattern."""
    return any(fnmatch.fnmatch(part, pattern)
               for part in PurePosixPath(name).parts for pattern in IGNORED + extra)


def pack(folder: Path, ignore: tuple[str, ...] = ()) -> bytes:
    """A folder's files (not the ignored ones) as a .tar.gz, paths relative to the folder."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(folder.rglob("*")):
            name = path.relative_to(folder).as_posix()
            if path.is_file() and not path.is_symlink() and not ignored(name, ignore):
                tar.add(path, arcname=name, recursive=False)
    return buffer.getvalue()


def pack_files(files: dict[str, bytes]) -> bytes:
    """Named contents as a .tar.gz."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for name, data in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def unpack(data: bytes, *, notebooks_required: bool = False) -> dict[str, bytes]:
    """The files of an archive, checked; raises :class:`ArchiveError` saying what is wrong.

    Only regular files under relative paths are accepted (no links, devices, ``..`` or absolute
    paths); ignored names are dropped. With ``notebooks_required``, the archive must hold at
    least one notebook and every ``.ipynb`` must be a readable nbformat 4 notebook.
    """
    files: dict[str, bytes] = {}
    total = 0
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
            for member in tar:
                path = PurePosixPath(member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    raise ArchiveError(f"{member.name}: only regular files can be submitted")
                if path.is_absolute() or ".." in path.parts or not path.parts:
                    raise ArchiveError(f"{member.name}: paths must stay inside the assignment")
                if ignored(member.name):
                    continue
                total += member.size
                if len(files) >= MAX_FILES or total > MAX_BYTES:
                    raise ArchiveError(f"too large: at most {MAX_FILES} files and "
                                       f"{MAX_BYTES // 2**20} MB")
                files[path.as_posix()] = tar.extractfile(member).read()
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ArchiveError(f"not a readable .tar.gz archive ({error})") from None
    if notebooks_required:
        notebooks = [name for name in files if name.endswith(".ipynb")]
        if not notebooks:
            raise ArchiveError("no notebook (.ipynb) in the submission")
        for name in notebooks:
            try:
                nbformat.reads(files[name].decode("utf-8"), as_version=4)
            except Exception as error:  # JSON, encoding or schema: all mean "malformed"
                raise ArchiveError(f"{name} is not a readable notebook: "
                                   f"{type(error).__name__}: {str(error)[:200]}") from None
    return files


def extract(files: dict[str, bytes], dest: Path, *, only_missing: bool = False) -> list[Path]:
    """Write checked files below ``dest``; with ``only_missing``, keep files already there."""
    written = []
    for name, data in files.items():
        target = dest / name
        if only_missing and target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        written.append(target)
    return written
