"""Names shared by things of different bins, answered with the condition for each.

"뚜껑 어디 버려요?" names no one item: a plastic cap goes with plastics, a metal one with cans, a
glass pot lid in the non-combustible sack. Naming one of them would be a guess, and "not known"
helps nobody. So a question whose head word is such a name gets a short conditional answer: each
kind, best first, with the bin its own item's rules give (the item each condition stands for is
listed here; its bin is read from the knowledge base, never written here). The sentences carry
their condition (:class:`server.coach.grounding.Conditional`), and the answer invariant holds each
one to the bins of that item alone.

A material said with the name ("금속 뚜껑", "plastic cup") keeps only the kinds of that material;
a scanned item in context keeps only the kinds of its bin, when that leaves any.

The same form answers a question whose head word several items end in but none is named
exactly (:func:`candidates_answer`): the likely items, each with its own bin, and the question
which one it is.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from protocol.messages import Locale
from protocol.streams import Stream
from server.coach import grounding as g
from server.coach import planner
from server.coach.bins import named_bins
from server.coach.grounding import Conditional, Sentence
from server.coach.korean import particle
from server.knowledge.kb import KnowledgeBase
from server.knowledge.model import Item
from server.search.text import key


@dataclass(frozen=True, slots=True)
class Kind:
    """One kind of thing a shared name may mean, and the item whose rules say where it goes."""

    ko: str
    en: str
    item_id: int


_LID = (
    Kind("플라스틱 뚜껑", "a plastic lid or cap", 531),
    Kind("금속 뚜껑", "a metal lid or cap", 535),
    Kind("유리 냄비 뚜껑", "a glass pot lid", 757),
)
_BOTTLE_CAP = (
    Kind("플라스틱 병뚜껑", "a plastic bottle cap", 531),
    Kind("금속 병뚜껑", "a metal bottle cap", 535),
)
_POT_LID = (
    Kind("유리 냄비 뚜껑", "a glass pot lid", 757),
    Kind("금속 냄비 뚜껑", "a metal pot lid", 45),
)
_CUP = (
    Kind("플라스틱 컵", "a plastic cup", 111),
    Kind("종이컵", "a paper cup", 41),
    Kind("유리컵", "a drinking glass", 503),
    Kind("도자기 머그컵", "a ceramic mug", 502),
)
_CONTAINER = (
    Kind("플라스틱 용기", "a plastic container", 531),
    Kind("유리병이나 유리 병조림 병", "a glass bottle or jar", 534),
    # Glass food-storage containers (글라스락, 파이렉스) are heat-resistant glass: the
    # non-combustible sack, never the bottle bin.
    Kind("유리 밀폐용기(내열유리)", "a glass food-storage container (heat-resistant glass)", 499),
    Kind("스티로폼 용기", "a styrofoam container", 533),
    Kind("금속 캔", "a metal can or tin", 535),
)
_BOTTLE = (
    Kind("투명 페트병", "a clear PET bottle", 123),
    Kind("유리병", "a glass bottle", 534),
    Kind("색깔 있는 페트병이나 플라스틱 병", "a coloured PET or other plastic bottle", 531),
)
_DRINK_BOTTLE = (
    Kind("투명 페트병", "a clear PET bottle", 123),
    Kind("보증금 유리병", "a deposit glass bottle", 129),
)
_CASE = (
    Kind("핸드폰 케이스", "a phone case", 484),
    Kind("렌즈 케이스", "a contact lens case", 367),
    Kind("안경 케이스", "a glasses case", 487),
)
_BAG = (
    Kind("비닐봉투", "a plastic bag", 532),
    Kind("종이봉투나 종이 쇼핑백", "a paper bag", 561),
    Kind("천 가방", "a cloth bag", 653),
)
_CAPSULE = (
    Kind("약 캡슐", "a medicine capsule", 147),
    Kind("내용물을 비운 알루미늄 커피 캡슐", "an emptied aluminium coffee capsule", 535),
    Kind("플라스틱 커피 캡슐", "a plastic coffee capsule", 542),
)
_FILM = (
    Kind("포장용 비닐 필름", "plastic packaging film", 532),
    Kind("액정 보호 필름", "a screen protector film", 458),
)
_PLATE = (
    Kind("도자기 접시", "a ceramic plate", 509),
    Kind("플라스틱 접시", "a plastic plate", 531),
    Kind("스티로폼 접시", "a styrofoam plate", 533),
    Kind("은박 접시", "a foil plate", 741),
)
_BOWL = (
    Kind("도자기 그릇", "a ceramic bowl", 509),
    Kind("플라스틱 그릇", "a plastic bowl", 531),
    Kind("멜라민 그릇", "a melamine bowl", 506),
    Kind("스테인리스 그릇", "a stainless steel bowl", 535),
)
_COFFEE_CAPSULE = (
    Kind("내용물을 비운 알루미늄 캡슐", "an emptied aluminium capsule", 535),
    Kind("플라스틱 캡슐", "a plastic capsule", 542),
)
_BULB = (
    Kind("LED 전구", "an LED bulb", 137),
    Kind("형광등(삼파장 전구)", "a fluorescent (CFL) bulb", 136),
    Kind("백열전구나 할로겐 전구", "an incandescent or halogen bulb", 542),
)
_BOARD = (
    Kind("플라스틱 도마", "a plastic chopping board", 625),
    Kind("나무 도마", "a wooden chopping board", 361),
)
_ICE_BOX = (
    Kind("스티로폼 아이스박스", "a styrofoam cool box", 636),
    Kind("플라스틱 아이스박스", "a hard plastic cool box", 469),
)
_LITTER = (
    Kind("두부 모래", "tofu litter", 423),
    Kind("벤토나이트 모래", "bentonite (clay) litter", 507),
)
_STORAGE_BOX = (
    Kind("플라스틱 리빙박스", "a plastic storage box", 182),
    Kind("천 리빙박스", "a fabric storage box", 304),
)
_SHOPPING_BAG = (
    Kind("종이 쇼핑백", "a paper shopping bag", 42),
    Kind("비닐 쇼핑백", "a plastic shopping bag", 532),
)
_GLOVES = (
    Kind("비닐장갑", "disposable plastic gloves", 108),
    Kind("고무장갑", "rubber gloves", 344),
)
_HANGER = (
    Kind("세탁소 철사 옷걸이", "a wire hanger", 61),
    Kind("플라스틱 옷걸이", "a plastic hanger", 531),
)
_TRAY = (
    Kind("스티로폼 트레이", "a styrofoam tray", 128),
    Kind("플라스틱 트레이", "a plastic tray", 115),
    Kind("은박 트레이", "a foil tray", 741),
)
_PACKING = (
    Kind("뽁뽁이 같은 비닐 완충재", "bubble wrap or plastic air-cushion packing", 106),
    Kind("종이 완충재", "paper packing", 36),
    Kind("스티로폼 완충재", "styrofoam packing", 533),
)

#: Shared names (space-free keys, English singular) and the kinds they may mean, best first.
SHARED: dict[str, tuple[Kind, ...]] = {
    **dict.fromkeys(("뚜껑", "마개", "lid", "cap"), _LID),
    **dict.fromkeys(("병뚜껑", "병마개", "bottlecap"), _BOTTLE_CAP),
    **dict.fromkeys(("냄비뚜껑", "potlid"), _POT_LID),
    **dict.fromkeys(("컵", "cup"), _CUP),
    **dict.fromkeys(("통", "용기", "container", "tub"), _CONTAINER),
    **dict.fromkeys(("병", "bottle"), _BOTTLE),
    **dict.fromkeys(("음료수병", "음료병", "drinkbottle"), _DRINK_BOTTLE),
    **dict.fromkeys(("케이스", "case"), _CASE),
    **dict.fromkeys(("봉투", "bag"), _BAG),
    **dict.fromkeys(("캡슐", "capsule"), _CAPSULE),
    **dict.fromkeys(("필름", "film"), _FILM),
    **dict.fromkeys(("접시", "plate", "dish"), _PLATE),
    **dict.fromkeys(("그릇", "bowl"), _BOWL),
    **dict.fromkeys(("커피캡슐", "캡슐커피", "coffeecapsule", "coffeepod", "pod"), _COFFEE_CAPSULE),
    **dict.fromkeys(("도마", "cuttingboard", "choppingboard"), _BOARD),
    **dict.fromkeys(("전구", "bulb", "lightbulb"), _BULB),
    **dict.fromkeys(("아이스박스", "icebox", "coolbox", "coolerbox", "cooler"), _ICE_BOX),
    **dict.fromkeys(("고양이모래", "catlitter", "litter"), _LITTER),
    **dict.fromkeys(("리빙박스", "수납박스", "storagebox", "storagebin"), _STORAGE_BOX),
    **dict.fromkeys(("쇼핑백", "shoppingbag"), _SHOPPING_BAG),
    **dict.fromkeys(("장갑", "glove"), _GLOVES),
    **dict.fromkeys(("옷걸이", "hanger", "coathanger"), _HANGER),
    **dict.fromkeys(("트레이", "tray"), _TRAY),
    **dict.fromkeys(("완충재", "포장재", "packing", "packaging"), _PACKING),
}
_LONGEST = max(len(k.split()) for k in SHARED)


def _singular(word: str) -> str:
    if word.isascii() and len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def shared_name(words: Sequence[str]) -> tuple[str, int] | None:
    """The shared name the question's words end in (one word or two run together), and where
    it starts among ``words``."""
    if not words:
        return None
    forms = [_singular(key(w)) for w in words]
    for size in (2, 1):
        if len(forms) >= size:
            joined = "".join(forms[-size:])
            if joined in SHARED:
                return joined, len(forms) - size
    return None


def _qualified(kinds: Sequence[Kind], said: Sequence[str]) -> list[Kind]:
    """The kinds that the words said before the name describe ("금속" → a metal lid, "도자기"
    → a ceramic plate): each word is part of the kind's name, or the material its name says."""
    out = []
    for kind in kinds:
        text = f"{kind.ko} {kind.en}"
        plain = key(text)
        if all(
            key(word) in plain
            or any(
                pattern.fullmatch(word) and pattern.search(text)
                for pattern in planner.MATERIALS.values()
            )
            for word in said
        ):
            out.append(kind)
    return out


def without_tail(words: Sequence[str], is_noun: Callable[[str], bool]) -> list[str]:
    """``words`` without trailing words that name nothing ("고양이 모래 버리는 **법**")."""
    out = list(words)
    while len(out) > 1 and shared_name(out[-1:]) is None and not is_noun(out[-1]):
        out.pop()
    return out


def kinds_for(
    kb: KnowledgeBase,
    words: Sequence[str],
    context_stream: Stream | None,
    is_noun: Callable[[str], bool] = lambda _: True,
) -> list[Kind] | None:
    """The kinds a question ending in a shared name may mean, or None when it names none.

    Only words that say a material or a condition may stand before the name: "컵라면 뚜껑" is
    the cup noodle's lid, a question about that item, not about lids."""
    words = without_tail(words, is_noun)
    found = shared_name(words)
    if found is None:
        return None
    name, at = found
    # Words before the name must say which kind ("금속 뚜껑"); any other ("컵라면 뚜껑", "깨진
    # 컵") makes it a question about that item or condition, for the item search to answer.
    kinds = _qualified(SHARED[name], words[:at])
    if not kinds:
        return None
    if context_stream is not None:
        settled = [k for k in kinds if _stream(kb, k) is context_stream]
        if settled:
            kinds = settled
    return kinds


def _stream(kb: KnowledgeBase, kind: Kind) -> Stream | None:
    item = kb.items.get(kind.item_id)
    return item.stream if item is not None else None


def conditional(kb: KnowledgeBase, item: Item, said: str, locale: Locale) -> Sentence:
    """ "<said>이면 버리는 곳: <the item's bin>." held to that item's own bins."""
    grounding = g.ground(kb, item.stream, item)
    condition = Conditional(said, item.id, planner.allowed_for(grounding))
    rule = grounding.main
    if rule is None or named_bins(g.bin_phrase(rule, locale))[:1] != [item.stream]:
        # An item rule whose bin covers several kinds ("일반종량제봉투 / 벤토나이트는 불연성
        # 마대") would blur the one condition said: the item's own stream says it plainly.
        rule = kb.category_rule(item.stream)
    where = g.bin_phrase(rule, locale)
    if locale is Locale.KO:
        text = f"{particle(said, '이면', '면')} 버리는 곳: {where}."
    else:
        text = f"If it is {said}, it goes in {where}."
    return Sentence(text, (rule.id,), condition=condition)


def shared_answer(
    kb: KnowledgeBase, name: str, kinds: Sequence[Kind], locale: Locale
) -> list[Sentence]:
    """The conditional answer for a shared name: the lead, one sentence per kind, the question."""
    sentences = [
        conditional(kb, kb.items[k.item_id], k.ko if locale is Locale.KO else k.en, locale)
        for k in kinds
        if k.item_id in kb.items
    ]
    if len(sentences) == 1:
        return sentences
    if locale is Locale.KO:
        lead = Sentence(f"{particle(name, '은', '는')} 재질에 따라 버리는 곳이 달라요.")
        ask = Sentence("어느 쪽인지 알려 주시면 준비 방법까지 알려 드릴게요.")
    else:
        lead = Sentence("Where it goes depends on what it is made of.")
        ask = Sentence("Tell me which it is and I'll say how to prepare it.")
    return [lead, *sentences, ask]


def candidates_answer(kb: KnowledgeBase, items: Sequence[Item], locale: Locale) -> list[Sentence]:
    """One precise question offering the likely items, each with its own bin."""
    sentences = [conditional(kb, item, _called(item, locale), locale) for item in items]
    if locale is Locale.KO:
        lead = Sentence("정확히 어떤 물건인지에 따라 버리는 곳이 달라요.")
        ask = Sentence("이 중 어느 것인가요? 아니라면 물건 이름을 조금 더 자세히 알려 주세요.")
    else:
        lead = Sentence("Where it goes depends on exactly what it is.")
        ask = Sentence("Which of these is it? If neither, tell me a little more about it.")
    return [lead, *sentences, ask]


def _called(item: Item, locale: Locale) -> str:
    """The item's name as a condition: "a clean glass bottle", "우유팩"."""
    name = g.item_name(item, locale)
    if locale is Locale.KO:
        return name
    if " and " in name:  # "Plastic bags and film packaging" takes no article
        return name[:1].lower() + name[1:]
    return g.article(name)
