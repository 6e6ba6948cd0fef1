"""The connection's send queue (server/ws/outbox.py): bounded, in order, one waiting writer."""

from __future__ import annotations

import asyncio

import pytest

from server.ws.outbox import Outbox


async def test_items_come_out_in_order_and_the_bound_holds() -> None:
    box: Outbox[int] = Outbox(3)
    for i in range(3):
        box.put_nowait(i)
    with pytest.raises(asyncio.QueueFull):
        box.put_nowait(3)
    assert box.qsize() == 3
    assert [await box.get(), box.get_nowait(), await box.get()] == [0, 1, 2]
    assert box.empty() and box.qsize() == 0
    with pytest.raises(asyncio.QueueEmpty):
        box.get_nowait()
    box.put_nowait(4)  # room again once drained
    assert box.get_nowait() == 4


async def test_a_waiting_writer_wakes_on_the_next_item() -> None:
    box: Outbox[str] = Outbox(8)
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    assert not getter.done()
    box.put_nowait("event")
    assert await asyncio.wait_for(getter, 5) == "event"


async def test_a_cancelled_wait_leaves_the_items_for_the_next() -> None:
    box: Outbox[str] = Outbox(8)
    getter = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    getter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await getter
    box.put_nowait("kept")
    assert await asyncio.wait_for(box.get(), 5) == "kept"


async def test_one_consumer_only() -> None:
    box: Outbox[int] = Outbox(8)
    first = asyncio.create_task(box.get())
    await asyncio.sleep(0)
    with pytest.raises(RuntimeError):
        await box.get()
    box.put_nowait(1)
    assert await asyncio.wait_for(first, 5) == 1


def test_a_bound_below_one_is_refused() -> None:
    with pytest.raises(ValueError):
        Outbox(0)
