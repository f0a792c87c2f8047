"""Harnesses shared by the test suite and the benchmarks; never shipped in the wheel.

Real servers on 127.0.0.1, each in its own module: ``llm_server`` (the
model APIs), ``dynamodb`` (moto's server mode, through the product's
``flowmason.functions.moto_server``), ``redis_server`` (a redis-server
process), ``auth_api`` (the HTTP API with authentication on, plus a real
SMTP server), ``saml_idp`` (an identity provider that signs and forges),
``net`` (free ports). ``fixtures`` holds the pytest fixtures conftests
import by name; it is the only module here that imports pytest, so
benchmarks can import the rest.

Tests import them as ``tests.support.X`` (pytest's importlib mode puts the
``tests`` package in ``sys.modules``); benchmarks put the repository root
on ``sys.path`` first, as ``bench/run.py`` does.
"""
