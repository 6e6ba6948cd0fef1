"""The lock files cover what pyproject.toml declares, with exact pins and hashes.

serve.sh installs requirements/runtime.txt and test.sh requirements/dev.txt, then the project
with --no-deps: a dependency added to pyproject.toml without ``scripts/lock.sh`` would be
missing (or at a version nobody tested) everywhere but on the machine of whoever added it.
Reads only files and the installed packages' metadata; no network.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import pytest
from packaging.markers import Marker
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]
LOCKS = ROOT / "requirements"

_PIN = re.compile(
    r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s;\\]+)\s*"
    r"(?:;\s*(?P<marker>[^\\]+?))?\s*\\?$"
)


@dataclass(frozen=True)
class Pin:
    version: str
    marker: Marker | None
    hashes: int

    def applies(self) -> bool:
        return self.marker is None or self.marker.evaluate()


def read_lock(name: str) -> dict[str, list[Pin]]:
    """Pins by canonical name; a name can appear more than once with exclusive markers."""
    pins: dict[str, list[Pin]] = {}
    current: list[Pin] | None = None
    text = (LOCKS / name).read_text()
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.startswith((" ", "\t")):
            assert current is not None, f"{name}: continuation line without a pin: {line!r}"
            if line.strip().startswith("--hash=sha256:"):
                last = current[-1]
                current[-1] = Pin(last.version, last.marker, last.hashes + 1)
            continue
        match = _PIN.match(line)
        assert match, f"{name}: not an exact pin: {line!r}"
        marker = Marker(match["marker"]) if match["marker"] else None
        current = pins.setdefault(canonicalize_name(match["name"]), [])
        current.append(Pin(match["version"], marker, 0))
    return pins


def pinned_here(pins: dict[str, list[Pin]], name: str) -> str | None:
    """The version the lock installs on this interpreter and platform, if any."""
    versions = [pin.version for pin in pins.get(canonicalize_name(name), []) if pin.applies()]
    assert len(versions) <= 1, f"{name} is pinned twice for this environment: {versions}"
    return versions[0] if versions else None


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [Requirement(r) for r in project["dependencies"]]
    for extra in extras:
        reqs += [Requirement(r) for r in project["optional-dependencies"][extra]]
    return reqs


RUNTIME = read_lock("runtime.txt")
DEV = read_lock("dev.txt")
CASES = [pytest.param(RUNTIME, (), id="runtime"), pytest.param(DEV, ("dev", "loadtest"), id="dev")]


@pytest.mark.parametrize(("pins", "extras"), CASES)
def test_every_declared_dependency_has_an_exact_pin_that_satisfies_it(
    pins: dict[str, list[Pin]], extras: tuple[str, ...]
) -> None:
    problems = []
    for req in declared(*extras):
        if req.marker is not None and not req.marker.evaluate():
            continue
        version = pinned_here(pins, req.name)
        if version is None:
            problems.append(f"{req.name}: not in the lock")
        elif not req.specifier.contains(Version(version), prereleases=True):
            problems.append(f"{req}: the lock pins {version}")
    assert not problems, "run scripts/lock.sh: " + "; ".join(problems)


@pytest.mark.parametrize(("pins", "extras"), CASES)
def test_lock_is_closed_over_the_installed_dependencies(
    pins: dict[str, list[Pin]], extras: tuple[str, ...]
) -> None:
    """What each locked package needs (with the extras asked for, e.g. uvicorn[standard]) is in
    the lock too, read from the installed metadata; a package installed at another version than
    the pinned one (a hand-upgraded virtualenv) is not followed."""
    problems = []
    seen: set[tuple[str, frozenset[str]]] = set()
    todo = [req for req in declared(*extras) if req.marker is None or req.marker.evaluate()]
    while todo:
        req = todo.pop()
        key = (canonicalize_name(req.name), frozenset(req.extras))
        if key in seen:
            continue
        seen.add(key)
        version = pinned_here(pins, req.name)
        if version is None:
            problems.append(f"{req.name} (needed for {req}) is not in the lock")
            continue
        if not req.specifier.contains(Version(version), prereleases=True):
            problems.append(f"{req} but the lock pins {version}")
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue
        if Version(dist.version) != Version(version):
            continue
        for spec in dist.requires or []:
            sub = Requirement(spec)
            if sub.marker is not None and not any(
                sub.marker.evaluate({"extra": extra}) for extra in (*req.extras, "")
            ):
                continue
            todo.append(sub)
    assert not problems, "run scripts/lock.sh: " + "; ".join(problems)


def test_runtime_lock_agrees_with_dev_lock() -> None:
    """serve.sh runs on the versions the tests ran on."""
    for name, pins in RUNTIME.items():
        assert name in DEV, f"{name} is in runtime.txt but not in dev.txt"
        assert [p.version for p in pins] == [p.version for p in DEV[name]], name


@pytest.mark.parametrize("name", ["runtime.txt", "dev.txt", "pip.txt"])
def test_every_pin_has_hashes_and_no_local_source(name: str) -> None:
    pins = read_lock(name)
    assert pins
    assert all(pin.hashes for versions in pins.values() for pin in versions), name
    text = (LOCKS / name).read_text()
    for local in ("file:", "/opt/", "--find-links", "--extra-index-url", "--index-url"):
        assert local not in text, f"{name} depends on {local}"


def test_train_extra_stays_out_of_the_locks() -> None:
    others = {canonicalize_name(req.name) for req in declared("dev")}
    for req in declared("train"):
        name = canonicalize_name(req.name)
        if name not in others:
            assert name not in RUNTIME and name not in DEV, f"{name} (train extra) is locked"


#: Advisories against locked packages whose fixed release is known here: the lock must pin at
#: or past each fix. No vulnerability service can be reached from this machine, so this is a
#: floor, not an audit: production CI runs pip-audit on requirements/runtime.txt (see
#: docs/reliability.md, "Dependency advisories"), and each advisory it reports that is fixed by
#: an upgrade gets a line here with the upgrade.
FIXED_IN = {
    "python-jose": ("3.4.0", "CVE-2024-33663 (algorithm confusion), CVE-2024-33664 (JWE bomb)"),
    "h11": ("0.16.0", "CVE-2025-43859 (request smuggling, lenient chunked parsing)"),
    "python-multipart": ("0.0.18", "CVE-2024-53981 (DoS with bytes around a boundary)"),
    "starlette": ("0.40.0", "CVE-2024-47874 (multipart form fields without size limit)"),
    "urllib3": ("2.5.0", "CVE-2025-50181, CVE-2025-50182 (redirect controls ignored)"),
    "idna": ("3.7", "CVE-2024-3651 (quadratic time in idna.encode)"),
    "certifi": ("2024.7.4", "CVE-2024-39689 (GLOBALTRUST roots removed)"),
    "authlib": ("1.3.1", "CVE-2024-37568 (algorithm confusion with asymmetric keys)"),
    "tqdm": ("4.66.3", "CVE-2024-34062 (eval of CLI arguments)"),
    "pillow": ("10.3.0", "CVE-2024-28219 (buffer overflow in _imagingcms)"),
}


@pytest.mark.parametrize(("pins", "extras"), CASES)
def test_lock_pins_past_the_known_advisories(
    pins: dict[str, list[Pin]], extras: tuple[str, ...]
) -> None:
    problems = []
    for name, (fixed, advisory) in FIXED_IN.items():
        versions = [pin.version for pin in pins.get(canonicalize_name(name), [])]
        problems += [
            f"{name}=={v}: {advisory} is fixed in {fixed}"
            for v in versions
            if Version(v) < Version(fixed)
        ]
    assert not problems, "; ".join(problems)
    assert pins[canonicalize_name("python-jose")], "python-jose is expected in the lock"
