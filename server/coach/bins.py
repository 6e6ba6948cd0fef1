"""Which bins a sentence tells the reader to use: the vocabulary the answer checks are built on.

Wrong disposal advice is the worst thing the coach can say, and it is said by naming a bin. This
module reads a sentence (ours, a rule's, or a language model's) and returns the streams whose bin
it sends the reader to, in the order it names them. A bin named only to rule it out ("not the
paper bin", "종이류와 섞지 말고") is not counted: the clause that names it carries a negation;
nor is a bin named as where harm would follow ("종량제봉투에 넣으면 화재의 원인이 됩니다").

It is deliberately a reader of text, not of our templates, so the same check holds an LLM answer
and the evaluation of any backend to one standard (``server.coach.invariant`` and
``server.coach.eval``).
"""

from __future__ import annotations

import re
from functools import lru_cache

from protocol.streams import Stream

#: How each stream's bin is named, in Korean and English. A pattern names the *place* (bin, bag,
#: sack, collection point) or a "sort it as X" phrase, never the bare material: "유리" alone
#: is an item's material, "유리병 수거함" is a bin.
_BINS: dict[Stream, str] = {
    Stream.PAPER: (
        r"종이류|종이\s*(?:분리)?수거함|종이컵\s*(?:전용\s*)?수거함|종이로\s*(?:버리|버려|내놓|배출|재활용)"
        r"|paper(?:-cup)?\s+(?:recycling\s+)?bin|paper\s+recycling|(?:with|as)\s+(?:the\s+)?paper\b"
    ),
    Stream.PAPER_PACK: (
        r"종이팩\s*(?:전용\s*)?수거함|종이팩끼리|종이팩으로\s*(?:버리|버려|배출|분리)"
        r"|carton\s+bin|cartons?\s+in\s+(?:their|a)\s+(?:own|separate)\s+bundle"
    ),
    Stream.GLASS: (
        r"유리병\s*(?:분리)?수거함|유리병으로\s*(?:버리|버려|배출|분리)|유리병류"
        r"|판매처\s*반환|보증금을?\s*(?:돌려|환급|받)|무인회수기"
        r"|glass(?:[- ]bottle)?\s+(?:recycling\s+)?bin"
        r"|bottle[- ]return|deposit\s+back|return\s+it\s+to\s+a\s+shop"
    ),
    Stream.METAL: (
        r"캔류|고철|금속류|캔\s*수거함|캔·고철"
        r"|can(?:\s+and\s+metal)?\s+(?:recycling\s+)?bin|metal\s+(?:recycling\s+)?bin|scrap\s+metal"
        r"|(?:with|as)\s+(?:the\s+)?metal\b"
    ),
    Stream.PLASTIC: (
        r"플라스틱\s*(?:분리)?수거함|플라스틱류|(?:일반\s*)?플라스틱으로|일반\s*플라스틱"
        r"|plastics?\s+(?:recycling\s+)?bin|plastic\s+recycling|(?:with|as)\s+(?:ordinary\s+|other\s+)?plastics?\b"
        r"|ordinary\s+plastics"
    ),
    Stream.CLEAR_PET: (
        r"투명\s*페트병?\s*(?:전용\s*)?수거함|투명\s*페트병으로|투명\s*페트\s*수거"
        r"|clear[- ]pet\s+(?:bottle\s+)?(?:bin|collection)"
    ),
    Stream.VINYL: (
        r"비닐류|비닐\s*(?:분리)?수거함|비닐로\s*(?:버리|버려|배출)"
        r"|(?:plastic\s+)?film\s+(?:bin|plastics)|(?:with"
        r"|as)\s+(?:plastic\s+)?film\b|soft[- ]plastics?\s+bin"
    ),
    Stream.STYROFOAM: (
        r"스티로폼\s*(?:분리)?수거함|스티로폼으로\s*(?:버리|버려|배출)|스티로폼류"
        r"|styrofoam\s+(?:recycling\s+)?(?:bin|point)"
    ),
    Stream.CLOTHING: (
        r"의류\s*수거함|헌\s*옷\s*수거함"
        r"|clothing\s+(?:collection\s+)?bin|clothes\s+bin"
    ),
    Stream.ELECTRONICS: (
        r"전자제품\s*수거함|폐가전|무상\s*방문\s*수거|소형\s*가전\s*수거"
        r"|electronics\s+bin|appliance\s+pickup|free\s+pickup|e-waste\s+(?:bin|collection)"
    ),
    Stream.BATTERY: (
        r"(?:폐)?건전지\s*수거함|폐건전지|폐배터리\s*수거|배터리\s*수거함|전지류"
        r"|battery\s+(?:or\s+small-electronics\s+)?(?:bin|collection)|used-battery\s+bin"
    ),
    Stream.LAMP: (
        r"형광등\s*(?:전용\s*)?수거함|폐형광등|폐조명|조명\s*수거함"
        r"|lamp\s+(?:collection\s+)?bin|used-lamp"
    ),
    Stream.GENERAL: (
        r"일반\s*종량제\s*봉투|종량제\s*봉투|일반\s*쓰레기|일반종량제"
        r"|general[- ]waste|rubbish\s+bag|trash\s+bag"
    ),
    Stream.NON_COMBUSTIBLE: r"불연성|non-combustible",
    Stream.FOOD: (
        r"음식물\s*(?:쓰레기|류)\s*(?:전용\s*)?(?:봉투|수거함|통)|음식물\s*쓰레기로|음쓰로?"
        r"|food[- ]waste\b"
    ),
    Stream.MEDICINE: r"폐의약품|waste-medicine|medicine\s+bin",
    Stream.HAZARDOUS: r"유해\s*폐기물|hazardous[- ]waste",
    Stream.BULKY: (
        r"대형\s*폐기물|신고\s*후\s*지정\s*장소|bulky[- ]waste"
        r"|agreed\s+collection\s+spot"
    ),
    Stream.CONSTRUCTION: r"공사장\s*생활폐기물로|as\s+renovation\s+waste",
    Stream.OTHER: (
        r"아이스팩\s*수거함|폐식용유\s*수거함|공동집하장|연탄재\s*배출|정비소"
        r"|ice-pack\s+collection|(?:waste[- ]|cooking-)oil\s+bin"
        r"|village\s+(?:farm-waste\s+)?collection"
        r"|tyre\s+shop"
    ),
}
_BIN_PATTERNS = {stream: re.compile(p, re.IGNORECASE) for stream, p in _BINS.items()}

#: A clause that names a bin to rule it out. Korean conditions such as "지워지지 않으면" are not
#: negations of the bin that follows, so only the forms that forbid or deny are listed.
_NEGATION = re.compile(
    r"않습니다|않아요|되지\s*않|수\s*없|지\s*마|지\s*말|아니라|아닙니다|아니에요|아니예요|아니죠|아니요|안\s*돼|안\s*됩니다|금지"
    r"|와\s*따로|과\s*따로|와\s*섞|과\s*섞|대신"
    r"|\bnot\b|\bcannot\b|n't\b|\bnever\b|\bneither\b|\bnor\b|\bout\s+of\b|\binstead\b|\brather\s+than\b|\bapart\s+from\b|\bno\b",
    re.IGNORECASE,
)
#: Clause boundaries: punctuation, and the Korean and English joints that turn from what not to
#: do to what to do ("…섞지 말고 종이팩 수거함에", "…out of the paper bin and put it in …").
_CLAUSE = re.compile(
    r"(?<=[.!?;:,(/)])|(?<=말고)|(?<=아니라)|(?<=대신)|(?=\band\s+(?:then\s+)?(?:put|recycle|take|drop|bring|use|sort|keep|throw|place|tie)\b)|(?=\bbut\b)|(?=\binstead\b)",
    re.IGNORECASE,
)


#: A bin named as where harm would follow ("종량제봉투에 넣으면 … 화재의 원인이 됩니다", "in a
#: rubbish bag they … start fires"): the sentence explains why not to use it, it does not direct
#: there. Both parts are required, the hypothetical put right after the bin's name and a harm
#: after it, so that "일반종량제봉투에 버리면 됩니다" and "put it in the rubbish bag to avoid
#: fires" are still read as directions.
_HYPOTHETICAL_PUT = re.compile(
    r"\s*(?:에|으로|로)\s*(?:넣|버리|버려|섞|들어가|내놓)[가-힣]*면\b"
    r"|\s+(?:they|it|these|those)\s+(?:pollute|start|cause|catch|leak|explode|damage|contaminate)",
    re.IGNORECASE,
)
_HARM = re.compile(
    r"원인|오염|화재|불이\s*(?:나|붙)|폭발|망가|위험|다치|터지|새어|남습니다"
    r"|pollut|fires?\b|explo|leak|damag|contaminat|injur",
    re.IGNORECASE,
)


#: "…에 버리면 오염 걱정이 없어요" reassures: it directs there.
_NO_HARM = re.compile(r"없|걱정|\bno\s+risk\b|\bwithout\b|\bsafe", re.IGNORECASE)


#: "종량제봉투에 들어가지 않는 큰 물건" describes what does not fit the bag.
_DOES_NOT_FIT = re.compile(r"\s*에\s*(?:들어가|담기|담|넣)지\s*않")


def _warns_against(clause: str, end: int) -> bool:
    """Whether the bin name ending at ``end`` is not a direction: the place of a harm the clause
    warns about, or what the thing does not fit into."""
    if _DOES_NOT_FIT.match(clause, end):
        return True
    return (
        bool(_HYPOTHETICAL_PUT.match(clause, end))
        and bool(_HARM.search(clause, end))
        and not _NO_HARM.search(clause, end)
    )


def clauses(text: str) -> list[str]:
    return [c for c in _CLAUSE.split(text) if c.strip()]


def named_bins(text: str) -> list[Stream]:
    """The streams whose bins ``text`` directs to, in the order named, negated clauses skipped."""
    return list(_named_bins(text))


#: Texts whose answer is kept. Every scan reads the same rule texts and template sentences
#: (its item's rules, to know which bins they allow, and each composed sentence, to check it):
#: a dozen regular expressions over each: 1.1 ms of the event loop a scan before this cache
#: ("Where a scan's CPU goes" in docs/benchmarks.md). The answer depends on the text alone; the
#: bound keeps a stream of language-model sentences from growing it without end.
_CACHED_TEXTS = 4096


@lru_cache(maxsize=_CACHED_TEXTS)
def _named_bins(text: str) -> tuple[Stream, ...]:
    out: list[Stream] = []
    for clause in clauses(text):
        if _NEGATION.search(clause):
            continue
        found: list[tuple[int, Stream]] = []
        for stream, pattern in _BIN_PATTERNS.items():
            match = pattern.search(clause)
            if match is not None and not _warns_against(clause, match.end()):
                found.append((match.start(), stream))
        for _, stream in sorted(found):
            if stream not in out:
                out.append(stream)
    return tuple(out)


def mentioned_bins(text: str) -> set[Stream]:
    """Every stream whose bin ``text`` names, negated or not (to tell what a question proposes)."""
    return {stream for stream, pattern in _BIN_PATTERNS.items() if pattern.search(text)}
