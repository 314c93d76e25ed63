"""Average precision from per-detection match flags, with per-image weights (for the bootstrap).

Detection matching (which detection hits which ground truth) is decided inside one image, so it does not
change when images are resampled; only the accumulation over the dataset does. These functions take the
match flags once and re-accumulate them under weights (how often each image is in a resample), vectorised
over many resamples. With all weights 1 they reproduce the point estimates exactly:

* ``coco_ap``: COCO's 101-point interpolated precision (``pycocotools.COCOeval.accumulate``), one IoU
  threshold, one category;
* ``voc_ap``: VOC's all-point (area under the monotone precision envelope) AP and the final recall.

>>> tp = np.array([True, False, True]); img = np.array([0, 0, 1])
>>> float(voc_ap(tp, img, np.array([1, 1]), np.ones((1, 2)))[0][0])
0.8333333333333333
"""

from __future__ import annotations

import numpy as np

REC_THRS = np.linspace(0.0, 1.0, 101)


def _cum(tp: np.ndarray, img: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Weighted cumulative true/false positives, shape ``(B, D)``, for detections in rank order."""
    dw = weights[:, img] if len(img) else np.zeros((weights.shape[0], 0))
    return np.cumsum(dw * tp, axis=1), np.cumsum(dw * ~tp, axis=1)


def coco_ap(
    tp: np.ndarray, ignore: np.ndarray, img: np.ndarray, n_gt: np.ndarray, weights: np.ndarray
) -> np.ndarray:
    """COCO AP of one category for each row of ``weights`` (shape ``(B, n_images)``); NaN where the
    resample has no ground truth of this category.

    ``tp`` / ``ignore`` / ``img``: per detection (already in COCO's rank order), whether it matched, whether
    COCO ignores it, and its image index; ``n_gt``: non-ignored ground truths per image.
    """
    keep = ~ignore
    tpc, fpc = _cum(tp[keep], img[keep], weights)
    npig = weights @ n_gt
    out = np.full(weights.shape[0], np.nan)
    for b in range(weights.shape[0]):
        if npig[b] <= 0:
            continue
        t, f = tpc[b], fpc[b]
        q = np.zeros(len(REC_THRS))
        if len(t):
            rc = t / npig[b]
            pr = t / (f + t + np.spacing(1))
            pr = np.maximum.accumulate(pr[::-1])[::-1]  # COCO's right-to-left precision envelope
            inds = np.searchsorted(rc, REC_THRS, side="left")
            valid = inds < len(pr)
            q[valid] = pr[inds[valid]]
        out[b] = q.mean()
    return out


def voc_ap(
    tp: np.ndarray, img: np.ndarray, n_gt: np.ndarray, weights: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """VOC all-point AP and final recall of one class for each row of ``weights``; NaN without ground truth.

    ``tp``: per detection in rank order, whether it is a true positive; ``img``: its image index;
    ``n_gt``: ground truths of this class per image.
    """
    tpc, fpc = _cum(tp, img, weights)
    npos = weights @ n_gt
    ap = np.full(weights.shape[0], np.nan)
    ar = np.full(weights.shape[0], np.nan)
    for b in range(weights.shape[0]):
        if npos[b] <= 0:
            continue
        rec = tpc[b] / npos[b]
        prec = tpc[b] / np.maximum(tpc[b] + fpc[b], np.finfo(float).eps)
        mrec = np.concatenate([[0.0], rec, [1.0]])
        mpre = np.concatenate([[0.0], prec, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        i = np.where(mrec[1:] != mrec[:-1])[0]
        ap[b] = float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))
        ar[b] = float(rec[-1]) if len(rec) else 0.0
    return ap, ar
