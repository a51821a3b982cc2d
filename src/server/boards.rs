//! HTTP handlers for ranked leaderboards: pages, a player's standing ("around me") and the
//! ranks of several players at once, for the all-time board or one period of a window.

use std::collections::BTreeSet;

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};

use super::AppState;
use super::error::{ApiError, ErrorBody, ErrorCode};
use super::routes::{bad_path, find_board, parse_player, parse_product};
use crate::core::ids::PlayerId;
use crate::core::ids::ProductId;
use crate::core::keys::{BoardKeys, Columns};
use crate::leaderboards::head::Head;
use crate::leaderboards::rank::{self, Page, PageStart, RankedEntry, Ties};
use crate::leaderboards::windows::{CALENDAR, SEASON};

/// Rows a page returns unless `limit` says otherwise.
const DEFAULT_LIMIT: u64 = 50;
/// Most rows a page returns.
const MAX_LIMIT: u64 = 1000;
/// Most rows above and below a player a standing returns.
const MAX_AROUND: u64 = 100;
/// Most players one ranks request names.
const MAX_PLAYERS: usize = 100;

/// A request's query string as name/value pairs, refusing names the route does not know.
pub(super) struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    pub(super) fn parse(raw: Option<String>, known: &[&str]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> =
            serde_urlencoded::from_str(raw.as_deref().unwrap_or_default()).map_err(|error| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("bad query string: {error}"),
                )
            })?;
        if let Some((name, _)) = pairs
            .iter()
            .find(|(name, _)| !known.contains(&name.as_str()))
        {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!(
                    "unknown query parameter `{name}`; this route takes {}",
                    known.join(", ")
                ),
            ));
        }
        Ok(Self(pairs))
    }

    /// The one value of `name`, if given.
    pub(super) fn one<'a>(&'a self, name: &'a str) -> Result<Option<&'a str>, ApiError> {
        let mut values = self.all(name);
        let first = values.next();
        if values.next().is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("query parameter `{name}` is given more than once"),
            ));
        }
        Ok(first)
    }

    fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// A whole number in `0..=max`, or `default` when absent.
    fn number(&self, name: &str, default: u64, max: u64) -> Result<u64, ApiError> {
        let Some(raw) = self.one(name)? else {
            return Ok(default);
        };
        raw.parse::<u64>()
            .ok()
            .filter(|n| *n <= max)
            .ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("`{name}` must be a whole number from 0 to {max}, not `{raw}`"),
                )
            })
    }

    /// Whether `with=names` asks for players' names.
    fn with_names(&self) -> Result<bool, ApiError> {
        match self.one("with")? {
            None => Ok(false),
            Some("names") => Ok(true),
            Some(raw) => Err(ApiError::new(
                ErrorCode::InvalidQuery,
                format!("`with` can only be `names`, not `{raw}`"),
            )),
        }
    }

    fn ties(&self) -> Result<Ties, ApiError> {
        match self.one("ranking")? {
            None => Ok(Ties::default()),
            Some(raw) => Ties::parse(raw).ok_or_else(|| {
                ApiError::new(
                    ErrorCode::InvalidQuery,
                    format!("`ranking` must be standard, dense or ordinal, not `{raw}`"),
                )
            }),
        }
    }
}

/// Query parameters choosing the board view (documentation of the OpenAPI document; the
/// handlers parse the query with [`QueryParams`], which refuses unknown names).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct ViewParams {
    /// `all` (default), `daily`, `weekly`, `monthly`, one of the product's own windows, or
    /// `season` (the board per season, when the product has seasons).
    window: Option<String>,
    /// The period of the window: `2026-11-25` (daily), `2026-W48` (weekly, ISO week),
    /// `2026-11` (monthly), a period's start for a product's own window
    /// (`2026-12-01T04:00+09:00`; a `+` may arrive as a space), a season's name; default the
    /// current one. Only with a `window` other than `all`, in that window's form (else 400
    /// `invalid_query`).
    period: Option<String>,
    /// A season's name: the same as `window=season&period=<name>`.
    season: Option<String>,
    /// `standard` (1, 2, 2, 4; default), `dense` (1, 2, 2, 3) or `ordinal` (1, 2, 3, 4).
    ranking: Option<String>,
}

/// Players' names with the rows (documentation only, see [`ViewParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct NamesParams {
    /// `names`: each row also has the player's `name` and `meta` (set by `player_profile`
    /// events; `null` when not set).
    #[param(pattern = "^names$")]
    with: Option<String>,
}

/// Fills in the players' names and metadata of `entries` (their `player_profile`s).
async fn add_names(
    state: &AppState,
    product: &str,
    entries: &mut [&mut RankedEntry],
) -> Result<(), ApiError> {
    if entries.is_empty() {
        return Ok(());
    }
    let product = parse_product(product)?;
    let keys = state.store.keys().product(&product);
    let reads: Vec<redis::Cmd> = entries
        .iter()
        .map(|entry| {
            let player = PlayerId::parse(&entry.user_id).ok();
            let key = player.map_or_else(String::new, |player| keys.profile(&player));
            let mut read = redis::cmd("HMGET");
            read.arg(key).arg("name").arg("meta");
            read
        })
        .collect();
    let profiles: Vec<(Option<String>, Option<String>)> = state.store.query_all(&reads).await?;
    for (entry, (name, meta)) in entries.iter_mut().zip(profiles) {
        entry.name = Some(name);
        entry.meta = Some(meta.and_then(|meta| serde_json::from_str(&meta).ok()));
    }
    Ok(())
}

/// Reading a board as it stood at a past moment (documentation only, see [`ViewParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AsOfParams {
    /// The board as it stood at this stream id (`1764547200000-0`: every entry up to it) or
    /// Unix millisecond time (`1764547200000`: every entry up to its end), computed from the
    /// product's history with the games file as it is now, voids left out; an RFC 3339 time
    /// (`2026-12-01T04:00:00Z`) is accepted too. Costs a replay of the product's history up to
    /// then: more than `history.as_of_max_entries` entries is refused (422
    /// `as_of_too_costly`), a history that misses entries too (409 `history_incomplete`). A
    /// `window` without a `period` means the period of that moment.
    #[param(pattern = "^[0-9]{1,19}(-[0-9]{1,19})?$")]
    as_of: Option<String>,
}

/// Where a page starts and how long it is (documentation only, see [`ViewParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PageParams {
    /// Rows (default 50, at most 1000).
    #[param(maximum = 1000, default = 50)]
    limit: Option<u64>,
    /// Rows to skip. At most one of `offset`, `after` and `before` (else 400 `invalid_query`).
    offset: Option<u64>,
    /// A page's `next` cursor: the rows right after it. Cursors are opaque: only one an
    /// answer gave is valid (else 400 `invalid_cursor`).
    after: Option<String>,
    /// A page's `prev` cursor: the rows right before it.
    before: Option<String>,
}

/// Which board of a product a request reads: all-time, or one period of a window.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoardView {
    product_id: String,
    board: String,
    /// `all`, `daily`, `weekly`, `monthly`, a product's own window or `season`.
    window: String,
    /// The period's label (`2026-11-25`, `2026-W48`, `2026-11`, `2026-12-01T04:00+09:00`, a
    /// season's name); absent for all-time.
    #[serde(skip_serializing_if = "Option::is_none")]
    period: Option<String>,
    /// When the period starts (RFC 3339, UTC); absent for all-time.
    #[serde(skip_serializing_if = "Option::is_none")]
    starts_at: Option<String>,
    /// When the period ends (RFC 3339, UTC): the next one starts then; absent for all-time.
    #[serde(skip_serializing_if = "Option::is_none")]
    ends_at: Option<String>,
}

/// Resolves product, board, `window` and `period` (default: the current period by the
/// server's clock) to the keys to read, or a 4xx saying what is wrong.
fn board_view(
    state: &AppState,
    product: &str,
    board: &str,
    query: &QueryParams,
) -> Result<(BoardView, BoardKeys), ApiError> {
    board_view_at(state, product, board, query, (state.clock)())
}

/// [`board_view`] with `now_ms` (Unix ms) choosing a window's default period.
fn board_view_at(
    state: &AppState,
    product: &str,
    board: &str,
    query: &QueryParams,
    now_ms: u64,
) -> Result<(BoardView, BoardKeys), ApiError> {
    let product = parse_product(product)?;
    let board_config = find_board(state, &product, board)?;
    let keys = state.store.keys().product(&product);
    let season = query.one("season")?;
    let window = match (query.one("window")?, season) {
        (Some(window), Some(_)) if window != SEASON => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "`season` names a period of the `season` window; drop `window` or set it to season",
            ));
        }
        (_, Some(_)) => Some(SEASON),
        (None | Some("all"), None) => None,
        (Some(name), None) => Some(name),
    };
    let label = match (query.one("period")?, season) {
        (Some(_), Some(_)) => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "give `season` or `period`, not both",
            ));
        }
        (period, season) => period.or(season),
    };
    let Some(window) = window else {
        if label.is_some() {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "`period` needs a `window` (daily, weekly, monthly or another the board keeps)",
            ));
        }
        let view = BoardView {
            product_id: product.to_string(),
            board: board.to_owned(),
            window: "all".to_owned(),
            period: None,
            starts_at: None,
            ends_at: None,
        };
        let mut board_keys = keys.board_keys(board, None);
        board_keys.columns = board_columns(state, &product, board);
        return Ok((view, board_keys));
    };
    // A name no board of the product keeps is a mistake in the query, not a missing window.
    let product_windows: BTreeSet<&str> = CALENDAR
        .into_iter()
        .chain(state.games.product(&product).into_iter().flat_map(|games| {
            games
                .boards
                .boards()
                .iter()
                .flat_map(|board| board.windows.iter().map(|rule| rule.window.name()))
        }))
        .collect();
    if !product_windows.contains(window) {
        let names: Vec<&str> = product_windows.into_iter().collect();
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!(
                "`window` must be all or a window of `{product}` ({}), not `{window}`",
                names.join(", ")
            ),
        ));
    }
    let Some(rule) = board_config
        .windows
        .iter()
        .find(|rule| rule.window.name() == window)
    else {
        let kept: Vec<&str> = std::iter::once("all")
            .chain(board_config.windows.iter().map(|rule| rule.window.name()))
            .collect();
        return Err(ApiError::new(
            ErrorCode::WindowNotKept,
            format!(
                "board `{board}` of `{product}` keeps no `{window}` window; it keeps {}",
                kept.join(", ")
            ),
        ));
    };
    let period = match label {
        None => rule.window.period_at(now_ms).ok_or_else(|| {
            ApiError::new(
                ErrorCode::PeriodNotFound,
                format!(
                    "no season of `{product}` is running; name one: {}",
                    rule.window.label_format()
                ),
            )
        })?,
        Some(label) => rule.window.parse_period(label).ok_or_else(|| {
            let (code, kind) = if window == SEASON {
                (ErrorCode::PeriodNotFound, "season")
            } else {
                (ErrorCode::InvalidQuery, "period")
            };
            ApiError::new(
                code,
                format!(
                    "`{label}` is not a {kind} of the `{window}` window; use {}",
                    rule.window.label_format()
                ),
            )
        })?,
    };
    let view = BoardView {
        product_id: product.to_string(),
        board: board.to_owned(),
        window: window.to_owned(),
        period: Some(period.label().to_owned()),
        starts_at: Some(period.starts_at()),
        ends_at: Some(period.ends_at()),
    };
    let mut board_keys = keys.board_keys(board, Some(&period.key_suffix()));
    board_keys.columns = board_columns(state, &product, board);
    Ok((view, board_keys))
}

/// The score columns of a board with several (none otherwise), which its members carry.
fn board_columns(state: &AppState, product: &ProductId, board: &str) -> Columns {
    state
        .games
        .product(product)
        .map(|games| games.boards.columns(board))
        .unwrap_or_default()
}

/// A page of a board.
#[derive(Debug, Serialize, ToSchema)]
pub struct PageResponse {
    #[serde(flatten)]
    view: BoardView,
    /// `standard`, `dense` or `ordinal`.
    ranking: &'static str,
    /// With `as_of`: the last stream id the page counts.
    #[serde(skip_serializing_if = "Option::is_none")]
    as_of: Option<String>,
    #[serde(flatten)]
    page: Page,
}

fn cursor(raw: &str, name: &str, keys: &BoardKeys) -> Result<rank::Row, ApiError> {
    rank::row_of_cursor(raw, keys.columns.tail_bytes()).ok_or_else(|| {
        ApiError::new(
            ErrorCode::InvalidCursor,
            format!("`{name}` is not a cursor this API gave out"),
        )
    })
}

/// `GET /v1/products/{product_id}/boards/{board}/entries`: a page of the board, best first.
#[utoipa::path(
    get,
    path = "/v1/products/{product_id}/boards/{board}/entries",
    tag = "leaderboards",
    summary = "A page of a board, best first, with ranks and the board's total",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("board" = String, Path, description = "Board name"),
        ViewParams,
        PageParams,
        AsOfParams,
        NamesParams,
    ),
    responses(
        (status = 200, description = "The page; `next`/`prev` are cursors for the pages around it", body = PageResponse),
        (status = 400, description = "`invalid_query`, `invalid_cursor`, `invalid_product_id` or `invalid_path`", body = ErrorBody),
        (status = 404, description = "`product_not_found`, `board_not_found`, `window_not_kept` or `period_not_found`", body = ErrorBody),
        (status = 409, description = "`history_incomplete`: with `as_of`, the history cannot tell (or is not kept)", body = ErrorBody),
        (status = 422, description = "`as_of_too_costly`: with `as_of`, too many entries to replay", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn entries(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<PageResponse>, ApiError> {
    let Path((product, board)) = path.map_err(bad_path)?;
    let query = QueryParams::parse(
        raw,
        &[
            "window", "period", "season", "limit", "offset", "after", "before", "ranking", "as_of",
            "with",
        ],
    )?;
    let with_names = query.with_names()?;
    let as_of = query
        .one("as_of")?
        .map(|raw| {
            crate::history::parse_moment(raw).map_err(|problem| {
                ApiError::new(ErrorCode::InvalidQuery, format!("`as_of`: {problem}"))
            })
        })
        .transpose()?;
    let now = match &as_of {
        Some(until) => crate::workers::plan::id_millis(until),
        None => (state.clock)(),
    };
    let (view, keys) = board_view_at(&state, &product, &board, &query, now)?;
    let limit = query.number("limit", DEFAULT_LIMIT, MAX_LIMIT)?;
    let ties = query.ties()?;
    let start = match (
        query.one("offset")?,
        query.one("after")?,
        query.one("before")?,
    ) {
        (_, None, None) => PageStart::Offset(query.number("offset", 0, rank::MAX_OFFSET)?),
        (None, Some(after), None) => PageStart::After(cursor(after, "after", &keys)?),
        (None, None, Some(before)) => PageStart::Before(cursor(before, "before", &keys)?),
        _ => {
            return Err(ApiError::new(
                ErrorCode::InvalidQuery,
                "give at most one of `offset`, `after` and `before`",
            ));
        }
    };
    let mut page = match &as_of {
        Some(until) => page_as_of(&state, &view, &keys, until, &start, limit, ties).await?,
        None => match cached_page(&state, &keys, &start, limit, ties).await? {
            Some(page) => page,
            None => rank::page(&state.store, &keys, &start, limit, ties).await?,
        },
    };
    if with_names {
        let mut rows: Vec<&mut RankedEntry> = page.entries.iter_mut().collect();
        add_names(&state, &view.product_id, &mut rows).await?;
    }
    Ok(Json(PageResponse {
        view,
        ranking: ties.name(),
        as_of,
        page,
    }))
}

/// A page of the board as it stood after entry `until` (see `history::as_of`).
async fn page_as_of(
    state: &AppState,
    view: &BoardView,
    keys: &BoardKeys,
    until: &str,
    start: &PageStart,
    limit: u64,
    ties: rank::Ties,
) -> Result<Page, ApiError> {
    use crate::history::as_of::AsOfError;
    let Some(as_of) = &state.as_of else {
        return Err(ApiError::new(
            ErrorCode::HistoryIncomplete,
            "no history is kept (history.enabled = false): boards cannot be read as of a past moment",
        ));
    };
    let product = parse_product(&view.product_id)?;
    let copy = as_of
        .compute(&product, until)
        .await
        .map_err(|error| match error {
            AsOfError::Incomplete(message) => ApiError::new(ErrorCode::HistoryIncomplete, message),
            AsOfError::TooCostly { .. } => {
                ApiError::new(ErrorCode::AsOfTooCostly, error.to_string())
            }
            AsOfError::Store(error) => error.into(),
            AsOfError::Replay(message) => ApiError::Internal(message),
        })?;
    let keys = keys.rebased(copy.live.base(), copy.keys.base());
    let page = rank::page(&state.store, &keys, start, limit, ties).await;
    as_of.discard(copy).await?;
    Ok(page?)
}

/// The page from the board's recent head, when it lies within it. A head is read for an
/// offset page within `server.page_cache_rows`; cursor pages use one only if it is cached
/// (paging deep into a board by cursor should not read its head each time). `None`: read the
/// page from Redis.
async fn cached_page(
    state: &AppState,
    keys: &BoardKeys,
    start: &PageStart,
    limit: u64,
    ties: Ties,
) -> Result<Option<Page>, ApiError> {
    if state.head_rows == 0 || !state.head_cache.enabled() {
        return Ok(None);
    }
    if let Some(head) = state.head_cache.get(keys.board.as_str()) {
        return Ok(head.page(start, limit, ties));
    }
    let within_head = matches!(start, PageStart::Offset(offset) if offset.saturating_add(limit) <= state.head_rows);
    if !within_head {
        return Ok(None);
    }
    let head = state
        .head_cache
        .get_or_fetch(
            keys.board.clone(),
            Head::read(&state.store, keys, state.head_rows),
        )
        .await?;
    Ok(head.page(start, limit, ties))
}

/// A player's standing on a board.
#[derive(Debug, Serialize, ToSchema)]
pub struct StandingResponse {
    #[serde(flatten)]
    view: BoardView,
    /// `standard`, `dense` or `ordinal`.
    ranking: &'static str,
    total: u64,
    user_id: String,
    rank: u64,
    /// The board's score (on a board with several columns, the first column's; `null` while
    /// the player has no value in it).
    #[schema(value_type = Option<f64>)]
    score: Option<serde_json::Number>,
    /// On a board with several score columns: each column's value by name.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    columns: Option<serde_json::Map<String, serde_json::Value>>,
    /// The share of the board's players with a strictly worse score, in percent (0 to 100,
    /// two decimals; 0 for the only player, or when all are tied): "better than 97% of
    /// players".
    percentile: f64,
    /// With `with=names`: the player's display name (`null`: none set).
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<Option<String>>,
    /// With `with=names`: the player's public metadata (`null`: none set).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    meta: Option<Option<serde_json::Value>>,
    /// The rows around the player (the player's included), best first.
    around: Vec<RankedEntry>,
}

/// How many rows around the player (documentation only, see [`ViewParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct AroundParams {
    /// Rows above and below the player (default 0, at most 100).
    #[param(maximum = 100, default = 0)]
    around: Option<u64>,
}

/// `GET /v1/products/{product_id}/boards/{board}/players/{user_id}`: rank, score and
/// `around` rows above and below.
#[utoipa::path(
    get,
    path = "/v1/products/{product_id}/boards/{board}/players/{user_id}",
    tag = "leaderboards",
    summary = "A player's rank and score, with the rows around them",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("board" = String, Path, description = "Board name"),
        ("user_id" = String, Path, description = "Player id"),
        ViewParams,
        AroundParams,
        NamesParams,
    ),
    responses(
        (status = 200, description = "The player's standing", body = StandingResponse),
        (status = 400, description = "`invalid_query`, `invalid_user_id`, `invalid_product_id` or `invalid_path`", body = ErrorBody),
        (status = 404, description = "`player_not_on_board`, `product_not_found`, `board_not_found`, `window_not_kept` or `period_not_found`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn standing(
    State(state): State<AppState>,
    path: Result<Path<(String, String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<StandingResponse>, ApiError> {
    let Path((product, board, player)) = path.map_err(bad_path)?;
    let query = QueryParams::parse(
        raw,
        &["window", "period", "season", "around", "ranking", "with"],
    )?;
    let with_names = query.with_names()?;
    let (view, keys) = board_view(&state, &product, &board, &query)?;
    let player = parse_player(&player)?;
    let around = query.number("around", 0, MAX_AROUND)?;
    let ties = query.ties()?;
    let standing = rank::standing(&state.store, &keys, player.as_str(), around, ties)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::PlayerNotOnBoard,
                format!("player `{player}` is not on board `{board}`"),
            )
        })?;
    let mut standing = standing;
    if with_names {
        let mut rows: Vec<&mut RankedEntry> = standing.neighbours.iter_mut().collect();
        rows.push(&mut standing.entry);
        add_names(&state, &view.product_id, &mut rows).await?;
    }
    Ok(Json(StandingResponse {
        view,
        ranking: ties.name(),
        name: standing.entry.name,
        meta: standing.entry.meta,
        total: standing.total,
        user_id: standing.entry.user_id,
        rank: standing.entry.rank,
        score: standing.entry.score,
        columns: standing.entry.columns,
        percentile: standing.entry.percentile.unwrap_or_default(),
        around: standing.neighbours,
    }))
}

/// The ranks of several players.
#[derive(Debug, Serialize, ToSchema)]
pub struct RanksResponse {
    #[serde(flatten)]
    view: BoardView,
    /// `standard`, `dense` or `ordinal`.
    ranking: &'static str,
    /// The players on the board, best first.
    entries: Vec<RankedEntry>,
    /// The players asked for who are not on the board, in the order asked.
    not_on_board: Vec<String>,
}

/// The players asked about (documentation only, see [`ViewParams`]).
#[derive(IntoParams)]
#[into_params(parameter_in = Query)]
#[allow(dead_code)]
pub struct PlayersParams {
    /// 1 to 100 player ids, the parameter repeated: `user_id=a&user_id=b`.
    user_id: Vec<String>,
}

/// `GET /v1/products/{product_id}/boards/{board}/ranks?user_id=a&user_id=b…`: ranks and
/// scores of up to 100 players (e.g. a friends list).
#[utoipa::path(
    get,
    path = "/v1/products/{product_id}/boards/{board}/ranks",
    tag = "leaderboards",
    summary = "Ranks and scores of up to 100 players at once (a friends list)",
    params(
        ("product_id" = String, Path, description = "Product (game) id"),
        ("board" = String, Path, description = "Board name"),
        ViewParams,
        PlayersParams,
        NamesParams,
    ),
    responses(
        (status = 200, description = "The players on the board, best first, and those not on it", body = RanksResponse),
        (status = 400, description = "`invalid_query` (no or too many players), `invalid_user_id`, `invalid_product_id` or `invalid_path`", body = ErrorBody),
        (status = 404, description = "`product_not_found`, `board_not_found`, `window_not_kept` or `period_not_found`", body = ErrorBody),
        (status = 503, description = "The store is unavailable", body = ErrorBody),
    )
)]
pub async fn ranks(
    State(state): State<AppState>,
    path: Result<Path<(String, String)>, PathRejection>,
    RawQuery(raw): RawQuery,
) -> Result<Json<RanksResponse>, ApiError> {
    let Path((product, board)) = path.map_err(bad_path)?;
    let query = QueryParams::parse(
        raw,
        &["window", "period", "season", "user_id", "ranking", "with"],
    )?;
    let with_names = query.with_names()?;
    let (view, keys) = board_view(&state, &product, &board, &query)?;
    let ties = query.ties()?;
    let mut players: Vec<String> = Vec::new();
    for raw in query.all("user_id") {
        let player = parse_player(raw)?;
        if !players.iter().any(|p| p == player.as_str()) {
            players.push(player.as_str().to_owned());
        }
    }
    if players.is_empty() || players.len() > MAX_PLAYERS {
        return Err(ApiError::new(
            ErrorCode::InvalidQuery,
            format!("name 1 to {MAX_PLAYERS} players, each as `user_id=<id>`"),
        ));
    }
    let names: Vec<&str> = players.iter().map(String::as_str).collect();
    let found = rank::ranks(&state.store, &keys, &names, ties).await?;
    let mut entries = Vec::new();
    let mut not_on_board = Vec::new();
    for (player, entry) in players.into_iter().zip(found) {
        match entry {
            Some(entry) => entries.push(entry),
            None => not_on_board.push(player),
        }
    }
    entries.sort_by_key(|entry| entry.rank);
    if with_names {
        add_names(
            &state,
            &view.product_id,
            &mut entries.iter_mut().collect::<Vec<_>>(),
        )
        .await?;
    }
    Ok(Json(RanksResponse {
        view,
        ranking: ties.name(),
        entries,
        not_on_board,
    }))
}
