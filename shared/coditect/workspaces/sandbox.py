"""The local workspace sandbox: the workspace program and its shells run inside bubblewrap.

    check() -> str | None                   None when the sandbox works here, else why not
    wrap(argv, tree, binds=()) -> list[str] the bwrap argv running `argv` in the sandbox
    unsafe_allowed() -> bool                CODITECT_WORKSPACE_UNSAFE_NO_SANDBOX=1 (never in production)

What the sandboxed processes see (bubblewrap, Debian package `bubblewrap`, unprivileged user
namespaces):

- `/workspace`: the workspace tree, read-write — the only host directory they can write;
- read-only: `/usr` (and the merged-usr links `/bin`, `/lib*`, `/sbin`), a handful of harmless
  `/etc` files (loader cache, alternatives, locale, TLS roots, name service), the Python
  environment the program runs from (`sys.prefix` and the base interpreter's prefix, so the
  program's libraries import; a virtualenv inside the checkout exposes only itself) and the
  program file itself at `/opt/coditect/program.py`;
- a private `/tmp`, a fresh `/proc` (new pid namespace: only the workspace's own processes),
  a minimal `/dev`; new user, pid, ipc, uts and cgroup namespaces; uid/gid 1000 with no
  capabilities (outside, the processes have the stack user's uid but no capability);
- an empty environment but `PATH`, `HOME=/workspace`, `TERM`, `LANG` (no credential, no setting).

Not visible: the data directory (signing keys, pepper, `store.db`, other workspaces, the sync
agent's credential file), the repository checkout (`shared/` included), `/root`, `/home`, `/var`.

Network: the host's network namespace is shared, so the relay reaches the program on its loopback
port (a new network namespace would need a veth or a socket proxy). The consequence, documented
in docs/workspaces.md: a workspace can open connections to loopback services, which are the
authenticated API and the sync agent's health port, nothing that trusts loopback callers.

`--die-with-parent`: the sandbox dies with the process that started it (the workspace's ward).
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

INSIDE_TREE = "/workspace"
INSIDE_PROGRAM = "/opt/coditect/program.py"
UNSAFE_ENV = "CODITECT_WORKSPACE_UNSAFE_NO_SANDBOX"
SANDBOX_UID = 1000
_ETC = (
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "nsswitch.conf", "hosts",
    "resolv.conf", "ssl", "ca-certificates", "bash.bashrc", "profile", "inputrc", "terminfo", "mime.types",
)  # fmt: skip
_TOP_LINKS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


def unsafe_allowed() -> bool:
    return os.environ.get(UNSAFE_ENV) == "1"


def bwrap() -> str | None:
    return shutil.which("bwrap")


def program_file() -> str:
    """The bundled workspace program (bound read-only into the sandbox)."""
    return str(Path(__file__).with_name("program.py"))


def _system_binds() -> list[str]:
    args = ["--ro-bind", "/usr", "/usr"]
    for name in _TOP_LINKS:
        path = Path("/") / name
        if path.is_symlink():
            args += ["--symlink", os.readlink(path), f"/{name}"]
        elif path.is_dir():
            args += ["--ro-bind", str(path), f"/{name}"]
    for name in _ETC:
        if (Path("/etc") / name).exists():
            args += ["--ro-bind", f"/etc/{name}", f"/etc/{name}"]
    # The Python environment the program runs from (a virtualenv and the interpreter it points
    # to, e.g. pyenv's): read-only, at the same paths, so its libraries import.
    seen: set[str] = set()
    for given in (sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix):
        for path in (Path(given), Path(given).resolve()):
            if path.parts[:2] != ("/", "usr") and str(path) not in seen and path.is_dir():
                seen.add(str(path))
                args += ["--ro-bind", str(path.resolve()), str(path)]
    return args


def wrap(argv: Sequence[str], tree: str | os.PathLike[str]) -> list[str]:
    """`argv` run inside the sandbox with `tree` as /workspace (see the module docstring)."""
    tool = bwrap()
    if tool is None:
        raise RuntimeError("bubblewrap (bwrap) is not installed")
    return [
        tool,
        "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try",
        "--uid", str(SANDBOX_UID), "--gid", str(SANDBOX_UID), "--hostname", "workspace",
        "--die-with-parent", "--new-session", "--cap-drop", "ALL",
        # The private /tmp first: bwrap mounts in order, so a Python environment that lives under
        # the host's /tmp (a checkout there, e.g. CI's) is bound on top of it, not hidden by it.
        "--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp",  # noqa: S108 (the sandbox's own, private /tmp)
        *_system_binds(),
        "--ro-bind", program_file(), INSIDE_PROGRAM,
        "--bind", str(tree), INSIDE_TREE, "--chdir", INSIDE_TREE,
        "--clearenv",
        "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin",
        "--setenv", "HOME", INSIDE_TREE,
        "--setenv", "TERM", "xterm-256color",
        "--setenv", "LANG", "C.UTF-8",
        "--setenv", "SHELL", "/bin/bash" if Path("/bin/bash").exists() else "/bin/sh",
        "--",
        *argv,
    ]  # fmt: skip


@functools.cache
def check() -> str | None:
    """None when a sandboxed `true` runs here; otherwise a one-line reason (cached per process)."""
    if bwrap() is None:
        return "bubblewrap (bwrap) is not installed: apt-get install bubblewrap"
    try:
        with tempfile.TemporaryDirectory(prefix="coditect-sandbox-probe-") as probe:
            done = subprocess.run(
                wrap(["/bin/sh", "-c", "exit 0"], probe), capture_output=True, timeout=10, check=False
            )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"bubblewrap does not run: {exc}"
    if done.returncode != 0:
        return (
            f"bubblewrap cannot create its namespaces: {done.stderr.decode(errors='replace').strip()[:200]}"
        )
    return None
