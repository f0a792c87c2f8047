"""The optional extras of the ``flowmason`` distribution: what each unlocks and which imports need it.

One table feeds ``fm --help`` (the extras list at the bottom), the README's
table, and the CLI's answer to a missing optional dependency: an
``ImportError`` of ``bcrypt`` becomes "needs the auth extra (fix: pip
install 'flowmason[auth]')" instead of a traceback. A test compares the
table with pyproject.toml, so an extra added there and not here fails.
"""
from __future__ import annotations

from typing import NamedTuple


class Extra(NamedTuple):
    name: str
    unlocks: str
    modules: tuple[str, ...]  # top-level import names that come with it


EXTRAS: tuple[Extra, ...] = (
    Extra("anthropic", "the anthropic provider (the default when FM_PROVIDER is unset)", ("anthropic",)),
    Extra("server", "fm serve: the HTTP API and the run pages, locally", ("starlette", "uvicorn")),
    Extra("auth", "FM_AUTH=1 logins, API keys and fm auth (JWT, bcrypt)", ("jwt", "bcrypt", "cryptography")),
    Extra("saml", "SAML single sign-on (FM_SAML_CONFIG)", ("signxml", "lxml")),
    Extra("aws", "the DynamoDB store and the Lambda handlers (API, worker)", ("boto3", "botocore", "mangum", "aws_lambda_powertools", "dynamodb_json")),
    Extra("aws-local", "fm serve --aws-local: the AWS stack on 127.0.0.1 (moto)", ("moto", "cfnlint")),
    Extra("redis", "the redis and hybrid rate limiters (FM_RATELIMIT_BACKEND)", ("redis",)),
    Extra("otel", "OpenTelemetry spans exported over OTLP (FM_TRACING)", ("opentelemetry",)),
    Extra("k8s", "the Kubernetes operator's dependencies", ("kopf", "kubernetes")),
    Extra("docs", "the interactive API docs page at /docs (Swagger UI served locally, no CDN)", ("swagger_ui",)),
    Extra("nlp", "reserved (installs nothing yet)", ()),
    Extra("dev", "the test tool chain (pytest, moto, playwright, ...)", ("pytest", "playwright", "aiosmtpd")),
    Extra("all", "anthropic, aws, server, docs, saml, auth, redis and dev together", ()),
)


def extra_for_module(module: str | None) -> Extra | None:
    """The extra that installs the top-level import ``module`` (``"jwt.algorithms"`` -> auth), or None."""
    if not module:
        return None
    top = module.split(".", 1)[0]
    for extra in EXTRAS:
        if top in extra.modules:
            return extra
    return None


def install_hint(extra: Extra) -> str:
    return f"pip install 'flowmason[{extra.name}]'"


def help_text() -> str:
    """The extras as lines for ``fm --help``."""
    width = max(len(e.name) for e in EXTRAS)
    return "\n".join(f"{e.name:<{width}}  {e.unlocks}" for e in EXTRAS)
