"""The embedded classifier: EfficientNet-Lite0 + the trained head, on the CPU, no network.

How one photo is judged (thresholds are module constants: the override and refine ones were
chosen on TrashNet's validation split with ``scripts/calibrate_vision.py`` for the first head;
``DOUBT_MIN`` and ``UNFAMILIAR_MAX_CONFIDENCE`` were set by reasoning, not searched, and their
effect measured on the tune photos by ``scripts/train_vision.py``; figures in
``docs/benchmarks.md``):

1. The head gives probabilities over its classes (``taxonomy.HEAD_KINDS``); the backbone gives
   ImageNet probabilities for free from the same pass, and the head measures how unlike its
   training photos the photo is (*novelty*, ``head.Head.novelty``).
2. If ImageNet's top class belongs to an *override* group for a stream the head cannot name
   (electronics, tissue) and the group holds at least ``OVERRIDE_SURE`` of the
   probability, or at least ``OVERRIDE_MIN`` and more than the head's top class, the group
   wins: the head would force these into one of its classes. The second condition keeps a
   confident head from being overruled by texture (crumpled paper looks like a shirt to
   ImageNet now and then); the first lets an unmistakable laptop through however sure the
   head is, since softmax heads are often sure of things they never saw. Food, clothing and
   plastic-bag groups override only a head that was never taught those streams (this head
   was taught all three: film since the foil and film classes, and on the tune photos it did
   at least as well without the bag override as with it), and no group overrides a head that
   sees a battery (``NEVER_OVERRIDDEN``): there its evidence only becomes doubt.
3. Otherwise the head's class stands, possibly *refined* by the strongest refine group (bottle,
   water bottle, cup, box) holding at least ``REFINE_MIN``: glass + bottle is a glass bottle,
   plastic + water bottle a clear PET bottle.
4. ``confidence`` is the probability of the chosen *stream* (cardboard and paper both count for
   paper), since the stream decides what the user does. Two kinds of doubt lower it:
   ImageNet evidence for a look-alike in another stream (a goblet for a glass bottle, a
   plastic bag for general waste, a coin-like round object for metal: a coin cell) caps it
   at one minus that evidence, and a photo unlike the
   training photos (novelty above 1) caps it at ``UNFAMILIAR_MAX_CONFIDENCE``, below the
   clarify cut-off: the app asks instead of naming something it never learnt.
5. The look-alikes ImageNet saw join the alternatives, so the question offers them.

The other signals are reported with the confidence they deserve and no more. Parts and
``mixed`` describe what the item usually consists of; the models do not see a cap or a label.
Contamination is read off the ImageNet food classes (leftovers in a container look like food to
it) and never goes above ``CONTAMINATION_MAX_CONFIDENCE``: a greasy film or a few drops are
beyond what these models resolve.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protocol.messages import Alternative, Classification, Signal
from protocol.streams import Stream
from server.contracts import ScanInput
from server.vision.backbone import Backbone, Floats, preprocess
from server.vision.head import Head, softmax
from server.vision.images import DecodedImage, decode_image
from server.vision.manifest import MODELS_DIR, Manifest, load_manifest
from server.vision.taxonomy import (
    FOOD_INDICES,
    GROUP_SHAPE,
    HEAD_KINDS,
    IMAGENET_GROUPS,
    ImageNetGroup,
    ItemKind,
)

OVERRIDE_SURE = 0.5
OVERRIDE_MIN = 0.35
REFINE_MIN = 0.25
#: Shape from ImageNet only when a shape group holds this much probability.
SHAPE_MIN = 0.3
CONTAMINATION_MAX_CONFIDENCE = 0.5
#: Food probability above which a container is reported lightly / heavily soiled.
FOOD_LIGHT = 0.05
FOOD_HEAVY = 0.25
MAX_ALTERNATIVES = 3
#: Confidence ceiling for a photo unlike any training photo (novelty above 1): under
#: ``clarify.CLARIFY_BELOW``, so the app asks.
UNFAMILIAR_MAX_CONFIDENCE = 0.5
#: ImageNet evidence for a look-alike in another stream that starts to count as doubt.
DOUBT_MIN = 0.05
#: Head classes no ImageNet override replaces. Battery packs and chargers look like modems,
#: radios and cassette players to ImageNet: on the tune photos the electronics override took
#: two batteries the head was sure of (0.99 and 1.0) and no other photo. A battery answered as
#: electronics loses the battery bin; answered as a battery with electronics as the question's
#: other choice (the override's evidence caps the confidence), neither ends in the general bag.
NEVER_OVERRIDDEN = frozenset({"battery"})

_FOOD = np.array(sorted(FOOD_INDICES))


@dataclass(frozen=True, slots=True)
class Evidence:
    """Both models' outputs for one image, before interpretation."""

    head: Floats
    """Probabilities over ``Head.classes``."""
    imagenet: Floats
    """Probabilities over the 1000 ImageNet classes."""
    novelty: float = 0.0
    """Distance to the training photos over the fitted threshold; above 1: unfamiliar."""


class EmbeddedClassifier:
    """:class:`~server.contracts.VisionStage` backed by the files in ``models/``.

    The models load lazily on first use (or eagerly with :meth:`load`), once, under a lock;
    afterwards every call is lock-free and may run in parallel threads. ``threads`` is
    onnxruntime's intra-op thread count per call (0: all cores).
    """

    def __init__(self, models_dir: Path = MODELS_DIR, *, threads: int = 1) -> None:
        # One onnxruntime thread per call by default: on the 2-core machine it measured
        # 9 ms p50 / 10 ms p95 steadily, while two threads went from 5 to 23 ms p50 with
        # whatever else ran (bench/vision_bench.py, docs/benchmarks.md). Concurrent scans
        # then run in parallel threads instead of fighting over the same cores.
        self._models_dir = models_dir
        self._threads = threads
        self._lock = threading.Lock()
        self._loaded: tuple[Manifest, Backbone, Head] | None = None

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        """Verify checksums and load the models. Raises ``ModelIntegrityError`` on mismatch."""
        if self._loaded is not None:
            return
        with self._lock:
            if self._loaded is not None:
                return
            manifest = load_manifest(self._models_dir)
            backbone = Backbone(
                manifest.verified_path(str(manifest.meta["backbone"])), threads=self._threads
            )
            head = Head.load(manifest.verified_path(str(manifest.meta["head"])))
            self._loaded = (manifest, backbone, head)

    def _models(self) -> tuple[Manifest, Backbone, Head]:
        self.load()
        assert self._loaded is not None
        return self._loaded

    @property
    def model_name(self) -> str:
        manifest, _, _ = self._models()
        return f"efficientnet-lite0+{manifest.version}"

    # ------------------------------------------------------------------ inference

    async def classify(self, scan: ScanInput) -> Classification:
        # Decoding and inference are CPU-bound; the event loop must keep serving sockets.
        return await asyncio.to_thread(self.classify_bytes, scan.image)

    async def classify_image(self, scan: ScanInput, decoded: DecodedImage) -> Classification:
        """The photo already decoded (by ``CachedVision``, or the OpenAI backend falling back):
        inference only."""
        return await asyncio.to_thread(self.classify_decoded, decoded)

    def classify_bytes(self, data: bytes) -> Classification:
        """Decode untrusted bytes (``ImageRejected`` if they are not a usable image), classify."""
        return self.analyse_bytes(data)[1]

    def classify_decoded(self, decoded: DecodedImage) -> Classification:
        self.load()
        return self.interpret(self.evidence(preprocess(decoded.image)))

    def analyse_bytes(self, data: bytes) -> tuple[Evidence, Classification]:
        """Like :meth:`classify_bytes`, also returning the raw model outputs (for evaluation)."""
        self.load()  # a broken install fails the same way whatever the user sent
        decoded = decode_image(data)
        evidence = self.evidence(preprocess(decoded.image))
        return evidence, self.interpret(evidence)

    @property
    def head_classes(self) -> list[str]:
        return list(self._models()[2].classes)

    def evidence(self, pixels: Floats) -> Evidence:
        """Run both models on one preprocessed ``(3, 224, 224)`` image."""
        _, backbone, head = self._models()
        features, logits = backbone.run(pixels[np.newaxis])
        return Evidence(
            head=head.probabilities(features)[0],
            imagenet=softmax(logits)[0],
            novelty=float(head.novelty(features)[0]),
        )

    def interpret(self, evidence: Evidence) -> Classification:
        _, _, head = self._models()
        return interpret(evidence, head.classes, self.model_name)


# --------------------------------------------------------------------------- interpretation


def _mass(probs: Floats, group: ImageNetGroup) -> float:
    return float(probs[list(group.indices)].sum())


def _stream_probs(head_probs: Floats, classes: list[str]) -> dict[Stream, float]:
    totals: dict[Stream, float] = {}
    for name, p in zip(classes, head_probs, strict=True):
        stream = HEAD_KINDS[name].stream
        totals[stream] = totals.get(stream, 0.0) + float(p)
    return totals


def _round(value: float) -> float:
    return round(min(1.0, max(0.0, value)), 4)


def _lookalikes(
    head_class: str, kind: ItemKind, masses: dict[str, float]
) -> list[tuple[ItemKind, float]]:
    """Kinds in another stream than ``kind`` that ImageNet sees some evidence of."""
    seen: list[tuple[ItemKind, float]] = []
    for group in IMAGENET_GROUPS:
        other = group.override or group.refine.get(head_class) or group.doubt.get(head_class)
        mass = masses[group.name]
        if other is not None and other.stream is not kind.stream and mass >= DOUBT_MIN:
            seen.append((other, mass))
    return sorted(seen, key=lambda pair: -pair[1])


def interpret(evidence: Evidence, classes: list[str], model: str) -> Classification:
    head_probs, imagenet = evidence.head, evidence.imagenet
    head_class = classes[int(head_probs.argmax())]
    streams = _stream_probs(head_probs, classes)
    masses = {group.name: _mass(imagenet, group) for group in IMAGENET_GROUPS}
    top_imagenet = int(imagenet.argmax())

    head_top = float(head_probs.max())
    kind: ItemKind = HEAD_KINDS[head_class]
    confidence = streams[kind.stream]
    overridden = False
    for group in IMAGENET_GROUPS:
        if group.override is None or top_imagenet not in group.indices:
            continue
        if group.override.stream in streams or head_class in NEVER_OVERRIDDEN:
            # The head was taught this stream from photos, or it sees a battery: its answer
            # stands, and the group's evidence only lowers its confidence (look-alikes below).
            break
        mass = masses[group.name]
        if mass >= OVERRIDE_SURE or (mass >= OVERRIDE_MIN and mass > head_top):
            kind, confidence, overridden = group.override, mass, True
        break
    if not overridden:
        refiners = [
            g for g in IMAGENET_GROUPS if head_class in g.refine and masses[g.name] >= REFINE_MIN
        ]
        if refiners:
            best = max(refiners, key=lambda g: masses[g.name])
            kind = best.refine[head_class]
            # A refinement may move the stream (plastic → clear PET, glass → ceramics): the
            # head's belief in the material stays the evidence, the object type only sharpens it.
            confidence = float(head_probs[classes.index(head_class)]) * min(
                1.0, 0.5 + masses[best.name]
            )

    lookalikes = [] if overridden else _lookalikes(head_class, kind, masses)
    if lookalikes:
        # ImageNet sees a look-alike that goes elsewhere: whatever the head says, the answer
        # is no surer than the look-alike is unlikely.
        confidence = min(confidence, 1.0 - lookalikes[0][1])
    if evidence.novelty > 1.0:
        confidence = min(confidence, UNFAMILIAR_MAX_CONFIDENCE)
    confidence = min(confidence, kind.max_confidence)

    alternatives: list[Alternative] = []
    seen = {kind.stream}
    for other, mass in lookalikes:
        if other.stream not in seen and len(alternatives) < MAX_ALTERNATIVES:
            alternatives.append(
                Alternative(label=other.label, stream=other.stream, confidence=_round(mass))
            )
            seen.add(other.stream)
    # The head's streams are the other opinions; when ImageNet took over they share what
    # probability it left. When a refinement moved the stream (plastic → clear PET), the
    # head's own stream keeps what the refinement did not claim.
    scale = 1.0 - confidence if overridden else 1.0
    head_stream = HEAD_KINDS[head_class].stream
    for stream, p in sorted(streams.items(), key=lambda item: -item[1]):
        if stream in seen or len(alternatives) >= MAX_ALTERNATIVES:
            continue
        if not overridden and stream is head_stream:
            p = max(0.0, p - confidence)
        best_class = max(
            (c for c in classes if HEAD_KINDS[c].stream is stream),
            key=lambda c: float(head_probs[classes.index(c)]),
        )
        label = HEAD_KINDS[best_class].label
        alternatives.append(Alternative(label=label, stream=stream, confidence=_round(p * scale)))
        seen.add(stream)
    alternatives.sort(key=lambda a: -a.confidence)

    return Classification(
        label=kind.label,
        name_ko=kind.name_ko,
        name_en=kind.name_en,
        stream=kind.stream,
        category=kind.category,
        confidence=_round(confidence),
        material=Signal(value=kind.material, confidence=_round(confidence)),
        shape=_shape(kind, masses, confidence),
        parts=[
            # Typical parts, not observed ones: the main body at the item's confidence,
            # the rest at a coin-flip.
            Signal(value=f"{part}:{material}", confidence=_round(confidence if i == 0 else 0.5))
            for i, (part, material) in enumerate(kind.parts)
        ],
        mixed=_mixed(kind, confidence),
        contamination=_contamination(kind, float(imagenet[_FOOD].sum())),
        alternatives=alternatives,
        model=model,
    )


def _shape(kind: ItemKind, masses: dict[str, float], confidence: float) -> Signal:
    seen = [(masses[name], shape) for name, shape in GROUP_SHAPE.items()]
    mass, shape = max(seen)
    if mass >= SHAPE_MIN and shape == kind.shape:
        return Signal(value=shape, confidence=_round(max(mass, confidence)))
    if mass >= SHAPE_MIN and kind.stream not in (Stream.FOOD,):
        return Signal(value=shape, confidence=_round(mass))
    # Only the class prior: a metal item is usually a can, but nothing here saw that.
    return Signal(value=kind.shape, confidence=_round(0.6 * confidence))


def _mixed(kind: ItemKind, confidence: float) -> Signal | None:
    if kind.stream in (Stream.GENERAL, Stream.FOOD, Stream.ELECTRONICS, Stream.BATTERY):
        return None  # mixed or not, it changes nothing in where it goes
    if kind.mixed_materials:
        return Signal(value="yes", confidence=0.5)
    return Signal(value="no", confidence=_round(min(0.6, confidence)))


def _contamination(kind: ItemKind, food_mass: float) -> Signal | None:
    if kind.stream in (
        Stream.FOOD,
        Stream.GENERAL,
        Stream.ELECTRONICS,
        Stream.CLOTHING,
        Stream.BATTERY,
        Stream.NON_COMBUSTIBLE,
    ):
        return None  # soiled or not, where it goes does not change
    if food_mass >= FOOD_HEAVY:
        value = "heavy"
    elif food_mass >= FOOD_LIGHT:
        value = "light"
    else:
        value = "clean"
    strength = food_mass if value != "clean" else 1.0 - food_mass
    return Signal(value=value, confidence=_round(min(CONTAMINATION_MAX_CONFIDENCE, strength)))
