"""OpenAI Responses API (``POST /v1/responses`` with ``stream: true``): its event stream and errors.

Every event is ``event: response.X`` with a JSON ``data`` whose ``type`` repeats the name and
whose ``sequence_number`` counts from 0. A response opens with ``response.created`` and
``response.in_progress``, streams each output item (``output_item.added`` ... ``.done``)
with its own deltas, and closes with ``response.completed`` (or ``response.incomplete``, or,
when it fails, ``error`` then ``response.failed``), which carries the whole response and its
usage. Error bodies and headers are the OpenAI API's (:mod:`streamreel.providers.openai`).

:func:`response_events` builds that stream for a response made of reasoning, message
(with annotations), function-call, search-call, apply-patch, shell and MCP items, each given as the deltas it streams
in; strategies, ``streamreel synth`` and tests build on it. Ids derive from the content, so the same input gives the same bytes.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Mapping, Sequence, Union

from ..sse import Event
from . import Dialect, Synth, compact, register
from . import openai as _openai

__all__ = [
    "MessageItem",
    "ReasoningItem",
    "FunctionCallItem",
    "SearchCallItem",
    "PatchCallItem",
    "ShellCallItem",
    "McpListToolsItem",
    "McpCallItem",
    "SEARCH_CALLS",
    "Item",
    "response_events",
    "final_response",
    "stream_error_events",
    "OpenAIResponses",
    "DIALECT",
]

FINAL_EVENTS = ("response.completed", "response.incomplete", "response.failed")
SEARCH_CALLS = ("file_search_call", "web_search_call")


@dataclass(frozen=True)
class MessageItem:
    """An assistant message with one ``output_text`` part, streamed as ``response.output_text.delta`` s.

    Each of ``annotations`` is (the number of deltas before it, the annotation: a
    ``file_citation``, ``url_citation``...), sent as ``response.output_text.annotation.added``.
    """

    deltas: tuple[str, ...]
    id: str = ""
    annotations: tuple[tuple[int, Mapping[str, Any]], ...] = ()


@dataclass(frozen=True)
class ReasoningItem:
    """A reasoning item; its summary streams as ``response.reasoning_summary_text.delta`` s (none: no summary)."""

    summary_deltas: tuple[str, ...] = ()
    id: str = ""
    encrypted_content: str | None = None


@dataclass(frozen=True)
class FunctionCallItem:
    """A function call whose arguments JSON streams as ``response.function_call_arguments.delta`` s."""

    name: str
    argument_deltas: tuple[str, ...]
    call_id: str = ""
    id: str = ""


@dataclass(frozen=True)
class SearchCallItem:
    """A search the API runs itself (``kind``: ``file_search_call`` or ``web_search_call``):
    ``in_progress``, ``searching``, ``completed``, with no deltas. With ``results`` the item
    carries what the request asked to include (a file search's results, a web search's sources)."""

    kind: str
    query: str
    results: bool = False
    id: str = ""


@dataclass(frozen=True)
class PatchCallItem:
    """An ``apply_patch_call``: the patch's diff streams as ``apply_patch_call_operation_diff.delta`` s."""

    path: str
    diff_deltas: tuple[str, ...]
    operation: str = "create_file"
    call_id: str = ""
    id: str = ""


@dataclass(frozen=True)
class ShellCallItem:
    """A ``shell_call``: each command streams as ``shell_call_command.delta`` s after its ``.added``."""

    commands: tuple[tuple[str, ...], ...]
    call_id: str = ""
    id: str = ""


@dataclass(frozen=True)
class McpListToolsItem:
    """An ``mcp_list_tools`` item: the tools an MCP server offers, in progress then completed, no deltas."""

    server_label: str
    tools: tuple[str, ...]
    id: str = ""


@dataclass(frozen=True)
class McpCallItem:
    """An ``mcp_call`` the API makes itself: its arguments stream as ``mcp_call_arguments.delta`` s
    between ``mcp_call.in_progress`` events; ``output`` is what the server answered."""

    server_label: str
    name: str
    argument_deltas: tuple[str, ...]
    output: str = ""
    id: str = ""


Item = Union[MessageItem, ReasoningItem, FunctionCallItem, SearchCallItem, PatchCallItem, ShellCallItem, McpListToolsItem, McpCallItem]


def _stable_id(prefix: str, seed: str) -> str:
    return prefix + hashlib.sha256(seed.encode()).hexdigest()[:48]


def _tokens(text: str) -> int:
    return max(1, (len(text) + 3) // 4) if text else 0


def response_events(
    items: Sequence[Item],
    *,
    model: str = "gpt-5-2025-08-07",
    response_id: str | None = None,
    created_at: int = 1758034836,
    status: str = "completed",
    incomplete_reason: str = "max_output_tokens",
    input_tokens: int = 12,
    output_tokens: int | None = None,
    reasoning_tokens: int | None = None,
    background: bool = False,
) -> tuple[Event, ...]:
    """The events of one streamed response (``t`` = 0; give them times with a timing function).

    ``status`` is ``completed`` (ends in ``response.completed``) or ``incomplete`` (ends in
    ``response.incomplete`` with ``incomplete_details.reason`` = ``incomplete_reason``). With
    ``background`` the response is created queued (``response.queued``) before it runs, as a
    ``background: true`` request's is.
    ``output_tokens`` and ``reasoning_tokens`` (the final usage) default to estimates from
    the streamed text. The final event's ``response`` is :func:`final_response` of the events.
    """
    if status not in ("completed", "incomplete"):
        raise ValueError(f"status must be completed or incomplete, got {status!r}; a failed response is a stream error (stream_error_events)")
    fingerprint = repr(items)
    rid = response_id or _stable_id("resp_", fingerprint)
    out: list[Event] = []

    def emit(kind: str, **fields: Any) -> None:
        out.append(Event(event=kind, data=compact({"type": kind, **fields, "sequence_number": len(out)})))

    response: dict[str, Any] = {
        "id": rid,
        "object": "response",
        "created_at": created_at,
        "status": "in_progress",
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": model,
        "output": [],
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "default",
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": None,
        "user": None,
        "metadata": {},
    }
    if background:
        queued = {**response, "status": "queued", "background": True}
        emit("response.created", response=queued)
        emit("response.queued", response=queued)
        response = {**response, "background": True}
    else:
        emit("response.created", response=response)
    emit("response.in_progress", response=response)
    done: list[dict[str, Any]] = []
    produced, reasoned = "", ""
    for index, item in enumerate(items):
        seed = f"{fingerprint}{index}"
        if isinstance(item, ReasoningItem):
            iid = item.id or _stable_id("rs_", seed)
            added: dict[str, Any] = {"id": iid, "type": "reasoning", "summary": []}
            if item.encrypted_content is not None:
                added["encrypted_content"] = item.encrypted_content
            emit("response.output_item.added", output_index=index, item=added)
            summary: list[dict[str, str]] = []
            if item.summary_deltas:
                text = "".join(item.summary_deltas)
                emit("response.reasoning_summary_part.added", item_id=iid, output_index=index, part={"type": "summary_text", "text": ""}, summary_index=0)
                for d in item.summary_deltas:
                    emit("response.reasoning_summary_text.delta", delta=d, item_id=iid, output_index=index, summary_index=0)
                emit("response.reasoning_summary_text.done", item_id=iid, output_index=index, summary_index=0, text=text)
                emit("response.reasoning_summary_part.done", item_id=iid, output_index=index, part={"type": "summary_text", "text": text}, summary_index=0)
                summary.append({"type": "summary_text", "text": text})
                reasoned += text
            final: dict[str, Any] = {**added, "summary": summary}
        elif isinstance(item, MessageItem):
            iid = item.id or _stable_id("msg_", seed)
            text = "".join(item.deltas)
            emit("response.output_item.added", output_index=index, item={"id": iid, "type": "message", "status": "in_progress", "content": [], "role": "assistant"})
            emit("response.content_part.added", content_index=0, item_id=iid, output_index=index, part={"type": "output_text", "annotations": [], "logprobs": [], "text": ""})
            notes = sorted(item.annotations, key=lambda a: a[0])
            k = 0
            for i, d in enumerate((*item.deltas, None)):
                while k < len(notes) and notes[k][0] <= i:
                    emit("response.output_text.annotation.added", annotation=dict(notes[k][1]), annotation_index=k, content_index=0, item_id=iid, output_index=index)
                    k += 1
                if d is not None:
                    emit("response.output_text.delta", content_index=0, delta=d, item_id=iid, logprobs=[], output_index=index)
            part = {"type": "output_text", "annotations": [dict(a) for _, a in notes], "logprobs": [], "text": text}
            emit("response.output_text.done", content_index=0, item_id=iid, logprobs=[], output_index=index, text=text)
            emit("response.content_part.done", content_index=0, item_id=iid, output_index=index, part=part)
            final = {"id": iid, "type": "message", "status": "completed", "content": [part], "role": "assistant"}
            produced += text
        elif isinstance(item, FunctionCallItem):
            iid = item.id or _stable_id("fc_", seed)
            call_id = item.call_id or "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
            arguments = "".join(item.argument_deltas)
            emit("response.output_item.added", output_index=index, item={"id": iid, "type": "function_call", "status": "in_progress", "arguments": "", "call_id": call_id, "name": item.name})
            for d in item.argument_deltas:
                emit("response.function_call_arguments.delta", delta=d, item_id=iid, output_index=index)
            emit("response.function_call_arguments.done", arguments=arguments, item_id=iid, output_index=index)
            final = {"id": iid, "type": "function_call", "status": "completed", "arguments": arguments, "call_id": call_id, "name": item.name}
            produced += arguments
        elif isinstance(item, SearchCallItem):
            if item.kind not in SEARCH_CALLS:
                raise ValueError(f"a search call is one of {', '.join(SEARCH_CALLS)}, got {item.kind!r}")
            iid = item.id or _stable_id("fs_" if item.kind == "file_search_call" else "ws_", seed)
            added = {"id": iid, "type": item.kind, "status": "in_progress"}
            if item.kind == "file_search_call":
                added.update(queries=[], results=None)
                found = [{"file_id": "file-9RhPAs9YqVajpGXRfcgavJ", "filename": "notes.txt", "score": 0.92, "text": item.query, "attributes": {}}] if item.results else None
                final = {**added, "status": "completed", "queries": [item.query], "results": found}
            else:
                action: dict[str, Any] = {"type": "search", "query": item.query}
                if item.results:
                    action["sources"] = [{"type": "url", "url": "https://en.wikipedia.org/wiki/Paris"}]
                final = {**added, "status": "completed", "action": action}
            emit("response.output_item.added", output_index=index, item=added)
            for phase in ("in_progress", "searching", "completed"):
                emit(f"response.{item.kind}.{phase}", output_index=index, item_id=iid)
        elif isinstance(item, PatchCallItem):
            iid = item.id or _stable_id("apc_", seed)
            call_id = item.call_id or "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
            diff = "".join(item.diff_deltas)
            added = {"id": iid, "type": "apply_patch_call", "status": "in_progress", "call_id": call_id, "operation": {"type": item.operation, "diff": "", "path": item.path}}
            emit("response.output_item.added", output_index=index, item=added)
            for d in item.diff_deltas:
                emit("response.apply_patch_call_operation_diff.delta", item_id=iid, output_index=index, delta=d)
            emit("response.apply_patch_call_operation_diff.done", item_id=iid, output_index=index, diff=diff)
            final = {**added, "status": "completed", "operation": {**added["operation"], "diff": diff}}
            produced += diff
        elif isinstance(item, ShellCallItem):
            iid = item.id or _stable_id("sh_", seed)
            call_id = item.call_id or "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
            added = {"id": iid, "type": "shell_call", "status": "in_progress", "action": {"commands": [], "max_output_length": None, "timeout_ms": None}, "call_id": call_id}
            emit("response.output_item.added", output_index=index, item=added)
            commands = []
            for k, pieces in enumerate(item.commands):
                emit("response.shell_call_command.added", output_index=index, command_index=k, command="")
                for d in pieces:
                    emit("response.shell_call_command.delta", output_index=index, command_index=k, delta=d)
                commands.append("".join(pieces))
                emit("response.shell_call_command.done", output_index=index, command_index=k, command=commands[-1])
            final = {**added, "status": "completed", "action": {"commands": commands, "max_output_length": 8912, "timeout_ms": None}}
            produced += "".join(commands)
        elif isinstance(item, McpListToolsItem):
            iid = item.id or _stable_id("mcpl_", seed)
            added = {"id": iid, "type": "mcp_list_tools", "server_label": item.server_label, "tools": []}
            emit("response.output_item.added", output_index=index, item=added)
            emit("response.mcp_list_tools.in_progress", output_index=index, item_id=iid)
            emit("response.mcp_list_tools.completed", output_index=index, item_id=iid)
            tools = [{"annotations": {"read_only": False}, "description": f"{name} (synthesized)", "input_schema": {"type": "object", "properties": {}}, "name": name} for name in item.tools]
            final = {**added, "tools": tools}
        elif isinstance(item, McpCallItem):
            iid = item.id or _stable_id("mcp_", seed)
            arguments = "".join(item.argument_deltas)
            added = {"id": iid, "type": "mcp_call", "status": "in_progress", "arguments": "", "error": None, "name": item.name, "output": None, "server_label": item.server_label}
            emit("response.output_item.added", output_index=index, item=added)
            emit("response.mcp_call.in_progress", output_index=index, item_id=iid)
            for d in item.argument_deltas:
                emit("response.mcp_call_arguments.delta", output_index=index, item_id=iid, delta=d)
            emit("response.mcp_call.in_progress", output_index=index, item_id=iid)
            emit("response.mcp_call_arguments.done", output_index=index, item_id=iid, arguments=arguments)
            emit("response.mcp_call.completed", output_index=index, item_id=iid)
            final = {**added, "status": "completed", "arguments": arguments, "output": item.output}
            produced += arguments
        else:
            raise TypeError(f"not an output item: {item!r}")
        emit("response.output_item.done", output_index=index, item=final)
        done.append(final)
    reasoning = _tokens(reasoned) if reasoning_tokens is None else reasoning_tokens
    total_out = _tokens(produced) + reasoning if output_tokens is None else output_tokens
    closing = {
        **response,
        "status": status,
        "incomplete_details": {"reason": incomplete_reason} if status == "incomplete" else None,
        "output": done,
        "usage": {
            "input_tokens": input_tokens,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens": total_out,
            "output_tokens_details": {"reasoning_tokens": reasoning},
            "total_tokens": input_tokens + total_out,
        },
    }
    emit("response.completed" if status == "completed" else "response.incomplete", response=closing)
    return tuple(out)


def final_response(events: Sequence[Event]) -> dict[str, Any] | None:
    """The ``response`` object of the stream's final event (``completed``, ``incomplete`` or ``failed``), if it has one."""
    for ev in reversed(events):
        if ev.type in FINAL_EVENTS:
            payload = ev.json(default=None)
            if isinstance(payload, dict) and isinstance(payload.get("response"), dict):
                return payload["response"]
    return None


def stream_error_events(events_before: Sequence[Event], t: float, status: int, message: str | None = None) -> tuple[Event, ...]:
    """What the API sends when a stream fails after ``events_before``: an ``event: error`` whose
    ``error`` object has the type, code and message the API uses for ``status`` and, when the
    stream has announced its response, ``response.failed`` with that response, both numbered
    on from the events before (as in a real ``insufficient_quota`` failure)."""
    err = _openai.error_body(status, message=message)["error"]
    seq = _next_sequence(events_before)
    code = err["code"] or err["type"]
    detail = {"type": err["type"], "code": code, "message": err["message"], "param": None}
    out = [Event(t=t, event="error", data=compact({"type": "error", "sequence_number": seq, "error": detail}))]
    response = next((p["response"] for p in (ev.json(default=None) for ev in events_before) if isinstance(p, dict) and isinstance(p.get("response"), dict)), None)
    if response is not None:
        failed = {**response, "status": "failed", "error": {"code": code, "message": err["message"]}}
        out.append(Event(t=t, event="response.failed", data=compact({"type": "response.failed", "sequence_number": seq + 1, "response": failed})))
    return tuple(out)


def _next_sequence(events: Sequence[Event]) -> int:
    for ev in reversed(events):
        payload = ev.json(default=None) if ev.data else None
        if isinstance(payload, dict) and isinstance(payload.get("sequence_number"), int):
            return payload["sequence_number"] + 1
    return sum(1 for ev in events if ev.event is not None)


# ---------------------------------------------------------------- the dialect


class OpenAIResponses(Dialect):
    """The Responses API's event stream."""

    name = "openai-responses"
    label = "OpenAI Responses"
    has_thinking = True

    def claims(self, route: str, headers: Mapping[str, str]) -> bool:
        return route.endswith("/responses")

    def claims_events(self, events: Sequence[Event]) -> bool:
        return any(isinstance(ev.type, str) and ev.type.startswith("response.") for ev in events)

    def path(self, model: str | None = None) -> str:
        return "/v1/responses"

    def is_complete(self, events: Sequence[Event]) -> bool:
        data = [e for e in events if not e.is_comment]
        return bool(data) and (data[-1].type in (*FINAL_EVENTS, "error") or data[-1].data == "[DONE]")

    def error_body(self, status: int, *, message: str | None = None, error_type: str | None = None, request_id: str | None = None) -> Any:
        return _openai.error_body(status, message=message, error_type=error_type)

    def error_headers(self, status: int, *, retry_after_s: float | None = None, request_id: str | None = None, should_retry: bool | None = None) -> dict[str, str]:
        return _openai.error_headers(status, retry_after_s=retry_after_s, request_id=request_id, should_retry=should_retry)

    def request_id(self, *parts: object) -> str:
        return _openai.request_id(*parts)

    def stream_error(self, before: Sequence[Event], t: float, error_type: str, message: str | None = None) -> tuple[Event, ...]:
        from .anthropic import status_for

        return stream_error_events(before, t, status_for(error_type), message)

    def delta_text(self, payload: Any) -> str:
        if not isinstance(payload, dict):
            return ""
        kind = payload.get("type")
        if isinstance(kind, str) and kind.startswith("response.") and kind.endswith(".delta"):
            value = payload.get("delta")
            return value if isinstance(value, str) else ""
        return ""

    def usage_tokens(self, payload: Any) -> int | None:
        if isinstance(payload, dict) and payload.get("type") in FINAL_EVENTS:
            usage = (payload.get("response") or {}).get("usage")
            value = usage.get("output_tokens") if isinstance(usage, dict) else None
            return value if isinstance(value, int) and not isinstance(value, bool) else None
        return None

    def stop_reason(self, payload: Any, name: str | None = None) -> str | None:
        if not isinstance(payload, dict):
            return None
        kind = payload.get("type")
        if kind == "error":
            err = payload.get("error") if isinstance(payload.get("error"), dict) else payload
            detail = err.get("code") or err.get("type")
            return f"error: {detail}" if detail and detail != "error" else "error"
        if kind in FINAL_EVENTS:
            response = payload.get("response") or {}
            details = response.get("incomplete_details") if isinstance(response, dict) else None
            if isinstance(details, dict) and details.get("reason"):
                return str(details["reason"])
            return str(response.get("status") or kind.split(".", 1)[1])
        return None

    def synth(self, reply: Synth) -> tuple[Event, ...]:
        items: list[Item] = []
        if reply.thinking:
            items.append(ReasoningItem(reply.thinking))
        if reply.text:
            items.append(MessageItem(reply.text))
        if reply.tool is not None:
            items.append(FunctionCallItem(reply.tool[0], reply.tool[1]))
        named = {"model": reply.model} if reply.model else {}
        return response_events(items, output_tokens=reply.output_tokens, **named)


DIALECT = register(OpenAIResponses())
