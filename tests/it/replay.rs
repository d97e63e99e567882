//! `helpdesk rules replay` run as a process: on a JSON-lines file and on a
//! database the bot filled from the X sandbox, its exit codes (0 unchanged,
//! 1 changed, 2 error), its groups and JSON lines, its filters, and its
//! agreement, message for message, with `rules test --json -` under each
//! rule set.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::Value;

use crate::common::{self, Db, Setup, line, spawn};

const BIN: &str = env!("CARGO_BIN_EXE_helpdesk");

/// The repository's rules with two changes: `coupure` no longer names an
/// outage (those messages fall to the `[default]` escalation), and the
/// opening hours are escalated instead of answered.
fn new_rules(dir: &Path) -> PathBuf {
    let new = dir.join("new");
    std::fs::create_dir_all(&new).unwrap();
    for entry in std::fs::read_dir(common::repo_rules()).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let text = text.replacen("\"coupure\", ", "", 1).replacen(
            "reply = { fr = \"Bonjour {author}, nos conseillers répondent",
            "escalate = { queue = \"tech\", priority = \"low\" }\nold_reply = {",
            1,
        );
        std::fs::write(new.join(path.file_name().unwrap()), text).unwrap();
    }
    // `old_reply` would be an unknown key: drop that line.
    let faq = new.join("10-faq.toml");
    let text = std::fs::read_to_string(&faq).unwrap();
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| !l.starts_with("old_reply"))
        .collect();
    std::fs::write(&faq, kept.join("\n")).unwrap();
    new
}

/// A corpus in French and English, with accents, emoji and typographic
/// apostrophes, on every channel.
const CORPUS: &[(&str, &str, &str)] = &[
    ("m1", "mention", "encore une coupure chez @lumio 😡"),
    ("m2", "dm", "Coupure d’internet depuis ce matin"),
    ("m3", "mention", "Quels sont vos horaires ?"),
    ("m4", "search", "what are your opening hours?"),
    ("m5", "mention", "je veux être REMBOURSÉ"),
    ("m6", "dm", "forgot my PASSWORD!!"),
    ("m7", "mention", "bonjour 👋"),
    ("m8", "search", "la box ne fonctionne plus"),
    (
        "m9",
        "mention",
        "coupure de réseau à Lyon, c’est quand la fin ?",
    ),
    ("m10", "dm", "horaires du magasin de Nantes ?"),
    ("m11", "mention", "I was charged twice this month"),
    ("m12", "search", "coupure générale ?"),
];

fn write_corpus(dir: &Path) -> PathBuf {
    let path = dir.join("messages.jsonl");
    let mut f = std::fs::File::create(&path).unwrap();
    for (i, (id, channel, text)) in CORPUS.iter().enumerate() {
        let day = 20 + i % 3;
        let v = serde_json::json!({"id": id, "channel": channel, "text": text,
            "platform": "x", "written_at": format!("2026-01-{day}T10:00:00Z")});
        writeln!(f, "{v}").unwrap();
    }
    path
}

fn helpdesk(args: &[&str], dir: &Path) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("HELPDESK_CONFIG")
        .env_remove("HELPDESK_DATABASE_URL")
        .output()
        .unwrap()
}

/// `rules replay --rules NEW --against <the repository's rules> --input FILE`, and `extra`.
fn replay_input(dir: &Path, new: &Path, input: &Path, extra: &[&str]) -> Output {
    replay_against(dir, (new, &crate::common::repo_rules()), input, extra)
}

fn json_lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

/// (rule, action) of every corpus message under `rules`, from `rules test --json -`.
fn rules_test(rules: &Path) -> Vec<(Value, Value)> {
    let mut child = Command::new(BIN)
        .args(["rules", "test", "--json", "-", "--rules"])
        .arg(rules)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for (_, channel, text) in CORPUS {
        writeln!(
            stdin,
            "{}",
            serde_json::json!({"text": text, "channel": channel})
        )
        .unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    json_lines(&out)
        .into_iter()
        .map(|v| (v["rule"].clone(), v["action"].clone()))
        .collect()
}

#[test]
fn a_file_replay_agrees_with_rules_test_under_each_rule_set() {
    let dir = tempfile::tempdir().unwrap();
    let new = new_rules(dir.path());
    let old = common::repo_rules();
    let corpus = write_corpus(dir.path());
    let out = replay_input(dir.path(), &new, &corpus, &["--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = json_lines(&out);
    let summary = lines.pop().unwrap()["summary"].clone();
    let (before, after) = (rules_test(&old), rules_test(&new));
    let mut expected = Vec::new();
    let mut per_rule: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (i, (id, channel, text)) in CORPUS.iter().enumerate() {
        let key = |r: &Value| r.as_str().unwrap_or("(unmatched)").to_owned();
        per_rule.entry(key(&before[i].0)).or_default().0 += 1;
        per_rule.entry(key(&after[i].0)).or_default().1 += 1;
        if before[i] != after[i] {
            expected.push(
                serde_json::json!({"id": id, "text": text, "channel": channel,
                "before": {"rule": before[i].0, "action": before[i].1},
                "after": {"rule": after[i].0, "action": after[i].1}}),
            );
        }
    }
    assert_eq!(lines, expected);
    assert!(expected.len() >= 5, "the corpus exercises both changes");
    assert_eq!(summary["messages"], CORPUS.len());
    assert_eq!(summary["changed"], expected.len());
    let counted: BTreeMap<String, (u64, u64)> = summary["per_rule"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (v["before"].as_u64().unwrap(), v["after"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(counted, per_rule);
    assert_eq!(summary["by_change"]["opening-hours: reply → escalate"], 3);
    assert_eq!(
        summary["by_change"]["outage-status → (unmatched) (reply → escalate)"],
        4
    );
}

#[test]
fn a_file_replay_prints_the_same_whatever_the_number_of_threads() {
    let dir = tempfile::tempdir().unwrap();
    let new = new_rules(dir.path());
    let one = write_corpus(dir.path());
    let corpus = std::fs::read_to_string(&one).unwrap();
    // Thousands of lines, so dozens of blocks go to the threads.
    let big = dir.path().join("big.jsonl");
    let mut text = String::new();
    for copy in 0..400 {
        text.push_str(&corpus.replace("\"id\":\"m", &format!("\"id\":\"c{copy}-m")));
    }
    std::fs::write(&big, text).unwrap();
    let run = |threads: &str, json: bool| {
        let mut extra = vec!["--threads", threads];
        if json {
            extra.push("--json");
        }
        replay_input(dir.path(), &new, &big, &extra)
    };
    for json in [true, false] {
        let (a, b) = (run("1", json), run("4", json));
        assert_eq!(
            a.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&a.stderr)
        );
        assert_eq!(b.status.code(), Some(1));
        assert!(
            a.stdout == b.stdout,
            "1 and 4 threads differ (json: {json})"
        );
    }
    // The samples are the first of each group, in input order.
    let readable = String::from_utf8(run("4", false).stdout).unwrap();
    assert!(readable.contains("replayed 4800 messages"), "{readable}");
    assert!(readable.contains("c0-m"), "{readable}");
    assert!(!readable.contains("c1-m"), "{readable}");
}

#[test]
fn a_broken_line_stops_the_replay_after_printing_what_came_before_it() {
    let dir = tempfile::tempdir().unwrap();
    let new = new_rules(dir.path());
    let corpus = write_corpus(dir.path());
    let mut text = std::fs::read_to_string(&corpus).unwrap();
    text.push_str("{\"text\": oops}\n");
    text.push_str(&std::fs::read_to_string(&corpus).unwrap());
    std::fs::write(&corpus, text).unwrap();
    let out = replay_input(dir.path(), &new, &corpus, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 13 is not a message"), "{err}");
    // The 7 changes of the 12 lines before it, as one at a time would have
    // printed them, and nothing after it (no summary: the replay failed).
    assert_eq!(
        json_lines(&out).len(),
        7,
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn a_line_that_is_not_an_object_is_not_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let new = new_rules(dir.path());
    // Eight fields in the order of a line's keys, which serde would take.
    let corpus = dir.path().join("array.jsonl");
    std::fs::write(
        &corpus,
        "[null, \"refund\", null, null, null, null, null, null]\n",
    )
    .unwrap();
    let out = replay_input(dir.path(), &new, &corpus, &["--json"]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("line 1 is not a message") && err.contains("not a JSON object"),
        "{err}"
    );
}

/// A configuration whose database is the SQLite file `db` and whose rules
/// are the repository's.
fn sqlite_config(dir: &Path, db: &Path) -> PathBuf {
    let config = dir.join("helpdesk.toml");
    let toml = format!(
        "database_url = \"sqlite://{}\"\nrules = \"{}\"\nadmin_listen = \"\"\n",
        db.display(),
        common::repo_rules().display()
    );
    std::fs::write(&config, toml).unwrap();
    config
}

/// A database the bot would have made: `report` opens it as the bot does.
fn migrated(dir: &Path, config: &Path) {
    let out = helpdesk(&["report", "--config", config.to_str().unwrap()], dir);
    assert!(out.status.success(), "{out:?}");
}

/// `rules replay --json --rules NEW --config CONFIG`.
fn replay_config(dir: &Path, config: &Path) -> Output {
    let new = new_rules(dir);
    let (new, config) = (new.to_str().unwrap(), config.to_str().unwrap());
    helpdesk(
        &[
            "rules", "replay", "--json", "--rules", new, "--config", config,
        ],
        dir,
    )
}

#[test]
fn a_preview_creates_migrates_and_changes_no_database() {
    let dir = tempfile::tempdir().unwrap();
    // A mistyped path: an error, and no file.
    let db = dir.path().join("typo.db");
    let out = replay_config(dir.path(), &sqlite_config(dir.path(), &db));
    assert_eq!(out.status.code(), Some(2));
    assert!(!db.exists());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("there is no SQLite database at") && err.contains("creates none"),
        "{err}"
    );
    // Another program's database: not helpdesk's, and left as it was.
    let other = dir.path().join("other.db");
    let c = rusqlite::Connection::open(&other).unwrap();
    c.execute_batch("CREATE TABLE foo (x)").unwrap();
    let out = replay_config(dir.path(), &sqlite_config(dir.path(), &other));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not a helpdesk database"), "{err}");
    let tables: i64 = c
        .query_row("SELECT COUNT(*) FROM sqlite_master", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1);
    // A database an older helpdesk runs on: refused, not upgraded.
    let old = dir.path().join("old.db");
    let config = sqlite_config(dir.path(), &old);
    migrated(dir.path(), &config);
    let c = rusqlite::Connection::open(&old).unwrap();
    c.execute("DELETE FROM _sqlx_migrations WHERE version > 10", [])
        .unwrap();
    let out = replay_config(dir.path(), &config);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is at schema version 10"), "{err}");
    let last: i64 = c
        .query_row("SELECT MAX(version) FROM _sqlx_migrations", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(last, 10);
}

#[test]
fn a_row_whose_text_is_not_utf8_is_replayed_and_named() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bot.db");
    let config = sqlite_config(dir.path(), &db);
    migrated(dir.path(), &config);
    // As a tool other than helpdesk could write it: SQLite does not check.
    rusqlite::Connection::open(&db)
        .unwrap()
        .execute(
            "INSERT INTO messages (platform, platform_message_id, channel, conversation_id, \
             author_id, author_handle, author_name, text, written_at, received_at, action) \
             VALUES ('x', 'm-bad', 'mention', 'c', 'a', 'h', 'n', \
             CAST(X'6d6f742064652070617373ff' AS TEXT), 0, 0, 'none')",
            [],
        )
        .unwrap();
    let out = replay_config(dir.path(), &config);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("message m-bad (x): its stored text is not UTF-8"),
        "{err}"
    );
    let summary = json_lines(&out).pop().unwrap();
    assert_eq!(summary["summary"]["messages"], 1, "{summary}");
}

#[test]
fn the_readable_preview_groups_changes_with_samples_and_costs() {
    let dir = tempfile::tempdir().unwrap();
    let new = new_rules(dir.path());
    let corpus = write_corpus(dir.path());
    let old = common::repo_rules();
    let out = replay_input(dir.path(), &new, &corpus, &["--limit", "1"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("replayed 12 messages: 7 would be routed differently"),
        "{text}"
    );
    assert!(
        text.contains(
            "  opening-hours: reply → escalate: 3\n      m3: Quels sont vos horaires ?\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("  outage-status → (unmatched) (reply → escalate): 4\n      m1: "),
        "{text}"
    );
    assert!(text.contains("x        2026-01-20  tickets"), "{text}");
    assert!(
        !text.contains("m9:"),
        "--limit 1 shows one sample per group: {text}"
    );
    // The same rules on both sides: nothing changes, exit 0.
    let same = replay_input(dir.path(), &old, &corpus, &[]);
    assert_eq!(same.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&same.stdout).contains("12 messages: 0 would"));
}

#[test]
fn channel_and_since_filters_choose_the_messages() {
    let dir = tempfile::tempdir().unwrap();
    let new = new_rules(dir.path());
    let corpus = write_corpus(dir.path());
    let run = |extra: &[&str]| {
        let args: Vec<&str> = ["--json"].iter().chain(extra).copied().collect();
        let out = replay_input(dir.path(), &new, &corpus, &args);
        json_lines(&out).pop().unwrap()["summary"].clone()
    };
    assert_eq!(run(&["--channel", "dm"])["messages"], 3);
    assert_eq!(
        run(&["--channel", "dm", "--channel", "search"])["messages"],
        6
    );
    // The corpus was written in January 2026, long before a week ago.
    assert_eq!(run(&["--since", "1w"])["messages"], 0);
    assert_eq!(run(&["--since", "5200w"])["messages"], 12);
    let bad = replay_input(dir.path(), &new, &corpus, &["--json", "--since", "soon"]);
    assert_eq!(bad.status.code(), Some(2));
    // A line without written_at cannot be said to be within the period:
    // an error that names it, not a message kept or dropped unseen.
    let mut text = std::fs::read_to_string(&corpus).unwrap();
    text.push_str("{\"id\": \"undated\", \"text\": \"hello\", \"channel\": \"dm\"}\n");
    std::fs::write(&corpus, text).unwrap();
    let undated = replay_input(dir.path(), &new, &corpus, &["--json", "--since", "5200w"]);
    assert_eq!(undated.status.code(), Some(2));
    let err = String::from_utf8_lossy(&undated.stderr);
    assert!(err.contains("line 13 has no written_at"), "{err}");
    assert_eq!(run(&[])["messages"], 13, "without --since it is replayed");
}

#[test]
fn a_reader_that_goes_away_does_not_turn_a_change_into_exit_0() {
    let dir = tempfile::tempdir().unwrap();
    let new = new_rules(dir.path());
    let corpus = write_corpus(dir.path());
    // Enough changed lines to fill the pipe many times over.
    let one = std::fs::read_to_string(&corpus).unwrap();
    std::fs::write(&corpus, one.repeat(20_000)).unwrap();
    let old = common::repo_rules();
    // The new rules change 7 of every 12 lines: the pipe closes on changed
    // lines. The old ones change none: their one summary line fits in the
    // pipe, and the code stays 0.
    for (rules, want) in [(&new, 1), (&old, 0)] {
        let mut child = Command::new(BIN)
            .args(["rules", "replay", "--json", "--rules"])
            .arg(rules)
            .arg("--against")
            .arg(&old)
            .arg("--input")
            .arg(&corpus)
            .current_dir(dir.path())
            .env_remove("HELPDESK_CONFIG")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // `| head -c 100`: read a little, then close the pipe.
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0u8; 100];
        std::io::Read::read_exact(&mut stdout, &mut first).unwrap();
        drop(stdout);
        let out = child.wait_with_output().unwrap();
        assert_eq!(
            out.status.code(),
            Some(want),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn the_readable_preview_cannot_drive_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let new = new_rules(dir.path());
    let path = dir.path().join("hostile.jsonl");
    // An id with a line break and an escape sequence, a text with a
    // right-to-left override; a message of the corpus that changes route.
    let line = serde_json::json!({"id": "h1\n\u{1b}[1m", "channel": "mention",
        "text": "\u{202e}Quels sont vos horaires ?"});
    std::fs::write(&path, format!("{line}\n")).unwrap();
    let out = replay_input(dir.path(), &new, &path, &[]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("      h1  [1m:  Quels sont vos horaires ?\n"),
        "{text}"
    );
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );
    assert!(
        text.contains("undated (not compared with the daily budget)"),
        "{text}"
    );
}

#[test]
fn undated_lines_are_not_held_to_a_daily_budget() {
    let dir = tempfile::tempdir().unwrap();
    let old = common::repo_rules();
    // 6 000 automatic replies, over the default's 5 819 a day at most (60
    // at once, then one every 15 s): an alarm on one day, none when
    // nothing says they were one day.
    let replies = |written_at: Option<&str>| {
        let mut line =
            serde_json::json!({"id": "p", "channel": "dm", "text": "forgot my PASSWORD!!"});
        if let Some(at) = written_at {
            line["written_at"] = at.into();
        }
        let path = dir.path().join("replies.jsonl");
        std::fs::write(&path, format!("{line}\n").repeat(6_000)).unwrap();
        let out = replay_input(dir.path(), &old, &path, &[]);
        assert_eq!(out.status.code(), Some(0));
        String::from_utf8(out.stdout).unwrap()
    };
    let one_day = replies(Some("2026-01-20T10:00:00Z"));
    assert!(
        one_day.contains("OVER BUDGET (5819), as before"),
        "{one_day}"
    );
    let undated = replies(None);
    assert!(!undated.contains("OVER BUDGET"), "{undated}");
}

#[test]
fn broken_new_rules_are_reported_as_rules_check_does_and_nothing_is_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = write_corpus(dir.path());
    let broken = common::rules_dir(
        dir.path(),
        "[[rule]]\nkeywords = [\"a\"]\nreply = \"hi\"\n\n[[rule]]\nid = \"x\"\nkeywords = []\nreply = \"{nope}\"\n",
    );
    let check = helpdesk(
        &["rules", "check", "--rules", broken.to_str().unwrap()],
        dir.path(),
    );
    let out = helpdesk(
        &[
            "rules",
            "replay",
            "--json",
            "--rules",
            broken.to_str().unwrap(),
            "--against",
            common::repo_rules().to_str().unwrap(),
            "--input",
            corpus.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty(), "nothing replayed");
    let rendered = String::from_utf8(check.stderr).unwrap();
    let diagnostics = rendered.rsplit_once("error: ").unwrap().0;
    assert!(diagnostics.matches("error").count() >= 2, "{rendered}");
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .starts_with(diagnostics)
    );
}

/// The bot records the sandbox's traffic; the replay reads its database
/// through the configuration, whose rules are the old ones by default.
async fn replays_the_database_the_bot_filled(db: Db) {
    let traffic = CORPUS
        .iter()
        .enumerate()
        .map(|(i, (_, channel, text))| {
            line(&(5000 + i).to_string(), channel, &format!("cust{i}"), text)
        })
        .collect::<Vec<_>>()
        .join("\n");
    let Some(app) = spawn(Setup::new(db, &traffic)).await else {
        return;
    };
    app.settle().await;
    let dir = tempfile::tempdir().unwrap();
    let new = new_rules(dir.path());
    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        format!(
            "database_url = \"{}\"\nrules = \"{}\"\n\n[limits]\nglobal = {{ replies = 1, per_secs = 86400 }}\n\n[x]\nbase_url = \"http://127.0.0.1:9\"\naccess_token_env = \"HD_TEST_NO_SUCH_TOKEN\"\n",
            app.url,
            common::repo_rules().display()
        ),
    )
    .unwrap();
    let recorded = app.count("SELECT COUNT(*) FROM messages").await;
    let run = |extra: &[&str]| {
        let mut args = vec![
            "rules",
            "replay",
            "--rules",
            new.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        helpdesk(&args, dir.path())
    };
    let out = run(&["--json"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = json_lines(&out);
    let summary = lines.pop().unwrap()["summary"].clone();
    assert_eq!(summary["messages"], recorded);
    assert_eq!(summary["changed"], lines.len());
    assert!(lines.len() >= 5, "{lines:?}");
    assert!(
        lines
            .iter()
            .all(|l| l["id"].as_str().unwrap().starts_with("50"))
    );
    // The readable preview says which days the replies exceed the budget.
    let text = String::from_utf8(run(&[]).stdout).unwrap();
    assert!(text.contains("OVER BUDGET (1)"), "{text}");
    assert_eq!(
        json_lines(&run(&["--json", "--channel", "dm"]))
            .pop()
            .unwrap()["summary"]["messages"],
        3
    );
    // A message written long ago is left out by --since.
    sqlx::query("UPDATE messages SET written_at = 0 WHERE platform_message_id = '5000'")
        .execute(app.store.pool())
        .await
        .unwrap();
    let recent = json_lines(&run(&["--json", "--since", "30d"]))
        .pop()
        .unwrap();
    assert_eq!(recent["summary"]["messages"], recorded - 1);
}

on_both_databases!(replays_the_database_the_bot_filled);

/// `rules replay --rules NEW --against OLD --input FILE`, and `extra`.
fn replay_against(dir: &Path, (new, old): (&Path, &Path), input: &Path, extra: &[&str]) -> Output {
    let (new, old, input) = (
        new.to_str().unwrap(),
        old.to_str().unwrap(),
        input.to_str().unwrap(),
    );
    let mut args = vec![
        "rules",
        "replay",
        "--rules",
        new,
        "--against",
        old,
        "--input",
        input,
    ];
    args.extend(extra);
    helpdesk(&args, dir)
}

/// Writes `text` as the one rule file of folder `name` under `dir`.
fn rule_folder(dir: &Path, name: &str, text: &str) -> PathBuf {
    let folder = dir.join(name);
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::write(folder.join("rules.toml"), text).unwrap();
    folder
}

#[test]
fn a_rule_named_unmatched_is_not_mistaken_for_no_rule() {
    let dir = tempfile::tempdir().unwrap();
    let rule = |id: &str, kw: &str| {
        format!("[[rule]]\nid = \"{id}\"\nkeywords = [\"{kw}\"]\nignore = true\n\n")
    };
    let old = rule_folder(
        dir.path(),
        "old",
        &(rule("unmatched", "foo") + &rule("bar", "bar")),
    );
    let new = rule_folder(
        dir.path(),
        "new",
        &(rule("bar", "bar") + &rule("unmatched", "baz")),
    );
    let input = dir.path().join("m.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"1\",\"text\":\"foo\"}\n{\"id\":\"2\",\"text\":\"baz\"}\n{\"id\":\"3\",\"text\":\"qux\"}\n",
    )
    .unwrap();
    let out = replay_against(dir.path(), (&new, &old), &input, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let lines = json_lines(&out);
    let summary = &lines.last().unwrap()["summary"];
    assert_eq!(summary["changed"], 2);
    assert_eq!(
        summary["by_change"]["unmatched → (unmatched) (ignore → none)"],
        1
    );
    assert_eq!(
        summary["by_change"]["(unmatched) → unmatched (none → ignore)"],
        1
    );
}

#[test]
fn an_acknowledgement_for_closed_hours_counts_only_while_the_team_is_away() {
    let dir = tempfile::tempdir().unwrap();
    let old = rule_folder(
        dir.path(),
        "old",
        "[[rule]]\nid = \"p\"\nkeywords = [\"panne\"]\nignore = true\n",
    );
    let new = rule_folder(
        dir.path(),
        "new",
        "[[rule]]\nid = \"p\"\nkeywords = [\"panne\"]\n\
         escalate = { queue = \"q\", ack_closed = \"Fermé, retour {opens}\" }\n",
    );
    // Monday 10:00 and Saturday 10:00 in Paris (UTC+1 in January).
    let input = dir.path().join("m.jsonl");
    std::fs::write(
        &input,
        "{\"id\":\"mon\",\"text\":\"panne\",\"platform\":\"x\",\"written_at\":\"2026-01-26T09:00:00Z\"}\n\
         {\"id\":\"sat\",\"text\":\"panne\",\"platform\":\"x\",\"written_at\":\"2026-01-31T09:00:00Z\"}\n",
    )
    .unwrap();
    let replay = |config: Option<&Path>| {
        let extra = config.map(|c| ["--config", c.to_str().unwrap()]);
        let out = replay_against(
            dir.path(),
            (&new, &old),
            &input,
            extra.as_ref().map_or(&[][..], |e| &e[..]),
        );
        assert_eq!(out.status.code(), Some(1), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    // Without [hours] the team is always in: `ack_closed` is never sent.
    let always_in = replay(None);
    assert!(
        always_in.contains("2026-01-26  tickets 0 → 1 (+1), replies 0 → 0 (+0)"),
        "{always_in}"
    );
    assert!(
        always_in.contains("2026-01-31  tickets 0 → 1 (+1), replies 0 → 0 (+0)"),
        "{always_in}"
    );
    let config = dir.path().join("helpdesk.toml");
    std::fs::write(
        &config,
        "database_url = \"sqlite://unused.db\"\nadmin_listen = \"\"\n\
         [hours]\ntimezone = \"Europe/Paris\"\nmon = \"09:00-18:00\"\ntue = \"09:00-18:00\"\n",
    )
    .unwrap();
    let with_hours = replay(Some(&config));
    assert!(
        with_hours.contains("2026-01-26  tickets 0 → 1 (+1), replies 0 → 0 (+0)"),
        "{with_hours}"
    );
    assert!(
        with_hours.contains("2026-01-31  tickets 0 → 1 (+1), replies 0 → 1 (+1)"),
        "{with_hours}"
    );
}
