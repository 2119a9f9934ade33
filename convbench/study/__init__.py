"""``convbench study``: a CNN against a locally connected and a dense network on an image
task (scikit-learn's digits on a larger canvas), trained and timed on convbench's own
kernels. :func:`run_study` measures and writes ``OUT/study/*.csv``;
:func:`write_study_report` renders ``report.md``/``report.html`` from them."""

from .experiment import StudyConfig, run_study
from .models import MODELS
from .report import write_study_report

__all__ = ["StudyConfig", "run_study", "write_study_report", "MODELS"]
