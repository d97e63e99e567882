//! `helpdesk init`: a commented configuration and starter rules, so that a
//! new operator starts from something that runs.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;

/// `helpdesk init [DIR]`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where (created if needed).
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// Writes the files into the folder asked for, listing them on stdout.
pub fn execute(args: &InitArgs) -> Result<i32> {
    let stdout = std::io::stdout();
    init(&args.dir, &mut stdout.lock())?;
    Ok(0)
}

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
