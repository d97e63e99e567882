//! Posts, notifications and profiles: `com.atproto.repo.createRecord`
//! with a PDS's validation of `app.bsky.feed.post`, and the AppView reads
//! the PDS passes through (`getPosts`, `listNotifications`, `updateSeen`,
//! `getProfile`), with the views of `app.bsky.actor.defs` and
//! `app.bsky.feed.defs`.

use serde_json::{Map, Value, json};
use unicode_segmentation::UnicodeSegmentation;

use super::session::{self, Auth};
use super::{
    Account, CreatedPost, Inner, Notif, Post, Quota, Req, XrpcError, err, ids, invalid,
    rate_limited, richtext, str_field,
};
use crate::domain::clock::{Millis, parse_rfc3339, rfc3339};

const POST: &str = "app.bsky.feed.post";

/// The embeds `app.bsky.feed.post` knows.
const EMBEDS: &[&str] = &[
    "app.bsky.embed.images",
    "app.bsky.embed.video",
    "app.bsky.embed.gallery",
    "app.bsky.embed.external",
    "app.bsky.embed.record",
    "app.bsky.embed.recordWithMedia",
];

/// What a create costs against the write limits.
const CREATE_POINTS: u32 = 3;

impl Inner {
    /// `app.bsky.actor.defs#profileViewBasic` (also the base of the others).
    pub(super) fn profile_basic(&self, a: &Account) -> Value {
        let mut viewer = json!({"muted": false, "blockedBy": false});
        if let Some(rkey) = &a.follow {
            viewer["followedBy"] = json!(format!("at://{}/app.bsky.graph.follow/{rkey}", a.did));
        }
        json!({
            "did": a.did,
            "handle": a.handle,
            "displayName": a.name,
            "associated": {"chat": {"allowIncoming": a.allow.as_str()}},
            "viewer": viewer,
            "labels": [],
            "createdAt": rfc3339(a.created_at),
        })
    }

    /// `app.bsky.actor.defs#profileView`.
    fn profile_view(&self, a: &Account) -> Value {
        let mut v = self.profile_basic(a);
        v["indexedAt"] = json!(rfc3339(a.created_at));
        v
    }

    fn author_view(&self, did: &str) -> Value {
        self.account(did)
            .map(|a| self.profile_basic(a))
            .unwrap_or_else(|| json!({"did": did, "handle": "handle.invalid"}))
    }

    /// `app.bsky.feed.defs#postView`, with the quoted post's view when the
    /// post quotes one.
    fn post_view(&self, p: &Post) -> Value {
        let replies = self
            .posts
            .iter()
            .filter(|x| x.record["reply"]["parent"]["uri"] == p.uri.as_str())
            .count();
        let quotes = self
            .posts
            .iter()
            .filter(|x| x.record["embed"]["record"]["uri"] == p.uri.as_str())
            .count();
        let mut v = json!({
            "uri": p.uri,
            "cid": p.cid,
            "author": self.author_view(&p.author),
            "record": p.record,
            "replyCount": replies,
            "repostCount": 0,
            "likeCount": 0,
            "quoteCount": quotes,
            "bookmarkCount": 0,
            "indexedAt": rfc3339(p.indexed_at),
            "viewer": {},
            "labels": [],
        });
        if p.record["embed"]["$type"] == "app.bsky.embed.record" {
            let uri = p.record["embed"]["record"]["uri"].as_str().unwrap_or("");
            let record = match self.post(uri) {
                Some(q) => json!({
                    "$type": "app.bsky.embed.record#viewRecord",
                    "uri": q.uri, "cid": q.cid, "author": self.author_view(&q.author),
                    "value": q.record, "indexedAt": rfc3339(q.indexed_at), "labels": [],
                }),
                None => json!({"$type": "app.bsky.embed.record#viewNotFound",
                    "uri": uri, "notFound": true}),
            };
            v["embed"] = json!({"$type": "app.bsky.embed.record#view", "record": record});
        }
        v
    }

    fn notification_view(&self, n: &Notif) -> Value {
        let author = self
            .account(&n.author)
            .map(|a| self.profile_view(a))
            .unwrap_or_else(|| json!({"did": n.author, "handle": "handle.invalid"}));
        let mut v = json!({
            "uri": n.uri,
            "cid": n.cid,
            "author": author,
            "reason": n.reason,
            "record": n.record,
            "isRead": self.seen_at.is_some_and(|s| n.indexed_at <= s),
            "indexedAt": rfc3339(n.indexed_at),
            "labels": [],
        });
        if let Some(s) = &n.subject {
            v["reasonSubject"] = json!(s);
        }
        v
    }

    /// A strong reference (`uri` + `cid`) to a post that exists here, with
    /// that cid.
    fn check_strong_ref(&self, v: &Value, path: &str) -> Result<(), String> {
        let field = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .ok_or_else(|| format!("{path} must have the property \"{k}\" (a string)"))
        };
        let (uri, cid) = (field("uri")?, field("cid")?);
        if !uri.starts_with("at://") {
            return Err(format!("{path}/uri must be a valid at-uri"));
        }
        match self.post(uri) {
            None => Err(format!("{path}: no post at {uri}")),
            Some(p) if p.cid != cid => Err(format!(
                "{path}: cid {cid} does not match the post's cid {}",
                p.cid
            )),
            Some(_) => Ok(()),
        }
    }

    /// Validates an `app.bsky.feed.post` record as the PDS does with the
    /// lexicon, plus what this fake checks besides (reply and quote targets
    /// that exist with that cid, facets on character boundaries, mentioned
    /// DIDs that exist). The error names the field, as the PDS's do.
    fn validate_post(&self, record: &Map<String, Value>) -> Result<(), String> {
        let text = match record.get("text") {
            Some(Value::String(s)) => s.as_str(),
            Some(_) => return Err("Record/text must be a string".into()),
            None => return Err("Record must have the property \"text\"".into()),
        };
        if text.len() > 3000 {
            return Err("Record/text must not be longer than 3000 characters".into());
        }
        if text.graphemes(true).count() > 300 {
            return Err("Record/text must not be longer than 300 graphemes".into());
        }
        match record.get("createdAt") {
            Some(Value::String(t)) if parse_rfc3339(t).is_some() => {}
            Some(_) => {
                return Err("Record/createdAt must be an valid atproto datetime \
                            (both RFC-3339 and ISO-8601)"
                    .into());
            }
            None => return Err("Record must have the property \"createdAt\"".into()),
        }
        check_langs(record.get("langs"))?;
        check_tags(record.get("tags"))?;
        if let Some(f) = record.get("facets") {
            richtext::validate(text, f, "Record/facets", &|d| self.account(d).is_some())?;
        }
        if let Some(reply) = record.get("reply") {
            if !reply.is_object() {
                return Err("Record/reply must be an object".into());
            }
            for k in ["root", "parent"] {
                let r = reply
                    .get(k)
                    .ok_or(format!("Record/reply must have the property \"{k}\""))?;
                self.check_strong_ref(r, &format!("Record/reply/{k}"))?;
            }
        }
        if let Some(embed) = record.get("embed") {
            self.check_embed(embed)?;
        }
        Ok(())
    }

    fn check_embed(&self, embed: &Value) -> Result<(), String> {
        let t = embed.get("$type").and_then(Value::as_str).unwrap_or("");
        if !EMBEDS.contains(&t) {
            return Err(format!(
                "Record/embed must be an object which includes the \"$type\" property, one of {}",
                EMBEDS.join(", ")
            ));
        }
        if t == "app.bsky.embed.record" {
            let r = embed.get("record").unwrap_or(&Value::Null);
            self.check_strong_ref(r, "Record/embed/record")?;
        }
        Ok(())
    }
}

fn check_langs(langs: Option<&Value>) -> Result<(), String> {
    let Some(langs) = langs else { return Ok(()) };
    let Some(list) = langs.as_array() else {
        return Err("Record/langs must be an array".into());
    };
    if list.len() > 3 {
        return Err("Record/langs must not have more than 3 elements".into());
    }
    for (i, l) in list.iter().enumerate() {
        // BCP 47, as far as a check needs: a 2–3 letter language (or the
        // i-/x- forms), then subtags of 1–8 letters or digits.
        let ok = l.as_str().is_some_and(|s| {
            let mut parts = s.split('-');
            let first = parts.next().unwrap_or("");
            let first_ok = (2..=3).contains(&first.len())
                && first.bytes().all(|b| b.is_ascii_alphabetic())
                || first == "i"
                || first == "x";
            first_ok
                && parts.all(|p| {
                    (1..=8).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_alphanumeric())
                })
        });
        if !ok {
            return Err(format!(
                "Record/langs/{i} must be a well-formed BCP 47 language tag"
            ));
        }
    }
    Ok(())
}

fn check_tags(tags: Option<&Value>) -> Result<(), String> {
    let Some(tags) = tags else { return Ok(()) };
    let Some(list) = tags.as_array() else {
        return Err("Record/tags must be an array".into());
    };
    if list.len() > 8 {
        return Err("Record/tags must not have more than 8 elements".into());
    }
    for (i, t) in list.iter().enumerate() {
        let ok = t
            .as_str()
            .is_some_and(|s| s.len() <= 640 && s.graphemes(true).count() <= 64);
        if !ok {
            return Err(format!(
                "Record/tags/{i} must be a string of at most 64 graphemes"
            ));
        }
    }
    Ok(())
}

/// The record key a create uses: the client's (a TID not taken yet), or a
/// new TID.
fn record_key(g: &mut Inner, did: &str, input: &Value, now: Millis) -> Result<String, XrpcError> {
    match input.get("rkey") {
        // A new TID, past any key a client chose ahead of our clock.
        None | Some(Value::Null) => loop {
            let k = g.tids.next(now);
            if g.post(&format!("at://{did}/{POST}/{k}")).is_none() {
                return Ok(k);
            }
        },
        Some(Value::String(k)) if ids::is_tid(k) => Ok(k.clone()),
        // A choice: the lexicon only says `record-key`; a PDS validates the
        // key against the collection's `"key": "tid"`, and this wording is ours.
        Some(_) => Err(invalid(format!(
            "Invalid rkey: {POST} records are keyed by TID (13 characters of \
             234567abcdefghijklmnopqrstuvwxyz, the first one of 234567abcdefghij)"
        ))),
    }
}

/// `com.atproto.repo.createRecord`: an `app.bsky.feed.post` in the brand's
/// repo. Points are spent before the record is checked, as the PDS's
/// limiter runs before its handler.
pub(super) fn create_record(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    quota: &mut Quota,
) -> Result<Value, XrpcError> {
    let auth = session::access(g, req, now)?;
    let input = req.input()?;
    let repo = str_field(&input, "repo")?;
    let Some(did) = g.resolve(repo) else {
        return Err(invalid(format!("Could not find repo: {repo}")));
    };
    if did != auth.did {
        // A choice: another account's repo is refused as the PDS refuses a
        // write without the right credentials.
        return Err(err(
            401,
            "AuthenticationRequired",
            "Authentication Required",
        ));
    }
    let l = g.setup.limits;
    let spends = [
        (format!("write-hour:{did}"), l.writes_hourly),
        (format!("write-day:{did}"), l.writes_daily),
    ];
    match g.spend(&spends, CREATE_POINTS, now) {
        Ok(q) => *quota = q,
        Err(q) => {
            *quota = q;
            return Err(rate_limited());
        }
    }
    let collection = str_field(&input, "collection")?;
    if collection != POST {
        // A choice: a PDS takes any collection; this one holds posts only.
        return Err(invalid(format!("This PDS accepts {POST} records only")));
    }
    let Some(record) = input.get("record").and_then(Value::as_object) else {
        return Err(invalid(
            "Input must have the property \"record\" (an object)",
        ));
    };
    match record.get("$type").and_then(Value::as_str) {
        Some(POST) => {}
        Some(other) => {
            return Err(invalid(format!(
                "Invalid $type: expected {POST}, got {other}"
            )));
        }
        None => return Err(invalid("Record must have the property \"$type\"")),
    }
    let rkey = record_key(g, &did, &input, now)?;
    g.validate_post(record).map_err(invalid)?;
    let uri = format!("at://{did}/{POST}/{rkey}");
    if g.post(&uri).is_some() {
        // A choice: the fixtures do not say how a PDS refuses a taken rkey.
        return Err(invalid("Record already exists"));
    }
    Ok(g.store_created(&auth, uri, rkey, Value::Object(record.clone()), now))
}

impl Inner {
    fn store_created(
        &mut self,
        auth: &Auth,
        uri: String,
        rkey: String,
        record: Value,
        now: Millis,
    ) -> Value {
        let cid = ids::cid_of(record.to_string().as_bytes());
        let rev = self.tids.next(now);
        self.created.push(CreatedPost {
            uri: uri.clone(),
            rkey,
            cid: cid.clone(),
            record: record.clone(),
        });
        // A reply of the brand notifies no one here: the fake only records.
        self.store_post(Post {
            uri: uri.clone(),
            cid: cid.clone(),
            author: auth.did.clone(),
            record,
            indexed_at: now,
        });
        json!({
            "uri": uri,
            "cid": cid,
            "commit": {"cid": ids::cid_of(rev.as_bytes()), "rev": rev},
            "validationStatus": "valid",
        })
    }
}

/// `app.bsky.feed.getPosts`: the views of the posts that exist, in the
/// order asked; unknown ones are left out, as the AppView does.
pub(super) fn get_posts(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    _quota: &mut Quota,
) -> Result<Value, XrpcError> {
    session::access(g, req, now)?;
    let uris = req.params("uris");
    if uris.is_empty() {
        return Err(invalid("Params must have the property \"uris\""));
    }
    if uris.len() > 25 {
        return Err(invalid("Params/uris must not have more than 25 elements"));
    }
    let posts: Vec<Value> = uris
        .iter()
        .filter_map(|u| g.post(u))
        .map(|p| g.post_view(p))
        .collect();
    Ok(json!({"posts": posts}))
}

/// `com.atproto.repo.getRecord`: a record of a repo on this PDS, read
/// from the repo itself (no index in between). Unknown: 400
/// `RecordNotFound`, as the reference PDS answers.
pub(super) fn get_record(
    g: &mut Inner,
    req: &Req<'_>,
    _now: Millis,
    _quota: &mut Quota,
) -> Result<Value, XrpcError> {
    let need = |k: &str| {
        req.param(k)
            .ok_or_else(|| invalid(format!("Params must have the property \"{k}\"")))
    };
    let (repo, collection, rkey) = (need("repo")?, need("collection")?, need("rkey")?);
    let Some(did) = g.resolve(repo) else {
        return Err(invalid(format!("Could not find repo: {repo}")));
    };
    let uri = format!("at://{did}/{collection}/{rkey}");
    match g.post(&uri) {
        Some(p) => Ok(json!({"uri": p.uri, "cid": p.cid, "value": p.record})),
        None => Err(err(
            400,
            "RecordNotFound",
            format!("Could not locate record: {uri}"),
        )),
    }
}

/// A notifications cursor: the last one's `indexedAt` (ms) and order. A
/// choice: the AppView's cursor is opaque to clients, and so is this one.
fn parse_cursor(c: &str) -> Result<(Millis, u64), XrpcError> {
    let malformed = || invalid("Malformed cursor");
    let (t, s) = c.split_once("::").ok_or_else(malformed)?;
    Ok((
        t.parse().map_err(|_| malformed())?,
        s.parse().map_err(|_| malformed())?,
    ))
}

/// `app.bsky.notification.listNotifications`: newest first; the cursor
/// (`<indexedAt ms>::<order>`, opaque to clients) pages to older ones and
/// is given only when more remain. `seenAt` and `priority` are ignored.
pub(super) fn list_notifications(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    _quota: &mut Quota,
) -> Result<Value, XrpcError> {
    session::access(g, req, now)?;
    let limit = req.int_param("limit", 50, 1, 100)?;
    let reasons = req.params("reasons");
    let before = req.param("cursor").map(parse_cursor).transpose()?;
    let mut all: Vec<&Notif> = g
        .notifications
        .iter()
        .filter(|n| reasons.is_empty() || reasons.contains(&n.reason.as_str()))
        .filter(|n| before.is_none_or(|c| (n.indexed_at, n.seq) < c))
        .collect();
    all.sort_by_key(|n| std::cmp::Reverse((n.indexed_at, n.seq)));
    let page: Vec<Value> = all
        .iter()
        .take(limit)
        .map(|n| g.notification_view(n))
        .collect();
    let mut body = json!({"notifications": page, "priority": false});
    if all.len() > limit {
        let last = all[limit - 1];
        body["cursor"] = json!(format!("{}::{}", last.indexed_at, last.seq));
    }
    if let Some(s) = g.seen_at {
        body["seenAt"] = json!(rfc3339(s));
    }
    Ok(body)
}

/// `app.bsky.notification.updateSeen`: notifications up to `seenAt` are
/// read (`isRead`). No output.
pub(super) fn update_seen(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    _quota: &mut Quota,
) -> Result<Value, XrpcError> {
    session::access(g, req, now)?;
    let input = req.input()?;
    let Some(seen) = parse_rfc3339(str_field(&input, "seenAt")?) else {
        return Err(invalid("Input/seenAt must be an valid atproto datetime"));
    };
    g.seen_at = Some(g.seen_at.map_or(seen, |s| s.max(seen)));
    Ok(Value::Null)
}

/// `app.bsky.actor.getProfile`: a `profileViewDetailed`. Auth is optional
/// (the lexicon says so), but a token that is given must be good.
pub(super) fn get_profile(
    g: &mut Inner,
    req: &Req<'_>,
    now: Millis,
    _quota: &mut Quota,
) -> Result<Value, XrpcError> {
    if req.header("authorization").is_some() {
        session::access(g, req, now)?;
    }
    let Some(actor) = req.param("actor") else {
        return Err(invalid("Params must have the property \"actor\""));
    };
    let Some(a) = g.resolve(actor).and_then(|d| g.account(&d)) else {
        return Err(invalid("Profile not found"));
    };
    let mut v = g.profile_view(a);
    let brand = g.setup.did.clone();
    let posts = g.posts.iter().filter(|p| p.author == a.did).count();
    let followers = if a.did == brand {
        g.accounts.iter().filter(|c| c.follow.is_some()).count()
    } else {
        0
    };
    let follows = usize::from(a.follow.is_some());
    v["followersCount"] = json!(followers);
    v["followsCount"] = json!(follows);
    v["postsCount"] = json!(posts);
    v["associated"]["lists"] = json!(0);
    v["associated"]["feedgens"] = json!(0);
    v["associated"]["starterPacks"] = json!(0);
    v["associated"]["labeler"] = json!(false);
    Ok(v)
}
