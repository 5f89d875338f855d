"""Errors a user can cause. The CLI turns each into one clear line and a non-zero exit."""


class DvisError(Exception):
    """A problem with the user's input (path, file, option), not a bug in dvis."""

    exit_code = 2


class CheckpointError(DvisError):
    """A weights file that is missing, unreadable, of another model or inconsistent."""


class InputError(DvisError):
    """A video, frame folder, dataset or option that dvis cannot use."""
