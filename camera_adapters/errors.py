"""The one base class for mistakes a user can fix (a bad file, config value, CLI argument or message).

Command-line front ends print such errors as one clear line and exit with status 2, without a traceback;
anything else is a bug and keeps its traceback.
"""


class UserFacingError(Exception):
    """Base for errors caused by input the user controls; the message says which input and what to do."""
