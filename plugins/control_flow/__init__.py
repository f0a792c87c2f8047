"""Control flow as components: conditional, router, foreach, trycatch, subpipeline, return,
break-loop and continue-loop.

They use only the public ``StageContext`` steering calls (``run_stages``,
``skip``, ``finish``, ``run_pipeline``), the same API a third-party plugin
gets. Config names follow the earlier product's files
(``true_branch_stages``, ``routes``/``default_route``, ``loop_stages``,
``item_variable``, ``try_stages``/``catch_stages``/``finally_stages``...).
"""
from __future__ import annotations

import asyncio
from typing import Any

from flowmason.kernel.components import control_flow
from flowmason.kernel.errors import FlowMasonError, StageError
from flowmason.kernel.outputs import any_value, described, f, obj
from flowmason.kernel.plugins import hookimpl

from flowmason.kernel.truth import is_word, truthy


def _ids(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return [v for v in value if isinstance(v, str)]


def _condition(ctx, key: str, expr_key: str) -> Any:
    """The condition's value: ``condition_expression`` evaluated, else ``condition`` (a word, a template or a bare expression)."""
    expr = ctx.lazy(expr_key)
    if expr:
        return ctx.evaluate(expr)
    raw = ctx.stage.config.get(key, True)
    if isinstance(raw, str) and "{{" not in raw and not is_word(raw):
        return ctx.evaluate(raw)  # a bare expression written in the file: "input.n > 3"
    return ctx.config.get(key, True)


@control_flow(
    "conditional",
    description="Run one branch or the other depending on a condition.",
    governs=("true_branch_stages", "false_branch_stages", "true_stages", "false_stages"),
    lazy=("condition_expression",),
    config_schema=described({"type": "object", "properties": {
        "true_branch_stages": {"type": "array", "items": {"type": "string"}},
        "false_branch_stages": {"type": "array", "items": {"type": "string"}},
    }}, {"condition": "a value or template: true runs the true branch ('false', '0', 'no', '' are false)",
         "condition_expression": "an expression evaluated instead of condition",
         "true_branch_stages": "stage ids run when true (true_stages: the same)",
         "false_branch_stages": "stage ids run when false (false_stages: the same)",
         "pass_data": "a value handed on as the output's data"}),
    output_schema=obj("Which branch ran.", {
        "branch_taken": f("string", "'true' or 'false'"),
        "condition_value": any_value("the condition as evaluated"),
        "condition_result": f("boolean", "its truth value"),
        "data": any_value("the `pass_data` config, handed on"),
    }),
)
def conditional(ctx) -> dict[str, Any]:
    cfg = ctx.config
    value = _condition(ctx, "condition", "condition_expression")
    result = truthy(value)
    true_ids = _ids(cfg.get("true_branch_stages")) + _ids(cfg.get("true_stages"))
    false_ids = _ids(cfg.get("false_branch_stages")) + _ids(cfg.get("false_stages"))
    ctx.skip(false_ids if result else true_ids)
    return {
        "branch_taken": "true" if result else "false",
        "condition_value": value,
        "condition_result": result,
        "data": cfg.get("pass_data"),
    }


@control_flow(
    "router",
    description="Pick a route by value; the stages of the other routes are skipped.",
    governs=("routes", "default_route"),
    lazy=("value_expression",),
    config_schema=described({"type": "object", "required": ["routes"], "properties": {
        "routes": {"type": "object", "additionalProperties": {"type": ["array", "string"]}},
        "default_route": {"type": ["array", "string"]},
    }}, {"value": "the value to route on (usually a template)", "value_expression": "an expression evaluated instead",
         "routes": "route name -> stage ids run when the value equals the name",
         "default_route": "stage ids run when no route matches", "case_insensitive": "match names ignoring case",
         "pass_data": "a value handed on as the output's data"}),
    output_schema=obj("Which route ran.", {
        "route_taken": f("string", "the matching route's name, or 'default'"),
        "original_value": any_value("the value routed on"),
        "matched_value": f(["string", "null"], "the route name it matched (null: default)"),
        "stages_to_execute": f("array", "stage ids of the route taken", items={"type": "string"}),
        "stages_to_skip": f("array", "stage ids of the other routes, skipped", items={"type": "string"}),
        "data": any_value("the `pass_data` config, handed on"),
    }),
)
def router(ctx) -> dict[str, Any]:
    cfg = ctx.config
    expr = ctx.lazy("value_expression")
    value = ctx.evaluate(expr) if expr else cfg.get("value")
    routes: dict[str, Any] = cfg.get("routes") or {}
    insensitive = truthy(cfg.get("case_insensitive", False))
    key = "" if value is None else str(value)
    taken = None
    for name in routes:
        if name == key or (insensitive and name.lower() == key.lower()):
            taken = name
            break
    chosen = _ids(routes[taken]) if taken is not None else _ids(cfg.get("default_route"))
    everything = {sid for v in routes.values() for sid in _ids(v)} | set(_ids(cfg.get("default_route")))
    skipped = sorted(everything - set(chosen))
    ctx.skip(skipped)
    return {
        "route_taken": taken if taken is not None else "default",
        "original_value": value,
        "matched_value": taken,
        "stages_to_execute": chosen,
        "stages_to_skip": skipped,
        "data": cfg.get("pass_data"),
    }


@control_flow(
    "foreach",
    description="Run the loop stages once per item, in parallel (bounded) or in order; collect the results.",
    governs=("loop_stages",),
    owns=True,
    lazy=("filter_expression",),
    config_schema=described({"type": "object", "required": ["loop_stages"], "properties": {
        "loop_stages": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "item_variable": {"type": "string"},
        "index_variable": {"type": "string"},
        "parallel": {"type": "boolean"},
        "max_parallel": {"type": "integer", "minimum": 1},
        "collect_results": {"type": "boolean"},
        "break_on_error": {"type": "boolean"},
    }}, {"items": "the list to loop over (an object loops over {key, value})",
         "loop_stages": "stage ids run once per item, in their dependency order",
         "item_variable": "the item's name under {{context.NAME}} (default item)",
         "index_variable": "the index's name under {{context.NAME}} (default index)",
         "parallel": "run items at the same time (default false)", "max_parallel": "at most this many at once (default 5)",
         "collect_results": "keep each item's last output in results (default true)",
         "break_on_error": "stop at the first failed item (default true); false collects errors",
         "filter_expression": "only items for which this holds (names: the item variable, index)"}),
    lazy_names=lambda settings: [str(settings.get("item_variable") or "item"), str(settings.get("index_variable") or "index"),
                                 "item", "index"],
    output_schema=obj("The loop's results.", {
        "broken": f("boolean", "a break-loop stage stopped the loop"),
        "break_result": any_value("the `result` of the break-loop that fired (null if none)"),
        "results": f("array", "the last loop stage's output per item, in item order (empty without collect_results)"),
        "total_items": f("integer", "items given"),
        "processed_items": f("integer", "items run without error"),
        "skipped_items": f("integer", "items left out by filter_expression"),
        "errors": f("array", "{index, error} per failed item (break_on_error: false)", items={"type": "object"}),
        "is_complete": f("boolean", "the loop ran to its end"),
    }),
)
async def foreach(ctx) -> dict[str, Any]:
    cfg = ctx.config
    items = cfg.get("items")
    if items is None:
        items = []
    if isinstance(items, dict):
        items = [{"key": k, "value": v} for k, v in items.items()]
    if not isinstance(items, (list, tuple)):
        raise StageError(
            f"'items' must be a list, got {type(items).__name__}", stage=ctx.stage.id, field="config.items",
            hint="point items at a list, e.g. {{input.items}}",
        )
    loop_ids = _ids(cfg.get("loop_stages"))
    item_var = cfg.get("item_variable") or "item"
    index_var = cfg.get("index_variable") or "index"
    filt = ctx.lazy("filter_expression")
    selected = []
    for i, item in enumerate(items):
        if filt and not truthy(ctx.evaluate(filt, **{item_var: item, index_var: i, "item": item})):
            continue
        selected.append((i, item))
    parallel = truthy(cfg.get("parallel", False))
    width = max(1, int(cfg.get("max_parallel") or 5)) if parallel else 1
    break_on_error = truthy(cfg.get("break_on_error", True))
    collect = truthy(cfg.get("collect_results", True))
    last = loop_ids[-1]
    results: list[Any] = [None] * len(selected)
    errors: list[dict[str, Any]] = []
    cursor = iter(range(len(selected)))
    stage_types = {s.id: s.component_type for s in ctx.pipeline.stages}
    breakers = [sid for sid in loop_ids if stage_types.get(sid) == "break-loop"]
    broken: list[dict[str, Any]] = []

    async def one(slot: int) -> None:
        i, item = selected[slot]
        try:
            outs = await ctx.run_stages(loop_ids, context={item_var: item, index_var: i}, label=str(i))
            results[slot] = outs.get(last)
            for sid in breakers:
                out = outs.get(sid)
                if isinstance(out, dict) and out.get("broken"):
                    broken.append({"index": i, "result": out.get("result")})
        except FlowMasonError as exc:
            if break_on_error:
                raise
            errors.append({"index": i, "error": str(exc)})

    async def worker() -> None:
        for slot in cursor:  # workers share one iterator: at most `width` iterations in flight
            if broken:
                return  # a break-loop fired: start no further iterations
            await one(slot)

    await asyncio.gather(*(worker() for _ in range(min(width, len(selected)) or 0)))
    first = min(broken, key=lambda b: b["index"]) if broken else None
    if first is not None:
        # the loop ends at the breaking item: later items in flight (parallel) do not count
        results = [r for (i, _), r in zip(selected, results) if i <= first["index"]]
        errors = [e for e in errors if e["index"] <= first["index"]]
    return {
        "broken": first is not None,
        "break_result": first["result"] if first is not None else None,
        "results": results if collect else [],
        "total_items": len(items),
        "processed_items": len(results) - len(errors),
        "skipped_items": len(items) - len(selected),
        "errors": errors,
        "is_complete": first is None,  # every selected item ran (no break-loop stopped the loop)
    }


@control_flow(
    "trycatch",
    description="Run the try stages; on failure run the catch stages; always run the finally stages.",
    governs=("try_stages", "catch_stages", "finally_stages"),
    owns=True,
    config_schema=described({"type": "object", "required": ["try_stages"], "properties": {
        "try_stages": {"type": "array", "items": {"type": "string"}, "minItems": 1},
        "catch_stages": {"type": "array", "items": {"type": "string"}},
        "finally_stages": {"type": "array", "items": {"type": "string"}},
        "max_retries": {"type": "integer", "minimum": 0, "maximum": 10},
    }}, {"try_stages": "stage ids to try", "catch_stages": "stage ids run when they fail ({{context.error}})",
         "finally_stages": "stage ids run either way", "max_retries": "tries again before catching (default 0)",
         "retry_delay_ms": "pause between tries", "pass_data": "a value handed on as the output's data"}),
    output_schema=obj("How the try went.", {
        "status": f("string", "'success' or 'recovered'"),
        "error_occurred": f("boolean", "the try stages failed (after max_retries)"),
        "error_message": f(["string", "null"], "the failure's message"),
        "error_type": f(["string", "null"], "the failure's error class"),
        "error_stage": f(["string", "null"], "the stage that failed (present when one did)"),
        "recovered": f("boolean", "the catch stages ran and succeeded"),
        "try_result": any_value("the last try stage's output"),
        "catch_result": any_value("the last catch stage's output"),
        "data": any_value("the `pass_data` config, handed on"),
    }, required=["status", "error_occurred", "error_message", "error_type", "recovered", "try_result",
                 "catch_result", "data"]),
)
async def trycatch(ctx) -> dict[str, Any]:
    cfg = ctx.config
    try_ids, catch_ids, finally_ids = (_ids(cfg.get(k)) for k in ("try_stages", "catch_stages", "finally_stages"))
    retries = int(cfg.get("max_retries") or 0)
    delay = float(cfg.get("retry_delay_ms") or 0) / 1000
    out: dict[str, Any] = {"status": "success", "error_occurred": False, "error_message": None, "error_type": None,
                           "recovered": False, "try_result": None, "catch_result": None, "data": cfg.get("pass_data")}
    try:
        for attempt in range(retries + 1):
            try:
                res = await ctx.run_stages(try_ids, label=f"try{attempt}" if attempt else None)
                out["try_result"] = res.get(try_ids[-1])
                out["error_occurred"] = False
                break
            except FlowMasonError as exc:
                out.update(error_occurred=True, error_message=exc.message, error_type=type(exc).__name__,
                           error_stage=exc.stage)
                if attempt < retries:
                    await asyncio.sleep(delay)
        if out["error_occurred"]:
            if not catch_ids:
                raise StageError(
                    f"try stages failed and there are no catch stages: {out['error_message']}",
                    stage=ctx.stage.id, field="config.catch_stages", hint="add catch_stages to recover",
                )
            error = {"message": out["error_message"], "type": out["error_type"], "stage": out.get("error_stage")}
            res = await ctx.run_stages(catch_ids, context={"error": error})
            out.update(status="recovered", recovered=True, catch_result=res.get(catch_ids[-1]))
    finally:
        if finally_ids:
            await ctx.run_stages(finally_ids, label="finally")
    return out


@control_flow(
    "subpipeline",
    description="Run another pipeline (by path, id or inline) with the given inputs.",
    config_schema=described({"type": "object", "properties": {
        "pipeline_id": {"type": "string"}, "pipeline": {"type": ["string", "object"]},
        "input_data": {"type": "object"}, "on_error": {"type": "string", "enum": ["fail", "default", "continue"]},
    }, "anyOf": [{"required": ["pipeline_id"]}, {"required": ["pipeline"]}, {"required": ["pipeline_path"]}]}, {
        "pipeline_id": "the child: a file beside this one (ID.pipeline.json) or a saved pipeline's id (ID@VERSION)",
        "pipeline": "the child: a path, an id, or an inline pipeline object", "pipeline_path": "the child's file path",
        "input_data": "the child's inputs", "inherit_context": "also pass this run's inputs",
        "on_error": "fail (default); default/continue: output status failed and default_result",
        "default_result": "the result when the child fails and on_error is default/continue"}),
    pipeline_refs=("pipeline", "pipeline_path", "pipeline_id"),
    output_schema=obj("The child run.", {
        "pipeline_id": f(["string", "null"], "the pipeline that ran"),
        "status": f("string", "'completed' or 'failed' (on_error: default/continue)"),
        "result": any_value("open-ended: the child pipeline's output"),
        "error": f(["string", "null"], "the child's error when it failed"),
    }),
)
async def subpipeline(ctx) -> dict[str, Any]:
    cfg = ctx.config
    ref = cfg.get("pipeline") or cfg.get("pipeline_path") or cfg.get("pipeline_id")
    if not ref:
        raise StageError("no pipeline named", stage=ctx.stage.id, field="config.pipeline_id",
                         hint="set pipeline_id (or pipeline: a path or an inline pipeline)")
    inputs = cfg.get("input_data") or {}
    if truthy(cfg.get("inherit_context", False)):
        inputs = {**ctx.inputs, **inputs}
    try:
        result = await ctx.run_pipeline(ref, inputs)
        return {"pipeline_id": ref if isinstance(ref, str) else (ref.get("id") or ref.get("name")),
                "status": "completed", "result": result, "error": None}
    except FlowMasonError as exc:
        if cfg.get("on_error") in ("default", "continue"):
            return {"pipeline_id": ref if isinstance(ref, str) else None, "status": "failed",
                    "result": cfg.get("default_result"), "error": str(exc)}
        raise


@control_flow(
    "return",
    description="End the run early with a value when the condition holds.",
    lazy=("condition_expression",),
    config_schema=described({"type": "object"}, {
        "condition": "end the run when true (default true)", "condition_expression": "an expression evaluated instead",
        "return_value": "the run's output when it ends here (value: the same)", "message": "a note kept in the output"}),
    output_schema=obj("When the condition does not hold (otherwise the run ends with return_value).", {
        "should_return": f("boolean", "false: the run goes on"),
        "return_value": f("null", "null"),
        "message": any_value("the `message` config"),
        "status": f("string", "'continued'"),
    }),
)
def return_early(ctx) -> dict[str, Any]:
    cfg = ctx.config
    should = truthy(_condition(ctx, "condition", "condition_expression"))
    value = cfg.get("return_value", cfg.get("value"))
    if should:
        ctx.finish(value)
    return {"should_return": False, "return_value": None, "message": cfg.get("message"), "status": "continued"}


def _skip_rest_of_iteration(ctx) -> None:
    """Skip the stages of this loop body that have not run yet."""
    graph = ctx.graph
    ctx.skip(sid for sid in graph.ids if sid not in graph.status and sid != ctx.stage.id)


@control_flow(
    "break-loop",
    description="Inside a foreach body: stop the loop (no further items) when the condition holds.",
    lazy=("condition_expression",),
    config_schema=described({"type": "object"}, {
        "condition": "break when true (default true)", "condition_expression": "an expression evaluated instead",
        "result": "the loop's break_result", "message": "a note kept in the output"}),
    output_schema=obj("Whether it broke the loop.", {
        "broken": f("boolean", "the condition held: no further items start"),
        "result": any_value("the `result` config when broken (the foreach's break_result)"),
        "message": any_value("the `message` config when broken"),
    }),
)
def break_loop(ctx) -> dict[str, Any]:
    if truthy(_condition(ctx, "condition", "condition_expression")):
        _skip_rest_of_iteration(ctx)
        return {"broken": True, "result": ctx.config.get("result"), "message": ctx.config.get("message")}
    return {"broken": False, "result": None, "message": None}


@control_flow(
    "continue-loop",
    description="Inside a foreach body: skip the rest of this item's stages when the condition holds.",
    lazy=("condition_expression",),
    config_schema=described({"type": "object"}, {
        "condition": "skip the rest of the item when true (default true)",
        "condition_expression": "an expression evaluated instead", "message": "a note kept in the output"}),
    output_schema=obj("Whether it skipped the rest of the item.", {
        "continued": f("boolean", "the condition held: this item's later stages are skipped"),
        "message": any_value("the `message` config when continued"),
    }),
)
def continue_loop(ctx) -> dict[str, Any]:
    if truthy(_condition(ctx, "condition", "condition_expression")):
        _skip_rest_of_iteration(ctx)
        return {"continued": True, "message": ctx.config.get("message")}
    return {"continued": False, "message": None}


# Every config key each component reads, beyond the ones its schema types: the schemas are closed
# over them, so a misspelt key is an error with a "did you mean" (kernel/keys.py). The earlier
# product's keys are all here; the few only it acted on are accepted and ignored (their description says so).
_NOT_ACTED_ON = {"description": "read from the earlier product's files; not acted on here"}
_ALSO_READS = (
    (conditional, ("condition", "condition_expression", "pass_data",
                   ("true_stages", {"description": "stage ids run when true (the earlier product's true_branch_stages)"}),
                   ("false_stages", {"description": "stage ids run when false (the earlier product's false_branch_stages)"}))),
    (router, ("value", "value_expression", "case_insensitive", "pass_data")),
    (foreach, ("items", "filter_expression",
               ("distributed", {"description": "spread the items over workers (read by the durable engine's fan-out)"}),
               ("fanout_chunk_size", {"description": "items per worker chunk (read by the durable engine's fan-out)"}))),
    (trycatch, ("retry_delay_ms", "pass_data", *((k, _NOT_ACTED_ON) for k in ("error_scope", "catch_error_types")))),
    (subpipeline, ("pipeline_path", "inherit_context", "default_result", *(
        (k, _NOT_ACTED_ON) for k in ("pipeline_version", "timeout_ms", "async_execution", "wait_for_completion",
                                      "isolated")))),
    (return_early, ("condition", "condition_expression", "return_value", "message",
                    ("value", {"description": "the pipeline's output when it returns (return_value: the same)"}),
                    ("status", {"description": "the run's status when it returns early (the earlier product's key)"}))),
    (break_loop, ("condition", "condition_expression", "result", "message")),
    (continue_loop, ("condition", "condition_expression", "message")),
)


def _close(comp, keys) -> None:
    schema = dict(comp.config_schema or {"type": "object"})
    props = dict(schema.get("properties", {}))
    for key in keys:
        name, sub = key if isinstance(key, tuple) else (key, {})
        props.setdefault(name, sub)
    comp.config_schema = {**schema, "properties": props, "additionalProperties": False}


for _comp, _keys in _ALSO_READS:
    _close(_comp, _keys)


@hookimpl
def fm_register_components(register):
    for comp in (conditional, router, foreach, trycatch, subpipeline, return_early, break_loop, continue_loop):
        register(comp)
