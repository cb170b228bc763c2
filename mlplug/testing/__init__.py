"""Test support for mlplug and for plugin authors.

Installed as a pytest plugin (entry point ``pytest11``), so a plugin's own test suite gets
the fixtures in :mod:`mlplug.testing.pytest_plugin` with no configuration, and can run
:func:`check_task` against its task types.
"""

from mlplug.testing.conformance import ConformanceError, check_task

__all__ = ["ConformanceError", "check_task"]
