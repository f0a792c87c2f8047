"""Word-level LCS diff: exactness against a brute-force LCS, round trips, renderers, and `fm diff-output`."""
from __future__ import annotations

import itertools
import random

import pytest

from flowmason.kernel import plugins
from flowmason.kernel.errors import FlowMasonError, NotFoundError
from flowmason.kernel.runs import RunRepository
from flowmason.kernel.storage import open_store
from flowmason.plugins.promptdiff import diff_texts, diff_values, render_html, render_rich, render_text, tokenize
from flowmason.plugins.promptdiff import diff as diff_mod
from flowmason.plugins.promptdiff.sources import side_value

from tests.plugins.timetravel.helpers import Components, record, story_pipeline


def lcs_len(a, b):
    """Reference LCS length by plain recursion with memo (independent of the implementation)."""
    from functools import lru_cache

    @lru_cache(maxsize=None)
    def go(i, j):
        if i == len(a) or j == len(b):
            return 0
        if a[i] == b[j]:
            return 1 + go(i + 1, j + 1)
        return max(go(i + 1, j), go(i, j + 1))

    return go(0, 0)


def sides(d):
    old = "".join(t for op, t in d.ops if op != "insert")
    new = "".join(t for op, t in d.ops if op != "delete")
    return old, new


WORDS = ["the", "cat", "sat", "on", "a", "mat", ",", "dog", "ran"]


@pytest.mark.parametrize("seed", range(40))
def test_random_texts_round_trip_and_keep_a_longest_common_subsequence(seed):
    rng = random.Random(seed)
    a = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))
    b = " ".join(rng.choice(WORDS) for _ in range(rng.randint(0, 12)))
    d = diff_texts(a, b)
    assert sides(d) == (a, b)
    kept = [t for op, text in d.ops if op == "equal" for t in tokenize(text)]
    assert len(kept) == lcs_len(tuple(tokenize(a)), tuple(tokenize(b)))
    assert d.exact
    # merged: no two neighbours share an op
    assert all(x[0] != y[0] for x, y in itertools.pairwise(d.ops))


def test_a_changed_phrase_in_a_prompt():
    a = "Write a short story about owls in a gothic style. Keep it under 200 words."
    b = "Write a long story about owls in a noir style. Keep it under 200 words."
    d = diff_texts(a, b)
    assert render_text(d) == "Write a [-short-]{+long+} story about owls in a [-gothic-]{+noir+} style. Keep it under 200 words."
    assert d.stats() == {"equal": 15, "delete": 2, "insert": 2}  # "." counts as a word
    assert d.changed and not diff_texts(a, a).changed


def test_renderers_escape_and_colour():
    d = diff_texts("use <b>bold</b> & co", "use <b>it</b> & co")
    html = render_html(d)
    assert "<b>" not in html and "&lt;b&gt;" in html and "<del>" in html and "<ins>" in html
    page = render_html(d, title="x <y>", page=True)
    assert page.startswith("<!doctype html>") and "<title>x &lt;y&gt;</title>" in page
    text = render_rich(d)
    styles = {str(span.style) for span in text.spans}
    assert "bold red strike" in styles and "bold green underline" in styles
    assert "use" in text.plain and "it" in text.plain and "bold" in text.plain


def test_structured_values_diff_as_sorted_json():
    d = diff_values({"b": 2, "a": "hello world"}, {"a": "hello there", "b": 2})
    assert render_text(d) == '{\n  "a": "hello [-world-]{+there+}",\n  "b": 2\n}'


def test_huge_middles_fall_back_and_say_so(monkeypatch):
    monkeypatch.setattr(diff_mod, "MAX_CELLS", 100)
    a = " ".join(f"w{i}" for i in range(60))
    b = " ".join(f"w{i}" for i in range(0, 60, 2))
    d = diff_texts("start " + a + " end", "start " + b + " end")
    assert not d.exact
    assert sides(d) == ("start " + a + " end", "start " + b + " end")


@pytest.fixture
def repo(tmp_path):
    plugins.reset(None, extra=[Components()])
    store = open_store(f"sqlite:///{tmp_path / 'runs.db'}")
    yield RunRepository(store)
    store.close()
    plugins.reset()


def test_sides_from_runs_and_snapshots(repo):
    a = record(repo, story_pipeline(), {"topic": "owls", "style": "gothic"})
    b = record(repo, story_pipeline(), {"topic": "owls", "style": "noir"})
    va, la = side_value(repo, a.id, "draft", "prompt")
    vb, _ = side_value(repo, b.id, "draft", "prompt")
    assert va == "Write a story: Outline about owls in gothic style"
    assert render_text(diff_texts(va, vb)).endswith("in [-gothic-]{+noir+} style")
    assert la == f"{a.id} draft.prompt"
    out, _ = side_value(repo, a.id, "draft", "output", "text")
    assert out.startswith("Answer: style gothic")
    # a snapshot before the draft settled has no output yet; after it, it has
    from flowmason.plugins.timetravel.history import load_timeline

    tl = load_timeline(repo, a.id)
    started = next(s.seq for s in tl.snapshots if s.stage_id == "draft" and s.describe()["kind"] == "stage.started")
    with pytest.raises(NotFoundError, match="no output yet"):
        side_value(repo, f"{a.id}@{started}", "draft")
    assert side_value(repo, f"{a.id}@{tl.last}", "draft", "output", "text")[0] == out
    with pytest.raises(NotFoundError, match="no recorded stage 'drfat'"):
        side_value(repo, a.id, "drfat")
    with pytest.raises(FlowMasonError, match="unknown field"):
        side_value(repo, a.id, "draft", "outputs")
    with pytest.raises(NotFoundError, match="has no 'nope'"):
        side_value(repo, a.id, "draft", "output", "nope")
    with pytest.raises(NotFoundError, match="no prompt"):
        side_value(repo, a.id, "outline", "prompt")


def test_fm_diff_output(repo, tmp_path, monkeypatch, capsys):
    from flowmason.kernel.cli import main

    monkeypatch.setenv("FM_STORE", repo.store.url)
    a = record(repo, story_pipeline(), {"topic": "owls", "style": "gothic"})
    b = record(repo, story_pipeline(), {"topic": "owls", "style": "noir"})
    with pytest.raises(SystemExit) as exc:
        main(["diff-output", a.id, b.id, "--stage", "draft", "--field", "prompt", "--format", "text"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"--- {a.id} draft.prompt"
    assert "in [-gothic-]{+noir+} style" in out
    page = tmp_path / "d.html"
    with pytest.raises(SystemExit):
        main(["diff-output", a.id, b.id, "-s", "draft", "--format", "html", "-o", str(page)])
    assert "<del>gothic</del>" in page.read_text()
    with pytest.raises(SystemExit):
        main(["diff-output", a.id, b.id, "-s", "draft", "--key", "text"])
    assert "gothic" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["diff-output", a.id, "run_nope", "-s", "draft"])
    assert exc.value.code == 3
    assert "no run with id 'run_nope'" in capsys.readouterr().err
