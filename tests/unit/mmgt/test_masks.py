"""mmgt.masks: box masks from keypoints, smoothing, blur, background, resizing, batching."""

from __future__ import annotations

from dataclasses import replace

import cv2
import numpy as np
import pytest
import torch

from mmgt import schema as S
from mmgt.masks import (
    MaskConfig,
    MotionMaskGenerator,
    motion_masks,
    multi_resolution_masks,
    rasterize_boxes,
    region_boxes,
    resize_masks,
    static_masks,
)
from tests.helpers.poses import box_pose, make_pose

HARD = MaskConfig(regions=("face_hands",), expand_ratio=1.0, min_size=0.0, smooth_frames=1, blur_sigma=0.0)


def np_box(box: tuple[float, float, float, float], h: int, w: int) -> np.ndarray:
    """Reference raster: pixels whose centre lies inside the box."""
    ys = (np.arange(h) + 0.5) / h
    xs = (np.arange(w) + 0.5) / w
    x0, y0, x1, y1 = box
    return ((ys[:, None] >= y0) & (ys[:, None] <= y1) & (xs[None] >= x0) & (xs[None] <= x1)).astype(float)


def iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0.5, b > 0.5
    return float((a & b).sum() / max((a | b).sum(), 1))


def area(m: torch.Tensor) -> float:
    return float(m.sum())


def test_face_box_matches_numpy_raster() -> None:
    box = (0.3, 0.2, 0.6, 0.5)
    m = motion_masks(box_pose(box, T=3), 128, HARD)
    assert m.shape == (3, 1, 128, 128)
    for t in range(3):
        assert iou(m[t, 0].numpy(), np_box(box, 128, 128)) > 0.95
    # area-exact rasterisation: covered area equals box area in pixels
    assert area(m[0, 0]) == pytest.approx(0.3 * 0.3 * 128 * 128, rel=1e-4)


def test_expansion_grows_area_by_ratio_squared() -> None:
    kps = box_pose((0.4, 0.4, 0.6, 0.55))
    base = area(motion_masks(kps, 200, HARD))
    cfg = MaskConfig(regions=("face",), expand_ratio=1.2, min_size=0.0, smooth_frames=1, blur_sigma=0.0)
    grown = area(motion_masks(kps, 200, cfg))
    assert grown / base == pytest.approx(1.44, rel=0.02)
    boxes, valid = region_boxes(kps, (S.REGIONS["face"],), cfg)
    assert valid.all()
    torch.testing.assert_close(boxes[0, 0], torch.tensor([0.38, 0.385, 0.62, 0.565]), atol=1e-5, rtol=0)


def test_min_size_enlarges_tiny_box() -> None:
    kps = box_pose((0.50, 0.50, 0.51, 0.505))
    tiny = area(motion_masks(kps, 100, replace(HARD, normalize=False)))  # no peak normalisation
    cfg = MaskConfig(regions=("face_hands",), expand_ratio=1.0, min_size=0.1, smooth_frames=1, blur_sigma=0.0)
    big = motion_masks(kps, 100, cfg)
    assert tiny == pytest.approx(1.0 * 0.5, rel=1e-3)  # 1 x 0.5 px
    assert area(big) == pytest.approx(100.0, rel=1e-3)  # 10 x 10 px, centred on the tiny box
    ys, xs = torch.nonzero(big[0, 0] > 0.5, as_tuple=True)
    assert xs.float().mean().item() == pytest.approx(50.5 - 0.5, abs=0.6)
    assert ys.float().mean().item() == pytest.approx(50.25 - 0.5, abs=0.6)


def test_invisible_points_are_ignored() -> None:
    box = (0.3, 0.3, 0.5, 0.5)
    kps = box_pose(box)
    kps[0, S.FACE.start + 10, :] = (0.95, 0.95, 0.1)  # far away but below the threshold
    kps[0, S.FACE.start + 11, :] = (0.05, 0.05, 0.0)
    m = motion_masks(kps, 64, HARD)
    assert iou(m[0, 0].numpy(), np_box(box, 64, 64)) > 0.95
    assert m[0, 0, 60, 60] == 0 and m[0, 0, 3, 3] == 0


def test_region_without_visible_points() -> None:
    kps = box_pose((0.3, 0.3, 0.5, 0.5))  # only the face is visible ...
    kps[:, S.LIPS, 2] = 0.0  # ... without the lips
    cfg = MaskConfig(regions=("face_hands", "hands", "lips", "background"))
    m = motion_masks(kps, 64, cfg)
    assert m[:, 1].abs().max() == 0  # hands
    assert m[:, 2].abs().max() == 0  # lips
    assert m[:, 0].max() == 1
    kps_none = np.zeros_like(kps)
    m_none = motion_masks(kps_none, 64, cfg)
    assert m_none[:, :3].abs().max() == 0
    assert torch.all(m_none[:, 3] == 1)  # background = 1 when nothing is visible
    _, valid = region_boxes(kps_none, (S.REGIONS["face"],))
    assert not valid.any()


def test_lips_box_with_only_lip_points() -> None:
    box = (0.45, 0.5, 0.55, 0.55)
    kps = box_pose(box, region=S.LIPS)
    cfg = MaskConfig(regions=("lips", "face"), expand_ratio=1.0, min_size=0.0, smooth_frames=1, blur_sigma=0)
    m = motion_masks(kps, 100, cfg)
    assert iou(m[0, 0].numpy(), np_box(box, 100, 100)) > 0.95
    torch.testing.assert_close(m[0, 0], m[0, 1])  # lips are part of the face


def test_background_is_complement_and_range() -> None:
    kps = make_pose(T=6)
    cfg = MaskConfig(regions=("face_hands", "lips", "hands", "background", "face"), blur_sigma=0.0)
    m = motion_masks(kps, 64, cfg)
    assert m.shape == (6, 5, 64, 64)
    torch.testing.assert_close(m[:, 3], 1 - m[:, 0])
    blurred = motion_masks(kps, 64, MaskConfig(regions=cfg.regions))
    for mm in (m, blurred):
        assert mm.min() >= 0 and mm.max() <= 1
    torch.testing.assert_close(blurred[:, 3], 1 - blurred[:, 0])
    # normalisation: every non-empty region peaks at 1 after the blur
    torch.testing.assert_close(blurred[:, [0, 1, 2, 4]].amax(dim=(-2, -1)), torch.ones(6, 4))
    # the blur spreads the mask beyond the hard box
    assert (blurred[:, 0] > 0.01).sum() > (m[:, 0] > 0.01).sum()


def test_batched_equals_per_item_and_default_shape() -> None:
    kps = np.stack([make_pose(T=5, seed=s) for s in range(3)])  # (B, T, 134, 3)
    batched = motion_masks(torch.from_numpy(kps), 48)
    assert batched.shape == (3, 5, len(S.MASK_REGIONS), 48, 48)
    for b in range(3):
        torch.testing.assert_close(batched[b], motion_masks(kps[b], 48), atol=1e-6, rtol=0)


def test_non_square_size() -> None:
    box = (0.25, 0.25, 0.75, 0.5)
    m = motion_masks(box_pose(box), (40, 80), HARD)
    assert m.shape == (1, 1, 40, 80)
    assert iou(m[0, 0].numpy(), np_box(box, 40, 80)) > 0.95
    blurred = motion_masks(make_pose(T=2), (32, 96))
    assert blurred.shape == (2, 3, 32, 96) and blurred.max() <= 1


def _centroid_x(m: torch.Tensor) -> np.ndarray:
    xs = torch.arange(m.shape[-1], dtype=m.dtype)
    return ((m * xs).sum(dim=(-2, -1)) / m.sum(dim=(-2, -1))).numpy()


def test_temporal_smoothing_reduces_jitter() -> None:
    T = 60
    rng = np.random.default_rng(0)
    cx = 0.5 + rng.normal(0.0, 0.02, size=T)
    kps = np.concatenate([box_pose((c - 0.1, 0.3, c + 0.1, 0.5)) for c in cx])
    raw = motion_masks(kps, 128, HARD)[:, 0]
    smooth_cfg = MaskConfig(
        regions=("face_hands",), expand_ratio=1.0, min_size=0, smooth_frames=9, blur_sigma=0
    )
    smooth = motion_masks(kps, 128, smooth_cfg)[:, 0]
    std_raw, std_smooth = _centroid_x(raw).std(), _centroid_x(smooth).std()
    assert std_smooth < 0.5 * std_raw
    # a static box is unchanged by smoothing, and invalid frames stay invalid
    static = np.repeat(box_pose((0.3, 0.3, 0.5, 0.5)), 7, axis=0)
    static[3, :, 2] = 0
    b1, v1 = region_boxes(static, (S.REGIONS["face"],), MaskConfig(smooth_frames=5))
    assert v1[:, 0].tolist() == [True, True, True, False, True, True, True]
    torch.testing.assert_close(b1[v1], b1[0, 0].expand(6, 4))


def test_rasterize_boxes_soft_edges_and_validity() -> None:
    boxes = torch.tensor([[0.25, 0.25, 0.75, 0.75], [0.1, 0.1, 0.9, 0.9]])
    r = rasterize_boxes(boxes, torch.tensor([True, False]), 8, 8)
    assert r.shape == (2, 8, 8)
    assert r[0].sum() == 16 and set(r[0].unique().tolist()) == {0.0, 1.0}
    assert r[1].abs().max() == 0
    half = rasterize_boxes(torch.tensor([[0.0, 0.0, 0.5625, 1.0]]), torch.tensor([True]), 1, 8)
    torch.testing.assert_close(half[0, 0, 4], torch.tensor(0.5))


def test_resize_masks_resolutions_and_coverage() -> None:
    m = motion_masks(make_pose(T=4), 128)
    outs = resize_masks(m, [64, 32, (16, 8), 8])
    assert [tuple(o.shape[-2:]) for o in outs] == [(64, 64), (32, 32), (16, 8), (8, 8)]
    for o in outs:
        assert o.shape[:-2] == m.shape[:-2]
        assert o.min() >= 0 and o.max() <= 1
        torch.testing.assert_close(o.mean(dim=(-2, -1)), m.mean(dim=(-2, -1)), atol=2e-3, rtol=0.02)
    up = resize_masks(m, [256])[0]
    assert up.shape[-2:] == (256, 256) and up.min() >= 0 and up.max() <= 1


def test_multi_resolution_generator_and_static_masks() -> None:
    kps = make_pose(T=5)
    gen = MotionMaskGenerator(resolutions=[64, 32, 16, 8], regions=["face_hands", "lips", "background"])
    outs = gen(kps)
    assert [o.shape for o in outs] == [(5, 3, r, r) for r in (64, 32, 16, 8)]
    direct = multi_resolution_masks(kps, 64, [64, 32, 16, 8], gen.config)
    for a, b in zip(outs, direct, strict=True):
        torch.testing.assert_close(a, b)
    # rasterising at the latent size ~ rasterising at full size then downsampling
    full = multi_resolution_masks(kps, 256, [64], gen.config)[0]
    assert (full - outs[0]).abs().mean() < 0.01

    st = static_masks(kps[0], 7, 32)
    assert st.shape == (7, len(S.MASK_REGIONS), 32, 32)
    ref = motion_masks(kps[:1], 32)
    torch.testing.assert_close(st, ref.expand(7, -1, -1, -1))
    st_b = static_masks(np.stack([kps[0], kps[1]]), 3, 16)
    assert st_b.shape == (2, 3, len(S.MASK_REGIONS), 16, 16)


def test_numpy_input_and_validation() -> None:
    kps = make_pose(T=3)
    a = motion_masks(kps, 32)
    b = motion_masks(torch.from_numpy(kps), 32)
    torch.testing.assert_close(a, b)
    assert a.dtype == torch.float32
    with pytest.raises(S.KeypointLayoutError):
        motion_masks(np.zeros((3, 133, 3)), 32)
    with pytest.raises(ValueError):
        MaskConfig(regions=("elbows",))
    with pytest.raises(ValueError):
        MaskConfig(smooth_frames=4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")
def test_cuda_matches_cpu() -> None:
    kps = torch.from_numpy(make_pose(T=4))
    cpu = motion_masks(kps, 64)
    gpu = motion_masks(kps.cuda(), 64)
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-5, rtol=0)


def test_blur_matches_opencv_gaussian() -> None:
    kps = box_pose((0.05, 0.3, 0.5, 0.6))  # touches the left border region: exercises the padding
    hard = motion_masks(kps, (60, 80), replace(HARD, normalize=False))[0, 0].numpy()
    cfg = replace(HARD, blur_sigma=0.05, normalize=False)
    soft = motion_masks(kps, (60, 80), cfg)[0, 0].numpy()
    sy, sx = 0.05 * 60, 0.05 * 80
    tmp = cv2.GaussianBlur(
        hard, (2 * int(np.ceil(3 * sx)) + 1, 1), sigmaX=sx, borderType=cv2.BORDER_REPLICATE
    )
    ref = cv2.GaussianBlur(
        tmp, (1, 2 * int(np.ceil(3 * sy)) + 1), sigmaX=0, sigmaY=sy, borderType=cv2.BORDER_REPLICATE
    )
    np.testing.assert_allclose(soft, ref, atol=1e-5)
    assert soft.sum() == pytest.approx(hard.sum(), rel=0.02)  # blur preserves mass away from the border
