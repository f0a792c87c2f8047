"""Run ``fm`` in a subprocess in which some installed packages cannot be imported.

``run_fm(["auth", "rotate-keys"], blocked=("cryptography",))`` starts
``python -m tests.support.without_extra cryptography -- auth rotate-keys``:
a meta-path finder refuses those top-level packages (as if the extra were
not installed), then the real CLI runs. The packages stay installed for the
rest of the suite.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parents[2]


class _Blocker:
    def __init__(self, names: set[str]) -> None:
        self.names = names

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named '{fullname}'", name=fullname)
        return None


def run_fm(args: Sequence[str], *, blocked: Sequence[str], input: str | None = None, env: dict[str, str] | None = None,
           timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tests.support.without_extra", ",".join(blocked), "--", *args],
                          cwd=ROOT, input=input, env=env, capture_output=True, text=True, timeout=timeout)


if __name__ == "__main__":
    names, _, rest = sys.argv[1], sys.argv[2], sys.argv[3:]
    blocked = set(names.split(","))
    for name in list(sys.modules):
        if name.split(".")[0] in blocked:
            del sys.modules[name]
    sys.meta_path.insert(0, _Blocker(blocked))
    from flowmason.kernel.cli import main

    sys.argv = ["fm", *rest]
    main()
