"""`wastecoach eval coach`: stream accuracy of the knowledge base on a labelled question set.

Each question goes through item search exactly as a person's question would; the top item's
stream is what the coach would tell them. The command prints accuracy per language and overall,
the official middle-category accuracy where the question names one, and every miss, so a
change to the knowledge base or to search can only be merged when the number does not drop.

    wastecoach eval coach [--questions PATH] [--min-accuracy 0.9] [--lexical-only]
                          [--chat-questions PATH]

Exits 1 when overall stream accuracy is below ``--min-accuracy``. The ``wastecoach eval coach``
command runs this search report and then ``wastecoach eval chat`` (server.coach.eval: chat
answers and scan coaching, per language, with key-phrase rates and wrong-bin counts), so one
command reports search, chat and scan coaching; this module alone is the search part.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.streams import Stream
from server.knowledge.kb import KnowledgeBase
from server.search.service import ItemSearch, SearchQueryError, build_item_search

QUESTIONS = Path(__file__).resolve().parents[1] / "evals" / "coach_questions.jsonl"


@dataclass(frozen=True, slots=True)
class Question:
    q: str
    lang: str
    stream: Stream
    middle: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class Outcome:
    question: Question
    stream: Stream | None
    middles: tuple[str | None, ...]
    answer: str

    @property
    def stream_ok(self) -> bool:
        return self.stream is self.question.stream

    @property
    def middle_ok(self) -> bool:
        return self.question.middle in self.middles


def records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """The records of an evaluation set (JSON Lines) with their line numbers; blank lines and
    ``_comment`` records are skipped."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        record = json.loads(line)
        if "_comment" not in record:
            yield number, record


def load_questions(path: Path) -> list[Question]:
    questions: list[Question] = []
    for number, record in records(path):
        try:
            questions.append(
                Question(
                    q=record["q"],
                    lang=record["lang"],
                    stream=Stream(record["stream"]),
                    middle=record.get("middle"),
                    note=record.get("note"),
                )
            )
        except (KeyError, ValueError) as exc:
            raise SystemExit(f"{path.name}:{number}: bad question record: {exc}") from exc
    return questions


def evaluate(search: ItemSearch, questions: list[Question]) -> list[Outcome]:
    outcomes: list[Outcome] = []
    for question in questions:
        try:
            hits = search.search(question.q, limit=1)
        except SearchQueryError as exc:
            outcomes.append(Outcome(question, None, (), f"refused: {exc.reason.value}"))
            continue
        if not hits:
            outcomes.append(Outcome(question, None, (), "no answer"))
            continue
        item = hits[0].item
        outcomes.append(
            Outcome(
                question,
                item.stream,
                tuple(c.middle for c in item.categories),
                f"{item.name_ko} / {item.name_en} (#{item.id}, matched {hits[0].matched!r})",
            )
        )
    return outcomes


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {100 * hits / total:.1f}%" if total else "n/a"


def _wrong_bins(outcomes: list[Outcome]) -> int:
    """Answers whose item sends the person to another bin (no answer at all is a miss, not a
    wrong bin: the person is told it is not known)."""
    return sum(o.stream is not None and not o.stream_ok for o in outcomes)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wastecoach eval coach", description=__doc__)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--min-accuracy", type=float, default=0.9)
    parser.add_argument(
        "--lexical-only", action="store_true", help="search without the embedding model"
    )
    args = parser.parse_args(argv)

    questions = load_questions(args.questions)
    search = build_item_search(KnowledgeBase.load(), semantic=not args.lexical_only)
    outcomes = evaluate(search, questions)

    print(f"coach eval: {len(outcomes)} questions from {args.questions.name}")
    for lang in sorted({o.question.lang for o in outcomes}):
        subset = [o for o in outcomes if o.question.lang == lang]
        print(
            f"  stream accuracy [{lang}]: {_rate(sum(o.stream_ok for o in subset), len(subset))}; "
            f"wrong bin named: {_wrong_bins(subset)}"
        )
    correct = sum(o.stream_ok for o in outcomes)
    print(
        f"  stream accuracy [all]: {_rate(correct, len(outcomes))}; "
        f"wrong bin named: {_wrong_bins(outcomes)}"
    )
    with_middle = [o for o in outcomes if o.question.middle is not None]
    print(
        "  official middle category accuracy: "
        f"{_rate(sum(o.middle_ok for o in with_middle), len(with_middle))}"
    )
    misses = [o for o in outcomes if not o.stream_ok]
    if misses:
        print("misses:")
        for o in misses:
            got = o.stream.value if o.stream else "-"
            print(
                f"  [{o.question.lang}] {o.question.q!r}: expected {o.question.stream.value}, "
                f"got {got}: {o.answer}"
            )
    accuracy = correct / len(outcomes) if outcomes else 0.0
    return 0 if accuracy >= args.min_accuracy else 1


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
