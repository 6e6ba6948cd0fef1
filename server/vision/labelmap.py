"""Which folder of a photo set is which kind of item, and which streams are right for it.

The training script and ``wastecoach eval vision`` read photo sets laid out one folder per
class. Folder names are the data sets' own labels, not Korean streams; this table says, per
folder, which class of the head learns from it and which disposal streams count as a right
answer, following the Korean rules rather than the folder's name:

* ``white-glass`` holds clear bottles and jars, but also (most of it) drinking glasses, wine
  glasses and broken glass. Bottles go to the glass-bottle bin, the rest to 불연성 bags. The
  head learns "clear glass" from it and the ImageNet evidence (goblet, beer glass, bottle)
  decides between the two; unresolved, the app asks. Scoring accepts either stream for the
  folder as a whole, and per photo where a photo's own label is known
  (:data:`PHOTO_STREAMS`).
* ``battery`` holds household cells but also phone, laptop and car batteries; all of them are
  the battery stream (a car battery goes back to the seller, not in the household bin: the
  coaching says so).
* ``biological`` and ``cards-organic`` are food. Korea counts bones, shells, pits and tea bags
  as general waste; those are a minority of the folders and the head cannot tell them apart,
  so the folder counts food as right (the coaching names the exceptions).
* ``cards-textiles`` is mostly garments with some fabric swatches: the clothing bin for what
  is clean and wearable (the great majority of the photos); scraps and rags are general waste,
  which the clothing kind offers as its second choice.
* ``cards-wood`` is wood scraps and crates: general waste, or bulky waste when large.
* ``cards-carton`` is drink cartons, 종이팩, collected apart from paper.

Some photos carry a label of their own, from a person who looked at them
(``photo_streams.json``): the stream that is right for that photo, and for foil, foil dishes
and plastic film the look-alike it is. Those look-alikes train head classes of their own
(:data:`LOOKALIKE_CLASSES`, :func:`head_class_of`), whatever folder the photo sits in: a foil
dish in the metal folder teaches ``foil`` (general waste), not ``metal``; a crisp packet in
TrashNet's trash folder teaches ``film`` (비닐류), not ``trash``. Foil and foil dishes are one
class: same stream, same look-alike, same coaching, and 38 and 43 training photos are few
enough that splitting them would leave each class thinner than any other. Drinking glasses
are labelled on the holdout only (none on train or tune), so they train nothing yet.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from protocol.streams import Stream


@dataclass(frozen=True, slots=True)
class FolderLabel:
    head_class: str
    """The head's class that learns from this folder."""
    streams: frozenset[Stream]
    """Streams that are a right first answer for a photo of this folder."""


def _label(head_class: str, *streams: Stream) -> FolderLabel:
    return FolderLabel(head_class=head_class, streams=frozenset(streams))


#: The folders of ``trashnet/`` and ``more_photos/`` (see the module docstring).
FOLDERS: dict[str, FolderLabel] = {
    # TrashNet and the TrashNet kinds of more_photos.
    "cardboard": _label("cardboard", Stream.PAPER),
    "paper": _label("paper", Stream.PAPER),
    "glass": _label("glass_bottle", Stream.GLASS),
    "metal": _label("metal", Stream.METAL),
    # Colourless water bottles are clear PET in Korea: right for a "plastic" photo.
    "plastic": _label("plastic", Stream.PLASTIC, Stream.CLEAR_PET),
    "trash": _label("trash", Stream.GENERAL),
    # more_photos only.
    "battery": _label("battery", Stream.BATTERY),
    "biological": _label("food", Stream.FOOD),
    "cards-organic": _label("food", Stream.FOOD),
    "brown-glass": _label("glass_bottle", Stream.GLASS),
    "green-glass": _label("glass_bottle", Stream.GLASS),
    "white-glass": _label("clear_glass", Stream.GLASS, Stream.NON_COMBUSTIBLE),
    "clothes": _label("clothes", Stream.CLOTHING),
    "shoes": _label("shoes", Stream.CLOTHING),
    "cards-textiles": _label("textile", Stream.CLOTHING),
    "cards-carton": _label("carton", Stream.PAPER_PACK),
    "cards-other-plastics": _label("plastic", Stream.PLASTIC, Stream.CLEAR_PET),
    "cards-wood": _label("wood", Stream.GENERAL, Stream.BULKY),
}

#: Photo (``folder/file name``) → its one right stream, where the folder mixes streams and a
#: person looked at the photo: the holdout of ``white-glass`` (bottles and jars → glass
#: bottles; drinking glasses, stemware, vases, broken glass → 불연성), and the foil (일반) and
#: plastic film (비닐류) found in the train, tune and holdout photos of the trash, metal and
#: plastic folders (how they were found: the file's ``about``). Its ``lookalikes`` name the
#: look-alike each photo is: the training script teaches foil and film from them
#: (:func:`head_class_of`), and ``wastecoach eval vision`` reports them apart (a foil photo's
#: stream, general, is also its folder's, and would otherwise vanish among the rest).
PHOTO_STREAMS_FILE = Path(__file__).parent / "photo_streams.json"


def _photo_labels(path: Path) -> dict[str, object]:
    if not path.is_file():
        return {}
    raw = json.loads(path.read_text(encoding="utf-8"))
    return raw if isinstance(raw, dict) else {}


def load_photo_streams(path: Path = PHOTO_STREAMS_FILE) -> dict[str, Stream]:
    photos = _photo_labels(path).get("photos", {})
    assert isinstance(photos, dict)
    return {str(name): Stream(value) for name, value in photos.items()}


def load_lookalikes(path: Path = PHOTO_STREAMS_FILE) -> dict[str, str]:
    """Photo (``folder/file name``) → the look-alike it is (``foil``, ``foil_tray``, ``film``,
    ``drinking_glass``); every such photo also has its stream in :func:`load_photo_streams`."""
    kinds = _photo_labels(path).get("lookalikes", {})
    assert isinstance(kinds, dict)
    return {str(photo): str(kind) for kind, photos in kinds.items() for photo in photos}


#: Look-alike kind (``photo_streams.json`` ``lookalikes``) → the head class its labelled photos
#: train. Kinds not listed (``drinking_glass``: holdout labels only) keep their folder's class.
LOOKALIKE_CLASSES: dict[str, str] = {"foil": "foil", "foil_tray": "foil", "film": "film"}


def head_class_of(photo: str, folder: str, lookalikes: dict[str, str]) -> str:
    """The head class a photo (``folder/file name``) trains: its look-alike's class where a
    person labelled it as one (:data:`LOOKALIKE_CLASSES`), else its folder's."""
    kind = lookalikes.get(photo)
    if kind is not None and kind in LOOKALIKE_CLASSES:
        return LOOKALIKE_CLASSES[kind]
    return FOLDERS[folder].head_class


def load_label_map(path: Path) -> dict[str, FolderLabel]:
    """A label map for other photo sets: ``{"folder": {"head_class": ..., "streams": [...]}}``.

    ``head_class`` may be omitted (then only the stream is scored). Raises ``ValueError`` with
    the offending entry named on anything else.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"label map {path}: {exc}") from exc
    if not isinstance(raw, dict) or not raw:
        raise ValueError(f"label map {path}: expected a non-empty JSON object of folders")
    folders: dict[str, FolderLabel] = {}
    for folder, entry in raw.items():
        if not isinstance(entry, dict) or not isinstance(entry.get("streams"), list):
            raise ValueError(f"label map {path}: {folder!r} needs a 'streams' list")
        try:
            streams = frozenset(Stream(s) for s in entry["streams"])
        except ValueError as exc:
            raise ValueError(f"label map {path}: {folder!r}: {exc}") from exc
        if not streams:
            raise ValueError(f"label map {path}: {folder!r} has no streams")
        folders[str(folder)] = FolderLabel(
            head_class=str(entry.get("head_class", "")), streams=streams
        )
    return folders
