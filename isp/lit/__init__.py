"""Lightning layer: the DenoiseModule, its metrics and TensorBoard previews."""

from isp.lit.metrics import image_metrics, iso_bucket_index, iso_bucket_names, psnr_metric
from isp.lit.module import LOSSES, DenoiseModule, denoise_loss
from isp.lit.previews import side_by_side

__all__ = [
    "LOSSES",
    "DenoiseModule",
    "denoise_loss",
    "image_metrics",
    "iso_bucket_index",
    "iso_bucket_names",
    "psnr_metric",
    "side_by_side",
]
