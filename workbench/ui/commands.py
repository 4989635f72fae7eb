"""The GUI's commands for ``workbench``: ``gui`` (the default) and ``demo``.

Only argparse here; Qt is imported inside the handlers, so ``workbench --help`` and the other
commands stay fast and work without a display.
"""

from __future__ import annotations

import argparse
import os
import sys

from workbench.core.text import terminal_safe


def register(subparsers: argparse._SubParsersAction) -> None:
    gui = subparsers.add_parser(
        "gui", help="open the main window (the default command)", description="Open the Preference Workbench window."
    )
    gui.add_argument("--project", metavar="P", help="a project file to open (created when missing)")
    gui.add_argument("--annotator", metavar="NAME", help="label as NAME (remembered for next time)")
    gui.set_defaults(func=gui_command)
    demo = subparsers.add_parser(
        "demo",
        help="open the demo project in the main window",
        description="Build the demo project if needed and open it.",
    )
    demo.add_argument("--annotator", metavar="NAME", help="label as NAME (remembered for next time)")
    demo.set_defaults(func=demo_command)


def _no_display() -> str | None:
    """Why a window cannot open here (Linux without a display), or None."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return None
    if os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"):
        return None
    return (
        "no display to open a window on (DISPLAY and WAYLAND_DISPLAY are not set); run it in a desktop "
        "session, or use the command-line tools: workbench import / export / stats"
    )


def _window_problem() -> str | None:
    """Why a window cannot open here, found before Qt is imported (Qt would abort the process), or None."""
    from workbench.ui.platform_check import xcb_problem

    return _no_display() or xcb_problem()


def gui_command(args: argparse.Namespace) -> int:
    problem = _window_problem()
    if problem:
        print(f"workbench: error: {terminal_safe(problem)}", file=sys.stderr)
        return 1
    from workbench.ui.app import run_gui

    return run_gui(project=getattr(args, "project", None), annotator=getattr(args, "annotator", None))


def demo_command(args: argparse.Namespace) -> int:
    problem = _window_problem()
    if problem:
        print(f"workbench: error: {terminal_safe(problem)}", file=sys.stderr)
        return 1
    from workbench.ui.app import run_gui

    return run_gui(annotator=getattr(args, "annotator", None), demo=True)
