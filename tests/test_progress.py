"""The progress display: plain lines off a terminal, a live tqdm bar on one."""

from __future__ import annotations

import io

from convbench.progress import Progress


class _TTY(io.StringIO):
    def isatty(self):
        return True


ROWS = [{"backend": "a", "status": "passed", "time_median_s": 1.5e-3},
        {"backend": "b", "status": "skipped", "time_median_s": float("nan")}]


def test_plain_lines_when_not_a_terminal():
    s = io.StringIO()
    p = Progress(2, stream=s)
    p.status("p1", "a", "prepare")  # nothing drawn off a terminal
    p.backend_done("a", "ok")
    p.finished("p1", ROWS)
    assert s.getvalue() == "[1/2] p1: a=1.5ms b:skipped (ETA " + p.eta() + ")\n"


def test_live_bar_on_a_terminal_shows_stage_backends_and_eta():
    s = _TTY()
    p = Progress(3, stream=s)
    p.status("prob", "fft_pyfftw", "round 2")
    p.backend_done("im2col_blas", "ok(1.2ms)")
    text = s.getvalue()
    assert "prob | fft_pyfftw | round 2" in text and "im2col_blas=ok(1.2ms)" in text and "0/3" in text
    p.finished("prob", ROWS)
    assert "[1/3] prob: a=1.5ms b:skipped" in s.getvalue()
    p.close()


def test_quiet_writes_nothing():
    s = _TTY()
    p = Progress(1, stream=s, enabled=False)
    p.status("x", "y", "z")
    p.finished("x", ROWS)
    assert s.getvalue() == ""
