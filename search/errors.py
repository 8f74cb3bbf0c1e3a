"""The errors whose one-line message the command line prints (exit status 2); torch-free, so the
command line catches them without importing what raises them."""


class SearchError(ValueError):
    """A setting or input that makes the run impossible; the message is one line saying what to do."""


class StudyError(ValueError):
    """The study cannot be opened or does not match the run; the message says what to do."""


class DataError(ValueError):
    """A data set cannot be loaded; the one-line message names the problem and the fix."""
