"""The Lambda entry points are servers: FM_HTTP_DENY_PRIVATE is on unless the deployment sets it (fresh processes)."""
from __future__ import annotations

import os
import subprocess
import sys

PROBE = ("from flowmason.kernel.settings import get_settings, source\n"
         "print(get_settings().http_deny_private, '|', source('FM_HTTP_DENY_PRIVATE'))\n")


def _python(code: str, **env: str) -> str:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FM_HTTP")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env={**base, **env})
    assert res.returncode == 0, res.stderr
    return res.stdout.strip().splitlines()[-1]


def test_the_api_and_the_worker_deny_private_targets_by_default_and_an_explicit_value_wins(tmp_path):
    store = f"sqlite:///{tmp_path / 'api.db'}"
    assert _python("import flowmason.functions.api\n" + PROBE, FM_STORE=store) == "True | server default (Lambda API)"
    assert _python("import flowmason.functions.api\n" + PROBE, FM_STORE=store, FM_HTTP_DENY_PRIVATE="0") \
        == "False | environment"
    # any event: the defaults apply before the batch is read (an empty one is refused by powertools)
    worker = "from flowmason.functions import worker\ntry:\n    worker.handler({}, None)\nexcept Exception:\n    pass\n"
    assert _python(worker + PROBE) == "True | server default (Lambda worker)"
    assert _python(PROBE) == "False | default"  # fm run, the SDK: a laptop keeps local access
