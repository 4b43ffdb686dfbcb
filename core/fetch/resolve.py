"""Name resolution with a time bound: `getaddrinfo` has none of its own.

The lookup runs in a daemon thread; the caller waits at most `timeout_s`. A lookup that hangs past that
is left to finish on its own (it holds no lock and writes nowhere the caller still reads).

    resolve_host("localhost", 443, timeout_s=5.0)  -> ["127.0.0.1"]
    await run_detached(policy.check_url, url, "uri")   # the same off the event loop, cancellable

`run_detached` runs a blocking call in a daemon thread of its own rather than the loop's executor: a
cancelled wait (the fetch deadline) then returns at once, and `asyncio.run` does not wait for the thread.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Callable
from typing import Any, TypeVar

__all__ = ["resolve_host", "run_detached"]

T = TypeVar("T")


def resolve_host(host: str, port: int, *, timeout_s: float) -> list[str]:
    """The distinct addresses `host` resolves to (TCP), in the resolver's order.

    Raises TimeoutError when no answer came within `timeout_s`, OSError (socket.gaierror) when the name
    does not resolve."""
    done = threading.Event()
    outcome: dict[str, object] = {}

    def lookup() -> None:
        try:
            outcome["infos"] = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            outcome["error"] = exc
        finally:
            done.set()

    threading.Thread(target=lookup, name=f"resolve-{host}", daemon=True).start()
    if not done.wait(timeout_s):
        raise TimeoutError(f"no answer from the resolver within {timeout_s:g} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    addresses: list[str] = []
    for _family, _type, _proto, _name, sockaddr in outcome["infos"]:  # type: ignore[union-attr]
        if sockaddr[0] not in addresses:
            addresses.append(str(sockaddr[0]))
    return addresses


async def run_detached(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` in a daemon thread; the result (or exception) comes back through the running loop."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(ok: bool, value: Any) -> None:
        if not future.done():
            future.set_result(value) if ok else future.set_exception(value)

    def work() -> None:
        try:
            outcome = (True, fn(*args))
        except BaseException as exc:  # noqa: BLE001 - handed to the awaiting task
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(settle, *outcome)
        except RuntimeError:  # the loop is closed: nobody waits any more
            pass

    threading.Thread(target=work, name="fetch-check", daemon=True).start()
    return await future
