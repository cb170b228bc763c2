"""pytest plugin for mlplug and plugin authors."""
