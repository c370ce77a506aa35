// A small reader for the first image directory (IFD0) of an EXIF block: camera Make, Model and
// Orientation, which is all `srgan prepare` needs (the pre-downscale list matches camera models).
//
// The bytes come from users' files, so nothing here trusts them: every offset is bounds-checked, a
// malformed block gives null (or leaves a field out) and never throws. Layout (TIFF 6.0 §2, EXIF 2.32
// §4.6.2): an optional "Exif\0\0" prefix (JPEG APP1, and sharp's metadata().exif), then the TIFF header
// ("II" little-endian or "MM" big-endian, 42, offset of IFD0), then IFD0: a 16-bit entry count and
// 12-byte entries (tag, type, count, then the value itself when it fits in 4 bytes, else its offset).
// Offsets count from the start of the TIFF header.

/** What IFD0 says about the camera; a field is absent when the tag is missing or malformed. */
export interface ExifIfd0 {
  /** Tag 0x010F, e.g. "Google". */
  make?: string;
  /** Tag 0x0110, e.g. "Pixel 3". */
  model?: string;
  /** Tag 0x0112, 1..8. */
  orientation?: number;
}

const TAG_MAKE = 0x010f;
const TAG_MODEL = 0x0110;
const TAG_ORIENTATION = 0x0112;
const TYPE_ASCII = 2;
const TYPE_SHORT = 3;
const TYPE_UNDEFINED = 7;
/** EXIF 3.0 adds a UTF-8 type; some writers also put strings in UNDEFINED. */
const TYPE_UTF8 = 129;
/** Longer "camera names" are not names: refuse them rather than carry kilobytes around. */
const MAX_STRING = 256;
const EXIF_PREFIX = [0x45, 0x78, 0x69, 0x66, 0x00, 0x00]; // "Exif\0\0"

const utf8 = new TextDecoder('utf-8', { fatal: false });

/**
 * Reads Make, Model and Orientation from IFD0 of an EXIF block (with or without the "Exif\0\0" prefix).
 * Returns null when the bytes are not a TIFF structure; never throws on malformed input.
 */
export function readExifIfd0(exif: Uint8Array): ExifIfd0 | null {
  if (!(exif instanceof Uint8Array)) throw new TypeError(`exif: expected a Uint8Array, got ${typeof exif}`);
  let start = 0;
  if (exif.length >= 6 && EXIF_PREFIX.every((b, i) => exif[i] === b)) start = 6;
  const tiff = exif.subarray(start);
  if (tiff.length < 8) return null;
  const view = new DataView(tiff.buffer, tiff.byteOffset, tiff.byteLength);
  let little: boolean;
  if (tiff[0] === 0x49 && tiff[1] === 0x49) little = true;
  else if (tiff[0] === 0x4d && tiff[1] === 0x4d) little = false;
  else return null;
  if (view.getUint16(2, little) !== 42) return null;
  const ifd = view.getUint32(4, little);
  if (ifd < 8 || ifd + 2 > tiff.length) return null;
  const count = view.getUint16(ifd, little);
  const out: ExifIfd0 = {};
  for (let i = 0; i < count; i++) {
    const e = ifd + 2 + i * 12;
    if (e + 12 > tiff.length) break; // a truncated directory: keep what was read
    const tag = view.getUint16(e, little);
    const type = view.getUint16(e + 2, little);
    const n = view.getUint32(e + 4, little);
    if (tag === TAG_MAKE || tag === TAG_MODEL) {
      if (type !== TYPE_ASCII && type !== TYPE_UNDEFINED && type !== TYPE_UTF8) continue;
      if (n === 0 || n > MAX_STRING) continue;
      const at = n <= 4 ? e + 8 : view.getUint32(e + 8, little);
      if (at + n > tiff.length) continue;
      const text = cleanString(tiff.subarray(at, at + n));
      if (text === '') continue;
      if (tag === TAG_MAKE) out.make = text;
      else out.model = text;
    } else if (tag === TAG_ORIENTATION) {
      if (type !== TYPE_SHORT || n !== 1) continue;
      const v = view.getUint16(e + 8, little);
      if (v >= 1 && v <= 8) out.orientation = v;
    }
  }
  return out;
}

/** The string up to its first NUL, decoded as UTF-8 (plain ASCII is a subset), trimmed. */
function cleanString(bytes: Uint8Array): string {
  const nul = bytes.indexOf(0);
  return utf8.decode(nul >= 0 ? bytes.subarray(0, nul) : bytes).trim();
}

/**
 * The camera as people name it: "Make Model", or just the model when it already starts with the make
 * (Canon writes Make "Canon", Model "Canon EOS 5D"). Null when IFD0 names neither.
 */
export function cameraName(ifd: ExifIfd0 | null): string | null {
  const make = ifd?.make;
  const model = ifd?.model;
  if (!model) return make ?? null;
  if (!make || model.toLowerCase().startsWith(make.toLowerCase())) return model;
  return `${make} ${model}`;
}

/**
 * True when the camera's model, or "make model", equals one of `models` (case-insensitive, surrounding
 * spaces ignored). "Pixel 3" matches Model "Pixel 3" but not "Pixel 3a".
 */
export function cameraMatches(ifd: ExifIfd0 | null, models: readonly string[]): boolean {
  if (!ifd?.model || models.length === 0) return false;
  const names = new Set([ifd.model.toLowerCase(), (cameraName(ifd) ?? '').toLowerCase()]);
  if (ifd.make) names.add(`${ifd.make} ${ifd.model}`.toLowerCase());
  return models.some((m) => names.has(m.trim().toLowerCase()));
}
