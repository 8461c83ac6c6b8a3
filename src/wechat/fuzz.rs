//! Shared pieces of the parser property tests (the `fuzz_tests` modules beside the OA and WeChat
//! Pay parsers): how many cases a run tries, and byte-level mutations of valid inputs.
//!
//! Each property runs a fixed number of cases so that `cargo test` stays fast in CI;
//! `LINLI_FUZZ_CASES=<n>` raises every property to `n` cases for a longer local campaign.

use proptest::prelude::*;

/// The proptest configuration of one parser property: `default_cases`, or `LINLI_FUZZ_CASES`.
pub fn config(default_cases: u32) -> ProptestConfig {
    let cases = std::env::var("LINLI_FUZZ_CASES").ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default_cases);
    ProptestConfig { cases, ..ProptestConfig::default() }
}

/// A change to a valid input, applied byte-wise (positions are taken modulo the input's length).
#[derive(Clone, Debug)]
pub enum ByteMutation {
    /// XOR one byte with a non-zero mask.
    Flip { at: usize, mask: u8 },
    /// Keep only a strict prefix.
    Truncate { at: usize },
    /// Insert bytes before a position.
    Insert { at: usize, bytes: Vec<u8> },
    /// Remove up to `len` bytes from a position.
    Remove { at: usize, len: usize },
    /// Repeat up to `len` bytes starting at a position, right after themselves.
    Duplicate { at: usize, len: usize },
}

impl ByteMutation {
    /// Applies the mutation; an empty input only grows by insertion.
    pub fn apply(&self, input: &[u8]) -> Vec<u8> {
        let mut out = input.to_vec();
        if out.is_empty() {
            if let ByteMutation::Insert { bytes, .. } = self {
                out.extend_from_slice(bytes);
            }
            return out;
        }
        match self {
            ByteMutation::Flip { at, mask } => {
                let i = at % out.len();
                out[i] ^= mask;
            }
            ByteMutation::Truncate { at } => out.truncate(at % out.len()),
            ByteMutation::Insert { at, bytes } => {
                let i = at % (out.len() + 1);
                out.splice(i..i, bytes.iter().copied());
            }
            ByteMutation::Remove { at, len } => {
                let i = at % out.len();
                let end = (i + len).min(out.len());
                out.drain(i..end);
            }
            ByteMutation::Duplicate { at, len } => {
                let i = at % out.len();
                let end = (i + len).min(out.len());
                let copy = out[i..end].to_vec();
                out.splice(end..end, copy);
            }
        }
        out
    }
}

/// Any [`ByteMutation`]; inserted bytes are either random or `tokens` (the input format's syntax).
pub fn byte_mutation(tokens: &'static [&'static str]) -> impl Strategy<Value = ByteMutation> {
    let inserted = prop_oneof![
        proptest::collection::vec(any::<u8>(), 1..8),
        proptest::sample::select(tokens).prop_map(|t| t.as_bytes().to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), 1u8..=255).prop_map(|(at, mask)| ByteMutation::Flip { at, mask }),
        any::<usize>().prop_map(|at| ByteMutation::Truncate { at }),
        (any::<usize>(), inserted).prop_map(|(at, bytes)| ByteMutation::Insert { at, bytes }),
        (any::<usize>(), 1usize..16).prop_map(|(at, len)| ByteMutation::Remove { at, len }),
        (any::<usize>(), 1usize..32).prop_map(|(at, len)| ByteMutation::Duplicate { at, len }),
    ]
}

/// One to `max` mutations in a row.
pub fn byte_mutations(tokens: &'static [&'static str], max: usize) -> impl Strategy<Value = Vec<ByteMutation>> {
    proptest::collection::vec(byte_mutation(tokens), 1..=max)
}

/// Applies `mutations` in order.
pub fn mutate(input: &[u8], mutations: &[ByteMutation]) -> Vec<u8> {
    mutations.iter().fold(input.to_vec(), |bytes, m| m.apply(&bytes))
}

/// Characters XML 1.0 can carry (what WeChat can send in a value), without `\r`, which XML
/// processors may normalise.
pub fn xml_text(max_chars: usize) -> impl Strategy<Value = String> {
    proptest::collection::vec(
        prop_oneof![
            4 => proptest::char::range(' ', '~'),
            2 => proptest::sample::select(&['<', '>', '&', ']', '\'', '"', '\n', '\t', ' '][..]),
            2 => proptest::char::range('\u{4e00}', '\u{9fa5}'),
            1 => proptest::char::range('\u{e000}', '\u{fffd}'),
            1 => proptest::char::range('\u{10000}', '\u{1f9ff}'),
        ],
        0..=max_chars,
    )
    .prop_map(|chars| chars.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mutations_do_what_they_say() {
        let input = b"0123456789";
        assert_eq!(ByteMutation::Truncate { at: 0 }.apply(input), b"");
        assert_eq!(ByteMutation::Flip { at: 0, mask: 1 }.apply(input)[0], b'1');
        assert_eq!(ByteMutation::Remove { at: 0, len: 3 }.apply(input), b"3456789");
        assert_eq!(ByteMutation::Duplicate { at: 0, len: 2 }.apply(input), b"010123456789");
        assert_eq!(ByteMutation::Insert { at: 0, bytes: b"ab".to_vec() }.apply(input), b"ab0123456789");
        assert_eq!(ByteMutation::Insert { at: 0, bytes: b"ab".to_vec() }.apply(b""), b"ab");
        assert_eq!(ByteMutation::Remove { at: 0, len: 3 }.apply(b""), b"");
    }
}
