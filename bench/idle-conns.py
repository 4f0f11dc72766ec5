#!/usr/bin/env python3
"""Idle TCP connections for the relay benchmark's memory figure.

    idle-conns.py hold HOST:PORT
        Accepts connections and keeps them open until each peer closes or
        the process is terminated.

    idle-conns.py open HOST:PORT COUNT
        Opens COUNT connections (a bounded number in flight at once), prints
        "open COUNT" once all are established, then keeps them open and idle
        until terminated. Exits with status 1 if any connect fails or the
        relay closes a connection before then.

The caller raises `ulimit -n` above COUNT. IDLE_IN_FLIGHT (default 256) sets
how many connects are in flight at once, IDLE_RATE (default: no limit) how
many are started per second: a relay that runs a handshake per connection
after accepting it would otherwise face thousands at once.
"""

import asyncio
import os
import signal
import sys

# Connects in flight at once: well under the listen backlogs on the way.
CONNECTS_IN_FLIGHT = int(os.environ.get("IDLE_IN_FLIGHT", "256"))
# Connects started per second at most (0: no limit).
CONNECT_RATE = float(os.environ.get("IDLE_RATE", "0"))
# Time allowed for one connect.
CONNECT_TIMEOUT = 10.0


def parse_address(text):
    host, _, port = text.rpartition(":")
    return host, int(port)


async def until_terminated():
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()


class Holder(asyncio.Protocol):
    """Keeps an accepted connection open, discarding anything received,
    until its peer closes it (asyncio then closes it too)."""

    def data_received(self, data):
        pass


async def hold(address):
    host, port = parse_address(address)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(Holder, host, port, backlog=4096)
    async with server:
        await until_terminated()


class Watcher(asyncio.Protocol):
    """Notices a connection the relay closes while it should stay open."""

    def __init__(self, closed):
        self.closed = closed

    def eof_received(self):
        self.closed.set()

    def connection_lost(self, exc):
        self.closed.set()


async def open_idle(address, count):
    host, port = parse_address(address)
    loop = asyncio.get_running_loop()
    closed = asyncio.Event()
    in_flight = asyncio.Semaphore(CONNECTS_IN_FLIGHT)
    transports = []

    started = loop.time()

    async def connect_one(index):
        if CONNECT_RATE > 0:
            await asyncio.sleep(max(0.0, started + index / CONNECT_RATE - loop.time()))
        async with in_flight:
            transport, _ = await asyncio.wait_for(
                loop.create_connection(lambda: Watcher(closed), host, port),
                CONNECT_TIMEOUT,
            )
            transports.append(transport)

    try:
        await asyncio.gather(*(connect_one(index) for index in range(count)))
    except (OSError, asyncio.TimeoutError) as error:
        print(f"connect failed after {len(transports)} connections: {error!r}", flush=True)
        sys.exit(1)
    print(f"open {len(transports)}", flush=True)
    terminated = asyncio.ensure_future(until_terminated())
    relay_closed = asyncio.ensure_future(closed.wait())
    await asyncio.wait({terminated, relay_closed}, return_when=asyncio.FIRST_COMPLETED)
    for transport in transports:
        transport.abort()
    if relay_closed.done():
        print("a connection was closed by the other side", flush=True)
        sys.exit(1)


def main():
    if len(sys.argv) == 3 and sys.argv[1] == "hold":
        asyncio.run(hold(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "open":
        asyncio.run(open_idle(sys.argv[2], int(sys.argv[3])))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
