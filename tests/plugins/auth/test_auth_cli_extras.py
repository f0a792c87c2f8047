"""`fm auth ...` without the auth extra: the command names the extra before asking anything, never a traceback."""
from __future__ import annotations

import os

import pytest

from tests.support.without_extra import run_fm


def _env(tmp_path):
    return {**os.environ, "FM_HOME": str(tmp_path / "home"), "FM_STORE": str(tmp_path / "s.db")}


@pytest.mark.parametrize("args, blocked, stdin", [
    (["auth", "rotate-keys"], ["cryptography"], None),
    (["auth", "keys"], ["jwt"], None),
    (["auth", "create-user", "new@example.com"], ["bcrypt"], "a long enough passphrase\na long enough passphrase\n"),
])
def test_a_missing_auth_extra_is_named_before_anything_is_asked(tmp_path, args, blocked, stdin):
    done = run_fm(args, blocked=blocked, input=stdin, env=_env(tmp_path))
    assert done.returncode != 0
    assert "pip install 'flowmason[auth]'" in done.stderr
    assert f"({blocked[0]} is not installed)" in done.stderr
    assert "Traceback" not in done.stderr and "Password" not in done.stdout + done.stderr


def test_with_the_extra_create_user_and_keys_work(tmp_path):
    env = _env(tmp_path)
    done = run_fm(["auth", "keys"], blocked=["nothing_blocked"], env=env)
    assert done.returncode == 0 and "no signing keys yet" in done.stderr and not done.stdout, done.stderr
    made = run_fm(["auth", "create-user", "new@example.com"], blocked=["nothing_blocked"], env=env,
                  input="a long enough passphrase\na long enough passphrase\n")
    assert made.returncode == 0 and "owns organization" in made.stdout, made.stderr
