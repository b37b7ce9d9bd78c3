#!/usr/bin/env python3
"""Hold N keep-alive TLS connections open, each after one request.

idle_clients.py HOST PORT N AUTHORIZATION [h1|h2]
h1 (the default): HTTP/1.1 by ALPN, Python's standard library only.
h2: HTTP/2 by ALPN, one GET on stream 1, through the `h2` package
(Debian's python3-h2, bench/setup.sh).
Prints "ready N" (and the failures) once every connection got its answer,
then keeps them open, idle, until stdin closes; then closes them all and
prints "closed". An idle h2 connection still answers the peer's SETTINGS
and PINGs (the h2 package queues the replies; they are sent as they come).
"""
import asyncio
import resource
import ssl
import sys


async def one_h1(host, port, authz, ctx, held):
    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost")
    writer.write(f"GET / HTTP/1.1\r\nHost: localhost\r\nAuthorization: {authz}\r\n\r\n".encode())
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


async def one_h2(host, port, authz, ctx, held):
    import h2.config
    import h2.connection
    import h2.events

    reader, writer = await asyncio.open_connection(host, port, ssl=ctx, server_hostname="localhost")
    if writer.get_extra_info("ssl_object").selected_alpn_protocol() != "h2":
        raise RuntimeError("the server did not choose h2 by ALPN")
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    headers = [(":method", "GET"), (":scheme", "https"), (":authority", "localhost"),
               (":path", "/"), ("authorization", authz)]
    conn.send_headers(1, headers, end_stream=True)
    writer.write(conn.data_to_send())
    status, done = None, False
    while not done:
        data = await reader.read(65536)
        if not data:
            raise RuntimeError("closed before the answer")
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ResponseReceived):
                status = dict(event.headers).get(b":status")
            elif isinstance(event, h2.events.DataReceived):
                conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded):
                done = True
        writer.write(conn.data_to_send())
    if status != b"200":
        raise RuntimeError(f"status {status!r}")
    held.append(writer)

    async def keep():  # SETTINGS / PING answers while idle
        while data := await reader.read(65536):
            conn.receive_data(data)
            writer.write(conn.data_to_send())
    asyncio.ensure_future(keep())


async def main():
    host, port, n, authz = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    proto = sys.argv[5] if len(sys.argv) > 5 else "h1"
    one = {"h1": one_h1, "h2": one_h2}[proto]
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"] if proto == "h2" else ["http/1.1"])
    held, failed = [], 0
    sem = asyncio.Semaphore(200)  # handshakes in flight at once

    async def guarded():
        nonlocal failed
        async with sem:
            try:
                await one(host, port, authz, ctx, held)
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
