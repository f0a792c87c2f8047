"""``fm serve``: the HTTP API under uvicorn on this machine.

Default: the embedded store (``--store`` / ``FM_STORE``) and runs executed
in the server process. ``--aws-local``: start the local AWS stack (moto on
127.0.0.1 with the table and queues of template.yaml, and a poller that
feeds the worker Lambda handler), and serve the API exactly as the Lambda
API runs it: DynamoDB store, runs queued on SQS. Either way the server
defaults apply (``use_server_defaults``: pipelines cannot reach the
server's loopback or private network unless ``FM_HTTP_ALLOW`` says so).

A ``--host`` other than loopback needs authentication on (``FM_AUTH=1``)
or ``--insecure``; proxy trust and timeouts are in ``listen.py``.
"""
from __future__ import annotations

from typing import Any


def add_serve_command(app: Any) -> None:
    import typer

    @app.command("serve")
    def serve(
        host: str = typer.Option("127.0.0.1", "--host", help="Interface to bind (127.0.0.1 keeps it private)."),
        port: int = typer.Option(8000, "--port", help="Port to listen on (0 picks a free one)."),
        store: str = typer.Option(None, "--store", help="Store URL or SQLite path (default: FM_STORE or the user data folder)."),
        aws_local: bool = typer.Option(False, "--aws-local", help="Run against the local AWS stack (moto: DynamoDB + SQS + worker)."),
        template: str = typer.Option(None, "--template", help="template.yaml for --aws-local (default: the repository's)."),
        insecure: bool = typer.Option(False, "--insecure", help="Allow a --host other than loopback with authentication off."),
    ) -> None:
        """Serve the HTTP API (OpenAPI at /openapi.json)."""
        from flowmason.kernel.errors import require_extra

        require_extra(("starlette", "uvicorn"), "server", "`fm serve`")  # the message names the extra, not a module
        import uvicorn

        from flowmason.kernel.plugins import get_registry
        from flowmason.kernel.settings import get_settings, use_server_defaults
        from flowmason.kernel.templating import prepare_off_loop

        from .app import create_app
        from .listen import check_bind, uvicorn_options
        from .services import Services

        use_server_defaults("fm serve")  # closed by default (FM_HTTP_DENY_PRIVATE...) before anything reads settings
        check_bind(host, authenticated=bool(get_registry().authenticators), insecure=insecure)
        if insecure and not get_registry().authenticators:
            typer.echo(f"warning: serving on {host} with authentication off (--insecure): every caller is the owner",
                       err=True)
        prepare_off_loop()  # slow expressions run in their own process; starting it later would stall a request

        stack = None
        if aws_local:
            from flowmason.functions.local_stack import LocalStack

            stack = LocalStack(template=template)
            stack.start()
            services = stack.api_services()
            typer.echo(f"local AWS stack on {stack.endpoint} (table {stack.table}, blob bucket {stack.bucket}, "
                       f"queue {stack.queue_url})")
        else:
            services = Services.local(store)
        try:
            uvicorn.run(create_app(services), host=host, port=port, log_level="info", **uvicorn_options(get_settings()))
        finally:
            if stack is not None:
                stack.stop()
