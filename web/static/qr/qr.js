// QR Code Model 2 encoder, written for cardsys from ISO/IEC 18004:2015 (clause numbers below
// refer to that edition). One ES module, no dependencies, no build step: the resident portal
// draws the presentation QR on the phone, offline, every 30 s.
//
// Scope: alphanumeric and byte (UTF-8, no ECI) modes, one segment, versions 1-40, levels
// L/M/Q/H, the 8 data masks chosen by the penalty rules or fixed by the caller.
//
// Matrices are Uint8Array(size * size), row-major, 1 = dark; the public result turns them
// into rows of booleans.

const MIN_VERSION = 1;
const MAX_VERSION = 40;

// ---------------------------------------------------------------------------------------------
// Tables from the standard
// ---------------------------------------------------------------------------------------------

// Error correction levels (7.5.1). `index` selects a column of the Table 9 arrays below;
// `formatBits` is the level's 2-bit indicator in the format information (Table 12) - note that
// it is not in L/M/Q/H order.
const LEVELS = Object.freeze({
  L: Object.freeze({ index: 0, formatBits: 0b01 }),
  M: Object.freeze({ index: 1, formatBits: 0b00 }),
  Q: Object.freeze({ index: 2, formatBits: 0b11 }),
  H: Object.freeze({ index: 3, formatBits: 0b10 }),
});

// Total number of codewords (data + error correction) of each version, Table 1, column
// "Total number of codewords"; index 0 unused.
const TOTAL_CODEWORDS = Object.freeze([
  0, 26, 44, 70, 100, 134, 172, 196, 242, 292, 346, 404, 466, 532, 581, 655, 733, 815, 901, 991,
  1085, 1156, 1258, 1364, 1474, 1588, 1706, 1828, 1921, 2051, 2185, 2323, 2465, 2611, 2761,
  2876, 3034, 3196, 3362, 3532, 3706,
]);

// Remainder bits after the last codeword, Table 1, column "Remainder bits". They are light
// before masking (7.7.3); the encoder only uses this table to check its own module count.
const REMAINDER_BITS = Object.freeze([
  0, 0, 7, 7, 7, 7, 7, 0, 0, 0, 0, 0, 0, 0, 3, 3, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 4, 3, 3, 3, 3,
  3, 3, 3, 0, 0, 0, 0, 0, 0,
]);

// Error correction codewords per block, Table 9 (the "c - k" of each block's (c, k, r));
// one row per level in L, M, Q, H order, index = version.
const EC_CODEWORDS_PER_BLOCK = Object.freeze([
  [0, 7, 10, 15, 20, 26, 18, 20, 24, 30, 18, 20, 24, 26, 30, 22, 24, 28, 30, 28, 28, 28, 28, 30,
    30, 26, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
  [0, 10, 16, 26, 18, 24, 16, 18, 22, 22, 26, 30, 22, 22, 24, 24, 28, 28, 26, 26, 26, 26, 28, 28,
    28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28, 28],
  [0, 13, 22, 18, 26, 18, 24, 18, 22, 20, 24, 28, 26, 24, 20, 30, 24, 28, 28, 26, 30, 28, 30, 30,
    30, 30, 28, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
  [0, 17, 28, 22, 16, 22, 28, 26, 26, 24, 28, 24, 28, 22, 24, 24, 30, 28, 28, 26, 28, 30, 24, 30,
    30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30, 30],
]);

// Number of error correction blocks (both block sizes together), Table 9, same layout. Table 9
// lists the blocks as one or two groups whose data lengths differ by one codeword; that split
// follows from these counts and TOTAL_CODEWORDS (see blockLayout).
const EC_BLOCKS = Object.freeze([
  [0, 1, 1, 1, 1, 1, 2, 2, 2, 2, 4, 4, 4, 4, 4, 6, 6, 6, 6, 7, 8, 8, 9, 9, 10, 12, 12, 12, 13,
    14, 15, 16, 17, 18, 19, 19, 20, 21, 22, 24, 25],
  [0, 1, 1, 1, 2, 2, 4, 4, 4, 5, 5, 5, 8, 9, 9, 10, 10, 11, 13, 14, 16, 17, 17, 18, 20, 21, 23,
    25, 26, 28, 29, 31, 33, 35, 37, 38, 40, 43, 45, 47, 49],
  [0, 1, 1, 2, 2, 4, 4, 6, 6, 8, 8, 8, 10, 12, 16, 12, 17, 16, 18, 21, 20, 23, 23, 25, 27, 29,
    34, 34, 35, 38, 40, 43, 45, 48, 51, 53, 56, 59, 62, 65, 68],
  [0, 1, 1, 2, 4, 4, 4, 5, 6, 8, 8, 11, 11, 16, 16, 18, 16, 19, 21, 25, 25, 25, 34, 30, 32, 35,
    37, 40, 42, 45, 48, 51, 54, 57, 60, 63, 66, 70, 74, 77, 81],
]);

// Row/column coordinates of the alignment pattern centres, Annex E, Table E.1; index = version.
const ALIGNMENT_POSITIONS = Object.freeze([
  [], [], [6, 18], [6, 22], [6, 26], [6, 30], [6, 34],
  [6, 22, 38], [6, 24, 42], [6, 26, 46], [6, 28, 50], [6, 30, 54], [6, 32, 58], [6, 34, 62],
  [6, 26, 46, 66], [6, 26, 48, 70], [6, 26, 50, 74], [6, 30, 54, 78], [6, 30, 56, 82],
  [6, 30, 58, 86], [6, 34, 62, 90],
  [6, 28, 50, 72, 94], [6, 26, 50, 74, 98], [6, 30, 54, 78, 102], [6, 28, 54, 80, 106],
  [6, 32, 58, 84, 110], [6, 30, 58, 86, 114], [6, 34, 62, 90, 118],
  [6, 26, 50, 74, 98, 122], [6, 30, 54, 78, 102, 126], [6, 26, 52, 78, 104, 130],
  [6, 30, 56, 82, 108, 134], [6, 34, 60, 86, 112, 138], [6, 30, 58, 86, 114, 142],
  [6, 34, 62, 90, 118, 146],
  [6, 30, 54, 78, 102, 126, 150], [6, 24, 50, 76, 102, 128, 154], [6, 28, 54, 80, 106, 132, 158],
  [6, 32, 58, 84, 110, 136, 162], [6, 26, 54, 82, 110, 138, 166], [6, 30, 58, 86, 114, 142, 170],
]);

// Mode indicators (Table 2) and character count indicator lengths for versions 1-9, 10-26 and
// 27-40 (Table 3).
const MODES = Object.freeze({
  alphanumeric: Object.freeze({ indicator: 0b0010, countBits: Object.freeze([9, 11, 13]) }),
  byte: Object.freeze({ indicator: 0b0100, countBits: Object.freeze([8, 16, 16]) }),
});

// The 45 alphanumeric characters in value order, Table 5 (7.4.4).
const ALPHANUMERIC_CHARSET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ $%*+-./:";
const ALPHANUMERIC_TEXT = /^[0-9A-Z $%*+\-./:]*$/;

// Pad codewords appended alternately after the terminator, 7.4.10.
const PAD_CODEWORDS = Object.freeze([0xec, 0x11]);

// Format information (7.9.1): BCH(15,5) generator x^10+x^8+x^5+x^4+x^2+x+1, then XOR with
// 101010000010010 so that no format information is all light.
const FORMAT_GENERATOR = 0x537;
const FORMAT_XOR_MASK = 0x5412;

// Version information (7.10): BCH(18,6) generator x^12+x^11+x^10+x^9+x^8+x^5+x^2+1.
const VERSION_GENERATOR = 0x1f25;

// Data mask conditions, Table 10 (7.8.2); i = row, j = column. A module whose condition is
// true is inverted.
const MASK_CONDITIONS = Object.freeze([
  (i, j) => (i + j) % 2 === 0,
  (i) => i % 2 === 0,
  (i, j) => j % 3 === 0,
  (i, j) => (i + j) % 3 === 0,
  (i, j) => (Math.floor(i / 2) + Math.floor(j / 3)) % 2 === 0,
  (i, j) => ((i * j) % 2) + ((i * j) % 3) === 0,
  (i, j) => (((i * j) % 2) + ((i * j) % 3)) % 2 === 0,
  (i, j) => (((i + j) % 2) + ((i * j) % 3)) % 2 === 0,
]);

// Penalty weights N1-N4, Table 11 (7.8.3.1).
const PENALTY_N1 = 3;
const PENALTY_N2 = 3;
const PENALTY_N3 = 40;
const PENALTY_N4 = 10;

// Rule 3 looks at 11 modules: dark-light-dark-dark-dark-light-dark (1:1:3:1:1) followed or
// preceded by 4 light modules, as 11-bit numbers read left to right (or top to bottom).
const FINDER_LIKE_THEN_LIGHT = 0b10111010000;
const LIGHT_THEN_FINDER_LIKE = 0b00001011101;

// ---------------------------------------------------------------------------------------------
// Public API
// ---------------------------------------------------------------------------------------------

/**
 * Encode `text` as a QR Code Model 2 symbol.
 *
 * @param {string} text - alphanumeric-mode text, or any text (UTF-8 in byte mode).
 * @param {{ecl?: "L"|"M"|"Q"|"H", mode?: "auto"|"alphanumeric"|"byte",
 *          minVersion?: number, mask?: number}} [options] - `mode` "auto" takes alphanumeric
 *   mode when every character is in its alphabet, byte mode otherwise; `mask` -1 chooses the
 *   mask with the lowest penalty (7.8.3), 0-7 fixes it (faster).
 * @returns {{version: number, size: number, ecl: string, mode: string, mask: number,
 *            modules: ReadonlyArray<ReadonlyArray<boolean>>}} `modules[row][col]`, true = dark.
 * @throws {TypeError} when `text` is not a string.
 * @throws {RangeError} when an option is out of range, the text does not fit the forced
 *   alphanumeric mode, or the text is too long for version 40 at that level.
 */
export function encode(text, { ecl = "M", mode = "auto", minVersion = 1, mask = -1 } = {}) {
  if (typeof text !== "string") {
    throw new TypeError(`QR text must be a string, not ${typeof text}`);
  }
  const level = checkOptions(ecl, mode, minVersion, mask);
  const segment = makeSegment(text, mode);
  const version = chooseVersion(segment, level, minVersion, ecl);
  const codewords = addErrorCorrection(dataCodewords(segment, version, level), version, level);
  const template = functionTemplate(version);
  const bits = placementBits(codewords, template);
  const chosen = mask >= 0 ? mask : bestMask(template, bits, level);
  const matrix = buildSymbol(template, bits, level, chosen);
  return Object.freeze({
    version,
    size: template.size,
    ecl,
    mode: segment.mode,
    mask: chosen,
    modules: toRows(matrix, template.size),
  });
}

/**
 * Draw `qr` (from `encode`) into a canvas, dark modules on white with a light quiet zone.
 * The canvas is resized to `(size + 2 * quiet) * scale` pixels square.
 *
 * @param {HTMLCanvasElement|OffscreenCanvas} canvas
 * @param {{size: number, modules: ReadonlyArray<ReadonlyArray<boolean>>}} qr
 * @param {{scale?: number, quiet?: number}} [options] - pixels per module; quiet zone in
 *   modules (4 is the minimum of 6.3.8).
 */
export function drawCanvas(canvas, qr, { scale = 6, quiet = 4 } = {}) {
  checkCount("scale", scale, 1);
  checkCount("quiet", quiet, 0);
  const side = (qr.size + 2 * quiet) * scale;
  canvas.width = side;
  canvas.height = side;
  const context = canvas.getContext("2d");
  context.fillStyle = "#ffffff";
  context.fillRect(0, 0, side, side);
  context.fillStyle = "#000000";
  forEachDarkRun(qr, (row, col, length) => {
    context.fillRect((col + quiet) * scale, (row + quiet) * scale, length * scale, scale);
  });
}

/**
 * The symbol as an SVG document: a white square and one black path, one unit per module,
 * sized by its viewBox (the page or printer scales it).
 *
 * @param {{size: number, modules: ReadonlyArray<ReadonlyArray<boolean>>}} qr
 * @param {{quiet?: number}} [options] - quiet zone in modules.
 * @returns {string}
 */
export function toSvg(qr, { quiet = 4 } = {}) {
  checkCount("quiet", quiet, 0);
  const side = qr.size + 2 * quiet;
  const parts = [];
  forEachDarkRun(qr, (row, col, length) => {
    parts.push(`M${col + quiet} ${row + quiet}h${length}v1h-${length}z`);
  });
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${side} ${side}" ` +
    `shape-rendering="crispEdges"><rect width="${side}" height="${side}" fill="#fff"/>` +
    `<path fill="#000" d="${parts.join("")}"/></svg>`
  );
}

/**
 * The mask penalty score of a finished symbol (7.8.3.1, Table 11): the sum of rules 1-4.
 * Exported so tests can compare it with other implementations.
 *
 * @param {ReadonlyArray<ReadonlyArray<boolean>>} modules - square, `modules[row][col]`.
 * @returns {number}
 */
export function penalty(modules) {
  const size = modules.length;
  const matrix = new Uint8Array(size * size);
  for (let row = 0; row < size; row++) {
    if (modules[row].length !== size) {
      throw new RangeError("penalty() needs a square matrix");
    }
    for (let col = 0; col < size; col++) {
      matrix[row * size + col] = modules[row][col] ? 1 : 0;
    }
  }
  return penaltyScore(matrix, size);
}

// ---------------------------------------------------------------------------------------------
// Options and data encoding (7.4)
// ---------------------------------------------------------------------------------------------

function checkOptions(ecl, mode, minVersion, mask) {
  if (!hasOwn(LEVELS, ecl)) {
    throw new RangeError(`QR error correction level must be L, M, Q or H, not ${String(ecl)}`);
  }
  if (mode !== "auto" && !hasOwn(MODES, mode)) {
    throw new RangeError(`QR mode must be auto, alphanumeric or byte, not ${String(mode)}`);
  }
  if (!Number.isInteger(minVersion) || minVersion < MIN_VERSION || minVersion > MAX_VERSION) {
    throw new RangeError(`QR minVersion must be an integer 1-40, not ${String(minVersion)}`);
  }
  if (!Number.isInteger(mask) || mask < -1 || mask > 7) {
    throw new RangeError(`QR mask must be -1 (automatic) or an integer 0-7, not ${String(mask)}`);
  }
  return LEVELS[ecl];
}

// Object.hasOwn is missing from phones older than iOS 15.4; this is the same check.
function hasOwn(object, key) {
  return Object.prototype.hasOwnProperty.call(object, key);
}

function checkCount(name, value, minimum) {
  if (!Number.isInteger(value) || value < minimum) {
    throw new RangeError(`${name} must be an integer >= ${minimum}, not ${String(value)}`);
  }
}

// A segment is the mode, the character count and the data bits without header; the header's
// length depends on the version, so it is added once the version is known.
function makeSegment(text, requested) {
  const alphanumeric = ALPHANUMERIC_TEXT.test(text);
  if (requested === "alphanumeric" && !alphanumeric) {
    throw new RangeError("QR alphanumeric mode takes only 0-9, A-Z, space and $%*+-./:");
  }
  if (requested === "alphanumeric" || (requested === "auto" && alphanumeric)) {
    return { mode: "alphanumeric", count: text.length, bits: alphanumericBits(text) };
  }
  // Byte mode (7.4.5) carries the UTF-8 bytes without an ECI header, as phones' and
  // terminals' readers expect for UTF-8 text.
  const bytes = new TextEncoder().encode(text);
  const bits = new BitBuffer();
  for (const byte of bytes) {
    bits.append(byte, 8);
  }
  return { mode: "byte", count: bytes.length, bits };
}

// 7.4.4: characters in pairs, 45 * first + second in 11 bits; a last odd character in 6 bits.
function alphanumericBits(text) {
  const bits = new BitBuffer();
  let i = 0;
  for (; i + 1 < text.length; i += 2) {
    const first = ALPHANUMERIC_CHARSET.indexOf(text[i]);
    bits.append(45 * first + ALPHANUMERIC_CHARSET.indexOf(text[i + 1]), 11);
  }
  if (i < text.length) {
    bits.append(ALPHANUMERIC_CHARSET.indexOf(text[i]), 6);
  }
  return bits;
}

function countBitsFor(mode, version) {
  const lengths = MODES[mode].countBits;
  return version <= 9 ? lengths[0] : version <= 26 ? lengths[1] : lengths[2];
}

function segmentBitLength(segment, version) {
  const countBits = countBitsFor(segment.mode, version);
  if (segment.count >= 2 ** countBits) {
    return Infinity;
  }
  return 4 + countBits + segment.bits.length;
}

function dataCodewordCount(version, level) {
  const blocks = EC_BLOCKS[level.index][version];
  return TOTAL_CODEWORDS[version] - blocks * EC_CODEWORDS_PER_BLOCK[level.index][version];
}

// The smallest version >= minVersion whose data capacity (Table 7) holds the segment.
function chooseVersion(segment, level, minVersion, ecl) {
  for (let version = minVersion; version <= MAX_VERSION; version++) {
    if (segmentBitLength(segment, version) <= 8 * dataCodewordCount(version, level)) {
      return version;
    }
  }
  const needed = segmentBitLength(segment, MAX_VERSION);
  throw new RangeError(
    `QR text too long: ${segment.count} characters in ${segment.mode} mode need ${needed} ` +
      `bits, version 40-${ecl} holds ${8 * dataCodewordCount(MAX_VERSION, level)}`,
  );
}

// The data codewords (7.4.1): mode indicator, character count, data, terminator (7.4.9),
// zero bits to the byte boundary, then pad codewords (7.4.10).
function dataCodewords(segment, version, level) {
  const capacity = dataCodewordCount(version, level);
  const bits = new BitBuffer();
  bits.append(MODES[segment.mode].indicator, 4);
  bits.append(segment.count, countBitsFor(segment.mode, version));
  bits.appendBuffer(segment.bits);
  bits.append(0, Math.min(4, 8 * capacity - bits.length));
  bits.append(0, (8 - (bits.length % 8)) % 8);
  const codewords = bits.toBytes();
  for (let k = 0; codewords.length < capacity; k++) {
    codewords.push(PAD_CODEWORDS[k % 2]);
  }
  return codewords;
}

class BitBuffer {
  constructor() {
    this.bits = [];
  }

  get length() {
    return this.bits.length;
  }

  append(value, count) {
    for (let i = count - 1; i >= 0; i--) {
      this.bits.push((value >>> i) & 1);
    }
  }

  appendBuffer(other) {
    for (const bit of other.bits) {
      this.bits.push(bit);
    }
  }

  toBytes() {
    const bytes = [];
    for (let i = 0; i < this.bits.length; i += 8) {
      let byte = 0;
      for (let k = 0; k < 8; k++) {
        byte = (byte << 1) | this.bits[i + k];
      }
      bytes.push(byte);
    }
    return bytes;
  }
}

// ---------------------------------------------------------------------------------------------
// Error correction (7.5) and the final codeword sequence (7.6)
// ---------------------------------------------------------------------------------------------

// GF(2^8) with the field's prime modulus x^8+x^4+x^3+x^2+1 (0x11D, 7.5.2): exponent and
// logarithm tables for alpha = 2. EXP is doubled so that a product needs no modulo.
const GF_EXP = new Uint8Array(512);
const GF_LOG = new Uint8Array(256);
(function fillFieldTables() {
  let value = 1;
  for (let power = 0; power < 255; power++) {
    GF_EXP[power] = value;
    GF_LOG[value] = power;
    value <<= 1;
    if (value & 0x100) {
      value ^= 0x11d;
    }
  }
  for (let power = 255; power < 512; power++) {
    GF_EXP[power] = GF_EXP[power - 255];
  }
})();

function gfMultiply(a, b) {
  return a === 0 || b === 0 ? 0 : GF_EXP[GF_LOG[a] + GF_LOG[b]];
}

// Generator polynomial of degree n, prod_{i=0}^{n-1} (x - alpha^i) (7.5.2, Annex A), as its
// coefficients below the leading 1, highest degree first. Few degrees occur; they are kept.
const generatorCache = new Map();

function generatorPolynomial(degree) {
  let poly = generatorCache.get(degree);
  if (poly === undefined) {
    let product = [1];
    for (let i = 0; i < degree; i++) {
      const next = new Array(product.length + 1).fill(0);
      for (let k = 0; k < product.length; k++) {
        next[k] ^= product[k]; // times x
        next[k + 1] ^= gfMultiply(product[k], GF_EXP[i]); // times alpha^i (minus = plus)
      }
      product = next;
    }
    poly = Uint8Array.from(product.slice(1));
    generatorCache.set(degree, poly);
  }
  return poly;
}

// The remainder of data(x) * x^n divided by the generator: the n error correction codewords.
function reedSolomonRemainder(data, degree) {
  const generator = generatorPolynomial(degree);
  const remainder = new Uint8Array(degree);
  for (const codeword of data) {
    const factor = codeword ^ remainder[0];
    remainder.copyWithin(0, 1);
    remainder[degree - 1] = 0;
    for (let k = 0; k < degree; k++) {
      remainder[k] ^= gfMultiply(generator[k], factor);
    }
  }
  return remainder;
}

// Table 9's block structure: all blocks have the same number of error correction codewords;
// when the data codewords do not divide evenly, the later blocks carry one more.
function blockLayout(version, level) {
  const blocks = EC_BLOCKS[level.index][version];
  const dataTotal = dataCodewordCount(version, level);
  const shortLength = Math.floor(dataTotal / blocks);
  const longBlocks = dataTotal % blocks;
  const lengths = [];
  for (let b = 0; b < blocks; b++) {
    lengths.push(b < blocks - longBlocks ? shortLength : shortLength + 1);
  }
  return { lengths, ecLength: EC_CODEWORDS_PER_BLOCK[level.index][version] };
}

// Split the data into blocks, compute each block's error correction codewords, and interleave:
// the first data codeword of every block, then the second, ..., then the error correction
// codewords the same way (7.6).
function addErrorCorrection(data, version, level) {
  const { lengths, ecLength } = blockLayout(version, level);
  const dataBlocks = [];
  const ecBlocks = [];
  let offset = 0;
  for (const length of lengths) {
    const block = data.slice(offset, offset + length);
    offset += length;
    dataBlocks.push(block);
    ecBlocks.push(reedSolomonRemainder(block, ecLength));
  }
  const result = [];
  const longest = lengths[lengths.length - 1];
  for (let i = 0; i < longest; i++) {
    for (const block of dataBlocks) {
      if (i < block.length) {
        result.push(block[i]);
      }
    }
  }
  for (let i = 0; i < ecLength; i++) {
    for (const block of ecBlocks) {
      result.push(block[i]);
    }
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// Function patterns (6.3) and codeword placement (7.7)
// ---------------------------------------------------------------------------------------------

// Per version: the function patterns drawn (`dark`), which modules they reserve (`reserved`,
// including format and version information, drawn later per mask), and the data module
// positions in placement order (`dataOrder`). Built once per version.
const templateCache = new Map();

function functionTemplate(version) {
  let template = templateCache.get(version);
  if (template === undefined) {
    template = buildTemplate(version);
    templateCache.set(version, template);
  }
  return template;
}

function buildTemplate(version) {
  const size = 4 * version + 17;
  const template = {
    version,
    size,
    dark: new Uint8Array(size * size),
    reserved: new Uint8Array(size * size),
    dataOrder: null,
  };
  drawFinders(template);
  drawTiming(template);
  drawAlignments(template);
  reserveFormatAndVersion(template);
  template.dataOrder = placementOrder(template);
  const expected = 8 * TOTAL_CODEWORDS[version] + REMAINDER_BITS[version];
  if (template.dataOrder.length !== expected) {
    throw new Error(
      `QR internal error: version ${version} has ${template.dataOrder.length} data modules, ` +
        `Table 1 says ${expected}`,
    );
  }
  return template;
}

function setFunction(template, row, col, dark) {
  const at = row * template.size + col;
  template.dark[at] = dark ? 1 : 0;
  template.reserved[at] = 1;
}

// Finder patterns (6.3.3): 7x7 dark ring, light ring, 3x3 dark centre, in three corners; each
// with a one-module light separator (6.3.4) where it faces the symbol.
function drawFinders(template) {
  const last = template.size - 7;
  for (const [top, left] of [[0, 0], [0, last], [last, 0]]) {
    for (let dr = -1; dr <= 7; dr++) {
      for (let dc = -1; dc <= 7; dc++) {
        const row = top + dr;
        const col = left + dc;
        if (row < 0 || col < 0 || row >= template.size || col >= template.size) {
          continue;
        }
        const ring = Math.max(Math.abs(dr - 3), Math.abs(dc - 3));
        setFunction(template, row, col, ring !== 2 && ring !== 4);
      }
    }
  }
}

// Timing patterns (6.3.5): row 6 and column 6 between the separators, dark on even indices.
function drawTiming(template) {
  for (let k = 8; k < template.size - 8; k++) {
    setFunction(template, 6, k, k % 2 === 0);
    setFunction(template, k, 6, k % 2 === 0);
  }
}

// Alignment patterns (6.3.6): 5x5 dark ring, light ring, dark centre, at every pair of
// Table E.1 coordinates except the three that fall on finder patterns.
function drawAlignments(template) {
  const positions = ALIGNMENT_POSITIONS[template.version];
  const lastIndex = positions.length - 1;
  positions.forEach((row, i) => {
    positions.forEach((col, j) => {
      const onFinder =
        (i === 0 && j === 0) || (i === 0 && j === lastIndex) || (i === lastIndex && j === 0);
      if (onFinder) {
        return;
      }
      for (let dr = -2; dr <= 2; dr++) {
        for (let dc = -2; dc <= 2; dc++) {
          setFunction(template, row + dr, col + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
        }
      }
    });
  });
}

// The modules of the two format information copies (7.9.1), for bit 0 (least
// significant) to bit 14. The first copy runs up column 8 beside the top-left finder and then
// left along row 8; the second along row 8 under the top-right finder, then down column 8
// beside the bottom-left finder.
function formatPositions(size) {
  const first = [];
  const second = [];
  for (let i = 0; i < 15; i++) {
    if (i < 6) {
      first.push([i, 8]);
    } else if (i < 8) {
      first.push([i + 1, 8]); // skips the timing pattern in row 6
    } else if (i === 8) {
      first.push([8, 7]);
    } else {
      first.push([8, 14 - i]); // skips the timing pattern in column 6
    }
    second.push(i < 8 ? [8, size - 1 - i] : [size - 15 + i, 8]);
  }
  return [first, second];
}

// The modules of the two version information blocks (7.10), for bit 0 to 17:
// 6x3 above the bottom-left finder and its transpose left of the top-right finder.
function versionPositions(size) {
  const positions = [];
  for (let i = 0; i < 18; i++) {
    const a = Math.floor(i / 3);
    const b = size - 11 + (i % 3);
    positions.push([a, b], [b, a]);
  }
  return positions;
}

// Reserve the format and version information areas, and set the dark module that sits beside
// the bottom-left format copy, in row 4V + 9 of column 8 (7.9.1).
function reserveFormatAndVersion(template) {
  for (const copy of formatPositions(template.size)) {
    for (const [row, col] of copy) {
      setFunction(template, row, col, false);
    }
  }
  setFunction(template, template.size - 8, 8, true);
  if (template.version >= 7) {
    for (const [row, col] of versionPositions(template.size)) {
      setFunction(template, row, col, false);
    }
  }
}

// Codeword placement (7.7.3): two-module-wide columns from the right edge,
// alternately upward and downward, right module before left, skipping function modules;
// the vertical timing pattern's column 6 is stepped over entirely.
function placementOrder(template) {
  const { size, reserved } = template;
  const order = [];
  let upward = true;
  for (let right = size - 1; right >= 1; right -= 2) {
    if (right === 6) {
      right = 5;
    }
    for (let step = 0; step < size; step++) {
      const row = upward ? size - 1 - step : step;
      for (const col of [right, right - 1]) {
        if (!reserved[row * size + col]) {
          order.push(row * size + col);
        }
      }
    }
    upward = !upward;
  }
  return Int32Array.from(order);
}

// The bit placed in each data module, in placement order; remainder bits stay 0.
function placementBits(codewords, template) {
  const bits = new Uint8Array(template.dataOrder.length);
  for (let i = 0; i < codewords.length * 8; i++) {
    bits[i] = (codewords[i >> 3] >>> (7 - (i & 7))) & 1;
  }
  return bits;
}

// ---------------------------------------------------------------------------------------------
// Masking (7.8), format (7.9) and version (7.10) information
// ---------------------------------------------------------------------------------------------

// Remainder of value * x^degree divided by a BCH generator polynomial of that degree.
function bchRemainder(value, generator, degree) {
  let remainder = value << degree;
  for (let bit = 30; bit >= degree; bit--) {
    if ((remainder >>> bit) & 1) {
      remainder ^= generator << (bit - degree);
    }
  }
  return remainder;
}

function formatBits(level, mask) {
  const data = (level.formatBits << 3) | mask;
  return ((data << 10) | bchRemainder(data, FORMAT_GENERATOR, 10)) ^ FORMAT_XOR_MASK;
}

function versionBits(version) {
  return (version << 12) | bchRemainder(version, VERSION_GENERATOR, 12);
}

// The complete symbol for one mask: function patterns, masked data, format and version bits.
function buildSymbol(template, bits, level, mask) {
  const { size, dataOrder } = template;
  const matrix = template.dark.slice();
  const condition = MASK_CONDITIONS[mask];
  for (let k = 0; k < dataOrder.length; k++) {
    const at = dataOrder[k];
    const inverted = condition(Math.floor(at / size), at % size) ? 1 : 0;
    matrix[at] = bits[k] ^ inverted;
  }
  const format = formatBits(level, mask);
  for (const copy of formatPositions(size)) {
    copy.forEach(([row, col], i) => {
      matrix[row * size + col] = (format >>> i) & 1;
    });
  }
  if (template.version >= 7) {
    const info = versionBits(template.version);
    versionPositions(size).forEach(([row, col], k) => {
      matrix[row * size + col] = (info >>> (k >> 1)) & 1;
    });
  }
  return matrix;
}

// 7.8.3: evaluate every mask on the complete symbol (format and version information for that
// mask included) and keep the lowest score; on a tie the lower mask number wins (the standard
// does not say, this is the usual choice).
function bestMask(template, bits, level) {
  let best = 0;
  let bestScore = Infinity;
  for (let mask = 0; mask < 8; mask++) {
    const score = penaltyScore(buildSymbol(template, bits, level, mask), template.size);
    if (score < bestScore) {
      best = mask;
      bestScore = score;
    }
  }
  return best;
}

// Table 11. Rule 1: each run of 5 + i same-colour modules in a row or column scores N1 + i.
// Rule 2: each 2x2 block of one colour scores N2 (an m x n block thus scores
// N2 (m-1)(n-1)). Rule 3: each 1:1:3:1:1 finder-like pattern with 4 light modules before or
// after it, within the symbol, scores N3 (once per side that has the light area). Rule 4: a
// dark proportion between 50 +- 5k % and 50 +- 5(k+1) % scores N4 k.
// Where the standard leaves room, the choices are the Python qrcode package's (so scores can
// be compared): the 4 light modules of rule 3 must lie inside the symbol (some encoders count
// the quiet zone), and a pattern with light on both sides scores twice.
function penaltyScore(matrix, size) {
  let score = 0;
  for (let line = 0; line < size; line++) {
    score += linePenalty(matrix, line * size, 1, size); // row
    score += linePenalty(matrix, line, size, size); // column
  }
  let dark = 0;
  for (let row = 0; row < size; row++) {
    for (let col = 0; col < size; col++) {
      const at = row * size + col;
      dark += matrix[at];
      if (row + 1 < size && col + 1 < size) {
        const colour = matrix[at];
        if (
          matrix[at + 1] === colour &&
          matrix[at + size] === colour &&
          matrix[at + size + 1] === colour
        ) {
          score += PENALTY_N2;
        }
      }
    }
  }
  const total = size * size;
  // Integer form of floor(|dark / total * 100 - 50| / 5).
  const k = Math.floor(Math.abs(20 * dark - 10 * total) / total);
  return score + PENALTY_N4 * k;
}

// Rules 1 and 3 along one row or column: `start` is its first module, `stride` the step.
function linePenalty(matrix, start, stride, size) {
  let score = 0;
  let runColour = -1;
  let runLength = 0;
  let window = 0;
  for (let k = 0; k < size; k++) {
    const module = matrix[start + k * stride];
    if (module === runColour) {
      runLength++;
    } else {
      score += runPenalty(runLength);
      runColour = module;
      runLength = 1;
    }
    window = ((window << 1) | module) & 0x7ff;
    if (k >= 10 && (window === FINDER_LIKE_THEN_LIGHT || window === LIGHT_THEN_FINDER_LIKE)) {
      score += PENALTY_N3;
    }
  }
  return score + runPenalty(runLength);
}

function runPenalty(length) {
  return length >= 5 ? PENALTY_N1 + (length - 5) : 0;
}

// ---------------------------------------------------------------------------------------------
// Output helpers
// ---------------------------------------------------------------------------------------------

function toRows(matrix, size) {
  const rows = [];
  for (let row = 0; row < size; row++) {
    const values = [];
    for (let col = 0; col < size; col++) {
      values.push(matrix[row * size + col] === 1);
    }
    rows.push(Object.freeze(values));
  }
  return Object.freeze(rows);
}

// Calls draw(row, col, length) for each horizontal run of dark modules.
function forEachDarkRun(qr, draw) {
  for (let row = 0; row < qr.size; row++) {
    const line = qr.modules[row];
    let col = 0;
    while (col < qr.size) {
      if (!line[col]) {
        col++;
        continue;
      }
      const start = col;
      while (col < qr.size && line[col]) {
        col++;
      }
      draw(row, start, col - start);
    }
  }
}
