#!/usr/bin/env python3
"""Regenerates link/hot-text.ld, the linker script that puts the code a serving
spindle runs in one place at the start of its text.

Why: the kernel maps a binary's code in 64 KiB windows around every page that
is touched ("fault-around"). Left in the compiler's order, the few hundred
functions that startup and request handling run are spread over nearly every
window of the 700 KB of text (next to std's backtrace symbolizer, the
argument-error paths, ...), so nearly all of it is resident. Placed together
they take a few windows: about 300 KiB less resident memory per process.

How: build the binary and run it under gdb with a breakpoint on every function
(each disabled at its first hit), through a workload that covers what a server
does: startup, files cached and not, ranges, conditionals, precompressed
siblings, listings, redirects, error pages, bad requests, pipelining, bodies,
the status and load-test endpoints, an idle timeout, the access log and its
reopening, a graceful shutdown. The functions are listed in the order they
first ran, after those that startup and a few plain requests run (with the
default options and with some set), which every server runs. Names
are written as patterns with the parts that change between builds (crate
hashes, back-references, LLVM suffixes) left wild, so the script keeps working
across dependency and compiler updates; a function it no longer names is
placed by the linker as before, and nothing else changes.

Usage, from the project root (needs gdb and binutils' nm):
    python3 link/hot-text.py     # builds, traces, rewrites link/hot-text.ld
Rerun it when the request path changes shape (new modules, renamed functions).
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "link", "hot-text.ld")


def make_site(d):
    """A site with one of each thing the workload asks for."""
    def put(rel, data):
        p = os.path.join(d, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "wb") as f:
            f.write(data)
    put("index.html", b"<!doctype html><title>hot</title><p>" + b"x" * 900 + b"\n")
    put("style.css", b"body { color: #222 }\n" * 40)
    put("app.js", b"console.log(1);\n" * 64)
    put("app.js.gz", b"\x1f\x8b" + b"\0" * 60)
    put("big.bin", os.urandom(256 * 1024))
    put("big2.bin", os.urandom(128 * 1024))
    put("404.html", b"<!doctype html><title>missing</title>\n")
    put("docs/index.html", b"<!doctype html><title>docs</title>\n")
    for i in range(100):  # more than sorts take in their small-slice path
        put(f"files/file-{i} & <{i}>.txt", b"data\n" * (i + 1))
    put("files/.hidden", b"secret\n")


def tail(path):
    """The end of a log file, for an error message (the file goes with its temporary directory)."""
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-20:])


def wait_port(proc, errpath, deadline):
    """The port the server under the tracer reports listening on."""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"spindle (under gdb) exited early:\n{tail(errpath)}")
        with open(errpath, errors="replace") as f:
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", f.read())
        if m:
            port = int(m.group(1))
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return port
            except OSError:
                pass
        time.sleep(0.1)
    sys.exit(f"spindle did not start in time:\n{tail(errpath)}")


def exchange(port, data, want_close=False, timeout=20.0):
    """Sends `data` on a fresh connection and reads until the server closes it
    or (on a kept connection) falls silent for 1.5 s."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.sendall(data)
    if want_close:
        s.shutdown(socket.SHUT_WR)
    s.settimeout(1.5 if not want_close else timeout)
    try:
        while s.recv(65536):
            pass
    except socket.timeout:
        pass
    s.close()


def basic_workload(port):
    """A file twice (the second time from the cache) and a missing one."""
    exchange(port, b"GET /index.html HTTP/1.1\r\nHost: hot\r\n\r\n" * 2
             + b"GET /missing HTTP/1.1\r\nHost: hot\r\n\r\n")


def revalidating_workload(port):
    """The basic requests, then the file again once the cache must check it."""
    basic_workload(port)
    time.sleep(0.7)
    exchange(port, b"GET /index.html HTTP/1.1\r\nHost: hot\r\n\r\n")


def workload(port):
    """One of each thing a server is asked."""
    h = "Host: hot\r\n"
    gets = [
        "/", "/index.html", "/index.html", "/style.css", "/app.js", "/docs", "/docs/",
        "/files/", "/files/?C=M", "/missing", "/../etc/passwd", "/%2e%2e/x", "/big.bin", "/big2.bin",
        "/plaintext", "/json", "/bytes/2048", "/status/503", "/delay/5", "/status", "/health",
        "/status?format=prometheus", "/index.html?x=1",
    ]
    reqs = "".join(f"GET {p} HTTP/1.1\r\n{h}\r\n" for p in gets)
    exchange(port, reqs.encode())
    # The same again, now from the file cache.
    exchange(port, reqs.encode())
    extra = [
        f"HEAD /index.html HTTP/1.1\r\n{h}\r\n",
        f"GET /index.html HTTP/1.1\r\n{h}If-None-Match: \"nope\", *\r\n\r\n",
        f"GET /index.html HTTP/1.1\r\n{h}If-Modified-Since: Sun, 06 Nov 2033 08:49:37 GMT\r\n\r\n",
        f"GET /big.bin HTTP/1.1\r\n{h}Range: bytes=0-99,200-299\r\n\r\n",
        f"GET /big.bin HTTP/1.1\r\n{h}Range: bytes=-100\r\nIf-Range: \"x\"\r\n\r\n",
        f"GET /index.html HTTP/1.1\r\n{h}Range: bytes=99999-\r\n\r\n",
        f"GET /app.js HTTP/1.1\r\n{h}Accept-Encoding: gzip, br;q=0\r\n\r\n",
        f"POST /index.html HTTP/1.1\r\n{h}Content-Length: 5\r\n\r\nhello",
        f"PUT /json HTTP/1.1\r\n{h}Transfer-Encoding: chunked\r\n\r\n5;a=b\r\nhello\r\n0\r\n\r\n",
        f"OPTIONS * HTTP/1.1\r\n{h}\r\n",
        f"OPTIONS /index.html HTTP/1.1\r\n{h}\r\n",
        f"GET /index.html HTTP/1.0\r\n\r\n",
        f"GET /index.html HTTP/1.1\r\n{h}Expect: 100-continue\r\n\r\n",
        f"BREW /index.html HTTP/1.1\r\n{h}\r\n",
        f"GET /index.html HTTP/1.1\r\n{h}Connection: close\r\n\r\n",
    ]
    for r in extra:
        exchange(port, r.encode())
    bad = [
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET /x HTTP/2.0\r\n\r\n",
        b"GET " + b"/a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"X-Big: " + b"y" * 9000 + b"\r\n\r\n",
        b"garbage\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
    ]
    for r in bad:
        exchange(port, r, want_close=True)
    # A keep-alive connection left idle until the server's idle timeout closes it.
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(f"GET /index.html HTTP/1.1\r\n{h}\r\n".encode())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and s.recv(65536):
        pass
    s.close()


# Run inside gdb: a breakpoint on the entry of every function of the binary;
# each records its function the first time it is hit and disables itself.
# The binary runs natively (unlike under an emulator, it takes the paths it
# takes in production: openat2, the CPU's SIMD code).
TRACER = r"""
import gdb, os, subprocess
binary, out = os.environ["HOT_TEXT_BINARY"], os.environ["HOT_TEXT_OUT"]
symbols = []
for line in subprocess.run(["nm", "--defined-only", binary], capture_output=True, text=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tT":
        symbols.append((int(parts[0], 16), parts[2]))
gdb.execute("set pagination off")
for sig in ("SIGTERM", "SIGHUP", "SIGPIPE", "SIGINT"):
    gdb.execute(f"handle {sig} nostop noprint pass")
gdb.execute("starti")
base = next(int(l.split()[0], 16) for l in gdb.execute("info proc mappings", to_string=True).splitlines()
            if l.strip().endswith(binary))
order = []
class Entry(gdb.Breakpoint):
    def stop(self):
        order.append(self.name)
        self.enabled = False
        return False
for addr, name in symbols:
    bp = Entry(f"*{base + addr:#x}", internal=True)
    bp.name = name
with open(out + ".pid", "w") as f:
    f.write(str(gdb.selected_inferior().pid))
gdb.execute("continue")
with open(out, "w") as f:
    f.write("\n".join(order) + "\n")
"""


def pattern(symbol):
    """A section-name glob for `symbol` that survives rebuilds."""
    p = re.sub(r"Cs[0-9A-Za-z]+_", "Cs*_", symbol)  # crate disambiguators (v0)
    p = re.sub(r"B[0-9A-Za-z]*_", "B*_", p)  # back-references shift with them
    p = re.sub(r"17h[0-9a-f]{16}E", "17h*E", p)  # legacy-mangling hashes
    p = re.sub(r"\.llvm\.[0-9]+$", ".llvm.*", p)
    p = re.sub(r"\.[0-9]+$", ".*", p)  # LLVM's suffixes for same-named local symbols
    # LLVM puts #[cold] functions in .text.unlikely.NAME.
    return f".text.{p} .text.unlikely.{p}"


def trace(binary, tracer, tmp, name, flags, work):
    """Runs `binary --listen 127.0.0.1:0 FLAGS` under gdb with the script
    `tracer` while `work(port)` talks to it, then has it reopen its log and
    stop; returns its functions in the order they first ran."""
    order = os.path.join(tmp, f"{name}.order")
    errpath = os.path.join(tmp, f"{name}.stderr")
    cmd = ["gdb", "-batch", "-nx", "-x", tracer, "--args", binary, "--listen", "127.0.0.1:0", *flags]
    env = dict(os.environ, RUST_LOG="info", HOT_TEXT_BINARY=binary, HOT_TEXT_OUT=order)
    with open(errpath, "w") as err:
        gdb = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env)
    try:
        port = wait_port(gdb, errpath, time.monotonic() + 120)
        with open(order + ".pid") as f:
            pid = int(f.read())
        work(port)
        os.kill(pid, signal.SIGHUP)  # reopen the access log
        time.sleep(0.5)
        os.kill(pid, signal.SIGTERM)
        gdb.wait(timeout=120)
    finally:
        if gdb.poll() is None:
            gdb.kill()
            gdb.wait()
    if not os.path.exists(order):
        sys.exit(f"the tracer wrote nothing:\n{tail(errpath)}")
    with open(order) as f:
        return f.read().split()


def main():
    for tool in ("gdb", "nm"):
        if not shutil.which(tool):
            sys.exit(f"needs {tool} (apt-get install gdb binutils)")
    subprocess.run(["cargo", "build", "--release", "--bin", "spindle"], cwd=ROOT, check=True)
    binary = os.path.realpath(os.path.join(ROOT, "target", "release", "spindle"))
    with tempfile.TemporaryDirectory() as tmp:
        site = os.path.join(tmp, "site")
        make_site(site)
        tracer = os.path.join(tmp, "tracer.py")
        with open(tracer, "w") as f:
            f.write(TRACER)
        # What every server runs comes first: startup and a few plain requests,
        # with the default options (access log on stdout) and with some set
        # (access log off, durations, a listing, a cached file checked again).
        # Then every feature.
        runs = [
            ("defaults", [site], basic_workload),
            ("options", ["--access-log", "off", "--idle-timeout", "30", "--file-cache-valid", "0.5",
                         "--listing", "--cache-control", "max-age=60", site], revalidating_workload),
            ("features", ["--listing", "--load-test", "--status", "/status", "--health", "/health",
                          "--idle-timeout", "2", "--access-log", os.path.join(tmp, "access.log"), site],
             workload),
        ]
        funcs = []
        for name, flags, work in runs:
            known = set(funcs)
            funcs += [f for f in trace(binary, tracer, tmp, name, flags, work) if f not in known]
    if len(funcs) < 50:
        sys.exit(f"only {len(funcs)} functions ran")
    seen, lines = set(), []
    for f in funcs:
        if not re.fullmatch(r"[A-Za-z_][0-9A-Za-z_$.]*", f):
            continue  # a name no section pattern can hold
        p = pattern(f)
        if p not in seen:
            seen.add(p)
            lines.append(f"    *({p})")
    with open(OUT, "w") as out:
        out.write("/* Generated by link/hot-text.py: the functions a serving spindle ran\n"
                  "   under its workload, in the order they first ran. build.rs passes this\n"
                  "   to the linker for the spindle binary; INSERT keeps the default layout\n"
                  "   for the rest. */\n")
        out.write("SECTIONS\n{\n  .text.hot :\n  {\n")
        # The C runtime's startup code (_start, frame_dummy) runs in every process.
        out.write("    *crt1.o(.text) *crtbegin*.o(.text)\n")
        out.write("\n".join(lines) + "\n  }\n}\nINSERT BEFORE .text;\n")
    print(f"{len(lines)} functions -> {os.path.relpath(OUT, ROOT)}")


if __name__ == "__main__":
    main()
