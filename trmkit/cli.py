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
from trmkit.task import Task
from trmkit.textio import printable

TASK_KEY = "trmkit.task"
"""``click.Context.meta`` key of the task the running command works on (`command_task`)."""


def command_task(name: str) -> Task:
    """The task ``name`` (or alias), recorded as the one the running command works on: an
    exception raised in plugin code then names it (`TrmkitGroup.invoke`). The click context's
    ``meta`` is shared by a command's context and the group's."""
    task = plugins.get_task(name)
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        ctx.meta[TASK_KEY] = task.name
    return task


class TrmkitGroup(click.Group):
    """Loads its commands through the plugin hook on first use, and turns every
    TrmkitError raised by a command into a one-line click error, and so an exception raised
    in plugin code (`plugins.plugin_failure`) unless --traceback or TRMKIT_DEBUG=1 asks for
    the stack."""

    _hook_fired = False
    _registering: str | None = None
    """the plugin whose ``register_commands`` runs now (None outside the hook)."""

    def __init__(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        self.owners: dict[str, str] = {}
        """command name -> the plugin that added it."""

    def _load_commands(self) -> None:
        """Fire ``register_commands`` one plugin at a time, built-ins first (docs/errors.md,
        "Boundaries: plugins, sources, names"): a command name taken already is not
        replaced (`add_command` warns), and a third-party hook that raises loses only the
        commands it added."""
        if self._hook_fired:
            return
        self._hook_fired = True
        try:
            plugins.load_plugins()
            for impl in plugins.ordered_impls(plugins.pm.hook.register_commands):
                self._register_from(impl.plugin_name, impl.function)
        except TrmkitError as exc:
            raise click.ClickException(printable(exc)) from exc

    def _register_from(self, plugin: str, hook) -> None:  # type: ignore[no-untyped-def]
        before = dict(self.commands)
        self._registering = plugin
        try:
            hook(cli=self)
        except Exception as exc:
            if plugins.is_builtin(plugin):
                raise
            self.commands = before
            self.owners = {k: v for k, v in self.owners.items() if k in before}
            plugins.reject(plugin, plugins.problem(exc, plugin), "had its commands refused")
        finally:
            self._registering = None

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        plugin = self._registering or "?"
        owner = self.owners.get(name or "")
        if name in self.commands and owner is not None and owner != plugin:
            plugins.warn(
                f"plugin {plugin!r}'s command {name!r} was not added: plugin {owner!r} has a "
                f"command of that name, which is kept; rename the command"
            )
            return
        super().add_command(cmd, name)
        if name:
            self.owners[name] = plugin

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_commands()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load_commands()
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context):  # type: ignore[override]
        # every error is one line without raw control characters (docs/errors.md)
        try:
            return super().invoke(ctx)
        except TrmkitError as exc:
            raise click.ClickException(printable(exc)) from exc
        except click.ClickException as exc:  # click's own (usage) errors echo arguments
            # click types `message` Final, yet its own code sets it; we clean it in place so
            # the exception keeps its class and exit code (2 for usage errors)
            exc.message = printable(exc.message)  # type: ignore[misc]
            raise
        except OSError as exc:
            # a full disk, a read-only place, a file in the way (docs/errors.md, "Write
            # boundaries"): the machine's fault, not trmkit's, so one line, not a stack
            if not is_environment_fault(exc) or ctx.params.get("traceback"):
                raise
            raise click.ClickException(printable(describe_os_error(exc))) from exc
        except Exception as exc:
            line = plugins.plugin_failure(exc, ctx.meta.get(TASK_KEY))
            if line is None or ctx.params.get("traceback") or plugins.debug_enabled():
                raise
            raise click.ClickException(printable(line)) from exc


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
