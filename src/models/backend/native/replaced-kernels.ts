// What registerNativeKernels (kernels.ts) replaced: the kernels that were registered before ours, by
// name, so that our kernels can hand over the arguments they do not support (an NCHW conv, a string
// tensor, an int Cast) and unregisterNativeKernels can put them back. Per thread, like the registry.

import * as tf from '@tensorflow/tfjs-core';

import { SrganError } from '../../../util/errors.js';

/** Kernel name → the config that was registered before ours (undefined: there was none). */
export const previousKernels = new Map<string, tf.KernelConfig | undefined>();

/** Runs the kernel that ours replaced; throws SRGAN_ERR_BACKEND when there was none. */
export function fallback(kernelName: string, args: Parameters<tf.KernelFunc>[0]): ReturnType<tf.KernelFunc> {
  const config = previousKernels.get(kernelName);
  if (config === undefined) {
    throw new SrganError('SRGAN_ERR_BACKEND', `${kernelName} (wasm, native): unsupported arguments and no kernel to fall back to`);
  }
  return config.kernelFunc(args);
}
