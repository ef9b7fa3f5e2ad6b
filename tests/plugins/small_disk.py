"""`small_disk(size)`: a real, small file system (tmpfs with `size=`) for full-disk tests.

Mounting needs root (the build machines run tests as root); elsewhere the tests skip. The mount
is always undone, even when the test fails.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest


def fill(directory: Path, name: str = "filler") -> int:
    """Write zeros into `directory/name` until the disk is full; the bytes written."""
    written = 0
    block = b"\0" * 65536
    with open(directory / name, "wb") as file:
        try:
            while True:
                written += file.write(block)
                file.flush()
        except OSError:
            pass
    return written


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    mounted: list[Path] = []

    def mount(size: str) -> Path:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs needs root")
        target = tmp_path / f"disk{len(mounted)}"
        target.mkdir()
        result = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {result.stderr.strip()}")
        mounted.append(target)
        return target

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], check=False, capture_output=True)
