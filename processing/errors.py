"""Errors the core raises on purpose: each carries a one-line reason for a human."""


class FileRejected(Exception):
    """The file cannot be a table for this contract; it is rejected as a whole.

    The message is the one line that `ivi process` prints and a flow run fails with.
    """


class SourceStateError(RuntimeError):
    """A `TextSource` used out of order (read before `open()`): a bug in the caller, not the
    data's fault."""


class ContractError(Exception):
    """A contract file is malformed or unknown: an operator's mistake, not the data's."""
