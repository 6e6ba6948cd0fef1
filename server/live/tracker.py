"""When a held item is steady enough to scan, and when a new item is in view (sans-I/O).

Fed one :class:`Observation` per analysed frame, the tracker answers with a
:class:`Decision`: how far the picture is towards a scan (``steady``, 0 to 1) and whether to
scan now, on which frame. The rules:

* A *steady run* is a sequence of analysed frames, all with the same confident label and none
  with an issue that spoils a scan (moving, blurred, too dark or bright, too far). Any other
  frame ends the run. Motion is the change since the previous frame, so the first frame of a
  still picture still shows it; when the frame after it does not, the run counts from that
  first frame (the picture has been the same since).
* A run that has lasted ``steady_ms`` (and has at least ``min_frames`` frames) triggers a scan
  of its best frame: the sharpest among the most confident ones.
* A label that was scanned is not scanned again while it stays in view; moving it about does
  not count as a new item. A new cycle begins when another label runs steady, or when no item
  has been recognised for ``gap_ms`` (the person put it down).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from protocol.messages import LiveIssue

STEADY_MS = 450
MIN_FRAMES = 2
GAP_MS = 1000
#: Confidence (of the stream) below which a guess does not count as recognised.
MIN_CONFIDENCE = 0.5

#: Issues with which a frame cannot be part of a steady run.
_SPOILING = frozenset(
    {
        LiveIssue.MOVING,
        LiveIssue.BLURRY,
        LiveIssue.TOO_DARK,
        LiveIssue.TOO_BRIGHT,
        LiveIssue.TOO_FAR,
    }
)


@dataclass(frozen=True, slots=True)
class Observation:
    frame: int
    at_ms: float
    """When the frame arrived (server clock, monotonic milliseconds)."""
    label: str | None
    confidence: float
    issues: tuple[LiveIssue, ...]
    sharpness: float


@dataclass(frozen=True, slots=True)
class Decision:
    steady: float
    scan: bool = False
    best_frame: int | None = None
    """The frame to scan, when ``scan``; otherwise the best frame of the run so far."""
    scanned: bool = False
    """The label in view was scanned already in this cycle."""


@dataclass
class Tracker:
    steady_ms: float = STEADY_MS
    min_frames: int = MIN_FRAMES
    gap_ms: float = GAP_MS
    min_confidence: float = MIN_CONFIDENCE
    _run_label: str | None = None
    _run_start: float = 0.0
    _run_frames: int = 0
    _best: tuple[float, float, int] | None = field(default=None, repr=False)
    _scanned_label: str | None = None
    _last_recognised: float | None = None
    _previous: Observation | None = field(default=None, repr=False)

    def observe(self, obs: Observation) -> Decision:
        previous, self._previous = self._previous, obs
        recognised = obs.label is not None and obs.confidence >= self.min_confidence
        if recognised:
            self._last_recognised = obs.at_ms
        elif (
            self._scanned_label is not None
            and self._last_recognised is not None
            and obs.at_ms - self._last_recognised >= self.gap_ms
        ):
            self._scanned_label = None  # nothing in view for a while: the next item is new
        usable = recognised and not _SPOILING.intersection(obs.issues)
        if not usable:
            self._reset_run()
            return Decision(steady=0.0, scanned=self._is_scanned(obs.label))
        assert obs.label is not None
        if obs.label != self._run_label:
            self._reset_run()
            self._run_label = obs.label
            self._run_start = obs.at_ms
            if (
                previous is not None
                and previous.label == obs.label
                and previous.confidence >= self.min_confidence
                and not _SPOILING.intersection(set(previous.issues) - {LiveIssue.MOVING})
            ):
                self._run_start = previous.at_ms
                self._run_frames = 1
        self._run_frames += 1
        score = (round(obs.confidence, 2), obs.sharpness, obs.frame)
        if self._best is None or score[:2] > self._best[:2]:
            self._best = score
        best = self._best[2]
        if self._is_scanned(obs.label):
            return Decision(steady=1.0, best_frame=best, scanned=True)
        progress = min(1.0, (obs.at_ms - self._run_start) / self.steady_ms)
        if progress >= 1.0 and self._run_frames >= self.min_frames:
            return Decision(steady=1.0, scan=True, best_frame=best)
        return Decision(steady=round(min(progress, 0.99), 2), best_frame=best)

    def scanned(self, label: str) -> None:
        """The scan of ``label`` started: hold it longer and nothing more happens."""
        self._scanned_label = label

    def _is_scanned(self, label: str | None) -> bool:
        return label is not None and label == self._scanned_label

    def _reset_run(self) -> None:
        self._run_label = None
        self._run_frames = 0
        self._best = None
