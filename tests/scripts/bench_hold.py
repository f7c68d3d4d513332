#!/usr/bin/env python3
"""Memory per idle IMAP connection: many authenticated connections in IDLE at once.

    bench_hold.py hold --server HOST:PORT --user U --password P --pid PID
                       --conns N [--procs K] [--budget S]
    bench_hold.py memory --pid PID
    bench_hold.py cpu --pid PID

`hold` measures the memory of the server's process tree (PID and all its
descendants: Dovecot's master, login, auth and one imap process per connection),
then opens N implicit-TLS connections from K client processes (asyncio, a bounded
number of logins in flight each), each LOGIN, SELECT INBOX, IDLE and waiting for
the `+`, measures again once all are idle (or, when the budget runs out first, with
those idle by then: `complete=0`), and closes them. Memory is given two
ways: RSS summed over the tree (counts shared pages once per process) and PSS
(proportional set size: a shared page split among its sharers), which is the fair
sum for a server made of many processes. Prints
`RESULT conns=.. idle=.. failed=.. rss_before_kib=.. rss_after_kib=.. pss_before_kib=..
pss_after_kib=.. pss_per_conn_kib=.. rss_per_conn_kib=.. open_seconds=.. processes=..`
(`idle` is the count the per-connection figures divide by).
"""

import argparse
import asyncio
import multiprocessing
import os
import ssl
import sys
import time


def tree(root):
    """PID `root` and all its live descendants."""
    parent = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        parent[int(name)] = int(text[text.rindex(")") + 2 :].split()[1])
    members = []
    for pid in parent:
        walk = pid
        while walk > 1:
            if walk == root:
                members.append(pid)
                break
            walk = parent.get(walk, 0)
    return members


def memory(root):
    """(RSS KiB, PSS KiB, processes) of the tree under `root`."""
    rss = pss = count = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
            count += 1
        except OSError:
            continue  # a process that ended in between
    return rss, pss, count


def cpu_seconds(root):
    """CPU seconds of the tree under `root`: each process's user and system time plus
    what it reaped from its ended children (Dovecot's master reaps its imap processes)."""
    ticks = 0
    for pid in tree(root):
        try:
            with open(f"/proc/{pid}/stat") as stat:
                text = stat.read()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()  # fields[0] is field 3, the state
        ticks += sum(int(value) for value in fields[11:15])
    return ticks / os.sysconf("SC_CLK_TCK")


async def read_until(reader, prefix):
    while True:
        line = await reader.readline()
        if not line:
            raise EOFError("closed")
        if line.startswith(prefix):
            return line


async def open_idle(host, port, user, password, context, gate, held):
    async with gate:
        reader, writer = await asyncio.open_connection(host, port, ssl=context)
        await read_until(reader, b"* ")
        writer.write(f"a LOGIN {user} {password}\r\n".encode())
        line = await read_until(reader, b"a ")
        if not line.startswith(b"a OK"):
            raise RuntimeError(f"LOGIN {line[:120]!r}")
        writer.write(b"b SELECT INBOX\r\n")
        line = await read_until(reader, b"b ")
        if not line.startswith(b"b OK"):
            raise RuntimeError(f"SELECT {line[:120]!r}")
        writer.write(b"c IDLE\r\n")
        await read_until(reader, b"+")
    held.append(writer)


async def client_process(args, count, pipe):
    """Opens `count` connections; tells the parent when all are idle ("done"), or how
    many are so far when it asks ("report"); closes them all on "close"."""
    host, _, port = args.server.rpartition(":")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    gate = asyncio.Semaphore(args.in_flight)
    held, errors = [], []

    async def one():
        try:
            await open_idle(host, int(port), args.user, args.password, context, gate, held)
        except Exception as error:  # noqa: BLE001 - every failure is counted and sampled
            errors.append(f"{type(error).__name__}: {error}")

    tasks = [asyncio.create_task(one()) for _ in range(count)]

    async def announce_done():
        await asyncio.gather(*tasks)
        pipe.send(("done", len(held), errors[:3], len(errors)))

    announcer = asyncio.create_task(announce_done())
    loop = asyncio.get_running_loop()
    while True:
        message = await loop.run_in_executor(None, pipe.recv)
        if message == "report":
            pipe.send(("partial", len(held), errors[:3], len(errors)))
        elif message == "close":
            announcer.cancel()
            for task in tasks:
                task.cancel()
            for writer in held:
                writer.close()
            pipe.send(("closed",))
            return


def run_client(args, count, pipe):
    asyncio.run(client_process(args, count, pipe))


def hold(args):
    rss_before, pss_before, _ = memory(args.pid)
    started = time.monotonic()
    shares = [args.conns // args.procs + (1 if i < args.conns % args.procs else 0) for i in range(args.procs)]
    pipes, processes = [], []
    for share in shares:
        mine, theirs = multiprocessing.Pipe()
        process = multiprocessing.Process(target=run_client, args=(args, share, theirs))
        process.start()
        pipes.append(mine)
        processes.append(process)
    idle, failed, samples, complete = 0, 0, [], True
    deadline = started + args.budget
    for pipe in pipes:
        if pipe.poll(max(0.0, deadline - time.monotonic())):
            answer = pipe.recv()
        else:
            # Out of time: measure what is open now rather than nothing.
            complete = False
            pipe.send("report")
            answer = pipe.recv()
            while answer[0] != "partial":
                answer = pipe.recv()
        _, opened, errors, error_count = answer
        idle += opened
        failed += error_count
        samples += errors
    open_seconds = time.monotonic() - started
    # Let the last sessions settle (a reply written, a task parked) before measuring.
    time.sleep(2)
    rss_after, pss_after, processes_after = memory(args.pid)
    for pipe in pipes:
        pipe.send("close")
    for pipe in pipes:
        while pipe.poll(60):
            if pipe.recv()[0] == "closed":
                break
    for process in processes:
        process.join(30)
        if process.is_alive():
            process.kill()
    for sample in samples:
        print("error", sample, file=sys.stderr)
    per = max(idle, 1)
    print(
        f"RESULT conns={args.conns} idle={idle} failed={failed} complete={int(complete)} "
        f"rss_before_kib={rss_before} rss_after_kib={rss_after} "
        f"pss_before_kib={pss_before} pss_after_kib={pss_after} "
        f"rss_per_conn_kib={(rss_after - rss_before) / per:.1f} "
        f"pss_per_conn_kib={(pss_after - pss_before) / per:.1f} "
        f"open_seconds={open_seconds:.1f} processes={processes_after}"
    )


def main():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command", required=True)
    hold_parser = sub.add_parser("hold")
    hold_parser.add_argument("--server", required=True)
    hold_parser.add_argument("--user", required=True)
    hold_parser.add_argument("--password", required=True)
    hold_parser.add_argument("--pid", type=int, required=True)
    hold_parser.add_argument("--conns", type=int, required=True)
    hold_parser.add_argument("--procs", type=int, default=4)
    hold_parser.add_argument(
        "--in-flight", type=int, default=8, help="logins at once per process (2 cores: more only queue)"
    )
    hold_parser.add_argument("--budget", type=float, default=600)
    memory_parser = sub.add_parser("memory")
    memory_parser.add_argument("--pid", type=int, required=True)
    cpu_parser = sub.add_parser("cpu")
    cpu_parser.add_argument("--pid", type=int, required=True)
    args = parser.parse_args()
    if args.command == "cpu":
        print(f"{cpu_seconds(args.pid):.2f}")
    elif args.command == "memory":
        rss, pss, count = memory(args.pid)
        print(f"RESULT rss_kib={rss} pss_kib={pss} processes={count}")
    else:
        hold(args)


if __name__ == "__main__":
    main()
