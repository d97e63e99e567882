//! Hot reload of the rules: a file watcher on the rules folder and SIGHUP.
//!
//! A new rule set is built and checked (examples included) on a blocking
//! thread, off the hot path, then swapped in atomically. A batch already
//! being routed holds its own `Arc` of the old set and finishes with it. A
//! bad edit keeps the old rules and logs every error at `FILE:LINE:COL`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use notify::{RecursiveMode, Watcher};
use tokio::sync::mpsc;

use crate::domain::clock::Clock;
use crate::rules::{LoadOptions, RuleSet};
use crate::runtime::shutdown::Shutdown;

/// Edits that arrive within this window are taken as one.
const SETTLE: Duration = Duration::from_millis(150);

/// The rule set in use, swappable while the bot runs.
pub type SharedRules = Arc<ArcSwap<RuleSet>>;

/// Reloads `dir` into `rules`; returns whether the new set was taken.
pub async fn reload(
    rules: &SharedRules,
    dir: &std::path::Path,
    opts: &LoadOptions,
    clock: &Clock,
) -> bool {
    let (d, o) = (dir.to_owned(), opts.clone());
    let built = tokio::task::spawn_blocking(move || {
        let built = RuleSet::load_dir(&d, &o);
        if let Ok(set) = &built {
            crate::rules::language::Detector::warm_for(set, &o);
        }
        built
    })
    .await;
    match built {
        Ok(Ok(set)) => {
            let n = set.rules().len();
            rules.store(Arc::new(set));
            metrics::counter!("helpdesk_rules_reloads_total").increment(1);
            metrics::gauge!("helpdesk_rules_last_good_load_timestamp_seconds")
                .set(clock.now_ms() as f64 / 1000.0);
            metrics::gauge!("helpdesk_rules_loaded").set(n as f64);
            tracing::info!(rules = n, folder = %dir.display(), "rules reloaded");
            true
        }
        Ok(Err(e)) => {
            metrics::counter!("rules_reload_failures_total").increment(1);
            metrics::counter!("helpdesk_rules_reload_failures_total").increment(1);
            for d in e.locations() {
                tracing::error!(location = %d, "rule file error");
            }
            tracing::error!(
                "the edited rules do not load; the previous rules stay in use:\n{}",
                e.render()
            );
            false
        }
        Err(join) => {
            metrics::counter!("rules_reload_failures_total").increment(1);
            tracing::error!(error = %join, "loading the rules panicked; the previous rules stay in use");
            false
        }
    }
}

/// Watches `dir` and SIGHUP until `stop`, reloading `rules` on each change.
pub async fn watch_rules(
    rules: SharedRules,
    dir: PathBuf,
    opts: LoadOptions,
    clock: Clock,
    shutdown: Shutdown,
) {
    let (tx, mut rx) = mpsc::channel::<()>(16);
    let _watcher = watch_folder(&dir, tx.clone());
    #[cfg(unix)]
    shutdown.spawn(forward_sighup(tx, shutdown.clone()));
    loop {
        tokio::select! {
            got = rx.recv() => {
                if got.is_none() { return; }
                // Editors write in several steps: wait until they are done.
                tokio::time::sleep(SETTLE).await;
                while rx.try_recv().is_ok() {}
                reload(&rules, &dir, &opts, &clock).await;
            }
            _ = shutdown.stopped() => return,
        }
    }
}

/// A watcher that says on `tx` when something in `dir` changes; `None`
/// (logged) where the system offers none: SIGHUP still reloads.
fn watch_folder(dir: &std::path::Path, tx: mpsc::Sender<()>) -> Option<notify::RecommendedWatcher> {
    let watcher = notify::recommended_watcher(move |ev: notify::Result<notify::Event>| {
        if let Ok(ev) = ev
            && !ev.kind.is_access()
        {
            let _ = tx.try_send(());
        }
    });
    match watcher {
        Ok(mut w) => match w.watch(dir, RecursiveMode::NonRecursive) {
            Ok(()) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, folder = %dir.display(), "cannot watch the rules folder; SIGHUP still reloads");
                None
            }
        },
        Err(e) => {
            tracing::warn!(error = %e, "no file watcher on this system; SIGHUP still reloads");
            None
        }
    }
}

/// Says on `tx` at each SIGHUP (`systemctl reload`), until the bot stops.
#[cfg(unix)]
async fn forward_sighup(tx: mpsc::Sender<()>, shutdown: Shutdown) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        return;
    };
    loop {
        tokio::select! {
            got = hup.recv() => {
                if got.is_none() { return; }
                tracing::info!("SIGHUP: reloading the rules");
                if tx.send(()).await.is_err() {
                    return;
                }
            }
            _ = shutdown.stopped() => return,
        }
    }
}
