"""wiretape: turn real traffic into deterministic integration tests."""

__version__ = "0.1.0"

__all__ = ["__version__"]
