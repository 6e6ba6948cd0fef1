"""Validate Kubernetes manifests against the API's schemas, and custom resources against their
CRDs' published schemas: run by tests/deploy/test_kubernetes.py with .venv-deploy's Python
(kubernetes-validate and jsonschema live there).

    python tests/deploy/k8s_validate.py KUBERNETES_VERSION FILE...

Prints one line per object and exits 1 if any object fails, or is of a kind that neither the
Kubernetes schemas nor tests/deploy/crd_schemas know (an object nothing checks is a failure).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

CRD_SCHEMAS = Path(__file__).resolve().parent / "crd_schemas"


def crd_schema(api_version: str, kind: str) -> dict[str, object] | None:
    group, _, version = api_version.rpartition("/")
    path = CRD_SCHEMAS / f"{group}_{kind.lower()}_{version}.json"
    if not path.exists():
        return None
    loaded: dict[str, object] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def main(argv: list[str]) -> int:
    version, files = argv[0], argv[1:]
    failures = 0
    for name in files:
        for doc in yaml.safe_load_all(Path(name).read_text(encoding="utf-8")):
            if not doc:
                continue
            what = f"{name}: {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
            schema = crd_schema(str(doc.get("apiVersion", "")), str(doc.get("kind", "")))
            try:
                if schema is not None:
                    # Not jsonschema.validate: it first checks the schema itself, and the CRDs'
                    # patterns are Go regular expressions (a `^(?i)` Python refuses).
                    validator = jsonschema.validators.validator_for(schema)(schema)
                    errors = sorted(validator.iter_errors(doc), key=str)
                    if errors:
                        raise errors[0]
                    print(f"ok   {what} (CRD schema)")
                else:
                    kubernetes_validate.validate(doc, version, strict=True)
                    print(f"ok   {what} (Kubernetes {version})")
            except kubernetes_validate.SchemaNotFoundError:
                print(f"FAIL {what}: no schema knows this kind")
                failures += 1
            except (kubernetes_validate.ValidationError, jsonschema.ValidationError) as exc:
                where = "/".join(str(p) for p in getattr(exc, "absolute_path", []))
                print(f"FAIL {what}: at /{where}: {str(exc).splitlines()[0]}")
                failures += 1
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
