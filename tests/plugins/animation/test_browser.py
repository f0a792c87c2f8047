"""The animated HTML page in headless Chromium (Debian's package, driven by playwright): loads, plays, seeks, screenshot."""
from __future__ import annotations

import io
import shutil

import pytest

from flowmason.plugins.animation.exporters import export_html, load_run
from flowmason.plugins.animation.frames import tracks_from_results
from flowmason.plugins.animation.render import COLOURS

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
playwright_api = pytest.importorskip("playwright.sync_api")
if not shutil.which("chromium"):
    pytest.skip("Debian's chromium is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def browser():
    with playwright_api.sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM,
                               args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield b
        b.close()


@pytest.fixture
def page(browser, recorded, tmp_path):
    repo, run = recorded
    r, stages, pipeline = load_run(repo, run.id)
    path = tmp_path / "run.html"
    path.write_text(export_html(r, stages, pipeline), encoding="utf-8")
    requests: list[str] = []
    errors: list[str] = []
    pg = browser.new_page(viewport={"width": 1100, "height": 700})
    pg.on("request", lambda req: requests.append(req.url))
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.goto(path.as_uri())
    pg.anim = tracks_from_results(r, stages, pipeline)  # what the Python side computes, to compare
    yield pg
    assert errors == []
    # self-contained: the only request is the file itself
    assert [u for u in requests if not u.startswith("file://")] == []
    pg.close()


def statuses(pg):
    return pg.evaluate("Object.fromEntries([...document.querySelectorAll('.fm-stage')].map(g => [g.dataset.stage, g.dataset.status]))")


def pixel(png: bytes, x: float, y: float) -> tuple[int, int, int]:
    from PIL import Image

    return Image.open(io.BytesIO(png)).convert("RGB").getpixel((int(x), int(y)))


def hex_rgb(h: str) -> tuple[int, int, int]:
    return tuple(int(h[i:i + 2], 16) for i in (1, 3, 5))


def box_colour(pg, stage_id):
    """The colour of a stage box in a real screenshot, sampled inside the box away from its text."""
    box = pg.locator(f'.fm-stage[data-stage="{stage_id}"] .fm-box').bounding_box()
    png = pg.screenshot()
    return pixel(png, box["x"] + box["width"] - 12, box["y"] + 10)


def close(a, b, tol=12):
    return all(abs(x - y) <= tol for x, y in zip(a, b, strict=True))


def test_loads_paused_at_the_start_with_every_stage_pending(page):
    assert page.title().startswith("Run ")
    assert page.locator(".fm-stage").count() == 6
    assert page.locator(".fm-edge").count() == 6
    assert set(statuses(page).values()) == {"pending"}
    assert page.evaluate("fmPlayer.playing") is False
    assert close(box_colour(page, "fetch"), hex_rgb(COLOURS["pending"]))


def test_seek_with_the_slider_to_the_end_colours_the_final_state(page):
    page.focus("#fm-seek")
    page.keyboard.press("End")  # a real input event on the range control
    assert page.evaluate("fmPlayer.position()") == pytest.approx(page.anim.duration_ms, abs=0.01)
    assert statuses(page) == {"fetch": "completed", "summarise": "completed", "translate": "completed",
                              "merge": "completed", "flaky": "failed", "after-flaky": "skipped"}
    assert close(box_colour(page, "fetch"), hex_rgb(COLOURS["completed"]))
    assert close(box_colour(page, "flaky"), hex_rgb(COLOURS["failed"]))
    assert close(box_colour(page, "after-flaky"), hex_rgb(COLOURS["skipped"]))
    assert page.locator("#fm-overall div").evaluate("e => e.style.width") == "100%"


def test_seek_mid_run_matches_the_python_frames(page):
    tracks = {t.stage_id: t for t in page.anim.tracks}
    mid = (tracks["summarise"].start_ms + tracks["summarise"].end_ms) / 2
    page.evaluate(f"fmPlayer.seek({mid})")
    js = page.evaluate("fmPlayer.frame()")
    py = page.anim.frame_at(mid)
    assert {k: v["status"] for k, v in js["stages"].items()} == {k: v["status"] for k, v in py["stages"].items()}
    assert js["stages"]["summarise"]["status"] == "running"
    assert js["stages"]["summarise"]["progress"] == pytest.approx(py["stages"]["summarise"]["progress"], abs=1e-3)
    assert close(box_colour(page, "summarise"), hex_rgb(COLOURS["running"]))


def test_play_button_and_speed_run_to_the_end(page):
    page.select_option("#fm-speed", "4")
    assert page.evaluate("fmPlayer.speed") == 4
    # record what the page shows while it plays: the run lasts a fraction of a second, 4x is quicker still
    page.evaluate("""window.seen = []; new MutationObserver(() => seen.push([document.body.dataset.playing,
        document.getElementById('fm-play').textContent])).observe(document.body, {attributes: true, subtree: true,
        childList: true, characterData: true})""")
    page.click("#fm-play")
    # it advances, then stops by itself at the end (the run lasts a fraction of a second)
    page.wait_for_function("fmPlayer.position() > 0", timeout=10_000)
    page.wait_for_function("!fmPlayer.playing", timeout=10_000)
    assert page.evaluate("fmPlayer.position()") == pytest.approx(page.anim.duration_ms, abs=0.01)
    assert statuses(page)["merge"] == "completed"
    assert page.get_attribute("body", "data-playing") == "0"
    seen = page.evaluate("seen")
    assert ["1", "\u275a\u275a Pause"] in seen
    assert seen[-1] == ["0", "\u25b6 Play"]


def test_pause_holds_the_position(page):
    # play for 20 ms of page time at 0.5x, then press the button, all inside the page (no race with a busy machine)
    held = page.evaluate("""() => { fmPlayer.setSpeed(0.5); document.getElementById('fm-play').click();
        const t = performance.now(); while (performance.now() - t < 20) {}
        document.getElementById('fm-play').click(); return fmPlayer.position(); }""")
    assert 0 < held < page.anim.duration_ms
    assert page.evaluate("fmPlayer.playing") is False
    page.wait_for_timeout(100)
    assert page.evaluate("fmPlayer.position()") == held
    with pytest.raises(Exception, match="not offered"):
        page.evaluate("fmPlayer.setSpeed(3)")


def test_clicking_a_stage_shows_what_it_said(page):
    page.click('.fm-stage[data-stage="flaky"]')
    assert page.get_attribute("#fm-detail", "data-stage") == "flaky"
    text = page.inner_text("#fm-detail")
    assert "upstream 503" in text and "failed" in text
    page.click('#fm-stages tr[data-stage="summarise"]')
    assert '"slept": 0.12' in page.inner_text("#fm-detail-body")
