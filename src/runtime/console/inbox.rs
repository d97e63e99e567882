//! `/`: the tickets being worked, first response due soonest first,
//! overdue in red, with filters (queue, status, mine, overdue), counts per
//! queue (unread, overdue) and a part that refreshes itself every
//! `refresh_secs` (htmx polling `/inbox/live` with the same filters).

use axum::Extension;
use axum::extract::{Query, State};
use axum::response::{Html, IntoResponse, Response};

use super::auth::Agent;
use super::pages::{FilterView, InboxLive, InboxLiveFragment, InboxPage, Me, QueueView, RowView};
use super::{ConsoleError, Shared};
use crate::domain::clock::rfc3339;
use crate::domain::states::TicketStatus;
use crate::storage::console::{self as store_console, InboxQuery, InboxRow};

/// Tickets a page.
pub const PAGE_SIZE: i64 = 50;

/// The inbox's filters, as the form sends them (no ticket data: queue
/// names and flags).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize)]
pub struct Filters {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    queue: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    status: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    mine: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    overdue: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    page: Option<i64>,
}

impl Filters {
    fn status(&self) -> Option<TicketStatus> {
        self.status.parse().ok()
    }

    fn page(&self) -> i64 {
        self.page.unwrap_or(1).max(1)
    }

    /// `path` with these filters, on another page or queue.
    fn href(&self, path: &str, page: Option<i64>, queue: Option<&str>) -> String {
        let mut f = self.clone();
        f.page = page.filter(|p| *p > 1);
        if let Some(q) = queue {
            f.queue = q.to_owned();
        }
        let query = serde_urlencoded::to_string(&f).unwrap_or_default();
        if query.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{query}")
        }
    }
}

/// The inbox page.
pub async fn page(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    Query(f): Query<Filters>,
) -> Result<Response, ConsoleError> {
    let live = live_view(&c, &me, &f).await?;
    let queues = live.queues.iter().map(|q| q.name.clone()).collect();
    let page = InboxPage {
        me: Me {
            name: &me.name,
            csrf: &me.csrf,
        },
        filter: FilterView {
            queue: f.queue.clone(),
            status: f.status().map(|s| s.as_str()).unwrap_or("").to_owned(),
            mine: !f.mine.is_empty(),
            overdue: !f.overdue.is_empty(),
            queues,
            statuses: TicketStatus::ALL.iter().map(|s| s.as_str()).collect(),
        },
        live,
    };
    Ok(Html(askama::Template::render(&page)?).into_response())
}

/// The part of the inbox that refreshes itself.
pub async fn live(
    State(c): State<Shared>,
    Extension(me): Extension<Agent>,
    Query(f): Query<Filters>,
) -> Result<Response, ConsoleError> {
    let fragment = InboxLiveFragment {
        live: live_view(&c, &me, &f).await?,
    };
    Ok(Html(askama::Template::render(&fragment)?).into_response())
}

async fn live_view(c: &Shared, me: &Agent, f: &Filters) -> Result<InboxLive, ConsoleError> {
    let now = c.clock.now_ms();
    let page = f.page();
    let q = InboxQuery {
        agent: &me.name,
        status: f.status(),
        queue: (!f.queue.is_empty()).then_some(f.queue.as_str()),
        mine: !f.mine.is_empty(),
        overdue: !f.overdue.is_empty(),
        now,
        limit: PAGE_SIZE,
        offset: (page - 1).saturating_mul(PAGE_SIZE),
    };
    // The page, the queues' counts and (when those do not say it) the
    // total are read at once, each on a connection of its own.
    let (rows, counts, counted) = tokio::try_join!(
        store_console::inbox(&c.store, &q),
        store_console::queue_counts(&c.store, &me.name, now),
        async {
            if store_console::counts_say_total(&q) {
                Ok(None)
            } else {
                store_console::inbox_total(&c.store, &q).await.map(Some)
            }
        },
    )?;
    let total = counted.unwrap_or_else(|| store_console::total_from_counts(&q, &counts));
    let pages = ((total + PAGE_SIZE - 1) / PAGE_SIZE).max(1);
    // The queues' counts are of the tickets being worked: they say how
    // many of the list are unread only when nothing else narrows it.
    let plain = f.status.is_empty() && f.mine.is_empty() && f.overdue.is_empty();
    let unread = counts
        .iter()
        .filter(|q| plain && (f.queue.is_empty() || q.queue == f.queue))
        .map(|q| q.unread)
        .sum();
    let heading = match (f.queue.as_str(), f.status()) {
        ("", None) => "Being worked".to_owned(),
        ("", Some(s)) => format!("{s}"),
        (q, None) => format!("Queue {q}"),
        (q, Some(s)) => format!("Queue {q}, {s}"),
    };
    Ok(InboxLive {
        queues: counts
            .into_iter()
            .map(|q| QueueView {
                href: f.href("/", None, Some(&q.queue)),
                current: q.queue == f.queue,
                name: q.queue,
                total: q.total,
                unread: q.unread,
                overdue: q.overdue,
            })
            .collect(),
        rows: rows.into_iter().map(|r| row_view(c, r, now)).collect(),
        total,
        unread,
        page,
        pages,
        prev_href: (page > 1).then(|| f.href("/", Some(page - 1), None)),
        next_href: (page < pages).then(|| f.href("/", Some(page + 1), None)),
        live_href: f.href("/inbox/live", Some(page), None),
        refresh_secs: c.settings.refresh_secs,
        heading,
    })
}

fn row_view(c: &Shared, r: InboxRow, now: i64) -> RowView {
    let overdue = r.status.is_active() && r.due.is_some_and(|d| d < now);
    RowView {
        reference: r.id.to_string(),
        status: r.status.as_str().to_owned(),
        priority: r.priority.to_string(),
        queue: r.queue,
        platform: r.platform.to_string(),
        customer: r.customer,
        assignee: r.assignee.unwrap_or_else(|| "-".into()),
        due_iso: r.due.map(rfc3339).unwrap_or_default(),
        due_text: r.due.map(|d| c.when(d)).unwrap_or_default(),
        overdue,
        signals: r.signals,
        unread: r.unread,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_make_links_without_empty_fields() {
        let f = Filters {
            queue: "billing".into(),
            mine: "1".into(),
            ..Filters::default()
        };
        assert_eq!(f.href("/", None, None), "/?queue=billing&mine=1");
        assert_eq!(f.href("/", Some(3), None), "/?queue=billing&mine=1&page=3");
        assert_eq!(
            f.href("/", Some(1), Some("a b&c")),
            "/?queue=a+b%26c&mine=1"
        );
        assert_eq!(
            Filters::default().href("/inbox/live", None, None),
            "/inbox/live"
        );
    }
}
