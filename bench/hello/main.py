"""The baseline of every benchmark: a hello-world functions-framework function, nothing else."""

import flask


def handle(request: flask.Request) -> flask.Response:
    return flask.jsonify(success=True, data={"hello": "world"})
