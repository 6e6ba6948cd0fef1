"""Whether a search hit names the thing the question is about, or only shares a word with it.

Item search ranks by similarity, and similarity is not identity: "유통기한 지난 연고" shares
two words with *expired food*, "bread bag" contains the word of the *bag* entry, "스프링 노트"
is one jamo away from *스프레(이)*, "고추장 통" names 고추장 but asks about its tub. Answering
about any of those sends the person to a wrong bin. A hit is taken as the subject only when the
item's own names (official, English, aliases; never the dictionary's noisy related names)
explain the question's words:

* the *head*: the question's last content word (Korean and English noun phrases end in the
  thing itself: 스프링 **노트**, bread **bag**, 고추장 **통**) must be a name of the item, the
  end of one (귤 **껍질**), end in one (가루**약**, 닭**뼈**), or be one with a typo of at most
  one jamo in a word of three or more letters (영수즁, 스치로폼);
* every other word that names items of *other* streams must be a name of this one too
  ("bread" names the bread maker, so a bread bag is not the bag entry; "감기" in "감기 물약"
  names only medicine, like the syrup, and may stay unexplained);
* a container word as the head (통, 용기, can, bottle…) is explained by an item that is a
  container of the same kind (스프레이 **통** ~ spray **can**), never by its contents
  (고추장 **통** is not 고추장, 아이스크림 **통** not an ice-cream wrapper);
* words that only say its state (유통기한 지난, old, used, 빈, 깨진…), its material or a part
  are not what the question is about, and alone they name nothing.

* a generic head said alone (bottle, 용기, 껍질) that ends names in several bins is not
  enough; a material the item is never made of (스티로폼 접시 for a porcelain plate) rules it
  out; a part as the head (캔 뚜껑) needs what it belongs to said.

Words no item is known by (망고, 국물) are ignored unless they are the head: "전기 포트" is
not an electric heating pad because "포트" is the head and no name of that item explains it.
Trailing words that are predicates or question words ("남았어요", "떼야돼", "ok", "rinse")
are not the head; an English "from…", "for…", "with…" and what follows say where it came from
or what it was for; a bin or a drain the question proposes is not the item.
The caller says "not known" and suggests the closest items instead of answering.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from protocol.streams import Stream
from server.coach import planner
from server.knowledge.model import Item
from server.search.text import content_tokens, jamo, key, tokens

#: Words about the item's state or origin, not the item: they never decide which item it is.
_STATE = frozenset(
    {
        # Korean: age, use, freshness, size, emptiness.
        "유통기한",
        "유효기간",
        "지난",
        "지난거",
        "지남",
        "오래된",
        "오래된거",
        "낡은",
        "헌",
        "새",
        "새거",
        "빈",
        "다",
        "쓴",
        "다쓴",
        "쓰던",
        "쓰다",
        "먹다",
        "먹던",
        "남은",
        "일회용",
        "1회용",
        "깨끗한",
        "큰",
        "작은",
        "고장난",
        "고장",
        "망가진",
        "안쓰는",
        "안",
        "입던",
        "집에",
        "집",
        "우리집",
        "카페",
        "편의점",
        "마트",
        "쿠팡",
        "택배",
        "택배로",
        "온",
        # English.
        "expired",
        "old",
        "used",
        "empty",
        "clean",
        "new",
        "big",
        "small",
        "large",
        "little",
        "leftover",
        "left",
        "over",
        "disposable",
        "single",
        "use",
        "worn",
        "unused",
        "spare",
        "dead",
        "finished",
        "home",
        "house",
        "household",
        "some",
        "coupang",
        "amazon",
        "starbucks",
        # Who or where it is used by, or its size: never which bin ("아기 물티슈", "캠핑 가스",
        # "portable fan"), though a few names carry one (아기 욕조, 휴대용 가스버너).
        "아기",
        "아기용",
        "애기",
        "유아",
        "유아용",
        "어린이",
        "어린이용",
        "캠핑",
        "캠핑용",
        "휴대용",
        "미니",
        "접이식",
        "차량용",
        "가정용",
        "업소용",
        "사무용",
        "baby",
        "kids",
        "kid",
        "children",
        "camping",
        "portable",
        "mini",
        "folding",
        "foldable",
        # Where in the home it was used ("욕실 타일"), never which bin.
        "욕실",
        "화장실",
        "주방",
        "부엌",
        "거실",
        "베란다",
        "안방",
        "창고",
        # Verbs and fragments that are never the thing ("스프링 달린", "leave the cap on", "it's").
        "달린",
        "달려있는",
        "leave",
        "keep",
        "s",
        # Transparency is the clear-PET question's subject, never the item's name.
        "투명",
        "투명한",
        "clear",
        "transparent",
    }
)
#: English words after which the rest of the question says where the thing came from or what
#: it was for ("ice pack from coupang", "rubber gloves for dishes"), not what it is.
_EN_BREAK = frozenset(
    {
        *("from", "for", "after", "with", "in", "at", "that", "which", "when", "because"),
        "since",
        # "…tray under apples", "…wrappers (shiny inside)": where it sits, not what it is.
        *("under", "inside", "around", "beside"),
    }
)
#: Conditions said over several words ("음식물 묻은", "빨간 물이 안 빠지는", "blood stains"):
#: taken out before the words are read.
_CONDITION_PHRASES = re.compile(
    r"(?:음식물?|기름|국물|양념|소스|짜장|카레|빨간\s*물|물)\s*(?:이|에|가)?\s*"
    r"(?:묻|배|밴|들|젖|남)\S*"
    r"|금\s*(?:이\s*)?(?:간|갔|가)\S*|안\s*(?:빠|지워|씻|닦|떨어|떼|벗겨)\S*|코팅\s*(?:이\s*)?(?:벗겨|까진|까져|긁힌)\S*|(?:색깔|색)\s*(?:이\s*)?있는|(?:빨간|붉은)\s*물\S*"
    r"|\b(?:blood|food|grease|oil|sauce|curry)\s+(?:stains?|on\s+it)\b",
    re.IGNORECASE,
)
#: "…go to the pharmacy collection box", "put them into the trash": where it would go.
_DESTINATION = re.compile(
    r"\b(?:go|goes|put|take|bring|throw|drop)\s+(?:it\s+|them\s+|these\s+)?(?:in)?to\b.*$",
    re.IGNORECASE,
)
#: "A bag of leftover nails": the thing is what the bag holds.
_CONTAINER_OF = re.compile(
    r"\b(?:an?\s+)?(?:bag|box|pile|bunch|lot|pack|set|handful|couple)\s+of\b", re.IGNORECASE
)
#: Where the question proposes to pour or flush it: not the item.
_DRAINS = re.compile(r"^(?:하수구|변기|싱크대|drain|toilet|sink|flush)", re.IGNORECASE)
#: Korean words ending a predicate ("남았어요", "떼야돼", "돌려받", "헹궈"), never a noun's head.
_KO_PREDICATE = re.compile(
    r"(?:요|다|거|것|음|남|함|됨|짐|서|면|지|니|까|죠|네|데|게|던|된|진|난|한|려|봐|줘|해|했|었|았|나|야"
    r"|돼|을|받|놔|채|는|은|도|에|로|며|든|할|될|쓴|준|온|간|운|궈|워|쳐|져|꿔|둬|와|어|아"
    # Joined and past forms: 털고, 버리고, 마신, 버린, 담긴.
    r"|고|신|린|긴"
    # Spelled as said: 알려주세여, 되나여.
    r"|여)$"
)
_EN_PREDICATE = re.compile(r"(?:ed|ing|ly)$")
#: Container words by kind: a head of one kind is explained by an item named with the same kind.
_CONTAINERS: tuple[frozenset[str], ...] = (
    frozenset(
        {"통", "용기", "병", "캔", "케이스", "can", "bottle", "container", "jar", "tub", "tube"}
    ),
    frozenset({"봉지", "봉투", "팩", "bag", "wrapper", "pouch", "packet", "sachet"}),
    frozenset({"박스", "상자", "box", "carton"}),
)
#: What a container holds, when a word before a container head names it ("신라면 박스").
_CONTENTS = frozenset({Stream.FOOD})


#: Words that name only a container of something (not "bag": a bag is also a handbag).
_HOLDERS = frozenset(
    {
        *("박스", "상자", "봉지", "용기", "병", "캔", "통", "컵"),
        *("box", "carton", "bottle", "can", "jar", "tub", "wrapper", "packet"),
    }
)


def _container_word(word: str) -> bool:
    return word in _HOLDERS


_NOT_THINGS = frozenset(
    {
        "ok",
        "okay",
        "now",
        "here",
        "there",
        "just",
        "also",
        "too",
        "still",
        "really",
        "yes",
        "no",
        "not",
        "need",
        "have",
        "get",
        "got",
        "any",
        "right",
        "correct",
        "fine",
        "allowed",
        "possible",
        "thing",
        "things",
        "stuff",
        "item",
        "separately",
        "together",
        "same",
        "different",
        "other",
        "another",
        "one",
        "ones",
        "either",
        # Pronouns and question words: never the thing ("Coffee grounds, where do they go?").
        "they",
        "them",
        "it",
        "its",
        "these",
        "those",
        "this",
        "where",
        "what",
        "which",
        "how",
        "should",
        "leave",
        "keep",
        # What is done with it and counters ("욕조 교체", "타일 몇 장", "전자담배 기기").
        "교체",
        "때",
        "처리",
        "폐기",
        "정리",
        "버리기",
        "몇",
        "장",
        "개",
        "기기",
        # Korean adverbs and pronouns ("라벨 꼭 떼야 돼요?", "이거 어디").
        "꼭",
        "좀",
        "또",
        "막",
        "너무",
        "완전",
        "전부",
        "모두",
        "다시",
        "이거",
        "요거",
        "이건",
        "그건",
        "이게",
        "그게",
        "뭐",
        "뭔가",
        "무슨",
        "어떤",
        "어느",
        "여기",
        "거기",
        "저기",
        "그거",
        "저거",
        "이것",
        "그것",
        "같이",
        "따로",
        "그럼",
        "혹시",
        "진짜",
        "어디다",
        "어디다가",
        "어케",
        "괜찮아",
        "괜찮나",
        # What the question does with it, not what it is.
        "rinse",
        "wash",
        "prepare",
        "crush",
        "flatten",
        "recycle",
        "dispose",
        "do",
        "does",
        "put",
        "go",
        "goes",
        "throw",
        "take",
        "make",
        "come",
        "off",
        "won",
        "t",
        "don",
        "money",
        "back",
        "refund",
        "deposit",
        "돈",
        "보증금",
        "환불",
        "곳",
        "데",
        "수",
    }
)

#: A word this many jamo (or letters) away from a name, in a word of at least
#: ``TYPO_MIN_LETTERS`` syllables (Latin letters: ``TYPO_MIN_LETTERS`` + 2), is a typo of it.
#: Measured on the tuning set (docs/benchmarks.md, "Chat answers", second follow-up).
TYPO_EDITS = 1
TYPO_MIN_LETTERS = 3


@dataclass(frozen=True, slots=True)
class _Names:
    """One item's names as matching forms: whole keys and their words."""

    keys: tuple[str, ...]
    words: frozenset[str]
    #: The last word of each name: what an English name is the name of ("phone case" is a case).
    heads: frozenset[str] = field(default=frozenset())
    #: The container kinds its names say it is (an index into ``_CONTAINERS``).
    containers: frozenset[int] = field(default=frozenset())


def _singular(word: str) -> str:
    if word.isascii() and len(word) > 3:
        if word.endswith("ies"):
            return word[:-3] + "y"
        if word.endswith(("ches", "shes", "sses", "xes")):
            return word[:-2]
        if word.endswith("s") and not word.endswith("ss"):
            return word[:-1]
    return word


def _forms(names: Iterable[str]) -> _Names:
    keys: list[str] = []
    words: set[str] = set()
    heads: set[str] = set()
    for name in names:
        # "Pills (tablets)": the bracket is another name of the same thing.
        for part in re.split(r"[()/·,]", name):
            name_key = key(part)
            if not name_key:
                continue
            keys.append(name_key)
            part_words = [_singular(w) for w in tokens(part)]
            words.update(part_words)
            heads.add(part_words[-1])
    containers = frozenset(
        kind
        for kind, family in enumerate(_CONTAINERS)
        for word in family
        if word in heads or any(k.endswith(word) for k in keys if not word.isascii())
    )
    return _Names(tuple(dict.fromkeys(keys)), frozenset(words), frozenset(heads), containers)


def _edits(a: str, b: str) -> int:
    """Levenshtein distance (small strings only)."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def _typo_of(word: str, name_key: str) -> bool:
    """A slip of a jamo or a letter, in a word long enough that one slip does not make another
    word: 영수즁 → 영수증, but 스프링 is not 스프레(이)."""
    if word.isascii() != name_key.isascii():
        return False
    if word.isascii():
        return (
            len(word) >= TYPO_MIN_LETTERS + 2
            and abs(len(word) - len(name_key)) <= TYPO_EDITS
            and _edits(word, name_key) <= TYPO_EDITS
        )
    if len(word) < TYPO_MIN_LETTERS or len(word) != len(name_key):
        return False
    return _edits(jamo(word), jamo(name_key)) <= TYPO_EDITS


class Vocabulary:
    """Every item's names, to tell a word that names some item from one that names none.

    Also a container of words for :func:`server.search.text.content_tokens`: a word that is
    part of a name keeps its last syllable ("떡볶이", "건전지" are not "떡볶" + 이).
    """

    def __init__(self, items: Iterable[Item]) -> None:
        self._names: dict[int, _Names] = {}
        self._streams: list[tuple[Stream, _Names]] = []
        known_keys: set[str] = set()
        known_words: set[str] = set()
        for item in items:
            own = _forms([item.name_ko, item.name_en or "", *item.aliases])
            self._names[item.id] = own
            self._streams.append((item.stream, own))
            every = _forms(item.related)
            known_keys.update(own.keys, every.keys)
            known_words.update(own.words, every.words)
        self._keys = tuple(sorted(known_keys))
        self._key_set = frozenset(known_keys)
        self._words = frozenset(known_words)
        self._joined = "\n".join(self._keys)
        self._stream_cache: dict[str, frozenset[Stream]] = {}

    def __contains__(self, word: object) -> bool:
        # Only Korean words lose a particle; an English word is never kept from the fillers.
        return (
            isinstance(word, str)
            and not word.isascii()
            and (word in self._key_set or word in self._words)
        )

    def names(self, item: Item) -> _Names:
        found = self._names.get(item.id)
        return found if found is not None else _forms([item.name_ko, item.name_en or ""])

    def is_noun(self, word: str) -> bool:
        """True when ``word`` is, or is part of, some item's name (so it names a thing)."""
        if word.isascii():
            return _singular(word) in self._words
        if len(word) >= 2 and word in self._joined:
            return True
        return word in self._words or any(
            word.endswith(k) for k in self._keys if len(k) < len(word)
        )

    def head_streams(self, word: str) -> frozenset[Stream]:
        """The streams of the items ``word`` is the head of a name of."""
        key_ = "\0" + word
        cached = self._stream_cache.get(key_)
        if cached is None:
            cached = frozenset(s for s, names in self._streams if explains(names, word, head=True))
            self._stream_cache[key_] = cached
        return cached

    def streams_of(self, word: str) -> frozenset[Stream]:
        """The streams of what ``word`` names: the items it is the head of a name of ("laptop"
        is a laptop, not a laptop pouch), else those whose names contain it ("bread")."""
        cached = self._stream_cache.get(word)
        if cached is None:
            heads = frozenset(s for s, names in self._streams if explains(names, word, head=True))
            cached = heads or frozenset(
                s for s, names in self._streams if explains(names, word, head=False)
            )
            self._stream_cache[word] = cached
        return cached


def explains(names: _Names, word: str, *, head: bool) -> bool:
    """Whether one of the item's names says ``word`` (for the head: as the thing itself)."""
    if word.isascii():
        said = names.heads if head else names.words
        return _singular(word) in said or any(_typo_of(word, k) for k in names.keys)
    for name_key in names.keys:
        if name_key == word or word.endswith(name_key) or _typo_of(word, name_key):
            return True
        if head:
            # The end of a name ("귤 껍질"), never a word before it (우유 is not 우유 곽).
            if any(_ends(h, word) for h in names.heads) or _ends(name_key, word):
                return True
        elif word in name_key:
            return True
    return False


def _ends(name: str, word: str) -> bool:
    """``word`` ends ``name`` where a word may end: the whole name, or after a syllable or more
    that is not itself the start of ``word`` (귤**껍질**; but 약통 is not the end of 치약통,
    whose last word is 통, since 치 alone names nothing)."""
    if name == word:
        return True
    if not name.endswith(word):
        return False
    rest = name[: -len(word)]
    return word.isascii() or len(rest) >= 2 or rest in _ONE_SYLLABLE_NOUNS


#: One-syllable words that stand before another noun in item names (귤 껍질, 게 껍데기).
_ONE_SYLLABLE_NOUNS = frozenset(
    {
        "귤",
        "게",
        "배",
        "무",
        "파",
        "밤",
        "굴",
        "김",
        "차",
        "쌀",
        "빵",
        "옷",
        "약",
        "물",
        "병",
        "캔",
        "종",
        "폰",
    }
)


def question_words(vocabulary: Vocabulary, question: str) -> list[str]:
    """The words that can say what the thing is: content words before an English "from…",
    without conditions said over several words, state words and drains."""
    text = _DESTINATION.sub(" ", _CONDITION_PHRASES.sub(" ", _CONTAINER_OF.sub(" ", question)))
    raw = tokens(text)
    for index, word in enumerate(raw):
        if index and word in _EN_BREAK:
            raw = raw[:index]
            break
    # "aluminum can" names a can; "can I…" asks. The search's fillers drop every "can".
    raw = [
        "cans" if w == "can" and i and raw[i + 1 : i + 2] not in _MODAL_NEXT else w
        for i, w in enumerate(raw)
    ]
    words = [_without_particles(vocabulary, w) for w in content_tokens(" ".join(raw), vocabulary)]
    out = [w for w in words if w not in _STATE and w not in _EN_BREAK and not _DRAINS.match(w)]
    return out or [w for w in words if w not in _STATE]


#: What follows a modal "can" ("…, can I get money back?").
_MODAL_NEXT = [
    [w]
    for w in (
        *("i", "you", "we", "it", "this", "these", "they", "he", "she"),
        *("go", "be", "put", "throw", "get", "recycle", "do", "have", "take", "use", "still"),
    )
]


def _soft(vocabulary: Vocabulary, word: str) -> bool:
    """A condition, material or part word: it says what the thing is made of or how it is,
    and names the thing only when it is the name ("broken wine **glass**", "frying **oil**")."""
    return _material_or_part(word) or _condition(vocabulary, word) or bool(_COLOUR.match(word))


#: A colour said of the thing ("은색인데", "흰색", "silver"): what it looks like, not what it is.
_COLOUR = re.compile(
    r"^[가-힣]{1,2}색$"
    r"|^(?:silver|gold|golden|white|black|red|yellow|pink|grey|gray|purple|shiny|metallic)$"
)


#: Particles and endings a Korean noun may carry in a question ("영수증은요", "옷도", "함에").
_PARTICLES = (
    "이에요",
    "인가요",
    "이요",
    "은요",
    "는요",
    "에서",
    "으로",
    "이랑",
    "예요",
    "이야",
    "이면",
    "까지",
    "요",
    "은",
    "는",
    "이",
    "가",
    "을",
    "를",
    "도",
    "에",
    "로",
    "랑",
    "과",
    "와",
    "의",
    "만",
    "야",
    "면",
)


def _without_particles(vocabulary: Vocabulary, word: str) -> str:
    """``word`` with particles taken off while that leaves a name ("영수증은요" → 영수증)."""
    if word.isascii() or vocabulary.is_noun(word):
        return word
    stripped = word
    for _ in range(3):
        for particle in _PARTICLES:
            rest = stripped[: -len(particle)]
            if stripped.endswith(particle) and rest:
                stripped = rest
                break
        else:
            break
        if vocabulary.is_noun(stripped):
            return stripped
    return word


def without_clause(vocabulary: Vocabulary, words: Sequence[str]) -> list[str] | None:
    """``words`` without a trailing clause of a noun and a verb ("종이컵 **커피 마신** 거",
    "플라스틱 화분 **흙 털고**"): what was in it or done to it, not what it is. None when the
    words do not end so, or the noun is a part or material (its own question)."""
    out = list(words)
    while (
        len(out) > 3
        and not out[-1].isascii()
        # "포장에 들어있던 거예요": 거 is the thing the clause is about, not a verb.
        and not out[-1].startswith(("거", "것"))
        and _KO_PREDICATE.search(out[-1])
        and not vocabulary.is_noun(out[-1])
        and _KO_PREDICATE.search(out[-2])
        and not vocabulary.is_noun(out[-2])
    ):
        # "믹서기 칼날 달린채 되나": the last of two verbs only ends the question.
        out.pop()
    if len(out) < 3 or out[-1].isascii():
        return None
    verb, noun = out[-1], out[-2]
    if vocabulary.is_noun(verb) or not _KO_PREDICATE.search(verb) or verb in _NOT_THINGS:
        return None
    if _soft(vocabulary, noun) or _container_word(noun):
        # "신라면 박스 내놓으면": a container said before the verb is the thing, not what was
        # in it.
        return None
    return out[:-2]


def search_text(vocabulary: Vocabulary, words: Sequence[str]) -> str:
    """The words to search again when the whole question matched nothing that names it: the
    words that name some item, and the head."""
    return " ".join(w for i, w in enumerate(words) if i == len(words) - 1 or vocabulary.is_noun(w))


def _condition(vocabulary: Vocabulary, word: str) -> bool:
    """A word that is a condition ("깨진", "초록색", "내열유리", "greasy"), not a name with a
    condition word in it ("소스병", "나무젓가락")."""
    for pattern in planner.CONDITION_PATTERNS:
        match = pattern.match(word)
        if match is None:
            continue
        rest = word[match.end() :]
        if not rest or _material_or_part(rest):
            return True
        if len(rest) <= 2 and not vocabulary.is_noun(rest):
            return True
    return False


def _part(word: str) -> bool:
    return any(p.fullmatch(word) for p in planner.PARTS.values())


def _material_or_part(word: str) -> bool:
    return any(p.fullmatch(word) for p in planner.MATERIALS.values()) or any(
        p.fullmatch(word) for p in planner.PARTS.values()
    )


def names_the_item(
    vocabulary: Vocabulary, item: Item, words: Sequence[str], *, materials: bool = True
) -> bool:
    """True when ``item``'s names explain ``words`` (see the module's docstring). With
    ``materials`` False a material said that the item is never made of is let pass: the
    caller then answers about that material's item instead ("컵라면 용기 스티로폼")."""
    if not words:
        return False
    names = vocabulary.names(item)
    described = [w for w in words if _soft(vocabulary, w)]
    words, soft, head_at = _read(vocabulary, names, words)
    head = words[head_at]
    if not _says_head(names, head):
        return False
    part_head = _part(head)
    container_head = _container_word(head) and item.stream not in _CONTENTS
    own = {item.stream, *planner.paths(item, item.stream)}
    said_more = any(
        explains(names, w, head=False) for w in described if w != head
    ) or _typo_of_a_name(names, head)
    # "스팸 캔 플라스틱 뚜껑": a material said just before a part is the part's.
    of_parts = {w for i, w in enumerate(words[:-1]) if _part(words[i + 1])}
    for word in described if materials else ():
        if word in of_parts:
            continue
        if word != head and not explains(names, word, head=False) and _unlike(word, own, item):
            # "스티로폼 접시" is not a porcelain plate: a material the item is never made of.
            return False
    for index, word in enumerate(words[:head_at]):
        if explains(names, word, head=False):
            said_more = True
            continue
        if (
            index + 1 < head_at
            and not word.isascii()
            and _predicate(vocabulary, names, words[index + 1])
        ):
            # "고기 굽던 석쇠": the noun before a verb is what the verb did, not the thing.
            continue
        if part_head and soft[index] and not _material_of(word, own):
            # "캔 뚜껑" is the can's lid: a lid item (냄비뚜껑) must say the can too.
            return False
        if soft[index] or not vocabulary.is_noun(word):
            continue
        if container_head and vocabulary.streams_of(word) <= _CONTENTS:
            # "신라면 박스", "우유 상자": food before a container head is what it held (or its
            # brand); the container is the thing.
            continue
        if vocabulary.streams_of(word) - {item.stream}:
            # The word names a thing of another bin that this item's names do not say.
            return False
    # Only a generic head said ("bottle caps": a pump bottle? a perfume bottle?), the end of
    # several items' names in different bins: which one is a guess.
    generic = head not in names.keys and len(vocabulary.head_streams(head)) > 1
    return said_more or not generic


def head_named(vocabulary: Vocabulary, item: Item, words: Sequence[str]) -> bool:
    """Whether ``item``'s names say the question's head word (the thing itself) and no other
    word names something else: the guard's partial acceptance ("리치 껍질": 리치 names nothing
    known; "bottle": a generic head), enough to offer the item, never to answer. A word that
    names another known item ("mirror … bottles", "쭈쭈바 껍데기") rules the item out."""
    if not words:
        return False
    names = vocabulary.names(item)
    if any(_MADE_OF.match(w) and not explains(names, w, head=False) for w in words):
        # "종이 그릇", "나무 그릇": a material the item's names do not say may be a thing of
        # another bin (a ceramic bowl is not a paper one); offering is a guess, so none.
        return False
    out, soft, head_at = _read(vocabulary, names, words)
    head = out[head_at]
    if len(head) < 2 or _part(head) or not _says_head(names, head):
        return False
    return all(
        soft[i]
        or explains(names, w, head=False)
        or _predicate(vocabulary, names, w)
        or not vocabulary.is_noun(w)
        for i, w in enumerate(out)
        if i != head_at
    )


#: Material words (planner.MATERIALS, and wood, ceramic, silicone…, which have no stream of
#: their own), for :func:`head_named`.
_MADE_OF = re.compile(
    "|".join(p.pattern for p in planner.MATERIALS.values())
    + r"|\bwood|\bbamboo|\bceramic|\bporcelain|\bsilicone|\bmelamine|\bcloth|\bfabric"
    + r"|나무|목재|원목|대나무|도자기|사기|세라믹|실리콘|멜라민|천|헝겊|고무|\brubber",
    re.IGNORECASE,
)


def loosely(vocabulary: Vocabulary, item: Item, words: Sequence[str]) -> bool:
    """Whether ``item`` names the question only by leaving out a word before the head that
    names nothing known ("리치 껍질": 껍질 ends a food peel and a dry skin alike)."""
    names = vocabulary.names(item)
    words, soft, head_at = _read(vocabulary, names, words)
    return any(
        not soft[i]
        and not _predicate(vocabulary, names, w)
        and not explains(names, w, head=False)
        and not vocabulary.is_noun(w)
        for i, w in enumerate(words[:head_at])
    )


def _read(
    vocabulary: Vocabulary, names: _Names, words: Sequence[str]
) -> tuple[list[str], list[bool], int]:
    """The words that count, which of them are soft, and where the head is."""
    out = list(words)
    soft = [_soft(vocabulary, w) for w in out]
    if not all(soft):
        # Conditions, materials and parts before the thing only describe it.
        last = max(i for i, is_soft in enumerate(soft) if not is_soft)
        keep = [i for i in range(len(out)) if not soft[i] or i > last]
        out = [out[i] for i in keep]
        soft = [soft[i] for i in keep]
    head_at = len(out) - 1
    while (
        head_at > 0
        and (
            _predicate(vocabulary, names, out[head_at])
            # "참치캔 기름", "shampoo bottle pump": a trailing material, condition or part that this
            # item is not named by describes the thing before it ("플라스틱 빨대": all soft, the
            # last is the thing).
            or (soft[head_at] and not _says_head(names, out[head_at]) and not all(soft[:head_at]))
        )
    ):
        head_at -= 1
    return out, soft, head_at


#: The streams a thing said to be of a material can be in (glass that is not a bottle is
#: non-combustible; plastic film and foam are plastics).
_MATERIAL_FITS: dict[Stream, frozenset[Stream]] = {
    Stream.METAL: frozenset({Stream.METAL}),
    Stream.PLASTIC: frozenset({Stream.PLASTIC, Stream.CLEAR_PET, Stream.VINYL, Stream.STYROFOAM}),
    Stream.GLASS: frozenset({Stream.GLASS, Stream.NON_COMBUSTIBLE}),
    Stream.PAPER: frozenset({Stream.PAPER, Stream.PAPER_PACK}),
    Stream.VINYL: frozenset({Stream.VINYL, Stream.PLASTIC}),
    Stream.STYROFOAM: frozenset({Stream.STYROFOAM}),
}
_MATERIAL_STREAMS = frozenset().union(*_MATERIAL_FITS.values())


def _unlike(word: str, own: set[Stream], item: Item) -> bool:
    """A material no path of ``item`` is made of. Items of mixed or any material (general,
    electronics, bulky…) and items filed by material (반찬통의 재질) fit every material."""
    if not own <= _MATERIAL_STREAMS or item.name_ko.endswith("의 재질"):
        return False
    said = [m for m, pattern in planner.MATERIALS.items() if pattern.fullmatch(word)]
    return bool(said) and not any(_MATERIAL_FITS[m] & own for m in said)


def _typo_of_a_name(names: _Names, word: str) -> bool:
    return any(_typo_of(word, k) for k in names.keys)


def _material_of(word: str, streams: set[Stream]) -> bool:
    """A material word of one of ``streams`` ("플라스틱" before a plastic straw)."""
    return any(
        stream in streams and pattern.fullmatch(word)
        for stream, pattern in planner.MATERIALS.items()
    )


def _says_head(names: _Names, word: str) -> bool:
    return explains(names, word, head=True) or _container_of(names, word)


def _container_of(names: _Names, word: str) -> bool:
    """ "통" after the item's name: the item is itself a container of that kind."""
    return any(
        word in family and kind in names.containers for kind, family in enumerate(_CONTAINERS)
    )


def _predicate(vocabulary: Vocabulary, names: _Names, word: str) -> bool:
    """A trailing word that says what happened to the thing ("남았어요", "shattered")."""
    if word in _NOT_THINGS:
        return True
    if explains(names, word, head=True) or vocabulary.is_noun(word):
        return False
    pattern = _EN_PREDICATE if word.isascii() else _KO_PREDICATE
    return bool(pattern.search(word))
