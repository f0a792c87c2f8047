"""functions/moto_server.py: without moto, `--aws-local` names the extra to install and changes nothing."""
from __future__ import annotations

import subprocess
import sys

# a fresh interpreter in which `import moto` fails, as it does where the aws-local extra is not installed
WITHOUT_MOTO = """
import os, sys
sys.modules["moto"] = None
from flowmason.kernel.errors import ConfigError
from flowmason.functions.moto_server import moto_server
before = dict(os.environ)
try:
    with moto_server():
        print("started")
except ConfigError as exc:
    print(exc)
print("environment unchanged" if dict(os.environ) == before else "environment changed")
"""


def test_without_moto_the_error_names_the_extra():
    out = subprocess.run([sys.executable, "-c", WITHOUT_MOTO], capture_output=True, text=True, timeout=60, check=True)
    assert "pip install 'flowmason[aws-local]'" in out.stdout
    assert "started" not in out.stdout and "environment unchanged" in out.stdout


def test_it_serves_a_dynamodb_endpoint():
    import boto3

    from flowmason.functions.moto_server import moto_server

    with moto_server() as endpoint:
        assert endpoint.startswith("http://127.0.0.1:")
        client = boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1")
        assert "TableNames" in client.list_tables()
