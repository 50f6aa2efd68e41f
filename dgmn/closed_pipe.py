"""A command whose reader stops early (``dgmn-inspect ... --json - | head``) ends quietly, as Unix tools do.

``@ends_quietly_on_closed_pipe`` on a command's ``main``: when the pipe its stdout writes to is closed, the rest of the
output is dropped and the command returns status 1, with no ``BrokenPipeError`` traceback (nor Python's "Exception
ignored" line when it flushes stdout at exit)."""
from __future__ import annotations

import functools
import os
import sys


def ends_quietly_on_closed_pipe(main):
    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            status = main(*args, **kwargs)
            sys.stdout.flush()  # a closed pipe shows here, not at exit
            return status
        except BrokenPipeError:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())  # what is left in stdout's buffer goes nowhere at exit
            return 1
    return wrapper
