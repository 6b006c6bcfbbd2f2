"""The LightningModule: loss, optimiser/scheduler from the CLI, PSNR/SSIM per stage, previews.

Batches follow docs/CONTRACTS.md: ``image, target (N, 4, h, w)``, ``row (N, C2, h)``,
``col (N, C3, w)``, ``scalar (N, C4)``, ``wb (N, 3)``, ``cam_to_srgb (N, 3, 3)``, ``iso (N,)``,
``path`` (list of str). Metrics are computed in two domains, both on [0, 1]:

- raw: the packed planes, clipped to [0, 1];
- sRGB: after :func:`isp.models.render.raw_to_srgb` with each file's white balance and colour matrix.

Logged names (``<stage>`` is ``train``, ``val`` or ``test``): ``<stage>/loss``,
``<stage>/raw_psnr``, ``<stage>/raw_ssim``, ``<stage>/srgb_psnr``, ``<stage>/srgb_ssim`` and, for
reference, the noisy input's ``<stage>/input_raw_psnr`` and ``<stage>/input_srgb_psnr`` (train logs
only loss and raw PSNR). The test stage adds ``test/<bucket>/{raw_psnr,srgb_psnr,input_raw_psnr,
count}`` per ISO bucket (see :func:`isp.lit.metrics.iso_bucket_names`).
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Sequence
from typing import Literal, get_args

import lightning as L
import torch
import torch.nn.functional as F
from lightning.pytorch.cli import LRSchedulerCallable, OptimizerCallable
from lightning.pytorch.loggers import TensorBoardLogger
from torch import Tensor, nn
from torchmetrics import MeanMetric, MetricCollection, SumMetric
from torchmetrics.functional.image import peak_signal_noise_ratio

from isp.lit.metrics import image_metrics, iso_bucket_index, iso_bucket_names, psnr_metric
from isp.lit.previews import side_by_side
from isp.models.render import raw_to_srgb

__all__ = ["LOSSES", "DenoiseModule", "Loss", "denoise_loss"]

Loss = Literal["l1", "l2", "charbonnier", "psnr"]
LOSSES: tuple[str, ...] = get_args(Loss)


def denoise_loss(pred: Tensor, target: Tensor, kind: Loss = "l1", eps: float = 1e-3) -> Tensor:
    """Mean reconstruction loss between two same-shaped tensors.

    Args:
        pred: ``(N, C, H, W)`` prediction.
        target: ``(N, C, H, W)`` ground truth.
        kind: ``"l1"``, ``"l2"`` (mean squared error), ``"charbonnier"``
            (``sqrt(d**2 + eps**2)``, a smooth L1) or ``"psnr"`` (the negative PSNR of each image
            for data range 1, averaged over images: ``mean_i 10 log10(mse_i + 1e-10)``; it
            optimises the reported mean-over-images PSNR, so clean low-ISO images weigh as much as
            noisy ones; measured on the sample data it learned ~1.4x faster than L1).
        eps: the Charbonnier constant.

    Example:
        >>> denoise_loss(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 0.5), "l2")
        tensor(0.2500)
    """
    if kind == "l1":
        return F.l1_loss(pred, target)
    if kind == "l2":
        return F.mse_loss(pred, target)
    if kind == "charbonnier":
        return torch.sqrt((pred - target).square() + eps * eps).mean()
    if kind == "psnr":
        mse = (pred - target).square().flatten(1).mean(1)
        return 10 * torch.log10(mse + 1e-10).mean()
    raise ValueError(f"Expected `loss` to be one of {LOSSES}. Got {kind!r}.")


def _image_psnr(pred: Tensor, target: Tensor) -> Tensor:
    """Per-image PSNR ``(N,)`` of [0, 1] images ``(N, C, H, W)``."""
    return peak_signal_noise_ratio(pred, target, data_range=1.0, dim=(1, 2, 3), reduction="none")


class DenoiseModule(L.LightningModule):
    """Trains and evaluates a raw denoiser ``net(image, row, col, scalar) -> image``.

    Args:
        net: the network, e.g. :class:`isp.models.UNet` (in a config: a ``class_path``).
        loss: ``"l1"`` (default), ``"l2"``, ``"charbonnier"`` or ``"psnr"`` (see
            :func:`denoise_loss`), on the unclipped packed planes.
        optimizer: a callable ``params -> Optimizer`` (the CLI takes ``class_path``/``init_args``).
        scheduler: a callable ``optimizer -> LRScheduler``, or ``None`` for a constant rate.
        scheduler_interval: step the scheduler every ``"epoch"`` or every ``"step"``.
        monitor: the metric a ``ReduceLROnPlateau`` scheduler watches.
        iso_buckets: increasing upper ISO edges of the test-time breakdown.
        num_previews: images of the first validation batch logged to TensorBoard each epoch as
            noisy | denoised | clean sRGB (0: none).
        preview_max_height: previews taller than this are shrunk.
        srgb_metrics: also compute PSNR/SSIM after rendering to sRGB.
        init_weights: start from these weights instead of a random init: ``"default"`` (the
            shipped model) or a ``train.py`` checkpoint / exported ``.pt``; the architecture must
            match. For fine-tuning on your own data (unlike ``--ckpt_path``, which resumes a run
            with its optimizer and schedule).
        predict_ensemble: views ``trainer.predict`` averages per file (1 or 2: also the frame
            turned by 180 degrees, :mod:`isp.predict.ensemble`), as ``predict.py --ensemble``.

    Example:
        >>> from isp.models import UNet
        >>> module = DenoiseModule(UNet(base_width=4, depth=2, conditioning="film"))
        >>> module(torch.rand(1, 4, 8, 8), torch.rand(1, 5, 8), torch.rand(1, 5, 8), torch.rand(1, 5)).shape
        torch.Size([1, 4, 8, 8])
    """

    def __init__(
        self,
        net: nn.Module,
        loss: Loss = "l1",
        optimizer: OptimizerCallable = torch.optim.Adam,
        scheduler: LRSchedulerCallable | None = None,
        scheduler_interval: Literal["epoch", "step"] = "epoch",
        monitor: str = "val/raw_psnr",
        iso_buckets: Sequence[float] = (400.0, 1600.0, 6400.0),
        num_previews: int = 3,
        preview_max_height: int = 256,
        srgb_metrics: bool = True,
        init_weights: str | None = None,
        predict_ensemble: int = 2,
    ) -> None:
        super().__init__()
        if not isinstance(net, nn.Module):
            raise TypeError(f"Expected `net` to be a torch.nn.Module. Got {type(net).__name__}.")
        if loss not in LOSSES:
            raise ValueError(f"Expected `loss` to be one of {LOSSES}. Got {loss!r}.")
        if scheduler_interval not in ("epoch", "step"):
            raise ValueError(
                f"Expected `scheduler_interval` to be 'epoch' or 'step'. Got {scheduler_interval!r}."
            )
        if num_previews < 0:
            raise ValueError(f"Expected `num_previews` >= 0. Got {num_previews}.")
        if predict_ensemble not in (1, 2):
            raise ValueError(f"Expected `predict_ensemble` to be 1 or 2. Got {predict_ensemble!r}.")
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*is an instance of `nn.Module`.*")
            # init_weights is where a run started, not part of the module: a checkpoint must load
            # (load_from_checkpoint, resume) after those weights are gone
            self.save_hyperparameters(ignore=["init_weights"])
        if isinstance(self.hparams.get("net"), nn.Module):
            # built in Python, not by the CLI (whose hparams hold net's class_path / init_args, what
            # isp.weights reads): the module lives in the state dict, the callables with the run
            self.save_hyperparameters(
                ignore=["net", "optimizer", "scheduler", "init_weights"], frame=inspect.currentframe()
            )
        if init_weights is not None:
            _init_from(net, init_weights)
        self.net = net
        self.loss = loss
        self.optimizer_factory = optimizer
        self.scheduler_factory = scheduler
        self.scheduler_interval = scheduler_interval
        self.monitor = monitor
        self.iso_bucket_names = iso_bucket_names(iso_buckets)
        self.iso_buckets = [float(e) for e in iso_buckets]
        self.num_previews = num_previews
        self.preview_max_height = preview_max_height
        self.srgb_metrics = srgb_metrics
        self.predict_ensemble = predict_ensemble

        metrics = {"train_raw": MetricCollection({"psnr": psnr_metric()}).clone(prefix="train/raw_")}
        for stage in ("val", "test"):
            metrics[f"{stage}_raw"] = image_metrics().clone(prefix=f"{stage}/raw_")
            metrics[f"{stage}_input_raw"] = MetricCollection({"psnr": psnr_metric()}).clone(
                prefix=f"{stage}/input_raw_"
            )
            if srgb_metrics:
                metrics[f"{stage}_srgb"] = image_metrics().clone(prefix=f"{stage}/srgb_")
                metrics[f"{stage}_input_srgb"] = MetricCollection({"psnr": psnr_metric()}).clone(
                    prefix=f"{stage}/input_srgb_"
                )
        self.metrics = nn.ModuleDict(metrics)
        # per-image PSNRs averaged by MeanMetric: tensor states, so empty buckets sync under DDP
        bucket = {"raw_psnr": MeanMetric(), "input_raw_psnr": MeanMetric(), "count": SumMetric()}
        if srgb_metrics:
            bucket["srgb_psnr"] = MeanMetric()
        self.bucket_metrics = nn.ModuleList(
            MetricCollection(bucket, compute_groups=False).clone() for _ in self.iso_bucket_names
        )

    def forward(
        self,
        image: Tensor,
        row: Tensor | None = None,
        col: Tensor | None = None,
        scalar: Tensor | None = None,
    ) -> Tensor:
        """Run the network: ``(N, 4, h, w), (N, C2, h), (N, C3, w), (N, C4) -> (N, 4, h, w)``."""
        return self.net(image, row, col, scalar)

    def denoise(self, batch: dict) -> Tensor:
        """Denoise a contract batch: the unclipped planes ``(N, 4, h, w)``.

        Under CPU bf16 autocast (``--trainer.precision bf16-mixed``) the image goes in
        channels-last: oneDNN's bf16 convolutions in the contiguous layout are slow (a training
        step of the shipped size: 270 ms against 174 ms, docs/training_notes.md).
        """
        image = batch["image"]
        if (
            image.device.type == "cpu"
            and image.dim() == 4
            and torch.is_autocast_enabled("cpu")
            and torch.get_autocast_dtype("cpu") == torch.bfloat16
        ):
            image = image.contiguous(memory_format=torch.channels_last)
        return self(image, batch.get("row"), batch.get("col"), batch.get("scalar"))

    # -- steps -----------------------------------------------------------------------------------

    def training_step(self, batch: dict, batch_idx: int) -> Tensor:
        """Loss on one batch; logs ``train/loss`` and ``train/raw_psnr``."""
        pred = self.denoise(batch)
        target = batch["target"]
        loss = denoise_loss(pred, target, self.loss)
        n = target.shape[0]
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        train_raw = self.metrics["train_raw"]
        train_raw.update(pred.detach().clamp(0, 1), target.clamp(0, 1))
        self.log_dict(train_raw, on_step=False, on_epoch=True)
        return loss

    def _evaluate(self, batch: dict, stage: str) -> dict[str, Tensor]:
        pred = self.denoise(batch)
        target, noisy = batch["target"], batch["image"]
        n = target.shape[0]
        self.log(f"{stage}/loss", denoise_loss(pred, target, self.loss), batch_size=n, sync_dist=True)
        clipped = {"pred": pred.clamp(0, 1), "target": target.clamp(0, 1), "noisy": noisy.clamp(0, 1)}
        self.metrics[f"{stage}_raw"].update(clipped["pred"], clipped["target"])
        self.metrics[f"{stage}_input_raw"].update(clipped["noisy"], clipped["target"])
        self.log_dict(self.metrics[f"{stage}_raw"], prog_bar=stage == "val")
        self.log_dict(self.metrics[f"{stage}_input_raw"])
        rendered = {}
        if self.srgb_metrics:
            rendered = self._render(batch, pred)
            self.metrics[f"{stage}_srgb"].update(rendered["pred"], rendered["target"])
            self.metrics[f"{stage}_input_srgb"].update(rendered["noisy"], rendered["target"])
            self.log_dict(self.metrics[f"{stage}_srgb"])
            self.log_dict(self.metrics[f"{stage}_input_srgb"])
        return {"pred": pred, "clipped": clipped, "rendered": rendered}

    def _render(self, batch: dict, pred: Tensor) -> dict[str, Tensor]:
        wb, cam = batch["wb"], batch["cam_to_srgb"]
        return {
            "pred": raw_to_srgb(pred, wb, cam),
            "target": raw_to_srgb(batch["target"], wb, cam),
            "noisy": raw_to_srgb(batch["image"], wb, cam),
        }

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        """Raw and sRGB metrics; previews of the first batch each epoch."""
        out = self._evaluate(batch, "val")
        if batch_idx == 0 and self.num_previews and not self.trainer.sanity_checking:
            self._log_previews(batch, out)

    def test_step(self, batch: dict, batch_idx: int) -> None:
        """Raw and sRGB metrics, and their breakdown by ISO bucket."""
        out = self._evaluate(batch, "test")
        iso = batch.get("iso")
        if iso is None:
            iso = torch.zeros(out["pred"].shape[0], device=self.device)
        index = iso_bucket_index(iso, self.iso_buckets)
        clipped, rendered = out["clipped"], out["rendered"]
        psnr = {
            "raw_psnr": _image_psnr(clipped["pred"], clipped["target"]),
            "input_raw_psnr": _image_psnr(clipped["noisy"], clipped["target"]),
        }
        if self.srgb_metrics:
            psnr["srgb_psnr"] = _image_psnr(rendered["pred"], rendered["target"])
        for b, collection in enumerate(self.bucket_metrics):
            mask = index == b
            if not mask.any():
                continue
            collection["count"].update(mask.sum().float())
            for key, values in psnr.items():
                collection[key].update(values[mask])

    def on_test_epoch_end(self) -> None:
        """Log each ISO bucket that saw images (synchronised across processes first)."""
        for name, collection in zip(self.iso_bucket_names, self.bucket_metrics, strict=True):
            with warnings.catch_warnings():  # empty buckets warn that compute precedes update
                warnings.filterwarnings("ignore", message=".*compute.*before.*update.*")
                values = {key: metric.compute() for key, metric in collection.items()}
            if values["count"] > 0:  # the same decision on every process: the count is synced
                for key, value in values.items():
                    self.log(f"test/{name}/{key}", value)
            collection.reset()

    def predict_step(self, batch: dict, batch_idx: int, dataloader_idx: int = 0) -> list[tuple]:
        """Denoise the whole file of each item for ``trainer.predict``, as ``predict.py`` does.

        The batch only names the files (``path``) and their gain (``scalar`` channel
        :data:`isp.data.inputs.GAIN_SCALAR`): each file is read again and denoised whole and tiled
        by :func:`isp.predict.denoise_file`, so every pixel is predicted and the inputs are the
        whole frame's (the batch's crops are not used). ``vector_scale`` is the DataModule's.

        Returns:
            ``[(frame, mosaic), ...]``: per file its :class:`isp.raw.RawFrame` and the denoised
            ``float32 (H, W)`` visible mosaic in the input's units
            (:class:`isp.lit.writer.RawPredictionWriter` writes them).
        """
        from isp.data.inputs import GAIN_SCALAR
        from isp.predict import denoise_file

        paths = batch.get("path")
        if paths is None:
            raise ValueError("Expected the predict batch to carry `path` (the input file of each item).")
        scalar = batch.get("scalar")
        gains = [1.0] * len(paths) if scalar is None else torch.exp2(scalar[:, GAIN_SCALAR].double()).tolist()
        datamodule = getattr(self.trainer, "datamodule", None) if self._trainer is not None else None
        vector_scale = getattr(datamodule, "vector_scale", None)
        data = {} if vector_scale is None else {"vector_scale": vector_scale}
        return [
            denoise_file(
                self.net, path, data=data, gain=gain, device=self.device, ensemble=self.predict_ensemble
            )
            for path, gain in zip(paths, gains, strict=True)
        ]

    # -- previews ----------------------------------------------------------------------------------

    def _log_previews(self, batch: dict, out: dict) -> None:
        loggers = [lg for lg in self.loggers if isinstance(lg, TensorBoardLogger)]
        if not loggers or not self.trainer.is_global_zero:
            return
        k = min(self.num_previews, out["pred"].shape[0])
        with torch.no_grad():
            sub = {key: batch[key][:k] for key in ("image", "target", "wb", "cam_to_srgb")}
            rendered = self._render(sub, out["pred"][:k].detach())
        for i in range(k):
            strip = side_by_side(
                rendered["noisy"][i],
                rendered["pred"][i],
                rendered["target"][i],
                max_height=self.preview_max_height,
            )
            for logger in loggers:
                logger.experiment.add_image(f"val/preview_{i}", strip.float().cpu(), self.global_step)

    # -- optimisation ------------------------------------------------------------------------------

    def configure_optimizers(self):
        """The optimizer (and scheduler) from the callables given at construction."""
        optimizer = self.optimizer_factory(self.parameters())
        if self.scheduler_factory is None:
            return optimizer
        scheduler = self.scheduler_factory(optimizer)
        config = {"scheduler": scheduler, "interval": self.scheduler_interval}
        if isinstance(scheduler, torch.optim.lr_scheduler.ReduceLROnPlateau):
            config["monitor"] = self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}


def _init_from(net: nn.Module, source: str) -> None:
    """Copy the weights of ``source`` ("default": the shipped model; or a checkpoint path) into ``net``.

    Fine-tuning starts here: the architectures must match exactly, else the error names the file and
    the first parameters that differ. One exception: a UNet with a whole-line view
    (``line_features``) may start from the same UNet without one; its ``line_*`` layers keep their
    initialisation, which leaves the function unchanged (see :class:`isp.models.UNet`).
    """
    from isp.weights import load_model

    loaded = load_model(None if source == "default" else source)
    theirs, ours = loaded.net.state_dict(), net.state_dict()
    if getattr(net, "line_features", 0) and not getattr(loaded.net, "line_features", 0):
        theirs = {**{k: v for k, v in ours.items() if k.startswith("line_")}, **theirs}
    missing = sorted(set(ours) - set(theirs))
    unexpected = sorted(set(theirs) - set(ours))
    shapes = [k for k in ours if k in theirs and ours[k].shape != theirs[k].shape]
    if missing or unexpected or shapes:
        raise ValueError(
            f"Expected `init_weights` {source!r} ({loaded.source}) to hold this network's weights. "
            f"Got missing {missing[:3]}, unexpected {unexpected[:3]}, other shapes {shapes[:3]}."
        )
    net.load_state_dict(theirs)
