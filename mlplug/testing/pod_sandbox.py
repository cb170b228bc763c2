"""Run a pod's container here the way Kubernetes would run it, without a cluster.

:func:`run_like_pod` takes a rendered manifest with a pod template (a Job that
``mlplug.workpools`` renders per flow run with prefect-kubernetes' code, or a serving
Deployment from ``mlplug.k8s``) and runs its container's command in a private mount
namespace: the root filesystem read-only (``readOnlyRootFilesystem``), a fresh tmpfs at each
emptyDir ``mountPath`` sized by its ``sizeLimit``, the files of Secret volumes you give
mounted read-only with their ``defaultMode``, as the pod's ``runAsUser``/``runAsGroup``
(``fsGroup`` as a supplementary group), with exactly the container's environment plus what
its ``envFrom`` sources would add. A write anywhere else fails with "Read-only file system",
as it would in the pod.

A long-running container (a server) is started in the background and ``probe`` (a command
run as root in the same namespaces) talks to it; then it gets SIGTERM, as on a pod's
deletion. ``isolated_network`` gives the sandbox its own loopback-only network, so a server
can listen on its real port without meeting anything else on this machine.

What differs from the pod: the code comes from this checkout and its virtualenv instead of the
image (``workdir`` stands in for the container's ``workingDir``), and paths the pod does not
mount show this machine's files (read-only). Code that lies under one of the pod's emptyDir
paths (a checkout in /tmp, where pods mount a fresh /tmp) stays visible there, read-only, as
it would be from the image, and is left out of what the volume reports as written. It needs
root (to make the namespaces); :func:`unavailable` says why not.
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_TOOLS = ("unshare", "mount", "setpriv", "bash", "ip")


def unavailable() -> str | None:
    """Why a sandbox cannot be made on this machine, or None when it can."""
    if os.geteuid() != 0:
        return "needs root to make a private mount namespace"
    missing = [tool for tool in _TOOLS if not shutil.which(tool)]
    if missing:
        return f"missing {', '.join(missing)}"
    probe = subprocess.run(
        ["unshare", "--mount", "--net", "--propagation", "private", "true"], capture_output=True, text=True
    )
    if probe.returncode != 0:
        return f"unshare --mount --net failed: {probe.stderr.strip()}"
    return None


@dataclass
class PodRun:
    #: The container's exit status (after SIGTERM, for one that was probed).
    returncode: int
    output: str
    #: Files left in each writable volume (paths relative to the mount, three levels deep).
    written: dict[str, list[str]] = field(default_factory=dict)
    #: Exit status of the probe, when one ran.
    probe_returncode: int | None = None


def _size_option(size_limit: str | None) -> str:
    match = re.fullmatch(r"(\d+)([KMG])i", size_limit or "")
    return f",size={match.group(1)}{match.group(2).lower()}" if match else ""


def _hidden_ancestor(path: Path) -> Path | None:
    """The first directory on the way to ``path`` that other users cannot traverse."""
    for parent in reversed(path.parents):
        if parent != Path("/") and not os.stat(parent).st_mode & stat.S_IXOTH:
            return parent
    return None


def _outermost(paths: list[Path]) -> list[Path]:
    """``paths`` without those inside another of them."""
    return [p for p in paths if not any(other in p.parents for other in paths)]


def _existing_ancestor(path: Path) -> Path:
    parent = path.parent
    while not parent.exists():
        parent = parent.parent
    return parent


def _script(
    manifest: dict[str, Any],
    workdir: Path,
    env: Mapping[str, str],
    stash: Path,
    files: Mapping[str, Mapping[str, str]],
    probe: Sequence[str] | None,
    isolated_network: bool,
) -> str:
    pod = manifest["spec"]["template"]["spec"]
    (container, *_) = pod["containers"]
    security = pod.get("securityContext", {})
    user = security.get("runAsUser", 0)
    group = security.get("runAsGroup", user)
    groups = f"--groups {security['fsGroup']}" if "fsGroup" in security else "--clear-groups"
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    mounts = [(Path(m["mountPath"]), m, volumes[m["name"]]) for m in container.get("volumeMounts", [])]
    for _, mount, volume in mounts:
        if "emptyDir" not in volume and mount["name"] not in files:
            raise ValueError(f"volume {mount['name']!r} is not an emptyDir: pass its files")
    q = shlex.quote
    lines = ["set -euo pipefail", "mount --make-rprivate /"]
    if isolated_network:
        lines.append("ip link set lo up")
    remount_ro: list[Path] = []  # mounts made here that the container must not write to
    # The interpreter and the code must stay reachable for the pod's user (in the image they
    # live in world-readable directories; here the interpreter may sit under /root).
    needed_paths = sorted({Path(sys.base_prefix).resolve(), Path(sys.prefix), workdir})
    for i, needed in enumerate(needed_paths):
        hidden = _hidden_ancestor(needed)
        if hidden is None:
            continue
        keep = stash / f"keep{i}"
        keep.mkdir()
        lines.append(f"mount --bind {q(str(needed))} {q(str(keep))}")
        if hidden not in remount_ro:
            lines.append(f"mount -t tmpfs -o mode=755 tmpfs {q(str(hidden))}")
            remount_ro.append(hidden)
        lines.append(f"mkdir -p {q(str(needed))} && mount --bind {q(str(keep))} {q(str(needed))}")
    # Mount points the host lacks are made in an overlay of their nearest existing parent, so
    # the parent keeps showing its files (/etc for /etc/mlplug/api-keys).
    for i, (path, _, _) in enumerate(mounts):
        if path.exists():
            continue
        parent = _existing_ancestor(path)
        if parent not in remount_ro:
            layer = stash / f"overlay{i}"
            (layer / "upper").mkdir(parents=True)
            (layer / "work").mkdir()
            lines.append(
                f"mount -t overlay overlay -o lowerdir={q(str(parent))},upperdir={q(str(layer / 'upper'))},"
                f"workdir={q(str(layer / 'work'))} {q(str(parent))}"
            )
            remount_ro.append(parent)
        lines.append(f"mkdir -p {q(str(path))}")
    lines.append("mount -o remount,bind,ro /")
    lines += [f"mount -o remount,ro {q(str(path))}" for path in remount_ro]
    kept: dict[Path, list[Path]] = {}
    for i, (path, mount, volume) in enumerate(mounts):
        if "emptyDir" in volume:
            size = _size_option(volume["emptyDir"].get("sizeLimit"))
            inside = _outermost([n for n in needed_paths if path in n.parents])
            if not inside:
                lines.append(f"mount -t tmpfs -o mode=1777{size} tmpfs {q(str(path))}")
                continue
            # The checkout or the interpreter lies under the volume (a clone in /tmp, where
            # the pod mounts an emptyDir): in the image they live elsewhere, so they stay
            # visible, read-only, in the fresh volume. The volume is made aside, the code
            # bound into it while its path still shows, and then moved into place.
            staging = stash / f"volume{i}"
            staging.mkdir()
            lines.append(f"mount -t tmpfs -o mode=1777{size} tmpfs {q(str(staging))}")
            for needed in inside:
                target = q(str(staging / needed.relative_to(path)))
                lines += [
                    f"mkdir -p {target}",
                    f"mount --bind {q(str(needed))} {target}",
                    f"mount -o remount,bind,ro {target}",
                ]
            lines.append(f"mount --no-mtab --move {q(str(staging))} {q(str(path))}")
            kept[path] = [Path(needed.relative_to(path).parts[0]) for needed in inside]
            continue
        mode = volume.get("secret", volume.get("configMap", {})).get("defaultMode", 0o644)
        lines.append(f"mount -t tmpfs -o mode=755 tmpfs {q(str(path))}")
        for name, content in files[mount["name"]].items():
            target = q(str(path / name))
            lines += [
                f"printf %s {q(content)} > {target}",
                f"chown 0:{security.get('fsGroup', 0)} {target} && chmod {mode:o} {target}",
            ]
        if mount.get("readOnly"):
            lines.append(f"mount -o remount,ro {q(str(path))}")
    command = " ".join(q(part) for part in [*container.get("command", []), *container.get("args", [])])
    assignments = " ".join(q(f"{k}={v}") for k, v in env.items())
    run = f"setpriv --reuid {user} --regid {group} {groups} env -i {assignments} {command}"
    lines += [f"cd {q(str(workdir))}", "set +e"]
    if probe is None:
        lines += [run, "rc=$?"]
    else:
        lines += [
            f"{run} &",
            "pid=$!",
            " ".join(q(part) for part in probe),
            'echo "== probe exit $?"',
            "kill -TERM $pid",
            "wait $pid",
            "rc=$?",
        ]
    lines += [
        'echo "== sandbox exit $rc"',
        *[
            f"echo {q('== volume ' + str(path))}; (cd {q(str(path))} && find . -mindepth 1 -maxdepth 3"
            + "".join(f" -path {q(f'./{top}')} -prune -o" for top in kept.get(path, []))
            + " -print)"
            for path, _, volume in mounts
            if "emptyDir" in volume
        ],
        "exit $rc",
    ]
    return "\n".join(lines) + "\n"


def run_like_pod(
    manifest: dict[str, Any],
    *,
    workdir: Path,
    env_from: Mapping[str, str] | None = None,
    files: Mapping[str, Mapping[str, str]] | None = None,
    probe: Sequence[str] | None = None,
    isolated_network: bool = False,
    timeout: float = 600,
) -> PodRun:
    """Run the first container of ``manifest``'s pod template as its pod would; see the module
    docstring.

    ``env_from`` is what the container's ``envFrom`` sources would add (a ConfigMap's data, a
    store-credentials Secret); the container's ``env`` wins over it, as in Kubernetes. ``files``
    gives the content of non-emptyDir volumes by volume name (a Secret's keys). ``PATH`` is
    this interpreter's bin directory, in place of the image's.
    """
    reason = unavailable()
    if reason:
        raise RuntimeError(f"cannot sandbox a pod here: {reason}")
    (container, *_) = manifest["spec"]["template"]["spec"]["containers"]
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        **(env_from or {}),
        **{e["name"]: e["value"] for e in container.get("env", []) if "value" in e},
    }
    namespaces = ["--mount", "--propagation", "private", *(["--net"] if isolated_network else [])]
    with tempfile.TemporaryDirectory(prefix="mlplug-pod-") as tmp:
        stash = Path(tmp)
        script = stash / "pod.sh"
        script.write_text(_script(manifest, workdir, env, stash, files or {}, probe, isolated_network))
        proc = subprocess.run(
            ["unshare", *namespaces, "bash", str(script)], capture_output=True, text=True, timeout=timeout
        )
    written: dict[str, list[str]] = {}
    current: list[str] | None = None
    probe_returncode = None
    for line in proc.stdout.splitlines():
        if line.startswith("== probe exit "):
            probe_returncode = int(line.removeprefix("== probe exit "))
        elif line.startswith("== volume "):
            current = written.setdefault(line.removeprefix("== volume "), [])
        elif current is not None and line.startswith("./"):
            current.append(line.removeprefix("./"))
    return PodRun(proc.returncode, proc.stdout + proc.stderr, written, probe_returncode)
