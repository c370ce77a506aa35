// The runs and checkpoints panels: tables drawn from /api/runs and /api/runs/ID/checkpoints. They only
// draw and report clicks; what a click does is the caller's.

import { fmtAge, fmtGain, fmtInt, fmtTime } from './format.js';

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

/**
 * Rows of the runs table. `view`: { mainId, overlays: Map(id -> colour), onOpen(id), onOverlay(id, on) }.
 * The main run's name is plain text; any other's is a button that opens it.
 */
export function renderRuns(tbody, runs, view) {
  const rows = runs.map((run) => {
    const tr = document.createElement('tr');
    tr.dataset.runId = run.id;
    tr.dataset.status = run.status;
    const isMain = run.id === view.mainId;
    if (isMain) tr.setAttribute('aria-current', 'true');

    const pick = document.createElement('td');
    const box = document.createElement('input');
    box.type = 'checkbox';
    box.className = 'overlay-toggle';
    box.checked = isMain || view.overlays.has(run.id);
    box.disabled = isMain;
    box.setAttribute('aria-label', isMain ? `${run.name}: the run shown` : `overlay ${run.name} on the charts`);
    box.addEventListener('change', () => view.onOverlay(run.id, box.checked));
    pick.append(box);
    const swatch = document.createElement('span');
    swatch.className = 'swatch';
    const colour = isMain ? null : view.overlays.get(run.id);
    if (colour) swatch.style.background = colour;
    else swatch.hidden = !isMain;
    if (isMain) swatch.classList.add('main');
    pick.append(swatch);

    const name = document.createElement('td');
    name.className = 'run-name';
    if (isMain) {
      name.textContent = run.name;
    } else {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'link';
      b.textContent = run.name;
      b.title = `show run ${run.id}`;
      b.addEventListener('click', () => view.onOpen(run.id));
      name.append(b);
    }
    const id = document.createElement('small');
    id.textContent = run.id.slice(0, 8);
    id.title = run.id;
    name.append(' ', id);

    const status = cell(run.live ? `${run.status} · live` : run.status, 'run-status');
    status.dataset.status = run.status;
    const steps = cell(Number.isFinite(run.maxSteps) ? `${fmtInt(run.lastStep)} / ${fmtInt(run.maxSteps)}` : fmtInt(run.lastStep), 'num');
    const best = run.best && Number.isFinite(run.best.value) ? run.best.value : null;
    const bestCell = cell(best == null ? '—' : fmtGain(best), 'num');
    if (best != null) {
      bestCell.dataset.val = best < 0 ? 'below' : 'above';
      bestCell.title = `best validation gain over bicubic, at step ${fmtInt(run.best.step)}`;
    }
    const age = cell(fmtAge(run.createdAt), 'age');
    age.title = `created ${fmtTime(run.createdAt)}`;
    tr.append(pick, name, status, cell(run.preset || '—'), steps, bestCell, age);
    return tr;
  });
  tbody.replaceChildren(...rows);
}

/**
 * Rows of the checkpoints table. `view`: { readOnly, onPin(step, pinned) }. On a read-only server the
 * pin column says whether a checkpoint is pinned but offers no button.
 */
export function renderCheckpoints(tbody, checkpoints, view) {
  const rows = checkpoints.map((c) => {
    const tr = document.createElement('tr');
    tr.dataset.step = String(c.step);
    tr.dataset.pinned = String(!!c.pinned);
    tr.dataset.deleted = String(!!c.deleted);
    const gain = cell(Number.isFinite(c.gain) ? fmtGain(c.gain) : '—', 'num');
    if (Number.isFinite(c.gain)) gain.dataset.val = c.gain < 0 ? 'below' : 'above';
    const when = cell(fmtTime(c.time), 'age');
    const state = cell(c.deleted ? 'deleted' : 'on disk', 'ckpt-state');
    if (c.path) state.title = c.path;
    const pin = document.createElement('td');
    if (view.readOnly) {
      pin.textContent = c.pinned ? 'pinned' : '';
    } else {
      const b = document.createElement('button');
      b.type = 'button';
      b.className = 'pin-btn';
      b.setAttribute('aria-pressed', String(!!c.pinned));
      b.textContent = c.pinned ? 'Pinned' : 'Pin';
      b.title = c.pinned ? 'pinned: retention never removes it; click to unpin' : 'keep this checkpoint: retention will never remove it';
      // A deleted checkpoint has no file left to keep.
      b.disabled = !!c.deleted && !c.pinned;
      b.addEventListener('click', () => view.onPin(c.step, !c.pinned, b));
      pin.append(b);
    }
    tr.append(
      cell(fmtInt(c.step), 'num'),
      cell(c.kind),
      gain,
      cell(Number.isFinite(c.psnr) ? `${c.psnr.toFixed(2)} dB` : '—', 'num'),
      when,
      state,
      pin,
    );
    return tr;
  });
  tbody.replaceChildren(...rows);
}
