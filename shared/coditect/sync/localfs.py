"""The local side: hashing, atomic writes with the executable bit, and scanning the tree.

A download is written to a temporary file in the tree's scratch directory (same filesystem) and
renamed over the target, so the IDE never reads half a file. The executable bit is the only mode
bit that crosses (as the store's content type parameter, see `client.EXEC_PARAM`): a synced file
is `0o666 & ~umask`, plus `+x` for whoever may read it when executable.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from coditect.sync.rules import SCRATCH, Rules

READ_SIZE = 1024 * 1024
_UMASK = os.umask(0)
os.umask(_UMASK)


@dataclass(frozen=True)
class Local:
    """What `lstat` says about a path, reduced to what sync compares."""

    kind: str  # "file", "dir" or the refusal kind (symlink, fifo, socket, device)
    size: int
    mtime_ns: int
    executable: bool


def probe(path: Path) -> Local | None:
    try:
        st = path.lstat()
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        return None
    if stat.S_ISREG(st.st_mode):
        kind = "file"
    elif stat.S_ISDIR(st.st_mode):
        kind = "dir"
    elif stat.S_ISLNK(st.st_mode):
        kind = "symlink"
    elif stat.S_ISFIFO(st.st_mode):
        kind = "fifo"
    elif stat.S_ISSOCK(st.st_mode):
        kind = "socket"
    else:
        kind = "device"
    return Local(kind, st.st_size, st.st_mtime_ns, bool(st.st_mode & stat.S_IXUSR))


def sha256_file(path: Path) -> str | None:
    """The file's SHA-256, or None when it vanished meanwhile."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as f:
            while block := f.read(READ_SIZE):
                digest.update(block)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None
    return digest.hexdigest()


def file_mode(executable: bool) -> int:
    base = 0o666 & ~_UMASK
    return base | ((base & 0o444) >> 2) if executable else base


class Scratch:
    """Temporary files for atomic downloads, inside the tree (a rename must not cross filesystems)."""

    def __init__(self, root: Path) -> None:
        self.dir = root / SCRATCH
        self._made = False

    def new(self) -> Path:
        if not self._made or not self.dir.is_dir():
            self.dir.mkdir(mode=0o700, exist_ok=True)
            self._made = True
        return self.dir / f"dl-{uuid.uuid4().hex}"

    def clear(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self._made = False


def install(tmp: Path, target: Path, executable: bool) -> None:
    """Move a finished download into place (parents made, a directory in the way removed only
    when empty: a non-empty one is the user's and the caller reports the clash)."""
    os.chmod(tmp, file_mode(executable))
    target.parent.mkdir(parents=True, exist_ok=True)
    if target.is_dir() and not target.is_symlink():
        target.rmdir()
    os.replace(tmp, target)


def set_executable(target: Path, executable: bool) -> None:
    st = target.lstat()
    if bool(st.st_mode & stat.S_IXUSR) != executable:
        os.chmod(target, file_mode(executable))


def walk(root: Path, rules: Rules, start: str = "") -> Iterator[tuple[str, Local]]:
    """Every path below `root/start` that the rules do not ignore (parents before children), as
    its path relative to `root` with its `Local`; ignored directories are not descended into."""
    stack = [start]
    while stack:
        rel_dir = stack.pop()
        base = root / rel_dir if rel_dir else root
        try:
            names = sorted(os.listdir(base))
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            continue
        subdirs = []
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            local = probe(base / name)
            if local is None or rules.ignored(rel, local.kind == "dir"):
                continue
            yield rel, local
            if local.kind == "dir":
                subdirs.append(rel)
        stack.extend(reversed(subdirs))


def remove(target: Path) -> None:
    """Delete a file or an empty directory; a missing one is fine."""
    try:
        if target.is_dir() and not target.is_symlink():
            target.rmdir()
        else:
            target.unlink()
    except FileNotFoundError:
        pass
