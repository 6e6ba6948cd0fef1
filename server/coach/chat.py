"""The follow-up chat: questions about the scanned item (or any item), answered from the rules.

``ChatService.answer`` streams deltas and ends with one :class:`ChatResult`. It does not touch
the database; :func:`converse` wraps it with the persisted, bounded memory.

How a question is grounded:

1. The guard rejects empty, oversized, unsupported-language and prompt-injection input with a
   fixed, polite reply (no backend is asked, so nothing can change the rules).
2. The *subject* is the item being discussed: an item the question names clearly (item
   search), else the scanned item, else the item of the conversation's last answer.
3. *Aspects* are what the question asks about that item: dirt or grease, a part (cap, label,
   tape...), a different material ("the cap is metal?").
4. The embedded backend answers from the subject's rules and the rules of the aspects; the LLM
   backend gets exactly those rules injected and falls back to the embedded answer.
5. With no subject, the answer says what is not known and names the closest items; it never
   guesses a rule. A question with no subject and nothing about waste is answered as off-topic.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import re
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from contextlib import aclosing
from dataclasses import dataclass, field

from openai import AsyncOpenAI

from protocol.messages import Classification, GeoPoint, Locale
from protocol.streams import Stream
from server.coach import grounding as g
from server.coach import prompts
from server.coach.grounding import Grounding, Sentence
from server.coach.guard import MAX_QUESTION_CHARS, Verdict, check
from server.coach.korean import particle
from server.coach.local import NONE, DistrictRules, LocalGuidance
from server.coach.relay import Answer, stream_answer
from server.coach.repository import ChatRepository, ChatTurn, Role
from server.coach.upstream import Deadlines, make_client, stream_completion
from server.contracts import ChatOutcome, ChatResult
from server.db import Database
from server.knowledge.kb import KnowledgeBase, get_knowledge_base
from server.knowledge.model import Item, Rule
from server.regions.districts import DistrictIndex, get_district_index
from server.search import (
    ItemSearch,
    SearchHit,
    SearchQueryError,
    build_item_search,
    get_item_search,
)
from server.settings import OpenAISettings

log = logging.getLogger(__name__)

#: Messages of earlier conversation given to a backend (question and answer count one each).
HISTORY_TURNS = 8
#: Closest items offered when a question names nothing we know.
MAX_SUGGESTIONS = 3


#: The chat stage's result types are part of the stage contract.
Outcome = ChatOutcome


# --------------------------------------------------------------------------- aspects

_SOIL = re.compile(
    r"greas|oil|dirty|soil|stain|food|residue|sauce|ketchup|mayo|sticky|wet|"
    r"기름|오염|더러|음식물|양념|소스|묻|찌꺼기|얼룩|끈적",
    re.IGNORECASE,
)
_PARTS: dict[str, re.Pattern[str]] = {
    "cap": re.compile(r"\bcaps?\b|뚜껑|마개", re.IGNORECASE),
    "lid": re.compile(r"\blids?\b", re.IGNORECASE),
    "label": re.compile(r"\blabels?\b|라벨|상표", re.IGNORECASE),
    "tape": re.compile(r"\btapes?\b|테이프", re.IGNORECASE),
    "sticker": re.compile(r"\bstickers?\b|스티커", re.IGNORECASE),
    "straw": re.compile(r"\bstraws?\b|빨대", re.IGNORECASE),
    "foam": re.compile(r"\bfoam\b|완충재|스티로폼", re.IGNORECASE),
    "pump": re.compile(r"\bpumps?\b|펌프", re.IGNORECASE),
    "handle": re.compile(r"\bhandles?\b|손잡이", re.IGNORECASE),
    "spring": re.compile(r"\bsprings?\b|스프링", re.IGNORECASE),
}
#: Materials a question may name, and the stream that material goes to on its own.
_MATERIALS: dict[Stream, re.Pattern[str]] = {
    Stream.METAL: re.compile(
        r"\bmetal|\balumin|\bsteel|\btin\b|\biron\b|금속|쇠|철|알루미늄|캔", re.IGNORECASE
    ),
    Stream.PLASTIC: re.compile(r"\bplastic|플라스틱|합성수지", re.IGNORECASE),
    Stream.GLASS: re.compile(r"\bglass|유리", re.IGNORECASE),
    Stream.PAPER: re.compile(r"\bpaper|\bcardboard|종이|골판지", re.IGNORECASE),
    Stream.VINYL: re.compile(r"\bvinyl|\bfilm\b|\bplastic bag|비닐", re.IGNORECASE),
    Stream.STYROFOAM: re.compile(r"\bstyrofoam|\bpolystyrene|스티로폼", re.IGNORECASE),
}
#: When a part's material is not said, the stream such a part usually belongs to. The answer
#: says it is the usual case and cites that stream's rule, rather than inventing an item rule.
_PART_DEFAULT: dict[str, Stream] = {
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
_WASTE_WORDS = re.compile(
    r"recycl|trash|rubbish|garbage|waste|\bbins?\b|dispos|throw|sort|rinse|wash|"
    r"버리|버려|버릴|분리|재활용|쓰레기|배출|수거|종량제|헹|씻|폐기",
    re.IGNORECASE,
)


#: Short follow-ups that only make sense about the item in context ("why?", "이건요?").
_FOLLOW_UP = re.compile(
    r"\b(why|how|it|this|that|then)\b|왜|어떻게|이거|이건|그거|그건|그럼|그러면",
    re.IGNORECASE,
)


_WHY = re.compile(r"\bwhy\b|왜|이유", re.IGNORECASE)
#: A step that already says where the thing goes ("put it with film plastics").
_DESTINATION = re.compile(
    r"\bput (it|them) (with|in)\b|\bbin\b|\bbag\b|\bgoes? (in|with)\b|"
    r"버리세요|버려|수거함|봉투|넣으세요",
    re.IGNORECASE,
)


@dataclass(frozen=True, slots=True)
class Aspects:
    soil: bool
    parts: tuple[str, ...]
    materials: tuple[Stream, ...]
    about_waste: bool

    @classmethod
    def of(cls, question: str) -> Aspects:
        parts = tuple(name for name, p in _PARTS.items() if p.search(question))
        materials = tuple(stream for stream, p in _MATERIALS.items() if p.search(question))
        if "foam" in parts:
            # "스티로폼" names both the part and the material; as a part it is the foam itself.
            materials = tuple(m for m in materials if m is not Stream.STYROFOAM)
        return cls(
            soil=bool(_SOIL.search(question)),
            parts=parts,
            materials=materials,
            about_waste=bool(_WASTE_WORDS.search(question)),
            follow_up=bool(_FOLLOW_UP.search(question)),
            why=bool(_WHY.search(question)),
        )

    follow_up: bool = False
    why: bool = False

    @property
    def any(self) -> bool:
        return self.soil or bool(self.parts) or bool(self.materials)

    @property
    def on_topic(self) -> bool:
        """Whether the question is plausibly about the item under discussion."""
        return self.any or self.about_waste or self.follow_up


# --------------------------------------------------------------------------- the plan


@dataclass(slots=True)
class Plan:
    """Everything an answer may use, decided before any backend runs."""

    locale: Locale
    question: str
    subject: Grounding | None
    aspects: Aspects
    suggestions: list[Item]
    #: Sentences of the embedded answer; also the fallback of the LLM one.
    sentences: list[Sentence]
    outcome: Outcome
    extra_rules: list[Rule] = field(default_factory=list)

    @property
    def rules(self) -> list[Rule]:
        rules = list(self.subject.rules) if self.subject else []
        rules.extend(r for r in self.extra_rules if r.id not in {x.id for x in rules})
        return rules

    @property
    def item_ids(self) -> list[int]:
        if self.subject is not None and self.subject.item is not None:
            return [self.subject.item.id]
        return [item.id for item in self.suggestions]


class ChatService:
    def __init__(
        self,
        kb: KnowledgeBase | None = None,
        search: ItemSearch | None = None,
        settings: OpenAISettings | None = None,
        *,
        client: AsyncOpenAI | None = None,
        history_turns: int = HISTORY_TURNS,
        max_tokens: int = 240,
        districts: DistrictIndex | None = None,
    ) -> None:
        self._kb = kb
        self._search = search
        self._districts = districts
        self._local: DistrictRules | None = None
        #: The LLM backend is used when an API key is configured (or a client is given).
        self.settings = settings
        self.client = client
        if client is None and settings is not None and settings.api_key is not None:
            self.client = make_client(settings)
        self.history_turns = history_turns
        self.max_tokens = max_tokens

    async def aclose(self) -> None:
        """Close the LLM backend's HTTP connection pool (on shutdown)."""
        if self.client is not None:
            await self.client.close()

    @property
    def kb(self) -> KnowledgeBase:
        if self._kb is None:
            self._kb = get_knowledge_base()
        return self._kb

    @property
    def search(self) -> ItemSearch:
        if self._search is None:
            # Searches the knowledge base this service answers from, not the shipped one.
            self._search = get_item_search() if self._kb is None else build_item_search(self._kb)
        return self._search

    @property
    def uses_llm(self) -> bool:
        return self.client is not None and self.settings is not None

    # ------------------------------------------------------------------ entry point

    async def answer(
        self,
        *,
        question: str,
        locale: Locale,
        scan_context: Classification | None,
        history: list[ChatTurn],
        location: GeoPoint | None = None,
    ) -> AsyncIterator[str | ChatResult]:
        # Item search costs tens of milliseconds of CPU (more with embeddings): off the loop, so
        # other sessions' streams keep flowing. The knowledge base and search are read-only.
        plan = await asyncio.to_thread(
            functools.partial(
                self.plan,
                question=question,
                locale=locale,
                scan_context=scan_context,
                history=history,
            )
        )
        upstream = None
        if plan.outcome is Outcome.ANSWERED and self.uses_llm:
            upstream = self._upstream(plan, scan_context, history)
        local = self.local_guidance(plan, location)
        answer = stream_answer(
            plan.locale,
            lambda: plan.sentences,
            upstream=upstream,
            injected=[rule.id for rule in plan.rules],
            label="LLM chat",
            tail=local.sentences,
        )
        # aclosing: a consumer that stops early (scan cancelled) closes the HTTP response now,
        # not whenever the garbage collector finalises the generators.
        async with aclosing(answer) as events:
            async for event in events:
                if isinstance(event, Answer):
                    yield ChatResult(
                        text=event.text,
                        item_ids=plan.item_ids,
                        rule_ids=event.rule_ids if plan.outcome is Outcome.ANSWERED else [],
                        backend=event.backend,
                        fallback_reason=event.fallback_reason,
                        outcome=plan.outcome,
                        district=local.district,
                    )
                else:
                    yield event

    def local_guidance(self, plan: Plan, location: GeoPoint | None) -> LocalGuidance:
        """The rule of the location's district for the streams the answer sends things to: the
        subject's own, then those of the parts it names. Only an answered question gets one."""
        if plan.outcome is not Outcome.ANSWERED or plan.subject is None:
            return NONE
        if self._local is None:
            self._local = DistrictRules(self.kb, self._districts or get_district_index())
        main = plan.subject.main
        streams = [main.stream] if main is not None else [plan.subject.stream]
        streams.extend(rule.stream for rule in plan.extra_rules)
        return self._local.guidance(location, streams, plan.locale)

    # ------------------------------------------------------------------ planning

    def plan(
        self,
        *,
        question: str,
        locale: Locale,
        scan_context: Classification | None,
        history: Sequence[ChatTurn],
    ) -> Plan:
        checked = check(question, locale)
        if checked.verdict is not Verdict.OK:
            return _refusal(checked.verdict, checked.locale, checked.question)
        locale, question = checked.locale, checked.question
        aspects = Aspects.of(question)
        hits, closest = self._lookup(question, locale)
        subject = self._subject(hits, aspects, scan_context, history)
        suggestions = [h.item for h in (hits or closest)][:MAX_SUGGESTIONS]
        if subject is None:
            if not hits and not aspects.about_waste and not aspects.any:
                return Plan(
                    locale, question, None, aspects, [], _off_topic(locale), Outcome.OFF_TOPIC
                )
            return Plan(
                locale,
                question,
                None,
                aspects,
                suggestions,
                _not_known(question, suggestions, locale),
                Outcome.NOT_KNOWN,
            )
        sentences, extra = self._compose(subject, aspects, locale)
        return Plan(locale, question, subject, aspects, [], sentences, Outcome.ANSWERED, extra)

    def _lookup(self, question: str, locale: Locale) -> tuple[list[SearchHit], list[SearchHit]]:
        """Items the question names (good matches) and, failing those, the closest ones."""
        try:
            result = self.search.lookup(question, limit=5, locale=locale)
        except SearchQueryError as exc:
            # The guard already bounds the question; a search refusal only means no item match.
            log.info("item search refused the question: %s", exc)
            return [], []
        return list(result.hits), list(result.suggestions)

    def _subject(
        self,
        hits: Sequence[SearchHit],
        aspects: Aspects,
        scan_context: Classification | None,
        history: Sequence[ChatTurn],
    ) -> Grounding | None:
        kb = self.kb
        named = hits[0] if hits else None
        context: Grounding | None = None
        if scan_context is not None:
            context = g.ground_classification(kb, scan_context)
        else:
            last = _last_item(kb, history)
            if last is not None:
                context = g.ground(kb, last.stream, last)
        if context is not None:
            # "Is the cap metal?" names a part or a material, not a new item: the subject stays
            # the item under discussion. Only a real item name ("and a pizza box?") moves on.
            if named is None or _is_generic(named):
                return context if (hits or aspects.on_topic) else None
            return g.ground(kb, named.item.stream, named.item)
        if named is not None:
            return g.ground(kb, named.item.stream, named.item)
        return None

    def _compose(
        self, subject: Grounding, aspects: Aspects, locale: Locale
    ) -> tuple[list[Sentence], list[Rule]]:
        kb = self.kb
        sentences: list[Sentence] = []
        extra: list[Rule] = []
        name = _subject_name(subject, locale)
        handled_material: set[Stream] = set()
        for part in aspects.parts:
            sentence, rule = self._part(subject, part, aspects.materials, locale)
            sentences.append(sentence)
            if rule is not None:
                extra.append(rule)
                handled_material.add(rule.stream)
        if aspects.soil:
            rinse = g.step_for(subject, locale, ("rinse", "empty"))
            if rinse is not None:
                sentences.append(rinse)
            sentence = g.heavy_soil(kb, subject, locale)
            sentences.append(sentence)
            extra.extend(kb.rule(rid) for rid in sentence.rule_ids if rid not in subject.rule_ids)
        if not aspects.parts:
            for stream in aspects.materials:
                if stream in handled_material or stream is subject.stream:
                    continue
                rule = kb.category_rule(stream)
                extra.append(rule)
                sentences.append(_if_material(name, rule, locale))
        itself = bool(sentences)
        if not sentences:
            sentences.extend(g.steps(subject, locale, limit=3))
        if (
            subject.main is not None
            and subject.main.stream not in handled_material
            and not (not itself and g.names_drop_off(subject))
        ):
            sentences.append(_item_destination(name, subject.main, locale, itself=itself))
        if aspects.why:
            why = g.reason(subject, locale)
            if why is not None:
                sentences.append(why)
        return sentences, extra

    def _part(
        self, subject: Grounding, part: str, materials: Sequence[Stream], locale: Locale
    ) -> tuple[Sentence, Rule | None]:
        """Where one part goes: the subject's own step about it, else the part's material."""
        kb = self.kb
        part_name = prompts.text(g.PART_NAMES[part], locale)
        if not materials:
            own = _step_about(subject, part, locale)
            if own is not None and _DESTINATION.search(own.text):
                return own, None
        stream = materials[0] if materials else _PART_DEFAULT[part]
        rule = kb.category_rule(stream)
        where = g.bin_phrase(rule, locale)
        said = bool(materials)
        if locale is Locale.KO:
            lead = "보통 " if not said else ""
            said_ko = (
                f"{particle_topic(part_name)} 떼어서 따로 버려 주세요. {lead}버리는 곳: {where}."
            )
            return Sentence(said_ko, (rule.id,)), rule
        usual = "" if said else "usually "
        return Sentence(
            f"Take the {part_name} off and sort it separately: it {usual}goes in {where}.",
            (rule.id,),
        ), rule

    # ------------------------------------------------------------------ LLM backend

    def _upstream(
        self, plan: Plan, scan_context: Classification | None, history: Sequence[ChatTurn]
    ) -> AsyncGenerator[str, None]:
        """The LLM's stream, with exactly the plan's rules injected."""
        assert self.client is not None and self.settings is not None
        names = (
            [g.item_name(plan.subject.item, plan.locale)]
            if plan.subject and plan.subject.item
            else []
        )
        messages = prompts.chat_messages(
            question=plan.question,
            locale=plan.locale,
            rules=plan.rules,
            item_names=names,
            context=scan_context,
            history=[(t.role.value, t.content) for t in history[-self.history_turns :]],
        )
        return stream_completion(
            self.client,
            model=self.settings.chat_model,
            messages=messages,
            deadlines=Deadlines.from_settings(self.settings),
            max_tokens=self.max_tokens,
        )


# --------------------------------------------------------------------------- fixed replies


def particle_topic(word: str) -> str:
    return particle(word, "은", "는")


_REFUSALS: dict[Verdict, tuple[Outcome, dict[Locale, list[str]]]] = {
    Verdict.EMPTY: (
        Outcome.INVALID,
        {
            Locale.KO: ["질문이 비어 있어요.", "궁금한 물건이나 버리는 방법을 적어 주세요."],
            Locale.EN: [
                "Your question is empty.",
                "Tell me which item or step you are unsure about.",
            ],
        },
    ),
    Verdict.TOO_LONG: (
        Outcome.INVALID,
        {
            Locale.KO: [
                "질문이 너무 길어요.",
                f"{MAX_QUESTION_CHARS}자 이내로 짧게 물어봐 주세요.",
            ],
            Locale.EN: [
                "That question is too long.",
                f"Please ask it in under {MAX_QUESTION_CHARS} characters.",
            ],
        },
    ),
    Verdict.UNSUPPORTED_LANGUAGE: (
        Outcome.INVALID,
        {
            # Said in both languages: the person evidently reads neither the session's well.
            Locale.KO: [
                "죄송해요, 한국어와 영어로만 답할 수 있어요.",
                "Sorry, I can only answer in Korean or English.",
            ],
            Locale.EN: [
                "Sorry, I can only answer in English or Korean.",
                "죄송해요, 한국어와 영어로만 답할 수 있어요.",
            ],
        },
    ),
    Verdict.INJECTION: (
        Outcome.REFUSED,
        {
            Locale.KO: [
                "그 요청은 들어드릴 수 없어요.",
                "분리배출 기준은 바꿀 수 없지만, 어떤 물건을 어떻게 버릴지는 기꺼이 도와드릴게요.",
            ],
            Locale.EN: [
                "I can't do that: the sorting rules I follow can't be changed.",
                "I'm happy to help with how to sort or prepare any item, though.",
            ],
        },
    ),
}


def _refusal(verdict: Verdict, locale: Locale, question: str) -> Plan:
    outcome, texts = _REFUSALS[verdict]
    sentences = [Sentence(t) for t in texts[locale]]
    return Plan(locale, question, None, Aspects(False, (), (), False), [], sentences, outcome)


def _off_topic(locale: Locale) -> list[Sentence]:
    if locale is Locale.KO:
        return [
            Sentence("저는 생활 쓰레기 분리배출만 도와드릴 수 있어요."),
            Sentence("버리려는 물건이나 궁금한 점을 물어봐 주세요."),
        ]
    return [
        Sentence("I can only help with sorting household waste."),
        Sentence("Ask me about an item you want to throw away."),
    ]


def _not_known(question: str, suggestions: Sequence[Item], locale: Locale) -> list[Sentence]:
    names = [g.item_name(item, locale) for item in suggestions]
    if locale is Locale.KO:
        out = [Sentence("그 물건에 대한 배출 기준은 아직 갖고 있지 않아요.")]
        if names:
            out.append(
                Sentence(
                    f"비슷한 항목으로는 {particle(', '.join(names), '이', '가')} 있어요. "
                    "이 중 하나인가요?"
                )
            )
        else:
            out.append(Sentence("물건 이름을 조금 더 구체적으로 알려 주시거나 사진을 찍어 주세요."))
        return out
    out = [Sentence("I don't have a disposal rule for that.")]
    if names:
        out.append(
            Sentence(f"The closest items I know are: {', '.join(names)}. Is it one of these?")
        )
    else:
        out.append(Sentence("Try naming the item more specifically, or take a photo of it."))
    return out


def _subject_name(subject: Grounding, locale: Locale) -> str:
    if subject.item is not None:
        return g.item_name(subject.item, locale)
    return "이 물건" if locale is Locale.KO else "the item"


def _if_material(name: str, rule: Rule, locale: Locale) -> Sentence:
    where = g.bin_phrase(rule, locale)
    if locale is Locale.KO:
        return Sentence(f"그 재질이라면 버리는 곳: {where}.", (rule.id,))
    return Sentence(f"If it is made of that, it goes in {where}.", (rule.id,))


def _item_destination(name: str, rule: Rule, locale: Locale, *, itself: bool) -> Sentence:
    """Where the subject goes; ``itself`` after sentences about its parts or dirt."""
    where = g.bin_phrase(rule, locale)
    if locale is Locale.KO:
        lead = f"{name} 자체를 버리는 곳" if itself else "버리는 곳"
        return Sentence(f"{lead}: {where}.", (rule.id,))
    lead = "The item itself goes" if itself else "It goes"
    return Sentence(f"{lead} in {where}.", (rule.id,))


def _step_about(subject: Grounding, part: str, locale: Locale) -> Sentence | None:
    names = g.PART_NAMES[part]
    for rule in subject.rules:
        for step in rule.steps:
            if names.ko in step.text.ko or names.en in step.text.en.lower():
                return Sentence(g._sentence(prompts.text(step.text, locale)), (rule.id,))
    return None


def _is_generic(hit: SearchHit) -> bool:
    """True when the search matched a part, material or dirt word rather than an item name."""
    words = hit.matched
    return (
        any(p.search(words) for p in _PARTS.values())
        or any(p.search(words) for p in _MATERIALS.values())
        or bool(_SOIL.search(words))
    )


def _last_item(kb: KnowledgeBase, history: Sequence[ChatTurn]) -> Item | None:
    """The item of the conversation's last answer that was about exactly one item."""
    for turn in reversed(history):
        if turn.role is Role.ASSISTANT and len(turn.item_ids) == 1:
            return kb.items.get(turn.item_ids[0])
    return None


# --------------------------------------------------------------------------- with memory


async def converse(
    database: Database,
    service: ChatService,
    *,
    user_id: str,
    session_id: str,
    scan_id: str | None,
    question: str,
    locale: Locale,
    scan_context: Classification | None,
    repository: ChatRepository | None = None,
    location: GeoPoint | None = None,
) -> AsyncIterator[str | ChatResult]:
    """Answer with the conversation's memory, and remember the exchange once it completes.

    The question and the answer are stored together after the answer ends, in one
    transaction: a stream cancelled half way leaves no orphan question behind.
    """
    repo = repository or ChatRepository()
    async with database.session() as session:
        history = await repo.history(
            session,
            user_id=user_id,
            session_id=session_id,
            scan_id=scan_id,
            limit=service.history_turns,
        )
    result: ChatResult | None = None
    async for event in service.answer(
        question=question,
        locale=locale,
        scan_context=scan_context,
        history=history,
        location=location,
    ):
        if isinstance(event, ChatResult):
            result = event
        yield event
    if result is None:  # pragma: no cover - answer() always ends with a result
        return
    async with database.session() as session:
        if not await repo.account_exists(session, user_id):
            log.info("not storing a chat of %s: the account was deleted", user_id)
            return
        await repo.append(
            session,
            user_id=user_id,
            session_id=session_id,
            scan_id=scan_id,
            role=Role.USER,
            content=question[: MAX_QUESTION_CHARS * 2],
        )
        await repo.append(
            session,
            user_id=user_id,
            session_id=session_id,
            scan_id=scan_id,
            role=Role.ASSISTANT,
            content=result.text,
            item_ids=result.item_ids,
            rule_ids=result.rule_ids,
        )
