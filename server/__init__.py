"""Kith: a federated community server. Each community is an ActivityPub Group."""

__version__ = "0.1.0"
