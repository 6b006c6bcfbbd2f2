"""Train the raw denoiser (Lightning CLI): ``python train.py fit --config ...`` (same as ``isp-train``).

A thin wrapper: the program is :mod:`isp.cli.train` (``python train.py fit --help`` for options).
"""

from isp.cli.train import DenoiseCLI, main

__all__ = ["DenoiseCLI", "main"]

if __name__ == "__main__":
    main()
