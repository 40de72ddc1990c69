"""depthlab: reproducible depth experiments (plain vs residual vs dense CNNs)."""

__version__ = "0.1.0"
