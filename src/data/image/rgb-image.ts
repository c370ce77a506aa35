// The image type of the data pipeline: 8-bit RGB, row-major HWC, no padding
// (data.length === width * height * 3). Every module in data/image/ takes and returns it.

/** An 8-bit RGB image, HWC, tightly packed. */
export interface RgbImage {
  width: number;
  height: number;
  data: Uint8Array;
}

/** Throws RangeError unless `img` is a well-formed RgbImage (positive integer size, matching byte count). */
export function checkImage(img: RgbImage, name = 'img'): void {
  const { width, height, data } = img;
  if (!Number.isInteger(width) || width <= 0 || !Number.isInteger(height) || height <= 0) {
    throw new RangeError(`${name}: width and height must be positive integers, got ${width}×${height}`);
  }
  if (!(data instanceof Uint8Array) || data.length !== width * height * 3) {
    throw new RangeError(
      `${name}.data: expected a Uint8Array of ${width * height * 3} bytes (${width}×${height}×3), got ${
        data instanceof Uint8Array ? data.length : typeof data
      }`,
    );
  }
}
