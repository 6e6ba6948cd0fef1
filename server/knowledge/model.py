"""Schema of the disposal knowledge base.

The knowledge base is data kept in the repository (``server/knowledge/data/``), checked
against these models when it is loaded. Facts (item names, official category paths) come from
the Ministry of Environment dictionary; every guidance sentence is our own.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from protocol.messages import OfficialCategory
from protocol.streams import Stream


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Text(_Frozen):
    """The same sentence in Korean and English."""

    ko: str = Field(min_length=1)
    en: str = Field(min_length=1)


class Step(_Frozen):
    """One preparation step: what to do (``action``: empty, rinse, peel, separate, flatten,
    remove, tie, wrap, drop_off, ...), said plainly, and why."""

    action: str
    text: Text
    why: Text | None = None
    #: For a step about a part only some of the rule's items have (a pot lid's metal handle
    #: under a rule that also covers oven dishes): words of which an item's name or aliases
    #: must contain one for the step to apply to it. Empty: every item of the rule.
    only_for: tuple[str, ...] = ()

    def applies_to(self, item: Item | None) -> bool:
        """Whether the step fits ``item``; a category answer (no item) keeps every step."""
        if not self.only_for or item is None:
            return True
        names = " ".join((item.name_ko, item.name_en or "", *item.aliases)).lower()
        return any(word.lower() in names for word in self.only_for)


class Rule(_Frozen):
    """Guidance with a stable id (``stream.paper``, ``item.receipt``, ...).

    A category rule applies to every item of its stream; an item rule adds to or replaces it
    for items whose handling differs (composite items, contamination thresholds, special bins).
    """

    id: str = Field(pattern=r"^[a-z0-9_.-]+$")
    stream: Stream
    title: Text
    steps: tuple[Step, ...]
    bin: Text = Field(description="Where it finally goes.")
    why: Text | None = None
    #: Conditions that send the item to another stream (e.g. heavy grease → general waste).
    exceptions: tuple[Text, ...] = ()
    replaces_category_rule: bool = False


class Item(_Frozen):
    """One entry of the official dictionary (id as in 분리배출.kr), with our additions."""

    id: int
    name_ko: str
    name_en: str | None = None
    #: Other names people use for the item (Korean and English, spacing variants, colloquial).
    aliases: tuple[str, ...] = ()
    #: Names the official dictionary lists as related entries. Noisy: a retrieval hint with a
    #: low weight, never a synonym.
    related: tuple[str, ...] = ()
    categories: tuple[OfficialCategory, ...] = Field(min_length=1)
    stream: Stream
    rule_ids: tuple[str, ...] = ()


class LocalRule(_Frozen):
    """Where a 시군구 handles some streams differently from the national rule (its days and
    places, say). Shown after the national guidance, headed by the district's name; written in
    our own words from the rule its district publishes, named in ``sources``."""

    id: str = Field(pattern=r"^local\.[a-z0-9_.-]+$")
    #: Current 5-digit codes (강원 51xxx, 전북 52xxx) of the districts the rule is theirs.
    districts: tuple[str, ...] = Field(min_length=1)
    streams: tuple[Stream, ...] = Field(min_length=1)
    title: Text
    #: What the district asks, said after "<district> 기준:" / "<district> rule:".
    note: Text
    #: Where it goes in that district.
    bin: Text
    #: Where the district's rule is published (its own page first, then reports of it).
    sources: tuple[str, ...] = Field(min_length=1)
    #: When the rule was last checked against its sources (YYYY-MM-DD).
    checked: str = Field(pattern=r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
