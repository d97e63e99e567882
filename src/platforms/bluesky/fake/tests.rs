//! The fake PDS over real HTTP, as a client sees it.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::*;

/// One answer: status, headers, JSON body (`Null` when empty).
struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    fn refused(&self, status: u16, error: &str) -> &str {
        assert_eq!(self.status, status, "{}", self.body);
        assert_eq!(self.body["error"], error, "{}", self.body);
        self.body["message"].as_str().unwrap_or("")
    }

    fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{}", self.body);
        &self.body
    }
}

struct T {
    pds: FakePds,
    clock: Clock,
    http: reqwest::Client,
}

/// How a call is made.
#[derive(Clone, Copy, Default)]
struct How<'a> {
    token: Option<&'a str>,
    /// Sends the chat proxy header.
    chat: bool,
}

impl T {
    async fn start(setup: PdsSetup) -> T {
        let clock = Clock::new();
        let pds = FakePds::start(setup, clock.clone()).await.unwrap();
        T {
            pds,
            clock,
            http: crate::platforms::http::http_client(),
        }
    }

    async fn call(
        &self,
        nsid: &str,
        how: How<'_>,
        query: &[(&str, &str)],
        body: Option<Value>,
    ) -> Got {
        let url = format!("{}/xrpc/{nsid}", self.pds.base_url());
        let mut r = match &body {
            Some(b) => self.http.post(url).json(b),
            None => self.http.get(url).query(query),
        };
        if let Some(t) = how.token {
            r = r.bearer_auth(t);
        }
        if how.chat {
            r = r.header("atproto-proxy", chat::PROXY);
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let bytes = resp.bytes().await.unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Got {
            status,
            headers,
            body,
        }
    }

    async fn get(&self, nsid: &str, how: How<'_>, query: &[(&str, &str)]) -> Got {
        self.call(nsid, how, query, None).await
    }

    async fn post(&self, nsid: &str, how: How<'_>, body: Value) -> Got {
        self.call(nsid, how, &[], Some(body)).await
    }

    async fn create_session(&self, identifier: &str, password: &str) -> Got {
        let body = json!({"identifier": identifier, "password": password});
        self.post("com.atproto.server.createSession", How::default(), body)
            .await
    }

    /// A fresh access token.
    async fn login(&self) -> String {
        let g = self
            .create_session(&self.pds.brand_handle(), &self.pds.app_password())
            .await;
        g.ok()["accessJwt"].as_str().unwrap().to_owned()
    }

    async fn create_post(&self, token: &str, record: Value, rkey: Option<&str>) -> Got {
        let mut body = json!({"repo": self.pds.brand_did(), "collection": "app.bsky.feed.post",
            "record": record});
        if let Some(k) = rkey {
            body["rkey"] = json!(k);
        }
        self.post("com.atproto.repo.createRecord", bearer(token), body)
            .await
    }
}

fn bearer(token: &str) -> How<'_> {
    How {
        token: Some(token),
        chat: false,
    }
}

fn chat_as(token: &str) -> How<'_> {
    How {
        token: Some(token),
        chat: true,
    }
}

fn claims(jwt: &str) -> Value {
    let payload = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

fn post_record(text: &str) -> Value {
    json!({"$type": "app.bsky.feed.post", "text": text, "createdAt": "2026-09-01T10:00:00.000Z"})
}

#[tokio::test]
async fn sessions_are_created_refreshed_revoked_and_expire() {
    let t = T::start(PdsSetup::default()).await;
    let wrong = t.create_session("brand.test", "nope").await;
    assert_eq!(
        wrong.refused(401, "AuthenticationRequired"),
        "Invalid identifier or password"
    );
    let s = t
        .create_session(&t.pds.brand_did(), &t.pds.app_password())
        .await;
    let s = s.ok();
    assert_eq!(s["handle"], "brand.test");
    assert_eq!(s["did"], t.pds.brand_did());
    assert_eq!(s["active"], true);
    let (access, refresh) = (
        s["accessJwt"].as_str().unwrap(),
        s["refreshJwt"].as_str().unwrap(),
    );
    let a = claims(access);
    assert_eq!(a["scope"], "com.atproto.appPassPrivileged");
    assert_eq!(a["sub"], t.pds.brand_did());
    assert_eq!(
        a["exp"].as_i64().unwrap() - a["iat"].as_i64().unwrap(),
        7200
    );
    let r = claims(refresh);
    assert_eq!(r["scope"], "com.atproto.refresh");
    assert_eq!(
        r["exp"].as_i64().unwrap() - r["iat"].as_i64().unwrap(),
        90 * 86400
    );
    assert_ne!(a["jti"], r["jti"]);

    let get = "com.atproto.server.getSession";
    assert_eq!(
        t.get(get, bearer(access), &[]).await.ok()["did"],
        t.pds.brand_did()
    );
    let refresh_nsid = "com.atproto.server.refreshSession";
    let as_refresh = t.post(refresh_nsid, bearer(access), json!({})).await;
    as_refresh.refused(400, "InvalidToken");
    let renewed = t.post(refresh_nsid, bearer(refresh), json!({})).await;
    let (access2, refresh2) = (
        renewed.ok()["accessJwt"].as_str().unwrap().to_owned(),
        renewed.ok()["refreshJwt"].as_str().unwrap().to_owned(),
    );
    assert_ne!(access2, access);
    let again = t.post(refresh_nsid, bearer(refresh), json!({})).await;
    assert_eq!(again.refused(400, "ExpiredToken"), "Token has been revoked");
    let as_access = t.get(get, bearer(&refresh2), &[]).await;
    assert_eq!(as_access.refused(400, "InvalidToken"), "Bad token scope");

    t.clock.advance(Duration::from_secs(7200));
    let late = t.get(get, bearer(&access2), &[]).await;
    assert_eq!(late.refused(400, "ExpiredToken"), "Token has expired");
    let fresh = t.post(refresh_nsid, bearer(&refresh2), json!({})).await;
    let access3 = fresh.ok()["accessJwt"].as_str().unwrap().to_owned();
    t.get(get, bearer(&access3), &[]).await.ok();
    t.pds.expire_access_tokens();
    let expired = t.get(get, bearer(&access3), &[]).await;
    assert_eq!(expired.refused(400, "ExpiredToken"), "Token has expired");

    t.get(get, bearer("not.a.jwt"), &[])
        .await
        .refused(400, "InvalidToken");
    t.get(get, How::default(), &[])
        .await
        .refused(401, "AuthenticationRequired");
    assert_eq!((t.pds.session_creates(), t.pds.refreshes()), (1, 2));
    assert_eq!(t.pds.calls(refresh_nsid), 4);
}

#[tokio::test]
async fn the_31st_session_in_five_minutes_is_refused() {
    let t = T::start(PdsSetup::default()).await;
    for _ in 0..30 {
        t.create_session("brand.test", &t.pds.app_password())
            .await
            .ok();
    }
    let over = t.create_session("brand.test", &t.pds.app_password()).await;
    assert_eq!(
        over.refused(429, "RateLimitExceeded"),
        "Rate Limit Exceeded"
    );
    assert_eq!(over.header("ratelimit-limit"), "30");
    assert_eq!(over.header("ratelimit-remaining"), "0");
    assert_eq!(over.header("ratelimit-policy"), "30;w=300");
    let reset: i64 = over.header("ratelimit-reset").parse().unwrap();
    assert!(reset * 1000 > t.clock.now_ms() && reset * 1000 <= t.clock.now_ms() + 301_000);
    // The DID is the same account as the handle.
    let by_did = t
        .create_session(&t.pds.brand_did(), &t.pds.app_password())
        .await;
    by_did.refused(429, "RateLimitExceeded");
    t.clock.advance(Duration::from_secs(301));
    let after = t.create_session("brand.test", &t.pds.app_password()).await;
    after.ok();
    assert_eq!(after.header("ratelimit-remaining"), "29");
    assert_eq!(t.pds.session_creates(), 31);
}

/// The reasons of every notification, read page by page of `limit`.
async fn every_reason(t: &T, token: &str, limit: &str) -> Vec<String> {
    let mut reasons = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", limit)];
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let page = t
            .get("app.bsky.notification.listNotifications", bearer(token), &q)
            .await;
        let list = page.ok()["notifications"].as_array().unwrap();
        assert!(list.len() <= limit.parse().unwrap());
        for n in list {
            reasons.push(n["reason"].as_str().unwrap().to_owned());
            assert_eq!(n["isRead"], false);
        }
        match page.body["cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return reasons,
        }
    }
}

#[tokio::test]
async fn notifications_come_newest_first_in_pages_from_their_arrival() {
    let t = T::start(PdsSetup::default()).await;
    let token = t.login().await;
    let alice = t
        .pds
        .add_customer("alice.test", "Alice", AllowIncoming::All, false);
    let ours = t.pds.seed_brand_post("Our new plans are out");
    let step = || t.clock.advance(Duration::from_secs(1));
    let m = t
        .pds
        .mention("alice.test", "@brand.test mon colis n'arrive pas");
    step();
    let r = t.pds.reply_to("alice.test", &ours, "Pricey!");
    step();
    t.pds.quote("bob.test", &ours, "look at this");
    step();
    t.pds.notify("alice.test", "like", Some(&ours));
    step();
    t.pds.notify("carol.test", "follow", None);
    let later = TrafficLine {
        id: "9".into(),
        channel: Channel::Mention,
        author: "dave_x".into(),
        name: None,
        text: "@brand où est ma commande ?".into(),
        lang: None,
        conversation: None,
        in_reply_to: None,
        at: Some(At::Offset(60.0)),
    };
    t.pds.load_traffic(&[later]);
    assert_eq!(t.pds.pending(), 1);

    let list = "app.bsky.notification.listNotifications";
    let reasons = every_reason(&t, &token, "2").await;
    assert_eq!(reasons, ["follow", "like", "quote", "reply", "mention"]);

    let only = t
        .get(
            list,
            bearer(&token),
            &[("reasons", "mention"), ("reasons", "reply")],
        )
        .await;
    let n = &only.ok()["notifications"];
    assert_eq!(n.as_array().unwrap().len(), 2);
    assert_eq!(n[0]["uri"], r.uri.as_str());
    assert_eq!(n[0]["reasonSubject"], ours.uri.as_str());
    assert_eq!(n[0]["record"]["reply"]["parent"]["cid"], ours.cid.as_str());
    let mention = &n[1];
    assert_eq!(
        (mention["uri"].as_str(), mention["cid"].as_str()),
        (Some(&*m.uri), Some(&*m.cid))
    );
    assert_eq!(mention["author"]["did"], alice.as_str());
    assert_eq!(
        mention["author"]["associated"]["chat"]["allowIncoming"],
        "all"
    );
    assert_eq!(mention["record"]["$type"], "app.bsky.feed.post");
    let facet = &mention["record"]["facets"][0];
    assert_eq!(facet["index"], json!({"byteStart": 0, "byteEnd": 11}));
    assert_eq!(facet["features"][0]["did"], t.pds.brand_did());
    assert!(mention["indexedAt"].as_str().unwrap().ends_with('Z'));

    t.clock.advance(Duration::from_secs(60));
    let newest = t.get(list, bearer(&token), &[("limit", "1")]).await;
    let top = &newest.ok()["notifications"][0];
    assert_eq!(top["author"]["handle"], "dave-x.test");
    assert_eq!(top["record"]["text"], "@brand.test où est ma commande ?");
    assert!(newest.body["cursor"].is_string());
    t.get(list, bearer(&token), &[("limit", "101")])
        .await
        .refused(400, "InvalidRequest");
}

#[tokio::test]
async fn get_posts_answers_the_posts_that_exist_and_failures_can_be_injected() {
    let t = T::start(PdsSetup::default()).await;
    let token = t.login().await;
    let ours = t.pds.seed_brand_post("hello");
    let q = t.pds.quote("alice.test", &ours, "this!");
    let nsid = "app.bsky.feed.getPosts";
    t.pds
        .fail_next(nsid, 502, "UpstreamFailure", "Upstream Failure");
    let args = [
        ("uris", q.uri.as_str()),
        (
            "uris",
            "at://did:plc:nobody/app.bsky.feed.post/3jzfcijpj2z2a",
        ),
    ];
    t.get(nsid, bearer(&token), &args)
        .await
        .refused(502, "UpstreamFailure");
    let got = t.get(nsid, bearer(&token), &args).await;
    let posts = got.ok()["posts"].as_array().unwrap();
    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0]["cid"], q.cid.as_str());
    assert_eq!(posts[0]["author"]["handle"], "alice.test");
    assert_eq!(posts[0]["embed"]["record"]["uri"], ours.uri.as_str());
    assert_eq!(got.header("ratelimit-policy"), "3000;w=300");
    assert_eq!(got.header("ratelimit-remaining"), "2997");
    let many: Vec<(&str, &str)> = (0..26).map(|_| ("uris", q.uri.as_str())).collect();
    t.get(nsid, bearer(&token), &many)
        .await
        .refused(400, "InvalidRequest");
    assert_eq!(t.pds.calls(nsid), 3);
}

#[tokio::test]
async fn create_record_validates_like_a_pds_and_creates_nothing_when_refused() {
    let t = T::start(PdsSetup::default()).await;
    let token = t.login().await;
    t.pds
        .add_customer("alice.test", "Alice", AllowIncoming::All, false);
    let m = t.pds.mention("alice.test", "@brand.test help");
    let reply_ref =
        json!({"root": {"uri": m.uri, "cid": m.cid}, "parent": {"uri": m.uri, "cid": m.cid}});
    let text = "Désolé @alice.test, voyez https://ex.fr #aide";
    let mut good = post_record(text);
    good["langs"] = json!(["fr"]);
    good["reply"] = reply_ref.clone();
    good["facets"] = json!(richtext::detect(text, &|h| (h == "alice.test")
        .then(|| ids::did_for("alice.test"))));
    assert_eq!(good["facets"].as_array().unwrap().len(), 3);
    let ok = t.create_post(&token, good.clone(), None).await;
    let body = ok.ok();
    assert!(
        body["uri"]
            .as_str()
            .unwrap()
            .starts_with(&format!("at://{}/app.bsky.feed.post/", t.pds.brand_did()))
    );
    assert!(body["cid"].as_str().unwrap().starts_with("bafyrei"));
    assert_eq!(body["validationStatus"], "valid");
    assert_eq!(ok.header("ratelimit-policy"), "5000;w=3600");
    assert_eq!(ok.header("ratelimit-remaining"), "4997");
    let stored = t.pds.brand_posts();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].record, good);
    assert!(ids::is_tid(&stored[0].rkey));

    let mut bad_facet = good.clone();
    bad_facet["facets"][0]["index"] = json!({"byteStart": 2, "byteEnd": 9});
    let mut long = good.clone();
    long["text"] = json!("é".repeat(301));
    long.as_object_mut().unwrap().remove("facets");
    let mut wrong_cid = good.clone();
    wrong_cid["reply"]["parent"]["cid"] = json!(ids::cid_of(b"other"));
    let mut bad_date = good.clone();
    bad_date["createdAt"] = json!("yesterday");
    let mut many_langs = good.clone();
    many_langs["langs"] = json!(["fr", "en", "de", "es"]);
    let cases = [
        (bad_facet, None, "inside a UTF-8 character"),
        (long, None, "300 graphemes"),
        (wrong_cid, None, "does not match"),
        (bad_date, None, "createdAt"),
        (many_langs, None, "more than 3"),
        (good.clone(), Some("not-a-tid"), "Invalid rkey"),
    ];
    for (record, rkey, why) in cases {
        let got = t.create_post(&token, record, rkey).await;
        let msg = got.refused(400, "InvalidRequest");
        assert!(msg.contains(why), "{msg:?} should say {why:?}");
    }
    assert_eq!(t.pds.brand_posts().len(), 1);

    let rkey = "3lbbbbbbbbbbb";
    let first = t.create_post(&token, good.clone(), Some(rkey)).await;
    assert!(first.ok()["uri"].as_str().unwrap().ends_with(rkey));
    let dup = t.create_post(&token, good, Some(rkey)).await;
    assert_eq!(dup.refused(400, "InvalidRequest"), "Record already exists");
    assert_eq!(t.pds.brand_posts().len(), 2);
    let rejected = t.pds.rejected();
    assert_eq!(rejected.len(), 7);
    assert!(
        rejected
            .iter()
            .all(|(n, _)| n == "com.atproto.repo.createRecord")
    );
}

#[tokio::test]
async fn write_points_run_out_with_a_reset_time() {
    let mut setup = PdsSetup::default();
    setup.limits.writes_hourly = Limit::new(6, 3600);
    let t = T::start(setup).await;
    let token = t.login().await;
    let start = t.clock.now_ms();
    let first = t.create_post(&token, post_record("one"), None).await;
    first.ok();
    assert_eq!(first.header("ratelimit-remaining"), "3");
    assert_eq!(first.header("ratelimit-policy"), "6;w=3600");
    t.create_post(&token, post_record("two"), None).await.ok();
    let over = t.create_post(&token, post_record("three"), None).await;
    over.refused(429, "RateLimitExceeded");
    assert_eq!(over.header("ratelimit-limit"), "6");
    assert_eq!(over.header("ratelimit-remaining"), "0");
    let reset: i64 = over.header("ratelimit-reset").parse().unwrap();
    assert!(
        (start / 1000 + 3600..=start / 1000 + 3602).contains(&reset),
        "{reset}"
    );
    assert_eq!(t.pds.brand_posts().len(), 2);
    t.clock.advance(Duration::from_secs(3601));
    t.create_post(&token, post_record("three"), None).await.ok();
    assert_eq!(t.pds.brand_posts().len(), 3);
}

#[tokio::test]
async fn chat_needs_the_proxy_header_and_a_privileged_app_password() {
    let t = T::start(PdsSetup::default()).await;
    let token = t.login().await;
    let log = "chat.bsky.convo.getLog";
    let bare = t.get(log, bearer(&token), &[]).await;
    assert!(
        bare.refused(400, "InvalidRequest")
            .contains("not implemented")
    );
    t.get(log, chat_as(&token), &[]).await.ok();

    let t = T::start(PdsSetup {
        dm_access: false,
        ..PdsSetup::default()
    })
    .await;
    let token = t.login().await;
    assert_eq!(claims(&token)["scope"], "com.atproto.appPass");
    let scoped = t.get(log, chat_as(&token), &[]).await;
    assert_eq!(scoped.refused(400, "InvalidToken"), "Bad token scope");
    // Everything else works without DM access.
    t.get("com.atproto.server.getSession", bearer(&token), &[])
        .await
        .ok();
}

fn kinds(logs: &Value) -> Vec<String> {
    logs.as_array()
        .unwrap()
        .iter()
        .map(|l| {
            l["$type"]
                .as_str()
                .unwrap()
                .trim_start_matches("chat.bsky.convo.defs#")
                .to_owned()
        })
        .collect()
}

/// `getMessages` of the convo of the chat-log test: newest first, two by two.
async fn messages_page_newest_first(t: &T, token: &str, convo: &str, first: &str) {
    let page = t
        .get(
            "chat.bsky.convo.getMessages",
            chat_as(token),
            &[("convoId", convo), ("limit", "2")],
        )
        .await;
    let texts: Vec<&str> = page.ok()["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["thanks", "Hello Alice"]);
    let older = page.body["cursor"].as_str().unwrap();
    let rest = t
        .get(
            "chat.bsky.convo.getMessages",
            chat_as(token),
            &[("convoId", convo), ("cursor", older)],
        )
        .await;
    assert_eq!(rest.ok()["messages"][0]["id"], first);
    assert!(rest.body.get("cursor").is_none());
    assert_eq!(page.header("ratelimit-policy"), "3000;w=300");
}

#[tokio::test]
async fn the_chat_log_pages_by_cursor_and_shows_the_brands_own_messages() {
    let t = T::start(PdsSetup::default()).await;
    let token = t.login().await;
    let alice = t
        .pds
        .add_customer("alice.test", "Alice", AllowIncoming::All, false);
    let first = t.pds.dm("alice.test", "hi, see https://ex.fr");
    let log = "chat.bsky.convo.getLog";
    let start = t.get(log, chat_as(&token), &[]).await;
    let body = start.ok();
    assert_eq!(kinds(&body["logs"]), ["logBeginConvo", "logCreateMessage"]);
    let msg = &body["logs"][1]["message"];
    assert_eq!(
        (msg["id"].as_str(), msg["sender"]["did"].as_str()),
        (Some(&*first), Some(&*alice))
    );
    assert_eq!(msg["facets"][0]["features"][0]["uri"], "https://ex.fr");
    let convo = body["logs"][1]["convoId"].as_str().unwrap().to_owned();
    let cursor = body["cursor"].as_str().unwrap().to_owned();
    assert_eq!(cursor, body["logs"][1]["rev"].as_str().unwrap());

    let send = json!({"convoId": convo, "message": {"text": "Hello Alice"}});
    let sent = t
        .post("chat.bsky.convo.sendMessage", chat_as(&token), send)
        .await;
    assert_eq!(sent.ok()["sender"]["did"], t.pds.brand_did());
    t.clock.advance(Duration::from_secs(1));
    t.pds.dm("alice.test", "thanks");
    t.pds.react("alice.test", &first, "👍");
    let next = t.get(log, chat_as(&token), &[("cursor", &cursor)]).await;
    let body = next.ok();
    let k = kinds(&body["logs"]);
    assert_eq!(
        k,
        [
            "logAcceptConvo",
            "logCreateMessage",
            "logCreateMessage",
            "logAddReaction"
        ]
    );
    let revs: Vec<&str> = body["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["rev"].as_str().unwrap())
        .collect();
    assert!(revs.windows(2).all(|w| w[0] < w[1]) && revs[0] > cursor.as_str());
    assert_eq!(body["logs"][1]["message"]["text"], "Hello Alice");
    let last = body["cursor"].as_str().unwrap().to_owned();
    let idle = t.get(log, chat_as(&token), &[("cursor", &last)]).await;
    assert_eq!(idle.ok()["logs"], json!([]));
    assert_eq!(idle.body["cursor"], last.as_str());

    let dms = t.pds.brand_dms();
    assert_eq!(
        (dms.len(), dms[0].to_did.as_str(), dms[0].text.as_str()),
        (1, &*alice, "Hello Alice")
    );
    messages_page_newest_first(&t, &token, &convo, &first).await;
}

#[tokio::test]
async fn allow_incoming_decides_who_the_brand_can_write_to() {
    let t = T::start(PdsSetup::default()).await;
    let token = t.login().await;
    let bob = t
        .pds
        .add_customer("bob.test", "Bob", AllowIncoming::None, true);
    t.pds.dm("bob.test", "my order?");
    let logs = t.get("chat.bsky.convo.getLog", chat_as(&token), &[]).await;
    let convo = logs.ok()["logs"][0]["convoId"].as_str().unwrap().to_owned();
    let send = json!({"convoId": convo, "message": {"text": "Hello Bob"}});
    let refused = t
        .post("chat.bsky.convo.sendMessage", chat_as(&token), send)
        .await;
    assert_eq!(
        refused.refused(400, "InvalidRequest"),
        "recipient has disabled incoming messages"
    );
    assert!(t.pds.brand_dms().is_empty());

    let get = |did: String| {
        let (t, token) = (&t, &token);
        async move {
            let q = [("members", did.as_str())];
            t.get("chat.bsky.convo.getConvoForMembers", chat_as(token), &q)
                .await
        }
    };
    get(bob).await.refused(400, "MessagesDisabled");
    let carol = t
        .pds
        .add_customer("carol.test", "Carol", AllowIncoming::Following, false);
    get(carol).await.refused(400, "NotFollowedBySender");
    get(ids::did_for("nobody.test"))
        .await
        .refused(400, "RecipientNotFound");
    let dave = t
        .pds
        .add_customer("dave.test", "Dave", AllowIncoming::Following, true);
    let got = get(dave.clone()).await;
    let convo = &got.ok()["convo"];
    assert_eq!(convo["members"][1]["did"], dave.as_str());
    assert_eq!(
        convo["members"][1]["associated"]["chat"]["allowIncoming"],
        "following"
    );
    assert_eq!(convo["status"], "accepted");
    let long = json!({"convoId": convo["id"], "message": {"text": "x".repeat(1001)}});
    let too_long = t
        .post("chat.bsky.convo.sendMessage", chat_as(&token), long)
        .await;
    assert!(
        too_long
            .refused(400, "InvalidRequest")
            .contains("1000 graphemes")
    );
}

#[test]
fn traffic_mentions_name_the_brand_by_its_handle() {
    assert_eq!(
        with_brand_mention("@lumio hello", "lumio.bsky.social"),
        "@lumio.bsky.social hello"
    );
    assert_eq!(
        with_brand_mention("hi @Lumio.", "lumio.test"),
        "hi @lumio.test."
    );
    assert_eq!(
        with_brand_mention("@ana_b @lumio ok", "lumio.test"),
        "@ana_b @lumio.test ok"
    );
    assert_eq!(
        with_brand_mention("lumio rocks", "lumio.test"),
        "@lumio.test lumio rocks"
    );
    assert_eq!(bluesky_handle("@Camille_R"), "camille-r.test");
}

#[tokio::test]
async fn the_demo_traffic_file_loads_as_mentions_and_dms() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("demo/traffic.jsonl");
    let lines = crate::platforms::x::fake::read_traffic(&path).unwrap();
    let dms = lines.iter().filter(|l| l.channel == Channel::Dm).count();
    let t = T::start(PdsSetup::brand("lumio.test")).await;
    assert_eq!(t.pds.brand_did(), ids::did_for("lumio.test"));
    t.pds.load_traffic(&lines);
    t.clock.advance(Duration::from_secs(2));
    assert_eq!(t.pds.pending(), 0);
    let token = t.login().await;
    let reasons = every_reason(&t, &token, "100").await;
    assert_eq!(reasons.len(), lines.len() - dms);
    assert!(reasons.iter().all(|r| r == "mention"), "{reasons:?}");
    let q = [("limit", "100")];
    let list = t
        .get(
            "app.bsky.notification.listNotifications",
            bearer(&token),
            &q,
        )
        .await;
    for n in list.ok()["notifications"].as_array().unwrap() {
        let facets = n["record"]["facets"].as_array().unwrap();
        assert!(
            facets
                .iter()
                .any(|f| f["features"][0]["did"] == t.pds.brand_did())
        );
    }
    let log = t.get("chat.bsky.convo.getLog", chat_as(&token), &[]).await;
    let created = kinds(&log.ok()["logs"])
        .iter()
        .filter(|k| *k == "logCreateMessage")
        .count();
    assert_eq!(created, dms);
}
