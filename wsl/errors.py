"""The one exception type users see.

Every failure caused by input (a file, a config key, a value) raises a
``WslError`` whose message names that input and says what to do. The command
line prints the message alone and exits with status 2; anything else is a bug
and keeps its traceback.
"""


class WslError(Exception):
    """A user-facing error: bad file, key or value. The message is the whole story."""
