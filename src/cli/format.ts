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

/** Prints rows under a header, columns padded to their widest cell (the last column is not padded). */
export function printTable(header: string[], rows: string[][], prefix = ''): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => prefix + cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join('  ');
  console.log(line(header));
  for (const r of rows) console.log(line(r));
}

/** A metric value in 4 decimals between 0.01 and 1000, in exponent form outside; 0 as "0". */
export function formatNumber(v: number): string {
  if (v === 0) return '0';
  return Math.abs(v) >= 0.01 && Math.abs(v) < 1000 ? v.toFixed(4) : v.toExponential(3);
}

/** A PSNR in dB with 2 decimals ("inf" for identical images, "-" when unknown). */
export function formatDb(v: number): string {
  return Number.isFinite(v) ? v.toFixed(2) : v > 0 ? 'inf' : '-';
}

/** A signed difference in dB for tables: +1.55, -0.30, and +0.00 for anything that rounds to zero. */
export function formatGain(v: number): string {
  if (!Number.isFinite(v)) return formatDb(v);
  const t = Math.abs(v).toFixed(2);
  return `${v < 0 && t !== '0.00' ? '-' : '+'}${t}`;
}

/** Unix seconds as "YYYY-MM-DD HH:MM:SS" (UTC). */
export function formatTime(unixSeconds: number): string {
  return new Date(unixSeconds * 1000).toISOString().slice(0, 19).replace('T', ' ');
}

/** A progress line's elapsed or remaining time: "42s", "3m05s", "2h07m" ("?" when unknown). */
export function clock(secs: number): string {
  if (!Number.isFinite(secs)) return '?';
  const s = Math.round(secs);
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`;
  return `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m`;
}
