"""The `coditect` package's version, read from its installed metadata.

Written once, in shared/pyproject.toml; the OpenAPI document and the image tag read it here.
"""

from importlib.metadata import version

VERSION = version("coditect")
