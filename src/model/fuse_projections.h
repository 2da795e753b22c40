// Joins the matrices that read the same input into one, so the CPU forward pass runs one Linear
// where it ran several: q, k and v (one quantization of the normalized input instead of three,
// one thread-pool job instead of three, and the small k/v matrices no longer split alone across
// the threads), and gate and up. The joined matrix is a new tensor; wq/wk/wv (and w_gate/w_up,
// and the q/k/v biases) become row slices of it, so every other reader of the weights is
// unchanged and no byte is held twice. Each output row is computed exactly as before: the
// results are bit-identical.
#pragma once

#include "model/weights.h"

namespace qb {

// Joins where it can: matrices of one dtype and width, row counts that are whole row groups of
// that dtype, no act-order permutation. Parts still mapped from the file are copied and their
// pages released from the mapping (the file's page cache may keep them until memory is needed).
void FuseProjections(Qwen2Weights& w);

}  // namespace qb
