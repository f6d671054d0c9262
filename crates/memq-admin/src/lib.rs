//! A live view of a running [`MessageQueue`], as an [axum](https://docs.rs/axum) `Router`
//! the application mounts on its own server (this crate opens no listener):
//!
//! * `GET /` — an HTML page with every topic (depth, bytes, publish rate with a sparkline,
//!   subscribers), its partitions and its consumer groups (members, lag, pending, dead
//!   letters), refreshed every second. Everything is served by the crate: no CDN, no build
//!   step. Names are put into the page as text, never as markup, so a topic named
//!   `<script>…</script>` shows as that text.
//! * `GET /api/snapshot` — the same data as JSON.
//! * `POST /api/topics/{name}/delete` — only when the application enabled changes with a
//!   token ([`Admin::with_token`]); the request must carry `Authorization: Bearer <token>`.
//!   Without a token the route does not exist.
//!
//! # Examples
//!
//! ```no_run
//! use tokio_memq::MessageQueue;
//!
//! # #[tokio::main]
//! # async fn main() -> std::io::Result<()> {
//! let mq = MessageQueue::new();
//! let app = axum::Router::new().nest("/admin", memq_admin::router(mq.clone()));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:8080").await?;
//! axum::serve(listener, app).await
//! # }
//! ```

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Serialize;
use tokio_memq::MessageQueue;

/// The page, with its script and style inline.
const PAGE: &str = include_str!("page.html");

/// The admin page's settings: read-only unless [`with_token`](Self::with_token) is given.
///
/// # Examples
///
/// ```
/// use tokio_memq::MessageQueue;
///
/// let mq = MessageQueue::new();
/// let read_only = memq_admin::Admin::new(mq.clone()).router();
/// let with_changes = memq_admin::Admin::new(mq).with_token("s3cret-token").router();
/// # let _ = (read_only, with_changes);
/// ```
#[derive(Clone)]
pub struct Admin {
    mq: MessageQueue,
    token: Option<String>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin")
            .field("changes_enabled", &self.token.is_some())
            .finish()
    }
}

/// The read-only router for `mq`: see the [crate docs](crate).
///
/// # Examples
///
/// See the [crate docs](crate).
pub fn router(mq: MessageQueue) -> Router {
    Admin::new(mq).router()
}

impl Admin {
    /// A read-only view of `mq`.
    pub fn new(mq: MessageQueue) -> Self {
        Admin { mq, token: None }
    }

    /// Enables the routes that change state (deleting a topic), for requests that carry
    /// `Authorization: Bearer <token>`. ASCII whitespace around the token is not part of it
    /// (HTTP drops spaces and tabs around a header value); other whitespace, such as a
    /// no-break space, is. An empty token, or one with a character a header cannot carry (a
    /// control character), enables nothing: no request could send it.
    ///
    /// ```
    /// use tokio_memq::MessageQueue;
    ///
    /// let none = memq_admin::Admin::new(MessageQueue::new()).with_token(" \t");
    /// assert!(!none.changes_enabled(), "whitespace only: nothing to send");
    /// let padded = memq_admin::Admin::new(MessageQueue::new()).with_token(" s3cret\n");
    /// assert!(padded.changes_enabled(), "taken as `s3cret`");
    /// let control = memq_admin::Admin::new(MessageQueue::new()).with_token("s3\x07cret");
    /// assert!(!control.changes_enabled());
    /// ```
    #[must_use]
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        let token = token.into();
        // ASCII whitespace only (spaces, tabs, a trailing newline read from
        // a file): a token framed by other whitespace (U+00A0, U+3000)
        // keeps it, as a request carries it, rather than being cut down
        // to a shorter token its owner never chose.
        let token = token.trim_matches(|c: char| c.is_ascii_whitespace());
        let sendable = !token.is_empty() && !token.chars().any(char::is_control);
        self.token = sendable.then(|| token.to_owned());
        self
    }

    /// Whether the routes that change state are enabled (a usable token was given).
    pub fn changes_enabled(&self) -> bool {
        self.token.is_some()
    }

    /// The router: mount it where you like (`Router::nest("/admin", ...)`).
    pub fn router(self) -> Router {
        let changes = self.token.is_some();
        let mut router = Router::new()
            .route("/", get(page))
            .route("/api/snapshot", get(snapshot));
        if changes {
            router = router.route("/api/topics/{name}/delete", post(delete_topic));
        }
        router.with_state(self)
    }
}

async fn page() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // Only the page's own inline script and same-origin requests.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:",
            ),
        ],
        Html(PAGE),
    )
        .into_response()
}

/// The JSON the page polls.
#[derive(Debug, Serialize)]
struct Snapshot {
    /// Whether the routes that change state are enabled.
    changes: bool,
    topics: Vec<Topic>,
}

#[derive(Debug, Serialize)]
struct Topic {
    name: String,
    partitioned: bool,
    depth: usize,
    bytes: usize,
    published: u64,
    evicted: u64,
    expired: u64,
    subscribers: usize,
    low_offset: u64,
    next_offset: u64,
    partitions: Vec<Partition>,
    groups: Vec<Group>,
}

#[derive(Debug, Serialize)]
struct Partition {
    partition: usize,
    depth: usize,
    published: u64,
    subscribers: usize,
}

#[derive(Debug, Serialize)]
struct Group {
    name: String,
    members: usize,
    lag: u64,
    pending: usize,
    redeliveries: u64,
    dead_letters: u64,
}

fn collect(admin: &Admin) -> Snapshot {
    let topics = admin
        .mq
        .snapshot()
        .into_iter()
        .map(|t| Topic {
            partitioned: !t.partitions.is_empty(),
            depth: t.stats.message_count,
            bytes: t.stats.bytes,
            published: t.stats.published,
            evicted: t.stats.evicted,
            expired: t.stats.expired,
            subscribers: t.stats.subscriber_count,
            low_offset: t.stats.low_offset,
            next_offset: t.stats.next_offset,
            partitions: t
                .partitions
                .iter()
                .map(|p| Partition {
                    partition: p.partition,
                    depth: p.message_count,
                    published: p.published,
                    subscribers: p.subscriber_count,
                })
                .collect(),
            groups: t
                .groups
                .iter()
                .map(|g| Group {
                    name: g.name.clone(),
                    members: g.members,
                    lag: g.lag,
                    pending: g.pending,
                    redeliveries: g.redeliveries,
                    dead_letters: g.dead_lettered,
                })
                .collect(),
            name: t.name,
        })
        .collect();
    Snapshot {
        changes: admin.token.is_some(),
        topics,
    }
}

/// `value` as a JSON response.
fn json(value: &impl Serialize) -> Response {
    match serde_json::to_string(value) {
        Ok(body) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            body,
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn snapshot(State(admin): State<Admin>) -> Response {
    json(&collect(&admin))
}

async fn delete_topic(State(admin): State<Admin>, Path(name): Path<String>, headers: HeaderMap) -> Response {
    let Some(token) = &admin.token else {
        return StatusCode::NOT_FOUND.into_response();
    };
    // Read as bytes, not text: a header value may carry any byte but
    // control characters, and a token that is not ASCII (accepted by
    // `with_token`) arrives as its UTF-8 bytes.
    let given = headers
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        .and_then(|v| v.iter().position(|&b| b == b' ').map(|i| (&v[..i], &v[i + 1..])))
        // The scheme is case-insensitive (RFC 7235); the token is not. One or more
        // spaces separate them (RFC 6750: `"Bearer" 1*SP b64token`).
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer"))
        .map(|(_, token)| token.trim_ascii_start());
    if !given.is_some_and(|g| same(g, token.as_bytes())) {
        // RFC 7235: a 401 says how to authenticate.
        return (
            StatusCode::UNAUTHORIZED,
            [(header::WWW_AUTHENTICATE, "Bearer")],
            "a valid bearer token is required",
        )
            .into_response();
    }
    let deleted = admin.mq.delete_topic(&name).await;
    json(&serde_json::json!({ "deleted": deleted }))
}

/// Compares without stopping at the first difference (the time taken does not tell how
/// much of a guess was right).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
        assert!(!same(b"", b"a"));
    }
}
