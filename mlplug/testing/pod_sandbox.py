"""Run a Job's container here the way its pod would run it, without a cluster.

:func:`run_like_pod` takes a rendered Job manifest (``mlplug.workpools`` renders one per flow
run with prefect-kubernetes' code) and runs its container's command in a private mount
namespace: the root filesystem read-only (``readOnlyRootFilesystem``), a fresh tmpfs at each
emptyDir ``mountPath`` sized by its ``sizeLimit``, as the pod's ``runAsUser``/``runAsGroup``,
with exactly the container's environment (plus what an ``envFrom`` Secret would add). A write
anywhere else fails with "Read-only file system", as it would in the pod.

What differs from the pod: the code comes from this checkout and its virtualenv instead of the
image (``workdir`` stands in for the container's ``workingDir``), and the network is the
host's. It needs root (to make the mount namespace); :func:`unavailable` says why not.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TOOLS = ("unshare", "mount", "setpriv", "bash")


def unavailable() -> str | None:
    """Why a sandbox cannot be made on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to make a private mount namespace"
    missing = [tool for tool in _TOOLS if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)}"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"unshare --mount failed: {probe.stderr.strip()}"
    return None


@dataclass
class PodRun:
    returncode: int
    output: str
    #: Files left in each writable volume (paths relative to the mount, three levels deep).
    written: dict[str, list[str]] = field(default_factory=dict)


def _size_option(size_limit: str | None) -> str:
    match = re.fullmatch(r"(\d+)([KMG])i", size_limit or "")
    return f",size={match.group(1)}{match.group(2).lower()}" if match else ""


def _hidden_ancestor(path: Path) -> Path | None:
    """The first directory on the way to ``path`` that other users cannot traverse."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & stat.S_IXOTH:
            return parent
    return None


def _existing_ancestor(path: Path) -> Path:
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    return parent


def _script(job: dict[str, Any], workdir: Path, env: dict[str, str], stash: Path) -> str:
    pod = job["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    user = pod.get("securityContext", {}).get("runAsUser", 0)
    group = pod.get("securityContext", {}).get("runAsGroup", user)
    sources = {v["name"]: v.get("emptyDir") for v in pod.get("volumes", [])}
    mounts = [(Path(m["mountPath"]), sources[m["name"]]) for m in container.get("volumeMounts", [])]
    if any(source is None for _, source in mounts):
        raise ValueError("only emptyDir volumes can be sandboxed")
    q = shlex.quote
    lines = ["set -euo pipefail", "mount --make-rprivate /"]
    covered: set[Path] = set()  # tmpfs mounts made here, read-only before the command runs
    # The interpreter and the code must stay reachable for the pod's user (in the image they
    # live in world-readable directories; here the interpreter may sit under /root).
    for i, needed in enumerate(sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix), workdir})):
        hidden = _hidden_ancestor(needed)
        if hidden is None:
            continue
        keep = stash / f"keep{i}"
        keep.mkdir()
        lines.append(f"mount --bind {q(str(needed))} {q(str(keep))}")
        if hidden not in covered:
            lines.append(f"mount -t tmpfs -o mode=755 tmpfs {q(str(hidden))}")
            covered.add(hidden)
        lines.append(f"mkdir -p {q(str(needed))} && mount --bind {q(str(keep))} {q(str(needed))}")
    # Mount points that the host lacks are made on a tmpfs over their nearest existing parent.
    for path, _ in mounts:
        if not path.exists():
            parent = _existing_ancestor(path)
            if parent == Path("/"):
                raise ValueError(f"cannot make mount point {path} without writing to /")
            if parent not in covered:
                lines.append(f"mount -t tmpfs -o mode=755 tmpfs {q(str(parent))}")
                covered.add(parent)
            lines.append(f"mkdir -p {q(str(path))}")
    lines.append("mount -o remount,bind,ro /")
    lines += [f"mount -o remount,ro {q(str(parent))}" for parent in sorted(covered)]
    lines += [
        f"mount -t tmpfs -o mode=1777{_size_option(source.get('sizeLimit'))} tmpfs {q(str(path))}"
        for path, source in mounts
    ]
    command = [*container.get("command", []), *container.get("args", [])]
    assignments = " ".join(q(f"{k}={v}") for k, v in env.items())
    lines += [
        f"cd {q(str(workdir))}",
        "set +e",
        f"setpriv --reuid {user} --regid {group} --clear-groups env -i {assignments} "
        + " ".join(q(part) for part in command),
        "rc=$?",
        'echo "== sandbox exit $rc"',
        *[
            f"echo {q('== volume ' + str(path))}; (cd {q(str(path))} && find . -mindepth 1 -maxdepth 3)"
            for path, _ in mounts
        ],
        "exit $rc",
    ]
    return "\n".join(lines) + "\n"


def run_like_pod(
    job: dict[str, Any],
    *,
    workdir: Path,
    env_from: dict[str, str] | None = None,
    timeout: float = 600,
) -> PodRun:
    """Run the container of ``job`` (its first) as its pod would; see the module docstring.

    ``env_from`` is what the container's ``envFrom`` sources would add (a store-credentials
    Secret); the container's ``env`` wins over it, as in Kubernetes. ``PATH`` is this
    interpreter's bin directory, in place of the image's.
    """
    reason = unavailable()
    if reason:
        raise RuntimeError(f"cannot sandbox a pod here: {reason}")
    (container, *_) = job["spec"]["template"]["spec"]["containers"]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        **(env_from or {}),
        **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e},
    }
    with tempfile.TemporaryDirectory(prefix="mlplug-pod-") as tmp:
        stash = Path(tmp)
        script = stash / "pod.sh"
        script.write_text(_script(job, workdir, env, stash))
        proc = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "bash", str(script)],
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    output = proc.stdout + proc.stderr
    written: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in proc.stdout.splitlines():
        if line.startswith("== volume "):
            current = written.setdefault(line.removeprefix("== volume "), [])
        elif current is not None and line.startswith("./"):
            current.append(line.removeprefix("./"))
    return PodRun(returncode=proc.returncode, output=output, written=written)
