"""camera_adapters: frame sources (cameras, video files, synthetic) and the ZeroMQ frame wire format.

The bottom layer of the project: it never imports torch, deg_train or deg_live, so a camera PC needs only
numpy, pyzmq and PyAV. It also holds the small foundations every package shares: typed settings
(:mod:`camera_adapters.settings`), atomic file writes (:mod:`camera_adapters.files`), the user-error base
class (:mod:`camera_adapters.errors`) and video decoding (:mod:`camera_adapters.video`).
"""

from camera_adapters.errors import UserFacingError

__version__ = "0.1.0"
__all__ = ["UserFacingError"]
