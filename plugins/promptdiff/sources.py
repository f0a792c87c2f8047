"""Where the compared text comes from: a stage of a stored run, or of a snapshot.

A side is a run id (or unique prefix) or ``RUN_ID@SEQ`` for the state at a
time-travel snapshot. ``field`` is ``output``, ``input`` (the stage's
rendered config) or ``prompt`` (the input's ``prompt``, ``system`` and
``messages``, the parts a model sees); ``key`` narrows to a dotted path
inside the value (``text``, ``choices.0``).

Snapshots are time travel's: a ``RUN@SEQ`` side is read through its public
read API (``flowmason.plugins.timetravel``), and only when that plugin is
loaded in this process; plain run ids need only the kernel's run history.
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.errors import FlowMasonError, NotFoundError, PluginError

FIELDS = ("output", "input", "prompt")


def _stage_value(repo: Any, ref: str, stage: str) -> tuple[dict[str, Any], str]:
    """The stage's stored record at a run or snapshot, and a label for it."""
    if "@" in ref:
        from flowmason.kernel.plugins import get_plugin_manager

        if not get_plugin_manager().has_plugin("timetravel"):
            raise PluginError(f"'{ref}' names a snapshot, and snapshots need the timetravel plugin, which is not loaded",
                              field="snapshot", hint="compare whole runs (a run id without @SEQ), or load timetravel "
                                                     "(check FM_PLUGINS / --plugins)")
        from flowmason.plugins.timetravel import load_timeline, parse_ref

        run_ref, seq = parse_ref(ref)
        tl = load_timeline(repo, run_ref)
        st = tl.state(seq)["stages"].get(stage)
        if st is None:
            raise NotFoundError(f"run '{tl.run.id}' has no stage '{stage}'", stage=stage, field="--stage",
                                hint=f"stages: {', '.join(tl.stage_ids)}")
        return st, f"{tl.run.id}@{seq}"
    run = repo.find_run(ref)
    iteration = None
    sid = stage
    if "[" in stage and stage.endswith("]"):
        sid, iteration = stage[:-1].split("[", 1)
    for r in repo.stage_results(run.id):
        if r.stage_id == sid and (r.iteration or None) == iteration:
            return {"status": r.status.value, "input": r.input, "output": r.output, "error": r.error}, run.id
    ids = sorted({r.stage_id for r in repo.stage_results(run.id)})
    raise NotFoundError(f"run '{run.id}' has no recorded stage '{stage}'", stage=stage, field="--stage",
                        hint=f"recorded stages: {', '.join(ids) or 'none'}")


def _pick(value: Any, key: str | None, where: str) -> Any:
    if not key:
        return value
    cur = value
    for part in key.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            raise NotFoundError(f"{where} has no '{key}' (stopped at '{part}')", field="--key",
                                hint="leave out --key to compare the whole value")
    return cur


def _prompt_of(inputs: Any, where: str) -> Any:
    if isinstance(inputs, dict):
        parts = {k: inputs[k] for k in ("system", "system_prompt", "prompt", "messages") if k in inputs}
        if len(parts) == 1:
            return next(iter(parts.values()))
        if parts:
            return parts
    raise NotFoundError(f"{where} has no prompt in its input", field="--field",
                        hint="use --field input to compare the whole rendered input")


def side_value(repo: Any, ref: str, stage: str, field: str = "output", key: str | None = None) -> tuple[Any, str]:
    """The value compared for one side, and its label (``run`` or ``run@seq``, then stage and field)."""
    if field not in FIELDS:
        raise FlowMasonError(f"unknown field '{field}'", field="--field", hint=f"use one of: {', '.join(FIELDS)}")
    record, label = _stage_value(repo, ref, stage)
    where = f"stage '{stage}' of {label}"
    if field == "output":
        if record.get("status") in ("pending", "running"):
            raise NotFoundError(f"{where} has no output yet (it is {record['status']} at that snapshot)",
                                field="snapshot", hint="pick a later snapshot (`fm debug timeline`)")
        value = record.get("output")
    elif field == "input":
        value = record.get("input")
    else:
        value = _prompt_of(record.get("input"), where)
    return _pick(value, key, where), f"{label} {stage}.{field}" + (f".{key}" if key else "")
