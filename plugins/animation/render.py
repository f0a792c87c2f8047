"""Graph layout and the static renderings: SVG, Mermaid, Markdown, JSON.

Layout: stages go in columns by the longest dependency path from a root
(left to right, the way the run flows) and keep file order inside a column.
The same SVG markup serves the static SVG export (coloured by the final
status) and the HTML player, which recolours it frame by frame; so both
show the same picture.
"""
from __future__ import annotations

import html
import json
import re
from typing import Any

from .frames import Animation

BOX_W, BOX_H, GAP_X, GAP_Y, PAD = 170, 54, 60, 22, 20
COLOURS = {
    "pending": "#e5e7eb", "running": "#60a5fa", "completed": "#22c55e", "failed": "#ef4444",
    "skipped": "#facc15", "cancelled": "#a855f7",
}


def layout(anim: Animation) -> dict[str, tuple[float, float]]:
    """Top-left corner of each stage's box."""
    ids = [t.stage_id for t in anim.tracks]
    deps: dict[str, list[str]] = {i: [] for i in ids}
    for a, b in anim.edges:
        deps[b].append(a)
    level: dict[str, int] = {}
    for _ in range(len(ids) + 1):  # longest-path levels; a DAG settles in at most len(ids) passes
        changed = False
        for i in ids:
            lv = max((level.get(d, 0) + 1 for d in deps[i]), default=0)
            if level.get(i) != lv:
                level[i], changed = lv, True
        if not changed:
            break
    rows: dict[int, int] = {}
    pos: dict[str, tuple[float, float]] = {}
    for i in ids:
        col = level.get(i, 0)
        row = rows.get(col, 0)
        rows[col] = row + 1
        pos[i] = (PAD + col * (BOX_W + GAP_X), PAD + row * (BOX_H + GAP_Y))
    return pos


def svg(anim: Animation, *, at: float | None = None) -> str:
    """The pipeline graph as SVG, coloured by the state at ``at`` (default: the end)."""
    pos = layout(anim)
    frame = anim.frame_at(anim.duration_ms if at is None else at)
    width = max((x for x, _ in pos.values()), default=0) + BOX_W + PAD
    height = max((y for _, y in pos.values()), default=0) + BOX_H + PAD
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" id="fm-graph" width="{width:.0f}" height="{height:.0f}" '
           f'viewBox="0 0 {width:.0f} {height:.0f}" font-family="system-ui,sans-serif" font-size="13">',
           '<defs><marker id="fm-arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
           'orient="auto"><path d="M0,0L10,5L0,10z" fill="#6b7280"/></marker></defs>',
           '<rect width="100%" height="100%" fill="#ffffff"/>']
    for a, b in anim.edges:
        (xa, ya), (xb, yb) = pos[a], pos[b]
        x1, y1, x2, y2 = xa + BOX_W, ya + BOX_H / 2, xb, yb + BOX_H / 2
        mx = (x1 + x2) / 2
        out.append(f'<path class="fm-edge" d="M{x1:.0f},{y1:.0f} C{mx:.0f},{y1:.0f} {mx:.0f},{y2:.0f} {x2:.0f},{y2:.0f}" '
                   'fill="none" stroke="#6b7280" stroke-width="1.5" marker-end="url(#fm-arrow)"/>')
    for tr in anim.tracks:
        x, y = pos[tr.stage_id]
        st = frame["stages"][tr.stage_id]
        sid = html.escape(tr.stage_id, quote=True)
        dur = f"{st['duration_ms']:.0f} ms" if st["status"] != "pending" else tr.component_type
        out.append(
            f'<g class="fm-stage" data-stage="{sid}" data-status="{st["status"]}" transform="translate({x:.0f},{y:.0f})">'
            f'<title>{html.escape(tr.label or tr.stage_id)} ({html.escape(tr.component_type)})</title>'
            f'<rect class="fm-box" width="{BOX_W}" height="{BOX_H}" rx="8" fill="{COLOURS.get(st["status"], "#e5e7eb")}" '
            'stroke="#374151" stroke-width="1.2"/>'
            f'<rect class="fm-bar" x="6" y="{BOX_H - 9}" width="{(BOX_W - 12) * st["progress"]:.1f}" height="4" rx="2" fill="#1f2937" opacity=".55"/>'
            f'<text x="10" y="20" font-weight="600">{html.escape(_clip(tr.label or tr.stage_id, 22))}</text>'
            f'<text class="fm-info" x="10" y="37" fill="#374151">{html.escape(dur)}</text></g>'
        )
    out.append("</svg>")
    return "".join(out)


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def _mermaid_id(stage_id: str, used: dict[str, str]) -> str:
    base = re.sub(r"\W", "_", stage_id) or "stage"
    name, k = f"s_{base}", 1
    while name in used.values() and used.get(stage_id) != name:
        k += 1
        name = f"s_{base}_{k}"
    used[stage_id] = name
    return name


def mermaid(anim: Animation) -> str:
    """A Mermaid flowchart of the run, each stage classed by its final status, with its duration."""
    frame = anim.frame_at(anim.duration_ms)
    used: dict[str, str] = {}
    lines = ["flowchart LR"]
    for tr in anim.tracks:
        st = frame["stages"][tr.stage_id]
        label = (tr.label or tr.stage_id).replace('"', "#quot;")
        extra = f"{st['status']} · {st['duration_ms']:.0f} ms" if st["status"] != "pending" else st["status"]
        lines.append(f'    {_mermaid_id(tr.stage_id, used)}["{label}<br/>{extra}"]:::{st["status"]}')
    for a, b in anim.edges:
        lines.append(f"    {used[a]} --> {used[b]}")
    for status, colour in COLOURS.items():
        lines.append(f"    classDef {status} fill:{colour},stroke:#374151")
    return "\n".join(lines) + "\n"


def markdown(anim: Animation, run: Any, stages: list[Any]) -> str:
    """A report: summary, the Mermaid graph, and one table row per stage (and iteration)."""
    usage = getattr(run, "usage", None) or {}
    lines = [f"# Run `{anim.run_id}`", "",
             f"- pipeline: `{anim.pipeline_id}`", f"- status: **{anim.status}**",
             f"- duration: {anim.duration_ms:.1f} ms"]
    if usage:
        lines.append("- usage: " + ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}" for k, v in usage.items()))
    error = getattr(run, "error", None)
    if error:
        lines.append(f"- error: {_md_cell(error.get('message', ''))}")
    lines += ["", "```mermaid", mermaid(anim).rstrip(), "```", "",
              "| stage | type | status | duration (ms) | attempts | output |", "|---|---|---|---:|---:|---|"]
    for r in stages:
        label = f"{r.stage_id}[{r.iteration}]" if r.iteration else r.stage_id
        out = r.error.get("message") if r.error else r.output
        lines.append(f"| `{_md_cell(label)}` | {r.component_type} | {getattr(r.status, 'value', r.status)} | "
                     f"{(r.duration_ms or 0):.1f} | {r.attempts} | {_md_cell(_preview(out))} |")
    return "\n".join(lines) + "\n"


def _preview(value: Any, n: int = 80) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= n else text[: n - 1] + "…"


def _md_cell(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def json_export(anim: Animation, run: Any, stages: list[Any]) -> str:
    return json.dumps({
        "run": run.model_dump(mode="json"),
        "animation": anim.to_dict(),
        "frames": anim.frames(),
        "stages": [r.model_dump(mode="json") for r in stages],
    }, indent=2, default=str, ensure_ascii=False)
