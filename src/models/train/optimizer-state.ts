// Adam's state by our variables' stable names, for checkpoints.
//
// tfjs names an optimizer's moments after the engine's variable names (`${variable.name}/m`), which are
// numbered per process, and tfjs' own setWeights recomputes accBeta1/2 as powers of beta (not bit for
// bit what the running products hold). So we read and write the fields directly: the iteration count,
// both running beta products, and the moments of each variable under the name the network gives it.
// Moments sit at the index of their variable in the gradient list, which is the order of the
// network's variables (Gan passes them in that order every step).

import * as tf from '@tensorflow/tfjs-core';
import { SrganError } from '../../util/errors.js';

/** The fields of tfjs' AdamOptimizer we read and write (private in its typings). */
interface AdamFields {
  iterations_: number;
  accBeta1: tf.Variable;
  accBeta2: tf.Variable;
  accumulatedFirstMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
  accumulatedSecondMoment: Array<{ originalName: string; variable: tf.Variable } | undefined>;
}

export interface AdamSnapshot {
  iterations: number;
  accBeta1: number;
  accBeta2: number;
  /** First and second moments by stable variable name; absent before the first step. */
  m: Record<string, tf.Tensor>;
  v: Record<string, tf.Tensor>;
}

/**
 * The optimizer's state (tensors are the optimizer's own: read them before it steps again). Async: the
 * β powers live on the device, and a GPU backend reads only asynchronously.
 */
export async function adamSnapshot(opt: tf.AdamOptimizer, variables: Record<string, tf.Variable>): Promise<AdamSnapshot> {
  const a = opt as unknown as AdamFields;
  const byEngineName = new Map(Object.entries(variables).map(([k, v]) => [v.name, k]));
  const collect = (list: AdamFields['accumulatedFirstMoment'], suffix: string): Record<string, tf.Tensor> => {
    const out: Record<string, tf.Tensor> = {};
    for (const acc of list) {
      if (!acc) continue;
      const engineName = acc.originalName.slice(0, -suffix.length);
      const name = byEngineName.get(engineName);
      if (name === undefined)
        throw new SrganError('SRGAN_ERR_CHECKPOINT', `optimizer moment ${acc.originalName} belongs to no variable of this network`);
      out[name] = acc.variable;
    }
    return out;
  };
  return {
    iterations: a.iterations_ ?? 0,
    accBeta1: (await a.accBeta1.data())[0],
    accBeta2: (await a.accBeta2.data())[0],
    m: collect(a.accumulatedFirstMoment, '/m'),
    v: collect(a.accumulatedSecondMoment, '/v'),
  };
}

/**
 * Every variable of the optimizer's state: both running β products and the moments created so far
 * (tfjs creates a variable's moments at its first update).
 */
export function adamVariables(opt: tf.AdamOptimizer): tf.Variable[] {
  const a = opt as unknown as AdamFields;
  const moments = [...a.accumulatedFirstMoment, ...a.accumulatedSecondMoment].flatMap((acc) => (acc ? [acc.variable] : []));
  return [a.accBeta1, a.accBeta2, ...moments];
}

/** The optimizer's update count (tfjs counts it in JS; only its saved weights use it). */
export function adamIterations(opt: tf.AdamOptimizer, set?: number): number {
  const a = opt as unknown as AdamFields;
  if (set !== undefined) a.iterations_ = set;
  return a.iterations_ ?? 0;
}

/**
 * Puts a snapshot into a fresh optimizer for `variables` (in the order they are passed to it).
 * Throws SRGAN_ERR_CHECKPOINT naming a missing or mis-shaped moment.
 */
export function restoreAdam(opt: tf.AdamOptimizer, variables: Record<string, tf.Variable>, s: AdamSnapshot): void {
  const a = opt as unknown as AdamFields;
  a.iterations_ = s.iterations;
  a.accBeta1.assign(tf.scalar(s.accBeta1));
  a.accBeta2.assign(tf.scalar(s.accBeta2));
  const names = Object.keys(variables);
  const moments = (src: Record<string, tf.Tensor>, suffix: string) =>
    names.map((name) => {
      const value = variables[name];
      const t = src[name];
      if (!t) throw new SrganError('SRGAN_ERR_CHECKPOINT', `optimizer state has no ${suffix.slice(1)} moment for ${name}`);
      if (!tf.util.arraysEqual(t.shape, value.shape)) {
        throw new SrganError(
          'SRGAN_ERR_CHECKPOINT',
          `optimizer moment ${name}${suffix} has shape [${t.shape}], the variable [${value.shape}]`,
        );
      }
      return { originalName: `${value.name}${suffix}`, variable: tf.variable(t, false) };
    });
  if (Object.keys(s.m).length === 0) return; // saved before the first step: moments are created on use
  for (const acc of [...a.accumulatedFirstMoment, ...a.accumulatedSecondMoment]) acc?.variable.dispose();
  a.accumulatedFirstMoment = moments(s.m, '/m');
  a.accumulatedSecondMoment = moments(s.v, '/v');
}
