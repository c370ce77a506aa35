// The status header: what the daemon is doing (from its status pushes), or, with no daemon (`srgan
// monitor`), what the run's row says. ETA to config.maxSteps and to the end of the current phase.

import { fmtDuration, fmtFixed, fmtGain, fmtInt, fmtMiB, fmtPercent, fmtSig, fmtTime } from './format.js';

const $ = (id) => document.getElementById(id);

/**
 * Where `step` is in the run's schedule at `stepsPerSec`: { total: {end, seconds} | null, phase: {index,
 * count, end, seconds} | null }. A phase with `steps: null` runs until maxSteps (no end of its own).
 */
export function schedule(config, step, stepsPerSec) {
  const cfg = config && typeof config === 'object' ? config : {};
  const rate = Number.isFinite(stepsPerSec) && stepsPerSec > 0 ? stepsPerSec : null;
  const secs = (end) => (rate != null && end > step ? (end - step) / rate : null);
  const out = { total: null, phase: null };
  if (Number.isFinite(cfg.maxSteps) && cfg.maxSteps > 0) out.total = { end: cfg.maxSteps, seconds: secs(cfg.maxSteps) };
  const phases = Array.isArray(cfg.phases) ? cfg.phases : [];
  let end = 0;
  for (let i = 0; i < phases.length; i++) {
    const n = phases[i] && phases[i].steps;
    if (!Number.isFinite(n)) {
      out.phase = { index: i, count: phases.length, end: null, seconds: null };
      break;
    }
    end += n;
    if (step < end) {
      out.phase = { index: i, count: phases.length, end, seconds: secs(end) };
      break;
    }
  }
  return out;
}

function set(id, text, title) {
  const e = $(id);
  if (!e) return;
  e.textContent = text;
  if (title !== undefined) e.title = title;
}

/** ETA and phase fields from a schedule (both say which end they count to). */
export function showSchedule(config, step, stepsPerSec) {
  const s = schedule(config, step, stepsPerSec);
  const eta = $('eta');
  if (s.total) {
    const left = s.total.seconds;
    set(
      'eta',
      left == null ? (step >= s.total.end ? 'done' : '—') : `${fmtDuration(left)} to maxSteps`,
      `to step ${fmtInt(s.total.end)} (config.maxSteps)`,
    );
    eta.dataset.to = 'maxSteps';
  } else if (s.phase && s.phase.end != null) {
    set(
      'eta',
      s.phase.seconds == null ? '—' : `${fmtDuration(s.phase.seconds)} to end of phase ${s.phase.index + 1}`,
      `to step ${fmtInt(s.phase.end)}`,
    );
    eta.dataset.to = 'phase';
  } else {
    set('eta', 'open-ended', 'no maxSteps and no bounded phase: training runs until stopped');
    eta.dataset.to = 'none';
  }
  if (s.phase && s.phase.count > 1) {
    const ends =
      s.phase.end == null
        ? 'open-ended'
        : `ends at ${fmtInt(s.phase.end)}${s.phase.seconds == null ? '' : `, in ${fmtDuration(s.phase.seconds)}`}`;
    set('phase', `${s.phase.index + 1} of ${s.phase.count}`, `phase ${s.phase.index + 1} of ${s.phase.count}: ${ends}`);
  } else {
    set('phase', '—', '');
  }
}

/** The daemon's status (a `status` push or reply). `latest`: the newest metric values pushed. */
export function showStatus(s, latest) {
  set('run-id', s.runId || '—', s.runId || '');
  const bf16 = s.config && s.config.precision === 'bf16';
  set('backend', s.backend ? `${s.backend}${bf16 ? ' · bf16' : ''}` : '—', s.backendReason || '');
  set('preset', s.preset || '—');
  set('step', fmtInt(s.step));
  set('epoch', fmtInt(s.epoch));
  set('steps-per-sec', fmtFixed(s.stepsPerSec, 2));
  set('patches-per-sec', fmtFixed(s.patchesPerSec, 1));
  set('data-wait', fmtPercent(s.dataWaitFraction));
  set('d-steps', fmtInt(s.dSteps));
  set('ring-frames', fmtInt(s.ringFrames));
  const rss = latest.rss_mib;
  set('memory', `${fmtMiB(rss)} · ${fmtInt(s.tensors)} tensors`, 'daemon resident memory · live tfjs tensors in the trainer');
  if (Number.isFinite(s.startedAt))
    set('elapsed', fmtDuration((Date.now() - s.startedAt) / 1000), `daemon started ${fmtTime(s.startedAt / 1000)}`);
  set('checkpoint', s.lastCheckpoint ? `step ${s.lastCheckpoint.step}` : '—', s.lastCheckpoint ? s.lastCheckpoint.dir : '');
  if (s.losses) showLr(s.losses);
  if ('validation' in s) showValidation(s.validation);
  showSchedule(s.config, s.step, s.stepsPerSec);
}

/** With no daemon: the run's row from /api/runs (status, preset, backend, steps, best gain). */
export function showRunRow(run) {
  set('run-id', run.name && run.name !== run.id ? `${run.name}` : run.id, run.id);
  set('backend', run.backend || '—');
  set('preset', run.preset || '—');
  set('step', fmtInt(run.lastStep));
  for (const id of ['epoch', 'steps-per-sec', 'patches-per-sec', 'data-wait', 'd-steps', 'ring-frames', 'memory', 'eta', 'phase'])
    set(id, '—');
  const ended = Number.isFinite(run.endedAt) ? run.endedAt : null;
  set(
    'elapsed',
    Number.isFinite(run.createdAt) ? fmtDuration((ended ?? Date.now() / 1000) - run.createdAt) : '—',
    `created ${fmtTime(run.createdAt)}${ended ? `, ended ${fmtTime(ended)}` : ''}`,
  );
  if (run.best && Number.isFinite(run.best.value)) {
    showValidation({
      step: run.best.step,
      gain: run.best.value,
      psnr: null,
      bicubic: null,
      best: { step: run.best.step, gain: run.best.value },
    });
  } else showValidation(null);
}

export function showLr(values) {
  const g = values.lr_g;
  const d = values.lr_d;
  if (g == null && d == null) return;
  set('lr', `${fmtSig(g)} / ${fmtSig(d)}`);
}

/**
 * The latest validation against bicubic, in the header and above the gain chart. A gain below 0 means the
 * model is worse than plain bicubic enlargement: that is said in words and shown in red.
 */
export function showValidation(v) {
  const valGain = $('val-gain');
  const valLatest = $('val-latest');
  if (!v || !Number.isFinite(v.gain)) {
    valGain.textContent = '—';
    valGain.dataset.val = 'none';
    valLatest.textContent = 'no validation yet';
    valLatest.dataset.val = 'none';
    return;
  }
  const below = v.gain < 0;
  const words = below ? 'below bicubic' : v.gain > 0 ? 'above bicubic' : 'same as bicubic';
  const kind = below ? 'below' : 'above';
  const psnrs =
    Number.isFinite(v.psnr) && Number.isFinite(v.bicubic) ? ` (${v.psnr.toFixed(2)} dB vs bicubic ${v.bicubic.toFixed(2)} dB)` : '';
  const best = v.best && Number.isFinite(v.best.gain) ? ` · best ${fmtGain(v.best.gain)} at step ${fmtInt(v.best.step)}` : '';
  valGain.textContent = `${fmtGain(v.gain)}${below ? ' · below bicubic' : ''}`;
  valGain.dataset.val = kind;
  valGain.title = `validation at step ${fmtInt(v.step)}${psnrs}: ${words}${best}`;
  valLatest.textContent = `latest ${fmtGain(v.gain)} at step ${fmtInt(v.step)}${psnrs}: ${below ? 'worse than bicubic' : words}${best}`;
  valLatest.dataset.val = kind;
}
