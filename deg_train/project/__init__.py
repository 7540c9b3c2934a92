"""A project on disk and the files in it: layout, settings, label CSVs, splits, BORIS import, frame caches, outputs.

Everything here is torch-free (numpy, h5py, PyYAML, PyAV), so a project can be opened, checked and labelled on a
machine without the training stack.

Front door::

    from deg_train.project import Project, read_labels, write_labels, make_split, FrameCache, read_outputs
"""

from deg_live.labels import LabelError, LabelTable, empty_labels, read_labels, write_labels
from deg_live.outputs import ModelOutputs, OutputsError, outputs_path_for, read_outputs, write_outputs
from deg_train.project.boris import import_boris, read_boris
from deg_train.project.frame_cache import FrameCache
from deg_train.project.layout import Project, ProjectError, VideoRecord, label_counts
from deg_train.project.settings import ProjectSettings, load_project_settings
from deg_train.project.splits import Split, SplitError, make_split

__all__ = [
    "FrameCache",
    "LabelError",
    "LabelTable",
    "ModelOutputs",
    "OutputsError",
    "Project",
    "ProjectError",
    "ProjectSettings",
    "Split",
    "SplitError",
    "VideoRecord",
    "empty_labels",
    "import_boris",
    "label_counts",
    "load_project_settings",
    "make_split",
    "outputs_path_for",
    "read_boris",
    "read_labels",
    "read_outputs",
    "write_labels",
    "write_outputs",
]
