"""The import floor of an authenticated Coditect function: hello-world (bench/hello/main.py) plus
what such a function needs before any Coditect code runs — pydantic with one model (the first
model class loads pydantic's schema machinery, which `import pydantic` alone does not) and PyJWT,
which imports cryptography (the Ed25519 access tokens). bench_runtime.py starts it like every
function, so its cold start against hello-world's is the least any of them can get while
importing those packages at start."""

import flask
import jwt  # noqa: F401 — imported for its start-up cost alone
from pydantic import BaseModel


class Hello(BaseModel):
    hello: str


def handle(request: flask.Request) -> flask.Response:
    return flask.jsonify(success=True, data=Hello(hello="world").model_dump())
