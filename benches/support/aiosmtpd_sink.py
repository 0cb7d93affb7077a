"""An SMTP server that counts messages and keeps nothing: aiosmtpd on uvloop, the server a
Python shop would put in front of a benchmark. For `benches/email_aiosmtpd.sh`.

    python3 benches/support/aiosmtpd_sink.py

Listens on a free port of 127.0.0.1 and prints `ready PORT` once it accepts connections; when its standard
input closes, it prints the number of messages it accepted and exits.
"""
import asyncio
import sys

import uvloop
from aiosmtpd.smtp import SMTP


class Count:
    def __init__(self):
        self.n = 0

    async def handle_DATA(self, server, session, envelope):
        self.n += 1
        return "250 OK"


async def main():
    handler = Count()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(handler, hostname="sink.localhost"), "127.0.0.1", 0)
    print("ready", server.sockets[0].getsockname()[1], flush=True)
    await loop.run_in_executor(None, sys.stdin.read)
    server.close()
    print(handler.n, flush=True)


if __name__ == "__main__":
    uvloop.install()
    asyncio.run(main())
