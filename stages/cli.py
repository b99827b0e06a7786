"""The ``zerodiff`` console script: every pipeline stage as a sub-command."""

from __future__ import annotations

import importlib
import sys

import typer

# Sub-command name -> module whose ``main`` function is the stage command.
STAGE_MODULES = {
    "prepare-digits": "stages.prepare_digits",
    "import-xlsa17": "stages.import_xlsa17",
    "extract": "stages.extract",
    "subset": "stages.subset",
    "train-drg": "stages.train_drg",
    "train-dfg": "stages.train_dfg",
    "synthesize": "stages.synthesize",
    "evaluate": "stages.evaluate",
    "report": "stages.report",
}


def build_app(names: list[str] | None = None) -> typer.Typer:
    """Return the typer application with a sub-command per stage in ``names`` (all by default).

    Importing a stage module imports torch and torchvision, which takes seconds,
    so :func:`main` registers only the stage that the command line names.
    """
    app = typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        no_args_is_help=True,
        help="ZeroDiff pipeline stages. Each one is also runnable as python -m stages.<module>.",
    )

    # A callback keeps the application a group of sub-commands even when one stage is registered.
    @app.callback()
    def _group() -> None:
        pass

    for name in names or STAGE_MODULES:
        module = importlib.import_module(STAGE_MODULES[name])
        app.command(name, help=module.main.__doc__)(module.main)
    return app


def main() -> None:
    arguments = sys.argv[1:]
    chosen = [arguments[0]] if arguments and arguments[0] in STAGE_MODULES else None
    build_app(chosen)()


if __name__ == "__main__":
    main()
