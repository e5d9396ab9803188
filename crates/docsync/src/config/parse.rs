//! Raw file to model: check and resolve each section of a [`RawConfig`], with the
//! environment overlay applied, into a [`Config`], collecting every problem found.

use std::convert::identity;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;

use super::api::{api, api_choice, oauth_on_the_sandbox};
use super::credentials::{load_credentials, missing_credentials};
use super::env::{default_state_dir, env_vars, Env, Sourced};
use super::hooks::hooks;
use super::problems::{fix_for_toml, more_schema_problems, Problems, DURATION_FIX};
use super::raw::{RawAdmin, RawConfig, RawCredentials, RawFolder, RawWatcher};
use super::{
    AdminConfig, Config, Credentials, RequestRate, DEFAULT_CONCURRENCY, DEFAULT_POLL_INTERVAL,
    DEFAULT_QUIET_WINDOW, DEFAULT_RETRY_INITIAL, DEFAULT_SCAN_INTERVAL, DEFAULT_WATCHER_INTERVAL,
    MAX_RPS_LIMIT,
};
use crate::local::ignore::IgnoreSet;
use crate::model::{
    Folder, Mapping, MaxAge, Problem, Severity, Target, WatcherKind, EXAMPLE_MOOV_ACCOUNT_ID,
    MAX_AGE_FIX,
};

/// Parse and resolve, returning the config (if there were no errors) and every problem.
pub fn parse_all(text: &str, origin: Option<&Path>, env: &Env) -> (Option<Config>, Vec<Problem>) {
    let mut p = Problems::new(origin, text);
    let raw: RawConfig = match toml::from_str(text) {
        Ok(raw) => raw,
        Err(e) => {
            let message = e.message().to_owned();
            let fix = fix_for_toml(&message);
            p.error(e.span(), "", message, fix);
            more_schema_problems(text, e.span(), &mut p);
            return (None, p.into_list());
        }
    };
    let paths = Paths::new(origin, env);

    let (api, api_sources) = api(raw.api, env, &mut p);
    let concurrency = concurrency(raw.concurrency, env, &mut p);
    let scan_interval = duration(raw.scan_interval, &SCAN_INTERVAL, env, &mut p);
    let quiet_window = duration(raw.quiet_window, &QUIET_WINDOW, env, &mut p);
    let poll_interval = duration(raw.poll_interval, &POLL_INTERVAL, env, &mut p);
    let retry_initial = duration(raw.retry_initial, &RETRY_INITIAL, env, &mut p);
    let max_requests_per_second = max_requests_per_second(raw.max_requests_per_second, env, &mut p);
    let admin = raw
        .admin
        .map(Spanned::into_inner)
        .and_then(|a| admin(a, &mut p));
    let state_dir = state_dir(raw.state_dir, env, &paths);
    let state = super::state::state(raw.state.map(Spanned::into_inner), env, &mut p);
    let max_age = top_max_age(raw.max_age, env, &mut p);
    let folders = folders(raw.folder, max_age.as_ref(), &paths, &mut p);
    let credentials = credentials(raw.credentials, env, &paths, &mut p);
    let hooks = hooks(raw.hooks, env, &paths, &credentials, &mut p);
    let http = super::http::http(
        raw.http.map(Spanned::into_inner),
        env,
        |f| paths.resolve(f),
        &mut p,
    );

    let config = Config {
        api,
        credentials,
        folders,
        state_dir,
        state,
        concurrency,
        scan_interval,
        quiet_window,
        poll_interval,
        retry_initial,
        max_requests_per_second,
        admin,
        hooks,
        http,
        source: origin.map(Path::to_owned),
    };
    api_choice(&config, &api_sources, &mut p);
    missing_credentials(&config, &mut p);
    oauth_on_the_sandbox(&config, &mut p);

    let ok = p.only_warnings();
    (ok.then_some(config), p.into_list())
}

/// Resolves the file's paths: `~/` against the home directory, relative paths
/// against the configuration file's directory.
pub(super) struct Paths {
    base: PathBuf,
    home: Option<PathBuf>,
}

impl Paths {
    fn new(origin: Option<&Path>, env: &Env) -> Paths {
        Paths {
            base: origin
                .and_then(Path::parent)
                .map(Path::to_owned)
                .unwrap_or_default(),
            home: env.get("HOME").map(PathBuf::from),
        }
    }

    pub(super) fn resolve(&self, s: &str) -> PathBuf {
        if let (Some(rest), Some(home)) = (s.strip_prefix("~/"), &self.home) {
            return home.join(rest);
        }
        let path = Path::new(s);
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base.join(path)
        }
    }
}

/// `concurrency`: uploads in flight, 1 to 64.
fn concurrency(raw: Option<Spanned<i64>>, env: &Env, p: &mut Problems<'_>) -> usize {
    let from_env = |v: &str| v.parse::<i64>().map_err(|_| v.to_owned());
    let Some(Sourced { span, key, value }) =
        env.overlay(env_vars::CONCURRENCY, from_env, "concurrency", raw, Ok)
    else {
        return DEFAULT_CONCURRENCY;
    };
    match value {
        Ok(n) if (1..=64).contains(&n) => usize::try_from(n).unwrap_or(DEFAULT_CONCURRENCY),
        Ok(n) => {
            p.error(
                span,
                key,
                format!("concurrency {n} is out of range"),
                "use a number from 1 to 64",
            );
            DEFAULT_CONCURRENCY
        }
        Err(v) => {
            p.error(
                span,
                key,
                format!("`{v}` is not a number"),
                "use a number from 1 to 64",
            );
            DEFAULT_CONCURRENCY
        }
    }
}

/// A duration setting: its key in the file, its variable and its default.
struct DurationSetting {
    key: &'static str,
    var: &'static str,
    default: Duration,
}

const SCAN_INTERVAL: DurationSetting = DurationSetting {
    key: "scan_interval",
    var: env_vars::SCAN_INTERVAL,
    default: DEFAULT_SCAN_INTERVAL,
};
const QUIET_WINDOW: DurationSetting = DurationSetting {
    key: "quiet_window",
    var: env_vars::QUIET_WINDOW,
    default: DEFAULT_QUIET_WINDOW,
};
const POLL_INTERVAL: DurationSetting = DurationSetting {
    key: "poll_interval",
    var: env_vars::POLL_INTERVAL,
    default: DEFAULT_POLL_INTERVAL,
};
const RETRY_INITIAL: DurationSetting = DurationSetting {
    key: "retry_initial",
    var: env_vars::RETRY_INITIAL,
    default: DEFAULT_RETRY_INITIAL,
};

/// A duration setting's value: more than zero, else (with a problem) its default.
fn duration(
    raw: Option<Spanned<String>>,
    setting: &DurationSetting,
    env: &Env,
    p: &mut Problems<'_>,
) -> Duration {
    let DurationSetting { key, var, default } = *setting;
    let Some(Sourced { span, key, value }) = env.overlay(var, str::to_owned, key, raw, identity)
    else {
        return default;
    };
    match parse_duration(&value) {
        Ok(d) if d.is_zero() => {
            p.error(
                span,
                key,
                "the duration must be more than zero",
                DURATION_FIX,
            );
            default
        }
        Ok(d) => d,
        Err(msg) => {
            p.error(span, key, msg, DURATION_FIX);
            default
        }
    }
}

/// `max_requests_per_second`: a [`RequestRate`], or no limit.
fn max_requests_per_second(
    raw: Option<Spanned<f64>>,
    env: &Env,
    p: &mut Problems<'_>,
) -> Option<RequestRate> {
    let from_env = |v: &str| v.trim().parse::<f64>().map_err(|_| v.to_owned());
    let Sourced { span, key, value } = env.overlay(
        env_vars::MAX_RPS,
        from_env,
        "max_requests_per_second",
        raw,
        Ok,
    )?;
    let fix = format!("use a number of requests per second above 0 and at most {MAX_RPS_LIMIT}, such as 10, or remove it for no limit");
    match value {
        Ok(n) if RequestRate::new(n).is_some() => RequestRate::new(n),
        Ok(n) => {
            p.error(
                span,
                key,
                format!("{n} requests per second is out of range"),
                fix,
            );
            None
        }
        Err(v) => {
            p.error(span, key, format!("`{v}` is not a number"), fix);
            None
        }
    }
}

/// The top-level `max_age` (`DOCSYNC_MAX_AGE` replaces it): the folders' default.
fn top_max_age(raw: Option<Spanned<String>>, env: &Env, p: &mut Problems<'_>) -> Option<MaxAge> {
    let Sourced { span, key, value } =
        env.overlay(env_vars::MAX_AGE, str::to_owned, "max_age", raw, identity)?;
    parse_max_age(span, &key, &value, p)
}

/// A `max_age` value, or (with a problem at `span`, named `key`) none.
fn parse_max_age(
    span: Option<Range<usize>>,
    key: &str,
    value: &str,
    p: &mut Problems<'_>,
) -> Option<MaxAge> {
    match MaxAge::parse(value) {
        Ok(m) => Some(m),
        Err(msg) => {
            p.error(span, key, msg, MAX_AGE_FIX);
            None
        }
    }
}

/// `[admin]`: an address with a port, on loopback unless `allow_remote`.
fn admin(raw: RawAdmin, p: &mut Problems<'_>) -> Option<AdminConfig> {
    let span = Some(raw.address.span());
    let text = raw.address.into_inner();
    let Ok(address) = text.trim().parse::<SocketAddr>() else {
        p.error(
            span,
            "admin.address",
            format!("`{text}` is not an IP address with a port"),
            "use an address such as 127.0.0.1:8384 (port 0: any free port, logged)",
        );
        return None;
    };
    if !address.ip().is_loopback() && !raw.allow_remote {
        p.error(
            span,
            "admin.address",
            format!("{address} can be reached from other machines, and the status page has no login"),
            "use 127.0.0.1:PORT, or set allow_remote = true behind a firewall or an authenticating proxy",
        );
        return None;
    }
    Some(AdminConfig {
        address,
        allow_remote: raw.allow_remote,
    })
}

/// `state_dir`, or the default state directory.
fn state_dir(raw: Option<Spanned<String>>, env: &Env, paths: &Paths) -> PathBuf {
    let from_env = |v: &str| PathBuf::from(v);
    env.overlay(env_vars::STATE_DIR, from_env, "state_dir", raw, |s| {
        paths.resolve(&s)
    })
    .map_or_else(|| default_state_dir(env), |s| s.value)
}

/// The `[[folder]]` tables: at least one, none inside another.
fn folders(
    raw: Vec<Spanned<RawFolder>>,
    max_age: Option<&MaxAge>,
    paths: &Paths,
    p: &mut Problems<'_>,
) -> Vec<Folder> {
    if raw.is_empty() {
        p.error(
            None,
            "folder",
            "no folder is configured",
            "add a [[folder]] table with a path (and a target, or use the <accountID>/<filePurpose>/ layout)",
        );
    }
    let mut folders = Vec::new();
    for (i, spanned) in raw.into_iter().enumerate() {
        folders.extend(folder(i, spanned, max_age, paths, p));
    }
    overlapping_folders(&folders, p);
    folders.into_iter().map(|(_, f)| f).collect()
}

/// The key path `folder[i].k`.
fn folder_key(i: usize, k: &str) -> String {
    format!("folder[{i}].{k}")
}

/// The `i`th `[[folder]]` with its span; `None` when its path is empty.
fn folder(
    i: usize,
    spanned: Spanned<RawFolder>,
    max_age: Option<&MaxAge>,
    paths: &Paths,
    p: &mut Problems<'_>,
) -> Option<(Range<usize>, Folder)> {
    let span = spanned.span();
    let f = spanned.into_inner();
    if f.path.get_ref().trim().is_empty() {
        p.error(
            Some(f.path.span()),
            folder_key(i, "path"),
            "the folder path is empty",
            "set path to the folder to sync",
        );
        return None;
    }
    let path = paths.resolve(f.path.get_ref());
    if !path.is_dir() {
        p.push(
            Severity::Warning,
            Some(f.path.span()),
            folder_key(i, "path"),
            format!("folder {} does not exist (yet)", path.display()),
            format!(
                "create it with `mkdir -p {}` or correct the path",
                path.display()
            ),
        );
    }
    let mapping = mapping(i, f.target, p);
    if let Err(e) = IgnoreSet::new(&f.ignore, false) {
        p.error(
            Some(span.clone()),
            folder_key(i, "ignore"),
            e.to_string(),
            "fix the glob (escape [ ] { } * ? with a backslash)",
        );
    }
    let watcher = watcher(i, f.watcher, f.watcher_interval, p);
    // the folder's own wins over the top level's
    let max_age = match f.max_age {
        Some(own) => parse_max_age(
            Some(own.span()),
            &folder_key(i, "max_age"),
            own.get_ref(),
            p,
        ),
        None => max_age.cloned(),
    };
    Some((
        span,
        Folder {
            path,
            mapping,
            ignore: f.ignore,
            after_decision: f.after_decision,
            watcher,
            max_age,
        },
    ))
}

/// A folder's `target` (its id checked), or the `<accountID>/<filePurpose>/` layout.
fn mapping(i: usize, target: Option<Spanned<Target>>, p: &mut Problems<'_>) -> Mapping {
    let Some(target) = target else {
        return Mapping::Convention;
    };
    let span = target.span();
    let target = target.into_inner();
    let (what, id) = match &target {
        Target::Attachments(t) => ("user_id", &t.user_id),
        Target::MoovFiles(t) => ("account_id", &t.account_id),
        Target::MoovImages(t) => ("account_id", &t.account_id),
    };
    if target.account_problem().is_some() {
        // Moov names accounts by UUIDs: any other ID would only be answered 404
        p.error(
            Some(span),
            folder_key(i, &format!("target.{what}")),
            format!(
                "{what} `{}` is not valid: it is not a Moov account ID \
                 (a UUID such as {EXAMPLE_MOOV_ACCOUNT_ID})",
                id.escape_debug()
            ),
            format!(
                "set {what} to the account's ID, the UUID the Moov dashboard shows \
                 (such as {EXAMPLE_MOOV_ACCOUNT_ID})"
            ),
        );
    } else if id.trim().is_empty() || id.contains('/') {
        p.error(
            Some(span),
            folder_key(i, &format!("target.{what}")),
            format!("{what} `{}` is not valid", id.escape_debug()),
            format!("set {what} to the id from the dashboard (no slashes)"),
        );
    }
    Mapping::Fixed(target)
}

/// A folder's `watcher` and `watcher_interval`.
fn watcher(
    i: usize,
    kind: Option<RawWatcher>,
    interval: Option<Spanned<String>>,
    p: &mut Problems<'_>,
) -> WatcherKind {
    let key = || folder_key(i, "watcher_interval");
    match (kind, interval) {
        (Some(RawWatcher::Poll), Some(s)) => match parse_duration(s.get_ref()) {
            Ok(d) if !d.is_zero() => WatcherKind::Poll { interval: d },
            Ok(_) => {
                p.error(
                    Some(s.span()),
                    key(),
                    "the duration must be more than zero",
                    DURATION_FIX,
                );
                WatcherKind::Poll {
                    interval: DEFAULT_WATCHER_INTERVAL,
                }
            }
            Err(msg) => {
                p.error(Some(s.span()), key(), msg, DURATION_FIX);
                WatcherKind::Poll {
                    interval: DEFAULT_WATCHER_INTERVAL,
                }
            }
        },
        (Some(RawWatcher::Poll), None) => WatcherKind::Poll {
            interval: DEFAULT_WATCHER_INTERVAL,
        },
        (_, Some(s)) => {
            p.error(
                Some(s.span()),
                key(),
                "watcher_interval only applies to the polling watcher",
                "add watcher = \"poll\" or remove watcher_interval",
            );
            WatcherKind::Native
        }
        _ => WatcherKind::Native,
    }
}

/// Overlapping folders would sync one file twice.
fn overlapping_folders(folders: &[(Range<usize>, Folder)], p: &mut Problems<'_>) {
    for (i, (span_a, a)) in folders.iter().enumerate() {
        for (j, (_, b)) in folders.iter().enumerate() {
            if i < j && (a.path.starts_with(&b.path) || b.path.starts_with(&a.path)) {
                p.error(
                    Some(span_a.clone()),
                    format!("folder[{j}].path"),
                    format!(
                        "folders {} and {} overlap, so files would be synced twice",
                        a.path.display(),
                        b.path.display()
                    ),
                    "give each folder its own directory, neither inside the other",
                );
            }
        }
    }
}

/// `[credentials]`: the file (`DOCSYNC_CREDENTIALS_FILE` wins), then the secret
/// variables over it.
fn credentials(
    raw: Option<Spanned<RawCredentials>>,
    env: &Env,
    paths: &Paths,
    p: &mut Problems<'_>,
) -> Credentials {
    let file = raw.and_then(|c| c.into_inner().file);
    let file = env.overlay(
        env_vars::CREDENTIALS_FILE,
        |v: &str| PathBuf::from(v),
        "credentials.file",
        file,
        |f| paths.resolve(&f),
    );
    load_credentials(file, env, p)
}

/// Parse a duration such as `500ms`, `1s`, `1.5s`, `5m`, `1h`.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let t = text.trim();
    let split = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let value: f64 = num
        .parse()
        .map_err(|_| format!("`{text}` is not a duration"))?;
    let scale = match unit.trim() {
        "ms" => 0.001,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        "" => return Err(format!("`{text}` has no unit")),
        other => return Err(format!("`{other}` is not a duration unit")),
    };
    let secs = value * scale;
    if !secs.is_finite() || !(0.0..=1e9).contains(&secs) {
        return Err(format!("`{text}` is out of range"));
    }
    Ok(Duration::from_secs_f64(secs))
}
