/* gate proof-of-work search: finds a nonce such that SHA-256(token + nonce) starts with `difficulty` zero bits.
 *
 * The nonce is a non-negative integer in decimal ASCII without leading zeros; bit 0 is the most significant bit
 * of the digest's first byte. This is a classic (non-module) worker script. solver.js starts one per core and
 * sends {token, difficulty, start, step}; the worker tries start, start + step, ... and posts
 * {type: "progress", hashes} about every 50,000 hashes, then {type: "found", nonce, hashes} (nonce as a decimal
 * string, hashes counted since the start). Without Worker support, solver.js loads this same file with a
 * <script> tag and runs GateWork.Search in chunks on the main thread.
 *
 * Why a hand-written SHA-256: every attempt hashes a tiny message, and WebCrypto's digest() costs a promise per
 * call: in headless Chromium it managed about 170,000 digests/s for this job (awaited one by one or 1,000 at a
 * time), this file about 4.4 million per thread. It is specialised for the job:
 *   - the token's whole 64-byte blocks are hashed once (the "midstate"); per nonce only the last one or two
 *     blocks (the "tail") are compressed;
 *   - the tail is laid out once per nonce length. The nonce is a decimal counter kept in place as ASCII bytes,
 *     so each attempt writes only the digits that changed and repacks only their words;
 *   - the first rounds of the tail's first block read only token bytes, so they are the same for every nonce:
 *     they run once, and each attempt starts after them;
 *   - when the tail has two blocks and the nonce fits in the first one, the second block is constant: its
 *     message schedule is computed once;
 *   - the compression function is written out (no array for the working variables or the schedule), which
 *     measured about 1.5 times faster than the textbook loop in V8;
 *   - nothing is allocated per hash, and only the digest's first word is compared (difficulty <= 32 bits).
 */
"use strict";

var GateWork = (function () {
  var K = new Int32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]);
  var INITIAL = new Int32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);

  // The functions of FIPS 180-4, section 4.1.2, on 32-bit ints. Only code that runs once per layout calls them:
  // the per-hash compressions spell them out, because V8 stops inlining calls after a budget per function and
  // 320 calls measured four times slower.
  function S0(x) { return ((x >>> 2) | (x << 30)) ^ ((x >>> 13) | (x << 19)) ^ ((x >>> 22) | (x << 10)); }
  function S1(x) { return ((x >>> 6) | (x << 26)) ^ ((x >>> 11) | (x << 21)) ^ ((x >>> 25) | (x << 7)); }
  function s0(x) { return ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3); }
  function s1(x) { return ((x >>> 17) | (x << 15)) ^ ((x >>> 19) | (x << 13)) ^ (x >>> 10); }
  function ch(e, f, g) { return g ^ (e & (f ^ g)); }
  function maj(a, b, c) { return (a & b) | (c & (a | b)); }

  /* One SHA-256 compression of the block M[off .. off + 15] (big-endian words); the result goes to out.
   * H is the chaining value added at the end. v holds the working variables a..h after rounds 0 .. from - 1
   * (v is H itself when from is 0): rounds before `from` are skipped (0 <= from <= 15).
   *
   * Written out, the rounds never move the working variables: a round changes only d and h, and the next round
   * calls the variables by rotated roles (round i gives role (j + i) mod 8 to the j-th of a..h, so each block
   * of eight rounds ends with every variable back in its own role). The message words w0..w15 are a ring:
   * from round 16 on, each new schedule word replaces the one 16 rounds older just before its round. */
  function compress(H, v, M, off, from, out) {
    var r = from & 7; // rotate the entry state to the roles of round `from`
    var a = v[r], b = v[(r + 1) & 7], c = v[(r + 2) & 7], d = v[(r + 3) & 7];
    var e = v[(r + 4) & 7], f = v[(r + 5) & 7], g = v[(r + 6) & 7], h = v[(r + 7) & 7];
    var w0 = M[off], w1 = M[off + 1], w2 = M[off + 2], w3 = M[off + 3];
    var w4 = M[off + 4], w5 = M[off + 5], w6 = M[off + 6], w7 = M[off + 7];
    var w8 = M[off + 8], w9 = M[off + 9], w10 = M[off + 10], w11 = M[off + 11];
    var w12 = M[off + 12], w13 = M[off + 13], w14 = M[off + 14], w15 = M[off + 15];
    var t1;
    // Rounds 0..15 read the message words; the switch enters at round `from` and falls through the rest.
    switch (from) {
      case 0:
        t1 = (h + ((e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7)) + (g ^ (e & (f ^ g))) + K[0] + w0) | 0;
        d = (d + t1) | 0;
        h = (t1 + ((a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10)) + ((a & b) | (c & (a | b)))) | 0;
      case 1:
        t1 = (g + ((d >>> 6 | d << 26) ^ (d >>> 11 | d << 21) ^ (d >>> 25 | d << 7)) + (f ^ (d & (e ^ f))) + K[1] + w1) | 0;
        c = (c + t1) | 0;
        g = (t1 + ((h >>> 2 | h << 30) ^ (h >>> 13 | h << 19) ^ (h >>> 22 | h << 10)) + ((h & a) | (b & (h | a)))) | 0;
      case 2:
        t1 = (f + ((c >>> 6 | c << 26) ^ (c >>> 11 | c << 21) ^ (c >>> 25 | c << 7)) + (e ^ (c & (d ^ e))) + K[2] + w2) | 0;
        b = (b + t1) | 0;
        f = (t1 + ((g >>> 2 | g << 30) ^ (g >>> 13 | g << 19) ^ (g >>> 22 | g << 10)) + ((g & h) | (a & (g | h)))) | 0;
      case 3:
        t1 = (e + ((b >>> 6 | b << 26) ^ (b >>> 11 | b << 21) ^ (b >>> 25 | b << 7)) + (d ^ (b & (c ^ d))) + K[3] + w3) | 0;
        a = (a + t1) | 0;
        e = (t1 + ((f >>> 2 | f << 30) ^ (f >>> 13 | f << 19) ^ (f >>> 22 | f << 10)) + ((f & g) | (h & (f | g)))) | 0;
      case 4:
        t1 = (d + ((a >>> 6 | a << 26) ^ (a >>> 11 | a << 21) ^ (a >>> 25 | a << 7)) + (c ^ (a & (b ^ c))) + K[4] + w4) | 0;
        h = (h + t1) | 0;
        d = (t1 + ((e >>> 2 | e << 30) ^ (e >>> 13 | e << 19) ^ (e >>> 22 | e << 10)) + ((e & f) | (g & (e | f)))) | 0;
      case 5:
        t1 = (c + ((h >>> 6 | h << 26) ^ (h >>> 11 | h << 21) ^ (h >>> 25 | h << 7)) + (b ^ (h & (a ^ b))) + K[5] + w5) | 0;
        g = (g + t1) | 0;
        c = (t1 + ((d >>> 2 | d << 30) ^ (d >>> 13 | d << 19) ^ (d >>> 22 | d << 10)) + ((d & e) | (f & (d | e)))) | 0;
      case 6:
        t1 = (b + ((g >>> 6 | g << 26) ^ (g >>> 11 | g << 21) ^ (g >>> 25 | g << 7)) + (a ^ (g & (h ^ a))) + K[6] + w6) | 0;
        f = (f + t1) | 0;
        b = (t1 + ((c >>> 2 | c << 30) ^ (c >>> 13 | c << 19) ^ (c >>> 22 | c << 10)) + ((c & d) | (e & (c | d)))) | 0;
      case 7:
        t1 = (a + ((f >>> 6 | f << 26) ^ (f >>> 11 | f << 21) ^ (f >>> 25 | f << 7)) + (h ^ (f & (g ^ h))) + K[7] + w7) | 0;
        e = (e + t1) | 0;
        a = (t1 + ((b >>> 2 | b << 30) ^ (b >>> 13 | b << 19) ^ (b >>> 22 | b << 10)) + ((b & c) | (d & (b | c)))) | 0;
      case 8:
        t1 = (h + ((e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7)) + (g ^ (e & (f ^ g))) + K[8] + w8) | 0;
        d = (d + t1) | 0;
        h = (t1 + ((a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10)) + ((a & b) | (c & (a | b)))) | 0;
      case 9:
        t1 = (g + ((d >>> 6 | d << 26) ^ (d >>> 11 | d << 21) ^ (d >>> 25 | d << 7)) + (f ^ (d & (e ^ f))) + K[9] + w9) | 0;
        c = (c + t1) | 0;
        g = (t1 + ((h >>> 2 | h << 30) ^ (h >>> 13 | h << 19) ^ (h >>> 22 | h << 10)) + ((h & a) | (b & (h | a)))) | 0;
      case 10:
        t1 = (f + ((c >>> 6 | c << 26) ^ (c >>> 11 | c << 21) ^ (c >>> 25 | c << 7)) + (e ^ (c & (d ^ e))) + K[10] + w10) | 0;
        b = (b + t1) | 0;
        f = (t1 + ((g >>> 2 | g << 30) ^ (g >>> 13 | g << 19) ^ (g >>> 22 | g << 10)) + ((g & h) | (a & (g | h)))) | 0;
      case 11:
        t1 = (e + ((b >>> 6 | b << 26) ^ (b >>> 11 | b << 21) ^ (b >>> 25 | b << 7)) + (d ^ (b & (c ^ d))) + K[11] + w11) | 0;
        a = (a + t1) | 0;
        e = (t1 + ((f >>> 2 | f << 30) ^ (f >>> 13 | f << 19) ^ (f >>> 22 | f << 10)) + ((f & g) | (h & (f | g)))) | 0;
      case 12:
        t1 = (d + ((a >>> 6 | a << 26) ^ (a >>> 11 | a << 21) ^ (a >>> 25 | a << 7)) + (c ^ (a & (b ^ c))) + K[12] + w12) | 0;
        h = (h + t1) | 0;
        d = (t1 + ((e >>> 2 | e << 30) ^ (e >>> 13 | e << 19) ^ (e >>> 22 | e << 10)) + ((e & f) | (g & (e | f)))) | 0;
      case 13:
        t1 = (c + ((h >>> 6 | h << 26) ^ (h >>> 11 | h << 21) ^ (h >>> 25 | h << 7)) + (b ^ (h & (a ^ b))) + K[13] + w13) | 0;
        g = (g + t1) | 0;
        c = (t1 + ((d >>> 2 | d << 30) ^ (d >>> 13 | d << 19) ^ (d >>> 22 | d << 10)) + ((d & e) | (f & (d | e)))) | 0;
      case 14:
        t1 = (b + ((g >>> 6 | g << 26) ^ (g >>> 11 | g << 21) ^ (g >>> 25 | g << 7)) + (a ^ (g & (h ^ a))) + K[14] + w14) | 0;
        f = (f + t1) | 0;
        b = (t1 + ((c >>> 2 | c << 30) ^ (c >>> 13 | c << 19) ^ (c >>> 22 | c << 10)) + ((c & d) | (e & (c | d)))) | 0;
      case 15:
        t1 = (a + ((f >>> 6 | f << 26) ^ (f >>> 11 | f << 21) ^ (f >>> 25 | f << 7)) + (h ^ (f & (g ^ h))) + K[15] + w15) | 0;
        e = (e + t1) | 0;
        a = (t1 + ((b >>> 2 | b << 30) ^ (b >>> 13 | b << 19) ^ (b >>> 22 | b << 10)) + ((b & c) | (d & (b | c)))) | 0;
    }
    for (var t = 16; t < 64; t += 16) {
      w0 = ((w14 >>> 17 | w14 << 15) ^ (w14 >>> 19 | w14 << 13) ^ (w14 >>> 10)) + w9 +
        ((w1 >>> 7 | w1 << 25) ^ (w1 >>> 18 | w1 << 14) ^ (w1 >>> 3)) + w0 | 0;
      t1 = (h + ((e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7)) + (g ^ (e & (f ^ g))) + K[t + 0] + w0) | 0;
      d = (d + t1) | 0;
      h = (t1 + ((a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10)) + ((a & b) | (c & (a | b)))) | 0;
      w1 = ((w15 >>> 17 | w15 << 15) ^ (w15 >>> 19 | w15 << 13) ^ (w15 >>> 10)) + w10 +
        ((w2 >>> 7 | w2 << 25) ^ (w2 >>> 18 | w2 << 14) ^ (w2 >>> 3)) + w1 | 0;
      t1 = (g + ((d >>> 6 | d << 26) ^ (d >>> 11 | d << 21) ^ (d >>> 25 | d << 7)) + (f ^ (d & (e ^ f))) + K[t + 1] + w1) | 0;
      c = (c + t1) | 0;
      g = (t1 + ((h >>> 2 | h << 30) ^ (h >>> 13 | h << 19) ^ (h >>> 22 | h << 10)) + ((h & a) | (b & (h | a)))) | 0;
      w2 = ((w0 >>> 17 | w0 << 15) ^ (w0 >>> 19 | w0 << 13) ^ (w0 >>> 10)) + w11 +
        ((w3 >>> 7 | w3 << 25) ^ (w3 >>> 18 | w3 << 14) ^ (w3 >>> 3)) + w2 | 0;
      t1 = (f + ((c >>> 6 | c << 26) ^ (c >>> 11 | c << 21) ^ (c >>> 25 | c << 7)) + (e ^ (c & (d ^ e))) + K[t + 2] + w2) | 0;
      b = (b + t1) | 0;
      f = (t1 + ((g >>> 2 | g << 30) ^ (g >>> 13 | g << 19) ^ (g >>> 22 | g << 10)) + ((g & h) | (a & (g | h)))) | 0;
      w3 = ((w1 >>> 17 | w1 << 15) ^ (w1 >>> 19 | w1 << 13) ^ (w1 >>> 10)) + w12 +
        ((w4 >>> 7 | w4 << 25) ^ (w4 >>> 18 | w4 << 14) ^ (w4 >>> 3)) + w3 | 0;
      t1 = (e + ((b >>> 6 | b << 26) ^ (b >>> 11 | b << 21) ^ (b >>> 25 | b << 7)) + (d ^ (b & (c ^ d))) + K[t + 3] + w3) | 0;
      a = (a + t1) | 0;
      e = (t1 + ((f >>> 2 | f << 30) ^ (f >>> 13 | f << 19) ^ (f >>> 22 | f << 10)) + ((f & g) | (h & (f | g)))) | 0;
      w4 = ((w2 >>> 17 | w2 << 15) ^ (w2 >>> 19 | w2 << 13) ^ (w2 >>> 10)) + w13 +
        ((w5 >>> 7 | w5 << 25) ^ (w5 >>> 18 | w5 << 14) ^ (w5 >>> 3)) + w4 | 0;
      t1 = (d + ((a >>> 6 | a << 26) ^ (a >>> 11 | a << 21) ^ (a >>> 25 | a << 7)) + (c ^ (a & (b ^ c))) + K[t + 4] + w4) | 0;
      h = (h + t1) | 0;
      d = (t1 + ((e >>> 2 | e << 30) ^ (e >>> 13 | e << 19) ^ (e >>> 22 | e << 10)) + ((e & f) | (g & (e | f)))) | 0;
      w5 = ((w3 >>> 17 | w3 << 15) ^ (w3 >>> 19 | w3 << 13) ^ (w3 >>> 10)) + w14 +
        ((w6 >>> 7 | w6 << 25) ^ (w6 >>> 18 | w6 << 14) ^ (w6 >>> 3)) + w5 | 0;
      t1 = (c + ((h >>> 6 | h << 26) ^ (h >>> 11 | h << 21) ^ (h >>> 25 | h << 7)) + (b ^ (h & (a ^ b))) + K[t + 5] + w5) | 0;
      g = (g + t1) | 0;
      c = (t1 + ((d >>> 2 | d << 30) ^ (d >>> 13 | d << 19) ^ (d >>> 22 | d << 10)) + ((d & e) | (f & (d | e)))) | 0;
      w6 = ((w4 >>> 17 | w4 << 15) ^ (w4 >>> 19 | w4 << 13) ^ (w4 >>> 10)) + w15 +
        ((w7 >>> 7 | w7 << 25) ^ (w7 >>> 18 | w7 << 14) ^ (w7 >>> 3)) + w6 | 0;
      t1 = (b + ((g >>> 6 | g << 26) ^ (g >>> 11 | g << 21) ^ (g >>> 25 | g << 7)) + (a ^ (g & (h ^ a))) + K[t + 6] + w6) | 0;
      f = (f + t1) | 0;
      b = (t1 + ((c >>> 2 | c << 30) ^ (c >>> 13 | c << 19) ^ (c >>> 22 | c << 10)) + ((c & d) | (e & (c | d)))) | 0;
      w7 = ((w5 >>> 17 | w5 << 15) ^ (w5 >>> 19 | w5 << 13) ^ (w5 >>> 10)) + w0 +
        ((w8 >>> 7 | w8 << 25) ^ (w8 >>> 18 | w8 << 14) ^ (w8 >>> 3)) + w7 | 0;
      t1 = (a + ((f >>> 6 | f << 26) ^ (f >>> 11 | f << 21) ^ (f >>> 25 | f << 7)) + (h ^ (f & (g ^ h))) + K[t + 7] + w7) | 0;
      e = (e + t1) | 0;
      a = (t1 + ((b >>> 2 | b << 30) ^ (b >>> 13 | b << 19) ^ (b >>> 22 | b << 10)) + ((b & c) | (d & (b | c)))) | 0;
      w8 = ((w6 >>> 17 | w6 << 15) ^ (w6 >>> 19 | w6 << 13) ^ (w6 >>> 10)) + w1 +
        ((w9 >>> 7 | w9 << 25) ^ (w9 >>> 18 | w9 << 14) ^ (w9 >>> 3)) + w8 | 0;
      t1 = (h + ((e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7)) + (g ^ (e & (f ^ g))) + K[t + 8] + w8) | 0;
      d = (d + t1) | 0;
      h = (t1 + ((a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10)) + ((a & b) | (c & (a | b)))) | 0;
      w9 = ((w7 >>> 17 | w7 << 15) ^ (w7 >>> 19 | w7 << 13) ^ (w7 >>> 10)) + w2 +
        ((w10 >>> 7 | w10 << 25) ^ (w10 >>> 18 | w10 << 14) ^ (w10 >>> 3)) + w9 | 0;
      t1 = (g + ((d >>> 6 | d << 26) ^ (d >>> 11 | d << 21) ^ (d >>> 25 | d << 7)) + (f ^ (d & (e ^ f))) + K[t + 9] + w9) | 0;
      c = (c + t1) | 0;
      g = (t1 + ((h >>> 2 | h << 30) ^ (h >>> 13 | h << 19) ^ (h >>> 22 | h << 10)) + ((h & a) | (b & (h | a)))) | 0;
      w10 = ((w8 >>> 17 | w8 << 15) ^ (w8 >>> 19 | w8 << 13) ^ (w8 >>> 10)) + w3 +
        ((w11 >>> 7 | w11 << 25) ^ (w11 >>> 18 | w11 << 14) ^ (w11 >>> 3)) + w10 | 0;
      t1 = (f + ((c >>> 6 | c << 26) ^ (c >>> 11 | c << 21) ^ (c >>> 25 | c << 7)) + (e ^ (c & (d ^ e))) + K[t + 10] + w10) | 0;
      b = (b + t1) | 0;
      f = (t1 + ((g >>> 2 | g << 30) ^ (g >>> 13 | g << 19) ^ (g >>> 22 | g << 10)) + ((g & h) | (a & (g | h)))) | 0;
      w11 = ((w9 >>> 17 | w9 << 15) ^ (w9 >>> 19 | w9 << 13) ^ (w9 >>> 10)) + w4 +
        ((w12 >>> 7 | w12 << 25) ^ (w12 >>> 18 | w12 << 14) ^ (w12 >>> 3)) + w11 | 0;
      t1 = (e + ((b >>> 6 | b << 26) ^ (b >>> 11 | b << 21) ^ (b >>> 25 | b << 7)) + (d ^ (b & (c ^ d))) + K[t + 11] + w11) | 0;
      a = (a + t1) | 0;
      e = (t1 + ((f >>> 2 | f << 30) ^ (f >>> 13 | f << 19) ^ (f >>> 22 | f << 10)) + ((f & g) | (h & (f | g)))) | 0;
      w12 = ((w10 >>> 17 | w10 << 15) ^ (w10 >>> 19 | w10 << 13) ^ (w10 >>> 10)) + w5 +
        ((w13 >>> 7 | w13 << 25) ^ (w13 >>> 18 | w13 << 14) ^ (w13 >>> 3)) + w12 | 0;
      t1 = (d + ((a >>> 6 | a << 26) ^ (a >>> 11 | a << 21) ^ (a >>> 25 | a << 7)) + (c ^ (a & (b ^ c))) + K[t + 12] + w12) | 0;
      h = (h + t1) | 0;
      d = (t1 + ((e >>> 2 | e << 30) ^ (e >>> 13 | e << 19) ^ (e >>> 22 | e << 10)) + ((e & f) | (g & (e | f)))) | 0;
      w13 = ((w11 >>> 17 | w11 << 15) ^ (w11 >>> 19 | w11 << 13) ^ (w11 >>> 10)) + w6 +
        ((w14 >>> 7 | w14 << 25) ^ (w14 >>> 18 | w14 << 14) ^ (w14 >>> 3)) + w13 | 0;
      t1 = (c + ((h >>> 6 | h << 26) ^ (h >>> 11 | h << 21) ^ (h >>> 25 | h << 7)) + (b ^ (h & (a ^ b))) + K[t + 13] + w13) | 0;
      g = (g + t1) | 0;
      c = (t1 + ((d >>> 2 | d << 30) ^ (d >>> 13 | d << 19) ^ (d >>> 22 | d << 10)) + ((d & e) | (f & (d | e)))) | 0;
      w14 = ((w12 >>> 17 | w12 << 15) ^ (w12 >>> 19 | w12 << 13) ^ (w12 >>> 10)) + w7 +
        ((w15 >>> 7 | w15 << 25) ^ (w15 >>> 18 | w15 << 14) ^ (w15 >>> 3)) + w14 | 0;
      t1 = (b + ((g >>> 6 | g << 26) ^ (g >>> 11 | g << 21) ^ (g >>> 25 | g << 7)) + (a ^ (g & (h ^ a))) + K[t + 14] + w14) | 0;
      f = (f + t1) | 0;
      b = (t1 + ((c >>> 2 | c << 30) ^ (c >>> 13 | c << 19) ^ (c >>> 22 | c << 10)) + ((c & d) | (e & (c | d)))) | 0;
      w15 = ((w13 >>> 17 | w13 << 15) ^ (w13 >>> 19 | w13 << 13) ^ (w13 >>> 10)) + w8 +
        ((w0 >>> 7 | w0 << 25) ^ (w0 >>> 18 | w0 << 14) ^ (w0 >>> 3)) + w15 | 0;
      t1 = (a + ((f >>> 6 | f << 26) ^ (f >>> 11 | f << 21) ^ (f >>> 25 | f << 7)) + (h ^ (f & (g ^ h))) + K[t + 15] + w15) | 0;
      e = (e + t1) | 0;
      a = (t1 + ((b >>> 2 | b << 30) ^ (b >>> 13 | b << 19) ^ (b >>> 22 | b << 10)) + ((b & c) | (d & (b | c)))) | 0;
    }
    out[0] = (H[0] + a) | 0;
    out[1] = (H[1] + b) | 0;
    out[2] = (H[2] + c) | 0;
    out[3] = (H[3] + d) | 0;
    out[4] = (H[4] + e) | 0;
    out[5] = (H[5] + f) | 0;
    out[6] = (H[6] + g) | 0;
    out[7] = (H[7] + h) | 0;
  }

  /* A compression whose whole schedule is known in advance: kw[t] = K[t] + W[t] (see schedule()). */
  function compressScheduled(H, kw, out) {
    var a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
    var t1;
    for (var t = 0; t < 64; t += 8) {
      t1 = (h + ((e >>> 6 | e << 26) ^ (e >>> 11 | e << 21) ^ (e >>> 25 | e << 7)) + (g ^ (e & (f ^ g))) + kw[t + 0]) | 0;
      d = (d + t1) | 0;
      h = (t1 + ((a >>> 2 | a << 30) ^ (a >>> 13 | a << 19) ^ (a >>> 22 | a << 10)) + ((a & b) | (c & (a | b)))) | 0;
      t1 = (g + ((d >>> 6 | d << 26) ^ (d >>> 11 | d << 21) ^ (d >>> 25 | d << 7)) + (f ^ (d & (e ^ f))) + kw[t + 1]) | 0;
      c = (c + t1) | 0;
      g = (t1 + ((h >>> 2 | h << 30) ^ (h >>> 13 | h << 19) ^ (h >>> 22 | h << 10)) + ((h & a) | (b & (h | a)))) | 0;
      t1 = (f + ((c >>> 6 | c << 26) ^ (c >>> 11 | c << 21) ^ (c >>> 25 | c << 7)) + (e ^ (c & (d ^ e))) + kw[t + 2]) | 0;
      b = (b + t1) | 0;
      f = (t1 + ((g >>> 2 | g << 30) ^ (g >>> 13 | g << 19) ^ (g >>> 22 | g << 10)) + ((g & h) | (a & (g | h)))) | 0;
      t1 = (e + ((b >>> 6 | b << 26) ^ (b >>> 11 | b << 21) ^ (b >>> 25 | b << 7)) + (d ^ (b & (c ^ d))) + kw[t + 3]) | 0;
      a = (a + t1) | 0;
      e = (t1 + ((f >>> 2 | f << 30) ^ (f >>> 13 | f << 19) ^ (f >>> 22 | f << 10)) + ((f & g) | (h & (f | g)))) | 0;
      t1 = (d + ((a >>> 6 | a << 26) ^ (a >>> 11 | a << 21) ^ (a >>> 25 | a << 7)) + (c ^ (a & (b ^ c))) + kw[t + 4]) | 0;
      h = (h + t1) | 0;
      d = (t1 + ((e >>> 2 | e << 30) ^ (e >>> 13 | e << 19) ^ (e >>> 22 | e << 10)) + ((e & f) | (g & (e | f)))) | 0;
      t1 = (c + ((h >>> 6 | h << 26) ^ (h >>> 11 | h << 21) ^ (h >>> 25 | h << 7)) + (b ^ (h & (a ^ b))) + kw[t + 5]) | 0;
      g = (g + t1) | 0;
      c = (t1 + ((d >>> 2 | d << 30) ^ (d >>> 13 | d << 19) ^ (d >>> 22 | d << 10)) + ((d & e) | (f & (d | e)))) | 0;
      t1 = (b + ((g >>> 6 | g << 26) ^ (g >>> 11 | g << 21) ^ (g >>> 25 | g << 7)) + (a ^ (g & (h ^ a))) + kw[t + 6]) | 0;
      f = (f + t1) | 0;
      b = (t1 + ((c >>> 2 | c << 30) ^ (c >>> 13 | c << 19) ^ (c >>> 22 | c << 10)) + ((c & d) | (e & (c | d)))) | 0;
      t1 = (a + ((f >>> 6 | f << 26) ^ (f >>> 11 | f << 21) ^ (f >>> 25 | f << 7)) + (h ^ (f & (g ^ h))) + kw[t + 7]) | 0;
      e = (e + t1) | 0;
      a = (t1 + ((b >>> 2 | b << 30) ^ (b >>> 13 | b << 19) ^ (b >>> 22 | b << 10)) + ((b & c) | (d & (b | c)))) | 0;
    }
    out[0] = (H[0] + a) | 0;
    out[1] = (H[1] + b) | 0;
    out[2] = (H[2] + c) | 0;
    out[3] = (H[3] + d) | 0;
    out[4] = (H[4] + e) | 0;
    out[5] = (H[5] + f) | 0;
    out[6] = (H[6] + g) | 0;
    out[7] = (H[7] + h) | 0;
  }

  /* K[t] + W[t] for the 64 rounds of the block M[off .. off + 15], into kw. */
  function schedule(M, off, kw) {
    var w = new Int32Array(64);
    for (var t = 0; t < 64; t++) {
      w[t] = t < 16 ? M[off + t] : (s1(w[t - 2]) + w[t - 7] + s0(w[t - 15]) + w[t - 16]) | 0;
      kw[t] = (K[t] + w[t]) | 0;
    }
  }

  /* The working variables a..h (in order) after rounds 0 .. count - 1 of the block M[off ..] from H.
   * The textbook loop: it runs once per layout, not per hash. */
  function firstRounds(H, M, off, count, out) {
    var a = H[0], b = H[1], c = H[2], d = H[3], e = H[4], f = H[5], g = H[6], h = H[7];
    for (var t = 0; t < count; t++) {
      var t1 = (h + S1(e) + ch(e, f, g) + K[t] + M[off + t]) | 0;
      var t2 = (S0(a) + maj(a, b, c)) | 0;
      h = g;
      g = f;
      f = e;
      e = (d + t1) | 0;
      d = c;
      c = b;
      b = a;
      a = (t1 + t2) | 0;
    }
    out[0] = a; out[1] = b; out[2] = c; out[3] = d; out[4] = e; out[5] = f; out[6] = g; out[7] = h;
  }

  /* The UTF-8 bytes of a string (tokens are ASCII, but be exact anyway). */
  function utf8(text) {
    var bytes = [];
    for (var i = 0; i < text.length; i++) {
      var c = text.codePointAt(i);
      if (c > 0xffff) i++; // the second half of a surrogate pair
      if (c < 0x80) bytes.push(c);
      else if (c < 0x800) bytes.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) bytes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else bytes.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return new Uint8Array(bytes);
  }

  /* Packs bytes into big-endian words: the words holding byte offsets from .. to. */
  function pack(bytes, words, from, to) {
    for (var i = from >> 2, last = to >> 2; i <= last; i++) {
      var p = i << 2;
      words[i] = (bytes[p] << 24) | (bytes[p + 1] << 16) | (bytes[p + 2] << 8) | bytes[p + 3];
    }
  }

  /* Writes the message length in bits as the last 8 bytes of bytes[0 .. end - 1]. */
  function putLength(bytes, end, length) {
    var bits = length * 8;
    bytes[end - 5] = Math.floor(bits / 0x100000000) & 0xff; // messages under 2^40 bytes: plenty
    bytes[end - 4] = bits >>> 24;
    bytes[end - 3] = (bits >>> 16) & 0xff;
    bytes[end - 2] = (bits >>> 8) & 0xff;
    bytes[end - 1] = bits & 0xff;
  }

  /* Plain SHA-256 of a string (as UTF-8) or bytes, as hex: for tests and for checking the search. */
  function sha256Hex(input) {
    var bytes = typeof input === "string" ? utf8(input) : input;
    var total = ((bytes.length + 9 + 63) >> 6) << 6;
    var padded = new Uint8Array(total);
    padded.set(bytes);
    padded[bytes.length] = 0x80;
    putLength(padded, total, bytes.length);
    var words = new Int32Array(total >> 2);
    pack(padded, words, 0, total - 1);
    var H = new Int32Array(INITIAL);
    for (var off = 0; off < words.length; off += 16) compress(H, H, words, off, 0, H);
    var hex = "";
    for (var i = 0; i < 8; i++) hex += ("0000000" + (H[i] >>> 0).toString(16)).slice(-8);
    return hex;
  }

  /* A search over the nonces start, start + step, start + 2 * step, ... for one token and difficulty. */
  function Search(token, difficulty, start, step) {
    var bytes = utf8(String(token));
    var full = bytes.length >> 6; // whole 64-byte blocks of the token: hashed once, here
    var words = new Int32Array(16);
    this.midstate = new Int32Array(INITIAL);
    for (var block = 0; block < full; block++) {
      pack(bytes.subarray(block << 6, (block + 1) << 6), words, 0, 63);
      compress(this.midstate, this.midstate, words, 0, 0, this.midstate);
    }
    this.rest = bytes.subarray(full << 6); // the 0..63 token bytes that start the tail
    this.tokenLength = bytes.length;
    // The first word of the digest must have its top `difficulty` bits clear. (-1 << 32 would be -1 << 0.)
    this.mask = difficulty <= 0 ? 0 : difficulty >= 32 ? -1 : -1 << (32 - difficulty);
    this.step = step;
    this.nonce = start; // a Number: exact up to 2^53
    this.hashes = 0;
    this.found = null; // the winning nonce as a decimal string
    this.tail = new Uint8Array(128); // the last one or two blocks, as bytes ...
    this.tailWords = new Int32Array(32); // ... and as words
    this.pre = new Int32Array(8); // working variables after the nonce-independent rounds of the first tail block
    this.second = new Int32Array(64); // K + W of a constant second tail block
    this.state = new Int32Array(8);
    this.layout(String(start));
  }

  /* Lays the tail out for a nonce with digits.length digits: the rest of the token, the digits, the 0x80 byte,
   * zeros and the message length in bits. Runs at the start and whenever the nonce gains a digit. */
  Search.prototype.layout = function (digits) {
    var rest = this.rest.length;
    var tail = this.tail;
    tail.fill(0);
    tail.set(this.rest);
    for (var i = 0; i < digits.length; i++) tail[rest + i] = digits.charCodeAt(i);
    tail[rest + digits.length] = 0x80;
    this.blocks = rest + digits.length + 9 <= 64 ? 1 : 2;
    var end = this.blocks << 6;
    putLength(tail, end, this.tokenLength + digits.length);
    pack(tail, this.tailWords, 0, end - 1);
    this.first = rest; // offset of the most significant digit
    this.last = rest + digits.length - 1; // offset of the least significant digit
    // Rounds 0 .. skip - 1 of the first tail block read words made of token bytes only.
    this.skip = rest >> 2;
    firstRounds(this.midstate, this.tailWords, 0, this.skip, this.pre);
    this.constantSecond = this.blocks === 2 && this.last < 64;
    if (this.constantSecond) schedule(this.tailWords, 16, this.second);
  };

  /* Tries up to `limit` nonces. Returns true when one is found (then this.found holds it as a string). */
  Search.prototype.run = function (limit) {
    var tail = this.tail;
    var tailWords = this.tailWords;
    var midstate = this.midstate;
    var pre = this.pre;
    var state = this.state;
    var second = this.second;
    var mask = this.mask;
    var step = this.step;
    var nonce = this.nonce;
    var skip = this.skip; // these three change only with the layout
    var blocks = this.blocks;
    var constantSecond = this.constantSecond;
    var n = 0;
    while (n < limit) {
      compress(midstate, pre, tailWords, 0, skip, state);
      if (blocks === 2) {
        if (constantSecond) compressScheduled(state, second, state);
        else compress(state, state, tailWords, 16, 0, state);
      }
      n++;
      if ((state[0] & mask) === 0) {
        this.found = String(nonce);
        break;
      }
      // The next nonce: add step to the ASCII digits in place, from the least significant one.
      nonce += step;
      var first = this.first;
      var last = this.last;
      var p = last;
      var carry = step;
      while (carry > 0 && p >= first) {
        var digit = tail[p] - 48 + carry;
        var low = digit % 10;
        tail[p] = 48 + low;
        carry = (digit - low) / 10;
        p--;
      }
      if (carry > 0) {
        // One digit more: a new layout (perhaps with a second block).
        if (nonce > 9007199254740991) throw new Error("nonce space exhausted");
        this.layout(String(nonce));
        skip = this.skip;
        blocks = this.blocks;
        constantSecond = this.constantSecond;
      } else {
        pack(tail, tailWords, p + 1, last); // only the words whose digits changed
      }
    }
    this.nonce = nonce;
    this.hashes += n;
    return this.found !== null;
  };

  return { Search: Search, sha256Hex: sha256Hex };
})();

// In a worker: search when told to, until found (solver.js then terminates every worker). On the main thread
// (the fallback), this file only defines GateWork.
if (typeof WorkerGlobalScope !== "undefined" && self instanceof WorkerGlobalScope) {
  self.onmessage = function (event) {
    var job = event.data;
    var search = new GateWork.Search(job.token, job.difficulty, job.start, job.step);
    while (!search.run(50000)) self.postMessage({ type: "progress", hashes: search.hashes });
    self.postMessage({ type: "found", nonce: search.found, hashes: search.hashes });
  };
}
