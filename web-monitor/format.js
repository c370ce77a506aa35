// Number, time and gain formatting shared by the monitor's modules (plain functions, no DOM).

const intFmt = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

/** 12,345 (or an em dash for anything not a finite number). */
export function fmtInt(v) {
  return Number.isFinite(v) ? intFmt.format(v) : '—';
}

export function fmtFixed(v, digits) {
  return Number.isFinite(v) ? v.toFixed(digits) : '—';
}

/** A gain in dB with its sign: "+0.42 dB", "−0.90 dB" (a true minus sign, as `srgan status` prints it). */
export function fmtGain(v) {
  if (!Number.isFinite(v)) return '—';
  return `${v < 0 ? '−' : '+'}${Math.abs(v).toFixed(2)} dB`;
}

/** Loss-style values: 4 significant digits, exponent form for very small or very large values. */
export function fmtSig(v) {
  if (v == null || !Number.isFinite(v)) return '--';
  const a = Math.abs(v);
  if (a !== 0 && (a < 1e-3 || a >= 1e5)) return v.toExponential(2);
  return Number(v.toPrecision(4)).toString();
}

/** A duration in seconds as "3 d 4 h", "2 h 05 m", "4 m 10 s" or "12 s": two units at most. */
export function fmtDuration(seconds) {
  if (!Number.isFinite(seconds) || seconds < 0) return '—';
  const s = Math.round(seconds);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  if (d > 0) return `${d} d ${h} h`;
  if (h > 0) return `${h} h ${String(m).padStart(2, '0')} m`;
  if (m > 0) return `${m} m ${String(sec).padStart(2, '0')} s`;
  return `${sec} s`;
}

/** How long ago a unix time (seconds) was: "5 m ago", "3 d ago". */
export function fmtAge(unixSeconds, nowMs = Date.now()) {
  if (!Number.isFinite(unixSeconds)) return '—';
  const s = Math.max(0, nowMs / 1000 - unixSeconds);
  if (s < 60) return 'just now';
  if (s < 3600) return `${Math.floor(s / 60)} m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

/** A unix time (seconds) as local "YYYY-MM-DD HH:MM:SS". */
export function fmtTime(unixSeconds) {
  if (!Number.isFinite(unixSeconds)) return '—';
  const d = new Date(unixSeconds * 1000);
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

export function fmtMiB(v) {
  if (!Number.isFinite(v)) return '—';
  return v >= 1024 ? `${(v / 1024).toFixed(2)} GiB` : `${v.toFixed(0)} MiB`;
}

export function fmtPercent(fraction) {
  return Number.isFinite(fraction) ? `${(fraction * 100).toFixed(1)} %` : '—';
}
