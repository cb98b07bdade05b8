//! The distro packages, built by `packaging/build`: their file lists and
//! maintainer scripts against what is expected, lintian and rpmlint, and the
//! .deb installed, run, upgraded under load, removed and purged in a clean
//! Debian 12 root booted with its own systemd.

use std::collections::BTreeSet;
use std::fs;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::util::container::{debian_root, diff, snapshot, Container};
use crate::util::load::{Load, LoadSpec, Target};
use crate::util::packages::packages;
use crate::util::{explain, get_tcp, repo, run, run_ok, standin, wait_until, TempDir};

/// The visible subcommands: each gets a man page `mas-sockets-<name>.1`.
/// packaging/docgen finds them by itself; add a new one here and the
/// expected file lists below follow.
const SUBCOMMANDS: &[&str] = &[
    "check",
    "generate-units",
    "generate-nginx",
    "supervise",
    "reload",
    "status",
];

/// The man pages, as each package installs them (gzip-compressed).
fn man_pages() -> Vec<String> {
    let mut pages = vec!["/usr/share/man/man1/mas-sockets.1.gz".to_owned()];
    pages.extend(
        SUBCOMMANDS
            .iter()
            .map(|sub| format!("/usr/share/man/man1/mas-sockets-{sub}.1.gz")),
    );
    pages
}

/// Every file (not directory) of the .deb besides the man pages.
const DEB_FILES: &[&str] = &[
    "/lib/systemd/system/mas-internal.socket",
    "/lib/systemd/system/mas-web.socket",
    "/lib/systemd/system/mas.service",
    "/usr/bin/mas-sockets",
    "/usr/lib/sysusers.d/mas-sockets.conf",
    "/usr/share/bash-completion/completions/mas-sockets",
    "/usr/share/doc/mas-sockets/README.md.gz",
    "/usr/share/doc/mas-sockets/THIRD-PARTY-LICENSES.gz",
    "/usr/share/doc/mas-sockets/changelog.Debian.gz",
    "/usr/share/doc/mas-sockets/copyright",
    "/usr/share/fish/vendor_completions.d/mas-sockets.fish",
    "/usr/share/lintian/overrides/mas-sockets",
    "/usr/share/zsh/vendor-completions/_mas-sockets",
];

/// Everything `rpm -qlp` lists besides the man pages; `*` stands for the
/// build id's parts, which change with every build.
const RPM_PATHS: &[&str] = &[
    "/usr/bin/mas-sockets",
    "/usr/lib/.build-id",
    "/usr/lib/.build-id/*",
    "/usr/lib/.build-id/*/*",
    "/usr/lib/systemd/system/mas-internal.socket",
    "/usr/lib/systemd/system/mas-web.socket",
    "/usr/lib/systemd/system/mas.service",
    "/usr/lib/sysusers.d/mas-sockets.conf",
    "/usr/share/bash-completion",
    "/usr/share/bash-completion/completions",
    "/usr/share/bash-completion/completions/mas-sockets",
    "/usr/share/doc/mas-sockets",
    "/usr/share/doc/mas-sockets/README.md",
    "/usr/share/fish",
    "/usr/share/fish/vendor_completions.d",
    "/usr/share/fish/vendor_completions.d/mas-sockets.fish",
    "/usr/share/licenses/mas-sockets",
    "/usr/share/licenses/mas-sockets/LICENSE",
    "/usr/share/licenses/mas-sockets/THIRD-PARTY-LICENSES",
    "/usr/share/zsh",
    "/usr/share/zsh/site-functions",
    "/usr/share/zsh/site-functions/_mas-sockets",
];

/// The unit files of units/, which both packages install.
fn unit_names() -> BTreeSet<String> {
    fs::read_dir(repo().join("units"))
        .expect("read units/")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

fn sorted(items: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut items: Vec<String> = items.into_iter().collect();
    items.sort();
    items
}

/// Nothing test-only or build-only may be packaged.
fn assert_nothing_test_only(paths: &[String]) {
    for path in paths {
        for word in ["standin", "mas-cli", "docgen", "test"] {
            assert!(!path.contains(word), "{path} looks test-only or build-only");
        }
    }
}

/// `dpkg-deb -c` of the .deb: every file with its mode and owner, the
/// binary executable, the rest plain 0644, all root's, and exactly the
/// expected files.
#[test]
fn deb_contents_match_the_expected_list() {
    let deb = &packages().deb;
    let listing = run_ok(Command::new("dpkg-deb").arg("-c").arg(deb));
    let mut files = Vec::new();
    for line in listing.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (mode, owner, path) = (fields[0], fields[1], fields[5]);
        assert_eq!(owner, "root/root", "{line}");
        let path = path.trim_start_matches('.');
        if mode.starts_with('d') {
            assert_eq!(mode, "drwxr-xr-x", "{line}");
            continue;
        }
        let want = if path == "/usr/bin/mas-sockets" {
            "-rwxr-xr-x"
        } else {
            "-rw-r--r--"
        };
        assert_eq!(mode, want, "{line}");
        files.push(path.to_owned());
    }
    let mut expected: Vec<String> = DEB_FILES.iter().map(|s| (*s).to_owned()).collect();
    expected.extend(man_pages());
    assert_eq!(sorted(files.clone()), sorted(expected), "\n{listing}");
    assert_nothing_test_only(&files);
    // No file under /etc, so no conffiles: the admin's files are MAS's config
    // and their own drop-ins, which no package owns.
    let control = TempDir::new("deb-control");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(deb)
            .arg(control.join("DEBIAN")),
    );
    assert!(!control.join("DEBIAN/conffiles").exists());
}

/// `rpm -qlp` of the .rpm, and every file's mode and owner.
#[test]
fn rpm_contents_match_the_expected_list() {
    let rpm = &packages().rpm;
    let listing = run_ok(Command::new("rpm").arg("-qlp").arg(rpm));
    let paths: Vec<String> = listing
        .lines()
        .map(|path| match path.strip_prefix("/usr/lib/.build-id/") {
            Some(rest) => format!(
                "/usr/lib/.build-id/{}",
                rest.split('/').map(|_| "*").collect::<Vec<_>>().join("/")
            ),
            None => path.to_owned(),
        })
        .collect();
    let mut expected: Vec<String> = RPM_PATHS.iter().map(|s| (*s).to_owned()).collect();
    expected.extend(man_pages());
    assert_eq!(sorted(paths.clone()), sorted(expected), "\n{listing}");
    assert_nothing_test_only(&paths);

    let modes = run_ok(Command::new("rpm").arg("-qp").arg(rpm).args([
        "--qf",
        "[%{FILEMODES:perms}|%{FILEUSERNAME}:%{FILEGROUPNAME}|%{FILEFLAGS:fflags}|%{FILENAMES}\n]",
    ]));
    for line in modes.lines() {
        let fields: Vec<&str> = line.split('|').collect();
        let (mode, owner, path) = (fields[0], fields[1], fields[3]);
        assert_eq!(owner, "root:root", "{line}");
        let want = match path {
            "/usr/bin/mas-sockets" => "-rwxr-xr-x",
            p if p.starts_with("/usr/lib/.build-id/") && mode.starts_with('l') => "lrwxrwxrwx",
            _ if mode.starts_with('d') => "drwxr-xr-x",
            _ => "-rw-r--r--",
        };
        assert_eq!(mode, want, "{line}");
        // %config marks files the admin edits; this package has none.
        assert!(
            !fields[2].contains('c'),
            "{path} is marked %config:\n{line}"
        );
    }
}

/// What a package records that can change from one build to the next: for
/// the .rpm its build time and host and each file's time, for the .deb each
/// file's listing line (mode, owner, size, time).
fn build_record(package: &Path) -> String {
    if package.extension().is_some_and(|e| e == "rpm") {
        run_ok(Command::new("rpm").arg("-qp").arg(package).args([
            "--qf",
            "buildtime %{BUILDTIME} buildhost %{BUILDHOST}\n[%{FILEMTIMES} %{FILENAMES}\n]",
        ]))
    } else {
        run_ok(Command::new("dpkg-deb").arg("-c").arg(package))
    }
}

/// Building the same commit again gives the same bytes: both packages take
/// their dates from the last commit (`SOURCE_DATE_EPOCH`), and nothing from
/// the hour or the machine they are built on.
#[test]
fn rebuilding_the_same_commit_gives_the_same_packages() {
    let pkgs = packages();
    for (first, again) in [(&pkgs.first_deb, &pkgs.deb), (&pkgs.first_rpm, &pkgs.rpm)] {
        let same = fs::read(first).expect("read the first build")
            == fs::read(again).expect("read the rebuild");
        assert!(
            same,
            "{} differs from its first build {}\n--- first build\n{}\n--- rebuild\n{}",
            again.display(),
            first.display(),
            build_record(first),
            build_record(again)
        );
    }
}

/// The crates linked into the binary, as `(name, version, license)`: what
/// `cargo tree` lists for it without build-time dependencies and
/// proc-macros, which do not end up in it.
fn linked_crates() -> Vec<(String, String, String)> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let vv = run_ok(Command::new("rustc").arg("-vV"));
    let host = vv
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .expect("rustc -vV names the host")
        .to_owned();
    let tree = run_ok(
        Command::new(&cargo)
            .current_dir(repo())
            .args(["tree", "--locked", "--offline", "-p", "mas-sockets"])
            .args(["-e", "normal,no-proc-macro", "--target", &host])
            .args(["--prefix", "none", "-f", "{p}|{l}"]),
    );
    let crates: BTreeSet<(String, String, String)> = tree
        .lines()
        .map(|l| l.trim_end_matches(" (*)"))
        .filter(|l| !l.starts_with("mas-sockets "))
        .map(|l| {
            let (package, license) = l.split_once('|').expect("{p}|{l}");
            let (name, version) = package.split_once(" v").expect("NAME vVERSION");
            (name.to_owned(), version.to_owned(), license.to_owned())
        })
        .collect();
    assert!(crates.len() > 10, "cargo tree listed too little:\n{tree}");
    crates.into_iter().collect()
}

/// The license and notice files a crate ships, by the names cargo packages
/// them under (LICENSE, LICENSE-MIT, COPYING, NOTICE, ...).
fn license_files(name: &str, version: &str) -> Vec<std::path::PathBuf> {
    let home = std::env::var_os("CARGO_HOME")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| Path::new(&std::env::var_os("HOME").expect("HOME")).join(".cargo"));
    let registry = home.join("registry/src");
    let dir = fs::read_dir(&registry)
        .unwrap_or_else(|e| panic!("{}: {e}", registry.display()))
        .flatten()
        .map(|index| index.path().join(format!("{name}-{version}")))
        .find(|dir| dir.is_dir())
        .unwrap_or_else(|| panic!("no source of {name} {version} in {}", registry.display()));
    let mut files: Vec<std::path::PathBuf> = fs::read_dir(&dir)
        .expect("read the crate's source")
        .flatten()
        .filter(|e| {
            let lower = e.file_name().to_string_lossy().to_lowercase();
            ["licen", "copying", "notice", "copyright", "unlicense"]
                .iter()
                .any(|p| lower.starts_with(p))
                && e.path().is_file()
        })
        .map(|e| e.path())
        .collect();
    files.sort();
    files
}

/// Both packages carry the licenses of the crates linked into the binary:
/// one line per crate with its license, and the text of every license or
/// notice file each crate ships (an MIT crate's notice must go with every
/// copy of its code, a binary too). The rpm's copy is the .deb's.
#[test]
fn packages_carry_the_license_texts_of_every_linked_crate() {
    let pkgs = packages();
    let files = TempDir::new("deb-licenses");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&pkgs.deb)
            .arg(files.path()),
    );
    let gz = files.join("usr/share/doc/mas-sockets/THIRD-PARTY-LICENSES.gz");
    let text = run_ok(Command::new("gzip").arg("-dc").arg(&gz));
    let crates = linked_crates();
    let mut missing = Vec::new();
    for (name, version, license) in &crates {
        let line = format!("{name} {version}: {license}");
        if !text.lines().any(|l| l == line) {
            missing.push(line);
        }
        let shipped = license_files(name, version);
        if shipped.is_empty() {
            missing.push(format!("{name} {version} ships no license file"));
        }
        for file in shipped {
            let body =
                fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            if !text.contains(body.trim_end()) {
                missing.push(format!("the text of {}", file.display()));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "THIRD-PARTY-LICENSES lacks:\n{}\n--- it says:\n{text}",
        missing.join("\n")
    );

    let plain = files.write("THIRD-PARTY-LICENSES", &text);
    let sha = run_ok(Command::new("sha256sum").arg(&plain));
    let sha = sha.split_whitespace().next().expect("a digest");
    let digests = run_ok(
        Command::new("rpm")
            .arg("-qp")
            .arg(&pkgs.rpm)
            .args(["--qf", "[%{FILEDIGESTS} %{FILENAMES}\n]"]),
    );
    assert!(
        digests
            .lines()
            .any(|l| l == format!("{sha} /usr/share/licenses/mas-sockets/THIRD-PARTY-LICENSES")),
        "the rpm's copy is not the .deb's ({sha}):\n{digests}"
    );
}

/// `sh -n`: the script parses (a broken here-document or quote would not).
#[track_caller]
fn assert_shell_syntax(name: &str, script: &str) {
    let dir = TempDir::new("script-syntax");
    let path = dir.write(name, script);
    let mut cmd = Command::new("sh");
    cmd.arg("-n").arg(&path);
    let out = run(&mut cmd);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{name} does not parse:\n{script}\n{}",
        explain(&cmd, &out)
    );
}

/// The deb's maintainer scripts, as dh_installsystemd, dh_installsysusers
/// and our own prerm/postrm made them.
#[test]
fn deb_maintainer_scripts_enable_nothing_restart_the_service_and_clean_up() {
    let control = TempDir::new("deb-scripts");
    let dir = control.join("DEBIAN");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-e")
            .arg(&packages().deb)
            .arg(&dir),
    );
    let read = |name: &str| {
        fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("DEBIAN/{name}: {e}"))
    };
    assert!(
        !dir.join("preinst").exists(),
        "nothing to do before unpacking"
    );
    for name in ["postinst", "prerm", "postrm"] {
        assert_shell_syntax(name, &read(name));
    }
    let units = unit_names();

    let postinst = read("postinst");
    assert!(
        postinst.contains(r#"systemd-sysusers ${DPKG_ROOT:+--root="$DPKG_ROOT"} mas-sockets.conf"#),
        "{postinst}"
    );
    for unit in &units {
        assert!(
            postinst.contains(&format!("deb-systemd-helper update-state '{unit}'")),
            "{unit}:\n{postinst}"
        );
    }
    // Links are made only for units an admin had enabled before (was-enabled).
    let lines: Vec<&str> = postinst.lines().map(str::trim).collect();
    for (i, line) in lines.iter().enumerate() {
        if line.starts_with("deb-systemd-helper enable") {
            let guard = lines[..i]
                .iter()
                .rev()
                .find(|l| !l.starts_with('#'))
                .expect("a line before");
            assert!(guard.contains("was-enabled"), "{postinst}");
        }
    }
    // The only start-like action: try-restart of the service on upgrade.
    let invokes: Vec<&&str> = lines
        .iter()
        .filter(|l| l.contains("deb-systemd-invoke"))
        .collect();
    assert_eq!(
        invokes,
        [&"deb-systemd-invoke try-restart 'mas.service' >/dev/null || true"],
        "{postinst}"
    );
    let at = lines
        .iter()
        .position(|l| l.contains("try-restart"))
        .unwrap();
    assert_eq!(lines[at - 1], r#"if [ -n "$2" ]; then"#, "only on upgrade");

    let prerm = read("prerm");
    let listed: BTreeSet<String> = prerm
        .lines()
        .find_map(|l| l.strip_prefix("units=\""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("units= in prerm")
        .split(' ')
        .map(str::to_owned)
        .collect();
    assert_eq!(listed, units, "prerm must name every unit of units/");
    for action in [
        "deb-systemd-invoke stop $units",
        "deb-systemd-helper disable $units",
    ] {
        assert!(prerm.contains(action), "{action}:\n{prerm}");
    }
    assert!(prerm.contains(r#"if [ "$1" = remove ]; then"#), "{prerm}");

    let postrm = read("postrm");
    let purged: BTreeSet<String> = postrm
        .lines()
        .filter(|l| l.contains("deb-systemd-helper purge"))
        .flat_map(|l| l.split('\'').skip(1).step_by(2).map(str::to_owned))
        .collect();
    assert_eq!(purged, units, "{postrm}");
    assert!(postrm.contains("userdel mas"), "{postrm}");
    assert!(postrm.contains("groupdel mas"), "{postrm}");
}

/// The rpm's scriptlets: users before the files, presets (which enable
/// nothing unlisted) on install, disable and stop on erase, try-restart of
/// the service only, never of the sockets, on upgrade.
#[test]
fn rpm_scriptlets_enable_nothing_restart_the_service_and_clean_up() {
    let text = run_ok(
        Command::new("rpm")
            .args(["-qp", "--scripts"])
            .arg(&packages().rpm),
    );
    let mut scripts = std::collections::BTreeMap::new();
    let mut current = None;
    for line in text.lines() {
        if let Some(name) = line.strip_suffix(" scriptlet (using /bin/sh):") {
            current = Some(name.to_owned());
            scripts.insert(name.to_owned(), String::new());
        } else if let Some(name) = &current {
            let body = scripts.get_mut(name).unwrap();
            body.push_str(line.trim_end());
            body.push('\n');
        }
    }
    assert_eq!(
        scripts.keys().collect::<Vec<_>>(),
        ["postinstall", "postuninstall", "preinstall", "preuninstall"],
        "{text}"
    );
    for (name, body) in &scripts {
        assert_shell_syntax(name, body);
    }
    let units = unit_names();
    let all: Vec<&str> = ["mas.service", "mas-web.socket", "mas-internal.socket"].to_vec();
    assert_eq!(
        all.iter().map(|u| (*u).to_owned()).collect::<BTreeSet<_>>(),
        units,
        "the spec's unit lists must name every unit of units/"
    );
    let all = all.join(" ");

    let pre = &scripts["preinstall"];
    assert!(
        pre.contains("systemd-sysusers --replace=/usr/lib/sysusers.d/mas-sockets.conf -"),
        "{pre}"
    );
    assert!(
        pre.contains(r#"u mas - "Matrix Authentication Service (mas-sockets)""#),
        "{pre}"
    );

    let post = &scripts["postinstall"];
    assert!(
        post.contains("if [ $1 -eq 1 ]"),
        "first install only:\n{post}"
    );
    assert!(
        post.contains(&format!("systemctl --no-reload preset {all}")),
        "{post}"
    );
    assert!(!post.contains("start"), "{post}");
    assert!(!post.contains("enable"), "{post}");

    let preun = &scripts["preuninstall"];
    assert!(preun.contains("if [ $1 -eq 0 ]"), "erase only:\n{preun}");
    assert!(
        preun.contains(&format!("systemctl --no-reload disable --now {all}")),
        "{preun}"
    );

    let postun = &scripts["postuninstall"];
    assert!(postun.contains("systemctl daemon-reload"), "{postun}");
    let restarts: Vec<&str> = postun
        .lines()
        .map(str::trim)
        .filter(|l| l.contains("restart"))
        .collect();
    assert_eq!(
        restarts,
        ["systemctl try-restart mas.service >/dev/null 2>&1 || :"],
        "{postun}"
    );
    assert!(
        postun.contains("if [ $1 -ge 1 ]"),
        "upgrade only:\n{postun}"
    );
}

/// lintian (every tag, pedantic and informational included) and rpmlint
/// report nothing but what packaging/deb's overrides and packaging/rpm's
/// rpmlint.toml explain.
#[test]
fn lintian_and_rpmlint_are_clean() {
    let pkgs = packages();
    let mut cmd = Command::new("lintian");
    cmd.args(["--info", "--pedantic", "--display-experimental"])
        .arg(&pkgs.deb);
    let out = run(&mut cmd);
    let tags: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.len() > 1 && l.as_bytes()[1] == b':')
        .map(str::to_owned)
        .collect();
    assert!(
        out.status.success() && tags.is_empty(),
        "lintian found problems\n{}",
        explain(&cmd, &out)
    );

    let mut cmd = Command::new("rpmlint");
    cmd.arg("-c")
        .arg(repo().join("packaging/rpm/rpmlint.toml"))
        .arg(&pkgs.rpm);
    let out = run(&mut cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && text.contains(" 0 errors, 0 warnings"),
        "rpmlint found problems\n{}",
        explain(&cmd, &out)
    );
}

/// Completes the last of `words` (the first is `mas-sockets`) with bash and
/// the completion file, as bash calls the function `complete -F` names.
const BASH_COMPLETE: &str = r#"
source "$1" || exit 3
shift
spec=$(complete -p mas-sockets) || exit 4
func=${spec#*-F }
func=${func%% *}
COMP_WORDS=("$@")
COMP_CWORD=$(( $# - 1 ))
COMP_LINE="$*"
COMP_POINT=${#COMP_LINE}
"$func" mas-sockets "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
printf '%s\n' "${COMPREPLY[@]}"
"#;

/// Types `$2` and a tab into an interactive zsh (on a pty, through zpty)
/// whose `fpath` starts with `$1`, and prints every candidate the
/// completion offers, one a line, once the completion system has run its
/// post-functions. The markers are split in what is typed so that the pty's
/// echo of the input does not match them.
const ZSH_COMPLETE: &str = r#"
zmodload zsh/zpty || exit 3
zpty z zsh -f -i
zpty -w z "PS1=''; fpath=(${(q)1} \$fpath); autoload -U compinit; compinit -u -D"
zpty -w z 'compadd () { builtin compadd -O __hits "$@"; print -l -- "<<HIT>>"$^__hits; }'
zpty -w z '__end () { print "<<E""ND>>"; }; comppostfuncs=(__end)'
zpty -w z 'print R""EADY'
zpty -r z line '*READY*'
zpty -w -n z "$2"$'\t'
zpty -r z out '*<<END>>*'
print -r -- "$out" | tr -d '\r' | grep -a -o '<<HIT>>[^[:space:]]*' | sed 's/<<HIT>>//'
zpty -d z
"#;

/// The candidates one shell offers for a command line that ends in the
/// word being completed (empty after a trailing blank).
#[track_caller]
fn complete_with(shell: &str, files: &Path, line: &str) -> BTreeSet<String> {
    let home = TempDir::new("shell-home");
    let mut cmd = Command::new("timeout");
    cmd.arg("60").env("HOME", home.path()).env("TERM", "dumb");
    match shell {
        "bash" => {
            // A trailing blank is an empty last word, as bash splits it.
            let words: Vec<&str> = line.split(' ').collect();
            cmd.args(["bash", "--norc", "--noprofile", "-c", BASH_COMPLETE, "bash"])
                .arg(files.join("usr/share/bash-completion/completions/mas-sockets"))
                .args(words);
        }
        "zsh" => {
            cmd.args(["zsh", "-f", "-c", ZSH_COMPLETE, "zsh"])
                .arg(files.join("usr/share/zsh/vendor-completions"))
                .arg(line);
        }
        "fish" => {
            cmd.args([
                "fish",
                "--no-config",
                "-c",
                "source $argv[1]; and complete --do-complete=$argv[2]",
            ])
            .arg(files.join("usr/share/fish/vendor_completions.d/mas-sockets.fish"))
            .arg(line);
        }
        _ => unreachable!("no such shell in this test: {shell}"),
    }
    let out = run(&mut cmd);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{shell} could not complete {line:?}\n{}",
        explain(&cmd, &out)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        // fish writes "candidate<TAB>description".
        .map(|l| l.split('\t').next().unwrap_or_default().trim().to_owned())
        .filter(|l| !l.is_empty())
        .collect()
}

/// The packaged completions, loaded by the real shells: each offers the
/// visible subcommands and never the hidden `exec-child`, a subcommand's own
/// options after its name, and an option's values after the option.
#[test]
fn completions_offer_subcommands_options_and_values_in_bash_zsh_and_fish() {
    let files = TempDir::new("deb-files");
    run_ok(
        Command::new("dpkg-deb")
            .arg("-x")
            .arg(&packages().deb)
            .arg(files.path()),
    );
    // The zsh file loads under compinit without a word on stderr.
    let zsh_file = files.join("usr/share/zsh/vendor-completions/_mas-sockets");
    let mut cmd = Command::new("zsh");
    cmd.args([
        "-f",
        "-c",
        "autoload -U compinit; compinit -u -D; source $1",
        "zsh",
    ])
    .arg(&zsh_file)
    .env("HOME", files.path());
    let out = run(&mut cmd);
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        explain(&cmd, &out)
    );

    for shell in ["bash", "zsh", "fish"] {
        let subcommands = complete_with(shell, files.path(), "mas-sockets ");
        for sub in SUBCOMMANDS {
            assert!(
                subcommands.contains(*sub),
                "{shell}: no {sub} in {subcommands:?}"
            );
        }
        assert!(
            !subcommands.iter().any(|c| c.contains("exec")),
            "{shell} offers the hidden subcommand: {subcommands:?}"
        );

        let supervise = complete_with(shell, files.path(), "mas-sockets supervise --");
        for option in [
            "--config",
            "--stop-timeout",
            "--crash-window",
            "--log-target",
        ] {
            assert!(
                supervise.contains(option),
                "{shell}: no {option} after supervise in {supervise:?}"
            );
        }
        assert!(
            !supervise.contains("--server-name"),
            "{shell} offers generate-nginx's options after supervise: {supervise:?}"
        );
        let nginx = complete_with(shell, files.path(), "mas-sockets generate-nginx --");
        assert!(
            nginx.contains("--server-name") && nginx.contains("--assets-dir"),
            "{shell}: {nginx:?}"
        );
    }
    for shell in ["bash", "zsh", "fish"] {
        let targets = complete_with(shell, files.path(), "mas-sockets supervise --log-target ");
        assert_eq!(
            targets,
            ["auto", "journal", "stderr"].map(str::to_owned).into(),
            "{shell}"
        );
    }
}

/// The config the test gives MAS: no `http` section, so MAS's built-in
/// listeners apply (web on [::]:8080, internal with health on
/// localhost:8081), which the packaged units are made for.
const CONFIG: &str = "\
# MAS's built-in listeners; the stand-in takes half a second to start.
standin:
  startup_delay_ms: 500
";

/// Paths that change without the package having anything to do with them,
/// and that the before/after comparison therefore leaves out:
fn not_the_systems_files(path: &str) -> bool {
    let volatile = [
        // kernel and runtime file systems;
        "/proc",
        "/sys",
        "/dev",
        "/run",
        "/tmp",
        // logs: dpkg's and apt's, the journal, wtmp;
        "/var/log",
        // man-db's cache of formatted pages and its index, which `man`
        // and the man-db trigger write and mandb rebuilds at will;
        "/var/cache/man",
    ];
    let backups = [
        // dpkg's copy of its database from before the last change (the
        // database itself, /var/lib/dpkg/status, is compared);
        "/var/lib/dpkg/status-old",
        // the copies of the account databases that systemd-sysusers and
        // userdel keep from before each change (the databases are compared).
        "/etc/passwd-",
        "/etc/group-",
        "/etc/shadow-",
        "/etc/gshadow-",
    ];
    volatile
        .iter()
        .any(|dir| path == *dir || path.starts_with(&format!("{dir}/")))
        || backups.contains(&path)
}

/// Waits until a unit reaches `state`.
#[track_caller]
fn wait_state(ct: &Container, unit: &str, state: &str) {
    wait_until(
        &format!("{unit} to be {state}"),
        Duration::from_secs(60),
        || ct.unit_property(unit, "ActiveState") == state,
    );
}

fn units_of(ct: &Container, prop: &str) -> Vec<String> {
    ["mas.service", "mas-web.socket", "mas-internal.socket"]
        .iter()
        .map(|unit| format!("{unit}={}", ct.unit_property(unit, prop)))
        .collect()
}

/// The whole life of the .deb on a clean Debian 12 with its own systemd:
///
/// 1. install: the mas user exists, no unit is enabled or started, the
///    units verify, `mas-sockets --version` and `man mas-sockets` work;
/// 2. with the stand-in as /usr/bin/mas-cli and a config at
///    /etc/mas/config.yaml, the packaged units start and answer on both
///    listeners, under the mas user;
/// 3. an upgrade to a newer build under continuous load: no request fails,
///    the service runs the new binary, the socket units were never
///    restarted, the admin's enablement stays;
/// 4. an upgrade while the service is stopped leaves it stopped;
/// 5. removal stops and disables everything; purge deletes the user, and
///    the file system is as it was before the install.
#[test]
fn deb_installs_upgrades_under_load_and_purges_in_a_clean_debian_root() {
    let pkgs = packages();
    let root = debian_root();
    let ct = Container::boot(&root, "deb");
    let before = snapshot(&ct.path("/"), &not_the_systems_files);
    let stage = "/run/mas-package-test";
    ct.put(&pkgs.deb, &format!("{stage}/old.deb"), 0o644);
    ct.put(&pkgs.deb_upgrade, &format!("{stage}/new.deb"), 0o644);

    // 1. Install.
    ct.exec_ok(&["dpkg", "-i", &format!("{stage}/old.deb")]);
    let user = ct.exec_ok(&["getent", "passwd", "mas"]);
    let fields: Vec<&str> = user.trim().split(':').collect();
    assert_eq!(fields[4], "Matrix Authentication Service (mas-sockets)");
    let uid: u32 = fields[2].parse().unwrap();
    assert!((1..1000).contains(&uid), "a system uid: {user}");
    assert_eq!(ct.exec_ok(&["id", "-gn", "mas"]).trim(), "mas");
    assert_eq!(
        units_of(&ct, "UnitFileState"),
        [
            "mas.service=disabled",
            "mas-web.socket=disabled",
            "mas-internal.socket=disabled"
        ],
        "installing enables nothing"
    );
    assert_eq!(
        units_of(&ct, "ActiveState"),
        [
            "mas.service=inactive",
            "mas-web.socket=inactive",
            "mas-internal.socket=inactive"
        ],
        "installing starts nothing"
    );
    assert_eq!(
        ct.unit_property("mas.service", "FragmentPath"),
        "/lib/systemd/system/mas.service"
    );
    assert!(
        ct.path("/usr/lib/systemd/system/mas.service").exists(),
        "merged /usr: /lib is /usr/lib"
    );
    assert_eq!(
        ct.exec_ok(&["mas-sockets", "--version"]).trim(),
        format!("mas-sockets {}", pkgs.version)
    );
    // LC_ALL=C: plain ASCII hyphens; blanks are evened out, as man
    // justifies the text.
    let man = |page: &str| {
        let text = ct.exec_ok(&["env", "LC_ALL=C", "man", page]);
        text.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let page = man("mas-sockets");
    assert!(
        page.contains("mas-sockets - Run the Matrix Authentication Service"),
        "{page}"
    );
    for sub in SUBCOMMANDS {
        let page = man(&format!("mas-sockets-{sub}"));
        assert!(
            page.contains(&format!("SYNOPSIS mas-sockets {sub}")),
            "{page}"
        );
    }

    // 2. The packaged units, with the stand-in as MAS.
    ct.put(&standin(), "/usr/bin/mas-cli", 0o755);
    let config = TempDir::new("package-config");
    ct.put(
        &config.write("config.yaml", CONFIG),
        "/etc/mas/config.yaml",
        0o640,
    );
    ct.exec_ok(&["chgrp", "mas", "/etc/mas/config.yaml"]);
    let verify = ct.exec(&[
        "systemd-analyze",
        "verify",
        "/lib/systemd/system/mas.service",
        "/lib/systemd/system/mas-web.socket",
        "/lib/systemd/system/mas-internal.socket",
    ]);
    assert!(
        verify.status.success() && verify.stderr.is_empty() && verify.stdout.is_empty(),
        "systemd-analyze verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
    ct.exec_ok(&["systemctl", "start", "mas.service"]);
    assert_eq!(
        units_of(&ct, "ActiveState"),
        [
            "mas.service=active",
            "mas-web.socket=active",
            "mas-internal.socket=active"
        ]
    );
    let web = SocketAddr::from(([127, 0, 0, 1], 8080));
    let internal = SocketAddr::from(([127, 0, 0, 1], 8081));
    let (health, home) = ct.in_netns(|| (get_tcp(internal, "/health"), get_tcp(web, "/")));
    let health = health.expect("GET /health on the internal listener");
    assert_eq!((health.status, health.body.as_str()), (200, "ok\n"));
    let home = home.expect("GET / on the web listener");
    assert_eq!(home.status, 200);
    assert_eq!(home.header("x-standin-listener"), Some("web"));
    let first_pid = health.pid();
    let status = fs::read_to_string(ct.path(&format!("/proc/{first_pid}/status"))).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains(&format!("\t{uid}\t"))),
        "MAS runs as mas:\n{status}"
    );
    let main_pid = ct.unit_property("mas.service", "MainPID");
    assert_eq!(
        fs::read_to_string(ct.path(&format!("/proc/{main_pid}/comm")))
            .unwrap()
            .trim(),
        "mas-sockets"
    );
    // An admin enables it; removal must undo that.
    ct.exec_ok(&["systemctl", "enable", "mas.service"]);

    // 3. Upgrade under load.
    let sockets_since = |ct: &Container| {
        ["mas-web.socket", "mas-internal.socket"]
            .map(|unit| ct.unit_property(unit, "ActiveEnterTimestampMonotonic"))
    };
    let sockets_before = sockets_since(&ct);
    let load = ct.in_netns(|| {
        Load::start(LoadSpec {
            targets: vec![Target::Tcp(web), Target::Tcp(internal)],
            workers: 16,
            // Paths every listener answers, the internal one (health only) too.
            paths: vec!["/slow/0".into(), "/slow/200".into()],
            keep_alive_share: 0.5,
            timeout: Duration::from_secs(20),
        })
    });
    wait_until("load before the upgrade", Duration::from_secs(30), || {
        load.completed() >= 200
    });
    load.mark("upgrade begins");
    let upgrade = ct.exec(&["dpkg", "-i", &format!("{stage}/new.deb")]);
    load.mark("upgrade done");
    let done = load.completed();
    wait_until("load after the upgrade", Duration::from_secs(30), || {
        load.completed() >= done + 200
    });
    let report = load.stop();
    assert!(
        upgrade.status.success(),
        "the upgrade failed: {}{}",
        String::from_utf8_lossy(&upgrade.stdout),
        String::from_utf8_lossy(&upgrade.stderr)
    );
    assert!(
        report.failures().is_empty(),
        "requests failed during the upgrade: {}",
        report.describe_failures(20)
    );
    let (from, to) = (
        report.mark_at("upgrade begins").unwrap(),
        report.mark_at("upgrade done").unwrap(),
    );
    let during = report
        .samples
        .iter()
        .filter(|s| s.ok && s.at >= from && s.at < to)
        .count();
    eprintln!(
        "upgrade under load: {} requests ({during} while dpkg ran for {:.1?}), {} retried, pids {:?}",
        report.samples.len(),
        to - from,
        report.retried,
        report.pids()
    );
    assert!(during > 0, "no request was sent while the upgrade ran");
    assert_eq!(report.targets_served().len(), 2, "both listeners served");
    assert!(
        report.pids().len() >= 2,
        "the old and the new MAS both served: {:?}",
        report.pids()
    );
    assert_eq!(
        ct.exec_ok(&["dpkg-query", "-W", "-f", "${Version}", "mas-sockets"]),
        format!("{}-1", pkgs.upgrade_version)
    );
    let new_main = ct.unit_property("mas.service", "MainPID");
    assert_ne!(new_main, main_pid, "the upgrade restarted the service");
    assert_eq!(
        ct.exec_ok(&["mas-sockets", "--version"]).trim(),
        format!("mas-sockets {}", pkgs.upgrade_version),
        "the new package's binary says its version"
    );
    let exe = fs::read_link(ct.path(&format!("/proc/{new_main}/exe"))).unwrap();
    assert_eq!(
        exe,
        Path::new("/usr/bin/mas-sockets"),
        "the new binary, not a deleted one"
    );
    assert_eq!(
        sockets_since(&ct),
        sockets_before,
        "the socket units kept their sockets"
    );
    assert_eq!(ct.unit_property("mas.service", "UnitFileState"), "enabled");

    // 4. An upgrade (here: the same package again) leaves a stopped service stopped.
    ct.exec_ok(&["systemctl", "stop", "mas.service"]);
    ct.exec_ok(&["dpkg", "-i", &format!("{stage}/new.deb")]);
    assert_eq!(ct.unit_property("mas.service", "ActiveState"), "inactive");
    ct.exec_ok(&["systemctl", "start", "mas.service"]);

    // 5. Removal, then purge. A socket unit of the admin's that starts
    // mas.service (generate-units names one after its listener) is stopped
    // too: its next connection would start a service whose program is gone.
    let extra_port = crate::util::free_port();
    fs::write(
        ct.path("/etc/systemd/system/mas-other.socket"),
        format!("[Socket]\nListenStream=127.0.0.1:{extra_port}\nService=mas.service\n"),
    )
    .unwrap();
    ct.exec_ok(&["systemctl", "daemon-reload"]);
    // systemd starts no socket unit whose service runs already.
    ct.exec_ok(&["systemctl", "stop", "mas.service"]);
    ct.exec_ok(&["systemctl", "start", "mas-other.socket"]);
    ct.exec_ok(&["dpkg", "--remove", "mas-sockets"]);
    for unit in ["mas.service", "mas-web.socket", "mas-internal.socket"] {
        wait_state(&ct, unit, "inactive");
        assert_eq!(ct.unit_property(unit, "LoadState"), "not-found", "{unit}");
    }
    wait_state(&ct, "mas-other.socket", "inactive");
    fs::remove_file(ct.path("/etc/systemd/system/mas-other.socket")).unwrap();
    ct.exec_ok(&["systemctl", "daemon-reload"]);
    let refused = ct.in_netns(|| get_tcp(internal, "/health"));
    assert!(
        refused.is_err(),
        "nothing listens after removal: {refused:?}"
    );
    let links = ct.exec_ok(&["find", "/etc/systemd/system", "-name", "mas*"]);
    assert!(links.trim().is_empty(), "removal disables: {links}");
    assert!(
        ct.exec(&["getent", "passwd", "mas"]).status.success(),
        "remove keeps the user"
    );
    // What the test itself placed, as an admin would take it away.
    fs::remove_file(ct.path("/usr/bin/mas-cli")).unwrap();
    fs::remove_dir_all(ct.path("/etc/mas")).unwrap();
    ct.exec_ok(&["dpkg", "--purge", "mas-sockets"]);
    assert!(
        !ct.exec(&["getent", "passwd", "mas"]).status.success(),
        "purge deletes the user"
    );
    assert!(
        !ct.exec(&["getent", "group", "mas"]).status.success(),
        "and the group"
    );
    let after = snapshot(&ct.path("/"), &not_the_systems_files);
    let changes = diff(&before, &after);
    assert!(
        changes.is_empty(),
        "purge left {} change(s) behind:\n{}",
        changes.len(),
        changes.join("\n")
    );
}

/// Purge keeps the mas user and group while a file still belongs to them:
/// MAS's config, which the README has the admin give to the mas group,
/// outlives the package, and would belong to the next user or group given
/// the freed id. The purge succeeds and its message names the file.
#[test]
fn deb_purge_keeps_the_mas_user_and_group_while_a_file_belongs_to_them() {
    let pkgs = packages();
    let root = debian_root();
    let ct = Container::boot(&root, "purge");
    ct.put(&pkgs.deb, "/run/mas-package-test/mas-sockets.deb", 0o644);
    ct.exec_ok(&["dpkg", "-i", "/run/mas-package-test/mas-sockets.deb"]);
    let user = ct.exec_ok(&["getent", "passwd", "mas"]);
    let group = ct.exec_ok(&["getent", "group", "mas"]);
    let config = TempDir::new("package-config");
    ct.put(
        &config.write("config.yaml", CONFIG),
        "/etc/mas/config.yaml",
        0o640,
    );
    ct.exec_ok(&["chgrp", "mas", "/etc/mas/config.yaml"]);

    let purge = ct.exec(&["dpkg", "--purge", "mas-sockets"]);
    let stderr = String::from_utf8_lossy(&purge.stderr);
    assert!(purge.status.success(), "the purge failed: {stderr}");
    // dpkg forgets a purged package, or keeps it as "not installed".
    let status = ct.exec(&[
        "dpkg-query",
        "-W",
        "-f",
        "${db:Status-Abbrev}",
        "mas-sockets",
    ]);
    assert!(
        !status.status.success() || String::from_utf8_lossy(&status.stdout).trim() == "un",
        "purged: {status:?}"
    );
    assert_eq!(
        ct.exec_ok(&["getent", "passwd", "mas"]),
        user,
        "the user stays"
    );
    assert_eq!(
        ct.exec_ok(&["getent", "group", "mas"]),
        group,
        "the group stays"
    );
    assert_eq!(
        ct.exec_ok(&["stat", "-c", "%G", "/etc/mas/config.yaml"])
            .trim(),
        "mas"
    );
    assert!(
        stderr.contains("keeping the user and group mas: /etc/mas"),
        "the purge says why: {stderr}"
    );
}
