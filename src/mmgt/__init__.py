"""MMGT: Motion Mask Guided Two-Stage co-speech gesture video generation.

Bottom floor: :mod:`mmgt.schema` (constants, keypoint layout, tensor conventions), :mod:`mmgt.io`
(video/audio files), :mod:`mmgt.clipstore` (dataset format), :mod:`mmgt.masks` (motion masks),
:mod:`mmgt.render` (pose frames and overlays). See ARCHITECTURE.md for the map.
"""

__version__ = "0.1.0"
