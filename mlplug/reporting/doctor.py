"""Environment checks shared by the report's Environment section and ``mlplug doctor``.

- the dependencies that matter: the requirements of mlplug and of every plugin
  distribution, with the installed version and whether it satisfies the requirement;
- ``pip check``: broken or conflicting requirements anywhere in the environment;
- outdated packages, when a package index answers within a short timeout.

pip runs in a subprocess of the current interpreter with a timeout, so a hung index or a
broken pip never hangs a training run.
"""

from __future__ import annotations

import functools
import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, requires
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from mlplug.plugins import PluginInfo

#: ``run(args, timeout)`` -> (exit code, stdout, stderr); replaced in tests.
Runner = Callable[[Sequence[str], float], tuple[int, str, str]]

PIP_CHECK_TIMEOUT = 60.0
OUTDATED_TIMEOUT = 20.0


def run_subprocess(args: Sequence[str], timeout: float) -> tuple[int, str, str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=False)
    return done.returncode, done.stdout, done.stderr


def normalize(name: str) -> str:
    """PEP 503 name: ``Scikit_Learn`` and ``scikit-learn`` are the same package."""
    return re.sub(r"[-_.]+", "-", name).lower()


# -- the dependencies that matter ---------------------------------------------------------


@dataclass(frozen=True)
class KeyPackage:
    name: str
    #: Requirement specifiers, e.g. ``>=2.0`` (``""``: any version).
    spec: str
    needed_by: tuple[str, ...]
    installed: str | None
    satisfied: bool | None  # None: the version could not be parsed


def key_packages(plugins: Iterable[PluginInfo], installed: Mapping[str, str]) -> list[KeyPackage]:
    """Requirements of mlplug and of each plugin distribution, checked against
    ``installed`` (name -> version, e.g. an environment snapshot's ``packages``)."""
    from packaging.requirements import InvalidRequirement, Requirement
    from packaging.specifiers import SpecifierSet
    from packaging.version import InvalidVersion, Version

    versions = {normalize(k): v for k, v in installed.items()}
    owners = ["mlplug", *sorted({p.distribution for p in plugins if p.distribution})]
    found: dict[str, tuple[str, set[str]]] = {}
    for owner in owners:
        try:
            lines = requires(owner) or []
        except PackageNotFoundError:
            continue
        for line in lines:
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            # Optional extras (dev tools) are not what the code runs on.
            if req.marker is not None and "extra" in str(req.marker):
                continue
            name = normalize(req.name)
            spec, users = found.get(name, ("", set()))
            # The intersection of everyone's specifiers, each clause once.
            joined = str(SpecifierSet(spec) & req.specifier)
            found[name] = (joined, users | {owner})
    out = []
    for name, (spec, users) in sorted(found.items()):
        version = versions.get(name)
        satisfied: bool | None = None
        if version is not None:
            try:
                satisfied = SpecifierSet(spec).contains(Version(version), prereleases=True)
            except (InvalidVersion, ValueError):
                satisfied = None
        else:
            satisfied = False
        out.append(KeyPackage(name, spec, tuple(sorted(users)), version, satisfied))
    return out


# -- pip check ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PipCheck:
    """``ok`` is True when pip found no broken requirement; ``problems`` has one line each."""

    ok: bool
    problems: list[str] = field(default_factory=list)
    #: Set when pip could not run (timeout, missing pip); ``ok`` is then False.
    error: str | None = None

    def involved(self) -> set[str]:
        """Normalised names of the packages the problems are about (both sides)."""
        names: set[str] = set()
        for line in self.problems:
            first = line.split(" ", 1)[0]
            names.add(normalize(first))
            match = re.search(r"(?:requires|has requirement) ([A-Za-z0-9_.\-]+)", line)
            if match:
                names.add(normalize(match.group(1)))
        return names


@functools.cache
def pip_check_once() -> PipCheck:
    """``pip check`` of this process's environment, run once: reports built by one process
    (a worker's flow run, a server) describe the same installed distributions."""
    return pip_check()


def pip_check(run: Runner = run_subprocess, timeout: float = PIP_CHECK_TIMEOUT) -> PipCheck:
    try:
        code, out, err = run([sys.executable, "-m", "pip", "check"], timeout)
    except subprocess.TimeoutExpired:
        return PipCheck(False, error=f"pip check did not finish within {timeout:.0f} s")
    except OSError as exc:
        return PipCheck(False, error=f"pip check could not run: {exc}")
    lines = [line.strip() for line in out.splitlines() if line.strip()]
    if code == 0:
        return PipCheck(True)
    problems = [line for line in lines if not line.lower().startswith("no broken requirements")]
    if not problems:  # non-zero exit without findings: pip itself failed
        return PipCheck(False, error=(err.strip() or f"pip check exited with {code}")[:500])
    return PipCheck(False, problems)


# -- outdated packages --------------------------------------------------------------------


@dataclass(frozen=True)
class Outdated:
    name: str
    version: str
    latest: str


@dataclass(frozen=True)
class OutdatedCheck:
    """``reachable`` is False when no index answered; ``message`` says what happened."""

    reachable: bool
    packages: list[Outdated]
    message: str


def outdated_packages(run: Runner = run_subprocess, timeout: float = OUTDATED_TIMEOUT) -> OutdatedCheck:
    """``pip list --outdated`` against the configured indexes, bounded by ``timeout``.

    pip logs unreachable indexes only at debug level and then reports "nothing outdated",
    so one lookup (``pip index versions pip``) first tells whether any index answers. pip is
    told not to retry and to give up on a connection after a few seconds.
    """
    quick = ["--retries", "0", "--timeout", "5", "--disable-pip-version-check"]
    started = time.monotonic()
    try:
        code, _, err = run(
            [sys.executable, "-m", "pip", "index", "versions", "pip", *quick], min(10.0, timeout)
        )
    except subprocess.TimeoutExpired:
        return OutdatedCheck(
            False, [], f"package index not reachable: no answer within {min(10.0, timeout):.0f} s"
        )
    except OSError as exc:
        return OutdatedCheck(False, [], f"pip could not run: {exc}")
    if code != 0:
        why = (err.strip().splitlines() or [f"pip exited with {code}"])[-1]
        return OutdatedCheck(
            False, [], f"package index not reachable: a lookup of 'pip' failed ({why[:200]})"
        )
    left = max(1.0, timeout - (time.monotonic() - started))
    try:
        code, out, err = run(
            [sys.executable, "-m", "pip", "list", "--outdated", "--format=json", *quick], left
        )
    except subprocess.TimeoutExpired:
        return OutdatedCheck(
            False,
            [],
            f"package index not reachable: the outdated check did not finish within {timeout:.0f} s",
        )
    except OSError as exc:
        return OutdatedCheck(False, [], f"pip could not run: {exc}")
    if code != 0:
        return OutdatedCheck(False, [], f"pip list --outdated failed: {err.strip()[:300]}")
    try:
        rows = json.loads(out) if out.strip() else []
    except json.JSONDecodeError:
        return OutdatedCheck(False, [], "pip list --outdated printed no JSON")
    packages = [
        Outdated(str(r.get("name")), str(r.get("version")), str(r.get("latest_version")))
        for r in rows
        if isinstance(r, dict)
    ]
    return OutdatedCheck(True, packages, f"package index reachable; {len(packages)} outdated package(s)")
