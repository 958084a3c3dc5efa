"""mpi4py.futures' side of bench/mpi_bench.lua: run as
   mpiexec -n 3 /usr/bin/python3 bench/mpi4py_bench.py TINY MAP REPS
Rank 0 prints "name sample ..." lines (the protocol of bench/common.lua);
the other ranks serve (MPICommExecutor), as futures.mpi's ranks do."""
import math
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPICommExecutor

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
    r = int(math.floor(math.sqrt(n)))
    for i in range(3, r + 1, 2):
        if n % i == 0:
            return False
    return True


def emit(name, samples):
    print(name, " ".join("%.9g" % v for v in samples), flush=True)


def main():
    tiny, nmap, reps = (int(a) for a in sys.argv[1:4])
    with MPICommExecutor(MPI.COMM_WORLD, root=0) as ex:
        if ex is None:
            return
        list(ex.map(inc, range(100)))   # every worker started
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for i in range(tiny):
                ex.submit(inc, i).result()
            t.append((time.perf_counter() - t0) / tiny)
        emit("tiny", t)
        t = []
        for _ in range(reps):
            t0 = time.perf_counter()
            list(ex.map(inc, range(nmap), chunksize=500))
            t.append((time.perf_counter() - t0) / nmap)
        emit("map", t)


main()
