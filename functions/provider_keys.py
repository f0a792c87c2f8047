"""Provider keys from Secrets Manager or SSM, read once at the worker's cold start.

``FM_PROVIDER_KEYS`` names where they are: ``secretsmanager:SECRET_ID``
(a secret's name or ARN) or ``ssm:/PARAMETER/NAME`` (a SecureString,
decrypted). The value is a JSON object ``{"ANTHROPIC_API_KEY": "...",
...}``; each entry becomes an environment variable of the process, where
the providers look for their keys, unless the function's environment
already sets it. template.yaml fills the setting from its
``ProviderKeysSecretName``/``ProviderKeysParameterName`` parameters and
grants the read. A key that cannot be read stops the cold start with an
error naming the secret and the fix: a worker without its keys would fail
every model stage instead.
"""
from __future__ import annotations

import json
import os
import re
from typing import Any

from flowmason.kernel.errors import ConfigError

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def read(where: str, *, session: Any = None) -> dict[str, str]:
    """The keys stored at ``where`` (``secretsmanager:ID`` or ``ssm:/NAME``)."""
    import boto3
    from botocore.exceptions import BotoCoreError, ClientError

    kind, _, ref = where.partition(":")
    session = session or boto3.session.Session()
    try:
        if kind == "secretsmanager" and ref:
            text = session.client("secretsmanager").get_secret_value(SecretId=ref)["SecretString"]
        elif kind == "ssm" and ref.startswith("/"):
            text = session.client("ssm").get_parameter(Name=ref, WithDecryption=True)["Parameter"]["Value"]
        else:
            raise ConfigError(f"FM_PROVIDER_KEYS={where!r} names no secret", field="FM_PROVIDER_KEYS",
                              hint="write secretsmanager:SECRET_ID or ssm:/PARAMETER/NAME")
    except (ClientError, BotoCoreError) as exc:
        raise ConfigError(f"cannot read the provider keys from {where}: {exc}", field="FM_PROVIDER_KEYS",
                          hint="check that it exists and that the function's role may read it") from None
    try:
        keys = json.loads(text)
    except ValueError:
        keys = None
    from flowmason.kernel.settings import PREFIX

    if not isinstance(keys, dict) or not all(isinstance(v, str) and _NAME.match(k) and not k.startswith(PREFIX)
                                             for k, v in keys.items()):
        raise ConfigError(f"the provider keys at {where} are not a JSON object of NAME: \"value\"",
                          field="FM_PROVIDER_KEYS", hint='store {"ANTHROPIC_API_KEY": "sk-..."} (FM_* settings stay in the template)')
    return keys


def load(where: str | None = None, *, session: Any = None) -> list[str]:
    """Put the keys named by ``where`` (default: the FM_PROVIDER_KEYS setting) into the environment; returns their names."""
    if where is None:
        from flowmason.kernel.settings import get_settings

        where = get_settings().provider_keys
    if not where:
        return []
    keys = read(where, session=session)
    for name, value in keys.items():
        os.environ.setdefault(name, value)  # the function's own environment wins
    return sorted(keys)
