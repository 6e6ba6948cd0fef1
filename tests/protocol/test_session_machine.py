"""The sans-I/O session machine, driven synchronously: no sockets, no event loop."""

from __future__ import annotations

import base64
import json

import pytest

from protocol.messages import MAX_MESSAGE_BYTES, Error, ErrorCode, Pong
from protocol.session import (
    Authenticate,
    CancelScan,
    Close,
    CloseCode,
    SendEvent,
    SessionMachine,
    StartChat,
    StartScan,
    State,
)


def scan(request_id: str = "r1") -> str:
    data = base64.b64encode(b"jpeg").decode()
    return json.dumps({"type": "scan.start", "request_id": request_id,
                       "image": {"kind": "inline", "content_type": "image/jpeg", "data": data}})


def open_machine(**kwargs: int) -> SessionMachine:
    machine = SessionMachine(**kwargs)
    [action] = machine.receive_text('{"type": "session.start", "token": "t"}')
    assert isinstance(action, Authenticate)
    machine.authenticated("s1", 0)
    return machine


def error_code(actions: list[object]) -> ErrorCode:
    [action] = actions
    assert isinstance(action, SendEvent)
    code = getattr(action.event, "code")  # noqa: B009
    assert isinstance(code, ErrorCode)
    return code


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


def test_error_carries_the_request_id_when_it_can_be_read() -> None:
    machine = open_machine()
    [action] = machine.receive_text('{"type": "scan.start", "request_id": "abc"}')
    assert isinstance(action, SendEvent) and action.event.request_id == "abc"


def test_oversized_message() -> None:
    machine = open_machine()
    assert error_code(machine.receive_text("x" * (MAX_MESSAGE_BYTES + 1))) is (
        ErrorCode.MESSAGE_TOO_LARGE
    )


def test_oversized_inline_image_is_invalid() -> None:
    machine = open_machine()
    data = base64.b64encode(b"x" * (1024 * 1024 + 1)).decode()
    text = json.dumps({"type": "scan.start", "request_id": "big",
                       "image": {"kind": "inline", "content_type": "image/jpeg", "data": data}})
    actions = machine.receive_text(text)
    assert error_code(actions) is ErrorCode.INVALID_MESSAGE
    assert isinstance(actions[0], SendEvent)
    assert "larger than" in getattr(actions[0].event, "message")  # noqa: B009


def test_binary_frames_are_refused() -> None:
    machine = open_machine()
    assert error_code(machine.receive_binary()) is ErrorCode.INVALID_MESSAGE


def test_running_request_id_is_a_duplicate() -> None:
    machine = open_machine()
    machine.receive_text(scan("r1"))
    assert error_code(machine.receive_text(scan("r1"))) is ErrorCode.DUPLICATE_REQUEST


def test_concurrent_scan_cap_and_release_on_scan_done() -> None:
    machine = open_machine(max_concurrent_scans=2)
    machine.receive_text(scan("a"))
    machine.receive_text(scan("b"))
    actions = machine.receive_text(scan("c"))
    assert error_code(actions) is ErrorCode.TOO_MANY_SCANS
    assert isinstance(actions[0], SendEvent) and actions[0].event.retryable is True
    assert machine.should_deliver(1, "scan.done", "a")
    assert isinstance(machine.receive_text(scan("c"))[0], StartScan)


def test_scans_still_running_after_a_resume_count_towards_the_cap() -> None:
    machine = open_machine(max_concurrent_scans=2)
    machine.scans_in_flight({"a", "b"})  # accepted on the connection that dropped
    assert error_code(machine.receive_text(scan("c"))) is ErrorCode.TOO_MANY_SCANS
    assert error_code(machine.receive_text(scan("a"))) is ErrorCode.DUPLICATE_REQUEST
    assert machine.should_deliver(1, "scan.done", "b")
    assert isinstance(machine.receive_text(scan("c"))[0], StartScan)


def test_rejected_scan_frees_its_slot() -> None:
    machine = open_machine(max_concurrent_scans=1)
    machine.receive_text(scan("a"))
    machine.scan_rejected("a")
    assert isinstance(machine.receive_text(scan("b"))[0], StartScan)


def test_deliver_drops_duplicates_and_old_events() -> None:
    machine = open_machine()
    assert machine.should_deliver(1, "", None)
    assert machine.should_deliver(2, "", None)
    assert not machine.should_deliver(2, "", None)
    assert not machine.should_deliver(1, "", None)
    assert machine.last_seq == 2


def test_resume_position() -> None:
    machine = SessionMachine()
    machine.receive_text('{"type": "session.start", "token": "t"}')
    machine.authenticated("s1", 41)
    assert not machine.should_deliver(41, "", None)
    assert machine.should_deliver(42, "", None)


def test_ping_answers_pong_on_the_connection() -> None:
    machine = open_machine()
    [action] = machine.receive_text('{"type": "ping", "request_id": "p"}')
    assert isinstance(action, SendEvent) and isinstance(action.event, Pong)
    assert action.logged is False and action.event.request_id == "p"


def test_second_session_start_is_refused() -> None:
    machine = open_machine()
    assert error_code(machine.receive_text('{"type": "session.start", "token": "t"}')) is (
        ErrorCode.ALREADY_AUTHENTICATED
    )


def test_cancel_is_passed_through() -> None:
    machine = open_machine()
    [action] = machine.receive_text('{"type": "scan.cancel", "request_id": "r1"}')
    assert isinstance(action, CancelScan)


def test_auth_failure_closes_with_4001_and_resume_theft_with_4003() -> None:
    machine = SessionMachine()
    machine.receive_text('{"type": "session.start", "token": "t"}')
    _, close = machine.authentication_failed(ErrorCode.AUTH_EXPIRED, "expired")
    assert isinstance(close, Close) and close.code is CloseCode.AUTH_FAILED
    assert machine.state is State.CLOSED
    assert machine.receive_text(scan()) == []
    other = SessionMachine()
    other.receive_text('{"type": "session.start", "token": "t"}')
    _, close = other.authentication_failed(ErrorCode.RESUME_FORBIDDEN, "not yours")
    assert isinstance(close, Close) and close.code is CloseCode.RESUME_FORBIDDEN


def test_auth_timeout_closes_with_4008() -> None:
    [close] = SessionMachine().auth_timed_out()
    assert isinstance(close, Close) and close.code is CloseCode.AUTH_TIMEOUT


def test_binary_frames_after_close_are_ignored() -> None:
    machine = open_machine()
    machine.closed()
    assert machine.receive_binary() == []


def chat(request_id: str) -> str:
    return json.dumps({"type": "chat.message", "request_id": request_id, "text": "and the cap?"})


def test_chat_cap_is_its_own_and_refused_with_too_many_chats() -> None:
    machine = open_machine(max_concurrent_scans=1, max_concurrent_chats=2)
    assert isinstance(machine.receive_text(scan("s")), list)
    for request_id in ("a", "b"):
        [action] = machine.receive_text(chat(request_id))
        assert isinstance(action, StartChat) and action.message.request_id == request_id
    [refused] = machine.receive_text(chat("c"))
    assert isinstance(refused, SendEvent) and isinstance(refused.event, Error)
    assert refused.event.code is ErrorCode.TOO_MANY_CHATS
    assert refused.event.retryable is True and refused.event.request_id == "c"
    assert refused.event.message == "at most 2 questions may be answered at once"
    assert machine.active_chats == {"a", "b"}
