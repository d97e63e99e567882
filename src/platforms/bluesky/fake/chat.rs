//! DMs: the `chat.bsky.convo.*` methods as the chat service answers them
//! through the PDS's proxy, for the brand's 1:1 convos with customers.
//!
//! The brand's chat log holds, in rev order: `#logBeginConvo` when a convo
//! starts, `#logCreateMessage` for every message (the brand's own too),
//! `#logAcceptConvo` when the brand first answers a convo a customer
//! started (it was a request until then), and `#logAddReaction` when a
//! customer reacts. Revs are TIDs, so they sort as strings.

use serde_json::{Value, json};
use unicode_segmentation::UnicodeSegmentation;

use super::session::{self, Auth};
use super::{
    Account, AllowIncoming, Inner, Quota, Req, SentDm, XrpcError, err, invalid, rate_limited,
    richtext,
};
use crate::domain::clock::{Millis, rfc3339};

/// The proxy header value that routes a call to Bluesky's chat service.
pub(super) const PROXY: &str = "did:web:api.bsky.chat#bsky_chat";

/// How many log entries one `getLog` answer holds. A choice: the real page
/// size is not published.
const LOG_PAGE: usize = 100;

const DEFS: &str = "chat.bsky.convo.defs";

/// A 1:1 convo between the brand and a customer.
#[derive(Debug)]
pub(super) struct Convo {
    id: String,
    rev: String,
    customer: String,
    messages: Vec<Msg>,
    /// Whether the brand has accepted it (`status`): a convo a customer
    /// started is a request until the brand sends in it.
    accepted: bool,
}

#[derive(Debug, Clone)]
struct Msg {
    id: String,
    rev: String,
    text: String,
    facets: Value,
    sender: String,
    sent_at: Millis,
}

/// Why a customer's `allowIncoming` refuses the brand: (error name of
/// getConvoForMembers, message of sendMessage).
fn refusal(a: &Account) -> Option<(&'static str, &'static str)> {
    match a.allow {
        AllowIncoming::All => None,
        AllowIncoming::None => Some((
            "MessagesDisabled",
            "recipient has disabled incoming messages",
        )),
        AllowIncoming::Following if a.follow.is_none() => Some((
            "NotFollowedBySender",
            "recipient requires incoming messages to come from someone they follow",
        )),
        AllowIncoming::Following => None,
    }
}

impl Inner {
    /// `chat.bsky.actor.defs#profileViewBasic` of a convo member.
    fn member(&self, did: &str) -> Value {
        let Some(a) = self.account(did) else {
            return json!({"did": did, "handle": "handle.invalid"});
        };
        let mut v = self.profile_basic(a);
        v["chatDisabled"] = json!(false);
        v["kind"] = json!({"$type": "chat.bsky.actor.defs#directConvoMember"});
        v
    }

    fn members(&self, c: &Convo) -> Vec<Value> {
        vec![self.member(&self.setup.did), self.member(&c.customer)]
    }

    fn message_view(m: &Msg) -> Value {
        let mut v = json!({
            "$type": format!("{DEFS}#messageView"),
            "id": m.id,
            "rev": m.rev,
            "text": m.text,
            "sender": {"did": m.sender},
            "sentAt": rfc3339(m.sent_at),
        });
        if !m.facets.is_null() {
            v["facets"] = m.facets.clone();
        }
        v
    }

    /// `chat.bsky.convo.defs#convoView` of convo `i`.
    fn convo_view(&self, i: usize) -> Value {
        let c = &self.convos[i];
        // Unread: the customer's messages since the brand last wrote.
        let unread = c
            .messages
            .iter()
            .rev()
            .take_while(|m| m.sender != self.setup.did)
            .count();
        let mut v = json!({
            "id": c.id,
            "rev": c.rev,
            "members": self.members(c),
            "muted": false,
            "unreadCount": unread,
            "status": if c.accepted { "accepted" } else { "request" },
            "kind": {"$type": format!("{DEFS}#directConvo")},
        });
        if let Some(m) = c.messages.last() {
            v["lastMessage"] = Self::message_view(m);
        }
        v
    }

    /// Appends a log entry of `kind` for convo `i` under a new rev, which
    /// is also the convo's rev from now on.
    fn log(&mut self, kind: &str, i: usize, extra: Value, at: Millis) {
        let rev = self.tids.next(at);
        self.log_at(kind, i, extra, rev);
    }

    fn log_at(&mut self, kind: &str, i: usize, extra: Value, rev: String) {
        let mut entry = json!({
            "$type": format!("{DEFS}#{kind}"),
            "rev": rev,
            "convoId": self.convos[i].id,
        });
        if let (Some(e), Value::Object(x)) = (entry.as_object_mut(), extra) {
            e.extend(x);
        }
        self.convos[i].rev = rev;
        self.logs.push(entry);
    }

    /// The index of the convo with `customer`, started (with a
    /// `#logBeginConvo`) if there is none.
    fn convo_with(&mut self, customer: &str, accepted: bool, at: Millis) -> usize {
        if let Some(i) = self.convos.iter().position(|c| c.customer == customer) {
            return i;
        }
        let id = self.tids.next(at);
        self.convos.push(Convo {
            id,
            rev: String::new(),
            customer: customer.to_owned(),
            messages: Vec::new(),
            accepted,
        });
        let i = self.convos.len() - 1;
        self.log("logBeginConvo", i, json!({}), at);
        i
    }

    /// Adds a message to convo `i`, with its `#logCreateMessage` (whose
    /// rev is the message's).
    fn add_message(&mut self, i: usize, mut m: Msg, at: Millis) -> Msg {
        m.rev = self.tids.next(at);
        let related = self.members(&self.convos[i]);
        let extra = json!({"message": Self::message_view(&m), "relatedProfiles": related});
        self.log_at("logCreateMessage", i, extra, m.rev.clone());
        self.convos[i].messages.push(m.clone());
        m
    }

    pub(super) fn receive_dm(
        &mut self,
        at: Millis,
        from: &str,
        id: String,
        text: String,
        facets: Value,
    ) {
        let i = self.convo_with(from, false, at);
        let m = Msg {
            id,
            rev: String::new(),
            text,
            facets,
            sender: from.to_owned(),
            sent_at: at,
        };
        self.add_message(i, m, at);
    }

    pub(super) fn receive_reaction(
        &mut self,
        at: Millis,
        from: &str,
        message_id: &str,
        value: String,
    ) {
        let Some(i) = self.convos.iter().position(|c| c.customer == from) else {
            return;
        };
        let Some(m) = self.convos[i]
            .messages
            .iter()
            .find(|m| m.id == message_id)
            .cloned()
        else {
            return;
        };
        let extra = json!({
            "message": Self::message_view(&m),
            "reaction": {"value": value, "sender": {"did": from}, "createdAt": rfc3339(at)},
            "relatedProfiles": self.members(&self.convos[i]),
        });
        self.log("logAddReaction", i, extra, at);
    }

    fn convo_index(&self, id: &str) -> Result<usize, XrpcError> {
        self.convos
            .iter()
            .position(|c| c.id == id)
            .ok_or_else(|| err(400, "InvalidConvo", "Convo not found"))
    }
}

/// What every chat call passes first: the proxy header (a PDS without it
/// does not know the method), a session whose app password has DM access,
/// and the chat limit.
fn gate(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    quota: &mut Quota,
    nsid: &str,
) -> Result<Auth, XrpcError> {
    match req.header("atproto-proxy") {
        // A PDS refuses a method it does not know, and chat.bsky.* is not
        // its own: 400 InvalidRequest, as the brief for this fake says.
        None => {
            return Err(invalid(format!(
                "Method not implemented: {nsid} is not a method of the PDS \
                 (chat calls need the header atproto-proxy: {PROXY})"
            )));
        }
        // A choice: the wording of a proxy header naming another service.
        Some(p) if p != PROXY => {
            return Err(invalid(format!(
                "could not resolve proxy did service url: {p}"
            )));
        }
        Some(_) => {}
    }
    let auth = session::access(g, req, now)?;
    if !auth.privileged {
        return Err(err(400, "InvalidToken", "Bad token scope"));
    }
    let spends = [(format!("chat:{}", auth.did), g.setup.limits.chat)];
    match g.spend(&spends, 1, now) {
        Ok(q) => *quota = q,
        Err(q) => {
            *quota = q;
            return Err(rate_limited());
        }
    }
    Ok(auth)
}

/// `chat.bsky.convo.getLog`: the entries after `cursor` (a rev), oldest
/// first, at most [`LOG_PAGE`]; the cursor is the last rev given (the one
/// sent back when nothing is new). A choice where the fixtures are silent:
/// without a cursor, the latest [`LOG_PAGE`] entries and a cursor.
pub(super) fn get_log(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    quota: &mut Quota,
) -> Result<Value, XrpcError> {
    gate(g, req, now, quota, "chat.bsky.convo.getLog")?;
    let cursor = req.param("cursor");
    let logs: &[Value] = match cursor {
        Some(c) => {
            let from = g
                .logs
                .partition_point(|l| l["rev"].as_str().unwrap_or("") <= c);
            &g.logs[from..(from + LOG_PAGE).min(g.logs.len())]
        }
        None => &g.logs[g.logs.len().saturating_sub(LOG_PAGE)..],
    };
    let next = logs.last().and_then(|l| l["rev"].as_str()).or(cursor);
    let mut body = json!({"logs": logs});
    if let Some(c) = next {
        body["cursor"] = json!(c);
    }
    Ok(body)
}

/// `chat.bsky.convo.getMessages`: newest first; the cursor (a rev) pages
/// to older ones and is given only when more remain.
pub(super) fn get_messages(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    quota: &mut Quota,
) -> Result<Value, XrpcError> {
    gate(g, req, now, quota, "chat.bsky.convo.getMessages")?;
    let Some(id) = req.param("convoId") else {
        return Err(invalid("Params must have the property \"convoId\""));
    };
    let i = g.convo_index(id)?;
    let limit = req.int_param("limit", 50, 1, 100)?;
    let before = req.param("cursor");
    let older: Vec<&Msg> = g.convos[i]
        .messages
        .iter()
        .rev()
        .filter(|m| before.is_none_or(|c| m.rev.as_str() < c))
        .collect();
    let page: Vec<Value> = older
        .iter()
        .take(limit)
        .map(|m| Inner::message_view(m))
        .collect();
    let mut body = json!({"messages": page, "relatedProfiles": g.members(&g.convos[i])});
    if older.len() > limit {
        body["cursor"] = json!(older[limit - 1].rev);
    }
    Ok(body)
}

/// `chat.bsky.convo.getConvoForMembers`: the brand's convo with one
/// customer, started if needed; refused with the lexicon's errors.
pub(super) fn get_convo_for_members(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    quota: &mut Quota,
) -> Result<Value, XrpcError> {
    let auth = gate(g, req, now, quota, "chat.bsky.convo.getConvoForMembers")?;
    let members = req.params("members");
    if members.is_empty() {
        return Err(invalid("Params must have the property \"members\""));
    }
    if members.len() > 10 {
        return Err(invalid(
            "Params/members must not have more than 10 elements",
        ));
    }
    let mut others: Vec<&str> = members.into_iter().filter(|m| *m != auth.did).collect();
    others.sort_unstable();
    others.dedup();
    let [other] = others[..] else {
        // A choice: the fake holds 1:1 convos only.
        return Err(invalid(
            "This chat service holds 1:1 convos only: give one other member",
        ));
    };
    let Some(a) = g.account(other) else {
        return Err(err(400, "RecipientNotFound", "recipient not found"));
    };
    // A choice: the customer's setting applies whoever started the convo.
    if let Some((name, message)) = refusal(a) {
        return Err(err(400, name, message));
    }
    let i = g.convo_with(other, true, now);
    Ok(json!({"convo": g.convo_view(i)}))
}

/// `chat.bsky.convo.listConvos`: every convo, the latest first, `limit`
/// and a rev cursor.
pub(super) fn list_convos(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    quota: &mut Quota,
) -> Result<Value, XrpcError> {
    gate(g, req, now, quota, "chat.bsky.convo.listConvos")?;
    let limit = req.int_param("limit", 50, 1, 100)?;
    let before = req.param("cursor");
    let mut order: Vec<usize> = (0..g.convos.len())
        .filter(|&i| before.is_none_or(|c| g.convos[i].rev.as_str() < c))
        .collect();
    order.sort_by(|&a, &b| g.convos[b].rev.cmp(&g.convos[a].rev));
    let convos: Vec<Value> = order.iter().take(limit).map(|&i| g.convo_view(i)).collect();
    let mut body = json!({"convos": convos});
    if order.len() > limit {
        body["cursor"] = json!(g.convos[order[limit - 1]].rev);
    }
    Ok(body)
}

/// The text and facets of a `messageInput`, checked.
fn message_input(input: &Value, g: &Inner) -> Result<(String, Value), XrpcError> {
    let Some(message) = input.get("message").filter(|m| m.is_object()) else {
        return Err(invalid(
            "Input must have the property \"message\" (an object)",
        ));
    };
    let text = match message.get("text") {
        Some(Value::String(t)) => t.clone(),
        Some(_) => return Err(invalid("Input/message/text must be a string")),
        None => return Err(invalid("Input/message must have the property \"text\"")),
    };
    if text.len() > 10000 {
        return Err(invalid(
            "Input/message/text must not be longer than 10000 characters",
        ));
    }
    if text.graphemes(true).count() > 1000 {
        return Err(invalid(
            "Input/message/text must not be longer than 1000 graphemes",
        ));
    }
    // A choice: an empty message is refused (the lexicon sets no minimum,
    // but a bot that sends one has a bug a test should see).
    if text.trim().is_empty() {
        return Err(invalid("Message text cannot be empty"));
    }
    let facets = message.get("facets").cloned().unwrap_or(Value::Null);
    if !facets.is_null() {
        richtext::validate(&text, &facets, "Input/message/facets", &|d| {
            g.account(d).is_some()
        })
        .map_err(invalid)?;
    }
    Ok((text, facets))
}

/// `chat.bsky.convo.sendMessage`: the brand writes in a convo; refused as
/// the customer's `allowIncoming` says. Answers the `messageView`.
pub(super) fn send_message(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    quota: &mut Quota,
) -> Result<Value, XrpcError> {
    let auth = gate(g, req, now, quota, "chat.bsky.convo.sendMessage")?;
    let input = req.input()?;
    let Some(id) = input.get("convoId").and_then(Value::as_str) else {
        return Err(invalid("Input must have the property \"convoId\""));
    };
    let i = g.convo_index(id)?;
    let (text, facets) = message_input(&input, g)?;
    let customer = g.convos[i].customer.clone();
    if let Some((_, message)) = g.account(&customer).and_then(refusal) {
        return Err(invalid(message));
    }
    if !g.convos[i].accepted {
        g.convos[i].accepted = true;
        g.log("logAcceptConvo", i, json!({}), now);
    }
    let m = Msg {
        id: g.tids.next(now),
        rev: String::new(),
        text,
        facets,
        sender: auth.did,
        sent_at: now,
    };
    let m = g.add_message(i, m, now);
    g.sent_dms.push(SentDm {
        convo_id: g.convos[i].id.clone(),
        to_did: customer,
        message_id: m.id.clone(),
        text: m.text.clone(),
        facets: m.facets.clone(),
    });
    Ok(Inner::message_view(&m))
}
