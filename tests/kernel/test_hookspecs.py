"""hookspecs.py is the contract: every hook documented, implemented by some test plugin, and called by the host.

In the manner of datasette's ``test_plugin_hooks_have_tests`` and
``test_plugin_hooks_are_documented``; the checks are functions so that
they are themselves tested against a module that breaks them.
"""
from __future__ import annotations

import inspect
import re
import types
from pathlib import Path

from flowmason.kernel import hookspecs

ROOT = Path(__file__).resolve().parents[2]
TESTS = ROOT / "tests"
PRODUCT = [ROOT / "kernel", ROOT / "plugins", ROOT / "functions", ROOT / "sdk"]


def hooks(module: types.ModuleType) -> dict[str, object]:
    return {name: fn for name, fn in vars(module).items() if callable(fn) and hasattr(fn, "flowmason_spec")}


def undocumented(module: types.ModuleType) -> list[str]:
    """Hooks whose docstring does not say who calls them and what each argument is."""
    bad = []
    for name, fn in hooks(module).items():
        doc = inspect.getdoc(fn) or ""
        args = [a for a in inspect.signature(fn).parameters]
        problems = []
        if len(doc) < 150:
            problems.append("shorter than a contract")
        if not re.search(r"\bcalled\b", doc, re.I):
            problems.append("does not say who calls it")
        problems += [f"does not explain '{a}'" for a in args if f"``{a}``" not in doc and f":param {a}:" not in doc]
        if problems:
            bad.append(f"{name}: {', '.join(problems)}")
    return bad


def _texts(folders: list[Path], skip: Path | None = None) -> list[str]:
    return [p.read_text(encoding="utf-8") for folder in folders for p in folder.rglob("*.py") if p != skip]


def unexercised(names: list[str], test_texts: list[str]) -> list[str]:
    """Hooks no test plugin implements (``def HOOK(`` in a file under tests/)."""
    return [n for n in names if not any(re.search(rf"\bdef {n}\(", t) for t in test_texts)]


def uncalled(names: list[str], product_texts: list[str]) -> list[str]:
    """Hooks the host never calls or collects (their name outside hookspecs.py, as a string or a hook attribute)."""
    return [n for n in names if not any(re.search(rf"(\"{n}\"|hook\.{n}\b)", t) for t in product_texts)]


def test_every_hook_has_a_real_docstring():
    assert undocumented(hookspecs) == []


def test_every_hook_is_implemented_by_a_test_plugin():
    names = sorted(hooks(hookspecs))
    assert unexercised(names, _texts([TESTS], skip=Path(__file__))) == []


def test_every_hook_has_a_caller_in_the_product():
    names = sorted(hooks(hookspecs))
    product = [t for t in _texts(PRODUCT, skip=Path(hookspecs.__file__).resolve())]
    assert uncalled(names, product) == []


def test_the_checks_fail_on_a_module_that_breaks_them():
    import pluggy

    spec = pluggy.HookspecMarker("flowmason")
    fake = types.ModuleType("fake_hookspecs")

    @spec
    def fm_terse(register):
        """Register things."""

    @spec
    def fm_good(run, data):
        """Something happened, with all the words a contract needs to be useful to plugin authors.

        Called by the executor when something happens, once per something.

        :param run: the run.
        :param data: what happened, as a dict of whatever the event carries along.
        """

    fake.fm_terse, fake.fm_good = fm_terse, fm_good
    assert [line.split(":")[0] for line in undocumented(fake)] == ["fm_terse"]
    assert "does not explain 'register'" in undocumented(fake)[0]
    tests = ["class P:\n    @hookimpl\n    def fm_good(self, run, data):\n        pass\n", "# fm_terse is mentioned only"]
    assert unexercised(["fm_good", "fm_terse"], tests) == ["fm_terse"]
    assert uncalled(["fm_good", "fm_terse"], ['pm.hook.fm_good(run=r, data=d)']) == ["fm_terse"]
