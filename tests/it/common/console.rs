//! The agents' console beside a spawned bot, and an HTTP client that
//! signs in and keeps its cookies, as a browser without JavaScript does.

use std::sync::Arc;

use helpdesk::application::agents;
use helpdesk::domain::AgentName;
use helpdesk::domain::secret::Secret;
use helpdesk::runtime::console::{Console, ConsoleSettings};
use helpdesk::runtime::shutdown::Shutdown;
use reqwest::StatusCode;
use reqwest::header::{COOKIE, HeaderMap, SET_COOKIE};

use super::App;

/// Every test agent's password.
pub const PASSWORD: &str = "correct horse battery staple";

/// A console serving a spawned bot's database, stopped when dropped.
pub struct ConsoleServer {
    pub base: String,
    stop: Shutdown,
}

impl Drop for ConsoleServer {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// Serves the console of `app` (its database, rules, configuration) with
/// `settings` on a free port, and adds `agents` with [`PASSWORD`].
pub async fn start(app: &App, settings: ConsoleSettings, agents: &[&str]) -> ConsoleServer {
    for name in agents {
        let name = AgentName::parse(name).unwrap();
        agents::add(
            &app.store,
            &name,
            &Secret::new(PASSWORD),
            app.clock.now_ms(),
        )
        .await
        .unwrap();
    }
    let mut config = app.config.clone();
    config.console = ConsoleSettings {
        listen: "127.0.0.1:0".into(),
        ..settings
    };
    let console = Console::new(
        &config,
        app.store.clone(),
        app.bot.rules(),
        app.clock.clone(),
    );
    let stop = Shutdown::new();
    let addr = helpdesk::runtime::console::serve(Arc::new(console), config.http.clone(), &stop)
        .await
        .unwrap();
    ConsoleServer {
        base: format!("http://{addr}"),
        stop,
    }
}

/// One browser's worth of cookies, without JavaScript.
pub struct Agent {
    http: reqwest::Client,
    base: String,
    cookies: Vec<(String, String)>,
    /// The session's CSRF token, read off the last page.
    pub csrf: String,
}

/// An answer: status, headers, body.
pub struct Page {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: String,
}

impl Page {
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// The value of the first `name="csrf" value="…"` on a page.
pub fn csrf_of(body: &str) -> Option<String> {
    let at = body.find("name=\"csrf\" value=\"")? + "name=\"csrf\" value=\"".len();
    body[at..].split('"').next().map(str::to_owned)
}

impl Agent {
    /// A browser with no cookies yet.
    pub fn new(server: &ConsoleServer) -> Agent {
        Agent::at(&server.base)
    }

    /// A browser with no cookies yet, for the console at `base`.
    pub fn at(base: &str) -> Agent {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Agent {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            base: base.to_owned(),
            cookies: Vec::new(),
            csrf: String::new(),
        }
    }

    fn cookie_header(&self) -> String {
        self.cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }

    fn keep_cookies(&mut self, headers: &HeaderMap) {
        for v in headers.get_all(SET_COOKIE) {
            let v = v.to_str().unwrap();
            let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').unwrap();
            self.cookies.retain(|(name, _)| name != k);
            if !attrs.contains("Max-Age=0") {
                self.cookies.push((k.to_owned(), val.to_owned()));
            }
        }
    }

    async fn finish(&mut self, resp: reqwest::Response) -> Page {
        let status = resp.status();
        let headers = resp.headers().clone();
        self.keep_cookies(&headers);
        let body = resp.text().await.unwrap();
        if let Some(t) = csrf_of(&body) {
            self.csrf = t;
        }
        Page {
            status,
            headers,
            body,
        }
    }

    /// GET `path`.
    pub async fn get(&mut self, path: &str) -> Page {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .send()
            .await
            .unwrap();
        self.finish(resp).await
    }

    /// POST a form to `path` with `fields` as given (no token added).
    pub async fn post_raw(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Page {
        let mut req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(COOKIE, self.cookie_header())
            .form(fields);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        self.finish(resp).await
    }

    /// POST a form to `path` with the session's CSRF token.
    pub async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf.clone();
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all, &[]).await
    }

    /// Signs in through the form; the answer to the form's POST.
    pub async fn sign_in(&mut self, name: &str, password: &str) -> Page {
        let form = self.get("/login").await;
        assert_eq!(form.status, StatusCode::OK);
        let csrf = self.csrf.clone();
        let page = self
            .post_raw(
                "/login",
                &[("name", name), ("password", password), ("csrf", &csrf)],
                &[],
            )
            .await;
        if page.status == StatusCode::SEE_OTHER {
            // The inbox, for the session's token.
            self.get("/").await;
        }
        page
    }

    /// The cookie `name`'s value, if held.
    pub fn cookie(&self, name: &str) -> Option<&str> {
        self.cookies
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}
