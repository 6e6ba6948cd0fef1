"""The committed JSON Schemas and AsyncAPI document are exactly what the models generate."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from protocol.export import asyncapi, message_schemas, render
from protocol.messages import CLIENT_MESSAGES, SERVER_EVENTS

DOCS = Path(__file__).resolve().parents[2] / "docs"


def test_committed_documents_match_the_models() -> None:
    for relative, content in render().items():
        path = DOCS / relative
        assert path.exists(), f"{relative} missing: run python -m protocol.export docs"
        assert path.read_text(encoding="utf-8") == content, (
            f"{relative} is stale: run python -m protocol.export docs"
        )


def test_every_message_has_a_schema() -> None:
    schemas = message_schemas()
    assert len(schemas) == len(CLIENT_MESSAGES) + len(SERVER_EVENTS)
    for schema in schemas.values():
        assert schema["properties"]["type"]["const"]


def test_asyncapi_refs_resolve() -> None:
    document = asyncapi()
    assert document["asyncapi"].startswith("3.")
    text = json.dumps(document)
    for ref in {part.split('"')[0] for part in text.split('"$ref": "')[1:]}:
        node = document
        for key in ref.removeprefix("#/").split("/"):
            node = node[key]
    yaml.safe_load((DOCS / "asyncapi.yaml").read_text(encoding="utf-8"))
