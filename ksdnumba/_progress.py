"""The one progress bar of the package: tqdm's where it is installed, a text line otherwise.

Every long computation takes ``progress=False``; with True it draws
``tqdm.auto.tqdm`` (a widget in a notebook, a line in a terminal) when tqdm is
installed, and this module's one-line text bar on stderr otherwise. ``verbose``
stays the per-iteration log of the samplers.
"""

from __future__ import annotations

import sys
import time

import numpy as np


def check_progress(progress) -> bool:
    """``progress`` as a bool, or TypeError."""
    if not isinstance(progress, (bool, np.bool_)):
        raise TypeError(f"progress must be True or False, got {progress!r}")
    return bool(progress)


class TextBar:
    """A one-line text bar on stderr, redrawn at most 10 times a second."""

    def __init__(self, total: int, desc: str, unit: str, initial: int = 0, stream=None):
        self.total, self.n, self.desc, self.unit = total, initial, desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.start = time.perf_counter()
        self.last = 0.0
        self.postfix = ""
        self.draw(force=True)

    def update(self, k: int = 1) -> None:
        self.n += k
        self.draw(force=self.n >= self.total)

    def set_postfix_str(self, text: str) -> None:
        self.postfix = text

    def draw(self, force: bool = False) -> None:
        now = time.perf_counter()
        if not force and now - self.last < 0.1:
            return
        self.last = now
        width = 30
        filled = width * min(self.n, self.total) // max(self.total, 1)
        extra = f", {self.postfix}" if self.postfix else ""
        self.stream.write(
            f"\r{self.desc} [{'#' * filled}{'.' * (width - filled)}] {self.n}/{self.total} "
            f"{self.unit}{extra}, {now - self.start:.1f} s"
        )
        self.stream.flush()

    def close(self) -> None:
        self.draw(force=True)
        self.stream.write("\n")
        self.stream.flush()


class _Off:
    """The bar of ``progress=False``: every call does nothing."""

    n = 0

    def update(self, k: int = 1) -> None:
        pass

    def set_postfix_str(self, text: str) -> None:
        pass

    def close(self) -> None:
        pass


def progress_bar(enabled: bool, total: int, desc: str, unit: str = "it", initial: int = 0):
    """A bar with ``update(k)``, ``set_postfix_str(text)`` and ``close()``.

    tqdm's (``tqdm.auto``) when ``enabled`` and tqdm imports, the text bar when it
    does not, and one that does nothing when not ``enabled``.
    """
    if not enabled:
        return _Off()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return TextBar(total, desc, unit, initial)
    return tqdm(total=total, desc=desc, unit=unit, initial=initial)
