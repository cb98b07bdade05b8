//! Whether nginx can send a request to MAS again when MAS closed its
//! connection unanswered, as a restart may on a Unix socket (see `mas-sockets
//! reload`) and a crash may on any socket; and what an upstream block costs
//! when MAS closes connections.
//!
//! nginx's http proxy resends an idempotent request to the next server of
//! the upstream only when `proxy_next_upstream` holds `error` (its default,
//! `error timeout`, does), `proxy_next_upstream_tries` is not 1, and a next
//! server is live: an entry marked `down` is none. The directives are
//! inherited as nginx inherits them: one in a location (or a location
//! around it), else its server, else the http level, replaces the outer
//! ones entirely (ngx_http_proxy_module, `ngx_conf_merge_*`).
//!
//! With two or more entries (a host name that resolves to two addresses is
//! two), each entry is taken out for `fail_timeout` (10 s) after
//! `max_fails` (1) failed connections, and with none left nginx answers
//! 502 ("no live upstreams") without trying; `max_fails=0` turns that off.
//! A lone entry never counts failures. nginx's stream proxy counts only
//! failed connects, which MAS's sockets, held open across restarts, do not
//! give: stream servers are left alone.

use super::targets::Target;
use crate::nginx::syntax::Directive;

/// The resend directives that apply to a `proxy_pass`: the innermost of
/// each, `None` for nginx's default.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Resend<'t> {
    next_upstream: Option<&'t Directive>,
    tries: Option<&'t Directive>,
}

impl<'t> Resend<'t> {
    /// These, replaced by those that `items` (a level inside) set.
    pub(super) fn within(self, items: &'t [Directive]) -> Resend<'t> {
        let find = |name: &str| items.iter().find(|d| d.name == name && d.block.is_none());
        Resend {
            next_upstream: find("proxy_next_upstream").or(self.next_upstream),
            tries: find("proxy_next_upstream_tries").or(self.tries),
        }
    }
}

/// The balancing methods whose upstream refuses `backup` (`nginx -t`:
/// "balancing method does not support parameter backup").
const WITHOUT_BACKUP: &[&str] = &["hash", "ip_hash", "random"];

/// The fix for a socket that is an http proxy_pass's only server, in
/// `upstream` if it goes through one.
pub(super) fn lone_fix(target: &Target, upstream: Option<&Directive>) -> String {
    let method = upstream.and_then(|up| {
        up.children()
            .iter()
            .find(|d| WITHOUT_BACKUP.contains(&d.name.as_str()))
    });
    match method {
        Some(m) => format!(
            "list it twice in the upstream, `server {target} max_fails=0;` and the same line again, without `backup`, which nginx refuses with `{}`",
            m.name
        ),
        None => format!(
            "list it twice in an upstream, `server {target} max_fails=0;` and then the same with `backup`, as generate-nginx does"
        ),
    }
}

/// Why `resend` keeps nginx from sending a request that MAS closed
/// unanswered on `target` to a next server: one warning per directive.
pub(super) fn defeated(site: &str, target: &Target, resend: &Resend) -> Vec<String> {
    let mut out = Vec::new();
    let consequence = format!("so nginx answers 502 to a request that a restart of MAS closes unanswered on {target} (see `mas-sockets reload`) instead of sending it to the next server");
    if let Some(d) = resend.next_upstream {
        if d.args.first().is_some_and(|a| a == "off") {
            out.push(format!(
                "{site}:{}: `{d}` turns resending off, {consequence}; make it `proxy_next_upstream error;`",
                d.line
            ));
        } else if !d.args.iter().any(|a| a == "error") {
            out.push(format!(
                "{site}:{}: `{d}` does not hold `error`, and replaces any outer `proxy_next_upstream` entirely, {consequence}; add `error` to it",
                d.line
            ));
        }
    }
    if let Some(d) = resend.tries {
        if d.args.first().is_some_and(|a| a == "1") {
            out.push(format!(
                "{site}:{}: `{d}` lets nginx try one server only, {consequence}; remove it, or make it 2 or more (0 is no limit)",
                d.line
            ));
        }
    }
    out
}

/// The entries of `target` in `upstream` (at `lines`) that are `down`,
/// when they leave it fewer than two live ones.
pub(super) fn down_entries(
    site: &str,
    target: &Target,
    upstream: &Directive,
    lines: &[usize],
) -> Vec<String> {
    let entries: Vec<&Directive> = upstream
        .children()
        .iter()
        .filter(|d| d.name == "server" && lines.contains(&d.line))
        .collect();
    let down: Vec<&&Directive> = entries.iter().filter(|d| has_flag(d, "down")).collect();
    if entries.len() < 2 || entries.len() - down.len() != 1 {
        return Vec::new();
    }
    down.iter()
        .map(|d| {
            // Once `down` goes, the entry counts failures unless told not to:
            // say both at once, not one fix after the other.
            let fix = if counts_no_failures(d) {
                "remove `down`"
            } else {
                "remove `down`, and give the entry `max_fails=0` as the others need it"
            };
            format!(
                "{site}:{}: this entry of {target} is marked `down`, which leaves nginx no next server: it answers 502 to a request that a restart of MAS closes unanswered on {target} (see `mas-sockets reload`) instead of sending it again; {fix}",
                d.line
            )
        })
        .collect()
}

/// The warning for an upstream with `peers` addresses (two or more) whose
/// entries lack `max_fails=0`, which reaches listener `listener`.
pub(super) fn max_fails(
    site: &str,
    upstream: &Directive,
    peers: usize,
    listener: &str,
) -> Option<String> {
    if peers < 2 {
        return None;
    }
    let entries: Vec<&Directive> = upstream
        .children()
        .iter()
        .filter(|d| d.name == "server" && !has_flag(d, "down"))
        .collect();
    let lacking: Vec<usize> = entries
        .iter()
        .filter(|d| !counts_no_failures(d))
        .map(|d| d.line)
        .collect();
    let first = *lacking.first()?;
    // Entries on one line are that line once.
    let mut lacking = lacking;
    lacking.dedup();
    let name = upstream.args.first().map_or("", String::as_str);
    let lines = match lacking.as_slice() {
        [one] => format!("line {one}"),
        [init @ .., last] => format!(
            "lines {} and {last}",
            init.iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        ),
        [] => unreachable!("lacking has a first entry"),
    };
    let all = entries.iter().all(|d| !counts_no_failures(d));
    let cost = if all {
        "so a restart or crash of MAS that closes one connection on each leaves none, and nginx answers 502 to every request (\"no live upstreams\") until they are back"
    } else {
        "and meanwhile a request that MAS closes unanswered on the other entries may have no next server to be sent to"
    };
    Some(format!(
        "{site}:{first}: upstream {name}, which reaches listener {listener}, has entries without `max_fails=0` ({lines}): nginx takes such an entry out for its fail_timeout (10 s by default; under a second with `fail_timeout=0`) after one failed connection, {cost}; add `max_fails=0` to each"
    ))
}

/// Whether an upstream entry says `max_fails=0`.
fn counts_no_failures(server: &Directive) -> bool {
    server
        .args
        .iter()
        .skip(1)
        .filter_map(|a| a.strip_prefix("max_fails="))
        .next_back()
        .is_some_and(|n| n.parse::<u64>() == Ok(0))
}

fn has_flag(server: &Directive, flag: &str) -> bool {
    server.args.iter().skip(1).any(|a| a == flag)
}
