"""Relays an LLM token stream to the client and hands over to the embedded backend on failure.

:func:`stream_answer` is the one implementation of "ask the LLM, fall back to the checked
answer" that scan coaching and chat both use, so both behave the same way when no upstream is
configured (the embedded answer is streamed) and when the upstream fails:

* nothing visible streamed yet: the embedded answer is streamed instead, as if the LLM had
  never been asked, and the done event names the embedded backend and the reason;
* some text already streamed: it cannot be taken back from the client, so a short bridging
  sentence says the answer was cut off and the embedded answer follows it in full. The done
  event then names ``llm+embedded``. Repeating a step is better than leaving a half sentence
  as the last word on what goes in which bin.

Whatever happens, the concatenated deltas equal the final ``text``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach.grounding import Sentence, cited
from server.coach.guard import check_answer
from server.coach.text import stream_sentences
from server.coach.upstream import (
    CONTRADICTS_RULE,
    EMPTY_RESPONSE,
    CitationFilter,
    UpstreamFailure,
)
from server.metrics import LLM_FALLBACKS

log = logging.getLogger(__name__)

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


#: The end of a sentence in a streamed answer: the unit the answer check holds back.
_SENTENCE_END = re.compile(r"[.!?。](?=\s)|\n")


class _Held:
    """Holds streamed text back until its sentence is complete and checked.

    With ``allowed`` set, a sentence reaches the person only after :func:`check_answer` finds
    no bin in it that the item's rules contradict; one that does ends the LLM answer (the
    checked embedded answer follows). The cost is a sentence of latency, not a token's.
    """

    def __init__(self, allowed: frozenset[Stream] | None) -> None:
        self.allowed = allowed
        self.pending = ""

    def feed(self, text: str) -> str:
        if self.allowed is None:
            return text
        self.pending += text
        ends = list(_SENTENCE_END.finditer(self.pending))
        if not ends:
            return ""
        cut = ends[-1].end()
        ready, self.pending = self.pending[:cut], self.pending[cut:]
        return self._checked(ready)

    def flush(self) -> str:
        ready, self.pending = self.pending, ""
        return self._checked(ready) if self.allowed is not None else ready

    def _checked(self, text: str) -> str:
        assert self.allowed is not None
        wrong = check_answer(text, self.allowed)
        if wrong:
            bins = ", ".join(s.value for s in wrong)
            raise UpstreamFailure(CONTRADICTS_RULE, f"named a contradicting bin ({bins})")
        return text


async def relay(
    upstream: AsyncGenerator[str, None],
    known_ids: Iterable[str],
    outcome: LLMOutcome,
    allowed: frozenset[Stream] | None = None,
) -> AsyncGenerator[str, None]:
    """Yield the visible text of ``upstream``; record citations and any failure in ``outcome``.

    With ``allowed`` (the bins the item's rules permit), each sentence is checked before it is
    yielded, and one naming any other bin fails the upstream with ``contradicts_rule``.
    """
    citations = CitationFilter(known_ids)
    held = _Held(allowed)
    started = False
    try:
        async with aclosing(upstream) as source:
            async for raw in source:
                visible = held.feed(citations.feed(raw))
                if not started:
                    # The deltas must join to the final text, so leading blank space is dropped
                    # here rather than stripped from the text afterwards.
                    visible = visible.lstrip()
                    started = bool(visible)
                if visible:
                    outcome.deltas.append(visible)
                    yield visible
        tail = held.feed(citations.flush()) + held.flush()
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


@dataclass(frozen=True, slots=True)
class Answer:
    """How a streamed answer ended: what the backend's done event reports."""

    text: str
    rule_ids: list[str]
    backend: str
    fallback_reason: str | None = None


async def stream_answer(
    locale: Locale,
    checked: Callable[[], Sequence[Sentence]],
    *,
    upstream: AsyncGenerator[str, None] | None = None,
    injected: Sequence[str] = (),
    label: str = "answer",
    tail: Sequence[Sentence] = (),
    allowed: frozenset[Stream] | None = None,
) -> AsyncGenerator[str | Answer, None]:
    """Yield text deltas, then one :class:`Answer` whose ``text`` is their concatenation.

    Without ``upstream`` (no LLM configured, or nothing the LLM may be asked) the ``checked``
    sentences, composed from the rules, are the answer. With one, its visible text is relayed
    (``injected`` are the rule ids it was shown) and, should it fail, the checked sentences
    follow as described above. ``checked`` is only called when its sentences are needed;
    ``label`` names the answer in the fallback's log line. ``allowed`` holds the LLM's answer to
    the bins the item's rules permit, sentence by sentence (see :func:`relay`). ``tail``
    sentences (the district's own rule) follow whichever backend answered: they are checked
    text, so no model can drop or reword them.
    """
    deltas: list[str] = []
    llm_ids: list[str] = []
    lead = ""
    backend = EMBEDDED_BACKEND
    reason: str | None = None
    if upstream is None:
        sentences = list(checked())
    else:
        outcome = LLMOutcome()
        # aclosing: a consumer that stops early (scan cancelled) closes the HTTP response now,
        # not whenever the garbage collector finalises the generators.
        async with aclosing(relay(upstream, injected, outcome, allowed)) as relayed:
            async for delta in relayed:
                yield delta
        if outcome.failure is None:
            deltas = list(outcome.deltas)
            async for delta in stream_sentences([s.text for s in tail], lead=" "):
                deltas.append(delta)
                yield delta
            rule_ids = list(dict.fromkeys([*outcome.rule_ids(injected), *cited(tail)]))
            yield Answer("".join(deltas), rule_ids, LLM_BACKEND)
            return
        log.warning("%s fell back to the embedded answer: %s", label, outcome.failure)
        reason = outcome.failure.reason
        LLM_FALLBACKS.labels(reason=reason).inc()
        sentences = list(checked())
        if outcome.partial:
            sentences.insert(0, Sentence(bridge(locale)))
            deltas = list(outcome.deltas)
            llm_ids = outcome.rule_ids(injected)
            lead = " "
            backend = MIXED_BACKEND
    sentences.extend(tail)
    async for delta in stream_sentences([s.text for s in sentences], lead=lead):
        deltas.append(delta)
        yield delta
    rule_ids = list(dict.fromkeys([*llm_ids, *cited(sentences)]))
    yield Answer("".join(deltas), rule_ids, backend, reason)
