"""The released MMGT's 35 hand-crafted audio features (librosa), as an audio feature extractor.

They are the part of its 1059-d Stage I condition beside WavLM-Large (``mmgt-reference.md`` §b.1), here as an
:class:`~mmgt.audio_extractors.AudioFeatureExtractor`.

Computed, as the original does, at SR = 25 x 512 = 12800 Hz with hop 512 (25 fps), from the audio resampled
from 16 kHz, per frame:

========================================================  ====  ========================================
feature                                                   dims  librosa call (defaults otherwise)
========================================================  ====  ========================================
onset strength envelope                                   1     ``onset.onset_strength(y, sr)``
MFCC                                                      20    ``feature.mfcc(y, sr, n_mfcc=20)``
chroma_cens                                               12    ``feature.chroma_cens(y, sr, hop, 12)``
onset-peak one-hot                                        1     ``onset.onset_detect(envelope, sr, hop)``
beat one-hot                                              1     ``beat.beat_track(envelope, sr, hop,
                                                                start_bpm, tightness=100)``, start_bpm
                                                                from ``feature.tempo`` at 22.05 kHz
========================================================  ====  ========================================

librosa is an optional dependency (``pip install 'mmgt[audio]'``; its first call compiles for ~17 s).
Written from the specification (the original code has no licence); not checked against the original's
output, which the fixtures do not hold.
"""

from __future__ import annotations

import numpy as np

from mmgt.audio_extractors import AudioFeatureExtractor
from mmgt.io import resample_audio
from mmgt.schema import FPS, SAMPLE_RATE

HOP = 512
SR = FPS * HOP
"""12800 Hz: one hop per video frame."""


def _librosa():  # noqa: ANN202 - the module
    try:
        import librosa
    except ImportError as e:
        raise ImportError(
            "the released MMGT's audio features need librosa: pip install 'mmgt[audio]' (or librosa)"
        ) from e
    return librosa


class ReleaseLibrosaFeatures(AudioFeatureExtractor):
    """(T, 35): onset envelope 1, MFCC 20, chroma_cens 12, onset-peak and beat one-hots (see the module)."""

    name = "mmgt_release_librosa35"

    def __init__(self) -> None:
        self._args = {}
        _librosa()  # fail at build time, not on the first clip

    def feature_shape(self) -> tuple[int, ...]:
        """(35,): onset 1 + MFCC 20 + chroma_cens 12 + onset peak 1 + beat 1."""
        return (35,)

    def _extract(self, audio: np.ndarray, n_frames: int) -> np.ndarray:
        librosa = _librosa()
        y = resample_audio(audio, SAMPLE_RATE, SR)
        envelope = librosa.onset.onset_strength(y=y, sr=SR)  # hop 512: 1 + len(y) // 512 frames
        mfcc = librosa.feature.mfcc(y=y, sr=SR, n_mfcc=20).T
        chroma = librosa.feature.chroma_cens(y=y, sr=SR, hop_length=HOP, n_chroma=12).T
        peaks = np.zeros_like(envelope, dtype=np.float32)
        peaks[librosa.onset.onset_detect(onset_envelope=envelope, sr=SR, hop_length=HOP)] = 1.0
        start_bpm = float(librosa.feature.tempo(y=resample_audio(audio, SAMPLE_RATE, 22050), sr=22050)[0])
        _, beat_idx = librosa.beat.beat_track(
            onset_envelope=envelope, sr=SR, hop_length=HOP, start_bpm=start_bpm, tightness=100
        )
        beats = np.zeros_like(envelope, dtype=np.float32)
        beats[beat_idx] = 1.0
        n = min(len(envelope), len(mfcc), len(chroma))
        feats = np.concatenate(
            [envelope[:n, None], mfcc[:n], chroma[:n], peaks[:n, None], beats[:n, None]], axis=1
        ).astype(np.float32)
        if n < n_frames:  # never for T * 640 samples (T + 1 frames); kept for safety
            feats = np.pad(feats, ((0, n_frames - n), (0, 0)), mode="edge")
        return feats[:n_frames]


__all__ = ["ReleaseLibrosaFeatures"]
