"""`fm schema --component NAME` as text: what a component takes (config fields) and what it returns (output fields).

Both come from the component's declaration (``config_schema``,
``output_schema``; kernel/outputs.py for the conventions). An output that
is open-ended (a passthrough, whatever a template renders) says so, since
references into it are not checked before the run.
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.outputs import fields, is_closed, type_label


def _rows(rows: list[dict[str, Any]], flag: str) -> list[str]:
    if not rows:
        return ["  (none)"]
    width = min(28, max(len(r["name"]) for r in rows))
    kinds = min(16, max(len(r["type"]) for r in rows))
    out = []
    for r in rows:
        mark = flag if r["required"] else " " * len(flag)
        desc = r["description"] + (" (open: may hold further fields)" if r.get("open") else "")
        out.append(f"  {r['name']:<{width}}  {r['type']:<{kinds}}  {mark} {desc}".rstrip())
    return out


def component_text(comp: Any) -> str:
    lines = [f"{comp.name}  ({comp.kind}, {comp.category})", f"  {comp.description}" if comp.description else ""]
    config = comp.config_schema or {}
    lines += ["", "config:"]
    config_rows = fields(config)
    lines += _rows(config_rows, "required")
    alternatives = [o.get("required") for o in config.get("anyOf", ()) if isinstance(o, dict) and o.get("required")]
    if alternatives:
        lines.append("  one of: " + " | ".join(", ".join(keys) for keys in alternatives))
    if comp.lazy:
        lines.append(f"  rendered by the component itself: {', '.join(comp.lazy)}")
    schema = comp.output_schema
    lines += ["", "output:"]
    if not isinstance(schema, dict):
        lines.append("  not declared: references to its fields are not checked")
    else:
        if schema.get("description"):
            lines.append(f"  {schema['description']}")
        for i, alt in enumerate(schema.get("anyOf") or [schema]):
            if alt is not schema:
                lines.append(f"  {'either' if i == 0 else 'or'}: {alt.get('description', '')}")
            if not is_closed(alt):
                lines.append(f"  open-ended ({type_label(alt)}): references into it are not checked before the run")
            rows = fields(alt)
            if rows or is_closed(alt):
                lines += _rows(rows, "always")
        if comp.output_for is not None:
            lines.append("  (the exact fields of a stage depend on its config; `fm validate` uses them)")
    return "\n".join(line for i, line in enumerate(lines) if line or i)
