"""A shorter GIL switch interval while pipelines run.

A stage thread that returns from a native call (``session.run``, a decoder) needs the GIL back; with
CPython's default 5 ms switch interval it can wait that long behind a busy Python thread of another
stage, which on a loaded machine costs more than the pipeline's overlap gains. Pipelines that run in
more than one thread (``sdk.pipeline.layout``) lower the interval (default 1 ms) while any of them
runs and restore the previous value when the last one ends.
"""

from __future__ import annotations

import sys
import threading

_lock = threading.Lock()
_users = 0
_saved: float | None = None


def lower_switch_interval(seconds: float) -> None:
    """Set the interval to at most ``seconds`` until the matching ``restore_switch_interval``."""
    global _users, _saved
    with _lock:
        if _users == 0:
            _saved = sys.getswitchinterval()
        _users += 1
        if seconds < sys.getswitchinterval():
            sys.setswitchinterval(seconds)


def restore_switch_interval() -> None:
    """Undo one ``lower_switch_interval``; the last one restores the value saved by the first."""
    global _users, _saved
    with _lock:
        if _users == 0:
            return
        _users -= 1
        if _users == 0 and _saved is not None:
            sys.setswitchinterval(_saved)
            _saved = None
