"""Anthropic Messages API: error types and bodies exactly as the API sends them."""

from __future__ import annotations

import json

__all__ = ["ERROR_TYPES", "error_type_for", "error_body", "error_headers", "error_event_data"]

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


def error_type_for(status: int) -> str:
    if status in ERROR_TYPES:
        return ERROR_TYPES[status][0]
    return "api_error" if status >= 500 else "invalid_request_error"


def error_body(status: int, *, message: str | None = None, error_type: str | None = None, request_id: str | None = None) -> dict:
    kind = error_type or error_type_for(status)
    default = ERROR_TYPES.get(status, ("", "Internal server error" if status >= 500 else "Bad request"))[1]
    if error_type and error_type in _BY_TYPE:
        default = _BY_TYPE[error_type][1]
    body: dict = {"type": "error", "error": {"type": kind, "message": message or default}}
    if request_id:
        body["request_id"] = request_id
    return body


def error_headers(status: int, *, retry_after_s: float | None = None, request_id: str | None = None) -> dict[str, str]:
    """Headers the API sends with an error: ``x-should-retry`` drives the SDK's retry decision."""
    headers = {"content-type": "application/json", "x-should-retry": "true" if status in (408, 409, 429) or status >= 500 else "false"}
    if retry_after_s is not None:
        headers["retry-after"] = f"{retry_after_s:g}"
        headers["retry-after-ms"] = f"{retry_after_s * 1000:g}"
    if request_id:
        headers["request-id"] = request_id
    return headers


def error_event_data(error_type: str = "overloaded_error", message: str | None = None) -> str:
    """The ``data`` of a mid-stream ``event: error``, as the API writes it."""
    status = _BY_TYPE.get(error_type, (500, "Internal server error"))
    return json.dumps({"type": "error", "error": {"type": error_type, "message": message or status[1]}}, separators=(",", ":"))
