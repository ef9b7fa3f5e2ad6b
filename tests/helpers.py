"""One checker for the envelope and headers of every API response (JupyterHub's tests/utils.py idea)."""

from __future__ import annotations

from typing import Any


def check_envelope(response: Any, status: int, code: str | None = None) -> Any:
    """Assert the status, the contract's envelope and headers; return `data` (or the error)."""
    if not hasattr(response, "get_json"):  # an httpx.Response (e2e tests over real sockets)
        response = _SocketResponse(response)
    assert response.status_code == status, (response.status_code, response.get_data(as_text=True)[:500])
    assert response.headers.get("X-Request-Id"), "every response carries X-Request-Id"
    if status == 204:
        assert response.get_data() == b""
        return None
    body = response.get_json()
    assert isinstance(body, dict), "JSON body expected"
    if status < 400:
        assert body["success"] is True and "data" in body, body
        assert response.headers.get("Cache-Control") == "no-store"
        assert response.headers.get("X-Content-Type-Options") == "nosniff"
        return body["data"]
    assert body["success"] is False, body
    error = body["error"]
    assert set(error) <= {"code", "message", "details"}, error
    assert isinstance(error["message"], str) and "Traceback" not in error["message"]
    assert body["request_id"] == response.headers["X-Request-Id"]
    if code is not None:
        assert error["code"] == code, error
    return error


class _SocketResponse:
    """The few Flask test-response methods check_envelope uses, over an httpx.Response."""

    def __init__(self, response: Any) -> None:
        self.status_code = response.status_code
        self.headers = response.headers
        self._response = response

    def get_json(self) -> Any:
        return self._response.json()

    def get_data(self, as_text: bool = False) -> Any:
        return self._response.text if as_text else self._response.content
