"""Streaming from an OpenAI-compatible chat endpoint, with our deadlines and error mapping.

Both LLM backends (scan coaching and chat) go through :func:`stream_completion`. It turns the
SDK's stream into plain text deltas and turns every way the upstream can let us down into one
exception, :class:`UpstreamFailure`, whose ``reason`` ends up in the done event. Nothing here
retries: a live coaching stream cannot afford a second round trip, it falls back instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

import openai
from openai import AsyncOpenAI
from openai.types.chat import ChatCompletionStreamOptionsParam

from server.metrics import LLM_FALLBACKS, LLM_TOKENS
from server.settings import OpenAISettings

#: Why the LLM path handed over to the embedded composer; sent as ``fallback_reason``.
TIMEOUT: Final = "timeout"
RATE_LIMITED: Final = "rate_limited"
UPSTREAM_ERROR: Final = "upstream_error"
UNREACHABLE: Final = "unreachable"
EMPTY_RESPONSE: Final = "empty_response"
#: The model named a bin the item's rules contradict (server.coach.guard.check_answer).
CONTRADICTS_RULE: Final = "contradicts_rule"
REASONS: Final = (
    TIMEOUT,
    RATE_LIMITED,
    UPSTREAM_ERROR,
    UNREACHABLE,
    EMPTY_RESPONSE,
    CONTRADICTS_RULE,
)
for _reason in REASONS:  # each fallback's series exists, at 0, before the first one
    LLM_FALLBACKS.labels(reason=_reason)


#: Ask for the token counts in the stream's last chunk (servers that do not know it ignore it).
_USAGE: ChatCompletionStreamOptionsParam = {"include_usage": True}


class UpstreamFailure(Exception):
    """The upstream did not deliver a usable completion; ``reason`` is one of the constants."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


def make_client(settings: OpenAISettings) -> AsyncOpenAI:
    """One client per backend; the SDK's own retries are off because we fall back instead."""
    api_key = settings.api_key.get_secret_value() if settings.api_key else None
    return AsyncOpenAI(
        api_key=api_key,
        base_url=settings.base_url,
        timeout=settings.timeout_s,
        max_retries=0,
    )


def classify_error(exc: BaseException) -> UpstreamFailure:
    # Order matters: APITimeoutError is an APIConnectionError, which is an APIError.
    if isinstance(exc, UpstreamFailure):
        return exc
    if isinstance(exc, (TimeoutError, openai.APITimeoutError)):
        return UpstreamFailure(TIMEOUT, type(exc).__name__)
    if isinstance(exc, openai.RateLimitError):
        return UpstreamFailure(RATE_LIMITED, str(exc)[:200])
    if isinstance(exc, openai.APIConnectionError):
        return UpstreamFailure(UNREACHABLE, str(exc)[:200])
    return UpstreamFailure(UPSTREAM_ERROR, f"{type(exc).__name__}: {str(exc)[:200]}")


@dataclass(frozen=True, slots=True)
class Deadlines:
    """``first_token_s`` bounds the wait for the first visible text, ``total_s`` the whole."""

    first_token_s: float
    total_s: float

    @classmethod
    def from_settings(cls, settings: OpenAISettings) -> Deadlines:
        return cls(
            first_token_s=min(settings.first_token_timeout_s, settings.timeout_s),
            total_s=settings.timeout_s,
        )


async def stream_completion(
    client: AsyncOpenAI,
    *,
    model: str,
    messages: Sequence[dict[str, str]],
    deadlines: Deadlines,
    max_tokens: int = 320,
    temperature: float = 0.2,
) -> AsyncGenerator[str, None]:
    """Yield the completion's text deltas; raise :class:`UpstreamFailure` on any failure.

    The first-token deadline covers connecting, the server's queueing and prompt processing,
    which is where a stuck upstream shows; after that only the total deadline applies. A
    deadline that fires closes the HTTP response so no socket outlives the call.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    first_deadline = start + deadlines.first_token_s
    total_deadline = start + deadlines.total_s
    got_text = False
    stream: Any = None
    #: Token counts: the upstream's own ``usage`` where it reports one (OpenAI does with
    #: ``include_usage``); else one completion token per content delta, which is what
    #: llama.cpp's server streams (0.3.36 ignores ``stream_options``), and no prompt count.
    usage: Any = None
    deltas = 0

    def remaining() -> float:
        limit = total_deadline if got_text else min(first_deadline, total_deadline)
        return limit - loop.time()

    try:
        stream = await asyncio.wait_for(
            client.chat.completions.create(
                model=model,
                messages=list(messages),  # type: ignore[arg-type]
                stream=True,
                stream_options=_USAGE,
                max_tokens=max_tokens,
                temperature=temperature,
            ),
            timeout=max(remaining(), 0.001),
        )
        iterator = stream.__aiter__()
        while True:
            budget = remaining()
            if budget <= 0:
                raise UpstreamFailure(TIMEOUT, "deadline passed")
            try:
                chunk = await asyncio.wait_for(anext(iterator), timeout=budget)
            except StopAsyncIteration:
                break
            if getattr(chunk, "usage", None) is not None:
                usage = chunk.usage
            for text in _texts(chunk.choices):
                got_text = True
                deltas += 1
                yield text
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        raise classify_error(exc) from exc
    finally:
        _count_tokens(usage, deltas)
        if stream is not None:
            # Closing may itself fail on a broken connection; the failure is already reported.
            with contextlib.suppress(Exception):
                await stream.close()
    if not got_text:
        raise UpstreamFailure(EMPTY_RESPONSE, "the completion had no text")


def _count_tokens(usage: Any, deltas: int) -> None:
    if usage is not None:
        LLM_TOKENS.labels(kind="prompt").inc(max(0, usage.prompt_tokens or 0))
        LLM_TOKENS.labels(kind="completion").inc(max(0, usage.completion_tokens or 0))
    elif deltas:
        LLM_TOKENS.labels(kind="completion").inc(deltas)


def _texts(choices: Iterable[Any]) -> Iterator[str]:
    for choice in choices:
        content = getattr(choice.delta, "content", None)
        if content:
            yield content


class CitationFilter:
    """Removes ``[rule.id]`` citations from a token stream and records them.

    The system prompt asks the model to cite rule ids in square brackets. Citations are for us,
    not for the person reading, so they are cut out of the deltas as they stream. Tokens arrive
    in arbitrary pieces, so text after an opening bracket is held back until the bracket closes
    (or grows too long to be a citation, in which case it is released as ordinary text).
    Whitespace is held back too, so that "rinse it [stream.glass]." reads "rinse it." and not
    "rinse it ." once the citation is gone.
    """

    _MAX_HELD = 80
    _ID = re.compile(r"^[a-z0-9_.-]+$")
    _PUNCTUATION = frozenset(".,!?;:)")

    def __init__(self, known_ids: Iterable[str]) -> None:
        self._known = set(known_ids)
        self._held = ""
        self._space = ""
        self._after_citation = False
        self.cited: list[str] = []

    def feed(self, text: str) -> str:
        out: list[str] = []
        for ch in text:
            if self._held:
                self._held += ch
                if ch == "]":
                    self._close(out)
                elif len(self._held) > self._MAX_HELD:
                    out.append(self._space + self._held)
                    self._held = self._space = ""
            elif ch == "[":
                self._held = ch
            elif ch.isspace():
                if not (self._after_citation and self._space):
                    self._space += ch
            else:
                if not (self._after_citation and ch in self._PUNCTUATION):
                    out.append(self._space)
                out.append(ch)
                self._space = ""
                self._after_citation = False
        return "".join(out)

    def flush(self) -> str:
        """The end of the stream: an unclosed bracket is text; trailing whitespace is dropped."""
        out = self._space + self._held if self._held else ""
        self._held = self._space = ""
        return out

    def _close(self, out: list[str]) -> None:
        bracket, self._held = self._held, ""
        inner = [part.strip() for part in bracket[1:-1].replace(";", ",").split(",")]
        ids = [part for part in inner if part]
        if ids and all(self._ID.match(i) for i in ids) and any(i in self._known for i in ids):
            for rule_id in ids:
                if rule_id in self._known and rule_id not in self.cited:
                    self.cited.append(rule_id)
            self._after_citation = True  # keep the space; drop it if punctuation follows
            return
        out.append(self._space + bracket)
        self._space = ""
        self._after_citation = False
