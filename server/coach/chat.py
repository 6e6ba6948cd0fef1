"""The follow-up chat: questions about the scanned item (or any item), answered from the rules.

``ChatService.answer`` streams deltas and ends with one :class:`ChatResult`. It does not touch
the database; :func:`converse` wraps it with the persisted, bounded memory.

How a question is grounded:

1. The guard rejects empty, oversized, unsupported-language and prompt-injection input with a
   fixed, polite reply (no backend is asked, so nothing can change the rules).
2. The *subject* is the item being discussed: an item the question names clearly (item
   search), else the scanned item, else the item of the conversation's last answer.
3. The planner (:mod:`server.coach.planner`) reads what the question asks (where, yes/no, what
   if <condition>, how to prepare <part>), resolves the condition against the subject's rules,
   and composes the direct answer, the steps and why; :func:`server.coach.invariant.enforce`
   checks that no sentence names a bin the item's rules contradict.
4. The embedded backend answers from those rules; the LLM backend gets exactly those rules
   injected, its sentences are held to the same invariant, and it falls back to the embedded
   answer.
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
from server.coach import naming, planner, prompts, shared_names
from server.coach.bins import mentioned_bins, named_bins
from server.coach.grounding import Grounding, Sentence
from server.coach.guard import MAX_QUESTION_CHARS, Verdict, check
from server.coach.invariant import ContradictionError, enforce
from server.coach.korean import particle
from server.coach.local import NONE, DistrictRules, LocalGuidance
from server.coach.planner import Reading
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
from server.search.text import key, tokens
from server.settings import OpenAISettings

log = logging.getLogger(__name__)

#: Messages of earlier conversation given to a backend (question and answer count one each).
HISTORY_TURNS = 8
#: Closest items offered when a question names nothing we know.
MAX_SUGGESTIONS = 3


#: The chat stage's result types are part of the stage contract.
Outcome = ChatOutcome


# --------------------------------------------------------------------------- the subject

#: A name the question matches this well is the item it is about. Below it (a shared syllable
#: or two: 드라이기 ~ 건조대, 떡볶이 ~ 떡메모지) the match is a guess: with a scanned item in
#: context the scan stays the subject, and without one the answer says it does not know.
#: Measured on server/evals/chat_questions.jsonl (docs/benchmarks.md, "Chat answers").
STRONG_MATCH = 0.62
#: One-syllable names are whole words in Korean but also pieces of others (병 is a bottle and
#: an illness, 약 medicine and "weak"): they name a new item only with no item in context.
_MIN_NEW_SUBJECT_CHARS = 2

# --------------------------------------------------------------------------- the plan


@dataclass(slots=True)
class Plan:
    """Everything an answer may use, decided before any backend runs."""

    locale: Locale
    question: str
    subject: Grounding | None
    reading: Reading
    suggestions: list[Item]
    #: Sentences of the embedded answer; also the fallback of the LLM one.
    sentences: list[Sentence]
    outcome: Outcome
    extra_rules: list[Rule] = field(default_factory=list)
    #: The bins an answer may name (the invariant the LLM's sentences are held to).
    allowed: frozenset[Stream] = frozenset()

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
        self._vocabulary: naming.Vocabulary | None = None
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
    def vocabulary(self) -> naming.Vocabulary:
        if self._vocabulary is None:
            self._vocabulary = naming.Vocabulary(self.kb.items.values())
        return self._vocabulary

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
        if plan.outcome is Outcome.ANSWERED and plan.subject is not None and self.uses_llm:
            upstream = self._upstream(plan, scan_context, history)
        local = self.local_guidance(plan, location)
        answer = stream_answer(
            plan.locale,
            lambda: plan.sentences,
            upstream=upstream,
            injected=[rule.id for rule in plan.rules],
            label="LLM chat",
            tail=local.sentences,
            allowed=plan.allowed,
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
        reading = planner.read(question)
        asked = _spaced(planner.without_proposals(question), self.vocabulary)
        found: tuple[list[SearchHit], list[SearchHit], list[str], list[SearchHit]] | None = None
        for variant in _variants(asked, self.vocabulary):
            # "가방 (에코백)", "old blanket / duvet": the name said another way is tried when
            # the question as a whole names nothing.
            attempt = self._named(variant, question, locale)
            if found is None or attempt[3]:
                found = attempt
            if attempt[3]:
                break
        hits, closest, words, named = found or ([], [], [], [])
        if not named:
            # "트레이 (고기 받침)": a shared name may be said in one of the variants.
            for variant in _variants(asked, self.vocabulary)[1:]:
                said = naming.question_words(self.vocabulary, variant)
                if shared_names.kinds_for(self.kb, said, None, self.vocabulary.is_noun):
                    words = said
                    break
        if (
            named
            and naming.loosely(self.vocabulary, named[0].item, words)
            and any(h.item.stream is not named[0].item.stream for h in named[1:])
        ):
            # The head fits items of different bins and the word that would choose between
            # them is unknown: asking is right, picking the higher score is a guess.
            named = []
        context = self._context(scan_context, history)
        shared = shared_names.kinds_for(
            self.kb,
            words,
            context.stream if context is not None else None,
            self.vocabulary.is_noun,
        )
        if (
            shared is not None
            and context is None
            and len(shared) > 1
            and (not named or _only_shared_name(named[0], question, words, self.vocabulary))
        ):
            # "뚜껑 어디 버려요?": a name that things of different bins share, said alone or
            # with a material that leaves several kinds. Whatever item the search ranks first
            # is a guess: the answer gives each kind its own bin, under its condition.
            return self._conditional(question, locale, reading, words, shared)
        subject = self._subject(hits, named, reading, context, question)
        if subject is not None and subject.item is not None:
            # "케찹 용기", "참기름병": a condition word inside the item's own name is not dirt.
            reading = planner.outside_name(reading, subject.item)
        if (
            reading.same_bin
            and context is not None
            and subject is not None
            and subject.item is not None
            and (
                not (context.item is not None and subject.item.id == context.item.id)
                or bool(reading.conditions)
            )
        ):
            # "물티슈도 여기 버려요?": the scanned item's bin is proposed for the one named;
            # "It's a brown one, same bin?": for the scanned item in the condition said.
            reading = planner.proposing(reading, context.stream)
        suggestions = [h.item for h in (hits or closest)][:MAX_SUGGESTIONS]
        if subject is None and shared:
            return self._conditional(question, locale, reading, words, shared)
        if subject is None:
            candidates = self._candidates(hits, words)
            if candidates:
                # Items whose names end in the question's head word, none named exactly: one
                # precise question, each likely item with its own bin; never one bin guessed.
                return self._asking(question, locale, reading, candidates)
            if (
                not hits
                and not reading.about_waste
                and not reading.any
                and not any(
                    self.vocabulary.is_noun(w) for w in words if len(w) >= (3 if w.isascii() else 2)
                )
            ):
                return Plan(
                    locale, question, None, reading, [], _off_topic(locale), Outcome.OFF_TOPIC
                )
            return Plan(
                locale,
                question,
                None,
                reading,
                suggestions,
                _not_known(question, suggestions, locale),
                Outcome.NOT_KNOWN,
            )
        sentences, extra, allowed = self.compose(subject, reading, locale)
        return Plan(
            locale, question, subject, reading, [], sentences, Outcome.ANSWERED, extra, allowed
        )

    def _named(
        self, asked: str, question: str, locale: Locale
    ) -> tuple[list[SearchHit], list[SearchHit], list[str], list[SearchHit]]:
        """The search hits for ``asked``, its closest items, its words, and the hits whose
        names explain those words (:mod:`server.coach.naming`)."""
        hits, closest = self._lookup(asked, locale)
        words = naming.question_words(self.vocabulary, asked)
        named = [h for h in hits if naming.names_the_item(self.vocabulary, h.item, words)]
        again = naming.search_text(self.vocabulary, words)
        if not named and again and again != asked:
            # Conditions and predicates dilute a long question's match ("떡볶이 먹은 용기 빨간
            # 물이 안 지워져요"): the words that name the thing are searched on their own.
            retry, retry_closest = self._lookup(again, locale)
            named = [h for h in retry if naming.names_the_item(self.vocabulary, h.item, words)]
            if named:
                hits, closest = retry, retry_closest
        shorter = None if named else naming.without_clause(self.vocabulary, words)
        if shorter:
            # "종이컵 커피 마신 거": the clause after the name says what was in it.
            retry, retry_closest = self._lookup(" ".join(shorter), locale)
            named = [h for h in retry if naming.names_the_item(self.vocabulary, h.item, shorter)]
            if named:
                hits, closest, words = retry, retry_closest, shorter
        if not named:
            # "컵라면 용기 스티로폼": the paper item is named, in a material it is never made of;
            # the material said decides (see _material_named), so that hit is kept for it.
            named = [
                h
                for h in hits[:1]
                if naming.names_the_item(self.vocabulary, h.item, words, materials=False)
                and _material_named(hits, h, question) is not h
            ]
        return hits, closest, words, named

    def _conditional(
        self,
        question: str,
        locale: Locale,
        reading: Reading,
        words: Sequence[str],
        kinds: Sequence[shared_names.Kind],
    ) -> Plan:
        """The answer to a shared name: each kind it may mean with its own bin."""
        said = shared_names.without_tail(words, self.vocabulary.is_noun)
        found = shared_names.shared_name(said)
        name = " ".join(said[found[1] :]) if found is not None else question
        sentences = shared_names.shared_answer(self.kb, name, kinds, locale)
        items = [self.kb.items[k.item_id] for k in kinds if k.item_id in self.kb.items]
        return self._checked_plan(question, locale, reading, items, sentences)

    def _candidates(self, hits: Sequence[SearchHit], words: Sequence[str]) -> list[Item]:
        """The hits whose names end in the question's head word (the guard accepted them
        partly: some other word is unexplained, or the head is generic), best first."""
        out: list[Item] = []
        for hit in hits:
            if len(out) == MAX_SUGGESTIONS:
                break
            if hit.item in out or not _names_an_item(hit):
                continue
            if any(g.item_name(i, Locale.EN) == g.item_name(hit.item, Locale.EN) for i in out):
                continue  # two entries of one name (the dictionary's 생수병 twins)
            if naming.head_named(self.vocabulary, hit.item, words):
                out.append(hit.item)
        # One item offered is one bin guessed under another name: only a choice is asked.
        return out if len(out) > 1 else []

    def _asking(
        self, question: str, locale: Locale, reading: Reading, items: Sequence[Item]
    ) -> Plan:
        sentences = shared_names.candidates_answer(self.kb, items, locale)
        return self._checked_plan(question, locale, reading, items, sentences)

    def _checked_plan(
        self,
        question: str,
        locale: Locale,
        reading: Reading,
        items: Sequence[Item],
        sentences: list[Sentence],
    ) -> Plan:
        """A conditional answer, through the invariant: every sentence naming a bin states the
        condition whose item's own rules allow it, and nothing else may name one."""
        try:
            checked = enforce(sentences, frozenset())
        except ContradictionError:
            log.exception("a conditional answer contradicted its items' rules")
            return Plan(
                locale,
                question,
                None,
                reading,
                list(items),
                _not_known(question, items, locale),
                Outcome.NOT_KNOWN,
            )
        return Plan(locale, question, None, reading, list(items), checked, Outcome.ANSWERED)

    def _lookup(self, question: str, locale: Locale) -> tuple[list[SearchHit], list[SearchHit]]:
        """Items the question names (good matches) and, failing those, the closest ones."""
        try:
            result = self.search.lookup(question, limit=5, locale=locale)
        except SearchQueryError as exc:
            # The guard already bounds the question; a search refusal only means no item match.
            log.info("item search refused the question: %s", exc)
            return [], []
        hits = [h for h in result.hits if not planner.other_sense(key(h.matched), question)]
        return hits, list(result.suggestions)

    def _context(
        self, scan_context: Classification | None, history: Sequence[ChatTurn]
    ) -> Grounding | None:
        """The item of the conversation: the scan's, else the last answer's."""
        if scan_context is not None:
            return g.ground_classification(self.kb, scan_context)
        last = _last_item(self.kb, history)
        return g.ground(self.kb, last.stream, last) if last is not None else None

    def _subject(
        self,
        hits: Sequence[SearchHit],
        strong: Sequence[SearchHit],
        reading: Reading,
        context: Grounding | None,
        question: str,
    ) -> Grounding | None:
        """The item under discussion: the scan's (or the last answer's) unless the question
        clearly names another one. ``strong`` are the hits whose names explain the question
        (:mod:`server.coach.naming`); a hit that only shares a word with it is never the
        subject."""
        kb = self.kb
        # "라벨 … 페트병": the item the part belongs to, not an item named after the part.
        named = next((h for h in strong if _names_an_item(h)), strong[0] if strong else None)
        # A material said besides the name overrides it; any hit of that material may answer.
        named = _material_named(hits, named, question)
        if context is not None:
            # "뚜껑은요?", "병이 깨졌는데" name a part, a condition or the item itself: the
            # subject stays. Only a strong match on a real item name ("그럼 우유팩은?") moves on.
            moves = (
                named is not None
                and _names_an_item(named)
                and named.score >= STRONG_MATCH
                and len(key(named.matched)) >= _MIN_NEW_SUBJECT_CHARS
                and key(named.matched) in key(question)
                and not _same_thing(named, context)
                and not planner.acts_on(reading, named.matched)
            )
            if moves and named is not None:
                return g.ground(kb, named.item.stream, named.item)
            return context if (hits or reading.on_topic) else None
        if named is not None:
            return g.ground(kb, named.item.stream, named.item)
        return None

    def compose(
        self, subject: Grounding, reading: Reading, locale: Locale
    ) -> tuple[list[Sentence], list[Rule], frozenset[Stream]]:
        """The answer: direct answer first, then steps, then why; checked by the invariant."""
        kb = self.kb
        resolution = planner.resolve(kb, subject, reading, locale)
        grounding = resolution.grounding
        name = planner.subject_name(subject, locale)
        sentences: list[Sentence] = []
        extra: list[Rule] = [r for r in grounding.rules if r.id not in subject.rule_ids]
        verdict = planner.decide(reading, resolution)
        if verdict is not None:
            sentences.append(planner.opener(verdict, reading, kb, resolution, locale))
        primary = resolution.primary
        # What the person asked to do ("라벨 떼야 돼요?"): the step that says so answers it.
        done_parts: set[str] = set()
        if verdict and reading.action is not None:
            step = planner.step_requiring(grounding, reading.action, locale)
            if step is not None:
                sentences.append(step)
                done_parts.update(reading.parts)
        part_streams: set[Stream] = set()
        part_sentences: list[Sentence] = []
        for part in reading.parts if resolution.condition is None else ():
            if part in done_parts or _is_the_item(part, subject):
                continue
            sentence, rule = self._part(
                grounding, part, planner.part_materials(reading.text, part), locale
            )
            part_sentences.append(sentence)
            if rule is not None:
                extra.append(rule)
                part_streams.add(rule.stream)
        part_bins = {named_bins(s.text)[0] for s in part_sentences if named_bins(s.text)}
        if verdict is not None and reading.part_topic and reading.proposed and part_bins:
            # "글라스락 뚜껑은 플라스틱으로 버리면 돼?" proposes a bin for the part, not the body.
            verdict = bool(reading.proposed & part_bins)
            sentences[0] = planner.opener(verdict, reading, kb, resolution, locale)
        # "뚜껑은요?" asks about the part: it answers first. "테이프 붙은 스티로폼 박스" asks
        # about the box: the box's bin first, the tape after.
        itself = bool(part_sentences) and reading.part_topic
        if itself:
            sentences.extend(part_sentences)
        if resolution.lead is not None:
            sentences.append(resolution.lead)
        sentences.extend(resolution.notes)
        if resolution.alternatives:
            sentences.extend(planner.alternatives(kb, resolution.alternatives, locale))
            extra.extend(kb.category_rule(s) for s in resolution.alternatives)
        strict = verdict is not None or resolution.condition is not None
        steps: list[Sentence] = []
        if resolution.steps and not resolution.alternatives and not itself:
            limit = 2 if strict or resolution.notes else 3
            steps = planner.fitting_steps(grounding, primary, locale, strict=strict)[:limit]
            steps = [s for s in steps if s not in sentences]
        main = grounding.main
        said = {b for s in sentences for b in named_bins(s.text)}
        if (
            main is not None
            and not resolution.alternatives
            and not (itself and main.stream in part_streams)
            and not said & primary
        ):
            # The direct answer: where it goes, before how to prepare it. A step of the rule
            # that already names the bin says it in the rule's own words.
            own = next((s for s in steps if set(named_bins(s.text)) & primary), None)
            if own is not None and not itself:
                steps.remove(own)
                sentences.append(own)
            else:
                sentences.append(planner.destination(name, main, locale, itself=itself))
        sentences.extend(steps)
        if not itself:
            sentences.extend(s for s in part_sentences if s not in sentences)
        if reading.why or verdict is False or resolution.condition is not None:
            why = g.reason(grounding, locale)
            if why is not None and why not in sentences:
                sentences.append(why)
        for s in resolution.notes:
            extra.extend(kb.rule(r) for r in s.rule_ids if r not in subject.rule_ids)
        allowed = resolution.allowed | part_streams
        try:
            checked = enforce(sentences, allowed)
        except ContradictionError:
            # A bug in a template or a rule text; the person still gets the rule's own bin.
            log.exception("the composed answer contradicted the item's rules; sending its bin")
            checked = [planner.destination(name, main, locale, itself=False)] if main else []
        return checked, list({r.id: r for r in extra}.values()), frozenset(allowed)

    def _part(
        self, subject: Grounding, part: str, materials: Sequence[Stream], locale: Locale
    ) -> tuple[Sentence, Rule | None]:
        """Where one part goes: the subject's own step about it, else the part's material."""
        kb = self.kb
        part_name = prompts.text(g.PART_NAMES[part], locale)
        if not materials:
            own = _step_about(subject, part, locale)
            if own is not None and named_bins(own.text):
                return own, None
        stream = materials[0] if materials else planner.part_default(part, subject.stream)
        rule = kb.category_rule(stream)
        where = g.bin_phrase(rule, locale)
        said = bool(materials)
        scope = frozenset({stream})
        if locale is Locale.KO:
            lead = "보통 " if not said else ""
            said_ko = (
                f"{particle_topic(part_name)} 떼어서 따로 버려 주세요. {lead}버리는 곳: {where}."
            )
            return Sentence(said_ko, (rule.id,), scope), rule
        usual = "" if said else "usually "
        return Sentence(
            f"Take the {part_name} off and sort it separately: it {usual}goes in {where}.",
            (rule.id,),
            scope,
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
            checked=" ".join(s.text for s in plan.sentences),
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
    return Plan(locale, question, None, planner.read(""), [], sentences, outcome)


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
    # A suggestion named like a bin ("캔·금속류") would read as advice: only items are offered.
    names = [
        name
        for name in (g.item_name(item, locale) for item in suggestions)
        if not mentioned_bins(name)
    ]
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


def _step_about(subject: Grounding, part: str, locale: Locale) -> Sentence | None:
    names = g.PART_NAMES[part]
    for rule in subject.rules:
        for step in rule.steps:
            if not step.applies_to(subject.item):
                continue  # a pot lid's metal rim is not a glass container's lid
            if names.ko in step.text.ko or names.en in step.text.en.lower():
                return Sentence(g._sentence(prompts.text(step.text, locale)), (rule.id,))
    return None


_BRACKETS = re.compile(r"\(([^()]*)\)")
_SLASH = re.compile(r"\s*/\s*")


def _variants(asked: str, vocabulary: naming.Vocabulary) -> list[str]:
    """``asked``, then the name said another way: the text outside brackets, the text inside
    them, and each side of a slash ("old blanket / duvet")."""
    out = [asked]
    inner = " ".join(_BRACKETS.findall(asked)).strip()
    if (
        inner
        and not re.search(r"\d", inner)
        and not any(vocabulary.is_noun(w) for w in tokens(inner) if len(w) > 2)
    ):
        # "(reusable)", "(non-electric)" qualify the thing: leaving them out would be a guess
        # ("(CR2032)", a model, may be left out).
        return out
    if inner:
        outer = " ".join(_BRACKETS.sub(" ", asked).split())
        out.extend([outer, inner])
    if "/" in asked and not inner:
        out.extend(part for part in _SLASH.split(asked) if part.strip())
    # "Where do milk cartons go? My building only has a paper bin.": one sentence at a time.
    out.extend(part for part in re.split(r"(?<=[?.!])\s+", asked) if part.strip())
    return [asked, *(v for v in dict.fromkeys(out[1:]) if v != asked and re.search(r"\w{2,}", v))]


#: Question words run into the name ("형광등어디버려요"): split off before the search.
_GLUED = re.compile(
    r"(?<=[가-힣]{2})(?=(?:어디|어떻게|어케|버려|버리|버릴|분리수거|분리배출|재활용)[가-힣]*$)"
)


def _spaced(text: str, vocabulary: naming.Vocabulary) -> str:
    """``text`` with question words glued to a name split off: "형광등어디버려요" → "형광등
    어디버려요". A word that is itself a name is left whole."""
    out = []
    for word in text.split():
        core = word.rstrip("?!.")
        if not vocabulary.is_noun(core):
            word = _GLUED.sub(" ", word, count=1)
        out.append(word)
    return " ".join(out)


def _only_shared_name(
    hit: SearchHit, question: str, words: Sequence[str], vocabulary: naming.Vocabulary
) -> bool:
    """Whether the question says no more than the shared name it ends in: said alone
    ("아이스박스", though one kind's official name), or the hit's own name is not said."""
    found = shared_names.shared_name(shared_names.without_tail(words, vocabulary.is_noun))
    if found is not None and found[1] == 0:
        return True
    return key(hit.matched) not in key(question)


def _names_an_item(hit: SearchHit) -> bool:
    """False when the search matched a part, material, condition or dirt word, not an item."""
    words = key(hit.matched)
    return not (
        any(p.fullmatch(words) for p in planner.PARTS.values())
        or any(p.fullmatch(words) for p in planner.MATERIALS.values())
        or bool(planner.SOIL.fullmatch(words))
    )


def _material_named(
    hits: Sequence[SearchHit], named: SearchHit | None, question: str
) -> SearchHit | None:
    """The hit to answer about when the question names a material the best item contradicts.

    "컵라면 용기 스티로폼" matches the index's *paper* cup-noodle container by name, but the
    person said what theirs is made of: an item whose own name states another material gives
    way to the best hit of the material said. The material must be said besides the name the
    search matched ("plastic wrap" is the name of cling film), and the question must not say
    the item's own material too ("종이컵 플라스틱이에요?" is still about a paper cup).
    """
    if named is None:
        return named
    rest = re.sub(re.escape(named.matched), " ", question, flags=re.IGNORECASE)
    said = {m for m, pattern in planner.MATERIALS.items() if pattern.search(rest)}
    item = named.item
    if not said or item.stream in said:
        return named
    stated = [
        m
        for m, pattern in planner.MATERIALS.items()
        if pattern.search(item.name_ko) or pattern.search(item.name_en or "")
    ]
    # A PET bottle is plastic even where its name does not say so ("사이다병 유리").
    stated.extend(m for m in _STREAM_MATERIAL.get(item.stream, ()) if m not in stated)
    if not stated or any(m in said or planner.MATERIALS[m].search(question) for m in stated):
        return named
    return next((h for h in hits if h.item.stream in said), named)


#: The material a packaging stream's items are made of.
_STREAM_MATERIAL: dict[Stream, tuple[Stream, ...]] = {
    Stream.CLEAR_PET: (Stream.PLASTIC,),
    Stream.PLASTIC: (Stream.PLASTIC,),
    Stream.GLASS: (Stream.GLASS,),
    Stream.METAL: (Stream.METAL,),
    Stream.PAPER: (Stream.PAPER,),
    Stream.PAPER_PACK: (Stream.PAPER,),
    Stream.VINYL: (Stream.VINYL,),
    Stream.STYROFOAM: (Stream.STYROFOAM,),
}


def _is_the_item(part: str, subject: Grounding) -> bool:
    """True when the "part" is the item itself (a question about a label, a tape)."""
    if subject.item is None:
        return False
    names = g.PART_NAMES[part]
    item = subject.item
    return names.ko in item.name_ko or names.en in (item.name_en or "").lower()


def _same_thing(hit: SearchHit, context: Grounding) -> bool:
    """True when the named item is the one in context, or one its scan cannot tell apart."""
    return context.item is not None and hit.item.id == context.item.id


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
