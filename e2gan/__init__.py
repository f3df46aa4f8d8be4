"""e2gan: an experiment-and-ablation suite for efficient training of efficient GANs."""
__version__ = "0.1.0"
