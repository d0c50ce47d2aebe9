"""Pillarbox mail appliance: the mail daemon and everything it owns."""

__version__ = "0.1.0"
