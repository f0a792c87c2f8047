"""`fm store` info/export/import/migrate on the real `fm` app, against real stores.

SQLite files in tmp_path; DynamoDB on moto's HTTP server (127.0.0.1). One
test runs the real pipe `fm store export | fm store import --to dynamodb://…`
in subprocesses.
"""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from typer.testing import CliRunner

from flowmason.kernel.storage import open_store



@pytest.fixture(scope="module")
def moto_endpoint():
    pytest.importorskip("moto")
    from tests.support.dynamodb import local_dynamodb

    with local_dynamodb() as endpoint:
        yield endpoint


@pytest.fixture
def app():
    from flowmason.kernel import plugins
    from flowmason.kernel.cli import build_app

    plugins.reset()
    return build_app()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite://{tmp_path / 'laptop.db'}"


def run(app, args, url, input=None):
    return CliRunner().invoke(app, args, input=input, env={"FM_STORE": url}, catch_exceptions=False)


def fill(url):
    future = time.time() + 3600
    with open_store(url) as store:
        store.put("runs#r1", "stage#a", {"output": "ünïcode ✓", "n": 1.5})
        store.put("runs#r1", "stage#a", {"output": "second write", "n": 2})  # version 2
        store.put("runs#r1", "stage#b", {"blob": b"\x00\x01\xfe", "list": [None, True]})
        store.put("tokens", "t#1", {"user": "ana"}, expires_at=future)
        store.put("tokens", "t#old", {"user": "bob"}, expires_at=time.time() - 5)  # expired: not exported
    return future


def items_of(url):
    with open_store(url) as store:
        return sorted(((i.pk, i.sk, i.data, i.version, i.expires_at) for i in store.scan_all()), key=lambda t: t[:2])


def test_info(app, sqlite_url):
    fill(sqlite_url)
    result = run(app, ["store", "info", "--json"], sqlite_url)
    assert result.exit_code == 0, result.output
    details = json.loads(result.stdout)
    assert details["url"] == sqlite_url and details["items"] == 3 and details["size_bytes"] > 0
    plain = run(app, ["store", "info"], sqlite_url).stdout
    assert "items" in plain and sqlite_url in plain


def test_export_prints_every_live_item(app, sqlite_url):
    future = fill(sqlite_url)
    result = run(app, ["store", "export"], sqlite_url)
    assert result.exit_code == 0
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    by_key = {(r["pk"], r["sk"]): r for r in lines}
    assert len(lines) == 3 and ("tokens", "t#old") not in by_key
    assert by_key[("runs#r1", "stage#a")]["version"] == 2
    assert by_key[("runs#r1", "stage#b")]["data"]["blob"] == {"__bytes__": "AAH+"}
    assert by_key[("tokens", "t#1")]["expires_at"] == pytest.approx(future)
    assert "exported 3 item(s)" in result.stderr


def test_export_sqlite_import_dynamodb(app, sqlite_url, moto_endpoint):
    from tests.support.dynamodb import dynamodb_url

    fill(sqlite_url)
    exported = run(app, ["store", "export"], sqlite_url).stdout
    target = dynamodb_url(moto_endpoint)
    result = run(app, ["store", "import", "--to", target], sqlite_url, input=exported)
    assert result.exit_code == 0, result.output
    assert "imported 3 item(s)" in result.stderr
    assert items_of(target) == items_of(sqlite_url)
    # and back again, into a fresh SQLite file, through a file argument
    dump = os.path.join(os.path.dirname(sqlite_url[len("sqlite://"):]), "dump.jsonl")
    with open(dump, "w", encoding="utf-8") as f:
        f.write(run(app, ["store", "export", "--from", target], sqlite_url).stdout)
    back = sqlite_url.replace("laptop.db", "back.db")
    assert run(app, ["store", "import", dump], back).exit_code == 0
    assert items_of(back) == items_of(sqlite_url)


def test_export_and_import_carry_values_kept_in_the_blob_store(app, sqlite_url, moto_endpoint):
    from flowmason.kernel.model import Run, RunStatus
    from flowmason.kernel.runs import RunRepository
    from tests.support.dynamodb import dynamodb_url

    big = "x" * 600_000
    with open_store(sqlite_url) as store:
        record = Run(pipeline_id="p", status=RunStatus.COMPLETED, inputs={"big": big}, output={"body": big})
        RunRepository(store, group_commit=False).run_finished(record)
    exported = run(app, ["store", "export"], sqlite_url)
    assert "and 2 large value(s)" in exported.stderr  # the inputs and the output, each a blob line
    target = dynamodb_url(moto_endpoint)
    result = run(app, ["store", "import", "--to", target], sqlite_url, input=exported.stdout)
    assert result.exit_code == 0, result.output
    with open_store(target) as store:
        back = RunRepository(store).get_run(record.id)
    assert back.inputs == {"big": big} and back.output == {"body": big}
    # a target without a blob store takes nothing
    bare = dynamodb_url(moto_endpoint, blobs=False)
    refused = run(app, ["store", "import", "--to", bare], sqlite_url, input=exported.stdout)
    assert refused.exit_code == 2 and "no blob store" in refused.stderr
    assert items_of(bare) == []


def test_real_pipe_between_two_fm_processes(sqlite_url, moto_endpoint):
    from tests.support.dynamodb import dynamodb_url

    fill(sqlite_url)
    target = dynamodb_url(moto_endpoint)
    fm = [sys.executable, "-m", "flowmason.kernel.cli"]
    env = {**os.environ, "FM_STORE": sqlite_url}
    exporter = subprocess.Popen(fm + ["store", "export"], stdout=subprocess.PIPE, env=env)
    importer = subprocess.run(fm + ["store", "import", "--to", target], stdin=exporter.stdout, capture_output=True, text=True, env=env, timeout=60)
    exporter.stdout.close()
    assert exporter.wait(60) == 0
    assert importer.returncode == 0, importer.stderr
    assert items_of(target) == items_of(sqlite_url)


@pytest.mark.parametrize(
    "bad_line, message",
    [
        ("{not json", "line 3: not valid JSON: Expecting property name enclosed in double quotes (column 2)"),
        ('["a list"]', "line 3: expected a JSON object"),
        ('{"sk": "x", "data": {}}', "line 3: missing 'pk'"),
        ('{"pk": "", "sk": "x", "data": {}}', "line 3: keys must be non-empty"),
        ('{"pk": "p", "sk": "x", "data": {}, "version": 0}', "line 3: version must be a positive integer"),
        ('{"pk": "p", "sk": "x", "data": {}, "expires_at": "soon"}', "line 3: expires_at must be a number"),
        ('{"pk": "p", "sk": "x", "data": {}, "colour": 1}', "line 3: unknown field(s) colour"),
        ('{"pk": "p", "sk": "x", "data": {"b": {"__bytes__": "!!"}}}', "line 3: bad base64"),
        ('{"pk": "p", "sk": "x", "data": {"x": "%s"}}' % ("y" * 410_000), "line 3: item (pk='p', sk='x') is"),
    ],
)
def test_bad_import_names_the_line_and_writes_nothing(app, sqlite_url, bad_line, message):
    good = '{"pk": "p", "sk": "a", "data": {"v": 1}, "version": 1, "expires_at": null}'
    text = "\n".join([good, "", bad_line, good.replace('"a"', '"b"')]) + "\n"
    result = run(app, ["store", "import"], sqlite_url, input=text)
    assert result.exit_code == 2
    assert message in result.stderr
    assert "nothing was imported" in result.stderr
    assert items_of(sqlite_url) == []


def test_import_overwrites_with_exact_versions(app, sqlite_url):
    with open_store(sqlite_url) as store:
        store.put("p", "a", {"old": True})
    line = '{"pk": "p", "sk": "a", "data": {"new": true}, "version": 7}\n'
    assert run(app, ["store", "import"], sqlite_url, input=line).exit_code == 0
    assert items_of(sqlite_url) == [("p", "a", {"new": True}, 7, None)]


def test_migrate_upgrades_an_older_store(app, tmp_path):
    from flowmason.plugins.sqlite_store.schema import MIGRATIONS, SCHEMA_VERSION

    path = tmp_path / "old.db"
    raw = sqlite3.connect(path, isolation_level=None)
    for statement in MIGRATIONS[0]:
        raw.execute(statement)
    raw.execute("INSERT INTO fm_meta VALUES ('schema_version', '1')")
    raw.close()
    url = f"sqlite://{path}"
    check = run(app, ["store", "migrate", "--check"], url)
    assert check.exit_code == 1 and "schema version 1; run `fm store migrate`" in check.stdout
    result = run(app, ["store", "migrate"], url)
    assert result.exit_code == 0 and f"upgraded schema version 1 -> {SCHEMA_VERSION}" in result.stdout
    assert "nothing to do" in run(app, ["store", "migrate"], url).stdout
    assert run(app, ["store", "migrate", "--check"], url).exit_code == 0


def test_migrate_checks_a_dynamodb_table(app, moto_endpoint):
    from tests.support.dynamodb import dynamodb_url

    url = dynamodb_url(moto_endpoint)
    open_store(url).close()  # creates the table
    result = run(app, ["store", "migrate"], url)
    assert result.exit_code == 0 and "current" in result.stdout


def test_fm_store_reads_the_global_store_option(tmp_path):
    """`fm --store URL store info` through main(): the root option picks the store."""
    url = f"sqlite://{tmp_path / 'picked.db'}"
    proc = subprocess.run(
        [sys.executable, "-m", "flowmason.kernel.cli", "--store", url, "store", "info", "--json"],
        capture_output=True, text=True, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["url"] == url
