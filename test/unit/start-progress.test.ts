// `srgan start` echoes the daemon's own log lines as progress, never what a native library wrote to
// the daemon's stderr (Dawn's Vulkan warnings when no GPU driver loads): those stay in the log file.
import { describe, expect, it } from 'vitest';
import { lastOwnLine } from '../../src/cli/start.js';

describe('start progress', () => {
  it("shows the daemon's last timestamped line and skips native libraries' output after it", () => {
    const log = [
      '2026-12-06T20:40:42.123Z loading data from /photos',
      "Warning: Couldn't load Vulkan: libvulkan.so.1: cannot open shared object file: No such file or directory",
      '    at operator() (/home/runner/work/node-webgpu/node-webgpu/third_party/dawn/src/dawn/native/vulkan/BackendVk.cpp:368)',
      '',
    ].join('\n');
    expect(lastOwnLine(log)).toBe('loading data from /photos');
    expect(lastOwnLine(`${log}2026-12-06T20:40:43.5Z trainer ready on wasm-native`)).toBe('trainer ready on wasm-native');
    expect(lastOwnLine('Warning: only native output\n')).toBe('');
    expect(lastOwnLine('')).toBe('');
  });
});
