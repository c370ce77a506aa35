// Gradient checkpointing ("recompute") for the deep generators (docs/backends.md, "Memory").
//
// Under tf.variableGrads every op of the forward pass keeps its inputs for the backward pass. The final
// ×2 generator at the article's size (one 256² patch, 16 MyRRDBs) keeps about a thousand 128²×64 float
// tensors, ~4 GiB: the whole wasm heap. Wrapped by `recomputed`, a block keeps only its input; its
// forward runs once more inside the backward pass, this time recorded, and the gradient comes from
// that recording. Values and gradients are those of the plain block (the same kernels on the same
// inputs); the cost is one more forward of each wrapped block per backward pass.
//
// How, in tfjs terms: tf.customGrad runs its forward with the tape off (the engine records nothing
// inside a kernel), so the block's intermediates are freed on return. Its gradient function calls
// tf.grads on the block again, on a fresh tape (and puts the engine's tape slot back afterwards).
// The block's weights are inputs of the custom op, so the outer tape routes their gradients too.

import * as tf from '@tensorflow/tfjs-core';
import type { ConvLayer } from './ops.js';

/**
 * `block` evaluated so that a tape keeps only its input: the backward pass recomputes it. `weights`
 * must hold every variable `block` reads, and only those (tf.grads throws for a weight the block does
 * not read; one read but not listed would get no gradient, which the tests of each generator rule out).
 */
export function recomputed(block: (x: tf.Tensor4D) => tf.Tensor4D, weights: readonly tf.Variable[]): (x: tf.Tensor4D) => tf.Tensor4D {
  if (weights.length === 0) throw new RangeError('recomputed: a block with no weights needs no recomputing');
  const op = tf.customGrad((...args: unknown[]) => {
    const x = args[0] as tf.Tensor4D;
    const save = args[args.length - 1] as tf.GradSaveFunc;
    save([x]);
    return {
      value: block(x),
      gradFunc: (dy: tf.Tensor | tf.Tensor[], saved: tf.Tensor[]) => {
        // The engine's tape is one slot: a gradient taken inside a gradient function starts a fresh tape
        // in it and, when done, empties it, so the outer backward pass would find no tape to free and
        // fail. Keep the outer one and put it back.
        const state = tf.engine().state;
        const outerTape = state.activeTape;
        try {
          // The weights are the tensors block reads, so their gradients come with x's (tf.grads throws
          // for one the block does not read).
          return tf.grads((input: tf.Tensor) => block(input as tf.Tensor4D))([saved[0], ...weights], dy as tf.Tensor);
        } finally {
          state.activeTape = outerTape;
        }
      },
    };
  });
  return (x) => op(x, ...weights);
}

/** The variables of `layers` (weights, and biases where they have them), for `recomputed`. */
export function layerWeights(layers: readonly ConvLayer[]): tf.Variable[] {
  return layers.flatMap((l) => (l.b === null ? [l.w] : [l.w, l.b]));
}
