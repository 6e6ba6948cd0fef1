"""ansible/: the playbook passes `ansible-playbook --syntax-check` against the inventory's
shape, and ansible-lint's production profile, both offline (the collections come from the
`ansible` package in .venv-deploy, never from Galaxy). Running it needs the AWS nodes
(docs/deploy.md, "What CI checks")."""

from __future__ import annotations

import yaml

from tests.deploy.conftest import ANSIBLE, ROOT, run_tool, slow_tool_result, tool


def test_syntax_check() -> None:
    result = run_tool(
        [tool("ansible-playbook"), "--syntax-check", "-i", "inventory/hosts.example.yml",
         "site.yml"],
        cwd=ANSIBLE,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_ansible_lint_production_profile() -> None:
    returncode, output = slow_tool_result("ansible-lint")
    assert returncode == 0, output[-5000:]
    assert "passed" in output.lower() or "0 failure" in output, output[-2000:]


def test_every_role_is_used_and_every_used_role_exists() -> None:
    plays = yaml.safe_load((ANSIBLE / "site.yml").read_text())
    used = [role for play in plays for role in play.get("roles", [])]
    present = {p.name for p in (ANSIBLE / "roles").iterdir() if p.is_dir()}
    assert sorted(used) == sorted(present)
    assert len(used) == len(set(used))


def test_the_playbook_reads_the_files_of_this_repository() -> None:
    # The roles load the dashboard and the Argo CD objects from deploy/: they must exist.
    for relative in ("deploy/grafana/wastecoach.json", "deploy/argocd/appproject.yaml",
                     "deploy/argocd/application.yaml"):
        assert (ROOT / relative).exists()
        assert relative.split("/", 1)[1] in "".join(
            p.read_text() for p in (ANSIBLE / "roles").rglob("*.yml")
        )
