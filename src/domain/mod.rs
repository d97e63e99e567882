//! Newtypes and enums that the rest of the crate speaks in.
//!
//! Everything here is parsed once at an edge (a rule file, a platform payload,
//! a database row, a command-line flag) so the core never re-checks a raw
//! string. Nothing in this module does IO.

pub mod clock;
pub mod hours;
pub mod inert;
pub mod language;
pub mod limits;
pub mod money;
pub mod secret;
pub mod states;
pub mod text;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Where a message reached the brand: its kind of conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// A public post that @mentions the brand's account.
    Mention,
    /// A private, direct message to the brand's account.
    Dm,
    /// A public post found by the brand-keyword search.
    Search,
}

impl Channel {
    /// Every channel, in the order used when a rule lists none.
    pub const ALL: [Channel; 3] = [Channel::Mention, Channel::Dm, Channel::Search];

    /// The name used in rule files, the database and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Mention => "mention",
            Channel::Dm => "dm",
            Channel::Search => "search",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// A string that is not one of the known names of an enum.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}`: expected one of {expected}")]
pub struct UnknownName {
    /// What was being parsed ("channel", "priority", …).
    pub kind: &'static str,
    /// The offending input.
    pub value: String,
    /// The accepted names, ready to print.
    pub expected: &'static str,
}

impl FromStr for Channel {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "mention" => Ok(Channel::Mention),
            "dm" => Ok(Channel::Dm),
            "search" => Ok(Channel::Search),
            _ => Err(UnknownName {
                kind: "channel",
                value: s.to_owned(),
                expected: "mention, dm, search",
            }),
        }
    }
}

/// A small set of channels, as a bit set (rules list at most three).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChannelSet(u8);

impl ChannelSet {
    /// Every channel.
    pub const ALL: ChannelSet = ChannelSet(0b111);

    fn bit(c: Channel) -> u8 {
        1 << (c as u8)
    }

    /// Adds a channel.
    pub fn insert(&mut self, c: Channel) {
        self.0 |= Self::bit(c);
    }

    /// Whether the set holds `c`.
    pub fn contains(self, c: Channel) -> bool {
        self.0 & Self::bit(c) != 0
    }

    /// The channels in the set, in `Channel::ALL` order.
    pub fn iter(self) -> impl Iterator<Item = Channel> {
        Channel::ALL.into_iter().filter(move |c| self.contains(*c))
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Display for ChannelSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<&str> = self.iter().map(Channel::as_str).collect();
        f.write_str(&names.join(", "))
    }
}

/// A social platform the bot serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    /// X (formerly Twitter), API v2.
    X,
    /// Any Mastodon-compatible server.
    Mastodon,
    /// Bluesky, or any AT Protocol PDS.
    Bluesky,
}

impl Platform {
    /// The name used in configuration, the database and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::X => "x",
            Platform::Mastodon => "mastodon",
            Platform::Bluesky => "bluesky",
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "x" => Ok(Platform::X),
            "mastodon" => Ok(Platform::Mastodon),
            "bluesky" => Ok(Platform::Bluesky),
            _ => Err(UnknownName {
                kind: "platform",
                value: s.to_owned(),
                expected: "x, mastodon, bluesky",
            }),
        }
    }
}

/// How urgent an escalation ticket is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    /// Can wait days.
    Low,
    /// The default.
    #[default]
    Normal,
    /// Same day.
    High,
    /// Within the hour.
    Urgent,
}

impl Priority {
    /// One step more urgent (urgent stays urgent): what a signal does to
    /// a ticket.
    pub fn raised(self) -> Priority {
        match self {
            Priority::Low => Priority::Normal,
            Priority::Normal => Priority::High,
            Priority::High | Priority::Urgent => Priority::Urgent,
        }
    }

    /// The name used in rule files, the database and JSON output.
    pub fn as_str(self) -> &'static str {
        match self {
            Priority::Low => "low",
            Priority::Normal => "normal",
            Priority::High => "high",
            Priority::Urgent => "urgent",
        }
    }
}

impl fmt::Display for Priority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl FromStr for Priority {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "low" => Ok(Priority::Low),
            "normal" => Ok(Priority::Normal),
            "high" => Ok(Priority::High),
            "urgent" => Ok(Priority::Urgent),
            _ => Err(UnknownName {
                kind: "priority",
                value: s.to_owned(),
                expected: "low, normal, high, urgent",
            }),
        }
    }
}

/// Declares a validated string newtype with `as_str`, `Display` and serde.
///
/// With `, parsed`, deserializing goes through the type's `parse`, so a
/// value read from a file is checked where it is read, once.
macro_rules! string_newtype {
    ($(#[$meta:meta])* $name:ident, parsed) => {
        string_newtype!(@type [try_from = "String", into = "String"] $(#[$meta])* $name);

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<Self, String> {
                $name::parse(&s)
            }
        }

        impl From<$name> for String {
            fn from(v: $name) -> String {
                v.0
            }
        }
    };
    ($(#[$meta:meta])* $name:ident) => {
        string_newtype!(@type [transparent] $(#[$meta])* $name);
    };
    (@type [$($serde:tt)*] $(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde($($serde)*)]
        pub struct $name(String);

        impl $name {
            /// The inner string.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_newtype!(
    /// A rule's id: unique across all rule files, `[a-z0-9-]+`.
    RuleId
);

impl RuleId {
    /// Parses a rule id, or says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.is_empty() {
            return Err("a rule id cannot be empty".into());
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(format!(
                "rule id `{s}` contains `{c}`: use only a-z, 0-9 and `-`"
            ));
        }
        Ok(RuleId(s.to_owned()))
    }
}

/// A queue's or a signal's name: one or more of `[a-z0-9_-]`.
fn is_plain_name(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

string_newtype!(
    /// A signal's name, as `[signals]` gives it (`churn`, `legal`), or
    /// `repeated` for repeated contact: `[a-z0-9_-]+`.
    SignalName, parsed
);

impl SignalName {
    /// The signal the bot raises itself: a customer's third message in
    /// 24 h with no human answer.
    pub const REPEATED: &'static str = "repeated";

    /// Parses a signal name, or says what is wrong with it.
    pub fn parse(s: &str) -> Result<Self, String> {
        if !is_plain_name(s) {
            return Err(format!(
                "signal name `{s}` must be lower-case letters, digits, `-` or `_`"
            ));
        }
        Ok(SignalName(s.to_owned()))
    }
}

string_newtype!(
    /// The name of a ticket queue, such as `billing`.
    Queue, parsed
);

impl Queue {
    /// Parses a queue name: `[a-z0-9_-]+`.
    pub fn parse(s: &str) -> Result<Self, String> {
        if !is_plain_name(s) {
            return Err(format!(
                "queue `{s}` must be a non-empty name of a-z, 0-9, `-` and `_`"
            ));
        }
        Ok(Queue(s.to_owned()))
    }
}

string_newtype!(
    /// A message id as the platform gives it (X snowflakes and Mastodon ids are strings).
    MessageId
);

string_newtype!(
    /// A platform user id (not the @handle, which can change).
    UserId
);

string_newtype!(
    /// A conversation id on the platform (X `conversation_id`, a DM conversation, a Mastodon thread root).
    ConversationId
);

string_newtype!(
    /// An @handle without the `@` (`acme`, or `user@domain` on Mastodon).
    Handle
);

/// Builds id-like newtypes from platform data; platforms promise non-empty ids.
macro_rules! from_platform {
    ($($name:ident),*) => {$(
        impl $name {
            /// Wraps an id given by a platform or read back from the store.
            pub fn new(s: impl Into<String>) -> Self {
                $name(s.into())
            }
        }
    )*};
}
from_platform!(MessageId, UserId, ConversationId, Handle);

/// The human-friendly reference of a ticket, such as `T-1042`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TicketRef(pub i64);

impl TicketRef {
    /// The longest reference a template can expand to, used for length checks.
    pub const WORST_CASE: &'static str = "T-9999999999";
}

impl fmt::Display for TicketRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "T-{}", self.0)
    }
}

impl FromStr for TicketRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let digits = s
            .strip_prefix("T-")
            .or_else(|| s.strip_prefix("t-"))
            .unwrap_or(s);
        digits
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(TicketRef)
            .ok_or_else(|| {
                format!("`{s}` is not a ticket reference: expected T-<number>, such as T-1042")
            })
    }
}

/// The reference of an incident, such as `I-3` (see
/// `application::incidents`): what `helpdesk incidents close` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IncidentRef(pub i64);

impl fmt::Display for IncidentRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "I-{}", self.0)
    }
}

impl FromStr for IncidentRef {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.strip_prefix("I-")
            .or_else(|| s.strip_prefix("i-"))
            .unwrap_or(s)
            .parse::<i64>()
            .ok()
            .filter(|n| *n > 0)
            .map(IncidentRef)
            .ok_or_else(|| {
                format!("`{s}` is not an incident reference: expected I-<number>, such as I-3 (`helpdesk incidents list` shows them)")
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticket_refs_round_trip() {
        assert_eq!("T-1042".parse::<TicketRef>().unwrap().to_string(), "T-1042");
        assert_eq!("1042".parse::<TicketRef>().unwrap(), TicketRef(1042));
        assert!("T-x".parse::<TicketRef>().is_err());
        assert!("T-0".parse::<TicketRef>().is_err());
        assert_eq!("I-3".parse::<IncidentRef>().unwrap().to_string(), "I-3");
        assert!("T-3".parse::<IncidentRef>().is_err());
    }

    #[test]
    fn rule_ids_are_checked() {
        assert!(RuleId::parse("reset-password").is_ok());
        assert!(RuleId::parse("Reset").is_err());
        assert!(RuleId::parse("").is_err());
    }

    #[test]
    fn channel_sets() {
        let mut s = ChannelSet::default();
        s.insert(Channel::Dm);
        assert!(s.contains(Channel::Dm) && !s.contains(Channel::Mention));
        assert_eq!(ChannelSet::ALL.to_string(), "mention, dm, search");
    }
}

/// Why a string is not an [`AgentName`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid agent name {shown}: {why}; use 1 to {max} letters, digits, `.`, `_`, `-` or `@` (such as carla or carla@acme.fr)",
    max = AgentName::MAX_LEN
)]
pub struct AgentNameError {
    /// The name as shown (escaped, and cut when long).
    pub shown: String,
    /// What is wrong with it.
    pub why: &'static str,
}

/// Who acts on a ticket: an agent's name as the CLI (`--agent`, `assign`)
/// and the `agent_actions` table give it.
///
/// 1 to [`AgentName::MAX_LEN`] characters, each an ASCII letter or digit,
/// `.`, `_`, `-` or `@` (so an e-mail address fits). Names are printed in
/// ticket histories, logs and terminals: a newline, a control character or
/// a 100 000-character name would forge or flood them, so nothing else is
/// taken. Surrounding spaces are trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct AgentName(String);

impl AgentName {
    /// The longest name taken, in characters.
    pub const MAX_LEN: usize = 64;

    /// Checks a name from outside.
    pub fn parse(raw: &str) -> Result<AgentName, AgentNameError> {
        let name = raw.trim();
        let fail = |why| AgentNameError {
            // Debug-escaped and cut: the message itself stays one short line.
            shown: format!("{:?}", name.chars().take(40).collect::<String>())
                + if name.chars().count() > 40 { "…" } else { "" },
            why,
        };
        if name.is_empty() {
            return Err(fail("it is empty"));
        }
        if name.chars().count() > Self::MAX_LEN {
            return Err(fail("it is too long"));
        }
        if !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
        {
            return Err(fail("it holds a character that is not allowed"));
        }
        Ok(AgentName(name.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for AgentName {
    type Err = AgentNameError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AgentName::parse(s)
    }
}

impl fmt::Display for AgentName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod agent_name_tests {
    use super::*;

    #[test]
    fn agent_names_have_a_small_charset_and_length() {
        for ok in [
            "carla",
            "carla@acme.fr",
            "c.dupont_2-x",
            &"a".repeat(64),
            " bob ",
        ] {
            assert!(AgentName::parse(ok).is_ok(), "{ok:?}");
        }
        assert_eq!(AgentName::parse(" bob ").unwrap().as_str(), "bob");
        for bad in [
            "",
            "  ",
            "car\nla",
            "carla\u{202e}",
            "carla smith",
            "élodie",
            "a;b",
            "<b>",
        ] {
            let e = AgentName::parse(bad).unwrap_err();
            assert!(e.to_string().contains("1 to 64 letters"), "{e}");
            assert!(!e.to_string().contains('\n'), "{e}");
        }
        let long = "x".repeat(100_000);
        let e = AgentName::parse(&long).unwrap_err();
        assert!(e.to_string().len() < 250, "{e}");
        assert!(e.to_string().contains("too long"), "{e}");
    }
}

/// An inbound stream that is polled on its own schedule with its own cursor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stream {
    /// Posts that mention the account.
    Mentions,
    /// Direct messages.
    Dms,
    /// Brand-keyword search.
    Search,
}

impl Stream {
    /// The name used for cursors in the store and in logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Mentions => "mentions",
            Stream::Dms => "dms",
            Stream::Search => "search",
        }
    }
}
