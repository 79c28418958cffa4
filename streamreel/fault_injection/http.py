"""``http``: answer the first k requests with the provider's real HTTP error instead of the stream."""

from __future__ import annotations

from dataclasses import dataclass

from .. import providers
from ..pipeline import Plan
from .base import Context, RequestFault, register, spec_field

__all__ = ["Http"]


@register
@dataclass(frozen=True)
class Http(RequestFault):
    """Answer ``times`` requests with HTTP ``status`` and the provider's JSON error body and
    headers (``x-should-retry``, ``retry-after``/``retry-after-ms`` when ``retry_after_s``
    is given, the request id), then let the recorded stream through.

    The SDKs raise the same exception they raise against the real API (529 ->
    ``OverloadedError``, 429 -> ``RateLimitError``, ...) and retry by their own policy;
    the replayer counts attempts across requests, so ``times=2`` with the SDK's default
    ``max_retries=2`` ends in the stream on the third request.
    """

    name = "http"

    status: int = spec_field("status", "int", default=529, positional=True, low=400, high=599, help="HTTP status, 400-599")
    times: int | None = spec_field("times", "int", default=1, low=1, help="how many requests get the error before the stream goes through")
    retry_after_s: float | None = spec_field("retry_after", "s", default=None, help="retry-after to send (seconds, up to an hour; 10ms also works)")
    should_retry: bool | None = spec_field("should_retry", "bool", default=None, help="x-should-retry (default: true for 408, 409, 429, 5xx)")
    error_type: str | None = spec_field("type", "str", default=None, help="error type in the body (default: the provider's for the status)")
    message: str | None = spec_field("message", "str", default=None, help="error message (default: the API's usual one)")

    def __post_init__(self) -> None:
        if not 400 <= self.status <= 599:
            raise ValueError(f"status must be an HTTP error status (400-599), got {self.status}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be >= 1, got {self.times}")
        if self.retry_after_s is not None and not self.retry_after_s >= 0:
            raise ValueError(f"retry_after must be >= 0, got {self.retry_after_s!r}")

    def describe(self, attempt: int, ctx: Context) -> str:
        return f"answered HTTP {self.status} instead of the stream ({attempt + 1} of {self.times or 'every'})"

    def intercept(self, attempt: int, ctx: Context) -> Plan | None:
        if self.times is not None and attempt >= self.times:
            return None
        dialect = providers.get(ctx.provider)
        rid = dialect.request_id(str(self), attempt, ctx.seed)
        body = dialect.error_body(self.status, message=self.message, error_type=self.error_type, request_id=rid)
        headers = dialect.error_headers(self.status, retry_after_s=self.retry_after_s, request_id=rid, should_retry=self.should_retry)
        return Plan(
            status=self.status,
            headers=headers,
            headers_at_ms=ctx.interaction.response.headers_at,
            body=dialect.error_bytes(self.status, body),
        )
