"""Hostile frames against the sans-I/O machine: each is refused cheaply, with an error event,
and the connection lives on (until too many come in a row)."""

from __future__ import annotations

import json
import time

import pytest

from protocol.bounded_json import MAX_JSON_DEPTH, MAX_JSON_VALUES, JsonRejected, parse
from protocol.messages import MAX_START_MESSAGE_BYTES, Error, ErrorCode, Pong
from protocol.session import (
    MAX_INVALID_FRAMES,
    Authenticate,
    Close,
    CloseCode,
    SendEvent,
    SessionMachine,
    State,
)
from tests.protocol.test_session_machine import error_code, open_machine, scan


def error_of(actions: list[object]) -> Error:
    action = actions[0]
    assert isinstance(action, SendEvent) and isinstance(action.event, Error)
    return action.event


def deep(levels: int) -> str:
    return '{"type": "ping", "x": ' + "[" * levels + "]" * levels + "}"


def many_keys(count: int) -> str:
    members = ",".join(f'"{i:x}":0' for i in range(count))
    return '{"type":"ping",' + members + "}"


def still_works(machine: SessionMachine) -> None:
    [action] = machine.receive_text('{"type": "ping", "request_id": "p"}')
    assert isinstance(action, SendEvent) and isinstance(action.event, Pong)


# --------------------------------------------------------------------------- nesting and size


@pytest.mark.parametrize("levels", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_deep_nesting_is_an_error_and_the_session_lives_on(levels: int) -> None:
    machine = open_machine()
    event = error_of(machine.receive_text(deep(levels)))
    assert event.code is ErrorCode.INVALID_MESSAGE
    assert "nested deeper" in event.message
    still_works(machine)


def test_nesting_at_the_limit_is_parsed() -> None:
    # Passes the shape check; refused by the schema (x is not a field of ping), not the parser.
    machine = open_machine()
    event = error_of(machine.receive_text(deep(MAX_JSON_DEPTH - 1)))
    assert event.code is ErrorCode.INVALID_MESSAGE and "nested" not in event.message


def test_many_keys_are_refused_before_parsing_and_fast() -> None:
    machine = open_machine()
    frame = many_keys(150_000)  # about 1.5 MiB, under the frame limit of an open session
    assert len(frame) < machine.max_message_bytes
    started = time.perf_counter()
    event = error_of(machine.receive_text(frame))
    elapsed = time.perf_counter() - started
    assert event.code is ErrorCode.INVALID_MESSAGE
    assert f"more than {MAX_JSON_VALUES} values" in event.message
    # Parsing and validating it took ~380 ms; refusing it stops after ~1,000 tokens.
    assert elapsed < 0.05, elapsed
    still_works(machine)


def test_many_values_in_an_array_are_refused() -> None:
    with pytest.raises(JsonRejected) as refused:
        parse("[" + ",".join("1" * (MAX_JSON_VALUES + 5)) + "]")
    assert refused.value.too_complex


def test_commas_and_brackets_inside_strings_do_not_count() -> None:
    text = json.dumps({"type": "chat.message", "request_id": "c1", "text": ",{[" * 5_000})
    value = parse(text)
    assert isinstance(value, dict) and value["text"].startswith(",{[")


def test_frames_before_session_start_have_a_small_limit() -> None:
    machine = SessionMachine()
    frame = many_keys(150_000)
    started = time.perf_counter()
    event = error_of(machine.receive_text(frame))
    assert time.perf_counter() - started < 0.01
    assert event.code is ErrorCode.MESSAGE_TOO_LARGE
    assert str(MAX_START_MESSAGE_BYTES) in event.message
    # A session.start with the longest token still fits.
    start = json.dumps({"type": "session.start", "token": "t" * 8192, "request_id": "s",
                        "resume": {"session_id": "x" * 64, "epoch": "e" * 64, "last_seq": 1}})
    assert len(start) < MAX_START_MESSAGE_BYTES
    [action] = machine.receive_text(start)
    assert isinstance(action, Authenticate)


def test_nan_and_infinity_are_not_json() -> None:
    machine = open_machine()
    frame = '{"type": "scan.start", "request_id": "r", "location": {"lat": NaN, "lon": 1}}'
    assert error_code(machine.receive_text(frame)) is ErrorCode.INVALID_JSON


# --------------------------------------------------------------------------- strings and numbers


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "x\\uDC00y"])
def test_lone_surrogate_request_id_is_refused_and_never_echoed(escape: str) -> None:
    machine = open_machine()
    for frame in (
        '{"type": "ping", "request_id": "' + escape + '"}',
        '{"type": "scan.cancel", "request_id": "' + escape + '", "bogus": 1}',
    ):
        event = error_of(machine.receive_text(frame))
        assert event.code is ErrorCode.INVALID_JSON
        assert event.request_id is None
        event.model_dump_json().encode()  # what the log stores encodes cleanly


def test_a_surrogate_pair_is_valid_unicode() -> None:
    machine = open_machine()
    frame = '{"type": "chat.message", "request_id": "c1", "text": "\\ud83d\\ude00"}'
    [action] = machine.receive_text(frame)
    assert not isinstance(action, SendEvent)


def test_invalid_request_ids_are_not_echoed_in_errors() -> None:
    machine = open_machine()
    frame = json.dumps({"type": "scan.start", "request_id": "bad id <script>"})
    event = error_of(machine.receive_text(frame))
    assert event.code is ErrorCode.INVALID_MESSAGE and event.request_id is None
    frame = json.dumps({"type": "scan.start", "request_id": "good-id"})
    assert error_of(machine.receive_text(frame)).request_id == "good-id"


@pytest.mark.parametrize("request_id", ["abc\n", "abc\r\n", "\nabc"])
def test_a_request_id_with_a_newline_is_not_echoed(request_id: str) -> None:
    # The schema refuses it; a regex checked with match() and "$" let "abc\n" through.
    machine = open_machine()
    event = error_of(machine.receive_text(json.dumps({"type": "ping", "request_id": request_id})))
    assert event.code is ErrorCode.INVALID_MESSAGE and event.request_id is None


def test_a_str_with_a_raw_surrogate_is_refused() -> None:
    machine = open_machine()
    assert error_code(machine.receive_text('{"type": "ping", "x": "\ud800"}')) is (
        ErrorCode.INVALID_JSON
    )
    still_works(machine)


@pytest.mark.parametrize(
    "location",
    [
        {"lat": "37.5", "lon": 126.9},
        {"lat": 37.5, "lon": "126.9"},
        {"lat": True, "lon": 126.9},
        {"lat": 37.5, "lon": 126.9, "accuracy_m": "5"},
    ],
)
def test_coordinates_must_be_numbers(location: dict[str, object]) -> None:
    machine = open_machine()
    frame = json.loads(scan())
    frame["location"] = location
    event = error_of(machine.receive_text(json.dumps(frame)))
    assert event.code is ErrorCode.INVALID_MESSAGE and "location" in event.message


@pytest.mark.parametrize(
    "location",
    [
        {"lat": "33.5", "lon": 126.5},
        {"lat": 33.5},
        {"lat": 91, "lon": 126.5},
        {"lat": 33.5, "lon": 126.5, "district": "50110"},
    ],
)
def test_a_question_s_location_is_checked_like_a_scan_s(location: dict[str, object]) -> None:
    machine = open_machine()
    frame = {"type": "chat.message", "request_id": "c1", "text": "페트병은?", "location": location}
    event = error_of(machine.receive_text(json.dumps(frame)))
    assert event.code is ErrorCode.INVALID_MESSAGE and "location" in event.message
    still_works(machine)


def test_integer_coordinates_are_numbers() -> None:
    machine = open_machine()
    frame = json.loads(scan())
    frame["location"] = {"lat": 37, "lon": 127}
    [action] = machine.receive_text(json.dumps(frame))
    assert not isinstance(action, SendEvent)


def test_resume_last_seq_must_be_an_integer() -> None:
    machine = SessionMachine()
    frame = json.dumps({"type": "session.start", "token": "t",
                        "resume": {"session_id": "s", "epoch": "e", "last_seq": "4"}})
    assert error_code(machine.receive_text(frame)) is ErrorCode.INVALID_MESSAGE


# --------------------------------------------------------------------------- repeated garbage


@pytest.mark.parametrize("opened", [False, True])
def test_too_many_invalid_frames_in_a_row_close_with_1008(opened: bool) -> None:
    machine = open_machine() if opened else SessionMachine()
    for _ in range(MAX_INVALID_FRAMES - 1):
        [action] = machine.receive_text("{not json")
        assert isinstance(action, SendEvent)
    actions = machine.receive_text("{not json")
    assert isinstance(actions[0], SendEvent)
    assert isinstance(actions[1], Close) and actions[1].code is CloseCode.POLICY_VIOLATION
    assert machine.state is State.CLOSED
    assert machine.receive_text("{not json") == []


def test_a_valid_frame_resets_the_count() -> None:
    machine = open_machine()
    for _ in range(3):
        for _ in range(MAX_INVALID_FRAMES - 1):
            machine.receive_text("[]")
        still_works(machine)
    assert machine.state is State.OPEN
