"""Ray's scratch goes under MLPLUG_HOME, through a short private link when the path is too
long for Ray's Unix sockets."""

from __future__ import annotations

import tempfile
from pathlib import Path

from mlplug.ray_runtime import RAY_SOCKET_SUFFIX, SOCKET_PATH_MAX, _scratch_dir


def test_a_short_home_is_used_as_it_is() -> None:
    with tempfile.TemporaryDirectory(prefix="h", dir="/tmp") as tmp, _scratch_dir(Path(tmp)) as given:
        assert given == str(Path(tmp) / "ray") and Path(given).is_dir()


def test_a_long_home_gets_a_short_link_that_is_removed_after(tmp_path: Path) -> None:
    home = tmp_path / ("deep-" * 12) / ".mlplug"
    with _scratch_dir(home) as given:
        assert len(given) + RAY_SOCKET_SUFFIX <= SOCKET_PATH_MAX
        assert Path(given).is_symlink() and Path(given).resolve() == (home / "ray").resolve()
        (Path(given) / "session_x").mkdir()
    assert (home / "ray" / "session_x").is_dir()  # the files stay under MLPLUG_HOME
    assert not Path(given).exists() and not Path(given).parent.exists()
