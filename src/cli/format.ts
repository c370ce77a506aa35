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

/** A training rate people can read at any speed: "12.3 G steps/s", "0.25 G steps/s", "4.8 min per G step". */
export function stepRate(stepsPerSec: number): string {
  if (!(stepsPerSec > 0) || !Number.isFinite(stepsPerSec)) return 'no G step finished yet';
  if (stepsPerSec >= 10) return `${stepsPerSec.toFixed(1)} G steps/s`;
  if (stepsPerSec >= 0.05) return `${stepsPerSec.toFixed(2)} G steps/s`;
  const secs = 1 / stepsPerSec;
  return secs < 120 ? `${secs.toFixed(0)} s per G step` : `${(secs / 60).toFixed(1)} min per G step`;
}

/** Seconds as the largest sensible unit: "45 s", "12 min", "3.5 h", "2.1 days", "4.8 years". */
export function duration(seconds: number): string {
  if (seconds < 90) return `${Math.round(seconds)} s`;
  if (seconds < 90 * 60) return `${Math.round(seconds / 60)} min`;
  if (seconds < 48 * 3600) return `${(seconds / 3600).toFixed(1)} h`;
  if (seconds < 730 * 86400) return `${(seconds / 86400).toFixed(1)} days`;
  return `${(seconds / (365 * 86400)).toFixed(1)} years`;
}
