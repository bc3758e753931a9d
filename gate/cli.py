"""The `gate` command: serve, keygen."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn

import gate
from gate.config import SERVE_OPTIONS, ConfigError, settings_from
from gate.keys import write_key_file


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        """One line, exit 2: the same shape as an invalid value."""
        self.exit(2, f"gate: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> Parser:
    parser = Parser(prog="gate", description="Self-hosted crawler-defense reverse proxy.")
    parser.add_argument("--version", action="version", version=f"gate {gate.__version__}")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    serve = commands.add_parser("serve", help="run the proxy", description="Run gate in front of an upstream.")
    for option in SERVE_OPTIONS:
        help_text = f"{option.help} [env {option.env}]"
        if option.is_switch:
            serve.add_argument(option.flag, dest=option.dest, action="store_true", default=None, help=help_text)
        elif option.parse_many is not None:
            serve.add_argument(option.flag, dest=option.dest, action="append", metavar=option.metavar, help=help_text)
        else:
            serve.add_argument(option.flag, dest=option.dest, metavar=option.metavar, help=help_text)

    keygen = commands.add_parser(
        "keygen", help="write a secret key file", description="Write a new secret key file (mode 0600)."
    )
    keygen.add_argument("path", type=Path, help="key file to write (what --secret-file reads)")
    replace = keygen.add_mutually_exclusive_group()
    replace.add_argument("--rotate", action="store_true", help="new signing key; keep the current one valid")
    replace.add_argument("--force", action="store_true", help="overwrite an existing file")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = build_parser().parse_args(argv)
    if arguments.command == "serve":
        return run_serve(arguments)
    return run_keygen(arguments)


def run_serve(arguments: argparse.Namespace) -> int:
    try:
        settings = settings_from(vars(arguments), os.environ)
    except ConfigError as error:
        for problem in error.problems:
            print(f"gate: error: {problem}", file=sys.stderr)
        return 2
    from gate.logs import configure_logging
    from gate.server import serve

    configure_logging(settings.log_level)
    serve(settings)
    return 0


def run_keygen(arguments: argparse.Namespace) -> int:
    path: Path = arguments.path
    if path.exists() and not (arguments.rotate or arguments.force):
        print(f"gate: error: {path} exists: use --rotate to add a new key or --force to replace it", file=sys.stderr)
        return 1
    if arguments.rotate and not path.exists():
        print(f"gate: error: {path} does not exist: nothing to rotate", file=sys.stderr)
        return 1
    try:
        ring = write_key_file(path, rotate=arguments.rotate)
    except (OSError, ValueError) as error:
        print(f"gate: error: {error}", file=sys.stderr)
        return 1
    print(f"wrote {path} (signing key {ring.signing.id}, {len(ring.keys)} key(s) accepted)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
