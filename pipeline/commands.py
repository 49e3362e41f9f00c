"""The subcommands beyond training: each module's `register(subparsers)` adds its own."""

from __future__ import annotations

REGISTER: list = []
