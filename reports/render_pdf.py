"""Headless Chromium, the one program that turns the report's HTML into a PDF or a picture.

Every call starts a fresh Chromium (about a second) with a new temporary profile, no network
services of its own (no component updates, sync, QUIC or background networking), and waits at
most ``timeout_s`` for it. Errors, as a tree::

    ReportRenderError            the base: its message is one line a user can act on
    ├── PdfRendererMissing       no Chromium found: the other formats were written
    └── PdfRenderFailed          Chromium ran and failed: exit status, timeout or empty file

Console messages: with ``--enable-logging=stderr --v=0`` Chromium writes every message of the
page's console (script errors such as "Uncaught ReferenceError", refused loads, Content
Security Policy violations) to its stderr as a line holding ``:CONSOLE`` and the page's URL;
``console_messages`` returns those lines. The report has no script, so any message is a fault.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
"""Program names looked for on PATH, in this order."""
_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
)


class ReportRenderError(Exception):
    """A report format could not be made; the message is one line for the user."""


class PdfRendererMissing(ReportRenderError):
    """No headless browser on this machine."""

    def __init__(self) -> None:
        super().__init__(
            "no PDF renderer: install chromium (Debian: apt-get install chromium); "
            "the other formats were written"
        )


class PdfRenderFailed(ReportRenderError):
    """Chromium exited with an error, ran out of time or wrote nothing."""


def find_browser() -> str:
    """The path of the first browser of ``BROWSERS`` on PATH; PdfRendererMissing without one."""
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise PdfRendererMissing()


def _run(html_path: Path, extra: list[str], timeout_s: float, what: str) -> subprocess.CompletedProcess:
    """Run Chromium on ``html_path`` with ``extra`` flags in a new profile; its stderr is text."""
    browser = find_browser()
    if not Path(html_path).is_file():
        raise PdfRenderFailed(f"{what}: no HTML file at {html_path}")
    url = Path(html_path).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="wattelier-chromium-") as profile:
        command = [browser, *_FLAGS, f"--user-data-dir={profile}", *extra, url]
        try:
            done = subprocess.run(
                command,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=timeout_s,
                text=True,
                errors="replace",
                cwd=profile,
            )
        except subprocess.TimeoutExpired:
            raise PdfRenderFailed(f"{what}: chromium did not finish within {timeout_s:g} s") from None
        except OSError as exc:
            raise PdfRenderFailed(f"{what}: chromium could not start ({exc})") from exc
    if done.returncode != 0:
        last = next((line for line in reversed(done.stderr.splitlines()) if line.strip()), "")
        raise PdfRenderFailed(f"{what}: chromium exited with status {done.returncode}: {last[:200]}")
    return done


def _check_written(path: Path, what: str) -> None:
    if not path.exists() or path.stat().st_size == 0:
        raise PdfRenderFailed(f"{what}: chromium wrote no file at {path}")


def write_pdf(html_path: Path, pdf_path: Path, timeout_s: float = 60) -> None:
    """Print ``html_path`` to ``pdf_path`` (A4 and margins come from the page's @page rule)."""
    pdf_path = Path(pdf_path).resolve()
    pdf_path.unlink(missing_ok=True)
    _run(html_path, ["--no-pdf-header-footer", f"--print-to-pdf={pdf_path}"], timeout_s, "PDF")
    _check_written(pdf_path, "PDF")


def screenshot(html_path: Path, png_path: Path, width: int = 1200, height: int = 1600,
               timeout_s: float = 60) -> None:
    """A PNG of the top ``width`` x ``height`` CSS pixels of the page."""
    png_path = Path(png_path).resolve()
    png_path.unlink(missing_ok=True)
    _run(html_path, [f"--window-size={width},{height}", f"--screenshot={png_path}"], timeout_s, "screenshot")
    _check_written(png_path, "screenshot")


def console_messages(html_path: Path, timeout_s: float = 60) -> list[str]:
    """The messages the page wrote to its console while loading (script errors, refused loads,
    policy violations), each as Chromium logged it: the page is loaded and its DOM dumped."""
    done = _run(html_path, ["--enable-logging=stderr", "--v=0", "--dump-dom"], timeout_s, "console check")
    return [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
