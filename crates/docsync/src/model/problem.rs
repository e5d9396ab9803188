//! A configuration problem: how bad it is, where it is, and how to fix it. Made by
//! `config` (and `config check`), carried by [`crate::Error::Config`].

use std::fmt;
use std::path::PathBuf;

/// How bad a problem is: errors stop the daemon, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Location {
    pub file: Option<PathBuf>,
    /// 1-based line and column.
    pub line_col: Option<(usize, usize)>,
    /// The key path (`folder[1].target.account_id`) or `env VAR`.
    pub key: Option<String>,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut wrote = false;
        if let Some(file) = &self.file {
            write!(f, "{}", file.display())?;
            wrote = true;
        }
        if let Some((line, col)) = self.line_col {
            write!(f, "{}{line}:{col}", if wrote { ":" } else { "line " })?;
            wrote = true;
        }
        if let Some(key) = &self.key {
            write!(f, "{}{key}", if wrote { ": " } else { "" })?;
            wrote = true;
        }
        if !wrote {
            f.write_str("configuration")?;
        }
        Ok(())
    }
}

/// One configuration problem, with where it is and how to fix it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub severity: Severity,
    pub location: Location,
    pub message: String,
    pub fix: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(
            f,
            "{}: {sev}: {}\n  fix: {}",
            self.location, self.message, self.fix
        )
    }
}

impl Problem {
    /// All problems, one per paragraph (for error messages).
    pub fn summarise(problems: &[Problem]) -> String {
        let errors = problems
            .iter()
            .filter(|p| p.severity == Severity::Error)
            .count();
        let mut out = format!("{errors} error(s)");
        for p in problems {
            out.push('\n');
            out.push_str(&p.to_string());
        }
        out
    }
}
