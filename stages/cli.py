"""The ``zerodiff`` console script: every pipeline stage as a sub-command."""

from __future__ import annotations

import importlib

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


def build_app() -> typer.Typer:
    """Return the typer application with one sub-command per stage."""
    app = typer.Typer(
        add_completion=False,
        pretty_exceptions_enable=False,
        no_args_is_help=True,
        help="ZeroDiff pipeline stages. Each one is also runnable as python -m stages.<module>.",
    )
    for name, module_name in STAGE_MODULES.items():
        module = importlib.import_module(module_name)
        app.command(name, help=module.main.__doc__)(module.main)
    return app


def main() -> None:
    build_app()()


if __name__ == "__main__":
    main()
