"""The self-contained HTML player: the run animated over its pipeline graph.

One file, no network: the SVG graph from ``render.svg``, the stage tracks
as JSON in a ``<script type="application/json">`` block, and a small inline
player (play / pause, a seek slider, 0.5x / 1x / 2x / 4x, space and arrow
keys; a click on a stage shows its input, output or error). The JS computes a stage's state at time t exactly as
``frames.Track.at`` does, so a seek lands on the same frame the Python
player would show. ``window.fmPlayer`` exposes the player for automation
(the browser tests drive it, and so can anyone embedding the page).
"""
from __future__ import annotations

import html
import json

from .frames import SPEEDS, Animation
from .render import COLOURS, svg

_CSS = """
body{font-family:system-ui,sans-serif;margin:20px;color:#111827;background:#f9fafb}
h1{font-size:20px;margin:0 0 4px}.sub{color:#4b5563;margin-bottom:12px}
#fm-controls{display:flex;gap:10px;align-items:center;margin:10px 0;flex-wrap:wrap}
#fm-controls button{font-size:14px;padding:4px 14px;min-width:86px}
#fm-seek{flex:1;min-width:200px}#fm-time{font-variant-numeric:tabular-nums;min-width:150px}
#fm-canvas{background:#fff;border:1px solid #d1d5db;border-radius:8px;overflow:auto;padding:4px}
#fm-overall{height:6px;background:#e5e7eb;border-radius:3px;margin:8px 0}#fm-overall div{height:6px;background:#16a34a;border-radius:3px;width:0}
table{border-collapse:collapse;margin-top:12px;font-size:13px;background:#fff}td,th{border:1px solid #e5e7eb;padding:3px 8px;text-align:left}
td.num{text-align:right;font-variant-numeric:tabular-nums}
#fm-detail{margin-top:12px;background:#fff;border:1px solid #d1d5db;border-radius:8px;padding:8px 12px;display:none}
#fm-detail h2{font-size:15px;margin:4px 0}#fm-detail pre{white-space:pre-wrap;max-height:320px;overflow:auto;font-size:12px;background:#f3f4f6;padding:6px}
.fm-stage,#fm-stages tr[data-stage]{cursor:pointer}
.legend span{display:inline-block;margin-right:12px}.legend i{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;vertical-align:-1px}
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("fm-data").textContent);
  var COLOURS = JSON.parse(document.getElementById("fm-colours").textContent);
  var SETTLED = {completed: 1, failed: 1, skipped: 1, cancelled: 1};
  var dur = Math.max(data.duration_ms || 0, 0);
  var pos = 0, since = null, speed = 1, raf = null;
  var btn = document.getElementById("fm-play"), seekEl = document.getElementById("fm-seek");
  var timeEl = document.getElementById("fm-time"), speedEl = document.getElementById("fm-speed");
  var overall = document.querySelector("#fm-overall div");
  var boxes = {}, rows = {};
  document.querySelectorAll(".fm-stage").forEach(function (g) { boxes[g.getAttribute("data-stage")] = g; });
  document.querySelectorAll("#fm-stages tr[data-stage]").forEach(function (r) { rows[r.getAttribute("data-stage")] = r; });

  function stateAt(s, t) {
    if (s.start === null || t < s.start) {
      if (s.status === "skipped" && s.end !== null && t >= s.end) return {status: "skipped", progress: 1, duration_ms: 0};
      return {status: "pending", progress: 0, duration_ms: 0};
    }
    if (s.end !== null && t >= s.end) {
      return {status: SETTLED[s.status] ? s.status : "completed", progress: 1, duration_ms: s.end - s.start};
    }
    var p = 0, marks = s.marks || [];
    var reported = marks.filter(function (m) { return m[0] <= t; });
    if (reported.length) p = reported[reported.length - 1][1];
    else if (s.end !== null && s.end > s.start) p = (t - s.start) / (s.end - s.start);
    return {status: "running", progress: Math.max(0, Math.min(p, 1)), duration_ms: t - s.start};
  }
  function frameAt(t) {
    var out = {t_ms: t, stages: {}}, settled = 0;
    data.stages.forEach(function (s) { var st = stateAt(s, t); out.stages[s.id] = st; if (SETTLED[st.status]) settled++; });
    out.progress = data.stages.length ? settled / data.stages.length : 1;
    return out;
  }
  function fmt(ms) { return ms < 1000 ? ms.toFixed(1) + " ms" : (ms / 1000).toFixed(2) + " s"; }
  function render(t) {
    var f = frameAt(t);
    data.stages.forEach(function (s) {
      var st = f.stages[s.id], g = boxes[s.id], row = rows[s.id];
      if (g) {
        g.setAttribute("data-status", st.status);
        g.querySelector(".fm-box").setAttribute("fill", COLOURS[st.status] || COLOURS.pending);
        g.querySelector(".fm-bar").setAttribute("width", (st.progress * (g.querySelector(".fm-box").getAttribute("width") - 12)).toFixed(1));
        g.querySelector(".fm-info").textContent = st.status === "pending" ? s.type : st.status + " " + fmt(st.duration_ms);
      }
      if (row) {
        row.children[1].textContent = st.status;
        row.children[1].style.background = COLOURS[st.status] || "";
        row.children[2].textContent = st.status === "pending" ? "" : fmt(st.duration_ms);
      }
    });
    seekEl.value = t;
    timeEl.textContent = fmt(t) + " / " + fmt(dur);
    overall.style.width = (f.progress * 100).toFixed(1) + "%";
    document.body.setAttribute("data-position", t.toFixed(3));
  }
  function position() {
    if (since === null) return pos;
    var p = pos + (performance.now() - since) * speed;
    if (p >= dur) { pos = dur; since = null; label(); return dur; }
    return p;
  }
  function label() { btn.textContent = since === null ? "\u25B6 Play" : "\u275A\u275A Pause"; document.body.setAttribute("data-playing", since === null ? "0" : "1"); }
  function tick() { render(position()); if (since !== null) raf = requestAnimationFrame(tick); }
  function play() { if (since === null) { if (pos >= dur) pos = 0; since = performance.now(); label(); tick(); } }
  function pause() { pos = position(); since = null; if (raf) cancelAnimationFrame(raf); label(); render(pos); }
  function seek(t) { pos = Math.max(0, Math.min(+t || 0, dur)); if (since !== null) since = performance.now(); render(pos); }
  function setSpeed(x) {
    x = +x; if ([SPEEDS].indexOf(x) < 0) throw new Error("speed " + x + "x is not offered");
    pos = position(); if (since !== null) since = performance.now(); speed = x; speedEl.value = String(x);
  }
  var byId = {};
  data.stages.forEach(function (s) { byId[s.id] = s; });
  function show(id) {
    var s = byId[id], d = (s && s.detail) || {}, panel = document.getElementById("fm-detail");
    var parts = [];
    [["error", d.error], ["input", d.input], ["output", d.output]].forEach(function (p) {
      if (p[1] !== undefined && p[1] !== null) parts.push(p[0] + ":\n" + p[1]);
    });
    if (d.usage) parts.push("usage: " + JSON.stringify(d.usage));
    document.getElementById("fm-detail-title").textContent = id + " (" + (s ? s.type : "") + ", " +
      (s ? s.status : "") + (d.attempts > 1 ? ", " + d.attempts + " attempts" : "") + ")";
    document.getElementById("fm-detail-body").textContent = parts.join("\n\n") || "(nothing recorded)";
    panel.style.display = "block";
    panel.setAttribute("data-stage", id);
  }
  Object.keys(boxes).forEach(function (id) { boxes[id].addEventListener("click", function () { show(id); }); });
  Object.keys(rows).forEach(function (id) { rows[id].addEventListener("click", function () { show(id); }); });
  btn.addEventListener("click", function () { if (since === null) play(); else pause(); });
  seekEl.addEventListener("input", function () { seek(parseFloat(seekEl.value)); });
  speedEl.addEventListener("change", function () { setSpeed(parseFloat(speedEl.value)); });
  document.addEventListener("keydown", function (e) {
    if (e.target && e.target.tagName === "SELECT") return;
    if (e.key === " ") { e.preventDefault(); if (since === null) play(); else pause(); }
    else if (e.key === "ArrowRight") seek(position() + dur / 20);
    else if (e.key === "ArrowLeft") seek(position() - dur / 20);
  });
  window.fmPlayer = {
    play: play, pause: pause, seek: seek, setSpeed: setSpeed, position: position, duration: dur,
    frame: function () { return frameAt(position()); },
    show: show,
    get playing() { return since !== null; },
    get speed() { return speed; }
  };
  label();
  render(0);
})();
"""


def _script_json(value: object) -> str:
    # "<" escaped so a stage output containing </script> cannot end the block
    return json.dumps(value, ensure_ascii=False, default=str).replace("<", "\\u003c").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def html_page(anim: Animation, *, title: str | None = None) -> str:
    """The page, animating ``anim``; it starts paused at 0 ms."""
    title = title or f"Run {anim.run_id} · {anim.pipeline_id}"
    rows = "".join(
        f'<tr data-stage="{html.escape(t.stage_id, quote=True)}"><td>{html.escape(t.label or t.stage_id)}</td>'
        f'<td>pending</td><td class="num"></td><td>{html.escape(t.component_type)}</td></tr>'
        for t in anim.tracks
    )
    legend = "".join(f'<span><i style="background:{c}"></i>{s}</span>' for s, c in COLOURS.items())
    speeds = "".join(f'<option value="{s:g}"{" selected" if s == 1 else ""}>{s:g}x</option>' for s in SPEEDS)
    js = _JS.replace("[SPEEDS]", json.dumps(list(SPEEDS)))
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><title>{html.escape(title)}</title>'
        f"<style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(anim.pipeline_id)}</h1>"
        f'<div class="sub">run <code>{html.escape(anim.run_id)}</code> · <b id="fm-run-status">{html.escape(anim.status)}</b>'
        f" · {anim.duration_ms:.1f} ms · {len(anim.tracks)} stages</div>"
        '<div id="fm-controls"><button id="fm-play" type="button">Play</button>'
        f'<input id="fm-seek" type="range" min="0" max="{anim.duration_ms:.3f}" step="any" value="0" aria-label="seek">'
        f'<span id="fm-time"></span><label>speed <select id="fm-speed">{speeds}</select></label></div>'
        '<div id="fm-overall"><div></div></div>'
        f'<div id="fm-canvas">{svg(anim, at=0.0)}</div>'
        f'<div class="legend">{legend}</div>'
        '<div id="fm-detail"><h2 id="fm-detail-title"></h2><pre id="fm-detail-body"></pre></div>'
        f'<table id="fm-stages"><tr><th>stage</th><th>status</th><th>time</th><th>type</th></tr>{rows}</table>'
        f'<script type="application/json" id="fm-data">{_script_json(anim.to_dict())}</script>'
        f'<script type="application/json" id="fm-colours">{_script_json(COLOURS)}</script>'
        f"<script>{js}</script></body></html>"
    )
