// A checkpoint's tensors as tfjs tensors, for the trainer worker. The folder format, writing, the
// checks and retention are in checkpoint.ts, which has no tfjs import: the daemon's main thread uses it.

import * as tf from '@tensorflow/tfjs-core';
import { forEachSavedTensor, readCheckpointState, type CheckpointState } from './checkpoint.js';

export interface Checkpoint {
  dir: string;
  state: CheckpointState;
  /** Owned by the caller: dispose after use. */
  tensors: Record<string, tf.Tensor>;
}

/** Reads and verifies a checkpoint folder; the tensors are new and the caller's to dispose. */
export function readCheckpoint(dir: string): Checkpoint {
  const state = readCheckpointState(dir);
  const tensors: Record<string, tf.Tensor> = {};
  try {
    forEachSavedTensor(dir, state, (name, data, shape) => {
      tensors[name] = tf.tensor(data, shape, 'float32');
    });
  } catch (err) {
    tf.dispose(Object.values(tensors));
    throw err;
  }
  return { dir, state, tensors };
}
