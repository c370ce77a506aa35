// Losses of docs/seed.md §4: pixel MSE, the relativistic per-pixel adversarial pair with the author's
// cap on the generator term, and the random shift crop applied before D.

import * as tf from '@tensorflow/tfjs-core';

function assertSameShape(what: string, a: tf.Tensor, b: tf.Tensor): void {
  if (!tf.util.arraysEqual(a.shape, b.shape)) {
    throw new RangeError(`${what}: shapes differ, [${a.shape.join(', ')}] vs [${b.shape.join(', ')}]`);
  }
}

/** Mean squared error over every element (PyTorch MSELoss, reduction 'mean'). */
export function mse(a: tf.Tensor, b: tf.Tensor): tf.Scalar {
  assertSameShape('mse', a, b);
  return tf.tidy(() => tf.mean(tf.squaredDifference(a, b)) as tf.Scalar);
}

/**
 * D loss: mean(softplus(Dy − Dl)) = BCEWithLogits(Dy − Dl, target 0) = −log σ(Dl − Dy) per pixel,
 * averaged over every pixel. `dy` = D(fake), `dl` = D(real), same shape.
 */
export function discriminatorLoss(dy: tf.Tensor, dl: tf.Tensor): tf.Scalar {
  assertSameShape('discriminatorLoss', dy, dl);
  return tf.tidy(() => tf.mean(tf.softplus(tf.sub(dy, dl))) as tf.Scalar);
}

/**
 * Capped relativistic G loss (docs/seed.md §4.3): with d = Dy − Dl,
 * mean over ALL pixels of (d > 0 ? 0 : softplus(−d)). Where the fake already scores higher the term
 * is exactly 0 and passes no gradient (the mask itself carries none); `w_adv` is applied by the caller.
 *
 * Written as a customGrad: the mask is a comparison, and tfjs has no gradient for comparison ops, so
 * a plain where(greater(d, 0), …) cannot be differentiated; the closed form is also cheaper.
 * ∂L/∂d = (d > 0 ? 0 : −σ(−d)) / count; ∂L/∂Dy = ∂L/∂d, ∂L/∂Dl = −∂L/∂d.
 */
export function generatorAdvLoss(dy: tf.Tensor, dl: tf.Tensor): tf.Scalar {
  assertSameShape('generatorAdvLoss', dy, dl);
  const f = tf.customGrad((...args: Array<tf.Tensor | tf.GradSaveFunc>) => {
    const [a, b, save] = args as [tf.Tensor, tf.Tensor, tf.GradSaveFunc];
    const d = tf.sub(a, b);
    const keep = tf.lessEqual(d, 0);
    const value = tf.mean(tf.where(keep, tf.softplus(tf.neg(d)), tf.zerosLike(d))) as tf.Scalar;
    save([d, keep]);
    return {
      value,
      gradFunc: (g: tf.Scalar, saved: tf.Tensor[]) => {
        const [sd, sKeep] = saved as [tf.Tensor, tf.Tensor];
        const dd = tf.where(sKeep, tf.mul(tf.neg(tf.sigmoid(tf.neg(sd))), tf.div(g, sd.size)), tf.zerosLike(sd));
        return [dd, tf.neg(dd)];
      },
    };
  });
  return f(dy, dl);
}

/**
 * Random shift crop (docs/seed.md §4.4): one draw of rx, ry ∈ [0, maxShift − 1] per call (rx first),
 * shared by every tensor; each NHWC tensor is cropped to rows ry … ry + H − maxShift − 1 and cols
 * rx … rx + W − maxShift − 1, where H, W are the first tensor's. All tensors must share H and W.
 * maxShift 0 returns the tensors unchanged (no draw). `rand` returns floats in [0, 1).
 */
export function shiftCrop<T extends tf.Tensor4D>(tensors: readonly T[], maxShift: number, rand: () => number): T[] {
  if (tensors.length === 0) return [];
  const [, h, w] = tensors[0].shape;
  if (!Number.isInteger(maxShift) || maxShift < 0 || maxShift >= Math.min(h, w)) {
    throw new RangeError(`shiftCrop: maxShift must be an integer in [0, ${Math.min(h, w) - 1}], got ${maxShift}`);
  }
  for (const t of tensors) {
    if (t.rank !== 4 || t.shape[1] !== h || t.shape[2] !== w) {
      throw new RangeError(`shiftCrop: every tensor must be [n, ${h}, ${w}, c], got [${t.shape.join(', ')}]`);
    }
  }
  if (maxShift === 0) return [...tensors];
  const draw = (): number => Math.min(maxShift - 1, Math.floor(rand() * maxShift));
  const rx = draw();
  const ry = draw();
  return tensors.map((t) => tf.slice(t, [0, ry, rx, 0], [-1, h - maxShift, w - maxShift, -1]));
}
