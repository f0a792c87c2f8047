"""AI nodes: generator, critic, improver, synthesizer, selector.

Config keys and output fields follow the earlier product's nodes and the
templates people already have (``{{upstream.draft.content}}``,
``{{upstream.review.feedback}}``, ``{{upstream.polish.improved}}``,
``{{upstream.pick.selected}}``/``reasoning``,
``{{upstream.merge.synthesized}}``), so their pipelines run unchanged. The
config arrives rendered by the engine: prompts are templates over inputs
and upstream outputs. Every node takes ``system_prompt``, ``temperature``,
``max_tokens``, ``stop_sequences`` and ``output_schema`` (a JSON Schema:
the reply is parsed, validated and repaired once; the parsed value is in
the output's ``data``). Model calls go through ``llm.ask``.
"""
from __future__ import annotations

from typing import Any

from flowmason.kernel.components import node
from flowmason.kernel.errors import ConfigError
from flowmason.kernel.outputs import any_value, described, f, obj
from flowmason.kernel.plugins import hookimpl

from .llm import Answer, ask

_TEXT_OR_LIST = {"anyOf": [{"type": "string"}, {"type": "array"}, {"type": "null"}]}
_COMMON = {
    "system_prompt": {"type": ["string", "null"], "description": "instructions added to the node's own system prompt"},
    "temperature": {"type": ["number", "string", "null"], "description": "sampling temperature (each node has a default)"},
    "max_tokens": {"type": ["integer", "string", "null"], "description": "most tokens in the reply"},
    "stop_sequences": {"type": ["array", "null"], "description": "strings that end the reply"},
    "output_schema": {"type": ["object", "null"],
                      "description": "a JSON Schema the reply must match: parsed, checked, repaired once; in `data`"},
    "stream": {"type": ["boolean", "null"], "description": "stream tokens as events (default: when the run is observed)"},
    "model": {"type": ["string", "null"], "description": "the model (default: the provider's)"},
}


def _schema(required: list[str], **props: Any) -> dict[str, Any]:
    return {"type": "object", "required": required, "properties": {**_COMMON, **props}}


_META = {
    "model": f("string", "the model that answered"),
    "provider": f("string", "the provider that answered (anthropic, openai, ...)"),
    "tokens_used": f("integer", "input + output tokens of the call(s)"),
}
_DATA = "the reply parsed as JSON and checked against the config's output_schema (only with an output_schema)"


def _output(description: str, fields: dict[str, Any], *, optional: dict[str, Any] | None = None) -> Any:
    """The node's output schema, and per stage: ``data`` (shaped by the config's output_schema) when one is given."""
    base = {**fields, **_META}
    declared = obj(description + " With an output_schema in the config, also `data`.",
                   {**base, **(optional or {}), "data": any_value(_DATA)}, required=list(base))

    def output_for(settings: dict[str, Any]) -> dict[str, Any]:
        extra = dict(optional or {})
        schema = settings.get("output_schema")
        if schema is not None:
            data = dict(schema) if isinstance(schema, dict) else {}
            data["description"] = _DATA
            extra["data"] = data
        elif settings.get("output_format") is not None and "content" in fields:
            extra["data"] = any_value("with output_format json: the reply parsed as JSON (open-ended)")
        return obj(description, {**base, **extra}, required=list(base))

    return declared, output_for


GENERATOR_OUT = _output("The generated text.", {
    "content": f("string", "the model's reply"),
    "finish_reason": f("string", "why the model stopped (stop, max_tokens, ...)"),
})


def _need(ctx: Any, key: str, *aliases: str) -> Any:
    for k in (key, *aliases):
        value = ctx.config.get(k)
        if value not in (None, "", []):
            return value
    raise ConfigError(f"'{key}' is missing or empty", stage=ctx.stage.id, field=f"config.{key}",
                      hint=f"give the {ctx.stage.component_type} stage a \"{key}\" in its config")


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "\n".join(f"- {_text(v)}" for v in value)
    if value is None:
        return ""
    import json

    return json.dumps(value, ensure_ascii=False, indent=1, default=str)


def _items(value: Any) -> list[tuple[str | None, str]]:
    """Candidates or sources as (label, content): plain strings or {"label", "content"} objects."""
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    out = []
    for item in value:
        if isinstance(item, dict) and "content" in item:
            out.append((item.get("label"), _text(item["content"])))
        else:
            out.append((None, _text(item)))
    return out


def _with_system(ctx: Any, builtin: str) -> str:
    extra = ctx.config.get("system_prompt")
    return f"{builtin}\n\n{extra}" if extra else builtin


def _user_schema(ctx: Any) -> dict[str, Any] | None:
    schema = ctx.config.get("output_schema")
    if schema is not None and not isinstance(schema, dict):
        raise ConfigError("output_schema must be a JSON Schema object", stage=ctx.stage.id, field="config.output_schema",
                          hint='e.g. {"type": "object", "required": ["title"], "properties": {"title": {"type": "string"}}}')
    return schema


def _fields(answer: Answer) -> dict[str, Any]:
    return answer.data if isinstance(answer.data, dict) else {}


def _meta(answer: Answer) -> dict[str, Any]:
    return {"model": answer.completion.model, "provider": answer.provider, "tokens_used": answer.tokens}


# -- generator --

@node("generator", category="ai", description="Generate text from a prompt with an LLM",
      config_schema=_schema(["prompt"], prompt={"type": "string", "description": "what to ask the model"},
                            output_format={"type": ["string", "null"],
                                           "description": "'json' parses the reply into `data`; other text is a format hint"}),
      output_schema=GENERATOR_OUT[0], output_for=GENERATOR_OUT[1])
async def generator(ctx):
    prompt = _text(_need(ctx, "prompt"))
    schema = _user_schema(ctx)
    if schema is None and str(ctx.config.get("output_format") or "").lower() == "json":
        schema = {}  # any JSON value: parsed and repaired, no shape
    fmt = ctx.config.get("output_format")
    system = ctx.config.get("system_prompt") or None
    if fmt and schema is None:
        system = f"{system}\n\nOutput format: {fmt}" if system else f"Output format: {fmt}"
    answer = await ask(ctx, prompt, system=system, temperature=0.7, max_tokens=4096, schema=schema)
    out = {"content": answer.text, "finish_reason": answer.completion.stop_reason or "stop", **_meta(answer)}
    if schema is not None:
        out["data"] = answer.data
    return out


# -- critic --

CRITIC_SCHEMA = {
    "type": "object",
    "required": ["feedback", "score"],
    "properties": {
        "overall_rating": {"type": "string"},
        "score": {"type": "number"},
        "feedback": {"type": "string"},
        "strengths": {"type": "array", "items": {"type": "string"}},
        "improvements": {"type": "array", "items": {"type": "string"}},
        "criterion_scores": {"type": "object"},
        "passes_threshold": {"type": "boolean"},
    },
}


CRITIC_OUT = _output("The evaluation.", {
    "overall_rating": f("string", "excellent, good, acceptable, needs_improvement or poor"),
    "score": f("number", "0.0 to 1.0"),
    "feedback": f("string", "detailed feedback (the raw reply when it was not valid JSON)"),
    "strengths": f("array", "what works", items={"type": "string"}),
    "improvements": f("array", "what to change", items={"type": "string"}),
    "criterion_scores": f("object", "criterion -> score (0.0-1.0)"),
    "passes_threshold": f("boolean", "score >= threshold (when given), else the model's verdict"),
})


@node("critic", category="ai", description="Evaluate content against criteria and give structured feedback",
      output_schema=CRITIC_OUT[0], output_for=CRITIC_OUT[1],
      config_schema=described(_schema(["content"], content={}, criteria=_TEXT_OR_LIST, context={},
                                      rubric={"type": ["object", "null"]}, strict_mode={"type": ["boolean", "null"]},
                                      threshold={"type": ["number", "null"]}), {
          "content": "the content to evaluate", "criteria": "what to judge it on (text or a list)",
          "context": "background for the evaluator", "rubric": "criterion -> what it means",
          "strict_mode": "apply strict standards", "threshold": "the score (0-1) needed for passes_threshold"}))
async def critic(ctx):
    content = _text(_need(ctx, "content"))
    cfg = ctx.config
    criteria = cfg.get("criteria")
    rubric = cfg.get("rubric") or {}
    lines = []
    if isinstance(criteria, list):
        lines = [f"- {c}" + (f": {rubric[c]}" if isinstance(rubric, dict) and rubric.get(c) else "") for c in criteria]
    elif criteria:
        lines = [str(criteria)]
    prompt = f"Evaluate this content:\n\n---\n{content}\n---"
    if lines:
        prompt += "\n\nEvaluate against these criteria:\n" + "\n".join(lines)
    if cfg.get("context"):
        prompt += f"\n\nContext: {_text(cfg['context'])}"
    system = _with_system(ctx, "You are an expert content evaluator. Analyse the content and give structured feedback: "
                               "an overall_rating (excellent, good, acceptable, needs_improvement or poor), a score from "
                               "0.0 to 1.0, detailed feedback, strengths, improvements, per-criterion scores (0.0-1.0) "
                               "and whether it passes." + (" Apply strict standards." if cfg.get("strict_mode") else ""))
    user_schema = _user_schema(ctx)
    answer = await ask(ctx, prompt, system=system, temperature=0.3, max_tokens=2048,
                       schema=user_schema or CRITIC_SCHEMA, strict=user_schema is not None)
    f = _fields(answer)
    try:
        score = float(f.get("score", 0.5))
    except (TypeError, ValueError):
        score = 0.5
    threshold = cfg.get("threshold")
    passes = f.get("passes_threshold")
    if threshold is not None:
        passes = score >= float(threshold)
    out = {
        "overall_rating": f.get("overall_rating") or "acceptable",
        "score": score,
        "feedback": f.get("feedback") if answer.valid and "feedback" in f else answer.text,
        "strengths": f.get("strengths") or [],
        "improvements": f.get("improvements") or [],
        "criterion_scores": f.get("criterion_scores") or {},
        "passes_threshold": bool(True if passes is None else passes),
        **_meta(answer),
    }
    if user_schema is not None:
        out["data"] = answer.data
    return out


# -- improver --

IMPROVER_SCHEMA = {
    "type": "object",
    "required": ["improved_content"],
    "properties": {
        "improved_content": {"type": "string"},
        "changes_made": {"type": "array", "items": {"type": "string"}},
        "preserved_aspects": {"type": "array", "items": {"type": "string"}},
        "improvement_summary": {"type": "string"},
    },
}


IMPROVER_OUT = _output("The improved content.", {
    "improved_content": f("string", "the full improved text"),
    "improved": f("string", "the same text (the name templates use)"),
    "content": f("string", "the same text"),
    "changes_made": f("array", "what was changed", items={"type": "string"}),
    "preserved_aspects": f("array", "what was kept", items={"type": "string"}),
    "improvement_summary": f("string", "the changes in a sentence or two"),
})


@node("improver", category="ai", description="Improve content using feedback",
      output_schema=IMPROVER_OUT[0], output_for=IMPROVER_OUT[1],
      config_schema=described(_schema(["content"], content={}, feedback={}, instructions={}, improvements=_TEXT_OR_LIST,
                                      preserve_aspects=_TEXT_OR_LIST, improvement_focus={}), {
          "content": "the content to improve", "feedback": "what a critic said (e.g. {{upstream.review.feedback}})",
          "instructions": "further instructions", "improvements": "specific changes to make",
          "preserve_aspects": "what must not change", "improvement_focus": "the main thing to improve"}))
async def improver(ctx):
    content = _text(_need(ctx, "content"))
    cfg = ctx.config
    prompt = f"Original content:\n---\n{content}\n---"
    if cfg.get("feedback"):
        prompt += f"\n\nFeedback:\n{_text(cfg['feedback'])}"
    if cfg.get("improvements"):
        prompt += f"\n\nSpecific improvements to make:\n{_text(cfg['improvements'])}"
    if cfg.get("preserve_aspects"):
        prompt += f"\n\nPreserve these aspects:\n{_text(cfg['preserve_aspects'])}"
    if cfg.get("improvement_focus"):
        prompt += f"\n\nPrimary focus: {_text(cfg['improvement_focus'])}"
    if cfg.get("instructions"):
        prompt += f"\n\nInstructions:\n{_text(cfg['instructions'])}"
    prompt += "\n\nImprove the content based on this."
    system = _with_system(ctx, "You are an expert editor. Improve the given content based on the feedback while "
                               "keeping its intent and voice. Return the full improved text in improved_content.")
    user_schema = _user_schema(ctx)
    answer = await ask(ctx, prompt, system=system, temperature=0.5, max_tokens=4096,
                       schema=user_schema or IMPROVER_SCHEMA, strict=user_schema is not None)
    f = _fields(answer)
    improved = f.get("improved_content") if isinstance(f.get("improved_content"), str) else answer.text
    out = {
        "improved_content": improved,
        "improved": improved,
        "content": improved,
        "changes_made": f.get("changes_made") or [],
        "preserved_aspects": f.get("preserved_aspects") or list(cfg.get("preserve_aspects") or []),
        "improvement_summary": f.get("improvement_summary") or "",
        **_meta(answer),
    }
    if user_schema is not None:
        out["data"] = answer.data
    return out


# -- synthesizer --

STRATEGIES = {
    "integrate": "Combine all inputs into one coherent narrative, removing redundancy and keeping every unique insight.",
    "summarize": "Write a concise summary of the key points and common themes of all inputs.",
    "compare": "Set out where the inputs agree and where they differ, in a balanced way.",
    "consensus": "Find what all inputs agree on and build the result on that common ground.",
    "best_of": "Judge the inputs and combine the strongest elements of each.",
}

SYNTHESIZER_SCHEMA = {
    "type": "object",
    "required": ["synthesized"],
    "properties": {
        "synthesized": {"type": "string"},
        "key_themes": {"type": "array", "items": {"type": "string"}},
        "strategy_applied": {"type": "string"},
    },
}


SYNTHESIZER_OUT = _output("The synthesis.", {
    "synthesized": f("string", "the combined text"),
    "content": f("string", "the same text"),
    "sources_used": f("integer", "how many inputs were combined"),
    "strategy_applied": f("string", "integrate, summarize, compare, consensus or best_of"),
    "key_themes": f("array", "themes found across the inputs", items={"type": "string"}),
})


@node("synthesizer", category="ai", description="Combine several inputs into one coherent output",
      output_schema=SYNTHESIZER_OUT[0], output_for=SYNTHESIZER_OUT[1],
      config_schema=described(_schema([], inputs={"type": ["array", "null"]}, sources={"type": ["array", "null"]},
                                      synthesis_strategy={"type": ["string", "null"]}, context={}, instructions={},
                                      output_format={}, preserve_sources={}, max_length={}), {
          "inputs": "the texts to combine (strings or {label, content})", "sources": "the same as inputs (older name)",
          "synthesis_strategy": "integrate (default), summarize, compare, consensus or best_of",
          "context": "background", "instructions": "further instructions", "output_format": "the shape of the result",
          "preserve_sources": "attribute statements to their sources", "max_length": "target length in words"}))
async def synthesizer(ctx):
    cfg = ctx.config
    sources = _items(cfg.get("inputs") if cfg.get("inputs") not in (None, []) else cfg.get("sources"))
    if not sources:
        raise ConfigError("nothing to synthesize: 'inputs' (or 'sources') is missing or empty", stage=ctx.stage.id,
                          field="config.inputs", hint='give a list, e.g. "inputs": ["{{upstream.a.content}}", "{{upstream.b.content}}"]')
    strategy = str(cfg.get("synthesis_strategy") or "integrate")
    blocks = [f"[{label or f'Source {i}'}]:\n{content}" for i, (label, content) in enumerate(sources, 1)]
    prompt = f"Synthesize the following {len(sources)} inputs:\n\n" + "\n\n".join(blocks)
    for key, label in (("context", "Context"), ("output_format", "Output format"), ("instructions", "Instructions")):
        if cfg.get(key):
            prompt += f"\n\n{label}: {_text(cfg[key])}"
    if cfg.get("max_length"):
        prompt += f"\n\nTarget length: about {cfg['max_length']} words."
    if cfg.get("preserve_sources"):
        prompt += "\n\nAttribute statements to their sources (e.g. 'According to Source 1...')."
    system = _with_system(ctx, "You are an expert at synthesizing information from several sources. "
                               + STRATEGIES.get(strategy, STRATEGIES["integrate"]))
    user_schema = _user_schema(ctx)
    answer = await ask(ctx, prompt, system=system, temperature=0.5, max_tokens=4096,
                       schema=user_schema or SYNTHESIZER_SCHEMA, strict=user_schema is not None)
    f = _fields(answer)
    text = f.get("synthesized") if isinstance(f.get("synthesized"), str) else answer.text
    out = {
        "synthesized": text,
        "content": text,
        "sources_used": len(sources),
        "strategy_applied": f.get("strategy_applied") or strategy,
        "key_themes": f.get("key_themes") or [],
        **_meta(answer),
    }
    if user_schema is not None:
        out["data"] = answer.data
    return out


# -- selector --

SELECTOR_SCHEMA = {
    "type": "object",
    "required": ["selected_index"],
    "properties": {
        "selected_index": {"type": "integer"},
        "explanation": {"type": "string"},
        "rankings": {"type": "array"},
        "confidence": {"type": "number"},
    },
}


_SELECTOR_FIELDS = {
    "selected": f("string", "the chosen candidate's content"),
    "selected_index": f("integer", "its 0-based position"),
    "selected_label": f(["string", "null"], "its label, when candidates are {label, content}"),
    "explanation": f("string", "why it was chosen"),
    "reasoning": f("string", "the same explanation (the name templates use)"),
    "rankings": f("array", "[{index, score}] as the model ranked them", items={"type": "object"}),
    "confidence": f("number", "0.0 to 1.0"),
}
_SELECTOR_TOP = {"top": f("array", "with selection_mode top_n: the best top_n candidates' contents", items={"type": "string"})}
_SELECTOR_DECLARED, _selector_base = _output("The choice.", _SELECTOR_FIELDS, optional=_SELECTOR_TOP)


def _selector_output(settings: dict[str, Any]) -> dict[str, Any]:
    out = _selector_base(settings)
    mode = settings.get("selection_mode")
    if mode is None or (isinstance(mode, str) and "{{" not in mode and mode != "top_n"):
        out["properties"].pop("top", None)  # `top` only in top_n mode
    return out


@node("selector", category="ai", description="Choose the best of several candidates",
      output_schema=_SELECTOR_DECLARED, output_for=_selector_output,
      config_schema=described(_schema([], candidates={"type": ["array", "null"]}, options={"type": ["array", "null"]},
                                      criteria=_TEXT_OR_LIST, context={}, selection_mode={"type": ["string", "null"]},
                                      top_n={}), {
          "candidates": "the options to choose from (strings or {label, content})",
          "options": "the same as candidates (older name)", "criteria": "what to judge them on",
          "context": "background", "selection_mode": "best (default), top_n or rank_all",
          "top_n": "how many to keep in top_n mode"}))
async def selector(ctx):
    cfg = ctx.config
    raw = cfg.get("candidates") if cfg.get("candidates") not in (None, []) else cfg.get("options")
    candidates = _items(raw)
    if not candidates:
        raise ConfigError("nothing to choose from: 'candidates' (or 'options') is missing or empty", stage=ctx.stage.id,
                          field="config.candidates", hint='give a list, e.g. "candidates": ["{{upstream.a.content}}", "{{upstream.b.content}}"]')
    blocks = [f"[Option {i}{f' - {label}' if label else ''}]:\n{content}" for i, (label, content) in enumerate(candidates)]
    prompt = f"Select the best of these {len(candidates)} candidates (numbered from 0):\n\n" + "\n\n".join(blocks)
    if cfg.get("criteria"):
        prompt += f"\n\nEvaluate them on these criteria:\n{_text(cfg['criteria'])}"
    if cfg.get("context"):
        prompt += f"\n\nContext: {_text(cfg['context'])}"
    mode = str(cfg.get("selection_mode") or "best")
    top_n = int(cfg.get("top_n") or 1)
    instruction = {"top_n": f"Rank the options and put the best {top_n} first in rankings.",
                   "rank_all": "Rank all options from best to worst with scores."}.get(mode, "Select the single best option.")
    system = _with_system(ctx, "You are an expert evaluator choosing among candidates. " + instruction +
                          " Give selected_index (0-based), an explanation, rankings as "
                          '[{"index": i, "score": 0.0-1.0}] and your confidence (0-1).')
    user_schema = _user_schema(ctx)
    answer = await ask(ctx, prompt, system=system, temperature=0.2, max_tokens=2048,
                       schema=user_schema or SELECTOR_SCHEMA, strict=user_schema is not None)
    f = _fields(answer)
    index = f.get("selected_index", 0)
    if not isinstance(index, int) or not 0 <= index < len(candidates):
        ctx.log("warning", "the model chose an option that does not exist; taking the first", selected_index=index)
        index = 0
    explanation = f.get("explanation") if answer.valid and isinstance(f.get("explanation"), str) else \
        ("" if answer.valid else answer.text)
    try:
        confidence = float(f.get("confidence", 0.5))
    except (TypeError, ValueError):
        confidence = 0.5
    rankings = f.get("rankings") or []
    out = {
        "selected": candidates[index][1],
        "selected_index": index,
        "selected_label": candidates[index][0],
        "explanation": explanation,
        "reasoning": explanation,
        "rankings": rankings,
        "confidence": confidence,
        **_meta(answer),
    }
    if mode == "top_n":
        order = [r.get("index") for r in rankings if isinstance(r, dict) and isinstance(r.get("index"), int)
                 and 0 <= r["index"] < len(candidates)]
        out["top"] = [candidates[i][1] for i in order[:top_n]] or [candidates[index][1]]
    if user_schema is not None:
        out["data"] = answer.data
    return out


@hookimpl
def fm_register_components(register):
    for component in (generator, critic, improver, synthesizer, selector):
        register(component)
