"""Turns knowledge-base rules and vision signals into short sentences, each tied to rule ids.

This is the embedded backend's whole "model": every sentence it streams is either a rule's own
text or one of the few connecting templates below, and carries the ids of the rules it came
from. The scan composer and the chat's embedded answers share it, so a follow-up answer about
a metal cap reads the same as the coaching that mentioned it.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from protocol.messages import Alternative, Classification, Locale
from protocol.streams import Stream
from server.coach.korean import euro, particle
from server.coach.prompts import text
from server.knowledge.kb import KnowledgeBase
from server.knowledge.model import Item, Rule, Text

#: Below this the composer hedges and names the runner-up the vision stage offered.
LOW_CONFIDENCE = 0.6
#: Steps stated per scan; more than this and nobody reads to the end.
MAX_STEPS = 3

#: Words in a rule's exception that mark it as the "too dirty to recycle" condition.
_SOIL_WORDS = (
    "오염",
    "기름",
    "음식물",
    "이물질",
    "헹궈도",
    "soil",
    "grease",
    "greasy",
    "dirty",
    "food",
    "residue",
    "stain",
    "oil",
)

#: Parts the vision stage may report, named in both languages.
PART_NAMES: dict[str, Text] = {
    "cap": Text(ko="뚜껑", en="cap"),
    "lid": Text(ko="뚜껑", en="lid"),
    "label": Text(ko="라벨", en="label"),
    "tape": Text(ko="테이프", en="tape"),
    "foam": Text(ko="완충재", en="foam padding"),
    "straw": Text(ko="빨대", en="straw"),
    "pump": Text(ko="펌프", en="pump"),
    "spring": Text(ko="스프링", en="spring"),
    "handle": Text(ko="손잡이", en="handle"),
    "sticker": Text(ko="스티커", en="sticker"),
    "ring": Text(ko="고리", en="ring"),
    "film": Text(ko="비닐", en="plastic film"),
}

#: Step actions that already tell the person to take something apart.
_SEPARATING_ACTIONS = frozenset({"separate", "peel", "remove", "detach"})


@dataclass(frozen=True, slots=True)
class Conditional:
    """The condition a sentence states ("플라스틱 뚜껑이면 …", "If it is a paper cup, …") and
    the bins the item that condition stands for may go to, read from that item's own rules
    (:func:`server.coach.shared_names.conditional`)."""

    said: str
    item_id: int
    allowed: frozenset[Stream]


@dataclass(frozen=True, slots=True)
class Sentence:
    text: str
    rule_ids: tuple[str, ...] = ()
    #: Bins this sentence may name beyond the item's own (a part's bin, a runner-up's), for
    #: the answer invariant (``server.coach.invariant``).
    scope: frozenset[Stream] = frozenset()
    #: Set when the sentence names a bin only under a condition it states: the invariant then
    #: holds it to the bins of the condition's own item, and to nothing else.
    condition: Conditional | None = None


@dataclass(slots=True)
class Grounding:
    """The rules that apply to one item, most specific first."""

    item: Item | None
    stream: Stream
    rules: list[Rule] = field(default_factory=list)

    @property
    def rule_ids(self) -> list[str]:
        return [rule.id for rule in self.rules]

    @property
    def main(self) -> Rule | None:
        return self.rules[0] if self.rules else None


def ground(kb: KnowledgeBase, stream: Stream, item: Item | None) -> Grounding:
    """Rules for ``item`` in ``stream``; item rules come before the category rule.

    An item whose official stream differs from ``stream`` (the vision stage decided a colored
    PET bottle is plain plastic, say) contributes no item rules: its rules were written for the
    other stream and would contradict the bin we name.
    """
    item_id = item.id if item is not None and item.stream is stream else None
    rules = kb.rules_for(stream, item_id)
    category = f"stream.{stream.value}"
    rules.sort(key=lambda rule: rule.id == category)  # stable: item rules keep their order
    return Grounding(item=item, stream=stream, rules=rules)


def ground_classification(kb: KnowledgeBase, classification: Classification) -> Grounding:
    return ground(kb, classification.stream, kb.item_for_label(classification.label))


# --------------------------------------------------------------------------- sentences


def display_name(classification: Classification, locale: Locale) -> str:
    return classification.name_ko if locale is Locale.KO else classification.name_en


def item_name(item: Item, locale: Locale) -> str:
    """The item's name in ``locale``; the official Korean name when no English one exists."""
    if locale is Locale.EN and item.name_en:
        return item.name_en
    return item.name_ko


def identification(classification: Classification, locale: Locale) -> Sentence:
    name = display_name(classification, locale)
    if classification.confirmed:
        if locale is Locale.KO:
            return Sentence(f"확인해 주신 대로 {particle(name, '이에요', '예요')}.")
        return Sentence(f"You confirmed it: {article(name)}.")
    if classification.confidence >= LOW_CONFIDENCE:
        if locale is Locale.KO:
            return Sentence(f"{euro(name)} 보여요.")
        return Sentence(f"This looks like {article(name)}.")
    if locale is Locale.KO:
        return Sentence(f"{euro(name)} 보이지만 확실하지 않아요.")
    return Sentence(f"This looks like {article(name)}, but I am not sure.")


#: Materials and kinds of waste named without an article ("This looks like paper", not "a
#: paper"): uncountable in English, as the vision labels use them.
_UNCOUNTABLE = frozenset(
    {
        "paper",
        "cardboard",
        "glass",
        "metal",
        "plastic",
        "plastic packaging",
        "styrofoam",
        "vinyl",
        "plastic film",
        "clothing",
        "trash",
        "rubbish",
        "general waste",
        "food",
        "food waste",
        "medicine",
        "broken glass",
        "tissue",
        "electronics",
        "small electronics",
    }
)


def article(name: str) -> str:
    """``name`` behind an indefinite article, mid-sentence: "Drink PET bottle" → "a drink PET
    bottle". Plurals, uncountable materials ("paper") and names that already carry an article
    are left alone."""
    if len(name) > 1 and name[0].isupper() and not name[1].isupper():
        name = name[0].lower() + name[1:]
    lowered = name.lower()
    base = lowered.split(" (")[0]  # "pills (tablets)" is plural like "pills"
    if lowered.startswith(("a ", "an ", "the ")) or base.endswith("s"):
        return name
    if base in _UNCOUNTABLE:
        return name
    return ("an " if lowered[:1] in "aeiou" else "a ") + name


def alternative(kb: KnowledgeBase, alt: Alternative, locale: Locale) -> Sentence:
    """Names the runner-up and where it would go, so a wrong guess costs one glance."""
    rule = kb.category_rule(alt.stream)
    where = bin_phrase(rule, locale)
    item = kb.item_for_label(alt.label)
    # Without an English item name the stream's title reads better than a Korean name.
    if item is not None and (locale is Locale.KO or item.name_en):
        name = item_name(item, locale)
    else:
        name = text(rule.title, locale)
    if locale is Locale.KO:
        return Sentence(
            f"{particle(name, '이라면', '라면')} 버리는 곳이 달라요: {where}.", (rule.id,)
        )
    return Sentence(
        f"If it is actually {article(name.lower())}, it goes in {where} instead.", (rule.id,)
    )


#: The action of a step said only when the part it is about is asked ("글라스락 뚜껑은?").
PART_ONLY = "part"


def steps(
    grounding: Grounding, locale: Locale, *, limit: int = MAX_STEPS, rinse_first: bool = False
) -> list[Sentence]:
    """The preparation steps of the applicable rules, deduplicated, most specific first."""
    seen: set[str] = set()
    out: list[tuple[str, Sentence]] = []
    for rule in grounding.rules:
        for step in rule.steps:
            if not step.applies_to(grounding.item) or step.action == PART_ONLY:
                continue
            sentence = text(step.text, locale)
            if sentence in seen:
                continue
            seen.add(sentence)
            out.append((step.action, Sentence(_sentence(sentence), (rule.id,))))
    if rinse_first:
        # Dirty items: the rinse is the step that decides whether it is recyclable at all.
        out.sort(key=lambda pair: pair[0] not in ("rinse", "empty"))
    return [sentence for _, sentence in out[:limit]]


def unmentioned_parts(grounding: Grounding, parts: Sequence[str], locale: Locale) -> list[str]:
    """The parts no step of the applicable rules already names in the reader's language.

    Checked per language because the two texts of a step are written, not translated: the
    English may say "shipping labels" where the Korean says 송장.
    """
    texts = [text(step.text, locale).lower() for rule in grounding.rules for step in rule.steps]
    out: list[str] = []
    for part in parts:
        name = PART_NAMES.get(part)
        if name is not None and not any(text(name, locale) in t for t in texts):
            out.append(part)
    return out


def step_for(grounding: Grounding, locale: Locale, actions: Sequence[str]) -> Sentence | None:
    """The first step with one of ``actions``, trying the actions in order."""
    for action in actions:
        for rule in grounding.rules:
            for step in rule.steps:
                if step.action == action and step.applies_to(grounding.item):
                    return Sentence(_sentence(text(step.text, locale)), (rule.id,))
    return None


def separates(grounding: Grounding) -> bool:
    return any(
        step.action in _SEPARATING_ACTIONS for rule in grounding.rules for step in rule.steps
    )


def soil_exception(grounding: Grounding, locale: Locale) -> Sentence | None:
    """The rule's own "too dirty" exception, if it has one."""
    for rule in grounding.rules:
        for exception in rule.exceptions:
            if any(word in exception.ko or word in exception.en.lower() for word in _SOIL_WORDS):
                return Sentence(_sentence(text(exception, locale)), (rule.id,))
    return None


def heavy_soil(kb: KnowledgeBase, grounding: Grounding, locale: Locale) -> Sentence:
    """What to do when the photo shows heavy contamination.

    The item's own exception wins. Without one, the general-waste rule is what applies to any
    recyclable that cannot be cleaned, and it is cited as such.
    """
    own = soil_exception(grounding, locale)
    if own is not None:
        return own
    general = kb.category_rule(Stream.GENERAL)
    where = bin_phrase(general, locale)
    if locale is Locale.KO:
        return Sentence(
            f"음식물이나 기름이 헹궈도 지워지지 않으면 재활용이 안 되니 {where}에 버려 주세요.",
            (general.id,),
        )
    return Sentence(
        f"If food or grease will not rinse off, it cannot be recycled: put it in {where}.",
        (general.id,),
    )


def part_sentence(parts: Sequence[str], locale: Locale) -> Sentence | None:
    """Tells the person to take off the parts the photo shows, when no rule step already does."""
    names = [text(PART_NAMES[p], locale) for p in parts if p in PART_NAMES]
    names = list(dict.fromkeys(names))
    if not names:
        if locale is Locale.KO:
            return Sentence("다른 재질이 붙어 있다면 떼어서 재질별로 따로 버려 주세요.")
        return Sentence(
            "If other materials are attached, take them off and sort each by its own material."
        )
    if locale is Locale.KO:
        joined = ", ".join(names)
        return Sentence(f"{particle(joined, '은', '는')} 떼어서 재질에 맞게 따로 버려 주세요.")
    joined = " and ".join(names) if len(names) <= 2 else ", ".join(names)
    return Sentence(f"Take off the {joined} and sort it by its own material.")


def destination(rule: Rule, locale: Locale, *, once_clean: bool = False) -> Sentence:
    """Where the item goes. ``once_clean`` follows a "too dirty" sentence, so the two read as
    alternatives rather than as consecutive steps."""
    where = bin_phrase(rule, locale)
    if locale is Locale.KO:
        lead = "깨끗해졌다면 " if once_clean else ""
        return Sentence(f"{lead}버리는 곳: {where}.", (rule.id,))
    lead = "Once it is clean, put" if once_clean else "Then put"
    return Sentence(f"{lead} it in {where}.", (rule.id,))


def names_drop_off(grounding: Grounding) -> bool:
    """True when a step already says where to take the item (batteries, medicine...)."""
    return any(step.action == "drop_off" for rule in grounding.rules for step in rule.steps)


def reason(grounding: Grounding, locale: Locale) -> Sentence | None:
    for rule in grounding.rules:
        if rule.why is not None:
            return Sentence(_sentence(text(rule.why, locale)), (rule.id,))
    return None


def bin_phrase(rule: Rule, locale: Locale) -> str:
    """The rule's bin, ready to splice into a sentence.

    Bin texts are written as labels ("Plastic recycling bin", "A separate collection point for
    the item"). English sentences need them lower-cased behind an article; Korean templates
    put them after a colon, which reads naturally whatever the label's own grammar.
    """
    label = text(rule.bin, locale).strip().rstrip(".")
    if locale is Locale.KO:
        return label
    first, _, rest = label.partition(" ")
    if first in ("The", "A", "An"):
        return f"{first.lower()} {rest}"
    if len(first) > 1 and first[1].isupper():  # an acronym ("PET bin") keeps its case
        return f"the {label}"
    return f"the {label[:1].lower()}{label[1:]}"


def cited(sentences: Iterable[Sentence]) -> list[str]:
    return list(dict.fromkeys(rule_id for s in sentences for rule_id in s.rule_ids))


def _sentence(value: str) -> str:
    value = value.strip()
    return value if value.endswith((".", "!", "?")) else value + "."
