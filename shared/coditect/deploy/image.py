"""The image build recipe: one Dockerfile for every function, and the generated build commands.

Each function image holds only what it needs: `coditect[<its extras>]` (the `kubernetes` client
only in the provisioner's and cron's, Starlette/uvicorn only in the relay's), its own
functions/<name>/ source, and libfdb_c from the foundationdb-clients package (the `foundationdb`
wheel is pure Python and loads the C client at run time). Functions in `FDB_TOOLS` also get the
package's `fdbcli` and `fdbbackup` (the cron jobs call `fdbbackup status --json`).
functions/build-images.sh passes the per-function build arguments (FUNCTION, EXTRAS, KIND,
FDB_TOOLS) read from the registry, and builds the workspace sync sidecar (target `sync`).

The install is two pip commands, `WHEEL_COMMAND` then `INSTALL_COMMAND`: every wheel the
requirement `coditect[<extras>]` needs is built into /wheels, and the final stage installs the
same requirement from /wheels only (`--no-index`), so a missing extra fails the build rather than
the first request. tests/unit/deploy/test_image_environments.py runs those two commands in fresh
venvs (no Docker) and starts each kind of function from them.

The .deb's location and checksum are build arguments (FDB_CLIENTS_DEB_URL, FDB_CLIENTS_SHA256)
taken from the environment of the build, so the recipe pins the version and verifies what it
installs. At run time the image reads THREADS (gunicorn threads; the Knative Service sets it to
spec.concurrency, equal to containerConcurrency) and WORKERS (1).
"""

from __future__ import annotations

import shlex

from coditect.deploy.knative import GENERATED, IMAGE_REPOSITORY, IMAGE_TAG, PORT, UID
from coditect.registry.spec import FunctionSpec

PYTHON_IMAGE = "python:3.11.11-slim-bookworm"
FDB_VERSION = "7.3.69"  # == the `foundationdb` pin in shared/pyproject.toml (a test checks it)
# Functions whose jobs run FoundationDB's command-line tools (coditect.ops.fdb_admin).
FDB_TOOLS = frozenset({"cron"})
SYNC_IMAGE = "workspace-sync"  # the workspace pod's sync sidecar (setting workspace_sync_image)
SYNC_EXTRAS = "sync"


def requirement(extras: str) -> str:
    """The pip requirement of an image with these comma-separated extras."""
    return f"coditect[{extras}]" if extras else "coditect"


# The two pip steps of the recipe ($EXTRAS substituted by the shell in the Dockerfile; the test
# substitutes it the same way). --no-cache-dir keeps pip's cache out of the image layers.
WHEEL_COMMAND = 'pip wheel --no-cache-dir --wheel-dir /wheels "/src/shared${EXTRAS:+[$EXTRAS]}"'
INSTALL_COMMAND = 'pip install --no-cache-dir --no-index --find-links /wheels "coditect${EXTRAS:+[$EXTRAS]}"'

# What the container runs: functions-framework (gunicorn, WORKERS x THREADS) for http and
# cloudevent; an ASGI target (the relay) under coditect.relay's server, which applies the
# uvicorn settings from Settings and drains on SIGTERM (close code 1012, see coditect.relay.server).
START_SCRIPT = (
    'if [ "$FUNCTION_KIND" = asgi ]; then exec python -m coditect.relay --app main:app '
    '--app-dir "$(dirname "$FUNCTION_SOURCE")" --host 0.0.0.0 --port "$PORT"; '
    'else exec functions-framework --target "$FUNCTION_TARGET" --source "$FUNCTION_SOURCE" '
    '--signature-type "$FUNCTION_SIGNATURE_TYPE"; fi'
)


def _json_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


DOCKERFILE = f"""\
# syntax=docker/dockerfile:1.7
# {GENERATED}
# One recipe for every function image; functions/build-images.sh passes FUNCTION, EXTRAS, KIND
# and FDB_TOOLS, and builds the workspace sync sidecar with `--target sync --build-arg EXTRAS=sync`.
#   docker build -f functions/Dockerfile --build-arg FUNCTION=sessions --build-arg EXTRAS= \\
#     --build-arg KIND=http --build-arg FDB_CLIENTS_DEB_URL=... --build-arg FDB_CLIENTS_SHA256=... .
ARG PYTHON_IMAGE={PYTHON_IMAGE}

FROM ${{PYTHON_IMAGE}} AS fdb
ARG FDB_VERSION={FDB_VERSION}
# foundationdb-clients_${{FDB_VERSION}}-1_<arch>.deb from FoundationDB's release page, and its sha256.
ARG FDB_CLIENTS_DEB_URL
ARG FDB_CLIENTS_SHA256
RUN test -n "$FDB_CLIENTS_DEB_URL" && test -n "$FDB_CLIENTS_SHA256" \\
 || {{ echo "set FDB_CLIENTS_DEB_URL and FDB_CLIENTS_SHA256 (foundationdb-clients $FDB_VERSION)" >&2; exit 1; }}
ADD ${{FDB_CLIENTS_DEB_URL}} /tmp/foundationdb-clients.deb
RUN echo "$FDB_CLIENTS_SHA256  /tmp/foundationdb-clients.deb" | sha256sum -c - \\
 && dpkg-deb -x /tmp/foundationdb-clients.deb /fdb

FROM ${{PYTHON_IMAGE}} AS wheels
ARG EXTRAS=
COPY shared/pyproject.toml /src/shared/pyproject.toml
COPY shared/coditect /src/shared/coditect
# Every wheel `coditect[$EXTRAS]` needs (the extras' dependencies included).
RUN {WHEEL_COMMAND}

# The workspace pod's sync sidecar: the coditect wheel with its `sync` extra.
FROM ${{PYTHON_IMAGE}} AS sync
ARG EXTRAS={SYNC_EXTRAS}
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \\
    {INSTALL_COMMAND}
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
USER {UID}:{UID}
CMD ["python", "-m", "coditect.sync"]

FROM ${{PYTHON_IMAGE}} AS function
ARG FUNCTION
ARG KIND=http
ARG EXTRAS=
# 1: also install fdbcli and fdbbackup (the cron function's jobs run them).
ARG FDB_TOOLS=0
RUN test -n "$FUNCTION" || {{ echo "set --build-arg FUNCTION=<name>" >&2; exit 1; }}
RUN --mount=type=bind,from=fdb,source=/fdb,target=/fdb \\
    cp /fdb/usr/lib/libfdb_c.so /usr/lib/libfdb_c.so \\
 && if [ "$FDB_TOOLS" = 1 ]; then cp /fdb/usr/bin/fdbcli /fdb/usr/bin/fdbbackup /usr/local/bin/; fi
# The same requirement, with the function's extras, from the wheels built above only.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \\
    {INSTALL_COMMAND}
COPY functions/${{FUNCTION}}/ /srv/function/
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT={PORT} \\
    FUNCTION_KIND=${{KIND}} FUNCTION_SOURCE=/srv/function/main.py FUNCTION_TARGET=handle \\
    FUNCTION_SIGNATURE_TYPE=${{KIND}} WORKERS=1 THREADS=8
USER {UID}:{UID}
EXPOSE {PORT}
CMD ["/bin/sh", "-c", {_json_string(START_SCRIPT)}]
"""

# What never goes into the build context (keys, local data, venvs, caches, git).
DOCKERIGNORE = f"""\
# {GENERATED}
# The images copy only shared/pyproject.toml, shared/coditect/ and functions/<name>/; everything
# else stays out of the build context (and secrets such as local signing keys never enter it).
**
!shared/pyproject.toml
!shared/coditect/**
!functions/**
**/__pycache__
**/*.pyc
**/.pytest_cache
**/.mypy_cache
functions/Dockerfile
functions/build-images.sh
"""


def kind_arg(spec: FunctionSpec) -> str:
    return "cloudevent" if spec.kind == "cloudevent" else ("asgi" if spec.kind == "asgi" else "http")


def build_args(spec: FunctionSpec) -> list[str]:
    tools = "1" if spec.name in FDB_TOOLS else "0"
    return [
        f"FUNCTION={spec.name}",
        f"EXTRAS={','.join(spec.extras)}",
        f"KIND={kind_arg(spec)}",
        f"FDB_TOOLS={tools}",
    ]


def build_script(functions: list[FunctionSpec]) -> str:
    lines = [
        "#!/bin/sh",
        f"# {GENERATED}",
        "# Builds every function image and the workspace sync sidecar (or those named as arguments)",
        "# from the repository root:",
        "#   FDB_CLIENTS_DEB_URL=... FDB_CLIENTS_SHA256=... functions/build-images.sh [name ...]",
        "# The workspace IDE image (Theia) has its own recipe: images/theia/ (built here too).",
        "set -eu",
        f'REPOSITORY="${{IMAGE_REPOSITORY:-{IMAGE_REPOSITORY}}}"',
        f'TAG="${{IMAGE_TAG:-{IMAGE_TAG}}}"',
        'wanted() { [ $# -eq 0 ] && return 0; for f in "$@"; do [ "$f" = "$NAME" ] && return 0; done; return 1; }',
        "build() {",
        "  docker build -f functions/Dockerfile --target function \\",
        '    --build-arg FDB_CLIENTS_DEB_URL="${FDB_CLIENTS_DEB_URL:?}" --build-arg FDB_CLIENTS_SHA256="${FDB_CLIENTS_SHA256:?}" \\',
        '    --build-arg FUNCTION="$1" --build-arg EXTRAS="$2" --build-arg KIND="$3" --build-arg FDB_TOOLS="$4" \\',
        '    -t "$REPOSITORY/$1:$TAG" .',
        "}",
    ]
    for spec in functions:
        fn, extras, kind, tools = (a.split("=", 1)[1] for a in build_args(spec))
        quoted = shlex.quote(extras) if extras else "''"
        lines.append(
            f'NAME={shlex.quote(fn)}; if wanted "$@"; then build {shlex.quote(fn)} {quoted} {kind} {tools}; fi'
        )
    lines += [
        f'NAME={SYNC_IMAGE}; if wanted "$@"; then',
        # the sync target needs no FoundationDB client (BuildKit skips the fdb stage)
        f"  docker build -f functions/Dockerfile --target sync --build-arg EXTRAS={SYNC_EXTRAS} \\",
        f'    -t "$REPOSITORY/{SYNC_IMAGE}:$TAG" .',
        "fi",
        'NAME=theia; if wanted "$@"; then',
        '  docker build -f images/theia/Dockerfile -t "$REPOSITORY/theia:$(cat images/theia/VERSION)" images/theia',
        "fi",
    ]
    return "\n".join(lines) + "\n"
