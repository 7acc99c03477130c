"""The one base of headstart's own errors: their messages say what is wrong and what to do."""


class HeadstartError(Exception):
    """Bad config, data, or a missing file: a retry cannot fix it, and a traceback adds nothing.
    A workflow script logs it as one line and exits with status 1."""
