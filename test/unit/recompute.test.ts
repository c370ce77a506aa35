// Gradient checkpointing (src/models/archs/recompute.ts): the deep generators with `recompute` give the values
// and gradients of the plain ones, keep far less memory across the forward pass of a gradient, and a
// block handed a weight it does not read is an error rather than a silent zero.

import { beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';

import { initBackend } from '../../src/models/backend/init.js';
import { createFinalGenerator } from '../../src/models/archs/generator-final.js';
import { createRrdbNet } from '../../src/models/archs/rrdbnet.js';
import { loadNativeKernels, registerNativeKernels, unregisterNativeKernels } from '../../src/models/backend/native/kernels.js';
import { mse } from '../../src/models/losses/pixel-adversarial.js';
import { seededUniform } from '../../src/models/archs/ops.js';
import { recomputed } from '../../src/models/archs/recompute.js';
import type { Generator } from '../../src/models/archs/network.js';

beforeAll(async () => {
  await initBackend('wasm');
});

const nets: Record<string, (recompute: boolean) => Generator> = {
  'final (dilated blocks)': (recompute) => createFinalGenerator({ seed: 4, channels: 8, blocks: 3, recompute }),
  'final (DRB3 only)': (recompute) => createFinalGenerator({ seed: 4, channels: 8, blocks: 2, dilatedBlocks: false, recompute }),
  'rrdbnet ×2': (recompute) => createRrdbNet({ seed: 4, channels: 8, growth: 4, blocks: 3, scale: 2, recompute }),
};

/** Loss, SR output, every variable's gradient, and the bytes the tape holds once the forward is done. */
function step(g: Generator, lr: tf.Tensor4D, hr: tf.Tensor4D) {
  let heldBytes = 0;
  const before = tf.memory().numBytes;
  const { value, grads } = tf.variableGrads(() => {
    const loss = mse(g.apply(lr), hr);
    heldBytes = tf.memory().numBytes - before;
    return loss;
  }, Object.values(g.variables));
  const srTensor = tf.tidy(() => g.apply(lr));
  const out = {
    loss: value.dataSync()[0],
    sr: srTensor.dataSync() as Float32Array,
    // By the network's own names (the engine names variables by a global counter).
    grads: Object.fromEntries(Object.entries(g.variables).map(([k, v]) => [k, grads[v.name].dataSync() as Float32Array])),
    heldBytes,
  };
  tf.dispose([value, srTensor, ...Object.values(grads)]);
  return out;
}

function maxRelDiff(a: Float32Array, b: Float32Array): number {
  let scale = 0;
  let diff = 0;
  for (let i = 0; i < a.length; i++) {
    scale = Math.max(scale, Math.abs(a[i]));
    diff = Math.max(diff, Math.abs(a[i] - b[i]));
  }
  return diff / Math.max(scale, 1e-12);
}

function compare(make: (recompute: boolean) => Generator) {
  const lr = tf.add(seededUniform([2, 12, 12, 3], 0.5, 8), 0.5) as tf.Tensor4D;
  const plainNet = make(false);
  const hr = tf.tidy(() => tf.add(seededUniform([2, 12 * plainNet.scale, 12 * plainNet.scale, 3], 0.5, 9), 0.5)) as tf.Tensor4D;
  const plain = step(plainNet, lr, hr);
  const checkpointedNet = make(true);
  const checkpointed = step(checkpointedNet, lr, hr);
  const tensorsAfter = tf.memory().numTensors;
  step(checkpointedNet, lr, hr);
  const leaked = tf.memory().numTensors - tensorsAfter;
  tf.dispose([lr, hr]);
  plainNet.dispose();
  checkpointedNet.dispose();
  return { plain, checkpointed, leaked };
}

describe.each([
  ['wasm', false],
  ['wasm + native kernels', true],
])('recompute on %s', (_name, native) => {
  const available = !native || loadNativeKernels().ok;
  it.skipIf(!available).each(Object.keys(nets))('%s: same output and gradients, a fraction of the memory, no leak', (name) => {
    if (native) registerNativeKernels();
    try {
      const { plain, checkpointed, leaked } = compare(nets[name]);
      expect(checkpointed.sr).toEqual(plain.sr);
      expect(checkpointed.loss).toBe(plain.loss);
      expect(Object.keys(checkpointed.grads).sort()).toEqual(Object.keys(plain.grads).sort());
      for (const [k, g] of Object.entries(plain.grads)) {
        expect(
          g.some((v) => v !== 0),
          `${k} has a gradient`,
        ).toBe(true);
        // The same kernels on the same inputs; only the order in which a block input's two gradient
        // contributions (residual and body) are summed may differ.
        expect(maxRelDiff(checkpointed.grads[k], g), k).toBeLessThan(1e-5);
      }
      // Plain keeps every block's intermediates; recompute keeps one input per block.
      expect(checkpointed.heldBytes).toBeLessThan(plain.heldBytes / 3);
      expect(leaked).toBe(0);
    } finally {
      if (native) unregisterNativeKernels();
    }
  });
});

describe('recomputed', () => {
  it('throws for a weight the block does not read, and for a block with no weights', () => {
    const used = tf.variable(tf.ones([1, 1, 3, 3]), true, 'rc_used');
    const unused = tf.variable(tf.ones([3]), true, 'rc_unused');
    const x = tf.ones([1, 4, 4, 3]) as tf.Tensor4D;
    const block = (h: tf.Tensor4D): tf.Tensor4D => tf.conv2d(h, used as tf.Tensor4D, 1, 'same');
    const f = recomputed(block, [used, unused]);
    expect(() => tf.variableGrads(() => tf.sum(f(x)) as tf.Scalar, [used, unused])).toThrow(/gradient/i);
    expect(() => recomputed(block, [])).toThrow(/no weights/);
    // Read and listed: the gradient is the plain one.
    const ok = recomputed(block, [used]);
    const a = tf.variableGrads(() => tf.sum(ok(x)) as tf.Scalar, [used]);
    const b = tf.variableGrads(() => tf.sum(block(x)) as tf.Scalar, [used]);
    expect(a.grads['rc_used'].dataSync()).toEqual(b.grads['rc_used'].dataSync());
    tf.dispose([used, unused, x, a.value, b.value, ...Object.values(a.grads), ...Object.values(b.grads)]);
  });
});
