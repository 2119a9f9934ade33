"""The functional API: one call that validates, prepares and runs, with PyTorch's semantics at
every rank (:mod:`.conv`: ``conv1d/2d/3d``, ``conv_transpose1d/2d/3d``, ``conv1d/2d/3d_weight``;
:mod:`.pool`: ``max_pool1d/2d/3d``, ``avg_pool1d/2d/3d`` and their backward functions), so
results can be checked against PyTorch one to one. For repeated calls on one shape, use the
backend's ``prepare``/``run`` directly: a call redoes the one-off work (plans, transforms)
every time.
"""

from .common import FootprintError
from .common import resolve as _resolve  # noqa: F401  (convbench tune asks it what auto picks)
from .conv import (conv1d, conv1d_weight, conv2d, conv2d_weight, conv3d, conv3d_weight, conv_transpose1d,
                   conv_transpose2d, conv_transpose3d)
from .pool import (avg_pool1d, avg_pool1d_backward, avg_pool2d, avg_pool2d_backward, avg_pool3d,
                   avg_pool3d_backward, max_pool1d, max_pool1d_backward, max_pool2d, max_pool2d_backward, max_pool3d,
                   max_pool3d_backward)

__all__ = ["conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
           "conv1d_weight", "conv2d_weight", "conv3d_weight", "max_pool1d", "max_pool2d", "max_pool3d",
           "avg_pool1d", "avg_pool2d", "avg_pool3d", "max_pool1d_backward", "max_pool2d_backward",
           "max_pool3d_backward", "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward",
           "FootprintError"]
