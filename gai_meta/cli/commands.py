"""Imports every command module so that each registers itself on the app."""

from __future__ import annotations

from gai_meta.cli import check, compare, diff, estimate, history, schema, summarize  # noqa: F401
