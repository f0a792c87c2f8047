"""Every ``FM_*`` environment variable, read in one place, typed, with its default and meaning.

``get_settings()`` returns one frozen ``Settings`` snapshot. Modules read
``get_settings().store`` instead of ``os.environ.get("FM_STORE")``; a test
in tests/kernel/test_settings.py refuses new direct reads. ``fm settings``
lists them all with their values (secrets masked) and where each came
from.

The snapshot is parsed once and reused while the ``FM_*`` part of the
environment stays the same; when it changes (``fm --store``, a test's
``monkeypatch.setenv``, an embedding program setting ``os.environ``
before a run) the next ``get_settings()`` parses again. Comparing costs
about 20 µs, and callers ask once per run or per provider, never per
stage, so the environment stays the source of truth without every caller
remembering to call ``reload_settings()``.

A malformed value (``FM_LLM_TIMEOUT_S=soon``) is a ``ConfigError`` naming
the variable and an example, raised when that setting is read: a bad
auth setting stops the HTTP API, not ``fm run``, and ``fm settings`` (which
never raises) still lists everything, the bad value with its error.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, fields
from typing import Any, Callable, Iterator, Mapping

from .errors import ConfigError

PREFIX = "FM_"
VAR_PREFIX = "FM_VAR_"  # user variables readable as {{env.FM_VAR_X}}: a family, not one setting


def _text(raw: str) -> str:
    return raw


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError("not a yes/no value")


def _int(raw: str) -> int:
    return int(raw.strip())


def _float(raw: str) -> float:
    return float(raw.strip())


def _names(raw: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in raw.split(",") if n.strip())


_EXAMPLES = {_flag: "1", _int: "10", _float: "2.5"}
_KINDS = {_text: "text", _flag: "yes/no value", _int: "whole number", _float: "number", _names: "comma-separated names"}


def setting(env: str, default: Any, doc: str, *, owner: str, parse: Callable[[str], Any] = _text,
            secret: bool = False, minimum: float | None = None, lenient: bool = False, server: str | None = None) -> Any:
    """A field of ``Settings``: the variable, its parser, its default and a one-line doc.

    ``secret`` masks the value in ``fm settings``; URLs have their password
    masked whatever the flag. ``lenient`` settings fall back to the default
    (with a warning) instead of failing: a debugging aid must not stop runs.
    ``server`` is the value a server process takes when the variable is
    unset (see ``use_server_defaults``).
    """
    return field(default=default, metadata={"env": env, "doc": doc, "owner": owner, "parse": parse, "secret": secret,
                                            "minimum": minimum, "lenient": lenient, "server": server})


class _Invalid:
    """A setting whose value did not parse: reading it raises the error (see ``Settings.__getattribute__``)."""

    __slots__ = ("error",)

    def __init__(self, error: ConfigError) -> None:
        self.error = error

    def __repr__(self) -> str:
        return f"<invalid: {self.error.message}>"


@dataclass(frozen=True)
class Settings:
    """One value per ``FM_*`` variable. Build with ``get_settings()`` or ``Settings.from_env(mapping)``."""

    def __getattribute__(self, name: str) -> Any:
        value = object.__getattribute__(self, name)
        if type(value) is _Invalid:
            raise value.error
        return value

    @property
    def errors(self) -> dict[str, ConfigError]:
        """Variable -> the error of its value, for the settings that did not parse."""
        return {f.metadata["env"]: v.error for f in _declared()
                if type(v := object.__getattribute__(self, f.name)) is _Invalid}

    # -- kernel --
    home: str | None = setting("FM_HOME", None, "data folder (default: the OS user-data folder + /flowmason)", owner="kernel")
    store: str | None = setting("FM_STORE", None, "store URL or SQLite path (default: flowmason.db in the data folder)", owner="kernel")
    blob_bucket: str | None = setting("FM_BLOB_BUCKET", None, "S3 bucket for values over DynamoDB's item limit (a dynamodb:// store; its URL's blob_bucket= wins)", owner="dynamodb_store")
    plugins: str | None = setting("FM_PLUGINS", None, "plugins to load: a,b (only), +x (add), -y (remove); default all", owner="kernel")
    trace_plugins: bool = setting("FM_TRACE_PLUGINS", False, "1 prints every plugin hook call to stderr", owner="kernel", parse=_flag)
    provider: str | None = setting("FM_PROVIDER", None, "LLM provider when neither stage nor pipeline names one (unset: anthropic)", owner="kernel")
    model: str | None = setting("FM_MODEL", None, "model for FM_PROVIDER when the stage names none", owner="ai_nodes")
    record: str | None = setting("FM_RECORD", None, "cassette file to record every model call into", owner="kernel")
    replay: str | None = setting("FM_REPLAY", None, "cassette file to answer model calls from", owner="kernel")
    expr_max_seconds: float = setting("FM_EXPR_MAX_SECONDS", 1.0, "longest one {{expression}} may run, seconds (then its stage fails)", owner="kernel", parse=_float, minimum=0.01)
    run_retention_days: float | None = setting("FM_RUN_RETENTION_DAYS", None, "finished runs expire this many days after they end (unset: kept until `fm runs prune`)", owner="kernel", parse=_float, minimum=0)
    run_retention_failed_days: float | None = setting("FM_RUN_RETENTION_FAILED_DAYS", None, "failed runs expire after this many days instead (unset: FM_RUN_RETENTION_DAYS)", owner="kernel", parse=_float, minimum=0)
    env_allowlist: tuple[str, ...] = setting("FM_ENV_ALLOWLIST", (), "environment names pipelines may read as {{env.NAME}} (FM_VAR_* always)", owner="kernel", parse=_names)
    # -- HTTP API (fm serve, the Lambda API) --
    max_body_bytes: int = setting("FM_MAX_BODY_BYTES", 1024 * 1024, "largest request body the API reads, else 413", owner="http_api", parse=_int, minimum=1)
    sse_max_seconds: float | None = setting("FM_SSE_MAX_SECONDS", None, "longest event stream (unset: 25 on Lambda, else 900)", owner="http_api", parse=_float, minimum=0)
    queue_url: str | None = setting("FM_QUEUE_URL", None, "SQS queue the API sends runs to (unset: runs execute in the API process)", owner="http_api")
    trusted_proxies: tuple[str, ...] = setting("FM_TRUSTED_PROXIES", (), "addresses or networks of reverse proxies whose X-Forwarded-For fm serve believes (unset: none; the client is the peer)", owner="http_api", parse=_names)
    header_timeout_s: float = setting("FM_HEADER_TIMEOUT_S", 10.0, "fm serve closes a connection whose request headers take longer, seconds", owner="http_api", parse=_float, minimum=0.01)
    body_timeout_s: float = setting("FM_BODY_TIMEOUT_S", 30.0, "a request body that takes longer to arrive gets 408, seconds", owner="http_api", parse=_float, minimum=0.01)
    # -- durable engine (worker Lambda, fm serve --aws-local) --
    fanout_min_items: int = setting("FM_FANOUT_MIN_ITEMS", 1000, "a foreach over at least this many items fans out into chunk jobs", owner="functions", parse=_int, minimum=1)
    fanout_chunk_size: int = setting("FM_FANOUT_CHUNK_SIZE", 100, "items per fan-out chunk job", owner="functions", parse=_int, minimum=1)
    deadline_margin_ms: float = setting("FM_DEADLINE_MARGIN_MS", 10000.0, "park a run this long before the Lambda deadline", owner="functions", parse=_float, minimum=0)
    max_continuations: int = setting("FM_MAX_CONTINUATIONS", 200, "a run continued more often than this fails", owner="durable", parse=_int, minimum=1)
    cancel_poll_s: float = setting("FM_CANCEL_POLL_S", 1.0, "how often a running job checks for cancellation, seconds", owner="durable", parse=_float, minimum=0.01)
    heartbeat_s: float = setting("FM_HEARTBEAT_S", 5.0, "how often a process renews the leases of the runs it runs, seconds", owner="durable", parse=_float, minimum=0.05)
    lease_s: float = setting("FM_LEASE_S", 30.0, "a run whose lease was not renewed this long has lost its process, seconds (at least twice FM_HEARTBEAT_S)", owner="durable", parse=_float, minimum=0.1)
    recovery_scan_s: float = setting("FM_RECOVERY_SCAN_S", 30.0, "how often fm serve looks for runs whose process died, seconds", owner="durable", parse=_float, minimum=0.05)
    recovery_grace_s: float | None = setting("FM_RECOVERY_GRACE_S", None, "a run without a lease is left alone this long after it started (unset: FM_LEASE_S)", owner="durable", parse=_float, minimum=0)
    max_recoveries: int = setting("FM_MAX_RECOVERIES", 5, "a run whose process died more often than this is failed", owner="durable", parse=_int, minimum=0)
    visibility_s: float = setting("FM_VISIBILITY_S", 120.0, "the worker keeps the SQS messages it holds invisible this long past its last heartbeat, so a crashed worker's message returns within it, seconds", owner="functions", parse=_float, minimum=1)
    provider_keys: str | None = setting("FM_PROVIDER_KEYS", None, "where the worker reads provider keys at cold start: secretsmanager:SECRET_ID or ssm:/PARAMETER (a JSON object NAME: value)", owner="functions")
    template: str | None = setting("FM_TEMPLATE", None, "SAM template fm serve --aws-local reads (default: template.yaml)", owner="functions")
    # -- auth --
    auth: bool = setting("FM_AUTH", False, "1 turns authentication on (else local single-user mode)", owner="auth", parse=_flag)
    auth_store: str | None = setting("FM_AUTH_STORE", None, "store URL for users, sessions and keys (default: the API's store)", owner="auth")
    jwt_algorithm: str = setting("FM_JWT_ALGORITHM", "EdDSA", "EdDSA, ES256, RS256 or HS256", owner="auth")
    jwt_issuer: str = setting("FM_JWT_ISSUER", "flowmason", "the iss claim of tokens", owner="auth")
    jwt_audience: str = setting("FM_JWT_AUDIENCE", "flowmason-api", "the aud claim of tokens", owner="auth")
    access_ttl: int = setting("FM_ACCESS_TTL", 3600, "access token lifetime, seconds", owner="auth", parse=_int, minimum=1)
    refresh_ttl: int = setting("FM_REFRESH_TTL", 30 * 24 * 3600, "refresh token lifetime, seconds", owner="auth", parse=_int, minimum=1)
    bcrypt_rounds: int = setting("FM_BCRYPT_ROUNDS", 12, "bcrypt cost (4-31)", owner="auth", parse=_int, minimum=4)
    password_min_length: int = setting("FM_PASSWORD_MIN_LENGTH", 10, "shortest password accepted", owner="auth", parse=_int, minimum=1)
    login_max_failures: int = setting("FM_LOGIN_MAX_FAILURES", 5, "failed logins of one account from one client before each further try waits (doubling)", owner="auth", parse=_int, minimum=1)
    login_lockout: int = setting("FM_LOGIN_LOCKOUT", 900, "longest wait between tries of one account from one client, seconds", owner="auth", parse=_int, minimum=1)
    signup: bool = setting("FM_AUTH_SIGNUP", False, "1 lets anyone register an account (else an admin invites users or runs fm auth create-user)", owner="auth", parse=_flag)
    kms_key_id: str | None = setting("FM_KMS_KEY_ID", None, "AWS KMS key (id, ARN or alias) that encrypts JWT signing keys at rest", owner="auth")
    key_file: str | None = setting("FM_KEY_FILE", None, "file holding the local key that encrypts JWT signing keys at rest when FM_KMS_KEY_ID is unset (default: signing-keys.key in the data folder)", owner="auth")
    mail: str = setting("FM_MAIL", "console", "console or smtp://user:password@host:port?starttls=1&from=addr", owner="auth")
    public_url: str = setting("FM_PUBLIC_URL", "http://127.0.0.1:8000", "base of links in emails", owner="auth")
    saml_config: str | None = setting("FM_SAML_CONFIG", None, "JSON file configuring SAML single sign-on (unset: SAML off)", owner="saml")
    # -- rate limits --
    ratelimit: str | None = setting("FM_RATELIMIT", None, "LIMIT/SECONDS per caller, e.g. 100/60 (unset: no limit)", owner="ratelimit")
    ratelimit_backend: str = setting("FM_RATELIMIT_BACKEND", "memory", "memory, redis, dynamodb, store or hybrid", owner="ratelimit")
    ratelimit_redis: str = setting("FM_RATELIMIT_REDIS", "redis://127.0.0.1:6379/0", "Redis URL for the redis and hybrid backends", owner="ratelimit")
    ratelimit_store: str | None = setting("FM_RATELIMIT_STORE", None, "store URL for the store/dynamodb backend (default: the API's store)", owner="ratelimit")
    # -- providers --
    prices: str | None = setting("FM_PRICES", None, 'price overrides: inline JSON {"model": [in, out]} per million tokens, or a JSON file', owner="providers")
    secrets_file: str | None = setting("FM_SECRETS_FILE", None, "JSON file of NAME: value for provider keys (read before the environment)", owner="providers")
    llm_max_retries: int = setting("FM_LLM_MAX_RETRIES", 2, "retries of a failed model call (0-10)", owner="providers", parse=_int, minimum=0)
    llm_retry_backoff_s: float = setting("FM_LLM_RETRY_BACKOFF_S", 0.5, "first retry delay, seconds (doubles)", owner="providers", parse=_float, minimum=0)
    llm_max_retry_wait_s: float = setting("FM_LLM_MAX_RETRY_WAIT_S", 60.0, "longest Retry-After honoured, seconds", owner="providers", parse=_float, minimum=0)
    llm_client_shards: int = setting("FM_LLM_CLIENT_SHARDS", 16, "HTTP clients per provider and key (1-256)", owner="providers", parse=_int, minimum=1)
    llm_timeout_s: float = setting("FM_LLM_TIMEOUT_S", 120.0, "timeout of one model call, seconds", owner="providers", parse=_float, minimum=0)
    llm_max_connections: int = setting("FM_LLM_MAX_CONNECTIONS", 1000, "open connections per provider", owner="providers", parse=_int, minimum=1)
    # -- operators, tracing, time travel --
    http_deny_private: bool = setting("FM_HTTP_DENY_PRIVATE", False, "1 makes http-request and webhooks refuse loopback, private, link-local/metadata and other non-public addresses (default: on under fm serve and the Lambda functions, off for fm run)", owner="operators", parse=_flag, server="1")
    http_allow: tuple[str, ...] = setting("FM_HTTP_ALLOW", (), "non-public targets allowed despite FM_HTTP_DENY_PRIVATE: CIDRs, addresses or host names, each with an optional :port (10.0.0.0/8,127.0.0.1:8080,search.internal)", owner="operators", parse=_names)
    tracing: str | None = setting("FM_TRACING", None, "console, otlp or 1 turns OpenTelemetry spans on; 0 off (default: on when OTEL_EXPORTER_OTLP_* is set)", owner="tracing")
    snapshot_retention_days: float = setting("FM_SNAPSHOT_RETENTION_DAYS", 14.0, "days time-travel snapshots are kept", owner="timetravel", parse=_float, minimum=0, lenient=True)
    # -- the FM_VAR_* family --
    template_vars: tuple[str, ...] = field(default=(), metadata={"env": VAR_PREFIX + "*", "owner": "kernel", "doc": "names of FM_VAR_* variables: readable as {{env.FM_VAR_X}}, masked in records"})

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "Settings":
        """Parse ``env`` (default ``os.environ``); a bad value raises its ``ConfigError`` when that setting is read."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in _declared():
            raw = env.get(f.metadata["env"])
            if raw is None or raw == "":
                continue
            try:
                values[f.name] = _parse(f, raw)
            except ConfigError as exc:
                values[f.name] = _Invalid(exc)
        values["template_vars"] = tuple(k for k in env if k.startswith(VAR_PREFIX))
        return cls(**values)



def _declared() -> Iterator[Any]:
    """The fields bound to one variable (all but the FM_VAR_* family)."""
    return (f for f in fields(Settings) if "parse" in f.metadata)


def _parse(f: Any, raw: str) -> Any:
    meta = f.metadata
    name, parse = meta["env"], meta["parse"]
    try:
        try:
            value = parse(raw)
        except ValueError:
            raise ValueError("") from None  # Python's own wording ("could not convert string...") says nothing more
        if meta["minimum"] is not None and value < meta["minimum"]:
            raise ValueError(f"below {meta['minimum']:g}")
    except ValueError as exc:
        what = f"is {exc}" if str(exc) else f"is not a {_KINDS[parse]}"
        if meta["lenient"]:
            import logging

            logging.getLogger("flowmason.settings").warning("%s=%r %s; using %r", name, raw, what, f.default)
            return f.default
        example = f.default if f.default not in (None, (), False) else _EXAMPLES.get(parse, "...")
        raise ConfigError(f"{name}={raw!r} {what}", field=name,
                          hint=f"set {name} like {name}={example}, or unset it for the default") from None
    return value


_lock = threading.Lock()
_cached: tuple[tuple[tuple[str, str], ...], Settings] | None = None
_option_sources: dict[str, tuple[str, str]] = {}  # variable -> (option, the value it set)


def _fingerprint() -> tuple[tuple[str, str], ...]:
    return tuple(item for item in os.environ.items() if item[0].startswith(PREFIX))


def get_settings() -> Settings:
    """The settings of the environment as it is now; parsed again only when an ``FM_*`` variable changed."""
    global _cached
    stamp = _fingerprint()
    cached = _cached
    if cached is not None and cached[0] == stamp:
        return cached[1]
    with _lock:
        parsed = Settings.from_env(dict(stamp))
        _cached = (stamp, parsed)
    return parsed


def reload_settings() -> Settings:
    """Forget the snapshot and parse the environment again (tests; after changing ``os.environ``)."""
    global _cached
    with _lock:
        _cached = None
    return get_settings()


def set_from_option(env_name: str, value: str, option: str) -> None:
    """A command-line option (``fm --store``) sets a variable: children inherit it; ``fm settings`` names the option."""
    os.environ[env_name] = value
    _option_sources[env_name] = (option, value)


def use_server_defaults(entry: str) -> dict[str, str]:
    """Called first by the server entry points (``fm serve``, the Lambda API and worker): settings declared
    with a ``server`` value take it unless the variable is set, so a server is closed where a laptop is open.

    The value goes into ``os.environ`` (child processes inherit it) and ``fm
    settings`` names its source; returns what was set.
    """
    applied: dict[str, str] = {}
    for f in _declared():
        value, name = f.metadata["server"], f.metadata["env"]
        if value is not None and not os.environ.get(name):
            os.environ[name] = value
            _option_sources[name] = (f"server default ({entry})", value)
            applied[name] = value
    return applied


def forget_server_defaults() -> None:
    """Undo ``use_server_defaults`` (tests: one server's defaults must not leak into the next test)."""
    for name, (label, value) in list(_option_sources.items()):
        if label.startswith("server default") and os.environ.get(name) == value:
            del os.environ[name]
            del _option_sources[name]


def source(env_name: str, env: Mapping[str, str] | None = None) -> str:
    """Where a variable's value comes from: the option that set it, the environment, or the default."""
    env = os.environ if env is None else env
    raw = env.get(env_name) or None
    option = _option_sources.get(env_name)
    if option is not None and raw == option[1]:
        return option[0] if option[0].startswith("server default") else f"option {option[0]}"
    return "environment" if raw else "default"


def _mask(value: Any, secret: bool) -> str:
    if value is None:
        return ""
    if isinstance(value, tuple):
        return ",".join(value)
    text = str(value)
    if secret:
        return "***"
    if "://" in text and "@" in text.split("://", 1)[1]:
        from urllib.parse import urlsplit

        parts = urlsplit(text)
        if parts.password:
            return text.replace(f":{parts.password}@", ":***@", 1)
    return text


def describe(env: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Every setting for ``fm settings``: variable, value (secrets masked), source, owner, doc, error."""
    env = os.environ if env is None else env
    rows = []
    for f in _declared():
        meta = f.metadata
        name = meta["env"]
        raw = env.get(name) or None
        row = {"name": name, "owner": meta["owner"], "doc": meta["doc"], "error": None, "source": source(name, env)}
        value = f.default
        if raw is not None:
            try:
                value = _parse(f, raw)
            except ConfigError as exc:
                value, row["error"] = raw, f"{exc.message} ({exc.hint})"
        row["value"] = _mask(value, meta["secret"])
        rows.append(row)
    for name in sorted(k for k in env if k.startswith(VAR_PREFIX)):
        rows.append({"name": name, "owner": "pipelines", "doc": "a user variable, readable as {{env.%s}}" % name,
                     "error": None, "source": "environment", "value": "***"})  # user variables are often tokens
    return rows
