"""OpenAI Chat Completions and Responses: error bodies as the API sends them."""

from __future__ import annotations

__all__ = ["ERROR_TYPES", "error_body", "error_headers"]

ERROR_TYPES: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("invalid_request_error", "unsupported_country_region_territory", "Country, region, or territory not supported"),
    404: ("invalid_request_error", "model_not_found", "The model does not exist or you do not have access to it."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests. Please try again later."),
    500: ("server_error", None, "The server had an error while processing your request. Sorry about that!"),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
}


def error_body(status: int, *, message: str | None = None, error_type: str | None = None) -> dict:
    kind, code, default = ERROR_TYPES.get(status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error"))
    return {"error": {"message": message or default, "type": error_type or kind, "param": None, "code": code}}


def error_headers(status: int, *, retry_after_s: float | None = None) -> dict[str, str]:
    headers = {"content-type": "application/json", "x-should-retry": "true" if status in (408, 409, 429) or status >= 500 else "false"}
    if retry_after_s is not None:
        headers["retry-after"] = f"{retry_after_s:g}"
        headers["retry-after-ms"] = f"{retry_after_s * 1000:g}"
    return headers
