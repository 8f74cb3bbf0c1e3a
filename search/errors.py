"""The error a setting or input raises when it makes a run impossible."""


class SearchError(ValueError):
    """A setting or input that makes the run impossible; the message is one line saying what to do."""
