"""The chat answer planner: what a question asks, what condition the item is in, what to say.

A question is read once (:func:`read`) into a :class:`Reading`: its kind (where does it go, a
yes/no "can I…", what if <condition>, how to prepare <part>, why), the condition it names
(broken, coloured, stained, greasy, wet, wooden, swollen, torn…), the bin it proposes ("…종이류에
넣으면 되죠?") and the parts and materials it mentions. The proposal is the person's guess, never
a fact: a receipt stays general waste however firmly the question calls it paper.

:func:`resolve` then decides, from the item's own rules, which rules answer the question given
the condition (a broken bottle follows the broken-glass rule, a coloured PET bottle the plastic
one, a container stained beyond washing the general-waste one) and the only bins the answer
may send the item to. :func:`compose` writes the answer in that order: the direct answer (a
yes/no question's yes or no first, and the right one), then the steps, then why. Every
composed answer passes :func:`server.coach.invariant.enforce` before it is sent.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from enum import StrEnum

from protocol.messages import Locale, OfficialCategory
from protocol.streams import OFFICIAL_PATH, Stream
from server.coach import grounding as g
from server.coach import prompts
from server.coach.bins import named_bins
from server.coach.grounding import Grounding, Sentence
from server.coach.korean import particle
from server.knowledge.kb import KnowledgeBase
from server.knowledge.model import Item, Rule

# --------------------------------------------------------------------------- reading


class Ask(StrEnum):
    WHERE = "where"
    YES_NO = "yes_no"
    PREPARE = "prepare"


class Condition(StrEnum):
    BROKEN = "broken"
    COLOURED = "coloured"
    LABEL_STUCK = "label_stuck"
    STAINED = "stained"  # soiled beyond washing: the person says it will not come off
    SOILED = "soiled"  # food, sauce or dirt on it, maybe washable
    GREASY = "greasy"
    WET = "wet"
    WOODEN = "wooden"
    SWOLLEN = "swollen"
    TORN = "torn"
    CERAMIC = "ceramic"  # heat-resistant glass, ceramics: never the glass-bottle bin
    COATED = "coated"  # laminated or plastic-coated paper: not the paper bin


_CONDITIONS: dict[Condition, re.Pattern[str]] = {
    Condition.BROKEN: re.compile(
        r"깨진|깨졌|깨져|깨짐|깨지|금\s*(?:이\s*)?(?:간|갔)|부서|\bbroke|\bbroken|\bcrack|shatter|smash",
        re.IGNORECASE,
    ),
    Condition.COLOURED: re.compile(
        r"초록|녹색|갈색|파란|파랑|색깔|유색|색\s*있|colou?red|\bgreen\b|\bbrown\b|\bblue\b",
        re.IGNORECASE,
    ),
    Condition.STAINED: re.compile(
        r"안\s*(?:빠|지워|씻|없어지)|빠지지\s*않|지워지지\s*않|씻기지\s*않|밴\b|밴거|배어|배인|물\s*들|물든|얼룩|자국"
        r"|won'?t\s+(?:come|wash|rinse)|will\s+not\s+(?:come|wash|rinse)|doesn'?t\s+(?:come|wash)"
        r"|can'?t\s+(?:get|clean|wash)|\bstain",
        re.IGNORECASE,
    ),
    Condition.SOILED: re.compile(
        r"더러|오염|음식물?\s*(?:이\s*)?(?:묻|남)|묻은|묻었|묻어|양념|소스|\bdirty|\bsoiled|\bfood\s+on|residue"
        r"|\bsauce|\bketchup|\bsticky",
        re.IGNORECASE,
    ),
    Condition.GREASY: re.compile(r"기름|\bgreas|\boily|\boil\b", re.IGNORECASE),
    Condition.WET: re.compile(r"젖|\bwet\b|soaked|\bdamp\b", re.IGNORECASE),
    Condition.WOODEN: re.compile(r"나무|원목|대나무|\bwood|\bbamboo", re.IGNORECASE),
    Condition.SWOLLEN: re.compile(r"부풀|부푼|빵빵|\bswell|\bswollen|\bpuff|\bbulg", re.IGNORECASE),
    Condition.CERAMIC: re.compile(
        r"내열|파이렉스|도자기|사기\s*(?:그릇|접시)|\bpyrex"
        r"|heat[- ]resistant|\bceramic|\bporcelain",
        re.IGNORECASE,
    ),
    Condition.COATED: re.compile(
        r"코팅|라미네이팅|\blaminat|\bplastic[- ]coated|\bcoated", re.IGNORECASE
    ),
    Condition.TORN: re.compile(
        r"찢어|찢긴|헤진|구멍\s*난|\bripped|\btorn\b|\bholes?\b", re.IGNORECASE
    ),
}
#: The condition words, for telling a word about the item's state from a word naming it.
CONDITION_PATTERNS: tuple[re.Pattern[str], ...] = tuple(_CONDITIONS.values())
#: "The label will not come off": with a label named, the clear-PET exception applies.
_STUCK = re.compile(r"안\s*(?:떼|떨어|벗겨)|떨어지지\s*않|won'?t\s+(?:peel|come)", re.IGNORECASE)

#: A Korean part word stands on its own or takes a particle; inside a compound ("종이테이프",
#: "테이프클리너") it is part of an item's name, not a part of the item.
_KO_ALONE = r"(?<![가-힣])(?:{})(?=$|[^가-힣]|은|는|이|가|을|를|도|만|요|랑|과|와|의|에|까지)"


def _part(en: str, ko: str) -> re.Pattern[str]:
    return re.compile(rf"\b(?:{en})\b|" + _KO_ALONE.format(ko), re.IGNORECASE)


PARTS: dict[str, re.Pattern[str]] = {
    "cap": _part("caps?", "뚜껑|마개"),
    "lid": _part("lids?", "(?!)"),
    "label": _part("labels?", "라벨|상표"),
    "tape": _part("tapes?", "테이프"),
    "sticker": _part("stickers?", "스티커"),
    "straw": _part("straws?", "빨대"),
    "foam": _part("foam\\s+(?:padding|packing|insert)s?|the\\s+foam", "완충재"),
    "pump": _part("pumps?", "펌프"),
    "handle": _part("handles?", "손잡이"),
    "spring": _part("springs?", "스프링"),
}
#: Materials a question may name, and the stream that material goes to on its own.
MATERIALS: dict[Stream, re.Pattern[str]] = {
    Stream.METAL: re.compile(
        # 철 only where a word starts with it: 여름철, 지하철 and 철거 say no metal.
        r"\bmetal|\balumin|\bsteel|\bstainless|\btin\b|\biron\b"
        r"|금속|쇠|스텐|스테인|알루미늄|캔|(?<![가-힣])철(?!거)",
        re.IGNORECASE,
    ),
    Stream.PLASTIC: re.compile(r"\bplastic|플라스틱|합성수지", re.IGNORECASE),
    Stream.GLASS: re.compile(r"\bglass|유리", re.IGNORECASE),
    Stream.PAPER: re.compile(r"\bpaper|\bcardboard|종이|골판지", re.IGNORECASE),
    Stream.VINYL: re.compile(r"\bvinyl|\bfilm\b|\bplastic bag|비닐", re.IGNORECASE),
    Stream.STYROFOAM: re.compile(r"\bstyrofoam|\bpolystyrene|스티로폼", re.IGNORECASE),
}
#: When a part's material is not said, the stream such a part usually belongs to.
PART_DEFAULT: dict[str, Stream] = {
    "cap": Stream.PLASTIC,
    "lid": Stream.PLASTIC,
    "label": Stream.VINYL,
    "tape": Stream.GENERAL,
    "sticker": Stream.GENERAL,
    "straw": Stream.GENERAL,
    "foam": Stream.STYROFOAM,
    "pump": Stream.GENERAL,
    "handle": Stream.PLASTIC,
    "spring": Stream.METAL,
}


#: Names that are also an everyday word of another sense ("can I…", 병 as an illness): a match
#: on them counts only when the question does not show the other sense.
_HOMONYMS: dict[str, re.Pattern[str]] = {
    "can": re.compile(
        r"^\s*can\b|\bcan\s+(?:i|you|we|it|this|these|they|go|be|put|throw)\b", re.IGNORECASE
    ),
    "병": re.compile(r"병원|병에\s*걸|질병|아파|아픈|감기|처방"),
    "약": re.compile(r"약간|약하|약속|계약|예약"),
}


def other_sense(name_key: str, question: str) -> bool:
    """True when the question uses the matched name in its other sense."""
    pattern = _HOMONYMS.get(name_key)
    return pattern is not None and bool(pattern.search(question))


_PART_TOPIC = re.compile(
    r"(?:뚜껑|마개|라벨|상표|테이프|스티커|빨대|펌프|손잡이|스프링|완충재)\s*(?:은|는|도)\s*(?:요|\?|어떻|어디|따로|$)"
    r"|^\s*(?:뚜껑|마개|라벨|상표|테이프|스티커|빨대|펌프|손잡이|스프링|완충재)\s*(?:이|가)\s*\S+\s*(?:이면|면)요?\s*\??\s*$"
    r"|^\s*(?:뚜껑|마개|라벨|테이프|펌프|빨대)\s*\??\s*$"
    r"|(?:뚜껑|마개|손잡이)\s*(?:은|는|이|가)?\s*\S+(?:으로|로)\s*된"
    # "뚜껑은 플라스틱으로 버리면 돼?": a bin proposed for the part.
    r"|(?:뚜껑|마개|라벨|손잡이|펌프|빨대)\s*(?:은|는)\s+\S+(?:으로|로|에)\s*(?:버려|버리|넣|내놓|분리)"
    r"|(?:what|how)\s+about\s+the|^\s*(?:and\s+)?the\s+(?:cap|lid|label|tape|pump|straw|handle|foam)"
    r"|(?:cap|lid|label|tape|pump|straw|handle)s?\s*\?\s*$",
    re.IGNORECASE,
)


def part_materials(question: str, part: str) -> tuple[Stream, ...]:
    """The material the question gives ``part``: said just before it ("metal cap", "금속
    뚜껑") or of it ("the cap is metal", "뚜껑이 금속이면"), never the item's own material."""
    text = without_proposals(question)
    match = PARTS[part].search(text)
    if match is None:
        return ()
    before = text[max(0, match.start() - 10) : match.start()]
    after = text[match.end() : match.end() + 16]
    said_of = re.match(r"\s*(?:은|는|이|가|도|s)?\s*(?:is|are|made\s+of|이|가)?\s*(.*)", after)
    tail = said_of.group(1)[:10] if said_of else ""
    out: list[Stream] = []
    for stream, pattern in MATERIALS.items():
        near = re.search(
            f"(?:^|\\s)(?:{pattern.pattern})(?:으로 된|로 된|제)?\\s*$", before, re.IGNORECASE
        )
        of = pattern.match(tail)
        if near or of:
            out.append(stream)
    return tuple(out)


def part_default(part: str, stream: Stream) -> Stream:
    """The usual stream of ``part`` on an item of ``stream``: a glass jar's lid is metal."""
    if part in ("cap", "lid") and stream in (Stream.GLASS, Stream.NON_COMBUSTIBLE):
        return Stream.METAL
    return PART_DEFAULT[part]


SOIL = re.compile(
    r"greas|oil|dirty|soil|stain|food|residue|sauce|ketchup|mayo|sticky|wet|"
    r"기름|오염|더러|음식물|양념|소스|묻|찌꺼기|얼룩|끈적",
    re.IGNORECASE,
)
_WASTE_WORDS = re.compile(
    r"recycl|trash|rubbish|garbage|waste|\bbins?\b|dispos|throw|sort|rinse|wash|"
    r"버리|버려|버릴|분리|재활용|쓰레기|배출|수거|종량제|헹|씻|폐기|음쓰",
    re.IGNORECASE,
)
_FOLLOW_UP = re.compile(
    r"\b(why|how|it|this|that|then|what about|and)\b"
    r"|왜|어떻게|어떡|이거|이건|이것|그거|그건|그것|그럼|그러면|은요|는요|이면요|면요",
    re.IGNORECASE,
)
_WHY = re.compile(r"\bwhy\b|왜|이유", re.IGNORECASE)
_WH = re.compile(
    r"어디|어떻게|어떡|뭐|무엇|어느|방법|법\b|\bwhere|\bhow\b|\bwhat|\bwhich", re.IGNORECASE
)
_YES_NO_END = re.compile(
    r"(?:되|돼|됨|됩니까|될까|되죠|되요|되나|맞|인가|이에요|예요|에요|이야|야|죠|나요|할까|해요|줘요|"
    r"있어요|있나요|넣어요|버려요|내놔도|가능)\S*\s*\??$|\?$"
)
_YES_NO_EN = re.compile(
    r"^\s*(?:can|could|may|should|is|are|do|does|must|shall|will)\b|\bok\??$|\bokay\??$",
    re.IGNORECASE,
)

#: A bin the question proposes, in the words people use for it ("종이랑", "음쓰", "with paper").
_PROPOSALS: dict[Stream, re.Pattern[str]] = {
    Stream.PAPER_PACK: re.compile(r"종이팩(?!\s*전용)|\bcarton bin", re.IGNORECASE),
    Stream.PAPER: re.compile(
        r"종이(?=류|로|랑|와|니|에|\s*같이|\s*수거|\s*맞|\s*\?|인|이에|이야|$)|종이\s*박스(?:랑|와|하고)"
        r"|박스랑|상자랑"
        # "with the paper", "paper recycling", "…paper?": the bin; "baking paper" is an item.
        r"|(?:with|as|in|into|the|is\s+it|it'?s)\s+paper\b(?!\s*(?:cup|bag|towel|foil))"
        r"|\bpaper\s+(?:bin|recycling|collection)|\bpaper\s*\?",
        re.IGNORECASE,
    ),
    # "투명 페트병", "clear PET bottle" name the item itself; the bin is proposed by the
    # material alone ("투명페트로") or the bottle with a bin word ("투명페트병 수거함").
    Stream.CLEAR_PET: re.compile(
        r"투명\s*페트(?=\s*(?:로|으로|수거|분리|전용|칸|에|랑|이랑|하고|류))"
        r"|투명\s*페트병(?=\s*(?:수거|분리|전용|함|으로|류|이랑|랑|하고|칸))"
        r"|clear\s*pet(?!\s*bottles?\b)|clear\s*pet\s*bottles?(?=\s*(?:bin|recycling|collection))",
        re.IGNORECASE,
    ),
    Stream.GLASS: re.compile(
        r"유리병(?:이랑|과|하고|\s*수거|으로|류|에\s*(?:같이|함께|넣))|유리\s*수거|유리로|\bglass\s+(?:bin|recycling)|with\s+(?:the\s+)?glass",
        re.IGNORECASE,
    ),
    Stream.METAL: re.compile(
        r"캔으로|캔류|고철|금속류|\bmetal\s+(?:recycling|bin)|\bcan\s+recycling", re.IGNORECASE
    ),
    Stream.PLASTIC: re.compile(
        r"플라스틱(?:으로|에|류|\s*수거|이에요|이야|이지|인가|이죠|\s*맞|\s*\?)"
        r"|\bplastics?\s+(?:recycling|bin)|with\s+(?:the\s+)?plastics?",
        re.IGNORECASE,
    ),
    Stream.VINYL: re.compile(
        r"비닐(?:로|류|\s*수거|\s*맞|이에요|이야|인가|이죠)|\bfilm\s+(?:bin|recycling)",
        re.IGNORECASE,
    ),
    Stream.LAMP: re.compile(r"형광등\s*수거|폐형광등|\blamp\s+(?:bin|collection)", re.IGNORECASE),
    Stream.BATTERY: re.compile(
        r"건전지\s*수거|폐건전지|배터리\s*수거|\bbattery\s+(?:bin|collection)", re.IGNORECASE
    ),
    Stream.MEDICINE: re.compile(
        r"폐의약품|약국\s*수거|\bpharmacy\b|\bmedicine\s+(?:bin|collection)", re.IGNORECASE
    ),
    Stream.ELECTRONICS: re.compile(
        r"소형\s*가전\s*수거|폐가전\s*수거|전자제품\s*수거|\be-?waste\s+(?:bin|collection)",
        re.IGNORECASE,
    ),
    Stream.STYROFOAM: re.compile(r"스티로폼(?:으로|류|\s*수거)", re.IGNORECASE),
    Stream.FOOD: re.compile(
        r"음식물\s*(?:쓰레기|류)?(?=\s*(?:이에요|예요|인가|이야|야|맞|로|으로|에|\?|$))|음식물\s*쓰레기|음쓰"
        r"|음식물이에요|음식물인가|\bfood\s+waste|\bcompost",
        re.IGNORECASE,
    ),
    Stream.CLOTHING: re.compile(
        r"의류\s*수거함|옷\s*수거함|clothing\s+bin|clothes\s+bin", re.IGNORECASE
    ),
    Stream.NON_COMBUSTIBLE: re.compile(
        r"불연성\s*(?:쓰레기\s*)?(?:마대|봉투|전용|으로|로|에|이에요|인가|맞)"
        r"|\bnon-?combustible\s+(?:sack|bag|waste)|\bceramic\s+waste",
        re.IGNORECASE,
    ),
    Stream.GENERAL: re.compile(
        r"일반\s*쓰레기|종량제|그냥\s*(?:\S+\s*){0,2}버려도|\btrash\b|\bgarbage\b|general\s+waste|\bbin\s+it",
        re.IGNORECASE,
    ),
}
_RECYCLABLE_CLAIM = re.compile(
    r"(?:재활용|분리수거|분리배출)\s*(?:이\s*)?(?:돼|되|가능|해도|할\s*수)|\brecycl",
    re.IGNORECASE,
)
_DRAIN = re.compile(r"하수구|변기|싱크대에|\bdrain\b|\bflush|\btoilet|\bsink\b", re.IGNORECASE)
_DEPOSIT = re.compile(
    r"보증금\s*(?:을|은|도)?\s*(?:받|돌려|환급)|돈\s*(?:줘|받|돌려)|환불|money\s+back|\brefund"
    r"|get\s+(?:the\s+|my\s+)?deposit|deposit\s+back",
    re.IGNORECASE,
)
_AS_IS = re.compile(r"그냥|as\s+it\s+is|as\s+is\b|without\s+(?:rinsing|washing)", re.IGNORECASE)
#: Preparation a yes/no question asks about, and the words of a rule step that require it.
_ACTIONS: dict[str, tuple[re.Pattern[str], re.Pattern[str]]] = {
    "rinse": (
        re.compile(r"씻어야|헹궈야|씻어서|헹궈서|\brinse|\bwash", re.IGNORECASE),
        re.compile(r"헹구|헹궈|씻|rinse|wash", re.IGNORECASE),
    ),
    "crush": (
        re.compile(r"찌그러|눌러|납작|밟아|\bcrush|\bflatten|\bsquash", re.IGNORECASE),
        re.compile(r"눌러|납작|찌그러|crush|flat", re.IGNORECASE),
    ),
    "close_cap": (
        re.compile(r"뚜껑\s*(?:을\s*)?닫|cap\s+on|close\s+the\s+cap", re.IGNORECASE),
        re.compile(r"뚜껑을\s*닫|cap\s+back\s+on|screw\s+the\s+cap", re.IGNORECASE),
    ),
    "remove_label": (
        re.compile(
            r"라벨.{0,6}(?:떼|제거|벗겨)|\blabel.{0,20}(?:off|remove|peel)|peel.{0,10}label",
            re.IGNORECASE,
        ),
        re.compile(r"라벨|label", re.IGNORECASE),
    ),
    "remove_tape": (
        re.compile(r"테이프.{0,6}(?:떼|제거|벗겨)|\btape.{0,20}(?:off|remove)", re.IGNORECASE),
        re.compile(r"테이프|tape", re.IGNORECASE),
    ),
    "remove_battery": (
        re.compile(
            r"(?:배터리|밧데리|건전지|전지).{0,6}(?:빼|분리|제거|꺼내)"
            r"|(?:remove|take\s+out|take\s+off).{0,12}batter",
            re.IGNORECASE,
        ),
        re.compile(r"건전지|배터리|batter", re.IGNORECASE),
    ),
    # "단자에 테이프 붙여야 돼요?": tape put on is an instruction, not a part to throw away.
    "tape_on": (
        re.compile(
            r"테이프.{0,6}(?:붙여|붙이|감아|감싸|발라)|(?:단자|극).{0,8}테이프"
            r"|\b(?:put|stick|wrap)\w*\s+(?:\w+\s+){0,3}tape|\btape\s+(?:over\s+)?(?:the\s+)?"
            r"(?:terminals?|ends?|contacts?)",
            re.IGNORECASE,
        ),
        re.compile(r"테이프를\s*(?:붙|감)|tape\s+(?:over|the|on)", re.IGNORECASE),
    ),
}
#: "테이프 붙은 채로 내놔도 돼?": may the part stay on. Asks the opposite of the removal step.
_KEEP_ON = re.compile(
    r"붙은\s*채|붙어\s*있는\s*채|붙인\s*채|붙은\s*그대로|붙어\s*있어도|안\s*떼고|안\s*떼도"
    r"|with\s+(?:the\s+)?(?:tape|label)s?\s+(?:still\s+)?on|leave\s+(?:the\s+)?(?:tape|label)s?\s+on"
    r"|without\s+(?:removing|peeling)",
    re.IGNORECASE,
)
_KEPT_PART_ACTION = {"tape": "remove_tape", "label": "remove_label"}
_SKIP_RINSE = re.compile(
    r"안\s*(?:헹궈|헹구|씻어|씻고|씻은)|헹구지\s*않|씻지\s*않|without\s+(?:rinsing|washing)"
    r"|(?:don'?t|do\s+not|no\s+need\s+to)\s+(?:rinse|wash)|unrinsed|unwashed",
    re.IGNORECASE,
)
#: "물티슈도 여기 버려요?" after a scan: the named item in the scanned item's bin.
_SAME_BIN = re.compile(
    r"여기|같은\s*(?:함|곳|데|통|수거함|봉투|쓰레기통)|same\s+(?:bin|place|bag)|in\s+here|\bhere\b"
    r"|this\s+bin",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Reading:
    """What one question asks, read without knowing the item."""

    ask: Ask
    text: str = ""
    conditions: frozenset[Condition] = frozenset()
    proposed: frozenset[Stream] = frozenset()
    claims_recyclable: bool = False
    drain: bool = False
    deposit: bool = False
    as_is: bool = False
    action: str | None = None
    #: The question asks whether the action may be skipped ("테이프 붙은 채로 내놔도 돼?").
    skip_action: bool = False
    parts: tuple[str, ...] = ()
    materials: tuple[Stream, ...] = ()
    why: bool = False
    #: The question is about the part itself ("뚜껑은요?"), not an item that has one.
    part_topic: bool = False
    about_waste: bool = False
    follow_up: bool = False
    #: "…도 여기 버려요?": the bin of the item in context is the one proposed.
    same_bin: bool = False

    @property
    def any(self) -> bool:
        """Whether the question asks about some aspect of an item (a part, dirt, a material)."""
        return bool(self.parts or self.materials or self.conditions)

    @property
    def on_topic(self) -> bool:
        """Whether the question is plausibly about the item under discussion."""
        return self.any or self.about_waste or self.follow_up or self.ask is Ask.YES_NO


def read(question: str) -> Reading:
    conditions = {c for c, p in _CONDITIONS.items() if p.search(question)}
    parts = tuple(name for name, p in PARTS.items() if p.search(question))
    if "label" in parts and _STUCK.search(question):
        conditions.add(Condition.LABEL_STUCK)
        conditions.discard(Condition.STAINED)
    if Condition.STAINED in conditions and re.search(r"빨간\s*물|빨간물", question):
        conditions.discard(Condition.COLOURED)
    # A material inside the proposed bin ("종이류에 넣어도") is the guess, not what it is made of.
    plain = without_proposals(question)
    materials = tuple(stream for stream, p in MATERIALS.items() if p.search(plain))
    proposed = {stream for stream, p in _PROPOSALS.items() if p.search(question)}
    if Stream.PAPER_PACK in proposed:
        proposed.discard(Stream.PAPER)  # "종이팩" contains "종이"
    if len(proposed) > 1:
        # "그냥 종이랑 같이 버려도": the named bin is the proposal, "그냥" only says "as it is".
        proposed.discard(Stream.GENERAL)
    action = next((name for name, (asked, _) in _ACTIONS.items() if asked.search(question)), None)
    skip = False
    if _SKIP_RINSE.search(question):
        # "투명 페트 안 헹궈도 돼요?": may the rinse be skipped.
        action, skip = "rinse", True
    if _KEEP_ON.search(question):
        # "테이프 안 떼고 버려도 돼요?" names the removal to ask whether it may be skipped.
        kept = next((_KEPT_PART_ACTION[p] for p in parts if p in _KEPT_PART_ACTION), None)
        if kept is not None:
            action, skip = kept, True
    if action == "tape_on":
        # The tape to put on is not a part of the thing to sort.
        parts = tuple(p for p in parts if p != "tape")
    drain = bool(_DRAIN.search(question))
    deposit = bool(_DEPOSIT.search(question))
    claims = bool(_RECYCLABLE_CLAIM.search(question))
    decidable = bool(proposed or claims or drain or deposit or action)
    asks_yes_no = decidable and (
        bool(_YES_NO_END.search(question.strip()))
        or bool(_YES_NO_EN.search(question))
        or not _WH.search(question)
    )
    if _WH.search(question) and not (_YES_NO_EN.search(question) or proposed or action):
        asks_yes_no = False
    ask = Ask.YES_NO if asks_yes_no else Ask.PREPARE if parts and not conditions else Ask.WHERE
    return Reading(
        ask=ask,
        text=question,
        conditions=frozenset(conditions),
        proposed=frozenset(proposed),
        claims_recyclable=claims,
        drain=drain,
        deposit=deposit,
        as_is=bool(_AS_IS.search(question)),
        action=action,
        skip_action=skip,
        parts=parts,
        materials=materials,
        why=bool(_WHY.search(question)),
        part_topic=bool(parts) and bool(_PART_TOPIC.search(question)),
        about_waste=bool(_WASTE_WORDS.search(question)),
        follow_up=bool(_FOLLOW_UP.search(question)),
        same_bin=bool(_SAME_BIN.search(question)),
    )


# --------------------------------------------------------------------------- resolving

#: Streams whose things are recycled (a "재활용 돼요?" question is answered yes for these).
RECYCLABLE = frozenset(
    {
        Stream.PAPER,
        Stream.PAPER_PACK,
        Stream.GLASS,
        Stream.METAL,
        Stream.PLASTIC,
        Stream.CLEAR_PET,
        Stream.VINYL,
        Stream.STYROFOAM,
        Stream.CLOTHING,
        Stream.ELECTRONICS,
        Stream.BATTERY,
        Stream.LAMP,
    }
)
#: Containers that can be rinsed clean; dirt on them is a step, not a verdict.
_WASHABLE = frozenset(
    {
        Stream.PLASTIC,
        Stream.CLEAR_PET,
        Stream.STYROFOAM,
        Stream.GLASS,
        Stream.METAL,
        Stream.PAPER_PACK,
    }
)
#: Where dirt that will not come off makes the thing general waste.
_SPOILABLE = frozenset(
    {
        Stream.PLASTIC,
        Stream.CLEAR_PET,
        Stream.STYROFOAM,
        Stream.PAPER,
        Stream.PAPER_PACK,
        Stream.VINYL,
    }
)

BROKEN_GLASS_ITEM = 498
_DISPOSABLE = re.compile(r"일회용|1회용|disposable|single[- ]use", re.IGNORECASE)

_BY_PATH: dict[tuple[str, str | None], Stream] = {path: s for s, path in OFFICIAL_PATH.items()}
_BY_MAJOR: dict[str, Stream] = {
    "일반폐기물": Stream.GENERAL,
    "음식물류폐기물": Stream.FOOD,
    "대형폐기물": Stream.BULKY,
    "생활계 유해폐기물": Stream.HAZARDOUS,
    "공사장 생활폐기물": Stream.CONSTRUCTION,
    "기타": Stream.OTHER,
}


def category_stream(category: OfficialCategory) -> Stream | None:
    """The stream of one official category path, as the knowledge build decodes it."""
    stream = _BY_PATH.get((category.major, category.middle))
    if stream is not None:
        return stream
    return _BY_MAJOR.get(category.major)


def paths(item: Item | None, fallback: Stream) -> list[Stream]:
    """The distinct streams of an item's official category paths, the item's own first."""
    if item is None:
        return [fallback]
    out = [item.stream]
    for category in item.categories:
        stream = category_stream(category)
        if stream is not None and stream not in out:
            out.append(stream)
    return out


@dataclass(slots=True)
class Resolution:
    """Which rules answer the question, and the bins the answer may send the item to."""

    grounding: Grounding
    #: Where the item goes given the question: what a yes/no is decided against.
    primary: frozenset[Stream]
    #: Every bin an answer about this item may name: ``primary`` and what the rules used say
    #: under their own conditions (the clean/dirty alternative, a part's bin).
    allowed: frozenset[Stream]
    #: The condition's own sentence (a rule's exception or step), said first.
    lead: Sentence | None = None
    #: Set when the item has several official paths and the question does not pick one.
    alternatives: list[Stream] = field(default_factory=list)
    condition: Condition | None = None
    #: Steps belong to this answer (False when the lead already says all that applies).
    steps: bool = True
    notes: list[Sentence] = field(default_factory=list)


def rule_streams(rules: Sequence[Rule]) -> set[Stream]:
    """The streams of ``rules`` and every bin their own texts send something to."""
    out: set[Stream] = set()
    for rule in rules:
        out.add(rule.stream)
        texts = [rule.bin, *rule.exceptions, *(step.text for step in rule.steps)]
        for t in texts:
            out.update(named_bins(t.ko))
            out.update(named_bins(t.en))
    return out


def allowed_for(grounding: Grounding) -> frozenset[Stream]:
    """Every bin an answer about ``grounding``'s item may name, with no condition asked about:
    its official paths and what its rules say under their own conditions."""
    item = grounding.item
    own = paths(item, grounding.stream) if item is not None else [grounding.stream]
    return frozenset({grounding.stream, *own} | rule_streams(grounding.rules))


def _resolved(
    grounding: Grounding,
    primary: set[Stream],
    *,
    lead: Sentence | None = None,
    condition: Condition | None = None,
    steps: bool = True,
    extra: Sequence[Rule] = (),
) -> Resolution:
    allowed = set(primary) | rule_streams([*grounding.rules, *extra])
    return Resolution(
        grounding,
        frozenset(primary),
        frozenset(allowed),
        lead=lead,
        condition=condition,
        steps=steps,
    )


def _exception(rules: Sequence[Rule], words: re.Pattern[str], locale: Locale) -> Sentence | None:
    for rule in rules:
        for exception in rule.exceptions:
            if words.search(exception.ko) or words.search(exception.en):
                return Sentence(g._sentence(prompts.text(exception, locale)), (rule.id,))
    return None


def _soil_step(rules: Sequence[Rule], locale: Locale) -> Sentence | None:
    """A step of the item's own rules about its dirty part ("기름이 배어 든 바닥 부분은…")."""
    for rule in rules:
        if not rule.id.startswith("item."):
            continue
        for step in rule.steps:
            if step.action in ("separate", "bag") and SOIL.search(step.text.ko):
                return Sentence(g._sentence(prompts.text(step.text, locale)), (rule.id,))
    return None


_COLOUR_WORDS = re.compile(r"색깔|colou?red", re.IGNORECASE)
_SOIL_EXCEPTION = re.compile(
    r"오염|기름|음식물|양념|얼룩|헹궈도|grease|greasy|food|sauce|stain|dirty|empt", re.IGNORECASE
)


def resolve(kb: KnowledgeBase, subject: Grounding, reading: Reading, locale: Locale) -> Resolution:
    """The rules that answer ``reading`` about ``subject``, given the condition it names."""
    item = subject.item
    stream = subject.stream
    conditions = reading.conditions
    own = set(paths(item, stream)) if item is not None and item.stream is stream else {stream}

    if Condition.SWOLLEN in conditions and stream is Stream.BATTERY:
        rules = [kb.rule("item.swollen_battery")]
        return _resolved(
            Grounding(item, Stream.BATTERY, rules), {Stream.BATTERY}, condition=Condition.SWOLLEN
        )

    if Condition.BROKEN in conditions and stream is Stream.GLASS:
        broken = kb.items.get(BROKEN_GLASS_ITEM)
        grounding = g.ground(kb, Stream.NON_COMBUSTIBLE, broken)
        grounding.item = item
        return _resolved(
            grounding,
            {Stream.NON_COMBUSTIBLE},
            lead=_broken_lead(subject, locale),
            condition=Condition.BROKEN,
        )

    if Condition.CERAMIC in conditions and stream in (Stream.GLASS, Stream.PLASTIC, Stream.METAL):
        heat = re.compile(r"내열|파이렉스|pyrex|heat", re.IGNORECASE)
        rule_id = "item.heat_resistant_glass" if heat.search(reading.text) else "item.ceramics"
        rules = [kb.rule(rule_id), kb.category_rule(Stream.NON_COMBUSTIBLE)]
        return _resolved(
            Grounding(item, Stream.NON_COMBUSTIBLE, rules),
            {Stream.NON_COMBUSTIBLE},
            condition=Condition.CERAMIC,
        )

    if stream is Stream.CLEAR_PET and conditions & {Condition.COLOURED, Condition.LABEL_STUCK}:
        lead = _exception(subject.rules, _COLOUR_WORDS, locale)
        grounding = g.ground(kb, Stream.PLASTIC, None)
        grounding.item = item
        condition = (
            Condition.COLOURED if Condition.COLOURED in conditions else Condition.LABEL_STUCK
        )
        return _resolved(grounding, {Stream.PLASTIC}, lead=lead, condition=condition)

    spoiled = Condition.STAINED in conditions or (
        stream is Stream.VINYL and conditions & {Condition.SOILED, Condition.GREASY}
    )
    if spoiled and stream in _SPOILABLE:
        rules = [kb.rule("item.stained_container"), kb.category_rule(Stream.GENERAL)]
        lead = _exception(subject.rules, _SOIL_EXCEPTION, locale)
        if stream is Stream.VINYL or lead is None:
            lead = g.step_for(Grounding(item, Stream.GENERAL, rules[:1]), locale, ("bag",))
        return _resolved(
            Grounding(item, Stream.GENERAL, rules),
            {Stream.GENERAL},
            lead=lead,
            condition=Condition.STAINED,
            steps=False,
        )

    if (
        Condition.WOODEN in conditions
        and item is not None
        and stream not in (Stream.BULKY, Stream.CLOTHING)
        and (Stream.GENERAL in own or stream in (Stream.METAL, Stream.PLASTIC))
    ):
        rules = [kb.rule("item.wooden"), kb.category_rule(Stream.GENERAL)]
        return _resolved(
            Grounding(item, Stream.GENERAL, rules), {Stream.GENERAL}, condition=Condition.WOODEN
        )

    if (
        Condition.COATED in conditions
        and stream is Stream.PAPER
        and not (subject.rule_ids and subject.rule_ids[0] == "item.paper_cup")
    ):
        # "코팅된 종이", "a laminated sheet": the coating will not pulp.
        rules = [kb.rule("item.coated_paper"), kb.category_rule(Stream.GENERAL)]
        return _resolved(
            Grounding(item, Stream.GENERAL, rules), {Stream.GENERAL}, condition=Condition.COATED
        )

    if Condition.TORN in conditions and stream is Stream.CLOTHING:
        grounding = g.ground(kb, Stream.GENERAL, None)
        grounding.item = item
        general = kb.category_rule(Stream.GENERAL)
        resolution = _resolved(
            grounding,
            {Stream.GENERAL},
            lead=destination(subject_name(subject, locale), general, locale, itself=False),
            condition=Condition.TORN,
            steps=False,
            extra=subject.rules,
        )
        check = g.step_for(subject, locale, ("check",))
        resolution.notes = [check] if check is not None else []
        return resolution

    if Condition.WET in conditions and stream is Stream.PAPER:
        rules = [kb.rule("item.wet_paper")]
        return _resolved(
            Grounding(item, Stream.PAPER, rules),
            {Stream.PAPER, Stream.GENERAL},
            condition=Condition.WET,
        )

    if item is not None and len(own) > 1:
        picked = [m for m in reading.materials if m in own]
        if not picked and reading.materials and item.name_ko.endswith("의 재질"):
            # An item filed "by material" (반찬통의 재질) goes where the material said goes;
            # glass that is not a bottle is non-combustible ("유리 반찬통").
            said = reading.materials[0]
            picked = [Stream.NON_COMBUSTIBLE if said is Stream.GLASS else said]
        if not picked and Stream.NON_COMBUSTIBLE in own:
            # Glass that is not a bottle, ceramics and broken pieces take the non-combustible
            # path of an item that has one ("깨진 꽃병 유리", "도자기 화분").
            glassy = Stream.GLASS in reading.materials and Stream.GLASS not in own
            if glassy or conditions & {Condition.CERAMIC, Condition.BROKEN}:
                picked = [Stream.NON_COMBUSTIBLE]
        if picked:
            chosen = g.ground(kb, picked[0], item)
            return _resolved(chosen, {picked[0]})

    if conditions & {Condition.SOILED, Condition.GREASY, Condition.STAINED}:
        if stream is Stream.PAPER:
            lead = _soil_step(subject.rules, locale) or g.soil_exception(subject, locale)
            return _resolved(
                subject, {Stream.PAPER, Stream.GENERAL}, lead=lead, condition=Condition.SOILED
            )
        if stream in _WASHABLE:
            notes: list[Sentence] = []
            rinse = g.step_for(subject, locale, ("rinse", "empty"))
            if rinse is not None:
                notes.append(rinse)
            primary = set(own)
            if stream in _SPOILABLE:
                notes.append(g.heavy_soil(kb, subject, locale))
                primary_all = primary | {Stream.GENERAL}
            else:
                primary_all = primary
            resolution = _resolved(subject, primary, condition=Condition.SOILED)
            resolution.allowed = (
                resolution.allowed
                | primary_all
                | rule_streams([kb.rule(r) for s in notes for r in s.rule_ids])
            )
            resolution.notes = notes
            return resolution

    resolution = _resolved(subject, {stream} if stream in own else own)
    # A bulky or building-waste path is the large version of the same thing, said by the rules
    # where it matters; the paths that differ by material or state are the alternatives.
    distinct = {s for s in own if s not in (Stream.BULKY, Stream.CONSTRUCTION)}
    if _DISPOSABLE.search(reading.text) and len(distinct - {Stream.METAL}) >= 1:
        # Single-use things are plastic, paper or wood: the metal path is the reusable kind.
        distinct.discard(Stream.METAL)
    if item is not None and len(distinct) > 1 and item.stream is stream:
        resolution.alternatives = sorted(distinct, key=lambda s: s is not stream)
        resolution.primary = frozenset(distinct)
        resolution.allowed = resolution.allowed | distinct
    return resolution


def _broken_lead(subject: Grounding, locale: Locale) -> Sentence:
    deposit = any(rule.id == "item.deposit_bottle" for rule in subject.rules)
    if locale is Locale.KO:
        text = "깨진 유리는 유리병 수거함에 넣을 수 없어요."
        if deposit:
            text += " 깨진 병은 보증금도 돌려받을 수 없어요."
        return Sentence(text)
    text = "Broken glass cannot go in the glass bottle bin."
    if deposit:
        text += " A broken bottle cannot be returned for its deposit either."
    return Sentence(text)


# --------------------------------------------------------------------------- composing


def decide(reading: Reading, resolution: Resolution) -> bool | None:
    """The right yes or no for a yes/no question, or ``None`` when it cannot be said plainly."""
    if reading.ask is not Ask.YES_NO:
        return None
    rules = resolution.grounding.rules
    if reading.drain:
        return False
    if reading.deposit:
        return resolution.condition is None and any(r.id == "item.deposit_bottle" for r in rules)
    if (
        reading.skip_action
        and reading.action is not None
        and step_requiring(resolution.grounding, reading.action, Locale.KO) is not None
    ):
        # "테이프 붙은 채로 종이에 버려도 돼요?": the bin may be right, the skipped step is not.
        return False
    if reading.proposed:
        if resolution.alternatives:
            return None
        if reading.as_is and resolution.condition is Condition.SOILED:
            return False
        return bool(reading.proposed & resolution.primary)
    if reading.action is not None:
        required = step_requiring(resolution.grounding, reading.action, Locale.KO) is not None
        if reading.skip_action:
            # "May it stay on?" is answered no where a step takes it off; else not plainly.
            return False if required else None
        return required or None
    if reading.claims_recyclable:
        if resolution.alternatives:
            return None
        if reading.as_is and resolution.condition is Condition.SOILED:
            return False
        return resolution.primary <= RECYCLABLE
    return None


_STATE_IN_NAME = re.compile(
    r"greas|dirty|soiled|stain|broken|깨진|오염|더러|묻은|젖은|\bwet\b|이물질", re.IGNORECASE
)


def outside_name(reading: Reading, item: Item) -> Reading:
    """``reading`` without dirt read from words that name the item: "ketchup" in "ketchup
    squeeze bottle" is what the bottle held, not sauce on it; "기름" in "참기름병" likewise. Only
    the contents conditions (soiled, greasy) are names; broken, wooden, coloured never are."""
    contents = reading.conditions & {Condition.SOILED, Condition.GREASY}
    if not contents:
        return reading
    names = [n for n in (item.name_ko, item.name_en or "", *item.aliases) if n]
    # "greasy pizza box" names the state as well: its words stay conditions.
    words = {w.lower() for n in names if not _STATE_IN_NAME.search(n) for w in n.split()}
    text = " ".join(w for w in reading.text.split() if w.lower().strip("?!.,") not in words)
    gone = frozenset(c for c in contents if not _CONDITIONS[c].search(text))
    if not gone:
        return reading
    return replace(reading, conditions=reading.conditions - gone)


def acts_on(reading: Reading, name: str) -> bool:
    """True when the preparation the question asks about is done to ``name`` ("배터리 빼야
    돼?" is about the scanned device's battery, not about batteries as the item)."""
    if reading.action is None:
        return False
    _, required = _ACTIONS[reading.action]
    return bool(required.search(name))


def proposing(reading: Reading, stream: Stream) -> Reading:
    """``reading`` of a "…도 여기 버려요?" question once the item in context is known: the
    bin of that item is the one proposed for the item the question names."""
    return replace(reading, proposed=reading.proposed | {stream}, ask=Ask.YES_NO)


def opener(
    verdict: bool, reading: Reading, kb: KnowledgeBase, resolution: Resolution, locale: Locale
) -> Sentence:
    """The first sentence of a yes/no answer: the yes or no, and the bin it was about."""
    if verdict:
        return Sentence("네." if locale is Locale.KO else "Yes.")
    wrong = sorted(reading.proposed - resolution.primary)
    if wrong and not reading.as_is:
        where = re.sub(r"\s*\(.*?\)", "", g.bin_phrase(kb.category_rule(wrong[0]), locale))
        if locale is Locale.KO:
            return Sentence(f"아니요, {where}에 넣으면 안 돼요.")
        return Sentence(f"No, it does not go in {where}.")
    return Sentence("아니요." if locale is Locale.KO else "No.")


def destination(name: str, rule: Rule, locale: Locale, *, itself: bool) -> Sentence:
    """Where the subject goes; ``itself`` after sentences about its parts or dirt."""
    where = g.bin_phrase(rule, locale)
    if locale is Locale.KO:
        lead = f"{name} 자체를 버리는 곳" if itself else "버리는 곳"
        return Sentence(f"{lead}: {where}.", (rule.id,))
    lead = "The item itself goes" if itself else "It goes"
    return Sentence(f"{lead} in {where}.", (rule.id,))


#: How each stream's path is told apart when an item has several ("금속으로 된 것은…").
_WHEN: dict[Stream, tuple[str, str]] = {
    Stream.METAL: ("금속으로 된 것", "If it is metal"),
    Stream.PLASTIC: ("플라스틱으로 된 것", "If it is plastic"),
    Stream.PAPER: ("깨끗한 종이로 된 것", "If it is clean paper"),
    Stream.PAPER_PACK: ("종이팩", "If it is a carton"),
    Stream.GLASS: ("유리병", "If it is a glass bottle"),
    Stream.CLEAR_PET: ("투명 페트병", "If it is a clear PET bottle"),
    Stream.VINYL: ("비닐로 된 것", "If it is plastic film"),
    Stream.STYROFOAM: ("스티로폼으로 된 것", "If it is styrofoam"),
    Stream.CLOTHING: ("깨끗하고 다시 쓸 수 있는 것", "If it is clean and still usable"),
    Stream.ELECTRONICS: ("전기로 작동하는 것", "If it runs on electricity"),
    Stream.BATTERY: ("전지가 든 것", "If it holds a battery"),
    Stream.LAMP: ("조명 기구", "If it is a lamp"),
    Stream.GENERAL: (
        "나무·여러 재질이 섞인 것이나 오염된 것",
        "If it is wood, mixed materials or soiled",
    ),
    Stream.NON_COMBUSTIBLE: (
        "도자기·유리처럼 타지 않는 것",
        "If it is ceramic or non-bottle glass",
    ),
    Stream.BULKY: ("크기가 큰 것", "If it is large"),
    Stream.CONSTRUCTION: ("공사·수리에서 나온 것", "If it comes from building work"),
    Stream.FOOD: ("음식물", "If it is food"),
    Stream.MEDICINE: ("약", "If it is medicine"),
    Stream.HAZARDOUS: ("유해 물질이 든 것", "If it holds hazardous contents"),
    Stream.OTHER: ("전용 수거처가 있는 것", "If it has its own collection point"),
}


#: The general-waste path told apart from the recyclable one it is the alternative of.
_GENERAL_WHEN: dict[Stream, tuple[str, str]] = {
    Stream.CLOTHING: (
        "찢어지거나 젖었거나 오염되어 다시 쓸 수 없는 것",
        "If it is torn, wet or soiled",
    ),
    Stream.PAPER: (
        "코팅되었거나 음식물·기름으로 오염된 것",
        "If it is coated, or soiled with food or grease",
    ),
    Stream.METAL: (
        "나무 등 다른 재질이거나 여러 재질이 붙어 떨어지지 않는 것",
        "If it is wood or another material, or mixed materials that will not come apart",
    ),
}
_GENERAL_WHEN[Stream.PAPER_PACK] = _GENERAL_WHEN[Stream.PAPER]
_GENERAL_WHEN[Stream.PLASTIC] = _GENERAL_WHEN[Stream.METAL]
_GENERAL_WHEN[Stream.GLASS] = _GENERAL_WHEN[Stream.METAL]


def _when(stream: Stream, streams: Sequence[Stream]) -> tuple[str, str]:
    if stream is Stream.GENERAL:
        for other in streams:
            if other in _GENERAL_WHEN:
                return _GENERAL_WHEN[other]
    return _WHEN[stream]


def alternatives(kb: KnowledgeBase, streams: Sequence[Stream], locale: Locale) -> list[Sentence]:
    """One sentence per official path of an item, each with the condition that picks it."""
    out = [
        Sentence("재질이나 상태에 따라 버리는 곳이 달라요.")
        if locale is Locale.KO
        else Sentence("Where it goes depends on what it is made of and its state.")
    ]
    for stream in streams:
        rule = kb.category_rule(stream)
        when_ko, when_en = _when(stream, streams)
        where = g.bin_phrase(rule, locale)
        if locale is Locale.KO:
            out.append(Sentence(f"{particle(when_ko, '은', '는')} {where}에 버려요.", (rule.id,)))
        else:
            out.append(Sentence(f"{when_en}, it goes in {where}.", (rule.id,)))
    return out


#: Words of a step about a part or a leftover, whose own bin differs from the item's.
_PART_WORDS = re.compile(
    r"라벨|뚜껑|펌프|테이프|송장|손잡이|스프링|살과|과육|남은 살|label"
    r"|cap\b|pump|tape|handle|lid|meat|flesh",
    re.IGNORECASE,
)


def fitting_steps(
    grounding: Grounding, primary: frozenset[Stream], locale: Locale, *, strict: bool
) -> list[Sentence]:
    """The rules' steps that apply to this answer.

    A step sending something to a bin outside ``primary`` is about a part or a variant ("큰
    판유리는 대형폐기물로"); it is kept for a general "how do I…" about the item when it names
    a part, and left out of a yes/no or a condition's answer, which stays on the point asked.
    """
    out: list[Sentence] = []
    for sentence in g.steps(grounding, locale, limit=12):
        bins = set(named_bins(sentence.text))
        if bins <= primary or (not strict and _PART_WORDS.search(sentence.text)):
            out.append(sentence)
    return out


def step_requiring(grounding: Grounding, action: str, locale: Locale) -> Sentence | None:
    """The step that requires the preparation a yes/no question asks about."""
    _, required = _ACTIONS[action]
    for rule in grounding.rules:
        for step in rule.steps:
            if not step.applies_to(grounding.item):
                continue
            if required.search(step.text.ko) or required.search(step.text.en):
                return Sentence(g._sentence(prompts.text(step.text, locale)), (rule.id,))
    return None


#: The general-waste bag named as such (not "그냥 … 버려도", which says "as it is").
_GENERAL_BIN = re.compile(
    r"일반\s*쓰레기|종량제|\btrash\b|\bgarbage\b|general\s+waste", re.IGNORECASE
)
_BIN_WORD = re.compile(r"수거함|마대|\bbins?\b", re.IGNORECASE)
#: A bin word that needs the word before it to say which bin ("형광등 수거함"; "의류수거함"
#: says it itself, and the word before it is the item).
_BARE_BIN = re.compile(r"^(?:수거함|bins?\b)", re.IGNORECASE)
_WITH_BIN = re.compile(
    r"\b(?:together\s+)?with\s+(?:the\s+|other\s+|my\s+|regular\s+|normal\s+)*"
    r"(?:glass|plastics?|paper|metal|cans?|bottles?|pet|vinyl|styrofoam|cardboard)\b.*$",
    re.IGNORECASE,
)
_TOGETHER_WITH = re.compile(r"\S+(?:이랑|랑|하고)\s*(?=같이|함께|섞)")


def without_proposals(question: str) -> str:
    """The question without the bin it proposes, for item search: "간장병 투명 페트병 수거함에
    넣어도 돼요?" is about the soy-sauce bottle, not about a PET bottle."""
    # "…with (the) glass bottles": what follows names the bin the item is compared with.
    text = _WITH_BIN.sub(" ", question)
    # "아아 컵 투명페트병이랑 같이 버려도 돼?": the thing it would go in with is not the item.
    text = _TOGETHER_WITH.sub(" ", text)
    # A bin word and the word naming it ("형광등 수거함에", "폐의약품 수거함", "battery bin").
    words = text.split()
    bins = {i for i, w in enumerate(words) if _BIN_WORD.search(w)}
    bins |= {
        i - 1
        for i in bins
        if i > 0 and _BARE_BIN.match(words[i]) and not _BIN_WORD.search(words[i - 1])
    }
    text = " ".join(w for i, w in enumerate(words) if i not in bins)
    for stream, pattern in _PROPOSALS.items():
        if stream is Stream.GENERAL:
            pattern = _GENERAL_BIN
        # The whole word the proposal is in: "투명페트병에", "종이류로".
        text = re.sub(f"(?:{pattern.pattern})\\S*", " ", text, flags=re.IGNORECASE)
    stripped = " ".join(text.split())
    return stripped if re.search(r"\w{2,}", stripped) else question


def subject_name(subject: Grounding, locale: Locale) -> str:
    if subject.item is not None:
        return g.item_name(subject.item, locale)
    return "이 물건" if locale is Locale.KO else "the item"
