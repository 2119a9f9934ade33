"""pytest-benchmark set-up: the BLAS kernel set and one thread, before numpy is imported."""

from convbench import threads
from convbench.blas import apply_coretype

apply_coretype("auto")        # same kernel set as `convbench run`
threads.preset_environment(1)


def pytest_configure(config):
    threads.set_threads(1)
