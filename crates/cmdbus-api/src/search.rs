//! Finding commands: a page of them (`GET /v1/commands`) and how many match per status
//! (`GET /v1/commands/counts`), with one set of filters: type, subject, an id or a fragment of
//! one, ordering and idempotency keys, error code, lane and a window of creation times. Counts
//! of a type (or of everything) come exactly from the maintained counters; any other filter is
//! counted over a bounded window, and says when its count is only a lower bound.

use axum::extract::State;
use chrono::{DateTime, Utc};
use cmdbus_auth::{Principal, Reach, Scope};
use cmdbus_domain::{CommandView, Status};
use cmdbus_store::{CommandRow, ListFilter};
use serde::{Deserialize, Serialize, Serializer, ser::SerializeMap};
use utoipa::{
    IntoParams, ToSchema,
    openapi::{ObjectBuilder, Type},
};

use crate::{
    ApiError, ApiJson, ApiState,
    auth::Caller,
    discard::ParkedLane,
    extract::{ApiQuery, parse_uuid},
    fields::{check_filter, name_schema},
    responses::{BadRequest, Forbidden, Unavailable},
};

/// Largest page.
const MAX_LIMIT: i64 = 500;

/// The filters of `GET /v1/commands` and `GET /v1/commands/counts`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SearchQuery {
    /// Only commands of this type.
    #[serde(rename = "type")]
    #[param(schema_with = kind_filter)]
    kind: Option<String>,
    /// Only commands of this subject.
    #[param(schema_with = subject_filter)]
    subject: Option<String>,
    /// A command id, or at least 4 hexadecimal characters of one (hyphens are ignored).
    #[param(schema_with = id_search)]
    q: Option<String>,
    /// Only commands of this ordering key.
    #[param(schema_with = ordering_key_filter)]
    ordering_key: Option<String>,
    /// Only commands submitted with this idempotency key.
    #[param(schema_with = idempotency_key_filter)]
    idempotency_key: Option<String>,
    /// Only commands whose last error has this code.
    #[param(schema_with = error_code_filter)]
    error_code: Option<String>,
    /// Only failures parked in this exception lane.
    #[param(inline)]
    lane: Option<ParkedLane>,
    /// Only commands created at or after this time (RFC 3339).
    created_after: Option<DateTime<Utc>>,
    /// Only commands created before this time (RFC 3339).
    created_before: Option<DateTime<Utc>>,
}

impl SearchQuery {
    /// The store's filter for `principal`: its own subject or ids only, for a browser token.
    fn filter(self, principal: &Principal) -> Result<ListFilter, ApiError> {
        for (parameter, value) in [
            ("type", &self.kind),
            ("subject", &self.subject),
            ("ordering_key", &self.ordering_key),
            ("idempotency_key", &self.idempotency_key),
            ("error_code", &self.error_code),
        ] {
            if let Some(value) = value {
                check_filter(parameter, value)?;
            }
        }
        let (id, id_fragment) = match &self.q {
            None => (None, None),
            Some(q) => match parse_uuid(q) {
                Some(id) => (Some(id), None),
                None => (None, Some(id_fragment(q)?)),
            },
        };
        let (subject, mut ids) = match &principal.reach {
            Reach::Tenant => (self.subject, None),
            Reach::Subject(mine) => {
                if self.subject.as_ref().is_some_and(|asked| asked != mine) {
                    return Err(ApiError::InvalidQuery(
                        "a token lists its own subject only".to_owned(),
                    ));
                }
                (Some(mine.clone()), None)
            }
            Reach::Ids(ids) => (self.subject, Some(ids.iter().copied().collect::<Vec<_>>())),
        };
        if let Some(id) = id {
            ids = Some(match ids {
                Some(reach) => reach.into_iter().filter(|held| *held == id).collect(),
                None => vec![id],
            });
        }
        Ok(ListFilter {
            kind: self.kind,
            subject,
            ids,
            id_fragment,
            ordering_key: self.ordering_key,
            idempotency_key: self.idempotency_key,
            error_code: self.error_code,
            lane: self.lane.map(|lane| lane.as_str().to_owned()),
            created_after: self.created_after,
            created_before: self.created_before,
            ..ListFilter::default()
        })
    }
}

/// A fragment of an id as the store matches it: 4 to 32 hexadecimal characters, lowercase,
/// hyphens dropped.
fn id_fragment(q: &str) -> Result<String, ApiError> {
    let fragment: String = q.chars().filter(|c| *c != '-').collect();
    if q.len() > 36
        || !(4..=32).contains(&fragment.len())
        || !fragment.chars().all(|c| c.is_ascii_hexdigit())
    {
        return Err(ApiError::InvalidQuery(
            "q must be a command id, or 4 to 32 hexadecimal characters of one".to_owned(),
        ));
    }
    Ok(fragment.to_ascii_lowercase())
}

/// The page of `GET /v1/commands`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct PageQuery {
    /// Only commands in this status.
    status: Option<Status>,
    /// Commands per page.
    #[param(minimum = 1, maximum = 500, default = 50)]
    limit: Option<i64>,
    /// The `next_cursor` of the previous page.
    #[param(format = Uuid)]
    cursor: Option<String>,
}

/// A page of commands.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page {
    /// Newest first.
    items: Vec<CommandView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last page. A filter without an
    /// index of its own (a status other than `fail`, a type, `q`, keys, an error code) looks
    /// through at most 2,000 commands per page, so its page can be short (or empty) and still
    /// have a next one.
    #[schema(required = true, format = Uuid)]
    next_cursor: Option<String>,
    /// The resume point of this read: a WebSocket subscription with `since` set to it misses no
    /// change made after the page was read.
    since: String,
}

/// List and search commands, newest first.
#[utoipa::path(
    get,
    path = "/v1/commands",
    operation_id = "listCommands",
    tag = "commands",
    params(PageQuery, SearchQuery),
    responses(
        (status = 200, description = "A page of commands.", body = Page),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(page): ApiQuery<PageQuery>,
    ApiQuery(search): ApiQuery<SearchQuery>,
) -> Result<ApiJson<Page>, ApiError> {
    let principal = caller.require(Scope::Read)?;
    let limit = page.limit.unwrap_or(50);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::InvalidQuery(format!(
            "limit must be 1 to {MAX_LIMIT}"
        )));
    }
    let before = match &page.cursor {
        None => None,
        Some(cursor) => Some(
            parse_uuid(cursor)
                .ok_or_else(|| ApiError::InvalidQuery(format!("bad cursor {cursor:?}")))?,
        ),
    };
    let filter = ListFilter {
        status: page.status.map(|status| status.as_str().to_owned()),
        before,
        limit: limit + 1,
        ..search.filter(principal)?
    };
    let cmdbus_store::Listed {
        mut rows,
        cursor: since,
        scanned_to,
    } = cmdbus_store::list(&state.pool, &principal.tenant, &filter).await?;
    let more = rows.len() as i64 > limit;
    rows.truncate(limit as usize);
    // A full page continues after its last command; a filter that looked through its whole
    // window continues where the window ended, even with a short page.
    let next_cursor = if more {
        rows.last().map(|row| row.id)
    } else {
        scanned_to
    }
    .map(|id| id.to_string());
    let items = rows.iter().map(CommandRow::view).collect();
    Ok(ApiJson(Page {
        items,
        next_cursor,
        since: since.as_str().to_owned(),
    }))
}

/// How many commands there are in each status.
#[derive(Debug, Default)]
pub(crate) struct StatusCounts(Vec<(Status, i64)>);

impl Serialize for StatusCounts {
    /// Every status, in lifecycle order, 0 where none.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(Status::ALL.len()))?;
        for status in Status::ALL {
            let count = self.0.iter().find(|(counted, _)| *counted == status);
            map.serialize_entry(status.as_str(), &count.map_or(0, |(_, n)| *n))?;
        }
        map.end()
    }
}

/// Counts per status.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Counts {
    /// Matching commands in each status (every status is present, 0 where none).
    #[schema(schema_with = status_counts_schema)]
    counts: StatusCounts,
    /// True when every count is exact; false when the filter looked through its bound of
    /// 10,000 commands and more were left: each count is then a lower bound.
    exact: bool,
}

/// Count commands per status.
///
/// With the filters of `GET /v1/commands` (not its `status`, `limit` or `cursor`). Filtered by
/// type only, or not at all, the counts are exact and cost a few rows whatever the table holds
/// (counters kept as commands change). Any other filter counts among at most the 10,000 newest
/// commands its indexed part selects (`exact: false` when more were left).
#[utoipa::path(
    get,
    path = "/v1/commands/counts",
    operation_id = "countCommands",
    tag = "commands",
    params(SearchQuery),
    responses(
        (status = 200, description = "Counts per status.", body = Counts),
        (status = 400, response = BadRequest),
        (status = 403, response = Forbidden),
        (status = 503, response = Unavailable),
    ),
)]
pub(crate) async fn counts(
    State(state): State<ApiState>,
    caller: Caller,
    ApiQuery(search): ApiQuery<SearchQuery>,
) -> Result<ApiJson<Counts>, ApiError> {
    let principal = caller.require(Scope::Read)?;
    let filter = search.filter(principal)?;
    let (counted, exact) = if filter.counted_by_type() {
        let counts =
            cmdbus_store::counts_by_status(&state.pool, &principal.tenant, filter.kind.as_deref())
                .await?;
        (counts, true)
    } else {
        let counted = cmdbus_store::count_matching(&state.pool, &principal.tenant, &filter).await?;
        (counted.counts, counted.exact)
    };
    let counts = counted
        .into_iter()
        .filter_map(|(status, count)| Some((status.parse().ok()?, count)))
        .collect();
    Ok(ApiJson(Counts {
        counts: StatusCounts(counts),
        exact,
    }))
}

/// Every status a property, required: what `StatusCounts` writes.
fn status_counts_schema() -> utoipa::openapi::Object {
    let mut counts = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(
            "Matching commands in each status (every status is present, 0 where none).",
        ));
    for status in Status::ALL {
        counts = counts
            .property(
                status.as_str(),
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(
                        utoipa::openapi::KnownFormat::Int64,
                    )))
                    .minimum(Some(0)),
            )
            .required(status.as_str());
    }
    counts.build()
}

// A field whose schema comes from a function loses its doc comment: these say it again.
fn kind_filter() -> utoipa::openapi::Object {
    name_schema("Only commands of this type.")
}

fn subject_filter() -> utoipa::openapi::Object {
    name_schema("Only commands of this subject (a browser token lists its own only).")
}

fn ordering_key_filter() -> utoipa::openapi::Object {
    name_schema("Only commands of this ordering key.")
}

fn idempotency_key_filter() -> utoipa::openapi::Object {
    name_schema("Only commands submitted with this idempotency key.")
}

fn error_code_filter() -> utoipa::openapi::Object {
    name_schema("Only commands whose last error has this code.")
}

fn id_search() -> utoipa::openapi::Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .description(Some(
            "A command id, or 4 to 32 hexadecimal characters of one (hyphens are ignored).",
        ))
        .min_length(Some(4))
        .max_length(Some(36))
        .pattern(Some("^-*([0-9a-fA-F]-*){4,32}$"))
        .build()
}
