"""A SID-style UNet whose every stage reads the photo's metadata.

The layout follows Chen et al., "Learning to See in the Dark" (CVPR 2018): per level two 3x3
convs with LeakyReLU(0.2), 2x2 max-pool down, 2x2 transposed conv up, skip concatenation, widths
``base_width * 2**level``. Here it works on packed RGGB planes in and out with a residual output
(the net predicts the correction to the noisy input), and the first conv of every encoder stage,
of the bottleneck and of every decoder stage is a :class:`~isp.models.conditioning.ConditionedConv2d`
reading the side inputs resampled to that level's height and width.

Scales: raw planes normalised to the white level are dark (means ~0.05-0.3) with noise of a few
thousandths, while the side inputs are O(1-10) (log2 ISO, log2 exposure, noise vectors). At the
same weight scale the side inputs swamped the image in the first features and the net stayed at
the identity for hundreds of steps (measured on the sample data); so the image enters multiplied
by ``input_scale`` (the residual is divided by it again) and the side inputs by ``side_scale``.
Both are fixed, documented constants, the same for every conditioning variant.

Initialisation is the same rule for every conditioning variant: each conv and linear layer keeps
its own ``reset_parameters`` (PyTorch's default, fan-in over all of its inputs), and the 1x1 output
head starts at zero, so every variant starts as the identity (output = noisy input).

SID: https://arxiv.org/abs/1805.01934
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from isp.models.conditioning import CONDITIONING, PADDING_MODES, ConditionedConv2d, Conditioning, PaddingMode
from isp.nn._epilogue import fresh_side_leaky_relu

__all__ = ["UNet", "UNetStage", "count_parameters", "pad_to_multiple"]


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of parameters (elements) of ``module``.

    Args:
        module: any module.
        trainable_only: count only parameters with ``requires_grad``.

    Example:
        >>> count_parameters(nn.Linear(3, 2))
        8
    """
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


class UNetStage(nn.Module):
    """Two 3x3 convs with LeakyReLU(0.2); the first one reads the side inputs.

    Shapes: ``x (N, C_in, H, W), row (N, C2, H), col (N, C3, W), scalar (N, C4) -> (N, C_out, H, W)``.

    Args:
        in_channels: feature channels in.
        out_channels: feature channels out.
        side_channels: ``(C2, C3, C4)``.
        conditioning: see :data:`~isp.models.conditioning.CONDITIONING`.
        padding_mode: padding of both convs.
        device: passed to the parameters.
        dtype: passed to the parameters.

    Example:
        >>> UNetStage(4, 8, (5, 5, 5), "none")(torch.rand(1, 4, 6, 6)).shape
        torch.Size([1, 8, 6, 6])
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        side_channels: tuple[int, int, int],
        conditioning: Conditioning = "msconv",
        padding_mode: PaddingMode = "zeros",
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        factory = {"device": device, "dtype": dtype}
        self.conv1 = ConditionedConv2d(
            (in_channels, *side_channels), out_channels, 3, conditioning, padding_mode, **factory
        )
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, padding_mode=padding_mode, **factory)
        self.act = nn.LeakyReLU(0.2, inplace=True)
        #: add the side terms in the activation's pass (:meth:`UNet.fuse_epilogues`)
        self.fused_epilogue = False

    def forward(
        self, x: Tensor, row: Tensor | None = None, col: Tensor | None = None, scalar: Tensor | None = None
    ) -> Tensor:
        """Apply the stage; see the class docstring for shapes."""
        slope = self.act.negative_slope
        fused = self.fused_epilogue and not torch.is_grad_enabled()
        x = self.conv1.forward_leaky_relu(x, row, col, scalar, slope, fused=fused)
        if fused:
            return fresh_side_leaky_relu(self.conv2(x), None, None, slope)
        return self.act(self.conv2(x))


def pad_to_multiple(
    image: Tensor, row: Tensor | None, col: Tensor | None, multiple: int
) -> tuple[Tensor, Tensor | None, Tensor | None]:
    """Pad at the bottom and right to a multiple of ``multiple``, as :class:`UNet` pads its input.

    ``image (N, C, H, W), row (N, C2, H), col (N, C3, W)``, each padded along its own axes;
    reflected, replicated where the image is too small to reflect.

    Example:
        >>> x, row, col = pad_to_multiple(torch.rand(1, 4, 6, 9), torch.rand(1, 2, 6), None, 4)
        >>> x.shape, row.shape, col
        (torch.Size([1, 4, 8, 12]), torch.Size([1, 2, 8]), None)
    """
    h, w = image.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if not pad_h and not pad_w:
        return image, row, col
    mode = "reflect" if pad_h < h and pad_w < w else "replicate"
    image = F.pad(image, (0, pad_w, 0, pad_h), mode=mode)
    row = F.pad(row, (0, pad_h), mode=mode) if row is not None and pad_h else row
    col = F.pad(col, (0, pad_w), mode=mode) if col is not None and pad_w else col
    return image, row, col


def _check_int(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"Expected `{name}` to be an int >= {minimum}. Got {value!r}.")


class UNet(nn.Module):
    """Metadata-conditioned UNet denoiser on packed raw planes.

    Shapes: ``image (N, C_in, H, W), row (N, C2, H), col (N, C3, W), scalar (N, C4) ->
    (N, C_out, H, W)`` for any ``H, W`` (reflect-padded at the bottom/right to a multiple of
    ``2**depth`` and cropped back; the row/col vectors are padded the same way). Side inputs may
    be ``None`` (read as zeros).

    Args:
        in_channels: image channels (4 packed planes R, Gr, Gb, B).
        out_channels: output channels; must equal ``in_channels`` when ``residual``.
        row_channels: ``C2`` (0: no row input).
        col_channels: ``C3`` (0: no column input).
        scalar_channels: ``C4`` (0: no scalar input).
        base_width: channels of the first level; level ``l`` has ``base_width * 2**l``.
        depth: number of 2x downsamplings; the bottleneck runs at ``H / 2**depth``.
        conditioning: ``"msconv"`` (default), ``"tile_concat"``, ``"film"``, ``"msconv_film"``,
            ``"film_msconv"`` or ``"none"``.
        residual: add the input to the output (the net predicts the correction).
        input_scale: the image is multiplied by this on the way in and the predicted correction
            divided by it on the way out (units of the output = units of the input).
        side_scale: row, col and scalar inputs are multiplied by this on the way in.
        padding_mode: padding of the 3x3 convs (``"zeros"`` as in SID).
        line_features: channels of the whole-line view (0: none). The full-resolution decoder
            features go through a 1x1 conv to this many channels, are averaged over every row and
            every column of the (tile's) image, and come back as the row and column inputs of one
            more 3x3 conditioned conv (a residual stage before the head, zero-initialised: a net
            with this view starts as the same function as one without). A 3x3 receptive field
            cannot tell a row offset (banding) from texture; a whole row of a few hundred pixels
            can, far better than the masked pixels at its end. Needs ``conditioning`` "msconv",
            "msconv_film", "film_msconv" or "tile_concat".
        noise_map: append the per-pixel noise std ``sqrt(a * max(x, 0) + b)`` of every plane as
            image channels (Brooks et al. 2019), ``a = 1e-3 * 2**scalar[:, 5]`` and
            ``b = 1e-5 * 4**scalar[:, 6]`` being the measured noise of
            :func:`isp.data.inputs.model_inputs` (times ``input_scale``, like the image).
        device: passed to the parameters.
        dtype: passed to the parameters.

    Example:
        >>> net = UNet(base_width=4, depth=2, conditioning="film")
        >>> net(torch.rand(2, 4, 10, 7), torch.rand(2, 5, 10), torch.rand(2, 5, 7), torch.rand(2, 5)).shape
        torch.Size([2, 4, 10, 7])
    """

    def __init__(
        self,
        in_channels: int = 4,
        out_channels: int = 4,
        row_channels: int = 5,
        col_channels: int = 5,
        scalar_channels: int = 5,
        base_width: int = 32,
        depth: int = 4,
        conditioning: Conditioning = "msconv",
        residual: bool = True,
        input_scale: float = 8.0,
        side_scale: float = 0.1,
        padding_mode: PaddingMode = "zeros",
        noise_map: bool = False,
        line_features: int = 0,
        device=None,
        dtype=None,
    ) -> None:
        super().__init__()
        if noise_map and scalar_channels < 7:
            raise ValueError(
                "Expected `scalar_channels` >= 7 with `noise_map=True` (channels 5 and 6 carry the "
                f"measured noise, see isp.data.inputs). Got {scalar_channels}."
            )
        for name, value in (("input_scale", input_scale), ("side_scale", side_scale)):
            if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
                raise ValueError(f"Expected `{name}` to be a positive number. Got {value!r}.")
        _check_int("in_channels", in_channels, 1)
        _check_int("out_channels", out_channels, 1)
        for name, value in (
            ("row_channels", row_channels),
            ("col_channels", col_channels),
            ("scalar_channels", scalar_channels),
        ):
            _check_int(name, value, 0)
        _check_int("base_width", base_width, 1)
        _check_int("line_features", line_features, 0)
        _check_int("depth", depth, 0)
        if conditioning not in CONDITIONING:
            raise ValueError(f"Expected `conditioning` to be one of {CONDITIONING}. Got {conditioning!r}.")
        if line_features and conditioning not in ("msconv", "tile_concat", "msconv_film", "film_msconv"):
            raise ValueError(
                "Expected `conditioning` 'msconv', 'msconv_film', 'film_msconv' or 'tile_concat' with "
                "`line_features` > 0 (the line view enters through row and column inputs). "
                f"Got {conditioning!r}."
            )
        if residual and in_channels != out_channels:
            raise ValueError(
                "Expected `out_channels` to equal `in_channels` when `residual=True`. "
                f"Got in_channels={in_channels}, out_channels={out_channels}."
            )
        if padding_mode not in PADDING_MODES:
            raise ValueError(
                "Expected `padding_mode` to be one of 'zeros', 'reflect', 'replicate', 'circular'. "
                f"Got {padding_mode!r}."
            )
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.side_channels = (row_channels, col_channels, scalar_channels)
        self.base_width = base_width
        self.depth = depth
        self.conditioning = conditioning
        self.padding_mode = padding_mode
        self.residual = residual
        self.input_scale = float(input_scale)
        self.side_scale = float(side_scale)
        self.noise_map = bool(noise_map)
        self.line_features = line_features
        self.fused_epilogue = False  # fuse_epilogues()
        factory = {"device": device, "dtype": dtype}
        widths = [base_width * 2**level for level in range(depth + 1)]
        stage = {
            "side_channels": self.side_channels,
            "conditioning": conditioning,
            "padding_mode": padding_mode,
            **factory,
        }
        self.encoders = nn.ModuleList()
        previous = 2 * in_channels if noise_map else in_channels
        for level in range(depth):
            self.encoders.append(UNetStage(previous, widths[level], **stage))
            previous = widths[level]
        self.bottleneck = UNetStage(previous, widths[depth], **stage)
        self.ups = nn.ModuleList(
            nn.ConvTranspose2d(widths[level + 1], widths[level], 2, stride=2, **factory)
            for level in range(depth)
        )
        self.decoders = nn.ModuleList(
            UNetStage(2 * widths[level], widths[level], **stage) for level in range(depth)
        )
        if line_features:
            self.line_proj = nn.Conv2d(widths[0], line_features, 1, **factory)
            self.line_conv = ConditionedConv2d(
                (widths[0], line_features, line_features, 0),
                widths[0],
                3,
                conditioning,
                padding_mode,
                **factory,
            )
            for parameter in self.line_conv.parameters():
                nn.init.zeros_(parameter)
            self.line_act = nn.LeakyReLU(0.2, inplace=True)
        self.head = nn.Conv2d(widths[0], out_channels, 1, **factory)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def _check(self, image, row, col, scalar) -> None:
        if not isinstance(image, Tensor) or image.ndim != 4 or image.shape[1] != self.in_channels:
            got = tuple(image.shape) if isinstance(image, Tensor) else type(image).__name__
            raise ValueError(f"Expected `image` of shape (N, {self.in_channels}, H, W). Got {got}.")
        n, _, h, w = image.shape
        for name, value, expected in (
            ("row", row, (n, self.side_channels[0], h)),
            ("col", col, (n, self.side_channels[1], w)),
            ("scalar", scalar, (n, self.side_channels[2])),
        ):
            if value is not None and tuple(value.shape) != expected:
                raise ValueError(
                    f"Expected `{name}` of shape {expected} to match `image`. Got {tuple(value.shape)}."
                )

    def forward(
        self,
        image: Tensor,
        row: Tensor | None = None,
        col: Tensor | None = None,
        scalar: Tensor | None = None,
    ) -> Tensor:
        """Denoise ``image``; see the class docstring for shapes."""
        self._check(image, row, col, scalar)
        h, w = image.shape[-2:]
        x = image * self.input_scale
        if self.noise_map:
            if scalar is None:
                raise ValueError("Expected `scalar` (the measured noise) with `noise_map=True`. Got None.")
            a = (1e-3 * torch.exp2(scalar[:, 5])).to(image.dtype)[:, None, None, None]
            b = (1e-5 * torch.exp2(2 * scalar[:, 6])).to(image.dtype)[:, None, None, None]
            sigma = torch.sqrt(a * image.clamp(min=0) + b)
            x = torch.cat([x, sigma * self.input_scale], dim=1)
        row, col, scalar = (None if v is None else v * self.side_scale for v in (row, col, scalar))
        x, row, col = pad_to_multiple(x, row, col, 2**self.depth)
        rows, cols = [row], [col]
        for _ in range(self.depth):
            rows.append(None if row is None else F.avg_pool1d(rows[-1], 2))
            cols.append(None if col is None else F.avg_pool1d(cols[-1], 2))
        skips = []
        for level, stage in enumerate(self.encoders):
            x = stage(x, rows[level], cols[level], scalar)
            skips.append(x)
            x = F.max_pool2d(x, 2)
        x = self.bottleneck(x, rows[self.depth], cols[self.depth], scalar)
        for level in reversed(range(self.depth)):
            x = torch.cat([self.ups[level](x), skips[level]], dim=1)
            x = self.decoders[level](x, rows[level], cols[level], scalar)
        if self.line_features:
            y = self.line_conv.forward_leaky_relu(
                x, *self._line_view(x, h, w), None, self.line_act.negative_slope, fused=self.fused_epilogue
            )
            # without autograd the decoder output is not needed again: add in place (one pass less)
            x = x + y if torch.is_grad_enabled() else x.add_(y)
        out = self.head(x)[..., :h, :w] / self.input_scale
        return image + out if self.residual else out

    def fuse_epilogues(self, enabled: bool = True) -> UNet:
        """Add each MSConv2d's side terms in the pass of the LeakyReLU that follows it.

        Without autograd the side terms and the activation then run as one compiled pointwise
        kernel (:func:`isp.nn.ms_conv2d_leaky_relu`): under bf16 autocast on the CPU, where aten's
        elementwise passes cost more than the convolutions, the msconv UNet's tile takes about the
        blind UNet's time instead of 1.24x (docs/benchmarks.md). The kernel compiles on first use
        (seconds); training (autograd) is unaffected. Returns ``self``.
        """
        self.fused_epilogue = enabled
        for module in self.modules():
            if isinstance(module, UNetStage):
                module.fused_epilogue = enabled
        return self

    def _line_view(self, x: Tensor, h: int, w: int) -> tuple[Tensor, Tensor]:
        """Row and column means of the projected features over the image (padding left out)."""
        z = self.line_proj(x)
        return z[..., :w].mean(-1), z[..., :h, :].mean(-2)

    def extra_repr(self) -> str:
        """The constructor arguments that define the architecture."""
        return (
            f"in_channels={self.in_channels}, out_channels={self.out_channels}, "
            f"side_channels={self.side_channels}, base_width={self.base_width}, depth={self.depth}, "
            f"conditioning={self.conditioning!r}, residual={self.residual}, "
            f"input_scale={self.input_scale:g}, side_scale={self.side_scale:g}, noise_map={self.noise_map}, "
            f"line_features={self.line_features}"
        )
