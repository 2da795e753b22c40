#!/usr/bin/env python3
"""Counts the machine instructions (SASS) in the loops of CUDA kernels, by kind: what a kernel
issues per iteration of its main loop, without a GPU. A developer's tool (docs/CUDA_PERF.md):
the tensor-core int4 kernels were tuned on instruction counts per k-step.

usage: scripts/cuda-sass-loops.py SASS_FILE [--match TEXT] [--most N]
  SASS_FILE  output of `nvdisasm -c CUBIN` or `cuobjdump -sass BINARY`
             (scripts/cuda-sass-local.sh makes one on a machine without a GPU)
  --match    only kernels whose (mangled) name contains TEXT
  --most     kinds of instruction to list per loop (default 16)

For each kernel: its instruction count and mma count, then each backward branch's loop (start,
end, instructions, mma.sync instructions (HMMA) and the most frequent kinds).
"""
import argparse
import collections
import re
import sys

# nvdisasm: "//---- .text.NAME ----"; cuobjdump: "Function : NAME".
HEADER = re.compile(r"^\s*(?://-+ \.text\.(\S+) -+|Function : (\S+))\s*$")
INSN = re.compile(r"/\*([0-9a-f]{4,})\*/\s+(.*?)\s*;")
LABEL = re.compile(r"^\s*(\.L_x_\d+):")
TARGET = re.compile(r"BRA\S*\s+(?:!?U?P\d\s*,\s*)?`?\(?(\.L_x_\d+|0x[0-9a-f]+)")


def kernels(lines):
    name, insns, labels = None, [], {}
    for line in lines:
        h = HEADER.match(line)
        if h:
            if name:
                yield name, insns, labels
            name, insns, labels = h.group(1) or h.group(2), [], {}
            continue
        if name is None:
            continue
        m = LABEL.match(line)
        if m:
            labels[m.group(1)] = len(insns)
            continue
        m = INSN.search(line)
        if m:
            op = m.group(2)
            if op.startswith("@"):
                op = op.split(None, 1)[1]
            insns.append((int(m.group(1), 16), op))
    if name:
        yield name, insns, labels


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sass")
    ap.add_argument("--match", default="")
    ap.add_argument("--most", type=int, default=16)
    args = ap.parse_args()
    with open(args.sass) as f:
        lines = f.read().splitlines()
    found = False
    for name, insns, labels in kernels(lines):
        if args.match not in name:
            continue
        found = True
        index_of_addr = {addr: i for i, (addr, _) in enumerate(insns)}
        mma = sum(op.startswith("HMMA") for _, op in insns)
        print(f"{name}\n  {len(insns)} instructions, {mma} HMMA")
        for j, (_, op) in enumerate(insns):
            m = TARGET.search(op)
            if not m:
                continue
            t = m.group(1)
            start = labels.get(t) if t.startswith(".L") else index_of_addr.get(int(t, 16))
            if start is None or start > j or j - start < 8:
                continue
            kinds = collections.Counter(o.split()[0].split(".")[0] for _, o in insns[start:j + 1])
            listed = " ".join(f"{k} {v}" for k, v in kinds.most_common(args.most))
            print(f"  loop [{start}, {j}]: {j - start + 1} instructions, HMMA {kinds['HMMA']}: {listed}")
    if not found:
        sys.exit(f"no kernel matches {args.match!r} in {args.sass}")


if __name__ == "__main__":
    main()
