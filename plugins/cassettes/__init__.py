"""Record and replay of model calls: cassettes around every provider, through ``fm_wrap_provider``.

When a cassette is active (``FM_RECORD=path``, ``FM_REPLAY=path``, or
``use_cassette(...)`` for ``fm test``), every provider a run resolves is
wrapped in ``CassetteProvider``. A call is keyed by a hash of what decides
the answer (provider, model, system, messages, temperature, max tokens,
stop, schema: ``CompletionRequest.key``); the stage id is kept beside it so
parallel stages asking the same thing get their own recorded answers.
Replay never calls the wrapped provider, so it needs no key and no
network, and a call not in the cassette fails naming the stage and the
request hash. This was kernel code; it is a plugin because it is a
feature on a contract (the provider wrapper hook), like caching would be.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

from flowmason.kernel.errors import ConfigError
from flowmason.kernel.plugins import hookimpl
from flowmason.kernel.providers import Completion, CompletionRequest, ProviderError
from flowmason.kernel.settings import get_settings

__all__ = ["Cassette", "CassetteProvider", "active_cassette", "close_cassettes", "flush_cassettes", "open_cassette",
           "use_cassette"]

_cassette_var: contextvars.ContextVar["Cassette | None"] = contextvars.ContextVar("fm_cassette", default=None)
_open_cassettes: dict[tuple[str, str], "Cassette"] = {}
_open_lock = threading.Lock()


class Cassette:
    """A JSON file of model calls: ``{"version": 1, "interactions": [...]}``.

    Modes: ``record`` starts empty and saves every call; ``replay`` answers
    only from the file; ``update`` replays what is there and records what
    is missing. The file is rewritten atomically at most every half second
    while calls come in (a crashed run still leaves most of what it did;
    rewriting after each of 500 parallel calls would be quadratic), and
    ``flush()`` writes the rest: at the end of ``use_cassette``, of every
    run (the providers plugin's ``fm_run_finished``) and of the process.
    """

    def __init__(self, path: str | Path, mode: str = "replay") -> None:
        if mode not in ("record", "replay", "update"):
            raise ConfigError(f"unknown cassette mode '{mode}'", hint="use record, replay or update")
        self.path = Path(path)
        self.mode = mode
        self.interactions: list[dict[str, Any]] = []
        self._used: dict[str, int] = {}  # key -> answers handed out, for repeated identical calls
        self._lock = threading.Lock()
        self._dirty = False
        self._saved_at = 0.0
        if mode != "record":
            self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            if self.mode == "replay":
                raise ConfigError(
                    f"cassette not found: {self.path}", field="cassette",
                    hint="record it first (`fm run --record FILE` or `fm test --record`)",
                ) from None
            return
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read cassette {self.path}: {exc}", field="cassette",
                              hint="re-record the cassette") from None
        if not isinstance(data, dict) or not isinstance(data.get("interactions"), list):
            raise ConfigError(f"cassette {self.path} has no 'interactions' list", field="cassette",
                              hint="re-record the cassette")
        self.interactions = [i for i in data["interactions"] if isinstance(i, dict) and "key" in i]

    def find(self, key: str, stage: str | None) -> dict[str, Any] | None:
        """The recorded answer for ``key``: same stage first, then in recorded order; repeats reuse the last."""
        with self._lock:
            same = [i for i in self.interactions if i["key"] == key]
            if not same:
                return None
            mine = [i for i in same if i.get("stage") == stage] or same
            n = self._used.get(f"{stage}|{key}", 0)
            self._used[f"{stage}|{key}"] = n + 1
            return mine[min(n, len(mine) - 1)]

    def add(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self.interactions.append(entry)
            self._dirty = True
            if time.monotonic() - self._saved_at >= 0.5:
                self._save()

    def flush(self) -> None:
        with self._lock:
            if self._dirty:
                self._save()

    def _save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        doc = {"version": 1, "interactions": self.interactions}
        tmp.write_text(json.dumps(doc, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
        os.replace(tmp, self.path)
        self._dirty = False
        self._saved_at = time.monotonic()


def open_cassette(path: str | Path, mode: str) -> Cassette:
    """One Cassette per (file, mode) per process, so several runs share and extend it."""
    key = (str(Path(path).resolve()), mode)
    with _open_lock:
        cassette = _open_cassettes.get(key)
        if cassette is None:
            if not _open_cassettes:
                import atexit

                atexit.register(flush_cassettes)
            cassette = _open_cassettes[key] = Cassette(path, mode)
        return cassette


def flush_cassettes() -> None:
    """Write what the open cassettes recorded and has not been saved yet."""
    current = _cassette_var.get()
    for cassette in [*list(_open_cassettes.values()), *([current] if current is not None else [])]:
        cassette.flush()


def close_cassettes() -> None:
    """Forget opened cassettes (a new recording starts empty again)."""
    flush_cassettes()
    with _open_lock:
        _open_cassettes.clear()


@contextlib.contextmanager
def use_cassette(path: "str | Path | Cassette", mode: str = "replay") -> Iterator[Cassette]:
    """Record or replay the model calls of runs started inside this block (``fm test``).

    Pass a ``Cassette`` instead of a path to share one recording between several runs.
    """
    cassette = path if isinstance(path, Cassette) else Cassette(path, mode)
    token = _cassette_var.set(cassette)
    try:
        yield cassette
    finally:
        _cassette_var.reset(token)
        cassette.flush()


def active_cassette() -> Cassette | None:
    """The cassette for calls made now: ``use_cassette`` first, then FM_REPLAY / FM_RECORD."""
    current = _cassette_var.get()
    if current is not None:
        return current
    settings = get_settings()
    replay = settings.replay
    if replay:
        return open_cassette(replay, "replay")
    record = settings.record
    if record:
        return open_cassette(record, "record")
    return None


def _completion_from(entry: dict[str, Any]) -> Completion:
    resp = entry.get("response") or {}
    return Completion(
        text=resp.get("text", ""), model=resp.get("model") or "", input_tokens=int(resp.get("input_tokens") or 0),
        output_tokens=int(resp.get("output_tokens") or 0), cost_usd=float(resp.get("cost_usd") or 0.0),
        stop_reason=resp.get("stop_reason"),
    )


class CassetteProvider:
    """Wraps a provider: replays calls from a cassette and/or records them into it."""

    def __init__(self, inner: Any, cassette: Cassette, name: str) -> None:
        self.inner = inner
        self.cassette = cassette
        self.name = getattr(inner, "name", name)
        self.default_model = getattr(inner, "default_model", "")

    def __getattr__(self, item: str) -> Any:  # price tables, settings: whatever the inner provider offers
        return getattr(self.inner, item)

    def _lookup(self, request: CompletionRequest) -> tuple[str, dict[str, Any] | None]:
        key = request.key(self.name)
        entry = self.cassette.find(key, request.stage) if self.cassette.mode != "record" else None
        if entry is None and self.cassette.mode == "replay":
            raise ProviderError(
                f"model call not in cassette {self.cassette.path} (request {key}, provider '{self.name}', "
                f"model '{request.model}')",
                pipeline=request.pipeline, stage=request.stage, field="cassette",
                hint="the prompt or settings changed since recording: record the cassette again "
                     "(`fm run --record FILE` or `fm test --record`)",
            )
        return key, entry

    def _record(self, key: str, request: CompletionRequest, completion: Completion, chunks: list[str] | None) -> None:
        req = asdict(request)
        req.pop("stage", None)
        req.pop("pipeline", None)
        response: dict[str, Any] = {
            "text": completion.text, "model": completion.model, "input_tokens": completion.input_tokens,
            "output_tokens": completion.output_tokens, "cost_usd": completion.cost_usd,
            "stop_reason": completion.stop_reason,
        }
        if chunks is not None:
            response["chunks"] = chunks
        self.cassette.add({"key": key, "stage": request.stage, "provider": self.name, "request": req, "response": response})

    async def complete(self, request: CompletionRequest) -> Completion:
        key, entry = self._lookup(request)
        if entry is not None:
            return _completion_from(entry)
        completion = await self.inner.complete(request)
        self._record(key, request, completion, None)
        return completion

    async def stream(self, request: CompletionRequest) -> AsyncIterator[str | Completion]:
        key, entry = self._lookup(request)
        if entry is not None:
            completion = _completion_from(entry)
            for chunk in (entry.get("response") or {}).get("chunks") or [completion.text]:
                yield chunk
            yield completion
            return
        chunks: list[str] = []
        async for item in self.inner.stream(request):
            if isinstance(item, Completion):
                self._record(key, request, item, chunks)
            else:
                chunks.append(item)
            yield item


@hookimpl(wrapper=True)
def fm_wrap_provider(name, provider):
    inner = yield
    cassette = active_cassette()
    return CassetteProvider(inner, cassette, name) if cassette is not None else inner


@hookimpl
def fm_run_finished(run, pipeline):
    # a recording cassette saves in batches; the end of a run is a natural point to write the rest
    flush_cassettes()
