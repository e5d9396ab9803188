//! `docsync config check`: every problem with its location, message and fix.

use docsync::config::{self, Severity};

use super::{setup, CheckArgs, EXIT_OK, EXIT_PROBLEMS};

/// Exit 0 if there are no errors (warnings are printed but allowed), 1 otherwise.
pub fn check(args: CheckArgs) -> anyhow::Result<u8> {
    let env = setup::env(&args.api.config, Some(&args.api))?;
    let found = setup::config_file(&args.api.config)?;
    setup::say_config(found.as_deref());
    let path = match found {
        Some(path) => path,
        None => setup::absolute(std::path::Path::new(setup::DEFAULT_CONFIG))?,
    };
    let problems = config::check(&path, &env);
    for p in &problems {
        outln!("{p}");
    }
    let errors = problems
        .iter()
        .filter(|p| p.severity == Severity::Error)
        .count();
    if errors > 0 {
        outln!(
            "{}: {errors} error{}",
            path.display(),
            if errors == 1 { "" } else { "s" }
        );
        return Ok(EXIT_PROBLEMS);
    }
    match config::load(&path, &env) {
        Ok(config) => {
            let n = config.folders.len();
            outln!(
                "ok: {n} folder{}; API: {}; configuration: {}",
                if n == 1 { "" } else { "s" },
                config.api_identity(),
                path.display()
            );
            Ok(EXIT_OK)
        }
        Err(e) => {
            // check and load agree; should they not, the load's error is the truth
            outln!("{e}");
            Ok(EXIT_PROBLEMS)
        }
    }
}
