"""Avatarium Server: a self-hostable implementation of the Avatarium v1 API."""

__version__ = "0.1.0"
