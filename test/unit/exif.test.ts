import sharp from 'sharp';
import { describe, expect, it } from 'vitest';

import { cameraMatches, cameraName, readExifIfd0 } from '../../src/data/image/exif.js';

interface Entry {
  tag: number;
  type: number;
  /** ASCII text (NUL added), or a SHORT value. */
  value: string | number;
  /** Override the count field (to test lies). */
  count?: number;
  /** Override the value/offset field (to test bad offsets). */
  offset?: number;
}

/** A TIFF block with one IFD0 in the given byte order; long strings go after the directory. */
function tiff(entries: Entry[], little: boolean, prefix = false): Uint8Array {
  const dirSize = 2 + entries.length * 12 + 4;
  const extra: number[] = [];
  const head = 8;
  const bytes: number[] = [];
  const u16 = (v: number) => (little ? [v & 255, v >>> 8] : [v >>> 8, v & 255]);
  const u32 = (v: number) =>
    little ? [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, v >>> 24] : [v >>> 24, (v >>> 16) & 255, (v >>> 8) & 255, v & 255];
  bytes.push(...(little ? [0x49, 0x49] : [0x4d, 0x4d]), ...u16(42), ...u32(head));
  bytes.push(...u16(entries.length));
  for (const e of entries) {
    bytes.push(...u16(e.tag), ...u16(e.type));
    if (typeof e.value === 'string') {
      const s = [...Buffer.from(e.value + '\0', 'utf8')];
      bytes.push(...u32(e.count ?? s.length));
      if (e.offset !== undefined) bytes.push(...u32(e.offset));
      else if (s.length <= 4) bytes.push(...s, ...new Array<number>(4 - s.length).fill(0));
      else {
        bytes.push(...u32(head + dirSize + extra.length));
        extra.push(...s);
      }
    } else {
      bytes.push(...u32(e.count ?? 1), ...u16(e.value), 0, 0);
    }
  }
  bytes.push(...u32(0), ...extra);
  const body = Uint8Array.from(bytes);
  return prefix ? Uint8Array.from([...Buffer.from('Exif\0\0', 'latin1'), ...body]) : body;
}

const MAKE = 0x010f;
const MODEL = 0x0110;
const ORIENT = 0x0112;

describe('readExifIfd0', () => {
  for (const little of [true, false]) {
    for (const prefix of [false, true]) {
      it(`reads Make, Model and Orientation (${little ? 'II' : 'MM'}${prefix ? ', Exif prefix' : ''})`, () => {
        const bytes = tiff(
          [
            { tag: MAKE, type: 2, value: 'Google' },
            { tag: MODEL, type: 2, value: 'Pixel 3' },
            { tag: ORIENT, type: 3, value: 6 },
          ],
          little,
          prefix,
        );
        expect(readExifIfd0(bytes)).toEqual({ make: 'Google', model: 'Pixel 3', orientation: 6 });
      });
    }
  }

  it('reads strings that fit in the value field itself (count <= 4)', () => {
    expect(readExifIfd0(tiff([{ tag: MODEL, type: 2, value: 'X1' }], true))).toEqual({ model: 'X1' });
  });

  it('trims trailing spaces and padding NULs, and reads UTF-8', () => {
    const bytes = tiff(
      [
        { tag: MAKE, type: 2, value: 'NIKON CORPORATION   ' },
        { tag: MODEL, type: 129, value: 'Caméra Ü' },
      ],
      true,
    );
    expect(readExifIfd0(bytes)).toEqual({ make: 'NIKON CORPORATION', model: 'Caméra Ü' });
  });

  it('returns null for bytes that are not TIFF', () => {
    expect(readExifIfd0(new Uint8Array(0))).toBeNull();
    expect(readExifIfd0(Buffer.from('hello, this is not exif at all'))).toBeNull();
    expect(readExifIfd0(Uint8Array.from([0x49, 0x49, 43, 0, 8, 0, 0, 0]))).toBeNull(); // magic 43
    expect(readExifIfd0(Uint8Array.from([0x49, 0x49, 42, 0, 0xff, 0xff, 0, 0]))).toBeNull(); // IFD0 past the end
  });

  it('skips entries that point outside the block, lie about their length, or have the wrong type', () => {
    const bytes = tiff(
      [
        { tag: MAKE, type: 2, value: 'Google', offset: 10_000 },
        { tag: MODEL, type: 2, value: 'Pixel 3', count: 100_000 },
        { tag: ORIENT, type: 4, value: 6 },
      ],
      true,
    );
    expect(readExifIfd0(bytes)).toEqual({});
    expect(readExifIfd0(tiff([{ tag: ORIENT, type: 3, value: 9 }], false))).toEqual({});
  });

  it('keeps what it read from a truncated directory', () => {
    const full = tiff(
      [
        { tag: ORIENT, type: 3, value: 3 },
        { tag: MODEL, type: 2, value: 'Pixel 3' },
      ],
      true,
    );
    expect(readExifIfd0(full.subarray(0, 8 + 2 + 12 + 5))).toEqual({ orientation: 3 });
  });

  it('never throws on random bytes', () => {
    let s = 12345;
    for (let k = 0; k < 2000; k++) {
      const n = 8 + (k % 120);
      const b = new Uint8Array(n);
      for (let i = 0; i < n; i++) {
        s = (Math.imul(s, 1103515245) + 12345) >>> 0;
        b[i] = s >>> 24;
      }
      b[0] = b[1] = k % 2 ? 0x49 : 0x4d;
      b[k % 2 ? 2 : 3] = 42;
      b[k % 2 ? 3 : 2] = 0;
      expect(() => readExifIfd0(b)).not.toThrow();
    }
  });

  it('reads the EXIF block sharp gives for a JPEG written with Make and Model', async () => {
    const jpeg = await sharp({ create: { width: 8, height: 8, channels: 3, background: '#808080' } })
      .withExif({ IFD0: { Make: 'Apple', Model: 'iPhone X' } })
      .jpeg()
      .toBuffer();
    const { exif } = await sharp(jpeg).metadata();
    expect(exif).toBeInstanceOf(Buffer);
    expect(readExifIfd0(exif as Buffer)).toMatchObject({ make: 'Apple', model: 'iPhone X' });
  });
});

describe('cameraName and cameraMatches', () => {
  it('names the camera without repeating the make', () => {
    expect(cameraName({ make: 'Google', model: 'Pixel 3' })).toBe('Google Pixel 3');
    expect(cameraName({ make: 'Canon', model: 'Canon EOS 5D' })).toBe('Canon EOS 5D');
    expect(cameraName({ make: 'Sony' })).toBe('Sony');
    expect(cameraName({})).toBeNull();
    expect(cameraName(null)).toBeNull();
  });

  it('matches the model or "make model", case-insensitively, and nothing partial', () => {
    const pixel = { make: 'Google', model: 'Pixel 3' };
    expect(cameraMatches(pixel, ['Pixel 3'])).toBe(true);
    expect(cameraMatches(pixel, [' pixel 3 '])).toBe(true);
    expect(cameraMatches(pixel, ['Google Pixel 3'])).toBe(true);
    expect(cameraMatches(pixel, ['iPhone X', 'Pixel 3'])).toBe(true);
    expect(cameraMatches({ make: 'Google', model: 'Pixel 3a' }, ['Pixel 3'])).toBe(false);
    expect(cameraMatches(pixel, [])).toBe(false);
    expect(cameraMatches({ make: 'Google' }, ['Google'])).toBe(false);
    expect(cameraMatches(null, ['Pixel 3'])).toBe(false);
  });
});
