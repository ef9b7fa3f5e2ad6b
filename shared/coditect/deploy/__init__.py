"""Deployment artefacts rendered from the registry: Knative Services, ingress routes, image recipe.

    python -m coditect.deploy render           # (re)write knative/, infra/ (relay, eventing, routes), Dockerfile
    python -m coditect.deploy render --check   # exit 1 and list the files that drift

Everything is a pure function of `coditect.registry.FUNCTIONS` and `coditect.ops.jobs.JOBS`
(`render.files()` maps each repository path to its text), so the committed files are checked by a test: when someone adds a
function or a route, the test fails until the render is re-run and the output committed.
"""

from coditect.deploy.render import REGENERATE, check, files, write

__all__ = ["REGENERATE", "check", "files", "write"]
