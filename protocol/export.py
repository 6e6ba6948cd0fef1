"""Generate the JSON Schema of every message and the AsyncAPI 3 document from the models.

``python -m protocol.export docs/`` writes ``docs/schemas/<type>.json`` and
``docs/asyncapi.yaml``. A test fails when the committed files differ from what the models
generate, so the documents can never drift from the code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from protocol.messages import CLIENT_MESSAGES, PROTOCOL_VERSION, SERVER_EVENTS


def _type_of(model: type[BaseModel]) -> str:
    value = model.model_fields["type"].default
    assert isinstance(value, str)
    return value


def message_schemas() -> dict[str, dict[str, Any]]:
    """``type`` → JSON Schema (draft 2020-12) of that message, self-contained."""
    schemas: dict[str, dict[str, Any]] = {}
    for model in (*CLIENT_MESSAGES, *SERVER_EVENTS):
        schema = model.model_json_schema(mode="serialization" if model in SERVER_EVENTS else
                                         "validation")
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://wastecoach.kr/schemas/v{PROTOCOL_VERSION}/{_type_of(model)}.json"
        schemas[_type_of(model)] = schema
    return schemas


def _component_name(kind: str) -> str:
    return "".join(part.capitalize() for part in kind.replace(".", "_").split("_"))


def asyncapi() -> dict[str, Any]:
    messages: dict[str, Any] = {}
    schemas: dict[str, Any] = {}
    for kind, schema in message_schemas().items():
        name = _component_name(kind)
        body = dict(schema)
        body.pop("$schema", None)
        body.pop("$id", None)
        # AsyncAPI components hold shared definitions flat; lift pydantic's $defs there.
        for def_name, definition in body.pop("$defs", {}).items():
            schemas[def_name] = definition
        schemas[name] = body
        messages[name] = {
            "name": kind,
            "title": kind,
            "summary": (body.get("description") or "").split("\n")[0] or kind,
            "contentType": "application/json",
            "payload": {"$ref": f"#/components/schemas/{name}"},
        }
    document = {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Waste Coach coaching session",
            "version": str(PROTOCOL_VERSION),
            "description": (
                "One WebSocket per app session. The client authenticates with session.start, "
                "then starts scans and receives their events. See docs/protocol.md."
            ),
        },
        "servers": {
            "production": {
                "host": "api.wastecoach.kr",
                "protocol": "wss",
                "pathname": "/api/v1/coach/ws",
            },
            "embedded": {"host": "127.0.0.1:8000", "protocol": "ws",
                         "pathname": "/api/v1/coach/ws"},
        },
        "channels": {
            "coach": {
                "address": "/api/v1/coach/ws",
                "messages": {
                    name: {"$ref": f"#/components/messages/{name}"} for name in messages
                },
            }
        },
        "operations": {
            "sendClientMessage": {
                "action": "receive",
                "summary": "Messages the client sends.",
                "channel": {"$ref": "#/channels/coach"},
                "messages": [
                    {"$ref": f"#/channels/coach/messages/{_component_name(_type_of(m))}"}
                    for m in CLIENT_MESSAGES
                ],
            },
            "receiveServerEvent": {
                "action": "send",
                "summary": "Events the server sends.",
                "channel": {"$ref": "#/channels/coach"},
                "messages": [
                    {"$ref": f"#/channels/coach/messages/{_component_name(_type_of(m))}"}
                    for m in SERVER_EVENTS
                ],
            },
        },
        "components": {"messages": messages, "schemas": schemas},
    }
    # pydantic writes refs as #/$defs/X; in AsyncAPI they live under components/schemas.
    text = json.dumps(document).replace('"#/$defs/', '"#/components/schemas/')
    result: dict[str, Any] = json.loads(text)
    return result


def render() -> dict[str, str]:
    """Relative path → file content."""
    files = {
        f"schemas/{kind}.json": json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
        for kind, schema in message_schemas().items()
    }
    files["asyncapi.yaml"] = yaml.safe_dump(asyncapi(), sort_keys=False, allow_unicode=True)
    return files


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs")
    for relative, content in render().items():
        path = out / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(content, encoding="utf-8")
    print(f"wrote {len(render())} files under {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
