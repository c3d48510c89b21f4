//! 20-byte identifiers (SEMANTICS §1).
//!
//! Every ID is 20 bytes and prints as 40 lowercase hex characters. Random IDs
//! come from the thread-local CSPRNG of `rand` (ChaCha, seeded from the OS), so
//! two runtimes never produce equal IDs. The nil ID is 20 bytes of `0xff`.

use std::fmt;

use sha1::{Digest, Sha1};

use crate::error::{Error, Result};

/// Length in bytes of every ID.
pub const ID_LEN: usize = 20;

macro_rules! define_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name([u8; ID_LEN]);

        /// Hashes the first 8 bytes only: IDs are SHA-1 outputs or random, so
        /// those are already uniformly spread (and equal IDs hash equally).
        impl std::hash::Hash for $name {
            fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
                let mut first = [0u8; 8];
                first.copy_from_slice(&self.0[..8]);
                state.write_u64(u64::from_le_bytes(first));
            }
        }

        impl $name {
            /// The nil ID: 20 bytes of `0xff`.
            pub const NIL: Self = Self([0xff; ID_LEN]);

            /// Builds an ID from its 20 bytes.
            pub const fn from_bytes(bytes: [u8; ID_LEN]) -> Self {
                Self(bytes)
            }

            /// A fresh random ID from a CSPRNG (the thread's ChaCha generator).
            pub fn random() -> Self {
                // `fill_bytes` takes 20 bytes of the stream; `rand::random`
                // of an array would draw a word for each byte (4x the work).
                use rand::RngCore;
                let mut bytes = [0u8; ID_LEN];
                rand::rng().fill_bytes(&mut bytes);
                Self(bytes)
            }

            /// The ID's 20 bytes.
            pub fn as_bytes(&self) -> &[u8; ID_LEN] {
                &self.0
            }

            /// The ID as 40 lowercase hex characters.
            pub fn hex(&self) -> String {
                to_hex(&self.0)
            }

            /// Parses 40 hex characters (either case).
            pub fn from_hex(s: &str) -> Result<Self> {
                from_hex(s).map(Self).ok_or_else(|| {
                    Error::InvalidArgument(format!(
                        concat!("`{}` is not a valid ", stringify!($name), ": expected 40 hex characters"),
                        s
                    ))
                })
            }

            /// Whether this is the nil ID.
            pub fn is_nil(&self) -> bool {
                *self == Self::NIL
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.hex())
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self.hex())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.hex())
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
                if d.is_human_readable() {
                    d.deserialize_str(IdVisitor).map(Self)
                } else {
                    d.deserialize_bytes(IdVisitor).map(Self)
                }
            }
        }
    };
}

define_id!(
    /// Identifies an actor.
    ActorId
);
define_id!(
    /// Identifies one handle of an actor (the original handle is [`ActorHandleId::NIL`]).
    ActorHandleId
);
define_id!(
    /// Identifies a task: a method call, a remote function call, or the driver.
    TaskId
);
define_id!(
    /// Identifies an object (a value behind an [`ObjectRef`](crate::ObjectRef)).
    ObjectId
);
define_id!(
    /// Identifies a checkpoint.
    CheckpointId
);

impl ActorHandleId {
    /// The ID of the `num_forks`-th fork of `parent`:
    /// `sha1(parent (20 bytes) || decimal ASCII of num_forks)`.
    pub fn forked(parent: &ActorHandleId, num_forks: u64) -> ActorHandleId {
        let mut h = Sha1::new();
        h.update(parent.as_bytes());
        h.update(num_forks.to_string().as_bytes());
        ActorHandleId(h.finalize().into())
    }

    /// The ID a serialized handle takes when it is deserialized inside task
    /// `task`: `sha1(serialized (20 bytes) || task (20 bytes))`.
    pub fn deserialized(serialized: &ActorHandleId, task: &TaskId) -> ActorHandleId {
        let mut h = Sha1::new();
        h.update(serialized.as_bytes());
        h.update(task.as_bytes());
        ActorHandleId(h.finalize().into())
    }
}

impl ActorId {
    /// The ID of the named actor `name` in class `class`: `sha1("ray-named-actor:" || class || ":" || name)`.
    /// Stable across runs, so a restarted program finds its checkpoints.
    pub fn for_name(class: &str, name: &str) -> ActorId {
        let mut h = Sha1::new();
        h.update(b"ray-named-actor:");
        h.update(class.as_bytes());
        h.update(b":");
        h.update(name.as_bytes());
        ActorId(h.finalize().into())
    }
}

fn to_hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 0xf) as usize] as char);
    }
    s
}

fn from_hex(s: &str) -> Option<[u8; ID_LEN]> {
    let s = s.as_bytes();
    if s.len() != ID_LEN * 2 {
        return None;
    }
    let mut out = [0u8; ID_LEN];
    for (i, pair) in s.chunks(2).enumerate() {
        let hi = (pair[0] as char).to_digit(16)?;
        let lo = (pair[1] as char).to_digit(16)?;
        out[i] = (hi * 16 + lo) as u8;
    }
    Some(out)
}

struct IdVisitor;

impl<'de> serde::de::Visitor<'de> for IdVisitor {
    type Value = [u8; ID_LEN];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("20 bytes or 40 hex characters")
    }

    fn visit_str<E: serde::de::Error>(self, v: &str) -> std::result::Result<Self::Value, E> {
        from_hex(v).ok_or_else(|| E::custom(format!("`{v}` is not 40 hex characters")))
    }

    fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> std::result::Result<Self::Value, E> {
        v.try_into()
            .map_err(|_| E::invalid_length(v.len(), &"20 bytes"))
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self::Value, A::Error> {
        let mut out = [0u8; ID_LEN];
        for (i, b) in out.iter_mut().enumerate() {
            *b = seq
                .next_element()?
                .ok_or_else(|| serde::de::Error::invalid_length(i, &"20 bytes"))?;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trip_and_nil() {
        let id = ActorId::random();
        assert_eq!(id.hex().len(), 40);
        assert_eq!(ActorId::from_hex(&id.hex()).unwrap(), id);
        assert_eq!(ActorHandleId::NIL.hex(), "f".repeat(40));
        assert!(ActorHandleId::NIL.is_nil());
        assert!(ActorId::from_hex("xyz").is_err());
        assert_ne!(ActorId::random(), ActorId::random());
    }

    #[test]
    fn ids_round_trip_through_compact_and_text_formats() {
        let id = ActorHandleId::random();
        let bytes = postcard::to_allocvec(&id).unwrap();
        assert_eq!(postcard::from_bytes::<ActorHandleId>(&bytes).unwrap(), id);
        let mut map = std::collections::BTreeMap::new();
        map.insert(id, 3u64);
        let bytes = postcard::to_allocvec(&map).unwrap();
        assert_eq!(
            postcard::from_bytes::<std::collections::BTreeMap<ActorHandleId, u64>>(&bytes).unwrap(),
            map
        );
    }

    #[test]
    fn fork_formula_matches_a_known_vector() {
        let id = ActorHandleId::forked(&ActorHandleId::NIL, 0);
        assert_eq!(id.hex(), "df9397823f51809cb7ff4171c7a1c087dc8695b4");
    }
}
