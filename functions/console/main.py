"""GET / and GET /assets/<name> — the web console, served from its build (functions/console/dist).

Build it with `nox -s console` (`nox -s serve` and `nox -s tests` do it when the sources changed).
The files and headers are `coditect.http.static`'s."""

from pathlib import Path

from flask import Response

from coditect.http import Call, FunctionApp
from coditect.http.static import Site

app = FunctionApp("console")
site = Site(Path(__file__).resolve().parent / "dist")


@app.route("console.index")
def index(call: Call) -> Response:
    return site.index(call.request)


@app.route("console.asset")
def asset(call: Call) -> Response:
    return site.asset(call.request, call.params["name"])


handle = app.entrypoint()
