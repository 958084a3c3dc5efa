#!/usr/bin/env python3
"""Python's concurrent.futures on the workloads of bench/run.lua.

Usage: python3 bench/py_bench.py WORKLOAD KIND [ARGS...]
  KIND is "thread" or "process" (2 workers each), or "seq" for the
  sequential baselines of w2 and w3.  Prints one line per
  metric, "name sample sample ...", all samples raw (seconds unless the
  name says otherwise); bench/run.lua takes the medians.  Lines starting
  with "#" are notes.  The workloads mirror bench/workloads.lua exactly.
"""
import math
import os
import sys
import time
from concurrent.futures import (ThreadPoolExecutor, ProcessPoolExecutor,
                                wait, as_completed)

clock = time.perf_counter
WORKERS = 2
PRIMES = [112272535095293, 112582705942171, 112272535095293,
          115280095190773, 115797848077099, 1099726899285419]


def inc(x):
    return x + 1


def is_prime(n):
    if n < 2:
        return False
    if n == 2:
        return True
    if n % 2 == 0:
        return False
    r = math.isqrt(n)
    for i in range(3, r + 1, 2):
        if n % i == 0:
            return False
    return True


def build(n):
    return [i + 0.5 for i in range(1, n + 1)]


def nap(s):
    time.sleep(s)
    return s


def executor(kind):
    return (ThreadPoolExecutor if kind == "thread" else ProcessPoolExecutor)(WORKERS)


def warm(ex):
    # Start both workers before anything is timed.
    list(ex.map(nap, [0.02] * WORKERS))


def emit(name, samples):
    print(name, " ".join("%.9g" % s for s in samples), flush=True)


def status_kb(field, pid="self"):
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def children():
    pid = os.getpid()
    out = []
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/children" % (pid, tid)) as f:
                out += [int(p) for p in f.read().split()]
        except OSError:
            pass
    return out


def w1(kind, n, reps):
    n, reps = int(n), int(reps)
    with executor(kind) as ex:
        warm(ex)
        # Round 0 is not timed (as in bench/workloads.lua).
        samples = []
        for r in range(reps + 1):
            t0 = clock()
            fs = [ex.submit(inc, i) for i in range(n)]
            for f in fs:
                f.result()
            if r > 0:
                samples.append((clock() - t0) / n)
            del fs
        emit("submit", samples)
        samples = []
        for r in range(reps + 1):
            t0 = clock()
            for _r in ex.map(inc, range(n), chunksize=500):
                pass
            if r > 0:
                samples.append((clock() - t0) / n)
        emit("map", samples)


def w2(kind, reps):
    reps = int(reps)
    work = PRIMES * 2
    samples = []
    if kind == "seq":
        for _ in range(reps):
            t0 = clock()
            for p in work:
                is_prime(p)
            samples.append(clock() - t0)
        emit("seq", samples)
        return
    with executor(kind) as ex:
        warm(ex)
        for _ in range(reps):
            t0 = clock()
            list(ex.map(is_prime, work))
            samples.append(clock() - t0)
    emit("pool", samples)


def w3(kind, tasks, n, reps):
    tasks, n, reps = int(tasks), int(n), int(reps)
    samples = []
    # Round 0 is not timed: it sizes the heap (as in bench/workloads.lua).
    # The sequential run keeps its results, as the pool's futures do.
    if kind == "seq":
        for r in range(reps + 1):
            t0 = clock()
            out = [build(n) for _t in range(tasks)]
            if r > 0:
                samples.append(clock() - t0)
            del out
        emit("seq", samples)
        return
    with executor(kind) as ex:
        warm(ex)
        for r in range(reps + 1):
            t0 = clock()
            fs = [ex.submit(build, n) for _t in range(tasks)]
            for f in fs:
                assert len(f.result()) == n
            if r > 0:
                samples.append(clock() - t0)
            del fs
    emit("pool", samples)


def w4(kind, reps):
    start, stop = [], []
    for _ in range(int(reps)):
        t0 = clock()
        ex = executor(kind)
        ex.submit(inc, 1).result()
        t1 = clock()
        ex.shutdown(wait=True)
        t2 = clock()
        start.append(t1 - t0)
        stop.append(t2 - t1)
    emit("startup", start)
    emit("shutdown", stop)


def w5(kind, n, reps):
    n, reps = int(n), int(reps)
    with executor(kind) as ex:
        warm(ex)
        samples = []
        for _ in range(reps):
            t0 = clock()
            fs = [ex.submit(inc, i) for i in range(n)]
            wait(fs)
            samples.append((clock() - t0) / n)
            del fs
        emit("wait", samples)
        samples = []
        for _ in range(reps):
            t0 = clock()
            fs = [ex.submit(inc, i) for i in range(n)]
            for _f in as_completed(fs):
                pass
            samples.append((clock() - t0) / n)
            del fs
        emit("as_completed", samples)


def w6(kind, n):
    n = int(n)
    base = status_kb("VmRSS")
    t0 = clock()
    with executor(kind) as ex:
        fs = [ex.submit(inc, i) for i in range(n)]
        for f in fs:
            f.result()
        peak = status_kb("VmHWM")
        for p in children():
            peak += status_kb("VmHWM", p) or 0
        del fs
    emit("base_kb", [base])
    emit("peak_kb", [peak])
    emit("seconds", [clock() - t0])


def idle(kind):
    base = status_kb("VmRSS")
    ex = executor(kind)
    warm(ex)
    time.sleep(0.05)
    own = status_kb("VmRSS") - base
    kids = [status_kb("VmRSS", p) for p in children()]
    kids = [k for k in kids if k is not None]
    emit("workers", [WORKERS])
    emit("self_kb", [own])
    emit("children_kb", [sum(kids)])
    emit("children", [len(kids)])
    ex.shutdown(wait=True)


def w7(kind, reps):
    # A fresh pool of 2 per run (its start is timed): one 0.6 s call, then
    # ten 0.05 s calls; when the last short call and when every call is done.
    makespan, last_short = [], []
    for _ in range(int(reps)):
        ex = executor(kind)
        t0 = clock()
        long = ex.submit(nap, 0.6)
        shorts = [ex.submit(nap, 0.05) for _ in range(10)]
        wait(shorts)
        last_short.append(clock() - t0)
        long.result()
        makespan.append(clock() - t0)
        ex.shutdown(wait=True)
    emit("makespan", makespan)
    emit("last_short", last_short)


def c1(kind, n, reps):
    import asyncio
    n, reps = int(n), int(reps)
    with executor(kind) as ex:
        warm(ex)

        async def one(loop, i):
            return await loop.run_in_executor(ex, inc, i)

        async def main():
            loop = asyncio.get_running_loop()
            return await asyncio.gather(*(one(loop, i) for i in range(n)))

        samples = []
        for r in range(reps + 1):
            t0 = clock()
            asyncio.run(main())
            if r > 0:
                samples.append((clock() - t0) / n)
        emit("coroutines", samples)


def stream(q, n):
    for i in range(n):
        q.put(i)


def q1(kind, n, reps):
    # queue.Queue between a pool thread and this thread; a Manager queue
    # (a proxy to a server process) from a process-pool worker.
    import queue
    import multiprocessing
    n, reps = int(n), int(reps)
    manager = multiprocessing.Manager() if kind == "process" else None
    with executor(kind) as ex:
        warm(ex)
        samples = []
        for r in range(reps + 1):
            q = manager.Queue(1000) if manager else queue.Queue(1000)
            t0 = clock()
            f = ex.submit(stream, q, n)
            for _ in range(n):
                q.get()
            f.result()
            if r > 0:
                samples.append((clock() - t0) / n)
        emit("values", samples)
    if manager:
        manager.shutdown()


if __name__ == "__main__":
    print("# python", sys.version.split()[0], flush=True)
    {"w1": w1, "w2": w2, "w3": w3, "w4": w4, "w5": w5, "w6": w6,
     "w7": w7, "idle": idle, "c1": c1, "q1": q1}[sys.argv[1]](*sys.argv[2:])
