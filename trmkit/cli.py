"""The `trmkit` command line. Expected failures (`TrmkitError`) print one line and exit 1.

The group holds no command of its own: the built-in ones (`trmkit.commands.plugin`) and a
plugin's arrive through the same `register_commands` hook, fired the first time the group
lists or looks up a command, however it is invoked (`main()`, click's CliRunner, or
``cli.main``). `trmkit --version` fires nothing and imports no plugin.
"""

from __future__ import annotations

import click

from trmkit import __version__, plugins
from trmkit.errors import TrmkitError
from trmkit.oserrors import describe_os_error, is_environment_fault


class TrmkitGroup(click.Group):
    """Loads its commands through the plugin hook on first use, and turns every
    TrmkitError raised by a command into a one-line click error, and so an exception raised
    in plugin code (`plugins.plugin_failure`) unless --traceback or TRMKIT_DEBUG=1 asks for
    the stack."""

    _hook_fired = False

    def _load_commands(self) -> None:
        if self._hook_fired:
            return
        self._hook_fired = True
        try:
            plugins.load_plugins()
            plugins.pm.hook.register_commands(cli=self)
        except TrmkitError as exc:
            raise click.ClickException(str(exc)) from exc

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        try:
            return super().invoke(ctx)
        except TrmkitError as exc:
            raise click.ClickException(str(exc)) from exc
        except OSError as exc:
            # a full disk, a read-only place, a file in the way (docs/errors.md, "Write
            # boundaries"): the machine's fault, not trmkit's, so one line, not a stack
            if not is_environment_fault(exc) or ctx.params.get("traceback"):
                raise
            raise click.ClickException(describe_os_error(exc)) from exc
        except Exception as exc:
            line = plugins.plugin_failure(exc)
            if line is None or ctx.params.get("traceback") or plugins.debug_enabled():
                raise
            raise click.ClickException(line) from exc


@click.group(cls=TrmkitGroup)
@click.version_option(__version__, prog_name="trmkit")
@click.option(
    "--traceback",
    is_flag=True,
    help="Show the full stack of an exception raised in plugin code (or TRMKIT_DEBUG=1).",
)
def cli(traceback: bool) -> None:
    """Tiny Recursive Models on grid puzzles: build data, train, evaluate, solve."""


def main() -> None:
    cli(prog_name="trmkit")


if __name__ == "__main__":
    main()
