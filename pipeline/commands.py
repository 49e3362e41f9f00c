"""The subcommands beyond training: each module's `register(subparsers)` adds its own."""

from __future__ import annotations

from pipeline import local_commands

REGISTER: list = [local_commands.register]
