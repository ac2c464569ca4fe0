//! Positions in a room's timeline. Events placed as they arrive take the global stream
//! count, which `/sync` tokens also use; events fetched from before the oldest one held
//! (backfill) take negative positions, counting down, so that one ordered scan of a room's
//! timeline runs from its oldest backfilled event to its newest. `/sync` never reports a
//! backfilled event: it is not new.

use crate::error::{Error, Result};
use crate::storage::codec::KeyPart;

/// A timeline position: the stream count of an event placed live, or below zero one placed
/// by backfill.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PduCount(i64);

impl PduCount {
    pub const MIN: Self = Self(i64::MIN + 1);
    pub const MAX: Self = Self(i64::MAX);

    /// The position of an event placed live, at stream count `stream`.
    pub fn normal(stream: u64) -> Self {
        Self(i64::try_from(stream).unwrap_or(i64::MAX))
    }

    /// The `n`-th position below zero (`n` ≥ 1).
    pub fn backfilled(n: u64) -> Self {
        Self(-i64::try_from(n.max(1)).unwrap_or(i64::MAX))
    }

    /// The stream count of a live event; `None` for a backfilled one.
    pub fn stream(self) -> Option<u64> {
        u64::try_from(self.0).ok()
    }

    pub fn is_backfilled(self) -> bool {
        self.0 < 0
    }

    /// The next position up (saturating).
    pub fn next(self) -> Self {
        Self(self.0.saturating_add(1))
    }

    /// The next position down (saturating at [`Self::MIN`]).
    pub fn prev(self) -> Self {
        Self(self.0.saturating_sub(1).max(Self::MIN.0))
    }

    /// The position one further into backfill than this one (the oldest held).
    pub fn below(self) -> Self {
        if self.0 > 0 { Self(-1) } else { self.prev() }
    }

    /// As a pagination token: `t<n>`, negative for backfilled positions.
    pub fn token(self) -> String {
        format!("t{}", self.0)
    }

    /// Reads a position from a token's number.
    pub fn parse(text: &str) -> Option<Self> {
        let value: i64 = text.parse().ok()?;
        (value > i64::MIN).then_some(Self(value))
    }
}

impl std::fmt::Display for PduCount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Stored big-endian with the sign bit flipped, so that byte order is numeric order with
/// negative positions first. Positions stored before backfill existed (schema 5 and older)
/// were plain `u64`s; the migration to schema 6 set that bit on each.
impl<'a> KeyPart<'a> for PduCount {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&((self.0 as u64) ^ (1 << 63)).to_be_bytes());
    }

    fn take(input: &'a [u8]) -> Result<(Self, &'a [u8])> {
        let (raw, rest) = u64::take(input)?;
        let value = (raw ^ (1 << 63)) as i64;
        if value == i64::MIN {
            return Err(Error::Database("timeline position out of range".into()));
        }
        Ok((Self(value), rest))
    }
}

#[cfg(test)]
mod tests {
    use super::PduCount;
    use crate::storage::Key;

    #[test]
    fn backfilled_positions_sort_before_live_ones() {
        let positions = [
            PduCount::backfilled(5),
            PduCount::backfilled(1),
            PduCount::normal(0),
            PduCount::normal(7),
            PduCount::normal(1 << 40),
        ];
        let keys: Vec<Vec<u8>> = positions.iter().map(|p| (9u64, *p).encode()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(keys, sorted);
        for (key, position) in keys.iter().zip(positions) {
            assert_eq!(<(u64, PduCount)>::decode(key).unwrap().1, position);
        }
        assert_eq!(PduCount::normal(3).below(), PduCount::backfilled(1));
        assert_eq!(PduCount::backfilled(1).below(), PduCount::backfilled(2));
        assert_eq!(PduCount::parse("-4"), Some(PduCount::backfilled(4)));
        assert_eq!(PduCount::normal(12).stream(), Some(12));
        assert_eq!(PduCount::backfilled(2).stream(), None);
    }
}
