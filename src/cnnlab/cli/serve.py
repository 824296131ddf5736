"""`cnnlab serve RUN`: the explorer, a local web page to look inside a trained network."""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import socket
import sys
import time

from cnnlab.cli.rundata import RUN_HELP, add_data_option, load_run_at

LOCAL = ("127.0.0.1", "localhost", "::1")


def register(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="open a local web page to look inside RUN's network (the explorer)",
        description="Serve the explorer for a run: pick or draw an image, see the probabilities, "
        "Grad-CAM and feature maps, click any activation to see the dot product that made it. "
        "Binds 127.0.0.1 (this machine only) unless --host says otherwise.",
    )
    p.add_argument("run_dir", metavar="RUN", help=RUN_HELP)
    p.add_argument("--port", type=int, default=8000, help="TCP port (default: 8000; 0: any)")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to bind (default: 127.0.0.1; another one exposes the page to the network)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads per request (default: 1; each request is one image)",
    )
    add_data_option(p)
    p.set_defaults(run=_run)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket for uvicorn. Made with proto IPPROTO_TCP, not 0: asyncio sets
    TCP_NODELAY only on connections whose socket says it is TCP, and without it Nagle holds
    each response's body until the client's delayed ACK: 44 ms for any request instead of
    1.6 ms (measured on this machine, a trivial route, keep-alive)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _run(args: argparse.Namespace) -> int:
    import torch

    if not 0 <= args.port <= 65535:
        print(
            f"cnnlab serve: error: --port {args.port} is not a TCP port (0-65535)", file=sys.stderr
        )
        return 2
    if args.threads < 1:
        print(f"cnnlab serve: error: --threads must be at least 1, got {args.threads}",
              file=sys.stderr)  # fmt: skip
        return 2
    try:  # a name that resolves to nothing binds nothing: no warning of who could reach it
        socket.getaddrinfo(args.host, args.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as error:
        reason = error.strerror if isinstance(error, socket.gaierror) else "not a host name"
        print(f"cnnlab serve: error: --host {args.host}: {reason}; {_ADDRESS_FIX}",
              file=sys.stderr)  # fmt: skip
        return 2
    if args.host not in LOCAL:  # said before binding, so a refused bind follows its warning
        where = f"port {args.port}" if args.port else "the port printed below"  # 0: any port
        print(
            f"warning: binding {args.host}: anyone who can reach this machine on {where} "
            "can use the explorer and see the run; it has no login",
            file=sys.stderr,
        )
    # Bound before the run is loaded: a port in use was said only after loading the model and
    # ranking the test images (seconds to minutes); port 0 (any free port) prints the real one.
    try:
        sock = bind(args.host, args.port)
    except OSError as error:
        print(f"cnnlab serve: error: cannot bind {args.host}:{args.port}: {error.strerror}; "
              f"{_bind_fix(error, args.port)}", file=sys.stderr)  # fmt: skip
        return 2
    try:
        app = _load(args.run_dir, args.data)
    except BaseException:
        sock.close()
        raise
    # One image per request: on this 2-core machine, shared, Grad-CAM of the `fast` preset took
    # 64 ms with 1 torch thread and 1,050 ms with 2 (oversubscribed cores; BENCHMARKS.md).
    torch.set_num_threads(args.threads)
    port = sock.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"explorer: http://{shown}:{port}/  (Ctrl-C to stop)", flush=True)
    _serve(app, sock)
    return 0


_ADDRESS_FIX = "give --host an address of this machine (127.0.0.1, or 0.0.0.0 for all of them)"


def _bind_fix(error: OSError, port: int) -> str:
    """What to change when the bind is refused: the host for an address this machine lacks,
    else the port (taken, or below 1024 without the right to bind it)."""
    if error.errno == errno.EADDRNOTAVAIL:
        return _ADDRESS_FIX
    if error.errno in (errno.EACCES, errno.EPERM) and 0 < port < 1024:
        return "ports below 1024 need privileges: choose --port 1024 or above (8000 by default)"
    return "choose another --port"


def _serve(app, sock: socket.socket) -> None:
    """Serves `app` on `sock` until SIGINT or SIGTERM. SIGTERM (a service manager's stop,
    kill) is a normal end, as uvicorn's own shutdown treats it: "stopped", and the command
    returns 0. SIGINT ends as KeyboardInterrupt (one line and exit 130 in the CLI), whatever
    its inherited disposition. A stop that waits for requests still running says so in one
    line; a second SIGINT then forces it (an interrupt, whichever signal began the stop),
    without tracebacks, and the process leaves without waiting for the worker threads
    (entry())."""
    import uvicorn

    # Ctrl-C twice (or kill, then Ctrl-C) forces uvicorn to stop without waiting: no lifespan
    # (the app has no start-up or shutdown work), whose task a forced stop left to be cancelled
    # at the loop's close, logged as an ERROR with two tracebacks; a request still running
    # (an upload, a long activation maximisation) is cancelled then too, and its cancellation
    # is not logged as an "Exception in ASGI application".
    server = _server_class()(uvicorn.Config(app, log_level="warning", lifespan="off"))
    log = logging.getLogger("uvicorn.error")
    quiet = lambda record: not (server.force_exit and _cancelled(record))  # noqa: E731
    log.addFilter(quiet)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn raises SIGTERM again once stopped: main() makes it this
        if not _terminated(server):
            raise
    finally:
        log.removeFilter(quiet)
    if _terminated(server):
        print("cnnlab serve: stopped", file=sys.stderr, flush=True)
        return
    if server.should_exit:
        # Stopped by SIGINT or SIGTERM: uvicorn catches both while it serves and raises the
        # signal again once stopped, which ends as KeyboardInterrupt; but a SIGINT inherited
        # as ignored (a background job: `cnnlab serve RUN &`, nohup) is ignored then, and the
        # server stopped by it returned as if it had ended normally: exit 0, silent.
        raise KeyboardInterrupt


def _terminated(server) -> bool:
    """Whether SIGTERM began the server's stop and no Ctrl-C forced it: a normal stop."""
    return server.first == signal.SIGTERM and not server.force_exit


def _server_class():
    """uvicorn.Server (imported here: only serve needs it), saying what a stop waits for."""
    import uvicorn

    class Server(uvicorn.Server):
        """uvicorn's server, which says so when a signal's stop waits for requests still
        running (an upload, an activation maximisation): uvicorn's own "(CTRL+C to force
        quit)" is an INFO log, hidden at the warning level, and the stop waited silently."""

        first: int | None = None  # the signal that began the stop
        said = False  # the waiting line, once

        def handle_exit(self, sig, frame) -> None:
            self.first = sig if self.first is None else self.first
            super().handle_exit(sig, frame)

        async def shutdown(self, sockets=None) -> None:
            # Said at once when requests run (one task each, until answered); else below. A
            # few turns of the loop first let the task of a request just answered end.
            for _ in range(4):
                await asyncio.sleep(0)
            self._say(len(self.server_state.tasks))
            await super().shutdown(sockets)

        def _say(self, running: int) -> None:
            if running and not self.force_exit and not self.said:
                self.said = True
                again = " again" if self.first == signal.SIGINT else ""
                requests = "1 request" if running == 1 else f"{running} requests"
                print(f"cnnlab serve: waiting for {requests} to finish; Ctrl-C{again} to stop "
                      "now", file=sys.stderr, flush=True)  # fmt: skip

    if not _wait_hook(uvicorn.Server):
        # Another uvicorn without the private wait, or with another signature: the line is
        # said as the stop begins only (a request accepted just then is waited for silently)
        return Server

    class WaitingServer(Server):
        async def _wait_tasks_to_complete(self) -> None:
            # uvicorn's stop closes the listener and the idle connections, sleeps 0.1 s, then
            # here waits while any connection or request task remains (0.55.0; no public hook
            # or log at the warning level marks that wait). A connection accepted just before
            # the stop began (its request not yet parsed: no task then) is not closed, and
            # uvicorn waits for it all the same: the tasks counted as the stop began missed
            # it. A few turns of the loop first, as above, let the input already received be
            # read (a client that has closed).
            for _ in range(4):
                await asyncio.sleep(0)
            state = self.server_state
            # A task per request on its connection; a connection without a task is a request
            # not parsed yet, a task without one a request whose client has left.
            self._say(max(len(state.connections), len(state.tasks)))
            await super()._wait_tasks_to_complete()

    return WaitingServer


def _wait_hook(server: type) -> bool:
    """True when uvicorn's Server has the private coroutine `_wait_tasks_to_complete(self)`
    that its shutdown awaits (uvicorn 0.55.0, installed here): serve's wait line hooks it
    only then, so a uvicorn that renames it or changes its arguments still stops as it
    should."""
    import inspect

    wait = getattr(server, "_wait_tasks_to_complete", None)
    if not inspect.iscoroutinefunction(wait):
        return False
    try:
        return list(inspect.signature(wait).parameters) == ["self"]
    except (TypeError, ValueError):
        return False


def _load(run_dir: str, data: str | None = None):
    """The explorer's app for `run_dir` (its image folder read from `data` if given: moved
    since training), its top test images ranked (cached in RUN/explorer/: the first click is
    then instant), saying how long each took."""
    from cnnlab.cli.progress import progress_bar
    from cnnlab.explorer import create_app

    start = time.perf_counter()
    # the model's own imports (transformers, MONAI) take seconds before anything else shows
    print(f"loading {run_dir} ...", flush=True)
    app = create_app(load_run_at(run_dir, data))
    explorer = app.state.explorer
    print(f"loaded {explorer.run!r} in {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    if len(explorer.test):
        with progress_bar() as progress:
            explorer.top(progress)
        print(f"top test images per channel ready in {time.perf_counter() - start:.1f} s")
    else:
        print("no test images (the run was imported without --data): upload or draw images")
    return app


def _cancelled(record: logging.LogRecord) -> bool:
    return record.exc_info is not None and isinstance(record.exc_info[1], asyncio.CancelledError)
