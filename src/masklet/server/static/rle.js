// COCO compressed RLE (the API's mask format) -> pixels. Same algorithm as pycocotools'
// rleFrString: 5 bits per character (offset 48), bit 6 = more, sign-extended, counts after
// the second stored as differences to the count two before. Counts run column-major and
// alternate background / foreground, starting with background.

export function decodeCounts(text) {
  const counts = [];
  let p = 0;
  while (p < text.length) {
    let x = 0, k = 0, more = 1, c = 0;
    while (more) {
      c = text.charCodeAt(p) - 48;
      x |= (c & 0x1f) << (5 * k);
      more = c & 0x20;
      p += 1;
      k += 1;
      if (!more && (c & 0x10)) x |= -1 << (5 * k);
    }
    if (counts.length > 2) x += counts[counts.length - 2];
    counts.push(x);
  }
  return counts;
}

// {size: [h, w], counts} -> Uint8Array of h*w in row-major order (1 = object).
export function decodeRle(rle) {
  const [h, w] = rle.size;
  const out = new Uint8Array(h * w);
  let j = 0, value = 0;
  for (const run of decodeCounts(rle.counts)) {
    if (value) {
      for (let i = j; i < j + run; i++) out[(i % h) * w + Math.floor(i / h)] = 1;
    }
    j += run;
    value ^= 1;
  }
  return out;
}
