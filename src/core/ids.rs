//! Validated identifiers: [`ProductId`] and [`PlayerId`].
//!
//! Ids come from game servers and HTTP clients, so they are opaque UTF-8 strings that may
//! contain `:`, `{`, spaces or any script. Once parsed here, the rest of the crate passes these
//! newtypes around instead of raw strings; key construction encodes them (see [`super::keys`]).

use std::fmt;

/// Longest id we accept, in characters (Unicode scalar values, as JSON Schema's `maxLength`
/// counts them, so the API document can state it exactly). Bounds key sizes.
pub const MAX_ID_CHARS: usize = 128;

/// Why a string is not a valid id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("is empty")]
    Empty,
    #[error("is longer than {MAX_ID_CHARS} characters")]
    TooLong,
    #[error("contains a control character")]
    ControlCharacter,
}

fn validate(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    // Bytes bound characters from above: most ids are short, and skip the count.
    if raw.len() > MAX_ID_CHARS && raw.chars().count() > MAX_ID_CHARS {
        return Err(IdError::TooLong);
    }
    // Control characters (NUL, newlines…) are never legitimate ids and break logs and tools.
    if raw.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(String);

        impl $name {
            /// Parses and validates an id.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                validate(raw)?;
                Ok(Self(raw.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A game (product) id such as `exrps`.
    ProductId
);
id_type!(
    /// A player id such as `steam:76561198000000001`.
    PlayerId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_real_world_ids() {
        for raw in [
            "exrps",
            "steam:76561198000000001",
            "игрок:ユーザー✓",
            "a b{c}",
        ] {
            assert_eq!(
                PlayerId::parse(raw).map(|p| p.to_string()),
                Ok(raw.to_owned())
            );
        }
    }

    #[test]
    fn rejects_empty_long_and_control() {
        assert_eq!(ProductId::parse(""), Err(IdError::Empty));
        assert_eq!(ProductId::parse(&"x".repeat(129)), Err(IdError::TooLong));
        assert!(ProductId::parse(&"x".repeat(128)).is_ok());
        assert_eq!(ProductId::parse("a\nb"), Err(IdError::ControlCharacter));
        // Characters count, not bytes: 128 three-byte characters are fine, 129 are not.
        assert!(ProductId::parse(&"ユ".repeat(128)).is_ok());
        assert_eq!(ProductId::parse(&"ユ".repeat(129)), Err(IdError::TooLong));
        // C1 controls are control characters too.
        assert_eq!(ProductId::parse("a\u{85}b"), Err(IdError::ControlCharacter));
    }
}
