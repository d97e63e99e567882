//! The team's chat: an incident alert as Slack's and Mattermost's incoming
//! webhooks take it, and the POST that delivers it.
//!
//! Both accept `text` (markdown) and `attachments` (a colour bar, a
//! title, short fields); both ignore keys they do not know, so the facts
//! travel too, under `incident`, for a tool reading the endpoint. What a
//! customer wrote is made harmless for chat before it goes: `&`, `<`, `>`
//! escaped (Slack's control characters, which would let a message ping
//! `<!channel>`), `@` kept from forming a mention (`@here`, `@all`),
//! links masked and markdown's brackets and backticks defused (no image a
//! client would load, no link a teammate could click), e-mail addresses
//! and long numbers (phones, accounts, cards) masked.

use std::time::Duration;

use serde::Serialize;

use crate::domain::secret::Secret;

/// What happened to the incident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertEvent {
    /// It opened.
    Opened,
    /// It grew since the last alert.
    Growing,
    /// An agent closed it.
    Closed,
}

/// A message of the incident, as the alert shows it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertSample {
    /// `x`, `mastodon` or `bluesky`.
    pub platform: String,
    /// The customer's handle, with its `@`.
    pub handle: String,
    /// The text, made harmless ([`for_chat`]).
    pub text: String,
}

/// The facts of an incident alert (the `incident` object of the JSON).
#[derive(Debug, Clone, Serialize)]
pub struct IncidentAlert {
    /// What happened.
    pub event: AlertEvent,
    /// `I-3`.
    pub id: String,
    /// The rule.
    pub rule: String,
    /// `open` or `closed`.
    pub status: String,
    /// Distinct customers who wrote about it.
    pub customers: i64,
    /// Their messages.
    pub messages: i64,
    /// The detection window, in minutes.
    pub window_mins: u32,
    /// Distinct customers in the window when it opened.
    pub window_customers: i64,
    /// The usual count for that window at that time of the week.
    pub baseline: f64,
    /// Customers per minute from its first message to its latest.
    pub rate_per_min: f64,
    /// RFC 3339 times.
    pub opened_at: String,
    /// Its first message.
    pub first_message_at: String,
    /// Its latest.
    pub last_message_at: String,
    /// When it closed, if it did.
    pub closed_at: Option<String>,
    /// Who closed it.
    pub closed_by: Option<String>,
    /// Its ticket, `T-1042`.
    pub ticket: Option<String>,
    /// A link to the ticket (`[incidents] ticket_url`), if configured.
    pub ticket_url: Option<String>,
    /// Closing notices queued to customers (on close).
    pub notices: Option<i64>,
    /// Its latest messages.
    pub samples: Vec<AlertSample>,
}

impl IncidentAlert {
    /// The JSON document to post: `text`, `attachments` and `incident`.
    pub fn document(&self) -> serde_json::Value {
        let (verb, color) = match self.event {
            AlertEvent::Opened => ("opened", "#d00000"),
            AlertEvent::Growing => ("is growing", "#e07000"),
            AlertEvent::Closed => ("closed", "#2e8b57"),
        };
        let ticket = match (&self.ticket, &self.ticket_url) {
            (Some(t), Some(url)) => format!(" — ticket <{url}|{t}>"),
            (Some(t), None) => format!(" — ticket {t}"),
            _ => String::new(),
        };
        let text = format!(
            "Incident {} {verb}: rule `{}`, {} customers, {} messages{ticket}",
            self.id, self.rule, self.customers, self.messages
        );
        let mut fields = vec![
            field("Customers", self.customers.to_string()),
            field("Messages", self.messages.to_string()),
            field(
                "Opened with",
                format!(
                    "{} customers in {} min (usual {:.1})",
                    self.window_customers, self.window_mins, self.baseline
                ),
            ),
            field("Rate", format!("{:.1} customers/min", self.rate_per_min)),
            field("First message", self.first_message_at.clone()),
            field("Latest message", self.last_message_at.clone()),
        ];
        if let Some(n) = self.notices {
            fields.push(field("Closing notices", n.to_string()));
        }
        let samples: Vec<String> = self
            .samples
            .iter()
            .map(|s| format!("{} ({}): {}", s.handle, s.platform, s.text))
            .collect();
        serde_json::json!({
            "text": text,
            "username": "helpdesk",
            "attachments": [{
                "fallback": text,
                "color": color,
                "title": format!("Incident {} — {}", self.id, self.rule),
                "text": samples.join("\n"),
                "fields": fields,
            }],
            "incident": self,
        })
    }
}

fn field(title: &str, value: String) -> serde_json::Value {
    serde_json::json!({ "title": title, "value": value, "short": true })
}

/// A customer's text made harmless for a chat channel and cut to 280
/// characters: see the module's comment.
pub fn for_chat(text: &str) -> String {
    let masked = mask_numbers(&mask_emails(&mask_links(text)));
    let mut out = String::with_capacity(masked.len());
    for (i, c) in masked.chars().enumerate() {
        if i == 280 {
            out.push('…');
            break;
        }
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // A word joiner after `@`: `@here` no longer pings anyone.
            '@' => out.push_str("@\u{2060}"),
            // Markdown's links and images need brackets; code needs
            // backticks: neither survives.
            '[' => out.push('('),
            ']' => out.push(')'),
            '`' => out.push('\''),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// Words holding a link (`https://…`, `www.…`, or a bare domain such as
/// `evil.com/login`, as X's linker finds them) become `(link)`.
fn mask_links(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let lower = w.to_ascii_lowercase();
            if lower.contains("://") || lower.contains("www.") || crate::domain::text::x_has_url(w)
            {
                "(link)"
            } else {
                w
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Words with an `@` inside (`name@example.com`) become `(email)`.
fn mask_emails(text: &str) -> String {
    text.split(' ')
        .map(|w| {
            let inner = w.trim_matches(|c: char| !c.is_alphanumeric());
            match inner.find('@') {
                Some(i) if i > 0 && inner[i + 1..].contains('.') => w.replace(inner, "(email)"),
                _ => w.to_owned(),
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs of 6 or more digits, spaces, dots and dashes between them
/// allowed (`06 12 34 56 78`, `4970-1012-3456`), become `(number)`; a
/// date or a price stays.
fn mask_numbers(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < chars.len() {
        if !chars[i].is_ascii_digit() {
            out.push(chars[i]);
            i += 1;
            continue;
        }
        let (mut j, mut digits, mut end) = (i, 0, i);
        while j < chars.len() {
            if chars[j].is_ascii_digit() {
                digits += 1;
                end = j + 1;
            } else if !matches!(chars[j], ' ' | '.' | '-')
                || !chars.get(j + 1).is_some_and(|c| c.is_ascii_digit())
            {
                break;
            }
            j += 1;
        }
        if digits >= 6 {
            out.push_str("(number)");
        } else {
            out.extend(&chars[i..end]);
        }
        i = end;
    }
    out
}

/// Why a post did not land.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PostError {
    /// Worth trying again later: no connection, a timeout, a 429 or 5xx.
    #[error("{0}; it will be tried again")]
    Retry(String),
    /// The endpoint refused the document (a 4xx other than 429): retrying
    /// would get the same answer.
    #[error("{0}; check the URL in the variable that [incidents] alert_url_env names")]
    Refused(String),
}

/// Posts `body` (JSON) to the webhook at `url`, within 10 s. Errors name
/// the HTTP status, never the URL (it is a secret) nor the body.
pub async fn post(client: &reqwest::Client, url: &Secret, body: &str) -> Result<(), PostError> {
    let sent = client
        .post(url.expose())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_owned())
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    match sent {
        Err(e) => Err(PostError::Retry(format!(
            "the alert endpoint could not be reached: {}",
            super::error_chain(&e.without_url())
        ))),
        Ok(r) if r.status().is_success() => Ok(()),
        Ok(r) => {
            let code = r.status().as_u16();
            let why = format!("the alert endpoint answered HTTP {code}");
            if code == 429 || code >= 500 || code == 408 {
                Err(PostError::Retry(why))
            } else {
                Err(PostError::Refused(why))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn customer_text_cannot_ping_or_leak_in_chat() {
        assert_eq!(
            for_chat("<!channel> @here call me 06 12 34 56 78 or bob.smith@mail.fr & co"),
            "&lt;!channel&gt; @\u{2060}here call me (number) or (email) &amp; co"
        );
        // Dates, prices and short numbers stay.
        assert_eq!(
            for_chat("panne depuis le 12/05, 29.99 €"),
            "panne depuis le 12/05, 29.99 €"
        );
        assert_eq!(for_chat("client 4970-1012-3456-7890."), "client (number).");
        assert_eq!(for_chat(&"a".repeat(300)).chars().count(), 281);
        assert_eq!(
            for_chat("see ![x](https://evil.example/p.png) and [here](http://phish) `code`"),
            "see (link) and (link) 'code'"
        );
        assert_eq!(
            for_chat("log in at evil.com/login now"),
            "log in at (link) now"
        );
    }

    #[test]
    fn the_document_has_what_slack_and_mattermost_read() {
        let a = IncidentAlert {
            event: AlertEvent::Opened,
            id: "I-1".into(),
            rule: "outage".into(),
            status: "open".into(),
            customers: 20,
            messages: 22,
            window_mins: 10,
            window_customers: 20,
            baseline: 0.5,
            rate_per_min: 2.0,
            opened_at: "2026-12-01T10:00:00Z".into(),
            first_message_at: "2026-12-01T09:51:00Z".into(),
            last_message_at: "2026-12-01T10:00:00Z".into(),
            closed_at: None,
            closed_by: None,
            ticket: Some("T-1042".into()),
            ticket_url: None,
            notices: None,
            samples: vec![],
        };
        let d = a.document();
        assert!(d["text"].as_str().unwrap().contains("I-1 opened"));
        assert_eq!(d["attachments"][0]["fields"][0]["value"], "20");
        assert_eq!(d["incident"]["rule"], "outage");
        assert_eq!(d["incident"]["event"], "opened");
    }
}
