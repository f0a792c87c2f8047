"""What every built-in provider shares: settings, keys, retries, errors, prices, HTTP clients.

Settings come from the factory's ``settings`` dict (embedding code) and
then from the environment; never from the pipeline file. Keys are read at
call time from ``settings["api_key"]``, then from a secrets file named by
``FM_SECRETS_FILE`` (a JSON object of variable name -> value), then from the
environment variable the provider names (``ANTHROPIC_API_KEY``, ...). They
never appear in errors, logs or cassettes.

Retries are ours, not an SDK's, so every provider behaves the same and the
bound is explicit: at most ``max_retries`` more attempts
(``FM_LLM_MAX_RETRIES``, default 2) on connection failures, time-outs, 408,
409, 429 and 5xx (529 "overloaded" included). A ``retry-after`` /
``retry-after-ms`` header is honoured; if the server asks for more than
``max_retry_wait_s`` (default 60 s) we fail now with a clear message rather
than hang. A stream is retried only before its first token.

HTTP clients are shared per event loop and per (base URL, key, limits):
runs in one process reuse connections, and a client never crosses event
loops (``asyncio.run`` per test or per CLI call). The connection limit
(``FM_LLM_MAX_CONNECTIONS``, default 1000) is split over several small
pools (``FM_LLM_CLIENT_SHARDS``, default 16) used in turn; see
``shared_client`` for why (bench/llm.py measures it).
"""
from __future__ import annotations

import asyncio
import json
import os
import random
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, TypeVar

from flowmason.kernel.errors import ConfigError
from flowmason.kernel.providers import CompletionRequest, ProviderError
from flowmason.kernel.settings import get_settings

T = TypeVar("T")

# the retry pause; a module attribute so tests can see the delays chosen without waiting them out
_sleep = asyncio.sleep

# USD per million tokens (input, output), matched by longest model-name prefix. Estimates for
# budgeting, not invoices: override with settings["prices"] or FM_PRICES (JSON text or a file path).
PRICES: dict[str, tuple[float, float]] = {
    "claude-opus-4-5": (5.0, 25.0),
    "claude-opus-4-6": (5.0, 25.0),
    "claude-opus-4-7": (5.0, 25.0),
    "claude-opus-4-8": (5.0, 25.0),
    "claude-opus-4": (15.0, 75.0),
    "claude-opus-5": (5.0, 25.0),
    "claude-sonnet": (3.0, 15.0),
    "claude-3-7-sonnet": (3.0, 15.0),
    "claude-3-5-sonnet": (3.0, 15.0),
    "claude-haiku": (1.0, 5.0),
    "claude-3-5-haiku": (0.8, 4.0),
    "claude-3-haiku": (0.25, 1.25),
    "gpt-4o-mini": (0.15, 0.6),
    "gpt-4o": (2.5, 10.0),
    "gpt-4.1-nano": (0.1, 0.4),
    "gpt-4.1-mini": (0.4, 1.6),
    "gpt-4.1": (2.0, 8.0),
}


def setting(settings: dict[str, Any], key: str, env: str | None, default: Any) -> Any:
    """``settings[key]``, else the provider's own variable ``env`` (``OPENAI_BASE_URL``...), else ``default``.

    FlowMason's ``FM_*`` variables come through ``fm_setting`` (kernel/settings.py reads them).
    """
    value = settings.get(key)
    if value is None and env:
        value = os.environ.get(env) or None
    return default if value is None else value


def fm_setting(settings: dict[str, Any], key: str, attr: str) -> Any:
    """``settings[key]``, else the ``FM_*`` setting ``attr`` of ``flowmason.kernel.settings``."""
    value = settings.get(key)
    return getattr(get_settings(), attr) if value is None else value


def is_loopback(url: str | None) -> bool:
    """True when ``url`` names this machine (127.0.0.0/8, ::1, localhost): a model served locally."""
    import ipaddress
    from urllib.parse import urlsplit

    if not url:
        return False
    host = urlsplit(url if "://" in url else f"http://{url}").hostname or ""
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_prices(settings: dict[str, Any], *, local: bool = False) -> dict[str, tuple[float, float]]:
    """The price table with overrides: {"model-prefix": [input, output]} or {"m": {"input":..,"output":..}}.

    ``local`` (a self-hosted server: Ollama, llama.cpp, any endpoint on
    loopback) starts from an empty table, so its calls cost 0 unless
    FM_PRICES or the settings price its models: a local model named
    ``gpt-4o-mini`` is not billed as the hosted one.
    """
    table = {} if local else dict(PRICES)
    extra = settings.get("prices")
    raw = get_settings().prices
    if extra is None and raw:
        text = raw
        if not raw.lstrip().startswith("{"):
            try:
                text = Path(raw).read_text(encoding="utf-8")
            except OSError as exc:
                raise ConfigError(f"FM_PRICES names a file that cannot be read: {exc.strerror}", field="FM_PRICES",
                                  hint="give inline JSON or a readable JSON file") from None
        try:
            extra = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"FM_PRICES is not valid JSON: {exc.msg}", field="FM_PRICES",
                              hint='e.g. FM_PRICES=\'{"my-model": [1.0, 2.0]}\'') from None
    for model, price in (extra or {}).items():
        if isinstance(price, dict):
            table[model] = (float(price.get("input", 0)), float(price.get("output", 0)))
        else:
            table[model] = (float(price[0]), float(price[1]))
    return table


def cost_usd(prices: dict[str, tuple[float, float]], model: str, input_tokens: int, output_tokens: int) -> float:
    best = ""
    for prefix in prices:
        if model.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    if not best:
        return 0.0
    pin, pout = prices[best]
    return round((input_tokens * pin + output_tokens * pout) / 1_000_000, 8)


_secrets_cache: dict[tuple[str, float], dict[str, Any]] = {}


def _secrets_file() -> dict[str, Any]:
    """The JSON object in FM_SECRETS_FILE, read again only when the file changes (keys are read per call)."""
    path = get_settings().secrets_file
    if not path:
        return {}
    try:
        stamp = (path, os.stat(path).st_mtime)
        cached = _secrets_cache.get(stamp)
        if cached is not None:
            return cached
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        # the message never quotes the file's content
        raise ConfigError(f"cannot read the secrets file named by FM_SECRETS_FILE: {type(exc).__name__}",
                          field="FM_SECRETS_FILE", hint="point FM_SECRETS_FILE at a JSON object of NAME: value") from None
    _secrets_cache.clear()
    _secrets_cache[stamp] = data if isinstance(data, dict) else {}
    return _secrets_cache[stamp]


def api_key(settings: dict[str, Any], env_var: str, provider: str, request: CompletionRequest | None,
            required: bool = True) -> str | None:
    """The key for this call, or a clear error naming the stage and the variable to set."""
    key = settings.get("api_key") or _secrets_file().get(env_var) or os.environ.get(env_var)
    if not key and required:
        raise ConfigError(
            f"no API key for provider '{provider}'",
            stage=request.stage if request else None, pipeline=request.pipeline if request else None,
            field="provider",
            hint=f"set the environment variable {env_var} (or put it in the JSON file named by FM_SECRETS_FILE); "
                 "keys never go in the pipeline file",
        )
    return key or None


@dataclass
class RetryPolicy:
    max_retries: int = 2
    backoff_s: float = 0.5
    max_backoff_s: float = 8.0
    max_wait_s: float = 60.0

    @classmethod
    def from_settings(cls, settings: dict[str, Any]) -> "RetryPolicy":
        return cls(
            max_retries=max(0, min(int(fm_setting(settings, "max_retries", "llm_max_retries")), 10)),
            backoff_s=float(fm_setting(settings, "retry_backoff_s", "llm_retry_backoff_s")),
            max_wait_s=float(fm_setting(settings, "max_retry_wait_s", "llm_max_retry_wait_s")),
        )


class CallFailed(Exception):
    """One failed attempt, in provider-neutral terms; ``retry()`` decides what happens next."""

    def __init__(self, kind: str, message: str, *, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.kind = kind  # "connect" | "timeout" | "status" | "malformed"
        self.message = message
        self.status = status
        self.retry_after = retry_after

    @property
    def retryable(self) -> bool:
        if self.kind in ("connect", "timeout"):
            return True
        if self.kind == "status" and self.status is not None:
            return self.status in (408, 409, 429) or self.status >= 500
        return False


def retry_after_seconds(headers: Any) -> float | None:
    """``retry-after-ms`` (Anthropic, OpenAI) or ``retry-after`` in seconds; dates are not worth it here."""
    if headers is None:
        return None
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        raw = headers.get(name)
        if raw:
            try:
                return max(0.0, float(raw) * scale)
            except ValueError:
                continue
    return None


def provider_error(failure: CallFailed, provider: str, request: CompletionRequest, url: str, key_env: str | None,
                   attempts: int) -> ProviderError:
    """Turn the last failed attempt into the error the user sees."""
    where = dict(stage=request.stage, pipeline=request.pipeline, field="provider")
    tries = f" after {attempts} attempts" if attempts > 1 else ""
    status = failure.status
    if failure.kind == "connect":
        return ProviderError(f"provider '{provider}' is not reachable at {url}{tries}: {failure.message}", **where,
                             hint="start the model server or fix its address (see the provider's *_BASE_URL / OLLAMA_HOST setting)")
    if failure.kind == "timeout":
        return ProviderError(f"provider '{provider}' did not answer in time{tries}", **where,
                             hint="raise FM_LLM_TIMEOUT_S, lower max_tokens, or check the model server")
    if failure.kind == "malformed":
        return ProviderError(f"provider '{provider}' answered with a malformed body: {failure.message}", **where,
                             hint="check that the base URL points at a server speaking this provider's API")
    if status in (401, 403):
        return ProviderError(f"provider '{provider}' rejected the API key (HTTP {status})", **where,
                             hint=f"check {key_env}" if key_env else "check the server's authentication")
    if status == 404:
        return ProviderError(f"provider '{provider}' does not know model '{request.model}' (HTTP 404): {failure.message}",
                             stage=request.stage, pipeline=request.pipeline, field="model",
                             hint="set the stage's model (or FM_MODEL / the pipeline's metadata.default_model) to one the provider serves")
    if status == 429:
        return ProviderError(f"provider '{provider}' is rate limiting{tries}: {failure.message}", **where,
                             hint="retry later, lower the pipeline's concurrency, or raise FM_LLM_MAX_RETRIES")
    if status is not None and status >= 500:
        return ProviderError(f"provider '{provider}' failed with HTTP {status}{tries}: {failure.message}", **where,
                             hint="the model server is down or overloaded; retry later")
    return ProviderError(f"provider '{provider}' refused the request (HTTP {status}): {failure.message}", **where,
                         hint="check the stage's model, max_tokens and temperature")


async def with_retries(attempt: Callable[[], Awaitable[T]], policy: RetryPolicy,
                       fail: Callable[[CallFailed, int], ProviderError]) -> T:
    """Call ``attempt`` until it succeeds, a failure is final, or the retries are spent."""
    attempts = 0
    while True:
        attempts += 1
        try:
            return await attempt()
        except CallFailed as failure:
            if not failure.retryable or attempts > policy.max_retries:
                raise fail(failure, attempts) from None
            delay = failure.retry_after
            if delay is None:
                delay = min(policy.backoff_s * 2 ** (attempts - 1), policy.max_backoff_s) * (0.75 + random.random() / 4)
            elif delay > policy.max_wait_s:
                err = fail(failure, attempts)
                err.message += f" (the server asks to wait {delay:.0f} s, more than max_retry_wait_s={policy.max_wait_s:.0f})"
                raise err from None
            await _sleep(delay)


# -- shared HTTP clients (httpx imported lazily: it is not needed to load the plugin) --

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple, Any]]" = weakref.WeakKeyDictionary()


def shared_client(key: tuple, make: Callable[[], Any], shards: int = 1) -> Any:
    """A client for ``key`` in the running event loop, made on first use there.

    With ``shards`` > 1 there are that many clients, handed out in turn:
    httpcore's pool does bookkeeping over all of its connections on every
    request and response, so one pool of 1,000 connections slows down
    quadratically under a wide fan-out; several small pools do not.
    """
    loop = asyncio.get_running_loop()
    per_loop = _clients.get(loop)
    if per_loop is None:
        per_loop = _clients[loop] = {}
    entry = per_loop.get(key)
    if entry is None:
        entry = per_loop[key] = [[make() for _ in range(max(1, shards))], 0]
    clients, turn = entry
    entry[1] = (turn + 1) % len(clients)
    return clients[turn]


def client_shards(settings: dict[str, Any]) -> int:
    return max(1, min(int(fm_setting(settings, "client_shards", "llm_client_shards")), 256))


class HttpProvider:
    """Base for the httpx providers (OpenAI-compatible, llama.cpp, Ollama)."""

    name = "http"
    default_model = ""
    base_url_env: str | None = None
    default_base_url = ""
    key_env: str | None = None
    key_required = False
    self_hosted = False  # a server people run themselves (Ollama, llama.cpp): no per-token price wherever it is

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings
        self.base_url = str(setting(settings, "base_url", self.base_url_env, self.default_base_url)).rstrip("/")
        self.default_model = str(setting(settings, "default_model", None, self.default_model))
        self.timeout_s = float(fm_setting(settings, "timeout_s", "llm_timeout_s"))
        self.max_connections = int(fm_setting(settings, "max_connections", "llm_max_connections"))
        self.shards = client_shards(settings)
        self.retry = RetryPolicy.from_settings(settings)
        self.prices = load_prices(settings, local=self.self_hosted or is_loopback(self.base_url))

    def client(self, key: str | None) -> Any:
        def make() -> Any:
            import httpx

            headers = {"authorization": f"Bearer {key}"} if key else {}
            per_shard = max(1, self.max_connections // self.shards)
            return httpx.AsyncClient(
                base_url=self.base_url, headers=headers,
                timeout=httpx.Timeout(self.timeout_s, connect=min(self.timeout_s, 10.0)),
                limits=httpx.Limits(max_connections=per_shard, max_keepalive_connections=per_shard),
            )

        return shared_client(("httpx", self.base_url, key, self.timeout_s, self.max_connections), make, self.shards)

    def key(self, request: CompletionRequest) -> str | None:
        if not self.key_env:
            return self.settings.get("api_key")
        return api_key(self.settings, self.key_env, self.name, request, required=self.key_required)

    def fail(self, request: CompletionRequest) -> Callable[[CallFailed, int], ProviderError]:
        return lambda failure, attempts: provider_error(failure, self.name, request, self.base_url, self.key_env, attempts)

    def model_for(self, request: CompletionRequest) -> str:
        model = request.model or self.default_model
        if not model:
            raise ConfigError(
                f"no model chosen for provider '{self.name}'", stage=request.stage, pipeline=request.pipeline, field="model",
                hint="set the stage's model, the pipeline's metadata.default_model, or FM_MODEL",
            )
        return model

    async def post(self, path: str, body: dict[str, Any], request: CompletionRequest) -> dict[str, Any]:
        """POST JSON and return the decoded JSON answer, as one attempt (raises CallFailed)."""
        import httpx

        client = self.client(self.key(request))
        try:
            resp = await client.post(path, json=body)
        except httpx.TimeoutException as exc:
            raise CallFailed("timeout", type(exc).__name__) from None
        except httpx.TransportError as exc:
            raise CallFailed("connect", str(exc) or type(exc).__name__) from None
        if resp.status_code >= 400:
            raise CallFailed("status", _error_text(resp.text), status=resp.status_code,
                             retry_after=retry_after_seconds(resp.headers))
        try:
            data = resp.json()
        except ValueError:
            raise CallFailed("malformed", f"not JSON: {resp.text[:120]!r}") from None
        if not isinstance(data, dict):
            raise CallFailed("malformed", f"expected a JSON object, got {type(data).__name__}")
        return data

    async def open_stream(self, path: str, body: dict[str, Any], request: CompletionRequest) -> Any:
        """Start a streaming POST; returns the open response (caller closes it). One attempt."""
        import httpx

        client = self.client(self.key(request))
        req = client.build_request("POST", path, json=body)
        try:
            resp = await client.send(req, stream=True)
        except httpx.TimeoutException as exc:
            raise CallFailed("timeout", type(exc).__name__) from None
        except httpx.TransportError as exc:
            raise CallFailed("connect", str(exc) or type(exc).__name__) from None
        if resp.status_code >= 400:
            text = (await resp.aread()).decode("utf-8", "replace")
            await resp.aclose()
            raise CallFailed("status", _error_text(text), status=resp.status_code,
                             retry_after=retry_after_seconds(resp.headers))
        return resp


def _error_text(text: str) -> str:
    """The server's own error message, short (bodies are JSON in all these APIs, but not always)."""
    try:
        data = json.loads(text)
    except ValueError:
        return text.strip()[:200] or "no details"
    if isinstance(data, dict):
        err = data.get("error", data)
        if isinstance(err, dict):
            return str(err.get("message") or err.get("type") or err)[:200]
        return str(err)[:200]
    return text[:200]
