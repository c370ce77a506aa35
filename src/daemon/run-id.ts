// Run ids: the time a run was made (UTC) and 4 random hex digits, e.g. 20261206-101500-3fa2. Sorted
// by time as text; made by the daemon for \`srgan start\`, and by \`srgan queue add\` for a queued run.

import crypto from 'node:crypto';

export function newRunId(at = new Date()): string {
  return `${at.toISOString().slice(0, 19).replace(/[-:]/g, '').replace('T', '-')}-${crypto.randomBytes(2).toString('hex')}`;
}
