// One small error hierarchy with stable codes. Every code is listed in docs/errors.md.

export type ErrorCode =
  | 'SRGAN_ERR_ALREADY_RUNNING'
  | 'SRGAN_ERR_NOT_RUNNING'
  | 'SRGAN_ERR_BAD_MESSAGE'
  | 'SRGAN_ERR_UNKNOWN_TYPE'
  | 'SRGAN_ERR_UNAUTHORIZED'
  | 'SRGAN_ERR_MESSAGE_TOO_LARGE'
  | 'SRGAN_ERR_BAD_STATE'
  | 'SRGAN_ERR_RING_CLOSED'
  | 'SRGAN_ERR_RING_TIMEOUT'
  | 'SRGAN_ERR_FRAME_TOO_LARGE'
  | 'SRGAN_ERR_BAD_FRAME'
  | 'SRGAN_ERR_CONFIG'
  | 'SRGAN_ERR_BACKEND'
  | 'SRGAN_ERR_DATA'
  | 'SRGAN_ERR_TRAINER'
  | 'SRGAN_ERR_ACTOR'
  | 'SRGAN_ERR_RESTART_LIMIT'
  | 'SRGAN_ERR_DAEMON_START'
  | 'SRGAN_ERR_TIMEOUT'
  | 'SRGAN_ERR_CHECKPOINT'
  | 'SRGAN_ERR_MANIFEST'
  | 'SRGAN_ERR_NONFINITE'
  | 'SRGAN_ERR_QUEUE';

export class SrganError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'SrganError';
    this.code = code;
  }
}

/** True when `err` is an SrganError with the given code. */
export function hasCode(err: unknown, code: ErrorCode): boolean {
  return err instanceof SrganError && err.code === code;
}
