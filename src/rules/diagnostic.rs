//! Load errors that point into the rule files, rendered for people.
//!
//! Every problem found while loading is collected (not just the first) and
//! rendered as `FILE:LINE:COL: error: message`, then the offending line with
//! a caret under it and a hint, by codespan-reporting.

use std::fmt;
use std::ops::Range;

use codespan_reporting::diagnostic::{Diagnostic as CsDiagnostic, Label};
use codespan_reporting::files::SimpleFiles;
use codespan_reporting::term::{self, Config, DisplayStyle};

/// A rule file's name and text, kept so errors can quote it.
#[derive(Debug, Clone)]
pub struct SourceFile {
    /// The path as the user gave it (`rules/faq.toml`).
    pub name: String,
    /// The whole file.
    pub text: String,
}

/// One problem, optionally located in a file.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    /// Index into the loaded files, when the problem is in one.
    pub file: Option<usize>,
    /// Byte range within that file.
    pub span: Option<Range<usize>>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// Other places worth showing (a first definition, say).
    pub related: Vec<(usize, Range<usize>, String)>,
}

impl Diagnostic {
    /// A problem at `span` of `file`.
    pub fn at(file: usize, span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            file: Some(file),
            span: Some(span),
            message: message.into(),
            hint: None,
            related: Vec::new(),
        }
    }

    /// A problem that is in no file (a missing folder, say).
    pub fn global(message: impl Into<String>) -> Self {
        Diagnostic {
            file: None,
            span: None,
            message: message.into(),
            hint: None,
            related: Vec::new(),
        }
    }

    /// Adds the hint.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Adds a related place.
    pub fn related(mut self, file: usize, span: Range<usize>, label: impl Into<String>) -> Self {
        self.related.push((file, span, label.into()));
        self
    }
}

/// The rule set did not load: every problem found, with the files they point into.
#[derive(Debug, Clone)]
pub struct RulesError {
    /// The files that were read.
    pub files: Vec<SourceFile>,
    /// Every problem, in file then position order.
    pub diagnostics: Vec<Diagnostic>,
}

impl RulesError {
    /// `FILE:LINE:COL` of each problem (for logs and metrics).
    pub fn locations(&self) -> Vec<String> {
        self.diagnostics.iter().map(|d| self.location(d)).collect()
    }

    fn location(&self, d: &Diagnostic) -> String {
        match (d.file, &d.span) {
            (Some(f), Some(span)) => {
                let file = &self.files[f];
                let (line, col) = line_col(&file.text, span.start);
                format!("{}:{line}:{col}", file.name)
            }
            (Some(f), None) => self.files[f].name.clone(),
            _ => String::from("rules"),
        }
    }

    /// Renders every problem: a `FILE:LINE:COL: error: message` line, then the
    /// line quoted with a caret and the hint.
    pub fn render(&self) -> String {
        let mut files = SimpleFiles::new();
        for f in &self.files {
            files.add(f.name.clone(), f.text.clone());
        }
        let config = Config {
            display_style: DisplayStyle::Rich,
            ..Config::default()
        };
        let mut out = String::new();
        for d in &self.diagnostics {
            out.push_str(&format!("{}: error: {}\n", self.location(d), d.message));
            let mut cs = CsDiagnostic::error().with_message(d.message.clone());
            let mut labels = Vec::new();
            if let (Some(f), Some(span)) = (d.file, &d.span) {
                labels.push(Label::primary(f, span.clone()));
            }
            for (f, span, label) in &d.related {
                labels.push(Label::secondary(*f, span.clone()).with_message(label.clone()));
            }
            cs = cs.with_labels(labels);
            if let Some(h) = &d.hint {
                cs = cs.with_notes(vec![format!("help: {h}")]);
            }
            if let Ok(text) = term::emit_into_string(&config, &files, &cs) {
                // The first line repeats the message we just printed with its location.
                out.extend(text.lines().skip(1).map(|l| format!("{l}\n")));
            } else if let Some(h) = &d.hint {
                out.push_str(&format!("  = help: {h}\n"));
            }
        }
        out
    }
}

impl fmt::Display for RulesError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.diagnostics.len();
        writeln!(
            f,
            "the rules did not load ({n} error{}); fix them and run `helpdesk rules check`:",
            if n == 1 { "" } else { "s" }
        )?;
        f.write_str(&self.render())
    }
}

impl std::error::Error for RulesError {}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |n| n + 1);
    (line, before[line_start..].chars().count() + 1)
}
