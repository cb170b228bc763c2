"""mlplug fraud plugin (work in progress)."""

MLPLUG_API_VERSION = "1"
