//! Typed key codec.
//!
//! Keys are tuples of parts separated by `0xFF`. `0xFF` never occurs in UTF-8, so string parts
//! need no escaping; integers are fixed-width big-endian so that byte order equals numeric order
//! and RocksDB iterates them in sequence. Decoding knows each part's type, so an integer that
//! happens to contain `0xFF` bytes is still read correctly.

use crate::error::{Error, Result};

/// Separator between key parts.
pub const SEP: u8 = 0xFF;

/// One part of a key.
pub trait KeyPart<'a>: Sized {
    fn put(&self, out: &mut Vec<u8>);
    /// Reads this part from the front of `input`, returning the rest (still starting with the
    /// separator if more parts follow).
    fn take(input: &'a [u8]) -> Result<(Self, &'a [u8])>;
}

impl<'a> KeyPart<'a> for &'a str {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn take(input: &'a [u8]) -> Result<(Self, &'a [u8])> {
        let end = input.iter().position(|&b| b == SEP).unwrap_or(input.len());
        let part = std::str::from_utf8(&input[..end])
            .map_err(|_| Error::Database("key part is not UTF-8".into()))?;
        Ok((part, &input[end..]))
    }
}

impl<'a> KeyPart<'a> for String {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.as_bytes());
    }

    fn take(input: &'a [u8]) -> Result<(Self, &'a [u8])> {
        <&str>::take(input).map(|(s, rest)| (s.to_owned(), rest))
    }
}

impl<'a> KeyPart<'a> for u64 {
    fn put(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_be_bytes());
    }

    fn take(input: &'a [u8]) -> Result<(Self, &'a [u8])> {
        if input.len() < 8 {
            return Err(Error::Database("key too short for an integer part".into()));
        }
        let (head, rest) = input.split_at(8);
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(head);
        Ok((u64::from_be_bytes(bytes), rest))
    }
}

/// Matrix identifiers are string parts validated on the way out, so a decoded key yields typed
/// IDs and a corrupt one an error rather than a panic.
macro_rules! id_part {
    ($($owned:ty),*) => {$(
        impl<'a> KeyPart<'a> for $owned {
            fn put(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(self.as_str().as_bytes());
            }

            fn take(input: &'a [u8]) -> Result<(Self, &'a [u8])> {
                let (text, rest) = <&str>::take(input)?;
                let id = <$owned>::try_from(text)
                    .map_err(|e| Error::Database(format!("stored identifier {text:?} invalid: {e}")))?;
                Ok((id, rest))
            }
        }
    )*};
}

id_part!(
    ruma::OwnedEventId,
    ruma::OwnedRoomId,
    ruma::OwnedUserId,
    ruma::OwnedRoomAliasId
);

/// Decodes a stored identifier (a whole value or key).
pub fn decode_id<'a, T: KeyPart<'a>>(bytes: &'a [u8]) -> Result<T> {
    let ((id,),) = (<(T,)>::decode(bytes)?,);
    Ok(id)
}

/// A whole key: a tuple of parts.
pub trait Key<'a>: Sized {
    fn encode_into(&self, out: &mut Vec<u8>);
    fn decode(input: &'a [u8]) -> Result<Self>;

    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64);
        self.encode_into(&mut out);
        out
    }

    /// The key followed by a separator: scanning this prefix finds keys that extend this tuple
    /// by more parts, and never keys whose last part merely starts with the same bytes
    /// (`@al` must not match `@alice`).
    fn prefix(&self) -> Vec<u8> {
        let mut out = self.encode();
        out.push(SEP);
        out
    }
}

fn expect_sep(rest: &[u8]) -> Result<&[u8]> {
    match rest.split_first() {
        Some((&SEP, rest)) => Ok(rest),
        _ => Err(Error::Database("key part separator missing".into())),
    }
}

macro_rules! tuple_key {
    ($first:ident $(, $name:ident)*) => {
        impl<'a, $first: KeyPart<'a> $(, $name: KeyPart<'a>)*> Key<'a> for ($first, $($name,)*) {
            #[allow(non_snake_case)]
            fn encode_into(&self, out: &mut Vec<u8>) {
                let ($first, $($name,)*) = self;
                $first.put(out);
                $( out.push(SEP); $name.put(out); )*
            }

            #[allow(non_snake_case)]
            fn decode(input: &'a [u8]) -> Result<Self> {
                let ($first, rest) = $first::take(input)?;
                $( let rest = expect_sep(rest)?; let ($name, rest) = $name::take(rest)?; )*
                if !rest.is_empty() {
                    return Err(Error::Database("trailing bytes after key".into()));
                }
                Ok(($first, $($name,)*))
            }
        }
    };
}

tuple_key!(A);
tuple_key!(A, B);
tuple_key!(A, B, C);
tuple_key!(A, B, C, D);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_mixed_parts() {
        let key = ("@alice:example.org", u64::MAX - 1, "m.room.member");
        let bytes = key.encode();
        let decoded: (&str, u64, &str) = Key::decode(&bytes).unwrap();
        assert_eq!(decoded, key);
    }

    #[test]
    fn integers_sort_numerically() {
        assert!((1u64,).encode() < (256u64,).encode());
        assert!(("a", 2u64).encode() < ("a", 10u64).encode());
    }

    #[test]
    fn prefix_does_not_match_longer_part() {
        let prefix = ("@al",).prefix();
        assert!(!("@alice", "DEV").encode().starts_with(&prefix));
        assert!(("@al", "DEV").encode().starts_with(&prefix));
    }

    #[test]
    fn rejects_malformed() {
        assert!(<(&str, u64)>::decode(b"abc").is_err());
        assert!(<(&str,)>::decode(b"a\xFFb").is_err());
    }
}
