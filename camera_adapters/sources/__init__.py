"""Frame sources: every camera kind behind one small contract, registered by name.

``create_source(name, ["key=value", ...])`` builds one; ``available_sources()`` says which can run here.
Vendor SDKs (pypylon, harvesters) are imported only when their source opens, so importing this package needs
only numpy and PyAV.
"""

from camera_adapters.sources import basler, ffmpeg, genicam, synthetic, video_file  # noqa: F401 - registers them
from camera_adapters.sources.base import (
    SOURCES,
    Capabilities,
    EndOfStream,
    FrameSource,
    SourceError,
    SourceTimeout,
    SourceUnavailable,
    available_sources,
    create_source,
    get_source_class,
    register_source,
    source_names,
)

__all__ = [
    "SOURCES",
    "Capabilities",
    "EndOfStream",
    "FrameSource",
    "SourceError",
    "SourceTimeout",
    "SourceUnavailable",
    "available_sources",
    "create_source",
    "get_source_class",
    "register_source",
    "source_names",
]
