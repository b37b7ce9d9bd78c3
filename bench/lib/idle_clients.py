#!/usr/bin/env python3
"""Hold N keep-alive TLS connections open, each after one HTTP/1.1 request.

idle_clients.py HOST PORT N AUTHORIZATION
Prints "ready N" (and the failures) once every connection got its answer,
then keeps them open, idle, until stdin closes; then closes them all and
prints "closed". Python's standard library only (asyncio, ssl).
"""
import asyncio
import resource
import ssl
import sys


async def one(host, port, request, ctx, held):
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost")
    writer.write(request)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(head.split(b"\r\n")[0].decode(errors="replace"))
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    await reader.readexactly(length)
    held.append(writer)


async def main():
    host, port, n, authz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["http/1.1"])
    request = (f"GET / HTTP/1.1\r\nHost: localhost\r\nAuthorization: {authz}\r\n\r\n").encode()
    held, failed = [], 0
    sem = asyncio.Semaphore(200)  # handshakes in flight at once

    async def guarded():
        nonlocal failed
        async with sem:
            try:
                await one(host, port, request, ctx, held)
            except Exception as e:  # counted and reported, never silent
                failed += 1
                if failed <= 3:
                    print(f"connection failed: {e!r}", file=sys.stderr, flush=True)

    await asyncio.gather(*(guarded() for _ in range(n)))
    print(f"ready {len(held)} failed {failed}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
    for w in held:
        w.transport.abort()
    print("closed", flush=True)


asyncio.run(main())
