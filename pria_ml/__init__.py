"""pria-ml: the learning loop behind PRIA's agent."""

__version__ = "0.1.0"
