"""The `amoca-indexer` command line. Subcommands live in `indexer.commands.<name>`
and are imported only when used, so `amoca-indexer decode` never loads the database
stack and `--help` stays fast.

A user's mistake (bad flag, bad config, unreachable database) ends with one clear line
on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from typing import Any

import click

from indexer import __version__
from indexer.errors import ConfigError, DatabaseUnavailable, IndexerError

# name -> (module, one-line help). The module exposes a click command named `command`.
COMMANDS: dict[str, tuple[str, str]] = {
    "migrate": ("indexer.commands.migrate", "Apply sql/ migrations (idempotent, locked, checksummed)."),
    "db": ("indexer.commands.db", "Manage the embedded PostgreSQL (url, start, stop)."),
    "run": ("indexer.commands.run", "Run the indexing daemon."),
    "backfill": ("indexer.commands.backfill", "Index a wallet's history from getSignaturesForAddress."),
    "decode": ("indexer.commands.decode", "Decode a transaction and print its rows; writes nothing."),
    "rank": ("indexer.commands.rank", "Recompute leaderboard rankings now."),
    "prune": ("indexer.commands.prune", "Delete data past retention (tasks 2 years, messages 1 year)."),
    "status": ("indexer.commands.status", "Cursors, slot lag, pending rows, dead letters."),
    "localnet": ("indexer.commands.localnet", "Run the local Solana cluster."),
    "workload": ("indexer.commands.workload", "Send AMOCA traffic to a cluster, write ground truth."),
    "demo": ("indexer.commands.demo", "Embedded PostgreSQL + localnet + workload + daemon."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [name for name, (module, _) in COMMANDS.items() if _module_exists(module)]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None or not _module_exists(entry[0]):
            return None
        command = importlib.import_module(entry[0]).command
        assert isinstance(command, click.Command)
        return command


def _module_exists(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="amoca-indexer")
@click.option("--log-level", default="info", show_default=True,
              type=click.Choice(["debug", "info", "warning", "error"]), help="Log verbosity.")
@click.option("--log-json/--log-pretty", default=None,
              help="Force JSON or pretty logs (default: pretty on a terminal, JSON otherwise).")
def cli(log_level: str, log_json: bool | None) -> None:
    """amoca-indexer: keeps the AMOCA marketplace database true to Solana."""
    from indexer.logs import configure_logging

    configure_logging(log_level, json=log_json)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning expected errors into one line and an exit code."""
    try:
        return cli.main(args=argv, prog_name="amoca-indexer", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except ConfigError as exc:
        click.echo(f"amoca-indexer: configuration error: {exc}", err=True)
        sys.exit(2)
    except DatabaseUnavailable as exc:
        click.echo(f"amoca-indexer: database unavailable: {exc}", err=True)
        sys.exit(2)
    except IndexerError as exc:
        click.echo(f"amoca-indexer: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        database_error = _database_error(exc)
        if database_error is None:
            raise
        # A database refusal no command translated (a role without a grant, say).
        click.echo(f"amoca-indexer: database error: {database_error}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


def _database_error(exc: BaseException) -> IndexerError | None:
    """The translated error when ``exc`` is psycopg's (only loaded if a command used it)."""
    psycopg = sys.modules.get("psycopg")
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return None
    from indexer.db.connection import translate

    return translate(exc)
