"""LightningModules for the tasks, their schedule, callbacks and the run record (metrics.json).

Imports Lightning; the models (race.models) and the attention (race.attention) do not.
"""

from .callbacks import PeakMemoryMonitor, SpeedMonitor, TrainingProgressBar
from .classification import ClassificationTask
from .image_classification import ImageClassificationTask
from .language_model import CausalLMTask
from .masked_lm import MaskedLMTask
from .metrics import MajorityClassAccuracy
from .optim import SCHEDULES, build_optimizer, schedule_factor
from .retrieval import RetrievalTask
from .run_info import git_revision, library_versions, write_metrics_json

__all__ = [
    "SCHEDULES",
    "CausalLMTask",
    "ClassificationTask",
    "ImageClassificationTask",
    "MajorityClassAccuracy",
    "MaskedLMTask",
    "PeakMemoryMonitor",
    "RetrievalTask",
    "SpeedMonitor",
    "TrainingProgressBar",
    "build_optimizer",
    "git_revision",
    "library_versions",
    "schedule_factor",
    "write_metrics_json",
]
