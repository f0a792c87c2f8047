"""`fm test`: run pipeline test files, report pass/fail, JUnit XML and per-stage coverage.

The logic lives in ``runner`` (no CLI imports, usable from Python); this
module only adds the command. Exit status: 0 when every case passed (or was
skipped), 1 when one failed or errored, 2 when there was nothing to run.
"""
from __future__ import annotations

from flowmason.kernel.plugins import hookimpl


@hookimpl
def fm_register_commands(app):
    from .cli import test_command

    app.command("test")(test_command)
