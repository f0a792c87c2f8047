"""How an AI node calls a model: choose provider and model, stream, count, and get valid JSON.

Provider, in order: the stage's ``provider`` (or ``llm_settings.provider``),
the pipeline's ``metadata.default_provider``, ``FM_PROVIDER``, ``anthropic``.
Model: the stage's ``model`` (or ``llm_settings.model``, ``config.model``),
then the pipeline's ``metadata.default_model`` (when the provider is the
pipeline's default), then ``FM_MODEL`` (when the provider is
``FM_PROVIDER``'s), then the provider's own default. Temperature, max
tokens and stop sequences come from ``llm_settings``, then the config, then
the node's default.

Tokens stream as ``stage.token`` events (listeners and the ``fm_stage_event`` hook) when someone listens
(``fm run`` shows them); otherwise the call is a plain request, which is
cheaper. Every call's usage goes to ``ctx.record_usage`` (summed per stage
and per run by the engine).

Structured output: the JSON Schema is put in the system prompt, the reply
is parsed (code fences and surrounding prose tolerated) and validated; if
it fails, ONE repair call shows the model its reply and the validation
error. A second failure is an error naming the stage (``strict``), or,
for the built-in shapes of critic/improver/..., the raw text is kept as
the earlier product did (``strict=False``) with a warning in the log.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from flowmason.kernel.errors import ConfigError, StageError
from flowmason.kernel.providers import Completion, CompletionRequest
from flowmason.kernel.settings import get_settings


@dataclass
class Answer:
    text: str
    data: Any
    completion: Completion
    provider: str
    valid: bool = True

    @property
    def tokens(self) -> int:
        return self.completion.input_tokens + self.completion.output_tokens


def _llm(ctx: Any) -> dict[str, Any]:
    return ctx.stage.llm_settings or {}


def choose(ctx: Any) -> tuple[str | None, str | None]:
    """(provider name, model) for this stage; None picks the default provider / the provider's default model."""
    stage = ctx.stage
    llm = _llm(ctx)
    meta = ctx.pipeline.metadata or {}
    settings = get_settings()
    env_provider = settings.provider or None
    stage_provider = stage.provider or llm.get("provider")
    provider = stage_provider or meta.get("default_provider") or env_provider
    explicit = stage.model or llm.get("model") or ctx.config.get("model")
    if explicit:
        return provider, str(explicit)
    meta_model = meta.get("default_model")
    if meta_model and provider == (meta.get("default_provider") or provider):
        return provider, str(meta_model)
    env_model = settings.model
    if env_model and provider == (env_provider or provider):
        return provider, env_model
    return provider, None


def _number(ctx: Any, key: str, alias: str | None, default: Any, cast: type) -> Any:
    llm = _llm(ctx)
    for source in (llm, ctx.config):
        for k in (key, alias):
            if k and source.get(k) is not None:
                try:
                    return cast(source[k])
                except (TypeError, ValueError):
                    raise ConfigError(f"{k} must be a number, got {source[k]!r}", stage=ctx.stage.id,
                                      field=f"llm_settings.{k}" if source is llm else f"config.{k}",
                                      hint=f"set {k} to a number") from None
    return default


def extract_json(text: str) -> tuple[Any, str | None]:
    """Parse a model's JSON reply; tolerate code fences and prose around one object or array."""
    t = text.strip()
    fence = re.search(r"```(?:json|JSON)?\s*(.*?)```", t, re.S)
    if fence:
        t = fence.group(1).strip()
    try:
        return json.loads(t), None
    except ValueError as exc:
        error = f"not valid JSON ({exc})"
    for opening, closing in (("{", "}"), ("[", "]")):
        i, j = t.find(opening), t.rfind(closing)
        if i != -1 and j > i:
            try:
                return json.loads(t[i:j + 1]), None
            except ValueError:
                continue
    return None, error


def check(data: Any, schema: dict[str, Any]) -> str | None:
    from flowmason.kernel.schemas import compile_schema

    try:
        return compile_schema(schema).first_error(data)
    except ValueError as exc:
        raise ConfigError(str(exc), field="config.output_schema", hint="fix the JSON Schema") from None


def schema_instruction(schema: dict[str, Any]) -> str:
    return ("Reply with only a JSON value (no prose, no code fences) that matches this JSON Schema:\n"
            + json.dumps(schema, indent=1, ensure_ascii=False))


async def _call(ctx: Any, provider: Any, request: CompletionRequest) -> Completion:
    stream = ctx.execution.observed and ctx.config.get("stream", True) is not False
    if not stream:
        return await provider.complete(request)
    completion: Completion | None = None
    async for item in provider.stream(request):
        if isinstance(item, Completion):
            completion = item
        else:
            ctx.emit("stage.token", item)
    if completion is None:  # a provider that forgot its closing Completion
        raise StageError("the provider's stream ended without a result", stage=ctx.stage.id, field="provider")
    return completion


async def ask(
    ctx: Any,
    prompt: str,
    *,
    system: str | None = None,
    temperature: float = 0.7,
    max_tokens: int = 4096,
    schema: dict[str, Any] | None = None,
    strict: bool = True,
) -> Answer:
    """One model call for this stage (two when the JSON needs its repair)."""
    _refuse_keys(ctx)
    name, model = choose(ctx)
    provider = ctx.provider(name)
    name = name or getattr(provider, "name", None) or "default"  # the default provider says who it is
    temp = _number(ctx, "temperature", None, temperature, float)
    limit = _number(ctx, "max_tokens", "max_output_tokens", max_tokens, int)
    stop = _llm(ctx).get("stop") or ctx.config.get("stop_sequences") or None
    if schema is not None:
        system = f"{system}\n\n{schema_instruction(schema)}" if system else schema_instruction(schema)
    request = CompletionRequest(
        prompt=prompt, system=system, model=model or provider.default_model, temperature=temp, max_tokens=limit,
        stop=list(stop) if stop else None, json_schema=schema, stage=ctx.stage.id, pipeline=ctx.pipeline.key,
    )
    completion = await _call(ctx, provider, request)
    _usage(ctx, name, completion)
    if schema is None:
        return Answer(completion.text, None, completion, name)
    data, error = extract_json(completion.text)
    if error is None:
        error = check(data, schema)
    if error is None:
        return Answer(completion.text, data, completion, name)
    ctx.log("warning", "the model's JSON did not match the schema; asking once for a repair", error=error)
    repair = CompletionRequest(
        prompt=prompt, system=system, model=request.model, temperature=temp, max_tokens=limit, stop=request.stop,
        json_schema=schema, stage=ctx.stage.id, pipeline=ctx.pipeline.key,
        messages=[
            {"role": "user", "content": prompt},
            {"role": "assistant", "content": completion.text or "(empty)"},
            {"role": "user", "content": f"Your reply was invalid: {error}. Reply again with only the corrected "
                                        "JSON value that matches the schema."},
        ],
    )
    second = await _call(ctx, provider, repair)
    _usage(ctx, name, second)
    data, error = extract_json(second.text)
    if error is None:
        error = check(data, schema)
    if error is None:
        return Answer(second.text, data, second, name)
    if strict:
        raise StageError(
            f"the model returned invalid JSON twice (after one repair attempt): {error}",
            stage=ctx.stage.id, pipeline=ctx.pipeline.key, field="config.output_schema",
            hint="make the prompt ask for the schema's fields explicitly, loosen output_schema, or use a stronger model",
        )
    ctx.log("warning", "the model's JSON was still invalid after the repair; keeping its text", error=error)
    return Answer(second.text, None, second, name, valid=False)


_KEY_FIELDS = ("api_key", "apikey", "api-key", "secret_key", "access_token")


def _refuse_keys(ctx: Any) -> None:
    """A key written into the pipeline file would end up in version control, runs and logs: refuse it."""
    for where, settings in (("llm_settings", _llm(ctx)), ("config", ctx.stage.config)):
        for k in settings:
            if str(k).lower() in _KEY_FIELDS:
                raise ConfigError(
                    f"an API key is written in the pipeline file ({where}.{k})", stage=ctx.stage.id,
                    pipeline=ctx.pipeline.key, field=f"{where}.{k}",
                    hint="remove it and set the provider's environment variable (e.g. ANTHROPIC_API_KEY) "
                         "or FM_SECRETS_FILE instead; keys never go in pipeline files",
                )


def _usage(ctx: Any, provider: str, completion: Completion) -> None:
    ctx.record_usage(input_tokens=completion.input_tokens, output_tokens=completion.output_tokens,
                     cost_usd=completion.cost_usd, calls=1, provider=provider, model=completion.model)
