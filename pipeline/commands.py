"""The subcommands beyond training: each module's `register(subparsers)` adds its own."""

from __future__ import annotations

from cloud import cli as cloud_cli
from pipeline import local_commands, vertex_commands
from serving import cli as serving_cli

REGISTER: list = [local_commands.register, vertex_commands.register, serving_cli.register, cloud_cli.register]
