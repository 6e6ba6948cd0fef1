"""Relays an LLM token stream to the client and hands over to the embedded backend on failure.

Shared by scan coaching and chat so both behave the same way when the upstream fails:

* nothing visible streamed yet: the embedded answer is streamed instead, as if the LLM had
  never been asked, and the done event names the embedded backend and the reason;
* some text already streamed: it cannot be taken back from the client, so a short bridging
  sentence says the answer was cut off and the embedded answer follows it in full. The done
  event then names ``llm+embedded``. Repeating a step is better than leaving a half sentence
  as the last word on what goes in which bin.

Whatever happens, the concatenated deltas equal the final ``text``.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from contextlib import aclosing
from dataclasses import dataclass, field

from protocol.messages import Locale
from server.coach.upstream import EMPTY_RESPONSE, CitationFilter, UpstreamFailure

LLM_BACKEND = "llm"
EMBEDDED_BACKEND = "embedded"
MIXED_BACKEND = "llm+embedded"

_BRIDGE = {
    Locale.KO: "(답변이 끊겼어요. 확인된 안내를 이어서 드릴게요.)",
    Locale.EN: "(The answer was cut off. Here is the checked guidance instead.)",
}


@dataclass(slots=True)
class LLMOutcome:
    """What came out of one upstream stream, filled in while :func:`relay` runs."""

    deltas: list[str] = field(default_factory=list)
    cited: list[str] = field(default_factory=list)
    failure: UpstreamFailure | None = None

    @property
    def text(self) -> str:
        return "".join(self.deltas)

    @property
    def partial(self) -> bool:
        return bool(self.text.strip())

    def rule_ids(self, injected: Iterable[str]) -> list[str]:
        """Cited ids when the model cited any, else every injected id.

        Small models rarely cite; when one does not, everything it was shown is what it could
        have used, so that is what the done event reports.
        """
        return list(self.cited) if self.cited else list(dict.fromkeys(injected))


async def relay(
    upstream: AsyncGenerator[str, None], known_ids: Iterable[str], outcome: LLMOutcome
) -> AsyncGenerator[str, None]:
    """Yield the visible text of ``upstream``; record citations and any failure in ``outcome``."""
    citations = CitationFilter(known_ids)
    started = False
    try:
        async with aclosing(upstream) as source:
            async for raw in source:
                visible = citations.feed(raw)
                if not started:
                    # The deltas must join to the final text, so leading blank space is dropped
                    # here rather than stripped from the text afterwards.
                    visible = visible.lstrip()
                    started = bool(visible)
                if visible:
                    outcome.deltas.append(visible)
                    yield visible
        tail = citations.flush()
        if not started:
            tail = tail.lstrip()
        if tail:
            outcome.deltas.append(tail)
            yield tail
        if not outcome.partial:
            # Only whitespace or citations: nothing the person could read.
            raise UpstreamFailure(EMPTY_RESPONSE, "no visible text")
    except UpstreamFailure as failure:
        outcome.failure = failure
    finally:
        outcome.cited = citations.cited


def bridge(locale: Locale) -> str:
    return _BRIDGE[locale]
