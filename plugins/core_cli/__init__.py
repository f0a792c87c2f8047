"""The core `fm` commands: run, validate, schema, plugins, runs (list, show, prune, resume), settings, init/new/plugin new.

Registered through ``fm_register_commands`` like every other command;
heavy modules (rich, the executor) load inside the commands that need them.
"""
from __future__ import annotations

from flowmason.kernel.plugins import hookimpl

# `fm runs resume` and the stale mark in `fm runs` use the durable engine's public API; `fm init --template ai`
# records its cassette with the cassettes plugin's
USES = ("durable", "cassettes")


@hookimpl
def fm_register_commands(app):
    from . import commands, scaffold, settings_cmd

    commands.register(app)
    settings_cmd.register(app)
    scaffold.register(app)
