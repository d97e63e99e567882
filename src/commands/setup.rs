//! Operator set-up: `helpdesk init`, `helpdesk config check`, shell
//! completions.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result, bail};

use crate::rules::{LoadOptions, RuleSet};
use crate::runtime::config::Config;
use crate::storage::redact_url;

/// The commented configuration `init` writes.
pub const EXAMPLE_CONFIG: &str = include_str!("../../contrib/helpdesk.example.toml");

/// The starter rules `init` writes: the demo company's, to adapt.
pub const STARTER_RULES: &[(&str, &str)] = &[
    ("10-faq.toml", include_str!("../../rules/10-faq.toml")),
    (
        "20-escalations.toml",
        include_str!("../../rules/20-escalations.toml"),
    ),
    ("30-noise.toml", include_str!("../../rules/30-noise.toml")),
];

/// Writes `helpdesk.toml` and `rules/` into `dir`, never over existing files.
pub fn init(dir: &Path, out: &mut dyn Write) -> Result<()> {
    std::fs::create_dir_all(dir.join("rules"))
        .with_context(|| format!("cannot create {}", dir.join("rules").display()))?;
    let mut files = vec![(dir.join("helpdesk.toml"), EXAMPLE_CONFIG)];
    for (name, text) in STARTER_RULES {
        files.push((dir.join("rules").join(name), text));
    }
    if let Some((p, _)) = files.iter().find(|(p, _)| p.exists()) {
        bail!(
            "{} already exists: init never overwrites; pick an empty folder",
            p.display()
        );
    }
    for (p, text) in &files {
        std::fs::write(p, text).with_context(|| format!("cannot write {}", p.display()))?;
        writeln!(out, "wrote {}", p.display())?;
    }
    writeln!(
        out,
        "\nnext: edit the rules, check with `helpdesk config check --config {}`, then `helpdesk run --config {}`",
        dir.join("helpdesk.toml").display(),
        dir.join("helpdesk.toml").display()
    )?;
    Ok(())
}

/// Validates the configuration and the rules (examples included), and
/// prints the effective configuration with secrets redacted. Returns the
/// exit code.
pub fn check(path: &Path, out: &mut dyn Write) -> Result<i32> {
    let mut config = Config::load(path, true)?;
    let mut ok = true;
    match RuleSet::load_dir(&config.rules, &LoadOptions::default()) {
        Ok(r) => {
            let s = r.stats();
            writeln!(
                out,
                "# rules: ok, {} rules in {} files, every example passes",
                r.rules().len(),
                s.files
            )?;
        }
        Err(e) => {
            ok = false;
            eprintln!("{}", e.render());
            writeln!(out, "# rules: {} errors (on stderr)", e.diagnostics.len())?;
        }
    }
    if let Some(x) = &config.x {
        let mut vars = vec![];
        if x.token_store == crate::platforms::x::config::TokenStore::Database {
            // Whether the login is there is only known with the database
            // and the key: `helpdesk run` says so at start.
            vars.push(&x.client_id_env);
            if let Some(s) = &x.client_secret_env {
                vars.push(s);
            }
            vars.push(&x.token_key_env);
        } else if x.token_file.is_some() {
            vars.push(&x.client_id_env);
            if let Some(s) = &x.client_secret_env {
                vars.push(s);
            }
            if let Some(f) = &x.token_file
                && !f.exists()
            {
                ok = false;
                writeln!(
                    out,
                    "# x.token_file {} does not exist: run `helpdesk x login`",
                    f.display()
                )?;
            }
        } else {
            vars.push(&x.access_token_env);
        }
        if let Some(w) = &x.webhook {
            vars.push(&w.consumer_secret_env);
        }
        for v in vars {
            let set = std::env::var(v).is_ok_and(|s| !s.trim().is_empty());
            if !set {
                ok = false;
            }
            writeln!(out, "# secret {v}: {}", if set { "set" } else { "NOT SET" })?;
        }
    } else {
        writeln!(
            out,
            "# no [x] section: `helpdesk run` has no platform to serve"
        )?;
        ok = false;
    }
    config.database_url = redact_url(&config.database_url);
    writeln!(
        out,
        "# effective configuration (file, then HELPDESK_* overrides):"
    )?;
    let text = toml::to_string_pretty(&config).context("cannot print the configuration")?;
    writeln!(out, "{text}")?;
    Ok(if ok { 0 } else { 1 })
}
