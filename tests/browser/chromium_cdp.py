"""A minimal Chrome DevTools Protocol client that talks to headless Chromium over a pipe.

``chromium --remote-debugging-pipe`` reads protocol messages from its file descriptor 3 and
writes them to descriptor 4, each message a JSON object terminated by a NUL byte (the transport
Playwright uses by default). That needs no WebSocket library, no debugging port that another
process could take, and nothing beyond the standard library.

Only what the browser test needs is here: one tab, ``call`` for a command and its reply,
``wait_event`` for an event, and every event kept in ``events`` for the caller to inspect.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import shlex
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Flags for a quiet, reproducible, fully offline browser: nothing may call home.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    "--mute-audio",
    "--remote-debugging-pipe",
)

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


class CDPError(RuntimeError):
    """The browser answered a command with an error, died, or did not answer in time."""


def find_chromium() -> str | None:
    """The browser to use: ``$CHROMIUM`` if set, else the first of :data:`CANDIDATES` on PATH."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return shutil.which(explicit) or (explicit if os.access(explicit, os.X_OK) else None)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def _high_pipe(read_end: bool) -> tuple[int, int]:
    """``os.pipe()`` with the child's end (read end if ``read_end``) moved to a descriptor >= 10."""
    r, w = os.pipe()
    child = r if read_end else w
    high = fcntl.fcntl(child, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(child)
    return (high, w) if read_end else (r, high)


class Chromium:
    """A headless Chromium process driven over ``--remote-debugging-pipe``.

    Use as a context manager; :meth:`new_tab` opens the page that commands are sent to.
    """

    def __init__(self, executable: str, width: int = 1280, height: int = 900):
        self.executable = executable
        self.width, self.height = width, height
        self._profile = tempfile.TemporaryDirectory(prefix="gmp-chromium-")
        self._log = tempfile.TemporaryFile()
        # to_child: we write, Chromium reads on fd 3; from_child: Chromium writes fd 4, we read.
        # The child's ends are first moved to descriptors >= 10 so that they cannot be 3 or 4
        # themselves; bash then puts them on 3 and 4 and execs Chromium (no preexec_fn, which
        # is unsafe while the test's HTTP server thread runs).
        child_in, self._to_child = _high_pipe(read_end=True)
        self._from_child, child_out = _high_pipe(read_end=False)
        argv = [executable, *CHROMIUM_FLAGS, f"--user-data-dir={self._profile.name}",
                f"--window-size={width},{height}", "about:blank"]
        script = (f"exec 3<&{child_in} 4>&{child_out} {child_in}<&- {child_out}>&- && "
                  f"exec {shlex.join(argv)}")
        self.proc = subprocess.Popen(["bash", "-c", script], pass_fds=(child_in, child_out),
                                     stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        os.close(child_in)
        os.close(child_out)
        self._buffer = b""
        self._next_id = 0
        self.session: str | None = None
        self.events: list[dict[str, Any]] = []

    # --- lifecycle ---------------------------------------------------------------------------
    def __enter__(self) -> Chromium:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.call("Browser.close", timeout=5, session=False)
            except CDPError:
                pass
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for fd in (self._to_child, self._from_child):
            try:
                os.close(fd)
            except OSError:
                pass
        self._log.close()
        self._profile.cleanup()

    def log_tail(self, chars: int = 2000) -> str:
        """The end of Chromium's own stdout/stderr, for error messages."""
        self._log.seek(0)
        return self._log.read().decode("utf8", "replace")[-chars:]

    # --- transport ---------------------------------------------------------------------------
    def _send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to_child, data):]
        except BrokenPipeError as e:
            raise CDPError(f"Chromium has exited:\n{self.log_tail()}") from e

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CDPError("timed out waiting for Chromium")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if not ready:
                continue
            chunk = os.read(self._from_child, 1 << 20)
            if not chunk:
                raise CDPError(f"Chromium closed the pipe (exit code {self.proc.poll()}):\n"
                               f"{self.log_tail()}")
            self._buffer += chunk
        raw, self._buffer = self._buffer.split(b"\0", 1)
        return json.loads(raw)

    # --- protocol ----------------------------------------------------------------------------
    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 60,
             session: bool = True) -> dict[str, Any]:
        """Send one command (to the tab's session unless ``session=False``); return its result.

        Events that arrive meanwhile are appended to :attr:`events`.
        """
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        self._send(message)
        deadline = time.monotonic() + timeout
        while True:
            reply = self._receive(deadline)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise CDPError(f"{method}: {reply['error'].get('message')}")
                return reply.get("result", {})
            if "method" in reply:
                reply.setdefault("params", {})
                self.events.append(reply)

    def wait_event(self, method: str, timeout: float = 60,
                   where: Callable[[dict[str, Any]], bool] = lambda params: True
                   ) -> dict[str, Any]:
        """Wait for an event ``method`` whose params satisfy ``where``; return its params.

        Events already received count too; each event is returned at most once.
        """
        deadline = time.monotonic() + timeout
        for event in self.events:
            if event["method"] == method and not event.get("_taken") and where(event["params"]):
                event["_taken"] = True
                return event["params"]
        while True:
            try:
                message = self._receive(deadline)
            except CDPError as e:
                raise CDPError(f"{e} (waiting for {method})") from None
            if "method" in message:
                message.setdefault("params", {})
                self.events.append(message)
                if message["method"] == method and where(message["params"]):
                    message["_taken"] = True
                    return message["params"]

    def new_tab(self) -> None:
        """Open a blank tab, attach to it, and enable the domains the test reads."""
        target = self.call("Target.createTarget", {"url": "about:blank"}, session=False)
        attached = self.call("Target.attachToTarget",
                             {"targetId": target["targetId"], "flatten": True}, session=False)
        self.session = attached["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.call(f"{domain}.enable")
        self.call("Page.setLifecycleEventsEnabled", {"enabled": True})
        self._viewport(self.height)

    def navigate(self, url: str, timeout: float = 60) -> None:
        """Load ``url`` in the tab and wait until it has loaded and the network is idle.

        :attr:`events` then holds the events of this page only.
        """
        self.events.clear()
        result = self.call("Page.navigate", {"url": url}, timeout=timeout)
        if result.get("errorText"):
            raise CDPError(f"navigating to {url}: {result['errorText']}")
        # Wait for the lifecycle events "load" and "networkIdle" of this navigation's document.
        # Events of the previous document (e.g. the tab's initial about:blank) carry another
        # loaderId; a client-side redirect (the book's index.html) starts a new loader ("init"),
        # which is then followed instead.
        frame, current, seen = result["frameId"], result.get("loaderId"), set()

        def settled(params: dict[str, Any]) -> bool:
            nonlocal current
            if params.get("frameId") != frame:
                return False
            if params.get("name") == "init" and params.get("loaderId") != current:
                current = params["loaderId"]
                seen.clear()
            if params.get("loaderId") == current:
                seen.add(params.get("name"))
            return {"load", "networkIdle"} <= seen

        self.wait_event("Page.lifecycleEvent", timeout=timeout, where=settled)

    def evaluate(self, expression: str, timeout: float = 60) -> Any:
        """Evaluate a JavaScript expression in the page, awaiting a promise; return its value."""
        result = self.call("Runtime.evaluate",
                           {"expression": expression, "awaitPromise": True,
                            "returnByValue": True, "timeout": int(timeout * 1000)},
                           timeout=timeout + 5)
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"JavaScript error: {text}")
        return result["result"].get("value")

    def screenshot(self, path: Path, max_height: int = 12000) -> None:
        """Save a PNG of the whole page (up to ``max_height`` CSS pixels tall).

        The viewport is made as tall as the page for the capture and then restored.
        (``captureBeyondViewport`` instead shifted pages that hold a horizontally scrolling
        formula sideways.)
        """
        import base64

        metrics = self.call("Page.getLayoutMetrics")
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        height = int(min(max(size["height"], self.height), max_height))
        self._viewport(height)
        try:
            shot = self.call("Page.captureScreenshot", {"format": "png"})
        finally:
            self._viewport(self.height)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))

    def _viewport(self, height: int) -> None:
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": self.width, "height": height, "deviceScaleFactor": 1,
                   "mobile": False})
