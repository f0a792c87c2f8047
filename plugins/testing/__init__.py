"""`fm test`: run pipeline test files, report pass/fail, JUnit XML and per-stage coverage.

The logic lives in ``runner`` (no CLI imports, usable from Python); this
module only adds the command. Exit status: 0 when every case passed (or was
skipped), 1 when one failed or errored, 2 when there was nothing to run.

Cases replay (or record) model calls through the cassettes plugin's public
API, so ``cassettes`` is in ``REQUIRES``.
"""
from __future__ import annotations

from flowmason.kernel.plugins import hookimpl

# plugins this one cannot work without (short names as in FM_PLUGINS)
REQUIRES = ("cassettes",)


@hookimpl
def fm_register_commands(app):
    from .cli import test_command

    app.command("test")(test_command)
