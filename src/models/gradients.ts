// Gradient functions for the kernels our networks and losses use.
//
// Why this file exists: `@tensorflow/tfjs-core` registers no gradients by itself. Upstream, the
// registrations live in `dist/register_all_gradients.js`, an ES module with extension-less relative
// imports that Node cannot load, and they are only pulled in by the `@tensorflow/tfjs` union package,
// which this project does not depend on. Without them every `tf.grad`/`tf.variableGrads` fails with
// "gradient function not found for Sum" on every backend. So we register our own, ported from
// tfjs-core 4.22 `src/gradients/*_grad.ts` (Apache-2.0), written only with public tf ops.
//
// Invariant: registration never overrides a gradient that is already registered (for example by the
// union package, or by a later re-registration of Conv2D for dilations > 1), so it is idempotent.

import * as tf from '@tensorflow/tfjs-core';

type Grads = Record<string, () => tf.Tensor>;

const { assertAndGetBroadcastShape, getReductionAxes } = tf.broadcast_util;

/** Sums `dy` over the axes along which `shape` was broadcast to `outShape`, then reshapes to `shape`. */
function unbroadcast(dy: tf.Tensor, shape: number[], outShape: number[]): tf.Tensor {
  const axes = getReductionAxes(shape, outShape);
  if (axes.length === 0) return tf.reshape(dy, shape);
  if (dy.rank === outShape.length && axes.every((a, i) => a === i)) {
    // Leading axes only (a per-channel bias or scale on NHWC): ones[1, lead] · dy[lead, rest]. On
    // wasm this is one XNNPACK matmul, ~15× faster than Sum, which transposes the outer axes inward.
    const lead = outShape.slice(0, axes.length).reduce((a, d) => a * d, 1);
    const rows = tf.reshape(dy, [lead, dy.size / lead]);
    return tf.reshape(tf.matMul(tf.ones([1, lead]), rows), shape);
  }
  return tf.reshape(tf.sum(dy, axes), shape);
}

function binary(
  kernelName: string,
  derA: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
  derB: (dy: tf.Tensor, a: tf.Tensor, b: tf.Tensor) => tf.Tensor,
): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['a', 'b'],
    gradFunc: (dy, saved): Grads => {
      const [a, b] = saved as [tf.Tensor, tf.Tensor];
      const d = dy as tf.Tensor;
      const outShape = assertAndGetBroadcastShape(a.shape, b.shape);
      return {
        a: () => unbroadcast(derA(d, a, b), a.shape, outShape),
        b: () => unbroadcast(derB(d, a, b), b.shape, outShape),
      };
    },
  };
}

/** A unary kernel whose gradient needs its input `x`. */
function unaryX(kernelName: string, der: (dy: tf.Tensor, x: tf.Tensor, attrs: tf.NamedAttrMap) => tf.Tensor): tf.GradConfig {
  return {
    kernelName,
    inputsToSave: ['x'],
    gradFunc: (dy, saved, attrs): Grads => ({ x: () => der(dy as tf.Tensor, saved[0]!, attrs) }),
  };
}

/** A unary kernel whose gradient needs its output `y`. */
function unaryY(kernelName: string, der: (dy: tf.Tensor, y: tf.Tensor) => tf.Tensor): tf.GradConfig {
  return {
    kernelName,
    outputsToSave: [true],
    gradFunc: (dy, saved): Grads => ({ x: () => der(dy as tf.Tensor, saved[0]!) }),
  };
}

function reduceGrad(kernelName: string, isMean: boolean): tf.GradConfig {
  return unaryX(kernelName, (dy, x, attrs) => {
    const axes = tf.util.parseAxisParam(attrs['axis'] as number | number[], x.shape);
    const expanded = x.shape.slice();
    let reduceSize = 1;
    for (const ax of axes) {
      reduceSize *= x.shape[ax]!;
      expanded[ax] = 1;
    }
    const full = tf.mul(tf.reshape(dy, expanded), tf.ones(x.shape, 'float32'));
    return isMean ? tf.div(full, reduceSize) : full;
  });
}

const f32 = (t: tf.Tensor): tf.Tensor => tf.cast(t, 'float32');

const GRADIENTS: tf.GradConfig[] = [
  binary(tf.Add, (dy) => dy, (dy) => dy),
  binary(tf.Sub, (dy) => dy, (dy) => tf.neg(dy)),
  binary(tf.Multiply, (dy, _a, b) => tf.mul(dy, f32(b)), (dy, a) => tf.mul(dy, f32(a))),
  binary(
    tf.RealDiv,
    (dy, _a, b) => tf.div(dy, f32(b)),
    (dy, a, b) => tf.neg(tf.div(tf.mul(dy, f32(a)), f32(tf.square(b)))),
  ),
  binary(
    tf.SquaredDifference,
    (dy, a, b) => tf.mul(dy, tf.mul(2, tf.sub(a, b))),
    (dy, a, b) => tf.mul(dy, tf.mul(2, tf.sub(b, a))),
  ),
  binary(
    tf.Maximum,
    (dy, a, b) => tf.mul(dy, f32(tf.greaterEqual(a, b))),
    (dy, a, b) => tf.mul(dy, f32(tf.less(a, b))),
  ),
  binary(
    tf.Minimum,
    (dy, a, b) => tf.mul(dy, f32(tf.lessEqual(a, b))),
    (dy, a, b) => tf.mul(dy, f32(tf.greater(a, b))),
  ),
  {
    kernelName: tf.Pow,
    inputsToSave: ['a', 'b'],
    outputsToSave: [true],
    gradFunc: (dy, saved): Grads => {
      const [a, b, y] = saved as [tf.Tensor, tf.Tensor, tf.Tensor];
      const d = dy as tf.Tensor;
      const outShape = assertAndGetBroadcastShape(a.shape, b.shape);
      return {
        a: () => {
          const e = f32(b);
          return unbroadcast(tf.mul(d, tf.mul(e, tf.pow(a, tf.sub(e, 1)))), a.shape, outShape);
        },
        b: () => {
          const logA = tf.where(tf.greater(a, 0), tf.log(a), tf.zerosLike(a));
          return unbroadcast(tf.mul(d, tf.mul(y, logA)), b.shape, outShape);
        },
      };
    },
  },
  {
    kernelName: tf.AddN,
    saveAllInputs: true,
    gradFunc: (dy, saved): Grads =>
      Object.fromEntries(saved.map((_, i) => [String(i), () => (dy as tf.Tensor).clone()])),
  },
  unaryX(tf.Square, (dy, x) => tf.mul(dy, tf.mul(f32(x), 2))),
  unaryX(tf.Sqrt, (dy, x) => tf.div(dy, tf.mul(tf.sqrt(f32(x)), 2))),
  unaryX(tf.Rsqrt, (dy, x) => tf.neg(tf.div(dy, tf.mul(tf.pow(x, 1.5), 2)))),
  unaryX(tf.Reciprocal, (dy, x) => tf.div(dy, tf.neg(tf.square(x)))),
  unaryX(tf.Log, (dy, x) => tf.div(dy, f32(x))),
  unaryX(tf.Abs, (dy, x) => tf.mul(dy, tf.step(f32(x), -1))),
  unaryX(tf.Relu, (dy, x) => tf.mul(dy, f32(tf.step(x)))),
  unaryX(tf.LeakyRelu, (dy, x, attrs) =>
    tf.where(tf.greater(x, 0), dy, tf.mul(dy, attrs['alpha'] as number)),
  ),
  unaryX(tf.Softplus, (dy, x) => tf.mul(dy, tf.sigmoid(x))),
  unaryX(tf.ClipByValue, (dy, x, attrs) =>
    tf.where(
      tf.logicalAnd(
        tf.greaterEqual(x, attrs['clipValueMin'] as number),
        tf.lessEqual(x, attrs['clipValueMax'] as number),
      ),
      dy,
      tf.zerosLike(dy),
    ),
  ),
  unaryY(tf.Exp, (dy, y) => tf.mul(dy, y)),
  unaryY(tf.Sigmoid, (dy, y) => tf.mul(dy, tf.mul(y, tf.sub(1, y)))),
  unaryY(tf.Tanh, (dy, y) => tf.mul(tf.sub(1, tf.square(y)), dy)),
  { kernelName: tf.Neg, gradFunc: (dy): Grads => ({ x: () => tf.neg(dy as tf.Tensor) }) },
  { kernelName: tf.Cast, gradFunc: (dy): Grads => ({ x: () => (dy as tf.Tensor).clone() }) },
  { kernelName: tf.Identity, gradFunc: (dy): Grads => ({ x: () => f32(dy as tf.Tensor) }) },
  { kernelName: tf.Step, gradFunc: (dy): Grads => ({ x: () => tf.zerosLike(dy as tf.Tensor) }) },
  reduceGrad(tf.Sum, false),
  reduceGrad(tf.Mean, true),
  unaryX(tf.Reshape, (dy, x) => tf.reshape(dy, x.shape)),
  {
    kernelName: tf.ExpandDims,
    inputsToSave: ['input'],
    gradFunc: (dy, saved): Grads => ({ input: () => tf.reshape(dy as tf.Tensor, saved[0]!.shape) }),
  },
  {
    kernelName: tf.Transpose,
    gradFunc: (dy, _saved, attrs): Grads => ({
      x: () => tf.transpose(dy as tf.Tensor, tf.backend_util.getUndoAxesPermutation(attrs['perm'] as number[])),
    }),
  },
  // tf.broadcastTo runs as Tile. out[i·x + j] = x[j] along each axis, so viewing dy as
  // [r0, x0, r1, x1, …] and summing the r axes gives the gradient.
  unaryX(tf.Tile, (dy, x, attrs) => {
    const reps = attrs['reps'] as number[];
    const split = x.shape.flatMap((d, i) => [reps[i]!, d]);
    return tf.reshape(tf.sum(tf.reshape(dy, split), x.shape.map((_, i) => 2 * i)), x.shape);
  }),
  unaryX(tf.Slice, (dy, x, attrs) => {
    const [begin, size] = tf.slice_util.parseSliceParams(x, attrs['begin'] as number[], attrs['size'] as number[]);
    return tf.pad(
      dy,
      x.shape.map((dim, i): [number, number] => [begin[i]!, dim - begin[i]! - size[i]!]),
    );
  }),
  unaryX(tf.PadV2, (dy, x, attrs) =>
    tf.slice(dy, (attrs['paddings'] as Array<[number, number]>).map((p) => p[0]), x.shape),
  ),
  {
    kernelName: tf.Concat,
    saveAllInputs: true,
    gradFunc: (dy, saved, attrs): Grads => {
      const axis = tf.util.parseAxisParam(attrs['axis'] as number, saved[0]!.shape)[0]!;
      const parts = tf.split(dy as tf.Tensor, saved.map((t) => t.shape[axis]!), axis);
      return Object.fromEntries(parts.map((t, i) => [String(i), () => t]));
    },
  },
  {
    kernelName: tf.Pack,
    saveAllInputs: true,
    gradFunc: (dy, _saved, attrs): Grads =>
      Object.fromEntries(tf.unstack(dy as tf.Tensor, attrs['axis'] as number).map((t, i) => [String(i), () => t])),
  },
  {
    kernelName: tf.Unpack,
    gradFunc: (dy, _saved, attrs): Grads => ({ value: () => tf.stack(dy as tf.Tensor[], attrs['axis'] as number) }),
  },
  {
    kernelName: tf.SplitV,
    gradFunc: (dy, _saved, attrs): Grads => ({ x: () => tf.concat(dy as tf.Tensor[], attrs['axis'] as number) }),
  },
  {
    kernelName: tf.Select,
    inputsToSave: ['condition'],
    gradFunc: (dy, saved): Grads => {
      const cond = saved[0]!;
      const d = dy as tf.Tensor;
      return {
        condition: () => f32(tf.zerosLike(cond)),
        t: () => tf.mul(d, tf.cast(cond, d.dtype)),
        e: () => tf.mul(d, tf.cast(tf.logicalNot(cond), d.dtype)),
      };
    },
  },
  {
    kernelName: tf.MaxPool,
    inputsToSave: ['x'],
    outputsToSave: [true],
    gradFunc: (dy, saved, attrs): Grads => {
      const [x, y] = saved as [tf.Tensor, tf.Tensor];
      const { filterSize, strides, pad, dimRoundingMode } = attrs;
      return {
        x: () =>
          tf.engine().runKernel(tf.MaxPoolGrad, { dy: dy as tf.Tensor, input: x, output: y }, {
            filterSize,
            strides,
            pad,
            dimRoundingMode,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
      };
    },
  },
  unaryX(tf.AvgPool, (dy, x, attrs) => {
    const { filterSize, strides, pad, dimRoundingMode } = attrs;
    return tf.engine().runKernel(tf.AvgPoolGrad, { dy, input: x }, {
      filterSize,
      strides,
      pad,
      dimRoundingMode,
    } as unknown as tf.NamedAttrMap) as tf.Tensor;
  }),
  {
    // Dilation 1 only, as upstream. The wasm backend runs these two kernels through the fast
    // formulations in kernels.ts.
    kernelName: tf.Conv2D,
    inputsToSave: ['x', 'filter'],
    gradFunc: (dy, saved, attrs): Grads => {
      const [x, filter] = saved as [tf.Tensor4D, tf.Tensor4D];
      const { dilations, strides, pad, dataFormat, dimRoundingMode } = attrs;
      if (!tf.backend_util.tupleValuesAreOne(dilations as number | [number, number])) {
        throw new Error(`conv2d gradient: dilation rates > 1 are not supported (got ${String(dilations)})`);
      }
      const common = { strides, pad, dataFormat, dimRoundingMode };
      return {
        x: () =>
          tf.engine().runKernel(tf.Conv2DBackpropInput, { dy: dy as tf.Tensor, filter }, {
            ...common,
            inputShape: x.shape,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
        filter: () =>
          tf.engine().runKernel(tf.Conv2DBackpropFilter, { x, dy: dy as tf.Tensor }, {
            ...common,
            filterShape: filter.shape,
          } as unknown as tf.NamedAttrMap) as tf.Tensor,
      };
    },
  },
];

/** Registers every gradient above that is not registered yet. Safe to call repeatedly. */
export function registerGradients(): void {
  for (const config of GRADIENTS) {
    if (tf.getGradient(config.kernelName) == null) tf.registerGradient(config);
  }
}

/** Kernel names this module can differentiate (for diagnostics and tests). */
export const GRADIENT_KERNELS: readonly string[] = GRADIENTS.map((c) => c.kernelName);
