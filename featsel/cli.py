"""The one `featsel` command. It mirrors the Python API; every subcommand can print `--json`.

Subcommands are registered in `_COMMANDS` as `(name, help, add_arguments, run)`; `run(args)` returns
a JSON-able result (printed with `--json`) or None. Only this module may reach into `generation`,
and it does so lazily inside `run` functions (train/sample/evaluate/validate/pretrain).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from featsel import __version__

Command = tuple[str, str, Callable[[argparse.ArgumentParser], None], Callable[[Any], Any]]
_COMMANDS: list[Command] = []


def command(name: str, help: str, add_arguments: Callable[[argparse.ArgumentParser], None]):
    """Decorator registering `run(args)` as subcommand `name`."""

    def wrap(run: Callable[[Any], Any]) -> Callable[[Any], Any]:
        _COMMANDS.append((name, help, add_arguments, run))
        return run

    return wrap


def _no_args(p: argparse.ArgumentParser) -> None:
    return None


@command("version", "print the featsel version", _no_args)
def _version(args: Any) -> dict:
    import torch

    return {"featsel": __version__, "torch": torch.__version__}


def _featurizers_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", nargs="?", help="show one featurizer's options (all when omitted)")


@command("featurizers", "list the registered featurizers and their options", _featurizers_args)
def _featurizers(args: Any) -> Any:
    from featsel.features import list_featurizers

    entries = list_featurizers()
    if args.name:
        entries = [e for e in entries if e["name"] == args.name]
        if not entries:
            raise ValueError(f"unknown featurizer {args.name!r}; run `featsel featurizers`")
    if args.json:
        return {"featurizers": entries}
    lines = []
    for e in entries:
        opts = ",".join(
            f"{k}={'' if v is None else '+'.join(map(str, v)) if isinstance(v, list) else v}"
            for k, v in e["options"].items()
        )
        lines.append(f"{e['name']:<18} {e['description']}")
        if opts:
            lines.append(f"{'':<18} options: {opts}")
    return "\n".join(lines)


def _cache_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["ls", "clear"], help="list entries or remove them")
    p.add_argument("--cache-dir", default=None, help="cache root (default $FEATSEL_CACHE_DIR "
                   "or ~/.cache/featsel/cache)")
    p.add_argument("--dataset", default=None, help="only entries of this data set")
    p.add_argument("--split", default=None, help="only entries of this split")


@command("cache", "list (ls) or remove (clear) cached features", _cache_args)
def _cache(args: Any) -> Any:
    from featsel.cache import FeatureCache

    cache = FeatureCache(args.cache_dir)
    match = {k: v for k, v in (("dataset", args.dataset), ("split", args.split)) if v is not None}
    if args.action == "clear":
        return {"cache_dir": str(cache.root), "removed": cache.clear(**match)}
    entries = [
        e for e in cache.ls() if all(str(e.parts.get(k)) == str(v) for k, v in match.items())
    ]
    if args.json:
        return {"cache_dir": str(cache.root), "entries": [e.to_dict() for e in entries]}
    lines = [f"{cache.root}: {len(entries)} entries, {sum(e.bytes for e in entries) / 1e6:.1f} MB"]
    for e in entries:
        p = e.parts
        lines.append(
            f"{e.key[:12]}  {p.get('dataset', '-')}/{p.get('split', '-')}  {p.get('space', '-')}  "
            f"{p.get('featurizer', '-')}  n={p.get('n', '-')}  {e.bytes / 1e6:.1f} MB"
        )
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="featsel", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"featsel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, help_, add_arguments, run in _COMMANDS:
        p = sub.add_parser(name, help=help_, description=help_)
        p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
        add_arguments(p)
        p.set_defaults(_run=run)
    return parser


def _to_jsonable(obj: Any) -> Any:
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    raise TypeError(f"cannot serialise {type(obj).__name__} to JSON")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    try:
        result = args._run(args)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        # User errors get one clear line, not a traceback.
        print(f"featsel {args.command}: error: {err}", file=sys.stderr)
        return 1
    if result is not None:
        if args.json:
            print(json.dumps(result, indent=2, default=_to_jsonable))
        elif isinstance(result, dict):
            for k, v in result.items():
                print(f"{k}: {v}")
        else:
            print(result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
