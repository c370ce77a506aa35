// Wording shared by the commands that report validation against bicubic (status, show, upscale/eval
// --best), so a gain reads the same everywhere.

/** A gain in dB with its sign and two decimals: "+0.42 dB", "−0.90 dB" (a true minus sign). */
export function signedDb(v: number): string {
  if (!Number.isFinite(v)) return '-';
  return `${v < 0 ? '−' : '+'}${Math.abs(v).toFixed(2)} dB`;
}

/**
 * How a validation gain compares with plain bicubic enlargement, in words. Below 0 the model is worse
 * than bicubic, however small the difference: the point of training is to beat it.
 */
export function versusBicubic(gain: number): string {
  return gain < 0 ? 'worse than bicubic' : gain > 0 ? 'better than bicubic' : 'same as bicubic';
}

/** "31.20 dB vs bicubic 32.10 dB: −0.90 dB (worse than bicubic)"; the PSNRs are left out when unknown. */
export function describeGain(gain: number, psnr: number | null, bicubic: number | null): string {
  const both = psnr !== null && bicubic !== null ? `${psnr.toFixed(2)} dB vs bicubic ${bicubic.toFixed(2)} dB: ` : '';
  return `${both}${signedDb(gain)} (${versusBicubic(gain)})`;
}
