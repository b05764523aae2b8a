"""RACE attention reproduction suite."""

__version__ = "0.1.0"
