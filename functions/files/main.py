"""/api/v5/sessions/{sid}/files[/{path}]: streamed upload and download, HEAD, delete, listing.

The logic is in `coditect.files` (`api` is the glue from a call to an answer)."""

from typing import Any

from flask import Response

from coditect.files import api
from coditect.http import Call, FunctionApp, Reply

app = FunctionApp("files")


@app.route("files.put")
def put_file(call: Call) -> Reply:
    return api.put(call)


@app.route("files.get")
def get_file(call: Call) -> Response:
    return api.read(call)


@app.route("files.head")
def head_file(call: Call) -> Response:
    return api.read(call)


@app.route("files.delete")
def delete_file(call: Call) -> None:
    api.delete(call)


@app.route("files.list")
def list_files(call: Call) -> dict[str, Any]:
    return api.listing(call)


handle = app.entrypoint()
