#!/usr/bin/env python3
"""Lists the kernel functions of a binary whose innermost loops move SIMD registers to and from
the stack: spilled accumulators, or arrays of sums that GCC kept in memory (docs/KERNELS.md,
"sums in registers": loops over template-constant rows left as loops when its scalar
replacement ran). A developer's tool, not a test: a row is a place to look, not a verdict
(an inner loop can store to the stack on purpose).

usage: scripts/kernel-stack-traffic.py [BINARY] [--match TEXT] [--most N]
  BINARY   default build/qwenbox (any binary or object built from src/kernels)
  --match  only functions whose demangled name contains TEXT (default qb::kernels)
  --most   print at most N rows (default 40), most stores first
Needs objdump (binutils).
"""
import argparse
import re
import subprocess
import sys

FUNC = re.compile(r"^([0-9a-f]+) <(.*)>:$")
INSN = re.compile(r"^\s+([0-9a-f]+):\s+(.*)$")
JUMP = re.compile(r"j\w+\s+([0-9a-f]+) ")
STORE = re.compile(r"vmov\w+\s+%[xyz]mm\d+,.*\(%rsp\)")
LOAD = re.compile(r"vmov\w+\s+-?(0x[0-9a-f]+)?\(%rsp\),%[xyz]mm")
ARITH = re.compile(r"fmadd|fnmadd|dpbusd|maddubs|madd_|pmaddwd|dpbf16")


def functions(binary):
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", "-C", binary], capture_output=True, text=True,
                         check=True).stdout
    name, insns = None, []
    for line in out.splitlines():
        m = FUNC.match(line)
        if m:
            if name is not None:
                yield name, insns
            name, insns = m.group(2), []
            continue
        m = INSN.match(line)
        if m and name is not None:
            insns.append((int(m.group(1), 16), m.group(2)))
    if name is not None:
        yield name, insns


def innermost_loops(insns):
    loops = []
    for addr, text in insns:
        m = JUMP.match(text)
        if m and int(m.group(1), 16) < addr:
            loops.append((int(m.group(1), 16), addr))
    return [(s, e) for s, e in loops if not any((s2, e2) != (s, e) and s <= s2 and e2 <= e for s2, e2 in loops)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("binary", nargs="?", default="build/qwenbox")
    ap.add_argument("--match", default="qb::kernels")
    ap.add_argument("--most", type=int, default=40)
    args = ap.parse_args()
    rows = []
    for name, insns in functions(args.binary):
        if args.match not in name:
            continue
        stores = loads = arith = 0
        for s, e in innermost_loops(insns):
            for addr, text in insns:
                if s <= addr <= e:
                    stores += bool(STORE.match(text))
                    loads += bool(LOAD.match(text))
                    arith += bool(ARITH.search(text))
        if stores or loads:
            rows.append((stores, loads, arith, name))
    rows.sort(key=lambda r: (-r[0], -r[1]))
    print("stores loads  fma/madd  function (innermost loops only)")
    for stores, loads, arith, name in rows[:args.most]:
        print(f"{stores:6d} {loads:5d} {arith:9d}  {name[:160]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
