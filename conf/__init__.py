"""pinsweep's configs, installed as the package pinsweep.conf (pyproject.toml maps this folder there).

A package, not a bare folder, so that `pkg://pinsweep.conf` resolves in every install: from a wheel,
and under `pip install -e .`, whose import hook finds a mapped folder only by its __init__.py. Hydra
skips this file and __pycache__ when it lists the config groups.
"""
