"""Settings are read in one place: kernel/settings.py declares and parses every FM_* variable; nobody else reads them."""
from __future__ import annotations

import ast
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from flowmason.kernel import settings as fm_settings
from flowmason.kernel.errors import ConfigError
from flowmason.kernel.settings import Settings, describe, get_settings, reload_settings

ROOT = Path(__file__).resolve().parents[2]
PRODUCT = ("kernel", "plugins", "functions", "sdk")
# files other helpers are rewriting: the lead migrates their reads to get_settings() and empties this list
LEFT_TO_THE_LEAD: set[str] = set()
_ACCESSORS = {"get", "getenv", "pop", "setdefault", "startswith"}


def _fm(node: ast.AST) -> bool:
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("FM_")


def env_reads(source: str) -> list[int]:
    """Lines that read (or write) an FM_* name by hand: ``x.get("FM_A")``, ``x["FM_A"]``, ``"FM_A" in x``..."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            name = node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id
            if name in _ACCESSORS and node.args and _fm(node.args[0]):
                lines.append(node.lineno)
        elif isinstance(node, ast.Subscript) and _fm(node.slice):
            lines.append(node.lineno)
        elif isinstance(node, ast.Compare) and _fm(node.left) and any(isinstance(o, (ast.In, ast.NotIn)) for o in node.ops):
            lines.append(node.lineno)
    return lines


def _product_files():
    for top in PRODUCT:
        for path in sorted((ROOT / top).rglob("*.py")):
            yield path.relative_to(ROOT).as_posix(), path.read_text(encoding="utf-8")


def test_no_module_but_kernel_settings_reads_an_fm_variable():
    found = {rel: env_reads(text) for rel, text in _product_files() if rel != "kernel/settings.py"}
    offenders = {rel: lines for rel, lines in found.items() if lines and rel not in LEFT_TO_THE_LEAD}
    assert offenders == {}, "read FM_* through flowmason.kernel.settings.get_settings()"
    stale = sorted(rel for rel in LEFT_TO_THE_LEAD if not found.get(rel))
    assert stale == [], "migrated: remove these from LEFT_TO_THE_LEAD"


def test_the_check_catches_hand_reads():
    src = 'import os\na = os.environ.get("FM_X")\nb = os.environ["FM_Y"]\nc = "FM_Z" in os.environ\nd = os.getenv("FM_W")\n' \
          'e = env.get("FM_V", 1)\nok = ConfigError("x", field="FM_X")\nfine = os.environ.get("HOME")\n'
    assert env_reads(src) == [2, 3, 4, 5, 6]


def test_every_fm_variable_the_code_names_is_a_declared_setting():
    declared = {row["name"] for row in describe({})}
    named = set()
    for _, text in _product_files():
        named |= set(re.findall(r"\bFM_[A-Z0-9_]*[A-Z0-9]\b", text))
    named = {n for n in named if not n.startswith(fm_settings.VAR_PREFIX) and n != "FM_VAR"}
    assert named - declared == set(), "declare these in kernel/settings.py"


def test_every_setting_has_a_doc_an_owner_and_a_type_that_parses_its_default():
    for row in describe({}):
        assert row["doc"] and row["owner"] and row["source"] == "default" and row["error"] is None, row


def test_the_snapshot_follows_the_environment_and_is_reused_while_it_does_not_change(monkeypatch):
    monkeypatch.setenv("FM_LLM_TIMEOUT_S", "7.5")
    first = get_settings()
    assert first.llm_timeout_s == 7.5 and get_settings() is first
    monkeypatch.setenv("FM_LLM_TIMEOUT_S", "9")
    assert get_settings().llm_timeout_s == 9.0
    monkeypatch.delenv("FM_LLM_TIMEOUT_S")
    assert get_settings().llm_timeout_s == 120.0
    before = get_settings()
    again = reload_settings()  # a forced parse: a new object with the same values
    assert again is not before and again == before


def test_types_and_defaults():
    s = Settings.from_env({"FM_AUTH": "yes", "FM_ENV_ALLOWLIST": "A, B,,C", "FM_MAX_BODY_BYTES": "10",
                           "FM_VAR_TOKEN": "t", "FM_STORE": ""})
    assert s.auth is True and s.env_allowlist == ("A", "B", "C") and s.max_body_bytes == 10
    assert s.template_vars == ("FM_VAR_TOKEN",) and s.store is None  # empty means unset
    assert Settings.from_env({}).jwt_algorithm == "EdDSA"


def test_a_bad_value_names_the_variable_when_that_setting_is_read_and_not_before():
    s = Settings.from_env({"FM_BCRYPT_ROUNDS": "2", "FM_LLM_TIMEOUT_S": "soon"})
    assert s.store is None  # the other settings still read
    with pytest.raises(ConfigError, match="FM_BCRYPT_ROUNDS='2' is below 4") as err:
        s.bcrypt_rounds
    assert err.value.field == "FM_BCRYPT_ROUNDS" and "FM_BCRYPT_ROUNDS=12" in err.value.hint
    with pytest.raises(ConfigError, match="FM_LLM_TIMEOUT_S='soon' is not a number"):
        s.llm_timeout_s
    assert set(s.errors) == {"FM_BCRYPT_ROUNDS", "FM_LLM_TIMEOUT_S"}
    with pytest.raises(ConfigError, match="FM_AUTH='maybe' is not a yes/no value"):
        Settings.from_env({"FM_AUTH": "maybe"}).auth


def _run_fm(args, env):
    return subprocess.run([sys.executable, "-m", "flowmason.kernel.cli", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_fm_settings_lists_values_sources_and_masks_secrets(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("FM_")}
    env.update(FM_HOME=str(tmp_path), FM_MAIL="smtp://me:hunter2@mail.example:587", FM_VAR_API_TOKEN="tok-123",
               FM_LLM_MAX_RETRIES="4", FM_PLUGINS="core_cli,operators")
    out = _run_fm(["--store", str(tmp_path / "s.db"), "settings", "--json"], env)
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert "hunter2" not in out.stdout and "tok-123" not in out.stdout
    assert rows["FM_MAIL"]["value"] == "smtp://me:***@mail.example:587"
    assert rows["FM_VAR_API_TOKEN"]["value"] == "***"
    assert rows["FM_LLM_MAX_RETRIES"] == {**rows["FM_LLM_MAX_RETRIES"], "value": "4", "source": "environment"}
    assert rows["FM_STORE"]["source"] == "option --store"
    assert rows["FM_JWT_ISSUER"] == {**rows["FM_JWT_ISSUER"], "value": "flowmason", "source": "default"}
    assert len(rows) >= 45
    bad = _run_fm(["settings", "--changed"], {**env, "FM_LLM_TIMEOUT_S": "soon"})
    assert bad.returncode == 4  # listed, with the error, and the exit code of a setup problem (ExitCode.SETUP)
    assert "FM_LLM_TIMEOUT_S" in bad.stdout and "is not a number" in bad.stdout and "FM_JWT_ISSUER" not in bad.stdout
