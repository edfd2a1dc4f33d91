//! Deterministic mutations for the bounded corpus test (no clock, no OS randomness).

/// A seeded xorshift generator that derives mutated inputs from seeds.
pub struct Mutator {
    state: u64,
}

/// Byte values that often sit on a parser's edges.
const INTERESTING: [u8; 16] = [
    0x00, 0x01, 0x7f, 0x80, 0xff, b'\n', b'"', b'{', b'}', b'[', b']', b':', b',', b'\\', b'.',
    b'=',
];

impl Mutator {
    /// A generator whose sequence depends only on `seed`.
    pub fn new(seed: u64) -> Mutator {
        Mutator {
            state: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        }
    }

    fn next(&mut self) -> u64 {
        let mut x = self.state;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.state = x;
        x
    }

    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }

    /// A mutation of `input` (1 to 4 edits), sometimes spliced with `other`.
    pub fn mutate(&mut self, input: &[u8], other: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        let edits = 1 + self.below(4);
        for _ in 0..edits {
            let len = out.len();
            match self.below(8) {
                0 if len > 0 => {
                    let i = self.below(len);
                    out[i] ^= 1 << self.below(8);
                }
                1 if len > 0 => {
                    let i = self.below(len);
                    out[i] = INTERESTING[self.below(INTERESTING.len())];
                }
                2 => {
                    let i = self.below(len + 1);
                    out.insert(i, INTERESTING[self.below(INTERESTING.len())]);
                }
                3 if len > 0 => {
                    let i = self.below(len);
                    let n = 1 + self.below((len - i).min(16));
                    out.drain(i..i + n);
                }
                4 if len > 0 => {
                    // Duplicate a chunk (repeated fields, nesting, batches).
                    let i = self.below(len);
                    let n = 1 + self.below((len - i).min(64));
                    let chunk = out[i..i + n].to_vec();
                    let at = self.below(len + 1);
                    out.splice(at..at, chunk);
                }
                5 if len > 0 => {
                    out.truncate(self.below(len));
                }
                6 if !other.is_empty() => {
                    let cut = self.below(len + 1);
                    let from = self.below(other.len());
                    out.truncate(cut);
                    out.extend_from_slice(&other[from..]);
                }
                _ => {
                    let i = self.below(len + 1);
                    out.insert(i, self.next() as u8);
                }
            }
        }
        out
    }
}
