#!/usr/bin/env python3
"""soak.sh's own traffic (the load generators carry the rest).

  soak_traffic.py badkeys GOOD_AUTHZ_FILE N OUT_WRONG OUT_MALFORMED [PREFIX]
      -> OUT_WRONG: N Authorization values with well-formed keys (valid
         checksum, so keygate asks the cache or the store): half the good
         key's id with a wrong secret, half unknown random ids, each
         distinct; OUT_MALFORMED: credentials refused before any lookup
         (bad checksum, bad base64, no password, wrong user, too short)
  soak_traffic.py run --admin URL --token-file F --tls-port P --plain-port P
                      --cacert F --duration S --out COUNTS.json
      -> once a second until S seconds have passed: a key created and the
         previous one revoked through the admin API, each used once on the
         main listener (200, then 401 once revoked); and a signed-in user
         (login.method = "trusted_header", header X-Soak-User, from
         127.0.0.1) on the self-service page: the page, its API's listing, a
         key created, used and deleted. Every answer is counted by kind and
         status; COUNTS.json gets {"kind status": n} and "unexpected".
"""
import base64
import http.client
import json
import os
import random
import re
import ssl
import sys
import time
import zlib
from urllib.parse import urlsplit

B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
PAGE_USERS = 600  # distinct page users; each creates a key every 10 min (creates_per_hour 20)


def b62(n: int) -> str:
    # not secrets: these keys are wrong on purpose, and there are many of them
    return "".join(random.choices(B62, k=n))


def check(body: str) -> str:
    """keygate's checksum: CRC32 of the body in 6 base62 digits (src/keys/format.rs)."""
    n, out = zlib.crc32(body.encode()), []
    for _ in range(6):
        out.append(B62[n % 62])
        n //= 62
    return "".join(reversed(out))


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def cmd_badkeys(good_file: str, n: int, out_wrong: str, out_malformed: str, prefix: str = "kg") -> None:
    # the file holds "Basic base64(apikey:KEY)" (lib/keygate.sh, keygate_mint)
    good = base64.b64decode(open(good_file).read().split()[1]).decode().split(":", 1)[1]
    good_id = good.split("_")[1]
    with open(out_wrong, "w") as fh:
        for i in range(n):
            kid = good_id if i % 2 == 0 else b62(12)
            body = f"{prefix}_{kid}_{b62(43)}"
            fh.write(basic("apikey", body + check(body)) + "\n")
    body = f"{prefix}_{good_id}_{b62(43)}"
    bad_sum = body + ("000000" if check(body) != "000000" else "000001")
    with open(out_malformed, "w") as fh:
        for v in (
            basic("apikey", bad_sum),                       # checksum wrong
            basic("apikey", good[:-10]),                    # too short
            basic("apikey", ""),                            # no password
            basic("someone", good),                         # the key under another user name
            "Basic !!!not-base64!!!",
            "Basic " + base64.b64encode(b"apikey-without-colon").decode(),
            basic("apikey", "kg_" + b62(60)),               # no structure
        ):
            fh.write(v + "\n")


class Client:
    """One keep-alive connection, reopened after an error."""

    def __init__(self, url: str, ctx):
        u = urlsplit(url)
        self.host, self.port, self.tls, self.ctx = u.hostname, u.port, u.scheme == "https", ctx
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                if self.tls:
                    self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.ctx, timeout=30)
                else:
                    self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)
            try:
                data = json.dumps(body).encode() if body is not None else None
                h = dict(headers or {})
                if data is not None:
                    h["Content-Type"] = "application/json"
                self.conn.request(method, path, body=data, headers=h)
                r = self.conn.getresponse()
                return r.status, r.getheaders(), r.read()
            except (OSError, http.client.HTTPException):
                self.conn.close()
                self.conn = None
                if attempt:
                    return 0, [], b""  # 0: no answer (connection error)


class Counts:
    def __init__(self, expected):
        self.expected, self.n = expected, {}

    def add(self, kind, status):
        k = f"{kind} {status}"
        self.n[k] = self.n.get(k, 0) + 1
        return status

    def dump(self, path):
        unexpected = sum(n for k, n in self.n.items()
                         if int(k.split()[1]) not in self.expected[k.split()[0]])
        with open(path + ".tmp", "w") as fh:
            json.dump({"counts": self.n, "unexpected": unexpected}, fh, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)


EXPECTED = {
    "admin-create": {201}, "admin-revoke": {204},
    "admin-key-live": {200}, "admin-key-revoked": {401},
    "page": {200}, "page-api-list": {200}, "page-api-create": {201},
    "page-key-live": {200}, "page-api-delete": {204},
}


def cmd_run(a) -> None:
    ctx = ssl.create_default_context(cafile=a.cacert)
    ctx.check_hostname = False
    token = open(a.token_file).read().strip().split(":", 1)[1]
    admin = Client(a.admin, ctx)
    tls = Client(f"https://127.0.0.1:{a.tls_port}", ctx)
    plain = Client(f"http://127.0.0.1:{a.plain_port}", ctx)
    origin = f"https://127.0.0.1:{a.tls_port}"
    auth = {"Authorization": f"Bearer {token}"}
    c = Counts(EXPECTED)
    prev = None  # (id, key) created in the previous second, revoked in this one
    end = time.monotonic() + a.duration
    tick, n = time.monotonic(), 0
    while time.monotonic() < end:
        n += 1
        # --- admin API: one key created, the previous one revoked
        st, _, body = admin.request("POST", "/v1/keys", {"user": f"soak-admin-{n % 50}", "label": "soak"}, auth)
        if c.add("admin-create", st) == 201:
            made = json.loads(body)
            main = tls if n % 2 else plain
            c.add("admin-key-live", main.request("GET", "/", headers={"Authorization": basic("apikey", made["key"])})[0])
        else:
            made = None
        if prev:
            c.add("admin-revoke", admin.request("DELETE", f"/v1/keys/{prev['id']}", headers=auth)[0])
            main = plain if n % 2 else tls
            c.add("admin-key-revoked", main.request("GET", "/", headers={"Authorization": basic("apikey", prev["key"])})[0])
        prev = made
        # --- the self-service page and its API, as a signed-in user
        user = {"X-Soak-User": f"soak-page-{n % PAGE_USERS}"}
        st, hdrs, page = tls.request("GET", "/.keygate/keys", headers=user)
        if c.add("page", st) == 200:
            m = re.search(rb'<meta name="csrf-token" content="([^"]+)"', page)
            cookie = next((v.split(";")[0] for k, v in hdrs if k.lower() == "set-cookie"
                           and v.startswith("__Host-keygate-csrf=")), None)
            c.add("page-api-list", tls.request("GET", "/.keygate/api/keys", headers=user)[0])
            w = dict(user, Origin=origin, **{"X-CSRF-Token": m.group(1).decode() if m else ""})
            if cookie:
                w["Cookie"] = cookie
            st, _, body = tls.request("POST", "/.keygate/api/keys", {"label": "soak-page"}, w)
            if c.add("page-api-create", st) == 201:
                k = json.loads(body)
                c.add("page-key-live", plain.request("GET", "/", headers={"Authorization": basic("apikey", k["key"])})[0])
                c.add("page-api-delete", tls.request("DELETE", f"/.keygate/api/keys/{k['id']}", headers=w)[0])
        if n % 10 == 0:
            c.dump(a.out)
        tick += 1.0
        pause = tick - time.monotonic()
        if pause > 0:
            time.sleep(pause)
        else:
            tick = time.monotonic()  # behind: no burst to catch up
    c.dump(a.out)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "badkeys":
        cmd_badkeys(sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5], *sys.argv[6:7])
        return
    import argparse
    p = argparse.ArgumentParser()
    p.add_argument("cmd", choices=["run"])
    p.add_argument("--admin", required=True)
    p.add_argument("--token-file", required=True)
    p.add_argument("--tls-port", type=int, required=True)
    p.add_argument("--plain-port", type=int, required=True)
    p.add_argument("--cacert", required=True)
    p.add_argument("--duration", type=float, required=True)
    p.add_argument("--out", required=True)
    cmd_run(p.parse_args())


if __name__ == "__main__":
    main()
