"""serve's stop line hooks uvicorn's private `Server._wait_tasks_to_complete` (no public hook
or log at the warning level marks the wait): only when the installed uvicorn has it as serve
expects, so a uvicorn that changes it still stops, saying the line as the stop begins. Truth:
uvicorn's own class, and a stand-in for a changed uvicorn."""

from __future__ import annotations

import asyncio
import signal

import pytest
import uvicorn
from uvicorn.lifespan.off import LifespanOff

from cnnlab.cli.serve import _server_class, _wait_hook


def test_the_installed_uvicorn_is_hooked():
    """Fails when an upgrade of uvicorn drops or changes the hook: the wait line then falls
    back to the stop's start (see test_a_changed_uvicorn_still_stops_and_says_it_waits)."""
    assert _wait_hook(uvicorn.Server), uvicorn.__version__
    assert "_wait_tasks_to_complete" in vars(_server_class())


def test_the_hook_is_refused_in_another_shape():
    class Gone:
        pass

    class Renamed:
        async def _wait_tasks_to_complete(self, deadline):
            pass

    class Plain:
        def _wait_tasks_to_complete(self):
            pass

    assert not any(_wait_hook(k) for k in (Gone, Renamed, Plain))


def test_a_changed_uvicorn_still_stops_and_says_it_waits(monkeypatch, capsys):
    """A uvicorn whose wait takes an argument: serve's override (self only) raised TypeError
    in the middle of the stop."""

    async def wait(self, deadline: float) -> None:
        while self.server_state.tasks:
            await asyncio.sleep(0.01)

    async def shutdown(self, sockets=None) -> None:
        await self._wait_tasks_to_complete(deadline=1.0)

    monkeypatch.setattr(uvicorn.Server, "_wait_tasks_to_complete", wait)
    monkeypatch.setattr(uvicorn.Server, "shutdown", shutdown)
    config = uvicorn.Config(None, lifespan="off", log_config=None)
    server = _server_class()(config)
    server.servers, server.lifespan = [], LifespanOff(config)

    async def stop() -> None:
        request = asyncio.create_task(asyncio.sleep(0.2))  # a request still running
        server.server_state.tasks.add(request)
        request.add_done_callback(server.server_state.tasks.discard)
        server.handle_exit(signal.SIGINT, None)  # Ctrl-C
        await server.shutdown()

    asyncio.run(stop())
    assert not server.server_state.tasks
    err = capsys.readouterr().err
    assert err == "cnnlab serve: waiting for 1 request to finish; Ctrl-C again to stop now\n"


@pytest.mark.parametrize("hooked", [True, False])
def test_the_stop_line_is_said_once_either_way(monkeypatch, capsys, hooked):
    """uvicorn's own shutdown, hooked or not: a request running as the stop begins is said."""
    if not hooked:
        monkeypatch.setattr("cnnlab.cli.serve._wait_hook", lambda server: False)
    config = uvicorn.Config(None, lifespan="off", log_config=None)
    server = _server_class()(config)
    server.servers, server.lifespan = [], LifespanOff(config)

    async def stop() -> None:
        request = asyncio.create_task(asyncio.sleep(0.3))
        server.server_state.tasks.add(request)
        request.add_done_callback(server.server_state.tasks.discard)
        server.handle_exit(signal.SIGTERM, None)
        await server.shutdown()

    asyncio.run(stop())
    err = capsys.readouterr().err
    assert err == "cnnlab serve: waiting for 1 request to finish; Ctrl-C to stop now\n"
