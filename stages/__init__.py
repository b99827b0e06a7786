"""Pipeline stages: one thin typer command per stage.

Each module is runnable as ``python -m stages.<name>`` (what ``dvc.yaml`` calls)
and is also registered as a sub-command of the ``zerodiff`` console script.
"""
