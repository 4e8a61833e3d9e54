"""Sub-commands, discovered by harness.cli: one module each."""

from __future__ import annotations

import argparse


def add_allow_host(parser: argparse.ArgumentParser) -> None:
    """`--allow-host HOST[:PORT]`, shared by the commands that check a spec's endpoints."""
    from harness.credentials import ALLOW_ENV, parse_host

    def host(value: str) -> str:
        try:
            parse_host(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parser.add_argument("--allow-host", action="append", default=[], type=host, metavar="HOST[:PORT]",
                        help="a host the spec's endpoint/base_url may send a credential to (repeatable; also "
                             f"${ALLOW_ENV}, comma-separated). Without it keys go only to the official "
                             "DashScope hosts, --base-url and $DASHSCOPE_HTTP_BASE_URL")
