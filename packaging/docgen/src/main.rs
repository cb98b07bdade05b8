//! `mas-sockets-docgen OUT_DIR`: writes mas-sockets' man pages and its bash,
//! zsh and fish completions from the clap definition in `src/cli.rs`.
//!
//! The pages and completions are generated when the packages are built
//! (packaging/build), never committed, so they describe exactly the binary
//! they ship with. Every visible subcommand gets a page of its own
//! (`mas-sockets-<subcommand>(1)`, nested ones `mas-sockets-<a>-<b>(1)`),
//! found by walking the command tree: a new subcommand gets its page without
//! a change here. Hidden subcommands (internal helpers) get neither a page
//! nor a mention.
//!
//! Output, relative to OUT_DIR:
//!
//! - `man/man1/mas-sockets.1` and `man/man1/mas-sockets-<subcommand>.1`;
//! - `completions/bash/mas-sockets`, `completions/zsh/_mas-sockets`,
//!   `completions/fish/mas-sockets.fish`, named as each shell's completion
//!   directory expects them.
//!
//! The output is byte-stable (no date, no paths), so two builds of the same
//! source give the same files. Exit status 0, or 2 with a one-line error.

use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::CommandFactory as _;
use clap_complete::Shell;

/// The installed command's name, as users type it.
const BIN: &str = "mas-sockets";

fn main() -> ExitCode {
    match run(std::env::args_os().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("mas-sockets-docgen: {err:#}");
            ExitCode::from(2)
        }
    }
}

/// Parses the one argument and writes everything under it.
fn run(args: Vec<std::ffi::OsString>) -> anyhow::Result<()> {
    let [out] = args.as_slice() else {
        bail!(
            "usage: mas-sockets-docgen OUT_DIR (got {} arguments)",
            args.len()
        );
    };
    let out = PathBuf::from(out);
    for page in man_pages()? {
        write_file(&out.join("man/man1").join(&page.file), &page.text)?;
    }
    for (shell, path) in COMPLETIONS {
        write_file(&out.join(path), &completion(*shell)?)?;
    }
    Ok(())
}

/// Where each shell's completion script goes, relative to OUT_DIR.
const COMPLETIONS: &[(Shell, &str)] = &[
    (Shell::Bash, "completions/bash/mas-sockets"),
    (Shell::Zsh, "completions/zsh/_mas-sockets"),
    (Shell::Fish, "completions/fish/mas-sockets.fish"),
];

/// One rendered man page.
#[derive(Debug)]
struct ManPage {
    /// File name, e.g. `mas-sockets-check.1`.
    file: String,
    /// The roff source.
    text: Vec<u8>,
}

/// The command tree as the man pages and completions see it: the binary's
/// own definition, without clap's `help` subcommand (its own page would say
/// nothing that `--help` does not).
fn command() -> clap::Command {
    let mut cmd = mas_sockets::cli::Cli::command()
        .name(BIN)
        .disable_help_subcommand(true);
    // Fills in display and bin names (`mas-sockets-check`, `mas-sockets check`)
    // of every subcommand, which the pages are titled and named after.
    cmd.build();
    cmd
}

/// Renders the page of the top-level command and of every visible
/// subcommand, depth first.
fn man_pages() -> anyhow::Result<Vec<ManPage>> {
    fn walk(cmd: &clap::Command, pages: &mut Vec<ManPage>) -> anyhow::Result<()> {
        let man = clap_mangen::Man::new(cmd.clone()).manual("mas-sockets manual");
        let mut text = Vec::new();
        man.render(&mut text)
            .with_context(|| format!("rendering the man page of {}", cmd.get_name()))?;
        // clap_mangen heads a command's after_long_help "EXTRA"; ours holds
        // the files and the pages to read next, the man-pages(7) SEE ALSO.
        let text = String::from_utf8(text)
            .context("clap_mangen wrote a page that is not UTF-8")?
            .replace(".SH EXTRA\n", ".SH \"SEE ALSO\"\n")
            .into_bytes();
        pages.push(ManPage {
            file: man.get_filename(),
            text,
        });
        for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
            walk(sub, pages)?;
        }
        Ok(())
    }
    let mut pages = Vec::new();
    walk(&command(), &mut pages)?;
    Ok(pages)
}

/// The completion script for one shell.
fn completion(shell: Shell) -> anyhow::Result<Vec<u8>> {
    let mut cmd = without_hidden_subcommands(&command());
    let mut text = Vec::new();
    clap_complete::generate(shell, &mut cmd, BIN, &mut text);
    if shell == Shell::Bash {
        let script = String::from_utf8(text).context("the bash completion is not UTF-8")?;
        text = checked_bash_completion(relabel_bash_branches(&script))?.into_bytes();
    }
    Ok(text)
}

/// The bash script with its branches labelled as its word loop spells the
/// states.
///
/// clap_complete (4.6.12, and earlier 4.x) spells a binary name's `-` as
/// `__` in the loop (`mas__sockets__subcmd__check`) but as `__subcmd__` in
/// the branch labels (`mas__subcmd__sockets__subcmd__check`), so for a name
/// like ours no subcommand's options or values ever complete. Once it spells
/// them alike, this changes nothing.
fn relabel_bash_branches(script: &str) -> String {
    const SEP: &str = "__subcmd__";
    let in_branches = format!("{}{SEP}", BIN.replace('-', SEP));
    let in_loop = format!("{}{SEP}", BIN.replace('-', "__"));
    script
        .lines()
        .map(|line| match line.trim().strip_suffix(')') {
            Some(label) if label.starts_with(&in_branches) => {
                line.replacen(&in_branches, &in_loop, 1)
            }
            _ => line.to_owned(),
        })
        .map(|line| line + "\n")
        .collect()
}

/// The bash script, refused when a state of its word loop has no branch.
///
/// The script's loop walks the words typed so far and sets `cmd` to a state
/// per subcommand (`cmd="mas__sockets__subcmd__check"`); a `case` then
/// completes that state's options in the branch of the same label. A state
/// without its branch completes nothing after that subcommand, and no shell
/// says why, so the build stops instead.
fn checked_bash_completion(script: String) -> anyhow::Result<String> {
    let branches = bash_branches(&script);
    if let Some(state) = bash_states(&script)
        .into_iter()
        .find(|state| !branches.contains(state))
    {
        bail!("the bash completion has no branch for its state {state}, so nothing after that subcommand would complete; clap_complete changed how it names them");
    }
    Ok(script)
}

/// The states the bash script's word loop sets (`cmd="STATE"`), in order.
fn bash_states(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|line| line.trim().strip_prefix("cmd=\""))
        .filter_map(|rest| rest.strip_suffix('"'))
        .filter(|state| !state.is_empty())
        .map(str::to_owned)
        .collect()
}

/// The labels of the bash script's `case` branches that are plain words
/// (`STATE)`), the form the per-state branches take.
fn bash_branches(script: &str) -> Vec<String> {
    script
        .lines()
        .filter_map(|line| line.trim().strip_suffix(')'))
        .filter(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        })
        .map(str::to_owned)
        .collect()
}

/// `cmd` without its hidden subcommands, at every level.
///
/// clap_complete offers hidden subcommands too, and clap cannot remove a
/// subcommand, so a level that has hidden ones is rebuilt from its parts:
/// name, texts, version, arguments, groups and the settings the derive sets.
fn without_hidden_subcommands(cmd: &clap::Command) -> clap::Command {
    let visible = cmd.get_subcommands().filter(|sub| !sub.is_hide_set());
    if cmd.get_subcommands().all(|sub| !sub.is_hide_set()) {
        let subs: Vec<clap::Command> = visible.map(without_hidden_subcommands).collect();
        let mut copy = cmd.clone();
        for sub in subs {
            // Replaces the subcommand of the same name; the name is copied
            // because `sub` moves into the closure.
            let name = String::from(sub.get_name());
            copy = copy.mut_subcommand(name, |_| sub);
        }
        return copy;
    }
    // clap keeps names and versions as `&'static str`; this runs once per
    // level in a short-lived build tool, so leaking them is the simple way.
    let leak = |text: &str| -> &'static str { Box::leak(text.to_owned().into_boxed_str()) };
    let mut level = clap::Command::new(leak(cmd.get_name()))
        .args(
            cmd.get_arguments()
                .filter(|arg| !matches!(arg.get_id().as_str(), "help" | "version"))
                .cloned(),
        )
        .groups(cmd.get_groups().cloned())
        .subcommands(visible.map(without_hidden_subcommands))
        .propagate_version(cmd.is_propagate_version_set())
        .subcommand_required(cmd.is_subcommand_required_set())
        .arg_required_else_help(cmd.is_arg_required_else_help_set())
        .disable_help_subcommand(cmd.is_disable_help_subcommand_set());
    if let Some(about) = cmd.get_about() {
        level = level.about(about.clone());
    }
    if let Some(about) = cmd.get_long_about() {
        level = level.long_about(about.clone());
    }
    if let Some(version) = cmd.get_version() {
        level = level.version(leak(version));
    }
    if let Some(bin) = cmd.get_bin_name() {
        level = level.bin_name(leak(bin));
    }
    level
}

/// Writes a file (mode 0644 under the usual umask), creating its directory.
fn write_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let mut file =
        fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)
        .and_then(|()| file.flush())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The names of the visible subcommands, read from the definition itself.
    fn visible_subcommands() -> Vec<String> {
        command()
            .get_subcommands()
            .filter(|sub| !sub.is_hide_set())
            .map(|sub| sub.get_name().to_owned())
            .collect()
    }

    #[test]
    fn every_visible_subcommand_gets_a_page_and_hidden_ones_none() {
        let files: Vec<String> = man_pages().unwrap().into_iter().map(|p| p.file).collect();
        let mut expected = vec!["mas-sockets.1".to_owned()];
        expected.extend(
            visible_subcommands()
                .iter()
                .map(|sub| format!("mas-sockets-{sub}.1")),
        );
        assert_eq!(files, expected);
        assert!(
            !files.iter().any(|f| f.contains("exec-child")),
            "hidden subcommand documented: {files:?}"
        );
        assert!(
            !files.iter().any(|f| f.contains("help")),
            "clap's help subcommand documented: {files:?}"
        );
    }

    #[test]
    fn the_main_page_names_each_subcommand_page_and_hides_internal_ones() {
        let pages = man_pages().unwrap();
        let main = String::from_utf8(pages[0].text.clone()).unwrap();
        assert!(main.starts_with(".ie \\n(.g .ds Aq \\(aq"), "{main}");
        assert!(main.contains(".TH mas-sockets 1"), "{main}");
        for sub in visible_subcommands() {
            let roff_name = format!("mas-sockets-{sub}(1)").replace('-', "\\-");
            assert!(
                main.contains(&roff_name),
                "{sub} missing from the main page:\n{main}"
            );
        }
        assert!(!main.contains("exec\\-child"), "{main}");
    }

    /// Every page says what its exit statuses mean, and the main page where
    /// to read on (the units' Documentation= leads there).
    #[test]
    fn every_page_gives_its_exit_status_and_the_main_page_a_see_also() {
        let pages = man_pages().unwrap();
        for page in &pages {
            let text = String::from_utf8_lossy(&page.text);
            assert!(
                text.to_lowercase().contains("exit status"),
                "{} says nothing of its exit status:\n{text}",
                page.file
            );
            assert!(!text.contains(".SH EXTRA"), "{}:\n{text}", page.file);
        }
        let main = String::from_utf8_lossy(&pages[0].text);
        let see_also = main
            .split(".SH \"SEE ALSO\"\n")
            .nth(1)
            .unwrap_or_else(|| panic!("no SEE ALSO section:\n{main}"));
        assert!(
            see_also.contains("/usr/share/doc/mas\\-sockets/"),
            "{see_also}"
        );
        assert!(see_also.contains("systemd.socket(5)"), "{see_also}");
    }

    #[test]
    fn subcommand_pages_carry_their_options_from_the_definition() {
        let pages = man_pages().unwrap();
        let supervise = pages
            .iter()
            .find(|p| p.file == "mas-sockets-supervise.1")
            .expect("a supervise page");
        let text = String::from_utf8_lossy(&supervise.text);
        assert!(text.contains("\\-\\-stop\\-timeout"), "{text}");
        assert!(text.contains("MAS_SOCKETS_STOP_TIMEOUT"), "{text}");
        assert!(text.contains(".TH mas-sockets-supervise 1"), "{text}");
    }

    /// Every option and argument a page or a completion shows says what it
    /// does: one without a help text is an empty entry in both.
    #[test]
    fn every_visible_argument_has_a_help_text() {
        fn walk(cmd: &clap::Command, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments().filter(|arg| !arg.is_hide_set()) {
                if arg.get_help().is_none() && arg.get_long_help().is_none() {
                    missing.push(format!("{} {}", cmd.get_name(), arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands().filter(|sub| !sub.is_hide_set()) {
                walk(sub, missing);
            }
        }
        let mut missing = Vec::new();
        walk(&command(), &mut missing);
        assert!(missing.is_empty(), "no help text: {missing:?}");
    }

    #[test]
    fn completions_know_the_subcommands_and_not_the_hidden_one() {
        for (shell, _) in COMPLETIONS {
            let text = String::from_utf8(completion(*shell).unwrap()).unwrap();
            for sub in visible_subcommands() {
                assert!(text.contains(&sub), "{shell}: no {sub}");
            }
            assert!(!text.contains("exec-child"), "{shell}:\n{text}");
        }
        let bash = String::from_utf8(completion(Shell::Bash).unwrap()).unwrap();
        assert!(bash.contains("--drain-timeout"), "{bash}");
        assert!(bash.contains("--version"), "{bash}");
    }

    /// Every state the bash script's word loop can reach (`cmd="..."`) has
    /// the branch that completes it: a state without one completes nothing
    /// after that subcommand.
    #[test]
    fn bash_completion_has_a_branch_for_every_subcommand_state() {
        let bash = String::from_utf8(completion(Shell::Bash).unwrap()).unwrap();
        let states = bash_states(&bash);
        assert_eq!(states.len(), 1 + visible_subcommands().len(), "{bash}");
        let branches = bash_branches(&bash);
        for state in &states {
            assert!(
                branches.contains(state),
                "no branch for {state} among {branches:?}:\n{bash}"
            );
        }
    }

    #[test]
    fn output_is_byte_stable() {
        let first: Vec<Vec<u8>> = man_pages().unwrap().into_iter().map(|p| p.text).collect();
        let second: Vec<Vec<u8>> = man_pages().unwrap().into_iter().map(|p| p.text).collect();
        assert_eq!(first, second);
        assert_eq!(
            completion(Shell::Zsh).unwrap(),
            completion(Shell::Zsh).unwrap()
        );
    }
}
