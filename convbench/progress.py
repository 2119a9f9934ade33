"""Progress of a sweep: a live tqdm bar on a terminal, plain log lines otherwise.

On a terminal (stderr is a TTY) one bar counts problems and shows the ETA; its label is
the current cell, backend and stage (prepare, verify, round N), and its postfix the
current problem's finished backends with their times. Each finished problem also leaves
one permanent line above the bar. Elsewhere (CI logs, a pipe, a file) only those
permanent lines are written, one per problem, so logs stay readable.
"""

from __future__ import annotations

import sys
import time

from .format import fmt_time

__all__ = ["Progress"]


class Progress:
    """Progress over ``total`` problems (cells at one weight density)."""

    def __init__(self, total: int, stream=None, enabled: bool = True):
        self.total = total
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.t0 = time.perf_counter()
        self.done = 0
        self._finished: list[str] = []
        self._bar = None
        if self.tty:
            from tqdm import tqdm
            self._bar = tqdm(total=total, file=self.stream, unit="problem", dynamic_ncols=True, leave=False,
                             bar_format="{n_fmt}/{total_fmt} {desc} |{bar:12}| {elapsed}<{remaining}{postfix}")

    def eta(self) -> str:
        if self.done == 0:
            return "?"
        left = (time.perf_counter() - self.t0) / self.done * (self.total - self.done)
        return f"{int(left // 60)}m{int(left % 60):02d}s"

    def skip(self, n: int = 1) -> None:
        """Problems already finished (``--resume``)."""
        self.done += n
        if self._bar is not None:
            self._bar.update(n)

    def status(self, problem: str, backend: str, stage: str) -> None:
        if self._bar is None:
            return
        self._bar.set_description_str(f"{problem[:60]} | {backend} | {stage}", refresh=False)
        self._bar.refresh()

    def backend_done(self, backend: str, text: str) -> None:
        """A backend of the current problem finished (its time, or its state)."""
        self._finished.append(f"{backend}={text}")
        if self._bar is not None:
            self._bar.set_postfix_str(" ".join(self._finished)[-120:], refresh=True)

    def finished(self, problem: str, rows: list[dict], extra: str = "") -> None:
        """A problem finished with these rows; ``extra`` is added to its line (where it
        ran, what is still running and pending, for a distributed sweep)."""
        self.done += 1
        self._finished = []
        if not self.enabled:
            return
        parts = []
        for r in rows:
            med = r.get("time_median_s")
            if r["status"] == "passed" and med == med and med is not None:
                parts.append(f"{r['backend']}={fmt_time(med, compact=True)}")
            else:
                parts.append(f"{r['backend']}:{r['status']}")
        where = f"{extra}; " if extra else ""
        msg = f"[{self.done}/{self.total}] {problem}: {' '.join(parts)} ({where}ETA {self.eta()})"
        if self._bar is not None:
            self._bar.write(msg, file=self.stream)
            self._bar.set_postfix_str("", refresh=False)
            self._bar.update(1)
        else:
            self.stream.write(msg + "\n")
            self.stream.flush()

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
