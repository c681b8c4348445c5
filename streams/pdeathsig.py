"""Linux's parent-death signal for forked children (``prctl(PR_SET_PDEATHSIG)``).

The C function is looked up here, at import, never in a forked child (no ``dlopen``
after a fork). Elsewhere than Linux, :data:`AVAILABLE` is False and
:func:`die_with_parent` does nothing.

>>> import signal
>>> AVAILABLE == (sys.platform == "linux")
True
>>> die_with_parent(signal.SIGTERM) is None  # this process: its parent is the shell
True
"""

import ctypes
import sys

_PR_SET_PDEATHSIG = 1
try:
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):  # pragma: no cover - a libc without prctl
    _PRCTL = None

#: Whether :func:`die_with_parent` can ask the kernel for the signal.
AVAILABLE = _PRCTL is not None


def die_with_parent(sig: int) -> None:
    """Ask Linux to send ``sig`` to this process when the thread that forked it ends
    (``man 2 PR_SET_PDEATHSIG``); nothing where that is not available."""
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, sig)
