"""`fm runs resume ID`: finish a recorded run whose process died, from its checkpoint; stale runs in `fm runs`.

A run is resumable when its record is still ``pending`` or ``running`` and
no live process holds its lease (the durable engine's lease: it expired,
or its holder was a process of this machine that is gone). Finished
stages are not run again; the stage that was in flight runs again.
"""
from __future__ import annotations

import asyncio
import signal
from typing import Any

import typer

from flowmason.kernel.errors import ExitCode, FlowMasonError


def _open() -> Any:
    from flowmason.kernel.runs import RunRepository
    from flowmason.kernel.storage import open_store

    return RunRepository(open_store())


class _NoQueue:
    """Resuming in this process sends no messages (no fan-out, no deadline); a send would be a bug."""

    def send(self, body: dict[str, Any], *, delay_s: int = 0) -> None:
        raise FlowMasonError("resuming in this process cannot send queue messages", field="run_id")

    def send_many(self, bodies: list[dict[str, Any]]) -> None:
        self.send({})


def runs_resume(
    run_id: str = typer.Argument(..., help="Run id (or a unique prefix)."),
    force: bool = typer.Option(False, "--force", help="Take the run even if a live process holds its lease."),
    as_json: bool = typer.Option(False, "--json", help="Print the whole run record as JSON, not just the output."),
) -> None:
    """Resume a run whose process died: finished stages are kept, the rest run here."""
    from flowmason.kernel.model import RunStatus
    from flowmason.kernel.runs import DEFAULT_ORG
    from flowmason.plugins.durable import TERMINAL, Jobs, holder_alive, lease_holder

    from .commands import _dumps, _err, _out

    repo = _open()
    run = repo.find_run(run_id)
    if run.status in TERMINAL:
        raise FlowMasonError(f"run {run.id} is already {run.status.value}; there is nothing to resume",
                             field="run_id", hint="`fm run PIPELINE` starts a new run")
    info = lease_holder(repo.store, repo.partition(run.id))
    live = info is not None and holder_alive(info)
    if live and not force:
        raise FlowMasonError(
            f"run {run.id} is still running: {info.get('host')} pid {info.get('pid')} holds its lease",
            field="run_id", hint="wait for it to finish, or pass --force to take it over (that process stops it)")
    jobs = Jobs(repo.store, _NoQueue(), fanout_min_items=None)

    async def go() -> str:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            try:
                loop.add_signal_handler(sig, jobs.cancel_local, DEFAULT_ORG, run.id)
            except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
                pass
        # a lease left by a dead process of this machine has not expired yet: take it
        return await jobs.resume(DEFAULT_ORG, run.id, force=force or info is not None)

    outcome = asyncio.run(go())
    if outcome == "busy":
        raise FlowMasonError(f"run {run.id} was taken by another process just now", field="run_id",
                             hint="`fm runs show ID` follows it")
    done = repo.get_run(run.id)
    if as_json:
        _out(_dumps(done.model_dump(mode="json")))
    elif done.status is RunStatus.COMPLETED:
        _out(_dumps(done.output) if not isinstance(done.output, str) else done.output)
    if done.status is not RunStatus.COMPLETED:
        message = (done.error or {}).get("message") or outcome
        _err(f"run {done.id} {done.status.value}: {message}; `fm runs show {done.id}` for details")
        raise typer.Exit(ExitCode.FAILED)


def mark_stale(repo: Any, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Listed runs still ``pending``/``running`` whose process is gone get ``stale``: "expired" or "parked"."""
    from flowmason.kernel.model import Run
    from flowmason.plugins.durable import settings, stale

    grace = settings().grace_s
    for item in items:
        if item.get("status") in ("pending", "running"):
            try:
                run = Run.model_validate({**item, "inputs": {}})
            except ValueError:
                continue
            why = stale(repo.store, repo, run, grace_s=grace)
            if why is not None:
                item["stale"] = why
    return items


def stale_hint(item: dict[str, Any]) -> str:
    """What `fm runs` prints after a stale run."""
    if item.get("stale") == "parked":
        return "  parked: its server stopped; the next `fm serve` or `fm runs resume ID` continues it"
    if item.get("stale"):
        return "  stale: its process died; `fm runs resume ID` finishes it"
    return ""


def register(runs: typer.Typer) -> None:
    runs.command("resume")(runs_resume)
