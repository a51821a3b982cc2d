//! The event model: turning one raw stream entry into a typed [`GameEvent`], or a
//! [`Rejection`] that says why it cannot be used (the reason stored with its dead letter).
//!
//! Only the fields common to every event and the fields of `game_over` are checked here.
//! Gameplay details (`select_weapon`'s data, …) are checked by the handler that uses them, so
//! a gameplay event that no rule uses is never rejected for fields nobody reads.

use std::collections::HashMap;

use super::ids::{IdError, PlayerId, ProductId};

/// An entry's field/value pairs, raw.
pub type Fields = Vec<(Vec<u8>, Vec<u8>)>;

/// One stream entry as read from Redis: its id and its field/value pairs, in order.
/// Values are raw bytes: game servers may send anything, including invalid UTF-8.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEntry {
    pub id: String,
    pub fields: Fields,
}

/// Why an event cannot be used. Its `Display` text is stored with the dead letter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("missing field `{0}`")]
    MissingField(&'static str),
    #[error("field `{field}` {problem}")]
    InvalidId {
        field: &'static str,
        problem: IdError,
    },
    #[error("field `{0}` is not valid UTF-8")]
    NotUtf8(String),
    #[error("field `{0}` appears more than once")]
    DuplicateField(String),
    #[error("unknown event type `{0}`")]
    UnknownType(String),
    #[error("winner and loser are the same player")]
    SelfMatch,
    #[error("field `{field}` has invalid value `{value}`: {expected}")]
    InvalidValue {
        field: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("entry was deleted from the stream before it could be read")]
    Deleted,
}

/// A parsed event from a game server.
#[derive(Debug, Clone, PartialEq)]
pub struct GameEvent {
    pub product: ProductId,
    pub kind: EventKind,
}

/// What happened, by the event's `type` field.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A two-player match ended.
    GameOver { winner: PlayerId, loser: PlayerId },
    /// Something a player did; its fields are interpreted by the handlers that care.
    Gameplay(Gameplay),
    /// `state_change`, `player_disconnect`, `game_removed`: normal traffic the tracker does not use.
    Ignored,
}

/// A `gameplay` event: its name and the rest of its fields, unparsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Gameplay {
    pub event_name: String,
    fields: HashMap<String, String>,
}

impl Gameplay {
    /// A field handlers must have: missing or invalid is a [`Rejection`].
    pub fn required(&self, field: &'static str) -> Result<&str, Rejection> {
        self.fields
            .get(field)
            .map(String::as_str)
            .ok_or(Rejection::MissingField(field))
    }

    /// A player id field, validated.
    pub fn player(&self, field: &'static str) -> Result<PlayerId, Rejection> {
        PlayerId::parse(self.required(field)?)
            .map_err(|problem| Rejection::InvalidId { field, problem })
    }
}

impl GameEvent {
    /// Parses a stream entry's fields. Never panics, whatever the input.
    pub fn parse(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Self, Rejection> {
        let mut map: HashMap<String, String> = HashMap::with_capacity(fields.len());
        for (name, value) in fields {
            let name = String::from_utf8(name.clone())
                .map_err(|_| Rejection::NotUtf8(String::from_utf8_lossy(name).into_owned()))?;
            let value =
                String::from_utf8(value.clone()).map_err(|_| Rejection::NotUtf8(name.clone()))?;
            if map.contains_key(&name) {
                return Err(Rejection::DuplicateField(name));
            }
            map.insert(name, value);
        }

        let product = parse_id(&map, "product_id", ProductId::parse)?;
        let kind = match required(&map, "type")? {
            "game_over" => {
                let winner = parse_id(&map, "winner_id", PlayerId::parse)?;
                let loser = parse_id(&map, "loser_id", PlayerId::parse)?;
                if winner == loser {
                    return Err(Rejection::SelfMatch);
                }
                EventKind::GameOver { winner, loser }
            }
            "gameplay" => {
                let event_name = required(&map, "event_name")?.to_owned();
                map.remove("product_id");
                map.remove("type");
                map.remove("event_name");
                EventKind::Gameplay(Gameplay {
                    event_name,
                    fields: map,
                })
            }
            "state_change" | "player_disconnect" | "game_removed" => EventKind::Ignored,
            other => return Err(Rejection::UnknownType(other.to_owned())),
        };
        Ok(GameEvent { product, kind })
    }
}

fn required<'a>(
    map: &'a HashMap<String, String>,
    field: &'static str,
) -> Result<&'a str, Rejection> {
    map.get(field)
        .map(String::as_str)
        .ok_or(Rejection::MissingField(field))
}

fn parse_id<T>(
    map: &HashMap<String, String>,
    field: &'static str,
    parse: fn(&str) -> Result<T, IdError>,
) -> Result<T, Rejection> {
    parse(required(map, field)?).map_err(|problem| Rejection::InvalidId { field, problem })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn parses_game_over() {
        let event = GameEvent::parse(&fields(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "game_over"),
            ("winner_id", "B"),
            ("loser_id", "игрок:ユーザー✓"),
        ]))
        .unwrap();
        assert_eq!(event.product.as_str(), "exrps");
        assert_eq!(
            event.kind,
            EventKind::GameOver {
                winner: PlayerId::parse("B").unwrap(),
                loser: PlayerId::parse("игрок:ユーザー✓").unwrap()
            }
        );
    }

    #[test]
    fn gameplay_fields_are_read_by_name_in_any_order() {
        let event = GameEvent::parse(&fields(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "gameplay"),
            ("round_winner_id", "B"),
            ("round_loser_id", "A"),
            ("event_name", "progression"),
            ("progress_event", "round_finished"),
        ]))
        .unwrap();
        let EventKind::Gameplay(gameplay) = event.kind else {
            panic!("expected gameplay, got {:?}", event.kind);
        };
        assert_eq!(gameplay.event_name, "progression");
        assert_eq!(gameplay.required("round_winner_id"), Ok("B"));
        assert_eq!(
            gameplay.required("user_id"),
            Err(Rejection::MissingField("user_id"))
        );
    }

    #[test]
    fn lobby_and_disconnect_events_are_ignored_not_rejected() {
        for kind in ["state_change", "player_disconnect", "game_removed"] {
            let event = GameEvent::parse(&fields(&[("product_id", "p"), ("type", kind)])).unwrap();
            assert_eq!(event.kind, EventKind::Ignored);
        }
    }

    #[test]
    fn rejections_carry_a_reason() {
        let cases: Vec<(Fields, &str)> = vec![
            (
                fields(&[("type", "game_over")]),
                "missing field `product_id`",
            ),
            (fields(&[("product_id", "p")]), "missing field `type`"),
            (
                fields(&[("product_id", "p"), ("type", "explode")]),
                "unknown event type `explode`",
            ),
            (
                fields(&[
                    ("product_id", "p"),
                    ("type", "game_over"),
                    ("winner_id", "a"),
                ]),
                "missing field `loser_id`",
            ),
            (
                fields(&[
                    ("product_id", "p"),
                    ("type", "game_over"),
                    ("winner_id", "a"),
                    ("loser_id", "a"),
                ]),
                "winner and loser are the same player",
            ),
            (
                fields(&[("product_id", ""), ("type", "game_over")]),
                "field `product_id` is empty",
            ),
            (
                fields(&[
                    ("product_id", "p"),
                    ("product_id", "q"),
                    ("type", "game_over"),
                ]),
                "field `product_id` appears more than once",
            ),
            (
                vec![
                    (b"product_id".to_vec(), vec![0xff, 0xfe]),
                    (b"type".to_vec(), b"game_over".to_vec()),
                ],
                "field `product_id` is not valid UTF-8",
            ),
        ];
        for (input, reason) in cases {
            assert_eq!(
                GameEvent::parse(&input)
                    .map(|_| ())
                    .unwrap_err()
                    .to_string(),
                reason
            );
        }
    }
}
