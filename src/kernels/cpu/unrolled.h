// QB_UNROLLED, in front of a loop over a kernel's template-constant rows, tokens or vectors:
// unrolls it early enough for GCC's scalar replacement, so an array of accumulators indexed by
// it (acc[NT], s[NR][4]) lives in registers. Left as loops there, GCC 12 keeps such arrays in
// memory and stores every element on each pass of the loop around them (docs/KERNELS.md,
// "sums in registers"); every loop that indexes the array needs it, the ones that set it up
// and read it out included.
#pragma once

#define QB_UNROLLED _Pragma("GCC unroll 16")
