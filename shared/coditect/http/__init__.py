"""The HTTP function runtime: routing, envelope, errors, validation, logs (see `app`)."""

from coditect.http.app import FunctionApp
from coditect.http.call import Call, Reply
from coditect.http.envelope import page

__all__ = ["Call", "FunctionApp", "Reply", "page"]
