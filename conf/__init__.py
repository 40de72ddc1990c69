"""Hydra config tree of depthlab, installed as the package depthlab.conf (see pyproject.toml)."""
