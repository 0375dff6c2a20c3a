"""dscbench: what depthwise-separable convolution buys on your hardware, measured honestly."""

__version__ = "0.1.0"

__all__ = ["__version__"]
