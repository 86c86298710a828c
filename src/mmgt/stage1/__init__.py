"""Stage I - SMGA: audio -> pose windows (transformer diffusion over 80-frame keypoint windows).

* :class:`SMGATransformer` (``network``): the denoiser, a diffusers ``ModelMixin``/``ConfigMixin``
  (``save_pretrained`` / ``from_pretrained``); predicts x0 from x_t, timestep, audio features and the
  previous pose, with null audio embeddings for classifier-free guidance.
* :class:`PoseDiffusion`, :class:`PoseLossWeights` (``diffusion``): cosine-schedule x0 diffusion through
  diffusers schedulers - training losses (position, velocity, acceleration, face weight, visibility)
  and DDIM sampling with batched classifier-free guidance.
* :class:`Stage1Export`, :class:`PosePipeline` (``export``): the export's typed metadata (sampling defaults
  defined once) and ``PosePipeline.from_pretrained(dir)(audio, ref_pose, n_frames)``.
* :class:`SMGAReferenceTransformer` (``network``): the original's 402-d pose layout;
  :func:`load_reference_checkpoint` (``reference``): the authors' released checkpoint layout
  (``audio2pose_best_model.pt``) mapped onto it in its reference configuration.
* ``positions``: the position encodings of the attention layers (a registered name in the config).

Networks import torch, diffusers and :mod:`mmgt.schema` only (no Lightning, Hydra or file IO; the
checkpoint loader in ``reference`` is the one file reader).
"""

from mmgt.stage1.diffusion import PoseDiffusion, PoseLossWeights
from mmgt.stage1.export import PosePipeline, Stage1Export
from mmgt.stage1.network import SMGAReferenceTransformer, SMGATransformer
from mmgt.stage1.reference import load_reference_checkpoint

__all__ = [
    "PoseDiffusion",
    "PoseLossWeights",
    "PosePipeline",
    "SMGAReferenceTransformer",
    "SMGATransformer",
    "Stage1Export",
    "load_reference_checkpoint",
]
