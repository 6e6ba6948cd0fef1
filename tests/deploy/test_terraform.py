"""terraform/: every file parses (python-hcl2, the HCL2 grammar Terraform uses), checkov finds
nothing (each skip with its reason beside it), and the root module's variables are typed,
described and validated. `terraform validate` and `plan` need the Terraform binary and AWS,
which CI does not have (docs/deploy.md, "What CI checks")."""

from __future__ import annotations

import json

from tests.deploy.conftest import ROOT, TERRAFORM, assert_checkov_clean, run_tool, tool

PARSE = """
import json, pathlib, sys, hcl2
out = {}
for path in sorted(pathlib.Path(sys.argv[1]).rglob("*.tf")):
    with path.open() as handle:
        out[str(path.relative_to(sys.argv[1]))] = hcl2.load(handle)
print(json.dumps(out, default=str))
"""


def _parsed() -> dict[str, dict]:  # type: ignore[type-arg]
    result = run_tool([tool("python"), "-c", PARSE, TERRAFORM])
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def test_every_file_parses() -> None:
    parsed = _parsed()
    tf_files = {str(p.relative_to(TERRAFORM)) for p in TERRAFORM.rglob("*.tf")}
    assert set(parsed) == tf_files
    assert {"main.tf", "variables.tf", "outputs.tf", "backend.tf", "bootstrap/main.tf"} <= tf_files
    for module in ("network", "nodes", "uploads", "dns"):
        assert f"modules/{module}/main.tf" in tf_files


def _value(spec: dict, key: str) -> object:  # type: ignore[type-arg]
    """An attribute of a parsed block (python-hcl2 gives some as one-element lists)."""
    value = spec.get(key)
    return value[0] if isinstance(value, list) and len(value) == 1 else value


def test_root_variables_are_typed_described_and_validated() -> None:
    blocks = _parsed()["variables.tf"]["variable"]
    assert len(blocks) >= 10
    for block in blocks:
        ((name, spec),) = block.items()
        kind = str(_value(spec, "type") or "")
        assert kind, f"{name} has no type"
        assert len(str(_value(spec, "description") or "")) > 20, f"{name} has no description"
        if "bool" not in kind:
            assert spec.get("validation"), f"{name} is not validated"


def test_the_inventory_output_names_what_ansible_reads() -> None:
    outputs = (TERRAFORM / "outputs.tf").read_text()
    for host_var in ("ansible_connection", "ansible_aws_ssm_bucket_name", "private_ip",
                     "availability_zone", "storage_data_volume_id", "vpc_id", "cluster_name"):
        assert host_var in outputs, host_var
    example = (ROOT / "ansible/inventory/hosts.example.yml").read_text()
    # The groups site.yml targets, in the output and in the example Ansible checks with.
    assert 'for role in ["control", "api", "worker", "storage"]' in outputs
    for group in ("control", "api", "worker", "storage"):
        assert f"    {group}:\n      hosts:" in example, group


def test_checkov_finds_nothing() -> None:
    assert_checkov_clean("terraform", min_passed=200)
