"""pinsweep: which DataLoader settings make training fastest on this machine, and why."""

__version__ = "0.1.0"
