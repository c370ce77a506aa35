// Preview history: a run's stored previews as columns (id, step, time), light however many there are, and
// the strips' images fetched by id only when shown, kept in a small LRU cache of ImageBitmaps.

import { nearestIndex } from './series.js';

/** The previews of one run, by step: what /api/runs/ID/previews answers, extended by live pushes. */
export class PreviewList {
  constructor(runId) {
    this.runId = runId;
    this.id = [];
    this.step = [];
    this.time = [];
    this.width = 0;
    this.height = 0;
    this.panels = [];
  }

  /** From the server's answer; entries out of step order are dropped rather than trusted. */
  static from(runId, answer) {
    const list = new PreviewList(runId);
    const p = (answer && answer.previews) || {};
    const ids = Array.isArray(p.id) ? p.id : [];
    for (let i = 0; i < ids.length; i++) list.#push(ids[i], p.step && p.step[i], p.time && p.time[i]);
    list.#shape(answer);
    return list;
  }

  get length() {
    return this.id.length;
  }

  #shape(src) {
    if (!src) return;
    if (Number.isFinite(src.width) && src.width > 0) this.width = src.width;
    if (Number.isFinite(src.height) && src.height > 0) this.height = src.height;
    if (Array.isArray(src.panels)) this.panels = src.panels.map(String);
  }

  #push(id, step, time) {
    if (id == null || !Number.isFinite(step)) return false;
    const len = this.step.length;
    if (len && step < this.step[len - 1]) return false;
    this.id.push(id);
    this.step.push(step);
    this.time.push(Number.isFinite(time) ? time : NaN);
    return true;
  }

  /**
   * A pushed preview ({id, step, width, height, panels}). A step at or before the newest means the run
   * went back (a resume): the previews after it are gone from the store too, so they go here.
   */
  append(msg, time) {
    let len = this.step.length;
    while (len > 0 && this.step[len - 1] >= msg.step) len--;
    this.id.length = len;
    this.step.length = len;
    this.time.length = len;
    this.#shape(msg);
    return this.#push(msg.id, msg.step, time);
  }

  /** Index of the preview nearest to `step` (-1 when there is none). */
  nearestStep(step) {
    return nearestIndex(this.step, step);
  }
}

/**
 * ImageBitmaps of preview strips by id, at most `capacity` of them (least recently used go first).
 * Fetched with the Authorization header: an <img src> could not carry it, and a stored strip never
 * changes, so the browser's HTTP cache serves a re-fetch. Evicted bitmaps are left to the garbage
 * collector rather than closed: the compare view may still be drawing one.
 */
export class ImageCache {
  #map = new Map(); // String(id) -> Promise<ImageBitmap>, in use order (oldest first)
  #done = new Map(); // String(id) -> ImageBitmap, for synchronous peeks

  constructor(api, capacity = 48) {
    this.api = api;
    this.capacity = capacity;
    /** Strips fetched so far (a test hook: scrubbing back over cached steps fetches nothing). */
    this.fetches = 0;
  }

  get size() {
    return this.#map.size;
  }

  /** The bitmap of `id` if it is already here. */
  peek(id) {
    return this.#done.get(String(id)) ?? null;
  }

  get(id) {
    const key = String(id);
    let p = this.#map.get(key);
    if (p) {
      this.#map.delete(key);
      this.#map.set(key, p);
      return p;
    }
    this.fetches++;
    p = this.api
      .blob(`/api/previews/${encodeURIComponent(key)}.png`)
      .then((blob) => createImageBitmap(blob))
      .then((bitmap) => {
        if (this.#map.get(key) === p) this.#done.set(key, bitmap);
        return bitmap;
      });
    // A failed fetch is not cached: the next ask tries again.
    p.catch(() => {
      if (this.#map.get(key) === p) this.#map.delete(key);
    });
    this.#map.set(key, p);
    while (this.#map.size > this.capacity) {
      const [oldest] = this.#map.keys();
      this.#map.delete(oldest);
      this.#done.delete(oldest);
    }
    return p;
  }
}
