"""Anthropic Messages API: error types, bodies, headers and the mid-stream ``event: error``, as the API sends them."""

from __future__ import annotations

import hashlib
import json
import math

from ..sse import Event

__all__ = ["ERROR_TYPES", "error_type_for", "status_for", "error_body", "error_headers", "error_event_data", "error_event", "request_id"]

ERROR_TYPES: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "There was an issue with the format or content of your request."),
    401: ("authentication_error", "invalid x-api-key"),
    402: ("billing_error", "Your credit balance is too low to access the Anthropic API."),
    403: ("permission_error", "Your API key does not have permission to use the specified resource."),
    404: ("not_found_error", "The requested resource could not be found."),
    413: ("request_too_large", "Request exceeds the maximum allowed number of bytes."),
    429: ("rate_limit_error", "Number of request tokens has exceeded your per-minute rate limit."),
    500: ("api_error", "Internal server error"),
    504: ("timeout_error", "Request timed out"),
    529: ("overloaded_error", "Overloaded"),
}
"""HTTP status -> (error type, the API's usual message)."""

_BY_TYPE = {kind: (status, message) for status, (kind, message) in ERROR_TYPES.items()}


def status_for(error_type: str) -> int:
    """The HTTP status the API pairs with an error type (500 for a type it does not know)."""
    return _BY_TYPE.get(error_type, (500, ""))[0]


def error_type_for(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status][0]
    return "api_error" if status >= 500 else "invalid_request_error"


def request_id(*parts: object) -> str:
    """A deterministic request id in the API's shape (``req_011C...``), derived from ``parts``."""
    digest = hashlib.sha256(repr(parts).encode()).hexdigest()
    return "req_011C" + digest[:20]


def error_body(status: int, *, message: str | None = None, error_type: str | None = None, request_id: str | None = None) -> dict:
    kind = error_type or error_type_for(status)
    default = ERROR_TYPES.get(status, ("", "Internal server error" if status >= 500 else "Bad request"))[1]
    if error_type and error_type in _BY_TYPE:
        default = _BY_TYPE[error_type][1]
    body: dict = {"type": "error", "error": {"type": kind, "message": message or default}}
    if request_id:
        body["request_id"] = request_id
    return body


def error_headers(status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
    """Headers the API sends with an error: ``x-should-retry`` drives the SDK's retry decision.

    ``retry-after`` is whole seconds (rounded up, as RFC 9110 allows no fraction);
    ``retry-after-ms``, which the SDKs read first, carries the exact value.
    """
    if should_retry is None:
        should_retry = status in (408, 409, 429) or status >= 500
    headers = {"content-type": "application/json", "x-should-retry": "true" if should_retry else "false"}
    if retry_after_s is not None:
        headers["retry-after"] = str(math.ceil(retry_after_s))
        headers["retry-after-ms"] = f"{retry_after_s * 1000:g}"
    if request_id:
        headers["request-id"] = request_id
    return headers


def error_event_data(error_type: str = "overloaded_error", message: str | None = None) -> str:
    """The ``data`` of a mid-stream ``event: error``, spaced as the API writes it (like its pings)."""
    default = _BY_TYPE.get(error_type, (500, "Internal server error"))[1]
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message or default}})


def error_event(t: float, error_type: str = "overloaded_error", message: str | None = None) -> Event:
    """A mid-stream ``event: error`` at ``t`` ms."""
    return Event(t=t, event="error", data=error_event_data(error_type, message))
