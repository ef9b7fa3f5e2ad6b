"""The image build recipe: one Dockerfile for every function, and the generated build commands.

Each function image holds only what it needs: `coditect[<its extras>]` (the `kubernetes` client
only in the provisioner's, Starlette/uvicorn only in the relay's), its own functions/<name>/
source, and libfdb_c from the foundationdb-clients package (the `foundationdb` wheel is pure
Python and loads the C client at run time). functions/build-images.sh passes the per-function build
arguments (FUNCTION, EXTRAS, KIND) read from the registry.

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

DOCKERFILE = f"""\
# syntax=docker/dockerfile:1.7
# {GENERATED}
# One recipe for every function image; functions/build-images.sh passes FUNCTION, EXTRAS and KIND.
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
RUN pip wheel --no-cache-dir --wheel-dir /wheels "/src/shared${{EXTRAS:+[$EXTRAS]}}"

FROM ${{PYTHON_IMAGE}}
ARG FUNCTION
ARG KIND=http
RUN test -n "$FUNCTION" || {{ echo "set --build-arg FUNCTION=<name>" >&2; exit 1; }}
COPY --from=fdb /fdb/usr/lib/libfdb_c.so /usr/lib/libfdb_c.so
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \\
    pip install --no-cache-dir --no-index --find-links /wheels /wheels/coditect-*.whl
COPY functions/${{FUNCTION}}/ /srv/function/
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PORT={PORT} \\
    FUNCTION_KIND=${{KIND}} FUNCTION_SOURCE=/srv/function/main.py FUNCTION_TARGET=handle \\
    FUNCTION_SIGNATURE_TYPE=${{KIND}} WORKERS=1 THREADS=8
USER {UID}:{UID}
EXPOSE {PORT}
# http / cloudevent: functions-framework (gunicorn, WORKERS x THREADS); asgi (the relay): uvicorn.
CMD ["/bin/sh", "-c", "if [ \\"$FUNCTION_KIND\\" = asgi ]; then exec uvicorn --app-dir /srv/function main:app --host 0.0.0.0 --port \\"$PORT\\" --proxy-headers; else exec functions-framework --target \\"$FUNCTION_TARGET\\" --source \\"$FUNCTION_SOURCE\\" --signature-type \\"$FUNCTION_SIGNATURE_TYPE\\"; fi"]
"""


def build_args(spec: FunctionSpec) -> list[str]:
    kind = "cloudevent" if spec.kind == "cloudevent" else ("asgi" if spec.kind == "asgi" else "http")
    return [f"FUNCTION={spec.name}", f"EXTRAS={','.join(spec.extras)}", f"KIND={kind}"]


def build_script(functions: list[FunctionSpec]) -> str:
    lines = [
        "#!/bin/sh",
        f"# {GENERATED}",
        "# Builds every function image (or those named as arguments) from the repository root:",
        "#   FDB_CLIENTS_DEB_URL=... FDB_CLIENTS_SHA256=... functions/build-images.sh [function ...]",
        "set -eu",
        f'REPOSITORY="${{IMAGE_REPOSITORY:-{IMAGE_REPOSITORY}}}"',
        f'TAG="${{IMAGE_TAG:-{IMAGE_TAG}}}"',
        'wanted() { [ $# -eq 0 ] && return 0; for f in "$@"; do [ "$f" = "$NAME" ] && return 0; done; return 1; }',
        "build() {",
        "  docker build -f functions/Dockerfile \\",
        '    --build-arg FDB_CLIENTS_DEB_URL="${FDB_CLIENTS_DEB_URL:?}" --build-arg FDB_CLIENTS_SHA256="${FDB_CLIENTS_SHA256:?}" \\',
        '    --build-arg FUNCTION="$1" --build-arg EXTRAS="$2" --build-arg KIND="$3" \\',
        '    -t "$REPOSITORY/$1:$TAG" .',
        "}",
    ]
    for spec in functions:
        fn, extras, kind = (a.split("=", 1)[1] for a in build_args(spec))
        quoted = shlex.quote(extras) if extras else "''"
        lines.append(
            f'NAME={shlex.quote(fn)}; if wanted "$@"; then build {shlex.quote(fn)} {quoted} {kind}; fi'
        )
    return "\n".join(lines) + "\n"
