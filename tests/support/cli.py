"""`fm` run in this process through its real entry point (``flowmason.kernel.cli.main``).

Faster than a subprocess per call; the store comes from ``FM_STORE`` (set it
with monkeypatch) or ``--store``. Returns ``(exit code, stdout, stderr)``.
"""
from __future__ import annotations

from typing import Any


def fm(capsys: Any, *args: str) -> tuple[int, str, str]:
    from flowmason.kernel.cli import main

    capsys.readouterr()  # drop what the test printed before
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    out = capsys.readouterr()
    return code, out.out, out.err
