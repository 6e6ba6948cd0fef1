"""`wastecoach eval chat`: how often the follow-up chat tells a person the right thing.

Each labelled question (``server/evals/chat_questions.jsonl``, the tuning set; an untuned set is
given with ``--questions``) is answered by the chat service exactly as a person's would be, after
a scan of ``context`` when the record names one. The answer's *text* is judged, not the
planner's internals, so the same judge holds any backend:

* stream: the first bin the answer sends the reader to is one of the record's ``streams``;
* wrong bin: the answer sends the reader to a bin that is neither in ``streams`` nor in
  ``mention`` (a part's bin, the clean/dirty alternative); one such answer is the worst bug;
* yes/no: the answer opens with the right yes or no, where the record has one;
* key: the answer contains one of the record's key phrases, where it has them.

An answer is right when all four hold. Prints the rates per language and every wrong answer.
It also coaches a confident scan of every vision label, and the same scan confirmed after a
clarify question, in both languages: it must name the item's own bin, no bin may fall
outside what its rules sanction, and a confirmed scan must not hedge.

    wastecoach eval chat [--questions PATH] [--lexical-only] [--min-right 0.0]

Exits 1 when any answer names a wrong bin or the right rate is below ``--min-right``.
"""

from __future__ import annotations

import argparse
import re
from dataclasses import dataclass, field
from pathlib import Path

from protocol.messages import Classification, Locale, OfficialCategory
from protocol.streams import OFFICIAL_PATH, Stream
from server.coach import grounding as g
from server.coach.bins import named_bins
from server.coach.chat import ChatService
from server.coach.composer import EmbeddedCoach, scan_allowed
from server.coach.planner import paths
from server.knowledge.eval import records
from server.knowledge.kb import LABEL_ITEMS, KnowledgeBase
from server.search.service import build_item_search

QUESTIONS = Path(__file__).resolve().parents[1] / "evals" / "chat_questions.jsonl"

_YES = re.compile(r"^\s*(?:네|예|yes)\b", re.IGNORECASE)
_NO = re.compile(r"^\s*(?:아니요|아뇨|아니에요|no)\b", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class ChatCase:
    q: str
    lang: Locale
    streams: tuple[Stream, ...]
    mention: tuple[Stream, ...] = ()
    context: str | None = None
    yes_no: str | None = None
    key: tuple[str, ...] = ()


@dataclass(slots=True)
class Verdict:
    case: ChatCase
    answer: str
    named: list[Stream] = field(default_factory=list)

    @property
    def stream_ok(self) -> bool:
        return bool(self.named) and self.named[0] in self.case.streams

    @property
    def wrong_bins(self) -> list[Stream]:
        allowed = set(self.case.streams) | set(self.case.mention)
        return [s for s in self.named if s not in allowed]

    @property
    def yes_no_ok(self) -> bool:
        if self.case.yes_no is None:
            return True
        pattern = _YES if self.case.yes_no == "yes" else _NO
        return bool(pattern.search(self.answer))

    @property
    def key_ok(self) -> bool:
        lowered = self.answer.lower()
        return not self.case.key or any(k.lower() in lowered for k in self.case.key)

    @property
    def right(self) -> bool:
        return self.stream_ok and not self.wrong_bins and self.yes_no_ok and self.key_ok


def load_cases(path: Path) -> list[ChatCase]:
    cases: list[ChatCase] = []
    for number, record in records(path):
        try:
            yes_no = record.get("yes_no")
            if yes_no not in (None, "yes", "no"):
                raise ValueError(f"yes_no must be 'yes' or 'no', not {yes_no!r}")
            cases.append(
                ChatCase(
                    q=record["q"],
                    lang=Locale(record["lang"]),
                    streams=tuple(Stream(s) for s in record["streams"]),
                    mention=tuple(Stream(s) for s in record.get("mention", ())),
                    context=record.get("context"),
                    yes_no=yes_no,
                    key=tuple(record.get("key", ())),
                )
            )
        except (KeyError, ValueError) as exc:
            raise SystemExit(f"{path.name}:{number}: bad question record: {exc}") from exc
    return cases


def scan_of(kb: KnowledgeBase, label: str) -> Classification:
    """The classification a confident scan of ``label`` produces, for a question's context."""
    item = kb.item_for_label(label)
    if item is None:
        raise SystemExit(f"context {label!r} is not a vision label the knowledge base knows")
    major, middle = OFFICIAL_PATH[item.stream]
    return Classification(
        label=label,
        name_ko=item.name_ko,
        name_en=item.name_en or item.name_ko,
        stream=item.stream,
        category=OfficialCategory(major=major, middle=middle),
        confidence=0.92,
        model="eval",
    )


def judge(service: ChatService, cases: list[ChatCase]) -> list[Verdict]:
    kb = service.kb
    verdicts: list[Verdict] = []
    for case in cases:
        context = scan_of(kb, case.context) if case.context else None
        plan = service.plan(question=case.q, locale=case.lang, scan_context=context, history=[])
        answer = " ".join(s.text for s in plan.sentences)
        verdicts.append(Verdict(case, answer, named_bins(answer)))
    return verdicts


#: What the composer says when it is unsure (grounding.identification, grounding.alternative).
_HEDGES = ("확실하지 않아요", "라면 버리는 곳이 달라요", "not sure", "If it is actually")


def scan_report(kb: KnowledgeBase) -> tuple[list[str], int]:
    """Scan coaching of every vision label: lines to print and the count naming a wrong bin."""
    coach = EmbeddedCoach(kb)
    lines: list[str] = []
    wrong_total = 0
    for locale in Locale:
        first_ok = wrong = hedged = total = 0
        for label in LABEL_ITEMS:
            scan = scan_of(kb, label)
            grounding = g.ground_classification(kb, scan)
            item = grounding.item
            own = set(paths(item, scan.stream)) | {r.stream for r in grounding.rules}
            unsure = scan.model_copy(update={"confidence": 0.4, "confirmed": True})
            for classification in (scan, unsure):
                text = " ".join(s.text for s in coach.compose(classification, locale))
                named = named_bins(text)
                allowed = scan_allowed(grounding, classification)
                total += 1
                # Scan coaching gives the steps first (a part's bin among them): what counts is
                # that it names the item's own bin at all.
                first_ok += bool(own & set(named))
                bad = [s for s in named if s not in allowed]
                wrong += bool(bad)
                hedged += classification.confirmed and any(h in text for h in _HEDGES)
                if bad or not own & set(named):
                    lines.append(f"    [{locale.value}] {label}: {text}")
        wrong_total += wrong
        lines.insert(
            0,
            f"  scan coaching [{locale.value}]: own bin named {_rate(first_ok, total)}; "
            f"wrong bin named: {wrong}; hedged after a confirmed clarify answer: {hedged}",
        )
    return lines, wrong_total


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {100 * hits / total:.1f}%" if total else "n/a"


def report(verdicts: list[Verdict], name: str) -> list[str]:
    lines = [f"chat eval: {len(verdicts)} questions from {name}"]
    groups: list[tuple[str, list[Verdict]]] = [
        (lang.value, [v for v in verdicts if v.case.lang is lang]) for lang in Locale
    ]
    groups.append(("all", verdicts))
    for label, subset in groups:
        if not subset:
            continue
        asked = [v for v in subset if v.case.yes_no is not None]
        keyed = [v for v in subset if v.case.key]
        lines.append(
            f"  [{label}] right {_rate(sum(v.right for v in subset), len(subset))}; "
            f"stream {_rate(sum(v.stream_ok for v in subset), len(subset))}; "
            f"yes/no {_rate(sum(v.yes_no_ok for v in asked), len(asked))}; "
            f"key {_rate(sum(v.key_ok for v in keyed), len(keyed))}; "
            f"wrong bin named: {sum(bool(v.wrong_bins) for v in subset)}"
        )
    wrong = [v for v in verdicts if not v.right]
    if wrong:
        lines.append("wrong answers:")
        for v in wrong:
            why = []
            if not v.stream_ok:
                why.append(f"stream {v.named[0].value if v.named else '-'}")
            if v.wrong_bins:
                why.append("WRONG BIN " + ",".join(s.value for s in v.wrong_bins))
            if not v.yes_no_ok:
                why.append(f"expected {v.case.yes_no}")
            if not v.key_ok:
                why.append("no key phrase")
            context = f" (after {v.case.context})" if v.case.context else ""
            lines.append(f"  {v.case.q!r}{context}: {'; '.join(why)}\n      → {v.answer}")
    return lines


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="wastecoach eval chat", description=__doc__)
    parser.add_argument("--questions", type=Path, default=QUESTIONS)
    parser.add_argument("--min-right", type=float, default=0.0)
    parser.add_argument(
        "--lexical-only", action="store_true", help="search without the embedding model"
    )
    args = parser.parse_args(argv)
    kb = KnowledgeBase.load()
    service = ChatService(kb, build_item_search(kb, semantic=not args.lexical_only))
    verdicts = judge(service, load_cases(args.questions))
    print("\n".join(report(verdicts, args.questions.name)))
    scans, scan_wrong = scan_report(kb)
    print("\n".join(scans))
    right = sum(v.right for v in verdicts) / len(verdicts) if verdicts else 0.0
    wrong_bins = sum(bool(v.wrong_bins) for v in verdicts) + scan_wrong
    return 0 if wrong_bins == 0 and right >= args.min_right else 1


if __name__ == "__main__":
    import sys

    raise SystemExit(main(sys.argv[1:]))
