"""The sans-I/O session machine, driven synchronously: no sockets, no event loop.

Every state change the machine owns is fed here as the I/O layer would feed it (text and
binary frames, then the I/O layer's answers: authenticated, authentication failed, scans in
flight, a request rejected, events delivered, the socket closed), and each test asserts the
exact actions that come back. Hostile frames have their own module (test_hostile_frames.py).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from typing import Any

import pytest

from protocol.live import encode_frame
from protocol.messages import (
    MAX_MESSAGE_BYTES,
    MAX_START_MESSAGE_BYTES,
    Error,
    ErrorCode,
    Pong,
    client_message_adapter,
)
from protocol.session import (
    MAX_INVALID_FRAMES,
    Action,
    AnswerClarify,
    Authenticate,
    CancelScan,
    Close,
    CloseCode,
    RefreshAuth,
    SendEvent,
    SessionMachine,
    StartChat,
    StartScan,
    State,
)

START = '{"type": "session.start", "token": "t"}'


def scan(request_id: str = "r1") -> str:
    data = base64.b64encode(b"jpeg").decode()
    return json.dumps({"type": "scan.start", "request_id": request_id,
                       "image": {"kind": "inline", "content_type": "image/jpeg", "data": data}})


def chat(request_id: str, text: str = "and the cap?") -> str:
    return json.dumps(
        {"type": "chat.message", "request_id": request_id, "text": text}, ensure_ascii=False
    )


def cancel(request_id: str) -> str:
    return json.dumps({"type": "scan.cancel", "request_id": request_id})


def open_machine(**kwargs: Any) -> SessionMachine:
    machine = SessionMachine(**kwargs)
    [action] = machine.receive_text(START)
    assert isinstance(action, Authenticate)
    machine.authenticated("s1", 0)
    return machine


def authenticating_machine(**kwargs: Any) -> SessionMachine:
    """session.start accepted, the I/O layer still verifying the token."""
    machine = SessionMachine(**kwargs)
    [action] = machine.receive_text(START)
    assert isinstance(action, Authenticate)
    return machine


def error_code(actions: list[Any]) -> ErrorCode:
    [action] = actions
    assert isinstance(action, SendEvent)
    code = getattr(action.event, "code")  # noqa: B009
    assert isinstance(code, ErrorCode)
    return code


def refusal(actions: list[Action], *, logged: bool) -> Error:
    """The one error event of ``actions``, sent to the log (``logged``) or to the socket only."""
    [action] = actions
    assert isinstance(action, SendEvent) and isinstance(action.event, Error)
    assert action.logged is logged
    return action.event


# Every client message but session.start, each valid, with request_id "m".
OTHER_MESSAGES = {
    "scan.start": scan("m"),
    "scan.cancel": cancel("m"),
    "scan.clarify.answer": json.dumps(
        {"type": "scan.clarify.answer", "request_id": "m", "choice": "glass_bottle"}
    ),
    "chat.message": chat("m"),
    "auth.refresh": json.dumps({"type": "auth.refresh", "request_id": "m", "token": "t2"}),
    "ping": json.dumps({"type": "ping", "request_id": "m"}),
}


# --------------------------------------------------------------------------- handshake


def test_a_new_machine_awaits_session_start() -> None:
    machine = SessionMachine()
    assert machine.state is State.AWAITING_START
    assert machine.session_id is None and machine.last_seq == 0
    assert machine.active_scans == set() and machine.active_chats == set()


def test_session_start_asks_the_io_layer_to_authenticate() -> None:
    machine = SessionMachine()
    frame = json.dumps({"type": "session.start", "token": "tok", "request_id": "s", "v": 1,
                        "locale": "en", "resume": {"session_id": "old", "epoch": "e",
                                                   "last_seq": 7}})
    [action] = machine.receive_text(frame)
    assert isinstance(action, Authenticate)
    assert action.message == client_message_adapter.validate_json(frame)
    assert action.message.resume is not None and action.message.resume.last_seq == 7
    # Nothing is open until the I/O layer says the token is good.
    assert machine.state is State.AWAITING_START and machine.session_id is None


@pytest.mark.parametrize("authenticating", [False, True], ids=["before", "authenticating"])
@pytest.mark.parametrize("kind", sorted(OTHER_MESSAGES))
def test_every_other_message_before_the_session_is_open_is_refused(
    kind: str, authenticating: bool
) -> None:
    machine = authenticating_machine() if authenticating else SessionMachine()
    error = refusal(machine.receive_text(OTHER_MESSAGES[kind]), logged=False)
    assert error.code is ErrorCode.NOT_AUTHENTICATED
    assert error.message == "send session.start with a token before anything else"
    assert error.request_id == "m" and error.retryable is False and error.seq == 0
    assert machine.state is State.AWAITING_START
    # Nothing was admitted: no scan or question holds a slot.
    assert machine.active_scans == set() and machine.active_chats == set()


def test_session_start_while_authenticating_is_refused() -> None:
    machine = authenticating_machine()
    error = refusal(
        machine.receive_text('{"type": "session.start", "token": "t2", "request_id": "s2"}'),
        logged=False,
    )
    assert error.code is ErrorCode.ALREADY_AUTHENTICATED and error.request_id == "s2"
    assert error.message == "session.start was already accepted on this connection"
    assert machine.state is State.AWAITING_START


def test_second_session_start_is_refused() -> None:
    machine = open_machine()
    error = refusal(
        machine.receive_text('{"type": "session.start", "token": "t", "request_id": "s2"}'),
        logged=True,
    )
    assert error.code is ErrorCode.ALREADY_AUTHENTICATED and error.request_id == "s2"
    assert machine.state is State.OPEN and machine.session_id == "s1"


def test_authenticated_opens_the_session_at_the_resume_position() -> None:
    machine = authenticating_machine()
    machine.authenticated("s9", 41)
    assert machine.state is State.OPEN
    assert machine.session_id == "s9" and machine.last_seq == 41
    # Open: errors now go to the session's log, and requests are taken.
    assert refusal(machine.receive_text("{oops"), logged=True).code is ErrorCode.INVALID_JSON
    assert isinstance(machine.receive_text(scan())[0], StartScan)


def test_the_frame_limit_grows_once_the_session_is_open() -> None:
    frame = chat("c", "x" * (MAX_START_MESSAGE_BYTES + 10))
    for machine in (SessionMachine(), authenticating_machine()):
        error = refusal(machine.receive_text(frame), logged=False)
        assert error.code is ErrorCode.MESSAGE_TOO_LARGE and error.request_id is None
        assert error.message == (
            f"message is larger than {MAX_START_MESSAGE_BYTES} bytes"
            " before session.start is accepted"
        )
    [action] = open_machine().receive_text(frame)
    assert isinstance(action, StartChat)


def test_auth_timeout_closes_with_4008() -> None:
    for machine in (SessionMachine(), authenticating_machine()):
        assert machine.auth_timed_out() == [
            Close(CloseCode.AUTH_TIMEOUT, "no session.start received in time")
        ]
        assert machine.state is State.CLOSED
        assert machine.receive_text(START) == []


@pytest.mark.parametrize(
    ("code", "close"),
    [
        (ErrorCode.AUTH_INVALID, CloseCode.AUTH_FAILED),
        (ErrorCode.AUTH_EXPIRED, CloseCode.AUTH_FAILED),
        (ErrorCode.RESUME_FORBIDDEN, CloseCode.RESUME_FORBIDDEN),
    ],
)
def test_authentication_failed_sends_the_error_then_closes(
    code: ErrorCode, close: CloseCode
) -> None:
    machine = authenticating_machine()
    send, closing = machine.authentication_failed(code, "go away", "s")
    assert isinstance(send, SendEvent) and send.logged is False
    assert isinstance(send.event, Error)
    assert (send.event.code, send.event.message, send.event.request_id) == (code, "go away", "s")
    assert send.event.retryable is False
    assert closing == Close(close, "go away")
    assert machine.state is State.CLOSED and machine.session_id is None
    # Nothing more is read, not even another session.start.
    assert machine.receive_text(START) == []
    assert machine.receive_text(scan()) == []
    assert machine.receive_binary(CAMERA_FRAME) == []


def test_authentication_failed_without_a_request_id() -> None:
    send, _ = authenticating_machine().authentication_failed(ErrorCode.AUTH_INVALID, "bad")
    assert isinstance(send, SendEvent) and send.event.request_id is None


# --------------------------------------------------------------------------- frames


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("{oops", ErrorCode.INVALID_JSON),
        ('"a string"', ErrorCode.INVALID_MESSAGE),
        ('{"no": "type"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "dance"}', ErrorCode.UNKNOWN_TYPE),
        ('{"type": "scan.start", "request_id": "bad id with spaces", "image": {}}',
         ErrorCode.INVALID_MESSAGE),
        ('{"type": "scan.cancel"}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "ping", "extra": 1}', ErrorCode.INVALID_MESSAGE),
        ('{"type": "session.start", "token": "t", "v": 9}', ErrorCode.UNSUPPORTED_VERSION),
    ],
)
def test_bad_messages_get_stable_codes_and_keep_the_session(text: str, code: ErrorCode) -> None:
    machine = open_machine()
    actions = machine.receive_text(text)
    assert error_code(actions) is code
    assert isinstance(actions[0], SendEvent) and actions[0].logged is True
    assert machine.state is State.OPEN
    assert isinstance(machine.receive_text(scan())[0], StartScan)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[]", "a message is a JSON object with a 'type'"),
        ('{"type": 5, "request_id": "r"}', "a message is a JSON object with a 'type'"),
        ('{"type": "dance"}', "unknown message type 'dance'"),
        ('{"type": "scan.cancel"}', "request_id: Field required"),
        ('{"type": "scan.clarify.answer", "request_id": "r", "choice": ""}',
         "choice: String should have at least 1 character"),
        ('{"type": "auth.refresh"}', "token: Field required"),
        ('{"type": "session.start"}', "token: Field required"),
        ('{"type": "session.start", "token": "t", "v": 9}',
         "protocol version 9 is not supported; use 1"),
        # A wrong version is the one thing said, whatever else is wrong.
        ('{"type": "session.start", "v": "1"}', "protocol version '1' is not supported; use 1"),
    ],
)
def test_refusals_say_what_is_wrong(text: str, message: str) -> None:
    assert refusal(open_machine().receive_text(text), logged=True).message == message


def test_a_refusal_names_at_most_five_fields() -> None:
    frame = json.dumps({"type": "ping", **{key: 1 for key in "abcdef"}})
    error = refusal(open_machine().receive_text(frame), logged=True)
    assert error.code is ErrorCode.INVALID_MESSAGE
    assert error.message == "; ".join(f"{key}: Extra inputs are not permitted" for key in "abcde")


def test_error_carries_the_request_id_when_it_can_be_read() -> None:
    machine = open_machine()
    [action] = machine.receive_text('{"type": "scan.start", "request_id": "abc"}')
    assert isinstance(action, SendEvent) and action.event.request_id == "abc"
    # Not of a frame refused before it is parsed (too large, not JSON).
    for frame in ('{"type": "ping", "request_id": "abc"', chat("abc", "x" * MAX_MESSAGE_BYTES)):
        assert refusal(machine.receive_text(frame), logged=True).request_id is None


def test_oversized_message() -> None:
    machine = open_machine()
    error = refusal(machine.receive_text("x" * (MAX_MESSAGE_BYTES + 1)), logged=True)
    assert error.code is ErrorCode.MESSAGE_TOO_LARGE
    assert error.message == f"message is larger than {MAX_MESSAGE_BYTES} bytes"


def test_the_frame_limit_counts_utf8_bytes_and_is_inclusive() -> None:
    machine = open_machine(max_message_bytes=300)
    base = len(chat("c", "").encode())
    exact = chat("c", "x" * (300 - base))
    assert len(exact.encode()) == 300
    assert isinstance(machine.receive_text(exact)[0], StartChat)
    over = chat("d", "x" * (301 - base))
    assert error_code(machine.receive_text(over)) is ErrorCode.MESSAGE_TOO_LARGE
    # 100 characters, 300 bytes: short as a str, too large as UTF-8.
    korean = chat("e", "한" * 100)
    assert len(korean) < 300 < len(korean.encode())
    error = refusal(machine.receive_text(korean), logged=True)
    assert error.code is ErrorCode.MESSAGE_TOO_LARGE
    assert error.message == "message is larger than 300 bytes"
    assert machine.active_chats == {"c"}


def test_oversized_inline_image_is_invalid() -> None:
    machine = open_machine()
    data = base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()
    text = json.dumps({"type": "scan.start", "request_id": "big",
                       "image": {"kind": "inline", "content_type": "image/jpeg", "data": data}})
    actions = machine.receive_text(text)
    assert error_code(actions) is ErrorCode.INVALID_MESSAGE
    assert isinstance(actions[0], SendEvent)
    assert "larger than" in getattr(actions[0].event, "message")  # noqa: B009
    assert machine.active_scans == set()


CAMERA_FRAME = encode_frame("live-1", 1, 1_700_000_000_000, b"\xff\xd8\xff")


@pytest.mark.parametrize("opened", [False, True])
def test_binary_frames_outside_live_mode_are_refused(opened: bool) -> None:
    machine = open_machine() if opened else SessionMachine()
    error = refusal(machine.receive_binary(CAMERA_FRAME), logged=opened)
    assert error.request_id is None
    if opened:
        assert error.code is ErrorCode.INVALID_FRAME
        assert error.message == (
            "binary frames are camera frames of live mode; send live.start first"
        )
    else:
        assert error.code is ErrorCode.INVALID_MESSAGE
        assert "send session.start (JSON) first" in error.message
    assert machine.state is (State.OPEN if opened else State.AWAITING_START)


def test_binary_frames_count_towards_the_close() -> None:
    machine = open_machine(max_invalid_frames=3)
    machine.receive_binary(b"\x00")
    machine.receive_binary(CAMERA_FRAME)
    send, close = machine.receive_binary(b"")
    assert isinstance(send, SendEvent)
    assert close == Close(CloseCode.POLICY_VIOLATION, "3 invalid frames in a row")
    assert machine.state is State.CLOSED


def test_every_kind_of_bad_frame_counts_towards_the_close() -> None:
    machine = SessionMachine(max_invalid_frames=5, max_start_message_bytes=200)
    frames = [
        ("{oops", ErrorCode.INVALID_JSON),
        ("[" * 40 + "]" * 40, ErrorCode.INVALID_MESSAGE),  # too deep: refused before parsing
        ('{"type": "dance"}', ErrorCode.UNKNOWN_TYPE),
        ("x" * 201, ErrorCode.MESSAGE_TOO_LARGE),
    ]
    for frame, code in frames:
        assert refusal(machine.receive_text(frame), logged=False).code is code
    send, close = machine.receive_text('{"type": "session.start", "token": "t", "v": 2}')
    assert isinstance(send, SendEvent) and isinstance(send.event, Error)
    assert send.event.code is ErrorCode.UNSUPPORTED_VERSION
    assert close == Close(CloseCode.POLICY_VIOLATION, "5 invalid frames in a row")
    assert machine.state is State.CLOSED


def test_refusals_for_the_state_do_not_count_and_reset_the_count() -> None:
    # A well-formed message refused for when it comes is a client's slip, not garbage.
    machine = SessionMachine(max_invalid_frames=2)
    for _ in range(10):
        assert error_code(machine.receive_text(scan())) is ErrorCode.NOT_AUTHENTICATED
    machine.receive_text("{oops")
    machine.receive_text(scan())  # valid: the count starts again
    assert len(machine.receive_text("{oops")) == 1
    assert machine.state is State.AWAITING_START
    machine = open_machine(max_invalid_frames=2, max_concurrent_scans=1)
    machine.receive_text(scan("a"))
    for frame in (START, scan("a"), scan("b"), START, scan("a"), scan("b")):
        assert error_code(machine.receive_text(frame)) in (
            ErrorCode.ALREADY_AUTHENTICATED,
            ErrorCode.DUPLICATE_REQUEST,
            ErrorCode.TOO_MANY_SCANS,
        )
    assert machine.state is State.OPEN


def test_the_default_limits() -> None:
    machine = SessionMachine()
    assert machine.max_message_bytes == MAX_MESSAGE_BYTES
    assert machine.max_start_message_bytes == MAX_START_MESSAGE_BYTES
    assert machine.max_invalid_frames == MAX_INVALID_FRAMES == 10
    assert (machine.max_concurrent_scans, machine.max_concurrent_chats) == (4, 2)


# --------------------------------------------------------------------------- requests


@pytest.mark.parametrize(
    ("kind", "action_type"),
    [
        ("scan.start", StartScan),
        ("scan.cancel", CancelScan),
        ("scan.clarify.answer", AnswerClarify),
        ("chat.message", StartChat),
        ("auth.refresh", RefreshAuth),
    ],
)
def test_each_request_becomes_its_action_carrying_the_message(
    kind: str, action_type: type[Any]
) -> None:
    machine = open_machine()
    frame = OTHER_MESSAGES[kind]
    [action] = machine.receive_text(frame)
    assert type(action) is action_type
    assert isinstance(action, StartScan | CancelScan | AnswerClarify | StartChat | RefreshAuth)
    assert action.message == client_message_adapter.validate_json(frame)
    assert machine.state is State.OPEN and machine.session_id == "s1"


def test_ping_answers_pong_on_the_connection() -> None:
    machine = open_machine()
    [action] = machine.receive_text('{"type": "ping", "request_id": "p"}')
    assert isinstance(action, SendEvent) and isinstance(action.event, Pong)
    assert action.logged is False and action.event.request_id == "p"
    [action] = machine.receive_text('{"type": "ping"}')
    assert isinstance(action, SendEvent) and action.event.request_id is None


def test_passed_through_requests_hold_no_slot() -> None:
    # Cancel, clarify answers and token refreshes are the I/O layer's to check and answer
    # (unknown_request, invalid_choice, auth_invalid); the machine's state does not change.
    machine = open_machine(max_concurrent_scans=1)
    machine.receive_text(scan("a"))
    for kind in ("scan.cancel", "scan.clarify.answer", "auth.refresh"):
        machine.receive_text(OTHER_MESSAGES[kind])
    assert machine.active_scans == {"a"} and machine.active_chats == set()
    # A cancelled scan runs until its scan.done, which frees the slot.
    [action] = machine.receive_text(cancel("a"))
    assert isinstance(action, CancelScan) and action.message.request_id == "a"
    assert error_code(machine.receive_text(scan("b"))) is ErrorCode.TOO_MANY_SCANS
    assert machine.should_deliver(1, "scan.done", "a")
    assert isinstance(machine.receive_text(scan("b"))[0], StartScan)


# --------------------------------------------------------------------------- scans


def test_session_start_must_come_first() -> None:
    machine = SessionMachine()
    actions = machine.receive_text(scan())
    assert error_code(actions) is ErrorCode.NOT_AUTHENTICATED
    assert isinstance(actions[0], SendEvent) and actions[0].logged is False
    assert machine.state is State.AWAITING_START


def test_session_start_then_scan() -> None:
    machine = open_machine()
    [action] = machine.receive_text(scan())
    assert isinstance(action, StartScan) and action.message.request_id == "r1"
    assert machine.active_scans == {"r1"}


def test_running_request_id_is_a_duplicate() -> None:
    machine = open_machine()
    machine.receive_text(scan("r1"))
    error = refusal(machine.receive_text(scan("r1")), logged=True)
    assert error.code is ErrorCode.DUPLICATE_REQUEST
    assert error.request_id == "r1" and error.retryable is False
    assert error.message == "request_id 'r1' is already in use by a running scan or question"
    assert machine.active_scans == {"r1"}


def test_scans_and_questions_share_request_ids() -> None:
    machine = open_machine()
    machine.receive_text(scan("a"))
    machine.receive_text(chat("b"))
    assert error_code(machine.receive_text(chat("a"))) is ErrorCode.DUPLICATE_REQUEST
    assert error_code(machine.receive_text(scan("b"))) is ErrorCode.DUPLICATE_REQUEST
    assert machine.active_scans == {"a"} and machine.active_chats == {"b"}


def test_concurrent_scan_cap_and_release_on_scan_done() -> None:
    machine = open_machine(max_concurrent_scans=2)
    machine.receive_text(scan("a"))
    machine.receive_text(scan("b"))
    actions = machine.receive_text(scan("c"))
    error = refusal(actions, logged=True)
    assert error.code is ErrorCode.TOO_MANY_SCANS and error.request_id == "c"
    assert error.retryable is True
    assert error.message == "at most 2 scans may run at once"
    assert machine.active_scans == {"a", "b"}
    assert machine.should_deliver(1, "scan.done", "a")
    # The refused request_id was not used up: the same one is taken now.
    assert isinstance(machine.receive_text(scan("c"))[0], StartScan)
    assert machine.active_scans == {"b", "c"}


def test_a_duplicate_is_told_before_the_cap() -> None:
    machine = open_machine(max_concurrent_scans=1)
    machine.receive_text(scan("a"))
    assert error_code(machine.receive_text(scan("a"))) is ErrorCode.DUPLICATE_REQUEST


def test_scans_still_running_after_a_resume_count_towards_the_cap() -> None:
    machine = open_machine(max_concurrent_scans=2)
    machine.scans_in_flight({"a", "b"})  # accepted on the connection that dropped
    assert error_code(machine.receive_text(scan("c"))) is ErrorCode.TOO_MANY_SCANS
    assert error_code(machine.receive_text(scan("a"))) is ErrorCode.DUPLICATE_REQUEST
    assert machine.should_deliver(1, "scan.done", "b")
    assert isinstance(machine.receive_text(scan("c"))[0], StartScan)


def test_questions_still_open_after_a_resume_count_towards_the_chat_cap() -> None:
    machine = open_machine(max_concurrent_chats=2)
    machine.chats_in_flight({"q1", "q2"})  # claimed on the connection that dropped
    assert error_code(machine.receive_text(chat("q3"))) is ErrorCode.TOO_MANY_CHATS
    assert error_code(machine.receive_text(chat("q1"))) is ErrorCode.DUPLICATE_REQUEST
    assert machine.should_deliver(1, "chat.done", "q1")
    assert isinstance(machine.receive_text(chat("q3"))[0], StartChat)
    assert machine.active_scans == set()


def test_scans_in_flight_add_to_those_already_running() -> None:
    machine = open_machine()
    machine.receive_text(scan("a"))
    machine.scans_in_flight({"b"})
    machine.scans_in_flight(set())
    assert machine.active_scans == {"a", "b"}


def test_rejected_scan_frees_its_slot() -> None:
    machine = open_machine(max_concurrent_scans=1)
    machine.receive_text(scan("a"))
    machine.scan_rejected("a")
    assert machine.active_scans == set()
    assert isinstance(machine.receive_text(scan("b"))[0], StartScan)
    # and its request_id: the I/O layer decides whether it was used up.
    machine.scan_rejected("b")
    assert isinstance(machine.receive_text(scan("a"))[0], StartScan)


def test_rejecting_an_unknown_request_changes_nothing() -> None:
    machine = open_machine()
    machine.receive_text(scan("a"))
    machine.receive_text(chat("b"))
    machine.scan_rejected("zzz")
    assert machine.active_scans == {"a"} and machine.active_chats == {"b"}


# --------------------------------------------------------------------------- questions (chat)


def test_chat_cap_is_its_own_and_refused_with_too_many_chats() -> None:
    machine = open_machine(max_concurrent_scans=1, max_concurrent_chats=2)
    assert isinstance(machine.receive_text(scan("s"))[0], StartScan)
    for request_id in ("a", "b"):
        [action] = machine.receive_text(chat(request_id))
        assert isinstance(action, StartChat) and action.message.request_id == request_id
    [refused] = machine.receive_text(chat("c"))
    assert isinstance(refused, SendEvent) and isinstance(refused.event, Error)
    assert refused.event.code is ErrorCode.TOO_MANY_CHATS
    assert refused.event.retryable is True and refused.event.request_id == "c"
    assert refused.event.message == "at most 2 questions may be answered at once"
    assert refused.logged is True
    assert machine.active_chats == {"a", "b"}


def test_full_scans_do_not_block_questions_nor_questions_scans() -> None:
    machine = open_machine(max_concurrent_scans=1, max_concurrent_chats=1)
    assert isinstance(machine.receive_text(scan("s1"))[0], StartScan)
    assert isinstance(machine.receive_text(chat("c1"))[0], StartChat)
    assert error_code(machine.receive_text(scan("s2"))) is ErrorCode.TOO_MANY_SCANS
    assert error_code(machine.receive_text(chat("c2"))) is ErrorCode.TOO_MANY_CHATS


def test_chat_done_frees_a_question_slot() -> None:
    machine = open_machine(max_concurrent_chats=1)
    machine.receive_text(chat("a"))
    assert error_code(machine.receive_text(chat("b"))) is ErrorCode.TOO_MANY_CHATS
    assert machine.should_deliver(1, "chat.done", "a")
    assert machine.active_chats == set()
    assert isinstance(machine.receive_text(chat("b"))[0], StartChat)


def test_rejected_question_frees_its_slot() -> None:
    machine = open_machine(max_concurrent_chats=1)
    machine.receive_text(chat("a"))
    machine.scan_rejected("a")  # the budget was spent, or the enqueue failed
    assert machine.active_chats == set()
    assert isinstance(machine.receive_text(chat("b"))[0], StartChat)


# --------------------------------------------------------------------------- delivery


def test_deliver_drops_duplicates_and_old_events() -> None:
    machine = open_machine()
    assert machine.should_deliver(1, "", None)
    assert machine.should_deliver(2, "", None)
    assert not machine.should_deliver(2, "", None)
    assert not machine.should_deliver(1, "", None)
    assert machine.last_seq == 2


def test_deliver_takes_a_gap_and_drops_what_it_skipped() -> None:
    # The I/O layer catches up from the log before a gap; an event below the head is old.
    machine = open_machine()
    assert machine.should_deliver(5, "", None)
    assert not machine.should_deliver(3, "", None)
    assert machine.last_seq == 5


def test_resume_position() -> None:
    machine = SessionMachine()
    machine.receive_text('{"type": "session.start", "token": "t"}')
    machine.authenticated("s1", 41)
    assert not machine.should_deliver(41, "", None)
    assert machine.should_deliver(42, "", None)


@pytest.mark.parametrize(
    ("event_type", "scans_left", "chats_left"),
    [
        ("scan.done", {"c"}, {"q", "c2"}),
        ("chat.done", {"s", "c"}, {"c2"}),
    ],
)
def test_a_done_frees_only_its_own_kind(
    event_type: str, scans_left: set[str], chats_left: set[str]
) -> None:
    machine = open_machine()
    for frame in (scan("s"), scan("c"), chat("q"), chat("c2")):
        machine.receive_text(frame)
    request_id = "s" if event_type == "scan.done" else "q"
    assert machine.should_deliver(1, event_type, request_id)
    # A done naming a request of the other kind frees nothing.
    other = "c2" if event_type == "scan.done" else "c"
    assert machine.should_deliver(2, event_type, other)
    assert machine.active_scans == scans_left and machine.active_chats == chats_left


@pytest.mark.parametrize(
    "event_type", ["scan.accepted", "scan.classified", "coaching.done", "chat.delta", "error", ""]
)
def test_other_events_of_a_request_do_not_free_it(event_type: str) -> None:
    machine = open_machine()
    machine.receive_text(scan("a"))
    machine.receive_text(chat("b"))
    assert machine.should_deliver(1, event_type, "a")
    assert machine.should_deliver(2, event_type, "b")
    assert machine.active_scans == {"a"} and machine.active_chats == {"b"}


@pytest.mark.parametrize("event_type", ["scan.done", "chat.done"])
def test_a_done_without_a_request_id_frees_nothing(event_type: str) -> None:
    machine = open_machine()
    machine.receive_text(scan("a"))
    machine.receive_text(chat("b"))
    assert machine.should_deliver(1, event_type, None)
    assert machine.active_scans == {"a"} and machine.active_chats == {"b"}


def test_a_dropped_done_frees_nothing() -> None:
    # A duplicate (or replayed) event is dropped whole: it changes no state.
    machine = authenticating_machine()
    machine.authenticated("s1", 5)
    machine.scans_in_flight({"a"})
    machine.receive_text(chat("b"))
    assert not machine.should_deliver(5, "scan.done", "a")
    assert not machine.should_deliver(4, "chat.done", "b")
    assert machine.active_scans == {"a"} and machine.active_chats == {"b"}
    assert machine.last_seq == 5


# --------------------------------------------------------------------------- closing


@pytest.mark.parametrize("when", ["awaiting_start", "authenticating", "open"])
def test_a_closed_machine_reads_nothing(when: str) -> None:
    makers: dict[str, Callable[[], SessionMachine]] = {
        "awaiting_start": SessionMachine,
        "authenticating": authenticating_machine,
        "open": open_machine,
    }
    machine = makers[when]()
    machine.closed()
    assert machine.state is State.CLOSED
    for frame in (START, scan(), chat("c"), "{oops", "x" * (MAX_MESSAGE_BYTES + 1)):
        assert machine.receive_text(frame) == []
    assert machine.receive_binary(CAMERA_FRAME) == []
    assert machine.active_scans == set() and machine.active_chats == set()


def test_after_the_1008_close_nothing_is_read() -> None:
    machine = open_machine(max_invalid_frames=1)
    assert len(machine.receive_text("{oops")) == 2
    assert machine.receive_text(scan()) == []
    assert machine.receive_binary(CAMERA_FRAME) == []


def test_binary_frames_after_close_are_ignored() -> None:
    machine = open_machine()
    machine.closed()
    assert machine.receive_binary(CAMERA_FRAME) == []
