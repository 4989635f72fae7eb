"""The PySide6 layer: main window, views and the worker that runs the trainer."""
