"""Which side inputs reach a network: all of them, the scalars only, or the vectors flattened.

The conditioning study's input variants (``configs/experiment``): :func:`side_inputs` selects or
reshapes ``row (N, C2, H)``, ``col (N, C3, W)``, ``scalar (N, C4)``; :class:`SideInputs` wraps a
network so that it sees only what its variant allows.
"""

from __future__ import annotations

from typing import Literal, get_args

import torch
from torch import Tensor, nn

__all__ = ["INPUTS", "Inputs", "SideInputs", "side_inputs"]

Inputs = Literal["full", "scalars", "flat"]
INPUTS: tuple[str, ...] = get_args(Inputs)


def side_inputs(
    row: Tensor | None, col: Tensor | None, scalar: Tensor | None, inputs: Inputs = "full"
) -> tuple[Tensor | None, Tensor | None, Tensor | None]:
    """Select or reshape the side inputs for a variant.

    Args:
        row: ``(N, C2, H)``.
        col: ``(N, C3, W)``.
        scalar: ``(N, C4)``.
        inputs: "full" (unchanged), "scalars" (row and col dropped) or "flat" (row and col
            replaced by their means along H and W, appended to the scalars).

    Returns:
        ``(row, col, scalar)``; for "flat" ``(None, None, (N, C4 + C2 + C3))``.

    Example:
        >>> r, c, s = side_inputs(torch.ones(2, 5, 8), torch.zeros(2, 5, 6), torch.full((2, 5), 3.0), "flat")
        >>> r, c, s.shape, s[0, 5:].tolist()
        (None, None, torch.Size([2, 15]), [1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    """
    if inputs == "full":
        return row, col, scalar
    if inputs == "scalars":
        return None, None, scalar
    if inputs == "flat":
        if row is None or col is None or scalar is None:
            raise ValueError("Expected `row`, `col` and `scalar` for inputs='flat'. Got a None.")
        return None, None, torch.cat([scalar, row.mean(-1), col.mean(-1)], dim=1)
    raise ValueError(f"Expected `inputs` to be one of {INPUTS}. Got {inputs!r}.")


class SideInputs(nn.Module):
    """Wraps a network so that it sees only the side inputs of a variant (module form of :func:`side_inputs`).

    Shapes: ``image (N, 4, H, W), row (N, C2, H), col (N, C3, W), scalar (N, C4) -> net's output``.

    Args:
        net: the wrapped network ``net(image, row, col, scalar)``; for "scalars" it has no row /
            column channels, for "flat" ``C4 + C2 + C3`` scalar channels.
        inputs: "full", "scalars" or "flat".

    Example:
        >>> from isp.models import UNet
        >>> m = SideInputs(UNet(row_channels=0, col_channels=0, scalar_channels=15, base_width=4, depth=1),
        ...                "flat")
        >>> m(torch.rand(1, 4, 8, 8), torch.rand(1, 5, 8), torch.rand(1, 5, 8), torch.rand(1, 5)).shape
        torch.Size([1, 4, 8, 8])
    """

    def __init__(self, net: nn.Module, inputs: Inputs = "full") -> None:
        super().__init__()
        if inputs not in INPUTS:
            raise ValueError(f"Expected `inputs` to be one of {INPUTS}. Got {inputs!r}.")
        self.net = net
        self.inputs = inputs
        self.depth = getattr(net, "depth", None)  # the tiler's alignment (isp.predict.size_multiple)

    def forward(
        self,
        image: Tensor,
        row: Tensor | None = None,
        col: Tensor | None = None,
        scalar: Tensor | None = None,
    ) -> Tensor:
        """Run the wrapped network on the variant's side inputs."""
        return self.net(image, *side_inputs(row, col, scalar, self.inputs))

    def extra_repr(self) -> str:
        """Which side inputs the wrapped network reads."""
        return f"inputs={self.inputs!r}"
