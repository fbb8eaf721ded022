"""Headless Chromium for the page check: finding or installing it, and rendering one page.

Setup is an explicit step, never a side effect of the check:
``python -m helpers.book setup-check`` (:func:`install_chromium`) installs
Debian's ``chromium`` package with ``apt-get`` when it is missing; the check
itself only looks for it (:func:`find_chromium`) and says how to install it.

A page is rendered through the Chrome DevTools protocol over a pipe
(``--remote-debugging-pipe``: JSON messages separated by NUL bytes on file
descriptors 3 and 4 of the browser; no network port, no extra package). The
browser loads the page at :data:`VIEWPORT_WIDTH` CSS pixels, waits for its
images and fonts, runs :data:`MEASURE_JS` (which code block overflows its
column, which image did not load), returns the rendered DOM and takes a
full-page PNG screenshot.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
import select
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.book._base import BookError

__all__ = [
    "CHROMIUM_FLAGS",
    "CHROMIUM_INSTALL",
    "VIEWPORT_WIDTH",
    "MAX_SCREENSHOT_HEIGHT",
    "MEASURE_JS",
    "Rendering",
    "find_chromium",
    "install_chromium",
    "render",
]

#: Headless Chromium on a machine without network: no GPU, no background traffic, fresh profile.
CHROMIUM_FLAGS = (
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
#: What :func:`install_chromium` runs (as root, Debian/Ubuntu).
CHROMIUM_INSTALL = (("apt-get", "update"), ("apt-get", "install", "-y", "chromium"))
#: Width of the browser window in CSS pixels: a laptop screen, where the theme shows its sidebar.
VIEWPORT_WIDTH = 1280
#: Screenshots longer than this are cut (and the cut is reported as a note).
MAX_SCREENSHOT_HEIGHT = 16384

#: Run in the loaded page; returns what the check needs from the layout.
MEASURE_JS = r"""
(async () => {
  if (document.fonts && document.fonts.ready) { await document.fonts.ready; }
  const images = Array.from(document.images);
  await Promise.all(images.map(img => img.complete ? null : new Promise(done => {
    img.addEventListener('load', done); img.addEventListener('error', done); setTimeout(done, 5000);
  })));
  const broken = images.filter(img => img.naturalWidth === 0 && !(img.getAttribute('src') || '').endsWith('.svg'))
                       .map(img => img.getAttribute('src') || '');
  const overflowing = [];
  for (const pre of document.querySelectorAll('main pre')) {
    if (pre.checkVisibility ? !pre.checkVisibility() : pre.offsetParent === null) continue;  // folded toggle
    const excess = pre.scrollWidth - pre.clientWidth;
    if (excess > 1) {
      const lines = pre.textContent.split('\n');
      const longest = lines.reduce((a, b) => (b.length > a.length ? b : a), '');
      overflowing.push({text: longest.trim().slice(0, 80), excess: excess});
    }
  }
  const wide = [];
  for (const out of document.querySelectorAll('main .cell_output')) {
    if (out.checkVisibility ? !out.checkVisibility() : out.offsetParent === null) continue;
    // the output itself or a scrolling box inside it (the theme wraps HTML outputs in one)
    let excess = out.scrollWidth - out.clientWidth;
    for (const box of out.querySelectorAll('*')) {
      const style = getComputedStyle(box);
      if (style.overflowX === 'auto' || style.overflowX === 'scroll') excess = Math.max(excess, box.scrollWidth - box.clientWidth);
    }
    if (excess > 1) wide.push({text: out.textContent.trim().replace(/\s+/g, ' ').slice(0, 80), excess: excess});
  }
  const pageExcess = document.documentElement.scrollWidth - window.innerWidth;
  return {broken_images: broken, overflowing_code: overflowing, wide_outputs: wide, page_overflow: pageExcess,
          height: Math.ceil(Math.max(document.documentElement.scrollHeight, document.body ? document.body.scrollHeight : 0))};
})()
"""

#: Resolves once the page has laid out and painted twice (after a window resize).
_TWO_FRAMES = "new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))"


@dataclass
class Rendering:
    """What Chromium made of one page."""

    ok: bool
    dom: str = ""
    error: str = ""
    #: :data:`MEASURE_JS`'s result: ``broken_images`` (sources), ``overflowing_code`` and ``wide_outputs``
    #: (``text``, ``excess`` px), ``page_overflow`` (px the page is wider than the window), ``height``.
    layout: dict[str, Any] = field(default_factory=dict)
    screenshot: Path | None = None
    notes: list[str] = field(default_factory=list)


def find_chromium() -> str:
    """The ``chromium`` command.

    Raises
    ------
    BookError
        It is not installed; the message says to run ``python -m helpers.book setup-check``.
    """
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if found:
        return found
    commands = " && ".join(" ".join(step) for step in CHROMIUM_INSTALL)
    raise BookError(f"headless Chromium is needed for the page check and is not installed; run "
                    f"`python -m helpers.book setup-check` (as root: {commands})")


def install_chromium() -> str:
    """Install Debian's ``chromium`` package when it is missing; the setup step of the page check.

    Runs :data:`CHROMIUM_INSTALL` (printing each command) as root without
    prompts; does nothing when Chromium is already there.

    Returns
    -------
    str
        The ``chromium`` command.

    Raises
    ------
    BookError
        Not root, or ``apt-get`` failed; the message gives the commands to run by hand.
    """
    try:
        return find_chromium()
    except BookError:
        pass
    commands = " && ".join(" ".join(step) for step in CHROMIUM_INSTALL)
    if os.name != "posix" or os.geteuid() != 0:
        raise BookError(f"installing Chromium needs root; run as root: {commands}")
    print(f"Chromium is not installed; installing Debian's package: {commands}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}  # no debconf prompt in CI
    for step in CHROMIUM_INSTALL:
        print("$ " + " ".join(step), flush=True)
        if subprocess.run(list(step), env=env).returncode != 0:
            raise BookError(f"`{' '.join(step)}` failed; install Chromium by hand ({commands})")
    found = shutil.which("chromium")
    if not found:
        raise BookError("apt-get installed chromium but no `chromium` command is on PATH")
    return found


class _DevTools:
    """A DevTools-protocol connection over ``--remote-debugging-pipe``."""

    def __init__(self, chromium: str, profile: Path, deadline: float) -> None:
        self.deadline = deadline
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        # The browser reads commands on fd 3 and writes replies on fd 4; copy the pipe ends to fds >= 10 so the
        # shell's `3<&A 4>&B` (bash: dash allows single-digit fds only) cannot clobber one with the other.
        a = fcntl.fcntl(to_browser_r, fcntl.F_DUPFD, 10)
        b = fcntl.fcntl(from_browser_w, fcntl.F_DUPFD, 10)
        os.close(to_browser_r)
        os.close(from_browser_w)
        cmd = ["/bin/bash", "-c", f'exec "$@" 3<&{a} 4>&{b} {a}<&- {b}>&-', "bash", chromium, *CHROMIUM_FLAGS,
               f"--user-data-dir={profile}", "--remote-debugging-pipe", "about:blank"]
        self.stderr_path = profile.with_suffix(".stderr")
        profile.parent.mkdir(parents=True, exist_ok=True)
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                                         pass_fds=(a, b))
        os.close(a)
        os.close(b)
        self._buffer = b""
        self._next_id = 0
        self.events: list[dict] = []

    def _read_message(self) -> dict:
        while b"\0" not in self._buffer:
            left = self.deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError
            ready, _, _ = select.select([self._from_browser], [], [], left)
            if not ready:
                raise TimeoutError
            chunk = os.read(self._from_browser, 1 << 20)
            if not chunk:
                raise ConnectionError("Chromium closed the DevTools pipe")
            self._buffer += chunk
        message, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(message)

    def send(self, method: str, params: dict | None = None, session: str | None = None) -> dict:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session is not None:
            message["sessionId"] = session
        os.write(self._to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._read_message()
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error'].get('message', reply['error'])}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_event(self, method: str, session: str) -> dict:
        while True:
            for k, event in enumerate(self.events):
                if event.get("method") == method and event.get("sessionId") == session:
                    return self.events.pop(k)
            self.events.append(self._read_message())

    def close(self) -> str:
        try:
            self.send("Browser.close")
        except Exception:  # the browser may already be gone; it is killed below either way
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        for fd in (self._to_browser, self._from_browser):
            os.close(fd)
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""


def render(chromium: str, page: Path, *, profile: Path, screenshot: Path | None, timeout: float) -> Rendering:
    """Load ``page`` in headless Chromium, measure its layout, dump its DOM and take a full-page screenshot.

    Parameters
    ----------
    chromium : str
        The browser command (:func:`find_chromium`).
    page : Path
        An HTML file.
    profile : Path
        A fresh ``--user-data-dir`` for this page.
    screenshot : Path, optional
        Where the full-page PNG goes (none when ``None``).
    timeout : float
        Seconds the whole page may take.

    Returns
    -------
    Rendering
        ``ok`` False with the reason in ``error`` when the page did not load.
    """
    deadline = time.monotonic() + timeout
    tools = _DevTools(chromium, profile, deadline)
    result = Rendering(ok=False)
    try:
        target = tools.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = tools.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        tools.send("Page.enable", session=session)
        tools.send("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT_WIDTH, "height": 900,
                                                          "deviceScaleFactor": 1, "mobile": False}, session=session)
        nav = tools.send("Page.navigate", {"url": page.as_uri()}, session=session)
        if nav.get("errorText"):
            result.error = nav["errorText"]
            return result
        tools.wait_event("Page.loadEventFired", session)
        measured = tools.send("Runtime.evaluate", {"expression": MEASURE_JS, "returnByValue": True,
                                                   "awaitPromise": True}, session=session)
        if "exceptionDetails" in measured:
            result.error = f"the layout measurement raised: {measured['exceptionDetails'].get('text', '')}"
            return result
        result.layout = measured["result"].get("value") or {}
        dom = tools.send("Runtime.evaluate", {"expression": "document.documentElement.outerHTML",
                                              "returnByValue": True}, session=session)
        result.dom = dom["result"].get("value") or ""
        if screenshot is not None:
            height = max(1, int(result.layout.get("height") or 900))
            if height > MAX_SCREENSHOT_HEIGHT:
                result.notes.append(f"screenshot cut at {MAX_SCREENSHOT_HEIGHT} of {height} px")
                height = MAX_SCREENSHOT_HEIGHT
            # The window grows to the whole page and the screenshot is what it shows. (captureBeyondViewport drew
            # the book's theme shifted half a page to the left, without its sidebar, once the page had settled
            # for a second or two: seen in Chromium 156 on every chapter page.)
            tools.send("Emulation.setDeviceMetricsOverride", {"width": VIEWPORT_WIDTH, "height": height,
                                                              "deviceScaleFactor": 1, "mobile": False},
                       session=session)
            tools.send("Runtime.evaluate", {"expression": _TWO_FRAMES, "awaitPromise": True}, session=session)
            shot = tools.send("Page.captureScreenshot", {
                "format": "png",
                "clip": {"x": 0, "y": 0, "width": VIEWPORT_WIDTH, "height": height, "scale": 1}}, session=session)
            screenshot.parent.mkdir(parents=True, exist_ok=True)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
            result.screenshot = screenshot
        result.ok = True
    except TimeoutError:
        result.error = f"Chromium did not finish within {timeout:.0f} s"
    except (ConnectionError, RuntimeError, KeyError, json.JSONDecodeError) as exc:
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        stderr = tools.close()
        if not result.ok and not result.error:
            result.error = stderr.strip().splitlines()[-1] if stderr.strip() else "no reply from Chromium"
    return result
