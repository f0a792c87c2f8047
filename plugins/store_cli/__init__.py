"""`fm store`: where the store is, export/import as JSON lines, schema migration.

    fm store info [--json]              url, size, item count, schema version
    fm store export > items.jsonl       every live item, one JSON object per line
    fm store import [--to URL] [FILE]   read those lines (stdin by default) into a store
    fm store migrate [--check]          upgrade an older store, or just report

Moving from the laptop to AWS is ``fm store export | fm store import --to
dynamodb://TABLE``. The store is the global ``--store`` / ``FM_STORE``
(the root CLI puts ``--store`` into ``FM_STORE``), else the user's SQLite
file. A line is ``{"pk", "sk", "data", "version", "expires_at"}`` with bytes
as ``{"__bytes__": base64}`` (``flowmason.kernel.storage_codec``), or
``{"blob": KEY, "bytes": base64}``: a value too large for an item, from the
store's blob store, written once after the items that refer to it
(``flowmason.kernel.blobs``); import writes those to the target's blob
store before the items.

Import validates every line before it writes anything, and names the line
of each problem; a bad file changes nothing. The write itself uses the
backend's ``restore`` (exact versions and expiry): one transaction on
SQLite, groups of 25 on DynamoDB.

typer is imported inside the hook, so loading this plugin costs nothing
in processes without a CLI.
"""
from __future__ import annotations

import base64
import binascii
import json
import sys
from pathlib import Path
from typing import Any, Iterable, TextIO

from flowmason.kernel.errors import ExitCode
from flowmason.kernel.plugins import hookimpl

_FIELDS = {"pk", "sk", "data", "version", "expires_at"}
MAX_REPORTED_PROBLEMS = 20


def _store_url(url: str | None) -> str:
    from flowmason.kernel.storage import default_store_url

    url = url or default_store_url()
    if "://" not in url:  # a bare path means SQLite, as in open_store
        url = f"sqlite://{Path(url).expanduser().resolve()}"
    return url


def export_lines(store: Any, missing: "list[str] | None" = None) -> Iterable[str]:
    """One JSON line per live item of ``store``, then one per blob those items refer to.

    A referenced blob the blob store no longer has is named in ``missing``
    (the export goes on: it is a backup, and the rest is still worth having).
    """
    from flowmason.kernel import blobs
    from flowmason.kernel.storage_codec import dumps

    keys: dict[str, None] = {}
    for item in store.scan_all():
        if blobs.REFS in item.data:
            keys.update((ref["key"], None) for ref in blobs.refs(item.data).values())
        yield dumps(
            {"pk": item.pk, "sk": item.sk, "data": item.data, "version": item.version, "expires_at": item.expires_at}
        )
    for key in keys:
        raw = store.blobs.get(key) if store.blobs is not None else None
        if raw is None:
            if missing is not None:
                missing.append(key)
            continue
        yield json.dumps({"blob": key, "bytes": base64.b64encode(raw).decode("ascii")})


def parse_lines(stream: TextIO, blobs_out: "list[tuple[str, bytes]] | None" = None) -> tuple[list[Any], list[str]]:
    """Items read from JSON lines, and the problems found (each naming its line); blob lines go to ``blobs_out``."""
    from flowmason.kernel.errors import StorageError
    from flowmason.kernel.storage import Item
    from flowmason.kernel.storage_codec import check_blob_key, check_item, revive

    items: list[Any] = []
    problems: list[str] = []
    for number, line in enumerate(stream, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
            if not isinstance(record, dict):
                raise ValueError("expected a JSON object")
            if "blob" in record:
                if set(record) != {"blob", "bytes"}:
                    raise ValueError("a blob line has exactly the fields 'blob' and 'bytes'")
                try:
                    raw = base64.b64decode(record["bytes"], validate=True)
                except (binascii.Error, TypeError) as exc:
                    raise ValueError(f"bad base64 in 'bytes': {exc}") from None
                if blobs_out is not None:
                    blobs_out.append((check_blob_key(record["blob"]), raw))
                continue
            unknown = set(record) - _FIELDS
            if unknown:
                raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
            for key in ("pk", "sk", "data"):
                if key not in record:
                    raise ValueError(f"missing {key!r}")
            version = record.get("version", 1)
            if type(version) is not int or version < 1:
                raise ValueError(f"version must be a positive integer, got {version!r}")
            expires_at = record.get("expires_at")
            if expires_at is not None and (type(expires_at) not in (int, float)):
                raise ValueError(f"expires_at must be a number or null, got {expires_at!r}")
            data = revive(record["data"])
            check_item(record["pk"], record["sk"], data)
            items.append(Item(record["pk"], record["sk"], data, version, expires_at))
        except json.JSONDecodeError as exc:
            problems.append(f"line {number}: not valid JSON: {exc.msg} (column {exc.colno})")
        except (ValueError, StorageError) as exc:
            problems.append(f"line {number}: {exc}")
    return items, problems


@hookimpl
def fm_register_commands(app):
    import typer

    from flowmason.kernel.storage import open_store

    store_app = typer.Typer(help="Inspect, export, import and migrate the store.", no_args_is_help=True)
    app.add_typer(store_app, name="store")

    @store_app.command("info")
    def info(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """Where the store is, its size and how many items it holds."""
        with open_store(_store_url(None)) as store:
            details = store.info()
        if as_json:
            typer.echo(json.dumps(details, indent=2, default=str))
            return
        width = max(len(k) for k in details)
        for key, value in details.items():
            typer.echo(f"{key.ljust(width)}  {value}")

    @store_app.command("export")
    def export(source: str = typer.Option(None, "--from", help="Store URL to read (default: --store / FM_STORE).")) -> None:
        """Print every item as JSON lines (pipe into `fm store import`)."""
        out = sys.stdout
        count = 0
        missing: list[str] = []
        values = 0
        with open_store(_store_url(source)) as store:
            for line in export_lines(store, missing):
                out.write(line)
                out.write("\n")
                if line.startswith('{"blob"'):
                    values += 1
                else:
                    count += 1
        out.flush()
        large = f" and {values} large value(s)" if values else ""
        typer.echo(f"exported {count} item(s){large} from {store.url}", err=True)
        if missing:
            typer.echo(f"warning: {len(missing)} value(s) the items refer to are missing from the blob store "
                       f"(first: {missing[0]}); those values cannot be read back", err=True)

    @store_app.command("import")
    def import_(
        file: Path = typer.Argument(None, help="JSON lines file (default: standard input).", exists=True, dir_okay=False),
        to: str = typer.Option(None, "--to", help="Store URL to write (default: --store / FM_STORE)."),
    ) -> None:
        """Read JSON lines (from `fm store export`) into a store; a bad file writes nothing."""
        blob_lines: list[tuple[str, bytes]] = []
        if file is None:
            items, problems = parse_lines(sys.stdin, blob_lines)
        else:
            with file.open(encoding="utf-8") as stream:
                items, problems = parse_lines(stream, blob_lines)
        if problems:
            for problem in problems[:MAX_REPORTED_PROBLEMS]:
                typer.echo(f"error: {problem}", err=True)
            if len(problems) > MAX_REPORTED_PROBLEMS:
                typer.echo(f"... and {len(problems) - MAX_REPORTED_PROBLEMS} more", err=True)
            typer.echo(
                f"nothing was imported: {len(problems)} bad line(s); fix them "
                "(each line is an object from `fm store export`) and run the import again",
                err=True,
            )
            raise typer.Exit(ExitCode.USAGE)
        with open_store(_store_url(to)) as store:
            if blob_lines and store.blobs is None:
                typer.echo(f"nothing was imported: the file holds {len(blob_lines)} large value(s) and {store.url} "
                           "has no blob store for them (DynamoDB: set FM_BLOB_BUCKET or blob_bucket= in the URL)",
                           err=True)
                raise typer.Exit(2)
            for key, raw in blob_lines:  # before the items that refer to them
                store.blobs.put(key, raw)
            restore = getattr(store, "restore", None)
            if restore is not None:
                written = restore(items)
            else:  # a third-party backend without restore: versions and expiry start afresh
                store.batch_put((i.pk, i.sk, i.data) for i in items)
                written = len(items)
        typer.echo(f"imported {written} item(s) into {store.url}", err=True)

    @store_app.command("migrate")
    def migrate(check: bool = typer.Option(False, "--check", help="Only report; exit 1 if an upgrade is due."),
                as_json: bool = typer.Option(False, "--json", help="With --check: print the versions as JSON.")) -> None:
        """Upgrade an older store to this FlowMason's schema (or refuse a newer one)."""
        url = _store_url(None)
        if url.startswith("sqlite:"):  # open without the automatic upgrade, to report what it was
            url += ("&" if "?" in url else "?") + "migrate=0"
        with open_store(url) as store:
            if not hasattr(store, "migrate"):
                typer.echo(json.dumps({"url": store.url, "schema_version": None}) if as_json
                           else f"{store.url}: this backend has no schema versions")
                return
            current, latest = store.schema_version(), store.latest_schema_version
            if check and as_json:
                typer.echo(json.dumps({"url": store.url, "schema_version": current, "latest": latest}))
                if current < latest:
                    raise typer.Exit(ExitCode.FAILED)
                return
            if check:
                if current < latest:
                    typer.echo(f"{store.url}: schema version {current}; run `fm store migrate` to upgrade to {latest}")
                    raise typer.Exit(ExitCode.FAILED)
                typer.echo(f"{store.url}: schema version {current} is current")
                return
            before, after = store.migrate()
        if before == after:
            typer.echo(f"{store.url}: schema version {after} is current; nothing to do")
        else:
            typer.echo(f"{store.url}: upgraded schema version {before} -> {after}")
