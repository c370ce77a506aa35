// Every message that crosses a thread or a socket, declared once, as discriminated unions on `type`.
// Untrusted input (WebSocket frames, files) is checked by `parseClientMessage` in validate.ts; inside
// the process these types are trusted.

import type { CheckpointKind } from '../store/db.js';

/** Lifecycle of the training daemon as the user sees it. */
export type DaemonState = 'starting' | 'training' | 'paused' | 'stopping' | 'stopped';

/** Topics a WebSocket client may subscribe to. */
export type Topic = 'metrics' | 'previews' | 'status' | 'events';
export const TOPICS: readonly Topic[] = Object.freeze(['metrics', 'previews', 'status', 'events']);

/** What `srgan status` and the monitor show. */
export interface DaemonStatus {
  state: DaemonState;
  runId: string;
  pid: number;
  url: string;
  /** The compute backend rung in use (models/backend/ladder.ts). */
  backend: string;
  /** What runs on it, and why better rungs were skipped. */
  backendReason: string;
  /** Generator steps completed. */
  step: number;
  /** Discriminator steps completed. */
  dSteps: number;
  startedAt: number;
  /** Generator steps per second, smoothed. */
  stepsPerSec: number;
  /** Patches per second consumed by the trainer, smoothed. */
  patchesPerSec: number;
  /** Fraction of the trainer's wall time spent waiting for data (0..1). */
  dataWaitFraction: number;
  /** Frames waiting in the ring. */
  ringFrames: number;
  /** Epoch of the data the trainer is on (0-based: every image or patch once per epoch). */
  epoch: number;
  /** Live tfjs tensors in the trainer: flat over a healthy run, growing if something leaks. */
  tensors: number;
  /** Latest value of each metric key. */
  losses: Record<string, number>;
  /** The newest checkpoint written by this daemon (or the one it resumed from). */
  lastCheckpoint: { step: number; dir: string } | null;
  /**
   * Why the daemon paused training by itself (the disk nearly full, runs.db not writable); it resumes by
   * itself once that has passed. Null otherwise (docs/reliability.md).
   */
  pauseReason: string | null;
  /**
   * The latest validation against bicubic (every `valEvery` steps), and the best gain of the run so far
   * with its step; null until the run has validated once (or when validation is off).
   */
  validation: ValidationStatus | null;
  preset: string;
  config: Record<string, unknown>;
}

/** Validation on the held-out images, standard protocol (MATLAB-style bicubic LR), PSNR-Y in dB. */
export interface ValidationStatus {
  /** The step of the latest validation. */
  step: number;
  /** val_psnr: the model's PSNR; null if not logged with the gain. */
  psnr: number | null;
  /** val_bicubic: bicubic enlargement's PSNR on the same images; null if not logged with the gain. */
  bicubic: number | null;
  /** val_gain = psnr − bicubic: below 0 the model is worse than plain bicubic. */
  gain: number;
  /** The highest val_gain so far and its (first) step. */
  best: { step: number; gain: number };
}

// ---- WebSocket: client -> daemon ---------------------------------------------------------------

interface Authed {
  /** Access token from $SRGAN_HOME/token; required on every command. */
  token: string;
  /** Optional correlation id, echoed in the reply. */
  id?: string | number;
}

export type ClientMessage =
  | ({ type: 'status' } & Authed)
  | ({ type: 'pause' } & Authed)
  | ({ type: 'resume' } & Authed)
  | ({ type: 'stop' } & Authed)
  /** Write a checkpoint now; answered with a 'checkpoint' message once it is on disk. */
  | ({ type: 'checkpoint' } & Authed)
  | ({ type: 'subscribe'; topics: Topic[] } & Authed)
  | ({ type: 'unsubscribe'; topics: Topic[] } & Authed)
  | ({ type: 'history'; limit?: number } & Authed);

export type ClientMessageType = ClientMessage['type'];

// ---- WebSocket: daemon -> client ---------------------------------------------------------------

/** One metrics row: all keys logged at one generator step. */
export interface MetricsPoint {
  step: number;
  wallTime: number;
  values: Record<string, number>;
}

export type ServerMessage =
  | { type: 'status'; id?: string | number; status: DaemonStatus }
  | { type: 'ok'; id?: string | number; command: ClientMessageType; state: DaemonState }
  | { type: 'error'; id?: string | number; code: string; message: string }
  /** A metrics point of run `runId` (the daemon's live run). */
  | ({ type: 'metrics'; runId?: string } & MetricsPoint)
  /** Recent metrics for a client that just subscribed (oldest first). */
  | { type: 'history'; id?: string | number; points: MetricsPoint[] }
  /**
   * A preview strip was stored: low-res input (nearest-enlarged) | bicubic | model output | original,
   * side by side. Its PNG is GET /api/previews/ID.png (docs/protocol.md); no image bytes on the socket.
   */
  | { type: 'preview'; id: number; runId: string; step: number; width: number; height: number; panels: string[] }
  /** An event of the run, as stored in the events table (`step` where known). */
  | { type: 'event'; runId: string; time: number; step: number | null; kind: string; message: string }
  | { type: 'state'; state: DaemonState; step: number }
  | { type: 'checkpoint'; id?: string | number; checkpoint: CheckpointWritten };

// ---- Trainer worker <-> main thread (postMessage; control path only) -----------------------------

export type ToTrainer =
  | { type: 'pause' }
  | { type: 'resume' }
  | { type: 'stop' }
  /** Write a checkpoint at the next step boundary (or now, when paused). */
  | { type: 'checkpoint'; kind: 'manual' | 'error' };

/** A checkpoint the trainer has written (models/train/checkpoint.ts). */
export interface CheckpointWritten {
  step: number;
  dir: string;
  /** sha256 of its checksums.json. */
  checksum: string;
  bytes: number;
  /** 'best': written because validation found a new best gain over bicubic. */
  kind: CheckpointKind;
  valPsnr: number | null;
  /** Validation gain over bicubic (dB, standard protocol) at this step, when measured. */
  valGain: number | null;
  ms: number;
}

export type FromTrainer =
  | { type: 'ready'; backend: string; backendReason: string; params: { generator: number; discriminator: number } }
  | { type: 'metrics'; points: MetricsPoint[] }
  | { type: 'preview'; step: number; width: number; height: number; rgb: Uint8Array }
  | { type: 'state'; state: DaemonState; step: number }
  /** `dataSeq`: the seq of the next patch the trainer will take (its place in the data sequence). */
  | {
      type: 'stats';
      step: number;
      dSteps: number;
      stepsPerSec: number;
      patchesPerSec: number;
      dataWaitFraction: number;
      ringFrames: number;
      tensors: number;
      dataSeq: number;
    }
  /** The trainer failed and its thread ends. */
  | { type: 'error'; code: string; message: string; stack?: string }
  /** Something went wrong but training goes on (a bad frame, a checkpoint that could not be written). */
  | { type: 'warning'; code: string; message: string }
  /** A step whose losses or gradients were not finite, so it was not applied; `inARow` counts it. */
  | { type: 'nonfinite'; step: number; inARow: number; values: Record<string, number> }
  | ({ type: 'checkpoint' } & CheckpointWritten)
  | { type: 'stopped'; step: number };
