"""Stage II of MMGT: MM-HAA video diffusion (diffusers-native components, processors, training, pipeline).

Networks (torch / diffusers / transformers / :mod:`mmgt.masks` only): :mod:`.attention` (reference and
MM-HAA attention processors), :mod:`.denoiser` (``MMGTDenoiser``), :mod:`.reference_net`, :mod:`.pose_guider`,
:mod:`.audio_proj`, :mod:`.guidance` (mask-guidance ablations), :mod:`.components`. Weights on disk:
:mod:`.loading` (pretrained local folders), :mod:`.export` (``Stage2Export``). Training: :mod:`.module`
(``Stage2LitModule``). Generation: :mod:`.pipeline` (``Stage2Pipeline``). Heavier modules are not imported
here, so ``import mmgt.stage2`` stays cheap.
"""
