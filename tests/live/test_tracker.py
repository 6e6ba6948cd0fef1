"""When live mode scans: a steady run, once per item, a new cycle for a new item."""

from __future__ import annotations

from protocol.messages import LiveIssue
from server.live.tracker import GAP_MS, STEADY_MS, Observation, Tracker


def obs(frame: int, at_ms: float, label: str | None = "can", confidence: float = 0.9,
        issues: tuple[LiveIssue, ...] = (), sharpness: float = 3.0) -> Observation:
    return Observation(frame, at_ms, label, confidence, issues, sharpness)


def feed(tracker: Tracker, frames: list[Observation]) -> list[int]:
    """The frames on which a scan was decided (marking each scanned, as live mode does)."""
    scans = []
    for o in frames:
        decision = tracker.observe(o)
        if decision.scan:
            assert decision.best_frame is not None and o.label is not None
            scans.append(decision.best_frame)
            tracker.scanned(o.label)
    return scans


def test_a_steady_item_is_scanned_once_on_its_sharpest_frame() -> None:
    tracker = Tracker()
    frames = [obs(n, n * 250, sharpness=5.0 if n == 1 else 3.0) for n in range(12)]
    # 0, 250, 500 ms: not yet; at 750 ms the run has lasted over 600 ms.
    assert feed(tracker, frames) == [1]
    # Held on: the hint says it was scanned, and nothing more happens.
    later = tracker.observe(obs(20, 5000))
    assert later.scanned and not later.scan and later.steady == 1.0


def test_progress_grows_towards_the_scan() -> None:
    tracker = Tracker()
    steadies = [tracker.observe(obs(n, n * 200)).steady for n in range(4)]
    assert steadies == sorted(steadies) and steadies[0] == 0.0 and steadies[-1] == 1.0


def test_movement_blur_and_doubt_restart_the_run() -> None:
    tracker = Tracker()
    spoilt = [
        obs(0, 0), obs(1, 250), obs(2, 500, issues=(LiveIssue.MOVING,)),
        obs(3, 750), obs(4, 1000, issues=(LiveIssue.BLURRY,)),
        obs(5, 1250), obs(6, 1500, confidence=0.3), obs(7, 1750), obs(8, 2000),
    ]
    assert feed(tracker, spoilt) == []
    # Cut off is said, but does not spoil a scan (the item is recognised).
    assert feed(tracker, [obs(9, 2250, issues=(LiveIssue.CUT_OFF,)), obs(10, 2500)]) == [7]


def test_another_item_starts_a_new_cycle() -> None:
    tracker = Tracker()
    assert feed(tracker, [obs(n, n * 250) for n in range(4)]) == [0]
    assert feed(tracker, [obs(n, n * 250, label="bottle") for n in range(4, 9)]) == [4]
    # And back to the first: it is new again.
    assert feed(tracker, [obs(n, n * 250) for n in range(9, 14)]) == [9]


def test_the_same_item_shown_again_after_a_gap_is_scanned_again() -> None:
    tracker = Tracker()
    assert feed(tracker, [obs(n, n * 250) for n in range(4)]) == [0]
    # Moved about (no new cycle) ...
    assert feed(tracker, [obs(4, 1000, issues=(LiveIssue.MOVING,))]
                + [obs(n, n * 250) for n in range(5, 10)]) == []
    # ... put down: nothing recognised for GAP_MS ...
    gap_start = 2500
    empty = [obs(n, gap_start + (n - 10) * 250, label=None, confidence=0.1) for n in range(10, 16)]
    assert empty[-1].at_ms - gap_start >= GAP_MS - 250
    assert feed(tracker, empty) == []
    # ... and picked up again: a new cycle.
    start = empty[-1].at_ms + 250
    again = [obs(n, start + (n - 16) * 250) for n in range(16, 16 + 1 + int(STEADY_MS // 250) + 1)]
    assert feed(tracker, again) == [16]


def test_a_still_picture_counts_from_its_first_frame() -> None:
    """The first frame of a still picture shows motion (since the frame before it); the next
    one shows none, so the picture has been still since that first frame."""
    tracker = Tracker()
    moving = (LiveIssue.MOVING,)
    frames = [obs(0, 0, issues=moving), obs(1, 250, issues=moving),  # moving in
              obs(2, 500, issues=moving),  # the first still frame: changed since frame 1
              obs(3, 750), obs(4, 1000)]
    assert feed(tracker, frames) == [3]  # 1000 - 500 >= STEADY_MS: the second still frame
    # Not when the frame before was something else, or blurred.
    tracker = Tracker()
    assert feed(tracker, [obs(0, 0, label="box", issues=moving), obs(1, 250), obs(2, 500),
                          obs(3, 750)]) == [1]
    tracker = Tracker()
    assert feed(tracker, [obs(0, 0, issues=(LiveIssue.BLURRY, LiveIssue.MOVING)),
                          obs(1, 250), obs(2, 500), obs(3, 750)]) == [1]
