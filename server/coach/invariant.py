"""The checked invariant of every answer: no sentence names a bin the item's own rules contradict.

Templates, rule texts spliced together and language models can each, on their own, say the one
thing this product must never say ("영수증은 … 종이류"). So nothing is sent on trust: the chat
and the scan composer pass their sentences through :func:`enforce`, and the LLM relay checks each
streamed sentence with :func:`contradicts` (through :func:`server.coach.guard.check_answer`).

A sentence may send the item to the bins in ``allowed`` (what its rules say, under their own
conditions) and, for a sentence about a part, to that part's bin (``Sentence.scope``).

A sentence that states a condition ("플라스틱 뚜껑이면 …": ``Sentence.condition``, for a name
shared by things of different bins) is held to the bins of the item that condition stands for,
read from that item's own rules, and to nothing else: not the answer's ``allowed``, not a
scope. It must say its condition in its text; a conditional sentence that does not is treated
as naming every one of its bins wrongly.
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


def sentence_contradicts(sentence: Sentence, allowed: Iterable[Stream]) -> list[Stream]:
    """The bins ``sentence`` names that neither ``allowed`` nor its scope permit or, for a
    sentence under a stated condition, that the condition's own item does not permit."""
    condition = sentence.condition
    if condition is None:
        return contradicts(sentence.text, frozenset(allowed) | sentence.scope)
    if not _states(sentence.text, condition.said):
        return named_bins(sentence.text)
    return contradicts(sentence.text, condition.allowed)


def _states(text: str, condition: str) -> bool:
    """Whether ``text`` says ``condition`` before naming any bin."""
    at = text.lower().find(condition.lower())
    if at < 0 or not condition.strip():
        return False
    return not named_bins(text[:at])


def enforce(sentences: Sequence[Sentence], allowed: Iterable[Stream]) -> list[Sentence]:
    """``sentences`` without the ones that name a contradicting bin.

    A later sentence that contradicts (a generic step spliced in, a filler) is dropped and
    logged: the answer is still complete without it. The first sentence is the direct answer:
    if it contradicts, no repair is honest, so :class:`ContradictionError` is raised.
    """
    permitted = frozenset(allowed)
    kept: list[Sentence] = []
    for index, sentence in enumerate(sentences):
        wrong = sentence_contradicts(sentence, permitted)
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
