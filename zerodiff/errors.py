"""Errors that are the user's to fix: bad input files, invalid parameters."""


class UserError(Exception):
    """An error caused by input or configuration, reported without a traceback.

    The message names the file, key and value involved and, where possible,
    what to do next. Stage entry points print it and exit with status 1.
    """
