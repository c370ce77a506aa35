// The preview card: the step scrubber over a run's preview history (play, follow the newest), the choice
// of panels and of a second run for side B, and the compare view (compare.js) that draws them. It owns
// the card's controls; the page tells it which previews to show and hears when the shown step changes.

import { CompareView } from './compare.js';
import { fmtInt } from './format.js';
import { PreviewList } from './previews.js';

const PLAY_MS = 400;
const DEFAULT_PANELS = ['LR (nearest)', 'bicubic', 'model', 'original'];

function panelNames(list) {
  return list && list.panels.length ? list.panels : DEFAULT_PANELS;
}

/**
 * `el`: the card's elements (canvas, compareLabels, compareEmpty, previewStep, scrubber, scrubLabel,
 * playBtn, prevBtn, nextBtn, latestBtn, panelA, panelB, runB, dividerField, dividerInput). `deps`:
 *   previews()          the shown run's PreviewList, or null
 *   mainId()            the shown run's id
 *   cache()             the ImageCache strips come from
 *   api()               for another run's preview list
 *   runName(id)         how to call a run
 *   onStep()            the shown preview changed (the charts move their line)
 *   onError(what, err)
 */
export class PreviewPanel {
  constructor(el, deps) {
    this.el = el;
    this.deps = deps;
    /** Index into the shown run's preview list; -1 when there is none. */
    this.index = -1;
    /** Show each new preview as it arrives (the scrubber sits at the newest). */
    this.follow = true;
    this.playTimer = null;
    this.a = 1;
    this.b = 2;
    /** The run whose previews side B shows ('' = the shown run) and its list. */
    this.runB = '';
    this.listB = null;
    this.gen = 0;
    this.view = new CompareView(el.canvas, el.compareLabels, { onChange: () => this.syncControls() });
    this.#bind();
  }

  /** The shown preview's step, or null. */
  shownStep() {
    const list = this.deps.previews();
    const i = this.index;
    return list && i >= 0 && i < list.length ? list.step[i] : null;
  }

  /** Shows the preview nearest to `step` (a click on a chart). */
  pick(step) {
    const list = this.deps.previews();
    if (!list || !list.length || !Number.isFinite(step)) return;
    const i = list.nearestStep(step);
    if (i >= 0) this.show(i, true);
  }

  /** Another run is shown: start at its newest preview, following. */
  reset() {
    const list = this.deps.previews();
    this.follow = true;
    this.#fillPanelSelects();
    this.show(list && list.length ? list.length - 1 : -1, false);
  }

  /** A pushed preview of run `runId` (already appended to that run's list when it is the shown one). */
  pushed(msg, runId, time) {
    if (this.listB && this.listB.runId === runId) {
      this.listB.append(msg, time);
      if (this.runB === runId) this.draw();
    }
    if (runId !== this.deps.mainId()) return;
    const list = this.deps.previews();
    if (!list) return;
    this.#fillPanelSelects();
    const n = list.length;
    if (this.follow || this.index < 0) this.show(n - 1, false);
    else this.show(Math.min(this.index, n - 1), false);
  }

  /** The runs side B may come from: every run but the shown one. */
  setRuns(runs) {
    const el = this.el;
    const mainId = this.deps.mainId();
    const options = [Object.assign(document.createElement('option'), { value: '', textContent: 'this run' })];
    for (const run of runs) {
      if (run.id === mainId) continue;
      options.push(Object.assign(document.createElement('option'), { value: run.id, textContent: `${run.name} (${run.id.slice(0, 8)})` }));
    }
    el.runB.replaceChildren(...options);
    if (this.runB === mainId) this.runB = '';
    el.runB.value = this.runB;
    if (el.runB.value !== this.runB) this.runB = '';
  }

  #fillPanelSelects() {
    const names = panelNames(this.deps.previews());
    for (const [select, value] of [
      [this.el.panelA, this.a],
      [this.el.panelB, this.b],
    ]) {
      const current = [...select.options].map((o) => o.textContent).join('\n');
      if (current !== names.join('\n')) {
        select.replaceChildren(
          ...names.map((n, i) => Object.assign(document.createElement('option'), { value: String(i), textContent: n })),
        );
      }
      select.value = String(Math.min(value, names.length - 1));
    }
  }

  /** Shows preview `i` of the shown run; `byUser`: moved by the user, who leaves (or rejoins) the newest. */
  show(i, byUser) {
    const el = this.el;
    const list = this.deps.previews();
    const n = list ? list.length : 0;
    this.index = n === 0 ? -1 : Math.max(0, Math.min(n - 1, i));
    if (byUser) this.follow = this.index === n - 1;
    el.latestBtn.setAttribute('aria-pressed', String(this.follow));
    el.scrubber.max = String(Math.max(0, n - 1));
    el.scrubber.value = String(Math.max(0, this.index));
    el.scrubber.dataset.count = String(n);
    el.scrubber.disabled = n === 0;
    if (this.index < 0) {
      el.scrubLabel.textContent = '—';
      el.previewStep.textContent = 'no preview yet';
      el.compareEmpty.hidden = false;
      return;
    }
    const step = list.step[this.index];
    el.scrubLabel.textContent = `step ${fmtInt(step)} · ${this.index + 1} of ${fmtInt(n)}`;
    el.scrubber.setAttribute('aria-valuetext', `step ${step}`);
    el.previewStep.textContent = `step ${fmtInt(step)}`;
    this.deps.onStep();
    this.draw();
  }

  /** Fetches (or takes from the cache) the strips shown and draws them; a later call wins over an earlier. */
  draw() {
    const list = this.deps.previews();
    if (!list || this.index < 0) return;
    const { el, view } = this;
    const cache = this.deps.cache();
    const gen = ++this.gen;
    const i = this.index;
    const id = list.id[i];
    const step = list.step[i];
    const runB = this.runB;
    const listB = runB ? this.listB : list;
    const iB = runB ? (listB ? listB.nearestStep(step) : -1) : i;
    const idB = iB >= 0 ? listB.id[iB] : null;
    Promise.all([cache.get(id), idB == null ? null : cache.get(idB)])
      .then(([bmA, bmB]) => {
        if (gen !== this.gen) return;
        const names = panelNames(list);
        const count = list.panels.length || Math.max(1, Math.round(bmA.width / bmA.height));
        const a = Math.min(this.a, count - 1);
        view.sourceA = { bitmap: bmA, panels: count, panel: a, label: `${names[a]} · step ${fmtInt(step)}` };
        if (bmB) {
          const namesB = panelNames(listB);
          const countB = listB.panels.length || Math.max(1, Math.round(bmB.width / bmB.height));
          const b = Math.min(this.b, countB - 1);
          const from = runB ? `${this.deps.runName(runB)} · ` : '';
          view.sourceB = { bitmap: bmB, panels: countB, panel: b, label: `${from}${namesB[b]} · step ${fmtInt(listB.step[iB])}` };
          el.canvas.dataset.stepB = String(listB.step[iB]);
        } else {
          view.sourceB = null;
          delete el.canvas.dataset.stepB;
        }
        // The step is in the card's title: each of the four panels is named only.
        view.allSources = names.slice(0, count).map((name, k) => ({ bitmap: bmA, panels: count, panel: k, label: name }));
        el.compareEmpty.hidden = true;
        view.render();
        el.canvas.dataset.step = String(step);
        el.canvas.dataset.previewId = String(id);
        el.canvas.dataset.stripWidth = String(bmA.width);
        el.canvas.dataset.runB = runB || this.deps.mainId();
        this.syncControls();
        // Playing: the next ones are fetched while this one shows.
        if (this.playTimer != null) for (let k = 1; k <= 3 && i + k < list.length; k++) cache.get(list.id[i + k]).catch(() => {});
      })
      .catch((err) => {
        if (gen === this.gen) this.deps.onError(`preview ${id}`, err);
      });
  }

  syncControls() {
    const { el, view } = this;
    for (const b of document.querySelectorAll('.zooms button'))
      b.setAttribute('aria-pressed', String(b.dataset.zoom === String(view.zoom)));
    for (const r of document.querySelectorAll('input[name="compare-mode"]')) r.checked = r.value === view.mode;
    el.dividerField.hidden = view.mode !== 'wipe';
    el.dividerInput.value = String(Math.round(view.divider * 100));
    el.panelB.disabled = view.mode === 'all';
    el.panelA.disabled = view.mode === 'all';
  }

  togglePlay(on = this.playTimer == null) {
    clearInterval(this.playTimer);
    this.playTimer = null;
    if (on) {
      const list = this.deps.previews();
      if (!list || list.length < 2) return;
      // From the start when at the end, as a video player does.
      if (this.index >= list.length - 1) this.show(0, true);
      this.playTimer = setInterval(() => {
        const l = this.deps.previews();
        if (!l || this.index >= l.length - 1) {
          this.togglePlay(false);
          return;
        }
        this.show(this.index + 1, true);
      }, PLAY_MS);
    }
    this.el.playBtn.setAttribute('aria-pressed', String(this.playTimer != null));
    this.el.playBtn.textContent = this.playTimer != null ? 'Pause' : 'Play';
  }

  async #setRunB(id) {
    this.runB = id;
    this.listB = null;
    if (id) {
      try {
        const answer = await this.deps.api().get(`/api/runs/${encodeURIComponent(id)}/previews`);
        if (this.runB !== id) return;
        this.listB = PreviewList.from(id, answer);
      } catch (err) {
        this.deps.onError(`previews of ${id}`, err);
      }
    }
    this.draw();
  }

  #bind() {
    const { el, view } = this;
    const go = (i) => this.show(i, true);
    el.scrubber.addEventListener('input', () => go(Number(el.scrubber.value)));
    el.prevBtn.addEventListener('click', () => go(this.index - 1));
    el.nextBtn.addEventListener('click', () => go(this.index + 1));
    el.playBtn.addEventListener('click', () => this.togglePlay());
    el.latestBtn.addEventListener('click', () => go(Number.MAX_SAFE_INTEGER));
    el.panelA.addEventListener('change', () => {
      this.a = Number(el.panelA.value);
      this.draw();
    });
    el.panelB.addEventListener('change', () => {
      this.b = Number(el.panelB.value);
      this.draw();
    });
    el.runB.addEventListener('change', () => this.#setRunB(el.runB.value));
    for (const r of document.querySelectorAll('input[name="compare-mode"]')) {
      r.addEventListener('change', () => {
        if (!r.checked) return;
        view.mode = r.value;
        view.render();
        this.syncControls();
      });
    }
    for (const b of document.querySelectorAll('.zooms button')) {
      b.addEventListener('click', () => {
        view.setZoom(b.dataset.zoom === 'fit' ? 'fit' : Number(b.dataset.zoom));
        view.render();
        this.syncControls();
      });
    }
    el.dividerInput.addEventListener('input', () => {
      view.divider = Number(el.dividerInput.value) / 100;
      view.render();
    });
    el.canvas.addEventListener('keydown', (e) => {
      const keys = {
        ArrowLeft: () => go(this.index - 1),
        ArrowRight: () => go(this.index + 1),
        Home: () => go(0),
        End: () => go(Number.MAX_SAFE_INTEGER),
        ' ': () => this.togglePlay(),
        '+': () => view.stepZoom(1),
        '=': () => view.stepZoom(1),
        '-': () => view.stepZoom(-1),
        0: () => view.setZoom('fit'),
      };
      const act = keys[e.key];
      if (!act) return;
      e.preventDefault();
      act();
      view.render();
      this.syncControls();
    });
    this.syncControls();
  }
}
