"""``wastecoach scan PHOTO``: one scan through the embedded pipeline, printed as it streams."""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import mimetypes
import time
from pathlib import Path

from protocol.messages import GeoPoint, InlineImage, Locale, ScanAccepted, event_payload
from server.bootstrap import prepare_embedded
from server.container import build_pipeline
from server.events.base import Delivery, Event
from server.pipeline.jobs import ScanJob
from server.pipeline.run import run_scan
from server.settings import Mode, get_settings
from server.users import repository as users
from server.users.models import new_id


def _render(event: dict[str, object]) -> str | None:
    kind = event["type"]
    if kind == "scan.classified":
        c = event["classification"]
        assert isinstance(c, dict)
        return (
            f"\n▶ {c['name_ko']} / {c['name_en']}  [{c['stream']}]  "
            f"confidence {c['confidence']:.2f}  ({c['model']})\n"
        )
    if kind == "coaching.delta":
        return str(event["text"])
    if kind == "coaching.done":
        rule_ids = event["rule_ids"]
        assert isinstance(rule_ids, list)
        line = f"\n  rules: {', '.join(rule_ids)}  backend: {event['backend']}"
        district = event.get("district")
        if isinstance(district, dict):
            scope = "its own rule" if district["local_rule"] else "national rule"
            line += f"  district: {district['name']} ({scope})"
        return line + "\n"
    if kind == "bins.suggested":
        places = event["places"]
        assert isinstance(places, list)
        lines = [f"\n▶ nearby ({len(places)}):"]
        for p in places:
            lines.append(f"  {p['distance_m']:.0f} m  {p['name']}  {p.get('address') or ''}")
        if event.get("note"):
            lines.append(f"  {event['note']}")
        return "\n".join(lines) + "\n"
    if kind == "scan.done":
        return f"\n■ {event['status']}  timings(ms): {json.dumps(event['timings_ms'])}\n"
    return None


async def scan_photo(photo: Path, args: argparse.Namespace) -> int:
    settings = get_settings()
    if settings.mode is not Mode.EMBEDDED:
        print("wastecoach scan runs the embedded pipeline; unset WASTECOACH_MODE")
        return 2
    data = await asyncio.to_thread(photo.read_bytes)
    content_type = mimetypes.guess_type(photo.name)[0] or "image/jpeg"
    if content_type not in ("image/jpeg", "image/png", "image/webp"):
        print(f"{photo}: not a JPEG, PNG or WebP image")
        return 2
    await prepare_embedded(settings)
    deps = await build_pipeline(settings)
    async with deps.db.session() as session:
        user_id = (await users.create_guest(session)).id
    session_id = new_id()
    await deps.log.create_session(session_id, user_id)
    finished = asyncio.Event()

    def show(delivery: Delivery) -> None:
        if not isinstance(delivery, Event):
            return
        event_json = delivery.text
        event = json.loads(event_json)
        text = event_json if args.json else _render(event)
        if text:
            print(text, end="\n" if args.json else "", flush=True)
        if event["type"] == "scan.done":
            finished.set()

    await deps.log.subscribe(session_id, show)
    location = GeoPoint(lat=args.lat, lon=args.lon) if args.lat is not None else None
    scan_id = new_id()
    accepted = ScanAccepted(request_id="cli", scan_id=scan_id)
    await deps.log.append(session_id, event_payload(accepted))
    job = ScanJob(
        scan_id=scan_id, request_id="cli", session_id=session_id, user_id=user_id,
        locale=Locale(args.locale),
        image=InlineImage(content_type=content_type, data=base64.b64encode(data).decode()),
        location=location, enqueued_at=time.time(),
    )
    status = await run_scan(job, deps)
    await finished.wait()
    await deps.db.dispose()
    return 0 if status.value == "completed" else 1
