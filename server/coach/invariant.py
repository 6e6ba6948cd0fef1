"""The checked invariant of every answer: no sentence names a bin the item's own rules contradict.

Templates, rule texts spliced together and language models can each, on their own, say the one
thing this product must never say ("영수증은 … 종이류"). So nothing is sent on trust: the chat
and the scan composer pass their sentences through :func:`enforce`, and the LLM relay checks each
streamed sentence with :func:`contradicts` (through :func:`server.coach.guard.check_answer`).

A sentence may send the item to the bins in ``allowed`` (what its rules say, under their own
conditions) and, for a sentence about a part, to that part's bin (``Sentence.scope``).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence

from protocol.streams import Stream
from server.coach.bins import named_bins
from server.coach.grounding import Sentence
from server.errors import WasteCoachError

log = logging.getLogger(__name__)


class ContradictionError(WasteCoachError):
    """An answer's first sentence names a bin the item's rules contradict: a bug, never sent."""


def contradicts(text: str, allowed: Iterable[Stream]) -> list[Stream]:
    """The bins ``text`` sends the reader to that are not in ``allowed``."""
    permitted = set(allowed)
    return [stream for stream in named_bins(text) if stream not in permitted]


def enforce(sentences: Sequence[Sentence], allowed: Iterable[Stream]) -> list[Sentence]:
    """``sentences`` without the ones that name a contradicting bin.

    A later sentence that contradicts (a generic step spliced in, a filler) is dropped and
    logged: the answer is still complete without it. The first sentence is the direct answer:
    if it contradicts, no repair is honest, so :class:`ContradictionError` is raised.
    """
    permitted = frozenset(allowed)
    kept: list[Sentence] = []
    for index, sentence in enumerate(sentences):
        wrong = contradicts(sentence.text, permitted | sentence.scope)
        if not wrong:
            kept.append(sentence)
            continue
        bins = ", ".join(s.value for s in wrong)
        if index == 0:
            raise ContradictionError(
                f"the direct answer names a contradicting bin ({bins}): {sentence.text!r}"
            )
        log.warning("dropped a sentence naming a contradicting bin (%s): %r", bins, sentence.text)
    return kept
