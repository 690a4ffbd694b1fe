"""Running the API under uvicorn: the engine started before the first request, SIGTERM handled cleanly.

On SIGTERM (or Ctrl-C) the server stops accepting connections, the engine ends every running session at a step
boundary (state `stopped`, reason "server shutting down"; WebSocket watchers get their end event), open
connections finish, and the process exits 0.
"""

import logging
import signal
import sys
import threading
import time

import uvicorn

from jaxgan.serve.app import create_app
from jaxgan.serve.config import ServeConfig
from jaxgan.serve.engine import Engine

log = logging.getLogger("jaxgan.serve")
GRACEFUL_SHUTDOWN_S = 10


class _Server(uvicorn.Server):
    """uvicorn's server, telling the engine to wind down as soon as the signal arrives (so WebSocket clients get
    their end events instead of waiting out the graceful-shutdown timeout)."""

    engine: Engine
    _winding_down = False

    def handle_exit(self, sig, frame):
        # uvicorn's own handler re-raises the signal after its graceful shutdown, so the process would die by it;
        # a shutdown asked for is a clean one, exit status 0. uvicorn closes open WebSockets as soon as it starts
        # shutting down, so it is told to only once the engine has ended the sessions and their watchers have
        # had their end events (or GRACEFUL_SHUTDOWN_S has passed).
        if self.should_exit or self._winding_down:
            if sig == signal.SIGINT:
                self.force_exit = True  # a second Ctrl-C: stop waiting
            self.should_exit = True
            return
        self._winding_down = True
        ending = self.engine.begin_shutdown()

        def wind_down():
            deadline = time.monotonic() + GRACEFUL_SHUTDOWN_S
            try:
                ending.result(GRACEFUL_SHUTDOWN_S)
            except Exception:  # noqa: BLE001 - stopping anyway
                pass
            while self.engine.watchers() and time.monotonic() < deadline:
                time.sleep(0.05)
            self.should_exit = True
        threading.Thread(target=wind_down, name="jaxgan-shutdown", daemon=True).start()


def serve(engine: Engine, cfg: ServeConfig) -> None:
    """Start the engine, serve until a signal, stop the engine."""
    cfg.check_exposure()
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    # Until uvicorn installs its handlers, a SIGTERM (e.g. during a long --warmup) ends the start cleanly too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    engine.start()
    app = create_app(engine, cfg)
    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S, ws_max_size=cfg.max_body_bytes)
    server = _Server(config)
    server.engine = engine
    log.info("jaxgan serve: %s on http://%s:%d (%d session slots, API docs at /docs)", ", ".join(engine.models),
             cfg.host, cfg.port, engine.capacity)
    try:
        server.run()
    finally:
        engine.stop()
