"""Runtime subcommands of `xrel`: fetch-erts, otp-versions, cache (registered in cli/__init__.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from xrel.cli.app import command, emit_json, global_options, main
from xrel.errors import NotAvailableError, UsageError, XrelError

if TYPE_CHECKING:
    from xrel.storage.cache import Entry

_SOURCE_HELP = "A source name (see `xrel targets`), path:/otp-root-or-archive, or url:https://... (with --sha256)."


@command("fetch-erts")
@click.argument("target")
@click.option("--otp", default=None, help="OTP version: 27, 27.3 or OTP-27.3.4.1 (default: the host's major).")
@click.option("--source", default=None, help=_SOURCE_HELP)
@click.option("--sha256", default=None, help="Expected sha256 of the download (required for url:).")
@click.option("--offline", is_flag=True, help="Use only what is in the cache; say what is missing.")
@click.option("--force", is_flag=True, help="Fetch and unpack again even when cached.")
@click.option("--json", "as_json", is_flag=True, help="Print the runtime's metadata as JSON.")
def fetch_erts(target: str, otp: str | None, source: str | None, sha256: str | None, offline: bool,
               force: bool, as_json: bool) -> None:
    """Fetch, verify, normalize and cache the OTP runtime for TARGET; print its root."""
    from xrel.runtimes import fetch_runtime

    runtime = fetch_runtime(target, otp=otp, source=source, offline=offline, force=force, sha256=sha256)
    if as_json:
        emit_json(runtime.to_dict())
    else:
        click.echo(runtime.root)


def _offer_row(offer) -> dict:
    return {"version": offer.version, "url": offer.url, "sha256": offer.sha256, "note": offer.note}


@command("otp-versions")
@click.argument("target")
@click.option("--source", default=None, help=_SOURCE_HELP)
@click.option("--offline", is_flag=True, help="Use only cached indexes.")
@click.option("--json", "as_json", is_flag=True)
def otp_versions(target: str, source: str | None, offline: bool, as_json: bool) -> None:
    """The OTP versions each runtime source offers for TARGET, newest first."""
    from xrel.runtimes import list_offers
    from xrel.targets import Target

    parsed = Target.parse(target)
    report: dict[str, dict] = {}
    for name in [source] if source else list(parsed.sources):
        try:
            offers = next(iter(list_offers(parsed, name, offline=offline).values()))
            report[name] = {"offers": [_offer_row(o) for o in offers], "error": None}
        except XrelError as e:
            report[name] = {"offers": [], "error": str(e)}
    if as_json:
        emit_json({"target": parsed.id, "sources": report})
    else:
        for name, entry in report.items():
            click.echo(f"{name}: error: {entry['error']}" if entry["error"] else
                       f"{name}: {len(entry['offers'])} version(s) for {parsed.id}")
            for row in entry["offers"]:
                click.echo(f"  {row['version']:<12} {row['note']}")
    if all(entry["error"] for entry in report.values()):
        raise NotAvailableError(f"no runtime source answered for {parsed.id}", "see the errors above")


@main.group("cache")
@global_options
def cache_group() -> None:
    """List and clean xrel's cache ($XREL_CACHE_DIR, else the platform's user cache dir)."""


def _cache_command(name: str):
    return command(name, group=cache_group)


def _entry_row(entry: Entry) -> dict:
    return {"area": entry.area, "name": entry.name, "path": str(entry.path), "size": entry.size,
            "mtime": entry.mtime}


def _human(size: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return str(size)


def _print_entries(rows: list[dict], verb: str, as_json: bool) -> None:
    from xrel.storage import cache

    if as_json:
        emit_json({"root": str(cache.cache_root()), verb: rows})
        return
    for row in rows:
        size = _human(row["size"]) if row["size"] is not None else "-"
        click.echo(f"{row['area']:<11} {size:>10}  {row['name']}")
    total = sum(r["size"] or 0 for r in rows)
    click.echo(f"{verb}: {len(rows)} entr{'y' if len(rows) == 1 else 'ies'}, {_human(total)} in {cache.cache_root()}")


@_cache_command("list")
@click.option("--json", "as_json", is_flag=True)
def cache_list(as_json: bool) -> None:
    """Every cache entry with its area and size."""
    from xrel.storage import cache

    _print_entries([_entry_row(e) for e in cache.entries()], "entries", as_json)


@_cache_command("rm")
@click.argument("names", nargs=-1)
@click.option("--all", "everything", is_flag=True, help="Remove every entry except trust-on-first-use pins.")
@click.option("--json", "as_json", is_flag=True)
def cache_rm(names: tuple[str, ...], everything: bool, as_json: bool) -> None:
    """Remove entries by NAME (or AREA/NAME, as `xrel cache list` shows them), or --all.

    Pins (area `pins`) survive --all: removing one means trusting the next download anew,
    so name it to remove it.
    """
    from xrel.storage import cache

    entries = cache.entries()
    if everything:
        chosen = [e for e in entries if e.area != "pins"]
    elif names:
        chosen = [_find_entry(entries, name) for name in names]
    else:
        raise UsageError("name the entries to remove, or pass --all", "`xrel cache list` shows them")
    for entry in chosen:
        cache.remove_entry(entry)
    _print_entries([_entry_row(e) for e in chosen], "removed", as_json)


def _find_entry(entries: list[Entry], name: str) -> Entry:
    found = [e for e in entries if name in (e.name, f"{e.area}/{e.name}")]
    if len(found) == 1:
        return found[0]
    if found:
        raise UsageError(f"'{name}' names entries in several areas", "write it as AREA/NAME")
    import difflib

    close = difflib.get_close_matches(name, [e.name for e in entries], n=3)
    raise UsageError(f"no cache entry named '{name}'",
                     f"did you mean {', '.join(close)}?" if close else "`xrel cache list` shows them")


@_cache_command("prune")
@click.option("--older-than", type=float, default=None, metavar="DAYS",
              help="Also remove entries not changed for this many days.")
@click.option("--json", "as_json", is_flag=True)
def cache_prune(older_than: float | None, as_json: bool) -> None:
    """Remove leftovers of interrupted runs and the build trees of projects that are gone (and, with
    --older-than, old entries)."""
    from xrel.release.workspace import project_gone
    from xrel.storage import cache

    removed = cache.prune(older_than, unwanted=project_gone)
    rows = [{"area": p.parent.name, "name": p.name, "path": str(p), "size": None, "mtime": None} for p in removed]
    _print_entries(rows, "removed", as_json)
