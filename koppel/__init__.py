"""Koppel: a self-hostable integration platform (Parts Pim <-> AccountView)."""

__version__ = "0.1.0"
