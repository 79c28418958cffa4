"""Anthropic on Vertex AI: the Messages stream on Google's paths, with Google's gateway errors.

``POST /v1/projects/{project}/locations/{region}/publishers/anthropic/models/{model}:streamRawPredict``
carries the Messages API body (``anthropic_version`` instead of a header, the model in the
path) and answers with the same SSE events as the Messages API, ``event: error`` included.
What differs is who answers an error before the stream: Google's gateway turns away quota
(429), authentication (401, 403) and unknown models (404) in its own JSON shape
(``{"error": {"code": 429, "message": ..., "status": "RESOURCE_EXHAUSTED"}}``), while the
model's own failures (529 overloaded, 500) keep the Anthropic shape. ``anthropic.AnthropicVertex``
maps both to the same exception classes by status.
"""

from __future__ import annotations

from typing import Any, Mapping

from . import register
from . import gemini as _google
from .anthropic import Anthropic

__all__ = ["GATEWAY_STATUSES", "AnthropicVertex", "DIALECT"]

GATEWAY_STATUSES = frozenset({401, 403, 404, 429})
"""Statuses Google's gateway answers itself, in Google's error shape."""


class AnthropicVertex(Anthropic):
    name = "anthropic-vertex"
    label = "Anthropic on Vertex AI"

    def claims(self, route: str, headers: Mapping[str, str]) -> bool:
        return "/publishers/anthropic/models/" in route and route.endswith((":streamRawPredict", ":rawPredict"))

    def claims_events(self, events: Any) -> bool:
        return False  # the events are the Messages API's: only the path tells Vertex apart

    def path(self, model: str | None = None) -> str:
        return f"/v1/projects/my-project/locations/us-east5/publishers/anthropic/models/{model or 'claude-sonnet-4-5@20250929'}:streamRawPredict"

    def error_body(self, status: int, *, message: str | None = None, error_type: str | None = None, request_id: str | None = None) -> Any:
        if status in GATEWAY_STATUSES:
            return _google.error_body(status, message=message, error_type=error_type if error_type and error_type.isupper() else None)
        return super().error_body(status, message=message, error_type=error_type, request_id=request_id)

    def error_bytes(self, status: int, body: Any) -> bytes:
        return _google.error_bytes(body) if status in GATEWAY_STATUSES else super().error_bytes(status, body)

    def error_headers(self, status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
        if status in GATEWAY_STATUSES:
            return _google.error_headers(status, retry_after_s=retry_after_s, should_retry=should_retry)
        return super().error_headers(status, retry_after_s=retry_after_s, request_id=request_id, should_retry=should_retry)


DIALECT = register(AnthropicVertex())
