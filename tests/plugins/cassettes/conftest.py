"""The local model-API server fixtures of the providers' tests: cassettes record what those providers answer."""
from tests.plugins.providers.conftest import llm_env, llm_server, retry_delays  # noqa: F401 - pytest fixtures
