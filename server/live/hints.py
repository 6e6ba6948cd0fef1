"""The one line a live hint shows, in Korean and English.

A hint is said while the picture settles, before the full coaching: it names the best guess
as a question and gives the one preparation step that matters most for that stream. The steps
follow the official separation rules (분리배출 표시에 관한 지침 and the Ministry's item
dictionary); they are short on purpose, and the full coaching that follows the scan is the
authority. Where a stream has no single step that is always right, the hint says only to hold
the item still.
"""

from __future__ import annotations

from protocol.messages import LiveIssue, Locale
from protocol.streams import Stream

#: The issue that is said when a frame has several: the first one to fix.
ISSUE_ORDER = (
    LiveIssue.TOO_DARK,
    LiveIssue.TOO_BRIGHT,
    LiveIssue.MOVING,
    LiveIssue.BLURRY,
    LiveIssue.TOO_FAR,
    LiveIssue.CUT_OFF,
    LiveIssue.UNSURE,
)

_ISSUES: dict[LiveIssue, tuple[str, str]] = {
    LiveIssue.TOO_DARK: (
        "너무 어두워요. 밝은 곳으로 옮겨 주세요.",
        "Too dark: move to more light.",
    ),
    LiveIssue.TOO_BRIGHT: (
        "빛이 너무 강해요. 조명을 등지고 비춰 주세요.",
        "Too bright: turn away from the light.",
    ),
    LiveIssue.MOVING: ("움직이고 있어요. 잠시 멈춰 주세요.", "Moving: hold it still for a moment."),
    LiveIssue.BLURRY: (
        "흐릿해요. 초점이 맞게 조금 떨어져 주세요.",
        "Blurry: move back a little so it can focus.",
    ),
    LiveIssue.TOO_FAR: (
        "너무 멀어요. 물건을 화면 가운데 크게 보여 주세요.",
        "Too far: bring the item closer, in the middle.",
    ),
    LiveIssue.CUT_OFF: (
        "너무 가까워요. 물건 전체가 보이게 해 주세요.",
        "Too close: show the whole item.",
    ),
    LiveIssue.UNSURE: (
        "무엇인지 잘 모르겠어요. 물건 하나만 가운데에 보여 주세요.",
        "Not sure what this is: show one item in the middle.",
    ),
}

#: The step that matters most before the item goes out, per stream.
_STEPS: dict[Stream, tuple[str, str]] = {
    Stream.PAPER: ("테이프와 스티커는 떼어 주세요.", "Take off tape and stickers."),
    Stream.PAPER_PACK: (
        "비우고 헹군 뒤 펼쳐서 말려 주세요.",
        "Empty, rinse, open it flat to dry.",
    ),
    Stream.GLASS: ("뚜껑을 빼고 내용물을 비워 주세요.", "Take the cap off and empty it."),
    Stream.METAL: ("내용물을 비우고 헹궈 주세요.", "Empty and rinse it."),
    Stream.PLASTIC: (
        "비우고 헹군 뒤 다른 재질의 라벨은 떼어 주세요.",
        "Empty and rinse it; take off labels of another material.",
    ),
    Stream.CLEAR_PET: (
        "라벨을 떼고 헹군 뒤 찌그러뜨려 뚜껑을 닫아 주세요.",
        "Peel off the label, rinse, squash it, cap it.",
    ),
    Stream.VINYL: (
        "내용물을 털어 내고 깨끗한 것만 모아 주세요.",
        "Shake it empty; only clean film goes in.",
    ),
    Stream.STYROFOAM: (
        "테이프와 스티커를 떼고 깨끗한 것만 내놓아요.",
        "Take off tape and stickers; only clean pieces.",
    ),
    Stream.BATTERY: (
        "폐건전지 수거함에 따로 넣어 주세요.",
        "It goes in a battery collection box, not a bin.",
    ),
    Stream.ELECTRONICS: ("건전지가 있으면 먼저 빼 주세요.", "Take any battery out first."),
    Stream.FOOD: ("물기를 꼭 빼 주세요.", "Drain off the water first."),
}

_HOLD = ("잠시 그대로 들고 있어요.", "Hold it still.")
_SCANNING = ("자세한 안내를 불러오고 있어요.", "Getting the full guidance.")
_DONE = ("안내를 보여 드렸어요. 다음 물건을 보여 주세요.", "Guidance shown; show the next item.")


def _pick(pair: tuple[str, str], locale: Locale) -> str:
    return pair[0] if locale is Locale.KO else pair[1]


def first_issue(issues: list[LiveIssue]) -> LiveIssue | None:
    return min(issues, key=ISSUE_ORDER.index) if issues else None


def hint_text(
    locale: Locale,
    *,
    name: str | None,
    stream: Stream | None,
    issues: list[LiveIssue],
    scanning: bool = False,
    scanned: bool = False,
) -> str:
    """The hint's line: what to fix first, else the guess and its step."""
    if scanned and name is not None:
        return f"{name}: {_pick(_DONE, locale)}"
    if scanning and name is not None:
        return f"{name}: {_pick(_SCANNING, locale)}"
    issue = first_issue(issues)
    if issue is not None and (issue is not LiveIssue.UNSURE or name is None):
        text = _pick(_ISSUES[issue], locale)
        return f"{name}? {text}" if name is not None else text
    if name is None:
        return _pick(_ISSUES[LiveIssue.UNSURE], locale)
    step = _STEPS.get(stream) if stream is not None else None
    guess = f"{name}{'인가요' if locale is Locale.KO else ''}?"
    if step is None:
        return f"{guess} {_pick(_HOLD, locale)}"
    return f"{guess} {_pick(_HOLD, locale)} {_pick(step, locale)}"
