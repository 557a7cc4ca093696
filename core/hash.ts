/**
 * A stable 32-bit hash of a string: FNV-1a over its UTF-16 code units, then murmur3's finaliser,
 * so keys that differ in one character still spread over all 32 bits (FNV alone leaves the low
 * bits of similar keys correlated). For reproducible splits and draws, not for security.
 */
export function hash32(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  hash ^= hash >>> 16;
  hash = Math.imul(hash, 0x85ebca6b);
  hash ^= hash >>> 13;
  hash = Math.imul(hash, 0xc2b2ae35);
  hash ^= hash >>> 16;
  return hash >>> 0;
}

/**
 * A reproducible uniform draw in [0, 1) for a key: the same key always draws the same number, in
 * any process, in any order, however often it is replayed.
 */
export function uniformDraw(key: string): number {
  return hash32(key) / 2 ** 32;
}
