// What tfjs-backend-webgpu 4.22 gets wrong for us, fixed where it is registered (docs/backends.md,
// "webgpu"). Installed by the ladder once the webgpu backend is set.
//
// AddN: upstream binds every input as its own storage buffer in one shader; WebGPU allows 8 per stage
// on many adapters (SwiftShader's limit), so an addN of more than 7 tensors is rejected as an
// uncaptured error and skipped (found by the non-finite check's sum over a network's gradients). We add
// in chunks of what the adapter allows, then add the partial sums, as upstream's concat does.

import * as tf from '@tensorflow/tfjs-core';

interface WebgpuBackendLike {
  device: { limits: { maxStorageBuffersPerShaderStage: number } };
  disposeData(dataId: object): void;
}

const CHUNKED = Symbol.for('srgan.webgpuAddNChunked');

export function registerWebgpuKernels(): void {
  const upstream = tf.getKernel(tf.AddN, 'webgpu');
  if (!upstream || (upstream as unknown as Record<symbol, boolean>)[CHUNKED]) return;
  const original = upstream.kernelFunc;
  const addN: tf.KernelFunc = (args) => {
    const inputs = args.inputs as unknown as tf.TensorInfo[];
    const backend = args.backend as unknown as WebgpuBackendLike;
    const max = Math.max(2, backend.device.limits.maxStorageBuffersPerShaderStage - 1); // one is the output
    if (inputs.length <= max) return original(args);
    const partial: tf.TensorInfo[] = [];
    for (let i = 0; i < inputs.length; i += max) {
      partial.push(addN({ ...args, inputs: inputs.slice(i, i + max) as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo);
    }
    const out = addN({ ...args, inputs: partial as unknown as tf.NamedTensorInfoMap }) as tf.TensorInfo;
    for (const p of partial) backend.disposeData(p.dataId);
    return out;
  };
  tf.unregisterKernel(tf.AddN, 'webgpu');
  tf.registerKernel({ kernelName: tf.AddN, backendName: 'webgpu', kernelFunc: addN, [CHUNKED]: true } as tf.KernelConfig);
}
