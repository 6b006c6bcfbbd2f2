"""Probe a model on the development set: where the band cases' error sits, and how much it trusts ISO.

Three probes, each printing one line per case (the model: the shipped default, or ``--ckpt``):

- ``rows`` (physical band cases): the whole-row banding estimate's error (``x.banding`` of
  :func:`isp.data.inputs.model_inputs` against the injected ``NAME.rows.npy``) in read-noise
  stds; the output's row error (its mean error over each sensor row) for the band case and its
  plain twin; how much of the estimate's error the output keeps (the slope of the output's row
  error on the estimate's error, and their correlation); the band and plain PSNR; the gap split
  into the rows' mean errors and the rest; how much of the output's row error is slow (periods of
  ``SLOW_PERIOD`` rows or more), and what the slow part of the estimate's error would cost the
  plain twin if the network kept all of it.
- ``iso`` (iso-overstated by default): PSNR as the file is, with the EXIF ISO input lowered by
  ``--stops``, and with the measured noise inputs replaced by the true ``a``, ``b`` of
  ``cases.json``: a network that follows the ISO over the noise it measures gains from the first
  change, one held back by its noise estimate from the second.
- ``banding`` (physical band cases, no network): the whole-row estimate's error beside three
  references: the masked pixels alone, the same estimator on the noise alone (the scene taken
  out: its own limit) and every visible pixel with the scene known (what a perfect scene model
  could reach).

::

    python scripts/devset_probe.py rows --only iso25600
    python scripts/devset_probe.py iso --only iso800
    python scripts/devset_probe.py banding
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from isp.data.inputs import _A_REF, _B_REF, ModelInputs, _ob_offsets, measure_noise, model_inputs  # noqa: E402
from isp.noise.banding import row_banding  # noqa: E402
from isp.predict.frame import OVERLAP, TILE, for_network  # noqa: E402
from isp.predict.tiling import size_multiple, tiled_forward  # noqa: E402
from isp.raw import pack, pad_to_rggb, read, unpack  # noqa: E402
from isp.weights import load_model  # noqa: E402

DEVSET = ROOT.parent / "shared" / "devset"
#: Row periods (sensor rows) from which banding counts as slow: the lowest tenth of the
#: frequencies of a 512-row dev-set frame.
SLOW_PERIOD = 20.0


def psnr(estimate: np.ndarray, clean: np.ndarray) -> float:
    """PSNR (dB, peak 1) of ``estimate`` clipped to [0, 1] against ``clean``."""
    return float(10 * np.log10(1.0 / np.mean((np.clip(estimate, 0, 1) - clean) ** 2)))


class Case:
    """One dev-set file as ``predict.py`` sees it: mirrored to the RGGB phase (:func:`pad_to_rggb`)."""

    def __init__(self, path: Path) -> None:
        frame, _ = for_network(read(path))
        self.noisy = np.asarray(frame.mosaic, np.float32)
        self.shape = frame.visible_shape
        self.frame, self.pad = pad_to_rggb(frame)
        self.top, self.left = self.pad[0], self.pad[1]
        self._inputs = model_inputs(self.frame)  # measured once; each probe changes a copy

    def inputs(self) -> ModelInputs:
        """A fresh copy of the network's inputs (to be changed at will)."""
        return copy.deepcopy(self._inputs)

    def denoise(self, net: torch.nn.Module, x: ModelInputs) -> np.ndarray:
        """The denoised mosaic of ``x`` (tiled as ``predict.py`` tiles), back on the file's pixels."""
        names = ("image", "row", "col", "scalar")
        t = [torch.from_numpy(np.ascontiguousarray(getattr(x, k)))[None] for k in names]
        with torch.inference_mode():
            planes = tiled_forward(net, *t, tile=TILE, overlap=OVERLAP, align=size_multiple(net))
        (h, w), top, left = self.shape, self.top, self.left
        return unpack(planes[0].numpy(), x.info)[top : top + h, left : left + w]

    def planes(self, mosaic: np.ndarray) -> np.ndarray:
        """``mosaic`` (the file's visible pixels) padded and packed as the network's image is."""
        top, left, bottom, right = self.pad
        padded = np.pad(mosaic, ((top, bottom), (left, right)), mode="reflect")
        return pack(padded.astype(np.float32), self.frame.cfa)[0]

    def masked_offsets(self) -> tuple[np.ndarray | None, np.ndarray | float | None]:
        """The masked pixels' per-row offsets ``(2, h)`` and their variance, as ``model_inputs`` has them."""
        planes = np.asarray(pack(self.frame)[0], np.float32)
        row, _, floor, noise = measure_noise(self.frame, planes, self.frame.metadata.iso)
        return _ob_offsets(self.frame, row, floor, noise.b)

    def rows(self, banding: np.ndarray) -> np.ndarray:
        """``(2, h)`` per packed row (even, odd sensor row) -> ``(H,)`` per row of the file."""
        return sensor_rows(banding, 0, self.frame.visible_shape[0])[self.top : self.top + self.shape[0]]


def row_error(mosaic: np.ndarray, clean: np.ndarray) -> np.ndarray:
    """The mean error over each sensor row, ``(H,)``."""
    return (np.clip(mosaic, 0, 1) - clean).mean(axis=1)


def slow_share(profile: np.ndarray, period: float = SLOW_PERIOD) -> float:
    """The share of a per-row profile's power (mean removed) in periods of ``period`` rows or more."""
    total = float(np.sum((profile - np.mean(profile)) ** 2))
    return 0.0 if total <= 0 else float(np.sum(slow_part(profile, period) ** 2) / total)


def slow_part(profile: np.ndarray, period: float = SLOW_PERIOD) -> np.ndarray:
    """The part of a per-row profile in periods of ``period`` rows or more (its mean removed)."""
    spectrum = np.fft.rfft(profile - np.mean(profile))
    k = np.arange(spectrum.size)
    spectrum[(k == 0) | (k > len(profile) / period)] = 0
    return np.fft.irfft(spectrum, len(profile))


def sensor_rows(banding: np.ndarray, top: int, height: int) -> np.ndarray:
    """``(2, h)`` per packed row (even, odd sensor row) -> ``(height,)`` per sensor row (0 elsewhere)."""
    out = np.zeros(height)
    h = banding.shape[1]
    out[top : top + 2 * h : 2] = banding[0]
    out[top + 1 : top + 2 * h : 2] = banding[1]
    return out


def probe_rows(net: torch.nn.Module, folder: Path, cases: list[dict]) -> None:
    print(
        f"{'case':40s} {'est err':>8s} {'row err band':>12s} {'plain':>8s} {'kept':>6s} {'corr':>5s}"
        f" {'PSNR band':>9s} {'plain':>6s} {'gap rows':>8s} {'rest':>6s} {'slow':>5s}"
        f" {'slow cost':>9s}"
    )
    for c in cases:
        if not c["banding"]:
            continue
        clean = np.load(folder / f"{c['scene']}.clean.npy")
        injected = np.load(folder / f"{c['name']}.rows.npy").astype(np.float64)
        band = Case(folder / f"{c['name']}.dng")
        x = band.inputs()
        error = band.rows(x.banding) - (injected - injected.mean())  # the image keeps -error
        out = band.denoise(net, x)
        plain = Case(folder / f"{c['name'].replace('_band', '_plain')}.dng")
        out_plain = plain.denoise(net, plain.inputs())
        rows, rows_plain = row_error(out, clean), row_error(out_plain, clean)
        kept = float(np.dot(rows, -error) / np.dot(error, error))
        corr = float(np.corrcoef(rows, -error)[0, 1])
        read_std = math.sqrt(c["b"])
        mse, mse_plain = (np.mean((np.clip(o, 0, 1) - clean) ** 2) for o in (out, out_plain))
        rest = mse - np.mean(rows**2)  # the error left after each row's mean error is taken out
        rest_plain = mse_plain - np.mean(rows_plain**2)
        gap_rest = 10 * math.log10(rest_plain / rest)
        gap = 10 * math.log10(mse_plain / mse)
        slow_cost = 10 * math.log10(1 + np.mean(slow_part(error) ** 2) / mse_plain)
        print(
            f"{c['name']:40s} {error.std() / read_std:8.3f} {rows.std() / read_std:12.3f}"
            f" {rows_plain.std() / read_std:8.3f} {kept:6.2f} {corr:5.2f}"
            f" {psnr(out, clean):9.2f} {psnr(out_plain, clean):6.2f} {gap - gap_rest:+8.2f} {gap_rest:+6.2f}"
            f" {slow_share(rows):5.2f} {slow_cost:9.2f}",
            flush=True,
        )
    print(
        "(est err, row err: std over the sensor rows in read-noise stds; kept: output row error / estimate"
        " error; gap rows / rest: the band-minus-plain PSNR gap (dB) from the rows' mean errors / from"
        f" the rest of the error; slow: the share of the band output's row error in periods of"
        f" {SLOW_PERIOD:g} rows or more; slow cost: the dB the plain twin would lose with the"
        f" slow part of the estimate's error added)"
    )


def probe_banding(folder: Path, cases: list[dict]) -> None:
    """How close the whole-row banding estimate comes to what the file and a perfect scene model allow."""
    print(f"{'case':40s} {'estimate':>8s} {'slow':>5s} {'masked':>7s} {'no scene':>8s} {'ideal':>6s}")
    for c in cases:
        if not c["banding"]:
            continue
        case = Case(folder / f"{c['name']}.dng")
        clean = np.load(folder / f"{c['scene']}.clean.npy")
        injected = np.load(folder / f"{c['name']}.rows.npy").astype(np.float64)
        truth = injected - injected.mean()
        read_std = math.sqrt(c["b"])
        offsets, variance = case.masked_offsets()

        def error(banding: np.ndarray, case: Case = case, truth: np.ndarray = truth) -> np.ndarray:
            rows = case.rows(banding - np.mean(banding, axis=1, keepdims=True))
            return rows - rows.mean() - truth

        estimate = error(case.inputs().banding)
        noise = case.planes(case.noisy - clean)  # what the pixels hold besides the scene
        no_scene = error(row_banding(noise + np.float32(clean.mean()), offsets, variance))
        means = np.stack([noise[:2].mean(axis=(0, 2)), noise[2:].mean(axis=(0, 2))])
        spread = np.stack([noise[:2].var(axis=(0, 2)), noise[2:].var(axis=(0, 2))]) / (2 * noise.shape[2])
        if offsets is None:
            ideal = means
        else:
            ideal = (means / spread + offsets / variance) / (1 / spread + 1 / variance)
        print(
            f"{c['name']:40s} {estimate.std() / read_std:8.3f} {slow_share(estimate):5.2f}"
            f" {(error(offsets).std() if offsets is not None else math.nan) / read_std:7.3f}"
            f" {no_scene.std() / read_std:8.3f} {error(ideal).std() / read_std:6.3f}",
            flush=True,
        )
    print(
        "(row errors in read-noise stds: estimate, the whole-row estimate the network is given"
        " (:func:`isp.noise.banding.row_banding`), and the share of its error in slow periods;"
        " masked, the masked pixels' row means alone; no scene, the same estimator on the noise"
        " alone (the clean scene taken out); ideal, every visible pixel's row mean with the clean"
        " scene known, combined with the masked pixels: what a perfect scene model would reach)"
    )


def probe_iso(net: torch.nn.Module, folder: Path, cases: list[dict], stops: float) -> None:
    lowered_title = f"ISO -{stops:g} st"
    print(f"{'case':44s} {'noisy':>6s} {'as is':>6s} {lowered_title:>10s} {'true a,b':>8s} {'a/true':>7s}")
    for c in cases:
        case = Case(folder / f"{c['name']}.dng")
        clean = np.load(folder / f"{c['scene']}.clean.npy")
        noisy = psnr(case.noisy, clean)
        x = case.inputs()
        as_is = psnr(case.denoise(net, x), clean)
        lower = case.inputs()
        lower.scalar[0] -= stops  # log2(ISO / 100)
        lowered = psnr(case.denoise(net, lower), clean)
        a = float(np.mean(c["a"]))
        b = max(float(np.mean(c["b"])), 1e-10)  # iso-overstated's darktable profiles have b < 0
        true = case.inputs()
        true.scalar[5:7] = math.log2(a / _A_REF), 0.5 * math.log2(b / _B_REF)
        told = psnr(case.denoise(net, true), clean)
        print(
            f"{c['name']:44s} {noisy:6.2f} {as_is:6.2f} {lowered:10.2f} {told:8.2f} {x.noise.a / a:7.2f}",
            flush=True,
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("probe", choices=["rows", "iso", "banding"])
    parser.add_argument("--ckpt", default=None, help="a train.py .ckpt or an exported .pt (default: shipped)")
    parser.add_argument("--set", default=None, choices=["physical", "iso-overstated"])
    parser.add_argument("--only", default="", help="substring filter on case names")
    parser.add_argument("--stops", type=float, default=4.0, help="iso: how far to lower the EXIF ISO input")
    parser.add_argument("--devset", type=Path, default=DEVSET)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    folder = args.devset / (args.set or ("iso-overstated" if args.probe == "iso" else "physical"))
    if not (folder / "cases.json").is_file():
        parser.error(f"Expected the development set's cases.json in {str(folder)!r}. Got no such file.")
    cases = [c for c in json.loads((folder / "cases.json").read_text()) if args.only in c["name"]]
    if args.probe == "banding":
        probe_banding(folder, cases)
        return
    torch.set_num_threads(args.threads)
    net = load_model(args.ckpt).net.eval()
    if args.probe == "rows":
        probe_rows(net, folder, cases)
    else:
        probe_iso(net, folder, cases, args.stops)


if __name__ == "__main__":
    main()
