"""Builtin plugins. They are registered through the same path as installed plugins."""
