"""A small, real HTTP server that speaks the Anthropic Messages API, for tests without mocks.

The analyser runs the real `anthropic` SDK against it over loopback, so the tests cover what
actually goes over the wire: the request body and headers the SDK builds from our arguments, and
the SDK's parsing of a documented response (`Message` with a `tool_use` block and `usage`) or of a
documented error (`{"type": "error", "error": {...}}` with its status code).

By default `POST /v1/messages` answers like a cooperative model: it reads the `[tN] text` lines of
the user message and returns, through the forced tool, one valid result per line, derived
deterministically from keywords so tests can predict it. Usage is plausible rather than exact:
about four characters a token, plus the tool-use system prompt the API adds, and prompt caching
as the API does it: a prefix (tools, then system) ending in a block with `cache_control` is
written to the cache on first use and read from it afterwards, but only if it reaches
`cache_min_tokens` (the API's model-specific minimum; shorter prefixes are silently not cached).

Every request is recorded (method, path, headers, raw body, parsed JSON) with the response sent,
and `misbehave(mode, times)` makes the next `times` requests go wrong in one of the ways a model
or the API can: `DROP_ID`, `WRONG_TYPES`, `NOT_A_LIST`, `TEXT`, an HTTP status (429, 500, 529,
...), or a function that rewrites the default results.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from repazoo_assets_tests.fakes.loopback import LoopbackServer

__all__ = [
    "DROP_ID",
    "NOT_A_LIST",
    "TEXT",
    "WRONG_TYPES",
    "FakeAnthropicServer",
    "RecordedRequest",
    "RecordedResponse",
]

DROP_ID = "drop_id"  # the last line's result is left out
WRONG_TYPES = "wrong_types"  # every result has fields of the wrong type or outside the enum
NOT_A_LIST = "not_a_list"  # `results` is a string, not a list
TEXT = "text"  # a text block and stop_reason end_turn instead of the tool call

Mode = str | int | Callable[[list[dict[str, Any]]], Any]

# What the API adds to the input for tool use when tool_choice is "any" or "tool" (Claude 4 models,
# per the tool-use pricing table); counted into the cacheable prefix.
TOOL_USE_SYSTEM_TOKENS = 313
CHARS_PER_TOKEN = 4

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    500: "api_error",
    529: "overloaded_error",
}
_LINE = re.compile(r"^\[(t\d+)\] ?(.*)$")
_WORD = re.compile(r"[a-z']+")
_HASHTAG = re.compile(r"(?<![\w&#])#(\w*[^\W\d_]\w*)")
_POSITIVE = frozenset("love loved great happy awesome excellent thanks amazing good best wonderful".split())
_NEGATIVE = frozenset("hate hated terrible awful worst angry sad bad broken disappointed".split())
_FLAG_WORDS = {"profanity": {"damn", "shit", "crap"}, "violence": {"kill", "murder"}, "spam": {"giveaway"}}


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lowercased names
    raw: bytes
    body: Any  # the parsed JSON, or None when the body was not JSON

    @property
    def user_text(self) -> str:
        """The text of the last user message (string content or its text blocks)."""
        return _user_text(self.body) if isinstance(self.body, dict) else ""

    @property
    def api_key(self) -> str | None:
        """The key the client sent, from either header the API accepts."""
        bearer = self.headers.get("authorization", "")
        return self.headers.get("x-api-key") or (bearer[7:] if bearer.startswith("Bearer ") else None)

    @property
    def ids(self) -> list[str]:
        """The line ids (t1, t2, ...) of the user message, in order."""
        return [m.group(1) for m in map(_LINE.match, self.user_text.splitlines()) if m]


@dataclass(frozen=True)
class RecordedResponse:
    status: int
    body: dict[str, Any]


def _tokens(text: str) -> int:
    return math.ceil(len(text) / CHARS_PER_TOKEN)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(
            b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text"
        )
    return ""


def _user_text(body: dict[str, Any]) -> str:
    users = [m for m in body.get("messages") or [] if isinstance(m, dict) and m.get("role") == "user"]
    return _text_of(users[-1].get("content")) if users else ""


def default_result(line_id: str, text: str) -> dict[str, Any]:
    """What the fake model answers for one line: keyword counts give the score, hashtags the topics."""
    words = _WORD.findall(text.lower())
    balance = sum(w in _POSITIVE for w in words) - sum(w in _NEGATIVE for w in words)
    score = max(-1.0, min(1.0, 0.4 * balance))
    sentiment = "positive" if score > 0.05 else "negative" if score < -0.05 else "neutral"
    flags = [flag for flag, keys in _FLAG_WORDS.items() if keys.intersection(words)]
    topics = list(dict.fromkeys(t.lower() for t in _HASHTAG.findall(text)))[:3]
    return {"id": line_id, "sentiment": sentiment, "score": score, "risk_flags": flags, "topics": topics}


class FakeAnthropicServer(LoopbackServer):
    """`with FakeAnthropicServer() as server:` ... `anthropic.Anthropic(base_url=server.base_url)`."""

    @property
    def handler_class(self) -> type[BaseHTTPRequestHandler]:
        return _Handler  # defined below

    name = "fake-anthropic"

    def __init__(self, *, cache_min_tokens: int = 1024) -> None:
        self.cache_min_tokens = cache_min_tokens
        self._lock = threading.Lock()
        self._requests: list[RecordedRequest] = []
        self._responses: list[RecordedResponse] = []
        self._modes: deque[Mode] = deque()
        self._cached_prefixes: set[str] = set()
        self._counter = itertools.count(1)

    # --- control and inspection ------------------------------------------------------------------
    def misbehave(self, mode: Mode, times: int = 1) -> None:
        """Make the next `times` requests answer with `mode` instead of the default."""
        if not (isinstance(mode, int) or callable(mode) or mode in (DROP_ID, WRONG_TYPES, NOT_A_LIST, TEXT)):
            raise ValueError(f"unknown mode {mode!r}")
        with self._lock:
            self._modes.extend([mode] * times)

    def reset(self) -> None:
        """Forget requests, responses, pending misbehaviour and the prompt cache."""
        with self._lock:
            self._requests.clear()
            self._responses.clear()
            self._modes.clear()
            self._cached_prefixes.clear()

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def responses(self) -> list[RecordedResponse]:
        with self._lock:
            return list(self._responses)

    # --- the API ---------------------------------------------------------------------------------
    def _handle(self, request: RecordedRequest) -> tuple[int, dict[str, Any], dict[str, str]]:
        with self._lock:
            self._requests.append(request)
            mode = self._modes.popleft() if self._modes else None
            request_id = f"req_fake{next(self._counter):08d}"
        status, body, headers = self._answer(request, mode, request_id)
        with self._lock:
            self._responses.append(RecordedResponse(status, body))
        return status, body, {"request-id": request_id, **headers}

    def _answer(
        self, request: RecordedRequest, mode: Mode | None, request_id: str
    ) -> tuple[int, dict[str, Any], dict[str, str]]:
        if request.method != "POST" or request.path.split("?")[0] != "/v1/messages":
            return _error(404, "Not found", request_id)
        # The key travels as `x-api-key` or, as SDK 2.x sends it, `Authorization: Bearer <key>`.
        if not request.api_key:
            return _error(401, "x-api-key header is required", request_id)
        if not request.headers.get("anthropic-version"):
            return _error(400, "anthropic-version: header is required", request_id)
        body = request.body
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object", request_id)
        problem = _invalid_request(body)
        if problem:
            return _error(400, problem, request_id)
        if isinstance(mode, int):
            return _error(mode, "Overloaded" if mode == 529 else "fake failure", request_id)

        lines = [m.groups() for m in map(_LINE.match, _user_text(body).splitlines()) if m]
        results = [default_result(line_id, text) for line_id, text in lines]
        tool = (body.get("tool_choice") or {}).get("name") or (body.get("tools") or [{}])[0].get("name")
        if mode == TEXT or tool is None:
            content: list[dict[str, Any]] = [{"type": "text", "text": "Here is my analysis of the tweets."}]
            stop_reason = "end_turn"
        else:
            if mode == DROP_ID:
                tool_input: Any = {"results": results[:-1]}
            elif mode == WRONG_TYPES:
                tool_input = {
                    "results": [
                        {"id": r["id"], "sentiment": "great", "score": str(r["score"]), "risk_flags": "none"}
                        for r in results
                    ]
                }
            elif mode == NOT_A_LIST:
                tool_input = {"results": json.dumps(results)}
            elif callable(mode):
                tool_input = mode(results)
            else:
                tool_input = {"results": results}
            content = [
                {"type": "tool_use", "id": f"toolu_fake{request_id[-8:]}", "name": tool, "input": tool_input}
            ]
            stop_reason = "tool_use"
        message = {
            "id": f"msg_fake{request_id[-8:]}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop_reason,
            "stop_sequence": None,
            "usage": self._usage(body, content),
        }
        return 200, message, {}

    def _usage(self, body: dict[str, Any], content: list[dict[str, Any]]) -> dict[str, int]:
        tools = json.dumps(body.get("tools") or [], separators=(",", ":"))
        system = body.get("system") or ""
        prefix = _tokens(tools) + _tokens(_text_of(system))
        if body.get("tools"):
            prefix += TOOL_USE_SYSTEM_TOKENS
        rest = sum(_tokens(_text_of(m.get("content"))) + 4 for m in body["messages"] if isinstance(m, dict))
        marked = isinstance(system, list) and any(
            isinstance(b, dict) and b.get("cache_control") for b in system
        )
        created = read = 0
        if marked and prefix >= self.cache_min_tokens:
            key = hashlib.sha256(f"{body['model']}\0{tools}\0{json.dumps(system)}".encode()).hexdigest()
            with self._lock:
                hit = key in self._cached_prefixes
                self._cached_prefixes.add(key)
            created, read = (0, prefix) if hit else (prefix, 0)
            prefix = 0
        output = sum(_tokens(json.dumps(block.get("input", block.get("text")))) for block in content) + 10
        return {
            "input_tokens": prefix + rest,
            "output_tokens": output,
            "cache_creation_input_tokens": created,
            "cache_read_input_tokens": read,
        }


def _invalid_request(body: dict[str, Any]) -> str | None:
    """The first documented requirement the request breaks, as the API words it, or None."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "model: Field required"
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        return "max_tokens: Field required"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages: at least one message is required"
    choice = body.get("tool_choice")
    names = [t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)]
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") not in names:
        return "tool_choice: Tool not found in tools"
    return None


def _error(status: int, message: str, request_id: str) -> tuple[int, dict[str, Any], dict[str, str]]:
    error = {"type": _ERROR_TYPES.get(status, "api_error"), "message": message}
    headers = {"retry-after": "1"} if status == 429 else {}
    return status, {"type": "error", "error": error, "request_id": request_id}, headers


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAnthropicServer  # set on the subclass made per server
    protocol_version = "HTTP/1.1"  # keep-alive, as the SDK's connection pool expects

    def _serve(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        request = RecordedRequest(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            raw=raw,
            body=parsed,
        )
        status, body, headers = self.fake._handle(request)
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_GET = do_PUT = do_DELETE = _serve

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass  # the tests' output stays clean; requests are recorded instead
