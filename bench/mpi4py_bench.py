"""mpi4py.futures' side of bench/mpi_bench.lua: run as
   mpiexec -n 3 /usr/bin/python3 bench/mpi4py_bench.py TINY MAP REPS
Rank 0 prints "name sample ..." lines (the protocol of bench/common.lua);
the other ranks serve (MPICommExecutor), as futures.mpi's ranks do."""
import os
import sys
import time

from mpi4py import MPI
from mpi4py.futures import MPICommExecutor

# The same workloads as Python's other benchmarks; every rank imports them
# (mpi4py sends the functions by their module's name).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from py_bench import PRIMES, emit, inc, is_prime  # noqa: E402


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
