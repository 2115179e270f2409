#!/usr/bin/env python3
"""r1relay's installer: build the single-file functions and put them into Open WebUI.

The work is done by the `installer` package; this file is the command line
(`python install.py …`, or `r1relay …` once pip-installed). Commands that talk
to a server import the modules that need `requests` when they run, so `--help`
and `export` work without it.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from installer.bundle import build_all, export
from installer.errors import BuildError, OpenWebUIError, UsageError
from installer.valve_config import load_config, merge_valves, parse_sets

if TYPE_CHECKING:
    from installer.openwebui import OpenWebUIClient

NEEDS_REQUESTS = "this command needs the `requests` package: `pip install requests` (or run r1relay with pipx, which brings it)"


def connect(args: argparse.Namespace) -> tuple[OpenWebUIClient, str]:
    """A client with an admin token, and Open WebUI's version; fails in one line."""
    from installer.openwebui import OpenWebUIClient

    url = args.url.rstrip("/")
    if not urlsplit(url).scheme.startswith("http") or not urlsplit(url).netloc:
        raise UsageError(f"--url {args.url!r} is not an http(s) URL")
    token = args.token or os.environ.get("OPENWEBUI_TOKEN", "")
    if not token and args.email and args.password:
        token = OpenWebUIClient.sign_in(url, args.email, args.password)
    if not token:
        raise UsageError("no admin token: pass --token, set OPENWEBUI_TOKEN, or use --email and --password")
    client = OpenWebUIClient(url, token)
    return client, client.check_admin()


def cmd_install(args: argparse.Namespace) -> int:
    from installer.plan import Installer, InstallOptions
    from installer.status import verify

    config = load_config(args.config) if args.config else {}
    valves = merge_valves(config, parse_sets(args.set or []))
    built = build_all()
    client, version = connect(args)
    print(f"Installing r1relay into Open WebUI {version} at {client.url}{' (dry run: nothing is written)' if args.dry_run else ''}")
    options = InstallOptions(valves, args.keep_tasks, args.overwrite_valves, args.enable_direct_connections, args.dry_run)
    Installer(client, options).run(built)
    return 0 if args.dry_run else verify(client, built)


def cmd_uninstall(args: argparse.Namespace) -> int:
    from installer.plan import uninstall

    client, version = connect(args)
    print(f"Removing r1relay from Open WebUI {version} at {client.url}")
    return uninstall(client)


def cmd_status(args: argparse.Namespace) -> int:
    from installer.status import show_status

    client, version = connect(args)
    built = build_all()
    print(f"Open WebUI {version} at {client.url}; 'source' compares with this checkout's build")
    return show_status(client, built)


def cmd_export(args: argparse.Namespace) -> int:
    for path in export(args.dir):
        print(f"wrote {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from installer.demo import run_demo

    return run_demo(args.port)


def _add_connection_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--url", required=True, help="Open WebUI's address, e.g. http://localhost:8080")
    parser.add_argument("--token", help="an admin's API key or JWT (default: $OPENWEBUI_TOKEN)")
    parser.add_argument("--email", help="sign in as this admin instead of passing a token")
    parser.add_argument("--password", help="the admin's password (with --email)")


def build_parser(prog: str = "install.py") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=(__doc__ or "").splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    install_cmd = commands.add_parser("install", help="create or update the functions, set valves, quiet background tasks")
    _add_connection_args(install_cmd)
    install_cmd.add_argument("--config", type=Path, help="valves as TOML or JSON keyed by function id (see configs/)")
    install_cmd.add_argument("--set", action="append", metavar="FUNCTION_ID.VALVE=VALUE", help="one valve; repeatable")
    install_cmd.add_argument("--keep-tasks", action="store_true", help="leave title/tags/follow-up/query generation as they are")
    install_cmd.add_argument("--overwrite-valves", action="store_true", help="replace valves an admin changed by hand")
    install_cmd.add_argument("--enable-direct-connections", action="store_true", help="let users add their own backends")
    install_cmd.add_argument("--dry-run", action="store_true", help="say what would change, change nothing")
    install_cmd.set_defaults(run=cmd_install)
    for name, run, text in (
        ("uninstall", cmd_uninstall, "remove the functions and restore the background task settings"),
        ("status", cmd_status, "what is installed, versions, source vs this checkout, backend health"),
    ):
        sub = commands.add_parser(name, help=text)
        _add_connection_args(sub)
        sub.set_defaults(run=run)
    export_cmd = commands.add_parser("export", help="write the built functions and functions.json into DIR")
    export_cmd.add_argument("dir", type=Path)
    export_cmd.set_defaults(run=cmd_export)
    demo_cmd = commands.add_parser("demo", help="run Open WebUI with r1relay and a tiny local R1 model on this machine")
    demo_cmd.add_argument("--port", type=int, default=8080, help="Open WebUI's port on 127.0.0.1")
    demo_cmd.set_defaults(run=cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    prog = "r1relay" if Path(sys.argv[0]).name == "r1relay" else "install.py"
    args = build_parser(prog).parse_args(argv)
    try:
        return int(args.run(args))
    except (UsageError, OpenWebUIError, BuildError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except ModuleNotFoundError as exc:
        if exc.name != "requests":
            raise
        print(f"error: {NEEDS_REQUESTS}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
