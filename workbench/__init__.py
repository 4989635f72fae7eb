"""Preference Workbench: label preference pairs, train a reward model, inspect its mistakes."""

__version__ = "0.1.0"
