"""The local model server fixtures, shared with the providers suite."""
from tests.plugins.providers.conftest import KEY, llm_env, llm_server, retry_delays  # noqa: F401
