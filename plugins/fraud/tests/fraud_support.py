"""Constants and types shared by the fraud tests (a unique name: conftest.py is not importable
safely when several test folders have one)."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from mlplug.dataset import Dataset

ROOT = Path(__file__).resolve().parents[3]
PREFECT = str(Path(sys.executable).with_name("prefect"))

#: Enough iterations to learn the patterns of the synthetic data, few enough to stay fast.
FAST_PARAMS = {"iterations": 300, "learning_rate": 0.1}


@dataclass(frozen=True)
class Splits:
    train: Dataset
    valid: Dataset
    test: Dataset


def prefect_cli(env: dict[str, str], *args: str, timeout: float = 120) -> str:
    """Run the ``prefect`` command from the repository root, as an operator would."""
    out = subprocess.run([PREFECT, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"prefect {' '.join(args)} failed:\n{out.stdout}\n{out.stderr}"
    return out.stdout


def run_worker_once(env: dict[str, str], timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``prefect worker start --pool mlplug-process --run-once``: execute one scheduled run."""
    return subprocess.run(
        [PREFECT, "worker", "start", "--pool", "mlplug-process", "--run-once"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
