"""Loading the providers, AI nodes and testing plugins imports no HTTP client, SDK or CLI library."""
from __future__ import annotations

import subprocess
import sys


def test_plugins_load_without_heavy_imports():
    code = (
        "import sys\n"
        "import flowmason.plugins.providers, flowmason.plugins.ai_nodes, flowmason.plugins.testing, flowmason.plugins.cassettes\n"
        "from flowmason.kernel.plugins import get_registry\n"
        "reg = get_registry()\n"
        "assert {'anthropic', 'openai', 'ollama', 'llamacpp'} <= set(reg.providers)\n"
        "assert {'generator', 'critic', 'improver', 'synthesizer', 'selector'} <= set(reg.components)\n"
        "print(sorted(m for m in ('anthropic', 'httpx', 'httpx2', 'typer') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"FM_PLUGINS": "providers,ai_nodes,testing,cassettes", "PATH": ""})
    assert out.stdout.strip() == "[]"
