"""The disposal streams every part of the product agrees on.

A stream is where an item physically ends up in Korea's household system. The vision stage
produces one, the coach explains it, the locations stage finds the places that accept it. Each
stream names the official category path (major / middle) of the Ministry of Environment
dictionary (분리배출.kr) it corresponds to.
"""

from __future__ import annotations

from enum import StrEnum


class Stream(StrEnum):
    PAPER = "paper"
    PAPER_PACK = "paper_pack"
    GLASS = "glass"
    METAL = "metal"
    PLASTIC = "plastic"
    CLEAR_PET = "clear_pet"
    VINYL = "vinyl"
    STYROFOAM = "styrofoam"
    CLOTHING = "clothing"
    ELECTRONICS = "electronics"
    BATTERY = "battery"
    LAMP = "lamp"
    GENERAL = "general"
    NON_COMBUSTIBLE = "non_combustible"
    FOOD = "food"
    BULKY = "bulky"
    MEDICINE = "medicine"
    HAZARDOUS = "hazardous"
    CONSTRUCTION = "construction"
    OTHER = "other"


#: Official (major, middle) category of each stream, as spelled in the official dictionary.
OFFICIAL_PATH: dict[Stream, tuple[str, str | None]] = {
    Stream.PAPER: ("재활용폐기물", "종이"),
    Stream.PAPER_PACK: ("재활용폐기물", "종이팩"),
    Stream.GLASS: ("재활용폐기물", "유리병"),
    Stream.METAL: ("재활용폐기물", "금속류"),
    Stream.PLASTIC: ("재활용폐기물", "합성수지 용기류"),
    Stream.CLEAR_PET: ("재활용폐기물", "무색페트병"),
    Stream.VINYL: ("재활용폐기물", "합성수지 비닐류"),
    Stream.STYROFOAM: ("재활용폐기물", "발포합성수지(스티로폼 등)"),
    Stream.CLOTHING: ("재활용폐기물", "의류 및 원단"),
    Stream.ELECTRONICS: ("재활용폐기물", "전기전자 제품류"),
    Stream.BATTERY: ("재활용폐기물", "전지류"),
    Stream.LAMP: ("재활용폐기물", "조명제품"),
    Stream.GENERAL: ("일반폐기물", "일반종량제폐기물"),
    Stream.NON_COMBUSTIBLE: ("일반폐기물", "불연성종량제폐기물"),
    Stream.FOOD: ("음식물류폐기물", None),
    Stream.BULKY: ("대형폐기물", None),
    Stream.MEDICINE: ("생활계 유해폐기물", "폐의약품"),
    Stream.HAZARDOUS: ("생활계 유해폐기물", None),
    Stream.CONSTRUCTION: ("공사장 생활폐기물", None),
    Stream.OTHER: ("기타", None),
}
