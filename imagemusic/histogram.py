"""The colour-histogram nearest-neighbour baseline of image -> music retrieval (``docs/images.md``).

It needs no training: a query picture is answered with the tracks of the training pictures whose
colours are most like its own. If an image run does not beat it, the run learned nothing a colour
histogram does not already know.

Each picture's colours are summarised by a joint HSV histogram (``bins`` = 8 hue x 4 saturation x 4
value bins, shares of the pixels); two pictures are compared by the Bhattacharyya coefficient
(the dot product of the square roots of their histograms: 1 = the same colours, 0 = none in common).
"""
from __future__ import annotations

import numpy as np

__all__ = ['hsv_histograms', 'HistogramBaseline', 'BINS']

#: Hue, saturation and value bins of the joint histogram.
BINS = (8, 4, 4)


def hsv_histograms(pictures, bins=BINS) -> np.ndarray:
    """Joint HSV histograms of pictures float32 [n, H, W, 3] RGB in [0, 1] -> float32 [n, prod(bins)]
    (each row sums to 1)."""
    from PIL import Image
    pictures = np.asarray(pictures, np.float32)
    out = np.zeros((len(pictures), int(np.prod(bins))), np.float32)
    edges = np.asarray(bins)
    for i, picture in enumerate(pictures):
        rgb = np.clip(np.round(picture * 255.0), 0, 255).astype(np.uint8)
        hsv = np.asarray(Image.fromarray(rgb, 'RGB').convert('HSV'), np.int64).reshape(-1, 3)
        cell = np.minimum(hsv * edges // 256, edges - 1)
        flat = (cell[:, 0] * bins[1] + cell[:, 1]) * bins[2] + cell[:, 2]
        out[i] = np.bincount(flat, minlength=out.shape[1]) / len(flat)
    return out


class HistogramBaseline:
    """Nearest training pictures by colour -> their tracks.

    Parameters
    ----------
    pictures : float32 [n, H, W, 3]
        The training pictures (RGB in [0, 1]).
    track_ids : list of str
        The track of each training picture.
    """

    def __init__(self, pictures, track_ids, bins=BINS):
        self.bins = tuple(bins)
        self.track_ids = list(track_ids)
        self.roots = np.sqrt(hsv_histograms(pictures, self.bins))
        if len(self.roots) != len(self.track_ids):
            raise ValueError(f'{len(self.roots)} pictures but {len(self.track_ids)} track ids')

    def query(self, pictures, k: int) -> list:
        """For each picture of float32 [q, H, W, 3]: up to ``k`` distinct track ids, those of the most
        similar training pictures first."""
        scores = np.sqrt(hsv_histograms(pictures, self.bins)) @ self.roots.T
        out = []
        for row in scores:
            ranked = []
            for j in np.argsort(-row, kind='stable'):
                if self.track_ids[j] not in ranked:
                    ranked.append(self.track_ids[j])
                    if len(ranked) == k:
                        break
            out.append(ranked)
        return out
