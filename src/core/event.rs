//! The event model: turning one raw stream entry into a typed [`GameEvent`], or a
//! [`Rejection`] that says why it cannot be used (the reason stored with its dead letter).
//!
//! Only the fields common to every event and the fields of `game_over` are checked here.
//! Gameplay details (`select_weapon`'s data, …) are checked by the handler that uses them, so
//! a gameplay event that no rule uses is never rejected for fields nobody reads.

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
    MissingField(String),
    #[error("field `{field}` {problem}")]
    InvalidId { field: String, problem: IdError },
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
        field: String,
        value: String,
        expected: String,
    },
    #[error("product `{0}` is not configured and unknown products are rejected")]
    UnknownProduct(String),
    #[error("entry was deleted from the stream before it could be read")]
    Deleted,
}

/// The kind of a dead letter's reason: a small fixed set, for the `reason` label of
/// `stats_tracker_worker_dead_letters_total` (the reason's text quotes field names and values
/// from outside, so as a label it would make time series without bound).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReasonKind {
    MissingField,
    InvalidId,
    NotUtf8,
    DuplicateField,
    UnknownType,
    SelfMatch,
    InvalidValue,
    UnknownProduct,
    /// A board's rating system cannot rate the outcome (Elo given a team match).
    UnratableOutcome,
    Deleted,
    /// A board's validation rules refused the value (`core::validation`).
    BelowMinimum,
    AboveMaximum,
    NotInteger,
    Decrement,
    ChangeTooLarge,
}

impl ReasonKind {
    /// Every kind, in label order.
    pub const ALL: [ReasonKind; 15] = [
        ReasonKind::MissingField,
        ReasonKind::InvalidId,
        ReasonKind::NotUtf8,
        ReasonKind::DuplicateField,
        ReasonKind::UnknownType,
        ReasonKind::SelfMatch,
        ReasonKind::InvalidValue,
        ReasonKind::UnknownProduct,
        ReasonKind::UnratableOutcome,
        ReasonKind::Deleted,
        ReasonKind::BelowMinimum,
        ReasonKind::AboveMaximum,
        ReasonKind::NotInteger,
        ReasonKind::Decrement,
        ReasonKind::ChangeTooLarge,
    ];

    /// The label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ReasonKind::MissingField => "missing_field",
            ReasonKind::InvalidId => "invalid_id",
            ReasonKind::NotUtf8 => "not_utf8",
            ReasonKind::DuplicateField => "duplicate_field",
            ReasonKind::UnknownType => "unknown_type",
            ReasonKind::SelfMatch => "self_match",
            ReasonKind::InvalidValue => "invalid_value",
            ReasonKind::UnknownProduct => "unknown_product",
            ReasonKind::UnratableOutcome => "unratable_outcome",
            ReasonKind::Deleted => "deleted",
            ReasonKind::BelowMinimum => "below_minimum",
            ReasonKind::AboveMaximum => "above_maximum",
            ReasonKind::NotInteger => "not_integer",
            ReasonKind::Decrement => "decrement",
            ReasonKind::ChangeTooLarge => "change_too_large",
        }
    }
}

impl Rejection {
    /// The kind of this reason.
    pub fn kind(&self) -> ReasonKind {
        match self {
            Rejection::MissingField(_) => ReasonKind::MissingField,
            Rejection::InvalidId { .. } => ReasonKind::InvalidId,
            Rejection::NotUtf8(_) => ReasonKind::NotUtf8,
            Rejection::DuplicateField(_) => ReasonKind::DuplicateField,
            Rejection::UnknownType(_) => ReasonKind::UnknownType,
            Rejection::SelfMatch => ReasonKind::SelfMatch,
            Rejection::InvalidValue { .. } => ReasonKind::InvalidValue,
            Rejection::UnknownProduct(_) => ReasonKind::UnknownProduct,
            Rejection::Deleted => ReasonKind::Deleted,
        }
    }

    /// An invalid value, quoted at most 64 characters long.
    pub fn invalid_value(field: &str, value: &str, expected: impl Into<String>) -> Self {
        Rejection::InvalidValue {
            field: field.to_owned(),
            value: value.chars().take(64).collect(),
            expected: expected.into(),
        }
    }
}

/// The field a re-driven dead letter carries on the event stream: the stream id of the event
/// it was dead-lettered from (its time, and what the product applies at most once).
pub const REDRIVE_OF_FIELD: &str = "stats_tracker_redrive_of";
/// The field naming the dead letter a re-driven entry came from: a re-drive repeated after a
/// crash appends a second copy with the same letter id, which is dead-lettered at most once.
pub const REDRIVE_LETTER_FIELD: &str = "stats_tracker_redrive_letter";

/// Whether `name` is a field only re-drives may set (ingest refuses it).
pub fn is_reserved_field(name: &[u8]) -> bool {
    name == REDRIVE_OF_FIELD.as_bytes() || name == REDRIVE_LETTER_FIELD.as_bytes()
}

/// Where a re-driven entry came from: both reserved fields, valid stream ids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redrive {
    /// The stream id of the original event.
    pub of: String,
    /// The id of the dead letter that was re-driven.
    pub letter: String,
}

impl Redrive {
    /// The re-drive fields of an entry: `None` for an ordinary entry; a rejection when only one
    /// is there or one is not a stream id.
    pub fn from_fields(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Option<Self>, Rejection> {
        let find = |name: &str| {
            fields
                .iter()
                .find(|(field, _)| field == name.as_bytes())
                .map(|(_, value)| value)
        };
        let (of, letter) = match (find(REDRIVE_OF_FIELD), find(REDRIVE_LETTER_FIELD)) {
            (None, None) => return Ok(None),
            (Some(of), Some(letter)) => (of, letter),
            (None, Some(_)) => return Err(Rejection::MissingField(REDRIVE_OF_FIELD.into())),
            (Some(_), None) => return Err(Rejection::MissingField(REDRIVE_LETTER_FIELD.into())),
        };
        let stream_id = |field: &str, value: &[u8]| {
            let text = String::from_utf8_lossy(value);
            if is_stream_id(&text) {
                Ok(text.into_owned())
            } else {
                Err(Rejection::invalid_value(field, &text, "a stream id"))
            }
        };
        Ok(Some(Redrive {
            of: stream_id(REDRIVE_OF_FIELD, of)?,
            letter: stream_id(REDRIVE_LETTER_FIELD, letter)?,
        }))
    }
}

/// Whether `text` is a complete stream id, `<ms>-<seq>` (two unsigned 64-bit numbers).
pub fn is_stream_id(text: &str) -> bool {
    text.split_once('-').is_some_and(|(ms, seq)| {
        [ms, seq]
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
            && ms.parse::<u64>().is_ok()
            && seq.parse::<u64>().is_ok()
    })
}

/// Most players one match may have: bounds the work one event can cause.
pub const MAX_MATCH_PLAYERS: usize = 100;

/// A parsed event from a game server.
#[derive(Debug, Clone, PartialEq)]
pub struct GameEvent {
    pub product: ProductId,
    pub kind: EventKind,
    /// Every field by name (values are valid UTF-8), for rules that read fields by name.
    fields: FieldsByName,
}

/// An event's fields, sorted by name and found by binary search: events have a handful of
/// fields, and building a hash map of them cost the worker more than every lookup it served.
#[derive(Debug, Clone, PartialEq)]
struct FieldsByName(Vec<(String, String)>);

impl FieldsByName {
    /// The fields, checked: UTF-8 names and values, no name twice.
    fn new(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Self, Rejection> {
        let mut named = Vec::with_capacity(fields.len());
        for (name, value) in fields {
            let name = String::from_utf8(name.clone())
                .map_err(|_| Rejection::NotUtf8(String::from_utf8_lossy(name).into_owned()))?;
            let value =
                String::from_utf8(value.clone()).map_err(|_| Rejection::NotUtf8(name.clone()))?;
            named.push((name, value));
        }
        named.sort_unstable_by(|a, b| a.0.cmp(&b.0));
        if let Some(pair) = named.windows(2).find(|pair| pair[0].0 == pair[1].0) {
            return Err(Rejection::DuplicateField(pair[0].0.clone()));
        }
        Ok(Self(named))
    }

    fn get(&self, name: &str) -> Option<&str> {
        let index = self
            .0
            .binary_search_by(|(field, _)| field.as_str().cmp(name))
            .ok()?;
        self.0.get(index).map(|(_, value)| value.as_str())
    }
}

/// What happened, by the event's `type` field.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A match ended: `game_over` (two players, one winner), `draw` or `match_result`.
    Match(MatchOutcome),
    /// Something a player did (`gameplay`); rules read its fields by name.
    Gameplay { event_name: String },
    /// `player_profile`: a player's display name and public metadata (`user_id`, `name`,
    /// `meta`), returned beside their board entries when asked; never part of ranking.
    Profile(Profile),
    /// `state_change`, `player_disconnect`, `game_removed`: normal traffic the tracker does not use.
    Ignored,
}

/// Fields that name a player in the events the tracker knows (`teams` holds players too, as
/// JSON); rules may read player ids from other fields.
pub const PLAYER_FIELDS: [&str; 8] = [
    "winner_id",
    "loser_id",
    "p1_id",
    "p2_id",
    "user_id",
    "player_id",
    "round_winner_id",
    "round_loser_id",
];

/// The field of a `match_result` holding its teams (player ids inside, as JSON).
pub const TEAMS_FIELD: &str = "teams";

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;
/// Longest public metadata, in bytes of JSON.
pub const MAX_META_BYTES: usize = 1024;

/// A player's public profile: what a `player_profile` event sets (at least one of the two).
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub player: PlayerId,
    /// 1 to [`MAX_NAME_CHARS`] characters, no control characters; names are not unique.
    pub name: Option<String>,
    /// A JSON object of at most [`MAX_META_BYTES`] bytes, kept as its compact text.
    pub meta: Option<String>,
}

/// The result of one match: teams (one player each in one-on-one and free-for-all games)
/// with their placements, 1 being best; equal places are ties.
#[derive(Debug, Clone, PartialEq)]
pub struct MatchOutcome {
    pub teams: Vec<Team>,
}

/// One side of a match.
#[derive(Debug, Clone, PartialEq)]
pub struct Team {
    pub players: Vec<PlayerId>,
    pub place: u32,
    /// Per-player scores, when the game server sent them.
    pub scores: Vec<(PlayerId, f64)>,
}

impl MatchOutcome {
    fn one_on_one(first: PlayerId, second: PlayerId, draw: bool) -> Self {
        let team = |player, place| Team {
            players: vec![player],
            place,
            scores: Vec::new(),
        };
        MatchOutcome {
            teams: vec![team(first, 1), team(second, if draw { 1 } else { 2 })],
        }
    }

    /// Every player of the match.
    pub fn players(&self) -> impl Iterator<Item = &PlayerId> {
        self.teams.iter().flat_map(|team| team.players.iter())
    }

    /// Whether exactly one team has the best place (a single winner), and which.
    pub fn sole_winner(&self) -> Option<usize> {
        let best = self.teams.iter().map(|team| team.place).min()?;
        let mut winners = self
            .teams
            .iter()
            .enumerate()
            .filter(|(_, t)| t.place == best);
        let (index, _) = winners.next()?;
        winners.next().is_none().then_some(index)
    }

    /// How a player of team `index` fared: won alone, tied for first, or lost.
    pub fn result_of(&self, index: usize) -> MatchResult {
        let best = self.teams.iter().map(|team| team.place).min().unwrap_or(1);
        match (self.teams.get(index).map(|t| t.place), self.sole_winner()) {
            (Some(_), Some(winner)) if winner == index => MatchResult::Win,
            (Some(place), _) if place == best => MatchResult::Draw,
            _ => MatchResult::Loss,
        }
    }
}

/// One team's result in a match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchResult {
    Win,
    Draw,
    Loss,
}

impl GameEvent {
    /// Parses a stream entry's fields. Never panics, whatever the input.
    pub fn parse(fields: &[(Vec<u8>, Vec<u8>)]) -> Result<Self, Rejection> {
        let map = FieldsByName::new(fields)?;
        Redrive::from_fields(fields)?;
        let mut event = GameEvent {
            product: ProductId::parse(required(&map, "product_id")?).map_err(|problem| {
                Rejection::InvalidId {
                    field: "product_id".into(),
                    problem,
                }
            })?,
            kind: EventKind::Ignored,
            fields: map,
        };
        event.kind = match event.required("type")? {
            "game_over" => {
                let winner = event.player("winner_id")?;
                let loser = event.player("loser_id")?;
                if winner == loser {
                    return Err(Rejection::SelfMatch);
                }
                EventKind::Match(MatchOutcome::one_on_one(winner, loser, false))
            }
            "draw" => {
                let first = event.player("p1_id")?;
                let second = event.player("p2_id")?;
                if first == second {
                    return Err(Rejection::invalid_value(
                        "p2_id",
                        second.as_str(),
                        "a different player than p1_id",
                    ));
                }
                EventKind::Match(MatchOutcome::one_on_one(first, second, true))
            }
            "match_result" => EventKind::Match(parse_teams(event.required("teams")?)?),
            "gameplay" => EventKind::Gameplay {
                event_name: event.required("event_name")?.to_owned(),
            },
            "player_profile" => EventKind::Profile(event.profile()?),
            "state_change" | "player_disconnect" | "game_removed" => EventKind::Ignored,
            other => return Err(Rejection::UnknownType(other.to_owned())),
        };
        Ok(event)
    }

    /// A field's value, if present.
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name)
    }

    /// A field rules need: missing is a [`Rejection`].
    pub fn required(&self, name: &str) -> Result<&str, Rejection> {
        required(&self.fields, name)
    }

    /// A player id field, validated.
    pub fn player(&self, name: &str) -> Result<PlayerId, Rejection> {
        PlayerId::parse(self.required(name)?).map_err(|problem| Rejection::InvalidId {
            field: name.to_owned(),
            problem,
        })
    }

    /// A `player_profile` event's profile, validated.
    fn profile(&self) -> Result<Profile, Rejection> {
        let player = self.player("user_id")?;
        let name = self.field("name").map(str::to_owned);
        if let Some(name) = &name
            && (name.trim().is_empty()
                || name.chars().count() > MAX_NAME_CHARS
                || name.chars().any(char::is_control))
        {
            return Err(Rejection::invalid_value(
                "name",
                name,
                "1 to 64 characters, not only spaces, no control characters",
            ));
        }
        let meta = match self.field("meta") {
            None => None,
            Some(text) => {
                let parsed: Option<serde_json::Map<String, serde_json::Value>> =
                    serde_json::from_str(text).ok();
                let compact = parsed.map(|map| serde_json::Value::Object(map).to_string());
                match compact {
                    Some(compact) if compact.len() <= MAX_META_BYTES => Some(compact),
                    _ => {
                        return Err(Rejection::invalid_value(
                            "meta",
                            text,
                            "a JSON object of at most 1024 bytes",
                        ));
                    }
                }
            }
        };
        if name.is_none() && meta.is_none() {
            return Err(Rejection::MissingField("name".into()));
        }
        Ok(Profile { player, name, meta })
    }

    /// The match outcome, for match events.
    pub fn outcome(&self) -> Option<&MatchOutcome> {
        match &self.kind {
            EventKind::Match(outcome) => Some(outcome),
            _ => None,
        }
    }
}

fn required<'a>(map: &'a FieldsByName, name: &str) -> Result<&'a str, Rejection> {
    map.get(name)
        .ok_or_else(|| Rejection::MissingField(name.to_owned()))
}

/// `match_result`'s `teams` field: a JSON array of
/// `{"place": 1, "players": ["A", "B"], "scores": {"A": 120.5}}` (scores optional).
fn parse_teams(raw: &str) -> Result<MatchOutcome, Rejection> {
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct RawTeam {
        // A JSON number: `1.0` is a whole number too (as JSON Schema, and so the API's
        // document, counts it).
        place: f64,
        players: Vec<String>,
        #[serde(default)]
        scores: std::collections::BTreeMap<String, f64>,
    }
    const EXPECTED: &str = "a JSON array of at least two {\"place\": n >= 1, \"players\": [ids], \"scores\": {id: number}} with each player once";
    let invalid = || Rejection::invalid_value("teams", raw, EXPECTED);
    let raw_teams: Vec<RawTeam> = serde_json::from_str(raw).map_err(|_| invalid())?;
    if raw_teams.len() < 2 {
        return Err(invalid());
    }
    let mut seen = std::collections::HashSet::new();
    let mut teams = Vec::with_capacity(raw_teams.len());
    for raw_team in raw_teams {
        let place = raw_team.place;
        if place.fract() != 0.0
            || !(1.0..=f64::from(u32::MAX)).contains(&place)
            || raw_team.players.is_empty()
        {
            return Err(invalid());
        }
        let place = place as u32;
        let mut players = Vec::with_capacity(raw_team.players.len());
        for id in &raw_team.players {
            let player = PlayerId::parse(id).map_err(|problem| Rejection::InvalidId {
                field: "teams".into(),
                problem,
            })?;
            if !seen.insert(player.clone()) || seen.len() > MAX_MATCH_PLAYERS {
                return Err(invalid());
            }
            players.push(player);
        }
        let mut scores = Vec::with_capacity(raw_team.scores.len());
        for (id, score) in raw_team.scores {
            let player = players
                .iter()
                .find(|p| p.as_str() == id)
                .ok_or_else(invalid)?;
            if !score.is_finite() {
                return Err(invalid());
            }
            scores.push((player.clone(), score));
        }
        teams.push(Team {
            players,
            place,
            scores,
        });
    }
    Ok(MatchOutcome { teams })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_kinds_are_distinct_labels() {
        let labels: std::collections::BTreeSet<_> =
            ReasonKind::ALL.iter().map(|kind| kind.as_str()).collect();
        assert_eq!(labels.len(), ReasonKind::ALL.len());
        assert!(labels.iter().all(|label| {
            label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        }));
        assert_eq!(
            Rejection::invalid_value("event_data", "rock", "0, 1 or 2").kind(),
            ReasonKind::InvalidValue
        );
        assert_eq!(
            Rejection::MissingField("loser_id".into()).kind(),
            ReasonKind::MissingField
        );
    }

    fn fields(pairs: &[(&str, &str)]) -> Fields {
        pairs
            .iter()
            .map(|(k, v)| (k.as_bytes().to_vec(), v.as_bytes().to_vec()))
            .collect()
    }

    fn player(id: &str) -> PlayerId {
        PlayerId::parse(id).unwrap()
    }

    #[test]
    fn game_over_is_a_one_on_one_match() {
        let event = GameEvent::parse(&fields(&[
            ("product_id", "exrps"),
            ("game_id", "g"),
            ("type", "game_over"),
            ("winner_id", "B"),
            ("loser_id", "игрок:ユーザー✓"),
        ]))
        .unwrap();
        assert_eq!(event.product.as_str(), "exrps");
        let outcome = event.outcome().unwrap();
        assert_eq!(outcome.teams[0].players, vec![player("B")]);
        assert_eq!(outcome.teams[1].players, vec![player("игрок:ユーザー✓")]);
        assert_eq!(outcome.result_of(0), MatchResult::Win);
        assert_eq!(outcome.result_of(1), MatchResult::Loss);
    }

    #[test]
    fn draws_and_team_results() {
        let draw = GameEvent::parse(&fields(&[
            ("product_id", "p"),
            ("type", "draw"),
            ("p1_id", "A"),
            ("p2_id", "B"),
        ]))
        .unwrap();
        let outcome = draw.outcome().unwrap();
        assert_eq!(outcome.sole_winner(), None);
        assert_eq!(outcome.result_of(1), MatchResult::Draw);

        let teams = r#"[{"place":2,"players":["A","B"]},{"place":1,"players":["C","D"],"scores":{"C":12.5}},{"place":2,"players":["E"]}]"#;
        let event = GameEvent::parse(&fields(&[
            ("product_id", "p"),
            ("type", "match_result"),
            ("teams", teams),
        ]))
        .unwrap();
        let outcome = event.outcome().unwrap();
        assert_eq!(outcome.players().count(), 5);
        assert_eq!(outcome.sole_winner(), Some(1));
        assert_eq!(outcome.teams[1].scores, vec![(player("C"), 12.5)]);
        assert_eq!(outcome.result_of(2), MatchResult::Loss);
    }

    #[test]
    fn a_place_written_as_a_whole_float_is_that_place() {
        let event = GameEvent::parse(&fields(&[
            ("product_id", "p"),
            ("type", "match_result"),
            (
                "teams",
                r#"[{"place":2.0,"players":["A"]},{"place":1.0,"players":["B"]}]"#,
            ),
        ]))
        .expect("whole places");
        let outcome = event.outcome().expect("a match");
        assert_eq!(outcome.sole_winner(), Some(1));
    }

    #[test]
    fn bad_team_results_are_rejected() {
        for teams in [
            "not json",
            r#"[{"place":1,"players":["A"]}]"#,
            r#"[{"place":1,"players":["A"]},{"place":2,"players":["A"]}]"#,
            r#"[{"place":0,"players":["A"]},{"place":2,"players":["B"]}]"#,
            r#"[{"place":1,"players":[]},{"place":2,"players":["B"]}]"#,
            r#"[{"place":1,"players":["A"],"scores":{"B":1}},{"place":2,"players":["B"]}]"#,
            r#"[{"place":1,"players":["A"],"extra":1},{"place":2,"players":["B"]}]"#,
            r#"[{"place":1.5,"players":["A"]},{"place":2,"players":["B"]}]"#,
            r#"[{"place":4294967296,"players":["A"]},{"place":2,"players":["B"]}]"#,
        ] {
            let result = GameEvent::parse(&fields(&[
                ("product_id", "p"),
                ("type", "match_result"),
                ("teams", teams),
            ]));
            assert!(result.is_err(), "{teams} was accepted");
        }
    }

    #[test]
    fn fields_are_read_by_name_in_any_order() {
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
        assert_eq!(
            event.kind,
            EventKind::Gameplay {
                event_name: "progression".into()
            }
        );
        assert_eq!(event.required("round_winner_id"), Ok("B"));
        assert_eq!(
            event.required("user_id"),
            Err(Rejection::MissingField("user_id".into()))
        );
    }

    #[test]
    fn redrive_fields_come_in_pairs_of_stream_ids() {
        let base = [("product_id", "p"), ("type", "state_change")];
        let with = |extra: &[(&str, &str)]| {
            let mut pairs = base.to_vec();
            pairs.extend_from_slice(extra);
            fields(&pairs)
        };
        assert_eq!(Redrive::from_fields(&with(&[])), Ok(None));
        let both = with(&[(REDRIVE_OF_FIELD, "5-1"), (REDRIVE_LETTER_FIELD, "9-0")]);
        assert_eq!(
            Redrive::from_fields(&both),
            Ok(Some(Redrive {
                of: "5-1".into(),
                letter: "9-0".into()
            }))
        );
        assert!(GameEvent::parse(&both).is_ok());
        for bad in [
            with(&[(REDRIVE_OF_FIELD, "5-1")]),
            with(&[(REDRIVE_LETTER_FIELD, "5-1")]),
            with(&[(REDRIVE_OF_FIELD, "5"), (REDRIVE_LETTER_FIELD, "9-0")]),
            with(&[(REDRIVE_OF_FIELD, "5-1"), (REDRIVE_LETTER_FIELD, "-")]),
        ] {
            assert!(GameEvent::parse(&bad).is_err(), "{bad:?}");
        }
        assert!(is_reserved_field(REDRIVE_OF_FIELD.as_bytes()));
        assert!(!is_reserved_field(b"product_id"));
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
