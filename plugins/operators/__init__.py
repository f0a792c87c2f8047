"""The core operators: deterministic components every pipeline can use without an API key.

http-request, json-transform, filter, loop, schema-validate, variable-set,
variable-get, logger, output-router and error-router carry the earlier
FlowMason product's names, config keys and output fields, so its
``.pipeline.json`` files run unchanged; merge, text-template and delay are
small additions. Each has a ``config_schema`` so ``fm validate`` checks
static configs, and checks its rendered config again at run time (values
from templates), naming the stage and ``config.<key>`` on error.

Modules: ``http`` (httpx, imported on first use), ``data`` (reshaping and
checks), ``state`` (run variables, logging, delay), ``delivery``
(webhook fan-out), ``_common`` (shared checks and helpers).
"""
from __future__ import annotations

from flowmason.kernel.plugins import hookimpl

from . import data, delivery, http, state

COMPONENTS = (http.http_request, *data.COMPONENTS, *state.COMPONENTS, *delivery.COMPONENTS)


@hookimpl
def fm_register_components(register):
    for comp in COMPONENTS:
        register(comp)
