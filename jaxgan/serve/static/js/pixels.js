// Pixel maps of the editor, all at the generator's resolution (one entry per image pixel, row-major): the drag
// mask, the EditGAN target labels and painted region; the brush that paints them; the region's dilation as the
// official EditGAN loss does it; PNG encoding and decoding through an off-screen canvas.

// The image pixel (row, col) under a pointer event on a canvas that shows the whole image scaled to fill it:
// a click at the fraction (fx, fy) of its width and height is (floor(fy * H), floor(fx * W)). `exact` keeps the
// fractional position in pixel units (for the brush).
export function pixelAt(canvas, event, size) {
  const rect = canvas.getBoundingClientRect();
  const fx = (event.clientX - rect.left) / rect.width;
  const fy = (event.clientY - rect.top) / rect.height;
  const clamp = (v) => Math.min(size - 1, Math.max(0, Math.floor(v * size)));
  return { row: clamp(fy), col: clamp(fx), y: fy * size, x: fx * size };
}

// The brushes' starting radius: 1/32 of the image side, at least one pixel.
export function brushRadius(size) {
  return Math.max(1, Math.round(size / 32));
}

// Paint a disc of `radius` image pixels centred at the continuous position (y, x): the pixels whose centres lie
// within the radius get `value`.
export function paintDisc(map, size, y, x, radius, value) {
  const r = Math.max(0.5, radius);
  const r0 = Math.max(0, Math.floor(y - r)), r1 = Math.min(size - 1, Math.ceil(y + r));
  const c0 = Math.max(0, Math.floor(x - r)), c1 = Math.min(size - 1, Math.ceil(x + r));
  for (let i = r0; i <= r1; i++) {
    for (let j = c0; j <= c1; j++) {
      const dy = i + 0.5 - y, dx = j + 0.5 - x;
      if (dy * dy + dx * dx <= r * r) map[i * size + j] = value;
    }
  }
}

// A stroke from (y0, x0) to (y1, x1): discs every quarter pixel, so fast pointer moves leave no gaps.
export function paintStroke(map, size, from, to, radius, value) {
  const steps = Math.max(1, Math.ceil(4 * Math.hypot(to.y - from.y, to.x - from.x)));
  for (let k = 0; k <= steps; k++) {
    const t = k / steps;
    paintDisc(map, size, from.y + t * (to.y - from.y), from.x + t * (to.x - from.x), radius, value);
  }
}

// Binary dilation by a side x side square, outside the image empty: cv2.dilate with a 3x3 kernel iterated
// (side - 1) / 2 times, which is what EditGAN's edit loss applies to the edited pixels (7: three iterations).
export function dilateSquare(map, size, side) {
  const half = (side - 1) >> 1;
  const rows = new Uint8Array(size * size);
  for (let i = 0; i < size; i++) {  // separable: the max over columns, then over rows
    for (let j = 0; j < size; j++) {
      let on = 0;
      for (let d = Math.max(0, j - half); d <= Math.min(size - 1, j + half) && !on; d++) on = map[i * size + d] ? 1 : 0;
      rows[i * size + j] = on;
    }
  }
  const out = new Uint8Array(size * size);
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) {
      let on = 0;
      for (let d = Math.max(0, i - half); d <= Math.min(size - 1, i + half) && !on; d++) on = rows[d * size + j];
      out[i * size + j] = on;
    }
  }
  return out;
}

export function anySet(map) {
  for (let k = 0; k < map.length; k++) if (map[k]) return true;
  return false;
}

// An 8-bit greyscale PNG (as a data URL) of `map` through `grey(value)`. Written here rather than by a canvas,
// whose encoder always writes RGBA: the server reads class-id maps only from single-channel images, as the
// command line does. The pixels are zlib-compressed by the browser's CompressionStream("deflate").
export async function mapToPng(map, size, grey = (v) => v) {
  const raw = new Uint8Array(size * (size + 1));  // each row: filter type 0, then its pixels
  for (let i = 0; i < size; i++) {
    for (let j = 0; j < size; j++) raw[i * (size + 1) + 1 + j] = grey(map[i * size + j]);
  }
  const stream = new Blob([raw]).stream().pipeThrough(new CompressionStream("deflate"));
  const idat = new Uint8Array(await new Response(stream).arrayBuffer());
  const header = new Uint8Array(13);
  const view = new DataView(header.buffer);
  view.setUint32(0, size); view.setUint32(4, size);
  header.set([8, 0, 0, 0, 0], 8);  // bit depth 8, colour type 0 (grey), deflate, adaptive filtering, no interlace
  const signature = [137, 80, 78, 71, 13, 10, 26, 10];
  const bytes = concat([new Uint8Array(signature), chunk("IHDR", header), chunk("IDAT", idat),
                        chunk("IEND", new Uint8Array(0))]);
  let binary = "";
  for (let k = 0; k < bytes.length; k += 0x8000) binary += String.fromCharCode(...bytes.subarray(k, k + 0x8000));
  return "data:image/png;base64," + btoa(binary);
}

const CRC_TABLE = (() => {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
})();

function crc32(bytes) {
  let c = 0xffffffff;
  for (let k = 0; k < bytes.length; k++) c = CRC_TABLE[(c ^ bytes[k]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type, data) {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  for (let k = 0; k < 4; k++) out[4 + k] = type.charCodeAt(k);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function concat(parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let k = 0;
  for (const p of parts) { out.set(p, k); k += p.length; }
  return out;
}

export function loadImage(src) {
  return new Promise((resolve, reject) => {
    const image = new Image();
    image.onload = () => resolve(image);
    image.onerror = () => reject(new Error("the image could not be decoded"));
    image.src = src;
  });
}

// The red channel of a PNG (data or object URL) as a Uint8Array of size x size: class ids or mask values.
export async function pngToMap(src, size) {
  const image = await loadImage(src);
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = size;
  const context = canvas.getContext("2d", { willReadFrequently: true });
  context.drawImage(image, 0, 0, size, size);
  const rgba = context.getImageData(0, 0, size, size).data;
  const out = new Uint8Array(size * size);
  for (let k = 0; k < out.length; k++) out[k] = rgba[4 * k];
  return out;
}

// Run-length strings keep maps small in sessionStorage (a reload restores the tab's painting).
export function encodeMap(map) {
  const runs = [];
  let value = map[0], count = 0;
  for (let k = 0; k < map.length; k++) {
    if (map[k] === value) { count++; continue; }
    runs.push(`${value}x${count}`);
    value = map[k]; count = 1;
  }
  runs.push(`${value}x${count}`);
  return runs.join(",");
}

export function decodeMap(text, length) {
  const out = new Uint8Array(length);
  let k = 0;
  for (const run of text.split(",")) {
    const [value, count] = run.split("x").map(Number);
    out.fill(value, k, k + count);
    k += count;
  }
  return k === length ? out : null;
}
