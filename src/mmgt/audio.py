"""Audio features at 25 fps behind one interface: weight-free extractors and pretrained speech encoders.

The weight-free ones are log-mel, MFCC, energy and onset; the pretrained speech encoders are wav2vec2 /
WavLM / HuBERT from a local ``transformers`` folder.

Every extractor maps audio (N,) float32 mono 16 kHz to features (T, *feature_shape) float32 with one row per
video frame (25 fps). ``T = n_frames`` when given, else :func:`mmgt.schema.num_frames_for_samples` (N), i.e.
round(N / 640). The audio is first zero-padded / trimmed to exactly ``T * 640`` samples, so video frame ``t``
always sees samples ``[640 t, 640 (t + 1))`` (plus analysis-window context) whether or not ``n_frames`` was
given. Each extractor has a ``name``, stable and unique per settings, used as the cache key
``<clip>/features/<name>.npy`` (:func:`load_or_compute_features`).

Weight-free extractors (numpy/scipy + python_speech_features; no librosa):

=====================  =====================  ===========================================================
name                   shape                  what
=====================  =====================  ===========================================================
``logmel80``           (T, 80)                log(mel power + 1e-6); 25 ms Hann windows, 10 ms hop,
                                              Slaney mel filterbank (librosa defaults), the mel power of
                                              the 4 sub-frames of a video frame averaged before the log
``mfcc13``             (T, 13)                ``python_speech_features.mfcc`` defaults at 100 Hz, mean of
                                              the 4 sub-frames of each video frame (+ deltas: ``-d1/-d2``)
``energy`` / ``rms``   (T, 1)                 log(mean square + 1e-8) / RMS of the frame's 640 samples
``onset``              (T, 1)                 spectral flux of the 10 ms log-mel, half-wave rectified,
                                              averaged over bands, mean over the frame's sub-frames
``a+b+...``            (T, sum of dims)       :class:`ConcatExtractor`; ``conf/audio_encoder/baseline``
                                              = logmel80+energy+onset+mfcc13 (95-d)
=====================  =====================  ===========================================================

Non-default settings are appended to the name (e.g. ``logmel40-nfft1024``).

Configs build extractors with Hydra (``conf/audio_encoder/<name>.yaml``: ``_target_`` nodes); what is stored
(export metadata) is :meth:`AudioFeatureExtractor.node`, rebuilt by ``mmgt.factory.build(node,
AUDIO_ENCODER_CLASSES, source)``. The classes live in :mod:`mmgt.audio_extractors` (interface and
weight-free), :mod:`mmgt.audio_pretrained` and :mod:`mmgt.audio_release` (the released MMGT's librosa set).

Pretrained encoders (:class:`PretrainedSpeechEncoder`, name ``<kind>-<folder name>-<layers>[-hidden]``)
load with ``from_pretrained(model_dir, local_files_only=True)`` only. ``interpolate="features"`` is the
Hallo / MMGT Stage-II way (CNN features linearly interpolated to T frames *before* the transformer, which
then runs at 25 fps); ``"hidden"`` runs the whole model at its native rate (50 Hz) and interpolates the
hidden states. Both give (T, L, D) for ``layers="all"`` (the L transformer layers' outputs,
``hidden_states[1:]`` as in Hallo: (T, 12, 768) for wav2vec2-base), (T, len(layers), D) for a list of
``hidden_states`` indices (0 = transformer input, i = output of layer i) and (T, D) for ``layers="last"``
(``last_hidden_state``, after the final layer norm of stable-layer-norm models; the WavLM SMGA reference).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import numpy as np

from mmgt import audio_extractors, audio_pretrained, audio_release
from mmgt.atomic import save_npy
from mmgt.audio_extractors import *  # noqa: F403 - re-exported: the classes' public home is this module
from mmgt.audio_extractors import AudioFeatureExtractor
from mmgt.audio_pretrained import *  # noqa: F403
from mmgt.audio_release import *  # noqa: F403
from mmgt.factory import build, registry
from mmgt.schema import num_frames_for_samples
from mmgt.untrusted import UntrustedFileError, load_npy

if TYPE_CHECKING:
    from mmgt.clipstore import Clip

log = logging.getLogger(__name__)

_MODULES = (audio_extractors, audio_pretrained, audio_release)

AUDIO_ENCODER_CLASSES = registry(
    *(getattr(m, name) for m in _MODULES for name in m.__all__ if name != "AudioFeatureExtractor")
)
"""The extractors a stored node may name (``mmgt.factory.build(node, AUDIO_ENCODER_CLASSES, source)``): every
class of those modules but the interface."""

__all__ = [
    "AUDIO_ENCODER_CLASSES",
    "extractor_from_node",
    "load_or_compute_features",
    *(n for m in _MODULES for n in m.__all__),
]


def extractor_from_node(node: Any, source: str) -> AudioFeatureExtractor:
    """The extractor a stored node describes (:func:`mmgt.factory.build`, :data:`AUDIO_ENCODER_CLASSES`).

    Raises:
        UntrustedFileError: naming ``source``, for a class outside the allow-list or a value that is not an
            extractor node (e.g. ``"baseline"`` in an export written before nodes were stored).
    """
    extractor = build(node, AUDIO_ENCODER_CLASSES, source)
    if not isinstance(extractor, AudioFeatureExtractor):
        raise UntrustedFileError(
            f"{source}: {node!r} is not an audio encoder node ({{'_target_': 'mmgt.audio_...', ...}}: what "
            "AudioFeatureExtractor.node() writes); re-export the model"
        )
    return extractor


def load_or_compute_features(clip: Clip, extractor: AudioFeatureExtractor, cache: bool = True) -> np.ndarray:
    """Features (T, *feature_shape) of ``clip``: read from the clip's feature cache, else computed.

    The cached ``features/<name>.npy`` is used when it exists and its shape matches (T =
    ``clip.record.n_frames``, or the audio's frame count when the record has none); otherwise the features are
    computed from ``clip.audio()`` and, with ``cache=True``, written atomically (:func:`mmgt.atomic.save_npy`;
    concurrent writers are safe, the last identical file wins).
    """
    path = clip.feature_path(extractor.name)
    n_frames = int(clip.record.n_frames)
    audio = None
    if n_frames <= 0:
        audio = clip.audio()
        n_frames = num_frames_for_samples(audio.shape[0])
    expected = (n_frames, *extractor.feature_shape())
    if path.is_file():
        try:
            cached = load_npy(path, f"cached audio features {extractor.name!r}")
        except (ValueError, OSError, EOFError) as e:
            log.warning("%s: unreadable cached features (%s); recomputing", path, e)
        else:
            if cached.shape == expected:
                return cached.astype(np.float32, copy=False)
            log.warning("%s: cached shape %s != expected %s; recomputing", path, cached.shape, expected)
    if audio is None:
        audio = clip.audio()
    feats = extractor(audio, n_frames=n_frames)
    if cache:
        save_npy(path, feats)
    return feats
