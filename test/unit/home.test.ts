// The access token file ($SRGAN_HOME/token): created private, and made private again by the daemon
// (which calls ensureToken on every start) when someone has opened it up.

import fs from 'node:fs';
import path from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ensureToken, homePaths, readToken } from '../../src/store/home.js';
import { tempDir } from '../support/tmp.js';

describe('the access token', () => {
  let tmp: ReturnType<typeof tempDir>;
  beforeEach(() => {
    tmp = tempDir('srgan-home-');
  });
  afterEach(() => tmp.cleanup());
  const mode = (f: string) => fs.statSync(f).mode & 0o777;

  it('is created with mode 0600, and kept (mode reset to 0600) when it was opened up', () => {
    const p = homePaths(path.join(tmp.dir, 'home'));
    const token = ensureToken(p);
    expect(token).toMatch(/^[0-9a-f]{48}$/);
    expect(mode(p.token)).toBe(0o600);
    expect(mode(p.root)).toBe(0o700);
    for (const open of [0o644, 0o666, 0o640]) {
      fs.chmodSync(p.token, open);
      expect(ensureToken(p)).toBe(token);
      expect(mode(p.token)).toBe(0o600);
    }
    expect(readToken(p)).toBe(token);
  });

  it('replaces a token file that does not hold a token with a new private one', () => {
    const p = homePaths(path.join(tmp.dir, 'home'));
    fs.writeFileSync(p.token, 'guessable\n', { mode: 0o644 });
    const token = ensureToken(p);
    expect(token).toMatch(/^[0-9a-f]{48}$/);
    expect(fs.readFileSync(p.token, 'utf8')).toBe(token + '\n');
    expect(mode(p.token)).toBe(0o600);
    expect(fs.readdirSync(p.root).filter((n) => n.includes('.tmp'))).toEqual([]);
  });
});
