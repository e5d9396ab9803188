use std::process::Command;

use super::*;

fn psql(cluster: &PgCluster, db: &Database, sql: &str) -> String {
    let out = Command::new(cluster.bindir().join("psql"))
        .args([
            "-X",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            &db.conn_string,
            "-c",
            sql,
        ])
        .output()
        .expect("running psql");
    assert!(
        out.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_owned()
}

#[test]
fn no_initdb_anywhere_is_not_installed_and_says_how_to_install() {
    let empty = tempfile::tempdir().expect("tempdir");
    let err = find_bindir(Some(empty.path().as_os_str()), &empty.path().join("lib"))
        .expect_err("nothing is installed there");
    assert!(matches!(err, Error::NotInstalled));
    assert!(
        err.to_string().contains("apt-get install postgresql"),
        "{err}"
    );
}

#[test]
fn a_debian_style_lib_dir_is_found_newest_version_first() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    for version in ["13", "15", "9.6"] {
        let bin = dir.path().join(version).join("bin");
        std::fs::create_dir_all(&bin).expect("mkdir");
        for exe in ["initdb", "pg_ctl", "createdb"] {
            std::fs::write(bin.join(exe), "#!/bin/sh\n").expect("write");
            std::fs::set_permissions(bin.join(exe), std::fs::Permissions::from_mode(0o755))
                .expect("chmod");
        }
    }
    let found = find_bindir(None, dir.path()).expect("found");
    assert_eq!(found, dir.path().join("15").join("bin"));
}

#[test]
fn bad_database_names_are_refused_before_any_command() {
    let Ok(cluster) = shared() else { return };
    for name in ["", "Upper", "a-b", "1abc", "x; drop"] {
        assert!(
            matches!(cluster.create_database(name), Err(Error::BadName(_))),
            "{name}"
        );
    }
}

#[test]
fn the_shared_cluster_gives_each_test_its_own_database_on_a_socket_only() {
    let Some(a) = database_or_skip("pgtest_own_db") else {
        return;
    };
    let b = database_or_skip("pgtest_own_db").expect("installed: the first one ran");
    assert_ne!(a.name, b.name);
    let cluster = shared().expect("started");
    psql(cluster, &a, "CREATE TABLE only_in_a (x int)");
    assert_eq!(
        psql(
            cluster,
            &b,
            "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"
        ),
        "0"
    );
    assert_eq!(psql(cluster, &a, "SHOW listen_addresses"), "");
    assert_eq!(psql(cluster, &a, "SHOW fsync"), "off");
    assert!(a.url.starts_with("postgresql://docsync@/"), "{}", a.url);
    // the URL form reaches the same database
    let via_url = Database {
        conn_string: a.url.clone(),
        ..a.clone()
    };
    assert_eq!(psql(cluster, &via_url, "SELECT current_database()"), a.name);
}

#[test]
fn an_owned_cluster_is_stopped_and_removed_on_drop() {
    if shared().is_err() {
        // the shared test above says why (or fails when it is required)
        return;
    }
    let cluster = PgCluster::start().expect("a second cluster starts");
    let root = cluster.socket_dir().to_owned();
    let pid_file = root.join("data").join("postmaster.pid");
    let pid = std::fs::read_to_string(&pid_file).expect("postmaster.pid");
    let pid = pid.lines().next().expect("a pid").trim().to_owned();
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    drop(cluster);
    assert!(!root.exists(), "{} still exists", root.display());
    // an immediate stop waits (-w) for the postmaster to exit
    let alive = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|stat| !stat.contains(") Z "));
    assert!(!alive, "postmaster {pid} still runs");
}
